#!/usr/bin/env python3
"""The monitoring files in docs/monitoring/ (issue 19): the Prometheus alert rules pass
`promtool check rules`, every metric they and the Grafana dashboard query is one a running
mxscreen exports (a renamed metric would otherwise leave an alert that never fires), and a real
Prometheus scraping a running mxscreen evaluates every rule and every dashboard query."""

import json
import re
import shutil
import subprocess
import tempfile
import unittest
import urllib.parse
import urllib.request
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


class Prometheus:
    """A private Prometheus (Debian's package) on a free loopback port, scraping one mxscreen as
    job "mxscreen" every second and evaluating docs/monitoring's rules every second."""

    def __init__(self, metrics_port, rules):
        self.binary = shutil.which("prometheus")
        self.dir = Path(tempfile.mkdtemp(prefix="mxscreen-prometheus-"))
        self.port = harness.free_port()
        config = self.dir / "prometheus.yml"
        config.write_text(json.dumps({  # JSON is YAML
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(rules)],
            "scrape_configs": [{"job_name": "mxscreen", "static_configs": [
                {"targets": [f"127.0.0.1:{metrics_port}"]}]}]}))
        self.log = open(self.dir / "prometheus.log", "wb")
        self.proc = subprocess.Popen(
            [self.binary, f"--config.file={config}", f"--storage.tsdb.path={self.dir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
        harness.wait_listening([self.port], 30, proc=self.proc)

    def api(self, path, **params):
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                return json.load(r)
        except urllib.error.HTTPError as e:  # a bad query is a 400 with a JSON error body
            return json.load(e)

    def query(self, expr):
        return self.api("query", query=expr)

    def close(self):
        self.proc.terminate()
        self.proc.wait(10)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class RealPrometheusTest(unittest.TestCase):
    """The dashboard and the alerts against a real Prometheus scraping a running mxscreen: every
    query is valid PromQL and the core ones return data; every rule evaluates without error; and
    MxscreenDown goes pending once mxscreen stops answering."""

    @classmethod
    def setUpClass(cls):
        if not shutil.which("prometheus"):
            raise unittest.SkipTest("prometheus not installed (Debian package prometheus)")
        harness.ensure_postfix()

    def test_dashboard_queries_and_rules_on_live_metrics(self):
        policy_port = harness.free_port()
        with harness.Mxscreen({"policy": {"listen": f"127.0.0.1:{policy_port}"},
                               "greylist": {"enabled": True},
                               "store": {"backend": "lmdb"}}) as mx:
            prom = Prometheus(mx.metrics_port, RULES)
            self.addCleanup(prom.close)
            # Traffic that moves the counters the dashboard shows: greylisted first tries. A
            # series is new at its first sample, and rate() sees no increase in it: so one try,
            # a scrape of it (static targets reach the scraper after a 5 s discovery delay),
            # then another.
            def greylisted(client):
                with harness.smtp_client(mx.port, source=client) as smtp:
                    smtp.ehlo("mail.example.org")
                    smtp.mail("sender@example.org")
                    self.assertEqual(smtp.rcpt("user@example.test")[0], 450)
            greylisted("127.0.15.1")
            harness.wait_until(lambda: prom.query(
                'mxscreen_greylist_total{job="mxscreen"}')["data"]["result"], 30,
                what="Prometheus's first scrape of the greylist counter")
            greylisted("127.0.16.1")
            harness.wait_until(lambda: prom.query(
                'sum(rate(mxscreen_greylist_total{job="mxscreen"}[1m])) > 0')["data"]["result"],
                30, what="Prometheus to see the greylist counter move")

            dashboard = json.loads(DASHBOARD.read_text())
            results = {}
            for panel in dashboard["panels"]:
                for target in panel["targets"]:
                    expr = target["expr"].replace("$instance", ".*")
                    answer = prom.query(expr)
                    self.assertEqual(answer.get("status"), "success", f"{expr}: {answer}")
                    results[expr] = answer["data"]["result"]
            # The panels an admin looks at first show data from this one session.
            for metric in ("mxscreen_sessions_active", "mxscreen_connections_total",
                           "mxscreen_sessions_total", "mxscreen_greylist_total",
                           "mxscreen_store_operation_seconds_bucket"):
                shown = [e for e, r in results.items() if metric + "{" in e and r]
                self.assertTrue(shown, f"no dashboard query of {metric} returned data")

            def rules():
                groups = prom.api("rules")["data"]["groups"]
                return [r for g in groups for r in g["rules"]]
            harness.wait_until(lambda: all(r.get("lastEvaluation", "").startswith("20")
                                           for r in rules()), 30, what="every rule evaluated")
            loaded = {r["name"] for r in rules()}
            self.assertEqual(loaded, set(re.findall(r"- alert: (\w+)", RULES.read_text())))
            for rule in rules():
                self.assertEqual(rule["health"], "ok", rule)
        # mxscreen is gone: the next scrape fails and MxscreenDown becomes pending (for: 2m).
        harness.wait_until(lambda: any(
            a["labels"]["alertname"] == "MxscreenDown" and a["state"] in ("pending", "firing")
            for a in prom.api("alerts")["data"]["alerts"]), 30, what="MxscreenDown pending")


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
