----------------------------------------------------------------------------
-- Invalidation
----------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION housing_cache.invalidation_trigger()
RETURNS trigger
AS 'MODULE_PATHNAME', 'housing_cache_invalidation_trigger'
LANGUAGE C;
COMMENT ON FUNCTION housing_cache.invalidation_trigger() IS
    'Row/TRUNCATE trigger attached by housing_cache.watch_table()';

CREATE OR REPLACE FUNCTION housing_cache.invalidate(tag text)
RETURNS void
AS 'MODULE_PATHNAME', 'housing_cache_invalidate'
LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION housing_cache.invalidate(text) IS
    'Invalidate a tag when the current transaction commits; a table tag (e.g. ''housing.listings'') invalidates every answer depending on that table';
REVOKE ALL ON FUNCTION housing_cache.invalidate(text) FROM PUBLIC;
