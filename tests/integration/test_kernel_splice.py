"""Zero-copy splicing (server.kernel_splice = true): after the handoff, a plain session's bytes
are moved by the kernel with splice(2), with what the copy path gives.

- Off by default: with the default config a message body is copied, never spliced.

- A 10 MB message through the splice(2) path arrives intact at smtp-sink, and the byte counts
  in the DISCONNECT line are those of the copy path (kernel_splice = false) for the same
  session.
- A short session (a 1 KB message) stays on the copy path: splice(2) starts only once 64 KiB
  have gone one way (two pipes per session cost more than copying a few replies).
- Half-close: a client that sends its commands and shuts its sending side still reads every
  reply from the real Postfix, and the session ends as spliced.
- The idle timeout (smtp.idle_timeout) still closes a silent spliced session.
- XCLIENT handoff (its commands are read) and STARTTLS sessions (decrypted by mxscreen) stay
  on the copy path and still deliver.

Client source addresses: 127.0.9.70-127.0.9.79.
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

CLIENT = "127.0.9.70"
SPLICE = {"server": {"kernel_splice": True}}


def big_message(size=10 * 1024 * 1024):
    line = b"".join(bytes([33 + (i * 7) % 90]) for i in range(76))
    body = bytearray()
    n = 0
    while len(body) < size:
        body += (b"." if n % 50 == 0 else b"") + line + b" %08d\r\n" % n  # dot-stuffing too
        n += 1
    return b"Subject: big\r\nMessage-ID: <big@example.org>\r\n\r\n" + bytes(body)


def spliced(mx, result="spliced"):
    return harness.metric_sum(mx, "mxscreen_kernel_splice_total", {"result": result})


def send_bulk(sock):
    """After the greeting: one 200 KB message to the real Postfix over `sock`."""
    sock.sendall(b"EHLO mail.example.org\r\n")
    assert harness.read_reply(sock).code == 250
    for line, code in ((b"MAIL FROM:<bulk@example.org>", 250),
                       (f"RCPT TO:<{harness.MAILBOX}>".encode(), 250), (b"DATA", 354)):
        sock.sendall(line + b"\r\n")
        reply = harness.read_reply(sock)
        assert reply.code == code, (line, reply)
    lines = b"".join(b"%08d " % i + b"z" * 70 + b"\r\n" for i in range(2600))
    sock.sendall(b"Subject: bulk\r\n\r\n" + lines + b".\r\n")
    reply = harness.read_reply(sock, timeout=30)
    assert reply.code == 250, reply


def bulk_then_splice(mx, sock):
    """send_bulk, then the session is on the splice(2) path (it moves there once 64 KiB have
    gone one way)."""
    send_bulk(sock)
    harness.wait_until(lambda: spliced(mx) == 1, what="the splice(2) path")


class KernelSpliceTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        harness.ensure_postfix()

    def send_big(self, kernel_splice, source):
        message = big_message()
        with harness.SmtpSink() as sink, harness.Mxscreen(spine({
                "server": {"kernel_splice": kernel_splice},
                "backend": {"address": f"127.0.0.1:{sink.port}", "handoff": "none"}})) as mx:
            smtp = harness.smtp_client(mx.port, source=source, timeout=60)
            try:
                smtp.ehlo()
                self.assertFalse(smtp.sendmail("sender@example.org", ["user@example.test"],
                                               message))
            finally:
                smtp.quit()
            got = sink.wait_messages(1, timeout=30)[0]
            expected = message.replace(b"\r\n", b"\n")
            self.assertEqual(hashlib.sha256(got.data).hexdigest(),
                             hashlib.sha256(expected).hexdigest())
            m = mx.wait_log(rf"DISCONNECT \[{re.escape(source)}\]:\d+ outcome=spliced .* "
                            r"in=(\d+) out=(\d+)")
            self.assertEqual(spliced(mx), 1 if kernel_splice else 0)
            self.assertEqual(spliced(mx, "fallback"), 0)
            self.assertEqual(
                harness.metric_sum(mx, "mxscreen_spliced_bytes_total", {"direction": "in"}),
                int(m.group(1)))
            return int(m.group(1)), int(m.group(2))

    def test_ten_megabytes_through_splice_intact_with_the_copy_paths_byte_counts(self):
        kernel = self.send_big(True, CLIENT)
        copied = self.send_big(False, "127.0.9.71")
        self.assertGreater(kernel[0], 10 * 1024 * 1024)
        self.assertEqual(kernel, copied)

    def test_half_close_reaches_postfix_and_every_reply_comes_back(self):
        with harness.Mxscreen(spine(SPLICE)) as mx:
            with harness.raw_connect(mx.port, source="127.0.9.72") as sock:
                greeting = harness.read_reply(sock)
                self.assertEqual(greeting.code, 220)
                bulk_then_splice(mx, sock)
                # Pipelined commands, then our FIN: Postfix must still see and answer them all.
                sock.sendall(b"RSET\r\nNOOP\r\nQUIT\r\n")
                sock.shutdown(socket.SHUT_WR)
                data, how = harness.read_until_closed(sock, timeout=10)
            self.assertEqual(how, "eof", data)
            codes = re.findall(rb"^(\d{3}) ", data, re.MULTILINE)
            self.assertEqual(codes, [b"250", b"250", b"221"], data)
            mx.wait_log(r"DISCONNECT \[127\.0\.9\.72\]:\d+ outcome=spliced ")

    def test_idle_timeout_closes_a_silent_spliced_session(self):
        with harness.Mxscreen(spine({**SPLICE, "smtp": {"idle_timeout": "1s"}})) as mx:
            with harness.raw_connect(mx.port, source="127.0.9.73") as sock:
                self.assertEqual(harness.read_reply(sock).code, 220)
                bulk_then_splice(mx, sock)
                start = time.monotonic()
                self.assertTrue(harness.wait_closed(sock, 10))
                self.assertLess(time.monotonic() - start, 5)
            mx.wait_log(r"DISCONNECT \[127\.0\.9\.73\]:\d+ outcome=idle_timeout ")

    def test_a_short_session_stays_on_the_copy_path(self):
        marker = harness.unique_marker("splice-short")
        with harness.Mxscreen(spine(SPLICE)) as mx:
            self.assertEqual(harness.rcpt_attempt(mx.port, "127.0.9.75", "x@example.org",
                                                  marker), (250, "2.1.5 Ok"))
            harness.wait_delivered(marker)
            mx.wait_log(r"DISCONNECT \[127\.0\.9\.75\]:\d+ outcome=spliced ")
            self.assertEqual(spliced(mx) + spliced(mx, "fallback") + spliced(mx, "no_files"), 0)

    def test_xclient_handoff_stays_on_the_copy_path(self):
        marker = harness.unique_marker("splice-xclient")
        with harness.Mxscreen(spine({**SPLICE, "backend": {"address": harness.BACKEND_XCLIENT,
                                                            "handoff": "xclient"}})) as mx:
            self.assertEqual(harness.rcpt_attempt(mx.port, "127.0.9.74", "x@example.org",
                                                  marker), (250, "2.1.5 Ok"))
            harness.wait_delivered(marker)
            mx.wait_log(r"DISCONNECT \[127\.0\.9\.74\]:\d+ outcome=spliced ")
            self.assertEqual(spliced(mx) + spliced(mx, "fallback"), 0)

    def test_the_default_config_copies_a_message_body(self):
        with harness.Mxscreen(spine({})) as mx:
            with harness.raw_connect(mx.port, source="127.0.9.76") as sock:
                self.assertEqual(harness.read_reply(sock).code, 220)
                send_bulk(sock)
                sock.sendall(b"QUIT\r\n")
                self.assertEqual(harness.read_reply(sock).code, 221)
            m = mx.wait_log(r"DISCONNECT \[127\.0\.9\.76\]:\d+ outcome=spliced .* in=(\d+)")
            self.assertGreater(int(m.group(1)), 200 * 1000)
            self.assertEqual(spliced(mx) + spliced(mx, "fallback") + spliced(mx, "no_files"), 0)

if __name__ == "__main__":
    unittest.main(verbosity=2)
