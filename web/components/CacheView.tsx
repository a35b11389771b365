"use client";

import Link from "next/link";
import { useEffect, useState } from "react";
import useSWR from "swr";
import { api, useApiLog, useKeptCount, useLiveStatus, useMinLsn } from "@/lib/client";
import type { LiveStatus } from "@/lib/events";
import { CACHE_STATS_PATH } from "@/lib/filters";
import { describeServerTiming, formatInteger, formatMs, formatRatio, formatTime } from "@/lib/format";
import type { CacheStats } from "@/lib/types";
import { StatusBadge, XCacheBadge } from "./CacheBadge";
import { ErrorState } from "./States";

const POLL_MS = 2000;

// The polls are not logged (they would drown the app's own calls) and are
// never conditional: cache_stats is not cached (Cache-Control: no-store).
const statsFetcher = (path: string) => api.get<CacheStats>(path, { log: false, conditional: false });

function num(v: unknown): number {
  const n = typeof v === "number" ? v : Number(v);
  return Number.isFinite(n) ? n : 0;
}

function Delta({ now, before }: { now: number; before: number | undefined }) {
  if (before == null || now === before) return null;
  const d = now - before;
  return (
    <span className={d > 0 ? "delta delta-up" : "delta"}>
      {d > 0 ? "+" : ""}
      {formatInteger(d)}
    </span>
  );
}

function StatsPanel() {
  const { data, error, isValidating, mutate } = useSWR<CacheStats>(CACHE_STATS_PATH, statsFetcher, {
    refreshInterval: POLL_MS,
    dedupingInterval: 500,
    revalidateOnFocus: true,
  });
  // The previous poll's counters, to show what changed since.
  const [hist, setHist] = useState<{ prev?: CacheStats; cur?: CacheStats; at?: number }>({});
  useEffect(() => {
    if (data) setHist((h) => (h.cur === data ? h : { prev: h.cur, cur: data, at: Date.now() }));
  }, [data]);
  const before = hist.prev;

  if (error && !data) return <ErrorState error={error} onRetry={() => mutate()} retrying={isValidating} />;
  if (!data) return <p className="muted">Loading the cache statistics…</p>;

  const l1 = num(data.l1_hits);
  const l2 = num(data.l2_hits);
  const misses = num(data.misses);
  const lookups = l1 + l2 + misses;
  const breaker = String(data.breaker_state ?? "unknown");
  const counters: [string, keyof CacheStats, string][] = [
    ["L1 hits", "l1_hits", "Answers served from shared memory"],
    ["L2 hits", "l2_hits", "Answers served from Redis"],
    ["Misses", "misses", "Answers computed and stored"],
    ["DB executions", "db_executions", "Times a query ran in the database"],
    ["Bypasses", "bypasses", "Calls that did not use the cache"],
    ["Invalidations", "invalidations", "Generation slots bumped by writes"],
    ["Redis errors", "redis_errors", "Failed Redis calls"],
    ["Breaker skips", "breaker_skips", "Redis calls skipped while the breaker was open"],
  ];

  return (
    <div>
      {error ? (
        <p className="notice notice-warn" role="alert">
          Could not refresh the statistics: {error instanceof Error ? error.message : String(error)}. Showing the last ones.
        </p>
      ) : null}
      <div className="stat-tiles">
        <div className="stat-tile">
          <p className="stat-label">Hit ratio</p>
          <p className="stat-value" data-testid="hit-ratio">
            {formatRatio(data.hit_ratio)}
          </p>
          <p className="muted small">of {formatInteger(lookups)} cached lookups</p>
        </div>
        <div className="stat-tile">
          <p className="stat-label">L1 (shared memory)</p>
          <p className="stat-value">{lookups ? formatRatio(l1 / lookups) : "—"}</p>
          <p className="muted small">{formatInteger(l1)} hits</p>
        </div>
        <div className="stat-tile">
          <p className="stat-label">L2 (Redis)</p>
          <p className="stat-value">{lookups ? formatRatio(l2 / lookups) : "—"}</p>
          <p className="muted small">{formatInteger(l2)} hits</p>
        </div>
        <div className="stat-tile">
          <p className="stat-label">Database</p>
          <p className="stat-value">{formatInteger(data.db_executions)}</p>
          <p className="muted small">query executions</p>
        </div>
        <div className={`stat-tile breaker breaker-${breaker.replace(/[^a-z-]/g, "")}`}>
          <p className="stat-label">Redis breaker</p>
          <p className="stat-value" data-testid="breaker-state">
            {breaker}
          </p>
          <p className="muted small">
            {breaker === "closed" ? "Redis in use" : breaker === "open" ? "Redis skipped, L1 and database serve" : "probing Redis"}
          </p>
        </div>
      </div>
      <table className="data-table counters-table">
        <caption>
          Counters <span className="muted small">(change since the previous poll, every {POLL_MS / 1000} s)</span>
        </caption>
        <thead>
          <tr>
            <th scope="col">Counter</th>
            <th scope="col" className="num">
              Value
            </th>
            <th scope="col">Meaning</th>
          </tr>
        </thead>
        <tbody>
          {counters.map(([label, k, meaning]) => (
            <tr key={k}>
              <th scope="row">{label}</th>
              <td className="num">
                {formatInteger(num(data[k]))} <Delta now={num(data[k])} before={before ? num(before[k]) : undefined} />
              </td>
              <td className="muted">{meaning}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <p className="muted small" aria-live="off">
        Polled at {hist.at ? formatTime(hist.at) : "—"}
        {data.preloaded === false ? " · the extension is not preloaded: nothing is cached" : ""}
      </p>
    </div>
  );
}

function liveLabel(s: LiveStatus, now: number): string {
  switch (s.state) {
    case "live":
      return "live: answers on this page refresh when the server says they changed";
    case "connecting":
      return "connecting…";
    case "reconnecting": {
      const secs = s.retryAt ? Math.max(0, Math.ceil((s.retryAt - now) / 1000)) : 0;
      return secs > 0 ? `disconnected, trying again in ${secs} s` : "reconnecting…";
    }
    case "off":
      return "off: this server has no event stream";
    default:
      return "not connected";
  }
}

// The event stream's state (lib/events.ts), and what it has said so far.
function LiveIndicator() {
  const s = useLiveStatus();
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    if (s.state !== "reconnecting" || !s.retryAt) return;
    const t = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(t);
  }, [s.state, s.retryAt]);
  return (
    <p className={`live-indicator live-${s.state}`} data-testid="live-state" data-state={s.state}>
      <span className="live-dot" aria-hidden="true" />
      <strong>Live updates</strong>
      <span>{liveLabel(s, now)}</span>
      <span className="muted small">
        · {formatInteger(s.invalidations)} change{s.invalidations === 1 ? "" : "s"}, {formatInteger(s.resets)} reset
        {s.resets === 1 ? "" : "s"} received{s.lastEventAt ? `, the last at ${formatTime(s.lastEventAt)}` : ""}
      </span>
    </p>
  );
}

function shortEtag(etag: string | null): string {
  if (!etag) return "—";
  const bare = etag.replace(/^W\//, "").replace(/"/g, "");
  return bare.length > 10 ? `${bare.slice(0, 10)}…` : bare;
}

function CallLog() {
  const log = useApiLog();
  const kept = useKeptCount();
  const minLsn = useMinLsn();
  const rows = [...log].reverse();
  return (
    <div>
      <div className="button-row">
        <button type="button" className="btn" onClick={() => api.clearLog()} disabled={log.length === 0}>
          Clear the log
        </button>
        <button
          type="button"
          className="btn"
          onClick={() => api.forgetEtags()}
        >
          Forget ETags
        </button>
        <span className="muted small">
          {formatInteger(kept)} answers kept with their ETag; forgetting them makes the next requests unconditional
          (200 from L1 instead of 304).
        </span>
      </div>
      {minLsn ? (
        <p className="muted small" data-testid="min-lsn">
          Since your last edit, reads carry X-Min-LSN <code>{minLsn}</code>: a read replica answers them only once it has
          replayed that edit, the primary otherwise.
        </p>
      ) : null}
      <p className="muted small">
        Reads marked “live” were made because the event stream said the answer changed; they carry that change&apos;s LSN
        as X-Min-LSN, so a 304 means nothing the page shows changed.
      </p>
      {rows.length === 0 ? (
        <p className="muted">
          No API call yet. <Link href="/">Search for homes</Link>, open a listing, then come back.
        </p>
      ) : (
        <div className="table-scroll" tabIndex={0} role="region" aria-label="API calls, newest first">
          <table className="data-table call-log" data-testid="call-log">
            <caption className="visually-hidden">API calls of this tab, newest first</caption>
            <thead>
              <tr>
                <th scope="col">#</th>
                <th scope="col">Time</th>
                <th scope="col">Request</th>
                <th scope="col">Status</th>
                <th scope="col">X-Cache</th>
                <th scope="col">Server-Timing</th>
                <th scope="col">ETag</th>
                <th scope="col" className="num">
                  Round trip
                </th>
                <th scope="col">Served by</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((e) => (
                <tr
                  key={e.id}
                  data-path={e.path}
                  data-status={e.status}
                  data-xcache={e.xCache ?? ""}
                  data-served-by={e.servedBy ?? ""}
                >
                  <td className="muted">{e.id}</td>
                  <td className="nowrap">{formatTime(e.at)}</td>
                  <td className="request-cell">
                    <code>
                      {e.method} {e.path}
                    </code>
                    {e.conditional ? <span className="muted small"> (If-None-Match)</span> : null}
                    {e.live ? <span className="muted small"> (live)</span> : null}
                    {e.minLsn ? <span className="muted small"> (X-Min-LSN {e.minLsn})</span> : null}
                    {e.commitLsn ? <span className="muted small"> (X-Commit-LSN {e.commitLsn})</span> : null}
                    {e.error ? <span className="warn-text small"> {e.error}</span> : null}
                  </td>
                  <td>
                    <StatusBadge status={e.status} />
                  </td>
                  <td>
                    <XCacheBadge value={e.xCache} />
                  </td>
                  <td className="nowrap">{describeServerTiming(e.serverTiming)}</td>
                  <td>
                    <code title={e.etag ?? undefined}>{shortEtag(e.etag)}</code>
                  </td>
                  <td className="num nowrap">{formatMs(e.durationMs)}</td>
                  <td>{e.servedBy ?? "—"}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </div>
  );
}

export function CacheView() {
  return (
    <div className="container page">
      <header className="page-header">
        <h1>Cache panel</h1>
        <p className="muted">
          How each answer of this tab was served, and the server&apos;s cache counters. Edit a listing in another tab and
          watch exactly its answers turn into misses while the others stay cached: the server&apos;s event stream tells this
          tab which answers changed, and it asks again for those only.
        </p>
      </header>
      <LiveIndicator />
      <section aria-labelledby="stats-heading" className="section">
        <h2 id="stats-heading">Server cache</h2>
        <StatsPanel />
      </section>
      <section aria-labelledby="log-heading" className="section">
        <h2 id="log-heading">API calls of this tab</h2>
        <details className="legend">
          <summary>What the columns mean</summary>
          <ul>
            <li>
              <XCacheBadge value="L1" /> served from PostgreSQL shared memory; <XCacheBadge value="L2" /> from Redis;{" "}
              <XCacheBadge value="MISS" /> computed by the database and stored; <XCacheBadge value="BYPASS" /> computed, the
              cache not used.
            </li>
            <li>
              <StatusBadge status={304} /> the browser sent the ETag it had (If-None-Match) and the answer had not changed:
              no body was sent.
            </li>
            <li>Server-Timing: the time the server spent on the cache lookup or the query.</li>
            <li>
              Served by: the database that answered (X-Served-By), the primary or its read replica; writes always go to
              the primary.
            </li>
          </ul>
        </details>
        <CallLog />
      </section>
    </div>
  );
}
