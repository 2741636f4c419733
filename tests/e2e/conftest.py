# SPDX-License-Identifier: MIT
"""Shared fixtures for the end-to-end tests: they drive the real duplex
binary (path in $DUPLEX, default build/duplex), bind port 0 and read the
bound port back, and bound every wait. Processes are ended by their pid."""
import hashlib
import itertools
import os
import pathlib
import re
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def duplex_path():
    return os.environ.get("DUPLEX") or str(ROOT / "build" / "duplex")


@pytest.fixture(scope="session")
def duplex():
    path = duplex_path()
    if not os.access(path, os.X_OK):
        pytest.fail(f"duplex binary not found at {path}: run make first")
    return path


def run(args, input=None, timeout=10, **kw):
    """Runs the duplex binary with ARGS, bounded by TIMEOUT seconds."""
    if isinstance(input, str):
        input = input.encode()
    return subprocess.run([duplex_path(), *args], input=input,
                          capture_output=True, timeout=timeout, **kw)


def need(program):
    """Returns the path of a peer program; fails (not skips) when it is
    missing, since make check installs every peer the suite uses."""
    path = shutil.which(program)
    if path is None:
        pytest.fail(f"test peer '{program}' is not installed "
                    "(make check installs it)")
    return path


def run_seconds(pids):
    """The run time of every thread of PIDS, in seconds (the scheduler's
    exact figure from /proc/PID/task/TID/schedstat, not ticks)."""
    total = 0
    for pid in pids:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    total += int(f.read().split()[0])
            except OSError:
                continue
    return total / 1e9


def tree_of(pid):
    """PID and its live descendants."""
    kids = {}
    for e in os.listdir("/proc"):
        if e.isdigit():
            try:
                with open(f"/proc/{e}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(e))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, ()))
    return out


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def build_shim(tmp_path_factory, name):
    """tests/e2e/NAME.c built as a shared library; returns its path. Not
    in sanitizer builds: their runtime must come first among the libraries
    and owns the allocator, and an LD_PRELOAD shim would precede it."""
    if os.environ.get("SANITIZE"):
        pytest.skip("an LD_PRELOAD shim cannot precede a sanitizer runtime")
    cc = need("cc")
    out = tmp_path_factory.mktemp("shim") / f"{name}.so"
    src = os.path.join(os.path.dirname(__file__), f"{name}.c")
    subprocess.run([cc, "-shared", "-fPIC", "-O2", "-o", str(out), src,
                    "-ldl"], check=True, timeout=60)
    return str(out)


# ---------------------------------------------------------------------------
# duplex serve: a running server, its listeners and its counters
# ---------------------------------------------------------------------------


# Every option of duplex serve that takes its value as the next argument.
SERVE_VALUE_OPTS = {"--budget", "--budget-bytes", "--quotes",
                    "--exec-timeout", "--exec-cpu", "--exec-files",
                    "--exec-memory", "--model", "--max-conns", "--per-source",
                    "--rate", "--idle", "--lifetime", "--write-timeout",
                    "--linger", "--drain", "--allow", "--deny", "--rules",
                    "--user", "--group", "--mode", "--backlog", "--workers"}
_SERVING_RE = re.compile(r"^serving (.+) on (udp|unixgram|tcp|unix)://(.*)$")
_DROPS_RE = re.compile(r"counters: no reply:((?: [a-z-]+=\d+)*)\s*$")
_SERVED_RE = re.compile(r"counters: (.+) on ((?:udp|unixgram|tcp|unix)://.*)"
                        r": served (\d+)\s*$")

DROP_NAMES = ("source-port", "own-port", "bad-source",
              "broadcast-destination", "over-budget", "truncated",
              "no-reply-address", "service-failed", "send-failed")


def count_pairs(args):
    """The number of SERVICE ENDPOINT pairs among duplex serve ARGS."""
    positional, skip = [], False
    for a in args:
        if skip:
            skip = False
        elif a in SERVE_VALUE_OPTS:
            skip = True
        elif a.startswith("-") and a != "-":
            continue
        else:
            positional.append(a)
    return len(positional) // 2


class Listener:
    """One 'serving SERVICE on SCHEME://ADDR' line, parsed."""

    def __init__(self, service, scheme, addr):
        self.service, self.scheme, self.text = service, scheme, addr
        self.host = self.port = self.path = None
        if scheme in ("udp", "tcp"):
            host, _, port = addr.rpartition(":")
            self.host = host[1:-1] if host.startswith("[") else host
            self.port = int(port)
        else:
            self.path = addr

    @property
    def endpoint(self):
        return f"{self.scheme}://{self.text}"

    def __iter__(self):
        """(service, scheme, host, port) or (service, scheme, path)."""
        if self.path is not None:
            return iter((self.service, self.scheme, self.path))
        return iter((self.service, self.scheme, self.host, self.port))

    def __repr__(self):
        return f"Listener({self.service!r} on {self.endpoint})"


class Server:
    """A `duplex serve ARGS` process. Started with Popen; stderr goes to a
    temporary file (so its pipe can never fill and block the server);
    stdout is read, with a deadline, until there is one 'serving' line per
    SERVICE ENDPOINT pair. NETNS runs it under `ip netns exec NS` (which
    execs, so the pid is the server's own). WRAP is a command the server
    runs under (e.g. strace -f ...), which starts it as its only child:
    then `pid` is the server's, `proc` the wrapper's, and signals go to the
    server. Every wait is bounded."""

    START_TIMEOUT = 5.0

    def __init__(self, args, env=None, netns=None, listeners=None,
                 wrap=None):
        self.args = [str(a) for a in args]
        cmd = [duplex_path(), "serve", *self.args]
        if wrap is not None:
            cmd = [*wrap, *cmd]
            # LeakSanitizer cannot work under ptrace (strace): in a
            # sanitizer build it would turn a clean exit into status 1.
            env = dict(os.environ if env is None else env)
            env["ASAN_OPTIONS"] = ":".join(
                filter(None, [env.get("ASAN_OPTIONS"), "detect_leaks=0"]))
        if netns is not None:
            cmd = ["ip", "netns", "exec", netns, *cmd]
        fd, self.err_path = tempfile.mkstemp(prefix="dx-serve-", suffix=".err")
        self._err = os.fdopen(fd, "wb")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=self._err,
                                     env=env)
        self.pid = self.proc.pid
        self.returncode = None
        self.listeners = []
        want = count_pairs(self.args) if listeners is None else listeners
        try:
            self._read_listeners(want)
            if wrap is not None:
                self.pid = _only_child(self.proc.pid)
        except BaseException:
            self.kill()
            raise

    # -- start-up -----------------------------------------------------------

    def _read_listeners(self, want):
        buf = b""
        deadline = time.monotonic() + self.START_TIMEOUT
        out = self.proc.stdout
        with selectors.DefaultSelector() as sel:
            sel.register(out, selectors.EVENT_READ)
            while len(self.listeners) < want:
                left = deadline - time.monotonic()
                if left <= 0:
                    pytest.fail(f"duplex serve {self.args}: no {want} "
                                f"'serving' lines within "
                                f"{self.START_TIMEOUT} s; stdout so far "
                                f"{buf!r}; stderr: {self.stderr()!r}")
                if not sel.select(left):
                    continue
                chunk = os.read(out.fileno(), 4096)
                if not chunk:
                    self.proc.wait(timeout=2)
                    pytest.fail(f"duplex serve {self.args} exited "
                                f"{self.proc.returncode} before serving; "
                                f"stdout {buf!r}; stderr: "
                                f"{self.stderr()!r}")
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    m = _SERVING_RE.match(line.decode(errors="replace"))
                    if m:
                        self.listeners.append(Listener(*m.groups()))

    # -- what it said ---------------------------------------------------------

    def stderr(self):
        """Everything the server wrote on stderr so far."""
        with open(self.err_path, "rb") as f:
            return f.read().decode(errors="replace")

    def addr(self, i=0):
        """(host, port) of listener I."""
        l = self.listeners[i]
        if l.port is None:
            raise ValueError(f"{l} has no port")
        return (l.host, l.port)

    def port(self, i=0):
        return self.listeners[i].port

    def path(self, i=0):
        return self.listeners[i].path

    def _counter_blocks(self):
        return [m for m in (_DROPS_RE.search(line)
                            for line in self.stderr().splitlines()) if m]

    def counters(self):
        """The last 'counters: no reply:' line as {reason: count}."""
        blocks = self._counter_blocks()
        if not blocks:
            pytest.fail(f"no 'counters: no reply:' line on stderr: "
                        f"{self.stderr()!r}")
        return {k: int(v) for k, v in
                (kv.split("=") for kv in blocks[-1].group(1).split())}

    def served(self, i=0):
        """Listener I's count from the last 'counters: ... served N'."""
        want = (self.listeners[i].service, self.listeners[i].endpoint)
        found = None
        for line in self.stderr().splitlines():
            m = _SERVED_RE.search(line)
            if m and (m.group(1), m.group(2)) == want:
                found = int(m.group(3))
        if found is None:
            pytest.fail(f"no served counter for {self.listeners[i]} on "
                        f"stderr: {self.stderr()!r}")
        return found

    # -- signals and the end ----------------------------------------------------

    def running(self):
        return self.proc.poll() is None

    def usr1(self, timeout=3.0):
        """Sends SIGUSR1 and waits until a new counters line appears;
        returns counters()."""
        before = len(self._counter_blocks())
        os.kill(self.pid, signal.SIGUSR1)
        deadline = time.monotonic() + timeout
        while len(self._counter_blocks()) <= before:
            if time.monotonic() > deadline or not self.running():
                pytest.fail(f"no counters on stderr within {timeout} s of "
                            f"SIGUSR1: {self.stderr()!r}")
            time.sleep(0.01)
        return self.counters()

    def stop(self, sig=signal.SIGTERM, timeout=2.0):
        """Sends SIG, waits up to TIMEOUT s and returns the exit code. A
        server that does not exit is killed and the test fails."""
        if self.returncode is not None:
            return self.returncode
        if self.running():
            os.kill(self.pid, sig)
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"duplex serve {self.args} did not exit within "
                        f"{timeout} s of signal {sig}")
        finally:
            self._close()
        return self.returncode

    def kill(self):
        """SIGKILL by pid (teardown and failures): the server, then a
        wrapper it runs under."""
        if self.proc.poll() is None:
            for pid in dict.fromkeys((self.pid, self.proc.pid)):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        if self.returncode is None:
            self.returncode = self.proc.returncode
        self._close()

    def _close(self):
        if self.proc.stdout and not self.proc.stdout.closed:
            self.proc.stdout.close()
        if not self._err.closed:
            self._err.close()

    def cleanup(self):
        """Teardown: SIGTERM, then SIGKILL; removes the stderr file."""
        if self.proc.poll() is None:
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                pass
        self.kill()
        try:
            os.unlink(self.err_path)
        except FileNotFoundError:
            pass


def _only_child(pid, timeout=5.0):
    """The one child process of PID (a wrapper's server), waited for."""
    deadline = time.monotonic() + timeout
    while True:
        kids = []
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open(f"/proc/{d}/stat") as f:
                    text = f.read()
            except OSError:
                continue
            if int(text[text.rindex(")") + 2:].split()[1]) == pid:
                kids.append(int(d))
        if len(kids) == 1:
            return kids[0]
        if time.monotonic() > deadline:
            pytest.fail(f"process {pid} has children {kids}, not one")
        time.sleep(0.01)


@pytest.fixture
def serve(duplex):
    """Factory: serve(*ARGS, env=None, netns=None, wrap=None) starts
    `duplex serve ARGS` and returns its Server; every server is stopped at
    teardown."""
    started = []

    def start(*args, env=None, netns=None, listeners=None, wrap=None):
        srv = Server(args, env=env, netns=netns, listeners=listeners,
                     wrap=wrap)
        started.append(srv)
        return srv

    yield start
    for srv in reversed(started):
        srv.cleanup()


# ---------------------------------------------------------------------------
# Datagram helpers
# ---------------------------------------------------------------------------

def is_root():
    return os.geteuid() == 0


def have_ipv6_loopback():
    """1 when a socket can bind ::1 (the host has IPv6 loopback)."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def udp_socket(host="127.0.0.1", port=0, family=None, reuse=False):
    """A bound UDP socket (unconnected), 2 s timeout."""
    if family is None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_DGRAM)
    if reuse:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind((host, port))
    except OSError:
        s.close()
        raise
    s.settimeout(2)
    return s


def exchange(addr, data, timeout=2.0, src="127.0.0.1"):
    """Sends DATA to ADDR from a fresh socket bound to SRC; returns the
    reply bytes or None when nothing came within TIMEOUT."""
    with udp_socket(src) as s:
        s.sendto(data, addr)
        return recv_or_none(s, timeout)


def recv_or_none(sock, timeout=1.0, size=70000):
    """One datagram's bytes, or None within TIMEOUT."""
    sock.settimeout(timeout)
    try:
        return sock.recv(size)
    except socket.timeout:
        return None


def drain(sock, quiet=0.3, limit=5.0, size=70000):
    """Every datagram that arrives until QUIET s pass with none (at most
    LIMIT s in all)."""
    got, end = [], time.monotonic() + limit
    while time.monotonic() < end:
        sock.settimeout(quiet)
        try:
            got.append(sock.recv(size))
        except socket.timeout:
            break
    return got


def free_udp_port(host="127.0.0.1"):
    """A UDP port that was free a moment ago (bind port 0, close)."""
    with udp_socket(host) as s:
        return s.getsockname()[1]


def raw_udp_packet(src, sport, dst, dport, payload):
    """An IPv4 + UDP datagram built by hand (checksums: IP by the kernel,
    UDP none, which IPv4 allows)."""
    ulen = 8 + len(payload)
    udp = struct.pack("!HHHH", sport, dport, ulen, 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + ulen, 0, 0, 64,
                     socket.IPPROTO_UDP, 0, socket.inet_aton(src),
                     socket.inet_aton(dst))
    return ip + udp


RAW_SEND_SCRIPT = (
    "import socket,struct,sys\n"
    "src,sport,dst,dport,payload=sys.argv[1],int(sys.argv[2]),sys.argv[3],"
    "int(sys.argv[4]),sys.argv[5].encode()\n"
    "ulen=8+len(payload)\n"
    "udp=struct.pack('!HHHH',sport,dport,ulen,0)+payload\n"
    "ip=struct.pack('!BBHHHBBH4s4s',0x45,0,20+ulen,0,0,64,17,0,"
    "socket.inet_aton(src),socket.inet_aton(dst))\n"
    "r=socket.socket(socket.AF_INET,socket.SOCK_RAW,socket.IPPROTO_RAW)\n"
    "r.sendto(ip+udp,(dst,0))\n"
)


def send_raw_udp(src, sport, dst, dport, payload=b"x", netns=None):
    """Sends one spoofed IPv4 UDP datagram (root only). With NETNS, from
    inside that namespace (a python process under `ip netns exec`)."""
    if netns is None:
        pkt = raw_udp_packet(src, sport, dst, dport, payload)
        with socket.socket(socket.AF_INET, socket.SOCK_RAW,
                           socket.IPPROTO_RAW) as r:
            r.sendto(pkt, (dst, 0))
        return
    p = subprocess.run(["ip", "netns", "exec", netns, "/usr/bin/python3",
                        "-c", RAW_SEND_SCRIPT, src, str(sport), dst,
                        str(dport), payload.decode()],
                       capture_output=True, timeout=10)
    assert p.returncode == 0, p.stderr.decode(errors="replace")


_netns_seq = itertools.count()


@pytest.fixture
def netns():
    """A fresh network namespace with lo up, deleted at teardown. Skips
    when not root or when the kernel does not permit `ip netns add`."""
    if not is_root():
        pytest.skip("network namespaces need root")
    if shutil.which("ip") is None:
        pytest.skip("iproute2 'ip' is not installed")
    name = f"dxt-{os.getpid()}-{next(_netns_seq)}"
    p = subprocess.run(["ip", "netns", "add", name], capture_output=True,
                       timeout=10)
    if p.returncode != 0:
        pytest.skip(f"'ip netns add' is not permitted here: "
                    f"{p.stderr.decode(errors='replace').strip()}")
    try:
        p = subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"],
                           capture_output=True, timeout=10)
        assert p.returncode == 0, p.stderr
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True,
                       timeout=10)


def netns_socket(ns, family=socket.AF_INET, kind=socket.SOCK_STREAM):
    """A socket made inside namespace NS, usable from this process: a
    thread of its own enters NS with setns(2), makes the socket and ends
    (a socket stays in the namespace it was made in)."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    out = []

    def make():
        fd = os.open(f"/run/netns/{ns}", os.O_RDONLY | os.O_CLOEXEC)
        try:
            if libc.setns(fd, 0x40000000) != 0:  # CLONE_NEWNET
                out.append(OSError(ctypes.get_errno(), "setns"))
                return
        finally:
            os.close(fd)
        out.append(socket.socket(family, kind))

    t = threading.Thread(target=make, daemon=True)
    t.start()
    t.join(10)
    if not out or isinstance(out[0], Exception):
        pytest.fail(f"no socket in namespace {ns}: {out}")
    return out[0]


def in_netns(ns, args, **kw):
    """Runs ARGS inside namespace NS (bounded by kw timeout, default 10)."""
    kw.setdefault("timeout", 10)
    return subprocess.run(["ip", "netns", "exec", ns, *args],
                          capture_output=True, **kw)


def chargen_pattern(nbytes):
    """The first NBYTES of chargen as xinetd sends it, which RFC 864's
    example also shows: 72 characters of the ring '!'..'}' (93) and CR LF
    per line, line k starting at ring[(k mod 95) mod 93]."""
    out, k = bytearray(), 0
    while len(out) < nbytes:
        start = (k % 95) % 93
        out += bytes(0x21 + (start + c) % 93 for c in range(72)) + b"\r\n"
        k += 1
    return bytes(out[:nbytes])


def nft(ns, *args):
    """Runs nft ARGS inside namespace NS; fails the test if nft does."""
    p = in_netns(ns, [need("nft"), *args])
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    return p.stdout.decode()


# ---------------------------------------------------------------------------
# /proc readers: a server's threads and its listeners' accept queues
# ---------------------------------------------------------------------------

def thread_ids(pid):
    """The thread ids of process PID (/proc/PID/task); [] once it is
    gone."""
    try:
        return [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        return []


def listening_row(port):
    """The columns of /proc/net/tcp (or tcp6) for the TCP socket listening
    on PORT, or None when nothing listens there."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            col = row.split()
            if int(col[1].rsplit(":", 1)[1], 16) == port and col[3] == "0A":
                return col
    return None


def accept_queue(port):
    """How many connections wait in the accept queue of the TCP listener
    on PORT (IPv4 or IPv6): its rx_queue in /proc/net/tcp, which for a
    listening socket is the accept backlog. None when nothing listens."""
    col = listening_row(port)
    return None if col is None else int(col[4].split(":")[1], 16)


def pump(s, data, chunk=65536):
    """Sends DATA on S from a thread, then half-closes."""
    def run():
        for off in range(0, len(data), chunk):
            s.sendall(data[off:off + chunk])
        s.shutdown(socket.SHUT_WR)
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def echo_held_back(s, data, while_held=None, settle=1.0):
    """A peer of an echo server that sends DATA on S and reads nothing:
    after SETTLE s, less than half of DATA may have got through (TCP holds
    the sender back, not server memory); WHILE_HELD() is called then;
    finally everything is read back and must be DATA, byte for byte."""
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16)
    sent = [0]

    def send():
        try:
            for off in range(0, len(data), 65536):
                sent[0] += s.send(data[off:off + 65536])
        except OSError:
            pass
    t = threading.Thread(target=send, daemon=True)
    t.start()
    time.sleep(settle)
    # What TCP buffers both ways (tcp_rmem allows a receive buffer of up
    # to 32 MiB here), not what the server holds.
    assert sent[0] < len(data) // 2, f"{sent[0]} bytes went unread"
    if while_held is not None:
        while_held()
    h, got = hashlib.sha256(), 0
    while got < len(data):
        b = s.recv(1 << 20)
        assert b, f"end of file after {got} bytes"
        h.update(b)
        got += len(b)
    t.join(timeout=30)
    assert h.digest() == hashlib.sha256(data).digest()
