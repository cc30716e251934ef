-- Several Asterisk hosts from one database: one row per node (a `serve` next to an
-- Asterisk), applied state and audit per node, and the requests one node leaves for the
-- others. PostgreSQL is the only coordination: these rows, LISTEN/NOTIFY on
-- `pbx_portal_apply` / `pbx_portal_applied`, and advisory locks keyed by `nodes.id`.

CREATE TABLE nodes (
    -- The key of the node's advisory locks (exact: no hash of the name can collide).
    id                integer GENERATED ALWAYS AS IDENTITY UNIQUE,
    name              text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9._-]{1,63}$'),
    version           text NOT NULL,
    -- What the node renders per extension besides the users: GET /nodes computes each
    -- node's pending changes with its own settings.
    transport         text NOT NULL,
    qualify_frequency integer NOT NULL,
    -- Hash of both files as the node's last successful apply wrote them.
    applied_hash      text,
    first_seen        timestamptz NOT NULL DEFAULT now(),
    -- Heartbeat, by the database's clock (hosts' clocks may differ); NULL: never served.
    last_seen         timestamptz,
    -- Set by a graceful stop, cleared by the next heartbeat: the node is gone at once.
    stopped_at        timestamptz,
    ami               text,
    registrations     jsonb
);

-- Applied state per node. Rows written before nodes existed get the empty name: the
-- first node that starts takes them over (src/store/nodes.rs).
ALTER TABLE applied_extensions ADD COLUMN node text NOT NULL DEFAULT '';
ALTER TABLE applied_extensions DROP CONSTRAINT applied_extensions_pkey;
ALTER TABLE applied_extensions ADD PRIMARY KEY (node, number);
ALTER TABLE applied_extensions ALTER COLUMN node DROP DEFAULT;

-- The audit log per node; `nodes` holds the outcome of every node an apply asked,
-- `requested_by` the node that asked this one. A row without a node (written before, or
-- by a portal of an older version during an upgrade) is shown by every node until the
-- next node to start takes it over.
ALTER TABLE apply_audit_log ADD COLUMN node text NOT NULL DEFAULT '';
ALTER TABLE apply_audit_log ADD COLUMN requested_by text;
ALTER TABLE apply_audit_log ADD COLUMN nodes jsonb NOT NULL DEFAULT '[]';
CREATE INDEX apply_audit_log_node ON apply_audit_log (node, id);

-- One row per node that a cluster apply asks to apply. The asked node claims it (only
-- before `deadline`: a node that was down never runs an old request) and writes its
-- outcome; the asking node waits for the outcomes.
CREATE TABLE apply_requests (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    batch        bigint NOT NULL,
    node         text NOT NULL REFERENCES nodes (name) ON DELETE CASCADE,
    requested_by text NOT NULL,
    actor        text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    deadline     timestamptz NOT NULL,
    claimed_at   timestamptz,
    outcome      jsonb
);
CREATE INDEX apply_requests_open ON apply_requests (node) WHERE claimed_at IS NULL;
CREATE INDEX apply_requests_batch ON apply_requests (batch);
CREATE SEQUENCE apply_batches;
