// Display formatting.  Prices arrive in cents (price_cents); they are shown
// in dollars with Intl.NumberFormat, without cents when there are none.

const LOCALE = "en-US";

const wholeDollars = new Intl.NumberFormat(LOCALE, {
  style: "currency",
  currency: "USD",
  minimumFractionDigits: 0,
  maximumFractionDigits: 0,
});
const withCents = new Intl.NumberFormat(LOCALE, {
  style: "currency",
  currency: "USD",
  minimumFractionDigits: 2,
  maximumFractionDigits: 2,
});
const compactDollars = new Intl.NumberFormat(LOCALE, {
  style: "currency",
  currency: "USD",
  notation: "compact",
  minimumFractionDigits: 0,
  maximumFractionDigits: 1,
});
const integer = new Intl.NumberFormat(LOCALE, { maximumFractionDigits: 0 });
const percent = new Intl.NumberFormat(LOCALE, {
  style: "percent",
  minimumFractionDigits: 1,
  maximumFractionDigits: 1,
});
const dateFormat = new Intl.DateTimeFormat(LOCALE, {
  year: "numeric",
  month: "short",
  day: "numeric",
  timeZone: "UTC",
});
const timeFormat = new Intl.DateTimeFormat(LOCALE, {
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
  hour12: false,
});

function toNumber(v: unknown): number | null {
  if (typeof v === "number" && Number.isFinite(v)) return v;
  if (typeof v === "string" && v.trim() !== "" && Number.isFinite(Number(v))) return Number(v);
  return null;
}

// 89900000 -> "$899,000"; 12345 -> "$123.45"; null -> "—"
export function formatPrice(cents: unknown): string {
  const c = toNumber(cents);
  if (c == null) return "—";
  const dollars = c / 100;
  return Number.isInteger(c) && c % 100 === 0 ? wholeDollars.format(dollars) : withCents.format(dollars);
}

// Statistics (averages, medians) in whole dollars: 45672650 -> "$456,727"
export function formatPriceWhole(cents: unknown): string {
  const c = toNumber(cents);
  return c == null ? "—" : wholeDollars.format(Math.round(c / 100));
}

// 89900000 -> "$899K"
export function formatPriceCompact(cents: unknown): string {
  const c = toNumber(cents);
  return c == null ? "—" : compactDollars.format(c / 100);
}

export function formatInteger(n: unknown): string {
  const v = toNumber(n);
  return v == null ? "—" : integer.format(v);
}

// 0 -> "Studio", 1 -> "1 bed", 3 -> "3 beds"
export function formatBedrooms(n: unknown): string {
  const v = toNumber(n);
  if (v == null) return "—";
  if (v === 0) return "Studio";
  return `${integer.format(v)} ${v === 1 ? "bed" : "beds"}`;
}

// 1 -> "1 bath", 1.5 -> "1.5 baths"
export function formatBathrooms(n: unknown): string {
  const v = toNumber(n);
  if (v == null) return "—";
  const s = Number.isInteger(v) ? String(v) : v.toFixed(1);
  return `${s} ${v === 1 ? "bath" : "baths"}`;
}

// 92 -> "92 m²"
export function formatArea(sqm: unknown): string {
  const v = toNumber(sqm);
  return v == null ? "—" : `${integer.format(v)} m²`;
}

// "2026-05-30T11:02:00+00:00" -> "May 30, 2026"
export function formatDate(iso: unknown): string {
  if (typeof iso !== "string") return "—";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? "—" : dateFormat.format(d);
}

export function formatTime(ms: number): string {
  return timeFormat.format(new Date(ms));
}

// 0.8123 -> "81.2%"; null -> "—"
export function formatRatio(r: unknown): string {
  const v = toNumber(r);
  return v == null ? "—" : percent.format(v);
}

// Milliseconds with a precision that suits the magnitude: 0.042 -> "0.042 ms".
export function formatMs(ms: number | null | undefined): string {
  if (ms == null || !Number.isFinite(ms)) return "—";
  if (ms < 1) return `${ms.toFixed(3)} ms`;
  if (ms < 100) return `${ms.toFixed(1)} ms`;
  return `${Math.round(ms)} ms`;
}

// "$899,000", "899000", "899,000.50" -> cents (89900000, 89900050); null when
// it is not an amount.
export function parseDollarsToCents(input: string): number | null {
  const s = input.trim().replace(/^\$/, "").replace(/,/g, "").trim();
  const m = /^(\d{1,13})(?:\.(\d{1,2}))?$/.exec(s);
  if (!m) return null;
  const cents = Number(m[1]) * 100 + (m[2] ? Number(m[2].padEnd(2, "0")) : 0);
  return Number.isSafeInteger(cents) ? cents : null;
}

// 89900050 -> "899000.50" (an input field's value)
export function centsToDollarsInput(cents: number): string {
  const whole = Math.trunc(cents / 100);
  const rest = Math.abs(cents % 100);
  return rest === 0 ? String(whole) : `${whole}.${String(rest).padStart(2, "0")}`;
}

export interface ServerTimingMetric {
  name: string;
  desc: string | null;
  dur: number | null;
}

// 'cache;desc="l1";dur=0.042, db;dur=3' -> [{name:"cache",desc:"l1",dur:0.042}, ...]
export function parseServerTiming(header: string | null | undefined): ServerTimingMetric[] {
  if (!header) return [];
  const out: ServerTimingMetric[] = [];
  // Split on commas outside quoted strings.
  const parts: string[] = [];
  let cur = "";
  let quoted = false;
  for (const ch of header) {
    if (ch === '"') quoted = !quoted;
    if (ch === "," && !quoted) {
      parts.push(cur);
      cur = "";
    } else cur += ch;
  }
  parts.push(cur);
  for (const part of parts) {
    const [nameRaw, ...params] = part.split(";");
    const name = nameRaw.trim();
    if (!name) continue;
    const m: ServerTimingMetric = { name, desc: null, dur: null };
    for (const p of params) {
      const eq = p.indexOf("=");
      if (eq < 0) continue;
      const k = p.slice(0, eq).trim().toLowerCase();
      let v = p.slice(eq + 1).trim();
      if (v.startsWith('"') && v.endsWith('"') && v.length >= 2) v = v.slice(1, -1).replace(/\\(.)/g, "$1");
      if (k === "desc") m.desc = v;
      else if (k === "dur") {
        const d = Number(v);
        m.dur = Number.isFinite(d) ? d : null;
      }
    }
    out.push(m);
  }
  return out;
}

// A short human form of a Server-Timing header: "l1 0.042 ms".
export function describeServerTiming(header: string | null | undefined): string {
  const metrics = parseServerTiming(header);
  if (metrics.length === 0) return "—";
  return metrics
    .map((m) => [m.desc ?? m.name, m.dur != null ? formatMs(m.dur) : null].filter(Boolean).join(" "))
    .join(", ");
}

export const STATUS_LABELS: Record<string, string> = {
  active: "For sale",
  pending: "Sale pending",
  sold: "Sold",
};

export function formatStatus(status: unknown): string {
  return typeof status === "string" ? (STATUS_LABELS[status] ?? status) : "—";
}
