"""Every version kept (SQLite): secret_version holds the versions before the current one, secret_kv says who wrote
its current version and whether the secret is deleted (soft delete keeps every version), and secret_tombstone
remembers the last version number of a purged secret so a later `set` never reuses one."""

STATEMENTS = [
    "ALTER TABLE secret_kv ADD COLUMN deleted_at TEXT",
    "ALTER TABLE secret_kv ADD COLUMN version_by TEXT",
    # Only deleted rows are in it: `purge-expired` finds them without reading the live ones.
    "CREATE INDEX secret_kv_deleted ON secret_kv (deleted_at) WHERE deleted_at IS NOT NULL",
    """
    CREATE TABLE secret_version (
        secret_id TEXT NOT NULL,
        owner_type TEXT NOT NULL CHECK (owner_type IN ('user', 'project', 'system')),
        owner_id TEXT,
        key_name TEXT NOT NULL,
        ciphertext TEXT NOT NULL,
        dek_wrapped TEXT NOT NULL,
        nonce TEXT NOT NULL,
        alg TEXT NOT NULL,
        master_key_id TEXT NOT NULL,
        version INTEGER NOT NULL CHECK (version >= 1),
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        last_rotated_at TEXT,
        meta TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(meta)),
        hmac TEXT,
        checksum TEXT NOT NULL,
        version_by TEXT,
        PRIMARY KEY (secret_id, version),
        CHECK ((owner_type = 'system') = (owner_id IS NULL))
    )
    """,
    "CREATE UNIQUE INDEX secret_version_place ON secret_version (owner_type, owner_id, key_name, version)",
    "CREATE UNIQUE INDEX secret_version_place_system ON secret_version (owner_type, key_name, version) "
    "WHERE owner_id IS NULL",
    "CREATE INDEX secret_version_master_key ON secret_version (master_key_id)",
    """
    CREATE TABLE secret_tombstone (
        owner_type TEXT NOT NULL CHECK (owner_type IN ('user', 'project', 'system')),
        owner_id TEXT,
        key_name TEXT NOT NULL,
        last_version INTEGER NOT NULL CHECK (last_version >= 1),
        purged_at TEXT NOT NULL,
        CHECK ((owner_type = 'system') = (owner_id IS NULL))
    )
    """,
    "CREATE UNIQUE INDEX secret_tombstone_place ON secret_tombstone (owner_type, owner_id, key_name)",
    "CREATE UNIQUE INDEX secret_tombstone_place_system ON secret_tombstone (owner_type, key_name) "
    "WHERE owner_id IS NULL",
]


def up(migrator, db):
    for statement in STATEMENTS:
        db.execute_sql(statement)
