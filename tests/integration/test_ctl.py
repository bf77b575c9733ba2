"""The admin socket and `mxscreen ctl` (issue 6), against the running binary and real Postfix.

What an admin notices:
- `ctl ban ADDR 1h` bans a client at once: it is closed at connect without a word, `ctl bans`
  lists it with its end time and reason, and ban.command ran with the address (argv, no shell);
- `ctl unban ADDR` lets it back at once: its next mail reaches Postfix; ban.unban_command ran;
- bans made with ctl survive a restart on the lmdb store;
- `ctl stats` answers with the live counters; the socket is mode 0600;
- a bad request, a bad address, a bad duration or a stopped mxscreen: a clear message on stderr
  and a non-zero exit, never a hang.
"""

import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

SENDER = "sender@example.org"
RCPT = "user@example.test"
BANNED = "127.0.0.61"


def deliver(port, source, marker):
    smtp = harness.smtp_client(port, source=source)
    try:
        smtp.ehlo(harness.CLIENT_HELO)
        msg = (f"From: <{SENDER}>\r\nTo: <{RCPT}>\r\nMessage-ID: <{marker}@example.org>\r\n"
               f"Subject: {marker}\r\n\r\nbody {marker}\r\n")
        return smtp.sendmail(SENDER, [RCPT], msg)
    finally:
        try:
            smtp.quit()
        except Exception:
            pass


def closed_without_a_word(port, source):
    """True when the server closes the connection without sending a byte."""
    sock = harness.raw_connect(port, source=source)
    try:
        sock.settimeout(5)
        try:
            return sock.recv(100) == b""
        except ConnectionResetError:
            return True
    finally:
        sock.close()


class CtlTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        harness.ensure_postfix()
        cls.tmp = Path(tempfile.mkdtemp(prefix="mxscreen-ctl-"))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def config(self, state_dir, **ban):
        log = self.tmp / "commands.log"
        section = {
            "command": ["/bin/sh", "-c", f'echo "ban $1" >> {log}', "sh", "{address}"],
            "unban_command": ["/bin/sh", "-c", f'echo "unban $1" >> {log}', "sh", "{address}"],
        }
        section.update(ban)
        return harness.connection_tests_only({
            "server": {"state_dir": str(state_dir)},
            "store": {"backend": "lmdb"},
            "ban": section,
        })

    def ctl(self, mx, *request, config_path=None):
        return subprocess.run(
            [harness.mxscreen_binary(), "ctl", "--config", str(config_path or mx.config_path),
             *request], capture_output=True, text=True, timeout=20)

    def commands_log(self):
        try:
            return (self.tmp / "commands.log").read_text()
        except FileNotFoundError:
            return ""

    def test_ban_list_unban_and_commands(self):
        state = self.tmp / "state-a"
        with harness.Mxscreen(self.config(state)) as mx:
            sock_path = state / "mxscreen.ctl"
            mode = stat.S_IMODE(os.stat(sock_path).st_mode)
            self.assertEqual(mode, 0o600, oct(mode))

            # Not banned yet: the client delivers.
            marker, offset = harness.unique_marker(), harness.postfix_log_offset()
            self.assertEqual(deliver(mx.port, BANNED, marker), {})
            harness.wait_delivered(marker)

            r = self.ctl(mx, "ban", BANNED, "1h")
            self.assertEqual((r.returncode, r.stdout), (0, f"banned {BANNED} for 3600s\n"), r)
            mx.wait_log(rf"BANNED \[{BANNED}\] for 3600s: banned by the admin")
            harness.wait_until(lambda: f"ban {BANNED}\n" in self.commands_log(),
                               what="ban.command to run")
            self.assertEqual(mx.metric("mxscreen_bans_total", {"trigger": "admin"}), 1)

            self.assertTrue(closed_without_a_word(mx.port, BANNED))
            mx.wait_log(rf"BANNED \[{BANNED}\]:\d+: connection refused \(banned by the admin, "
                        r"3\d{3}s left\)")
            # Others are not affected.
            marker2 = harness.unique_marker()
            self.assertEqual(deliver(mx.port, "127.0.0.62", marker2), {})

            r = self.ctl(mx, "bans")
            self.assertEqual(r.returncode, 0, r)
            lines = r.stdout.splitlines()
            self.assertEqual(lines[-1], "1 banned")
            self.assertRegex(lines[0], rf"^{BANNED} until=\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\dZ "
                                       r"left=3\d{3}s reason=banned by the admin$")

            r = self.ctl(mx, "unban", BANNED)
            self.assertEqual((r.returncode, r.stdout), (0, f"unbanned {BANNED}\n"), r)
            mx.wait_log(rf"UNBAN \[{BANNED}\]")
            harness.wait_until(lambda: f"unban {BANNED}\n" in self.commands_log(),
                               what="ban.unban_command to run")
            self.assertEqual(self.ctl(mx, "bans").stdout, "0 banned\n")
            marker3 = harness.unique_marker()
            self.assertEqual(deliver(mx.port, BANNED, marker3), {})  # back at once
            harness.wait_delivered(marker3)

            r = self.ctl(mx, "stats")
            self.assertEqual(r.returncode, 0, r)
            self.assertIn("store lmdb\n", r.stdout)
            self.assertRegex(r.stdout, r"(?m)^sessions_active \d+$")
            self.assertRegex(r.stdout, r'(?m)^mxscreen_sessions_total\{outcome="banned"\} 1$')
            # A clean stop removes the socket file.
            self.assertEqual(mx.stop(), 0)
            self.assertFalse(sock_path.exists())

    def test_bans_survive_a_restart_on_lmdb(self):
        state = self.tmp / "state-b"
        cfg = self.config(state, command=None, unban_command=None)
        with harness.Mxscreen(cfg) as mx:
            # An IPv6 client is banned as its ban.ipv6_prefix network (default /64).
            r = self.ctl(mx, "ban", "2001:db8::7", "2h")
            self.assertEqual((r.returncode, r.stdout), (0, "banned 2001:db8::/64 for 7200s\n"), r)
            self.assertEqual(self.ctl(mx, "ban", BANNED, "30m").returncode, 0)
            mx.kill()  # kill -9: acknowledged writes are on disk
        with harness.Mxscreen(cfg) as mx:
            r = self.ctl(mx, "bans")
            self.assertEqual(r.returncode, 0, r)
            lines = r.stdout.splitlines()
            self.assertEqual(lines[-1], "2 banned", r.stdout)
            # Soonest to end first.
            self.assertTrue(lines[0].startswith(f"{BANNED} until="), lines)
            self.assertTrue(lines[1].startswith("2001:db8::/64 until="), lines)
            self.assertTrue(closed_without_a_word(mx.port, BANNED))

    def test_bad_requests_get_clear_errors(self):
        state = self.tmp / "state-c"
        with harness.Mxscreen(self.config(state)) as mx:
            cases = [
                (("ban", "not-an-ip", "1h"), 'invalid address "not-an-ip"'),
                (("ban", BANNED, "soon"), 'invalid duration "soon"'),
                (("unban",), "unknown request"),
                (("frobnicate",), "unknown request \"frobnicate\""),
            ]
            for request, message in cases:
                r = self.ctl(mx, *request)
                self.assertEqual(r.returncode, 1, (request, r))
                self.assertIn(message, r.stderr)
                self.assertEqual(r.stdout, "")
            # A raw client that never ends its line, and one that sends too much: the server
            # answers the second and stays up for the next request.
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(str(state / "mxscreen.ctl"))
                s.sendall(b"x" * 5000)
                s.settimeout(5)
                self.assertEqual(s.recv(100), b"ERR request too long\n")
            self.assertEqual(self.ctl(mx, "bans").stdout, "0 banned\n")
            self.assertTrue(mx.running())
            config_path = mx.config_path
            config_copy = self.tmp / "copy.toml"
            shutil.copy(config_path, config_copy)
        r = self.ctl(None, "bans", config_path=config_copy)
        self.assertEqual(r.returncode, 1)
        self.assertIn("cannot connect to", r.stderr)
        self.assertIn("is mxscreen running?", r.stderr)

    def test_ban_command_must_be_an_absolute_path(self):
        code, output, path = harness.check_config(
            '[[listen]]\naddress = "127.0.0.1:2525"\nrole = "mx"\n'
            '[ban]\ncommand = ["nft", "add", "element"]\n')
        self.assertEqual(code, 2, output)
        self.assertRegex(output, rf"{path}:5:\d+: 'command' in \[ban\]: must start with the "
                                 r"absolute path of a program")


if __name__ == "__main__":
    unittest.main(verbosity=2)
