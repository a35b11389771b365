/*
 * hc_http: command line, the libmicrohttpd daemon, request limits and the
 * connection reaper, routing (/api/events, /api/rpc, static files),
 * signals and graceful shutdown.
 */
#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libpq-fe.h>

/* The settings: the command line over the environment over the defaults. */
typedef struct Config
{
	const char *listen;
	int			port;
	const char *db;
	const char *read_db;		/* NULL: no read database */
	const char *static_dir;		/* realpath, or NULL */
	const char *schema;
	int			pool;
	int			threads;
	const char *jwt_secret_env;
	unsigned char *jwt_secret;
	size_t		jwt_secret_len;
	const char *anon_role;
	char	  **jwt_roles;		/* NULL-terminated */
	int			statement_timeout_ms;
	int			pool_timeout_ms;
	size_t		max_body;
	size_t		max_url;
	size_t		max_header;
	unsigned	idle_timeout_s;
	unsigned	request_timeout_s;
	unsigned	max_connections;
	unsigned	shutdown_timeout_s;
	const char *pid_file;
	bool		quiet;
	/* the event stream (events.c); redis_host NULL and no sentinels: off */
	const char *redis_host;
	int			redis_port;
	char	   *redis_password;
	HostPort	sentinels[MAX_SENTINELS];	/* none: redis_host, redis_port */
	int			nsentinels;
	const char *sentinel_master;
	char	   *sentinel_password;
	int			redis_db;
	const char *redis_channel;
	int			events_backlog;
	int			events_keepalive_s;
	int			events_reorder_ms;
	char	  **event_roles;	/* the anonymous role and the token roles */
	int			nevent_roles;
} Config;

static Config cfg;
static Pool *db_pool;
static Pool *read_pool;			/* --read-db, or NULL */

static atomic_int active_requests;
static atomic_bool draining;

/* ------------------------------------------------------------------------
 * Connection tracking: the idle timeout of MHD resets at every byte, so a
 * client that trickles its headers (slowloris) would never time out.  Each
 * connection is tracked from its start (or the end of its previous request)
 * until its request has been received; the reaper thread shuts down the
 * socket of any that takes longer than --request-timeout.  MHD then sees
 * the connection closed and cleans it up itself.
 * ------------------------------------------------------------------------ */

enum
{
	PHASE_RECEIVING, PHASE_PROCESSING, PHASE_RESPONDING
};

typedef struct ConnTrack
{
	int			fd;
	_Atomic int phase;
	_Atomic double since;
	bool		reaped;
	struct ConnTrack *prev,
			   *next;
} ConnTrack;

static pthread_mutex_t track_lock = PTHREAD_MUTEX_INITIALIZER;
static ConnTrack *track_head;
static pthread_t reaper_thread;
static bool reaper_started;
static pthread_mutex_t reaper_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t reaper_cv = PTHREAD_COND_INITIALIZER;
static bool reaper_stop;
static atomic_long reaped_total;

static void
notify_connection(void *cls, struct MHD_Connection *c, void **socket_context,
				  enum MHD_ConnectionNotificationCode toe)
{
	ConnTrack  *t;

	(void) cls;
	if (toe == MHD_CONNECTION_NOTIFY_STARTED)
	{
		const union MHD_ConnectionInfo *ci =
			MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);

		t = xcalloc(1, sizeof(ConnTrack));
		t->fd = ci ? ci->connect_fd : -1;
		atomic_store(&t->phase, PHASE_RECEIVING);
		atomic_store(&t->since, mono_now());
		pthread_mutex_lock(&track_lock);
		t->next = track_head;
		if (track_head)
			track_head->prev = t;
		track_head = t;
		pthread_mutex_unlock(&track_lock);
		*socket_context = t;
	}
	else if (toe == MHD_CONNECTION_NOTIFY_CLOSED)
	{
		/* called before MHD closes the socket: the fd is still ours here */
		t = *socket_context;
		if (t == NULL)
			return;
		pthread_mutex_lock(&track_lock);
		if (t->prev)
			t->prev->next = t->next;
		else
			track_head = t->next;
		if (t->next)
			t->next->prev = t->prev;
		pthread_mutex_unlock(&track_lock);
		free(t);
		*socket_context = NULL;
	}
}

static ConnTrack *
conn_track(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

	return ci ? (ConnTrack *) ci->socket_context : NULL;
}

static void *
reaper_main(void *arg)
{
	(void) arg;
	pthread_mutex_lock(&reaper_lock);
	while (!reaper_stop)
	{
		struct timespec ts;
		double		now = mono_now();
		int			n = 0;

		pthread_mutex_lock(&track_lock);
		for (ConnTrack *t = track_head; t; t = t->next)
		{
			if (t->reaped || t->fd < 0 || atomic_load(&t->phase) != PHASE_RECEIVING)
				continue;
			if (now - atomic_load(&t->since) > (double) cfg.request_timeout_s)
			{
				shutdown(t->fd, SHUT_RDWR);
				t->reaped = true;
				n++;
			}
		}
		pthread_mutex_unlock(&track_lock);
		if (n > 0)
		{
			atomic_fetch_add(&reaped_total, n);
			if (!cfg.quiet)
				log_msg("closed %d connection(s) whose request was not received within %u s",
						n, cfg.request_timeout_s);
		}
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 250 * 1000000L;
		if (ts.tv_nsec >= 1000000000L)
		{
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&reaper_cv, &reaper_lock, &ts);
	}
	pthread_mutex_unlock(&reaper_lock);
	return NULL;
}

/* ------------------------------------------------------------------------
 * Requests
 * ------------------------------------------------------------------------ */

/* The per-request state (MHD's req_cls), created by the URI log callback. */
typedef struct Request
{
	char	   *uri;			/* raw request target, or its start if too long */
	bool		uri_too_long;
	bool		started;		/* the handler has seen the headers */
	bool		responded;
	bool		is_api_post;	/* collecting a body for the API */
	bool		form_body;		/* ... as application/x-www-form-urlencoded */
	Buf			body;
	bool		body_too_large;
	size_t		body_seen;
	double		t0;
	ConnTrack  *track;
} Request;

/* Called with the raw request target before anything else: our req_cls. */
static void *
uri_log(void *cls, const char *uri, struct MHD_Connection *c)
{
	Request    *r = xcalloc(1, sizeof(Request));
	size_t		n = strlen(uri);

	(void) cls;
	if (n > cfg.max_url)
	{
		r->uri_too_long = true;
		r->uri = xstrndup(uri, 128);
	}
	else
		r->uri = xstrndup(uri, n);
	buf_init(&r->body);
	r->t0 = mono_now();
	r->track = conn_track(c);
	atomic_fetch_add(&active_requests, 1);
	return r;
}

static void
request_completed(void *cls, struct MHD_Connection *c, void **req_cls,
				  enum MHD_RequestTerminationCode toe)
{
	Request    *r = *req_cls;
	ConnTrack  *t = conn_track(c);

	(void) cls;
	(void) toe;
	if (t)
	{
		/* keep-alive: the next request's clock starts now */
		atomic_store(&t->since, mono_now());
		atomic_store(&t->phase, PHASE_RECEIVING);
	}
	if (r == NULL)
		return;
	buf_free(&r->body);
	free(r->uri);
	free(r);
	*req_cls = NULL;
	atomic_fetch_sub(&active_requests, 1);
}

static void
log_request(struct MHD_Connection *c, const char *method, const Request *r, unsigned status)
{
	const union MHD_ConnectionInfo *ci;
	char		addr[INET6_ADDRSTRLEN] = "-";
	char		uri[400];
	size_t		o = 0;

	if (cfg.quiet)
		return;
	ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (ci && ci->client_addr)
	{
		if (ci->client_addr->sa_family == AF_INET)
			inet_ntop(AF_INET, &((struct sockaddr_in *) ci->client_addr)->sin_addr, addr, sizeof(addr));
		else if (ci->client_addr->sa_family == AF_INET6)
			inet_ntop(AF_INET6, &((struct sockaddr_in6 *) ci->client_addr)->sin6_addr, addr, sizeof(addr));
	}
	/* printable ASCII only, bounded */
	for (const char *p = r->uri ? r->uri : "-"; *p && o < sizeof(uri) - 4; p++)
		uri[o++] = (*p > 0x20 && *p < 0x7F && *p != '"') ? *p : '?';
	if (r->uri_too_long || (r->uri && strlen(r->uri) > o))
	{
		memcpy(uri + o, "...", 3);
		o += 3;
	}
	uri[o] = '\0';
	log_msg("%s \"%.16s %s\" %u %.1fms", addr, method, uri, status, (mono_now() - r->t0) * 1000.0);
}

static enum MHD_Result
send_reply(struct MHD_Connection *c, Request *r, const char *method, Reply rep)
{
	enum MHD_Result ret;

	r->responded = true;
	if (r->track)
		atomic_store(&r->track->phase, PHASE_RESPONDING);
	if (rep.resp == NULL)
		return MHD_NO;			/* out of memory: drop the connection */
	if (atomic_load(&draining))
		MHD_add_response_header(rep.resp, "Connection", "close");
	ret = MHD_queue_response(c, rep.status, rep.resp);
	MHD_destroy_response(rep.resp);
	log_request(c, method, r, rep.status);
	return ret;
}

static bool
parse_content_length(const char *s, size_t *out)
{
	size_t		v = 0;

	if (s == NULL || *s == '\0')
		return false;
	for (; *s; s++)
	{
		if (*s < '0' || *s > '9')
			return false;
		if (v > (SIZE_MAX - 9) / 10)
			return false;
		v = v * 10 + (size_t) (*s - '0');
	}
	*out = v;
	return true;
}

/* Content-Type `ct` is `type`, with parameters or not (case-insensitive). */
static bool
media_type_is(const char *ct, const char *type)
{
	size_t		n = strlen(type);

	while (*ct == ' ')
		ct++;
	return strncasecmp(ct, type, n) == 0 &&
		(ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ' || ct[n] == '\t');
}

static bool
is_events_path(const char *path, size_t len)
{
	return len == 11 && memcmp(path, "/api/events", 11) == 0;
}

/* /api/events: the subscriber's role as for an API call, then the stream. */
static enum MHD_Result
handle_events(struct MHD_Connection *c, Request *r, const char *method, const char *query)
{
	char	   *role = NULL;
	Reply		rep;

	if (!api_authenticate(c, &role, &rep))
		return send_reply(c, r, method, rep);
	rep = events_handle(c, method, role, query);
	free(role);
	return send_reply(c, r, method, rep);
}

static bool
is_api_path(const char *path, size_t len)
{
	return (len == 4 && memcmp(path, "/api", 4) == 0) ||
		(len >= 5 && memcmp(path, "/api/", 5) == 0);
}

static enum MHD_Result
handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
	   const char *version, const char *upload_data, size_t *upload_data_size, void **req_cls)
{
	Request    *r = *req_cls;
	const char *q;
	size_t		path_len;

	(void) cls;
	(void) url;
	(void) version;
	if (r == NULL)
		return MHD_NO;			/* cannot happen: uri_log always runs first */

	if (!r->started)
	{
		const char *cl;
		size_t		clen = 0;

		r->started = true;
		if (r->track)
			atomic_store(&r->track->phase, PHASE_PROCESSING);
		if (r->uri_too_long)
		{
			char		msg[128];

			snprintf(msg, sizeof(msg), "the request URI is longer than %zu bytes", cfg.max_url);
			return send_reply(c, r, method, reply_json_error(414, "HC414", msg, NULL, NULL));
		}
		if (r->uri[0] != '/')
			return send_reply(c, r, method, reply_text(400, "400 Bad Request\n"));
		cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
		if (cl && (!parse_content_length(cl, &clen)))
			return send_reply(c, r, method, reply_text(400, "400 Bad Request\n"));
		if (clen > cfg.max_body)
		{
			char		msg[128];

			snprintf(msg, sizeof(msg), "the request body is larger than %zu bytes", cfg.max_body);
			return send_reply(c, r, method, reply_json_error(413, "HC413", msg, NULL, NULL));
		}
		q = strchr(r->uri, '?');
		path_len = q ? (size_t) (q - r->uri) : strlen(r->uri);
		if (is_api_path(r->uri, path_len) && strcmp(method, "POST") == 0)
		{
			const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");

			if (ct && media_type_is(ct, "application/x-www-form-urlencoded"))
				r->form_body = true;
			else if (ct && !media_type_is(ct, "application/json"))
				return send_reply(c, r, method,
								  reply_json_error(415, "PGRST107",
												   "the request body must be application/json or application/x-www-form-urlencoded",
												   NULL, NULL));
			r->is_api_post = true;
		}
		/*
		 * Answer once the whole request is in (the next call): a response
		 * queued before that makes MHD close the connection.
		 */
		if (r->track)
			atomic_store(&r->track->phase, PHASE_RECEIVING);	/* a body may follow */
		return MHD_YES;
	}

	if (*upload_data_size > 0)
	{
		size_t		n = *upload_data_size;

		*upload_data_size = 0;
		r->body_seen += n;
		if (r->responded)
			return MHD_YES;		/* a body after an early reply: discard */
		if (r->body_seen > cfg.max_body)
		{
			/* chunked, without a Content-Length: stop reading at once */
			r->body_too_large = true;
			buf_free(&r->body);
			return r->body_seen > 4 * cfg.max_body ? MHD_NO : MHD_YES;
		}
		if (r->is_api_post)
			buf_append(&r->body, upload_data, n);
		return MHD_YES;
	}

	/* the whole request is in */
	if (r->responded)
		return MHD_YES;
	if (r->track)
		atomic_store(&r->track->phase, PHASE_PROCESSING);
	if (r->body_too_large || r->body.oom)
	{
		char		msg[128];

		snprintf(msg, sizeof(msg), "the request body is larger than %zu bytes", cfg.max_body);
		return send_reply(c, r, method, reply_json_error(413, "HC413", msg, NULL, NULL));
	}
	q = strchr(r->uri, '?');
	path_len = q ? (size_t) (q - r->uri) : strlen(r->uri);
	if (is_events_path(r->uri, path_len))
		return handle_events(c, r, method, q ? q + 1 : "");
	if (is_api_path(r->uri, path_len))
		return send_reply(c, r, method, api_handle(c, method, r->uri, path_len, q ? q + 1 : "",
													&r->body, r->form_body));
	return send_reply(c, r, method, static_handle(c, method, r->uri, path_len));
}

/* clang's -Wformat-nonliteral accepts the vsnprintf only with the attribute */
static void mhd_logger(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

static void
mhd_logger(void *cls, const char *fmt, va_list ap)
{
	char		line[512];

	(void) cls;
	if (cfg.quiet)
		return;
	vsnprintf(line, sizeof(line), fmt, ap);
	line[strcspn(line, "\n")] = '\0';
	log_msg("mhd: %s", line);
}

/* ------------------------------------------------------------------------
 * Command line
 * ------------------------------------------------------------------------ */

static void
usage(FILE *out)
{
	fprintf(out,
			"hc_http %s - development HTTP server of housing_cache\n"
			"\n"
			"Serves a static web export at / and the functions of the api schema at\n"
			"/api/rpc/<fn> (GET with query parameters, POST with a JSON object), as\n"
			"PostgREST v13 does: one transaction per request, the role from a JWT\n"
			"(HS256) or the anonymous role, response.headers/response.status honoured.\n"
			"\n"
			"Usage: hc_http [options]\n"
			"       hc_http --mint-token ROLE [--token-ttl SECONDS] [--jwt-secret-env VAR]\n"
			"\n"
			"  --listen ADDR            address (or host name) to listen on [HC_HTTP_LISTEN, 127.0.0.1]\n"
			"  --port N                 port, 0 = any free one [HC_HTTP_PORT, 8080]\n"
			"  --db CONNINFO            libpq connection string or URI; empty means the\n"
			"                           PG* environment [HC_HTTP_DB]\n"
			"  --read-db CONNINFO       a read database (a hot standby of --db): GET and\n"
			"                           HEAD run there, and on --db when it cannot answer;\n"
			"                           empty means none [HC_HTTP_READ_DB]\n"
			"  --static DIR             directory served at / [HC_HTTP_STATIC; none: API only]\n"
			"  --schema NAME            exposed schema [HC_HTTP_SCHEMA, api]\n"
			"  --pool N                 database connections (to each database)\n"
			"                           [HC_HTTP_POOL, 8]\n"
			"  --threads N              HTTP worker threads [HC_HTTP_THREADS, = --pool]\n"
			"  --jwt-secret-env VAR     environment variable holding the JWT secret\n"
			"                           (at least 32 bytes) [HC_JWT_SECRET]\n"
			"  --anon-role ROLE         role of requests without a token [web_anon]\n"
			"  --jwt-roles LIST         roles a token may claim [web_anon,web_editor]\n"
			"  --statement-timeout MS   per statement [5000]\n"
			"  --pool-timeout MS        longest wait for a free connection, then 503 [2000]\n"
			"  --max-body BYTES         request body limit, 413 beyond [65536]\n"
			"  --max-url BYTES          request target limit, 414 beyond [8192]\n"
			"  --max-header BYTES       memory for a request's line and headers [32768]\n"
			"  --idle-timeout S         close connections idle this long [15]\n"
			"  --request-timeout S      close connections whose request is not fully\n"
			"                           received within this time (slow clients) [30]\n"
			"  --max-connections N      concurrent connections [4096]\n"
			"  --shutdown-timeout S     on SIGTERM/SIGINT, wait this long for requests\n"
			"                           in flight [10]\n"
			"  --redis-host HOST        Redis of the engine's invalidation channel: serve\n"
			"                           GET /api/events [HC_HTTP_REDIS_HOST; none: off]\n"
			"  --redis-port N           [HC_HTTP_REDIS_PORT, 6379]\n"
			"  --redis-password PW      [HC_HTTP_REDIS_PASSWORD]\n"
			"  --redis-password-file F  the password in a file (its first line)\n"
			"                           [HC_HTTP_REDIS_PASSWORD_FILE]\n"
			"  --redis-db N             [HC_HTTP_REDIS_DB, 0]\n"
			"  --redis-sentinels LIST   host:port of each Redis Sentinel, comma-separated\n"
			"                           ([addr]:port for IPv6): serve GET /api/events from\n"
			"                           the master they name, and follow its failovers;\n"
			"                           --redis-host and --redis-port are then not used\n"
			"                           [HC_HTTP_REDIS_SENTINELS; none]\n"
			"  --redis-sentinel-master NAME  the name they monitor the master by\n"
			"                           [HC_HTTP_REDIS_SENTINEL_MASTER, mymaster]\n"
			"  --redis-sentinel-password PW  the sentinels' password (AUTH)\n"
			"                           [HC_HTTP_REDIS_SENTINEL_PASSWORD]\n"
			"  --redis-sentinel-password-file F  ... in a file (its first line)\n"
			"                           [HC_HTTP_REDIS_SENTINEL_PASSWORD_FILE]\n"
			"  --redis-channel NAME     housing_cache.channel of the database\n"
			"                           [HC_HTTP_REDIS_CHANNEL, housing_cache:invalidations]\n"
			"  --events-backlog N       events kept for Last-Event-ID [1024]\n"
			"  --events-keepalive S     a comment on idle streams this often [15]\n"
			"  --events-reorder-ms MS   how long a missing message number may take\n"
			"                           before subscribers get a reset [1000]\n"
			"  --pid-file PATH          write the process id there\n"
			"  --quiet                  no per-request log lines\n"
			"  --mint-token ROLE        print a token for ROLE signed with the secret, exit\n"
			"  --token-ttl S            lifetime of a minted token [86400]\n"
			"  --help, --version\n"
			"\n"
			"SIGHUP reloads the schema cache and the event stream's privileges.\n"
			"Logs go to stderr.\n",
			HC_HTTP_VERSION);
}

static const char *
env_or(const char *name, const char *def)
{
	const char *v = getenv(name);

	return v && *v ? v : def;
}

static long
parse_long(const char *opt, const char *s, long min, long max)
{
	char	   *end;
	long		v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end != '\0' || v < min || v > max)
	{
		fprintf(stderr, "hc_http: invalid value for %s: \"%s\" (expected %ld..%ld)\n",
				opt, s, min, max);
		exit(2);
	}
	return v;
}

static char **
split_roles(const char *s)
{
	size_t		n = 1;
	char	  **out;
	char	   *copy = xstrdup(s),
			   *save = NULL,
			   *tok;
	size_t		i = 0;

	for (const char *p = s; *p; p++)
		n += *p == ',';
	out = xcalloc(n + 1, sizeof(char *));
	for (tok = strtok_r(copy, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save))
		out[i++] = xstrdup(tok);
	free(copy);
	return out;
}

static void
free_roles(char **roles)
{
	for (int i = 0; roles && roles[i]; i++)
		free(roles[i]);
	free(roles);
}

enum
{
	OPT_LISTEN = 256, OPT_PORT, OPT_DB, OPT_READ_DB, OPT_STATIC, OPT_SCHEMA, OPT_POOL, OPT_THREADS,
	OPT_JWT_ENV, OPT_ANON, OPT_ROLES, OPT_STMT, OPT_POOLTO, OPT_BODY, OPT_URL, OPT_HEADER,
	OPT_IDLE, OPT_REQTO, OPT_MAXCONN, OPT_SHUTDOWN, OPT_PID, OPT_QUIET, OPT_MINT, OPT_TTL,
	OPT_REDIS_HOST, OPT_REDIS_PORT, OPT_REDIS_PW, OPT_REDIS_PW_FILE, OPT_REDIS_DB,
	OPT_REDIS_CHANNEL, OPT_SENTINELS, OPT_SENTINEL_MASTER, OPT_SENTINEL_PW, OPT_SENTINEL_PW_FILE,
	OPT_EV_BACKLOG, OPT_EV_KEEPALIVE, OPT_EV_REORDER,
	OPT_HELP, OPT_VERSION
};

/* The first line of a file, without its line end (a password file). */
static char *
read_first_line(const char *opt, const char *path)
{
	FILE	   *f = fopen(path, "r");
	char		line[1024];

	if (f == NULL || fgets(line, sizeof(line), f) == NULL)
	{
		fprintf(stderr, "hc_http: %s %s: %s\n", opt, path, f ? "empty" : strerror(errno));
		if (f)
			fclose(f);
		exit(2);
	}
	fclose(f);
	line[strcspn(line, "\r\n")] = '\0';
	return xstrdup(line);
}

/* The name the sentinels know the master by: as the engine's
 * housing_cache.redis_sentinel_master and hc_purger take it. */
static void
check_master_name(const char *opt, const char *name)
{
	const char *why = NULL;

	if (*name == '\0')
		why = "empty";
	else if (strlen(name) > HOST_MAXLEN)
		why = "longer than 255 characters";
	for (const char *c = name; why == NULL && *c; c++)
		if ((unsigned char) *c <= ' ' || *c == 0x7f)
			why = "blanks or control characters";
	if (why)
	{
		fprintf(stderr, "hc_http: invalid value for %s: \"%.100s\" (%s)\n", opt, name, why);
		exit(2);
	}
}

/* The roles a subscriber of the event stream may have: the anonymous one
 * first, then the token roles. */
static void
event_roles(void)
{
	int			n = 0;

	for (int i = 0; cfg.jwt_roles[i]; i++)
		n++;
	cfg.event_roles = xcalloc((size_t) n + 2, sizeof(char *));
	cfg.event_roles[cfg.nevent_roles++] = xstrdup(cfg.anon_role);
	for (int i = 0; cfg.jwt_roles[i]; i++)
	{
		bool		dup = false;

		for (int j = 0; j < cfg.nevent_roles; j++)
			dup |= strcmp(cfg.event_roles[j], cfg.jwt_roles[i]) == 0;
		if (!dup)
			cfg.event_roles[cfg.nevent_roles++] = xstrdup(cfg.jwt_roles[i]);
	}
	if (cfg.nevent_roles > 64 && (cfg.redis_host || cfg.nsentinels > 0))
	{
		fprintf(stderr, "hc_http: the event stream serves at most 64 roles (--anon-role and --jwt-roles)\n");
		exit(2);
	}
}

static const char *mint_role;
static long token_ttl = 86400;

static void
parse_args(int argc, char **argv)
{
	static const struct option opts[] = {
		{"listen", required_argument, NULL, OPT_LISTEN},
		{"port", required_argument, NULL, OPT_PORT},
		{"db", required_argument, NULL, OPT_DB},
		{"read-db", required_argument, NULL, OPT_READ_DB},
		{"static", required_argument, NULL, OPT_STATIC},
		{"schema", required_argument, NULL, OPT_SCHEMA},
		{"pool", required_argument, NULL, OPT_POOL},
		{"threads", required_argument, NULL, OPT_THREADS},
		{"jwt-secret-env", required_argument, NULL, OPT_JWT_ENV},
		{"anon-role", required_argument, NULL, OPT_ANON},
		{"jwt-roles", required_argument, NULL, OPT_ROLES},
		{"statement-timeout", required_argument, NULL, OPT_STMT},
		{"pool-timeout", required_argument, NULL, OPT_POOLTO},
		{"max-body", required_argument, NULL, OPT_BODY},
		{"max-url", required_argument, NULL, OPT_URL},
		{"max-header", required_argument, NULL, OPT_HEADER},
		{"idle-timeout", required_argument, NULL, OPT_IDLE},
		{"request-timeout", required_argument, NULL, OPT_REQTO},
		{"max-connections", required_argument, NULL, OPT_MAXCONN},
		{"shutdown-timeout", required_argument, NULL, OPT_SHUTDOWN},
		{"pid-file", required_argument, NULL, OPT_PID},
		{"quiet", no_argument, NULL, OPT_QUIET},
		{"mint-token", required_argument, NULL, OPT_MINT},
		{"token-ttl", required_argument, NULL, OPT_TTL},
		{"redis-host", required_argument, NULL, OPT_REDIS_HOST},
		{"redis-port", required_argument, NULL, OPT_REDIS_PORT},
		{"redis-password", required_argument, NULL, OPT_REDIS_PW},
		{"redis-password-file", required_argument, NULL, OPT_REDIS_PW_FILE},
		{"redis-db", required_argument, NULL, OPT_REDIS_DB},
		{"redis-channel", required_argument, NULL, OPT_REDIS_CHANNEL},
		{"redis-sentinels", required_argument, NULL, OPT_SENTINELS},
		{"redis-sentinel-master", required_argument, NULL, OPT_SENTINEL_MASTER},
		{"redis-sentinel-password", required_argument, NULL, OPT_SENTINEL_PW},
		{"redis-sentinel-password-file", required_argument, NULL, OPT_SENTINEL_PW_FILE},
		{"events-backlog", required_argument, NULL, OPT_EV_BACKLOG},
		{"events-keepalive", required_argument, NULL, OPT_EV_KEEPALIVE},
		{"events-reorder-ms", required_argument, NULL, OPT_EV_REORDER},
		{"help", no_argument, NULL, OPT_HELP},
		{"version", no_argument, NULL, OPT_VERSION},
		{NULL, 0, NULL, 0}
	};
	const char *roles = "web_anon,web_editor";
	const char *static_dir = env_or("HC_HTTP_STATIC", NULL);
	const char *redis_password = env_or("HC_HTTP_REDIS_PASSWORD", NULL);
	const char *redis_password_file = env_or("HC_HTTP_REDIS_PASSWORD_FILE", NULL);
	const char *sentinels = env_or("HC_HTTP_REDIS_SENTINELS", NULL);
	const char *sentinels_from = "HC_HTTP_REDIS_SENTINELS";
	const char *sentinel_master_from = "HC_HTTP_REDIS_SENTINEL_MASTER";
	const char *sentinel_password = env_or("HC_HTTP_REDIS_SENTINEL_PASSWORD", NULL);
	const char *sentinel_password_file = env_or("HC_HTTP_REDIS_SENTINEL_PASSWORD_FILE", NULL);
	bool		redis_addr_given = env_or("HC_HTTP_REDIS_HOST", NULL) || env_or("HC_HTTP_REDIS_PORT", NULL);
	int			o;

	cfg.listen = env_or("HC_HTTP_LISTEN", "127.0.0.1");
	cfg.port = (int) parse_long("HC_HTTP_PORT", env_or("HC_HTTP_PORT", "8080"), 0, 65535);
	cfg.db = env_or("HC_HTTP_DB", "");
	cfg.read_db = env_or("HC_HTTP_READ_DB", NULL);
	cfg.schema = env_or("HC_HTTP_SCHEMA", "api");
	cfg.pool = (int) parse_long("HC_HTTP_POOL", env_or("HC_HTTP_POOL", "8"), 1, 512);
	cfg.threads = (int) parse_long("HC_HTTP_THREADS", env_or("HC_HTTP_THREADS", "0"), 0, 512);
	cfg.jwt_secret_env = "HC_JWT_SECRET";
	cfg.anon_role = "web_anon";
	cfg.statement_timeout_ms = 5000;
	cfg.pool_timeout_ms = 2000;
	cfg.max_body = 65536;
	cfg.max_url = 8192;
	cfg.max_header = 32768;
	cfg.idle_timeout_s = 15;
	cfg.request_timeout_s = 30;
	cfg.max_connections = 4096;
	cfg.shutdown_timeout_s = 10;
	cfg.redis_host = env_or("HC_HTTP_REDIS_HOST", NULL);
	cfg.redis_port = (int) parse_long("HC_HTTP_REDIS_PORT", env_or("HC_HTTP_REDIS_PORT", "6379"), 1, 65535);
	cfg.redis_db = (int) parse_long("HC_HTTP_REDIS_DB", env_or("HC_HTTP_REDIS_DB", "0"), 0, 1000000);
	cfg.redis_channel = env_or("HC_HTTP_REDIS_CHANNEL", "housing_cache:invalidations");
	cfg.sentinel_master = env_or("HC_HTTP_REDIS_SENTINEL_MASTER", "mymaster");
	cfg.events_backlog = 1024;
	cfg.events_keepalive_s = 15;
	cfg.events_reorder_ms = 1000;

	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1)
	{
		switch (o)
		{
			case OPT_LISTEN:
				cfg.listen = optarg;
				break;
			case OPT_PORT:
				cfg.port = (int) parse_long("--port", optarg, 0, 65535);
				break;
			case OPT_DB:
				cfg.db = optarg;
				break;
			case OPT_READ_DB:
				cfg.read_db = optarg;
				break;
			case OPT_STATIC:
				static_dir = optarg;
				break;
			case OPT_SCHEMA:
				cfg.schema = optarg;
				break;
			case OPT_POOL:
				cfg.pool = (int) parse_long("--pool", optarg, 1, 512);
				break;
			case OPT_THREADS:
				cfg.threads = (int) parse_long("--threads", optarg, 1, 512);
				break;
			case OPT_JWT_ENV:
				cfg.jwt_secret_env = optarg;
				break;
			case OPT_ANON:
				cfg.anon_role = optarg;
				break;
			case OPT_ROLES:
				roles = optarg;
				break;
			case OPT_STMT:
				cfg.statement_timeout_ms = (int) parse_long("--statement-timeout", optarg, 0, 3600000);
				break;
			case OPT_POOLTO:
				cfg.pool_timeout_ms = (int) parse_long("--pool-timeout", optarg, 0, 600000);
				break;
			case OPT_BODY:
				cfg.max_body = (size_t) parse_long("--max-body", optarg, 0, 64L << 20);
				break;
			case OPT_URL:
				cfg.max_url = (size_t) parse_long("--max-url", optarg, 64, 1L << 20);
				break;
			case OPT_HEADER:
				cfg.max_header = (size_t) parse_long("--max-header", optarg, 4096, 16L << 20);
				break;
			case OPT_IDLE:
				cfg.idle_timeout_s = (unsigned) parse_long("--idle-timeout", optarg, 1, 86400);
				break;
			case OPT_REQTO:
				cfg.request_timeout_s = (unsigned) parse_long("--request-timeout", optarg, 1, 86400);
				break;
			case OPT_MAXCONN:
				cfg.max_connections = (unsigned) parse_long("--max-connections", optarg, 1, 1000000);
				break;
			case OPT_SHUTDOWN:
				cfg.shutdown_timeout_s = (unsigned) parse_long("--shutdown-timeout", optarg, 0, 3600);
				break;
			case OPT_PID:
				cfg.pid_file = optarg;
				break;
			case OPT_QUIET:
				cfg.quiet = true;
				break;
			case OPT_MINT:
				mint_role = optarg;
				break;
			case OPT_TTL:
				token_ttl = parse_long("--token-ttl", optarg, 1, 10L * 365 * 86400);
				break;
			case OPT_REDIS_HOST:
				cfg.redis_host = optarg;
				redis_addr_given = true;
				break;
			case OPT_REDIS_PORT:
				cfg.redis_port = (int) parse_long("--redis-port", optarg, 1, 65535);
				redis_addr_given = true;
				break;
			case OPT_REDIS_PW:
				redis_password = optarg;
				break;
			case OPT_REDIS_PW_FILE:
				redis_password_file = optarg;
				break;
			case OPT_REDIS_DB:
				cfg.redis_db = (int) parse_long("--redis-db", optarg, 0, 1000000);
				break;
			case OPT_REDIS_CHANNEL:
				cfg.redis_channel = optarg;
				break;
			case OPT_SENTINELS:
				sentinels = optarg;
				sentinels_from = "--redis-sentinels";
				break;
			case OPT_SENTINEL_MASTER:
				cfg.sentinel_master = optarg;
				sentinel_master_from = "--redis-sentinel-master";
				break;
			case OPT_SENTINEL_PW:
				sentinel_password = optarg;
				break;
			case OPT_SENTINEL_PW_FILE:
				sentinel_password_file = optarg;
				break;
			case OPT_EV_BACKLOG:
				cfg.events_backlog = (int) parse_long("--events-backlog", optarg, 1, 1000000);
				break;
			case OPT_EV_KEEPALIVE:
				cfg.events_keepalive_s = (int) parse_long("--events-keepalive", optarg, 1, 3600);
				break;
			case OPT_EV_REORDER:
				cfg.events_reorder_ms = (int) parse_long("--events-reorder-ms", optarg, 10, 600000);
				break;
			case OPT_HELP:
			case 'h':
				usage(stdout);
				exit(0);
			case OPT_VERSION:
				printf("hc_http %s (libmicrohttpd %s, libpq %d)\n", HC_HTTP_VERSION,
					   MHD_get_version(), PQlibVersion());
				exit(0);
			default:
				usage(stderr);
				exit(2);
		}
	}
	if (optind < argc)
	{
		fprintf(stderr, "hc_http: unexpected argument \"%s\" (see --help)\n", argv[optind]);
		exit(2);
	}
	if (cfg.threads == 0)
		cfg.threads = cfg.pool;
	if (cfg.read_db && *cfg.read_db == '\0')
		cfg.read_db = NULL;
	if (cfg.redis_host && *cfg.redis_host == '\0')
		cfg.redis_host = NULL;
	if (redis_password_file && *redis_password_file)
		cfg.redis_password = read_first_line("--redis-password-file", redis_password_file);
	else if (redis_password)
		cfg.redis_password = xstrdup(redis_password);
	if (sentinels)
	{
		char		err[256];

		/* the same rules as hc_purger's and the engine's (address.c) */
		if (!address_list_parse(sentinels, cfg.sentinels, MAX_SENTINELS, &cfg.nsentinels,
								err, sizeof(err)))
		{
			fprintf(stderr, "hc_http: invalid value for %s: %s\n", sentinels_from, err);
			exit(2);
		}
	}
	if (cfg.nsentinels > 0)
	{
		check_master_name(sentinel_master_from, cfg.sentinel_master);
		if (sentinel_password_file && *sentinel_password_file)
			cfg.sentinel_password = read_first_line("--redis-sentinel-password-file",
													sentinel_password_file);
		else if (sentinel_password)
			cfg.sentinel_password = xstrdup(sentinel_password);
		if (redis_addr_given)
			fprintf(stderr, "hc_http: note: --redis-host and --redis-port (HC_HTTP_REDIS_HOST, "
					"HC_HTTP_REDIS_PORT) are not used with --redis-sentinels\n");
	}
	cfg.jwt_roles = split_roles(roles);
	event_roles();
	if (static_dir && *static_dir)
	{
		char	   *real = realpath(static_dir, NULL);

		if (real == NULL)
		{
			fprintf(stderr, "hc_http: static directory %s: %s\n", static_dir, strerror(errno));
			exit(2);
		}
		cfg.static_dir = real;
	}
	{
		const char *secret = getenv(cfg.jwt_secret_env);

		if (secret && *secret)
		{
			if (strlen(secret) < 32)
			{
				fprintf(stderr, "hc_http: the JWT secret in %s must be at least 32 bytes long\n",
						cfg.jwt_secret_env);
				exit(2);
			}
			cfg.jwt_secret = (unsigned char *) xstrdup(secret);
			cfg.jwt_secret_len = strlen(secret);
		}
	}
}

/* Enough descriptors for max_connections plus the pool and some spare. */
static void
raise_nofile(void)
{
	struct rlimit rl;
	rlim_t		pools = (rlim_t) cfg.pool * (cfg.read_db ? 2 : 1);
	rlim_t		want = (rlim_t) cfg.max_connections + pools + 64;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return;
	if (rl.rlim_cur < want)
	{
		rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= want ? want : rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur < want)
	{
		unsigned	cap = rl.rlim_cur > pools + 64 + 16
			? (unsigned) (rl.rlim_cur - pools - 64) : 16;

		log_msg("open file limit is %llu: at most %u connections instead of %u",
				(unsigned long long) rl.rlim_cur, cap, cfg.max_connections);
		cfg.max_connections = cap;
	}
}

/*
 * Hand the handlers their part of the settings: they never read cfg, so
 * that they depend on nothing in this file.  False if the schema cache
 * cannot be loaded.
 */
static bool
start_handlers(void)
{
	ApiConfig	api_conf = {
		.pool = db_pool,
		.read_pool = read_pool,
		.schema = cfg.schema,
		.anon_role = cfg.anon_role,
		.jwt_roles = cfg.jwt_roles,
		.jwt_secret = cfg.jwt_secret,
		.jwt_secret_len = cfg.jwt_secret_len,
		.pool_timeout_ms = cfg.pool_timeout_ms,
	};

	EventsConfig events_conf = {
		.redis_host = cfg.redis_host,
		.redis_port = cfg.redis_port,
		.redis_password = cfg.redis_password,
		.sentinels = cfg.sentinels,
		.nsentinels = cfg.nsentinels,
		.sentinel_master = cfg.sentinel_master,
		.sentinel_password = cfg.sentinel_password,
		.redis_db = cfg.redis_db,
		.channel = cfg.redis_channel,
		.roles = cfg.event_roles,
		.nroles = cfg.nevent_roles,
		.pool = db_pool,
		.pool_timeout_ms = cfg.pool_timeout_ms,
		.backlog = cfg.events_backlog,
		.keepalive_s = cfg.events_keepalive_s,
		.reorder_ms = cfg.events_reorder_ms,
	};

	static_init(cfg.static_dir);
	return api_init(&api_conf) && events_init(&events_conf);
}

/* ------------------------------------------------------------------------
 * main
 * ------------------------------------------------------------------------ */

int
main(int argc, char **argv)
{
	struct MHD_Daemon *d;
	struct sockaddr_storage ss;
	/* suspend/resume: an idle event stream leaves the event loop */
	unsigned	flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ITC | MHD_ALLOW_SUSPEND_RESUME;
	sigset_t	sigs;
	struct sigaction sa;
	const union MHD_DaemonInfo *di;
	int			port;
	int			sig;
	int			rc = 0;

	parse_args(argc, argv);

	if (mint_role)
	{
		char	   *tok;

		if (cfg.jwt_secret == NULL)
		{
			fprintf(stderr, "hc_http: set the JWT secret in %s (at least 32 bytes)\n",
					cfg.jwt_secret_env);
			return 2;
		}
		tok = jwt_mint(mint_role, token_ttl, cfg.jwt_secret, cfg.jwt_secret_len, time(NULL));
		if (tok == NULL)
			return 1;
		printf("%s\n", tok);
		free(tok);
		free(cfg.jwt_secret);
		free(cfg.redis_password);
		free(cfg.sentinel_password);
		free((void *) cfg.static_dir);
		free_roles(cfg.jwt_roles);
		free_roles(cfg.event_roles);
		return 0;
	}

	memset(&ss, 0, sizeof(ss));
	{
		struct sockaddr_in *a4 = (struct sockaddr_in *) &ss;
		struct sockaddr_in6 *a6 = (struct sockaddr_in6 *) &ss;

		if (inet_pton(AF_INET, cfg.listen, &a4->sin_addr) == 1)
		{
			a4->sin_family = AF_INET;
			a4->sin_port = htons((uint16_t) cfg.port);
		}
		else if (inet_pton(AF_INET6, cfg.listen, &a6->sin6_addr) == 1)
		{
			a6->sin6_family = AF_INET6;
			a6->sin6_port = htons((uint16_t) cfg.port);
			flags |= MHD_USE_IPv6;
		}
		else
		{
			/* a host name: its first address */
			struct addrinfo hints = {.ai_socktype = SOCK_STREAM};
			struct addrinfo *res = NULL;

			if (getaddrinfo(cfg.listen, NULL, &hints, &res) != 0 || res == NULL ||
				res->ai_addrlen > sizeof(ss))
			{
				fprintf(stderr, "hc_http: cannot resolve --listen address \"%s\"\n", cfg.listen);
				if (res)
					freeaddrinfo(res);
				return 2;
			}
			memcpy(&ss, res->ai_addr, res->ai_addrlen);
			if (ss.ss_family == AF_INET6)
			{
				a6->sin6_port = htons((uint16_t) cfg.port);
				flags |= MHD_USE_IPv6;
			}
			else
				a4->sin_port = htons((uint16_t) cfg.port);
			freeaddrinfo(res);
		}
	}

	/* Signals: handled by this thread only, via sigwait. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGHUP);
	sigaddset(&sigs, SIGQUIT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);

	raise_nofile();
	if (cfg.jwt_secret == NULL)
		log_msg("no JWT secret in %s: every request runs as %s, tokens are refused",
				cfg.jwt_secret_env, cfg.anon_role);

	db_pool = pool_create(cfg.db, cfg.pool, cfg.statement_timeout_ms, "database");
	if (cfg.read_db)
	{
		/* optional at every moment: reads go to the primary while it is down */
		read_pool = pool_create(cfg.read_db, cfg.pool, cfg.statement_timeout_ms, "read database");
		if (!pool_warm(read_pool))
			log_msg("starting without the read database: reads go to the primary until it answers");
	}
	if (!pool_warm(db_pool) || !start_handlers())
	{
		log_msg("cannot start without the database");
		rc = 1;
		goto out_pool;
	}

	reaper_started = pthread_create(&reaper_thread, NULL, reaper_main, NULL) == 0;

	d = MHD_start_daemon(flags, (uint16_t) cfg.port, NULL, NULL, handle, NULL,
						 MHD_OPTION_SOCK_ADDR, (struct sockaddr *) &ss,
						 MHD_OPTION_THREAD_POOL_SIZE, (unsigned) (cfg.threads > 1 ? cfg.threads : 0),
						 MHD_OPTION_CONNECTION_LIMIT, cfg.max_connections,
						 MHD_OPTION_CONNECTION_TIMEOUT, cfg.idle_timeout_s,
						 MHD_OPTION_CONNECTION_MEMORY_LIMIT, cfg.max_header,
						 MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned) 4096,
						 MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned) 1,
						 MHD_OPTION_URI_LOG_CALLBACK, uri_log, NULL,
						 MHD_OPTION_NOTIFY_COMPLETED, request_completed, NULL,
						 MHD_OPTION_NOTIFY_CONNECTION, notify_connection, NULL,
						 MHD_OPTION_EXTERNAL_LOGGER, mhd_logger, NULL,
						 MHD_OPTION_END);
	if (d == NULL)
	{
		log_msg("cannot listen on %s port %d: %s", cfg.listen, cfg.port, strerror(errno));
		rc = 1;
		goto out_reaper;
	}
	di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
	port = di ? di->port : cfg.port;
	if (cfg.pid_file)
	{
		FILE	   *f = fopen(cfg.pid_file, "w");

		if (f == NULL || fprintf(f, "%ld\n", (long) getpid()) < 0 || fclose(f) != 0)
			log_msg("cannot write pid file %s: %s", cfg.pid_file, strerror(errno));
	}
	log_msg("listening on http://%s%s%s:%d/ (schema %s, %d connections%s, %d threads%s%s)",
			ss.ss_family == AF_INET6 ? "[" : "", cfg.listen, ss.ss_family == AF_INET6 ? "]" : "",
			port, cfg.schema, cfg.pool, cfg.read_db ? " and as many to the read database" : "",
			cfg.threads, cfg.static_dir ? ", static " : "", cfg.static_dir ? cfg.static_dir : "");

	for (;;)
	{
		if (sigwait(&sigs, &sig) != 0)
			continue;
		if (sig == SIGHUP)
		{
			api_reload_schema("SIGHUP");
			events_reload();
			continue;
		}
		break;
	}

	/* Graceful shutdown: no new connections, let requests in flight end. */
	log_msg("%s: shutting down (waiting up to %u s for %d request(s) in flight)",
			strsignal(sig), cfg.shutdown_timeout_s, atomic_load(&active_requests));
	atomic_store(&draining, true);
	events_close_all();			/* event streams end now, not at the timeout */
	{
		MHD_socket lsock = MHD_quiesce_daemon(d);
		double		deadline = mono_now() + cfg.shutdown_timeout_s;

		if (lsock != MHD_INVALID_SOCKET)
			close(lsock);
		while (atomic_load(&active_requests) > 0 && mono_now() < deadline)
			usleep(20000);
		if (atomic_load(&active_requests) > 0)
			log_msg("%d request(s) still in flight after %u s; closing them",
					atomic_load(&active_requests), cfg.shutdown_timeout_s);
	}
	MHD_stop_daemon(d);
	if (cfg.pid_file)
		unlink(cfg.pid_file);

out_reaper:
	if (reaper_started)
	{
		pthread_mutex_lock(&reaper_lock);
		reaper_stop = true;
		pthread_cond_signal(&reaper_cv);
		pthread_mutex_unlock(&reaper_lock);
		pthread_join(reaper_thread, NULL);
	}
out_pool:
	events_shutdown();
	api_shutdown();
	pool_destroy(db_pool);
	pool_destroy(read_pool);
	free(cfg.jwt_secret);
	free(cfg.redis_password);
	free(cfg.sentinel_password);
	free((void *) cfg.static_dir);
	free_roles(cfg.jwt_roles);
	free_roles(cfg.event_roles);
	log_msg("stopped");
	return rc;
}
