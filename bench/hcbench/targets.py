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


def trigger_loss(wr, c, sync):
    """1 - tps(triggers) / tps(no triggers), per repetition: summary."""
    on = series(wr["runs"], "%d/%s/triggers" % (c, sync), "tps")
    off = series(wr["runs"], "%d/%s/no-triggers" % (c, sync), "tps")
    return summary([1 - r if r is not None else None for r in ratios(on, off)])


def edge_ratio(ed, num, den="seed", field="rps"):
    """rps(num) / rps(den), per repetition: summary."""
    return summary(ratios(series(ed["runs"], num, field), series(ed["runs"], den, field)))


class Target:
    # how its values read: ratio (×), loss (% lost), share (%), rps, ms
    kind = "ratio"

    def __init__(self, tid, name, goal, kind=None):
        self.id, self.name, self.goal = tid, name, goal
        if kind:
            self.kind = kind
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

    wr = results.get("writes")
    for tid, sync, what in (("trigger_overhead", "off", "synchronous_commit = off: CPU"),
                            ("trigger_overhead_sync", "on", "synchronous_commit = on")):
        t = Target(tid, "write throughput lost to the invalidation triggers and the publish "
                   "(edit mix, %s)" % what, "≤ 10%", "loss")
        if _ok(wr) and "sync_modes" in wr:
            worst = None
            for c in cfg.write_clients:
                loss = trigger_loss(wr, c, sync)
                if loss is None:
                    continue
                ok = loss["median"] <= 0.10
                t.cases.append(("%d client%s" % (c, "s" if c > 1 else ""), loss, ok))
                if worst is None or loss["median"] > worst[1]["median"]:
                    worst = (c, loss)
            if worst:
                t.passed = all(ok for _, _, ok in t.cases)
                t.worst = (worst[0], sync)
                t.measured = "worst %.1f%% (%d client%s; runs %.0f–%.0f%%)" % (
                    100 * worst[1]["median"], worst[0], "s" if worst[0] > 1 else "",
                    100 * worst[1]["min"], 100 * worst[1]["max"])
        ts.append(t)

    t = Target("mixed_hits", "composed searches under the 95/5 mixed load: reads served without "
               "computing anything (id list from the cache, no fragment computed)", "≥ 95%",
               "share")
    mx = results.get("mixed")
    if _ok(mx) and "95/composed" in mx.get("runs", {}):
        s_ = summary(series(mx["runs"], "95/composed", "hit_ratio"))
        if s_:
            t.cases.append(("95/5, composed (as installed)", s_, s_["median"] >= 0.95))
            t.passed = s_["median"] >= 0.95
            t.worst = "95/composed"
            t.measured = "%.1f%% (runs %.1f–%.1f%%)" % (100 * s_["median"], 100 * s_["min"],
                                                       100 * s_["max"])
    ts.append(t)

    ed = results.get("edge")
    edge_ok = _ok(ed) and (ed.get("runs") or {}).get("edge")
    for tid, name, num, goal in (
            ("edge_vs_seed", "edge hits (Varnish) vs the seed stack's cached endpoint "
             "(Django, cache_page on Redis), requests/s", "edge", 10),
            ("origin_vs_seed", "origin L1 hits (hc_http) vs the seed stack's cached endpoint, "
             "requests/s", "origin", 5)):
        t = Target(tid, name, "≥ %d×" % goal)
        if edge_ok:
            s_ = edge_ratio(ed, num)
            if s_:
                ok = s_["median"] >= goal
                t.cases.append((num, s_, ok))
                t.passed, t.worst = ok, num
                t.measured = "%s× (runs %s–%s×)" % (fmt_num(s_["median"]), fmt_num(s_["min"]),
                                                    fmt_num(s_["max"]))
        ts.append(t)

    t = Target("edge_rps", "edge hits (Varnish), requests/s on 2 cores (wrk on the same cores)",
               "≥ 25,000", "rps")
    if edge_ok:
        s_ = summary(series(ed["runs"], "edge", "rps"))
        if s_:
            ok = s_["median"] >= 25000
            t.cases.append(("edge", s_, ok))
            t.passed, t.worst = ok, "edge"
            t.measured = "%s req/s (runs %s–%s)" % (fmt_num(s_["median"]), fmt_num(s_["min"]),
                                                    fmt_num(s_["max"]))
    ts.append(t)

    t = Target("purge_p99", "commit → the edge serves the new answer, p99 (loopback)", "≤ 50 ms",
               "ms")
    lat = (ed or {}).get("latency") if _ok(ed) else None
    if lat and lat.get("p99_ms"):
        s_ = lat["p99_ms"]
        ok = s_["median"] <= 50
        t.cases.append(("p99 per round (%d writes each)" % lat["rounds"][0]["writes"], s_, ok))
        t.passed, t.worst = ok, "latency"
        t.measured = "%s ms (rounds %s–%s ms)" % (fmt_num(s_["median"]), fmt_num(s_["min"]),
                                                  fmt_num(s_["max"]))
    ts.append(t)

    sb = results.get("standby")
    t = Target("standby_floor", "L1 hit throughput on a hot standby vs the floor on that standby",
               "≥ 0.8×")
    if _ok(sb) and (sb.get("hits") or {}).get("runs"):
        ratio_target(t, sb["hits"], cfg.hot_clients,
                     [("search on the standby", "standby/l1", "standby/floor")], 0.8)
    ts.append(t)

    t = Target("wal_record_cost", "write throughput lost to the WAL invalidation record "
               "(synchronous_commit = off)", "≤ 3%", "loss")
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
