/*-------------------------------------------------------------------------
 *
 * shim.c
 *	  The backend services housing_cache's pure code needs, for the fuzzers.
 *	  See shim.h.
 *
 *-------------------------------------------------------------------------
 */
#include "shim.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/pg_prng.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/memnodes.h"
#include "utils/json.h"

#include "../extension/settings.h"

/* ---------- the extension's globals (guc.c, shmem.c) ---------- */

/*
 * Every setting, defined from the extension's own list (settings.h) at the
 * default the server starts with.  guc.c defines them from the same list,
 * so a default cannot differ here.  Strings point at their default text,
 * which is what DefineCustomStringVariable leaves them with in the server.
 * A harness that needs another value sets it in its LLVMFuzzerInitialize,
 * saying why (fuzz_message: generation_slots).
 */
#define SHIM_DEFINE_SETTING(kind, type, var, def) type var = (def);
HC_SETTINGS(SHIM_DEFINE_SETTING)

HcSharedState *hc_shared = NULL;

/* ---------- backend globals ---------- */

Oid			MyDatabaseId = 16384;
sigjmp_buf *PG_exception_stack = NULL;
ErrorContextCallback *error_context_stack = NULL;

uint64
GetSystemIdentifier(void)
{
	return UINT64CONST(7301234567890123456);
}

/*
 * mbutils.c: the database encoding.  SQL_ASCII, the encoding that checks
 * nothing, so that the message harness feeds arbitrary bytes to the UTF-8
 * repair of tags; no conversion is ever needed then.
 */
int
GetDatabaseEncoding(void)
{
	return PG_SQL_ASCII;
}

char *
pg_server_to_any(const char *s, int len, int encoding)
{
	return unconstify(char *, s);
}

/* guc.c: a secret from a file (the harnesses set no secret file) */
bool
HcReadSecretFile(const char *path, char *buf, size_t size, const char **err)
{
	*err = "secret files are not read by the fuzzers";
	return false;
}

/* ---------- failures ---------- */

void
shim_fail(const char *file, int line, const char *cond, const char *fmt,...)
{
	va_list		ap;

	fprintf(stderr, "\n*** housing_cache fuzz check failed at %s:%d: %s\n*** ", file, line, cond);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	abort();
}

void
ExceptionalCondition(const char *conditionName, const char *errorType,
					 const char *fileName, int lineNumber)
{
	fprintf(stderr, "\n*** %s(\"%s\", File: \"%s\", Line: %d)\n",
			errorType ? errorType : "TRAP", conditionName ? conditionName : "?",
			fileName ? fileName : "?", lineNumber);
	abort();
}

/* ---------- memory contexts over malloc ---------- */

/*
 * Each chunk is one malloc: a header, then the caller's bytes.  Chunks of a
 * context form a doubly linked list, so that a reset frees them all (and so
 * that they stay reachable for LeakSanitizer while the context lives).
 */
#define SHIM_CHUNK_MAGIC	UINT64CONST(0x68635f6368756e6b)

typedef struct ShimContext ShimContext;

typedef struct ShimChunk
{
	struct ShimChunk *prev;
	struct ShimChunk *next;
	ShimContext *cxt;
	Size		size;			/* what the caller asked for */
	uint64		magic;
} ShimChunk;

struct ShimContext
{
	MemoryContextData hdr;		/* what MemoryContext points to */
	const char *name;
	ShimChunk	head;			/* list sentinel */
	long		nchunks;
	ShimContext *parent;
	ShimContext *firstchild;
	ShimContext *nextsibling;
};

StaticAssertDecl(sizeof(ShimChunk) % MAXIMUM_ALIGNOF == 0, "chunk header alignment");

static ShimContext top_context;
MemoryContext TopMemoryContext = NULL;
MemoryContext CurrentMemoryContext = NULL;
MemoryContext ErrorContext = NULL;
static ShimContext *iteration_context = NULL;

static void
shim_context_init(ShimContext *c, ShimContext *parent, const char *name)
{
	memset(c, 0, sizeof(*c));
	c->hdr.type = T_AllocSetContext;
	c->hdr.name = name;
	c->name = name;
	c->head.prev = c->head.next = &c->head;
	c->parent = parent;
	if (parent)
	{
		c->nextsibling = parent->firstchild;
		parent->firstchild = c;
	}
}

static ShimContext *
as_shim(MemoryContext context)
{
	if (context == NULL)
		shim_fail(__FILE__, __LINE__, "context != NULL", "allocation in a NULL memory context");
	return (ShimContext *) context;
}

static void *
chunk_alloc(MemoryContext context, Size size, bool zero, bool huge)
{
	ShimContext *c = as_shim(context);
	ShimChunk  *ch;

	if (!huge && !AllocSizeIsValid(size))
		elog(ERROR, "invalid memory alloc request size %zu", size);
	if (huge && !AllocHugeSizeIsValid(size))
		elog(ERROR, "invalid memory alloc request size %zu", size);
	ch = malloc(sizeof(ShimChunk) + size);
	if (ch == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory"),
				 errdetail("Failed on request of size %zu.", size)));
	ch->cxt = c;
	ch->size = size;
	ch->magic = SHIM_CHUNK_MAGIC;
	ch->next = c->head.next;
	ch->prev = &c->head;
	c->head.next->prev = ch;
	c->head.next = ch;
	c->nchunks++;
	if (zero)
		memset(ch + 1, 0, size);
	return ch + 1;
}

static ShimChunk *
chunk_of(void *pointer)
{
	ShimChunk  *ch;

	if (pointer == NULL)
		shim_fail(__FILE__, __LINE__, "pointer != NULL", "pfree/repalloc of NULL");
	ch = ((ShimChunk *) pointer) - 1;
	if (ch->magic != SHIM_CHUNK_MAGIC)
		shim_fail(__FILE__, __LINE__, "magic", "pfree/repalloc of a pointer palloc did not return");
	return ch;
}

static void
chunk_free(ShimChunk *ch)
{
	ch->prev->next = ch->next;
	ch->next->prev = ch->prev;
	ch->cxt->nchunks--;
	ch->magic = 0;
	free(ch);
}

void *
MemoryContextAlloc(MemoryContext context, Size size)
{
	return chunk_alloc(context, size, false, false);
}

void *
MemoryContextAllocZero(MemoryContext context, Size size)
{
	return chunk_alloc(context, size, true, false);
}

void *
MemoryContextAllocZeroAligned(MemoryContext context, Size size)
{
	return chunk_alloc(context, size, true, false);
}

void *
MemoryContextAllocExtended(MemoryContext context, Size size, int flags)
{
	return chunk_alloc(context, size, (flags & MCXT_ALLOC_ZERO) != 0,
					   (flags & MCXT_ALLOC_HUGE) != 0);
}

void *
MemoryContextAllocHuge(MemoryContext context, Size size)
{
	return chunk_alloc(context, size, false, true);
}

void *
palloc(Size size)
{
	return chunk_alloc(CurrentMemoryContext, size, false, false);
}

void *
palloc0(Size size)
{
	return chunk_alloc(CurrentMemoryContext, size, true, false);
}

void *
palloc_extended(Size size, int flags)
{
	return MemoryContextAllocExtended(CurrentMemoryContext, size, flags);
}

void
pfree(void *pointer)
{
	chunk_free(chunk_of(pointer));
}

void *
repalloc(void *pointer, Size size)
{
	ShimChunk  *ch = chunk_of(pointer);
	void	   *copy;
	Size		old_size;

	/* a new chunk in the same context, so that ASan sees the new size */
	old_size = ch->size;
	copy = chunk_alloc((MemoryContext) ch->cxt, size, false, false);
	memcpy(copy, pointer, Min(old_size, size));
	chunk_free(ch);
	return copy;
}

void *
repalloc_huge(void *pointer, Size size)
{
	return repalloc(pointer, size);
}

char *
MemoryContextStrdup(MemoryContext context, const char *string)
{
	Size		len = strlen(string) + 1;
	char	   *nstr = MemoryContextAlloc(context, len);

	memcpy(nstr, string, len);
	return nstr;
}

char *
pstrdup(const char *in)
{
	return MemoryContextStrdup(CurrentMemoryContext, in);
}

char *
pnstrdup(const char *in, Size len)
{
	char	   *out;

	len = strnlen(in, len);
	out = palloc(len + 1);
	memcpy(out, in, len);
	out[len] = '\0';
	return out;
}

size_t
pvsnprintf(char *buf, size_t len, const char *fmt, va_list args)
{
	int			nprinted = vsnprintf(buf, len, fmt, args);

	if (nprinted < 0)
		elog(ERROR, "vsnprintf failed: %m with format string \"%s\"", fmt);
	if ((size_t) nprinted < len)
		return (size_t) nprinted;
	if ((size_t) nprinted > MaxAllocSize - 1)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("out of memory")));
	return nprinted + 1;
}

char *
psprintf(const char *fmt,...)
{
	size_t		len = 128;

	for (;;)
	{
		char	   *result = palloc(len);
		va_list		args;
		size_t		newlen;

		va_start(args, fmt);
		newlen = pvsnprintf(result, len, fmt, args);
		va_end(args);
		if (newlen < len)
			return result;
		pfree(result);
		len = newlen;
	}
}

static void
shim_context_free_chunks(ShimContext *c)
{
	while (c->head.next != &c->head)
		chunk_free(c->head.next);
}

static void shim_context_delete_children(ShimContext *c);

static void
shim_context_delete(ShimContext *c)
{
	ShimContext **link;

	shim_context_delete_children(c);
	shim_context_free_chunks(c);
	if (c->parent)
	{
		for (link = &c->parent->firstchild; *link; link = &(*link)->nextsibling)
		{
			if (*link == c)
			{
				*link = c->nextsibling;
				break;
			}
		}
	}
	if ((MemoryContext) c == CurrentMemoryContext)
		CurrentMemoryContext = TopMemoryContext;
	if (c != &top_context)
		free(c);
}

static void
shim_context_delete_children(ShimContext *c)
{
	while (c->firstchild)
		shim_context_delete(c->firstchild);
}

MemoryContext
AllocSetContextCreateInternal(MemoryContext parent, const char *name,
							  Size minContextSize, Size initBlockSize,
							  Size maxBlockSize)
{
	ShimContext *c = malloc(sizeof(ShimContext));

	if (c == NULL)
		abort();
	shim_context_init(c, parent ? as_shim(parent) : NULL, name);
	return (MemoryContext) c;
}

void
MemoryContextReset(MemoryContext context)
{
	ShimContext *c = as_shim(context);

	shim_context_delete_children(c);
	shim_context_free_chunks(c);
}

void
MemoryContextResetOnly(MemoryContext context)
{
	shim_context_free_chunks(as_shim(context));
}

void
MemoryContextDelete(MemoryContext context)
{
	shim_context_delete(as_shim(context));
}

long
shim_context_chunks(MemoryContext cxt)
{
	return as_shim(cxt)->nchunks;
}

/* ---------- ereport ---------- */

static int	err_level = 0;
static int	err_sqlstate = 0;
static char err_message[1024];
static char err_detail[1024];
static char err_hint[1024];
static char last_error[1024];
static int	last_sqlstate = 0;
static bool err_active = false;

bool
errstart(int elevel, const char *domain)
{
	if (err_active && elevel >= ERROR)
		shim_fail(__FILE__, __LINE__, "!err_active", "ereport(ERROR) while reporting an error");
	err_active = true;
	err_level = elevel;
	err_sqlstate = (elevel >= ERROR) ? ERRCODE_INTERNAL_ERROR : 0;
	err_message[0] = err_detail[0] = err_hint[0] = '\0';
	return true;
}

bool
errstart_cold(int elevel, const char *domain)
{
	return errstart(elevel, domain);
}

int
errcode(int sqlerrcode)
{
	err_sqlstate = sqlerrcode;
	return 0;
}

int
errcode_for_file_access(void)
{
	err_sqlstate = ERRCODE_IO_ERROR;
	return 0;
}

#define FORMAT_INTO(buf, fmt) \
	do { \
		va_list		ap_; \
		va_start(ap_, fmt); \
		vsnprintf((buf), sizeof(buf), (fmt), ap_); \
		va_end(ap_); \
	} while (0)

int
errmsg(const char *fmt,...)
{
	FORMAT_INTO(err_message, fmt);
	return 0;
}

int
errmsg_internal(const char *fmt,...)
{
	FORMAT_INTO(err_message, fmt);
	return 0;
}

int
errdetail(const char *fmt,...)
{
	FORMAT_INTO(err_detail, fmt);
	return 0;
}

int
errdetail_internal(const char *fmt,...)
{
	FORMAT_INTO(err_detail, fmt);
	return 0;
}

int
errhint(const char *fmt,...)
{
	FORMAT_INTO(err_hint, fmt);
	return 0;
}

void
errfinish(const char *filename, int lineno, const char *funcname)
{
	int			elevel = err_level;

	err_active = false;
	if (elevel < ERROR)
	{
		if (getenv("HC_FUZZ_VERBOSE"))
			fprintf(stderr, "[elevel %d] %s\n", elevel, err_message);
		return;
	}
	snprintf(last_error, sizeof(last_error), "%s (%s:%d %s)", err_message,
			 filename ? filename : "?", lineno, funcname ? funcname : "?");
	last_sqlstate = err_sqlstate;
	if (getenv("HC_FUZZ_VERBOSE"))
		fprintf(stderr, "[ERROR %s] %s\n", unpack_sql_state(err_sqlstate), last_error);
	if (elevel == ERROR && PG_exception_stack != NULL)
		siglongjmp(*PG_exception_stack, 1);
	shim_fail(filename ? filename : "?", lineno, "elevel == ERROR inside PG_TRY",
			  "elevel %d outside any PG_TRY: %s", elevel, err_message);
}

/* unpack_sql_state: as in elog.c */
char *
unpack_sql_state(int sql_state)
{
	static char buf[12];
	int			i;

	for (i = 0; i < 5; i++)
	{
		buf[i] = PGUNSIXBIT(sql_state);
		sql_state >>= 6;
	}
	buf[i] = '\0';
	return buf;
}

void
FlushErrorState(void)
{
	err_active = false;
	err_level = 0;
}

void
pg_re_throw(void)
{
	if (PG_exception_stack != NULL)
		siglongjmp(*PG_exception_stack, 1);
	shim_fail(__FILE__, __LINE__, "PG_exception_stack", "re-throw outside PG_TRY: %s", last_error);
}

const char *
shim_last_error(void)
{
	return last_error;
}

int
shim_last_sqlstate(void)
{
	return last_sqlstate;
}

/* ---------- StringInfo (as src/common/stringinfo.c, backend flavour) ---------- */

StringInfo
makeStringInfo(void)
{
	StringInfo	res = (StringInfo) palloc(sizeof(StringInfoData));

	initStringInfo(res);
	return res;
}

void
initStringInfo(StringInfo str)
{
	int			size = 1024;

	str->data = (char *) palloc(size);
	str->maxlen = size;
	resetStringInfo(str);
}

void
resetStringInfo(StringInfo str)
{
	str->data[0] = '\0';
	str->len = 0;
	str->cursor = 0;
}

void
appendStringInfo(StringInfo str, const char *fmt,...)
{
	int			save_errno = errno;

	for (;;)
	{
		va_list		args;
		int			needed;

		errno = save_errno;
		va_start(args, fmt);
		needed = appendStringInfoVA(str, fmt, args);
		va_end(args);
		if (needed == 0)
			break;
		enlargeStringInfo(str, needed);
	}
}

int
appendStringInfoVA(StringInfo str, const char *fmt, va_list args)
{
	int			avail;
	size_t		nprinted;

	avail = str->maxlen - str->len;
	if (avail < 16)
		return 32;
	nprinted = pvsnprintf(str->data + str->len, (size_t) avail, fmt, args);
	if (nprinted < (size_t) avail)
	{
		str->len += (int) nprinted;
		return 0;
	}
	str->data[str->len] = '\0';
	return (int) nprinted;
}

void
appendStringInfoString(StringInfo str, const char *s)
{
	appendBinaryStringInfo(str, s, strlen(s));
}

void
appendStringInfoChar(StringInfo str, char ch)
{
	if (str->len + 1 >= str->maxlen)
		enlargeStringInfo(str, 1);
	str->data[str->len] = ch;
	str->len++;
	str->data[str->len] = '\0';
}

void
appendStringInfoSpaces(StringInfo str, int count)
{
	if (count > 0)
	{
		enlargeStringInfo(str, count);
		while (--count >= 0)
			str->data[str->len++] = ' ';
		str->data[str->len] = '\0';
	}
}

void
appendBinaryStringInfo(StringInfo str, const char *data, int datalen)
{
	Assert(str != NULL);
	enlargeStringInfo(str, datalen);
	memcpy(str->data + str->len, data, datalen);
	str->len += datalen;
	str->data[str->len] = '\0';
}

void
appendBinaryStringInfoNT(StringInfo str, const char *data, int datalen)
{
	enlargeStringInfo(str, datalen);
	memcpy(str->data + str->len, data, datalen);
	str->len += datalen;
}

void
enlargeStringInfo(StringInfo str, int needed)
{
	int			newlen;

	if (needed < 0)
		elog(ERROR, "invalid string enlargement request size: %d", needed);
	if (((Size) needed) >= (MaxAllocSize - (Size) str->len))
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("out of memory"),
				 errdetail("Cannot enlarge string buffer containing %d bytes by %d more bytes.",
						   str->len, needed)));
	needed += str->len + 1;
	if (needed <= str->maxlen)
		return;
	newlen = 2 * str->maxlen;
	while (needed > newlen)
		newlen = 2 * newlen;
	if (newlen > (int) MaxAllocSize)
		newlen = (int) MaxAllocSize;
	str->data = (char *) repalloc(str->data, newlen);
	str->maxlen = newlen;
}

/* ---------- setup ---------- */

void
shim_init(void)
{
	if (TopMemoryContext != NULL)
		return;
	shim_context_init(&top_context, NULL, "TopMemoryContext");
	TopMemoryContext = (MemoryContext) &top_context;
	CurrentMemoryContext = TopMemoryContext;
	ErrorContext = TopMemoryContext;

	/*
	 * Shared state as shmem.c sets it up: housing_cache.generation_slots
	 * slots (a power of two within the setting's bounds, as guc.c checks).
	 */
	if (hc_generation_slots < 1024 || hc_generation_slots > (1 << 24) ||
		(hc_generation_slots & (hc_generation_slots - 1)) != 0)
		shim_fail(__FILE__, __LINE__, "valid hc_generation_slots",
				  "housing_cache.generation_slots is %d: not a power of two from 1024 to 2^24",
				  hc_generation_slots);
	hc_shared = calloc(1, offsetof(HcSharedState, slots) +
					   sizeof(pg_atomic_uint64) * hc_generation_slots);
	if (hc_shared == NULL)
		abort();
	hc_shared->nslots = (uint32) hc_generation_slots;
	hc_shared->epoch = UINT64CONST(0x0123456789abcdef);
	/* a fixed "random" key: runs are reproducible */
	for (int i = 0; i < (int) sizeof(hc_shared->value_key); i++)
		hc_shared->value_key[i] = (uint8) (i * 37 + 11);
}

void
shim_begin(void)
{
	shim_init();
	if (iteration_context == NULL)
		iteration_context = (ShimContext *)
			AllocSetContextCreate(TopMemoryContext, "fuzz input", ALLOCSET_DEFAULT_SIZES);
	CurrentMemoryContext = (MemoryContext) iteration_context;
	PG_exception_stack = NULL;
	error_context_stack = NULL;
	err_active = false;
	last_error[0] = '\0';
	last_sqlstate = 0;
}

void
shim_end(void)
{
	if (PG_exception_stack != NULL)
		shim_fail(__FILE__, __LINE__, "PG_exception_stack == NULL",
				  "a PG_TRY block was left without PG_END_TRY");
	MemoryContextReset((MemoryContext) iteration_context);
	CurrentMemoryContext = TopMemoryContext;
}

/* ---------- escape_json (utils/adt/json.c), which message.c uses ---------- */

void
escape_json(StringInfo buf, const char *str)
{
	appendStringInfoChar(buf, '"');
	for (const char *p = str; *p; p++)
	{
		switch (*p)
		{
			case '\b':
				appendStringInfoString(buf, "\\b");
				break;
			case '\f':
				appendStringInfoString(buf, "\\f");
				break;
			case '\n':
				appendStringInfoString(buf, "\\n");
				break;
			case '\r':
				appendStringInfoString(buf, "\\r");
				break;
			case '\t':
				appendStringInfoString(buf, "\\t");
				break;
			case '"':
				appendStringInfoString(buf, "\\\"");
				break;
			case '\\':
				appendStringInfoString(buf, "\\\\");
				break;
			default:
				if ((unsigned char) *p < ' ')
					appendStringInfo(buf, "\\u%04x", (int) *p);
				else
					appendStringInfoChar(buf, *p);
				break;
		}
	}
	appendStringInfoChar(buf, '"');
}
