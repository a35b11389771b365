"""Workload 9: scaling with the answer's size and the table's size.

Value size: bench.blob(id) answers a JSON string of exactly 1 KiB .. 1 MiB
(a watched helper table).  For each size, 1 client: the floor (repeat('x',
size)), a hit on server A (L1, or L2 for answers above
housing_cache.l1_max_value_bytes), a hit on server B (L2 only), the query
uncached, and a fill: invalidate the answer's tag, then fetch it (a miss that
runs the query and stores the answer) -- the fill's cost is pgbench's average
latency of that fetch statement (-r).

Table size: the hot search on databases of 10k, 100k and 1M listings: L1
hit, fill (invalidate the city's tag, then search) and uncached, in runs of
the full length.
"""

from .procs import log, stats_delta
from .setup import SEARCH_SQL


def stmt_ms(res, needle):
    for ms, text in res["stmt_ms"]:
        if needle in text:
            return ms
    return None


def value_variants(ctx, i, size):
    A, B = ctx.pg_a, ctx.pg_b
    fetch = "SELECT housing_cache.fetch('bench.blob', '%d')" % i
    return [
        ("floor", A, "SELECT repeat('x', %d);" % size, None),
        ("hit", A, fetch + ";", None),
        ("l2", B, fetch + ";", None),
        ("uncached", A, fetch + ";", "-c housing_cache.enabled=off"),
        ("fill", A, "SELECT housing_cache.invalidate('bench.blobs/id=' || %d);\n%s;" % (i, fetch),
         None),
    ]


def table_variants(ctx, n):
    A = ctx.pg_a
    search = "SELECT %s;" % SEARCH_SQL
    return [
        ("hit", A, search, None),
        ("uncached", A, search, "-c housing_cache.enabled=off"),
        ("fill", A, "SELECT housing_cache.invalidate('housing.listings/city=Boston');\n" + search,
         None),
    ]


def measure(ctx, kind, label, target, sql, pgo, db, rec, length=None):
    script = ctx.runner.script("scale-%s-%s" % (kind, label), sql)
    server = target if label != "floor" else None
    before = server.stats(db) if server else None
    r = ctx.runner.run(target, [script], clients=1, db=db, pgoptions=pgo,
                       length=length or ctx.cfg.scale_length, per_statement=True)
    entry = {"tps": r["tps"], "p50_us": r["p50_us"], "p99_us": r["p99_us"],
             "mean_us": r["mean_us"], "n": r["n"], "errors": r["errors"]}
    if label == "fill":
        # the statement after the invalidation: a miss, computed and stored
        last = r["stmt_ms"][-1][0] if r["stmt_ms"] else None
        entry["fill_us"] = last * 1000 if last is not None else None
    else:
        entry["fill_us"] = None
    if server:
        d = stats_delta(before, server.stats(db))
        n = max(1, r["n"])
        entry["served"] = {"l1": d["l1_hits"] / n, "l2": d["l2_hits"] / n,
                           "miss": d["misses"] / n, "bypass": d["bypasses"] / n,
                           "oversize": d["oversize"]}
    rec.append(entry)


def run(ctx):
    cfg, A, B = ctx.cfg, ctx.pg_a, ctx.pg_b
    blobs = [tuple(map(int, l.split("\t"))) for l in
             A.psql("SELECT id, size FROM bench.blobs ORDER BY size").splitlines()]
    out = {"value": {}, "table": {}, "blobs": blobs, "table_sizes": cfg.table_sizes,
           "l1_max_value_bytes": A.psql("SHOW housing_cache.l1_max_value_bytes"),
           "max_value_bytes": A.psql("SHOW housing_cache.max_value_bytes")}
    for i, size in blobs:
        got = int(A.psql("SELECT octet_length(housing_cache.fetch('bench.blob', '%d')::text)" % i))
        if got != size:
            log("value size: bench.blob(%d) answers %d bytes, expected %d" % (i, got, size))
        B.psql("SELECT housing_cache.fetch('bench.blob', '%d') IS NULL" % i)
        for label, *_ in value_variants(ctx, i, size):
            out["value"]["%d/%s" % (size, label)] = []
    for n in cfg.table_sizes:
        A.psql("SELECT %s IS NULL" % SEARCH_SQL, db=ctx.db_for_size(n))
        for label, *_ in table_variants(ctx, n):
            out["table"]["%d/%s" % (n, label)] = []

    for rep in range(cfg.slow_reps):
        log("scaling: repetition %d/%d" % (rep + 1, cfg.slow_reps))
        for i, size in blobs:
            for label, target, sql, pgo in value_variants(ctx, i, size):
                if label in ("hit", "l2"):   # make sure it is there (an earlier fill may not be)
                    target.psql("SELECT housing_cache.fetch('bench.blob', '%d') IS NULL" % i)
                measure(ctx, "value%d" % size, label, target, sql, pgo, "housing",
                        out["value"]["%d/%s" % (size, label)])
        for n in cfg.table_sizes:
            db = ctx.db_for_size(n)
            for label, target, sql, pgo in table_variants(ctx, n):
                if label == "hit":
                    target.psql("SELECT %s IS NULL" % SEARCH_SQL, db=db)
                # full-length runs: a miss on 1M listings takes 0.1 s
                measure(ctx, "table%d" % n, label, target, sql, pgo, db,
                        out["table"]["%d/%s" % (n, label)], length=cfg.length)
    return out
