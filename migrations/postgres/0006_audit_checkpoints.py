"""Checkpoints of the audit chain head (Postgres): the number of events and the head hash at one seq, MAC'd with a
key derived from the vault's value-HMAC key, so rows cut off before the newest checkpoint show in `audit verify`.
Append-only like audit_event: both roles may SELECT and INSERT, nobody may UPDATE or DELETE (a trigger, since the
owner could grant itself the rights). An index serves the audit readers' scope filter (keyset on seq).

The trail's current head is checkpointed here, unsigned (nothing here holds a key): the first event after the
upgrade then counts only the events since, never the whole table within a statement timeout."""

STATEMENTS = [
    """
    CREATE TABLE audit_checkpoint (
        seq BIGINT PRIMARY KEY,
        count BIGINT NOT NULL CHECK (count >= 1),
        head_hash TEXT NOT NULL,
        time TIMESTAMPTZ NOT NULL,
        key_id TEXT,
        mac TEXT,
        CHECK ((key_id IS NULL) = (mac IS NULL))
    )
    """,
    """
    CREATE FUNCTION sprongus_audit_checkpoint_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION 'audit_checkpoint is append-only'; END $$
    """,
    """
    CREATE TRIGGER audit_checkpoint_append_only BEFORE UPDATE OR DELETE ON audit_checkpoint
    FOR EACH ROW EXECUTE FUNCTION sprongus_audit_checkpoint_append_only()
    """,
    "CREATE INDEX audit_event_scope_seq ON audit_event (scope, seq)",
    """
    INSERT INTO audit_checkpoint (seq, count, head_hash, time)
    SELECT seq, (SELECT count(*) FROM audit_event), hash, time FROM audit_event ORDER BY seq DESC LIMIT 1
    """,
    "GRANT SELECT, INSERT ON audit_checkpoint TO sprongus_app, sprongus_maintenance",
]


def up(migrator, db):
    for statement in STATEMENTS:
        db.execute_sql(statement)
    # Run as a superuser, the new objects would belong to it: hand them to the maintenance group like 0001 did.
    db.execute_sql("ALTER TABLE audit_checkpoint OWNER TO sprongus_maintenance")
    db.execute_sql("ALTER FUNCTION sprongus_audit_checkpoint_append_only() OWNER TO sprongus_maintenance")
