----------------------------------------------------------------------------
-- DDL on watched tables
----------------------------------------------------------------------------

-- pg_dump dumps a watched table's triggers with the table, and its row of
-- housing_cache.watched_tables with the data; restoring the row (or DDL
-- run before the triggers are restored) may attach them first.  Creating
-- one of the invalidation triggers again replaces it, so that restoring a
-- dump never fails on them.
CREATE OR REPLACE FUNCTION housing_cache.on_ddl_command_start()
RETURNS event_trigger
AS 'MODULE_PATHNAME', 'housing_cache_on_ddl_command_start'
LANGUAGE C;
COMMENT ON FUNCTION housing_cache.on_ddl_command_start() IS
    'Event trigger: CREATE TRIGGER of an invalidation trigger a table already has replaces it (so that pg_restore never fails on them)';
REVOKE ALL ON FUNCTION housing_cache.on_ddl_command_start() FROM PUBLIC;

CREATE OR REPLACE FUNCTION housing_cache.ddl_new_children()
RETURNS oid[]
AS 'MODULE_PATHNAME', 'housing_cache_ddl_new_children'
LANGUAGE C;
COMMENT ON FUNCTION housing_cache.ddl_new_children() IS
    'Internal, in a ddl_command_end event trigger: the tables the command created or attached as partitions or inheritance children';
REVOKE ALL ON FUNCTION housing_cache.ddl_new_children() FROM PUBLIC;

-- DDL on a watched table, or on a table below it, can change what its
-- queries return without firing a row trigger (ALTER TABLE ... ATTACH or
-- DETACH PARTITION, ADD or DROP COLUMN, a new partition or inheritance
-- child): invalidate the table.  A table the command placed below it (a new
-- or attached partition or child) gets its triggers; other DDL attaches
-- nothing, so that pg_restore's own statements never race with it.
CREATE OR REPLACE FUNCTION housing_cache.on_ddl_command_end()
RETURNS event_trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    w        record;
    children oid[];
BEGIN
    IF current_setting('housing_cache_internal.attaching', true) = 'on' THEN
        RETURN;
    END IF;
    children := housing_cache.ddl_new_children();
    FOR w IN
        WITH RECURSIVE cmd(relid) AS (
            SELECT objid FROM pg_event_trigger_ddl_commands()
             WHERE classid = 'pg_catalog.pg_class'::regclass
            UNION
            SELECT unnest(children)),
        anc(relid) AS (
            SELECT relid FROM cmd
            UNION
            SELECT i.inhparent FROM pg_inherits i JOIN anc a ON i.inhrelid = a.relid),
        -- the ancestors of the tables placed below another
        new_anc(relid) AS (
            SELECT unnest(children)
            UNION
            SELECT i.inhparent FROM pg_inherits i JOIN new_anc a ON i.inhrelid = a.relid),
        -- a table that just left its parent (NO INHERIT, DETACH) still
        -- carries the parent's tag in its triggers
        tagged(tag) AS (
            SELECT split_part(encode(t.tgargs, 'escape'), '\000', 1)
              FROM pg_trigger t JOIN cmd ON t.tgrelid = cmd.relid
             WHERE t.tgname = 'housing_cache_invalidate_truncate')
        SELECT DISTINCT wt.relid, wt.table_tag, wt.partition_column, wt.id_column,
               wt.relid::oid IN (SELECT relid FROM new_anc) AS has_new_children
          FROM housing_cache.watched_tables wt
         WHERE wt.relid::oid IN (SELECT relid FROM anc)
            OR wt.table_tag IN (SELECT tag FROM tagged)
    LOOP
        IF w.has_new_children THEN
            PERFORM housing_cache.attach_triggers(w.relid, w.table_tag, w.partition_column, w.id_column, false);
        END IF;
        PERFORM housing_cache.invalidate(w.table_tag);
    END LOOP;
END
$$;
COMMENT ON FUNCTION housing_cache.on_ddl_command_end() IS
    'Event trigger: DDL on or below a watched table invalidates it; new and attached partitions and children get its triggers';
REVOKE ALL ON FUNCTION housing_cache.on_ddl_command_end() FROM PUBLIC;

-- Dropping a partition or an inheritance child of a watched table removes its
-- rows without firing a trigger, and by then nothing tells which table it
-- belonged to: any dropped permanent table invalidates every watched table
-- (dropping tables is rare; invalidating too much is only slower).  A
-- dropped watched table is forgotten; the queries that read it fail with a
-- clear error until it is watched again (registry.c checks their tags
-- whenever it loads them), and are never served stale.
-- Event triggers run as whoever ran the DDL: these run as the extension's
-- owner, so that any table owner's DDL works.
CREATE OR REPLACE FUNCTION housing_cache.on_sql_drop()
RETURNS event_trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_event_trigger_dropped_objects()
                    WHERE classid = 'pg_catalog.pg_class'::regclass
                      AND object_type = 'table' AND NOT is_temporary) THEN
        RETURN;
    END IF;
    -- every watched table, the dropped ones included, before forgetting them
    PERFORM housing_cache.invalidate(wt.table_tag) FROM housing_cache.watched_tables wt;
    DELETE FROM housing_cache.watched_tables wt
     USING pg_event_trigger_dropped_objects() d
     WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = wt.relid::oid;
END
$$;
COMMENT ON FUNCTION housing_cache.on_sql_drop() IS
    'Event trigger: every watched table is invalidated and dropped ones are forgotten';
REVOKE ALL ON FUNCTION housing_cache.on_sql_drop() FROM PUBLIC;
