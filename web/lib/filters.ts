// Search filters <-> the page URL (/?city=Boston&min_bedrooms=2&sort=price_asc&page=2)
// and <-> the API (/rpc/listings?city=Boston&min_bedrooms=2&...).
//
// The page URL speaks in whole dollars (min_price=300000), the API in cents
// (min_price_cents=30000000).  Parsing the URL is forgiving: a value that
// makes no sense (page=abc, sort=cheapest) is dropped, so a hand-edited link
// still shows a page.  Values the API would refuse but that are well formed
// (min_price above max_price) are kept: the API's message explains them.

export const SORTS = ["newest", "price_asc", "price_desc"] as const;
export type Sort = (typeof SORTS)[number];

export const SORT_LABELS: Record<Sort, string> = {
  newest: "Newest first",
  price_asc: "Price: low to high",
  price_desc: "Price: high to low",
};

export const PAGE_SIZE = 20;
export const MAX_PAGE = 10000; // the API's limit
export const MAX_BEDROOMS = 100;
export const MAX_CITY_LENGTH = 100;

export interface Filters {
  city: string | null;
  minPrice: number | null; // whole dollars
  maxPrice: number | null; // whole dollars
  minBedrooms: number | null;
  sort: Sort;
  page: number;
}

export const DEFAULT_FILTERS: Filters = {
  city: null,
  minPrice: null,
  maxPrice: null,
  minBedrooms: null,
  sort: "newest",
  page: 1,
};

type ParamsLike = { get(name: string): string | null };

// A non-negative integer written in decimal (commas and a leading $ allowed
// for prices typed by hand), or null.
function parseCount(raw: string | null, max: number): number | null {
  if (raw == null) return null;
  const s = raw.trim().replace(/^\$/, "").replace(/,/g, "");
  if (!/^\d{1,15}$/.test(s)) return null;
  const n = Number(s);
  return Number.isSafeInteger(n) && n <= max ? n : null;
}

// Largest dollar amount whose cents still fit a safe integer.
const MAX_DOLLARS = Math.floor(Number.MAX_SAFE_INTEGER / 100);

export function isSort(s: unknown): s is Sort {
  return typeof s === "string" && (SORTS as readonly string[]).includes(s);
}

export function parseFilters(params: ParamsLike): Filters {
  const cityRaw = params.get("city");
  const city = cityRaw == null ? null : cityRaw.trim().slice(0, MAX_CITY_LENGTH) || null;
  const sortRaw = params.get("sort");
  const page = parseCount(params.get("page"), MAX_PAGE);
  return {
    city,
    minPrice: parseCount(params.get("min_price"), MAX_DOLLARS),
    maxPrice: parseCount(params.get("max_price"), MAX_DOLLARS),
    minBedrooms: parseCount(params.get("min_bedrooms"), MAX_BEDROOMS),
    sort: isSort(sortRaw) ? sortRaw : "newest",
    page: page != null && page >= 1 ? page : 1,
  };
}

// The page's query string, canonical: fixed order, defaults left out.
export function filtersToSearchParams(f: Filters): URLSearchParams {
  const p = new URLSearchParams();
  if (f.city) p.set("city", f.city);
  if (f.minPrice != null) p.set("min_price", String(f.minPrice));
  if (f.maxPrice != null) p.set("max_price", String(f.maxPrice));
  if (f.minBedrooms != null) p.set("min_bedrooms", String(f.minBedrooms));
  if (f.sort !== "newest") p.set("sort", f.sort);
  if (f.page !== 1) p.set("page", String(f.page));
  return p;
}

// "/?city=Boston&page=2", or "/" with no filter.
export function searchHref(f: Filters): string {
  const qs = filtersToSearchParams(f).toString();
  return qs ? `/?${qs}` : "/";
}

// The API path of a search (the SWR key and the fetch layer's URL), also
// canonical, so that equal searches share one cache entry.
export function listingsPath(f: Filters): string {
  const p = new URLSearchParams();
  if (f.city) p.set("city", f.city);
  if (f.minPrice != null) p.set("min_price_cents", String(f.minPrice * 100));
  if (f.maxPrice != null) p.set("max_price_cents", String(f.maxPrice * 100));
  if (f.minBedrooms != null) p.set("min_bedrooms", String(f.minBedrooms));
  if (f.sort !== "newest") p.set("sort", f.sort);
  if (f.page !== 1) p.set("page", String(f.page));
  p.set("page_size", String(PAGE_SIZE));
  return `/rpc/listings?${p.toString()}`;
}

export function listingPath(id: number | string): string {
  return `/rpc/listing?id=${encodeURIComponent(String(id))}`;
}

export function cityStatsPath(city: string): string {
  return `/rpc/city_stats?${new URLSearchParams({ city }).toString()}`;
}

export const CACHE_STATS_PATH = "/rpc/cache_stats";
export const UPDATE_LISTING_PATH = "/rpc/update_listing";

export function totalPages(total: number, pageSize: number = PAGE_SIZE): number {
  if (!Number.isFinite(total) || total <= 0) return 1;
  return Math.min(Math.ceil(total / pageSize), MAX_PAGE);
}

// Parse a listing id from the URL (?id=42): a positive integer, or null.
export function parseId(raw: string | null): number | null {
  if (raw == null || !/^\d{1,18}$/.test(raw.trim())) return null;
  const n = Number(raw.trim());
  return Number.isSafeInteger(n) && n > 0 ? n : null;
}

// Which cached API answers an edit of a listing can change: the listing
// itself, the searches that could contain it (its city's, and those across
// every city), and its city's statistics.  Searches and statistics of other
// cities cannot change: the server keeps them cached, and so do we.
export function isAffectedByEdit(key: unknown, id: number, city: string | null): boolean {
  if (typeof key !== "string") return false;
  const q = key.indexOf("?");
  const path = q < 0 ? key : key.slice(0, q);
  const params = new URLSearchParams(q < 0 ? "" : key.slice(q + 1));
  const sameCity = (c: string | null) =>
    c == null || city == null || c.toLowerCase() === city.toLowerCase();
  switch (path) {
    case "/rpc/listing":
      return params.get("id") === String(id);
    case "/rpc/listings":
      return sameCity(params.get("city"));
    case "/rpc/city_stats":
      return city == null || (params.get("city") ?? "").toLowerCase() === city.toLowerCase();
    default:
      return false;
  }
}
