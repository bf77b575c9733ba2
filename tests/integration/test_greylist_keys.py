"""Greylist keys stay small whatever addresses the client sends (issue 13, item 6).

What an admin notices, with the real redis-server as the store (its keys are there to read):
- a client greylisted with a 1,900-byte quoted local part in the sender and in the recipient
  leaves a key of at most ~450 bytes (before: about 3,900), of the form
  gl:<network>:<64 bytes of the sender>~<sha256>:<64 bytes of the recipient>~<sha256>;
- a recipient that differs from another only past the kept prefix is another key (the digest
  covers the whole address), and the same triplet again is the same key (its retry is an
  "early retry", not a new triplet).
"""

import hashlib
import os
import re
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

SOURCE = "127.0.0.74"
KEY = re.compile(r"^gl:127\.0\.0\.0/24:(.{64})~([0-9a-f]{64}):(.{64})~([0-9a-f]{64})$")


def long_address(fill, domain, at=None, other="z"):
    local = [fill] * 1900
    if at is not None:
        local[at] = other
    return '"' + "".join(local) + '"@' + domain


def greylist_keys(redis):
    out = subprocess.run(["redis-cli", "-p", str(redis.port), "--scan", "--pattern", "gl:*"],
                         capture_output=True, text=True, timeout=10, check=True).stdout
    return sorted(line for line in out.splitlines() if line)


def rcpt_codes(port, sender, recipients):
    s = harness.smtp_client(port, source=SOURCE)
    try:
        s.ehlo(harness.CLIENT_HELO)
        code, text = s.mail(sender)
        if code != 250:
            raise AssertionError(f"MAIL FROM refused: {code} {text!r}")
        return [s.rcpt(r)[0] for r in recipients]
    finally:
        s.close()


class GreylistKeyTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        harness.ensure_postfix()
        cls.redis = harness.RedisServer().start()

    @classmethod
    def tearDownClass(cls):
        cls.redis.cleanup()

    def test_long_local_parts_make_bounded_keys(self):
        config = {"greylist": {"enabled": True, "delay": "1h"},
                  "store": {"backend": "redis",
                            "redis_url": f"redis://127.0.0.1:{self.redis.port}/0"}}
        sender = long_address("s", "example.org")
        rcpt_a = long_address("r", "example.test")
        rcpt_b = long_address("r", "example.test", at=1500)
        with harness.Mxscreen(config) as mx:
            self.assertEqual(rcpt_codes(mx.port, sender, [rcpt_a, rcpt_b]), [450, 450])
            keys = greylist_keys(self.redis)
            self.assertEqual(len(keys), 2, keys)
            for key in keys:
                self.assertLessEqual(len(key), 450, key)
                m = KEY.match(key)
                self.assertIsNotNone(m, key)
                self.assertEqual(m.group(1), sender[:64])
                self.assertEqual(m.group(2), hashlib.sha256(sender.encode()).hexdigest())
                self.assertEqual(m.group(3), rcpt_a[:64])
            digests = {KEY.match(k).group(4) for k in keys}
            self.assertEqual(digests, {hashlib.sha256(r.encode()).hexdigest()
                                       for r in (rcpt_a, rcpt_b)})
            # The same triplet again is the same key: an early retry, nothing new stored.
            self.assertEqual(rcpt_codes(mx.port, sender, [rcpt_a]), [450])
            mx.wait_log(r"GREYLIST early retry \[127\.0\.0\.74\]")
            self.assertEqual(greylist_keys(self.redis), keys)
            self.assertEqual(mx.metric("mxscreen_greylist_total", {"outcome": "new"}), 2)


if __name__ == "__main__":
    unittest.main()
