"""PNG figures with gnuplot: data in results/data/*.dat, scripts *.gp beside them."""

import os
import shutil
import subprocess

from .agg import summary

COMMON = """set terminal pngcairo size %(w)d,%(h)d font "Sans,10" noenhanced
set output '%(png)s'
set grid ytics lc rgb '#dddddd'
set key top right
"""


class Plotter:
    def __init__(self, results_dir):
        self.dir = results_dir
        self.data = os.path.join(results_dir, "data")
        os.makedirs(self.data, exist_ok=True)
        self.gnuplot = shutil.which("gnuplot")
        self.made = []
        self.failed = []

    def dat(self, name, rows):
        path = os.path.join(self.data, name)
        with open(path, "w") as f:
            for r in rows:
                f.write(" ".join(fmt(v) for v in r) + "\n")
        return path

    def plot(self, name, body, w=1100, h=550):
        png = os.path.join(self.dir, name + ".png")
        gp = os.path.join(self.data, name + ".gp")
        with open(gp, "w") as f:
            f.write(COMMON % {"w": w, "h": h, "png": png})
            f.write("cd '%s'\n" % self.data)
            f.write(body)
        if not self.gnuplot:
            self.failed.append((name, "gnuplot is not installed"))
            return None
        r = subprocess.run([self.gnuplot, gp], capture_output=True, text=True)
        if r.returncode != 0 or not os.path.exists(png):
            self.failed.append((name, r.stderr.strip()[-300:]))
            return None
        self.made.append(name + ".png")
        return name + ".png"


def fmt(v):
    if v is None:
        return "NaN"
    if isinstance(v, str):
        return '"%s"' % v.replace('"', "'")
    if isinstance(v, float):
        return "%.6g" % v
    return str(v)


def med(runs, field):
    s = summary([r.get(field) for r in runs])
    return (s["median"], s["min"], s["max"]) if s else (None, None, None)


def hot_plots(p, cfg, hot):
    out = []
    rows, lat = [], []
    for v in hot["variants"]:
        row = [v["key"]]
        for c in cfg.hot_clients:
            row += list(med(hot["runs"][str(c)][v["key"]], "tps"))
        rows.append(row)
        c1 = hot["runs"][str(cfg.hot_clients[0])][v["key"]]
        lat.append([v["key"]] + list(med(c1, "p50_us")) + list(med(c1, "p99_us")))
    p.dat("hot_throughput.dat", rows)
    p.dat("hot_latency.dat", lat)
    series = ", ".join("'hot_throughput.dat' using %d:%d:%d%s title '%d client%s'" % (
        2 + 3 * i, 3 + 3 * i, 4 + 3 * i, ":xtic(1)" if i == 0 else "", c, "s" if c > 1 else "")
        for i, c in enumerate(cfg.hot_clients))
    out.append(p.plot("hot_throughput", """
set title 'Hot reads: throughput (median of runs, bars: min-max)'
set style data histogram
set style histogram errorbars gap 1 lw 1
set style fill solid 0.85 border -1
set logscale y
set ylabel 'transactions/s'
set xtics rotate by -40 left
set bmargin 9
plot %s
""" % series, w=1300, h=600))
    out.append(p.plot("hot_latency", """
set title 'Hot reads: latency at %d client (median of runs, bars: min-max)'
set style data histogram
set style histogram errorbars gap 1 lw 1
set style fill solid 0.85 border -1
set logscale y
set ylabel 'microseconds'
set xtics rotate by -40 left
set bmargin 9
plot 'hot_latency.dat' using 2:3:4:xtic(1) title 'p50', '' using 5:6:7 title 'p99'
""" % cfg.hot_clients[0], w=1300, h=600))
    return out


def stampede_plot(p, cfg, st):
    rows = []
    for n in cfg.stampede_clients:
        on, off = st["runs"]["%d/on" % n], st["runs"]["%d/off" % n]
        rows.append([n] + list(med(on, "executions")) + list(med(off, "executions"))
                    + [x / 1000 if x is not None else None for x in med(on, "p99_us")]
                    + [x / 1000 if x is not None else None for x in med(off, "p99_us")])
    p.dat("stampede.dat", rows)
    return p.plot("stampede", """
set multiplot layout 1,2 title 'Stampede on a freshly invalidated hot key (median of runs, bars: min-max)'
set xlabel 'clients'
set xtics (%s)
set logscale x 2
set xrange [%g:%g]
set yrange [0:*]
set offsets 0, 0, graph 0.08, 0
set key top left
set ylabel 'database executions per stampede'
plot 'stampede.dat' using 1:2:3:4 with yerrorlines lw 2 title 'single-flight on', \
     '' using 1:5:6:7 with yerrorlines lw 2 title 'single-flight off'
set ylabel 'p99 latency (ms)'
plot 'stampede.dat' using 1:8:9:10 with yerrorlines lw 2 title 'single-flight on', \
     '' using 1:11:12:13 with yerrorlines lw 2 title 'single-flight off'
unset multiplot
""" % (", ".join(str(n) for n in cfg.stampede_clients), min(cfg.stampede_clients) / 1.4,
       max(cfg.stampede_clients) * 1.4), w=1200, h=500)


def writes_plot(p, cfg, wr):
    rows = []
    modes = list(wr["modes"].keys())
    for sync in wr["sync_modes"]:
        for c in cfg.write_clients:
            row = ["sync %s, %d client%s" % (sync, c, "s" if c > 1 else "")]
            for m in modes:
                row += list(med(wr["runs"]["%d/%s/%s" % (c, sync, m)], "tps"))
            rows.append(row)
    p.dat("writes.dat", rows)
    series = ", ".join("'writes.dat' using %d:%d:%d%s title '%s'" % (
        2 + 3 * i, 3 + 3 * i, 4 + 3 * i, ":xtic(1)" if i == 0 else "", wr["modes"][m])
        for i, m in enumerate(modes))
    return p.plot("writes", """
set title 'Single-row edits (edit mix): throughput (median of runs, bars: min-max)'
set style data histogram
set style histogram errorbars gap 2 lw 1
set style fill solid 0.85 border -1
set ylabel 'updates/s'
set yrange [0:*]
set key outside bottom center horizontal
plot %s
""" % series, w=1100, h=500)


def mixed_plot(p, cfg, mx):
    modes = list(mx["modes"].keys())
    rows = []
    for mix in mx["mixes"]:
        row = ["%d/%d" % (mix, 100 - mix)]
        for m in modes:
            hr = med(mx["runs"]["%d/%s" % (mix, m)], "hit_ratio")
            row += [x * 100 if x is not None else None for x in hr]
        for m in modes:
            row += list(med(mx["runs"]["%d/%s" % (mix, m)], "tps"))
        rows.append(row)
    p.dat("mixed.dat", rows)
    k = len(modes)
    hits = ", ".join("'mixed.dat' using %d:%d:%d%s title '%s'" % (
        2 + 3 * i, 3 + 3 * i, 4 + 3 * i, ":xtic(1)" if i == 0 else "", mx["modes"][m])
        for i, m in enumerate(modes))
    tps = ", ".join("'mixed.dat' using %d:%d:%d%s title '%s'" % (
        2 + 3 * (k + i), 3 + 3 * (k + i), 4 + 3 * (k + i), ":xtic(1)" if i == 0 else "",
        mx["modes"][m]) for i, m in enumerate(modes))
    return p.plot("mixed", """
set multiplot layout 1,2 title 'Mixed load, Zipf over cities and pages (median of runs, bars: min-max)'
set style data histogram
set style histogram errorbars gap 2 lw 1
set style fill solid 0.85 border -1
set xlabel 'read/write mix'
set key outside bottom center vertical
set ylabel 'clean reads: nothing computed (%%)'
set yrange [0:100]
plot %s
set ylabel 'transactions/s'
set yrange [0:*]
plot %s
unset multiplot
""" % (hits, tps), w=1300, h=560)


def fragments_plot(p, cfg, fr):
    short = {"fill": "composed: 1 of 20 cards computed", "whole-miss": "whole page, per city: miss",
             "whole-uncached": "whole page, uncached"}
    rows = []
    for m, label in fr["modes"].items():
        rows.append([short.get(m, label)] + [x * 1000 if x is not None else None
                                             for x in med(fr["runs"][m], "read_ms")])
    p.dat("fragments.dat", rows)
    return p.plot("fragments", """
set title 'A search page after a title edit of one of its listings: the read (mean, median of runs, bars: min-max)'
set style data histogram
set style histogram errorbars gap 2 lw 1
set style fill solid 0.85 border -1
set ylabel 'microseconds'
set yrange [0:*]
set xtics noenhanced
plot 'fragments.dat' using 2:3:4:xtic(1) notitle
""", w=1000, h=480)


def edge_plot(p, cfg, ed):
    rows = []
    for v, label in ed["variants"].items():
        rows.append([label] + list(med(ed["runs"][v], "rps")))
    p.dat("edge.dat", rows)
    return p.plot("edge", """
set title 'The same search URL, wrk -t2 -c%d on the same 2 cores: requests/s (median, bars: min-max)'
set style data histogram
set style histogram errorbars gap 2 lw 1
set style fill solid 0.85 border -1
set logscale y
set ylabel 'requests/s'
set xtics rotate by -20 left
set bmargin 8
set rmargin 12
plot 'edge.dat' using 2:3:4:xtic(1) notitle
""" % ed["connections"], w=1200, h=560)


def purge_plot(p, cfg, lat):
    vals = sorted(x for r in lat["rounds"] for x in r["all_ms"])
    if not vals:
        return None
    n = len(vals)
    p.dat("purge_latency.dat", [(v, (i + 1) / float(n)) for i, v in enumerate(vals)])
    return p.plot("purge_latency", """
set title 'Commit -> the edge serves the new answer: distribution over %d writes'
set xlabel 'milliseconds'
set ylabel 'share of writes'
set logscale x
set xrange [%g:%g]
set yrange [0:1.02]
set key bottom right
set xtics add ("0.5" 0.5, "1" 1, "2" 2, "5" 5, "20" 20, "50" 50, "100" 100)
set arrow from 50, graph 0 to 50, graph 1 nohead lc rgb '#aa0000' dt 2
set label 'goal for p99: 50 ms' at 50, graph 0.5 right offset -0.5,0 font ',9'
plot 'purge_latency.dat' using 1:2 with steps lw 2 title 'commit to the new answer'
""" % (n, vals[0] / 1.5, max(vals[-1] * 1.5, 80)), w=900, h=480)


def outage_plot(p, cfg, ou):
    names = [n for n in ("A", "B") if n in ou.get("timeline", {})]
    if not names:
        return None
    body = "set multiplot layout %d,1 title 'Redis outage: read latency over time (first repetition)'\n" % len(names)
    for n in names:
        tl = ou["timeline"][n]
        p.dat("outage_%s.dat" % n, [(t, l / 1000.0) for t, l in tl["points"]])
        body += "unset arrow\nunset label\n"
        for ph, t in tl["marks"]:
            body += "set arrow from %.3f, graph 0 to %.3f, graph 1 nohead lc rgb '#aa0000' dt 2\n" % (t, t)
            body += "set label '%s' at %.3f, graph 0.93 offset 0.3,0 font ',9'\n" % (ph, t)
        end = max(t for _, t in tl["marks"])
        body += "set xrange [0:%.3f]\n" % (end + 0.6)
        body += """set logscale y
set ylabel 'read latency (ms)'
set xlabel 'seconds'
set title 'server %s (%s)'
plot 'outage_%s.dat' using 1:2 with points pt 7 ps 0.25 notitle
""" % (n, "L1 + L2" if n == "A" else "L2 only", n)
    body += "unset multiplot\n"
    return p.plot("outage", body, w=1200, h=380 * len(names))


def failover_plot(p, cfg, fo):
    names = [n for n in ("A", "B") if n in fo.get("timeline", {})]
    if not names:
        return None
    body = ("set multiplot layout %d,1 title 'Redis failover: read latency over time "
            "(first repetition)'\n" % len(names))
    for n in names:
        tl = fo["timeline"][n]
        p.dat("failover_%s.dat" % n, [(t, l / 1000.0) for t, l in tl["points"]])
        body += "unset arrow\nunset label\n"
        for i, (ph, t) in enumerate(tl["marks"]):
            label = {"during": "master killed", "after": "first L2 hit or store on the new master",
                     "sentinels": "sentinels name it"}.get(ph, ph)
            body += "set arrow from %.3f, graph 0 to %.3f, graph 1 nohead lc rgb '#aa0000' dt 2\n" % (t, t)
            body += "set label '%s' at %.3f, graph %.2f offset 0.3,0 font ',9'\n" % (
                label, t, 0.93 - 0.07 * (i % 3))
        end = max(t for _, t in tl["marks"])
        body += "set xrange [0:%.3f]\n" % (end + 0.6)
        body += """set logscale y
set ylabel 'read latency (ms)'
set xlabel 'seconds'
set title 'server %s (%s)'
plot 'failover_%s.dat' using 1:2 with points pt 7 ps 0.25 notitle
""" % (n, "L1 + L2" if n == "A" else "L2 only", n)
    body += "unset multiplot\n"
    return p.plot("failover", body, w=1200, h=380 * len(names))


def scaling_plots(p, cfg, sc):
    out = []
    rows = []
    for i, size in sc["blobs"]:
        row = [size / 1024.0]
        for v in ("floor", "hit", "l2", "uncached"):
            row += [x for x in med(sc["value"]["%d/%s" % (size, v)],
                                   "mean_us" if v == "uncached" else "p50_us")]
        row += [x for x in med(sc["value"]["%d/fill" % size], "fill_us")]
        rows.append(row)
    p.dat("scaling_value.dat", rows)
    out.append(p.plot("scaling_value", """
set title 'Latency vs answer size, 1 client (median of runs, bars: min-max)'
set logscale xy
set xlabel 'answer size (KiB)'
set ylabel 'microseconds (hits, floor: p50; uncached, fill: mean)'
set xrange [%g:%g]
set key top left
plot 'scaling_value.dat' using 1:2:3:4 with yerrorlines lw 2 title 'floor (constant of that size)', \
     '' using 1:5:6:7 with yerrorlines lw 2 title 'hit on A (L1; L2 above l1_max_value_bytes)', \
     '' using 1:8:9:10 with yerrorlines lw 2 title 'hit on B (L2 only)', \
     '' using 1:11:12:13 with yerrorlines lw 2 title 'uncached', \
     '' using 1:14:15:16 with yerrorlines lw 2 title 'fill (miss: compute and store)'
""" % (min(r[0] for r in rows) / 1.5, max(r[0] for r in rows) * 1.5), w=1000, h=550))
    rows = []
    for n in sc["table_sizes"]:
        row = [n]
        for v in ("hit", "uncached"):
            row += list(med(sc["table"]["%d/%s" % (n, v)],
                            "mean_us" if v == "uncached" else "p50_us"))
        row += list(med(sc["table"]["%d/fill" % n], "fill_us"))
        rows.append(row)
    p.dat("scaling_table.dat", rows)
    out.append(p.plot("scaling_table", """
set title 'Hot search latency vs table size, 1 client (median of runs, bars: min-max)'
set logscale xy
set xlabel 'listings'
set ylabel 'microseconds (hit: p50; uncached, fill: mean)'
set xrange [%g:%g]
set key top left
plot 'scaling_table.dat' using 1:2:3:4 with yerrorlines lw 2 title 'L1 hit', \
     '' using 1:5:6:7 with yerrorlines lw 2 title 'uncached', \
     '' using 1:8:9:10 with yerrorlines lw 2 title 'fill (miss: compute and store)'
""" % (min(r[0] for r in rows) / 1.5, max(r[0] for r in rows) * 1.5), w=1000, h=550))
    return out


def http_plot(p, cfg, ht):
    rows = []
    for v in ("hit", "304", "miss"):
        rows.append([v] + list(med(ht["runs"][v], "rps")))
    p.dat("http.dat", rows)
    return p.plot("http", """
set title 'HTTP (hc_http, wrk -t2 -c2): requests/s (median of runs, bars: min-max)'
set style data histogram
set style histogram errorbars gap 2 lw 1
set style fill solid 0.85 border -1
set logscale y
set ylabel 'requests/s'
plot 'http.dat' using 2:3:4:xtic(1) notitle
""", w=800, h=450)


def standby_plot(p, cfg, h):
    rows = []
    for v in h["variants"]:
        row = [v["key"]]
        for c in cfg.hot_clients:
            row += list(med(h["runs"][str(c)][v["key"]], "tps"))
        rows.append(row)
    p.dat("standby_hits.dat", rows)
    series = ", ".join("'standby_hits.dat' using %d:%d:%d%s title '%d client%s'" % (
        2 + 3 * i, 3 + 3 * i, 4 + 3 * i, ":xtic(1)" if i == 0 else "", c, "s" if c > 1 else "")
        for i, c in enumerate(cfg.hot_clients))
    return p.plot("standby_hits", """
set title 'Hot standby: the search (L1 hit) and its floor on the standby and on the primary (median, bars: min-max)'
set style data histogram
set style histogram errorbars gap 1 lw 1
set style fill solid 0.85 border -1
set ylabel 'transactions/s'
set yrange [0:*]
set key outside bottom center horizontal
plot %s
""" % series, w=1000, h=500)
