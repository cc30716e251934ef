-- A user's PJSIP transport (PORTAL_PJSIP_TRANSPORTS): NULL until the first node that
-- starts after the upgrade gives every such user its default (the first listed), which
-- is what those users were rendered with before (PORTAL_PJSIP_TRANSPORT).
ALTER TABLE extensions
    ADD COLUMN transport text CHECK (transport ~ '^[A-Za-z0-9._-]{1,64}$');

-- How each node renders every endpoint (transports and which are TLS, the NAT options,
-- the codecs, qualify): GET /nodes computes a node's pending changes with it.
ALTER TABLE nodes ADD COLUMN policy jsonb;

-- portal_create_user gains the transport; otherwise as in 0003 (see 0001 for how
-- allocation stays lowest-free and concurrency-safe in one round trip).
DROP FUNCTION portal_create_user(text, text, integer, integer, integer, text, smallint);
CREATE FUNCTION portal_create_user(
    p_name text, p_email text, p_extension integer, p_min integer, p_max integer, p_secret text,
    p_devices smallint DEFAULT 1, p_transport text DEFAULT NULL)
RETURNS TABLE (id bigint, name text, email text, extension integer, devices smallint,
               created_at timestamptz, transport text)
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
    INSERT INTO extensions (number, user_id, secret, devices, transport)
        VALUES (v_ext, v_id, p_secret, p_devices, p_transport);
    RETURN QUERY SELECT v_id, p_name, p_email, v_ext, p_devices, v_at, p_transport;
END
$$;
