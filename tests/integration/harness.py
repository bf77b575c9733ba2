"""Integration-test harness: starts the real mxscreen binary and real peers on loopback.

Every tests/integration/test_*.py is a standalone unittest script that imports this module.
It gives: the tests' private Postfix backend (scripts/postfix-backend POSTFIX_DIR, once per
process; /etc/postfix and the machine's Postfix are never touched) with its log and the test
mailbox, an mxscreen process per test with a temporary TOML config, an smtp-sink fake backend,
and SMTP clients bound to 127.0.0.x source addresses. Synchronisation is always "poll with a
deadline" (wait_until), never a bare sleep.

Environment: MXSCREEN_BIN (the binary; default <repo>/build/mxscreen), MXSCREEN_SOURCE_DIR
(repo root; default two levels above this file), MXSCREEN_KEEP_TMP=1 keeps temp dirs,
MXSCREEN_TEST_POSTFIX_DIR (the private Postfix; default /var/tmp/mxscreen-test-postfix-tls).
"""

import json
import os
import re
import shutil
import signal
import smtplib
import socket
import struct
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.request
import uuid
from collections import namedtuple
from pathlib import Path

SOURCE_DIR = Path(os.environ.get("MXSCREEN_SOURCE_DIR") or Path(__file__).resolve().parents[2])
# The tests' own Postfix instance (scripts/postfix-backend POSTFIX_DIR): its config, queue,
# mail and log live under this directory, so /etc/postfix and the machine's Postfix (the
# demo's, on 10025/10026) are left alone. One instance serves every test process on the machine.
# (A new directory and ports whenever its configuration changes in a way older copies of
# scripts/postfix-backend would undo: see that script.)
POSTFIX_DIR = Path(os.environ.get("MXSCREEN_TEST_POSTFIX_DIR")
                   or "/var/tmp/mxscreen-test-postfix-tls")
POSTFIX_LOG = POSTFIX_DIR / "postfix.log"
# Maildir of user@example.test (virtual delivery, see scripts/postfix-backend).
MAILDIR = POSTFIX_DIR / "mail" / "example.test" / "user"
# Every backend service offers STARTTLS (smtpd_tls_security_level = may) with this certificate,
# made once by scripts/postfix-backend; key mode 0600 (tests run as root).
BACKEND_TLS_CERT = POSTFIX_DIR / "tls" / "backend.crt"
BACKEND_TLS_KEY = POSTFIX_DIR / "tls" / "backend.key"
BACKEND_PROXY = "127.0.0.1:10135"    # smtpd with smtpd_upstream_proxy_protocol=haproxy
BACKEND_XCLIENT = "127.0.0.1:10136"  # smtpd with smtpd_authorized_xclient_hosts=127.0.0.0/8
BACKEND_PROXY_PORT = int(BACKEND_PROXY.rsplit(":", 1)[1])
BACKEND_XCLIENT_PORT = int(BACKEND_XCLIENT.rsplit(":", 1)[1])
# The same two, asking mxscreen's policy service on POLICY_PORT at every RCPT.
BACKEND_PROXY_POLICY = "127.0.0.1:10137"
BACKEND_XCLIENT_POLICY = "127.0.0.1:10138"
POLICY_PORT = 10140
CLIENT_HELO = "mail.example.org"


# ---------------------------------------------------------------------------------------------
# Waiting

def wait_until(predicate, timeout=10.0, interval=0.02, what="condition"):
    """Polls predicate() until it returns a truthy value (returned) or timeout (AssertionError)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def unique_marker(prefix="mxscreen-test"):
    """A string to put in a Subject/body and find again in the mailbox or a log."""
    return f"{prefix}-{uuid.uuid4().hex}"


# ---------------------------------------------------------------------------------------------
# Postfix backend

_postfix_ready = False


def ensure_postfix():
    """Configures and starts the tests' private Postfix backend under POSTFIX_DIR
    (scripts/postfix-backend POSTFIX_DIR), once per process."""
    global _postfix_ready
    if _postfix_ready:
        return
    script = SOURCE_DIR / "scripts" / "postfix-backend"
    ports = [a.rsplit(":", 1)[1] for a in (BACKEND_PROXY, BACKEND_XCLIENT, BACKEND_PROXY_POLICY,
                                           BACKEND_XCLIENT_POLICY)]
    env = dict(os.environ, POSTFIX_BACKEND_PORTS=" ".join(ports),
               POSTFIX_BACKEND_POLICY_PORT=str(POLICY_PORT))
    result = subprocess.run([str(script), str(POSTFIX_DIR)], capture_output=True, text=True,
                            timeout=120, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"{script} failed ({result.returncode}):\n{result.stdout}{result.stderr}")
    _postfix_ready = True


def postfix_log_offset():
    """Current size of the Postfix log: pass it to postfix_log_since()/wait_for_log()."""
    try:
        return POSTFIX_LOG.stat().st_size
    except FileNotFoundError:
        return 0


def postfix_log_since(offset=0):
    """Postfix log text written after byte offset."""
    try:
        with open(POSTFIX_LOG, "rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


def wait_for_log(regex, since_offset=0, timeout=10.0):
    """Waits until the Postfix log (after since_offset) matches regex; returns the re.Match."""
    pattern = re.compile(regex, re.MULTILINE)
    try:
        return wait_until(lambda: pattern.search(postfix_log_since(since_offset)), timeout,
                          interval=0.05, what=f"/{regex}/ in {POSTFIX_LOG}")
    except AssertionError as e:
        tail = "\n".join(postfix_log_since(since_offset).splitlines()[-30:])
        raise AssertionError(f"{e}\n--- postfix log since offset {since_offset} ---\n{tail}") from None


def _find_delivered(marker):
    for sub in ("new", "cur"):
        d = MAILDIR / sub
        if not d.is_dir():
            continue
        for p in d.iterdir():
            try:
                data = p.read_bytes()
            except FileNotFoundError:  # moved from new/ to cur/ meanwhile
                continue
            if marker.encode() in data:
                return data.decode("utf-8", "replace")
    return None


def wait_delivered(marker, timeout=10.0):
    """Waits until a message containing marker is in user@example.test's Maildir; returns it."""
    try:
        return wait_until(lambda: _find_delivered(marker), timeout, interval=0.05,
                          what=f"a message with {marker!r} in {MAILDIR}")
    except AssertionError as e:
        raise AssertionError(f"{e}\n--- postfix log tail ---\n"
                             + "\n".join(postfix_log_since(0).splitlines()[-20:])) from None


def is_delivered(marker):
    """True when a message containing marker is in the test Maildir now (no waiting)."""
    return _find_delivered(marker) is not None


# ---------------------------------------------------------------------------------------------
# Sockets and SMTP clients

def free_port(host="127.0.0.1"):
    """A TCP port nobody listens on right now (the kernel's choice)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _listening_ports():
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if fields[3] == "0A":  # TCP_LISTEN
                        ports.add(int(fields[1].rsplit(":", 1)[1], 16))
        except FileNotFoundError:
            pass
    return ports


def is_listening(port):
    """True when some socket listens on TCP port (checked in /proc: opens no connection)."""
    return port in _listening_ports()


def wait_listening(ports, timeout=10.0, proc=None):
    """Waits until every port listens; fails early if proc (a Popen) exits meanwhile."""
    ports = set(ports)

    def ready():
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening")
        return ports <= _listening_ports()

    wait_until(ready, timeout, what=f"ports {sorted(ports)} to listen")


def proxy_v1_header(src, dst="127.0.0.1", sport=4711, dport=25):
    fam = "TCP6" if ":" in src else "TCP4"
    return f"PROXY {fam} {src} {dst} {sport} {dport}\r\n".encode()


def proxy_v2_header(src, dst="127.0.0.1", sport=4711, dport=25):
    sig = b"\r\n\r\n\x00\r\nQUIT\n"
    if ":" in src:
        addrs = socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst)
        fam = 0x21
    else:
        addrs = socket.inet_aton(src) + socket.inet_aton(dst)
        fam = 0x11
    body = addrs + struct.pack("!HH", sport, dport)
    return sig + bytes([0x21, fam]) + struct.pack("!H", len(body)) + body


class _PreambleSMTP(smtplib.SMTP):
    """smtplib.SMTP that sends raw bytes (e.g. a PROXY header) before reading the greeting."""

    def __init__(self, *args, preamble=b"", **kwargs):
        self._preamble = preamble
        super().__init__(*args, **kwargs)

    def _get_socket(self, host, port, timeout):
        sock = super()._get_socket(host, port, timeout)
        if self._preamble:
            sock.sendall(self._preamble)
        return sock


def smtp_client(port, source="127.0.0.5", host="127.0.0.1", timeout=10.0, preamble=b"",
                helo=CLIENT_HELO):
    """Connected smtplib.SMTP from source (a 127.0.0.x address); greeting already read.

    helo is used by smtplib's ehlo()/helo() (no getfqdn() DNS lookup). preamble is sent right
    after connect, e.g. proxy_v1_header("127.0.0.5") for a PROXY-protocol port.
    """
    return _PreambleSMTP(host, port, local_hostname=helo, timeout=timeout,
                         source_address=(source, 0), preamble=preamble)


def raw_connect(port, source="127.0.0.5", host="127.0.0.1", timeout=10.0):
    """A TCP socket connected from source to host:port (nothing read or sent)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    sock.bind((source, 0))
    sock.connect((host, port))
    return sock


Reply = namedtuple("Reply", "code lines raw")  # int, [str text after "NNN-"/"NNN "], bytes


def _read_line(sock, deadline, raw):
    line = bytearray()
    while not line.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise socket.timeout(f"no complete SMTP reply; got {bytes(raw + line)!r}")
        sock.settimeout(remaining)
        b = sock.recv(1)  # one byte at a time: never reads past this reply
        if not b:
            raise ConnectionError(f"connection closed; partial reply {bytes(raw + line)!r}")
        line += b
    return bytes(line)


def read_line(sock, timeout=10.0):
    """Reads one raw line up to and including LF (e.g. the "220-" teaser alone); bytes.

    Raises socket.timeout when it does not arrive in time, ConnectionError on EOF.
    """
    return _read_line(sock, time.monotonic() + timeout, bytearray())


def read_reply(sock, timeout=10.0):
    """Reads one complete (possibly multi-line) SMTP reply; returns Reply(code, lines, raw).

    Raises socket.timeout when it does not arrive in time, ConnectionError on EOF.
    """
    deadline = time.monotonic() + timeout
    raw = bytearray()
    lines = []
    while True:
        line = _read_line(sock, deadline, raw)
        raw += line
        text = line.decode("utf-8", "replace").rstrip("\r\n")
        if len(text) < 3 or not text[:3].isdigit():
            raise ValueError(f"not an SMTP reply line: {text!r}")
        lines.append(text[4:])
        if len(text) == 3 or text[3] == " ":
            return Reply(int(text[:3]), lines, bytes(raw))


def send_line(sock, line):
    """Sends one command line with CRLF."""
    sock.sendall(line.encode() + b"\r\n" if isinstance(line, str) else line + b"\r\n")


def command(sock, line, timeout=10.0):
    """Sends a command line and returns its Reply."""
    send_line(sock, line)
    return read_reply(sock, timeout)


def stop_process(proc, timeout=5.0):
    """SIGTERM, then SIGKILL after timeout; nothing when proc is None or already gone."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def read_until_closed(sock, timeout=5.0):
    """Everything the peer sends until it closes: (bytes, how), how = "eof" (FIN), "reset" (RST)
    or None when it was still open after timeout."""
    data = bytearray()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return bytes(data), "reset"
        except socket.timeout:
            break
        if not chunk:
            return bytes(data), "eof"
        data += chunk
    return bytes(data), None


def wait_closed(sock, timeout=10.0):
    """True when the peer closes (EOF or reset) within timeout; data read meanwhile is dropped."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            if not sock.recv(4096):
                return True
        except socket.timeout:
            return False
        except (ConnectionResetError, BrokenPipeError):
            return True
    return False


# ---------------------------------------------------------------------------------------------
# TOML

def _toml_key(k):
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else json.dumps(k)


def _toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)  # JSON string escapes are valid TOML
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        # A key with a dot (a zone name) is quoted, or TOML reads it as a dotted key.
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items()
                                if x is not None) + " }"
    raise TypeError(f"cannot write {v!r} as TOML")


def to_toml(config):
    """Writes {section: {key: value}} as TOML; a section given as a list of dicts becomes an
    array of tables ([[listen]]); keys whose value is None are left out."""
    out = []
    for section, body in config.items():
        if body is None:
            continue
        tables = body if isinstance(body, list) else [body]
        header = f"[[{section}]]" if isinstance(body, list) else f"[{section}]"
        for table in tables:
            out.append(header)
            out += [f"{k} = {_toml_value(v)}" for k, v in table.items() if v is not None]
            out.append("")
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------
# mxscreen

def mxscreen_binary():
    path = os.environ.get("MXSCREEN_BIN") or str(SOURCE_DIR / "build" / "mxscreen")
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"mxscreen binary {path!r} not found: build it or set MXSCREEN_BIN")
    return path


def check_config(config_text, binary=None):
    """Runs `mxscreen --check-config --config FILE` on TOML text; returns (exit code, output,
    path of the file) so a test can match "FILE:LINE:COL: message" lines."""
    fd, path = tempfile.mkstemp(prefix="mxscreen-check-", suffix=".toml")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(config_text)
        result = subprocess.run([binary or mxscreen_binary(), "--check-config", "--config", path],
                                capture_output=True, text=True, timeout=30)
    finally:
        os.unlink(path)
    return result.returncode, result.stdout + result.stderr, path


def _merge(defaults, overrides):
    merged = {k: (list(v) if isinstance(v, list) else dict(v)) for k, v in defaults.items()}
    for section, body in overrides.items():
        if body is None:
            merged.pop(section, None)
        elif isinstance(body, list) or not isinstance(merged.get(section), dict):
            merged[section] = body  # [[listen]] and new sections are replaced whole
        else:
            merged[section].update(body)  # None values drop a default key (see to_toml)
    return merged


# Set by scripts/test --sanitize/--tsan: the binary is a sanitizer build.
SANITIZED = bool(os.environ.get("MXSCREEN_SANITIZE"))
# ASan keeps freed memory in a quarantine (256 MB by default) to catch use-after-free, so RSS
# grows with allocation churn, not with what is live: 435 MB for the never-reading client of
# test_dialogue_bad_input, against 1.9 MB with the quarantine off and 0.3 MB in release. Tests
# that bound RSS run their mxscreen with Mxscreen(env=RSS_ENV). ThreadSanitizer's shadow memory
# has no such switch: under it RSS bounds are not checked (RSS_COMPARABLE).
RSS_ENV = {"ASAN_OPTIONS": ":".join(filter(None, [
    os.environ.get("ASAN_OPTIONS", ""), "quarantine_size_mb=0",
    "thread_local_quarantine_size_kb=0"]))}
RSS_COMPARABLE = "thread" not in os.environ.get("MXSCREEN_SANITIZE", "")

_SANITIZER_REPORT = re.compile(
    r"^.*(?:ERROR: (?:Address|Leak|Thread)Sanitizer|WARNING: ThreadSanitizer|"
    r"runtime error: ).*$", re.MULTILINE)


def sanitizer_report(text, max_lines=60):
    """The first sanitizer report in `text` (a log or a captured stderr) and the lines after
    it, or None."""
    m = _SANITIZER_REPORT.search(text)
    if not m:
        return None
    return "\n".join(text[m.start():].splitlines()[:max_lines])


class Mxscreen:
    """A running mxscreen with a temporary config, as a context manager.

        with Mxscreen({"greet": {"action": "drop"}}) as mx:
            s = smtp_client(mx.port)

    config: None (test defaults), a dict {section: {key: value}} merged over the defaults
    (a section set to None is dropped, a key set to None is dropped, "listen" is a list of
    tables and replaces the default one), or raw TOML text used as is, in which the tokens
    @PORT@, @METRICS_PORT@, @STATE_DIR@ are replaced by this instance's values.
    Test defaults: one mx listener on 127.0.0.1:<free port>, backend BACKEND_PROXY proxy_v2,
    greet.wait 300ms, metrics on 127.0.0.1:<free port>, text log, memory store, no user switch,
    and three neutral settings a test turns back on when it tests them: access.allow = [] (the
    built-in default allowlists 127.0.0.0/8, which would hand every test client straight to the
    backend), dnsbl.sites = [] (no network here), greylist.enabled = false,
    greylist.identity_keys = false (no PTR lookup through the machine's resolver at every
    greylisted RCPT) and cache.enabled = false (no verdict cache: a second session from the same address is
    screened again).
    """

    def __init__(self, config=None, binary=None, args=(), start_timeout=10.0, env=None):
        self.binary = binary or mxscreen_binary()
        self.env = {**os.environ, **env} if env else None  # added to the process environment
        self.tmpdir = Path(tempfile.mkdtemp(prefix="mxscreen-it-"))
        self.state_dir = self.tmpdir / "state"
        self.state_dir.mkdir()
        self.port = free_port()
        self.metrics_port = free_port()
        self.config_path = self.tmpdir / "config.toml"
        self.log_path = self.tmpdir / "mxscreen.log"
        self.args = list(args)
        self.start_timeout = start_timeout
        self.proc = None
        self._log_file = None
        if isinstance(config, str):
            text = (config.replace("@PORT@", str(self.port))
                    .replace("@METRICS_PORT@", str(self.metrics_port))
                    .replace("@STATE_DIR@", str(self.state_dir)))
        else:
            text = to_toml(_merge(self.default_config(), config or {}))
        self.config_path.write_text(text)
        self.config = tomllib.loads(text)
        self.ports = [int(l["address"].rsplit(":", 1)[1]) for l in self.config.get("listen", [])]
        metrics = self.config.get("metrics", {}).get("listen")
        self.metrics_port = int(metrics.rsplit(":", 1)[1]) if metrics else None
        if self.ports:
            self.port = self.ports[0]

    def default_config(self):
        return {
            "server": {"user": "", "state_dir": str(self.state_dir)},
            "listen": [{"address": f"127.0.0.1:{self.port}", "role": "mx"}],
            "backend": {"address": BACKEND_PROXY, "handoff": "proxy_v2"},
            "greet": {"wait": "300ms"},
            "access": {"allow": []},
            "dnsbl": {"sites": []},
            "greylist": {"enabled": False, "identity_keys": False},
            "cache": {"enabled": False},
            "metrics": {"listen": f"127.0.0.1:{self.metrics_port}"},
            "log": {"format": "text"},
            "store": {"backend": "memory"},
        }

    # -- life cycle --------------------------------------------------------------------------

    def start(self):
        if self.proc is not None:
            return self
        self._log_file = open(self.log_path, "wb")
        self.proc = subprocess.Popen([self.binary, "--config", str(self.config_path), *self.args],
                                     stdin=subprocess.DEVNULL, stdout=self._log_file,
                                     stderr=subprocess.STDOUT, preexec_fn=self.preexec_fn,
                                     env=self.env)
        ports = list(self.ports) + ([self.metrics_port] if self.metrics_port else [])
        try:
            wait_listening(ports, self.start_timeout, proc=self.proc)
        except (RuntimeError, AssertionError) as e:
            self.kill()
            detail = (f"mxscreen did not start: {e}\n--- config ---\n"
                      f"{self.config_path.read_text()}--- log ---\n{self.log_text()}")
            if not os.environ.get("MXSCREEN_KEEP_TMP"):
                shutil.rmtree(self.tmpdir, ignore_errors=True)
            raise RuntimeError(detail) from None
        return self

    def __enter__(self):
        return self.start()

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            sys.stderr.write(f"--- mxscreen log ({self.log_path}) ---\n{self.log_tail(60)}\n")
        self.kill()
        report = self.sanitizer_report()
        if not os.environ.get("MXSCREEN_KEEP_TMP"):
            shutil.rmtree(self.tmpdir, ignore_errors=True)
        if report and exc_type is None:
            raise AssertionError(f"sanitizer report in mxscreen's log:\n{report}")
        if report:
            sys.stderr.write(f"--- sanitizer report ---\n{report}\n")
        return False

    # Runs in the child before exec (e.g. to lower its RLIMIT_NOFILE); None = nothing.
    preexec_fn = None

    def cpu_seconds(self):
        """User + system CPU time the process has used so far (/proc/PID/stat)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def reload(self):
        """SIGHUP: reload config (rewrite self.config_path first to change it)."""
        self.proc.send_signal(signal.SIGHUP)

    def stop(self, timeout=35.0):
        """SIGTERM, wait for exit, return the exit code."""
        if self.running():
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            self._close_log()

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._close_log()

    def _close_log(self):
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    # -- observation -------------------------------------------------------------------------

    def log_text(self):
        try:
            return self.log_path.read_bytes().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def sanitizer_report(self):
        """The first ASan/UBSan/LSan/TSan report in the log (a sanitizer build, scripts/test
        --sanitize or --tsan), or None. A test that passed still fails on one."""
        return sanitizer_report(self.log_text())

    def log_tail(self, n=40):
        return "\n".join(self.log_text().splitlines()[-n:])

    def log_offset(self):
        """Length of the log text so far: pass as since= to wait_log()."""
        return len(self.log_text())

    def wait_log(self, regex, timeout=10.0, since=0):
        """Waits until the log (text after character offset since) matches; returns the Match."""
        pattern = re.compile(regex, re.MULTILINE)

        def found():
            m = pattern.search(self.log_text(), since)
            if not m and not self.running():
                raise AssertionError(f"mxscreen exited ({self.proc.returncode}) without logging "
                                     f"/{regex}/\n{self.log_tail()}")
            return m

        try:
            return wait_until(found, timeout, what=f"/{regex}/ in the mxscreen log")
        except AssertionError as e:
            raise AssertionError(f"{e}\n--- mxscreen log ---\n{self.log_tail()}") from None

    def metrics(self, timeout=5.0):
        """GET /metrics as text."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.read().decode()

    def metric(self, name, labels=None, default=None):
        """Value of one sample from /metrics (labels: dict that must all match), or default."""
        for line in self.metrics().splitlines():
            if line.startswith("#"):
                continue
            m = re.match(r"^([A-Za-z_:][\w:]*)(\{(.*)\})?\s+(\S+)", line)
            if not m or m.group(1) != name:
                continue
            have = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
            if all(have.get(k) == str(v) for k, v in (labels or {}).items()):
                return float(m.group(4))
        return default


# ---------------------------------------------------------------------------------------------
# Mail attempts and metrics shared by the test files

MAILBOX = "user@example.test"  # the backend Postfix delivers it to the Maildir


def marked_message(marker, sender, rcpt=MAILBOX):
    """A small message whose Message-ID and Subject carry marker (see wait_delivered)."""
    return (f"From: <{sender}>\r\nTo: <{rcpt}>\r\nMessage-ID: <{marker}@example.org>\r\n"
            f"Subject: {marker}\r\n\r\nbody {marker}\r\n").encode()


def rcpt_attempt(port, source, sender, marker, host="127.0.0.1", rcpt=MAILBOX):
    """One SMTP session: EHLO, MAIL, RCPT; on 250 also DATA of marked_message. Returns
    (code, text) of the RCPT reply."""
    s = smtp_client(port, source=source, host=host)
    try:
        code, text = s.ehlo()
        if code != 250:
            raise AssertionError(f"EHLO refused: {code} {text!r}")
        code, text = s.mail(sender)
        if code != 250:
            raise AssertionError(f"MAIL FROM refused: {code} {text!r}")
        code, text = s.rcpt(rcpt)
        text = text.decode("utf-8", "replace")
        if code == 250:
            dcode, dtext = s.data(marked_message(marker, sender, rcpt))
            if dcode != 250:
                raise AssertionError(f"DATA refused: {dcode} {dtext!r}")
        s.quit()
        return code, text
    finally:
        s.close()


def backend_connections(pid, port=BACKEND_PROXY_PORT):
    """Established connections of process pid to the backend port (the Postfix backend)."""
    out = subprocess.run(["ss", "-Htnp", "state", "established", f"( dport = :{port} )"],
                         capture_output=True, text=True, timeout=10).stdout
    return sum(1 for line in out.splitlines() if f"pid={pid}," in line)


def metric_sum(mx, name, labels=None):
    """Sum over every sample of name whose labels include labels (dict); 0 when none."""
    total = 0.0
    for line in mx.metrics().splitlines():
        m = re.match(r"^([A-Za-z_:][\w:]*)(\{(.*)\})?\s+(\S+)", line)
        if not m or m.group(1) != name:
            continue
        have = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        if all(have.get(k) == str(v) for k, v in (labels or {}).items()):
            total += float(m.group(4))
    return total


# ---------------------------------------------------------------------------------------------
# A sending Postfix

class SendingPostfix:
    """A real sending MTA: a private Postfix (scripts/postfix-sender) in a temporary directory,
    its own queue and log, that relays every message to relay ("host:port", e.g. mxscreen's
    listener) with queue, retries, opportunistic TLS and cached connections. settings: extra
    main.cf parameters ({name: value}), e.g. {"smtp_bind_address": "127.0.9.1"}. A context
    manager; submit() puts a message in its queue as `sendmail -C` does."""

    def __init__(self, relay, settings=None):
        self.relay = relay
        self.settings = dict(settings or {})
        self.dir = Path(tempfile.mkdtemp(prefix="mxscreen-sender-"))
        os.chmod(self.dir, 0o755)  # Postfix's daemons run as the postfix user
        self.conf = self.dir / "etc"
        self.log_path = self.dir / "postfix.log"
        self.script = SOURCE_DIR / "scripts" / "postfix-sender"

    def start(self):
        args = [f"{k}={v}" for k, v in self.settings.items()]
        result = subprocess.run([str(self.script), str(self.dir), self.relay, *args],
                                capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            raise RuntimeError(f"{self.script} failed ({result.returncode}):\n"
                               f"{result.stdout}{result.stderr}")
        return self

    def __enter__(self):
        return self.start()

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            sys.stderr.write(f"--- sending Postfix log ({self.log_path}) ---\n"
                             + "\n".join(self.log_text().splitlines()[-40:]) + "\n")
        subprocess.run([str(self.script), "--stop", str(self.dir)], capture_output=True,
                       timeout=60)
        if not os.environ.get("MXSCREEN_KEEP_TMP"):
            shutil.rmtree(self.dir, ignore_errors=True)
        return False

    def submit(self, sender, recipients, message, notify="never"):
        """Queues message (bytes, LF or CRLF lines) from sender to recipients; notify is the
        DSN NOTIFY of every recipient (sendmail -N; "never": no bounce goes back through the
        relay for a refused recipient)."""
        subprocess.run(["sendmail", "-C", str(self.conf), "-N", notify, "-f", sender, "--",
                        *recipients], input=message, check=True, capture_output=True, timeout=30)

    def queue_empty(self):
        out = subprocess.run(["postqueue", "-c", str(self.conf), "-p"], capture_output=True,
                             text=True, timeout=30).stdout
        return "Mail queue is empty" in out

    def log_text(self):
        try:
            return self.log_path.read_bytes().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""


# ---------------------------------------------------------------------------------------------
# redis-server

class RedisServer:
    """redis-server on a free loopback port, nothing saved to disk: start(), stop() (the
    port is kept for a restart), cleanup()."""

    def __init__(self):
        self.binary = shutil.which("redis-server")
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="mxscreen-redis-")
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir],
            cwd=self.dir, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        wait_listening([self.port], 10, proc=self.proc)
        return self

    def stop(self):
        stop_process(self.proc, 10)
        self.proc = None

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# smtp-sink

def smtp_sink_binary():
    for candidate in (shutil.which("smtp-sink"), "/usr/sbin/smtp-sink",
                      "/usr/lib/postfix/sbin/smtp-sink"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise RuntimeError("smtp-sink not found (package postfix)")


SinkMessage = namedtuple("SinkMessage", "path headers data")  # headers: smtp-sink's X-* dict


class SmtpSink:
    """Postfix's smtp-sink on 127.0.0.1:port writing one file per message into dump_dir.

    Runs `smtp-sink -u nobody -d DUMP_DIR/msg. 127.0.0.1:PORT 256`. smtp-sink speaks ESMTP with
    PIPELINING, 8BITMIME and XCLIENT (not the PROXY protocol): use backend.handoff "xclient"
    or "none" in front of it. A dump file holds smtp-sink's own X-Client-Addr/X-Helo-Args/
    X-Mail-Args/X-Rcpt-Args headers and a 3-line Received header, then the message as received
    (dot-unstuffed, lines ending in LF), then an empty line; messages() strips all of that.
    """

    def __init__(self, port=None, dump_dir=None, extra_args=()):
        self.port = port or free_port()
        self._own_dir = dump_dir is None
        self.dump_dir = Path(dump_dir or tempfile.mkdtemp(prefix="smtp-sink-"))
        self.dump_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dump_dir, 0o777)  # smtp-sink writes as the -u user
        self.extra_args = list(extra_args)
        self.proc = None

    def start(self, timeout=10.0):
        if self.proc is not None:
            return self
        cmd = [smtp_sink_binary()]
        if os.geteuid() == 0:
            cmd += ["-u", "nobody"]
        cmd += [*self.extra_args, "-d", f"{self.dump_dir}/msg.", f"127.0.0.1:{self.port}", "256"]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)
        wait_listening([self.port], timeout, proc=self.proc)
        return self

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        if self._own_dir and not os.environ.get("MXSCREEN_KEEP_TMP"):
            shutil.rmtree(self.dump_dir, ignore_errors=True)
        return False

    def stop(self):
        stop_process(self.proc, 5)

    def messages(self):
        """Every dumped message, oldest first, as SinkMessage(path, headers, data bytes)."""
        out = []
        files = sorted(self.dump_dir.glob("msg.*"), key=lambda p: p.stat().st_mtime_ns)
        for p in files:
            out.append(parse_sink_dump(p))
        return out

    def wait_messages(self, count, timeout=10.0):
        """Waits until at least count messages are dumped; returns messages()."""
        return wait_until(lambda: len(self.messages()) >= count and self.messages(), timeout,
                          what=f"{count} message(s) in {self.dump_dir}")


def parse_sink_dump(path):
    raw = Path(path).read_bytes()
    lines = raw.split(b"\n")
    headers = {}
    i = 0
    while i < len(lines) and lines[i].startswith(b"X-"):
        key, _, value = lines[i].decode("utf-8", "replace").partition(": ")
        headers.setdefault(key, []).append(value)
        i += 1
    if i < len(lines) and lines[i].startswith(b"Received: "):
        i += 3  # "Received: from ...", "\tby host (smtp-sink) ...", "\ttime-stamp"
    data = b"\n".join(lines[i:])
    if data.endswith(b"\n\n"):
        data = data[:-1]  # the empty line smtp-sink appends after each message
    return SinkMessage(str(path), headers, data)


def start_smtp_sink(port=None, dump_dir=None, extra_args=()):
    """Starts an SmtpSink (see there) and returns it; stop() it or use it as a context manager."""
    return SmtpSink(port, dump_dir, extra_args).start()


# ---------------------------------------------------------------------------------------------
# Config helpers

# Turns off every test that needs mxscreen's own SMTP dialogue (HELO, envelope and byte-stream
# tests), so that only connection tests run and the handoff happens right after the greet wait.
_dialogue_tests_off = None


def dialogue_tests_off():
    """{section: {key: off}} for every test the default config runs inside the dialogue, read
    from the binary's own plan (`mxscreen --check-config --plan`): with them off, only
    connection tests remain and the handoff follows the greet wait."""
    global _dialogue_tests_off
    if _dialogue_tests_off is None:
        fd, path = tempfile.mkstemp(prefix="mxscreen-plan-", suffix=".toml")
        os.close(fd)
        try:
            out = subprocess.run([mxscreen_binary(), "--check-config", "--plan", "--config", path],
                                 capture_output=True, text=True, timeout=30, check=True).stdout
        finally:
            os.unlink(path)
        off = {}
        for line in out.splitlines():
            fields = line.split()
            if fields[:1] == ["test"] and fields[2] in ("stream", "helo", "rcpt"):
                section, key = fields[4].split(".")
                off.setdefault(section, {})[key] = tomllib.loads(f"v = {fields[5]}")["v"]
        _dialogue_tests_off = off
    return {section: dict(keys) for section, keys in _dialogue_tests_off.items()}


def connection_tests_only(overrides=None):
    """dialogue_tests_off() with overrides ({section: {key: value}}, "listen" as a list)
    merged over it section by section: a config for Mxscreen() whose handoff is after greet."""
    merged = dialogue_tests_off()
    for section, body in (overrides or {}).items():
        if isinstance(body, dict) and isinstance(merged.get(section), dict):
            merged[section].update(body)
        else:
            merged[section] = body
    return merged
