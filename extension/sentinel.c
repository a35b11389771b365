/*-------------------------------------------------------------------------
 *
 * sentinel.c
 *	  Redis Sentinel: where the Redis master is, found once for every
 *	  backend.
 *
 * With housing_cache.redis_sentinels set, redis_host and redis_port are not
 * used: the master is whatever address the sentinels name for
 * redis_sentinel_master (SENTINEL get-master-addr-by-name), asked of each
 * sentinel in turn, and redis.c confirms it (ROLE must answer "master")
 * before anything is read or written there.
 *
 * Discovery is shared.  The address found, with a discovery generation, is
 * published in shared memory; every backend connects to the address of the
 * newest generation, so hundreds of backends reuse one discovery without
 * asking the sentinels, and a backend connected to the address of an older
 * generation reconnects.  A backend that finds the master broken (a
 * connection error, a timeout, a -READONLY reply) marks its generation
 * suspect; the next backend that may, discovers again:
 *
 *	  - one backend at a time: it claims the discovery by moving
 *		claimed_until forward with a compare-and-swap (the claim runs out by
 *		itself if that backend dies);
 *	  - at most once per breaker_backoff_ms while the breaker is closed
 *		(next_discovery), so a burst of -READONLY replies makes one
 *		discovery;
 *	  - while the breaker is open only its probe discovers, which spaces
 *		discoveries by the breaker's growing backoff.  A discovery that finds
 *		no master is a breaker failure: until one succeeds, every Redis call
 *		is skipped (a miss, never an error).
 *
 * A session that SETs redis_sentinels or redis_sentinel_master to something
 * else than the server's configuration discovers for itself (private_*),
 * never publishing what it found, so that it cannot move every other
 * backend.  During a reload the published address is tagged with a hash of
 * the settings it was found with: a backend whose settings differ does not
 * use it.
 *
 * Locks: the spinlock is held only to copy the address in or out.  No
 * network call is made under it, nothing here raises an error or uses
 * palloc (redis.c calls it from the commit path, to publish).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/time.h>

#include <hiredis/hiredis.h>

#include "common/hashfn.h"
#include "storage/spin.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

#include "housing_cache.h"

typedef struct HcSentinelShared
{
	slock_t		mutex;			/* held only to copy the fields below it */
	uint64		config;			/* hash of the settings the master was found with */
	HcRedisAddr master;
	uint64		generation;		/* of master; 0: none found yet */
	uint64		last_generation;	/* generations are numbered from this */

	pg_atomic_uint64 published;	/* = generation, read without the mutex */
	pg_atomic_uint64 suspect;	/* a generation found broken */
	pg_atomic_uint64 claimed_until;	/* TimestampTz: a discovery runs until then */
	pg_atomic_uint64 next_discovery;	/* TimestampTz: none starts before, unless probing */
	pg_atomic_uint32 last_good;	/* the sentinel that named the master last */
} HcSentinelShared;

static HcSentinelShared *shared = NULL;

/* housing_cache.redis_sentinels, parsed by the check hook */
static HcSentinelList sentinel_list;

/* the settings as this backend has them */
static bool config_dirty = true;
static uint64 config_hash = 0;
static bool config_private = false;

/* the last copy of the shared address */
static HcMaster local;
static uint64 local_config = 0;

/* discoveries of a session whose settings are its own */
static HcMaster private_master;
static bool private_known = false;
static uint64 private_generation = 0;
static TimestampTz private_next = 0;

static struct timeval
ms_to_timeval(int ms)
{
	struct timeval tv;

	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	return tv;
}

static bool
same_addr(const HcRedisAddr *a, const HcRedisAddr *b)
{
	return a->port == b->port && strcmp(a->host, b->host) == 0;
}

void
HcSentinelFormatAddr(const HcRedisAddr *addr, char *buf, size_t size)
{
	if (strchr(addr->host, ':') != NULL)
		snprintf(buf, size, "[%s]:%d", addr->host, addr->port);
	else
		snprintf(buf, size, "%s:%d", addr->host, addr->port);
}

/*
 * Parse "host:port, host:port, [v6]:port" into *list.  An empty (or blank)
 * value is an empty list.  On failure *err says why, naming the setting.
 */
bool
HcSentinelParse(const char *value, HcSentinelList *list, char *err, size_t errlen)
{
	const char *p = value;

	memset(list, 0, sizeof(*list));
	if (p == NULL)
		return true;
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p == '\0')
		return true;

	for (;;)
	{
		const char *start = p;
		const char *end;
		const char *colon;
		const char *host;
		int			hostlen;
		const char *port;
		int			portlen;
		long		portnum = 0;
		HcRedisAddr *addr;

		while (*p != ',' && *p != '\0')
			p++;
		end = p;
		while (start < end && (*start == ' ' || *start == '\t'))
			start++;
		while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
			end--;
		if (start == end)
		{
			snprintf(err, errlen, "housing_cache.redis_sentinels has an empty entry: list sentinels as host:port, separated by commas");
			return false;
		}
		if (list->count == HC_MAX_SENTINELS)
		{
			snprintf(err, errlen, "housing_cache.redis_sentinels lists more than %d sentinels", HC_MAX_SENTINELS);
			return false;
		}

		if (*start == '[')
		{
			const char *close = memchr(start, ']', end - start);

			if (close == NULL || close + 1 >= end || close[1] != ':')
			{
				snprintf(err, errlen, "housing_cache.redis_sentinels: \"%.*s\" is not [address]:port",
						 (int) Min(end - start, 100), start);
				return false;
			}
			host = start + 1;
			hostlen = close - host;
			colon = close + 1;
		}
		else
		{
			colon = NULL;
			for (const char *q = start; q < end; q++)
				if (*q == ':')
					colon = q;
			if (colon == NULL)
			{
				snprintf(err, errlen, "housing_cache.redis_sentinels: \"%.*s\" is not host:port",
						 (int) Min(end - start, 100), start);
				return false;
			}
			host = start;
			hostlen = colon - start;
			if (memchr(host, ':', hostlen) != NULL)
			{
				snprintf(err, errlen, "housing_cache.redis_sentinels: \"%.*s\" is not host:port (write an IPv6 address in brackets: [::1]:26379)",
						 (int) Min(end - start, 100), start);
				return false;
			}
		}
		if (hostlen == 0)
		{
			snprintf(err, errlen, "housing_cache.redis_sentinels: \"%.*s\" has no host",
					 (int) Min(end - start, 100), start);
			return false;
		}
		if (hostlen > HC_HOST_MAXLEN)
		{
			snprintf(err, errlen, "housing_cache.redis_sentinels: a host is longer than %d characters", HC_HOST_MAXLEN);
			return false;
		}
		for (int i = 0; i < hostlen; i++)
		{
			if (host[i] <= ' ' || host[i] == 0x7f || host[i] == '[' || host[i] == ']')
			{
				snprintf(err, errlen, "housing_cache.redis_sentinels: host \"%.*s\" contains blanks, control characters or brackets",
						 Min(hostlen, 100), host);
				return false;
			}
		}
		port = colon + 1;
		portlen = end - port;
		for (int i = 0; i < portlen; i++)
		{
			if (port[i] < '0' || port[i] > '9' || portnum > 65535)
			{
				portnum = -1;
				break;
			}
			portnum = portnum * 10 + (port[i] - '0');
		}
		if (portlen == 0 || portnum < 1 || portnum > 65535)
		{
			snprintf(err, errlen, "housing_cache.redis_sentinels: the port of \"%.*s\" must be a number from 1 to 65535",
					 (int) Min(end - start, 100), start);
			return false;
		}

		addr = &list->sentinels[list->count];
		memcpy(addr->host, host, hostlen);
		addr->host[hostlen] = '\0';
		addr->port = (int) portnum;
		for (int i = 0; i < list->count; i++)
		{
			if (same_addr(&list->sentinels[i], addr))
			{
				snprintf(err, errlen, "housing_cache.redis_sentinels lists \"%.*s\" twice",
						 (int) Min(end - start, 100), start);
				return false;
			}
		}
		list->count++;

		if (*p == '\0')
			return true;
		p++;					/* the comma */
	}
}

/*
 * The assign hook of redis_sentinels: the list its check hook parsed.
 */
void
HcSentinelAssign(const HcSentinelList *list)
{
	if (list != NULL)
		sentinel_list = *list;
	else
		memset(&sentinel_list, 0, sizeof(sentinel_list));
	HcSentinelConfigChanged();
}

/*
 * A setting that says where the master is changed (assign hooks, through
 * HcRedisConfigChanged): look at them again before the next call.
 */
void
HcSentinelConfigChanged(void)
{
	config_dirty = true;
	private_known = false;
	private_next = 0;
}

bool
HcSentinelEnabled(void)
{
	return sentinel_list.count > 0;
}

/*
 * Hash the settings, and tell whether this session has its own (SET) rather
 * than the server's.  Assign hooks run before the variable changes, so this
 * is done lazily, at the next call.  Neither palloc nor an error (the
 * settings exist, and are not superuser-only).
 */
static void
config_refresh(void)
{
	const char *master = hc_redis_sentinel_master ? hc_redis_sentinel_master : "";
	const char *reset_sentinels;
	const char *reset_master;

	if (!config_dirty)
		return;
	config_hash = hash_bytes_extended((const unsigned char *) &sentinel_list,
									  offsetof(HcSentinelList, sentinels) +
									  sentinel_list.count * sizeof(HcRedisAddr), 0);
	config_hash = hash_combine64(config_hash,
								 hash_bytes_extended((const unsigned char *) master,
													 strlen(master), 0));
	reset_sentinels = GetConfigOptionResetString("housing_cache.redis_sentinels");
	reset_master = GetConfigOptionResetString("housing_cache.redis_sentinel_master");
	config_private =
		strcmp(reset_sentinels ? reset_sentinels : "", hc_redis_sentinels ? hc_redis_sentinels : "") != 0 ||
		strcmp(reset_master ? reset_master : "", master) != 0;
	config_dirty = false;
}

Size
HcSentinelShmemSize(void)
{
	return MAXALIGN(sizeof(HcSentinelShared));
}

void
HcSentinelShmemInit(char *base, bool found)
{
	shared = (HcSentinelShared *) base;
	if (found)
		return;
	memset(shared, 0, sizeof(*shared));
	SpinLockInit(&shared->mutex);
	pg_atomic_init_u64(&shared->published, 0);
	pg_atomic_init_u64(&shared->suspect, 0);
	pg_atomic_init_u64(&shared->claimed_until, 0);
	pg_atomic_init_u64(&shared->next_discovery, 0);
	pg_atomic_init_u32(&shared->last_good, 0);
}

/*
 * The master this backend should use, if one is known: the newest address
 * published for its settings.  One atomic read when nothing changed.
 */
bool
HcSentinelMaster(HcMaster *master)
{
	uint64		generation;

	if (!HcSentinelEnabled())
		return false;
	config_refresh();
	if (config_private)
	{
		if (!private_known)
			return false;
		*master = private_master;
		return true;
	}
	if (shared == NULL)
		return false;
	generation = pg_atomic_read_u64(&shared->published);
	if (generation == 0)
		return false;
	if (generation != local.generation)
	{
		SpinLockAcquire(&shared->mutex);
		local_config = shared->config;
		local.addr = shared->master;
		local.generation = shared->generation;
		SpinLockRelease(&shared->mutex);
	}
	if (local.generation == 0 || local_config != config_hash)
		return false;
	*master = local;
	master->suspect = (pg_atomic_read_u64(&shared->suspect) == local.generation);
	return true;
}

/*
 * The longest a discovery can take: every sentinel asked (connect, AUTH,
 * SENTINEL) and every address named confirmed (connect, AUTH, SELECT, ROLE).
 */
static int64
discovery_us(void)
{
	int64		per = 2 * (int64) hc_redis_connect_timeout_ms + 5 * (int64) hc_redis_command_timeout_ms;

	return (Max(sentinel_list.count, 1) * per + 100) * 1000;
}

/*
 * May this backend discover now?  True at most once per breaker_backoff_ms,
 * and for one backend at a time; the breaker's probe (the breaker is open
 * and this backend's call is the one that tries again) needs no turn.
 */
bool
HcSentinelClaim(bool probe)
{
	TimestampTz now = GetCurrentTimestamp();
	uint64		until;

	if (!HcSentinelEnabled())
		return false;
	config_refresh();
	if (config_private)
	{
		if (!probe && now < private_next)
			return false;
		private_next = now + discovery_us();
		return true;
	}
	if (shared == NULL)
		return false;
	if (!probe && (uint64) now < pg_atomic_read_u64(&shared->next_discovery))
		return false;
	until = pg_atomic_read_u64(&shared->claimed_until);
	if ((uint64) now < until)
		return false;
	return pg_atomic_compare_exchange_u64(&shared->claimed_until, &until,
										  (uint64) (now + discovery_us()));
}

/*
 * The master of this generation failed (connection error, timeout,
 * -READONLY): the next backend that may will discover again.  A report
 * about an older generation is moot.
 */
void
HcSentinelSuspect(uint64 generation)
{
	if (generation == 0 || !HcSentinelEnabled())
		return;
	config_refresh();
	if (config_private)
	{
		if (private_known && private_master.generation == generation)
			private_master.suspect = true;
		return;
	}
	if (shared != NULL && pg_atomic_read_u64(&shared->published) == generation)
		pg_atomic_write_u64(&shared->suspect, generation);
}

void
HcSentinelAskBegin(HcSentinelAsk *ask)
{
	memset(ask, 0, sizeof(*ask));
	if (!config_private && shared != NULL && sentinel_list.count > 0)
		ask->start = pg_atomic_read_u32(&shared->last_good) % sentinel_list.count;
}

/*
 * Ask one sentinel where the master is.
 */
static bool
sentinel_ask(const HcRedisAddr *sentinel, HcRedisAddr *master, char *detail, size_t len)
{
	redisContext *c;
	redisReply *reply;
	char		where[HC_HOST_MAXLEN + 16];
	char		filepw[1024];
	const char *password = hc_redis_sentinel_password;
	const char *err = NULL;
	const char *name = hc_redis_sentinel_master ? hc_redis_sentinel_master : "";
	bool		ok = false;

	HcSentinelFormatAddr(sentinel, where, sizeof(where));
	c = redisConnectWithTimeout(sentinel->host, sentinel->port,
								ms_to_timeval(hc_redis_connect_timeout_ms));
	if (c == NULL || c->err)
	{
		snprintf(detail, len, "Sentinel %s: %s", where, c ? c->errstr : "out of memory");
		if (c)
			redisFree(c);
		return false;
	}
	if (redisSetTimeout(c, ms_to_timeval(hc_redis_command_timeout_ms)) != REDIS_OK)
	{
		snprintf(detail, len, "Sentinel %s: could not set the command timeout", where);
		redisFree(c);
		return false;
	}

	/* the password never appears in a message */
	if (hc_redis_sentinel_password_file && hc_redis_sentinel_password_file[0] != '\0')
	{
		if (!HcReadSecretFile(hc_redis_sentinel_password_file, filepw, sizeof(filepw), &err))
		{
			snprintf(detail, len, "Sentinel %s: housing_cache.redis_sentinel_password_file: %s", where, err);
			redisFree(c);
			return false;
		}
		password = filepw;
	}
	if (password && password[0] != '\0')
	{
		reply = redisCommand(c, "AUTH %s", password);
		explicit_bzero(filepw, sizeof(filepw));
		if (reply == NULL || reply->type != REDIS_REPLY_STATUS)
		{
			snprintf(detail, len, "Sentinel %s: AUTH: %s", where,
					 reply == NULL ? (c->errstr[0] ? c->errstr : "no reply") :
					 reply->type == REDIS_REPLY_ERROR ? "the sentinel refused the password" :
					 "unexpected reply");
			if (reply)
				freeReplyObject(reply);
			redisFree(c);
			return false;
		}
		freeReplyObject(reply);
	}
	explicit_bzero(filepw, sizeof(filepw));

	reply = redisCommand(c, "SENTINEL get-master-addr-by-name %s", name);
	if (reply == NULL)
		snprintf(detail, len, "Sentinel %s: %s", where, c->errstr[0] ? c->errstr : "no reply");
	else if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
			 reply->element[0]->type == REDIS_REPLY_STRING &&
			 reply->element[1]->type == REDIS_REPLY_STRING)
	{
		const redisReply *h = reply->element[0];
		const redisReply *p = reply->element[1];
		char	   *endp;
		long		port;
		char		porttext[16];

		snprintf(porttext, sizeof(porttext), "%.*s", (int) Min(p->len, 15), p->str);
		port = strtol(porttext, &endp, 10);
		if (h->len == 0 || h->len > HC_HOST_MAXLEN || memchr(h->str, '\0', h->len) != NULL ||
			*endp != '\0' || endp == porttext || port < 1 || port > 65535)
			snprintf(detail, len, "Sentinel %s: named an invalid address for master \"%s\"", where, name);
		else
		{
			memcpy(master->host, h->str, h->len);
			master->host[h->len] = '\0';
			master->port = (int) port;
			ok = true;
		}
	}
	else if (reply->type == REDIS_REPLY_NIL)
		snprintf(detail, len, "Sentinel %s does not know master \"%s\"", where, name);
	else if (reply->type == REDIS_REPLY_ERROR)
		snprintf(detail, len, "Sentinel %s: %.120s", where, reply->str);
	else
		snprintf(detail, len, "Sentinel %s: unexpected reply to SENTINEL get-master-addr-by-name", where);
	if (reply)
		freeReplyObject(reply);
	redisFree(c);
	return ok;
}

/*
 * The next address a sentinel names as the master, asking the sentinels in
 * turn (from the one that answered last time), each address once.  False
 * when every sentinel was asked; *detail then says what went wrong last.
 */
bool
HcSentinelAskNext(HcSentinelAsk *ask, HcRedisAddr *master, char *detail, size_t detail_len)
{
	while (ask->asked < sentinel_list.count)
	{
		int			i = (ask->start + ask->asked++) % sentinel_list.count;
		bool		seen = false;

		if (!sentinel_ask(&sentinel_list.sentinels[i], master, detail, detail_len))
			continue;
		for (int t = 0; t < ask->ntried; t++)
			if (same_addr(&ask->tried[t], master))
				seen = true;
		if (seen)
			continue;
		ask->tried[ask->ntried++] = *master;
		ask->answered = i;
		return true;
	}
	return false;
}

/*
 * A discovery confirmed *master: publish it (a new generation if it moved)
 * and return its generation.
 */
uint64
HcSentinelFound(const HcSentinelAsk *ask, const HcRedisAddr *master)
{
	TimestampTz now = GetCurrentTimestamp();
	uint64		generation;
	uint64		expected;
	bool		moved = false;
	bool		first = false;
	HcRedisAddr old = {{0}, 0};
	char		from[HC_HOST_MAXLEN + 16];
	char		to[HC_HOST_MAXLEN + 16];

	if (config_private || shared == NULL)
	{
		if (!private_known || !same_addr(&private_master.addr, master))
		{
			private_master.addr = *master;
			private_master.generation = ++private_generation;
		}
		private_master.suspect = false;
		private_known = true;
		private_next = now + (int64) hc_breaker_backoff_ms * 1000;
		return private_master.generation;
	}

	SpinLockAcquire(&shared->mutex);
	if (shared->generation == 0 || shared->config != config_hash ||
		!same_addr(&shared->master, master))
	{
		moved = (shared->generation != 0 && shared->config == config_hash);
		first = !moved;
		old = shared->master;
		shared->config = config_hash;
		shared->master = *master;
		shared->generation = ++shared->last_generation;
	}
	generation = shared->generation;
	SpinLockRelease(&shared->mutex);

	pg_atomic_write_u64(&shared->published, generation);
	expected = generation;
	(void) pg_atomic_compare_exchange_u64(&shared->suspect, &expected, 0);
	pg_atomic_write_u32(&shared->last_good, (uint32) ask->answered);
	pg_atomic_write_u64(&shared->next_discovery, (uint64) (now + (int64) hc_breaker_backoff_ms * 1000));
	pg_atomic_write_u64(&shared->claimed_until, 0);

	HcSentinelFormatAddr(master, to, sizeof(to));
	if (moved)
	{
		HcStatInc(HC_STAT_REDIS_FAILOVERS);
		HcSentinelFormatAddr(&old, from, sizeof(from));
		ereport(LOG,
				(errmsg("housing_cache: Redis master \"%s\" moved from %s to %s",
						hc_redis_sentinel_master, from, to),
				 errhidestmt(true)));
	}
	else if (first)
		ereport(LOG,
				(errmsg("housing_cache: Redis master \"%s\" is at %s",
						hc_redis_sentinel_master, to),
				 errhidestmt(true)));
	return generation;
}

/*
 * A discovery found no master: the next one waits its turn (and the caller
 * opens the breaker).
 */
void
HcSentinelNotFound(void)
{
	TimestampTz now = GetCurrentTimestamp();

	if (config_private || shared == NULL)
	{
		private_next = now + (int64) hc_breaker_backoff_ms * 1000;
		return;
	}
	pg_atomic_write_u64(&shared->next_discovery, (uint64) (now + (int64) hc_breaker_backoff_ms * 1000));
	pg_atomic_write_u64(&shared->claimed_until, 0);
}
