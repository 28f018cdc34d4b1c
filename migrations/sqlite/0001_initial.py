"""secret_kv and the append-only, hash-chained audit_event table (SQLite)."""

STATEMENTS = [
    """
    CREATE TABLE secret_kv (
        id TEXT PRIMARY KEY NOT NULL,
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
        CHECK ((owner_type = 'system') = (owner_id IS NULL))
    )
    """,
    # NULLs are distinct in a plain unique index: system rows (owner_id NULL) get a partial unique index.
    "CREATE UNIQUE INDEX secret_kv_place ON secret_kv (owner_type, owner_id, key_name)",
    "CREATE UNIQUE INDEX secret_kv_place_system ON secret_kv (owner_type, key_name) WHERE owner_id IS NULL",
    "CREATE INDEX secret_kv_master_key ON secret_kv (master_key_id)",
    """
    CREATE TABLE audit_event (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        time TEXT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        scope TEXT,
        key_name TEXT,
        version INTEGER,
        outcome TEXT NOT NULL,
        request_id TEXT,
        client_address TEXT,
        detail TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(detail)),
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL UNIQUE
    )
    """,
    """
    CREATE TRIGGER audit_event_no_update BEFORE UPDATE ON audit_event
    BEGIN SELECT RAISE(ABORT, 'audit_event is append-only'); END
    """,
    """
    CREATE TRIGGER audit_event_no_delete BEFORE DELETE ON audit_event
    BEGIN SELECT RAISE(ABORT, 'audit_event is append-only'); END
    """,
]


def up(migrator, db):
    for statement in STATEMENTS:
        db.execute_sql(statement)
