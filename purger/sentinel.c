/*-------------------------------------------------------------------------
 *
 * sentinel.c
 *	  Redis Sentinel: where the master is, asked of each sentinel in turn
 *	  (non-blocking hiredis 0.14, driven by subscriber.c).
 *
 * hiredis 0.14 knows nothing of Sentinel, so this is what a Sentinel
 * client does by hand, as the engine's extension/sentinel.c does: connect
 * to a sentinel, AUTH when it has a password, SENTINEL
 * get-master-addr-by-name NAME, and read a host and a port.  A "round"
 * asks the sentinels one after the other, from the one that named the
 * confirmed master last time, until one names an address; the caller
 * confirms it (ROLE, on its own connection) and either keeps it
 * (asker_good) or asks the next sentinel of the round (asker_continue),
 * since a sentinel may lag a failover.  A round in which no sentinel named
 * a usable address is exhausted; the caller retries with a backoff.
 *
 * Each sentinel gets SENTINEL_TIMEOUT_MS for all of it (connect, AUTH, the
 * answer): one that hangs delays a round by that much, not more.
 *
 * A connection is opened only from asker_run, never from asker_io, so that
 * the descriptors main.c polled stay what they were while their events are
 * handed out (see subscriber.c).
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

#define SENTINEL_TIMEOUT_MS 1000

typedef enum AskState
{
	ASK_IDLE,					/* no question out */
	ASK_DUE,					/* ask the next sentinel of the round now */
	ASK_CONNECTING,
	ASK_WAITING					/* AUTH and SENTINEL sent, replies awaited */
} AskState;

struct Asker
{
	const Options *opt;
	redisContext *c;
	AskState	state;
	bool		in_round;
	int			start;			/* the round's first sentinel */
	int			asked;			/* sentinels of the round asked so far */
	int			current;		/* the one being asked, or that answered */
	int			last_good;		/* the one that named the master last */
	hc_ms		deadline;
	int			pending;		/* replies still to come */
	bool		want_write;
	HostPort	found;
	char		sentinel[ADDR_TEXT_LEN];
	char		detail[800];
};

Asker *
asker_new(const Options *opt)
{
	Asker	   *a = xcalloc(1, sizeof(Asker));

	a->opt = opt;
	a->state = ASK_IDLE;
	snprintf(a->detail, sizeof(a->detail), "no sentinel asked yet");
	return a;
}

static void
close_conn(Asker *a)
{
	if (a->c)
	{
		redisFree(a->c);
		a->c = NULL;
	}
	a->want_write = false;
}

void
asker_free(Asker *a)
{
	if (a == NULL)
		return;
	close_conn(a);
	free(a);
}

/* A new round, from the sentinel that named the master last. */
void
asker_begin(Asker *a, hc_ms now)
{
	close_conn(a);
	a->in_round = true;
	a->start = a->last_good;
	a->asked = 0;
	a->state = ASK_DUE;
	(void) now;
}

/* The address found was no good (or seen before): ask the next sentinel. */
void
asker_continue(Asker *a, hc_ms now)
{
	close_conn(a);
	if (a->in_round)
		a->state = ASK_DUE;
	(void) now;
}

bool
asker_has_more(const Asker *a)
{
	return a->in_round && a->asked < a->opt->nsentinels;
}

void
asker_cancel(Asker *a)
{
	close_conn(a);
	a->in_round = false;
	a->state = ASK_IDLE;
}

bool
asker_active(const Asker *a)
{
	return a->state != ASK_IDLE;
}

/* The address found was confirmed: the next round starts at its sentinel. */
void
asker_good(Asker *a)
{
	a->last_good = a->current;
	a->in_round = false;
	if (a->state != ASK_IDLE)
		asker_cancel(a);
}

const HostPort *
asker_found(const Asker *a)
{
	return &a->found;
}

const char *
asker_sentinel(const Asker *a)
{
	return a->sentinel;
}

const char *
asker_detail(const Asker *a)
{
	return a->detail;
}

/* This sentinel failed: say why, and go on with the next. */
static void
fail(Asker *a, const char *why)
{
	char		reason[512];

	/* why may be the context's own errstr, freed below */
	snprintf(reason, sizeof(reason), "%s", why);
	snprintf(a->detail, sizeof(a->detail), "sentinel %s: %s", a->sentinel, reason);
	close_conn(a);
	a->state = ASK_DUE;
}

static void
flush(Asker *a)
{
	int			done = 0;

	if (redisBufferWrite(a->c, &done) != REDIS_OK)
	{
		fail(a, a->c->errstr[0] ? a->c->errstr : "write failed");
		return;
	}
	a->want_write = !done;
}

/* Connect to the next sentinel of the round, if any is left. */
static AskResult
ask_next(Asker *a, hc_ms now)
{
	while (a->state == ASK_DUE)
	{
		const HostPort *s;

		if (!a->in_round || a->asked >= a->opt->nsentinels)
		{
			a->in_round = false;
			a->state = ASK_IDLE;
			return ASK_EXHAUSTED;
		}
		a->current = (a->start + a->asked++) % a->opt->nsentinels;
		s = &a->opt->sentinels[a->current];
		address_format(s, a->sentinel, sizeof(a->sentinel));
		a->c = redisConnectNonBlock(s->host, s->port);
		if (a->c == NULL)
		{
			fail(a, "out of memory");
			continue;
		}
		if (a->c->err)
		{
			fail(a, a->c->errstr);
			continue;
		}
		a->state = ASK_CONNECTING;
		a->deadline = now + SENTINEL_TIMEOUT_MS;
	}
	return ASK_PENDING;
}

AskResult
asker_run(Asker *a, hc_ms now)
{
	if ((a->state == ASK_CONNECTING || a->state == ASK_WAITING) && now >= a->deadline)
		fail(a, a->state == ASK_CONNECTING ? "connect timed out" : "no answer");
	return ask_next(a, now);
}

int
asker_fd(const Asker *a, short *events)
{
	if (a->c == NULL || (a->state != ASK_CONNECTING && a->state != ASK_WAITING))
		return -1;
	if (a->state == ASK_CONNECTING)
		*events = POLLOUT;
	else
		*events = (short) (POLLIN | (a->want_write ? POLLOUT : 0));
	return a->c->fd;
}

hc_ms
asker_next_timer(const Asker *a)
{
	switch (a->state)
	{
		case ASK_IDLE:
			return -1;
		case ASK_DUE:
			return 0;			/* at once */
		case ASK_CONNECTING:
		case ASK_WAITING:
			return a->deadline;
	}
	return -1;
}

/* Connected: AUTH (if the sentinels have a password), then the question. */
static void
ask(Asker *a)
{
	char		pw[1024];
	char		err[320];

	if (!read_secret(a->opt->sentinel_password, a->opt->sentinel_password_file,
					 pw, sizeof(pw), err, sizeof(err)))
	{
		fail(a, err);
		return;
	}
	a->pending = 0;
	if (pw[0])
	{
		redisAppendCommand(a->c, "AUTH %b", pw, strlen(pw));
		a->pending++;
	}
	memset(pw, 0, sizeof(pw));
	redisAppendCommand(a->c, "SENTINEL get-master-addr-by-name %s", a->opt->sentinel_master);
	a->pending++;
	a->state = ASK_WAITING;
	flush(a);
}

/*
 * The answer to SENTINEL get-master-addr-by-name: true, with a->found,
 * when it is an address.
 */
static bool
read_address(Asker *a, const redisReply *r)
{
	const char *name = a->opt->sentinel_master;

	if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
		r->element[0]->type == REDIS_REPLY_STRING &&
		r->element[1]->type == REDIS_REPLY_STRING)
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
		{
			char		why[320];

			snprintf(why, sizeof(why), "named an invalid address for master \"%s\"", name);
			fail(a, why);
			return false;
		}
		memcpy(a->found.host, h->str, h->len);
		a->found.host[h->len] = '\0';
		a->found.port = (int) port;
		return true;
	}
	if (r->type == REDIS_REPLY_NIL)
	{
		char		why[320];

		snprintf(why, sizeof(why), "does not know master \"%s\"", name);
		fail(a, why);
	}
	else if (r->type == REDIS_REPLY_ERROR)
	{
		char		why[200];

		snprintf(why, sizeof(why), "%.150s", r->str);
		fail(a, why);
	}
	else
		fail(a, "unexpected answer to SENTINEL get-master-addr-by-name");
	return false;
}

/* One reply; true when an address was found (the connection is closed). */
static bool
handle_reply(Asker *a, const redisReply *r)
{
	if (a->pending-- > 1)
	{
		/* AUTH's: never the command itself, which carries the password */
		if (r->type == REDIS_REPLY_ERROR)
			fail(a, "AUTH: the sentinel refused the password");
		return false;
	}
	if (!read_address(a, r))
		return false;
	close_conn(a);
	a->state = ASK_IDLE;
	return true;
}

AskResult
asker_io(Asker *a, short revents, hc_ms now)
{
	(void) now;
	if (a->c == NULL)
		return ASK_PENDING;
	if (a->state == ASK_CONNECTING)
	{
		int			err = 0;
		socklen_t	len = sizeof(err);

		if (!(revents & (POLLOUT | POLLERR | POLLHUP)))
			return ASK_PENDING;
		if (getsockopt(a->c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
			err = errno;
		if (err != 0)
		{
			fail(a, strerror(err));
			return ASK_PENDING;
		}
		a->c->flags |= REDIS_CONNECTED;
		ask(a);
		return ASK_PENDING;
	}
	if (a->state != ASK_WAITING)
		return ASK_PENDING;
	if ((revents & POLLOUT) && a->want_write)
	{
		flush(a);
		if (a->c == NULL)
			return ASK_PENDING;
	}
	if (revents & (POLLIN | POLLERR | POLLHUP))
	{
		void	   *reply = NULL;

		if (redisBufferRead(a->c) != REDIS_OK)
		{
			fail(a, a->c->err == REDIS_ERR_EOF ? "the sentinel closed the connection" :
				 (a->c->errstr[0] ? a->c->errstr : "read failed"));
			return ASK_PENDING;
		}
		for (;;)
		{
			bool		found;

			if (redisGetReplyFromReader(a->c, &reply) != REDIS_OK)
			{
				fail(a, "protocol error");
				return ASK_PENDING;
			}
			if (reply == NULL)
				break;
			found = handle_reply(a, reply);
			freeReplyObject(reply);
			if (found)
				return ASK_FOUND;
			if (a->c == NULL)
				return ASK_PENDING;
		}
	}
	return ASK_PENDING;
}
