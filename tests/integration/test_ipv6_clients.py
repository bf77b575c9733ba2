"""IPv6 clients are counted per network, not per address (issue 16): a bot rotating through
its /64 (2^64 addresses) stays one client for bans, strikes, fake-MX hits and limits.

The rotating clients come as an upstream load balancer hands them over: PROXY v2 headers with
IPv6 sources, sent from 127.0.0.1 to proxy_protocol listeners (only ::1 is a loopback IPv6
address, so this is how one machine plays many IPv6 clients). One test uses a real IPv6
socket on ::1. What an admin notices:
- two fake-MX hits from two addresses of one /64 ban the /64 (`BANNED [2001:db8:1:2::/64]`); a
  third address of it is refused at the real MX, a neighbouring /64 is served; `ctl bans` lists
  the network and `ctl unban` with the network lets it back in;
- strikes from three addresses of one /64 add up to a ban of the /64;
- limits.client_connection_count counts per /84 (Postfix 3.8's smtpd_client_ipv6_prefix_length):
  two held sessions from one /84 turn a third address of it away with 421 4.7.0, while an
  address of another /84 of the same /64 is greeted;
- over ::1 itself, the ban is of ::/64 and the next connection from ::1 is refused.
"""

import os
import re
import socket
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

UPSTREAM = "127.0.0.1"  # the load balancer that sends the PROXY headers
NET = "2001:db8:1:2"
NEIGHBOUR = "2001:db8:1:3::5"


def esc(text):
    return re.escape(text)


def proxied(port, src, host="127.0.0.1", sport=4711):
    """A connection to a proxy_protocol listener that claims to come from [src]:sport."""
    sock = harness.raw_connect(port, source=UPSTREAM, host=host)
    sock.sendall(harness.proxy_v2_header(src, dst="2001:db8::25", sport=sport))
    return sock


def closed_without_a_word(port, src, host="127.0.0.1"):
    with proxied(port, src, host) as sock:
        data, how = harness.read_until_closed(sock)
    return data == b"" and how is not None


def refused_over_ipv6(port):
    """Connects from ::1 to [::1]:port: True when closed or reset without a byte (a reset may
    already meet the connect)."""
    try:
        sock = harness.raw_connect(port, source="::1", host="::1")
    except ConnectionResetError:
        return True
    with sock:
        data, how = harness.read_until_closed(sock)
    return data == b"" and how is not None


def greeted(port, src):
    """True when the client gets mxscreen's 220- teaser (it is screened, not refused)."""
    with proxied(port, src) as sock:
        return harness.read_line(sock).startswith(b"220-")


def listeners(extra):
    mx_port = harness.free_port("127.0.0.1")
    fake_port = harness.free_port("127.0.0.2")
    config = {"listen": [
        {"address": f"127.0.0.1:{mx_port}", "role": "mx", "proxy_protocol": True,
         "proxy_trusted": [UPSTREAM]},
        {"address": f"127.0.0.2:{fake_port}", "role": "fake_mx", "proxy_protocol": True,
         "proxy_trusted": [UPSTREAM]}]}
    config.update(extra)
    return config, mx_port, fake_port


class Ipv6ClientsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        harness.ensure_postfix()

    def ctl(self, mx, *request):
        return subprocess.run([harness.mxscreen_binary(), "ctl", "--config", str(mx.config_path),
                               *request], capture_output=True, text=True, timeout=20)

    def test_fake_mx_hits_from_one_64_ban_the_64(self):
        config, mx_port, fake_port = listeners({
            "fake_mx": {"action": "reset", "ban_after": 2, "window": "1h"},
            "ban": {"ban_time": "1h"}, "store": {"backend": "lmdb"}})
        with harness.Mxscreen(config) as mx:
            for i, src in enumerate((f"{NET}::5", f"{NET}:ffff:1234:5678:9abc"), 1):
                self.assertTrue(closed_without_a_word(fake_port, src, host="127.0.0.2"))
                mx.wait_log(rf"FAKE-MX \[{esc(src)}\]:4711 action=reset")
            mx.wait_log(rf"BANNED \[{esc(NET)}::/64\] for 3600s: fake MX only \(2 hits")

            # Another address of the /64, at the real MX: refused before a byte.
            third = f"{NET}:aaaa::7"
            self.assertTrue(closed_without_a_word(mx_port, third))
            mx.wait_log(rf"BANNED \[{esc(third)}\]:4711: connection refused \(fake MX only")
            # The neighbouring /64 is somebody else.
            self.assertTrue(greeted(mx_port, NEIGHBOUR))
            self.assertNotRegex(mx.log_text(), r"BANNED \[2001:db8:1:3")

            r = self.ctl(mx, "bans")
            self.assertEqual(r.returncode, 0, r)
            lines = r.stdout.splitlines()
            self.assertEqual(lines[-1], "1 banned", r.stdout)
            self.assertRegex(lines[0], rf"^{esc(NET)}::/64 until=\S+ left=3\d{{3}}s "
                                       r"reason=fake MX only \(2 hits, never the real MX\)$")

            r = self.ctl(mx, "unban", f"{NET}::/64")
            self.assertEqual((r.returncode, r.stdout), (0, f"unbanned {NET}::/64\n"), r)
            mx.wait_log(rf"UNBAN \[{esc(NET)}::/64\]")
            self.assertTrue(greeted(mx_port, third))

    def test_strikes_from_rotating_addresses_ban_the_64(self):
        config, mx_port, _ = listeners({
            "greet": {"action": "drop", "wait": "2s"},
            "ban": {"max_retry": 3, "ban_time": "1h"}, "store": {"backend": "memory"}})
        with harness.Mxscreen(config) as mx:
            for i in range(1, 4):
                with proxied(mx_port, f"{NET}::{i:x}") as sock:
                    harness.send_line(sock, f"EHLO {harness.CLIENT_HELO}")  # a pregreet
                    data, _ = harness.read_until_closed(sock)
                    self.assertTrue(data.endswith(b"521 5.5.1 Protocol error\r\n"), data)
            mx.wait_log(rf"BANNED \[{esc(NET)}::/64\] for 3600s: 3 strikes, last: ")
            self.assertTrue(closed_without_a_word(mx_port, f"{NET}::99"))
            self.assertTrue(greeted(mx_port, NEIGHBOUR))
            self.assertEqual(mx.metric("mxscreen_bans_total", {"trigger": "strikes"}), 1)

    def test_connection_count_limit_per_84(self):
        config, mx_port, _ = listeners({
            "greet": {"wait": "30s"},
            "limits": {"client_connection_count": 2}})
        with harness.Mxscreen(config) as mx:
            held = []
            try:
                # Two sessions from one /84 (the first 84 bits: 2001:db8:1:2:0:0...).
                for src in (f"{NET}::a", f"{NET}:0:fff:1:b"):
                    sock = proxied(mx_port, src)
                    held.append(sock)
                    self.assertTrue(harness.read_line(sock).startswith(b"220-"))
                # A third address of that /84 is one client too many ...
                with proxied(mx_port, f"{NET}::c") as sock:
                    data, _ = harness.read_until_closed(sock)
                self.assertEqual(
                    data, f"421 4.7.0 Error: too many connections from [{NET}::c]\r\n".encode())
                mx.wait_log(rf"NOQUEUE: reject: CONNECT from \[{esc(NET)}::c\]:4711: too many "
                            r"connections \(limits.client_connection_count = 2\)")
                # ... while another /84 of the same /64 is another client.
                self.assertTrue(greeted(mx_port, f"{NET}:0:f000::1"))
            finally:
                for sock in held:
                    sock.close()
            self.assertEqual(mx.metric("mxscreen_limit_hits_total",
                                       {"limit": "client_connection_count"}), 1)

    def test_ban_over_a_real_ipv6_socket(self):
        mx_port = harness.free_port("::1")
        fake_port = harness.free_port("::1")
        config = {"listen": [{"address": f"[::1]:{mx_port}", "role": "mx"},
                             {"address": f"[::1]:{fake_port}", "role": "fake_mx"}],
                  "fake_mx": {"action": "reset", "ban_after": 2, "window": "1h"},
                  "ban": {"ban_time": "1h"}}
        with harness.Mxscreen(config) as mx:
            for _ in range(2):
                self.assertTrue(refused_over_ipv6(fake_port))
            mx.wait_log(r"BANNED \[::/64\] for 3600s: fake MX only \(2 hits")
            self.assertTrue(refused_over_ipv6(mx_port))
            mx.wait_log(r"BANNED \[::1\]:\d+: connection refused \(fake MX only")


if __name__ == "__main__":
    unittest.main()
