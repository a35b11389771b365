----------------------------------------------------------------------------
-- Hot standbys
----------------------------------------------------------------------------
-- Whether the primary logs this database's invalidations in WAL, for hot
-- standbys (extension/standby.c).  A row of the catalog rather than a
-- setting in postgresql.conf: it changes in WAL order with the commits it
-- governs, so a standby's snapshot of it says whether every commit it sees
-- was logged.  No row: off.

CREATE TABLE housing_cache.replication (
    singleton        boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    wal_invalidation boolean NOT NULL DEFAULT false,
    version          bigint NOT NULL DEFAULT 0
);
COMMENT ON TABLE housing_cache.replication IS
    'Whether the primary logs invalidations in WAL for hot standbys (see housing_cache.set_wal_invalidation); version changes with every switch';
SELECT pg_catalog.pg_extension_config_dump('housing_cache.replication', '');
GRANT SELECT ON housing_cache.replication TO PUBLIC;
