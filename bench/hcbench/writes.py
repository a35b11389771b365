"""Workload 3: invalidation cost on writes.

Single-row price updates of random listings (pgbench -M prepared), 1 and 2
clients, in three configurations alternating run by run:

  triggers      as installed: the row trigger collects tags, the commit
                bumps their generations and publishes a message to Redis
  no publish    triggers, housing_cache.publish = off (PGOPTIONS)
  no triggers   ALTER TABLE housing.listings DISABLE TRIGGER housing_cache_invalidate

The trigger's state is checked after each change (pg_trigger.tgenabled), so
a DDL event trigger that re-attached it would stop the workload rather than
measure triggers twice.  The trigger is ENABLE ALWAYS: it is put back with
ENABLE ALWAYS TRIGGER, and always re-enabled at the end.
"""

from .procs import BenchError, log

DISABLE = "ALTER TABLE housing.listings DISABLE TRIGGER housing_cache_invalidate"
ENABLE = "ALTER TABLE housing.listings ENABLE ALWAYS TRIGGER housing_cache_invalidate"
STATE = ("SELECT tgenabled FROM pg_trigger WHERE tgrelid = 'housing.listings'::regclass "
         "AND tgname = 'housing_cache_invalidate'")

MODES = [("triggers", "triggers (as installed)"),
         ("no-publish", "triggers, publish = off"),
         ("no-triggers", "triggers disabled")]


def set_triggers(pg, on):
    pg.psql(ENABLE if on else DISABLE)
    state = pg.psql(STATE)
    if state != ("A" if on else "D"):
        raise BenchError("housing_cache_invalidate is %r after %s" %
                         (state, "ENABLE ALWAYS" if on else "DISABLE"))


def run(ctx):
    cfg, A = ctx.cfg, ctx.pg_a
    rows = ctx.facts["rows"]
    script = ctx.runner.script("writes", """
\\set id random(1, %d)
UPDATE housing.listings SET price_cents = price_cents + 1 WHERE id = :id;
""" % rows)
    out = {"modes": dict(MODES), "runs": {}}
    for c in cfg.write_clients:
        for m, _ in MODES:
            out["runs"]["%d/%s" % (c, m)] = []
    try:
        for rep in range(cfg.reps):
            for c in cfg.write_clients:
                log("invalidation cost: repetition %d/%d, %d client(s)" % (rep + 1, cfg.reps, c))
                for m, _ in MODES:
                    set_triggers(A, m != "no-triggers")
                    pgo = "-c housing_cache.publish=off" if m == "no-publish" else None
                    before = A.stats()
                    r = ctx.runner.run(A, [script], clients=c, pgoptions=pgo)
                    after = A.stats()
                    out["runs"]["%d/%s" % (c, m)].append({
                        "tps": r["tps"], "p50_us": r["p50_us"], "p99_us": r["p99_us"],
                        "n": r["n"], "errors": r["errors"],
                        "invalidations": after["invalidations"] - before["invalidations"],
                        "publishes": after["publishes"] - before["publishes"]})
    finally:
        set_triggers(A, True)
    return out
