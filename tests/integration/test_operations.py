"""Running mxscreen: SIGHUP reload (a bad config refused and the old one kept, a good one applied
to new sessions), a client that resets mid-splice, SIGTERM drain, --check-config and --version.
smtp-sink is the backend here (handoff "none"): these tests are about mxscreen, not Postfix.
"""

import os
import re
import socket
import struct
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import connection_tests_only as spine  # noqa: E402


def sink_config(sink, **sections):
    return spine({"backend": {"address": f"127.0.0.1:{sink.port}", "handoff": "none"},
                  **sections})


def start_transaction(port, source):
    """A spliced raw session after EHLO, MAIL and RCPT (Postfix or the sink answered them)."""
    sock = harness.raw_connect(port, source=source)
    harness.read_reply(sock)
    assert harness.command(sock, "EHLO mail.example.org").code == 250
    assert harness.command(sock, "MAIL FROM:<sender@example.org>").code == 250
    assert harness.command(sock, "RCPT TO:<user@example.test>").code == 250
    return sock


def finish_transaction(sock, marker):
    assert harness.command(sock, "DATA").code == 354
    reply = harness.command(sock, f"Subject: {marker}\r\n\r\nbody {marker}\r\n.")
    assert reply.code == 250, reply.raw
    assert harness.command(sock, "QUIT").code == 221
    sock.close()


def pregreet_session(port, source="127.0.0.5"):
    """Talks before the banner; returns (greeting reply, reply after it or the exception)."""
    with harness.raw_connect(port, source=source) as sock:
        sock.sendall(b"EHLO early.example.org\r\n")
        greeting = harness.read_reply(sock)
        try:
            return greeting, harness.read_reply(sock, timeout=5)
        except (ConnectionError, socket.timeout, ValueError) as e:
            return greeting, e


class ReloadTest(unittest.TestCase):
    def test_broken_config_is_refused_and_the_old_one_kept(self):
        with harness.SmtpSink() as sink, harness.Mxscreen(sink_config(
                sink, greet={"action": "drop", "banner": "old.example ESMTP"})) as mx:
            good = mx.config_path.read_text()
            mx.config_path.write_text(good + '\n[greet]\nwait = "soon"\n')
            mx.reload()
            mx.wait_log(rf"reload of {re.escape(str(mx.config_path))} refused; keeping the "
                        r"running configuration")
            mx.wait_log(rf"{re.escape(str(mx.config_path))}:\d+:\d+: ")
            self.assertEqual(mx.metric("mxscreen_reloads_total", {"result": "refused"}), 1)
            self.assertTrue(mx.running())
            # Still serving, still with the old settings.
            greeting, after = pregreet_session(mx.port)
            self.assertEqual(greeting.raw, b"220-old.example ESMTP\r\n521 5.5.1 Protocol error\r\n")
            with harness.smtp_client(mx.port, source="127.0.0.6") as smtp:
                self.assertEqual(smtp.ehlo()[0], 250)

    def test_changed_config_applies_to_new_sessions(self):
        with harness.SmtpSink() as sink, harness.Mxscreen(sink_config(
                sink, greet={"action": "drop", "banner": "old.example ESMTP"})) as mx:
            held = start_transaction(mx.port, "127.0.0.6")
            text = mx.config_path.read_text()
            new = (text.replace('action = "drop"', 'action = "ignore"')
                   .replace("old.example", "new.example"))
            self.assertNotEqual(new, text)
            mx.config_path.write_text(new)
            since = mx.log_offset()
            mx.reload()
            mx.wait_log(r"reloaded .*; new sessions use the new configuration", since=since)
            self.assertEqual(mx.metric("mxscreen_reloads_total", {"result": "ok"}), 1)
            greeting, after = pregreet_session(mx.port)
            self.assertEqual(greeting.raw, b"220-new.example ESMTP\r\n220 new.example ESMTP\r\n")
            self.assertEqual(getattr(after, "code", after), 250)  # the early EHLO, answered
            # The session spliced before the reload carries on.
            finish_transaction(held, "held-across-reload")
            msgs = sink.wait_messages(1)
            self.assertIn(b"held-across-reload", msgs[0].data)


class ResetMidSpliceTest(unittest.TestCase):
    def test_client_reset_mid_splice_affects_no_one_else(self):
        with harness.SmtpSink() as sink, harness.Mxscreen(sink_config(sink)) as mx:
            other = start_transaction(mx.port, "127.0.0.6")
            victim = start_transaction(mx.port, "127.0.0.5")
            self.assertEqual(harness.command(victim, "DATA").code, 354)
            victim.sendall(b"Subject: never-delivered\r\n\r\n" + b"x" * 100000 + b"\r\n")
            victim.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            victim.close()  # RST
            mx.wait_log(r"DISCONNECT \[127\.0\.0\.5\]:\d+ outcome=client_reset")
            finish_transaction(other, "survivor")
            mx.wait_log(r"DISCONNECT \[127\.0\.0\.6\]:\d+ outcome=spliced")
            msgs = sink.wait_messages(1)
            self.assertEqual(len(msgs), 1)
            self.assertIn(b"survivor", msgs[0].data)
            harness.wait_until(lambda: mx.metric("mxscreen_sessions_active") == 0, 5,
                               what="all sessions to end")
            with harness.smtp_client(mx.port, source="127.0.0.7") as smtp:
                self.assertEqual(smtp.ehlo()[0], 250)

    def test_half_close_is_passed_on(self):
        # The client sends its last commands and shuts down its sending side: the replies
        # still come back, then the backend's close reaches the client.
        with harness.SmtpSink() as sink, harness.Mxscreen(sink_config(sink)) as mx:
            with harness.raw_connect(mx.port, source="127.0.0.5") as sock:
                self.assertEqual(harness.read_reply(sock).code, 220)
                sock.sendall(b"EHLO mail.example.org\r\nQUIT\r\n")
                sock.shutdown(socket.SHUT_WR)
                self.assertEqual(harness.read_reply(sock).code, 250)
                self.assertEqual(harness.read_reply(sock).code, 221)
                self.assertTrue(harness.wait_closed(sock, 5))
            mx.wait_log(r"DISCONNECT \[127\.0\.0\.5\]:\d+ outcome=spliced .* in=[1-9]")


class DrainTest(unittest.TestCase):
    def test_sigterm_lets_a_spliced_session_finish_and_exits_0(self):
        with harness.SmtpSink() as sink, harness.Mxscreen(sink_config(
                sink, access={"allow": ["127.0.0.8/32"]}, greet={"wait": "10s"})) as mx:
            spliced = start_transaction(mx.port, "127.0.0.8")  # allowlisted: no greet wait
            waiting = harness.raw_connect(mx.port, source="127.0.0.5")
            with waiting:
                self.assertTrue(harness.read_line(waiting, 3).startswith(b"220-"))
                mx.proc.send_signal(15)
                mx.wait_log(r"stopping: no new connections")
                # A session still in the greet test is told to come back later.
                reply = harness.read_reply(waiting, timeout=5)
                self.assertEqual(reply.raw, b"421 4.3.2 Service shutting down\r\n")
            harness.wait_until(lambda: not harness.is_listening(mx.port), 5,
                               what="the listener to close")
            self.assertIsNone(mx.proc.poll())
            finish_transaction(spliced, "finished-while-draining")
            self.assertEqual(mx.proc.wait(10), 0)
            self.assertIn(b"finished-while-draining", sink.wait_messages(1)[0].data)
            mx.wait_log(r"DISCONNECT \[127\.0\.0\.8\]:\d+ outcome=spliced")

    def test_drain_timeout_closes_idle_sessions_and_exits_0(self):
        with harness.SmtpSink() as sink, harness.Mxscreen(sink_config(
                sink, server={"drain_timeout": "1s"})) as mx:
            idle = start_transaction(mx.port, "127.0.0.5")
            with idle:
                start = time.monotonic()
                mx.proc.send_signal(15)
                self.assertEqual(mx.proc.wait(10), 0)
                self.assertLess(time.monotonic() - start, 5)
                self.assertTrue(harness.wait_closed(idle, 5))
            self.assertRegex(mx.log_text(), r"drain timeout: closing 1")


class CommandLineTest(unittest.TestCase):
    BAD = ('[server]\n'                       # 1
           'max_sessions = "many"\n'          # 2
           '[greet]\n'                        # 3
           'wait = "6 parsecs"\n'             # 4
           'colour = "blue"\n'                # 5
           '[[listen]]\n'                     # 6
           'address = "999.1.2.3:25"\n')      # 7

    def assert_positions(self, output, path):
        found = re.findall(rf"^{re.escape(path)}:(\d+):(\d+): (.+)$", output, re.MULTILINE)
        self.assertEqual(sorted({int(line) for line, _, _ in found}), [2, 4, 5, 7], output)
        self.assertTrue(all(int(col) >= 1 for _, col, _ in found), output)

    def test_check_config_reports_every_problem_with_its_position(self):
        code, output, path = harness.check_config(self.BAD)
        self.assertEqual(code, 2, output)
        self.assert_positions(output, path)

    def test_starting_with_a_bad_config_exits_2(self):
        path = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"mxscreen-bad-{os.getpid()}.toml")
        with open(path, "w") as f:
            f.write(self.BAD)
        try:
            r = subprocess.run([harness.mxscreen_binary(), "--config", path],
                               capture_output=True, text=True, timeout=10)
        finally:
            os.unlink(path)
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assert_positions(r.stdout + r.stderr, path)

    def test_example_config_loads(self):
        example = harness.SOURCE_DIR / "config.toml.example"
        code, output, _ = harness.check_config(example.read_text())
        self.assertEqual(code, 0, output)

    def test_version_and_bad_arguments(self):
        r = subprocess.run([harness.mxscreen_binary(), "--version"], capture_output=True,
                           text=True, timeout=10)
        self.assertEqual(r.returncode, 0)
        self.assertRegex(r.stdout + r.stderr, r"^mxscreen \d+\.\d+\.\d+")
        r = subprocess.run([harness.mxscreen_binary(), "--no-such-option"], capture_output=True,
                           text=True, timeout=10)
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
