/*-------------------------------------------------------------------------
 *
 * fuzz_key.c
 *	  libFuzzer harness for key canonicalization (extension/key.c):
 *	  HcKeyBegin / HcKeyInit / HcKeyAdd / HcKeyDigest / HcKeyFinish, and
 *	  HcTagSlot (extension/tag.c).
 *
 * Keys are either built in a buffer of key material (HcKeyInit(StringInfo))
 * or digested as they are built (HcKeyBuilder, streaming into an OpenSSL
 * SHA-256 context); the Makefile defines HC_FUZZ_KEY_BUILDER for the
 * latter.  Then the bytes fed to the digest are captured by interposing
 * EVP_DigestUpdate, so the same checks apply to the stream.
 *
 * The input describes a list of key components (each NULL or a byte
 * string) and a second list: either an edit of the first (a component
 * boundary moved, a component split or merged with the next, NULL turned
 * into '' or back, two components swapped, one byte changed, the last one
 * dropped) or an independent list.  Checked:
 *
 *	 - injectivity of the framing: the key digests (and the key material)
 *	   of two lists are equal exactly when the lists are equal;
 *	 - the material parses back into exactly the namespace HcKeyInit wrote
 *	   followed by its list (a proof of injectivity for that input, not
 *	   only for that pair);
 *	 - HcKeyFinish: the digest is the truncated SHA-256 of the material,
 *	   the key text is the (truncated) prefix then 32 lower-case hex digits
 *	   and fits HC_KEY_MAXLEN, whatever the prefix;
 *	 - HcTagSlot of any tag is below nslots.
 *
 *-------------------------------------------------------------------------
 */
#include "shim.h"

#include "common/cryptohash.h"
#include "common/sha2.h"

#ifdef HC_FUZZ_KEY_BUILDER
#include <dlfcn.h>
#include <openssl/evp.h>

/* while set, every byte fed to a SHA-256 context is appended here */
static StringInfo capture = NULL;

int
EVP_DigestUpdate(EVP_MD_CTX *ctx, const void *d, size_t cnt)
{
	static int	(*real) (EVP_MD_CTX *, const void *, size_t) = NULL;

	if (real == NULL)
		real = (int (*) (EVP_MD_CTX *, const void *, size_t)) dlsym(RTLD_NEXT, "EVP_DigestUpdate");
	SHIM_CHECK(real != NULL, "no EVP_DigestUpdate in libcrypto");
	if (capture != NULL && cnt > 0)
		appendBinaryStringInfo(capture, d, (int) cnt);
	return real(ctx, d, cnt);
}
#endif

#define MAX_COMPONENTS 24

typedef struct Component
{
	bool		isnull;
	int			len;
	const char *data;
} Component;

typedef struct KeyList
{
	int			n;
	Component	c[MAX_COMPONENTS + 1];
} KeyList;

static void
parse_list(const uint8 **p, size_t *left, KeyList *l)
{
	l->n = 0;
	while (*left > 0 && l->n < MAX_COMPONENTS)
	{
		uint8		h = **p;
		Component  *c = &l->c[l->n++];

		(*p)++;
		(*left)--;
		if (h == 0xff)
		{
			c->isnull = true;
			c->len = 0;
			c->data = NULL;
			continue;
		}
		if (h == 0xfe)			/* end of this list */
		{
			l->n--;
			break;
		}
		c->isnull = false;
		c->len = Min((size_t) (h & 0x7f), *left);
		c->data = (const char *) *p;
		*p += c->len;
		*left -= c->len;
	}
}

static bool
list_equal(const KeyList *a, const KeyList *b)
{
	if (a->n != b->n)
		return false;
	for (int i = 0; i < a->n; i++)
	{
		if (a->c[i].isnull != b->c[i].isnull || a->c[i].len != b->c[i].len)
			return false;
		if (a->c[i].len > 0 && memcmp(a->c[i].data, b->c[i].data, a->c[i].len) != 0)
			return false;
	}
	return true;
}

/*
 * Build the key of a list: its material (every byte the digest covers),
 * digest and key text.  With namespace = false, only the components
 * (HcKeyBegin, for definitions) and no key text.
 */
typedef struct Key
{
	StringInfoData material;
	uint8		digest[HC_DIGEST_LEN];
	char		text[HC_KEY_MAXLEN + 16];
} Key;

static void
build_key(const KeyList *l, bool namespace, const char *prefix, Key *k)
{
	char	   *saved = hc_key_prefix;

	initStringInfo(&k->material);
	memset(k->text, 0x7f, sizeof(k->text));
	hc_key_prefix = (char *) prefix;
#ifdef HC_FUZZ_KEY_BUILDER
	{
		HcKeyBuilder kb;

		capture = &k->material;
		if (namespace)
			HcKeyInit(&kb);
		else
			HcKeyBegin(&kb);
		for (int i = 0; i < l->n; i++)
			HcKeyAdd(&kb, l->c[i].isnull ? NULL : l->c[i].data, l->c[i].len);
		/* the builder gathers small components: the last reach the digest here */
		if (namespace)
			HcKeyFinish(&kb, k->digest, k->text);
		else
			HcKeyDigest(&kb, k->digest);
		capture = NULL;
	}
#else
	{
		if (namespace)
			HcKeyInit(&k->material);
		for (int i = 0; i < l->n; i++)
			HcKeyAdd(&k->material, l->c[i].isnull ? NULL : l->c[i].data, l->c[i].len);
		if (namespace)
			HcKeyFinish(&k->material, k->digest, k->text);
		else
			HcDigest(k->material.data, k->material.len, k->digest);
	}
#endif
	hc_key_prefix = saved;
}

/* the material HcKeyInit writes before the components */
static StringInfo
namespace_material(void)
{
	static StringInfoData ns;
	static bool done = false;

	if (!done)
	{
		KeyList		empty = {0};
		Key			k;
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		build_key(&empty, true, "", &k);
		ns = k.material;
		MemoryContextSwitchTo(old);
		done = true;
	}
	return &ns;
}

/* parse key material (after skip bytes) back into components */
static bool
unframe(const StringInfoData *buf, int skip, KeyList *out)
{
	int			pos = skip;

	out->n = 0;
	while (pos < buf->len)
	{
		int32		n;
		Component  *c;

		if (out->n > MAX_COMPONENTS || buf->len - pos < 4)
			return false;
		memcpy(&n, buf->data + pos, 4);
		pos += 4;
		c = &out->c[out->n++];
		if (n == -1)
		{
			c->isnull = true;
			c->len = 0;
			c->data = NULL;
			continue;
		}
		if (n < 0 || n > buf->len - pos)
			return false;
		c->isnull = false;
		c->len = n;
		c->data = buf->data + pos;
		pos += n;
	}
	return pos == buf->len;
}

static void
check_material(const Key *k, const KeyList *l, bool namespace)
{
	StringInfo	ns = namespace_material();
	int			skip = namespace ? ns->len : 0;
	KeyList		back;

	if (namespace)
		SHIM_CHECK(k->material.len >= ns->len && memcmp(k->material.data, ns->data, ns->len) == 0,
				   "key material does not start with the namespace");
	SHIM_CHECK(unframe(&k->material, skip, &back) && list_equal(l, &back),
			   "key material does not parse back into its %d components", l->n);
}

/* an edit of a, chosen by op and arg */
static void
edit_list(const KeyList *a, KeyList *b, uint8 op, uint8 arg, char *scratch)
{
	int			i;

	*b = *a;
	if (a->n == 0)
	{
		/* add one component, empty or NULL */
		b->n = 1;
		b->c[0].isnull = (arg & 1) != 0;
		b->c[0].len = 0;
		b->c[0].data = b->c[0].isnull ? NULL : "";
		return;
	}
	i = arg % a->n;
	switch (op % 7)
	{
		case 0:					/* move the boundary between i and i+1 */
		case 1:					/* merge i and i+1 */
			if (i + 1 < a->n && !a->c[i].isnull && !a->c[i + 1].isnull)
			{
				int			total = a->c[i].len + a->c[i + 1].len;
				int			left = (op % 7 == 1) ? total : (arg >> 3) % (total + 1);

				memcpy(scratch, a->c[i].data, a->c[i].len);
				memcpy(scratch + a->c[i].len, a->c[i + 1].data, a->c[i + 1].len);
				b->c[i].len = left;
				b->c[i].data = scratch;
				if (op % 7 == 1)
				{
					memmove(&b->c[i + 1], &b->c[i + 2], sizeof(Component) * (a->n - i - 2));
					b->n--;
				}
				else
				{
					b->c[i + 1].len = total - left;
					b->c[i + 1].data = scratch + left;
				}
			}
			break;
		case 2:					/* split i in two */
			if (!a->c[i].isnull && a->n < MAX_COMPONENTS)
			{
				int			at = (arg >> 3) % (a->c[i].len + 1);

				memmove(&b->c[i + 2], &b->c[i + 1], sizeof(Component) * (a->n - i - 1));
				b->c[i].len = at;
				b->c[i + 1].isnull = false;
				b->c[i + 1].len = a->c[i].len - at;
				b->c[i + 1].data = a->c[i].data + at;
				b->n++;
			}
			break;
		case 3:					/* NULL <-> '' */
			b->c[i].isnull = !a->c[i].isnull;
			b->c[i].len = 0;
			b->c[i].data = b->c[i].isnull ? NULL : "";
			break;
		case 4:					/* swap i and the last */
			b->c[i] = a->c[a->n - 1];
			b->c[a->n - 1] = a->c[i];
			break;
		case 5:					/* one byte changed */
			if (!a->c[i].isnull && a->c[i].len > 0)
			{
				memcpy(scratch, a->c[i].data, a->c[i].len);
				scratch[(arg >> 3) % a->c[i].len] ^= 0x01;
				b->c[i].data = scratch;
			}
			break;
		case 6:					/* drop the last */
			b->n--;
			break;
	}
}

static void
check_finish(const Key *k, const char *prefix)
{
	uint8		full[PG_SHA256_DIGEST_LENGTH];
	pg_cryptohash_ctx *ctx;
	size_t		plen = Min(strlen(prefix), (size_t) (HC_KEY_MAXLEN - 2 * HC_DIGEST_LEN - 1));
	const char *key = k->text;

	ctx = pg_cryptohash_create(PG_SHA256);
	SHIM_CHECK(ctx != NULL && pg_cryptohash_init(ctx) == 0 &&
			   pg_cryptohash_update(ctx, (const uint8 *) k->material.data, k->material.len) == 0 &&
			   pg_cryptohash_final(ctx, full, sizeof(full)) == 0, "sha256");
	pg_cryptohash_free(ctx);
	SHIM_CHECK(memcmp(k->digest, full, HC_DIGEST_LEN) == 0, "digest is not SHA-256 of the material");

	SHIM_CHECK(strlen(key) == plen + 2 * HC_DIGEST_LEN, "key length %zu, prefix %zu", strlen(key), plen);
	SHIM_CHECK(strlen(key) < HC_KEY_MAXLEN, "key does not fit HC_KEY_MAXLEN");
	SHIM_CHECK(memcmp(key, prefix, plen) == 0, "key does not start with the prefix");
	for (int i = 0; i < HC_DIGEST_LEN; i++)
	{
		static const char hex[] = "0123456789abcdef";

		SHIM_CHECK(key[plen + 2 * i] == hex[k->digest[i] >> 4] &&
				   key[plen + 2 * i + 1] == hex[k->digest[i] & 0xf], "hex digit %d", i);
	}
	/* nothing written past the terminator */
	for (size_t i = strlen(key) + 1; i < sizeof(k->text); i++)
		SHIM_CHECK(key[i] == 0x7f, "HcKeyFinish wrote byte %zu", i);
}

int
LLVMFuzzerTestOneInput(const uint8 *data, size_t size)
{
	const uint8 *p = data;
	size_t		left = size;
	KeyList		a;
	KeyList		b;
	Key			ka;
	Key			kb;
	uint8		op;
	uint8		arg;
	char		prefix[128];
	int			plen;
	char		scratch[256];

	if (size < 3)
		return 0;
	shim_begin();

	op = *p++;
	arg = *p++;
	left -= 2;

	/* the key prefix: up to 100 bytes, no NUL */
	plen = Min((size_t) (op >> 4) * 7, left);
	for (int i = 0; i < plen; i++)
		prefix[i] = p[i] ? (char) p[i] : '_';
	prefix[plen] = '\0';

	parse_list(&p, &left, &a);
	if ((op & 0x08) && left > 0)
		parse_list(&p, &left, &b);	/* an independent second list */
	else
		edit_list(&a, &b, op, arg, scratch);

	{
		bool		ns = (op & 0x04) == 0;	/* HcKeyInit, or HcKeyBegin */
		bool		equal = list_equal(&a, &b);

		build_key(&a, ns, prefix, &ka);
		build_key(&b, ns, prefix, &kb);
		check_material(&ka, &a, ns);
		check_material(&kb, &b, ns);
		SHIM_CHECK(equal == (ka.material.len == kb.material.len &&
							 memcmp(ka.material.data, kb.material.data, ka.material.len) == 0),
				   "framing is not injective: lists of %d and %d components, equal=%d",
				   a.n, b.n, (int) equal);
		SHIM_CHECK(equal == (memcmp(ka.digest, kb.digest, HC_DIGEST_LEN) == 0),
				   "key digests of lists of %d and %d components: equal lists %d, equal digests %d",
				   a.n, b.n, (int) equal, (int) !equal);
		if (ns)
			check_finish(&ka, prefix);
	}

	/* the generation slot of each component read as a tag */
	for (int i = 0; i < a.n; i++)
	{
		uint32		slot = HcTagSlot(a.c[i].data ? a.c[i].data : "", a.c[i].len);

		SHIM_CHECK(slot < hc_shared->nslots, "slot %u of %u", slot, hc_shared->nslots);
	}

	shim_end();
	return 0;
}
