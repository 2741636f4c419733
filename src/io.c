/* SPDX-License-Identifier: MIT */
/*
 * io.c - the one layer that handles EINTR, EAGAIN, short reads and writes
 * and deadlines, so that no other file sees a raw read() or write(). It
 * also owns dx__sys, the system-call table through which tests inject
 * faults.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define LIBC_SYSOPS                                                         \
	{                                                                   \
		.read = read, .write = write, .send = send,                 \
		.recvfrom = recvfrom, .sendto = sendto, .recvmsg = recvmsg, \
		.sendmsg = sendmsg, .poll = poll, .accept4 = accept4,       \
		.connect = connect, .recvmmsg = recvmmsg,                   \
		.sendmmsg = sendmmsg, .epoll_wait = epoll_wait,             \
		.splice = splice, .vmsplice = vmsplice,                     \
	}

struct dx_sysops dx__sys = LIBC_SYSOPS;

/* Puts every entry of dx__sys back to the libc function. */
void
dx__sys_reset(void)
{
	static const struct dx_sysops libc = LIBC_SYSOPS;

	dx__sys = libc;
}

/* ------------------------------------------------------------------------
 * Trace helpers: the I/O calls trace their result, never -EAGAIN (noise).
 * ------------------------------------------------------------------------ */

/* The text of an address for a trace line; never NULL. */
static const char *
addr_text(const struct dx_addr *addr, char *buf, size_t len)
{
	if (addr == NULL)
		return "(connected)";
	if (dx_addr_format(addr, buf, len) < 0)
		return "(unknown)";
	return buf;
}

/* "read(4) = 5 bytes", "read(4) = 0 (EOF)", "write(4) = -1 EPIPE (...)". */
static void
trace_count(const char *call, int fd, ssize_t n, int eof)
{
	if (!dx_trace_on() || n == -EAGAIN)
		return;
	if (n < 0)
		dx_trace("%s(%d) = -1 %s (%s)", call, fd,
		         dx__errno_name((int)n), dx_strerror((int)n));
	else if (n == 0 && eof)
		dx_trace("%s(%d) = 0 (EOF)", call, fd);
	else
		dx_trace("%s(%d) = %zd bytes", call, fd, n);
}

/*
 * "recvfrom(3) <- 127.0.0.1:40211 5 bytes" or "sendto(3) -> ..."; a
 * truncated datagram adds "(truncated to LEN)".
 */
static void
trace_dgram(const char *call, const char *arrow, int fd,
            const struct dx_addr *addr, ssize_t n, size_t len)
{
	char text[DX_ADDRSTRLEN];

	if (!dx_trace_on() || n == -EAGAIN)
		return;
	if (n < 0)
		dx_trace("%s(%d) = -1 %s (%s)", call, fd,
		         dx__errno_name((int)n), dx_strerror((int)n));
	else if ((size_t)n > len)
		dx_trace("%s(%d) %s %s %zd bytes (truncated to %zu)", call, fd,
		         arrow, addr_text(addr, text, sizeof(text)), n, len);
	else
		dx_trace("%s(%d) %s %s %zd bytes", call, fd, arrow,
		         addr_text(addr, text, sizeof(text)), n);
}

/* ------------------------------------------------------------------------
 * Time
 * ------------------------------------------------------------------------ */

int64_t
dx__now_us(void)
{
	struct timespec ts;

	/* CLOCK_MONOTONIC cannot fail on Linux with a valid pointer. */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t
dx_now_ms(void)
{
	return dx__now_us() / 1000;
}

int64_t
dx_deadline_in(int64_t ms)
{
	int64_t now = dx_now_ms();

	if (ms < 0 || ms >= DX_FOREVER - now)
		return DX_FOREVER;
	return now + ms;
}

/* poll()'s timeout for DEADLINE: -1 for ever, 0 once it has passed. */
static int
poll_timeout(int64_t deadline)
{
	int64_t now;

	if (deadline == DX_FOREVER)
		return -1;
	now = dx_now_ms();
	if (deadline <= now)
		return 0;
	return deadline - now > INT_MAX ? INT_MAX : (int)(deadline - now);
}

/* ------------------------------------------------------------------------
 * Single calls, EINTR retried. errno is left as it was on success.
 * ------------------------------------------------------------------------ */

ssize_t
dx_read(int fd, void *buf, size_t len)
{
	int saved = errno;
	ssize_t n;

	do
		n = dx__sys.read(fd, buf, len);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		n = dx__neg_errno();
	else
		errno = saved;
	trace_count("read", fd, n, 1);
	return n;
}

ssize_t
dx_write(int fd, const void *buf, size_t len)
{
	int saved = errno;
	ssize_t n;

	do
		n = dx__sys.write(fd, buf, len);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		n = dx__neg_errno();
	else
		errno = saved;
	trace_count("write", fd, n, 0);
	return n;
}

ssize_t
dx_send(int fd, const void *buf, size_t len)
{
	int saved = errno;
	ssize_t n;

	do
		n = dx__sys.send(fd, buf, len, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		n = dx__neg_errno();
	else
		errno = saved;
	trace_count("send", fd, n, 0);
	return n;
}

ssize_t
dx__splice(int in, int out, size_t len)
{
	int saved = errno;
	ssize_t n;

	do
		n = dx__sys.splice(in, NULL, out, NULL, len,
		                   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		n = dx__neg_errno();
	else
		errno = saved;
	if (!dx_trace_on() || n == -EAGAIN)
		return n;
	if (n < 0)
		dx_trace("splice(%d -> %d) = -1 %s (%s)", in, out,
		         dx__errno_name((int)n), dx_strerror((int)n));
	else if (n == 0)
		dx_trace("splice(%d -> %d) = 0 (EOF)", in, out);
	else
		dx_trace("splice(%d -> %d) = %zd bytes", in, out, n);
	return n;
}

ssize_t
dx__vmsplice(int pipe_w, const void *buf, size_t len)
{
	/* vmsplice(2) only reads it; struct iovec has no const. */
	struct iovec v = {(void *)buf, len};
	int saved = errno;
	ssize_t n;

	do
		n = dx__sys.vmsplice(pipe_w, &v, 1, SPLICE_F_NONBLOCK);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		n = dx__neg_errno();
	else
		errno = saved;
	trace_count("vmsplice", pipe_w, n, 0);
	return n;
}

/*
 * A signal restarts poll() with the time that is left, so a stream of
 * signals can neither shorten nor stretch the wait. A wake-up with nothing
 * ready before the deadline (poll's INT_MAX cap) simply polls again.
 */
int
dx_poll(struct pollfd *fds, size_t n, int64_t deadline)
{
	int saved = errno, timeout, rc;

	for (;;) {
		for (size_t i = 0; i < n; i++)
			fds[i].revents = 0;
		timeout = poll_timeout(deadline);
		rc = dx__sys.poll(fds, (nfds_t)n, timeout);
		if (rc > 0) {
			errno = saved;
			return rc;
		}
		if (rc == 0 && timeout == 0)
			return -ETIMEDOUT;
		if (rc < 0 && errno != EINTR)
			return dx__neg_errno();
	}
}

int
dx_wait(int fd, short events, int64_t deadline)
{
	struct pollfd pfd = {.fd = fd, .events = events};
	int rc = dx_poll(&pfd, 1, deadline);

	return rc > 0 ? pfd.revents : rc;
}

/*
 * Datagram sockets only: MSG_TRUNC on a stream socket discards data. The
 * flag makes Linux return the datagram's real length; where a socket type
 * ignores it, msg_flags still says MSG_TRUNC and LEN + 1 is returned, so
 * "result > LEN" always means "truncated". An unnamed sender (an unbound
 * unix socket) gives FROM->len == 0.
 */
ssize_t
dx_recvfrom(int fd, void *buf, size_t len, struct dx_addr *from)
{
	struct dx_addr peer;
	struct dx_addr *addr = from != NULL ? from : &peer;
	struct iovec iov = {.iov_base = buf, .iov_len = len};
	struct msghdr msg;
	int saved = errno;
	ssize_t n;

	memset(&msg, 0, sizeof(msg));
	addr->u.sa.sa_family = AF_UNSPEC;
	msg.msg_name = &addr->u.ss;
	msg.msg_namelen = sizeof(addr->u.ss);
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	do
		n = dx__sys.recvmsg(fd, &msg, MSG_TRUNC);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		n = dx__neg_errno();
		goto out;
	}
	errno = saved;
	addr->len = msg.msg_namelen;
	addr->dualstack = 0;
	if ((msg.msg_flags & MSG_TRUNC) && (size_t)n <= len)
		n = (ssize_t)len + 1;
out:
	trace_dgram("recvfrom", "<-", fd, addr, n, len);
	return n;
}

ssize_t
dx_sendto(int fd, const void *buf, size_t len, const struct dx_addr *to)
{
	const struct sockaddr *sa = to != NULL ? &to->u.sa : NULL;
	socklen_t salen = to != NULL ? to->len : 0;
	int saved = errno;
	ssize_t n;

	do
		n = dx__sys.sendto(fd, buf, len, MSG_NOSIGNAL, sa, salen);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		n = dx__neg_errno();
	else
		errno = saved;
	trace_dgram("sendto", "->", fd, to, n, len);
	return n;
}

/* ------------------------------------------------------------------------
 * Loops over short counts, waiting out EAGAIN until a deadline
 * ------------------------------------------------------------------------ */

/*
 * Waits for FD after a call said -EAGAIN. *STUCK records that the last
 * wait reported POLLERR, POLLHUP or POLLNVAL: the call after such a wait
 * reports the real error, so a second -EAGAIN would only repeat for ever
 * and becomes -EIO rather than a busy loop. The deadline is checked
 * before polling, so a descriptor that polls ready yet keeps saying
 * EAGAIN cannot hold a loop past it. Returns 0 or an error.
 */
static int
wait_again(int fd, short events, int64_t deadline, int *stuck)
{
	int rc;

	if (*stuck)
		return -EIO;
	if (deadline != DX_FOREVER && deadline <= dx_now_ms())
		return -ETIMEDOUT;
	rc = dx_wait(fd, events, deadline);
	if (rc < 0)
		return rc;
	*stuck = (rc & (POLLERR | POLLHUP | POLLNVAL)) != 0;
	return 0;
}

/*
 * A write of LEN > 0 bytes that returns 0 makes no progress and never
 * will; it is reported as -EIO rather than retried.
 */
int
dx_write_all(int fd, const void *buf, size_t len, int socket, int64_t deadline,
             size_t *done)
{
	const char *p = buf;
	size_t off = 0;
	ssize_t n;
	int rc = 0, stuck = 0;

	while (off < len) {
		if (socket)
			n = dx_send(fd, p + off, len - off);
		else
			n = dx_write(fd, p + off, len - off);
		if (n > 0) {
			off += (size_t)n;
			stuck = 0;
		} else if (n == -EAGAIN) {
			rc = wait_again(fd, POLLOUT, deadline, &stuck);
			if (rc < 0)
				goto out;
		} else {
			rc = n == 0 ? -EIO : (int)n;
			goto out;
		}
	}
out:
	if (done != NULL)
		*done = off;
	return rc;
}

ssize_t
dx_read_full(int fd, void *buf, size_t len, int64_t deadline, size_t *done)
{
	char *p = buf;
	size_t off = 0;
	ssize_t n, rc = 0;
	int stuck = 0;

	while (off < len) {
		n = dx_read(fd, p + off, len - off);
		if (n == 0)
			break;
		if (n > 0) {
			off += (size_t)n;
			stuck = 0;
			continue;
		}
		rc = n == -EAGAIN ? wait_again(fd, POLLIN, deadline, &stuck)
		                  : n;
		if (rc < 0)
			goto out;
	}
	rc = (ssize_t)off;
out:
	if (done != NULL)
		*done = off;
	return rc;
}

/* LEN 0 returns 0 at once, like read(2); it does not mean end of file. */
ssize_t
dx_read_some(int fd, void *buf, size_t len, int64_t deadline)
{
	ssize_t n;
	int rc, stuck = 0;

	for (;;) {
		n = dx_read(fd, buf, len);
		if (n != -EAGAIN)
			return n;
		rc = wait_again(fd, POLLIN, deadline, &stuck);
		if (rc < 0)
			return rc;
	}
}

/* ------------------------------------------------------------------------
 * Batched datagrams and event waits, for the servers
 * ------------------------------------------------------------------------ */

/* One trace line per datagram of a batch, in the seed's recvfrom form. */
static void
trace_batch(int fd, const struct mmsghdr *v, int n, const char *call,
            const char *arrow)
{
	struct dx_addr a;

	for (int i = 0; i < n; i++) {
		memset(&a, 0, sizeof(a));
		a.len = v[i].msg_hdr.msg_namelen;
		if (a.len > sizeof(a.u))
			a.len = sizeof(a.u);
		if (v[i].msg_hdr.msg_name != NULL)
			memcpy(&a.u, v[i].msg_hdr.msg_name, a.len);
		trace_dgram(call, arrow, fd, &a, v[i].msg_len,
		            v[i].msg_hdr.msg_iov[0].iov_len);
	}
}

int
dx__recvmmsg(int fd, struct mmsghdr *v, unsigned n, int wait)
{
	int flags = wait ? MSG_WAITFORONE : MSG_DONTWAIT;
	int rc;

	do
		rc = dx__sys.recvmmsg(fd, v, n, flags, NULL);
	while (rc < 0 && errno == EINTR);
	if (rc < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : dx__neg_errno();
	if (dx_trace_on())
		trace_batch(fd, v, rc, "recvfrom", "<-");
	return rc;
}

/* How long a reply batch may wait for send buffer space before a drop. */
#define SEND_STALL_MS 100

int
dx__sendmmsg(int fd, struct mmsghdr *v, unsigned n)
{
	int64_t deadline = DX_FOREVER;
	int rc;

	for (;;) {
		rc = dx__sys.sendmmsg(fd, v, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (rc > 0)
			break;
		if (rc == 0)
			return -EAGAIN;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			return dx__neg_errno();
		/* The clock is read only once a batch has to wait. */
		if (deadline == DX_FOREVER)
			deadline = dx_deadline_in(SEND_STALL_MS);
		rc = dx_wait(fd, POLLOUT, deadline);
		if (rc < 0)
			return rc;
	}
	if (dx_trace_on())
		trace_batch(fd, v, rc, "sendto", "->");
	return rc;
}

int
dx__epoll_wait(int epfd, struct epoll_event *evs, int max, int64_t deadline)
{
	int rc;

	for (;;) {
		/* poll_timeout(): a deadline just past must not become -1. */
		rc = dx__sys.epoll_wait(epfd, evs, max, poll_timeout(deadline));
		if (rc >= 0 || errno != EINTR)
			return rc < 0 ? dx__neg_errno() : rc;
	}
}
