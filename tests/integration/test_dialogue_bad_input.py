"""Bad input to the pre-dialogue (issue 3): a 1 MB line, NUL bytes, 10,000 commands in one
write, clients that vanish while a reply is on its way. What a user notices: the right reply
(500 / 421), the session going on where it should, mxscreen's memory staying bounded, and
mxscreen serving the next client normally afterwards. Each test uses its own source address.
"""

import os
import re
import socket
import struct
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

HOST = "mx.badinput.example"


def rss_kib(pid):
    """VmRSS of a process from /proc/PID/status, in KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


class BadInputTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        harness.ensure_postfix()

    def start_mx(self, **sections):
        # RSS_ENV: RSS bounds hold under ASan too, with its quarantine of freed memory off.
        return harness.Mxscreen({"server": {"hostname": HOST}, **sections}, env=harness.RSS_ENV)

    def greeted(self, mx, client):
        sock = harness.raw_connect(mx.port, source=client)
        self.addCleanup(sock.close)
        reply = harness.read_reply(sock)
        self.assertEqual(reply.code, 220, reply.raw)
        return sock

    def assert_serves_mail(self, mx, client):
        """A well-behaved client still gets through the dialogue to Postfix's 250 at RCPT."""
        sock = self.greeted(mx, client)
        self.assertEqual(harness.command(sock, "EHLO mail.example.org").code, 250)
        self.assertEqual(harness.command(sock, "MAIL FROM:<a@example.org>").code, 250)
        self.assertEqual(harness.command(sock, "RCPT TO:<user@example.test>").raw,
                         b"250 2.1.5 Ok\r\n")  # Postfix's reply: the handoff worked
        self.assertEqual(harness.command(sock, "QUIT").code, 221)
        sock.close()
        mx.wait_log(rf"DISCONNECT \[{re.escape(client)}\]:\d+ outcome=spliced ")

    def wait_idle(self, mx):
        harness.wait_until(lambda: mx.metric("mxscreen_sessions_active") == 0, timeout=10,
                           what="mxscreen_sessions_active == 0")

    def test_one_megabyte_line_gets_500_and_the_session_goes_on(self):
        client = "127.0.0.161"
        with self.start_mx() as mx:
            sock = self.greeted(mx, client)
            before = rss_kib(mx.proc.pid)
            sock.sendall(b"EHLO " + b"x" * (1 << 20) + b"\r\n")
            self.assertEqual(harness.read_reply(sock, 15).raw,
                             b"500 5.5.2 Error: line too long\r\n")
            # Exactly one reply for the long line: the next one answers the next command.
            reply = harness.command(sock, "EHLO mail.example.org")
            self.assertEqual((reply.code, reply.lines[0]), (250, HOST))
            growth = rss_kib(mx.proc.pid) - before
            if harness.RSS_COMPARABLE:
                self.assertLess(growth, 20 * 1024, f"RSS grew {growth} KiB for one long line")
            self.assertEqual(harness.command(sock, "MAIL FROM:<a@example.org>").code, 250)
            self.assertEqual(harness.command(sock, "RCPT TO:<user@example.test>").raw,
                             b"250 2.1.5 Ok\r\n")
            harness.command(sock, "QUIT")
            self.assertTrue(mx.running())

    def test_many_long_lines_keep_memory_bounded(self):
        # Fifteen 1 MB lines on one connection (each counts against command_count_limit 20): the
        # framing discards them, it does not accumulate them.
        client = "127.0.0.162"
        with self.start_mx(errors={"soft_limit": 50, "hard_limit": 60}) as mx:
            sock = self.greeted(mx, client)
            before = rss_kib(mx.proc.pid)
            for _ in range(15):
                sock.sendall(b"NOOP " + b"y" * (1 << 20) + b"\r\n")
                self.assertEqual(harness.read_reply(sock, 15).code, 500)
            growth = rss_kib(mx.proc.pid) - before
            if harness.RSS_COMPARABLE:
                self.assertLess(growth, 20 * 1024, f"RSS grew {growth} KiB over 15 MB of input")
            self.assertEqual(harness.command(sock, "NOOP").code, 250)

    def test_nul_bytes_get_500_and_the_session_goes_on(self):
        client = "127.0.0.163"
        with self.start_mx() as mx:
            sock = self.greeted(mx, client)
            reply = harness.command(sock, b"EHLO mail\x00.example.org")
            self.assertEqual(reply.code, 500, reply.raw)
            self.assertTrue(reply.lines[0].startswith("5.5.2 "), reply.raw)
            reply = harness.command(sock, b"\x00\x00\x00\x00")
            self.assertEqual(reply.code, 500, reply.raw)
            self.assertEqual(harness.command(sock, "EHLO mail.example.org").code, 250)
            self.assertEqual(harness.command(sock, "QUIT").code, 221)
            mx.wait_log(rf"DISCONNECT \[{client}\]:\d+ ")

    def test_ten_thousand_pipelined_noops_end_at_the_command_count_limit(self):
        client = "127.0.0.164"
        with self.start_mx(smtp={"pipelining": "off"}) as mx:
            before = rss_kib(mx.proc.pid)
            sock = self.greeted(mx, client)
            sock.sendall(b"NOOP\r\n" * 10_000)
            got = [harness.read_reply(sock) for _ in range(20)]
            self.assertEqual({r.raw for r in got}, {b"250 2.0.0 Ok\r\n"})
            self.assertEqual(harness.read_reply(sock).raw,
                             f"421 4.7.0 {HOST} Error: too many commands\r\n".encode())
            self.assertTrue(harness.wait_closed(sock, 5), "connection left open after 421")
            mx.wait_log(rf"COMMAND COUNT LIMIT from \[{client}\]:\d+ after NOOP")
            self.wait_idle(mx)
            if harness.RSS_COMPARABLE:
                self.assertLess(rss_kib(mx.proc.pid) - before, 20 * 1024)
            self.assert_serves_mail(mx, "127.0.0.165")

    def test_client_that_never_reads_its_replies_cannot_grow_memory(self):
        # With command_count_limit raised, a client pipelines 250,000 EHLOs (5 MB) and never
        # reads: each ~200-byte EHLO reply is queued for it. mxscreen should stop reading the
        # client once its write queue holds server.buffer_size (back-pressure, as the splice
        # does), not answer everything into memory.
        client = "127.0.0.171"
        with self.start_mx(smtp={"pipelining": "off", "command_count_limit": 10_000_000}) as mx:
            sock = self.greeted(mx, client)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            before = rss_kib(mx.proc.pid)
            sender = threading.Thread(target=self._send_quietly,
                                      args=(sock, b"EHLO a.example.org\r\n" * 250_000))
            sender.start()
            try:
                # Watch for 5 s (unbounded, the flood is taken in well under 1 s).
                deadline = time.monotonic() + 5
                growth = 0
                while time.monotonic() < deadline and growth < 20 * 1024:
                    growth = rss_kib(mx.proc.pid) - before
                    time.sleep(0.05)
                if harness.RSS_COMPARABLE:
                    self.assertLess(growth, 20 * 1024, f"RSS grew {growth} KiB for one client")
            finally:
                sock.shutdown(socket.SHUT_RDWR)
                sender.join(10)

    @staticmethod
    def _send_quietly(sock, data):
        try:
            sock.sendall(data)
        except OSError:
            pass  # unblocked by the test's shutdown()

    def test_clients_vanishing_mid_reply_do_not_hurt_mxscreen(self):
        cfg = {"errors": {"sleep_time": "500ms", "soft_limit": 0}}
        with self.start_mx(**cfg) as mx:
            # 1. EHLO and gone (FIN) before the reply is written.
            sock = self.greeted(mx, "127.0.0.166")
            sock.sendall(b"EHLO gone.example.org\r\n")
            sock.close()
            # 2. EHLO and reset (RST, SO_LINGER 0) at once.
            sock = self.greeted(mx, "127.0.0.167")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.sendall(b"EHLO reset.example.org\r\n")
            sock.close()
            # 3. A bad command whose delayed error reply (error sleep) meets a closed socket.
            sock = self.greeted(mx, "127.0.0.168")
            sock.sendall(b"BOGUS\r\n")
            sock.close()
            # 4. Gone while mxscreen is handing off to Postfix (RCPT held, backend replay running).
            sock = self.greeted(mx, "127.0.0.169")
            self.assertEqual(harness.command(sock, "EHLO mail.example.org").code, 250)
            self.assertEqual(harness.command(sock, "MAIL FROM:<a@example.org>").code, 250)
            sock.sendall(b"RCPT TO:<user@example.test>\r\n")
            sock.close()
            for client in ("127.0.0.166", "127.0.0.167", "127.0.0.168", "127.0.0.169"):
                mx.wait_log(rf"(HANGUP .*|DISCONNECT )\[{re.escape(client)}\]:\d+")
            self.wait_idle(mx)
            self.assertTrue(mx.running())
            self.assertEqual(mx.metric("mxscreen_sessions_backend"), 0)
            self.assert_serves_mail(mx, "127.0.0.172")


if __name__ == "__main__":
    unittest.main()
