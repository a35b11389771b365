// Live changes: the server's event stream (GET /api/events, server-sent
// events) says which edge keys a committed write invalidated; the app then
// revalidates exactly the answers on screen that carry one of them (their
// xkey header, kept by the ApiClient).  No data travels on the stream.
//
//   event: invalidate   data: {"keys":["k…","k…"],"lsn":"0/1A2B3C4"}
//   event: reset        data: {}          (the server may have missed some:
//                                          revalidate everything on screen)
//
// The connection, its state (for the "live" indicator) and reconnection:
//
// - One EventSource at a time.  On an error it is closed and made anew after
//   a delay that doubles (1 s, 2 s, 4 s … 30 s, with jitter), so that a
//   server that is down or refuses is not asked every few seconds forever;
//   the delay starts over once a connection has lasted a while.
// - The new one carries the last event id it had (?lastEventId=, since a
//   new EventSource does not send Last-Event-ID): the server resends what
//   was missed, or a reset when it no longer has it.  A reconnection
//   without an id (nothing received yet) may have missed events: reset.
// - When the first attempt fails, a plain GET tells why: 404 is a server
//   without the stream (state "off", asked again only after a long while).
//
// Framework-free, so that it is tested with a fake EventSource and fake
// timers; components/LiveUpdates.tsx connects it to SWR.

export type LiveState = "idle" | "connecting" | "live" | "reconnecting" | "off";

export interface LiveStatus {
  state: LiveState;
  retryAt: number | null; // when the next attempt is, ms since the epoch
  invalidations: number;
  resets: number;
  lastEventAt: number | null;
  lastEventId: string | null;
}

export interface InvalidateEvent {
  keys: string[];
  lsn: string | null;
  id: string | null;
}

// The parts of EventSource the client uses.
export interface EventSourceLike {
  readonly readyState: number;
  onopen: ((ev: Event) => unknown) | null;
  onerror: ((ev: Event) => unknown) | null;
  addEventListener(type: string, listener: (ev: MessageEvent) => void): void;
  close(): void;
}

export type EventSourceFactory = (url: string) => EventSourceLike;

export interface LiveEventsOptions {
  url: string; // "/api/events": the API's origin and base
  eventSource?: EventSourceFactory | null; // null: none (the state is "off")
  fetch?: typeof fetch; // for the probe after a failed first attempt
  now?: () => number;
  setTimer?: (fn: () => void, ms: number) => unknown;
  clearTimer?: (t: unknown) => void;
  random?: () => number;
  minDelayMs?: number;
  maxDelayMs?: number;
  offDelayMs?: number; // a server without the stream is asked again after
  stableMs?: number; // a connection this old resets the delay
}

type Listener = () => void;

function parseKeys(data: string): { keys: string[]; lsn: string | null } | null {
  try {
    const j = JSON.parse(data) as { keys?: unknown; lsn?: unknown };
    if (!j || !Array.isArray(j.keys)) return null;
    const keys = j.keys.filter((k): k is string => typeof k === "string");
    return { keys, lsn: typeof j.lsn === "string" ? j.lsn : null };
  } catch {
    return null;
  }
}

export class LiveEvents {
  private readonly url: string;
  private readonly factory: EventSourceFactory | null;
  private readonly fetchImpl: typeof fetch | null;
  private readonly now: () => number;
  private readonly setTimer: (fn: () => void, ms: number) => unknown;
  private readonly clearTimer: (t: unknown) => void;
  private readonly random: () => number;
  private readonly minDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly offDelayMs: number;
  private readonly stableMs: number;

  private es: EventSourceLike | null = null;
  private timer: unknown = null;
  private running = false;
  private attempts = 0; // failed attempts since the last stable connection
  private openedAt: number | null = null; // of the current connection
  private everOpen = false; // some connection opened (this one or before)
  private status: LiveStatus = {
    state: "idle",
    retryAt: null,
    invalidations: 0,
    resets: 0,
    lastEventAt: null,
    lastEventId: null,
  };
  private statusListeners = new Set<Listener>();
  private invalidateListeners = new Set<(e: InvalidateEvent) => void>();
  private resetListeners = new Set<(why: string) => void>();

  constructor(opts: LiveEventsOptions) {
    this.url = opts.url;
    this.factory =
      opts.eventSource !== undefined
        ? opts.eventSource
        : typeof EventSource !== "undefined"
          ? (u: string) => new EventSource(u) as unknown as EventSourceLike
          : null;
    this.fetchImpl = opts.fetch ?? (typeof fetch !== "undefined" ? (i, init) => globalThis.fetch(i, init) : null);
    this.now = opts.now ?? (() => Date.now());
    this.setTimer = opts.setTimer ?? ((fn, ms) => setTimeout(fn, ms));
    this.clearTimer = opts.clearTimer ?? ((t) => clearTimeout(t as ReturnType<typeof setTimeout>));
    this.random = opts.random ?? Math.random;
    this.minDelayMs = opts.minDelayMs ?? 1000;
    this.maxDelayMs = opts.maxDelayMs ?? 30000;
    this.offDelayMs = opts.offDelayMs ?? 5 * 60 * 1000;
    this.stableMs = opts.stableMs ?? 10000;
  }

  // --- subscriptions ---------------------------------------------------------

  getStatus(): LiveStatus {
    return this.status;
  }

  subscribe(listener: Listener): () => void {
    this.statusListeners.add(listener);
    return () => this.statusListeners.delete(listener);
  }

  onInvalidate(fn: (e: InvalidateEvent) => void): () => void {
    this.invalidateListeners.add(fn);
    return () => this.invalidateListeners.delete(fn);
  }

  onReset(fn: (why: string) => void): () => void {
    this.resetListeners.add(fn);
    return () => this.resetListeners.delete(fn);
  }

  private setStatus(patch: Partial<LiveStatus>): void {
    // a new object each time: useSyncExternalStore compares snapshots
    this.status = { ...this.status, ...patch };
    for (const l of [...this.statusListeners]) l();
  }

  private emitReset(why: string): void {
    this.setStatus({ resets: this.status.resets + 1, lastEventAt: this.now() });
    for (const l of [...this.resetListeners]) l(why);
  }

  // --- the connection ----------------------------------------------------------

  start(): void {
    if (this.running) return;
    this.running = true;
    if (!this.factory) {
      this.setStatus({ state: "off", retryAt: null });
      return;
    }
    this.connect();
  }

  stop(): void {
    this.running = false;
    this.dropConnection();
    if (this.timer !== null) this.clearTimer(this.timer);
    this.timer = null;
    this.setStatus({ state: "idle", retryAt: null });
  }

  private dropConnection(): void {
    if (!this.es) return;
    const es = this.es;
    this.es = null;
    es.onopen = null;
    es.onerror = null;
    es.close();
  }

  private connectUrl(): string {
    const id = this.status.lastEventId;
    if (!id) return this.url;
    return `${this.url}${this.url.includes("?") ? "&" : "?"}lastEventId=${encodeURIComponent(id)}`;
  }

  private connect(): void {
    if (!this.running || !this.factory) return;
    this.timer = null;
    this.openedAt = null;
    this.setStatus({ state: this.everOpen ? "reconnecting" : "connecting", retryAt: null });
    let es: EventSourceLike;
    try {
      es = this.factory(this.connectUrl());
    } catch {
      this.failed(false);
      return;
    }
    this.es = es;
    es.onopen = () => {
      if (this.es !== es) return;
      const reconnect = this.everOpen;
      this.openedAt = this.now();
      this.everOpen = true;
      this.setStatus({ state: "live", retryAt: null });
      // Without an id the server cannot resend what this client missed.
      if (reconnect && !this.status.lastEventId) this.emitReset("reconnected without an event id");
    };
    es.onerror = () => {
      if (this.es !== es) return;
      const wasOpen = this.openedAt !== null;
      this.dropConnection();
      this.failed(wasOpen);
    };
    es.addEventListener("invalidate", (ev: MessageEvent) => {
      if (this.es !== es) return;
      const parsed = parseKeys(String(ev.data));
      const id = ev.lastEventId || null;
      this.setStatus({
        invalidations: this.status.invalidations + 1,
        lastEventAt: this.now(),
        lastEventId: id ?? this.status.lastEventId,
      });
      if (!parsed) return;
      const e: InvalidateEvent = { keys: parsed.keys, lsn: parsed.lsn, id };
      for (const l of [...this.invalidateListeners]) l(e);
    });
    es.addEventListener("reset", () => {
      if (this.es !== es) return;
      this.emitReset("the server may have missed changes");
    });
  }

  // The delay before attempt number `attempts` (from 1): doubling, capped,
  // between half and all of it.
  private delay(): number {
    const full = Math.min(this.maxDelayMs, this.minDelayMs * 2 ** Math.max(0, this.attempts - 1));
    return Math.round(full * (0.5 + this.random() / 2));
  }

  private failed(wasOpen: boolean): void {
    if (!this.running) return;
    if (wasOpen && this.openedAt !== null && this.now() - this.openedAt >= this.stableMs) this.attempts = 0;
    this.openedAt = null;
    this.attempts++;
    if (!this.everOpen && this.attempts === 1 && this.fetchImpl) {
      void this.probe();
      return;
    }
    this.retryIn(this.delay());
  }

  private retryIn(ms: number): void {
    if (!this.running) return;
    if (this.timer !== null) this.clearTimer(this.timer);
    this.setStatus({ state: this.status.state === "off" ? "off" : "reconnecting", retryAt: this.now() + ms });
    this.timer = this.setTimer(() => this.connect(), ms);
  }

  // Why did the very first attempt fail?  404: this server has no stream.
  private async probe(): Promise<void> {
    let status = 0;
    const ctl = typeof AbortController !== "undefined" ? new AbortController() : null;
    try {
      const res = await this.fetchImpl!(this.url, {
        headers: { Accept: "text/event-stream" },
        cache: "no-store",
        signal: ctl?.signal,
      });
      status = res.status;
    } catch {
      status = 0;
    } finally {
      ctl?.abort(); // a stream that answers 200 now: do not keep it
    }
    if (!this.running) return;
    if (status === 404) {
      this.setStatus({ state: "off" });
      this.retryIn(this.offDelayMs);
    } else {
      this.retryIn(this.delay());
    }
  }
}

// The keys of an xkey header ("k1 k2 k3"), or [] when there is none.
export function parseXkey(header: string | null | undefined): string[] {
  if (!header) return [];
  return header.split(/[\s,]+/).filter((k) => k.length > 0);
}
