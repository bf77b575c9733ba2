"""The pre-dialogue's deep tests, HELO/envelope checks, engine replies, error sleeps and limits
(issue 3), as a client and an admin reading the log see them.

A pipelining bot, an HTTP request, a bare-LF client and a non-FQDN HELO each get the configured
action (ignore / enforce / drop), its reply and its log line; with errors.sleep_time 1s,
soft_limit 1, hard_limit 3 a client sending bad commands sees the delay and gets 421 at the
third error. Each test uses its own 127.0.0.x source address.
"""

import os
import re
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

HOST = "mx.dialogue.example"  # server.hostname: appears in 421 replies


def config(**sections):
    return {"server": {"hostname": HOST}, **sections}


def replies(sock, n, timeout=10.0):
    return [harness.read_reply(sock, timeout) for _ in range(n)]


def blocked_550(client, test):
    return f"550 5.7.1 Service unavailable; client [{client}] blocked by the {test} test"


class DeepTestsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        harness.ensure_postfix()

    def greeted(self, mx, client):
        """A raw socket from client past mxscreen's whole greeting (220- teaser, final 220)."""
        sock = harness.raw_connect(mx.port, source=client)
        self.addCleanup(sock.close)
        reply = harness.read_reply(sock)
        self.assertTrue(reply.code == 220 and reply.raw.startswith(b"220-"), reply.raw)
        return sock

    def assert_reply(self, reply, code, text):
        self.assertEqual((reply.code, reply.lines[-1]), (code, text), reply.raw)

    def assert_dropped(self, sock):
        self.assert_reply(harness.read_reply(sock), 521, "5.5.1 Protocol error")
        self.assertTrue(harness.wait_closed(sock, 5), "connection left open after 521")

    def assert_no_handoff(self, mx):
        self.assertIn(mx.metric("mxscreen_handoffs_total", {"mode": "after_dialogue"}), (None, 0))

    # -- pipelining -----------------------------------------------------------------------------

    BOT = b"EHLO bot.example.org\r\nMAIL FROM:<spam@example.org>\r\nRCPT TO:<user@example.test>\r\n"

    def test_pipelining_bot_gets_550_at_every_rcpt_under_enforce(self):
        client = "127.0.0.141"
        with harness.Mxscreen(config()) as mx:
            sock = self.greeted(mx, client)
            sock.sendall(self.BOT)
            ehlo, mail, rcpt = replies(sock, 3)
            self.assertEqual(ehlo.code, 250)
            self.assertNotIn("PIPELINING", ehlo.lines)
            self.assert_reply(mail, 250, "2.1.0 Ok")
            self.assertEqual(rcpt.raw.decode(), blocked_550(client, "command pipelining") + "\r\n")
            # The dialogue goes on, but no recipient is ever accepted.
            self.assertEqual(harness.command(sock, "RCPT TO:<user+x@example.test>").code, 550)
            self.assert_reply(harness.command(sock, "QUIT"), 221, "2.0.0 Bye")
            mx.wait_log(rf"COMMAND PIPELINING from \[{client}\]:\d+ after \S+: ")
            mx.wait_log(rf"NOQUEUE: reject: RCPT from \[{client}\]:\d+: "
                        rf"{re.escape(blocked_550(client, 'command pipelining'))}; "
                        r"from=<spam@example\.org> to=<user@example\.test> proto=ESMTP "
                        r"helo=<bot\.example\.org>$")
            self.assertEqual(mx.metric("mxscreen_test_results_total",
                                       {"test": "pipelining", "outcome": "enforce"}), 1)
            self.assert_no_handoff(mx)

    def test_pipelining_bot_gets_521_under_drop(self):
        client = "127.0.0.142"
        with harness.Mxscreen(config(smtp={"pipelining": "drop"})) as mx:
            sock = self.greeted(mx, client)
            sock.sendall(self.BOT)
            self.assert_dropped(sock)
            mx.wait_log(rf"COMMAND PIPELINING from \[{client}\]:\d+ after \S+: ")
            self.assertEqual(mx.metric("mxscreen_test_results_total",
                                       {"test": "pipelining", "outcome": "drop"}), 1)
            self.assert_no_handoff(mx)

    def test_pipelining_under_ignore_is_logged_and_the_mail_goes_on(self):
        client = "127.0.0.143"
        with harness.Mxscreen(config(smtp={"pipelining": "ignore"})) as mx:
            sock = self.greeted(mx, client)
            sock.sendall(self.BOT)
            ehlo, mail, rcpt = replies(sock, 3)
            self.assert_reply(rcpt, 250, "2.1.5 Ok")  # Postfix's own reply, after the handoff
            self.assert_reply(harness.command(sock, "QUIT"), 221, "2.0.0 Bye")
            mx.wait_log(rf"COMMAND PIPELINING from \[{client}\]:\d+ after ")
            self.assertEqual(mx.metric("mxscreen_handoffs_total", {"mode": "after_dialogue"}), 1)

    def test_pipelining_log_names_the_command_and_the_early_data_as_postscreen_does(self):
        # postscreen_smtpd.c: "COMMAND PIPELINING from [%s]:%s after %.100s: %s" with the
        # command just read and the (escaped) data that came in before its reply.
        client = "127.0.0.144"
        with harness.Mxscreen(config(smtp={"pipelining": "drop"})) as mx:
            sock = self.greeted(mx, client)
            sock.sendall(self.BOT)
            self.assert_dropped(sock)
            mx.wait_log(rf"COMMAND PIPELINING from \[{client}\]:\d+ after EHLO: "
                        r"MAIL FROM:<spam@example\.org>", timeout=2)

    # -- non-SMTP command, bare newline ---------------------------------------------------------

    def test_http_request_gets_521_and_a_log_line(self):
        client = "127.0.0.145"
        with harness.Mxscreen(config()) as mx:
            sock = self.greeted(mx, client)
            sock.sendall(b"GET / HTTP/1.1\r\nHost: mx.example.org\r\nUser-Agent: curl/8\r\n\r\n")
            self.assert_dropped(sock)
            mx.wait_log(rf"NON-SMTP COMMAND from \[{client}\]:\d+ after CONNECT: GET / HTTP/1\.1$")
            self.assertEqual(mx.metric("mxscreen_test_results_total",
                                       {"test": "non_smtp", "outcome": "drop"}), 1)
            self.assert_no_handoff(mx)

    def test_bare_newline_client_dropped_under_drop(self):
        client = "127.0.0.146"
        with harness.Mxscreen(config(smtp={"bare_newline": "drop"})) as mx:
            sock = self.greeted(mx, client)
            sock.sendall(b"EHLO lf.example.org\n")
            self.assert_dropped(sock)
            mx.wait_log(rf"BARE NEWLINE from \[{client}\]:\d+ after CONNECT$")
            self.assert_no_handoff(mx)

    def test_bare_newline_client_logged_and_served_under_ignore(self):
        client = "127.0.0.147"
        with harness.Mxscreen(config(smtp={"bare_newline": "ignore"})) as mx:
            sock = self.greeted(mx, client)
            self.assertEqual(harness.command(sock, "EHLO lf.example.org").code, 250)
            sock.sendall(b"MAIL FROM:<a@example.org>\n")
            self.assert_reply(harness.read_reply(sock), 250, "2.1.0 Ok")
            sock.sendall(b"RCPT TO:<user@example.test>\n")
            self.assert_reply(harness.read_reply(sock), 250, "2.1.5 Ok")  # from Postfix
            mx.wait_log(rf"BARE NEWLINE from \[{client}\]:\d+ after EHLO$")
            self.assertEqual(mx.metric("mxscreen_handoffs_total", {"mode": "after_dialogue"}), 1)
            self.assertEqual(mx.metric("mxscreen_test_results_total",
                                       {"test": "bare_newline", "outcome": "ignore"}), 1)

    # -- HELO and envelope checks ---------------------------------------------------------------

    def rejected_at_rcpt(self, client, helo, sender, expected):
        """EHLO/MAIL are accepted; the RCPT gets expected (Postfix's text) and a NOQUEUE line."""
        with harness.Mxscreen(config()) as mx:
            sock = self.greeted(mx, client)
            self.assertEqual(harness.command(sock, f"EHLO {helo}").code, 250)
            self.assert_reply(harness.command(sock, f"MAIL FROM:<{sender}>"), 250, "2.1.0 Ok")
            reply = harness.command(sock, "RCPT TO:<user@example.test>")
            self.assertEqual(reply.raw.decode(), expected + "\r\n")
            mx.wait_log(rf"NOQUEUE: reject: RCPT from \[{client}\]:\d+: {re.escape(expected)}; "
                        rf"from=<{re.escape(sender)}> to=<user@example\.test> proto=ESMTP "
                        rf"helo=<{re.escape(helo)}>$")
            self.assert_no_handoff(mx)

    def test_non_fqdn_helo_gets_504_at_rcpt(self):
        self.rejected_at_rcpt("127.0.0.148", "mailhost", "a@example.org",
                              "504 5.5.2 <mailhost>: Helo command rejected: "
                              "need fully-qualified hostname")

    def test_invalid_helo_gets_501_at_rcpt(self):
        self.rejected_at_rcpt("127.0.0.149", "bad..name!", "a@example.org",
                              "501 5.5.2 <bad..name!>: Helo command rejected: Invalid name")

    def test_non_fqdn_sender_gets_504_at_rcpt(self):
        self.rejected_at_rcpt("127.0.0.150", "mail.example.org", "a@localhost",
                              "504 5.5.2 <a@localhost>: Sender address rejected: "
                              "need fully-qualified address")

    # -- engine replies, errors and limits ------------------------------------------------------

    def test_engine_replies_for_refused_verbs(self):
        client = "127.0.0.151"
        with harness.Mxscreen(config()) as mx:
            sock = self.greeted(mx, client)
            expect = [("MAIL FROM:<a@example.org>", "503 5.5.1 Error: send HELO/EHLO first"),
                      ("FROB nicate", "500 5.5.2 Error: command not recognized"),
                      ("EHLO mail.example.org", None),
                      ("VRFY user@example.test", "502 5.5.1 VRFY command is disabled"),
                      ("AUTH PLAIN AGFhAGI=", "503 5.5.1 Error: authentication not enabled"),
                      ("DATA", "503 5.5.1 Error: need RCPT command"),
                      ("MAIL FROM:<a@example.org>", "250 2.1.0 Ok"),
                      ("DATA", "554 5.5.1 Error: no valid recipients"),
                      ("QUIT", "221 2.0.0 Bye")]
            for line, text in expect:
                reply = harness.command(sock, line)
                if text is None:
                    self.assertEqual(reply.code, 250, line)
                else:
                    self.assertEqual(reply.raw.decode(), text + "\r\n", line)
            self.assertTrue(harness.wait_closed(sock, 5))
            self.assert_no_handoff(mx)

    def test_error_sleep_then_421_at_the_hard_limit(self):
        client = "127.0.0.152"
        cfg = config(errors={"sleep_time": "1s", "soft_limit": 1, "hard_limit": 3})
        with harness.Mxscreen(cfg) as mx:
            sock = self.greeted(mx, client)
            took = []
            for _ in range(2):
                t0 = time.monotonic()
                reply = harness.command(sock, "BOGUS")
                took.append(time.monotonic() - t0)
                self.assert_reply(reply, 500, "5.5.2 Error: command not recognized")
            self.assertLess(took[0], 0.5, "first error (within soft_limit) answered at once")
            self.assertGreaterEqual(took[1], 0.9, "second error (past soft_limit) delayed 1s")
            self.assertEqual(harness.command(sock, "BOGUS").raw,
                             f"421 4.7.0 {HOST} Error: too many errors\r\n".encode())
            self.assertTrue(harness.wait_closed(sock, 5), "connection left open after 421")
            mx.wait_log(rf"too many errors \(3\) from \[{client}\]:\d+")
            self.assertEqual(mx.metric("mxscreen_sessions_active"), 0)

    def test_command_time_limit_ends_an_idle_dialogue_with_421(self):
        client = "127.0.0.153"
        with harness.Mxscreen(config(smtp={"command_time_limit": "1s"})) as mx:
            sock = self.greeted(mx, client)
            self.assertEqual(harness.command(sock, "EHLO mail.example.org").code, 250)
            reply = harness.read_reply(sock, timeout=5)  # the client now sends nothing
            self.assertEqual(reply.code, 421)
            self.assertRegex(reply.lines[-1], rf"^4\.4\.2 {re.escape(HOST)} .*timeout exceeded")
            self.assertTrue(harness.wait_closed(sock, 5))
            mx.wait_log(rf"COMMAND TIME LIMIT from \[{client}\]:\d+")


if __name__ == "__main__":
    unittest.main()
