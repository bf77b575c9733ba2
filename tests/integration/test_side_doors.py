"""The side doors (/metrics and the admin socket) are bounded (issue 13, item 5).

What an admin notices:
- mxscreen run with 200 open files and 260 idle connections to the metrics port: SMTP clients
  still get their greeting (before, the idle ones took every descriptor), the connections past
  metrics.max_connections get `503` at once, the idle ones are closed after metrics.timeout,
  and /metrics answers again with both counted;
- 40 idle connections held on the admin socket: `mxscreen ctl stats` is answered `ERR busy` at
  once (not a hang), and works again once the idle ones hit server.ctl_timeout, while the test
  still holds all 40 open.
"""

import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import unittest
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


def recv_some(sock, timeout=5.0):
    """What the peer sent before closing (b"" = closed without a word); None = still open."""
    sock.settimeout(timeout)
    data = b""
    try:
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                return data
            data += chunk
    except socket.timeout:
        return None if not data else data
    except ConnectionResetError:
        return data


def scrape(port, timeout=3.0):
    """(status, body) of GET /metrics; status 0 when the connection failed."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, ""
    except (OSError, urllib.error.URLError):
        return 0, ""


def sample(text, name, **labels):
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    line = f"{name}{{{want}}} " if want else f"{name} "
    for l in text.splitlines():
        if l.startswith(line):
            return int(float(l.split()[-1]))
    return 0


class SideDoorTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        harness.ensure_postfix()

    def limited_binary(self, tmpdir, nofile):
        """A wrapper that runs mxscreen with a hard open-files limit of nofile."""
        wrapper = tmpdir / "mxscreen-limited"
        wrapper.write_text(f'#!/bin/sh\nulimit -n {nofile}\nexec "{harness.mxscreen_binary()}" "$@"\n')
        wrapper.chmod(0o755)
        return str(wrapper)

    def greeting(self, port):
        sock = harness.raw_connect(port, source="127.0.0.71", timeout=10)
        try:
            return harness.read_line(sock, timeout=10)
        finally:
            sock.close()

    def test_idle_metrics_connections_cannot_starve_smtp(self):
        # Sessions that fit in 200 descriptors (max_sessions + backend + 64 for the rest).
        config = harness.connection_tests_only({"metrics": {"max_connections": 8, "timeout": "2s"},
                                                "server": {"max_sessions": 50},
                                                "backend": {"max_sessions": 10}})
        tmpdir = Path(tempfile.mkdtemp(prefix="mxscreen-side-"))
        self.addCleanup(shutil.rmtree, tmpdir, True)
        with harness.Mxscreen(config, binary=self.limited_binary(tmpdir, 200)) as mx:
            idle = []
            try:
                for _ in range(260):
                    idle.append(socket.create_connection(("127.0.0.1", mx.metrics_port), timeout=10))
                # SMTP clients get their greeting while the idle connections are open.
                self.assertTrue(self.greeting(mx.port).startswith(b"220"))
                # Every one is closed by mxscreen: past the cap with a 503 at once, the first 8
                # (and any that took a slot a timeout freed while they arrived) without a
                # reply after metrics.timeout.
                answers = [recv_some(s, timeout=10) for s in idle]
                self.assertNotIn(None, answers, "an idle connection was left open")
                busy = [a for a in answers if a.startswith(b"HTTP/1.0 503 ")]
                self.assertEqual(len(busy) + answers.count(b""), 260, set(answers))
                self.assertGreaterEqual(len(busy), 200)
                self.assertGreaterEqual(answers.count(b""), 8)
                status, text = harness.wait_until(
                    lambda: (lambda r: r if r[0] == 200 else None)(scrape(mx.metrics_port)),
                    timeout=10, what="/metrics to answer again")
                # Every idle connection was either held and timed out or refused at once (a
                # slot freed by a timeout may take one of the later ones while they arrive).
                timeouts = sample(text, "mxscreen_admin_connections_closed_total",
                                  socket="metrics", reason="timeout")
                refused = sample(text, "mxscreen_admin_connections_closed_total",
                                 socket="metrics", reason="max_connections")
                self.assertGreaterEqual(timeouts, 8)
                self.assertGreaterEqual(refused, 200)
                self.assertGreaterEqual(timeouts + refused, 260)
                self.assertTrue(self.greeting(mx.port).startswith(b"220"))
            finally:
                for s in idle:
                    s.close()

    def ctl(self, mx):
        return subprocess.run([harness.mxscreen_binary(), "ctl", "--config", str(mx.config_path),
                               "stats"], capture_output=True, text=True, timeout=20)

    def test_idle_admin_connections_time_out_and_ctl_works(self):
        config = harness.connection_tests_only({"server": {"ctl_timeout": "1s"}})
        with harness.Mxscreen(config) as mx:
            path = str(mx.state_dir / "mxscreen.ctl")
            self.assertTrue(stat.S_ISSOCK(os.stat(path).st_mode))
            held = []
            try:
                for _ in range(40):
                    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    s.connect(path)
                    held.append(s)
                r = self.ctl(mx)
                if r.returncode != 0:  # within ctl_timeout of the idle ones: refused, no hang
                    self.assertIn("busy", r.stderr)
                # The 17th and later are told at once; the first 16 (and any that took a slot
                # a timeout freed) are closed after server.ctl_timeout.
                busy = (b"ERR busy: too many admin connections (server.ctl_max_connections); "
                        b"try again\n")
                answers = [recv_some(s, timeout=10) for s in held]
                self.assertNotIn(None, answers, "an idle admin connection was left open")
                self.assertEqual(answers.count(busy) + answers.count(b""), 40, set(answers))
                self.assertGreaterEqual(answers.count(busy), 20)
                self.assertGreaterEqual(answers.count(b""), 16)
                # ctl works again with all 40 still held open here.
                r = harness.wait_until(lambda: (lambda r: r if r.returncode == 0 else None)(
                    self.ctl(mx)), timeout=10, what="ctl stats to work")
                self.assertIn("sessions_active", r.stdout)
                m = re.search(r'^mxscreen_admin_connections_closed_total\{socket="ctl",'
                              r'reason="timeout"\} (\d+)$', r.stdout, re.MULTILINE)
                self.assertIsNotNone(m, r.stdout)
                self.assertGreaterEqual(int(m.group(1)), 16)
                mx.wait_log(r"ctl: connection closed: no request answered within "
                            r"server\.ctl_timeout")
                mx.wait_log(r"ctl: connection refused: 16 admin connections open")
            finally:
                for s in held:
                    s.close()
            self.assertGreaterEqual(
                mx.metric("mxscreen_admin_connections_closed_total",
                          {"socket": "ctl", "reason": "max_connections"}), 20)


if __name__ == "__main__":
    unittest.main()
