"""The spine's greet test and bad input before the handoff: early talkers (drop and ignore), a
client that leaves during the wait, 100 KB of garbage, silent clients, and invalid PROXY headers
on a proxy_protocol listener. Each ends its own session cleanly and nothing else.
"""

import os
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import connection_tests_only as spine  # noqa: E402

CLIENT = "127.0.0.5"
BANNER = "mx.test.example ESMTP"


def deliver_raw(sock, marker):
    """MAIL, RCPT, DATA, QUIT on a socket that is already past EHLO."""
    assert harness.command(sock, "MAIL FROM:<sender@example.org>").code == 250
    assert harness.command(sock, "RCPT TO:<user@example.test>").code == 250
    assert harness.command(sock, "DATA").code == 354
    reply = harness.command(sock, f"Message-ID: <{marker}@example.org>\r\nSubject: {marker}\r\n"
                                  f"\r\nbody\r\n.")
    assert reply.code == 250, reply.raw
    assert harness.command(sock, "QUIT").code == 221




class GreetTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        harness.ensure_postfix()

    def test_teaser_then_final_banner_after_the_wait(self):
        with harness.Mxscreen(spine({"greet": {"banner": BANNER, "wait": "500ms"}})) as mx:
            with harness.raw_connect(mx.port, source=CLIENT) as sock:
                start = time.monotonic()
                first = harness.read_line(sock, 5)
                self.assertEqual(first, f"220-{BANNER}\r\n".encode())
                self.assertLess(time.monotonic() - start, 0.4)
                final = harness.read_line(sock, 5)
                self.assertEqual(final, f"220 {BANNER}\r\n".encode())
                self.assertGreaterEqual(time.monotonic() - start, 0.45)
                self.assertEqual(harness.command(sock, "QUIT").code, 221)
            mx.wait_log(rf"CONNECT from \[{CLIENT}\]:\d+ to \[127\.0\.0\.1\]:{mx.port}")
            mx.wait_log(rf"PASS NEW \[{CLIENT}\]:\d+")

    def test_pregreet_drop_gets_521_and_is_logged(self):
        with harness.Mxscreen(spine({"greet": {"action": "drop", "banner": BANNER}})) as mx:
            with harness.raw_connect(mx.port, source=CLIENT) as sock:
                sock.sendall(b"EHLO bot.example\r\n")
                data, closed = harness.read_until_closed(sock)
                self.assertTrue(closed)
                self.assertEqual(data, f"220-{BANNER}\r\n521 5.5.1 Protocol error\r\n".encode())
            mx.wait_log(rf"PREGREET 18 after \d+(\.\d+)?s? from \[{CLIENT}\]:\d+: "
                        r"EHLO bot\.example\\x0d\\x0a$")
            mx.wait_log(rf"DISCONNECT \[{CLIENT}\]:\d+ outcome=pregreet")
            self.assertEqual(mx.metric("mxscreen_pregreet_total", {"verdict": "drop"}), 1)
            self.assertIsNone(mx.metric("mxscreen_handoffs_total"))

    def test_pregreet_ignore_goes_through_and_postfix_answers_the_early_ehlo(self):
        marker = harness.unique_marker()
        offset = harness.postfix_log_offset()
        with harness.Mxscreen(spine({"greet": {"action": "ignore", "banner": BANNER}})) as mx:
            with harness.raw_connect(mx.port, source=CLIENT) as sock:
                sock.sendall(b"EHLO early.example.org\r\n")
                greeting = harness.read_reply(sock)
                self.assertEqual(greeting.raw, f"220-{BANNER}\r\n220 {BANNER}\r\n".encode())
                ehlo = harness.read_reply(sock)  # Postfix's reply to the replayed early EHLO
                self.assertEqual(ehlo.code, 250, ehlo.raw)
                self.assertIn("PIPELINING", ehlo.lines)
                deliver_raw(sock, marker)
            mx.wait_log(rf"PREGREET 24 after \S+ from \[{CLIENT}\]:\d+: "
                        r"EHLO early\.example\.org\\x0d\\x0a")
            mx.wait_log(rf"DISCONNECT \[{CLIENT}\]:\d+ outcome=spliced")
            self.assertEqual(mx.metric("mxscreen_pregreet_total", {"verdict": "ignore"}), 1)
        harness.wait_delivered(marker)
        harness.wait_for_log(r"postfix/proxy/smtpd\[\d+\]: \w+: client=unknown\[127\.0\.0\.5\]",
                             offset)

    def test_hangup_during_the_wait_is_logged(self):
        with harness.Mxscreen(spine({"greet": {"wait": "2s"}})) as mx:
            sock = harness.raw_connect(mx.port, source=CLIENT)
            self.assertTrue(harness.read_line(sock, 5).startswith(b"220-"))
            sock.close()
            mx.wait_log(rf"HANGUP after \S+ from \[{CLIENT}\]:\d+ in tests before SMTP handshake",
                        timeout=1.5)
            mx.wait_log(rf"DISCONNECT \[{CLIENT}\]:\d+ outcome=hangup")
            self.assertEqual(mx.metric("mxscreen_pregreet_total", {"verdict": "hangup"}), 1)
            self.assertEqual(mx.metric("mxscreen_sessions_active"), 0)


class BadInputTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        harness.ensure_postfix()

    def assert_still_serves(self, mx, source="127.0.0.6"):
        with harness.smtp_client(mx.port, source=source) as smtp:
            self.assertEqual(smtp.ehlo()[0], 250)

    def test_100k_of_garbage_before_the_banner_is_dropped(self):
        garbage = bytes((i * 131 + 7) % 256 for i in range(100 * 1024))
        with harness.Mxscreen(spine({"greet": {"action": "drop", "banner": BANNER}})) as mx:
            with harness.raw_connect(mx.port, source=CLIENT) as sock:
                try:
                    sock.sendall(garbage)
                except (ConnectionResetError, BrokenPipeError):
                    pass  # mxscreen may close before all 100 KB are sent
                data, closed = harness.read_until_closed(sock)
                self.assertTrue(closed)
                self.assertEqual(data, f"220-{BANNER}\r\n521 5.5.1 Protocol error\r\n".encode())
            m = mx.wait_log(rf"PREGREET (\d+) after \S+ from \[{CLIENT}\]:\d+: (.*)$")
            self.assertGreater(int(m.group(1)), 0)
            # Client text is escaped: the logged sample is printable ASCII only.
            self.assertRegex(m.group(2), r"^[\x20-\x7e]+$")
            self.assertLessEqual(len(m.group(0)), 1024)
            mx.wait_log(rf"DISCONNECT \[{CLIENT}\]:\d+ outcome=pregreet")
            self.assertEqual(mx.metric("mxscreen_pregreet_total", {"verdict": "drop"}), 1)
            self.assert_still_serves(mx)
            self.assertTrue(mx.running())

    def test_silent_clients_do_not_delay_the_next_one(self):
        # smtp-sink as the backend: Postfix would spend seconds spawning 21 smtpd processes.
        with harness.SmtpSink() as sink, harness.Mxscreen(spine({
                "greet": {"wait": "300ms", "banner": BANNER},
                "backend": {"address": f"127.0.0.1:{sink.port}", "handoff": "none"}})) as mx:
            silent = [harness.raw_connect(mx.port, source=CLIENT) for _ in range(20)]
            try:
                start = time.monotonic()
                with harness.raw_connect(mx.port, source="127.0.0.6") as sock:
                    greeting = harness.read_reply(sock, timeout=3)
                    self.assertEqual(greeting.raw, f"220-{BANNER}\r\n220 {BANNER}\r\n".encode())
                    self.assertLess(time.monotonic() - start, 1.0)
                    self.assertEqual(harness.command(sock, "EHLO mail.example.org").code, 250)
                    self.assertEqual(harness.command(sock, "QUIT").code, 221)
                # The silent ones passed the greet test too and now sit spliced to the backend.
                for s in silent:
                    self.assertEqual(harness.read_reply(s, timeout=3).raw,
                                     f"220-{BANNER}\r\n220 {BANNER}\r\n".encode())
            finally:
                for s in silent:
                    s.close()
            harness.wait_until(lambda: mx.metric("mxscreen_sessions_active") == 0, 5,
                               what="all sessions to end")
            self.assertEqual(mx.metric("mxscreen_pregreet_total", {"verdict": "pass"}), 21)


class ProxyProtocolListenerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        harness.ensure_postfix()

    def test_invalid_header_closes_that_session_and_a_valid_one_delivers(self):
        bad_headers = [
            b"PROXY TCP4 not-an-address 127.0.0.1 1 25\r\n",
            b"EHLO bot.example\r\n",
            b"\r\n\r\n\x00\r\nQUIT\n\x99\x11\x00\x0c" + b"\x00" * 12,  # bad version nibble
        ]
        port = harness.free_port()
        config = spine({"listen": [{"address": f"127.0.0.1:{port}", "role": "mx",
                                    "proxy_protocol": True, "proxy_trusted": [CLIENT]}]})
        marker = harness.unique_marker()
        offset = harness.postfix_log_offset()
        with harness.Mxscreen(config) as mx:
            for i, header in enumerate(bad_headers, 1):
                with harness.raw_connect(port, source=CLIENT) as sock:
                    sock.sendall(header)
                    data, closed = harness.read_until_closed(sock)
                    self.assertTrue(closed, header)
                    self.assertEqual(data, b"", header)  # not a byte of SMTP to the balancer
                harness.wait_until(
                    lambda: mx.metric("mxscreen_proxy_header_errors_total") == i, 5,
                    what=f"{i} PROXY header error(s) counted")
            mx.wait_log(rf"invalid PROXY header from upstream \[{CLIENT}\]:\d+")
            header = harness.proxy_v2_header("127.0.0.66", sport=4711, dport=25)
            with harness.smtp_client(port, source=CLIENT, preamble=header) as smtp:
                smtp.ehlo()
                self.assertFalse(smtp.sendmail(
                    "sender@example.org", ["user@example.test"],
                    f"Message-ID: <{marker}@example.org>\r\nSubject: {marker}\r\n\r\nx\r\n"))
            mx.wait_log(r"PASS NEW \[127\.0\.0\.66\]:4711")
            m = harness.wait_for_log(
                rf"postfix/cleanup\[\d+\]: (\w+): message-id=<{marker}@example\.org>", offset)
            harness.wait_for_log(rf"{m.group(1)}: client=unknown\[127\.0\.0\.66\]", offset)
            harness.wait_delivered(marker)
            self.assertEqual(mx.metric("mxscreen_proxy_header_errors_total"), len(bad_headers))

    def test_header_in_pieces_and_early_talk_behind_the_header(self):
        port = harness.free_port()
        with harness.SmtpSink() as sink, harness.Mxscreen(spine({
                "listen": [{"address": f"127.0.0.1:{port}", "role": "mx",
                            "proxy_protocol": True, "proxy_trusted": [CLIENT]}],
                "greet": {"action": "drop", "banner": BANNER},
                "backend": {"address": f"127.0.0.1:{sink.port}", "handoff": "none"}})) as mx:
            # A PROXY v2 header that arrives a few bytes at a time is still one header.
            header = harness.proxy_v2_header("127.0.0.66", sport=1234)
            with harness.raw_connect(port, source=CLIENT) as sock:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                for i in range(0, len(header), 5):
                    sock.sendall(header[i:i + 5])
                    time.sleep(0.005)  # pacing the sender, not waiting for mxscreen
                self.assertEqual(harness.read_reply(sock).raw,
                                 f"220-{BANNER}\r\n220 {BANNER}\r\n".encode())
                self.assertEqual(harness.command(sock, "EHLO mail.example.org").code, 250)
            mx.wait_log(r"PASS NEW \[127\.0\.0\.66\]:1234")
            # Bytes right behind the header are the client's own: an early talker.
            with harness.raw_connect(port, source=CLIENT) as sock:
                sock.sendall(harness.proxy_v1_header("127.0.0.67", sport=2345) + b"EHLO bot\r\n")
                data, closed = harness.read_until_closed(sock)
                self.assertTrue(closed)
                self.assertEqual(data, f"220-{BANNER}\r\n521 5.5.1 Protocol error\r\n".encode())
            mx.wait_log(r"PREGREET 10 after \S+ from \[127\.0\.0\.67\]:2345: EHLO bot\\x0d\\x0a")
            self.assertIsNone(mx.metric("mxscreen_proxy_header_errors_total"))


if __name__ == "__main__":
    unittest.main(verbosity=2)
