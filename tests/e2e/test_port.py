# SPDX-License-Identifier: MIT
"""End-to-end tests of `duplex port`: lookups by number, name and
protocol, the IANA classes and the OS ephemeral range, --ranges, --free
(whose answer must really be bindable), --json, and the bad inputs, which
must exit 2 with one stderr line that quotes the input."""
import errno
import json
import os
import pathlib
import socket
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
EPHEMERAL = pathlib.Path("/proc/sys/net/ipv4/ip_local_port_range")
DASH = "\u2014"


def duplex_bin():
    return os.environ.get("DUPLEX") or str(ROOT / "build" / "duplex")


def port(*args, timeout=10):
    """Runs `duplex port ARGS...` and returns the finished process."""
    return subprocess.run([duplex_bin(), "port", *args], capture_output=True,
                          text=True, timeout=timeout)


def ok(*args):
    proc = port(*args)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    return proc.stdout


def ok_json(*args):
    out = ok("--json", *args)
    assert out.endswith("\n") and out.count("\n") == 1
    return json.loads(out)


def ephemeral():
    lo, hi = EPHEMERAL.read_text().split()
    return int(lo), int(hi)


def relation(lo, hi):
    elo, ehi = ephemeral()
    if elo <= lo and hi <= ehi:
        return "inside"
    if hi < elo or lo > ehi:
        return "outside"
    return "partly inside"


def test_binary_exists():
    assert os.access(duplex_bin(), os.X_OK), duplex_bin()


def test_help():
    out = ok("--help")
    assert out.startswith("usage: duplex port")
    assert "--free LO-HI" in out and "--ranges" in out


@pytest.mark.parametrize("number,line", [
    ("7", f"7/tcp echo {DASH} Echo {DASH} well-known (0-1023)"),
    ("7", f"7/udp echo {DASH} Echo {DASH} well-known (0-1023)"),
    ("53", f"53/udp domain {DASH} Domain Name Server {DASH} "
           "well-known (0-1023)"),
    ("6010", f"6000-6063/tcp x11 {DASH} X Window System {DASH} "
             "registered (1024-49151)"),
    ("49152", f"49152/tcp (unassigned) {DASH} dynamic/private "
              "(49152-65535)"),
    ("49152", f"49152/udp (unassigned) {DASH} dynamic/private "
              "(49152-65535)"),
    ("65535", f"65535/tcp (unassigned) {DASH} dynamic/private "
              "(49152-65535)"),
])
def test_number(number, line):
    assert line in ok(number).splitlines()


def test_every_protocol_row():
    lines = ok("9").splitlines()
    assert [ln.split()[0] for ln in lines[:4]] == [
        "9/tcp", "9/udp", "9/sctp", "9/dccp"]


@pytest.mark.parametrize("number", ["0", "7", "1023", "1024", "32768",
                                    "49151", "49152", "60999", "61000",
                                    "65535"])
def test_ephemeral_line_for_every_port(number):
    elo, ehi = ephemeral()
    p = int(number)
    last = ok(number).splitlines()[-1]
    assert last == (f"{p}: {relation(p, p)} the OS ephemeral range "
                    f"{elo}-{ehi}")


def test_class_boundaries():
    for p, cls in [(0, "well-known (0-1023)"), (1023, "well-known (0-1023)"),
                   (1024, "registered (1024-49151)"),
                   (49151, "registered (1024-49151)"),
                   (49152, "dynamic/private (49152-65535)"),
                   (65535, "dynamic/private (49152-65535)")]:
        lines = ok(str(p)).splitlines()[:-1]
        assert lines and all(ln.endswith(f"{DASH} {cls}") for ln in lines)


def test_name_every_protocol():
    lines = ok("https").splitlines()
    assert lines[0].startswith("443/tcp https ")
    assert any(ln.startswith("443/udp https ") for ln in lines)
    assert lines[-1].startswith("443: outside the OS ephemeral range")


def test_name_with_protocol_and_case():
    lines = ok("HTTPS/tcp").splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("443/tcp https ")


def test_number_with_protocol():
    lines = ok("5353/udp").splitlines()
    assert lines[0] == (f"5353/udp mdns {DASH} Multicast DNS {DASH} "
                        "registered (1024-49151)")
    assert len(lines) == 2


def test_name_on_two_ports():
    lines = ok("compressnet/tcp").splitlines()
    assert [ln.split()[0] for ln in lines[:2]] == ["2/tcp", "3/tcp"]
    assert lines[2].startswith("2: ") and lines[3].startswith("3: ")


def test_services_alias():
    try:
        expect = socket.getservbyname("sink", "tcp")
    except OSError:
        pytest.skip("no 'sink' alias in the services database")
    doc = ok_json("sink/tcp")
    assert doc["source"] == "services"
    assert doc["ports"][0]["port"] == expect
    assert [e["name"] for e in doc["entries"]] == ["discard"]


def test_ranges_text():
    elo, ehi = ephemeral()
    lines = ok("--ranges").splitlines()
    assert lines[0].split()[:3] == ["range", "low", "high"]
    rows = {ln[:16].strip(): ln[16:].split() for ln in lines[1:5]}
    assert rows["well-known"][:2] == ["0", "1023"]
    assert rows["registered"][:2] == ["1024", "49151"]
    assert rows["dynamic/private"][:2] == ["49152", "65535"]
    assert rows["OS ephemeral"][:2] == [str(elo), str(ehi)]
    # The numbers are right-aligned under the headings.
    for ln in lines[:5]:
        assert ln[16] == " " and ln[22] == " " and ln[28:30] == "  "
        assert ln[21] != " " and ln[27] != " "
    if elo <= 49151:
        assert rows["registered"][2] == f"{elo}-{min(ehi, 49151)}"


def test_ranges_json():
    elo, ehi = ephemeral()
    doc = ok_json("--ranges")
    assert [(r["class"], r["low"], r["high"]) for r in doc["ranges"]] == [
        ("well-known", 0, 1023), ("registered", 1024, 49151),
        ("dynamic/private", 49152, 65535)]
    assert doc["ephemeral_range"] == {"low": elo, "high": ehi}
    for r in doc["ranges"]:
        lo, hi = max(r["low"], elo), min(r["high"], ehi)
        want = {"low": lo, "high": hi} if lo <= hi else None
        assert r["ephemeral_overlap"] == want


def test_number_json():
    doc = ok_json("7")
    assert doc["query"] == "7" and doc["source"] == "number"
    assert doc["proto"] is None
    assert [(e["name"], e["proto"], e["port"], e["description"])
            for e in doc["entries"]] == [("echo", "tcp", 7, "Echo"),
                                         ("echo", "udp", 7, "Echo")]
    assert doc["ports"] == [{"port": 7, "port_high": 7,
                             "class": "well-known", "class_low": 0,
                             "class_high": 1023,
                             "ephemeral": relation(7, 7)}]


def test_unassigned_json():
    doc = ok_json("49152/udp")
    assert doc["proto"] == "udp" and doc["entries"] == []
    assert doc["ports"][0]["class"] == "dynamic/private"
    assert doc["ports"][0]["ephemeral"] == relation(49152, 49152)


def test_name_json():
    doc = ok_json("https/tcp")
    assert doc["source"] == "iana" and doc["proto"] == "tcp"
    assert [(e["name"], e["port"]) for e in doc["entries"]] == [
        ("https", 443)]
    doc = ok_json("x11")
    assert {(e["port"], e["port_high"]) for e in doc["entries"]} == {
        (6000, 6063)}
    assert doc["ports"][0]["port_high"] == 6063


def bindable(number, kind):
    """Binds 127.0.0.1 and 0.0.0.0 one after the other, as --free does."""
    for host in ("127.0.0.1", "0.0.0.0"):
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind((host, number))


@pytest.mark.parametrize("udp", [False, True])
def test_free(udp):
    kind = socket.SOCK_DGRAM if udp else socket.SOCK_STREAM
    args = ["--free", "49152-65535"] + (["--udp"] if udp else [])
    out = ok(*args)
    number = int(out)
    assert out == f"{number}\n" and 49152 <= number <= 65535
    bindable(number, kind)


def test_free_json_and_randomness():
    seen = set()
    for _ in range(5):
        doc = ok_json("--free", "50000-59999")
        assert doc["proto"] == "tcp"
        assert (doc["low"], doc["high"]) == (50000, 59999)
        assert 50000 <= doc["port"] <= 59999
        seen.add(doc["port"])
    assert len(seen) > 1  # a pseudo-random order, not the first free port


def test_free_single_port_in_use():
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        taken = s.getsockname()[1]
        proc = port("--free", f"{taken}-{taken}")
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == [
        f"duplex: no free tcp port in '{taken}-{taken}': "
        "every port is in use"]


def test_free_udp_loopback_in_use():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        taken = s.getsockname()[1]
        proc = port("--udp", "--free", str(taken))
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        f"duplex: no free udp port in '{taken}': every port is in use"]


def test_free_skips_ports_in_use():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        taken = s.getsockname()[1]
        other = taken + 1 if taken < 65535 else taken - 1
        try:
            bindable(other, socket.SOCK_STREAM)
        except OSError:
            pytest.skip(f"port {other} next to {taken} is in use")
        lo, hi = min(taken, other), max(taken, other)
        for _ in range(10):
            assert int(ok("--free", f"{lo}-{hi}")) == other


@pytest.mark.parametrize("args,message", [
    (["65536"], "bad port '65536': port 65536 is out of range 0-65535"),
    (["-1"], "bad port '-1': port -1 is out of range 0-65535"),
    (["99999999999999999999"], "bad port '99999999999999999999': port "
     "99999999999999999999 is out of range 0-65535"),
    (["7x"], "bad port '7x': '7x' is not a decimal number or a service "
     "name"),
    (["0x50"], "bad port '0x50': '0x50' is not a decimal number or a "
     "service name"),
    (["+7"], "bad port '+7': '+7' is not a decimal number or a service "
     "name"),
    ([" 7"], "bad port ' 7': ' 7' is not a decimal number or a service "
     "name"),
    ([""], "bad port '': port is missing"),
    (["http/sctpx"], "bad port 'http/sctpx': unknown protocol 'sctpx' "
     "(tcp, udp, sctp or dccp)"),
    (["70000/udp"], "bad port '70000/udp': port 70000 is out of range "
     "0-65535"),
    (["nosuchservice"], "bad port 'nosuchservice': unknown service name "
     "'nosuchservice'"),
    (["https/dccp"], "bad port 'https/dccp': unknown service name 'https' "
     "for dccp"),
    (["--free", "80-"], "bad port range '80-': high port is missing "
     "(expected LO-HI)"),
    (["--free", "900-80"], "bad port range '900-80': low port 900 is above "
     "high port 80"),
    (["--free", "80-70000"], "bad port range '80-70000': port 70000 is out "
     "of range 0-65535"),
    (["--free", "a-b"], "bad port range 'a-b': 'a' is not a decimal number "
     "(expected LO-HI)"),
    (["--free", "-5"], "bad port range '-5': low port is missing "
     "(expected LO-HI)"),
    (["--free", "0-10"], "bad port range '0-10': port 0 is no port to bind "
     "(it asks the kernel for any free port)"),
])
def test_bad_input(args, message):
    for extra in ([], ["--json"]):
        proc = port(*extra, *args)
        assert proc.returncode == 2
        assert proc.stdout == ""
        assert proc.stderr.splitlines() == [f"duplex: {message}"]


@pytest.mark.parametrize("args,words", [
    ([], "missing PORT"),
    (["7", "8"], "one PORT or NAME at a time"),
    (["--bogus"], "unknown option '--bogus'"),
    (["--free"], "missing argument for '--free'"),
    (["--ranges", "7"], "one at a time"),
    (["--ranges", "--free", "1-2"], "one at a time"),
    (["--udp", "7"], "--udp goes with --free"),
])
def test_usage_errors(args, words):
    proc = port(*args)
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("duplex: port: ") and words in lines[0]


def test_write_error():
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    with open("/dev/full", "w") as full:
        proc = subprocess.run([duplex_bin(), "port", "7"], stdout=full,
                              stderr=subprocess.PIPE, text=True, timeout=10)
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        "duplex: port: cannot write the output: "
        f"{os.strerror(errno.ENOSPC)}"]
