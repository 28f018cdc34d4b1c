"""Schema migrations, one numbered set per dialect, run by playhouse.migrations (`sprongus db upgrade`).

Each migration carries its own copy of the DDL and never imports the live models.
"""
