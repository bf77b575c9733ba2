"""End to end (issue 14): a real sending Postfix delivers through mxscreen to the real backend
Postfix, with greylisting on, the way mail from a repeat sender really arrives.

The sender is a second private Postfix (harness.SendingPostfix, scripts/postfix-sender: own
directory, queue and log) whose smtp client relays everything to mxscreen's listener from
127.0.9.1, with smtp_tls_security_level = may, retries after seconds, and TLS connections
cached and reused (one session carries several transactions). mxscreen greylists (2 s), runs
the policy service, caches passes, and has [tls] with the backend's certificate; the backend is
the PROXY service that asks the policy service after reject_unlisted_recipient. Three
messages, several recipients each:
  M1 s1 -> r1, r2          first session screened: both triplets greylisted by mxscreen before
                           the handoff; the retry passes r1 (handoff, PASS NEW), r2 at Postfix
                           is not greylisted a second time;
  M2 s1 -> r1, r3, unknown sent at once after M1, in the spliced session the sender cached
                           (or a PASS OLD one): r1 passes, r3 (2nd recipient, a new triplet) is
                           greylisted by Postfix asking mxscreen, unknown gets 550 5.1.1 from
                           Postfix and is never greylisted;
  M3 s2 -> r1, r2          once the cached session has closed: a new connection, PASS OLD,
                           spliced at connect; both new triplets greylisted through the policy
                           service, TLS negotiated with the backend Postfix itself.
What the user notices: every message arrives exactly once per recipient (Maildir), every
session the sender opened was encrypted (its own log: "TLS connection established to", one per
connection mxscreen saw), every new triplet has exactly one "GREYLIST new" in mxscreen's log,
on the side expected, and the unknown recipient bounced with 550 and no greylisting (as
test_policy.test_unknown_recipient_gets_550_without_greylisting shows with smtplib).
"""

import fcntl
import os
import re
import sys
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

SENDER_IP = "127.0.9.1"
DELAY = 2  # greylist.delay, seconds
CACHE_IDLE = 8  # smtp_connection_cache_time_limit, seconds
LOCK_PATH = f"/tmp/mxscreen-test-policy-{harness.POLICY_PORT}.lock"  # as test_policy


def uid():
    return "x" + uuid.uuid4().hex[:12]


def message(marker, sender, recipients):
    return (f"From: <{sender}>\nTo: " + ", ".join(f"<{r}>" for r in recipients) +
            f"\nMessage-ID: <{marker}@example.org>\nSubject: {marker}\n\nbody {marker}\n").encode()


def delivered_copies(marker):
    """{original recipient: number of Maildir files} of the message marked marker."""
    copies = {}
    for sub in ("new", "cur"):
        d = harness.MAILDIR / sub
        for p in (d.iterdir() if d.is_dir() else ()):
            try:
                data = p.read_bytes().decode("utf-8", "replace")
            except FileNotFoundError:
                continue
            if f"Message-ID: <{marker}@example.org>" not in data:
                continue
            m = re.search(r"^X-Original-To: (\S+)$", data, re.MULTILINE)
            key = m.group(1) if m else "?"
            copies[key] = copies.get(key, 0) + 1
    return copies


class SendingPostfixThroughMxscreen(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        harness.ensure_postfix()

    def setUp(self):
        # The backend's policy-asking services ask POLICY_PORT: one test at a time listens there.
        self.lock = open(LOCK_PATH, "w")
        fcntl.flock(self.lock, fcntl.LOCK_EX)
        self.addCleanup(self.lock.close)

    def config(self):
        return {
            "backend": {"address": harness.BACKEND_PROXY_POLICY, "handoff": "proxy_v2"},
            "greylist": {"enabled": True, "delay": f"{DELAY}s"},
            "policy": {"listen": f"127.0.0.1:{harness.POLICY_PORT}"},
            "cache": {"enabled": True},
            "tls": {"cert_file": str(harness.BACKEND_TLS_CERT),
                    "key_file": str(harness.BACKEND_TLS_KEY)},
        }

    def test_messages_arrive_once_encrypted_and_every_triplet_is_greylisted_once(self):
        tag = uid()
        s1, s2 = f"e2e.{tag}.one@example.org", f"e2e.{tag}.two@example.org"
        r1, r2, r3 = (f"user+{tag}{n}@example.test" for n in ("a", "b", "c"))
        unknown = f"nobody.{tag}@example.test"
        m1, m2, m3 = (harness.unique_marker(f"e2e-m{n}") for n in (1, 2, 3))
        backend_offset = harness.postfix_log_offset()
        with harness.Mxscreen(self.config()) as mx, harness.SendingPostfix(
                f"127.0.0.1:{mx.port}",
                {"smtp_bind_address": SENDER_IP,
                 "smtp_connection_cache_time_limit": f"{CACHE_IDLE}s"}) as sender:
            # M1: greylisted before the handoff, then delivered.
            sender.submit(s1, [r1, r2], message(m1, s1, [r1, r2]))
            harness.wait_until(lambda: len(delivered_copies(m1)) == 2, 30,
                               what="M1 delivered to both recipients")
            # M2 at once: the sender's cached session (spliced) or a PASS OLD one carries it.
            sender.submit(s1, [r1, r3, unknown], message(m2, s1, [r1, r3, unknown]))
            harness.wait_until(lambda: len(delivered_copies(m2)) == 2, 30,
                               what="M2 delivered to both known recipients")
            # Every session closed (the cache's idle limit), so M3 opens a new one: PASS OLD.
            harness.wait_until(lambda: not self.open_sessions(mx.log_text()), CACHE_IDLE + 15,
                               what="the sender's cached sessions to close")
            since = mx.log_offset()
            sender.submit(s2, [r1, r2], message(m3, s2, [r1, r2]))
            harness.wait_until(lambda: len(delivered_copies(m3)) == 2, 30,
                               what="M3 delivered to both recipients")
            harness.wait_until(sender.queue_empty, 30, what="the sender's queue to empty")
            mx.wait_log(rf"PASS OLD \[{re.escape(SENDER_IP)}\]", since=since)
            sender_log, mx_log = sender.log_text(), mx.log_text()

        try:
            self.check_logs(sender_log, mx_log, backend_offset, s1, s2, r1, r2, r3, unknown,
                            {m1: [r1, r2], m2: [r1, r3], m3: [r1, r2]})
        except AssertionError:
            sys.stderr.write(f"--- mxscreen log ---\n{mx_log}\n--- sending Postfix log ---\n"
                             f"{sender_log}\n")
            raise

    def check_logs(self, sender_log, mx_log, backend_offset, s1, s2, r1, r2, r3, unknown,
                   messages):
        sessions = self.sessions(mx_log)
        self.assert_every_message_once(sender_log, messages)
        self.assert_every_session_encrypted(sender_log, mx_log, sessions, backend_offset)
        # Every new triplet greylisted exactly once, where it first arrived.
        pre = self.first_greylisted(mx_log, s1, r1, policy=False)
        self.assertEqual(self.first_greylisted(mx_log, s1, r2, policy=False), pre)
        # A screened session, inside mxscreen's TLS; the retry that passed (the same session
        # when the sender kept it, a new one otherwise) was handed off: PASS NEW.
        self.assertIn(pre, sessions["tls"] - sessions["old"])
        self.assertTrue(sessions["new"], sessions)
        # The 2nd recipient of M2, in a spliced session (the one the sender kept, or PASS OLD).
        self.assertIn(self.first_greylisted(mx_log, s1, r3, policy=True),
                      sessions["new"] | sessions["old"])
        # Triplets from a PASS OLD client, spliced at connect.
        for rcpt in (r1, r2):
            self.assertIn(self.first_greylisted(mx_log, s2, rcpt, policy=True), sessions["old"])
        # M1's recipients met the policy service after the handoff too (the replayed RCPT,
        # later ones, retries): a triplet recorded before the handoff passes there, never new.
        for rcpt in (r1, r2):
            self.assertRegex(mx_log, re.compile(
                rf"GREYLIST (passed|allowlisted) \[{re.escape(SENDER_IP)}\]:\d+ "
                rf"from=<{re.escape(s1)}> to=<{re.escape(rcpt)}> .*\(policy\)$", re.MULTILINE))
        # The unknown recipient: Postfix's 550, before any greylisting.
        self.assertRegex(sender_log, rf"to=<{re.escape(unknown)}>, relay=127\.0\.0\.1\S+, .*"
                                     r"status=bounced \(host \S+ said: 550 5\.1\.1 ")
        self.assertNotIn(unknown, mx_log)
        # Several transactions in one session.
        self.assertRegex(sender_log, r"conn_use=[2-9]\d*, .*status=sent")

    # -- what the logs say ------------------------------------------------------------------

    @staticmethod
    def open_sessions(log):
        connects = set(re.findall(rf"CONNECT from \[{re.escape(SENDER_IP)}\]:(\d+) ", log))
        closed = set(re.findall(rf"DISCONNECT \[{re.escape(SENDER_IP)}\]:(\d+) ", log))
        return connects - closed

    @staticmethod
    def sessions(log):
        """The sender's sessions by client port: all, screened and then spliced (PASS NEW),
        spliced at connect (PASS OLD), TLS done by mxscreen."""
        ip = re.escape(SENDER_IP)
        return {"all": re.findall(rf"CONNECT from \[{ip}\]:(\d+) ", log),
                "new": set(re.findall(rf"PASS NEW \[{ip}\]:(\d+)", log)),
                "old": set(re.findall(rf"PASS OLD \[{ip}\]:(\d+)", log)),
                "tls": set(re.findall(rf"TLS connection established from \[{ip}\]:(\d+):", log))}

    def first_greylisted(self, log, sender, rcpt, policy):
        """The client port of the one "GREYLIST new" line of the triplet; checks there is one,
        logged by the side given (the policy service or mxscreen's own RCPT)."""
        news = re.findall(rf"^.*GREYLIST new \[{re.escape(SENDER_IP)}\]:\d+ "
                          rf"from=<{re.escape(sender)}> to=<{re.escape(rcpt)}> .*$", log,
                          re.MULTILINE)
        self.assertEqual(len(news), 1, (sender, rcpt, news))
        self.assertEqual(news[0].endswith("(policy)"), policy, news[0])
        return re.search(rf"\[{re.escape(SENDER_IP)}\]:(\d+) ", news[0]).group(1)

    def assert_every_message_once(self, sender_log, expected):
        """Each (message, recipient) accepted once by mxscreen/Postfix (the sender's log) and
        delivered once (one Maildir file each), after the backend finished with it."""
        for marker, rcpts in expected.items():
            for rcpt in rcpts:
                sent = re.findall(rf"to=<{re.escape(rcpt)}>, .*status=sent \(250 2\.0\.0 Ok: "
                                  r"queued as (\w+)\)", self.lines_of(sender_log, marker))
                self.assertEqual(len(sent), 1, (marker, rcpt, sent))
                harness.wait_for_log(rf"postfix/qmgr\[\d+\]: {sent[0]}: removed")
            self.assertEqual(delivered_copies(marker), {r: 1 for r in rcpts}, marker)

    @staticmethod
    def lines_of(sender_log, marker):
        """The sender's log lines of the message whose Message-ID holds marker (by queue id)."""
        qid = re.search(rf"postfix/cleanup\[\d+\]: (\w+): message-id=<{re.escape(marker)}@",
                        sender_log).group(1)
        return "\n".join(line for line in sender_log.splitlines() if f" {qid}: " in line)

    def assert_every_session_encrypted(self, sender_log, mx_log, sessions, backend_offset):
        """As many TLS sessions in the sender's log as connections mxscreen saw, each encrypted
        by mxscreen (screened) or by the backend Postfix (PASS OLD, end to end)."""
        established = re.findall(r"postfix/tlsproxy\[\d+\]: \w+ TLS connection established to "
                                 r"127\.0\.0\.1\[127\.0\.0\.1\]:\d+: TLSv1\.[23] ", sender_log)
        self.assertGreaterEqual(len(sessions["all"]), 2, sessions)
        self.assertEqual(len(established), len(sessions["all"]), (established, sessions))
        self.assertEqual(set(sessions["all"]), sessions["tls"] | sessions["old"], sessions)
        self.assertFalse(sessions["tls"] & sessions["old"], sessions)
        self.assertTrue(sessions["old"], sessions)
        # The backend Postfix did the TLS of each PASS OLD session, and of no other.
        pattern = re.compile(rf"Anonymous TLS connection established from "
                             rf"unknown\[{re.escape(SENDER_IP)}\]: TLSv1\.[23] ")

        def backend_tls():
            return len(pattern.findall(harness.postfix_log_since(backend_offset)))

        harness.wait_until(lambda: backend_tls() >= len(sessions["old"]), 10,
                           what="the backend's TLS log line of every PASS OLD session")
        self.assertEqual(backend_tls(), len(sessions["old"]))
        # mxscreen never offered the backend's STARTTLS inside its own TLS.
        self.assertNotIn("reject: starttls", mx_log)


if __name__ == "__main__":
    unittest.main(verbosity=2)
