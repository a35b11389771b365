/*-------------------------------------------------------------------------
 *
 * key.c
 *	  The key of a cached answer.
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

#include <openssl/evp.h>

#include "access/xlog.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"

#include "housing_cache.h"

/*
 * Keys are digested as they are built, component by component, with one
 * SHA-256 context per backend: every cached call computes a key, and neither
 * a buffer of the key material nor a fresh OpenSSL context (as pg_cryptohash
 * sets up per call) is worth its cost on the hit path.  Key building never
 * nests, so one context suffices; an error in the middle of one leaves it to
 * be reset by the next HcKeyBegin.
 */
static EVP_MD_CTX *
key_context(void)
{
	static EVP_MD *md = NULL;
	static EVP_MD_CTX *ctx = NULL;

	if (md == NULL)
	{
		md = EVP_MD_fetch(NULL, "SHA256", NULL);
		if (md == NULL)
			elog(ERROR, "could not load SHA-256 from OpenSSL");
	}
	if (ctx == NULL)
	{
		ctx = EVP_MD_CTX_new();
		if (ctx == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("out of memory")));
	}
	if (EVP_DigestInit_ex2(ctx, md, NULL) != 1)
		elog(ERROR, "could not start a cache key");
	return ctx;
}

/*
 * Start a digest with no namespace (for definitions).
 */
void
HcKeyBegin(HcKeyBuilder *kb)
{
	kb->ctx = key_context();
	kb->used = 0;
}

/* digest what buf holds */
static void
key_flush(HcKeyBuilder *kb)
{
	if (kb->used > 0 &&
		EVP_DigestUpdate((EVP_MD_CTX *) kb->ctx, kb->buf, kb->used) != 1)
		elog(ERROR, "could not compute a cache key");
	kb->used = 0;
}

/*
 * Start a key: the namespace every key shares in this database and epoch.
 */
void
HcKeyInit(HcKeyBuilder *kb)
{
	uint64		sysid = GetSystemIdentifier();
	uint32		db = MyDatabaseId;

	HcKeyBegin(kb);
	HcKeyAdd(kb, "hc-key-2", 8);
	HcKeyAdd(kb, &sysid, sizeof(sysid));
	HcKeyAdd(kb, &db, sizeof(db));
	HcKeyAdd(kb, &hc_shared->epoch, sizeof(hc_shared->epoch));
}

/*
 * Add one length-prefixed component, so that ("ab", "c") and ("a", "bc")
 * never produce the same key; NULL is its own marker.
 */
void
HcKeyAdd(HcKeyBuilder *kb, const void *data, int len)
{
	int32		n = (data == NULL) ? -1 : len;
	int			size = (data != NULL && len > 0) ? len : 0;

	/*
	 * The digest is of the same bytes either way; gathering small
	 * components first saves an OpenSSL call for each (a composed page's
	 * key has two per fragment).
	 */
	if (kb->used + (int) sizeof(n) + size > (int) sizeof(kb->buf))
		key_flush(kb);
	memcpy(kb->buf + kb->used, &n, sizeof(n));
	kb->used += sizeof(n);
	if (size == 0)
		return;
	if (kb->used + size <= (int) sizeof(kb->buf))
	{
		memcpy(kb->buf + kb->used, data, size);
		kb->used += size;
		return;
	}
	key_flush(kb);
	if (EVP_DigestUpdate((EVP_MD_CTX *) kb->ctx, data, size) != 1)
		elog(ERROR, "could not compute a cache key");
}

/*
 * The first HC_DIGEST_LEN bytes of the digest.
 */
void
HcKeyDigest(HcKeyBuilder *kb, uint8 *digest)
{
	unsigned char full[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	key_flush(kb);
	if (EVP_DigestFinal_ex((EVP_MD_CTX *) kb->ctx, full, &n) != 1 || n < HC_DIGEST_LEN)
		elog(ERROR, "could not compute a cache key");
	memcpy(digest, full, HC_DIGEST_LEN);
}

/*
 * Finish a key: its digest, and the Redis key (prefix + 32 hex digits)
 * printed into keytext, which has room for HC_KEY_MAXLEN.
 */
void
HcKeyFinish(HcKeyBuilder *kb, uint8 *digest, char *keytext)
{
	static const char hex[] = "0123456789abcdef";
	int			n;

	HcKeyDigest(kb, digest);
	n = strlcpy(keytext, hc_key_prefix, HC_KEY_MAXLEN - 2 * HC_DIGEST_LEN);
	n = Min(n, HC_KEY_MAXLEN - 2 * HC_DIGEST_LEN - 1);
	for (int i = 0; i < HC_DIGEST_LEN; i++)
	{
		keytext[n++] = hex[digest[i] >> 4];
		keytext[n++] = hex[digest[i] & 0xf];
	}
	keytext[n] = '\0';
}
