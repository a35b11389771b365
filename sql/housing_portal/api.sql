----------------------------------------------------------------------------
-- HTTP API (schema api)
----------------------------------------------------------------------------
-- The schema PostgREST exposes (PGRST_DB_SCHEMAS=api), and the development
-- server under http/ serves the same way.  Every function returns the domain
-- api."application/json", which makes it PostgREST's handler for that media
-- type: the body is the function's json value as it is, with no aggregate
-- around it.  The cached reads pass the request's If-None-Match to the
-- engine and answer with its cache headers (housing_cache.http_cache_headers).
-- Roles: housing_cache.setup_api_roles().
--
-- The schema itself, like the portal's data, is the database's own and not
-- part of the extension (DROP EXTENSION leaves it, empty): pg_dump then
-- dumps it, and pg_restore creates it (and schema housing) before the
-- extensions.  A schema of the extension's own would be restored after
-- them, and so would every other schema that sorts after it.

DO $$
BEGIN
    IF to_regnamespace('api') IS NULL THEN
        CREATE SCHEMA api;
        COMMENT ON SCHEMA api IS
            'HTTP API of the housing portal (exposed by PostgREST); privileges come from housing_cache.setup_api_roles()';
        ALTER EXTENSION housing_portal DROP SCHEMA api;
    END IF;
END
$$;

DO $$
BEGIN
    IF to_regtype('api."application/json"') IS NULL THEN
        CREATE DOMAIN api."application/json" AS json;
    END IF;
END
$$;
COMMENT ON DOMAIN api."application/json" IS
    'Return type of the api functions: PostgREST sends the value as the response body, Content-Type application/json';

CREATE OR REPLACE FUNCTION api.listings(
    city text DEFAULT NULL,
    min_price_cents bigint DEFAULT NULL,
    max_price_cents bigint DEFAULT NULL,
    min_bedrooms int DEFAULT NULL,
    sort text DEFAULT 'newest',
    page int DEFAULT 1,
    page_size int DEFAULT 20)
RETURNS api."application/json"
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    result json;
BEGIN
    PERFORM housing_cache.http_apply_min_lsn();
    PERFORM housing_cache.if_none_match(housing_cache.http_request_header('if-none-match'));
    result := housing_cache.search_listings(
        city => city, min_price_cents => min_price_cents,
        max_price_cents => max_price_cents, min_bedrooms => min_bedrooms,
        sort => sort, page => page, page_size => page_size);
    PERFORM housing_cache.http_cache_headers();
    RETURN result;
END
$function$;
COMMENT ON FUNCTION api.listings(text, bigint, bigint, int, text, int, int) IS
    'GET /rpc/listings: housing_cache.search_listings() with ETag, Cache-Control, X-Cache and Server-Timing; 304 for a current If-None-Match; 400 (22023) for an argument out of range';

CREATE OR REPLACE FUNCTION api.listing(id bigint)
RETURNS api."application/json"
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    result json;
    tier   text;
BEGIN
    IF id IS NULL THEN
        RAISE EXCEPTION 'id is required' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM housing_cache.http_apply_min_lsn();
    PERFORM housing_cache.if_none_match(housing_cache.http_request_header('if-none-match'));
    result := housing_cache.get_listing(id);
    -- NULL is either "not modified" or "no such listing": the tier tells
    SELECT l.tier INTO tier FROM housing_cache.last_lookup() l;
    IF result IS NULL AND tier IS DISTINCT FROM 'not_modified' THEN
        PERFORM housing_cache.http_cache_headers(has_entity => false);
        RETURN housing_cache.http_error(404, 'HC404', format('listing %s not found', id));
    END IF;
    PERFORM housing_cache.http_cache_headers();
    RETURN result;
END
$function$;
COMMENT ON FUNCTION api.listing(bigint) IS
    'GET /rpc/listing?id=N: every column of one listing (housing_cache.get_listing()) with cache headers; 404 {"code":"HC404"} when there is no such listing; 304 for a current If-None-Match';

CREATE OR REPLACE FUNCTION api.city_stats(city text)
RETURNS api."application/json"
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    result json;
BEGIN
    IF city IS NULL THEN
        RAISE EXCEPTION 'city is required' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM housing_cache.http_apply_min_lsn();
    PERFORM housing_cache.if_none_match(housing_cache.http_request_header('if-none-match'));
    result := housing_cache.city_stats(city);
    PERFORM housing_cache.http_cache_headers();
    RETURN result;
END
$function$;
COMMENT ON FUNCTION api.city_stats(text) IS
    'GET /rpc/city_stats?city=X: housing_cache.city_stats() with cache headers; 304 for a current If-None-Match';

CREATE OR REPLACE FUNCTION api.cache_stats()
RETURNS api."application/json"
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $function$
BEGIN
    PERFORM pg_catalog.set_config('response.headers',
        json_build_array(json_build_object('Cache-Control', 'no-store'))::text, true);
    RETURN (SELECT row_to_json(s) FROM housing_cache.stats s);
END
$function$;
COMMENT ON FUNCTION api.cache_stats() IS
    'GET /rpc/cache_stats: the row of housing_cache.stats as a JSON object, never cached (Cache-Control: no-store)';

CREATE OR REPLACE FUNCTION api.update_listing(
    id bigint,
    title text DEFAULT NULL,
    price_cents bigint DEFAULT NULL,
    status text DEFAULT NULL,
    description text DEFAULT NULL)
RETURNS api."application/json"
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    result json;
BEGIN
    IF update_listing.id IS NULL THEN
        RAISE EXCEPTION 'id is required' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF update_listing.title IS NOT NULL AND btrim(update_listing.title) = '' THEN
        RAISE EXCEPTION 'title must not be empty' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF update_listing.price_cents < 0 THEN
        RAISE EXCEPTION 'price_cents must not be negative'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF update_listing.status NOT IN ('active', 'pending', 'sold') THEN
        RAISE EXCEPTION 'status must be one of active, pending, sold'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    IF num_nonnulls(update_listing.title, update_listing.price_cents,
                    update_listing.status, update_listing.description) = 0 THEN
        -- nothing to change: the listing as it is
        SELECT row_to_json(l) INTO result
          FROM housing.listings l WHERE l.id = update_listing.id;
    ELSE
        UPDATE housing.listings AS l
           SET title       = coalesce(update_listing.title, l.title),
               price_cents = coalesce(update_listing.price_cents, l.price_cents),
               status      = coalesce(update_listing.status, l.status),
               description = coalesce(update_listing.description, l.description),
               updated_at  = now()
         WHERE l.id = update_listing.id
        RETURNING row_to_json(l) INTO result;
    END IF;

    IF result IS NULL THEN
        RETURN housing_cache.http_error(404, 'HC404',
                                        format('listing %s not found', update_listing.id));
    END IF;
    PERFORM pg_catalog.set_config('response.headers',
        json_build_array(json_build_object('Cache-Control', 'no-store'))::text, true);
    RETURN result;
END
$function$;
COMMENT ON FUNCTION api.update_listing(bigint, text, bigint, text, text) IS
    'POST /rpc/update_listing (web_editor only): change the given fields of a listing and return it; 404 {"code":"HC404"} when there is no such listing; 400 (22023) for a negative price or an unknown status';

CREATE OR REPLACE FUNCTION api.wal_lsn()
RETURNS api."application/json"
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $function$
BEGIN
    PERFORM pg_catalog.set_config('response.headers',
        json_build_array(json_build_object('Cache-Control', 'no-store'))::text, true);
    RETURN json_build_object('lsn', pg_catalog.pg_current_wal_insert_lsn()::text);
END
$function$;
COMMENT ON FUNCTION api.wal_lsn() IS
    'POST /rpc/wal_lsn (web_editor only): {"lsn": the primary''s WAL insert position}, at or after the commit of every write that returned before it was asked: what a client that wrote sends as X-Min-LSN when its server (PostgREST) answers writes without X-Commit-LSN; 55000 on a standby';

-- Nothing in schema api is PUBLIC's: setup_api_roles() grants to web_anon
-- and web_editor.
REVOKE ALL ON FUNCTION api.listings(text, bigint, bigint, int, text, int, int) FROM PUBLIC;
REVOKE ALL ON FUNCTION api.listing(bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION api.city_stats(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION api.cache_stats() FROM PUBLIC;
REVOKE ALL ON FUNCTION api.update_listing(bigint, text, bigint, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION api.wal_lsn() FROM PUBLIC;
REVOKE ALL ON DOMAIN api."application/json" FROM PUBLIC;
