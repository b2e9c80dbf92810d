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


gbit = {m: [r["bps"] / 1e9 for r in of("throughput", mode=m)] for m in ("plain", "mesh")}
rate = {m: [r["result"]["rate"] for r in of("rate", mode=m)] for m in ("plain", "mesh")}
errors = {m: sum(r["result"]["errors"] for r in of("rate", mode=m)) for m in ("plain", "mesh")}
idle = of("rss_idle")[0]
held = of("rss_tunnels")[0]
after = of("rss_after")[0]
per_tunnel = ((held["node1"] - held["node1_before"]) + (held["node2"] - held["node2_before"])) / held["tunnels"]

print("| figure | no mesh | ambient (ambit-node) | ratio |")
print("|---|---|---|---|")
print(
    f"| single-stream throughput cross-node, Gbit/s, median of {len(gbit['mesh'])} | "
    f"{statistics.median(gbit['plain']):.2f} ({min(gbit['plain']):.2f}–{max(gbit['plain']):.2f}) | "
    f"{statistics.median(gbit['mesh']):.2f} ({min(gbit['mesh']):.2f}–{max(gbit['mesh']):.2f}) | "
    f"{statistics.median(gbit['mesh']) / statistics.median(gbit['plain']):.2f}× |"
)
print(
    f"| new connections per second cross-node (connect, 1 byte each way, close) | {spread(rate['plain'])} | "
    f"{spread(rate['mesh'])} | {statistics.median(rate['mesh']) / statistics.median(rate['plain']):.2f}× |"
)
print()
print("| agent RSS | node1 (client side) | node2 (server side) |")
print("|---|---|---|")
print(f"| idle, 1 enrolled pod each | {idle['node1'] / 1024:.1f} MiB | {idle['node2'] / 1024:.1f} MiB |")
print(f"| before holding tunnels (after the runs above) | {held['node1_before'] / 1024:.1f} MiB | {held['node2_before'] / 1024:.1f} MiB |")
print(f"| {held['tunnels']:,} open tunnels (agents report {held['active']:,} active connections) | "
      f"{held['node1'] / 1024:.1f} MiB | {held['node2'] / 1024:.1f} MiB |")
print(f"| 5 s after they closed | {after['node1'] / 1024:.1f} MiB | {after['node2'] / 1024:.1f} MiB |")
print()
print(f"Memory per open tunnel, both agents together: {per_tunnel:.1f} KiB. "
      f"Connection errors during the rate runs: no mesh {errors['plain']}, ambient {errors['mesh']}.")
