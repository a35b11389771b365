/*-------------------------------------------------------------------------
 *
 * generation.c
 *	  The generation protocol: generation slots, read by readers, marked,
 *	  bumped and unmarked by committing writers.
 *
 * A tag (tag.c) names something a cached answer depends on: a whole table
 * ("housing.listings"), one partition value of it
 * ("housing.listings/city=Boston") or one row ("housing.listings/id=42").
 * Each tag hashes, together with the database, to one of a fixed number of
 * generation slots in shared memory.  A committed write bumps the slots of
 * the tags it touched; two tags sharing a slot only invalidate each other
 * needlessly, never serve stale data, and nothing is ever allocated or
 * evicted.
 *
 * A slot packs two things in one 64-bit word, so that a reader gets both
 * with one atomic read and a committing writer changes both with one atomic
 * add: the low HC_INFLIGHT_BITS bits count the writers that passed
 * PRE_COMMIT but have not yet bumped (in flight); the rest is the
 * generation.
 *
 * Why no read is stale after a commit
 * -----------------------------------
 * Writers (invalidate.c) remember the slots their rows touch.  Then:
 *
 *	 PRE_COMMIT	  each touched slot is marked: in flight + 1 (HcSlotMark);
 *	 (the commit record is written and becomes visible to other snapshots)
 *	 COMMIT		  each touched slot is bumped: generation + 1 and in flight
 *				  - 1, in one atomic add (HcSlotBump);
 *	 ABORT		  if PRE_COMMIT marked the slots, they are unmarked: in flight
 *				  - 1, generations left alone (HcSlotUnmark).
 *
 * Readers (fetch.c) read the generations of the slots of their tags first
 * (HcReadGenerations), and bypass the cache when any slot is in flight.
 * Only then do they look the key up, or take the snapshot their query runs
 * on.  Hence:
 *
 *	 - a read that starts after COMMIT returned sees the bumped generation (the
 *	   bump happens before the client hears of the commit), so its key is new
 *	   and no answer stored before the bump can match it;
 *	 - a read that runs while the commit is becoming visible sees the slot in
 *	   flight and goes to the database;
 *	 - a fill whose snapshot predates the commit read the old generations
 *	   before its snapshot, so it lands under the old key, which nobody can
 *	   reach any more;
 *	 - a rolled-back write bumps nothing;
 *	 - a transaction that wrote (or may write, in the same statement) what a
 *	   query reads sees rows nobody else sees: it neither reads nor fills
 *	   the cache (invalidate.c, HcXactMayHaveWritten).
 *
 * The writes are atomic adds, with neither a lock nor an allocation: the
 * COMMIT callback that bumps must not raise an error.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "housing_cache.h"

#define HC_INFLIGHT_BITS	20
#define HC_INFLIGHT_MASK	((UINT64CONST(1) << HC_INFLIGHT_BITS) - 1)
#define HC_GENERATION_ONE	(UINT64CONST(1) << HC_INFLIGHT_BITS)

/*
 * Read the generations of the given slots.  Returns false when a writer that
 * touched one of them is between PRE_COMMIT and its bump: the caller must then
 * neither serve nor fill a cached answer.
 *
 * Called before the reader takes the snapshot its query runs on; taking a
 * snapshot acquires ProcArrayLock, which orders these reads before it.
 */
bool
HcReadGenerations(const uint32 *slots, int nslots, uint64 *gens)
{
	for (int i = 0; i < nslots; i++)
	{
		uint64		v = pg_atomic_read_u64(&hc_shared->slots[slots[i]]);

		if ((v & HC_INFLIGHT_MASK) != 0)
			return false;
		gens[i] = v >> HC_INFLIGHT_BITS;
	}
	return true;
}

/* PRE_COMMIT: a writer that touched the slot is in flight */
void
HcSlotMark(uint32 slot)
{
	pg_atomic_fetch_add_u64(&hc_shared->slots[slot], 1);
}

/* COMMIT: the slot's generation moves on, and the writer is no longer in flight */
void
HcSlotBump(uint32 slot)
{
	pg_atomic_fetch_add_u64(&hc_shared->slots[slot], HC_GENERATION_ONE - 1);
}

/* ABORT after PRE_COMMIT: the writer is no longer in flight, nothing changed */
void
HcSlotUnmark(uint32 slot)
{
	pg_atomic_fetch_sub_u64(&hc_shared->slots[slot], 1);
}
