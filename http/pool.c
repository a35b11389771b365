/*
 * A fixed pool of libpq connections: checkout under a mutex, waiting on a
 * condition variable for at most a bounded time; broken connections are
 * re-established at the next checkout.
 */
#include "hc_http.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

/* Prepared on every connection as STMT_SET_CONFIG; api.c binds its 7 values. */
const char set_config_sql[] =
"SELECT set_config('search_path', $1, true), set_config('role', $2, true), "
"set_config('request.jwt.claims', $3, true), set_config('request.method', $4, true), "
"set_config('request.path', $5, true), set_config('request.headers', $6, true), "
"set_config('request.cookies', $7, true)";

typedef struct Slot
{
	PGconn	   *conn;
	bool		busy;
	StmtCache	cache;
} Slot;

static void
cache_reset(StmtCache *c)
{
	for (int i = 0; i < c->n; i++)
		free(c->sql[i]);
	c->n = 0;
}

/* Replace (or drop, with NULL) a slot's connection and its statements. */
static void
slot_set_conn(Slot *s, PGconn *conn)
{
	if (s->conn)
		PQfinish(s->conn);
	cache_reset(&s->cache);
	s->conn = conn;
}


struct Pool
{
	char	   *conninfo;
	const char *label;			/* "database", "read database": for the log */
	int			size;
	int			statement_timeout_ms;
	Slot	   *slots;
	int			nfree;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	double		last_error_log;
};

Pool *
pool_create(const char *conninfo, int size, int statement_timeout_ms, const char *label)
{
	Pool	   *p = xcalloc(1, sizeof(Pool));
	pthread_condattr_t attr;

	p->conninfo = xstrdup(conninfo ? conninfo : "");
	p->label = label ? label : "database";
	p->size = size;
	p->statement_timeout_ms = statement_timeout_ms;
	p->slots = xcalloc((size_t) size, sizeof(Slot));
	p->nfree = size;
	pthread_mutex_init(&p->mu, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&p->cv, &attr);
	pthread_condattr_destroy(&attr);
	return p;
}

/* libpq notices (e.g. the extension's "not preloaded") go to our log once. */
static void
notice_processor(void *arg, const char *message)
{
	(void) arg;
	log_msg("database notice: %.*s", (int) strcspn(message, "\n"), message);
}

/*
 * Open a connection and apply the session settings.  The settings are
 * passed as parameters, never spliced into the SQL.
 */
static PGconn *
pool_connect(Pool *p, char *errbuf, size_t errlen)
{
	const char *keys[] = {"connect_timeout", "fallback_application_name", "dbname", NULL};
	const char *vals[] = {"5", "hc_http", p->conninfo, NULL};
	PGconn	   *c;
	PGresult   *r;
	char		timeout[32];
	const char *params[2];

	c = PQconnectdbParams(keys, vals, 1);
	if (c == NULL || PQstatus(c) != CONNECTION_OK)
	{
		snprintf(errbuf, errlen, "%s", c ? PQerrorMessage(c) : "out of memory");
		errbuf[strcspn(errbuf, "\n")] = '\0';
		PQfinish(c);
		return NULL;
	}
	PQsetNoticeProcessor(c, notice_processor, NULL);
	snprintf(timeout, sizeof(timeout), "%d", p->statement_timeout_ms);
	params[0] = timeout;
	params[1] = timeout;
	/* the session must not keep locks if we ever leave a transaction open */
	r = PQexecParams(c,
					 "SELECT set_config('statement_timeout', $1, false), "
					 "set_config('idle_in_transaction_session_timeout', $2, false)",
					 2, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK)
	{
		snprintf(errbuf, errlen, "%s", PQerrorMessage(c));
		errbuf[strcspn(errbuf, "\n")] = '\0';
		PQclear(r);
		PQfinish(c);
		return NULL;
	}
	PQclear(r);
	{
		static const struct
		{
			const char *name;
			const char *sql;
			int			nparams;
		}			stmts[] = {
			{STMT_BEGIN_RO, "BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY", 0},
			{STMT_BEGIN_RW, "BEGIN ISOLATION LEVEL READ COMMITTED", 0},
			{STMT_SET_CONFIG, set_config_sql, 7},
			{STMT_COMMIT, "COMMIT", 0},
		};

		for (size_t i = 0; i < sizeof(stmts) / sizeof(stmts[0]); i++)
		{
			r = PQprepare(c, stmts[i].name, stmts[i].sql, stmts[i].nparams, NULL);
			if (PQresultStatus(r) != PGRES_COMMAND_OK)
			{
				snprintf(errbuf, errlen, "%s", PQerrorMessage(c));
				errbuf[strcspn(errbuf, "\n")] = '\0';
				PQclear(r);
				PQfinish(c);
				return NULL;
			}
			PQclear(r);
		}
	}
	return c;
}

bool
pool_warm(Pool *p)
{
	int			ok = 0;
	char		err[512] = "";

	for (int i = 0; i < p->size; i++)
	{
		slot_set_conn(&p->slots[i], pool_connect(p, err, sizeof(err)));
		if (p->slots[i].conn)
			ok++;
	}
	if (ok == 0)
		log_msg("cannot connect to the %s: %s", p->label, err);
	else if (ok < p->size)
		log_msg("only %d of %d %s connections opened: %s", ok, p->size, p->label, err);
	return ok > 0;
}

PoolStatus
pool_checkout(Pool *p, int timeout_ms, bool fresh, PGconn **conn, int *slot)
{
	struct timespec deadline;
	int			i;
	Slot	   *s;
	char		err[512];

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += timeout_ms / 1000;
	deadline.tv_nsec += (long) (timeout_ms % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L)
	{
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}

	pthread_mutex_lock(&p->mu);
	while (p->nfree == 0)
	{
		int			rc = pthread_cond_timedwait(&p->cv, &p->mu, &deadline);

		if (rc == ETIMEDOUT && p->nfree == 0)
		{
			pthread_mutex_unlock(&p->mu);
			return POOL_TIMEOUT;
		}
	}
	/* prefer a slot with a live connection */
	s = NULL;
	for (i = 0; i < p->size; i++)
	{
		if (!p->slots[i].busy && p->slots[i].conn != NULL)
		{
			s = &p->slots[i];
			break;
		}
	}
	if (s == NULL)
		for (i = 0; i < p->size; i++)
			if (!p->slots[i].busy)
			{
				s = &p->slots[i];
				break;
			}
	s->busy = true;
	p->nfree--;
	pthread_mutex_unlock(&p->mu);

	/* (re)connect outside the lock */
	if (s->conn != NULL && (fresh || PQstatus(s->conn) != CONNECTION_OK))
		slot_set_conn(s, NULL);
	if (s->conn == NULL)
	{
		slot_set_conn(s, pool_connect(p, err, sizeof(err)));
		if (s->conn == NULL)
		{
			double		now = mono_now();

			/* at most one line per second while the database is down */
			pthread_mutex_lock(&p->mu);
			if (now - p->last_error_log >= 1.0)
			{
				p->last_error_log = now;
				pthread_mutex_unlock(&p->mu);
				log_msg("cannot connect to the %s: %s", p->label, err);
			}
			else
				pthread_mutex_unlock(&p->mu);
			pool_release(p, i, false);
			return POOL_UNAVAILABLE;
		}
	}
	*conn = s->conn;
	*slot = i;
	return POOL_OK;
}

void
pool_release(Pool *p, int slot, bool broken)
{
	Slot	   *s = &p->slots[slot];

	if (broken && s->conn)
		slot_set_conn(s, NULL);
	pthread_mutex_lock(&p->mu);
	s->busy = false;
	p->nfree++;
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
}

void
pool_destroy(Pool *p)
{
	if (p == NULL)
		return;
	for (int i = 0; i < p->size; i++)
		slot_set_conn(&p->slots[i], NULL);
	free(p->slots);
	free(p->conninfo);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
	free(p);
}

StmtCache *
pool_stmt_cache(Pool *p, int slot)
{
	return &p->slots[slot].cache;
}
