"""TLS on every path (issue 14): whichever way a client reaches Postfix, a STARTTLS-capable
client gets TLS, and only once.

The tests' backend offers STARTTLS itself (scripts/postfix-backend: smtpd_tls_security_level =
may, harness.BACKEND_TLS_CERT), as behind postscreen; mxscreen's [tls] uses the same
certificate. What the user notices:
- a client screened inside mxscreen's TLS (PROXY and XCLIENT handoff) never sees the backend's
  STARTTLS after the handoff (a second TLS inside the first), its own STARTTLS there gets
  `502 5.5.1` from mxscreen, and its mail still arrives;
- a client spliced at connect with the PROXY protocol (PASS OLD, access.allow, DNSWL), right after
  the greet wait, or right after its EHLO (only HELO tests on) negotiates TLS with Postfix
  itself, end to end: it sees the same certificate, Postfix logs the TLS connection and writes
  it into the Received header;
- `--check-config` warns when [tls] is set and the probed backend offers no STARTTLS
  (smtp-sink), says nothing against the real backend, and in XCLIENT mode warns instead when
  [tls] is missing (the backend's STARTTLS is hidden there); the running mxscreen says the same
  at start.
The XCLIENT client spliced at connect that gets mxscreen's own STARTTLS is in
test_xclient_splice (test_client_spliced_at_connect_gets_mxscreens_starttls).
"""

import os
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from test_tls import client_context, peer_subject  # noqa: E402

SENDER = "sender@example.org"
RCPT = harness.MAILBOX
HELO = harness.CLIENT_HELO
BACKEND_CN = "mx.example.test"  # scripts/postfix-backend's self-signed certificate


def tls_section():
    """mxscreen's [tls]: the backend's own certificate, as the README's Deploying says."""
    return {"tls": {"cert_file": str(harness.BACKEND_TLS_CERT),
                    "key_file": str(harness.BACKEND_TLS_KEY)}}


def keywords(reply):
    return [line.split(" ")[0].upper() for line in reply.lines[1:]]


def cert_cn(tls_sock):
    """The CN of the certificate the server showed."""
    subject = peer_subject(tls_sock.getpeercert(binary_form=True))
    m = re.search(r"CN\s*=\s*([^,\n]+)", subject)
    return m.group(1).strip() if m else subject


def deliver(sock, marker, rcpt=RCPT):
    """MAIL, RCPT, DATA of a marked message and QUIT on an SMTP socket (plain or TLS)."""
    assert harness.command(sock, f"MAIL FROM:<{SENDER}>").code == 250
    reply = harness.command(sock, f"RCPT TO:<{rcpt}>")
    assert reply.code == 250, reply
    assert harness.command(sock, "DATA").code == 354
    data = harness.marked_message(marker, SENDER, rcpt).replace(b"\r\n.", b"\r\n..")
    sock.sendall(data + b".\r\n")
    reply = harness.read_reply(sock)
    assert reply.code == 250 and "queued as" in reply.lines[0], reply
    assert harness.command(sock, "QUIT").code == 221


def tls_with_postfix(test, mx, source, expect_banner):
    """A session from source: banner, EHLO (Postfix's STARTTLS), STARTTLS with Postfix,
    EHLO inside, a delivered mail. Checks the certificate, Postfix's log and Received."""
    marker, offset = harness.unique_marker("tls-e2e"), harness.postfix_log_offset()
    sock = harness.raw_connect(mx.port, source=source)
    try:
        banner = harness.read_reply(sock)
        test.assertEqual(banner.code, 220)
        test.assertRegex(banner.lines[-1], expect_banner)
        ehlo = harness.command(sock, f"EHLO {HELO}")
        test.assertIn("STARTTLS", keywords(ehlo))
        test.assertIn("PIPELINING", keywords(ehlo))  # Postfix's own reply
        test.assertEqual(harness.command(sock, "STARTTLS").raw,
                         b"220 2.0.0 Ready to start TLS\r\n")
        tls = client_context().wrap_socket(sock, server_hostname=BACKEND_CN)
        sock = tls
        test.assertEqual(cert_cn(tls), BACKEND_CN)
        ehlo = harness.command(tls, f"EHLO {HELO}")
        test.assertNotIn("STARTTLS", keywords(ehlo))
        deliver(tls, marker)
    finally:
        sock.close()
    harness.wait_for_log(rf"postfix/proxy/smtpd\[\d+\]: Anonymous TLS connection established "
                         rf"from unknown\[{re.escape(source)}\]: TLSv1\.[23] with cipher",
                         offset)
    text = harness.wait_delivered(marker)
    test.assertRegex(text, rf"Received: from {re.escape(HELO)} \(unknown \[{re.escape(source)}\]\)"
                           r"\n\t\(using TLSv1\.[23] with cipher ")
    # mxscreen never decrypted it.
    test.assertNotRegex(mx.log_text(), rf"TLS connection established from \[{re.escape(source)}\]")


class InsideMxscreensTls(unittest.TestCase):
    """A screened client that did STARTTLS with mxscreen: the backend's STARTTLS stays hidden."""

    @classmethod
    def setUpClass(cls):
        harness.ensure_postfix()

    def check(self, backend, handoff, source, service):
        marker, offset = harness.unique_marker("in-tls"), harness.postfix_log_offset()
        config = {"backend": {"address": backend, "handoff": handoff}, **tls_section()}
        with harness.Mxscreen(config) as mx:
            sock = harness.raw_connect(mx.port, source=source)
            try:
                self.assertEqual(harness.read_reply(sock).code, 220)
                ehlo = harness.command(sock, f"EHLO {HELO}")
                self.assertEqual(keywords(ehlo)[-1], "STARTTLS")  # mxscreen's own
                self.assertEqual(harness.command(sock, "STARTTLS").code, 220)
                tls = client_context().wrap_socket(sock, server_hostname=BACKEND_CN)
                sock = tls
                self.assertEqual(cert_cn(tls), BACKEND_CN)
                ehlo = harness.command(tls, f"EHLO {HELO}")
                self.assertNotIn("STARTTLS", keywords(ehlo))
                self.assertEqual(harness.command(tls, f"MAIL FROM:<{SENDER}>").code, 250)
                self.assertEqual(harness.command(tls, f"RCPT TO:<{RCPT}>").code, 250)  # handoff
                mx.wait_log(rf"PASS NEW \[{re.escape(source)}\]")
                # Spliced now: a new EHLO is answered by Postfix, without its STARTTLS.
                self.assertEqual(harness.command(tls, "RSET").code, 250)
                ehlo = harness.command(tls, f"EHLO {HELO}")
                self.assertEqual(ehlo.code, 250, ehlo)
                # Postfix's reply (mxscreen's own withholds PIPELINING).
                self.assertIn("PIPELINING", keywords(ehlo))
                self.assertNotIn("STARTTLS", keywords(ehlo))
                reply = harness.command(tls, "STARTTLS")
                self.assertEqual(reply.raw, b"502 5.5.1 Error: command not implemented\r\n")
                deliver(tls, marker)
            finally:
                sock.close()
            mx.wait_log(rf"NOQUEUE: reject: starttls from \[{re.escape(source)}\]:\d+ after "
                        r"handoff: 502 5\.5\.1 Error: command not implemented; STARTTLS")
            self.assertEqual(mx.metric("mxscreen_splice_refused_total", {"command": "starttls"}), 1)
            mx.wait_log(rf"DISCONNECT \[{re.escape(source)}\]:\d+ outcome=spliced")
        text = harness.wait_delivered(marker)
        # Postfix got clear text on loopback: no TLS of its own with this client.
        self.assertRegex(text, rf"Received: from {re.escape(HELO)} "
                               rf"\(unknown \[{re.escape(source)}\]\)\n\tby ")
        log = harness.postfix_log_since(offset)
        self.assertNotRegex(log, rf"postfix/{service}/smtpd\[\d+\]: Anonymous TLS connection "
                                 rf"established from unknown\[{re.escape(source)}\]")
        self.assertRegex(log, rf"postfix/{service}/smtpd\[\d+\]: disconnect from "
                              rf"unknown\[{re.escape(source)}\] ")

    def test_proxy_handoff(self):
        self.check(harness.BACKEND_PROXY, "proxy_v2", "127.0.8.1", "proxy")

    def test_xclient_handoff(self):
        self.check(harness.BACKEND_XCLIENT, "xclient", "127.0.8.2", "xclient")


class SplicedAtConnect(unittest.TestCase):
    """PROXY mode: clients spliced before any STARTTLS do TLS with Postfix, end to end."""

    @classmethod
    def setUpClass(cls):
        harness.ensure_postfix()

    def test_pass_old_client(self):
        source = "127.0.8.11"
        with harness.Mxscreen({"cache": {"enabled": True}, **tls_section()}) as mx:
            # Screened first (no TLS needed to pass), then PASS OLD: Postfix's banner at once.
            code, _ = harness.rcpt_attempt(mx.port, source, SENDER, harness.unique_marker("first"))
            self.assertEqual(code, 250)
            mx.wait_log(rf"PASS NEW \[{re.escape(source)}\]")
            since = mx.log_offset()
            tls_with_postfix(self, mx, source, r"ESMTP Postfix")
            mx.wait_log(rf"PASS OLD \[{re.escape(source)}\]", since=since)

    def test_allowlisted_client(self):
        source = "127.0.8.12"
        with harness.Mxscreen({"access": {"allow": [f"{source}/32"]}, **tls_section()}) as mx:
            tls_with_postfix(self, mx, source, r"ESMTP Postfix")
            mx.wait_log(rf"ALLOWLISTED \[{re.escape(source)}\]")

    def test_client_spliced_after_the_greet_wait(self):
        # Only connection tests: mxscreen's banner, then the client talks to Postfix directly.
        with harness.Mxscreen(harness.connection_tests_only(tls_section())) as mx:
            tls_with_postfix(self, mx, "127.0.8.13", r"^\S+ ESMTP")


    def test_client_spliced_after_ehlo(self):
        # Only HELO tests: the handoff follows mxscreen's EHLO reply (which offered STARTTLS,
        # [tls] being set); the client's STARTTLS then reaches Postfix, which does the TLS.
        config = harness.connection_tests_only({"helo": {"reject_invalid": True},
                                                **tls_section()})
        with harness.Mxscreen(config) as mx:
            tls_with_postfix(self, mx, "127.0.8.14", r"^\S+ ESMTP")
            mx.wait_log(r"PASS NEW \[127\.0\.8\.14\]")


class DnswlClient(unittest.TestCase):
    """A DNSWL client skips the rest of the greet wait and every test: it is spliced to Postfix,
    which does its TLS (a real unbound serving test_dns's zones)."""

    @classmethod
    def setUpClass(cls):
        import test_dns
        cls.zones = test_dns
        test_dns.setUpModule()  # unbound, or SkipTest without it
        cls.addClassCleanup(test_dns.tearDownModule)

    def test_dnswl_client(self):
        sites = ["wl.test=127.0.[0..255].[1..3]*-5"]
        config = self.zones.dns({"greet": {"wait": "5s"}, "dnsbl": {"sites": sites},
                                 **tls_section()})
        with harness.Mxscreen(config) as mx:
            source = self.zones.DNSWL
            tls_with_postfix(self, mx, source, r"ESMTP")
            mx.wait_log(rf"PASS NEW \[{re.escape(source)}\]:\d+ \(DNSWL\)")


class CheckConfigWarning(unittest.TestCase):
    """--check-config (and the start) probe the backend's EHLO for STARTTLS."""

    WARNING_PROXY = "does not offer STARTTLS: clients spliced at connect"
    WARNING_XCLIENT = "with handoff = \"xclient\" mxscreen reads every command"

    @classmethod
    def setUpClass(cls):
        harness.ensure_postfix()

    def check(self, backend, handoff, tls):
        config = {"backend": {"address": backend, "handoff": handoff}, "access": {"allow": []},
                  "dnsbl": {"sites": []}, "store": {"backend": "memory"}, "server": {"user": ""}}
        if tls:
            config.update(tls_section())
        code, output, _ = harness.check_config(harness.to_toml(config))
        self.assertEqual(code, 0, output)
        self.assertIn("configuration OK", output)
        return output

    def test_warns_against_a_backend_without_starttls(self):
        with harness.SmtpSink() as sink:  # smtp-sink offers no STARTTLS
            output = self.check(f"127.0.0.1:{sink.port}", "none", tls=True)
            self.assertRegex(output, rf"warning: \[tls\] is set but backend "
                                     rf"127\.0\.0\.1:{sink.port} does not offer STARTTLS: "
                                     r"clients spliced at connect \(PASS OLD, access\.allow, "
                                     r"DNSWL\) talk to it in clear text")
            # Without [tls] nothing is promised, nothing is checked.
            self.assertNotIn("STARTTLS", self.check(f"127.0.0.1:{sink.port}", "none", tls=False))
            # XCLIENT with [tls]: mxscreen's own STARTTLS serves every path.
            self.assertNotIn("STARTTLS", self.check(f"127.0.0.1:{sink.port}", "xclient", tls=True))
            # The running mxscreen says it at start too (its backend probe).
            with harness.Mxscreen({"backend": {"address": f"127.0.0.1:{sink.port}",
                                               "handoff": "none"}, **tls_section()}) as mx:
                mx.wait_log(rf"\[tls\] is set but backend 127\.0\.0\.1:{sink.port} does not offer "
                            r"STARTTLS")

    def test_no_warning_against_the_real_backend(self):
        for backend, handoff in ((harness.BACKEND_PROXY, "proxy_v2"),
                                 (harness.BACKEND_PROXY, "proxy_v1"),
                                 (harness.BACKEND_XCLIENT, "xclient")):
            with self.subTest(handoff=handoff):
                output = self.check(backend, handoff, tls=True)
                self.assertNotIn("warning", output)

    def test_xclient_without_tls_warns_that_no_client_gets_tls(self):
        output = self.check(harness.BACKEND_XCLIENT, "xclient", tls=False)
        self.assertIn(f"warning: backend {harness.BACKEND_XCLIENT} offers STARTTLS, but "
                      f"{self.WARNING_XCLIENT} after the handoff and so never offers it, and [tls] "
                      "is not set: no client gets TLS", output)
        self.assertNotIn(self.WARNING_PROXY, output)


if __name__ == "__main__":
    unittest.main(verbosity=2)
