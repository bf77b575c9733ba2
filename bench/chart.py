#!/usr/bin/env python3
"""bench/chart.py: one SVG a person reads at a glance: for every comparison of the bench table,
a bar for mxscreen's value as a multiple of the peer's (1.0 = the same), the issue's target
drawn as a tick, green when the target is met, red when missed, grey when there is none.
Hand-written SVG, standard library only. Used by bench/report.py; also runs alone:
    chart.py bench/results/latest.json out.svg
"""
import json
import math
import sys
from xml.sax.saxutils import escape

WIDTH, ROW_H, LEFT, RIGHT, TOP = 980, 26, 390, 150, 70
LO, HI = 0.05, 20.0  # ratio axis, logarithmic


def x_of(ratio):
    ratio = min(max(ratio, LO), HI)
    span = math.log10(HI) - math.log10(LO)
    return LEFT + (math.log10(ratio) - math.log10(LO)) / span * (WIDTH - LEFT - RIGHT)


def render(rows, machine="", date=""):
    rows = [r for r in rows if r.get("ratio")]
    height = TOP + ROW_H * len(rows) + 60
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
           f'font-family="sans-serif" font-size="12">',
           f'<rect width="{WIDTH}" height="{height}" fill="white"/>',
           '<text x="10" y="22" font-size="16" font-weight="bold">mxscreen vs peers '
           '(ratio mxscreen / peer, log scale)</text>',
           f'<text x="10" y="42" fill="#555">{escape(machine)} {escape(date)}. Bar = measured '
           'ratio; black tick = issue 8 target. Lower is better for CPU, memory and latency; '
           'higher for rates.</text>']
    for tick in (0.1, 0.25, 0.5, 1, 2, 4, 10):
        x = x_of(tick)
        out.append(f'<line x1="{x:.1f}" y1="{TOP - 8}" x2="{x:.1f}" y2="{height - 40}" '
                   f'stroke="{"#888" if tick == 1 else "#ddd"}"/>')
        out.append(f'<text x="{x:.1f}" y="{height - 24}" text-anchor="middle">{tick}x</text>')
    for i, r in enumerate(rows):
        y = TOP + i * ROW_H
        colour = {True: "#2e9d4f", False: "#d23f31", None: "#9aa5b1"}[r.get("met")]
        label = f'{r["case"]}: {r["metric"]} ({r["mxscreen_label"]} / {r["peer_label"]})'
        out.append(f'<text x="{LEFT - 8}" y="{y + 15}" text-anchor="end">{escape(label)}</text>')
        x0, x1 = x_of(1.0), x_of(r["ratio"])
        out.append(f'<rect x="{min(x0, x1):.1f}" y="{y + 4}" width="{max(abs(x1 - x0), 1.5):.1f}" '
                   f'height="{ROW_H - 8}" fill="{colour}"/>')
        if r.get("target"):
            xt = x_of(r["target"])
            out.append(f'<line x1="{xt:.1f}" y1="{y + 1}" x2="{xt:.1f}" y2="{y + ROW_H - 1}" '
                       'stroke="black" stroke-width="3"/>')
        verdict = {True: "met", False: "missed", None: ""}[r.get("met")]
        out.append(f'<text x="{WIDTH - RIGHT + 8}" y="{y + 15}">{r["ratio"]:.2f}x {verdict}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    data = json.load(open(sys.argv[1]))
    with open(sys.argv[2], "w") as f:
        f.write(render(data["rows"], data.get("machine", ""), data.get("date", "")))
