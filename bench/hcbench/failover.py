"""Workload 11: Redis that fails over (Sentinel).

Setup, at the start of the workload: a Redis master and a replica of it
(their own, not the bench's Redis) and three sentinels (Debian's
redis-sentinel; quorum 2, down-after-milliseconds and failover-timeout as
configured), all on 127.0.0.1.  Servers A and B are pointed at the sentinels
by ALTER SYSTEM (housing_cache.redis_sentinels, redis_sentinel_master, and
breaker_backoff_ms = 200, breaker_max_backoff_ms = 1000, near the sentinels'
down-after time, as the README advises) and a reload; at the end of the
workload, also on failure, the settings are reset and reloaded, and the
Redis servers and sentinels stopped.

A sequence (on one server): the outage workload's load (2 clients, 95%
get_listing of a Zipf-drawn id among the first 10,000 listings, 5% price
updates of one of them) after a warm-up, in one pgbench run: "before" for
phase_s seconds; then the master is killed (SIGKILL) and "during" lasts
until the cache first uses the new master: its first L2 hit there, or its
first L2 store (on A reads are L1 hits, so its L2 traffic is the fills of
what writes invalidated: stores, and GETs that miss); "after" is the rest of
the run (at least phase_s).  Both are seen by a probe session that polls
housing_cache.stats every 20 ms: redis_master names the promoted replica and
l2_hits (l2_stores) has grown since it first did.  Also timed from the
kill: when a sentinel first names the new master (polled every 100 ms), and
when redis_master first shows it.  Reads are assigned to phases by completion
time; errors are pgbench's failed transactions and aborted clients.  After
the run the killed master is started again as a replica of the new one,
and the next sequence kills the new master: the roles alternate.

A: L1 + L2 (most reads are L1 hits: only misses and writes reach Redis);
B: L2 only (every read is an L2 lookup).
"""

import os
import subprocess
import threading
import time

from .agg import summary
from .pgbench import percentile
from .procs import PGBIN, BenchError, Redis, Sentinel, log, stats_delta

NAME = "hcbench"
PHASES = [("before", "healthy"),
          ("during", "master killed, until the first L2 hit or store on the new master"),
          ("after", "on the new master")]
STAT_COLS = ("l1_hits", "l2_hits", "l2_stores", "misses", "redis_errors", "breaker_skips",
             "breaker_opens",
             "redis_discoveries", "redis_failovers", "publishes", "publish_failures")
POLL_S = 0.02
SENTINEL_POLL_S = 0.1


def addr(r):
    return "127.0.0.1:%d" % r.port


class Probe:
    """One psql session kept open: a statement costs a round trip, not a
    process (psql flushes its output after each statement)."""

    def __init__(self, pg):
        self.p = subprocess.Popen(
            [os.path.join(PGBIN, "psql"), "-X", "-q", "-At", "-F", "\t"],
            env=pg.conninfo_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, bufsize=1)

    def query(self, sql):
        self.p.stdin.write(sql + ";\n\\echo __probe_end__\n")
        self.p.stdin.flush()
        out = []
        while True:
            line = self.p.stdout.readline()
            if not line:
                raise BenchError("the probe session ended")
            line = line.rstrip("\n")
            if line == "__probe_end__":
                return out
            out.append(line)

    def stats(self):
        out = self.query("SELECT %s, breaker_state, redis_master FROM housing_cache.stats"
                         % ", ".join(STAT_COLS))
        vals = out[-1].split("\t") if out else []
        if len(vals) != len(STAT_COLS) + 2:
            raise BenchError("the probe could not read housing_cache.stats: %s" % out)
        d = {c: int(v) for c, v in zip(STAT_COLS, vals)}
        d["breaker_state"], d["redis_master"] = vals[-2], vals[-1]
        return d

    def close(self):
        try:
            self.p.stdin.close()
            self.p.wait(5)
        except Exception:
            self.p.kill()


class Topology:
    """A master, a replica and three sentinels; the roles swap at each failover."""

    def __init__(self, ctx, down_after_ms, failover_timeout_ms):
        P = ctx.procs
        self.master = Redis(P, "failover-redis-1")
        self.master.start()
        self.replica = Redis(P, "failover-redis-2", ["--replicaof", "127.0.0.1", str(self.master.port)])
        self.replica.start()
        self.sentinels = [Sentinel(P, "failover-sentinel-%d" % i, NAME, self.master.port,
                                   down_after_ms=down_after_ms, failover_timeout_ms=failover_timeout_ms)
                          for i in (1, 2, 3)]
        for s in self.sentinels:
            s.start()

    def setting(self):
        return ",".join(addr(s) for s in self.sentinels)

    def named_by_any(self, a):
        return any(s.master_addr() == a for s in self.sentinels)

    def wait_ready(self, timeout=60):
        """Every sentinel names the master, sees the other two and the replica
        up and linked (what a failover needs)."""
        end = time.time() + timeout
        want = addr(self.master)
        while time.time() < end:
            if "master_link_status:up" in self.replica.cli("INFO", "replication") and all(
                    s.master_addr() == want
                    and int(s.master_info().get("num-other-sentinels", -1)) >= 2
                    and s.master_info().get("flags") == "master"
                    and s.replicas_up() >= 1 for s in self.sentinels):
                return
            time.sleep(0.1)
        raise BenchError("the sentinels did not get ready: %s" % "; ".join(
            "%s %s" % (s.master_addr(), s.master_info()) for s in self.sentinels))

    def after_failover(self):
        """The killed master comes back as a replica of the new one; roles swap."""
        old, new = self.master, self.replica
        old.args = ["--replicaof", "127.0.0.1", str(new.port)]
        old.restart_same_port()
        self.master, self.replica = new, old

    def stop(self):
        for r in self.sentinels + [self.master, self.replica]:
            try:
                r.stop()
            except Exception as e:
                log("stopping %s: %s" % (r.name, e))


def engine_settings(topo):
    return [("housing_cache.redis_sentinels", topo.setting()),
            ("housing_cache.redis_sentinel_master", NAME),
            ("housing_cache.breaker_backoff_ms", "200"),
            ("housing_cache.breaker_max_backoff_ms", "1000")]


def configure(pg, settings):
    pg.psql(["ALTER SYSTEM SET %s = '%s'" % (k, v) for k, v in settings]
            + ["SELECT pg_reload_conf()"])
    end = time.time() + 30
    want = settings[0][1]
    while pg.psql("SHOW %s" % settings[0][0]) != want:
        if time.time() > end:
            raise BenchError("%s: the reload did not take %s" % (pg.name, settings[0][0]))
        time.sleep(0.05)


def restore(pg, settings):
    if not pg or not pg.running():
        return
    pg.psql(["ALTER SYSTEM RESET %s" % k for k, _ in settings] + ["SELECT pg_reload_conf()"],
            check=False)


def wait_on_master(pg, master, timeout=60):
    """Drive Redis calls (misses: a GET and a SET, which a demoted master
    refuses with -READONLY) until pg uses master and its breaker is closed."""
    end = time.time() + timeout
    want = addr(master)
    while time.time() < end:
        pg.psql("SELECT housing_cache.get_listing(%d) IS NULL"
                % (1000000000 + int(time.time() * 100) % 100000000))
        s = pg.psql("SELECT breaker_state, redis_master FROM housing_cache.stats").split("\t")
        if s == ["closed", want]:
            return
        time.sleep(0.1)
    raise BenchError("%s does not use the master %s (stats: %s)" % (pg.name, want, s))


def run(ctx):
    from .outage import scripts_for
    cfg = ctx.cfg
    servers = [("A", ctx.pg_a), ("B", ctx.pg_b)]
    if cfg.smoke:
        servers = servers[1:]   # smoke: B only (every read an L2 lookup)
    out = {"phase_s": cfg.failover_phase_s, "grace_s": cfg.failover_grace_s, "clients": 2,
           "down_after_ms": cfg.failover_down_after_ms,
           "failover_timeout_ms": cfg.failover_timeout_ms, "servers": [n for n, _ in servers],
           "runs": {n: [] for n, _ in servers}, "timeline": {}, "setup": {}}
    t = time.time()
    topo = Topology(ctx, cfg.failover_down_after_ms, cfg.failover_timeout_ms)
    settings = engine_settings(topo)
    try:
        topo.wait_ready()
        out["setup"]["sentinels_ready_s"] = time.time() - t
        for _, pg in servers:
            configure(pg, settings)
        scripts = scripts_for(ctx)
        sequences = [(rep, name, pg) for rep in range(cfg.slow_reps) for name, pg in servers]
        for i, (rep, name, pg) in enumerate(sequences):
            if i > 0:
                # the killed master back, as a replica of the new one
                t = time.time()
                topo.after_failover()
                topo.wait_ready()
                out["setup"].setdefault("reassemble_s", []).append(time.time() - t)
            log("Redis failover: repetition %d/%d, server %s (master %s)" % (
                rep + 1, cfg.slow_reps, name, addr(topo.master)))
            wait_on_master(pg, topo.master)
            ctx.runner.run(pg, scripts, clients=out["clients"], length=cfg.outage_warmup)
            out["runs"][name].append(one_sequence(ctx, pg, topo, scripts, out, name, rep))
    finally:
        for _, pg in servers:
            try:
                restore(pg, settings)
            except Exception as e:
                log("restoring the Redis settings of %s: %s" % (pg.name, e))
        topo.stop()
    for name, _ in servers:
        runs = out["runs"][name]
        out.setdefault("summary", {})[name] = {
            k: summary([r.get(k) for r in runs])
            for k in ("named_s", "switched_s", "first_l2_s", "first_hit_s", "first_store_s")}
    return out


def one_sequence(ctx, pg, topo, scripts, out, name, rep):
    cfg = ctx.cfg
    P, G = cfg.failover_phase_s, cfg.failover_grace_s
    master, new = topo.master, topo.replica
    new_addr = addr(new)
    total = int(P + G + P + 1)
    marks = []          # (phase, time, stats)
    result = {}
    errors_at = []
    probe = Probe(pg)

    def on_err(line):
        if "aborted" in line or "ERROR" in line or "error" in line:
            errors_at.append((time.time(), line))

    def drive():
        try:
            t0 = time.time() + 0.5
            time.sleep(max(0.0, t0 - time.time()))
            marks.append(("before", time.time(), probe.stats()))
            time.sleep(max(0.0, t0 + P - time.time()))
            t_kill = time.time()
            master.kill()
            marks.append(("during", t_kill, probe.stats()))
            named = switched = s0 = None
            next_ask = 0.0
            while time.time() < t0 + total - 0.5:
                s = probe.stats()
                now = time.time()
                if s["redis_master"] == new_addr:
                    if switched is None:
                        switched, s0 = now, s
                    else:
                        for col, key in (("l2_hits", "first_hit_s"), ("l2_stores", "first_store_s")):
                            if s[col] > s0[col] and key not in result:
                                result[key] = now - t_kill
                        if len(marks) == 2 and ("first_hit_s" in result or "first_store_s" in result):
                            marks.append(("after", now, s))
                            result["first_l2_s"] = now - t_kill
                        # the other of the two, if it comes soon (A has no L2 hits)
                        if "first_l2_s" in result and (
                                ("first_hit_s" in result and "first_store_s" in result)
                                or now - t_kill - result["first_l2_s"] > 1.0):
                            break
                if named is None and now >= next_ask:
                    next_ask = now + SENTINEL_POLL_S
                    if topo.named_by_any(new_addr):
                        named = time.time()
                time.sleep(POLL_S)
            result["named_s"] = named - t_kill if named else None
            result["switched_s"] = switched - t_kill if switched else None
            time.sleep(max(0.0, t0 + total - 0.3 - time.time()))
            marks.append(("end", time.time(), probe.stats()))
        except Exception as e:  # reported after the run
            result["error"] = e

    th = threading.Thread(target=drive)
    th.start()
    try:
        r = ctx.runner.run(pg, scripts, clients=out["clients"], length={"T": total}, keep_raw=True,
                           on_stderr=on_err, check=False)
    finally:
        th.join()
        probe.close()
    if "error" in result:
        raise BenchError("Redis failover driver: %s" % result["error"])
    if r["tps"] is None and not r["raw"]:
        raise BenchError("pgbench produced nothing during the failover run:\n%s" %
                         "\n".join(l for _, l in r["stderr_times"][-20:]))

    phases = {}
    for i, (ph, t0, s0) in enumerate(marks[:-1]):
        t1, s1 = marks[i + 1][1], marks[i + 1][2]
        reads = sorted(l for ts, l, sn in r["raw"] if sn == 0 and t0 * 1e6 <= ts < t1 * 1e6)
        writes = sorted(l for ts, l, sn in r["raw"] if sn == 1 and t0 * 1e6 <= ts < t1 * 1e6)
        d = stats_delta(s0, s1)
        phases[ph] = {
            "seconds": t1 - t0, "reads": len(reads), "read_p50_us": percentile(reads, 50),
            "read_p99_us": percentile(reads, 99), "read_max_us": reads[-1] if reads else None,
            "writes": len(writes), "write_p99_us": percentile(writes, 99),
            "errors": sum(1 for ts, _ in errors_at if t0 <= ts < t1),
            "breaker_state_after": s1["breaker_state"], "redis_master_after": s1["redis_master"],
        }
        phases[ph].update({k: d[k] for k in STAT_COLS})
    if rep == 0:
        start = marks[0][1] - 0.5
        pts = [((ts / 1e6) - start, l) for ts, l, sn in r["raw"] if sn == 0]
        k = max(1, len(pts) // 20000)
        slow = sorted(l for _, l in pts)[int(len(pts) * 0.99)] if pts else 0
        tl_marks = [(ph, t - start) for ph, t, _ in marks]
        if result.get("named_s") is not None:
            tl_marks.append(("sentinels", marks[1][1] + result["named_s"] - start))
        out["timeline"][name] = {
            "points": [p for i, p in enumerate(pts) if i % k == 0 or p[1] >= slow],
            "marks": sorted(tl_marks, key=lambda m: m[1])}
    return {"phases": phases, "errors": max(r["errors"], len(errors_at)),
            "named_s": result.get("named_s"), "switched_s": result.get("switched_s"),
            "first_l2_s": result.get("first_l2_s"), "first_hit_s": result.get("first_hit_s"),
            "first_store_s": result.get("first_store_s"), "old_master": addr(master),
            "new_master": new_addr, "error_lines": [l for _, l in errors_at][:10],
            "tps": r["tps"]}
