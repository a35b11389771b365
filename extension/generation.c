/*-------------------------------------------------------------------------
 *
 * generation.c
 *	  Tags, generations and keys.
 *
 * A tag names something a cached answer depends on: a whole table
 * ("housing.listings"), one partition value of it
 * ("housing.listings/city=Boston") or one row ("housing.listings/id=42").
 * Each tag hashes, together with the database, to one of a fixed number of
 * generation slots in shared memory.  A committed write bumps the slots of
 * the tags it touched; two tags sharing a slot only invalidate each other
 * needlessly, never serve stale data, and nothing is ever allocated or
 * evicted.
 *
 * The key of a cached answer is a SHA-256 digest over everything that
 * identifies it: cluster, database, restart epoch, the query's definition,
 * its canonical parameters, and the generation of every tag it depends on.
 * A bump therefore makes every older key unreachable, in L1 and in Redis
 * alike; nothing is deleted, TTLs reclaim the space.  Keys are digests, so
 * no caller-supplied text ever reaches Redis.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xlog.h"
#include "common/cryptohash.h"
#include "common/hashfn.h"
#include "common/sha2.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"

#include "housing_cache.h"

/*
 * The generation slot of a tag in this database.
 */
uint32
HcTagSlot(const char *tag, int len)
{
	uint64		h;

	h = hash_bytes_extended((const unsigned char *) tag, len,
							(uint64) MyDatabaseId);
	return (uint32) (h & (hc_shared->nslots - 1));
}

/*
 * Read the generations of the given slots.  Returns false when a writer that
 * touched one of them is between PRE_COMMIT and its bump: the caller must then
 * neither serve nor fill a cached answer (see invalidate.c for why).
 *
 * Called before the reader takes the snapshot its query runs on; taking a
 * snapshot acquires ProcArrayLock, which orders these reads before it.
 */
bool
HcReadGenerations(const uint32 *slots, int nslots, uint64 *gens)
{
	for (int i = 0; i < nslots; i++)
	{
		uint64		v = pg_atomic_read_u64(&hc_shared->slots[slots[i]]);

		if ((v & HC_INFLIGHT_MASK) != 0)
			return false;
		gens[i] = v >> HC_INFLIGHT_BITS;
	}
	return true;
}

/*
 * Start a key: the namespace every key shares in this database and epoch.
 */
void
HcKeyInit(StringInfo buf)
{
	uint64		sysid = GetSystemIdentifier();
	uint32		db = MyDatabaseId;

	resetStringInfo(buf);
	appendBinaryStringInfo(buf, "hc-key-1", 8);
	appendBinaryStringInfo(buf, (const char *) &sysid, sizeof(sysid));
	appendBinaryStringInfo(buf, (const char *) &db, sizeof(db));
	appendBinaryStringInfo(buf, (const char *) &hc_shared->epoch,
						   sizeof(hc_shared->epoch));
}

/*
 * Add one length-prefixed component, so that ("ab", "c") and ("a", "bc")
 * never produce the same key; NULL is its own marker.
 */
void
HcKeyAdd(StringInfo buf, const void *data, int len)
{
	int32		n = (data == NULL) ? -1 : len;

	appendBinaryStringInfo(buf, (const char *) &n, sizeof(n));
	if (data != NULL && len > 0)
		appendBinaryStringInfo(buf, (const char *) data, len);
}

/*
 * The first HC_DIGEST_LEN bytes of the SHA-256 of data.
 */
void
HcDigest(const char *data, int len, uint8 *digest)
{
	pg_cryptohash_ctx *ctx;
	uint8		full[PG_SHA256_DIGEST_LENGTH];

	ctx = pg_cryptohash_create(PG_SHA256);
	if (pg_cryptohash_init(ctx) < 0 ||
		pg_cryptohash_update(ctx, (const uint8 *) data, len) < 0 ||
		pg_cryptohash_final(ctx, full, sizeof(full)) < 0)
	{
		const char *err = pg_cryptohash_error(ctx);

		pg_cryptohash_free(ctx);
		elog(ERROR, "could not compute cache key: %s", err);
	}
	pg_cryptohash_free(ctx);
	memcpy(digest, full, HC_DIGEST_LEN);
}

/*
 * Finish: digest the material and print the Redis key
 * (prefix + 32 hex digits) into keytext, which has room for HC_KEY_MAXLEN.
 */
void
HcKeyFinish(StringInfo buf, uint8 *digest, char *keytext)
{
	static const char hex[] = "0123456789abcdef";
	int			n;

	HcDigest(buf->data, buf->len, digest);
	n = strlcpy(keytext, hc_key_prefix, HC_KEY_MAXLEN - 2 * HC_DIGEST_LEN);
	n = Min(n, HC_KEY_MAXLEN - 2 * HC_DIGEST_LEN - 1);
	for (int i = 0; i < HC_DIGEST_LEN; i++)
	{
		keytext[n++] = hex[digest[i] >> 4];
		keytext[n++] = hex[digest[i] & 0xf];
	}
	keytext[n] = '\0';
}
