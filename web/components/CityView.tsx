"use client";

import Link from "next/link";
import { useRouter, useSearchParams } from "next/navigation";
import { useId, type FormEvent } from "react";
import useSWR from "swr";
import { cityStatsPath, DEFAULT_FILTERS, searchHref } from "@/lib/filters";
import { formatBedrooms, formatInteger, formatPriceCompact, formatPriceWhole } from "@/lib/format";
import { KNOWN_CITIES, type CityStats } from "@/lib/types";
import { useDocumentTitle } from "@/lib/useDocumentTitle";
import { EmptyState, ErrorState, Spinner, StaleNotice } from "./States";

function CityPicker({ current }: { current: string | null }) {
  const router = useRouter();
  const id = useId();
  function onSubmit(e: FormEvent<HTMLFormElement>) {
    e.preventDefault();
    const name = String(new FormData(e.currentTarget).get("name") ?? "").trim();
    if (name) router.push(`/city?name=${encodeURIComponent(name)}`);
  }
  return (
    <form className="inline-form" onSubmit={onSubmit} key={current ?? ""}>
      <label htmlFor={`${id}-name`}>City</label>
      <input id={`${id}-name`} name="name" list={`${id}-list`} defaultValue={current ?? ""} required maxLength={100} />
      <datalist id={`${id}-list`}>
        {KNOWN_CITIES.map((c) => (
          <option key={c} value={c} />
        ))}
      </datalist>
      <button type="submit" className="btn btn-primary">
        Show statistics
      </button>
    </form>
  );
}

function Stats({ city }: { city: string }) {
  const { data, error, isValidating, mutate } = useSWR<CityStats>(cityStatsPath(city));
  if (error && !data) return <ErrorState error={error} onRetry={() => mutate()} retrying={isValidating} />;
  if (!data) return <Spinner label={`Loading statistics for ${city}`} />;
  if (data.active_count === 0) {
    return (
      <EmptyState title={`No homes for sale in ${city}`}>
        <p>Check the spelling, or pick one of the cities below.</p>
      </EmptyState>
    );
  }
  const max = Math.max(1, ...data.by_bedrooms.map((b) => Number(b.median_price_cents ?? 0)));
  const maxCount = Math.max(1, ...data.by_bedrooms.map((b) => b.count));
  return (
    <div aria-busy={isValidating}>
      {error ? <StaleNotice error={error} onRetry={() => mutate()} retrying={isValidating} /> : null}
      <div className="stat-tiles">
        <div className="stat-tile">
          <p className="stat-label">Homes for sale</p>
          <p className="stat-value" data-testid="active-count">
            {formatInteger(data.active_count)}
          </p>
        </div>
        <div className="stat-tile">
          <p className="stat-label">Median price</p>
          <p className="stat-value">{formatPriceWhole(data.median_price_cents)}</p>
        </div>
        <div className="stat-tile">
          <p className="stat-label">Average price</p>
          <p className="stat-value">{formatPriceWhole(data.avg_price_cents)}</p>
        </div>
      </div>
      <h2>By number of bedrooms</h2>
      <table className="data-table bedroom-table">
        <caption className="visually-hidden">Homes for sale in {city} and their median price, by bedrooms</caption>
        <thead>
          <tr>
            <th scope="col">Bedrooms</th>
            <th scope="col" className="num">
              Homes
            </th>
            <th scope="col" className="num">
              Median price
            </th>
            <th scope="col" className="bar-col">
              <span className="visually-hidden">Median price, as a bar</span>
            </th>
            <th scope="col">
              <span className="visually-hidden">Search</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {data.by_bedrooms.map((b) => (
            <tr key={b.bedrooms}>
              <th scope="row">{formatBedrooms(b.bedrooms)}</th>
              <td className="num">
                {formatInteger(b.count)}
                <span className="count-bar" style={{ width: `${(b.count / maxCount) * 100}%` }} aria-hidden="true" />
              </td>
              <td className="num">{formatPriceWhole(b.median_price_cents)}</td>
              <td className="bar-col" aria-hidden="true">
                <span className="bar" style={{ width: `${(Number(b.median_price_cents ?? 0) / max) * 100}%` }}>
                  {formatPriceCompact(b.median_price_cents)}
                </span>
              </td>
              <td>
                <Link href={searchHref({ ...DEFAULT_FILTERS, city, minBedrooms: b.bedrooms })}>
                  {b.bedrooms === 0 ? "All homes" : `${b.bedrooms}+ beds`}
                  <span className="visually-hidden"> in {city}</span> →
                </Link>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

export function CityView() {
  const params = useSearchParams();
  const name = (params.get("name") ?? "").trim() || null;
  useDocumentTitle(name ? `${name} statistics` : "City statistics");
  return (
    <div className="container page">
      <header className="page-header">
        <h1>{name ? `${name} housing market` : "City statistics"}</h1>
        {name ? (
          <p className="muted">
            Active listings right now. <Link href={searchHref({ ...DEFAULT_FILTERS, city: name })}>Browse homes in {name}</Link>
          </p>
        ) : (
          <p className="muted">Prices and supply of homes for sale, city by city.</p>
        )}
        <CityPicker current={name} />
      </header>
      {name ? <Stats city={name} /> : null}
      <section aria-labelledby="cities-heading" className="city-list-section">
        <h2 id="cities-heading">Cities</h2>
        <ul className="chip-list">
          {KNOWN_CITIES.map((c) => (
            <li key={c}>
              <Link className="chip" href={`/city?name=${encodeURIComponent(c)}`} aria-current={c === name ? "page" : undefined}>
                {c}
              </Link>
            </li>
          ))}
        </ul>
      </section>
    </div>
  );
}
