/*-------------------------------------------------------------------------
 *
 * subscriber.c
 *	  The Redis subscription to the invalidation channel: non-blocking
 *	  hiredis 0.14, driven by main.c's loop.
 *
 * States: idle (waiting to retry) -> [discovering -> found ->] connecting
 * -> handshake (AUTH, SELECT, ROLE, SUBSCRIBE sent; their replies awaited
 * in order) -> subscribed.  A subscribed connection sends PING every second
 * and is given up when nothing arrives for three: a Redis that vanished
 * without closing the connection is noticed as surely as one that closed
 * it.  Any error goes back to idle, and the next attempt comes after a
 * backoff (100 ms, doubling, at most 5 s; reset once subscribed).
 *
 * Under Sentinel (--redis-sentinels) the address is not configured but
 * discovered, at every attempt: sentinel.c asks the sentinels in turn, and
 * the address one names is used only once ROLE, sent on the subscription's
 * own connection before SUBSCRIBE, answers "master".  An address that
 * fails (refused, ROLE says replica: a sentinel lagging a failover) has
 * the next sentinel of the round asked; each address is tried once per
 * round.  A failover is followed because it always ends the subscription
 * first: the old master dies (the connection fails), hangs (PING goes
 * unanswered), or is demoted, and Sentinel closes every client connection
 * of a Redis it makes a replica (CLIENT KILL TYPE pubsub).  The backoff
 * stops at 1 s instead of 5 under Sentinel: a failover lasts seconds, the
 * purger vouches for nothing until it is subscribed again, and a round
 * costs the sentinels one question each.
 *
 * One case ends no connection: a master cut off from the sentinels and
 * the engine but not from us (a network partition) keeps our subscription
 * while the engine publishes on the master the sentinels promoted.  All we
 * see is silence, so when the purger hears no heartbeat it asks us to
 * check (subscriber_check_master): the sentinels are asked again, beside
 * the subscription, and if they name another master we move there.
 * Checks are spaced by --heartbeat-timeout-ms at first, doubling to a
 * minute while the same master is named.
 *
 * Connections are opened only from subscriber_run, never while the
 * events of a poll are handed out (subscriber_io): a descriptor closed
 * there cannot be reused by a new connection that would then receive the
 * old one's events.
 *
 * The purger hears "subscribed" and "lost" (only after "subscribed"), and
 * each message.  Failed attempts are logged once per outage.
 *
 *-------------------------------------------------------------------------
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <hiredis/hiredis.h>

#include "purger.h"

#define CONNECT_TIMEOUT_MS 2000
#define PING_INTERVAL_MS 1000
#define SILENCE_TIMEOUT_MS 3000
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define SENTINEL_BACKOFF_MAX_MS 1000
#define CHECK_INTERVAL_MIN_MS 1000
#define CHECK_INTERVAL_MAX_MS 60000

typedef enum SubState
{
	SUB_IDLE,
	SUB_DISCOVERING,			/* asking the sentinels */
	SUB_FOUND,					/* a sentinel named the master: connect */
	SUB_CONNECTING,
	SUB_HANDSHAKE,
	SUB_SUBSCRIBED
} SubState;

typedef enum Expect
{
	EXPECT_AUTH,
	EXPECT_SELECT,
	EXPECT_ROLE,
	EXPECT_SUBSCRIBE
} Expect;

struct Subscriber
{
	const Options *opt;
	SubscriberCallbacks cb;
	redisContext *c;
	SubState	state;
	hc_ms		retry_at;
	int			backoff_ms;
	int			backoff_max_ms;
	hc_ms		deadline;		/* of connecting and the handshake */
	Expect		expect[4];		/* the handshake's replies, in order */
	int			nexpect;
	int			next_expect;
	bool		want_write;
	hc_ms		next_ping;
	hc_ms		last_read;
	bool		outage_logged;
	int			attempts;

	HostPort	addr;			/* connected (or connecting) to */
	char		where[ADDR_TEXT_LEN];

	/* Sentinel only */
	Asker	   *asker;
	bool		has_known;
	HostPort	known;			/* the master last subscribed at */
	HostPort	tried[MAX_SENTINELS];	/* addresses tried this round */
	int			ntried;
	char		round_detail[1024];	/* why the last of them failed */
	bool		checking;		/* the asker checks while we are subscribed */
	hc_ms		next_check;
	int			check_interval_ms;
	bool		check_failed_logged;
};

Subscriber *
subscriber_new(const Options *opt, SubscriberCallbacks cb)
{
	Subscriber *s = xcalloc(1, sizeof(Subscriber));

	s->opt = opt;
	s->cb = cb;
	s->state = SUB_IDLE;
	s->backoff_ms = BACKOFF_MIN_MS;
	s->backoff_max_ms = BACKOFF_MAX_MS;
	if (opt->nsentinels > 0)
	{
		s->asker = asker_new(opt);
		s->backoff_max_ms = SENTINEL_BACKOFF_MAX_MS;
		snprintf(s->where, sizeof(s->where), "(not discovered)");
	}
	else
	{
		snprintf(s->addr.host, sizeof(s->addr.host), "%s", opt->redis_host);
		s->addr.port = opt->redis_port;
		address_format(&s->addr, s->where, sizeof(s->where));
	}
	return s;
}

void
subscriber_free(Subscriber *s)
{
	if (s == NULL)
		return;
	if (s->c)
		redisFree(s->c);
	asker_free(s->asker);
	free(s);
}

static void
close_conn(Subscriber *s)
{
	if (s->c)
	{
		redisFree(s->c);
		s->c = NULL;
	}
	s->want_write = false;
}

/* The master as the logs name it. */
static void
master_text(const Subscriber *s, char *buf, size_t size)
{
	snprintf(buf, size, "master \"%s\"", s->opt->sentinel_master);
}

static void
give_up(Subscriber *s, const char *why, hc_ms now)
{
	bool		was_subscribed = s->state == SUB_SUBSCRIBED;
	char		reason[1024];

	/* why may be the context's own errstr, freed below */
	snprintf(reason, sizeof(reason), "%s", why);

	close_conn(s);
	if (s->asker)
		asker_cancel(s->asker);
	s->checking = false;
	s->state = SUB_IDLE;
	s->retry_at = now + s->backoff_ms;
	s->backoff_ms = s->backoff_ms * 2 > s->backoff_max_ms ? s->backoff_max_ms : s->backoff_ms * 2;
	if (was_subscribed)
	{
		hc_log("redis: lost %s (%s); reconnecting", s->where, reason);
		s->outage_logged = true;
		s->attempts = 0;
		s->cb.lost(s->cb.arg, reason, now);
	}
	else if (!s->outage_logged)
	{
		if (s->asker)
		{
			char		m[300];

			master_text(s, m, sizeof(m));
			hc_log("redis: cannot subscribe at %s (%s); asking the sentinels again every %d ms at most",
				   m, reason, s->backoff_max_ms);
		}
		else
			hc_log("redis: cannot subscribe at %s (%s); retrying every %d ms at most",
				   s->where, reason, s->backoff_max_ms);
		s->outage_logged = true;
	}
}

/*
 * An attempt at an address failed before it was subscribed.  Under
 * Sentinel the next sentinel of the round is asked, if one is left.
 */
static void
attempt_failed(Subscriber *s, const char *why, hc_ms now)
{
	if (s->asker == NULL)
	{
		give_up(s, why, now);
		return;
	}
	/* before close_conn: why may be the context's own errstr */
	snprintf(s->round_detail, sizeof(s->round_detail), "the master sentinel %s named, %s: %s",
			 asker_sentinel(s->asker), s->where, why);
	close_conn(s);
	if (asker_has_more(s->asker))
	{
		s->state = SUB_DISCOVERING;
		asker_continue(s->asker, now);
	}
	else
		give_up(s, s->round_detail, now);
}

static void
flush(Subscriber *s, hc_ms now)
{
	int			done = 0;

	if (redisBufferWrite(s->c, &done) != REDIS_OK)
	{
		const char *why = s->c->errstr[0] ? s->c->errstr : "write failed";

		if (s->state == SUB_SUBSCRIBED)
			give_up(s, why, now);
		else
			attempt_failed(s, why, now);
		return;
	}
	s->want_write = !done;
}

static void
start_handshake(Subscriber *s, hc_ms now)
{
	char		pw[1024];
	char		err[320];

	if (!read_secret(s->opt->redis_password, s->opt->redis_password_file,
					 pw, sizeof(pw), err, sizeof(err)))
	{
		attempt_failed(s, err, now);
		return;
	}
	s->nexpect = 0;
	s->next_expect = 0;
	if (pw[0])
	{
		redisAppendCommand(s->c, "AUTH %b", pw, strlen(pw));
		s->expect[s->nexpect++] = EXPECT_AUTH;
	}
	memset(pw, 0, sizeof(pw));
	if (s->opt->redis_db != 0)
	{
		redisAppendCommand(s->c, "SELECT %d", s->opt->redis_db);
		s->expect[s->nexpect++] = EXPECT_SELECT;
	}
	if (s->asker)
	{
		/* a subscribed connection may not send ROLE: before SUBSCRIBE */
		redisAppendCommand(s->c, "ROLE");
		s->expect[s->nexpect++] = EXPECT_ROLE;
	}
	redisAppendCommand(s->c, "SUBSCRIBE %s", s->opt->channel);
	s->expect[s->nexpect++] = EXPECT_SUBSCRIBE;
	s->state = SUB_HANDSHAKE;
	flush(s, now);
}

static void
connect_now(Subscriber *s, hc_ms now)
{
	if (s->asker == NULL)
		s->attempts++;			/* under Sentinel, each round counts */
	s->c = redisConnectNonBlock(s->addr.host, s->addr.port);
	if (s->c == NULL)
	{
		attempt_failed(s, "out of memory", now);
		return;
	}
	if (s->c->err)
	{
		char		reason[160];

		snprintf(reason, sizeof(reason), "%s", s->c->errstr);
		attempt_failed(s, reason, now);
		return;
	}
	s->state = SUB_CONNECTING;
	s->deadline = now + CONNECT_TIMEOUT_MS;
}

static void
start_round(Subscriber *s, hc_ms now)
{
	s->ntried = 0;
	s->round_detail[0] = '\0';
	s->attempts++;
	s->state = SUB_DISCOVERING;
	asker_begin(s->asker, now);
}

/* While subscribed, the sentinels answered a check. */
static void
check_answered(Subscriber *s, AskResult res, hc_ms now)
{
	char		m[300];
	char		named[ADDR_TEXT_LEN];

	master_text(s, m, sizeof(m));
	s->checking = false;
	s->next_check = now + s->check_interval_ms;
	if (res == ASK_EXHAUSTED)
	{
		if (!s->check_failed_logged)
			hc_log("redis: cannot ask the sentinels whether %s moved (%s); staying at %s",
				   m, asker_detail(s->asker), s->where);
		s->check_failed_logged = true;
		return;
	}
	s->check_failed_logged = false;
	if (address_equal(asker_found(s->asker), &s->addr))
	{
		asker_good(s->asker);
		if (s->opt->verbose)
			hc_log("redis: the sentinels still name %s as %s", s->where, m);
		s->check_interval_ms = s->check_interval_ms * 2 > CHECK_INTERVAL_MAX_MS ?
			CHECK_INTERVAL_MAX_MS : s->check_interval_ms * 2;
		return;
	}
	address_format(asker_found(s->asker), named, sizeof(named));
	hc_log("redis: sentinel %s names %s as %s, not %s, where we hear nothing: moving",
		   asker_sentinel(s->asker), named, m, s->where);
	give_up(s, "the sentinels name another master", now);
}

/* What the asker reported, if anything. */
static void
ask_answered(Subscriber *s, AskResult res, hc_ms now)
{
	const HostPort *found;

	if (res == ASK_PENDING)
		return;
	if (s->checking && s->state == SUB_SUBSCRIBED)
	{
		check_answered(s, res, now);
		return;
	}
	if (s->state != SUB_DISCOVERING)
		return;
	if (res == ASK_EXHAUSTED)
	{
		give_up(s, s->round_detail[0] ? s->round_detail : asker_detail(s->asker), now);
		return;
	}
	found = asker_found(s->asker);
	for (int i = 0; i < s->ntried; i++)
	{
		if (address_equal(&s->tried[i], found))
		{
			asker_continue(s->asker, now);
			return;
		}
	}
	if (s->ntried < MAX_SENTINELS)
		s->tried[s->ntried++] = *found;
	s->addr = *found;
	address_format(&s->addr, s->where, sizeof(s->where));
	s->state = SUB_FOUND;
}

void
subscriber_run(Subscriber *s, hc_ms now)
{
	switch (s->state)
	{
		case SUB_IDLE:
			if (now < s->retry_at)
				break;
			if (s->asker)
				start_round(s, now);
			else
				connect_now(s, now);
			break;
		case SUB_DISCOVERING:
		case SUB_FOUND:
			break;
		case SUB_CONNECTING:
		case SUB_HANDSHAKE:
			if (now >= s->deadline)
				attempt_failed(s, s->state == SUB_CONNECTING ? "connect timed out" : "no answer to SUBSCRIBE", now);
			break;
		case SUB_SUBSCRIBED:
			if (now - s->last_read >= SILENCE_TIMEOUT_MS)
			{
				give_up(s, "no answer to PING", now);
				break;
			}
			if (now >= s->next_ping)
			{
				redisAppendCommand(s->c, "PING");
				s->next_ping = now + PING_INTERVAL_MS;
				flush(s, now);
			}
			break;
	}

	/* the sentinels' answers; a master they name is connected to at once */
	if (s->asker && (s->state == SUB_DISCOVERING || s->checking))
		ask_answered(s, asker_run(s->asker, now), now);
	if (s->state == SUB_FOUND)
		connect_now(s, now);
}

/*
 * The purger hears nothing (no heartbeat): under Sentinel, ask whether the
 * master moved without our connection ending (see the top of the file).
 */
void
subscriber_check_master(Subscriber *s, hc_ms now)
{
	if (s->asker == NULL || s->state != SUB_SUBSCRIBED || s->checking || now < s->next_check)
		return;
	if (s->opt->verbose)
		hc_log("redis: no heartbeat: asking the sentinels whether master \"%s\" moved",
			   s->opt->sentinel_master);
	s->checking = true;
	asker_begin(s->asker, now);
}

/*
 * The descriptors to poll: fds[0] the Redis connection's, fds[1] the
 * sentinel question's; -1 for none.  Returns SUBSCRIBER_MAX_FDS.
 */
int
subscriber_fds(const Subscriber *s, int *fds, short *events)
{
	fds[0] = fds[1] = -1;
	events[0] = events[1] = 0;
	if (s->c != NULL && (s->state == SUB_CONNECTING || s->state == SUB_HANDSHAKE ||
						 s->state == SUB_SUBSCRIBED))
	{
		fds[0] = s->c->fd;
		if (s->state == SUB_CONNECTING)
			events[0] = POLLOUT;
		else
			events[0] = (short) (POLLIN | (s->want_write ? POLLOUT : 0));
	}
	if (s->asker)
		fds[1] = asker_fd(s->asker, &events[1]);
	return SUBSCRIBER_MAX_FDS;
}

hc_ms
subscriber_next_timer(const Subscriber *s)
{
	hc_ms		t = -1;

	switch (s->state)
	{
		case SUB_IDLE:
			t = s->retry_at;
			break;
		case SUB_DISCOVERING:
			break;
		case SUB_FOUND:
			t = 0;
			break;
		case SUB_CONNECTING:
		case SUB_HANDSHAKE:
			t = s->deadline;
			break;
		case SUB_SUBSCRIBED:
			t = s->next_ping < s->last_read + SILENCE_TIMEOUT_MS ?
				s->next_ping : s->last_read + SILENCE_TIMEOUT_MS;
			break;
	}
	if (s->asker && asker_active(s->asker))
	{
		hc_ms		a = asker_next_timer(s->asker);

		if (a >= 0 && (t < 0 || a < t))
			t = a;
	}
	return t;
}

static bool
reply_is(const redisReply *r, size_t i, const char *word)
{
	return r->type == REDIS_REPLY_ARRAY && r->elements > i &&
		(r->element[i]->type == REDIS_REPLY_STRING || r->element[i]->type == REDIS_REPLY_STATUS) &&
		strcasecmp(r->element[i]->str, word) == 0;
}

/* Subscribed at last. */
static void
subscribed(Subscriber *s, hc_ms now)
{
	s->state = SUB_SUBSCRIBED;
	s->backoff_ms = BACKOFF_MIN_MS;
	s->next_ping = now + PING_INTERVAL_MS;
	if (s->asker)
	{
		char		m[300];

		master_text(s, m, sizeof(m));
		asker_good(s->asker);
		if (!s->has_known)
			hc_log("redis: %s is at %s (named by sentinel %s)", m, s->where, asker_sentinel(s->asker));
		else if (!address_equal(&s->known, &s->addr))
		{
			char		from[ADDR_TEXT_LEN];

			address_format(&s->known, from, sizeof(from));
			hc_log("redis: %s moved from %s to %s (named by sentinel %s)", m, from, s->where,
				   asker_sentinel(s->asker));
		}
		s->known = s->addr;
		s->has_known = true;
		s->checking = false;
		s->next_check = 0;
		s->check_interval_ms = s->opt->heartbeat_timeout_ms > CHECK_INTERVAL_MIN_MS ?
			s->opt->heartbeat_timeout_ms : CHECK_INTERVAL_MIN_MS;
		s->check_failed_logged = false;
	}
	if (s->outage_logged)
		hc_log("redis: reachable again at %s after %d attempt(s)", s->where, s->attempts);
	s->outage_logged = false;
	s->attempts = 0;
	s->cb.subscribed(s->cb.arg, s->where, now);
}

/* A reply of the handshake; false when the attempt was given up. */
static bool
handshake_reply(Subscriber *s, redisReply *r, hc_ms now)
{
	char		reason[256];
	Expect		e = s->expect[s->next_expect++];

	if (r->type == REDIS_REPLY_ERROR)
	{
		/* never the command: AUTH's would carry the password */
		snprintf(reason, sizeof(reason), "%s%.200s", e == EXPECT_ROLE ? "ROLE: " : "refused: ", r->str);
		attempt_failed(s, reason, now);
		return false;
	}
	if (e == EXPECT_ROLE)
	{
		if (r->type != REDIS_REPLY_ARRAY || r->elements == 0 ||
			r->element[0]->type != REDIS_REPLY_STRING)
		{
			attempt_failed(s, "ROLE: unexpected answer", now);
			return false;
		}
		if (strcmp(r->element[0]->str, "master") != 0)
		{
			snprintf(reason, sizeof(reason), "ROLE: it is a %.40s, not a master", r->element[0]->str);
			attempt_failed(s, reason, now);
			return false;
		}
		return true;
	}
	if (e != EXPECT_SUBSCRIBE)
		return true;
	if (!reply_is(r, 0, "subscribe"))
	{
		attempt_failed(s, "unexpected answer to SUBSCRIBE", now);
		return false;
	}
	subscribed(s, now);
	return s->state == SUB_SUBSCRIBED;
}

/* A reply; false when the connection was given up. */
static bool
handle_reply(Subscriber *s, redisReply *r, hc_ms now)
{
	if (s->state == SUB_HANDSHAKE)
		return handshake_reply(s, r, now);
	if (reply_is(r, 0, "message") && r->elements == 3 && r->element[2]->type == REDIS_REPLY_STRING)
		s->cb.message(s->cb.arg, r->element[2]->str, r->element[2]->len, now);
	/* PING's answer, and anything else, only shows that Redis is there */
	return true;
}

static void
conn_io(Subscriber *s, short revents, hc_ms now)
{
	if (s->state == SUB_CONNECTING)
	{
		int			err = 0;
		socklen_t	len = sizeof(err);

		if (!(revents & (POLLOUT | POLLERR | POLLHUP)))
			return;
		if (getsockopt(s->c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
			err = errno;
		if (err != 0)
		{
			attempt_failed(s, strerror(err), now);
			return;
		}
		s->c->flags |= REDIS_CONNECTED;
		start_handshake(s, now);
		return;
	}
	if ((revents & POLLOUT) && s->want_write)
	{
		flush(s, now);
		if (s->c == NULL)
			return;
	}
	if (revents & (POLLIN | POLLERR | POLLHUP))
	{
		void	   *reply = NULL;

		if (redisBufferRead(s->c) != REDIS_OK)
		{
			const char *why = s->c->err == REDIS_ERR_EOF ? "Redis closed the connection" :
				(s->c->errstr[0] ? s->c->errstr : "read failed");

			if (s->state == SUB_SUBSCRIBED)
				give_up(s, why, now);
			else
				attempt_failed(s, why, now);
			return;
		}
		s->last_read = now;
		for (;;)
		{
			if (redisGetReplyFromReader(s->c, &reply) != REDIS_OK)
			{
				if (s->state == SUB_SUBSCRIBED)
					give_up(s, "protocol error", now);
				else
					attempt_failed(s, "protocol error", now);
				return;
			}
			if (reply == NULL)
				break;
			if (!handle_reply(s, reply, now))
			{
				freeReplyObject(reply);
				return;
			}
			freeReplyObject(reply);
		}
	}
}

/*
 * The events of the descriptors subscriber_fds gave, in the same order.
 * Nothing here opens a connection (see the top of the file).
 */
void
subscriber_io(Subscriber *s, const short *revents, hc_ms now)
{
	if (revents[0] && s->c != NULL)
		conn_io(s, revents[0], now);
	if (revents[1] && s->asker && asker_active(s->asker))
		ask_answered(s, asker_io(s->asker, revents[1], now), now);
}
