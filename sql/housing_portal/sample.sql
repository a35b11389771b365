----------------------------------------------------------------------------
-- Sample data
----------------------------------------------------------------------------

-- Deterministic, realistic sample data.
-- housing_cache.generate_listings(n, seed): deterministic sample data.
--
-- Every value of row number i is derived from
--     hashint8extended(i, seed * 64 + field)
-- with a distinct constant per field, so the rows depend only on (i, seed)
-- and never on execution order, now() or random().  Cities, bedroom mix and
-- property types are small VALUES lists, turned into arrays once per call;
-- the load is a single INSERT ... SELECT over generate_series with no joins
-- and no sort, so rows arrive in row-number order: on an empty table whose
-- id sequence was reset (TRUNCATE ... RESTART IDENTITY) the ids match too.
-- The first k rows of a run with n >= k equal the run with n = k.

CREATE OR REPLACE FUNCTION housing_cache.generate_listings(n int, seed int DEFAULT 1)
RETURNS bigint
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    -- seed * 64 + field gives every (seed, field) pair its own hash seed.
    s        bigint;
    inserted bigint;
BEGIN
    IF n IS NULL THEN
        RAISE EXCEPTION 'housing_cache.generate_listings: argument "n" must not be NULL'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF seed IS NULL THEN
        RAISE EXCEPTION 'housing_cache.generate_listings: argument "seed" must not be NULL'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF n < 0 OR n > 10000000 THEN
        RAISE EXCEPTION 'housing_cache.generate_listings: argument "n" must be between 0 and 10000000, got %', n
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF n = 0 THEN
        RETURN 0;
    END IF;

    s := seed::bigint * 64;

    INSERT INTO housing.listings
        (title, description, city, neighborhood, price_cents, bedrooms,
         bathrooms, area_sqm, status, lat, lon, created_at, updated_at)
    WITH
    -- weight: share of listings in 1/10000 (sums to 10000, Zipf-like by
    -- population rank); ppsqm and base_usd: price level in US dollars.
    cities (idx, name, weight, lat, lon, ppsqm, base_usd, hoods) AS (
        VALUES
        ( 1, 'New York',      1500, 40.7128,  -74.0060, 10500, 120000,
          'Upper West Side|Harlem|Williamsburg|Park Slope|Astoria|Chelsea|Tribeca|Long Island City'),
        ( 2, 'Los Angeles',   1200, 34.0522, -118.2437,  8300, 100000,
          'Silver Lake|Echo Park|Koreatown|Venice|Westwood|Hollywood|Highland Park'),
        ( 3, 'Chicago',        990, 41.8781,  -87.6298,  3300,  60000,
          'Lincoln Park|Wicker Park|Logan Square|Hyde Park|Lakeview|River North|Pilsen'),
        ( 4, 'Houston',        830, 29.7604,  -95.3698,  2300,  50000,
          'Montrose|The Heights|Midtown|River Oaks|Rice Military|EaDo'),
        ( 5, 'Phoenix',        700, 33.4484, -112.0740,  3000,  50000,
          'Arcadia|Roosevelt Row|Ahwatukee|Encanto|Biltmore|Maryvale'),
        ( 6, 'Philadelphia',   610, 39.9526,  -75.1652,  2700,  50000,
          'Rittenhouse Square|Fishtown|Northern Liberties|Old City|Manayunk|Fairmount|Queen Village'),
        ( 7, 'San Antonio',    530, 29.4241,  -98.4936,  2100,  45000,
          'Alamo Heights|King William|Southtown|Stone Oak|Tobin Hill|Monte Vista'),
        ( 8, 'San Diego',      475, 32.7157, -117.1611,  8000, 100000,
          'Gaslamp Quarter|La Jolla|North Park|Pacific Beach|Hillcrest|Ocean Beach|Little Italy'),
        ( 9, 'Dallas',         425, 32.7767,  -96.7970,  3000,  55000,
          'Uptown|Deep Ellum|Bishop Arts District|Lakewood|Oak Lawn|Lower Greenville'),
        (10, 'Austin',         380, 30.2672,  -97.7431,  4300,  70000,
          'South Congress|Hyde Park|East Austin|Zilker|Mueller|Travis Heights|Clarksville'),
        (11, 'Boston',         340, 42.3601,  -71.0589,  8800, 110000,
          'Back Bay|Beacon Hill|South End|Jamaica Plain|Charlestown|Dorchester|North End|Fenway'),
        (12, 'Denver',         310, 39.7392, -104.9903,  5000,  80000,
          'Capitol Hill|LoDo|Highlands|Cherry Creek|RiNo|Washington Park|Baker'),
        (13, 'Seattle',        285, 47.6062, -122.3321,  7800, 100000,
          'Capitol Hill|Ballard|Fremont|Queen Anne|Wallingford|Columbia City|Belltown'),
        (14, 'Miami',          260, 25.7617,  -80.1918,  5800,  80000,
          'Brickell|Wynwood|Little Havana|Coconut Grove|Edgewater|Design District'),
        (15, 'Portland',       240, 45.5152, -122.6784,  4600,  70000,
          'Pearl District|Alberta Arts District|Hawthorne|Sellwood|Nob Hill|St. Johns|Laurelhurst'),
        (16, 'Atlanta',        220, 33.7490,  -84.3880,  3400,  60000,
          'Midtown|Buckhead|Virginia-Highland|Inman Park|Old Fourth Ward|Grant Park|West End'),
        (17, 'Nashville',      200, 36.1627,  -86.7816,  3900,  65000,
          'East Nashville|The Gulch|12 South|Germantown|Sylvan Park|Green Hills'),
        (18, 'Minneapolis',    185, 44.9778,  -93.2650,  2900,  55000,
          'Uptown|Northeast|North Loop|Linden Hills|Longfellow|Powderhorn|Loring Park'),
        (19, 'Detroit',        165, 42.3314,  -83.0458,  1200,  90000,
          'Corktown|Midtown|Indian Village|Boston-Edison|Lafayette Park|Palmer Woods|Rosedale Park'),
        (20, 'San Francisco',  155, 37.7749, -122.4194, 12500, 150000,
          'Mission District|Noe Valley|Pacific Heights|SoMa|Sunset District|Richmond District|Castro|Haight-Ashbury')
    ),
    -- Bedroom mix in percent (cum_pct is the upper bound of the bucket),
    -- floor area, bathrooms and property types consistent with the count.
    beds (bedrooms, cum_pct, area_min, area_span, bath_min, bath_steps, types) AS (
        VALUES
        (0,   7,  28,  23, 1.0, 1, 'studio'),
        (1,  32,  45,  31, 1.0, 2, 'apartment|apartment|condo|condo|loft'),
        (2,  64,  65,  41, 1.0, 3, 'apartment|condo|condo|loft|townhouse'),
        (3,  87,  90,  61, 1.5, 3, 'condo|townhouse|house|house'),
        (4,  96, 120,  81, 2.0, 4, 'townhouse|house|house'),
        (5, 100, 150, 111, 2.5, 4, 'house')
    ),
    -- The small tables above as arrays, built once per statement (each
    -- scalar subquery is an InitPlan).  Per-row lookups are then array
    -- subscripts rather than joins, so the plan is a plain scan of
    -- generate_series and rows are inserted in row-number order (ids
    -- follow the row number, with no sort).  city_map has 10000 slots
    -- holding each city's index weight times (the weighted city draw);
    -- bed_map has 100 slots for the bedroom mix.
    lookups AS NOT MATERIALIZED (
        SELECT
            (SELECT array_agg(c.idx ORDER BY c.idx, k)
               FROM cities c CROSS JOIN LATERAL generate_series(1, c.weight) AS k) AS city_map,
            (SELECT array_agg(c.name     ORDER BY c.idx) FROM cities c) AS c_name,
            (SELECT array_agg(c.lat::float8 ORDER BY c.idx) FROM cities c) AS c_lat,
            (SELECT array_agg(c.lon::float8 ORDER BY c.idx) FROM cities c) AS c_lon,
            (SELECT array_agg(c.ppsqm    ORDER BY c.idx) FROM cities c) AS c_ppsqm,
            (SELECT array_agg(c.base_usd ORDER BY c.idx) FROM cities c) AS c_base,
            (SELECT array_agg(c.hoods    ORDER BY c.idx) FROM cities c) AS c_hoods,
            (SELECT array_agg(cardinality(string_to_array(c.hoods, '|')) ORDER BY c.idx)
               FROM cities c) AS c_nhoods,
            (SELECT array_agg(b.bedrooms ORDER BY b.bedrooms, k)
               FROM beds b CROSS JOIN LATERAL
                    generate_series(coalesce((SELECT max(p.cum_pct) FROM beds p
                                               WHERE p.bedrooms < b.bedrooms), 0) + 1,
                                    b.cum_pct) AS k) AS bed_map,
            -- indexed by bedrooms + 1
            (SELECT array_agg(b.area_min   ORDER BY b.bedrooms) FROM beds b) AS b_area_min,
            (SELECT array_agg(b.area_span  ORDER BY b.bedrooms) FROM beds b) AS b_area_span,
            (SELECT array_agg(b.bath_min   ORDER BY b.bedrooms) FROM beds b) AS b_bath_min,
            (SELECT array_agg(b.bath_steps ORDER BY b.bedrooms) FROM beds b) AS b_bath_steps,
            (SELECT array_agg(b.types      ORDER BY b.bedrooms) FROM beds b) AS b_types,
            (SELECT array_agg(cardinality(string_to_array(b.types, '|')) ORDER BY b.bedrooms)
               FROM beds b) AS b_ntypes
    ),
    -- One row per listing: the city and bedroom draws plus one 63-bit
    -- hash per remaining field.
    raw AS (
        SELECT g.i,
               l.city_map[1 + (hashint8extended(g.i, s +  0) & 9223372036854775807) % 10000] AS ci,
               l.bed_map [1 + (hashint8extended(g.i, s +  1) & 9223372036854775807) % 100]   AS bedrooms,
               hashint8extended(g.i, s +  2) & 9223372036854775807 AS h_hood,
               hashint8extended(g.i, s +  3) & 9223372036854775807 AS h_area,
               hashint8extended(g.i, s +  4) & 9223372036854775807 AS h_bath,
               hashint8extended(g.i, s +  5) & 9223372036854775807 AS h_type,
               hashint8extended(g.i, s +  6) & 9223372036854775807 AS h_status,
               hashint8extended(g.i, s +  7) & 9223372036854775807 AS h_noise1,
               hashint8extended(g.i, s +  8) & 9223372036854775807 AS h_noise2,
               hashint8extended(g.i, s +  9) & 9223372036854775807 AS h_noise3,
               hashint8extended(g.i, s + 10) & 9223372036854775807 AS h_radius,
               hashint8extended(g.i, s + 11) & 9223372036854775807 AS h_angle,
               hashint8extended(g.i, s + 12) & 9223372036854775807 AS h_created,
               hashint8extended(g.i, s + 13) & 9223372036854775807 AS h_updated,
               hashint8extended(g.i, s + 14) & 9223372036854775807 AS h_adj,
               hashint8extended(g.i, s + 15) & 9223372036854775807 AS h_feature
          FROM lookups l
         CROSS JOIN generate_series(1::bigint, n::bigint) AS g(i)
        OFFSET 0  -- keep as its own step: each hash is computed once
    ),
    -- Attributes that other columns depend on.
    attrs AS (
        SELECT r.i,
               l.c_name[r.ci] AS city,
               split_part(l.c_hoods[r.ci], '|',
                          1 + (r.h_hood % l.c_nhoods[r.ci])::int) AS neighborhood,
               r.bedrooms,
               l.b_area_min[r.bedrooms + 1]
                   + (r.h_area % l.b_area_span[r.bedrooms + 1])::int AS area_sqm,
               (l.b_bath_min[r.bedrooms + 1]
                   + 0.5 * (r.h_bath % l.b_bath_steps[r.bedrooms + 1]))::numeric(3,1) AS bathrooms,
               split_part(l.b_types[r.bedrooms + 1], '|',
                          1 + (r.h_type % l.b_ntypes[r.bedrooms + 1])::int) AS ptype,
               CASE WHEN r.h_status % 100 < 85 THEN 'active'
                    WHEN r.h_status % 100 < 95 THEN 'pending'
                    ELSE 'sold' END AS status,
               l.c_ppsqm[r.ci] AS ppsqm,
               l.c_base[r.ci] AS base_usd,
               -- Sum of three uniforms: bell-shaped noise around 1.0.
               exp(0.25 * ((r.h_noise1 >> 10) / 9007199254740992.0::float8
                         + (r.h_noise2 >> 10) / 9007199254740992.0::float8
                         + (r.h_noise3 >> 10) / 9007199254740992.0::float8 - 1.5)) AS noise,
               -- Up to 15 km from the centre, denser towards it.
               15.0 * ((r.h_radius >> 10) / 9007199254740992.0::float8) AS dist_km,
               2.0 * pi() * ((r.h_angle >> 10) / 9007199254740992.0::float8) AS bearing,
               l.c_lat[r.ci] AS c_lat,
               l.c_lon[r.ci] AS c_lon,
               -- Up to two years before the reference date, whole seconds.
               timestamptz '2026-06-01 00:00:00+00'
                   - (r.h_created % 63072000) * interval '1 second' AS created_at,
               r.h_updated, r.h_adj, r.h_feature
          FROM raw r
         CROSS JOIN lookups l
        OFFSET 0
    )
    SELECT
        CASE WHEN a.bedrooms = 0 THEN 'Studio'
             ELSE a.bedrooms || '-bed ' || a.ptype END
            || ' in ' || a.neighborhood AS title,
        (ARRAY['Bright', 'Spacious', 'Charming', 'Renovated', 'Sunny', 'Modern',
               'Cozy', 'Updated', 'Well-kept', 'Light-filled', 'Quiet', 'Classic'])
                [1 + (a.h_adj % 12)::int]
            || CASE WHEN a.bedrooms = 0 THEN ' studio'
                    ELSE ' ' || a.bedrooms || '-bedroom ' || a.ptype END
            || ' in ' || a.neighborhood || ', ' || a.city
            || ', with ' || trim_scale(a.bathrooms)
            || CASE WHEN a.bathrooms = 1 THEN ' bath and ' ELSE ' baths and ' END
            || a.area_sqm || ' sq m of living space.'
            || CASE WHEN a.h_feature % 16 >= 12 THEN ''
                    ELSE ' ' || (ARRAY['Updated kitchen with stainless steel appliances.',
                                       'Hardwood floors throughout.',
                                       'In-unit washer and dryer.',
                                       'Private balcony with city views.',
                                       'Steps from shops, cafes and transit.',
                                       'Includes one deeded parking space.',
                                       'Central air and new double-pane windows.',
                                       'Large windows and high ceilings.',
                                       'Close to parks and well-rated schools.',
                                       'Ample closet space and extra storage.',
                                       'Recently painted and move-in ready.',
                                       'Low HOA fees and a well-managed building.'])
                                [1 + (a.h_feature % 16)::int] END AS description,
        a.city,
        a.neighborhood,
        100 * round((a.base_usd + a.ppsqm * a.area_sqm)
                    * CASE a.ptype WHEN 'house'     THEN 1.10
                                   WHEN 'townhouse' THEN 1.05
                                   WHEN 'loft'      THEN 1.08
                                   WHEN 'apartment' THEN 0.95
                                   ELSE 1.00 END::float8
                    * a.noise)::bigint AS price_cents,
        a.bedrooms,
        a.bathrooms,
        a.area_sqm,
        a.status,
        round((a.c_lat + a.dist_km * cos(a.bearing) / 111.32) * 1e6) / 1e6 AS lat,
        round((a.c_lon + a.dist_km * sin(a.bearing)
                         / (111.32 * cos(radians(a.c_lat)))) * 1e6) / 1e6 AS lon,
        a.created_at,
        -- Active listings were touched shortly after creation; pending and
        -- sold ones when their status changed.  Never past the reference date.
        least(a.created_at
                  + CASE WHEN a.status = 'active' THEN a.h_updated % 259200
                         ELSE 86400 + a.h_updated % 2592000 END * interval '1 second',
              timestamptz '2026-06-01 00:00:00+00') AS updated_at
      FROM attrs a;

    GET DIAGNOSTICS inserted = ROW_COUNT;
    RETURN inserted;
END;
$function$;

COMMENT ON FUNCTION housing_cache.generate_listings(int, int) IS
'Inserts n (0..10000000) deterministic, realistic rows into housing.listings and returns the number inserted. The same (n, seed) always yields the same rows: every value is derived from a hash of (row number, seed, field). Listings cover 20 US cities with Zipf-like sizes, real neighbourhood names and city-specific price levels.';
REVOKE ALL ON FUNCTION housing_cache.generate_listings(int, int) FROM PUBLIC;
