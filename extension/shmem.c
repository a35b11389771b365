/*-------------------------------------------------------------------------
 *
 * shmem.c
 *	  The extension's shared memory: generation slots, stats, the breaker,
 *	  and the areas of single-flight and L1.
 *
 * Everything in the area is either written once at startup (epoch,
 * nslots) or is an atomic, so no lock is ever taken on the read
 * path.  The area is created under AddinShmemInitLock by the postmaster (or
 * the first backend under EXEC_BACKEND) and is zeroed, except for the epoch.
 *
 * The epoch is random at every initialization of shared memory (server start
 * and crash restart).  Generations restart from zero then, so the epoch is
 * part of every key: no entry stored in Redis before the restart can be
 * reached after it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xlog.h"
#include "miscadmin.h"
#include "port/pg_bitutils.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"

#include "housing_cache.h"

HcSharedState *hc_shared = NULL;

/*
 * Size of the area for the configured number of generation slots.
 */
static Size
state_size(void)
{
	return MAXALIGN(add_size(offsetof(HcSharedState, slots),
							 mul_size(sizeof(pg_atomic_uint64), hc_generation_slots)));
}

Size
HcShmemSize(void)
{
	Size		size = state_size();

	size = add_size(size, MAXALIGN(HcFlightShmemSize()));
	size = add_size(size, HcStandbyShmemSize());
	size = add_size(size, HcSentinelShmemSize());
	size = add_size(size, HcL1ShmemSize());
	size = add_size(size, HcPublishShmemSize());
	return size;
}

void
HcShmemRequest(void)
{
	RequestAddinShmemSpace(HcShmemSize());
	/* L1's partitions, then the publisher's queue */
	RequestNamedLWLockTranche("housing_cache", HcL1LockCount() + 1);
}

void
HcShmemStartup(void)
{
	bool		found;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	hc_shared = ShmemInitStruct("housing_cache", HcShmemSize(), &found);
	HcFlightShmemInit((char *) hc_shared + state_size(), found);
	HcStandbyShmemInit((char *) hc_shared + state_size() + MAXALIGN(HcFlightShmemSize()), found);
	HcSentinelShmemInit((char *) hc_shared + state_size() + MAXALIGN(HcFlightShmemSize()) +
						HcStandbyShmemSize(), found);
	{
		LWLockPadded *locks = GetNamedLWLockTranche("housing_cache");
		char	   *l1 = (char *) hc_shared + state_size() + MAXALIGN(HcFlightShmemSize()) +
			HcStandbyShmemSize() + HcSentinelShmemSize();

		HcL1ShmemInit(l1, found, HcL1LockCount() > 0 ? locks : NULL);
		HcPublishShmemInit(l1 + HcL1ShmemSize(), found, &locks[HcL1LockCount()].lock);
	}
	if (!found)
	{
		uint64		epoch = 0;

		memset(hc_shared, 0, state_size());
		if (!pg_strong_random(&epoch, sizeof(epoch)))
			epoch = (uint64) GetCurrentTimestamp() ^ ((uint64) MyProcPid << 32);
		hc_shared->epoch = epoch;
		if (!pg_strong_random(hc_shared->value_key, sizeof(hc_shared->value_key)))
			ereport(FATAL,
					(errmsg("housing_cache could not generate a random key")));
		hc_shared->nslots = (uint32) hc_generation_slots;
		for (int i = 0; i < HC_STAT_COUNT; i++)
			pg_atomic_init_u64(&hc_shared->stats[i], 0);
		pg_atomic_init_u64(&hc_shared->stats_reset_at, 0);
		pg_atomic_init_u32(&hc_shared->breaker_failures, 0);
		pg_atomic_init_u64(&hc_shared->breaker_open_until, 0);
		pg_atomic_init_u64(&hc_shared->message_seq, 0);
		for (uint32 i = 0; i < hc_shared->nslots; i++)
			pg_atomic_init_u64(&hc_shared->slots[i], 0);
	}
	LWLockRelease(AddinShmemInitLock);
}
