"""The goals the report checks, from the measurements of one run."""

from .agg import fmt_num, ratios, summary


def _ok(w):
    return isinstance(w, dict) and "error" not in w and "skipped" not in w


def series(runs, key, field):
    return [r.get(field) for r in runs.get(key, [])]


def hot_ratio(hot, c, num, den, field="tps"):
    runs = hot["runs"][str(c)]
    return summary(ratios(series(runs, num, field), series(runs, den, field)))


def wal_record_loss(wr, c, sync):
    """1 - tps(WAL invalidation on) / tps(off), per repetition: summary."""
    on = series(wr["runs"], "%d/%s/on" % (c, sync), "tps")
    off = series(wr["runs"], "%d/%s/off" % (c, sync), "tps")
    return summary([1 - r if r is not None else None for r in ratios(on, off)])


class Target:
    def __init__(self, tid, name, goal):
        self.id, self.name, self.goal = tid, name, goal
        self.passed = None          # True, False, or None (not measured)
        self.measured = "not measured"
        self.cases = []             # (label, summary or value, ok)
        self.worst = None           # the worst case, for the diagnosis
        self.why = []               # explanation lines (markdown)
        self.profile = None         # diagnosis output (markdown)


def ratio_target(t, hot, clients, pairs, threshold, higher_is_better=True):
    """pairs: [(label, num_key, den_key)]; passes if every median meets threshold."""
    worst = None
    for c in clients:
        for label, num, den in pairs:
            s = hot_ratio(hot, c, num, den)
            if s is None:
                continue
            ok = s["median"] >= threshold
            t.cases.append(("%s, %d client%s" % (label, c, "s" if c > 1 else ""), s, ok))
            if worst is None or s["median"] < worst[1]["median"]:
                worst = ((label, num, den, c), s)
    if worst is None:
        return
    t.worst = worst[0]
    t.passed = all(ok for _, _, ok in t.cases)
    t.measured = "worst %s× (%s, %d client%s; runs %s–%s×)" % (
        fmt_num(worst[1]["median"]), worst[0][0], worst[0][3], "s" if worst[0][3] > 1 else "",
        fmt_num(worst[1]["min"]), fmt_num(worst[1]["max"]))


def evaluate(cfg, results):
    ts = []
    hot = results.get("hot")
    queries = ["search", "listing", "stats"]

    t = Target("l1_floor", "L1 hit throughput vs the same-size constant answer (floor)", "≥ 0.8×")
    if _ok(hot):
        ratio_target(t, hot, cfg.hot_clients,
                     [(q, "%s/l1" % q, "%s/floor" % q) for q in queries], 0.8)
    ts.append(t)

    t = Target("l2_floor", "L2-only hit throughput vs the floor", "≥ 0.4×")
    if _ok(hot):
        ratio_target(t, hot, cfg.hot_clients,
                     [(q, "%s/l2" % q, "%s/floor" % q) for q in queries], 0.4)
    ts.append(t)

    t = Target("l1_pgpool", "L1 hit throughput vs pgpool-II's query-cache hit (same search)",
               "≥ 1.0×")
    if _ok(hot):
        ratio_target(t, hot, cfg.hot_clients,
                     [("prepared", "search/l1", "search/pgpool"),
                      ("simple protocol", "search/l1-simple", "search/pgpool-simple")], 1.0)
    ts.append(t)

    t = Target("speedup", "cached search (L1 hit) vs uncached, throughput", "≥ 50×")
    if _ok(hot):
        ratio_target(t, hot, cfg.hot_clients, [("search", "search/l1", "search/uncached")], 50)
    ts.append(t)

    t = Target("stampede", "database executions per stampede with single-flight", "= 1")
    st = results.get("stampede")
    if _ok(st):
        worst = None
        for n in cfg.stampede_clients:
            runs = st["runs"].get("%d/on" % n, [])
            if not runs:
                continue
            mx = max(r["executions_max"] for r in runs)
            ok = mx == 1
            t.cases.append(("%d clients (most in one round)" % n, mx, ok))
            if worst is None or mx > worst[1]:
                worst = (n, mx)
        if worst:
            t.passed = all(ok for _, _, ok in t.cases)
            t.worst = worst[0]
            t.measured = "at most %d (%d clients)" % (worst[1], worst[0])
    ts.append(t)

    t = Target("trigger_overhead", "write throughput lost to the invalidation triggers", "≤ 10%")
    wr = results.get("writes")
    if _ok(wr):
        worst = None
        for c in cfg.write_clients:
            on = series(wr["runs"], "%d/triggers" % c, "tps")
            off = series(wr["runs"], "%d/no-triggers" % c, "tps")
            loss = summary([1 - r if r is not None else None for r in ratios(on, off)])
            if loss is None:
                continue
            ok = loss["median"] <= 0.10
            t.cases.append(("%d client%s" % (c, "s" if c > 1 else ""), loss, ok))
            if worst is None or loss["median"] > worst[1]["median"]:
                worst = (c, loss)
        if worst:
            t.passed = all(ok for _, _, ok in t.cases)
            t.worst = worst[0]
            t.measured = "worst %.1f%% (%d client%s; runs %.0f–%.0f%%)" % (
                100 * worst[1]["median"], worst[0], "s" if worst[0] > 1 else "",
                100 * worst[1]["min"], 100 * worst[1]["max"])
    ts.append(t)

    sb = results.get("standby")
    t = Target("standby_floor", "L1 hit throughput on a hot standby vs the floor on that standby",
               "≥ 0.8×")
    if _ok(sb) and (sb.get("hits") or {}).get("runs"):
        ratio_target(t, sb["hits"], cfg.hot_clients,
                     [("search on the standby", "standby/l1", "standby/floor")], 0.8)
    ts.append(t)

    t = Target("wal_record_cost", "write throughput lost to the WAL invalidation record "
               "(synchronous_commit = off)", "≤ 3%")
    if _ok(sb) and (sb.get("writes") or {}).get("runs"):
        worst = None
        for c in cfg.write_clients:
            loss = wal_record_loss(sb["writes"], c, "off")
            if loss is None:
                continue
            ok = loss["median"] <= 0.03
            t.cases.append(("%d client%s" % (c, "s" if c > 1 else ""), loss, ok))
            if worst is None or loss["median"] > worst[1]["median"]:
                worst = (c, loss)
        if worst:
            t.passed = all(ok for _, _, ok in t.cases)
            t.worst = worst[0]
            t.measured = "worst %.1f%% (%d client%s; runs %.1f–%.1f%%)" % (
                100 * worst[1]["median"], worst[0], "s" if worst[0] > 1 else "",
                100 * worst[1]["min"], 100 * worst[1]["max"])
    ts.append(t)

    t = Target("outage_errors", "errors seen by clients during a Redis outage", "= 0")
    ou = results.get("outage")
    if _ok(ou):
        total = 0
        for server, runs in ou["runs"].items():
            e = sum(r["errors"] for r in runs)
            total += e
            t.cases.append(("server %s, all phases, all repetitions" % server, e, e == 0))
        t.passed = total == 0
        t.measured = "%d" % total
    ts.append(t)

    t = Target("failover_errors", "errors seen by clients during a Redis failover (Sentinel)", "= 0")
    fo = results.get("failover")
    if _ok(fo):
        total = 0
        for server, runs in fo["runs"].items():
            e = sum(r["errors"] for r in runs)
            total += e
            t.cases.append(("server %s, all phases, all repetitions" % server, e, e == 0))
        t.passed = total == 0
        t.measured = "%d" % total
    ts.append(t)
    return ts
