/*-------------------------------------------------------------------------
 *
 * subscriber.c
 *	  The Redis subscription to the invalidation channel: non-blocking
 *	  hiredis 0.14, driven by main.c's loop.
 *
 * States: idle (waiting to retry) -> connecting -> handshake (AUTH,
 * SELECT, SUBSCRIBE sent; their replies awaited in order) -> subscribed.
 * A subscribed connection sends PING every second and is given up when
 * nothing arrives for three: a Redis that vanished without closing the
 * connection is noticed as surely as one that closed it.  Any error goes
 * back to idle, and the next attempt comes after a backoff (100 ms,
 * doubling, at most 5 s; reset once subscribed).
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

typedef enum SubState
{
	SUB_IDLE,
	SUB_CONNECTING,
	SUB_HANDSHAKE,
	SUB_SUBSCRIBED
} SubState;

struct Subscriber
{
	const Options *opt;
	SubscriberCallbacks cb;
	redisContext *c;
	SubState	state;
	hc_ms		retry_at;
	int			backoff_ms;
	hc_ms		deadline;		/* of connecting and the handshake */
	int			pending;		/* handshake replies still to come */
	bool		want_write;
	hc_ms		next_ping;
	hc_ms		last_read;
	bool		outage_logged;
	int			attempts;
};

Subscriber *
subscriber_new(const Options *opt, SubscriberCallbacks cb)
{
	Subscriber *s = xcalloc(1, sizeof(Subscriber));

	s->opt = opt;
	s->cb = cb;
	s->state = SUB_IDLE;
	s->backoff_ms = BACKOFF_MIN_MS;
	return s;
}

void
subscriber_free(Subscriber *s)
{
	if (s == NULL)
		return;
	if (s->c)
		redisFree(s->c);
	free(s);
}

static void
give_up(Subscriber *s, const char *why, hc_ms now)
{
	bool		was_subscribed = s->state == SUB_SUBSCRIBED;
	char		reason[256];

	/* why may be the context's own errstr, freed below */
	snprintf(reason, sizeof(reason), "%s", why);

	if (s->c)
	{
		redisFree(s->c);
		s->c = NULL;
	}
	s->state = SUB_IDLE;
	s->want_write = false;
	s->retry_at = now + s->backoff_ms;
	s->backoff_ms = s->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : s->backoff_ms * 2;
	if (was_subscribed)
	{
		hc_log("redis: lost %s:%d (%s); reconnecting", s->opt->redis_host, s->opt->redis_port, reason);
		s->outage_logged = true;
		s->attempts = 0;
		s->cb.lost(s->cb.arg, reason, now);
	}
	else if (!s->outage_logged)
	{
		hc_log("redis: cannot subscribe at %s:%d (%s); retrying every %d ms at most",
			   s->opt->redis_host, s->opt->redis_port, reason, BACKOFF_MAX_MS);
		s->outage_logged = true;
	}
}

static void
flush(Subscriber *s, hc_ms now)
{
	int			done = 0;

	if (redisBufferWrite(s->c, &done) != REDIS_OK)
	{
		give_up(s, s->c->errstr[0] ? s->c->errstr : "write failed", now);
		return;
	}
	s->want_write = !done;
}

/*
 * The password: the environment's, or the first line of the file (read at
 * each attempt, so that a rotated one is used).  Returns false, and says
 * why, when the file cannot be read.
 */
static bool
password(const Subscriber *s, char *out, size_t outlen, char *err, size_t errlen)
{
	FILE	   *f;

	out[0] = '\0';
	if (s->opt->redis_password_file == NULL)
	{
		if (s->opt->redis_password)
			snprintf(out, outlen, "%s", s->opt->redis_password);
		return true;
	}
	f = fopen(s->opt->redis_password_file, "r");
	if (f == NULL)
	{
		snprintf(err, errlen, "cannot read the password file %s: %s",
				 s->opt->redis_password_file, strerror(errno));
		return false;
	}
	if (fgets(out, (int) outlen, f) == NULL)
		out[0] = '\0';
	fclose(f);
	out[strcspn(out, "\r\n")] = '\0';
	return true;
}

static void
start_handshake(Subscriber *s, hc_ms now)
{
	char		pw[1024];
	char		err[512];

	if (!password(s, pw, sizeof(pw), err, sizeof(err)))
	{
		give_up(s, err, now);
		return;
	}
	s->pending = 0;
	if (pw[0])
	{
		redisAppendCommand(s->c, "AUTH %b", pw, strlen(pw));
		s->pending++;
	}
	memset(pw, 0, sizeof(pw));
	if (s->opt->redis_db != 0)
	{
		redisAppendCommand(s->c, "SELECT %d", s->opt->redis_db);
		s->pending++;
	}
	redisAppendCommand(s->c, "SUBSCRIBE %s", s->opt->channel);
	s->pending++;
	s->state = SUB_HANDSHAKE;
	flush(s, now);
}

static void
connect_now(Subscriber *s, hc_ms now)
{
	s->attempts++;
	s->c = redisConnectNonBlock(s->opt->redis_host, s->opt->redis_port);
	if (s->c == NULL)
	{
		give_up(s, "out of memory", now);
		return;
	}
	if (s->c->err)
	{
		char		reason[160];

		snprintf(reason, sizeof(reason), "%s", s->c->errstr);
		give_up(s, reason, now);
		return;
	}
	s->state = SUB_CONNECTING;
	s->deadline = now + CONNECT_TIMEOUT_MS;
}

void
subscriber_run(Subscriber *s, hc_ms now)
{
	switch (s->state)
	{
		case SUB_IDLE:
			if (now >= s->retry_at)
				connect_now(s, now);
			break;
		case SUB_CONNECTING:
		case SUB_HANDSHAKE:
			if (now >= s->deadline)
				give_up(s, s->state == SUB_CONNECTING ? "connect timed out" : "no answer to SUBSCRIBE", now);
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
}

int
subscriber_fd(const Subscriber *s, short *events)
{
	if (s->c == NULL || s->state == SUB_IDLE)
		return -1;
	if (s->state == SUB_CONNECTING)
		*events = POLLOUT;
	else
		*events = (short) (POLLIN | (s->want_write ? POLLOUT : 0));
	return s->c->fd;
}

hc_ms
subscriber_next_timer(const Subscriber *s)
{
	switch (s->state)
	{
		case SUB_IDLE:
			return s->retry_at;
		case SUB_CONNECTING:
		case SUB_HANDSHAKE:
			return s->deadline;
		case SUB_SUBSCRIBED:
			return s->next_ping < s->last_read + SILENCE_TIMEOUT_MS ?
				s->next_ping : s->last_read + SILENCE_TIMEOUT_MS;
	}
	return -1;
}

static bool
reply_is(const redisReply *r, size_t i, const char *word)
{
	return r->type == REDIS_REPLY_ARRAY && r->elements > i &&
		(r->element[i]->type == REDIS_REPLY_STRING || r->element[i]->type == REDIS_REPLY_STATUS) &&
		strcasecmp(r->element[i]->str, word) == 0;
}

/* A reply; false when the connection was given up. */
static bool
handle_reply(Subscriber *s, redisReply *r, hc_ms now)
{
	char		reason[256];

	if (s->state == SUB_HANDSHAKE)
	{
		if (r->type == REDIS_REPLY_ERROR)
		{
			/* never the command: AUTH's would carry the password */
			snprintf(reason, sizeof(reason), "refused: %.200s", r->str);
			give_up(s, reason, now);
			return false;
		}
		if (--s->pending > 0)
			return true;
		if (!reply_is(r, 0, "subscribe"))
		{
			give_up(s, "unexpected answer to SUBSCRIBE", now);
			return false;
		}
		s->state = SUB_SUBSCRIBED;
		s->backoff_ms = BACKOFF_MIN_MS;
		s->next_ping = now + PING_INTERVAL_MS;
		if (s->outage_logged)
			hc_log("redis: reachable again at %s:%d after %d attempt(s)",
				   s->opt->redis_host, s->opt->redis_port, s->attempts);
		s->outage_logged = false;
		s->attempts = 0;
		s->cb.subscribed(s->cb.arg, now);
		return s->state == SUB_SUBSCRIBED;
	}
	if (reply_is(r, 0, "message") && r->elements == 3 && r->element[2]->type == REDIS_REPLY_STRING)
		s->cb.message(s->cb.arg, r->element[2]->str, r->element[2]->len, now);
	/* PING's answer, and anything else, only shows that Redis is there */
	return true;
}

void
subscriber_io(Subscriber *s, short revents, hc_ms now)
{
	if (s->c == NULL)
		return;
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
			give_up(s, strerror(err), now);
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
			give_up(s, s->c->err == REDIS_ERR_EOF ? "Redis closed the connection" :
					(s->c->errstr[0] ? s->c->errstr : "read failed"), now);
			return;
		}
		s->last_read = now;
		for (;;)
		{
			if (redisGetReplyFromReader(s->c, &reply) != REDIS_OK)
			{
				give_up(s, "protocol error", now);
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
