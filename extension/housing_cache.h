/*-------------------------------------------------------------------------
 *
 * housing_cache.h
 *	  Declarations shared by the modules of the housing_cache extension.
 *
 * Modules, one concern each:
 *	  housing_cache.c	_PG_init and the shared-memory hooks
 *	  guc.c				configuration parameters
 *	  shmem.c			shared state: generations, stats, epoch, breaker
 *	  generation.c		tags, generations and keys
 *	  redis.c			the Redis client (L2)
 *	  value.c			the format of a stored answer
 *	  breaker.c			the Redis circuit breaker
 *	  l1.c				L1, answers in shared memory
 *	  singleflight.c	one fill per key at a time
 *	  invalidate.c		row triggers and the commit callback
 *	  engine.c			registered queries and the cached read path
 *	  listings.c		the housing portal's listing entry points
 *	  stats.c			stats view, reset and last_lookup()
 *
 *-------------------------------------------------------------------------
 */
#ifndef HOUSING_CACHE_H
#define HOUSING_CACHE_H

#include "postgres.h"

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
extern int	hc_fill_wait_ms;
extern double hc_xfetch_beta;
extern int	hc_http_max_age;
extern int	hc_escalate_rows;
extern char *hc_value_secret;
extern char *hc_value_secret_file;
extern char *hc_redis_password_file;

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
	HC_STAT_COUNT
} HcStat;

/*
 * A generation slot packs two things in one 64-bit word so that a reader gets
 * both with one atomic read, and a committing writer changes both with one
 * atomic add:
 *	 low HC_INFLIGHT_BITS bits: writers that passed PRE_COMMIT but have not yet
 *	 bumped (in flight);
 *	 the rest: the generation.
 */
#define HC_INFLIGHT_BITS	20
#define HC_INFLIGHT_MASK	((UINT64CONST(1) << HC_INFLIGHT_BITS) - 1)
#define HC_GENERATION_ONE	(UINT64CONST(1) << HC_INFLIGHT_BITS)

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

/* ---- tags, generations and keys (generation.c) ---- */

/* at most this many tags per cached answer (after template expansion) */
#define HC_MAX_TAGS		16

/* 128-bit key digest, printed as 32 hex characters after the key prefix */
#define HC_DIGEST_LEN	16

/* prefix (at most 64 bytes) + 32 hex digits + NUL */
#define HC_KEY_MAXLEN	(64 + 2 * HC_DIGEST_LEN + 1)

extern bool HcReadGenerations(const uint32 *slots, int nslots, uint64 *gens);
typedef struct HcKeyBuilder
{
	void	   *ctx;			/* OpenSSL digest context */
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
extern bool HcRedisPublish(const char *channel, const char *msg, size_t len);
extern void HcRedisConfigChanged(void);

/* ---- value format (value.c) ---- */
#define HC_VALUE_HEADER_LEN 64

extern char *HcValueEncode(const uint8 *digest, const HcValue *value,
						   Size *len);
extern bool HcValueDecode(const uint8 *digest, const char *buf, Size len,
						  HcValue *value);
extern void HcValueKey(const uint8 **key, int *len);

/* ---- circuit breaker (breaker.c) ---- */
extern bool HcBreakerAllows(void);
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

/* ---- invalidation (invalidate.c) ---- */
extern void HcInvalidationInit(void);
extern bool HcXactMayHaveWritten(const Oid *relids, int nrelids);
extern void HcRememberTag(const char *tag, int len);
extern void HcInvalidateTable(const char *table_tag);

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
} HcQueryRow;

extern Oid	HcCatalogRelid(const char *table);
extern bool HcCatalogLookupWatched(const char *table_tag, Oid *relid,
								   char **partition_column, char **id_column);
extern bool HcCatalogReadQuery(const char *name, HcQueryRow *row);
extern void HcCatalogStoreQuery(const char *name, const char *sql,
								Datum param_types, Datum tags, int ttl_seconds,
								bool vary_by_role, bool fetchable);
extern bool HcCatalogDeleteQuery(const char *name);

/* ---- engine (engine.c) ---- */
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
} HcLastLookup;

extern HcLastLookup hc_last_lookup;

extern void HcEngineInit(void);
extern char *HcTakeIfNoneMatch(void);
extern Datum HcFetch(const char *name, int nargs, Datum *values,
					 bool *nulls, const char *conditional, bool *isnull);

#endif							/* HOUSING_CACHE_H */
