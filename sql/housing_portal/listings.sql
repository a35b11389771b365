----------------------------------------------------------------------------
-- The cached listing queries' entry points
----------------------------------------------------------------------------
-- Each checks its arguments (22023 for anything out of range) and serves one
-- of the portal's registered queries through the engine.

CREATE OR REPLACE FUNCTION housing_cache.search_listings(
    city text DEFAULT NULL,
    min_price_cents bigint DEFAULT NULL,
    max_price_cents bigint DEFAULT NULL,
    min_bedrooms int DEFAULT NULL,
    sort text DEFAULT 'newest',
    page int DEFAULT 1,
    page_size int DEFAULT 20)
RETURNS json
AS 'MODULE_PATHNAME', 'housing_cache_search_listings'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION housing_cache.search_listings(text, bigint, bigint, int, text, int, int) IS
    'Active listings, filtered, sorted (newest, price_asc, price_desc; ties by id) and paginated (page_size at most 100), as JSON';

CREATE OR REPLACE FUNCTION housing_cache.get_listing(listing_id bigint)
RETURNS json
AS 'MODULE_PATHNAME', 'housing_cache_get_listing'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION housing_cache.get_listing(bigint) IS
    'Every column of one listing as JSON; NULL when there is no such listing';

CREATE OR REPLACE FUNCTION housing_cache.city_stats(city text)
RETURNS json
AS 'MODULE_PATHNAME', 'housing_cache_city_stats'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION housing_cache.city_stats(text) IS
    'Active listing count, average and median price, and count and median price by bedrooms, for one city, as JSON';
