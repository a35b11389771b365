/*-------------------------------------------------------------------------
 *
 * fuzz_value.c
 *	  libFuzzer harness for the stored value format (extension/value.c).
 *
 * The first byte of an input picks a mode:
 *
 *	 even: the rest is what Redis handed back.  HcValueDecode must treat it
 *		   as a safe miss (no crash, no read past its end, no error), and
 *		   anything it accepts must be exactly what HcValueEncode writes for
 *		   the decoded answer (so nobody without the key gets a value in).
 *		   It is decoded under a fixed digest and under the digest it claims.
 *
 *	 odd:  the rest describes an answer (flags, created_at, compute_us,
 *		   ttl_ms, digest, optional value_secret, short or over 1000 bytes,
 *		   payload) and a tampering:
 *		   encode, then decode must give back exactly the answer; a flipped
 *		   bit anywhere, a truncation, an extra byte, another digest or
 *		   another secret (first or last byte changed) must each be
 *		   rejected.  With HC_FUZZ_STRICT=1 also for secrets over 1023
 *		   bytes, which HcValueKey truncates.
 *
 *-------------------------------------------------------------------------
 */
#include "shim.h"

#include "common/cryptohash.h"
#include "common/hmac.h"
#include "common/sha2.h"

/* a reader over the fuzz input */
typedef struct Reader
{
	const uint8 *p;
	size_t		left;
} Reader;

static uint8
rd_u8(Reader *r)
{
	uint8		v = 0;

	if (r->left > 0)
	{
		v = *r->p++;
		r->left--;
	}
	return v;
}

static uint32
rd_u32(Reader *r)
{
	uint32		v = 0;

	for (int i = 0; i < 4; i++)
		v |= ((uint32) rd_u8(r)) << (8 * i);
	return v;
}

static uint64
rd_u64(Reader *r)
{
	return ((uint64) rd_u32(r)) | (((uint64) rd_u32(r)) << 32);
}

static bool strict = false;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	shim_init();
	strict = getenv("HC_FUZZ_STRICT") != NULL && strcmp(getenv("HC_FUZZ_STRICT"), "1") == 0;
	return 0;
}

static const uint8 fixed_digest[HC_DIGEST_LEN] = {
	0xde, 0xad, 0xbe, 0xef, 0x00, 0x11, 0x22, 0x33,
	0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb
};

/* decode in an exact-size copy, so that ASan catches any over-read */
static bool
decode_copy(const uint8 *digest, const char *buf, Size len, HcValue *out,
			char **copy_out)
{
	char	   *copy = palloc(Max(len, 1));
	bool		ok;

	if (len > 0)
		memcpy(copy, buf, len);
	memset(out, 0x5a, sizeof(*out));
	ok = HcValueDecode(digest, copy, len, out);
	if (copy_out)
		*copy_out = copy;
	return ok;
}

static void
check_accepted_is_canonical(const uint8 *digest, const char *buf, Size len,
							const HcValue *v, const char *copy)
{
	char	   *again;
	Size		again_len;

	SHIM_CHECK(len >= HC_VALUE_HEADER_LEN, "accepted %zu bytes", len);
	SHIM_CHECK(v->len == len - HC_VALUE_HEADER_LEN, "len %u of %zu bytes", v->len, len);
	SHIM_CHECK(v->data == copy + HC_VALUE_HEADER_LEN, "data does not point into the buffer");
	SHIM_CHECK(!v->isnull || v->len == 0, "a NULL answer with a payload");
	again = HcValueEncode(digest, v, &again_len);
	SHIM_CHECK(again_len == len && memcmp(again, buf, len) == 0,
			   "accepted bytes differ from the encoding of what they decode to");
	pfree(again);
}

/* ---------- mode: arbitrary bytes ---------- */

static void
fuzz_raw(const uint8 *data, size_t size)
{
	HcValue		v;
	char	   *copy;
	bool		raised;
	volatile bool ok = false;

	/* under a digest the bytes do not claim */
	raised = SHIM_CATCH_ERROR(ok = decode_copy(fixed_digest, (const char *) data, size, &v, &copy));
	SHIM_CHECK(!raised, "HcValueDecode raised an error: %s", shim_last_error());
	if (ok)
		check_accepted_is_canonical(fixed_digest, (const char *) data, size, &v, copy);
	if (ok && getenv("HC_FUZZ_VERBOSE"))
		fprintf(stderr, "accepted %zu bytes under the fixed digest\n", size);

	/* under the digest they claim (gets past the digest check to the MAC) */
	if (size >= 48)
	{
		uint8		claimed[HC_DIGEST_LEN];

		memcpy(claimed, data + 32, HC_DIGEST_LEN);
		ok = false;
		raised = SHIM_CATCH_ERROR(ok = decode_copy(claimed, (const char *) data, size, &v, &copy));
		SHIM_CHECK(!raised, "HcValueDecode raised an error: %s", shim_last_error());
		if (ok)
			check_accepted_is_canonical(claimed, (const char *) data, size, &v, copy);
		if (ok && getenv("HC_FUZZ_VERBOSE"))
			fprintf(stderr, "accepted %zu bytes under the digest they claim\n", size);
	}

	/* a NULL buffer, as a failed read might hand over */
	SHIM_CHECK(!HcValueDecode(fixed_digest, NULL, size, &v), "decoded a NULL buffer");
}

/* ---------- mode: round trip and tampering ---------- */

static void
fuzz_roundtrip(const uint8 *data, size_t size)
{
	Reader		r = {data, size};
	uint8		flags = rd_u8(&r);
	HcValue		in;
	HcValue		out;
	uint8		digest[HC_DIGEST_LEN];
	uint8		other[HC_DIGEST_LEN];
	char		secret[1200];
	int			secret_len;
	uint32		flip_at;
	uint32		cut;
	char	   *enc;
	Size		enc_len;
	char	   *copy;
	char	   *tampered;
	char	   *saved_secret = hc_value_secret;

	memset(&in, 0, sizeof(in));
	in.isnull = (flags & 1) != 0;
	in.created_at = (TimestampTz) rd_u64(&r);
	in.compute_us = rd_u32(&r);
	in.ttl_ms = rd_u32(&r);
	for (int i = 0; i < HC_DIGEST_LEN; i++)
		digest[i] = rd_u8(&r);
	flip_at = rd_u32(&r);
	cut = rd_u8(&r);

	/*
	 * bit 1: derive the HMAC key from a value_secret of the input; bit 2:
	 * make it long (1000 to 1130 bytes, the input's bytes repeated)
	 */
	secret_len = 0;
	if (flags & 2)
	{
		int			n = rd_u8(&r) % 64;
		int			total = (flags & 4) ? 1000 + rd_u8(&r) % 131 : n;

		for (int i = 0; i < n; i++)
		{
			char		c = (char) rd_u8(&r);

			if (c == '\0')
				c = 'x';
			secret[secret_len++] = c;
		}
		for (; secret_len < total; secret_len++)
			secret[secret_len] = (char) ('a' + secret_len % 26);
	}
	secret[secret_len] = '\0';
	hc_value_secret = (flags & 2) ? secret : NULL;

	in.len = (uint32) r.left;
	in.data = palloc(Max(r.left, 1));
	memcpy(in.data, r.p, r.left);
	if (in.isnull)
		in.len = 0;

	enc = HcValueEncode(digest, &in, &enc_len);
	SHIM_CHECK(enc_len == HC_VALUE_HEADER_LEN + in.len, "encoded length %zu", enc_len);

	/* the round trip */
	SHIM_CHECK(decode_copy(digest, enc, enc_len, &out, &copy), "a value just encoded does not decode");
	SHIM_CHECK(out.isnull == in.isnull && out.len == in.len &&
			   out.created_at == in.created_at && out.compute_us == in.compute_us &&
			   out.ttl_ms == in.ttl_ms &&
			   (in.len == 0 || memcmp(out.data, in.data, in.len) == 0),
			   "the round trip changed the answer");

	/* a single flipped bit anywhere (header, MAC or payload) */
	tampered = palloc(enc_len);
	memcpy(tampered, enc, enc_len);
	flip_at %= (uint32) (enc_len * 8);
	tampered[flip_at / 8] ^= (char) (1 << (flip_at % 8));
	SHIM_CHECK(!decode_copy(digest, tampered, enc_len, &out, NULL),
			   "bit %u flipped and the value still decodes", flip_at);

	/* truncated, or one byte longer */
	cut = 1 + cut % enc_len;
	SHIM_CHECK(!decode_copy(digest, enc, enc_len - cut, &out, NULL),
			   "truncated by %u and still decodes", cut);
	{
		char	   *longer = palloc(enc_len + 1);

		memcpy(longer, enc, enc_len);
		longer[enc_len] = (char) flags;
		SHIM_CHECK(!decode_copy(digest, longer, enc_len + 1, &out, NULL),
				   "one byte appended and it still decodes");
	}

	/* another key's digest */
	memcpy(other, digest, HC_DIGEST_LEN);
	other[flip_at % HC_DIGEST_LEN] ^= (uint8) (1 << (cut % 8));
	SHIM_CHECK(!decode_copy(other, enc, enc_len, &out, NULL),
			   "a value decodes under another key's digest");

	/* another HMAC key: the shared random key vs the value_secret */
	if ((flags & 2) && secret_len > 0)
	{
		char		first = secret[0];

		/* (an empty value_secret means the random key, like an unset one) */
		hc_value_secret = NULL;
		SHIM_CHECK(!decode_copy(digest, enc, enc_len, &out, NULL),
				   "a value written under value_secret decodes under the random key");
		secret[0] ^= 0x20;
		if (secret[0] == '\0')
			secret[0] = '!';
		hc_value_secret = secret;
		SHIM_CHECK(!decode_copy(digest, enc, enc_len, &out, NULL),
				   "a value decodes under another value_secret");

		/*
		 * The last byte changed instead.  HcValueKey keeps only the first
		 * 1023 bytes of a secret, so with a longer one this is checked only
		 * with HC_FUZZ_STRICT=1.
		 */
		secret[0] = first;
		if (secret_len < 1024 || strict)
		{
			secret[secret_len - 1] = secret[secret_len - 1] == 'z' ? 'y' : 'z';
			SHIM_CHECK(!decode_copy(digest, enc, enc_len, &out, NULL),
					   "a value decodes under a value_secret of %d bytes differing in its last byte",
					   secret_len);
		}
	}
	else
	{
		hc_value_secret = "fuzz-other-secret";
		SHIM_CHECK(!decode_copy(digest, enc, enc_len, &out, NULL),
				   "a value written under the random key decodes under a value_secret");
	}

	hc_value_secret = saved_secret;
}

int
LLVMFuzzerTestOneInput(const uint8 *data, size_t size)
{
	if (size == 0)
		return 0;
	shim_begin();
	if ((data[0] & 1) == 0)
		fuzz_raw(data + 1, size - 1);
	else
		fuzz_roundtrip(data + 1, size - 1);
	shim_end();
	return 0;
}
