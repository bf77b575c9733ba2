#!/usr/bin/env python3
"""A proxy_protocol listener believes a PROXY header only once, only from a trusted upstream,
and a session that dies while a store answer is still on its way is never touched again
(issue 13, items 2 to 4). The store is a real redis-server, so the connect decision (the ban
lookup) really waits for the network while the client's bytes keep arriving."""

import asyncio
import socket
import struct
import threading
import unittest

import harness

UPSTREAM = "127.0.0.5"  # the trusted balancer's address
BANNER = "mx.test.example ESMTP"


def config(port, redis_port, **overrides):
    base = {
        "listen": [{"address": f"127.0.0.1:{port}", "role": "mx", "proxy_protocol": True,
                    "proxy_trusted": [UPSTREAM]}],
        "greet": {"action": "drop", "banner": BANNER, "wait": "300ms"},
        "greylist": {"enabled": False},
        "store": {"backend": "redis", "redis_url": f"redis://127.0.0.1:{redis_port}/0"},
    }
    for key, value in overrides.items():
        base.setdefault(key, {}).update(value)
    return base


class ProxyHeaderOnceTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        harness.ensure_postfix()
        cls.redis = harness.RedisServer().start()

    @classmethod
    def tearDownClass(cls):
        cls.redis.cleanup()

    def setUp(self):
        self.port = harness.free_port()

    def test_second_header_in_the_same_write_is_early_talk_not_a_new_client(self):
        # Before the fix the second header was believed while the ban lookup waited for Redis:
        # ALLOWLISTED [127.0.0.1] (access.allow), a raw splice, a leaked backend slot.
        with harness.Mxscreen(config(self.port, self.redis.port)) as mx:
            with harness.raw_connect(self.port, source=UPSTREAM) as sock:
                sock.sendall(harness.proxy_v1_header("192.0.2.10", sport=1234)
                             + harness.proxy_v1_header("127.0.0.1", sport=4711))
                data, closed = harness.read_until_closed(sock)
            self.assertTrue(closed)
            self.assertEqual(data, f"220-{BANNER}\r\n521 5.5.1 Protocol error\r\n".encode())
            mx.wait_log(r"PREGREET \d+ after \S+ from \[192\.0\.2\.10\]:1234: PROXY TCP4 127\.0\.0\.1")
            mx.wait_log(r"DISCONNECT \[192\.0\.2\.10\]:1234 outcome=pregreet")
            log = mx.log_text()
            self.assertEqual(log.count("CONNECT from "), 1, log)
            self.assertNotIn("ALLOWLISTED", log)
            self.assertNotIn("[127.0.0.1]:4711", log)
            self.assertIsNone(mx.metric("mxscreen_proxy_header_errors_total"))
            harness.wait_until(lambda: mx.metric("mxscreen_sessions_active") == 0, 5,
                               what="the session to end")
            self.assertEqual(mx.metric("mxscreen_sessions_backend"), 0)

    def test_thousands_of_headers_in_one_write_do_not_recurse(self):
        # 4,000 PROXY v2 LOCAL headers behind a valid one: once 1,750 levels of recursion (a
        # stack overflow under ASan, +130 MB in a release build); now one early talker.
        local = b"\r\n\r\n\x00\r\nQUIT\n" + b"\x20\x00\x00\x00"
        with harness.Mxscreen(config(self.port, self.redis.port)) as mx:
            with harness.raw_connect(self.port, source=UPSTREAM) as sock:
                sock.sendall(harness.proxy_v1_header("192.0.2.61", sport=1234) + local * 4000)
                data, closed = harness.read_until_closed(sock)
            self.assertTrue(closed)
            self.assertEqual(data, f"220-{BANNER}\r\n521 5.5.1 Protocol error\r\n".encode())
            mx.wait_log(r"DISCONNECT \[192\.0\.2\.61\]:1234 outcome=pregreet")
            self.assertTrue(mx.running())
            self.assertEqual(mx.log_text().count("CONNECT from "), 1)

    def test_pipelined_ehlo_behind_the_header_meets_the_pregreet_test(self):
        # It used to be told "invalid PROXY header" when the store answered later.
        with harness.Mxscreen(config(self.port, self.redis.port)) as mx:
            with harness.raw_connect(self.port, source=UPSTREAM) as sock:
                sock.sendall(harness.proxy_v2_header("127.0.0.67", sport=2345)
                             + b"EHLO bot.example\r\n")
                data, closed = harness.read_until_closed(sock)
            self.assertTrue(closed)
            self.assertEqual(data, f"220-{BANNER}\r\n521 5.5.1 Protocol error\r\n".encode())
            mx.wait_log(r"PREGREET 18 after \S+ from \[127\.0\.0\.67\]:2345: EHLO bot\.example")
            self.assertIsNone(mx.metric("mxscreen_proxy_header_errors_total"))

    def test_a_valid_header_then_a_patient_client_delivers(self):
        marker = harness.unique_marker()
        with harness.Mxscreen(config(self.port, self.redis.port,
                                     greet={"action": "enforce"})) as mx:
            header = harness.proxy_v2_header("127.0.0.68", sport=3456)
            with harness.smtp_client(self.port, source=UPSTREAM, preamble=header) as smtp:
                smtp.ehlo()
                self.assertFalse(smtp.sendmail(
                    "sender@example.org", ["user@example.test"],
                    f"Subject: {marker}\r\n\r\nx\r\n"))
            harness.wait_delivered(marker)
            mx.wait_log(r"PASS NEW \[127\.0\.0\.68\]:3456")
            harness.wait_until(lambda: mx.metric("mxscreen_sessions_backend") == 0, 5,
                               what="the backend slot to be given back")


class ProxyTrustTest(unittest.TestCase):
    def test_untrusted_upstream_is_closed_unheard(self):
        port = harness.free_port()
        cfg = {"listen": [{"address": f"127.0.0.1:{port}", "role": "mx",
                           "proxy_protocol": True, "proxy_trusted": ["127.0.0.9/32"]}],
               "greet": {"banner": BANNER}}
        with harness.SmtpSink() as sink:
            cfg["backend"] = {"address": f"127.0.0.1:{sink.port}", "handoff": "none"}
            with harness.Mxscreen(cfg) as mx:
                with harness.raw_connect(port, source="127.0.0.5") as sock:
                    # A header claiming an allowlisted address: not even read.
                    sock.sendall(harness.proxy_v1_header("127.0.0.1"))
                    data, closed = harness.read_until_closed(sock)
                self.assertTrue(closed)
                self.assertEqual(data, b"")
                mx.wait_log(r"PROXY connection from untrusted upstream \[127\.0\.0\.5\]:\d+ "
                            r"to \[127\.0\.0\.1\]:\d+ \(not in proxy_trusted\); closing")
                self.assertEqual(harness.metric_sum(mx, "mxscreen_proxy_untrusted_total"), 1)
                self.assertNotIn("CONNECT from", mx.log_text())
                # The trusted balancer is heard.
                with harness.raw_connect(port, source="127.0.0.9") as sock:
                    sock.sendall(harness.proxy_v1_header("127.0.0.70", sport=5555))
                    self.assertEqual(harness.read_line(sock), f"220-{BANNER}\r\n".encode())
                mx.wait_log(r"CONNECT from \[127\.0\.0\.70\]:5555")

    def test_proxy_protocol_without_trusted_upstreams_is_a_config_error(self):
        text = harness.to_toml({"listen": [{"address": "127.0.0.1:2525", "role": "mx",
                                            "proxy_protocol": True}]})
        code, output, path = harness.check_config(text)
        self.assertEqual(code, 2, output)
        self.assertRegex(output, rf"{path}:\d+:\d+: 'proxy_protocol' in \[\[listen\]\]: "
                                 r"proxy_protocol = true needs proxy_trusted")


class SlowRedis:
    """A TCP proxy in front of redis-server that holds every request for a key starting with
    `prefix` (and what is queued behind it on that connection) for `delay` seconds."""

    def __init__(self, redis_port, prefix, delay):
        self.redis_port, self.prefix, self.delay = redis_port, prefix, delay
        self.port = harness.free_port()
        self.held = 0
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _parse(buf):
        if not buf.startswith(b"*"):
            return None, 0
        i = buf.find(b"\r\n")
        if i < 0:
            return None, 0
        pos, args = i + 2, []
        for _ in range(int(buf[1:i])):
            j = buf.find(b"\r\n", pos)
            if j < 0:
                return None, 0
            n = int(buf[pos + 1:j])
            pos = j + 2
            if len(buf) < pos + n + 2:
                return None, 0
            args.append(buf[pos:pos + n])
            pos += n + 2
        return args, pos

    async def _pipe(self, reader, writer):
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        writer.close()

    async def _handle(self, client_reader, client_writer):
        redis_reader, redis_writer = await asyncio.open_connection("127.0.0.1", self.redis_port)
        asyncio.ensure_future(self._pipe(redis_reader, client_writer))
        buf = b""
        try:
            while data := await client_reader.read(65536):
                buf += data
                while True:
                    args, used = self._parse(buf)
                    if args is None:
                        break
                    request, buf = buf[:used], buf[used:]
                    if len(args) >= 2 and args[1].startswith(self.prefix):
                        self.held += 1
                        await asyncio.sleep(self.delay)
                    redis_writer.write(request)
                    await redis_writer.drain()
        except OSError:
            pass
        redis_writer.close()

    def _run(self):
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", self.port))
        self.ready.set()
        self.loop.run_forever()
        server.close()
        for task in asyncio.all_tasks(self.loop):
            task.cancel()
        self.loop.run_until_complete(asyncio.sleep(0))

    def start(self):
        self.thread.start()
        self.ready.wait(10)
        return self

    def stop(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class GreetWaitAfterResetTest(unittest.TestCase):
    def test_session_gone_before_its_store_answer_is_never_woken(self):
        # The fake-MX pair lookup (fmxp:) answers 0.8 s late (under the Redis reply timeout
        # of 1 s); the client resets right after `220-`; the greet wait (0.5 s) ends while the
        # answer is still out. The server's greet timer used to call into the freed session
        # (heap-use-after-free under ASan).
        redis = harness.RedisServer().start()
        slow = SlowRedis(redis.port, b"fmxp:", 0.8).start()
        try:
            port = harness.free_port()
            cfg = {"greet": {"wait": "500ms", "banner": BANNER},
                   "cache": {"pass_ttl": "0s"},
                   "greylist": {"enabled": False},
                   "store": {"backend": "redis", "redis_url": f"redis://127.0.0.1:{slow.port}/0"},
                   "listen": [{"address": f"127.0.0.1:{port}", "role": "mx"}]}
            with harness.SmtpSink() as sink:
                cfg["backend"] = {"address": f"127.0.0.1:{sink.port}", "handoff": "none"}
                with harness.Mxscreen(cfg) as mx:
                    for i in range(3):
                        with harness.raw_connect(port, source=f"127.0.0.{80 + i}") as sock:
                            self.assertEqual(harness.read_line(sock), f"220-{BANNER}\r\n".encode())
                            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                            struct.pack("ii", 1, 0))
                    mx.wait_log(r"DISCONNECT \[127\.0\.0\.82\]:\d+ outcome=client_error")
                    harness.wait_until(lambda: slow.held == 3, 8, what="3 held fmxp: lookups")
                    # Past every greet deadline and every late answer.
                    harness.wait_until(
                        lambda: mx.metric("mxscreen_store_operation_seconds_count",
                                          {"engine": "redis", "op": "get"}, 0) >= 6, 10,
                        what="the late store answers")
                    self.assertTrue(mx.running(), mx.log_tail())
                    # And the process still serves.
                    with harness.raw_connect(port, source="127.0.0.90") as sock:
                        self.assertEqual(harness.read_line(sock), f"220-{BANNER}\r\n".encode())
                        self.assertEqual(harness.read_line(sock, timeout=5), f"220 {BANNER}\r\n".encode())
                    self.assertTrue(mx.running())
        finally:
            slow.stop()
            redis.cleanup()


if __name__ == "__main__":
    unittest.main(verbosity=2)
