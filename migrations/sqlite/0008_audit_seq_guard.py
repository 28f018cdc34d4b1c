"""The audit trail's order is the database's: on Postgres the app role may not choose an event's seq, nor
checkpoint a seq no event has (0008 there). SQLite has no roles: whoever can write the file can do anything, which
`audit verify` and the checkpoints' MACs are for. The file keeps the two dialects' migrations numbered alike."""


def up(migrator, db):
    pass
