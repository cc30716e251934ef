-- Named, scoped API tokens and the audit of who changed what.

-- Only the SHA-256 of each token is kept (see src/auth.rs for why no slow KDF): the
-- unique index on it is how a presented token is found. A revoked token keeps its row
-- (the audit names it) and frees its name for a new token.
CREATE TABLE api_tokens (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         text NOT NULL CHECK (name ~ '^[A-Za-z0-9._-]{1,64}$'
                                      AND name NOT IN ('bootstrap', 'cli')),
    hash         bytea NOT NULL CHECK (octet_length(hash) = 32),
    scopes       text[] NOT NULL CHECK (cardinality(scopes) > 0),
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,
    last_used_at timestamptz,
    revoked_at   timestamptz,
    created_by   text NOT NULL,
    CONSTRAINT api_tokens_hash_key UNIQUE (hash)
);
CREATE UNIQUE INDEX api_tokens_live_name_key ON api_tokens (name) WHERE revoked_at IS NULL;

-- Every change and who made it: the token name, 'bootstrap' (PORTAL_API_TOKEN) or 'cli'.
-- Never a secret: user ids, apply ids, token names and the names of changed fields.
CREATE TABLE audit_log (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at       timestamptz NOT NULL DEFAULT now(),
    actor    text NOT NULL,
    action   text NOT NULL,
    user_id  bigint,
    apply_id bigint,
    token    text,
    fields   text[]
);
CREATE INDEX audit_log_user ON audit_log (user_id, id) WHERE user_id IS NOT NULL;

-- Applies before this migration have no known actor (every new row names one).
ALTER TABLE apply_audit_log ADD COLUMN actor text NOT NULL DEFAULT 'unknown';
