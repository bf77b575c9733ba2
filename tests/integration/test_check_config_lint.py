"""`mxscreen --check-config` lints the deployment (issue 19), against the real private Postfix.

What an admin notices:
- a backend that takes the configured handoff (PROXY v1/v2 on the proxy smtpd, XCLIENT on the
  xclient smtpd) gives no warning about it;
- a backend that refuses it (a PROXY header to the XCLIENT port), or nothing listening, gives
  a warning naming the backend and what to change, and the exit is still 0 (the file is fine);
- with the policy service on and Postfix local, `postconf` (read-only, on a private config
  directory given with --postfix-config) is asked for smtpd_recipient_restrictions: a value
  without check_policy_service at policy.listen warns, one with it does not, and a master.cf
  -o override of the backend's service is what counts.
"""

import os
import sys
import tempfile
import unittest
from pathlib import Path
import shutil
import subprocess

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

PROXY_WARNING = "the PROXY header was answered as a command"


def check(backend, handoff, extra=None, args=()):
    config = {"backend": {"address": backend, "handoff": handoff}, "access": {"allow": []},
              "dnsbl": {"sites": []}, "store": {"backend": "memory"}, "server": {"user": ""}}
    config.update(extra or {})
    fd, path = tempfile.mkstemp(prefix="mxscreen-lint-", suffix=".toml")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(harness.to_toml(config))
        r = subprocess.run([harness.mxscreen_binary(), "--check-config", *args, "--config", path],
                           capture_output=True, text=True, timeout=60)
    finally:
        os.unlink(path)
    output = r.stdout + r.stderr
    assert r.returncode == 0, output
    assert "configuration OK" in output, output
    return output


class HandoffLint(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        harness.ensure_postfix()

    def test_good_backends_give_no_handoff_warning(self):
        for backend, handoff in ((harness.BACKEND_PROXY, "proxy_v2"),
                                 (harness.BACKEND_PROXY, "proxy_v1"),
                                 (harness.BACKEND_XCLIENT, "xclient")):
            with self.subTest(handoff=handoff):
                output = check(backend, handoff)
                self.assertNotIn(f"backend {backend} (backend.handoff", output)
                self.assertNotIn("not reachable", output)

    def test_backend_that_refuses_the_proxy_header(self):
        output = check(harness.BACKEND_XCLIENT, "proxy_v2")
        self.assertIn(f"warning: backend {harness.BACKEND_XCLIENT} (backend.handoff = "
                      f"\"proxy_v2\"): {PROXY_WARNING}", output)
        self.assertIn("smtpd_upstream_proxy_protocol=haproxy", output)

    def test_nothing_listening(self):
        port = harness.free_port()
        output = check(f"127.0.0.1:{port}", "proxy_v2")
        self.assertRegex(output, rf"warning: backend 127\.0\.0\.1:{port} not reachable "
                                 r"\(Connection refused\)")


class PostconfLint(unittest.TestCase):
    """A private Postfix config directory, read with postconf -c; never the system one."""

    def setUp(self):
        if not any(os.access(f"{d}/postconf", os.X_OK) for d in ("/usr/sbin", "/usr/local/sbin")):
            self.skipTest("postconf is not installed")
        self.dir = Path(tempfile.mkdtemp(prefix="mxscreen-postconf-"))
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.policy = f"127.0.0.1:{harness.free_port()}"
        (self.dir / "master.cf").write_text("")

    def lint(self):
        return check(harness.BACKEND_PROXY, "proxy_v2", {"policy": {"listen": self.policy}},
                     args=("--postfix-config", str(self.dir)))

    def main_cf(self, restrictions):
        (self.dir / "main.cf").write_text(f"smtpd_recipient_restrictions = {restrictions}\n")

    def test_missing_restriction_warns(self):
        self.main_cf("reject_unauth_destination")
        output = self.lint()
        self.assertIn(f"warning: smtpd_recipient_restrictions in {self.dir} main.cf has no "
                      f"check_policy_service inet:{self.policy}", output)

    def test_restriction_present_gives_no_warning(self):
        self.main_cf(f"reject_unauth_destination, check_policy_service inet:{self.policy}")
        output = self.lint()
        self.assertNotIn("check_policy_service", output)
        self.assertNotIn("postconf", output)

    def test_master_cf_override_of_the_backend_service_counts(self):
        self.main_cf(f"reject_unauth_destination, check_policy_service inet:{self.policy}")
        (self.dir / "master.cf").write_text(
            f"{harness.BACKEND_PROXY} inet n - n - - smtpd\n"
            "  -o smtpd_recipient_restrictions=reject_unauth_destination\n")
        output = self.lint()
        self.assertIn(f"warning: the master.cf service {harness.BACKEND_PROXY} ({self.dir}) has no "
                      f"check_policy_service inet:{self.policy}", output)
        (self.dir / "master.cf").write_text(
            f"{harness.BACKEND_PROXY} inet n - n - - smtpd\n"
            "  -o smtpd_recipient_restrictions=reject_unauth_destination,check_policy_service,"
            f"inet:{self.policy}\n")
        self.main_cf("reject_unauth_destination")
        self.assertNotIn("check_policy_service", self.lint())

    def test_unreadable_config_dir_is_said_not_fatal(self):
        shutil.rmtree(self.dir)
        output = self.lint()
        self.assertIn(f"warning: postconf ({self.dir}) failed: ", output)
        self.assertIn("whether Postfix asks the policy service was not checked", output)


if __name__ == "__main__":
    unittest.main()
