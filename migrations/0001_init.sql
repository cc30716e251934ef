-- pbx-portal schema: tenants, users, their extensions, the apply audit log.

CREATE TABLE tenants (
    id         bigint PRIMARY KEY,
    name       text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO tenants (id, name) VALUES (1, 'default');

CREATE TABLE users (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id  bigint NOT NULL DEFAULT 1 REFERENCES tenants (id),
    name       text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    email      text NOT NULL CHECK (email = lower(email) AND char_length(email) <= 254),
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_email_key UNIQUE (email)
);

-- One extension per user. The primary key is the UNIQUE number; its index is what the
-- allocator walks to find the lowest free number.
CREATE TABLE extensions (
    number     integer NOT NULL CHECK (number > 0),
    user_id    bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    secret     text NOT NULL CHECK (secret ~ '^[A-Za-z0-9_-]{22,64}$'),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT extensions_number_key PRIMARY KEY (number),
    CONSTRAINT extensions_user_key UNIQUE (user_id)
);

-- The extensions as the last successful apply wrote them: one fingerprint (a hash of the
-- rendered sections) per number. GET /apply/pending compares the database with this.
CREATE TABLE applied_extensions (
    number      integer PRIMARY KEY,
    fingerprint bytea NOT NULL
);

CREATE TABLE apply_audit_log (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    status       text NOT NULL CHECK (status IN
                   ('running', 'applied', 'unchanged', 'dry_run', 'failed', 'interrupted')),
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    duration_ms  bigint,
    endpoints    integer NOT NULL DEFAULT 0,
    changes      jsonb NOT NULL DEFAULT '{"added": [], "removed": [], "changed": []}',
    reload       jsonb NOT NULL DEFAULT '{"method": "none", "output": ""}',
    health       jsonb NOT NULL DEFAULT '{"status": "skipped", "checked": 0, "missing": []}',
    rolled_back  boolean NOT NULL DEFAULT false,
    error        jsonb,
    -- sha256 of both rendered files; lets an apply see that nothing changed.
    content_hash text
);
CREATE INDEX apply_audit_log_running ON apply_audit_log (id) WHERE status = 'running';

-- POST /users Idempotency-Key: the first response, replayed for 24 hours.
CREATE TABLE idempotency_keys (
    key          text PRIMARY KEY,
    request_hash bytea NOT NULL,
    response     jsonb,
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- Creates a user and its extension in one round trip. Allocation is serialised by a
-- transaction-level advisory lock taken in its own statement, so the search for the lowest
-- free number runs on a snapshot that already sees every earlier allocation: concurrent
-- creates get distinct numbers and none fails while numbers remain. The search walks the
-- primary-key index from p_min and stops at the first gap, so its cost depends on how
-- many numbers are taken below that gap, never on the size of the range.
CREATE FUNCTION portal_create_user(
    p_name text, p_email text, p_extension integer, p_min integer, p_max integer, p_secret text)
RETURNS TABLE (id bigint, name text, email text, extension integer, created_at timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
    v_ext  integer := p_extension;
    v_id   bigint;
    v_at   timestamptz;
BEGIN
    PERFORM pg_advisory_xact_lock(1346524240, 1);
    IF v_ext IS NULL THEN
        SELECT f.n INTO v_ext FROM (
            SELECT p_min AS n
             WHERE NOT EXISTS (SELECT 1 FROM extensions x WHERE x.number = p_min)
            UNION ALL
            (SELECT e.number + 1
               FROM extensions e
              WHERE e.number >= p_min AND e.number < p_max
                AND NOT EXISTS (SELECT 1 FROM extensions x WHERE x.number = e.number + 1)
              ORDER BY e.number
              LIMIT 1)
        ) f
        ORDER BY f.n
        LIMIT 1;
        IF v_ext IS NULL THEN
            RAISE EXCEPTION 'extension pool exhausted' USING ERRCODE = 'PX001';
        END IF;
    END IF;
    INSERT INTO users AS u (name, email) VALUES (p_name, p_email)
        RETURNING u.id, u.created_at INTO v_id, v_at;
    INSERT INTO extensions (number, user_id, secret) VALUES (v_ext, v_id, p_secret);
    RETURN QUERY SELECT v_id, p_name, p_email, v_ext, v_at;
END
$$;
