#!/usr/bin/env python3
# promcheck.py - a strict checker of the Prometheus text exposition format 0.0.4, for the
# metrics integration test. Reads the text on stdin; exits 1 with the first problem, or
# prints the samples as JSON ({"name{k=v,...}": value}) for the test to compare.
#
# Stricter than Prometheus itself: every family has HELP then TYPE before its samples, a
# family's samples are contiguous and never repeated, counters end in _total, histograms
# have cumulative _bucket series ending in le="+Inf" equal to _count, and a _sum; label
# values use only the three escapes; no blank lines; the text ends with a newline.
import json
import math
import re
import sys

NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


def die(lineno, msg, line=""):
    print(f"promcheck: line {lineno}: {msg}: {line!r}", file=sys.stderr)
    sys.exit(1)


def parse_labels(s, lineno, line):
    """s starts after '{'; returns (dict, rest after '}')."""
    labels, i = {}, 0
    while True:
        if s[i:i + 1] == "}":
            return labels, s[i + 1:]
        m = re.match(r"[a-zA-Z_][a-zA-Z0-9_]*", s[i:])
        if not m or s[i + m.end():i + m.end() + 2] != '="':
            die(lineno, "bad label", line)
        key = m.group(0)
        i += m.end() + 2
        val = []
        while True:
            if i >= len(s):
                die(lineno, "unterminated label value", line)
            c = s[i]
            if c == "\\":
                nxt = s[i + 1:i + 2]
                if nxt not in ('\\', '"', "n"):
                    die(lineno, "bad escape in a label value", line)
                val.append("\n" if nxt == "n" else nxt)
                i += 2
            elif c == '"':
                i += 1
                break
            elif c == "\n":
                die(lineno, "raw newline in a label value", line)
            else:
                val.append(c)
                i += 1
        if key in labels:
            die(lineno, "repeated label " + key, line)
        labels[key] = "".join(val)
        if s[i:i + 1] == ",":
            i += 1
        elif s[i:i + 1] != "}":
            die(lineno, "expected , or } after a label", line)


def value(s, lineno, line):
    if s in ("+Inf", "-Inf", "NaN"):
        return float(s.replace("Inf", "inf").replace("NaN", "nan"))
    if not re.fullmatch(r"-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?", s):
        die(lineno, "bad value", line)
    return float(s)


def family_of(name, types):
    for suffix in ("_bucket", "_sum", "_count"):
        base = name[: -len(suffix)] if name.endswith(suffix) else None
        if base and types.get(base) in ("histogram", "summary"):
            return base
    return name


def main():
    text = sys.stdin.read()
    if not text.endswith("\n"):
        die(0, "the text does not end with a newline")
    types, helps, samples = {}, {}, {}
    current = None
    hist = {}  # (family, labels without le) -> [(le, count)], sum, count
    for lineno, line in enumerate(text[:-1].split("\n"), 1):
        if line == "":
            die(lineno, "blank line")
        if line.startswith("#"):
            m = re.fullmatch(r"# (HELP|TYPE) (\S+) (.*)", line)
            if not m:
                die(lineno, "a comment that is not HELP or TYPE", line)
            kind, name, rest = m.groups()
            if not NAME.match(name):
                die(lineno, "bad metric name", line)
            if kind == "HELP":  # a family starts with its HELP, once
                if name in helps:
                    die(lineno, "HELP repeated", line)
                if not re.fullmatch(r"(?:[^\\]|\\[\\n])*", rest):
                    die(lineno, "bad escape in HELP", line)
                helps[name] = rest
                current = name
            else:
                if name != current or name in types:
                    die(lineno, "TYPE not right after its HELP, or repeated", line)
                if rest not in TYPES:
                    die(lineno, "unknown type", line)
                types[name] = rest
            continue
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)", line)
        if not m:
            die(lineno, "bad sample name", line)
        name, rest = m.group(1), line[m.end():]
        labels = {}
        if rest.startswith("{"):
            labels, rest = parse_labels(rest[1:], lineno, line)
        if not rest.startswith(" "):
            die(lineno, "no blank before the value", line)
        parts = rest[1:].split(" ")
        if len(parts) not in (1, 2):
            die(lineno, "trailing junk", line)
        v = value(parts[0], lineno, line)
        fam = family_of(name, types)
        if fam != current or fam not in types:
            die(lineno, "sample outside its family's block (or without TYPE)", line)
        t = types[fam]
        if t == "counter" and not name.endswith("_total"):
            die(lineno, "a counter not named *_total", line)
        if t in ("counter",) and (v < 0 or math.isnan(v)):
            die(lineno, "negative counter", line)
        key = name + "{" + ",".join(f'{k}="{labels[k]}"' for k in sorted(labels)) + "}"
        if key in samples:
            die(lineno, "repeated series", line)
        samples[key] = v
        if t == "histogram":
            base = {k: x for k, x in labels.items() if k != "le"}
            hk = (fam, tuple(sorted(base.items())))
            h = hist.setdefault(hk, {"buckets": [], "sum": None, "count": None})
            if name.endswith("_bucket"):
                if "le" not in labels:
                    die(lineno, "bucket without le", line)
                le = value(labels["le"], lineno, line)
                if h["buckets"] and (le <= h["buckets"][-1][0] or v < h["buckets"][-1][1]):
                    die(lineno, "buckets not increasing or not cumulative", line)
                h["buckets"].append((le, v))
            elif name.endswith("_sum"):
                h["sum"] = v
            elif name.endswith("_count"):
                h["count"] = v
            else:
                die(lineno, "histogram sample without _bucket/_sum/_count", line)
    for (fam, base), h in hist.items():
        if not h["buckets"] or h["buckets"][-1][0] != math.inf:
            die(0, f"{fam}{dict(base)}: no le=\"+Inf\" bucket")
        if h["count"] is None or h["sum"] is None or h["count"] != h["buckets"][-1][1]:
            die(0, f"{fam}{dict(base)}: _count missing or not the +Inf bucket")
    for name in helps:
        if name not in types:
            die(0, f"{name}: HELP without TYPE")
    json.dump(samples, sys.stdout)


main()
