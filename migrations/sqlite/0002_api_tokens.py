"""API tokens (hashes only), single-use reveal tokens (hashes only) and idempotency keys (SQLite)."""

STATEMENTS = [
    """
    CREATE TABLE api_token (
        id TEXT PRIMARY KEY NOT NULL,
        token_hash TEXT NOT NULL UNIQUE,
        subject TEXT NOT NULL,
        scopes TEXT NOT NULL,
        projects TEXT NOT NULL,
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        auth_time TEXT NOT NULL,
        revoked_at TEXT
    )
    """,
    """
    CREATE TABLE reveal_token (
        token_hash TEXT PRIMARY KEY NOT NULL,
        subject TEXT NOT NULL,
        projects TEXT NOT NULL,
        admin INTEGER NOT NULL,
        owner_type TEXT NOT NULL,
        owner_id TEXT,
        key_name TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        seal TEXT NOT NULL
    )
    """,
    """
    CREATE TABLE idempotency_key (
        subject TEXT NOT NULL,
        key TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        created_at TEXT NOT NULL,
        status INTEGER,
        body TEXT,
        headers TEXT,
        PRIMARY KEY (subject, key)
    )
    """,
]


def up(migrator, db):
    for statement in STATEMENTS:
        db.execute_sql(statement)
