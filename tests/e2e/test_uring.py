# SPDX-License-Identifier: MIT
"""End-to-end tests of the io_uring concurrency model, `duplex serve
--model uring`: every service answered through it (real nc and python
peers), echo half-close at the sizes that matter, twenty concurrent
byte-exact echoes, backpressure from peers that send without reading
(bounded server memory, no starved newcomer, nothing lost), the ring's
multishot accept (shared admission; accept(2) near --max-conns), echo's bulk
stream leaving the ring for conn.c's splice path (byte-exact, small
exchanges staying on the multishot receive, a peer that stops reading
held back, the write and idle timeouts still applying), the fallback
to the epoll model (DUPLEX_NO_URING=1, and io_uring_setup failing under
strace's fault injection), idle and write timeouts, --max-conns, the cost
of an idle connection, and SIGTERM. Traffic goes only to 127.0.0.1 on
ports the kernel picked; every wait is bounded and every process is ended
by its pid."""
import hashlib
import os
import re
import select
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import duplex_path, echo_held_back, need, pump

NOTICE = "io_uring unavailable"
NOTICE_RE = re.compile(r"io_uring unavailable \((.+)\); using the epoll "
                       r"model$", re.M)
DAYTIME_RE = re.compile(r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun) "
                        r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
                        r"[ \d]\d \d\d:\d\d:\d\d \d{4}\r\n$")
RFC868_OFFSET = 2208988800
MIB = 1 << 20


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------

def uring(serve, *args, env=None):
    """duplex serve --model uring ARGS, every pair on 127.0.0.1."""
    args = [str(a) for a in args]
    return serve("--model", "uring", *args, env=env,
                 listeners=sum(1 for a in args if "://" in a))


def connect(port, timeout=5.0):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.settimeout(timeout)
    return s


def read_to_end(s, timeout=10.0, limit=1 << 30):
    """Reads until end of file, a reset, TIMEOUT seconds or LIMIT bytes.
    Returns (data, how): how is 'eof', 'reset', 'timeout' or 'limit'."""
    buf, deadline = bytearray(), time.monotonic() + timeout
    while len(buf) < limit:
        left = deadline - time.monotonic()
        if left <= 0:
            return bytes(buf), "timeout"
        s.settimeout(left)
        try:
            chunk = s.recv(min(MIB, limit - len(buf)))
        except socket.timeout:
            return bytes(buf), "timeout"
        except ConnectionResetError:
            return bytes(buf), "reset"
        if not chunk:
            return bytes(buf), "eof"
        buf += chunk
    return bytes(buf), "limit"


def echo_exchange(port, payload, timeout=30.0):
    """Sends PAYLOAD from a thread, half-closes, reads to the end.
    Returns (reply, how)."""
    s = connect(port, timeout)
    err = []

    def send():
        try:
            s.sendall(payload)
            s.shutdown(socket.SHUT_WR)
        except OSError as e:  # reported below
            err.append(e)

    t = threading.Thread(target=send, daemon=True)
    t.start()
    try:
        reply, how = read_to_end(s, timeout)
    finally:
        t.join(timeout)
        s.close()
    assert not t.is_alive(), "the sender never finished"
    assert not err, err
    return reply, how


def nc(port, data=b"", timeout=10):
    """Runs `nc -N 127.0.0.1 PORT` with DATA on its standard input."""
    p = subprocess.run([need("nc"), "-N", "-w", "5", "127.0.0.1", str(port)],
                       input=data, capture_output=True, timeout=timeout)
    assert p.returncode == 0, p.stderr
    return p.stdout


def chargen_pattern(nbytes):
    """The chargen stream from its first byte, as xinetd sends it (the
    RFC 864 example): 72 characters from the ring '!'..'}' and CR LF per
    line, line k starting at ring[(k mod 95) mod 93]."""
    ring = bytes(range(0x21, 0x7e))
    out, k = bytearray(), 0
    while len(out) < nbytes:
        start = (k % 95) % 93
        out += bytes(ring[(start + i) % 93] for i in range(72)) + b"\r\n"
        k += 1
    return bytes(out[:nbytes])


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def pss_bytes(pid):
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no Pss")


def wait_for(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout} s")
        time.sleep(0.01)


def skip_unless_uring(srv):
    """Skips when this machine cannot run the model (it fell back)."""
    m = NOTICE_RE.search(srv.stderr())
    if m:
        pytest.skip(f"io_uring is not available here: {m.group(1)}")


# ---------------------------------------------------------------------------
# Services
# ---------------------------------------------------------------------------

@pytest.fixture
def all_services(serve):
    srv = uring(serve, "echo", "tcp://127.0.0.1:0", "discard",
                "tcp://127.0.0.1:0", "chargen", "tcp://127.0.0.1:0",
                "daytime", "tcp://127.0.0.1:0", "time", "tcp://127.0.0.1:0",
                "qotd", "tcp://127.0.0.1:0", "exec:/usr/bin/env",
                "tcp://127.0.0.1:0")
    return srv, {l.service: l.port for l in srv.listeners}


def test_the_model_is_io_uring_when_the_kernel_has_it(all_services):
    srv, _ = all_services
    skip_unless_uring(srv)
    assert NOTICE not in srv.stderr()


def test_echo_with_nc(all_services):
    _, port = all_services
    assert nc(port["echo"], b"hello, ring\n") == b"hello, ring\n"


def test_daytime_with_nc(all_services):
    _, port = all_services
    assert DAYTIME_RE.match(nc(port["daytime"]).decode())


def test_qotd_with_nc(all_services):
    _, port = all_services
    quote = nc(port["qotd"])
    assert 0 < len(quote) <= 512


def test_time_is_now(all_services):
    _, port = all_services
    with connect(port["time"]) as s:
        data, how = read_to_end(s)
    assert how == "eof" and len(data) == 4
    assert abs(int.from_bytes(data, "big") - RFC868_OFFSET - time.time()) < 5


def test_discard_takes_8mib_and_ends_with_fin(all_services):
    _, port = all_services
    reply, how = echo_exchange(port["discard"], os.urandom(8 * MIB))
    assert (reply, how) == (b"", "eof")


def test_chargen_sends_the_rfc_864_pattern(all_services):
    _, port = all_services
    with connect(port["chargen"]) as s:
        data, how = read_to_end(s, timeout=5, limit=200000)
    assert how == "limit"
    assert data == chargen_pattern(200000)


def test_exec_gets_the_socket_and_ucspi_environment(all_services):
    _, port = all_services
    out = nc(port["exec:/usr/bin/env"]).decode()
    assert "PROTO=TCP\n" in out
    assert "TCPREMOTEIP=127.0.0.1\n" in out
    assert f"TCPLOCALPORT={port['exec:/usr/bin/env']}\n" in out


def test_exec_output_survives_unread_input(serve, tmp_path):
    """The program exits without reading what the peer sent; its output
    must still arrive whole, then a clean end of file (no reset)."""
    prog = tmp_path / "say"
    prog.write_text("#!/bin/sh\nhead -c 100000 /dev/zero | tr '\\0' x\n")
    prog.chmod(0o755)
    srv = uring(serve, f"exec:{prog}", "tcp://127.0.0.1:0")
    with connect(srv.port()) as s:
        s.sendall(os.urandom(200000))
        data, how = read_to_end(s)
    assert (len(data), how) == (100000, "eof")
    assert data == b"x" * 100000


def test_unix_socket_echo(serve, tmp_path):
    path = str(tmp_path / "echo.sock")
    srv = uring(serve, "echo", f"unix://{path}")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(path)
        s.sendall(b"over unix")
        s.shutdown(socket.SHUT_WR)
        assert read_to_end(s) == (b"over unix", "eof")
    assert srv.running()


# ---------------------------------------------------------------------------
# Echo: half-close and volume
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("size", [0, 1, 65536, MIB],
                         ids=["0", "1", "64KiB", "1MiB"])
def test_echo_half_close_returns_everything_then_clean_eof(serve, size):
    srv = uring(serve, "echo", "tcp://127.0.0.1:0")
    payload = os.urandom(size)
    reply, how = echo_exchange(srv.port(), payload)
    assert how == "eof"
    assert len(reply) == size and reply == payload


def test_twenty_concurrent_4mib_echoes_are_byte_exact(serve):
    srv = uring(serve, "echo", "tcp://127.0.0.1:0")
    results = [None] * 20

    def one(i):
        payload = os.urandom(4 * MIB)
        reply, how = echo_exchange(srv.port(), payload, timeout=60)
        results[i] = (how, len(reply), hashlib.sha256(reply).digest() ==
                      hashlib.sha256(payload).digest())

    threads = [threading.Thread(target=one, args=(i,), daemon=True)
               for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    assert not any(t.is_alive() for t in threads), "an echo never finished"
    assert results == [("eof", 4 * MIB, True)] * 20


def test_many_short_connections_reuse_descriptors_cleanly(serve):
    """Descriptor numbers come back at once; completions of an earlier
    connection must never reach the next one on the same number."""
    srv = uring(serve, "echo", "tcp://127.0.0.1:0")
    for i in range(300):
        msg = f"message {i}\n".encode() * (1 + i % 7)
        assert echo_exchange(srv.port(), msg, timeout=5) == (msg, "eof")
    with connect(srv.port()) as s:  # and a reset mid-stream changes nothing
        s.sendall(b"x" * 100000)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                     b"\x01\x00\x00\x00\x00\x00\x00\x00")
    assert echo_exchange(srv.port(), b"still here") == (b"still here", "eof")


# ---------------------------------------------------------------------------
# Backpressure
# ---------------------------------------------------------------------------

def flood(socks, per_conn, seconds):
    """Sends up to PER_CONN random bytes on each socket without reading,
    for at most SECONDS. Returns the sha256 and count of what each sent."""
    block = os.urandom(MIB)
    sent = [0] * len(socks)
    digests = [hashlib.sha256() for _ in socks]
    for s in socks:
        s.setblocking(False)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        moved = False
        for i, s in enumerate(socks):
            if sent[i] >= per_conn:
                continue
            off = sent[i] % MIB
            chunk = block[off:off + min(65536, per_conn - sent[i])]
            try:
                n = s.send(chunk)
            except BlockingIOError:
                continue
            digests[i].update(chunk[:n])
            sent[i] += n
            moved = True
        if not moved:
            if all(n >= per_conn for n in sent):
                break
            select.select([], socks, [], 0.05)
    return digests, sent


def drain_back(socks, digests, sent, timeout=60):
    """Half-closes each socket and reads its echo back; every byte must
    come back in order, then a clean end of file."""
    deadline = time.monotonic() + timeout
    for i, s in enumerate(socks):
        s.setblocking(True)
        s.shutdown(socket.SHUT_WR)
        data, how = read_to_end(s, max(1.0, deadline - time.monotonic()))
        assert how == "eof", f"connection {i}: {how} after {len(data)}"
        assert len(data) == sent[i]
        assert hashlib.sha256(data).digest() == digests[i].digest()
        s.close()


def test_peer_that_never_reads_costs_bounded_memory(serve):
    """Echo to a peer that sends without reading: the server stops
    receiving once its output is stuck, so the peer is held back by TCP
    rather than buffered by us; reading later gets everything back."""
    srv = uring(serve, "echo", "tcp://127.0.0.1:0")
    with connect(srv.port()) as w:  # warm up: the ring and a buffer
        w.sendall(b"x")
        assert w.recv(1) == b"x"
    base = rss_kib(srv.pid)
    socks = [connect(srv.port()) for _ in range(4)]
    digests, sent = flood(socks, 64 * MIB, 3.0)
    assert all(n < 64 * MIB for n in sent), "the peer was never held back"
    grown = rss_kib(srv.pid) - base
    assert grown < 8 * 1024, f"server grew {grown} KiB for 4 stuck peers"
    drain_back(socks, digests, sent)


def test_flooding_peers_do_not_starve_a_newcomer(serve):
    srv = uring(serve, "echo", "tcp://127.0.0.1:0")
    socks = [connect(srv.port()) for _ in range(50)]
    digests, sent = flood(socks, 2 * MIB, 3.0)
    t0 = time.monotonic()
    assert echo_exchange(srv.port(), b"ping", timeout=5) == (b"ping", "eof")
    assert time.monotonic() - t0 < 2.0
    drain_back(socks, digests, sent)


def test_write_timeout_ends_a_stuck_send(serve):
    """chargen to a peer that stopped reading: the send stays in flight
    until --write-timeout ends the connection; the server goes on."""
    srv = uring(serve, "--write-timeout", "500ms", "chargen",
                "tcp://127.0.0.1:0", "echo", "tcp://127.0.0.1:0")
    socks = [connect(srv.port(0)) for _ in range(10)]
    time.sleep(2.0)
    for s in socks:  # the server gave up: what was queued, then EOF
        data, how = read_to_end(s, timeout=10)
        assert how == "eof"
        assert data == chargen_pattern(len(data))
        s.close()
    assert echo_exchange(srv.port(1), b"alive") == (b"alive", "eof")


# ---------------------------------------------------------------------------
# Accepting: the ring's multishot accept, the shared admission
# ---------------------------------------------------------------------------

RING_ACCEPTS = "io_uring: the ring accepts"
SHARED_ACCEPTS = "io_uring: accept(2) accepts"


def connect_from(port, source, timeout=5.0):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    return s


def test_the_ring_accepts_and_admission_is_the_shared_one(serve):
    """The ring takes the connections (one multishot accept armed); the
    access rules and --per-source still decide who is served, each client
    traced as accept4 traces it."""
    srv = uring(serve, "-v", "--trace", "--deny", "127.0.0.2/32",
                "--per-source", "2", "echo", "tcp://127.0.0.1:0")
    skip_unless_uring(srv)
    wait_for(lambda: RING_ACCEPTS in srv.stderr(), 2, "the ring accepting")
    a, b = connect(srv.port()), connect(srv.port())
    for s in (a, b):
        s.sendall(b"in")
        assert s.recv(2) == b"in"
    with connect(srv.port()) as third:  # over --per-source: closed
        assert read_to_end(third, timeout=2)[1] in ("eof", "reset")
    with connect_from(srv.port(), "127.0.0.2") as denied:
        assert read_to_end(denied, timeout=2)[1] in ("eof", "reset")
    with connect_from(srv.port(), "127.0.0.3") as other:
        other.sendall(b"ok")
        assert other.recv(2) == b"ok"
    a.close()
    b.close()
    err = srv.stderr()
    assert len(re.findall(r"accept\(\d+\) multishot \[io_uring\]",
                          err)) == 1
    assert len(re.findall(r"accept\(\d+\) = \d+ from 127\.0\.0\.\d+:\d+$",
                          err, re.M)) == 5
    assert "per-source-limit: 127.0.0.1" in err
    assert "denied: 127.0.0.2" in err
    assert SHARED_ACCEPTS not in err


def test_near_max_conns_the_shared_path_accepts_and_defers(serve):
    """--backlog 8 --max-conns 200: the ring accepts while more than twice
    the backlog and its slack are free, accept(2) once 72 or fewer are,
    which defers exactly: the 201st client waits in the backlog, unserved
    and not closed, and is served as soon as one ends; the ring takes
    over again once most have ended."""
    srv = uring(serve, "-v", "--backlog", "8", "--max-conns", "200", "echo",
                "tcp://127.0.0.1:0")
    skip_unless_uring(srv)
    held = []
    for i in range(200):
        s = connect(srv.port())
        s.sendall(b"%d" % i)
        assert s.recv(10) == b"%d" % i
        held.append(s)
    err = srv.stderr()
    assert RING_ACCEPTS in err and SHARED_ACCEPTS in err
    assert err.index(RING_ACCEPTS) < err.index(SHARED_ACCEPTS)
    late = connect(srv.port())
    late.sendall(b"late")
    late.settimeout(0.5)
    with pytest.raises(socket.timeout):
        late.recv(4)
    held.pop().close()
    late.settimeout(5)
    assert late.recv(4) == b"late"
    held.append(late)
    for s in held[:180]:
        s.close()
    wait_for(lambda: srv.stderr().count(RING_ACCEPTS) == 2, 3,
             "the ring accepting again")
    assert echo_exchange(srv.port(), b"again") == (b"again", "eof")
    for s in held[180:]:
        s.close()
    assert "max-conns-deferred" in srv.stderr()
    assert "denied" not in srv.stderr().split("counters")[0]


# ---------------------------------------------------------------------------
# Bulk: echo's stream leaves the ring for conn.c's splice path
# ---------------------------------------------------------------------------

SPLICE_RE = re.compile(r"splice\(\d+ -> \d+\) = (\d+) bytes")
RING_RECV_RE = re.compile(r"recv\(\d+\) = (\d+) bytes \[io_uring\]")


def test_bulk_echo_moves_to_splice_byte_exact(serve):
    """8 MiB through echo: the first bytes come through the ring's
    receives, then the stream is spliced; every byte comes back in order,
    then a clean end of file."""
    srv = uring(serve, "--trace", "echo", "tcp://127.0.0.1:0")
    skip_unless_uring(srv)
    data = os.urandom(8 * MIB)
    with connect(srv.port(), timeout=30) as s:
        t = pump(s, data)
        reply, how = read_to_end(s, timeout=30)
        t.join(timeout=30)
    assert how == "eof" and len(reply) == len(data)
    assert hashlib.sha256(reply).digest() == hashlib.sha256(data).digest()
    srv.stop()
    err = srv.stderr()
    ring = sum(int(n) for n in RING_RECV_RE.findall(err))
    spliced = sum(int(n) for n in SPLICE_RE.findall(err))
    assert 0 < ring < MIB, f"{ring} bytes came through the ring"
    # Both directions, socket -> pipe and pipe -> socket: nearly 2 x 8 MiB.
    assert spliced > len(data), f"{spliced} bytes spliced"
    # The ring's receives and sends end before conn.c's first splice.
    first_splice = err.index("splice(")
    assert "[io_uring]" not in err[first_splice:], "ring I/O after splicing"


def test_small_exchanges_stay_on_the_multishot_receive(serve):
    """Ping-pong of small messages never leaves the ring: no splice, no
    read(2), every message a completion of the armed receive."""
    srv = uring(serve, "--trace", "echo", "tcp://127.0.0.1:0")
    skip_unless_uring(srv)
    with connect(srv.port()) as s:
        for i in range(50):
            msg = b"ping %d " % i * (1 + i % 40)  # up to 400 bytes
            s.sendall(msg)
            got = b""
            while len(got) < len(msg):
                got += s.recv(4096)
            assert got == msg
    srv.stop()
    err = srv.stderr()
    fd = re.search(r"accept\(\d+\) = (\d+) from", err).group(1)
    assert "splice(" not in err
    assert f"read({fd})" not in err  # no poll-and-read either
    assert len(RING_RECV_RE.findall(err)) >= 50


def test_spliced_echo_to_a_peer_that_stops_reading_is_held_back(serve):
    """The peer sends 64 MiB and reads nothing: the pipe fills, the server
    stops reading, TCP holds the sender back; the server's memory does
    not grow with what is sent, and once the peer reads, all of it comes
    back intact."""
    srv = uring(serve, "--trace", "echo", "tcp://127.0.0.1:0")
    skip_unless_uring(srv)
    base = rss_kib(srv.pid)
    data = os.urandom(MIB) * 64

    def spliced_and_small():
        assert "splice(" in srv.stderr(), "the stream was never spliced"
        grown = rss_kib(srv.pid) - base
        assert grown < 4 * 1024, f"server grew {grown} KiB"
    with connect(srv.port(), timeout=60) as s:
        echo_held_back(s, data, spliced_and_small)


def test_write_timeout_ends_a_stuck_bulk_echo(serve):
    """A bulk sender that never reads, under --write-timeout: once the
    spliced output has waited that long the connection ends; the server
    goes on serving."""
    srv = uring(serve, "-v", "--trace", "--write-timeout", "500ms", "echo",
                "tcp://127.0.0.1:0")
    skip_unless_uring(srv)
    with connect(srv.port()) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16)
        block = os.urandom(65536)

        def send():  # until the server gives up and resets
            try:
                for _ in range(1024):
                    s.sendall(block)
            except OSError:
                pass
        t = threading.Thread(target=send, daemon=True)
        t.start()
        wait_for(lambda: "ended: write-timeout" in srv.stderr(), 5,
                 "the stuck bulk echo ended")
        t.join(timeout=10)
        assert not t.is_alive(), "the sender was never stopped"
    assert "splice(" in srv.stderr()
    assert echo_exchange(srv.port(), b"alive") == (b"alive", "eof")


def test_idle_timeout_ends_a_quiet_bulk_echo(serve):
    """A connection on the bulk path that goes quiet both ways is ended by
    --idle like any other."""
    srv = uring(serve, "-v", "--trace", "--idle", "500ms", "echo",
                "tcp://127.0.0.1:0")
    skip_unless_uring(srv)
    data = os.urandom(4 * MIB)
    with connect(srv.port(), timeout=10) as s:
        t = threading.Thread(target=s.sendall, args=(data,), daemon=True)
        t.start()
        reply, how = read_to_end(s, timeout=10, limit=len(data))
        t.join(timeout=10)
        assert (len(reply), how) == (len(data), "limit")
        assert reply == data
        t0 = time.monotonic()
        rest, how = read_to_end(s, timeout=5)
    assert (rest, how) == (b"", "eof")
    assert 0.3 <= time.monotonic() - t0 < 3.0
    assert "splice(" in srv.stderr()
    assert "ended: idle-timeout" in srv.stderr()


# ---------------------------------------------------------------------------
# Limits, timeouts, memory
# ---------------------------------------------------------------------------

def test_idle_timeout_closes_a_silent_connection(serve):
    srv = uring(serve, "--idle", "500ms", "echo", "tcp://127.0.0.1:0")
    t0 = time.monotonic()
    with connect(srv.port()) as s:
        data, how = read_to_end(s, timeout=5)
    elapsed = time.monotonic() - t0
    assert (data, how) == (b"", "eof")
    assert 0.4 <= elapsed < 3.0, elapsed


def test_idle_timeout_spares_a_talking_connection(serve):
    srv = uring(serve, "--idle", "500ms", "echo", "tcp://127.0.0.1:0")
    with connect(srv.port()) as s:
        for i in range(6):  # 1.5 s of traffic, a message every 250 ms
            s.sendall(b"%d" % i)
            assert s.recv(10) == b"%d" % i
            time.sleep(0.25)


def test_max_conns_5_is_honoured(serve):
    srv = uring(serve, "--max-conns", "5", "echo", "tcp://127.0.0.1:0")
    held = []
    for i in range(5):
        s = connect(srv.port())
        s.sendall(b"a")
        assert s.recv(1) == b"a"
        held.append(s)
    sixth = connect(srv.port())  # completes in the kernel's backlog
    sixth.sendall(b"b")
    sixth.settimeout(0.5)
    with pytest.raises(socket.timeout):
        sixth.recv(1)
    held.pop().close()
    sixth.settimeout(5)
    assert sixth.recv(1) == b"b"
    for s in held + [sixth]:
        s.close()


def test_idle_connection_costs_at_most_256_bytes(serve):
    srv = uring(serve, "echo", "tcp://127.0.0.1:0")
    skip_unless_uring(srv)
    assert echo_exchange(srv.port(), b"warm") == (b"warm", "eof")
    time.sleep(0.2)
    before = pss_bytes(srv.pid)
    socks = [connect(srv.port()) for _ in range(2000)]
    socks[-1].sendall(b"z")  # every one accepted and armed by now
    assert socks[-1].recv(1) == b"z"
    time.sleep(0.3)
    per_conn = (pss_bytes(srv.pid) - before) / len(socks)
    for s in socks:
        s.close()
    assert per_conn <= 256, f"{per_conn:.0f} bytes per idle connection"


def test_sigterm_exits_0_after_the_last_echo(serve):
    srv = uring(serve, "echo", "tcp://127.0.0.1:0")
    s = connect(srv.port())
    s.sendall(b"before")
    assert s.recv(6) == b"before"
    srv.proc.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    assert srv.running()  # draining: the open connection still works
    s.sendall(b"after")
    s.shutdown(socket.SHUT_WR)
    assert read_to_end(s) == (b"after", "eof")
    s.close()
    assert srv.stop(timeout=5) == 0


# ---------------------------------------------------------------------------
# Fallback to the epoll model
# ---------------------------------------------------------------------------

def test_fallback_forced_by_environment(serve):
    env = dict(os.environ, DUPLEX_NO_URING="1")
    srv = uring(serve, "echo", "tcp://127.0.0.1:0", env=env)
    assert echo_exchange(srv.port(), b"via epoll") == (b"via epoll", "eof")
    notices = NOTICE_RE.findall(srv.stderr())
    assert notices == ["Function not implemented"], srv.stderr()
    assert srv.stop() == 0
    assert srv.stderr().count(NOTICE) == 1


def test_fallback_when_io_uring_setup_fails(serve, tmp_path):
    """io_uring_setup(2) fails with EPERM, as under
    kernel.io_uring_disabled=2: one notice, and the server runs on
    epoll. strace injects the failure into this process only."""
    skip_unless_uring(uring(serve, "echo", "tcp://127.0.0.1:0"))
    err_path = tmp_path / "stderr"
    with open(err_path, "wb") as err:
        p = subprocess.Popen(
                [need("strace"), "-f", "-qq", "-o", "/dev/null",
                 "-e", "trace=io_uring_setup",
                 "-e", "inject=io_uring_setup:error=EPERM", duplex_path(),
                 "serve", "--model", "uring", "echo", "tcp://127.0.0.1:0"],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err,
                # LeakSanitizer cannot run under ptrace (strace).
                env={**os.environ, "ASAN_OPTIONS": "detect_leaks=0"})
    try:
        ready, _, _ = select.select([p.stdout], [], [], 10)
        assert ready, "no 'serving' line within 10 s"
        line = p.stdout.readline().decode()
        port = int(line.rsplit(":", 1)[1])
        assert echo_exchange(port, b"no ring") == (b"no ring", "eof")
        children = open(f"/proc/{p.pid}/task/{p.pid}/children").read()
        os.kill(int(children.split()[0]), signal.SIGTERM)
        assert p.wait(timeout=10) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(timeout=5)
        p.stdout.close()
    text = err_path.read_text()
    assert NOTICE_RE.findall(text) == ["Operation not permitted"], text
