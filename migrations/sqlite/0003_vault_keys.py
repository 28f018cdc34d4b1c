"""vault_key: the master keys this vault has used (as check values they alone open) and its value-HMAC keys
(wrapped by a master key). SQLite."""

STATEMENTS = [
    """
    CREATE TABLE vault_key (
        kind TEXT NOT NULL CHECK (kind IN ('master', 'hmac')),
        key_id TEXT NOT NULL,
        blob TEXT NOT NULL,
        master_key_id TEXT NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (kind, key_id)
    )
    """,
]


def up(migrator, db):
    for statement in STATEMENTS:
        db.execute_sql(statement)
