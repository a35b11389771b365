"""pgbench runs and what they measured.

Every run logs each transaction (--log); latencies and their percentiles
come from those logs, throughput from pgbench's own "tps" line (excluding
connection time), per-statement averages from -r.
"""

import glob
import os
import re
import subprocess
import threading
import time

from .procs import PGBIN, BenchError

PGBENCH = os.path.join(PGBIN, "pgbench")


def percentile(sorted_vals, p):
    """Nearest-rank percentile of an ascending list (p in 0..100)."""
    if not sorted_vals:
        return None
    k = max(0, min(len(sorted_vals) - 1, int(-(-p * len(sorted_vals) // 100)) - 1))
    return sorted_vals[k]


class Result(dict):
    """tps, n, p50_us, p99_us, max_us, mean_us, errors, stmt_ms, stderr, ..."""


class Runner:
    def __init__(self, workdir, length):
        """length: {"T": seconds} or {"t": transactions per client}."""
        self.workdir = workdir
        self.length = length
        self.count = 0
        self.count_lock = threading.Lock()   # runs may be started from two threads
        self.current = []   # running Popen objects, for cleanup

    def script(self, name, text):
        path = os.path.join(self.workdir, name + ".sql")
        with open(path, "w") as f:
            f.write(text.strip() + "\n")
        return path

    def _args(self, scripts, clients, threads, prepared, length, extra):
        args = [PGBENCH, "-n", "-c", str(clients), "-j", str(threads)]
        if prepared:
            args += ["-M", "prepared"]
        if "T" in length:
            args += ["-T", str(length["T"])]
        else:
            args += ["-t", str(length["t"])]
        for s in scripts:
            args += ["-f", s]
        return args + list(extra)

    def run(self, target, scripts, clients=1, prepared=True, length=None, db="housing",
            pgoptions=None, per_statement=False, keep_raw=False, extra=(), on_stderr=None,
            check=True, timeout=None):
        """Run pgbench against target (a Postgres or Pgpool); returns a Result.

        scripts: paths, optionally "path@weight".  keep_raw: also return
        raw = [(end_epoch_us, latency_us, script_no)] for timelines.
        on_stderr(line): called with each stderr line as it arrives.
        """
        with self.count_lock:
            self.count += 1
            prefix = os.path.join(self.workdir, "log%05d" % self.count)
        threads = min(clients, 2)
        length = length or self.length
        args = self._args(scripts, clients, threads, prepared, length,
                          list(extra) + ["--log", "--log-prefix", prefix])
        if per_statement:
            args.append("-r")
        env = target.env(db) if hasattr(target, "env") else target.conninfo_env(db)
        if pgoptions:
            env["PGOPTIONS"] = pgoptions
        proc = subprocess.Popen(args, env=env, cwd=self.workdir, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        self.current.append(proc)
        err_lines = []

        def pump():
            for line in proc.stderr:
                err_lines.append((time.time(), line.rstrip("\n")))
                if on_stderr:
                    on_stderr(line.rstrip("\n"))
        t = threading.Thread(target=pump, daemon=True)
        t.start()
        try:
            out = proc.stdout.read()
            proc.wait(timeout)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            self.current.remove(proc)
        t.join(5)
        res = self.parse(out, err_lines, prefix, keep_raw)
        res["rc"] = proc.returncode
        res["cmd"] = " ".join(a if " " not in a else repr(a) for a in args)
        if check and (proc.returncode not in (0, 2) or res["tps"] is None):
            raise BenchError("pgbench failed (exit %d): %s\n%s\n%s" % (
                proc.returncode, res["cmd"], out[-2000:],
                "\n".join(l for _, l in err_lines[-20:])))
        return res

    def parse(self, out, err_lines, prefix, keep_raw):
        res = Result()
        m = re.search(r"^tps = ([0-9.]+) \(without initial connection time\)", out, re.M)
        res["tps"] = float(m.group(1)) if m else None
        m = re.search(r"^number of failed transactions: (\d+)", out, re.M)
        failed = int(m.group(1)) if m else 0
        aborted = sum(1 for _, l in err_lines if re.search(r"client \d+ aborted", l))
        sql_errors = [l for _, l in err_lines if "ERROR:" in l or "error:" in l.lower()]
        res["errors"] = failed + aborted
        res["error_lines"] = sql_errors[:20]
        res["stderr_times"] = [(ts, l) for ts, l in err_lines]
        # -r: per-statement average latencies, in script order
        stmts = []
        for line in out.splitlines():
            m = re.match(r"^\s+([0-9.]+)\s+(\d+)\s+(\S.*)$", line)
            if m:
                stmts.append((float(m.group(1)), m.group(3).strip()))
        res["stmt_ms"] = stmts
        # Latency of a call: from its start to the start of the same client's
        # next call (start = logged end - logged latency).  pgbench's own
        # latency column cannot be used alone: its clock is read lazily, and
        # a reply that is already waiting when it first looks (the client was
        # preempted right after sending, e.g. by the backend it woke on the
        # same core) is timed 0 us.  A client's last call keeps its logged
        # latency.
        per_client = {}
        zeros = 0
        failed = 0
        for path in sorted(glob.glob(prefix + ".*")):
            with open(path) as f:
                for line in f:
                    parts = line.split()
                    if len(parts) < 6:
                        continue
                    if parts[2] in ("failed", "skipped"):
                        failed += 1
                        continue
                    lat = int(parts[2])
                    zeros += lat == 0
                    end_us = int(parts[4]) * 1000000 + int(parts[5])
                    per_client.setdefault((path, parts[0]), []).append(
                        (int(parts[1]), end_us, lat, int(parts[3])))
            os.unlink(path)
        lats = []
        raw = [] if keep_raw else None
        for seq in per_client.values():
            seq.sort()
            for i, (_, end_us, lat, script_no) in enumerate(seq):
                if i + 1 < len(seq):
                    _, nend, nlat, _ = seq[i + 1]
                    cyc = (nend - nlat) - (end_us - lat)
                else:
                    cyc = lat
                if cyc <= 0:
                    continue
                lats.append(cyc)
                if keep_raw:
                    raw.append((end_us, cyc, script_no))
        lats.sort()
        res["n"] = sum(len(v) for v in per_client.values())
        res["timed_zero"] = zeros
        res["p50_us"] = percentile(lats, 50)
        res["p99_us"] = percentile(lats, 99)
        res["max_us"] = lats[-1] if lats else None
        res["mean_us"] = (sum(lats) / len(lats)) if lats else None
        if keep_raw:
            raw.sort()
            res["raw"] = raw
        return res

    def kill_running(self):
        for p in list(self.current):
            if p.poll() is None:
                p.kill()
