"""server.workers = 2: two event loops on SO_REUSEPORT sockets behave as one mxscreen (issue 8).

What the user notices, with the real binary and the real Postfix backend:
- Two worker threads are visible (/proc/PID/task/*/comm "mxscreen" and "mxscreen-w1"); 40
  concurrent clients are spread over both (mxscreen_worker_sessions_total{worker}) and every
  message reaches the Maildir.
- Greylisting is one table for both workers, on the memory store (one engine behind a lock),
  on LMDB (one environment, a store per worker) and on Redis (a connection per worker): eight
  triplets greylisted once each, and every retry after the delay passes, whichever worker
  takes it.
- limits.client_connection_count and server.max_sessions count across workers: with a limit
  of 2 (or 4), exactly 2 (or 4) of 16 held connections stay, the rest get 421.
- SIGHUP reaches both workers (every new session afterwards has the new banner); SIGTERM
  stops both (exit 0, held clients closed).

Client source addresses: 127.0.5.1-127.0.5.60.
"""

import os
import re
import subprocess
import sys
import threading
import time
import unittest
import uuid
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

TWO = {"server": {"workers": 2}}


def two_workers(**sections):
    cfg = {"server": {"workers": 2}}
    for name, body in sections.items():
        cfg.setdefault(name, {}).update(body)
    return cfg


def thread_names(pid):
    return sorted(Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()
                  for tid in os.listdir(f"/proc/{pid}/task"))


def per_worker(mx):
    return {w: harness.metric_sum(mx, "mxscreen_worker_sessions_total", {"worker": w})
            for w in ("0", "1")}


def held_connections(mx, source, count):
    """count connections from source; returns (held sockets, refusal replies)."""
    held, refused = [], []
    for _ in range(count):
        sock = harness.raw_connect(mx.port, source)
        line = harness.read_line(sock)
        if line.startswith(b"220-"):
            held.append(sock)
        else:
            refused.append(line)
            sock.close()
    return held, refused


class WorkersTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        harness.ensure_postfix()

    def test_two_workers_share_the_load_and_every_message_arrives(self):
        with harness.Mxscreen(TWO) as mx:
            mx.wait_log(r"started with 2 workers")
            names = thread_names(mx.proc.pid)
            self.assertIn("mxscreen", names)
            self.assertIn("mxscreen-w1", names)

            markers = [harness.unique_marker("workers") for _ in range(40)]
            results = [None] * len(markers)

            def deliver(i):
                results[i] = harness.rcpt_attempt(mx.port, f"127.0.5.{i + 1}",
                                                  "sender@example.org", markers[i])

            threads = [threading.Thread(target=deliver, args=(i,)) for i in range(len(markers))]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            self.assertEqual([r[0] if r else None for r in results], [250] * len(markers))
            for marker in markers:
                harness.wait_delivered(marker)
            counts = per_worker(mx)
            self.assertEqual(sum(counts.values()), len(markers), counts)
            # The kernel hashes each connection to one socket: both get some of 40.
            self.assertGreater(counts["0"], 0, counts)
            self.assertGreater(counts["1"], 0, counts)
            harness.wait_until(lambda: mx.metric("mxscreen_sessions_active") == 0,
                               what="sessions_active back to 0")

    def greylisting_is_shared(self, store):
        """Eight triplets greylisted once each; every retry after the delay passes, whichever
        worker takes it (with a table per worker, a retry on the other one is "new" again)."""
        rcpt = harness.MAILBOX
        cfg = two_workers(greylist={"enabled": True, "delay": "1s"}, store=store)
        with harness.Mxscreen(cfg) as mx:
            triplets = [(f"127.0.5.{20 + i}", f"gw.x{uuid.uuid4().hex}@example.org")
                        for i in range(8)]
            for source, sender in triplets:
                code, _ = harness.rcpt_attempt(mx.port, source, sender, "unused")
                self.assertEqual(code, 450)
            # Retry after the delay (polled: the first retry may still be early).
            for source, sender in triplets:
                marker = harness.unique_marker("workers-grey")

                def passed(source=source, sender=sender, marker=marker):
                    code, text = harness.rcpt_attempt(mx.port, source, sender, marker)
                    if code != 250:
                        self.assertEqual(code, 450, text)
                        time.sleep(0.2)  # pacing between retries
                    return code == 250

                harness.wait_until(passed, 10, interval=0, what=f"{source} to pass greylisting")
                harness.wait_delivered(marker)
            log = mx.log_text()
            self.assertEqual(len(re.findall(r"GREYLIST new ", log)), len(triplets), log)
            self.assertEqual(len(re.findall(rf"GREYLIST passed .* to=<{re.escape(rcpt)}>", log)),
                             len(triplets))
            counts = per_worker(mx)
            self.assertGreater(min(counts.values()), 0, counts)

    def test_greylisting_on_the_memory_store_is_one_table_for_both_workers(self):
        self.greylisting_is_shared({"backend": "memory"})

    def test_greylisting_on_lmdb_is_one_file_for_both_workers(self):
        self.greylisting_is_shared({"backend": "lmdb"})

    def test_greylisting_on_redis_with_a_connection_per_worker(self):
        redis = harness.RedisServer().start()
        try:
            self.greylisting_is_shared({"backend": "redis",
                                        "redis_url": f"redis://127.0.0.1:{redis.port}/0"})
        finally:
            redis.cleanup()

    def limit_holds_across_workers(self, cfg, source, keep, refusal):
        """16 connections from source: exactly `keep` stay, the others get `refusal`. They are
        spread over both workers (all 16 on one: odds 1 in 32,768), so a count per worker
        would let more in."""
        with harness.Mxscreen(cfg) as mx:
            held, refused = held_connections(mx, source, 16)
            try:
                self.assertEqual(len(held), keep, refused)
                self.assertEqual(len(refused), 16 - keep)
                for line in refused:
                    self.assertTrue(line.startswith(refusal), line)
                self.assertEqual(mx.metric("mxscreen_sessions_active"), keep)
                self.assertGreater(min(per_worker(mx).values()), 0, per_worker(mx))
            finally:
                for sock in held:
                    sock.close()
            harness.wait_until(lambda: mx.metric("mxscreen_sessions_active") == 0,
                               what="sessions_active back to 0")

    def test_client_connection_count_is_counted_across_workers(self):
        cfg = two_workers(limits={"client_connection_count": 2}, greet={"wait": "6s"})
        self.limit_holds_across_workers(cfg, "127.0.5.40", 2, b"421 4.7.0")

    def test_max_sessions_is_counted_across_workers(self):
        cfg = two_workers(server={"max_sessions": 4, "stress_threshold": 1.0},
                          limits={"client_connection_count": 0}, greet={"wait": "6s"})
        self.limit_holds_across_workers(cfg, "127.0.5.41", 4, b"421")

    def test_a_second_instance_on_the_same_port_is_refused(self):
        # SO_REUSEPORT must not let another mxscreen silently take half of the connections.
        with harness.Mxscreen(TWO) as mx:
            config = mx.tmpdir / "second.toml"
            config.write_text(mx.config_path.read_text().replace(
                f"127.0.0.1:{mx.metrics_port}", f"127.0.0.1:{harness.free_port()}"))
            proc = subprocess.run([mx.binary, "--config", str(config)], capture_output=True,
                                  text=True, timeout=10)
            self.assertEqual(proc.returncode, 1, proc.stderr)
            self.assertRegex(proc.stderr, rf"cannot listen on 127\.0\.0\.1:{mx.port}: "
                                          r"address already in use")
            # The first one still has every connection.
            with harness.raw_connect(mx.port, "127.0.5.45") as sock:
                self.assertTrue(harness.read_line(sock).startswith(b"220-"))

    def banner(self, mx, source):
        with harness.raw_connect(mx.port, source) as sock:
            return harness.read_line(sock).decode()

    def test_sighup_reaches_both_workers_and_sigterm_stops_both(self):
        with harness.Mxscreen(two_workers(greet={"banner": "$hostname ESMTP before"})) as mx:
            self.assertIn("ESMTP before", self.banner(mx, "127.0.5.50"))
            text = mx.config_path.read_text().replace("ESMTP before", "ESMTP after")
            mx.config_path.write_text(text)
            since = mx.log_offset()
            mx.reload()
            mx.wait_log(r"reloaded ", since=since)
            # The other worker takes the new runtime from its inbox a moment later.
            harness.wait_until(lambda: all("ESMTP after" in self.banner(mx, "127.0.5.51")
                                           for _ in range(4)),
                               what="the new banner")
            banners = [self.banner(mx, f"127.0.5.{52 + i % 8}") for i in range(24)]
            self.assertTrue(all("ESMTP after" in b for b in banners), banners)
            self.assertGreater(min(per_worker(mx).values()), 0, per_worker(mx))

            held = [harness.raw_connect(mx.port, f"127.0.5.{52 + i}") for i in range(6)]
            try:
                for sock in held:
                    harness.read_line(sock)
                self.assertEqual(mx.stop(timeout=15), 0, mx.log_tail())
                for sock in held:
                    _, how = harness.read_until_closed(sock, 5)
                    self.assertIsNotNone(how)
            finally:
                for sock in held:
                    sock.close()
            self.assertRegex(mx.log_text(), r"stopped")


if __name__ == "__main__":
    unittest.main()
