-- Names may no longer hold a backslash: Asterisk 22.7 eats it in `callerid="…"` (a name
-- `Bob\` showed as `Bob`), so a stored name differed from the one phones showed, and the
-- renderer now refuses it (every apply would fail with write_failed). Names stored before
-- lose their backslashes, as Asterisk already showed them; a name left empty becomes
-- "User <extension>". The changed fingerprints make the next apply render them.
UPDATE users u
   SET name = COALESCE(NULLIF(btrim(replace(u.name, E'\\', '')), ''), 'User ' || e.number)
  FROM extensions e
 WHERE e.user_id = u.id
   AND strpos(u.name, E'\\') > 0;
