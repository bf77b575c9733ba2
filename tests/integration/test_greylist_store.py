"""Greylisting, the verdict cache and the state store, end to end (issue 5).

What the user notices, with the real binary, the real Postfix backend and a real redis-server:
- LMDB: a client greylisted at RCPT (450 4.2.0), mxscreen killed with SIGKILL and restarted on
  the same state_dir: the triplet is still known (the retry is "early retry" or "passed", never
  "new"), the retry after the delay passes and the mail reaches the Maildir.
- Verdict cache on LMDB: a client that passed is PASS OLD next time and gets Postfix's own
  banner at once; still so after kill -9 and restart.
- Redis shared by two mxscreen instances: greylisted on A, passes on B after the delay (and is
  then PASS OLD on A); Redis stopped: mail keeps flowing with greylisting failing open, the
  outage is logged and counted; Redis restarted: sharing resumes without restarting mxscreen.
- Subnet grouping: a client of the same /24 completes another client's greylisting, a client of
  another /24 is new.
- Allowlist files (postgrey's whitelist_clients / whitelist_recipients): a listed client network
  or recipient is not greylisted (its first try is delivered, "GREYLIST allowlisted ... by ..."),
  others are; an entry added to the file takes effect on SIGHUP; a bad line is refused with
  file:line:col.

greylist.delay is 2 s. Retries are polled with a deadline; the test asserts that nothing passed
before the delay (the stored times are whole seconds, hence the 1 s tolerance).
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

RCPT = "user@example.test"
DELAY = 2.0
GREYLIST_450 = (f"4.2.0 <{RCPT}>: Recipient address rejected: "
                "Greylisted, please try again later")


def unique_sender():
    """A fresh sender (a fresh triplet): letters first in every word, so that greylisting's
    VERP rule (number-only words become '#') cannot merge two of them."""
    return f"gl.x{uuid.uuid4().hex}@example.org"


def attempt(port, source, sender, marker):
    return harness.rcpt_attempt(port, source, sender, marker)


def ml(pattern):
    """pattern compiled with re.MULTILINE, for assertRegex on a whole log ($ = end of line)."""
    return re.compile(pattern, re.MULTILINE)


def greylist_line(outcome, source, sender):
    return (rf"GREYLIST {re.escape(outcome)} \[{re.escape(source)}\]:\d+ "
            rf"from=<{re.escape(sender)}> to=<{re.escape(RCPT)}>(?: key=net:\S+)?")


def restart(mx):
    """SIGKILL mxscreen and start it again with the same config, state_dir and ports.
    Returns the log of the killed run (the new run's log starts empty)."""
    mx.kill()
    old_log = mx.log_text()
    mx.proc = None
    mx.start()
    return old_log


class _Base(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        harness.ensure_postfix()

    def greylisted_first(self, mx, port, source, sender):
        """First sight: 450 4.2.0 Greylisted and the GREYLIST new line. Returns its time."""
        t0 = time.monotonic()
        since = mx.log_offset()
        code, text = attempt(port, source, sender, "unused")
        self.assertEqual((code, text), (450, GREYLIST_450))
        mx.wait_log(greylist_line("new", source, sender) + r" retry in [12]s$", since=since)
        return t0

    def retry_until_passed(self, port, source, sender, marker, t0, timeout=10.0):
        """Retries every 0.3 s until RCPT is accepted; asserts every earlier try was the
        greylisting 450 and that the pass came no earlier than the delay. Returns the codes."""
        codes = []

        def passed():
            code, text = attempt(port, source, sender, marker)
            codes.append(code)
            if code == 250:
                return True
            self.assertEqual((code, text), (450, GREYLIST_450))
            time.sleep(0.3)  # pacing between retries, not synchronisation
            return False

        harness.wait_until(passed, timeout, interval=0, what=f"RCPT from {source} to pass")
        elapsed = time.monotonic() - t0
        self.assertGreaterEqual(elapsed, DELAY - 1.0, f"passed too early ({elapsed:.2f}s): {codes}")
        harness.wait_delivered(marker)
        return codes


def lmdb_config(cache=False):
    return {"greylist": {"enabled": True, "delay": "2s"},
            "cache": {"enabled": cache},
            "store": {"backend": "lmdb"}}


class LmdbGreylistTest(_Base):
    def test_greylist_record_survives_sigkill_and_retry_passes(self):
        with harness.Mxscreen(lmdb_config()) as mx:
            src, sender, marker = "127.0.0.21", unique_sender(), harness.unique_marker("gl-lmdb")
            t0 = self.greylisted_first(mx, mx.port, src, sender)
            self.assertEqual(mx.metric("mxscreen_greylist_total", {"outcome": "new"}), 1)
            self.assertTrue((mx.state_dir / "mxscreen.lmdb").exists(),
                            list(mx.state_dir.iterdir()))

            old_log = restart(mx)  # kill -9 right after the 450: no clean shutdown
            self.assertNotRegex(old_log, r"GREYLIST (passed|early retry)")

            codes = self.retry_until_passed(mx.port, src, sender, marker, t0)
            log = mx.log_text()
            # The triplet survived: after the restart it is never "new" again.
            self.assertNotRegex(log, r"GREYLIST new ", log)
            self.assertRegex(log, ml(greylist_line("passed", src, sender) + r"$"))
            self.assertRegex(log, rf"PASS NEW \[{re.escape(src)}\]:\d+")
            self.assertEqual(mx.metric("mxscreen_greylist_total", {"outcome": "passed"}), 1)
            self.assertIsNone(mx.metric("mxscreen_greylist_total", {"outcome": "new"}))
            early = len(re.findall(greylist_line("early retry", src, sender), log))
            self.assertEqual(early, len(codes) - 1, log)


class LmdbVerdictCacheTest(_Base):
    def pass_old_session(self, mx, src, sender):
        """A new connection: PASS OLD and Postfix's own banner at once; delivers a message."""
        marker = harness.unique_marker("cache-old")
        since = mx.log_offset()
        sock = harness.raw_connect(mx.port, source=src)
        try:
            banner = harness.read_reply(sock, timeout=5)
            self.assertEqual(banner.code, 220, banner)
            self.assertTrue(banner.raw.startswith(b"220 "), banner.raw)  # none of our "220-"
            self.assertRegex(banner.raw, rb"^220 \S+ ESMTP Postfix[^\r\n]*\r\n$")
            self.assertEqual(harness.command(sock, f"EHLO {harness.CLIENT_HELO}").code, 250)
            self.assertEqual(harness.command(sock, f"MAIL FROM:<{sender}>").code, 250)
            self.assertEqual(harness.command(sock, f"RCPT TO:<{RCPT}>").code, 250)
            self.assertEqual(harness.command(sock, "DATA").code, 354)
            sock.sendall(harness.marked_message(marker, sender) + b".\r\n")
            self.assertEqual(harness.read_reply(sock).code, 250)
            harness.command(sock, "QUIT")
        finally:
            sock.close()
        mx.wait_log(rf"PASS OLD \[{re.escape(src)}\]:\d+$", since=since)
        harness.wait_delivered(marker)
        self.assertNotRegex(mx.log_text()[since:], r"GREYLIST|PASS NEW")

    def test_pass_old_after_pass_and_after_sigkill(self):
        with harness.Mxscreen(lmdb_config(cache=True)) as mx:
            src, sender = "127.0.0.22", unique_sender()
            t0 = self.greylisted_first(mx, mx.port, src, sender)
            self.retry_until_passed(mx.port, src, sender, harness.unique_marker("cache-new"), t0)
            mx.wait_log(rf"PASS NEW \[{re.escape(src)}\]:\d+$")

            self.pass_old_session(mx, src, unique_sender())
            self.assertEqual(mx.metric("mxscreen_cache_total", {"result": "hit"}), 1)

            restart(mx)
            self.pass_old_session(mx, src, unique_sender())
            self.assertEqual(mx.metric("mxscreen_cache_total", {"result": "hit"}), 1)
            self.assertIsNone(mx.metric("mxscreen_cache_total", {"result": "miss"}))


@unittest.skipUnless(shutil.which("redis-server"), "redis-server not installed")
class RedisSharedTest(_Base):
    def test_two_instances_share_redis_and_survive_its_outage(self):
        redis = harness.RedisServer().start()
        self.addCleanup(redis.cleanup)
        config = {"greylist": {"enabled": True, "delay": "2s"},
                  "cache": {"enabled": True},
                  "store": {"backend": "redis",
                            "redis_url": f"redis://127.0.0.1:{redis.port}/0"}}
        with harness.Mxscreen(config) as a, harness.Mxscreen(config) as b:
            self.assertNotEqual(a.port, b.port)
            for mx in (a, b):
                mx.wait_log(rf"redis 127\.0\.0\.1:{redis.port} connected")

            # 1. Greylisted on A, passes on B after the delay; the verdict is shared too.
            src1, sender1 = "127.0.0.41", unique_sender()
            t0 = self.greylisted_first(a, a.port, src1, sender1)
            self.retry_until_passed(b.port, src1, sender1, harness.unique_marker("redis-b"), t0)
            b.wait_log(greylist_line("passed", src1, sender1) + r"$")
            self.assertNotRegex(b.log_text(), r"GREYLIST new ")
            self.assertRegex(b.log_text(), greylist_line("early retry", src1, sender1))
            since = a.log_offset()
            marker = harness.unique_marker("redis-a-old")
            self.assertEqual(attempt(a.port, src1, unique_sender(), marker)[0], 250)
            a.wait_log(rf"PASS OLD \[{re.escape(src1)}\]:\d+$", since=since)
            harness.wait_delivered(marker)

            # 2. Redis stopped: mail keeps flowing through A, greylisting and cache fail open.
            redis.stop()
            for mx in (a, b):
                mx.wait_log(rf"redis 127\.0\.0\.1:{redis.port} unreachable: .*; failing open$")
            src2, sender2 = "127.0.0.51", unique_sender()
            marker = harness.unique_marker("redis-down")
            since = a.log_offset()
            self.assertEqual(attempt(a.port, src2, sender2, marker), (250, "2.1.5 Ok"))
            harness.wait_delivered(marker)
            a.wait_log(rf"GREYLIST skipped for \[{re.escape(src2)}\]:\d+: state store "
                       r"unavailable; failing open$", since=since)
            a.wait_log(rf"PASS NEW \[{re.escape(src2)}\]:\d+$", since=since)
            self.assertGreaterEqual(
                a.metric("mxscreen_greylist_total", {"outcome": "store_unavailable"}, 0), 1)
            self.assertGreaterEqual(a.metric("mxscreen_cache_total", {"result": "unavailable"}, 0),
                                    1)
            self.assertGreaterEqual(
                a.metric("mxscreen_store_errors_total", {"engine": "redis"}, 0), 1)
            self.assertGreaterEqual(
                b.metric("mxscreen_store_errors_total", {"engine": "redis"}, 0), 1)

            # 3. Redis back on the same port (empty): both reconnect by themselves and share.
            redis.start()
            for mx in (a, b):
                mx.wait_log(rf"redis 127\.0\.0\.1:{redis.port} reachable again after [\d.]+s",
                            timeout=20)
            self.assertTrue(a.running() and b.running())
            src3, sender3 = "127.0.0.61", unique_sender()
            t0 = self.greylisted_first(b, b.port, src3, sender3)
            codes = self.retry_until_passed(a.port, src3, sender3,
                                            harness.unique_marker("redis-back"), t0)
            self.assertGreaterEqual(len(codes), 2, "expected an early retry on A first")
            log = a.log_text()
            self.assertRegex(log, greylist_line("early retry", src3, sender3))
            self.assertRegex(log, ml(greylist_line("passed", src3, sender3) + r"$"))
            self.assertNotRegex(log, greylist_line("new", src3, sender3))


class SubnetGroupingTest(_Base):
    def test_same_slash24_shares_the_triplet(self):
        with harness.Mxscreen({"greylist": {"enabled": True, "delay": "2s"}}) as mx:
            sender = unique_sender()
            t0 = self.greylisted_first(mx, mx.port, "127.0.0.31", sender)
            # Another /24, same sender and recipient: a triplet of its own.
            self.greylisted_first(mx, mx.port, "127.0.1.31", sender)
            codes = self.retry_until_passed(mx.port, "127.0.0.32", sender,
                                            harness.unique_marker("subnet"), t0)
            self.assertGreaterEqual(len(codes), 2, "expected an early retry from .32 first")
            log = mx.log_text()
            self.assertRegex(log, greylist_line("early retry", "127.0.0.32", sender))
            self.assertRegex(log, ml(greylist_line("passed", "127.0.0.32", sender) + r"$"))
            self.assertNotRegex(log, greylist_line("new", "127.0.0.32", sender))
            self.assertEqual(mx.metric("mxscreen_greylist_total", {"outcome": "new"}), 2)


class AllowlistFileTest(_Base):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="mxscreen-grey-allow-")
        self.addCleanup(shutil.rmtree, self.dir, True)

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_listed_clients_and_recipients_skip_greylisting_and_sighup_reloads(self):
        clients = self.write("clients", "# our partners\n127.0.3.0/24\n")
        cfg = {"greylist": {"enabled": True, "delay": "2s", "client_allowlist_file": clients}}
        with harness.Mxscreen(cfg) as mx:
            marker = harness.unique_marker("grey-allow")
            sender = unique_sender()
            self.assertEqual(attempt(mx.port, "127.0.3.5", sender, marker), (250, "2.1.5 Ok"))
            harness.wait_delivered(marker)
            mx.wait_log(greylist_line("allowlisted", "127.0.3.5", sender)
                        + r" by client_allowlist_file: 127\.0\.3\.0/24$")
            # Not listed: greylisted as usual.
            self.assertEqual(attempt(mx.port, "127.0.4.5", sender, "unused"),
                             (450, GREYLIST_450))
            # Listed from now on: the file is read again on SIGHUP.
            self.write("clients", "127.0.3.0/24\n127.0.4.5\n")
            mx.reload()
            harness.wait_until(lambda: mx.metric("mxscreen_reloads_total", {"result": "ok"}) == 1,
                               what="the reload")
            marker = harness.unique_marker("grey-allow-reload")
            self.assertEqual(attempt(mx.port, "127.0.4.5", sender, marker), (250, "2.1.5 Ok"))
            harness.wait_delivered(marker)

        recipients = self.write("recipients", "postmaster@\n# every address of the domain\n"
                                              "example.test\n")
        cfg = {"greylist": {"enabled": True, "delay": "2s", "recipient_allowlist_file": recipients}}
        with harness.Mxscreen(cfg) as mx:
            marker = harness.unique_marker("grey-allow-rcpt")
            sender = unique_sender()
            self.assertEqual(attempt(mx.port, "127.0.5.5", sender, marker), (250, "2.1.5 Ok"))
            harness.wait_delivered(marker)
            mx.wait_log(greylist_line("allowlisted", "127.0.5.5", sender)
                        + r" by recipient_allowlist_file: example\.test$")

    def test_bad_line_is_refused_with_its_place(self):
        path = self.write("clients", "127.0.3.0/24\n  not_a_network!\n/unclosed(/\n")
        code, output, config_path = harness.check_config(
            '[greylist]\nclient_allowlist_file = "' + path + '"\n')
        self.assertEqual(code, 2, output)
        self.assertIn(f"{path}:2:3: expected an address, a network, a domain or a /regex/, "
                      f'got "not_a_network!"', output)
        # RE2 names the fragment in error: the column points at it inside the slashes.
        self.assertRegex(output, rf"{re.escape(path)}:3:2: invalid regex /unclosed\(/: missing \)")


if __name__ == "__main__":
    unittest.main()
