/*-------------------------------------------------------------------------
 *
 * invalidate.c
 *	  Row triggers and the commit callback: exact, transactional invalidation.
 *
 * (In these comments, "T/<star>" stands for the table tag followed by a slash
 * and an asterisk: the table's reset tag.)
 *
 * Writers, from the row triggers on watched tables, remember the tags their
 * rows touch (the table, the partition column's value in the OLD and the NEW
 * row, the row's id) as bits in a per-backend bitmap of generation slots,
 * and list them for the invalidation message (message.c).  At the end of the
 * transaction they follow the generation protocol (generation.c, where the
 * argument why no read is stale after a commit is written down):
 *
 *	 PRE_COMMIT	  mark every touched slot in flight; finish the message;
 *	 COMMIT		  bump every touched slot (generation + 1, in flight - 1),
 *				  then number the message;
 *	 ABORT		  unmark the slots PRE_COMMIT marked;
 *	 after COMMIT, once the locks are released: publish the message.
 *
 * Reads (fetch.c) ask HcXactMayHaveWritten() whether this transaction may
 * see uncommitted rows of what they read: then they go around the cache.
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
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/lock.h"
#include "storage/lockdefs.h"
#include "utils/builtins.h"
#include "utils/datum.h"
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

/* this transaction invalidates everything of the database at the edge */
static bool everything = false;

/* COMMIT bumped generations; the message goes out once locks are released */

/* the table rows counted for escalation, per transaction */
static MemoryContext xact_cxt = NULL;

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
		xact_cxt = AllocSetContextCreate(TopMemoryContext,
										 "housing_cache invalidation",
										 ALLOCSET_SMALL_SIZES);
	}
}

/*
 * Remember that this transaction touched a generation slot.
 */
static void
remember_slot(uint32 slot)
{
	uint64		bit = UINT64CONST(1) << (slot % 64);

	if ((touched[slot / 64] & bit) == 0)
	{
		touched[slot / 64] |= bit;
		if (touched_count < TOUCHED_LIST_SIZE)
			touched_list[touched_count] = slot;
		touched_count++;
		/* keep the invariant "marked implies every touched slot in flight" */
		if (marked)
			HcSlotMark(slot);
	}
}

/* the hash of the column slot "any" (tag.c) */
static uint64
any_column_hash(void)
{
	static uint64 h = 0;

	if (h == 0)
		h = HcColumnHash("");
	return h;
}

/*
 * One write to the rows of a tag: a row entered or left it (row_event), and
 * an UPDATE changed these columns (their hashes).  Bumps the tag's own slot
 * for a row event, its "any" slot always, and its changed columns' slots
 * (tag.c), and lists the tag for the message.
 */
static void
remember_tag_change(const char *tag, int len, bool row_event,
					const uint64 *changed, int nchanged)
{
	uint64		h;

	if (hc_shared == NULL)
		return;
	ensure_state();
	h = HcTagHash(tag, len);
	if (row_event)
		remember_slot(HcSlotOfHash(h));
	remember_slot(HcColumnSlot(h, any_column_hash()));
	for (int i = 0; i < nchanged; i++)
		remember_slot(HcColumnSlot(h, changed[i]));
	if (hc_publish)
		HcMessageAddTag(tag, len);
}

/*
 * Remember that this transaction touched a tag as a whole: every answer
 * that depends on it, whatever columns it reads (invalidate(), a table
 * reset).
 */
void
HcRememberTag(const char *tag, int len)
{
	remember_tag_change(tag, len, true, NULL, 0);
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
 * Everything of this database, for consumers of the invalidation message
 * (the tag "*"): answers whose definitions or tags change (a query
 * registered, replaced or removed, a table watched or unwatched), and
 * purge_edge().  No generation slot: the cache itself needs nothing, its
 * keys follow the definitions.
 */
void
HcInvalidateEverything(void)
{
	if (hc_shared == NULL || !hc_publish)
		return;
	HcMessageAddTag("*", 1);
	everything = true;
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
 * Spell "T/column=value" for one column of one row version into *buf, the
 * value spelled from its identity (tag.c).  Returns false if the column no
 * longer exists; *spelled false (and true returned) for a column whose type
 * cannot be spelled: registration refuses every tag on it.
 */
static bool
spell_column_tag(StringInfo buf, const char *table_tag, const char *column,
				 HeapTuple tuple, TupleDesc tupdesc, bool *spelled)
{
	int			attnum = SPI_fnumber(tupdesc, column);
	const HcTagSpeller *sp;
	bool		isnull;
	Datum		value;

	*spelled = false;
	if (attnum <= 0)
		return false;
	sp = column_speller(TupleDescAttr(tupdesc, attnum - 1));
	if (sp->how == HC_SPELL_NONE)
		return true;
	resetStringInfo(buf);
	appendStringInfo(buf, "%s/%s=", table_tag, column);
	value = heap_getattr(tuple, attnum, tupdesc, &isnull);
	if (isnull)
		appendStringInfoString(buf, "\\N");
	else
		HcTagAppendValue(buf, sp, value);
	*spelled = true;
	return true;
}

/*
 * The hashes of the columns an UPDATE changed (by name, so that partitions
 * whose columns are numbered differently agree), into changed[], which has
 * room for every column.  A column compares by its stored image: a value
 * written again the same way is unchanged, one stored differently but equal
 * counts as changed (over-invalidation, never a miss).
 */
static int
changed_columns(HeapTuple oldtup, HeapTuple newtup, TupleDesc tupdesc, uint64 *changed)
{
	int			natts = tupdesc->natts;
	Datum	   *ov = palloc(sizeof(Datum) * natts);
	Datum	   *nv = palloc(sizeof(Datum) * natts);
	bool	   *on = palloc(sizeof(bool) * natts);
	bool	   *nn = palloc(sizeof(bool) * natts);
	int			n = 0;

	heap_deform_tuple(oldtup, tupdesc, ov, on);
	heap_deform_tuple(newtup, tupdesc, nv, nn);
	for (int i = 0; i < natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(tupdesc, i);

		if (att->attisdropped)
			continue;
		if (on[i] != nn[i] ||
			(!on[i] && !datumIsEqual(ov[i], nv[i], att->attbyval, att->attlen)))
			changed[n++] = HcColumnHash(NameStr(att->attname));
	}
	pfree(ov);
	pfree(nv);
	pfree(on);
	pfree(nn);
	return n;
}

/*
 * The tags of one row write.  INSERT and DELETE: a row entered or left the
 * table's tag and the row's partition and id tags.  UPDATE: the changed
 * columns of each; a row entered one partition (or id) tag and left another
 * when that column changed.  Returns false when a watched column is gone.
 */
static bool
remember_row_write(const char *table_tag, const char *partition_column,
				   const char *id_column, HeapTuple oldtup, HeapTuple newtup,
				   TupleDesc tupdesc)
{
	const char *columns[2] = {partition_column, id_column};
	uint64	   *changed = NULL;
	int			nchanged = 0;
	StringInfoData old_tag;
	StringInfoData new_tag;
	bool		ok = true;

	if (oldtup != NULL && newtup != NULL)
	{
		changed = palloc(sizeof(uint64) * tupdesc->natts);
		nchanged = changed_columns(oldtup, newtup, tupdesc, changed);
	}
	remember_tag_change(table_tag, strlen(table_tag), changed == NULL, changed, nchanged);

	initStringInfo(&old_tag);
	initStringInfo(&new_tag);
	for (int c = 0; c < 2; c++)
	{
		bool		old_spelled = false;
		bool		new_spelled = false;

		if (columns[c][0] == '\0')
			continue;
		if (oldtup != NULL)
			ok &= spell_column_tag(&old_tag, table_tag, columns[c], oldtup, tupdesc, &old_spelled);
		if (newtup != NULL)
			ok &= spell_column_tag(&new_tag, table_tag, columns[c], newtup, tupdesc, &new_spelled);
		if (old_spelled && new_spelled && old_tag.len == new_tag.len &&
			memcmp(old_tag.data, new_tag.data, old_tag.len) == 0)
		{
			/* the row stays under this tag: only its changed columns */
			remember_tag_change(old_tag.data, old_tag.len, false, changed, nchanged);
			continue;
		}
		if (old_spelled)
			remember_tag_change(old_tag.data, old_tag.len, true, changed, nchanged);
		if (new_spelled)
			remember_tag_change(new_tag.data, new_tag.len, true, changed, nchanged);
	}
	pfree(old_tag.data);
	pfree(new_tag.data);
	if (changed)
		pfree(changed);
	return ok;
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
				? MemoryContextAlloc(xact_cxt, sizeof(TableRows) * table_rows_cap)
				: repalloc(table_rows, sizeof(TableRows) * table_rows_cap);
		}
		tr = &table_rows[ntable_rows++];
		tr->table_tag = MemoryContextStrdup(xact_cxt, table_tag);
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
 * Arguments: table tag, partition column ('' for none), id column ('' for
 * none).  COPY fires the row trigger like INSERT.
 */
Datum
housing_cache_invalidation_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	Trigger    *trigger;
	const char *table_tag;
	const char *partition_column;
	const char *id_column;
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

	/*
	 * Nothing is cached without preloading.  But a standby may cache, and
	 * only a preloaded library logs what a write invalidates: refuse the
	 * write rather than let a standby serve answers it never learns are old.
	 */
	if (hc_shared == NULL)
	{
		if (HcCatalogWalInvalidation(false, NULL))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("cannot write to a watched table while housing_cache is not preloaded and standbys rely on WAL invalidation"),
					 errhint("Add housing_cache to shared_preload_libraries and restart, or turn WAL invalidation off with housing_cache.set_wal_invalidation(false).")));
		return PointerGetDatum(NULL);
	}

	table_tag = trigger->tgargs[0];
	partition_column = trigger->tgargs[1];
	id_column = trigger->tgargs[2];
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

	/* tg_trigtuple is the NEW row for INSERT, the OLD one otherwise */
	if (!remember_row_write(table_tag, partition_column, id_column,
							TRIGGER_FIRED_BY_INSERT(trigdata->tg_event) ? NULL : trigdata->tg_trigtuple,
							TRIGGER_FIRED_BY_INSERT(trigdata->tg_event) ? trigdata->tg_trigtuple
							: TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event) ? trigdata->tg_newtuple : NULL,
							tupdesc))
	{
		/*
		 * A watched column was dropped or renamed since watch_table():
		 * invalidate the whole table rather than miss a tag.
		 */
		HcInvalidateTable(table_tag);
	}

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
	everything = false;
	table_rows = NULL;
	ntable_rows = 0;
	table_rows_cap = 0;
	if (xact_cxt != NULL)
		MemoryContextReset(xact_cxt);
	HcMessageForgetTags();
}

/*
 * Forget the message.  Allocation-free.
 */
static void
reset_message(void)
{
	HcMessageForget();
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
 * Log the touched slots in WAL for hot standbys (standby.c decides whether
 * this database does), before the commit record.
 */
static void
log_slots(void)
{
	uint32	   *slots;
	int			n = 0;

	if (touched_count <= TOUCHED_LIST_SIZE)
	{
		HcStandbyLogInvalidation(touched_list, touched_count);
		return;
	}
	slots = palloc(sizeof(uint32) * touched_count);
	for (int w = 0; w < touched_words && n < touched_count; w++)
	{
		uint64		bits = touched[w];

		while (bits != 0 && n < touched_count)
		{
			slots[n++] = w * 64 + pg_rightmost_one_pos64(bits);
			bits &= bits - 1;
		}
	}
	HcStandbyLogInvalidation(slots, n);
	pfree(slots);
}

/*
 * Apply one step of the generation protocol to every touched slot; returns
 * how many slots there were.  Allocation-free.
 */
static int
touch_slots(void (*step) (uint32 slot))
{
	int			n = 0;

	if (touched_count <= TOUCHED_LIST_SIZE)
	{
		for (int i = 0; i < touched_count; i++)
			step(touched_list[i]);
		return touched_count;
	}

	for (int w = 0; w < touched_words; w++)
	{
		uint64		bits = touched[w];

		while (bits != 0)
		{
			step(w * 64 + pg_rightmost_one_pos64(bits));
			bits &= bits - 1;
			n++;
		}
	}
	return n;
}

static void
hc_xact_callback(XactEvent event, void *arg)
{
	if ((touched_count == 0 && !everything) || hc_shared == NULL)
		return;

	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
			if (hc_publish)
				HcMessagePrepare();
			if (touched_count > 0)
				log_slots();
			touch_slots(HcSlotMark);
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
					touch_slots(HcSlotMark);
				}
				n = touch_slots(HcSlotBump);
				/* numbered and queued after the bumps: see HcMessageCommit */
				HcMessageCommit();
				HcStatAdd(HC_STAT_INVALIDATIONS, n);
				HcStatInc(HC_STAT_INVALIDATED_COMMITS);
				reset_state();
			}
			break;

		case XACT_EVENT_ABORT:
			if (marked)
				touch_slots(HcSlotUnmark);
			reset_state();
			break;

		default:
			break;
	}
}

void
HcInvalidationInit(void)
{
	RegisterXactCallback(hc_xact_callback, NULL);
}
