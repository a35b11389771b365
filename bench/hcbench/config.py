"""Settings of a benchmark run, from the command line and BENCH_* variables."""

import argparse
import os


def env_int(name, default):
    v = os.environ.get(name)
    return int(v) if v not in (None, "") else default


# standby last: it switches WAL invalidation on in A for its own duration and
# runs a third server, which would otherwise weigh on the other workloads;
# failover points A and B at sentinels of its own for its duration
ALL_WORKLOADS = ["hot", "stampede", "writes", "mixed", "fragments", "scaling", "http", "edge",
                 "outage", "failover", "standby"]


class Config:
    def __init__(self, argv=None):
        p = argparse.ArgumentParser(prog="bench/run", description=__doc__)
        p.add_argument("--smoke", action="store_true",
                       help="tiny data, short runs, one repetition (what `make bench-smoke` runs)")
        p.add_argument("--rows", type=int, help="listings to generate (BENCH_ROWS, default 1000000)")
        p.add_argument("--reps", type=int, help="repetitions of each figure (BENCH_REPS, default 5; "
                       "scaling, outage and failover: at most 3)")
        p.add_argument("--duration", type=int,
                       help="seconds per pgbench run (BENCH_DURATION, default 2)")
        p.add_argument("--results", help="directory for REPORT.md and plots (BENCH_RESULTS)")
        p.add_argument("--only", help="comma-separated workloads to run (BENCH_ONLY): "
                       + ",".join(ALL_WORKLOADS))
        p.add_argument("--keep", action="store_true",
                       help="keep the scratch directory (servers' data and logs) (BENCH_KEEP=1)")
        p.add_argument("--report-only", action="store_true",
                       help="rewrite REPORT.md and the plots from results.json in the results "
                       "directory, without running anything")
        a = p.parse_args(argv)
        self.report_only = a.report_only

        self.smoke = a.smoke or os.environ.get("BENCH_SMOKE") == "1"
        here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        self.root = os.path.dirname(here)
        default_results = os.path.join(here, "results", "smoke" if self.smoke else "")
        self.results = os.path.abspath(a.results or os.environ.get("BENCH_RESULTS")
                                       or default_results)
        self.keep = a.keep or os.environ.get("BENCH_KEEP") == "1"
        only = a.only or os.environ.get("BENCH_ONLY") or ""
        self.workloads = [w for w in ALL_WORKLOADS if not only or w in only.split(",")]
        unknown = [w for w in only.split(",") if w and w not in ALL_WORKLOADS]
        if unknown:
            p.error("unknown workloads: %s" % ", ".join(unknown))

        if self.smoke:
            # The same code on tiny data: a fixed number of transactions per
            # client instead of a duration, one repetition.
            self.rows = a.rows or env_int("BENCH_ROWS", 2000)
            self.reps = a.reps or env_int("BENCH_REPS", 1)
            self.length = {"t": env_int("BENCH_TXNS", 200)}
            self.scale_length = {"t": 50}
            self.mixed_warmup = {"t": 50}
            self.mixed_length = {"t": 200}
            self.outage_warmup = {"t": 50}
            self.stampede_rounds = 1
            self.outage_phase_s = 1.0
            # failover: B only, one sequence (see failover.py)
            self.failover_phase_s = 1.0
            self.failover_grace_s = 6.0
            self.http_duration = 1
            self.profile_s = 1
            self.max_profiles = 1
            self.shared_buffers = "128MB"
            self.value_sizes_kib = [1, 16, 1024]
        else:
            self.rows = a.rows or env_int("BENCH_ROWS", 1000000)
            # many short alternating runs: on a shared machine, bursts of
            # other load then fall on every variant alike
            self.reps = a.reps or env_int("BENCH_REPS", 5)
            d = a.duration or env_int("BENCH_DURATION", 2)
            self.length = {"T": d}
            self.scale_length = {"T": max(1, d // 2)}
            # mixed: a search miss costs 0.1-0.2 s on 1M listings, so the
            # cache needs seconds to fill before a steady state is measured
            self.mixed_warmup = {"T": 6}
            self.mixed_length = {"T": max(4, 4 * d)}
            self.outage_warmup = {"T": 2}
            self.stampede_rounds = env_int("BENCH_STAMPEDE_ROUNDS", 3)
            self.outage_phase_s = float(env_int("BENCH_OUTAGE_PHASE", 4))
            self.failover_phase_s = float(env_int("BENCH_FAILOVER_PHASE", 4))
            self.failover_grace_s = float(env_int("BENCH_FAILOVER_GRACE", 8))
            self.http_duration = d
            self.profile_s = 3
            self.max_profiles = 12
            self.shared_buffers = "1GB"
            self.value_sizes_kib = [1, 4, 16, 64, 256, 1024]
        # the long workloads (scaling, outage, failover) repeat at most 3 times
        self.slow_reps = min(self.reps, 3)
        # the sentinels of the failover workload (as test/t/701_sentinel_failover.pl)
        self.failover_down_after_ms = env_int("BENCH_FAILOVER_DOWN_AFTER_MS", 1000)
        self.failover_timeout_ms = 3000
        self.hot_clients = [1, 2]
        self.stampede_clients = [8, 32, 64]
        self.write_clients = [1, 2]
        self.mixed_clients = env_int("BENCH_MIXED_CLIENTS", 4)
        # standby workload: clients per server reading a freshly invalidated
        # answer at once (primary and standby together)
        self.fleet_clients = env_int("BENCH_FLEET_CLIENTS", 8)
        self.table_sizes = sorted(set([n for n in (10000, 100000, 1000000) if n < self.rows]
                                      + [self.rows]))
        self.http_bin = os.environ.get("BENCH_HTTP_BIN")
        # edge workload: wrk's connections (2 threads), and writes per round
        # of the purge latency
        self.edge_connections = env_int("BENCH_EDGE_CONNECTIONS", 8)
        self.purge_writes = env_int("BENCH_PURGE_WRITES", 10 if self.smoke else 100)

    def length_text(self, length=None):
        length = length or self.length
        if "T" in length:
            return "%d s" % length["T"]
        return "%d transactions per client" % length["t"]
