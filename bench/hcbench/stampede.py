"""Workload 2: stampede on a freshly invalidated hot key.

A round: the hot search is served once (so it is cached), one Boston listing
is updated (its commit invalidates the search), then N clients -- connected
beforehand, started together by pgbench -- each ask for the search once.
Counted: housing_cache.stats db_executions over the round, and each client's
latency.  With and without single-flight (housing_cache.single_flight,
superuser-only: ALTER SYSTEM + reload between runs), alternating.
"""

import time

from .agg import summary
from .pgbench import percentile
from .procs import BenchError, log, stats_delta
from .setup import SEARCH_SQL


def set_single_flight(pg, on):
    want = "on" if on else "off"
    pg.psql("ALTER SYSTEM SET housing_cache.single_flight = %s" % want)
    pg.psql("SELECT pg_reload_conf()")
    for _ in range(100):
        if pg.psql("SHOW housing_cache.single_flight") == want:
            return
        time.sleep(0.05)
    raise BenchError("housing_cache.single_flight did not become %s after a reload" % want)


def run(ctx):
    cfg, A = ctx.cfg, ctx.pg_a
    lid = ctx.facts["boston_listing_id"]
    script = ctx.runner.script("stampede", "SELECT %s;" % SEARCH_SQL)
    out = {"query": SEARCH_SQL, "rounds": cfg.stampede_rounds, "runs": {}}
    uncached_ms = []
    for _ in range(3):
        t = A.psql("SET housing_cache.enabled = off; EXPLAIN (ANALYZE, TIMING OFF, SUMMARY ON) "
                   "SELECT %s" % SEARCH_SQL)
        for line in t.splitlines():
            if line.startswith("Execution Time:"):
                uncached_ms.append(float(line.split()[2]))
    out["uncached_ms"] = summary(uncached_ms)
    for n in cfg.stampede_clients:
        for sf in ("on", "off"):
            out["runs"]["%d/%s" % (n, sf)] = []
    try:
        for rep in range(cfg.reps):
            for n in cfg.stampede_clients:
                log("stampede: repetition %d/%d, %d clients" % (rep + 1, cfg.reps, n))
                for sf in ("on", "off"):
                    set_single_flight(A, sf == "on")
                    execs, waits, lats, errors = [], [], [], 0
                    for _ in range(cfg.stampede_rounds):
                        A.psql("SELECT %s IS NULL" % SEARCH_SQL)     # cached
                        # invalidates it: a price the search sorts on changes (an
                        # UPDATE that changes no column invalidates nothing)
                        A.psql("UPDATE housing.listings SET price_cents = price_cents + 1 "
                               "WHERE id = %d" % lid)
                        before = A.stats()
                        r = ctx.runner.run(A, [script], clients=n, length={"t": 1},
                                           keep_raw=True)
                        d = stats_delta(before, A.stats())
                        execs.append(d["db_executions"])
                        waits.append(d["fill_waits"])
                        lats.extend(x[1] for x in r["raw"])
                        errors += r["errors"]
                    lats.sort()
                    out["runs"]["%d/%s" % (n, sf)].append({
                        "executions": sum(execs) / len(execs),
                        "executions_max": max(execs),
                        "fill_waits": sum(waits) / len(waits),
                        "p50_us": percentile(lats, 50), "p99_us": percentile(lats, 99),
                        "max_us": lats[-1] if lats else None,
                        "n": len(lats), "errors": errors})
    finally:
        A.psql("ALTER SYSTEM RESET housing_cache.single_flight")
        A.psql("SELECT pg_reload_conf()")
    return out
