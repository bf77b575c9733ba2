"""Smoke run of the load generator's scenarios against the real binary (issue 8).

CI builds bench/ and runs each load scenario once for a few seconds against mxscreen in front of
smtp-sink: hold, bots (the four kinds), legit (plain and with STARTTLS, through two workers) and
mixed. No timing is judged here (bench/run does that, as ratios in one run); what is asserted is
what a person running the bench relies on: the generator's JSON line, sessions that complete
as their kind expects, no client-side errors, and mxscreen's own counters agreeing with it.

Skipped when the generator is not built (cmake -DMXSCREEN_BENCH=OFF).
"""

import json
import os
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

LOADGEN = os.environ.get("MXSCREEN_LOADGEN") or str(harness.SOURCE_DIR / "build" /
                                                    "mxscreen_loadgen")


def loadgen(*args, timeout=60):
    """Runs the generator; returns its JSON line as a dict."""
    out = subprocess.run([LOADGEN, *args], capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise AssertionError(f"loadgen exit {out.returncode}: {out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


@unittest.skipUnless(os.access(LOADGEN, os.X_OK), "mxscreen_loadgen not built")
class BenchSmokeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sink = harness.SmtpSink().start()
        cls.tmp = Path(tempfile.mkdtemp(prefix="mxscreen-bench-smoke-"))
        cls.cert, cls.key = cls.tmp / "cert.pem", cls.tmp / "key.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", "/CN=mx.bench.test", "-keyout", str(cls.key), "-out",
                        str(cls.cert)], check=True, capture_output=True)

    @classmethod
    def tearDownClass(cls):
        cls.sink.stop()
        subprocess.run(["rm", "-rf", str(cls.tmp)], check=False)

    def mxscreen(self, **sections):
        """mxscreen in front of smtp-sink with the bench's screening: legit senders from
        127.2/16 allowlisted, bots from elsewhere screened with action drop."""
        cfg = {"backend": {"address": f"127.0.0.1:{self.sink.port}", "handoff": "none"},
               "greet": {"wait": "1s", "action": "drop"},
               "smtp": {"pipelining": "drop", "non_smtp_command": "drop"},
               "limits": {"client_connection_count": 0},
               "access": {"allow": ["127.2.0.0/16"]}}
        for name, body in sections.items():
            cfg.setdefault(name, {}).update(body)
        return harness.Mxscreen(cfg)

    def target(self, mx):
        return f"127.0.0.1:{mx.port}"

    def test_hold(self):
        with self.mxscreen(greet={"wait": "30s"}) as mx:
            r = loadgen("--scenario", "hold", "--target", self.target(mx), "--sessions", "300",
                        "--hold", "2", "--duration", "20", "--src", "127.1")
            self.assertEqual(r["errors_total"], 0, r)
            self.assertEqual(r["outcomes"].get("held"), 300, r)
            self.assertEqual(harness.metric_sum(mx, "mxscreen_connections_total"), 300)

    def test_bots(self):
        with self.mxscreen() as mx:
            r = loadgen("--scenario", "bots", "--target", self.target(mx), "--sessions", "400",
                        "--concurrency", "100", "--mix", "pregreet=25,pipeline=25,http=25,quit=25",
                        "--duration", "20", "--timeout", "15000", "--src", "127.1")
            self.assertEqual(r["errors_total"], 0, r)
            self.assertEqual(r["sessions"], 400, r)
            # Every bot was turned away: none got through to the backend.
            self.assertEqual(harness.metric_sum(mx, "mxscreen_handoffs_total"), 0)
            self.assertGreater(harness.metric_sum(mx, "mxscreen_pregreet_total",
                                                  {"verdict": "drop"}), 0)

    def test_legit_plain_and_starttls_through_two_workers(self):
        with self.mxscreen(server={"workers": 2}) as mx:
            r = loadgen("--scenario", "legit", "--target", self.target(mx), "--sessions", "300",
                        "--concurrency", "20", "--size", "1024", "--duration", "20",
                        "--src", "127.2")
            self.assertEqual(r["errors_total"], 0, r)
            self.assertEqual(r["messages"], 300, r)
        # STARTTLS is mxscreen's own (screened clients, no verdict cache), then the handoff.
        with self.mxscreen(server={"workers": 2}, access={"allow": []}, greet={"wait": "0s"},
                           cache={"enabled": False},
                           tls={"cert_file": str(self.cert), "key_file": str(self.key)}) as mx:
            r = loadgen("--scenario", "legit", "--target", self.target(mx), "--sessions", "100",
                        "--concurrency", "10", "--size", "1024", "--duration", "20",
                        "--starttls", "1", "--timeout", "15000", "--src", "127.4")
            self.assertEqual(r["errors_total"], 0, r)
            self.assertEqual(r["messages"], 100, r)
            self.assertEqual(harness.metric_sum(mx, "mxscreen_tls_handshakes_total",
                                                {"result": "ok"}), 100)

    def test_mixed(self):
        with self.mxscreen() as mx:
            r = loadgen("--scenario", "mixed", "--target", self.target(mx), "--rate", "20",
                        "--bot-rate", "200", "--concurrency", "50", "--bot-concurrency", "500",
                        "--duration", "3", "--grace", "3", "--timeout", "10000",
                        "--src", "127.2", "--bot-src", "127.3")
            self.assertEqual(r["errors_total"], 0, r)
            self.assertGreater(r["messages"], 0, r)
            self.assertGreater(r["latency_ms"]["n"], 0, r)


if __name__ == "__main__":
    unittest.main()
