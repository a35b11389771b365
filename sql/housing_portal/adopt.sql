----------------------------------------------------------------------------
-- From housing_cache 0.1.0
----------------------------------------------------------------------------
-- housing_cache 0.1.0 carried the portal.  ALTER EXTENSION housing_cache
-- UPDATE leaves the portal's code in place, as objects of no extension, so
-- that nothing stops working meanwhile; here the portal takes them back
-- (keeping their grants), and the definitions below replace them.

DO $$
DECLARE
    engine text := (SELECT extversion FROM pg_extension WHERE extname = 'housing_cache');
    obj    record;
BEGIN
    IF engine = '0.1.0' THEN
        RAISE EXCEPTION 'housing_cache 0.1.0 still contains the housing portal'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Run ALTER EXTENSION housing_cache UPDATE first.';
    END IF;
    FOR obj IN
        SELECT v.kind, v.ident
          FROM (VALUES
                ('DOMAIN', 'api."application/json"', 'pg_type'::regclass, to_regtype('api."application/json"')::oid),
                ('FUNCTION', 'housing_cache.generate_listings(int, int)', 'pg_proc',
                 to_regprocedure('housing_cache.generate_listings(int, int)')::oid),
                ('FUNCTION', 'housing_cache.search_listings(text, bigint, bigint, int, text, int, int)', 'pg_proc',
                 to_regprocedure('housing_cache.search_listings(text, bigint, bigint, int, text, int, int)')::oid),
                ('FUNCTION', 'housing_cache.get_listing(bigint)', 'pg_proc',
                 to_regprocedure('housing_cache.get_listing(bigint)')::oid),
                ('FUNCTION', 'housing_cache.city_stats(text)', 'pg_proc',
                 to_regprocedure('housing_cache.city_stats(text)')::oid),
                ('FUNCTION', 'housing_cache.setup_api_roles(text)', 'pg_proc',
                 to_regprocedure('housing_cache.setup_api_roles(text)')::oid),
                ('FUNCTION', 'api.listings(text, bigint, bigint, int, text, int, int)', 'pg_proc',
                 to_regprocedure('api.listings(text, bigint, bigint, int, text, int, int)')::oid),
                ('FUNCTION', 'api.listing(bigint)', 'pg_proc', to_regprocedure('api.listing(bigint)')::oid),
                ('FUNCTION', 'api.city_stats(text)', 'pg_proc', to_regprocedure('api.city_stats(text)')::oid),
                ('FUNCTION', 'api.cache_stats()', 'pg_proc', to_regprocedure('api.cache_stats()')::oid),
                ('FUNCTION', 'api.update_listing(bigint, text, bigint, text, text)', 'pg_proc',
                 to_regprocedure('api.update_listing(bigint, text, bigint, text, text)')::oid))
               AS v(kind, ident, classid, objid)
         WHERE v.objid IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM pg_depend d
                            WHERE d.classid = v.classid AND d.objid = v.objid AND d.deptype = 'e')
    LOOP
        EXECUTE format('ALTER EXTENSION housing_portal ADD %s %s', obj.kind, obj.ident);
    END LOOP;
END
$$;
