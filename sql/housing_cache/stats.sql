----------------------------------------------------------------------------
-- Observability
----------------------------------------------------------------------------
-- The C functions fill the columns their SQL definition declares, by name,
-- so that the definitions of earlier versions keep working with a newer
-- library until ALTER EXTENSION ... UPDATE.

CREATE OR REPLACE FUNCTION housing_cache.get_stats(
    OUT l1_hits bigint,
    OUT l2_hits bigint,
    OUT misses bigint,
    OUT db_executions bigint,
    OUT bypasses bigint,
    OUT l1_stores bigint,
    OUT l1_evictions bigint,
    OUT l2_stores bigint,
    OUT l2_rejects bigint,
    OUT oversize bigint,
    OUT redis_errors bigint,
    OUT breaker_skips bigint,
    OUT breaker_opens bigint,
    OUT breaker_closes bigint,
    OUT fill_waits bigint,
    OUT fill_timeouts bigint,
    OUT early_refreshes bigint,
    OUT stale_served bigint,
    OUT invalidations bigint,
    OUT invalidated_commits bigint,
    OUT publishes bigint,
    OUT publish_failures bigint,
    OUT wal_records_logged bigint,
    OUT wal_records_replayed bigint,
    OUT wal_slots_resolved bigint,
    OUT wal_overflows bigint,
    OUT standby_catching_up bigint,
    OUT min_lsn_waits bigint,
    OUT min_lsn_timeouts bigint,
    OUT redis_discoveries bigint,
    OUT redis_failovers bigint,
    OUT heartbeats bigint,
    OUT fragment_hits bigint,
    OUT fragment_fills bigint,
    OUT breaker_state text,
    OUT redis_master text,
    OUT preloaded boolean,
    OUT stats_reset timestamptz)
RETURNS record
AS 'MODULE_PATHNAME', 'housing_cache_get_stats'
LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION housing_cache.get_stats() IS
    'Cluster-wide cache counters (see the view housing_cache.stats)';

CREATE OR REPLACE FUNCTION housing_cache.reset_stats()
RETURNS void
AS 'MODULE_PATHNAME', 'housing_cache_reset_stats'
LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION housing_cache.reset_stats() IS 'Zero the counters of housing_cache.stats';
REVOKE ALL ON FUNCTION housing_cache.reset_stats() FROM PUBLIC;

CREATE OR REPLACE FUNCTION housing_cache.last_lookup(
    OUT tier text,
    OUT key text,
    OUT elapsed_us bigint,
    OUT bypass_reason text,
    OUT etag text,
    OUT ttl_remaining_s int,
    OUT tags text[],
    OUT edge_keys text,
    OUT stamp text,
    OUT fragment_hits int,
    OUT fragment_fills int)
RETURNS record
AS 'MODULE_PATHNAME', 'housing_cache_last_lookup'
LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION housing_cache.last_lookup() IS
    'How this session''s last cached call was served: tier l1, l2, miss, bypass or not_modified, its key, the time it took, its entity tag and remaining TTL; for the HTTP edge, the tags its answer depends on, their edge keys and its stamp; for a composed answer (tier: of its id list), the fragments served from the cache and computed';
