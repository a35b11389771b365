// PostgreSQL WAL positions (pg_lsn): "16/B374D848", two 32-bit halves in
// hexadecimal.  A write answers with the LSN of its commit (X-Commit-LSN);
// reads that send it back (X-Min-LSN) see nothing older, from a hot standby
// too.  Only the greatest LSN matters: a read that waited for it has waited
// for every earlier one.

const LSN_RE = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/;

// [high, low] halves, or null when s is not an LSN.
function halves(s: string): [number, number] | null {
  const m = LSN_RE.exec(s.trim());
  return m ? [parseInt(m[1], 16), parseInt(m[2], 16)] : null;
}

// The LSN as PostgreSQL writes it (upper case, no leading zeros), or null
// when s is not one.
export function normalizeLsn(s: string | null | undefined): string | null {
  if (typeof s !== "string") return null;
  const h = halves(s);
  return h ? `${h[0].toString(16).toUpperCase()}/${h[1].toString(16).toUpperCase()}` : null;
}

// Negative, zero or positive as a is before, at or after b (both valid).
export function compareLsn(a: string, b: string): number {
  const x = halves(a);
  const y = halves(b);
  if (!x || !y) throw new Error(`not an LSN: ${x ? b : a}`);
  return x[0] !== y[0] ? x[0] - y[0] : x[1] - y[1];
}

// The later of two LSNs, normalized; a missing or malformed one is ignored.
export function maxLsn(a: string | null | undefined, b: string | null | undefined): string | null {
  const x = normalizeLsn(a);
  const y = normalizeLsn(b);
  if (!x) return y;
  if (!y) return x;
  return compareLsn(x, y) >= 0 ? x : y;
}
