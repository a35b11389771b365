"""Workload 8: the HTTP edge, against the stack a user would pick instead.

Started for this workload only, on free loopback ports, and stopped at its
end (also on failure, or with the others on an interrupt):

  hc_http            built from http/, in front of server A (as the http
                     workload runs it: pool of 4 connections, 4 threads)
  hc_http uncached   a second one whose connections set
                     housing_cache.enabled = off: the same endpoint uncached
  varnishd           edge/run with edge/housing_cache.vcl in front of hc_http
                     (malloc storage, 64 MB)
  hc_purger          built from purger/: subscribed to A's invalidation
                     channel, purging the edge by key and vouching for it
  the seed stack     bench/seed: Django 3.2 + Django REST framework, the same
                     search JSON from the same database by one query (the
                     search computed whole), cache_page(5) on Redis through
                     django-redis (database 1 of the bench's Redis), under
                     gunicorn with 2 x cores + 1 sync workers

a. Throughput: wrk -t2 -cN --latency on the same search URL, every variant
   once per repetition, alternating: the edge's hits (Varnish), origin L1
   hits (hc_http), 304s from hc_http (If-None-Match with the current ETag),
   the origin uncached, the seed's cached endpoint (cache_page) and the
   seed's view without cache_page.  Ratios to the seed's cached endpoint are
   taken within each repetition.  wrk and the servers share the same cores.

b. Purge latency: per write, the newest-first Boston search is cached at the
   edge (a HIT), the price of a listing on it is updated on A (autocommit,
   over a kept connection), and from the UPDATE's return one client polls
   the search through the edge (kept-alive connection) until the new price
   shows.  Rounds of writes; p50, p99 and max per round.  The latency
   includes the origin computing the new page (the edge's MISS).
"""

import http.client
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time

from . import http_wl
from .agg import summary
from .pgbench import percentile
from .procs import (BenchError, free_port, log, postmaster_pid, process_cpu_s, stats_delta,
                    tree_cpu_s, wait_gone)

PATH = http_wl.PATH
LATENCY_PATH = "/api/rpc/listings?city=Boston"
SEED_CACHED = PATH
SEED_UNCACHED = PATH.replace("/api/rpc/listings?", "/api/rpc/listings_uncached?")
VARIANTS = [
    ("edge", "Varnish edge, hits"),
    ("origin", "hc_http, L1 hits"),
    ("304", "hc_http, 304 (If-None-Match)"),
    ("uncached", "hc_http, housing_cache.enabled = off"),
    ("seed", "seed stack, cache_page (Redis)"),
    ("seed-uncached", "seed stack, no cache"),
]
VSTATS = ("MAIN.cache_hit", "MAIN.cache_miss", "MAIN.s_pass", "MAIN.client_req")


def build_purger(ctx):
    """Path of hc_purger built from purger/ into the scratch directory, or (None, why)."""
    src = os.path.join(ctx.cfg.root, "purger")
    if not os.path.exists(os.path.join(src, "Makefile")):
        return None, "no purger/Makefile in the checkout"
    # purger/ and the common/ it compiles, side by side as in the checkout
    top = os.path.join(ctx.scratch, "purger-build")
    dst = os.path.join(top, "purger")
    shutil.rmtree(top, ignore_errors=True)
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("*.o", "hc_purger", "hc_purger-asan",
                                                            "test_purger"))
    shutil.copytree(os.path.join(ctx.cfg.root, "common"), os.path.join(top, "common"),
                    ignore=shutil.ignore_patterns("*.o"))
    r = subprocess.run(["make", "-s", "-C", dst, "hc_purger"], capture_output=True, text=True)
    binary = os.path.join(dst, "hc_purger")
    if r.returncode != 0 or not os.access(binary, os.X_OK):
        return None, "make -C purger failed: %s" % (
            ((r.stderr or r.stdout).strip().splitlines() or ["?"])[-1])
    return binary, None


def missing(ctx):
    """Why the workload cannot run here, or None."""
    if not (shutil.which("varnishd") or os.path.exists("/usr/sbin/varnishd")):
        return "varnishd is not installed (Debian: varnish, varnish-modules)"
    vmods = "/usr/lib/x86_64-linux-gnu/varnish/vmods"
    for vmod in ("xkey", "var"):
        if os.path.isdir(vmods) and not os.path.exists(os.path.join(vmods, "libvmod_%s.so" % vmod)):
            return "vmod_%s is not installed (Debian: varnish-modules)" % vmod
    gunicorn = shutil.which("gunicorn")
    if not gunicorn:
        return "gunicorn is not installed (scripts/install-deps)"
    # the seed stack runs under gunicorn's interpreter (Debian's python3),
    # which need not be the one running this driver
    with open(gunicorn, "rb") as f:
        first = f.readline().decode(errors="replace").strip()
    python = first[2:].split()[0] if first.startswith("#!") else sys.executable
    r = subprocess.run([python, "-c", "import django, rest_framework, django_redis, psycopg2"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        return ("Django, REST framework, django-redis or psycopg2 missing for %s "
                "(scripts/install-deps): %s" % (python, (r.stderr.strip().splitlines() or ["?"])[-1]))
    return None


class Group:
    """A child process in a session of its own, stopped with its group."""

    def __init__(self, ctx, name):
        self.ctx = ctx
        self.name = name
        self.proc = None
        self.logfile = os.path.join(ctx.scratch, name + ".log")
        ctx.procs.on_stop(name, self.stop)

    def spawn(self, args, env=None, cwd=None):
        with open(self.logfile, "a") as logf:
            logf.write("--- %s %s\n" % (time.strftime("%H:%M:%S"), " ".join(args)))
            logf.flush()
            self.proc = subprocess.Popen(args, stdout=logf, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=env, cwd=cwd,
                                         start_new_session=True)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log_text(self):
        try:
            with open(self.logfile, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def wait_log(self, regex, timeout):
        end = time.time() + timeout
        while time.time() < end:
            if re.search(regex, self.log_text()):
                return True
            if not self.alive():
                return False
            time.sleep(0.05)
        return False

    def stop(self):
        if self.proc is None:
            return
        pid = self.proc.pid
        if self.proc.poll() is None:
            try:
                os.killpg(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                pass
        # the rest of its group (varnishd's child, gunicorn's workers)
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self.proc.poll() is None:
            self.proc.wait(5)
        wait_gone(pid, 5)
        self.proc = None


class Varnish(Group):
    def __init__(self, ctx, backend_port):
        Group.__init__(self, ctx, "varnish")
        self.backend_port = backend_port
        self.workdir = os.path.join(ctx.scratch, "edge", "n")
        self.port = None

    def start(self):
        os.makedirs(os.path.dirname(self.workdir), exist_ok=True)
        for _ in range(5):
            self.port = free_port()
            env = dict(os.environ)
            env.update(HC_EDGE_LISTEN="127.0.0.1:%d" % self.port,
                       HC_EDGE_BACKEND="127.0.0.1:%d" % self.backend_port,
                       HC_EDGE_WORKDIR=self.workdir, HC_EDGE_STORAGE="malloc,64m",
                       HC_EDGE_PURGERS="127.0.0.1",
                       PATH=env.get("PATH", "") + ":/usr/sbin")
            args = [os.path.join(self.ctx.cfg.root, "edge", "run"), "-F", "-T", "127.0.0.1:0"]
            if os.geteuid() == 0:
                args += ["-j", "none"]
            self.spawn(args, env=env)
            end = time.time() + 60
            while time.time() < end and self.alive():
                try:
                    status, _, _ = request(self.port, "PURGE", "/")
                    if status == 200:
                        return
                except OSError:
                    pass
                time.sleep(0.1)
            self.stop()
        raise BenchError("varnishd did not start:\n" + self.log_text()[-2000:])

    def stats(self):
        r = subprocess.run(["varnishstat", "-n", self.workdir, "-1"] +
                           [a for f in VSTATS for a in ("-f", f)],
                           capture_output=True, text=True, timeout=30)
        out = {}
        for line in r.stdout.splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0] in VSTATS and parts[1].isdigit():
                out[parts[0]] = int(parts[1])
        return out


class Purger(Group):
    def __init__(self, ctx, binary, edge_port, heartbeat_ms):
        Group.__init__(self, ctx, "purger")
        self.binary = binary
        self.edge_port = edge_port
        self.heartbeat_ms = heartbeat_ms

    def start(self):
        self.spawn([self.binary, "--redis-host", "127.0.0.1",
                    "--redis-port", str(self.ctx.redis.port),
                    "--varnish", "http://127.0.0.1:%d/" % self.edge_port,
                    "--heartbeat-ms", str(self.heartbeat_ms)])
        if not self.wait_log(r"vouching for the edges", 20):
            text = self.log_text()
            self.stop()
            raise BenchError("hc_purger does not vouch for the edge:\n" + text[-2000:])


class Seed(Group):
    """gunicorn serving bench/seed (Django + REST framework + django-redis)."""

    WORKERS = 2 * (os.cpu_count() or 1) + 1     # gunicorn's own advice

    def __init__(self, ctx):
        Group.__init__(self, ctx, "seed")
        self.port = None

    def start(self):
        A = self.ctx.pg_a
        seed_dir = os.path.join(self.ctx.cfg.root, "bench", "seed")
        for _ in range(3):
            self.port = free_port()
            env = dict(os.environ)
            env.pop("PGOPTIONS", None)
            env.update(SEED_SECRET_KEY=secrets.token_hex(32), SEED_PGHOST="127.0.0.1",
                       SEED_PGPORT=str(A.port), SEED_PGDATABASE="housing",
                       SEED_PGUSER="bench_seed",
                       SEED_REDIS_URL="redis://127.0.0.1:%d/1" % self.ctx.redis.port,
                       SEED_CACHE_SECONDS="5", PYTHONDONTWRITEBYTECODE="1")
            self.spawn(["gunicorn", "--workers", str(self.WORKERS), "--bind",
                        "127.0.0.1:%d" % self.port, "--chdir", seed_dir,
                        "--error-logfile", "-", "--log-level", "warning",
                        "seed.wsgi:application"], env=env)
            end = time.time() + 60
            while time.time() < end and self.alive():
                try:
                    status, _, _ = request(self.port, "GET", SEED_UNCACHED)
                    if status == 200:
                        return
                    if status >= 400:
                        break
                except OSError:
                    pass
                time.sleep(0.2)
            self.stop()
        raise BenchError("the seed stack (gunicorn) did not start:\n" + self.log_text()[-3000:])


def request(port, method, path, headers=None, timeout=30):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, headers=headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def redis_counters(ctx):
    out = {}
    for line in ctx.redis.cli("INFO", "stats").splitlines():
        k, _, v = line.partition(":")
        if k in ("keyspace_hits", "keyspace_misses", "total_commands_processed"):
            out[k] = int(v.strip())
    return out


def heartbeat_ms(A):
    v = A.psql("SELECT setting FROM pg_settings WHERE name = 'housing_cache.heartbeat_ms'")
    return int(v) if v.isdigit() and int(v) > 0 else 1000


def run(ctx):
    why = missing(ctx)
    if why:
        raise BenchError("the edge workload cannot run: " + why)
    binary, why = http_wl.build(ctx)
    if binary is None:
        raise BenchError("the edge workload cannot run: " + why)
    purger_bin, why = build_purger(ctx)
    if purger_bin is None:
        raise BenchError("the edge workload cannot run: hc_purger not built: " + why)
    A = ctx.pg_a
    A.psql("SELECT housing_cache.setup_api_roles()")
    started = []
    try:
        origin = http_wl.HttpServer(ctx, binary, name="hc_http-edge")
        origin.start()
        started.append(origin)
        uncached = http_wl.HttpServer(ctx, binary, name="hc_http-uncached",
                                      options="-c housing_cache.enabled=off")
        uncached.start()
        started.append(uncached)
        edge = Varnish(ctx, origin.port)
        edge.start()
        started.append(edge)
        purger = Purger(ctx, purger_bin, edge.port, heartbeat_ms(A))
        purger.start()
        started.append(purger)
        seed = Seed(ctx)
        seed.start()
        started.append(seed)
        log("edge: hc_http on %d (uncached on %d), varnishd on %d, hc_purger vouching, "
            "seed stack (gunicorn, %d workers) on %d" % (origin.port, uncached.port, edge.port,
                                                         Seed.WORKERS, seed.port))
        ports = {"edge": edge.port, "origin": origin.port, "304": origin.port,
                 "uncached": uncached.port, "seed": seed.port, "seed-uncached": seed.port}
        out = {"path": PATH, "connections": ctx.cfg.edge_connections, "threads": 2,
               "seed_workers": Seed.WORKERS, "variants": dict(VARIANTS)}
        procs = {"hc_http": origin, "hc_http-uncached": uncached, "varnish": edge,
                 "purger": purger, "seed": seed}
        out.update(throughput(ctx, edge, ports, procs))
        out["latency"] = purge_latency(ctx, edge)
        out["purger_log"] = [l for l in purger.log_text().splitlines()
                             if "purg" in l.lower()][-5:]
        return out
    finally:
        for p in reversed(started):
            p.stop()


def checks(ctx, edge, ports):
    """Each endpoint answers what its variant says, before anything is measured."""
    out = {}
    for _ in range(50):
        status, h, edge_body = request(ports["edge"], "GET", PATH)
        if h.get("x-edge-cache") == "HIT":
            break
        time.sleep(0.1)
    out["edge"] = (status, h.get("x-edge-cache"))
    if h.get("x-edge-cache") != "HIT":
        raise BenchError("the edge does not serve %s from its cache: %s %s" % (PATH, status, h))
    request(ports["origin"], "GET", PATH)
    status, h, body = request(ports["origin"], "GET", PATH)
    out["origin"] = (status, h.get("x-cache"))
    etag = h.get("etag")
    if status != 200 or h.get("x-cache") != "L1" or not etag:
        raise BenchError("hc_http does not serve %s from L1: %s %s" % (PATH, status, h))
    status, h, _ = request(ports["304"], "GET", PATH, {"If-None-Match": etag})
    out["304"] = (status, h.get("x-cache"))
    if status != 304:
        raise BenchError("hc_http answers %s with If-None-Match: %s %s" % (PATH, status, h))
    status, h, unc_body = request(ports["uncached"], "GET", PATH)
    out["uncached"] = (status, h.get("x-cache"))
    if status != 200 or h.get("x-cache") != "BYPASS":
        raise BenchError("the uncached hc_http answers %s: %s %s" % (PATH, status, h))
    status, h1, seed_body = request(ports["seed"], "GET", SEED_CACHED)
    time.sleep(1.1)
    status2, h2, _ = request(ports["seed"], "GET", SEED_CACHED)
    out["seed"] = (status2, "cached" if h1.get("expires") == h2.get("expires") else "not cached")
    if status != 200 or status2 != 200 or out["seed"][1] != "cached":
        raise BenchError("the seed stack does not cache %s: %s %s / %s %s" % (
            SEED_CACHED, status, h1, status2, h2))
    status, h, seed_unc = request(ports["seed-uncached"], "GET", SEED_UNCACHED)
    out["seed-uncached"] = (status, "")
    # the same search JSON everywhere, byte for byte
    same = {"edge": edge_body == body, "uncached": unc_body == body, "seed": seed_body == body,
            "seed-uncached": seed_unc == body}
    if not all(same.values()):
        raise BenchError("the endpoints' answers differ from hc_http's: %s" % same)
    return out, len(body), etag


def cpu_snapshot(ctx, procs):
    """CPU seconds used so far by each part of the stack (None: not running)."""
    import resource
    out = {"postgres": tree_cpu_s(postmaster_pid(ctx.pg_a)),
           "redis": process_cpu_s(ctx.redis.pid)}
    for name, p in procs.items():
        out[name] = tree_cpu_s(p.proc.pid) if p.proc is not None else None
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)     # wrk, once reaped
    out["wrk"] = ru.ru_utime + ru.ru_stime
    return out


def throughput(ctx, edge, ports, procs):
    cfg, A = ctx.cfg, ctx.pg_a
    chk, size, etag = checks(ctx, edge, ports)
    runs = {v: [] for v, _ in VARIANTS}

    def wrk_args(v, seconds):
        path = SEED_UNCACHED if v == "seed-uncached" else PATH
        args = ["wrk", "-t2", "-c%d" % cfg.edge_connections, "-d%ds" % seconds, "--latency"]
        if v == "304":
            args += ["-H", "If-None-Match: %s" % etag]
        return args + ["http://127.0.0.1:%d%s" % (ports[v], path)]
    # Warm-up, not measured: every gunicorn worker imports django-redis and
    # connects at its first request, every hc_http connection prepares its
    # statements -- costs of a start, not of a request.
    log("edge throughput: warm-up")
    for v, _ in VARIANTS:
        subprocess.run(wrk_args(v, 1), capture_output=True, timeout=120)
    for rep in range(cfg.slow_reps):
        log("edge throughput: repetition %d/%d" % (rep + 1, cfg.slow_reps))
        for v, _ in VARIANTS:
            args = wrk_args(v, cfg.http_duration)
            before = (A.stats(), edge.stats() if v == "edge" else {}, redis_counters(ctx))
            cpu0 = cpu_snapshot(ctx, procs)
            r = subprocess.run(args, capture_output=True, text=True,
                               timeout=cfg.http_duration + 120)
            cpu1 = cpu_snapshot(ctx, procs)
            after = (A.stats(), edge.stats() if v == "edge" else {}, redis_counters(ctx))
            res = http_wl.parse_wrk(r.stdout)
            if r.returncode != 0 or res["rps"] is None:
                raise BenchError("wrk failed: %s\n%s" % (r.stdout[-1500:], r.stderr[-1500:]))
            d = stats_delta(before[0], after[0])
            n = max(1, res["requests"] or 1)
            res["served"] = {k: d[k] / n for k in ("l1_hits", "l2_hits", "misses", "bypasses",
                                                   "db_executions")}
            if v == "edge":
                res["served"].update({k.split(".")[1]: (after[1].get(k, 0) - before[1].get(k, 0)) / n
                                      for k in VSTATS if k != "MAIN.client_req"})
            res["served"]["redis_commands"] = (after[2].get("total_commands_processed", 0)
                                               - before[2].get("total_commands_processed", 0)) / n
            # CPU per request of each part of the stack, µs (the machine's
            # whole budget is cores x duration)
            res["cpu_us"] = {k: (cpu1[k] - cpu0[k]) * 1e6 / n for k in cpu0
                             if cpu0[k] is not None and cpu1.get(k) is not None}
            runs[v].append(res)
    return {"checks": chk, "body_bytes": size, "runs": runs}


class Writer:
    """One psql session kept open (autocommit): a statement is acknowledged
    when the line psql echoes after it arrives (the driver needs no client
    library; the echo comes after the commit's reply, so the clock starts a
    little late, never early)."""

    def __init__(self, pg):
        from .procs import PGBIN
        env = pg.conninfo_env()
        env["PGAPPNAME"] = "bench-purge-latency"
        self.proc = subprocess.Popen([os.path.join(PGBIN, "psql"), "-X", "-q", "-At",
                                      "-v", "ON_ERROR_STOP=1"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, bufsize=1, env=env)
        self.n = 0

    def run(self, sql):
        """Run sql, return its output lines once psql has its reply."""
        self.n += 1
        token = "bench-done-%d" % self.n
        self.proc.stdin.write("%s\n\\echo %s\n" % (sql, token))
        self.proc.stdin.flush()
        lines = []
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise BenchError("psql ended: %s" % self.proc.stderr.read()[-1000:])
            line = line.rstrip("\n")
            if line == token:
                return lines
            lines.append(line)

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def purge_latency(ctx, edge):
    cfg, A = ctx.cfg, ctx.pg_a
    db = Writer(A)
    sync = db.run("SHOW synchronous_commit;")[0]
    # how late the clock may start: psql's round trip for a statement that
    # costs nothing (its reply, then the echo after it)
    rtt = []
    for _ in range(20):
        t = time.perf_counter()
        db.run("SELECT 1;")
        rtt.append((time.perf_counter() - t) * 1000)
    web = http.client.HTTPConnection("127.0.0.1", edge.port, timeout=10)

    def fetch():
        t = time.perf_counter()
        web.request("GET", LATENCY_PATH)
        r = web.getresponse()
        body = r.read()
        return t, time.perf_counter(), r.getheader("X-Edge-Cache", ""), json.loads(body)

    _, _, _, doc = fetch()
    items = [(it["id"], it["price_cents"]) for it in doc["items"]]
    if not items:
        raise BenchError("%s lists no listing" % LATENCY_PATH)
    rounds = []
    k = 0
    try:
        for rnd in range(cfg.slow_reps):
            log("edge purge latency: round %d/%d, %d writes" % (rnd + 1, cfg.slow_reps,
                                                              cfg.purge_writes))
            lat, purged, refill, not_cached, polls, stale = [], [], [], 0, [], 0
            for _ in range(cfg.purge_writes):
                lid = items[k % len(items)][0]
                k += 1
                # cached at the edge first
                t = time.time()
                while True:
                    _, _, state, doc = fetch()
                    if state == "HIT" or time.time() - t > 2:
                        break
                not_cached += state != "HIT"
                price = next(it["price_cents"] for it in doc["items"] if it["id"] == lid) + 1
                db.run("UPDATE housing.listings SET price_cents = %d WHERE id = %d;" % (price, lid))
                t0 = time.perf_counter()
                first_miss = None
                n = 0
                while True:
                    ts, te, state, doc = fetch()
                    n += 1
                    if state != "HIT" and first_miss is None:
                        first_miss = (ts, te)
                    seen = next((it["price_cents"] for it in doc["items"] if it["id"] == lid),
                                None)
                    if seen == price or te - t0 > 5:
                        break
                stale += seen != price
                lat.append((te - t0) * 1000)
                polls.append(n)
                if first_miss:
                    purged.append((first_miss[0] - t0) * 1000)
                    refill.append((first_miss[1] - first_miss[0]) * 1000)
            s = sorted(lat)
            rounds.append({"writes": len(s), "p50_ms": percentile(s, 50),
                           "p99_ms": percentile(s, 99), "max_ms": s[-1],
                           "purged_p50_ms": percentile(sorted(purged), 50),
                           "purged_p99_ms": percentile(sorted(purged), 99),
                           "refill_p50_ms": percentile(sorted(refill), 50),
                           "polls_mean": sum(polls) / len(polls),
                           "not_cached_before": not_cached, "stale_after_5s": stale,
                           "all_ms": lat})
    finally:
        web.close()
        db.close()
    all_ms = sorted(x for r in rounds for x in r["all_ms"])
    return {"path": LATENCY_PATH, "synchronous_commit": sync, "rounds": rounds,
            "psql_rtt_ms": percentile(sorted(rtt), 50),
            "pooled": {"writes": len(all_ms), "p50_ms": percentile(all_ms, 50),
                       "p99_ms": percentile(all_ms, 99), "max_ms": all_ms[-1] if all_ms else None},
            "p99_ms": summary([r["p99_ms"] for r in rounds]),
            "p50_ms": summary([r["p50_ms"] for r in rounds])}
