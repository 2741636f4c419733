/* SPDX-License-Identifier: MIT */
/*
 * test_io.c - the I/O layer under injected faults: entries of dx__sys are
 * swapped for fakes that fail with EINTR or EAGAIN, write one byte at a
 * time or act on the peer before polling, over real socket pairs. Every
 * test restores the table with dx__sys_reset().
 */
#include "internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

/* Slack for scheduling delays on a loaded machine (sanitizers, CI). */
#define MARGIN_MS 1000
/* The bound on every wait that should end at once. */
#define WAIT_MS 5000

/* ------------------------------------------------------------------------
 * Fakes: after PASS calls that go through, the next FAILS calls (-1: all)
 * fail with ERR and the rest go through to libc again, each moving at
 * most CAP bytes when CAP is not 0.
 * ------------------------------------------------------------------------ */

static struct {
	int pass;
	int fails;
	int err;
	int calls;
	size_t cap;
} fault;

/* The poll fake's script: failures as above, an action, its timeouts. */
static struct {
	int fails;
	int err;
	int calls;
	int sleep_ms;         /* before each failure */
	short force;          /* nonzero: return these revents at once */
	void (*before)(void); /* run before the first real poll */
	void (*each)(void);   /* run before every real poll */
	int timeouts[16];
} pfault;

static void
fault_set(int fails, int err, size_t cap)
{
	memset(&fault, 0, sizeof(fault));
	memset(&pfault, 0, sizeof(pfault));
	fault.fails = fails;
	fault.err = err;
	fault.cap = cap;
}

/*
 * Counts the call; returns 1 when it must fail (errno set). A loop that
 * never ends (a regression) runs into ENOSPC instead of hanging the test.
 */
static int
fault_now(void)
{
	if (++fault.calls > 20000000) {
		errno = ENOSPC;
		return 1;
	}
	if (fault.pass > 0) {
		fault.pass--;
		return 0;
	}
	if (fault.fails == 0)
		return 0;
	if (fault.fails > 0)
		fault.fails--;
	errno = fault.err;
	return 1;
}

static size_t
fault_cap(size_t len)
{
	return fault.cap != 0 && len > fault.cap ? fault.cap : len;
}

static ssize_t
fake_read(int fd, void *buf, size_t len)
{
	return fault_now() ? -1 : read(fd, buf, fault_cap(len));
}

static ssize_t
fake_write(int fd, const void *buf, size_t len)
{
	return fault_now() ? -1 : write(fd, buf, fault_cap(len));
}

static ssize_t
fake_send(int fd, const void *buf, size_t len, int flags)
{
	return fault_now() ? -1 : send(fd, buf, fault_cap(len), flags);
}

static ssize_t
fake_recvmsg(int fd, struct msghdr *msg, int flags)
{
	return fault_now() ? -1 : recvmsg(fd, msg, flags);
}

static ssize_t
fake_sendto(int fd, const void *buf, size_t len, int flags,
            const struct sockaddr *to, socklen_t tolen)
{
	return fault_now() ? -1 : sendto(fd, buf, len, flags, to, tolen);
}

static ssize_t
fake_splice(int in, loff_t *in_off, int out, loff_t *out_off, size_t len,
            unsigned flags)
{
	return fault_now() ? -1
	                   : splice(in, in_off, out, out_off, fault_cap(len),
	                            flags);
}

static void
sleep_ms(int ms)
{
	struct timespec ts = {.tv_sec = ms / 1000,
	                      .tv_nsec = (long)(ms % 1000) * 1000000};

	nanosleep(&ts, NULL);
}

static int
fake_poll(struct pollfd *fds, nfds_t n, int timeout)
{
	int i = pfault.calls++;

	if (i < (int)DX_ARRAY_LEN(pfault.timeouts))
		pfault.timeouts[i] = timeout;
	if (pfault.fails > 0) {
		pfault.fails--;
		sleep_ms(pfault.sleep_ms);
		errno = pfault.err;
		return -1;
	}
	if (pfault.force != 0) {
		fds[0].revents = pfault.force;
		return 1;
	}
	if (pfault.before != NULL) {
		pfault.before();
		pfault.before = NULL;
	}
	if (pfault.each != NULL)
		pfault.each();
	return poll(fds, n, timeout);
}

/* ------------------------------------------------------------------------
 * Fixtures
 * ------------------------------------------------------------------------ */

static int pair[2] = {-1, -1};

static int
pair_open(int type)
{
	return socketpair(AF_UNIX, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
	                  pair);
}

static void
pair_close(void)
{
	for (int i = 0; i < 2; i++) {
		if (pair[i] >= 0)
			close(pair[i]);
		pair[i] = -1;
	}
}

/* Fills FD's send buffer until the kernel says EAGAIN (bounded). */
static int
fill(int fd)
{
	static char junk[65536];

	for (int i = 0; i < 100000; i++)
		if (write(fd, junk, sizeof(junk)) < 0)
			return errno == EAGAIN ? 0 : -1;
	return -1;
}

/* A UDP socket bound to 127.0.0.1 on a port the kernel picks. */
static int
udp_open(struct dx_addr *addr)
{
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	memset(addr, 0, sizeof(*addr));
	addr->u.in.sin_family = AF_INET;
	addr->u.in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	addr->len = sizeof(addr->u.in);
	if (fd < 0 || bind(fd, &addr->u.sa, addr->len) < 0 ||
	    getsockname(fd, &addr->u.sa, &addr->len) < 0)
		return -1;
	return fd;
}

/* Trace capture: the lines of the last traced calls. */
static char trace_lines[8][256];
static int trace_count;

static void
capture(void *ctx, const char *line)
{
	(void)ctx;
	if (trace_count < (int)DX_ARRAY_LEN(trace_lines))
		(void)snprintf(trace_lines[trace_count], sizeof(trace_lines[0]),
		               "%s", line);
	trace_count++;
}

/* ------------------------------------------------------------------------
 * Time
 * ------------------------------------------------------------------------ */

TEST(deadlines)
{
	int64_t now = dx_now_ms(), d = dx_deadline_in(100);

	CHECK(now > 0);
	CHECK(d >= now + 100 && d <= now + 100 + MARGIN_MS);
	CHECK_INT_EQ(dx_deadline_in(-1), DX_FOREVER);
	CHECK_INT_EQ(dx_deadline_in(DX_FOREVER), DX_FOREVER);
	CHECK_INT_EQ(dx_deadline_in(DX_FOREVER - 1), DX_FOREVER);
	CHECK(dx_now_ms() >= now);
}

/* ------------------------------------------------------------------------
 * EINTR on single calls
 * ------------------------------------------------------------------------ */

TEST(read_retries_eintr)
{
	char buf[16];

	CHECK_OK(pair_open(SOCK_STREAM));
	CHECK_INT_EQ(write(pair[1], "hello", 5), 5);
	fault_set(3, EINTR, 0);
	dx__sys.read = fake_read;
	errno = EDOM;
	CHECK_INT_EQ(dx_read(pair[0], buf, sizeof(buf)), 5);
	CHECK_INT_EQ(errno, EDOM);
	CHECK_INT_EQ(fault.calls, 4);
	CHECK(memcmp(buf, "hello", 5) == 0);
	dx__sys_reset();
	pair_close();
}

TEST(write_and_send_retry_eintr)
{
	char buf[16];

	CHECK_OK(pair_open(SOCK_STREAM));
	fault_set(2, EINTR, 0);
	dx__sys.write = fake_write;
	CHECK_INT_EQ(dx_write(pair[0], "abc", 3), 3);
	CHECK_INT_EQ(fault.calls, 3);
	fault_set(2, EINTR, 0);
	dx__sys.send = fake_send;
	CHECK_INT_EQ(dx_send(pair[0], "def", 3), 3);
	CHECK_INT_EQ(fault.calls, 3);
	dx__sys_reset();
	CHECK_INT_EQ(read(pair[1], buf, sizeof(buf)), 6);
	CHECK(memcmp(buf, "abcdef", 6) == 0);
	pair_close();
}

/* socket -> pipe -> socket, through EINTR; an empty pipe is -EAGAIN. */
TEST(splice_retries_eintr_and_moves_bytes)
{
	int p[2];
	char buf[16];

	CHECK_OK(pair_open(SOCK_STREAM));
	CHECK(pipe2(p, O_NONBLOCK | O_CLOEXEC) == 0);
	CHECK_INT_EQ(write(pair[1], "spliced", 7), 7);
	fault_set(2, EINTR, 0);
	dx__sys.splice = fake_splice;
	errno = EDOM;
	CHECK_INT_EQ(dx__splice(pair[0], p[1], 65536), 7);
	CHECK_INT_EQ(errno, EDOM);
	CHECK_INT_EQ(fault.calls, 3);
	dx__sys_reset();
	CHECK_INT_EQ(dx__splice(pair[0], p[1], 65536), -EAGAIN);
	CHECK_INT_EQ(dx__splice(p[0], pair[0], 7), 7);
	CHECK_INT_EQ(dx__splice(p[0], pair[0], 7), -EAGAIN);
	CHECK_INT_EQ(read(pair[1], buf, sizeof(buf)), 7);
	CHECK(memcmp(buf, "spliced", 7) == 0);
	shutdown(pair[1], SHUT_WR);
	CHECK_INT_EQ(dx__splice(pair[0], p[1], 65536), 0);
	close(p[0]);
	close(p[1]);
	pair_close();
}

TEST(other_errors_pass_through)
{
	char buf[4];

	CHECK_OK(pair_open(SOCK_STREAM));
	fault_set(1, ECONNRESET, 0);
	dx__sys.read = fake_read;
	CHECK_INT_EQ(dx_read(pair[0], buf, sizeof(buf)), -ECONNRESET);
	CHECK_INT_EQ(fault.calls, 1);
	dx__sys_reset();
	CHECK_INT_EQ(dx_read(pair[0], buf, sizeof(buf)), -EAGAIN);
	CHECK_INT_EQ(dx_read(-1, buf, sizeof(buf)), -EBADF);
	CHECK_INT_EQ(dx_write(-1, buf, sizeof(buf)), -EBADF);
	pair_close();
}

TEST(datagram_calls_retry_eintr)
{
	struct dx_addr a, b, from;
	char buf[16];
	int fa = udp_open(&a), fb = udp_open(&b);

	CHECK(fa >= 0 && fb >= 0);
	fault_set(2, EINTR, 0);
	dx__sys.sendto = fake_sendto;
	CHECK_INT_EQ(dx_sendto(fa, "ping", 4, &b), 4);
	CHECK_INT_EQ(fault.calls, 3);
	fault_set(2, EINTR, 0);
	dx__sys.recvmsg = fake_recvmsg;
	CHECK_INT_EQ(dx_wait(fb, POLLIN, dx_deadline_in(WAIT_MS)), POLLIN);
	CHECK_INT_EQ(dx_recvfrom(fb, buf, sizeof(buf), &from), 4);
	CHECK_INT_EQ(fault.calls, 3);
	CHECK(dx_addr_equal(&from, &a));
	CHECK_INT_EQ(from.len, sizeof(struct sockaddr_in));
	dx__sys_reset();
	close(fa);
	close(fb);
}

/* ------------------------------------------------------------------------
 * dx_wait
 * ------------------------------------------------------------------------ */

TEST(wait_ready_and_timeouts)
{
	int64_t t0;

	CHECK_OK(pair_open(SOCK_STREAM));
	CHECK_INT_EQ(dx_wait(pair[0], POLLOUT, 0), POLLOUT);
	CHECK_INT_EQ(dx_wait(pair[0], POLLIN, 0), -ETIMEDOUT);
	t0 = dx_now_ms();
	CHECK_INT_EQ(dx_wait(pair[0], POLLIN, dx_deadline_in(50)), -ETIMEDOUT);
	CHECK(dx_now_ms() - t0 >= 50);
	CHECK(dx_now_ms() - t0 < 50 + MARGIN_MS);
	CHECK_INT_EQ(dx_wait(-1, POLLIN, 0), -ETIMEDOUT);
	pair_close();
}

TEST(wait_passes_timeouts_to_poll)
{
	CHECK_OK(pair_open(SOCK_STREAM));
	fault_set(0, 0, 0);
	dx__sys.poll = fake_poll;
	CHECK_INT_EQ(dx_wait(pair[0], POLLIN, 0), -ETIMEDOUT);
	CHECK_INT_EQ(pfault.calls, 1);
	CHECK_INT_EQ(pfault.timeouts[0], 0);
	pfault.calls = 0;
	CHECK_INT_EQ(dx_wait(pair[0], POLLOUT, DX_FOREVER), POLLOUT);
	CHECK_INT_EQ(pfault.timeouts[0], -1);
	pfault.calls = 0;
	CHECK_INT_EQ(dx_wait(pair[0], POLLOUT, dx_now_ms() - 5), POLLOUT);
	CHECK_INT_EQ(pfault.timeouts[0], 0);
	dx__sys_reset();
	pair_close();
}

/* Signals during the wait must neither end it early nor stretch it. */
TEST(wait_eintr_recomputes_remaining_time)
{
	int64_t t0 = dx_now_ms(), elapsed;

	CHECK_OK(pair_open(SOCK_STREAM));
	fault_set(0, 0, 0);
	pfault.fails = 3;
	pfault.err = EINTR;
	pfault.sleep_ms = 40;
	dx__sys.poll = fake_poll;
	CHECK_INT_EQ(dx_wait(pair[0], POLLIN, dx_deadline_in(300)), -ETIMEDOUT);
	elapsed = dx_now_ms() - t0;
	CHECK(pfault.calls >= 4);
	CHECK(pfault.timeouts[0] > 0 && pfault.timeouts[0] <= 300);
	CHECK(pfault.timeouts[1] <= pfault.timeouts[0] - 40);
	CHECK(pfault.timeouts[3] <= pfault.timeouts[0] - 120);
	CHECK(elapsed >= 300 && elapsed < 300 + MARGIN_MS);
	dx__sys_reset();
	pair_close();
}

TEST(wait_eintr_then_ready)
{
	CHECK_OK(pair_open(SOCK_STREAM));
	CHECK_INT_EQ(write(pair[1], "x", 1), 1);
	fault_set(0, 0, 0);
	pfault.fails = 5;
	pfault.err = EINTR;
	dx__sys.poll = fake_poll;
	errno = EDOM;
	CHECK_INT_EQ(dx_wait(pair[0], POLLIN, dx_deadline_in(WAIT_MS)), POLLIN);
	CHECK_INT_EQ(errno, EDOM);
	CHECK_INT_EQ(pfault.calls, 6);
	pfault.fails = 1;
	pfault.err = ENOMEM;
	CHECK_INT_EQ(dx_wait(pair[0], POLLIN, DX_FOREVER), -ENOMEM);
	dx__sys_reset();
	pair_close();
}

/* ------------------------------------------------------------------------
 * dx_write_all
 * ------------------------------------------------------------------------ */

/* What the reading side has drained so far. */
static char drained[1 << 16];
static size_t drained_len;

/*
 * The reader catches up whenever the writer waits: one-byte skbs fill a
 * unix socket's buffer long before a few thousand bytes are queued.
 */
static void
drain_peer(void)
{
	ssize_t n = read(pair[1], drained + drained_len,
	                 sizeof(drained) - drained_len);

	if (n > 0)
		drained_len += (size_t)n;
}

/* Writes LEN patterned bytes with one-byte writes; reads them back. */
static void
write_bytewise(int socket, size_t len)
{
	char *out = malloc(len);
	size_t done = 0, got = 0;

	CHECK(out != NULL && len <= sizeof(drained));
	for (size_t i = 0; i < len; i++)
		out[i] = (char)(i * 7 + 3);
	fault_set(0, 0, 1);
	drained_len = 0;
	pfault.each = drain_peer;
	dx__sys.write = fake_write;
	dx__sys.send = fake_send;
	dx__sys.poll = fake_poll;
	CHECK_INT_EQ(dx_write_all(pair[0], out, len, socket,
	                          dx_deadline_in(WAIT_MS), &done),
	             0);
	CHECK_INT_EQ(done, len);
	CHECK(fault.calls >= (int)len);
	CHECK(pfault.calls > 0);
	dx__sys_reset();
	CHECK_INT_EQ(dx_read_full(pair[1], drained + drained_len,
	                          len - drained_len, dx_deadline_in(WAIT_MS),
	                          &got),
	             len - drained_len);
	CHECK_INT_EQ(got + drained_len, len);
	CHECK(memcmp(drained, out, len) == 0);
	free(out);
}

TEST(write_all_one_byte_writes)
{
	CHECK_OK(pair_open(SOCK_STREAM));
	write_bytewise(0, 5000);
	write_bytewise(1, 4321);
	pair_close();
}

TEST(write_all_eagain_then_ready)
{
	char buf[16];
	size_t done = 99;

	CHECK_OK(pair_open(SOCK_STREAM));
	fault_set(1, EAGAIN, 0);
	dx__sys.write = fake_write;
	dx__sys.poll = fake_poll;
	CHECK_INT_EQ(dx_write_all(pair[0], "hello", 5, 0,
	                          dx_deadline_in(WAIT_MS), &done),
	             0);
	CHECK_INT_EQ(done, 5);
	CHECK_INT_EQ(fault.calls, 2);
	CHECK_INT_EQ(pfault.calls, 1);
	dx__sys_reset();
	CHECK_INT_EQ(read(pair[1], buf, sizeof(buf)), 5);
	CHECK(memcmp(buf, "hello", 5) == 0);
	CHECK_INT_EQ(dx_write_all(pair[0], "", 0, 1, 0, &done), 0);
	CHECK_INT_EQ(done, 0);
	pair_close();
}

/* A full socket buffer that never drains: -ETIMEDOUT, nothing written. */
TEST(write_all_deadline_expires)
{
	static char big[4096];
	size_t done = 99;
	int64_t t0;

	CHECK_OK(pair_open(SOCK_STREAM));
	CHECK_OK(fill(pair[0]));
	t0 = dx_now_ms();
	CHECK_INT_EQ(dx_write_all(pair[0], big, sizeof(big), 1,
	                          dx_deadline_in(100), &done),
	             -ETIMEDOUT);
	CHECK(dx_now_ms() - t0 >= 100);
	CHECK(dx_now_ms() - t0 < 100 + MARGIN_MS);
	CHECK_INT_EQ(done, 0);
	pair_close();
}

/*
 * A descriptor that polls writable yet says EAGAIN for ever (after three
 * bytes) must still stop at the deadline, with *done exact.
 */
TEST(write_all_deadline_with_ready_fd)
{
	size_t done = 0;
	int64_t t0;

	CHECK_OK(pair_open(SOCK_STREAM));
	fault_set(-1, EAGAIN, 3);
	fault.pass = 1;
	dx__sys.send = fake_send;
	t0 = dx_now_ms();
	CHECK_INT_EQ(dx_write_all(pair[0], "abcdef", 6, 1, dx_deadline_in(80),
	                          &done),
	             -ETIMEDOUT);
	CHECK(dx_now_ms() - t0 >= 80);
	CHECK(dx_now_ms() - t0 < 80 + MARGIN_MS);
	CHECK_INT_EQ(done, 3);
	CHECK(fault.calls >= 2);
	fault.fails = 0;
	fault.cap = 2;
	CHECK_INT_EQ(dx_write_all(pair[0], "xyz", 3, 1, 0, &done), 0);
	CHECK_INT_EQ(done, 3);
	dx__sys_reset();
	pair_close();
}

/* Writes a few bytes, then EAGAIN: the deadline reports the bytes done. */
TEST(write_all_partial_then_timeout)
{
	static char big[1 << 20];
	size_t done = 0;

	CHECK_OK(pair_open(SOCK_STREAM));
	CHECK_INT_EQ(dx_write_all(pair[0], big, sizeof(big), 1,
	                          dx_deadline_in(50), &done),
	             -ETIMEDOUT);
	CHECK(done > 0 && done < sizeof(big));
	pair_close();
}

static void
close_peer(void)
{
	close(pair[1]);
	pair[1] = -1;
}

/* The peer goes away while we wait to write: the real error, no spin. */
TEST(write_all_peer_closes_during_wait)
{
	static char big[4096];
	size_t done = 99;

	CHECK_OK(pair_open(SOCK_STREAM));
	CHECK_OK(fill(pair[0]));
	fault_set(0, 0, 0);
	pfault.before = close_peer;
	dx__sys.poll = fake_poll;
	CHECK_INT_EQ(dx_write_all(pair[0], big, sizeof(big), 1,
	                          dx_deadline_in(WAIT_MS), &done),
	             -EPIPE);
	CHECK_INT_EQ(done, 0);
	CHECK_INT_EQ(pfault.calls, 1);
	dx__sys_reset();
	pair_close();
}

/* POLLHUP yet EAGAIN again: reported as -EIO after one retry. */
TEST(write_all_hangup_does_not_spin)
{
	size_t done = 99;

	CHECK_OK(pair_open(SOCK_STREAM));
	fault_set(-1, EAGAIN, 0);
	pfault.force = POLLHUP;
	dx__sys.write = fake_write;
	dx__sys.poll = fake_poll;
	CHECK_INT_EQ(dx_write_all(pair[0], "abc", 3, 0, dx_deadline_in(WAIT_MS),
	                          &done),
	             -EIO);
	CHECK_INT_EQ(fault.calls, 2);
	CHECK_INT_EQ(pfault.calls, 1);
	CHECK_INT_EQ(done, 0);
	dx__sys_reset();
	pair_close();
}

/* ------------------------------------------------------------------------
 * Reading
 * ------------------------------------------------------------------------ */

TEST(read_full_short_reads_and_eof)
{
	char buf[64];
	size_t done = 99;

	CHECK_OK(pair_open(SOCK_STREAM));
	CHECK_INT_EQ(write(pair[1], "hello world", 11), 11);
	fault_set(0, 0, 3);
	dx__sys.read = fake_read;
	CHECK_INT_EQ(
	        dx_read_full(pair[0], buf, 5, dx_deadline_in(WAIT_MS), &done),
	        5);
	CHECK_INT_EQ(done, 5);
	CHECK_INT_EQ(fault.calls, 2);
	CHECK(memcmp(buf, "hello", 5) == 0);
	close_peer();
	CHECK_INT_EQ(dx_read_full(pair[0], buf, sizeof(buf),
	                          dx_deadline_in(WAIT_MS), &done),
	             6);
	CHECK_INT_EQ(done, 6);
	CHECK(memcmp(buf, " world", 6) == 0);
	CHECK_INT_EQ(dx_read_full(pair[0], buf, sizeof(buf), 0, &done), 0);
	CHECK_INT_EQ(done, 0);
	dx__sys_reset();
	pair_close();
}

TEST(read_full_timeout_reports_done)
{
	char buf[16];
	size_t done = 99;
	int64_t t0 = dx_now_ms();

	CHECK_OK(pair_open(SOCK_STREAM));
	CHECK_INT_EQ(write(pair[1], "abc", 3), 3);
	CHECK_INT_EQ(dx_read_full(pair[0], buf, 10, dx_deadline_in(50), &done),
	             -ETIMEDOUT);
	CHECK_INT_EQ(done, 3);
	CHECK(dx_now_ms() - t0 >= 50);
	CHECK(dx_now_ms() - t0 < 50 + MARGIN_MS);
	CHECK_INT_EQ(dx_read_full(pair[0], buf, 10, 0, NULL), -ETIMEDOUT);
	fault_set(1, ECONNRESET, 0);
	dx__sys.read = fake_read;
	CHECK_INT_EQ(dx_read_full(pair[0], buf, 10, 0, &done), -ECONNRESET);
	CHECK_INT_EQ(done, 0);
	dx__sys_reset();
	pair_close();
}

static void
send_late(void)
{
	CHECK_INT_EQ(write(pair[1], "late", 4), 4);
}

TEST(read_some_waits_for_data)
{
	char buf[16];

	CHECK_OK(pair_open(SOCK_STREAM));
	fault_set(1, EAGAIN, 0);
	pfault.before = send_late;
	dx__sys.read = fake_read;
	dx__sys.poll = fake_poll;
	CHECK_INT_EQ(dx_read_some(pair[0], buf, sizeof(buf),
	                          dx_deadline_in(WAIT_MS)),
	             4);
	CHECK(memcmp(buf, "late", 4) == 0);
	CHECK_INT_EQ(fault.calls, 2);
	CHECK_INT_EQ(pfault.calls, 1);
	dx__sys_reset();
	CHECK_INT_EQ(
	        dx_read_some(pair[0], buf, sizeof(buf), dx_deadline_in(30)),
	        -ETIMEDOUT);
	CHECK_INT_EQ(write(pair[1], "xy", 2), 2);
	CHECK_INT_EQ(dx_read_some(pair[0], buf, sizeof(buf), 0), 2);
	close_peer();
	CHECK_INT_EQ(dx_read_some(pair[0], buf, sizeof(buf),
	                          dx_deadline_in(WAIT_MS)),
	             0);
	pair_close();
}

/* ------------------------------------------------------------------------
 * SIGPIPE and datagrams
 * ------------------------------------------------------------------------ */

/*
 * SIGPIPE keeps its default action here on purpose: if MSG_NOSIGNAL were
 * missing, the signal would kill this process and CTest would see it.
 */
TEST(send_to_closed_peer_is_epipe)
{
	struct sigaction sa;
	size_t done = 99;

	CHECK_INT_EQ(sigaction(SIGPIPE, NULL, &sa), 0);
	CHECK(sa.sa_handler == SIG_DFL);
	CHECK_OK(pair_open(SOCK_STREAM));
	close_peer();
	CHECK_INT_EQ(dx_send(pair[0], "x", 1), -EPIPE);
	CHECK_INT_EQ(dx_write_all(pair[0], "xyz", 3, 1, dx_deadline_in(WAIT_MS),
	                          &done),
	             -EPIPE);
	CHECK_INT_EQ(done, 0);
	pair_close();
}

TEST(recvfrom_reports_real_length)
{
	struct dx_addr a, b, from;
	char out[1500], buf[10];
	int fa = udp_open(&a), fb = udp_open(&b);

	CHECK(fa >= 0 && fb >= 0);
	for (size_t i = 0; i < sizeof(out); i++)
		out[i] = (char)i;
	CHECK_INT_EQ(dx_sendto(fa, out, sizeof(out), &b), sizeof(out));
	CHECK_INT_EQ(dx_wait(fb, POLLIN, dx_deadline_in(WAIT_MS)), POLLIN);
	CHECK_INT_EQ(dx_recvfrom(fb, buf, sizeof(buf), &from), sizeof(out));
	CHECK(memcmp(buf, out, sizeof(buf)) == 0);
	CHECK(dx_addr_equal(&from, &a));
	CHECK_INT_EQ(dx_recvfrom(fb, buf, sizeof(buf), NULL), -EAGAIN);
	close(fa);
	close(fb);
}

TEST(recvfrom_unix_unnamed_sender)
{
	struct dx_addr from;
	char buf[4];

	CHECK_OK(pair_open(SOCK_DGRAM));
	CHECK_INT_EQ(dx_sendto(pair[1], "abcdefgh", 8, NULL), 8);
	CHECK_INT_EQ(dx_recvfrom(pair[0], buf, sizeof(buf), &from), 8);
	CHECK(memcmp(buf, "abcd", 4) == 0);
	CHECK_INT_EQ(from.len, 0);
	CHECK_INT_EQ(dx_sendto(pair[1], "", 0, NULL), 0);
	CHECK_INT_EQ(dx_recvfrom(pair[0], buf, sizeof(buf), NULL), 0);
	pair_close();
}

/* ------------------------------------------------------------------------
 * Batches and epoll, the servers' calls
 * ------------------------------------------------------------------------ */

static int
fake_recvmmsg(int fd, struct mmsghdr *v, unsigned n, int flags,
              struct timespec *timeout)
{
	return fault_now() ? -1 : recvmmsg(fd, v, n, flags, timeout);
}

static int
fake_sendmmsg(int fd, struct mmsghdr *v, unsigned n, int flags)
{
	return fault_now() ? -1 : sendmmsg(fd, v, n, flags);
}

/* Records timeouts and fails as pfault says; never blocks for ever. */
static int
fake_epoll_wait(int epfd, struct epoll_event *evs, int max, int timeout)
{
	int i = pfault.calls++;

	if (i < (int)DX_ARRAY_LEN(pfault.timeouts))
		pfault.timeouts[i] = timeout;
	if (pfault.fails > 0) {
		pfault.fails--;
		errno = pfault.err;
		return -1;
	}
	return epoll_wait(epfd, evs, max, timeout < 0 ? WAIT_MS : timeout);
}

TEST(epoll_wait_deadlines)
{
	struct epoll_event ev = {.events = EPOLLIN}, out[4];
	int ep = epoll_create1(EPOLL_CLOEXEC);

	CHECK(ep >= 0);
	CHECK_OK(pair_open(SOCK_STREAM));
	ev.data.fd = pair[0];
	CHECK_INT_EQ(epoll_ctl(ep, EPOLL_CTL_ADD, pair[0], &ev), 0);
	fault_set(0, 0, 0);
	dx__sys.epoll_wait = fake_epoll_wait;
	/* A deadline just past polls without waiting, never for ever. */
	CHECK_INT_EQ(dx__epoll_wait(ep, out, 4, dx_now_ms() - 1), 0);
	CHECK_INT_EQ(pfault.timeouts[0], 0);
	pfault.calls = 0;
	CHECK_INT_EQ(dx__epoll_wait(ep, out, 4, 0), 0);
	CHECK_INT_EQ(pfault.timeouts[0], 0);
	pfault.calls = 0;
	pfault.fails = 2;
	pfault.err = EINTR;
	CHECK_INT_EQ(write(pair[1], "x", 1), 1);
	CHECK_INT_EQ(dx__epoll_wait(ep, out, 4, dx_deadline_in(WAIT_MS)), 1);
	CHECK_INT_EQ(pfault.calls, 3);
	CHECK_INT_EQ(out[0].data.fd, pair[0]);
	CHECK(pfault.timeouts[0] > 0 && pfault.timeouts[0] <= WAIT_MS);
	pfault.calls = 0;
	CHECK_INT_EQ(dx__epoll_wait(ep, out, 4, DX_FOREVER), 1);
	CHECK_INT_EQ(pfault.timeouts[0], -1);
	CHECK_INT_EQ(dx__epoll_wait(-1, out, 4, 0), -EBADF);
	dx__sys_reset();
	close(ep);
	pair_close();
}

/* Points batch entry I at BUF (LEN bytes) and the address NAME. */
static void
mmsg_set(struct mmsghdr *v, struct iovec *iov, void *buf, size_t len,
         void *name, socklen_t namelen)
{
	memset(v, 0, sizeof(*v));
	iov->iov_base = buf;
	iov->iov_len = len;
	v->msg_hdr.msg_iov = iov;
	v->msg_hdr.msg_iovlen = 1;
	v->msg_hdr.msg_name = name;
	v->msg_hdr.msg_namelen = namelen;
}

TEST(mmsg_batches_retry_eintr_and_eagain)
{
	struct dx_addr a, b;
	struct mmsghdr v[3];
	struct iovec iov[3];
	struct sockaddr_storage names[3];
	char bufs[3][16];
	int fa = udp_open(&a), fb = udp_open(&b);

	CHECK(fa >= 0 && fb >= 0);
	for (int i = 0; i < 3; i++) {
		(void)snprintf(bufs[i], sizeof(bufs[i]), "dgram %d", i);
		mmsg_set(&v[i], &iov[i], bufs[i], 7, &b.u.ss, b.len);
	}
	fault_set(2, EINTR, 0);
	dx__sys.sendmmsg = fake_sendmmsg;
	CHECK_INT_EQ(dx__sendmmsg(fa, v, 3), 3);
	CHECK_INT_EQ(fault.calls, 3);
	fault_set(1, EAGAIN, 0);
	dx__sys.poll = fake_poll;
	CHECK_INT_EQ(dx__sendmmsg(fa, v, 1), 1);
	CHECK_INT_EQ(fault.calls, 2);
	CHECK_INT_EQ(pfault.calls, 1);
	memset(bufs, 0, sizeof(bufs));
	for (int i = 0; i < 3; i++)
		mmsg_set(&v[i], &iov[i], bufs[i], sizeof(bufs[i]), &names[i],
		         sizeof(names[i]));
	CHECK_INT_EQ(dx_wait(fb, POLLIN, dx_deadline_in(WAIT_MS)), POLLIN);
	fault_set(2, EINTR, 0);
	dx__sys.recvmmsg = fake_recvmmsg;
	CHECK_INT_EQ(dx__recvmmsg(fb, v, 3, 0), 3);
	CHECK_INT_EQ(fault.calls, 3);
	for (int i = 0; i < 3; i++) {
		char want[16];

		(void)snprintf(want, sizeof(want), "dgram %d", i);
		CHECK_INT_EQ(v[i].msg_len, 7);
		CHECK_STR_EQ(bufs[i], want);
	}
	CHECK_INT_EQ(dx__recvmmsg(fb, v, 3, 0), 1);
	CHECK_STR_EQ(bufs[0], "dgram 0");
	CHECK_INT_EQ(dx__recvmmsg(fb, v, 3, 0), -EAGAIN);
	dx__sys_reset();
	/* Waiting, on a blocking socket: the first datagram is waited for,
	 * the rest of what is queued then comes with it, nothing more. */
	CHECK(fcntl(fb, F_SETFL, fcntl(fb, F_GETFL) & ~O_NONBLOCK) == 0);
	for (int i = 0; i < 3; i++)
		mmsg_set(&v[i], &iov[i], bufs[i], 7, &b.u.ss, b.len);
	CHECK_INT_EQ(dx__sendmmsg(fa, v, 2), 2);
	for (int i = 0; i < 3; i++)
		mmsg_set(&v[i], &iov[i], bufs[i], sizeof(bufs[i]), &names[i],
		         sizeof(names[i]));
	CHECK_INT_EQ(dx__recvmmsg(fb, v, 3, 1), 2);
	close(fa);
	close(fb);
}

/* ------------------------------------------------------------------------
 * Trace lines
 * ------------------------------------------------------------------------ */

/* Checks that trace line I is the printf-formatted text. */
static void check_line(int i, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

static void
check_line(int i, const char *fmt, ...)
{
	char want[256];
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(want, sizeof(want), fmt, ap);
	va_end(ap);
	CHECK_STR_EQ(i < trace_count ? trace_lines[i] : "(no line)", want);
}

TEST(io_trace_lines)
{
	struct dx_addr a, b, from;
	char buf[16];
	int fa = udp_open(&a), fb = udp_open(&b), p0, p1;

	CHECK(fa >= 0 && fb >= 0);
	CHECK_OK(pair_open(SOCK_STREAM));
	p0 = pair[0];
	p1 = pair[1];
	trace_count = 0;
	dx_trace_set(capture, NULL);
	CHECK_INT_EQ(dx_read(p0, buf, sizeof(buf)), -EAGAIN);
	CHECK_INT_EQ(dx_write(p1, "hello", 5), 5);
	CHECK_INT_EQ(dx_read(p0, buf, sizeof(buf)), 5);
	CHECK_INT_EQ(dx_send(p0, "ok", 2), 2);
	CHECK_INT_EQ(dx_read(p1, buf, sizeof(buf)), 2);
	close_peer();
	CHECK_INT_EQ(dx_read(p0, buf, sizeof(buf)), 0);
	CHECK_INT_EQ(dx_sendto(fa, "12345", 5, &b), 5);
	CHECK_INT_EQ(dx_wait(fb, POLLIN, dx_deadline_in(WAIT_MS)), POLLIN);
	CHECK_INT_EQ(dx_recvfrom(fb, buf, 3, &from), 5);
	CHECK_INT_EQ(dx_read(-1, buf, 1), -EBADF);
	dx_trace_set(NULL, NULL);
	CHECK_INT_EQ(dx_trace_on(), 0);
	CHECK_INT_EQ(trace_count, 8);
	check_line(0, "write(%d) = 5 bytes", p1);
	check_line(1, "read(%d) = 5 bytes", p0);
	check_line(2, "send(%d) = 2 bytes", p0);
	check_line(3, "read(%d) = 2 bytes", p1);
	check_line(4, "read(%d) = 0 (EOF)", p0);
	check_line(5, "sendto(%d) -> 127.0.0.1:%u 5 bytes", fa,
	           (unsigned)ntohs(b.u.in.sin_port));
	check_line(6, "recvfrom(%d) <- 127.0.0.1:%u 5 bytes (truncated to 3)",
	           fb, (unsigned)ntohs(a.u.in.sin_port));
	check_line(7, "read(-1) = -1 EBADF (Bad file descriptor)");
	pair_close();
	close(fa);
	close(fb);
}

int
main(void)
{
	/* Line by line, so a crash or a hang still shows how far it got. */
	(void)setvbuf(stdout, NULL, _IOLBF, 0);
	RUN(deadlines);
	RUN(read_retries_eintr);
	RUN(write_and_send_retry_eintr);
	RUN(other_errors_pass_through);
	RUN(datagram_calls_retry_eintr);
	RUN(wait_ready_and_timeouts);
	RUN(wait_passes_timeouts_to_poll);
	RUN(wait_eintr_recomputes_remaining_time);
	RUN(wait_eintr_then_ready);
	RUN(write_all_one_byte_writes);
	RUN(write_all_eagain_then_ready);
	RUN(write_all_deadline_expires);
	RUN(write_all_deadline_with_ready_fd);
	RUN(write_all_partial_then_timeout);
	RUN(write_all_peer_closes_during_wait);
	RUN(write_all_hangup_does_not_spin);
	RUN(read_full_short_reads_and_eof);
	RUN(read_full_timeout_reports_done);
	RUN(read_some_waits_for_data);
	RUN(send_to_closed_peer_is_epipe);
	RUN(recvfrom_reports_real_length);
	RUN(recvfrom_unix_unnamed_sender);
	RUN(epoll_wait_deadlines);
	RUN(mmsg_batches_retry_eintr_and_eagain);
	RUN(splice_retries_eintr_and_moves_bytes);
	RUN(io_trace_lines);
	CHECK_DONE();
}
