"use client";

import Link from "next/link";
import { useApiLog } from "@/lib/client";
import { describeServerTiming } from "@/lib/format";
import { StatusBadge, XCacheBadge } from "./CacheBadge";

// The footer's summary of the latest API call, on every page.
export function LastCall() {
  const log = useApiLog();
  const last = log.length ? log[log.length - 1] : null;
  return (
    <div className="last-call">
      <span className="muted">Last API call:</span>{" "}
      {last ? (
        <>
          <code className="last-call-path">
            {last.method} {last.path}
          </code>{" "}
          <StatusBadge status={last.status} /> <XCacheBadge value={last.xCache} />{" "}
          <span className="muted">{describeServerTiming(last.serverTiming)}</span>
        </>
      ) : (
        <span className="muted">none yet</span>
      )}{" "}
      <Link href="/cache">Open the cache panel</Link>
    </div>
  );
}
