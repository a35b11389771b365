/*-------------------------------------------------------------------------
 *
 * fuzz_message.c
 *	  libFuzzer harness for a transaction's invalidations: the tags
 *	  remembered (extension/invalidate.c), the generation slots bumped
 *	  (extension/generation.c) and the JSON message queued on commit
 *	  (extension/message.c).  The three are compiled in, for their static
 *	  functions and state and generation.c's slot format (HC_INFLIGHT_BITS,
 *	  HC_INFLIGHT_MASK, HC_GENERATION_ONE); tag.c is linked for HcTagSlot.
 *
 * Input: one byte of options (publish on or off, publish_max_tags, how the
 * transaction ends, whether it has an xid and a commit LSN), then tags
 * separated by NUL bytes, as raw bytes (the shim's database is SQL_ASCII);
 * a piece starting with byte 0x02 names the database instead.  A tag without '/' is
 * invalidated as invalidate() does it (the table tag and its reset tag
 * "T/<star>"); the others are remembered as the row triggers remember them.
 * Checked:
 *
 *	 - commit: every touched slot (a tag's own and its "any" column slot,
 *	   tag.c) goes up by exactly one and
 *	   no slot is left in flight; no other slot changes -- also for tags
 *	   written after PRE_COMMIT (a tag starting with byte 0x01);
 *	 - abort (before or after PRE_COMMIT): no slot changes at all;
 *	 - PREPARE TRANSACTION after a write is refused (0A000), then aborts
 *	   cleanly;
 *	 - the published message is valid UTF-8 and valid JSON (PostgreSQL's
 *	   own parser, libpgcommon's jsonapi) with the fields v, type, cluster,
 *	   database, epoch, xid, tags, truncated, seq, lsn in that order; its
 *	   tags, de-escaped, are the distinct table-wide tags, then the distinct
 *	   others up to publish_max_tags, in the order they were first touched,
 *	   each with U+FFFD for every byte that does not start well-formed
 *	   UTF-8 (an independent decoder), and "truncated" says whether a tag
 *	   was left out, in which case "T/<star>" follows the table-wide tags for
 *	   every table-wide tag T; "seq" is one more than the last message's,
 *	   and "lsn" null without an xid;
 *	 - the commit path leaves no state behind for the next transaction.
 *
 *-------------------------------------------------------------------------
 */
#include "shim.h"

#include "common/jsonapi.h"
#include "mb/pg_wchar.h"

#include "../extension/generation.c"
#include "../extension/message.c"
#include "../extension/invalidate.c"

/*
 * Generation slots of the shim's shared state.  Each input compares every
 * slot before and after its transaction, so this harness runs with 1024,
 * the setting's minimum, rather than its default of 1048576: 1024 times fewer
 * slots to copy and compare per input, and the same protocol.
 */
#define MESSAGE_NSLOTS 1024

static bool strict = false;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	hc_generation_slots = MESSAGE_NSLOTS;	/* see MESSAGE_NSLOTS */
	shim_init();
	SHIM_CHECK(hc_shared->nslots == MESSAGE_NSLOTS, "%u generation slots", hc_shared->nslots);
	strict = getenv("HC_FUZZ_STRICT") != NULL && strcmp(getenv("HC_FUZZ_STRICT"), "1") == 0;
	return 0;
}

/* ---------- what invalidate.c and message.c need from the backend ---------- */

XLogRecPtr	XactLastCommitEnd = InvalidXLogRecPtr;
static bool has_xid = false;
static const char *const default_database_name = "db \"quoted\" \\ name\t\x01";
static const char *database_name;

char *
get_database_name(Oid dbid)
{
	return pstrdup(database_name);
}

/*
 * HcXactMayHaveWritten asks the lock manager about the relations it is
 * given; the harness gives none (it asks whether invalidations are pending).
 */
bool
LockHeldByMe(const LOCKTAG *locktag, LOCKMODE lockmode)
{
	shim_fail(__FILE__, __LINE__, "not reached", "the lock manager was asked about a relation");
}

FullTransactionId
GetTopFullTransactionIdIfAny(void)
{
	return has_xid ? FullTransactionIdFromEpochAndXid(0, 4242) : InvalidFullTransactionId;
}

/*
 * Hot standbys (standby.c) hear of the touched slots in WAL, before the
 * commit record: the harness counts the slots it is given.
 */
static int	wal_logged_slots = -1;

void
HcStandbyLogInvalidation(const uint32 *slots, int count)
{
	SHIM_CHECK(count > 0, "an invalidation record without slots");
	for (int i = 0; i < count; i++)
		SHIM_CHECK(slots[i] < MESSAGE_NSLOTS, "slot %u out of range", slots[i]);
	wal_logged_slots = count;
}

/* the message "published": a copy, checked after the commit */
static char *published = NULL;
static size_t published_len = 0;
static int	publish_calls = 0;

/*
 * The publisher's queue (publisher.c): numbers the message as the real one
 * does, with the shared counter, and keeps a copy.
 */
/* the queue takes any message here (shortening long ones is tested in 009) */
int
HcPublishMaxMessage(int channel_len)
{
	return 1 << 30;
}

bool
HcPublishCommit(char *msg, int (*finish) (char *msg, uint64 seq), const char *channel)
{
	uint64		seq = pg_atomic_add_fetch_u64(&hc_shared->message_seq, 1);
	int			len = finish(msg, seq);

	publish_calls++;
	published = MemoryContextAlloc(CurrentMemoryContext, len + 1);
	memcpy(published, msg, len);
	published[len] = '\0';
	published_len = len;
	return true;
}

/* ---------- the expected outcome ---------- */

#define MAX_TAGS 200

typedef struct Expect
{
	int			n;				/* tags remembered, in order, duplicates included */
	char	   *tags[2 * MAX_TAGS];
	int			nlisted;
	char	   *listed[2 * MAX_TAGS];	/* table-wide first, then others */
	bool		truncated;
} Expect;

static void
remembered(Expect *e, char *tag)
{
	e->tags[e->n++] = tag;
}

/* remember a tag as invalidate() or a row trigger would */
static void
remember(Expect *e, char *tag)
{
	if (strchr(tag, '/') == NULL)
	{
		HcInvalidateTable(tag);
		remembered(e, tag);
		remembered(e, psprintf("%s/*", tag));
	}
	else
	{
		HcRememberTag(tag, strlen(tag));
		remembered(e, tag);
	}
	SHIM_CHECK(HcXactMayHaveWritten(NULL, 0), "no pending invalidations after a tag");
}

/* the listing rule of HcMessageAddTag(), applied to the remembered tags */
static void
expect_listing(Expect *e, int max_tags)
{
	int			others = 0;
	char	   *wide[2 * MAX_TAGS];
	int			nwide = 0;
	char	   *other[2 * MAX_TAGS];
	int			nother = 0;

	e->truncated = false;
	for (int i = 0; i < e->n; i++)
	{
		char	   *t = e->tags[i];
		bool		table_wide = strchr(t, '=') == NULL;
		bool		dup = false;

		if (!table_wide && others >= max_tags)
		{
			e->truncated = true;
			continue;
		}
		for (int j = 0; j < nwide && !dup; j++)
			dup = strcmp(wide[j], t) == 0;
		for (int j = 0; j < nother && !dup; j++)
			dup = strcmp(other[j], t) == 0;
		if (dup)
			continue;
		if (table_wide)
			wide[nwide++] = t;
		else
		{
			other[nother++] = t;
			others++;
		}
	}
	/* truncated: the reset tag of every table-wide tag, once */
	if (e->truncated)
	{
		int			n = nwide;

		for (int i = 0; i < n; i++)
		{
			char	   *t = wide[i];
			size_t		len = strlen(t);
			char	   *reset;
			bool		dup = false;

			if (len == 0 || strcmp(t, "*") == 0 || (len >= 2 && strcmp(t + len - 2, "/*") == 0))
				continue;
			reset = psprintf("%s/*", t);
			for (int j = 0; j < nwide && !dup; j++)
				dup = strcmp(wide[j], reset) == 0;
			if (!dup)
				wide[nwide++] = reset;
		}
	}
	e->nlisted = 0;
	for (int i = 0; i < nwide; i++)
		e->listed[e->nlisted++] = wide[i];
	for (int i = 0; i < nother; i++)
		e->listed[e->nlisted++] = other[i];
}

/* ---------- UTF-8, independently of PostgreSQL's code ---------- */

/* length of the well-formed UTF-8 sequence at s (RFC 3629), or 0 */
static int
utf8_seq(const unsigned char *s, int left)
{
	int			n;
	uint32		cp;

	if (left <= 0 || s[0] == 0)
		return 0;
	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xC2 && s[0] <= 0xDF)
		n = 2, cp = s[0] & 0x1F;
	else if (s[0] >= 0xE0 && s[0] <= 0xEF)
		n = 3, cp = s[0] & 0x0F;
	else if (s[0] >= 0xF0 && s[0] <= 0xF4)
		n = 4, cp = s[0] & 0x07;
	else
		return 0;
	if (n > left)
		return 0;
	for (int i = 1; i < n; i++)
	{
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3F);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10FFFF ||
		(cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return n;
}

static bool
utf8_valid(const char *s, int len)
{
	for (int at = 0, n; at < len; at += n)
		if ((n = utf8_seq((const unsigned char *) s + at, len - at)) == 0)
			return false;
	return true;
}

/* every byte that does not start a well-formed sequence becomes U+FFFD */
static char *
utf8_repair(const char *s)
{
	int			len = strlen(s);
	StringInfoData out;

	initStringInfo(&out);
	for (int at = 0, n; at < len; at += n)
	{
		n = utf8_seq((const unsigned char *) s + at, len - at);
		if (n > 0)
			appendBinaryStringInfo(&out, s + at, n);
		else
		{
			appendStringInfoString(&out, "\xEF\xBF\xBD");
			n = 1;
		}
	}
	return out.data;
}

/* ---------- reading the message back ---------- */

typedef struct Parsed
{
	JsonLexContext *lex;
	int			nfields;
	char	   *fields[16];
	char	   *current;		/* field being read at depth 1 */
	int			depth;
	int			ntags;
	char	   *tags[2 * MAX_TAGS + 1];
	char	   *database;
	char	   *truncated;
	char	   *lsn;
	char	   *xid;
	char	   *seq;
	char	   *type;
} Parsed;

static void
p_object_start(void *state)
{
	((Parsed *) state)->depth++;
}

static void
p_object_end(void *state)
{
	((Parsed *) state)->depth--;
}

static void
p_field_start(void *state, char *fname, bool isnull)
{
	Parsed	   *p = state;

	if (p->depth == 1)
	{
		SHIM_CHECK(p->nfields < 16, "too many fields in the message");
		p->fields[p->nfields++] = fname;
		p->current = fname;
	}
}

static void
p_scalar(void *state, char *token, JsonTokenType type)
{
	Parsed	   *p = state;

	if (p->current == NULL)
		return;
	if (strcmp(p->current, "tags") == 0)
	{
		SHIM_CHECK(type == JSON_TOKEN_STRING, "a tag that is not a string: %s", token);
		SHIM_CHECK(p->ntags < 2 * MAX_TAGS + 1, "too many tags");
		p->tags[p->ntags++] = token;
	}
	else if (strcmp(p->current, "database") == 0)
		p->database = token;
	else if (strcmp(p->current, "truncated") == 0)
		p->truncated = token;
	else if (strcmp(p->current, "lsn") == 0)
		p->lsn = type == JSON_TOKEN_NULL ? "null" : token;
	else if (strcmp(p->current, "xid") == 0)
		p->xid = type == JSON_TOKEN_NULL ? "null" : token;
	else if (strcmp(p->current, "seq") == 0)
		p->seq = token;
	else if (strcmp(p->current, "type") == 0)
		p->type = token;
}

/* the number of the last message checked */
static uint64 last_seq = 0;

static void
check_message(const Expect *e)
{
	static const char *const fields[] = {
		"v", "type", "cluster", "database", "epoch", "xid", "tags", "truncated", "seq", "lsn"
	};
	Parsed		p;
	JsonSemAction sem;
	JsonParseErrorType rc;

	memset(&p, 0, sizeof(p));
	memset(&sem, 0, sizeof(sem));
	sem.semstate = &p;
	sem.object_start = p_object_start;
	sem.object_end = p_object_end;
	sem.object_field_start = p_field_start;
	sem.scalar = p_scalar;
	SHIM_CHECK(strlen(published) == published_len, "a NUL inside the message");
	/*
	 * JSON is UTF-8.  Tags are repaired to it; the database name is not
	 * (checked only with HC_FUZZ_STRICT=1 when the name is not UTF-8).
	 */
	if (!utf8_valid(published, published_len))
		SHIM_CHECK(!strict && !utf8_valid(database_name, strlen(database_name)),
				   "the message is not valid UTF-8: %s", published);
	p.lex = makeJsonLexContextCstringLen(published, (int) published_len, PG_UTF8, true);
	rc = pg_parse_json(p.lex, &sem);
	SHIM_CHECK(rc == JSON_SUCCESS, "the message is not valid JSON (error %d): %s",
			   (int) rc, published);

	SHIM_CHECK(p.nfields == lengthof(fields), "%d fields: %s", p.nfields, published);
	for (int i = 0; i < p.nfields; i++)
		SHIM_CHECK(strcmp(p.fields[i], fields[i]) == 0, "field %d is %s", i, p.fields[i]);
	if (utf8_valid(database_name, strlen(database_name)))
		SHIM_CHECK(p.database && strcmp(p.database, database_name) == 0, "database name garbled");
	SHIM_CHECK(strcmp(p.xid, has_xid ? "4242" : "null") == 0, "xid %s", p.xid);
	SHIM_CHECK(p.type && strcmp(p.type, "invalidation") == 0, "type %s", p.type ? p.type : "missing");
	SHIM_CHECK(p.seq && strtoull(p.seq, NULL, 10) == last_seq + 1,
			   "seq %s after %llu", p.seq ? p.seq : "missing", (unsigned long long) last_seq);
	last_seq = strtoull(p.seq, NULL, 10);
	if (!has_xid || XactLastCommitEnd == InvalidXLogRecPtr)
		SHIM_CHECK(strcmp(p.lsn, "null") == 0, "lsn %s", p.lsn);
	else
		SHIM_CHECK(strcmp(p.lsn, "16/B374D848") == 0, "lsn %s", p.lsn);

	SHIM_CHECK(p.ntags == e->nlisted, "%d tags listed, %d expected: %s", p.ntags, e->nlisted, published);
	for (int i = 0; i < p.ntags; i++)
	{
		char	   *want = utf8_repair(e->listed[i]);

		SHIM_CHECK(strcmp(p.tags[i], want) == 0,
				   "tag %d is [%s], expected [%s] (as written: [%s])", i, p.tags[i], want, e->listed[i]);
	}
	SHIM_CHECK(strcmp(p.truncated, e->truncated ? "true" : "false") == 0,
			   "truncated %s, expected %s", p.truncated, e->truncated ? "true" : "false");
	if (strict)
	{
		/* truncated should mean a tag was left out */
		int			distinct_others = 0;

		for (int i = 0; i < e->n; i++)
		{
			bool		dup = false;

			if (strchr(e->tags[i], '=') == NULL)
				continue;
			for (int j = 0; j < i && !dup; j++)
				dup = strcmp(e->tags[j], e->tags[i]) == 0;
			distinct_others += !dup;
		}
		SHIM_CHECK(!e->truncated || distinct_others > hc_publish_max_tags,
				   "\"truncated\":true, but all %d distinct tags were listed (max %d)",
				   distinct_others, hc_publish_max_tags);
	}
}

/*
 * The slots a remembered tag touches (tag.c): its own, and its "any"
 * column slot, which answers reading whole rows depend on.
 */
static void
touch_tag(bool *touched_slot, const char *tag)
{
	uint64		h = HcTagHash(tag, strlen(tag));

	touched_slot[HcSlotOfHash(h)] = true;
	touched_slot[HcColumnSlot(h, HcColumnHash(""))] = true;
}

/* ---------- one transaction ---------- */

static uint64 before[MESSAGE_NSLOTS];

int
LLVMFuzzerTestOneInput(const uint8 *data, size_t size)
{
	static const int max_tags_choice[] = {0, 1, 2, 3, 5, 8, 16, 256};
	uint8		opts;
	int			ending;
	Expect	   *e;
	const uint8 *p;
	size_t		left;
	bool		touched_slot[MESSAGE_NSLOTS];
	bool		saved_publish = hc_publish;
	char	   *early_tags[MAX_TAGS];
	char	   *late_tags[MAX_TAGS];
	int			nearly = 0;
	int			nlate = 0;
	int			nlisted_early;
	int			saved_max = hc_publish_max_tags;

	if (size < 1)
		return 0;
	shim_begin();

	/* the previous transaction left nothing behind */
	SHIM_CHECK(touched_count == 0 && !marked && !everything && message == NULL &&
			   table_tags == NULL && ntable_rows == 0, "state left over from a previous transaction");

	database_name = default_database_name;
	opts = data[0];
	hc_publish = (opts & 1) != 0;
	hc_publish_max_tags = max_tags_choice[(opts >> 1) & 7];
	ending = (opts >> 4) & 3;	/* 0: commit; 1: abort; 2: PRE_COMMIT, then abort;
								 * 3: PREPARE TRANSACTION */
	has_xid = (opts & 0x40) != 0;
	XactLastCommitEnd = (opts & 0x80) ? UINT64CONST(0x16B374D848) : InvalidXLogRecPtr;
	published = NULL;
	publish_calls = 0;

	e = palloc0(sizeof(Expect));
	memcpy(before, (const void *) hc_shared->slots, sizeof(before));
	memset(touched_slot, 0, sizeof(touched_slot));

	/*
	 * The tags, in order; one starting with byte 0x01 is written late, after
	 * PRE_COMMIT (as another extension's commit-time write would be).
	 */
	p = data + 1;
	left = size - 1;
	while (left > 0 && nearly + nlate < MAX_TAGS)
	{
		size_t		len = strnlen((const char *) p, left);
		char	   *tag = pnstrdup((const char *) p, Min(len, 8192));
		bool		late = (tag[0] == '\x01');

		p += Min(len + 1, left);
		left -= Min(len + 1, left);
		/* 0x02: the rest is the database's name */
		if (tag[0] == '\x02')
		{
			database_name = tag + 1;
			continue;
		}
		if (late)
			memmove(tag, tag + 1, strlen(tag));
		/*
		 * The bytes go in as they are: the shim's database is SQL_ASCII,
		 * where a tag can be anything but NUL.
		 */
		if (tag[0] == '\0')
			continue;
		if (late)
			late_tags[nlate++] = tag;
		else
			early_tags[nearly++] = tag;
	}

	for (int i = 0; i < nearly; i++)
		remember(e, early_tags[i]);
	for (int i = 0; i < e->n; i++)
		touch_tag(touched_slot, e->tags[i]);
	nlisted_early = e->n;

	/* end the transaction */
	if (ending == 1)
	{
		for (int i = 0; i < nlate; i++)
			remember(e, late_tags[i]);
		hc_xact_callback(XACT_EVENT_ABORT, NULL);
	}
	else if (ending == 3)
	{
		/* PREPARE TRANSACTION: refused once a tag was touched */
		bool		raised = SHIM_CATCH_ERROR(hc_xact_callback(XACT_EVENT_PRE_PREPARE, NULL));

		SHIM_CHECK(raised == (e->n > 0), "PREPARE %s with %d tags", raised ? "refused" : "allowed", e->n);
		if (raised)
		{
			SHIM_CHECK(shim_last_sqlstate() == ERRCODE_FEATURE_NOT_SUPPORTED,
					   "PREPARE refused with %s", unpack_sql_state(shim_last_sqlstate()));
			hc_xact_callback(XACT_EVENT_ABORT, NULL);
		}
		else
			hc_xact_callback(XACT_EVENT_PREPARE, NULL);
	}
	else
	{
		hc_xact_callback(XACT_EVENT_PRE_COMMIT, NULL);
		if (e->n > 0)
		{
			for (int s = 0; s < MESSAGE_NSLOTS; s++)
			{
				uint64		v = pg_atomic_read_u64(&hc_shared->slots[s]);

				SHIM_CHECK(v == before[s] + (touched_slot[s] ? 1 : 0),
						   "slot %d not marked in flight exactly once at PRE_COMMIT", s);
			}
			if (hc_publish)
				SHIM_CHECK(message != NULL && message_cap - message_len >= NUMBER_ROOM,
						   "no room for the number and the LSN in the prepared message");
		}
		/*
		 * Late tags go in flight at once when PRE_COMMIT marked the others
		 * ("marked implies every touched slot in flight"); a transaction
		 * whose only writes come after PRE_COMMIT is marked at COMMIT.
		 */
		for (int i = 0; i < nlate; i++)
			remember(e, late_tags[i]);
		for (int i = 0; i < e->n; i++)
			touch_tag(touched_slot, e->tags[i]);
		for (int s = 0; s < MESSAGE_NSLOTS && nlisted_early > 0; s++)
			SHIM_CHECK(pg_atomic_read_u64(&hc_shared->slots[s]) == before[s] + (touched_slot[s] ? 1 : 0),
					   "slot %d not in flight exactly once after a late tag", s);
		if (ending == 2)
			hc_xact_callback(XACT_EVENT_ABORT, NULL);
		else
			hc_xact_callback(XACT_EVENT_COMMIT, NULL);
	}

	/* the generations */
	for (int s = 0; s < MESSAGE_NSLOTS; s++)
	{
		uint64		v = pg_atomic_read_u64(&hc_shared->slots[s]);
		bool		committed = (ending == 0);
		uint64		want = before[s] + ((committed && touched_slot[s]) ? HC_GENERATION_ONE : 0);

		SHIM_CHECK((v & HC_INFLIGHT_MASK) == 0, "slot %d left in flight", s);
		SHIM_CHECK(v == want, "slot %d: generation %llu, expected %llu", s,
				   (unsigned long long) (v >> HC_INFLIGHT_BITS),
				   (unsigned long long) (want >> HC_INFLIGHT_BITS));
	}

	/* the message */
	if (ending == 0 && hc_publish && nlisted_early > 0)
	{
		SHIM_CHECK(publish_calls == 1, "published %d times", publish_calls);
		/* the message was finished at PRE_COMMIT: late tags are not in it */
		e->n = nlisted_early;
		expect_listing(e, hc_publish_max_tags);
		check_message(e);
	}
	else
		SHIM_CHECK(publish_calls == 0, "published %d times (publish %d, ending %d, %d tags)",
				   publish_calls, hc_publish, ending, e->n);

	SHIM_CHECK(!HcXactMayHaveWritten(NULL, 0), "invalidations pending after the transaction");
	hc_publish = saved_publish;
	hc_publish_max_tags = saved_max;
	shim_end();
	return 0;
}
