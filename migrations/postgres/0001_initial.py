"""secret_kv with row-level security, the append-only hash-chained audit_event, group roles and grants (Postgres).

Roles: `sprongus_app` (the API's login role is a member: no ownership, no BYPASSRLS, sees rows through the
policy) and `sprongus_maintenance` (owns the tables; migrations and master-key rotation: its members see every
row). They are NOLOGIN group roles; deployments create login roles IN ROLE one of them (docs/operations.md).
This first migration runs as a superuser (it creates the group roles); later ones run as a maintenance login.
"""

ROLES = ["sprongus_app", "sprongus_maintenance"]

TENANT_POLICY = """
    pg_has_role(current_user, 'sprongus_maintenance', 'MEMBER')
    OR (owner_type = 'user'
        AND owner_id = NULLIF(current_setting('sprongus.subject', true), ''))
    OR (owner_type = 'project'
        AND owner_id = ANY (string_to_array(NULLIF(current_setting('sprongus.projects', true), ''), ',')))
    OR (owner_type = 'system'
        AND NULLIF(current_setting('sprongus.admin', true), '') = 'on')
"""

STATEMENTS = [
    """
    CREATE TABLE secret_kv (
        id TEXT COLLATE "C" PRIMARY KEY,
        owner_type TEXT NOT NULL CHECK (owner_type IN ('user', 'project', 'system')),
        owner_id TEXT COLLATE "C",
        key_name TEXT COLLATE "C" NOT NULL,
        ciphertext BYTEA NOT NULL,
        dek_wrapped BYTEA NOT NULL,
        nonce BYTEA NOT NULL,
        alg TEXT NOT NULL,
        master_key_id TEXT NOT NULL,
        version INTEGER NOT NULL CHECK (version >= 1),
        created_at TIMESTAMPTZ NOT NULL,
        updated_at TIMESTAMPTZ NOT NULL,
        last_rotated_at TIMESTAMPTZ,
        meta JSONB NOT NULL DEFAULT '{}'::jsonb,
        hmac TEXT,
        checksum TEXT NOT NULL,
        CONSTRAINT secret_kv_owner_matches_type CHECK ((owner_type = 'system') = (owner_id IS NULL))
    )
    """,
    # Its leading columns also serve lookups by (owner_type, owner_id).
    "CREATE UNIQUE INDEX secret_kv_place ON secret_kv (owner_type, owner_id, key_name) NULLS NOT DISTINCT",
    "CREATE INDEX secret_kv_master_key ON secret_kv (master_key_id)",
    "ALTER TABLE secret_kv ENABLE ROW LEVEL SECURITY",
    "ALTER TABLE secret_kv FORCE ROW LEVEL SECURITY",
    f"CREATE POLICY secret_kv_tenant ON secret_kv USING ({TENANT_POLICY}) WITH CHECK ({TENANT_POLICY})",
    """
    CREATE TABLE audit_event (
        seq BIGSERIAL PRIMARY KEY,
        time TIMESTAMPTZ NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        scope TEXT,
        key_name TEXT,
        version INTEGER,
        outcome TEXT NOT NULL,
        request_id TEXT,
        client_address TEXT,
        detail JSONB NOT NULL DEFAULT '{}'::jsonb,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL UNIQUE
    )
    """,
    """
    CREATE FUNCTION sprongus_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION 'audit_event is append-only'; END $$
    """,
    """
    CREATE TRIGGER audit_event_append_only BEFORE UPDATE OR DELETE ON audit_event
    FOR EACH ROW EXECUTE FUNCTION sprongus_audit_append_only()
    """,
    "GRANT SELECT, INSERT, UPDATE, DELETE ON secret_kv TO sprongus_app, sprongus_maintenance",
    "GRANT SELECT, INSERT ON audit_event TO sprongus_app, sprongus_maintenance",
    "GRANT USAGE ON SEQUENCE audit_event_seq_seq TO sprongus_app, sprongus_maintenance",
    # The runner creates its history table before the first migration; the app checks it at start-up.
    "GRANT SELECT ON schema_migration TO sprongus_app",
    # The maintenance group owns the schema's objects, so its members apply later migrations; only this first
    # one needs a superuser (or CREATEROLE) for the group roles. The app group owns nothing.
    "GRANT CREATE ON SCHEMA public TO sprongus_maintenance",
    "ALTER TABLE secret_kv OWNER TO sprongus_maintenance",
    "ALTER TABLE audit_event OWNER TO sprongus_maintenance",
    "ALTER TABLE schema_migration OWNER TO sprongus_maintenance",
    "ALTER FUNCTION sprongus_audit_append_only() OWNER TO sprongus_maintenance",
]


def create_role(db, role):
    # Roles are cluster-wide and several databases may migrate at once: tolerate losing the race.
    db.execute_sql(f"""
        DO $$ BEGIN
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN
                CREATE ROLE {role} NOLOGIN NOBYPASSRLS;
            END IF;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
        END $$""")


def up(migrator, db):
    for role in ROLES:
        create_role(db, role)
    for statement in STATEMENTS:
        db.execute_sql(statement)
