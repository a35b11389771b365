/*-------------------------------------------------------------------------
 *
 * httpapi.c
 *	  PostgREST's request and response settings: a request header, the
 *	  read-your-writes LSN, and the cache headers of an answer.
 *
 * PostgREST (and the development server, which speaks the same way) passes
 * a request's headers in the setting request.headers, a JSON object with
 * lower-case names, and takes response.headers, a JSON array of one-key
 * objects, and response.status from the transaction.  These functions run
 * on every API call, around a cache hit that costs microseconds: they are
 * in C, with no subtransaction and no SQL.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/jsonapi.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/json.h"

#include "housing_cache.h"

PG_FUNCTION_INFO_V1(housing_cache_http_request_header);
PG_FUNCTION_INFO_V1(housing_cache_http_apply_min_lsn);
PG_FUNCTION_INFO_V1(housing_cache_http_cache_headers);

/* finding one key of a JSON object: its value as ->> gives it */
typedef struct HeaderFind
{
	JsonLexContext *lex;
	const char *name;
	bool		next_is_it;		/* the next top-level value is the key's */
	int			start;			/* of an object or array value */
	char	   *value;
	bool		top_is_object;
	bool		seen_top;
} HeaderFind;

static void
hf_object_start(void *state)
{
	HeaderFind *f = state;

	if (!f->seen_top)
	{
		f->seen_top = true;
		f->top_is_object = true;
	}
	else if (f->next_is_it && f->lex->lex_level == 1)
		f->start = f->lex->token_start - f->lex->input;
}

static void
hf_array_start(void *state)
{
	HeaderFind *f = state;

	if (!f->seen_top)
		f->seen_top = true;
	else if (f->next_is_it && f->lex->lex_level == 1)
		f->start = f->lex->token_start - f->lex->input;
}

static void
hf_struct_end(void *state)
{
	HeaderFind *f = state;

	if (f->start >= 0 && f->lex->lex_level == 1 && f->value == NULL)
	{
		int			end = f->lex->prev_token_terminator - f->lex->input;

		f->value = pnstrdup(f->lex->input + f->start, end - f->start);
		f->next_is_it = false;
	}
}

static void
hf_field_start(void *state, char *fname, bool isnull)
{
	HeaderFind *f = state;

	/* the last of duplicate keys wins, as with ->> */
	if (f->lex->lex_level == 1 && strcmp(fname, f->name) == 0)
	{
		f->next_is_it = true;
		f->start = -1;
		f->value = NULL;
	}
	else if (f->lex->lex_level == 1)
		f->next_is_it = false;
}

static void
hf_scalar(void *state, char *token, JsonTokenType type)
{
	HeaderFind *f = state;

	if (!f->seen_top)
	{
		f->seen_top = true;
		return;
	}
	if (f->next_is_it && f->lex->lex_level == 1)
	{
		f->value = (type == JSON_TOKEN_NULL) ? NULL : pstrdup(token);
		f->next_is_it = false;
	}
}

/*
 * The value of a request header (lower-case name) in request.headers, as
 * `request.headers::json ->> name` gives it; NULL when there is no such
 * header, no request.headers at all (a plain SQL caller), or it is not a
 * JSON object.
 */
char *
HcRequestHeader(const char *name)
{
	const char *headers = GetConfigOption("request.headers", true, false);
	HeaderFind	f;
	JsonSemAction sem;

	if (headers == NULL || headers[0] == '\0' || name == NULL)
		return NULL;
	memset(&f, 0, sizeof(f));
	f.name = name;
	f.start = -1;
	f.lex = makeJsonLexContextCstringLen((char *) headers, strlen(headers),
										 GetDatabaseEncoding(), true);
	memset(&sem, 0, sizeof(sem));
	sem.semstate = &f;
	sem.object_start = hf_object_start;
	sem.object_end = hf_struct_end;
	sem.array_start = hf_array_start;
	sem.array_end = hf_struct_end;
	sem.object_field_start = hf_field_start;
	sem.scalar = hf_scalar;
	if (pg_parse_json(f.lex, &sem) != JSON_SUCCESS || !f.top_is_object)
		return NULL;			/* not JSON, or not an object: no headers */
	return f.value;
}

/*
 * housing_cache.http_request_header(name text) RETURNS text
 */
Datum
housing_cache_http_request_header(PG_FUNCTION_ARGS)
{
	char	   *value;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	value = HcRequestHeader(text_to_cstring(PG_GETARG_TEXT_PP(0)));
	if (value == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(value));
}

/* set_config(name, value, true), as the SQL function does it */
static void
set_local(const char *name, const char *value)
{
	(void) set_config_option(name, value, superuser() ? PGC_SUSET : PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_LOCAL, true, 0, false);
}

/*
 * housing_cache.http_apply_min_lsn() RETURNS void
 *
 * housing_cache.min_lsn for this transaction from the request's X-Min-LSN
 * (read your own writes on a standby); a malformed one is refused by the
 * setting's check, naming it.
 */
Datum
housing_cache_http_apply_min_lsn(PG_FUNCTION_ARGS)
{
	char	   *lsn = HcRequestHeader("x-min-lsn");
	char	   *start;
	char	   *end;

	if (lsn == NULL)
		PG_RETURN_VOID();
	start = lsn + strspn(lsn, " ");
	end = start + strlen(start);
	while (end > start && end[-1] == ' ')
		*--end = '\0';
	if (*start != '\0')
		set_local("housing_cache.min_lsn", start);
	PG_RETURN_VOID();
}

/* {"name" : "value"}, appended to a JSON array being built */
static void
add_header(StringInfo out, const char *name, const char *value)
{
	if (out->len > 1)
		appendStringInfoChar(out, ',');
	appendStringInfoChar(out, '{');
	escape_json(out, name);
	appendStringInfoString(out, " : ");
	escape_json(out, value);
	appendStringInfoChar(out, '}');
}

/*
 * housing_cache.http_cache_headers(has_entity boolean DEFAULT true) RETURNS text
 *
 * After a cached call: response.headers (ETag, Cache-Control, X-Cache,
 * Server-Timing, and for the HTTP edge xkey and X-HC-Stamp) from
 * last_lookup(), and response.status 304 when the call matched
 * If-None-Match.  has_entity = false (a listing that does not exist) sends
 * no entity tag.  Returns the tier.
 */
Datum
housing_cache_http_cache_headers(PG_FUNCTION_ARGS)
{
	static const char *const tiers[] = {NULL, "l1", "l2", "miss", "bypass", "not_modified"};
	static const char *const x_cache[] = {"BYPASS", "L1", "L2", "MISS", "BYPASS", "HIT"};
	bool		has_entity = PG_ARGISNULL(0) || PG_GETARG_BOOL(0);
	const HcLastLookup *lk = &hc_last_lookup;
	const char *tier = tiers[lk->tier];
	bool		cached = (lk->tier != HC_TIER_NONE && lk->tier != HC_TIER_BYPASS && lk->key[0]);
	int			ttl = lk->ttl_remaining_s;
	int			max_age = hc_http_max_age;
	StringInfoData out;
	StringInfoData v;
	char		shared[48] = "";

	if (lk->tier != HC_TIER_NONE && ttl >= 0)
		max_age = Min(max_age, ttl);
	/* a shared cache purged by tag may keep a stamped answer, never past its TTL */
	if (lk->tier != HC_TIER_NONE && lk->has_stamp)
		snprintf(shared, sizeof(shared), ", s-maxage=%d",
				 Min(hc_http_shared_max_age, Max(ttl, 0)));

	initStringInfo(&out);
	initStringInfo(&v);
	appendStringInfoChar(&out, '[');
	if (!cached)
		add_header(&out, "Cache-Control", "no-cache");	/* nothing to revalidate against */
	else if (!has_entity)
	{
		appendStringInfo(&v, "public, max-age=%d%s", max_age, shared);
		add_header(&out, "Cache-Control", v.data);
	}
	else
	{
		char		etag[2 * HC_DIGEST_LEN + 3];

		snprintf(etag, sizeof(etag), "\"%s\"", lk->key + strlen(lk->key) - 2 * HC_DIGEST_LEN);
		add_header(&out, "ETag", etag);
		appendStringInfo(&v, "public, max-age=%d%s, stale-while-revalidate=%d",
						 max_age, shared, Max(ttl, 0));
		add_header(&out, "Cache-Control", v.data);
	}
	add_header(&out, "X-Cache", x_cache[lk->tier]);
	resetStringInfo(&v);
	appendStringInfo(&v, "cache;desc=\"%s\";dur=%.3f", tier ? tier : "none",
					 (lk->tier != HC_TIER_NONE ? lk->elapsed_us : 0) / 1000.0);
	add_header(&out, "Server-Timing", v.data);
	/* for the HTTP edge: the answer's keys, and its stamp (edge/README.md) */
	if (lk->tier != HC_TIER_NONE && lk->tier != HC_TIER_BYPASS)
	{
		char	   *keys = HcLastLookupEdgeKeys();

		if (keys != NULL)
		{
			add_header(&out, "xkey", keys);
			if (lk->has_stamp)
			{
				resetStringInfo(&v);
				appendStringInfo(&v, UINT64_FORMAT "/" UINT64_FORMAT,
								 hc_shared ? hc_shared->epoch : 0, lk->stamp_seq);
				add_header(&out, "X-HC-Stamp", v.data);
			}
		}
	}
	appendStringInfoChar(&out, ']');

	set_local("response.headers", out.data);
	if (lk->tier == HC_TIER_NOT_MODIFIED)
		set_local("response.status", "304");
	if (tier == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(tier));
}
