#!/usr/bin/env python3
"""Turns Benchmarks/mesh/run's results.jsonl into report.md, results.json and PNG charts.

    report.py RESULTS_DIR

Every figure is the median over the repetitions, with min–max in parentheses; ratios compare
modes measured in the same run. The efficiency goals (docs/benchmarks.md) are checked at 1,000 req/s
over 4 connections (the reference point), against the no-mesh and HAProxy modes of the same run, and
listed with their measured value and whether they are met. Rows marked superseded (a point measured
again because the host's CPU steal was above 5 %) are left out of every figure.
"""

import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

MODES = ["plain", "ambient", "ebpf", "waypoint", "sidecar", "haproxy"]
LABELS = {
    "plain": "no mesh",
    "ambient": "ambient L4",
    "ebpf": "ambient L4 (eBPF)",
    "waypoint": "ambient + waypoint",
    "sidecar": "Ambit sidecar",
    "haproxy": "HAProxy sidecar",
}
PERCENTILES = ["p50", "p90", "p99", "p99.9"]
REFERENCE = (1000, 4)


def measured_rows(rows, mode):
    """The mode's measured points in the order they ran (the idle snapshot left out)."""
    return [r for r in rows if r["mode"] == mode and r["workload"]["kind"] != "idle"]


def median(values):
    return statistics.median(values) if values else None


def spread(values, fmt):
    if not values:
        return "–"
    if len(values) == 1:
        return fmt(values[0])
    return f"{fmt(median(values))} ({fmt(min(values))}–{fmt(max(values))})"


def main():
    out = Path(sys.argv[1])
    run = json.loads((out / "run.json").read_text())
    every_row = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines() if line.strip()]
    rows = [r for r in every_row if not r.get("superseded")]
    modes = [m for m in MODES if any(r["mode"] == m for r in rows)]

    idle_rss = {r["mode"]: r["rss_kib"] for r in rows if r["workload"]["kind"] == "idle"}
    throughput = defaultdict(list)  # (mode, streams) -> [Gbit/s]
    http = defaultdict(list)  # (mode, rate, conns) -> [row]
    connect = defaultdict(list)
    for row in rows:
        w = row["workload"]
        if w["kind"] == "iperf3":
            throughput[(row["mode"], w["streams"])].append(row["result"]["bps"] / 1e9)
        elif w["kind"] == "http":
            http[(row["mode"], w["rate"], w["connections"])].append(row)
        elif w["kind"] == "connect":
            connect[row["mode"]].append(row["result"]["connections_per_second"])
    points = sorted({(rate, conns) for (_, rate, conns) in http})
    reference = REFERENCE if REFERENCE in points else (points[len(points) // 2] if points else None)

    def latency(mode, point, percentile):
        return [r["result"]["latency_ms"][percentile] for r in http.get((mode, *point), [])]

    def cpu_per_1000(mode, point):
        values = []
        for r in http.get((mode, *point), []):
            completed = r["result"]["completed"]
            if completed:
                values.append(sum(r["cpu_s"].values()) / completed * 1000)
        return values

    def rss_total(mode, point):
        return [sum(r["rss_kib"].values()) / 1024 for r in http.get((mode, *point), [])]

    def rss_per_node(mode, point):
        nodes = defaultdict(list)
        for r in http.get((mode, *point), []):
            for node, kib in r["rss_kib"].items():
                nodes[node].append(kib / 1024)
        return nodes

    ms = lambda v: f"{v:.3f}"
    summary = {"run": run, "reference": reference, "modes": {}}
    lines = [f"# Mesh benchmark, {run['date']}", ""]
    if run["smoke"]:
        lines += ["**Smoke run** (tiny durations, debug builds): it checks that the harness works; its figures mean nothing.", ""]
    lines += [
        f"{run['cpus']} CPUs, kernel {run['kernel']}, revision {run['revision']}, {run['config']} builds; "
        f"{run['reps']} repetitions of {run['duration_s']} s per point, modes interleaved; "
        f"{run['pods_per_node']} pods per node (one busy, the rest idle). Medians, min–max in parentheses.",
        "",
        "Wiring: **no mesh** — client pod (node1) to server pod (node2) over the CNI bridges and the underlay. "
        "**ambient L4** — `ambit-node` on each node, nftables capture, one mTLS HTTP/2 HBONE tunnel per connection. "
        "**ambient + waypoint** — the same, with the server's Service using `ambit-waypoint` (on node2): the client "
        "calls the Service VIP, the waypoint parses each request and opens an HBONE stream to the server. "
        "**Ambit sidecar** — `ambit-sidecar` (the waypoint's L7 engine, one thread) in every pod, no node agent: "
        "HTTP parsed on both sides, HBONE between the sidecars. **HAProxy sidecar** — HAProxy 2.6 (one thread) in "
        "every pod, HTTP mode on both sides, mutual TLS with the same certificates, nftables redirect of the app's "
        "ports. The load: `MeshLoad` (open loop, latency from the intended send time, HdrHistogram), 1 KiB request "
        "and response bodies over HTTP/1.1 keep-alive connections; `iperf3` for bulk TCP.",
        "",
    ]

    # Throughput.
    lines += ["## TCP throughput (iperf3, client pod to server pod)", "", "| mode | 1 stream, Gbit/s | vs no mesh | 4 streams, Gbit/s | vs no mesh |", "|---|---|---|---|---|"]
    base1 = median(throughput.get(("plain", 1), []))
    base4 = median(throughput.get(("plain", 4), []))
    for mode in modes:
        one, four = throughput.get((mode, 1), []), throughput.get((mode, 4), [])
        r1 = f"{median(one) / base1:.2f}×" if one and base1 else "–"
        r4 = f"{median(four) / base4:.2f}×" if four and base4 else "–"
        lines.append(f"| {LABELS[mode]} | {spread(one, lambda v: f'{v:.2f}')} | {r1} | {spread(four, lambda v: f'{v:.2f}')} | {r4} |")
        summary["modes"].setdefault(mode, {})["throughput_gbps"] = {"1": median(one), "4": median(four)}
    lines.append("")

    # Latency at each point.
    lines += ["## HTTP latency, ms (1 KiB each way)", ""]
    for point in points:
        rate, conns = point
        lines += [f"**{rate} req/s over {conns} connection(s)**", "", "| mode | achieved req/s | errors | " + " | ".join(PERCENTILES) + " | added p90 | added p99 |", "|---|---|---|" + "---|" * (len(PERCENTILES) + 2)]
        for mode in modes:
            runs = http.get((mode, *point), [])
            if not runs:
                continue
            achieved = [r["result"]["achieved_rate"] for r in runs]
            errors = sum(r["result"]["errors"] for r in runs)
            cells = [spread(latency(mode, point, p), ms) for p in PERCENTILES]
            added = []
            for p in ("p90", "p99"):
                mine, base = median(latency(mode, point, p)), median(latency("plain", point, p))
                added.append(f"{mine - base:+.3f}" if mine is not None and base is not None else "–")
            lines.append(f"| {LABELS[mode]} | {spread(achieved, lambda v: f'{v:.0f}')} | {errors} | " + " | ".join(cells) + " | " + " | ".join(added) + " |")
        lines.append("")

    # CPU and memory.
    lines += ["## Proxy CPU and memory", "", "CPU seconds of the mode's proxy processes (all nodes) per 1,000 requests, and their RSS (from /proc) after the run:", ""]
    header = "| mode | " + " | ".join(f"CPU s/1k req at {r}/s × {c}" for r, c in points) + " | RSS MiB, all proxies | RSS MiB per node | processes |"
    lines += [header, "|---|" + "---|" * (len(points) + 3)]
    for mode in modes:
        if mode == "plain":
            continue
        cpu_cells = [spread(cpu_per_1000(mode, p), lambda v: f"{v:.3f}") for p in points]
        nodes = rss_per_node(mode, reference) if reference else {}
        per_node = ", ".join(f"{n}: {median(v):.1f}" for n, v in sorted(nodes.items()))
        processes = max((r["proxies"] for r in http.get((mode, *reference), [])), default=0) if reference else 0
        lines.append(f"| {LABELS[mode]} | " + " | ".join(cpu_cells) + f" | {spread(rss_total(mode, reference), lambda v: f'{v:.1f}') if reference else '–'} | {per_node} | {processes} |")
        summary["modes"][mode]["cpu_s_per_1000"] = {f"{r}x{c}": median(cpu_per_1000(mode, (r, c))) for r, c in points}
        summary["modes"][mode]["rss_mib_reference"] = median(rss_total(mode, reference)) if reference else None
        summary["modes"][mode]["rss_mib_idle"] = sum(idle_rss.get(mode, {}).values()) / 1024
    lines.append("")
    lines += ["Idle RSS before any load, MiB: " + ", ".join(f"{LABELS[m]} {sum(idle_rss.get(m, {}).values()) / 1024:.1f}" for m in modes if m != "plain"), ""]
    # Anonymous against file-backed RSS per process after each mode's last point (runs since 2026-12-06).
    kinds = []
    for mode in modes:
        last = measured_rows(rows, mode)
        for process in (last[-1].get("rss_processes", []) if last else []):
            if "anon_kib" in process:
                kinds.append(f"| {LABELS[mode]} | {process['role']} on {process['node']} | {process['rss_kib'] / 1024:.1f} | "
                             f"{process['anon_kib'] / 1024:.1f} | {process['file_kib'] / 1024:.1f} |")
    if kinds:
        lines += ["RSS after the run by kind (anonymous: heap, stacks, written data; file: pages of the executable and "
                  "libraries, shared and reclaimable), MiB:", "", "| mode | process | RSS | anonymous | file |",
                  "|---|---|---|---|---|"] + kinds + [""]

    # New connections.
    lines += ["## New connections per second (connect, one request, close; 4 at a time)", "", "| mode | connections/s | vs no mesh |", "|---|---|---|"]
    base = median(connect.get("plain", []))
    for mode in modes:
        values = connect.get(mode, [])
        ratio = f"{median(values) / base:.2f}×" if values and base else "–"
        lines.append(f"| {LABELS[mode]} | {spread(values, lambda v: f'{v:.0f}')} | {ratio} |")
    lines.append("")

    # Goals: the efficiency targets, each measured against the references of this run.
    goals = []
    if reference:
        goals = efficiency_goals(run, rows, reference, connect, throughput, latency, cpu_per_1000)
        lines += [f"## Goals (at {reference[0]} req/s over {reference[1]} connections)", "", "| goal | measured | target | met? |", "|---|---|---|---|"]
        def verdict(name, value, check):
            if value is None:
                return None
            # Added latency below zero means the no-mesh baseline measured slower than the mesh: the
            # host was noisier during the baseline, and the comparison says nothing.
            if name.startswith("Latency added") and value < 0:
                return "inconclusive"
            return bool(check(value))
        for name, value, target, check, fmt in goals:
            measured = fmt.format(value) if value is not None else "not measured"
            result = verdict(name, value, check)
            met = {None: "–", True: "**yes**", False: "**no**"}.get(result, "inconclusive (baseline slower: noisy host, re-run)")
            lines.append(f"| {name} | {measured} | {target} | {met} |")
        lines.append("")
        summary["goals"] = [{"goal": g[0], "measured": g[1], "target": g[2], "met": verdict(g[0], g[1], g[3])} for g in goals]

    # Host noise: CPU time the hypervisor gave to someone else while each point was measured.
    steal = defaultdict(list)
    for row in rows:
        if "steal_pct" in row:
            steal[row["mode"]].append(row["steal_pct"])
    if steal:
        everything = [v for values in steal.values() for v in values]
        again = sum(1 for r in every_row if r.get("superseded"))
        lines += ["## Host CPU steal while measuring", "",
                  "Share of the machine's CPU time the hypervisor stole during each measured point (from `/proc/stat`); "
                  "points measured under heavy steal are slower and burstier for reasons outside the mesh. "
                  f"{again} point(s) measured under more than 5 % were measured again; the table and every figure use "
                  "the attempt with less steal.", "",
                  "| mode | steal %, median (min–max) | points over 5 % |", "|---|---|---|"]
        for mode in modes:
            values = steal.get(mode, [])
            lines.append(f"| {LABELS[mode]} | {spread(values, lambda v: f'{v:.1f}')} | {sum(1 for v in values if v > 5)} of {len(values)} |")
        lines.append("")
        summary["steal_pct"] = {m: {"median": median(v), "max": max(v)} for m, v in steal.items()}
        if median(everything) > 5:
            lines.insert(2, f"**Noisy host:** the hypervisor stole a median {median(everything):.1f} % of the CPU while "
                            "measuring (see the steal table); compare modes only within this run, and re-run on a quiet machine "
                            "before trusting absolute figures.\n")

    flames = sorted(f.name for f in out.glob("flame-*.svg"))
    if flames:
        lines += ["Flame graphs of the proxies at 1,000 req/s over 4 connections (`perf record -g`, a separate pass after the "
                  "measurements): " + ", ".join(f"[`{name}`]({name})" for name in flames) + ".", ""]
    lines += ["Charts: `latency.png`, `latency-percentiles.png`, `throughput.png`, `cpu.png`, `memory.png`; raw data: `results.jsonl`, summary `results.json`.", ""]
    (out / "report.md").write_text("\n".join(lines))
    summary["raw"] = every_row
    (out / "results.json").write_text(json.dumps(summary, indent=1, sort_keys=True))
    charts(out, modes, points, reference, throughput, latency, cpu_per_1000, rss_total)
    print("\n".join(lines))
    # A smoke run judges no figure, but every mode must have carried every workload without an error.
    broken = [
        f"{r['mode']} {r['workload']}" for r in rows
        if r["workload"]["kind"] == "http" and (r["result"]["errors"] or not r["result"]["completed"])
    ]
    broken += [f"{m} iperf3 {s}" for m in modes for s in (1, 4) if not throughput.get((m, s))]
    if run["smoke"] and broken:
        print("error: the smoke run had failures: " + "; ".join(broken), file=sys.stderr)
        sys.exit(1)


def efficiency_goals(run, rows, reference, connect, throughput, latency, cpu_per_1000):
    """(goal, measured value, target text, check, format) for each target of docs/benchmarks.md."""

    def ratio(a, b):
        return a / b if a is not None and b not in (None, 0) else None

    def role_cpu_per_1000(mode, role):
        values = [
            r["cpu_s_role"].get(role, 0) / r["result"]["completed"] * 1000
            for r in rows
            if r["mode"] == mode and r["workload"] == {"kind": "http", "rate": reference[0], "connections": reference[1]}
            and r["result"]["completed"] and "cpu_s_role" in r
        ]
        return median(values)

    def largest_rss(role, row):
        sizes = [p["rss_kib"] / 1024 for p in row.get("rss_processes", []) if p["role"] == role]
        return max(sizes) if sizes else None

    idle_agent = [largest_rss("agent", r) for r in rows if r["mode"] == "ambient" and r["workload"]["kind"] == "idle"]
    measured_ambient = measured_rows(rows, "ambient")
    after_agent = largest_rss("agent", measured_ambient[-1]) if measured_ambient else None
    measured_waypoint = measured_rows(rows, "waypoint")
    after_waypoint = largest_rss("waypoint", measured_waypoint[-1]) if measured_waypoint else None
    # Flat across repetitions: the waypoint's RSS after the last repetition against after the first.
    by_rep = {}
    for r in measured_waypoint:
        by_rep[r["rep"]] = largest_rss("waypoint", r)
    growth = None
    if len(by_rep) >= 2 and by_rep[min(by_rep)]:
        growth = by_rep[max(by_rep)] / by_rep[min(by_rep)] - 1

    add90 = add99 = None
    if latency("ambient", reference, "p90") and latency("plain", reference, "p90"):
        add90 = median(latency("ambient", reference, "p90")) - median(latency("plain", reference, "p90"))
        add99 = median(latency("ambient", reference, "p99")) - median(latency("plain", reference, "p99"))
    plain1, plain4 = median(throughput.get(("plain", 1), [])), median(throughput.get(("plain", 4), []))
    hap = median(cpu_per_1000("haproxy", reference))
    hbone = (run.get("hbone_loopback") or {}).get("ratio")
    image = run.get("image_bytes")
    return [
        ("Ambient L4: both agents' CPU per 1,000 requests vs the HAProxy sidecar pair",
         ratio(median(cpu_per_1000("ambient", reference)), hap), "≤ 0.5×", lambda v: v <= 0.5, "{:.3f}×"),
        ("Ambit sidecar CPU per request vs HAProxy", ratio(median(cpu_per_1000("sidecar", reference)), hap),
         "≤ 1.0×", lambda v: v <= 1.0, "{:.3f}×"),
        ("New connections per second, ambient vs no mesh",
         ratio(median(connect.get("ambient", [])), median(connect.get("plain", []))), "≥ 0.75×", lambda v: v >= 0.75, "{:.2f}×"),
        ("Ambient single-stream throughput vs no mesh (nftables)",
         ratio(median(throughput.get(("ambient", 1), [])), plain1), "≥ 0.6×", lambda v: v >= 0.6, "{:.2f}×"),
        ("Ambient single-stream throughput vs no mesh (eBPF)",
         ratio(median(throughput.get(("ebpf", 1), [])), plain1), "≥ 0.7×", lambda v: v >= 0.7, "{:.2f}×"),
        ("Ambient 4-stream throughput vs no mesh",
         ratio(median(throughput.get(("ambient", 4), [])), plain4), "≥ 0.5×", lambda v: v >= 0.5, "{:.2f}×"),
        ("HBONE loopback throughput vs direct (HBONEBench)", hbone, "≥ 0.5×", lambda v: v >= 0.5, "{:.2f}×"),
        ("Agent RSS idle (the larger agent)", median(idle_agent) if idle_agent else None, "≤ 12 MiB",
         lambda v: v <= 12, "{:.1f} MiB"),
        ("Agent RSS after the run (the larger agent)", after_agent, "≤ 20 MiB", lambda v: v <= 20, "{:.1f} MiB"),
        ("Waypoint CPU per 1,000 requests", role_cpu_per_1000("waypoint", "waypoint"), "≤ 0.25 s",
         lambda v: v <= 0.25, "{:.3f} s"),
        ("Waypoint RSS after the run", after_waypoint, "≤ 60 MiB", lambda v: v <= 60, "{:.1f} MiB"),
        ("Waypoint RSS growth, last repetition vs first", growth, "≤ 10 % (flat)", lambda v: v <= 0.10,
         "{:+.1%}"),
        ("Latency added by ambient L4, p90", add90, "≤ 0.17 ms", lambda v: v <= 0.17, "{:.3f} ms"),
        ("Latency added by ambient L4, p99", add99, "≤ 0.20 ms", lambda v: v <= 0.20, "{:.3f} ms"),
        ("Container image (root file system, uncompressed)", image / 1e6 if image else None, "≤ 50 MB",
         lambda v: v <= 50, "{:.1f} MB"),
    ]


def charts(out, modes, points, reference, throughput, latency, cpu_per_1000, rss_total):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no charts (apt-get install python3-matplotlib)", file=sys.stderr)
        return
    rates = sorted({r for r, _ in points})
    conns = reference[1] if reference else None

    fig, ax = plt.subplots(figsize=(7, 4))
    for mode in modes:
        ys = [median(latency(mode, (r, conns), "p99")) for r in rates]
        if any(y is not None for y in ys):
            ax.plot(rates, ys, marker="o", label=LABELS[mode])
    ax.set(xlabel="requests per second", ylabel="p99 latency, ms", title=f"p99 latency over {conns} connections")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "latency.png", dpi=110)
    plt.close(fig)

    if reference:
        fig, ax = plt.subplots(figsize=(8, 4))
        width = 0.8 / max(len(modes), 1)
        for index, mode in enumerate(modes):
            ys = [median(latency(mode, reference, p)) or 0 for p in PERCENTILES]
            ax.bar([x + index * width for x in range(len(PERCENTILES))], ys, width, label=LABELS[mode])
        ax.set_xticks([x + width * (len(modes) - 1) / 2 for x in range(len(PERCENTILES))], PERCENTILES)
        ax.set(ylabel="ms", title=f"latency at {reference[0]} req/s over {reference[1]} connections")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "latency-percentiles.png", dpi=110)
        plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4))
    for index, streams in enumerate((1, 4)):
        ys = [median(throughput.get((m, streams), [])) or 0 for m in modes]
        ax.bar([x + index * 0.4 for x in range(len(modes))], ys, 0.4, label=f"{streams} stream(s)")
    ax.set_xticks([x + 0.2 for x in range(len(modes))], [LABELS[m] for m in modes], rotation=15)
    ax.set(ylabel="Gbit/s", title="TCP throughput (iperf3)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "throughput.png", dpi=110)
    plt.close(fig)

    proxied = [m for m in modes if m != "plain"]
    if reference and proxied:
        fig, ax = plt.subplots(figsize=(7, 4))
        ax.bar([LABELS[m] for m in proxied], [median(cpu_per_1000(m, reference)) or 0 for m in proxied])
        ax.set(ylabel="CPU seconds per 1,000 requests", title=f"proxy CPU at {reference[0]} req/s over {reference[1]}")
        plt.setp(ax.get_xticklabels(), rotation=15)
        fig.tight_layout()
        fig.savefig(out / "cpu.png", dpi=110)
        plt.close(fig)

        fig, ax = plt.subplots(figsize=(7, 4))
        ax.bar([LABELS[m] for m in proxied], [median(rss_total(m, reference)) or 0 for m in proxied])
        ax.set(ylabel="RSS, MiB (all proxy processes)", title="proxy memory")
        plt.setp(ax.get_xticklabels(), rotation=15)
        fig.tight_layout()
        fig.savefig(out / "memory.png", dpi=110)
        plt.close(fig)


if __name__ == "__main__":
    main()
