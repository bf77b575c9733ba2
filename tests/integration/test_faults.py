#!/usr/bin/env python3
"""Faults injected into mxscreen's peers while clients deliver (issue 16): the backend resets
mid-splice, Redis is paused and killed during a burst, the DNS server drops, delays or answers
garbage, the LMDB map fills, the process runs out of descriptors while accepting, and SIGHUP
arrives every 100 ms. For each: what the client gets, nothing acknowledged is lost, the process
recovers by itself, and a metric or log line shows what happened.

Peers: smtp-sink (Postfix's fast test server) as the backend where delivery is counted, a real
redis-server, and for the faults that real servers will not produce on demand (a DNS server that
answers garbage, a backend that resets after DATA) a few lines of Python speaking the wire
protocol."""

import os
import resource
import signal
import socket
import struct
import threading
import time
import unittest
from concurrent.futures import ThreadPoolExecutor

import harness

BANNER = "mx.faults.example ESMTP"


def deliver(port, source, marker, timeout=15.0):
    """One message through mxscreen; True when the DATA was acknowledged with 250."""
    try:
        with harness.smtp_client(port, source=source, timeout=timeout) as smtp:
            smtp.ehlo()
            refused = smtp.sendmail("sender@example.org", ["user@example.test"],
                                    f"Subject: {marker}\r\n\r\nbody\r\n")
            return not refused
    except (OSError, harness.smtplib.SMTPException):
        return False


def sink_markers(sink):
    return [m.data.decode("utf-8", "replace") for m in sink.messages()]


class LoopbackServer:
    """A TCP server on a free loopback port, one thread per connection running _session(conn);
    `connections` counts the accepted ones."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._session, args=(conn,), daemon=True).start()

    def _session(self, conn):
        raise NotImplementedError

    def close(self):
        self.sock.close()


class Backend(LoopbackServer):
    """A loopback SMTP server that answers up to DATA, then resets the connection with RST after
    the first body bytes: a backend that dies mid-splice."""

    def __init__(self):
        self.resets = 0
        super().__init__()

    def _session(self, conn):
        f = conn.makefile("rb")
        conn.sendall(b"220 fake.backend ESMTP\r\n")
        try:
            while line := f.readline():
                verb = line[:4].upper()
                if verb in (b"EHLO", b"HELO"):
                    conn.sendall(b"250-fake.backend\r\n250 8BITMIME\r\n")
                elif verb == b"DATA":
                    conn.sendall(b"354 go ahead\r\n")
                    f.readline()  # the first line of the message
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.resets += 1
                    break
                elif verb == b"QUIT":
                    conn.sendall(b"221 bye\r\n")
                    break
                else:
                    conn.sendall(b"250 ok\r\n")
        finally:
            conn.close()


class DnsServer:
    """A UDP DNS server on loopback that misbehaves on purpose: mode "drop" never answers,
    "delay" answers NXDOMAIN after `delay` seconds, "garbage" answers with the query's ID and
    bytes that are no DNS message."""

    def __init__(self, mode, delay=0.0):
        self.mode, self.delay = mode, delay
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.queries = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                data, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            self.queries += 1
            if self.mode == "drop" or len(data) < 12:
                continue
            if self.mode == "garbage":
                self.sock.sendto(data[:2] + b"\x81\x80\xff\xff\x00\x07garbage\xc0", peer)
            else:
                reply = data[:2] + b"\x81\x83" + data[4:6] + b"\0\0\0\0\0\0" + data[12:]
                threading.Timer(self.delay, self._send_late, (reply, peer)).start()

    def _send_late(self, reply, peer):
        try:
            self.sock.sendto(reply, peer)
        except OSError:  # closed at the end of the test
            pass

    def close(self):
        self.sock.close()


class FakeRedis(LoopbackServer):
    """A loopback server speaking just enough RESP to pass for Redis, that then breaks the
    protocol on purpose: mode "spontaneous" sends a reply nobody asked for after the handshake's
    PONG, mode "double" answers every command twice. hiredis 0.14 aborts the process on either
    (an assert in its async reply dispatch) unless mxscreen drops the connection first."""

    def __init__(self, mode):
        self.mode = mode
        super().__init__()

    @staticmethod
    def _command(f):
        head = f.readline()
        if not head.startswith(b"*"):
            return None
        args = []
        for _ in range(int(head[1:])):
            size = int(f.readline()[1:])
            args.append(f.read(size + 2)[:-2])
        return args

    def _session(self, conn):
        f = conn.makefile("rb")
        try:
            while (args := self._command(f)) is not None:
                verb = args[0].upper()
                reply = b"+PONG\r\n" if verb == b"PING" else (
                    b"$-1\r\n" if verb == b"GET" else b":1\r\n" if verb in (
                        b"INCRBY", b"EVAL", b"DEL") else b"+OK\r\n")
                conn.sendall(reply * (2 if self.mode == "double" else 1))
                if verb == b"PING" and self.mode == "spontaneous":
                    time.sleep(0.2)
                    conn.sendall(b"+OK\r\n")
        except (OSError, ValueError):
            pass
        finally:
            f.close()
            conn.close()


def base_config(sink_port, **sections):
    cfg = harness.connection_tests_only({
        "greet": {"banner": BANNER},
        "backend": {"address": f"127.0.0.1:{sink_port}", "handoff": "none"},
    })
    for name, body in sections.items():
        cfg.setdefault(name, {}).update(body)
    return cfg


class BackendResetTest(unittest.TestCase):
    def test_reset_after_data_gives_the_client_no_250_and_others_go_on(self):
        backend = Backend()
        try:
            cfg = harness.connection_tests_only({
                "greet": {"banner": BANNER},
                "backend": {"address": f"127.0.0.1:{backend.port}", "handoff": "none"}})
            with harness.Mxscreen(cfg) as mx:
                for i in range(3):
                    with harness.raw_connect(mx.port, source=f"127.0.8.{i + 1}") as sock:
                        harness.read_reply(sock)  # 220- ... 220
                        self.assertEqual(harness.command(sock, "EHLO client.example").code, 250)
                        self.assertEqual(harness.command(sock, "MAIL FROM:<a@example.org>").code,
                                         250)
                        self.assertEqual(harness.command(sock, "RCPT TO:<b@example.test>").code,
                                         250)
                        self.assertEqual(harness.command(sock, "DATA").code, 354)
                        sock.sendall(b"Subject: x\r\n\r\nbody\r\n.\r\n")
                        data, closed = harness.read_until_closed(sock)
                        self.assertTrue(closed)
                        self.assertNotIn(b"250", data)  # nothing acknowledged that was lost
                    mx.wait_log(rf"DISCONNECT \[127\.0\.8\.{i + 1}\]:\d+ outcome=backend_error")
                self.assertEqual(backend.resets, 3)
                self.assertTrue(mx.running())
        finally:
            backend.close()


class RedisFaultTest(unittest.TestCase):
    def burst(self, port, count, prefix):
        markers = [f"{prefix}-{harness.unique_marker()}" for _ in range(count)]
        with ThreadPoolExecutor(max_workers=10) as pool:
            results = list(pool.map(
                lambda im: deliver(port, f"127.0.9.{im[0] % 200 + 1}", im[1]),
                enumerate(markers)))
        return markers, results

    def test_paused_then_killed_redis_fails_open_and_recovers(self):
        redis = harness.RedisServer().start()
        try:
            with harness.SmtpSink() as sink, harness.Mxscreen(base_config(
                    sink.port, store={"backend": "redis",
                                      "redis_url": f"redis://127.0.0.1:{redis.port}/0"})) as mx:
                mx.wait_log(r"redis 127\.0\.0\.1:\d+ connected")
                # Paused: every store call times out (1 s) and fails open.
                os.kill(redis.proc.pid, signal.SIGSTOP)
                try:
                    markers, results = self.burst(mx.port, 20, "paused")
                finally:
                    os.kill(redis.proc.pid, signal.SIGCONT)
                self.assertEqual(results, [True] * 20)
                mx.wait_log(r"redis 127\.0\.0\.1:\d+ unreachable: .*; failing open")
                mx.wait_log(r"redis 127\.0\.0\.1:\d+ reachable again", timeout=15)
                # Killed in the middle of a burst, then back on the same port.
                with ThreadPoolExecutor(max_workers=1) as pool:
                    pending = pool.submit(self.burst, mx.port, 30, "killed")
                    harness.wait_until(lambda: len(sink.messages()) >= 25, 20,
                                       what="the burst to be under way")
                    redis.proc.kill()
                    redis.proc.wait()
                    killed_markers, killed_results = pending.result()
                self.assertEqual(killed_results, [True] * 30)
                redis.start()
                mx.wait_log(r"redis 127\.0\.0\.1:\d+ reachable again", timeout=20,
                            since=mx.log_offset() - 4096 if mx.log_offset() > 4096 else 0)
                self.assertTrue(harness.metric_sum(mx, "mxscreen_store_errors_total") > 0)
                # Every acknowledged message reached the backend exactly once.
                sink.wait_messages(50, timeout=20)
                texts = sink_markers(sink)
                for marker in markers + killed_markers:
                    self.assertEqual(sum(marker in t for t in texts), 1, marker)
                # And the store works again: a ban given now is seen on the next connection.
                self.assertTrue(deliver(mx.port, "127.0.9.250", harness.unique_marker()))
        finally:
            redis.cleanup()


class BrokenRedisTest(unittest.TestCase):
    """A server on redis_url that sends replies nobody asked for: mxscreen drops the connection,
    counts it, fails open and reconnects, and never dies (hiredis would abort it)."""

    def check(self, mode):
        redis = FakeRedis(mode)
        try:
            with harness.SmtpSink() as sink, harness.Mxscreen(base_config(
                    sink.port, store={"backend": "redis",
                                      "redis_url": f"redis://127.0.0.1:{redis.port}/0"})) as mx:
                mx.wait_log(r"redis 127\.0\.0\.1:\d+ unreachable: a reply no command was waiting "
                            r"for \(\d+ waiting\): not a Redis server, or a broken one; failing open")
                harness.wait_until(lambda: redis.connections >= 2, 10,
                                   what="mxscreen to reconnect to the broken server")
                self.assertTrue(mx.running())
                self.assertTrue(deliver(mx.port, "127.0.11.1", harness.unique_marker()))
                sink.wait_messages(1)
                self.assertGreater(harness.metric_sum(
                    mx, "mxscreen_store_errors_total", {"reason": "protocol"}), 0)
                self.assertTrue(mx.running())
        finally:
            redis.close()

    def test_a_reply_after_the_handshake_that_nobody_asked_for(self):
        self.check("spontaneous")

    def test_every_command_answered_twice(self):
        self.check("double")


class DnsFaultTest(unittest.TestCase):
    def check(self, mode, delay=0.0):
        dns = DnsServer(mode, delay)
        try:
            with harness.SmtpSink() as sink, harness.Mxscreen(base_config(
                    sink.port, dnsbl={"sites": ["bl.faults.test=127.0.0.2"], "threshold": 1},
                    dns={"nameservers": [f"127.0.0.1:{dns.port}"], "timeout": "1s",
                         "retries": 1})) as mx:
                markers = [harness.unique_marker() for _ in range(5)]
                with ThreadPoolExecutor(max_workers=5) as pool:
                    results = list(pool.map(
                        lambda im: deliver(mx.port, f"127.0.10.{im[0] + 1}", im[1]),
                        enumerate(markers)))
                # A DNSBL that does not answer sanely lists nobody.
                self.assertEqual(results, [True] * 5, mx.log_tail())
                sink.wait_messages(5)
                self.assertGreater(dns.queries, 0)
                # Each failed lookup is counted once its deadline (dns.timeout) has passed.
                harness.wait_until(lambda: harness.metric_sum(
                    mx, "mxscreen_dns_queries_total", {"status": "tempfail"}) >= 5, 10,
                    what="5 failed DNS lookups counted")
                self.assertTrue(mx.running())
        finally:
            dns.close()

    def test_dns_server_drops_every_query(self):
        self.check("drop")

    def test_dns_server_answers_after_the_timeout(self):
        self.check("delay", delay=2.5)

    def test_dns_server_answers_garbage(self):
        self.check("garbage")


class LmdbMapFullTest(unittest.TestCase):
    def test_full_map_fails_open_and_is_counted(self):
        with harness.SmtpSink() as sink:
            cfg = base_config(
                sink.port,
                store={"backend": "lmdb", "map_size": 1048576},
                greylist={"enabled": True},
                smtp={"command_count_limit": 100000},
                errors={"soft_limit": 100000, "hard_limit": 100000})
            cfg["recipient"] = {"reject_non_fqdn": False}
            with harness.Mxscreen(cfg) as mx:
                with harness.raw_connect(mx.port, source="127.0.11.1", timeout=30) as sock:
                    harness.read_reply(sock)
                    self.assertEqual(harness.command(sock, "EHLO client.example").code, 250)
                    self.assertEqual(harness.command(sock, "MAIL FROM:<a@example.org>").code, 250)
                    codes = []
                    full = lambda: harness.metric_sum(  # noqa: E731
                        mx, "mxscreen_store_errors_total", {"engine": "lmdb"}) > 0
                    for batch in range(40):
                        lines = "".join(f"RCPT TO:<{'r' * 40}{batch:03d}{i:04d}@example.test>\r\n"
                                        for i in range(250))
                        sock.sendall(lines.encode())
                        codes += [harness.read_reply(sock, timeout=30).code for _ in range(250)]
                        if full():
                            break
                    self.assertTrue(full(), "the 1 MiB map never filled")
                    # Past the full map the triplet cannot be recorded: greylisting fails open.
                    self.assertEqual(codes[0], 450)
                    self.assertEqual(
                        harness.command(sock, "RCPT TO:<after-full@example.test>").code, 250)
                mx.wait_log(r"lmdb.*(full|MDB_MAP_FULL)")
                mx.wait_log(r"GREYLIST skipped")
                self.assertTrue(mx.running())
                # And the next client still delivers.
                self.assertTrue(deliver(mx.port, "127.0.11.2", harness.unique_marker()))


class DescriptorLimitTest(unittest.TestCase):
    def test_past_the_open_files_limit_clients_get_421_and_the_rest_go_on(self):
        # 128 descriptors, 8 backend connections and 64 reserved: 56 sessions fit.
        def low_nofile():
            resource.setrlimit(resource.RLIMIT_NOFILE, (128, 128))

        with harness.SmtpSink() as sink:
            mx = harness.Mxscreen(base_config(sink.port, greet={"wait": "1s"},
                                              backend={"max_sessions": 8}))
            mx.preexec_fn = low_nofile
            with mx:
                mx.wait_log(r"open files limit 128 cannot fit server\.max_sessions = 20000 .*; "
                            r"56 sessions fit; past that new clients get 421 4\.3\.2")
                held, refused = [], 0
                try:
                    for i in range(100):
                        sock = harness.raw_connect(mx.port, source=f"127.0.12.{i + 1}", timeout=5)
                        line = harness.read_line(sock)
                        if line.startswith(b"421 4.3.2 All server ports are busy"):
                            refused += 1
                            sock.close()
                        else:
                            self.assertEqual(line, f"220-{BANNER}\r\n".encode())
                            held.append(sock)
                    self.assertEqual(len(held), 56)
                    self.assertEqual(refused, 44)
                    mx.wait_log(r"NOQUEUE: reject: CONNECT from \[127\.0\.12\.\d+\]:\d+: "
                                r"all server ports busy \(open files limit\)")
                    self.assertEqual(mx.metric("mxscreen_limit_hits_total",
                                               {"limit": "open_files"}), 44)
                    # Not spinning: the loop sleeps between events.
                    before = mx.cpu_seconds()
                    time.sleep(1.0)  # measuring CPU over a period, not waiting for an event
                    self.assertLess(mx.cpu_seconds() - before, 0.3)
                    # The sessions it has go on: a held client delivers.
                    first = held[0]
                    self.assertEqual(harness.read_line(first), f"220 {BANNER}\r\n".encode())
                    self.assertEqual(harness.command(first, "EHLO client.example").code, 250)
                finally:
                    for s in held:
                        s.close()
                harness.wait_until(lambda: mx.metric("mxscreen_sessions_active") == 0, 15,
                                   what="the held sessions to end")
                self.assertTrue(deliver(mx.port, "127.0.12.200", harness.unique_marker()))
                self.assertTrue(mx.running())


class SighupStormTest(unittest.TestCase):
    def test_reload_every_100ms_during_traffic_loses_nothing(self):
        with harness.SmtpSink() as sink, harness.Mxscreen(base_config(sink.port)) as mx:
            stop = threading.Event()

            def storm():
                while not stop.is_set():
                    mx.reload()
                    stop.wait(0.1)

            storm_thread = threading.Thread(target=storm)
            storm_thread.start()
            try:
                markers = [harness.unique_marker() for _ in range(60)]
                with ThreadPoolExecutor(max_workers=6) as pool:
                    results = list(pool.map(
                        lambda im: deliver(mx.port, f"127.0.13.{im[0] % 50 + 1}", im[1]),
                        enumerate(markers)))
            finally:
                stop.set()
                storm_thread.join()
            self.assertEqual(results, [True] * 60)
            sink.wait_messages(60)
            texts = sink_markers(sink)
            for marker in markers:
                self.assertEqual(sum(marker in t for t in texts), 1, marker)
            harness.wait_until(lambda: (mx.metric("mxscreen_reloads_total",
                                                  {"result": "ok"}) or 0) >= 10, 5,
                               what="the reloads to be counted")
            self.assertIsNone(mx.metric("mxscreen_reloads_total", {"result": "refused"}))
            self.assertTrue(mx.running())


if __name__ == "__main__":
    unittest.main(verbosity=2)
