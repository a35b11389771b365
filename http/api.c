/*
 * /api/rpc/<fn>: the request protocol of PostgREST v13.
 *
 * Per request, on one pooled connection and in one round trip (libpq
 * pipeline mode):
 *
 *   BEGIN ISOLATION LEVEL READ COMMITTED [READ ONLY]     -- READ ONLY for GET/HEAD
 *   SELECT set_config('search_path', $1, true), set_config('role', $2, true),
 *          set_config('request.jwt.claims', $3, true), set_config('request.method', $4, true),
 *          set_config('request.path', $5, true), set_config('request.headers', $6, true),
 *          set_config('request.cookies', $7, true)
 *   SELECT <body>, nullif(current_setting('response.headers', true), ''),
 *          nullif(current_setting('response.status', true), '')
 *     FROM "api"."fn"("arg" := $1::type, ...) _hc(v)
 *   COMMIT                                               -- ROLLBACK after an error
 *
 * Every value travels as a parameter; names and types come from the schema
 * cache (pg_proc), never from the request.
 *
 * With a read database (--read-db, a hot standby), GET and HEAD run there
 * (but for the HTTP edge's own fetches, X-HC-Edge-Fetch: 1) and everything
 * else on the primary; a read the standby cannot answer (it
 * is unreachable, it has not replayed the client's X-Min-LSN yet: SQLSTATE
 * 53HC0, or a recovery conflict canceled the query) is run again,
 * once, on the primary.  After a write, the same pipeline asks the primary
 * for the commit's LSN (housing_cache.last_commit_lsn(), when it exists),
 * which the reply carries as X-Commit-LSN; X-Served-By says where the
 * answer came from.
 *
 * api_handle runs the steps parse_request, authenticate, plan_call,
 * execute_call and reply_outcome.  The settings are a copy taken by
 * api_init, so that nothing here reaches back into the daemon.
 */
#include "server.h"

#include <ctype.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#define MAX_ARGS 64

/* Copied by api_init, before the daemon starts; read-only afterwards. */
static ApiConfig settings;

static Schema *schema;
static pthread_rwlock_t schema_lock = PTHREAD_RWLOCK_INITIALIZER;
static pthread_mutex_t reload_lock = PTHREAD_MUTEX_INITIALIZER;
static double last_reload;

/*
 * housing_cache.last_commit_lsn() exists and the pool's role may call it:
 * looked up with the schema cache (at start, SIGHUP, unknown functions), so
 * that a database without it costs writes nothing and logs no error.
 */
static atomic_bool commit_lsn_fn;
static const char commit_lsn_check_sql[] =
"SELECT coalesce((SELECT pg_catalog.has_function_privilege(p::oid, 'EXECUTE') "
"AND pg_catalog.has_schema_privilege('housing_cache', 'USAGE') "
"FROM pg_catalog.to_regprocedure('housing_cache.last_commit_lsn()') AS p "
"WHERE p IS NOT NULL), false)";
static const char commit_lsn_sql[] = "SELECT housing_cache.last_commit_lsn()::text";

/*
 * The read database: after a connection to it failed, reads go straight to
 * the primary for REPLICA_RETRY_S seconds before it is tried again, so that
 * a standby that is down costs each read nothing.
 */
#define REPLICA_RETRY_S 1.0
static _Atomic double replica_retry_at;
static atomic_bool replica_down;

typedef struct Arg
{
	char	   *name;
	char	   *value;			/* NULL: SQL NULL */
} Arg;

typedef struct Args
{
	Arg			a[MAX_ARGS];
	int			n;
} Args;

static void
args_free(Args *args)
{
	for (int i = 0; i < args->n; i++)
	{
		free(args->a[i].name);
		free(args->a[i].value);
	}
	args->n = 0;
}

/* --- schema cache -------------------------------------------------------- */

/* Is housing_cache.last_commit_lsn() there for us?  Logged when it changes. */
static void
check_commit_lsn_fn(PGconn *conn, bool first)
{
	PGresult   *r = PQexec(conn, commit_lsn_check_sql);
	bool		found;

	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
	{
		PQclear(r);
		return;					/* keep what we knew */
	}
	found = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
	PQclear(r);
	if (atomic_exchange(&commit_lsn_fn, found) != found || first)
		log_msg(found ? "writes answer X-Commit-LSN (housing_cache.last_commit_lsn())"
				: "no X-Commit-LSN: housing_cache.last_commit_lsn() is missing or not executable");
}

static Schema *
load_schema_now(bool first)
{
	PGconn	   *conn;
	int			slot;
	Schema	   *s;

	if (pool_checkout(settings.pool, settings.pool_timeout_ms, false, &conn, &slot) != POOL_OK)
		return NULL;
	s = schema_load(conn, settings.schema);
	if (s != NULL)
		check_commit_lsn_fn(conn, first);
	pool_release(settings.pool, slot, PQstatus(conn) != CONNECTION_OK);
	return s;
}

bool
api_init(const ApiConfig *conf)
{
	settings = *conf;
	schema = load_schema_now(true);
	return schema != NULL;
}

void
api_reload_schema(const char *why)
{
	Schema	   *s,
			   *old;

	pthread_mutex_lock(&reload_lock);
	last_reload = mono_now();
	s = load_schema_now(false);
	if (s == NULL)
	{
		pthread_mutex_unlock(&reload_lock);
		log_msg("schema cache reload (%s) failed; keeping the old one", why);
		return;
	}
	pthread_rwlock_wrlock(&schema_lock);
	old = schema;
	schema = s;
	pthread_rwlock_unlock(&schema_lock);
	pthread_mutex_unlock(&reload_lock);
	schema_free(old);
	log_msg("schema cache reloaded (%s)", why);
}

void
api_shutdown(void)
{
	schema_free(schema);
	schema = NULL;
}

/* A reload on a lookup miss, at most once every 2 seconds. */
static bool
maybe_reload_on_miss(void)
{
	bool		go;

	pthread_mutex_lock(&reload_lock);
	go = mono_now() - last_reload >= 2.0;
	pthread_mutex_unlock(&reload_lock);
	if (go)
		api_reload_schema("unknown function");
	return go;
}

/* --- error replies -------------------------------------------------------- */

/*
 * "This standby has not replayed up to the request's X-Min-LSN yet" (within
 * housing_cache.min_lsn_wait_ms): SQLSTATE 53HC0 from housing_cache.  A 503
 * with Retry-After, and a reason to ask the primary.
 */
static bool
is_replay_lag(const char *st)
{
	return st != NULL && strcmp(st, "53HC0") == 0;
}

/* PostgREST's mapping of SQLSTATEs to HTTP statuses (Error.hs, v13). */
static unsigned
pg_error_status(const char *st, bool authed)
{
	if (st == NULL || strlen(st) != 5)
		return 500;
	if (strncmp(st, "08", 2) == 0)
		return 503;
	if (strncmp(st, "09", 2) == 0)
		return 500;
	if (strncmp(st, "0L", 2) == 0 || strncmp(st, "0P", 2) == 0)
		return 403;
	if (strcmp(st, "23503") == 0 || strcmp(st, "23505") == 0)
		return 409;
	if (strcmp(st, "25006") == 0)
		return 405;
	if (strncmp(st, "25", 2) == 0)
		return 500;
	if (strncmp(st, "28", 2) == 0)
		return 403;
	if (strncmp(st, "2D", 2) == 0 || strncmp(st, "38", 2) == 0 ||
		strncmp(st, "39", 2) == 0 || strncmp(st, "3B", 2) == 0 ||
		strncmp(st, "40", 2) == 0)
		return 500;
	if (strcmp(st, "53400") == 0)
		return 500;
	if (strncmp(st, "53", 2) == 0)
		return 503;
	if (strncmp(st, "54", 2) == 0 || strncmp(st, "55", 2) == 0)
		return 500;
	if (strcmp(st, "57P01") == 0)
		return 503;
	if (strncmp(st, "57", 2) == 0 || strncmp(st, "58", 2) == 0 ||
		strncmp(st, "F0", 2) == 0 || strncmp(st, "HV", 2) == 0)
		return 500;
	if (strcmp(st, "P0001") == 0)
		return 400;
	if (strncmp(st, "P0", 2) == 0 || strncmp(st, "XX", 2) == 0)
		return 500;
	if (strcmp(st, "42883") == 0 || strcmp(st, "42P01") == 0)
		return 404;
	if (strcmp(st, "42P17") == 0)
		return 500;
	if (strcmp(st, "42501") == 0)
		return authed ? 403 : 401;
	if (is_replay_lag(st))
		return 503;
	if (strncmp(st, "PT", 2) == 0)
	{
		/* RAISE SQLSTATE 'PT404': the status is in the code */
		if (isdigit((unsigned char) st[2]) && isdigit((unsigned char) st[3]) &&
			isdigit((unsigned char) st[4]))
		{
			unsigned	s = (unsigned) atoi(st + 2);

			if (s >= 100 && s <= 599)
				return s;
		}
		return 500;
	}
	return 400;					/* 22xxx, 42xxx, 23xxx (others), ... */
}

/* --- request parsing ----------------------------------------------------- */

static bool
is_reserved_param(const char *k)
{
	static const char *const reserved[] = {"select", "order", "limit", "offset",
	"columns", "on_conflict", "and", "or", "not", NULL};

	for (int i = 0; reserved[i]; i++)
		if (strcmp(k, reserved[i]) == 0)
			return true;
	return false;
}

static bool
args_has(const Args *args, const char *name)
{
	for (int i = 0; i < args->n; i++)
		if (strcmp(args->a[i].name, name) == 0)
			return true;
	return false;
}

/* ?a=1&b=x: strict percent-decoding, '+' is a space. */
static bool
parse_query(const char *q, Args *args, char *err, size_t errlen)
{
	const char *p = q;

	while (p && *p)
	{
		const char *amp = strchr(p, '&');
		size_t		seglen = amp ? (size_t) (amp - p) : strlen(p);
		const char *eq = memchr(p, '=', seglen);
		char	   *k,
				   *v;
		size_t		klen,
					vlen;

		if (seglen == 0)
		{
			p = amp ? amp + 1 : NULL;
			continue;
		}
		if (eq == NULL)
		{
			snprintf(err, errlen, "malformed query parameter \"%.*s\": expected name=value",
					 (int) (seglen > 64 ? 64 : seglen), p);
			return false;
		}
		k = pct_decode(p, (size_t) (eq - p), true, &klen);
		v = pct_decode(eq + 1, seglen - (size_t) (eq - p) - 1, true, &vlen);
		if (k == NULL || v == NULL || !valid_utf8(k, klen) || !valid_utf8(v, vlen))
		{
			free(k);
			free(v);
			snprintf(err, errlen, "malformed percent-encoding or UTF-8 in the query string");
			return false;
		}
		if (klen == 0)
		{
			free(k);
			free(v);
			snprintf(err, errlen, "empty query parameter name");
			return false;
		}
		if (is_reserved_param(k))
		{
			snprintf(err, errlen, "query parameter \"%s\" is not supported on /rpc by this server", k);
			free(k);
			free(v);
			return false;
		}
		if (args_has(args, k))
		{
			snprintf(err, errlen, "query parameter \"%.64s\" is given more than once", k);
			free(k);
			free(v);
			return false;
		}
		if (args->n >= MAX_ARGS)
		{
			free(k);
			free(v);
			snprintf(err, errlen, "too many query parameters (at most %d)", MAX_ARGS);
			return false;
		}
		args->a[args->n].name = k;
		args->a[args->n].value = v;
		args->n++;
		p = amp ? amp + 1 : NULL;
	}
	return true;
}

/* {"name": value, ...}: strings as their text, numbers and booleans as
 * written, objects and arrays as JSON text, null as SQL NULL. */
static bool
parse_body(const char *body, size_t len, Args *args, char *err, size_t errlen)
{
	JsonValue  *root;
	const char *jerr = NULL;
	size_t		i = 0;

	while (i < len && (body[i] == ' ' || body[i] == '\t' || body[i] == '\r' || body[i] == '\n'))
		i++;
	if (i == len)
		return true;			/* empty body: no arguments */
	root = json_parse(body, len, &jerr);
	if (root == NULL)
	{
		snprintf(err, errlen, "Empty or invalid json: %s", jerr);
		return false;
	}
	if (root->type != JSON_OBJECT)
	{
		json_free(root);
		snprintf(err, errlen, "the request body must be a JSON object of argument names and values");
		return false;
	}
	for (JsonValue *m = root->child; m; m = m->next)
	{
		char	   *value;

		if (memchr(m->key, '\0', m->key_len) != NULL || m->key_len == 0)
		{
			json_free(root);
			snprintf(err, errlen, "invalid argument name in the request body");
			return false;
		}
		if (args_has(args, m->key))
		{
			snprintf(err, errlen, "argument \"%.64s\" is given more than once", m->key);
			json_free(root);
			return false;
		}
		if (args->n >= MAX_ARGS)
		{
			json_free(root);
			snprintf(err, errlen, "too many arguments (at most %d)", MAX_ARGS);
			return false;
		}
		switch (m->type)
		{
			case JSON_NULL:
				value = NULL;
				break;
			case JSON_STRING:
				value = xstrndup(m->str, m->str_len);
				break;
			case JSON_TRUE:
				value = xstrdup("true");
				break;
			case JSON_FALSE:
				value = xstrdup("false");
				break;
			default:
				value = xstrndup(m->raw, m->raw_len);
				break;
		}
		args->a[args->n].name = xstrndup(m->key, m->key_len);
		args->a[args->n].value = value;
		args->n++;
	}
	json_free(root);
	return true;
}

typedef struct HeaderCtx
{
	Buf		   *b;
	bool		first;
	const char *cookie;
} HeaderCtx;

static enum MHD_Result
collect_header(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	HeaderCtx  *h = cls;
	char		lower[256];
	size_t		n = strlen(key);

	(void) kind;
	if (n >= sizeof(lower))
		n = sizeof(lower) - 1;
	for (size_t i = 0; i < n; i++)
		lower[i] = (char) tolower((unsigned char) key[i]);
	lower[n] = '\0';
	if (strcmp(lower, "authorization") == 0)
		return MHD_YES;
	if (strcmp(lower, "cookie") == 0 && h->cookie == NULL)
		h->cookie = value;
	if (!h->first)
		buf_putc(h->b, ',');
	h->first = false;
	buf_json_str(h->b, lower, n);
	buf_putc(h->b, ':');
	buf_json_cstr(h->b, value ? value : "");
	return MHD_YES;
}

/* Cookie: a=1; b=2  ->  {"a":"1","b":"2"} */
static void
cookies_json(Buf *b, const char *cookie)
{
	const char *p = cookie;
	bool		first = true;

	buf_putc(b, '{');
	while (p && *p)
	{
		const char *end = strchr(p, ';');
		size_t		len = end ? (size_t) (end - p) : strlen(p);
		const char *eq = memchr(p, '=', len);

		while (len > 0 && *p == ' ')
		{
			p++;
			len--;
			if (eq && eq < p)
				eq = NULL;
		}
		if (eq && eq > p)
		{
			const char *v = eq + 1;
			size_t		vlen = len - (size_t) (v - p);

			if (!first)
				buf_putc(b, ',');
			first = false;
			buf_json_str(b, p, (size_t) (eq - p));
			buf_putc(b, ':');
			if (vlen >= 2 && v[0] == '"' && v[vlen - 1] == '"')
			{
				v++;
				vlen -= 2;
			}
			buf_json_str(b, v, vlen);
		}
		p = end ? end + 1 : NULL;
	}
	buf_putc(b, '}');
}

static void
quote_ident(Buf *b, const char *s)
{
	buf_putc(b, '"');
	for (; *s; s++)
	{
		if (*s == '"')
			buf_putc(b, '"');
		buf_putc(b, *s);
	}
	buf_putc(b, '"');
}

/* --- execution ----------------------------------------------------------- */

typedef struct ExecOut
{
	bool		ok;
	char	   *body;			/* NULL: SQL NULL */
	char	   *resp_headers;
	char	   *resp_status;
	/* on error */
	char	   *sqlstate;
	char	   *message;
	char	   *detail;
	char	   *hint;
	bool		broken;			/* the connection is unusable */
	bool		sent;			/* anything reached the server */
	char	   *commit_lsn;		/* after a write: housing_cache.last_commit_lsn() */
	bool		replica;		/* answered by the read database */
} ExecOut;

static void
exec_out_free(ExecOut *o)
{
	free(o->body);
	free(o->resp_headers);
	free(o->resp_status);
	free(o->sqlstate);
	free(o->message);
	free(o->detail);
	free(o->hint);
	free(o->commit_lsn);
	memset(o, 0, sizeof(*o));
}

static char *
dup_or_null(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

static void
record_error(ExecOut *o, const PGresult *r, PGconn *c)
{
	const char *msg;

	if (o->sqlstate || o->message)
		return;					/* keep the first error */
	o->sqlstate = dup_or_null(PQresultErrorField(r, PG_DIAG_SQLSTATE));
	msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
	if (msg == NULL)
	{
		/* a libpq-side error: the connection is gone */
		const char *e = PQerrorMessage(c);

		o->message = xstrndup(e, strcspn(e, "\n"));
	}
	else
		o->message = xstrdup(msg);
	o->detail = dup_or_null(PQresultErrorField(r, PG_DIAG_MESSAGE_DETAIL));
	o->hint = dup_or_null(PQresultErrorField(r, PG_DIAG_MESSAGE_HINT));
}

/* The index of sql among the connection's prepared calls, or -1. */
static int
cache_find(const StmtCache *cache, const char *sql)
{
	for (int i = 0; i < cache->n; i++)
		if (strcmp(cache->sql[i], sql) == 0)
			return i;
	return -1;
}

enum
{
	STEP_BEGIN, STEP_SET_CONFIG, STEP_PREPARE, STEP_CALL, STEP_COMMIT, STEP_LSN
};

#define MAX_STEPS 6

/*
 * Queue the transaction and the sync; steps[] gets what each result will
 * be.  The call is prepared on its first use on this connection, while the
 * cache has room, so that later requests skip parsing and planning.  With
 * want_lsn, the commit's LSN is asked for after COMMIT, in the same round
 * trip: it runs only if everything before it succeeded.
 */
static bool
pipeline_send(PGconn *c, const StmtCache *cache, bool readonly, const char *const *sc_params,
			  const char *main_sql, int nparams, const char *const *params, bool want_lsn,
			  int *steps, int *nsteps)
{
	int			idx = cache_find(cache, main_sql);
	bool		prepare = idx < 0 && cache->n < STMT_CACHE_SIZE;
	char		name[32] = "";

	if (prepare)
		idx = cache->n;
	if (idx >= 0)
		snprintf(name, sizeof(name), "hc_q%d", idx);

	*nsteps = 0;
	steps[(*nsteps)++] = STEP_BEGIN;
	steps[(*nsteps)++] = STEP_SET_CONFIG;
	if (prepare)
		steps[(*nsteps)++] = STEP_PREPARE;
	steps[(*nsteps)++] = STEP_CALL;
	steps[(*nsteps)++] = STEP_COMMIT;
	if (want_lsn)
		steps[(*nsteps)++] = STEP_LSN;
	return PQsendQueryPrepared(c, readonly ? STMT_BEGIN_RO : STMT_BEGIN_RW, 0, NULL, NULL, NULL, 0) &&
		PQsendQueryPrepared(c, STMT_SET_CONFIG, 7, sc_params, NULL, NULL, 0) &&
		(!prepare || PQsendPrepare(c, name, main_sql, nparams, NULL)) &&
		(idx >= 0
		 ? PQsendQueryPrepared(c, name, nparams, params, NULL, NULL, 0)
		 : PQsendQueryParams(c, main_sql, nparams, NULL, params, NULL, NULL, 0)) &&
		PQsendQueryPrepared(c, STMT_COMMIT, 0, NULL, NULL, NULL, 0) &&
		(!want_lsn || PQsendQueryParams(c, commit_lsn_sql, 0, NULL, NULL, NULL, NULL, 0)) &&
		PQpipelineSync(c);
}

/*
 * The commit's LSN, asked for after COMMIT: informative only, so that an
 * error here (the function is gone, not executable) fails nothing.
 */
static void
read_commit_lsn(const PGresult *r, ExecOut *o)
{
	const char *v;
	size_t		n;

	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1 || PQnfields(r) != 1 ||
		PQgetisnull(r, 0, 0))
		return;
	v = PQgetvalue(r, 0, 0);
	n = strlen(v);
	/* a pg_lsn's text: hex digits, one slash, hex digits */
	if (n > 0 && n < 32 && strspn(v, "0123456789ABCDEF/") == n && v[0] != '/' &&
		v[n - 1] != '/' && strchr(v, '/') != NULL && strchr(v, '/') == strrchr(v, '/'))
		o->commit_lsn = xstrdup(v);
}

/* The result of a step of the transaction into *o; *failed if it failed. */
static void
take_result(PGconn *c, StmtCache *cache, const char *main_sql, int step, const PGresult *r,
			ExecOut *o, bool *failed)
{
	switch (PQresultStatus(r))
	{
		case PGRES_COMMAND_OK:
			if (step == STEP_PREPARE)
				cache->sql[cache->n++] = xstrdup(main_sql);
			break;
		case PGRES_TUPLES_OK:
			if (step == STEP_CALL)
			{
				if (PQntuples(r) != 1 || PQnfields(r) != 3)
				{
					*failed = true;
					o->sqlstate = xstrdup("XX000");
					o->message = xstrdup("the function call returned no row");
					break;
				}
				o->body = PQgetisnull(r, 0, 0) ? NULL : xstrdup(PQgetvalue(r, 0, 0));
				o->resp_headers = PQgetisnull(r, 0, 1) ? NULL : xstrdup(PQgetvalue(r, 0, 1));
				o->resp_status = PQgetisnull(r, 0, 2) ? NULL : xstrdup(PQgetvalue(r, 0, 2));
			}
			break;
		case PGRES_PIPELINE_ABORTED:
			*failed = true;
			break;
		default:
			*failed = true;
			record_error(o, r, c);
			break;
	}
}

/*
 * Read the result of one step into *o; *failed once a step of the
 * transaction failed.  False when the connection broke (o->broken): what
 * follows in the pipeline is lost.
 */
static bool
pipeline_read_step(PGconn *c, StmtCache *cache, const char *main_sql, int step,
				   ExecOut *o, bool *failed)
{
	PGresult   *r = PQgetResult(c);

	if (r == NULL)
	{
		o->broken = true;
		return false;
	}
	if (step == STEP_LSN)
		read_commit_lsn(r, o);
	else
		take_result(c, cache, main_sql, step, r, o, failed);
	PQclear(r);
	/* each query's results end with a NULL */
	r = PQgetResult(c);
	if (r != NULL)
	{
		PQclear(r);
		o->broken = true;
		return false;
	}
	if (PQstatus(c) != CONNECTION_OK)
	{
		o->broken = true;
		return false;
	}
	return true;
}

static void
exec_pipeline(PGconn *c, StmtCache *cache, bool readonly, const char *const *sc_params,
			  const char *main_sql, int nparams, const char *const *params, bool want_lsn,
			  ExecOut *o)
{
	bool		failed = false;
	int			steps[MAX_STEPS];
	int			nsteps = 0;
	PGresult   *r;

	memset(o, 0, sizeof(*o));
	if (PQstatus(c) != CONNECTION_OK || !PQenterPipelineMode(c))
	{
		o->broken = true;
		return;
	}
	if (!pipeline_send(c, cache, readonly, sc_params, main_sql, nparams, params, want_lsn,
					   steps, &nsteps))
	{
		o->broken = true;
		o->message = xstrndup(PQerrorMessage(c), strcspn(PQerrorMessage(c), "\n"));
		return;
	}
	o->sent = true;
	for (int i = 0; i < nsteps; i++)
		if (!pipeline_read_step(c, cache, main_sql, steps[i], o, &failed))
		{
			/* lost while asking for the LSN: the transaction did commit */
			if (steps[i] == STEP_LSN && !failed)
				o->ok = true;
			return;
		}
	r = PQgetResult(c);
	if (r == NULL || PQresultStatus(r) != PGRES_PIPELINE_SYNC)
	{
		PQclear(r);
		o->broken = true;
		return;
	}
	PQclear(r);
	if (!PQexitPipelineMode(c))
	{
		o->broken = true;
		return;
	}
	/* an error left the transaction open: COMMIT was skipped */
	if (PQtransactionStatus(c) != PQTRANS_IDLE)
	{
		r = PQexec(c, "ROLLBACK");
		if (PQresultStatus(r) != PGRES_COMMAND_OK)
			o->broken = true;
		PQclear(r);
	}
	o->ok = !failed && o->message == NULL && o->sqlstate == NULL;
	if (!o->ok && o->message == NULL)
	{
		o->sqlstate = xstrdup("XX000");
		o->message = xstrdup("the transaction failed");
	}
}

/* --- response ------------------------------------------------------------ */

static bool
header_forbidden(const char *name)
{
	return strcasecmp(name, "Content-Length") == 0 ||
		strcasecmp(name, "Transfer-Encoding") == 0 ||
		strcasecmp(name, "Connection") == 0;
}

/*
 * response.headers: a JSON array of one-key objects ([{"ETag": "..."}]);
 * false (nothing added) if it is anything else.
 */
static bool
apply_response_headers(struct MHD_Response *resp, const char *json, bool *has_ctype)
{
	const char *err;
	JsonValue  *root = json_parse(json, strlen(json), &err);
	bool		ok = true;

	if (root == NULL || root->type != JSON_ARRAY)
	{
		json_free(root);
		return false;
	}
	for (JsonValue *e = root->child; e && ok; e = e->next)
	{
		if (e->type != JSON_OBJECT)
		{
			ok = false;
			break;
		}
		for (JsonValue *m = e->child; m; m = m->next)
		{
			if (m->type != JSON_STRING || m->key_len == 0 ||
				strlen(m->key) != m->key_len || strlen(m->str) != m->str_len)
			{
				ok = false;
				break;
			}
			if (header_forbidden(m->key))
				continue;
			if (strcasecmp(m->key, "Content-Type") == 0)
				*has_ctype = true;
			if (MHD_add_response_header(resp, m->key, m->str) != MHD_YES)
			{
				ok = false;
				break;
			}
		}
	}
	json_free(root);
	return ok;
}

static bool
parse_status(const char *s, unsigned *out)
{
	unsigned	v = 0;
	int			n = 0;

	while (*s == ' ')
		s++;
	for (; isdigit((unsigned char) *s) && n < 4; s++, n++)
		v = v * 10 + (unsigned) (*s - '0');
	while (*s == ' ')
		s++;
	if (*s != '\0' || n != 3 || v < 100 || v > 599)
		return false;
	*out = v;
	return true;
}

static Reply
reply_from_exec(RetKind ret, ExecOut *o)
{
	Reply		rep = {0, NULL};
	unsigned	status = ret == RET_VOID ? 204 : 200;
	bool		has_ctype = false;
	bool		no_body;
	char	   *body;
	size_t		body_len;

	if (o->resp_status && !parse_status(o->resp_status, &status))
		return reply_json_error(500, "PGRST112",
								"Invalid response.status: the status code must be a number between 100 and 599",
								o->resp_status, NULL);
	no_body = status == 204 || status == 304 || status < 200;
	if (no_body)
	{
		body = NULL;
		body_len = 0;
	}
	else if (o->body)
	{
		body = o->body;
		body_len = strlen(body);
		o->body = NULL;
	}
	else
	{
		body = xstrdup("null");
		body_len = 4;
	}
	rep.resp = MHD_create_response_from_buffer(body_len, body ? body : (void *) "",
											   body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
	if (rep.resp == NULL)
	{
		free(body);
		return reply_json_error(500, "HC500", "out of memory", NULL, NULL);
	}
	if (o->resp_headers && !apply_response_headers(rep.resp, o->resp_headers, &has_ctype))
	{
		MHD_destroy_response(rep.resp);
		return reply_json_error(500, "PGRST111",
								"Invalid response.headers: it must be a JSON array of objects of header names and string values",
								NULL, NULL);
	}
	if (!has_ctype && !no_body)
		MHD_add_response_header(rep.resp, "Content-Type", "application/json; charset=utf-8");
	rep.status = status;
	return rep;
}

static Reply
reply_pg_error(ExecOut *o, bool authed)
{
	unsigned	status = pg_error_status(o->sqlstate, authed);

	return reply_json_error(status, o->sqlstate ? o->sqlstate : "XX000",
							o->message ? o->message : "unknown error", o->detail, o->hint);
}

static Reply
not_found_function(const char *fn, const Args *args)
{
	Buf			msg,
				det;
	const char *names[MAX_ARGS];
	Reply		rep;

	/* PostgREST lists the names sorted */
	for (int i = 0; i < args->n; i++)
		names[i] = args->a[i].name;
	for (int i = 1; i < args->n; i++)
		for (int j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--)
		{
			const char *t = names[j];

			names[j] = names[j - 1];
			names[j - 1] = t;
		}
	buf_init(&msg);
	buf_init(&det);
	buf_printf(&msg, "Could not find the function %s.%s(", settings.schema, fn);
	buf_printf(&det, "Searched for the function %s.%s with ", settings.schema, fn);
	if (args->n == 0)
		buf_puts(&det, "no parameters");
	else
		buf_puts(&det, "parameters ");
	for (int i = 0; i < args->n; i++)
	{
		buf_printf(&msg, "%s%s", i ? ", " : "", names[i]);
		buf_printf(&det, "%s%s", i ? ", " : "", names[i]);
	}
	buf_puts(&msg, ") in the schema cache");
	buf_puts(&det, ", but no matches were found in the schema cache.");
	rep = reply_json_error(404, "PGRST202", msg.data, det.data, NULL);
	buf_free(&msg);
	buf_free(&det);
	return rep;
}

/* --- the handler: parse, authenticate, plan and execute, reply ----------- */

/* One call of /api/rpc/<fn>, filled in by the steps of api_handle. */
typedef struct ApiRequest
{
	/* parse_request */
	const char *method;
	char	   *fn;				/* decoded */
	bool		readonly;		/* GET and HEAD: a READ ONLY transaction */
	bool		edge_fetch;		/* X-HC-Edge-Fetch: 1, the edge's fetch:
								 * the primary answers */
	Args		args;
	Buf			headers;		/* request.headers, a JSON object */
	Buf			cookies;		/* request.cookies, a JSON object */
	Buf			rpc_path;		/* request.path */
	/* authenticate */
	char	   *role;
	char	   *claims;			/* request.jwt.claims, JSON */
	bool		authed;			/* by a token for a role other than the
								 * anonymous one: 42501 is a 403, not a 401 */
	/* plan_call */
	RetKind		ret;			/* the function's: void answers 204 */
	Buf			sql;
	int			nparams;
	const char *params[MAX_ARGS];	/* values from args, in the call's order */
	Buf			search_path;
} ApiRequest;

static void
api_request_init(ApiRequest *req)
{
	memset(req, 0, sizeof(*req));
	buf_init(&req->headers);
	buf_init(&req->cookies);
	buf_init(&req->rpc_path);
	buf_init(&req->sql);
	buf_init(&req->search_path);
}

static void
api_request_free(ApiRequest *req)
{
	args_free(&req->args);
	free(req->fn);
	free(req->role);
	free(req->claims);
	buf_free(&req->headers);
	buf_free(&req->cookies);
	buf_free(&req->rpc_path);
	buf_free(&req->sql);
	buf_free(&req->search_path);
}

/*
 * The arguments: the query string of a GET or HEAD; the body of a POST,
 * where a query string is refused rather than silently ignored.
 */
static bool
parse_arguments(const char *query, const Buf *body, bool form, ApiRequest *req,
				Reply *fail)
{
	char		err[512];

	if (req->readonly)
	{
		if (parse_query(query, &req->args, err, sizeof(err)))
			return true;
		*fail = reply_json_error(400, "PGRST100", err, NULL, NULL);
		return false;
	}
	if (query && *query)
	{
		*fail = reply_json_error(400, "PGRST100",
								 "with POST, arguments go in the JSON body, not in the query string",
								 NULL, NULL);
		return false;
	}
	if (form)
	{
		/* parse_query stops at a NUL: it would drop what follows */
		bool		has_nul = body->len > 0 && strlen(body->data) != body->len;

		if (!has_nul && parse_query(body->data ? body->data : "", &req->args, err, sizeof(err)))
			return true;
		*fail = reply_json_error(400, "PGRST100", has_nul ? "NUL byte in the request body" : err,
								 NULL, NULL);
		return false;
	}
	if (parse_body(body->data ? body->data : "", body->len, &req->args, err, sizeof(err)))
		return true;
	*fail = reply_json_error(400, "PGRST102", err, NULL, NULL);
	return false;
}

/*
 * Step 1, parse: the function's name from the path, the method, the
 * arguments, and the headers and cookies the function can read.  False,
 * with *fail set, when this is not a call the server can make.
 */
static bool
parse_request(struct MHD_Connection *c, const char *method, const char *path,
			  size_t path_len, const char *query, const Buf *body, bool form,
			  ApiRequest *req, Reply *fail)
{
	size_t		fn_len;
	HeaderCtx	hc = {&req->headers, true, NULL};

	req->method = method;
	if (path_len < 9 || strncmp(path, "/api/rpc/", 9) != 0)
	{
		*fail = reply_json_error(404, "PGRST125", "Invalid path specified in request URL", NULL, NULL);
		return false;
	}
	req->fn = pct_decode(path + 9, path_len - 9, false, &fn_len);
	if (req->fn == NULL || fn_len == 0 || fn_len > 63 || strchr(req->fn, '/') ||
		!valid_utf8(req->fn, fn_len))
	{
		*fail = reply_json_error(404, "PGRST125", "Invalid path specified in request URL", NULL, NULL);
		return false;
	}
	if (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0)
		req->readonly = true;
	else if (strcmp(method, "POST") == 0)
		req->readonly = false;
	else
	{
		*fail = reply_json_error(405, "HC405", "only GET, HEAD and POST are allowed on /rpc", NULL, NULL);
		if (fail->resp)
			MHD_add_response_header(fail->resp, "Allow", "GET, HEAD, POST");
		return false;
	}
	if (!parse_arguments(query, body, form, req, fail))
		return false;
	{
		const char *ef = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-HC-Edge-Fetch");

		req->edge_fetch = ef != NULL && strcmp(ef, "1") == 0;
	}

	buf_putc(&req->headers, '{');
	MHD_get_connection_values(c, MHD_HEADER_KIND, collect_header, &hc);
	buf_putc(&req->headers, '}');
	cookies_json(&req->cookies, hc.cookie);
	buf_append(&req->rpc_path, path + 4, path_len - 4);	/* as PostgREST sees it: /rpc/fn */
	return true;
}

/*
 * Step 2, authenticate: Authorization: Bearer <jwt> gives the role and the
 * claims, its absence the anonymous role.  A token that does not verify,
 * or claims a role outside --jwt-roles, is a 401 (never a fallback to the
 * anonymous role, which would hide an expired token).
 */
static bool
authenticate(struct MHD_Connection *c, ApiRequest *req, Reply *fail)
{
	const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
	const char *err = NULL;
	JwtResult	jr;
	Buf			b;

	req->authed = false;
	if (h == NULL)
	{
		buf_init(&b);
		buf_puts(&b, "{\"role\":");
		buf_json_cstr(&b, settings.anon_role);
		buf_putc(&b, '}');
		req->role = xstrdup(settings.anon_role);
		req->claims = buf_steal(&b, NULL);
		return true;
	}
	if (strncasecmp(h, "Bearer ", 7) != 0)
		err = "the Authorization header must be: Bearer <token>";
	else
	{
		const char *tok = h + 7;

		while (*tok == ' ')
			tok++;
		if (jwt_verify(tok, settings.jwt_secret, settings.jwt_secret_len, time(NULL), &jr, &err))
		{
			bool		allowed = false;

			for (int i = 0; settings.jwt_roles[i]; i++)
				if (strcmp(settings.jwt_roles[i], jr.role) == 0)
					allowed = true;
			if (allowed)
			{
				req->role = jr.role;
				req->claims = jr.claims;
				req->authed = strcmp(jr.role, settings.anon_role) != 0;
				return true;
			}
			jwt_result_free(&jr);
			err = "JWT role claim is not an allowed role";
		}
	}
	*fail = reply_json_error(401, "PGRST301", err, NULL, NULL);
	if (fail->resp)
	{
		char		www[256];

		/* a quote would end the quoted-string of the header */
		snprintf(www, sizeof(www), "Bearer error=\"invalid_token\", error_description=\"%s\"",
				 strchr(err, '"') ? "invalid token" : err);
		MHD_add_response_header(fail->resp, "WWW-Authenticate", www);
	}
	return false;
}

/*
 * The role of a request that is not a call (the event stream), checked as
 * a call's is: the same tokens, the same 401s.
 */
bool
api_authenticate(struct MHD_Connection *c, char **role, Reply *fail)
{
	ApiRequest	req;

	api_request_init(&req);
	if (!authenticate(c, &req, fail))
	{
		api_request_free(&req);
		return false;
	}
	*role = req.role;
	req.role = NULL;
	api_request_free(&req);
	return true;
}

/*
 * The SQL of the call of f, its arguments named and cast to the declared
 * types, in declaration order.  Runs under the schema's read lock: f
 * belongs to the cache, so the names and types are copied into the SQL
 * before a reload can free them.
 */
static void
build_call_sql(const Func *f, ApiRequest *req)
{
	const char *vexpr;
	bool		first = true;

	req->ret = f->ret;
	if (f->retset)
		vexpr = f->ret == RET_COMPOSITE ? "coalesce(json_agg(_hc), '[]')::text"
			: "coalesce(json_agg(_hc.v), '[]')::text";
	else
		vexpr = f->ret == RET_JSON ? "_hc.v::text"
			: f->ret == RET_SCALAR ? "to_json(_hc.v)::text"
			: f->ret == RET_COMPOSITE ? "row_to_json(_hc)::text"
			: "NULL::text";
	buf_printf(&req->sql, "SELECT %s, nullif(current_setting('response.headers', true), ''), "
			   "nullif(current_setting('response.status', true), '') FROM ", vexpr);
	quote_ident(&req->sql, settings.schema);
	buf_putc(&req->sql, '.');
	quote_ident(&req->sql, f->name);
	buf_putc(&req->sql, '(');
	for (int k = 0; k < f->nargs; k++)
		for (int i = 0; i < req->args.n; i++)
			if (strcmp(f->args[k].name, req->args.a[i].name) == 0)
			{
				if (!first)
					buf_puts(&req->sql, ", ");
				first = false;
				quote_ident(&req->sql, f->args[k].name);
				buf_printf(&req->sql, " := $%d::%s", req->nparams + 1, f->args[k].type);
				req->params[req->nparams++] = req->args.a[i].value;
			}
	buf_puts(&req->sql, f->ret == RET_COMPOSITE || f->ret == RET_VOID ? ") _hc" : ") _hc(v)");
}

/*
 * Step 3a, plan: find the function the name and the argument names
 * designate, and build its call.  A name the cache does not know reloads
 * the cache (at most every 2 s) and looks again: the function may have
 * been created since the server started.
 */
static bool
plan_call(ApiRequest *req, Reply *fail)
{
	bool		found = false;
	bool		ambiguous = false;

	for (int attempt = 0; attempt < 2; attempt++)
	{
		const char *names[MAX_ARGS];
		const Func *f;
		bool		known;

		for (int i = 0; i < req->args.n; i++)
			names[i] = req->args.a[i].name;
		pthread_rwlock_rdlock(&schema_lock);
		f = schema_find(schema, req->fn, names, req->args.n, &ambiguous);
		if (f != NULL)
			build_call_sql(f, req);
		found = f != NULL;
		known = found || schema_has(schema, req->fn);
		pthread_rwlock_unlock(&schema_lock);
		if (found || ambiguous || known || attempt == 1 || !maybe_reload_on_miss())
			break;
	}
	if (ambiguous)
	{
		*fail = reply_json_error(300, "PGRST203",
								 "Could not choose the best candidate function between overloaded functions",
								 NULL, "Try renaming the parameters or the function itself in the database so function overloading can be resolved");
		return false;
	}
	if (!found)
	{
		*fail = not_found_function(req->fn, &req->args);
		return false;
	}
	quote_ident(&req->search_path, settings.schema);
	buf_puts(&req->search_path, ", \"public\"");
	if (req->sql.oom || req->headers.oom || req->cookies.oom || req->search_path.oom ||
		req->rpc_path.oom)
	{
		*fail = reply_json_error(500, "HC500", "out of memory", NULL, NULL);
		return false;
	}
	return true;
}

/*
 * The transaction on a connection of `pool`, in one round trip.  A
 * connection found dead (the database restarted) is retried once on a
 * fresh one, for a write only if nothing reached the server: it may have
 * been applied.  On POOL_OK, *o holds the outcome.
 */
static PoolStatus
execute_on(Pool *pool, const ApiRequest *req, bool want_lsn, ExecOut *o)
{
	const char *sc_params[7] = {
		req->search_path.data, req->role, req->claims, req->method,
		req->rpc_path.data, req->headers.data, req->cookies.data
	};

	for (int attempt = 0;; attempt++)
	{
		PGconn	   *conn;
		int			slot;
		PoolStatus	ps = pool_checkout(pool, settings.pool_timeout_ms, attempt > 0, &conn, &slot);

		if (ps != POOL_OK)
			return ps;
		exec_pipeline(conn, pool_stmt_cache(pool, slot), req->readonly, sc_params,
					  req->sql.data, req->nparams, req->params, want_lsn, o);
		pool_release(pool, slot, o->broken);
		if (o->broken && (req->readonly || !o->sent) && attempt == 0)
		{
			exec_out_free(o);
			continue;
		}
		return POOL_OK;
	}
}

/* The read database is there to be tried (none configured: never). */
static bool
replica_usable(void)
{
	return settings.read_pool != NULL && mono_now() >= atomic_load(&replica_retry_at);
}

/* The read database failed to connect (down), or answered (up). */
static void
replica_seen(bool down)
{
	if (down)
		atomic_store(&replica_retry_at, mono_now() + REPLICA_RETRY_S);
	if (atomic_load(&replica_down) == down || atomic_exchange(&replica_down, down) == down)
		return;
	if (down)
		log_msg("read database unavailable: reads go to the primary (tried again every %.0f s)",
				REPLICA_RETRY_S);
	else
		log_msg("read database available: reads go to it again");
}

/*
 * An answer of the read database that the primary may give instead: none
 * (the connection failed), 53HC0 (it has not replayed the request's
 * X-Min-LSN within housing_cache.min_lsn_wait_ms), or a query canceled by
 * a conflict with recovery (40001, 40P01).
 */
static bool
replica_cannot_answer(const ExecOut *o)
{
	if (o->ok)
		return false;
	if (o->broken)
		return true;
	return is_replay_lag(o->sqlstate) ||
		(o->sqlstate != NULL &&
		 (strcmp(o->sqlstate, "40001") == 0 || strcmp(o->sqlstate, "40P01") == 0));
}

/*
 * Step 3b, execute: a read on the read database when there is one, and
 * once more on the primary if it cannot answer; a write on the primary,
 * with the commit's LSN when housing_cache.last_commit_lsn() exists.  A
 * busy read pool (POOL_TIMEOUT) is not a reason to load the primary.
 *
 * A read the HTTP edge fetches for its cache (X-HC-Edge-Fetch: 1) goes to
 * the primary: the edge keeps only answers stamped with the engine's
 * message numbers (X-HC-Stamp), which a standby's answers do not carry,
 * so that the standby would only make the edge's misses uncacheable.
 */
static PoolStatus
execute_call(const ApiRequest *req, ExecOut *o)
{
	PoolStatus	ps;

	if (req->readonly && !req->edge_fetch && replica_usable())
	{
		ps = execute_on(settings.read_pool, req, false, o);
		if (ps == POOL_UNAVAILABLE)
			replica_seen(true);
		else if (ps == POOL_OK && !o->broken)
			replica_seen(false);
		if (ps == POOL_TIMEOUT || (ps == POOL_OK && !replica_cannot_answer(o)))
		{
			o->replica = true;
			return ps;
		}
		exec_out_free(o);
	}
	return execute_on(settings.pool, req, !req->readonly && atomic_load(&commit_lsn_fn), o);
}

/*
 * Where an answer of the database came from (X-Served-By), and after a
 * write, its commit's LSN (X-Commit-LSN): a client that sends it back as
 * X-Min-LSN reads nothing older than its write, from a standby too.
 */
static Reply
with_origin(Reply rep, const ExecOut *o)
{
	if (rep.resp == NULL)
		return rep;
	MHD_add_response_header(rep.resp, "X-Served-By", o->replica ? "replica" : "primary");
	if (o->ok && o->commit_lsn)
		MHD_add_response_header(rep.resp, "X-Commit-LSN", o->commit_lsn);
	return rep;
}

/*
 * Step 4, reply: the function's result with the status and headers it
 * set, or the error, with PostgREST's codes.  Retry-After on a 503 from
 * the pool or for replay lag: it is a matter of moments, not of the request.
 */
static Reply
reply_outcome(PoolStatus ps, const ApiRequest *req, ExecOut *o)
{
	Reply		rep;

	if (ps == POOL_TIMEOUT)
	{
		rep = reply_json_error(503, "PGRST003",
							   "Timed out acquiring connection from connection pool.", NULL, NULL);
		if (rep.resp)
			MHD_add_response_header(rep.resp, "Retry-After", "1");
		return rep;
	}
	if (ps == POOL_UNAVAILABLE)
	{
		rep = reply_json_error(503, "PGRST001", "Database client error. Retrying the connection.",
							   NULL, NULL);
		if (rep.resp)
			MHD_add_response_header(rep.resp, "Retry-After", "1");
		return rep;
	}
	if (o->ok)
		return with_origin(reply_from_exec(req->ret, o), o);
	if (o->broken && o->sqlstate == NULL)
		return reply_json_error(503, "PGRST001", "Database client error. Retrying the connection.",
								o->message, NULL);
	rep = with_origin(reply_pg_error(o, req->authed), o);
	if (rep.resp && is_replay_lag(o->sqlstate))
		MHD_add_response_header(rep.resp, "Retry-After", "1");
	return rep;
}

/*
 * The steps in order; the first that fails has set the reply.  Everything
 * the steps allocate hangs off req and o, so that every exit frees it.
 */
Reply
api_handle(struct MHD_Connection *c, const char *method, const char *path, size_t path_len,
		   const char *query, const Buf *body, bool form)
{
	ApiRequest	req;
	ExecOut		o;
	Reply		rep = {0, NULL};

	api_request_init(&req);
	memset(&o, 0, sizeof(o));
	if (parse_request(c, method, path, path_len, query, body, form, &req, &rep) &&
		authenticate(c, &req, &rep) &&
		plan_call(&req, &rep))
		rep = reply_outcome(execute_call(&req, &o), &req, &o);
	exec_out_free(&o);
	api_request_free(&req);
	return rep;
}
