"""The search: the portal's GET /api/rpc/listings, answered by one query.

The SQL is the search computed whole (test/sql/fragments.sql's whole(), the
portal's search before it was composed), so the body is byte for byte the
portal's: the benchmark checks it.  The arguments are checked as the
portal checks them (400 otherwise).  `listings` is the view under
cache_page (SEED_CACHE_SECONDS, on Redis through django-redis), keyed by the
URL; `listings_uncached` the same view without it.
"""

from django.conf import settings
from django.db import connection
from django.http import HttpResponse
from django.views.decorators.cache import cache_page
from rest_framework.decorators import api_view
from rest_framework.exceptions import ValidationError

ORDERS = {
    "newest": ("created_at DESC, id DESC", "i.created_at DESC, i.id DESC"),
    "price_asc": ("price_cents, id", "i.price_cents, i.id"),
    "price_desc": ("price_cents DESC, id DESC", "i.price_cents DESC, i.id DESC"),
}

FILTER = """status = 'active'
           AND (%(city)s::text IS NULL OR city = %(city)s::text)
           AND (%(minp)s::bigint IS NULL OR price_cents >= %(minp)s::bigint)
           AND (%(maxp)s::bigint IS NULL OR price_cents <= %(maxp)s::bigint)
           AND (%(minb)s::int IS NULL OR bedrooms >= %(minb)s::int)"""

SQL = """SELECT json_build_object(
    'total', (SELECT count(*) FROM housing.listings WHERE {filter}),
    'page', %(page)s::int, 'page_size', %(page_size)s::int,
    'items', coalesce((
        SELECT json_agg(i ORDER BY {order_i})
          FROM (SELECT id, title, city, neighborhood, price_cents, bedrooms,
                       bathrooms, area_sqm, lat, lon, created_at
                  FROM housing.listings WHERE {filter} ORDER BY {order}
                 LIMIT %(page_size)s::int OFFSET (%(page)s::int - 1) * %(page_size)s::int) i),
        '[]'::json))::text"""

QUERIES = {sort: SQL.format(filter=FILTER, order=o, order_i=oi)
           for sort, (o, oi) in ORDERS.items()}


def _int(params, name, low, high, default=None):
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        v = int(raw)
    except ValueError:
        raise ValidationError({name: "must be an integer"})
    if (low is not None and v < low) or (high is not None and v > high):
        raise ValidationError({name: "out of range"})
    return v


def arguments(params):
    city = params.get("city") or None
    if city is not None and len(city) > 100:
        raise ValidationError({"city": "longer than 100 characters"})
    args = {
        "city": city,
        "minp": _int(params, "min_price_cents", 0, None),
        "maxp": _int(params, "max_price_cents", 0, None),
        "minb": _int(params, "min_bedrooms", 0, 100),
        "page": _int(params, "page", 1, 10000, 1),
        "page_size": _int(params, "page_size", 1, 100, 20),
    }
    if args["minp"] is not None and args["maxp"] is not None and args["minp"] > args["maxp"]:
        raise ValidationError({"min_price_cents": "above max_price_cents"})
    sort = params.get("sort") or "newest"
    if sort not in QUERIES:
        raise ValidationError({"sort": "one of newest, price_asc, price_desc"})
    return sort, args


@api_view(["GET"])
def listings_uncached(request):
    sort, args = arguments(request.query_params)
    with connection.cursor() as cur:
        cur.execute(QUERIES[sort], args)
        body = cur.fetchone()[0]
    return HttpResponse(body, content_type="application/json; charset=utf-8")


listings = cache_page(settings.CACHE_SECONDS)(listings_uncached)
