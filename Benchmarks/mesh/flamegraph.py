#!/usr/bin/env python3
"""Turns `perf script` output into a flame graph (SVG): one box per function, as wide as the share of
samples whose stack passed through it, callers below callees.

    perf script --max-stack 1024 -F comm,pid,tid,time,event,ip,sym,dso -i perf.data | swift demangle --simplified |
        flamegraph.py [--roles PID=LABEL,...] --title "..." > out.svg

Each stack's root is its process: the label `--roles` gives its pid, else the thread's name (`comm`;
processes of one executable share thread names, so label them when several are recorded together).
Kernel frames are marked `[k]` and drawn in their own colours; frames the unwinder could not name are
shown as `[unknown]` of their module. Hover a box for its full name, samples and share.
"""

import argparse
import collections
import hashlib
import html
import re
import sys

WIDTH, ROW, FONT = 1200, 16, 11


def fold(lines, roles):
    """Yields one stack (root first) per sample of `perf script`'s output."""
    stack, command = [], None
    for line in lines:
        line = line.rstrip("\n")
        if not line.strip():
            if command is not None and stack:
                yield [command] + list(reversed(stack))
            stack, command = [], None
            continue
        if not line.startswith((" ", "\t")):
            fields = line.split()
            command = fields[0]
            pid = next((f.split("/")[0] for f in fields[1:] if re.fullmatch(r"\d+/\d+", f)), None)
            if pid in roles:
                command = roles[pid]
            continue
        # "\t    7f12ab3c symbol+0x1f (/path/to/module)"
        match = re.match(r"\s*[0-9a-f]+\s+(.*?)\s+\((.*)\)$", line)
        if not match:
            continue
        symbol, module = match.groups()
        symbol = re.sub(r"\+0x[0-9a-f]+$", "", symbol)
        if symbol == "[unknown]":
            symbol = f"[unknown] {module.rsplit('/', 1)[-1]}"
        if "kernel.kallsyms" in module:
            symbol = "[k] " + symbol
        stack.append(symbol)
    if command is not None and stack:
        yield [command] + list(reversed(stack))


def tree(stacks):
    root = {"name": "all", "count": 0, "children": collections.OrderedDict()}
    for stack in stacks:
        node = root
        node["count"] += 1
        for frame in stack:
            node = node["children"].setdefault(frame, {"name": frame, "count": 0, "children": collections.OrderedDict()})
            node["count"] += 1
    return root


def depth(node):
    return 1 + max((depth(c) for c in node["children"].values()), default=0)


def colour(name):
    digest = hashlib.md5(name.encode()).digest()
    if name.startswith("[k]"):
        return f"rgb({200 + digest[0] % 55},{120 + digest[1] % 60},{60 + digest[2] % 40})"
    return f"rgb({205 + digest[0] % 50},{80 + digest[1] % 120},{40 + digest[2] % 40})"


def render(root, title, subtitle):
    rows = depth(root)
    height = rows * ROW + 60
    total = max(root["count"], 1)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" font-family="monospace" font-size="{FONT}">',
        f'<rect width="100%" height="100%" fill="#fdfdf6"/>',
        f'<text x="{WIDTH / 2}" y="20" text-anchor="middle" font-size="15">{html.escape(title)}</text>',
        f'<text x="{WIDTH / 2}" y="38" text-anchor="middle" fill="#555">{html.escape(subtitle)}</text>',
    ]
    scale = (WIDTH - 20) / total

    def draw(node, x, level):
        width = node["count"] * scale
        if width < 0.3:
            return
        y = height - 10 - (level + 1) * ROW
        share = 100 * node["count"] / total
        label = html.escape(node["name"])
        out.append(
            f'<g><title>{label} ({node["count"]} samples, {share:.2f} %)</title>'
            f'<rect x="{x:.2f}" y="{y}" width="{width:.2f}" height="{ROW - 1}" fill="{colour(node["name"])}" rx="2"/>'
        )
        characters = int(width / (FONT * 0.6))
        if characters >= 4:
            text = node["name"] if len(node["name"]) <= characters else node["name"][: characters - 2] + ".."
            out.append(f'<text x="{x + 3:.2f}" y="{y + ROW - 4}">{html.escape(text)}</text>')
        out.append("</g>")
        offset = x
        for child in sorted(node["children"].values(), key=lambda c: c["name"]):
            draw(child, offset, level + 1)
            offset += child["count"] * scale

    draw(root, 10, 0)
    out.append("</svg>")
    return "\n".join(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--title", default="Flame graph")
    parser.add_argument("--roles", default="", help="PID=LABEL,... : the root label of each process's stacks")
    args = parser.parse_args()
    roles = dict(entry.split("=", 1) for entry in args.roles.split(",") if "=" in entry)
    stacks = list(fold(sys.stdin, roles))
    if not stacks:
        print("error: no samples with call stacks in the input (perf record -g?)", file=sys.stderr)
        sys.exit(1)
    root = tree(stacks)
    sys.stdout.write(render(root, args.title, f"{len(stacks)} samples; width = share of samples; hover for names"))


if __name__ == "__main__":
    main()
