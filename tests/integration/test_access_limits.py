"""The spine's connect decision: static deny/allow lists (config and postscreen-style cidr file,
IPv4 and IPv6), the fake_mx listener's reset and tempfail, server.max_sessions, and the JSON log.
smtp-sink stands in for Postfix where a backend is needed (its banner is easy to recognise).
"""

import json
import os
import socket
import struct
import sys
import tempfile
import time
import unittest
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import connection_tests_only as spine  # noqa: E402

BANNER = "mx.test.example ESMTP"
SINK_BANNER = b"220 smtp-sink ESMTP\r\n"


def sink_backend(sink, **extra):
    return {"address": f"127.0.0.1:{sink.port}", "handoff": "none", **extra}


class AccessListTest(unittest.TestCase):
    def test_deny_and_allow_from_config(self):
        port6 = harness.free_port("::1")
        with harness.SmtpSink() as sink, harness.Mxscreen(spine({
                "listen": [{"address": "127.0.0.1:" + str(harness.free_port()), "role": "mx"},
                           {"address": f"[::1]:{port6}", "role": "mx"}],
                "access": {"deny": ["127.0.0.9/32", "::1/128"], "allow": ["127.0.0.8/32"]},
                "greet": {"wait": "5s", "banner": BANNER},
                "backend": sink_backend(sink)})) as mx:
            with harness.raw_connect(mx.port, source="127.0.0.9") as sock:
                data, how = harness.read_until_closed(sock)
                self.assertEqual(how, "eof")
                self.assertRegex(data.decode(), r"^554 5\.7\.1 .*\r\n$")
            mx.wait_log(r"DENYLISTED \[127\.0\.0\.9\]:\d+")
            mx.wait_log(r"DISCONNECT \[127\.0\.0\.9\]:\d+ outcome=denylisted")
            with harness.raw_connect(port6, source="::1", host="::1") as sock:
                data, how = harness.read_until_closed(sock)
                self.assertEqual(how, "eof")
                self.assertRegex(data.decode(), r"^554 5\.7\.1 .*\r\n$")
            mx.wait_log(r"DENYLISTED \[::1\]:\d+")
            # Allowlisted: no greet wait at all, the client gets the backend's own banner.
            start = time.monotonic()
            with harness.raw_connect(mx.port, source="127.0.0.8") as sock:
                self.assertEqual(harness.read_reply(sock, timeout=3).raw, SINK_BANNER)
                self.assertLess(time.monotonic() - start, 2.0)
                self.assertEqual(harness.command(sock, "EHLO mail.example.org").code, 250)
                self.assertEqual(harness.command(sock, "QUIT").code, 221)
            mx.wait_log(r"ALLOWLISTED \[127\.0\.0\.8\]:\d+")
            # Anyone else meets the greet test.
            with harness.raw_connect(mx.port, source="127.0.0.5") as sock:
                self.assertEqual(harness.read_line(sock, 3), f"220-{BANNER}\r\n".encode())

    def test_access_file_and_its_reload(self):
        with tempfile.TemporaryDirectory() as d, harness.SmtpSink() as sink:
            access = Path(d) / "access.cidr"
            access.write_text("# postscreen_access_list style\n"
                              "127.0.0.10/32 reject\n"
                              "127.0.0.11/32   permit\n")
            with harness.Mxscreen(spine({"access": {"file": str(access)},
                                         "greet": {"wait": "5s"},
                                         "backend": sink_backend(sink)})) as mx:
                with harness.raw_connect(mx.port, source="127.0.0.10") as sock:
                    data, how = harness.read_until_closed(sock)
                    self.assertRegex(data.decode(), r"^554 5\.7\.1 ")
                mx.wait_log(r"DENYLISTED \[127\.0\.0\.10\]:\d+")
                with harness.raw_connect(mx.port, source="127.0.0.11") as sock:
                    self.assertEqual(harness.read_reply(sock, timeout=3).raw, SINK_BANNER)
                mx.wait_log(r"ALLOWLISTED \[127\.0\.0\.11\]:\d+")
                # SIGHUP rereads the file: 127.0.0.10 is now welcome.
                access.write_text("127.0.0.10/32 permit\n")
                since = mx.log_offset()
                mx.reload()
                mx.wait_log(r"reloaded ", since=since)
                with harness.raw_connect(mx.port, source="127.0.0.10") as sock:
                    self.assertEqual(harness.read_reply(sock, timeout=3).raw, SINK_BANNER)
                mx.wait_log(r"ALLOWLISTED \[127\.0\.0\.10\]:\d+", since=since)


class FakeMxTest(unittest.TestCase):
    def fake_mx_config(self, action):
        self.fake_port = harness.free_port()
        return spine({"listen": [{"address": f"127.0.0.1:{harness.free_port()}", "role": "mx"},
                                 {"address": f"127.0.0.1:{self.fake_port}", "role": "fake_mx"}],
                      "fake_mx": {"action": action}, "greet": {"banner": BANNER}})

    def test_reset(self):
        with harness.Mxscreen(self.fake_mx_config("reset")) as mx:
            try:
                # On loopback the RST may beat connect() itself.
                with harness.raw_connect(self.fake_port, source="127.0.0.5") as sock:
                    data, how = harness.read_until_closed(sock)
            except ConnectionResetError:
                data, how = b"", "reset"
            self.assertEqual((data, how), (b"", "reset"))
            mx.wait_log(r"FAKE-MX \[127\.0\.0\.5\]:\d+ action=reset")
            self.assertEqual(mx.metric("mxscreen_fake_mx_hits_total", {"action": "reset"}), 1)
            self.assertEqual(mx.metric("mxscreen_connections_total", {"role": "fake_mx"}), 1)
            # The real MX listener is unaffected.
            with harness.raw_connect(mx.port, source="127.0.0.5") as sock:
                self.assertEqual(harness.read_line(sock, 3), f"220-{BANNER}\r\n".encode())

    def test_tempfail(self):
        with harness.Mxscreen(self.fake_mx_config("tempfail")) as mx:
            with harness.raw_connect(self.fake_port, source="127.0.0.5") as sock:
                data, how = harness.read_until_closed(sock)
                self.assertEqual(how, "eof")
                self.assertRegex(data.decode(), r"^421 4\.3\.2 [^\r\n]*\r\n$")
            mx.wait_log(r"FAKE-MX \[127\.0\.0\.5\]:\d+ action=tempfail")
            self.assertEqual(mx.metric("mxscreen_fake_mx_hits_total", {"action": "tempfail"}), 1)


class LimitsTest(unittest.TestCase):
    def test_max_sessions_one_held_client_second_gets_421(self):
        with harness.Mxscreen(spine({"server": {"max_sessions": 1},
                                     "greet": {"wait": "10s", "banner": BANNER}})) as mx:
            held = harness.raw_connect(mx.port, source="127.0.0.5")
            try:
                self.assertTrue(harness.read_line(held, 3).startswith(b"220-"))
                with harness.raw_connect(mx.port, source="127.0.0.6") as sock:
                    data, how = harness.read_until_closed(sock)
                    self.assertEqual(how, "eof")
                    self.assertEqual(data, b"421 4.3.2 All server ports are busy\r\n")
                mx.wait_log(r"NOQUEUE: reject: CONNECT from \[127\.0\.0\.6\]:\d+: "
                            r"all server ports busy")
            finally:
                held.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                held.close()
            harness.wait_until(lambda: mx.metric("mxscreen_sessions_active") == 0, 5,
                               what="the held session to end")
            with harness.raw_connect(mx.port, source="127.0.0.6") as sock:
                self.assertEqual(harness.read_line(sock, 3), f"220-{BANNER}\r\n".encode())


class JsonLogTest(unittest.TestCase):
    def test_json_log_lines(self):
        with harness.SmtpSink() as sink, harness.Mxscreen(spine({
                "log": {"format": "json"}, "greet": {"action": "ignore"},
                "backend": sink_backend(sink)})) as mx:
            with harness.raw_connect(mx.port, source="127.0.0.5") as sock:
                sock.sendall(b"EHLO early.example\r\n")
                self.assertEqual(harness.read_reply(sock).code, 220)
                self.assertEqual(harness.read_reply(sock).code, 250)  # sink's EHLO reply
                self.assertEqual(harness.command(sock, "QUIT").code, 221)
            mx.wait_log(r'"DISCONNECT"')
            events = {}
            for line in mx.log_text().splitlines():
                obj = json.loads(line)  # every line is one JSON object
                self.assertIsInstance(obj, dict, line)
                if "event" in obj:
                    self.assertIn("msg", obj, line)
                    events.setdefault(obj["event"], obj)
            for name in ("CONNECT", "PREGREET", "PASS", "DISCONNECT"):
                self.assertIn(name, events, sorted(events))
            self.assertRegex(events["CONNECT"]["msg"], r"^CONNECT from \[127\.0\.0\.5\]:\d+ to ")
            self.assertRegex(events["PREGREET"]["msg"],
                             r"^PREGREET 20 after \S+ from \[127\.0\.0\.5\]:\d+: "
                             r"EHLO early\.example\\x0d\\x0a$")
            self.assertRegex(events["DISCONNECT"]["msg"],
                             r"^DISCONNECT \[127\.0\.0\.5\]:\d+ outcome=spliced ")


if __name__ == "__main__":
    unittest.main(verbosity=2)
