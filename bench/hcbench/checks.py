"""Did every workload produce numbers?  (What `make bench-smoke` asserts; no timings.)"""


def _runs_have(runs, field, reps, where, problems):
    for key, lst in runs.items():
        got = [r for r in lst if r.get(field) is not None]
        if len(got) < reps:
            problems.append("%s %s: %d of %d runs have %s" % (where, key, len(got), reps, field))


def missing_numbers(cfg, results):
    problems = []
    for w in cfg.workloads:
        r = results.get(w)
        if r is None:
            problems.append("%s: no result" % w)
            continue
        if "error" in r:
            problems.append("%s: failed: %s" % (w, r["error"].splitlines()[0][:200]))
            continue
        if "skipped" in r:
            if w != "http":
                problems.append("%s: skipped" % w)
            continue
        if w == "hot":
            for c, runs in r["runs"].items():
                _runs_have(runs, "tps", cfg.reps, "hot reads, %s client(s):" % c, problems)
                _runs_have(runs, "p99_us", cfg.reps, "hot reads, %s client(s):" % c, problems)
        elif w == "stampede":
            _runs_have(r["runs"], "executions", cfg.reps, "stampede", problems)
            _runs_have(r["runs"], "p99_us", cfg.reps, "stampede", problems)
        elif w == "writes":
            _runs_have(r["runs"], "tps", cfg.reps, "writes", problems)
            _runs_have(r["runs"], "server_cpu_us", cfg.reps, "writes", problems)
        elif w == "mixed":
            _runs_have(r["runs"], "hit_ratio", cfg.slow_reps, "mixed", problems)
            _runs_have(r["runs"], "tps", cfg.slow_reps, "mixed", problems)
            _runs_have({k: v for k, v in r["runs"].items() if k.endswith("/composed")},
                       "fragment_hit_ratio", cfg.slow_reps, "mixed", problems)
        elif w == "fragments":
            _runs_have(r["runs"], "read_ms", cfg.reps, "fragments", problems)
            ck = r.get("check") or {}
            if (ck.get("tier"), ck.get("fragment_fills")) != ("l1", 1):
                problems.append("fragments: after a title edit the composed read was %s with %s "
                                "cards computed, not an L1 list with 1" % (
                                    ck.get("tier"), ck.get("fragment_fills")))
        elif w == "edge":
            _runs_have(r["runs"], "rps", cfg.slow_reps, "edge", problems)
            for v, runs in r["runs"].items():
                if any(x.get("errors") for x in runs):
                    problems.append("edge %s: wrk saw errors (non-2xx/3xx or socket errors)" % v)
            rounds = (r.get("latency") or {}).get("rounds") or []
            if len(rounds) < cfg.slow_reps or any(x.get("p99_ms") is None for x in rounds):
                problems.append("edge: purge latency has %d of %d rounds" % (len(rounds),
                                                                            cfg.slow_reps))
            stale = sum(x.get("stale_after_5s", 0) for x in rounds)
            if stale:
                problems.append("edge: %d write(s) whose new answer the edge did not serve "
                                "within 5 s" % stale)
        elif w == "scaling":
            _runs_have({k: v for k, v in r["value"].items() if not k.endswith("/fill")},
                       "p50_us", cfg.slow_reps, "scaling (value size)", problems)
            _runs_have({k: v for k, v in r["value"].items() if k.endswith("/fill")},
                       "fill_us", cfg.slow_reps, "scaling (value size)", problems)
            _runs_have({k: v for k, v in r["table"].items() if not k.endswith("/fill")},
                       "p50_us", cfg.slow_reps, "scaling (table size)", problems)
            _runs_have({k: v for k, v in r["table"].items() if k.endswith("/fill")},
                       "fill_us", cfg.slow_reps, "scaling (table size)", problems)
        elif w == "http":
            _runs_have(r["runs"], "rps", cfg.reps, "http", problems)
        elif w == "standby":
            for c, runs in r["hits"]["runs"].items():
                _runs_have(runs, "tps", cfg.reps, "standby hits, %s client(s):" % c, problems)
                _runs_have(runs, "p99_us", cfg.reps, "standby hits, %s client(s):" % c, problems)
            _runs_have(r["writes"]["runs"], "tps", cfg.reps, "standby WAL record cost", problems)
            _runs_have(r["writes"]["runs"], "wal_bytes_per_update", cfg.reps,
                       "standby WAL record cost", problems)
            _runs_have(r["fills"]["runs"], "fills", cfg.reps, "standby fills", problems)
        elif w == "failover":
            for server in r["servers"]:
                runs = r["runs"].get(server, [])
                if len(runs) < cfg.slow_reps:
                    problems.append("failover, server %s: %d of %d runs" % (server, len(runs),
                                                                           cfg.slow_reps))
                for run in runs:
                    if run.get("first_l2_s") is None:
                        problems.append("failover, server %s: no L2 hit or store on the new "
                                        "master %s within the run (%s s after the kill)" % (
                                            server, run.get("new_master"), r["grace_s"] + r["phase_s"]))
                    for ph, p in run["phases"].items():
                        if p.get("reads", 0) == 0 or p.get("read_p50_us") is None:
                            problems.append("failover, server %s, phase %s: no reads" % (server, ph))
        elif w == "outage":
            for server, runs in r["runs"].items():
                if len(runs) < cfg.slow_reps:
                    problems.append("outage, server %s: %d of %d runs" % (server, len(runs),
                                                                         cfg.slow_reps))
                for run in runs:
                    for ph, p in run["phases"].items():
                        if p.get("reads", 0) == 0 or p.get("read_p50_us") is None:
                            problems.append("outage, server %s, phase %s: no reads" % (server, ph))
    return problems
