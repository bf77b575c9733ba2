"""Every command README.md shows gives what the README says it gives (issue 20).

The commands are the lines of README.md's ```sh blocks (a trailing backslash joins lines). The
demo's walk-through (swaks, the pregreet bot, the fake-MX knocks, `mxscreen ctl`, curl) runs
against mxscreen started with scripts/demo-config.toml, the file scripts/demo installs, in front
of the tests' private Postfix. Only what ties it to one machine is rewritten, in the config and
in the commands alike: ports 25 and 9425 become free ports, /etc/mxscreen/config.toml and
/var/lib/mxscreen a temporary config and state directory, ./build-release/mxscreen the binary
under test, the backend the private instance's PROXY port, server.user none (the test runs as
root where the demo runs as the mxscreen user), the [tls] certificate the private instance's
(the demo's Postfix and mxscreen share one, as these do), and the Maildir and Postfix log the
private instance's. The set-up commands are covered by what runs them: `sudo ./scripts/test` is the
command that runs this test, `sudo ./scripts/demo` is this config plus scripts/postfix-backend
on the machine's Postfix, and `sudo ./scripts/container-check` builds the Dockerfile that the
docker commands use (with podman, as docker is not on these machines); the sanitizer, fuzzing and
key-permission commands are named in SET_UP with why they are not run. A command added to the
README that this file does not know fails test_every_readme_command_is_known.
"""

import os
import re
import subprocess
import sys
import time
import tomllib
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

README = harness.SOURCE_DIR / "README.md"
DEMO_CONFIG = harness.SOURCE_DIR / "scripts" / "demo-config.toml"
DEMO_SCRIPT = harness.SOURCE_DIR / "scripts" / "demo"

# README commands that are not part of the demo's walk-through, and what covers each (or why
# it is not run here).
SET_UP = {
    "sudo ./scripts/demo": "scripts/demo-config.toml + scripts/postfix-backend, run here",
    "sudo ./scripts/test": "the command that runs this test",
    "sudo ./scripts/container-check": "run by hand or by CI, see README 'Container'",
    "docker build ": "what scripts/container-check builds with podman",
    "docker run ": "what scripts/container-check runs with chroot (no docker here)",
    # Not run here, and why:
    "sudo ./scripts/test --sanitize": "this suite again in a sanitizer build (by hand)",
    "sudo ./scripts/test --tsan": "this suite again in a ThreadSanitizer build (by hand)",
    "./scripts/fuzz": "the libFuzzer targets, minutes to hours (by hand)",
    "chgrp ssl-cert ": "deployment: changes the admin's key file",
    "adduser mxscreen ssl-cert": "deployment: changes the admin's groups",
}
# The walk-through, by the start of each command (each must match exactly one README command).
WALK = {
    "greylist": "swaks --server 127.0.0.1:25 ",
    "bot": "python3 -c ",
    "fake_mx": "for i in 1 2 3; do swaks --server 127.0.0.2:25 ",
    "bans": "./build-release/mxscreen ctl --config /etc/mxscreen/config.toml bans",
    "unban": "./build-release/mxscreen ctl --config /etc/mxscreen/config.toml unban ",
    "metrics": "curl -s http://127.0.0.1:9425/metrics",
}


def readme_commands(text=None):
    """The commands of README.md's ```sh blocks, in order."""
    commands, in_sh, pending = [], False, ""
    for line in (text if text is not None else README.read_text()).splitlines():
        fence = line.strip()
        if fence.startswith("```"):
            in_sh = (not in_sh) and fence == "```sh"
            continue
        if not in_sh or not fence or fence.startswith("#"):
            continue
        if fence.endswith("\\"):
            pending += fence[:-1].rstrip() + " "
            continue
        commands.append(pending + fence)
        pending = ""
    return commands


def readme_command(start):
    matches = [c for c in readme_commands() if c.startswith(start)]
    if len(matches) != 1:
        raise AssertionError(f"README.md has {len(matches)} commands starting {start!r}: {matches}")
    return matches[0]


class ReadmeCommandsTest(unittest.TestCase):
    def test_every_readme_command_is_known(self):
        commands = readme_commands()
        self.assertIn("sudo ./scripts/demo", commands)
        self.assertIn("sudo ./scripts/test", commands)
        starts = list(SET_UP) + list(WALK.values())
        unknown = [c for c in commands if not any(c.startswith(s) for s in starts)]
        self.assertEqual(unknown, [], "README commands this test neither runs nor names")
        for start in WALK.values():
            readme_command(start)

    def test_the_demo_prints_the_readme_first_command(self):
        # scripts/demo tells the user what to try; it must be the README's command, verbatim.
        printed = [line.strip() for line in DEMO_SCRIPT.read_text().splitlines()
                   if line.startswith("  swaks ")]
        self.assertEqual(printed, [readme_command(WALK["greylist"])])

    def test_reader_joins_continued_lines_and_skips_other_blocks(self):
        text = "```sh\na \\\n  b\n# note\n```\n```toml\nx = 1\n```\n   ```sh\nc\n   ```\n"
        self.assertEqual(readme_commands(text), ["a b", "c"])


class DemoWalkThroughTest(unittest.TestCase):
    """The README's "Try it" commands, in the order a reader runs them."""

    @classmethod
    def setUpClass(cls):
        harness.ensure_postfix()
        text = DEMO_CONFIG.read_text()
        for old, new in (("127.0.0.1:25\"", "127.0.0.1:@PORT@\""),
                         ("127.0.0.2:25\"", "127.0.0.2:@PORT@\""),
                         ("127.0.0.1:9425\"", "127.0.0.1:@METRICS_PORT@\""),
                         ("\"/var/lib/mxscreen\"", "\"@STATE_DIR@\""),
                         ("\"127.0.0.1:10025\"", f"\"{harness.BACKEND_PROXY}\""),
                         ("user = \"mxscreen\"", "user = \"\""),
                         # scripts/demo gives Postfix the certificate of mxscreen's [tls]; the
                         # tests' Postfix has its own, which mxscreen then uses the same way.
                         ("\"/etc/mxscreen/tls/mx.crt\"", f"\"{harness.BACKEND_TLS_CERT}\""),
                         ("\"/etc/mxscreen/tls/mx.key\"", f"\"{harness.BACKEND_TLS_KEY}\"")):
            if old not in text:
                raise AssertionError(f"{DEMO_CONFIG} no longer has {old}: update this test")
            text = text.replace(old, new)
        cls.demo = tomllib.loads(DEMO_CONFIG.read_text())
        cls.mx = harness.Mxscreen(text).start()

    @classmethod
    def tearDownClass(cls):
        cls.mx.__exit__(None, None, None)

    def run_readme(self, start, timeout=60):
        """Runs the README command that starts with start, rewritten for this machine (see the
        file's comment); returns (exit code, stdout + stderr, seconds taken)."""
        mx = self.mx
        command = readme_command(start)
        rewritten = re.sub(r"\b127\.0\.0\.([12]):25\b", rf"127.0.0.\1:{mx.port}", command)
        rewritten = (rewritten.replace("('127.0.0.1', 25)", f"('127.0.0.1', {mx.port})")
                     .replace("127.0.0.1:9425", f"127.0.0.1:{mx.metrics_port}")
                     .replace("/etc/mxscreen/config.toml", str(mx.config_path))
                     .replace("./build-release/mxscreen", mx.binary))
        began = time.monotonic()
        out = subprocess.run(["bash", "-c", rewritten], cwd=harness.SOURCE_DIR,
                             capture_output=True, text=True, timeout=timeout)
        return out.returncode, out.stdout + out.stderr, time.monotonic() - began

    def test_walk_through(self):
        mx = self.mx
        greet_wait = 6.0  # greet.wait's default, as the README says
        delay = float(self.demo["greylist"]["delay"].rstrip("s"))

        # 1. First try: 220- at once, the final 220 after the greet wait, 450 greylisted at RCPT.
        first = time.monotonic()
        code, out, took = self.run_readme(WALK["greylist"])
        self.assertRegex(out, r"<-  220-mx\.example\.test")
        self.assertRegex(out, r"<-  220 mx\.example\.test")
        self.assertGreaterEqual(took, greet_wait - 0.5, out)
        self.assertIn("<** 450 4.2.0 <user@example.test>: Recipient address rejected: "
                      "Greylisted, please try again later", out)
        self.assertNotEqual(code, 0)
        mx.wait_log(r"GREYLIST new")

        # 2. The bot that talks first: PREGREET, then 550 5.7.1 ... pregreet test at RCPT.
        code, out, _ = self.run_readme(WALK["bot"])
        self.assertEqual(code, 0, out)
        self.assertRegex(out, r"550 5\.7\.1 .*blocked by the pregreet test")
        mx.wait_log(r"PREGREET \d+ after .* from \[127\.0\.0\.6\]")

        # 3. The same swaks after greylist.delay: GREYLIST passed, PASS NEW, delivered. The wait
        # is the delay under test (what the reader waits), not a synchronisation.
        time.sleep(max(0.0, first + delay + 1 - time.monotonic()))
        offset = harness.postfix_log_offset()
        code, out, _ = self.run_readme(WALK["greylist"])
        self.assertEqual(code, 0, out)
        queued = re.search(r"<-  250 2\.0\.0 Ok: queued as (\w+)", out)
        self.assertIsNotNone(queued, out)
        mx.wait_log(r"GREYLIST passed")
        mx.wait_log(r"PASS NEW \[127\.0\.0\.5\]")
        qid = queued.group(1)
        harness.wait_for_log(rf"{qid}: client=unknown\[127\.0\.0\.5\]", offset)
        harness.wait_for_log(rf"{qid}: to=<user@example\.test>.*status=sent", offset)
        landed = [p for p in (harness.MAILDIR / "new").iterdir() if qid in p.read_text()]
        self.assertEqual(len(landed), 1)

        # 4. A third run is PASS OLD: Postfix's own banner at once, no greet wait.
        code, out, took = self.run_readme(WALK["greylist"])
        self.assertEqual(code, 0, out)
        self.assertRegex(out, r"<-  220 \S+ ESMTP Postfix")
        self.assertLess(took, greet_wait - 1, out)
        mx.wait_log(r"PASS OLD \[127\.0\.0\.5\]")

        # 5. Three knocks on the fake MX: reset each time, FAKE-MX logged, then BANNED, and the
        # real MX refuses it too (ban.reply = true in the demo: 554 5.7.1).
        _, out, _ = self.run_readme(WALK["fake_mx"])
        # swaks words a reset as either, depending on whether it came before connect returned.
        resets = re.findall(r"Remote host closed connection unexpectedly|Connection reset by peer",
                            out)
        self.assertEqual(len(resets), 3, out)
        knock = re.compile(r"FAKE-MX \[127\.0\.0\.7\]:\d+ action=reset")
        harness.wait_until(lambda: len(knock.findall(mx.log_text())) >= 3,
                           what="3 FAKE-MX lines for 127.0.0.7")
        mx.wait_log(r"BANNED .*127\.0\.0\.7")
        sock = harness.raw_connect(mx.port, source="127.0.0.7")
        try:
            self.assertTrue(harness.read_line(sock).startswith(b"554 5.7.1"))
        finally:
            sock.close()

        # 6. ctl bans lists it, ctl unban lets it back, bans no longer lists it.
        code, out, _ = self.run_readme(WALK["bans"])
        self.assertEqual(code, 0, out)
        self.assertIn("127.0.0.7", out)
        code, out, _ = self.run_readme(WALK["unban"])
        self.assertEqual(code, 0, out)
        code, out, _ = self.run_readme(WALK["bans"])
        self.assertEqual(code, 0, out)
        self.assertNotIn("127.0.0.7", out)
        sock = harness.raw_connect(mx.port, source="127.0.0.7")
        try:
            self.assertTrue(harness.read_line(sock).startswith(b"220-"))
        finally:
            sock.close()

        # 7. The metrics count all of it.
        code, out, _ = self.run_readme(WALK["metrics"])
        self.assertEqual(code, 0, out)
        self.assertRegex(out, r'mxscreen_greylist_total\{outcome="new",key="\w+"\} 1\b')
        self.assertRegex(out, r'mxscreen_greylist_total\{outcome="passed",key="\w+"\} 1\b')
        self.assertRegex(out, r"mxscreen_bans_total\{[^}]*\} 1\b")
        self.assertRegex(out, r"mxscreen_unbans_total 1\b")


if __name__ == "__main__":
    unittest.main()
