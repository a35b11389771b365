--
-- guc: validation of the housing_cache.* settings, who may set them, and
-- that the Redis password is hidden from ordinary roles.  Settings that
-- change where Redis is are only tried in transactions that make no cached
-- call, and are rolled back.
--
SET timezone = 'UTC';

-- who may change what (boot values, not the values of this instance)
SELECT name, context, vartype, unit, min_val, max_val, boot_val
  FROM pg_settings
 WHERE name IN ('housing_cache.enabled', 'housing_cache.redis_host',
                'housing_cache.redis_port', 'housing_cache.redis_db',
                'housing_cache.generation_slots', 'housing_cache.key_prefix',
                'housing_cache.channel', 'housing_cache.ttl_jitter_pct',
                'housing_cache.default_ttl', 'housing_cache.max_value_bytes',
                'housing_cache.breaker_backoff_ms')
 ORDER BY name;

--
-- redis_port: 1 to 65535
--
SET housing_cache.redis_port = 0;
SET housing_cache.redis_port = 70000;
SET housing_cache.redis_port = -1;
SET housing_cache.redis_port = 'redis';
BEGIN;
SET LOCAL housing_cache.redis_port = 65535;
SHOW housing_cache.redis_port;
SET LOCAL housing_cache.redis_port = 1;
SHOW housing_cache.redis_port;
ROLLBACK;

--
-- redis_host: not empty, no blanks or control characters, at most 255
--
SET housing_cache.redis_host = '';
SET housing_cache.redis_host = 'redis host';
SET housing_cache.redis_host = ' redis';
SELECT set_config('housing_cache.redis_host', E'redis\thost', false);
SELECT set_config('housing_cache.redis_host', E'redis\n', false);
SELECT set_config('housing_cache.redis_host', repeat('h', 256), false);
BEGIN;
SET LOCAL housing_cache.redis_host = 'redis.internal.example';
SHOW housing_cache.redis_host;
SELECT set_config('housing_cache.redis_host', repeat('h', 255), true) = repeat('h', 255) AS longest;
SET LOCAL housing_cache.redis_host = '::1';
SHOW housing_cache.redis_host;
ROLLBACK;

--
-- redis_db, timeouts
--
SET housing_cache.redis_db = 1024;
SET housing_cache.redis_db = -1;
SET housing_cache.redis_connect_timeout_ms = 0;
SET housing_cache.redis_command_timeout_ms = '2min';
BEGIN;
SET LOCAL housing_cache.redis_command_timeout_ms = '1s';
SHOW housing_cache.redis_command_timeout_ms;
ROLLBACK;

--
-- generation_slots and l1_size_mb shape shared memory: not settable now,
-- whatever the value
--
SET housing_cache.generation_slots = 1024;
SET housing_cache.generation_slots = 1000;
SET housing_cache.l1_size_mb = 0;
-- the breaker's timings are read from the configuration file only
SET housing_cache.breaker_backoff_ms = 1000;

--
-- key_prefix and channel: 1 to 64 characters, no blanks
--
SELECT set_config('housing_cache.key_prefix', repeat('k', 65), false);
SET housing_cache.key_prefix = '';
SET housing_cache.key_prefix = 'my prefix:';
SELECT set_config('housing_cache.channel', repeat('c', 65), false);
SET housing_cache.channel = '';
SET housing_cache.channel = 'housing cache';
SHOW housing_cache.key_prefix;
BEGIN;
SELECT set_config('housing_cache.key_prefix', repeat('k', 64), true) = repeat('k', 64) AS longest;
SET LOCAL housing_cache.channel = 'hc:test:invalidations';
SHOW housing_cache.channel;
ROLLBACK;

--
-- TTLs and sizes
--
SET housing_cache.ttl_jitter_pct = 51;
SET housing_cache.ttl_jitter_pct = -1;
SET housing_cache.ttl_jitter_pct = 50;
SHOW housing_cache.ttl_jitter_pct;
SET housing_cache.ttl_jitter_pct = 0;
SHOW housing_cache.ttl_jitter_pct;
RESET housing_cache.ttl_jitter_pct;
SET housing_cache.default_ttl = 0;
SET housing_cache.default_ttl = '31d';
SET housing_cache.default_ttl = '5min';
SHOW housing_cache.default_ttl;
RESET housing_cache.default_ttl;
SET housing_cache.max_value_bytes = 63;
SET housing_cache.publish_max_tags = 0;

--
-- unknown names under the reserved prefix are refused
--
SET housing_cache.no_such_setting = 1;
SET housing_cache.Enabled = off;
SHOW housing_cache.enabled;
RESET housing_cache.enabled;

--
-- enabled: everyone may turn the cache off for their session; a call then
-- runs its query, and says why
--
SET housing_cache.enabled = off;
SELECT housing_cache.get_listing(3) ->> 'title' AS title;
SELECT tier, key, bypass_reason FROM housing_cache.last_lookup();
SELECT item_ids(housing_cache.search_listings('Denver')) AS denver;
SELECT tier, key, bypass_reason FROM housing_cache.last_lookup();
SET housing_cache.enabled = on;
SELECT item_ids(housing_cache.search_listings('Denver')) AS denver;
SELECT tier <> 'bypass' AS cached FROM housing_cache.last_lookup();
SET housing_cache.enabled = 'maybe';

--
-- an ordinary role
--
-- (a query of the superuser's, for the role to fetch)
SELECT housing_cache.register_query('guc.city_count',
    $$SELECT json_build_object('city', $1, 'listings', count(*))
        FROM housing.listings WHERE city = $1$$,
    '{text}', '{housing.listings/city=$1}');
CREATE ROLE regress_hc_reader;
SET ROLE regress_hc_reader;
SELECT current_user;
-- where Redis is, and how the cache behaves, is for superusers
SET housing_cache.redis_host = 'attacker.example';
SET housing_cache.redis_port = 6380;
SET housing_cache.key_prefix = 'mine:';
SET housing_cache.ttl_jitter_pct = 20;
SET housing_cache.default_ttl = 60;
SET housing_cache.single_flight = off;
SELECT set_config('housing_cache.redis_host', 'attacker.example', false);
-- the cache can be turned off and on
SET housing_cache.enabled = off;
SELECT housing_cache.get_listing(3) ->> 'title' AS title;
SELECT tier, key, bypass_reason FROM housing_cache.last_lookup();
RESET housing_cache.enabled;
SHOW housing_cache.enabled;
-- reading is for everyone
SELECT item_ids(housing_cache.search_listings('Denver')) AS denver;
SELECT housing_cache.city_stats('Denver') -> 'active_count' AS denver;
SELECT housing_cache.fetch('guc.city_count', 'Denver');
SELECT housing_cache.fetch('housing.listing', '3');
SELECT count(*) AS stats_rows FROM housing_cache.stats;
SELECT name FROM housing_cache.queries ORDER BY name;
-- changing what is cached is not
SELECT housing_cache.register_query('reader.q', 'SELECT ''{}''::json', tags => '{housing.listings}');
SELECT housing_cache.unregister_query('housing.listing');
SELECT housing_cache.watch_table('housing.listings');
SELECT housing_cache.unwatch_table('housing.listings');
SELECT housing_cache.invalidate('housing.listings');
SELECT housing_cache.reset_stats();
INSERT INTO housing_cache.queries (name, sql, tags) VALUES ('reader.q', 'SELECT 1', '{x}');
UPDATE housing.listings SET price_cents = 1 WHERE id = 1;
RESET ROLE;

--
-- redis_password: superusers only, to set and to see
--
-- set by the superuser for this session only (no cached call is made
-- while it is set)
SET housing_cache.redis_password = 'regress-secret';
SHOW housing_cache.redis_password;
SET ROLE regress_hc_reader;
SHOW housing_cache.redis_password;
SELECT current_setting('housing_cache.redis_password');
SELECT current_setting('housing_cache.redis_password', true);
SELECT count(*) AS visible FROM pg_settings WHERE name = 'housing_cache.redis_password';
SELECT count(*) AS visible FROM pg_settings WHERE setting LIKE '%regress-secret%';
SELECT count(*) AS visible FROM pg_show_all_settings() WHERE name = 'housing_cache.redis_password';
SET housing_cache.redis_password = 'other';
RESET housing_cache.redis_password;
RESET ROLE;
SHOW housing_cache.redis_password;
RESET housing_cache.redis_password;
SHOW housing_cache.redis_password;
DROP ROLE regress_hc_reader;
SELECT housing_cache.unregister_query('guc.city_count');
