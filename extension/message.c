/*-------------------------------------------------------------------------
 *
 * message.c
 *	  The invalidation message a committed transaction publishes.
 *
 * After commit, the tags a transaction invalidated go out on a Redis
 * channel (housing_cache.channel), for other consumers: other caches, an
 * HTTP edge purging by tag, browsers.  It is a notification, not the
 * correctness mechanism (generation.c): a failed publish is counted, never
 * raised.
 *
 *	 {"v":1,"type":"invalidation","cluster":"...","database":"...",
 *	  "epoch":"...","xid":N,"tags":[...],"truncated":false,"seq":N,
 *	  "lsn":"X/Y"}
 *
 * The lists of tags are built as tags are remembered (each tag once:
 * table-wide tags always, the others up to housing_cache.publish_max_tags,
 * after which "truncated" says some were left out and "T/<star>" is listed
 * for every table T), and the message is finished at PRE_COMMIT, where
 * errors are still allowed.  At COMMIT, once the generations are bumped, the
 * message gets its number ("seq": the cluster's messages, counted in shared
 * memory since the epoch began) and the commit LSN, written into room
 * reserved for them, and goes into the publisher's queue (publisher.c).  A consumer that misses a number knows it missed a
 * message (edge/README.md).  The tag "*" stands for everything of the
 * database (HcInvalidateEverything).  Tags are in the database encoding; the
 * message is always valid UTF-8 JSON.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "commands/dbcommands.h"
#include "common/hashfn.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/json.h"
#include "utils/memutils.h"

#include "housing_cache.h"

static MemoryContext list_cxt = NULL;	/* the lists, per transaction */
static MemoryContext message_cxt = NULL;	/* the finished message */
static StringInfo table_tags = NULL;	/* JSON list items, table-wide tags */
static StringInfo other_tags = NULL;	/* JSON list items, the rest */
static StringInfo table_raw = NULL; /* table-wide tags as they are, each
									 * followed by a NUL */
static int	other_count = 0;
static bool publish_truncated = false;
static uint64 *seen_hashes = NULL;		/* open addressing, tags listed */
static int	seen_size = 0;
static int	seen_count = 0;
static char *message = NULL;			/* prepared at PRE_COMMIT */
static int	message_len = 0;
static int	message_cap = 0;
static bool message_has_xid = false;	/* the transaction wrote a commit record */

/* room for "seq":N,"lsn":"X/Y"} */
#define NUMBER_ROOM 64

static void
ensure_lists(void)
{
	if (list_cxt == NULL)
	{
		list_cxt = AllocSetContextCreate(TopMemoryContext,
										 "housing_cache invalidation message tags",
										 ALLOCSET_SMALL_SIZES);
		message_cxt = AllocSetContextCreate(TopMemoryContext,
											"housing_cache invalidation message",
											ALLOCSET_SMALL_SIZES);
	}
	if (table_tags == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(list_cxt);

		table_tags = makeStringInfo();
		other_tags = makeStringInfo();
		table_raw = makeStringInfo();
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
		seen_hashes = MemoryContextAllocZero(list_cxt, sizeof(uint64) * seen_size);
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
 * Text in the database encoding (a tag, the database's name) as UTF-8, for
 * the JSON message and edge keys (edge.c).  In SQL_ASCII (no encoding at
 * all) or UTF-8, any byte sequence that is not valid UTF-8 becomes U+FFFD,
 * so the message is always valid.  Always a new palloc'd string.
 */
char *
HcTextAsUtf8(const char *tag, int len)
{
	int			enc = GetDatabaseEncoding();
	StringInfoData out;

	if (enc != PG_UTF8 && enc != PG_SQL_ASCII)
	{
		char	   *copy = pnstrdup(tag, len);
		char	   *conv = pg_server_to_any(copy, len, PG_UTF8);

		if (conv != copy)
			pfree(copy);
		return conv;
	}

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
void
HcMessageAddTag(const char *tag, int len)
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
	ensure_lists();
	h = hash_bytes_extended((const unsigned char *) tag, len, 0x9e3779b9) | 1;
	if (seen_before(h))
		return;
	if (!table_wide)
		other_count++;

	old = MemoryContextSwitchTo(list_cxt);
	dst = table_wide ? table_tags : other_tags;
	if (table_wide)
	{
		appendBinaryStringInfo(table_raw, tag, len);
		appendStringInfoChar(table_raw, '\0');
	}
	if (dst->len > 0)
		appendStringInfoChar(dst, ',');
	copy = HcTextAsUtf8(tag, len);
	escape_json(dst, copy);
	pfree(copy);
	MemoryContextSwitchTo(old);
}

/*
 * A truncated message lists "T/<star>" for every table T written, so that a
 * consumer purging by tag drops everything of T that a finer tag left out
 * could have named.
 */
static void
add_reset_tags(void)
{
	int			len = table_raw->len;
	char	   *copy = palloc(len + 1);	/* NUL-separated: not pnstrdup */
	StringInfoData reset;

	memcpy(copy, table_raw->data, len);
	copy[len] = '\0';
	initStringInfo(&reset);
	for (int off = 0; off < len; off += strlen(copy + off) + 1)
	{
		const char *t = copy + off;
		size_t		n = strlen(t);

		if (n == 0 || strcmp(t, "*") == 0 || (n >= 2 && strcmp(t + n - 2, "/*") == 0))
			continue;
		resetStringInfo(&reset);
		appendStringInfo(&reset, "%s/*", t);
		HcMessageAddTag(reset.data, reset.len);
	}
	pfree(reset.data);
	pfree(copy);
}

/*
 * Build the message at PRE_COMMIT, where errors are still allowed:
 *	 {"v":1,"type":"invalidation","cluster":"...","database":"...",
 *	  "epoch":"...","xid":N,"tags":[...],"truncated":false,"seq":N,
 *	  "lsn":"X/Y"}
 * The number and the LSN are only known at COMMIT; room for them is
 * reserved.
 */
static void
build_message(StringInfo buf, const char *dbname8, bool table_wide_only)
{
	appendStringInfo(buf, "{\"v\":1,\"type\":\"invalidation\",\"cluster\":\"" UINT64_FORMAT "\",\"database\":",
					 GetSystemIdentifier());
	escape_json(buf, dbname8);
	appendStringInfo(buf, ",\"epoch\":\"" UINT64_FORMAT "\",\"xid\":", hc_shared->epoch);
	message_has_xid = FullTransactionIdIsValid(GetTopFullTransactionIdIfAny());
	if (message_has_xid)
		appendStringInfo(buf, "%u", XidFromFullTransactionId(GetTopFullTransactionIdIfAny()));
	else
		appendStringInfoString(buf, "null");
	if (table_wide_only)
		appendStringInfo(buf, ",\"tags\":[%s],\"truncated\":true,", table_tags->data);
	else
		appendStringInfo(buf, ",\"tags\":[%s%s%s],\"truncated\":%s,",
						 table_tags->data,
						 (table_tags->len > 0 && other_tags->len > 0) ? "," : "",
						 other_tags->data,
						 publish_truncated ? "true" : "false");
}

void
HcMessagePrepare(void)
{
	StringInfoData buf;
	char	   *dbname = get_database_name(MyDatabaseId);
	char	   *dbname8;
	MemoryContext old;

	ensure_lists();
	if (publish_truncated)
		add_reset_tags();
	old = MemoryContextSwitchTo(message_cxt);
	dbname8 = HcTextAsUtf8(dbname ? dbname : "", dbname ? strlen(dbname) : 0);
	initStringInfo(&buf);
	build_message(&buf, dbname8, false);

	/*
	 * Too long for the publisher's queue: the table-wide tags alone (with
	 * "T/<star>" for every table), which say enough to purge by.
	 */
	if (buf.len + NUMBER_ROOM > HcPublishMaxMessage(strlen(hc_channel)))
	{
		if (!publish_truncated)
		{
			publish_truncated = true;
			MemoryContextSwitchTo(old);
			add_reset_tags();
			MemoryContextSwitchTo(message_cxt);
		}
		resetStringInfo(&buf);
		build_message(&buf, dbname8, true);
	}
	pfree(dbname8);
	enlargeStringInfo(&buf, NUMBER_ROOM);
	message = buf.data;
	message_len = buf.len;
	message_cap = buf.maxlen;
	MemoryContextSwitchTo(old);
}

/*
 * The number and the commit LSN, written into the room reserved for them:
 * publisher.c calls this once it holds the queue's lock, so that numbers
 * follow the queue's order.  Returns the message's length.  Never raises.
 */
static int
finish_message(char *msg, uint64 seq)
{
	int			n;

	/* XactLastCommitEnd may be an earlier transaction's */
	if (!message_has_xid || XactLastCommitEnd == InvalidXLogRecPtr)
		n = snprintf(msg + message_len, message_cap - message_len,
					 "\"seq\":" UINT64_FORMAT ",\"lsn\":null}", seq);
	else
		n = snprintf(msg + message_len, message_cap - message_len,
					 "\"seq\":" UINT64_FORMAT ",\"lsn\":\"%X/%X\"}", seq,
					 LSN_FORMAT_ARGS(XactLastCommitEnd));
	/* cannot overflow: NUMBER_ROOM is reserved */
	if (n < 0 || n >= message_cap - message_len)
		n = 0;
	return message_len + n;
}

/*
 * At COMMIT, after the generations were bumped: number the message and hand
 * it to the publisher (publisher.c).  A reader that saw this number (the
 * stamp of an answer, edge.c) therefore sees the bumped generations.  A
 * message the queue has no room for is counted as a failed publish.  Never
 * raises, never allocates.
 */
void
HcMessageCommit(void)
{
	if (message == NULL)
		return;
	if (!HcPublishCommit(message, finish_message, hc_channel))
		HcStatInc(HC_STAT_PUBLISH_FAILURES);
}

/*
 * Is a message prepared (and not yet forgotten)?
 */
bool
HcMessagePrepared(void)
{
	return message != NULL;
}

/*
 * Forget the lists of this transaction's tags, but not a message waiting to
 * be published.  Allocation-free: called from the COMMIT callback.
 */
void
HcMessageForgetTags(void)
{
	other_count = 0;
	publish_truncated = false;
	table_tags = NULL;
	other_tags = NULL;
	table_raw = NULL;
	seen_hashes = NULL;
	seen_count = 0;
	if (list_cxt != NULL)
		MemoryContextReset(list_cxt);
}

/*
 * Forget the message.  Allocation-free.
 */
void
HcMessageForget(void)
{
	message = NULL;
	message_len = 0;
	message_cap = 0;
	if (message_cxt != NULL)
		MemoryContextReset(message_cxt);
}
