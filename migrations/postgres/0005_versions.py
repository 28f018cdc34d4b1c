"""Every version kept (Postgres): secret_version holds the versions before the current one, secret_kv says who
wrote its current version and whether the secret is deleted (soft delete keeps every version), and
secret_tombstone remembers the last version number of a purged secret so a later `set` never reuses one.

Both new tables hold tenant data (ciphertext, key names): row-level security is forced on them with the same
tenant policy as secret_kv, so the app role sees another tenant's old versions no more than its current ones.
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

TABLES = ("secret_version", "secret_tombstone")

STATEMENTS = [
    "ALTER TABLE secret_kv ADD COLUMN deleted_at TIMESTAMPTZ",
    "ALTER TABLE secret_kv ADD COLUMN version_by TEXT",
    "CREATE INDEX secret_kv_deleted ON secret_kv (deleted_at) WHERE deleted_at IS NOT NULL",
    """
    CREATE TABLE secret_version (
        secret_id TEXT COLLATE "C" NOT NULL,
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
        version_by TEXT,
        PRIMARY KEY (secret_id, version),
        CONSTRAINT secret_version_owner_matches_type CHECK ((owner_type = 'system') = (owner_id IS NULL))
    )
    """,
    "CREATE UNIQUE INDEX secret_version_place ON secret_version (owner_type, owner_id, key_name, version) "
    "NULLS NOT DISTINCT",
    "CREATE INDEX secret_version_master_key ON secret_version (master_key_id)",
    """
    CREATE TABLE secret_tombstone (
        owner_type TEXT NOT NULL CHECK (owner_type IN ('user', 'project', 'system')),
        owner_id TEXT COLLATE "C",
        key_name TEXT COLLATE "C" NOT NULL,
        last_version INTEGER NOT NULL CHECK (last_version >= 1),
        purged_at TIMESTAMPTZ NOT NULL,
        CONSTRAINT secret_tombstone_owner_matches_type CHECK ((owner_type = 'system') = (owner_id IS NULL))
    )
    """,
    "CREATE UNIQUE INDEX secret_tombstone_place ON secret_tombstone (owner_type, owner_id, key_name) "
    "NULLS NOT DISTINCT",
]


def up(migrator, db):
    for statement in STATEMENTS:
        db.execute_sql(statement)
    for table in TABLES:
        db.execute_sql(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        db.execute_sql(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        db.execute_sql(f"CREATE POLICY {table}_tenant ON {table} USING ({TENANT_POLICY}) "
                       f"WITH CHECK ({TENANT_POLICY})")
        db.execute_sql(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO sprongus_app, sprongus_maintenance")
        # Run as a superuser, the new tables would belong to it: hand them to the maintenance group like 0001.
        db.execute_sql(f"ALTER TABLE {table} OWNER TO sprongus_maintenance")
