// How an answer was served: the HTTP status and the X-Cache header.

export function XCacheBadge({ value }: { value: string | null }) {
  if (!value) return <span className="badge badge-none">—</span>;
  const v = value.toUpperCase();
  const cls =
    v === "L1" ? "badge-l1" : v === "L2" ? "badge-l2" : v === "MISS" ? "badge-miss" : v === "HIT" ? "badge-hit" : "badge-bypass";
  return <span className={`badge ${cls}`}>{v}</span>;
}

export function StatusBadge({ status }: { status: number }) {
  const cls = status === 304 ? "badge-304" : status >= 200 && status < 300 ? "badge-ok" : "badge-err";
  return <span className={`badge ${cls}`}>{status === 0 ? "failed" : status}</span>;
}
