# SPDX-License-Identifier: MIT
"""`make install` as a packager runs it (DESTDIR, PREFIX=/usr): every
artefact lands where it should, and a program built against the installed
header and library through the installed pkg-config file alone compiles,
links statically and runs. Also that the pkg-config file climbs out of
Debian's multiarch libdir (lib/x86_64-linux-gnu) to the right prefix."""
import os
import pathlib
import re
import shutil
import subprocess

import pytest

from conftest import ROOT, duplex_path

PROGRAM = r"""
#include <duplex.h>
#include <errno.h>
#include <stdio.h>

int main(void)
{
	uint16_t port;
	if (dx_port_parse("65536", &port) >= 0 || dx_port_parse("7", &port) < 0)
		return 1;
	printf("%u %s\n", port, dx_port_class_name(dx_port_class(port)));
	return 0;
}
"""


def build_dir():
    return pathlib.Path(duplex_path()).resolve().parent


def tool(name):
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed (make check installs it)")
    return path


@pytest.fixture
def installed(tmp_path):
    dest = tmp_path / "pkg"
    p = subprocess.run(["cmake", "--install", str(build_dir()), "--prefix",
                        "/usr"], env={**os.environ, "DESTDIR": str(dest)},
                       capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr.decode()
    return dest / "usr"


def one(root, pattern):
    found = sorted(root.glob(pattern))
    assert found, f"nothing installed matches {pattern}"
    return found[0]


def test_install_puts_every_artefact_in_place(installed):
    assert os.access(installed / "bin" / "duplex", os.X_OK)
    assert (installed / "include" / "duplex.h").is_file()
    one(installed, "lib*/**/libduplex.a")
    one(installed, "lib*/**/libduplex.so*")
    one(installed, "lib*/**/pkgconfig/duplex.pc")
    man = installed / "share" / "man" / "man1" / "duplex.1"
    assert man.read_bytes().startswith(b".") and b"duplex" in man.read_bytes()


def test_program_builds_from_installed_pkg_config(installed, tmp_path):
    pc = one(installed, "lib*/**/pkgconfig/duplex.pc")
    # Our .pc first; liburing's own (Requires.private) from the system's.
    env = {**os.environ, "PKG_CONFIG_PATH": str(pc.parent)}
    flags = subprocess.run([tool("pkg-config"), "--cflags", "--libs",
                            "--static", "duplex"], env=env,
                           capture_output=True, timeout=30)
    assert flags.returncode == 0, flags.stderr.decode()
    words = flags.stdout.decode().split()
    assert "-lduplex" in words, words
    # Every directory it names is inside the installed tree (pkg-config
    # leaves out the system's own, where liburing's would be).
    dirs = [w[2:] for w in words if w[:2] in ("-I", "-L")]
    assert {w[:2] for w in words} >= {"-I", "-L"}, words
    for d in dirs:
        real = os.path.realpath(d)
        assert real.startswith(str(installed)), (d, real)
        assert os.path.isdir(real), d
    src = tmp_path / "prog.c"
    src.write_text(PROGRAM)
    exe = tmp_path / "prog"
    # A sanitizer build's library needs its runtime in the program too.
    san = os.environ.get("SANITIZE")
    words += [f"-fsanitize={san}"] if san else []
    cc = subprocess.run([tool("cc"), str(src), "-o", str(exe), *words],
                        capture_output=True, timeout=60)
    assert cc.returncode == 0, cc.stderr.decode()
    # Linked against the installed shared library, found where it lies.
    libdir = [d for d in dirs if os.path.isfile(os.path.join(d,
                                                             "libduplex.a"))]
    assert libdir, dirs
    out = subprocess.run([str(exe)], capture_output=True, timeout=10,
                         env={**os.environ, "LD_LIBRARY_PATH": libdir[0]})
    assert out.returncode == 0
    assert out.stdout == b"7 well-known\n"


def test_pkg_config_prefix_climbs_out_of_multiarch_libdir(tmp_path):
    """Configured for /usr, GNUInstallDirs picks lib/x86_64-linux-gnu on
    Debian: the file must go up three directories, not two."""
    b = tmp_path / "cfg"
    p = subprocess.run(["cmake", "-S", str(ROOT), "-B", str(b), "-G",
                        "Ninja", "-DCMAKE_INSTALL_PREFIX=/usr"],
                       capture_output=True, timeout=120)
    assert p.returncode == 0, p.stderr.decode()
    text = (b / "duplex.pc").read_text()
    prefix = re.search(r"^prefix=\$\{pcfiledir\}((?:/\.\.)+)$", text, re.M)
    libdir = re.search(r"^libdir=\$\{prefix\}/(\S+)$", text, re.M)
    assert prefix and libdir, text
    depth = len(pathlib.PurePosixPath(libdir.group(1), "pkgconfig").parts)
    assert prefix.group(1).count("..") == depth, text
    assert re.search(r"^includedir=\$\{prefix\}/include$", text, re.M), text
