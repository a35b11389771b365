"""Why a target failed: per-call arithmetic from the run, and profiles.

A profile attaches `perf stat` (task-clock, context switches) and `perf
record` (cpu-clock samples, call graphs) to the one backend serving a
1-client pgbench run of a variant, for a few seconds.  CPU per call is the
backend's task-clock divided by the calls pgbench completed in that window.
"""

import os
import re
import shutil
import subprocess
import time

from .agg import fmt_num
from .pgbench import PGBENCH
from .procs import log
from .targets import hot_ratio

APP = "bench-profile"


def perf_available():
    return shutil.which("perf") is not None


def profile(ctx, pg, script, pgoptions=None, seconds=3, db="housing"):
    env = pg.conninfo_env(db)
    env["PGAPPNAME"] = APP
    if pgoptions:
        env["PGOPTIONS"] = pgoptions
    total = seconds + 3
    bench = subprocess.Popen([PGBENCH, "-n", "-M", "prepared", "-c", "1", "-j", "1",
                              "-T", str(total), "-f", script], env=env, cwd=ctx.work,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ctx.runner.current.append(bench)
    out = {"seconds": seconds}
    try:
        pid = None
        for _ in range(40):
            time.sleep(0.1)
            pid = pg.psql("SELECT pid FROM pg_stat_activity WHERE application_name = '%s' "
                          "AND backend_type = 'client backend'" % APP, db=db)
            if pid.isdigit():
                break
        if not pid or not pid.isdigit():
            out["error"] = "backend of the profiled run not found"
            return out
        time.sleep(0.5)
        data = os.path.join(ctx.work, "perf-%s.data" % pid)
        stat = subprocess.Popen(["perf", "stat", "-x", ",", "-e",
                                 "task-clock,context-switches,cpu-migrations",
                                 "-p", pid, "--", "sleep", str(seconds)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        rec = subprocess.Popen(["perf", "record", "-q", "-e", "cpu-clock", "-F", "1999", "-g",
                                "-p", pid, "-o", data, "--", "sleep", str(seconds)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        _, serr = stat.communicate(seconds + 30)
        rec.communicate(seconds + 30)
        for line in serr.splitlines():
            f = line.split(",")
            if len(f) >= 3 and f[0] and f[0][0].isdigit():
                out[f[2].strip()] = float(f[0])
        out["dsos"] = perf_report(data, "dso")
        out["symbols"] = perf_report(data, "dso,sym")
        try:
            os.unlink(data)
        except OSError:
            pass
    finally:
        bout, _ = bench.communicate(total + 60)
        ctx.runner.current.remove(bench)
    m = re.search(r"^tps = ([0-9.]+) \(without", bout, re.M)
    out["tps"] = float(m.group(1)) if m else None
    if out.get("tps") and "task-clock" in out:
        calls = out["tps"] * seconds
        out["cpu_us_per_call"] = out["task-clock"] * 1000.0 / calls
        out["cs_per_call"] = out.get("context-switches", 0) / calls
    return out


def perf_report(data, sort, limit=12):
    r = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children", "-g", "none",
                        "--sort", sort, "--percent-limit", "1"],
                       capture_output=True, text=True)
    rows = []
    for line in r.stdout.splitlines():
        line = line.rstrip()
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^\s*([0-9.]+)%\s+(.*)$", line)
        if m:
            rows.append((float(m.group(1)), re.sub(r"\s+", " ", m.group(2)).strip()))
    return rows[:limit]


def fmt_profile(label, p):
    if p is None:
        return ["- %s: not profiled" % label]
    if "error" in p:
        return ["- %s: %s" % (label, p["error"])]
    lines = ["- **%s**: %s calls/s; backend CPU %s µs per call, %s context switches per call"
             % (label, fmt_num(p.get("tps")), fmt_num(p.get("cpu_us_per_call")),
                fmt_num(p.get("cs_per_call")))]
    if p.get("dsos"):
        lines.append("  - CPU by object: " + ", ".join("%s %.0f%%" % (d.split()[-1] if "/" in d else d, pct)
                                                   for pct, d in p["dsos"][:6]))
    if p.get("symbols"):
        lines.append("  - hottest functions: " + "; ".join(
            "`%s` %.1f%%" % (s.replace("[.] ", "").replace("[k] ", ""), pct)
            for pct, s in p["symbols"][:8]))
    return lines


def us(tps, clients=1):
    """Microseconds per call of one client, from the throughput of all."""
    return clients * 1e6 / tps if tps else None


def more_or_less(d):
    return ("%s µs more" % fmt_num(d)) if d >= 0 else ("%s µs less" % fmt_num(-d))


def hot_median(hot, c, key, field="tps"):
    from .agg import summary
    s = summary([r.get(field) for r in hot["runs"][str(c)].get(key, [])])
    return s["median"] if s else None


def script_of(ctx, key):
    return os.path.join(ctx.work, "hot-%s.sql" % key.replace("/", "-"))


def diagnose(ctx, results, targets):
    cfg = ctx.cfg
    can_profile = perf_available() and os.geteuid() == 0
    budget = [cfg.max_profiles]

    def prof(pg, script, pgo=None, db="housing"):
        if not can_profile or budget[0] <= 0:
            return None
        budget[0] -= 1
        try:
            return profile(ctx, pg, script, pgo, cfg.profile_s, db)
        except Exception as e:  # a profile is a bonus
            return {"error": "profile failed: %s" % e}

    if not can_profile:
        note = "perf is not available (or not root): no profiles"
    else:
        note = None
    hot = results.get("hot")
    for t in targets:
        if t.passed is not False:
            continue
        log("diagnosis: %s" % t.id)
        if note:
            t.why.append(note)
        if t.id in ("l1_floor", "l2_floor", "speedup") and hot:
            label, num, den, c = t.worst
            tn, td = hot_median(hot, c, num), hot_median(hot, c, den)
            t.why.append("At %d client(s), each client of `%s` completes a call every %s µs and "
                         "of `%s` every %s µs: the cached path costs %s per call, round trip "
                         "included." % (c, num, fmt_num(us(tn, c)), den, fmt_num(us(td, c)),
                                        more_or_less((us(tn, c) or 0) - (us(td, c) or 0))))
            if t.id == "speedup":
                t.why.append("With %s listings the uncached search takes %s µs per call; the "
                             "ratio grows with the table (see Scaling)." %
                             ("{:,}".format(ctx.facts["rows"]), fmt_num(us(td, c))))
            pg = ctx.pg_b if num.endswith("/l2") else ctx.pg_a
            p1 = prof(pg, script_of(ctx, num))
            p0 = prof(ctx.pg_a, script_of(ctx, den),
                      "-c housing_cache.enabled=off" if den.endswith("uncached") else None)
            t.profile = fmt_profile(num, p1) + fmt_profile(den, p0)
            if p1 and p0 and "cpu_us_per_call" in p1 and "cpu_us_per_call" in p0:
                t.why.append(
                    "Inside the backend (profile below), a call of `%s` costs %s µs of CPU and "
                    "%s context switches, a call of `%s` %s µs and %s: the cache path's own CPU "
                    "is %s per call." % (
                        num, fmt_num(p1["cpu_us_per_call"]), fmt_num(p1["cs_per_call"]),
                        den, fmt_num(p0["cpu_us_per_call"]), fmt_num(p0["cs_per_call"]),
                        more_or_less(p1["cpu_us_per_call"] - p0["cpu_us_per_call"])))
            if num.endswith("/l2"):
                t.why.append(
                    "An L2 hit adds a Redis round trip to each call: the backend sends GET and "
                    "sleeps until Redis — another process on the same 2 cores — is scheduled, "
                    "answers, and the backend is scheduled again (hence the extra context "
                    "switches); on a busy 2-core machine that wait, not CPU, dominates, and its "
                    "tail shows in p99.")
            elif num.endswith("/l1") and t.id == "l1_floor":
                t.why.append(
                    "The spread of the ratio over the repetitions (see *every case*) is as "
                    "large as the gap to the goal: on this shared machine a difference of a few "
                    "µs per call is within the noise of 2-second runs.")
        elif t.id == "l1_pgpool" and hot:
            label, num, den, c = t.worst
            tn, td = hot_median(hot, c, num), hot_median(hot, c, den)
            t.why.append("At %d client(s), `%s` takes %s µs per call and pgpool-II's cache hit "
                         "`%s` %s µs.  pgpool-II answers from its own process without "
                         "reaching PostgreSQL; an L1 hit runs inside a backend: parse/bind of "
                         "the function call, executor start, the key's digest, the L1 lookup "
                         "and copy, and the JSON datum." % (c, num, fmt_num(us(tn, c)), den,
                                                             fmt_num(us(td, c))))
            t.profile = fmt_profile(num, prof(ctx.pg_a, script_of(ctx, num.replace("-simple", ""))))
        elif t.id == "trigger_overhead":
            wr = results["writes"]
            c = t.worst
            from .agg import summary

            def med(m):
                s = summary([r["tps"] for r in wr["runs"]["%d/%s" % (c, m)]])
                return s["median"] if s else None
            on, nopub, off = med("triggers"), med("no-publish"), med("no-triggers")
            t.why.append("At %d client(s) (medians): %s updates/s without triggers, %s with "
                         "triggers but no publish, %s as installed.  Per update, from those "
                         "medians: the row trigger and the commit's generation bumps cost %s, "
                         "publishing the invalidation message to Redis %s." % (
                             c, fmt_num(off), fmt_num(nopub), fmt_num(on),
                             more_or_less((us(nopub, c) or 0) - (us(off, c) or 0)),
                             more_or_less((us(on, c) or 0) - (us(nopub, c) or 0))))
            t.why.append("The publish is sent without waiting for Redis' reply, but each commit "
                         "still writes to the Redis socket (and reads the previous reply), "
                         "which wakes Redis — a third busy process on 2 cores — once per "
                         "update; the profiles below compare the backend's CPU and context "
                         "switches per update in the three configurations.")
            from .writes import set_triggers
            script = os.path.join(ctx.work, "writes.sql")
            p1 = prof(ctx.pg_a, script)
            p2 = prof(ctx.pg_a, script, "-c housing_cache.publish=off")
            try:
                set_triggers(ctx.pg_a, False)
                p3 = prof(ctx.pg_a, script)
            finally:
                set_triggers(ctx.pg_a, True)
            t.profile = (fmt_profile("update, triggers as installed", p1)
                         + fmt_profile("update, triggers, publish = off", p2)
                         + fmt_profile("update, triggers disabled", p3))
        elif t.id == "stampede":
            st = results["stampede"]
            n = t.worst
            runs = st["runs"]["%d/on" % n]
            t.why.append("With single-flight on and %d clients, rounds ran the query up to %d "
                         "times (%s on average) with %s waiting sessions per round.  An "
                         "execution beyond the first means a session found no fill in "
                         "progress: it arrived after the filler finished but before it "
                         "could read the stored answer, or its wait ran out "
                         "(housing_cache.fill_wait_ms), or the key was refreshed early (XFetch)."
                         % (n, max(r["executions_max"] for r in runs),
                            fmt_num(sum(r["executions"] for r in runs) / len(runs)),
                            fmt_num(sum(r["fill_waits"] for r in runs) / len(runs))))
        elif t.id == "standby_floor":
            h = results["standby"]["hits"]
            label, num, den, c = t.worst
            tn, td = hot_median(h, c, num), hot_median(h, c, den)
            t.why.append("At %d client(s), each client of the L1 hit on the standby completes a "
                         "call every %s µs and of the floor on the standby every %s µs: the "
                         "cached path costs %s per call there, round trip included." % (
                             c, fmt_num(us(tn, c)), fmt_num(us(td, c)),
                             more_or_less((us(tn, c) or 0) - (us(td, c) or 0))))
            on_a = hot_ratio(h, c, "primary/l1", "primary/floor")
            if on_a:
                t.why.append("On the primary, in the same run, the same ratio is %s× (%s–%s×): "
                             "if it is as low, what the standby adds (its replay, the check of "
                             "its pending transactions) is not the cause; see the L1 target "
                             "and its profile." % (fmt_num(on_a["median"]),
                                                   fmt_num(on_a["min"]), fmt_num(on_a["max"])))
            t.why.append("No profile: the standby is stopped at the end of its workload.")
        elif t.id == "wal_record_cost":
            from .agg import summary
            wr = results["standby"]["writes"]
            c = t.worst

            def med(m, field="tps"):
                s = summary([r[field] for r in wr["runs"]["%d/off/%s" % (c, m)]
                             if r.get(field) is not None])
                return s["median"] if s else None
            on, off = med("on"), med("off")
            t.why.append("At %d client(s), synchronous_commit = off (medians): %s updates/s "
                         "with WAL invalidation off, %s with it on: %s per update, for %s more "
                         "bytes of WAL per update (%s against %s) and one XLogInsert before "
                         "the commit record (the lock on `housing_cache.replication` and the "
                         "read of the switch are taken in both configurations)." % (
                             c, fmt_num(off), fmt_num(on),
                             more_or_less((us(on, c) or 0) - (us(off, c) or 0)),
                             fmt_num((med("on", "wal_bytes_per_update") or 0)
                                     - (med("off", "wal_bytes_per_update") or 0)),
                             fmt_num(med("on", "wal_bytes_per_update")),
                             fmt_num(med("off", "wal_bytes_per_update"))))
            t.why.append("The figure includes what the extra record costs the rest of the "
                         "machine: the WAL sender ships it and the standby's startup process "
                         "replays it on the same 2 cores.  The spread of the loss over the "
                         "repetitions (see *every case*) shows how much of it is noise: runs "
                         "of 2 s on a shared 2-core machine can differ by several percent.  The profiles "
                         "below run after the standby has stopped: the backend's own CPU per "
                         "update with the record and without.")
            from .standby import set_wal
            script = os.path.join(ctx.work, "standby-writes.sql")
            try:
                set_wal(ctx.pg_a, True)
                p1 = prof(ctx.pg_a, script)
            finally:
                set_wal(ctx.pg_a, False)
            p0 = prof(ctx.pg_a, script)
            t.profile = (fmt_profile("update, WAL invalidation on", p1)
                         + fmt_profile("update, WAL invalidation off", p0))
        elif t.id in ("outage_errors", "failover_errors"):
            ou = results["outage" if t.id == "outage_errors" else "failover"]
            for server, runs in ou["runs"].items():
                for r in runs:
                    for line in r.get("error_lines", [])[:5]:
                        t.why.append("server %s: `%s`" % (server, line.strip()))
