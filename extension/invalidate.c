/*-------------------------------------------------------------------------
 *
 * invalidate.c
 *	  Row triggers and the commit callback: exact, transactional invalidation.
 *
 * (In these comments, "T/<star>" stands for the table tag followed by a slash
 * and an asterisk: the table's reset tag.)
 *
 * Why no read is stale after a commit
 * -----------------------------------
 * Writers, from the row triggers on watched tables, remember the tags their
 * rows touch (the table, the partition value of the OLD and the NEW row, the
 * row's key) as bits in a per-backend bitmap of generation slots.  Then:
 *
 *	 PRE_COMMIT	  each touched slot's in-flight count is incremented;
 *	 (the commit record is written and becomes visible to other snapshots)
 *	 COMMIT		  each touched slot's generation is incremented and its
 *				  in-flight count decremented, in one atomic add;
 *	 ABORT		  if PRE_COMMIT marked the slots, the in-flight counts are
 *				  decremented, generations are left alone.
 *
 * Readers (engine.c) read the generations of the slots of their tags first,
 * and bypass the cache when any slot is in flight.  Only then do they look
 * the key up, or take the snapshot their query runs on.  Hence:
 *
 *	 - a read that starts after COMMIT returned sees the bumped generation (the
 *	   bump happens before the client hears of the commit), so its key is new
 *	   and no answer stored before the bump can match it;
 *	 - a read that runs while the commit is becoming visible sees the slot in
 *	   flight and goes to the database;
 *	 - a fill whose snapshot predates the commit read the old generations
 *	   before its snapshot, so it lands under the old key, which nobody can
 *	   reach any more;
 *	 - a rolled-back write bumps nothing.
 *
 * The COMMIT callback must not raise an error: by then the transaction is
 * committed.  It only does atomic adds and clears preallocated memory.  The
 * message prepared at PRE_COMMIT is published once the transaction's locks
 * are released (a resource-release callback), through a Redis call bounded
 * by the command timeout; a failed publish is counted, never raised.
 *
 * Subtransactions that roll back keep their tags: that only over-invalidates.
 * PREPARE TRANSACTION is refused once a watched table was written, because
 * the commit would then happen in another session, which does not know the
 * tags.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "commands/dbcommands.h"
#include "commands/trigger.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "storage/lock.h"
#include "storage/lockdefs.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/resowner.h"

#include "housing_cache.h"

PG_FUNCTION_INFO_V1(housing_cache_invalidation_trigger);
PG_FUNCTION_INFO_V1(housing_cache_invalidate);

/* tags touched by this transaction: one bit per generation slot */
static uint64 *touched = NULL;
static int	touched_words = 0;
static int	touched_count = 0;

/*
 * The first touched slots, in order: most transactions touch a handful, and
 * walking this list beats scanning the whole bitmap at PRE_COMMIT, COMMIT
 * and reset.  Past its size the bitmap is scanned.
 */
#define TOUCHED_LIST_SIZE 64
static uint32 touched_list[TOUCHED_LIST_SIZE];

/* PRE_COMMIT marked the touched slots in flight */
static bool marked = false;

/* COMMIT bumped generations; the message goes out once locks are released */
static bool publish_pending = false;

/*
 * The invalidation message, built as tags are remembered and finished at
 * PRE_COMMIT, so that the COMMIT callback only has to write the commit LSN
 * into room reserved for it.
 */
static MemoryContext publish_cxt = NULL;	/* tag lists, per transaction */
static MemoryContext message_cxt = NULL;	/* the finished message */
static StringInfo table_tags = NULL;	/* JSON list items, table-wide tags */
static StringInfo other_tags = NULL;	/* JSON list items, the rest */
static int	other_count = 0;
static bool publish_truncated = false;
static uint64 *seen_hashes = NULL;		/* open addressing, tags listed */
static int	seen_size = 0;
static int	seen_count = 0;
static char *message = NULL;			/* prepared at PRE_COMMIT */
static int	message_len = 0;
static int	message_cap = 0;

#define LSN_ROOM 40

/*
 * Rows written per watched table in this transaction.  Past
 * housing_cache.escalate_rows the table is invalidated as a whole (like a
 * lock escalating) and its trigger stops tagging rows: a bulk load or a
 * large UPDATE then costs almost nothing, and over-invalidates only.
 */
typedef struct TableRows
{
	char	   *table_tag;
	int64		rows;
	bool		escalated;
} TableRows;

static TableRows *table_rows = NULL;
static int	ntable_rows = 0;
static int	table_rows_cap = 0;

static void
ensure_state(void)
{
	if (touched == NULL)
	{
		touched_words = (int) (hc_shared->nslots / 64);
		touched = MemoryContextAllocZero(TopMemoryContext,
										 sizeof(uint64) * touched_words);
		publish_cxt = AllocSetContextCreate(TopMemoryContext,
											"housing_cache invalidation",
											ALLOCSET_SMALL_SIZES);
		message_cxt = AllocSetContextCreate(TopMemoryContext,
											"housing_cache invalidation message",
											ALLOCSET_SMALL_SIZES);
	}
	if (table_tags == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(publish_cxt);

		table_tags = makeStringInfo();
		other_tags = makeStringInfo();
		seen_size = 64;
		seen_count = 0;
		seen_hashes = palloc0(sizeof(uint64) * seen_size);
		MemoryContextSwitchTo(old);
	}
}

/*
 * Has this tag been listed already?  Adds it if not.  The set grows, so it
 * stays at most half full.
 */
static bool
seen_before(uint64 h)
{
	int			i;

	if (2 * (seen_count + 1) > seen_size)
	{
		uint64	   *old = seen_hashes;
		int			old_size = seen_size;

		seen_size *= 2;
		seen_hashes = MemoryContextAllocZero(publish_cxt, sizeof(uint64) * seen_size);
		for (int j = 0; j < old_size; j++)
		{
			if (old[j] == 0)
				continue;
			i = (int) (old[j] & (seen_size - 1));
			while (seen_hashes[i] != 0)
				i = (i + 1) & (seen_size - 1);
			seen_hashes[i] = old[j];
		}
		pfree(old);
	}

	i = (int) (h & (seen_size - 1));
	while (seen_hashes[i] != 0)
	{
		if (seen_hashes[i] == h)
			return true;
		i = (i + 1) & (seen_size - 1);
	}
	seen_hashes[i] = h;
	seen_count++;
	return false;
}

/*
 * A tag as UTF-8 text for the JSON message.  Tags are in the database
 * encoding; in SQL_ASCII (no encoding at all) or UTF-8, any byte sequence
 * that is not valid UTF-8 becomes U+FFFD, so the message is always valid.
 */
static char *
tag_as_utf8(const char *tag, int len)
{
	int			enc = GetDatabaseEncoding();
	StringInfoData out;

	if (enc != PG_UTF8 && enc != PG_SQL_ASCII)
		return pg_server_to_any(pnstrdup(tag, len), len, PG_UTF8);

	initStringInfo(&out);
	while (len > 0)
	{
		int			n = pg_utf_mblen((const unsigned char *) tag);

		if (*tag != '\0' && n <= len && pg_utf8_islegal((const unsigned char *) tag, n))
		{
			appendBinaryStringInfo(&out, tag, n);
		}
		else
		{
			appendStringInfoString(&out, "\xEF\xBF\xBD");	/* U+FFFD */
			n = 1;
		}
		tag += n;
		len -= n;
	}
	return out.data;
}

/*
 * Add a tag to the message, once.  Table-wide tags ("T", "T/<star>") are always
 * listed; the others up to publish_max_tags, after which the message says
 * it was truncated.
 */
static void
list_tag(const char *tag, int len)
{
	bool		table_wide = (memchr(tag, '=', len) == NULL);
	uint64		h;
	StringInfo	dst;
	MemoryContext old;
	char	   *copy;

	if (!table_wide && other_count >= hc_publish_max_tags)
	{
		publish_truncated = true;
		return;
	}
	h = hash_bytes_extended((const unsigned char *) tag, len, 0x9e3779b9) | 1;
	if (seen_before(h))
		return;
	if (!table_wide)
		other_count++;

	old = MemoryContextSwitchTo(publish_cxt);
	dst = table_wide ? table_tags : other_tags;
	if (dst->len > 0)
		appendStringInfoChar(dst, ',');
	copy = tag_as_utf8(tag, len);
	escape_json(dst, copy);
	pfree(copy);
	MemoryContextSwitchTo(old);
}

/*
 * Remember that this transaction touched a tag.
 */
void
HcRememberTag(const char *tag, int len)
{
	uint32		slot;
	uint64		bit;

	if (hc_shared == NULL)
		return;
	ensure_state();

	slot = HcTagSlot(tag, len);
	bit = UINT64CONST(1) << (slot % 64);
	if ((touched[slot / 64] & bit) == 0)
	{
		touched[slot / 64] |= bit;
		if (touched_count < TOUCHED_LIST_SIZE)
			touched_list[touched_count] = slot;
		touched_count++;
		/* keep the invariant "marked implies every touched slot in flight" */
		if (marked)
			pg_atomic_fetch_add_u64(&hc_shared->slots[slot], 1);
	}
	if (hc_publish)
		list_tag(tag, len);
}

/*
 * May the current transaction see rows of these relations that are not
 * committed?  Its reads of them must then neither use the cache nor fill
 * it, whatever the path that got them there: RETURNING, a data-modifying
 * CTE, a trigger or a function called by the write.  The row triggers fire
 * only at the end of the statement, too late to tell; but every statement
 * that may write a table locks it (RowExclusiveLock or stronger) before it
 * runs, and keeps the lock to the end of the transaction.  So a relation
 * locked in such a mode has been written, or may yet be in this statement;
 * one that is not locked so shows only committed rows, and what a query
 * computes from it is what any other session would see.  (A lock taken by
 * LOCK TABLE alone, or by DDL, counts too: over-cautious, never stale.)
 * A transaction that fired our triggers or called invalidate() is treated
 * alike, whichever table it wrote.
 */
bool
HcXactMayHaveWritten(const Oid *relids, int nrelids)
{
	static const LOCKMODE write_modes[] = {
		RowExclusiveLock, ShareRowExclusiveLock, ExclusiveLock, AccessExclusiveLock
	};

	if (touched_count > 0)
		return true;
	for (int i = 0; i < nrelids; i++)
	{
		LOCKTAG		tag;

		SET_LOCKTAG_RELATION(tag, MyDatabaseId, relids[i]);
		for (int m = 0; m < lengthof(write_modes); m++)
			if (LockHeldByMe(&tag, write_modes[m]))
				return true;
	}
	return false;
}

/*
 * Remember a table-wide invalidation: the table tag, which answers without a
 * finer tag depend on, and the table's reset tag "T/<star>", which every finer tag
 * of the table implies.
 */
void
HcInvalidateTable(const char *table_tag)
{
	StringInfoData buf;

	HcRememberTag(table_tag, strlen(table_tag));
	initStringInfo(&buf);
	appendStringInfo(&buf, "%s/*", table_tag);
	HcRememberTag(buf.data, buf.len);
	pfree(buf.data);
}

/*
 * Spellers of the column types this backend's triggers have met, by type
 * and collation: a row costs no catalog lookup for its tags.
 */
typedef struct ColumnSpeller
{
	Oid			type;
	Oid			collation;
	HcTagSpeller speller;
} ColumnSpeller;

#define COLUMN_SPELLERS 16
static ColumnSpeller column_spellers[COLUMN_SPELLERS];
static int	ncolumn_spellers = 0;
static MemoryContext speller_cxt = NULL;	/* their functions' state */

static const HcTagSpeller *
column_speller(Form_pg_attribute att)
{
	ColumnSpeller *cs;

	for (int i = 0; i < ncolumn_spellers; i++)
	{
		cs = &column_spellers[i];
		if (cs->type == att->atttypid && cs->collation == att->attcollation)
			return &cs->speller;
	}
	if (speller_cxt == NULL)
		speller_cxt = AllocSetContextCreate(TopMemoryContext,
											"housing_cache tag spellers",
											ALLOCSET_SMALL_SIZES);
	/* full (a backend writing many kinds of tables): start over */
	if (ncolumn_spellers == COLUMN_SPELLERS)
	{
		MemoryContextReset(speller_cxt);
		ncolumn_spellers = 0;
	}
	cs = &column_spellers[ncolumn_spellers];
	(void) HcTagSpellerInit(&cs->speller, att->atttypid, att->attcollation,
							speller_cxt);
	cs->type = att->atttypid;
	cs->collation = att->attcollation;
	ncolumn_spellers++;
	return &cs->speller;
}

/*
 * Remember "T/column=value" for one column of one row version, the value
 * spelled from its identity (tag.c).  Returns false if the column no longer
 * exists.  A column whose type cannot be spelled gets no tag: registration
 * refuses every tag on it.
 */
static bool
remember_column_tag(const char *table_tag, const char *column,
					HeapTuple tuple, TupleDesc tupdesc)
{
	int			attnum = SPI_fnumber(tupdesc, column);
	const HcTagSpeller *sp;
	bool		isnull;
	Datum		value;
	StringInfoData buf;

	if (attnum <= 0)
		return false;
	sp = column_speller(TupleDescAttr(tupdesc, attnum - 1));
	if (sp->how == HC_SPELL_NONE)
		return true;

	initStringInfo(&buf);
	appendStringInfo(&buf, "%s/%s=", table_tag, column);
	value = heap_getattr(tuple, attnum, tupdesc, &isnull);
	if (isnull)
		appendStringInfoString(&buf, "\\N");
	else
		HcTagAppendValue(&buf, sp, value);
	HcRememberTag(buf.data, buf.len);
	pfree(buf.data);
	return true;
}

static void
remember_row(const char *table_tag, const char *partition_col,
			 const char *key_col, HeapTuple tuple, TupleDesc tupdesc)
{
	bool		ok = true;

	if (partition_col[0] != '\0')
		ok &= remember_column_tag(table_tag, partition_col, tuple, tupdesc);
	if (key_col[0] != '\0')
		ok &= remember_column_tag(table_tag, key_col, tuple, tupdesc);

	/*
	 * A watched column was dropped or renamed since watch_table(): invalidate
	 * the whole table rather than miss a tag.
	 */
	if (!ok)
		HcInvalidateTable(table_tag);
}

/*
 * Count a row for its table; true once the table has been invalidated as a
 * whole in this transaction, so that the row needs no tags of its own.
 */
static bool
row_limit_reached(const char *table_tag)
{
	TableRows  *tr = NULL;

	ensure_state();
	for (int i = 0; i < ntable_rows; i++)
	{
		if (strcmp(table_rows[i].table_tag, table_tag) == 0)
		{
			tr = &table_rows[i];
			break;
		}
	}
	if (tr == NULL)
	{
		if (ntable_rows == table_rows_cap)
		{
			table_rows_cap = Max(4, 2 * table_rows_cap);
			table_rows = table_rows == NULL
				? MemoryContextAlloc(publish_cxt, sizeof(TableRows) * table_rows_cap)
				: repalloc(table_rows, sizeof(TableRows) * table_rows_cap);
		}
		tr = &table_rows[ntable_rows++];
		tr->table_tag = MemoryContextStrdup(publish_cxt, table_tag);
		tr->rows = 0;
		tr->escalated = false;
	}
	if (tr->escalated)
		return true;
	if (++tr->rows > hc_escalate_rows)
	{
		HcInvalidateTable(table_tag);
		tr->escalated = true;
		return true;
	}
	return false;
}

/*
 * housing_cache.invalidation_trigger(): AFTER ROW trigger for INSERT, UPDATE
 * and DELETE, AFTER STATEMENT for TRUNCATE, installed by watch_table().
 * Arguments: table tag, partition column ('' for none), key column ('' for
 * none).  COPY fires the row trigger like INSERT.
 */
Datum
housing_cache_invalidation_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	Trigger    *trigger;
	const char *table_tag;
	const char *partition_col;
	const char *key_col;
	TupleDesc	tupdesc;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("housing_cache.invalidation_trigger() must be called as a trigger")));
	if (!TRIGGER_FIRED_AFTER(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("housing_cache.invalidation_trigger() must be fired AFTER")));

	trigger = trigdata->tg_trigger;
	if (trigger->tgnargs != 3)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("housing_cache.invalidation_trigger() needs 3 arguments, got %d",
						trigger->tgnargs),
				 errhint("Attach it with housing_cache.watch_table().")));

	if (hc_shared == NULL)
		return PointerGetDatum(NULL);	/* nothing is cached without preloading */

	table_tag = trigger->tgargs[0];
	partition_col = trigger->tgargs[1];
	key_col = trigger->tgargs[2];
	tupdesc = RelationGetDescr(trigdata->tg_relation);

	if (TRIGGER_FIRED_BY_TRUNCATE(trigdata->tg_event))
	{
		HcInvalidateTable(table_tag);
		return PointerGetDatum(NULL);
	}
	if (!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event))
	{
		/* a statement trigger other than TRUNCATE: be safe, reset the table */
		HcInvalidateTable(table_tag);
		return PointerGetDatum(NULL);
	}

	if (row_limit_reached(table_tag))
		return PointerGetDatum(NULL);

	HcRememberTag(table_tag, strlen(table_tag));
	/* tg_trigtuple is the NEW row for INSERT, the OLD one otherwise */
	remember_row(table_tag, partition_col, key_col, trigdata->tg_trigtuple, tupdesc);
	if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
		remember_row(table_tag, partition_col, key_col, trigdata->tg_newtuple, tupdesc);

	return PointerGetDatum(NULL);
}

/*
 * housing_cache.invalidate(tag text): invalidate a tag when this transaction
 * commits.  A tag without '/' is a table tag and invalidates every answer
 * that depends on any tag of that table.
 */
Datum
housing_cache_invalidate(PG_FUNCTION_ARGS)
{
	text	   *arg = PG_GETARG_TEXT_PP(0);
	char	   *tag = text_to_cstring(arg);
	int			len = strlen(tag);

	if (len == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("tag must not be empty")));
	if (len > 8192)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("tag is too long (%d bytes, at most 8192)", len)));
	if (hc_shared == NULL)
		PG_RETURN_VOID();

	if (strchr(tag, '/') == NULL)
		HcInvalidateTable(tag);
	else
		HcRememberTag(tag, len);
	PG_RETURN_VOID();
}

/*
 * Build the message at PRE_COMMIT, where errors are still allowed:
 *	 {"v":1,"cluster":"...","database":"...","epoch":"...","xid":N,
 *	  "tags":[...],"truncated":false,"lsn":"X/Y"}
 * The LSN is only known at COMMIT; room for it is reserved.
 */
static void
prepare_message(void)
{
	StringInfoData buf;
	char	   *dbname = get_database_name(MyDatabaseId);
	MemoryContext old = MemoryContextSwitchTo(message_cxt);

	initStringInfo(&buf);
	appendStringInfo(&buf, "{\"v\":1,\"cluster\":\"" UINT64_FORMAT "\",\"database\":",
					 GetSystemIdentifier());
	escape_json(&buf, dbname ? dbname : "");
	appendStringInfo(&buf, ",\"epoch\":\"" UINT64_FORMAT "\",\"xid\":", hc_shared->epoch);
	if (FullTransactionIdIsValid(GetTopFullTransactionIdIfAny()))
		appendStringInfo(&buf, "%u", XidFromFullTransactionId(GetTopFullTransactionIdIfAny()));
	else
		appendStringInfoString(&buf, "null");
	appendStringInfo(&buf, ",\"tags\":[%s%s%s],\"truncated\":%s,\"lsn\":",
					 table_tags->data,
					 (table_tags->len > 0 && other_tags->len > 0) ? "," : "",
					 other_tags->data,
					 publish_truncated ? "true" : "false");
	enlargeStringInfo(&buf, LSN_ROOM);
	message = buf.data;
	message_len = buf.len;
	message_cap = buf.maxlen;
	MemoryContextSwitchTo(old);
}

/*
 * Forget this transaction's tags (the bitmap and the lists collected for the
 * message), but not a message waiting to be published.  Allocation-free.
 */
static void
reset_tags(void)
{
	if (touched_count > TOUCHED_LIST_SIZE)
		memset(touched, 0, sizeof(uint64) * touched_words);
	else
	{
		for (int i = 0; i < touched_count; i++)
			touched[touched_list[i] / 64] = 0;
	}
	touched_count = 0;
	marked = false;
	other_count = 0;
	publish_truncated = false;
	table_tags = NULL;
	other_tags = NULL;
	seen_hashes = NULL;
	seen_count = 0;
	table_rows = NULL;
	ntable_rows = 0;
	table_rows_cap = 0;
	if (publish_cxt != NULL)
		MemoryContextReset(publish_cxt);
}

/*
 * Forget the message.  Allocation-free.
 */
static void
reset_message(void)
{
	publish_pending = false;
	message = NULL;
	message_len = 0;
	message_cap = 0;
	if (message_cxt != NULL)
		MemoryContextReset(message_cxt);
}

/*
 * Forget everything about this transaction.
 */
static void
reset_state(void)
{
	reset_tags();
	reset_message();
}

/*
 * Add delta to every touched slot; returns how many slots there were.
 */
static int
touch_slots(uint64 delta, bool subtract)
{
	int			n = 0;

	if (touched_count <= TOUCHED_LIST_SIZE)
	{
		for (int i = 0; i < touched_count; i++)
		{
			pg_atomic_uint64 *slot = &hc_shared->slots[touched_list[i]];

			if (subtract)
				pg_atomic_fetch_sub_u64(slot, delta);
			else
				pg_atomic_fetch_add_u64(slot, delta);
		}
		return touched_count;
	}

	for (int w = 0; w < touched_words; w++)
	{
		uint64		bits = touched[w];

		while (bits != 0)
		{
			int			b = pg_rightmost_one_pos64(bits);
			pg_atomic_uint64 *slot = &hc_shared->slots[w * 64 + b];

			if (subtract)
				pg_atomic_fetch_sub_u64(slot, delta);
			else
				pg_atomic_fetch_add_u64(slot, delta);
			bits &= bits - 1;
			n++;
		}
	}
	return n;
}

static void
publish_after_commit(void)
{
	int			n;

	if (message == NULL)
		return;
	if (XactLastCommitEnd == InvalidXLogRecPtr)
		n = snprintf(message + message_len, message_cap - message_len, "null}");
	else
		n = snprintf(message + message_len, message_cap - message_len,
					 "\"%X/%X\"}", LSN_FORMAT_ARGS(XactLastCommitEnd));
	if (n < 0 || n >= message_cap - message_len)
		return;
	if (HcRedisPublish(hc_channel, message, message_len + n))
		HcStatInc(HC_STAT_PUBLISHES);
	else
		HcStatInc(HC_STAT_PUBLISH_FAILURES);
}

static void
hc_xact_callback(XactEvent event, void *arg)
{
	if (publish_pending)
		reset_message();		/* a message that never went out: drop it */
	if (touched_count == 0 || hc_shared == NULL)
		return;

	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
			if (hc_publish)
				prepare_message();
			touch_slots(1, false);
			marked = true;
			break;

		case XACT_EVENT_PRE_PREPARE:
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("cannot PREPARE a transaction that wrote to a table watched by housing_cache"),
					 errdetail("Cached answers are invalidated when the writing session commits.")));
			break;

		case XACT_EVENT_COMMIT:
			{
				int			n;

				if (!marked)
				{
					/* not expected: PRE_COMMIT always runs first */
					touch_slots(1, false);
				}
				/* generation + 1, in flight - 1, in one add per slot */
				n = touch_slots(HC_GENERATION_ONE - 1, false);
				HcStatAdd(HC_STAT_INVALIDATIONS, n);
				HcStatInc(HC_STAT_INVALIDATED_COMMITS);
				reset_tags();
				/* publishing waits until the transaction's locks are gone */
				publish_pending = (message != NULL);
			}
			break;

		case XACT_EVENT_ABORT:
			if (marked)
				touch_slots(1, true);
			reset_state();
			break;

		default:
			break;
	}
}

/*
 * Publish after the committed transaction released its locks, so that a slow
 * Redis never makes other sessions wait on this one's locks.  Like the COMMIT
 * callback, this must not raise an error.
 */
static void
hc_release_callback(ResourceReleasePhase phase, bool isCommit, bool isTopLevel,
					void *arg)
{
	if (phase != RESOURCE_RELEASE_AFTER_LOCKS || !isTopLevel || !publish_pending)
		return;
	if (isCommit)
		publish_after_commit();
	reset_message();
}

void
HcInvalidationInit(void)
{
	RegisterXactCallback(hc_xact_callback, NULL);
	RegisterResourceReleaseCallback(hc_release_callback, NULL);
}
