/*
 * The invalidation feed: one thread, one Redis connection (hiredis)
 * subscribed to the engine's channel, for the event stream (events.c).
 *
 * Per message (edge/README.md, "Invalidation messages"):
 *
 *   - its number goes through the Sequence (sequence.c), which says when
 *     messages may have been missed: then `reset`;
 *   - an invalidation of this server's database becomes edge keys, each
 *     with the roles it may be sent to (readers.c): the key of each tag of
 *     a table the role may read, for a table T with row-level security
 *     only the key of its wildcard tag (T + "/" + "*", which every answer
 *     of T carries), and the key of "*" for everyone;
 *   - other databases' invalidations, heartbeats and unknown types count
 *     for the numbering only.
 *
 * `reset` also goes out at every subscription (what was published while
 * unsubscribed is unknown), and for an invalidation the thread cannot
 * filter (the privileges could not be read from the database).
 *
 * The thread never holds a lock an HTTP thread waits for while it talks to
 * Redis or to the database; it blocks only itself.  The Redis connection is
 * watched with PING while idle; on any error it reconnects with backoff.
 *
 * Under Redis Sentinel (--redis-sentinels) the address is discovered at
 * every connection, as the engine and hc_purger do it (hiredis 0.14 has no
 * Sentinel client): the sentinels are asked in turn, from the one that
 * named the master last (connect timeout, AUTH when they have a password,
 * SENTINEL get-master-addr-by-name), and the address one names is used only
 * once ROLE, on the subscription's own connection before SUBSCRIBE,
 * answers "master"; an address that fails (a sentinel that lags a
 * failover names the old master, or a replica) has the next sentinel
 * asked, each address once per round.  A failover is followed because it
 * ends the subscription: the old master dies or hangs (the connection
 * fails, PING goes unanswered), or is demoted (Sentinel closes its
 * clients).  The backoff stops at 1 s instead of 5: a failover lasts
 * seconds, and a round costs each sentinel one question.  One case ends no
 * connection, a master cut off from the sentinels and the engine but not
 * from us: what we see is silence (the engine's publisher sends a heartbeat
 * every second), so after SILENCE_S without a message on the channel the
 * sentinels are asked again, and if they name another master we move
 * there; while they name ours, the next question waits twice as long, up
 * to a minute.
 */
#include "hc_http.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hiredis.h>
#include <libpq-fe.h>

#define PING_IDLE_S 5.0			/* PING after this long without data */
#define PING_TIMEOUT_S 5.0		/* and give up on the connection after */
#define READERS_REFRESH_S 60.0	/* reload the readers this often */
#define READERS_MISS_S 2.0		/* an unknown table reloads at most this often */
#define BACKOFF_MIN_S 0.25
#define BACKOFF_MAX_S 5.0
#define SENTINEL_BACKOFF_MAX_S 1.0	/* under Sentinel: a failover lasts seconds */
#define SILENCE_S 3.0			/* under Sentinel: ask them after this long without a message */
#define CHECK_MAX_S 60.0		/* ... and again at most this far apart */

static FeedConfig conf;
static pthread_t thread;
static bool started;
static atomic_bool stopping;
static atomic_bool reload_requested;
static int wake_pipe[2] = {-1, -1};

/* Owned by the feed thread. */
static redisContext *rc;
static Sequence seq;
static Readers *readers;
static double readers_loaded_at;	/* last successful load, mono_now() */
static double readers_tried_at;		/* last attempt */
static uint64_t all_roles;

/* The Redis of the subscription (rc), as host:port. */
static char at_text[ADDR_TEXT_LEN];
/* Sentinel only. */
static HostPort at;				/* the master subscribed at (or being tried) */
static bool has_master;
static HostPort master;			/* the master subscribed at last */
static int last_good;			/* the sentinel that named it */

/* --- waking the thread -------------------------------------------------- */

static void
wake(void)
{
	ssize_t		n = write(wake_pipe[1], "w", 1);

	(void) n;					/* full: it is awake already */
}

static void
drain_wake(void)
{
	char		b[64];

	while (read(wake_pipe[0], b, sizeof(b)) > 0)
		;
}

/* Sleep up to `seconds`, or until woken. */
static void
nap(double seconds)
{
	struct pollfd p = {.fd = wake_pipe[0],.events = POLLIN};

	if (poll(&p, 1, (int) (seconds * 1000)) > 0)
		drain_wake();
}

/* --- readers -------------------------------------------------------------- */

/* Load the readers through the pool; keep the old ones on failure. */
static bool
refresh_readers(void)
{
	PGconn	   *conn;
	int			slot;
	Readers    *r;
	PoolStatus	ps;

	readers_tried_at = mono_now();
	ps = pool_checkout(conf.pool, conf.pool_timeout_ms, false, &conn, &slot);
	if (ps != POOL_OK)
	{
		log_msg("events: cannot read the privileges on the watched tables: %s",
				ps == POOL_TIMEOUT ? "no free database connection" : "database unavailable");
		return false;
	}
	r = readers_load(conn, conf.roles, conf.nroles);
	pool_release(conf.pool, slot, PQstatus(conn) != CONNECTION_OK);
	if (r == NULL)
		return false;
	if (readers == NULL || readers_count(readers) != readers_count(r))
		log_msg("events: %d watched table(s) in database %s", readers_count(r), readers_database(r));
	readers_free(readers);
	readers = r;
	readers_loaded_at = mono_now();
	return true;
}

/* --- invalidations -------------------------------------------------------- */

typedef struct KeyList
{
	FeedKey    *k;
	int			n;
	int			cap;
} KeyList;

static void
keys_add(KeyList *l, const char *database, const char *tag, size_t len, uint64_t roles)
{
	if (roles == 0)
		return;
	if (l->n == l->cap)
	{
		l->cap = l->cap ? 2 * l->cap : 16;
		l->k = realloc(l->k, (size_t) l->cap * sizeof(FeedKey));
		if (l->k == NULL)
			abort();
	}
	/* out of memory: a key that matches nothing */
	(void) edge_key_compute(database, tag, len, l->k[l->n].key);
	l->k[l->n].roles = roles;
	l->n++;
}

static int
key_cmp(const void *a, const void *b)
{
	return strcmp(((const FeedKey *) a)->key, ((const FeedKey *) b)->key);
}

/* Each key once, with the union of its roles. */
static void
keys_dedup(KeyList *l)
{
	int			out = 0;

	if (l->n < 2)
		return;
	qsort(l->k, (size_t) l->n, sizeof(FeedKey), key_cmp);
	for (int i = 1; i < l->n; i++)
	{
		if (strcmp(l->k[out].key, l->k[i].key) == 0)
			l->k[out].roles |= l->k[i].roles;
		else
			l->k[++out] = l->k[i];
	}
	l->n = out + 1;
}

/*
 * The keys of the tags for the roles that may read them.  False when a tag
 * names a table the readers do not know.
 */
static bool
tags_to_keys(const JsonValue *tags, KeyList *l)
{
	const char *db = readers_database(readers);
	bool		all_known = true;

	l->n = 0;
	for (const JsonValue *t = tags ? tags->child : NULL; t; t = t->next)
	{
		ReaderInfo	ri;

		if (t->type != JSON_STRING)
			continue;
		if (strcmp(t->str, "*") == 0)
			keys_add(l, db, "*", 1, all_roles);
		else if (!readers_lookup(readers, t->str, t->str_len, &ri))
			all_known = false;
		else if (ri.rls)
		{
			/* row-level security: which rows changed is not ours to tell */
			char	   *star = xmalloc(ri.table_tag_len + 3);

			memcpy(star, ri.table_tag, ri.table_tag_len);
			memcpy(star + ri.table_tag_len, "/*", 3);
			keys_add(l, db, star, ri.table_tag_len + 2, ri.roles);
			free(star);
		}
		else
			keys_add(l, db, t->str, t->str_len, ri.roles);
	}
	keys_dedup(l);
	return all_known;
}

/* The message's "lsn" if it is one (hex digits, a slash, hex digits). */
static const char *
message_lsn(const JsonValue *msg)
{
	const JsonValue *v = json_get(msg, "lsn");
	const char *slash;

	if (v == NULL || v->type != JSON_STRING || v->str_len < 3 || v->str_len > 17 ||
		strspn(v->str, "0123456789ABCDEFabcdef/") != v->str_len)
		return NULL;
	slash = strchr(v->str, '/');
	if (slash == NULL || slash == v->str || slash[1] == '\0' || strchr(slash + 1, '/'))
		return NULL;
	return v->str;
}

static void
invalidation(const JsonValue *msg, const char *id)
{
	const JsonValue *database = json_get(msg, "database");
	const JsonValue *tags = json_get(msg, "tags");
	KeyList		l = {NULL, 0, 0};
	bool		known;

	if (readers == NULL && mono_now() - readers_tried_at >= READERS_MISS_S)
		refresh_readers();
	if (readers == NULL)
	{
		conf.reset(conf.arg, "an invalidation whose readers are unknown (database unreachable)");
		return;
	}
	if (database && database->type == JSON_STRING &&
		strcmp(database->str, readers_database(readers)) != 0)
		return;					/* another database's */
	if (tags == NULL || tags->type != JSON_ARRAY)
		return;
	known = tags_to_keys(tags, &l);
	if (!known && mono_now() - readers_loaded_at >= READERS_MISS_S)
	{
		/* a table watched since the readers were loaded? */
		if (refresh_readers())
			known = tags_to_keys(tags, &l);
		else
			conf.reset(conf.arg, "a table whose readers could not be read");
	}
	/* still unknown after a fresh load: not a watched table, nobody's */
	if (l.n > 0)
		conf.deliver(conf.arg, id, message_lsn(msg), l.k, l.n);
	free(l.k);
}

/* --- messages ------------------------------------------------------------- */

/* A JSON number that is a non-negative integer, exactly. */
static bool
json_uint64(const JsonValue *v, uint64_t *out)
{
	uint64_t	n = 0;

	if (v == NULL || v->type != JSON_NUMBER || v->raw_len == 0 || v->raw_len > 19)
		return false;
	for (size_t i = 0; i < v->raw_len; i++)
	{
		if (v->raw[i] < '0' || v->raw[i] > '9')
			return false;
		n = n * 10 + (uint64_t) (v->raw[i] - '0');
	}
	*out = n;
	return true;
}

static void
verdict(SeqVerdict v)
{
	if (v == SEQ_NEW_EPOCH)
		conf.reset(conf.arg, "a new epoch (the database server restarted)");
	else if (v == SEQ_TOO_FAR)
		conf.reset(conf.arg, "a message numbered far past the last one seen");
}

static void
one_message(const JsonValue *msg)
{
	static double last_complaint;
	const JsonValue *type,
			   *epoch,
			   *version;
	const char *t;
	uint64_t	n = 0;
	bool		numbered;
	char		id[64] = "";

	if (msg == NULL || msg->type != JSON_OBJECT)
	{
		if (mono_now() - last_complaint > 10)
		{
			last_complaint = mono_now();
			log_msg("events: ignoring a message on %s that is not a JSON object", conf.channel);
		}
		return;
	}
	version = json_get(msg, "v");
	if (version && version->type == JSON_NUMBER && version->num != 1)
	{
		conf.reset(conf.arg, "a message of an unknown version");
		return;
	}
	type = json_get(msg, "type");
	t = type && type->type == JSON_STRING ? type->str : "invalidation";
	epoch = json_get(msg, "epoch");
	if (epoch && epoch->type != JSON_STRING)
		epoch = NULL;
	numbered = epoch != NULL && epoch->str_len < sizeof(seq.epoch) &&
		json_uint64(json_get(msg, "seq"), &n);
	if (strcmp(t, "heartbeat") == 0)
	{
		if (numbered)
			verdict(seq_heartbeat(&seq, epoch->str, n, mono_now()));
	}
	else if (strcmp(t, "invalidation") == 0)
	{
		if (numbered)
		{
			verdict(seq_message(&seq, epoch->str, n, mono_now()));
			snprintf(id, sizeof(id), "%s/%llu", epoch->str, (unsigned long long) n);
		}
		invalidation(msg, id[0] ? id : NULL);
	}
}

/*
 * A payload is one message, or a JSON array of messages (the engine's
 * publisher sends a burst of commits as one), handled in order.
 */
static void
message(const char *payload, size_t len)
{
	const char *err = NULL;
	JsonValue  *v = json_parse(payload, len, &err);

	if (v != NULL && v->type == JSON_ARRAY)
	{
		for (const JsonValue *m = v->child; m != NULL; m = m->next)
			one_message(m);
	}
	else
		one_message(v);
	json_free(v);
}

/* True when it was a message on the channel. */
static bool
reply(redisReply *r)
{
	if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
		r->element[0]->type == REDIS_REPLY_STRING && strcmp(r->element[0]->str, "message") == 0 &&
		r->element[2]->type == REDIS_REPLY_STRING)
	{
		message(r->element[2]->str, r->element[2]->len);
		return true;
	}
	/* "subscribe" confirmations and "pong"s: nothing to do */
	return false;
}

/* --- the Redis connection ------------------------------------------------- */

static bool
command_ok(redisContext *c, const char *what, redisReply *r, char *err, size_t errlen)
{
	bool		ok = r != NULL && r->type != REDIS_REPLY_ERROR;

	if (!ok)
		snprintf(err, errlen, "%s: %s", what, r ? r->str : c->errstr);
	if (r)
		freeReplyObject(r);
	return ok;
}

static redisContext *
connect_to(const char *host, int port, char *err, size_t errlen)
{
	struct timeval tv = {conf.connect_timeout_ms / 1000, (conf.connect_timeout_ms % 1000) * 1000};
	redisContext *c = redisConnectWithTimeout(host, port, tv);

	if (c == NULL || c->err)
	{
		snprintf(err, errlen, "%s", c ? c->errstr : "out of memory");
		if (c)
			redisFree(c);
		return NULL;
	}
	redisSetTimeout(c, tv);
	return c;
}

/*
 * Connect to host:port, authenticate, under Sentinel check that it is a
 * master (ROLE), select, subscribe: rc.  err says why not (rc may then be
 * left open: the caller frees it).
 */
static bool
subscribe_at(const char *host, int port, bool check_role, char *err, size_t errlen)
{
	redisReply *r;

	rc = connect_to(host, port, err, errlen);
	if (rc == NULL)
		return false;
	redisEnableKeepAlive(rc);
	/* not the command in err: it carries the password */
	if (conf.redis_password && *conf.redis_password &&
		!command_ok(rc, "AUTH", redisCommand(rc, "AUTH %s", conf.redis_password), err, errlen))
		return false;
	if (check_role)
	{
		bool		is_master;

		r = redisCommand(rc, "ROLE");
		if (r == NULL || r->type != REDIS_REPLY_ARRAY)
		{
			if (command_ok(rc, "ROLE", r, err, errlen))
				snprintf(err, errlen, "ROLE: unexpected reply");
			return false;
		}
		is_master = r->elements > 0 && r->element[0]->type == REDIS_REPLY_STRING &&
			strcmp(r->element[0]->str, "master") == 0;
		if (!is_master)
			snprintf(err, errlen, "not a master (ROLE: %.20s)",
					 r->elements > 0 && r->element[0]->type == REDIS_REPLY_STRING
					 ? r->element[0]->str : "?");
		freeReplyObject(r);
		if (!is_master)
			return false;
	}
	if (conf.redis_db != 0 &&
		!command_ok(rc, "SELECT", redisCommand(rc, "SELECT %d", conf.redis_db), err, errlen))
		return false;
	r = redisCommand(rc, "SUBSCRIBE %s", conf.channel);
	if (r != NULL && r->type == REDIS_REPLY_ARRAY)
	{
		freeReplyObject(r);
		return true;
	}
	if (command_ok(rc, "SUBSCRIBE", r, err, errlen))
		snprintf(err, errlen, "SUBSCRIBE: unexpected reply");
	return false;
}

/* --- Redis Sentinel ------------------------------------------------------- */

/*
 * Ask sentinel i where the master is: true with *found, else err says why
 * (never with the password).
 */
static bool
ask_sentinel(int i, HostPort *found, char *err, size_t errlen)
{
	const HostPort *s = &conf.sentinels[i];
	redisContext *c = connect_to(s->host, s->port, err, errlen);
	redisReply *r;
	bool		ok = false;

	if (c == NULL)
		return false;
	if (conf.sentinel_password && *conf.sentinel_password)
	{
		r = redisCommand(c, "AUTH %s", conf.sentinel_password);
		if (r == NULL || r->type == REDIS_REPLY_ERROR)
		{
			snprintf(err, errlen, "AUTH: %s", r ? "the sentinel refused the password" : c->errstr);
			if (r)
				freeReplyObject(r);
			redisFree(c);
			return false;
		}
		freeReplyObject(r);
	}
	r = redisCommand(c, "SENTINEL get-master-addr-by-name %s", conf.sentinel_master);
	if (r == NULL)
		snprintf(err, errlen, "%s", c->errstr[0] ? c->errstr : "no answer");
	else if (r->type == REDIS_REPLY_NIL)
		snprintf(err, errlen, "does not know master \"%s\"", conf.sentinel_master);
	else if (r->type == REDIS_REPLY_ERROR)
		snprintf(err, errlen, "%.150s", r->str);
	else if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
			 r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_STRING)
		snprintf(err, errlen, "unexpected answer to SENTINEL get-master-addr-by-name");
	else
	{
		const redisReply *h = r->element[0];
		const redisReply *p = r->element[1];
		char		porttext[16];
		char	   *end;
		long		port;

		snprintf(porttext, sizeof(porttext), "%.*s", (int) (p->len < 15 ? p->len : 15), p->str);
		errno = 0;
		port = strtol(porttext, &end, 10);
		if (h->len == 0 || h->len > HOST_MAXLEN || memchr(h->str, '\0', h->len) != NULL ||
			end == porttext || *end != '\0' || errno != 0 || port < 1 || port > 65535)
			snprintf(err, errlen, "named an invalid address for master \"%s\"", conf.sentinel_master);
		else
		{
			memcpy(found->host, h->str, h->len);
			found->host[h->len] = '\0';
			found->port = (int) port;
			ok = true;
		}
	}
	if (r)
		freeReplyObject(r);
	redisFree(c);
	return ok;
}

/*
 * Ask the sentinels in turn, from the one that named the master last,
 * until one names an address: true with *found and *which (the sentinel);
 * false when none did (err says why the last one failed).
 */
static bool
ask_round(HostPort *found, int *which, char *err, size_t errlen)
{
	char		why[320];
	char		s[ADDR_TEXT_LEN];

	for (int k = 0; k < conf.nsentinels && !atomic_load(&stopping); k++)
	{
		int			i = (last_good + k) % conf.nsentinels;

		if (ask_sentinel(i, found, why, sizeof(why)))
		{
			*which = i;
			return true;
		}
		address_format(&conf.sentinels[i], s, sizeof(s));
		snprintf(err, errlen, "sentinel %s: %s", s, why);
	}
	if (atomic_load(&stopping))
		snprintf(err, errlen, "stopping");
	return false;
}

/*
 * Subscribe at the master the sentinels name: each sentinel in turn, from
 * the one that named it last; each address named is tried once (ROLE must
 * say master).  err says why no address would do.
 */
static bool
subscribe_sentinel(char *err, size_t errlen)
{
	HostPort	tried[MAX_SENTINELS];
	int			ntried = 0;
	char		detail[1024] = "no sentinel asked";

	for (int k = 0; k < conf.nsentinels && !atomic_load(&stopping); k++)
	{
		int			i = (last_good + k) % conf.nsentinels;
		char		why[320];
		char		s[ADDR_TEXT_LEN];
		char		old[ADDR_TEXT_LEN];
		HostPort	found;
		bool		seen = false;

		address_format(&conf.sentinels[i], s, sizeof(s));
		if (!ask_sentinel(i, &found, why, sizeof(why)))
		{
			snprintf(detail, sizeof(detail), "sentinel %s: %s", s, why);
			continue;
		}
		for (int j = 0; j < ntried; j++)
			seen |= address_equal(&tried[j], &found);
		if (seen)
			continue;			/* it failed already in this round */
		tried[ntried++] = found;
		at = found;
		address_format(&at, at_text, sizeof(at_text));
		if (!subscribe_at(at.host, at.port, true, why, sizeof(why)))
		{
			snprintf(detail, sizeof(detail), "%s, named by sentinel %s: %s", at_text, s, why);
			if (rc)
				redisFree(rc);
			rc = NULL;
			continue;
		}
		last_good = i;
		if (!has_master)
			log_msg("events: master \"%s\" is at %s (named by sentinel %s)",
					conf.sentinel_master, at_text, s);
		else if (!address_equal(&master, &at))
		{
			address_format(&master, old, sizeof(old));
			log_msg("events: master \"%s\" moved from %s to %s (named by sentinel %s)",
					conf.sentinel_master, old, at_text, s);
		}
		master = at;
		has_master = true;
		return true;
	}
	snprintf(err, errlen, "no sentinel named a usable master \"%s\" (%s)", conf.sentinel_master,
			 atomic_load(&stopping) ? "stopping" : detail);
	return false;
}

/*
 * Subscribed under Sentinel and hearing nothing: do the sentinels name
 * another master?  True when they do (move there).
 */
static bool
master_moved(void)
{
	static bool complained;
	HostPort	named;
	int			which;
	char		err[700];
	char		named_text[ADDR_TEXT_LEN];
	char		s[ADDR_TEXT_LEN];

	if (!ask_round(&named, &which, err, sizeof(err)))
	{
		if (!complained && !atomic_load(&stopping))
			log_msg("events: cannot ask the sentinels whether master \"%s\" moved (%s); staying at %s",
					conf.sentinel_master, err, at_text);
		complained = true;
		return false;
	}
	complained = false;
	if (address_equal(&named, &at))
	{
		last_good = which;
		return false;
	}
	address_format(&named, named_text, sizeof(named_text));
	address_format(&conf.sentinels[which], s, sizeof(s));
	log_msg("events: sentinel %s names %s as master \"%s\", not %s, where we hear nothing: moving",
			s, named_text, conf.sentinel_master, at_text);
	return true;
}

/* Connect and subscribe, at the configured Redis or where the sentinels say. */
static bool
subscribe(char *err, size_t errlen)
{
	if (conf.nsentinels > 0)
		return subscribe_sentinel(err, errlen);
	snprintf(at_text, sizeof(at_text), "%s:%d", conf.redis_host, conf.redis_port);
	return subscribe_at(conf.redis_host, conf.redis_port, false, err, errlen);
}

static bool
send_ping(void)
{
	int			done = 0;

	if (redisAppendCommand(rc, "PING") != REDIS_OK)
		return false;
	while (!done)
		if (redisBufferWrite(rc, &done) != REDIS_OK)
			return false;
	return true;
}

/* Milliseconds until `deadline` (mono_now() time), between 0 and cap_ms. */
static int
ms_until(double deadline, int cap_ms)
{
	double		ms = (deadline - mono_now()) * 1000;

	if (deadline == 0 || ms > cap_ms)
		return cap_ms;
	return ms < 0 ? 0 : (int) ms + 1;
}

/*
 * Read messages until the connection fails or the thread is asked to stop;
 * err says why it ended.
 */
static void
listen_channel(char *err, size_t errlen)
{
	double		window = conf.reorder_ms / 1000.0;
	double		last_data = mono_now();
	double		ping_at = 0;
	/* under Sentinel: when to ask whether the master moved, if silent */
	double		last_message = mono_now();
	double		check_interval = SILENCE_S;
	double		check_at = 0;

	for (;;)
	{
		struct pollfd p[2] = {{.fd = rc->fd,.events = POLLIN}, {.fd = wake_pipe[0],.events = POLLIN}};
		void	   *r = NULL;
		double		now;
		int			got;

		while ((got = redisGetReplyFromReader(rc, &r)) == REDIS_OK && r != NULL)
		{
			if (reply(r))
			{
				last_message = mono_now();
				check_interval = SILENCE_S;
				check_at = 0;
			}
			freeReplyObject(r);
			r = NULL;
		}
		if (got != REDIS_OK)
		{
			snprintf(err, errlen, "protocol error: %s", rc->errstr);
			return;
		}
		now = mono_now();
		if (seq_expired(&seq, now, window))
			conf.reset(conf.arg, "a message did not arrive within the reorder window");
		if (atomic_exchange(&reload_requested, false) || now - readers_tried_at >= READERS_REFRESH_S)
			refresh_readers();
		if (ping_at == 0 && now - last_data >= PING_IDLE_S)
		{
			if (!send_ping())
			{
				snprintf(err, errlen, "%s", rc->errstr);
				return;
			}
			ping_at = now;
		}
		if (ping_at != 0 && now - ping_at >= PING_TIMEOUT_S)
		{
			snprintf(err, errlen, "no answer to PING within %.0f s", PING_TIMEOUT_S);
			return;
		}
		if (conf.nsentinels > 0 && now - last_message >= SILENCE_S && now >= check_at)
		{
			/* blocks this thread only, a connect timeout per sentinel at most */
			if (master_moved())
			{
				snprintf(err, errlen, "the sentinels name another master");
				return;
			}
			check_at = mono_now() + check_interval;
			check_interval = check_interval * 2 > CHECK_MAX_S ? CHECK_MAX_S : check_interval * 2;
			continue;			/* the socket may have data by now */
		}
		if (poll(p, 2, ms_until(seq_deadline(&seq, window), 1000)) < 0 && errno != EINTR)
		{
			snprintf(err, errlen, "poll: %s", strerror(errno));
			return;
		}
		if (p[1].revents)
			drain_wake();
		if (atomic_load(&stopping))
		{
			snprintf(err, errlen, "stopping");
			return;
		}
		if (p[0].revents)
		{
			if (redisBufferRead(rc) != REDIS_OK)
			{
				snprintf(err, errlen, "%s", rc->errstr[0] ? rc->errstr : "connection closed");
				return;
			}
			last_data = mono_now();
			ping_at = 0;
		}
	}
}

static void *
feed_main(void *arg)
{
	double		backoff = BACKOFF_MIN_S;
	double		backoff_max = conf.nsentinels > 0 ? SENTINEL_BACKOFF_MAX_S : BACKOFF_MAX_S;
	bool		complained = false;
	char		err[1280];

	(void) arg;
	refresh_readers();
	while (!atomic_load(&stopping))
	{
		if (!subscribe(err, sizeof(err)))
		{
			if (rc)
				redisFree(rc);
			rc = NULL;
			if (atomic_load(&stopping))
				break;
			if (!complained)
			{
				if (conf.nsentinels > 0)
					log_msg("events: cannot subscribe to Redis: %s (retrying)", err);
				else
					log_msg("events: cannot subscribe to Redis at %s: %s (retrying)", at_text, err);
			}
			complained = true;
			nap(backoff);
			backoff = backoff * 2 > backoff_max ? backoff_max : backoff * 2;
			continue;
		}
		log_msg("events: subscribed to %s at %s", conf.channel, at_text);
		complained = false;
		backoff = BACKOFF_MIN_S;
		seq_forget(&seq);
		conf.reset(conf.arg, "subscribed to Redis");
		listen_channel(err, sizeof(err));
		redisFree(rc);
		rc = NULL;
		if (!atomic_load(&stopping))
			log_msg("events: lost the Redis connection to %s (%s); reconnecting", at_text, err);
	}
	return NULL;
}

/* --- interface ------------------------------------------------------------ */

bool
feed_start(const FeedConfig *c)
{
	conf = *c;
	all_roles = conf.nroles >= 64 ? ~(uint64_t) 0 : ((uint64_t) 1 << conf.nroles) - 1;
	if (pipe(wake_pipe) != 0)
		return false;
	for (int i = 0; i < 2; i++)
		fcntl(wake_pipe[i], F_SETFL, fcntl(wake_pipe[i], F_GETFL) | O_NONBLOCK);
	seq_init(&seq);
	started = pthread_create(&thread, NULL, feed_main, NULL) == 0;
	if (!started)
	{
		seq_free(&seq);
		close(wake_pipe[0]);
		close(wake_pipe[1]);
		wake_pipe[0] = wake_pipe[1] = -1;
	}
	return started;
}

void
feed_reload(void)
{
	if (!started)
		return;
	atomic_store(&reload_requested, true);
	wake();
}

void
feed_stop(void)
{
	if (!started)
		return;
	atomic_store(&stopping, true);
	wake();
	pthread_join(thread, NULL);
	started = false;
	readers_free(readers);
	readers = NULL;
	seq_free(&seq);
	close(wake_pipe[0]);
	close(wake_pipe[1]);
	wake_pipe[0] = wake_pipe[1] = -1;
}
