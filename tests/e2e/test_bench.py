# SPDX-License-Identifier: MIT
"""End-to-end tests of the load generator, `duplex bench`, and of the
benchmark script bench/run. Each pattern gets a short smoke run against a
real local server (duplex serve for datagrams, bench/floor_epoll.c built
here for tcp, python echo servers for unix sockets); servers that corrupt
a byte make it report verify failures and exit 1; bad input exits 2 with
one line. These tests check behaviour, never speed. Traffic goes only to
127.0.0.1 and to unix sockets in a temporary directory; every server is
stopped at teardown and every wait is bounded."""
import json
import pathlib
import shutil
import socket
import socketserver
import subprocess
import tempfile
import threading

import pytest

from conftest import ROOT, is_root, run

BENCH_SECONDS = "2"


def bench(*args, timeout=30):
    """Runs duplex bench ARGS; returns (process, JSON or None)."""
    p = run(["bench", *[str(a) for a in args]], timeout=timeout)
    try:
        doc = json.loads(p.stdout) if "--json" in args else None
    except ValueError:
        pytest.fail(f"duplex bench printed no JSON: stdout {p.stdout!r}, "
                    f"stderr {p.stderr!r}")
    return p, doc


def assert_clean(p, doc):
    """Exit 0, operations done, nothing failed."""
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    assert doc["ops"] > 0, doc
    assert doc["errors"] == 0, doc
    assert doc["verify_failures"] == 0, doc


def one_error_line(p):
    lines = p.stderr.decode(errors="replace").strip().splitlines()
    assert len(lines) == 1, f"expected one stderr line, got {lines}"
    return lines[0]


@pytest.fixture
def sockdir():
    d = tempfile.mkdtemp(prefix="dxb-", dir="/tmp")
    yield pathlib.Path(d)
    shutil.rmtree(d, ignore_errors=True)


# ---------------------------------------------------------------------------
# Servers: the C floor, python echo servers (optionally corrupting)
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def floor_epoll_bin(tmp_path_factory):
    """bench/floor_epoll.c built in a temporary directory."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.fail("no C compiler to build bench/floor_epoll.c")
    exe = tmp_path_factory.mktemp("floor") / "floor_epoll"
    p = subprocess.run([cc, "-O2", "-std=c11", "-o", str(exe),
                        str(ROOT / "bench" / "floor_epoll.c")],
                       capture_output=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return str(exe)


@pytest.fixture
def floor_epoll(floor_epoll_bin):
    """A running floor_epoll on 127.0.0.1; yields its tcp:// endpoint."""
    proc = subprocess.Popen([floor_epoll_bin, "0"], stdout=subprocess.PIPE,
                            stdin=subprocess.DEVNULL)
    try:
        line = proc.stdout.readline()  # its bound port, printed at once
        assert line.strip().isdigit(), line
        yield f"tcp://127.0.0.1:{int(line)}"
    finally:
        proc.kill()
        proc.wait(timeout=5)
        proc.stdout.close()


def flip(data, corrupt):
    if corrupt and data:
        return bytes([data[0] ^ 0xFF]) + data[1:]
    return data


class StreamEcho(socketserver.BaseRequestHandler):
    corrupt = False

    def handle(self):
        self.request.settimeout(30)
        try:
            while True:
                data = self.request.recv(65536)
                if not data:
                    return
                self.request.sendall(flip(data, self.corrupt))
        except OSError:
            return


class DgramEcho(socketserver.BaseRequestHandler):
    corrupt = False

    def handle(self):
        data, sock = self.request
        sock.sendto(flip(data, self.corrupt), self.client_address)


class ThreadingTCP(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class ThreadingUnix(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True


@pytest.fixture
def pyserver():
    """Factory: pyserver(kind, corrupt=False, path=None) starts a python
    echo server (kind tcp, udp or unix) in a thread and returns its
    endpoint. CORRUPT flips the first byte of every reply."""
    started = []

    def start(kind, corrupt=False, path=None):
        if kind == "udp":
            handler = type("H", (DgramEcho,), {"corrupt": corrupt})
            srv = socketserver.UDPServer(("127.0.0.1", 0), handler)
            ep = f"udp://127.0.0.1:{srv.server_address[1]}"
        elif kind == "tcp":
            handler = type("H", (StreamEcho,), {"corrupt": corrupt})
            srv = ThreadingTCP(("127.0.0.1", 0), handler)
            ep = f"tcp://127.0.0.1:{srv.server_address[1]}"
        else:
            handler = type("H", (StreamEcho,), {"corrupt": corrupt})
            srv = ThreadingUnix(str(path), handler)
            ep = f"unix://{path}"
        t = threading.Thread(target=srv.serve_forever,
                             kwargs={"poll_interval": 0.05}, daemon=True)
        t.start()
        started.append((srv, t))
        return ep

    yield start
    for srv, t in started:
        srv.shutdown()
        srv.server_close()
        t.join(timeout=5)


# ---------------------------------------------------------------------------
# Each pattern, against a server that echoes correctly
# ---------------------------------------------------------------------------

def test_udp_against_duplex_serve(serve):
    srv = serve("echo", "udp://127.0.0.1:0")
    p, doc = bench(f"udp://127.0.0.1:{srv.port()}", "--pattern", "udp",
                   "-c", "4", "-d", BENCH_SECONDS, "--json")
    assert_clean(p, doc)
    assert doc["pattern"] == "udp" and doc["connections"] == 4
    assert doc["size"] == 64
    assert doc["bytes"] == doc["ops"] * 64
    lat = doc["latency_us"]
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["p999"] \
        <= lat["max"]
    assert 1.5 <= doc["duration_s"] <= 4, doc


def test_udp_two_threads_and_size(serve):
    srv = serve("echo", "udp://127.0.0.1:0")
    p, doc = bench(f"udp://127.0.0.1:{srv.port()}", "-c", "6", "-t", "2",
                   "--size", "1000", "-d", "1", "--json")
    assert_clean(p, doc)
    assert doc["threads"] == 2 and doc["size"] == 1000
    assert doc["pattern"] == "udp"  # the default for a datagram endpoint


def test_unixgram_against_duplex_serve(serve, sockdir):
    path = sockdir / "echo.sock"
    serve("echo", f"unixgram://{path}")
    p, doc = bench(f"unixgram://{path}", "-c", "2", "-d", "1", "--json")
    assert_clean(p, doc)


@pytest.mark.parametrize("pattern,conns", [("pingpong", 8), ("connrate", 4),
                                           ("bulk", 2), ("idle", 200)])
def test_stream_patterns_against_floor(floor_epoll, pattern, conns):
    p, doc = bench(floor_epoll, "--pattern", pattern, "-c", conns, "-d",
                   BENCH_SECONDS, "--json")
    assert_clean(p, doc)
    if pattern == "idle":
        assert doc["established"] == conns
        assert doc["closed_by_peer"] == 0
    if pattern == "bulk":
        assert doc["bytes"] > 0 and doc["mib_per_s"] > 0
        assert doc["latency_us"] is None
    if pattern in ("pingpong", "connrate"):
        assert doc["bytes"] == doc["ops"] * 64


def test_pingpong_large_messages(floor_epoll):
    """Messages larger than a socket buffer: short writes and reads."""
    p, doc = bench(floor_epoll, "-p", "pingpong", "-c", "2", "--size",
                   str(3 << 20), "-d", "1", "--json")
    assert_clean(p, doc)


@pytest.mark.parametrize("pattern", ["pingpong", "connrate"])
def test_unix_stream_against_python(pyserver, sockdir, pattern):
    ep = pyserver("unix", path=sockdir / "s.sock")
    p, doc = bench(ep, "-p", pattern, "-c", "2", "-d", "1", "--json")
    assert_clean(p, doc)


def test_text_report(floor_epoll):
    p, _ = bench(floor_epoll, "-c", "2", "-d", "0.5")
    assert p.returncode == 0, p.stderr
    out = p.stdout.decode()
    assert "pattern pingpong" in out
    assert out.count("\n") >= 3
    assert "latency us" in out and "verify failures 0" in out
    assert p.stderr == b""  # no progress line when stderr is not a tty


# ---------------------------------------------------------------------------
# Failures: corrupted replies, lost datagrams, refused, bad input
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("kind,pattern", [("udp", "udp"),
                                          ("tcp", "pingpong"),
                                          ("tcp", "connrate")])
def test_corrupting_server_fails_verify(pyserver, kind, pattern):
    ep = pyserver(kind, corrupt=True)
    p, doc = bench(ep, "-p", pattern, "-c", "2", "-d", "1", "--json")
    assert p.returncode == 1, p.stderr
    assert doc["verify_failures"] > 0, doc
    assert doc["ops"] == 0, doc
    assert b"did not match" in p.stderr


def test_udp_loss_is_timeouts_not_errors():
    """A server that answers every other datagram: the rest time out and
    are replaced; that is not a failure."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(0.1)
        stop = threading.Event()

        def serve():
            n = 0
            while not stop.is_set():
                try:
                    data, peer = s.recvfrom(65536)
                except (socket.timeout, OSError):
                    continue
                n += 1
                if n % 2:
                    s.sendto(data, peer)

        t = threading.Thread(target=serve, daemon=True)
        t.start()
        try:
            p, doc = bench(f"udp://127.0.0.1:{s.getsockname()[1]}", "-c",
                           "2", "-d", "1", "--timeout", "20ms", "--json")
        finally:
            stop.set()
            t.join(timeout=5)
    assert p.returncode == 0, p.stderr
    assert doc["timeouts"] > 0 and doc["ops"] > 0, doc
    assert doc["errors"] == 0 and doc["verify_failures"] == 0, doc


def test_refused_is_an_error():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # Nothing listens on PORT now: ICMP port unreachable, ECONNREFUSED.
    p, doc = bench(f"udp://127.0.0.1:{port}", "-c", "2", "-d", "1",
                   "--json")
    assert p.returncode == 1
    assert doc["errors"] > 0 and doc["ops"] == 0
    assert b"refused" in p.stderr.lower()


def test_tcp_refused_is_an_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p, doc = bench(f"tcp://127.0.0.1:{port}", "-c", "2", "-d", "0.5",
                   "--json")
    assert p.returncode == 1
    assert doc["errors"] == 2 and doc["established"] == 0, doc


@pytest.mark.parametrize("args,quoted", [
    ([], None),
    (["tcp://127.0.0.1:65536"], "tcp://127.0.0.1:65536"),
    (["udp://127.0.0.1:7", "-p", "ping"], "ping"),
    (["udp://127.0.0.1:7", "-c", "0"], "0"),
    (["udp://127.0.0.1:7", "-c", "12x"], "12x"),
    (["udp://127.0.0.1:7", "-d", "0"], "0"),
    (["udp://127.0.0.1:7", "-d", "soon"], "soon"),
    (["udp://127.0.0.1:7", "--size", "65508"], "65508"),
    (["udp://127.0.0.1:7", "-t", "65"], "65"),
    (["udp://127.0.0.1:7", "--timeout", "-1"], "-1"),
    (["tcp://127.0.0.1:7", "-p", "udp"], "tcp://127.0.0.1:7"),
    (["udp://127.0.0.1:7", "-p", "pingpong"], "udp://127.0.0.1:7"),
    (["udp://127.0.0.1:7", "--frobnicate"], "--frobnicate"),
    (["udp://127.0.0.1:7", "udp://127.0.0.1:8"], None),
])
def test_bad_input_exits_2(args, quoted):
    p = run(["bench", *args], timeout=10)
    assert p.returncode == 2, (args, p.stderr)
    line = one_error_line(p)
    assert line.startswith("duplex: ")
    if quoted is not None:
        assert f"'{quoted}'" in line, line
    assert p.stdout == b""


def test_help():
    p = run(["bench", "--help"])
    assert p.returncode == 0
    for word in (b"udp", b"pingpong", b"connrate", b"bulk", b"idle",
                 b"--json"):
        assert word in p.stdout


# ---------------------------------------------------------------------------
# bench/run, end to end (udp only, 2 s per case)
# ---------------------------------------------------------------------------

def test_bench_run_quick_udp(duplex, tmp_path):
    if shutil.which("taskset") is None:
        pytest.fail("taskset (util-linux) is not installed")
    p = subprocess.run(["/usr/bin/python3", str(ROOT / "bench" / "run"),
                        "--quick", "--only", "udp", "--duplex", duplex,
                        "--out", str(tmp_path)],
                       capture_output=True, timeout=90,
                       stdin=subprocess.DEVNULL)
    err = p.stderr.decode(errors="replace")
    assert p.returncode == 0, err
    mds = list(tmp_path.glob("*.md"))
    svgs = list(tmp_path.glob("*.svg"))
    assert len(mds) == 1 and len(svgs) == 1, list(tmp_path.iterdir())
    text = mds[0].read_text()
    assert p.stdout.decode() == text + "\n"
    assert "Machine: " in text and " cores, Linux " in text
    assert "Command: `bench/run --quick --only udp" in text
    tables = text.split("### ")[1:]
    assert [t.splitlines()[0] for t in tables] == [
        "udp, 64 B, 1 sender", "udp, 64 B, 32 senders"]
    want = ["floor: recvmmsg echo", "duplex serve echo (udp)"]
    if shutil.which("xinetd") and is_root():
        want.append("xinetd internal echo")
    for t in tables:
        rows = [r for r in t.splitlines() if r.startswith("| ")
                and not r.startswith("| server")]
        # A row that ran beside other work on CPU 1 carries a marker.
        names = [r.split(" | ")[0][2:].split(" ¹")[0] for r in rows]
        assert names == want, t
        for r in rows:
            cells = [c.strip() for c in r.strip("|").split("|")]
            assert int(cells[1].replace(",", "")) > 0, r  # ops/s
            assert cells[2].endswith("x"), r               # vs floor
            assert float(cells[5].replace(",", "")) > 0, r  # CPU µs/op
        assert rows[0].split(" | ")[2] == "1.00x"
    assert "pingpong" not in text.split("Servers:")[0]
    svg = svgs[0].read_text()
    assert svg.startswith("<svg") and svg.count("<rect") >= 1 + 2 * len(want)
