#!/usr/bin/env python3
"""Splits ping-pong round trips into stages from a `perf script` dump of UDP
system-call tracepoints of both processes (see rtt-timeline.sh).

Stages, per round trip, between system-call boundaries:
  client send -> server recv   the client's sendto (loopback delivery inside
                               it) until the server's receive returns the datagram
  server recv -> server send   the server's own work on the datagram
  server send -> client recv   the reply's sendto until the client's receive returns it
  client recv -> client send   the client's work on the reply, then its next ping
Tracepoints add their own cost to every stage: compare rows measured the same
way, not these figures with BENCHMARKS.md.
"""
import re
import statistics
import sys

LINE = re.compile(r"\s*\S+\s+(\d+)\s+([\d.]+):\s+syscalls:sys_(enter|exit)_(\w+):")


def stages(path):
    events = []
    with open(path) as f:
        for line in f:
            m = LINE.match(line)
            if m:
                events.append((int(m.group(1)), float(m.group(2)) * 1e6, m.group(3), m.group(4)))
    if not events:
        sys.exit(f"{path}: no system-call events")
    client = min(e[0] for e in events)  # the bench process starts first
    names = ["client send -> server recv", "server recv -> server send",
             "server send -> client recv", "client recv -> client send"]
    out = {n: [] for n in names}
    t = {}
    for pid, ts, edge, call in events:
        side = "c" if pid == client else "s"
        received = edge == "exit" and call.startswith("recv")
        sending = edge == "enter" and call.startswith("send")
        if side == "c" and sending:
            if "c_recv" in t:
                out[names[3]].append(ts - t["c_recv"])
            t = {"c_send": ts}
        elif side == "s" and received and "c_send" in t and "s_recv" not in t:
            t["s_recv"] = ts
            out[names[0]].append(ts - t["c_send"])
        elif side == "s" and sending and "s_recv" in t and "s_send" not in t:
            t["s_send"] = ts
            out[names[1]].append(ts - t["s_recv"])
        elif side == "c" and received and "s_send" in t and "c_recv" not in t:
            t["c_recv"] = ts
            out[names[2]].append(ts - t["s_send"])
    return out


def main():
    for label, path in zip(sys.argv[1::2], sys.argv[2::2]):
        out = stages(path)
        total = 0.0
        print(f"{label}:")
        for name, values in out.items():
            values = values[len(values) // 10:]  # warm-up
            if not values:
                continue
            m = statistics.median(values)
            p99 = sorted(values)[len(values) * 99 // 100]
            total += m
            print(f"  {name:28s} median {m:6.2f} us  p99 {p99:7.2f} us  (n={len(values)})")
        print(f"  {'sum of the medians':28s}        {total:6.2f} us")


if __name__ == "__main__":
    main()
