/*-------------------------------------------------------------------------
 *
 * stats.c
 *	  housing_cache.stats, reset_stats() and last_lookup().
 *
 * Counters are cluster-wide atomics (shmem.c); reading them takes no lock,
 * so a row may mix counts from a few microseconds apart.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "housing_cache.h"

PG_FUNCTION_INFO_V1(housing_cache_stats);
PG_FUNCTION_INFO_V1(housing_cache_reset_stats);
PG_FUNCTION_INFO_V1(housing_cache_last_lookup);

#define STATS_COLS	(HC_STAT_COUNT + 3)

/*
 * housing_cache.stats(): one row, the counters in HcStat order, then
 * breaker_state, preloaded and stats_reset.
 */
Datum
housing_cache_stats(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[STATS_COLS];
	bool		nulls[STATS_COLS];
	int			i;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	if (tupdesc->natts != STATS_COLS)
		elog(ERROR, "housing_cache.stats() expects %d columns; reinstall the extension", STATS_COLS);

	memset(nulls, 0, sizeof(nulls));
	for (i = 0; i < HC_STAT_COUNT; i++)
		values[i] = Int64GetDatum(hc_shared ? (int64) pg_atomic_read_u64(&hc_shared->stats[i]) : 0);
	values[i++] = CStringGetTextDatum(HcBreakerState());
	values[i++] = BoolGetDatum(hc_shared != NULL);
	if (hc_shared && pg_atomic_read_u64(&hc_shared->stats_reset_at) != 0)
		values[i] = TimestampTzGetDatum((TimestampTz) pg_atomic_read_u64(&hc_shared->stats_reset_at));
	else
		nulls[i] = true;

	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
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

/*
 * housing_cache.last_lookup(): how this session's last cached call was
 * served, its key, entity tag and remaining TTL.  All NULL before the first
 * one.
 */
Datum
housing_cache_last_lookup(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[6];
	bool		nulls[6] = {false, false, false, false, false, false};
	static const char *const tiers[] = {NULL, "l1", "l2", "db", "bypass", "not_modified"};

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	if (hc_last_lookup.tier == HC_TIER_NONE)
	{
		for (int i = 0; i < 6; i++)
			nulls[i] = true;
	}
	else
	{
		values[0] = CStringGetTextDatum(tiers[hc_last_lookup.tier]);
		if (hc_last_lookup.key[0])
			values[1] = CStringGetTextDatum(hc_last_lookup.key);
		else
			nulls[1] = true;
		values[2] = Int64GetDatum(hc_last_lookup.elapsed_us);
		if (hc_last_lookup.reason[0])
			values[3] = CStringGetTextDatum(hc_last_lookup.reason);
		else
			nulls[3] = true;
		if (hc_last_lookup.key[0])
		{
			/* the entity tag: the key's digest, quoted */
			const char *key = hc_last_lookup.key;
			char		etag[2 * HC_DIGEST_LEN + 3];

			snprintf(etag, sizeof(etag), "\"%s\"", key + strlen(key) - 2 * HC_DIGEST_LEN);
			values[4] = CStringGetTextDatum(etag);
		}
		else
			nulls[4] = true;
		if (hc_last_lookup.ttl_remaining_s >= 0)
			values[5] = Int32GetDatum(hc_last_lookup.ttl_remaining_s);
		else
			nulls[5] = true;
	}
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
