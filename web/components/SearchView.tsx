"use client";

import Link from "next/link";
import { useRouter, useSearchParams } from "next/navigation";
import { useId, useMemo } from "react";
import useSWR from "swr";
import { SORTS, SORT_LABELS, isSort, listingsPath, parseFilters, searchHref, totalPages } from "@/lib/filters";
import { formatInteger, formatPrice } from "@/lib/format";
import type { SearchResult } from "@/lib/types";
import { useDocumentTitle } from "@/lib/useDocumentTitle";
import { ListingCard } from "./ListingCard";
import { Pagination } from "./Pagination";
import { SearchForm } from "./SearchForm";
import { CardSkeletons, EmptyState, ErrorState, Spinner, StaleNotice } from "./States";

export function SearchView() {
  const params = useSearchParams();
  const router = useRouter();
  const sortId = useId();
  const query = params.toString();
  const filters = useMemo(() => parseFilters(new URLSearchParams(query)), [query]);
  const key = listingsPath(filters);
  // keepPreviousData: while the next page loads, the current one stays.
  const { data, error, isLoading, isValidating, mutate } = useSWR<SearchResult>(key, { keepPreviousData: true });
  const pages = data ? totalPages(data.total, data.page_size) : 1;
  const where = filters.city ? `in ${filters.city}` : "in all cities";
  useDocumentTitle(filters.city ? `Homes for sale in ${filters.city}` : "Homes for sale");

  const summary: string[] = [];
  if (filters.minBedrooms != null) summary.push(`${filters.minBedrooms}+ bedrooms`);
  if (filters.minPrice != null) summary.push(`from ${formatPrice(filters.minPrice * 100)}`);
  if (filters.maxPrice != null) summary.push(`up to ${formatPrice(filters.maxPrice * 100)}`);

  return (
    <>
      <section className="hero">
        <div className="container">
          <h1 className="hero-title">Find your next home</h1>
          <p className="hero-sub">Search thousands of homes for sale across the country.</p>
          <SearchForm key={query} filters={filters} />
        </div>
      </section>

      <section className="container results" aria-labelledby="results-heading" aria-busy={isLoading || isValidating}>
        <div className="results-bar">
          <div>
            <h2 id="results-heading" className="results-heading">
              {data ? (
                <>
                  {formatInteger(data.total)} {data.total === 1 ? "home" : "homes"} for sale {where}
                </>
              ) : (
                <>Homes for sale {where}</>
              )}
            </h2>
            {summary.length ? <p className="muted small">{summary.join(" · ")}</p> : null}
          </div>
          <div className="results-tools">
            {isValidating && data ? <Spinner label="Updating results" /> : null}
            <label htmlFor={sortId} className="inline-label">
              Sort by
            </label>
            <select
              id={sortId}
              value={filters.sort}
              onChange={(e) => {
                if (isSort(e.target.value)) router.push(searchHref({ ...filters, sort: e.target.value, page: 1 }));
              }}
            >
              {SORTS.map((s) => (
                <option key={s} value={s}>
                  {SORT_LABELS[s]}
                </option>
              ))}
            </select>
            {filters.city ? (
              <Link className="btn btn-small" href={`/city?name=${encodeURIComponent(filters.city)}`}>
                {filters.city} statistics
              </Link>
            ) : null}
          </div>
        </div>

        {error && !data ? <ErrorState error={error} onRetry={() => mutate()} retrying={isValidating} /> : null}
        {error && data ? <StaleNotice error={error} onRetry={() => mutate()} retrying={isValidating} /> : null}

        {!data && isLoading ? <CardSkeletons /> : null}

        {data ? (
          data.items.length === 0 ? (
            <EmptyState title={filters.page > 1 ? "No more homes on this page" : "No homes match these filters"}>
              <p>Try a wider price range, fewer bedrooms, or another city.</p>
              <Link className="btn" href={filters.page > 1 ? searchHref({ ...filters, page: 1 }) : "/"}>
                {filters.page > 1 ? "Back to the first page" : "Clear all filters"}
              </Link>
            </EmptyState>
          ) : (
            <>
              <ul className="card-grid" aria-label="Search results">
                {data.items.map((item) => (
                  <ListingCard key={item.id} item={item} />
                ))}
              </ul>
              <Pagination filters={filters} pages={pages} />
            </>
          )
        ) : null}
      </section>
    </>
  );
}
