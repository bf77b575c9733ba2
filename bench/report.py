#!/usr/bin/env python3
"""bench/report.py: turns bench/run's raw runs (one JSON line per loadgen run, with the
target's CPU and memory added) into the table of medians and ratios against issue 8's
targets, bench/results/latest.json, and the SVG chart (bench/chart.py). Standard library only.

usage: report.py [--machine TEXT] [--quick 0|1] RAW.jsonl OUT.json OUT.svg
"""
import argparse
import datetime
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import chart  # noqa: E402


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def per_conn_kib(run, kind):
    held = run.get("held") or 0
    if not held or not run.get(f"{kind}_kib_held"):
        return None
    return (run[f"{kind}_kib_held"] - run[f"{kind}_kib_before"]) / held


def cpu_per_10k(run):
    n = run.get("sessions") or 0
    return run["target_cpu_s"] / n * 10000 if n else None


def refused(run):
    """Clients answered 4xx/5xx anywhere in the dialogue (banner_4xx, rcpt_4xx, ...)."""
    return sum(n for kind, n in run.get("outcomes", {}).items()
               if kind.endswith("_4xx") or kind.endswith("_5xx"))


def delivered(run):
    return run.get("messages")


def peak_kib_per_client(run):
    """burst: mxscreen's peak RSS (VmHWM) over its idle RSS, per client of the burst."""
    if not run.get("peak_rss_kib") or not run.get("started"):
        return None
    return (run["peak_rss_kib"] - run.get("idle_rss_kib", 0)) / run["started"]


def cpu_per_gb(run):
    size = (run.get("messages") or 0) * (run.get("message_size") or 0)
    return run["target_cpu_s"] / (size / 1e9) if size else None


METRICS = {
    "rss_per_conn": ("RSS KiB per held conn", lambda r: per_conn_kib(r, "rss")),
    "pss_per_conn": ("PSS KiB per held conn", lambda r: per_conn_kib(r, "pss")),
    "held": ("connections held", lambda r: r.get("held")),
    "cpu_10k": ("target CPU s / 10k sessions", cpu_per_10k),
    "sessions_s": ("sessions/s", lambda r: r.get("sessions_per_s")),
    "mb_s": ("MB/s", lambda r: r.get("mb_per_s")),
    "msgs_s": ("messages/s", lambda r: r.get("messages_per_s")),
    "p50": ("legit latency p50 ms", lambda r: r["latency_ms"]["p50"]),
    "p99": ("legit latency p99 ms", lambda r: r["latency_ms"]["p99"]),
    "delivered": ("clients delivered", delivered),
    "refused": ("clients refused (4xx/5xx)", refused),
    "failed": ("clients not delivered", lambda r: (r.get("started") or 0) - (r.get("messages") or 0)),
    "delivery_p50": ("time to delivery p50 ms", lambda r: r["latency_ms"]["p50"]),
    "delivery_p99": ("time to delivery p99 ms", lambda r: r["latency_ms"]["p99"]),
    "peak_kib": ("peak RSS KiB per client", peak_kib_per_client),
    "cpu_gb": ("target CPU s per GB", cpu_per_gb),
}

# (case, metric, mxscreen label, peer label, target ratio, "le"|"ge", what the target says)
ROWS = [
    ("hold", "rss_per_conn", "mxscreen", "postscreen", None, None, "mxscreen <= 1.0 KiB RSS each"),
    ("hold", "pss_per_conn", "mxscreen", "postscreen", None, None, ""),
    ("hold", "held", "mxscreen", "postscreen", None, None, "all held"),
    ("hold19k", "rss_per_conn", "mxscreen", "postscreen", None, None, "fd cap 20,000/process"),
    ("hold19k", "held", "mxscreen", "postscreen", None, None, "100,000 not testable here"),
    ("bots_drop", "cpu_10k", "mxscreen", "postscreen", 0.5, "le", "<= 0.5x postscreen CPU"),
    ("bots_drop", "sessions_s", "mxscreen", "postscreen", None, None, ""),
    ("bots_mix", "cpu_10k", "mxscreen", "postscreen", None, None, ""),
    ("bots_mix", "sessions_s", "mxscreen", "postscreen", None, None, ""),
    ("legit", "sessions_s", "mxscreen-w1", "haproxy", 1.2, "ge", ">= 1.2x HAProxy"),
    ("legit", "sessions_s", "haproxy", "smtp-sink", None, None, "HAProxy ~0.5x direct"),
    ("legit", "sessions_s", "mxscreen-w1", "smtp-sink", None, None, ""),
    ("legit", "cpu_10k", "mxscreen-w1", "haproxy", None, None, "proxy CPU only"),
    ("large", "mb_s", "mxscreen-w1", "smtp-sink", 0.95, "ge", ">= 0.95x direct"),
    ("large", "mb_s", "haproxy", "smtp-sink", None, None, ""),
    ("large", "mb_s", "mxscreen-splice", "smtp-sink", None, None, "splice(2) (kernel_splice on)"),
    ("large", "cpu_gb", "mxscreen-splice", "mxscreen-w1", None, None, "splice(2) vs copy path"),
    ("mixed", "p99", "mxscreen-bots500", "mxscreen-bots0", 1.5, "le", "p99 <= 1.5x unloaded"),
    ("mixed", "p50", "mxscreen-bots500", "mxscreen-bots0", None, None, ""),
    ("workers", "sessions_s", "mxscreen-w2", "mxscreen-w1", 1.6, "ge",
     ">= 1.6x one worker (STARTTLS)"),
    ("workers", "cpu_10k", "mxscreen-w2", "mxscreen-w1", None, None, ""),
    ("workers_plain", "sessions_s", "mxscreen-w2", "mxscreen-w1", None, None,
     "generator-bound on 2 cores"),
    ("postfix", "msgs_s", "mxscreen-postfix", "postfix-direct", None, None, "real Postfix behind"),
    ("burst", "delivered", "mxscreen-burst", "postscreen-burst", None, None, "goal: every one"),
    ("burst", "delivered", "mxscreen-burst", "haproxy-burst", None, None, ""),
    ("burst", "refused", "mxscreen-burst", "postscreen-burst", None, None, "goal: 0 refused"),
    ("burst", "refused", "mxscreen-burst", "haproxy-burst", None, None, ""),
    ("burst", "failed", "mxscreen-burst", "haproxy-burst", None, None, "refused or timed out"),
    ("burst", "delivery_p50", "mxscreen-burst", "haproxy-burst", None, None, ""),
    ("burst", "delivery_p99", "mxscreen-burst", "haproxy-burst", 1.0, "le", "p99 <= HAProxy's"),
    ("burst", "delivery_p99", "mxscreen-burst", "postscreen-burst", None, None, ""),
    ("burst", "peak_kib", "mxscreen-burst", "-", None, None, "goal: < 1 KiB per queued"),
    ("burst", "delivered", "mxscreen-burst-known", "haproxy-burst", None, None,
     "known clients (PASS OLD)"),
    ("burst", "refused", "mxscreen-burst-known", "haproxy-burst", None, None, ""),
    ("burst", "delivery_p50", "mxscreen-burst-known", "haproxy-burst", None, None, ""),
    ("burst", "delivery_p99", "mxscreen-burst-known", "haproxy-burst", 1.0, "le",
     "p99 <= HAProxy's, no greet wait"),
]


def fmt(v):
    if v is None:
        return "-"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--machine", default="")
    ap.add_argument("--quick", default="0")
    ap.add_argument("raw")
    ap.add_argument("out_json")
    ap.add_argument("out_svg")
    args = ap.parse_args()

    runs = [json.loads(line) for line in open(args.raw) if line.strip()]
    by = {}
    for r in runs:
        by.setdefault((r.get("case"), r["label"]), []).append(r)

    rows = []
    for case, metric, mine, peer, target, sense, note in ROWS:
        name, fn = METRICS[metric]
        a = median([fn(r) for r in by.get((case, mine), [])])
        b = median([fn(r) for r in by.get((case, peer), [])])
        if a is None and b is None:
            continue
        ratio = a / b if a is not None and b not in (None, 0) else None
        ok = None
        if target is not None and ratio is not None:
            ok = ratio <= target if sense == "le" else ratio >= target
        if case.startswith("hold") and metric == "rss_per_conn" and a is not None:
            ok = a <= 1.0
        if metric == "refused" and case == "burst" and a is not None:
            ok = a == 0
        rows.append({"case": case, "metric": name, "mxscreen_label": mine, "peer_label": peer,
                     "mxscreen": a, "peer": b, "ratio": ratio, "target": target,
                     "sense": sense, "note": note, "met": ok,
                     "rounds": len(by.get((case, mine), []))})

    loadgen_share = {}
    for r in runs:
        c = r.get("case")
        loadgen_share[c] = max(loadgen_share.get(c, 0), r.get("loadgen_cpu_share", 0))
    errors = {}
    for r in runs:
        if r.get("errors_total"):
            errors[f'{r.get("case")}/{r["label"]}'] = errors.get(f'{r.get("case")}/{r["label"]}', 0) + r["errors_total"]

    head = f'{"case":<10} {"metric":<28} {"mxscreen":>10} {"peer":>10} {"peer is":<16} {"ratio":>6}  target'
    lines = [head, "-" * len(head)]
    for row in rows:
        verdict = {True: "MET", False: "MISSED", None: ""}[row["met"]]
        lines.append(f'{row["case"]:<10} {row["metric"]:<28} {fmt(row["mxscreen"]):>10} '
                     f'{fmt(row["peer"]):>10} {row["peer_label"]:<16} {fmt(row["ratio"]):>6}  '
                     f'{row["note"]} {verdict}'.rstrip())
    lines.append("")
    lines.append("generator CPU share (max per case, 1.00 = one core): " +
                 ", ".join(f"{k} {v:.2f}" for k, v in sorted(loadgen_share.items())))
    if errors:
        lines.append("client-side errors: " + ", ".join(f"{k} {v}" for k, v in sorted(errors.items())))
    print("\n".join(lines))

    result = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "machine": args.machine, "quick": args.quick == "1", "rows": rows,
              "loadgen_cpu_share": loadgen_share, "errors": errors, "runs": runs}
    with open(args.out_json, "w") as f:
        json.dump(result, f, indent=1)
    with open(args.out_svg, "w") as f:
        f.write(chart.render(rows, args.machine, result["date"]))
    print(f"\nwrote {args.out_json} and {args.out_svg}", file=sys.stderr)


if __name__ == "__main__":
    main()
