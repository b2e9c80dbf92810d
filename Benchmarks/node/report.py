#!/usr/bin/env python3
"""Turns Benchmarks/node/run's results (JSON lines) into a Markdown table on stdout."""

import json
import statistics
import sys

rows = [json.loads(line) for line in open(sys.argv[1])]


def of(figure, **match):
    return [r for r in rows if r["figure"] == figure and all(r.get(k) == v for k, v in match.items())]


def spread(values):
    return f"{statistics.median(values):,.0f} (min {min(values):,.0f}, max {max(values):,.0f})"


modes = ("plain", "mesh", "ebpf")
gbit = {m: [r["bps"] / 1e9 for r in of("throughput", mode=m)] for m in modes}
rate = {m: [r["result"]["rate"] for r in of("rate", mode=m)] for m in modes}
errors = {m: sum(r["result"]["errors"] for r in of("rate", mode=m)) for m in modes}
setup = {m: {p: statistics.median(r["result"][p] for r in of("setup", mode=m)) for p in ("p50", "p90", "p99")}
         for m in modes}
idle = of("rss_idle")[0]
held = of("rss_tunnels")[0]
after = of("rss_after")[0]
per_tunnel = ((held["node1"] - held["node1_before"]) + (held["node2"] - held["node2_before"])) / held["tunnels"]

print("| figure | no mesh | ambient, nftables capture | ambient, eBPF capture | nftables / eBPF vs no mesh |")
print("|---|---|---|---|---|")


def med(values):
    return statistics.median(values)


print(
    f"| single-stream throughput cross-node, Gbit/s, median of {len(gbit['mesh'])} (min–max) | "
    + " | ".join(f"{med(gbit[m]):.2f} ({min(gbit[m]):.2f}–{max(gbit[m]):.2f})" for m in modes)
    + f" | {med(gbit['mesh']) / med(gbit['plain']):.2f}× / {med(gbit['ebpf']) / med(gbit['plain']):.2f}× |"
)
print(
    "| new connections per second cross-node (connect, 1 byte each way, close; 4 processes) | "
    + " | ".join(spread(rate[m]) for m in modes)
    + f" | {med(rate['mesh']) / med(rate['plain']):.2f}× / {med(rate['ebpf']) / med(rate['plain']):.2f}× |"
)
print(
    "| connection set-up (connect + first byte's round trip), ms p50 / p90 / p99 | "
    + " | ".join(f"{setup[m]['p50']:.3f} / {setup[m]['p90']:.3f} / {setup[m]['p99']:.3f}" for m in modes)
    + f" | p50 +{setup['mesh']['p50'] - setup['plain']['p50']:.3f} / +{setup['ebpf']['p50'] - setup['plain']['p50']:.3f} ms |"
)
print(f"| failed connections in the rate runs | " + " | ".join(str(errors[m]) for m in modes) + " | |")
print()
print("| agent RSS | node1 (client side) | node2 (server side) |")
print("|---|---|---|")
print(f"| idle, 1 enrolled pod each | {idle['node1'] / 1024:.1f} MiB | {idle['node2'] / 1024:.1f} MiB |")
print(f"| before holding tunnels (after the runs above) | {held['node1_before'] / 1024:.1f} MiB | {held['node2_before'] / 1024:.1f} MiB |")
print(f"| {held['tunnels']:,} open tunnels (agents report {held['active']:,} active connections) | "
      f"{held['node1'] / 1024:.1f} MiB | {held['node2'] / 1024:.1f} MiB |")
print(f"| 5 s after they closed | {after['node1'] / 1024:.1f} MiB | {after['node2'] / 1024:.1f} MiB |")
print()
print(f"Memory per open tunnel (nftables lab), both agents together: {per_tunnel:.1f} KiB.")
