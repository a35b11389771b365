/*-------------------------------------------------------------------------
 *
 * engine.c
 *	  Registered queries and the cached read path.
 *
 * A registered query is a named, parameterized SELECT returning one json or
 * jsonb value, together with the tags its answer depends on.  Tags may name a
 * parameter: 'housing.listings/city=$1' is the tag of the city passed as $1,
 * or, when $1 is NULL, the whole table's tag.  Registration checks that every
 * table the query reads is watched and tagged, and that a parameter used in a
 * tag has exactly the type of the column it names, so that a writer's tag and
 * a reader's tag are spelled the same way.
 *
 * Reading (HcFetch): decide whether the cache may be used at all (bypass
 * reasons below); read the generations of the answer's tags; derive the key;
 * look it up in Redis; on a miss run the query and store the answer.
 *
 * Definitions are cached per backend and dropped when housing_cache.queries
 * changes (its trigger sends a relcache invalidation, see
 * housing_cache_queries_changed).  Plans are kept with SPI_keepplan, so the
 * plan cache revalidates them after DDL.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <float.h>
#include <math.h>

#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/namespace.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_proc.h"
#include "nodes/nodeFuncs.h"
#include "pgtime.h"
#include "utils/bytea.h"
#include "utils/guc.h"
#include "utils/pg_locale.h"
#include "utils/float.h"
#include "utils/syscache.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "common/pg_prng.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "portability/instr_time.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/plancache.h"
#include "utils/rls.h"

#include "housing_cache.h"

PG_FUNCTION_INFO_V1(housing_cache_fetch);
PG_FUNCTION_INFO_V1(housing_cache_register_query);
PG_FUNCTION_INFO_V1(housing_cache_unregister_query);
PG_FUNCTION_INFO_V1(housing_cache_if_none_match);

#define HC_MAX_PARAMS		32
#define HC_MAX_TEMPLATES	(HC_MAX_TAGS / 2)
#define HC_NAME_MAXLEN		63

/*
 * A tag template: a table tag alone, "T/col=$n", or a literal "T/col=value".
 */
typedef struct HcTagTemplate
{
	char	   *table_tag;		/* "housing.listings" */
	char	   *prefix;			/* "housing.listings/city=", NULL if table only */
	int			param;			/* 1-based parameter, 0 for a literal */
	char	   *literal;		/* the whole tag, when param == 0 */
	HcTagSpeller speller;		/* how the column's values are spelled */
	/* generation slots that do not depend on parameters, set at load */
	uint32		table_slot;		/* of the table tag */
	uint32		reset_slot;		/* of the table's reset tag */
	uint32		literal_slot;	/* of the literal tag */
} HcTagTemplate;

typedef struct HcQueryDef
{
	char		name[NAMEDATALEN];	/* hash key */
	bool		valid;
	MemoryContext cxt;			/* everything below that is palloc'd */
	int			nparams;
	Oid			paramtypes[HC_MAX_PARAMS];
	Oid			typoutput[HC_MAX_PARAMS];
	bool		param_is_oid[HC_MAX_PARAMS];	/* a reg* type: keyed by OID */
	int			ntemplates;
	HcTagTemplate templates[HC_MAX_TEMPLATES];
	int			ttl_seconds;	/* 0: housing_cache.default_ttl */
	bool		vary_by_role;
	bool		fetchable;		/* may be called through fetch() */
	Oid			owner;			/* the role that registered it */
	int			nrelids;
	Oid		   *relids;			/* relations the query reads */
	int			nvisible;
	Oid		   *visible;		/* ... with their partitions and children:
								 * whose rows its answer may show */
	int			nfuncs;
	Oid		   *funcs;			/* functions it calls whose EXECUTE is restricted */
	int			nas;
	Oid		   *as_relids;		/* relations read as another role (views) ... */
	Oid		   *as_users;		/* ... and that role */
	bool		keyed_by_role;	/* vary_by_role, or it calls code run as the caller */
	Oid			result_output;	/* output function of the result column */
	uint8		digest[HC_DIGEST_LEN];	/* of the definition */
	SPIPlanPtr	plan;
} HcQueryDef;

HcLastLookup hc_last_lookup;

static HTAB *query_defs = NULL;
static Oid	queries_relid = InvalidOid;
static bool warned_not_preloaded = false;

/* entity tags the next cached call may answer with "not modified" */
static char *if_none_match = NULL;

static void hc_engine_xact_callback(XactEvent event, void *arg);
static void hc_template_slots(HcTagTemplate *tt);

/*
 * Relcache callback: any change to housing_cache.queries (or a reset of the
 * whole relcache) drops every cached definition; a change to a relation a
 * query reads (DDL, a new partition, a column's type) drops the definitions
 * that read it, so that their tag templates are resolved again against the
 * table as it now is.  Plans are freed lazily, on next use, not from inside
 * invalidation processing.
 */
static void
hc_relcache_callback(Datum arg, Oid relid)
{
	HASH_SEQ_STATUS status;
	HcQueryDef *def;
	bool		all;

	if (query_defs == NULL)
		return;
	all = !OidIsValid(relid) || relid == queries_relid;
	if (relid == queries_relid)
		queries_relid = InvalidOid;
	hash_seq_init(&status, query_defs);
	while ((def = hash_seq_search(&status)) != NULL)
	{
		if (all)
			def->valid = false;
		else
			for (int i = 0; i < def->nvisible; i++)
				if (def->visible[i] == relid)
					def->valid = false;
	}
}

void
HcEngineInit(void)
{
	CacheRegisterRelcacheCallback(hc_relcache_callback, (Datum) 0);
	RegisterXactCallback(hc_engine_xact_callback, NULL);
	memset(&hc_last_lookup, 0, sizeof(hc_last_lookup));
}

/* ---------- tag templates ---------- */

/*
 * Parse one tag template.  Fills *tt (allocated in the current context).
 * Only the syntax is checked here; hc_resolve_template checks the meaning.
 */
static void
hc_parse_template(const char *tag, int nparams, HcTagTemplate *tt)
{
	const char *slash = strchr(tag, '/');
	const char *eq;

	memset(tt, 0, sizeof(*tt));
	if (tag[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a tag must not be empty")));
	if (slash == NULL)
	{
		tt->table_tag = pstrdup(tag);
		return;
	}
	eq = strchr(slash, '=');
	if (slash == tag || eq == NULL || eq == slash + 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid tag \"%s\"", tag),
				 errhint("A tag is a table (\"schema.table\"), \"schema.table/column=$n\" or \"schema.table/column=value\".")));
	tt->table_tag = pnstrdup(tag, slash - tag);
	tt->prefix = pnstrdup(tag, eq - tag + 1);
	if (eq[1] == '$')
	{
		char	   *end;
		long		n;

		/* digits only, no sign, blank or leading zero */
		errno = 0;
		n = (eq[2] >= '1' && eq[2] <= '9') ? strtol(eq + 2, &end, 10) : 0;
		if (n == 0 || errno != 0 || *end != '\0' || n < 1 || n > nparams)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("tag \"%s\" refers to a parameter the query does not have", tag),
					 errdetail("The query has %d parameter(s).", nparams)));
		tt->param = (int) n;
	}
	else
		tt->literal = pstrdup(tag);
}

/*
 * A literal of a tag template ("T/col=value") as a value of the column's
 * type.  It is read with fixed settings (TimeZone UTC, DateStyle ISO, MDY,
 * IntervalStyle postgres), so that it means the same value in every session.
 */
static Datum
hc_parse_literal(const char *text, Oid type)
{
	int			nestlevel = NewGUCNestLevel();
	Oid			typinput;
	Oid			typioparam;
	Datum		value;

	(void) set_config_option("TimeZone", "UTC", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	(void) set_config_option("DateStyle", "ISO, MDY", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	(void) set_config_option("IntervalStyle", "postgres", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	getTypeInputInfo(type, &typinput, &typioparam);
	value = OidInputFunctionCall(typinput, (char *) text, typioparam, -1);
	AtEOXact_GUC(true, nestlevel);
	return value;
}

/*
 * Resolve a parsed template against the watched tables: it must name a
 * watched table, and a column in it must be the table's partition or key
 * column, of a type that tags can spell (tag.c), and of the parameter's
 * exact type.  Sets up the template's speller (in the current memory
 * context) and spells a literal as a writer would.  Returns the table.
 * Registration and every load of a definition run it, so that a definition
 * that no longer matches how its table is watched fails instead of going
 * stale.  Needs SPI.
 */
static Oid
hc_resolve_template(const char *tag, HcTagTemplate *tt, const Oid *paramtypes)
{
	Oid			relid;
	char	   *partition_column;
	char	   *id_column;
	char	   *column;
	AttrNumber	attnum;
	Oid			coltype;
	int32		coltypmod;
	Oid			colcollation;

	if (!HcCatalogLookupWatched(tt->table_tag, &relid, &partition_column, &id_column))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("tag \"%s\" names table \"%s\", which is not watched", tag, tt->table_tag),
				 errhint("Call housing_cache.watch_table() for it first; its tag is its schema-qualified name.")));
	if (tt->prefix == NULL)
		return relid;

	column = pnstrdup(tt->prefix + strlen(tt->table_tag) + 1,
					  strlen(tt->prefix) - strlen(tt->table_tag) - 2);
	if (strcmp(column, partition_column) != 0 && strcmp(column, id_column) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("tag \"%s\" names column \"%s\", which is neither the partition column nor the id column of \"%s\"",
						tag, column, tt->table_tag),
				 partition_column[0] && id_column[0]
				 ? errdetail("Its writes are tagged by partition column \"%s\" and id column \"%s\".",
							 partition_column, id_column)
				 : partition_column[0]
				 ? errdetail("Its writes are tagged by partition column \"%s\" only.", partition_column)
				 : id_column[0]
				 ? errdetail("Its writes are tagged by id column \"%s\" only.", id_column)
				 : errdetail("It has no partition column and no single-column primary key.")));

	attnum = get_attnum(relid, column);
	if (attnum == InvalidAttrNumber)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("tag \"%s\" names column \"%s\", which table \"%s\" no longer has",
						tag, column, tt->table_tag)));
	get_atttypetypmodcoll(relid, attnum, &coltype, &coltypmod, &colcollation);
	if (!HcTagSpellerInit(&tt->speller, coltype, colcollation, CurrentMemoryContext))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("tag \"%s\" names column \"%s\" of type %s, which tags cannot follow",
						tag, column, format_type_be(coltype)),
				 errdetail_internal("%s", HcTagSpellingRefusal(coltype)),
				 errhint("Tag the table as a whole (\"%s\") instead.", tt->table_tag)));
	if (tt->param > 0 && coltype != paramtypes[tt->param - 1])
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("parameter $%d is of type %s but column \"%s\" of \"%s\" is of type %s",
						tt->param, format_type_be(paramtypes[tt->param - 1]),
						column, tt->table_tag, format_type_be(coltype)),
				 errhint("Declare the parameter with the column's type, so that its tag matches the writers' tag.")));
	if (tt->param == 0)
	{
		StringInfoData buf;
		Datum		value = hc_parse_literal(tt->literal + strlen(tt->prefix), coltype);

		initStringInfo(&buf);
		appendStringInfoString(&buf, tt->prefix);
		HcTagAppendValue(&buf, &tt->speller, value);
		tt->literal = buf.data;
	}
	return relid;
}

/* ---------- the environment a query runs in ---------- */

/*
 * Registered queries are parsed, planned and run -- and the catalog of
 * queries is read -- with search_path set to pg_catalog alone, whoever calls
 * them: an answer shared by every session must not depend on one session's
 * search_path (a caller could otherwise shadow a function or an operator and
 * poison the cache for everyone).  Queries schema-qualify everything outside
 * pg_catalog.
 *
 * It is set as a GUC at a new nesting level, as fmgr does for a function's
 * SET clause, so that functions the query calls keep their own SET
 * search_path; an error unwinds it with the transaction.
 */
static int
hc_pin_search_path(void)
{
	int			nestlevel = NewGUCNestLevel();

	(void) set_config_option("search_path", "pg_catalog",
							 PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	return nestlevel;
}

static void
hc_unpin_search_path(int nestlevel)
{
	AtEOXact_GUC(true, nestlevel);
}

/*
 * What loading a query learns from its parse tree, for the role checks.
 */
typedef struct HcTreeFacts
{
	List	   *funcs;			/* functions whose EXECUTE is restricted */
	List	   *as_relids;		/* relations read on behalf of another role ... */
	List	   *as_users;		/* ... that role (a view's owner) */
	bool		invoker_code;	/* calls code that runs as the caller */
} HcTreeFacts;

static bool
hc_collect_func(Oid funcid, void *context)
{
	HcTreeFacts *facts = (HcTreeFacts *) context;
	HeapTuple	tup;
	bool		restricted = true;

	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(funcid));
	if (HeapTupleIsValid(tup))
	{
		Form_pg_proc proc = (Form_pg_proc) GETSTRUCT(tup);
		bool		isnull;

		/* built-in functions with default privileges: everyone may run them */
		(void) SysCacheGetAttr(PROCOID, tup, Anum_pg_proc_proacl, &isnull);
		restricted = !(isnull && proc->pronamespace == PG_CATALOG_NAMESPACE);

		/*
		 * A function of its own that runs as the caller may read what the
		 * caller may read (tables it reaches, their row-level security):
		 * nothing here can see inside it, so its answers are per role.
		 */
		if (proc->pronamespace != PG_CATALOG_NAMESPACE && !proc->prosecdef)
			facts->invoker_code = true;
		ReleaseSysCache(tup);
	}
	if (restricted)
		facts->funcs = list_append_unique_oid(facts->funcs, funcid);
	return false;
}

static bool
hc_collect_walker(Node *node, void *context)
{
	HcTreeFacts *facts = (HcTreeFacts *) context;

	if (node == NULL)
		return false;
	if (IsA(node, RangeTblEntry))
	{
		RangeTblEntry *rte = (RangeTblEntry *) node;

		/* a table inside a view is read with the view owner's rights */
		if (rte->rtekind == RTE_RELATION && OidIsValid(rte->checkAsUser))
		{
			facts->as_relids = lappend_oid(facts->as_relids, rte->relid);
			facts->as_users = lappend_oid(facts->as_users, rte->checkAsUser);
		}
		return false;
	}
	if (IsA(node, Query))
		return query_tree_walker((Query *) node, hc_collect_walker, context,
								 QTW_EXAMINE_RTES_BEFORE);
	(void) check_functions_in_node(node, hc_collect_func, context);
	return expression_tree_walker(node, hc_collect_walker, context);
}

/*
 * Session settings that change the text of an answer (how timestamps,
 * intervals, floats, bytea, money and localized dates print): they are part of the key, so a session
 * in another time zone never gets an answer printed for UTC.
 */
static void
hc_key_add_output_settings(HcKeyBuilder *buf)
{
	const char *tz = pg_get_timezone_name(session_timezone);
	int32		settings[5];

	settings[0] = DateStyle;
	settings[1] = DateOrder;
	settings[2] = IntervalStyle;
	settings[3] = extra_float_digits;
	settings[4] = bytea_output;
	HcKeyAdd(buf, settings, sizeof(settings));
	HcKeyAdd(buf, tz, tz ? strlen(tz) : 0);
	HcKeyAdd(buf, locale_monetary, strlen(locale_monetary));
	HcKeyAdd(buf, locale_numeric, strlen(locale_numeric));
	HcKeyAdd(buf, locale_time, strlen(locale_time));
}

/*
 * The OID alias types print an object's name as the caller's search_path
 * would spell it, so the same text can name different objects: parameters of
 * these types are keyed by the OID itself.
 */
static bool
hc_is_reg_type(Oid type)
{
	switch (type)
	{
		case REGCLASSOID:
		case REGPROCOID:
		case REGPROCEDUREOID:
		case REGOPEROID:
		case REGOPERATOROID:
		case REGTYPEOID:
		case REGCONFIGOID:
		case REGDICTIONARYOID:
		case REGNAMESPACEOID:
		case REGROLEOID:
		case REGCOLLATIONOID:
			return true;
		default:
			return false;
	}
}

/* ---------- definitions ---------- */

static void
hc_check_name(const char *name)
{
	int			len = strlen(name);

	if (len == 0 || len > HC_NAME_MAXLEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("query name must be 1 to %d characters long", HC_NAME_MAXLEN)));
	for (const char *p = name; *p; p++)
	{
		if (!(isalnum((unsigned char) *p) || *p == '_' || *p == '.' || *p == '-' || *p == ':'))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("query name \"%s\" contains an invalid character", name),
					 errhint("Use letters, digits, '_', '.', '-' and ':'.")));
	}
}

/*
 * The one plan source of a prepared query, checked to be a plain SELECT of
 * one json or jsonb column.
 */
static CachedPlanSource *
hc_check_plan(SPIPlanPtr plan, const char *name)
{
	List	   *sources = SPI_plan_get_plan_sources(plan);
	CachedPlanSource *ps;
	ListCell   *lc;
	Oid			restype;

	if (list_length(sources) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("query \"%s\" must be a single SELECT statement", name)));
	ps = (CachedPlanSource *) linitial(sources);
	if (ps->commandTag != CMDTAG_SELECT)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("query \"%s\" must be a SELECT statement", name)));
	foreach(lc, ps->query_list)
	{
		Query	   *q = lfirst_node(Query, lc);

		if (q->commandType != CMD_SELECT || q->hasModifyingCTE || q->rowMarks != NIL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("query \"%s\" must only read", name),
					 errdetail("Data-modifying statements and FOR UPDATE/SHARE are not cacheable.")));
	}
	if (ps->resultDesc == NULL || ps->resultDesc->natts != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("query \"%s\" must return exactly one column", name)));
	restype = TupleDescAttr(ps->resultDesc, 0)->atttypid;
	if (restype != JSONOID && restype != JSONBOID)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("query \"%s\" must return json or jsonb, not %s",
						name, format_type_be(restype))));
	return ps;
}

/*
 * Digest of everything that defines a query's answers.  Re-registering a
 * query with another text or other tags gives its answers new keys.
 */
static void
hc_definition_digest(const char *name, const char *sql, int nparams,
					 const Oid *types, Datum tags, bool vary_by_role, Oid owner,
					 uint8 *digest)
{
	HcKeyBuilder buf;

	HcKeyBegin(&buf);
	HcKeyAdd(&buf, name, strlen(name));
	HcKeyAdd(&buf, sql, strlen(sql));
	HcKeyAdd(&buf, types, sizeof(Oid) * nparams);
	HcKeyAdd(&buf, VARDATA_ANY(DatumGetPointer(tags)),
			 VARSIZE_ANY_EXHDR(DatumGetPointer(tags)));
	HcKeyAdd(&buf, &vary_by_role, sizeof(vary_by_role));
	HcKeyAdd(&buf, &owner, sizeof(owner));
	HcKeyDigest(&buf, digest);
}

static void
hc_text_array(Datum arr, Datum **elems, bool **nulls, int *n)
{
	deconstruct_array(DatumGetArrayTypeP(arr), TEXTOID, -1, false, TYPALIGN_INT,
					  elems, nulls, n);
}

static void
hc_oid_array(Datum arr, Datum **elems, bool **nulls, int *n)
{
	deconstruct_array(DatumGetArrayTypeP(arr), OIDOID, sizeof(Oid), true, TYPALIGN_INT,
					  elems, nulls, n);
}

/*
 * Load a definition from housing_cache.queries into def.  Returns false if
 * there is no such query.  Runs inside SPI.
 */
static bool
hc_load_definition(HcQueryDef *def)
{
	HcQueryRow	row;
	char	   *sql;
	Datum		typesd,
				tagsd;
	Datum	   *elems;
	bool	   *elnulls;
	int			n;
	MemoryContext old;
	CachedPlanSource *ps;
	ListCell   *lc;

	if (!HcCatalogReadQuery(def->name, &row))
		return false;
	sql = row.sql;
	typesd = row.param_types;
	tagsd = row.tags;
	def->ttl_seconds = row.ttl_seconds;
	def->vary_by_role = row.vary_by_role;
	def->fetchable = row.fetchable;
	def->owner = row.owner;
	if (!SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(def->owner)))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("the owner of cached query \"%s\" no longer exists", def->name),
				 errhint("Register the query again, as an existing role.")));

	old = MemoryContextSwitchTo(def->cxt);

	hc_oid_array(typesd, &elems, &elnulls, &n);
	if (n > HC_MAX_PARAMS)
		elog(ERROR, "query \"%s\" has too many parameters", def->name);
	def->nparams = n;
	for (int i = 0; i < n; i++)
	{
		bool		varlena;

		def->paramtypes[i] = DatumGetObjectId(elems[i]);
		getTypeOutputInfo(def->paramtypes[i], &def->typoutput[i], &varlena);
		def->param_is_oid[i] = hc_is_reg_type(def->paramtypes[i]);
	}

	hc_text_array(tagsd, &elems, &elnulls, &n);
	if (n > HC_MAX_TEMPLATES)
		elog(ERROR, "query \"%s\" has too many tags", def->name);
	def->ntemplates = n;
	for (int i = 0; i < n; i++)
	{
		char	   *tag = TextDatumGetCString(elems[i]);

		hc_parse_template(tag, def->nparams, &def->templates[i]);
		(void) hc_resolve_template(tag, &def->templates[i], def->paramtypes);
		if (hc_shared != NULL)
			hc_template_slots(&def->templates[i]);
	}

	hc_definition_digest(def->name, sql, def->nparams, def->paramtypes, tagsd,
						 def->vary_by_role, def->owner, def->digest);
	MemoryContextSwitchTo(old);

	def->plan = SPI_prepare(sql, def->nparams, def->paramtypes);
	if (def->plan == NULL)
		elog(ERROR, "could not prepare query \"%s\": %s", def->name,
			 SPI_result_code_string(SPI_result));
	ps = hc_check_plan(def->plan, def->name);
	{
		bool		varlena;

		getTypeOutputInfo(TupleDescAttr(ps->resultDesc, 0)->atttypid,
						  &def->result_output, &varlena);
	}

	old = MemoryContextSwitchTo(def->cxt);
	def->nrelids = list_length(ps->relationOids);
	def->relids = palloc(sizeof(Oid) * Max(def->nrelids, 1));
	n = 0;
	foreach(lc, ps->relationOids)
		def->relids[n++] = lfirst_oid(lc);
	{
		List	   *visible = NIL;

		foreach(lc, ps->relationOids)
			visible = list_concat_unique_oid(visible,
											 find_all_inheritors(lfirst_oid(lc), NoLock, NULL));
		def->nvisible = list_length(visible);
		def->visible = palloc(sizeof(Oid) * Max(def->nvisible, 1));
		n = 0;
		foreach(lc, visible)
			def->visible[n++] = lfirst_oid(lc);
	}
	{
		HcTreeFacts facts = {NIL, NIL, NIL, false};
		ListCell   *lc2;

		foreach(lc, ps->query_list)
			(void) hc_collect_walker((Node *) lfirst(lc), &facts);
		def->nfuncs = list_length(facts.funcs);
		def->funcs = palloc(sizeof(Oid) * Max(def->nfuncs, 1));
		n = 0;
		foreach(lc, facts.funcs)
			def->funcs[n++] = lfirst_oid(lc);
		def->nas = list_length(facts.as_relids);
		def->as_relids = palloc(sizeof(Oid) * Max(def->nas, 1));
		def->as_users = palloc(sizeof(Oid) * Max(def->nas, 1));
		n = 0;
		forboth(lc, facts.as_relids, lc2, facts.as_users)
		{
			def->as_relids[n] = lfirst_oid(lc);
			def->as_users[n++] = lfirst_oid(lc2);
		}
		def->keyed_by_role = def->vary_by_role || facts.invoker_code;
	}
	MemoryContextSwitchTo(old);

	if (SPI_keepplan(def->plan) != 0)
		elog(ERROR, "could not keep the plan of query \"%s\"", def->name);
	def->valid = true;
	return true;
}

/*
 * The definition of a registered query, loaded if needed.
 */
static HcQueryDef *
hc_get_query(const char *name)
{
	HcQueryDef *def;
	bool		found;
	char		key[NAMEDATALEN];

	if (strlen(name) > HC_NAME_MAXLEN)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("cached query \"%.*s...\" does not exist",
						pg_mbcliplen(name, strlen(name), 32), name)));

	if (query_defs == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = NAMEDATALEN;
		ctl.entrysize = sizeof(HcQueryDef);
		query_defs = hash_create("housing_cache queries", 32, &ctl,
								 HASH_ELEM | HASH_STRINGS);
	}
	if (!OidIsValid(queries_relid))
		queries_relid = HcCatalogRelid("queries");

	memset(key, 0, sizeof(key));
	strlcpy(key, name, sizeof(key));
	def = hash_search(query_defs, key, HASH_ENTER, &found);
	if (found && def->valid)
		return def;

	if (found)
	{
		if (def->plan)
			SPI_freeplan(def->plan);
		if (def->cxt)
			MemoryContextDelete(def->cxt);
	}
	memset(((char *) def) + NAMEDATALEN, 0, sizeof(HcQueryDef) - NAMEDATALEN);
	def->cxt = AllocSetContextCreate(TopMemoryContext, "housing_cache query",
									 ALLOCSET_SMALL_SIZES);

	PG_TRY();
	{
		bool		exists;
		int			nestlevel;

		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		nestlevel = hc_pin_search_path();
		exists = hc_load_definition(def);
		hc_unpin_search_path(nestlevel);
		SPI_finish();
		if (!exists)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("cached query \"%s\" does not exist", name),
					 errhint("Register it with housing_cache.register_query().")));
	}
	PG_CATCH();
	{
		if (def->plan)
			SPI_freeplan(def->plan);
		MemoryContextDelete(def->cxt);
		hash_search(query_defs, key, HASH_REMOVE, NULL);
		PG_RE_THROW();
	}
	PG_END_TRY();
	return def;
}

/* ---------- the read path ---------- */

/*
 * Who runs a registered query for the current user: the caller, when the
 * query's owner has every privilege the caller has (the owner is the
 * caller, a superuser, or a role the caller's privileges are part of), so
 * that the owner's code gains nothing by running with the caller's rights;
 * otherwise its owner, like a view or a SECURITY DEFINER function.  Never
 * someone else's code with the caller's rights that its owner does not have.
 */
static Oid
hc_runner(HcQueryDef *def)
{
	Oid			caller = GetUserId();

	return has_privs_of_role(def->owner, caller) ? caller : def->owner;
}

/*
 * A query run as its owner on behalf of the caller gives the caller nothing
 * the caller could not read itself: the caller needs SELECT on every
 * relation and EXECUTE on every restricted function, as if it ran the query.
 * Row-level security that would apply to the caller cannot be honoured
 * (the owner's policies would apply), nor can the query run with the
 * caller's rights: refused.
 */
static void
hc_check_on_behalf(HcQueryDef *def, Oid caller)
{
	for (int i = 0; i < def->nrelids; i++)
	{
		bool		missing = false;

		if (pg_class_aclcheck_ext(def->relids[i], caller, ACL_SELECT, &missing) != ACLCHECK_OK)
		{
			if (missing)
				ereport(ERROR,
						(errcode(ERRCODE_UNDEFINED_TABLE),
						 errmsg("relation with OID %u does not exist", def->relids[i])));
			aclcheck_error(ACLCHECK_NO_PRIV, get_relkind_objtype(get_rel_relkind(def->relids[i])),
						   get_rel_name(def->relids[i]));
		}
		if (check_enable_rls(def->relids[i], caller, true) == RLS_ENABLED)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("cached query \"%s\" cannot be run for role \"%s\"",
							def->name, GetUserNameFromId(caller, false)),
					 errdetail("Row-level security applies to the role on table \"%s\", and the query's owner \"%s\" does not have the role's privileges.",
							   get_rel_name(def->relids[i]), GetUserNameFromId(def->owner, false)),
					 errhint("Register the query as a role that has the caller's privileges, or as the caller.")));
	}
	for (int i = 0; i < def->nfuncs; i++)
	{
		if (pg_proc_aclcheck(def->funcs[i], caller, ACL_EXECUTE) != ACLCHECK_OK)
			aclcheck_error(ACLCHECK_NO_PRIV, OBJECT_FUNCTION, get_func_name(def->funcs[i]));
	}
}

/*
 * Why the cache must not be used for this call, or NULL if it may be.
 * runner is the role the query runs as (hc_runner).
 */
static const char *
hc_bypass_reason(HcQueryDef *def, Oid runner)
{
	Oid			userid;

	if (!hc_enabled)
		return "disabled";
	if (hc_shared == NULL)
	{
		if (!warned_not_preloaded)
		{
			warned_not_preloaded = true;
			ereport(NOTICE,
					(errmsg("housing_cache is not loaded through shared_preload_libraries, so answers are not cached"),
					 errhint("Add housing_cache to shared_preload_libraries in postgresql.conf and restart the server.")));
		}
		return "not preloaded";
	}
	/* a standby has no triggers: it never learns of the primary's writes */
	if (RecoveryInProgress())
		return "standby";
	/* their snapshot is older than the generations we would read */
	if (IsolationUsesXactSnapshot())
		return "snapshot isolation";
	/* the query could see this transaction's uncommitted rows */
	if (HcXactMayHaveWritten(def->visible, def->nvisible))
		return "own writes";

	/*
	 * An answer computed for one role may reach another only if both can read
	 * every row of every relation involved (table-level SELECT, no row-level
	 * security in force) and may run every restricted function it calls.
	 */
	userid = GetUserId();
	for (int i = 0; i < def->nrelids; i++)
	{
		bool		missing = false;

		if (pg_class_aclcheck_ext(def->relids[i], userid, ACL_SELECT, &missing) != ACLCHECK_OK)
			return missing ? "relation missing" : "no select privilege";
		if (check_enable_rls(def->relids[i], runner, true) == RLS_ENABLED)
			return "row level security";
	}
	/* row-level security applied as a view's owner may still test current_user */
	for (int i = 0; i < def->nas; i++)
	{
		if (check_enable_rls(def->as_relids[i], def->as_users[i], true) == RLS_ENABLED)
			return "row level security";
	}
	for (int i = 0; i < def->nfuncs; i++)
	{
		if (pg_proc_aclcheck(def->funcs[i], userid, ACL_EXECUTE) != ACLCHECK_OK)
			return "no execute privilege";
	}
	return NULL;
}

/*
 * The slots of a template's fixed tags, computed once per definition.
 */
static void
hc_template_slots(HcTagTemplate *tt)
{
	char	   *reset = psprintf("%s/*", tt->table_tag);

	tt->table_slot = HcTagSlot(tt->table_tag, strlen(tt->table_tag));
	tt->reset_slot = HcTagSlot(reset, strlen(reset));
	if (tt->literal)
		tt->literal_slot = HcTagSlot(tt->literal, strlen(tt->literal));
	pfree(reset);
}

/*
 * The generation slots an answer depends on, deduplicated.  A template with
 * a parameter depends on the tag spelled with the parameter's canonical text
 * (and the table's reset tag), or, when the parameter is NULL, on the table.
 */
static int
hc_answer_slots(HcQueryDef *def, Datum *values, bool *nulls, char **canon,
				uint32 *slots)
{
	int			n = 0;
	char		local[256];

	for (int i = 0; i < def->ntemplates; i++)
	{
		HcTagTemplate *tt = &def->templates[i];
		uint32		s[2];
		int			ns = 0;

		if (tt->prefix == NULL || (tt->param > 0 && nulls[tt->param - 1]))
			s[ns++] = tt->table_slot;
		else
		{
			if (tt->param > 0 && tt->speller.how == HC_SPELL_TEXT)
			{
				/* the parameter's text is its spelling: no second output call */
				size_t		plen = strlen(tt->prefix);
				size_t		vlen = strlen(canon[tt->param - 1]);
				char	   *tag = (plen + vlen <= sizeof(local)) ? local : palloc(plen + vlen);

				memcpy(tag, tt->prefix, plen);
				memcpy(tag + plen, canon[tt->param - 1], vlen);
				s[ns++] = HcTagSlot(tag, (int) (plen + vlen));
				if (tag != local)
					pfree(tag);
			}
			else if (tt->param > 0)
			{
				StringInfoData tag;

				initStringInfo(&tag);
				appendStringInfoString(&tag, tt->prefix);
				HcTagAppendValue(&tag, &tt->speller, values[tt->param - 1]);
				s[ns++] = HcTagSlot(tag.data, tag.len);
				pfree(tag.data);
			}
			else
				s[ns++] = tt->literal_slot;
			s[ns++] = tt->reset_slot;
		}
		for (int j = 0; j < ns; j++)
		{
			bool		dup = false;

			for (int k = 0; k < n; k++)
				dup |= (slots[k] == s[j]);
			if (!dup)
				slots[n++] = s[j];
		}
	}
	return n;
}

/*
 * Execute a query's plan as runner.  A cached query only reads: whatever it
 * calls runs as in a read-only transaction, so that no fill writes (a hit,
 * which runs nothing, behaves the same).  Run as its owner, it is a
 * restricted operation, as a view or a maintenance command runs for another
 * role.  Inside SPI.
 */
static int
hc_execute_as(HcQueryDef *def, Oid runner, Datum *values, const char *nullflags)
{
	Oid			save_userid;
	int			save_sec;
	bool		save_read_only = XactReadOnly;
	volatile int ret = 0;

	GetUserIdAndSecContext(&save_userid, &save_sec);
	if (runner != save_userid)
		SetUserIdAndSecContext(runner, save_sec | SECURITY_LOCAL_USERID_CHANGE |
							   SECURITY_RESTRICTED_OPERATION);
	XactReadOnly = true;
	PG_TRY();
	{
		ret = SPI_execute_plan(def->plan, values, nullflags, false, 2);
	}
	PG_FINALLY();
	{
		XactReadOnly = save_read_only;
		SetUserIdAndSecContext(save_userid, save_sec);
	}
	PG_END_TRY();
	return ret;
}

/*
 * Run the query.  Returns its answer as text in the caller's memory context,
 * or NULL (with *isnull) when it returned no row or SQL NULL.
 *
 * read_only = false makes SPI take a fresh snapshot, after the generations
 * were read: see invalidate.c.
 */
static char *
hc_run_query(HcQueryDef *def, Oid runner, Datum *values, bool *nulls,
			 bool *isnull, uint32 *len)
{
	MemoryContext caller = CurrentMemoryContext;
	char		nullflags[HC_MAX_PARAMS];
	int			ret;
	char	   *result = NULL;
	int			nestlevel;

	for (int i = 0; i < def->nparams; i++)
		nullflags[i] = nulls[i] ? 'n' : ' ';

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	nestlevel = hc_pin_search_path();

	ret = hc_execute_as(def, runner, values, nullflags);
	hc_unpin_search_path(nestlevel);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "cached query \"%s\" failed: %s", def->name, SPI_result_code_string(ret));
	HcStatInc(HC_STAT_DB_EXECUTIONS);
	if (SPI_processed > 1)
		ereport(ERROR,
				(errcode(ERRCODE_CARDINALITY_VIOLATION),
				 errmsg("cached query \"%s\" returned more than one row", def->name)));
	*isnull = true;
	if (SPI_processed == 1)
	{
		bool		null;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &null);

		if (!null)
		{
			char	   *text = OidOutputFunctionCall(def->result_output, d);

			*len = strlen(text);
			result = MemoryContextStrdup(caller, text);
			*isnull = false;
		}
	}
	SPI_finish();
	return result;
}

static int64
hc_elapsed_us(instr_time start)
{
	instr_time	now;

	INSTR_TIME_SET_CURRENT(now);
	INSTR_TIME_SUBTRACT(now, start);
	return INSTR_TIME_GET_MICROSEC(now);
}

static void
hc_record(HcTier tier, const char *key, const char *bypass_reason, instr_time start,
		  int32 ttl_remaining_s)
{
	hc_last_lookup.tier = tier;
	strlcpy(hc_last_lookup.key, key ? key : "", sizeof(hc_last_lookup.key));
	strlcpy(hc_last_lookup.bypass_reason, bypass_reason ? bypass_reason : "",
			sizeof(hc_last_lookup.bypass_reason));
	hc_last_lookup.elapsed_us = hc_elapsed_us(start);
	hc_last_lookup.ttl_remaining_s = ttl_remaining_s;
}

/* seconds left of an answer's TTL, at least 0 */
static int32
hc_ttl_remaining(const HcValue *v, TimestampTz now)
{
	int64		left_us = v->created_at + (int64) v->ttl_ms * 1000 - now;

	return (int32) Max(left_us / 1000000, 0);
}

static void
hc_clear_if_none_match(void)
{
	if (if_none_match)
	{
		pfree(if_none_match);
		if_none_match = NULL;
	}
}

/*
 * A conditional set for the next call never outlives its transaction, even
 * if that call never happened (it failed its argument checks, or was a
 * STRICT function called with NULL).
 */
static void
hc_engine_xact_callback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PREPARE)
		hc_clear_if_none_match();
}

/*
 * Does the If-None-Match list (set by housing_cache.if_none_match()) name
 * the entity tag of this key?  Entity tags are the key's hex digits in
 * quotes; weak ("W/") and strong tags compare alike, as RFC 9110 says for
 * If-None-Match.
 */
static bool
hc_etag_matches(const char *list, const char *key)
{
	const char *hex = key + strlen(key) - 2 * HC_DIGEST_LEN;
	const char *p = list;

	while (p && *p)
	{
		const char *end;

		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (strncmp(p, "W/", 2) == 0)
			p += 2;
		if (*p != '"')
			break;
		end = strchr(p + 1, '"');
		if (end == NULL)
			break;
		if (end - p - 1 == 2 * HC_DIGEST_LEN && strncmp(p + 1, hex, 2 * HC_DIGEST_LEN) == 0)
			return true;
		p = end + 1;
	}
	return false;
}

/*
 * The conditional set for the next call, taken by that call's entry point
 * before anything else (so that a call failing its argument checks consumes
 * it too).  A copy in the call's memory context, or NULL.
 */
char *
HcTakeIfNoneMatch(void)
{
	char	   *taken = if_none_match ? pstrdup(if_none_match) : NULL;

	hc_clear_if_none_match();
	return taken;
}

/*
 * housing_cache.if_none_match(etags text) RETURNS void
 *
 * The value of an HTTP If-None-Match header, for the next cached call of
 * this transaction only: if the answer it would serve has one of these entity
 * tags, it fetches nothing, returns NULL, and last_lookup() reports tier
 * 'not_modified'.  NULL clears it; so does a value over 64 kB.
 */
Datum
housing_cache_if_none_match(PG_FUNCTION_ARGS)
{
	hc_clear_if_none_match();
	if (!PG_ARGISNULL(0))
	{
		text	   *t = PG_GETARG_TEXT_PP(0);

		/*
		 * A header this long is legal HTTP but no client of ours sends one:
		 * treat it as no condition (a full answer), not as an error.
		 */
		if (VARSIZE_ANY_EXHDR(t) <= 65536)
			if_none_match = MemoryContextStrdup(TopMemoryContext, text_to_cstring(t));
	}
	PG_RETURN_VOID();
}

static uint32
hc_ttl_ms(HcQueryDef *def)
{
	double		ttl = (def->ttl_seconds > 0 ? def->ttl_seconds : hc_default_ttl) * 1000.0;
	double		spread = ttl * hc_ttl_jitter_pct / 100.0;

	ttl += spread * (2.0 * pg_prng_double(&pg_global_prng_state) - 1.0);
	return (uint32) Max(ttl, 1000.0);
}

static Datum
hc_json_datum(const char *data, uint32 len)
{
	return PointerGetDatum(cstring_to_text_with_len(data, len));
}

/* a cached answer as a json Datum, without copying it when possible */
static Datum
hc_value_datum(HcValue *v)
{
	if (v->varlena != NULL)
	{
		SET_VARSIZE(v->varlena, VARHDRSZ + v->len);
		return PointerGetDatum(v->varlena);
	}
	return hc_json_datum(v->data, v->len);
}

/*
 * XFetch (Vattani, Chierichetti and Lowenstein, VLDB 2015): recompute a
 * valid answer early, with a probability that rises as its TTL runs out and
 * with the time it took to compute, so that one session refreshes it before
 * everyone misses at once.  *expired says the TTL has already run out.
 */
static bool
hc_wants_refresh(const HcValue *v, TimestampTz now, bool *expired)
{
	TimestampTz expiry = v->created_at + (int64) v->ttl_ms * 1000;
	double		r;

	*expired = (now >= expiry);
	if (*expired)
		return true;
	if (hc_xfetch_beta <= 0)
		return false;
	/* -ln(r) > 40 has probability e^-40: far from expiry, skip the draw */
	if ((double) (expiry - now) > 40.0 * v->compute_us * hc_xfetch_beta)
		return false;
	r = pg_prng_double(&pg_global_prng_state);
	if (r <= 0.0)
		r = DBL_MIN;
	return now + (int64) (v->compute_us * hc_xfetch_beta * -log(r)) >= expiry;
}

/*
 * Serve a registered query: from the cache when allowed and present,
 * otherwise by running it (and storing the answer).  Returns a json Datum.
 *
 * Order: L1, then L2 (a hit fills L1), then the query.  A miss claims the
 * fill (singleflight.c) or waits for the session that has, then looks again.
 * An answer found near the end of its TTL is refreshed by the one session
 * that claims it, while the others keep serving it.
 */
Datum
HcFetch(const char *name, int nargs, Datum *values, bool *nulls,
		const char *conditional, bool *isnull)
{
	instr_time	start;
	HcQueryDef *def;
	const char *reason;
	char	   *canon[HC_MAX_PARAMS];
	uint32		slots[HC_MAX_TAGS];
	uint64		gens[HC_MAX_TAGS];
	int			nslots;
	HcKeyBuilder keybuf;
	uint8		digest[HC_DIGEST_LEN];
	char		key[HC_KEY_MAXLEN];
	HcValue		value;
	char	   *result;
	uint32		len = 0;
	int64		compute_us;
	instr_time	fill_start;
	TimestampTz deadline;
	int			flight = -1;
	bool		in_l1;
	bool		run_now = false;
	TimestampTz now;
	Oid			caller = GetUserId();
	Oid			runner;

	INSTR_TIME_SET_CURRENT(start);
	def = hc_get_query(name);
	if (nargs != def->nparams)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cached query \"%s\" takes %d parameter(s), %d given",
						name, def->nparams, nargs)));

	runner = hc_runner(def);
	if (runner != caller)
		hc_check_on_behalf(def, caller);
	reason = hc_bypass_reason(def, runner);
	if (reason == NULL)
	{
		for (int i = 0; i < nargs; i++)
			canon[i] = nulls[i] ? NULL
				: def->param_is_oid[i] ? psprintf("%u", DatumGetObjectId(values[i]))
				: OidOutputFunctionCall(def->typoutput[i], values[i]);
		nslots = hc_answer_slots(def, values, nulls, canon, slots);
		if (!HcReadGenerations(slots, nslots, gens))
			reason = "write in flight";
	}
	if (reason != NULL)
	{
		HcStatInc(HC_STAT_BYPASSES);
		result = hc_run_query(def, runner, values, nulls, isnull, &len);
		hc_record(HC_TIER_BYPASS, NULL, reason, start, -1);
		return *isnull ? (Datum) 0 : hc_json_datum(result, len);
	}

	/* the key: namespace, definition, role if it matters, parameters, generations */
	HcKeyInit(&keybuf);
	HcKeyAdd(&keybuf, def->digest, HC_DIGEST_LEN);
	hc_key_add_output_settings(&keybuf);
	if (def->keyed_by_role)
	{
		HcKeyAdd(&keybuf, &caller, sizeof(caller));
		HcKeyAdd(&keybuf, &runner, sizeof(runner));
	}
	for (int i = 0; i < nargs; i++)
		HcKeyAdd(&keybuf, canon[i], canon[i] ? strlen(canon[i]) : 0);
	HcKeyAdd(&keybuf, gens, sizeof(uint64) * nslots);
	HcKeyFinish(&keybuf, digest, key);

	/*
	 * The key covers the generations of every tag, none in flight: if the
	 * client holds the answer of this key, it holds the current answer.
	 */
	if (conditional != NULL && hc_etag_matches(conditional, key))
	{
		int			ttl = def->ttl_seconds > 0 ? def->ttl_seconds : hc_default_ttl;

		/* the answer's expiry, if L1 has it; else the shortest it can be */
		now = GetCurrentTimestamp();
		if (HcL1Peek(digest, &value))
			ttl = hc_ttl_remaining(&value, now);
		else
			ttl -= ttl * hc_ttl_jitter_pct / 100;
		hc_record(HC_TIER_NOT_MODIFIED, key, NULL, start, ttl);
		*isnull = true;
		return (Datum) 0;
	}

	now = GetCurrentTimestamp();
	deadline = now + (int64) hc_fill_wait_ms * 1000;
	for (;;)
	{
		HcTier		tier = HC_TIER_NONE;
		bool		expired;

		if (HcL1Get(digest, &value))
			tier = HC_TIER_L1;
		else if (HcRedisGet(key, digest, &value) == HC_REDIS_HIT)
			tier = HC_TIER_L2;

		if (tier != HC_TIER_NONE)
		{
			HcFlightResult claim = HC_FLIGHT_BUSY;

			if (hc_wants_refresh(&value, now, &expired))
				claim = HcFlightBegin(digest, false, 0, &flight);
			if (claim == HC_FLIGHT_DONE || claim == HC_FLIGHT_DONE_UNSTORED)
				claim = HC_FLIGHT_BUSY;
			if (claim == HC_FLIGHT_BUSY)
			{
				/* fresh enough, or someone else is refreshing it */
				if (tier == HC_TIER_L2)
					(void) HcL1Put(digest, &value);
				HcStatInc(tier == HC_TIER_L1 ? HC_STAT_L1_HITS : HC_STAT_L2_HITS);
				if (expired)
					HcStatInc(HC_STAT_STALE_SERVED);
				hc_record(tier, key, NULL, start, hc_ttl_remaining(&value, now));
				*isnull = value.isnull;
				return value.isnull ? (Datum) 0 : hc_value_datum(&value);
			}
			HcStatInc(HC_STAT_EARLY_REFRESHES);
			break;
		}

		if (!hc_single_flight || run_now)
			break;
		switch (HcFlightBegin(digest, true, deadline, &flight))
		{
			case HC_FLIGHT_OWNER:
				/* a fill may have completed since we looked */
				if (HcL1Get(digest, &value))
				{
					HcFlightEnd(flight, HC_FILL_STORED);
					HcStatInc(HC_STAT_L1_HITS);
					hc_record(HC_TIER_L1, key, NULL, start, hc_ttl_remaining(&value, now));
					*isnull = value.isnull;
					return value.isnull ? (Datum) 0 : hc_value_datum(&value);
				}
				break;
			case HC_FLIGHT_DONE:
				now = GetCurrentTimestamp();
				continue;		/* look again; the filler stored the answer */
			case HC_FLIGHT_DONE_UNSTORED:
				/*
				 * The answer could not be stored (too large, Redis down and
				 * L1 too small): waiting for the next filler would queue
				 * every waiter behind the one before.  Look once more, then
				 * compute without a claim.
				 */
				run_now = true;
				flight = -1;
				now = GetCurrentTimestamp();
				continue;
			default:
				/* timed out or no free claim: compute without one */
				flight = -1;
				break;
		}
		break;
	}

	/*
	 * Compute, holding the claim (if any) until the answer is stored; on any
	 * error the claim is released as failed, so that a waiter takes over.
	 */
	HcStatInc(HC_STAT_MISSES);
	INSTR_TIME_SET_CURRENT(fill_start);
	PG_TRY();
	{
		result = hc_run_query(def, runner, values, nulls, isnull, &len);
		compute_us = hc_elapsed_us(fill_start);

		value.isnull = *isnull;
		value.data = result;
		value.varlena = NULL;
		value.len = *isnull ? 0 : len;
		now = GetCurrentTimestamp();
		value.created_at = now;
		value.compute_us = (uint32) Min(compute_us, (int64) PG_UINT32_MAX);
		value.ttl_ms = hc_ttl_ms(def);

		if (value.len > (uint32) hc_max_value_bytes)
		{
			HcStatInc(HC_STAT_OVERSIZE);
			if (flight >= 0)
				HcFlightEnd(flight, HC_FILL_UNSTORED);
		}
		else
		{
			bool		in_l2;

			/* waiters look in L1 first: release them as soon as it holds the answer */
			in_l1 = HcL1Put(digest, &value);
			if (in_l1 && flight >= 0)
				HcFlightEnd(flight, HC_FILL_STORED);
			in_l2 = HcRedisSet(key, digest, &value);
			if (in_l2)
				HcStatInc(HC_STAT_L2_STORES);
			if (!in_l1 && flight >= 0)
				HcFlightEnd(flight, in_l2 ? HC_FILL_STORED : HC_FILL_UNSTORED);
		}
	}
	PG_CATCH();
	{
		if (flight >= 0)
			HcFlightEnd(flight, HC_FILL_FAILED);
		PG_RE_THROW();
	}
	PG_END_TRY();
	hc_record(HC_TIER_MISS, key, NULL, start, hc_ttl_remaining(&value, now));
	return *isnull ? (Datum) 0 : hc_json_datum(result, len);
}

/*
 * housing_cache.fetch(name text, VARIADIC params text[]) RETURNS json
 *
 * Parameters arrive as text and are converted with the registered types'
 * input functions, so '042' and '42' for an integer are the same answer.
 */
Datum
housing_cache_fetch(PG_FUNCTION_ARGS)
{
	char	   *name;
	HcQueryDef *def;
	Datum	   *elems = NULL;
	bool	   *elnulls = NULL;
	int			n = 0;
	Datum		values[HC_MAX_PARAMS];
	bool		nulls[HC_MAX_PARAMS];
	bool		isnull;
	Datum		result;
	char	   *conditional = HcTakeIfNoneMatch();

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("query name must not be NULL")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	def = hc_get_query(name);
	if (!def->fetchable)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("cached query \"%s\" cannot be fetched directly", name),
				 errdetail("It was registered with fetchable => false: it is served only through a function of its own, which checks the arguments.")));

	if (!PG_ARGISNULL(1))
	{
		ArrayType  *arr = PG_GETARG_ARRAYTYPE_P(1);

		if (ARR_NDIM(arr) > 1)
			ereport(ERROR,
					(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
					 errmsg("parameters must be a one-dimensional array")));
		deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &elnulls, &n);
	}
	if (n != def->nparams)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cached query \"%s\" takes %d parameter(s), %d given",
						name, def->nparams, n)));

	for (int i = 0; i < n; i++)
	{
		Oid			typinput;
		Oid			typioparam;

		nulls[i] = elnulls[i];
		values[i] = (Datum) 0;
		if (!nulls[i])
		{
			getTypeInputInfo(def->paramtypes[i], &typinput, &typioparam);
			values[i] = OidInputFunctionCall(typinput, TextDatumGetCString(elems[i]),
											 typioparam, -1);
		}
	}

	result = HcFetch(name, n, values, nulls, conditional, &isnull);
	if (isnull)
		PG_RETURN_NULL();
	PG_RETURN_DATUM(result);
}

/*
 * housing_cache.register_query(name, sql, param_types, tags, ttl_seconds,
 *								 vary_by_role) RETURNS void
 */
Datum
housing_cache_register_query(PG_FUNCTION_ARGS)
{
	char	   *name;
	char	   *sql;
	Datum	   *elems;
	bool	   *elnulls;
	int			nparams = 0;
	int			ntags;
	Oid			types[HC_MAX_PARAMS];
	Oid			tag_relids[HC_MAX_TEMPLATES];
	SPIPlanPtr	plan;
	CachedPlanSource *ps;
	ListCell   *lc;
	int			nestlevel;

	for (int i = 0; i < 4; i++)
		if (PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s must not be NULL",
							i == 0 ? "name" : i == 1 ? "sql" : i == 2 ? "param_types" : "tags")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	sql = text_to_cstring(PG_GETARG_TEXT_PP(1));
	hc_check_name(name);
	if (sql[strspn(sql, " \t\r\n")] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("sql must not be empty")));

	hc_oid_array(PG_GETARG_DATUM(2), &elems, &elnulls, &nparams);
	if (nparams > HC_MAX_PARAMS)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("a cached query takes at most %d parameters", HC_MAX_PARAMS)));
	for (int i = 0; i < nparams; i++)
	{
		if (elnulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("param_types must not contain NULL")));
		types[i] = DatumGetObjectId(elems[i]);
	}

	if (!PG_ARGISNULL(4) && (PG_GETARG_INT32(4) < 1 || PG_GETARG_INT32(4) > 30 * 24 * 3600))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("ttl_seconds must be between 1 and %d, or NULL for housing_cache.default_ttl",
						30 * 24 * 3600)));

	hc_text_array(PG_GETARG_DATUM(3), &elems, &elnulls, &ntags);
	if (ntags < 1 || ntags > HC_MAX_TEMPLATES)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a cached query needs 1 to %d tags, got %d", HC_MAX_TEMPLATES, ntags),
				 errhint("Tag every table the query reads: \"schema.table\" or \"schema.table/column=$n\".")));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	nestlevel = hc_pin_search_path();

	for (int i = 0; i < ntags; i++)
	{
		HcTagTemplate tt;
		char	   *tag;

		if (elnulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("tags must not contain NULL")));
		tag = TextDatumGetCString(elems[i]);
		hc_parse_template(tag, nparams, &tt);
		tag_relids[i] = hc_resolve_template(tag, &tt, types);
	}

	plan = SPI_prepare(sql, nparams, types);
	if (plan == NULL)
		elog(ERROR, "could not prepare query \"%s\": %s", name, SPI_result_code_string(SPI_result));
	ps = hc_check_plan(plan, name);

	/* every table the query reads must be watched and tagged */
	foreach(lc, ps->relationOids)
	{
		Oid			relid = lfirst_oid(lc);
		char		relkind = get_rel_relkind(relid);
		bool		tagged = false;

		if (relkind != RELKIND_RELATION && relkind != RELKIND_PARTITIONED_TABLE)
			continue;
		if (get_rel_namespace(relid) == PG_CATALOG_NAMESPACE)
			continue;
		/* its owner will run it for callers it could not otherwise serve */
		if (pg_class_aclcheck(relid, GetUserId(), ACL_SELECT) != ACLCHECK_OK)
			aclcheck_error(ACLCHECK_NO_PRIV, OBJECT_TABLE, get_rel_name(relid));
		for (int i = 0; i < ntags; i++)
			tagged |= (tag_relids[i] == relid);
		if (!tagged)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("query \"%s\" reads table \"%s.%s\", which none of its tags names",
							name, get_namespace_name(get_rel_namespace(relid)), get_rel_name(relid)),
					 errhint("Watch the table with housing_cache.watch_table() and add its tag, or a \"table/column=$n\" tag.")));
	}
	SPI_freeplan(plan);

	HcCatalogStoreQuery(name, sql, PG_GETARG_DATUM(2), PG_GETARG_DATUM(3),
						PG_ARGISNULL(4) ? 0 : PG_GETARG_INT32(4),
						!PG_ARGISNULL(5) && PG_GETARG_BOOL(5),
						/* 0.1.0's definition has no fetchable argument */
						PG_NARGS() < 7 || PG_ARGISNULL(6) || PG_GETARG_BOOL(6));
	hc_unpin_search_path(nestlevel);
	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * housing_cache.unregister_query(name text) RETURNS boolean
 *
 * Remove a registered query; returns whether it existed.  Only its owner
 * (or a member of it, or a superuser) may.
 */
Datum
housing_cache_unregister_query(PG_FUNCTION_ARGS)
{
	char	   *name;
	bool		found;
	int			nestlevel;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	nestlevel = hc_pin_search_path();
	found = HcCatalogDeleteQuery(name);
	hc_unpin_search_path(nestlevel);
	SPI_finish();
	PG_RETURN_BOOL(found);
}
