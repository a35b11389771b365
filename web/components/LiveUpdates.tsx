"use client";

import { useEffect } from "react";
import { useSWRConfig } from "swr";
import { api, live } from "@/lib/client";

// Events that arrive together (a burst of commits, what a reconnection
// resends) make one revalidation per answer, not one per event.
const BATCH_MS = 10;

// Live changes (lib/events.ts): on an `invalidate`, the answers on screen
// whose xkey holds one of the event's keys are revalidated — conditional
// GETs carrying the commit's LSN as X-Min-LSN — and on a `reset` every
// answer on screen is.  SWR's mutate(filter) revalidates only keys in use by
// a mounted component; the others are revalidated when they are next shown,
// as always (with the LSN: api.markLive() keeps it for their next GET).
export function LiveUpdates() {
  const { mutate } = useSWRConfig();
  useEffect(() => {
    const due = new Set<string>();
    let everything = false;
    let timer: ReturnType<typeof setTimeout> | null = null;
    const flush = () => {
      timer = null;
      if (everything) void mutate(() => true);
      else if (due.size > 0) {
        const hit = new Set(due);
        void mutate((key) => typeof key === "string" && hit.has(key));
      }
      everything = false;
      due.clear();
    };
    const soon = () => {
      if (timer === null) timer = setTimeout(flush, BATCH_MS);
    };
    const offInvalidate = live.onInvalidate((e) => {
      const paths = api.pathsWithKeys(e.keys);
      if (paths.length === 0) return;
      api.markLive(paths, e.lsn);
      for (const p of paths) due.add(p);
      soon();
    });
    const offReset = live.onReset(() => {
      everything = true;
      soon();
    });
    // The state on the document too: tests (and styles) can wait for it.
    const showState = () => {
      document.documentElement.dataset.live = live.getStatus().state;
    };
    const offStatus = live.subscribe(showState);
    live.start();
    showState();
    return () => {
      offInvalidate();
      offReset();
      offStatus();
      if (timer !== null) clearTimeout(timer);
      live.stop();
    };
  }, [mutate]);
  return null;
}
