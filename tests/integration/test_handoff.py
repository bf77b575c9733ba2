"""The spine's handoff and splice: mail through mxscreen reaches a real Postfix with the client's
own address (PROXY v1, PROXY v2, XCLIENT), a 10 MB message arrives intact, and a backend that is
down, silent or full costs the client a 421, never a hang, while mxscreen stays up.

Only connection tests are on (harness.connection_tests_only), so the handoff is right after the
greet wait and the client talks to Postfix itself once it has mxscreen's final 220.
"""

import hashlib
import os
import re
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import connection_tests_only as spine  # noqa: E402

CLIENT = "127.0.0.5"


def marked_message(marker):
    """A small message whose Message-ID carries marker, so Postfix's log names its queue id."""
    return (f"From: <sender@example.org>\r\nTo: <user@example.test>\r\n"
            f"Message-ID: <{marker}@example.org>\r\nSubject: {marker}\r\n\r\n"
            f"body {marker}\r\n").encode()


def send_through(port, marker, source=CLIENT, preamble=b""):
    """EHLO, MAIL, RCPT, DATA, QUIT through mxscreen with smtplib; returns the greeting."""
    smtp = harness.smtp_client(port, source=source, preamble=preamble)
    try:
        code, _ = smtp.ehlo()
        assert code == 250, code
        refused = smtp.sendmail("sender@example.org", ["user@example.test"],
                                marked_message(marker))
        assert not refused, refused
    finally:
        smtp.quit()


def assert_postfix_client(marker, offset, ip, service):
    """Postfix queued the message marked with marker and recorded ip as its client."""
    m = harness.wait_for_log(rf"postfix/cleanup\[\d+\]: (\w+): message-id=<{marker}@example\.org>",
                             offset)
    queue_id = m.group(1)
    harness.wait_for_log(rf"postfix/{service}/smtpd\[\d+\]: {queue_id}: "
                         rf"client=unknown\[{re.escape(ip)}\]", offset)
    delivered = harness.wait_delivered(marker)
    assert f"Subject: {marker}" in delivered


class HandoffToPostfixTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        harness.ensure_postfix()

    def deliver_via(self, handoff, backend, service):
        marker = harness.unique_marker()
        offset = harness.postfix_log_offset()
        with harness.Mxscreen(spine({"backend": {"address": backend, "handoff": handoff}})) as mx:
            send_through(mx.port, marker)
            assert_postfix_client(marker, offset, CLIENT, service)
            mx.wait_log(rf"PASS NEW \[{CLIENT}\]:\d+")
            mx.wait_log(rf"DISCONNECT \[{CLIENT}\]:\d+ outcome=spliced duration=\S+ "
                        r"in=[1-9]\d* out=[1-9]\d*")
            self.assertEqual(mx.metric("mxscreen_sessions_total", {"outcome": "spliced"}), 1)
            self.assertEqual(mx.metric("mxscreen_pregreet_total", {"verdict": "pass"}), 1)
            self.assertEqual(mx.metric("mxscreen_sessions_active"), 0)

    def test_proxy_v2_mail_reaches_postfix_with_client_address(self):
        self.deliver_via("proxy_v2", harness.BACKEND_PROXY, "proxy")

    def test_proxy_v1_mail_reaches_postfix_with_client_address(self):
        self.deliver_via("proxy_v1", harness.BACKEND_PROXY, "proxy")

    def test_xclient_mail_reaches_postfix_with_client_address(self):
        self.deliver_via("xclient", harness.BACKEND_XCLIENT, "xclient")

    def test_client_sees_our_banner_and_postfix_ehlo(self):
        # The backend's own 220 is swallowed: the client's first reply after our final 220 is
        # Postfix's answer to its EHLO.
        with harness.Mxscreen(spine({"greet": {"banner": "mx.test.example ESMTP spine"}})) as mx:
            with harness.raw_connect(mx.port, source=CLIENT) as sock:
                greeting = harness.read_reply(sock)
                self.assertEqual(greeting.raw, b"220-mx.test.example ESMTP spine\r\n"
                                               b"220 mx.test.example ESMTP spine\r\n")
                ehlo = harness.command(sock, "EHLO mail.example.org")
                self.assertEqual(ehlo.code, 250, ehlo.raw)
                self.assertIn("PIPELINING", ehlo.lines)
                self.assertEqual(harness.command(sock, "QUIT").code, 221)
                self.assertTrue(harness.wait_closed(sock, 5))


class SpliceTest(unittest.TestCase):
    def test_ten_megabyte_message_arrives_intact(self):
        line = b"".join(bytes([33 + (i * 7) % 90]) for i in range(76))
        body = bytearray()
        n = 0
        while len(body) < 10 * 1024 * 1024:
            # Every 50th line starts with a dot: dot-stuffing must survive the splice too.
            body += (b"." if n % 50 == 0 else b"") + line + b" %08d\r\n" % n
            n += 1
        message = b"Subject: big\r\nMessage-ID: <big@example.org>\r\n\r\n" + bytes(body)
        with harness.SmtpSink() as sink, harness.Mxscreen(spine({
                "backend": {"address": f"127.0.0.1:{sink.port}", "handoff": "none"}})) as mx:
            smtp = harness.smtp_client(mx.port, source=CLIENT, timeout=60)
            try:
                smtp.ehlo()
                self.assertFalse(smtp.sendmail("sender@example.org", ["user@example.test"],
                                               message))
            finally:
                smtp.quit()
            got = sink.wait_messages(1, timeout=30)[0]
            expected = message.replace(b"\r\n", b"\n")
            self.assertEqual(len(got.data), len(expected))
            self.assertEqual(hashlib.sha256(got.data).hexdigest(),
                             hashlib.sha256(expected).hexdigest())
            m = mx.wait_log(rf"DISCONNECT \[{CLIENT}\]:\d+ outcome=spliced .* in=(\d+) out=\d+")
            self.assertGreater(int(m.group(1)), len(message))


class BackendTroubleTest(unittest.TestCase):
    def test_backend_down_gets_421_then_next_client_served_when_back(self):
        port = harness.free_port()
        # smtp-sink answers XCLIENT with 250, not Postfix's 220: it takes handoff "none".
        with harness.Mxscreen(spine({"backend": {"address": f"127.0.0.1:{port}",
                                                 "handoff": "none"}})) as mx:
            with harness.raw_connect(mx.port, source=CLIENT) as sock:
                # Our 220- teaser, then the 421 in place of the final 220.
                reply = harness.read_reply(sock, timeout=5)
                self.assertTrue(reply.raw.startswith(b"220-"), reply.raw)
                self.assertTrue(reply.raw.endswith(
                    b"\r\n421 4.3.2 Service temporarily unavailable\r\n"), reply.raw)
                self.assertTrue(harness.wait_closed(sock, 5))
            mx.wait_log(rf"backend 127\.0\.0\.1:{port} unavailable: .*; 421 to \[{CLIENT}\]:\d+")
            mx.wait_log(rf"DISCONNECT \[{CLIENT}\]:\d+ outcome=backend_failure")
            self.assertEqual(mx.metric("mxscreen_backend_failures_total", {"step": "connect"}), 1)
            self.assertTrue(mx.running())
            with harness.SmtpSink(port=port) as sink:
                send_through(mx.port, "after-backend-returned")
                msgs = sink.wait_messages(1)
                self.assertIn(b"after-backend-returned", msgs[0].data)

    def test_silent_backend_times_out_with_421(self):
        silent = socket.socket()
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel completes connects; nobody ever sends a banner
        port = silent.getsockname()[1]
        try:
            with harness.Mxscreen(spine({"backend": {"address": f"127.0.0.1:{port}",
                                                     "banner_timeout": "500ms"}})) as mx:
                start = time.monotonic()
                with harness.raw_connect(mx.port, source=CLIENT) as sock:
                    reply = harness.read_reply(sock, timeout=5)
                    self.assertEqual(reply.code, 421)
                    self.assertEqual(reply.lines[-1], "4.3.2 Service temporarily unavailable")
                    self.assertTrue(harness.wait_closed(sock, 5))
                self.assertLess(time.monotonic() - start, 4)
                mx.wait_log(rf"backend 127\.0\.0\.1:{port} unavailable: .*; 421 to "
                            rf"\[{CLIENT}\]:\d+")
                self.assertEqual(mx.metric("mxscreen_backend_failures_total",
                                           {"step": "banner"}), 1)
        finally:
            silent.close()

    def test_backend_max_sessions_reached_gets_421(self):
        # No queue (backend.queue_max = 0): refused at once (test_backend_queue for the queue).
        with harness.Mxscreen(spine({"backend": {"max_sessions": 1, "queue_max": 0}})) as mx:
            held = harness.smtp_client(mx.port, source=CLIENT)
            try:
                self.assertEqual(held.ehlo()[0], 250)  # spliced: holds the one backend slot
                with harness.raw_connect(mx.port, source="127.0.0.6") as sock:
                    reply = harness.read_reply(sock, timeout=5)
                    self.assertEqual(reply.code, 421, reply.raw)
                    self.assertTrue(reply.lines[-1].startswith("4.3.2 "), reply.raw)
                    self.assertTrue(harness.wait_closed(sock, 5))
                mx.wait_log(r"NOQUEUE: reject: CONNECT from \[127\.0\.0\.6\]:\d+: 421 4\.3\.2 "
                            r"backend queue full: backend\.max_sessions \(1\) reached")
                self.assertEqual(held.noop()[0], 250)  # the held session is unaffected
            finally:
                held.quit()
            harness.wait_until(lambda: mx.metric("mxscreen_sessions_active") == 0, 5,
                               what="sessions to end")
            send_through(mx.port, harness.unique_marker())  # the slot is free again


if __name__ == "__main__":
    unittest.main(verbosity=2)
