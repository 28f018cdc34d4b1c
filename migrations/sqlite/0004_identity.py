"""Identity federation (SQLite): token kinds and key prefixes on api_token, the operator's trusts, and the
exchanged JWT ids."""

STATEMENTS = [
    "ALTER TABLE api_token ADD COLUMN kind TEXT NOT NULL DEFAULT 'operator' "
    "CHECK (kind IN ('operator', 'workload', 'user'))",
    "ALTER TABLE api_token ADD COLUMN trust TEXT",
    "ALTER TABLE api_token ADD COLUMN key_prefix TEXT NOT NULL DEFAULT ''",
    """
    CREATE TABLE oidc_trust (
        name TEXT PRIMARY KEY NOT NULL,
        issuer TEXT NOT NULL,
        audience TEXT NOT NULL,
        jwks_url TEXT,
        claims TEXT NOT NULL DEFAULT '{}',
        subject_claim TEXT NOT NULL,
        subject_prefix TEXT NOT NULL,
        scopes TEXT NOT NULL,
        projects TEXT NOT NULL,
        key_prefix TEXT NOT NULL,
        ttl_seconds INTEGER NOT NULL CHECK (ttl_seconds BETWEEN 1 AND 43200),
        kind TEXT NOT NULL CHECK (kind IN ('workload', 'user')),
        created_at TEXT NOT NULL
    )
    """,
    "CREATE INDEX oidc_trust_issuer ON oidc_trust (issuer)",
    """
    CREATE TABLE jwt_replay (
        jti_hash TEXT PRIMARY KEY NOT NULL,
        expires_at TEXT NOT NULL
    )
    """,
    "CREATE INDEX jwt_replay_expires ON jwt_replay (expires_at)",
]


def up(migrator, db):
    for statement in STATEMENTS:
        db.execute_sql(statement)
