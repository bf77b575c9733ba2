"""helo.reject_own_name: a client that greets with this host's own name or address is refused at
RCPT, as Postfix admins do with check_helo_access ("REJECT You are not me").

Real clients (smtplib) through mxscreen to the private Postfix: with the test on, an EHLO of
server.hostname (any case, a trailing dot), of the address the client connected to, or of another
[[listen]] address gets "554 5.7.1 <name>: Helo command rejected: You are not me" at RCPT, a
NOQUEUE line and the helo counter, and never reaches Postfix; a client with its own name on the
same instance is handed off and its message delivered. Off (the default), the same greeting is
handed off. Each test uses its own 127.0.0.18x source address.
"""

import os
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

HOST = "mx.own-name.example"  # server.hostname
OTHER_LISTEN = "127.0.0.185"  # a second mx listener's address


def reply_for(name):
    return f"5.7.1 <{name}>: Helo command rejected: You are not me"


class HeloOwnNameTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        harness.ensure_postfix()

    def instance(self, on=True):
        other = harness.free_port(OTHER_LISTEN)
        return self.enterContext(harness.Mxscreen({
            "server": {"hostname": HOST},
            "helo": {"reject_own_name": on},
            "listen": [{"address": f"127.0.0.1:{harness.free_port()}", "role": "mx"},
                       {"address": f"{OTHER_LISTEN}:{other}", "role": "mx"}],
        }))

    def refused(self, mx, client, helo):
        """EHLO helo, MAIL, RCPT from client: the RCPT reply (code, text); the session quits."""
        s = harness.smtp_client(mx.port, source=client, helo=helo)
        try:
            code, _ = s.ehlo()
            self.assertEqual(code, 250)
            self.assertEqual(s.mail("bot@example.org")[0], 250)
            code, text = s.rcpt(harness.MAILBOX)
            self.assertEqual(s.quit()[0], 221)
            return code, text.decode()
        finally:
            s.close()

    def test_own_hostname_and_addresses_are_refused_at_rcpt(self):
        mx = self.instance()
        for client, helo in (("127.0.0.181", HOST), ("127.0.0.182", "MX.Own-Name.EXAMPLE."),
                             ("127.0.0.183", "[127.0.0.1]"), ("127.0.0.184", f"[{OTHER_LISTEN}]")):
            with self.subTest(helo=helo):
                self.assertEqual(self.refused(mx, client, helo), (554, reply_for(helo)))
                mx.wait_log(rf"NOQUEUE: reject: RCPT from \[{re.escape(client)}\]:\d+: 554 "
                            rf"{re.escape(reply_for(helo))}; from=<bot@example\.org> "
                            rf"to=<{re.escape(harness.MAILBOX)}> proto=ESMTP "
                            rf"helo=<{re.escape(helo)}>$")
        self.assertEqual(mx.metric("mxscreen_test_results_total",
                                   {"test": "helo", "outcome": "reject"}), 4)
        self.assertIn(mx.metric("mxscreen_handoffs_total", {"mode": "after_dialogue"}), (None, 0))

    def test_a_client_with_its_own_name_is_handed_off(self):
        mx = self.instance()
        marker = harness.unique_marker("own-name-pass")
        code, text = harness.rcpt_attempt(mx.port, "127.0.0.186", "a@example.org", marker)
        self.assertEqual(code, 250, text)
        harness.wait_delivered(marker)
        self.assertEqual(harness.metric_sum(mx, "mxscreen_test_results_total", {"test": "helo"}),
                         0)

    def test_off_by_default(self):
        mx = self.instance(on=None)  # the key left out: its default
        self.assertNotIn("reject_own_name", mx.config.get("helo", {}))
        s = harness.smtp_client(mx.port, source="127.0.0.187", helo=HOST)
        try:
            self.assertEqual(s.ehlo()[0], 250)
            self.assertEqual(s.mail("a@example.org")[0], 250)
            code, text = s.rcpt(harness.MAILBOX)
            self.assertEqual(code, 250, text)  # Postfix's own answer after the handoff
            s.rset()
            s.quit()
        finally:
            s.close()
        mx.wait_log(r"DISCONNECT \[127\.0\.0\.187\]:\d+ outcome=spliced")


if __name__ == "__main__":
    unittest.main()
