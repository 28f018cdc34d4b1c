"""Identity federation (Postgres): token kinds and key prefixes on api_token, the operator's trusts, and the
exchanged JWT ids.

The API now issues tokens itself (a token exchange) and revokes them (logout), so the app role gains INSERT on
api_token, but a policy lets it insert only what a trust could issue: a `workload` or `user` token naming an
existing trust of its kind, with scopes and projects within the trust's, under its key prefix, living at most the
trust's TTL. Operator tokens stay a maintenance login's right, and a stolen app login cannot mint itself an admin. It revokes through `sprongus_revoke_token`, by the token's hash, never by id, so it cannot revoke a
token without naming it. Trusts are written by operators only; the app role reads them.
The tenant policy of secret_kv also honours the caller's key prefix (`sprongus.key_prefix`).
"""

TENANT_POLICY = """
    pg_has_role(current_user, 'sprongus_maintenance', 'MEMBER')
    OR (((owner_type = 'user'
          AND owner_id = NULLIF(current_setting('sprongus.subject', true), ''))
         OR (owner_type = 'project'
             AND owner_id = ANY (string_to_array(NULLIF(current_setting('sprongus.projects', true), ''), ',')))
         OR (owner_type = 'system'
             AND NULLIF(current_setting('sprongus.admin', true), '') = 'on'))
        AND starts_with(key_name, COALESCE(current_setting('sprongus.key_prefix', true), '')))
"""

STATEMENTS = [
    "ALTER TABLE api_token ADD COLUMN kind TEXT NOT NULL DEFAULT 'operator' "
    "CHECK (kind IN ('operator', 'workload', 'user'))",
    "ALTER TABLE api_token ADD COLUMN trust TEXT",
    "ALTER TABLE api_token ADD COLUMN key_prefix TEXT NOT NULL DEFAULT ''",
    """
    CREATE TABLE oidc_trust (
        name TEXT PRIMARY KEY,
        issuer TEXT NOT NULL,
        audience TEXT NOT NULL,
        jwks_url TEXT,
        claims JSONB NOT NULL DEFAULT '{}'::jsonb,
        subject_claim TEXT NOT NULL,
        subject_prefix TEXT NOT NULL,
        scopes TEXT NOT NULL,
        projects TEXT NOT NULL,
        key_prefix TEXT NOT NULL,
        ttl_seconds INTEGER NOT NULL CHECK (ttl_seconds BETWEEN 1 AND 43200),
        kind TEXT NOT NULL CHECK (kind IN ('workload', 'user')),
        created_at TIMESTAMPTZ NOT NULL
    )
    """,
    "CREATE INDEX oidc_trust_issuer ON oidc_trust (issuer)",
    "ALTER TABLE api_token ENABLE ROW LEVEL SECURITY",
    "CREATE POLICY api_token_read ON api_token FOR SELECT USING (true)",
    """
    CREATE POLICY api_token_exchanged ON api_token FOR INSERT WITH CHECK (
        kind IN ('workload', 'user') AND EXISTS (
            SELECT 1 FROM oidc_trust t
            WHERE t.name = api_token.trust AND t.kind = api_token.kind
              AND string_to_array(api_token.scopes, ',') <@ string_to_array(t.scopes, ',')
              AND string_to_array(api_token.projects, ',') <@ string_to_array(t.projects, ',')
              AND starts_with(api_token.key_prefix, t.key_prefix)
              AND api_token.expires_at <= now() + make_interval(secs => t.ttl_seconds + 60)))
    """,
    "GRANT INSERT ON api_token TO sprongus_app",
    """
    CREATE FUNCTION sprongus_revoke_token(hash TEXT, at TIMESTAMPTZ) RETURNS BOOLEAN
    LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
        WITH done AS (UPDATE api_token SET revoked_at = at
                      WHERE token_hash = hash AND revoked_at IS NULL RETURNING 1)
        SELECT EXISTS (SELECT 1 FROM done)
    $$
    """,
    "REVOKE ALL ON FUNCTION sprongus_revoke_token(TEXT, TIMESTAMPTZ) FROM PUBLIC",
    "GRANT EXECUTE ON FUNCTION sprongus_revoke_token(TEXT, TIMESTAMPTZ) TO sprongus_app, sprongus_maintenance",
    """
    CREATE TABLE jwt_replay (
        jti_hash TEXT PRIMARY KEY,
        expires_at TIMESTAMPTZ NOT NULL
    )
    """,
    "CREATE INDEX jwt_replay_expires ON jwt_replay (expires_at)",
    "GRANT SELECT ON oidc_trust TO sprongus_app",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON oidc_trust TO sprongus_maintenance",
    "GRANT SELECT, INSERT, DELETE ON jwt_replay TO sprongus_app, sprongus_maintenance",
    f"ALTER POLICY secret_kv_tenant ON secret_kv USING ({TENANT_POLICY}) WITH CHECK ({TENANT_POLICY})",
]


def up(migrator, db):
    for statement in STATEMENTS:
        db.execute_sql(statement)
    # Run as a superuser, the new objects would belong to it: hand them to the maintenance group like 0001 did.
    # The function then runs as the maintenance group, which owns api_token.
    for table in ("oidc_trust", "jwt_replay"):
        db.execute_sql(f"ALTER TABLE {table} OWNER TO sprongus_maintenance")
    db.execute_sql("ALTER FUNCTION sprongus_revoke_token(TEXT, TIMESTAMPTZ) OWNER TO sprongus_maintenance")
