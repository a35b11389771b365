/*-------------------------------------------------------------------------
 *
 * breaker.c
 *	  The Redis circuit breaker, shared by every backend.
 *
 * One backend's failure to reach Redis opens the breaker for all: until
 * breaker_open_until passes, nobody calls Redis, so a Redis outage costs
 * callers nothing beyond the one call that noticed it (no per-call timeout
 * tax).  When the time passes, the first backend to swap the deadline forward
 * (compare-and-swap) probes; everyone else keeps skipping.  A successful
 * probe closes the breaker; a failed one doubles the backoff, up to
 * breaker_max_backoff_ms.
 *
 * The state is two atomics and is read without locks on every Redis call.
 * Nothing here raises an error: it is called from the commit callback too.
 *
 * Under Redis Sentinel the probe is also the backend that asks the sentinels
 * again where the master is (sentinel.c): a discovery that finds none is a
 * failure like any other, so discoveries are spaced by the same backoff.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/timestamp.h"

#include "housing_cache.h"

/* this backend's current Redis call is the half-open probe */
static bool probing = false;

/*
 * May this backend call Redis now?
 */
bool
HcBreakerAllows(void)
{
	uint64		until;
	TimestampTz now;
	uint64		probe_until;

	probing = false;
	if (hc_shared == NULL)
		return false;

	until = pg_atomic_read_u64(&hc_shared->breaker_open_until);
	if (until == 0)
		return true;

	now = GetCurrentTimestamp();
	if ((uint64) now < until)
	{
		HcStatInc(HC_STAT_BREAKER_SKIPS);
		return false;
	}

	/*
	 * Half-open: claim the probe by moving the deadline past the time a probe
	 * can take, so that exactly one backend probes.
	 */
	probe_until = (uint64) now +
		(uint64) (hc_redis_connect_timeout_ms + 2 * hc_redis_command_timeout_ms + 100) * 1000;
	if (pg_atomic_compare_exchange_u64(&hc_shared->breaker_open_until,
									   &until, probe_until))
	{
		probing = true;
		return true;
	}

	HcStatInc(HC_STAT_BREAKER_SKIPS);
	return false;
}

/*
 * Is this backend's current Redis call the half-open probe?
 */
bool
HcBreakerProbing(void)
{
	return probing;
}

/*
 * Is the breaker closed?  (Does not claim a probe.)
 */
bool
HcBreakerClosed(void)
{
	return hc_shared != NULL &&
		pg_atomic_read_u64(&hc_shared->breaker_open_until) == 0;
}

/*
 * A Redis call succeeded: if it was the probe, close the breaker.  A call
 * that started before the breaker opened proves nothing about Redis now.
 */
void
HcBreakerSuccess(void)
{
	if (hc_shared == NULL)
		return;
	if (!probing && pg_atomic_read_u64(&hc_shared->breaker_open_until) != 0)
		return;
	probing = false;
	if (pg_atomic_read_u64(&hc_shared->breaker_open_until) != 0 ||
		pg_atomic_read_u32(&hc_shared->breaker_failures) != 0)
	{
		char		target[HC_HOST_MAXLEN + 128];

		pg_atomic_write_u32(&hc_shared->breaker_failures, 0);
		pg_atomic_write_u64(&hc_shared->breaker_open_until, 0);
		HcStatInc(HC_STAT_BREAKER_CLOSES);
		HcRedisDescribe(target, sizeof(target));
		ereport(LOG,
				(errmsg("housing_cache: %s is reachable again", target),
				 errhidestmt(true)));
	}
}

/*
 * A Redis call failed (could not connect, timed out, connection lost): open
 * the breaker, or, if this was the probe, keep it open for twice as long.
 * Calls that were already under way when it opened (they all time out
 * together when Redis hangs) only count as errors: otherwise eight readers
 * would double the backoff eight times.
 */
void
HcBreakerFailure(const char *what, const char *detail)
{
	uint32		failures;
	uint64		backoff_ms;
	bool		was_probe = probing;

	HcStatInc(HC_STAT_REDIS_ERRORS);
	probing = false;
	if (hc_shared == NULL)
		return;
	if (!was_probe && pg_atomic_read_u64(&hc_shared->breaker_open_until) != 0)
		return;

	failures = pg_atomic_add_fetch_u32(&hc_shared->breaker_failures, 1);
	backoff_ms = hc_breaker_backoff_ms;
	for (uint32 i = 1; i < failures && backoff_ms < (uint64) hc_breaker_max_backoff_ms; i++)
		backoff_ms *= 2;
	backoff_ms = Min(backoff_ms, (uint64) hc_breaker_max_backoff_ms);
	pg_atomic_write_u64(&hc_shared->breaker_open_until,
						(uint64) GetCurrentTimestamp() + backoff_ms * 1000);

	if (failures == 1)
	{
		char		target[HC_HOST_MAXLEN + 128];

		HcStatInc(HC_STAT_BREAKER_OPENS);
		HcRedisDescribe(target, sizeof(target));
		ereport(LOG,
				(errmsg("housing_cache: %s is unavailable (%s: %s); skipping it for %d ms",
						target, what,
						detail ? detail : "unknown error",
						(int) backoff_ms),
				 errhidestmt(true)));
	}
}

/*
 * 'closed', 'open' or 'half-open', for the stats view.
 */
const char *
HcBreakerState(void)
{
	uint64		until;

	if (hc_shared == NULL)
		return "disabled";
	until = pg_atomic_read_u64(&hc_shared->breaker_open_until);
	if (until == 0)
		return "closed";
	if ((uint64) GetCurrentTimestamp() < until)
		return "open";
	return "half-open";
}
