"""Exchanged tokens (Postgres): the app role may insert only a subject its trust could issue.

0004's policy bounded an exchanged token's kind, trust, scopes, projects, key prefix and life, but not its
subject. A stolen app login could then insert a `user` token for any subject (an operator's name, a person the
trust's provider never signed in), with `auth_time` of now, and read that person's `user:` scope through the API,
which decrypts. The subject must now start with the trust's subject prefix, as the exchange makes it. (The sign-in
time is not bounded here: whoever may insert one token may insert another whenever the last is too old.) Within
the prefix any subject still goes in: a trust's prefix is what separates its people from everyone else's.
"""

POLICY = """
    kind IN ('workload', 'user') AND EXISTS (
        SELECT 1 FROM oidc_trust t
        WHERE t.name = api_token.trust AND t.kind = api_token.kind
          AND starts_with(api_token.subject, t.subject_prefix)
          AND string_to_array(api_token.scopes, ',') <@ string_to_array(t.scopes, ',')
          AND string_to_array(api_token.projects, ',') <@ string_to_array(t.projects, ',')
          AND starts_with(api_token.key_prefix, t.key_prefix)
          AND api_token.expires_at <= now() + make_interval(secs => t.ttl_seconds + 60))
"""


def up(migrator, db):
    db.execute_sql(f"ALTER POLICY api_token_exchanged ON api_token WITH CHECK ({POLICY})")
