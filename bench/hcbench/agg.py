"""Medians with their range, and ratios taken within one repetition."""


def summary(values):
    vals = sorted(v for v in values if v is not None)
    if not vals:
        return None
    n = len(vals)
    med = vals[n // 2] if n % 2 else (vals[n // 2 - 1] + vals[n // 2]) / 2.0
    return {"median": med, "min": vals[0], "max": vals[-1], "n": n}


def ratios(num, den):
    """Per-repetition ratios num[i] / den[i] of two equally long lists."""
    out = []
    for a, b in zip(num, den):
        out.append(a / b if a is not None and b not in (None, 0) else None)
    return out


def fmt_num(v, digits=3):
    """A number with about `digits` significant digits, thousands separated."""
    if v is None:
        return "–"
    if v == 0:
        return "0"
    if float(v).is_integer() and abs(v) >= 1:
        return "{:,}".format(int(v))
    a = abs(v)
    if a >= 10 ** digits:
        return "{:,.0f}".format(v)
    decimals = max(0, digits - len(str(int(a))) if a >= 1 else digits)
    if a < 1:
        s = "%.*g" % (digits, v)
        return s
    return "{:,.{d}f}".format(v, d=decimals)


def fmt_sum(s, digits=3, unit=""):
    """median (min–max)."""
    if s is None:
        return "–"
    if s["n"] == 1 or s["min"] == s["max"]:
        return fmt_num(s["median"], digits) + unit
    return "%s%s (%s–%s)" % (fmt_num(s["median"], digits), unit, fmt_num(s["min"], digits),
                             fmt_num(s["max"], digits))


def fmt_ratio(s):
    if s is None:
        return "–"
    if s["n"] == 1 or s["min"] == s["max"]:
        return "%s×" % fmt_num(s["median"])
    return "%s× (%s–%s)" % (fmt_num(s["median"]), fmt_num(s["min"]), fmt_num(s["max"]))
