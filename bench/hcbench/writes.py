"""Workload 3: invalidation cost on writes.

Single-row edits of random listings (pgbench -M prepared), the mixed
workload's edit mix (30% title, 30% description, 25% price, 15% status
between active and pending: mixed.edit_script), 1 and 2 clients, with
synchronous_commit = off (the server's setting here: the commit's CPU path)
and = on (PGOPTIONS: what users run, each commit waits for its WAL flush), in
three configurations alternating run by run:

  triggers      as installed: the row trigger collects tags, the commit
                bumps their generations and queues a message, which the
                publisher worker publishes to Redis
  no publish    triggers, housing_cache.publish = off (PGOPTIONS)
  no triggers   ALTER TABLE housing.listings DISABLE TRIGGER housing_cache_invalidate

The trigger's state is checked after each change (pg_trigger.tgenabled), so
a DDL event trigger that re-attached it would stop the workload rather than
measure triggers twice.  The trigger is ENABLE ALWAYS: it is put back with
ENABLE ALWAYS TRIGGER, and always re-enabled at the end.

Per run also the CPU time the whole server (every process of A's
postmaster: backends, the publisher worker, WAL writer...) and Redis spent,
per update, read from /proc: what an update costs the machine, not only its
client's wait.
"""

from .mixed import edit_script
from .procs import BenchError, log, postmaster_pid, process_cpu_s, tree_cpu_s

DISABLE = "ALTER TABLE housing.listings DISABLE TRIGGER housing_cache_invalidate"
ENABLE = "ALTER TABLE housing.listings ENABLE ALWAYS TRIGGER housing_cache_invalidate"
STATE = ("SELECT tgenabled FROM pg_trigger WHERE tgrelid = 'housing.listings'::regclass "
         "AND tgname = 'housing_cache_invalidate'")

MODES = [("triggers", "triggers (as installed)"),
         ("no-publish", "triggers, publish = off"),
         ("no-triggers", "triggers disabled")]
SYNC_MODES = ["off", "on"]
SCRIPT = "writes"


def set_triggers(pg, on):
    pg.psql(ENABLE if on else DISABLE)
    state = pg.psql(STATE)
    if state != ("A" if on else "D"):
        raise BenchError("housing_cache_invalidate is %r after %s" %
                         (state, "ENABLE ALWAYS" if on else "DISABLE"))


def pgoptions(mode, sync):
    opts = []
    if mode == "no-publish":
        opts.append("-c housing_cache.publish=off")
    if sync != "off":
        opts.append("-c synchronous_commit=%s" % sync)
    return " ".join(opts) or None


def run(ctx):
    cfg, A = ctx.cfg, ctx.pg_a
    script = ctx.runner.script(SCRIPT, edit_script(ctx.facts["rows"]))
    pm = postmaster_pid(A)
    out = {"modes": dict(MODES), "sync_modes": SYNC_MODES, "runs": {},
           "script": "mixed edit mix"}
    for sync in SYNC_MODES:
        for c in cfg.write_clients:
            for m, _ in MODES:
                out["runs"]["%d/%s/%s" % (c, sync, m)] = []
    try:
        for rep in range(cfg.reps):
            for sync in SYNC_MODES:
                for c in cfg.write_clients:
                    log("invalidation cost: repetition %d/%d, synchronous_commit = %s, "
                        "%d client(s)" % (rep + 1, cfg.reps, sync, c))
                    for m, _ in MODES:
                        set_triggers(A, m != "no-triggers")
                        before = A.stats()
                        cpu0 = (tree_cpu_s(pm), process_cpu_s(ctx.redis.pid))
                        r = ctx.runner.run(A, [script], clients=c, pgoptions=pgoptions(m, sync))
                        cpu1 = (tree_cpu_s(pm), process_cpu_s(ctx.redis.pid))
                        after = A.stats()
                        n = max(1, r["n"])

                        def per_update_us(i):
                            if cpu0[i] is None or cpu1[i] is None:
                                return None
                            return (cpu1[i] - cpu0[i]) * 1e6 / n
                        out["runs"]["%d/%s/%s" % (c, sync, m)].append({
                            "tps": r["tps"], "p50_us": r["p50_us"], "p99_us": r["p99_us"],
                            "n": r["n"], "errors": r["errors"],
                            "server_cpu_us": per_update_us(0), "redis_cpu_us": per_update_us(1),
                            "invalidations": after["invalidations"] - before["invalidations"],
                            "publishes": after["publishes"] - before["publishes"],
                            "publish_failures": after["publish_failures"]
                            - before["publish_failures"]})
    finally:
        set_triggers(A, True)
    return out
