"use client";

import { useSWRConfig } from "swr";
import { isAffectedByEdit, listingPath } from "./filters";
import type { Listing } from "./types";

// After an acknowledged edit: show the listing the server returned, refetch
// it, and drop every other answer the edit can change (its city's searches
// and statistics, searches across all cities), so that none shows stale
// data: mounted ones refetch now, the others on their next use.  Answers of
// other cities are left alone — the server did not invalidate them either.
export function useRevalidateAfterEdit() {
  const { mutate } = useSWRConfig();
  return async (updated: Listing) => {
    const own = listingPath(updated.id);
    await Promise.all([
      mutate(own, updated, { revalidate: true }),
      mutate((key) => key !== own && isAffectedByEdit(key, updated.id, updated.city), undefined, { revalidate: true }),
    ]);
  };
}
