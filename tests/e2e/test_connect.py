# SPDX-License-Identifier: MIT
"""End-to-end tests of the stream client, `duplex connect`: half-close
(standard input's end becomes shutdown(SHUT_WR) and the reply is still
read), --no-shutdown, a peer that closes first or resets, refused and
timed-out connects, --idle, --send-only and --recv-only, bounded memory
under backpressure, the -z port scan over TCP and UDP, bad input and
--trace. Peers are python sockets on 127.0.0.1 port 0 (or unix sockets in
a temporary directory) and socat; every wait is bounded and every process
is ended by its pid."""
import calendar
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import (duplex_path, have_ipv6_loopback, in_netns, need, nft,
                      run, udp_socket)


# Sanitizer builds run slower (make check SANITIZE=...).
SLOW = float(os.environ.get("DUPLEX_TIME_SCALE", "1"))


def tcp(port, host="127.0.0.1"):
    return f"tcp://{host}:{port}"


def one_error_line(p):
    lines = p.stderr.decode(errors="replace").strip().splitlines()
    assert len(lines) == 1, f"expected one stderr line, got {lines}"
    return lines[0]


def digest_line(data):
    return f"{len(data)} {hashlib.sha256(data).hexdigest()}\n".encode()


# ---------------------------------------------------------------------------
# Peers
# ---------------------------------------------------------------------------

class Peer:
    """A python stream server for one connection: listens on 127.0.0.1
    port 0 (or on the unix PATH), accepts in a thread and runs
    HANDLER(conn), whose return value becomes .result. join() waits a
    bounded time and re-raises what the handler raised."""

    def __init__(self, handler, path=None, backlog=1, accept=True):
        family = socket.AF_UNIX if path else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.bind(path or ("127.0.0.1", 0))
        self.sock.listen(backlog)
        self.endpoint = (f"unix://{path}" if path else
                         tcp(self.sock.getsockname()[1]))
        self.port = None if path else self.sock.getsockname()[1]
        self.handler, self.result, self.error = handler, None, None
        self.release = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        if accept:
            self.thread.start()

    def _run(self):
        self.sock.settimeout(10)
        try:
            conn, _ = self.sock.accept()
            with conn:
                conn.settimeout(10)
                self.result = self.handler(conn, self)
        except Exception as e:  # reported by join()
            self.error = e

    def join(self, timeout=10):
        self.release.set()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "peer thread did not finish"
        if self.error is not None:
            raise self.error
        return self.result

    def close(self):
        self.release.set()
        if self.thread.is_alive():
            self.thread.join(10)
        self.sock.close()


@pytest.fixture
def peer():
    """Factory: peer(HANDLER, path=None, ...) starts a Peer; all are closed
    at teardown."""
    started = []

    def start(handler, **kw):
        p = Peer(handler, **kw)
        started.append(p)
        return p

    yield start
    for p in started:
        p.close()


def read_to_eof(conn):
    chunks = []
    while True:
        b = conn.recv(1 << 16)
        if not b:
            return b"".join(chunks)
        chunks.append(b)


def digest_after_eof(conn, peer):
    """Reads to end of file, waits a little (the reply comes well after
    the client's FIN), answers with the byte count and SHA-256, closes."""
    data = read_to_eof(conn)
    time.sleep(0.1)
    conn.sendall(digest_line(data))
    return data


def no_eof_then_close(conn, peer):
    """Reads for 1 s; returns (data, saw_eof) and closes."""
    conn.settimeout(1.0)
    data, saw_eof = b"", False
    try:
        while True:
            b = conn.recv(4096)
            if not b:
                saw_eof = True
                break
            data += b
    except socket.timeout:
        pass
    conn.sendall(b"closing\n")
    return data, saw_eof


def hold_open(conn, peer):
    """Keeps the connection open, silent, until the test releases it."""
    peer.release.wait(10)


def kill_pid(proc):
    if proc.poll() is None:
        try:
            os.kill(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=5)


def connect_open_stdin(args, timeout=5.0, **kw):
    """Runs `duplex connect ARGS` with a standard input pipe that stays
    open (never written, never closed while it runs). Returns (returncode,
    stdout, stderr, seconds)."""
    r, w = os.pipe()
    t0 = time.monotonic()
    proc = subprocess.Popen([duplex_path(), "connect", *args], stdin=r,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            **kw)
    os.close(r)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_pid(proc)
        pytest.fail(f"duplex connect {args} still ran after {timeout} s "
                    "with standard input open")
    finally:
        os.close(w)
        kill_pid(proc)
    return proc.returncode, out, err, time.monotonic() - t0


# ---------------------------------------------------------------------------
# Half-close
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("size", [0, 1, 65536, 1 << 20])
def test_connect_half_close(duplex, peer, size):
    """The server answers only after it read end of file: the answer
    arriving proves stdin's end became shutdown(SHUT_WR) and the socket
    was still read after it."""
    data = os.urandom(size)
    srv = peer(digest_after_eof)
    p = run(["connect", srv.endpoint], input=data, timeout=30)
    assert p.returncode == 0, p.stderr
    assert p.stdout == digest_line(data)
    assert p.stderr == b""
    assert srv.join() == data


def test_connect_unix(duplex, peer, tmp_path):
    data = os.urandom(100000)
    srv = peer(digest_after_eof, path=str(tmp_path / "s.sock"))
    p = run(["connect", srv.endpoint], input=data, timeout=30)
    assert p.returncode == 0, p.stderr
    assert p.stdout == digest_line(data)
    assert srv.join() == data


def test_connect_socat_peer(duplex, tmp_path):
    """A real program as the peer: socat runs sha256sum on the
    connection, which prints only once its input (our FIN) has ended."""
    socat = need("socat")
    err_path = tmp_path / "socat.err"
    with open(err_path, "wb") as err:
        proc = subprocess.Popen([socat, "-d", "-d",
                                 "TCP-LISTEN:0,bind=127.0.0.1",
                                 "EXEC:sha256sum"],
                                stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=err)
    try:
        port, deadline = None, time.monotonic() + 5
        while port is None and time.monotonic() < deadline:
            m = re.search(r"listening on AF=2 127\.0\.0\.1:(\d+)",
                          err_path.read_text(errors="replace"))
            port = int(m.group(1)) if m else time.sleep(0.02)
        assert port, f"socat did not listen: {err_path.read_text()}"
        data = os.urandom(300000)
        p = run(["connect", tcp(port)], input=data, timeout=15)
        assert p.returncode == 0, p.stderr
        want = hashlib.sha256(data).hexdigest()
        assert p.stdout.decode().split()[0] == want
        proc.wait(timeout=5)
    finally:
        kill_pid(proc)


def test_connect_no_shutdown(duplex, peer):
    """--no-shutdown: the server gets the data but never end of file; the
    command ends when the server closes."""
    srv = peer(no_eof_then_close)
    p = run(["connect", "--no-shutdown", srv.endpoint], input=b"hello",
            timeout=10)
    assert p.returncode == 0, p.stderr
    assert p.stdout == b"closing\n"
    data, saw_eof = srv.join()
    assert data == b"hello"
    assert not saw_eof


def test_connect_peer_closes_first(duplex, peer):
    """The peer talks and closes while standard input stays open: the
    command writes what came and ends at once, exit 0."""
    srv = peer(lambda conn, peer: conn.sendall(b"bye\n"))
    rc, out, err, secs = connect_open_stdin([srv.endpoint])
    assert rc == 0, err
    assert out == b"bye\n"
    assert secs < 3
    srv.join()


def test_connect_peer_closes_first_after_much_output(duplex, peer):
    """1 MiB from a peer that then closes, through the 64 KiB buffer to a
    pipe: every byte arrives, in order."""
    data = os.urandom(1 << 20)
    srv = peer(lambda conn, peer: conn.sendall(data))
    rc, out, err, _ = connect_open_stdin([srv.endpoint], timeout=15)
    assert rc == 0, err
    assert hashlib.sha256(out).digest() == hashlib.sha256(data).digest()
    srv.join()


def test_connect_reset_exit_1(duplex, peer):
    def reset(conn, peer):
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                        b"\x01\x00\x00\x00\x00\x00\x00\x00")

    srv = peer(reset)
    rc, out, err, _ = connect_open_stdin([srv.endpoint])
    assert rc == 1
    line = err.decode().strip()
    assert line.startswith("duplex: ") and "reset" in line, line
    assert srv.endpoint in line
    srv.join()


# ---------------------------------------------------------------------------
# Connect failures
# ---------------------------------------------------------------------------

def closed_tcp_port():
    """A port bound (so no one else takes it) but not listening: a
    connect to it is refused. Returns (socket, port)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    return s, s.getsockname()[1]


def test_connect_refused_exit_4(duplex):
    s, port = closed_tcp_port()
    with s:
        p = run(["connect", tcp(port)], input=b"x", timeout=10)
    assert p.returncode == 4
    line = one_error_line(p)
    assert f"'tcp://127.0.0.1:{port}'" in line and "refused" in line, line


def test_connect_missing_unix_socket_exit_4(duplex, tmp_path):
    p = run(["connect", f"unix://{tmp_path}/nobody.sock"], timeout=10)
    assert p.returncode == 4
    assert "nobody.sock" in one_error_line(p)


@pytest.fixture
def full_backlog(tmp_path):
    """Listeners whose accept queue is full (backlog 0, filled by clients
    never accepted): on Linux a TCP SYN to them is dropped and a unix
    connect waits, so a connect can only time out. Yields (tcp endpoint,
    unix endpoint)."""
    socks = []
    lt = socket.socket()
    lt.bind(("127.0.0.1", 0))
    lt.listen(0)
    path = str(tmp_path / "full.sock")
    lu = socket.socket(socket.AF_UNIX)
    lu.bind(path)
    lu.listen(0)
    socks += [lt, lu]
    for _ in range(3):
        for family, addr in ((socket.AF_INET, lt.getsockname()),
                             (socket.AF_UNIX, path)):
            c = socket.socket(family)
            c.setblocking(False)
            socks.append(c)
            try:
                c.connect(addr)
            except (BlockingIOError, InterruptedError):
                pass
    time.sleep(0.1)
    yield tcp(lt.getsockname()[1]), f"unix://{path}"
    for s in socks:
        s.close()


@pytest.mark.parametrize("kind", [0, 1], ids=["tcp", "unix"])
def test_connect_timeout_exit_3(duplex, full_backlog, kind):
    ep = full_backlog[kind]
    t0 = time.monotonic()
    p = run(["connect", "--timeout", "300ms", ep], input=b"x", timeout=10)
    secs = time.monotonic() - t0
    assert p.returncode == 3, p.stderr
    assert f"'{ep}'" in one_error_line(p)
    assert 0.25 <= secs < 3, secs


# ---------------------------------------------------------------------------
# --idle
# ---------------------------------------------------------------------------

def test_connect_idle_exit_3(duplex, peer):
    srv = peer(hold_open)
    rc, out, err, secs = connect_open_stdin(["--idle", "300ms",
                                             srv.endpoint])
    assert rc == 3, err
    assert "idle" in err.decode()
    assert 0.25 <= secs < 3, secs
    srv.join()


# ---------------------------------------------------------------------------
# --as: the answer of time and daytime, checked (S39: hostile servers)
# ---------------------------------------------------------------------------

def test_connect_as_time_and_daytime_of_duplex(duplex, serve):
    srv = serve("time", "tcp://127.0.0.1:0", "daytime", "tcp://127.0.0.1:0")
    rc, out, err, _ = connect_open_stdin(["--as", "time",
                                          tcp(srv.port(0))])
    assert rc == 0, err
    m = re.match(rb"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)\n$", out)
    assert m, out
    when = calendar.timegm(time.strptime(m.group(1).decode(),
                                         "%Y-%m-%dT%H:%M:%SZ"))
    assert abs(when - time.time()) <= 5
    rc, out, err, _ = connect_open_stdin(["--as", "daytime",
                                          tcp(srv.port(1))])
    assert rc == 0, err
    assert re.match(rb"^\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}\r\n$",
                    out), out


def sends(data):
    """A peer handler that sends DATA, then closes."""
    def handler(conn, peer):
        conn.sendall(data)
    return handler


@pytest.mark.parametrize("service,data,shown", [
    ("time", b"\x00\x00\x00\x01", b"2036-02-07T06:28:17Z\n"),
    ("time", b"\x83\xaa\x7e\x80", b"1970-01-01T00:00:00Z\n"),
    ("time", b"abc", None),
    ("time", b"abcde", None),
    ("time", b"", None),
    ("daytime", b"Thu Jan  1 00:00:00 1970\r\n",
     b"Thu Jan  1 00:00:00 1970\r\n"),
    ("daytime", b"x" * 1025, None),
    ("daytime", b"\xff\xfe\r\n", None),
], ids=["after-wrap", "epoch", "3-bytes", "5-bytes", "empty", "daytime",
        "daytime-1025", "daytime-binary"])
def test_connect_as_checks_the_answer(duplex, peer, service, data, shown):
    """S39: a time answer is exactly 4 bytes, read past the 2036 wrap; a
    daytime answer is text of at most 1 KiB; anything else is one error
    line, exit 1 and nothing on standard output."""
    srv = peer(sends(data))
    rc, out, err, _ = connect_open_stdin(["--as", service, srv.endpoint])
    if shown is not None:
        assert (rc, out) == (0, shown), err
    else:
        assert rc == 1 and out == b"", (rc, out, err)
        line = err.decode().strip()
        assert "not an RFC 86" in line or "not daytime text" in line, line
        assert srv.endpoint in line
    srv.join()


def test_connect_as_daytime_stops_an_endless_stream(duplex, peer):
    """S39: a server that streams without end (here up to 64 MiB or until
    the client goes) is cut off at the cap: exit 1 within 1 s."""
    def endless(conn, peer):
        try:
            for _ in range(1024):
                conn.sendall(b"x" * 65536)
        except OSError:
            pass

    srv = peer(endless)
    rc, out, err, secs = connect_open_stdin(["--as", "daytime",
                                             srv.endpoint])
    assert rc == 1 and out == b"", (rc, err)
    assert "more than 1024 bytes" in err.decode(), err
    assert secs < 1.0, secs
    srv.join()


def silent_from_accept(conn, peer):
    """Says nothing until the test releases it; returns when it accepted
    (time.monotonic())."""
    accepted = time.monotonic()
    peer.release.wait(10)
    return accepted


def test_connect_as_silent_server_exits_at_the_idle_limit(duplex, peer):
    """S39: a server that accepts and says nothing: exit 3 at --idle (1 s)
    within 10%, timed from the server's accept to the client's exit, so
    that starting the process does not count."""
    srv = peer(silent_from_accept)
    rc, out, err, _ = connect_open_stdin(["--as", "time", "--idle", "1s",
                                          srv.endpoint])
    ended = time.monotonic()
    assert rc == 3 and out == b"", (rc, err)
    assert "no answer" in err.decode(), err
    held = ended - srv.join()
    assert 0.9 <= held <= 1.1 * SLOW, f"exit {held:.3f} s after the accept"


def test_connect_as_reset_mid_answer(duplex, peer):
    """S39: two bytes of a time answer, then a reset: exit 1, at once."""
    def half_then_reset(conn, peer):
        conn.sendall(b"\x83\xaa")
        time.sleep(0.1)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                        b"\x01\x00\x00\x00\x00\x00\x00\x00")

    srv = peer(half_then_reset)
    rc, out, err, secs = connect_open_stdin(["--as", "time", srv.endpoint])
    assert rc == 1 and out == b"", (rc, err)
    assert "reset" in err.decode(), err
    assert secs < 2, secs
    srv.join()


FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"


@pytest.mark.parametrize("start,raw_max,shown", [
    ("2036-02-07 06:28:10", 0xFFFFFFFF, "2036-02-07T06:28:1"),
    ("2036-02-07 06:28:20", 60, "2036-02-07T06:28:"),
], ids=["before-wrap", "after-wrap"])
def test_time_across_the_2036_wrap(duplex, serve, start, raw_max, shown):
    """S39: the time server under libfaketime, its clock a few seconds
    before and after 2036-02-07T06:28:16Z: the count it sends is seconds
    since 1900 modulo 2^32 (just under 2^32 before, small after), and
    `connect --as time` (the era pivot) reads both as that morning."""
    if os.environ.get("SANITIZE"):
        pytest.skip("libfaketime (LD_PRELOAD) cannot precede a sanitizer "
                    "runtime")
    if not os.path.exists(FAKETIME_LIB):
        pytest.fail("libfaketime is not installed (make check installs "
                    "the faketime package)")
    env = dict(os.environ, LD_PRELOAD=FAKETIME_LIB, FAKETIME="@" + start,
               FAKETIME_DONT_FAKE_MONOTONIC="1", TZ="UTC")
    srv = serve("time", "tcp://127.0.0.1:0", env=env)
    with socket.create_connection(("127.0.0.1", srv.port()), 5) as c:
        raw = c.recv(8)
    assert len(raw) == 4, raw
    count = int.from_bytes(raw, "big")
    assert raw_max - 60 <= count <= raw_max, hex(count)
    rc, out, err, _ = connect_open_stdin(["--as", "time",
                                          tcp(srv.port())])
    assert rc == 0, err
    assert out.decode().startswith(shown), out


def test_connect_as_bad_combinations(duplex):
    for args in (["--as", "qotd"], ["--as", "time", "--send-only"],
                 ["--as", "time", "--no-shutdown"], ["-z", "--as", "time"]):
        p = run(["connect", *args, tcp(9)])
        assert p.returncode == 2, (args, p)
        assert one_error_line(p).startswith("duplex: connect: "), args


def test_connect_idle_reset_by_traffic(duplex, peer):
    """A byte every 100 ms keeps a 500 ms --idle from expiring."""
    def trickle(conn, peer):
        for _ in range(10):
            conn.sendall(b"x")
            time.sleep(0.1)

    srv = peer(trickle)
    rc, out, err, secs = connect_open_stdin(["-i", "500ms", srv.endpoint])
    assert rc == 0, err
    assert out == b"x" * 10
    assert secs >= 0.9
    srv.join()


# ---------------------------------------------------------------------------
# --send-only and --recv-only
# ---------------------------------------------------------------------------

def test_connect_send_only(duplex, peer):
    """Standard input reaches the server with end of file; its reply is
    read and dropped, nothing is written to standard output."""
    data = os.urandom(200000)
    srv = peer(digest_after_eof)
    p = run(["connect", "--send-only", srv.endpoint], input=data,
            timeout=15)
    assert p.returncode == 0, p.stderr
    assert p.stdout == b""
    assert srv.join() == data


def test_connect_recv_only(duplex, peer):
    """Standard input is not read, and the server sees end of file at
    once; what it then sends is written out."""
    def eof_then_talk(conn, peer):
        got = read_to_eof(conn)
        conn.sendall(b"hello after your FIN\n")
        return got

    srv = peer(eof_then_talk)
    p = run(["connect", "--recv-only", srv.endpoint],
            input=b"must not be sent", timeout=10)
    assert p.returncode == 0, p.stderr
    assert p.stdout == b"hello after your FIN\n"
    assert srv.join() == b""


# ---------------------------------------------------------------------------
# Backpressure: a fast side and a slow side never grow memory
# ---------------------------------------------------------------------------

def peak_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    pytest.fail("no VmHWM in /proc/PID/status")


BIG = 16 << 20


@pytest.fixture(scope="module")
def idle_rss_kib():
    """The resident size of a `duplex connect` that has nothing to move:
    the bound below is growth over it, so that a build whose runtime is
    bigger (ASan maps some 6 MiB of its own) is held to the same 6 MiB."""
    with socket.create_server(("127.0.0.1", 0)) as lsn:
        proc = subprocess.Popen([duplex_path(), "connect",
                                 "tcp://127.0.0.1:%d" % lsn.getsockname()[1]],
                                stdin=subprocess.PIPE,
                                stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            time.sleep(0.5)
            return peak_rss_kib(proc.pid)
        finally:
            kill_pid(proc)


def test_connect_backpressure_slow_peer(duplex, peer, tmp_path,
                                        idle_rss_kib):
    """16 MiB from a file (always readable) to a server that reads
    nothing for a second: the command's peak memory stays far below the
    data (the kernel's socket buffers hold a few MiB, the command 64
    KiB)."""
    data = os.urandom(BIG)
    src = tmp_path / "big"
    src.write_bytes(data)
    gate = threading.Event()

    def slow(conn, peer):
        gate.wait(10)
        return digest_after_eof(conn, peer)

    srv = peer(slow)
    with open(src, "rb") as f:
        proc = subprocess.Popen([duplex_path(), "connect", srv.endpoint],
                                stdin=f, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
    try:
        time.sleep(1.0)
        peak = peak_rss_kib(proc.pid)
        gate.set()
        out, err = proc.communicate(timeout=30)
    finally:
        gate.set()
        kill_pid(proc)
    assert proc.returncode == 0, err
    assert out == digest_line(data)
    assert peak - idle_rss_kib < 6 * 1024, \
        f"peak RSS {peak} KiB (idle {idle_rss_kib}) while the peer stalled"
    srv.join()


def test_connect_backpressure_slow_stdout(duplex, peer, idle_rss_kib):
    """16 MiB from the server while nobody reads standard output for a
    second: memory stays bounded, and then every byte arrives."""
    data = os.urandom(BIG)
    srv = peer(lambda conn, peer: conn.sendall(data))
    r, w = os.pipe()
    proc = subprocess.Popen([duplex_path(), "connect", srv.endpoint],
                            stdin=r, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    os.close(r)
    try:
        time.sleep(1.0)
        peak = peak_rss_kib(proc.pid)
        out, err = proc.communicate(timeout=30)
    finally:
        os.close(w)
        kill_pid(proc)
    assert proc.returncode == 0, err
    assert hashlib.sha256(out).digest() == hashlib.sha256(data).digest()
    assert peak - idle_rss_kib < 6 * 1024, \
        f"peak RSS {peak} KiB (idle {idle_rss_kib}) while stdout stalled"
    srv.join()


# ---------------------------------------------------------------------------
# -z: port scans
# ---------------------------------------------------------------------------

def reserved_tcp_block(n):
    """N consecutive ports on 127.0.0.1, each held by a bound socket that
    does not listen (so a connect is refused and no one else can listen
    there). Returns (first port, sockets)."""
    for _ in range(100):
        first = socket.socket()
        first.bind(("127.0.0.1", 0))
        base, socks = first.getsockname()[1], [first]
        try:
            for i in range(1, n):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", base + i))
            return base, socks
        except OSError:
            for s in socks:
                s.close()
    pytest.fail(f"no {n} consecutive free TCP ports found")


SCAN_LINE = re.compile(r"^(\S+) (\d+)/(tcp|udp) (open|closed|filtered|"
                       r"open\|filtered)(?: (\S+))?$")


def scan_lines(p):
    lines = p.stdout.decode().splitlines()
    parsed = [SCAN_LINE.match(line) for line in lines]
    assert all(parsed), lines
    return [(m.group(1), int(m.group(2)), m.group(3), m.group(4))
            for m in parsed]


def test_scan_tcp_range_finds_the_one_open_port(duplex):
    base, socks = reserved_tcp_block(5)
    try:
        socks[2].listen(8)
        p = run(["connect", "-z", f"tcp://127.0.0.1:{base}-{base + 4}"],
                timeout=15)
    finally:
        for s in socks:
            s.close()
    assert p.returncode == 0, p.stderr
    assert scan_lines(p) == [
        ("127.0.0.1", base + i, "tcp", "open" if i == 2 else "closed")
        for i in range(5)]


def test_scan_tcp_nothing_open_exit_1(duplex):
    base, socks = reserved_tcp_block(3)
    try:
        p = run(["connect", "-z", f"tcp://127.0.0.1:{base}-{base + 2}"],
                timeout=15)
    finally:
        for s in socks:
            s.close()
    assert p.returncode == 1
    assert [state for *_, state in scan_lines(p)] == ["closed"] * 3


def test_scan_tcp_filtered(duplex, full_backlog):
    """A SYN that is dropped: no answer within the timeout."""
    port = int(full_backlog[0].rsplit(":", 1)[1])
    t0 = time.monotonic()
    p = run(["connect", "-z", "-w", "300ms", full_backlog[0]], timeout=10)
    assert p.returncode == 1
    assert scan_lines(p) == [("127.0.0.1", port, "tcp", "filtered")]
    assert time.monotonic() - t0 >= 0.25


def test_scan_names_the_service(duplex):
    p = run(["connect", "-z", "tcp://127.0.0.1:7"], timeout=10)
    assert re.match(rb"^127\.0\.0\.1 7/tcp (open|closed|filtered) echo\n$",
                    p.stdout), p.stdout


def test_scan_ipv6(duplex):
    if not have_ipv6_loopback():
        pytest.skip("no IPv6 loopback")
    with socket.socket(socket.AF_INET6) as s:
        s.bind(("::1", 0))
        s.listen(4)
        port = s.getsockname()[1]
        p = run(["connect", "-z", f"tcp://[::1]:{port}"], timeout=10)
    assert p.returncode == 0, p.stderr
    assert scan_lines(p) == [("::1", port, "tcp", "open")]


def reserved_udp_block(n, silent=()):
    """N consecutive UDP ports on 127.0.0.1, each held by a bound socket
    connected to 127.0.0.1:9: the kernel gives such a socket only
    datagrams from that address, so a probe from anywhere else finds no
    socket and gets ICMP port unreachable, a closed port no one else can
    open. The ports at the indexes in SILENT are left unconnected: they
    take any datagram and never answer. Returns (first port, sockets)."""
    for _ in range(100):
        first = udp_socket()
        base, socks = first.getsockname()[1], [first]
        try:
            for i in range(1, n):
                socks.append(udp_socket(port=base + i))
            for i, s in enumerate(socks):
                if i not in silent:
                    s.connect(("127.0.0.1", 9))
            return base, socks
        except OSError:
            for s in socks:
                s.close()
    pytest.fail(f"no {n} consecutive free UDP ports found")


def test_scan_udp_closed(duplex):
    base, socks = reserved_udp_block(1)
    with socks[0]:
        p = run(["connect", "-z", f"udp://127.0.0.1:{base}"], timeout=10)
    assert p.returncode == 1
    assert scan_lines(p) == [("127.0.0.1", base, "udp", "closed")]


def test_scan_udp_silent_is_open_filtered(duplex):
    with udp_socket() as s:
        port = s.getsockname()[1]
        t0 = time.monotonic()
        p = run(["connect", "-z", "--timeout", "300ms",
                 f"udp://127.0.0.1:{port}"], timeout=10)
        secs = time.monotonic() - t0
        assert s.recv(100) == b""  # the probe: one empty datagram
    assert p.returncode == 0, p.stderr
    assert scan_lines(p) == [("127.0.0.1", port, "udp", "open|filtered")]
    assert secs >= 0.25


def test_scan_udp_reply_is_open(duplex):
    with udp_socket() as s:
        port = s.getsockname()[1]

        def answer():
            try:
                _, addr = s.recvfrom(100)
                s.sendto(b"here", addr)
            except OSError:
                pass

        t = threading.Thread(target=answer, daemon=True)
        t.start()
        p = run(["connect", "-z", "-w", "2s", f"udp://127.0.0.1:{port}"],
                timeout=10)
        t.join(5)
    assert p.returncode == 0, p.stderr
    assert scan_lines(p) == [("127.0.0.1", port, "udp", "open")]


def test_scan_udp_range_mixed(duplex):
    """One silent listener among closed ports: exactly it is
    open|filtered, never a false open."""
    base, socks = reserved_udp_block(5, silent={3})
    try:
        p = run(["connect", "-z", "-w", "300ms",
                 f"udp://127.0.0.1:{base}-{base + 4}"], timeout=10)
    finally:
        for s in socks:
            s.close()
    assert p.returncode == 0, p.stderr
    assert scan_lines(p) == [
        ("127.0.0.1", base + i, "udp", "open|filtered" if i == 3
         else "closed") for i in range(5)]


# ---------------------------------------------------------------------------
# Bad input, help, --trace
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("args,says", [
    (["-z", "tcp://127.0.0.1:8000-"], "8000-"),
    (["-z", "tcp://127.0.0.1:9-8"], "9-8"),
    (["-z", "tcp://127.0.0.1:1-2-3"], "1-2-3"),
    (["-z", "tcp://127.0.0.1:1-70000"], "1-70000"),
    (["tcp://127.0.0.1:8000-8010"], "-z"),
    (["tcp://x:70000"], "70000"),
    (["udp://127.0.0.1:53"], "duplex send"),
    (["unixgram:///tmp/x.sock"], "duplex send"),
    (["-z", "unix:///tmp/x.sock"], "unix:///tmp/x.sock"),
    (["--send-only", "--recv-only", "tcp://127.0.0.1:1"], "--recv-only"),
    (["-z", "--idle", "1s", "tcp://127.0.0.1:1"], "-z"),
    (["--timeout", "soon", "tcp://127.0.0.1:1"], "soon"),
    (["--idle", "0", "tcp://127.0.0.1:1"], "'0'"),
    (["tcp://127.0.0.1"], "tcp://127.0.0.1"),
    ([], "connect"),
    (["tcp://127.0.0.1:1", "extra"], "connect"),
])
def test_connect_bad_input_exit_2(duplex, args, says):
    p = run(["connect", *args], input=b"", timeout=5)
    assert p.returncode == 2, (args, p.stderr)
    line = one_error_line(p)
    assert line.startswith("duplex: "), line
    assert says in line, line
    assert p.stdout == b""


def test_connect_help(duplex):
    p = run(["connect", "--help"], timeout=5)
    assert p.returncode == 0
    text = p.stdout.decode()
    assert text.startswith("usage: duplex connect")
    for word in ("--send-only", "--recv-only", "--no-shutdown", "--idle",
                 "-z", "exit status"):
        assert word in text


def trace_lines(stderr):
    return [line[len("trace: "):] for line in stderr.splitlines()
            if line.startswith("trace: ")]


def find_in_order(lines, patterns):
    found, start = [], 0
    for pat in patterns:
        for i in range(start, len(lines)):
            m = re.search(pat, lines[i])
            if m:
                found.append(m)
                start = i + 1
                break
        else:
            pytest.fail(f"no trace line matching {pat!r} in order in "
                        f"{lines}")
    return found


def test_connect_tries_each_address_in_turn(duplex, netns):
    """A name with three addresses, in a namespace of our own whose
    /etc/hosts gives it them (`ip netns exec` mounts /etc/netns/NS/hosts
    over /etc/hosts): the first drops every packet, the second refuses,
    only the third listens. duplex connect tries them in getaddrinfo's
    order, each within --timeout, and gets through on the third."""
    hosts_dir = f"/etc/netns/{netns}"
    os.makedirs(hosts_dir, exist_ok=True)
    try:
        with open(f"{hosts_dir}/hosts", "w") as f:
            f.write("127.0.0.2 multi\n127.0.0.3 multi\n127.0.0.4 multi\n")
        p = in_netns(netns, ["getent", "ahosts", "multi"])
        order = []
        for line in p.stdout.decode().splitlines():
            if "STREAM" in line and line.split()[0] not in order:
                order.append(line.split()[0])
        assert len(order) == 3, p.stdout
        dropped, refused, listening = order
        srv = subprocess.Popen(
            ["ip", "netns", "exec", netns, "/usr/bin/python3", "-c",
             "import socket,sys\n"
             "s=socket.create_server((sys.argv[1],0))\n"
             "print(s.getsockname()[1],flush=True)\n"
             "c,_=s.accept(); c.sendall(c.recv(100).upper()); c.close()\n",
             listening], stdout=subprocess.PIPE)
        try:
            port = int(srv.stdout.readline())
            nft(netns, "add", "table", "inet", "dxt")
            nft(netns, "add", "chain", "inet", "dxt", "out",
                "{ type filter hook output priority 0 ; }")
            nft(netns, "add", "rule", "inet", "dxt", "out", "ip", "daddr",
                dropped, "tcp", "dport", str(port), "drop")
            t0 = time.monotonic()
            p = in_netns(netns, [duplex, "connect", "--trace", "--timeout",
                                 "300ms", f"tcp://multi:{port}"],
                         input=b"third time lucky", timeout=10)
            secs = time.monotonic() - t0
            assert srv.wait(timeout=5) == 0
        finally:
            if srv.poll() is None:
                srv.kill()
                srv.wait()
    finally:
        shutil.rmtree(hosts_dir, ignore_errors=True)
    assert p.returncode == 0, p.stderr
    assert p.stdout == b"THIRD TIME LUCKY"
    tried = [m.groups() for m in
             (re.match(r"^connect\(\d+, ([\d.]+):\d+\)(.*)$", line)
              for line in trace_lines(p.stderr.decode())) if m]
    assert [a for a, _ in tried] == order, p.stderr.decode()
    assert "ECONNREFUSED" in tried[1][1], tried
    assert tried[2][1].strip() == "= 0", tried
    assert 0.25 <= secs < 5, secs


def test_connect_trace(duplex, peer):
    srv = peer(lambda conn, peer: conn.sendall(read_to_eof(conn).upper()))
    p = run(["connect", "--trace", srv.endpoint], input=b"hello",
            timeout=10)
    assert p.returncode == 0, p.stderr
    assert p.stdout == b"HELLO"
    found = find_in_order(trace_lines(p.stderr.decode()), [
        r"^socket\(AF_INET, SOCK_STREAM\) = (\d+)",
        rf"^connect\((\d+), 127\.0\.0\.1:{srv.port}\) = 0",
        r"^(?:send|write)\((\d+)\) = 5 bytes",
        r"^shutdown\((\d+), SHUT_WR\) = 0",
        r"^(?:read|recv)\((\d+)\) = 5 bytes",
        r"^(?:read|recv)\((\d+)\) = 0 \(EOF\)",
        r"^close\((\d+)\) = 0",
    ])
    assert len({m.group(1) for m in found}) == 1, [m.group(0) for m in found]
    srv.join()
