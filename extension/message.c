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
 *	 {"v":1,"cluster":"...","database":"...","epoch":"...","xid":N,
 *	  "tags":[...],"truncated":false,"lsn":"X/Y"}
 *
 * The lists of tags are built as tags are remembered (each tag once:
 * table-wide tags always, the others up to housing_cache.publish_max_tags,
 * after which "truncated" says some were left out), and the message is
 * finished at PRE_COMMIT, where errors are still allowed: at COMMIT only the
 * commit LSN is written into room reserved for it.  Tags are in the
 * database encoding; the message is always valid UTF-8 JSON.
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
static int	other_count = 0;
static bool publish_truncated = false;
static uint64 *seen_hashes = NULL;		/* open addressing, tags listed */
static int	seen_size = 0;
static int	seen_count = 0;
static char *message = NULL;			/* prepared at PRE_COMMIT */
static int	message_len = 0;
static int	message_cap = 0;

#define LSN_ROOM 40

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
	if (dst->len > 0)
		appendStringInfoChar(dst, ',');
	copy = tag_as_utf8(tag, len);
	escape_json(dst, copy);
	pfree(copy);
	MemoryContextSwitchTo(old);
}

/*
 * Build the message at PRE_COMMIT, where errors are still allowed:
 *	 {"v":1,"cluster":"...","database":"...","epoch":"...","xid":N,
 *	  "tags":[...],"truncated":false,"lsn":"X/Y"}
 * The LSN is only known at COMMIT; room for it is reserved.
 */
void
HcMessagePrepare(void)
{
	StringInfoData buf;
	char	   *dbname = get_database_name(MyDatabaseId);
	MemoryContext old;

	ensure_lists();
	old = MemoryContextSwitchTo(message_cxt);
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

void
HcMessagePublish(void)
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
