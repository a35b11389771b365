import { beforeEach, describe, expect, it } from "vitest";
import { ApiClient, ApiError, type KeyValueStore } from "@/lib/api";

// A fake server: one JSON answer per path with an ETag, a 304 when the
// request's If-None-Match names it; records what each request carried.
interface Seen {
  url: string;
  method: string;
  headers: Headers;
  body: string | null;
  cache: RequestCache | undefined;
}

function fakeServer() {
  const answers = new Map<string, { etag: string | null; body: unknown; xcache: string; extra: Record<string, string> }>();
  const seen: Seen[] = [];
  let down = false;
  const fetch = async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    const url = String(input);
    const headers = new Headers(init?.headers);
    seen.push({ url, method: init?.method ?? "GET", headers, body: (init?.body as string) ?? null, cache: init?.cache });
    if (down) throw new TypeError("Failed to fetch");
    const path = url.replace(/^\/api/, "");
    if (path.startsWith("/rpc/boom")) {
      return new Response(JSON.stringify({ code: "22023", message: "page must be between 1 and 10000", details: null, hint: "try 1" }), {
        status: 400,
        headers: { "Content-Type": "application/json" },
      });
    }
    if (path.startsWith("/rpc/refused")) {
      // an error answer that carries an LSN all the same
      return new Response(JSON.stringify({ code: "42501", message: "permission denied", details: null, hint: null }), {
        status: 403,
        headers: { "Content-Type": "application/json", "X-Commit-LSN": "9/9" },
      });
    }
    if (path.startsWith("/rpc/proxy")) return new Response("<html>Bad Gateway</html>", { status: 502, statusText: "Bad Gateway" });
    if (path.startsWith("/rpc/garbage")) return new Response("{not json", { status: 200 });
    if (path.startsWith("/rpc/rogue304")) return new Response(null, { status: 304, headers: { ETag: '"r"' } });
    const a = answers.get(path);
    if (!a) {
      return new Response(JSON.stringify({ code: "HC404", message: "listing 9 not found", details: null, hint: null }), { status: 404 });
    }
    const h: Record<string, string> = {
      "X-Cache": a.xcache,
      "Server-Timing": 'cache;desc="l1";dur=0.042',
      "Cache-Control": "public, max-age=5",
      ...a.extra,
    };
    if (a.etag) h.ETag = a.etag;
    if (a.etag && headers.get("If-None-Match") === a.etag) return new Response(null, { status: 304, headers: { ...h, "X-Cache": "HIT" } });
    return new Response(JSON.stringify(a.body), { status: 200, headers: { ...h, "Content-Type": "application/json" } });
  };
  return {
    fetch: fetch as typeof globalThis.fetch,
    seen,
    set(path: string, body: unknown, etag: string | null, xcache = "MISS", extra: Record<string, string> = {}) {
      answers.set(path, { body, etag, xcache, extra });
    },
    setDown(v: boolean) {
      down = v;
    },
  };
}

function memoryStore(): KeyValueStore & { data: Map<string, string> } {
  const data = new Map<string, string>();
  return {
    data,
    getItem: (k) => data.get(k) ?? null,
    setItem: (k, v) => void data.set(k, v),
    removeItem: (k) => void data.delete(k),
  };
}

describe("ApiClient", () => {
  let server: ReturnType<typeof fakeServer>;
  let client: ApiClient;

  beforeEach(() => {
    server = fakeServer();
    client = new ApiClient({ base: "/api", fetch: server.fetch, now: () => 1000 });
  });

  it("fetches JSON with no-store and logs the response headers", async () => {
    server.set("/rpc/listing?id=1", { id: 1 }, '"e1"');
    expect(await client.get("/rpc/listing?id=1")).toEqual({ id: 1 });
    expect(server.seen[0].url).toBe("/api/rpc/listing?id=1");
    expect(server.seen[0].cache).toBe("no-store");
    expect(server.seen[0].headers.get("If-None-Match")).toBeNull();
    expect(server.seen[0].headers.get("Accept")).toBe("application/json");
    const [e] = client.getLog();
    expect(e).toMatchObject({
      method: "GET",
      path: "/rpc/listing?id=1",
      status: 200,
      xCache: "MISS",
      serverTiming: 'cache;desc="l1";dur=0.042',
      etag: '"e1"',
      cacheControl: "public, max-age=5",
      conditional: false,
      error: null,
      at: 1000,
    });
  });

  it("revalidates with If-None-Match and returns the kept body on 304", async () => {
    server.set("/rpc/listing?id=1", { id: 1, v: 1 }, '"e1"');
    await client.get("/rpc/listing?id=1");
    const again = await client.get("/rpc/listing?id=1");
    expect(again).toEqual({ id: 1, v: 1 });
    expect(server.seen[1].headers.get("If-None-Match")).toBe('"e1"');
    const log = client.getLog();
    expect(log.map((e) => e.status)).toEqual([200, 304]);
    expect(log[1]).toMatchObject({ conditional: true, xCache: "HIT", etag: '"e1"' });
  });

  it("takes the new body and ETag when the answer changed", async () => {
    server.set("/rpc/listing?id=1", { v: 1 }, '"e1"');
    await client.get("/rpc/listing?id=1");
    server.set("/rpc/listing?id=1", { v: 2 }, '"e2"', "MISS");
    expect(await client.get("/rpc/listing?id=1")).toEqual({ v: 2 });
    expect(client.keptEtag("/rpc/listing?id=1")).toBe('"e2"');
    server.set("/rpc/listing?id=1", { v: 2 }, '"e2"', "L1");
    await client.get("/rpc/listing?id=1");
    expect(server.seen[2].headers.get("If-None-Match")).toBe('"e2"');
    expect(client.getLog().map((e) => e.status)).toEqual([200, 200, 304]);
  });

  it("keeps nothing for an answer without ETag (a bypass)", async () => {
    server.set("/rpc/listings?page_size=20", { total: 0 }, null, "BYPASS");
    await client.get("/rpc/listings?page_size=20");
    await client.get("/rpc/listings?page_size=20");
    expect(server.seen[1].headers.get("If-None-Match")).toBeNull();
    expect(client.keptEtag("/rpc/listings?page_size=20")).toBeNull();
  });

  it("forgets ETags on request, so the next read is unconditional", async () => {
    server.set("/rpc/x", 1, '"x"');
    await client.get("/rpc/x");
    client.forgetEtags();
    await client.get("/rpc/x");
    expect(server.seen[1].headers.get("If-None-Match")).toBeNull();
    expect(client.getLog().map((e) => e.status)).toEqual([200, 200]);
  });

  it("asks again without condition after a 304 it did not ask for", async () => {
    await expect(client.get("/rpc/rogue304")).rejects.toMatchObject({ status: 304 });
    expect(server.seen).toHaveLength(2);
    expect(server.seen[1].headers.get("If-None-Match")).toBeNull();
  });

  it("evicts the least recently used kept answers", async () => {
    const small = new ApiClient({ fetch: server.fetch, maxKept: 2 });
    for (const p of ["/rpc/a", "/rpc/b", "/rpc/c"]) server.set(p, p, `"${p}"`);
    await small.get("/rpc/a");
    await small.get("/rpc/b");
    await small.get("/rpc/a"); // 304: a is now the most recent
    await small.get("/rpc/c");
    expect(small.keptEtag("/rpc/a")).toBe('"/rpc/a"');
    expect(small.keptEtag("/rpc/b")).toBeNull();
    expect(small.keptEtag("/rpc/c")).toBe('"/rpc/c"');
  });

  it("turns the API's JSON error into an ApiError", async () => {
    const err = (await client.get("/rpc/boom").catch((e) => e)) as ApiError;
    expect(err).toBeInstanceOf(ApiError);
    expect(err).toMatchObject({ status: 400, code: "22023", message: "page must be between 1 and 10000", hint: "try 1" });
    expect(err.unreachable).toBe(false);
    expect(client.getLog()[0]).toMatchObject({ status: 400, error: "page must be between 1 and 10000" });
    const nf = (await client.get("/rpc/listing?id=9").catch((e) => e)) as ApiError;
    expect(nf).toMatchObject({ status: 404, code: "HC404" });
  });

  it("reports a proxy's non-JSON error and an unreachable server", async () => {
    const bad = (await client.get("/rpc/proxy").catch((e) => e)) as ApiError;
    expect(bad.status).toBe(502);
    expect(bad.unreachable).toBe(true);
    expect(bad.message).toMatch(/^HTTP 502/);
    server.setDown(true);
    const down = (await client.get("/rpc/x").catch((e) => e)) as ApiError;
    expect(down).toBeInstanceOf(ApiError);
    expect(down.status).toBe(0);
    expect(down.unreachable).toBe(true);
    expect(down.message).toMatch(/could not be reached/);
    expect(client.getLog().at(-1)).toMatchObject({ status: 0, error: "Failed to fetch" });
  });

  it("refuses a 200 whose body is not JSON", async () => {
    await expect(client.get("/rpc/garbage")).rejects.toMatchObject({ status: 200 });
  });

  it("posts JSON with the bearer token, never conditionally", async () => {
    server.set("/rpc/update_listing", { id: 1, price_cents: 5 }, '"u"');
    await client.get("/rpc/update_listing");
    const out = await client.post("/rpc/update_listing", { id: 1, price_cents: 5 }, "tok.en.x");
    expect(out).toEqual({ id: 1, price_cents: 5 });
    const s = server.seen[1];
    expect(s.method).toBe("POST");
    expect(s.body).toBe('{"id":1,"price_cents":5}');
    expect(s.headers.get("Authorization")).toBe("Bearer tok.en.x");
    expect(s.headers.get("Content-Type")).toBe("application/json");
    expect(s.headers.get("If-None-Match")).toBeNull();
    expect(client.getLog()[1].method).toBe("POST");
  });

  it("does not log requests made with log: false, and tells subscribers of the others", async () => {
    server.set("/rpc/cache_stats", { l1_hits: 1 }, null, "BYPASS");
    let calls = 0;
    const unsubscribe = client.subscribe(() => calls++);
    await client.get("/rpc/cache_stats", { log: false });
    expect(client.getLog()).toHaveLength(0);
    await client.get("/rpc/cache_stats");
    expect(calls).toBe(1);
    unsubscribe();
    await client.get("/rpc/cache_stats");
    expect(calls).toBe(1);
    const before = client.getLog();
    client.clearLog();
    expect(client.getLog()).toHaveLength(0);
    expect(before).toHaveLength(2); // snapshots are immutable
  });

  it("caps the log", async () => {
    const c = new ApiClient({ fetch: server.fetch, maxLog: 3 });
    server.set("/rpc/x", 1, null);
    for (let i = 0; i < 5; i++) await c.get("/rpc/x");
    expect(c.getLog().map((e) => e.id)).toEqual([3, 4, 5]);
  });

  it("keeps ETags, bodies and the log across reloads in its storage", async () => {
    const store = memoryStore();
    const first = new ApiClient({ fetch: server.fetch, storage: store });
    server.set("/rpc/listing?id=1", { id: 1 }, '"e1"');
    await first.get("/rpc/listing?id=1");

    const second = new ApiClient({ fetch: server.fetch, storage: store });
    expect(second.getLog()).toHaveLength(1);
    expect(await second.get("/rpc/listing?id=1")).toEqual({ id: 1 });
    expect(server.seen[1].headers.get("If-None-Match")).toBe('"e1"');
    expect(second.getLog().map((e) => [e.id, e.status])).toEqual([
      [1, 200],
      [2, 304],
    ]);
  });

  it("survives unreadable or full storage", async () => {
    const store = memoryStore();
    store.setItem("hc.api", "{broken");
    const c = new ApiClient({ fetch: server.fetch, storage: store });
    expect(c.getLog()).toHaveLength(0);
    const full: KeyValueStore = { getItem: () => null, setItem: () => { throw new Error("QuotaExceededError"); }, removeItem: () => {} };
    const d = new ApiClient({ fetch: server.fetch, storage: full });
    server.set("/rpc/x", 1, '"x"');
    expect(await d.get("/rpc/x")).toBe(1);
  });
});

describe("ApiClient: reading one's own writes (X-Commit-LSN -> X-Min-LSN)", () => {
  let server: ReturnType<typeof fakeServer>;
  let client: ApiClient;
  const UPDATE = "/rpc/update_listing";
  const ITEM = "/rpc/listing?id=1";

  // The write answers with the LSN of its commit, as hc_http does.
  function writeAnswers(lsn: string | null) {
    server.set(UPDATE, { id: 1 }, null, "BYPASS", lsn ? { "X-Commit-LSN": lsn, "X-Served-By": "primary" } : {});
  }

  beforeEach(() => {
    server = fakeServer();
    client = new ApiClient({ base: "/api", fetch: server.fetch, now: () => 1000 });
    server.set(ITEM, { id: 1 }, '"e1"', "L1", { "X-Served-By": "replica" });
  });

  it("sends no X-Min-LSN before any write", async () => {
    await client.get(ITEM);
    expect(server.seen[0].headers.get("X-Min-LSN")).toBeNull();
    expect(client.minLsn).toBeNull();
    expect(client.getLog()[0]).toMatchObject({ minLsn: null, servedBy: "replica", commitLsn: null });
  });

  it("sends a write's X-Commit-LSN as X-Min-LSN on every later GET, and not on writes", async () => {
    writeAnswers("0/1A2B3C4");
    await client.post(UPDATE, { id: 1, title: "t" }, "tok");
    expect(client.minLsn).toBe("0/1A2B3C4");
    await client.get(ITEM);
    await client.get("/rpc/listing?id=2").catch(() => undefined); // any GET, even one that fails
    expect(server.seen[1].headers.get("X-Min-LSN")).toBe("0/1A2B3C4");
    expect(server.seen[2].headers.get("X-Min-LSN")).toBe("0/1A2B3C4");
    await client.post(UPDATE, { id: 1, title: "u" }, "tok");
    expect(server.seen[3].method).toBe("POST");
    expect(server.seen[3].headers.get("X-Min-LSN")).toBeNull();
    const log = client.getLog();
    expect(log[0]).toMatchObject({ method: "POST", commitLsn: "0/1A2B3C4", servedBy: "primary", minLsn: null });
    expect(log[1]).toMatchObject({ method: "GET", minLsn: "0/1A2B3C4", servedBy: "replica" });
  });

  it("keeps the greatest LSN: an older one never lowers it", async () => {
    writeAnswers("1/10");
    await client.post(UPDATE, { id: 1 }, "tok");
    writeAnswers("0/FFFFFFFF"); // before 1/10, although longer
    await client.post(UPDATE, { id: 1 }, "tok");
    expect(client.minLsn).toBe("1/10");
    writeAnswers("1/9");
    await client.post(UPDATE, { id: 1 }, "tok");
    expect(client.minLsn).toBe("1/10");
    writeAnswers("1/A0");
    await client.post(UPDATE, { id: 1 }, "tok");
    expect(client.minLsn).toBe("1/A0");
    await client.get(ITEM);
    expect(server.seen.at(-1)?.headers.get("X-Min-LSN")).toBe("1/A0");
  });

  it("ignores a write without X-Commit-LSN, a malformed one, and failed writes", async () => {
    writeAnswers(null);
    await client.post(UPDATE, { id: 1 }, "tok");
    expect(client.minLsn).toBeNull();
    writeAnswers("not/an-lsn");
    await client.post(UPDATE, { id: 1 }, "tok");
    expect(client.minLsn).toBeNull();
    // a GET answer's X-Commit-LSN is not a write of this session
    server.set(ITEM, { id: 1 }, '"e1"', "L1", { "X-Commit-LSN": "5/5" });
    await client.get(ITEM);
    expect(client.minLsn).toBeNull();
    // an error answer, even with the header, changed nothing
    await expect(client.post("/rpc/refused", { id: 1 }, "tok")).rejects.toMatchObject({ status: 403 });
    expect(client.minLsn).toBeNull();
    await client.get(ITEM);
    expect(server.seen.at(-1)?.headers.get("X-Min-LSN")).toBeNull();
  });

  it("normalizes the LSN as PostgreSQL writes it", async () => {
    writeAnswers("0/00abc");
    await client.post(UPDATE, { id: 1 }, "tok");
    expect(client.minLsn).toBe("0/ABC");
  });

  it("keeps the ETag behaviour: conditional GETs carry both headers, a 304 returns the kept body", async () => {
    await client.get(ITEM);
    writeAnswers("0/10");
    await client.post(UPDATE, { id: 1 }, "tok");
    expect(await client.get(ITEM)).toEqual({ id: 1 });
    const last = server.seen.at(-1)!;
    expect(last.headers.get("If-None-Match")).toBe('"e1"');
    expect(last.headers.get("X-Min-LSN")).toBe("0/10");
    expect(client.getLog().map((e) => e.status)).toEqual([200, 200, 304]);
  });

  it("keeps the LSN across reloads (sessionStorage), and through clearing the log or the ETags", async () => {
    const store = memoryStore();
    const first = new ApiClient({ fetch: server.fetch, storage: store });
    writeAnswers("2/40");
    await first.post(UPDATE, { id: 1 }, "tok");
    first.clearLog();
    first.forgetEtags();
    expect(first.minLsn).toBe("2/40");

    const second = new ApiClient({ fetch: server.fetch, storage: store });
    expect(second.minLsn).toBe("2/40");
    await second.get(ITEM);
    expect(server.seen.at(-1)?.headers.get("X-Min-LSN")).toBe("2/40");

    // a stored value that is not an LSN is dropped
    store.setItem("hc.api", JSON.stringify({ kept: [], log: [], minLsn: "garbage" }));
    expect(new ApiClient({ fetch: server.fetch, storage: store }).minLsn).toBeNull();
  });

  it("tells subscribers when the LSN moves", () => {
    let calls = 0;
    client.subscribe(() => calls++);
    client.noteCommitLsn("0/5");
    client.noteCommitLsn("0/4"); // older: nothing changes
    client.noteCommitLsn(null);
    expect(calls).toBe(1);
    expect(client.minLsn).toBe("0/5");
  });

  describe("a server without X-Commit-LSN (PostgREST): POST /rpc/wal_lsn after the write", () => {
    it("takes the primary's WAL position as the LSN to read at", async () => {
      writeAnswers(null);
      server.set("/rpc/wal_lsn", { lsn: "3/10" }, null, "BYPASS");
      await client.post(UPDATE, { id: 1, title: "t" }, "tok");
      expect(server.seen.map((r) => `${r.method} ${r.url}`)).toEqual(["POST /api/rpc/update_listing", "POST /api/rpc/wal_lsn"]);
      expect(server.seen[1].headers.get("Authorization")).toBe("Bearer tok");
      expect(client.minLsn).toBe("3/10");
      await client.get(ITEM);
      expect(server.seen.at(-1)?.headers.get("X-Min-LSN")).toBe("3/10");
    });

    it("does not ask when the write carried X-Commit-LSN", async () => {
      writeAnswers("0/20");
      server.set("/rpc/wal_lsn", { lsn: "3/10" }, null, "BYPASS");
      await client.post(UPDATE, { id: 1 }, "tok");
      expect(server.seen.map((r) => r.url)).toEqual(["/api/rpc/update_listing"]);
      expect(client.minLsn).toBe("0/20");
    });

    it("asks a server without it once (404), and a failure never fails the write", async () => {
      writeAnswers(null);
      expect(await client.post(UPDATE, { id: 1 }, "tok")).toEqual({ id: 1 });
      expect(await client.post(UPDATE, { id: 1 }, "tok")).toEqual({ id: 1 });
      expect(server.seen.filter((r) => r.url === "/api/rpc/wal_lsn")).toHaveLength(1);
      expect(client.minLsn).toBeNull();
    });

    it("ignores an answer that is not an LSN", async () => {
      writeAnswers(null);
      server.set("/rpc/wal_lsn", { lsn: "recovery" }, null, "BYPASS");
      await client.post(UPDATE, { id: 1 }, "tok");
      expect(client.minLsn).toBeNull();
    });
  });
});

describe("ApiClient and live changes: xkeys, the answers an event concerns, X-Min-LSN", () => {
  const ITEM = "/rpc/listing?id=1";
  const SEARCH = "/rpc/listings?city=Boston&page_size=20";
  const OTHER = "/rpc/listings?city=Denver&page_size=20";
  let server: ReturnType<typeof fakeServer>;
  let client: ApiClient;

  beforeEach(() => {
    server = fakeServer();
    client = new ApiClient({ base: "/api", fetch: server.fetch });
    server.set(ITEM, { id: 1 }, '"i1"', "MISS", { xkey: "kid1 kcityboston klistings kstar" });
    server.set(SEARCH, { total: 1 }, '"s1"', "MISS", { xkey: "kcityboston klistings kstar" });
    server.set(OTHER, { total: 2 }, '"o1"', "MISS", { xkey: "kcitydenver klistings kstar" });
  });

  it("keeps each answer's xkey with its ETag and body", async () => {
    await client.get(ITEM);
    expect(client.keptXkey(ITEM)).toEqual(["kid1", "kcityboston", "klistings", "kstar"]);
    server.set("/rpc/nokeys", 1, '"n"');
    await client.get("/rpc/nokeys");
    expect(client.keptXkey("/rpc/nokeys")).toBeNull();
  });

  it("finds exactly the kept answers that carry one of the keys", async () => {
    for (const p of [ITEM, SEARCH, OTHER]) await client.get(p);
    expect(client.pathsWithKeys(["kid1"])).toEqual([ITEM]);
    expect(client.pathsWithKeys(["kcityboston", "knothing"]).sort()).toEqual([ITEM, SEARCH].sort());
    expect(client.pathsWithKeys(["kstar"])).toHaveLength(3);
    expect(client.pathsWithKeys(["knothing"])).toEqual([]);
    expect(client.pathsWithKeys([])).toEqual([]);
  });

  it("refreshes the xkey from a 304 that has one, keeps it from one that has none", async () => {
    await client.get(ITEM);
    server.set(ITEM, { id: 1 }, '"i1"', "L1", { xkey: "kid1 knew" });
    await client.get(ITEM);
    expect(client.getLog().at(-1)?.status).toBe(304);
    expect(client.keptXkey(ITEM)).toEqual(["kid1", "knew"]);
    server.set(ITEM, { id: 1 }, '"i1"', "L1");
    await client.get(ITEM);
    expect(client.keptXkey(ITEM)).toEqual(["kid1", "knew"]);
  });

  it("sends the event's LSN with the next GET of each answer it concerns, once, and logs it as live", async () => {
    await client.get(ITEM);
    await client.get(SEARCH);
    client.markLive(client.pathsWithKeys(["kid1"]), "0/2000");
    await client.get(ITEM);
    await client.get(SEARCH);
    await client.get(ITEM);
    const [, , live, notLive, again] = server.seen;
    expect(live.headers.get("X-Min-LSN")).toBe("0/2000");
    expect(live.headers.get("If-None-Match")).toBe('"i1"');
    expect(notLive.headers.get("X-Min-LSN")).toBeNull();
    expect(again.headers.get("X-Min-LSN")).toBeNull();
    expect(client.getLog().map((e) => Boolean(e.live))).toEqual([false, false, true, false, false]);
    expect(client.getLog()[2]).toMatchObject({ status: 304, minLsn: "0/2000" });
  });

  it("sends the later of the event's LSN and the session's own", async () => {
    server.set("/rpc/update_listing", { id: 1 }, null, "BYPASS", { "X-Commit-LSN": "0/5000" });
    await client.get(ITEM);
    await client.post("/rpc/update_listing", { id: 1 }, "tok");
    client.markLive([ITEM], "0/4000");
    await client.get(ITEM);
    expect(server.seen.at(-1)?.headers.get("X-Min-LSN")).toBe("0/5000");
    client.markLive([ITEM], "1/0");
    client.markLive([ITEM], "0/9"); // an older event does not lower it
    await client.get(ITEM);
    expect(server.seen.at(-1)?.headers.get("X-Min-LSN")).toBe("1/0");
  });

  it("marks a revalidation live without an LSN when the event has none", async () => {
    await client.get(ITEM);
    client.markLive([ITEM], null);
    await client.get(ITEM);
    expect(server.seen.at(-1)?.headers.get("X-Min-LSN")).toBeNull();
    expect(client.getLog().at(-1)?.live).toBe(true);
  });

  it("keeps xkeys in storage with the ETags", async () => {
    const store = memoryStore();
    const a = new ApiClient({ fetch: server.fetch, storage: store });
    await a.get(SEARCH);
    const b = new ApiClient({ fetch: server.fetch, storage: store });
    expect(b.pathsWithKeys(["kcityboston"])).toEqual([SEARCH]);
  });
});
