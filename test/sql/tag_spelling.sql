--
-- tag_spelling: a writer's tag and a reader's tag are the same exactly when
-- the values are equal by the column's equality, whatever the session
-- settings of either.  For each type, a query tagged "T/c=$1" that filters
-- c = $1 is cached under one spelling and one set of settings; a write of
-- an equal value, spelled and printed another way, must invalidate it.
--
SET timezone = 'UTC';
SET datestyle = 'ISO, MDY';
SET intervalstyle = 'postgres';

CREATE SCHEMA spell;
CREATE COLLATION spell.ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
CREATE TYPE spell.mood AS ENUM ('sad', 'ok', 'happy');

-- One table per type: (id, c), watched with c as its partition column.
CREATE FUNCTION spell.setup(t text, ctype text, coll text DEFAULT NULL) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('CREATE TABLE spell.%I (id int PRIMARY KEY, c %s %s)', t, ctype,
                   coalesce('COLLATE ' || coll, ''));
    PERFORM housing_cache.watch_table(format('spell.%I', t)::regclass, 'c');
    PERFORM housing_cache.register_query('spell.' || t,
        format('SELECT json_agg(id ORDER BY id) FROM spell.%I WHERE c = $1', t),
        ARRAY[ctype::regtype], ARRAY[format('spell.%s/c=$1', t)]);
END
$$;

-- Read through the cache: the answer, and whether it came from the cache.
CREATE FUNCTION spell.read(t text, v text, OUT answer json, OUT cached boolean)
LANGUAGE plpgsql AS $$
BEGIN
    answer := housing_cache.fetch('spell.' || t, v);
    cached := (SELECT tier IN ('l1', 'l2') FROM housing_cache.last_lookup());
END
$$;

SELECT spell.setup('num', 'numeric');
SELECT spell.setup('flt', 'float8');
SELECT spell.setup('txt', 'text', 'spell.ci');
SELECT spell.setup('tsz', 'timestamptz');
SELECT spell.setup('dat', 'date');
SELECT spell.setup('ivl', 'interval');
SELECT spell.setup('chr', 'char(8)');
SELECT spell.setup('int', 'int');
SELECT spell.setup('enm', 'spell.mood');

INSERT INTO spell.num VALUES (1, 1.0);
INSERT INTO spell.flt VALUES (1, 0);
INSERT INTO spell.txt VALUES (1, 'Books');
INSERT INTO spell.tsz VALUES (1, '2026-01-02 00:00:00+00');
INSERT INTO spell.dat VALUES (1, '2026-01-02');
INSERT INTO spell.ivl VALUES (1, '1 day');
INSERT INTO spell.chr VALUES (1, 'ab');
INSERT INTO spell.int VALUES (1, 7);
INSERT INTO spell.enm VALUES (1, 'ok');

-- Cache each answer (the second read is a hit), read under the reader's
-- spelling and settings.
SELECT t, (spell.read(t, v)).answer, (spell.read(t, v)).cached
  FROM (VALUES ('num', '1.00'), ('flt', '-0'), ('txt', 'books'),
               ('tsz', '2026-01-02 00:00:00+00'), ('dat', '2026-01-02'),
               ('ivl', '24:00:00'), ('chr', 'ab      '), ('int', '007'),
               ('enm', 'ok')) AS r(t, v);

-- The writer: other settings, and each row written with an equal value of
-- another spelling (a new row joins the answer).
SET timezone = 'America/New_York';
SET datestyle = 'SQL, DMY';
SET intervalstyle = 'sql_standard';
SET extra_float_digits = 0;
INSERT INTO spell.num VALUES (2, 1.000);
INSERT INTO spell.flt VALUES (2, '-0');
INSERT INTO spell.txt VALUES (2, 'BOOKS');
INSERT INTO spell.tsz VALUES (2, '2026-01-01 19:00:00-05');
INSERT INTO spell.dat VALUES (2, '02/01/2026');
INSERT INTO spell.ivl VALUES (2, '1 day');
INSERT INTO spell.chr VALUES (2, 'ab ');
INSERT INTO spell.int VALUES (2, 7);
INSERT INTO spell.enm VALUES (2, 'ok');
-- how the writer's session prints what it wrote
SELECT c::text FROM spell.tsz WHERE id = 2;
SELECT c::text FROM spell.dat WHERE id = 2;

-- The reader, back in its settings: every answer has the new row.
RESET timezone;
SET timezone = 'UTC';
SET datestyle = 'ISO, MDY';
SET intervalstyle = 'postgres';
RESET extra_float_digits;
SELECT t, (spell.read(t, v)).answer
  FROM (VALUES ('num', '1.00'), ('flt', '-0'), ('txt', 'books'),
               ('tsz', '2026-01-02 00:00:00+00'), ('dat', '2026-01-02'),
               ('ivl', '24:00:00'), ('chr', 'ab      '), ('int', '007'),
               ('enm', 'ok')) AS r(t, v);

-- Updates and deletes tag the old row as well as the new one.
UPDATE spell.num SET c = 2 WHERE id = 1;
DELETE FROM spell.txt WHERE id = 2;
SELECT (spell.read('num', '1')).answer AS num_1, (spell.read('txt', 'BoOkS')).answer AS txt_books;

-- A literal in a tag template means the same value in every session.
SET timezone = 'Asia/Tokyo';
SELECT housing_cache.register_query('spell.tsz_literal',
    'SELECT json_agg(id ORDER BY id) FROM spell.tsz WHERE c = ''2026-01-02 00:00:00+00''',
    '{}', '{spell.tsz/c=2026-01-02 00:00:00+00}');
SELECT housing_cache.fetch('spell.tsz_literal') AS before;
SET timezone = 'UTC';
INSERT INTO spell.tsz VALUES (3, '2026-01-02 09:00:00+09');
SELECT housing_cache.fetch('spell.tsz_literal') AS after;

-- Types whose values cannot be spelled from their identity are refused, by
-- watch_table() and, for a column whose type changed since, by
-- register_query().
CREATE TABLE spell.js (id int PRIMARY KEY, c json, p point, t text);
SELECT housing_cache.watch_table('spell.js', 'c');
SELECT housing_cache.watch_table('spell.js', 'p');
SELECT housing_cache.watch_table('spell.js', 't');
ALTER TABLE spell.js ALTER COLUMN t TYPE json USING t::json;
SELECT housing_cache.register_query('spell.js', 'SELECT json_agg(id) FROM spell.js WHERE t::text = $1::text',
    '{json}', '{spell.js/t=$1}');
-- ... and a parameter of another type than its column.
SELECT housing_cache.register_query('spell.num_int', 'SELECT json_agg(id) FROM spell.num WHERE c = $1',
    '{int}', '{spell.num/c=$1}');

-- Clean up for the tests that follow.
SELECT count(*) AS unregistered FROM housing_cache.queries q, housing_cache.unregister_query(q.name) u
 WHERE q.name LIKE 'spell.%';
SELECT count(*) AS unwatched FROM housing_cache.watched_tables w, housing_cache.unwatch_table(w.relid) u
 WHERE w.table_tag LIKE 'spell.%';
SET client_min_messages = warning;
DROP SCHEMA spell CASCADE;
RESET client_min_messages;
