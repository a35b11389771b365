--
-- keys: an answer is text printed for the session's output settings
-- (TimeZone, DateStyle, IntervalStyle, extra_float_digits, bytea_output),
-- so they are part of its key; and its entity tag, taken from the key, lets
-- a caller that holds the answer skip it with if_none_match().
-- Keys and entity tags differ from run to run: only whether they are there,
-- and whether they are equal, is printed.
--
SET timezone = 'UTC';

--
-- time zones
--
SELECT housing_cache.get_listing(1) ->> 'created_at' AS created_at,
       housing_cache.get_listing(1) ->> 'updated_at' AS updated_at;
SET timezone = 'America/Denver';
SELECT housing_cache.get_listing(1) ->> 'created_at' AS created_at,
       housing_cache.get_listing(1) ->> 'updated_at' AS updated_at;
SET timezone = 'Asia/Kolkata';
SELECT housing_cache.get_listing(1) ->> 'created_at' AS created_at,
       housing_cache.get_listing(1) ->> 'updated_at' AS updated_at;
SELECT e ->> 'id' AS id, e ->> 'created_at' AS created_at
  FROM json_array_elements(housing_cache.search_listings('Denver', page_size => 2) -> 'items') AS e;
SET timezone = 'UTC';
SELECT housing_cache.get_listing(1) ->> 'created_at' AS created_at,
       housing_cache.get_listing(1) ->> 'updated_at' AS updated_at;
SELECT e ->> 'id' AS id, e ->> 'created_at' AS created_at
  FROM json_array_elements(housing_cache.search_listings('Denver', page_size => 2) -> 'items') AS e;
-- whatever the zone, the answer is what SQL prints
SELECT bool_and(housing_cache.get_listing(l.id)::jsonb = to_jsonb(l)) AS as_sql
  FROM housing.listings l WHERE l.id <= 5;
SET timezone = 'America/Denver';
SELECT bool_and(housing_cache.get_listing(l.id)::jsonb = to_jsonb(l)) AS as_sql
  FROM housing.listings l WHERE l.id <= 5;
SET timezone = 'Pacific/Chatham';
SELECT bool_and(housing_cache.get_listing(l.id)::jsonb = to_jsonb(l)) AS as_sql
  FROM housing.listings l WHERE l.id <= 5;
SET timezone = 'UTC';
SELECT bool_and(housing_cache.get_listing(l.id)::jsonb = to_jsonb(l)) AS as_sql
  FROM housing.listings l WHERE l.id <= 5;

--
-- the other output settings, through a query of one's own
--
CREATE TABLE public.samples (
    id     integer     PRIMARY KEY,
    ratio  float8      NOT NULL,
    span   interval    NOT NULL,
    blob   bytea       NOT NULL,
    at     timestamptz NOT NULL
);
INSERT INTO public.samples VALUES
    (1, 1.0 / 3, interval '1 day 2 hours 3 minutes', '\x00ff', '2026-01-02 03:04:05+00');
SELECT housing_cache.watch_table('public.samples');
SELECT housing_cache.register_query('keys.sample',
    $$SELECT json_build_object('ratio', s.ratio, 'span', s.span, 'blob', s.blob,
                               'at', s.at, 'at_text', s.at::text)
        FROM public.samples s WHERE s.id = $1$$,
    '{integer}', '{public.samples/id=$1}');
SELECT housing_cache.fetch('keys.sample', '1');
SET extra_float_digits = -3;
SELECT housing_cache.fetch('keys.sample', '1') -> 'ratio' AS ratio;
SET IntervalStyle = iso_8601;
SELECT housing_cache.fetch('keys.sample', '1') -> 'span' AS span;
SET bytea_output = escape;
SELECT housing_cache.fetch('keys.sample', '1') -> 'blob' AS blob;
SET DateStyle = 'SQL, DMY';
SELECT housing_cache.fetch('keys.sample', '1') -> 'at_text' AS at_text;
SET DateStyle = 'SQL, MDY';
SELECT housing_cache.fetch('keys.sample', '1') -> 'at_text' AS at_text;
SET timezone = 'Europe/Paris';
SELECT housing_cache.fetch('keys.sample', '1');
RESET extra_float_digits;
RESET IntervalStyle;
RESET bytea_output;
RESET DateStyle;
SET timezone = 'UTC';
SELECT housing_cache.fetch('keys.sample', '1');

--
-- entity tags
--
-- a call that is answered has a key, and an entity tag: the key's digest,
-- quoted
SELECT housing_cache.get_listing(1) ->> 'id' AS id;
SELECT tier <> 'bypass' AS cached, key IS NOT NULL AS has_key, etag IS NOT NULL AS has_etag,
       etag = '"' || right(key, length(etag) - 2) || '"' AS from_key,
       ttl_remaining_s > 0 AS ttl_left
  FROM housing_cache.last_lookup();
CREATE TEMP TABLE etags (what text PRIMARY KEY, etag text NOT NULL);
INSERT INTO etags SELECT 'listing 1', etag FROM housing_cache.last_lookup();
-- the same call, the same entity tag; another call, another
SELECT housing_cache.get_listing(1) ->> 'id' AS id;
SELECT etag = (SELECT etag FROM etags WHERE what = 'listing 1') AS same
  FROM housing_cache.last_lookup();
SELECT housing_cache.get_listing(2) ->> 'id' AS id;
SELECT etag <> (SELECT etag FROM etags WHERE what = 'listing 1') AS other
  FROM housing_cache.last_lookup();
INSERT INTO etags SELECT 'listing 2', etag FROM housing_cache.last_lookup();

--
-- if_none_match
--
-- It applies to the next cached call of the same transaction.
-- The entity tag of the answer: that call returns NULL, not_modified.
BEGIN;
SELECT housing_cache.if_none_match((SELECT etag FROM etags WHERE what = 'listing 1'));
SELECT housing_cache.get_listing(1) IS NULL AS no_answer;
SELECT tier, bypass_reason, etag = (SELECT etag FROM etags WHERE what = 'listing 1') AS same,
       ttl_remaining_s > 0 AS ttl_left
  FROM housing_cache.last_lookup();
-- for the next call only
SELECT housing_cache.get_listing(1) ->> 'id' AS id;
SELECT tier <> 'not_modified' AS answered FROM housing_cache.last_lookup();
COMMIT;
-- not past the end of its transaction
SELECT housing_cache.if_none_match((SELECT etag FROM etags WHERE what = 'listing 1'));
SELECT housing_cache.get_listing(1) ->> 'id' AS id;
SELECT tier <> 'not_modified' AS answered FROM housing_cache.last_lookup();
BEGIN;
SELECT housing_cache.if_none_match((SELECT etag FROM etags WHERE what = 'listing 1'));
ROLLBACK;
SELECT housing_cache.get_listing(1) ->> 'id' AS id;
SELECT tier <> 'not_modified' AS answered FROM housing_cache.last_lookup();
-- another entity tag, or none: the answer
BEGIN;
SELECT housing_cache.if_none_match('"00000000000000000000000000000000"');
SELECT housing_cache.get_listing(1) ->> 'id' AS id;
SELECT tier <> 'not_modified' AS answered FROM housing_cache.last_lookup();
SELECT housing_cache.if_none_match('not an entity tag');
SELECT housing_cache.get_listing(1) ->> 'id' AS id;
SELECT tier <> 'not_modified' AS answered FROM housing_cache.last_lookup();
SELECT housing_cache.if_none_match('');
SELECT housing_cache.get_listing(1) ->> 'id' AS id;
SELECT tier <> 'not_modified' AS answered FROM housing_cache.last_lookup();
COMMIT;
-- a call it does not match uses it up
BEGIN;
SELECT housing_cache.if_none_match((SELECT etag FROM etags WHERE what = 'listing 1'));
SELECT housing_cache.get_listing(2) ->> 'id' AS id;
SELECT housing_cache.get_listing(1) ->> 'id' AS id;
SELECT tier <> 'not_modified' AS answered FROM housing_cache.last_lookup();
COMMIT;
-- a list of entity tags, weak ones too (If-None-Match compares them alike)
BEGIN;
SELECT housing_cache.if_none_match('"00000000000000000000000000000000", '
                                   || (SELECT etag FROM etags WHERE what = 'listing 1'));
SELECT housing_cache.get_listing(1) IS NULL AS no_answer;
SELECT tier FROM housing_cache.last_lookup();
SELECT housing_cache.if_none_match((SELECT string_agg('W/' || etag, ', ' ORDER BY what DESC)
                                      FROM etags));
SELECT housing_cache.get_listing(1) IS NULL AS no_answer;
SELECT tier FROM housing_cache.last_lookup();
SELECT housing_cache.if_none_match((SELECT string_agg(etag, ',' ORDER BY what) FROM etags));
SELECT housing_cache.get_listing(2) IS NULL AS no_answer;
SELECT tier FROM housing_cache.last_lookup();
-- NULL forgets it
SELECT housing_cache.if_none_match((SELECT etag FROM etags WHERE what = 'listing 1'));
SELECT housing_cache.if_none_match(NULL);
SELECT housing_cache.get_listing(1) ->> 'id' AS id;
SELECT tier <> 'not_modified' AS answered FROM housing_cache.last_lookup();
COMMIT;
-- an answer printed for another time zone is another answer
SET timezone = 'Asia/Tokyo';
BEGIN;
SELECT housing_cache.if_none_match((SELECT etag FROM etags WHERE what = 'listing 1'));
SELECT housing_cache.get_listing(1) ->> 'created_at' AS created_at;
SELECT tier <> 'not_modified' AS answered,
       etag <> (SELECT etag FROM etags WHERE what = 'listing 1') AS other
  FROM housing_cache.last_lookup();
COMMIT;
SET timezone = 'UTC';
-- a committed write changes the entity tag: the client's copy is old
UPDATE housing.listings SET title = title WHERE id = 1;
BEGIN;
SELECT housing_cache.if_none_match((SELECT etag FROM etags WHERE what = 'listing 1'));
SELECT housing_cache.get_listing(1) ->> 'title' AS title;
SELECT tier <> 'not_modified' AS answered,
       etag <> (SELECT etag FROM etags WHERE what = 'listing 1') AS other
  FROM housing_cache.last_lookup();
COMMIT;
UPDATE etags SET etag = (SELECT etag FROM housing_cache.last_lookup()) WHERE what = 'listing 1';
BEGIN;
SELECT housing_cache.if_none_match((SELECT etag FROM etags WHERE what = 'listing 1'));
SELECT housing_cache.get_listing(1) IS NULL AS no_answer;
SELECT tier FROM housing_cache.last_lookup();
COMMIT;
-- a call that bypasses the cache has no entity tag, and always answers
BEGIN;
UPDATE housing.listings SET title = title WHERE id = 1;
SELECT housing_cache.if_none_match((SELECT etag FROM etags WHERE what = 'listing 1'));
SELECT housing_cache.get_listing(1) ->> 'id' AS id;
SELECT tier, bypass_reason, key IS NULL AS no_key, etag IS NULL AS no_etag
  FROM housing_cache.last_lookup();
ROLLBACK;
SET housing_cache.enabled = off;
BEGIN;
SELECT housing_cache.if_none_match((SELECT etag FROM etags WHERE what = 'listing 1'));
SELECT housing_cache.get_listing(1) ->> 'id' AS id;
SELECT tier, bypass_reason, etag IS NULL AS no_etag FROM housing_cache.last_lookup();
COMMIT;
RESET housing_cache.enabled;
-- every cached function and fetch()
SELECT housing_cache.search_listings('Boston', page_size => 3) -> 'total' AS total;
BEGIN;
SELECT housing_cache.if_none_match((SELECT etag FROM housing_cache.last_lookup()));
SELECT housing_cache.search_listings('Boston', page_size => 3) IS NULL AS no_answer;
SELECT tier FROM housing_cache.last_lookup();
COMMIT;
SELECT housing_cache.search_listings('Boston', page_size => 4) -> 'total' AS total;
SELECT housing_cache.city_stats('Denver') -> 'active_count' AS active;
BEGIN;
SELECT housing_cache.if_none_match((SELECT etag FROM housing_cache.last_lookup()));
SELECT housing_cache.city_stats('Denver') IS NULL AS no_answer;
SELECT tier FROM housing_cache.last_lookup();
COMMIT;
SELECT housing_cache.fetch('keys.sample', '1') -> 'ratio' AS ratio;
BEGIN;
SELECT housing_cache.if_none_match((SELECT etag FROM housing_cache.last_lookup()));
SELECT housing_cache.fetch('keys.sample', '1') IS NULL AS no_answer;
SELECT tier FROM housing_cache.last_lookup();
SELECT housing_cache.fetch('keys.sample', '1') -> 'ratio' AS ratio;
COMMIT;
-- a value over 64 kB (legal HTTP, but no client of ours sends one) is no
-- condition: the next call answers, even if the value names its etag
SELECT housing_cache.city_stats('Denver') -> 'active_count' AS active;
BEGIN;
SELECT housing_cache.if_none_match(
    (SELECT etag FROM housing_cache.last_lookup()) || repeat(', "x"', 20000));
SELECT housing_cache.city_stats('Denver') IS NULL AS no_answer;
COMMIT;

--
-- clean up
--
SELECT housing_cache.unregister_query('keys.sample');
SELECT housing_cache.unwatch_table('public.samples');
DROP TABLE public.samples;
