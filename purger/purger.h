/*-------------------------------------------------------------------------
 *
 * purger.h
 *	  hc_purger: consumes housing_cache's invalidation channel and purges
 *	  the HTTP edge (Varnish) by key.  The contract is edge/README.md.
 *
 * Module map (one-way dependencies, top to bottom):
 *
 *	 main.c		   options, the event loop, signals
 *	 purger.c	   the policy: what to purge and when to vouch, from the
 *				   messages, Redis' state and the clock (the correctness
 *				   argument is at its top)
 *	 subscriber.c  the Redis subscription (non-blocking hiredis): connect,
 *				   AUTH, SELECT, (ROLE,) SUBSCRIBE, PING, reconnect with
 *				   backoff; under Sentinel, at the master sentinel.c finds
 *	 sentinel.c	   Redis Sentinel (non-blocking hiredis): ask each sentinel
 *				   in turn where the master is
 *	 fleet.c	   the edges (libcurl multi): one PURGE at a time per edge,
 *				   in order; an edge that fails is retried with a purge of
 *				   everything
 *	 sequence.c	   the seqs of one epoch: which arrived, which are missing
 *				   and since when
 *	 message.c	   a channel message as a struct (invalidation, heartbeat)
 *	 json.c		   a small, strict JSON parser
 *	 ../common/edgekey.c, ../common/address.c (shared with hc_http): edge
 *				   keys, "k" + hex(SHA-256(database NUL tag)[0:16]); host:port
 *				   lists (the sentinels), addresses as text
 *	 util.c		   time, logging, allocation
 *
 * Wording: a "purge" is one PURGE request; "purge everything" is one with
 * X-HC-Purge-All; the purger "vouches" for an edge while it sends it
 * X-HC-Alive-For > 0; "M" is the greatest seq purged so far; the "base" of
 * an epoch is the seq up to which every message is accounted for (purged,
 * or covered by a purge of everything).  Under Sentinel, the "master" is
 * the Redis the sentinels name for --redis-sentinel-master, and a
 * "discovery" asks them for it (a "round": each sentinel at most once).
 *
 * Single-threaded: every module is driven from main.c's loop, nothing
 * blocks but a host name lookup.
 *
 *-------------------------------------------------------------------------
 */
#ifndef HC_PURGER_H
#define HC_PURGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "address.h"			/* common/ */
#include "edgekey.h"			/* common/ */

#define HC_PURGER_VERSION "0.2.0"

/* --- util.c ------------------------------------------------------------- */

typedef int64_t hc_ms;			/* CLOCK_MONOTONIC, milliseconds */

extern bool hc_log_enabled;
extern hc_ms now_ms(void);
extern void hc_log(const char *fmt,...) __attribute__((format(printf, 1, 2)));
extern void *xmalloc(size_t n);
extern void *xcalloc(size_t n, size_t size);
extern void *xrealloc(void *p, size_t n);
extern char *xstrdup(const char *s);
extern char *xstrndup(const char *s, size_t n);
extern bool read_secret(const char *value, const char *file, char *out, size_t outlen,
						char *err, size_t errlen);

/* --- json.c --------------------------------------------------------------- */

typedef enum JsonType
{
	JSON_NULL,
	JSON_BOOL,
	JSON_NUMBER,
	JSON_STRING,
	JSON_ARRAY,
	JSON_OBJECT
} JsonType;

typedef struct JsonValue JsonValue;
struct JsonValue
{
	JsonType	type;
	bool		boolean;
	char	   *text;			/* string (UTF-8, NUL-terminated), or a
								 * number as written */
	size_t		len;			/* of text */
	size_t		count;			/* array items, object members */
	JsonValue **items;			/* array items, object values */
	char	  **keys;			/* object keys */
};

#define JSON_MAX_DEPTH 32

extern JsonValue *json_parse(const char *text, size_t len, char *err, size_t errlen);
extern void json_free(JsonValue *v);
extern const JsonValue *json_member(const JsonValue *obj, const char *key);
extern bool json_uint64(const JsonValue *v, uint64_t *out);

/* --- message.c -------------------------------------------------------------- */

typedef enum MessageType
{
	MSG_INVALIDATION,
	MSG_HEARTBEAT,
	MSG_OTHER					/* an unknown type or version: ignored */
} MessageType;

typedef struct Message
{
	MessageType type;
	char	   *cluster;		/* NULL when absent */
	char	   *database;		/* NULL when absent */
	char	   *epoch;			/* decimal digits; NULL when absent */
	bool		has_seq;
	uint64_t	seq;
	bool		tags_ok;		/* tags present, each a string, database known */
	size_t		ntags;
	char	  **tags;
	bool		truncated;
} Message;

#define EPOCH_MAX_LEN 20		/* a uint64 in decimal */

extern bool message_parse(const char *text, size_t len, Message *msg, char *err, size_t errlen);
extern bool message_from_json(const JsonValue *doc, Message *msg, char *err, size_t errlen);
extern void message_free(Message *msg);

/* --- edge keys (common/edgekey.c) ---------------------------------------------- */

/* A purge by a key that matches nothing would leave entries behind: stop. */
#define edge_key(database, tag, tag_len, out) \
	do { \
		if (!edge_key_compute((database), (tag), (tag_len), (out))) \
		{ \
			hc_log("OpenSSL's SHA-256 failed"); \
			abort(); \
		} \
	} while (0)

/* --- sequence.c ----------------------------------------------------------------- */

typedef enum SeqResult
{
	SEQ_NEW,					/* first time seen */
	SEQ_OLD,					/* at or below the base, or seen before */
	SEQ_FAR						/* beyond what can be tracked: treat as lost */
} SeqResult;

typedef struct SeqNotice
{
	uint64_t	hi;				/* every missing seq up to hi ... */
	hc_ms		since;			/* ... is missing since then */
	bool		heartbeat;		/* noticed from a heartbeat */
} SeqNotice;

typedef struct Sequence
{
	uint64_t	base;			/* every seq <= base is accounted for */
	uint64_t	max_seen;		/* greatest seq seen, or given by a heartbeat */
	uint8_t    *bits;			/* seen seqs in (base, base + SEQ_WINDOW] */
	SeqNotice  *notices;		/* ring, in order of hi (and since) */
	size_t		nhead;
	size_t		ncount;
} Sequence;

#define SEQ_WINDOW 65536

extern void seq_init(Sequence *s);
extern void seq_free(Sequence *s);
extern void seq_rebase(Sequence *s, uint64_t base);
extern SeqResult seq_add(Sequence *s, uint64_t n, hc_ms now);
extern SeqResult seq_announce(Sequence *s, uint64_t n, hc_ms now);
extern bool seq_gap(const Sequence *s, uint64_t *first_missing, hc_ms *since, bool *from_heartbeat);

/* --- options (main.c) ------------------------------------------------------------- */

typedef struct Options
{
	char	   *redis_host;
	int			redis_port;
	char	   *redis_password;	/* from the environment or the file */
	char	   *redis_password_file;
	int			redis_db;
	HostPort	sentinels[MAX_SENTINELS];	/* none: redis_host and redis_port */
	int			nsentinels;
	char	   *sentinel_master;	/* the name they monitor the master by */
	char	   *sentinel_password;	/* from the environment or the file */
	char	   *sentinel_password_file;
	char	   *channel;
	char	  **varnish;		/* PURGE URLs */
	int			nvarnish;
	char	  **databases;		/* NULL: every database */
	int			ndatabases;
	char	   *cluster;		/* NULL: the first seen */
	int			reorder_window_ms;
	int			heartbeat_ms;
	int			heartbeat_timeout_ms;
	int			repurge_delay_ms;
	double		alive_for_s;
	int			vouch_interval_ms;
	int			request_timeout_ms;
	int			max_keys_bytes;
	char	   *pid_file;
	bool		verbose;
} Options;

/* --- fleet.c ------------------------------------------------------------------------ */

/* What every PURGE says after its purge, as of when it is sent. */
typedef struct Announce
{
	bool		has_epoch;
	char		epoch[EPOCH_MAX_LEN + 1];
	uint64_t	m;
	bool		vouching;
	double		alive_for_s;
} Announce;

typedef struct Fleet Fleet;

extern Fleet *fleet_new(const Options *opt, const Announce *announce);
extern void fleet_free(Fleet *f);
extern void fleet_purge_keys(Fleet *f, const char *keys);
extern void fleet_purge_all(Fleet *f);
extern void fleet_sync(Fleet *f);
extern void fleet_run(Fleet *f, hc_ms now);
extern hc_ms fleet_next_timer(const Fleet *f);
extern void *fleet_multi(Fleet *f);
extern bool fleet_idle(const Fleet *f);
extern void fleet_stats(const Fleet *f, uint64_t *sent, uint64_t *failed, uint64_t *purged_all);

/* --- sentinel.c ------------------------------------------------------------------------- */

typedef enum AskResult
{
	ASK_PENDING,				/* nothing to report yet */
	ASK_FOUND,					/* a sentinel named an address: asker_found() */
	ASK_EXHAUSTED				/* every sentinel of the round was asked:
								 * asker_detail() says what went wrong last */
} AskResult;

typedef struct Asker Asker;

extern Asker *asker_new(const Options *opt);
extern void asker_free(Asker *a);
extern void asker_begin(Asker *a, hc_ms now);
extern void asker_continue(Asker *a, hc_ms now);
extern bool asker_has_more(const Asker *a);
extern void asker_cancel(Asker *a);
extern bool asker_active(const Asker *a);
extern AskResult asker_run(Asker *a, hc_ms now);
extern int	asker_fd(const Asker *a, short *events);
extern AskResult asker_io(Asker *a, short revents, hc_ms now);
extern hc_ms asker_next_timer(const Asker *a);
extern const HostPort *asker_found(const Asker *a);
extern const char *asker_sentinel(const Asker *a);
extern const char *asker_detail(const Asker *a);
extern void asker_good(Asker *a);

/* --- subscriber.c --------------------------------------------------------------------- */

typedef struct Subscriber Subscriber;

typedef struct SubscriberCallbacks
{
	void		(*subscribed) (void *arg, const char *where, hc_ms now);
	void		(*lost) (void *arg, const char *reason, hc_ms now);
	void		(*message) (void *arg, const char *payload, size_t len, hc_ms now);
	void	   *arg;
} SubscriberCallbacks;

#define SUBSCRIBER_MAX_FDS 2

extern Subscriber *subscriber_new(const Options *opt, SubscriberCallbacks cb);
extern void subscriber_free(Subscriber *s);
extern void subscriber_run(Subscriber *s, hc_ms now);
extern int	subscriber_fds(const Subscriber *s, int *fds, short *events);
extern void subscriber_io(Subscriber *s, const short *revents, hc_ms now);
extern hc_ms subscriber_next_timer(const Subscriber *s);
extern void subscriber_check_master(Subscriber *s, hc_ms now);

/* --- purger.c -------------------------------------------------------------------------- */

typedef struct Purger Purger;

extern Purger *purger_new(const Options *opt);
extern void purger_free(Purger *p);
extern const Announce *purger_announce(const Purger *p);
extern void purger_attach(Purger *p, Fleet *fleet);
extern void purger_start(Purger *p, hc_ms now);
extern void purger_subscribed(void *arg, const char *where, hc_ms now);
extern void purger_lost(void *arg, const char *reason, hc_ms now);
extern void purger_message(void *arg, const char *payload, size_t len, hc_ms now);
extern void purger_tick(Purger *p, hc_ms now);
extern hc_ms purger_next_timer(const Purger *p);
extern bool purger_hears_nothing(const Purger *p, hc_ms now);
extern void purger_stop(Purger *p);
extern uint64_t purger_purges_all(const Purger *p);
extern void purger_log_stats(const Purger *p);

#endif							/* HC_PURGER_H */
