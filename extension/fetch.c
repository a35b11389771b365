/*-------------------------------------------------------------------------
 *
 * fetch.c
 *	  The cached read path: serve a registered query from L1, L2 or by
 *	  running it.
 *
 * HcFetch, in steps:
 *
 *	 begin		 load the definition; choose who runs the query (the caller, or
 *				 its owner on the caller's behalf: fetch_runner);
 *	 generations decide whether the cache may be used at all (bypass reasons
 *				 below), then read the generations of the answer's tags,
 *				 before anything else: a write in flight on one of them is a
 *				 bypass too (generation.c has the argument);
 *	 key		 the definition, the settings that change how values print,
 *				 the role where it matters, the parameters and the
 *				 generations, hashed (key.c);
 *	 conditional the caller's If-None-Match names this key: nothing to send
 *				 (conditional.c);
 *	 lookup		 L1, then L2 (a hit fills L1); an answer near the end of its
 *				 TTL is refreshed early by one session (XFetch) while the
 *				 others keep serving it; a miss claims the fill or waits for
 *				 the session that has (singleflight.c), then looks again;
 *	 fill		 run the query (read-only, as the runner) and store the answer
 *				 in L1 and L2, releasing the waiters as soon as L1 has it.
 *
 * Every step records how the call was served for last_lookup() (stats.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <float.h>
#include <math.h>

#include "access/xact.h"
#include "access/xlog.h"
#include "common/pg_prng.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgtime.h"
#include "portability/instr_time.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/bytea.h"
#include "utils/datum.h"
#include "utils/hsearch.h"
#include "common/jsonapi.h"
#include "mb/pg_wchar.h"
#include "utils/snapmgr.h"
#include "utils/float.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/pg_locale.h"
#include "utils/rls.h"

#include "housing_cache.h"

PG_FUNCTION_INFO_V1(housing_cache_fetch);

HcLastLookup hc_last_lookup;

static bool warned_not_preloaded = false;

/*
 * One cached call, as it goes through the steps.
 */
typedef struct HcCall
{
	HcQueryDef *def;
	int			nargs;
	Datum	   *values;
	bool	   *nulls;
	Oid			caller;
	Oid			runner;			/* who runs the query: fetch_runner */
	instr_time	start;
	char	   *canon[HC_MAX_PARAMS];	/* the parameters' text, for the key */
	uint32		slots[HC_MAX_TAGS]; /* the generation slots of its tags */
	uint64		gens[HC_MAX_TAGS + 1];	/* ... their generations, and the
										 * global one (standby.c) */
	int			nslots;
	uint8		digest[HC_DIGEST_LEN];
	char		key[HC_KEY_MAXLEN];
	StringInfoData tags;		/* what the answer depends on, for the edge:
								 * each tag followed by a NUL */
	bool		has_stamp;		/* stamp is set (a primary's answer) */
	uint64		stamp;			/* message_seq before the generations */
} HcCall;

/* last_lookup()'s tags: a copy of the last call's, in TopMemoryContext */
static char *lookup_tags = NULL;
static int	lookup_tags_len = 0;
static int	lookup_tags_cap = 0;

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
	/* which slots the generations are of (column_tags): never mixed up */
	HcKeyAdd(buf, &hc_column_tags, sizeof(hc_column_tags));
}

/*
 * Who runs a registered query for the current user: the caller, when the
 * query's owner has every privilege the caller has (the owner is the
 * caller, a superuser, or a role the caller's privileges are part of), so
 * that the owner's code gains nothing by running with the caller's rights;
 * otherwise its owner, like a view or a SECURITY DEFINER function.  Never
 * someone else's code with the caller's rights that its owner does not have.
 */
static Oid
fetch_runner(HcQueryDef *def)
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
	/*
	 * A standby runs no triggers: it learns the primary's writes from WAL,
	 * if the primary logs them (standby.c).
	 */
	if (RecoveryInProgress() && !def->wal_invalidation)
		return "standby without wal invalidation";
	/* their snapshot is older than the generations we would read */
	if (IsolationUsesXactSnapshot())
		return "snapshot isolation";
	/* writes replay could not attribute to tags: until they have ended */
	if (!HcStandbyCaughtUp())
		return "standby catching up";
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
 * Add a tag to an answer's list (len -1: the reset tag "T/<star>" of table
 * tag T), once.
 */
static void
add_tag(StringInfo tags, const char *tag, int len)
{
	int			start = tags->len;

	if (len < 0)
	{
		appendStringInfo(tags, "%s/*", tag);
		len = tags->len - start;
	}
	else
		appendBinaryStringInfo(tags, tag, len);
	for (int off = 0; off < start; off += strlen(tags->data + off) + 1)
	{
		if ((int) strlen(tags->data + off) == len &&
			memcmp(tags->data + off, tags->data + start, len) == 0)
		{
			tags->len = start;	/* listed already */
			tags->data[start] = '\0';
			return;
		}
	}
	appendStringInfoChar(tags, '\0');
}

/* add a slot to slots[0..n) unless it is there; returns the new count */
static int
add_slot(uint32 *slots, int n, uint32 slot)
{
	for (int k = 0; k < n; k++)
		if (slots[k] == slot)
			return n;
	slots[n] = slot;
	return n + 1;
}

/*
 * The slots one template contributes to an answer, added to slots[0..n):
 * for the tag (hash h), its own slot and the slots of the columns the query
 * reads (those of keep: HcColumnsForNulls), or its "any" slot when it reads
 * whole rows (tag.c); for a finer
 * tag, the table's reset tag too.  At most HC_MAX_TAGS in all (registry.c
 * keeps each definition within it).
 */
static int
template_slots(const HcTagTemplate *tt, uint64 h, bool finer, uint64 keep, uint32 *slots, int n)
{
	static uint64 any_hash = 0;

	if (any_hash == 0)
		any_hash = HcColumnHash("");
	if (tt->all_columns || !hc_column_tags)
		n = add_slot(slots, n, HcColumnSlot(h, any_hash));
	else
	{
		n = add_slot(slots, n, HcSlotOfHash(h));
		for (int c = 0; c < tt->ncolumns; c++)
		{
			if (c >= 64 || (keep & (UINT64CONST(1) << c)) != 0)
				n = add_slot(slots, n, HcColumnSlot(h, tt->column_hashes[c]));
		}
	}
	if (finer)
		n = add_slot(slots, n, tt->reset_slot);
	return n;
}

/*
 * The tag one template names for an answer, into *buf (tt->prefix plus the
 * parameter's spelling); NULL for the table tag alone (no finer tag, or a
 * NULL parameter).  canon is the parameter's text, used as its spelling
 * when the two are the same.
 */
static const char *
template_tag(const HcTagTemplate *tt, Datum value, bool isnull, const char *canon,
			 StringInfo buf, int *len)
{
	if (tt->prefix == NULL || (tt->param > 0 && isnull))
		return NULL;
	if (tt->param == 0)
	{
		*len = strlen(tt->literal);
		return tt->literal;
	}
	resetStringInfo(buf);
	appendStringInfoString(buf, tt->prefix);
	if (tt->speller.how == HC_SPELL_TEXT && canon != NULL)
		appendStringInfoString(buf, canon);	/* no second output call */
	else
		HcTagAppendValue(buf, &tt->speller, value);
	*len = buf->len;
	return buf->data;
}

/*
 * The generation slots an answer depends on, deduplicated.  A template with
 * a parameter depends on the tag spelled with the parameter's canonical text
 * (and the table's reset tag), or, when the parameter is NULL, on the table;
 * on the rows of that tag, through the columns the query reads of them
 * (keep: those a call with these NULL parameters reads, HcColumnsForNulls;
 * NULL: all).
 *
 * The tags themselves go to *tags, for the edge (edge.c): each one the
 * answer depends on, and the reset tag of every table, which a consumer
 * purges when a message cannot name everything (truncated).
 */
static int
hc_answer_slots(HcQueryDef *def, Datum *values, bool *nulls, char **canon,
				const uint64 *keep, uint32 *slots, StringInfo tags)
{
	int			n = 0;
	StringInfoData buf;

	initStringInfo(&buf);
	for (int i = 0; i < def->ntemplates; i++)
	{
		HcTagTemplate *tt = &def->templates[i];
		uint64		kept = keep ? keep[i] : ~UINT64CONST(0);
		int			p = tt->param - 1;
		int			len = 0;
		const char *tag = template_tag(tt, p >= 0 ? values[p] : (Datum) 0,
									   p >= 0 && nulls[p], p >= 0 ? canon[p] : NULL,
									   &buf, &len);

		if (tag == NULL)
		{
			n = template_slots(tt, tt->table_hash, false, kept, slots, n);
			add_tag(tags, tt->table_tag, strlen(tt->table_tag));
		}
		else
		{
			n = template_slots(tt, tt->param == 0 ? tt->literal_hash : HcTagHash(tag, len),
							   true, kept, slots, n);
			add_tag(tags, tag, len);
		}
		add_tag(tags, tt->table_tag, -1);	/* "T/<star>" */
	}
	pfree(buf.data);
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
hc_execute_as(SPIPlanPtr plan, Oid runner, Datum *values, const char *nullflags,
			  bool read_only, long tcount)
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
		ret = SPI_execute_plan(plan, values, nullflags, read_only, tcount);
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
 * SPI takes a fresh snapshot, after the generations were read (see
 * generation.c); with on_active_snapshot, the query runs on the active
 * snapshot instead (a composed answer's two queries, computed together).
 */
static char *
hc_run_query(HcQueryDef *def, Oid runner, Datum *values, bool *nulls,
			 bool *isnull, uint32 *len, bool on_active_snapshot)
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
	nestlevel = HcPinSearchPath();

	ret = hc_execute_as(def->plan, runner, values, nullflags, on_active_snapshot, 2);
	HcUnpinSearchPath(nestlevel);
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
hc_record(const HcCall *call, HcTier tier, const char *bypass_reason, int32 ttl_remaining_s)
{
	bool		cached = (tier != HC_TIER_BYPASS);

	hc_last_lookup.tier = tier;
	strlcpy(hc_last_lookup.key, cached ? call->key : "", sizeof(hc_last_lookup.key));
	strlcpy(hc_last_lookup.bypass_reason, bypass_reason ? bypass_reason : "",
			sizeof(hc_last_lookup.bypass_reason));
	hc_last_lookup.elapsed_us = hc_elapsed_us(call->start);
	hc_last_lookup.ttl_remaining_s = ttl_remaining_s;
	hc_last_lookup.fragment_hits = 0;
	hc_last_lookup.fragment_fills = 0;
	hc_last_lookup.has_stamp = cached && call->has_stamp;
	hc_last_lookup.stamp_seq = call->stamp;

	lookup_tags_len = 0;
	if (!cached || call->tags.data == NULL)
		return;
	if (lookup_tags_cap < call->tags.len)
	{
		char	   *grown = MemoryContextAlloc(TopMemoryContext, call->tags.len);

		if (lookup_tags)
			pfree(lookup_tags);
		lookup_tags = grown;
		lookup_tags_cap = call->tags.len;
	}
	memcpy(lookup_tags, call->tags.data, call->tags.len);
	lookup_tags_len = call->tags.len;
}

/*
 * The tags of the last cached call's answer (each followed by a NUL), for
 * last_lookup(); *len 0 when it went around the cache.
 */
const char *
HcLastLookupTags(int *len)
{
	*len = lookup_tags_len;
	return lookup_tags;
}

/* seconds left of an answer's TTL, at least 0 */
static int32
hc_ttl_remaining(const HcValue *v, TimestampTz now)
{
	int64		left_us = v->created_at + (int64) v->ttl_ms * 1000 - now;

	return (int32) Max(left_us / 1000000, 0);
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

/* ---------- the steps ---------- */

/*
 * The definition and who runs it.
 */
static void
fetch_begin(HcCall *call, const char *name, int nargs, Datum *values, bool *nulls)
{
	INSTR_TIME_SET_CURRENT(call->start);
	initStringInfo(&call->tags);
	call->has_stamp = false;
	call->stamp = 0;
	HcStandbyWaitForLsn();
	call->def = HcGetQuery(name);
	if (nargs != call->def->nparams)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cached query \"%s\" takes %d parameter(s), %d given",
						name, call->def->nparams, nargs)));
	call->nargs = nargs;
	call->values = values;
	call->nulls = nulls;
	call->caller = GetUserId();
	call->runner = fetch_runner(call->def);
	if (call->runner != call->caller)
		hc_check_on_behalf(call->def, call->caller);
}

/*
 * Why this call must go around the cache, or NULL; when NULL, the
 * generations of the answer's tags have been read.
 */
static const char *
fetch_generations(HcCall *call)
{
	HcQueryDef *def = call->def;
	const char *reason = hc_bypass_reason(def, call->runner);

	if (reason != NULL)
		return reason;
	for (int i = 0; i < call->nargs; i++)
		call->canon[i] = call->nulls[i] ? NULL
			: def->param_is_oid[i] ? psprintf("%u", DatumGetObjectId(call->values[i]))
			: OidOutputFunctionCall(def->typoutput[i], call->values[i]);
	call->nslots = hc_answer_slots(def, call->values, call->nulls, call->canon,
								   HcColumnsForNulls(def, call->nulls), call->slots,
								   &call->tags);

	/*
	 * The answer's stamp for the edge (edge.c): every message numbered up to
	 * it was numbered after its generations were bumped, so the generations
	 * read below include those commits.  A standby's count is not the
	 * primary's: no stamp there.
	 */
	if (!RecoveryInProgress())
	{
		call->stamp = pg_atomic_read_u64(&hc_shared->message_seq);
		call->has_stamp = true;
		pg_read_barrier();
	}
	call->gens[call->nslots] = HcStandbyGlobalGeneration();
	if (!HcReadGenerations(call->slots, call->nslots, call->gens))
	{
		/* on a standby: the transactions replay has ended may free them */
		if (!HcStandbyResolve() ||
			!HcReadGenerations(call->slots, call->nslots, call->gens))
			return "write in flight";
	}
	return NULL;
}

/*
 * Run the query without the cache: nothing is read from it or stored.
 */
static Datum
fetch_bypass(HcCall *call, const char *reason, bool *isnull)
{
	uint32		len = 0;
	char	   *result;

	HcStatInc(HC_STAT_BYPASSES);
	result = hc_run_query(call->def, call->runner, call->values, call->nulls, isnull, &len, false);
	hc_record(call, HC_TIER_BYPASS, reason, -1);
	return *isnull ? (Datum) 0 : hc_json_datum(result, len);
}

/*
 * The key: namespace, definition, role if it matters, parameters,
 * generations.
 */
static void
fetch_key(HcCall *call)
{
	HcKeyBuilder kb;

	HcKeyInit(&kb);
	HcKeyAdd(&kb, call->def->digest, HC_DIGEST_LEN);
	hc_key_add_output_settings(&kb);
	if (call->def->keyed_by_role)
	{
		HcKeyAdd(&kb, &call->caller, sizeof(call->caller));
		HcKeyAdd(&kb, &call->runner, sizeof(call->runner));
	}
	for (int i = 0; i < call->nargs; i++)
		HcKeyAdd(&kb, call->canon[i], call->canon[i] ? strlen(call->canon[i]) : 0);
	HcKeyAdd(&kb, call->gens, sizeof(uint64) * (call->nslots + 1));
	HcKeyFinish(&kb, call->digest, call->key);
}

/*
 * The caller holds the answer of this key, hence the current answer: send
 * nothing.  Its freshness is the answer's expiry if L1 has it, else the
 * shortest the TTL can be.
 */
static Datum
fetch_not_modified(HcCall *call, bool *isnull)
{
	HcValue		value;
	int			ttl = call->def->ttl_seconds > 0 ? call->def->ttl_seconds : hc_default_ttl;

	if (HcL1Peek(call->digest, &value))
		ttl = hc_ttl_remaining(&value, GetCurrentTimestamp());
	else
		ttl -= ttl * hc_ttl_jitter_pct / 100;
	hc_record(call, HC_TIER_NOT_MODIFIED, NULL, ttl);
	*isnull = true;
	return (Datum) 0;
}

/*
 * Look the key up in L1, then L2.  Returns the tier that serves the answer
 * (*value), or HC_TIER_NONE when the query must run: then *flight is the
 * fill this session claimed, or -1 if it runs without a claim (single-flight
 * off, timed out, no free claim, or the answer could not be stored).
 */
static HcTier
fetch_lookup(HcCall *call, HcValue *value, int *flight)
{
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz deadline = now + (int64) hc_fill_wait_ms * 1000;
	bool		run_now = false;

	*flight = -1;
	for (;;)
	{
		HcTier		tier = HC_TIER_NONE;
		bool		expired;

		if (HcL1Get(call->digest, value))
			tier = HC_TIER_L1;
		else if (HcRedisGet(call->key, call->digest, value) == HC_REDIS_HIT)
			tier = HC_TIER_L2;

		if (tier != HC_TIER_NONE)
		{
			HcFlightResult claim = HC_FLIGHT_BUSY;

			if (hc_wants_refresh(value, now, &expired))
				claim = HcFlightBegin(call->digest, false, 0, flight);
			if (claim == HC_FLIGHT_DONE || claim == HC_FLIGHT_DONE_UNSTORED)
				claim = HC_FLIGHT_BUSY;
			if (claim == HC_FLIGHT_BUSY)
			{
				/* fresh enough, or someone else is refreshing it */
				*flight = -1;
				if (tier == HC_TIER_L2)
					(void) HcL1Put(call->digest, value);
				HcStatInc(tier == HC_TIER_L1 ? HC_STAT_L1_HITS : HC_STAT_L2_HITS);
				if (expired)
					HcStatInc(HC_STAT_STALE_SERVED);
				hc_record(call, tier, NULL, hc_ttl_remaining(value, now));
				return tier;
			}
			HcStatInc(HC_STAT_EARLY_REFRESHES);
			return HC_TIER_NONE;
		}

		if (!hc_single_flight || run_now)
			return HC_TIER_NONE;
		switch (HcFlightBegin(call->digest, true, deadline, flight))
		{
			case HC_FLIGHT_OWNER:
				/* a fill may have completed since we looked */
				if (HcL1Get(call->digest, value))
				{
					HcFlightEnd(*flight, HC_FILL_STORED);
					*flight = -1;
					HcStatInc(HC_STAT_L1_HITS);
					hc_record(call, HC_TIER_L1, NULL, hc_ttl_remaining(value, now));
					return HC_TIER_L1;
				}
				return HC_TIER_NONE;
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
				*flight = -1;
				now = GetCurrentTimestamp();
				continue;
			default:
				/* timed out or no free claim: compute without one */
				*flight = -1;
				return HC_TIER_NONE;
		}
	}
}

/*
 * Run the query and store its answer, holding the claim (if any) until it
 * is stored; on any error the claim is released as failed, so that a waiter
 * takes over.  Waiters look in L1 first: they are released as soon as it
 * holds the answer.
 */
static Datum
fetch_fill(HcCall *call, int flight, bool *isnull, HcValue *out)
{
	HcValue		value;
	char	   *result;
	uint32		len = 0;
	instr_time	fill_start;
	TimestampTz now;

	HcStatInc(HC_STAT_MISSES);
	INSTR_TIME_SET_CURRENT(fill_start);
	PG_TRY();
	{
		result = hc_run_query(call->def, call->runner, call->values, call->nulls, isnull, &len, false);

		value.isnull = *isnull;
		value.data = result;
		value.varlena = NULL;
		value.len = *isnull ? 0 : len;
		now = GetCurrentTimestamp();
		value.created_at = now;
		value.compute_us = (uint32) Min(hc_elapsed_us(fill_start), (int64) PG_UINT32_MAX);
		value.ttl_ms = hc_ttl_ms(call->def);

		if (value.len > (uint32) hc_max_value_bytes)
		{
			HcStatInc(HC_STAT_OVERSIZE);
			if (flight >= 0)
				HcFlightEnd(flight, HC_FILL_UNSTORED);
		}
		else
		{
			bool		in_l1 = HcL1Put(call->digest, &value);
			bool		in_l2;

			if (in_l1 && flight >= 0)
				HcFlightEnd(flight, HC_FILL_STORED);
			in_l2 = HcRedisSet(call->key, call->digest, &value);
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
	hc_record(call, HC_TIER_MISS, NULL, hc_ttl_remaining(&value, now));
	if (out != NULL)
	{
		*out = value;
		return (Datum) 0;
	}
	return *isnull ? (Datum) 0 : hc_json_datum(result, len);
}

/* ---------- composed answers: an id list and its fragments ---------- */

/*
 * A composed query (registry.c) answers in two pieces, cached apart: its
 * own answer, whose array at the fragments key lists ids, and one fragment
 * per id, computed by the fragment query and cached by id.  The answer
 * served is the list with that array replaced by the fragments in order,
 * joined as json_agg joins rows (", \n "), so that it is byte for byte what
 * one query building the array with json_agg over the same rows returns.
 *
 *	 list		 looked up, or filled, like any answer (its generations first);
 *	 fragments	 the generations of each fragment's tags, read after the list
 *				 was found, give each its key; the page (the assembled
 *				 answer) is keyed by all of them and kept in L1 and L2;
 *	 on a miss	 fragments from L1, the rest in one MGET from L2, the rest
 *				 computed by one run of the fragment query (fresh snapshot,
 *				 after their generations were read) and stored;
 *	 check		 every generation read is read again: if a write touched a
 *				 piece meanwhile, the pieces may be of different moments, and
 *				 the answer is computed again without the cache, both queries
 *				 on one snapshot.  Otherwise every piece was current at once.
 */

/* the array of ids at the fragments key of a list answer */
typedef struct HcIdArray
{
	const char *key;
	JsonLexContext *lex;
	bool		key_next;		/* the next top-level value is the key's */
	bool		in_array;		/* inside that array, at its top */
	bool		bad;			/* an element that is not a scalar, or null */
	int			start;			/* offset of its '[' */
	int			end;			/* offset just past its ']' */
	int			n;
	int			cap;
	char	  **ids;
} HcIdArray;

static void
ids_field_start(void *state, char *fname, bool isnull)
{
	HcIdArray  *a = state;

	a->key_next = (a->lex->lex_level == 1 && a->start < 0 && strcmp(fname, a->key) == 0);
}

static void
ids_array_start(void *state)
{
	HcIdArray  *a = state;

	if (a->key_next && a->lex->lex_level == 1)
	{
		a->start = a->lex->token_start - a->lex->input;
		a->in_array = true;
	}
	else if (a->in_array)
		a->bad = true;			/* an array inside the array */
	a->key_next = false;
}

static void
ids_array_end(void *state)
{
	HcIdArray  *a = state;

	if (a->in_array && a->lex->lex_level == 1)
	{
		a->end = a->lex->prev_token_terminator - a->lex->input;
		a->in_array = false;
	}
}

static void
ids_object_start(void *state)
{
	HcIdArray  *a = state;

	if (a->in_array)
		a->bad = true;
	a->key_next = false;
}

static void
ids_scalar(void *state, char *token, JsonTokenType type)
{
	HcIdArray  *a = state;

	if (a->in_array && a->lex->lex_level == 2)
	{
		if (type == JSON_TOKEN_NULL || type == JSON_TOKEN_TRUE || type == JSON_TOKEN_FALSE)
		{
			a->bad = true;
			return;
		}
		if (a->n == a->cap)
		{
			a->cap = Max(16, a->cap * 2);
			a->ids = a->ids ? repalloc(a->ids, sizeof(char *) * a->cap)
				: palloc(sizeof(char *) * a->cap);
		}
		a->ids[a->n++] = token;
	}
	a->key_next = false;
}

/*
 * Find the ids in a list answer.  Errors out, naming the query, when the
 * answer is not an object with an array of scalars at the key.
 */
static void
find_ids(const HcQueryDef *def, const char *json, int len, HcIdArray *a)
{
	JsonSemAction sem;
	JsonParseErrorType rc;

	memset(a, 0, sizeof(*a));
	a->key = def->fragments->key;
	a->start = a->end = -1;
	a->lex = makeJsonLexContextCstringLen((char *) json, len, GetDatabaseEncoding(), true);
	memset(&sem, 0, sizeof(sem));
	sem.semstate = a;
	sem.object_field_start = ids_field_start;
	sem.array_start = ids_array_start;
	sem.array_end = ids_array_end;
	sem.object_start = ids_object_start;
	sem.scalar = ids_scalar;
	rc = pg_parse_json(a->lex, &sem);
	if (rc != JSON_SUCCESS || a->start < 0 || a->end <= a->start || a->bad)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("the answer of composed query \"%s\" has no array of ids at key \"%s\"",
						def->name, a->key),
				 errdetail("A composed query's answer is a JSON object whose key \"%s\" holds an array of ids (numbers or strings), which its fragments replace.",
						   a->key)));
}

/* one fragment of a composed answer, as it goes through the steps */
typedef struct HcPiece
{
	Datum		id;
	char	   *canon;			/* the id's text, for keys and matching */
	int			first_slot;		/* its slots in HcComposed.slots */
	int			nslots;
	uint8		digest[HC_DIGEST_LEN];
	char		key[HC_KEY_MAXLEN];
	char	   *text;			/* the fragment, once known */
	uint32		len;
} HcPiece;

typedef struct HcComposed
{
	int			n;
	HcPiece    *pieces;
	int			nslots;			/* every fragment's slots, in order */
	uint32	   *slots;
	uint64	   *gens;
} HcComposed;

/*
 * What a list answer says of its fragments, which is the same for every
 * read of that answer (its key names its content): the ids, their text,
 * the generation slots of each, their tags, and where the array of ids is
 * in the list's text.  Kept per backend by the list's key, so that a page
 * read again costs no JSON parsing, id conversion or tag hashing.
 */
typedef struct HcLayout
{
	uint8		list_digest[HC_DIGEST_LEN];	/* hash key */
	int			n;
	int			start;			/* the array of ids in the list's text */
	int			end;
	Datum	   *ids;
	char	  **canon;
	int		   *first_slot;
	int		   *nslots;
	int			total_slots;
	uint32	   *slots;
	char	   *tags;			/* each followed by a NUL */
	int			tags_len;
	/* the call's tags before and after adding these (set at first use) */
	char	   *list_tags;
	int			list_tags_len;
	char	   *merged_tags;
	int			merged_tags_len;
} HcLayout;

typedef struct HcLayoutEntry
{
	uint8		list_digest[HC_DIGEST_LEN];
	HcLayout   *layout;
} HcLayoutEntry;

/* the memo starts over past either bound */
#define LAYOUTS_MAX 1024
#define LAYOUTS_BYTES (8 * 1024 * 1024)
static HTAB *layouts = NULL;
static MemoryContext layouts_cxt = NULL;

static HcLayout *
build_layout(HcCall *call, const char *list, int len)
{
	HcFragmentsDef *fr = call->def->fragments;
	HcIdArray	ids;
	HcLayout   *l;
	StringInfoData buf;
	StringInfoData tags;
	uint32	   *slots;
	MemoryContext old;

	find_ids(call->def, list, len, &ids);
	old = MemoryContextSwitchTo(layouts_cxt);
	l = palloc0(sizeof(HcLayout));
	memcpy(l->list_digest, call->digest, HC_DIGEST_LEN);
	l->n = ids.n;
	l->start = ids.start;
	l->end = ids.end;
	l->ids = palloc(sizeof(Datum) * Max(l->n, 1));
	l->canon = palloc(sizeof(char *) * Max(l->n, 1));
	l->first_slot = palloc(sizeof(int) * Max(l->n, 1));
	l->nslots = palloc(sizeof(int) * Max(l->n, 1));
	slots = palloc(sizeof(uint32) * Max(l->n, 1) * HC_MAX_TAGS);
	initStringInfo(&tags);
	MemoryContextSwitchTo(old);

	initStringInfo(&buf);
	for (int i = 0; i < l->n; i++)
	{
		Datum		id = OidInputFunctionCall(fr->id_input, ids.ids[i], fr->id_ioparam, -1);
		int			n = 0;

		old = MemoryContextSwitchTo(layouts_cxt);
		l->ids[i] = datumCopy(id, fr->id_byval, fr->id_len);
		l->canon[i] = OidOutputFunctionCall(fr->id_output, l->ids[i]);
		MemoryContextSwitchTo(old);
		l->first_slot[i] = l->total_slots;
		for (int t = 0; t < fr->ntemplates; t++)
		{
			HcTagTemplate *tt = &fr->templates[t];
			int			taglen = 0;
			const char *tag = template_tag(tt, l->ids[i], false, l->canon[i], &buf, &taglen);

			old = MemoryContextSwitchTo(layouts_cxt);
			if (tag == NULL)
			{
				n = template_slots(tt, tt->table_hash, false, ~UINT64CONST(0), slots + l->first_slot[i], n);
				add_tag(&tags, tt->table_tag, strlen(tt->table_tag));
			}
			else
			{
				n = template_slots(tt, tt->param == 0 ? tt->literal_hash : HcTagHash(tag, taglen),
								   true, ~UINT64CONST(0), slots + l->first_slot[i], n);
				add_tag(&tags, tag, taglen);
			}
			MemoryContextSwitchTo(old);
		}
		l->nslots[i] = n;
		l->total_slots += n;
	}
	pfree(buf.data);
	l->slots = slots;
	l->tags = tags.data;
	l->tags_len = tags.len;
	return l;
}

/* the layout of this list answer, from the backend's memo or built */
static HcLayout *
get_layout(HcCall *call, const char *list, int len)
{
	HcLayoutEntry *e;
	bool		found;

	if (layouts == NULL || hash_get_num_entries(layouts) >= LAYOUTS_MAX ||
		MemoryContextMemAllocated(layouts_cxt, true) > LAYOUTS_BYTES)
	{
		HASHCTL		ctl;

		if (layouts != NULL)
			hash_destroy(layouts);
		if (layouts_cxt == NULL)
			layouts_cxt = AllocSetContextCreate(TopMemoryContext,
												"housing_cache composed layouts",
												ALLOCSET_DEFAULT_SIZES);
		else
			MemoryContextReset(layouts_cxt);
		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = HC_DIGEST_LEN;
		ctl.entrysize = sizeof(HcLayoutEntry);
		ctl.hcxt = layouts_cxt;
		layouts = hash_create("housing_cache composed layouts", 256, &ctl,
							  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	e = hash_search(layouts, call->digest, HASH_FIND, NULL);
	if (e != NULL)
		return e->layout;
	{
		HcLayout   *l = build_layout(call, list, len);

		e = hash_search(layouts, call->digest, HASH_ENTER, &found);
		e->layout = l;
		return l;
	}
}

/*
 * Add the fragments' tags to the call's.  The call's tags so far are the
 * list's, the same at every read of this list (its key covers its
 * parameters), so the merged list is remembered: checking and merging
 * 20 tags at each read was a third of a composed L1 hit.
 */
static void
add_layout_tags(HcCall *call, HcLayout *l)
{
	StringInfo	tags = &call->tags;
	MemoryContext old;
	int			before = tags->len;

	if (l->merged_tags != NULL && tags->len == l->list_tags_len &&
		memcmp(tags->data, l->list_tags, tags->len) == 0)
	{
		resetStringInfo(tags);
		appendBinaryStringInfo(tags, l->merged_tags, l->merged_tags_len);
		return;
	}
	for (int off = 0; off < l->tags_len; off += strlen(l->tags + off) + 1)
		add_tag(tags, l->tags + off, strlen(l->tags + off));
	if (l->merged_tags == NULL)
	{
		old = MemoryContextSwitchTo(layouts_cxt);
		l->list_tags = palloc(Max(before, 1));
		memcpy(l->list_tags, tags->data, before);
		l->list_tags_len = before;
		l->merged_tags = palloc(Max(tags->len, 1));
		memcpy(l->merged_tags, tags->data, tags->len);
		l->merged_tags_len = tags->len;
		MemoryContextSwitchTo(old);
	}
}

/* the fragments of a layout, their generations read now */
static const char *
compose_generations(HcCall *call, HcLayout *l, HcComposed *c)
{
	c->n = l->n;
	c->pieces = palloc0(sizeof(HcPiece) * Max(c->n, 1));
	c->slots = l->slots;
	c->nslots = l->total_slots;
	c->gens = palloc(sizeof(uint64) * Max(c->nslots, 1));
	for (int i = 0; i < c->n; i++)
	{
		c->pieces[i].id = l->ids[i];
		c->pieces[i].canon = l->canon[i];
		c->pieces[i].first_slot = l->first_slot[i];
		c->pieces[i].nslots = l->nslots[i];
	}
	add_layout_tags(call, l);
	if (!HcReadGenerations(c->slots, c->nslots, c->gens))
		return "write in flight";
	return NULL;
}

/*
 * The page's key: the list's key (which covers the definition, the settings
 * that change how values print and, where it matters, the role) and every
 * fragment's id and generations.  One digest: a page read again needs no
 * fragment's key.
 */
static void
compose_page_key(HcCall *call, const HcComposed *c, uint8 *page_digest, char *page_key)
{
	HcKeyBuilder kb;

	HcKeyInit(&kb);
	HcKeyAdd(&kb, "page", 4);
	HcKeyAdd(&kb, call->digest, HC_DIGEST_LEN);
	HcKeyAdd(&kb, call->def->fragments->digest, HC_DIGEST_LEN);
	for (int i = 0; i < c->n; i++)
	{
		const HcPiece *p = &c->pieces[i];

		HcKeyAdd(&kb, p->canon, strlen(p->canon) + 1);
		HcKeyAdd(&kb, c->gens + p->first_slot, sizeof(uint64) * p->nslots);
	}
	HcKeyFinish(&kb, page_digest, page_key);
}

/* each fragment's key, for a page that must be assembled */
static void
compose_piece_keys(HcCall *call, HcComposed *c)
{
	HcFragmentsDef *fr = call->def->fragments;
	HcKeyBuilder kb;

	for (int i = 0; i < c->n; i++)
	{
		HcPiece    *p = &c->pieces[i];

		HcKeyInit(&kb);
		HcKeyAdd(&kb, fr->digest, HC_DIGEST_LEN);
		hc_key_add_output_settings(&kb);
		if (call->def->keyed_by_role)
		{
			HcKeyAdd(&kb, &call->caller, sizeof(call->caller));
			HcKeyAdd(&kb, &call->runner, sizeof(call->runner));
		}
		HcKeyAdd(&kb, p->canon, strlen(p->canon));
		HcKeyAdd(&kb, c->gens + p->first_slot, sizeof(uint64) * p->nslots);
		HcKeyFinish(&kb, p->digest, p->key);
	}
}

/*
 * Run the fragment query once for these ids; each piece's text is set from
 * its row.  Returns how many pieces got one.  Fresh snapshot, unless
 * on_active_snapshot.
 */
static int
run_fragments(HcCall *call, HcPiece **want, int n, bool on_active_snapshot)
{
	HcFragmentsDef *fr = call->def->fragments;
	MemoryContext caller = CurrentMemoryContext;
	Datum	   *elems = palloc(sizeof(Datum) * Max(n, 1));
	Datum		arg;
	char		nullflag = ' ';
	int			ret;
	int			nestlevel;
	int			found = 0;

	for (int i = 0; i < n; i++)
		elems[i] = want[i]->id;
	arg = PointerGetDatum(construct_array(elems, n, fr->idtype, fr->id_len, fr->id_byval,
										  fr->id_align));
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	nestlevel = HcPinSearchPath();
	ret = hc_execute_as(fr->plan, call->runner, &arg, &nullflag, on_active_snapshot, 0);
	HcUnpinSearchPath(nestlevel);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "the fragment query of \"%s\" failed: %s", call->def->name,
			 SPI_result_code_string(ret));
	HcStatInc(HC_STAT_DB_EXECUTIONS);
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		HeapTuple	tup = SPI_tuptable->vals[r];
		bool		idnull;
		bool		fragnull;
		Datum		id = SPI_getbinval(tup, SPI_tuptable->tupdesc, 1, &idnull);
		Datum		frag = SPI_getbinval(tup, SPI_tuptable->tupdesc, 2, &fragnull);
		char	   *canon;

		if (idnull || fragnull)
			continue;
		canon = OidOutputFunctionCall(fr->id_output, id);
		for (int i = 0; i < n; i++)
		{
			if (want[i]->text == NULL && strcmp(want[i]->canon, canon) == 0)
			{
				char	   *text = OidOutputFunctionCall(fr->fragment_output, frag);

				want[i]->len = strlen(text);
				want[i]->text = MemoryContextStrdup(caller, text);
				found++;
			}
		}
	}
	SPI_finish();
	return found;
}

/* the list answer with its array of ids replaced by the fragments */
static char *
assemble(const char *list, int len, const HcIdArray *ids, const HcComposed *c, uint32 *outlen)
{
	StringInfoData out;

	initStringInfo(&out);
	appendBinaryStringInfo(&out, list, ids->start);
	appendStringInfoChar(&out, '[');
	for (int i = 0; i < c->n; i++)
	{
		if (i > 0)
			appendStringInfoString(&out, ", \n ");
		appendBinaryStringInfo(&out, c->pieces[i].text, c->pieces[i].len);
	}
	appendStringInfoChar(&out, ']');
	appendBinaryStringInfo(&out, list + ids->end, len - ids->end);
	*outlen = out.len;
	return out.data;
}

/*
 * The composed answer without the cache: the list query and the fragment
 * query on one snapshot, so that they agree.
 */
typedef struct HcBypassed
{
	char	   *list;
	uint32		len;
	bool		isnull;
	HcIdArray	ids;
	HcComposed	c;
} HcBypassed;

/* compose_bypass's queries, on the active snapshot */
static void
compose_bypass_run(HcCall *call, HcBypassed *b)
{
	HcFragmentsDef *fr = call->def->fragments;
	HcPiece   **want;

	b->list = hc_run_query(call->def, call->runner, call->values, call->nulls,
						   &b->isnull, &b->len, true);
	if (b->isnull)
		return;
	find_ids(call->def, b->list, b->len, &b->ids);
	memset(&b->c, 0, sizeof(b->c));
	b->c.n = b->ids.n;
	b->c.pieces = palloc0(sizeof(HcPiece) * Max(b->c.n, 1));
	want = palloc(sizeof(HcPiece *) * Max(b->c.n, 1));
	for (int i = 0; i < b->c.n; i++)
	{
		b->c.pieces[i].id = OidInputFunctionCall(fr->id_input, b->ids.ids[i], fr->id_ioparam, -1);
		b->c.pieces[i].canon = OidOutputFunctionCall(fr->id_output, b->c.pieces[i].id);
		want[i] = &b->c.pieces[i];
	}
	if (b->c.n > 0 && run_fragments(call, want, b->c.n, true) != b->c.n)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("the fragment query of \"%s\" did not return every id its answer lists",
						call->def->name)));
}

/*
 * The composed answer without the cache: the list query and the fragment
 * query on one snapshot, so that they agree.
 */
static Datum
compose_bypass(HcCall *call, const char *reason, bool *isnull)
{
	HcBypassed	b;
	char	   *page;
	uint32		pagelen;

	HcStatInc(HC_STAT_BYPASSES);
	memset(&b, 0, sizeof(b));
	/* as SPI does for a query of its own: see what this transaction wrote */
	CommandCounterIncrement();
	PushActiveSnapshot(GetTransactionSnapshot());
	PG_TRY();
	{
		compose_bypass_run(call, &b);
	}
	PG_FINALLY();
	{
		PopActiveSnapshot();
	}
	PG_END_TRY();
	hc_record(call, HC_TIER_BYPASS, reason, -1);
	hc_last_lookup.fragment_hits = 0;
	hc_last_lookup.fragment_fills = 0;
	*isnull = b.isnull;
	if (b.isnull)
		return (Datum) 0;
	HcStatAdd(HC_STAT_FRAGMENT_FILLS, b.c.n);
	hc_last_lookup.fragment_fills = b.c.n;
	page = assemble(b.list, b.len, &b.ids, &b.c, &pagelen);
	return hc_json_datum(page, pagelen);
}

/*
 * Serve a composed query.
 */
static Datum
fetch_composed(HcCall *call, const char *if_none_match, bool *isnull)
{
	const char *reason = fetch_generations(call);
	HcValue		list;
	HcTier		tier;
	int			flight;
	HcIdArray	ids;
	HcComposed	c;
	uint8		page_digest[HC_DIGEST_LEN];
	char		page_key[HC_KEY_MAXLEN];
	HcValue		page;
	HcLayout   *layout;
	int			hits = 0;
	int			fills = 0;
	uint64	   *regens;
	uint64		list_regens[HC_MAX_TAGS + 1];
	bool		page_hit;
	TimestampTz now;
	int32		list_ttl;

	if (reason != NULL)
		return compose_bypass(call, reason, isnull);
	fetch_key(call);

	/* the list, as any answer */
	tier = fetch_lookup(call, &list, &flight);
	if (tier == HC_TIER_NONE)
	{
		(void) fetch_fill(call, flight, isnull, &list);
		tier = HC_TIER_MISS;
	}
	list_ttl = hc_last_lookup.ttl_remaining_s;
	hc_last_lookup.fragment_hits = 0;
	hc_last_lookup.fragment_fills = 0;
	if (list.isnull)
	{
		*isnull = true;
		return (Datum) 0;
	}
	layout = get_layout(call, list.data, list.len);
	ids.start = layout->start;
	ids.end = layout->end;

	/* the fragments' generations, and the page's key */
	reason = compose_generations(call, layout, &c);
	if (reason != NULL)
		return compose_bypass(call, reason, isnull);
	compose_page_key(call, &c, page_digest, page_key);
	memcpy(call->digest, page_digest, HC_DIGEST_LEN);
	strlcpy(call->key, page_key, sizeof(call->key));

	if (if_none_match != NULL && HcEtagMatches(if_none_match, page_key))
	{
		hc_record(call, HC_TIER_NOT_MODIFIED, NULL, list_ttl);
		*isnull = true;
		return (Datum) 0;
	}
	now = GetCurrentTimestamp();
	page_hit = HcL1Get(page_digest, &page);
	if (!page_hit && HcRedisGet(page_key, page_digest, &page) == HC_REDIS_HIT)
	{
		(void) HcL1Put(page_digest, &page);
		page_hit = true;
	}
	if (page_hit && !page.isnull)
	{
		HcStatAdd(HC_STAT_FRAGMENT_HITS, c.n);
		hc_record(call, tier, NULL, hc_ttl_remaining(&page, now));
		hc_last_lookup.fragment_hits = c.n;
		*isnull = false;
		return hc_value_datum(&page);
	}

	/* the fragments: L1, then one MGET, then one query */
	compose_piece_keys(call, &c);
	{
		HcPiece   **missing = palloc(sizeof(HcPiece *) * Max(c.n, 1));
		const char **keys = palloc(sizeof(char *) * Max(c.n, 1));
		const uint8 **digests = palloc(sizeof(uint8 *) * Max(c.n, 1));
		HcValue    *values = palloc0(sizeof(HcValue) * Max(c.n, 1));
		bool	   *hit = palloc(sizeof(bool) * Max(c.n, 1));
		int			nmissing = 0;
		int			nfilled;

		for (int i = 0; i < c.n; i++)
		{
			HcValue		v;

			if (HcL1Get(c.pieces[i].digest, &v) && !v.isnull)
			{
				c.pieces[i].text = v.data;
				c.pieces[i].len = v.len;
				hits++;
			}
			else
				missing[nmissing++] = &c.pieces[i];
		}
		for (int i = 0; i < nmissing; i++)
		{
			keys[i] = missing[i]->key;
			digests[i] = missing[i]->digest;
		}
		if (nmissing > 0 && HcRedisMGet(nmissing, keys, digests, values, hit))
		{
			int			still = 0;

			for (int i = 0; i < nmissing; i++)
			{
				if (hit[i] && !values[i].isnull)
				{
					missing[i]->text = values[i].data;
					missing[i]->len = values[i].len;
					(void) HcL1Put(missing[i]->digest, &values[i]);
					hits++;
				}
				else
					missing[still++] = missing[i];
			}
			nmissing = still;
		}
		if (nmissing > 0)
		{
			nfilled = run_fragments(call, missing, nmissing, false);
			if (nfilled != nmissing)
				return compose_bypass(call, "write in flight", isnull);
			now = GetCurrentTimestamp();
			for (int i = 0; i < nmissing; i++)
			{
				values[i].isnull = false;
				values[i].data = missing[i]->text;
				values[i].len = missing[i]->len;
				values[i].varlena = NULL;
				values[i].created_at = now;
				values[i].compute_us = 0;
				values[i].ttl_ms = hc_ttl_ms(call->def);
				keys[i] = missing[i]->key;
				digests[i] = missing[i]->digest;
				if (values[i].len <= (uint32) hc_max_value_bytes)
					(void) HcL1Put(missing[i]->digest, &values[i]);
			}
			HcStatAdd(HC_STAT_L2_STORES, HcRedisSetMany(nmissing, keys, digests, values));
			fills = nmissing;
		}
	}

	/* every piece still current?  Then they all were at once */
	regens = palloc(sizeof(uint64) * Max(c.nslots, 1));
	list_regens[call->nslots] = HcStandbyGlobalGeneration();
	if (!HcReadGenerations(call->slots, call->nslots, list_regens) ||
		memcmp(list_regens, call->gens, sizeof(uint64) * (call->nslots + 1)) != 0 ||
		!HcReadGenerations(c.slots, c.nslots, regens) ||
		memcmp(regens, c.gens, sizeof(uint64) * c.nslots) != 0)
		return compose_bypass(call, "write in flight", isnull);

	HcStatAdd(HC_STAT_FRAGMENT_HITS, hits);
	HcStatAdd(HC_STAT_FRAGMENT_FILLS, fills);
	page.isnull = false;
	page.data = assemble(list.data, list.len, &ids, &c, &page.len);
	page.varlena = NULL;
	page.created_at = now;
	page.compute_us = 0;
	page.ttl_ms = (uint32) Max(list_ttl, 1) * 1000;
	if (page.len <= (uint32) hc_max_value_bytes)
	{
		(void) HcL1Put(page_digest, &page);
		if (HcRedisSet(page_key, page_digest, &page))
			HcStatInc(HC_STAT_L2_STORES);
	}
	hc_record(call, tier, NULL, list_ttl);
	hc_last_lookup.fragment_hits = hits;
	hc_last_lookup.fragment_fills = fills;
	*isnull = false;
	return hc_json_datum(page.data, page.len);
}

/*
 * Serve a registered query: from the cache when allowed and present,
 * otherwise by running it (and storing the answer).  Returns a json Datum,
 * or sets *isnull (no row, SQL NULL, or "not modified").
 */
Datum
HcFetch(const char *name, int nargs, Datum *values, bool *nulls,
		const char *if_none_match, bool *isnull)
{
	HcCall		call;
	HcValue		value;
	const char *reason;
	int			flight;

	fetch_begin(&call, name, nargs, values, nulls);
	if (call.def->fragments != NULL)
		return fetch_composed(&call, if_none_match, isnull);
	reason = fetch_generations(&call);
	if (reason != NULL)
		return fetch_bypass(&call, reason, isnull);
	fetch_key(&call);
	if (if_none_match != NULL && HcEtagMatches(if_none_match, call.key))
		return fetch_not_modified(&call, isnull);
	if (fetch_lookup(&call, &value, &flight) != HC_TIER_NONE)
	{
		*isnull = value.isnull;
		return value.isnull ? (Datum) 0 : hc_value_datum(&value);
	}
	return fetch_fill(&call, flight, isnull, NULL);
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
	char	   *if_none_match = HcTakeIfNoneMatch();

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("query name must not be NULL")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	def = HcGetQuery(name);
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

	result = HcFetch(name, n, values, nulls, if_none_match, &isnull);
	if (isnull)
		PG_RETURN_NULL();
	PG_RETURN_DATUM(result);
}
