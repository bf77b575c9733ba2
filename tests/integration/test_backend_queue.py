"""The backend queue (backend.queue_max, backend.queue_timeout) with the real Postfix backend.

When every backend slot (backend.max_sessions) is taken, a session ready for handoff waits in
one FIFO queue shared by the workers instead of getting 421: a screened client with its RCPT
reply held, an allowlisted one before Postfix's banner.
- A burst of 20 clients (10 screened, 10 allowlisted) against 2 slots, 2 workers: all 20 wait,
  then every one delivers; no 421, never more than 2 connections to Postfix.
- backend.queue_max = 3: three clients wait, the next ones get 421 4.3.2 at connect ("backend
  queue full"); the waiters get the slot in the order they came, across workers.
- backend.queue_timeout = 1s: a screened client waiting at RCPT gets 421 4.3.2 ("backend queue
  timeout") and never reaches Postfix.
- Clients that leave while queued free their places at once and are never handed off: Postfix
  never sees them, the next client is served.
- A slot is free once Postfix closes (after its 221): the next client is served though the
  one before still holds its socket open.
- A screened client that waits seconds at RCPT (PROXY v2 and XCLIENT) is delivered with its own
  EHLO name, sender and recipient: the handoff replays them after the dialogue was freed.
- 2,000 screened clients waiting at RCPT cost under 1 KiB each (VmRSS; a held client costs
  about as much): a queued session keeps only the lines it replays and a ticket (release
  builds only).
- A client queued while its DNS lookups (DNSBL, PTR, FCrDNS) are still out, against a real
  unbound behind a nameserver that holds every answer until the test lets it go: the answers
  come in while it waits and Postfix learns the verified name (XCLIENT NAME=); a slot that comes
  first hands it off with NAME=[UNAVAILABLE]; one that leaves with its lookups out is gone at
  once and the late answers find nothing (under ASan: no leak, no use after free).

Client source addresses: 127.0.9.1-127.0.9.60.
"""

import asyncio
import os
import re
import resource
import select
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import test_dns  # noqa: E402 (its Unbound helper)

HOLDER = "127.0.9.1"  # allowlisted: takes a backend slot and sits on it
ALLOW = [f"{HOLDER}/32", "127.0.9.32/27"]  # 127.0.9.32-63: allowlisted, straight to the queue


def esc(ip):
    return re.escape(ip)


def queue_config(max_sessions, workers=1, **backend):
    return {"server": {"workers": workers},
            "backend": {"max_sessions": max_sessions, **backend},
            "access": {"allow": ALLOW},
            "limits": {"client_connection_count": 0}}


def hold_slot(mx):
    """An allowlisted client that Postfix greets and that then sits on its backend slot."""
    sock = harness.raw_connect(mx.port, source=HOLDER)
    banner = harness.read_reply(sock, timeout=10)
    assert re.match(rb"^220 \S+ ESMTP Postfix", banner.raw), banner.raw
    return sock


def release(sock):
    assert harness.command(sock, "QUIT").code == 221
    sock.close()


def depth(mx):
    return mx.metric("mxscreen_backend_queue_depth", default=0)


def queue_events(mx, outcome):
    return harness.metric_sum(mx, "mxscreen_backend_queue_total", {"outcome": outcome})


def rss_kib(pid):
    """VmRSS of a process from /proc/PID/status, in KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


async def queue_at_rcpt(port, source, n):
    """n screened clients from source, each EHLO, MAIL, then a RCPT whose reply is held while
    it waits in the backend queue; returns their (reader, writer) pairs, still open."""
    limit = asyncio.Semaphore(100)  # connections being opened at once

    async def reply(reader):
        while True:
            line = await reader.readline()
            if not line:
                raise AssertionError("closed by mxscreen before the RCPT")
            if line[3:4] != b"-":
                return line

    async def client(i):
        async with limit:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, local_addr=(source, 0), limit=4096)
            for command, code in ((None, b"220"), (f"EHLO mail{i}.example.org", b"250"),
                                  (f"MAIL FROM:<q{i}@example.org>", b"250")):
                if command:
                    writer.write(command.encode() + b"\r\n")
                line = await reply(reader)
                assert line.startswith(code), (command, line)
            writer.write(f"RCPT TO:<{harness.MAILBOX}>\r\n".encode())
            await writer.drain()
            return reader, writer

    return await asyncio.gather(*(client(i) for i in range(n)))


def wait_depth(mx, n, timeout=10):
    harness.wait_until(lambda: depth(mx) == n, timeout, what=f"{n} sessions in the queue")


class BackendSampler:
    """Samples mxscreen's connections to Postfix (ss) until stopped; .peak is the most seen."""

    def __init__(self, pid):
        self.pid, self.peak, self._stop = pid, 0, threading.Event()
        self._thread = threading.Thread(target=self._run)

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, harness.backend_connections(self.pid))
            time.sleep(0.01)  # sampling rate, not synchronisation

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(10)
        return False


def probe_done(mx):
    mx.wait_log(rf"backend {re.escape(harness.BACKEND_PROXY)} offers \d+ EHLO keywords")
    harness.wait_until(lambda: harness.backend_connections(mx.proc.pid) == 0,
                       what="the EHLO probes' connections to end")


class BackendQueueTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        harness.ensure_postfix()

    def test_a_burst_larger_than_the_slots_waits_and_delivers_everything(self):
        with harness.Mxscreen(queue_config(2, workers=2)) as mx:
            probe_done(mx)
            with BackendSampler(mx.proc.pid) as sampler:
                holders = [hold_slot(mx)]
                holders.append(hold_slot(mx))
                results, markers = {}, {}

                def client(source):
                    marker = harness.unique_marker("queue-burst")
                    markers[source] = marker
                    try:
                        results[source] = harness.rcpt_attempt(
                            mx.port, source, f"burst.{marker}@example.org", marker)
                    except Exception as e:  # noqa: BLE001 - reported by the assertion below
                        results[source] = repr(e)

                screened = [f"127.0.9.{i}" for i in range(2, 12)]
                allowlisted = [f"127.0.9.{i}" for i in range(40, 50)]
                threads = [threading.Thread(target=client, args=(s,))
                           for s in screened + allowlisted]
                for t in threads:
                    t.start()
                # All 20 wait: the allowlisted ones before Postfix's banner, the screened ones
                # at RCPT after the greet wait and the dialogue.
                wait_depth(mx, 20, timeout=20)
                self.assertEqual(queue_events(mx, "queued"), 20)
                for sock in holders:
                    release(sock)
                for t in threads:
                    t.join(60)
            self.assertEqual(
                {s: r for s, r in results.items() if r != (250, "2.1.5 Ok")}, {})
            for source, marker in markers.items():
                data = harness.wait_delivered(marker)
                self.assertRegex(data, rf"Received: from \S+ \(unknown \[{esc(source)}\]\)")
            self.assertLessEqual(sampler.peak, 2)
            self.assertEqual(queue_events(mx, "served"), 20)
            self.assertEqual(queue_events(mx, "full") + queue_events(mx, "timeout"), 0)
            self.assertNotIn("NOQUEUE", mx.log_text())
            self.assertEqual(depth(mx), 0)
            hist = mx.metrics()
            self.assertRegex(hist, r"(?m)^mxscreen_backend_queue_wait_seconds_count 20$")

    def test_a_full_queue_answers_421_exactly_past_queue_max_and_serves_in_order(self):
        with harness.Mxscreen(queue_config(1, workers=2, queue_max=3)) as mx:
            probe_done(mx)
            holder = hold_slot(mx)
            waiting = []
            try:
                for i, source in enumerate(["127.0.9.32", "127.0.9.33", "127.0.9.34"]):
                    waiting.append(harness.raw_connect(mx.port, source=source))
                    wait_depth(mx, i + 1)
                # The queue is full: the next clients are refused at connect, before any test.
                for source in ("127.0.9.35", "127.0.9.20"):  # allowlisted, screened
                    since = mx.log_offset()
                    with harness.raw_connect(mx.port, source=source) as sock:
                        data, how = harness.read_until_closed(sock)
                    self.assertEqual(data, b"421 4.3.2 All server ports are busy\r\n")
                    mx.wait_log(rf"NOQUEUE: reject: CONNECT from \[{esc(source)}\]:\d+: "
                                r"421 4\.3\.2 backend queue full: backend\.max_sessions \(1\) "
                                r"reached, backend\.queue_max \(3\) waiting$", since=since)
                self.assertEqual(queue_events(mx, "full"), 2)
                self.assertEqual(depth(mx), 3)
                # Each freed slot goes to the oldest waiter, whichever worker it is on.
                release(holder)
                for i, sock in enumerate(waiting):
                    banner = harness.read_reply(sock, timeout=10)
                    self.assertRegex(banner.raw, rb"^220 \S+ ESMTP Postfix")
                    for later in waiting[i + 1:]:
                        later.setblocking(False)
                        with self.assertRaises(BlockingIOError):
                            later.recv(1)  # still waiting: nothing from Postfix yet
                        later.setblocking(True)
                    self.assertEqual(depth(mx), len(waiting) - i - 1)
                    release(sock)
                waiting.clear()
            finally:
                for sock in waiting:
                    sock.close()
            self.assertEqual(queue_events(mx, "served"), 3)

    def test_queue_timeout_answers_421_and_the_client_never_reaches_postfix(self):
        source = "127.0.9.21"
        with harness.Mxscreen(queue_config(1, queue_timeout="1s")) as mx:
            probe_done(mx)
            holder = hold_slot(mx)
            try:
                offset = harness.postfix_log_offset()
                s = harness.smtp_client(mx.port, source=source)
                try:
                    self.assertEqual(s.ehlo()[0], 250)
                    self.assertEqual(s.mail("late@example.org")[0], 250)
                    started = time.monotonic()
                    code, text = s.rcpt(harness.MAILBOX)
                    waited = time.monotonic() - started
                finally:
                    s.close()
                self.assertEqual((code, text), (421, b"4.3.2 All server ports are busy"))
                self.assertGreater(waited, 0.9)
                self.assertLess(waited, 5)
                mx.wait_log(rf"NOQUEUE: reject: RCPT from \[{esc(source)}\]:\d+: 421 4\.3\.2 "
                            r"backend queue timeout after 1s \(backend\.queue_timeout\)")
                self.assertEqual(queue_events(mx, "timeout"), 1)
                self.assertEqual(depth(mx), 0)
                # The slot holder is unaffected and Postfix never heard of the client.
                self.assertEqual(harness.command(holder, "NOOP").code, 250)
                self.assertNotIn(f"[{source}]", harness.postfix_log_since(offset))
            finally:
                release(holder)

    def test_clients_that_leave_while_queued_are_never_handed_off(self):
        screened, allowlisted, later = "127.0.9.22", "127.0.9.36", "127.0.9.23"
        with harness.Mxscreen(queue_config(1, workers=2)) as mx:
            probe_done(mx)
            with BackendSampler(mx.proc.pid) as sampler:
                holder = hold_slot(mx)
                offset = harness.postfix_log_offset()
                # One waits before Postfix's banner, one at RCPT (sent, reply held).
                early = harness.raw_connect(mx.port, source=allowlisted)
                wait_depth(mx, 1)
                sock = harness.raw_connect(mx.port, source=screened)
                self.assertEqual(harness.read_reply(sock, timeout=5).code, 220)
                self.assertEqual(harness.command(sock, "EHLO mail.example.org").code, 250)
                self.assertEqual(harness.command(sock, "MAIL FROM:<gone@example.org>").code, 250)
                harness.send_line(sock, f"RCPT TO:<{harness.MAILBOX}>")
                wait_depth(mx, 2)
                early.close()
                sock.close()
                # Their places are free at once, the slot still held.
                wait_depth(mx, 0)
                self.assertEqual(queue_events(mx, "left"), 2)
                self.assertEqual(mx.metric("mxscreen_sessions_backend"), 1)
                release(holder)
                harness.wait_until(lambda: mx.metric("mxscreen_sessions_backend") == 0,
                                   what="the slot to be free")
                # The next client is served at once; the two that left never reached Postfix.
                marker = harness.unique_marker("queue-after-leave")
                self.assertEqual(harness.rcpt_attempt(mx.port, later, "next@example.org", marker),
                                 (250, "2.1.5 Ok"))
                harness.wait_delivered(marker)
            self.assertLessEqual(sampler.peak, 1)
            postfix = harness.postfix_log_since(offset)
            self.assertIn(f"[{later}]", postfix)
            self.assertNotIn(f"[{screened}]", postfix)
            self.assertNotIn(f"[{allowlisted}]", postfix)
            self.assertEqual(queue_events(mx, "served"), 0)
            mx.wait_log(rf"DISCONNECT \[{esc(screened)}\]:\d+ outcome=client_gone ")
            mx.wait_log(rf"DISCONNECT \[{esc(allowlisted)}\]:\d+ outcome=client_gone ")

    def test_the_slot_is_free_once_postfix_closes_though_its_client_lingers(self):
        waiter = "127.0.9.37"  # allowlisted: waits before Postfix's banner
        with harness.Mxscreen(queue_config(1)) as mx:
            probe_done(mx)
            holder = hold_slot(mx)
            sock = harness.raw_connect(mx.port, source=waiter)
            wait_depth(mx, 1)
            # The holder reads Postfix's 221 but keeps its socket open: Postfix has closed, so
            # the slot is the waiter's now, not when (or if) the holder closes.
            self.assertEqual(harness.command(holder, "QUIT").code, 221)
            banner = harness.read_reply(sock, timeout=10)
            self.assertTrue(re.match(rb"^220 \S+ ESMTP Postfix", banner.raw), banner.raw)
            self.assertEqual(queue_events(mx, "served"), 1)
            self.assertEqual(harness.command(sock, "QUIT").code, 221)
            sock.close()
            holder.close()
            mx.wait_log(rf"DISCONNECT \[{esc(HOLDER)}\]:\d+ outcome=spliced ")
            mx.wait_log(rf"DISCONNECT \[{esc(waiter)}\]:\d+ outcome=spliced ")

    def test_a_client_queued_at_rcpt_for_seconds_delivers_with_its_own_envelope(self):
        # While it waits, the session holds only what the handoff replays (EHLO name, MAIL and
        # RCPT lines): they reach Postfix intact, through PROXY v2 and through XCLIENT.
        for mode, backend, source in (("proxy_v2", harness.BACKEND_PROXY, "127.0.9.24"),
                                      ("xclient", harness.BACKEND_XCLIENT, "127.0.9.25")):
            with self.subTest(mode=mode), harness.Mxscreen(
                    queue_config(1, address=backend, handoff=mode)) as mx:
                mx.wait_log(rf"backend {re.escape(backend)} offers \d+ EHLO keywords")
                harness.wait_until(
                    lambda: harness.backend_connections(mx.proc.pid,
                                                        int(backend.rsplit(":", 1)[1])) == 0,
                    what="the EHLO probes' connections to end")
                holder = hold_slot(mx)
                marker = harness.unique_marker(f"queue-long-{mode}")
                sender = f"waiter.{marker}@example.org"
                sock = harness.raw_connect(mx.port, source=source)
                try:
                    self.assertEqual(harness.read_reply(sock).code, 220)
                    self.assertEqual(harness.command(sock, "EHLO waiter.example.net").code, 250)
                    self.assertEqual(
                        harness.command(sock, f"MAIL FROM:<{sender}> SIZE=200").code, 250)
                    harness.send_line(sock, f"RCPT TO:<{harness.MAILBOX}>")
                    wait_depth(mx, 1)
                    # Five seconds in the queue: no reply comes while the slot is held.
                    sock.settimeout(5)
                    with self.assertRaises(socket.timeout):
                        sock.recv(1)
                    release(holder)
                    self.assertEqual(harness.read_reply(sock, timeout=10).raw,
                                     b"250 2.1.5 Ok\r\n")  # Postfix's own reply
                    self.assertEqual(harness.command(sock, "DATA").code, 354)
                    sock.sendall(harness.marked_message(marker, sender) + b".\r\n")
                    self.assertEqual(harness.read_reply(sock).code, 250)
                    self.assertEqual(harness.command(sock, "QUIT").code, 221)
                finally:
                    sock.close()
                data = harness.wait_delivered(marker)
                self.assertRegex(data, rf"(?m)^Return-Path: <{re.escape(sender)}>$")
                self.assertRegex(data, rf"(?m)^X-Original-To: {re.escape(harness.MAILBOX)}$")
                self.assertRegex(data, rf"Received: from waiter\.example\.net "
                                       rf"\(unknown \[{esc(source)}\]\)")
                self.assertEqual(queue_events(mx, "served"), 1)
                self.assertGreaterEqual(
                    harness.metric_sum(mx, "mxscreen_backend_queue_wait_seconds_sum"), 5)

    @unittest.skipUnless(harness.RSS_COMPARABLE and not harness.SANITIZED,
                         "RSS per client is a release build's figure (sanitizers add redzones "
                         "and shadow memory to every allocation)")
    def test_two_thousand_queued_clients_cost_under_one_kib_each(self):
        n = 2000
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard != resource.RLIM_INFINITY and hard < n + 200:
            self.skipTest(f"RLIMIT_NOFILE hard limit {hard} < {n + 200}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, n + 200), hard))
        # queue_timeout: the first clients must still wait when the last one arrives, however
        # slowly a loaded machine opens 2,000 connections.
        with harness.Mxscreen(queue_config(1, queue_timeout="600s"), env=harness.RSS_ENV) as mx:
            probe_done(mx)
            holder = hold_slot(mx)
            before = rss_kib(mx.proc.pid)

            async def burst():
                clients = await queue_at_rcpt(mx.port, "127.0.9.26", n)
                try:
                    await asyncio.to_thread(wait_depth, mx, n, 60)
                    return rss_kib(mx.proc.pid)
                finally:
                    for _, writer in clients:
                        writer.close()

            after = asyncio.run(burst())
            per_client = (after - before) / n
            print(f"\n{n} clients queued at RCPT: VmRSS {before} -> {after} KiB, "
                  f"{per_client:.2f} KiB per queued client", file=sys.stderr)
            self.assertLess(per_client, 1.0)
            wait_depth(mx, 0, timeout=30)  # they left: their places are free
            release(holder)


# Clients of the slow-DNS tests: PTR slow<n>.good.test, whose A is the client (forward-confirmed).
SLOW_NAMED = "127.0.9.27"
SLOW_FIRST = "127.0.9.28"
SLOW_GONE = "127.0.9.29"
SLOW_ZONES = f"""
  local-zone: "ready.test." static
  local-data: "ready.test. 300 IN A 127.0.0.1"
  local-zone: "zen.test." static
  local-zone: "good.test." static
  local-data: "slow27.good.test. 300 IN A {SLOW_NAMED}"
  local-data: "slow28.good.test. 300 IN A {SLOW_FIRST}"
  local-data: "slow29.good.test. 300 IN A {SLOW_GONE}"
  local-zone: "9.0.127.in-addr.arpa." static
  local-data-ptr: "{SLOW_NAMED} slow27.good.test"
  local-data-ptr: "{SLOW_FIRST} slow28.good.test"
  local-data-ptr: "{SLOW_GONE} slow29.good.test"
"""


class GatedNameserver:
    """A nameserver on 127.0.0.1:<port> that passes every query on to unbound and holds every
    answer until open() (from then on it answers at once): a client's lookups stay out for as
    long as a test wants, whatever the machine's speed."""

    def __init__(self, upstream_port):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.upstream = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.upstream.connect(("127.0.0.1", upstream_port))
        self.asked = 0  # queries received
        self.answered = 0  # answers sent back
        self._clients = {}  # query id -> where the query came from
        self._held = []  # (answer, to) while closed
        self._open = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            ready, _, _ = select.select([self.sock, self.upstream], [], [], 0.05)
            for s in ready:
                if s is self.sock:
                    query, sender = self.sock.recvfrom(4096)
                    with self._lock:
                        self.asked += 1
                        self._clients[query[:2]] = sender
                    self.upstream.send(query)
                else:
                    answer = self.upstream.recv(4096)
                    with self._lock:
                        to = self._clients.get(answer[:2])
                        if to is None:
                            continue
                        if not self._open:
                            self._held.append((answer, to))
                            continue
                        self.answered += 1
                    self.sock.sendto(answer, to)

    def open(self):
        with self._lock:
            self._open = True
            held, self._held = self._held, []
            self.answered += len(held)
        for answer, to in held:
            self.sock.sendto(answer, to)

    def close(self):
        self._stop.set()
        self._thread.join(5)
        self.sock.close()
        self.upstream.close()


class QueuedWhileDnsRunsTest(unittest.TestCase):
    """Clients queued at RCPT while their DNS lookups (one DNSBL, PTR, FCrDNS) are still out."""

    @classmethod
    def setUpClass(cls):
        binary = test_dns.unbound_binary()
        if binary is None:
            raise unittest.SkipTest("unbound is not installed")
        harness.ensure_postfix()
        cls.unbound = test_dns.Unbound(binary, SLOW_ZONES).start()

    @classmethod
    def tearDownClass(cls):
        cls.unbound.stop()

    def setUp(self):
        self.ns = GatedNameserver(self.unbound.port)
        self.addCleanup(self.ns.close)

    def config(self):
        # The lookups wait on the gate, not on dns.timeout; the greet wait ends without their
        # answers (missing DNSBL answers count as "not listed").
        cfg = queue_config(1, address=harness.BACKEND_XCLIENT, handoff="xclient")
        cfg.update({"dns": {"nameservers": [f"127.0.0.1:{self.ns.port}"], "timeout": "30s"},
                    "dnsbl": {"sites": ["zen.test"]}})
        return cfg

    def start(self, mx):
        mx.wait_log(rf"backend {re.escape(harness.BACKEND_XCLIENT)} offers \d+ EHLO keywords")
        harness.wait_until(
            lambda: harness.backend_connections(mx.proc.pid, harness.BACKEND_XCLIENT_PORT) == 0,
            what="the EHLO probes' connections to end")
        return hold_slot(mx)

    def stop_clean(self, mx):
        """SIGTERM and a clean exit: under ASan, LeakSanitizer reports at exit (a killed
        mxscreen would hide a leak) and the harness fails the test on its report."""
        harness.wait_until(lambda: mx.metric("mxscreen_sessions_active") == 0,
                           what="every session to end")
        self.assertEqual(mx.stop(), 0, mx.log_tail())

    def queue_with_dns_out(self, mx, source, sender):
        """A client that reaches the queue at RCPT while none of its DNS answers came in."""
        sock = harness.raw_connect(mx.port, source=source)
        self.assertEqual(harness.read_reply(sock).code, 220)
        self.assertEqual(harness.command(sock, "EHLO waiter.example.net").code, 250)
        self.assertEqual(harness.command(sock, f"MAIL FROM:<{sender}>").code, 250)
        harness.send_line(sock, f"RCPT TO:<{harness.MAILBOX}>")
        wait_depth(mx, 1)
        self.assertGreaterEqual(self.ns.asked, 2)  # the DNSBL and PTR queries are out
        self.assertEqual(self.ns.answered, 0)
        return sock

    def deliver(self, mx, sock, marker, sender, source, name, offset):
        """The held RCPT gets Postfix's own 250; the message reaches Postfix, which names the
        client as XCLIENT told it (Postfix logs client= at the RCPT: offset is from before)."""
        self.assertEqual(harness.read_reply(sock, timeout=10).raw, b"250 2.1.5 Ok\r\n")
        self.assertEqual(harness.command(sock, "DATA").code, 354)
        sock.sendall(harness.marked_message(marker, sender) + b".\r\n")
        self.assertEqual(harness.read_reply(sock).code, 250)
        self.assertEqual(harness.command(sock, "QUIT").code, 221)
        sock.close()
        data = harness.wait_delivered(marker)
        self.assertRegex(data, rf"(?m)^Return-Path: <{re.escape(sender)}>$")
        self.assertRegex(data, rf"(?m)^X-Original-To: {re.escape(harness.MAILBOX)}$")
        m = harness.wait_for_log(
            rf"postfix/cleanup\[\d+\]: (\w+): message-id=<{marker}@example\.org>", offset)
        harness.wait_for_log(rf"postfix/\S+\[\d+\]: {m.group(1)}: "
                             rf"client={re.escape(name)}\[{esc(source)}\]$", offset)
        mx.wait_log(rf"DISCONNECT \[{esc(source)}\]:\d+ outcome=spliced ")

    def test_answers_that_come_while_queued_give_postfix_the_verified_name(self):
        with harness.Mxscreen(self.config()) as mx:
            holder = self.start(mx)
            marker = harness.unique_marker("queue-dns-named")
            sender = f"named.{marker}@example.org"
            sock = self.queue_with_dns_out(mx, SLOW_NAMED, sender)
            # The answers come while it waits: PTR, then the A of its name (FCrDNS), the DNSBL.
            self.ns.open()
            harness.wait_until(
                lambda: harness.metric_sum(mx, "mxscreen_dns_queries_total") >= 3,
                what="the PTR, forward and DNSBL answers to reach mxscreen")
            self.assertEqual(depth(mx), 1)
            offset = harness.postfix_log_offset()
            release(holder)
            self.deliver(mx, sock, marker, sender, SLOW_NAMED, "slow27.good.test", offset)
            self.assertEqual(queue_events(mx, "served"), 1)
            self.stop_clean(mx)

    def test_a_slot_that_comes_before_the_answers_hands_off_without_a_name(self):
        with harness.Mxscreen(self.config()) as mx:
            holder = self.start(mx)
            marker = harness.unique_marker("queue-dns-first")
            sender = f"first.{marker}@example.org"
            sock = self.queue_with_dns_out(mx, SLOW_FIRST, sender)
            offset = harness.postfix_log_offset()
            release(holder)
            # Handed off with its lookups still out: Postfix gets NAME=[UNAVAILABLE], as for a
            # name that does not verify; the late answers change nothing.
            self.assertEqual(harness.read_reply(sock, timeout=10).raw, b"250 2.1.5 Ok\r\n")
            self.assertEqual(self.ns.answered, 0)
            self.ns.open()
            harness.wait_until(
                lambda: harness.metric_sum(mx, "mxscreen_dns_queries_total") >= 3,
                what="the late answers to reach mxscreen")
            self.assertEqual(harness.command(sock, "DATA").code, 354)
            sock.sendall(harness.marked_message(marker, sender) + b".\r\n")
            self.assertEqual(harness.read_reply(sock).code, 250)
            self.assertEqual(harness.command(sock, "QUIT").code, 221)
            sock.close()
            harness.wait_delivered(marker)
            m = harness.wait_for_log(
                rf"postfix/cleanup\[\d+\]: (\w+): message-id=<{marker}@example\.org>", offset)
            harness.wait_for_log(rf"postfix/\S+\[\d+\]: {m.group(1)}: "
                                 rf"client=unknown\[{esc(SLOW_FIRST)}\]$", offset)
            mx.wait_log(rf"DISCONNECT \[{esc(SLOW_FIRST)}\]:\d+ outcome=spliced ")
            self.stop_clean(mx)

    def test_a_client_that_leaves_with_its_lookups_out_is_gone_at_once(self):
        with harness.Mxscreen(self.config()) as mx:
            holder = self.start(mx)
            offset = harness.postfix_log_offset()
            sock = self.queue_with_dns_out(mx, SLOW_GONE, "gone@example.org")
            sock.close()
            wait_depth(mx, 0)
            self.assertEqual(queue_events(mx, "left"), 1)
            mx.wait_log(rf"DISCONNECT \[{esc(SLOW_GONE)}\]:\d+ outcome=client_gone ")
            # Its answers (DNSBL, PTR) arrive after the session is gone: nothing is called back,
            # and no FCrDNS lookup follows the PTR.
            self.ns.open()
            harness.wait_until(
                lambda: harness.metric_sum(mx, "mxscreen_dns_queries_total") >= 2,
                what="the late answers to reach mxscreen")
            release(holder)
            # The next client is served at once; the one that left never reached Postfix.
            marker = harness.unique_marker("queue-dns-after-gone")
            self.assertEqual(harness.rcpt_attempt(mx.port, SLOW_NAMED, "next@example.org",
                                                  marker), (250, "2.1.5 Ok"))
            harness.wait_delivered(marker)
            self.assertNotIn(f"[{SLOW_GONE}]", harness.postfix_log_since(offset))
            self.assertEqual(queue_events(mx, "served"), 0)
            self.stop_clean(mx)


if __name__ == "__main__":
    unittest.main(verbosity=2)
