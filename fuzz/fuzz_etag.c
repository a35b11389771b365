/*-------------------------------------------------------------------------
 *
 * fuzz_etag.c
 *	  libFuzzer harness for If-None-Match parsing: HcEtagMatches() of
 *	  extension/conditional.c (linked in).
 *
 * Input: 16 bytes of key digest, then the header value (up to the first
 * NUL, as text_to_cstring would give it).  The key is the prefix
 * housing_cache.key_prefix and the digest in hex, as HcKeyFinish prints it;
 * its entity tag is the hex in double quotes.  Checked, against an
 * independent parser of RFC 9110's If-None-Match grammar:
 *
 *	 - no false positive: a match means the header holds the entity tag,
 *	   quoted, as one of its elements (never from a substring, a prefix or
 *	   the key prefix);
 *	 - no false negative on a well-formed header: a valid #entity-tag list
 *	   that contains the tag (weak or strong) matches;
 *	 - no read outside the header, no error, termination (libFuzzer's
 *	   timeout).
 *
 *-------------------------------------------------------------------------
 */
#include "shim.h"

/*
 * RFC 9110: If-None-Match = "*" / #entity-tag; entity-tag = [ "W/" ]
 * DQUOTE *etagc DQUOTE; etagc = %x21 / %x23-7E / %x80-FF; list elements are
 * separated by OWS "," OWS, and empty elements are allowed.  Returns
 * whether the header is well formed; *contains says whether one element's
 * opaque tag is exactly "hex".
 */
static bool
rfc_parse(const char *h, const char *hex, bool *contains)
{
	const unsigned char *p = (const unsigned char *) h;
	bool		any = false;

	*contains = false;
	for (;;)
	{
		const unsigned char *start;

		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (*p == '\0')
			return any;
		if (p[0] == 'W' && p[1] == '/')
			p += 2;
		if (*p != '"')
			return false;
		start = ++p;
		while (*p == 0x21 || (*p >= 0x23 && *p <= 0x7e) || *p >= 0x80)
			p++;
		if (*p != '"')
			return false;
		if (p - start == 2 * HC_DIGEST_LEN && memcmp(start, hex, 2 * HC_DIGEST_LEN) == 0)
			*contains = true;
		p++;
		any = true;
		/* then OWS and a comma, or the end */
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0')
			return true;
		if (*p != ',')
			return false;
	}
}

/* does "hex" (with its quotes) occur in h, its opening quote either at the
 * start, after "W/", or after a separator or a closing quote? */
static bool
quoted_occurrence(const char *h, const char *hex)
{
	char		needle[2 * HC_DIGEST_LEN + 3];
	const char *at = h;

	needle[0] = '"';
	memcpy(needle + 1, hex, 2 * HC_DIGEST_LEN);
	needle[2 * HC_DIGEST_LEN + 1] = '"';
	needle[2 * HC_DIGEST_LEN + 2] = '\0';
	while ((at = strstr(at, needle)) != NULL)
	{
		if (at == h || at[-1] == ' ' || at[-1] == '\t' || at[-1] == ',' ||
			at[-1] == '"' || (at - h >= 2 && at[-2] == 'W' && at[-1] == '/'))
			return true;
		at++;
	}
	return false;
}

int
LLVMFuzzerTestOneInput(const uint8 *data, size_t size)
{
	static const char hexdigits[] = "0123456789abcdef";
	char		key[HC_KEY_MAXLEN];
	const char *hex;
	char	   *header;
	size_t		hlen;
	bool		matched;
	bool		well_formed;
	bool		contains;
	bool		raised;

	if (size < HC_DIGEST_LEN)
		return 0;
	shim_begin();

	/* the key, as HcKeyFinish prints it */
	snprintf(key, sizeof(key), "%s", hc_key_prefix);
	for (int i = 0; i < HC_DIGEST_LEN; i++)
	{
		size_t		n = strlen(key);

		key[n] = hexdigits[data[i] >> 4];
		key[n + 1] = hexdigits[data[i] & 0xf];
		key[n + 2] = '\0';
	}
	hex = key + strlen(key) - 2 * HC_DIGEST_LEN;

	/* the header, in an exact-size buffer */
	hlen = strnlen((const char *) data + HC_DIGEST_LEN, size - HC_DIGEST_LEN);
	header = palloc(hlen + 1);
	memcpy(header, data + HC_DIGEST_LEN, hlen);
	header[hlen] = '\0';

	matched = false;
	raised = SHIM_CATCH_ERROR(matched = HcEtagMatches(header, key));
	SHIM_CHECK(!raised, "HcEtagMatches raised an error: %s", shim_last_error());

	if (matched)
		SHIM_CHECK(quoted_occurrence(header, hex),
				   "matched a header that does not hold the entity tag: [%s] vs %s", header, hex);

	well_formed = rfc_parse(header, hex, &contains);
	if (well_formed && contains)
		SHIM_CHECK(matched, "a well-formed If-None-Match holding the entity tag did not match: [%s]",
				   header);

	shim_end();
	return 0;
}
