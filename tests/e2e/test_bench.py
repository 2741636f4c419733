# SPDX-License-Identifier: MIT
"""End-to-end tests of the load generator, `duplex bench`, and of the
benchmark script bench/run. Each pattern gets a short smoke run against a
real local server (duplex serve for datagrams, bench/floor_epoll.c and
bench/libevent_echo.c built here for tcp, python echo servers for unix
sockets); servers that corrupt a byte make it report verify failures and
exit 1; bad input exits 2 with one line; bench/run, filtered to a few
servers, writes the rows and targets it should. These tests check
behaviour, never speed. Traffic goes only to 127.0.0.1 and to unix
sockets in a temporary directory; every server is stopped at teardown by
its pid and every wait is bounded."""
import importlib.machinery
import importlib.util
import json
import os
import pathlib
import re
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


def have_libevent():
    """1 when libevent's headers are installed (Debian libevent-dev)."""
    return os.path.exists("/usr/include/event2/event.h")


@pytest.fixture(scope="module")
def libevent_echo_bin(tmp_path_factory):
    """bench/libevent_echo.c built in a temporary directory, as bench/run
    builds it. make check installs libevent-dev (scripts/deps.sh test), so
    its absence is a failure, not a skip."""
    if not have_libevent():
        pytest.fail("libevent-dev is not installed (sh scripts/deps.sh "
                    "test installs it)")
    cc = shutil.which("cc") or shutil.which("gcc")
    exe = tmp_path_factory.mktemp("libevent") / "libevent_echo"
    p = subprocess.run([cc, "-O2", "-std=c11", "-Wall", "-Wextra", "-Werror",
                        "-o", str(exe),
                        str(ROOT / "bench" / "libevent_echo.c"), "-levent"],
                       capture_output=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return str(exe)


def port_printing_server(exe):
    """Runs EXE 0 (a bench server that prints its bound port); yields its
    tcp:// endpoint; kills it by its pid at the end."""
    proc = subprocess.Popen([exe, "0"], stdout=subprocess.PIPE,
                            stdin=subprocess.DEVNULL)
    try:
        line = proc.stdout.readline()  # its bound port, printed at once
        assert line.strip().isdigit(), line
        yield f"tcp://127.0.0.1:{int(line)}"
    finally:
        proc.kill()
        proc.wait(timeout=5)
        proc.stdout.close()


@pytest.fixture
def floor_epoll(floor_epoll_bin):
    """A running floor_epoll on 127.0.0.1; yields its tcp:// endpoint."""
    yield from port_printing_server(floor_epoll_bin)


@pytest.fixture
def libevent_echo(libevent_echo_bin):
    """A running libevent_echo on 127.0.0.1; yields its tcp:// endpoint."""
    yield from port_printing_server(libevent_echo_bin)


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


class StreamHold(socketserver.BaseRequestHandler):
    """Reads and discards until the peer closes: holds a connection
    without ever answering."""

    def handle(self):
        self.request.settimeout(30)
        try:
            while self.request.recv(65536):
                pass
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
        if kind == "hold":
            srv = ThreadingTCP(("127.0.0.1", 0), StreamHold)
            ep = f"tcp://127.0.0.1:{srv.server_address[1]}"
        elif kind == "udp":
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


@pytest.mark.parametrize("pattern,conns", [("pingpong", 8), ("connrate", 4),
                                           ("bulk", 2), ("idle", 200)])
def test_stream_patterns_against_libevent(libevent_echo, pattern, conns):
    """bench/run's libevent peer echoes every pattern exactly."""
    p, doc = bench(libevent_echo, "--pattern", pattern, "-c", conns, "-d",
                   "1", "--json")
    assert_clean(p, doc)
    if pattern == "idle":
        assert doc["established"] == conns and doc["closed_by_peer"] == 0


def test_idle_against_fork_model(serve):
    """idle opens its connections a window at a time, each proven served
    by an echo: a process-per-connection server gets them all."""
    srv = serve("--model", "fork", "echo", "tcp://127.0.0.1:0")
    p, doc = bench(f"tcp://127.0.0.1:{srv.port()}", "-p", "idle", "-c", "60",
                   "-d", "0.5", "--json")
    assert_clean(p, doc)
    assert doc["established"] == 60 and doc["closed_by_peer"] == 0
    assert doc["latency_us"]["max"] > 0  # the opening of each is timed


def test_idle_size_zero_holds_without_echo(pyserver):
    """--size 0: idle holds connections to a server that never answers."""
    ep = pyserver("hold")
    p, doc = bench(ep, "-p", "idle", "--size", "0", "-c", "20", "-d", "0.5",
                   "--json")
    assert_clean(p, doc)
    assert doc["established"] == 20 and doc["size"] == 0


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
                                          ("tcp", "connrate"),
                                          ("tcp", "idle")])
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
    (["tcp://127.0.0.1:7", "-p", "pingpong", "--size", "0"], "0"),
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
# bench/run, end to end: a few servers, 1 s per case
# ---------------------------------------------------------------------------

def bench_run(duplex, out, *args, timeout=90):
    """Runs bench/run ARGS --duration 1 --out OUT; returns (its Markdown,
    its SVG) after checking that it exited 0 and printed the Markdown."""
    if shutil.which("taskset") is None:
        pytest.fail("taskset (util-linux) is not installed")
    if "--rounds" not in args:
        args = (*args, "--rounds", "1")
    p = subprocess.run(["/usr/bin/python3", str(ROOT / "bench" / "run"),
                        "--duration", "1", *args, "--duplex", duplex,
                        "--out", str(out)],
                       capture_output=True, timeout=timeout,
                       stdin=subprocess.DEVNULL)
    err = p.stderr.decode(errors="replace")
    assert p.returncode == 0, err
    mds, svgs = list(out.glob("*.md")), list(out.glob("*.svg"))
    assert len(mds) == 1 and len(svgs) == 1, list(out.iterdir())
    text = mds[0].read_text()
    assert p.stdout.decode() == text + "\n"
    assert "Machine: " in text and " cores, Linux " in text
    return text, svgs[0].read_text()


def tables(text):
    """{title: [row cells]} of each table in bench/run's Markdown."""
    out = {}
    for block in text.split("### ")[1:]:
        lines = block.splitlines()
        rows = [r for r in lines if r.startswith("| ")]
        out[lines[0]] = [[c.strip() for c in r.strip().strip("|").split("|")]
                         for r in rows]
    return out


def number(cell):
    return float(cell.replace(",", "").rstrip("x").split(" ")[0])


def row_name(cells):
    """A row's server, without the marker of a row disturbed by other work
    on CPU 1."""
    return cells[0].split(" ¹")[0]


def test_bench_run_udp(duplex, tmp_path):
    text, svg = bench_run(duplex, tmp_path, "--only", "udp")
    assert "Command: `bench/run --duration 1 --only udp" in text
    got = tables(text)
    assert list(got) == ["udp, 64 B, 1 sender", "udp, 64 B, 32 senders"]
    want = ["floor: recvmmsg echo", "duplex serve echo (udp)",
            "duplex serve echo (udp) --busy-poll 50us"]
    xinetd = shutil.which("xinetd") and is_root()
    if xinetd:
        want.append("xinetd internal echo")
    for title, rows in got.items():
        head, body = rows[0], rows[1:]
        assert head[:4] == ["server", "ops/s", "vs floor", "vs xinetd"], head
        assert head[-1] == "timeouts", head
        assert [row_name(r) for r in body] == want, title
        cpu = head.index("server CPU µs/op")
        for r in body:
            assert number(r[1]) > 0, r               # ops/s
            assert r[2].endswith("x"), r             # vs floor
            assert number(r[cpu]) > 0, r             # server CPU µs/op
        assert body[0][2] == "1.00x"
        if xinetd:
            assert body[-1][3] == "1.00x", body[-1]
    assert "pingpong" not in text.split("Servers:")[0]
    # issue 3's targets, for both duplex rows, under each table
    assert text.count("- issue 3: the iterative server at least 1.0x the "
                      "floor's datagrams/s: duplex ") == 2, text
    assert svg.startswith("<svg") and svg.count("<rect") >= 1 + 2 * len(want)


def test_bench_run_rounds_report_medians(duplex, tmp_path):
    """--rounds 3: every row's figure is the median of its three rounds,
    which the range column brackets."""
    text, _ = bench_run(duplex, tmp_path, "--only", "udp-32", "--servers",
                        "floor,duplex", "--rounds", "3", timeout=120)
    assert "in 3 rounds" in text and "median of the rounds" in text
    head, *body = tables(text)["udp, 64 B, 32 senders"]
    assert head[-1] == "ops/s range", head
    assert [row_name(r) for r in body] == [
        "floor: recvmmsg echo", "duplex serve echo (udp)",
        "duplex serve echo (udp) --busy-poll 50us"]
    for r in body:
        lo, hi = (number(v) for v in r[-1].split("–"))
        assert 0 < lo <= number(r[1]) <= hi, r
        assert lo < hi, r  # three 1-second runs never tie to the datagram


def test_bench_run_tcp_cases(duplex, tmp_path):
    """Every tcp case with the floor, the epoll model, libevent (when its
    headers are installed) and iperf3 (when installed): the rows, their
    ratio columns, the idle memory figures, the targets, an SVG panel
    per case."""
    text, svg = bench_run(duplex, tmp_path, "--only",
                          "pingpong,connrate,bulk,idle", "--idle-conns",
                          "200", "--servers",
                          "floor: epoll,model epoll,libevent,iperf3")
    got = tables(text)
    assert list(got) == [
        "pingpong, 64 B, 50 connections",
        "connrate: connect, 64 B, close; 8 at a time",
        "bulk: a stream through echo, 64 KiB writes, 1 connection",
        "idle: 200 connections held"]
    servers = ["floor: epoll echo", "duplex --model epoll"]
    if have_libevent():
        servers.append("libevent echo")
    else:
        assert "libevent echo: skipped (cannot build" in text
    ceiling = ["iperf3 one-way (for scale, not an echo)"] \
        if shutil.which("iperf3") else []
    heads = {
        "pingpong": ["server", "ops/s", "vs floor", "vs xinetd", "vs socat",
                     "p50 µs", "p99 µs", "server CPU µs/op",
                     "process CPU µs/op", "CPU 0/1 busy"],
        "connrate": ["server", "conn/s", "vs floor", "vs fork", "vs xinetd",
                     "vs socat", "p50 µs", "p99 µs", "server CPU µs/conn",
                     "CPU vs libevent", "process CPU µs/conn",
                     "CPU 0/1 busy"],
        "bulk": ["server", "MiB/s", "vs floor", "vs socat",
                 "server CPU µs/MiB", "process CPU µs/MiB", "CPU 0/1 busy"],
        "idle": ["server", "held", "processes (threads)", "PSS before MiB",
                 "PSS held MiB", "PSS B/conn", "vs floor",
                 "page tables B/conn"]}
    for title, rows in got.items():
        kind = title.split(",")[0].split(":")[0]
        head, body = rows[0], rows[1:]
        assert head == heads[kind], title
        want = servers + (ceiling if kind == "bulk" else [])
        assert [row_name(r) for r in body] == want, title
        for r in body:
            assert len(r) == len(head) and "failed" not in r[0], r
            if kind == "idle":
                assert r[1] == "200" and r[2] == "1 (1)", r
                assert r[6].endswith(" B"), r
                continue
            assert number(r[1]) > 0 and r[2].endswith("x"), r
            cpu = [c for h, c in zip(head, r) if h.startswith("server CPU")]
            assert number(cpu[0]) > 0, r
            busy = re.fullmatch(r"(\d+)/(\d+)%( ²)?", r[-1])
            assert busy, r
            load, srv = int(busy[1]), int(busy[2])
            assert 0 < load <= 101 and 0 < srv <= 101, r
            # The marker is decided on unrounded shares: clear of the
            # thresholds, the rounded ones must agree with it.
            if load >= 96 and srv <= 89:
                assert busy[3], r
            if load <= 94 or srv >= 91:
                assert not busy[3], r
        if kind != "idle":
            assert body[0][2] == "1.00x", body[0]
        if kind == "connrate" and have_libevent():
            assert [r[9] for r in body][2] == "1.00x"  # libevent vs itself
    # The targets of the epoll model, read off each table.
    targets = [line for line in text.splitlines()
               if line.startswith("- issue ")]
    assert any("`epoll` at least 0.95x the floor's ops/s: epoll " in t
               for t in targets), targets
    assert any("at most 256 bytes of server PSS per connection: epoll "
               in t for t in targets), targets
    if have_libevent():
        assert any("most 0.8x libevent's: epoll " in t and "x libevent's ("
                   in t for t in targets), targets
    assert svg.count("font-weight=\"bold\"") == 4  # a panel per case
    assert "PSS bytes per held connection" in svg


def bench_module():
    """bench/run, loaded as a module (it runs nothing on import)."""
    loader = importlib.machinery.SourceFileLoader(
        "bench_run", str(ROOT / "bench" / "run"))
    spec = importlib.util.spec_from_loader("bench_run", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


def test_load_bound_rows_are_marked_and_compared_by_cpu():
    """A rate target whose subject row was load-bound (CPU 0 >= 95% busy,
    CPU 1 <= 90%) prints the ratio of server CPU per operation beside the
    rate ratio, each with its verdict; a row the server bounded does not,
    and the table marks only the load-bound rows."""
    b = bench_module()
    case = next(c for c in b.CASES if c.key == "connrate-8")
    servers = [s for s in b.SERVERS if s.ref in ("floor", "fork", "prefork")
               and "connrate" in s.patterns]
    assert [s.ref for s in servers] == ["floor", "fork", "prefork"]

    def row(figure, busy_per, load, srv):
        return {"figure": figure, "units": figure * 10, "busy_per": busy_per,
                "tree_per": busy_per, "p50": 1.0, "p99": 2.0,
                "load_busy": load, "server_busy": srv, "other": 0.0}

    results = {(case.key, servers[0].name): row(20000, 30.0, 1.0, 0.6),
               (case.key, servers[1].name): row(4500, 210.0, 0.5, 0.99),
               (case.key, servers[2].name): row(20000, 30.0, 0.99, 0.61)}
    text = "\n".join(b.table(case, servers, results))
    line = next(t for t in text.splitlines() if "`prefork` at least 5x" in t)
    assert "prefork 4.44x fork's (missed by 11%) [load-bound: CPU 0 99% " \
        "busy, CPU 1 61%; by server CPU per conn, prefork 7.00x fork's " \
        "(met)]" in line, line
    assert "99/61% ²" in text and "50/99% |" in text, text
    assert "² The load was the bound" in text
    # The same prefork row with the server's CPU saturated: no bracket.
    results[(case.key, servers[2].name)] = row(20000, 30.0, 0.99, 0.97)
    text = "\n".join(b.table(case, servers, results))
    line = next(t for t in text.splitlines() if "`prefork` at least 5x" in t)
    assert "load-bound" not in line and "99/97% |" in text, line


def test_rounds_rotate_the_order_of_servers():
    """Each round runs every server of a case once; over three rounds no
    server keeps its place, and the first of each round differs."""
    b = bench_module()
    case = next(c for c in b.CASES if c.key == "pingpong-50")
    todo = [s for s in b.SERVERS if "pingpong" in s.patterns]
    orders = [b.round_order(case, b.SERVERS, rnd, 3) for rnd in range(3)]
    for order in orders:
        assert sorted(s.name for s in order) == sorted(s.name for s in todo)
    assert orders[0] == todo
    assert len({order[0].name for order in orders}) == 3
    for s in todo:
        assert len({order.index(s) for order in orders}) == 3, s.name
