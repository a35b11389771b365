----------------------------------------------------------------------------
-- HTTP: conditional requests and PostgREST's request and response settings
----------------------------------------------------------------------------
-- For functions that serve cached answers over HTTP through PostgREST (or
-- any server that passes requests the same way): the request's
-- If-None-Match header becomes housing_cache.if_none_match() before the
-- cached call, and http_cache_headers() after it answers with the entity
-- tag, freshness and tier of the answer in response.headers (and 304 in
-- response.status when the client's copy is current).

CREATE OR REPLACE FUNCTION housing_cache.if_none_match(etags text)
RETURNS void
AS 'MODULE_PATHNAME', 'housing_cache_if_none_match'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION housing_cache.if_none_match(text) IS
    'For the next cached call of this session: if its answer has one of these entity tags (an HTTP If-None-Match value), return NULL without fetching and report tier not_modified';

-- A request header (lower-case name) from PostgREST's request.headers, or
-- NULL when there is no such header or no request.headers at all (a plain SQL
-- caller) or it is not a JSON object.
CREATE OR REPLACE FUNCTION housing_cache.http_request_header(name text)
RETURNS text
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    headers text := current_setting('request.headers', true);
BEGIN
    IF headers IS NULL OR headers = '' OR name IS NULL THEN
        RETURN NULL;
    END IF;
    BEGIN
        RETURN CASE WHEN json_typeof(headers::json) = 'object'
                    THEN headers::json ->> name END;
    EXCEPTION WHEN invalid_text_representation THEN
        RETURN NULL;            -- not JSON: as if there were no headers
    END;
END
$function$;
COMMENT ON FUNCTION housing_cache.http_request_header(text) IS
    'The value of a request header (lower-case name) in request.headers as PostgREST sets it; NULL when absent or unreadable';

-- The HTTP edge (edge/README.md): the key a shared cache knows a tag by, and
-- a purge of everything of this database at commit.
CREATE OR REPLACE FUNCTION housing_cache.edge_key(tag text)
RETURNS text
AS 'MODULE_PATHNAME', 'housing_cache_edge_key'
LANGUAGE C STRICT STABLE;
COMMENT ON FUNCTION housing_cache.edge_key(text) IS
    'The edge key of a tag in this database: "k" and the first 16 bytes of SHA-256(database, NUL, tag) in hex, as xkey headers and purgers spell it';

CREATE OR REPLACE FUNCTION housing_cache.purge_edge()
RETURNS void
AS 'MODULE_PATHNAME', 'housing_cache_purge_edge'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION housing_cache.purge_edge() IS
    'When this transaction commits, its invalidation message names "*": purgers drop every answer of this database from the edge (after a change tags cannot express, such as a revoked privilege)';
REVOKE ALL ON FUNCTION housing_cache.purge_edge() FROM PUBLIC;

-- After a cached call: set response.headers (ETag, Cache-Control, X-Cache,
-- Server-Timing, and for the HTTP edge xkey and X-HC-Stamp) from
-- housing_cache.last_lookup(), and response.status 304
-- when the call matched If-None-Match.  has_entity = false (a listing that does
-- not exist) sends no entity tag.  Returns the tier.
CREATE OR REPLACE FUNCTION housing_cache.http_cache_headers(has_entity boolean DEFAULT true)
RETURNS text
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    lk         record;
    max_age    int;
    shared     text := '';
    headers    json[];
BEGIN
    SELECT * INTO lk FROM housing_cache.last_lookup();

    -- housing_cache.http_max_age is shown with a unit ('5s', '2min', '1h'),
    -- which reads as an interval; 5 seconds if the library is not loaded.
    max_age := coalesce(extract(epoch FROM
                   current_setting('housing_cache.http_max_age', true)::interval)::int, 5);
    IF lk.ttl_remaining_s IS NOT NULL THEN
        max_age := least(max_age, lk.ttl_remaining_s);
    END IF;

    -- A shared cache purged by tag (edge/README.md) may keep a stamped
    -- answer up to http_shared_max_age, never past its TTL.
    IF lk.stamp IS NOT NULL THEN
        shared := format(', s-maxage=%s', least(
            coalesce(extract(epoch FROM
                current_setting('housing_cache.http_shared_max_age', true)::interval)::int, 0),
            coalesce(lk.ttl_remaining_s, 0)));
    END IF;

    IF lk.tier IS NULL OR lk.tier = 'bypass' OR lk.etag IS NULL THEN
        -- computed without the cache: nothing to revalidate against
        headers := ARRAY[json_build_object('Cache-Control', 'no-cache')];
    ELSIF NOT has_entity THEN
        headers := ARRAY[json_build_object('Cache-Control',
                        format('public, max-age=%s%s', max_age, shared))];
    ELSE
        headers := ARRAY[
            json_build_object('ETag', lk.etag),
            json_build_object('Cache-Control',
                format('public, max-age=%s%s, stale-while-revalidate=%s',
                       max_age, shared, coalesce(lk.ttl_remaining_s, 0)))];
    END IF;

    headers := headers || ARRAY[
        json_build_object('X-Cache',
            CASE lk.tier WHEN 'l1' THEN 'L1'
                         WHEN 'l2' THEN 'L2'
                         WHEN 'miss' THEN 'MISS'
                         WHEN 'not_modified' THEN 'HIT'
                         ELSE 'BYPASS' END),
        json_build_object('Server-Timing',
            format('cache;desc="%s";dur=%s', coalesce(lk.tier, 'none'),
                   to_char(coalesce(lk.elapsed_us, 0) / 1000.0, 'FM9999999990.000')))];
    -- for the HTTP edge: the answer's keys, and its stamp (edge/README.md)
    IF lk.tier IS DISTINCT FROM 'bypass' AND lk.edge_keys IS NOT NULL THEN
        headers := headers || ARRAY[json_build_object('xkey', lk.edge_keys)];
        IF lk.stamp IS NOT NULL THEN
            headers := headers || ARRAY[json_build_object('X-HC-Stamp', lk.stamp)];
        END IF;
    END IF;

    PERFORM pg_catalog.set_config('response.headers', array_to_json(headers)::text, true);
    IF lk.tier = 'not_modified' THEN
        PERFORM pg_catalog.set_config('response.status', '304', true);
    END IF;
    RETURN lk.tier;
END
$function$;
COMMENT ON FUNCTION housing_cache.http_cache_headers(boolean) IS
    'Set response.headers (ETag, Cache-Control, X-Cache, Server-Timing, xkey, X-HC-Stamp) and, for a matched If-None-Match, response.status 304, from last_lookup(); returns the tier';

-- An error answered as PostgREST answers errors, with an HTTP status of our
-- choosing (404 for a listing that does not exist).
CREATE OR REPLACE FUNCTION housing_cache.http_error(status int, code text, message text)
RETURNS json
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $function$
BEGIN
    PERFORM pg_catalog.set_config('response.status', status::text, true);
    RETURN json_build_object('code', code, 'message', message,
                             'details', NULL, 'hint', NULL);
END
$function$;
COMMENT ON FUNCTION housing_cache.http_error(int, text, text) IS
    'Set response.status and return a PostgREST-style error body {code, message, details, hint}';

-- Before a cached read: the request's X-Min-LSN header (the X-Commit-LSN a
-- write answered with) becomes housing_cache.min_lsn for this transaction,
-- so that on a standby the read first waits until replay has passed it
-- (and fails with 53HC0, which PostgREST answers with 503, past
-- housing_cache.min_lsn_wait_ms).  A malformed value is refused (22023).
CREATE OR REPLACE FUNCTION housing_cache.http_apply_min_lsn()
RETURNS void
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    lsn text := housing_cache.http_request_header('x-min-lsn');
BEGIN
    IF lsn IS NOT NULL AND btrim(lsn) <> '' THEN
        PERFORM pg_catalog.set_config('housing_cache.min_lsn', btrim(lsn), true);
    END IF;
END
$function$;
COMMENT ON FUNCTION housing_cache.http_apply_min_lsn() IS
    'Set housing_cache.min_lsn for this transaction from the request header X-Min-LSN (read your own writes on a standby)';
