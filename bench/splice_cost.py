#!/usr/bin/env python3
"""What the XCLIENT mode's command reading costs against the raw splice of the PROXY modes.

Starts mxscreen (MXSCREEN_BIN, default build/mxscreen) in front of the test Postfix backends
(127.0.0.1:10025 proxy_v2, 127.0.0.1:10026 xclient; scripts/postfix-backend), with the
client allowlisted so it is spliced at connect, and sends over one connection per round:
MESSAGES messages of SIZE_MB each and SMALL small messages to user@example.test (the
test Maildir; the messages, marked in their Subject, are deleted afterwards).
Reports mxscreen's CPU time (/proc/PID/task/*/schedstat) and the wall time, per mode, A B A B.

    sudo python3 bench/splice_cost.py [--rounds 3] [--size-mb 5] [--messages 10] [--small 500]
"""

import argparse
import os
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "integration"))
import harness  # noqa: E402

MODES = {"proxy_v2": harness.BACKEND_PROXY, "xclient": harness.BACKEND_XCLIENT}


def cpu_seconds(pid):
    """CPU time of every thread of pid, in seconds (schedstat: nanoseconds)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
            total += int(f.read().split()[0])
    return total / 1e9


def expect(sock, code):
    reply = harness.read_reply(sock, timeout=120)
    if reply.code != code:
        raise RuntimeError(f"expected {code}, got {reply}")


def session(port, body, messages, small, small_body):
    with harness.raw_connect(port, source="127.0.0.7", timeout=120) as sock:
        expect(sock, 220)
        harness.send_line(sock, "EHLO bench.example.org")
        expect(sock, 250)
        for _ in range(messages):
            sock.sendall(b"MAIL FROM:<bench@example.org>\r\nRCPT TO:<user@example.test>\r\nDATA\r\n")
            expect(sock, 250)
            expect(sock, 250)
            expect(sock, 354)
            sock.sendall(body + b".\r\n")
            expect(sock, 250)
        msg = (b"MAIL FROM:<bench@example.org>\r\nRCPT TO:<user@example.test>\r\nDATA\r\n")
        for _ in range(small):
            sock.sendall(msg)
            expect(sock, 250)
            expect(sock, 250)
            expect(sock, 354)
            sock.sendall(small_body)
            expect(sock, 250)
        harness.send_line(sock, "QUIT")
        expect(sock, 221)


def remove_delivered(marker):
    """Deletes this run's messages from the test Maildir (after Postfix delivered them)."""
    time.sleep(2)  # delivery lags the 250; a leftover or two is harmless
    for sub in ("new", "cur", "tmp"):
        d = harness.MAILDIR / sub
        for p in (d.iterdir() if d.is_dir() else ()):
            try:
                with open(p, "rb") as f:
                    head = f.read(4096)
                if marker.encode() in head:
                    p.unlink()
            except FileNotFoundError:
                pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--size-mb", type=float, default=5)
    ap.add_argument("--messages", type=int, default=10)
    ap.add_argument("--small", type=int, default=500)
    args = ap.parse_args()
    line = b"X" * 76 + b"\r\n"
    marker = harness.unique_marker("splice-cost")
    body = (f"Subject: {marker}\r\n\r\n".encode() +
            line * int(args.size_mb * 1024 * 1024 / len(line)))
    results = {m: [] for m in MODES}
    for r in range(args.rounds):
        for mode, backend in MODES.items():
            config = {"backend": {"address": backend, "handoff": mode},
                      "access": {"allow": ["127.0.0.0/8"]},
                      "server": {"buffer_size": 65536}}
            with harness.Mxscreen(config) as mx:
                before = cpu_seconds(mx.proc.pid)
                start = time.monotonic()
                session(mx.port, body, args.messages, args.small,
                        f"Subject: {marker}\r\n\r\nhello\r\n.\r\n".encode())
                wall = time.monotonic() - start
                cpu = cpu_seconds(mx.proc.pid) - before
            results[mode].append((cpu, wall))
            remove_delivered(marker)
            print(f"round {r + 1} {mode:8s} mxscreen cpu {cpu:6.3f} s  wall {wall:6.2f} s",
                  flush=True)
    mb = args.size_mb * args.messages
    for mode, runs in results.items():
        cpu = min(c for c, _ in runs)
        wall = min(w for _, w in runs)
        print(f"{mode:8s} best of {args.rounds}: mxscreen cpu {cpu:.3f} s for {mb:.0f} MB + "
              f"{args.small} small messages ({1000 * cpu / mb:.2f} ms/MB incl. small), "
              f"wall {wall:.2f} s")


if __name__ == "__main__":
    main()
