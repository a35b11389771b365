/*-------------------------------------------------------------------------
 *
 * redis.c
 *	  The Redis client: the L2 tier and the invalidation channel.
 *
 * Each backend opens its own connection lazily, on its first cache call,
 * never in the postmaster.  Every command is bounded by
 * redis_command_timeout_ms (connects by redis_connect_timeout_ms).  After any
 * failure the connection is dropped and the shared circuit breaker opened, so
 * that other backends skip Redis instead of paying the timeout too.
 *
 * With housing_cache.redis_sentinels set, the address is the master the
 * sentinels name (sentinel.c), confirmed with ROLE before use; the
 * connection follows the discovery generation published in shared memory.
 * A connection error, a timeout or a -READONLY reply (the master was
 * demoted: a write reached a replica) makes the master suspect, and the next
 * backend whose turn it is discovers it again.
 *
 * Nothing here raises an error to the caller for a Redis problem: a failed
 * read is a miss, a failed write is a counted skip.  Every hiredis reply is
 * freed on every path, including when a palloc in between fails.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <errno.h>
#include <sys/time.h>

#include <hiredis/hiredis.h>

#include "housing_cache.h"

static redisContext *hc_redis = NULL;

/* where hc_redis is connected, and the discovery generation of that address (0: none) */
static HcRedisAddr conn_addr;
static uint64 conn_generation = 0;

/* replies to PUBLISH not read yet (see HcRedisPublish) */
static int	pending_replies = 0;

static struct timeval
ms_to_timeval(int ms)
{
	struct timeval tv;

	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	return tv;
}

static void
hc_redis_drop(void)
{
	if (hc_redis != NULL)
	{
		redisFree(hc_redis);
		hc_redis = NULL;
	}
	conn_generation = 0;
	pending_replies = 0;
}

/*
 * The address of the Redis this server uses (host:port): under Sentinel the
 * master discovered last, "" while none is known.
 */
const char *
HcRedisMasterAddress(void)
{
	HcMaster	master;
	char		buf[HC_HOST_MAXLEN + 16];

	if (!HcSentinelEnabled())
	{
		HcRedisAddr addr;

		strlcpy(addr.host, hc_redis_host ? hc_redis_host : "", sizeof(addr.host));
		addr.port = hc_redis_port;
		HcSentinelFormatAddr(&addr, buf, sizeof(buf));
		return pstrdup(buf);
	}
	if (!HcSentinelMaster(&master))
		return pstrdup("");
	HcSentinelFormatAddr(&master.addr, buf, sizeof(buf));
	return pstrdup(buf);
}

/*
 * "Redis at host:port", or under Sentinel 'Redis master "name" at
 * host:port', for log messages.  No palloc: the breaker logs from the
 * commit path.
 */
void
HcRedisDescribe(char *buf, size_t size)
{
	HcMaster	master;
	char		addr[HC_HOST_MAXLEN + 16];

	if (!HcSentinelEnabled())
	{
		HcRedisAddr configured;

		strlcpy(configured.host, hc_redis_host ? hc_redis_host : "", sizeof(configured.host));
		configured.port = hc_redis_port;
		HcSentinelFormatAddr(&configured, addr, sizeof(addr));
		snprintf(buf, size, "Redis at %s", addr);
	}
	else if (HcSentinelMaster(&master))
	{
		HcSentinelFormatAddr(&master.addr, addr, sizeof(addr));
		snprintf(buf, size, "Redis master \"%s\" at %s", hc_redis_sentinel_master, addr);
	}
	else
		snprintf(buf, size, "Redis master \"%s\" (not discovered)", hc_redis_sentinel_master);
}

/*
 * Called by the GUC assign hooks: the next call reconnects with the new
 * settings (and, under Sentinel, looks at them again).
 */
void
HcRedisConfigChanged(void)
{
	hc_redis_drop();
	HcSentinelConfigChanged();
}

/*
 * Send one command during connection setup; true if Redis answered +OK.
 * On failure *err gets a static description.
 */
static bool
hc_redis_setup_command(redisContext *c, const char **err,
					   const char *fmt, const char *arg)
{
	redisReply *reply = redisCommand(c, fmt, arg);
	bool		ok;

	if (reply == NULL)
	{
		*err = c->errstr[0] ? c->errstr : "no reply";
		return false;
	}
	ok = (reply->type == REDIS_REPLY_STATUS);
	if (!ok)
		*err = (reply->type == REDIS_REPLY_ERROR) ? "server refused the command" : "unexpected reply";
	freeReplyObject(reply);
	return ok;
}

/*
 * Connect to addr and set the connection up (timeouts, AUTH, SELECT).  On
 * failure returns NULL with *what (the step) and err set.
 */
static redisContext *
hc_redis_open(const HcRedisAddr *addr, const char **what, char *err, size_t errlen)
{
	redisContext *c;
	const char *e = NULL;
	char		dbtext[16];
	const char *password;
	char		filepw[1024];

	c = redisConnectWithTimeout(addr->host, addr->port,
								ms_to_timeval(hc_redis_connect_timeout_ms));
	if (c == NULL || c->err)
	{
		*what = "connect";
		strlcpy(err, c ? c->errstr : "out of memory", errlen);
		if (c)
			redisFree(c);
		return NULL;
	}
	if (redisSetTimeout(c, ms_to_timeval(hc_redis_command_timeout_ms)) != REDIS_OK)
	{
		*what = "connect";
		strlcpy(err, "could not set the command timeout", errlen);
		redisFree(c);
		return NULL;
	}
	/* the password never appears in a message */
	password = hc_redis_password;
	if (hc_redis_password_file && hc_redis_password_file[0] != '\0')
	{
		if (!HcReadSecretFile(hc_redis_password_file, filepw, sizeof(filepw), &e))
		{
			*what = "housing_cache.redis_password_file";
			strlcpy(err, e, errlen);
			redisFree(c);
			return NULL;
		}
		password = filepw;
	}
	if (password && password[0] != '\0' &&
		!hc_redis_setup_command(c, &e, "AUTH %s", password))
	{
		explicit_bzero(filepw, sizeof(filepw));
		*what = "AUTH";
		strlcpy(err, e, errlen);
		redisFree(c);
		return NULL;
	}
	explicit_bzero(filepw, sizeof(filepw));
	if (hc_redis_db != 0)
	{
		snprintf(dbtext, sizeof(dbtext), "%d", hc_redis_db);
		if (!hc_redis_setup_command(c, &e, "SELECT %s", dbtext))
		{
			*what = "SELECT";
			strlcpy(err, e, errlen);
			redisFree(c);
			return NULL;
		}
	}
	return c;
}

/*
 * Does the server of c say it is a master (ROLE)?
 */
static bool
hc_redis_is_master(redisContext *c, char *err, size_t errlen)
{
	redisReply *reply = redisCommand(c, "ROLE");
	bool		ok = false;

	if (reply == NULL)
		strlcpy(err, c->errstr[0] ? c->errstr : "no reply", errlen);
	else if (reply->type == REDIS_REPLY_ARRAY && reply->elements >= 1 &&
			 reply->element[0]->type == REDIS_REPLY_STRING)
	{
		ok = (strcmp(reply->element[0]->str, "master") == 0);
		if (!ok)
			snprintf(err, errlen, "it is a %.20s, not a master", reply->element[0]->str);
	}
	else if (reply->type == REDIS_REPLY_ERROR)
		snprintf(err, errlen, "%.120s", reply->str);
	else
		strlcpy(err, "unexpected reply", errlen);
	if (reply)
		freeReplyObject(reply);
	return ok;
}

/*
 * Ask the sentinels where the master is, and connect to it.  This backend
 * holds the turn to discover (HcSentinelClaim).  On success hc_redis is a
 * connection to the master, confirmed by ROLE and set up; on failure the
 * breaker opens (or stays open longer): until a discovery succeeds, Redis
 * is skipped.
 */
static bool
hc_redis_discover(void)
{
	HcSentinelAsk ask;
	HcRedisAddr master;
	char		detail[512];

	hc_redis_drop();
	HcStatInc(HC_STAT_REDIS_DISCOVERIES);
	strlcpy(detail, "no sentinel answered", sizeof(detail));
	HcSentinelAskBegin(&ask);
	while (HcSentinelAskNext(&ask, &master, detail, sizeof(detail)))
	{
		char		err[256];
		char		where[HC_HOST_MAXLEN + 16];
		const char *what = "ROLE";
		redisContext *c = hc_redis_open(&master, &what, err, sizeof(err));

		if (c != NULL && hc_redis_is_master(c, err, sizeof(err)))
		{
			hc_redis = c;
			conn_addr = master;
			conn_generation = HcSentinelFound(&ask, &master);
			return true;
		}
		if (c != NULL)
			redisFree(c);
		HcSentinelFormatAddr(&master, where, sizeof(where));
		snprintf(detail, sizeof(detail), "the master the sentinels name, %s: %s: %s",
				 where, what, err);
	}
	HcSentinelNotFound();
	HcBreakerFailure("Sentinel", detail);
	return false;
}

/*
 * Make sure this backend has a usable connection to the master the
 * sentinels name.  A discovery is made when no master is known or the known
 * one is suspect, and it is this backend's turn; from the commit path
 * (publishing) only when none is known at all, so that a writer does not
 * pay for a rediscovery.
 */
static bool
hc_redis_ready_sentinel(bool publishing)
{
	HcMaster	master;
	bool		known = HcSentinelMaster(&master);
	redisContext *c;
	const char *what = "connect";
	char		err[256];

	if ((!known || (master.suspect && !publishing)) &&
		HcSentinelClaim(HcBreakerProbing()))
		return hc_redis_discover();
	if (!known)
	{
		/* another backend is discovering, or it failed a moment ago */
		hc_redis_drop();
		return false;
	}
	if (hc_redis != NULL && conn_generation != master.generation)
	{
		/* a newer discovery: reconnect, unless it found the same address */
		if (strcmp(conn_addr.host, master.addr.host) != 0 || conn_addr.port != master.addr.port)
			hc_redis_drop();
		else
			conn_generation = master.generation;
	}
	if (hc_redis != NULL)
		return true;

	c = hc_redis_open(&master.addr, &what, err, sizeof(err));
	if (c == NULL)
	{
		HcSentinelSuspect(master.generation);
		HcBreakerFailure(what, err);
		return false;
	}
	hc_redis = c;
	conn_addr = master.addr;
	conn_generation = master.generation;
	return true;
}

/*
 * Make sure this backend has a usable connection, if the breaker allows.
 */
static bool
hc_redis_ready(bool publishing)
{
	HcRedisAddr addr;
	redisContext *c;
	const char *what = "connect";
	char		err[256];

	if (!HcBreakerAllows())
		return false;
	if (HcSentinelEnabled())
		return hc_redis_ready_sentinel(publishing);
	if (hc_redis != NULL)
		return true;

	strlcpy(addr.host, hc_redis_host ? hc_redis_host : "", sizeof(addr.host));
	addr.port = hc_redis_port;
	c = hc_redis_open(&addr, &what, err, sizeof(err));
	if (c == NULL)
	{
		HcBreakerFailure(what, err);
		return false;
	}
	hc_redis = c;
	conn_addr = addr;
	conn_generation = 0;
	return true;
}

/*
 * The command got no reply: the connection is unusable (timeout, reset).
 */
static void
hc_redis_failed(const char *what)
{
	HcSentinelSuspect(conn_generation);
	HcBreakerFailure(what, hc_redis && hc_redis->errstr[0] ? hc_redis->errstr : "no reply");
	hc_redis_drop();
}

/*
 * An error reply.  -READONLY means the master was demoted and this is now a
 * replica: the sentinels are asked again (by whichever backend's turn it
 * is), and the connection follows the new master once it is found.
 */
static void
hc_redis_error_reply(const redisReply *reply)
{
	if (reply->type == REDIS_REPLY_ERROR && reply->len >= 8 &&
		strncmp(reply->str, "READONLY", 8) == 0)
		HcSentinelSuspect(conn_generation);
}

/* did the last call fail because the server closed the connection? */
static bool
hc_redis_closed(void)
{
	return hc_redis != NULL &&
		(hc_redis->err == REDIS_ERR_EOF ||
		 (hc_redis->err == REDIS_ERR_IO && (errno == ECONNRESET || errno == EPIPE)));
}

/*
 * Read the replies of earlier PUBLISHes, which were sent without waiting for
 * them.  They arrived long ago, so this does not wait either.  An error
 * reply counts as a failed publish.
 */
static bool
hc_redis_drain(void)
{
	while (pending_replies > 0)
	{
		void	   *reply = NULL;

		if (redisGetReply(hc_redis, &reply) != REDIS_OK || reply == NULL)
		{
			HcStatInc(HC_STAT_PUBLISH_FAILURES);
			/* closed by the server: reconnect without opening the breaker */
			if (hc_redis_closed())
				hc_redis_drop();
			else
				hc_redis_failed("PUBLISH");
			return false;
		}
		if (((redisReply *) reply)->type != REDIS_REPLY_INTEGER)
		{
			HcStatInc(HC_STAT_PUBLISH_FAILURES);
			hc_redis_error_reply(reply);
		}
		freeReplyObject(reply);
		pending_replies--;
	}
	return true;
}

/*
 * Send a command; if a connection kept from earlier turns out to have been
 * closed by the server (Redis restarted, idle timeout), reconnect and send it
 * once more, so that a restarted Redis does not open the breaker for every
 * backend.  A timeout is not retried: it would double the caller's wait.
 */
static redisReply *
hc_redis_command(const char *what, const char *fmt, ...)
{
	for (int attempt = 0; attempt < 2; attempt++)
	{
		va_list		ap;
		redisReply *reply;
		bool		closed;

		if (!hc_redis_ready(false))
			return NULL;
		if (!hc_redis_drain())
			continue;			/* the connection was dropped: reconnect once */
		va_start(ap, fmt);
		reply = redisvCommand(hc_redis, fmt, ap);
		va_end(ap);
		if (reply != NULL)
			return reply;

		closed = hc_redis_closed();
		if (attempt == 0 && closed)
		{
			hc_redis_drop();
			continue;
		}
		hc_redis_failed(what);
		return NULL;
	}
	return NULL;
}

/*
 * Look a key up.  On HC_REDIS_HIT, *value holds a palloc'd copy of the
 * answer.
 */
HcRedisResult
HcRedisGet(const char *key, const uint8 *digest, HcValue *value)
{
	redisReply *volatile reply;
	volatile HcRedisResult result = HC_REDIS_MISS;

	reply = hc_redis_command("GET", "GET %b", key, strlen(key));
	if (reply == NULL)
		return HC_REDIS_UNAVAILABLE;

	PG_TRY();
	{
		if (reply->type == REDIS_REPLY_STRING)
		{
			HcValue		v;

			if (HcValueDecode(digest, reply->str, reply->len, &v))
			{
				*value = v;
				value->data = NULL;
				value->varlena = NULL;
				if (!v.isnull)
				{
					HcValueAllocate(value, v.len);
					memcpy(value->data, v.data, v.len);
				}
				result = HC_REDIS_HIT;
			}
			else
				HcStatInc(HC_STAT_L2_REJECTS);
		}
		else if (reply->type == REDIS_REPLY_ERROR)
		{
			/* e.g. NOAUTH or LOADING: answered, but unusable for now */
			HcStatInc(HC_STAT_REDIS_ERRORS);
			hc_redis_error_reply(reply);
			result = HC_REDIS_UNAVAILABLE;
		}
		else if (reply->type != REDIS_REPLY_NIL)
			HcStatInc(HC_STAT_L2_REJECTS);
	}
	PG_FINALLY();
	{
		freeReplyObject(reply);
	}
	PG_END_TRY();

	if (result != HC_REDIS_UNAVAILABLE)
		HcBreakerSuccess();
	return result;
}

/*
 * Store an answer under key with its TTL.  Returns true if Redis took it.
 */
bool
HcRedisSet(const char *key, const uint8 *digest, const HcValue *value)
{
	char	   *buf;
	Size		len;
	redisReply *reply;
	bool		ok;
	char		ttltext[16];

	buf = HcValueEncode(digest, value, &len);
	snprintf(ttltext, sizeof(ttltext), "%u", Max(value->ttl_ms, 1));
	reply = hc_redis_command("SET", "SET %b %b PX %s",
							 key, strlen(key), buf, len, ttltext);
	pfree(buf);
	if (reply == NULL)
		return false;

	/*
	 * An error reply (full with noeviction, read-only replica) means Redis is
	 * up but refuses writes: count it, keep reading from it.  Under Sentinel
	 * a -READONLY also has the master discovered again.
	 */
	ok = (reply->type == REDIS_REPLY_STATUS);
	if (!ok)
	{
		HcStatInc(HC_STAT_REDIS_ERRORS);
		hc_redis_error_reply(reply);
	}
	freeReplyObject(reply);
	HcBreakerSuccess();
	return ok;
}

/*
 * Look n keys up in one round trip (MGET).  hit[i] says whether values[i]
 * holds a palloc'd copy of key i's answer.  Returns false when Redis is
 * unavailable (nothing is a hit then).
 */
bool
HcRedisMGet(int n, const char *const *keys, const uint8 *const *digests,
			HcValue *values, bool *hit)
{
	const char **argv = palloc(sizeof(char *) * (n + 1));
	size_t	   *argvlen = palloc(sizeof(size_t) * (n + 1));
	redisReply *volatile reply = NULL;
	volatile bool ok = true;

	for (int i = 0; i < n; i++)
		hit[i] = false;
	if (n == 0)
		return true;
	argv[0] = "MGET";
	argvlen[0] = 4;
	for (int i = 0; i < n; i++)
	{
		argv[i + 1] = keys[i];
		argvlen[i + 1] = strlen(keys[i]);
	}
	for (int attempt = 0; attempt < 2 && reply == NULL; attempt++)
	{
		if (!hc_redis_ready(false))
			return false;
		if (!hc_redis_drain())
			continue;
		reply = redisCommandArgv(hc_redis, n + 1, argv, argvlen);
		if (reply == NULL)
		{
			if (attempt == 0 && hc_redis_closed())
			{
				hc_redis_drop();
				continue;
			}
			hc_redis_failed("MGET");
			return false;
		}
	}
	if (reply == NULL)
		return false;

	PG_TRY();
	{
		if (reply->type == REDIS_REPLY_ARRAY && reply->elements == (size_t) n)
		{
			for (int i = 0; i < n; i++)
			{
				redisReply *r = reply->element[i];
				HcValue		v;

				if (r->type != REDIS_REPLY_STRING)
					continue;
				if (!HcValueDecode(digests[i], r->str, r->len, &v))
				{
					HcStatInc(HC_STAT_L2_REJECTS);
					continue;
				}
				values[i] = v;
				values[i].data = NULL;
				values[i].varlena = NULL;
				if (!v.isnull)
				{
					HcValueAllocate(&values[i], v.len);
					memcpy(values[i].data, v.data, v.len);
				}
				hit[i] = true;
			}
		}
		else
		{
			HcStatInc(HC_STAT_REDIS_ERRORS);
			if (reply->type == REDIS_REPLY_ERROR)
				hc_redis_error_reply(reply);
			ok = false;
		}
	}
	PG_FINALLY();
	{
		freeReplyObject(reply);
	}
	PG_END_TRY();
	if (ok)
		HcBreakerSuccess();
	return ok;
}

/*
 * Store n answers, pipelined: one round trip.  Returns how many Redis took.
 */
int
HcRedisSetMany(int n, const char *const *keys, const uint8 *const *digests,
			   const HcValue *values)
{
	int			sent = 0;
	int			stored = 0;

	if (n == 0 || !hc_redis_ready(false) || !hc_redis_drain())
		return 0;
	for (int i = 0; i < n; i++)
	{
		Size		len;
		char	   *buf = HcValueEncode(digests[i], &values[i], &len);
		char		ttltext[16];
		int			rc;

		snprintf(ttltext, sizeof(ttltext), "%u", Max(values[i].ttl_ms, 1));
		rc = redisAppendCommand(hc_redis, "SET %b %b PX %s",
								keys[i], strlen(keys[i]), buf, len, ttltext);
		pfree(buf);
		if (rc != REDIS_OK)
			break;
		sent++;
	}
	for (int i = 0; i < sent; i++)
	{
		void	   *reply = NULL;

		if (redisGetReply(hc_redis, &reply) != REDIS_OK || reply == NULL)
		{
			hc_redis_failed("SET");
			return stored;
		}
		if (((redisReply *) reply)->type == REDIS_REPLY_STATUS)
			stored++;
		else
		{
			HcStatInc(HC_STAT_REDIS_ERRORS);
			hc_redis_error_reply(reply);
		}
		freeReplyObject(reply);
	}
	if (sent < n)
		hc_redis_failed("SET");
	else
		HcBreakerSuccess();
	return stored;
}

/*
 * Publish n messages in one round trip and wait for the replies (the
 * publisher worker, publisher.c: nobody waits for it).  Returns how many
 * Redis took; the rest failed (the breaker says why, and decides when to
 * try again, as for any command).
 */
int
HcRedisPublishBatch(int n, const char *const *channels, const char *const *msgs,
					const size_t *lens)
{
	int			sent = 0;
	int			ok = 0;

	if (n == 0 || !hc_redis_ready(false) || !hc_redis_drain())
		return 0;
	for (int i = 0; i < n; i++)
	{
		if (redisAppendCommand(hc_redis, "PUBLISH %b %b", channels[i], strlen(channels[i]),
							   msgs[i], lens[i]) != REDIS_OK)
			break;
		sent++;
	}
	for (int i = 0; i < sent; i++)
	{
		void	   *reply = NULL;

		if (redisGetReply(hc_redis, &reply) != REDIS_OK || reply == NULL)
		{
			hc_redis_failed("PUBLISH");
			return ok;
		}
		if (((redisReply *) reply)->type == REDIS_REPLY_INTEGER)
			ok++;
		else
			hc_redis_error_reply(reply);
		freeReplyObject(reply);
	}
	if (sent < n)
		hc_redis_failed("PUBLISH");
	else
		HcBreakerSuccess();
	return ok;
}

/*
 * Publish a message, without waiting for Redis' reply: the writer's commit
 * does not pay a round trip for a notification.  The reply is read (and a
 * failure counted) before this backend's next Redis command.  Called once
 * the committed transaction released its locks: it must not raise an error
 * or allocate with palloc, and writing is bounded by the command timeout.
 */
bool
HcRedisPublish(const char *channel, const char *msg, size_t len)
{
	int			done = 0;

	/*
	 * Never the breaker's probe: a write the kernel accepted proves nothing
	 * about a Redis that hangs, so a publish must not close the breaker.
	 */
	if (!HcBreakerClosed())
		return false;
	if (!hc_redis_ready(true))
		return false;
	if (!hc_redis_drain() && (!hc_redis_ready(true) || !hc_redis_drain()))
		return false;
	if (redisAppendCommand(hc_redis, "PUBLISH %b %b",
						   channel, strlen(channel), msg, len) != REDIS_OK)
	{
		hc_redis_failed("PUBLISH");
		return false;
	}
	do
	{
		if (redisBufferWrite(hc_redis, &done) != REDIS_OK)
		{
			hc_redis_failed("PUBLISH");
			return false;
		}
	} while (!done);
	pending_replies++;
	return true;
}
