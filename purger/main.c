/*-------------------------------------------------------------------------
 *
 * main.c
 *	  hc_purger: options, the event loop, signals.
 *
 * One thread: libcurl's multi handle waits on the edges' sockets, and on
 * up to three more descriptors: a pipe the signal handlers write to, the
 * Redis subscription's, and under Sentinel a question to a sentinel; each
 * turn runs whatever the clock or the descriptors say is due.  See
 * purger.h for the modules and README.md for the options.
 *
 *-------------------------------------------------------------------------
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "purger.h"

static int	signal_pipe[2] = {-1, -1};

/* --redis-host or --redis-port given (they are not used under Sentinel) */
static bool redis_addr_given = false;

static void
on_signal(int sig)
{
	unsigned char b = (unsigned char) sig;
	int			save = errno;

	if (write(signal_pipe[1], &b, 1) < 0)
	{
		/* the pipe is full: a signal is pending anyway */
	}
	errno = save;
}

static void
usage(FILE *out)
{
	fputs("usage: hc_purger [options] --varnish URL [--varnish URL ...]\n"
		  "\n"
		  "Purges the HTTP edge (Varnish with edge/housing_cache.vcl) by key from\n"
		  "housing_cache's invalidation channel; see purger/README.md.\n"
		  "\n"
		  "  --varnish URL             an edge to purge, e.g. http://127.0.0.1:8081/ (repeat\n"
		  "                            for a fleet)                    [HC_PURGER_VARNISH]\n"
		  "  --redis-host HOST         [HC_PURGER_REDIS_HOST, 127.0.0.1]\n"
		  "  --redis-port N            [HC_PURGER_REDIS_PORT, 6379]\n"
		  "  --redis-password-file F   first line: the password  [HC_PURGER_REDIS_PASSWORD_FILE]\n"
		  "                            (or the password itself in HC_PURGER_REDIS_PASSWORD)\n"
		  "  --redis-db N              [HC_PURGER_REDIS_DB, 0]\n"
		  "  --redis-sentinels LIST    host:port of each Redis Sentinel, comma-separated:\n"
		  "                            subscribe at the master they name, and follow\n"
		  "                            failovers (--redis-host/--redis-port are then not\n"
		  "                            used)                     [HC_PURGER_REDIS_SENTINELS]\n"
		  "  --redis-sentinel-master NAME  the name they monitor the master by\n"
		  "                            [HC_PURGER_REDIS_SENTINEL_MASTER, mymaster]\n"
		  "  --redis-sentinel-password-file F  first line: the sentinels' password\n"
		  "                            [HC_PURGER_REDIS_SENTINEL_PASSWORD_FILE] (or the\n"
		  "                            password itself in HC_PURGER_REDIS_SENTINEL_PASSWORD)\n"
		  "  --channel NAME            housing_cache.channel  [HC_PURGER_CHANNEL,\n"
		  "                            housing_cache:invalidations]\n"
		  "  --database NAME           purge this database's keys only (repeat); default:\n"
		  "                            every database          [HC_PURGER_DATABASES]\n"
		  "  --cluster ID              follow this cluster's seqs; default: the first seen\n"
		  "  --reorder-window-ms N     a missing seq is lost after this     [1000]\n"
		  "  --heartbeat-ms N          housing_cache.heartbeat_ms           [1000]\n"
		  "  --heartbeat-timeout-ms N  no heartbeat for this long: stop vouching\n"
		  "                                                    [3 x --heartbeat-ms]\n"
		  "  --repurge-delay-ms N      each purge is sent again after this  [200]\n"
		  "  --alive-for S             each request vouches for S seconds  [3]\n"
		  "  --vouch-interval-ms N     an idle edge gets a request this often\n"
		  "                                        [min(1000, --alive-for / 3)]\n"
		  "  --request-timeout-ms N    per PURGE request [min(2000, --alive-for / 2)]\n"
		  "  --max-keys-bytes N        keys per X-HC-Keys header, in bytes [6000]\n"
		  "  --pid-file FILE\n"
		  "  --verbose                 a log line per message, too\n"
		  "  --help, --version\n"
		  "\n"
		  "Every option can also be set in the environment: HC_PURGER_ and its name in\n"
		  "capitals, dashes as underscores (HC_PURGER_REORDER_WINDOW_MS=500); lists\n"
		  "(VARNISH, DATABASES) are space- or comma-separated.  The command line wins.\n"
		  "Signals: SIGTERM/SIGINT withdraw the vouching and exit; SIGUSR1 logs counters.\n",
		  out);
}

static void
die(const char *fmt,...) __attribute__((format(printf, 1, 2), noreturn));

static void
die(const char *fmt,...)
{
	va_list		ap;

	fputs("hc_purger: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\n(hc_purger --help lists the options)\n", stderr);
	exit(2);
}

static long
parse_int(const char *name, const char *s, long lo, long hi)
{
	char	   *end;
	long		v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end != '\0' || v < lo || v > hi)
		die("%s: '%s' is not an integer from %ld to %ld", name, s, lo, hi);
	return v;
}

static double
parse_seconds(const char *name, const char *s, double lo, double hi)
{
	char	   *end;
	double		v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end != '\0' || !(v >= lo && v <= hi))
		die("%s: '%s' is not a number of seconds from %g to %g", name, s, lo, hi);
	return v;
}

static void
add_list(char ***list, int *n, const char *items)
{
	char	   *copy = xstrdup(items);
	char	   *save = NULL;

	for (char *t = strtok_r(copy, " ,\t\n", &save); t; t = strtok_r(NULL, " ,\t\n", &save))
	{
		*list = xrealloc(*list, sizeof(char *) * (size_t) (*n + 1));
		(*list)[(*n)++] = xstrdup(t);
	}
	free(copy);
}

static void
free_list(char **list, int n)
{
	for (int i = 0; i < n; i++)
		free(list[i]);
	free(list);
}

/* A PURGE URL: http(s)://host[:port][/path]; "/" when there is no path. */
static char *
check_url(const char *u)
{
	const char *rest;
	size_t		len = strlen(u);

	if (strncmp(u, "http://", 7) == 0)
		rest = u + 7;
	else if (strncmp(u, "https://", 8) == 0)
		rest = u + 8;
	else
		die("--varnish: '%s' is not an http:// or https:// URL", u);
	if (*rest == '\0' || *rest == '/' || strpbrk(u, " \t\r\n") != NULL)
		die("--varnish: '%s' has no host", u);
	if (strchr(rest, '/') == NULL)
	{
		char	   *with = xmalloc(len + 2);

		memcpy(with, u, len);
		with[len] = '/';
		with[len + 1] = '\0';
		return with;
	}
	return xstrdup(u);
}

enum
{
	OPT_REDIS_HOST = 256, OPT_REDIS_PORT, OPT_REDIS_PASSWORD_FILE, OPT_REDIS_DB,
	OPT_CHANNEL, OPT_VARNISH, OPT_DATABASE, OPT_CLUSTER, OPT_REORDER, OPT_HEARTBEAT,
	OPT_HEARTBEAT_TIMEOUT, OPT_REPURGE, OPT_ALIVE, OPT_VOUCH, OPT_REQUEST_TIMEOUT,
	OPT_MAX_KEYS, OPT_PID_FILE, OPT_VERBOSE, OPT_HELP, OPT_VERSION,
	OPT_SENTINELS, OPT_SENTINEL_MASTER, OPT_SENTINEL_PASSWORD_FILE
};

static const struct option long_options[] = {
	{"redis-host", required_argument, NULL, OPT_REDIS_HOST},
	{"redis-port", required_argument, NULL, OPT_REDIS_PORT},
	{"redis-password-file", required_argument, NULL, OPT_REDIS_PASSWORD_FILE},
	{"redis-db", required_argument, NULL, OPT_REDIS_DB},
	{"redis-sentinels", required_argument, NULL, OPT_SENTINELS},
	{"redis-sentinel-master", required_argument, NULL, OPT_SENTINEL_MASTER},
	{"redis-sentinel-password-file", required_argument, NULL, OPT_SENTINEL_PASSWORD_FILE},
	{"channel", required_argument, NULL, OPT_CHANNEL},
	{"varnish", required_argument, NULL, OPT_VARNISH},
	{"database", required_argument, NULL, OPT_DATABASE},
	{"cluster", required_argument, NULL, OPT_CLUSTER},
	{"reorder-window-ms", required_argument, NULL, OPT_REORDER},
	{"heartbeat-ms", required_argument, NULL, OPT_HEARTBEAT},
	{"heartbeat-timeout-ms", required_argument, NULL, OPT_HEARTBEAT_TIMEOUT},
	{"repurge-delay-ms", required_argument, NULL, OPT_REPURGE},
	{"alive-for", required_argument, NULL, OPT_ALIVE},
	{"vouch-interval-ms", required_argument, NULL, OPT_VOUCH},
	{"request-timeout-ms", required_argument, NULL, OPT_REQUEST_TIMEOUT},
	{"max-keys-bytes", required_argument, NULL, OPT_MAX_KEYS},
	{"pid-file", required_argument, NULL, OPT_PID_FILE},
	{"verbose", no_argument, NULL, OPT_VERBOSE},
	{"help", no_argument, NULL, OPT_HELP},
	{"version", no_argument, NULL, OPT_VERSION},
	{NULL, 0, NULL, 0}
};

/* The environment's name of an option: HC_PURGER_ + NAME, into var. */
static void
env_name(const char *name, char *var, size_t size)
{
	size_t		n;

	snprintf(var, size, "HC_PURGER_");
	n = strlen(var);
	for (const char *c = name; *c && n < size - 1; c++)
		var[n++] = *c == '-' ? '_' : (char) (*c >= 'a' && *c <= 'z' ? *c - 32 : *c);
	var[n] = '\0';
}

/* The name of a master: as the engine's redis_sentinel_master takes it. */
static void
check_master_name(const char *flag, const char *val)
{
	if (*val == '\0')
		die("%s: empty", flag);
	if (strlen(val) > HOST_MAXLEN)
		die("%s: longer than %d characters", flag, HOST_MAXLEN);
	for (const char *c = val; *c; c++)
	{
		if ((unsigned char) *c <= ' ' || *c == 0x7f)
			die("%s: '%s' contains blanks or control characters", flag, val);
	}
}

static void
set_option(Options *o, int id, const char *name, const char *val,
		   char ***varnish, int *nvarnish, bool *heartbeat_timeout_set, bool *vouch_set,
		   bool *request_timeout_set)
{
	char		flag[64];
	char		err[256];

	/* an environment variable's name as it is, an option's with its dashes */
	if (strncmp(name, "HC_PURGER_", 10) == 0)
		snprintf(flag, sizeof(flag), "%s", name);
	else
		snprintf(flag, sizeof(flag), "--%s", name);
	switch (id)
	{
		case OPT_REDIS_HOST:
			if (*val == '\0')
				die("%s: empty", flag);
			free(o->redis_host);
			o->redis_host = xstrdup(val);
			redis_addr_given = true;
			break;
		case OPT_REDIS_PORT:
			o->redis_port = (int) parse_int(flag, val, 1, 65535);
			redis_addr_given = true;
			break;
		case OPT_REDIS_PASSWORD_FILE:
			free(o->redis_password_file);
			o->redis_password_file = *val ? xstrdup(val) : NULL;
			break;
		case OPT_REDIS_DB:
			o->redis_db = (int) parse_int(flag, val, 0, INT_MAX);
			break;
		case OPT_SENTINELS:
			if (!address_list_parse(val, o->sentinels, MAX_SENTINELS, &o->nsentinels,
									err, sizeof(err)))
				die("%s: %s", flag, err);
			break;
		case OPT_SENTINEL_MASTER:
			check_master_name(flag, val);
			free(o->sentinel_master);
			o->sentinel_master = xstrdup(val);
			break;
		case OPT_SENTINEL_PASSWORD_FILE:
			free(o->sentinel_password_file);
			o->sentinel_password_file = *val ? xstrdup(val) : NULL;
			break;
		case OPT_CHANNEL:
			if (*val == '\0')
				die("%s: empty", flag);
			free(o->channel);
			o->channel = xstrdup(val);
			break;
		case OPT_VARNISH:
			add_list(varnish, nvarnish, val);
			break;
		case OPT_DATABASE:
			add_list(&o->databases, &o->ndatabases, val);
			break;
		case OPT_CLUSTER:
			free(o->cluster);
			o->cluster = *val ? xstrdup(val) : NULL;
			break;
		case OPT_REORDER:
			o->reorder_window_ms = (int) parse_int(flag, val, 0, 600000);
			break;
		case OPT_HEARTBEAT:
			o->heartbeat_ms = (int) parse_int(flag, val, 10, 3600000);
			break;
		case OPT_HEARTBEAT_TIMEOUT:
			o->heartbeat_timeout_ms = (int) parse_int(flag, val, 10, 36000000);
			*heartbeat_timeout_set = true;
			break;
		case OPT_REPURGE:
			o->repurge_delay_ms = (int) parse_int(flag, val, 0, 60000);
			break;
		case OPT_ALIVE:
			o->alive_for_s = parse_seconds(flag, val, 0.1, 3600);
			break;
		case OPT_VOUCH:
			o->vouch_interval_ms = (int) parse_int(flag, val, 10, 3600000);
			*vouch_set = true;
			break;
		case OPT_REQUEST_TIMEOUT:
			o->request_timeout_ms = (int) parse_int(flag, val, 50, 600000);
			*request_timeout_set = true;
			break;
		case OPT_MAX_KEYS:
			o->max_keys_bytes = (int) parse_int(flag, val, EDGE_KEY_LEN, 65536);
			break;
		case OPT_PID_FILE:
			free(o->pid_file);
			o->pid_file = *val ? xstrdup(val) : NULL;
			break;
		case OPT_VERBOSE:
			o->verbose = strcmp(val, "0") != 0 && strcmp(val, "") != 0;
			break;
	}
}

static void
parse_options(Options *o, int argc, char **argv)
{
	char	  **env_varnish = NULL,
			  **cli_varnish = NULL;
	int			nenv = 0,
				ncli = 0;
	bool		hb_timeout_set = false,
				vouch_set = false,
				rt_set = false;
	int			c;
	const char *pw;

	*o = (Options) {
		.redis_host = xstrdup("127.0.0.1"),
		.redis_port = 6379,
		.channel = xstrdup("housing_cache:invalidations"),
		.sentinel_master = xstrdup("mymaster"),
		.reorder_window_ms = 1000,
		.heartbeat_ms = 1000,
		.repurge_delay_ms = 200,
		.alive_for_s = 3,
		.request_timeout_ms = 2000,
		.max_keys_bytes = 6000,
	};

	/* the environment first, the command line over it */
	for (const struct option *lo = long_options; lo->name; lo++)
	{
		const char *val;
		char		var[64];

		if (lo->val == OPT_HELP || lo->val == OPT_VERSION)
			continue;
		env_name(strcmp(lo->name, "database") == 0 ? "databases" : lo->name, var, sizeof(var));
		val = getenv(var);
		if (val == NULL)
			continue;
		set_option(o, lo->val, var, val, &env_varnish, &nenv, &hb_timeout_set, &vouch_set, &rt_set);
	}
	pw = getenv("HC_PURGER_REDIS_PASSWORD");
	if (pw && *pw)
		o->redis_password = xstrdup(pw);
	pw = getenv("HC_PURGER_REDIS_SENTINEL_PASSWORD");
	if (pw && *pw)
		o->sentinel_password = xstrdup(pw);

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":", long_options, NULL)) != -1)
	{
		const struct option *lo;

		if (c == OPT_HELP)
		{
			usage(stdout);
			exit(0);
		}
		if (c == OPT_VERSION)
		{
			printf("hc_purger %s (libcurl %s)\n", HC_PURGER_VERSION, curl_version_info(CURLVERSION_NOW)->version);
			exit(0);
		}
		if (c == ':')
			die("option '%s' needs a value", argv[optind - 1]);
		if (c == '?')
			die("unknown option '%s'", argv[optind - 1]);
		for (lo = long_options; lo->name && lo->val != c; lo++)
			;
		set_option(o, c, lo->name, optarg ? optarg : "1", &cli_varnish, &ncli,
				   &hb_timeout_set, &vouch_set, &rt_set);
	}
	if (optind < argc)
		die("unexpected argument '%s'", argv[optind]);

	/* the command line's edges replace the environment's */
	if (ncli > 0)
	{
		free_list(env_varnish, nenv);
		env_varnish = cli_varnish;
		nenv = ncli;
	}
	if (nenv == 0)
		die("no edge to purge: give --varnish URL (or HC_PURGER_VARNISH)");
	o->varnish = xcalloc((size_t) nenv, sizeof(char *));
	for (int i = 0; i < nenv; i++)
		o->varnish[i] = check_url(env_varnish[i]);
	o->nvarnish = nenv;
	free_list(env_varnish, nenv);

	if (o->redis_password && o->redis_password_file)
		die("HC_PURGER_REDIS_PASSWORD and --redis-password-file both give a password; give one");
	if (o->nsentinels > 0 && redis_addr_given)
		fprintf(stderr, "hc_purger: note: --redis-host and --redis-port (HC_PURGER_REDIS_HOST, "
				"HC_PURGER_REDIS_PORT) are not used with --redis-sentinels\n");
	if (o->sentinel_password && o->sentinel_password_file)
		die("HC_PURGER_REDIS_SENTINEL_PASSWORD and --redis-sentinel-password-file both give "
			"a password; give one");
	if (!hb_timeout_set)
		o->heartbeat_timeout_ms = 3 * o->heartbeat_ms;
	if (o->heartbeat_timeout_ms <= o->heartbeat_ms)
		die("--heartbeat-timeout-ms (%d) must be longer than --heartbeat-ms (%d)",
			o->heartbeat_timeout_ms, o->heartbeat_ms);
	if (!vouch_set)
	{
		int			third = (int) (o->alive_for_s * 1000 / 3);

		o->vouch_interval_ms = third < 1000 ? third : 1000;
		if (o->vouch_interval_ms < 10)
			o->vouch_interval_ms = 10;
	}
	if (o->vouch_interval_ms >= o->alive_for_s * 1000)
		die("--vouch-interval-ms (%d) must be shorter than --alive-for (%g s)",
			o->vouch_interval_ms, o->alive_for_s);
	if (!rt_set && o->request_timeout_ms > o->alive_for_s * 1000 / 2)
		o->request_timeout_ms = (int) (o->alive_for_s * 1000 / 2);
	if (o->request_timeout_ms >= o->alive_for_s * 1000)
		fprintf(stderr, "hc_purger: warning: --request-timeout-ms (%d) is not shorter than "
				"--alive-for (%g s): a slow edge may stop being vouched for between requests\n",
				o->request_timeout_ms, o->alive_for_s);
}

static void
free_options(Options *o)
{
	free(o->redis_host);
	free(o->redis_password);
	free(o->redis_password_file);
	free(o->sentinel_master);
	free(o->sentinel_password);
	free(o->sentinel_password_file);
	free(o->channel);
	free(o->cluster);
	free(o->pid_file);
	free_list(o->varnish, o->nvarnish);
	free_list(o->databases, o->ndatabases);
}

static void
setup_signals(void)
{
	struct sigaction sa;

	if (pipe(signal_pipe) != 0)
	{
		perror("hc_purger: pipe");
		exit(1);
	}
	for (int i = 0; i < 2; i++)
	{
		fcntl(signal_pipe[i], F_SETFL, fcntl(signal_pipe[i], F_GETFL) | O_NONBLOCK);
		fcntl(signal_pipe[i], F_SETFD, FD_CLOEXEC);
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
}

static void
write_pid_file(const char *path)
{
	FILE	   *f = fopen(path, "w");

	if (f == NULL || fprintf(f, "%ld\n", (long) getpid()) < 0 || fclose(f) != 0)
	{
		fprintf(stderr, "hc_purger: cannot write the pid file %s: %s\n", path, strerror(errno));
		exit(1);
	}
}

/* Milliseconds until the earliest of the timers (-1: none), within [0, 1000]. */
static int
wait_ms(hc_ms now, hc_ms a, hc_ms b, hc_ms c)
{
	hc_ms		t = now + 1000;

	if (a >= 0 && a < t)
		t = a;
	if (b >= 0 && b < t)
		t = b;
	if (c >= 0 && c < t)
		t = c;
	return t <= now ? 0 : (int) (t - now);
}

int
main(int argc, char **argv)
{
	Options		opt;
	Purger	   *purger;
	Fleet	   *fleet;
	Subscriber *sub;
	bool		stopping = false;
	hc_ms		stop_deadline = 0;

	parse_options(&opt, argc, argv);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
	{
		fputs("hc_purger: curl_global_init failed\n", stderr);
		return 1;
	}
	setup_signals();
	if (opt.pid_file)
		write_pid_file(opt.pid_file);

	purger = purger_new(&opt);
	fleet = fleet_new(&opt, purger_announce(purger));
	purger_attach(purger, fleet);
	sub = subscriber_new(&opt, (SubscriberCallbacks) {
		purger_subscribed, purger_lost, purger_message, purger
	});
	purger_start(purger, now_ms());

	for (;;)
	{
		hc_ms		now = now_ms();
		struct curl_waitfd extra[1 + SUBSCRIBER_MAX_FDS];
		int			slot[SUBSCRIBER_MAX_FDS];	/* extra[] index of each, or -1 */
		unsigned int nextra = 1;
		int			fds[SUBSCRIBER_MAX_FDS];
		short		events[SUBSCRIBER_MAX_FDS];
		short		revents[SUBSCRIBER_MAX_FDS] = {0};
		bool		any = false;

		if (!stopping)
		{
			subscriber_run(sub, now);
			purger_tick(purger, now);
			if (purger_hears_nothing(purger, now))
				subscriber_check_master(sub, now);
		}
		fleet_run(fleet, now);
		if (stopping && (fleet_idle(fleet) || now >= stop_deadline))
			break;

		extra[0] = (struct curl_waitfd) {signal_pipe[0], CURL_WAIT_POLLIN, 0};
		if (stopping)
			fds[0] = fds[1] = -1;
		else
			subscriber_fds(sub, fds, events);
		for (int i = 0; i < SUBSCRIBER_MAX_FDS; i++)
		{
			slot[i] = -1;
			if (fds[i] < 0)
				continue;
			extra[nextra] = (struct curl_waitfd) {fds[i], 0, 0};
			if (events[i] & POLLIN)
				extra[nextra].events |= CURL_WAIT_POLLIN;
			if (events[i] & POLLOUT)
				extra[nextra].events |= CURL_WAIT_POLLOUT;
			slot[i] = (int) nextra++;
		}
		curl_multi_poll(fleet_multi(fleet), extra, nextra,
						stopping ? 50 : wait_ms(now, subscriber_next_timer(sub),
												 purger_next_timer(purger), fleet_next_timer(fleet)),
						NULL);

		if (extra[0].revents)
		{
			unsigned char b;

			while (read(signal_pipe[0], &b, 1) == 1)
			{
				if (b == SIGUSR1)
					purger_log_stats(purger);
				else if (!stopping)
				{
					stopping = true;
					stop_deadline = now_ms() + 2000;
					purger_stop(purger);
				}
			}
		}
		for (int i = 0; i < SUBSCRIBER_MAX_FDS; i++)
		{
			if (slot[i] < 0 || extra[slot[i]].revents == 0)
				continue;
			if (extra[slot[i]].revents & CURL_WAIT_POLLIN)
				revents[i] |= POLLIN;
			if (extra[slot[i]].revents & CURL_WAIT_POLLOUT)
				revents[i] |= POLLOUT;
			any = true;
		}
		if (any)
			subscriber_io(sub, revents, now_ms());
	}

	purger_log_stats(purger);
	subscriber_free(sub);
	fleet_free(fleet);
	purger_free(purger);
	if (opt.pid_file)
		unlink(opt.pid_file);
	free_options(&opt);
	curl_global_cleanup();
	close(signal_pipe[0]);
	close(signal_pipe[1]);
	return 0;
}
