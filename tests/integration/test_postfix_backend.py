"""The Postfix backend on its own (no mxscreen): proves scripts/postfix-backend and the harness.

The tests' private instance (harness.POSTFIX_DIR): its PROXY port (harness.BACKEND_PROXY) takes
a PROXY header and logs the client it names; its XCLIENT port takes XCLIENT; mail to
user@example.test is delivered to the test Maildir; unknown@example.test is refused with 550.
"""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

PROXY_PORT = harness.BACKEND_PROXY_PORT
XCLIENT_PORT = harness.BACKEND_XCLIENT_PORT


class PostfixBackendTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        harness.ensure_postfix()

    def test_proxy_v1_session_delivers_and_logs_real_client(self):
        marker = harness.unique_marker()
        offset = harness.postfix_log_offset()
        with harness.smtp_client(PROXY_PORT, source="127.0.0.5",
                                 preamble=harness.proxy_v1_header("127.0.0.5")) as smtp:
            smtp.ehlo()
            smtp.sendmail("sender@example.org", ["user@example.test"],
                          f"Subject: {marker}\r\n\r\nbody {marker}\r\n".encode())
        harness.wait_for_log(r"client=unknown\[127\.0\.0\.5\]", offset)
        message = harness.wait_delivered(marker)
        self.assertIn(f"Subject: {marker}", message)

    def test_proxy_v2_header_is_accepted(self):
        offset = harness.postfix_log_offset()
        sock = harness.raw_connect(PROXY_PORT, source="127.0.0.7")
        with sock:
            sock.sendall(harness.proxy_v2_header("127.0.0.77", sport=4712))
            self.assertEqual(harness.read_reply(sock).code, 220)
            self.assertEqual(harness.command(sock, "EHLO mail.example.org").code, 250)
            self.assertEqual(harness.command(sock, "QUIT").code, 221)
        harness.wait_for_log(r"connect from unknown\[127\.0\.0\.77\]", offset)

    def test_unknown_recipient_gets_550(self):
        with harness.smtp_client(PROXY_PORT, source="127.0.0.5",
                                 preamble=harness.proxy_v1_header("127.0.0.5")) as smtp:
            smtp.ehlo()
            code, _ = smtp.mail("sender@example.org")
            self.assertEqual(code, 250)
            code, text = smtp.rcpt("unknown@example.test")
            self.assertEqual(code, 550, text)
            code, _ = smtp.rcpt("user@example.test")
            self.assertEqual(code, 250)
            smtp.rset()

    def test_xclient_session_delivers_and_logs_real_client(self):
        marker = harness.unique_marker()
        offset = harness.postfix_log_offset()
        sock = harness.raw_connect(XCLIENT_PORT, source="127.0.0.1")
        with sock:
            self.assertEqual(harness.read_reply(sock).code, 220)
            ehlo = harness.command(sock, "EHLO mxscreen.example.org")
            self.assertEqual(ehlo.code, 250)
            self.assertTrue(any(l.startswith("XCLIENT") for l in ehlo.lines), ehlo.lines)
            # XCLIENT resets the session: the reply is a new 220 greeting (Postfix XCLIENT_README).
            reply = harness.command(sock, "XCLIENT ADDR=127.0.0.6 PORT=4713 NAME=[UNAVAILABLE] "
                                          "HELO=mail.example.org")
            self.assertEqual(reply.code, 220, reply.raw)
            self.assertEqual(harness.command(sock, "EHLO mail.example.org").code, 250)
            self.assertEqual(harness.command(sock, "MAIL FROM:<sender@example.org>").code, 250)
            self.assertEqual(harness.command(sock, "RCPT TO:<user@example.test>").code, 250)
            self.assertEqual(harness.command(sock, "DATA").code, 354)
            reply = harness.command(sock, f"Subject: {marker}\r\n\r\nbody\r\n.")
            self.assertEqual(reply.code, 250, reply.raw)
            self.assertEqual(harness.command(sock, "QUIT").code, 221)
        harness.wait_for_log(r"client=unknown\[127\.0\.0\.6\]", offset)
        harness.wait_delivered(marker)


if __name__ == "__main__":
    unittest.main(verbosity=2)
