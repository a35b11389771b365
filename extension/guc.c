/*-------------------------------------------------------------------------
 *
 * guc.c
 *	  Configuration parameters, all under the reserved prefix housing_cache.
 *
 * Sizes that shape shared memory are PGC_POSTMASTER.  Where Redis lives and
 * how it is reached is PGC_SUSET: a user who could point the cache at a Redis
 * of their own could make other roles read forged answers.  Turning the cache
 * off for one session (enabled) is for everyone.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <fcntl.h>
#include <unistd.h>

#include "access/rmgr.h"
#include "utils/guc.h"
#include "utils/pg_lsn.h"

#include "housing_cache.h"
#include "settings.h"

/*
 * The variables, from the one list of settings (settings.h).  Those of type
 * bool, int and double start at their defaults; the strings start NULL and
 * DefineCustomStringVariable sets them to a copy of theirs.
 */
#define HC_INITIAL_BOOL(def)	(def)
#define HC_INITIAL_INT(def)		(def)
#define HC_INITIAL_REAL(def)	(def)
#define HC_INITIAL_STRING(def)	NULL
#define HC_DEFINE_VARIABLE(kind, type, var, def) type var = HC_INITIAL_##kind(def);
HC_SETTINGS(HC_DEFINE_VARIABLE)

/* each one's default, as its DefineCustom*Variable call below passes it */
#define HC_DEFINE_DEFAULT(kind, type, var, def) static const type var##_default = (def);
HC_SETTINGS(HC_DEFINE_DEFAULT)

/*
 * The variable and its default, the two arguments of a DefineCustom*Variable
 * call after the descriptions: both from one name, so that a call cannot
 * give a variable another setting's default.
 */
#define HC_SETTING(var)		&var, var##_default

/*
 * Read a secret from a file into buf (NUL-terminated, without a trailing
 * newline).  Returns false with *err set on failure.  Raises no error and
 * allocates nothing: it is used while connecting to Redis.  The secret
 * itself never appears in a message.
 */
bool
HcReadSecretFile(const char *path, char *buf, size_t size, const char **err)
{
	int			fd;
	ssize_t		n;

	fd = open(path, O_RDONLY | PG_BINARY, 0);
	if (fd < 0)
	{
		*err = "could not open the secret file";
		return false;
	}
	n = read(fd, buf, size - 1);
	close(fd);
	if (n < 0)
	{
		*err = "could not read the secret file";
		return false;
	}
	buf[n] = '\0';
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = '\0';
	if (n == 0)
	{
		*err = "the secret file is empty";
		return false;
	}
	return true;
}

/*
 * A host name or address: non-empty, printable, no blanks.
 */
static bool
check_redis_host(char **newval, void **extra, GucSource source)
{
	const char *p;

	if (*newval == NULL || (*newval)[0] == '\0')
	{
		GUC_check_errmsg("housing_cache.redis_host must not be empty");
		return false;
	}
	if (strlen(*newval) > 255)
	{
		GUC_check_errmsg("housing_cache.redis_host is longer than 255 characters");
		return false;
	}
	for (p = *newval; *p; p++)
	{
		if (*p <= ' ' || *p == 0x7f)
		{
			GUC_check_errmsg("housing_cache.redis_host must not contain blanks or control characters");
			return false;
		}
	}
	return true;
}

/*
 * Key prefixes and channel names end up in Redis commands as binary-safe
 * arguments, so any bytes would do; printable, short names keep them
 * readable in redis-cli and MONITOR.
 */
static bool
check_redis_name(const char *name, const char *value)
{
	if (value == NULL || value[0] == '\0' || strlen(value) > 64)
	{
		GUC_check_errmsg("\"%s\" must be 1 to 64 characters long", name);
		return false;
	}
	for (const char *p = value; *p; p++)
	{
		if (*p <= ' ' || *p == 0x7f)
		{
			GUC_check_errmsg("\"%s\" must not contain blanks or control characters", name);
			return false;
		}
	}
	return true;
}

static bool
check_key_prefix(char **newval, void **extra, GucSource source)
{
	return check_redis_name("housing_cache.key_prefix", *newval);
}

static bool
check_channel(char **newval, void **extra, GucSource source)
{
	return check_redis_name("housing_cache.channel", *newval);
}

/*
 * An LSN as pg_lsn reads it ("16/B374D848"), or empty.
 */
static bool
check_min_lsn(char **newval, void **extra, GucSource source)
{
	bool		have_error = false;

	if (*newval == NULL || (*newval)[0] == '\0')
		return true;
	(void) pg_lsn_in_internal(*newval, &have_error);
	if (have_error)
	{
		GUC_check_errmsg("housing_cache.min_lsn must be an LSN such as 0/16B3748, not \"%s\"", *newval);
		return false;
	}
	return true;
}

static bool
check_generation_slots(int *newval, void **extra, GucSource source)
{
	if ((*newval & (*newval - 1)) != 0)
	{
		GUC_check_errmsg("housing_cache.generation_slots must be a power of two");
		return false;
	}
	return true;
}

/*
 * Redis Sentinel: "host:port, host:port, [v6]:port" (sentinel.c parses it);
 * the parsed list is the setting's extra, which the assign hook hands on.
 * A list needs a master name.
 */
static bool
check_redis_sentinels(char **newval, void **extra, GucSource source)
{
	HcSentinelList *list;
	char		err[256];

	list = malloc(sizeof(HcSentinelList));
	if (list == NULL)
	{
		GUC_check_errcode(ERRCODE_OUT_OF_MEMORY);
		GUC_check_errmsg("out of memory");
		return false;
	}
	if (!HcSentinelParse(*newval, list, err, sizeof(err)))
	{
		GUC_check_errmsg("%s", err);
		GUC_check_errhint("For example: '10.0.0.1:26379, 10.0.0.2:26379, 10.0.0.3:26379'; empty: no Sentinel.");
		free(list);
		return false;
	}
	/* the master's name is defined before this setting (HcDefineGucs) */
	if (list->count > 0 && hc_redis_sentinel_master != NULL &&
		hc_redis_sentinel_master[0] == '\0')
	{
		GUC_check_errmsg("housing_cache.redis_sentinels is set, but housing_cache.redis_sentinel_master is empty");
		GUC_check_errhint("Set housing_cache.redis_sentinel_master to the name the sentinels monitor the master by.");
		free(list);
		return false;
	}
	*extra = list;
	return true;
}

static void
assign_redis_sentinels(const char *newval, void *extra)
{
	HcSentinelAssign((const HcSentinelList *) extra);
	HcRedisConfigChanged();
}

/*
 * The name the sentinels know the master by (SENTINEL monitor <name> ...):
 * no blanks or control characters; empty only without sentinels.
 */
static bool
check_redis_sentinel_master(char **newval, void **extra, GucSource source)
{
	if (*newval == NULL || (*newval)[0] == '\0')
	{
		if (HcSentinelEnabled())
		{
			GUC_check_errmsg("housing_cache.redis_sentinel_master must not be empty while housing_cache.redis_sentinels is set");
			return false;
		}
		return true;
	}
	if (strlen(*newval) > 255)
	{
		GUC_check_errmsg("housing_cache.redis_sentinel_master is longer than 255 characters");
		return false;
	}
	for (const char *p = *newval; *p; p++)
	{
		if (*p <= ' ' || *p == 0x7f)
		{
			GUC_check_errmsg("housing_cache.redis_sentinel_master must not contain blanks or control characters");
			return false;
		}
	}
	return true;
}

/* any change to how Redis is reached drops this backend's connection */
static void
assign_redis_string(const char *newval, void *extra)
{
	HcRedisConfigChanged();
}

static void
assign_redis_int(int newval, void *extra)
{
	HcRedisConfigChanged();
}

void
HcDefineGucs(void)
{
	DefineCustomBoolVariable("housing_cache.enabled",
							 "Serve cached functions from the cache.",
							 "When off, every cached function runs its query.",
							 HC_SETTING(hc_enabled),
							 PGC_USERSET, 0, NULL, NULL, NULL);

	DefineCustomStringVariable("housing_cache.redis_host",
							   "Host name or address of the Redis server (L2).",
							   NULL,
							   HC_SETTING(hc_redis_host),
							   PGC_SUSET, 0,
							   check_redis_host, assign_redis_string, NULL);

	DefineCustomIntVariable("housing_cache.redis_port",
							"TCP port of the Redis server.",
							NULL,
							HC_SETTING(hc_redis_port), 1, 65535,
							PGC_SUSET, 0, NULL, assign_redis_int, NULL);

	DefineCustomStringVariable("housing_cache.redis_password",
							   "Password sent with AUTH to Redis; empty sends none.",
							   "Readable by superusers only.",
							   HC_SETTING(hc_redis_password),
							   PGC_SUSET,
							   GUC_SUPERUSER_ONLY | GUC_NO_SHOW_ALL | GUC_NOT_IN_SAMPLE,
							   NULL, assign_redis_string, NULL);

	DefineCustomStringVariable("housing_cache.redis_password_file",
							   "File holding the Redis password; takes precedence over redis_password.",
							   "PostgreSQL logs the new value of a setting changed in postgresql.conf on reload: "
							   "a file keeps the password itself out of the log.",
							   HC_SETTING(hc_redis_password_file),
							   PGC_SUSET, GUC_SUPERUSER_ONLY,
							   NULL, assign_redis_string, NULL);

	/* the master's name first: the check of redis_sentinels reads it */
	DefineCustomStringVariable("housing_cache.redis_sentinel_master",
							   "Name of the Redis master the sentinels monitor (SENTINEL monitor <name> ...).",
							   NULL,
							   HC_SETTING(hc_redis_sentinel_master),
							   PGC_SUSET, 0,
							   check_redis_sentinel_master, assign_redis_string, NULL);

	DefineCustomStringVariable("housing_cache.redis_sentinels",
							   "Redis Sentinel addresses (host:port, comma-separated) that say where the Redis master is; empty: use redis_host and redis_port.",
							   "The master is asked of each sentinel in turn, confirmed with ROLE, and found again after a failover.",
							   HC_SETTING(hc_redis_sentinels),
							   PGC_SUSET, GUC_LIST_INPUT,
							   check_redis_sentinels, assign_redis_sentinels, NULL);

	DefineCustomStringVariable("housing_cache.redis_sentinel_password",
							   "Password sent with AUTH to the sentinels; empty sends none.",
							   "Readable by superusers only.",
							   HC_SETTING(hc_redis_sentinel_password),
							   PGC_SUSET,
							   GUC_SUPERUSER_ONLY | GUC_NO_SHOW_ALL | GUC_NOT_IN_SAMPLE,
							   NULL, assign_redis_string, NULL);

	DefineCustomStringVariable("housing_cache.redis_sentinel_password_file",
							   "File holding the sentinels' password; takes precedence over redis_sentinel_password.",
							   "Keeps the password out of the server log, which shows settings changed on reload.",
							   HC_SETTING(hc_redis_sentinel_password_file),
							   PGC_SUSET, GUC_SUPERUSER_ONLY,
							   NULL, assign_redis_string, NULL);

	DefineCustomIntVariable("housing_cache.redis_db",
							"Redis logical database number (SELECT).",
							NULL,
							HC_SETTING(hc_redis_db), 0, 1023,
							PGC_SUSET, 0, NULL, assign_redis_int, NULL);

	DefineCustomIntVariable("housing_cache.redis_connect_timeout_ms",
							"Time allowed to connect to Redis.",
							NULL,
							HC_SETTING(hc_redis_connect_timeout_ms), 1, 60000,
							PGC_SUSET, GUC_UNIT_MS, NULL, assign_redis_int, NULL);

	DefineCustomIntVariable("housing_cache.redis_command_timeout_ms",
							"Time allowed for one Redis command.",
							NULL,
							HC_SETTING(hc_redis_command_timeout_ms), 1, 60000,
							PGC_SUSET, GUC_UNIT_MS, NULL, assign_redis_int, NULL);

	DefineCustomIntVariable("housing_cache.default_ttl",
							"Time to live of a cached answer, unless its query sets one.",
							"Invalidation does not depend on it; it bounds how long space is used.",
							HC_SETTING(hc_default_ttl), 1, 30 * 24 * 3600,
							PGC_SUSET, GUC_UNIT_S, NULL, NULL, NULL);

	DefineCustomIntVariable("housing_cache.ttl_jitter_pct",
							"Random spread applied to each TTL, in percent.",
							"Keeps answers filled together from expiring together.",
							HC_SETTING(hc_ttl_jitter_pct), 0, 50,
							PGC_SUSET, 0, NULL, NULL, NULL);

	DefineCustomIntVariable("housing_cache.max_value_bytes",
							"Largest answer stored in the cache; larger ones are served but not stored.",
							NULL,
							HC_SETTING(hc_max_value_bytes), 64, 256 * 1024 * 1024,
							PGC_SUSET, GUC_UNIT_BYTE, NULL, NULL, NULL);

	DefineCustomStringVariable("housing_cache.key_prefix",
							   "Prefix of every Redis key the cache writes.",
							   NULL,
							   HC_SETTING(hc_key_prefix),
							   PGC_SUSET, 0, check_key_prefix, NULL, NULL);

	DefineCustomStringVariable("housing_cache.channel",
							   "Redis channel on which committed invalidations are published.",
							   NULL,
							   HC_SETTING(hc_channel),
							   PGC_SUSET, 0, check_channel, NULL, NULL);

	DefineCustomBoolVariable("housing_cache.publish",
							 "Publish committed invalidations on the Redis channel.",
							 NULL,
							 HC_SETTING(hc_publish),
							 PGC_SUSET, 0, NULL, NULL, NULL);

	DefineCustomIntVariable("housing_cache.publish_queue_kb",
							"Shared memory for invalidation messages waiting for the publisher worker.",
							"Writers queue their messages at commit; a message that finds the queue full is dropped and counted in publish_failures.",
							HC_SETTING(hc_publish_queue_kb), 64, 1024 * 1024,
							PGC_POSTMASTER, GUC_UNIT_KB, NULL, NULL, NULL);

	DefineCustomIntVariable("housing_cache.publish_batch_ms",
							"How long the publisher gathers the messages of commits that follow the one that woke it.",
							"They go out as one PUBLISH (a JSON array of messages): a busy writer pays less, a consumer hears of a commit up to this much later.  0: at once.",
							HC_SETTING(hc_publish_batch_ms), 0, 1000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);

	DefineCustomIntVariable("housing_cache.heartbeat_ms",
							"How often the publisher worker publishes the last invalidation message number.",
							"On the invalidation channel, through the Redis of the server's configuration, so that consumers (an HTTP edge's purger) learn of a message they missed.  0: no heartbeat.",
							HC_SETTING(hc_heartbeat_ms), 0, 3600000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);

	DefineCustomIntVariable("housing_cache.publish_max_tags",
							"Most tags listed in one invalidation message.",
							"Past it the message says \"truncated\": true and lists only table-wide tags, \"T/*\" for every table T.",
							HC_SETTING(hc_publish_max_tags), 1, 100000,
							PGC_SUSET, 0, NULL, NULL, NULL);

	DefineCustomIntVariable("housing_cache.generation_slots",
							"Number of generation counters in shared memory (a power of two).",
							"More slots mean fewer tags sharing a counter, so fewer needless invalidations.",
							HC_SETTING(hc_generation_slots), 1024, 1 << 24,
							PGC_POSTMASTER, 0, check_generation_slots, NULL, NULL);

	DefineCustomIntVariable("housing_cache.breaker_backoff_ms",
							"How long Redis is skipped after its first failure.",
							"Doubles with each failed probe, up to breaker_max_backoff_ms.",
							HC_SETTING(hc_breaker_backoff_ms), 10, 600000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);

	DefineCustomIntVariable("housing_cache.breaker_max_backoff_ms",
							"Longest time Redis is skipped between probes.",
							NULL,
							HC_SETTING(hc_breaker_max_backoff_ms), 10, 3600000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);

	DefineCustomIntVariable("housing_cache.l1_size_mb",
							"Shared memory for L1, the in-server cache of whole answers; 0 disables it.",
							NULL,
							HC_SETTING(hc_l1_size_mb), 0, 64 * 1024,
							PGC_POSTMASTER, GUC_UNIT_MB, NULL, NULL, NULL);

	DefineCustomIntVariable("housing_cache.l1_max_value_bytes",
							"Largest answer kept in L1; larger ones live in Redis only.",
							"Bounds how long an L1 lock is held while an answer is copied.",
							HC_SETTING(hc_l1_max_value_bytes), 0, 16 * 1024 * 1024,
							PGC_SUSET, GUC_UNIT_BYTE, NULL, NULL, NULL);

	DefineCustomBoolVariable("housing_cache.column_tags",
							 "Let answers depend only on the columns their queries read.",
							 "Off: every answer depends on every column of the rows of its tags, as before column-aware tags (for comparison; writes are tagged the same either way).",
							 HC_SETTING(hc_column_tags),
							 PGC_SUSET, 0, NULL, NULL, NULL);

	DefineCustomBoolVariable("housing_cache.single_flight",
							 "Let only one session compute a missing answer; the others wait for it.",
							 NULL,
							 HC_SETTING(hc_single_flight),
							 PGC_SUSET, 0, NULL, NULL, NULL);

	DefineCustomIntVariable("housing_cache.fill_wait_ms",
							"Longest wait for another session's fill before computing the answer itself.",
							NULL,
							HC_SETTING(hc_fill_wait_ms), 0, 600000,
							PGC_USERSET, GUC_UNIT_MS, NULL, NULL, NULL);

	DefineCustomRealVariable("housing_cache.xfetch_beta",
							 "Eagerness of probabilistic early recomputation before a TTL ends (XFetch); 0 disables it.",
							 NULL,
							 HC_SETTING(hc_xfetch_beta), 0.0, 10.0,
							 PGC_SUSET, 0, NULL, NULL, NULL);

	DefineCustomIntVariable("housing_cache.escalate_rows",
							"Rows a transaction may write to one watched table before the whole table is invalidated instead of each row's tags.",
							"Bulk loads and large updates then cost almost nothing; they invalidate more than they must.",
							HC_SETTING(hc_escalate_rows), 1, INT_MAX,
							PGC_SUSET, 0, NULL, NULL, NULL);

	DefineCustomStringVariable("housing_cache.value_secret",
							   "Secret that authenticates the answers stored in Redis (HMAC); empty: a random key per server start.",
							   "Set it only to share stored answers between servers. Readable by superusers only.",
							   HC_SETTING(hc_value_secret),
							   PGC_SIGHUP,
							   GUC_SUPERUSER_ONLY | GUC_NO_SHOW_ALL | GUC_NOT_IN_SAMPLE,
							   NULL, NULL, NULL);

	DefineCustomStringVariable("housing_cache.value_secret_file",
							   "File holding the secret that authenticates stored answers; takes precedence over value_secret.",
							   "Keeps the secret out of the server log, which shows settings changed on reload.",
							   HC_SETTING(hc_value_secret_file),
							   PGC_SIGHUP, GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);

	DefineCustomIntVariable("housing_cache.http_max_age",
							"max-age of the Cache-Control header the HTTP API sends.",
							"Browsers and proxies may reuse an answer this long without asking; after that they revalidate with If-None-Match.",
							HC_SETTING(hc_http_max_age), 0, 86400,
							PGC_SUSET, GUC_UNIT_S, NULL, NULL, NULL);

	DefineCustomIntVariable("housing_cache.http_shared_max_age",
							"s-maxage of the Cache-Control header the HTTP API sends with answers an edge may keep.",
							"A shared cache purged by tag (edge/README.md) keeps an answer this long at most, and never longer than its remaining TTL.",
							HC_SETTING(hc_http_shared_max_age), 0, 31536000,
							PGC_SUSET, GUC_UNIT_S, NULL, NULL, NULL);

	DefineCustomIntVariable("housing_cache.wal_rmgr_id",
							"WAL resource manager id of housing_cache's invalidation records (standby.c).",
							"The same on the primary and every standby; one of the custom ids 128-255 no other extension of the cluster uses.",
							HC_SETTING(hc_wal_rmgr_id), RM_MIN_CUSTOM_ID, RM_MAX_CUSTOM_ID,
							PGC_POSTMASTER, 0, NULL, NULL, NULL);

	DefineCustomStringVariable("housing_cache.min_lsn",
							   "Cached reads on a standby first wait until replay has reached this LSN.",
							   "Empty: no wait.  Set it, for example with set_config(..., true), to the LSN a write reported (last_commit_lsn()) to read your own writes on a standby.",
							   HC_SETTING(hc_min_lsn),
							   PGC_USERSET, 0, check_min_lsn, NULL, NULL);

	DefineCustomIntVariable("housing_cache.min_lsn_wait_ms",
							"Longest wait of a read for housing_cache.min_lsn on a standby.",
							"Past it the read fails with SQLSTATE 53HC0.",
							HC_SETTING(hc_min_lsn_wait_ms), 0, 600000,
							PGC_USERSET, GUC_UNIT_MS, NULL, NULL, NULL);

	MarkGUCPrefixReserved("housing_cache");
}
