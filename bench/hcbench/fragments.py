"""Workload 5: what a search page costs after one of its listings changed.

The page: Boston's newest-first search, page 1 (20 listings).  A pgbench
transaction edits the title of one listing on that page (its 10th card: the
title gains or loses a trailing '*'), then reads the page.  Three
configurations, alternating run by run, 1 client:

  fragment fill  housing_cache.search_listings(city => 'Boston'): the id list
                 is still cached (a title is not among the columns it filters
                 or sorts on), 19 cards come from the cache and 1 is computed
                 by the fragment query
  whole, cached  the page as one query, tagged per city, column_tags = off
                 (bench.whole_city): the product before fragments -- the edit
                 invalidated the page, which is computed again and stored
  whole, uncached  the same query with housing_cache.enabled = off: the page
                 recomputed whole, nothing stored (the query's own cost)

Measured: the read statement's mean latency (pgbench -r), and from the
stats deltas the read's tier, fragment hits and fills per read.  The ratio
whole ÷ fragment fill is taken within each repetition.
"""

from .procs import BenchError, log, stats_delta

CITY = "Boston"
EDIT_POSITION = 10
MODES = [("fill", "composed: list cached, 1 of 20 cards computed", None),
         ("whole-miss", "whole page, per-city tags: computed and stored",
          "-c housing_cache.column_tags=off"),
         ("whole-uncached", "whole page, uncached (housing_cache.enabled = off)",
          "-c housing_cache.enabled=off")]

EDIT = ("UPDATE housing.listings SET title = CASE WHEN right(title, 1) = '*' "
        "THEN left(title, -1) ELSE title || '*' END WHERE id = %d;")
READS = {
    "fill": "SELECT housing_cache.search_listings(city => '%s');" % CITY,
    "whole-miss": "SELECT housing_cache.fetch('bench.whole_city', '%s', NULL, NULL, NULL, "
                  "'1', '20');" % CITY,
}
READS["whole-uncached"] = READS["whole-miss"]


def page_ids(pg):
    out = pg.psql("SELECT json_array_elements(housing_cache.search_listings(city => '%s')"
                  " -> 'items') ->> 'id'" % CITY)
    return [int(x) for x in out.split()]


def check(pg, lid):
    """The fill variant does what it says: after the edit, the read's list is a hit,
    one card is computed and the others come from the cache.  Up to 3 tries: an
    edit's tags may share a generation slot with another card's (a collision
    only over-invalidates)."""
    for _ in range(3):
        out = pg.psql([READS["fill"], EDIT % lid, READS["fill"],
                       "SELECT tier, fragment_hits, fragment_fills "
                       "FROM housing_cache.last_lookup()"])
        tier, hits, fills = out.splitlines()[-1].split("\t")
        res = {"tier": tier, "fragment_hits": int(hits), "fragment_fills": int(fills)}
        if (tier, res["fragment_fills"]) == ("l1", 1):
            break
    return res


def read_ms(result):
    """Mean latency of the script's SELECT (pgbench -r), in ms."""
    for ms, stmt in result["stmt_ms"]:
        if stmt.startswith("SELECT"):
            return ms
    return None


def run(ctx):
    cfg, A = ctx.cfg, ctx.pg_a
    ids = page_ids(A)
    if len(ids) < EDIT_POSITION:
        raise BenchError("the page of %s has %d listings, fewer than %d" % (CITY, len(ids),
                                                                          EDIT_POSITION))
    lid = ids[EDIT_POSITION - 1]
    scripts = {m: ctx.runner.script("fragments-" + m, (EDIT % lid) + "\n" + READS[m])
               for m, _, _ in MODES}
    out = {"city": CITY, "page_size": len(ids), "listing": lid,
           "modes": {m: label for m, label, _ in MODES}, "check": check(A, lid), "runs": {}}
    for m, _, _ in MODES:
        out["runs"][m] = []
    for rep in range(cfg.reps):
        log("fragments: repetition %d/%d" % (rep + 1, cfg.reps))
        for m, _, pgo in MODES:
            before = A.stats()
            r = ctx.runner.run(A, [scripts[m]], clients=1, pgoptions=pgo, per_statement=True)
            d = stats_delta(before, A.stats())
            n = max(1, r["n"])
            out["runs"][m].append({
                "read_ms": read_ms(r), "tps": r["tps"], "n": r["n"], "errors": r["errors"],
                "l1_hits": d["l1_hits"] / n, "l2_hits": d["l2_hits"] / n,
                "misses": d["misses"] / n, "bypasses": d["bypasses"] / n,
                "fragment_hits": d["fragment_hits"] / n,
                "fragment_fills": d["fragment_fills"] / n,
                "db_executions": d["db_executions"] / n})
    return out
