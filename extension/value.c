/*-------------------------------------------------------------------------
 *
 * value.c
 *	  The format of a stored answer.
 *
 * Whatever is read back from Redis may have been written by anything: an
 * older or newer version of this extension, another program using the same
 * Redis, a truncated write, an operator -- or an attacker who can write to
 * Redis.  Every stored answer therefore carries a fixed header and an HMAC,
 * and anything that does not verify exactly is a miss, never an error.
 *
 *	 offset  size  field
 *	 0		 4	   magic "HCV" and format version 2
 *	 4		 1	   flags (bit 0: the answer is SQL NULL)
 *	 5		 7	   zero
 *	 12		 4	   payload length
 *	 16		 8	   created_at (TimestampTz, microseconds)
 *	 24		 4	   compute_us, the time the fill took
 *	 28		 4	   ttl_ms
 *	 32		 16	   digest of the key this answer was stored under
 *	 48		 16	   HMAC-SHA256 of bytes 0..47 and the payload, truncated
 *	 64		 ...   payload (the answer's text)
 *
 * Integers are little-endian.  The digest ties a value to its key, so a value
 * copied to another key does not verify; the HMAC's key is a secret only the
 * server knows (see HcValueKey), so a value forged by whoever can write to
 * Redis does not verify either.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/cryptohash.h"
#include "common/hmac.h"
#include "common/sha2.h"
#include "utils/memutils.h"

#include <sys/stat.h>

#include "housing_cache.h"

#define HC_VALUE_MAGIC		"HCV\x02"
#define HC_MAC_OFFSET		48
#define HC_MAC_LEN			16
#define HC_FLAG_NULL		0x01

static inline void
put_u32(char *p, uint32 v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (char) ((v >> (8 * i)) & 0xff);
}

static inline void
put_u64(char *p, uint64 v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (char) ((v >> (8 * i)) & 0xff);
}

static inline uint32
get_u32(const char *p)
{
	uint32		v = 0;

	for (int i = 0; i < 4; i++)
		v |= ((uint32) (uint8) p[i]) << (8 * i);
	return v;
}

static inline uint64
get_u64(const char *p)
{
	uint64		v = 0;

	for (int i = 0; i < 8; i++)
		v |= ((uint64) (uint8) p[i]) << (8 * i);
	return v;
}

/*
 * HMAC of a value: its header up to the MAC, then its payload.
 */
static void
value_mac(const char *buf, Size len, uint8 *mac)
{
	pg_hmac_ctx *ctx = pg_hmac_create(PG_SHA256);
	uint8		full[PG_SHA256_DIGEST_LENGTH];
	const uint8 *key;
	int			keylen;

	HcValueKey(&key, &keylen);
	if (ctx == NULL ||
		pg_hmac_init(ctx, key, keylen) < 0 ||
		pg_hmac_update(ctx, (const uint8 *) buf, HC_MAC_OFFSET) < 0 ||
		pg_hmac_update(ctx, (const uint8 *) buf + HC_VALUE_HEADER_LEN,
					   len - HC_VALUE_HEADER_LEN) < 0 ||
		pg_hmac_final(ctx, full, sizeof(full)) < 0)
	{
		const char *err = ctx ? pg_hmac_error(ctx) : "out of memory";

		pg_hmac_free(ctx);
		elog(ERROR, "could not compute the HMAC of a cached value: %s", err);
	}
	pg_hmac_free(ctx);
	memcpy(mac, full, HC_MAC_LEN);
}

/*
 * Encode an answer stored under the key with this digest; returns a palloc'd
 * buffer and its length.
 */
char *
HcValueEncode(const uint8 *digest, const HcValue *value, Size *len)
{
	Size		payload = value->isnull ? 0 : value->len;
	char	   *buf;

	*len = HC_VALUE_HEADER_LEN + payload;
	buf = palloc0(*len);
	memcpy(buf, HC_VALUE_MAGIC, 4);
	buf[4] = value->isnull ? HC_FLAG_NULL : 0;
	put_u32(buf + 12, (uint32) payload);
	put_u64(buf + 16, (uint64) value->created_at);
	put_u32(buf + 24, value->compute_us);
	put_u32(buf + 28, value->ttl_ms);
	memcpy(buf + 32, digest, HC_DIGEST_LEN);
	if (payload > 0)
		memcpy(buf + HC_VALUE_HEADER_LEN, value->data, payload);
	value_mac(buf, *len, (uint8 *) buf + HC_MAC_OFFSET);
	return buf;
}

/*
 * Decode a value read back for the key with this digest.  Returns false for
 * anything that is not exactly a value this format wrote for this key; then
 * *value is untouched.  On success value->data points into buf.
 */
bool
HcValueDecode(const uint8 *digest, const char *buf, Size len, HcValue *value)
{
	uint32		payload;
	uint8		flags;
	uint8		mac[HC_MAC_LEN];

	if (buf == NULL || len < HC_VALUE_HEADER_LEN)
		return false;
	if (memcmp(buf, HC_VALUE_MAGIC, 4) != 0)
		return false;
	flags = (uint8) buf[4];
	if ((flags & ~HC_FLAG_NULL) != 0)
		return false;
	for (int i = 5; i < 12; i++)
		if (buf[i] != 0)
			return false;
	payload = get_u32(buf + 12);
	if ((Size) payload != len - HC_VALUE_HEADER_LEN)
		return false;
	if ((flags & HC_FLAG_NULL) && payload != 0)
		return false;
	if (memcmp(buf + 32, digest, HC_DIGEST_LEN) != 0)
		return false;
	value_mac(buf, len, mac);
	if (timingsafe_bcmp(mac, buf + HC_MAC_OFFSET, HC_MAC_LEN) != 0)
		return false;

	value->isnull = (flags & HC_FLAG_NULL) != 0;
	value->len = payload;
	value->data = (char *) buf + HC_VALUE_HEADER_LEN;
	value->varlena = NULL;
	value->created_at = (TimestampTz) get_u64(buf + 16);
	value->compute_us = get_u32(buf + 24);
	value->ttl_ms = get_u32(buf + 28);
	return true;
}

/*
 * The HMAC key: SHA-256 of the secret in housing_cache.value_secret_file or,
 * failing that, housing_cache.value_secret; when neither is set, the random
 * key drawn when shared memory was created (answers from before a restart
 * are unreachable anyway: the epoch is in every key).  A file is read again
 * when it changes.  An unreadable file is an error: answers must not be
 * stored under a key the operator did not mean.
 */
void
HcValueKey(const uint8 **key, int *len)
{
	static char derived_from[1024];
	static uint8 derived[PG_SHA256_DIGEST_LENGTH];
	static struct stat derived_stat;
	static bool have_derived = false;
	static char *derived_setting = NULL;	/* the value_secret it came from */
	char		secret[1024];
	const char *source;
	struct stat st;

	if (hc_value_secret_file && hc_value_secret_file[0] != '\0')
	{
		const char *err;

		if (stat(hc_value_secret_file, &st) != 0)
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not read housing_cache.value_secret_file \"%s\": %m",
							hc_value_secret_file)));
		if (have_derived && strcmp(derived_from, hc_value_secret_file) == 0 &&
			st.st_mtime == derived_stat.st_mtime && st.st_size == derived_stat.st_size &&
			st.st_ino == derived_stat.st_ino)
		{
			*key = derived;
			*len = sizeof(derived);
			return;
		}
		if (!HcReadSecretFile(hc_value_secret_file, secret, sizeof(secret), &err))
			ereport(ERROR,
					(errcode(ERRCODE_CONFIG_FILE_ERROR),
					 errmsg("housing_cache.value_secret_file \"%s\": %s",
							hc_value_secret_file, err)));
		source = hc_value_secret_file;
		derived_stat = st;
	}
	else if (hc_value_secret != NULL && hc_value_secret[0] != '\0')
	{
		if (have_derived && derived_from[0] == '\0' && derived_setting != NULL &&
			strcmp(derived_setting, hc_value_secret) == 0)
		{
			*key = derived;
			*len = sizeof(derived);
			return;
		}
		strlcpy(secret, hc_value_secret, sizeof(secret));
		source = "";
	}
	else
	{
		*key = hc_shared->value_key;
		*len = sizeof(hc_shared->value_key);
		return;
	}

	{
		pg_cryptohash_ctx *ctx = pg_cryptohash_create(PG_SHA256);

		if (ctx == NULL || pg_cryptohash_init(ctx) < 0 ||
			pg_cryptohash_update(ctx, (const uint8 *) secret, strlen(secret)) < 0 ||
			pg_cryptohash_final(ctx, derived, sizeof(derived)) < 0)
		{
			pg_cryptohash_free(ctx);
			explicit_bzero(secret, sizeof(secret));
			elog(ERROR, "could not derive the HMAC key");
		}
		pg_cryptohash_free(ctx);
	}
	if (derived_setting != NULL)
	{
		explicit_bzero(derived_setting, strlen(derived_setting));
		pfree(derived_setting);
		derived_setting = NULL;
	}
	if (source[0] == '\0')
		derived_setting = MemoryContextStrdup(TopMemoryContext, secret);
	explicit_bzero(secret, sizeof(secret));
	strlcpy(derived_from, source, sizeof(derived_from));
	have_derived = true;
	*key = derived;
	*len = sizeof(derived);
}
