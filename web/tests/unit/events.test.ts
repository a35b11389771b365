import { beforeEach, describe, expect, it } from "vitest";
import { LiveEvents, parseXkey, type EventSourceLike, type InvalidateEvent } from "@/lib/events";

// A fake EventSource: the test opens it, fails it and sends it events.
class FakeEventSource implements EventSourceLike {
  readyState = 0;
  onopen: ((ev: Event) => unknown) | null = null;
  onerror: ((ev: Event) => unknown) | null = null;
  closed = false;
  private listeners = new Map<string, ((ev: MessageEvent) => void)[]>();

  constructor(readonly url: string) {}

  addEventListener(type: string, listener: (ev: MessageEvent) => void): void {
    this.listeners.set(type, [...(this.listeners.get(type) ?? []), listener]);
  }

  close(): void {
    this.closed = true;
    this.readyState = 2;
  }

  open(): void {
    this.readyState = 1;
    this.onopen?.(new Event("open"));
  }

  fail(): void {
    this.readyState = 0;
    this.onerror?.(new Event("error"));
  }

  send(type: string, data: string, lastEventId = ""): void {
    for (const l of this.listeners.get(type) ?? []) l({ data, lastEventId } as MessageEvent);
  }
}

// Time that moves only when the test says so, and its timers.
function clock() {
  let now = 1_000_000;
  const timers: { at: number; fn: () => void; id: number }[] = [];
  let nextId = 1;
  return {
    now: () => now,
    setTimer: (fn: () => void, ms: number) => {
      const id = nextId++;
      timers.push({ at: now + ms, fn, id });
      return id;
    },
    clearTimer: (id: unknown) => {
      const i = timers.findIndex((t) => t.id === id);
      if (i >= 0) timers.splice(i, 1);
    },
    pending: () => timers.map((t) => t.at - now),
    advance(ms: number) {
      now += ms;
      for (;;) {
        const due = timers.filter((t) => t.at <= now).sort((a, b) => a.at - b.at)[0];
        if (!due) break;
        timers.splice(timers.indexOf(due), 1);
        due.fn();
      }
    },
  };
}

const flush = () => new Promise((r) => setTimeout(r, 0));

describe("LiveEvents", () => {
  let sources: FakeEventSource[];
  let c: ReturnType<typeof clock>;
  let probeStatus: number;
  let probes: string[];
  let live: LiveEvents;
  let invalidations: InvalidateEvent[];
  let resets: string[];

  const latest = () => sources[sources.length - 1];

  beforeEach(() => {
    sources = [];
    c = clock();
    probeStatus = 200;
    probes = [];
    live = new LiveEvents({
      url: "/api/events",
      eventSource: (url) => {
        const es = new FakeEventSource(url);
        sources.push(es);
        return es;
      },
      fetch: (async (input: RequestInfo | URL) => {
        probes.push(String(input));
        if (probeStatus === 0) throw new TypeError("Failed to fetch");
        return new Response(null, { status: probeStatus });
      }) as typeof fetch,
      now: c.now,
      setTimer: c.setTimer,
      clearTimer: c.clearTimer,
      random: () => 1, // no jitter: the full delay
    });
    invalidations = [];
    resets = [];
    live.onInvalidate((e) => invalidations.push(e));
    live.onReset((why) => resets.push(why));
  });

  it("connects to the stream of the API's origin and says when it is live", () => {
    const states: string[] = [];
    live.subscribe(() => states.push(live.getStatus().state));
    live.start();
    expect(sources).toHaveLength(1);
    expect(latest().url).toBe("/api/events");
    expect(live.getStatus().state).toBe("connecting");
    latest().open();
    expect(live.getStatus().state).toBe("live");
    expect(states).toEqual(["connecting", "live"]);
    expect(resets).toEqual([]); // the first connection: nothing was missed
    live.start(); // idempotent
    expect(sources).toHaveLength(1);
  });

  it("hands on the keys and the LSN of an invalidate event, and remembers its id", () => {
    live.start();
    latest().open();
    latest().send("invalidate", '{"keys":["ka","kb"],"lsn":"0/1A2B"}', "77/12");
    expect(invalidations).toEqual([{ keys: ["ka", "kb"], lsn: "0/1A2B", id: "77/12" }]);
    latest().send("invalidate", '{"keys":["kc"]}');
    expect(invalidations[1]).toEqual({ keys: ["kc"], lsn: null, id: null });
    latest().send("invalidate", "not json");
    expect(invalidations).toHaveLength(2);
    expect(live.getStatus()).toMatchObject({ invalidations: 3, lastEventId: "77/12", lastEventAt: c.now() });
  });

  it("passes a reset on", () => {
    live.start();
    latest().open();
    latest().send("reset", "{}");
    expect(resets).toHaveLength(1);
    expect(live.getStatus().resets).toBe(1);
  });

  it("reconnects after a delay with the last event id, and then needs no reset", () => {
    live.start();
    latest().open();
    latest().send("invalidate", '{"keys":["ka"]}', "77/12");
    latest().fail();
    expect(sources[0].closed).toBe(true);
    expect(live.getStatus().state).toBe("reconnecting");
    expect(c.pending()).toEqual([1000]);
    expect(live.getStatus().retryAt).toBe(c.now() + 1000);
    c.advance(999);
    expect(sources).toHaveLength(1);
    c.advance(1);
    expect(sources).toHaveLength(2);
    expect(latest().url).toBe("/api/events?lastEventId=77%2F12");
    latest().open();
    expect(live.getStatus().state).toBe("live");
    expect(resets).toEqual([]); // the server resends what was missed, or sends a reset
  });

  it("after a reconnection without an event id, resets: it may have missed events", () => {
    live.start();
    latest().open();
    latest().fail();
    c.advance(1000);
    expect(latest().url).toBe("/api/events");
    latest().open();
    expect(resets).toEqual(["reconnected without an event id"]);
  });

  it("backs off while the server stays down: 1, 2, 4 … 30 s", async () => {
    live.start();
    latest().open(); // it was up once
    const delays: number[] = [];
    for (let i = 0; i < 7; i++) {
      latest().fail();
      delays.push(c.pending()[0]);
      c.advance(c.pending()[0]);
    }
    expect(delays).toEqual([1000, 2000, 4000, 8000, 16000, 30000, 30000]);
    expect(probes).toEqual([]);
  });

  it("starts the delays over once a connection lasted", () => {
    live.start();
    latest().open();
    latest().fail();
    c.advance(1000);
    latest().fail();
    expect(c.pending()).toEqual([2000]);
    c.advance(2000);
    latest().open();
    c.advance(60_000);
    latest().fail();
    expect(c.pending()).toEqual([1000]);
  });

  it("jitters the delay between half and all of it", () => {
    const l2 = new LiveEvents({
      url: "/api/events",
      eventSource: (url) => {
        const es = new FakeEventSource(url);
        sources.push(es);
        return es;
      },
      now: c.now,
      setTimer: c.setTimer,
      clearTimer: c.clearTimer,
      random: () => 0,
    });
    l2.start();
    latest().open();
    latest().fail();
    expect(c.pending()).toEqual([500]);
  });

  it("asks why the first attempt failed: a 404 means no stream here (off)", async () => {
    probeStatus = 404;
    live.start();
    latest().fail();
    await flush();
    expect(probes).toEqual(["/api/events"]);
    expect(live.getStatus().state).toBe("off");
    expect(c.pending()).toEqual([5 * 60 * 1000]);
  });

  it("retries with backoff when the first attempt failed for another reason", async () => {
    probeStatus = 0; // unreachable
    live.start();
    latest().fail();
    await flush();
    expect(live.getStatus().state).toBe("reconnecting");
    expect(c.pending()).toEqual([1000]);
    c.advance(1000);
    latest().fail();
    expect(c.pending()).toEqual([2000]); // probed once only
    expect(probes).toHaveLength(1);
  });

  it("stops: closes the stream, cancels the retry, ignores late events", () => {
    live.start();
    const es = latest();
    es.open();
    es.fail();
    live.stop();
    expect(c.pending()).toEqual([]);
    expect(live.getStatus().state).toBe("idle");
    es.send("invalidate", '{"keys":["ka"]}');
    expect(invalidations).toEqual([]);
    live.start();
    expect(sources).toHaveLength(2);
  });

  it("is off where there is no EventSource", () => {
    const none = new LiveEvents({ url: "/api/events", eventSource: null });
    none.start();
    expect(none.getStatus().state).toBe("off");
    expect(c.pending()).toEqual([]);
  });
});

describe("parseXkey", () => {
  it("splits the header into keys", () => {
    expect(parseXkey("ka kb  kc")).toEqual(["ka", "kb", "kc"]);
    expect(parseXkey(" ka,kb ")).toEqual(["ka", "kb"]);
    expect(parseXkey("")).toEqual([]);
    expect(parseXkey(null)).toEqual([]);
  });
});
