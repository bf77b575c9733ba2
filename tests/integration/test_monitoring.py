#!/usr/bin/env python3
"""The monitoring files in docs/monitoring/ (issue 19): the Prometheus alert rules pass
`promtool check rules`, and every metric they and the Grafana dashboard query is one a running
mxscreen exports (a renamed metric would otherwise leave an alert that never fires)."""

import json
import re
import shutil
import subprocess
import tempfile
import unittest
from pathlib import Path

import harness

DOCS = harness.SOURCE_DIR / "docs" / "monitoring"
RULES = DOCS / "mxscreen-alerts.yml"
DASHBOARD = DOCS / "mxscreen-dashboard.json"


def queried_metrics(text):
    names = set(re.findall(r"\b(mxscreen_[a-z0-9_]+)", text))
    # Histogram series are queried by their _bucket/_sum/_count names.
    return {re.sub(r"_(bucket|sum|count)$", "", n) for n in names}


class MonitoringFilesTest(unittest.TestCase):
    def test_rules_pass_promtool(self):
        promtool = shutil.which("promtool")
        if not promtool:
            self.skipTest("promtool not installed (Debian package prometheus)")
        result = subprocess.run([promtool, "check", "rules", str(RULES)],
                                capture_output=True, text=True, timeout=60)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn("SUCCESS", result.stdout + result.stderr)

    def test_dashboard_is_grafana_json_with_queries(self):
        dashboard = json.loads(DASHBOARD.read_text())
        exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
        self.assertGreater(len(exprs), 10)
        self.assertEqual(len({p["id"] for p in dashboard["panels"]}), len(dashboard["panels"]))

    def test_every_queried_metric_is_exported(self):
        wanted = queried_metrics(RULES.read_text()) | queried_metrics(DASHBOARD.read_text())
        policy_port = harness.free_port()
        # With DNS and the LMDB store in use (their latency histograms are theirs to describe).
        with harness.Mxscreen({"policy": {"listen": f"127.0.0.1:{policy_port}"},
                               "dnsbl": {"sites": ["bl.monitoring.test=127.0.0.2"]},
                               "dns": {"nameservers": [f"127.0.0.1:{harness.free_port()}"]},
                               "store": {"backend": "lmdb"}}) as mx:
            exported = set(re.findall(r"^# TYPE (mxscreen_\w+) ", mx.metrics(), re.M))
        self.assertEqual(sorted(wanted - exported), [])


class CtlCheckTest(unittest.TestCase):
    """`mxscreen ctl check` as Nagios/Icinga run it: exit code and one status line."""

    @classmethod
    def setUpClass(cls):
        harness.ensure_postfix()

    def ctl_check(self, mx, *args, config_path=None):
        result = subprocess.run([harness.mxscreen_binary(), "ctl", "--config",
                                 str(config_path or mx.config_path), "check", *args],
                                capture_output=True, text=True, timeout=30)
        self.assertEqual(result.stdout.count("\n"), 1, result.stdout + result.stderr)
        return result.returncode, result.stdout.strip()

    def test_ok_warning_critical_unknown(self):
        with harness.Mxscreen({"server": {"max_sessions": 10}}) as mx:
            code, line = self.ctl_check(mx)
            self.assertEqual(code, 0, line)
            self.assertRegex(line, r"^MXSCREEN OK - \d+ sessions, 0 at the backend, 0 queued \| "
                                   r"sessions=\d+;8;9;0;10 backend_sessions=0 ")
            # Two held clients are 20 % of max_sessions: a warning at 0.2.
            with harness.raw_connect(mx.port, source="127.0.14.1") as a, \
                    harness.raw_connect(mx.port, source="127.0.14.2") as b:
                for sock in (a, b):
                    harness.read_line(sock)
                code, line = self.ctl_check(mx, "--warn-sessions", "0.2")
                self.assertEqual(code, 1, line)
                self.assertRegex(line, r"^MXSCREEN WARNING - 2 sessions >= 2 \|")
            code, line = self.ctl_check(mx, "--warn-sessions", "lots")
            self.assertEqual(code, 3, line)
            self.assertIn("UNKNOWN", line)
            kept = Path(tempfile.mkdtemp()) / "config.toml"
            kept.write_text(mx.config_path.read_text())
        # mxscreen stopped: nothing answers on metrics.listen.
        code, line = self.ctl_check(mx, config_path=kept)
        shutil.rmtree(kept.parent)
        self.assertEqual(code, 2, line)
        self.assertRegex(line, r"^MXSCREEN CRITICAL - no metrics from 127\.0\.0\.1:\d+")

    def test_backend_down_is_critical(self):
        dead = harness.free_port()
        with harness.Mxscreen({"backend": {"address": f"127.0.0.1:{dead}"}}) as mx:
            code, line = self.ctl_check(mx)
        self.assertEqual(code, 2, line)
        self.assertRegex(line, rf"^MXSCREEN CRITICAL - backend 127\.0\.0\.1:{dead} unreachable")


if __name__ == "__main__":
    unittest.main(verbosity=2)
