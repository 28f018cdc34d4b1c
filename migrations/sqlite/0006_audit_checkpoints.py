"""Checkpoints of the audit chain head (SQLite): the number of events and the head hash at one seq, MAC'd with a key
derived from the vault's value-HMAC key, so rows cut off before the newest checkpoint show in `audit verify`.
Append-only like audit_event. An index serves the audit readers' scope filter (keyset on seq).

The trail's current head is checkpointed here, unsigned (nothing here holds a key): the first event after the
upgrade then counts only the events since, never the whole table inside a request."""

STATEMENTS = [
    """
    CREATE TABLE audit_checkpoint (
        seq INTEGER PRIMARY KEY NOT NULL,
        count INTEGER NOT NULL CHECK (count >= 1),
        head_hash TEXT NOT NULL,
        time TEXT NOT NULL,
        key_id TEXT,
        mac TEXT,
        CHECK ((key_id IS NULL) = (mac IS NULL))
    )
    """,
    """
    CREATE TRIGGER audit_checkpoint_no_update BEFORE UPDATE ON audit_checkpoint
    BEGIN SELECT RAISE(ABORT, 'audit_checkpoint is append-only'); END
    """,
    """
    CREATE TRIGGER audit_checkpoint_no_delete BEFORE DELETE ON audit_checkpoint
    BEGIN SELECT RAISE(ABORT, 'audit_checkpoint is append-only'); END
    """,
    "CREATE INDEX audit_event_scope_seq ON audit_event (scope, seq)",
    """
    INSERT INTO audit_checkpoint (seq, count, head_hash, time)
    SELECT seq, (SELECT count(*) FROM audit_event), hash, time FROM audit_event ORDER BY seq DESC LIMIT 1
    """,
]


def up(migrator, db):
    for statement in STATEMENTS:
        db.execute_sql(statement)
