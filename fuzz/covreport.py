#!/usr/bin/env python3
"""Summarize `llvm-cov export` JSON (stdin): line and branch coverage of the
extension's functions a harness targets.

    llvm-cov export -instr-profile=P BIN | python3 fuzz/covreport.py NAME...

Each NAME is a function name or a prefix ending in '*'.
"""
import json
import sys


def wanted(name, patterns):
    for p in patterns:
        if p.endswith("*") and name.startswith(p[:-1]):
            return True
        if name == p:
            return True
    return False


def main():
    patterns = sys.argv[1:]
    data = json.load(sys.stdin)["data"][0]
    rows = []
    for f in data["functions"]:
        name = f["name"].split(":")[-1]
        if ("/extension/" not in f["filenames"][0] or f["filenames"][0].endswith(".h")
                or not wanted(name, patterns)):
            continue
        # regions: [line_start, col_start, line_end, col_end, count, file, expanded_file, kind]
        # a line's count is that of the innermost code region over it, so
        # outer regions are applied first and inner ones overwrite them
        lines = {}
        code = [r for r in f["regions"] if r[5] == 0 and r[7] == 0]
        code.sort(key=lambda r: ((r[2] - r[0]) * 10000 + (r[3] - r[1])), reverse=True)
        for r in code:
            for ln in range(r[0], r[2] + 1):
                lines[ln] = r[4]
        covered = sum(1 for c in lines.values() if c > 0)
        # branches: [ls, cs, le, ce, true_count, false_count, file, expanded, kind]
        br = f.get("branches", [])
        nb = 2 * len(br)
        cb = sum((b[4] > 0) + (b[5] > 0) for b in br)
        rows.append((f["filenames"][0].split("/extension/")[1], name, covered, len(lines), cb, nb, f["count"]))
    for file, name, c, n, cb, nb, calls in sorted(rows):
        pct = 100.0 * c / n if n else 100.0
        bpct = "%5.1f%%" % (100.0 * cb / nb) if nb else "    -"
        print("  %-14s %-26s lines %3d/%-3d %5.1f%%   branches %3d/%-3d %s   calls %d"
              % (file, name, c, n, pct, cb, nb, bpct, calls))


if __name__ == "__main__":
    main()
