----------------------------------------------------------------------------
-- Triggers on the catalog, the stats view, event triggers
----------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION housing_cache.catalog_guard()
RETURNS trigger
AS 'MODULE_PATHNAME', 'housing_cache_catalog_guard'
LANGUAGE C;
COMMENT ON FUNCTION housing_cache.catalog_guard() IS
    'Trigger: the catalog is written only through housing_cache''s functions, or by superusers';

CREATE OR REPLACE FUNCTION housing_cache.catalog_changed()
RETURNS trigger
AS 'MODULE_PATHNAME', 'housing_cache_catalog_changed'
LANGUAGE C;
COMMENT ON FUNCTION housing_cache.catalog_changed() IS
    'Trigger: every backend drops its cached query definitions when the catalog changes';

CREATE OR REPLACE TRIGGER catalog_guard
    BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON housing_cache.queries
    FOR EACH STATEMENT EXECUTE FUNCTION housing_cache.catalog_guard();
CREATE OR REPLACE TRIGGER catalog_guard
    BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON housing_cache.watched_tables
    FOR EACH STATEMENT EXECUTE FUNCTION housing_cache.catalog_guard();
CREATE OR REPLACE TRIGGER catalog_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON housing_cache.queries
    FOR EACH STATEMENT EXECUTE FUNCTION housing_cache.catalog_changed();
CREATE OR REPLACE TRIGGER catalog_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON housing_cache.watched_tables
    FOR EACH STATEMENT EXECUTE FUNCTION housing_cache.catalog_changed();
CREATE OR REPLACE TRIGGER catalog_guard
    BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON housing_cache.replication
    FOR EACH STATEMENT EXECUTE FUNCTION housing_cache.catalog_guard();
CREATE OR REPLACE TRIGGER catalog_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON housing_cache.replication
    FOR EACH STATEMENT EXECUTE FUNCTION housing_cache.catalog_changed();

CREATE OR REPLACE VIEW housing_cache.stats AS
    SELECT s.*,
           round((s.l1_hits + s.l2_hits)::numeric
                 / nullif(s.l1_hits + s.l2_hits + s.misses, 0), 4) AS hit_ratio
      FROM housing_cache.get_stats() s;
COMMENT ON VIEW housing_cache.stats IS 'Cluster-wide cache counters';
GRANT SELECT ON housing_cache.stats TO PUBLIC;

CREATE EVENT TRIGGER housing_cache_ddl_start ON ddl_command_start
    WHEN TAG IN ('CREATE TRIGGER')
    EXECUTE FUNCTION housing_cache.on_ddl_command_start();
CREATE EVENT TRIGGER housing_cache_ddl ON ddl_command_end
    WHEN TAG IN ('ALTER TABLE', 'CREATE TABLE')
    EXECUTE FUNCTION housing_cache.on_ddl_command_end();
CREATE EVENT TRIGGER housing_cache_drop ON sql_drop
    EXECUTE FUNCTION housing_cache.on_sql_drop();
