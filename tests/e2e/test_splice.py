# SPDX-License-Identifier: MIT
"""echo's bulk path: a mirror service's stream turns to splice(2) once a
read fills the output buffer, and the bytes go socket -> pipe -> socket
without entering user space. These tests watch that happen (--trace) and
that nothing changes for the peer: every byte back in order, half-close,
a peer that stops reading held back by TCP, not by server memory. Run
under every model that drives the shared connection layer (the suite in
test_tcp_server.py covers the rest: 256 MiB random-size echoes, 50
concurrent 16 MiB echoes, half-close runs, all now through splice)."""
import hashlib
import os
import random
import re
import time

import pytest

from conftest import echo_held_back, pump, rss_kib, tree_of
from test_tcp_server import connect, start, v4

MODELS = ["fork", "thread", "epoll", "prefork", "uring"]


def drain_all(s, timeout=30):
    h, n, deadline = hashlib.sha256(), 0, time.monotonic() + timeout
    while time.monotonic() < deadline:
        b = s.recv(1 << 20)
        if not b:
            return h.hexdigest(), n
        h.update(b)
        n += len(b)
    raise AssertionError(f"no end of file within {timeout} s ({n} bytes)")


@pytest.mark.parametrize("model", MODELS)
def test_bulk_echo_goes_through_splice_byte_exact(serve, model):
    data = random.Random(17).randbytes(8 << 20)
    srv = start(serve, "--model", model, "--trace", "echo",
                "tcp://127.0.0.1:0")
    with connect(v4(srv), timeout=30) as s:
        t = pump(s, data)
        digest, n = drain_all(s)
        t.join(timeout=30)
    assert n == len(data)
    assert digest == hashlib.sha256(data).hexdigest()
    srv.stop()
    spliced = [int(m) for m in re.findall(
        r"splice\(\d+ -> \d+\) = (\d+) bytes", srv.stderr())]
    # Both directions: socket -> pipe and pipe -> socket, about 2 x 8 MiB.
    assert sum(spliced) > len(data), f"{sum(spliced)} bytes spliced"


@pytest.mark.parametrize("model", ["fork", "epoll"])
def test_small_exchanges_are_not_spliced(serve, model):
    srv = start(serve, "--model", model, "--trace", "echo",
                "tcp://127.0.0.1:0")
    with connect(v4(srv)) as s:
        for i in range(20):
            msg = b"ping %d" % i
            s.sendall(msg)
            assert s.recv(100) == msg
    srv.stop()
    assert "splice(" not in srv.stderr()


@pytest.mark.parametrize("model", ["fork", "epoll"])
def test_spliced_echo_to_a_peer_that_stops_reading_is_held_back(serve,
                                                                model):
    """The peer sends 64 MiB and reads nothing: the pipe fills, the server
    stops reading, TCP holds the sender back; the server's memory does
    not grow with what is sent, and once the peer reads, all of it comes
    back intact."""
    srv = start(serve, "--model", model, "echo", "tcp://127.0.0.1:0")
    data = random.Random(3).randbytes(64 << 20)

    def small():
        rss = sum(rss_kib(p) for p in tree_of(srv.pid))
        assert rss < 64 * 1024, f"server tree holds {rss} KiB"
    with connect(v4(srv), timeout=60) as s:
        echo_held_back(s, data, small)
