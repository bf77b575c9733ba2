"""STARTTLS at the proxy (issue 7), with real TLS clients and the real Postfix backend.

mxscreen terminates TLS itself: EHLO offers STARTTLS when [tls] is configured, the handshake runs
on the event loop, the client must EHLO again, the pre-dialogue tests run inside TLS, and after
handoff the clear text goes to the backend on loopback. What the user notices:

- swaks --tls, openssl s_client -starttls smtp and Python smtplib starttls() each deliver a mail
  that Postfix logs with the real client address (client=unknown[127.0.x.y]) and that lands in
  the Maildir; a 10 MB message over TLS reaches smtp-sink byte for byte;
- a client sending garbage instead of a ClientHello, one stalling mid-handshake and one
  injecting plain-text commands after STARTTLS are each closed / discarded cleanly, logged and
  counted, and other clients carry on meanwhile;
- a certificate swapped on disk + SIGHUP: new sessions see the new certificate while a session
  spliced before the reload completes its mail; a broken certificate + SIGHUP is refused and
  the old certificate kept.

It also prints (does not assert) the throughput of a 20 MB message through a TLS splice and a
plain splice to smtp-sink in the same run (median of 3), for the record.

The certificates are made with the openssl CLI in a temporary directory at class set-up.
"""

import hashlib
import os
import queue
import re
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

SENDER = "sender@example.org"
RCPT = "user@example.test"
HELO = harness.CLIENT_HELO


# ---------------------------------------------------------------------------------------------
# Certificates and TLS helpers

def make_cert(directory, name, cn):
    """A self-signed RSA certificate for CN=cn: returns (cert path, key path)."""
    cert, key = Path(directory) / f"{name}.crt", Path(directory) / f"{name}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", f"/CN={cn}", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def client_context():
    """A TLS client context that accepts the self-signed test certificates."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def peer_subject(der):
    """The subject of a DER certificate as `openssl x509 -noout -subject` prints it."""
    result = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-subject"],
                            input=der, capture_output=True, check=True, timeout=30)
    return result.stdout.decode().strip()


def marked_message(marker, body=""):
    return (f"From: <{SENDER}>\r\nTo: <{RCPT}>\r\nMessage-ID: <{marker}@example.org>\r\n"
            f"Subject: {marker}\r\n\r\nbody {marker}\r\n{body}").encode()


def tls_smtp(port, source, timeout=15.0):
    """smtplib client from source that has done EHLO, STARTTLS and EHLO again."""
    smtp = harness.smtp_client(port, source=source, timeout=timeout)
    code, _ = smtp.ehlo()
    assert code == 250, code
    assert smtp.has_extn("starttls"), smtp.esmtp_features
    code, text = smtp.starttls(context=client_context())
    assert code == 220 and text == b"2.0.0 Ready to start TLS", (code, text)
    code, _ = smtp.ehlo()
    assert code == 250, code
    return smtp


def big_body(size, seed):
    """About size bytes of CRLF lines (76 chars plus some lines that start with a dot)."""
    import random
    rnd = random.Random(seed)
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    table = bytes(alphabet[i % len(alphabet)] for i in range(256))
    lines = []
    total = 0
    n = 0
    while total < size:
        line = rnd.randbytes(76).translate(table)
        if n % 997 == 0:
            line = b"." + line[1:]  # dot-stuffed on the wire, unstuffed by smtp-sink
        lines.append(line)
        total += 78
        n += 1
    return b"\r\n".join(lines) + b"\r\n"


def dot_stuff(data):
    """data (CRLF lines, ends with CRLF) as sent after DATA, with the final ".\r\n"."""
    stuffed = re.sub(rb"(?m)^\.", b"..", data)
    return stuffed + b".\r\n"


class SClient:
    """`openssl s_client -starttls smtp -quiet -crlf`, driven line by line through stdin."""

    def __init__(self, port, source):
        self.proc = subprocess.Popen(
            ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-starttls", "smtp",
             "-name", HELO, "-quiet", "-crlf", "-ign_eof"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.source = source
        self.lines = queue.Queue()
        self.stderr = b""
        threading.Thread(target=self._pump, daemon=True).start()
        threading.Thread(target=self._pump_err, daemon=True).start()

    def _pump(self):
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def _pump_err(self):
        self.stderr = self.proc.stderr.read()

    def send(self, line):
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def reply(self, timeout=10.0):
        """The next complete SMTP reply from the server as (code, [lines])."""
        deadline = time.monotonic() + timeout
        lines = []
        while True:
            try:
                raw = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no reply from s_client; got {lines}; "
                                     f"stderr {self.stderr!r}") from None
            if raw is None:
                raise AssertionError(f"s_client ended; got {lines}; stderr {self.stderr!r}")
            text = raw.decode("utf-8", "replace").rstrip("\r\n")
            if not re.match(r"^\d{3}[ -]?", text):
                continue  # s_client's own chatter, if any
            lines.append(text)
            if len(text) == 3 or text[3] == " ":
                return int(text[:3]), lines

    def command(self, line, timeout=10.0):
        self.send(line)
        return self.reply(timeout)

    def close(self):
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def client_hello_bytes():
    """The bytes of a real TLS ClientHello (from Python's ssl with memory BIOs)."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = client_context().wrap_bio(incoming, outgoing, server_hostname="mx.test")
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


# ---------------------------------------------------------------------------------------------

class _TlsBase(unittest.TestCase):
    certdir = None

    @classmethod
    def setUpClass(cls):
        harness.ensure_postfix()
        cls.certdir = Path(tempfile.mkdtemp(prefix="mxscreen-tls-certs-"))
        cls.cert1, cls.key1 = make_cert(cls.certdir, "mx", "mx.test")
        cls.cert2, cls.key2 = make_cert(cls.certdir, "mx2", "mx2.test")

    @classmethod
    def tearDownClass(cls):
        if cls.certdir and not os.environ.get("MXSCREEN_KEEP_TMP"):
            shutil.rmtree(cls.certdir, ignore_errors=True)

    def tls_config(self, **tls):
        section = {"cert_file": str(self.cert1), "key_file": str(self.key1)}
        section.update(tls)
        return {"tls": section}

    # -- what Postfix and the mailbox saw -------------------------------------------------------

    def assert_at_postfix(self, marker, offset, client):
        """The message marked with marker was received by Postfix from client and delivered."""
        m = harness.wait_for_log(
            rf"postfix/cleanup\[\d+\]: (\w+): message-id=<{marker}@example\.org>", offset)
        qid = m.group(1)
        harness.wait_for_log(rf"postfix/proxy/smtpd\[\d+\]: {qid}: "
                             rf"client=unknown\[{re.escape(client)}\]$", offset)
        text = harness.wait_delivered(marker)
        self.assertRegex(text, rf"Received: from {re.escape(HELO)} "
                               rf"\(unknown \[{re.escape(client)}\]\)")
        return text

    def assert_tls_established(self, mx, client):
        mx.wait_log(rf"Anonymous TLS connection established from \[{re.escape(client)}\]:\d+: "
                    r"TLSv1\.[23] with cipher \S+, client certificate none")

    def handshakes(self, mx, **labels):
        return mx.metric("mxscreen_tls_handshakes_total", labels, default=0)


class TlsClientsTest(_TlsBase):
    """Real TLS clients deliver through mxscreen to the real Postfix."""

    def test_swaks_tls_delivers_with_real_client_address(self):
        client, marker, offset = "127.0.0.5", harness.unique_marker(), harness.postfix_log_offset()
        with harness.Mxscreen(self.tls_config()) as mx:
            result = subprocess.run(
                ["swaks", "--tls", "--server", f"127.0.0.1:{mx.port}", "--local-interface", client,
                 "--helo", HELO, "--from", SENDER, "--to", RCPT,
                 "--header", f"Message-Id: <{marker}@example.org>", "--header", f"Subject: {marker}",
                 "--body", f"body {marker}", "--timeout", "20"],
                capture_output=True, text=True, timeout=60)
            out = result.stdout + result.stderr
            self.assertEqual(result.returncode, 0, out)
            self.assertRegex(out, r"<-  250[- ]STARTTLS\n")  # offered in the clear ...
            self.assertIn("<-  220 2.0.0 Ready to start TLS", out)
            self.assertRegex(out, r"=== TLS started with cipher TLSv1\.3")
            after = out.split("=== TLS started", 1)[1]
            self.assertNotIn("STARTTLS", after)  # ... and no longer inside TLS
            self.assertIn("<~  250 2.0.0 Ok: queued as", out)
            self.assert_tls_established(mx, client)
            mx.wait_log(rf"DISCONNECT \[{re.escape(client)}\]:\d+ outcome=spliced ")
            self.assertEqual(self.handshakes(mx, result="ok", version="TLSv1.3"), 1)
        self.assert_at_postfix(marker, offset, client)

    def test_openssl_s_client_starttls_delivers(self):
        # s_client cannot bind a source address: it comes from 127.0.0.1, which the test
        # defaults do not allowlist, so it meets the whole pre-dialogue inside TLS.
        client, marker, offset = "127.0.0.1", harness.unique_marker(), harness.postfix_log_offset()
        with harness.Mxscreen(self.tls_config()) as mx:
            s = SClient(mx.port, client)
            try:
                code, lines = s.command(f"EHLO {HELO}")
                self.assertEqual(code, 250, lines)
                self.assertFalse(any("STARTTLS" in l for l in lines), lines)
                self.assertEqual(s.command(f"MAIL FROM:<{SENDER}>")[0], 250)
                code, lines = s.command(f"RCPT TO:<{RCPT}>")  # handoff: Postfix's reply
                self.assertEqual(code, 250, lines)
                self.assertEqual(s.command("DATA")[0], 354)
                for line in marked_message(marker).decode().split("\r\n")[:-1]:
                    s.send(line)
                code, lines = s.command(".")
                self.assertEqual(code, 250, lines)
                self.assertRegex(lines[0], r"^250 2\.0\.0 Ok: queued as")
                self.assertEqual(s.command("QUIT")[0], 221)
            finally:
                s.close()
            self.assert_tls_established(mx, client)
            mx.wait_log(r"DISCONNECT \[127\.0\.0\.1\]:\d+ outcome=spliced ")
        self.assert_at_postfix(marker, offset, client)

    def test_smtplib_starttls_delivers(self):
        client, marker, offset = "127.0.7.3", harness.unique_marker(), harness.postfix_log_offset()
        with harness.Mxscreen(self.tls_config()) as mx:
            smtp = harness.smtp_client(mx.port, source=client)
            try:
                smtp.ehlo()
                self.assertTrue(smtp.has_extn("starttls"))
                code, text = smtp.starttls(context=client_context())
                self.assertEqual((code, text), (220, b"2.0.0 Ready to start TLS"))
                self.assertEqual(smtp.sock.version(), "TLSv1.3")
                der = smtp.sock.getpeercert(binary_form=True)
                self.assertIn("CN = mx.test", peer_subject(der))
                code, _ = smtp.ehlo()
                self.assertEqual(code, 250)
                self.assertFalse(smtp.has_extn("starttls"))  # RFC 3207: not offered again
                self.assertEqual(smtp.sendmail(SENDER, [RCPT], marked_message(marker)), {})
            finally:
                smtp.quit()
            self.assert_tls_established(mx, client)
            mx.wait_log(rf"DISCONNECT \[{re.escape(client)}\]:\d+ outcome=spliced ")
        self.assert_at_postfix(marker, offset, client)

    def test_no_starttls_without_tls_section(self):
        with harness.Mxscreen() as mx:
            smtp = harness.smtp_client(mx.port, source="127.0.7.4")
            try:
                smtp.ehlo()
                self.assertFalse(smtp.has_extn("starttls"))
                code, _ = smtp.docmd("STARTTLS")
                self.assertGreaterEqual(code, 500)
            finally:
                smtp.close()

    def test_ten_megabytes_over_tls_arrive_intact(self):
        client = "127.0.7.5"
        body = big_body(10 * 1024 * 1024, seed=7)
        message = (f"From: <{SENDER}>\r\nTo: <{RCPT}>\r\nSubject: big\r\n\r\n").encode() + body
        with harness.SmtpSink() as sink, harness.Mxscreen(
                {**self.tls_config(),
                 "backend": {"address": f"127.0.0.1:{sink.port}", "handoff": "none"}}) as mx:
            smtp = tls_smtp(mx.port, client, timeout=60)
            try:
                self.assertEqual(smtp.sendmail(SENDER, [RCPT], message), {})
            finally:
                smtp.quit()
            got = sink.wait_messages(1, timeout=30)[0]
            self.assert_tls_established(mx, client)
        expected = message.replace(b"\r\n", b"\n")
        self.assertEqual(len(got.data), len(expected))
        self.assertEqual(hashlib.sha256(got.data).hexdigest(), hashlib.sha256(expected).hexdigest())


class TlsMisbehaviourTest(_TlsBase):
    """Garbage, stalls and injection: each handled cleanly, nothing else disturbed."""

    def starttls_raw(self, port, source):
        """A raw socket from source that got the greeting, EHLO'd and got STARTTLS's 220."""
        sock = harness.raw_connect(port, source=source)
        self.assertEqual(harness.read_reply(sock).code, 220)
        reply = harness.command(sock, f"EHLO {HELO}")
        self.assertEqual(reply.code, 250)
        self.assertIn("STARTTLS", reply.lines)
        reply = harness.command(sock, "STARTTLS")
        self.assertEqual((reply.code, reply.lines), (220, ["2.0.0 Ready to start TLS"]))
        return sock

    def assert_good_tls_client(self, mx, source):
        smtp = tls_smtp(mx.port, source)
        try:
            self.assertEqual(smtp.noop()[0], 250)
            self.assertEqual(smtp.sock.version(), "TLSv1.3")
        finally:
            smtp.close()

    def test_garbage_instead_of_client_hello(self):
        client = "127.0.7.10"
        with harness.Mxscreen(self.tls_config()) as mx:
            sock = self.starttls_raw(mx.port, client)
            try:
                sock.sendall(b"GET / HTTP/1.0\r\nHost: mx.test\r\n\r\n" + bytes(range(256)))
                self.assertTrue(harness.wait_closed(sock, 5), "session not closed")
            finally:
                sock.close()
            m = mx.wait_log(rf"TLS handshake failed for \[{re.escape(client)}\]:\d+: (.+); closing")
            reason = m.group(1)
            self.assertNotEqual(reason, "handshake timeout")
            self.assertEqual(self.handshakes(mx, result="error"), 1)
            mx.wait_log(rf"DISCONNECT \[{re.escape(client)}\]:\d+ ")
            # the next client is fine
            self.assert_good_tls_client(mx, "127.0.7.11")
            self.assert_tls_established(mx, "127.0.7.11")
            self.assertEqual(self.handshakes(mx, result="ok", version="TLSv1.3"), 1)
            self.assertTrue(mx.running())

    def test_stalled_handshakes_time_out_others_unaffected(self):
        with harness.Mxscreen(self.tls_config(handshake_timeout="1s")) as mx:
            silent = self.starttls_raw(mx.port, "127.0.7.20")  # STARTTLS, then nothing
            t_silent = time.monotonic()
            half = self.starttls_raw(mx.port, "127.0.7.21")  # half a ClientHello, then nothing
            hello = client_hello_bytes()
            half.sendall(hello[:len(hello) // 2])
            t_half = time.monotonic()
            try:
                # meanwhile another client completes its handshake and dialogue
                self.assert_good_tls_client(mx, "127.0.7.22")
                self.assertLess(time.monotonic() - t_silent, 1.0, "good client was held up")
                self.assertTrue(harness.wait_closed(silent, 5), "silent client not closed")
                silent_after = time.monotonic() - t_silent
                self.assertTrue(harness.wait_closed(half, 5), "half-handshake client not closed")
                half_after = time.monotonic() - t_half
            finally:
                silent.close()
                half.close()
            for after in (silent_after, half_after):
                self.assertGreater(after, 0.8)
                self.assertLess(after, 2.5)
            for client in ("127.0.7.20", "127.0.7.21"):
                mx.wait_log(rf"TLS handshake failed for \[{re.escape(client)}\]:\d+: "
                            r"handshake timeout; closing")
            self.assertEqual(self.handshakes(mx, result="error", reason="handshake timeout"), 2)
            self.assertEqual(self.handshakes(mx, result="ok", version="TLSv1.3"), 1)
            self.assert_good_tls_client(mx, "127.0.7.23")  # and after

    def test_starttls_command_injection_is_discarded(self):
        client = "127.0.7.30"
        with harness.Mxscreen(self.tls_config()) as mx:
            sock = harness.raw_connect(mx.port, source=client)
            try:
                self.assertEqual(harness.read_reply(sock).code, 220)
                self.assertEqual(harness.command(sock, f"EHLO {HELO}").code, 250)
                sock.sendall(b"STARTTLS\r\nRSET\r\n")  # one write: the injection
                reply = harness.read_reply(sock)
                self.assertEqual((reply.code, reply.lines), (220, ["2.0.0 Ready to start TLS"]))
                tls = client_context().wrap_socket(sock, server_hostname="mx.test")
                sock = tls
                # The first reply inside TLS answers our EHLO, not the injected RSET.
                reply = harness.command(tls, f"EHLO {HELO}")
                self.assertEqual(reply.code, 250, reply)
                self.assertGreater(len(reply.lines), 1, reply)  # EHLO's multi-line reply
                self.assertNotIn("STARTTLS", reply.lines)
                reply = harness.command(tls, f"MAIL FROM:<{SENDER}>")
                self.assertEqual(reply.raw, b"250 2.1.0 Ok\r\n")
                tls.settimeout(0.3)  # and nothing else is queued behind it
                with self.assertRaises((socket.timeout, ssl.SSLWantReadError)):
                    extra = tls.recv(1024)
                    if not extra:
                        raise AssertionError("closed")
                    self.fail(f"unexpected data {extra!r}")
                harness.command(tls, "QUIT")
            finally:
                sock.close()
            mx.wait_log(rf"discarding 6 plaintext bytes sent after STARTTLS by "
                        rf"\[{re.escape(client)}\]:\d+: RSET")
            self.assertEqual(mx.metric("mxscreen_tls_injection_discarded_total"), 1)
            self.assert_tls_established(mx, client)


class TlsReloadTest(_TlsBase):
    """Certificates re-read on SIGHUP: new sessions get the new one, live sessions go on."""

    def live_cert_files(self):
        d = Path(tempfile.mkdtemp(prefix="live-", dir=self.certdir))
        cert, key = d / "cert.pem", d / "key.pem"
        shutil.copy(self.cert1, cert)
        shutil.copy(self.key1, key)
        return cert, key

    def subject_of_new_session(self, mx, source):
        smtp = tls_smtp(mx.port, source)
        try:
            return peer_subject(smtp.sock.getpeercert(binary_form=True))
        finally:
            smtp.close()

    def test_certificate_swap_and_sighup(self):
        cert, key = self.live_cert_files()
        live_client, marker = "127.0.7.40", harness.unique_marker()
        offset = harness.postfix_log_offset()
        with harness.Mxscreen({"tls": {"cert_file": str(cert), "key_file": str(key)}}) as mx:
            # a session spliced to Postfix before the reload
            live = tls_smtp(mx.port, live_client)
            try:
                self.assertIn("CN = mx.test", peer_subject(live.sock.getpeercert(True)))
                self.assertEqual(live.mail(SENDER)[0], 250)
                self.assertEqual(live.rcpt(RCPT)[0], 250)  # handoff happens here
                # swap the certificate on disk and reload
                shutil.copy(self.key2, key)
                shutil.copy(self.cert2, cert)
                since = mx.log_offset()
                mx.reload()
                mx.wait_log(r"reloaded .*new sessions use the new configuration", since=since)
                self.assertIn("CN = mx2.test", self.subject_of_new_session(mx, "127.0.7.41"))
                # the live session completes its mail through the old TLS session
                code, text = live.data(marked_message(marker))
                self.assertEqual(code, 250, text)
                self.assertEqual(live.quit()[0], 221)
            finally:
                live.close()
            mx.wait_log(rf"DISCONNECT \[{re.escape(live_client)}\]:\d+ outcome=spliced ")
            self.assertEqual(mx.metric("mxscreen_reloads_total", {"result": "ok"}), 1)
        self.assert_at_postfix(marker, offset, live_client)

    def test_broken_certificate_refused_old_kept(self):
        cert, key = self.live_cert_files()
        with harness.Mxscreen({"tls": {"cert_file": str(cert), "key_file": str(key)}}) as mx:
            self.assertIn("CN = mx.test", self.subject_of_new_session(mx, "127.0.7.50"))
            cases = {
                "garbage PEM": lambda: cert.write_text(
                    "-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n"),
                "empty file": lambda: cert.write_bytes(b""),
                "key of another certificate": lambda: (shutil.copy(self.cert2, cert),
                                                       shutil.copy(self.key1, key)),
            }
            for n, (what, breaker) in enumerate(cases.items(), start=1):
                with self.subTest(what):
                    shutil.copy(self.cert1, cert)
                    shutil.copy(self.key1, key)
                    breaker()
                    since = mx.log_offset()
                    mx.reload()
                    mx.wait_log(r"reload of \S+ refused; keeping the running configuration",
                                since=since)
                    self.assertEqual(mx.metric("mxscreen_reloads_total", {"result": "refused"}), n)
                    self.assertIn("CN = mx.test", self.subject_of_new_session(mx, f"127.0.7.5{n}"))
            self.assertTrue(mx.running())


class TlsSpliceBench(_TlsBase):
    """Prints MB/s of a 20 MB message through a TLS splice and a plain one (median of 3)."""

    SIZE = 20 * 1024 * 1024

    def one_run(self, port, tls, body):
        smtp = (tls_smtp(port, "127.0.7.60", timeout=60) if tls
                else harness.smtp_client(port, source="127.0.7.61", timeout=60))
        try:
            if not tls:
                smtp.ehlo()
            self.assertEqual(smtp.mail(SENDER)[0], 250)
            self.assertEqual(smtp.rcpt(RCPT)[0], 250)  # spliced from here on
            smtp.putcmd("DATA")
            self.assertEqual(smtp.getreply()[0], 354)
            start = time.perf_counter()
            smtp.send(body)
            code, text = smtp.getreply()
            elapsed = time.perf_counter() - start
            self.assertEqual(code, 250, text)
        finally:
            smtp.quit()
        return len(body) / elapsed / 1e6

    def test_tls_vs_plain_splice_throughput(self):
        payload = dot_stuff(b"Subject: bench\r\n\r\n" + big_body(self.SIZE, seed=20))
        figures = {}
        with harness.SmtpSink() as sink:
            config = {**self.tls_config(),
                      "backend": {"address": f"127.0.0.1:{sink.port}", "handoff": "none"}}
            with harness.Mxscreen(config) as mx:
                for tls in (True, False, True, False, True, False):
                    figures.setdefault(tls, []).append(self.one_run(mx.port, tls, payload))
                self.assertEqual(len(sink.wait_messages(6, timeout=30)), 6)
        tls_mbs, plain_mbs = statistics.median(figures[True]), statistics.median(figures[False])
        print(f"\nBENCH 20 MB through mxscreen to smtp-sink (median of 3): "
              f"TLS splice {tls_mbs:.1f} MB/s {['%.1f' % x for x in figures[True]]}, "
              f"plain splice {plain_mbs:.1f} MB/s {['%.1f' % x for x in figures[False]]}, "
              f"ratio {tls_mbs / plain_mbs:.2f}", file=sys.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
