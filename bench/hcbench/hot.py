"""Workload 1: hot reads.

For each listing query, 1 and 2 clients, pgbench -M prepared: SELECT 1, a
constant answer of the same size (the floor), the query uncached, served
from L1 (server A), from L2 only (server B), and -- for the search -- the
row form of the same search straight from PostgreSQL and through pgpool-II's
query cache (also in the simple protocol, pgpool-II's best case, against L1
in the simple protocol).  Every variant runs once per repetition, in turn.
"""

from .procs import BenchError, log, stats_delta
from .setup import QUERIES, SEARCH_ROWS_SQL, SEARCH_SQL


def last_tier(pg, sql):
    # two calls in one session (the first may fill), then how the second was served
    out = pg.psql("SELECT (%s) IS NULL" % sql)
    out = pg.psql("SELECT (%s) IS NULL; SELECT tier FROM housing_cache.last_lookup()" % sql)
    return out.splitlines()[-1]


class Variant:
    def __init__(self, key, label, target, sql, server=None, pgoptions=None, prepared=True,
                 pgpool=False, query=None, mode=None):
        self.key, self.label, self.target, self.sql = key, label, target, sql
        self.server = server            # whose housing_cache.stats to read around a run
        self.pgoptions, self.prepared, self.pgpool = pgoptions, prepared, pgpool
        self.query, self.mode = query, mode
        self.script = None


def variants(ctx, sizes):
    A, B, pool = ctx.pg_a, ctx.pg_b, ctx.pgpool
    off = "-c housing_cache.enabled=off"
    vs = [Variant("select1", "SELECT 1", A, "SELECT 1")]
    for q, _ in QUERIES:
        vs.append(Variant("%s/floor" % q, "floor: repeat('x', %d)" % sizes[q], A,
                          "SELECT repeat('x', %d)" % sizes[q], query=q, mode="floor"))
    for q, sql in QUERIES:
        vs.append(Variant("%s/uncached" % q, "%s, uncached" % q, A, "SELECT " + sql, server=A,
                          pgoptions=off, query=q, mode="uncached"))
        vs.append(Variant("%s/l1" % q, "%s, L1 hit" % q, A, "SELECT " + sql, server=A,
                          query=q, mode="l1"))
        vs.append(Variant("%s/l2" % q, "%s, L2-only hit" % q, B, "SELECT " + sql, server=B,
                          query=q, mode="l2"))
    vs.append(Variant("search/rows", "search rows, PostgreSQL (no cache)", A, SEARCH_ROWS_SQL,
                      query="search", mode="rows"))
    vs.append(Variant("search/pgpool", "search rows, pgpool-II cache hit", pool, SEARCH_ROWS_SQL,
                      pgpool=True, query="search", mode="pgpool"))
    vs.append(Variant("search/l1-simple", "search, L1 hit (simple protocol)", A,
                      "SELECT " + SEARCH_SQL, server=A, prepared=False, query="search",
                      mode="l1-simple"))
    vs.append(Variant("search/pgpool-simple", "search rows, pgpool-II cache hit (simple protocol)",
                      pool, SEARCH_ROWS_SQL, pgpool=True, prepared=False, query="search",
                      mode="pgpool-simple"))
    return vs


def served(v, before, after, n):
    """What answered a run's transactions, as fractions of them."""
    if v.pgpool:
        hits = after[0] - before[0]
        selects = after[1] - before[1]
        return {"pgpool_backend_selects": selects, "pgpool_cache_hits": hits,
                "pgpool": (1.0 - selects / n) if n else None}
    if v.server is None:
        return {}
    d = stats_delta(before, after)
    if not n:
        return d
    return {"l1": d["l1_hits"] / n, "l2": d["l2_hits"] / n, "miss": d["misses"] / n,
            "bypass": d["bypasses"] / n, "db_executions": d["db_executions"],
            "redis_errors": d["redis_errors"], "breaker_skips": d["breaker_skips"]}


def snapshot(v):
    if v.pgpool:
        return v.target.cache_stats()
    if v.server is not None:
        return v.server.stats()
    return None


def run(ctx):
    cfg, A, B = ctx.cfg, ctx.pg_a, ctx.pg_b
    out = {"sizes": {}, "tiers": {}, "runs": {}, "variants": []}

    for q, sql in QUERIES:
        out["sizes"][q] = int(A.psql("SELECT octet_length((%s)::text)" % sql))
        out["tiers"]["%s/l1" % q] = last_tier(A, sql)
        out["tiers"]["%s/l2" % q] = last_tier(B, sql)
    out["sizes"]["search_rows"] = int(A.psql(
        "SELECT sum(octet_length(r::text)) FROM (%s) r" % SEARCH_ROWS_SQL))
    for key, tier in out["tiers"].items():
        want = key.split("/")[1]
        if tier != want:
            raise BenchError("after warming, %s was served from %r, not %s" % (key, tier, want))
    # pgpool-II: fill its cache, in both protocols (its first prepared
    # executions may still reach the backend)
    ctx.pgpool.psql(SEARCH_ROWS_SQL)
    warm = ctx.runner.script("hot-pgpool-warm", SEARCH_ROWS_SQL + ";")
    for prepared in (True, False):
        ctx.runner.run(ctx.pgpool, [warm], clients=1, prepared=prepared, length={"t": 50})

    vs = variants(ctx, out["sizes"])
    for v in vs:
        v.script = ctx.runner.script("hot-" + v.key.replace("/", "-"), v.sql + ";")
        out["variants"].append({"key": v.key, "label": v.label, "query": v.query,
                                "mode": v.mode, "prepared": v.prepared,
                                "sql": v.sql, "pgoptions": v.pgoptions})

    for c in cfg.hot_clients:
        out["runs"][str(c)] = {v.key: [] for v in vs}
    for rep in range(cfg.reps):
        for c in cfg.hot_clients:
            log("hot reads: repetition %d/%d, %d client(s)" % (rep + 1, cfg.reps, c))
            for v in vs:
                before = snapshot(v)
                r = ctx.runner.run(v.target, [v.script], clients=c, prepared=v.prepared,
                                   pgoptions=v.pgoptions)
                after = snapshot(v)
                rec = {"tps": r["tps"], "p50_us": r["p50_us"], "p99_us": r["p99_us"],
                       "n": r["n"], "errors": r["errors"], "timed_zero": r["timed_zero"]}
                if before is not None:
                    rec["served"] = served(v, before, after, r["n"])
                out["runs"][str(c)][v.key].append(rec)
    return out
