"""The pre-dialogue's handoff with replay, against the real Postfix backend (issue 3).

A client meets mxscreen's own SMTP engine (EHLO, MAIL) and at the first RCPT that passes every
test mxscreen connects to Postfix, sends the client's identity (PROXY v2 header or XCLIENT),
replays EHLO/MAIL/RCPT and splices. What the user notices: swaks and smtplib deliver with one
recipient and with three (one unknown to Postfix) over ONE connection, the unknown recipient's
550 comes from Postfix verbatim, the other copies arrive, and Postfix records the real client
address and the client's HELO name, in both proxy_v2 and xclient modes.

The default dialogue tests stay on (pipelining enforce, HELO/sender/recipient checks), so the
handoff happens at RCPT, never right after the greeting.
"""

import os
import re
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

SENDER = "sender@example.org"
UNKNOWN = "nobody@example.test"
UNKNOWN_550 = (f"550 5.1.1 <{UNKNOWN}>: Recipient address rejected: "
               "User unknown in virtual mailbox table")


def marked_message(marker, to="user@example.test"):
    """A small message whose Message-ID carries marker, so Postfix's log names its queue id."""
    return (f"From: <{SENDER}>\r\nTo: <{to}>\r\nMessage-ID: <{marker}@example.org>\r\n"
            f"Subject: {marker}\r\n\r\nbody {marker}\r\n").encode()


postfix_offset = harness.postfix_log_offset


def delivered_copies(marker):
    """Every message in user@example.test's Maildir that contains marker (text)."""
    out = []
    for sub in ("new", "cur"):
        d = harness.MAILDIR / sub
        for p in (d.iterdir() if d.is_dir() else ()):
            try:
                data = p.read_bytes()
            except FileNotFoundError:  # moved from new/ to cur/ meanwhile
                continue
            if marker.encode() in data:
                out.append(data.decode("utf-8", "replace"))
    return out


class _Checks:
    """What the user sees in mxscreen's log, in Postfix's log and in the mailbox."""
    HANDOFF = BACKEND = SERVICE = None

    @classmethod
    def setUpClass(cls):
        harness.ensure_postfix()

    def start_mx(self):
        return harness.Mxscreen({"backend": {"address": self.BACKEND, "handoff": self.HANDOFF}})

    # -- what the user sees in mxscreen ---------------------------------------------------------

    def assert_one_spliced_connection(self, mx, client):
        mx.wait_log(rf"DISCONNECT \[{re.escape(client)}\]:\d+ outcome=spliced ")
        log = mx.log_text()
        self.assertEqual(len(re.findall(rf"CONNECT from \[{re.escape(client)}\]:", log)), 1, log)
        self.assertNotRegex(log, r"COMMAND PIPELINING|NOQUEUE|NON-SMTP|BARE NEWLINE")
        self.assertEqual(mx.metric("mxscreen_handoffs_total", {"mode": "after_dialogue"}), 1)
        self.assertEqual(mx.metric("mxscreen_sessions_total", {"outcome": "spliced"}), 1)

    # -- what Postfix saw -----------------------------------------------------------------------

    def postfix_session(self, marker, offset, client):
        """Queue id and smtpd pid of the message marked with marker; checks client=."""
        m = harness.wait_for_log(
            rf"postfix/cleanup\[\d+\]: (\w+): message-id=<{marker}@example\.org>", offset)
        qid = m.group(1)
        m = harness.wait_for_log(rf"postfix/{self.SERVICE}/smtpd\[(\d+)\]: {qid}: "
                                 rf"client=unknown\[{re.escape(client)}\]$", offset)
        return qid, m.group(1)

    def assert_postfix_disconnect(self, pid, offset, client, counts):
        """The one backend session ends with these command counts (e.g. "rcpt=2/3 data=1")."""
        harness.wait_for_log(rf"postfix/{self.SERVICE}/smtpd\[{pid}\]: disconnect from "
                             rf"unknown\[{re.escape(client)}\] .*\b{counts}\b", offset)

    def assert_postfix_refused_unknown(self, pid, offset, client):
        """Postfix itself refused the unknown recipient, and logged the client's HELO."""
        harness.wait_for_log(
            rf"postfix/{self.SERVICE}/smtpd\[{pid}\]: \w+: reject: RCPT from "
            rf"unknown\[{re.escape(client)}\]: {re.escape(UNKNOWN_550)}; from=<{SENDER}> "
            rf"to=<{UNKNOWN}> proto=ESMTP helo=<{harness.CLIENT_HELO}>", offset)

    def assert_received_from_client(self, text, client):
        """Postfix's Received header names the client's HELO and its real address."""
        self.assertRegex(text, rf"Received: from {re.escape(harness.CLIENT_HELO)} "
                               rf"\(unknown \[{re.escape(client)}\]\)")

    def assert_copies_for(self, marker, recipients):
        copies = harness.wait_until(
            lambda: len(delivered_copies(marker)) >= len(recipients) and delivered_copies(marker),
            timeout=10, what=f"{len(recipients)} copies of {marker}")
        self.assertEqual(len(copies), len(recipients))
        originals = sorted(re.search(r"^X-Original-To: (\S+)", c, re.M).group(1) for c in copies)
        self.assertEqual(originals, sorted(recipients))
        return copies

    def swaks(self, port, client, recipients, marker, extra=()):
        result = subprocess.run(
            ["swaks", *extra, "--server", f"127.0.0.1:{port}", "--local-interface", client,
             "--helo", harness.CLIENT_HELO, "--from", SENDER, "--to", ",".join(recipients),
             "--header", f"Message-Id: <{marker}@example.org>", "--header", f"Subject: {marker}",
             "--body", f"body {marker}", "--timeout", "20"],
            capture_output=True, text=True, timeout=60)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn("<-  250 2.0.0 Ok: queued as", result.stdout)
        return result.stdout


class _HandoffCases(_Checks):
    """Test bodies shared by the proxy_v2 and xclient classes below."""
    CLIENTS = ()  # one source address per test, so Postfix's log lines are this test's own

    def test_swaks_one_recipient(self):
        client, marker, offset = self.CLIENTS[0], harness.unique_marker(), postfix_offset()
        with self.start_mx() as mx:
            out = self.swaks(mx.port, client, ["user@example.test"], marker)
            self.assert_one_spliced_connection(mx, client)
        self.assertNotIn("PIPELINING", out)  # withheld while the pipelining test is on
        _, pid = self.postfix_session(marker, offset, client)
        self.assert_postfix_disconnect(pid, offset, client, r"rcpt=1 data=1")
        self.assert_received_from_client(harness.wait_delivered(marker), client)

    def test_swaks_three_recipients_one_unknown(self):
        client, marker, offset = self.CLIENTS[1], harness.unique_marker(), postfix_offset()
        known = ["user+a@example.test", "user+b@example.test"]
        with self.start_mx() as mx:
            out = self.swaks(mx.port, client, [known[0], UNKNOWN, known[1]], marker)
            self.assert_one_spliced_connection(mx, client)
        self.assertIn(f"<** {UNKNOWN_550}", out)
        self.assertEqual(out.count("<-  250 2.1.5 Ok"), 2, out)
        _, pid = self.postfix_session(marker, offset, client)
        self.assert_postfix_refused_unknown(pid, offset, client)
        self.assert_postfix_disconnect(pid, offset, client, r"rcpt=2/3 data=1")
        for copy in self.assert_copies_for(marker, known):
            self.assert_received_from_client(copy, client)

    def test_smtplib_one_recipient_then_a_second_transaction(self):
        client, offset = self.CLIENTS[2], harness.postfix_log_offset()
        markers = [harness.unique_marker(), harness.unique_marker()]
        with self.start_mx() as mx:
            smtp = harness.smtp_client(mx.port, source=client)
            try:
                code, _ = smtp.ehlo()
                self.assertEqual(code, 250)
                self.assertFalse(smtp.has_extn("pipelining"))
                self.assertTrue(smtp.has_extn("8bitmime"))  # mirrored from Postfix's EHLO
                for marker in markers:  # the second one goes through the splice
                    refused = smtp.sendmail(SENDER, ["user@example.test"], marked_message(marker))
                    self.assertEqual(refused, {})
            finally:
                smtp.quit()
            self.assert_one_spliced_connection(mx, client)
        pids = {self.postfix_session(m, offset, client)[1] for m in markers}
        self.assertEqual(len(pids), 1, "both transactions in one backend session")
        self.assert_postfix_disconnect(pids.pop(), offset, client, r"mail=2 rcpt=2 data=2")
        for marker in markers:
            self.assert_received_from_client(harness.wait_delivered(marker), client)

    def test_smtplib_three_recipients_the_held_one_unknown(self):
        # The first RCPT is the one mxscreen holds and replays: Postfix's 550 for it must reach
        # the client verbatim, and the next two go through the splice.
        client, marker, offset = self.CLIENTS[3], harness.unique_marker(), postfix_offset()
        known = ["user+c@example.test", "user+d@example.test"]
        with self.start_mx() as mx:
            smtp = harness.smtp_client(mx.port, source=client)
            try:
                smtp.ehlo()
                refused = smtp.sendmail(SENDER, [UNKNOWN, *known], marked_message(marker))
            finally:
                smtp.quit()
            self.assert_one_spliced_connection(mx, client)
        self.assertEqual(list(refused), [UNKNOWN])
        code, text = refused[UNKNOWN]
        self.assertEqual(f"{code} {text.decode()}", UNKNOWN_550)
        _, pid = self.postfix_session(marker, offset, client)
        harness.wait_for_log(
            rf"postfix/{self.SERVICE}/smtpd\[{pid}\]: NOQUEUE: reject: RCPT from "
            rf"unknown\[{re.escape(client)}\]: {re.escape(UNKNOWN_550)}; .*"
            rf"helo=<{harness.CLIENT_HELO}>", offset)
        self.assert_postfix_disconnect(pid, offset, client, r"rcpt=2/3 data=1")
        for copy in self.assert_copies_for(marker, known):
            self.assert_received_from_client(copy, client)


class PipeliningClientTest(_Checks, unittest.TestCase):
    """With smtp.pipelining = "off" PIPELINING is offered, and swaks --pipeline sends MAIL, all
    RCPTs and DATA in one go: what follows the held RCPT must reach Postfix after the replay,
    and the replies must come back in order."""
    HANDOFF, BACKEND, SERVICE = "proxy_v2", harness.BACKEND_PROXY, "proxy"

    def test_swaks_pipelining_three_recipients_the_held_one_unknown(self):
        client, marker, offset = "127.0.0.139", harness.unique_marker(), postfix_offset()
        known = ["user+e@example.test", "user+f@example.test"]
        with harness.Mxscreen({"smtp": {"pipelining": "off"}}) as mx:
            out = self.swaks(mx.port, client, [UNKNOWN, *known], marker, extra=["--pipeline"])
            self.assert_one_spliced_connection(mx, client)
        self.assertIn("<-  250-PIPELINING", out)
        self.assertRegex(out, r" -> DATA\n<-  250 2\.1\.0 Ok\n<\*\* " + re.escape(UNKNOWN_550)
                         + r"\n<-  250 2\.1\.5 Ok\n<-  250 2\.1\.5 Ok\n<-  354 ")
        _, pid = self.postfix_session(marker, offset, client)
        self.assert_postfix_disconnect(pid, offset, client, r"rcpt=2/3 data=1")
        for copy in self.assert_copies_for(marker, known):
            self.assert_received_from_client(copy, client)


class ProxyV2HandoffTest(_HandoffCases, unittest.TestCase):
    HANDOFF, BACKEND, SERVICE = "proxy_v2", harness.BACKEND_PROXY, "proxy"
    CLIENTS = ("127.0.0.131", "127.0.0.132", "127.0.0.133", "127.0.0.134")


class XclientHandoffTest(_HandoffCases, unittest.TestCase):
    HANDOFF, BACKEND, SERVICE = "xclient", harness.BACKEND_XCLIENT, "xclient"
    CLIENTS = ("127.0.0.135", "127.0.0.136", "127.0.0.137", "127.0.0.138")


if __name__ == "__main__":
    unittest.main()
