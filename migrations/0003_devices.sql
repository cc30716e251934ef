-- How many phones may register as one user at once (the aor's max_contacts).
ALTER TABLE extensions
    ADD COLUMN devices smallint NOT NULL DEFAULT 1 CHECK (devices BETWEEN 1 AND 10);

-- portal_create_user gains the device count; otherwise as in 0001 (see there for how
-- allocation stays lowest-free and concurrency-safe in one round trip).
DROP FUNCTION portal_create_user(text, text, integer, integer, integer, text);
CREATE FUNCTION portal_create_user(
    p_name text, p_email text, p_extension integer, p_min integer, p_max integer, p_secret text,
    p_devices smallint DEFAULT 1)
RETURNS TABLE (id bigint, name text, email text, extension integer, devices smallint,
               created_at timestamptz)
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
    INSERT INTO extensions (number, user_id, secret, devices)
        VALUES (v_ext, v_id, p_secret, p_devices);
    RETURN QUERY SELECT v_id, p_name, p_email, v_ext, p_devices, v_at;
END
$$;
