"""Workload 4: mixed reads and writes over a Zipf-distributed mix.

Reads: the newest-first search of a city and a page, both drawn with
random_zipfian (s = 1.1; cities ranked by their share of listings, pages
1-10), through housing_cache.fetch() of one of two registrations of the same
SQL: bench.search_city, tagged per city (as the built-in search is), and
bench.search_table, tagged with the table only -- any write invalidates all
of its answers.  Writes: a price update of a random listing.  Two scripts
with pgbench weights (95/5 and 80/20), so reads and writes are told apart in
the log.  Each run starts from an invalidated table and a warm-up of the
same mix (a miss costs a full search, 0.1-0.2 s on 1M listings), then is
measured; the longer runs repeat at most 3 times.
"""

from .procs import log, stats_delta
from .setup import CITIES

MODES = [("city", "bench.search_city", "per-city tags"),
         ("table", "bench.search_table", "table tag only")]
MIXES = [95, 80]
PAGES = 10


def read_script(query):
    cities = ", ".join("'%s'" % c for c in CITIES)
    return """
\\set c random_zipfian(1, %d, 1.1)
\\set p random_zipfian(1, %d, 1.1)
SELECT housing_cache.fetch('%s', (ARRAY[%s])[:c], NULL, NULL, NULL, :p, '20');
""" % (len(CITIES), PAGES, query, cities)


def write_script(rows):
    return """
\\set id random(1, %d)
UPDATE housing.listings SET price_cents = price_cents + 1 WHERE id = :id;
""" % rows


def split_latencies(raw):
    from .pgbench import percentile
    reads = sorted(l for _, l, s in raw if s == 0)
    writes = sorted(l for _, l, s in raw if s == 1)
    return ({"n": len(reads), "p50_us": percentile(reads, 50), "p99_us": percentile(reads, 99)},
            {"n": len(writes), "p50_us": percentile(writes, 50),
             "p99_us": percentile(writes, 99)})


def run(ctx):
    cfg, A = ctx.cfg, ctx.pg_a
    wscript = ctx.runner.script("mixed-write", write_script(ctx.facts["rows"]))
    rscripts = {m: ctx.runner.script("mixed-read-" + m, read_script(q)) for m, q, _ in MODES}
    out = {"clients": cfg.mixed_clients, "modes": {m: label for m, _, label in MODES},
           "runs": {}}
    for mix in MIXES:
        for m, _, _ in MODES:
            out["runs"]["%d/%s" % (mix, m)] = []
    for rep in range(cfg.slow_reps):
        log("mixed load: repetition %d/%d" % (rep + 1, cfg.slow_reps))
        for mix in MIXES:
            for m, _, _ in MODES:
                scripts = ["%s@%d" % (rscripts[m], mix), "%s@%d" % (wscript, 100 - mix)]
                A.psql("SELECT housing_cache.invalidate('housing.listings')")
                ctx.runner.run(A, scripts, clients=cfg.mixed_clients, length=cfg.mixed_warmup)
                before = A.stats()
                r = ctx.runner.run(A, scripts, clients=cfg.mixed_clients, keep_raw=True,
                                   length=cfg.mixed_length)
                d = stats_delta(before, A.stats())
                reads, writes = split_latencies(r["raw"])
                lookups = d["l1_hits"] + d["l2_hits"] + d["misses"] + d["bypasses"]
                out["runs"]["%d/%s" % (mix, m)].append({
                    "tps": r["tps"], "errors": r["errors"],
                    "read_tps": r["tps"] * reads["n"] / max(1, reads["n"] + writes["n"]),
                    "hit_ratio": (d["l1_hits"] + d["l2_hits"]) / lookups if lookups else None,
                    "l1_hits": d["l1_hits"], "l2_hits": d["l2_hits"], "misses": d["misses"],
                    "bypasses": d["bypasses"], "db_executions": d["db_executions"],
                    "read_p50_us": reads["p50_us"], "read_p99_us": reads["p99_us"],
                    "write_p50_us": writes["p50_us"], "write_p99_us": writes["p99_us"],
                    "reads": reads["n"], "writes": writes["n"]})
    return out
