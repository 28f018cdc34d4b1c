"""Peewee persistence: SQLite (embedded default) and Postgres (production, row-level security)."""
