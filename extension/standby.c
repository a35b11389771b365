/*-------------------------------------------------------------------------
 *
 * standby.c
 *	  Hot standbys: invalidation in WAL order, and reads that wait for a
 *	  given LSN.
 *
 * A standby runs no triggers and no commit callbacks of ours: it learns the
 * primary's writes from WAL, through a custom resource manager
 * (RegisterCustomRmgr, id housing_cache.wal_rmgr_id).  The protocol of
 * generation.c, carried over to WAL order:
 *
 *	 primary, PRE_COMMIT  a committing transaction that touched watched
 *						  tables logs the slots it touched (one record, before
 *						  its commit record), when the database's
 *						  housing_cache.replication says so;
 *	 standby, redo		  the startup process marks those slots in flight
 *						  for that transaction and remembers it (a pending
 *						  transaction);
 *	 standby, read		  a reader that finds a slot in flight resolves the
 *						  pending transactions that are no longer running as
 *						  the standby sees them: committed, it bumps their
 *						  slots (generation + 1, in flight - 1); aborted, it
 *						  unmarks them.  Then it reads the generations again.
 *
 * Why no read on a standby is stale.  A transaction stops running, for the
 * standby, when its commit (or abort) record has been replayed: from then
 * on new snapshots on the standby see it.  So a slot is bumped only after
 * the commit is visible, and it was in flight from before the commit record
 * was replayed (our record precedes it in WAL) until after: a reader that
 * read the old generation either took its snapshot before the commit was
 * replayed (its answer is the old state, under the old key) or found the
 * slot in flight and computed without the cache.  Bumping at the redo of
 * our record instead would be the trap: a reader could read the new
 * generation, take a snapshot that does not see the commit yet, and store
 * the old rows under the new key, to be served long after the commit.
 *
 * What the standby cannot attribute to slots it treats as touching
 * everything, and until then bypasses the cache ("standby catching up"):
 *
 *	 - transactions that were running when replay started (after a start or
 *	   restart of the standby, their records may lie before the point replay
 *	   started from): every transaction whose xid is below the next xid the
 *	   standby knew of at its first read;
 *	 - a transaction with more slots than a pending entry holds, or no free
 *	   entry (a bounded table: overflow means bypass, counted).
 *
 * Once every such transaction has ended as the standby sees it (the xmin of
 * a new snapshot has passed them), a global generation, part of every key,
 * is bumped, and the cache is used again.  Promotion needs nothing more:
 * the old primary's transactions that never committed end as aborted, and
 * the pending ones resolve like any other.
 *
 * Whether the primary logs (housing_cache.replication, per database) is
 * catalog data, replicated in WAL order with the commits it governs: it can
 * change only under an exclusive lock that committing writers wait for,
 * and its version is part of every key.  A standby caches only when its own
 * snapshot of that catalog says the primary logs.
 *
 * min_lsn: a read that carries a minimum LSN waits, on a standby, until
 * replay has passed it (bounded, interruptible), then fails with SQLSTATE
 * 53HC0 (class 53: PostgREST answers 503) so that the client can go to the
 * primary.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/transam.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "access/xlog_internal.h"
#include "access/xloginsert.h"
#include "access/xlogreader.h"
#include "access/xlogrecovery.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "storage/procarray.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/pg_lsn.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "housing_cache.h"

PG_FUNCTION_INFO_V1(housing_cache_last_commit_lsn);
PG_FUNCTION_INFO_V1(housing_cache_set_wal_invalidation);

/* the record: the slots one committing transaction touched */
#define XLOG_HC_INVALIDATE	0x00

#define HC_XL_MAGIC			0x48434931	/* "HCI1" */
#define HC_XL_ALL			0x01	/* too many slots to list: everything */
#define HC_XL_MAX_SLOTS		1024

typedef struct xl_hc_invalidate
{
	uint32		magic;
	TransactionId xid;			/* top-level transaction */
	Oid			dbid;
	uint32		nslots_primary; /* the primary's generation_slots */
	uint16		flags;
	uint16		count;			/* slots listed */
	uint32		slots[FLEXIBLE_ARRAY_MEMBER];
} xl_hc_invalidate;

#define SizeOfHcInvalidate	offsetof(xl_hc_invalidate, slots)

/* pending transactions on a standby */
#define HC_PENDING_XACTS	256
#define HC_PENDING_SLOTS	64

#define PENDING_FREE		0
#define PENDING_FILLING		1
#define PENDING_WAITING		2	/* slots marked, transaction not resolved */
#define PENDING_RESOLVING	3

typedef struct HcPending
{
	pg_atomic_uint32 state;
	TransactionId xid;
	int			nslots;
	uint32		slots[HC_PENDING_SLOTS];
} HcPending;

typedef struct HcStandbyState
{
	pg_atomic_uint64 global_generation; /* bumped for what slots cannot say */
	pg_atomic_uint64 unsafe_until;	/* FullTransactionId; 0: nothing unknown */
	pg_atomic_uint32 boundary_set;	/* the first read in recovery happened */
	pg_atomic_uint32 npending;	/* entries not FREE */
	HcPending	pending[HC_PENDING_XACTS];
} HcStandbyState;

static HcStandbyState *standby = NULL;

/* ---------- shared memory ---------- */

Size
HcStandbyShmemSize(void)
{
	return MAXALIGN(sizeof(HcStandbyState));
}

void
HcStandbyShmemInit(char *base, bool found)
{
	standby = (HcStandbyState *) base;
	if (found)
		return;
	pg_atomic_init_u64(&standby->global_generation, 0);
	pg_atomic_init_u64(&standby->unsafe_until, 0);
	pg_atomic_init_u32(&standby->boundary_set, 0);
	pg_atomic_init_u32(&standby->npending, 0);
	for (int i = 0; i < HC_PENDING_XACTS; i++)
		pg_atomic_init_u32(&standby->pending[i].state, PENDING_FREE);
}

/* ---------- transaction ids ---------- */

/*
 * The full transaction id of xid, which is not in the future of next: the
 * one of next's epoch, or of the epoch before.
 */
static FullTransactionId
full_xid(TransactionId xid, FullTransactionId next)
{
	uint32		epoch = EpochFromFullTransactionId(next);

	if (xid > XidFromFullTransactionId(next) && epoch > 0)
		epoch--;
	return FullTransactionIdFromEpochAndXid(epoch, xid);
}

/*
 * Everything below xid (a full transaction id) may have changed rows in
 * ways no slot tells: bypass until it has all ended, then bump the global
 * generation.
 */
static void
mark_unknown_until(uint64 until)
{
	uint64		cur = pg_atomic_read_u64(&standby->unsafe_until);

	while (cur < until)
	{
		if (pg_atomic_compare_exchange_u64(&standby->unsafe_until, &cur, until))
			break;
	}
}

/* ---------- the resource manager ---------- */

/*
 * The slots of this server a slot of the primary maps to: the same bits
 * below the smaller of the two sizes (both are powers of two, and a slot is
 * the low bits of its tag's hash).
 */
static int
map_slot(uint32 slot, uint32 nslots_primary, uint32 *out, int max)
{
	uint32		nslots = hc_shared->nslots;
	int			n = 0;

	if (nslots <= nslots_primary)
	{
		out[n++] = slot & (nslots - 1);
		return n;
	}
	for (uint32 s = slot & (nslots_primary - 1); s < nslots && n < max; s += nslots_primary)
		out[n++] = s;
	return (n == max && nslots / nslots_primary > (uint32) max) ? -1 : n;
}

/*
 * Redo, in the startup process: mark the transaction's slots in flight and
 * remember it, or, if it cannot be remembered, treat it as touching
 * everything.  Shared memory only; no catalog access, no error but for a
 * record that is not ours.
 */
static void
hc_redo(XLogReaderState *record)
{
	xl_hc_invalidate *xl = (xl_hc_invalidate *) XLogRecGetData(record);
	uint8		info = XLogRecGetInfo(record) & ~XLR_INFO_MASK;
	uint32		mapped[HC_PENDING_SLOTS];
	int			n = 0;
	HcPending  *entry = NULL;

	if (info != XLOG_HC_INVALIDATE || XLogRecGetDataLen(record) < SizeOfHcInvalidate ||
		xl->magic != HC_XL_MAGIC ||
		XLogRecGetDataLen(record) != SizeOfHcInvalidate + sizeof(uint32) * xl->count)
		elog(PANIC, "housing_cache: WAL record of resource manager %d is not a housing_cache invalidation (info %u, %u bytes)",
			 hc_wal_rmgr_id, info, XLogRecGetDataLen(record));
	if (hc_shared == NULL || standby == NULL)
		return;
	HcStatInc(HC_STAT_WAL_REPLAYED);

	if (xl->flags & HC_XL_ALL)
		n = -1;
	for (int i = 0; i < xl->count && n >= 0; i++)
	{
		uint32		one[HC_PENDING_SLOTS];
		int			k = map_slot(xl->slots[i], xl->nslots_primary, one, HC_PENDING_SLOTS);

		if (k < 0 || n + k > HC_PENDING_SLOTS)
			n = -1;
		else
		{
			memcpy(mapped + n, one, sizeof(uint32) * k);
			n += k;
		}
	}

	/* the startup process is the only one that fills entries */
	if (n >= 0)
	{
		for (int i = 0; i < HC_PENDING_XACTS; i++)
		{
			uint32		expected = PENDING_FREE;

			if (pg_atomic_compare_exchange_u32(&standby->pending[i].state, &expected, PENDING_FILLING))
			{
				entry = &standby->pending[i];
				break;
			}
		}
	}
	if (entry == NULL)
	{
		HcStatInc(HC_STAT_WAL_OVERFLOWS);
		mark_unknown_until(U64FromFullTransactionId(full_xid(xl->xid, ReadNextFullTransactionId())) + 1);
		return;
	}
	entry->xid = xl->xid;
	entry->nslots = n;
	memcpy(entry->slots, mapped, sizeof(uint32) * n);
	for (int i = 0; i < n; i++)
		HcSlotMark(mapped[i]);
	pg_atomic_fetch_add_u32(&standby->npending, 1);
	pg_write_barrier();
	pg_atomic_write_u32(&entry->state, PENDING_WAITING);
}

static void
hc_desc(StringInfo buf, XLogReaderState *record)
{
	xl_hc_invalidate *xl = (xl_hc_invalidate *) XLogRecGetData(record);

	if (XLogRecGetDataLen(record) < SizeOfHcInvalidate)
		return;
	appendStringInfo(buf, "xid %u db %u slots %u%s", xl->xid, xl->dbid, (uint32) xl->count,
					 (xl->flags & HC_XL_ALL) ? " (all)" : "");
	for (int i = 0; i < xl->count && i < 16; i++)
		appendStringInfo(buf, "%s%u", i == 0 ? ": " : " ", xl->slots[i]);
}

static const char *
hc_identify(uint8 info)
{
	return (info & ~XLR_INFO_MASK) == XLOG_HC_INVALIDATE ? "INVALIDATE" : NULL;
}

static RmgrData hc_rmgr = {
	.rm_name = "housing_cache",
	.rm_redo = hc_redo,
	.rm_desc = hc_desc,
	.rm_identify = hc_identify,
};

/*
 * Called from _PG_init under shared_preload_libraries.
 */
void
HcStandbyRegisterRmgr(void)
{
	RegisterCustomRmgr((RmgrId) hc_wal_rmgr_id, &hc_rmgr);
}

/* ---------- the primary: logging ---------- */

/*
 * At PRE_COMMIT of a transaction that touched these slots: log them before
 * the commit record, if this database's catalog says the primary logs.
 * Takes a weak lock on housing_cache.replication until the transaction
 * ends, which set_wal_invalidation() waits for: the setting cannot change
 * between the time a writer reads it and its commit.
 */
void
HcStandbyLogInvalidation(const uint32 *slots, int count)
{
	TransactionId xid = GetTopTransactionIdIfAny();
	xl_hc_invalidate xl;

	if (!TransactionIdIsValid(xid) || RecoveryInProgress())
		return;
	if (!HcCatalogWalInvalidation(true, NULL))
		return;

	xl.magic = HC_XL_MAGIC;
	xl.xid = xid;
	xl.dbid = MyDatabaseId;
	xl.nslots_primary = hc_shared->nslots;
	xl.flags = (count < 0 || count > HC_XL_MAX_SLOTS) ? HC_XL_ALL : 0;
	xl.count = (xl.flags & HC_XL_ALL) ? 0 : (uint16) count;

	XLogBeginInsert();
	XLogRegisterData((char *) &xl, SizeOfHcInvalidate);
	if (xl.count > 0)
		XLogRegisterData((char *) slots, sizeof(uint32) * xl.count);
	(void) XLogInsert((RmgrId) hc_wal_rmgr_id, XLOG_HC_INVALIDATE);
	HcStatInc(HC_STAT_WAL_LOGGED);
}

/* ---------- the standby: reading ---------- */

/*
 * May a reader on this server use the cache, as far as transactions it
 * could not attribute to slots go?  Clears the unknown when every such
 * transaction has ended (bumping the global generation first).  Needs a
 * transaction.
 */
bool
HcStandbyCaughtUp(void)
{
	uint64		until;
	Snapshot	snap;
	FullTransactionId next;

	if (standby == NULL)
		return false;

	/*
	 * The first read in recovery: transactions that were running when
	 * replay started may have logged their slots before it.
	 */
	if (pg_atomic_read_u32(&standby->boundary_set) == 0 && RecoveryInProgress())
	{
		uint32		expected = 0;

		if (pg_atomic_compare_exchange_u32(&standby->boundary_set, &expected, 1))
			mark_unknown_until(U64FromFullTransactionId(ReadNextFullTransactionId()));
	}

	until = pg_atomic_read_u64(&standby->unsafe_until);
	if (until == 0)
		return true;
	next = ReadNextFullTransactionId();

	/* has everything below it ended, as new snapshots here see it? */
	snap = GetLatestSnapshot();
	if (U64FromFullTransactionId(full_xid(snap->xmin, next)) < until)
	{
		HcStatInc(HC_STAT_WAL_CATCHING_UP);
		return false;
	}
	pg_atomic_fetch_add_u64(&standby->global_generation, 1);
	(void) pg_atomic_compare_exchange_u64(&standby->unsafe_until, &until, 0);
	return pg_atomic_read_u64(&standby->unsafe_until) == 0;
}

/* the generation of everything, part of every key */
uint64
HcStandbyGlobalGeneration(void)
{
	return standby ? pg_atomic_read_u64(&standby->global_generation) : 0;
}

/*
 * Resolve the pending transactions that no longer run, as this server sees
 * them: bump the slots of the committed ones, unmark those of the aborted.
 * Returns whether any was resolved, here or by another reader meanwhile.  Called by a reader that found a slot
 * in flight (on a standby, or on a promoted one).
 */
bool
HcStandbyResolve(void)
{
	bool		any = false;

	if (standby == NULL || pg_atomic_read_u32(&standby->npending) == 0)
		return false;
	for (int i = 0; i < HC_PENDING_XACTS; i++)
	{
		HcPending  *e = &standby->pending[i];
		uint32		expected = PENDING_WAITING;
		bool		committed;

		if (pg_atomic_read_u32(&e->state) != PENDING_WAITING)
			continue;
		pg_read_barrier();
		if (TransactionIdIsInProgress(e->xid))
			continue;
		if (!pg_atomic_compare_exchange_u32(&e->state, &expected, PENDING_RESOLVING))
			continue;
		committed = TransactionIdDidCommit(e->xid);
		for (int s = 0; s < e->nslots; s++)
		{
			if (committed)
				HcSlotBump(e->slots[s]);
			else
				HcSlotUnmark(e->slots[s]);
		}
		HcStatAdd(HC_STAT_WAL_RESOLVED, e->nslots);
		pg_atomic_fetch_sub_u32(&standby->npending, 1);
		pg_atomic_write_u32(&e->state, PENDING_FREE);
		any = true;
	}

	/*
	 * Another reader may be resolving an entry this one found in flight:
	 * that takes a few atomic operations, so wait for it (briefly) rather
	 * than go around the cache.
	 */
	for (int i = 0; i < HC_PENDING_XACTS; i++)
	{
		HcPending  *e = &standby->pending[i];

		for (int spins = 0; spins < 1000 &&
			 pg_atomic_read_u32(&e->state) == PENDING_RESOLVING; spins++)
		{
			pg_usleep(10);
			any = true;
		}
	}
	return any;
}

/* ---------- min_lsn ---------- */

/*
 * A read that carries housing_cache.min_lsn waits, on a standby, until
 * replay has passed it: at most housing_cache.min_lsn_wait_ms, then it
 * fails with 53HC0.  Interruptible.  On a primary it returns at once.
 */
void
HcStandbyWaitForLsn(void)
{
	XLogRecPtr	target;
	TimestampTz start;
	bool		waited = false;

	if (hc_min_lsn == NULL || hc_min_lsn[0] == '\0' || !RecoveryInProgress())
		return;
	target = DatumGetLSN(DirectFunctionCall1(pg_lsn_in, CStringGetDatum(hc_min_lsn)));
	start = GetCurrentTimestamp();
	while (GetXLogReplayRecPtr(NULL) < target)
	{
		if (!RecoveryInProgress())
			break;				/* promoted meanwhile: everything is here */
		if (!waited)
		{
			waited = true;
			HcStatInc(HC_STAT_MIN_LSN_WAITS);
		}
		if (TimestampDifferenceExceeds(start, GetCurrentTimestamp(), hc_min_lsn_wait_ms))
		{
			HcStatInc(HC_STAT_MIN_LSN_TIMEOUTS);
			ereport(ERROR,
					(errcode(MAKE_SQLSTATE('5', '3', 'H', 'C', '0')),
					 errmsg("this standby has not replayed up to %X/%X yet",
							LSN_FORMAT_ARGS(target)),
					 errdetail("Replay is at %X/%X after waiting %d ms (housing_cache.min_lsn_wait_ms).",
							   LSN_FORMAT_ARGS(GetXLogReplayRecPtr(NULL)), hc_min_lsn_wait_ms),
					 errhint("Retry, or read from the primary.")));
		}
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 2L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/*
 * housing_cache.last_commit_lsn() RETURNS pg_lsn: where this session's last
 * commit that wrote WAL ends; NULL if there was none.  A read elsewhere with
 * housing_cache.min_lsn set to it sees that commit.
 */
Datum
housing_cache_last_commit_lsn(PG_FUNCTION_ARGS)
{
	if (XactLastCommitEnd == InvalidXLogRecPtr)
		PG_RETURN_NULL();
	PG_RETURN_LSN(XactLastCommitEnd);
}

/*
 * housing_cache.set_wal_invalidation(on boolean) RETURNS void: whether the
 * primary logs its invalidations in WAL for hot standbys, in this database.
 */
Datum
housing_cache_set_wal_invalidation(PG_FUNCTION_ARGS)
{
	bool		on = PG_GETARG_BOOL(0);

	if (!superuser())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("only a superuser can switch WAL invalidation")));
	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("WAL invalidation is switched on the primary")));
	if (on && hc_shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("housing_cache is not loaded through shared_preload_libraries"),
				 errdetail("Only a preloaded library can log invalidations in WAL.")));
	if (on && wal_level < WAL_LEVEL_REPLICA)
		ereport(WARNING,
				(errmsg("wal_level is \"minimal\": there is no standby to read these records")));
	HcCatalogSetWalInvalidation(on);
	PG_RETURN_VOID();
}
