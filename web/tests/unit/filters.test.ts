import { describe, expect, it } from "vitest";
import {
  DEFAULT_FILTERS,
  cityStatsPath,
  filtersToSearchParams,
  isAffectedByEdit,
  listingPath,
  listingsPath,
  parseFilters,
  parseId,
  searchHref,
  totalPages,
} from "@/lib/filters";

const parse = (qs: string) => parseFilters(new URLSearchParams(qs));

describe("parseFilters", () => {
  it("reads every filter of the page URL", () => {
    expect(parse("city=Boston&min_bedrooms=2&sort=price_asc&page=2&min_price=300000&max_price=900000")).toEqual({
      city: "Boston",
      minPrice: 300000,
      maxPrice: 900000,
      minBedrooms: 2,
      sort: "price_asc",
      page: 2,
    });
  });

  it("gives the defaults for an empty query", () => {
    expect(parse("")).toEqual(DEFAULT_FILTERS);
  });

  it("drops values that make no sense", () => {
    expect(parse("page=abc&sort=cheapest&min_bedrooms=-1&min_price=1e5&city=%20%20")).toEqual(DEFAULT_FILTERS);
    expect(parse("page=0").page).toBe(1);
    expect(parse("page=10001").page).toBe(1);
    expect(parse("page=10000").page).toBe(10000);
    expect(parse("min_bedrooms=101").minBedrooms).toBeNull();
    expect(parse("min_bedrooms=0").minBedrooms).toBe(0);
  });

  it("accepts prices typed with $ and commas", () => {
    expect(parse("min_price=%24300%2C000").minPrice).toBe(300000);
  });

  it("keeps a well-formed but inconsistent price range for the API to explain", () => {
    const f = parse("min_price=900000&max_price=100000");
    expect([f.minPrice, f.maxPrice]).toEqual([900000, 100000]);
  });

  it("trims the city and caps its length", () => {
    expect(parse("city=%20Boston%20").city).toBe("Boston");
    expect(parse(`city=${"x".repeat(150)}`).city).toHaveLength(100);
  });
});

describe("filters to URLs", () => {
  it("round-trips through the page URL", () => {
    const f = parse("city=San%20Francisco&min_bedrooms=2&sort=price_desc&page=3&max_price=2000000");
    expect(parseFilters(filtersToSearchParams(f))).toEqual(f);
  });

  it("writes a canonical query string without defaults", () => {
    expect(searchHref(DEFAULT_FILTERS)).toBe("/");
    expect(searchHref(parse("page=2&sort=price_asc&min_bedrooms=2&city=Boston"))).toBe(
      "/?city=Boston&min_bedrooms=2&sort=price_asc&page=2",
    );
    expect(searchHref(parse("sort=newest&page=1&city=Boston"))).toBe("/?city=Boston");
  });

  it("builds the API path in cents", () => {
    expect(listingsPath(parse("city=Boston&min_price=300000&max_price=900000&min_bedrooms=2&sort=price_asc&page=2"))).toBe(
      "/rpc/listings?city=Boston&min_price_cents=30000000&max_price_cents=90000000&min_bedrooms=2&sort=price_asc&page=2&page_size=20",
    );
    expect(listingsPath(DEFAULT_FILTERS)).toBe("/rpc/listings?page_size=20");
  });

  it("gives equal searches equal API paths, whatever the order of the page URL", () => {
    expect(listingsPath(parse("page=2&city=Boston"))).toBe(listingsPath(parse("city=Boston&page=2")));
  });

  it("encodes ids and cities", () => {
    expect(listingPath(42)).toBe("/rpc/listing?id=42");
    expect(cityStatsPath("San Francisco")).toBe("/rpc/city_stats?city=San+Francisco");
    expect(cityStatsPath("A&B")).toBe("/rpc/city_stats?city=A%26B");
  });
});

describe("paging and ids", () => {
  it("counts pages", () => {
    expect(totalPages(0)).toBe(1);
    expect(totalPages(20)).toBe(1);
    expect(totalPages(21)).toBe(2);
    expect(totalPages(5893)).toBe(295);
    expect(totalPages(10_000_000)).toBe(10000);
  });

  it("parses listing ids", () => {
    expect(parseId("42")).toBe(42);
    expect(parseId(" 7 ")).toBe(7);
    expect(parseId("0")).toBeNull();
    expect(parseId("-3")).toBeNull();
    expect(parseId("4.2")).toBeNull();
    expect(parseId(null)).toBeNull();
    expect(parseId("99999999999999999")).toBeNull();
  });
});

describe("isAffectedByEdit", () => {
  const boston = (key: string) => isAffectedByEdit(key, 42, "Boston");

  it("selects the listing, its city's searches and stats, and searches of every city", () => {
    expect(boston("/rpc/listing?id=42")).toBe(true);
    expect(boston("/rpc/listings?city=Boston&page_size=20")).toBe(true);
    expect(boston("/rpc/listings?page_size=20&sort=price_asc")).toBe(true);
    expect(boston("/rpc/city_stats?city=Boston")).toBe(true);
  });

  it("leaves other listings and other cities alone", () => {
    expect(boston("/rpc/listing?id=420")).toBe(false);
    expect(boston("/rpc/listings?city=Denver&page_size=20")).toBe(false);
    expect(boston("/rpc/city_stats?city=Denver")).toBe(false);
    expect(boston("/rpc/cache_stats")).toBe(false);
    expect(isAffectedByEdit(["not", "a", "string"], 42, "Boston")).toBe(false);
  });

  it("selects every search when the city is unknown", () => {
    expect(isAffectedByEdit("/rpc/listings?city=Denver", 42, null)).toBe(true);
  });
});
