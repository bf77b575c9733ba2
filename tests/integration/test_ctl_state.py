"""Greylist and pass-cache state through `mxscreen ctl`, and what greylisting costs (issue 19),
with the real binary, the real Postfix backend, LMDB and a real redis-server (SCAN paging),
and a real unbound for the clients' forward-confirmed rDNS.

What an admin notices, on LMDB and on Redis alike:
- `ctl greylist list` shows the triplet a real SMTP session just created (network, sender,
  recipient, pending, first/last seen, fcrdns); --client/--sender/--recipient filter it;
- `ctl greylist pass CLIENT SENDER RECIPIENT` lets the next retry through at once (greylist.delay
  is an hour here) and the mail reaches Postfix; `ctl greylist drop` makes the triplet new again;
- `--client` passes or drops every triplet of the client's network; a listing is paged with
  --limit and --cursor and the pages together hold every triplet once;
- `ctl cache show` shows a passed client's pass-cache entry, `cache drop` and `cache flush`
  remove it (the next session is screened again);
- a bad request exits 1 with a message on stderr;
- what greylisting costs: a retry that passes after the delay is counted in
  mxscreen_greylist_delay_seconds; a triplet never retried within retry_window (2 s here) is
  counted once in mxscreen_greylist_never_retried_total, fcrdns="yes" for a client whose PTR
  and A agree, "no" for one without PTR; `ctl greylist report` names their senders.
Nothing sleeps to synchronise: /metrics and retries are polled with deadlines.
"""

import itertools
import os
import re
import shutil
import subprocess
import sys
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import test_dns  # noqa: E402  (its unbound and zones: PTR/A data for 127.0.0.205..207)

RCPT = harness.MAILBOX
GREYLISTED = (450, f"4.2.0 <{RCPT}>: Recipient address rejected: "
                   "Greylisted, please try again later")
FCRDNS_OK = test_dns.FCRDNS_OK  # PTR mail205.good.test, whose A is itself
NO_PTR = test_dns.NO_PTR

REDIS = None
UNBOUND = None
_redis_dbs = itertools.count(1)


def setUpModule():
    global REDIS, UNBOUND
    harness.ensure_postfix()
    if shutil.which("redis-server"):
        REDIS = harness.RedisServer().start()
    binary = test_dns.unbound_binary()
    if binary:
        UNBOUND = test_dns.Unbound(binary).start()


def tearDownModule():
    if REDIS is not None:
        REDIS.cleanup()
    if UNBOUND is not None:
        UNBOUND.stop()


def unique_sender(tag="s"):
    """A fresh sender, letters first in every word (greylisting's VERP rule turns number-only
    words into '#')."""
    return f"{tag}.x{uuid.uuid4().hex[:12]}@example.org"


def ctl(mx, *request):
    return subprocess.run([harness.mxscreen_binary(), "ctl", "--config", str(mx.config_path),
                           *request], capture_output=True, text=True, timeout=30)


def listed(mx, *options):
    """`ctl greylist list` lines (the status line apart): (lines, status)."""
    r = ctl(mx, "greylist", "list", *options)
    if r.returncode != 0:
        raise AssertionError(f"greylist list failed: {r}")
    lines = r.stdout.splitlines()
    return lines[:-1], lines[-1]


class _StateTests:
    """The same tests on every store engine: store() is the [store] section."""

    def store(self):
        raise NotImplementedError

    def config(self, cache=False, **greylist):
        # The pass cache is off unless a test is about it: a cached client is handed to Postfix
        # at connect, and its new triplets are then Postfix's policy service's to greylist.
        section = {"enabled": True, "delay": "1h"}
        section.update(greylist)
        return {"greylist": section, "cache": {"enabled": cache}, "store": self.store()}

    def test_list_pass_and_drop_a_triplet_of_a_real_session(self):
        src, sender = "127.0.0.81", unique_sender()
        with harness.Mxscreen(self.config()) as mx:
            self.assertEqual(harness.rcpt_attempt(mx.port, src, sender, "unused"), GREYLISTED)
            lines, status = listed(mx)
            self.assertEqual(status, "1 triplet")
            self.assertRegex(lines[0], rf"^127\.0\.0\.0/24 <{re.escape(sender)}> <{RCPT}> pending "
                                       r"first=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ last=\S+Z fcrdns=no "
                                       r"passes_after=\S+Z$")
            # Filters: the sender as given in any case, its domain, the recipient, the client.
            self.assertEqual(listed(mx, "--sender", sender.upper())[1], "1 triplet")
            self.assertEqual(listed(mx, "--sender", "@example.org", "--recipient", RCPT)[1],
                             "1 triplet")
            self.assertEqual(listed(mx, "--sender", "other@example.org")[1], "0 triplets")
            self.assertEqual(listed(mx, "--client", src)[1], "1 triplet")
            self.assertEqual(listed(mx, "--client", "127.0.1.1")[1], "0 triplets")

            # pass: the next retry goes through now, an hour before greylist.delay would allow.
            r = ctl(mx, "greylist", "pass", src, sender, RCPT)
            self.assertEqual((r.returncode, r.stdout),
                             (0, f"passed 127.0.0.0/24 <{sender}> <{RCPT}>\n"), r)
            marker = harness.unique_marker("ctl-pass")
            self.assertEqual(harness.rcpt_attempt(mx.port, src, sender, marker)[0], 250)
            harness.wait_delivered(marker)
            self.assertRegex(listed(mx)[0][0], r" passed first=")

            # drop: the triplet is new again.
            r = ctl(mx, "greylist", "drop", src, f"<{sender}>", f"<{RCPT}>")
            self.assertEqual((r.returncode, r.stdout),
                             (0, f"dropped 127.0.0.0/24 <{sender}> <{RCPT}>\n"), r)
            self.assertEqual(listed(mx)[1], "0 triplets")
            since = mx.log_offset()
            self.assertEqual(harness.rcpt_attempt(mx.port, src, sender, "unused"), GREYLISTED)
            mx.wait_log(rf"GREYLIST new \[{re.escape(src)}\]:\d+ from=<{re.escape(sender)}>",
                        since=since)

    def test_client_bulk_edits_and_paging(self):
        src = "127.0.0.82"
        senders = sorted(unique_sender(f"p{i}") for i in range(5))
        with harness.Mxscreen(self.config()) as mx:
            for s in senders:
                self.assertEqual(harness.rcpt_attempt(mx.port, src, s, "unused"), GREYLISTED)
            # Pages of 2: together they hold every triplet once.
            seen, cursor, pages = [], None, 0
            while True:
                options = ["--limit", "2"] + (["--cursor", cursor] if cursor else [])
                lines, status = listed(mx, *options)
                pages += 1
                seen += [re.match(r"^\S+ <([^>]*)>", line).group(1) for line in lines]
                m = re.search(r"; more: --cursor (\S+)$", status)
                if self.exact_pages:
                    self.assertLessEqual(len(lines), 2, lines)
                if not m:
                    break
                cursor = m.group(1)
                self.assertLess(pages, 20, "the walk does not end")
            self.assertEqual(sorted(seen), senders)
            if self.exact_pages:
                self.assertEqual(pages, 3)

            r = ctl(mx, "greylist", "pass", "--client", src)
            self.assertEqual(r.returncode, 0, r)
            self.assertEqual(r.stdout, f"passed 5 triplets of 127.0.0.0/24; client {src} "
                                       "auto-allowlisted\n")
            self.assertTrue(all(" passed " in line for line in listed(mx)[0]))
            # A new sender from that client passes too (it is auto-allowlisted now).
            marker = harness.unique_marker("ctl-client")
            self.assertEqual(harness.rcpt_attempt(mx.port, src, unique_sender(), marker)[0], 250)
            harness.wait_delivered(marker)

            r = ctl(mx, "greylist", "drop", "--client", src)
            self.assertEqual((r.returncode, r.stdout),
                             (0, f"dropped 5 triplets of 127.0.0.0/24; client {src} no longer "
                                 "auto-allowlisted\n"), r)
            self.assertEqual(listed(mx)[1], "0 triplets")
            self.assertEqual(harness.rcpt_attempt(mx.port, src, senders[0], "unused"), GREYLISTED)

    def test_cache_show_drop_flush_on_a_passed_client(self):
        src, sender = "127.0.0.83", unique_sender()
        with harness.Mxscreen(self.config(cache=True)) as mx:
            r = ctl(mx, "cache", "show", src)
            self.assertEqual((r.returncode, r.stdout), (0, f"{src} is not in the pass cache\n"), r)
            ctl(mx, "greylist", "pass", src, sender, RCPT)
            marker = harness.unique_marker("ctl-cache")
            self.assertEqual(harness.rcpt_attempt(mx.port, src, sender, marker)[0], 250)
            mx.wait_log(rf"PASS NEW \[{re.escape(src)}\]")
            r = ctl(mx, "cache", "show", src)
            self.assertEqual(r.returncode, 0, r)
            self.assertRegex(r.stdout, r"(?m)^pregreet passed until=\S+Z left=\d+s$")
            self.assertRegex(r.stdout, rf"(?m)^{re.escape(src)} cached until \S+Z$")

            r = ctl(mx, "cache", "drop", src)
            self.assertEqual((r.returncode, r.stdout),
                             (0, f"dropped the pass cache entry of {src}\n"), r)
            self.assertIn("not in the pass cache", ctl(mx, "cache", "show", src).stdout)

            # Cached again by its next session, then flushed with every other entry.
            since = mx.log_offset()
            self.assertEqual(harness.rcpt_attempt(mx.port, src, sender, "again")[0], 250)
            mx.wait_log(rf"PASS NEW \[{re.escape(src)}\]", since=since)
            self.assertIn("cached until", ctl(mx, "cache", "show", src).stdout)
            r = ctl(mx, "cache", "flush")
            self.assertEqual((r.returncode, r.stdout), (0, "flushed 1 pass cache entry\n"), r)
            self.assertIn("not in the pass cache", ctl(mx, "cache", "show", src).stdout)
            # Screened again: a new session, not PASS OLD.
            since = mx.log_offset()
            self.assertEqual(harness.rcpt_attempt(mx.port, src, sender, "third")[0], 250)
            mx.wait_log(rf"PASS NEW \[{re.escape(src)}\]", since=since)
            self.assertNotIn("PASS OLD", mx.log_text()[since:])

    def test_identity_keyed_triplet(self):
        """With greylist.identity_keys a forward-confirmed client's triplet is keyed by its
        reverse name's organisational domain: listed, passed and dropped by that name."""
        if UNBOUND is None:
            self.skipTest("unbound is not installed")
        cfg = self.config(identity_keys=True)
        cfg.update({"dns": {"nameservers": [f"127.0.0.1:{UNBOUND.port}"], "timeout": "2s"},
                    "greet": {"wait": "1s"}})
        sender = unique_sender()
        with harness.Mxscreen(cfg) as mx:
            self.assertEqual(harness.rcpt_attempt(mx.port, FCRDNS_OK, sender, "x"), GREYLISTED)
            mx.wait_log(rf"GREYLIST new \[{re.escape(FCRDNS_OK)}\]:\d+ .* key=ptr:good\.test ")
            lines, status = listed(mx, "--client", "ptr=good.test")
            self.assertEqual(status, "1 triplet")
            self.assertRegex(lines[0], rf"^ptr=good\.test <{re.escape(sender)}> <{RCPT}> pending ")
            self.assertEqual(listed(mx, "--client", FCRDNS_OK)[1], "0 triplets")  # not by network
            r = ctl(mx, "greylist", "pass", "ptr=good.test", sender, RCPT)
            self.assertEqual((r.returncode, r.stdout),
                             (0, f"passed ptr=good.test <{sender}> <{RCPT}>\n"), r)
            marker = harness.unique_marker("ctl-identity")
            self.assertEqual(harness.rcpt_attempt(mx.port, FCRDNS_OK, sender, marker)[0], 250)
            harness.wait_delivered(marker)
            r = ctl(mx, "greylist", "drop", "--client", "ptr=good.test")
            self.assertEqual((r.returncode, r.stdout), (0, "dropped 1 triplet of ptr=good.test\n"), r)

    def test_what_greylisting_costs(self):
        """The delay histogram counts a passed retry; the never-retried counter moves once
        retry_window is over, split by FCrDNS; the report names the senders."""
        if UNBOUND is None:
            self.skipTest("unbound is not installed")
        cfg = self.config(delay="1s", retry_window="3s", sweep_interval="1s")
        # A DNS test on, so that the client's PTR and A are looked up (FCrDNS).
        cfg.update({"dns": {"nameservers": [f"127.0.0.1:{UNBOUND.port}"], "timeout": "2s"},
                    "dnsbl": {"sites": ["zen.test"], "threshold": 1},
                    "greet": {"wait": "1s"}, "cache": {"enabled": False}})
        lost_ok, lost_none, passing = (unique_sender("lostok"), unique_sender("lostnone"),
                                       unique_sender("passing"))
        with harness.Mxscreen(cfg) as mx:
            t0 = time.monotonic()
            self.assertEqual(harness.rcpt_attempt(mx.port, FCRDNS_OK, lost_ok, "x"), GREYLISTED)
            self.assertEqual(harness.rcpt_attempt(mx.port, NO_PTR, lost_none, "x"), GREYLISTED)
            self.assertEqual(harness.rcpt_attempt(mx.port, FCRDNS_OK, passing, "x"), GREYLISTED)
            lines = listed(mx, "--sender", lost_ok)[0]
            self.assertRegex(lines[0], r" pending .* fcrdns=yes ")
            self.assertRegex(listed(mx, "--sender", lost_none)[0][0], r" fcrdns=no ")
            if time.monotonic() - t0 < 2.0:  # still inside retry_window: nothing counted yet
                self.assertEqual(harness.metric_sum(mx, "mxscreen_greylist_never_retried_total"),
                                 0)

            # One retry after the delay passes and is counted in the delay histogram.
            marker = harness.unique_marker("cost")

            def passed():
                code, _ = harness.rcpt_attempt(mx.port, FCRDNS_OK, passing, marker)
                return code == 250
            harness.wait_until(passed, 15, interval=0.2, what="the retry to pass")
            harness.wait_delivered(marker)
            self.assertEqual(mx.metric("mxscreen_greylist_delay_seconds_count"), 1)
            self.assertGreaterEqual(mx.metric("mxscreen_greylist_delay_seconds_sum"), 1)
            self.assertEqual(mx.metric("mxscreen_greylist_delay_seconds_bucket", {"le": "60"}), 1)

            # The two that never retried are counted once retry_window is over.
            def counted():
                yes = mx.metric("mxscreen_greylist_never_retried_total", {"fcrdns": "yes"})
                no = mx.metric("mxscreen_greylist_never_retried_total", {"fcrdns": "no"})
                return yes >= 1 and no >= 1
            harness.wait_until(counted, 30, interval=0.2, what="never-retried triplets counted")
            mx.wait_log(r"GREYLIST never retried: \d+ triplets")
            self.assertEqual(mx.metric("mxscreen_greylist_never_retried_total",
                                       {"fcrdns": "yes"}), 1)
            self.assertEqual(mx.metric("mxscreen_greylist_never_retried_total",
                                       {"fcrdns": "no"}), 1)
            self.assertRegex(listed(mx, "--sender", lost_ok)[0][0], r" never-retried .*fcrdns=yes")

            r = ctl(mx, "greylist", "report")
            self.assertEqual(r.returncode, 0, r)
            self.assertIn(f"1 fcrdns=1 <{lost_ok}>\n", r.stdout)
            self.assertIn(f"1 fcrdns=0 <{lost_none}>\n", r.stdout)
            self.assertNotIn(passing, r.stdout)
            self.assertRegex(r.stdout, r"(?m)^top 2 senders by greylisted triplets never retried")


class LmdbStateTest(_StateTests, unittest.TestCase):
    exact_pages = True

    def store(self):
        return {"backend": "lmdb"}

    def test_bad_requests_exit_1_with_a_message(self):
        with harness.Mxscreen(self.config()) as mx:
            for request, message in [
                (["greylist"], 'unknown request "greylist"'),
                (["greylist", "frob"], 'unknown request "greylist frob"'),
                (["greylist", "list", "--limit", "0"], 'invalid --limit "0" (1..1000)'),
                (["greylist", "list", "--limit", "5000"], 'invalid --limit "5000"'),
                (["greylist", "list", "--client", "not-an-ip"], 'invalid address "not-an-ip"'),
                (["greylist", "list", "--colour", "red"], 'unknown option "--colour"'),
                (["greylist", "list", "--sender"], "--sender needs a value"),
                (["greylist", "list", "--cursor", "%zz"], 'invalid --cursor "%zz"'),
                (["greylist", "pass", "127.0.0.1"], "greylist pass needs a triplet"),
                (["greylist", "drop", "gl:junk"], 'invalid greylist key "gl:junk"'),
                (["greylist", "pass", "1.2.3.4.5", "a@b", "c@d"], 'invalid address "1.2.3.4.5"'),
                (["greylist", "report", "--limit", "101"], 'invalid --limit "101" (1..100)'),
                (["cache", "show"], 'unknown request "cache show"'),
                (["cache", "show", "127.0.0.0/8"], 'invalid address "127.0.0.0/8"'),
                (["cache", "nuke"], 'unknown request "cache nuke"'),
            ]:
                r = ctl(mx, *request)
                self.assertEqual(r.returncode, 1, (request, r))
                self.assertEqual(r.stdout, "", (request, r))
                self.assertIn(message, r.stderr, request)
                self.assertTrue(r.stderr.startswith("mxscreen ctl: "), (request, r.stderr))
            self.assertTrue(mx.running())


@unittest.skipUnless(shutil.which("redis-server"), "redis-server not installed")
class RedisStateTest(_StateTests, unittest.TestCase):
    # SCAN cannot stop inside one step: a page may hold a few more than --limit.
    exact_pages = False

    def store(self):
        return {"backend": "redis", "redis_url": f"redis://127.0.0.1:{REDIS.port}/"
                                                 f"{next(_redis_dbs)}"}


if __name__ == "__main__":
    unittest.main()
