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
	pending_replies = 0;
}

/*
 * The address of the Redis this server uses (host:port).
 */
const char *
HcRedisMasterAddress(void)
{
	return psprintf("%s:%d", hc_redis_host ? hc_redis_host : "", hc_redis_port);
}

/*
 * Called by the GUC assign hooks: the next call reconnects with the new
 * settings.
 */
void
HcRedisConfigChanged(void)
{
	hc_redis_drop();
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
 * Make sure this backend has a usable connection, if the breaker allows.
 */
static bool
hc_redis_ready(void)
{
	redisContext *c;
	const char *err = NULL;
	char		dbtext[16];
	const char *password;
	char		filepw[1024];

	if (!HcBreakerAllows())
		return false;
	if (hc_redis != NULL)
		return true;

	c = redisConnectWithTimeout(hc_redis_host, hc_redis_port,
								ms_to_timeval(hc_redis_connect_timeout_ms));
	if (c == NULL || c->err)
	{
		HcBreakerFailure("connect", c ? c->errstr : "out of memory");
		if (c)
			redisFree(c);
		return false;
	}
	if (redisSetTimeout(c, ms_to_timeval(hc_redis_command_timeout_ms)) != REDIS_OK)
	{
		HcBreakerFailure("connect", "could not set the command timeout");
		redisFree(c);
		return false;
	}
	/* the password never appears in a message */
	password = hc_redis_password;
	if (hc_redis_password_file && hc_redis_password_file[0] != '\0')
	{
		if (!HcReadSecretFile(hc_redis_password_file, filepw, sizeof(filepw), &err))
		{
			HcBreakerFailure("housing_cache.redis_password_file", err);
			redisFree(c);
			return false;
		}
		password = filepw;
	}
	if (password && password[0] != '\0' &&
		!hc_redis_setup_command(c, &err, "AUTH %s", password))
	{
		explicit_bzero(filepw, sizeof(filepw));
		HcBreakerFailure("AUTH", err);
		redisFree(c);
		return false;
	}
	explicit_bzero(filepw, sizeof(filepw));
	if (hc_redis_db != 0)
	{
		snprintf(dbtext, sizeof(dbtext), "%d", hc_redis_db);
		if (!hc_redis_setup_command(c, &err, "SELECT %s", dbtext))
		{
			HcBreakerFailure("SELECT", err);
			redisFree(c);
			return false;
		}
	}
	hc_redis = c;
	return true;
}

/*
 * The command got no reply: the connection is unusable (timeout, reset).
 */
static void
hc_redis_failed(const char *what)
{
	HcBreakerFailure(what, hc_redis && hc_redis->errstr[0] ? hc_redis->errstr : "no reply");
	hc_redis_drop();
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
			HcStatInc(HC_STAT_PUBLISH_FAILURES);
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

		if (!hc_redis_ready())
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
	 * up but refuses writes: count it, keep reading from it.
	 */
	ok = (reply->type == REDIS_REPLY_STATUS);
	freeReplyObject(reply);
	if (!ok)
		HcStatInc(HC_STAT_REDIS_ERRORS);
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
	if (!hc_redis_ready())
		return false;
	if (!hc_redis_drain() && (!hc_redis_ready() || !hc_redis_drain()))
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
