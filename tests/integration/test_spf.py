"""SPF (RFC 7208, sender.spf) against a real unbound serving hand-made SPF zones (issue 18).

What the user notices:
- in mxscreen's own dialogue (the check starts at MAIL FROM and answers at the RCPT that would
  hand off): a sender whose domain authorizes the client through an include chain passes and
  the mail reaches Postfix ("SPF pass ... mechanism=include:..." logged); with reject_fail, an
  SPF fail gets "550 5.7.23 <sender>: Sender address rejected: Message rejected due to: SPF fail
  - not authorized. <the domain's exp= text>" and nothing reaches Postfix; a softfail is logged
  and delivered; ptr and mx mechanisms (PTR, MX, A through the resolver) and the %{p} macro;
  a record past the 10-DNS-lookup limit is a logged permerror and delivered;
  with reject_fail_softfail the softfail is refused too; with "log" a fail is delivered;
- through the policy service, with real Postfix asking at every RCPT: in a spliced session, a
  second transaction whose sender fails SPF gets Postfix's "550 5.7.23 <rcpt>: Recipient
  address rejected: Message rejected due to: SPF fail ..." and "SPF fail ... (policy)" is logged;
- a sender domain whose lookups never answer: the RCPT waits for the finding
  (dns.timeout per lookup, sender.spf_timeout for the whole), which is a temperror, logged and
  accepted;
- a flood of policy requests for distinct sender domains, whose nameserver never answers,
  keeps the evaluations in flight at sender.spf_max_in_flight (mxscreen_spf_in_flight never
  above it, the rest answered at once as temperror: mxscreen_spf_limit_total), and none of it
  is refused.

unbound runs as in test_dns.py (its Unbound class with these zones). Clients are bound to
127.0.0.23x source addresses that no other integration test uses.
"""

import os
import re
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import test_dns  # noqa: E402
from test_policy import _PolicyPortLock  # noqa: E402

PASS_IP = "127.0.0.231"      # authorized by _spf.inc.spf.test (through pass.spf.test's include)
OTHER_IP = "127.0.0.232"     # authorized by nobody
POLICY_IP = "127.0.0.233"    # the spliced-session client of the policy test
PTR_IP = "127.0.0.234"       # PTR mail234.ptr.spf.test, whose A leads back (ptr, mx, %{p})
HOSTNAME = "mx.spf.test"
RCPT = harness.MAILBOX

ZONES = f"""
  local-zone: "ready.test." static
  local-data: "ready.test. 300 IN A 127.0.0.1"
  local-zone: "spf.test." static
  local-data: 'pass.spf.test. 300 IN TXT "v=spf1 include:_spf.inc.spf.test -all"'
  local-data: 'pass.spf.test. 300 IN TXT "some-site-verification=123"'
  local-data: '_spf.inc.spf.test. 300 IN TXT "v=spf1 include:_n1.inc.spf.test include:_n2.inc.spf.test ~all"'
  local-data: '_n1.inc.spf.test. 300 IN TXT "v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 ~all"'
  local-data: '_n2.inc.spf.test. 300 IN TXT "v=spf1 ip4:{PASS_IP} ip4:{POLICY_IP} ~all"'
  local-data: 'fail.spf.test. 300 IN TXT "v=spf1 ip4:192.0.2.0/24 -all exp=why.spf.test"'
  local-data: 'why.spf.test. 300 IN TXT "%{{i}} is not a mail server of %{{d}}"'
  local-data: 'soft.spf.test. 300 IN TXT "v=spf1 a:mail.soft.spf.test ~all"'
  local-data: "mail.soft.spf.test. 300 IN A 192.0.2.25"
  local-data: 'limit.spf.test. 300 IN TXT "v=spf1 {' '.join(f'a:h{i}.limit.spf.test' for i in range(11))} -all"'
  local-data: 'ptr.spf.test. 300 IN TXT "v=spf1 ptr:ptr.spf.test -all"'
  local-data: 'mx.spf.test. 300 IN TXT "v=spf1 mx:mxhost.spf.test -all exp=mxwhy.spf.test"'
  local-data: 'mxwhy.spf.test. 300 IN TXT "%{{c}} (%{{p}}) is not an MX of %{{o}}"'
  local-data: 'nope.spf.test. 300 IN TXT "v=spf1 -all exp=mxwhy.spf.test"'
  local-data: "mxhost.spf.test. 300 IN MX 10 mail234.ptr.spf.test."
  local-data: "mxhost.spf.test. 300 IN MX 20 backup.ptr.spf.test."
  local-data: "mail234.ptr.spf.test. 300 IN A {PTR_IP}"
  local-data: "backup.ptr.spf.test. 300 IN A 192.0.2.99"
  local-zone: "0.0.127.in-addr.arpa." static
  local-data-ptr: "{PTR_IP} mail234.ptr.spf.test"
""" + "".join(f'  local-data: "h{i}.limit.spf.test. 300 IN A 192.0.2.{i + 1}"\n' for i in range(11))

UNBOUND = None
BLACKHOLE = None  # a nameserver that never answers


def setUpModule():
    global UNBOUND, BLACKHOLE
    UNBOUND = test_dns.start_unbound(ZONES)
    BLACKHOLE = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    BLACKHOLE.bind(("127.0.0.1", 0))


def tearDownModule():
    if UNBOUND is not None:
        UNBOUND.stop()
    if BLACKHOLE is not None:
        BLACKHOLE.close()


def black_hole():
    return f"127.0.0.1:{BLACKHOLE.getsockname()[1]}"


def spf_config(mode, nameserver=None, **extra):
    config = {
        "server": {"hostname": HOSTNAME},
        "dns": {"nameservers": [nameserver or f"127.0.0.1:{UNBOUND.port}"], "timeout": "2s"},
        "sender": {"spf": mode},
    }
    for section, body in extra.items():
        config.setdefault(section, {}).update(body)
    return config


def spf_line(result, source, facts, side="session"):
    return (rf"SPF {result} \[{re.escape(source)}\]:\d+.*: identity=mailfrom; "
            rf"client-ip={re.escape(source)}; helo={re.escape(harness.CLIENT_HELO)}; "
            rf".*{facts}.*\({side}\)$")


class SpfDialogueTest(unittest.TestCase):
    """sender.spf in mxscreen's own dialogue (the RCPT before the handoff)."""

    def attempt(self, mx, source, sender):
        marker = harness.unique_marker("spf")
        code, text = harness.rcpt_attempt(mx.port, source, sender, marker)
        return code, text, marker

    def test_reject_fail(self):
        offset = harness.postfix_log_offset()
        with harness.Mxscreen(spf_config("reject_fail")) as mx:
            # pass through the include chain: delivered
            code, text, marker = self.attempt(mx, PASS_IP, "alice@pass.spf.test")
            self.assertEqual(code, 250, text)
            harness.wait_delivered(marker)
            mx.wait_log(spf_line("pass", PASS_IP, r"envelope-from=<alice@pass\.spf\.test>; "
                                 r"receiver=mx\.spf\.test; domain=pass\.spf\.test; "
                                 r"mechanism=include:_spf\.inc\.spf\.test; action=accept"))
            # fail: 550 5.7.23 with the domain's explanation, nothing reaches Postfix
            code, text, marker = self.attempt(mx, OTHER_IP, "bob@fail.spf.test")
            self.assertEqual(code, 550)
            self.assertEqual(text, "5.7.23 <bob@fail.spf.test>: Sender address rejected: Message "
                                   "rejected due to: SPF fail - not authorized. "
                                   f"{OTHER_IP} is not a mail server of fail.spf.test")
            mx.wait_log(spf_line("fail", OTHER_IP, r"mechanism=-all; action=reject"))
            mx.wait_log(rf"NOQUEUE: reject: RCPT from \[{re.escape(OTHER_IP)}\]:\d+: 550 5\.7\.23 "
                        rf"<bob@fail\.spf\.test>")
            # softfail: logged, delivered
            code, text, marker = self.attempt(mx, OTHER_IP, "carol@soft.spf.test")
            self.assertEqual(code, 250, text)
            harness.wait_delivered(marker)
            mx.wait_log(spf_line("softfail", OTHER_IP, r"mechanism=~all; action=accept"))
            # past the 10-DNS-lookup limit: permerror, logged, delivered
            code, text, marker = self.attempt(mx, OTHER_IP, "dave@limit.spf.test")
            self.assertEqual(code, 250, text)
            harness.wait_delivered(marker)
            mx.wait_log(spf_line("permerror", OTHER_IP,
                                 r'problem="more than 10 DNS-lookup terms"; action=accept'))
            for result, action, n in (("pass", "accept", 1), ("fail", "reject", 1),
                                      ("softfail", "accept", 1), ("permerror", "accept", 1)):
                self.assertEqual(mx.metric("mxscreen_spf_total", {"result": result,
                                                                  "side": "session",
                                                                  "action": action}), n)
            self.assertEqual(mx.metric("mxscreen_test_results_total",
                                       {"test": "spf", "outcome": "reject"}), 1)
        log = harness.postfix_log_since(offset)
        self.assertNotIn("bob@fail.spf.test", log)

    def test_ptr_and_mx_mechanisms_and_ptr_macro(self):
        with harness.Mxscreen(spf_config("reject_fail")) as mx:
            for sender in ("hana@ptr.spf.test", "ivan@mx.spf.test"):
                code, text, marker = self.attempt(mx, PTR_IP, sender)
                self.assertEqual(code, 250, text)
                harness.wait_delivered(marker)
            mx.wait_log(spf_line("pass", PTR_IP, r"mechanism=ptr:ptr\.spf\.test; action=accept"))
            mx.wait_log(spf_line("pass", PTR_IP,
                                 r"mechanism=mx:mxhost\.spf\.test; action=accept"))
            # Not an MX host: fail, with an explanation that names the client's validated
            # PTR name (%{p}) and address (%{c}).
            code, text, _ = self.attempt(mx, OTHER_IP, "ivan@mx.spf.test")
            self.assertEqual((code, text), (550, "5.7.23 <ivan@mx.spf.test>: Sender address "
                                                 "rejected: Message rejected due to: SPF fail - "
                                                 f"not authorized. {OTHER_IP} (unknown) is not an "
                                                 "MX of mx.spf.test"))
            code, text, _ = self.attempt(mx, PTR_IP, "jan@nope.spf.test")
            self.assertEqual((code, text), (550, "5.7.23 <jan@nope.spf.test>: Sender address "
                                                 "rejected: Message rejected due to: SPF fail - "
                                                 f"not authorized. {PTR_IP} "
                                                 "(mail234.ptr.spf.test) is not an MX of "
                                                 "nope.spf.test"))

    def test_reject_fail_softfail_and_log(self):
        with harness.Mxscreen(spf_config("reject_fail_softfail")) as mx:
            code, text, _ = self.attempt(mx, OTHER_IP, "carol@soft.spf.test")
            self.assertEqual(code, 550)
            self.assertTrue(text.startswith("5.7.23 <carol@soft.spf.test>: Sender address "
                                            "rejected: Message rejected due to: SPF softfail"),
                            text)
        with harness.Mxscreen(spf_config("log")) as mx:
            code, text, marker = self.attempt(mx, OTHER_IP, "bob@fail.spf.test")
            self.assertEqual(code, 250, text)
            harness.wait_delivered(marker)
            mx.wait_log(spf_line("fail", OTHER_IP, r"mechanism=-all; action=accept"))


class SpfSlowDnsTest(unittest.TestCase):
    """The RCPT waits for an SPF evaluation still out, and a DNS timeout is never a reject:
    mxscreen's nameserver is the black hole here, so the first lookup never answers."""

    def slow_attempt(self, config, problem):
        with harness.Mxscreen(config) as mx:
            marker = harness.unique_marker("spf-slow")
            t0 = time.monotonic()
            code, text = harness.rcpt_attempt(mx.port, OTHER_IP, "gina@pass.spf.test", marker)
            waited = time.monotonic() - t0
            self.assertEqual(code, 250, text)
            self.assertGreaterEqual(waited, 0.9)  # the RCPT's reply waited for the finding
            harness.wait_delivered(marker)
            mx.wait_log(spf_line("temperror", OTHER_IP, rf'problem="{problem}"; action=accept'))
            return mx.metric("mxscreen_spf_timeouts_total", default=0)

    def test_lookup_timeout_is_temperror_and_accepted(self):
        timeouts = self.slow_attempt(
            spf_config("reject_fail", nameserver=black_hole(), dns={"timeout": "1s"}),
            r"DNS error looking up TXT of pass\.spf\.test")
        self.assertEqual(timeouts, 0)

    def test_whole_evaluation_bounded_by_spf_timeout(self):
        timeouts = self.slow_attempt(
            spf_config("reject_fail", nameserver=black_hole(), dns={"timeout": "5s"},
                       sender={"spf": "reject_fail", "spf_timeout": "1s"}),
            r"no finding within sender\.spf_timeout \(1000ms\)")
        self.assertEqual(timeouts, 1)


class SpfPolicyTest(unittest.TestCase):
    """sender.spf through the policy service, asked by the real Postfix of a spliced session."""

    def setUp(self):
        self.lock = _PolicyPortLock().__enter__()
        self.addCleanup(self.lock.__exit__)

    def test_spliced_session_second_transaction_fails_spf_at_postfix(self):
        config = spf_config("reject_fail",
                            backend={"address": harness.BACKEND_PROXY_POLICY,
                                     "handoff": "proxy_v2"},
                            policy={"listen": f"127.0.0.1:{harness.POLICY_PORT}"})
        pf_offset = harness.postfix_log_offset()
        with harness.Mxscreen(config) as mx:
            s = harness.smtp_client(mx.port, source=POLICY_IP)
            try:
                s.ehlo()
                self.assertEqual(s.mail("erin@pass.spf.test")[0], 250)
                code, text = s.rcpt(RCPT)  # mxscreen's SPF pass, handoff, Postfix asks again
                self.assertEqual(code, 250, text)
                marker = harness.unique_marker("spf-pol")
                self.assertEqual(s.data(harness.marked_message(marker, "erin@pass.spf.test"))[0],
                                 250)
                harness.wait_delivered(marker)
                mx.wait_log(spf_line("pass", POLICY_IP, r"action=accept", side="session"))
                mx.wait_log(spf_line("pass", POLICY_IP, r"action=accept", side="policy"))
                # Spliced now: only Postfix sees this transaction, and asks the policy service.
                self.assertEqual(s.mail("frank@fail.spf.test")[0], 250)
                code, text = s.rcpt(RCPT)
                self.assertEqual(code, 550)
                self.assertEqual(text.decode(), f"5.7.23 <{RCPT}>: Recipient address rejected: "
                                                "Message rejected due to: SPF fail - not "
                                                f"authorized. {POLICY_IP} is not a mail "
                                                "server of fail.spf.test")
                s.quit()
            finally:
                s.close()
            mx.wait_log(spf_line("fail", POLICY_IP, r"mechanism=-all; action=reject",
                                 side="policy"))
            harness.wait_for_log(rf"reject: RCPT from unknown\[{re.escape(POLICY_IP)}\]: 550 "
                                 rf"5\.7\.23 <{re.escape(RCPT)}>", pf_offset)
            self.assertEqual(mx.metric("mxscreen_policy_verdicts_total",
                                       {"action": "reject", "outcome": "spf_reject"}), 1)


def policy_request(port, sender, client="192.0.2.9", timeout=15.0):
    """One policy request on its own connection; returns the action line."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(("request=smtpd_access_policy\nprotocol_state=RCPT\n"
                      f"client_address={client}\nclient_name=unknown\nhelo_name=mail.example.org\n"
                      f"sender={sender}\nrecipient={RCPT}\n\n").encode())
        data = b""
        while not data.endswith(b"\n\n"):
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
        return data.decode().strip()


class SpfFloodTest(unittest.TestCase):
    def test_distinct_sender_domains_keep_evaluations_in_flight_bounded(self):
        limit, flood = 3, 40
        policy_port = harness.free_port()
        config = spf_config("reject_fail", nameserver=black_hole(),
                            sender={"spf": "reject_fail", "spf_max_in_flight": limit},
                            dns={"timeout": "3s"},
                            policy={"listen": f"127.0.0.1:{policy_port}", "max_connections": 100})
        with harness.Mxscreen(config) as mx:
            answers, peak = [], [0]
            stop = threading.Event()

            def watch():
                while not stop.is_set():
                    value = mx.metric("mxscreen_spf_in_flight", default=0)
                    peak[0] = max(peak[0], value)
                    time.sleep(0.005)  # polling pace, not synchronisation

            watcher = threading.Thread(target=watch)
            watcher.start()
            threads = [threading.Thread(target=lambda i=i: answers.append(
                policy_request(policy_port, f"user@d{i}.flood.test"))) for i in range(flood)]
            try:
                for t in threads:
                    t.start()
                # Those over the limit are answered at once, as temperror (not refused).
                harness.wait_until(lambda: mx.metric("mxscreen_spf_limit_total", default=0)
                                   >= flood - limit, 10, what="the over-limit requests")
                self.assertEqual(mx.metric("mxscreen_spf_in_flight"), limit)
                for t in threads:
                    t.join(20)
            finally:
                stop.set()
                watcher.join()
            self.assertEqual(len(answers), flood)
            self.assertEqual(set(answers), {"action=DUNNO"})
            self.assertLessEqual(peak[0], limit)
            self.assertEqual(mx.metric("mxscreen_spf_limit_total"), flood - limit)
            self.assertEqual(mx.metric("mxscreen_spf_in_flight"), 0)
            self.assertEqual(mx.metric("mxscreen_spf_total", {"result": "temperror",
                                                              "side": "policy",
                                                              "action": "accept"}), flood)
            mx.wait_log(r"SPF temperror \[192\.0\.2\.9\]:0 from=<user@d\d+\.flood\.test>.*"
                        r'problem="over sender\.spf_max_in_flight \(3 SPF evaluations in flight\)"')


if __name__ == "__main__":
    unittest.main(verbosity=2)
