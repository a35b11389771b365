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

/*
 * The generation slots an answer depends on, deduplicated.  A template with
 * a parameter depends on the tag spelled with the parameter's canonical text
 * (and the table's reset tag), or, when the parameter is NULL, on the table.
 *
 * The tags themselves go to *tags, for the edge (edge.c): each one the
 * answer depends on, and the reset tag of every table, which a consumer
 * purges when a message cannot name everything (truncated).
 */
static int
hc_answer_slots(HcQueryDef *def, Datum *values, bool *nulls, char **canon,
				uint32 *slots, StringInfo tags)
{
	int			n = 0;
	char		local[256];

	for (int i = 0; i < def->ntemplates; i++)
	{
		HcTagTemplate *tt = &def->templates[i];
		uint32		s[2];
		int			ns = 0;

		if (tt->prefix == NULL || (tt->param > 0 && nulls[tt->param - 1]))
		{
			s[ns++] = tt->table_slot;
			add_tag(tags, tt->table_tag, strlen(tt->table_tag));
		}
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
				add_tag(tags, tag, (int) (plen + vlen));
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
				add_tag(tags, tag.data, tag.len);
				pfree(tag.data);
			}
			else
			{
				s[ns++] = tt->literal_slot;
				add_tag(tags, tt->literal, strlen(tt->literal));
			}
			s[ns++] = tt->reset_slot;
		}
		add_tag(tags, tt->table_tag, -1);	/* "T/<star>" */
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
 * were read: see generation.c.
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
	nestlevel = HcPinSearchPath();

	ret = hc_execute_as(def, runner, values, nullflags);
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
	call->nslots = hc_answer_slots(def, call->values, call->nulls, call->canon, call->slots,
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
	result = hc_run_query(call->def, call->runner, call->values, call->nulls, isnull, &len);
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
fetch_fill(HcCall *call, int flight, bool *isnull)
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
		result = hc_run_query(call->def, call->runner, call->values, call->nulls, isnull, &len);

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
	return *isnull ? (Datum) 0 : hc_json_datum(result, len);
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
	return fetch_fill(&call, flight, isnull);
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
