import Link from "next/link";
import { searchHref, type Filters } from "@/lib/filters";
import { formatInteger } from "@/lib/format";

// Previous / next as links (each page is a URL: back and forward work),
// with a few page numbers around the current one.
export function Pagination({ filters, pages }: { filters: Filters; pages: number }) {
  const page = filters.page;
  if (pages <= 1 && page <= 1) return null;
  const href = (p: number) => searchHref({ ...filters, page: p });
  const around: number[] = [];
  for (let p = Math.max(1, page - 2); p <= Math.min(pages, page + 2); p++) around.push(p);
  return (
    <nav className="pagination" aria-label="Pages of results">
      {page > 1 ? (
        <Link className="btn" href={href(page - 1)} rel="prev">
          ← Previous
        </Link>
      ) : (
        <span className="btn btn-disabled" aria-disabled="true">
          ← Previous
        </span>
      )}
      <ul className="page-numbers">
        {around[0] > 1 ? (
          <li>
            <Link href={href(1)} aria-label="Page 1">
              1
            </Link>
            {around[0] > 2 ? <span aria-hidden="true"> …</span> : null}
          </li>
        ) : null}
        {around.map((p) => (
          <li key={p}>
            {p === page ? (
              <span aria-current="page" className="current-page">
                {formatInteger(p)}
              </span>
            ) : (
              <Link href={href(p)} aria-label={`Page ${p}`}>
                {formatInteger(p)}
              </Link>
            )}
          </li>
        ))}
      </ul>
      <span className="page-count muted">
        Page {formatInteger(page)} of {formatInteger(pages)}
      </span>
      {page < pages ? (
        <Link className="btn" href={href(page + 1)} rel="next">
          Next →
        </Link>
      ) : (
        <span className="btn btn-disabled" aria-disabled="true">
          Next →
        </span>
      )}
    </nav>
  );
}
