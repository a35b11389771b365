// The fetch layer: every API call of the app goes through an ApiClient.
//
// - Conditional GETs of its own.  fetch() would hide a 304 (the browser
//   answers it from its HTTP cache and hands JS the cached 200), so the
//   client asks with `cache: "no-store"`, keeps each answer's ETag and body
//   itself, sends If-None-Match, and on a 304 returns the body it kept.  The
//   status it logs is the one on the wire.
// - A log of the calls (status, X-Cache, Server-Timing, ETag, duration) for
//   the cache panel; subscribers hear of every new entry.
// - Errors as ApiError: the API's JSON body {code, message, details, hint}
//   when there is one, status 0 when the server could not be reached.
// - Reading one's own writes when reads go to a hot standby: a write's
//   answer carries the LSN of its commit (X-Commit-LSN); the client keeps
//   the greatest one and sends it with every GET (X-Min-LSN), so that the
//   server answers from a standby only once it has replayed that far, and
//   from the primary otherwise.  An edit is never undone on screen.  A
//   server that does not send X-Commit-LSN (PostgREST) is asked for the
//   primary's WAL position right after the write (POST /rpc/wal_lsn, at or
//   after the commit), which serves the same way.
//
// - Live changes: each kept answer keeps its xkey header too, the edge keys
//   it depends on.  The event stream (lib/events.ts) names keys a commit
//   invalidated; pathsWithKeys() finds the answers they concern, and
//   markLive() makes the next GET of each carry the commit's LSN as
//   X-Min-LSN, so that neither a lagging hot standby nor a cache that has
//   not seen the commit answers it with a 304.
//
// ETags, kept bodies, xkeys, the LSN and the log can live in sessionStorage,
// so that they survive a reload of the page (which then revalidates with
// 304s and still reads its own writes).

import { parseXkey } from "./events";
import { compareLsn, maxLsn, normalizeLsn } from "./lsn";

export interface ApiErrorBody {
  code: string | null;
  message: string;
  details: string | null;
  hint: string | null;
}

export class ApiError extends Error implements ApiErrorBody {
  readonly status: number;
  readonly code: string | null;
  readonly details: string | null;
  readonly hint: string | null;

  constructor(status: number, body: ApiErrorBody) {
    super(body.message);
    this.name = "ApiError";
    this.status = status;
    this.code = body.code;
    this.details = body.details;
    this.hint = body.hint;
  }

  // The server could not be reached at all (network error, server down).
  get unreachable(): boolean {
    return this.status === 0 || this.status === 502 || this.status === 503 || this.status === 504;
  }
}

export interface LogEntry {
  id: number;
  at: number; // ms since the epoch, when the request started
  method: "GET" | "POST";
  path: string; // "/rpc/listings?city=Boston"
  status: number; // 0: no response
  xCache: string | null;
  serverTiming: string | null;
  etag: string | null;
  cacheControl: string | null;
  conditional: boolean; // sent If-None-Match
  durationMs: number;
  error: string | null;
  // Entries logged before these existed lack them (sessionStorage).
  servedBy?: string | null; // X-Served-By: "primary", "replica"
  minLsn?: string | null; // the X-Min-LSN sent
  commitLsn?: string | null; // the X-Commit-LSN of a write
  live?: boolean; // asked because the event stream said the answer changed
}

interface Kept {
  etag: string;
  body: unknown;
  xkey?: string[]; // the edge keys of the answer (xkey header)
}

// The parts of Storage the client uses (sessionStorage in the browser).
export interface KeyValueStore {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

export interface ApiClientOptions {
  base?: string; // "/api"
  fetch?: typeof fetch;
  storage?: KeyValueStore | null;
  storageKey?: string;
  now?: () => number;
  maxLog?: number;
  maxKept?: number;
}

export interface RequestOptions {
  log?: boolean; // default true; the cache panel's own polling is not logged
  conditional?: boolean; // default true: send If-None-Match when an ETag is kept
  signal?: AbortSignal;
}

type Listener = () => void;

export const MIN_LSN_HEADER = "X-Min-LSN";
export const COMMIT_LSN_HEADER = "X-Commit-LSN";
export const XKEY_HEADER = "xkey";
// Where a server without X-Commit-LSN tells the primary's WAL position.
export const WAL_LSN_PATH = "/rpc/wal_lsn";

function parseErrorBody(status: number, statusText: string, text: string): ApiErrorBody {
  try {
    const j = JSON.parse(text) as Record<string, unknown>;
    if (j && typeof j === "object" && typeof j.message === "string") {
      const str = (v: unknown) => (typeof v === "string" ? v : v == null ? null : JSON.stringify(v));
      return { code: str(j.code), message: j.message, details: str(j.details), hint: str(j.hint) };
    }
  } catch {
    // not JSON: fall through
  }
  const trimmed = text.trim();
  return {
    code: null,
    message: `HTTP ${status}${statusText ? ` ${statusText}` : ""}${trimmed && trimmed.length < 200 ? `: ${trimmed}` : ""}`,
    details: null,
    hint: null,
  };
}

export class ApiClient {
  private readonly base: string;
  private readonly fetchImpl: typeof fetch;
  private readonly storage: KeyValueStore | null;
  private readonly storageKey: string;
  private readonly now: () => number;
  private readonly maxLog: number;
  private readonly maxKept: number;
  private kept = new Map<string, Kept>(); // insertion order = recency
  private log: LogEntry[] = []; // newest last
  private lsn: string | null = null; // the greatest X-Commit-LSN of the session
  private walLsnMissing = false; // WAL_LSN_PATH answered 404: not asked again
  // Paths the event stream said changed: the next GET of each is "live" and
  // carries this LSN (or none: "") as X-Min-LSN.
  private liveDue = new Map<string, string>();
  private nextId = 1;
  private listeners = new Set<Listener>();
  private loaded = false;

  constructor(opts: ApiClientOptions = {}) {
    this.base = (opts.base ?? "/api").replace(/\/$/, "");
    // Bound lazily: tests swap globalThis.fetch, and the browser's fetch must
    // be called with the global object as `this`.
    this.fetchImpl = opts.fetch ?? ((input, init) => globalThis.fetch(input, init));
    this.storage = opts.storage ?? null;
    this.storageKey = opts.storageKey ?? "hc.api";
    this.now = opts.now ?? (() => Date.now());
    this.maxLog = opts.maxLog ?? 200;
    this.maxKept = opts.maxKept ?? 60;
  }

  // --- persistence -----------------------------------------------------------

  private load(): void {
    if (this.loaded) return;
    this.loaded = true;
    if (!this.storage) return;
    try {
      const raw = this.storage.getItem(this.storageKey);
      if (!raw) return;
      const saved = JSON.parse(raw) as { kept?: [string, Kept][]; log?: LogEntry[]; minLsn?: unknown };
      for (const [k, v] of saved.kept ?? []) {
        if (typeof k !== "string" || !v || typeof v.etag !== "string") continue;
        const xkey = Array.isArray(v.xkey) ? v.xkey.filter((x): x is string => typeof x === "string") : [];
        this.kept.set(k, xkey.length > 0 ? { etag: v.etag, body: v.body, xkey } : { etag: v.etag, body: v.body });
      }
      this.lsn = maxLsn(this.lsn, typeof saved.minLsn === "string" ? saved.minLsn : null);
      this.log = Array.isArray(saved.log) ? saved.log.slice(-this.maxLog) : [];
      this.nextId = this.log.reduce((m, e) => Math.max(m, e.id), 0) + 1;
    } catch {
      // unreadable: start afresh
    }
  }

  private save(): void {
    if (!this.storage) return;
    const data = JSON.stringify({ kept: [...this.kept.entries()], log: this.log, minLsn: this.lsn });
    try {
      this.storage.setItem(this.storageKey, data);
    } catch {
      // quota: keep the log and the LSN, drop the bodies
      try {
        this.storage.setItem(this.storageKey, JSON.stringify({ kept: [], log: this.log, minLsn: this.lsn }));
      } catch {
        /* give up persisting */
      }
    }
  }

  // --- the log -----------------------------------------------------------------

  getLog(): readonly LogEntry[] {
    this.load();
    return this.log;
  }

  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  clearLog(): void {
    this.load();
    this.log = [];
    this.save();
    this.emit();
  }

  // Forget every kept ETag: the next request of each answer is unconditional.
  forgetEtags(): void {
    this.load();
    this.kept.clear();
    this.save();
    this.emit();
  }

  keptEtag(path: string): string | null {
    this.load();
    return this.kept.get(path)?.etag ?? null;
  }

  // The edge keys of a kept answer (its xkey header), or null.
  keptXkey(path: string): readonly string[] | null {
    this.load();
    return this.kept.get(path)?.xkey ?? null;
  }

  // The kept answers that carry one of these edge keys.
  pathsWithKeys(keys: Iterable<string>): string[] {
    this.load();
    const wanted = new Set(keys);
    const out: string[] = [];
    if (wanted.size === 0) return out;
    for (const [path, k] of this.kept) {
      if (k.xkey?.some((x) => wanted.has(x))) out.push(path);
    }
    return out;
  }

  // The event stream said these answers changed, in the commit at `lsn`
  // (or at an unknown one): their next GET carries it as X-Min-LSN.
  markLive(paths: Iterable<string>, lsn: string | null): void {
    const l = normalizeLsn(lsn);
    for (const p of paths) this.liveDue.set(p, maxLsn(this.liveDue.get(p) || null, l) ?? "");
  }

  get keptCount(): number {
    this.load();
    return this.kept.size;
  }

  // The X-Min-LSN every GET carries: the greatest X-Commit-LSN this session
  // was answered with (null before its first write).
  get minLsn(): string | null {
    this.load();
    return this.lsn;
  }

  // Take a write's X-Commit-LSN; only a later one than the kept one counts.
  noteCommitLsn(lsn: string | null): void {
    this.load();
    const next = maxLsn(this.lsn, lsn);
    if (next === this.lsn) return;
    this.lsn = next;
    this.save();
    this.emit();
  }

  private emit(): void {
    for (const l of [...this.listeners]) l();
  }

  private record(entry: Omit<LogEntry, "id">): void {
    // A new array each time: React's useSyncExternalStore compares snapshots.
    this.log = [...this.log, { ...entry, id: this.nextId++ }].slice(-this.maxLog);
    this.save();
    this.emit();
  }

  // noteCommitLsn without its own save and emit: the log entry that follows
  // saves and emits.
  private noteCommitLsnQuietly(lsn: string): void {
    this.lsn = maxLsn(this.lsn, lsn);
  }

  private keep(path: string, etag: string, body: unknown, xkey: string[] | undefined): void {
    this.kept.delete(path);
    this.kept.set(path, xkey && xkey.length > 0 ? { etag, body, xkey } : { etag, body });
    while (this.kept.size > this.maxKept) {
      const oldest = this.kept.keys().next().value as string;
      this.kept.delete(oldest);
      this.liveDue.delete(oldest);
    }
  }

  // --- requests ----------------------------------------------------------------

  async get<T = unknown>(path: string, opts: RequestOptions = {}): Promise<T> {
    return this.request<T>("GET", path, undefined, undefined, opts);
  }

  async post<T = unknown>(path: string, body: unknown, token?: string | null, opts: RequestOptions = {}): Promise<T> {
    return this.request<T>("POST", path, body, token ?? undefined, opts);
  }

  private async request<T>(
    method: "GET" | "POST",
    path: string,
    body: unknown,
    token: string | undefined,
    opts: RequestOptions,
    retried = false,
  ): Promise<T> {
    this.load();
    const doLog = opts.log !== false;
    const kept = method === "GET" && opts.conditional !== false ? this.kept.get(path) : undefined;
    const headers: Record<string, string> = { Accept: "application/json" };
    if (kept) headers["If-None-Match"] = kept.etag;
    const due = method === "GET" ? this.liveDue.get(path) : undefined;
    const minLsn = method === "GET" ? maxLsn(this.lsn, due || null) : null;
    if (minLsn) headers[MIN_LSN_HEADER] = minLsn;
    if (method === "POST") headers["Content-Type"] = "application/json";
    if (token) headers["Authorization"] = `Bearer ${token}`;

    const at = this.now();
    const t0 = typeof performance !== "undefined" ? performance.now() : this.now();
    const elapsed = () => (typeof performance !== "undefined" ? performance.now() : this.now()) - t0;
    const base = {
      at,
      method,
      path,
      conditional: Boolean(kept),
      minLsn,
      ...(due !== undefined ? { live: true } : {}),
    };

    let res: Response;
    try {
      res = await this.fetchImpl(this.base + path, {
        method,
        headers,
        body: method === "POST" ? JSON.stringify(body ?? {}) : undefined,
        cache: "no-store",
        credentials: "same-origin",
        signal: opts.signal,
      });
    } catch (e) {
      if (e instanceof DOMException && e.name === "AbortError") throw e;
      const message = "The server could not be reached. Check your connection and try again.";
      if (doLog) {
        this.record({
          ...base,
          status: 0,
          xCache: null,
          serverTiming: null,
          etag: null,
          cacheControl: null,
          durationMs: elapsed(),
          error: e instanceof Error ? e.message : String(e),
          servedBy: null,
          commitLsn: null,
        });
      }
      throw new ApiError(0, { code: null, message, details: e instanceof Error ? e.message : null, hint: null });
    }

    const h = res.headers;
    const etag = h.get("ETag");
    // Answered: the live mark is spent, unless a later event renewed it.
    if (due !== undefined) {
      const now = this.liveDue.get(path);
      if (now === due || (now && due && compareLsn(now, due) <= 0)) this.liveDue.delete(path);
    }
    const xkey = h.has(XKEY_HEADER) ? parseXkey(h.get(XKEY_HEADER)) : undefined;
    const text = res.status === 304 ? "" : await res.text().catch(() => "");
    const entry = {
      ...base,
      status: res.status,
      xCache: h.get("X-Cache"),
      serverTiming: h.get("Server-Timing"),
      etag: etag ?? (res.status === 304 ? (kept?.etag ?? null) : null),
      cacheControl: h.get("Cache-Control"),
      durationMs: elapsed(),
      error: null as string | null,
      servedBy: h.get("X-Served-By"),
      commitLsn: method === "POST" && res.ok ? normalizeLsn(h.get(COMMIT_LSN_HEADER)) : null,
    };
    // A committed write: later reads must not show anything older.
    if (entry.commitLsn) this.noteCommitLsnQuietly(entry.commitLsn);

    if (res.status === 304) {
      if (doLog) this.record(entry);
      if (kept) {
        // Still current: refresh its recency, and its ETag if the server sent one.
        this.keep(path, etag ?? kept.etag, kept.body, xkey ?? kept.xkey);
        this.save();
        return kept.body as T;
      }
      // A 304 to an unconditional request: ask again without condition.
      if (!retried) return this.request<T>(method, path, body, token, { ...opts, conditional: false }, true);
      throw new ApiError(304, { code: null, message: "Unexpected 304 Not Modified", details: null, hint: null });
    }

    if (!res.ok) {
      const err = parseErrorBody(res.status, res.statusText, text);
      entry.error = err.message;
      if (doLog) this.record(entry);
      throw new ApiError(res.status, err);
    }

    let data: unknown = null;
    if (text.trim() !== "") {
      try {
        data = JSON.parse(text);
      } catch {
        entry.error = "response is not JSON";
        if (doLog) this.record(entry);
        throw new ApiError(res.status, {
          code: null,
          message: "The server sent an answer that is not JSON.",
          details: text.slice(0, 200),
          hint: null,
        });
      }
    }
    if (method === "GET") {
      if (etag) this.keep(path, etag, data, xkey);
      else this.kept.delete(path);
    }
    if (doLog) this.record(entry);
    else this.save();
    if (method === "POST" && !entry.commitLsn && path !== WAL_LSN_PATH) await this.catchUpWithPrimary(token);
    return data as T;
  }

  // A write answered without X-Commit-LSN: the primary's WAL position now
  // is at or after its commit, so reads that wait for it see the write.
  // Part of the write's latency, so that the next read already carries it.
  // A server without WAL_LSN_PATH (404), or any failure, leaves reads as
  // they were: as fresh as the server that answers them.
  private async catchUpWithPrimary(token: string | undefined): Promise<void> {
    if (this.walLsnMissing) return;
    try {
      const r = await this.request<{ lsn?: unknown } | null>("POST", WAL_LSN_PATH, {}, token, {});
      const lsn = normalizeLsn(r && typeof r.lsn === "string" ? r.lsn : null);
      if (lsn) this.noteCommitLsn(lsn);
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) this.walLsnMissing = true;
    }
  }
}
