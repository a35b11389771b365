#!/usr/bin/env python3
"""housing_cache benchmark suite: start the servers, run every workload,
write REPORT.md and plots, stop everything (also on failure or interrupt).

Run through bench/run (which builds and installs the extension first);
see bench/README.md.
"""

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from hcbench import (checks, config, diagnose, edge, failover, fragments, hot,  # noqa: E402
                     http_wl, mixed, outage, procs, report, scaling, setup, stampede, standby,
                     targets, writes)
from hcbench.procs import log  # noqa: E402

WORKLOADS = {"hot": hot, "stampede": stampede, "writes": writes, "mixed": mixed,
             "fragments": fragments, "scaling": scaling, "http": http_wl, "edge": edge,
             "outage": outage, "failover": failover, "standby": standby}
OUTPUTS = ("REPORT.md", "results.json")


class Interrupted(Exception):
    pass


def on_signal(signum, frame):
    raise Interrupted("signal %d" % signum)


def machine():
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return "%d cores (%s), %d GiB" % (os.cpu_count() or 0, model,
                                      os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
                                      // (1 << 30))


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def clear_outputs(d):
    for name in os.listdir(d):
        p = os.path.join(d, name)
        if name in OUTPUTS or name.endswith(".png"):
            os.unlink(p)
        elif name in ("data", "logs") and os.path.isdir(p):
            shutil.rmtree(p)


def save_logs(ctx, results_dir):
    d = os.path.join(results_dir, "logs")
    os.makedirs(d, exist_ok=True)
    for src, name in ((ctx.pg_a and ctx.pg_a.logfile, "postgres-A.log"),
                      (ctx.pg_b and ctx.pg_b.logfile, "postgres-B.log"),
                      (ctx.pg_s and ctx.pg_s.logfile, "postgres-standby.log"),
                      (ctx.redis and ctx.redis.logfile, "redis.log"),
                      (ctx.pgpool and ctx.pgpool.logfile, "pgpool.log"),
                      (os.path.join(ctx.scratch, "hc_http.log"), "hc_http.log")) + tuple(
                          # the edge workload's servers
                          (os.path.join(ctx.scratch, n + ".log"), n + ".log")
                          for n in ("hc_http-edge", "hc_http-uncached", "varnish", "purger",
                                    "seed")) + tuple(
                          # the failover workload's Redis servers and sentinels
                          (os.path.join(ctx.scratch, d, "redis.log"), d + ".log")
                          for d in sorted(os.listdir(ctx.scratch)) if d.startswith("failover-")):
        if src and os.path.exists(src):
            with open(src, "rb") as f:
                data = f.read()
            with open(os.path.join(d, name), "wb") as f:
                f.write(data[-2000000:])


def rewrite_report(cfg):
    """REPORT.md and plots again from results.json (the figures of an earlier run)."""
    with open(os.path.join(cfg.results, "results.json")) as f:
        saved = json.load(f)
    for k in ("rows", "reps", "slow_reps", "length", "shared_buffers", "smoke", "profile_s"):
        setattr(cfg, k, saved["config"][k])
    ctx = argparse.Namespace(facts=saved["facts"])
    ts = targets.evaluate(cfg, saved["results"])
    by_id = {t["id"]: t for t in saved["targets"]}
    for t in ts:
        t.why = by_id.get(t.id, {}).get("why", [])
        t.profile = by_id.get(t.id, {}).get("profile")
    path = report.Report(cfg, ctx, saved["results"], ts, saved["meta"]).write()
    log("report: %s" % path)
    return 0


def main():
    cfg = config.Config()
    if cfg.report_only:
        return rewrite_report(cfg)
    os.makedirs(cfg.results, exist_ok=True)
    clear_outputs(cfg.results)
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, on_signal)

    t_start = time.time()
    meta = {"started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "machine": machine(),
            "load_start": loadavg(), "phases": []}
    scratch = tempfile.mkdtemp(prefix="housing_cache-bench.", dir="/tmp")
    os.chmod(scratch, 0o755)
    P = procs.Procs(scratch)
    P.own(scratch)
    ctx = setup.Context(cfg, P)
    results = {}
    ts = []
    fatal = None
    log("benchmark: %s listings, %d repetition(s), %s per run; scratch %s; results %s" % (
        "{:,}".format(cfg.rows), cfg.reps, cfg.length_text(), scratch, cfg.results))
    try:
        t = time.time()
        ctx.start()
        meta["phases"].append(("setup (servers, data)", time.time() - t))
        meta["l1_size"] = ctx.pg_a.psql("SHOW housing_cache.l1_size_mb")
        for w in cfg.workloads:
            t = time.time()
            log("== workload: %s" % w)
            try:
                results[w] = WORKLOADS[w].run(ctx)
            except Interrupted:
                raise
            except Exception as e:
                traceback.print_exc()
                results[w] = {"error": "%s: %s" % (type(e).__name__, e)}
            meta["phases"].append((w, time.time() - t))
        ts = targets.evaluate(cfg, results)
        t = time.time()
        diagnose.diagnose(ctx, results, ts)
        meta["phases"].append(("diagnosis of failed targets", time.time() - t))
    except Interrupted as e:
        fatal = "interrupted (%s)" % e
    except Exception as e:
        traceback.print_exc()
        fatal = "%s: %s" % (type(e).__name__, e)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        log("stopping servers")
        ctx.runner.kill_running()
        P.stop_all()
        try:
            save_logs(ctx, cfg.results)
        except OSError as e:
            log("could not save the servers' logs: %s" % e)
        if cfg.keep:
            log("kept the scratch directory %s" % scratch)
        else:
            shutil.rmtree(scratch, ignore_errors=True)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)

    meta["elapsed_s"] = time.time() - t_start
    meta["load_end"] = loadavg()
    if fatal:
        results["fatal"] = fatal
        if not ts:
            ts = targets.evaluate(cfg, results)
    with open(os.path.join(cfg.results, "results.json"), "w") as f:
        json.dump({"config": {k: v for k, v in vars(cfg).items()}, "meta": meta,
                   "facts": ctx.facts, "results": results,
                   "targets": [{"id": t.id, "name": t.name, "goal": t.goal,
                                "measured": t.measured, "passed": t.passed, "why": t.why,
                                "profile": t.profile}
                               for t in ts]}, f, indent=1, default=str)
    path = report.Report(cfg, ctx, results, ts, meta).write()
    if fatal:
        with open(path, "a") as f:
            f.write("\n## The run did not complete\n\n`%s`\n" % fatal)
    log("report: %s" % path)
    for t in ts:
        log("target %-17s %-6s %s" % (t.id, {True: "PASS", False: "FAIL", None: "-"}[t.passed],
                                      t.measured))

    problems = checks.missing_numbers(cfg, results)
    if fatal:
        problems.insert(0, fatal)
    if problems:
        log("benchmark incomplete:")
        for p in problems:
            log("  " + p)
        return 1
    skipped = [w for w in cfg.workloads if "skipped" in results.get(w, {})]
    log("every workload produced numbers%s (%.0f s)" % (
        "" if not skipped else "; skipped: " + ", ".join(
            "%s (%s)" % (w, results[w]["skipped"]) for w in skipped), meta["elapsed_s"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
