/*
 * GET /api/events: a server-sent-events stream of the edge keys whose
 * answers changed, for browsers (edge/README.md, "Event stream").
 *
 *   id: 1459093245510742291/1234
 *   event: invalidate
 *   data: {"keys":["k...","k..."],"lsn":"0/1A2B3C4"}
 *
 *   event: reset
 *   data: {}
 *
 * `lsn` is the commit's WAL position, when the message has it: a client
 * that sends it as X-Min-LSN with the requests the event makes it send is
 * never answered from a hot standby (or a cache) that has not seen the
 * commit yet, which would answer "not modified".
 *
 * Events come from the feed thread (feed.c) into a backlog ring; every
 * subscriber is a cursor into the ring.  Nothing is copied per subscriber:
 * an event is rendered once per role when it arrives, and each stream
 * copies the renderings of its role out of the ring when its connection
 * can take them.
 *
 * Thousands of idle subscribers cost no thread: a stream with nothing to
 * send suspends its connection (MHD_suspend_connection, from the content
 * reader), which leaves MHD's event loop until an event, a keepalive or the
 * shutdown resumes it.  The rules that make that safe:
 *
 *   - A stream decides to suspend under its own lock, after it looked at
 *     the ring; the feed thread appends to the ring first and then takes
 *     each stream's lock to resume it.  So an event appended after a stream
 *     looked is seen by the resume, never lost between the two.
 *   - Only a stream marked suspended is resumed, once (MHD's resume of a
 *     connection that is not suspended is undefined).
 *   - A stream leaves the list in the response's free callback, under the
 *     list lock: after it, nothing touches its connection.
 *   - Lock order: the list, then a stream, then the ring (read).  MHD calls
 *     neither callback with a lock of its own that resume takes.
 *
 * A slow client costs a bounded amount: MHD holds at most one write buffer
 * of it (--max-header bytes), the kernel a socket buffer of SOCKET_SNDBUF
 * (not the megabytes it grows to by itself); a client that falls further
 * behind than the ring holds gets `reset` and continues from the newest
 * event, and one that reads nothing for --idle-timeout while output waits
 * is closed by MHD.  Last-Event-ID (or ?lastEventId=, for
 * clients that reconnect by themselves) resumes after that event while the
 * ring still has it, else starts with `reset`.
 */
#include "server.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define RING_MAX_BYTES (8u << 20)	/* the renderings the ring may hold */
#define MAX_EVENT_ID 63
#define BLOCK_SIZE 512			/* a response's buffer (HTTP/1.0 streams only) */
#define SOCKET_SNDBUF 65536		/* the kernel's part of a slow stream */

static const char hello_text[] = ": housing_cache events\nretry: 2000\n\n";
static const char reset_text[] = "event: reset\ndata: {}\n\n";
static const char keepalive_text[] = ": keepalive\n\n";

static EventsConfig settings;
static bool enabled;
static atomic_bool closing;

/* --- the ring ------------------------------------------------------------- */

typedef struct Entry
{
	char	   *id;				/* "<epoch>/<seq>", NULL: none (resets) */
	bool		reset;
	size_t		bytes;
	char	  **text;			/* per role: the event as sent, NULL: nothing */
} Entry;

static pthread_rwlock_t ring_lock = PTHREAD_RWLOCK_INITIALIZER;
static Entry **ring;
static uint64_t ring_cap;
static uint64_t ring_head;		/* the number of the next entry */
static uint64_t ring_tail;		/* the oldest entry kept */
static size_t ring_bytes;

static void
entry_free(Entry *e)
{
	if (e == NULL)
		return;
	if (e->text)
		for (int i = 0; i < settings.nroles; i++)
			free(e->text[i]);
	free(e->text);
	free(e->id);
	free(e);
}

static const char *
entry_text(const Entry *e, int role)
{
	return e->reset ? reset_text : e->text[role];
}

/* Write lock held. */
static void
evict_oldest(void)
{
	Entry	   *e = ring[ring_tail % ring_cap];

	ring_bytes -= e->bytes;
	entry_free(e);
	ring[ring_tail % ring_cap] = NULL;
	ring_tail++;
}

static void
ring_append(Entry *e)
{
	pthread_rwlock_wrlock(&ring_lock);
	if (ring_head - ring_tail == ring_cap)
		evict_oldest();
	ring[ring_head % ring_cap] = e;
	ring_head++;
	ring_bytes += e->bytes;
	while (ring_bytes > RING_MAX_BYTES && ring_head - ring_tail > 1)
		evict_oldest();
	pthread_rwlock_unlock(&ring_lock);
}

/* Read lock held: the number of the entry after the one with this id, or
 * false when the ring does not have it. */
static bool
ring_after(const char *id, uint64_t *pos)
{
	for (uint64_t i = ring_head; i > ring_tail; i--)
	{
		const Entry *e = ring[(i - 1) % ring_cap];

		if (e->id && strcmp(e->id, id) == 0)
		{
			*pos = i;
			return true;
		}
	}
	return false;
}

/* --- streams -------------------------------------------------------------- */

typedef struct Stream
{
	struct MHD_Connection *conn;
	int			role;			/* index in settings.roles */
	pthread_mutex_t lock;
	bool		suspended;		/* by its content reader, not resumed yet */
	bool		hello_due;
	bool		reset_due;
	uint64_t	pos;			/* the next ring entry to look at */
	unsigned	keepalive_seen;
	char	   *pending;		/* an event that did not fit at once */
	size_t		pending_len;
	size_t		pending_off;
	struct Stream *prev,
			   *next;
} Stream;

static pthread_mutex_t streams_lock = PTHREAD_MUTEX_INITIALIZER;
static Stream *streams;
static atomic_int nstreams;
static atomic_uint keepalive_gen;
static atomic_ulong stat_events,
			stat_resets,
			stat_behind;

/*
 * Resume the suspended streams of these roles (bit i: roles[i]).  Called
 * after the ring changed, or for a keepalive or the shutdown.
 */
static void
wake_streams(uint64_t roles)
{
	pthread_mutex_lock(&streams_lock);
	for (Stream *s = streams; s; s = s->next)
	{
		if (!((roles >> s->role) & 1))
			continue;
		pthread_mutex_lock(&s->lock);
		if (s->suspended)
		{
			s->suspended = false;
			MHD_resume_connection(s->conn);
		}
		pthread_mutex_unlock(&s->lock);
	}
	pthread_mutex_unlock(&streams_lock);
}

static uint64_t
all_roles(void)
{
	return settings.nroles >= 64 ? ~(uint64_t) 0 : ((uint64_t) 1 << settings.nroles) - 1;
}

/* Copy what fits of the pending event; true when it is all out. */
static bool
drain_pending(Stream *s, char *buf, size_t max, size_t *n)
{
	size_t		take = s->pending_len - s->pending_off;

	if (take > max - *n)
		take = max - *n;
	memcpy(buf + *n, s->pending + s->pending_off, take);
	*n += take;
	s->pending_off += take;
	if (s->pending_off < s->pending_len)
		return false;
	free(s->pending);
	s->pending = NULL;
	s->pending_len = s->pending_off = 0;
	return true;
}

/*
 * Put text into the buffer if it fits; if the buffer is still empty and it
 * does not fit, keep it as pending and put what fits.  False when it has to
 * wait for the next call.
 */
static bool
put(Stream *s, char *buf, size_t max, size_t *n, const char *text)
{
	size_t		len = strlen(text);

	if (len <= max - *n)
	{
		memcpy(buf + *n, text, len);
		*n += len;
		return true;
	}
	if (*n > 0)
		return false;
	s->pending = xstrndup(text, len);
	s->pending_len = len;
	s->pending_off = 0;
	drain_pending(s, buf, max, n);
	return true;
}

/* What the stream has to send now, into buf.  Stream lock held. */
static size_t
fill(Stream *s, char *buf, size_t max)
{
	size_t		n = 0;

	if (s->pending && !drain_pending(s, buf, max, &n))
		return n;
	if (s->hello_due && put(s, buf, max, &n, hello_text))
		s->hello_due = false;
	if (s->reset_due && !s->pending && put(s, buf, max, &n, reset_text))
		s->reset_due = false;
	if (s->hello_due || s->reset_due || s->pending)
		return n;

	pthread_rwlock_rdlock(&ring_lock);
	if (s->pos < ring_tail)
	{
		/* fell behind what the ring keeps: start over with a reset */
		atomic_fetch_add(&stat_behind, 1);
		s->pos = ring_head;
		if (!put(s, buf, max, &n, reset_text))
			s->reset_due = true;
	}
	while (s->pos < ring_head && !s->pending && !s->reset_due)
	{
		const char *t = entry_text(ring[s->pos % ring_cap], s->role);

		if (t != NULL && !put(s, buf, max, &n, t))
			break;
		s->pos++;
	}
	pthread_rwlock_unlock(&ring_lock);

	if (s->keepalive_seen != atomic_load(&keepalive_gen))
	{
		s->keepalive_seen = atomic_load(&keepalive_gen);
		if (n == 0)
			put(s, buf, max, &n, keepalive_text);
	}
	return n;
}

/* MHD's content reader: what there is, or suspend until there is more. */
static ssize_t
stream_read(void *cls, uint64_t offset, char *buf, size_t max)
{
	Stream	   *s = cls;
	size_t		n;

	(void) offset;
	pthread_mutex_lock(&s->lock);
	if (atomic_load(&closing))
	{
		pthread_mutex_unlock(&s->lock);
		return MHD_CONTENT_READER_END_OF_STREAM;
	}
	n = fill(s, buf, max);
	if (n == 0)
	{
		s->suspended = true;
		MHD_suspend_connection(s->conn);
	}
	pthread_mutex_unlock(&s->lock);
	return (ssize_t) n;
}

/* The response is done with (the connection ended): forget the stream. */
static void
stream_free(void *cls)
{
	Stream	   *s = cls;

	pthread_mutex_lock(&streams_lock);
	if (s->prev)
		s->prev->next = s->next;
	else
		streams = s->next;
	if (s->next)
		s->next->prev = s->prev;
	pthread_mutex_unlock(&streams_lock);
	atomic_fetch_sub(&nstreams, 1);
	pthread_mutex_destroy(&s->lock);
	free(s->pending);
	free(s);
}

/* --- events from the feed -------------------------------------------------- */

static void
on_deliver(void *arg, const char *id, const char *lsn, const FeedKey *keys, int nkeys)
{
	Entry	   *e = xcalloc(1, sizeof(Entry));
	uint64_t	roles = 0;

	(void) arg;
	e->id = id ? xstrdup(id) : NULL;
	e->text = xcalloc((size_t) settings.nroles, sizeof(char *));
	for (int r = 0; r < settings.nroles; r++)
	{
		Buf			b;
		bool		first = true;

		buf_init(&b);
		if (id)
			buf_printf(&b, "id: %s\n", id);
		buf_puts(&b, "event: invalidate\ndata: {\"keys\":[");
		for (int i = 0; i < nkeys; i++)
		{
			if (!((keys[i].roles >> r) & 1))
				continue;
			buf_printf(&b, "%s\"%s\"", first ? "" : ",", keys[i].key);
			first = false;
		}
		buf_putc(&b, ']');
		if (lsn)
			buf_printf(&b, ",\"lsn\":\"%s\"", lsn);
		buf_puts(&b, "}\n\n");
		if (!first && !b.oom)
		{
			e->text[r] = buf_steal(&b, NULL);
			e->bytes += strlen(e->text[r]);
			roles |= (uint64_t) 1 << r;
		}
		buf_free(&b);
	}
	atomic_fetch_add(&stat_events, 1);
	ring_append(e);
	wake_streams(roles);
}

static void
on_reset(void *arg, const char *why)
{
	static double logged_at;
	static unsigned long quiet;
	Entry	   *e = xcalloc(1, sizeof(Entry));

	(void) arg;
	e->reset = true;
	e->bytes = sizeof(reset_text);
	atomic_fetch_add(&stat_resets, 1);
	/* at most one line a second: a database outage can make one per message */
	if (mono_now() - logged_at >= 1.0)
	{
		if (quiet > 0)
			log_msg("events: %lu more reset(s) in the last second", quiet);
		log_msg("events: reset (%s), %d stream(s) open", why, atomic_load(&nstreams));
		logged_at = mono_now();
		quiet = 0;
	}
	else
		quiet++;
	ring_append(e);
	wake_streams(all_roles());
}

/* --- keepalives ------------------------------------------------------------ */

static pthread_t ticker;
static bool ticker_started;
static pthread_mutex_t ticker_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ticker_cv = PTHREAD_COND_INITIALIZER;
static bool ticker_stop;

/* Every --events-keepalive seconds, a comment on every stream: proxies and
 * browsers see the stream alive, and a client gone is noticed. */
static void *
ticker_main(void *arg)
{
	(void) arg;
	pthread_mutex_lock(&ticker_lock);
	while (!ticker_stop)
	{
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += settings.keepalive_s;
		if (pthread_cond_timedwait(&ticker_cv, &ticker_lock, &ts) == 0 || ticker_stop)
			continue;
		pthread_mutex_unlock(&ticker_lock);
		atomic_fetch_add(&keepalive_gen, 1);
		wake_streams(all_roles());
		pthread_mutex_lock(&ticker_lock);
	}
	pthread_mutex_unlock(&ticker_lock);
	return NULL;
}

/* --- the handler ------------------------------------------------------------ */

/* lastEventId=... of the query string, decoded, or NULL. */
static char *
query_last_event_id(const char *query)
{
	for (const char *p = query; p && *p;)
	{
		const char *amp = strchr(p, '&');
		size_t		seg = amp ? (size_t) (amp - p) : strlen(p);

		if (seg > 12 && strncmp(p, "lastEventId=", 12) == 0)
			return pct_decode(p + 12, seg - 12, true, NULL);
		p = amp ? amp + 1 : NULL;
	}
	return NULL;
}

static bool
valid_event_id(const char *id)
{
	size_t		n = strlen(id);

	if (n == 0 || n > MAX_EVENT_ID)
		return false;
	for (const char *p = id; *p; p++)
		if (*p <= 0x20 || *p >= 0x7F)
			return false;
	return true;
}

Reply
events_handle(struct MHD_Connection *c, const char *method, const char *role, const char *query)
{
	const char *header_id = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Last-Event-ID");
	char	   *query_id = NULL;
	const char *last_id;
	Stream	   *s;
	Reply		rep;
	int			r = -1;

	if (!enabled)
		return reply_json_error(404, "HC404",
								"the event stream is off: hc_http runs without --redis-host or --redis-sentinels",
								NULL, NULL);
	if (strcmp(method, "GET") != 0)
	{
		rep = reply_json_error(405, "HC405", "only GET is allowed on /api/events", NULL, NULL);
		if (rep.resp)
			MHD_add_response_header(rep.resp, "Allow", "GET");
		return rep;
	}
	if (atomic_load(&closing))
		return reply_json_error(503, "HC503", "the server is shutting down", NULL, NULL);
	for (int i = 0; i < settings.nroles; i++)
		if (strcmp(settings.roles[i], role) == 0)
			r = i;
	if (r < 0)
		return reply_json_error(403, "HC403", "this role may not subscribe", NULL, NULL);

	s = xcalloc(1, sizeof(Stream));
	pthread_mutex_init(&s->lock, NULL);
	s->conn = c;
	s->role = r;
	s->hello_due = true;
	s->keepalive_seen = atomic_load(&keepalive_gen);
	if (header_id == NULL)
		query_id = query_last_event_id(query);
	last_id = header_id ? header_id : query_id;
	pthread_rwlock_rdlock(&ring_lock);
	s->pos = ring_head;
	if (last_id && *last_id)
		s->reset_due = !valid_event_id(last_id) || !ring_after(last_id, &s->pos);
	pthread_rwlock_unlock(&ring_lock);
	free(query_id);

	rep.status = 200;
	rep.resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, BLOCK_SIZE, stream_read, s,
												 stream_free);
	if (rep.resp == NULL)
	{
		pthread_mutex_destroy(&s->lock);
		free(s);
		return reply_json_error(500, "HC500", "out of memory", NULL, NULL);
	}
	/* from here on, stream_free forgets it */
	pthread_mutex_lock(&streams_lock);
	s->next = streams;
	if (streams)
		streams->prev = s;
	streams = s;
	pthread_mutex_unlock(&streams_lock);
	atomic_fetch_add(&nstreams, 1);
	{
		const union MHD_ConnectionInfo *ci =
			MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
		int			sndbuf = SOCKET_SNDBUF;

		if (ci)
			setsockopt(ci->connect_fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	}
	MHD_add_response_header(rep.resp, "Content-Type", "text/event-stream; charset=utf-8");
	MHD_add_response_header(rep.resp, "Cache-Control", "no-store");
	MHD_add_response_header(rep.resp, "X-Accel-Buffering", "no");
	return rep;
}

/* --- life cycle ------------------------------------------------------------- */

bool
events_init(const EventsConfig *conf)
{
	FeedConfig	fc;

	settings = *conf;
	if (settings.redis_host == NULL && settings.nsentinels == 0)
	{
		log_msg("events: off (no --redis-host or --redis-sentinels): GET /api/events answers 404");
		return true;
	}
	ring_cap = (uint64_t) (settings.backlog > 0 ? settings.backlog : 1);
	ring = xcalloc((size_t) ring_cap, sizeof(Entry *));
	fc = (FeedConfig) {
		.redis_host = settings.redis_host,
		.redis_port = settings.redis_port,
		.redis_password = settings.redis_password,
		.sentinels = settings.sentinels,
		.nsentinels = settings.nsentinels,
		.sentinel_master = settings.sentinel_master,
		.sentinel_password = settings.sentinel_password,
		.redis_db = settings.redis_db,
		.channel = settings.channel,
		.connect_timeout_ms = 1000,
		.reorder_ms = settings.reorder_ms,
		.pool = settings.pool,
		.pool_timeout_ms = settings.pool_timeout_ms,
		.roles = settings.roles,
		.nroles = settings.nroles,
		.deliver = on_deliver,
		.reset = on_reset,
	};
	ticker_started = pthread_create(&ticker, NULL, ticker_main, NULL) == 0;
	if (!ticker_started || !feed_start(&fc))
	{
		log_msg("events: cannot start a thread");
		events_shutdown();
		return false;
	}
	enabled = true;
	return true;
}

void
events_reload(void)
{
	if (!enabled)
		return;
	log_msg("events: %d stream(s) open; %lu event(s), %lu reset(s), %lu stream(s) fell behind",
			atomic_load(&nstreams), atomic_load(&stat_events), atomic_load(&stat_resets),
			atomic_load(&stat_behind));
	feed_reload();
}

void
events_close_all(void)
{
	if (!enabled)
		return;
	atomic_store(&closing, true);
	wake_streams(all_roles());
}

void
events_shutdown(void)
{
	feed_stop();
	if (ticker_started)
	{
		pthread_mutex_lock(&ticker_lock);
		ticker_stop = true;
		pthread_cond_signal(&ticker_cv);
		pthread_mutex_unlock(&ticker_lock);
		pthread_join(ticker, NULL);
		ticker_started = false;
	}
	if (ring)
	{
		while (ring_tail < ring_head)
			evict_oldest();
		free(ring);
		ring = NULL;
	}
	enabled = false;
}
