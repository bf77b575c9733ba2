"""`mxscreen ctl explain` (issue 19) against the running binary, a real unbound and real Postfix.

What an admin notices:
- for a DNSBL-listed, a DNSWL-listed, a greylisted, a greylist-passed and a banned client,
  `ctl explain` says what a real session from that client then gets: the same reply code and
  text, or a handoff to Postfix (whose RCPT reply the client then reads);
- explain writes nothing: a greylisted-new triplet is still new after two explains, and the
  real session that follows is logged as GREYLIST new;
- --json gives one JSON object with every test and the answer;
- a bad request (no address, a bad address, an option without its value, an unknown option)
  exits 1 with a message on stderr.

unbound (from test_dns) serves the zones here; clients are 127.0.5.x source addresses that no
other integration test uses.
"""

import json
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import test_dns  # noqa: E402

LISTED = "127.0.5.2"   # zen.test -> 127.0.0.2
DNSWL = "127.0.5.3"    # wl.test -> 127.0.10.2
GREY = "127.0.5.4"     # greylisted, never retries here
PASSED = "127.0.5.5"   # greylisted, then retries after greylist.delay
BANNED = "127.0.5.6"   # banned with ctl ban
HELO = harness.CLIENT_HELO
RCPT = harness.MAILBOX
BANNER = "mx.explain.test ESMTP"


def zones():
    rev = test_dns.rev
    return f"""
  local-zone: "ready.test." static
  local-data: "ready.test. 300 IN A 127.0.0.1"
  local-zone: "zen.test." static
  local-data: "{rev(LISTED)}.zen.test. 300 IN A 127.0.0.2"
  local-zone: "wl.test." static
  local-data: "{rev(DNSWL)}.wl.test. 300 IN A 127.0.10.2"
"""


UNBOUND = None


def setUpModule():
    global UNBOUND
    UNBOUND = test_dns.start_unbound(zones())


def tearDownModule():
    if UNBOUND is not None:
        UNBOUND.stop()


def sender_for(client):
    # Letters, not the address's digits: greylisting folds number-only words of a local part
    # (postgrey's VERP rule), and these clients share one /24.
    name = {LISTED: "listed", DNSWL: "dnswl", GREY: "grey", PASSED: "passed", BANNED: "banned"}
    return f"explain-{name[client]}@example.org"


def real_session(port, client, sender):
    """A real client: greeting, EHLO, MAIL, RCPT. Returns (stage, "code text") of the first
    refusal, or ("rcpt", reply) of the RCPT; "close" when closed without a word."""
    sock = harness.raw_connect(port, source=client)
    try:
        try:
            reply = harness.read_reply(sock, 15)
        except ConnectionError:
            return "connect", "close"
        if reply.code != 220:
            return "connect", f"{reply.code} {reply.lines[-1]}"
        for stage, line in (("helo", f"EHLO {HELO}"), ("mail", f"MAIL FROM:<{sender}>"),
                            ("rcpt", f"RCPT TO:<{RCPT}>")):
            reply = harness.command(sock, line, 15)
            if reply.code >= 400 or stage == "rcpt":
                return stage, f"{reply.code} {reply.lines[-1]}"
        raise AssertionError("not reached")
    finally:
        try:
            harness.send_line(sock, "QUIT")
        except OSError:
            pass
        sock.close()


class CtlExplainTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.mx = harness.Mxscreen(test_dns.dns({
            "dnsbl": {"sites": ["zen.test=127.0.0.[2..11]*3", "wl.test=127.0.[0..255].[1..3]*-5"],
                      "threshold": 3, "allowlist_threshold": -1, "action": "enforce"},
            "greylist": {"enabled": True, "delay": "1s"},
            "ban": {"reply": True},
            "store": {"backend": "lmdb"},
            "greet": {"banner": BANNER},
        }, nameserver=f"127.0.0.1:{UNBOUND.port}")).start()

    @classmethod
    def tearDownClass(cls):
        cls.mx.kill()

    def ctl(self, *request):
        return subprocess.run(
            [harness.mxscreen_binary(), "ctl", "--config", str(self.mx.config_path), *request],
            capture_output=True, text=True, timeout=60)

    def explain(self, client):
        r = self.ctl("explain", client, "--helo", HELO, "--from", sender_for(client), "--to", RCPT,
                     "--json")
        self.assertEqual(r.returncode, 0, r)
        report = json.loads(r.stdout)
        tests = {t["test"]: t for t in report["tests"]}
        return report["answer"], tests

    def assert_same_answer(self, client, answer):
        """The real session from `client` gets what explain said."""
        stage, reply = real_session(self.mx.port, client, sender_for(client))
        if answer["action"] == "handoff":
            # Handed off: Postfix itself answers the RCPT.
            self.assertEqual((stage, reply[:3]), ("rcpt", "250"), (answer, reply))
        elif answer["action"] == "close":
            self.assertEqual((stage, reply), ("connect", "close"), answer)
        else:
            expected_stage = "connect" if answer["phase"] in ("connect", "greet_end") \
                else answer["phase"]
            self.assertEqual((stage, reply), (expected_stage, answer["reply"]), answer)
        return reply

    def test_listed_client(self):
        answer, tests = self.explain(LISTED)
        self.assertEqual(tests["dnsbl"]["result"], "listed", tests["dnsbl"])
        self.assertIn("zen.test", tests["dnsbl"]["detail"])
        self.assertEqual((answer["phase"], answer["action"]), ("rcpt", "reply"), answer)
        self.assertEqual(answer["reply"], f"550 5.7.1 Service unavailable; client [{LISTED}] "
                                          "blocked using a DNS blocklist")
        self.assert_same_answer(LISTED, answer)

    def test_dnswl_client(self):
        answer, tests = self.explain(DNSWL)
        self.assertEqual(tests["dnsbl"]["result"], "allowlisted", tests["dnsbl"])
        self.assertEqual((answer["phase"], answer["action"]), ("greet_end", "handoff"), answer)
        self.assert_same_answer(DNSWL, answer)

    def test_greylisted_client_and_store_unchanged(self):
        answer, tests = self.explain(GREY)
        self.assertEqual(tests["greylist"]["result"], "new", tests["greylist"])
        self.assertIn("no record", tests["greylist"]["detail"])
        # A second explain: still new, nothing was recorded by the first.
        answer, tests = self.explain(GREY)
        self.assertEqual(tests["greylist"]["result"], "new", tests["greylist"])
        self.assertEqual((answer["phase"], answer["action"]), ("rcpt", "reply"), answer)
        self.assertRegex(answer["reply"], rf"^450 4\.2\.0 <{RCPT}>: Recipient address rejected: ")
        since = self.mx.log_offset()
        self.assert_same_answer(GREY, answer)
        self.mx.wait_log(rf"GREYLIST new \[{GREY}\]:\d+ from=<{sender_for(GREY)}>", since=since)
        # Now the triplet is recorded, by the session: explain sees it.
        _, tests = self.explain(GREY)
        self.assertIn(tests["greylist"]["result"], ("early_retry", "passed"), tests["greylist"])
        self.assertIn("first seen", tests["greylist"]["detail"])

    def test_passed_client(self):
        first, _ = self.explain(PASSED)
        self.assert_same_answer(PASSED, first)  # 450: recorded now

        seen = []

        def retry_would_pass():
            seen.append(self.explain(PASSED)[1]["greylist"])
            return seen[-1]["result"] == "passed"

        harness.wait_until(retry_would_pass, timeout=15, interval=0.2,
                           what=f"explain to say the retry passes (greylist.delay = 1s): {seen[-1:]}")
        answer, tests = self.explain(PASSED)
        self.assertEqual((answer["phase"], answer["action"]), ("rcpt", "handoff"), answer)
        self.assert_same_answer(PASSED, answer)
        _, tests = self.explain(PASSED)
        self.assertEqual(tests["greylist"]["result"], "allowlisted", tests["greylist"])

    def test_banned_client(self):
        r = self.ctl("ban", BANNED, "1h")
        self.assertEqual(r.returncode, 0, r)
        answer, tests = self.explain(BANNED)
        self.assertEqual(tests["ban"]["result"], "banned", tests["ban"])
        self.assertIn("banned by the admin", tests["ban"]["detail"])
        self.assertEqual(answer, {"phase": "connect", "action": "reply",
                                  "reply": f"554 5.7.1 Service unavailable; client [{BANNED}] "
                                           "is banned", "detail": "BANNED"})
        self.assert_same_answer(BANNED, answer)

    def test_text_output(self):
        r = self.ctl("explain", LISTED, "--helo", HELO, "--from", sender_for(LISTED), "--to", RCPT)
        self.assertEqual(r.returncode, 0, r)
        lines = r.stdout.splitlines()
        self.assertEqual(lines[0], f"client {LISTED} helo=<{HELO}> from=<{sender_for(LISTED)}> "
                                   f"to=<{RCPT}>")
        self.assertIn(f"answer rcpt reply: 550 5.7.1 Service unavailable; client [{LISTED}] "
                      "blocked using a DNS blocklist", lines)
        self.assertIn("test pregreet greet_end not_evaluated: needs a live session", lines)
        self.assertTrue(any(l.startswith("test dnsbl greet_end listed: rank 3 ") for l in lines),
                        lines)

    def test_bad_requests(self):
        for request, message in (
                (["explain"], "explain needs an address"),
                (["explain", "not-an-ip"], 'invalid address "not-an-ip"'),
                (["explain", LISTED, "--helo"], "--helo needs a value"),
                (["explain", LISTED, "--bogus", "x"], 'unknown option "--bogus"'),
                (["explain", LISTED, "--to", "a" * 300 + "@example.org"], "invalid --to value")):
            r = self.ctl(*request)
            self.assertEqual(r.returncode, 1, (request, r))
            self.assertIn(message, r.stderr, request)
            self.assertEqual(r.stdout, "", request)
        # White space inside a value cannot cross the one-line request: refused by ctl itself.
        r = self.ctl("explain", LISTED, "--to", "a b@example.org")
        self.assertEqual(r.returncode, 2, r)
        self.assertIn("white space", r.stderr)


if __name__ == "__main__":
    unittest.main()
