# SPDX-License-Identifier: MIT
"""End-to-end tests of the epoll model's reactors: one reactor thread per
CPU (or --workers N), each an event loop of its own, sharing the limits.
With --workers 2 connections are served by more than one reactor, the
limits (--max-conns, --per-source, --rate) hold for the whole server, a
SIGTERM drains every reactor and exits 0, and SIGUSR1 logs the sums.
Under `taskset -c 0` the default is one reactor: the single-threaded epoll
model, one thread. Both ways of sharing a listener are run where it
matters: the default (one socket, EPOLLEXCLUSIVE) and DUPLEX_BALANCE=
reuseport (a SO_REUSEPORT socket per reactor). Traffic goes only to
127.0.0.0/8; every wait is bounded; every server is ended by its pid (the
serve fixture's teardown)."""
import os
import re
import signal
import socket
import threading
import time

import pytest

from conftest import count_pairs, run
from test_tcp_server import (SLOW, children, connect, read_to_end,
                             recv_exactly, script, wait_for)

BALANCES = ["exclusive", "reuseport"]


def env_for(balance):
    env = dict(os.environ)
    env["DUPLEX_BALANCE"] = balance
    return env


def start(serve, *args, balance="exclusive", workers=2):
    """duplex serve --model epoll [--workers N] ARGS."""
    args = ["--model", "epoll", *(str(a) for a in args)]
    if workers is not None:
        args += ["--workers", str(workers)]
    return serve(*args, env=env_for(balance), listeners=count_pairs(args))


def threads(pid):
    """The names of PID's threads (/proc/PID/task/*/comm). A sanitizer's
    runtime may add threads of its own, named as the program is: sanitizer
    builds (DUPLEX_TIME_SCALE set) are checked for reactors only."""
    names = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                names.append(f.read().strip())
        except OSError:
            pass
    return sorted(names)


def echo_once(addr, payload=b"ping\n", timeout=5.0):
    """Connects, sends PAYLOAD, half-closes, returns (data, how)."""
    with connect(addr, timeout=timeout) as s:
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        return read_to_end(s, timeout=timeout)


def hammer(addr, clients, each, timeout=10.0):
    """CLIENTS threads each make EACH echo connections at once; returns
    the number answered correctly."""
    good = [0] * clients

    def one(i):
        for _ in range(each):
            try:
                if echo_once(addr, b"x", timeout=timeout) == (b"x", "eof"):
                    good[i] += 1
            except OSError:
                pass

    ts = [threading.Thread(target=one, args=(i,), daemon=True)
          for i in range(clients)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout * each + 5)
    return sum(good)


PER_REACTOR_RE = re.compile(r"counters: reactor (\d+): accepted (\d+)")
ACCEPTED_RE = re.compile(r"counters: connections: accepted=(\d+)")


def last_counts(srv):
    """(accepted, {reactor: accepted}) from the last SIGUSR1 block (-v)."""
    text = srv.stderr()
    acc = [int(m) for m in ACCEPTED_RE.findall(text)]
    per = {}
    for k, n in PER_REACTOR_RE.findall(text):
        per[int(k)] = int(n)  # later lines overwrite earlier ones
    return (acc[-1] if acc else None), per


def held(addr, n, payload=b"x", src=None, clients=4):
    """N connections opened by CLIENTS threads at once (concurrent
    arrivals are what spread connections over EPOLLEXCLUSIVE reactors),
    each having sent PAYLOAD and kept open."""
    out = [[] for _ in range(clients)]

    def one(i):
        for _ in range(i, n, clients):
            s = connect(addr, src=src)
            out[i].append(s)
            s.sendall(payload)

    ts = [threading.Thread(target=one, args=(i,), daemon=True)
          for i in range(clients)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(10)
    socks = [s for part in out for s in part]
    assert len(socks) == n
    return socks


def held_at_once(addr, clients, each, payload=b"a"):
    """CLIENTS threads each open EACH connections at once (concurrent
    arrivals are what spread connections over EPOLLEXCLUSIVE reactors),
    send PAYLOAD and wait for its echo; returns the sockets."""
    out = [[] for _ in range(clients)]

    def one(i):
        for _ in range(each):
            s = connect(addr)
            out[i].append(s)
            s.sendall(payload)
            recv_exactly(s, len(payload))

    ts = [threading.Thread(target=one, args=(i,), daemon=True)
          for i in range(clients)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(10)
    socks = [s for part in out for s in part]
    assert len(socks) == clients * each
    return socks


def answered(socks, timeout):
    """Splits SOCKS into (echoed, closed, waiting) within TIMEOUT s."""
    echoed, closed, waiting = [], [], []
    deadline = time.monotonic() + timeout
    for s in socks:
        s.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = s.recv(16)
        except socket.timeout:
            waiting.append(s)
            continue
        except ConnectionResetError:
            data = b""
        (echoed if data else closed).append(s)
    return echoed, closed, waiting


# ---------------------------------------------------------------------------
# How many reactors
# ---------------------------------------------------------------------------

def test_one_cpu_is_one_thread(serve):
    """Under `taskset -c 0` (the affinity the server inherits) the
    default is one reactor: the epoll model alone, in the main thread."""
    saved = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(saved)})
    try:
        srv = start(serve, "-v", "echo", "tcp://127.0.0.1:0", workers=None)
    finally:
        os.sched_setaffinity(0, saved)
    time.sleep(0.2)  # reactors, if any, would start now
    wait_threads(srv, ["duplex"])
    assert echo_once(srv.addr()) == (b"ping\n", "eof")
    wait_threads(srv, ["duplex"])
    assert "reactors" not in srv.stderr()
    assert srv.stop() == 0


def wait_threads(srv, want):
    """Waits until the server's threads are WANT: reactors start with the
    main loop, just after the 'serving' lines."""
    def now():
        names = threads(srv.pid)
        return names if SLOW == 1 else sorted(
            ["duplex"] + [n for n in names if n.startswith("duplex-r")])
    wait_for(lambda: now() == sorted(want), 5 * SLOW,
             what=f"threads {want} (now {threads(srv.pid)})")


def test_default_is_one_reactor_per_cpu(serve):
    srv = start(serve, "echo", "tcp://127.0.0.1:0", workers=None)
    n = len(os.sched_getaffinity(0))
    want = ["duplex"] + ([f"duplex-r{k}" for k in range(n)] if n > 1 else [])
    wait_threads(srv, want)
    assert srv.stop() == 0


def test_workers_sets_the_count(serve):
    srv = start(serve, "echo", "tcp://127.0.0.1:0", workers=3)
    wait_threads(srv, ["duplex", "duplex-r0", "duplex-r1", "duplex-r2"])
    assert echo_once(srv.addr()) == (b"ping\n", "eof")
    assert srv.stop() == 0


def test_bad_balance_exits_2_with_one_line(duplex):
    env = env_for("roundrobin")
    p = run(["serve", "--model", "epoll", "echo", "tcp://127.0.0.1:0"],
            env=env)
    assert p.returncode == 2
    err = p.stderr.decode().strip().splitlines()
    assert len(err) == 1 and "roundrobin" in err[0], err


# ---------------------------------------------------------------------------
# Balance, counters, datagrams alongside
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("balance", BALANCES)
def test_connections_are_served_by_both_reactors(serve, balance):
    """Concurrent clients are spread over the two reactors (the per-
    reactor counts at -v), and SIGUSR1 logs their sums: accepted and the
    listener's served both equal what the clients saw answered."""
    srv = start(serve, "-v", "echo", "tcp://127.0.0.1:0", balance=balance)
    total, per = 0, {}
    for _ in range(5):  # bounded: a busy machine may need more rounds
        total += hammer(srv.addr(), clients=8, each=25)
        srv.usr1()
        accepted, per = last_counts(srv)
        if len(per) == 2 and min(per.values()) > 0:
            break
    assert sorted(per) == [0, 1], srv.stderr()
    assert min(per.values()) > 0, f"one reactor served everything: {per}"
    assert accepted == total == sum(per.values())
    assert srv.served() == total
    assert srv.stop() == 0
    # At exit the reactors have been joined: the sums stay whole.
    accepted, _ = last_counts(srv)
    assert accepted == total and srv.served() == total


@pytest.mark.parametrize("balance", BALANCES)
def test_connections_arriving_one_at_a_time_are_spread(serve, balance):
    """40 held connections arriving 5 ms apart: EPOLLEXCLUSIVE alone would
    wake the same idle reactor for each; a reactor over its share (plus
    2) stops watching, so each holds 18-22. SO_REUSEPORT spreads by a
    hash of the client's address and port: both get some."""
    srv = start(serve, "-v", "echo", "tcp://127.0.0.1:0", balance=balance)
    socks = []
    try:
        for _ in range(40):
            s = connect(srv.addr())
            socks.append(s)
            s.sendall(b"x")
            recv_exactly(s, 1)
            time.sleep(0.005)
        srv.usr1()
        per = last_counts(srv)[1]
    finally:
        for s in socks:
            s.close()
    assert sum(per.values()) == 40, per
    if balance == "exclusive":
        assert 18 <= min(per.values()) <= 20, per
    else:
        assert min(per.values()) > 0, per


def test_datagrams_are_served_beside_the_reactors(serve):
    srv = start(serve, "echo", "tcp://127.0.0.1:0", "echo",
                "udp://127.0.0.1:0")
    assert echo_once(srv.addr(0)) == (b"ping\n", "eof")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.settimeout(2)
        u.sendto(b"dgram", srv.addr(1))
        assert u.recvfrom(64)[0] == b"dgram"
    srv.usr1()
    assert srv.served(0) == 1 and srv.served(1) == 1
    assert srv.stop() == 0


@pytest.mark.parametrize("balance", BALANCES)
def test_second_instance_fails_with_eaddrinuse(serve, duplex, balance):
    """Reliability scenario S25: a second server on the same address
    exits non-zero with EADDRINUSE, in either balance mode (reuseport
    too: each server binds first without SO_REUSEPORT)."""
    first = start(serve, "echo", "tcp://127.0.0.1:0", balance=balance)
    for second in BALANCES:
        p = run(["serve", "--model", "epoll", "--workers", "2", "echo",
                 f"tcp://127.0.0.1:{first.port()}"], env=env_for(second),
                timeout=10)
        assert p.returncode != 0, (balance, second)
        assert b"Address already in use" in p.stderr, p.stderr
    assert echo_once(first.addr()) == (b"ping\n", "eof")


def test_exec_under_reactors_leaves_no_child(serve):
    srv = start(serve, "exec:/bin/cat", "tcp://127.0.0.1:0")
    assert hammer(srv.addr(), clients=6, each=10) == 60
    wait_for(lambda: not children(srv.pid), 5 * SLOW,
             what="every exec program waited for")
    assert srv.stop() == 0


# ---------------------------------------------------------------------------
# Limits hold for the whole server
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("balance", BALANCES)
def test_max_conns_is_exact_across_reactors(serve, balance):
    """--max-conns 5 with 20 clients: exactly 5 served at once, none
    refused (the rest wait in the backlog); each one that ends lets
    exactly one more in."""
    srv = start(serve, "echo", "tcp://127.0.0.1:0", "--max-conns", "5",
                "--drain", "500ms", balance=balance)
    socks = held(srv.addr(), 20)
    try:
        echoed, closed, waiting = answered(socks, 1.0 * SLOW)
        assert (len(echoed), len(closed)) == (5, 0)
        for s in echoed[:2]:
            s.close()
        more, closed, waiting = answered(waiting, 1.0 * SLOW)
        assert (len(more), len(closed), len(waiting)) == (2, 0, 13)
    finally:
        for s in socks:
            s.close()
    assert "max-conns-deferred" in srv.stderr()


@pytest.mark.parametrize("balance", BALANCES)
def test_per_source_is_exact_across_reactors(serve, balance):
    """--per-source 3: of 12 clients from 127.0.0.1, spread over both
    reactors, exactly 3 are served and 9 closed at once; 127.0.0.2 is
    another source."""
    srv = start(serve, "echo", "tcp://127.0.0.1:0", "--per-source", "3",
                "--drain", "500ms", balance=balance)
    socks = []
    try:
        socks = held(srv.addr(), 12)
        echoed, closed, waiting = answered(socks, 1.0 * SLOW)
        assert (len(echoed), len(closed), len(waiting)) == (3, 9, 0)
        other = held(srv.addr(), 3, src="127.0.0.2")
        socks += other
        echoed, closed, _ = answered(other, 1.0 * SLOW)
        assert (len(echoed), len(closed)) == (3, 0)
    finally:
        for s in socks:
            s.close()
    srv.usr1()
    assert "per-source-limit=9" in srv.stderr()


@pytest.mark.parametrize("balance", BALANCES)
def test_rate_is_one_bucket_for_the_server(serve, balance):
    """--rate 10/s with two reactors: the listener's one bucket, not one
    per reactor. Over about 2 s of a full backlog, at most 10 (the burst)
    + 10 a second are served; two buckets would serve twice that."""
    rate = 10
    srv = start(serve, "echo", "tcp://127.0.0.1:0", "--rate", f"{rate}/s",
                "--drain", "500ms", balance=balance)
    t0 = time.monotonic()
    socks = held(srv.addr(), 80)
    try:
        time.sleep(2.0)
        served = len(answered(socks, 0.05)[0])
        el = time.monotonic() - t0
        assert served <= rate + rate * el + 2, f"{served} in {el:.2f} s"
        assert served >= rate, f"only {served} in {el:.2f} s"
    finally:
        for s in socks:
            s.close()
    assert "rate-deferred" in srv.stderr()


# ---------------------------------------------------------------------------
# SIGTERM
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("balance", BALANCES)
def test_sigterm_drains_every_reactor_then_exits_0(serve, balance):
    """Connections open on both reactors at SIGTERM are still served to
    their end; new clients are not; then the server exits 0."""
    srv = start(serve, "-v", "echo", "tcp://127.0.0.1:0", balance=balance)
    socks = []
    for _ in range(5):  # bounded: until both reactors hold one
        socks += held_at_once(srv.addr(), clients=8, each=4)
        srv.usr1()
        per = last_counts(srv)[1]
        if len(per) == 2 and min(per.values()) > 0:
            break
    assert min(per.values()) > 0, per
    srv.proc.send_signal(signal.SIGTERM)
    wait_for(lambda: srv.stderr().count("stopping on SIGTERM") == 3,
             5 * SLOW, what="both reactors stopping")
    # Every reactor's listener (its own under reuseport) stops
    # listening: a new client is refused, not left in a queue.
    for _ in range(8):
        with pytest.raises(ConnectionRefusedError):
            connect(srv.addr(), timeout=2).close()
    for s in socks:  # still served after the SIGTERM
        s.sendall(b"b")
        assert recv_exactly(s, 1) == b"b"
        s.shutdown(socket.SHUT_WR)
        assert read_to_end(s, timeout=5) == (b"", "eof")
        s.close()
    assert srv.stop(timeout=5 * SLOW) == 0


def test_drain_deadline_ends_held_connections_on_every_reactor(serve,
                                                              tmp_path):
    """--drain 500ms: connections that never end (an exec program that
    sleeps, an idle echo) are ended by each reactor at the deadline;
    the server exits 0 and leaves no program running."""
    prog = script(tmp_path, "hold.sh", "exec sleep 30\n")
    srv = start(serve, f"exec:{prog}", "tcp://127.0.0.1:0", "echo",
                "tcp://127.0.0.1:0", "--drain", "500ms")
    socks = held(srv.addr(0), 6) + held(srv.addr(1), 6, payload=b"e")
    try:
        wait_for(lambda: len(children(srv.pid)) == 6, 5 * SLOW,
                 what="six programs running")
        t0 = time.monotonic()
        assert srv.stop(timeout=5 * SLOW) == 0
        took = time.monotonic() - t0
        assert took < 3 * SLOW, f"exited {took:.1f} s after SIGTERM"
        for s in socks:
            assert read_to_end(s, timeout=2)[1] in ("eof", "reset")
    finally:
        for s in socks:
            s.close()
    assert "drain time over" in srv.stderr()
