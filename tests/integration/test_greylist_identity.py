"""Greylisting that follows real senders (issue 18): identity-keyed triplets, greylist.only_if,
spam traps.

A real unbound serves the clients' PTR and A records (local-data), the private Postfix is the
backend (its policy-asking service, so that Postfix asks mxscreen's policy service about the
replayed RCPT and every later one), and a real redis-server is the store of the trap test.
greylist.ipv4_prefix = 32 makes every 127.0.3.x address a network of its own, as the addresses
of a big sender's pool are in different networks. What the user notices:
- identity keys: a first try from 127.0.3.11 (mail-a.out.sender.test) is greylisted; its retry
  from 127.0.3.12 (mail-b.out.sender.test, the same organisational domain, both
  forward-confirmed) passes at the retry after the delay, and the mail is delivered; both sides
  (mxscreen's RCPT and the policy service asked about the replay) log key=ptr:sender.test;
- the same with the SPF-pass domain: 127.0.3.21 and 127.0.3.22 have no PTR, spf-pool.test's SPF
  authorizes both (sender.spf = "log"): the retry from the other address passes, key=spf on
  both sides (the policy service evaluates SPF for the replayed RCPT itself);
- without identity keys the same retry from the other address is greylisted as new (the tests
  above can fail);
- only_if: the clean, forward-confirmed client delivers at its first try ("GREYLIST clean ...
  (only_if: clean: ptr=... fcrdns=yes ...)", on both sides); a client without PTR is greylisted
  ("(only_if: no_fcrdns: ptr=none fcrdns=no ...)"); with "spf" in only_if the clean client's
  SPF passes (key=spf) and the client without PTR, not authorized by SPF, is greylisted for
  "no_fcrdns,spf";
- a spam trap: a RCPT to greylist.trap_recipients bans the client (TRAP, BANNED), on every
  listener of that mxscreen and on a second mxscreen sharing the redis-server; through the
  policy service too (a RCPT after the handoff: Postfix answers 521 and hangs up).

The tests that need Postfix to ask the policy service hold test_policy's lock on the fixed
policy port while their mxscreen listens there.
"""

import os
import re
import subprocess
import sys
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import test_dns  # noqa: E402 (its Unbound helper)
import test_policy  # noqa: E402 (the policy port lock)

POLICY_PORT = harness.POLICY_PORT
DELAY = 2.0
POOL_A = "127.0.3.11"  # mail-a.out.sender.test, forward-confirmed
POOL_B = "127.0.3.12"  # mail-b.out.sender.test, forward-confirmed
NO_PTR = "127.0.3.13"
TRAPPED = "127.0.3.14"
BYSTANDER = "127.0.3.15"
TRAPPED_POLICY = "127.0.3.16"
SPF_A = "127.0.3.21"  # no PTR; spf-pool.test's SPF authorizes it
SPF_B = "127.0.3.22"  # no PTR; spf-pool.test's SPF authorizes it
HELO_A = "mail-a.out.sender.test"
HELO_B = "mail-b.out.sender.test"
# A trap the backend knows (recipient_delimiter "+"): Postfix's reject_unlisted_recipient comes
# before its check_policy_service, so only an address it accepts reaches the policy service.
TRAP = "user+trap@example.test"

ZONES = f"""
  local-zone: "ready.test." static
  local-data: "ready.test. 300 IN A 127.0.0.1"
  local-zone: "sender.test." static
  local-data: "mail-a.out.sender.test. 300 IN A {POOL_A}"
  local-data: "mail-b.out.sender.test. 300 IN A {POOL_B}"
  local-zone: "3.0.127.in-addr.arpa." static
  local-data-ptr: "{POOL_A} mail-a.out.sender.test"
  local-data-ptr: "{POOL_B} mail-b.out.sender.test"
  local-data: 'sender.test. 300 IN TXT "v=spf1 a:mail-a.out.sender.test a:mail-b.out.sender.test -all"'
  local-zone: "spf-pool.test." static
  local-data: 'spf-pool.test. 300 IN TXT "v=spf1 ip4:{SPF_A} ip4:{SPF_B} -all"'
"""

UNBOUND = None


def setUpModule():
    global UNBOUND
    UNBOUND = test_dns.start_unbound(ZONES)


def tearDownModule():
    if UNBOUND is not None:
        UNBOUND.stop()


def uid():
    return "x" + uuid.uuid4().hex  # a letter first: the VERP rule leaves it alone


def greylisted(rcpt):
    return f"4.2.0 <{rcpt}>: Recipient address rejected: Greylisted, please try again later"


def config(spf="off", **greylist):
    gl = {"enabled": True, "delay": f"{int(DELAY)}s", "ipv4_prefix": 32,
          "identity_keys": True}
    gl.update(greylist)
    return {
        "backend": {"address": harness.BACKEND_PROXY_POLICY, "handoff": "proxy_v2"},
        "greylist": gl,
        "sender": {"spf": spf},  # "log": evaluated on both sides, never a reject
        "policy": {"listen": f"127.0.0.1:{POLICY_PORT}"},
        "dns": {"nameservers": [f"127.0.0.1:{UNBOUND.port}"], "timeout": "2s"},
    }


def attempt(port, source, helo, sender, rcpt, marker):
    """EHLO, MAIL, RCPT; on 250 the marked message too. Returns (code, text) of the RCPT."""
    s = harness.smtp_client(port, source=source, helo=helo)
    try:
        s.ehlo()
        code, text = s.mail(sender)
        if code != 250:
            raise AssertionError(f"MAIL FROM refused: {code} {text!r}")
        code, text = s.rcpt(rcpt)
        if code == 250:
            dcode, dtext = s.data(harness.marked_message(marker, sender, rcpt))
            if dcode != 250:
                raise AssertionError(f"DATA refused: {dcode} {dtext!r}")
        s.quit()
        return code, text.decode("utf-8", "replace")
    finally:
        s.close()


def retry_until_delivered(test, port, source, helo, sender, rcpt, marker):
    """Tries again (new sessions, paced) until the RCPT passes and the message is taken; every
    try before that must be greylisted."""
    def retried():
        code, text = attempt(port, source, helo, sender, rcpt, marker)
        if code == 250:
            return True
        test.assertEqual((code, text), (450, greylisted(rcpt)))
        time.sleep(0.3)  # pacing between retries, not synchronisation
        return False

    harness.wait_until(retried, 15, interval=0, what=f"the retry from {source} to pass")


def line(outcome, source, sender, rcpt):
    return (rf"GREYLIST {re.escape(outcome)} \[{re.escape(source)}\]:\d+ "
            rf"from=<{re.escape(sender)}> to=<{re.escape(rcpt)}>")


class IdentityKeyTest(unittest.TestCase):
    def setUp(self):
        self.lock = test_policy._PolicyPortLock().__enter__()
        self.addCleanup(self.lock.__exit__)

    def retry_from_the_other_address_passes(self, cfg, first, second, domain, kind):
        """first = (address, HELO) is greylisted with key=<kind>:<domain>; the retry from second
        passes after the delay and is delivered; Postfix asks the policy service about the
        replayed RCPT, which finds the same key and the same record."""
        sender, rcpt = f"id.{uid()}@{domain}", f"user+{uid()}@example.test"
        marker = harness.unique_marker(f"id-{kind}")
        key = rf" key={kind}:{re.escape(domain)}"
        with harness.Mxscreen(cfg) as mx:
            t0 = time.monotonic()
            self.assertEqual(attempt(mx.port, *first, sender, rcpt, marker),
                             (450, greylisted(rcpt)))
            mx.wait_log(line("new", first[0], sender, rcpt) + key + " retry in")
            retry_until_delivered(self, mx.port, *second, sender, rcpt, marker)
            self.assertGreaterEqual(time.monotonic() - t0, DELAY - 1.0)
            harness.wait_delivered(marker)
            log = mx.log_text()
            self.assertRegex(log, line("passed", second[0], sender, rcpt) + key)
            self.assertNotRegex(log, line("new", second[0], sender, rcpt))
            mx.wait_log(line("allowlisted", second[0], sender, rcpt) + key + r" \(policy\)$")
            self.assertEqual(mx.metric("mxscreen_greylist_total",
                                       {"outcome": "passed", "key": kind}), 1)
            self.assertEqual(mx.metric("mxscreen_policy_verdicts_total",
                                       {"outcome": "allowlisted", "key": kind}), 1)

    def test_retry_from_another_address_of_the_organisation_passes(self):
        # Both forward-confirmed in sender.test (SPF not evaluated): the organisation is the key.
        self.retry_from_the_other_address_passes(config(), (POOL_A, HELO_A), (POOL_B, HELO_B),
                                                 "sender.test", "ptr")

    def test_retry_from_another_spf_authorized_address_passes(self):
        # Neither address has a PTR: the sender domain's SPF, which authorizes both, is the key
        # (the policy service evaluates SPF for the replayed RCPT itself).
        self.retry_from_the_other_address_passes(config(spf="log"), (SPF_A, HELO_A),
                                                 (SPF_B, HELO_A), "spf-pool.test", "spf")

    def test_without_identity_keys_the_other_address_is_new(self):
        sender, rcpt = f"id.{uid()}@sender.test", f"user+{uid()}@example.test"
        marker = harness.unique_marker("id-net")
        with harness.Mxscreen(config(identity_keys=False)) as mx:
            self.assertEqual(attempt(mx.port, POOL_A, HELO_A, sender, rcpt, marker),
                             (450, greylisted(rcpt)))
            mx.wait_log(line("new", POOL_A, sender, rcpt) + r" key=net:127\.0\.3\.11/32 ")

            # POOL_A's own retry passes once the delay is over...
            retry_until_delivered(self, mx.port, POOL_A, HELO_A, sender, rcpt, marker)
            harness.wait_delivered(marker)
            # ... but the same triplet from POOL_B is a new one.
            self.assertEqual(attempt(mx.port, POOL_B, HELO_B, sender, rcpt, marker + "-b"),
                             (450, greylisted(rcpt)))
            mx.wait_log(line("new", POOL_B, sender, rcpt) + r" key=net:127\.0\.3\.12/32 ")
            self.assertEqual(mx.metric("mxscreen_greylist_total", {"outcome": "new", "key": "net"}),
                             2)


class OnlyIfTest(unittest.TestCase):
    def setUp(self):
        self.lock = test_policy._PolicyPortLock().__enter__()
        self.addCleanup(self.lock.__exit__)

    def test_with_spf_clean_client_delivers_at_once_and_spf_fail_is_greylisted(self):
        cfg = config(spf="log", delay="1h",
                     only_if=["no_fcrdns", "dynamic_ptr", "dnsbl", "helo", "spf"])
        with harness.Mxscreen(cfg) as mx:
            sender, rcpt = f"oi.{uid()}@sender.test", f"user+{uid()}@example.test"
            marker = harness.unique_marker("only-if-spf")
            self.assertEqual(attempt(mx.port, POOL_A, HELO_A, sender, rcpt, marker)[0], 250)
            harness.wait_delivered(marker)
            why = (r" key=spf:sender\.test \(only_if: clean: ptr=mail-a\.out\.sender\.test "
                   r"fcrdns=yes dnsbl=0 helo=ok spf=pass\)")
            mx.wait_log(line("clean", POOL_A, sender, rcpt) + why + "$")
            mx.wait_log(line("clean", POOL_A, sender, rcpt) + why + r" \(policy\)$")

            # No PTR, and sender.test's SPF does not authorize it (-all): fail.
            sender, rcpt = f"oi.{uid()}@sender.test", f"user+{uid()}@example.test"
            self.assertEqual(attempt(mx.port, NO_PTR, HELO_A, sender, rcpt, "unused"),
                             (450, greylisted(rcpt)))
            mx.wait_log(line("new", NO_PTR, sender, rcpt)
                        + r" key=net:127\.0\.3\.13/32 retry in 3600s \(only_if: no_fcrdns,spf: "
                        r"ptr=none fcrdns=no dnsbl=0 helo=ok spf=fail\)$")

    def test_clean_client_delivers_at_once_and_no_ptr_is_greylisted(self):
        cfg = config(delay="1h", only_if=["no_fcrdns", "dynamic_ptr", "dnsbl", "helo"])
        with harness.Mxscreen(cfg) as mx:
            sender, rcpt = f"oi.{uid()}@sender.test", f"user+{uid()}@example.test"
            marker = harness.unique_marker("only-if-clean")
            self.assertEqual(attempt(mx.port, POOL_A, HELO_A, sender, rcpt, marker)[0], 250)
            harness.wait_delivered(marker)
            why = (r" key=ptr:sender\.test \(only_if: clean: ptr=mail-a\.out\.sender\.test "
                   r"fcrdns=yes dnsbl=0 helo=ok spf=unchecked\)")
            mx.wait_log(line("clean", POOL_A, sender, rcpt) + why + "$")
            # Postfix asked about the replayed RCPT: the policy service finds the same facts.
            mx.wait_log(line("clean", POOL_A, sender, rcpt) + why + r" \(policy\)$")

            sender, rcpt = f"oi.{uid()}@sender.test", f"user+{uid()}@example.test"
            self.assertEqual(attempt(mx.port, NO_PTR, HELO_A, sender, rcpt, "unused"),
                             (450, greylisted(rcpt)))
            mx.wait_log(line("new", NO_PTR, sender, rcpt)
                        + r" key=net:127\.0\.3\.13/32 retry in 3600s \(only_if: no_fcrdns: "
                        r"ptr=none fcrdns=no dnsbl=0 helo=ok spf=unchecked\)$")
            self.assertEqual(mx.metric("mxscreen_greylist_total", {"outcome": "clean"}), 1)
            self.assertEqual(mx.metric("mxscreen_greylist_total", {"outcome": "new"}), 1)


def redis_keys(redis, pattern):
    out = subprocess.run(["redis-cli", "-p", str(redis.port), "--scan", "--pattern", pattern],
                         capture_output=True, text=True, timeout=10, check=True).stdout
    return sorted(k for k in out.splitlines() if k)


def refused(port, source):
    """The first line a new connection from source gets (b"" when closed without a word)."""
    sock = harness.raw_connect(port, source=source)
    try:
        return harness.read_line(sock)
    finally:
        sock.close()


def banned(source):
    return f"554 5.7.1 Service unavailable; client [{source}] is banned\r\n".encode()


class SpamTrapTest(unittest.TestCase):
    """Two mxscreen processes sharing one redis-server; the first has two MX listeners and the
    policy service."""

    @classmethod
    def setUpClass(cls):
        cls.redis = harness.RedisServer().start()

    @classmethod
    def tearDownClass(cls):
        cls.redis.cleanup()

    def setUp(self):
        self.lock = test_policy._PolicyPortLock().__enter__()
        self.addCleanup(self.lock.__exit__)

    def mxscreen(self, listeners=1, policy=True, **greylist):
        """An mxscreen on the shared Redis with `listeners` MX listeners; the policy service
        only where `policy` (its port is fixed)."""
        cfg = config(trap_recipients=[TRAP], **greylist)
        cfg["store"] = {"backend": "redis",
                        "redis_url": f"redis://127.0.0.1:{self.redis.port}/0"}
        cfg["ban"] = {"reply": True}
        cfg["listen"] = [{"address": f"127.0.0.1:{harness.free_port()}", "role": "mx"}
                         for _ in range(listeners)]
        if not policy:
            cfg["policy"] = None
        return harness.Mxscreen(cfg)

    def test_trap_recipient_bans_everywhere(self):
        sender = f"trap.{uid()}@sender.test"
        with self.mxscreen(listeners=2) as one:
            s = harness.smtp_client(one.port, source=TRAPPED, helo=HELO_A)
            s.ehlo()
            self.assertEqual(s.mail(sender)[0], 250)
            code, text = s.rcpt(TRAP)
            self.assertEqual((code, text.decode()),
                             (521, f"5.7.1 Service unavailable; client [{TRAPPED}] is banned"))
            s.close()
            one.wait_log(rf"TRAP \[{re.escape(TRAPPED)}\]:\d+ from=<{re.escape(sender)}> "
                         rf"to=<{re.escape(TRAP)}>: spam trap recipient; banning the client")
            one.wait_log(rf"BANNED \[{re.escape(TRAPPED)}\] for 3600s: spam trap "
                         rf"<{re.escape(TRAP)}>")
            self.assertIn(f"ban:{TRAPPED}", redis_keys(self.redis, "ban:*"))
            # Every listener of this mxscreen refuses it...
            for port in one.ports:
                self.assertEqual(refused(port, TRAPPED), banned(TRAPPED), port)
            self.assertEqual(one.metric("mxscreen_trap_hits_total", {"side": "dialogue"}), 1)
            self.assertEqual(one.metric("mxscreen_bans_total", {"trigger": "trap"}), 1)
        # ... and so does another mxscreen on the same Redis; another client is welcome.
        with self.mxscreen(policy=False) as two:
            self.assertEqual(refused(two.port, TRAPPED), banned(TRAPPED))
            self.assertTrue(refused(two.port, BYSTANDER).startswith(b"220-"))
            two.wait_log(rf"BANNED \[{re.escape(TRAPPED)}\]:\d+: connection refused "
                         rf"\(spam trap <{re.escape(TRAP)}>")
            self.assertEqual(two.metric("mxscreen_banned_connections_total"), 1)

    def test_trap_after_the_handoff_bans_through_the_policy_service(self):
        sender = f"trap.{uid()}@sender.test"
        rcpt = f"user+{uid()}@example.test"
        # No greylisting: the first RCPT passes mxscreen and the session is spliced to Postfix;
        # the trap is the second RCPT, which only Postfix (and its policy service) sees.
        with self.mxscreen(enabled=False) as one, self.mxscreen(policy=False) as two:
            s = harness.smtp_client(one.port, source=TRAPPED_POLICY, helo=HELO_A)
            s.ehlo()
            self.assertEqual(s.mail(sender)[0], 250)
            self.assertEqual(s.rcpt(rcpt)[0], 250)
            code, text = s.rcpt(TRAP)
            self.assertEqual(code, 521, text)
            self.assertIn(f"Service unavailable; client [{TRAPPED_POLICY}] is banned",
                          text.decode())
            s.close()
            one.wait_log(rf"TRAP \[{re.escape(TRAPPED_POLICY)}\]:\d+ from=<{re.escape(sender)}> "
                         rf"to=<{re.escape(TRAP)}>: spam trap recipient; banning the client "
                         r"\(policy\)")
            one.wait_log(rf"BANNED \[{re.escape(TRAPPED_POLICY)}\] for 3600s")
            self.assertEqual(refused(one.port, TRAPPED_POLICY), banned(TRAPPED_POLICY))
            self.assertEqual(refused(two.port, TRAPPED_POLICY), banned(TRAPPED_POLICY))
            self.assertEqual(one.metric("mxscreen_trap_hits_total", {"side": "policy"}), 1)
            self.assertEqual(one.metric("mxscreen_policy_verdicts_total",
                                        {"action": "reject", "outcome": "trap"}), 1)


if __name__ == "__main__":
    unittest.main(verbosity=2)
