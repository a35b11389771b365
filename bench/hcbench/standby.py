"""Workload 10: a hot standby serving cached answers.

Setup, at the start of the workload: WAL invalidation switched on in every
bench database of A (housing_cache.set_wal_invalidation(true)), then S, a
streaming hot standby of A: pg_basebackup -R from A (run as the server user,
WAL streamed during the copy, no replication slot), started with A's
settings (housing_cache preloaded, L1 in its own shared memory, L2 in the
same Redis under its own keys), hot_standby = on, its own port on 127.0.0.1.
At the end of the workload S is stopped and WAL invalidation switched off
again; on failure or interrupt Procs.stop_all stops S like every server.

a. hits    the hot search on S (an L1 hit there) against the floor on S,
           SELECT repeat('x', N) with N the answer's size; the same pair on
           A.  1 and 2 clients; the four variants alternate run by run.
b. writes  the single-row update of the writes workload on A with WAL
           invalidation on and off (one statement between runs; the order of
           each pair flips every repetition; one unmeasured run first), with
           synchronous_commit off (as the bench configures it) and on
           (PGOPTIONS); S streams throughout.
c. fills   a round: the search cached on A and on S; one Boston listing
           updated on A (its commit invalidates the search); once S has
           replayed that commit, N clients on A and N on S, connected
           beforehand, each ask for the search once, both servers at the same
           time.  Counted on each server over the round: db_executions (the
           fills), misses, fill waits.  L2 is not shared between servers, so
           each server fills its own answer.
"""

import threading
import time

from .hot import Variant, served, snapshot
from .pgbench import percentile
from .procs import BenchError, Postgres, log, stats_delta
from .setup import SEARCH_SQL

WAL_STATE = ("SELECT coalesce((SELECT wal_invalidation FROM housing_cache.replication), "
             "false)")
SYNC_ON = "-c synchronous_commit=on"
# the synchronous_commit settings of the write runs: as configured, and on
SYNC_MODES = [("off", None), ("on", SYNC_ON)]
WAL_MODES = [("on", "WAL invalidation on"), ("off", "WAL invalidation off")]


def bench_dbs(ctx):
    return [ctx.db_for_size(n) for n in ctx.cfg.table_sizes]


def set_wal(A, on, db="housing"):
    """Switch WAL invalidation in one database of A; returns the LSN of the
    switch's commit (flushed: synchronous_commit = on for that session)."""
    out = A.psql(["SET synchronous_commit = on",
                  "SELECT housing_cache.set_wal_invalidation(%s)" % ("true" if on else "false"),
                  "SELECT housing_cache.last_commit_lsn()"], db=db)
    state = A.psql(WAL_STATE, db=db)
    if state != ("t" if on else "f"):
        raise BenchError("WAL invalidation in %s is %r after set_wal_invalidation(%s)" % (
            db, state, on))
    lsn = out.splitlines()[-1].strip() if out.strip() else ""
    return lsn or A.psql("SELECT pg_current_wal_flush_lsn()")


def wait_replay(S, lsn, timeout=60):
    """Wait until S has replayed up to lsn; returns the wait in ms."""
    t = time.time()
    while True:
        if S.psql("SELECT pg_last_wal_replay_lsn() >= '%s'::pg_lsn" % lsn) == "t":
            return (time.time() - t) * 1000.0
        if time.time() - t > timeout:
            raise BenchError("the standby did not replay up to %s in %d s (replay at %s)\n%s" % (
                lsn, timeout, S.psql("SELECT pg_last_wal_replay_lsn()"), S.log_tail()))
        time.sleep(0.01)


def nudge(A, S):
    """A commit on A (flushed), replayed on S: lets S's snapshots move on."""
    lsn = A.psql(["SET synchronous_commit = on", "SELECT txid_current()",
                  "SELECT pg_current_wal_flush_lsn()"]).splitlines()[-1]
    return wait_replay(S, lsn)


def lookup(pg, sql):
    """Two calls in one session (the first may fill), then how the second was served."""
    out = pg.psql(["SELECT (%s) IS NULL" % sql, "SELECT (%s) IS NULL" % sql,
                   "SELECT tier, coalesce(bypass_reason, '') FROM housing_cache.last_lookup()"])
    parts = out.splitlines()[-1].split("\t")
    return parts[0], (parts[1] if len(parts) > 1 else "")


def warm(ctx, pg, sql, want="l1", timeout=30):
    """Until pg serves sql from tier want.  A standby bypasses its cache while
    catching up (after a start, or after its table of pending transactions
    overflowed): commits on A, replayed, let it catch up."""
    end = time.time() + timeout
    while True:
        tier, reason = lookup(pg, sql)
        if tier == want:
            return tier
        if time.time() > end:
            raise BenchError("on %s the search is served from %r (%s), not %s" % (
                pg.name, tier, reason or "-", want))
        if pg is ctx.pg_s:
            nudge(ctx.pg_a, pg)
        time.sleep(0.1)


def start_standby(ctx, out):
    A = ctx.pg_a
    for db in bench_dbs(ctx):
        set_wal(A, True, db)
    S = Postgres(ctx.procs, "pg_s", dict(ctx.settings, hot_standby="on"))
    ctx.pg_s = S
    t = time.time()
    S.base_backup_from(A)
    out["setup"]["base_backup_s"] = time.time() - t
    t = time.time()
    S.start()
    if S.psql("SELECT pg_is_in_recovery()") != "t":
        raise BenchError("the standby is not in recovery")
    end = time.time() + 60
    while S.psql("SELECT coalesce((SELECT status FROM pg_stat_wal_receiver), '')") != "streaming":
        if time.time() > end:
            raise BenchError("the standby does not stream from A:\n%s" % S.log_tail())
        time.sleep(0.1)
    nudge(A, S)
    out["setup"]["start_s"] = time.time() - t
    log("standby of A on 127.0.0.1:%d (streaming; base backup %.0f s)" % (
        S.port, out["setup"]["base_backup_s"]))
    for db in bench_dbs(ctx):
        if S.psql(WAL_STATE, db=db) != "t":
            raise BenchError("the standby does not see WAL invalidation on in %s" % db)
    out["setup"]["port"] = S.port
    out["setup"]["databases"] = bench_dbs(ctx)


def hits(ctx, out):
    cfg, A, S = ctx.cfg, ctx.pg_a, ctx.pg_s
    size = int(A.psql("SELECT octet_length((%s)::text)" % SEARCH_SQL))
    size_s = int(S.psql("SELECT octet_length((%s)::text)" % SEARCH_SQL))
    if size != size_s:
        raise BenchError("the search answers %d bytes on A, %d on the standby" % (size, size_s))
    out["size"] = size
    out["tiers"] = {"standby": warm(ctx, S, SEARCH_SQL), "primary": warm(ctx, A, SEARCH_SQL)}
    floor = "SELECT repeat('x', %d)" % size
    vs = [Variant("standby/floor", "standby: floor, repeat('x', %d)" % size, S, floor,
                  mode="floor"),
          Variant("standby/l1", "standby: search, L1 hit", S, "SELECT " + SEARCH_SQL,
                  server=S, mode="l1"),
          Variant("primary/floor", "primary: floor, repeat('x', %d)" % size, A, floor,
                  mode="floor"),
          Variant("primary/l1", "primary: search, L1 hit", A, "SELECT " + SEARCH_SQL,
                  server=A, mode="l1")]
    out["variants"] = []
    for v in vs:
        v.script = ctx.runner.script("standby-" + v.key.replace("/", "-"), v.sql + ";")
        out["variants"].append({"key": v.key, "label": v.label, "sql": v.sql})
    out["runs"] = {str(c): {v.key: [] for v in vs} for c in cfg.hot_clients}
    for rep in range(cfg.reps):
        for c in cfg.hot_clients:
            log("standby hits: repetition %d/%d, %d client(s)" % (rep + 1, cfg.reps, c))
            for v in vs:
                before = snapshot(v)
                r = ctx.runner.run(v.target, [v.script], clients=c)
                after = snapshot(v)
                rec = {"tps": r["tps"], "p50_us": r["p50_us"], "p99_us": r["p99_us"],
                       "n": r["n"], "errors": r["errors"], "timed_zero": r["timed_zero"]}
                if before is not None:
                    rec["served"] = served(v, before, after, r["n"])
                out["runs"][str(c)][v.key].append(rec)


def writes(ctx, out):
    cfg, A = ctx.cfg, ctx.pg_a
    script = ctx.runner.script("standby-writes", """
\\set id random(1, %d)
UPDATE housing.listings SET price_cents = price_cents + 1 WHERE id = :id;
""" % ctx.facts["rows"])
    out["modes"] = dict(WAL_MODES)
    out["sync_modes"] = [s for s, _ in SYNC_MODES]
    out["runs"] = {}
    for c in cfg.write_clients:
        for s, _ in SYNC_MODES:
            for m, _ in WAL_MODES:
                out["runs"]["%d/%s/%s" % (c, s, m)] = []
    try:
        # unmeasured: the first updates after the base backup's checkpoint
        # write full-page images, which would weigh on whichever ran first
        set_wal(A, True)
        ctx.runner.run(A, [script], clients=max(cfg.write_clients))
        for rep in range(cfg.reps):
            for c in cfg.write_clients:
                log("standby, WAL record cost: repetition %d/%d, %d client(s)" % (
                    rep + 1, cfg.reps, c))
                for j, (s, pgo) in enumerate(SYNC_MODES):
                    # each pair's order flips every repetition (and between pairs)
                    flip = (rep + j + cfg.write_clients.index(c)) % 2
                    for m, _ in (WAL_MODES[::-1] if flip else WAL_MODES):
                        set_wal(A, m == "on")
                        before = A.stats()
                        lsn0 = A.psql("SELECT pg_current_wal_insert_lsn()")
                        r = ctx.runner.run(A, [script], clients=c, pgoptions=pgo)
                        wal = float(A.psql("SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), "
                                           "'%s'::pg_lsn)" % lsn0))
                        d = stats_delta(before, A.stats())
                        n = r["n"] or None
                        out["runs"]["%d/%s/%s" % (c, s, m)].append({
                            "tps": r["tps"], "p50_us": r["p50_us"], "p99_us": r["p99_us"],
                            "n": r["n"], "errors": r["errors"],
                            "wal_records": d["wal_records_logged"],
                            "records_per_update": d["wal_records_logged"] / n if n else None,
                            "wal_bytes_per_update": wal / n if n else None})
    finally:
        set_wal(A, True)


def fills(ctx, out):
    cfg, A, S = ctx.cfg, ctx.pg_a, ctx.pg_s
    lid = ctx.facts["boston_listing_id"]
    n = cfg.fleet_clients
    script = ctx.runner.script("standby-fill", "SELECT %s;" % SEARCH_SQL)
    out["clients"] = n
    out["rounds"] = cfg.stampede_rounds
    out["runs"] = {"primary": [], "standby": [], "fleet": []}
    servers = (("primary", A), ("standby", S))
    for rep in range(cfg.reps):
        log("standby fills: repetition %d/%d, %d clients per server" % (rep + 1, cfg.reps, n))
        rounds = []
        for _ in range(cfg.stampede_rounds):
            warm(ctx, A, SEARCH_SQL)
            warm(ctx, S, SEARCH_SQL)
            lsn = A.psql(["SET synchronous_commit = on",
                          "UPDATE housing.listings SET price_cents = price_cents + 1 "
                          "WHERE id = %d"
                          % lid,
                          "SELECT housing_cache.last_commit_lsn()"]).splitlines()[-1]
            replay_ms = wait_replay(S, lsn)
            before = {name: pg.stats() for name, pg in servers}
            res, errs = {}, []

            def go(name, pg):
                try:
                    res[name] = ctx.runner.run(pg, [script], clients=n, length={"t": 1},
                                               keep_raw=True)
                except Exception as e:  # re-raised below, in the main thread
                    errs.append(e)
            th = threading.Thread(target=go, args=servers[1], daemon=True)
            th.start()
            go(*servers[0])
            th.join()
            if errs:
                raise errs[0]
            rnd = {"replay_ms": replay_ms}
            for name, pg in servers:
                d = stats_delta(before[name], pg.stats())
                rnd[name] = {k: d[k] for k in ("db_executions", "misses", "l1_hits", "l2_hits",
                                               "bypasses", "fill_waits", "wal_slots_resolved")}
                rnd[name]["lats"] = [x[1] for x in res[name]["raw"]]
                rnd[name]["errors"] = res[name]["errors"]
            rounds.append(rnd)
        for name, _ in servers:
            lats = sorted(l for r in rounds for l in r[name]["lats"])
            ex = [r[name]["db_executions"] for r in rounds]
            out["runs"][name].append({
                "fills": sum(ex) / len(ex), "fills_max": max(ex), "fills_min": min(ex),
                "misses": sum(r[name]["misses"] for r in rounds) / len(rounds),
                "fill_waits": sum(r[name]["fill_waits"] for r in rounds) / len(rounds),
                "l2_hits": sum(r[name]["l2_hits"] for r in rounds) / len(rounds),
                "bypasses": sum(r[name]["bypasses"] for r in rounds) / len(rounds),
                "slots_resolved": sum(r[name]["wal_slots_resolved"] for r in rounds)
                / len(rounds),
                "p50_us": percentile(lats, 50), "p99_us": percentile(lats, 99),
                "n": len(lats), "errors": sum(r[name]["errors"] for r in rounds)})
        tot = [r["primary"]["db_executions"] + r["standby"]["db_executions"] for r in rounds]
        out["runs"]["fleet"].append({
            "fills": sum(tot) / len(tot), "fills_max": max(tot),
            "replay_ms": sorted(r["replay_ms"] for r in rounds)[len(rounds) // 2]})


def run(ctx):
    A = ctx.pg_a
    out = {"setup": {}, "hits": {}, "writes": {}, "fills": {}}
    try:
        start_standby(ctx, out)
        hits(ctx, out["hits"])
        writes(ctx, out["writes"])
        fills(ctx, out["fills"])
        S = ctx.pg_s
        out["setup"]["standby_stats"] = {k: v for k, v in S.stats().items()
                                         if k.startswith("wal_") or k == "standby_catching_up"}
    finally:
        # leave A as the other workloads expect it, and stop the standby
        try:
            if A.running():
                for db in bench_dbs(ctx):
                    set_wal(A, False, db)
        finally:
            if ctx.pg_s is not None:
                ctx.pg_s.stop()
    return out
