#!/bin/sh
# SPDX-License-Identifier: MIT
# deps.sh SET... - makes sure the Debian packages a make target needs are
# installed. SET is build, test, lint or bench. As root it installs what is
# missing with apt-get (refreshing the package lists first when they are
# missing or older than a day); otherwise it names the packages and fails.
set -eu

pkgs_build="gcc make cmake ninja-build"
# Test peers are real programs no one here wrote: nc, socat, ncat, xinetd
# (reference echo/daytime/chargen), util-linux (prlimit, setpriv); nftables and
# iproute2 for loss injection in network namespaces; clang for libFuzzer;
# libevent-dev for the benchmark's libevent echo, which the bench tests run;
# faketime to run the time server across the 2036 wrap.
pkgs_test="python3 python3-pytest netcat-openbsd socat ncat xinetd util-linux
	nftables iproute2 procps strace pkg-config liburing-dev clang
	libclang-rt-14-dev libevent-dev faketime"
pkgs_lint="clang-tidy cppcheck clang-format"
pkgs_bench="util-linux python3 socat ncat xinetd ucspi-tcp iperf3
	libevent-dev pkg-config liburing-dev"

wanted=""
for set in "$@"; do
	eval "wanted=\"\$wanted \$pkgs_$set\""
done

missing=""
for pkg in $wanted; do
	status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null) || status=""
	[ "$status" = installed ] || missing="$missing $pkg"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "duplex: missing Debian packages:$missing (as root: apt-get install -y$missing)" >&2
	exit 1
fi

lists=$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mmin -1440 2>/dev/null | head -n 1)
if [ -z "$lists" ]; then
	echo "duplex: refreshing the package lists (apt-get update)" >&2
	apt-get update -qq
fi
echo "duplex: installing:$missing" >&2
# shellcheck disable=SC2086
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
