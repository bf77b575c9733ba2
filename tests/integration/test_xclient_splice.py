"""The client's commands after an XCLIENT handoff, against the real Postfix backend (issue 13).

Postfix believes XCLIENT from mxscreen's address at any time outside a transaction. Before the
fix a client that passed the screening sent RSET and its own `XCLIENT ADDR=127.0.0.1` through
the splice, became 127.0.0.1 (mynetworks) for Postfix and relayed to any outside recipient
(repro/xclient_relay.py). What the user notices now: mxscreen answers the client's XCLIENT
with Postfix's own `550 5.7.0 Error: insufficient authorization`, Postfix still sees the real
client and refuses the relay, the backend's EHLO reply never offers XCLIENT or XFORWARD to the
client, while ordinary mail (pipelined, BDAT, a body full of "XCLIENT ..." lines) arrives
byte for byte. A MAIL FROM whose source route holds bare CRs (repro/sourceroute_cr.bin) is
refused with 501 5.1.7 instead of being replayed to the backend.

The client's real address comes through a PROXY header (a proxy_protocol listener), so that
it can be outside Postfix's mynetworks (127.0.0.0/8 on this machine).
"""

import os
import re
import socket
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

OUTSIDE = "192.0.2.77"  # TEST-NET-1: not in Postfix's mynetworks
SENDER = "sender@example.org"
UPSTREAM = "127.0.0.5"  # the listener's proxy_trusted balancer
DENIED = "550 5.7.0 Error: insufficient authorization"


def xclient_config(extra=None):
    """A proxy_protocol listener, the real XCLIENT backend, the default dialogue tests."""
    config = {"backend": {"address": harness.BACKEND_XCLIENT, "handoff": "xclient"}}
    config.update(extra or {})
    return config


def proxied(mx, client=OUTSIDE, sport=4711):
    """A socket to mx's listener from the trusted upstream that claims to be client via PROXY v1."""
    sock = harness.raw_connect(mx.port, source=UPSTREAM)
    sock.sendall(harness.proxy_v1_header(client, sport=sport))
    return sock


def keywords(reply):
    return [line.split(" ")[0].upper() for line in reply.lines[1:]]


def received_message(marker):
    """The raw bytes of the one delivered message that holds marker."""
    def find():
        for sub in ("new", "cur"):
            d = harness.MAILDIR / sub
            for p in (d.iterdir() if d.is_dir() else ()):
                try:
                    data = p.read_bytes()
                except FileNotFoundError:
                    continue
                if marker.encode() in data:
                    return data
        return None
    return harness.wait_until(find, timeout=10, what=f"message {marker} delivered")


class XclientSplice(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        harness.ensure_postfix()

    def listener(self, port):
        return [{"address": f"127.0.0.1:{port}", "role": "mx", "proxy_protocol": True,
                 "proxy_trusted": [UPSTREAM]}]

    def start(self, extra=None):
        port = harness.free_port()
        config = xclient_config({"listen": self.listener(port), **(extra or {})})
        return harness.Mxscreen(config)

    def attempt_spoof(self, sock, client):
        """After the handoff: RSET, the client's own XCLIENT and XFORWARD, a fresh EHLO, then
        a relay attempt. Returns the reply to the outside RCPT."""
        self.assertEqual(harness.command(sock, "RSET").code, 250)
        reply = harness.command(sock, "XCLIENT ADDR=127.0.0.1 NAME=localhost")
        self.assertEqual(reply.raw, (DENIED + "\r\n").encode())
        reply = harness.command(sock, "xforward addr=127.0.0.1")
        self.assertEqual(reply.raw, (DENIED + "\r\n").encode())
        ehlo = harness.command(sock, f"EHLO {harness.CLIENT_HELO}")
        self.assertEqual(ehlo.code, 250)
        self.assertIn("PIPELINING", keywords(ehlo))  # Postfix's own reply
        self.assertNotRegex(ehlo.raw, rb"(?i)XCLIENT|XFORWARD")
        self.assertEqual(harness.command(sock, "MAIL FROM:<a@evil.example>").code, 250)
        reply = harness.command(sock, "RCPT TO:<victim@outside.example>")
        self.assertEqual(harness.command(sock, "QUIT").code, 221)
        # Postfix saw the real client all along: one XCLIENT (mxscreen's), never the client's.
        harness.wait_for_log(rf"postfix/xclient/smtpd\[\d+\]: disconnect from "
                             rf"unknown\[{re.escape(client)}\] .*\bxclient=\d/1 .*\brset=1 quit=1 ",
                             self.offset)
        self.assertNotRegex(harness.postfix_log_since(self.offset),
                            r"(disconnect|connect) from localhost\[127\.0\.0\.1\]")
        return reply

    def attempt_relay(self, sock):
        """From outside mynetworks: the relay attempt is Postfix's 454."""
        reply = self.attempt_spoof(sock, OUTSIDE)
        self.assertEqual(reply.code, 454, reply)
        self.assertIn("Relay access denied", reply.lines[0])
        harness.wait_for_log(
            rf"postfix/xclient/smtpd\[\d+\]: NOQUEUE: reject: RCPT from "
            rf"unknown\[{re.escape(OUTSIDE)}\]: 454 4\.7\.1 <victim@outside\.example>: "
            rf"Relay access denied", self.offset)

    def assert_refusals_logged(self, mx, sport):
        mx.wait_log(rf"NOQUEUE: reject: xclient from \[{re.escape(OUTSIDE)}\]:{sport} "
                    rf"after handoff: {DENIED}; XCLIENT ADDR=127\.0\.0\.1 NAME=localhost\n")
        mx.wait_log(rf"NOQUEUE: reject: xforward from \[{re.escape(OUTSIDE)}\]:{sport}")
        self.assertEqual(mx.metric("mxscreen_splice_refused_total", {"command": "xclient"}), 1)
        self.assertEqual(mx.metric("mxscreen_splice_refused_total", {"command": "xforward"}), 1)

    def test_xclient_after_dialogue_handoff_is_refused_and_relay_stays_closed(self):
        self.offset = harness.postfix_log_offset()
        with self.start() as mx, proxied(mx, sport=4711) as sock:
            self.assertEqual(harness.read_reply(sock).code, 220)
            ehlo = harness.command(sock, f"EHLO {harness.CLIENT_HELO}")
            self.assertNotIn("XCLIENT", keywords(ehlo))
            self.assertEqual(harness.command(sock, f"MAIL FROM:<{SENDER}>").code, 250)
            # The first RCPT that passes hands off: this 250 is Postfix's.
            self.assertEqual(harness.command(sock, "RCPT TO:<user@example.test>").code, 250)
            self.attempt_relay(sock)
            self.assert_refusals_logged(mx, 4711)

    def test_xclient_after_handoff_at_connect_is_refused(self):
        # Allowlisted: spliced at connect, the client talks to Postfix from its first EHLO on.
        self.offset = harness.postfix_log_offset()
        with self.start({"access": {"allow": [f"{OUTSIDE}/32"]}}) as mx, \
                proxied(mx, sport=4712) as sock:
            banner = harness.read_reply(sock)
            self.assertIn("ESMTP Postfix", banner.lines[0])
            ehlo = harness.command(sock, f"EHLO {harness.CLIENT_HELO}")
            self.assertIn("CHUNKING", keywords(ehlo))
            self.assertNotRegex(ehlo.raw, rb"(?i)XCLIENT|XFORWARD|STARTTLS")
            self.attempt_relay(sock)
            self.assert_refusals_logged(mx, 4712)

    def test_client_inside_xclient_hosts_cannot_change_its_identity(self):
        # repro/xclient_relay.py: a client whose own address Postfix would take XCLIENT from
        # (127.0.0.0/8 here). Before the fix its XCLIENT got 220 and Postfix saw 127.0.0.1.
        client = "127.0.0.61"
        self.offset = harness.postfix_log_offset()
        with harness.Mxscreen(xclient_config()) as mx, \
                harness.raw_connect(mx.port, source=client) as sock:
            self.assertEqual(harness.read_reply(sock).code, 220)
            harness.command(sock, f"EHLO {harness.CLIENT_HELO}")
            self.assertEqual(harness.command(sock, f"MAIL FROM:<{SENDER}>").code, 250)
            self.assertEqual(harness.command(sock, "RCPT TO:<user@example.test>").code, 250)
            self.attempt_spoof(sock, client)
            mx.wait_log(rf"NOQUEUE: reject: xclient from \[{client}\]:\d+ after handoff")

    def test_pipelined_mail_and_xclient_lines_in_content_arrive_unchanged(self):
        marker = harness.unique_marker("xclient-splice")
        body = (f"Message-ID: <{marker}@example.org>\r\nSubject: {marker}\r\n\r\n"
                "XCLIENT ADDR=127.0.0.1\r\nXFORWARD NAME=spoofed.example\r\nSTARTTLS\r\n"
                "..leading dot\r\n \tXCLIENT ADDR=10.0.0.1\r\nDATA\r\nQUIT\r\nend\r\n")
        with self.start() as mx, proxied(mx, sport=4713) as sock:
            self.assertEqual(harness.read_reply(sock).code, 220)
            harness.command(sock, f"EHLO {harness.CLIENT_HELO}")
            self.assertEqual(harness.command(sock, f"MAIL FROM:<{SENDER}>").code, 250)
            self.assertEqual(harness.command(sock, "RCPT TO:<user@example.test>").code, 250)
            # Spliced. Pipelined (Postfix offers PIPELINING), an XCLIENT in the middle: its
            # 550 comes in its place among Postfix's replies.
            sock.sendall(b"NOOP\r\nXCLIENT ADDR=127.0.0.1\r\nNOOP\r\nDATA\r\n")
            replies = [harness.read_reply(sock) for _ in range(4)]
            self.assertEqual([r.code for r in replies], [250, 550, 250, 354], replies)
            self.assertEqual(replies[1].raw, (DENIED + "\r\n").encode())
            sock.sendall(body.encode() + b".\r\nRSET\r\nMAIL FROM:<" + SENDER.encode() +
                         b">\r\nRCPT TO:<user@example.test>\r\n")
            replies = [harness.read_reply(sock) for _ in range(4)]
            self.assertEqual([r.code for r in replies], [250, 250, 250, 250], replies)
            self.assertIn("queued as", replies[0].lines[0])
            # BDAT (Postfix offers CHUNKING): the chunk holds command-like lines too.
            chunk = (f"Message-ID: <{marker}-bdat@example.org>\r\nSubject: {marker}-bdat\r\n"
                     "\r\nXCLIENT ADDR=127.0.0.1\r\n.\r\n").encode()
            sock.sendall(b"BDAT %d LAST\r\n" % len(chunk) + chunk + b"QUIT\r\n")
            self.assertIn("queued as", harness.read_reply(sock).lines[0])
            self.assertEqual(harness.read_reply(sock).code, 221)
            sock.close()
            mx.wait_log(r"DISCONNECT \[192\.0\.2\.77\]:4713 outcome=spliced")
            self.assertEqual(mx.metric("mxscreen_splice_refused_total", {"command": "xclient"}), 1)
        message = received_message(f"<{marker}@example.org>")
        expected = body.replace("\r\n..leading", "\r\n.leading").split("\r\n\r\n", 1)[1]
        self.assertTrue(message.replace(b"\r\n", b"\n").endswith(
            expected.replace("\r\n", "\n").encode()), message)
        bdat = received_message(f"<{marker}-bdat@example.org>")
        self.assertTrue(bdat.replace(b"\r\n", b"\n").endswith(b"\nXCLIENT ADDR=127.0.0.1\n.\n"),
                        bdat)

    def test_everything_sent_at_once_then_half_close_still_delivers(self):
        # The message waits in mxscreen for Postfix's 354, after the client's FIN: the FIN
        # goes to Postfix only behind it.
        marker = harness.unique_marker("xclient-halfclose")
        with self.start({"access": {"allow": [f"{OUTSIDE}/32"]}}) as mx, \
                proxied(mx, sport=4715) as sock:
            self.assertEqual(harness.read_reply(sock).code, 220)
            sock.sendall(f"EHLO {harness.CLIENT_HELO}\r\nMAIL FROM:<{SENDER}>\r\n"
                         f"RCPT TO:<user@example.test>\r\nDATA\r\nSubject: {marker}\r\n\r\n"
                         f"XCLIENT ADDR=127.0.0.1\r\n.\r\nQUIT\r\n".encode())
            sock.shutdown(socket.SHUT_WR)
            data, how = harness.read_until_closed(sock, timeout=10)
            self.assertEqual(how, "eof", data)
            codes = [int(line[:3]) for line in data.decode().split("\r\n")
                     if line[:3].isdigit() and line[3:4] == " "]
            self.assertEqual(codes, [250, 250, 250, 354, 250, 221], data)
            mx.wait_log(r"DISCONNECT \[192\.0\.2\.77\]:4715 outcome=spliced")
        self.assertIn(b"\nXCLIENT ADDR=127.0.0.1", received_message(marker))

    def test_client_spliced_at_connect_gets_mxscreens_starttls(self):
        # The backend's STARTTLS would hide the client's commands from mxscreen: with [tls],
        # mxscreen offers its own in Postfix's EHLO reply and does the TLS itself.
        marker = harness.unique_marker("xclient-tls")
        from test_tls import client_context, make_cert
        with tempfile.TemporaryDirectory() as d:
            cert, key = make_cert(d, "mx", "mx.test.example")
            extra = {"access": {"allow": [f"{OUTSIDE}/32"]},
                     "tls": {"cert_file": str(cert), "key_file": str(key)}}
            with self.start(extra) as mx, proxied(mx, sport=4716) as sock:
                self.assertIn("ESMTP Postfix", harness.read_reply(sock).lines[0])
                ehlo = harness.command(sock, f"EHLO {harness.CLIENT_HELO}")
                self.assertEqual(keywords(ehlo)[-1], "STARTTLS")
                self.assertNotRegex(ehlo.raw, rb"(?i)XCLIENT|XFORWARD")
                sock.sendall(b"STARTTLS\r\nXCLIENT ADDR=127.0.0.1\r\n")  # injected: dropped
                self.assertEqual(harness.read_reply(sock).raw,
                                 b"220 2.0.0 Ready to start TLS\r\n")
                tls = client_context().wrap_socket(sock, server_hostname="mx.test.example")
                ehlo = harness.command(tls, f"EHLO {harness.CLIENT_HELO}")
                self.assertIn("PIPELINING", keywords(ehlo))
                self.assertNotRegex(ehlo.raw, rb"(?i)XCLIENT|XFORWARD|STARTTLS")
                self.assertEqual(harness.command(tls, "XCLIENT ADDR=127.0.0.1").raw,
                                 (DENIED + "\r\n").encode())
                self.assertEqual(harness.command(tls, "STARTTLS").code, 502)
                self.assertEqual(harness.command(tls, f"MAIL FROM:<{SENDER}>").code, 250)
                self.assertEqual(harness.command(tls, "RCPT TO:<user@example.test>").code, 250)
                self.assertEqual(harness.command(tls, "DATA").code, 354)
                reply = harness.command(tls, f"Subject: {marker}\r\n\r\nin tls\r\n.")
                self.assertIn("queued as", reply.lines[0])
                self.assertEqual(harness.command(tls, "QUIT").code, 221)
                tls.close()
                mx.wait_log(r"TLS connection established from \[192\.0\.2\.77\]:4716")
                mx.wait_log(r"discarding 24 plaintext bytes sent after STARTTLS by "
                            r"\[192\.0\.2\.77\]:4716")
                mx.wait_log(r"DISCONNECT \[192\.0\.2\.77\]:4716 outcome=spliced")
        self.assertIn(b"in tls", received_message(marker))

    def test_source_route_with_bare_crs_is_refused(self):
        # The bytes of repro/sourceroute_cr.bin (two NUL bytes of a fuzzer's framing first).
        data = b"\0\0EHLO a.example\r\nMAIL FROM:<@a\rb:u@example.com>\r\nRCPT TO:<c@d.example>\r\n"
        lines = data.lstrip(b"\0").split(b"\r\n")
        self.assertTrue(lines[1].startswith(b"MAIL FROM:<@a\r"), lines)
        offset = harness.postfix_log_offset()
        with self.start() as mx, proxied(mx, sport=4714) as sock:
            self.assertEqual(harness.read_reply(sock).code, 220)
            self.assertEqual(harness.command(sock, lines[0]).code, 250)
            reply = harness.command(sock, lines[1])
            self.assertEqual(reply.raw, b"501 5.1.7 Bad sender address syntax\r\n")
            reply = harness.command(
                sock, b"MAIL FROM:<@a\rXCLIENT ADDR=127.0.0.1\r@b:x@example.org>")
            self.assertEqual(reply.raw, b"501 5.1.7 Bad sender address syntax\r\n")
            self.assertEqual(harness.command(sock, f"MAIL FROM:<{SENDER}>").code, 250)
            reply = harness.command(sock, b"RCPT TO:<@a\rb:user@example.test>")
            self.assertEqual(reply.raw, b"501 5.1.3 Bad recipient address syntax\r\n")
            self.assertEqual(harness.command(sock, "QUIT").code, 221)
            mx.wait_log(r"DISCONNECT \[192\.0\.2\.77\]:4714 ")
            self.assertEqual(mx.metric("mxscreen_handoffs_total", default=0), 0)
        self.assertNotIn("192.0.2.77", harness.postfix_log_since(offset))


if __name__ == "__main__":
    unittest.main()
