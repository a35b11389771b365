/*-------------------------------------------------------------------------
 *
 * conditional.c
 *	  Conditional requests: If-None-Match for the next cached call.
 *
 * An answer's entity tag is its key's digest, which covers the generations
 * of every tag it depends on: a client holding the answer of the current key
 * holds the current answer.  housing_cache.if_none_match() hands the value
 * of an HTTP If-None-Match header to the next cached call of the
 * transaction, which then answers "not modified" without fetching anything
 * (fetch.c).  The value never outlives its transaction.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "housing_cache.h"

PG_FUNCTION_INFO_V1(housing_cache_if_none_match);

/* entity tags the next cached call may answer with "not modified" */
static char *if_none_match = NULL;

static void
hc_clear_if_none_match(void)
{
	if (if_none_match)
	{
		pfree(if_none_match);
		if_none_match = NULL;
	}
}

/*
 * A conditional set for the next call never outlives its transaction, even
 * if that call never happened (it failed its argument checks, or was a
 * STRICT function called with NULL).
 */
static void
hc_conditional_xact_callback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PREPARE)
		hc_clear_if_none_match();
}

/*
 * Does the If-None-Match list (set by housing_cache.if_none_match()) name
 * the entity tag of this key?  Entity tags are the key's hex digits in
 * quotes; weak ("W/") and strong tags compare alike, as RFC 9110 says for
 * If-None-Match.
 */
bool
HcEtagMatches(const char *list, const char *key)
{
	const char *hex = key + strlen(key) - 2 * HC_DIGEST_LEN;
	const char *p = list;

	while (p && *p)
	{
		const char *end;

		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (strncmp(p, "W/", 2) == 0)
			p += 2;
		if (*p != '"')
			break;
		end = strchr(p + 1, '"');
		if (end == NULL)
			break;
		if (end - p - 1 == 2 * HC_DIGEST_LEN && strncmp(p + 1, hex, 2 * HC_DIGEST_LEN) == 0)
			return true;
		p = end + 1;
	}
	return false;
}

/*
 * The conditional set for the next call, taken by that call's entry point
 * before anything else (so that a call failing its argument checks consumes
 * it too).  A copy in the call's memory context, or NULL.
 */
char *
HcTakeIfNoneMatch(void)
{
	char	   *taken = if_none_match ? pstrdup(if_none_match) : NULL;

	hc_clear_if_none_match();
	return taken;
}

/*
 * housing_cache.if_none_match(etags text) RETURNS void
 *
 * The value of an HTTP If-None-Match header, for the next cached call of
 * this transaction only: if the answer it would serve has one of these entity
 * tags, it fetches nothing, returns NULL, and last_lookup() reports tier
 * 'not_modified'.  NULL clears it; so does a value over 64 kB.
 */
Datum
housing_cache_if_none_match(PG_FUNCTION_ARGS)
{
	hc_clear_if_none_match();
	if (!PG_ARGISNULL(0))
	{
		text	   *t = PG_GETARG_TEXT_PP(0);

		/*
		 * A header this long is legal HTTP but no client of ours sends one:
		 * treat it as no condition (a full answer), not as an error.
		 */
		if (VARSIZE_ANY_EXHDR(t) <= 65536)
			if_none_match = MemoryContextStrdup(TopMemoryContext, text_to_cstring(t));
	}
	PG_RETURN_VOID();
}

void
HcConditionalInit(void)
{
	RegisterXactCallback(hc_conditional_xact_callback, NULL);
}
