"use client";

import Link from "next/link";
import { useSearchParams } from "next/navigation";
import useSWR from "swr";
import { ApiError } from "@/lib/api";
import { listingPath, parseId, searchHref, DEFAULT_FILTERS } from "@/lib/filters";
import {
  formatArea,
  formatBathrooms,
  formatBedrooms,
  formatDate,
  formatPrice,
  formatPriceWhole,
  formatStatus,
} from "@/lib/format";
import type { Listing } from "@/lib/types";
import { useDocumentTitle } from "@/lib/useDocumentTitle";
import { ListingArt } from "./ListingArt";
import { ErrorState, NotFound, Spinner, StaleNotice } from "./States";

export function ListingView() {
  const params = useSearchParams();
  const id = parseId(params.get("id"));
  const { data, error, isLoading, isValidating, mutate } = useSWR<Listing | null>(id ? listingPath(id) : null);
  useDocumentTitle(data?.title ?? (id ? `Listing ${id}` : "Listing"));

  if (id == null) {
    return (
      <div className="container page">
        <NotFound what="No listing selected" />
      </div>
    );
  }
  if ((error instanceof ApiError && error.status === 404) || data === null) {
    return (
      <div className="container page">
        <NotFound what={`Listing ${id} does not exist`} />
      </div>
    );
  }
  if (error && !data) {
    return (
      <div className="container page">
        <ErrorState error={error} onRetry={() => mutate()} retrying={isValidating} />
      </div>
    );
  }
  if (!data) {
    return (
      <div className="container page" aria-busy="true">
        <Spinner label="Loading the listing" />
        <div className="skeleton skeleton-hero" />
      </div>
    );
  }

  const cityHref = searchHref({ ...DEFAULT_FILTERS, city: data.city });
  return (
    <article className="container page listing-page" aria-busy={isLoading || isValidating}>
      <nav aria-label="Breadcrumb" className="breadcrumb">
        <ol>
          <li>
            <Link href="/">All homes</Link>
          </li>
          <li>
            <Link href={cityHref}>{data.city}</Link>
          </li>
          <li aria-current="page">{data.neighborhood}</li>
        </ol>
      </nav>
      {error ? <StaleNotice error={error} onRetry={() => mutate()} retrying={isValidating} /> : null}
      <div className="listing-layout">
        <div className="listing-main">
          <ListingArt id={data.id} label={`${data.neighborhood}, ${data.city}`} large />
          <header className="listing-header">
            <div>
              <span className={`status-pill status-${data.status}`}>{formatStatus(data.status)}</span>
              <h1 className="listing-title">{data.title}</h1>
              <p className="muted">
                {data.neighborhood}, {data.city}
              </p>
            </div>
            <p className="listing-price" data-testid="listing-price">
              {formatPrice(data.price_cents)}
            </p>
          </header>
          <dl className="facts">
            <div>
              <dt>Bedrooms</dt>
              <dd>{formatBedrooms(data.bedrooms)}</dd>
            </div>
            <div>
              <dt>Bathrooms</dt>
              <dd>{formatBathrooms(data.bathrooms)}</dd>
            </div>
            <div>
              <dt>Living area</dt>
              <dd>{formatArea(data.area_sqm)}</dd>
            </div>
            <div>
              <dt>Price per m²</dt>
              <dd>{data.area_sqm > 0 ? formatPriceWhole(data.price_cents / data.area_sqm) : "—"}</dd>
            </div>
          </dl>
          <section aria-labelledby="about-heading">
            <h2 id="about-heading">About this home</h2>
            <p className="description">{data.description || "The seller has not written a description yet."}</p>
          </section>
        </div>
        <aside className="listing-aside" aria-label="Listing details">
          <div className="panel">
            <h2 className="panel-title">Details</h2>
            <dl className="detail-list">
              <dt>Listing ID</dt>
              <dd>{data.id}</dd>
              <dt>Status</dt>
              <dd>{formatStatus(data.status)}</dd>
              <dt>Listed</dt>
              <dd>{formatDate(data.created_at)}</dd>
              <dt>Updated</dt>
              <dd>{formatDate(data.updated_at)}</dd>
              <dt>Location</dt>
              <dd>
                {Number(data.lat).toFixed(4)}, {Number(data.lon).toFixed(4)}
              </dd>
            </dl>
          </div>
          <div className="panel">
            <h2 className="panel-title">Explore</h2>
            <ul className="link-list">
              <li>
                <Link href={cityHref}>More homes in {data.city}</Link>
              </li>
              <li>
                <Link href={`/city?name=${encodeURIComponent(data.city)}`}>{data.city} price statistics</Link>
              </li>
              <li>
                <Link href={`/edit?id=${data.id}`}>Edit this listing</Link>
              </li>
            </ul>
          </div>
        </aside>
      </div>
    </article>
  );
}
