/*-------------------------------------------------------------------------
 *
 * housing_cache.h
 *	  Declarations shared by the modules of the housing_cache extension.
 *
 * Modules, one concern each (dependencies go down the list, never up):
 *	  housing_cache.c	_PG_init and the shared-memory hooks
 *	  guc.c				configuration parameters
 *	  shmem.c			shared state: generations, stats, epoch, breaker
 *	  tag.c				how values are spelled in tags; a tag's slot
 *	  generation.c		the generation protocol: slots read, marked,
 *						bumped, unmarked (and why no read is stale)
 *	  key.c				the key of a cached answer
 *	  value.c			the format of a stored answer
 *	  redis.c			the Redis client (L2)
 *	  sentinel.c		Redis Sentinel: where the master is, discovered once
 *						for every backend
 *	  breaker.c			the Redis circuit breaker
 *	  l1.c				L1, answers in shared memory
 *	  singleflight.c	one fill per key at a time
 *	  message.c			the invalidation message published after commit
 *	  invalidate.c		row triggers, invalidate(), the commit callback
 *	  publisher.c		the invalidation messages' queue and the worker that
 *						publishes it, with a heartbeat
 *	  edge.c			the HTTP edge: edge keys, purge_edge()
 *	  standby.c			hot standbys: invalidation in WAL order (a custom
 *						resource manager), pending transactions, min_lsn
 *	  catalog.c			watched_tables and queries: reads, writes, privileges
 *	  ddl.c				DDL around watched tables (event trigger helpers)
 *	  registry.c		registered queries: definitions, checks, the cache
 *						of definitions, register_query()
 *	  conditional.c		If-None-Match for the next cached call
 *	  fetch.c			the read path: bypass, key, L1, L2, fill
 *	  stats.c			stats view, reset and last_lookup()
 *	  httpapi.c			PostgREST's request and response settings: a request
 *						header, X-Min-LSN, the cache headers of an answer
 *	  ../portal/listings.c	the housing portal's entry points (extension
 *						housing_portal, same library)
 *
 * Wording.  One word for one idea, in C, SQL, stats and docs:
 *	  tag			what an answer depends on: a table ("T"), a partition
 *					value ("T/column=value"), a row ("T/id=42"); "T/<star>"
 *					is the table's reset tag, which every finer tag implies
 *	  slot			where a tag's generation lives, in shared memory
 *	  generation	a slot's counter; bumped by every commit that touched it
 *	  in flight		a slot marked by a writer between PRE_COMMIT and COMMIT
 *	  key			the digest naming one cached answer (never a table's key
 *					column: that is its id column)
 *	  partition column, id column   the columns a watched table's writes
 *					are tagged by
 *	  hit			an answer served from L1 or L2
 *	  miss			none there: the query runs and its answer is stored
 *	  fill			that run-and-store, claimed by one session at a time
 *	  bypass		the query runs without the cache (a bypass reason says why)
 *	  not modified	the caller's If-None-Match names the key: nothing sent
 *	  entity tag	an answer's HTTP ETag: its key's digest, quoted
 *	  owner			the role that registered a query; runner: who runs it
 *	  breaker		the Redis circuit breaker, shared by every backend
 *
 * Locks and callbacks.  No Redis or SPI call is made under a lock.
 *	  shmem.c		AddinShmemInitLock at startup only
 *	  generation.c	none: atomic reads and adds
 *	  l1.c			its partition LWLocks, held for a copy in or out
 *	  singleflight.c its LWLock, held to claim or release a fill; waits on a
 *					condition variable outside it
 *	  breaker.c		none: atomics
 *	  sentinel.c	a spinlock, held only to copy the master's address in or out
 *	  standby.c		none: atomics; its redo runs in the startup process
 *					(shared memory only)
 *	  catalog.c		a relcache callback (forget the WAL invalidation
 *					setting); RowShareLock on housing_cache.replication
 *					from PRE_COMMIT to the end of a writing transaction,
 *					ExclusiveLock in set_wal_invalidation()
 *	  invalidate.c	XactCallback (PRE_COMMIT marks, COMMIT bumps, ABORT
 *					unmarks: no error, no allocation at COMMIT) and a
 *					ResourceReleaseCallback (publish after the locks are gone)
 *	  registry.c	a relcache callback (drop definitions)
 *	  conditional.c	an XactCallback (a condition never outlives its
 *					transaction)
 *
 *-------------------------------------------------------------------------
 */
#ifndef HOUSING_CACHE_H
#define HOUSING_CACHE_H

#include "postgres.h"

#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "port/atomics.h"
#include "storage/lwlock.h"
#include "utils/timestamp.h"

/* ---- configuration (guc.c) ---- */
extern bool hc_enabled;
extern char *hc_redis_host;
extern int	hc_redis_port;
extern char *hc_redis_password;
extern int	hc_redis_db;
extern int	hc_redis_connect_timeout_ms;
extern int	hc_redis_command_timeout_ms;
extern int	hc_default_ttl;
extern int	hc_ttl_jitter_pct;
extern int	hc_max_value_bytes;
extern char *hc_key_prefix;
extern char *hc_channel;
extern bool hc_publish;
extern int	hc_publish_max_tags;
extern int	hc_generation_slots;
extern int	hc_breaker_backoff_ms;
extern int	hc_breaker_max_backoff_ms;
extern int	hc_l1_size_mb;
extern int	hc_l1_max_value_bytes;
extern bool hc_single_flight;
extern bool hc_column_tags;
extern int	hc_fill_wait_ms;
extern double hc_xfetch_beta;
extern int	hc_http_max_age;
extern int	hc_http_shared_max_age;
extern int	hc_heartbeat_ms;
extern int	hc_publish_queue_kb;
extern int	hc_publish_batch_ms;
extern int	hc_escalate_rows;
extern char *hc_value_secret;
extern char *hc_value_secret_file;
extern char *hc_redis_password_file;
extern char *hc_redis_sentinels;
extern char *hc_redis_sentinel_master;
extern char *hc_redis_sentinel_password;
extern char *hc_redis_sentinel_password_file;
extern int	hc_wal_rmgr_id;
extern char *hc_min_lsn;
extern int	hc_min_lsn_wait_ms;

extern void HcDefineGucs(void);
extern bool HcReadSecretFile(const char *path, char *buf, size_t size,
							 const char **err);

/* ---- shared state (shmem.c) ---- */

/*
 * Cluster-wide counters, one atomic each; the order here is the order of the
 * columns of housing_cache.stats.
 */
typedef enum HcStat
{
	HC_STAT_L1_HITS,
	HC_STAT_L2_HITS,
	HC_STAT_MISSES,
	HC_STAT_DB_EXECUTIONS,
	HC_STAT_BYPASSES,
	HC_STAT_L1_STORES,
	HC_STAT_L1_EVICTIONS,
	HC_STAT_L2_STORES,
	HC_STAT_L2_REJECTS,
	HC_STAT_OVERSIZE,
	HC_STAT_REDIS_ERRORS,
	HC_STAT_BREAKER_SKIPS,
	HC_STAT_BREAKER_OPENS,
	HC_STAT_BREAKER_CLOSES,
	HC_STAT_FILL_WAITS,
	HC_STAT_FILL_TIMEOUTS,
	HC_STAT_EARLY_REFRESHES,
	HC_STAT_STALE_SERVED,
	HC_STAT_INVALIDATIONS,
	HC_STAT_INVALIDATED_COMMITS,
	HC_STAT_PUBLISHES,
	HC_STAT_PUBLISH_FAILURES,
	HC_STAT_WAL_LOGGED,
	HC_STAT_WAL_REPLAYED,
	HC_STAT_WAL_RESOLVED,
	HC_STAT_WAL_OVERFLOWS,
	HC_STAT_WAL_CATCHING_UP,
	HC_STAT_MIN_LSN_WAITS,
	HC_STAT_MIN_LSN_TIMEOUTS,
	HC_STAT_REDIS_DISCOVERIES,
	HC_STAT_REDIS_FAILOVERS,
	HC_STAT_HEARTBEATS,
	HC_STAT_FRAGMENT_HITS,
	HC_STAT_FRAGMENT_FILLS,
	HC_STAT_COUNT
} HcStat;

typedef struct HcSharedState
{
	uint64		epoch;			/* random, new at every shared memory init */
	uint32		nslots;			/* generation slots, a power of two */
	uint8		value_key[32];	/* random HMAC key of stored values */
	pg_atomic_uint64 stats[HC_STAT_COUNT];
	pg_atomic_uint64 stats_reset_at;	/* TimestampTz of the last reset */

	/* Redis circuit breaker, shared by every backend */
	pg_atomic_uint32 breaker_failures;	/* consecutive failures */
	pg_atomic_uint64 breaker_open_until;	/* TimestampTz; 0 = closed */

	/* the number of the last invalidation message given (message.c) */
	pg_atomic_uint64 message_seq;

	pg_atomic_uint64 slots[FLEXIBLE_ARRAY_MEMBER];
} HcSharedState;

extern HcSharedState *hc_shared;

extern Size HcShmemSize(void);
extern void HcShmemRequest(void);
extern void HcShmemStartup(void);

static inline void
HcStatAdd(HcStat stat, uint64 n)
{
	if (hc_shared != NULL)
		pg_atomic_fetch_add_u64(&hc_shared->stats[stat], n);
}

#define HcStatInc(stat) HcStatAdd((stat), 1)

/* ---- the generation protocol (generation.c) and keys (key.c) ---- */

/* at most this many generation slots per cached answer (tags and columns) */
#define HC_MAX_TAGS		64

/* 128-bit key digest, printed as 32 hex characters after the key prefix */
#define HC_DIGEST_LEN	16

/* prefix (at most 64 bytes) + 32 hex digits + NUL */
#define HC_KEY_MAXLEN	(64 + 2 * HC_DIGEST_LEN + 1)

extern bool HcReadGenerations(const uint32 *slots, int nslots, uint64 *gens);
extern void HcSlotMark(uint32 slot);
extern void HcSlotBump(uint32 slot);
extern void HcSlotUnmark(uint32 slot);

typedef struct HcKeyBuilder
{
	void	   *ctx;			/* OpenSSL digest context */
	int			used;			/* bytes of buf not yet digested */
	uint8		buf[512];		/* small components are gathered here */
} HcKeyBuilder;

extern void HcKeyBegin(HcKeyBuilder *kb);
extern void HcKeyInit(HcKeyBuilder *kb);
extern void HcKeyAdd(HcKeyBuilder *kb, const void *data, int len);
extern void HcKeyDigest(HcKeyBuilder *kb, uint8 *digest);
extern void HcKeyFinish(HcKeyBuilder *kb, uint8 *digest, char *keytext);

/* ---- tags (tag.c) ---- */
typedef enum HcSpelling
{
	HC_SPELL_NONE,				/* no equality a tag can follow */
	HC_SPELL_TEXT,				/* the output text, the same in every session */
	HC_SPELL_OID,				/* an OID alias type, by its OID */
	HC_SPELL_HASH				/* '#' and the type's extended hash, in hex */
} HcSpelling;

typedef struct HcTagSpeller
{
	HcSpelling	how;
	Oid			collation;		/* of the column */
	FmgrInfo	proc;			/* output function (text) or extended hash */
} HcTagSpeller;

extern uint32 HcTagSlot(const char *tag, int len);
extern uint64 HcTagHash(const char *tag, int len);
extern uint64 HcColumnHash(const char *column);
extern uint32 HcSlotOfHash(uint64 taghash);
extern uint32 HcColumnSlot(uint64 taghash, uint64 columnhash);
extern HcSpelling HcTagSpellingOf(Oid type, Oid collation);
extern bool HcTagSpellerInit(HcTagSpeller *sp, Oid type, Oid collation,
							 MemoryContext cxt);
extern void HcTagAppendValue(StringInfo buf, const HcTagSpeller *sp, Datum value);
extern const char *HcTagSpellingRefusal(Oid type);

/* ---- Redis (redis.c) ---- */
typedef struct HcValue
{
	bool		isnull;			/* the query returned no row / NULL */
	char	   *data;			/* the payload (the answer's text) */
	uint32		len;
	/*
	 * When set, data points just past room for a varlena header in this
	 * palloc'd buffer, so the answer is returned as text without a copy.
	 */
	char	   *varlena;
	TimestampTz created_at;
	uint32		compute_us;		/* time the fill took, for XFetch */
	uint32		ttl_ms;
} HcValue;

typedef enum HcRedisResult
{
	HC_REDIS_HIT,
	HC_REDIS_MISS,				/* absent, expired, or not a valid value */
	HC_REDIS_UNAVAILABLE		/* breaker open or the call failed */
} HcRedisResult;

extern HcRedisResult HcRedisGet(const char *key, const uint8 *digest,
								HcValue *value);
extern bool HcRedisSet(const char *key, const uint8 *digest,
					   const HcValue *value);
extern bool HcRedisMGet(int n, const char *const *keys, const uint8 *const *digests,
						HcValue *values, bool *hit);
extern int	HcRedisSetMany(int n, const char *const *keys, const uint8 *const *digests,
						   const HcValue *values);
extern bool HcRedisPublish(const char *channel, const char *msg, size_t len);
extern int	HcRedisPublishBatch(int n, const char *const *channels,
								const char *const *msgs, const size_t *lens);
extern void HcRedisConfigChanged(void);
extern const char *HcRedisMasterAddress(void);
extern void HcRedisDescribe(char *buf, size_t size);

/* ---- Redis Sentinel: where the master is (sentinel.c) ---- */
#define HC_MAX_SENTINELS	16
#define HC_HOST_MAXLEN		255

/* a Redis or Sentinel address */
typedef struct HcRedisAddr
{
	char		host[HC_HOST_MAXLEN + 1];
	int			port;
} HcRedisAddr;

/* housing_cache.redis_sentinels, parsed (the GUC's extra) */
typedef struct HcSentinelList
{
	int			count;
	HcRedisAddr sentinels[HC_MAX_SENTINELS];
} HcSentinelList;

/* the master as this backend may use it */
typedef struct HcMaster
{
	HcRedisAddr addr;
	uint64		generation;		/* of the discovery that found it; never 0 */
	bool		suspect;		/* a backend found it broken: rediscover */
} HcMaster;

/* one discovery's walk through the sentinels */
typedef struct HcSentinelAsk
{
	int			start;			/* the sentinel asked first */
	int			asked;			/* sentinels asked so far */
	int			answered;		/* the one that named the last candidate */
	int			ntried;
	HcRedisAddr tried[HC_MAX_SENTINELS];	/* candidates named so far */
} HcSentinelAsk;

extern bool HcSentinelParse(const char *value, HcSentinelList *list,
							char *err, size_t errlen);
extern void HcSentinelAssign(const HcSentinelList *list);
extern void HcSentinelConfigChanged(void);
extern bool HcSentinelEnabled(void);
extern Size HcSentinelShmemSize(void);
extern void HcSentinelShmemInit(char *base, bool found);
extern bool HcSentinelMaster(HcMaster *master);
extern bool HcSentinelClaim(bool probe);
extern void HcSentinelSuspect(uint64 generation);
extern void HcSentinelAskBegin(HcSentinelAsk *ask);
extern bool HcSentinelAskNext(HcSentinelAsk *ask, HcRedisAddr *master,
							  char *detail, size_t detail_len);
extern uint64 HcSentinelFound(const HcSentinelAsk *ask, const HcRedisAddr *master);
extern void HcSentinelNotFound(void);
extern void HcSentinelFormatAddr(const HcRedisAddr *addr, char *buf, size_t size);

/* ---- value format (value.c) ---- */
#define HC_VALUE_HEADER_LEN 64

extern char *HcValueEncode(const uint8 *digest, const HcValue *value,
						   Size *len);
extern bool HcValueDecode(const uint8 *digest, const char *buf, Size len,
						  HcValue *value);
extern void HcValueKey(const uint8 **key, int *len);

/* ---- circuit breaker (breaker.c) ---- */
extern bool HcBreakerAllows(void);
extern bool HcBreakerProbing(void);
extern bool HcBreakerClosed(void);
extern void HcBreakerSuccess(void);
extern void HcBreakerFailure(const char *what, const char *detail);
extern const char *HcBreakerState(void);

/* a palloc'd buffer for a payload of len bytes, returned as text without a copy */
static inline void
HcValueAllocate(HcValue *value, uint32 len)
{
	value->varlena = palloc(VARHDRSZ + len + 1);
	value->data = value->varlena + VARHDRSZ;
	value->data[len] = '\0';
}

/* ---- L1 (l1.c) ---- */
extern Size HcL1ShmemSize(void);
extern int	HcL1LockCount(void);
extern void HcL1ShmemInit(char *base, bool found, LWLockPadded *locks);
extern bool HcL1Get(const uint8 *digest, HcValue *value);
extern bool HcL1Peek(const uint8 *digest, HcValue *value);
extern bool HcL1Put(const uint8 *digest, const HcValue *value);

/* ---- single-flight (singleflight.c) ---- */
typedef enum HcFlightResult
{
	HC_FLIGHT_OWNER,
	HC_FLIGHT_DONE,				/* the fill waited for stored its answer */
	HC_FLIGHT_DONE_UNSTORED,	/* it ended without storing one */
	HC_FLIGHT_BUSY,
	HC_FLIGHT_TIMEOUT,
	HC_FLIGHT_FULL
} HcFlightResult;

extern Size HcFlightShmemSize(void);
extern void HcFlightShmemInit(char *base, bool found);
extern HcFlightResult HcFlightBegin(const uint8 *digest, bool wait,
									TimestampTz deadline, int *slot);
typedef enum HcFillOutcome
{
	HC_FILL_STORED,
	HC_FILL_UNSTORED,			/* computed, but nowhere to keep it */
	HC_FILL_FAILED				/* error or cancel: a waiter should take over */
} HcFillOutcome;

extern void HcFlightEnd(int slot, HcFillOutcome outcome);

/* ---- the invalidation message (message.c) ---- */
extern char *HcTextAsUtf8(const char *text, int len);
extern void HcMessageAddTag(const char *tag, int len);
extern void HcMessagePrepare(void);
extern bool HcMessagePrepared(void);
extern void HcMessageCommit(void);
extern void HcMessageForgetTags(void);
extern void HcMessageForget(void);

/* ---- invalidation (invalidate.c) ---- */
extern void HcInvalidationInit(void);
extern bool HcXactMayHaveWritten(const Oid *relids, int nrelids);
extern void HcRememberTag(const char *tag, int len);
extern void HcInvalidateTable(const char *table_tag);
extern void HcInvalidateEverything(void);

/* ---- the HTTP edge (edge.c) ---- */
/* "k" and 32 hex digits */
#define HC_EDGE_KEY_LEN 33
extern void HcEdgeKey(const char *dbname, const char *tag, int len, char *out);

/* ---- the publisher (publisher.c) ---- */
extern Size HcPublishShmemSize(void);
extern void HcPublishShmemInit(char *base, bool found, LWLock *lock);
extern bool HcPublishCommit(char *msg, int (*finish) (char *msg, uint64 seq),
							const char *channel);
extern int	HcPublishMaxMessage(int channel_len);
extern void HcPublisherRegister(void);
extern PGDLLEXPORT void housing_cache_publisher_main(Datum arg);

/* ---- the catalog (catalog.c) ---- */
typedef struct HcQueryRow
{
	char	   *sql;
	Datum		param_types;	/* oid[] */
	Datum		tags;			/* text[] */
	int			ttl_seconds;	/* 0: the default */
	bool		vary_by_role;
	bool		fetchable;
	Oid			owner;
	char	   *extension;		/* that registered it, or NULL */
	/* a composed query's fragments (registry.c), all NULL otherwise */
	char	   *fragment_sql;
	Datum		fragment_tags;	/* text[], or 0 */
	char	   *fragments_key;
} HcQueryRow;

extern Oid	HcCatalogRelid(const char *table);
extern bool HcCatalogLookupWatched(const char *table_tag, Oid *relid,
								   char **partition_column, char **id_column);
extern bool HcCatalogReadQuery(const char *name, HcQueryRow *row);
extern void HcCatalogStoreQuery(const HcQueryRow *composed, const char *name, const char *sql,
								Datum param_types, Datum tags, int ttl_seconds,
								bool vary_by_role, bool fetchable);
extern bool HcCatalogDeleteQuery(const char *name);
extern void HcCatalogInit(void);
extern bool HcCatalogWalInvalidation(bool lock, int64 *version);
extern void HcCatalogSetWalInvalidation(bool on);

/* ---- hot standbys (standby.c) ---- */
extern Size HcStandbyShmemSize(void);
extern void HcStandbyShmemInit(char *base, bool found);
extern void HcStandbyRegisterRmgr(void);
extern void HcStandbyLogInvalidation(const uint32 *slots, int count);
extern bool HcStandbyCaughtUp(void);
extern uint64 HcStandbyGlobalGeneration(void);
extern bool HcStandbyResolve(void);
extern void HcStandbyWaitForLsn(void);

/* ---- registered queries (registry.c) ---- */
#define HC_MAX_PARAMS		32
#define HC_MAX_TEMPLATES	8

/*
 * A tag template: a table tag alone, "T/col=$n", or a literal "T/col=value".
 */
typedef struct HcTagTemplate
{
	char	   *table_tag;		/* "housing.listings" */
	char	   *prefix;			/* "housing.listings/city=", NULL if table only */
	int			param;			/* 1-based parameter, 0 for a literal */
	char	   *literal;		/* the whole tag, when param == 0 */
	HcTagSpeller speller;		/* how the column's values are spelled */
	Oid			relid;			/* the watched table */

	/*
	 * The columns of the table the query reads (registry.c): its answers
	 * depend on the tag's own slot and these columns' slots, or, reading
	 * whole rows (all_columns), on the tag's "any" slot (tag.c).
	 */
	bool		all_columns;
	int			ncolumns;
	uint64	   *column_hashes;
	/* hashes that do not depend on parameters, set at load */
	uint64		table_hash;		/* of the table tag */
	uint64		literal_hash;	/* of the literal tag */
	uint32		reset_slot;		/* of the table's reset tag */
} HcTagTemplate;

/*
 * The fragments of a composed query (registry.c, fetch.c): its answer holds
 * an array of ids at a key, each replaced by the id's fragment, computed by
 * a query of its own over an array of ids and cached by id.
 */
typedef struct HcFragmentsDef
{
	char	   *key;			/* the answer's key holding the ids */
	Oid			idtype;			/* of one id */
	Oid			id_input;
	Oid			id_ioparam;
	Oid			id_output;
	int16		id_len;
	bool		id_byval;
	char		id_align;
	int			ntemplates;		/* the tags of one fragment, $1 its id */
	HcTagTemplate templates[HC_MAX_TEMPLATES];
	Oid			fragment_output;	/* of the fragment column */
	uint8		digest[HC_DIGEST_LEN];
	SPIPlanPtr	plan;			/* $1: an array of ids */
} HcFragmentsDef;

/*
 * A registered query's definition, loaded from the catalog and checked
 * (registry.c), cached per backend until the catalog or a relation it reads
 * changes.
 */
typedef struct HcQueryDef
{
	char		name[NAMEDATALEN];	/* hash key */
	bool		valid;
	MemoryContext cxt;			/* everything below that is palloc'd */
	int			nparams;
	Oid			paramtypes[HC_MAX_PARAMS];
	Oid			typoutput[HC_MAX_PARAMS];
	bool		param_is_oid[HC_MAX_PARAMS];	/* a reg* type: keyed by OID */
	int			ntemplates;
	HcTagTemplate templates[HC_MAX_TEMPLATES];
	int			ttl_seconds;	/* 0: housing_cache.default_ttl */
	bool		vary_by_role;
	bool		fetchable;		/* may be called through fetch() */
	Oid			owner;			/* the role that registered it */
	bool		wal_invalidation;	/* the primary logs invalidations */
	int64		wal_version;	/* ... as of this version of that setting */
	int			nrelids;
	Oid		   *relids;			/* relations the query reads */
	int			nvisible;
	Oid		   *visible;		/* ... with their partitions and children:
								 * whose rows its answer may show */
	int			nfuncs;
	Oid		   *funcs;			/* functions it calls whose EXECUTE is restricted */
	int			nas;
	Oid		   *as_relids;		/* relations read as another role (views) ... */
	Oid		   *as_users;		/* ... and that role */
	bool		keyed_by_role;	/* vary_by_role, or it calls code run as the caller */
	Oid			result_output;	/* output function of the result column */
	uint8		digest[HC_DIGEST_LEN];	/* of the definition */
	SPIPlanPtr	plan;
	HcFragmentsDef *fragments;	/* a composed query's, or NULL */
	struct HcNullColumns *null_columns; /* HcColumnsForNulls()'s memo */
	int			n_null_columns;
} HcQueryDef;

extern void HcRegistryInit(void);
extern HcQueryDef *HcGetQuery(const char *name);
extern const uint64 *HcColumnsForNulls(HcQueryDef *def, const bool *nulls);
extern int	HcPinSearchPath(void);
extern void HcUnpinSearchPath(int nestlevel);

/* ---- conditional requests (conditional.c) ---- */
extern void HcConditionalInit(void);
extern char *HcTakeIfNoneMatch(void);
extern bool HcEtagMatches(const char *if_none_match, const char *key);

/* ---- the read path (fetch.c) ---- */
typedef enum HcTier
{
	HC_TIER_NONE,
	HC_TIER_L1,
	HC_TIER_L2,
	HC_TIER_MISS,				/* computed by running the query, and stored */
	HC_TIER_BYPASS,
	HC_TIER_NOT_MODIFIED		/* the caller's ETag matched: nothing fetched */
} HcTier;

typedef struct HcLastLookup
{
	HcTier		tier;
	char		key[HC_KEY_MAXLEN];
	int64		elapsed_us;
	char		bypass_reason[64];	/* why the cache was bypassed, '' otherwise */
	int32		ttl_remaining_s;	/* of the answer served; -1 unknown */
	int32		fragment_hits;	/* a composed answer's fragments from the cache */
	int32		fragment_fills; /* ... and computed */
	bool		has_stamp;		/* stamp_seq is set: see edge.c */
	uint64		stamp_seq;		/* message_seq before the generations were read */
} HcLastLookup;

extern HcLastLookup hc_last_lookup;
extern const char *HcLastLookupTags(int *len);
extern char *HcLastLookupEdgeKeys(void);
extern char *HcRequestHeader(const char *name);

extern Datum HcFetch(const char *name, int nargs, Datum *values,
					 bool *nulls, const char *if_none_match, bool *isnull);

#endif							/* HOUSING_CACHE_H */
