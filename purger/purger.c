/*-------------------------------------------------------------------------
 *
 * purger.c
 *	  The policy: from the channel's messages, Redis' state and the clock,
 *	  what to purge at the edges and when to vouch for them.
 *
 * The correctness argument (edge/README.md states the rule the VCL
 * applies):
 *
 * The edge stores an answer stamped E/s only if E is the epoch we
 * announced, s >= M (the greatest seq we announced as purged) and we vouch
 * for it.  An answer stamped E/s contains every commit numbered up to s.
 * So an answer that lacks commit n (s < n) is never stored after we
 * announced M >= n; if it was stored before, our purge of n's keys, sent
 * before that announcement, removed it, or removes it when sent a second
 * time repurge_delay_ms later (a purge can miss an answer being stored at
 * that instant).  Announcing a larger M is always safe: it only refuses
 * more.  What remains is a message we never see; for each way to miss one:
 *
 *  - before we subscribed (start, Redis reconnect): we purge everything
 *    once subscribed and vouch for nothing until a message or a heartbeat
 *    gives the epoch and a seq n, the base: every commit numbered up to n
 *    happened before our purge (then it is purged) or is in every answer
 *    stamped n or later (then M = n refuses the others);
 *  - lost on the way (a failed publish, a crash between commit and
 *    publish): a later seq, or a heartbeat's, reveals the hole; if it is
 *    not filled within the reorder window, we purge everything and M
 *    becomes the greatest seq known to be given, which the purge covers;
 *  - after the last heartbeat we saw (heartbeats stopped: the worker, the
 *    server or the channel is gone): after heartbeat_timeout_ms we purge
 *    everything and stop vouching until heartbeats resume;
 *  - of an epoch that is not ours (the server restarted): a new epoch is
 *    purged everything, and its stamps replace the old epoch's at the
 *    edge; late messages of an epoch we left are purged by key;
 *  - at an edge that did not get our purge (down, timed out, refused):
 *    fleet.c purges everything there once it answers again, and meanwhile
 *    it is vouched for by nobody once alive_for runs out.
 *
 * Whatever we cannot read (not JSON, an unknown version) is ignored: if it
 * was an invalidation, its seq is a hole.  An invalidation whose seq we
 * read but whose tags we cannot is purged as everything.
 *
 *-------------------------------------------------------------------------
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "purger.h"

#define LEFT_EPOCHS 4
#define MAX_OTHER_CLUSTERS 16
#define MALFORMED_REPORT_MS 60000

typedef struct Repurge
{
	hc_ms		due;
	char	   *keys;			/* NULL: everything */
} Repurge;

struct Purger
{
	const Options *opt;
	Fleet	   *fleet;
	Announce	ann;			/* read by the fleet when it sends */

	bool		redis_up;
	bool		need_base;		/* since (re)subscribing, until a seq is known */
	hc_ms		subscribed_at;
	hc_ms		last_heartbeat; /* -1: none since subscribing */
	bool		heartbeats_stopped;
	bool		no_heartbeat_logged;
	char	   *cluster;		/* the cluster whose seqs we follow */
	Sequence	seq;
	char		left[LEFT_EPOCHS][EPOCH_MAX_LEN + 1];
	int			nleft;
	char	   *other_clusters[MAX_OTHER_CLUSTERS];
	int			nother;

	Repurge    *rq;				/* ring, in order of due */
	size_t		rq_head;
	size_t		rq_count;
	size_t		rq_cap;

	uint64_t	messages;
	uint64_t	heartbeats;
	uint64_t	keys_purged;
	uint64_t	purges_all;
	uint64_t	malformed;
	uint64_t	malformed_unreported;
	hc_ms		malformed_report_at;
	uint64_t	filtered;
};

Purger *
purger_new(const Options *opt)
{
	Purger	   *p = xcalloc(1, sizeof(Purger));

	p->opt = opt;
	p->ann.alive_for_s = opt->alive_for_s;
	p->last_heartbeat = -1;
	p->need_base = true;
	if (opt->cluster)
		p->cluster = xstrdup(opt->cluster);
	seq_init(&p->seq);
	return p;
}

void
purger_free(Purger *p)
{
	if (p == NULL)
		return;
	while (p->rq_count > 0)
	{
		free(p->rq[p->rq_head].keys);
		p->rq_head = (p->rq_head + 1) % p->rq_cap;
		p->rq_count--;
	}
	free(p->rq);
	for (int i = 0; i < p->nother; i++)
		free(p->other_clusters[i]);
	free(p->cluster);
	seq_free(&p->seq);
	free(p);
}

const Announce *
purger_announce(const Purger *p)
{
	return &p->ann;
}

void
purger_attach(Purger *p, Fleet *fleet)
{
	p->fleet = fleet;
}

/* --- purges -------------------------------------------------------------- */

static void
schedule_repurge(Purger *p, const char *keys, hc_ms now)
{
	if (p->rq_count == p->rq_cap)
	{
		size_t		cap = p->rq_cap ? p->rq_cap * 2 : 64;
		Repurge    *rq = xcalloc(cap, sizeof(Repurge));

		for (size_t i = 0; i < p->rq_count; i++)
			rq[i] = p->rq[(p->rq_head + i) % p->rq_cap];
		free(p->rq);
		p->rq = rq;
		p->rq_cap = cap;
		p->rq_head = 0;
	}
	p->rq[(p->rq_head + p->rq_count) % p->rq_cap] =
		(Repurge) {now + p->opt->repurge_delay_ms, keys ? xstrdup(keys) : NULL};
	p->rq_count++;
}

static void
purge_everything(Purger *p, hc_ms now, const char *why)
{
	if (why)
		hc_log("purging everything: %s", why);
	p->purges_all++;
	fleet_purge_all(p->fleet);
	schedule_repurge(p, NULL, now);
}

static void
raise_m(Purger *p, uint64_t n)
{
	if (n > p->ann.m)
		p->ann.m = n;
}

/* After a purge of everything: every seq known to be given is covered. */
static void
rebase_after_purge_all(Purger *p)
{
	raise_m(p, p->seq.max_seen);
	seq_rebase(&p->seq, p->seq.max_seen);
}

static bool
database_wanted(const Purger *p, const char *database)
{
	if (p->opt->ndatabases == 0)
		return true;
	for (int i = 0; i < p->opt->ndatabases; i++)
	{
		if (strcmp(p->opt->databases[i], database) == 0)
			return true;
	}
	return false;
}

/*
 * The keys of a message's tags, one PURGE per max_keys_bytes of them, and
 * the same again repurge_delay_ms later.
 */
static void
purge_tags(Purger *p, const Message *msg, hc_ms now)
{
	size_t		cap = (size_t) p->opt->max_keys_bytes + EDGE_KEY_LEN + 2;
	char	   *buf;
	size_t		len = 0;

	if (msg->ntags == 0)
		return;
	if (!database_wanted(p, msg->database))
	{
		p->filtered++;
		return;
	}
	buf = xmalloc(cap);
	for (size_t i = 0; i < msg->ntags; i++)
	{
		char		key[EDGE_KEY_LEN + 1];

		edge_key(msg->database, msg->tags[i], strlen(msg->tags[i]), key);
		if (len > 0 && len + 1 + EDGE_KEY_LEN > (size_t) p->opt->max_keys_bytes)
		{
			fleet_purge_keys(p->fleet, buf);
			schedule_repurge(p, buf, now);
			len = 0;
		}
		if (len > 0)
			buf[len++] = ' ';
		memcpy(buf + len, key, EDGE_KEY_LEN);
		len += EDGE_KEY_LEN;
		buf[len] = '\0';
		p->keys_purged++;
	}
	fleet_purge_keys(p->fleet, buf);
	schedule_repurge(p, buf, now);
	free(buf);
}

/* --- vouching ------------------------------------------------------------ */

static bool
heartbeat_recent(const Purger *p, hc_ms now)
{
	return p->last_heartbeat >= 0 && now - p->last_heartbeat <= p->opt->heartbeat_timeout_ms;
}

/*
 * Vouch exactly while subscribed, with a known base, and hearing
 * heartbeats.  Either change purges everything: when vouching starts, for
 * whatever was stored while nobody vouched; when it stops, because we may
 * have missed something.
 */
static void
update_vouching(Purger *p, hc_ms now, const char *why_not)
{
	bool		want = p->redis_up && !p->need_base && p->ann.has_epoch &&
		heartbeat_recent(p, now);
	char		why[256];

	if (want == p->ann.vouching)
		return;
	p->ann.vouching = want;
	if (want)
	{
		hc_log("vouching for the edges for %gs at a time (epoch %s, M %" PRIu64 ")",
			   p->opt->alive_for_s, p->ann.epoch, p->ann.m);
		purge_everything(p, now, NULL);
	}
	else
	{
		snprintf(why, sizeof(why), "%s; not vouching for the edges", why_not ? why_not : "unknown");
		purge_everything(p, now, why);
	}
}

/* --- events -------------------------------------------------------------- */

void
purger_start(Purger *p, hc_ms now)
{
	char		where[MAX_SENTINELS * (ADDR_TEXT_LEN + 1) + 300];
	HostPort	redis;

	if (p->opt->nsentinels > 0)
	{
		size_t		len;

		snprintf(where, sizeof(where), "the master \"%s\" of sentinels ", p->opt->sentinel_master);
		for (int i = 0; i < p->opt->nsentinels; i++)
		{
			len = strlen(where);
			if (i > 0)
				where[len++] = ',';
			address_format(&p->opt->sentinels[i], where + len, sizeof(where) - len);
		}
	}
	else
	{
		snprintf(redis.host, sizeof(redis.host), "%s", p->opt->redis_host);
		redis.port = p->opt->redis_port;
		address_format(&redis, where, sizeof(where));
	}
	hc_log("started: %d edge(s), channel %s at %s", p->opt->nvarnish, p->opt->channel, where);
	purge_everything(p, now, "starting; not vouching until subscribed and a heartbeat arrives");
}

void
purger_subscribed(void *arg, const char *where, hc_ms now)
{
	Purger	   *p = arg;

	p->redis_up = true;
	p->need_base = true;
	p->subscribed_at = now;
	p->last_heartbeat = -1;
	p->heartbeats_stopped = false;
	p->no_heartbeat_logged = false;
	hc_log("subscribed to %s at %s", p->opt->channel, where);
	/* messages published while we were not subscribed are lost to us */
	purge_everything(p, now, "(re)subscribed: messages may have been missed");
}

void
purger_lost(void *arg, const char *reason, hc_ms now)
{
	Purger	   *p = arg;
	char		why[512];

	p->redis_up = false;
	p->need_base = true;
	snprintf(why, sizeof(why), "lost the subscription (%s)", reason);
	if (p->ann.vouching)
		update_vouching(p, now, why);
	else
		purge_everything(p, now, why);
}

static bool
epoch_left(const Purger *p, const char *epoch)
{
	for (int i = 0; i < p->nleft; i++)
	{
		if (strcmp(p->left[i], epoch) == 0)
			return true;
	}
	return false;
}

static void
leave_epoch(Purger *p)
{
	if (!p->ann.has_epoch)
		return;
	memmove(p->left[1], p->left[0], sizeof(p->left[0]) * (LEFT_EPOCHS - 1));
	strcpy(p->left[0], p->ann.epoch);
	if (p->nleft < LEFT_EPOCHS)
		p->nleft++;
}

/* Is this message of the cluster we follow?  Adopts the first one seen. */
static bool
our_cluster(Purger *p, const Message *msg)
{
	if (msg->cluster == NULL)
		return true;			/* engines that do not say */
	if (p->cluster == NULL)
	{
		p->cluster = xstrdup(msg->cluster);
		hc_log("following the seqs of cluster %s", p->cluster);
		return true;
	}
	if (strcmp(p->cluster, msg->cluster) == 0)
		return true;
	for (int i = 0; i < p->nother; i++)
	{
		if (strcmp(p->other_clusters[i], msg->cluster) == 0)
			return false;
	}
	if (p->nother < MAX_OTHER_CLUSTERS)
	{
		p->other_clusters[p->nother++] = xstrdup(msg->cluster);
		hc_log("messages of cluster %s on this channel are purged by key only "
			   "(following cluster %s)", msg->cluster, p->cluster);
	}
	return false;
}

/* The first seq after (re)subscribing: the base (see the top of the file). */
static void
take_base(Purger *p, const Message *msg, hc_ms now)
{
	if (!p->ann.has_epoch || strcmp(p->ann.epoch, msg->epoch) != 0)
	{
		if (p->ann.has_epoch)
			hc_log("epoch %s (was %s)", msg->epoch, p->ann.epoch);
		leave_epoch(p);
		snprintf(p->ann.epoch, sizeof(p->ann.epoch), "%s", msg->epoch);
		p->ann.has_epoch = true;
		p->ann.m = 0;
	}
	seq_rebase(&p->seq, msg->seq);
	raise_m(p, msg->seq);
	p->need_base = false;
	hc_log("base: epoch %s, seq %" PRIu64 " (from a%s)", p->ann.epoch, msg->seq,
		   msg->type == MSG_HEARTBEAT ? " heartbeat" : "n invalidation");
	(void) now;
}

/* A new epoch while subscribed: seqs start again at 1. */
static void
new_epoch(Purger *p, const Message *msg, hc_ms now)
{
	char		why[128];

	snprintf(why, sizeof(why), "epoch %s (was %s)", msg->epoch, p->ann.epoch);
	leave_epoch(p);
	snprintf(p->ann.epoch, sizeof(p->ann.epoch), "%s", msg->epoch);
	p->ann.m = 0;
	seq_rebase(&p->seq, 0);
	purge_everything(p, now, why);
}

static void
seq_too_far(Purger *p, uint64_t n, hc_ms now)
{
	char		why[128];

	snprintf(why, sizeof(why), "seq %" PRIu64 " is more than %d past %" PRIu64,
			 n, SEQ_WINDOW, p->seq.base);
	purge_everything(p, now, why);
	raise_m(p, n);
	seq_rebase(&p->seq, n);
}

static void
on_heartbeat(Purger *p, const Message *msg, hc_ms now)
{
	p->heartbeats++;
	p->last_heartbeat = now;
	if (p->heartbeats_stopped)
	{
		hc_log("heartbeats resumed");
		p->heartbeats_stopped = false;
	}
	if (seq_announce(&p->seq, msg->seq, now) == SEQ_FAR)
		seq_too_far(p, msg->seq, now);
	update_vouching(p, now, NULL);
}

/* An invalidation; sequenced: of our cluster and epoch, its seq counts. */
static void
on_invalidation(Purger *p, const Message *msg, bool sequenced, hc_ms now)
{
	char		why[160];

	if (sequenced && seq_add(&p->seq, msg->seq, now) == SEQ_FAR)
	{
		seq_too_far(p, msg->seq, now);
		return;
	}
	if (msg->tags_ok)
		purge_tags(p, msg, now);
	else
	{
		snprintf(why, sizeof(why), "the tags of a message (seq %" PRIu64 ") could not be read",
				 msg->seq);
		purge_everything(p, now, why);
	}
	if (sequenced)
		raise_m(p, msg->seq);
}

static void
malformed(Purger *p, const char *err, hc_ms now)
{
	p->malformed++;
	if (p->malformed == 1)
	{
		hc_log("ignoring a message that cannot be read (%s); later ones are counted "
			   "and reported once a minute", err);
		p->malformed_report_at = now + MALFORMED_REPORT_MS;
	}
	else
		p->malformed_unreported++;
}

static void purger_one_message(Purger *p, const JsonValue *doc, hc_ms now);

/*
 * A payload is one message, or a JSON array of messages (the engine's
 * publisher sends a burst of commits as one PUBLISH), taken in order.
 */
void
purger_message(void *arg, const char *payload, size_t len, hc_ms now)
{
	Purger	   *p = arg;
	char		jerr[128];
	char		err[160];
	JsonValue  *doc = json_parse(payload, len, jerr, sizeof(jerr));

	if (doc == NULL)
	{
		snprintf(err, sizeof(err), "not JSON: %s", jerr);
		malformed(p, err, now);
		return;
	}
	if (doc->type == JSON_ARRAY)
	{
		for (size_t i = 0; i < doc->count; i++)
			purger_one_message(p, doc->items[i], now);
	}
	else
		purger_one_message(p, doc, now);
	json_free(doc);
}

static void
purger_one_message(Purger *p, const JsonValue *doc, hc_ms now)
{
	Message		msg;
	char		err[160];

	if (!message_from_json(doc, &msg, err, sizeof(err)))
	{
		malformed(p, err, now);
		return;
	}
	p->messages++;
	if (p->opt->verbose)
		hc_log("message: %s seq %s%" PRIu64 " epoch %s database %s, %zu tag(s)",
			   msg.type == MSG_HEARTBEAT ? "heartbeat" : msg.type == MSG_INVALIDATION ? "invalidation" : "other",
			   msg.has_seq ? "" : "(none) ", msg.seq, msg.epoch ? msg.epoch : "-",
			   msg.database ? msg.database : "-", msg.ntags);
	if (msg.type == MSG_OTHER)
		goto done;

	/*
	 * Keys only: without a seq (an older engine), of another cluster, or a
	 * late message of an epoch we left.
	 */
	if (!msg.has_seq || !our_cluster(p, &msg) ||
		(p->ann.has_epoch && strcmp(msg.epoch, p->ann.epoch) != 0 && epoch_left(p, msg.epoch)))
	{
		if (msg.type == MSG_INVALIDATION)
			on_invalidation(p, &msg, false, now);
		goto done;
	}
	if (p->need_base)
		take_base(p, &msg, now);
	else if (strcmp(msg.epoch, p->ann.epoch) != 0)
		new_epoch(p, &msg, now);

	if (msg.type == MSG_HEARTBEAT)
		on_heartbeat(p, &msg, now);
	else
		on_invalidation(p, &msg, true, now);
done:
	message_free(&msg);
}

/* --- the clock ------------------------------------------------------------ */

void
purger_tick(Purger *p, hc_ms now)
{
	uint64_t	first;
	hc_ms		since;
	bool		from_heartbeat;
	char		why[256];

	/* a hole that the reorder window did not fill */
	if (!p->need_base && seq_gap(&p->seq, &first, &since, &from_heartbeat) &&
		now - since >= p->opt->reorder_window_ms)
	{
		if (from_heartbeat)
			snprintf(why, sizeof(why), "a heartbeat said seq %" PRIu64 " was given; "
					 "seq %" PRIu64 " has not arrived within %d ms",
					 p->seq.max_seen, first, p->opt->reorder_window_ms);
		else
			snprintf(why, sizeof(why), "seq %" PRIu64 " has not arrived within %d ms "
					 "(seq %" PRIu64 " has)", first, p->opt->reorder_window_ms, p->seq.max_seen);
		purge_everything(p, now, why);
		rebase_after_purge_all(p);
	}

	/* heartbeats */
	if (p->redis_up && p->last_heartbeat >= 0 && !p->heartbeats_stopped &&
		now - p->last_heartbeat > p->opt->heartbeat_timeout_ms)
	{
		p->heartbeats_stopped = true;
		snprintf(why, sizeof(why), "no heartbeat for %d ms", p->opt->heartbeat_timeout_ms);
		update_vouching(p, now, why);
	}
	if (p->redis_up && p->last_heartbeat < 0 && !p->no_heartbeat_logged &&
		now - p->subscribed_at > p->opt->heartbeat_timeout_ms)
	{
		p->no_heartbeat_logged = true;
		hc_log("no heartbeat within %d ms of subscribing: not vouching for the edges "
			   "(is housing_cache in shared_preload_libraries, with heartbeats?)",
			   p->opt->heartbeat_timeout_ms);
	}

	/* second purges */
	while (p->rq_count > 0 && p->rq[p->rq_head].due <= now)
	{
		Repurge    *r = &p->rq[p->rq_head];

		if (r->keys)
			fleet_purge_keys(p->fleet, r->keys);
		else
			fleet_purge_all(p->fleet);
		free(r->keys);
		r->keys = NULL;
		p->rq_head = (p->rq_head + 1) % p->rq_cap;
		p->rq_count--;
	}

	if (p->malformed_unreported > 0 && now >= p->malformed_report_at)
	{
		hc_log("ignored %" PRIu64 " more message(s) that could not be read", p->malformed_unreported);
		p->malformed_unreported = 0;
		p->malformed_report_at = now + MALFORMED_REPORT_MS;
	}
}

/* When purger_tick next has something to do (or -1). */
hc_ms
purger_next_timer(const Purger *p)
{
	hc_ms		t = -1;
	uint64_t	first;
	hc_ms		since;
	bool		hb;

#define EARLIER(x) do { hc_ms x_ = (x); if (t < 0 || x_ < t) t = x_; } while (0)
	if (p->rq_count > 0)
		EARLIER(p->rq[p->rq_head].due);
	if (!p->need_base && seq_gap(&p->seq, &first, &since, &hb))
		EARLIER(since + p->opt->reorder_window_ms);
	if (p->redis_up && p->last_heartbeat >= 0 && !p->heartbeats_stopped)
		EARLIER(p->last_heartbeat + p->opt->heartbeat_timeout_ms + 1);
	if (p->redis_up && p->last_heartbeat < 0 && !p->no_heartbeat_logged)
		EARLIER(p->subscribed_at + p->opt->heartbeat_timeout_ms + 1);
	if (p->malformed_unreported > 0)
		EARLIER(p->malformed_report_at);
#undef EARLIER
	return t;
}

/*
 * Subscribed, but hearing no heartbeat (they stopped, or none came since
 * subscribing): perhaps the master moved while we stayed where we are, as
 * subscriber.c's top explains.
 */
bool
purger_hears_nothing(const Purger *p, hc_ms now)
{
	return p->redis_up &&
		(p->heartbeats_stopped ||
		 (p->last_heartbeat < 0 && now - p->subscribed_at > p->opt->heartbeat_timeout_ms));
}

/* Shutting down: withdraw the vouching at once rather than let it run out. */
void
purger_stop(Purger *p)
{
	hc_log("stopping: no longer vouching for the edges");
	p->ann.vouching = false;
	fleet_sync(p->fleet);
}

/* Purges of everything decided (second purges not counted). */
uint64_t
purger_purges_all(const Purger *p)
{
	return p->purges_all;
}

void
purger_log_stats(const Purger *p)
{
	uint64_t	sent = 0,
				failed = 0,
				all = 0;

	if (p->fleet)
		fleet_stats(p->fleet, &sent, &failed, &all);
	hc_log("stats: %" PRIu64 " messages (%" PRIu64 " heartbeats, %" PRIu64 " unreadable, "
		   "%" PRIu64 " of other databases), %" PRIu64 " keys purged, %" PRIu64
		   " purges of everything; %" PRIu64 " PURGE requests, %" PRIu64 " failed; "
		   "epoch %s, M %" PRIu64 ", %svouching",
		   p->messages + p->malformed, p->heartbeats, p->malformed, p->filtered,
		   p->keys_purged, p->purges_all, sent, failed,
		   p->ann.has_epoch ? p->ann.epoch : "(none)", p->ann.m,
		   p->ann.vouching ? "" : "not ");
}
