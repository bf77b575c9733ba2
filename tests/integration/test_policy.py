"""Greylisting of every recipient: mxscreen's Postfix policy service, with real Postfix calling it
(issue 14, item 2).

The private test backend's services harness.BACKEND_PROXY_POLICY (PROXY) and
BACKEND_XCLIENT_POLICY (XCLIENT) of scripts/postfix-backend ask the policy service at
127.0.0.1:POLICY_PORT in smtpd_recipient_restrictions, after
reject_unauth_destination and reject_unlisted_recipient. What the user notices:
- a spliced session (the client passed mxscreen's own greylisting for its first recipient) gets
  450 4.2.0 from Postfix for a second recipient (a new triplet), and "GREYLIST new ... (policy)"
  is logged; the first recipient, replayed to Postfix, is not greylisted a second time; the
  second recipient passes after the delay, in a later transaction of the same session;
- a second transaction in the same session with a new sender is greylisted likewise;
- a recipient Postfix does not know gets 550 on the spliced path, never a greylisting 450;
- a PASS OLD client (spliced at connect) still has its new triplets greylisted;
- a pass through the recipient allowlist earns the client no PASS OLD;
- with greylist.skip_on_nolisting_pass, a client that tried the fake MX first is greylisted
  neither at the handoff nor by Postfix asking about its later recipients;
- the service itself, spoken to directly: answers in order, refuses oversized requests,
  garbage, slow and idle clients, refuses connections past policy.max_connections (1,000
  connections), and fails open (DUNNO) while Redis is down.

POLICY_PORT is fixed by Postfix's configuration, so the tests that need Postfix hold a lock file
while their mxscreen listens there (other test processes on the machine wait for it).
"""

import fcntl
import os
import re
import shutil
import socket
import sys
import tempfile
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

POLICY_PORT = harness.POLICY_PORT
BACKEND_PROXY_POLICY = harness.BACKEND_PROXY_POLICY
BACKEND_XCLIENT_POLICY = harness.BACKEND_XCLIENT_POLICY
DELAY = 2.0
LOCK_PATH = f"/tmp/mxscreen-test-policy-{POLICY_PORT}.lock"


def greylisted_text(rcpt):
    return f"4.2.0 <{rcpt}>: Recipient address rejected: Greylisted, please try again later"


def uid():
    """Letters first in every word, so that the VERP rule (number-only words become '#')
    cannot merge two of them."""
    return "x" + uuid.uuid4().hex


def unique_sender():
    return f"pol.{uid()}@example.org"


def mailbox(tag):
    """A recipient the backend knows (recipient_delimiter "+"), delivered to the test Maildir,
    and a triplet of its own."""
    return f"user+{tag}@example.test"


def policy_config(backend=BACKEND_PROXY_POLICY, handoff="proxy_v2", **extra):
    config = {
        "backend": {"address": backend, "handoff": handoff},
        "greylist": {"enabled": True, "delay": f"{int(DELAY)}s"},
        "policy": {"listen": f"127.0.0.1:{POLICY_PORT}"},
    }
    for section, body in extra.items():
        config.setdefault(section, {}).update(body)
    return config


def gl_line(outcome, source, sender, rcpt, policy):
    return (rf"GREYLIST {re.escape(outcome)} \[{re.escape(source)}\]:\d+ "
            rf"from=<{re.escape(sender)}> to=<{re.escape(rcpt)}>.*"
            + (r"\(policy\)$" if policy else r"(?<!\(policy\))$"))


class _PolicyPortLock:
    def __enter__(self):
        self.f = open(LOCK_PATH, "w")
        fcntl.flock(self.f, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.f, fcntl.LOCK_UN)
        self.f.close()
        return False


class PostfixCallsPolicyTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        harness.ensure_postfix()

    def setUp(self):
        self.lock = _PolicyPortLock().__enter__()
        self.addCleanup(self.lock.__exit__)

    def wait_pass_first_rcpt(self, mx, source, sender, rcpt):
        """mxscreen's own greylisting: 450 at the first try, then retries (new sessions) until
        the RCPT passes; returns the open smtplib session, spliced to Postfix, after RCPT 250."""
        since = mx.log_offset()
        s = harness.smtp_client(mx.port, source=source)
        s.ehlo()
        self.assertEqual(s.mail(sender)[0], 250)
        code, text = s.rcpt(rcpt)
        self.assertEqual((code, text.decode()), (450, greylisted_text(rcpt)))
        s.quit()
        mx.wait_log(gl_line("new", source, sender, rcpt, policy=False), since=since)
        t0 = time.monotonic()

        def passed():
            c = harness.smtp_client(mx.port, source=source)
            c.ehlo()
            self.assertEqual(c.mail(sender)[0], 250)
            code, text = c.rcpt(rcpt)
            if code == 250:
                return c
            self.assertEqual((code, text.decode()), (450, greylisted_text(rcpt)))
            c.quit()
            time.sleep(0.3)  # pacing between retries, not synchronisation
            return None

        session = harness.wait_until(passed, 15, interval=0, what="the first RCPT to pass")
        self.assertGreaterEqual(time.monotonic() - t0, DELAY - 1.0)
        return session

    def retry_in_session(self, s, sender, rcpt, timeout=15.0):
        """In one open session: MAIL/RCPT, RSET after each Postfix 450, until RCPT passes."""
        def passed():
            self.assertEqual(s.mail(sender)[0], 250)
            code, text = s.rcpt(rcpt)
            if code == 250:
                return True
            self.assertEqual((code, text.decode()), (450, greylisted_text(rcpt)))
            s.rset()
            time.sleep(0.5)  # pacing (Postfix counts each 450 as an error), not synchronisation
            return False

        harness.wait_until(passed, timeout, interval=0, what=f"RCPT {rcpt} to pass at Postfix")

    def check_spliced_session(self, mx, source):
        sender, sender2 = unique_sender(), unique_sender()
        rcpt1, rcpt2 = mailbox(uid()), mailbox(uid())
        pf_offset = harness.postfix_log_offset()
        s = self.wait_pass_first_rcpt(mx, source, sender, rcpt1)
        try:
            # Postfix asked about the replayed first RCPT: the triplet mxscreen passed.
            mx.wait_log(gl_line("allowlisted", source, sender, rcpt1, policy=True))
            since = mx.log_offset()
            code, text = s.rcpt(rcpt2)  # a new triplet, now at Postfix
            self.assertEqual((code, text.decode()), (450, greylisted_text(rcpt2)))
            mx.wait_log(gl_line("new", source, sender, rcpt2, policy=True), since=since)
            harness.wait_for_log(
                rf"(NOQUEUE|[0-9A-F]+): reject: RCPT from unknown\[{re.escape(source)}\]: 450 4\.2\.0 "
                rf"<{re.escape(rcpt2)}>: Recipient address rejected: Greylisted", pf_offset)
            marker = harness.unique_marker("pol-1")
            code, _ = s.data(harness.marked_message(marker, sender, rcpt1))
            self.assertEqual(code, 250)
            harness.wait_delivered(marker)
            # A second transaction, new sender: greylisted by Postfix via the policy service.
            self.assertEqual(s.mail(sender2)[0], 250)
            code, text = s.rcpt(rcpt1)
            self.assertEqual((code, text.decode()), (450, greylisted_text(rcpt1)))
            mx.wait_log(gl_line("new", source, sender2, rcpt1, policy=True))
            s.rset()
            # After the delay both pass, in later transactions of the same session.
            self.retry_in_session(s, sender, rcpt2)
            marker2 = harness.unique_marker("pol-2")
            self.assertEqual(s.data(harness.marked_message(marker2, sender, rcpt2))[0], 250)
            self.retry_in_session(s, sender2, rcpt1)
            marker3 = harness.unique_marker("pol-3")
            self.assertEqual(s.data(harness.marked_message(marker3, sender2, rcpt1))[0], 250)
            harness.wait_delivered(marker2)
            harness.wait_delivered(marker3)
            mx.wait_log(gl_line("passed", source, sender, rcpt2, policy=True))
            mx.wait_log(gl_line("passed", source, sender2, rcpt1, policy=True))
            s.quit()
        finally:
            s.close()
        # Every triplet was greylisted once: no second "new" for any of them.
        log = mx.log_text()
        for snd, rc in ((sender, rcpt1), (sender, rcpt2), (sender2, rcpt1)):
            news = re.findall(rf"GREYLIST new \S+ from=<{re.escape(snd)}> to=<{re.escape(rc)}>",
                              log)
            self.assertEqual(len(news), 1, (snd, rc, news))
        self.assertGreaterEqual(mx.metric("mxscreen_policy_verdicts_total",
                                          {"action": "defer_if_permit", "outcome": "new"}), 2)

    def test_spliced_session_second_rcpt_and_second_transaction_greylisted_proxy(self):
        with harness.Mxscreen(policy_config()) as mx:
            self.check_spliced_session(mx, "127.0.0.61")

    def test_spliced_session_second_rcpt_and_second_transaction_greylisted_xclient(self):
        with harness.Mxscreen(policy_config(BACKEND_XCLIENT_POLICY, "xclient")) as mx:
            self.check_spliced_session(mx, "127.0.0.62")

    def test_unknown_recipient_gets_550_without_greylisting(self):
        with harness.Mxscreen(policy_config()) as mx:
            source, sender = "127.0.0.63", unique_sender()
            s = self.wait_pass_first_rcpt(mx, source, sender, mailbox(uid()))
            try:
                since = mx.log_offset()
                requests = mx.metric("mxscreen_policy_requests_total", default=0)
                code, text = s.rcpt("unknown@example.test")
                self.assertEqual(code, 550, text)
                self.assertIn(b"5.1.1", text)
                s.rset()
                s.quit()
            finally:
                s.close()
            # Postfix never asked: reject_unlisted_recipient comes first.
            self.assertEqual(mx.metric("mxscreen_policy_requests_total", default=0), requests)
            self.assertNotIn("unknown@example.test", mx.log_text()[since:])

    def test_pass_old_client_still_greylisted_per_triplet(self):
        with harness.Mxscreen(policy_config(cache={"pass_ttl": "1h"})) as mx:
            source = "127.0.0.64"
            first = self.wait_pass_first_rcpt(mx, source, unique_sender(), mailbox(uid()))
            first.quit()
            mx.wait_log(rf"PASS NEW \[{re.escape(source)}\]")
            since = mx.log_offset()
            sender, rcpt = unique_sender(), mailbox(uid())
            s = harness.smtp_client(mx.port, source=source)
            try:
                mx.wait_log(rf"PASS OLD \[{re.escape(source)}\]", since=since)
                s.ehlo()
                self.assertEqual(s.mail(sender)[0], 250)
                code, text = s.rcpt(rcpt)
                self.assertEqual((code, text.decode()), (450, greylisted_text(rcpt)))
                mx.wait_log(gl_line("new", source, sender, rcpt, policy=True), since=since)
                s.rset()
                self.retry_in_session(s, sender, rcpt)
                marker = harness.unique_marker("pol-old")
                self.assertEqual(s.data(harness.marked_message(marker, sender, rcpt))[0], 250)
                harness.wait_delivered(marker)
                s.quit()
            finally:
                s.close()

    def test_allowlisted_recipient_pass_earns_no_pass_old(self):
        rcpt = mailbox("postmaster" + uid())
        allow_dir = tempfile.mkdtemp(prefix="mxscreen-policy-")
        self.addCleanup(shutil.rmtree, allow_dir, True)
        allow = os.path.join(allow_dir, "recipients")
        with open(allow, "w") as f:
            f.write(rcpt + "\n")
        config = policy_config(cache={"pass_ttl": "1h"},
                               greylist={"recipient_allowlist_file": allow})
        with harness.Mxscreen(config) as mx:
            source, sender = "127.0.0.65", unique_sender()
            marker = harness.unique_marker("pol-allow")
            code, _ = harness.rcpt_attempt(mx.port, source, sender, marker, rcpt=rcpt)
            self.assertEqual(code, 250)
            harness.wait_delivered(marker)
            mx.wait_log(rf"GREYLIST allowlisted \[{re.escape(source)}\]:\d+ from=<{re.escape(sender)}> "
                        rf"to=<{re.escape(rcpt)}> by recipient_allowlist_file")
            # Postfix asked too, and the policy service let it through by the same file.
            mx.wait_log(gl_line("allowlisted", source, sender, rcpt, policy=True))
            since = mx.log_offset()
            rcpt2 = mailbox(uid())
            code, text = harness.rcpt_attempt(mx.port, source, unique_sender(), "unused",
                                              rcpt=rcpt2)
            self.assertEqual((code, text), (450, greylisted_text(rcpt2)))
            mx.wait_log(rf"GREYLIST new \[{re.escape(source)}\]", since=since)
            self.assertNotRegex(mx.log_text(), rf"PASS (NEW|OLD) \[{re.escape(source)}\]")


    def test_nolisting_pass_client_is_not_greylisted_by_postfix_either(self):
        # greylist.skip_on_nolisting_pass: a client that tried the fake MX first skips
        # mxscreen's greylisting at the handoff, and the policy service follows the same rule
        # for the later recipients of its session while the pair signal lives.
        mx_port, fake_port = harness.free_port("127.0.0.1"), harness.free_port("127.0.0.2")
        config = policy_config(
            greylist={"skip_on_nolisting_pass": True},
            fake_mx={"action": "reset", "pair_window": "1m"})
        config["listen"] = [{"address": f"127.0.0.1:{mx_port}", "role": "mx"},
                            {"address": f"127.0.0.2:{fake_port}", "role": "fake_mx"}]
        with harness.Mxscreen(config) as mx:
            source, sender = "127.0.0.67", unique_sender()
            rcpt1, rcpt2 = mailbox(uid()), mailbox(uid())
            from test_abuse import fake_mx_reset_hit
            self.assertTrue(fake_mx_reset_hit(fake_port, source))
            s = harness.smtp_client(mx_port, source=source)
            try:
                s.ehlo()
                self.assertEqual(s.mail(sender)[0], 250)
                self.assertEqual(s.rcpt(rcpt1)[0], 250)  # handoff, no greylisting
                mx.wait_log(rf"FAKE-MX pass \[{re.escape(source)}\]")
                mx.wait_log(gl_line("nolisting", source, sender, rcpt1, policy=False))
                code, text = s.rcpt(rcpt2)  # a new triplet, at Postfix
                self.assertEqual(code, 250, text)
                mx.wait_log(gl_line("nolisting", source, sender, rcpt2, policy=True))
                marker = harness.unique_marker("pol-nolisting")
                self.assertEqual(s.data(harness.marked_message(marker, sender, rcpt1))[0], 250)
                harness.wait_delivered(marker)
                s.quit()
            finally:
                s.close()
            self.assertNotRegex(mx.log_text(), rf"GREYLIST new \[{re.escape(source)}\]")
            # A client without the pair signal is greylisted by Postfix as before.
            other = "127.0.0.68"
            code, text = harness.rcpt_attempt(mx_port, other, sender, "unused", rcpt=rcpt2)
            self.assertEqual((code, text), (450, greylisted_text(rcpt2)))


# ---------------------------------------------------------------------------------------------
# The service on its own (no Postfix): a free port, requests written by hand.

def request(sender, rcpt, client="192.0.2.7", state="RCPT", **extra):
    attrs = {"request": "smtpd_access_policy", "protocol_state": state,
             "protocol_name": "ESMTP", "client_address": client, "client_name": "unknown",
             "client_port": "4711", "helo_name": "mail.example.org", "sender": sender,
             "recipient": rcpt, "instance": "1.2.3"}
    attrs.update(extra)
    return "".join(f"{k}={v}\n" for k, v in attrs.items()).encode() + b"\n"


def read_answer(sock, timeout=5.0):
    data = bytearray()
    deadline = time.monotonic() + timeout
    while not data.endswith(b"\n\n"):
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = sock.recv(1)
        if not chunk:
            raise ConnectionError(f"closed after {bytes(data)!r}")
        data += chunk
    return data.decode()


GREYLISTED = "action=DEFER_IF_PERMIT 4.2.0 Greylisted, please try again later\n\n"


class PolicyServiceBadInputTest(unittest.TestCase):
    def service(self, **policy):
        self.policy_port = harness.free_port()
        cfg = {"greylist": {"enabled": True, "delay": "1h"},
               "policy": {"listen": f"127.0.0.1:{self.policy_port}", **policy}}
        mx = harness.Mxscreen(cfg)
        mx.ports.append(self.policy_port)
        return mx

    def connect(self):
        return socket.create_connection(("127.0.0.1", self.policy_port), timeout=5)

    def test_answers_in_order_and_records_the_triplet_once(self):
        with self.service() as mx:
            sender = unique_sender()
            with self.connect() as sock:
                sock.sendall(request(sender, "a@example.test") + request(sender, "a@example.test")
                             + request(sender, "a@example.test", state="DATA"))
                self.assertEqual(read_answer(sock), GREYLISTED)
                self.assertEqual(read_answer(sock), GREYLISTED)
                self.assertEqual(read_answer(sock), "action=DUNNO\n\n")
                # The connection stays open for the next request, as Postfix expects.
                sock.sendall(request(sender, "b@example.test", client="2001:db8::7"))
                self.assertEqual(read_answer(sock), GREYLISTED)
            mx.wait_log(r"GREYLIST new \[192\.0\.2\.7\]:4711 from=<" + re.escape(sender)
                        + r"> to=<a@example\.test> key=net:192\.0\.2\.0/24 retry in 3600s "
                        r"\(policy\)$")
            mx.wait_log(r"GREYLIST early retry \[192\.0\.2\.7\]:4711 .* \(policy\)$")
            self.assertEqual(mx.metric("mxscreen_policy_verdicts_total",
                                       {"action": "defer_if_permit", "outcome": "new"}), 2)
            self.assertEqual(mx.metric("mxscreen_policy_verdicts_total",
                                       {"action": "dunno", "outcome": "skipped"}), 1)

    def test_x_greylist_header_on_the_pass_after_the_delay(self):
        self.policy_port = harness.free_port()
        mx = harness.Mxscreen({"greylist": {"enabled": True, "delay": "1s"},
                               "server": {"hostname": "mx.example.test"},
                               "policy": {"listen": f"127.0.0.1:{self.policy_port}",
                                          "x_greylist_header": True}})
        mx.ports.append(self.policy_port)
        with mx, self.connect() as sock:
            sender = unique_sender()
            sock.sendall(request(sender, "p@example.test"))
            self.assertEqual(read_answer(sock), GREYLISTED)

            def passed():
                sock.sendall(request(sender, "p@example.test"))
                answer = read_answer(sock)
                if answer == GREYLISTED:
                    time.sleep(0.2)  # pacing between retries, not synchronisation
                    return None
                return answer

            answer = harness.wait_until(passed, 10, interval=0, what="the triplet to pass")
            self.assertRegex(answer, r"^action=PREPEND X-Greylist: delayed [12] seconds by "
                                     r"mxscreen at mx\.example\.test\n\n$")
            sock.sendall(request(sender, "p@example.test"))  # passed before: no header
            self.assertEqual(read_answer(sock), "action=DUNNO\n\n")
            mx.wait_log(r"GREYLIST passed \[192\.0\.2\.7\]:4711 .* \(policy\)$")

    def test_oversized_request_garbage_and_too_many_attributes_are_closed(self):
        with self.service(request_size_limit=2048) as mx:
            with self.connect() as sock:
                sock.sendall(b"recipient=" + b"x" * 3000)
                data, how = harness.read_until_closed(sock)
                self.assertEqual((data, how), (b"", "eof"))
            with self.connect() as sock:
                sock.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
                self.assertEqual(harness.read_until_closed(sock), (b"", "eof"))
            with self.connect() as sock:
                sock.sendall(b"".join(b"a%d=1\n" % i for i in range(200)) + b"\n")
                self.assertEqual(harness.read_until_closed(sock)[1], "eof")
            with self.connect() as sock:  # still serving
                sock.sendall(request(unique_sender(), "c@example.test"))
                self.assertEqual(read_answer(sock), GREYLISTED)
            for reason in ("too_large", "bad_line", "too_many_attributes"):
                self.assertEqual(mx.metric("mxscreen_policy_errors_total", {"reason": reason}), 1)
            mx.wait_log(r"POLICY request too large from \[127\.0\.0\.1\]:\d+; closing")
            mx.wait_log(r"POLICY malformed attribute line from")

    def test_slow_and_idle_clients(self):
        with self.service(request_timeout="1s", idle_timeout="1s") as mx:
            # Slow but within the request timeout: answered.
            with self.connect() as sock:
                full = request(unique_sender(), "d@example.test")
                for chunk in (full[:20], full[20:60]):
                    sock.sendall(chunk)
                    time.sleep(0.2)  # the slowness under test, not synchronisation
                sock.sendall(full[60:])
                self.assertEqual(read_answer(sock), GREYLISTED)
                # Then idle: closed after idle_timeout.
                t0 = time.monotonic()
                self.assertTrue(harness.wait_closed(sock, 5))
                self.assertGreater(time.monotonic() - t0, 0.5)
            # A request begun and never finished: closed after request_timeout.
            with self.connect() as sock:
                sock.sendall(b"request=smtpd_access_policy\n")
                self.assertTrue(harness.wait_closed(sock, 5))
            # Trickling bytes does not push the deadline back.
            with self.connect() as sock:
                t0 = time.monotonic()
                try:
                    for b in b"request=smtpd_access_policy\nsender=":
                        sock.sendall(bytes([b]))
                        time.sleep(0.1)  # the trickle under test, not synchronisation
                except (BrokenPipeError, ConnectionResetError):
                    pass
                self.assertTrue(harness.wait_closed(sock, 5))
                self.assertLess(time.monotonic() - t0, 2.5)
            harness.wait_until(lambda: mx.metric("mxscreen_policy_errors_total",
                                                 {"reason": "request_timeout"}) == 2, 5)
            self.assertEqual(mx.metric("mxscreen_policy_errors_total",
                                       {"reason": "idle_timeout"}), 1)
            mx.wait_log(r"POLICY request timeout from")

    def test_thousand_connections(self):
        with self.service(max_connections=100) as mx:
            socks = []
            try:
                for _ in range(1000):
                    socks.append(self.connect())
                harness.wait_until(
                    lambda: mx.metric("mxscreen_policy_connections_total",
                                      {"result": "refused"}) == 900, 10, what="900 refusals")
                self.assertEqual(mx.metric("mxscreen_policy_connections_total",
                                           {"result": "accepted"}), 100)
                self.assertEqual(mx.metric("mxscreen_policy_connections_active"), 100)
                open_socks = [s for s in socks if not harness.wait_closed(s, 0.01)]
                self.assertEqual(len(open_socks), 100)
                sender = unique_sender()
                for s in open_socks:
                    s.sendall(request(sender, "e@example.test"))
                answers = [read_answer(s) for s in open_socks]
                self.assertEqual(answers.count(GREYLISTED), 100)
                mx.wait_log(r"policy service: 100 connections \(policy\.max_connections\); "
                            r"refusing new ones")
            finally:
                for s in socks:
                    s.close()
            harness.wait_until(lambda: mx.metric("mxscreen_policy_connections_active") == 0, 10)
            with self.connect() as sock:
                sock.sendall(request(unique_sender(), "f@example.test"))
                self.assertEqual(read_answer(sock), GREYLISTED)

    def test_fails_open_while_redis_is_down(self):
        redis = harness.RedisServer().start()
        try:
            self.policy_port = harness.free_port()
            cfg = {"greylist": {"enabled": True, "delay": "1h"},
                   "store": {"backend": "redis",
                             "redis_url": f"redis://127.0.0.1:{redis.port}/0"},
                   "policy": {"listen": f"127.0.0.1:{self.policy_port}"}}
            mx = harness.Mxscreen(cfg)
            mx.ports.append(self.policy_port)
            with mx:
                sender = unique_sender()
                with self.connect() as sock:
                    sock.sendall(request(sender, "g@example.test"))
                    self.assertEqual(read_answer(sock), GREYLISTED)
                    redis.stop()
                    sock.sendall(request(sender, "h@example.test"))
                    self.assertEqual(read_answer(sock), "action=DUNNO\n\n")
                mx.wait_log(r"GREYLIST skipped for \[192\.0\.2\.7\]:4711 .*\(policy\): state "
                            r"store unavailable; failing open")
                self.assertGreaterEqual(mx.metric("mxscreen_policy_verdicts_total",
                                                  {"action": "dunno",
                                                   "outcome": "store_unavailable"}), 1)
                redis.start()
                # Recovers by itself (this redis-server kept nothing: the triplet is new again).
                def greylisting_again():
                    with self.connect() as sock:
                        sock.sendall(request(sender, "g@example.test"))
                        return read_answer(sock) == GREYLISTED
                harness.wait_until(greylisting_again, 20, interval=0.5,
                                   what="Redis to be used again")
        finally:
            redis.cleanup()


class PolicyServiceDnswlTest(unittest.TestCase):
    """A client on a DNSWL skips greylisting at the policy service too (a real unbound serves
    test_dns.py's zones: 127.0.0.203 is listed in wl.test, 127.0.0.201 nowhere)."""

    def test_dnswl_client_is_not_greylisted(self):
        import test_dns  # noqa: E402 (its Unbound helper and zones)
        binary = test_dns.unbound_binary()
        if binary is None:
            self.skipTest("unbound is not installed")
        policy_port = harness.free_port()
        with test_dns.Unbound(binary) as unbound:
            cfg = {"greylist": {"enabled": True, "delay": "1h"},
                   "dns": {"nameservers": [f"127.0.0.1:{unbound.port}"], "timeout": "2s"},
                   "dnsbl": {"sites": ["zen.test=127.0.0.[2..11]*3",
                                       "wl.test=127.0.[0..255].[1..3]*-5"]},
                   "policy": {"listen": f"127.0.0.1:{policy_port}"}}
            mx = harness.Mxscreen(cfg)
            mx.ports.append(policy_port)
            with mx, socket.create_connection(("127.0.0.1", policy_port), timeout=5) as sock:
                sender = unique_sender()
                sock.sendall(request(sender, "w@example.test", client=test_dns.DNSWL))
                self.assertEqual(read_answer(sock), "action=DUNNO\n\n")
                sock.sendall(request(sender, "w@example.test", client=test_dns.CLEAN))
                self.assertEqual(read_answer(sock), GREYLISTED)
                mx.wait_log(rf"GREYLIST allowlisted \[{re.escape(test_dns.DNSWL)}\]:4711 "
                            rf"from=<{re.escape(sender)}> to=<w@example\.test> by DNSWL \(rank -5\) "
                            r"\(policy\)$")
                mx.wait_log(rf"GREYLIST new \[{re.escape(test_dns.CLEAN)}\]:4711 .* \(policy\)$")


if __name__ == "__main__":
    unittest.main(verbosity=2)
