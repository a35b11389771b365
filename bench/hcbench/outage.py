"""Workload 6: Redis outage.

One pgbench run (2 clients) goes on while Redis is healthy, paused (SIGSTOP:
connections hang, commands time out), resumed (SIGCONT), killed (SIGKILL:
connections refused) and restarted on the same port.  The load: 95% reads of
listing pages (get_listing of an id drawn with random_zipfian over the first
10,000 listings -- cheap queries, so that what Redis costs or saves shows),
5% price updates of one of those listings (each invalidates that listing's
page and publishes a message).  A warm-up of the same mix fills the cache
first.  Read latencies are split into the phases by their completion time;
errors are pgbench's aborted clients and failed transactions, timed as they
are reported.  Run on server A (L1 + L2) and server B (L2 only), alternating.
"""

import threading
import time

from .pgbench import percentile
from .procs import BenchError, log, stats_delta

PHASES = [("before", "healthy"), ("paused", "SIGSTOP"), ("resumed", "SIGCONT"),
          ("killed", "SIGKILL"), ("restarted", "restarted")]


def scripts_for(ctx):
    n = min(10000, ctx.facts["rows"])
    read = ctx.runner.script("outage-read", """
\\set id random_zipfian(1, %d, 1.1)
SELECT housing_cache.get_listing(:id);
""" % n)
    write = ctx.runner.script("outage-write", """
\\set id random(1, %d)
UPDATE housing.listings SET price_cents = price_cents + 1 WHERE id = :id;
""" % n)
    return [read + "@95", write + "@5"]


def wait_breaker_closed(pg, timeout=40):
    """Drive Redis calls until the breaker of pg has closed again."""
    end = time.time() + timeout
    i = 0
    while time.time() < end:
        i += 1
        # a fresh key: a miss, which reads and writes Redis (or probes it)
        pg.psql("SELECT housing_cache.get_listing(%d) IS NULL"
                % (1000000000 + int(time.time() * 10) % 100000000))
        if pg.stats()["breaker_state"] == "closed":
            return True
        time.sleep(0.25)
    return False


def run(ctx):
    cfg = ctx.cfg
    P = cfg.outage_phase_s
    clients = 2
    scripts = scripts_for(ctx)
    servers = [("A", ctx.pg_a), ("B", ctx.pg_b)]
    out = {"phase_s": P, "clients": clients, "runs": {}, "timeline": {}}
    for name, _ in servers:
        out["runs"][name] = []
    for rep in range(cfg.slow_reps):
        for name, pg in servers:
            log("Redis outage: repetition %d/%d, server %s" % (rep + 1, cfg.slow_reps, name))
            if not wait_breaker_closed(pg):
                raise BenchError("server %s: the Redis breaker did not close before the run" % name)
            ctx.runner.run(pg, scripts, clients=clients, length=cfg.outage_warmup)
            out["runs"][name].append(one_sequence(ctx, pg, scripts, P, clients, out, name, rep))
    return out


def one_sequence(ctx, pg, scripts, P, clients, out, name, rep):
    redis = ctx.redis
    total = int(len(PHASES) * P + 3)
    marks = []          # (phase, start time, stats at start)
    result = {}
    errors_at = []

    def on_err(line):
        if "aborted" in line or "ERROR" in line or "error" in line:
            errors_at.append((time.time(), line))

    def drive():
        try:
            t0 = time.time() + 0.5
            for i, (ph, _) in enumerate(PHASES):
                time.sleep(max(0.0, t0 + i * P - time.time()))
                if ph == "paused":
                    redis.pause()
                elif ph == "resumed":
                    redis.resume()
                elif ph == "killed":
                    redis.kill()
                elif ph == "restarted":
                    redis.restart_same_port()
                marks.append((ph, time.time(), pg.stats()))
                if ph == "restarted":
                    # how long until the breaker closes again
                    end = t0 + (i + 1) * P
                    while time.time() < end and "recovered_s" not in result:
                        if pg.stats()["breaker_state"] == "closed":
                            result["recovered_s"] = time.time() - marks[-1][1]
                        else:
                            time.sleep(0.1)
            time.sleep(max(0.0, t0 + len(PHASES) * P - time.time()))
            marks.append(("end", time.time(), pg.stats()))
        except Exception as e:  # reported after the run
            result["error"] = e
        finally:
            if redis.pid is None:
                try:
                    redis.restart_same_port()
                except Exception as e:
                    result.setdefault("error", e)
            else:
                try:
                    redis.resume()
                except Exception:
                    pass

    t = threading.Thread(target=drive)
    t.start()
    try:
        r = ctx.runner.run(pg, scripts, clients=clients, length={"T": total}, keep_raw=True,
                           on_stderr=on_err, check=False)
    finally:
        t.join()
    if "error" in result:
        raise BenchError("Redis outage driver: %s" % result["error"])
    if r["tps"] is None and not r["raw"]:
        raise BenchError("pgbench produced nothing during the outage run:\n%s" %
                         "\n".join(l for _, l in r["stderr_times"][-20:]))

    phases = {}
    for i, (ph, t0, s0) in enumerate(marks[:-1]):
        t1, s1 = marks[i + 1][1], marks[i + 1][2]
        reads = sorted(l for ts, l, sn in r["raw"]
                       if sn == 0 and t0 * 1e6 <= ts < t1 * 1e6)
        writes = sorted(l for ts, l, sn in r["raw"]
                        if sn == 1 and t0 * 1e6 <= ts < t1 * 1e6)
        d = stats_delta(s0, s1)
        phases[ph] = {
            "reads": len(reads), "read_p50_us": percentile(reads, 50),
            "read_p99_us": percentile(reads, 99), "read_max_us": reads[-1] if reads else None,
            "write_p99_us": percentile(writes, 99), "writes": len(writes),
            "errors": sum(1 for ts, _ in errors_at if t0 <= ts < t1),
            "redis_errors": d["redis_errors"], "breaker_opens": d["breaker_opens"],
            "breaker_skips": d["breaker_skips"], "db_executions": d["db_executions"],
            "l2_hits": d["l2_hits"], "l1_hits": d["l1_hits"],
            "breaker_state_after": s1["breaker_state"],
        }
    if rep == 0:
        start = marks[0][1] - 0.5
        pts = [((ts / 1e6) - start, l) for ts, l, sn in r["raw"] if sn == 0]
        # at most ~20k points for the plot: every k-th, and every slow one
        k = max(1, len(pts) // 20000)
        slow = sorted(l for _, l in pts)[int(len(pts) * 0.99)] if pts else 0
        out["timeline"][name] = {
            "points": [p for i, p in enumerate(pts) if i % k == 0 or p[1] >= slow],
            "marks": [(ph, t - start) for ph, t, _ in marks]}
    return {"phases": phases, "errors": max(r["errors"], len(errors_at)),
            "recovered_s": result.get("recovered_s"),
            "error_lines": [l for _, l in errors_at][:10], "tps": r["tps"]}
