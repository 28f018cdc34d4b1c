"""The audit trail's order is the database's (Postgres): the app role may not choose an event's seq, nor checkpoint
a seq no event has.

The app role could INSERT audit_event rows with a seq of its choosing: one row at seq 4 * 10^18 became the chain's
head for every later append (each then chained to it and reported as "does not follow" forever), and a checkpoint
naming a seq past every row stopped the checkpoints. Now a row's seq must be the one its own INSERT drew from the
sequence (the app role may only USE it: it cannot move it with setval), and a checkpoint must name an existing
event. Maintenance logins (migrations, bulk loads) are not bound; rows already stored are not re-checked. The
function names its table with the schema and runs on a fixed search_path: a temp table named audit_event (the app
role may make one) would otherwise have been the one whose sequence it asked.
"""

STATEMENTS = [
    """
    CREATE FUNCTION sprongus_audit_seq_drawn() RETURNS trigger LANGUAGE plpgsql
    SET search_path = public, pg_temp AS $$
    BEGIN
        IF NOT pg_has_role(current_user, 'sprongus_maintenance', 'MEMBER')
           AND NEW.seq IS DISTINCT FROM currval(pg_get_serial_sequence('public.audit_event', 'seq')) THEN
            RAISE EXCEPTION 'audit_event.seq is drawn from its sequence, never given';
        END IF;
        RETURN NEW;
    END $$
    """,
    """
    CREATE TRIGGER audit_event_seq_drawn BEFORE INSERT ON audit_event
    FOR EACH ROW EXECUTE FUNCTION sprongus_audit_seq_drawn()
    """,
    "ALTER TABLE audit_checkpoint ADD CONSTRAINT audit_checkpoint_event FOREIGN KEY (seq) REFERENCES audit_event (seq) "
    "NOT VALID",
]


def up(migrator, db):
    for statement in STATEMENTS:
        db.execute_sql(statement)
    db.execute_sql("ALTER FUNCTION sprongus_audit_seq_drawn() OWNER TO sprongus_maintenance")
