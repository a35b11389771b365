/*-------------------------------------------------------------------------
 *
 * listings.c
 *	  The housing portal's cached entry points.
 *
 * Each function validates its arguments (a clear error, SQLSTATE 22023, for
 * anything out of range: PostgREST turns that into HTTP 400) and then serves
 * a built-in registered query through the engine.  The queries themselves
 * are in the install script, registered like any user's query.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"

#include "housing_cache.h"

PG_FUNCTION_INFO_V1(housing_cache_search_listings);
PG_FUNCTION_INFO_V1(housing_cache_get_listing);
PG_FUNCTION_INFO_V1(housing_cache_city_stats);

#define HC_CITY_MAXLEN		100
#define HC_PAGE_MAX			10000
#define HC_PAGE_SIZE_MAX	100
#define HC_BEDROOMS_MAX		100

static void
check_city(text *city)
{
	int			chars = pg_mbstrlen_with_len(VARDATA_ANY(city), VARSIZE_ANY_EXHDR(city));

	if (chars > HC_CITY_MAXLEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("city is too long (%d characters, at most %d)", chars, HC_CITY_MAXLEN)));
}

static void
invalid(const char *msg, const char *hint)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("%s", msg),
			 hint ? errhint("%s", hint) : 0));
}

/*
 * housing_cache.search_listings(city, min_price_cents, max_price_cents,
 *		min_bedrooms, sort, page, page_size) RETURNS json
 *
 * A NULL sort, page or page_size means its default ('newest', 1, 20).
 */
Datum
housing_cache_search_listings(PG_FUNCTION_ARGS)
{
	Datum		values[6];
	bool		nulls[6];
	const char *query = "housing.search_newest";
	int32		page = PG_ARGISNULL(5) ? 1 : PG_GETARG_INT32(5);
	int32		page_size = PG_ARGISNULL(6) ? 20 : PG_GETARG_INT32(6);
	bool		isnull;
	Datum		result;
	char	   *if_none_match = HcTakeIfNoneMatch();

	if (!PG_ARGISNULL(0))
		check_city(PG_GETARG_TEXT_PP(0));
	if (!PG_ARGISNULL(1) && PG_GETARG_INT64(1) < 0)
		invalid("min_price_cents must not be negative", NULL);
	if (!PG_ARGISNULL(2) && PG_GETARG_INT64(2) < 0)
		invalid("max_price_cents must not be negative", NULL);
	if (!PG_ARGISNULL(1) && !PG_ARGISNULL(2) && PG_GETARG_INT64(1) > PG_GETARG_INT64(2))
		invalid("min_price_cents must not exceed max_price_cents", NULL);
	if (!PG_ARGISNULL(3) && (PG_GETARG_INT32(3) < 0 || PG_GETARG_INT32(3) > HC_BEDROOMS_MAX))
		invalid("min_bedrooms must be between 0 and 100", NULL);
	if (!PG_ARGISNULL(4))
	{
		char	   *sort = text_to_cstring(PG_GETARG_TEXT_PP(4));

		if (strcmp(sort, "newest") == 0)
			query = "housing.search_newest";
		else if (strcmp(sort, "price_asc") == 0)
			query = "housing.search_price_asc";
		else if (strcmp(sort, "price_desc") == 0)
			query = "housing.search_price_desc";
		else
			invalid("sort must be one of newest, price_asc, price_desc", NULL);
	}
	if (page < 1 || page > HC_PAGE_MAX)
		invalid("page must be between 1 and 10000", NULL);
	if (page_size < 1 || page_size > HC_PAGE_SIZE_MAX)
		invalid("page_size must be between 1 and 100", NULL);

	for (int i = 0; i < 4; i++)
	{
		nulls[i] = PG_ARGISNULL(i);
		values[i] = nulls[i] ? (Datum) 0 : PG_GETARG_DATUM(i);
	}
	values[4] = Int32GetDatum(page);
	nulls[4] = false;
	values[5] = Int32GetDatum(page_size);
	nulls[5] = false;

	result = HcFetch(query, 6, values, nulls, if_none_match, &isnull);
	if (isnull)
		PG_RETURN_NULL();
	PG_RETURN_DATUM(result);
}

/*
 * housing_cache.get_listing(listing_id bigint) RETURNS json; NULL if absent
 * or if listing_id is NULL.  (Not STRICT, so that a NULL call still consumes
 * a pending if_none_match().)
 */
Datum
housing_cache_get_listing(PG_FUNCTION_ARGS)
{
	Datum		values[1];
	bool		nulls[1] = {false};
	bool		isnull;
	Datum		result;
	char	   *if_none_match = HcTakeIfNoneMatch();

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	values[0] = PG_GETARG_DATUM(0);
	result = HcFetch("housing.listing", 1, values, nulls, if_none_match, &isnull);
	if (isnull)
		PG_RETURN_NULL();
	PG_RETURN_DATUM(result);
}

/*
 * housing_cache.city_stats(city text) RETURNS json; NULL if city is NULL.
 */
Datum
housing_cache_city_stats(PG_FUNCTION_ARGS)
{
	Datum		values[1];
	bool		nulls[1] = {false};
	bool		isnull;
	Datum		result;
	char	   *if_none_match = HcTakeIfNoneMatch();

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	values[0] = PG_GETARG_DATUM(0);
	check_city(PG_GETARG_TEXT_PP(0));
	result = HcFetch("housing.city_stats", 1, values, nulls, if_none_match, &isnull);
	if (isnull)
		PG_RETURN_NULL();
	PG_RETURN_DATUM(result);
}
