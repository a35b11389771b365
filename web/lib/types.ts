// The JSON shapes of the API (see the README's SQL API).

export interface ListingSummary {
  id: number;
  title: string;
  city: string;
  neighborhood: string;
  price_cents: number;
  bedrooms: number;
  bathrooms: number;
  area_sqm: number;
  lat: number;
  lon: number;
  created_at: string;
}

export interface SearchResult {
  total: number;
  page: number;
  page_size: number;
  items: ListingSummary[];
}

export type ListingStatus = "active" | "pending" | "sold";
export const LISTING_STATUSES: readonly ListingStatus[] = ["active", "pending", "sold"];

export interface Listing extends ListingSummary {
  description: string;
  status: ListingStatus;
  updated_at: string;
}

export interface BedroomStats {
  bedrooms: number;
  count: number;
  median_price_cents: number | null;
}

export interface CityStats {
  city: string;
  active_count: number;
  avg_price_cents: number | null;
  median_price_cents: number | null;
  by_bedrooms: BedroomStats[];
}

export interface CacheStats {
  l1_hits: number;
  l2_hits: number;
  misses: number;
  db_executions: number;
  bypasses: number;
  l1_stores?: number;
  l1_evictions?: number;
  l2_stores?: number;
  l2_rejects?: number;
  oversize?: number;
  redis_errors: number;
  breaker_skips?: number;
  breaker_opens?: number;
  breaker_closes?: number;
  breaker_state: string;
  fill_waits?: number;
  fill_timeouts?: number;
  early_refreshes?: number;
  stale_served?: number;
  invalidations: number;
  invalidated_commits?: number;
  publishes?: number;
  publish_failures?: number;
  preloaded?: boolean;
  stats_reset?: string | null;
  hit_ratio: number | string | null;
}

// The fields an editor may change (api.update_listing).
export interface ListingUpdate {
  id: number;
  title?: string;
  price_cents?: number;
  status?: ListingStatus;
  description?: string;
}

// The cities of the sample data (housing_cache.generate_listings), offered as
// suggestions; any other city can be typed.
export const KNOWN_CITIES = [
  "New York", "Los Angeles", "Chicago", "Houston", "Phoenix", "Philadelphia",
  "San Antonio", "San Diego", "Dallas", "Austin", "Boston", "Denver", "Seattle",
  "Miami", "Portland", "Atlanta", "Nashville", "Minneapolis", "Detroit", "San Francisco",
] as const;
