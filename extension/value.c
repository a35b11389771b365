/*-------------------------------------------------------------------------
 *
 * value.c
 *	  The format of a stored answer.
 *
 * Whatever is read back from Redis may have been written by anything: an
 * older or newer version of this extension, another program using the same
 * Redis, a truncated write, an operator.  Every stored answer therefore
 * carries a fixed header, and anything that does not decode exactly is a
 * miss, never an error.
 *
 *	 offset  size  field
 *	 0		 4	   magic "HCV" and format version 1
 *	 4		 1	   flags (bit 0: the answer is SQL NULL)
 *	 5		 3	   zero
 *	 8		 4	   payload length
 *	 12		 4	   CRC-32C of bytes 16 .. end
 *	 16		 8	   created_at (TimestampTz, microseconds)
 *	 24		 4	   compute_us, the time the fill took
 *	 28		 4	   ttl_ms
 *	 32		 16	   digest of the key this answer was stored under
 *	 48		 ...   payload (the answer's text)
 *
 * Integers are little-endian.  The digest ties a value to its key, so a value
 * copied or renamed to another key does not decode.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "port/pg_crc32c.h"

#include "housing_cache.h"

#define HC_VALUE_MAGIC		"HCV\x01"
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

static pg_crc32c
value_crc(const char *buf, Size len)
{
	pg_crc32c	crc;

	INIT_CRC32C(crc);
	COMP_CRC32C(crc, buf + 16, len - 16);
	FIN_CRC32C(crc);
	return crc;
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
	put_u32(buf + 8, (uint32) payload);
	put_u64(buf + 16, (uint64) value->created_at);
	put_u32(buf + 24, value->compute_us);
	put_u32(buf + 28, value->ttl_ms);
	memcpy(buf + 32, digest, HC_DIGEST_LEN);
	if (payload > 0)
		memcpy(buf + HC_VALUE_HEADER_LEN, value->data, payload);
	put_u32(buf + 12, value_crc(buf, *len));
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

	if (buf == NULL || len < HC_VALUE_HEADER_LEN)
		return false;
	if (memcmp(buf, HC_VALUE_MAGIC, 4) != 0)
		return false;
	flags = (uint8) buf[4];
	if ((flags & ~HC_FLAG_NULL) != 0 || buf[5] || buf[6] || buf[7])
		return false;
	payload = get_u32(buf + 8);
	if ((Size) payload != len - HC_VALUE_HEADER_LEN)
		return false;
	if ((flags & HC_FLAG_NULL) && payload != 0)
		return false;
	if (memcmp(buf + 32, digest, HC_DIGEST_LEN) != 0)
		return false;
	if (get_u32(buf + 12) != value_crc(buf, len))
		return false;

	value->isnull = (flags & HC_FLAG_NULL) != 0;
	value->len = payload;
	value->data = (char *) buf + HC_VALUE_HEADER_LEN;
	value->created_at = (TimestampTz) get_u64(buf + 16);
	value->compute_us = get_u32(buf + 24);
	value->ttl_ms = get_u32(buf + 28);
	return true;
}
