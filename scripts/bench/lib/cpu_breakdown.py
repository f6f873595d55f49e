#!/usr/bin/env python3
"""cpu_breakdown.py RESULTS - where each proxy's CPU per request goes (scripts/bench/proxy
--profile). RESULTS holds one line per profiled round:

    target  round  req/s  proxy_ticks  rest_ticks  hz  seconds  perf.data

Each sample of `perf record -g` on the proxy's threads goes to the first category its
call chain matches, in this order: sending (tcp_sendmsg: the segment out, and over
loopback the peer's whole receive path and its wake-up, run in the sender's softirq),
receiving (tcp_recvmsg), scheduling (__schedule: going to sleep, being switched), the
proxy's own code (the sample's leaf in user space), and the rest of the kernel (the
event loop, epoll or io_uring, and the system calls themselves). Shares times the CPU
per request give microseconds per request; the table shows medians over the rounds.
"""
import collections
import statistics
import subprocess
import sys

CATEGORIES = [
    ("send", "send: TCP out, with the peer's receive and wake-up"),
    ("peer", "  of which the peer's receive path (softirq)"),
    ("recv", "receive: TCP in"),
    ("sched", "scheduling"),
    ("user", "own code (user space)"),
    ("rest", "rest of the kernel: event loop, system calls"),
]


def breakdown(data):
    """Shares of the samples in perf.data, by category."""
    run = subprocess.run(["perf", "script", "-i", data, "-F", "ip,sym,dso"],
                         capture_output=True, text=True)
    if run.returncode != 0:  # e.g. perf cut short: that round is left out, said so
        print("%s: perf script failed, round left out" % data, file=sys.stderr)
        return None
    out = run.stdout
    counts = collections.Counter()
    total = 0
    for sample in out.split("\n\n"):
        frames = [line.split(None, 1)[1] for line in sample.strip().split("\n")
                  if len(line.split(None, 1)) == 2]
        if not frames:
            continue
        total += 1
        syms = {f.split(" (")[0].split("+")[0] for f in frames}
        if "tcp_sendmsg" in syms:
            counts["send"] += 1
            if "net_rx_action" in syms:
                counts["peer"] += 1
        elif "tcp_recvmsg" in syms:
            counts["recv"] += 1
        elif "__schedule" in syms:
            counts["sched"] += 1
        elif "[kernel" not in frames[0]:
            counts["user"] += 1
        else:
            counts["rest"] += 1
    return {k: counts[k] / total for k, _ in CATEGORIES} if total else None


def main():
    rows = collections.defaultdict(list)  # target -> [{category: us/req, ...}]
    for line in open(sys.argv[1]):
        t, _, rps, ticks, rest, hz, secs, data = line.split()
        rps, secs, hz = float(rps), float(secs), float(hz)
        if rps <= 0:
            continue
        shares = breakdown(data)
        if not shares:
            continue
        cpu = int(ticks) * 1e6 / hz / (rps * secs)
        row = {k: v * cpu for k, v in shares.items()}
        row["cpu"] = cpu
        row["others"] = int(rest) * 1e6 / hz / (rps * secs)
        row["rps"] = rps
        rows[t].append(row)
    targets = [t for t in ("spargiod", "haproxy", "nginx") if rows.get(t)]

    def med(t, k):
        return statistics.median(r[k] for r in rows[t])

    print("CPU per request at 64 B / 50 connections, us (medians over the rounds)\n")
    print("| | " + " | ".join(targets) + " |")
    print("|---|" + "---|" * len(targets))
    print("| req/s | " + " | ".join("%.0f" % med(t, "rps") for t in targets) + " |")
    print("| proxy CPU | " + " | ".join("%.1f" % med(t, "cpu") for t in targets) + " |")
    for k, label in CATEGORIES:
        print("| %s | %s |" % (label, " | ".join("%.1f" % med(t, k) for t in targets)))
    print("| backend + wrk CPU | " + " | ".join("%.1f" % med(t, "others") for t in targets) + " |")
    if "haproxy" in rows and "spargiod" in rows:
        # with the three busy on the shared cores, req/s goes as one over their summed CPU
        # per request: 1.2x HAProxy's req/s leaves a proxy (beside spargiod's own backend
        # and wrk figures) at most this much
        budget = (med("haproxy", "cpu") + med("haproxy", "others")) / 1.2 - med("spargiod", "others")
        tcp = med("spargiod", "send") + med("spargiod", "recv")
        print("\nFor 1.2x HAProxy's req/s, spargiod may spend %.1f us per request beside the "
              "%.1f its backend and wrk take; it spends %.1f, of which %.1f sending and "
              "receiving in the kernel's TCP and %.1f elsewhere"
              % (budget, med("spargiod", "others"), med("spargiod", "cpu"), tcp,
                 med("spargiod", "cpu") - tcp))


if __name__ == "__main__":
    main()
