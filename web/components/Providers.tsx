"use client";

import type { ReactNode } from "react";
import { SWRConfig } from "swr";
import { ApiError } from "@/lib/api";
import { fetcher } from "@/lib/client";
import { LiveUpdates } from "./LiveUpdates";

// SWR on top of the ETag-aware fetch layer: answers are shown at once from
// SWR's cache and revalidated in the background (on mount, on focus, on
// reconnect), which the fetch layer turns into conditional requests; and
// when the server's event stream says an answer on screen changed.
export function Providers({ children }: { children: ReactNode }) {
  return (
    <SWRConfig
      value={{
        fetcher,
        revalidateOnFocus: true,
        revalidateOnReconnect: true,
        dedupingInterval: 2000,
        focusThrottleInterval: 3000,
        // Retry only when the server could not be reached; a 400 or a 404
        // will not get better by asking again.
        shouldRetryOnError: (err: unknown) => err instanceof ApiError && err.unreachable,
        errorRetryCount: 2,
        errorRetryInterval: 2000,
      }}
    >
      <LiveUpdates />
      {children}
    </SWRConfig>
  );
}
