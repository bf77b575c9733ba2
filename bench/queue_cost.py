#!/usr/bin/env python3
"""What a client waiting in the backend queue costs against a held one (issue 15's goal).

Starts mxscreen (MXSCREEN_BIN, default build/mxscreen) in front of the test Postfix backend
(scripts/postfix-backend) with backend.max_sessions = 1, the slot taken by an allowlisted
client, then opens N clients from 127.0.18.1-250, 200 at a time:
  queued: each says EHLO, MAIL, RCPT after the greet wait (300 ms) and waits in the queue
          with its RCPT reply held (backend.queue_max default);
  held:   each sits in a 600 s greet wait (the bench's `hold` case, a held session);
  dialogue: each says EHLO and MAIL after the greet wait and waits in the dialogue (where the
          bench's burst has its clients between the greet wait and the queue).
Reports mxscreen's VmRSS growth per client once all N are in that state. Nothing is delivered.

    MXSCREEN_BIN=build/mxscreen python3 bench/queue_cost.py queued|held|dialogue [N=2000]
"""

import asyncio
import os
import resource
import sys
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
os.environ.setdefault("MXSCREEN_SOURCE_DIR", ROOT)
os.environ.setdefault("MXSCREEN_BIN", os.path.join(ROOT, "build", "mxscreen"))
import harness  # noqa: E402

HOLDER = "127.0.17.1"


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


async def reply(reader):
    while True:
        line = await reader.readline()
        if not line:
            raise EOFError("closed by mxscreen")
        if line[3:4] != b"-":
            return line


async def client(port, mode, i):
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, local_addr=(f"127.0.18.{1 + i % 250}", 0), limit=4096)
    if mode in ("queued", "dialogue"):
        await reply(reader)
        writer.write(b"EHLO mail%d.example.org\r\n" % i)
        await reply(reader)
        writer.write(b"MAIL FROM:<s%d@example.org> SIZE=100\r\n" % i)
        await reply(reader)
    if mode == "queued":
        writer.write(f"RCPT TO:<{harness.MAILBOX}>\r\n".encode())
        await writer.drain()
    return writer


async def run(mode, n):
    config = {"backend": {"max_sessions": 1}, "access": {"allow": [f"{HOLDER}/32"]},
              "limits": {"client_connection_count": 0}}
    if mode == "held":
        config["greet"] = {"wait": "600s"}
    with harness.Mxscreen(config, env=harness.RSS_ENV) as mx:
        mx.wait_log(r"offers \d+ EHLO keywords")
        harness.wait_until(lambda: harness.backend_connections(mx.proc.pid) == 0,
                           what="the EHLO probe's connection to end")
        holder = harness.raw_connect(mx.port, source=HOLDER)
        harness.read_reply(holder, timeout=10)
        before = rss_kib(mx.proc.pid)
        limit = asyncio.Semaphore(200)

        async def one(i):
            async with limit:
                return await client(mx.port, mode, i)

        writers = await asyncio.gather(*(one(i) for i in range(n)))
        if mode == "queued":
            name, want = "mxscreen_backend_queue_depth", n
        else:
            name, want = "mxscreen_sessions_active", n + 1
        deadline = time.monotonic() + 60
        while mx.metric(name, default=0) < want:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} never reached {want}")
            await asyncio.sleep(0.1)
        after = rss_kib(mx.proc.pid)
        print(f"{mode}: {n} clients, VmRSS {before} -> {after} KiB, "
              f"{(after - before) / n:.2f} KiB per client")
        for writer in writers:
            writer.close()
        holder.close()


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else "queued"
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    if mode not in ("queued", "held", "dialogue"):
        sys.exit("usage: bench/queue_cost.py queued|held|dialogue [N]")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, n + 200)), hard))
    harness.ensure_postfix()
    asyncio.run(run(mode, n))


if __name__ == "__main__":
    main()
