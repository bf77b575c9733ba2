#!/usr/bin/env python3
"""The monitoring files in docs/monitoring/ (issue 19): the Prometheus alert rules pass
`promtool check rules`, and every metric they and the Grafana dashboard query is one a running
mxscreen exports (a renamed metric would otherwise leave an alert that never fires)."""

import json
import re
import shutil
import subprocess
import unittest

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


if __name__ == "__main__":
    unittest.main(verbosity=2)
