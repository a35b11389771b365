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
AS 'MODULE_PATHNAME', 'housing_cache_http_request_header'
LANGUAGE C STABLE;
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
AS 'MODULE_PATHNAME', 'housing_cache_http_cache_headers'
LANGUAGE C VOLATILE;
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
AS 'MODULE_PATHNAME', 'housing_cache_http_apply_min_lsn'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION housing_cache.http_apply_min_lsn() IS
    'Set housing_cache.min_lsn for this transaction from the request header X-Min-LSN (read your own writes on a standby)';
