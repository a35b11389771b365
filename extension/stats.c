/*-------------------------------------------------------------------------
 *
 * stats.c
 *	  housing_cache.stats, reset_stats() and last_lookup().
 *
 * Counters are cluster-wide atomics (shmem.c); reading them takes no lock,
 * so a row may mix counts from a few microseconds apart.
 *
 * The row-returning functions fill the columns their SQL definition
 * declares, by name (as pg_stat_statements serves each of its API
 * versions): a column this library does not know is NULL, one the
 * definition lacks is left out.  So the SQL of an earlier version keeps
 * working with a newer library until ALTER EXTENSION ... UPDATE, and a
 * newer definition never reads a column into the wrong place.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "housing_cache.h"

PG_FUNCTION_INFO_V1(housing_cache_get_stats);
PG_FUNCTION_INFO_V1(housing_cache_stats);	/* 0.1.0's name */
PG_FUNCTION_INFO_V1(housing_cache_reset_stats);
PG_FUNCTION_INFO_V1(housing_cache_last_lookup);

/* the columns of housing_cache.stats, in HcStat order */
static const char *const stat_names[HC_STAT_COUNT] = {
	"l1_hits",
	"l2_hits",
	"misses",
	"db_executions",
	"bypasses",
	"l1_stores",
	"l1_evictions",
	"l2_stores",
	"l2_rejects",
	"oversize",
	"redis_errors",
	"breaker_skips",
	"breaker_opens",
	"breaker_closes",
	"fill_waits",
	"fill_timeouts",
	"early_refreshes",
	"stale_served",
	"invalidations",
	"invalidated_commits",
	"publishes",
	"publish_failures",
	"wal_records_logged",
	"wal_records_replayed",
	"wal_slots_resolved",
	"wal_overflows",
	"standby_catching_up",
	"min_lsn_waits",
	"min_lsn_timeouts",
	"redis_discoveries",
	"redis_failovers",
	"heartbeats",
	"fragment_hits",
	"fragment_fills",
};

static TupleDesc
result_tupdesc(FunctionCallInfo fcinfo)
{
	TupleDesc	tupdesc;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	return tupdesc;
}

/*
 * housing_cache.get_stats(): one row of counters, with breaker_state,
 * preloaded and stats_reset.
 */
Datum
housing_cache_get_stats(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc = result_tupdesc(fcinfo);
	Datum	   *values = palloc0(sizeof(Datum) * tupdesc->natts);
	bool	   *nulls = palloc(sizeof(bool) * tupdesc->natts);

	for (int c = 0; c < tupdesc->natts; c++)
	{
		const char *col = NameStr(TupleDescAttr(tupdesc, c)->attname);
		int			s;

		nulls[c] = false;
		for (s = 0; s < HC_STAT_COUNT; s++)
			if (strcmp(col, stat_names[s]) == 0)
				break;
		if (s < HC_STAT_COUNT)
			values[c] = Int64GetDatum(hc_shared ? (int64) pg_atomic_read_u64(&hc_shared->stats[s]) : 0);
		else if (strcmp(col, "breaker_state") == 0)
			values[c] = CStringGetTextDatum(HcBreakerState());
		else if (strcmp(col, "redis_master") == 0)
			values[c] = CStringGetTextDatum(HcRedisMasterAddress());
		else if (strcmp(col, "preloaded") == 0)
			values[c] = BoolGetDatum(hc_shared != NULL);
		else if (strcmp(col, "stats_reset") == 0 && hc_shared &&
				 pg_atomic_read_u64(&hc_shared->stats_reset_at) != 0)
			values[c] = TimestampTzGetDatum((TimestampTz) pg_atomic_read_u64(&hc_shared->stats_reset_at));
		else
			nulls[c] = true;
	}
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

Datum
housing_cache_stats(PG_FUNCTION_ARGS)
{
	return housing_cache_get_stats(fcinfo);
}

/*
 * housing_cache.reset_stats(): zero every counter.
 */
Datum
housing_cache_reset_stats(PG_FUNCTION_ARGS)
{
	if (hc_shared == NULL)
		PG_RETURN_VOID();
	for (int i = 0; i < HC_STAT_COUNT; i++)
		pg_atomic_write_u64(&hc_shared->stats[i], 0);
	pg_atomic_write_u64(&hc_shared->stats_reset_at, (uint64) GetCurrentTimestamp());
	PG_RETURN_VOID();
}

/* the last answer's tags, as text[] */
static Datum
lookup_tags_array(const char *tags, int len)
{
	ArrayBuildState *astate = NULL;

	for (int off = 0; off < len; off += strlen(tags + off) + 1)
		astate = accumArrayResult(astate, CStringGetTextDatum(tags + off), false,
								  TEXTOID, CurrentMemoryContext);
	return makeArrayResult(astate, CurrentMemoryContext);
}

/*
 * The edge keys of the last answer (edge.c), separated by spaces as xkey
 * and Surrogate-Key headers have them: one per tag, and the key of "*",
 * everything of the database.  NULL when it went around the cache.
 */
char *
HcLastLookupEdgeKeys(void)
{
	int			len;
	const char *tags = HcLastLookupTags(&len);
	char	   *dbname;
	StringInfoData out;
	char		key[HC_EDGE_KEY_LEN + 1];

	if (len == 0)
		return NULL;
	dbname = get_database_name(MyDatabaseId);
	if (dbname == NULL)
		dbname = "";
	initStringInfo(&out);
	for (int off = 0; off < len; off += strlen(tags + off) + 1)
	{
		HcEdgeKey(dbname, tags + off, strlen(tags + off), key);
		appendStringInfo(&out, "%s ", key);
	}
	HcEdgeKey(dbname, "*", 1, key);
	appendStringInfoString(&out, key);
	return out.data;
}

/*
 * housing_cache.last_lookup(): how this session's last cached call was
 * served (tier), its key, the time it took, why it bypassed the cache, its
 * entity tag and remaining TTL.  All NULL before the first one.
 */
Datum
housing_cache_last_lookup(PG_FUNCTION_ARGS)
{
	static const char *const tiers[] = {NULL, "l1", "l2", "miss", "bypass", "not_modified"};
	TupleDesc	tupdesc = result_tupdesc(fcinfo);
	Datum	   *values = palloc0(sizeof(Datum) * tupdesc->natts);
	bool	   *nulls = palloc(sizeof(bool) * tupdesc->natts);
	const HcLastLookup *lk = &hc_last_lookup;
	int			tags_len;
	const char *tags = HcLastLookupTags(&tags_len);

	for (int c = 0; c < tupdesc->natts; c++)
	{
		const char *col = NameStr(TupleDescAttr(tupdesc, c)->attname);

		nulls[c] = true;
		if (lk->tier == HC_TIER_NONE)
			continue;
		nulls[c] = false;
		if (strcmp(col, "tier") == 0)
			values[c] = CStringGetTextDatum(tiers[lk->tier]);
		else if (strcmp(col, "key") == 0 && lk->key[0])
			values[c] = CStringGetTextDatum(lk->key);
		else if (strcmp(col, "elapsed_us") == 0)
			values[c] = Int64GetDatum(lk->elapsed_us);
		else if (strcmp(col, "bypass_reason") == 0 && lk->bypass_reason[0])
			values[c] = CStringGetTextDatum(lk->bypass_reason);
		else if (strcmp(col, "etag") == 0 && lk->key[0])
		{
			/* the entity tag: the key's digest, quoted */
			char		etag[2 * HC_DIGEST_LEN + 3];

			snprintf(etag, sizeof(etag), "\"%s\"", lk->key + strlen(lk->key) - 2 * HC_DIGEST_LEN);
			values[c] = CStringGetTextDatum(etag);
		}
		else if (strcmp(col, "ttl_remaining_s") == 0 && lk->ttl_remaining_s >= 0)
			values[c] = Int32GetDatum(lk->ttl_remaining_s);
		else if (strcmp(col, "tags") == 0 && tags_len > 0)
			values[c] = lookup_tags_array(tags, tags_len);
		else if (strcmp(col, "edge_keys") == 0 && tags_len > 0)
			values[c] = CStringGetTextDatum(HcLastLookupEdgeKeys());
		else if (strcmp(col, "fragment_hits") == 0)
			values[c] = Int32GetDatum(lk->fragment_hits);
		else if (strcmp(col, "fragment_fills") == 0)
			values[c] = Int32GetDatum(lk->fragment_fills);
		else if (strcmp(col, "stamp") == 0 && lk->has_stamp)
			values[c] = CStringGetTextDatum(psprintf(UINT64_FORMAT "/" UINT64_FORMAT,
													 hc_shared->epoch, lk->stamp_seq));
		else
			nulls[c] = true;
	}
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
