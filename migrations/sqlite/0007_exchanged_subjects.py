"""Exchanged tokens: Postgres's app role may insert only a subject its trust could issue (0007 there). SQLite has
no roles, so nothing changes here; the file keeps the two dialects' migrations numbered alike."""


def up(migrator, db):
    pass
