"""Workload 4: mixed reads and writes over a Zipf-distributed mix.

Reads: the newest-first search of a city and a page, both drawn with
random_zipfian (s = 1.1; cities ranked by their share of listings, pages
1-10), in three configurations measured side by side (alternating run by
run):

  composed   housing_cache.search_listings(): the portal as installed, an id
             list per page and one fragment (card) per listing, with
             column-aware tags
  city       the same page computed whole by one query (the search before it
             was composed: bench.whole_city), tagged per city, its readers
             with housing_cache.column_tags = off -- the product before
             fragments and column-aware tags
  table      the same whole query tagged with the table only
             (bench.whole_table), column_tags = off: any write invalidates
             every answer

Writes: an edit mix of random listings -- 30% title and 30% description
edits, 25% price edits, 15% status changes between active and pending (a
listing leaves the searches, and the next such edit of it brings it back).
Two scripts with pgbench weights (95/5 and 80/20), so reads and writes are
told apart in the log.

A read is *clean* when it was served without computing anything: its answer
(for a composed search, its id list) came from L1 or L2 and no fragment was
computed.  Each read asks housing_cache.last_lookup() in the same statement
and, when it was not clean, counts itself with one nextval() of
bench.dirty_reads (one statement more for those reads only, in every
configuration alike).  The stats deltas give the list tiers and the fragment
hits and fills.

Each run starts from an invalidated table and a warm-up of the same mix (a
miss costs a full search, 0.1-0.2 s on 1M listings), then is measured; the
runs repeat at most 3 times.
"""

from .procs import log, stats_delta
from .setup import CITIES

NO_COLUMN_TAGS = "-c housing_cache.column_tags=off"
MODES = [("composed", "composed searches, column-aware tags (as installed)", None),
         ("city", "whole pages, per-city tags", NO_COLUMN_TAGS),
         ("table", "whole pages, table tag only", NO_COLUMN_TAGS)]
MIXES = [95, 80]
PAGES = 10

# The share of each kind of edit, in percent (they add up to 100).
EDITS = [("title", 30), ("description", 30), ("price", 25), ("status", 15)]

# Whether the last cached call of this session computed anything: evaluated
# after the search in the same target list (an uncorrelated subquery is an
# init plan, run when its value is first needed).
DIRTY = ("(SELECT CASE WHEN l.tier IN ('l1', 'l2') AND coalesce(l.fragment_fills, 0) = 0 "
         "THEN 0 ELSE 1 END FROM housing_cache.last_lookup() l) AS dirty")


def read_call(mode):
    cities = ", ".join("'%s'" % c for c in CITIES)
    city = "(ARRAY[%s])[:c]" % cities
    if mode == "composed":
        return "housing_cache.search_listings(city => %s, page => :p)" % city
    return ("housing_cache.fetch('bench.whole_%s', %s, NULL, NULL, NULL, :p, '20')"
            % (mode, city))


def read_script(mode):
    return """
\\set c random_zipfian(1, %d, 1.1)
\\set p random_zipfian(1, %d, 1.1)
SELECT %s AS page, %s \\gset
\\if :dirty
SELECT nextval('bench.dirty_reads');
\\endif
""" % (len(CITIES), PAGES, read_call(mode), DIRTY)


def edit_script(rows):
    """One edit of a random listing, of a kind drawn with the shares of EDITS.

    Every edit changes its column (a title gains or loses a trailing '*', a
    description gets a new number), so that column-aware tags see it."""
    bounds, acc = [], 0
    for kind, share in EDITS:
        acc += share
        bounds.append((kind, acc))
    stmts = {
        "title": "UPDATE housing.listings SET title = CASE WHEN right(title, 1) = '*' "
                 "THEN left(title, -1) ELSE title || '*' END WHERE id = :id;",
        "description": "UPDATE housing.listings SET description = 'Edited, version ' || :v "
                       "WHERE id = :id;",
        "price": "UPDATE housing.listings SET price_cents = price_cents + 1 WHERE id = :id;",
        "status": "UPDATE housing.listings SET status = CASE status WHEN 'active' THEN "
                  "'pending' ELSE 'active' END WHERE id = :id AND status IN "
                  "('active', 'pending');",
    }
    lines = ["\\set id random(1, %d)" % rows, "\\set kind random(1, 100)",
             "\\set v random(1, 1000000000)"]
    for i, (kind, bound) in enumerate(bounds):
        if i == 0:
            lines.append("\\if :kind <= %d" % bound)
        elif i < len(bounds) - 1:
            lines.append("\\elif :kind <= %d" % bound)
        else:
            lines.append("\\else")
        lines.append(stmts[kind])
    lines.append("\\endif")
    return "\n".join(lines) + "\n"


def split_latencies(raw):
    from .pgbench import percentile
    reads = sorted(l for _, l, s in raw if s == 0)
    writes = sorted(l for _, l, s in raw if s == 1)
    return ({"n": len(reads), "p50_us": percentile(reads, 50), "p99_us": percentile(reads, 99)},
            {"n": len(writes), "p50_us": percentile(writes, 50),
             "p99_us": percentile(writes, 99)})


def dirty_count(pg):
    """bench.dirty_reads' last value (0 before its first nextval)."""
    v, called = pg.psql("SELECT last_value, is_called FROM bench.dirty_reads").split("\t")
    return int(v) if called == "t" else 0


def run(ctx):
    cfg, A = ctx.cfg, ctx.pg_a
    wscript = ctx.runner.script("mixed-write", edit_script(ctx.facts["rows"]))
    rscripts = {m: ctx.runner.script("mixed-read-" + m, read_script(m)) for m, _, _ in MODES}
    out = {"clients": cfg.mixed_clients, "modes": {m: label for m, label, _ in MODES},
           "mixes": MIXES, "edits": dict(EDITS), "pages": PAGES, "cities": len(CITIES),
           "generation_slots": int(A.psql("SELECT setting FROM pg_settings "
                                          "WHERE name = 'housing_cache.generation_slots'")),
           "runs": {}}
    for mix in MIXES:
        for m, _, _ in MODES:
            out["runs"]["%d/%s" % (mix, m)] = []
    for rep in range(cfg.slow_reps):
        log("mixed load: repetition %d/%d" % (rep + 1, cfg.slow_reps))
        for mix in MIXES:
            for m, _, pgo in MODES:
                scripts = ["%s@%d" % (rscripts[m], mix), "%s@%d" % (wscript, 100 - mix)]
                A.psql("SELECT housing_cache.invalidate('housing.listings')")
                ctx.runner.run(A, scripts, clients=cfg.mixed_clients, length=cfg.mixed_warmup,
                               pgoptions=pgo)
                before, dirty0 = A.stats(), dirty_count(A)
                r = ctx.runner.run(A, scripts, clients=cfg.mixed_clients, keep_raw=True,
                                   length=cfg.mixed_length, pgoptions=pgo)
                d = stats_delta(before, A.stats())
                dirty = dirty_count(A) - dirty0
                reads, writes = split_latencies(r["raw"])
                lookups = d["l1_hits"] + d["l2_hits"] + d["misses"] + d["bypasses"]
                frags = d["fragment_hits"] + d["fragment_fills"]
                out["runs"]["%d/%s" % (mix, m)].append({
                    "tps": r["tps"], "errors": r["errors"],
                    "read_tps": r["tps"] * reads["n"] / max(1, reads["n"] + writes["n"]),
                    # clean reads: nothing computed (list or answer from the
                    # cache, no fragment filled)
                    "hit_ratio": (1 - dirty / reads["n"]) if reads["n"] else None,
                    # the answer's (the id list's) tier alone
                    "list_hit_ratio": (d["l1_hits"] + d["l2_hits"]) / lookups if lookups else None,
                    "fragment_hit_ratio": d["fragment_hits"] / frags if frags else None,
                    "dirty_reads": dirty,
                    "l1_hits": d["l1_hits"], "l2_hits": d["l2_hits"], "misses": d["misses"],
                    "bypasses": d["bypasses"], "db_executions": d["db_executions"],
                    "fragment_hits": d["fragment_hits"], "fragment_fills": d["fragment_fills"],
                    "invalidations": d["invalidations"],
                    "read_p50_us": reads["p50_us"], "read_p99_us": reads["p99_us"],
                    "write_p50_us": writes["p50_us"], "write_p99_us": writes["p99_us"],
                    "reads": reads["n"], "writes": writes["n"]})
    return out
