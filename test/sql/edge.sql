--
-- edge: what the engine gives a shared HTTP cache (edge/README.md): edge
-- keys, the tags and stamp of an answer, the headers http_cache_headers()
-- sends, and purge_edge().  The messages themselves are tested with a
-- subscriber (test/t/006_publish.pl).
--
SET timezone = 'UTC';

-- Edge keys: "k" and the first 16 bytes of SHA-256(database, NUL, tag) in
-- hex; the expected values come from sha256sum, e.g.
--   printf 'contrib_regression\0housing.listings/city=Boston' | sha256sum
SELECT current_database();
SELECT housing_cache.edge_key('housing.listings/city=Boston') AS boston,
       housing_cache.edge_key('*') AS everything,
       housing_cache.edge_key('housing.listings/city=São Paulo') AS sao_paulo;
SELECT housing_cache.edge_key('') ~ '^k[0-9a-f]{32}$' AS empty_tag_is_a_key,
       housing_cache.edge_key(NULL) IS NULL AS null_is_null,
       housing_cache.edge_key('a b') <> housing_cache.edge_key('a  b') AS spaces_count;

-- An answer's tags: what it depends on, and the reset tag of its table.
SELECT housing_cache.search_listings('Boston', page_size => 2) IS NOT NULL AS answered;
SELECT tier IN ('miss', 'l1', 'l2') AS cached, tags,
       edge_keys = array_to_string(ARRAY(
           SELECT housing_cache.edge_key(t) FROM unnest(tags) AS t) || housing_cache.edge_key('*'), ' ')
           AS keys_are_the_tags_and_everything,
       stamp ~ '^[0-9]+/[0-9]+$' AS stamped
  FROM housing_cache.last_lookup();
SELECT housing_cache.search_listings(NULL, page_size => 2) IS NOT NULL AS answered;
SELECT tags FROM housing_cache.last_lookup();
SELECT housing_cache.get_listing(5) IS NOT NULL AS answered;
SELECT tags FROM housing_cache.last_lookup();
SELECT housing_cache.city_stats('Denver') IS NOT NULL AS answered;
SELECT tags FROM housing_cache.last_lookup();

-- The stamp counts committed invalidation messages: a write moves it on,
-- a read does not.
CREATE TEMP TABLE stamps (n int, seq bigint);
SELECT housing_cache.get_listing(5) IS NOT NULL AS answered;
INSERT INTO stamps SELECT 1, split_part(stamp, '/', 2)::bigint FROM housing_cache.last_lookup();
SELECT housing_cache.get_listing(6) IS NOT NULL AS answered;
INSERT INTO stamps SELECT 2, split_part(stamp, '/', 2)::bigint FROM housing_cache.last_lookup();
UPDATE housing.listings SET title = title WHERE id = 5;
SELECT housing_cache.get_listing(5) IS NOT NULL AS answered;
INSERT INTO stamps SELECT 3, split_part(stamp, '/', 2)::bigint FROM housing_cache.last_lookup();
SELECT (SELECT seq FROM stamps WHERE n = 2) = (SELECT seq FROM stamps WHERE n = 1) AS read_keeps_it,
       (SELECT seq FROM stamps WHERE n = 3) = (SELECT seq FROM stamps WHERE n = 2) + 1 AS write_moves_it;
-- a rolled-back write numbers nothing
BEGIN;
UPDATE housing.listings SET title = title WHERE id = 5;
ROLLBACK;
SELECT housing_cache.get_listing(5) IS NOT NULL AS answered;
SELECT split_part(stamp, '/', 2)::bigint = (SELECT seq FROM stamps WHERE n = 3) AS rollback_keeps_it
  FROM housing_cache.last_lookup();
-- purge_edge() numbers a message of its own
SELECT housing_cache.purge_edge();
SELECT housing_cache.get_listing(5) IS NOT NULL AS answered;
SELECT split_part(stamp, '/', 2)::bigint = (SELECT seq FROM stamps WHERE n = 3) + 1 AS purge_moves_it
  FROM housing_cache.last_lookup();

-- Headers: xkey and X-HC-Stamp with a cached answer, s-maxage at most the
-- entry's remaining TTL and http_shared_max_age.  (response.headers is set
-- for the transaction, as PostgREST runs each request.)
CREATE FUNCTION header(name text) RETURNS text LANGUAGE sql AS $$
    SELECT h ->> name FROM json_array_elements(current_setting('response.headers')::json) AS h
     WHERE h ->> name IS NOT NULL
$$;
BEGIN;
SELECT housing_cache.get_listing(7) IS NOT NULL AS answered;
SELECT housing_cache.http_cache_headers();
SELECT header('xkey') = (SELECT edge_keys FROM housing_cache.last_lookup()) AS xkey,
       header('X-HC-Stamp') = (SELECT stamp FROM housing_cache.last_lookup()) AS stamp,
       header('Cache-Control') ~ '^public, max-age=5, s-maxage=[0-9]+, stale-while-revalidate=[0-9]+$' AS cache_control,
       substring(header('Cache-Control') FROM 's-maxage=([0-9]+)')::int
           <= (SELECT ttl_remaining_s FROM housing_cache.last_lookup()) AS within_ttl;
COMMIT;
SET housing_cache.http_shared_max_age = '7s';
BEGIN;
SELECT housing_cache.get_listing(7) IS NOT NULL AS answered;
SELECT housing_cache.http_cache_headers();
SELECT substring(header('Cache-Control') FROM 's-maxage=([0-9]+)') AS s_maxage;
COMMIT;
SET housing_cache.http_shared_max_age = 0;
BEGIN;
SELECT housing_cache.get_listing(7) IS NOT NULL AS answered;
SELECT housing_cache.http_cache_headers();
SELECT substring(header('Cache-Control') FROM 's-maxage=([0-9]+)') AS s_maxage;
COMMIT;
RESET housing_cache.http_shared_max_age;
-- a listing that does not exist: keys (its creation purges it), no entity tag
BEGIN;
SELECT housing_cache.get_listing(987654) IS NULL AS absent;
SELECT housing_cache.http_cache_headers(false);
SELECT header('xkey') IS NOT NULL AS xkey, header('ETag') IS NULL AS no_etag;
COMMIT;
-- a bypass: nothing for the edge
BEGIN;
UPDATE housing.listings SET title = title WHERE id = 7;
SELECT housing_cache.get_listing(7) IS NOT NULL AS answered;
SELECT housing_cache.http_cache_headers();
SELECT header('xkey') IS NULL AS no_xkey, header('X-HC-Stamp') IS NULL AS no_stamp,
       header('Cache-Control') AS cache_control;
ROLLBACK;
SELECT tier, tags, edge_keys, stamp FROM housing_cache.last_lookup();

-- purge_edge() is the superuser's (or a grantee's)
CREATE ROLE edge_nobody;
SET ROLE edge_nobody;
SELECT housing_cache.purge_edge();
RESET ROLE;
DROP ROLE edge_nobody;
-- and says why it cannot work without publishing
SET housing_cache.publish = off;
SELECT housing_cache.purge_edge();
RESET housing_cache.publish;
DROP FUNCTION header(text);

-- http_request_header() reads request.headers as ->> would, and never fails
BEGIN;
SELECT set_config('request.headers', '{"if-none-match": "\"a\"", "x-n": 5, "x-obj": {"a": [1, 2]}, "x-null": null, "x-dup": "1", "x-dup": "2"}', true);
SELECT housing_cache.http_request_header('if-none-match') AS inm,
       housing_cache.http_request_header('x-n') AS n,
       housing_cache.http_request_header('x-obj') AS obj,
       housing_cache.http_request_header('x-null') IS NULL AS null_is_null,
       housing_cache.http_request_header('x-dup') AS last_wins,
       housing_cache.http_request_header('missing') IS NULL AS missing,
       housing_cache.http_request_header(NULL) IS NULL AS null_name;
SELECT set_config('request.headers', '["not", "an object"]', true);
SELECT housing_cache.http_request_header('not') IS NULL AS array_is_no_headers;
SELECT set_config('request.headers', '{"broken": ', true);
SELECT housing_cache.http_request_header('broken') IS NULL AS broken_is_no_headers;
SELECT set_config('request.headers', '{"x-min-lsn": "  0/0  "}', true);
SELECT housing_cache.http_apply_min_lsn();
SELECT current_setting('housing_cache.min_lsn') AS min_lsn_trimmed;
SELECT set_config('request.headers', '{"x-min-lsn": "nonsense"}', true);
SELECT housing_cache.http_apply_min_lsn();
ROLLBACK;
