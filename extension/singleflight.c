/*-------------------------------------------------------------------------
 *
 * singleflight.c
 *	  One fill per key at a time, across all backends.
 *
 * When several sessions miss the same key at once, the first claims the fill
 * in a small shared table; the others sleep on that claim's condition
 * variable, then look the key up again (L1, then L2) and find the answer the
 * filler stored.  Every claim is released when its filler stores, fails or is
 * cancelled (the engine's PG_CATCH), or exits (a before_shmem_exit callback),
 * and a released claim wakes every waiter: if the filler failed, the first
 * of them to claim again takes the fill over; if it computed an answer it
 * could not store (too large, nowhere to keep it), they all compute at once
 * rather than queue behind one another.
 *
 * Waits are bounded by housing_cache.fill_wait_ms; ConditionVariableTimedSleep
 * checks for interrupts, so statement_timeout and pg_cancel_backend() end a
 * wait like any other.  A claim is a spinlock-protected slot; nothing else is
 * locked while waiting, so waits cannot deadlock.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/condition_variable.h"
#include "storage/ipc.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "housing_cache.h"

#define HC_FLIGHTS	256

typedef struct HcFlight
{
	uint8		digest[HC_DIGEST_LEN];
	int			owner;			/* pid of the filler; 0 = free */
	uint64		seq;			/* incremented at each release */
	HcFillOutcome outcome;		/* of the last release */
	ConditionVariable cv;
} HcFlight;

typedef struct HcFlights
{
	slock_t		mutex;
	HcFlight	flights[HC_FLIGHTS];
} HcFlights;

static HcFlights *hc_flights = NULL;
static bool exit_callback_registered = false;

Size
HcFlightShmemSize(void)
{
	return sizeof(HcFlights);
}

void
HcFlightShmemInit(char *base, bool found)
{
	hc_flights = (HcFlights *) base;
	if (found)
		return;
	SpinLockInit(&hc_flights->mutex);
	for (int i = 0; i < HC_FLIGHTS; i++)
	{
		hc_flights->flights[i].owner = 0;
		hc_flights->flights[i].seq = 0;
		hc_flights->flights[i].outcome = HC_FILL_FAILED;
		ConditionVariableInit(&hc_flights->flights[i].cv);
	}
}

/* release every claim this process still holds (it is exiting) */
static void
release_all_at_exit(int code, Datum arg)
{
	if (hc_flights == NULL)
		return;
	for (int i = 0; i < HC_FLIGHTS; i++)
	{
		if (hc_flights->flights[i].owner == MyProcPid)
			HcFlightEnd(i, HC_FILL_FAILED);
	}
}

/*
 * Claim the fill of a key, or wait for the current filler.
 *
 *	HC_FLIGHT_OWNER		the caller fills; *slot must be passed to HcFlightEnd
 *	HC_FLIGHT_DONE		a fill the caller waited for ended: look again
 *	HC_FLIGHT_DONE_UNSTORED  it ended without storing its answer: compute
 *						without waiting for another fill
 *	HC_FLIGHT_BUSY		someone fills and wait is false
 *	HC_FLIGHT_TIMEOUT	waited until deadline
 *	HC_FLIGHT_FULL		no free slot: fill without coordination
 */
HcFlightResult
HcFlightBegin(const uint8 *digest, bool wait, TimestampTz deadline, int *slot)
{
	HcFlight   *mine = NULL;
	int			free_slot = -1;
	uint64		seq = 0;

	if (hc_flights == NULL)
		return HC_FLIGHT_FULL;

	SpinLockAcquire(&hc_flights->mutex);
	for (int i = 0; i < HC_FLIGHTS; i++)
	{
		HcFlight   *f = &hc_flights->flights[i];

		if (f->owner == 0)
		{
			if (free_slot < 0)
				free_slot = i;
		}
		else if (memcmp(f->digest, digest, HC_DIGEST_LEN) == 0)
		{
			mine = f;
			seq = f->seq;
			*slot = i;
			break;
		}
	}
	if (mine == NULL)
	{
		if (free_slot < 0)
		{
			SpinLockRelease(&hc_flights->mutex);
			return HC_FLIGHT_FULL;
		}
		memcpy(hc_flights->flights[free_slot].digest, digest, HC_DIGEST_LEN);
		hc_flights->flights[free_slot].owner = MyProcPid;
		SpinLockRelease(&hc_flights->mutex);
		*slot = free_slot;
		if (!exit_callback_registered)
		{
			before_shmem_exit(release_all_at_exit, (Datum) 0);
			exit_callback_registered = true;
		}
		return HC_FLIGHT_OWNER;
	}
	SpinLockRelease(&hc_flights->mutex);

	if (!wait)
		return HC_FLIGHT_BUSY;

	HcStatInc(HC_STAT_FILL_WAITS);
	ConditionVariablePrepareToSleep(&mine->cv);
	for (;;)
	{
		bool		released;
		HcFillOutcome outcome;
		long		remaining_ms;
		TimestampTz now;

		SpinLockAcquire(&hc_flights->mutex);
		released = (mine->seq != seq);
		outcome = mine->outcome;
		SpinLockRelease(&hc_flights->mutex);
		if (released)
		{
			ConditionVariableCancelSleep();
			return outcome == HC_FILL_UNSTORED ? HC_FLIGHT_DONE_UNSTORED : HC_FLIGHT_DONE;
		}

		now = GetCurrentTimestamp();
		remaining_ms = (long) ((deadline - now) / 1000);
		if (remaining_ms <= 0)
		{
			ConditionVariableCancelSleep();
			HcStatInc(HC_STAT_FILL_TIMEOUTS);
			return HC_FLIGHT_TIMEOUT;
		}
		/* returns on broadcast, timeout or latch; checks for interrupts */
		(void) ConditionVariableTimedSleep(&mine->cv, remaining_ms,
										   PG_WAIT_EXTENSION);
	}
}

/*
 * Release a claim and wake its waiters.  Never raises an error.
 */
void
HcFlightEnd(int slot, HcFillOutcome outcome)
{
	HcFlight   *f;

	if (hc_flights == NULL || slot < 0 || slot >= HC_FLIGHTS)
		return;
	f = &hc_flights->flights[slot];
	SpinLockAcquire(&hc_flights->mutex);
	if (f->owner != MyProcPid)
	{
		SpinLockRelease(&hc_flights->mutex);
		return;
	}
	f->owner = 0;
	f->outcome = outcome;
	f->seq++;
	SpinLockRelease(&hc_flights->mutex);
	ConditionVariableBroadcast(&f->cv);
}
