"""vault_key: the master keys this vault has used (as check values they alone open) and its value-HMAC keys
(wrapped by a master key). Postgres.

Not a tenant table: it holds no value and no usable key. The app role reads it and adds records (a server meets a
new KMS key version, or writes the first secret); only the maintenance role re-wraps HMAC keys (rotate-master).
`sprongus_vault_data_keys` lets the app role test its master key against a few stored data keys whoever owns
them: row-level security would otherwise show it none, and a vault that "holds no secrets" would accept any key.
"""

STATEMENTS = [
    """
    CREATE TABLE vault_key (
        kind TEXT NOT NULL CHECK (kind IN ('master', 'hmac')),
        key_id TEXT NOT NULL,
        blob BYTEA NOT NULL,
        master_key_id TEXT NOT NULL,
        created_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (kind, key_id)
    )
    """,
    """
    CREATE FUNCTION sprongus_vault_data_keys(key_id TEXT, max_rows INTEGER)
    RETURNS TABLE (owner_type TEXT, owner_id TEXT, key_name TEXT, version INTEGER, dek_wrapped BYTEA,
                   master_key_id TEXT)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
        SELECT owner_type, owner_id, key_name, version, dek_wrapped, master_key_id
        FROM secret_kv WHERE master_key_id = COALESCE(key_id, master_key_id)
        ORDER BY updated_at DESC LIMIT LEAST(max_rows, 10)
    $$
    """,
    "REVOKE ALL ON FUNCTION sprongus_vault_data_keys(TEXT, INTEGER) FROM PUBLIC",
    "GRANT EXECUTE ON FUNCTION sprongus_vault_data_keys(TEXT, INTEGER) TO sprongus_app, sprongus_maintenance",
    "GRANT SELECT, INSERT ON vault_key TO sprongus_app",
    "GRANT SELECT, INSERT, UPDATE ON vault_key TO sprongus_maintenance",
]


def up(migrator, db):
    for statement in STATEMENTS:
        db.execute_sql(statement)
    # Run as a superuser, the new objects would belong to it: hand them to the maintenance group like 0001 did.
    # The function then runs as the maintenance group, whose members the tenant policy shows every row.
    db.execute_sql("ALTER TABLE vault_key OWNER TO sprongus_maintenance")
    db.execute_sql("ALTER FUNCTION sprongus_vault_data_keys(TEXT, INTEGER) OWNER TO sprongus_maintenance")
