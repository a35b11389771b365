"""Workload 7: HTTP through the development server (http/, hc_http) with wrk.

The server is built from http/ into the scratch directory and started
against server A as the API's authenticator role.  Three runs alternate:

  hit    GET /api/rpc/listings?<the hot search>            X-Cache: L1
  304    the same with If-None-Match: <its current ETag>   304 Not Modified
  miss   the same search with a min_price_cents no request used before
         (a wrk Lua script counts), so every request runs the query

wrk -t2 -c2 --latency: requests/s and the p50/p99 it reports.
"""

import os
import re
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request

from .procs import BenchError, free_port, log, stats_delta

PATH = "/api/rpc/listings?city=Boston&min_bedrooms=2&sort=price_asc"

MISS_LUA = r"""
-- every request a search no request asked before: a cache miss
local n = 0
function setup(thread)
  n = n + 1
  thread:set("tid", n)
end
function init(args)
  base = tonumber(args[1]) or 0
  counter = 0
end
function request()
  counter = counter + 1
  return wrk.format(nil, "%s&min_price_cents=" .. (base + tid * 10000000 + counter))
end
""" % PATH


def build(ctx):
    """Path of a freshly built hc_http, or (None, why); built once per run."""
    if getattr(ctx, "http_build", None) is None:
        ctx.http_build = _build(ctx)
    return ctx.http_build


def _build(ctx):
    cfg = ctx.cfg
    if cfg.http_bin:
        if os.access(cfg.http_bin, os.X_OK):
            return cfg.http_bin, None
        return None, "BENCH_HTTP_BIN=%s is not executable" % cfg.http_bin
    src = os.path.join(cfg.root, "http")
    if not os.path.exists(os.path.join(src, "Makefile")) or not os.path.exists(
            os.path.join(src, "main.c")):
        return None, "http server not built (no http/Makefile and main.c in the checkout)"
    # http/ and the common/ it compiles, side by side as in the checkout
    top = os.path.join(ctx.scratch, "http-build")
    dst = os.path.join(top, "http")
    shutil.rmtree(top, ignore_errors=True)
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("*.o", "hc_http", "hc_http-asan"))
    shutil.copytree(os.path.join(cfg.root, "common"), os.path.join(top, "common"),
                    ignore=shutil.ignore_patterns("*.o"))
    r = subprocess.run(["make", "-s", "-C", dst, "hc_http"], capture_output=True, text=True)
    binary = os.path.join(dst, "hc_http")
    if r.returncode != 0 or not os.access(binary, os.X_OK):
        return None, "http server not built (make -C http failed: %s)" % (
            (r.stderr or r.stdout).strip().splitlines()[-1:] or ["?"])[0]
    return binary, None


def get(port, path, headers=None):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def parse_wrk(out):
    res = {"rps": None, "p50_us": None, "p99_us": None, "errors": 0}
    m = re.search(r"Requests/sec:\s+([0-9.]+)", out)
    if m:
        res["rps"] = float(m.group(1))
    for pct, key in (("50", "p50_us"), ("99", "p99_us")):
        m = re.search(r"^\s+%s(?:\.000)?%%\s+([0-9.]+)(us|ms|s)\s*$" % pct, out, re.M)
        if m:
            v = float(m.group(1))
            res[key] = v * {"us": 1, "ms": 1000, "s": 1000000}[m.group(2)]
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        res["errors"] += int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        res["errors"] += sum(int(x) for x in m.groups())
    m = re.search(r"(\d+) requests in", out)
    res["requests"] = int(m.group(1)) if m else None
    return res


class HttpServer:
    """hc_http in front of server A, as the API's authenticator role.

    name: its log is scratch/NAME.log; options: libpq's options (e.g.
    "-c housing_cache.enabled=off")."""

    def __init__(self, ctx, binary, name="hc_http", options=None, pool=4):
        self.ctx = ctx
        self.binary = binary
        self.name = name
        self.options = options
        self.pool = pool
        self.proc = None
        self.port = None
        self.logfile = os.path.join(ctx.scratch, name + ".log")
        ctx.procs.on_stop(name, self.stop)

    def start(self):
        A = self.ctx.pg_a
        db = "host=127.0.0.1 port=%d dbname=housing user=authenticator application_name=%s" % (
            A.port, self.name)
        if self.options:
            db += " options='%s'" % self.options
        for _ in range(5):
            self.port = free_port()
            env = dict(os.environ)
            env.pop("HC_JWT_SECRET", None)
            with open(self.logfile, "a") as logf:
                self.proc = subprocess.Popen(
                    [self.binary, "--listen", "127.0.0.1", "--port", str(self.port),
                     "--db", db, "--pool", str(self.pool), "--threads", str(self.pool),
                     "--quiet"],
                    stdout=logf, stderr=subprocess.STDOUT, env=env)
            for _ in range(100):
                if self.proc.poll() is not None:
                    break
                try:
                    status, _, _ = get(self.port, "/api/rpc/cache_stats")
                    if status == 200:
                        return
                except OSError:
                    pass
                time.sleep(0.1)
            self.stop()
        with open(self.logfile) as f:
            raise BenchError("%s did not start:\n" % self.name + f.read()[-2000:])

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def run(ctx):
    cfg, A = ctx.cfg, ctx.pg_a
    binary, why = build(ctx)
    if binary is None:
        log("HTTP: skipped: " + why)
        return {"skipped": why}
    A.psql("SELECT housing_cache.setup_api_roles()")
    srv = HttpServer(ctx, binary)
    srv.start()
    log("hc_http on 127.0.0.1:%d" % srv.port)
    try:
        return measure(ctx, srv)
    finally:
        srv.stop()


def measure(ctx, srv):
    cfg, A = ctx.cfg, ctx.pg_a
    get(srv.port, PATH)
    status, headers, body = get(srv.port, PATH)
    etag = headers.get("ETag")
    checks = {"hit": (status, headers.get("X-Cache"))}
    if status != 200 or etag is None:
        raise BenchError("GET %s: status %s, headers %s" % (PATH, status, headers))
    status, headers, _ = get(srv.port, PATH, {"If-None-Match": etag})
    checks["304"] = (status, headers.get("X-Cache"))
    status, headers, _ = get(srv.port, PATH + "&min_price_cents=1")
    checks["miss"] = (status, headers.get("X-Cache"))
    lua = os.path.join(ctx.work, "miss.lua")
    with open(lua, "w") as f:
        f.write(MISS_LUA)
    out = {"path": PATH, "body_bytes": len(body), "checks": checks, "runs": {}}
    variants = [("hit", []), ("304", ["-H", "If-None-Match: %s" % etag]), ("miss", ["-s", lua])]
    for v, _ in variants:
        out["runs"][v] = []
    base = 100
    for rep in range(cfg.reps):
        log("HTTP: repetition %d/%d" % (rep + 1, cfg.reps))
        for v, extra in variants:
            args = ["wrk", "-t2", "-c2", "-d%ds" % cfg.http_duration, "--latency"] + extra
            args.append("http://127.0.0.1:%d%s" % (srv.port, PATH))
            if v == "miss":
                base += 1
                args += ["--", str(base * 1000000000)]
            before = A.stats()
            r = subprocess.run(args, capture_output=True, text=True, timeout=cfg.http_duration + 120)
            d = stats_delta(before, A.stats())
            res = parse_wrk(r.stdout)
            if r.returncode != 0 or res["rps"] is None:
                raise BenchError("wrk failed: %s\n%s" % (r.stdout[-1500:], r.stderr[-1500:]))
            res["served"] = {k: d[k] for k in ("l1_hits", "l2_hits", "misses", "bypasses",
                                               "db_executions")}
            out["runs"][v].append(res)
    return out
