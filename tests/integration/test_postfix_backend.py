"""The Postfix backend on its own (no mxscreen): proves scripts/postfix-backend and the harness.

The tests' private instance (harness.POSTFIX_DIR): its PROXY port (harness.BACKEND_PROXY) takes
a PROXY header and logs the client it names; its XCLIENT port takes XCLIENT; mail to
user@example.test is delivered to the test Maildir; unknown@example.test is refused with 550.
Setting it up leaves /etc/postfix as it was, and it runs its own master beside the machine's.
"""

import hashlib
import os
import re
import subprocess
import sys
import unittest
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

PROXY_PORT = harness.BACKEND_PROXY_PORT
XCLIENT_PORT = harness.BACKEND_XCLIENT_PORT


def etc_postfix_state():
    """Every entry under /etc/postfix with its mode, owner, size and bytes; None when there is
    no /etc/postfix. (Not the mtimes: until every work tree on a shared machine has these
    tests, older ones rewrite main.cf with the same bytes. CI compares the mtimes too.)"""
    root = Path("/etc/postfix")
    if not root.is_dir():
        return None
    rows = []
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        digest = hashlib.md5(p.read_bytes()).hexdigest() if p.is_file() else ""
        rows.append((str(p), st.st_mode, st.st_uid, st.st_gid, st.st_size, digest))
    return rows


class PostfixBackendTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.etc_before = etc_postfix_state()
        harness.ensure_postfix()
        cls.etc_after = etc_postfix_state()

    def test_setting_up_leaves_etc_postfix_alone(self):
        self.assertEqual(self.etc_before, self.etc_after)

    def test_the_instance_is_private(self):
        config = harness.POSTFIX_DIR / "etc"
        for name in ("queue_directory", "data_directory", "maillog_file", "virtual_mailbox_base"):
            value = subprocess.run(["postconf", "-c", str(config), "-h", name], check=True,
                                   capture_output=True, text=True).stdout.strip()
            self.assertTrue(value.startswith(str(harness.POSTFIX_DIR) + "/"), (name, value))
        # The backend port belongs to the private master (its smtpd children share the socket),
        # not to the machine's Postfix.
        master = int((harness.POSTFIX_DIR / "spool" / "pid" / "master.pid").read_text().split()[0])
        listeners = subprocess.run(["ss", "-Hltnp", f"sport = :{PROXY_PORT}"], check=True,
                                   capture_output=True, text=True).stdout
        self.assertEqual({int(p) for p in re.findall(r'"master",pid=(\d+),', listeners)},
                         {master}, listeners)

    def test_proxy_v1_session_delivers_and_logs_real_client(self):
        marker = harness.unique_marker()
        offset = harness.postfix_log_offset()
        with harness.smtp_client(PROXY_PORT, source="127.0.0.5",
                                 preamble=harness.proxy_v1_header("127.0.0.5")) as smtp:
            smtp.ehlo()
            smtp.sendmail("sender@example.org", ["user@example.test"],
                          f"Subject: {marker}\r\n\r\nbody {marker}\r\n".encode())
        harness.wait_for_log(r"client=unknown\[127\.0\.0\.5\]", offset)
        message = harness.wait_delivered(marker)
        self.assertIn(f"Subject: {marker}", message)

    def test_proxy_v2_header_is_accepted(self):
        offset = harness.postfix_log_offset()
        sock = harness.raw_connect(PROXY_PORT, source="127.0.0.7")
        with sock:
            sock.sendall(harness.proxy_v2_header("127.0.0.77", sport=4712))
            self.assertEqual(harness.read_reply(sock).code, 220)
            self.assertEqual(harness.command(sock, "EHLO mail.example.org").code, 250)
            self.assertEqual(harness.command(sock, "QUIT").code, 221)
        harness.wait_for_log(r"connect from unknown\[127\.0\.0\.77\]", offset)

    def test_unknown_recipient_gets_550(self):
        with harness.smtp_client(PROXY_PORT, source="127.0.0.5",
                                 preamble=harness.proxy_v1_header("127.0.0.5")) as smtp:
            smtp.ehlo()
            code, _ = smtp.mail("sender@example.org")
            self.assertEqual(code, 250)
            code, text = smtp.rcpt("unknown@example.test")
            self.assertEqual(code, 550, text)
            code, _ = smtp.rcpt("user@example.test")
            self.assertEqual(code, 250)
            smtp.rset()

    def test_xclient_session_delivers_and_logs_real_client(self):
        marker = harness.unique_marker()
        offset = harness.postfix_log_offset()
        sock = harness.raw_connect(XCLIENT_PORT, source="127.0.0.1")
        with sock:
            self.assertEqual(harness.read_reply(sock).code, 220)
            ehlo = harness.command(sock, "EHLO mxscreen.example.org")
            self.assertEqual(ehlo.code, 250)
            self.assertTrue(any(l.startswith("XCLIENT") for l in ehlo.lines), ehlo.lines)
            # XCLIENT resets the session: the reply is a new 220 greeting (Postfix XCLIENT_README).
            reply = harness.command(sock, "XCLIENT ADDR=127.0.0.6 PORT=4713 NAME=[UNAVAILABLE] "
                                          "HELO=mail.example.org")
            self.assertEqual(reply.code, 220, reply.raw)
            self.assertEqual(harness.command(sock, "EHLO mail.example.org").code, 250)
            self.assertEqual(harness.command(sock, "MAIL FROM:<sender@example.org>").code, 250)
            self.assertEqual(harness.command(sock, "RCPT TO:<user@example.test>").code, 250)
            self.assertEqual(harness.command(sock, "DATA").code, 354)
            reply = harness.command(sock, f"Subject: {marker}\r\n\r\nbody\r\n.")
            self.assertEqual(reply.code, 250, reply.raw)
            self.assertEqual(harness.command(sock, "QUIT").code, 221)
        harness.wait_for_log(r"client=unknown\[127\.0\.0\.6\]", offset)
        harness.wait_delivered(marker)


if __name__ == "__main__":
    unittest.main(verbosity=2)
