"use client";
// The app's one ApiClient, and the hooks that read it.

import { useSyncExternalStore } from "react";
import { ApiClient, type KeyValueStore, type LogEntry } from "./api";
import { LiveEvents, type LiveStatus } from "./events";

function sessionStore(): KeyValueStore | null {
  try {
    return typeof window !== "undefined" ? window.sessionStorage : null;
  } catch {
    return null;
  }
}

const API_BASE = "/api";

export const api = new ApiClient({ base: API_BASE, storage: sessionStore() });

// The event stream of the same server (components/LiveUpdates.tsx starts it).
export const live = new LiveEvents({ url: `${API_BASE}/events` });

// SWR's fetcher: the key is the API path ("/rpc/listings?city=Boston").
export function fetcher<T>(path: string): Promise<T> {
  return api.get<T>(path);
}

const EMPTY: readonly LogEntry[] = [];

export function useApiLog(): readonly LogEntry[] {
  return useSyncExternalStore(
    (cb) => api.subscribe(cb),
    () => api.getLog(),
    () => EMPTY,
  );
}

// How many answers the fetch layer keeps with their ETag.
export function useKeptCount(): number {
  return useSyncExternalStore(
    (cb) => api.subscribe(cb),
    () => api.keptCount,
    () => 0,
  );
}

// The X-Min-LSN the reads carry (the session's last edit), or null.
export function useMinLsn(): string | null {
  return useSyncExternalStore(
    (cb) => api.subscribe(cb),
    () => api.minLsn,
    () => null,
  );
}

// The event stream's state, for the "live" indicator.
export function useLiveStatus(): LiveStatus {
  return useSyncExternalStore(
    (cb) => live.subscribe(cb),
    () => live.getStatus(),
    () => live.getStatus(),
  );
}
