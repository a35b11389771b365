/*-------------------------------------------------------------------------
 *
 * registry.c
 *	  Registered queries: their definitions, checked and cached per backend.
 *
 * A registered query is a named, parameterized SELECT returning one json or
 * jsonb value, together with the tags its answer depends on.  Tags may name a
 * parameter: 'housing.listings/city=$1' is the tag of the city passed as $1,
 * or, when $1 is NULL, the whole table's tag.  Registration checks that every
 * table the query reads is watched and tagged, that a parameter used in a
 * tag has exactly the type of the column it names, and that the column's
 * values can be spelled in tags (tag.c), so that a writer's tag and a
 * reader's tag are spelled alike exactly when the values are equal.  Who may
 * register and replace queries is in catalog.c; the read path in fetch.c.
 *
 * Definitions are cached per backend and dropped when the catalog changes
 * (its triggers send a relcache invalidation, catalog.c) or when a relation
 * the query reads does (DDL, a new partition, a changed column type): every
 * load checks the tags against the watched tables again, so a definition
 * that no longer matches how its tables are watched fails instead of going
 * stale.  Plans are kept with SPI_keepplan, so the plan cache revalidates
 * them after DDL.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "parser/parsetree.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/plancache.h"
#include "utils/syscache.h"

#include "housing_cache.h"

PG_FUNCTION_INFO_V1(housing_cache_register_query);
PG_FUNCTION_INFO_V1(housing_cache_unregister_query);

#define HC_NAME_MAXLEN		63

static HTAB *query_defs = NULL;
static Oid	queries_relid = InvalidOid;

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
HcRegistryInit(void)
{
	CacheRegisterRelcacheCallback(hc_relcache_callback, (Datum) 0);
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
int
HcPinSearchPath(void)
{
	int			nestlevel = NewGUCNestLevel();

	(void) set_config_option("search_path", "pg_catalog",
							 PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	return nestlevel;
}

void
HcUnpinSearchPath(int nestlevel)
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
/*
 * The one statement of a prepared query, checked to be a SELECT that only
 * reads; what names it in errors ("query \"q\"", "the fragment query of
 * \"q\"").
 */
static CachedPlanSource *
hc_check_reads(SPIPlanPtr plan, const char *what)
{
	List	   *sources = SPI_plan_get_plan_sources(plan);
	CachedPlanSource *ps;
	ListCell   *lc;

	if (list_length(sources) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be a single SELECT statement", what)));
	ps = (CachedPlanSource *) linitial(sources);
	if (ps->commandTag != CMDTAG_SELECT)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be a SELECT statement", what)));
	foreach(lc, ps->query_list)
	{
		Query	   *q = lfirst_node(Query, lc);

		if (q->commandType != CMD_SELECT || q->hasModifyingCTE || q->rowMarks != NIL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s must only read", what),
					 errdetail("Data-modifying statements and FOR UPDATE/SHARE are not cacheable.")));
	}
	return ps;
}

static CachedPlanSource *
hc_check_plan(SPIPlanPtr plan, const char *name)
{
	CachedPlanSource *ps = hc_check_reads(plan, psprintf("query \"%s\"", name));
	Oid			restype;

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
					 int64 wal_version, const HcQueryRow *row, uint8 *digest)
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
	HcKeyAdd(&buf, &wal_version, sizeof(wal_version));
	if (row->fragment_sql != NULL)
	{
		HcKeyAdd(&buf, row->fragment_sql, strlen(row->fragment_sql) + 1);
		HcKeyAdd(&buf, VARDATA_ANY(DatumGetPointer(row->fragment_tags)),
				 VARSIZE_ANY_EXHDR(DatumGetPointer(row->fragment_tags)));
		HcKeyAdd(&buf, row->fragments_key, strlen(row->fragments_key) + 1);
	}
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
 * The hashes of a template's fixed tags, computed once per definition.
 */
static void
hc_template_slots(HcTagTemplate *tt)
{
	char	   *reset = psprintf("%s/*", tt->table_tag);

	tt->table_hash = HcTagHash(tt->table_tag, strlen(tt->table_tag));
	tt->reset_slot = HcTagSlot(reset, strlen(reset));
	if (tt->literal)
		tt->literal_hash = HcTagHash(tt->literal, strlen(tt->literal));
	pfree(reset);
}

/* ---------- the columns a query reads ---------- */

/*
 * What the query's range tables say it reads of each relation: the columns
 * (selectedCols, which counts every reference: select list, WHERE, ORDER
 * BY, GROUP BY, aggregates, joins; after rewriting, the tables inside views
 * too), or whole rows.
 */
typedef struct HcReadColumns
{
	Oid			relid;
	bool		whole_rows;		/* a whole-row or system column reference */
	List	   *names;			/* column names (char *) */
} HcReadColumns;

static HcReadColumns *
hc_read_columns_of(List **reads, Oid relid)
{
	ListCell   *lc;
	HcReadColumns *rc;

	foreach(lc, *reads)
	{
		rc = lfirst(lc);
		if (rc->relid == relid)
			return rc;
	}
	rc = palloc0(sizeof(HcReadColumns));
	rc->relid = relid;
	*reads = lappend(*reads, rc);
	return rc;
}

static bool
hc_columns_walker(Node *node, void *context)
{
	List	  **reads = (List **) context;

	if (node == NULL)
		return false;
	if (IsA(node, RangeTblEntry))
	{
		RangeTblEntry *rte = (RangeTblEntry *) node;
		HcReadColumns *rc;
		int			x = -1;

		if (rte->rtekind != RTE_RELATION)
			return false;
		rc = hc_read_columns_of(reads, rte->relid);
		while ((x = bms_next_member(rte->selectedCols, x)) >= 0)
		{
			AttrNumber	attno = x + FirstLowInvalidHeapAttributeNumber;
			char	   *name;

			if (attno <= 0)
			{
				rc->whole_rows = true;
				continue;
			}
			name = get_attname(rte->relid, attno, true);
			if (name == NULL)
				rc->whole_rows = true;
			else
				rc->names = list_append_unique(rc->names, makeString(name));
		}
		return false;
	}
	if (IsA(node, Query))
		return query_tree_walker((Query *) node, hc_columns_walker, context,
								 QTW_EXAMINE_RTES_BEFORE);
	return expression_tree_walker(node, hc_columns_walker, context);
}

/*
 * The columns each template's answers depend on: what the query reads of
 * the template's table (and its partitions and children, by name).  Whole
 * rows when it reads a whole row or a system column, or does not name the
 * table at all (reading it inside a function, which nothing here can see
 * into).  At most HC_MAX_TAGS slots per answer: past that, the templates
 * reading the most columns depend on whole rows instead.
 */
static void
hc_template_columns(HcTagTemplate *templates, int ntemplates, CachedPlanSource *ps)
{
	List	   *reads = NIL;
	ListCell   *lc;
	int			total;

	foreach(lc, ps->query_list)
		(void) hc_columns_walker((Node *) lfirst(lc), &reads);

	for (int i = 0; i < ntemplates; i++)
	{
		HcTagTemplate *tt = &templates[i];
		List	   *family = find_all_inheritors(tt->relid, NoLock, NULL);
		List	   *names = NIL;
		bool		seen = false;
		ListCell   *lc2;

		tt->all_columns = false;
		foreach(lc2, reads)
		{
			HcReadColumns *rc = lfirst(lc2);

			if (!list_member_oid(family, rc->relid))
				continue;
			seen = true;
			tt->all_columns |= rc->whole_rows;
			names = list_concat_unique(names, rc->names);
		}
		if (!seen)
			tt->all_columns = true;
		tt->ncolumns = tt->all_columns ? 0 : list_length(names);
		tt->column_hashes = palloc(sizeof(uint64) * Max(tt->ncolumns, 1));
		for (int c = 0; c < tt->ncolumns; c++)
			tt->column_hashes[c] = HcColumnHash(strVal(list_nth(names, c)));
	}

	/* the slot budget: a template's own (or "any") slot, columns, reset */
	for (;;)
	{
		int			widest = -1;

		total = 0;
		for (int i = 0; i < ntemplates; i++)
		{
			HcTagTemplate *tt = &templates[i];

			total += 1 + tt->ncolumns + (tt->prefix != NULL ? 1 : 0);
			if (widest < 0 || tt->ncolumns > templates[widest].ncolumns)
				widest = i;
		}
		if (total <= HC_MAX_TAGS || widest < 0 || templates[widest].ncolumns == 0)
			break;
		templates[widest].all_columns = true;
		templates[widest].ncolumns = 0;
	}
}

/* ---------- the columns an answer reads, given its NULL parameters ---------- */

/*
 * A filter that is optional ("$2 IS NULL OR price_cents >= $2") reads its
 * column only when its parameter is given.  For the parameters of a call
 * that are NULL, the query is folded as a plan for them would be (the
 * NULL test is true, so is the OR), and the columns it still reads are
 * the ones its answer depends on: a subset of each template's columns.
 * Only these two rules are applied, which evaluate nothing, so folding
 * cannot fail; what they leave is read as before.
 */
typedef struct HcNullColumns
{
	uint32		nullmask;		/* bit i: parameter i + 1 is NULL */
	bool		reduced;		/* false: every column, as registered */
	uint64		keep[HC_MAX_TEMPLATES];	/* bit c: tt->column_hashes[c] is read */
} HcNullColumns;

#define HC_MAX_NULL_COLUMNS 64	/* memo entries per definition */

typedef struct HcFoldNulls
{
	const bool *nulls;
	int			nparams;
} HcFoldNulls;

static Node *
hc_fold_nulls(Node *node, void *context)
{
	HcFoldNulls *f = context;

	if (node == NULL)
		return NULL;
	if (IsA(node, Param))
	{
		Param	   *p = (Param *) node;

		if (p->paramkind == PARAM_EXTERN && p->paramid >= 1 &&
			p->paramid <= f->nparams && f->nulls[p->paramid - 1])
			return (Node *) makeNullConst(p->paramtype, p->paramtypmod, p->paramcollid);
		return (Node *) copyObject(p);
	}
	if (IsA(node, Query))
		return (Node *) query_tree_mutator((Query *) node, hc_fold_nulls, context, 0);
	node = expression_tree_mutator(node, hc_fold_nulls, context);
	if (IsA(node, NullTest))
	{
		NullTest   *nt = (NullTest *) node;

		if (IsA(nt->arg, Const) && ((Const *) nt->arg)->constisnull)
			return makeBoolConst(nt->nulltesttype == IS_NULL, false);
	}
	else if (IsA(node, BoolExpr) && ((BoolExpr *) node)->boolop != NOT_EXPR)
	{
		BoolExpr   *b = (BoolExpr *) node;
		bool		decides = (b->boolop == OR_EXPR);	/* true decides an OR */
		ListCell   *lc;

		foreach(lc, b->args)
		{
			Const	   *c = lfirst(lc);

			if (IsA(c, Const) && !c->constisnull && DatumGetBool(c->constvalue) == decides)
				return makeBoolConst(decides, false);
		}
	}
	return node;
}

/* The columns of relations that Vars of a query tree read. */
typedef struct HcVarReads
{
	List	   *rtables;		/* of the queries around, innermost last */
	List	   *reads;			/* HcReadColumns */
	bool		unknown;		/* a Var this cannot place */
} HcVarReads;

static bool
hc_vars_walker(Node *node, void *context)
{
	HcVarReads *r = context;

	if (node == NULL)
		return false;
	if (IsA(node, Var))
	{
		Var		   *v = (Var *) node;
		List	   *rtable;
		RangeTblEntry *rte;

		if (v->varlevelsup >= (Index) list_length(r->rtables))
		{
			r->unknown = true;
			return false;
		}
		rtable = list_nth(r->rtables, list_length(r->rtables) - 1 - v->varlevelsup);
		if (v->varno < 1 || v->varno > list_length(rtable))
		{
			r->unknown = true;
			return false;
		}
		rte = rt_fetch(v->varno, rtable);
		/* a join's, a subquery's or a CTE's columns are walked where they are defined */
		if (rte->rtekind == RTE_RELATION)
		{
			HcReadColumns *rc = hc_read_columns_of(&r->reads, rte->relid);
			char	   *name = v->varattno > 0 ? get_attname(rte->relid, v->varattno, true) : NULL;

			if (name == NULL)
				rc->whole_rows = true;
			else
				rc->names = list_append_unique(rc->names, makeString(name));
		}
		return false;
	}
	if (IsA(node, Query))
	{
		bool		result;

		r->rtables = lappend(r->rtables, ((Query *) node)->rtable);
		/* the join aliases' expressions too */
		result = query_tree_walker((Query *) node, hc_vars_walker, context, 0);
		r->rtables = list_delete_last(r->rtables);
		return result;
	}
	return expression_tree_walker(node, hc_vars_walker, context);
}

static void
hc_columns_for_nulls(HcQueryDef *def, const bool *nulls, HcNullColumns *nc)
{
	List	   *sources = SPI_plan_get_plan_sources(def->plan);
	CachedPlanSource *ps;
	HcFoldNulls fold = {nulls, def->nparams};
	HcVarReads vr = {NIL, NIL, false};
	ListCell   *lc;

	nc->reduced = false;
	if (list_length(sources) != 1)
		return;
	ps = linitial(sources);
	if (!ps->is_valid || ps->query_list == NIL)
		return;
	foreach(lc, ps->query_list)
	{
		Node	   *q = hc_fold_nulls((Node *) lfirst(lc), &fold);

		(void) hc_vars_walker(q, &vr);
	}
	if (vr.unknown)
		return;
	for (int i = 0; i < def->ntemplates; i++)
	{
		HcTagTemplate *tt = &def->templates[i];
		List	   *family;
		ListCell   *lc2;

		nc->keep[i] = ~UINT64CONST(0);
		if (tt->all_columns || tt->ncolumns > 64)
			continue;
		family = find_all_inheritors(tt->relid, NoLock, NULL);
		nc->keep[i] = 0;
		foreach(lc2, vr.reads)
		{
			HcReadColumns *rc = lfirst(lc2);
			ListCell   *lc3;

			if (!list_member_oid(family, rc->relid))
				continue;
			if (rc->whole_rows)
			{
				nc->keep[i] = ~UINT64CONST(0);
				break;
			}
			foreach(lc3, rc->names)
			{
				uint64		h = HcColumnHash(strVal(lfirst(lc3)));

				for (int c = 0; c < tt->ncolumns; c++)
				{
					if (tt->column_hashes[c] == h)
						nc->keep[i] |= UINT64CONST(1) << c;
				}
			}
		}
	}
	nc->reduced = true;
}

/*
 * For each template of def, a mask of the columns (tt->column_hashes) that
 * an answer for these NULL parameters reads; NULL when every column counts
 * (no parameter is NULL, or nothing could be left out).  Remembered with
 * the definition.
 */
const uint64 *
HcColumnsForNulls(HcQueryDef *def, const bool *nulls)
{
	uint32		mask = 0;
	HcNullColumns *nc;
	MemoryContext old;
	MemoryContext tmp;

	for (int i = 0; i < def->nparams; i++)
	{
		if (nulls[i])
			mask |= (uint32) 1 << i;
	}
	if (mask == 0)
		return NULL;
	for (int i = 0; i < def->n_null_columns; i++)
	{
		if (def->null_columns[i].nullmask == mask)
			return def->null_columns[i].reduced ? def->null_columns[i].keep : NULL;
	}
	if (def->n_null_columns >= HC_MAX_NULL_COLUMNS)
		return NULL;
	if (def->null_columns == NULL)
		def->null_columns = MemoryContextAllocZero(def->cxt,
												   sizeof(HcNullColumns) * HC_MAX_NULL_COLUMNS);
	nc = &def->null_columns[def->n_null_columns];
	tmp = AllocSetContextCreate(CurrentMemoryContext, "housing_cache columns for nulls",
								ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(tmp);
	hc_columns_for_nulls(def, nulls, nc);
	MemoryContextSwitchTo(old);
	MemoryContextDelete(tmp);
	nc->nullmask = mask;
	def->n_null_columns++;
	return nc->reduced ? nc->keep : NULL;
}

/*
 * What a definition's plan reads and calls, for the checks of every call
 * (fetch.c): the relations, with their partitions and children, functions
 * whose EXECUTE is restricted, relations read as a view's owner, and
 * whether it calls code that runs as the caller.  Adds to what def already
 * has, so that a composed query's two plans count together.  In def->cxt.
 */
static void
hc_analyze_plan(HcQueryDef *def, CachedPlanSource *ps)
{
	List	   *relids = NIL;
	List	   *visible = NIL;
	HcTreeFacts facts = {NIL, NIL, NIL, false};
	ListCell   *lc;
	ListCell   *lc2;
	int			n;

	for (int i = 0; i < def->nrelids; i++)
		relids = lappend_oid(relids, def->relids[i]);
	for (int i = 0; i < def->nvisible; i++)
		visible = lappend_oid(visible, def->visible[i]);
	for (int i = 0; i < def->nfuncs; i++)
		facts.funcs = lappend_oid(facts.funcs, def->funcs[i]);
	for (int i = 0; i < def->nas; i++)
	{
		facts.as_relids = lappend_oid(facts.as_relids, def->as_relids[i]);
		facts.as_users = lappend_oid(facts.as_users, def->as_users[i]);
	}

	relids = list_concat_unique_oid(relids, ps->relationOids);
	foreach(lc, ps->relationOids)
		visible = list_concat_unique_oid(visible,
										 find_all_inheritors(lfirst_oid(lc), NoLock, NULL));
	foreach(lc, ps->query_list)
		(void) hc_collect_walker((Node *) lfirst(lc), &facts);

	def->nrelids = list_length(relids);
	def->relids = palloc(sizeof(Oid) * Max(def->nrelids, 1));
	n = 0;
	foreach(lc, relids)
		def->relids[n++] = lfirst_oid(lc);
	def->nvisible = list_length(visible);
	def->visible = palloc(sizeof(Oid) * Max(def->nvisible, 1));
	n = 0;
	foreach(lc, visible)
		def->visible[n++] = lfirst_oid(lc);
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
	def->keyed_by_role = def->keyed_by_role || def->vary_by_role || facts.invoker_code;
}

/* ---------- composed queries: fragments ---------- */

/*
 * The type of a fragment's id: that of the column its first "T/col=$1" tag
 * names.  Needs SPI.
 */
static Oid
hc_fragment_id_type(Datum tagsd, const char *name)
{
	Datum	   *elems;
	bool	   *elnulls;
	int			n;

	hc_text_array(tagsd, &elems, &elnulls, &n);
	for (int i = 0; i < n; i++)
	{
		HcTagTemplate tt;
		char	   *tag;
		Oid			relid;
		char	   *partition_column;
		char	   *id_column;
		char	   *column;
		AttrNumber	attnum;

		if (elnulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("fragment_tags must not contain NULL")));
		tag = TextDatumGetCString(elems[i]);
		hc_parse_template(tag, 1, &tt);
		if (tt.param != 1)
			continue;
		if (!HcCatalogLookupWatched(tt.table_tag, &relid, &partition_column, &id_column))
			continue;			/* hc_resolve_template says why */
		column = pnstrdup(tt.prefix + strlen(tt.table_tag) + 1,
						  strlen(tt.prefix) - strlen(tt.table_tag) - 2);
		attnum = get_attnum(relid, column);
		if (attnum != InvalidAttrNumber)
			return get_atttype(relid, attnum);
	}
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("composed query \"%s\" needs a fragment tag naming its id, such as \"schema.table/id=$1\"", name),
			 errdetail("$1 in fragment_tags stands for one fragment's id.")));
	return InvalidOid;			/* not reached */
}

/*
 * Prepare and check a fragment query: $1 is an array of ids, and it returns
 * rows of (id, fragment), the id of the id type and the fragment json or
 * jsonb.  Returns the plan (not kept).
 */
static SPIPlanPtr
hc_prepare_fragments(const char *name, const char *sql, Oid idtype, CachedPlanSource **psp)
{
	Oid			arraytype = get_array_type(idtype);
	SPIPlanPtr	plan;
	CachedPlanSource *ps;
	Oid			fragtype;

	if (!OidIsValid(arraytype))
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("type %s of the fragments' ids has no array type", format_type_be(idtype))));
	plan = SPI_prepare(sql, 1, &arraytype);
	if (plan == NULL)
		elog(ERROR, "could not prepare the fragment query of \"%s\": %s", name,
			 SPI_result_code_string(SPI_result));
	ps = hc_check_reads(plan, psprintf("the fragment query of \"%s\"", name));
	if (ps->resultDesc == NULL || ps->resultDesc->natts != 2 ||
		TupleDescAttr(ps->resultDesc, 0)->atttypid != idtype)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("the fragment query of \"%s\" must return two columns: the id, of type %s, and the fragment",
						name, format_type_be(idtype)),
				 errhint("For example: SELECT id, row_to_json(f) FROM (SELECT ... WHERE id = ANY($1)) f.")));
	fragtype = TupleDescAttr(ps->resultDesc, 1)->atttypid;
	if (fragtype != JSONOID && fragtype != JSONBOID)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("the fragments of \"%s\" must be json or jsonb, not %s",
						name, format_type_be(fragtype))));
	*psp = ps;
	return plan;
}

/*
 * Load a composed query's fragments into def (after its own plan).
 */
static void
hc_load_fragments(HcQueryDef *def, const HcQueryRow *row)
{
	HcFragmentsDef *fr;
	MemoryContext old;
	CachedPlanSource *ps;
	Datum	   *elems;
	bool	   *elnulls;
	int			n;
	Oid			idtype = hc_fragment_id_type(row->fragment_tags, def->name);
	bool		varlena;
	HcKeyBuilder kb;

	old = MemoryContextSwitchTo(def->cxt);
	fr = palloc0(sizeof(HcFragmentsDef));
	fr->key = pstrdup(row->fragments_key);
	fr->idtype = idtype;
	getTypeInputInfo(idtype, &fr->id_input, &fr->id_ioparam);
	getTypeOutputInfo(idtype, &fr->id_output, &varlena);
	get_typlenbyvalalign(idtype, &fr->id_len, &fr->id_byval, &fr->id_align);
	hc_text_array(row->fragment_tags, &elems, &elnulls, &n);
	if (n > HC_MAX_TEMPLATES)
		elog(ERROR, "query \"%s\" has too many fragment tags", def->name);
	fr->ntemplates = n;
	for (int i = 0; i < n; i++)
	{
		char	   *tag = TextDatumGetCString(elems[i]);

		hc_parse_template(tag, 1, &fr->templates[i]);
		fr->templates[i].relid = hc_resolve_template(tag, &fr->templates[i], &idtype);
		if (hc_shared != NULL)
			hc_template_slots(&fr->templates[i]);
	}
	HcKeyBegin(&kb);
	HcKeyAdd(&kb, def->digest, HC_DIGEST_LEN);
	HcKeyAdd(&kb, "fragments", 9);
	HcKeyDigest(&kb, fr->digest);
	MemoryContextSwitchTo(old);

	fr->plan = hc_prepare_fragments(def->name, row->fragment_sql, idtype, &ps);
	getTypeOutputInfo(TupleDescAttr(ps->resultDesc, 1)->atttypid, &fr->fragment_output, &varlena);

	old = MemoryContextSwitchTo(def->cxt);
	hc_template_columns(fr->templates, fr->ntemplates, ps);
	hc_analyze_plan(def, ps);
	MemoryContextSwitchTo(old);
	if (SPI_keepplan(fr->plan) != 0)
		elog(ERROR, "could not keep the fragment plan of query \"%s\"", def->name);
	def->fragments = fr;
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

	if (!HcCatalogReadQuery(def->name, &row))
		return false;
	sql = row.sql;
	typesd = row.param_types;
	tagsd = row.tags;
	def->ttl_seconds = row.ttl_seconds;
	def->vary_by_role = row.vary_by_role;
	def->fetchable = row.fetchable;
	def->owner = row.owner;
	def->wal_invalidation = HcCatalogWalInvalidation(false, &def->wal_version);
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
		def->templates[i].relid = hc_resolve_template(tag, &def->templates[i], def->paramtypes);
		if (hc_shared != NULL)
			hc_template_slots(&def->templates[i]);
	}

	hc_definition_digest(def->name, sql, def->nparams, def->paramtypes, tagsd,
						 def->vary_by_role, def->owner, def->wal_version, &row, def->digest);
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
	hc_template_columns(def->templates, def->ntemplates, ps);
	hc_analyze_plan(def, ps);
	MemoryContextSwitchTo(old);

	if (SPI_keepplan(def->plan) != 0)
		elog(ERROR, "could not keep the plan of query \"%s\"", def->name);
	if (row.fragment_sql != NULL)
		hc_load_fragments(def, &row);
	def->valid = true;
	return true;
}

/*
 * The definition of a registered query, loaded if needed.
 */
HcQueryDef *
HcGetQuery(const char *name)
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
		if (def->fragments && def->fragments->plan)
			SPI_freeplan(def->fragments->plan);
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
		nestlevel = HcPinSearchPath();
		exists = hc_load_definition(def);
		HcUnpinSearchPath(nestlevel);
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
		if (def->fragments && def->fragments->plan)
			SPI_freeplan(def->fragments->plan);
		MemoryContextDelete(def->cxt);
		hash_search(query_defs, key, HASH_REMOVE, NULL);
		PG_RE_THROW();
	}
	PG_END_TRY();
	return def;
}

/*
 * Every table a query reads must be watched and named by one of its tags,
 * and readable by whoever registers it (its owner will run it for callers
 * it could not otherwise serve).  what: "" or "the fragment query of ".
 */
static void
hc_check_tagged(const char *name, const char *what, CachedPlanSource *ps,
				const Oid *tag_relids, int ntags)
{
	ListCell   *lc;

	foreach(lc, ps->relationOids)
	{
		Oid			relid = lfirst_oid(lc);
		char		relkind = get_rel_relkind(relid);
		bool		tagged = false;

		if (relkind != RELKIND_RELATION && relkind != RELKIND_PARTITIONED_TABLE)
			continue;
		if (get_rel_namespace(relid) == PG_CATALOG_NAMESPACE)
			continue;
		if (pg_class_aclcheck(relid, GetUserId(), ACL_SELECT) != ACLCHECK_OK)
			aclcheck_error(ACLCHECK_NO_PRIV, OBJECT_TABLE, get_rel_name(relid));
		for (int i = 0; i < ntags; i++)
			tagged |= (tag_relids[i] == relid);
		if (!tagged)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%squery \"%s\" reads table \"%s.%s\", which none of its tags names",
							what, name, get_namespace_name(get_rel_namespace(relid)), get_rel_name(relid)),
					 errhint("Watch the table with housing_cache.watch_table() and add its tag, or a \"table/column=$n\" tag.")));
	}
}

/* ---------- SQL functions ---------- */

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
	int			nestlevel;
	HcQueryRow	composed;

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
	nestlevel = HcPinSearchPath();

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

	hc_check_tagged(name, "", ps, tag_relids, ntags);
	SPI_freeplan(plan);

	/* a composed query: its fragments */
	memset(&composed, 0, sizeof(composed));
	if (PG_NARGS() >= 10 && !PG_ARGISNULL(7))
	{
		Oid			idtype;
		Oid			frag_relids[HC_MAX_TEMPLATES];
		int			nfrag;

		composed.fragment_sql = text_to_cstring(PG_GETARG_TEXT_PP(7));
		if (PG_ARGISNULL(8))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("fragment_tags must not be NULL when fragment_sql is given"),
					 errhint("Name the tags of one fragment, $1 standing for its id: '{schema.table/id=$1}'.")));
		if (PG_ARGISNULL(9) || VARSIZE_ANY_EXHDR(PG_GETARG_TEXT_PP(9)) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("fragments_key must name the key of the answer that holds the ids")));
		composed.fragment_tags = PG_GETARG_DATUM(8);
		composed.fragments_key = text_to_cstring(PG_GETARG_TEXT_PP(9));
		hc_text_array(composed.fragment_tags, &elems, &elnulls, &nfrag);
		if (nfrag < 1 || nfrag > HC_MAX_TEMPLATES)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("a composed query needs 1 to %d fragment tags, got %d", HC_MAX_TEMPLATES, nfrag)));
		idtype = hc_fragment_id_type(composed.fragment_tags, name);
		for (int i = 0; i < nfrag; i++)
		{
			HcTagTemplate tt;
			char	   *tag = TextDatumGetCString(elems[i]);

			hc_parse_template(tag, 1, &tt);
			frag_relids[i] = hc_resolve_template(tag, &tt, &idtype);
		}
		plan = hc_prepare_fragments(name, composed.fragment_sql, idtype, &ps);
		hc_check_tagged(name, "the fragment query of ", ps, frag_relids, nfrag);
		SPI_freeplan(plan);
	}
	else if (PG_NARGS() >= 10 && !PG_ARGISNULL(8))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("fragment_tags is given without fragment_sql")));

	HcCatalogStoreQuery(&composed, name, sql, PG_GETARG_DATUM(2), PG_GETARG_DATUM(3),
						PG_ARGISNULL(4) ? 0 : PG_GETARG_INT32(4),
						!PG_ARGISNULL(5) && PG_GETARG_BOOL(5),
						/* 0.1.0's definition has no fetchable argument */
						PG_NARGS() < 7 || PG_ARGISNULL(6) || PG_GETARG_BOOL(6));
	HcUnpinSearchPath(nestlevel);
	SPI_finish();
	/* answers held outside (the HTTP edge) are named by the old definition */
	HcInvalidateEverything();
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
	nestlevel = HcPinSearchPath();
	found = HcCatalogDeleteQuery(name);
	HcUnpinSearchPath(nestlevel);
	SPI_finish();
	if (found)
		HcInvalidateEverything();
	PG_RETURN_BOOL(found);
}
