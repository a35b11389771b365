/*
 * hc_http: the development HTTP server of housing_cache.
 *
 * Serves a static web export at / and the functions of the `api` schema
 * under /api/rpc/<fn>, with the per-request protocol of PostgREST v13 (see
 * http/README.md).
 */
#ifndef HC_HTTP_H
#define HC_HTTP_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "address.h"			/* common/ */
#include "edgekey.h"			/* common/ */

#define HC_HTTP_VERSION "0.1.0"

/* ------------------------------------------------------------------------
 * Growable byte buffer (util.c).  On allocation failure it stays valid,
 * stops growing and sets oom; callers check oom once at the end.
 * ------------------------------------------------------------------------ */
typedef struct Buf
{
	char	   *data;
	size_t		len;
	size_t		cap;
	bool		oom;
} Buf;

void		buf_init(Buf *b);
void		buf_free(Buf *b);
void		buf_reset(Buf *b);
bool		buf_reserve(Buf *b, size_t extra);
void		buf_append(Buf *b, const void *data, size_t len);
void		buf_puts(Buf *b, const char *s);
void		buf_putc(Buf *b, char c);
void		buf_printf(Buf *b, const char *fmt,...) __attribute__((format(printf, 2, 3)));
/* Append s (n bytes) as a JSON string literal, quotes included.  Bytes
 * that are not valid UTF-8 become U+FFFD. */
void		buf_json_str(Buf *b, const char *s, size_t n);
void		buf_json_cstr(Buf *b, const char *s);	/* NULL -> null */
/* Hand the buffer's contents to the caller (NUL-terminated, malloc'd). */
char	   *buf_steal(Buf *b, size_t *len);

/* ------------------------------------------------------------------------
 * Misc helpers (util.c)
 * ------------------------------------------------------------------------ */
void	   *xmalloc(size_t n);
void	   *xcalloc(size_t n, size_t m);
char	   *xstrdup(const char *s);
char	   *xstrndup(const char *s, size_t n);

/*
 * Strict percent-decoding: "%XY" with two hex digits only, no decoded NUL;
 * plus_is_space turns '+' into ' ' (query strings).  Returns a malloc'd
 * NUL-terminated string (its length in *outlen), or NULL when malformed.
 */
char	   *pct_decode(const char *s, size_t n, bool plus_is_space, size_t *outlen);

bool		valid_utf8(const char *s, size_t n);
double		mono_now(void);		/* seconds, CLOCK_MONOTONIC */
void		log_msg(const char *fmt,...) __attribute__((format(printf, 1, 2)));

/* ------------------------------------------------------------------------
 * JSON (json.c): a small strict parser (RFC 8259) into a tree.
 * ------------------------------------------------------------------------ */
typedef enum
{
	JSON_NULL, JSON_FALSE, JSON_TRUE, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT
} JsonType;

typedef struct JsonValue JsonValue;
struct JsonValue
{
	JsonType	type;
	char	   *str;			/* STRING: decoded UTF-8, NUL-terminated */
	size_t		str_len;
	const char *raw;			/* the value's text in the source */
	size_t		raw_len;
	double		num;			/* NUMBER */
	char	   *key;			/* member name when inside an object */
	size_t		key_len;
	JsonValue  *child;			/* ARRAY, OBJECT: first element/member */
	JsonValue  *next;			/* next sibling */
};

/*
 * Parse exactly one JSON value (surrounding whitespace allowed).  Strings
 * containing U+0000 are refused (PostgreSQL text cannot hold them).  On
 * failure returns NULL and sets *err to a static message.
 */
JsonValue  *json_parse(const char *s, size_t n, const char **err);
void		json_free(JsonValue *v);
const JsonValue *json_get(const JsonValue *obj, const char *key);

/* ------------------------------------------------------------------------
 * JWT HS256 (jwt.c)
 * ------------------------------------------------------------------------ */
typedef struct JwtResult
{
	char	   *role;			/* claim "role", malloc'd */
	char	   *claims;			/* the payload's JSON text, malloc'd */
} JwtResult;

/*
 * Verify a compact JWS with HS256 and secret; exp and nbf are checked
 * against now.  Returns true and fills *out, or false with *err set (a
 * static message).  The role claim is returned as is; the caller checks
 * it against the allowed roles.
 */
bool		jwt_verify(const char *token, const unsigned char *secret, size_t secret_len,
					   time_t now, JwtResult *out, const char **err);
void		jwt_result_free(JwtResult *r);
/* A token for role that expires ttl seconds from now (malloc'd). */
char	   *jwt_mint(const char *role, long ttl, const unsigned char *secret, size_t secret_len,
					 time_t now);

/* ------------------------------------------------------------------------
 * Connection pool (pool.c)
 * ------------------------------------------------------------------------ */
typedef struct pg_conn PGconn;
typedef struct Pool Pool;

/* label names the database in log lines ("database", "read database"); it
 * must outlive the pool. */
Pool	   *pool_create(const char *conninfo, int size, int statement_timeout_ms,
						const char *label);
/* Connect every slot now; false (with a logged reason) if none works. */
bool		pool_warm(Pool *p);
typedef enum
{
	POOL_OK, POOL_TIMEOUT, POOL_UNAVAILABLE
} PoolStatus;
/*
 * Check a connection out, waiting at most timeout_ms for a free one.  A
 * connection that is down is re-established first (POOL_UNAVAILABLE if
 * that fails); fresh: always open a new one (after a request found its
 * pooled connection dead, the others are likely dead too).
 */
PoolStatus	pool_checkout(Pool *p, int timeout_ms, bool fresh, PGconn **conn, int *slot);
/* Give it back; broken: drop the connection (it is re-established at the
 * next checkout). */
void		pool_release(Pool *p, int slot, bool broken);
void		pool_destroy(Pool *p);

/*
 * Statements prepared on a pooled connection.  The constant ones (BEGIN,
 * the set_config statement, COMMIT) are prepared when it connects, under
 * the names below; the calls, one per function and set of arguments, as
 * they come (hc_q0, hc_q1, ...; up to STMT_CACHE_SIZE, then unnamed).  The
 * cache belongs to the connection and is emptied when it is replaced.
 */
#define STMT_CACHE_SIZE 128
#define STMT_BEGIN_RO "hc_begin_ro"
#define STMT_BEGIN_RW "hc_begin_rw"
#define STMT_SET_CONFIG "hc_set_config"
#define STMT_COMMIT "hc_commit"
extern const char set_config_sql[];

typedef struct StmtCache
{
	int			n;
	char	   *sql[STMT_CACHE_SIZE];	/* sql[i] is prepared as hc_q<i> */
} StmtCache;

StmtCache  *pool_stmt_cache(Pool *p, int slot);

/* ------------------------------------------------------------------------
 * Schema cache (schema.c): the functions of the exposed schema.
 * ------------------------------------------------------------------------ */
typedef enum
{
	RET_JSON,					/* json, jsonb, or a domain over them: body as is */
	RET_SCALAR,					/* any other scalar: to_json() */
	RET_COMPOSITE,				/* a row type or OUT parameters: row_to_json */
	RET_VOID
} RetKind;

typedef struct FuncArg
{
	char	   *name;
	char	   *type;			/* format_type(), usable in a cast */
	bool		has_default;
} FuncArg;

typedef struct Func
{
	char	   *name;
	int			nargs;
	FuncArg    *args;
	RetKind		ret;
	bool		retset;
} Func;

typedef struct Schema Schema;

/* Load the functions of schema `nsp` through conn; NULL on error (logged). */
Schema	   *schema_load(PGconn *conn, const char *nsp);
void		schema_free(Schema *s);
/* Does any function have this name? */
bool		schema_has(const Schema *s, const char *name);
/*
 * The function `name` whose arguments fit the given names: each given name
 * is an argument and every argument without a default is given.  Returns
 * NULL when none does, and sets *ambiguous when more than one does.
 */
const Func *schema_find(const Schema *s, const char *name, const char *const *argnames,
						int nnames, bool *ambiguous);

/* ------------------------------------------------------------------------
 * The order of invalidation messages (sequence.c): epochs, numbers,
 * heartbeats and the reorder window; whether messages may have been missed.
 * ------------------------------------------------------------------------ */
#define SEQ_WINDOW 65536		/* numbers tracked ahead of the last in order */

typedef struct Sequence
{
	char		epoch[40];
	bool		known;			/* counting: an epoch and a number seen */
	uint64_t	done;			/* every number up to it seen or given up */
	uint64_t	promised;		/* the greatest number known to exist */
	double		gap_since;		/* since when a number is missing, or 0 */
	uint64_t   *seen;			/* numbers seen above done, a bitmap */
} Sequence;

typedef enum
{
	SEQ_IN_ORDER,				/* nothing missed so far */
	SEQ_FIRST,					/* the first number: counting starts */
	SEQ_NEW_EPOCH,				/* the server restarted: reset */
	SEQ_TOO_FAR					/* a jump past the window: reset */
} SeqVerdict;

void		seq_init(Sequence *s);
void		seq_free(Sequence *s);
/* Start over at the next number (after a reconnection). */
void		seq_forget(Sequence *s);
SeqVerdict	seq_message(Sequence *s, const char *epoch, uint64_t n, double now);
SeqVerdict	seq_heartbeat(Sequence *s, const char *epoch, uint64_t n, double now);
/* A number missing for window_s seconds: true (reset), and it is given up. */
bool		seq_expired(Sequence *s, double now, double window_s);
/* When the current gap expires (mono_now() time), or 0 without a gap. */
double		seq_deadline(const Sequence *s, double window_s);

/* ------------------------------------------------------------------------
 * Who may read the table a tag names (readers.c).
 * ------------------------------------------------------------------------ */
typedef struct Readers Readers;

typedef struct ReaderInfo
{
	const char *table_tag;		/* the watched table's tag */
	size_t		table_tag_len;
	bool		rls;			/* row-level security: only the key of the
								 * wildcard tag, T + "/" + "*", is sent */
	uint64_t	roles;			/* bit i: roles[i] may SELECT it */
} ReaderInfo;

/* The watched tables of conn's database and which of the roles (at most
 * 64) may read each; NULL on error (logged). */
Readers    *readers_load(PGconn *conn, char *const *roles, int nroles);
void		readers_free(Readers *r);
const char *readers_database(const Readers *r);
int			readers_count(const Readers *r);
bool		readers_lookup(const Readers *r, const char *tag, size_t len, ReaderInfo *out);

/* ------------------------------------------------------------------------
 * The invalidation feed (feed.c): one thread subscribed to the engine's
 * Redis channel, which turns messages into edge keys per role and tells
 * when messages may have been missed.
 * ------------------------------------------------------------------------ */
typedef struct FeedKey
{
	char		key[EDGE_KEY_LEN + 1];
	uint64_t	roles;			/* bit i: sent to subscribers of roles[i] */
} FeedKey;

typedef struct FeedConfig
{
	const char *redis_host;		/* not used under Sentinel */
	int			redis_port;
	const char *redis_password; /* NULL or empty: no AUTH */
	/*
	 * Redis Sentinel (nsentinels > 0): the master they name as
	 * sentinel_master, confirmed by ROLE, followed across failovers.
	 */
	const HostPort *sentinels;
	int			nsentinels;
	const char *sentinel_master;
	const char *sentinel_password;	/* NULL or empty: no AUTH */
	int			redis_db;
	const char *channel;
	int			connect_timeout_ms;
	int			reorder_ms;		/* how long a missing number may take */
	Pool	   *pool;			/* for the readers (never an HTTP thread) */
	int			pool_timeout_ms;
	char	   *const *roles;
	int			nroles;
	/*
	 * Called on the feed thread.  id: "<epoch>/<seq>", or NULL; lsn: the
	 * commit's WAL position ("0/1A2B3C4"), or NULL.
	 */
	void		(*deliver) (void *arg, const char *id, const char *lsn,
							const FeedKey *keys, int nkeys);
	void		(*reset) (void *arg, const char *why);
	void	   *arg;
} FeedConfig;

/* Copies conf (its strings must outlive feed_stop) and starts the thread. */
bool		feed_start(const FeedConfig *conf);
/* Reload the readers soon (SIGHUP). */
void		feed_reload(void);
void		feed_stop(void);

#endif							/* HC_HTTP_H */
