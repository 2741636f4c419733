#!/bin/sh
# SPDX-License-Identifier: MIT
# check.sh BUILDDIR - the whole test suite, as `make check` runs it: unit
# tests (CTest), end-to-end tests (pytest, against the real binary), the
# style and lint checks, and a short libFuzzer run of every parser. Every
# stage runs even when an earlier one failed, so one run shows everything;
# the exit status is non-zero when any stage failed.
set -u
build=${1:-build}
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 1
failed=""
# Sanitizer builds are slower: tests scale their grace periods by this.
[ -n "${SANITIZE:-}" ] && export DUPLEX_TIME_SCALE=5

stage() {
	name=$1
	shift
	printf '\n==== %s\n' "$name"
	"$@" || failed="$failed $name"
}

stage unit ctest --test-dir "$build" --output-on-failure -j 2 -L unit
stage e2e env DUPLEX="$top/$build/duplex" /usr/bin/python3 -m pytest \
	-q -p no:cacheprovider --ignore tests/e2e/test_soak.py tests/e2e

# Stages run side by side, one pytest each, with their output printed
# stage by stage once all have ended. Each must be far from a CPU's worth
# of work (the model suites sleep on timeouts most of their time: about
# 45 s of CPU in 105 s), so two at once take the wall time of one on two
# CPUs. Under sanitizers, where every test costs several times the CPU,
# they run one after another. "side NAME CMD..." starts one; "side_wait"
# waits for all, prints them and counts their failures.
side_names=""
side_ids="" # a job's pid, or rcN for one that ran in the foreground
side_logs=""
side() {
	[ -n "$side_logs" ] || side_logs=$(mktemp -d) || exit 1
	name=$1
	shift
	side_names="$side_names $name"
	if [ -n "${SANITIZE:-}" ]; then
		"$@" >"$side_logs/$name" 2>&1
		side_ids="$side_ids rc$?"
		return
	fi
	"$@" >"$side_logs/$name" 2>&1 &
	side_ids="$side_ids $!"
	# Background jobs of a script ignore SIGINT: an interrupted check
	# ends them itself.
	trap 'kill $side_ids 2>/dev/null; rm -rf "$side_logs"; exit 130' INT TERM
}
side_wait() {
	set -- $side_ids
	for name in $side_names; do
		case $1 in
		rc*) rc=${1#rc} ;;
		*)
			wait "$1"
			rc=$?
			;;
		esac
		shift
		printf '\n==== %s\n' "$name"
		cat "$side_logs/$name"
		[ "$rc" -eq 0 ] || failed="$failed $name"
	done
	trap - INT TERM
	rm -rf "$side_logs"
	side_names=""
	side_ids=""
	side_logs=""
}
pytest_e2e() {
	env DUPLEX="$top/$build/duplex" /usr/bin/python3 -m pytest -q \
		-p no:cacheprovider "$@"
}
pytest_model() {
	DUPLEX_MODEL=$1 pytest_e2e tests/e2e/test_tcp_server.py \
		tests/e2e/test_tcp_limits.py
}

# The soak (S21) of each model, both at once: each is a steady load well
# under what two CPUs do, so together they take the wall time of one.
side soak-fork pytest_e2e "tests/e2e/test_soak.py::test_soak[fork]"
side soak-epoll pytest_e2e "tests/e2e/test_soak.py::test_soak[epoll]"
side_wait
# The concurrent server's suite once more per model (fork ran above), two
# models at a time.
side e2e-prefork pytest_model prefork
side e2e-thread pytest_model thread
side_wait
side e2e-epoll pytest_model epoll
side e2e-uring pytest_model uring
side_wait
if [ -z "${SANITIZE:-}" ]; then
	stage lint make -s lint
	# The fuzz build is clang with ASan and UBSan: the unit tests run
	# there once more, where an overflow inside the heap is an error.
	stage fuzz sh -c 'make -s fuzz-build >/dev/null &&
		ctest --test-dir build-fuzz --output-on-failure -j 2 -L "unit|fuzz"'
fi

printf '\n'
if [ -n "$failed" ]; then
	echo "duplex: check FAILED:$failed"
	exit 1
fi
echo "duplex: check passed"
