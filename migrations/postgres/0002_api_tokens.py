"""API tokens (hashes only), single-use reveal tokens (hashes only) and idempotency keys (Postgres).

Not tenant tables: a bearer token is looked up before its subject is known, a reveal token is redeemed with no
principal at all, and idempotency rows are keyed by the subject. They hold no secret value and no usable token.
"""

STATEMENTS = [
    """
    CREATE TABLE api_token (
        id TEXT PRIMARY KEY,
        token_hash TEXT NOT NULL UNIQUE,
        subject TEXT NOT NULL,
        scopes TEXT NOT NULL,
        projects TEXT NOT NULL,
        created_at TIMESTAMPTZ NOT NULL,
        expires_at TIMESTAMPTZ NOT NULL,
        auth_time TIMESTAMPTZ NOT NULL,
        revoked_at TIMESTAMPTZ
    )
    """,
    """
    CREATE TABLE reveal_token (
        token_hash TEXT PRIMARY KEY,
        subject TEXT NOT NULL,
        projects TEXT NOT NULL,
        admin BOOLEAN NOT NULL,
        owner_type TEXT NOT NULL,
        owner_id TEXT,
        key_name TEXT NOT NULL,
        expires_at TIMESTAMPTZ NOT NULL,
        seal TEXT NOT NULL
    )
    """,
    """
    CREATE TABLE idempotency_key (
        subject TEXT NOT NULL,
        key TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        created_at TIMESTAMPTZ NOT NULL,
        status INTEGER,
        body TEXT,
        headers TEXT,
        PRIMARY KEY (subject, key)
    )
    """,
    # The API issues no tokens itself (operators do, as the maintenance role): the app role only reads them.
    "GRANT SELECT ON api_token TO sprongus_app",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON api_token TO sprongus_maintenance",
    "GRANT SELECT, INSERT, DELETE ON reveal_token TO sprongus_app, sprongus_maintenance",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON idempotency_key TO sprongus_app, sprongus_maintenance",
]


def owned_by_maintenance(db):
    # Run as a superuser, the new tables would belong to it: hand them to the maintenance group like 0001 did.
    for table in ("api_token", "reveal_token", "idempotency_key"):
        db.execute_sql(f"ALTER TABLE {table} OWNER TO sprongus_maintenance")


def up(migrator, db):
    for statement in STATEMENTS:
        db.execute_sql(statement)
    owned_by_maintenance(db)
