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


def profile(ctx, pg, script, pgoptions=None, seconds=3, db="housing", extra_pids=None):
    """perf on the one backend of a 1-client pgbench run of script; extra_pids
    ({name: pid}): perf stat of those processes over the same window (their
    CPU per call, e.g. the publisher worker's)."""
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
        extra = {}
        for name, xpid in (extra_pids or {}).items():
            if xpid:
                extra[name] = subprocess.Popen(
                    ["perf", "stat", "-x", ",", "-e", "task-clock", "-p", str(xpid), "--",
                     "sleep", str(seconds)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                    text=True)
        _, serr = stat.communicate(seconds + 30)
        rec.communicate(seconds + 30)
        out["extra_ms"] = {}
        for name, proc in extra.items():
            _, xerr = proc.communicate(seconds + 30)
            for line in xerr.splitlines():
                f = line.split(",")
                if len(f) >= 3 and f[0] and f[0][0].isdigit() and "task-clock" in f[2]:
                    out["extra_ms"][name] = float(f[0])
        for line in serr.splitlines():
            f = line.split(",")
            if len(f) >= 3 and f[0] and f[0][0].isdigit():
                out[f[2].strip()] = float(f[0])
        out["dsos"] = perf_report(data, "dso")
        out["symbols"] = perf_report(data, "dso,sym")
        # housing_cache.so's own functions ("housing_cache.so (deleted)" when
        # the library was installed again while the server ran)
        out["hc_symbols"] = [r for r in perf_report(data, "dso,sym", limit=400, pct_limit=0.1)
                             if "housing_cache" in r[1]][:8]
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
        out["extra_us_per_call"] = {k: v * 1000.0 / calls
                                    for k, v in out.get("extra_ms", {}).items()}
    return out


def perf_report(data, sort, limit=12, pct_limit=1):
    r = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children", "-g", "none",
                        "--sort", sort, "--percent-limit", str(pct_limit)],
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
    if p.get("hc_symbols"):
        lines.append("  - in housing_cache.so (share of all the backend's CPU): " + "; ".join(
            "`%s` %.1f%%" % (s.replace("[.] ", "").replace("[k] ", ""), pct)
            for pct, s in p["hc_symbols"][:8]))
    for name, v in sorted((p.get("extra_us_per_call") or {}).items()):
        lines.append("  - %s: %s µs of CPU per call over the same window" % (name, fmt_num(v)))
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

    def prof(pg, script, pgo=None, db="housing", extra_pids=None):
        if not can_profile or budget[0] <= 0:
            return None
        budget[0] -= 1
        try:
            return profile(ctx, pg, script, pgo, cfg.profile_s, db, extra_pids)
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
        elif t.id in ("trigger_overhead", "trigger_overhead_sync"):
            diagnose_writes(ctx, results, t, prof)
        elif t.id == "mixed_hits":
            diagnose_mixed(results, t)
        elif t.id in ("edge_vs_seed", "origin_vs_seed", "edge_rps"):
            diagnose_edge(results, t)
        elif t.id == "purge_p99":
            diagnose_purge(results, t)
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


def _med(runs, field):
    from .agg import summary
    s = summary([r.get(field) for r in runs])
    return s["median"] if s else None


def publisher_pid(pg):
    from .procs import child_named, postmaster_pid
    return child_named(postmaster_pid(pg), "housing_cache publisher")


def diagnose_writes(ctx, results, t, prof):
    """Where an update's time goes: per-update arithmetic of the three
    configurations, the server's and Redis' CPU per update, and profiles."""
    wr = results["writes"]
    c, sync = t.worst

    def med(m, field="tps"):
        return _med(wr["runs"]["%d/%s/%s" % (c, sync, m)], field)
    on, nopub, off = med("triggers"), med("no-publish"), med("no-triggers")
    t.why.append(
        "At %d client(s), synchronous_commit = %s (medians): %s updates/s without triggers, %s "
        "with triggers but no publish, %s as installed.  Per update, from those medians, the "
        "client waits %s for the row trigger and the commit's generation bumps, and %s for "
        "the message (queued at commit, published by the publisher worker)." % (
            c, sync, fmt_num(off), fmt_num(nopub), fmt_num(on),
            more_or_less((us(nopub, c) or 0) - (us(off, c) or 0)),
            more_or_less((us(on, c) or 0) - (us(nopub, c) or 0))))
    cpu = {m: med(m, "server_cpu_us") for m in ("triggers", "no-publish", "no-triggers")}
    rcpu = med("triggers", "redis_cpu_us")
    if None not in cpu.values():
        t.why.append(
            "The machine's side (CPU time of every process of server A, from /proc, per "
            "update): %s µs without triggers, %s µs with triggers and no publish (%s for the "
            "triggers and bumps), %s µs as installed (%s for the message: the copy into the "
            "queue, waking the publisher worker, its PUBLISH); Redis %s µs per update.  On 2 "
            "cores shared by pgbench, PostgreSQL and Redis, CPU spent anywhere is time the "
            "next update waits for." % (
                fmt_num(cpu["no-triggers"]), fmt_num(cpu["no-publish"]),
                more_or_less(cpu["no-publish"] - cpu["no-triggers"]), fmt_num(cpu["triggers"]),
                more_or_less(cpu["triggers"] - cpu["no-publish"]), fmt_num(rcpu)))
        if cpu["triggers"] - cpu["no-publish"] > cpu["no-publish"] - cpu["no-triggers"]:
            t.why.append(
                "Most of it is the message, not the trigger: at each commit the writer copies "
                "its message into the shared queue and wakes the publisher worker (SetLatch: "
                "a signal when the worker sleeps), which publishes the queue to Redis in one "
                "round trip and sleeps again — when commits come one at a time, one wake-up, "
                "one round trip and one PUBLISH for Redis to handle per update, on the same "
                "2 cores.")
    if t.id == "trigger_overhead_sync":
        t.why.append("With synchronous_commit = on a commit also waits for its WAL flush, so "
                     "the same CPU is a smaller share of each update.")
    from .writes import SCRIPT, pgoptions, set_triggers
    script = os.path.join(ctx.work, SCRIPT + ".sql")
    pub = {"publisher worker": publisher_pid(ctx.pg_a), "Redis": ctx.redis.pid}
    p1 = prof(ctx.pg_a, script, pgoptions("triggers", sync), extra_pids=pub)
    p2 = prof(ctx.pg_a, script, pgoptions("no-publish", sync), extra_pids=pub)
    try:
        set_triggers(ctx.pg_a, False)
        p3 = prof(ctx.pg_a, script, pgoptions("no-triggers", sync), extra_pids=pub)
    finally:
        set_triggers(ctx.pg_a, True)
    t.profile = (fmt_profile("update, triggers as installed (sync %s)" % sync, p1)
                 + fmt_profile("update, triggers, publish = off", p2)
                 + fmt_profile("update, triggers disabled", p3))
    if p1 and p3 and "cpu_us_per_call" in p1 and "cpu_us_per_call" in p3:
        t.why.append(
            "In the profiles below (1 client): the backend spends %s µs of CPU per update with "
            "the triggers and %s without (%s), of which housing_cache.so's own functions are "
            "%.1f%% of its CPU (the rest is PostgreSQL and the kernel: the wake-up); the "
            "publisher worker %s µs per update, Redis %s."
            % (fmt_num(p1["cpu_us_per_call"]), fmt_num(p3["cpu_us_per_call"]),
               more_or_less(p1["cpu_us_per_call"] - p3["cpu_us_per_call"]),
               sum(pct for pct, _ in p1.get("hc_symbols") or []),
               fmt_num((p1.get("extra_us_per_call") or {}).get("publisher worker")),
               fmt_num((p1.get("extra_us_per_call") or {}).get("Redis"))))


def diagnose_mixed(results, t):
    """Why composed reads computed something under the 95/5 load."""
    from .mixed import EDITS
    mx = results["mixed"]
    runs = mx["runs"]["95/composed"]
    reads = sum(r["reads"] for r in runs)
    writes = sum(r["writes"] for r in runs)
    if not reads:
        return
    misses = sum(r["misses"] for r in runs)
    byp = sum(r["bypasses"] for r in runs)
    dirty = sum(r["dirty_reads"] for r in runs)
    cards = max(0, dirty - misses - byp)
    shares = dict((k, v / 100.0) for k, v in EDITS)
    list_edits = writes * (shares.get("price", 0) + shares.get("status", 0))
    t.why.append(
        "Over the 95/5 composed runs: %s reads and %s edits.  Reads that computed something: "
        "%.1f%% id-list misses, %.1f%% bypasses (a write to the page's tags in flight: "
        "computed without the cache), %.1f%% card fills only (list a hit)." % (
            "{:,}".format(reads), "{:,}".format(writes), 100.0 * misses / reads,
            100.0 * byp / reads, 100.0 * cards / reads))
    if list_edits:
        k = misses / list_edits
        t.why.append(
            "An id list depends on what it filters and sorts on: of the edits, price (%d%%) and "
            "status (%d%%) change it — %s edits here, each invalidating the page lists of its "
            "city (10 pages are read).  Each such edit cost %s list recomputations (misses ÷ "
            "those edits), so the share of reads that find their list current is about 1 − %s "
            "× %s ÷ %s = %.1f%%.  Writes are spread over listings as reads are over cities "
            "(both follow city size): the busy cities' lists are both the most read and the "
            "most often invalidated.  Price edits invalidate the newest-first lists too, "
            "although a search without price bounds does not depend on prices: the list "
            "query is registered once for every combination of its optional filters and "
            "reads `price_cents` (its optional price bounds), and an answer's columns are "
            "those of its query, whatever the call's arguments." % (
                100 * shares.get("price", 0), 100 * shares.get("status", 0),
                fmt_num(list_edits), fmt_num(k), fmt_num(k), fmt_num(list_edits),
                "{:,}".format(reads), 100 * (1 - k * list_edits / reads)))
    slots = mx.get("generation_slots")
    bumps = sum(r.get("invalidations", 0) for r in runs)
    if slots and cards:
        # a card (tagged by its listing's id) is invalidated by an edit of
        # its listing, and by any edit whose tags hash to the same slot
        cards_read = mx.get("cities", 20) * mx.get("pages", 10) * 20
        t.why.append(
            "Card fills with the list a hit: %s reads.  Cards are tagged by listing id; "
            "edits of listings shown on the pages read are rare (the edits are spread over "
            "the whole table), but tags share %s generation slots: the runs bumped %s slots "
            "(`invalidations`) in %d runs, so each of the up to %s cards read had its slot "
            "bumped by an unrelated edit with a chance of about %.1f%% per run (a collision "
            "only over-invalidates) — about %s needless card fills, against %s reads with "
            "cards only computed.  A larger `housing_cache.generation_slots` (a power of two, at "
            "server start; `BENCH_PG_SETTINGS` sets it for an experiment) makes these "
            "rarer." % (
                "{:,}".format(cards), "{:,}".format(slots), "{:,}".format(bumps), len(runs),
                "{:,}".format(cards_read), 100.0 * bumps / len(runs) / slots,
                "{:,}".format(int(cards_read * bumps / slots)), "{:,}".format(cards)))
    city = mx["runs"].get("95/city") or []
    if city:
        cr = sum(r["reads"] for r in city)
        cm = sum(r["misses"] + r["bypasses"] for r in city)
        t.why.append(
            "For comparison, whole pages with per-city tags (column_tags off) in the same run "
            "missed %.1f%% of their reads: every edit, title and description included, "
            "invalidates its city's pages." % (100.0 * cm / cr if cr else 0))
    t.why.append("The goal counts as clean only reads that computed nothing; a card fill "
                 "costs one fragment query for the missing cards, far less than a whole page "
                 "(see *A page missing one card*).")


def diagnose_edge(results, t):
    """Per request, where the CPU of each variant goes (from /proc over the runs)."""
    ed = results["edge"]

    def cpu(v):
        parts = {}
        for r in ed["runs"][v]:
            for k, x in (r.get("cpu_us") or {}).items():
                parts.setdefault(k, []).append(x)
        return {k: sorted(x)[len(x) // 2] for k, x in parts.items()}

    def text(v):
        c = cpu(v)
        big = sorted(((x, k) for k, x in c.items() if x >= 0.5), reverse=True)
        return "%s µs (%s)" % (fmt_num(sum(x for x, _ in big)),
                              ", ".join("%s %s" % (k, fmt_num(x)) for x, k in big))

    seed = _med(ed["runs"]["seed"], "rps")
    t.why.append("CPU per request, medians over the runs: seed stack cached %s; %s %s.  wrk "
                 "and the servers share the 2 cores, so the requests/s of a variant are about "
                 "2,000,000 ÷ its total (when the cores are saturated)." % (
                     text("seed"), {"origin_vs_seed": "origin L1 hit"}.get(t.id, "edge hit"),
                     text("origin" if t.id == "origin_vs_seed" else "edge")))
    if t.id == "origin_vs_seed":
        t.why.append(
            "An origin hit is an HTTP request to hc_http plus one pipelined round trip to a "
            "PostgreSQL backend (BEGIN, the request's settings, the api function: the engine's "
            "composed lookup and the cache headers in PL/pgSQL, COMMIT); a seed hit is "
            "Python's request handling and two Redis GETs (the page's header key, then the "
            "pickled response).  %s req/s against %s req/s." % (
                fmt_num(_med(ed["runs"]["origin"], "rps")), fmt_num(seed)))
        hot = results.get("hot")
        if isinstance(hot, dict) and "runs" in hot and "search/l1" in hot["runs"].get("1", {}):
            t.why.append(
                "The same L1 hit called directly, without HTTP, takes %s µs per call, round "
                "trip included (hot reads, 1 client): the PostgreSQL side of an origin hit "
                "is mostly the API's transaction around it (its settings, the PL/pgSQL "
                "function, `http_cache_headers()`), not the cache." % fmt_num(
                    us(hot_median(hot, 1, "search/l1"))))
    else:
        t.why.append("wrk's own share is in the edge row: on 2 cores the load generator "
                     "takes a large part of what the edge could use.")


def diagnose_purge(results, t):
    lat = results["edge"]["latency"]
    rounds = lat["rounds"]
    t.why.append(
        "Per round, from the commit to the first request that was no longer a HIT (an upper "
        "bound of when the purge landed): p50 %s, p99 %s ms; the origin's refill of the page "
        "(the MISS request): p50 %s ms.  The purge itself waits for the publisher worker "
        "(woken at commit), Redis delivering the message to hc_purger, and one PURGE." % (
            ", ".join(fmt_num(r["purged_p50_ms"]) for r in rounds),
            ", ".join(fmt_num(r["purged_p99_ms"]) for r in rounds),
            ", ".join(fmt_num(r["refill_p50_ms"]) for r in rounds)))
