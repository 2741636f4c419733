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

# The soak (S21) of each model, both at once, one pytest each: each is a
# steady load well under what two CPUs do, so together they take the
# wall time of one.
soak_one() {
	env DUPLEX="$top/$build/duplex" /usr/bin/python3 -m pytest -q \
		-p no:cacheprovider "tests/e2e/test_soak.py::test_soak[$1]" \
		>"$2/$1" 2>&1
}
soak() {
	logs=$(mktemp -d) || return 1
	soak_one fork "$logs" &
	fork_pid=$!
	soak_one epoll "$logs" &
	epoll_pid=$!
	# Background jobs of a script ignore SIGINT: an interrupted check
	# ends them itself.
	trap 'kill "$fork_pid" "$epoll_pid" 2>/dev/null; rm -rf "$logs"; exit 130' INT TERM
	rc=0
	wait "$fork_pid" || rc=1
	wait "$epoll_pid" || rc=1
	for model in fork epoll; do
		printf -- '-- soak, %s model\n' "$model"
		cat "$logs/$model"
	done
	trap - INT TERM
	rm -rf "$logs"
	return $rc
}
stage soak soak
# The concurrent server's suite once more per model (fork ran above).
for model in prefork thread epoll uring; do
	stage "e2e-$model" env DUPLEX="$top/$build/duplex" DUPLEX_MODEL=$model \
		/usr/bin/python3 -m pytest -q -p no:cacheprovider \
		tests/e2e/test_tcp_server.py tests/e2e/test_tcp_limits.py
done
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
