/*-------------------------------------------------------------------------
 *
 * publisher.c
 *	  The way out of invalidation messages: a queue in shared memory, and
 *	  the background worker that publishes it, with a heartbeat.
 *
 * A committing writer does not talk to Redis.  At COMMIT, after its
 * generations are bumped, it numbers its message and copies it into the
 * queue, under the queue's lock, so that the queue holds messages in number
 * order; then it wakes the worker.  That is a copy and a latch: no system
 * call to Redis, no wait, nothing that can raise.  A full queue (Redis slow
 * or down for long, the worker not running) drops the message and counts it
 * in publish_failures; its number is gone, which consumers notice.
 *
 * The worker ("housing_cache publisher", with the library preloaded)
 * publishes what the queue holds, in order, in one round trip per batch
 * (gathered for housing_cache.publish_batch_ms after a commit wakes it;
 * messages of one channel in one PUBLISH, a JSON array of them),
 * through the Redis of the server's configuration, each message on the
 * channel its writer had (housing_cache.channel).  Every
 * housing_cache.heartbeat_ms it publishes a heartbeat with the last number
 * given, read when the queue was last emptied: every message up to it has
 * been published, or dropped.  On a standby it publishes nothing.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xlog.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "housing_cache.h"

/*
 * The queue: a ring of bytes, head and tail counting bytes ever written and
 * read.  An entry is a header and the channel and message, padded to 8
 * bytes; one that does not fit before the end of the ring starts at its
 * beginning, after a wrap mark (or, when fewer than 8 bytes are left, none:
 * the reader skips them too).
 */
typedef struct HcQueueEntry
{
	uint32		total;			/* header and payload, padded; WRAP_MARK */
	uint32		channel_len;
	uint32		msg_len;
	uint32		unused;
} HcQueueEntry;

#define WRAP_MARK	PG_UINT32_MAX

/* the largest message queued (a message lists at most publish_max_tags finer tags) */
#define MAX_ENTRY	(192 * 1024)

typedef struct HcPublishQueue
{
	LWLock	   *lock;
	pg_atomic_uint32 worker_procno;	/* whose latch to set; INVALID_PGPROCNO */
	uint64		head;
	uint64		tail;
	uint64		drained_seq;	/* message_seq when the queue was last emptied */
	uint32		size;
	char		data[FLEXIBLE_ARRAY_MEMBER];
} HcPublishQueue;

static HcPublishQueue *queue = NULL;

Size
HcPublishShmemSize(void)
{
	return MAXALIGN(offsetof(HcPublishQueue, data) + (Size) hc_publish_queue_kb * 1024);
}

void
HcPublishShmemInit(char *base, bool found, LWLock *lock)
{
	queue = (HcPublishQueue *) base;
	if (found)
		return;
	memset(queue, 0, offsetof(HcPublishQueue, data));
	queue->lock = lock;
	pg_atomic_init_u32(&queue->worker_procno, INVALID_PGPROCNO);
	queue->size = (uint32) hc_publish_queue_kb * 1024;
}

/*
 * The longest message the queue takes on this channel (message.c shortens
 * a longer one to its table-wide tags).
 */
int
HcPublishMaxMessage(int channel_len)
{
	if (queue == NULL)
		return MAX_ENTRY;
	return (int) Min(queue->size / 2, MAX_ENTRY) - (int) sizeof(HcQueueEntry) - channel_len - 8;
}

/* padded size of an entry */
static uint32
entry_size(uint32 channel_len, uint32 msg_len)
{
	return (uint32) TYPEALIGN(8, sizeof(HcQueueEntry) + channel_len + msg_len);
}

/*
 * Number a finished message and queue it (message.c calls this at COMMIT).
 * finish() writes the number (and anything else known only now) into the
 * message and returns its length; it must not raise.  Returns false when
 * the queue had no room: the message is dropped, its number consumed.
 * Never raises, never allocates.
 */
bool
HcPublishCommit(char *msg, int (*finish) (char *msg, uint64 seq), const char *channel)
{
	uint32		channel_len = strlen(channel);
	uint32		msg_len;
	uint32		need;
	uint64		seq;
	uint32		at;
	uint32		left;
	bool		queued = false;
	uint32		procno;

	if (queue == NULL)
		return false;
	LWLockAcquire(queue->lock, LW_EXCLUSIVE);
	seq = pg_atomic_add_fetch_u64(&hc_shared->message_seq, 1);
	msg_len = (uint32) finish(msg, seq);
	need = entry_size(channel_len, msg_len);
	at = (uint32) (queue->head % queue->size);
	left = queue->size - at;
	if (need <= Min(queue->size / 2, MAX_ENTRY))
	{
		uint32		skip = (left < need) ? left : 0;

		if (queue->head + skip + need - queue->tail <= queue->size)
		{
			HcQueueEntry *e;

			if (skip > 0)
			{
				if (left >= sizeof(uint32))
					*(uint32 *) (queue->data + at) = WRAP_MARK;
				queue->head += skip;
				at = 0;
			}
			e = (HcQueueEntry *) (queue->data + at);
			e->total = need;
			e->channel_len = channel_len;
			e->msg_len = msg_len;
			e->unused = 0;
			memcpy(queue->data + at + sizeof(HcQueueEntry), channel, channel_len);
			memcpy(queue->data + at + sizeof(HcQueueEntry) + channel_len, msg, msg_len);
			queue->head += need;
			queued = true;
		}
	}
	LWLockRelease(queue->lock);

	procno = pg_atomic_read_u32(&queue->worker_procno);
	if (queued && procno != INVALID_PGPROCNO)
		SetLatch(&ProcGlobal->allProcs[procno].procLatch);
	return queued;
}

/* ---- the worker ---------------------------------------------------------- */

void
HcPublisherRegister(void)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	/* a connection to no database: it shows in pg_stat_activity */
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_ConsistentState;
	worker.bgw_restart_time = 1;
	strlcpy(worker.bgw_library_name, "housing_cache", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, "housing_cache_publisher_main", BGW_MAXLEN);
	strlcpy(worker.bgw_name, "housing_cache publisher", BGW_MAXLEN);
	strlcpy(worker.bgw_type, "housing_cache publisher", BGW_MAXLEN);
	RegisterBackgroundWorker(&worker);
}

#define BATCH_BYTES	(256 * 1024)
#define BATCH_MAX	256

/*
 * Take queued messages, up to a batch, into buf; returns how many.  When
 * the queue is left empty, *emptied is set with message_seq as of then.
 */
static int
take_batch(char *buf, const char **channels, const char **msgs, size_t *lens,
		   bool *emptied, uint64 *seq)
{
	int			n = 0;
	uint32		used = 0;

	*emptied = false;
	LWLockAcquire(queue->lock, LW_EXCLUSIVE);
	while (queue->tail < queue->head && n < BATCH_MAX)
	{
		uint32		at = (uint32) (queue->tail % queue->size);
		uint32		left = queue->size - at;
		HcQueueEntry *e;
		char	   *dst;

		if (left < sizeof(HcQueueEntry) || *(uint32 *) (queue->data + at) == WRAP_MARK)
		{
			queue->tail += left;
			continue;
		}
		e = (HcQueueEntry *) (queue->data + at);
		if (used + e->channel_len + 1 + e->msg_len > BATCH_BYTES && n > 0)
			break;
		dst = buf + used;
		memcpy(dst, queue->data + at + sizeof(HcQueueEntry), e->channel_len);
		dst[e->channel_len] = '\0';
		channels[n] = dst;
		memcpy(dst + e->channel_len + 1,
			   queue->data + at + sizeof(HcQueueEntry) + e->channel_len, e->msg_len);
		msgs[n] = dst + e->channel_len + 1;
		lens[n] = e->msg_len;
		used += e->channel_len + 1 + e->msg_len;
		queue->tail += e->total;
		n++;
	}
	if (queue->tail == queue->head)
	{
		queue->drained_seq = pg_atomic_read_u64(&hc_shared->message_seq);
		*emptied = true;
		*seq = queue->drained_seq;
	}
	LWLockRelease(queue->lock);
	return n;
}

/*
 * Publish a batch: consecutive messages of one channel go out as one
 * PUBLISH whose payload is a JSON array of them (a single message as
 * itself), so that a burst of commits costs Redis and its subscribers one
 * message, not one each.  Counts the messages published and lost.
 */
static void
publish_batch(int n, const char **channels, const char **msgs, size_t *lens, StringInfo joined)
{
	const char *out_channels[BATCH_MAX];
	const char *out_msgs[BATCH_MAX];
	size_t		out_lens[BATCH_MAX];
	int			first[BATCH_MAX];	/* each payload's first message */
	int			count[BATCH_MAX];	/* ... and how many it holds */
	int			offset[BATCH_MAX];	/* where a joined one starts in joined */
	int			nout = 0;
	int			ok;
	int			published = 0;

	resetStringInfo(joined);
	for (int i = 0; i < n;)
	{
		int			j = i + 1;

		while (j < n && strcmp(channels[j], channels[i]) == 0)
			j++;
		first[nout] = i;
		count[nout] = j - i;
		offset[nout] = joined->len;
		if (j - i > 1)
		{
			appendStringInfoChar(joined, '[');
			for (int k = i; k < j; k++)
			{
				if (k > i)
					appendStringInfoChar(joined, ',');
				appendBinaryStringInfo(joined, msgs[k], lens[k]);
			}
			appendStringInfoChar(joined, ']');
		}
		nout++;
		i = j;
	}
	/* joined is complete: it no longer moves */
	for (int k = 0; k < nout; k++)
	{
		out_channels[k] = channels[first[k]];
		if (count[k] == 1)
		{
			out_msgs[k] = msgs[first[k]];
			out_lens[k] = lens[first[k]];
		}
		else
		{
			out_msgs[k] = joined->data + offset[k];
			out_lens[k] = (k + 1 < nout ? offset[k + 1] : joined->len) - offset[k];
		}
	}
	ok = HcRedisPublishBatch(nout, out_channels, out_msgs, out_lens);
	for (int k = 0; k < ok; k++)
		published += count[k];
	HcStatAdd(HC_STAT_PUBLISHES, published);
	HcStatAdd(HC_STAT_PUBLISH_FAILURES, n - published);
}

static void
publish_heartbeat(uint64 seq)
{
	char		msg[256];
	int			n;
	const char *channel = hc_channel;
	const char *m = msg;
	size_t		len;

	n = snprintf(msg, sizeof(msg),
				 "{\"v\":1,\"type\":\"heartbeat\",\"cluster\":\"" UINT64_FORMAT
				 "\",\"epoch\":\"" UINT64_FORMAT "\",\"seq\":" UINT64_FORMAT "}",
				 GetSystemIdentifier(), hc_shared->epoch, seq);
	if (n <= 0 || n >= (int) sizeof(msg))
		return;
	len = n;
	/* a heartbeat that does not go out is missed by consumers, who count it */
	if (HcRedisPublishBatch(1, &channel, &m, &len) == 1)
		HcStatInc(HC_STAT_HEARTBEATS);
}

/*
 * The worker: publish the queue as it fills, and a heartbeat every
 * housing_cache.heartbeat_ms (0: none).  SIGHUP rereads the configuration.
 */
void
housing_cache_publisher_main(Datum arg)
{
	char	   *buf;
	const char *channels[BATCH_MAX];
	const char *msgs[BATCH_MAX];
	size_t		lens[BATCH_MAX];
	TimestampTz last_heartbeat = 0;
	uint64		seq = 0;
	StringInfo	joined;
	int			rc = 0;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	if (queue == NULL)
		proc_exit(0);
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	buf = MemoryContextAlloc(TopMemoryContext, BATCH_BYTES + MAX_ENTRY + 2 * BATCH_MAX);
	joined = makeStringInfo();
	pg_atomic_write_u32(&queue->worker_procno, MyProc->pgprocno);

	for (;;)
	{
		bool		emptied = false;
		long		timeout = 1000;
		TimestampTz now;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		/* the queue, in order, a batch per round trip */
		for (;;)
		{
			int			n = take_batch(buf, channels, msgs, lens, &emptied, &seq);

			if (n == 0)
				break;
			publish_batch(n, channels, msgs, lens, joined);
			if (emptied)
				break;
		}

		now = GetCurrentTimestamp();
		if (hc_heartbeat_ms > 0)
		{
			if (emptied && hc_publish && hc_enabled && !RecoveryInProgress() &&
				TimestampDifferenceExceeds(last_heartbeat, now, hc_heartbeat_ms))
			{
				publish_heartbeat(seq);
				last_heartbeat = now;
			}
			timeout = Max(1, Min(hc_heartbeat_ms,
								 hc_heartbeat_ms - (long) ((now - last_heartbeat) / 1000)));
		}
		rc = WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
					   timeout, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);

		/*
		 * Woken by a commit: let the next ones join it for a moment, so that
		 * they go out in one PUBLISH (publish_batch_ms: what a consumer
		 * waits at most, for what a busy writer saves).
		 */
		if ((rc & WL_LATCH_SET) && hc_publish_batch_ms > 0)
			(void) WaitLatch(NULL, WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 hc_publish_batch_ms, PG_WAIT_EXTENSION);
	}
}
