/*-------------------------------------------------------------------------
 *
 * catalog.c
 *	  The engine's catalog: housing_cache.watched_tables and
 *	  housing_cache.queries, who may change them, and how.
 *
 * Privileges.  Nobody but a superuser writes the catalog tables directly: a
 * statement trigger (catalog_guard) refuses everyone else.  The engine's
 * functions write them on their callers' behalf, as the catalog's owner,
 * after checking the caller's right to the row:
 *
 *	 - a watched table's row, only a role with the privileges of the table's
 *	   owner (watch_table() and unwatch_table() also create and drop the
 *	   table's triggers, which needs the same);
 *	 - a registered query, only a role with the privileges of the query's
 *	   owner, the role that registered it.  A query may be replaced or
 *	   removed by its owner (or a member of it, or a superuser), by nobody
 *	   else, whatever grants on the catalog a DBA has given;
 *	 - a query registered by an extension's script (the housing portal's),
 *	   only by that extension's scripts, whoever runs them.
 *
 * How a query's owner bears on who runs it is in registry.c.
 *
 * Both catalogs are dumped whole by pg_dump (extension configuration
 * tables), so a restored database has its watched tables and queries.
 *
 * Shapes.  The library serves the SQL definitions of every released version
 * until ALTER EXTENSION ... UPDATE: a 0.1.0 catalog names its columns
 * partition_by and key_column, marks the portal's queries builtin and has no
 * owners.  Everything here reads and writes both.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "commands/extension.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "storage/lmgr.h"

#include "housing_cache.h"

PG_FUNCTION_INFO_V1(housing_cache_catalog_guard);
PG_FUNCTION_INFO_V1(housing_cache_catalog_changed);
PG_FUNCTION_INFO_V1(housing_cache_queries_changed);	/* 0.1.0's name */
PG_FUNCTION_INFO_V1(housing_cache_catalog_watch);
PG_FUNCTION_INFO_V1(housing_cache_catalog_unwatch);

/* > 0 while one of our functions writes the catalog */
static int	catalog_writing = 0;

/* housing_cache.replication as this backend last read it; -1: to read */
static int	wal_invalidation = -1;
static int64 wal_version = 0;
static Oid	replication_relid = InvalidOid;

/*
 * The OID of a catalog table, or InvalidOid when the extension is not
 * installed in this database.
 */
Oid
HcCatalogRelid(const char *table)
{
	Oid			nsp = get_namespace_oid("housing_cache", true);

	return OidIsValid(nsp) ? get_relname_relid(table, nsp) : InvalidOid;
}

/*
 * Does the installed catalog have the 0.1.0 shape?  Cheap: one syscache
 * lookup.
 */
static bool
catalog_is_v1(void)
{
	Oid			relid = HcCatalogRelid("queries");

	return OidIsValid(relid) && get_attnum(relid, "owner") == InvalidAttrNumber;
}

/*
 * Run a statement on the catalog as its owner, past the guard.  The caller
 * has checked that its caller may make this change, and is inside SPI.
 */
static int
catalog_execute(const char *sql, int nargs, Oid *types, Datum *values,
				const char *nulls)
{
	Oid			owner;
	Oid			save_userid;
	int			save_sec;
	int			ret;
	HeapTuple	tup;

	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(HcCatalogRelid("queries")));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "housing_cache's catalog is missing");
	owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);

	GetUserIdAndSecContext(&save_userid, &save_sec);
	SetUserIdAndSecContext(owner, save_sec | SECURITY_LOCAL_USERID_CHANGE);
	catalog_writing++;
	PG_TRY();
	{
		ret = SPI_execute_with_args(sql, nargs, types, values, nulls, false, 0);
	}
	PG_FINALLY();
	{
		catalog_writing--;
		SetUserIdAndSecContext(save_userid, save_sec);
	}
	PG_END_TRY();
	return ret;
}

/* ---------- watched tables ---------- */

/*
 * Look a table tag up among the watched tables.  Returns false if absent;
 * otherwise its relation and the names of its partition and id columns
 * ("" when none).  Needs SPI.
 */
bool
HcCatalogLookupWatched(const char *table_tag, Oid *relid, char **partition_column,
					   char **id_column)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1];
	int			ret;
	bool		isnull;

	args[0] = CStringGetTextDatum(table_tag);
	ret = SPI_execute_with_args(catalog_is_v1()
								? "SELECT relid::oid, coalesce(partition_by, ''), coalesce(key_column, '') "
								"FROM housing_cache.watched_tables WHERE table_tag = $1"
								: "SELECT relid::oid, coalesce(partition_column, ''), coalesce(id_column, '') "
								"FROM housing_cache.watched_tables WHERE table_tag = $1",
								1, argtypes, args, NULL, true, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read housing_cache.watched_tables: %s",
			 SPI_result_code_string(ret));
	if (SPI_processed == 0)
		return false;
	*relid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0],
											SPI_tuptable->tupdesc, 1, &isnull));
	*partition_column = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
	*id_column = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3);
	return true;
}

/*
 * The caller must have the privileges of a table's owner to change how it is
 * watched.
 */
static void
check_table_owner(Oid relid)
{
	if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(relid)))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", relid)));
	if (!pg_class_ownercheck(relid, GetUserId()))
		aclcheck_error(ACLCHECK_NOT_OWNER, OBJECT_TABLE, get_rel_name(relid));
}

/*
 * A column a watched table's writes are tagged by must have a type whose
 * values tags can spell (tag.c).
 */
static void
check_tag_column(Oid relid, const char *column, const char *what)
{
	AttrNumber	attnum;
	Oid			type;
	int32		typmod;
	Oid			collation;

	attnum = get_attnum(relid, column);
	if (attnum == InvalidAttrNumber)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" of table \"%s.%s\" does not exist",
						column, get_namespace_name(get_rel_namespace(relid)), get_rel_name(relid))));
	get_atttypetypmodcoll(relid, attnum, &type, &typmod, &collation);
	if (HcTagSpellingOf(type, collation) == HC_SPELL_NONE)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("%s \"%s\" of table \"%s.%s\" is of type %s, which tags cannot follow",
						what, column, get_namespace_name(get_rel_namespace(relid)),
						get_rel_name(relid), format_type_be(type)),
				 errdetail_internal("%s", HcTagSpellingRefusal(type))));
}

/*
 * housing_cache.catalog_watch(tbl regclass, table_tag text,
 *		partition_column name, id_column name) RETURNS void
 *
 * Record that a table is watched (watch_table() calls it once the table's
 * triggers are in place).  A row of the same tag for another relation (a
 * table dropped and created again under its name) is replaced.  Whatever
 * was cached before the table was watched may be old: the table is
 * invalidated as a whole when this transaction commits.
 */
Datum
housing_cache_catalog_watch(PG_FUNCTION_ARGS)
{
	Oid			relid;
	Oid			types[4] = {OIDOID, TEXTOID, NAMEOID, NAMEOID};
	Datum		values[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};
	bool		v1 = catalog_is_v1();
	int			ret;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("table and tag must not be NULL")));
	relid = PG_GETARG_OID(0);
	check_table_owner(relid);
	if (!PG_ARGISNULL(2))
		check_tag_column(relid, NameStr(*PG_GETARG_NAME(2)), "partition column");
	if (!PG_ARGISNULL(3))
		check_tag_column(relid, NameStr(*PG_GETARG_NAME(3)), "id column");

	for (int i = 0; i < 4; i++)
	{
		values[i] = PG_GETARG_DATUM(i);
		nulls[i] = PG_ARGISNULL(i) ? 'n' : ' ';
	}
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	ret = catalog_execute("DELETE FROM housing_cache.watched_tables "
						  "WHERE table_tag = $2 AND relid::oid <> $1",
						  4, types, values, nulls);
	if (ret != SPI_OK_DELETE)
		elog(ERROR, "could not update housing_cache.watched_tables: %s", SPI_result_code_string(ret));
	ret = catalog_execute(v1
						  ? "INSERT INTO housing_cache.watched_tables AS w "
						  "(relid, table_tag, partition_by, key_column) VALUES ($1, $2, $3, $4) "
						  "ON CONFLICT (relid) DO UPDATE SET table_tag = EXCLUDED.table_tag, "
						  "partition_by = EXCLUDED.partition_by, key_column = EXCLUDED.key_column"
						  : "INSERT INTO housing_cache.watched_tables AS w "
						  "(relid, table_tag, partition_column, id_column) VALUES ($1, $2, $3, $4) "
						  "ON CONFLICT (relid) DO UPDATE SET table_tag = EXCLUDED.table_tag, "
						  "partition_column = EXCLUDED.partition_column, id_column = EXCLUDED.id_column",
						  4, types, values, nulls);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "could not update housing_cache.watched_tables: %s", SPI_result_code_string(ret));
	SPI_finish();
	HcInvalidateTable(text_to_cstring(PG_GETARG_TEXT_PP(1)));
	PG_RETURN_VOID();
}

/*
 * housing_cache.catalog_unwatch(tbl regclass) RETURNS boolean
 *
 * Forget that a table is watched; returns whether it was.
 */
Datum
housing_cache_catalog_unwatch(PG_FUNCTION_ARGS)
{
	Oid			types[1] = {OIDOID};
	Datum		values[1];
	int			ret;
	bool		found;

	if (PG_ARGISNULL(0))
		PG_RETURN_BOOL(false);
	values[0] = PG_GETARG_DATUM(0);
	check_table_owner(PG_GETARG_OID(0));
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	ret = catalog_execute("DELETE FROM housing_cache.watched_tables WHERE relid::oid = $1",
						  1, types, values, NULL);
	if (ret != SPI_OK_DELETE)
		elog(ERROR, "could not update housing_cache.watched_tables: %s", SPI_result_code_string(ret));
	found = SPI_processed > 0;
	SPI_finish();
	if (found)
		HcInvalidateEverything();
	PG_RETURN_BOOL(found);
}

/* ---------- registered queries ---------- */

/*
 * Read a registered query.  Returns false if there is no such query.  Its
 * fields are allocated in the current memory context (the SPI procedure's
 * context if called in SPI: copy what must outlive it).  Needs SPI.
 */
bool
HcCatalogReadQuery(const char *name, HcQueryRow *row)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1];
	int			ret;
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;
	Datum		d;

	args[0] = CStringGetTextDatum(name);
	ret = SPI_execute_with_args(catalog_is_v1()
								? "SELECT sql, param_types::oid[], tags, ttl_seconds, vary_by_role, "
								"NOT builtin, NULL::oid, CASE WHEN builtin THEN 'housing_cache' END "
								"FROM housing_cache.queries WHERE name = $1"
								: "SELECT sql, param_types::oid[], tags, ttl_seconds, vary_by_role, "
								"fetchable, owner::oid, extension, fragment_sql, fragment_tags, fragments_key "
								"FROM housing_cache.queries WHERE name = $1",
								1, argtypes, args, NULL, true, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read housing_cache.queries: %s", SPI_result_code_string(ret));
	if (SPI_processed == 0)
		return false;

	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	row->sql = SPI_getvalue(tup, desc, 1);
	row->param_types = SPI_getbinval(tup, desc, 2, &isnull);
	row->tags = SPI_getbinval(tup, desc, 3, &isnull);
	d = SPI_getbinval(tup, desc, 4, &isnull);
	row->ttl_seconds = isnull ? 0 : DatumGetInt32(d);
	row->vary_by_role = DatumGetBool(SPI_getbinval(tup, desc, 5, &isnull));
	row->fetchable = DatumGetBool(SPI_getbinval(tup, desc, 6, &isnull));
	d = SPI_getbinval(tup, desc, 7, &isnull);

	/*
	 * A 0.1.0 catalog has no owners: its queries were registered by
	 * superusers (nobody else could write it), so they count as the
	 * catalog owner's.
	 */
	if (isnull)
	{
		HeapTuple	ctup = SearchSysCache1(RELOID, ObjectIdGetDatum(HcCatalogRelid("queries")));

		row->owner = HeapTupleIsValid(ctup) ? ((Form_pg_class) GETSTRUCT(ctup))->relowner
			: BOOTSTRAP_SUPERUSERID;
		if (HeapTupleIsValid(ctup))
			ReleaseSysCache(ctup);
	}
	else
		row->owner = DatumGetObjectId(d);
	row->extension = SPI_getvalue(tup, desc, 8);
	row->fragment_sql = NULL;
	row->fragment_tags = (Datum) 0;
	row->fragments_key = NULL;
	if (desc->natts >= 11)
	{
		row->fragment_sql = SPI_getvalue(tup, desc, 9);
		d = SPI_getbinval(tup, desc, 10, &isnull);
		row->fragment_tags = isnull ? (Datum) 0 : d;
		row->fragments_key = SPI_getvalue(tup, desc, 11);
	}
	return true;
}

/*
 * The extension whose script is running, or NULL.
 */
static char *
current_extension(void)
{
	return creating_extension ? get_extension_name(CurrentExtensionObject) : NULL;
}

/*
 * May the current user replace or remove this query?  Raises the reason if
 * not.
 */
static void
check_query_owner(const char *name, const HcQueryRow *row)
{
	char	   *ext = current_extension();

	/* once its extension is dropped, a query is its owner's */
	if (row->extension != NULL && OidIsValid(get_extension_oid(row->extension, true)))
	{
		if (ext == NULL || strcmp(ext, row->extension) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("cached query \"%s\" belongs to extension \"%s\"", name, row->extension),
					 errdetail("Only that extension's scripts may replace or remove it.")));
	}
	else if (!has_privs_of_role(GetUserId(), row->owner))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("must be owner of cached query \"%s\"", name),
				 errdetail("A registered query can be replaced or removed only by its owner, a member of its owner, or a superuser.")));
}

/*
 * Insert or replace a registered query, owned by the current user.  A query
 * of another owner is replaced only if the current user has that owner's
 * privileges.  Needs SPI; the row is validated by the caller.
 */
void
HcCatalogStoreQuery(const HcQueryRow *composed, const char *name, const char *sql,
					Datum param_types, Datum tags, int ttl_seconds, bool vary_by_role,
					bool fetchable)
{
	Oid			types[12] = {TEXTOID, TEXTOID, REGTYPEARRAYOID, TEXTARRAYOID, INT4OID,
	BOOLOID, BOOLOID, OIDOID, NAMEOID, TEXTOID, TEXTARRAYOID, TEXTOID};
	Datum		values[12];
	char		nulls[12] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', 'n', 'n', 'n'};
	char	   *ext = current_extension();
	HcQueryRow	old;
	int			ret;

	/*
	 * Checked on the row as it is now; the statement below changes it only
	 * if it is still the same owner's (a concurrent registration under the
	 * same name waits for ours, then finds the row changed or not).
	 */
	if (HcCatalogReadQuery(name, &old))
		check_query_owner(name, &old);

	values[0] = CStringGetTextDatum(name);
	values[1] = CStringGetTextDatum(sql);
	values[2] = param_types;
	values[3] = tags;
	values[4] = Int32GetDatum(ttl_seconds);
	nulls[4] = ttl_seconds > 0 ? ' ' : 'n';
	values[5] = BoolGetDatum(vary_by_role);
	values[6] = BoolGetDatum(fetchable);
	values[7] = ObjectIdGetDatum(GetUserId());
	values[8] = ext ? CStringGetDatum(ext) : (Datum) 0;
	nulls[8] = ext ? ' ' : 'n';
	if (composed != NULL && composed->fragment_sql != NULL)
	{
		values[9] = CStringGetTextDatum(composed->fragment_sql);
		values[10] = composed->fragment_tags;
		values[11] = CStringGetTextDatum(composed->fragments_key);
		nulls[9] = nulls[10] = nulls[11] = ' ';
	}

	if (catalog_is_v1() && composed != NULL && composed->fragment_sql != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("composed queries need housing_cache 0.2.0"),
				 errhint("Run ALTER EXTENSION housing_cache UPDATE.")));
	if (catalog_is_v1())
		ret = catalog_execute("INSERT INTO housing_cache.queries "
							  "(name, sql, param_types, tags, ttl_seconds, vary_by_role) "
							  "VALUES ($1, $2, $3, $4, $5, $6) "
							  "ON CONFLICT (name) DO UPDATE SET sql = EXCLUDED.sql, "
							  "param_types = EXCLUDED.param_types, tags = EXCLUDED.tags, "
							  "ttl_seconds = EXCLUDED.ttl_seconds, vary_by_role = EXCLUDED.vary_by_role "
							  "WHERE NOT queries.builtin",
							  6, types, values, nulls);
	else
		ret = catalog_execute("INSERT INTO housing_cache.queries "
							  "(name, sql, param_types, tags, ttl_seconds, vary_by_role, fetchable, owner, extension, "
							  "fragment_sql, fragment_tags, fragments_key) "
							  "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) "
							  "ON CONFLICT (name) DO UPDATE SET sql = EXCLUDED.sql, "
							  "param_types = EXCLUDED.param_types, tags = EXCLUDED.tags, "
							  "ttl_seconds = EXCLUDED.ttl_seconds, vary_by_role = EXCLUDED.vary_by_role, "
							  "fetchable = EXCLUDED.fetchable, owner = EXCLUDED.owner, "
							  "extension = EXCLUDED.extension, fragment_sql = EXCLUDED.fragment_sql, "
							  "fragment_tags = EXCLUDED.fragment_tags, fragments_key = EXCLUDED.fragments_key "
							  "WHERE queries.extension = $9 "
							  "OR (queries.extension IS NULL OR NOT EXISTS "
							  "(SELECT FROM pg_catalog.pg_extension e WHERE e.extname = queries.extension)) "
							  "AND pg_catalog.pg_has_role($8, queries.owner::oid, 'USAGE')",
							  12, types, values, nulls);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "could not store query \"%s\": %s", name, SPI_result_code_string(ret));
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("cached query \"%s\" was changed by another session", name),
				 errhint("Register it again.")));
}

/*
 * Remove a registered query; returns false if there was none.  Refused
 * unless the current user has the privileges of its owner.  Needs SPI.
 */
bool
HcCatalogDeleteQuery(const char *name)
{
	HcQueryRow	row;
	Oid			types[1] = {TEXTOID};
	Datum		values[1];
	int			ret;

	if (!HcCatalogReadQuery(name, &row))
		return false;
	check_query_owner(name, &row);
	values[0] = CStringGetTextDatum(name);
	ret = catalog_execute("DELETE FROM housing_cache.queries WHERE name = $1",
						  1, types, values, NULL);
	if (ret != SPI_OK_DELETE)
		elog(ERROR, "could not remove query \"%s\": %s", name, SPI_result_code_string(ret));
	return SPI_processed > 0;
}

/* ---------- triggers on the catalog ---------- */

/*
 * housing_cache.catalog_guard(): BEFORE statement trigger on both catalog
 * tables.  Only the engine's functions (see catalog_execute) and superusers
 * (pg_restore, an administrator mending a row) write them.
 */
Datum
housing_cache_catalog_guard(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("housing_cache.catalog_guard() must be called as a trigger")));
	if (catalog_writing == 0 && !superuser())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("housing_cache.%s can only be changed through housing_cache's functions",
						RelationGetRelationName(trigdata->tg_relation)),
				 errhint("Use register_query() and unregister_query(), or watch_table() and unwatch_table().")));
	return PointerGetDatum(NULL);
}

/*
 * housing_cache.catalog_changed(): statement trigger on both catalog tables
 * that makes every backend drop its cached definitions when this
 * transaction commits, however the tables were changed: a definition's tags
 * are resolved against the watched tables (registry.c).
 */
Datum
housing_cache_catalog_changed(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	Oid			queries = HcCatalogRelid("queries");

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("housing_cache.catalog_changed() must be called as a trigger")));
	/* the definitions' callback listens for housing_cache.queries */
	if (OidIsValid(queries))
		CacheInvalidateRelcacheByRelid(queries);
	CacheInvalidateRelcache(trigdata->tg_relation);
	return PointerGetDatum(NULL);
}

Datum
housing_cache_queries_changed(PG_FUNCTION_ARGS)
{
	return housing_cache_catalog_changed(fcinfo);
}

/* ---------- WAL invalidation (housing_cache.replication) ---------- */

/*
 * Forget the setting when housing_cache.replication changes (or the whole
 * relcache is reset).
 */
static void
catalog_relcache_callback(Datum arg, Oid relid)
{
	if (!OidIsValid(relid) || relid == replication_relid)
	{
		wal_invalidation = -1;
		replication_relid = InvalidOid;
	}
}

void
HcCatalogInit(void)
{
	CacheRegisterRelcacheCallback(catalog_relcache_callback, (Datum) 0);
}

/*
 * Does the primary log this database's invalidations in WAL (standby.c)?
 * Sets *version, which changes whenever the setting does, if not NULL.
 * With lock, takes RowShareLock on housing_cache.replication until the end
 * of the transaction first, so that the setting cannot change before this
 * transaction commits (set_wal_invalidation() waits for the lock); taking
 * it also processes pending invalidations, so a change committed before is
 * seen.  Read with the latest snapshot, whatever the transaction's
 * isolation level.  A catalog without the table (0.1.0) says no.
 */
bool
HcCatalogWalInvalidation(bool lock, int64 *version)
{
	Oid			relid = HcCatalogRelid("replication");

	if (!OidIsValid(relid))
		return false;
	if (lock)
		LockRelationOid(relid, RowShareLock);
	if (relid != replication_relid)
		wal_invalidation = -1;
	replication_relid = relid;
	if (wal_invalidation < 0)
	{
		int			ret;
		bool		connected = SPI_connect() == SPI_OK_CONNECT;

		if (!connected)
			elog(ERROR, "SPI_connect failed");
		PushActiveSnapshot(GetLatestSnapshot());
		ret = SPI_execute("SELECT wal_invalidation, version FROM housing_cache.replication", true, 1);
		PopActiveSnapshot();
		if (ret != SPI_OK_SELECT)
			elog(ERROR, "could not read housing_cache.replication: %s", SPI_result_code_string(ret));
		if (SPI_processed == 0)
		{
			wal_invalidation = 0;
			wal_version = 0;
		}
		else
		{
			bool		isnull;

			wal_invalidation = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0],
														  SPI_tuptable->tupdesc, 1, &isnull)) ? 1 : 0;
			wal_version = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
													  SPI_tuptable->tupdesc, 2, &isnull));
		}
		SPI_finish();
	}
	if (version)
		*version = wal_version;
	return wal_invalidation == 1;
}

/*
 * Switch WAL invalidation in this database.  Takes ExclusiveLock on
 * housing_cache.replication, so that it waits for every writing
 * transaction that read the setting and has not ended, and the writers
 * that come after read the new one.  Bumps the version, which every key
 * includes.
 */
void
HcCatalogSetWalInvalidation(bool on)
{
	Oid			relid = HcCatalogRelid("replication");
	Oid			types[1] = {BOOLOID};
	Datum		values[1];
	int			ret;

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("housing_cache's catalog has no table replication"),
				 errhint("Run ALTER EXTENSION housing_cache UPDATE.")));
	LockRelationOid(relid, ExclusiveLock);
	values[0] = BoolGetDatum(on);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	ret = catalog_execute("INSERT INTO housing_cache.replication AS r (wal_invalidation, version) "
						  "VALUES ($1, 1) ON CONFLICT (singleton) DO UPDATE "
						  "SET wal_invalidation = EXCLUDED.wal_invalidation, version = r.version + 1",
						  1, types, values, NULL);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "could not update housing_cache.replication: %s", SPI_result_code_string(ret));
	SPI_finish();
	wal_invalidation = -1;
}
