/* SPDX-License-Identifier: MIT */
/*
 * test_sock.c - the socket layer over real loopback sockets (127.0.0.1,
 * ::1, unix and abstract unix names, port 0 always): socket flags, the
 * IPv6 dual-stack rules, connect outcomes (refused, timed out, interrupted,
 * unix backlog full), the endpoint helpers for every scheme, and the trace
 * lines of a whole exchange. Faults are injected through dx__sys.
 */
#include "internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

/* Slack for scheduling delays on a loaded machine (sanitizers, CI). */
#define MARGIN_MS 1000
/* The bound on every wait that should end at once. */
#define WAIT_MS 5000

/* ------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------ */

static void
addr_loopback(struct dx_addr *addr, int family, uint16_t port)
{
	memset(addr, 0, sizeof(*addr));
	if (family == AF_INET) {
		addr->u.in.sin_family = AF_INET;
		addr->u.in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		addr->u.in.sin_port = htons(port);
		addr->len = sizeof(addr->u.in);
	} else {
		addr->u.in6.sin6_family = AF_INET6;
		addr->u.in6.sin6_addr = in6addr_loopback;
		addr->u.in6.sin6_port = htons(port);
		addr->len = sizeof(addr->u.in6);
	}
}

/* The IPv6 wildcard [::]:0, dual-stack or not. */
static void
addr_any6(struct dx_addr *addr, int dualstack)
{
	memset(addr, 0, sizeof(*addr));
	addr->u.in6.sin6_family = AF_INET6;
	addr->u.in6.sin6_addr = in6addr_any;
	addr->len = sizeof(addr->u.in6);
	addr->dualstack = (unsigned char)dualstack;
}

/* 1 when this machine can bind ::1; says so when it cannot. */
static int
have_ipv6(const char *test)
{
	struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6,
	                            .sin6_addr = IN6ADDR_LOOPBACK_INIT};
	int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0), ok;

	ok = fd >= 0 && bind(fd, (struct sockaddr *)&sin6, sizeof(sin6)) == 0;
	if (fd >= 0)
		close(fd);
	if (!ok)
		printf("skip %s: no IPv6 loopback here\n", test);
	return ok;
}

/* A listening TCP socket on ADDR; *BOUND gets the port the kernel chose. */
static int
server_open(const struct dx_addr *addr, unsigned flags, struct dx_addr *bound)
{
	int fd = dx_socket(addr->u.sa.sa_family, SOCK_STREAM, flags);

	if (fd < 0)
		return fd;
	if (dx_bind(fd, addr, flags) < 0 || dx_listen(fd, 16) < 0 ||
	    dx_local_addr(fd, bound) < 0) {
		dx_close(fd);
		return -1;
	}
	return fd;
}

/*
 * A loopback tcp port that refuses connections: bound, not listening, so
 * nobody else can take it while the returned descriptor is open. Its
 * address goes to ADDR.
 */
static int
closed_port(struct dx_addr *addr)
{
	struct dx_addr any;
	int hold = dx_socket(AF_INET, SOCK_STREAM, 0);

	addr_loopback(&any, AF_INET, 0);
	CHECK_OK(dx_bind(hold, &any, 0));
	CHECK_OK(dx_local_addr(hold, addr));
	return hold;
}

/* Accepts one connection, waiting a bounded time for it. */
static int
accept_wait(int lfd, struct dx_addr *peer)
{
	int rc = dx_wait(lfd, POLLIN, dx_deadline_in(WAIT_MS));

	if (peer != NULL)
		memset(peer, 0, sizeof(*peer));
	return rc < 0 ? rc : dx_accept(lfd, peer);
}

/* Sends "ping" on A and checks that it arrives on B, both ways. */
static void
exchange(int a, int b)
{
	char buf[4];

	CHECK_OK(dx_write_all(a, "ping", 4, 1, dx_deadline_in(WAIT_MS), NULL));
	CHECK_INT_EQ(dx_read_full(b, buf, 4, dx_deadline_in(WAIT_MS), NULL), 4);
	CHECK(memcmp(buf, "ping", 4) == 0);
	CHECK_OK(dx_write_all(b, "pong", 4, 1, dx_deadline_in(WAIT_MS), NULL));
	CHECK_INT_EQ(dx_read_full(a, buf, 4, dx_deadline_in(WAIT_MS), NULL), 4);
	CHECK(memcmp(buf, "pong", 4) == 0);
}

/* Parses a printf-formatted endpoint; 0 or the parse error. */
static int ep_parse(struct dx_endpoint *ep, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

static int
ep_parse(struct dx_endpoint *ep, const char *fmt, ...)
{
	char text[256], why[256];
	va_list ap;
	int rc;

	va_start(ap, fmt);
	(void)vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	rc = dx_endpoint_parse(ep, text, why, sizeof(why));
	if (rc < 0)
		printf("  cannot parse %s: %s\n", text, why);
	return rc;
}

static int
int_option(int fd, int level, int option)
{
	int value = -1;
	socklen_t len = sizeof(value);

	if (getsockopt(fd, level, option, &value, &len) < 0)
		return -1;
	return value;
}

/* An abstract unix name unique to this process and test. */
static const char *
abstract_name(const char *tag)
{
	static char name[64];

	(void)snprintf(name, sizeof(name), "@dx-test-sock-%ld-%s",
	               (long)getpid(), tag);
	return name;
}

/* ------------------------------------------------------------------------
 * Fakes
 * ------------------------------------------------------------------------ */

static struct {
	int fails;      /* calls still to fail (-1: all) */
	int err;        /* their errno */
	int calls;      /* calls seen */
	int then_eintr; /* connect: do the real call, then say EINTR */
	int accept_flags;
} fault;

static void
fault_set(int fails, int err)
{
	memset(&fault, 0, sizeof(fault));
	fault.fails = fails;
	fault.err = err;
}

static int
fault_now(void)
{
	fault.calls++;
	if (fault.fails == 0)
		return 0;
	if (fault.fails > 0)
		fault.fails--;
	errno = fault.err;
	return 1;
}

/*
 * Either fails as scripted or connects for real; with THEN_EINTR a real
 * connect that is under way (or done) is reported as interrupted, which is
 * what a signal during a blocking connect looks like.
 */
static int
fake_connect(int fd, const struct sockaddr *addr, socklen_t len)
{
	int rc;

	if (fault_now())
		return -1;
	rc = connect(fd, addr, len);
	if (fault.then_eintr && (rc == 0 || errno == EINPROGRESS)) {
		errno = EINTR;
		return -1;
	}
	return rc;
}

static int
fake_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
	fault.accept_flags = flags;
	return fault_now() ? -1 : accept4(fd, addr, len, flags);
}

/* A network that never answers: every poll sleeps its timeout, then 0. */
static int
silent_poll(struct pollfd *fds, nfds_t n, int timeout)
{
	struct timespec ts = {.tv_sec = timeout / 1000,
	                      .tv_nsec = (long)(timeout % 1000) * 1000000};

	(void)fds;
	(void)n;
	if (timeout < 0)
		return 0;
	nanosleep(&ts, NULL);
	return 0;
}

/* Trace capture. */
static char lines[32][256];
static int nlines;

static void
capture(void *ctx, const char *line)
{
	(void)ctx;
	if (nlines < (int)DX_ARRAY_LEN(lines))
		(void)snprintf(lines[nlines], sizeof(lines[0]), "%s", line);
	nlines++;
}

/* ------------------------------------------------------------------------
 * dx_socket and the plain calls
 * ------------------------------------------------------------------------ */

static void
check_fd_flags(int fd, int nonblock, int cloexec)
{
	CHECK(fd >= 0);
	CHECK_INT_EQ((fcntl(fd, F_GETFL) & O_NONBLOCK) != 0, nonblock);
	CHECK_INT_EQ((fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0, cloexec);
}

TEST(socket_flags)
{
	int a = dx_socket(AF_INET, SOCK_STREAM, 0);
	int b = dx_socket(AF_INET, SOCK_DGRAM, DX_SOCK_BLOCKING);
	int c = dx_socket(AF_UNIX, SOCK_STREAM, DX_SOCK_INHERIT);
	int d = dx_socket(AF_UNIX, SOCK_DGRAM,
	                  DX_SOCK_BLOCKING | DX_SOCK_INHERIT);

	check_fd_flags(a, 1, 1);
	check_fd_flags(b, 0, 1);
	check_fd_flags(c, 1, 0);
	check_fd_flags(d, 0, 0);
	CHECK_INT_EQ(int_option(b, SOL_SOCKET, SO_TYPE), SOCK_DGRAM);
	CHECK_INT_EQ(dx_socket(12345, SOCK_STREAM, 0), -EAFNOSUPPORT);
	errno = EDOM;
	CHECK_INT_EQ(dx_close(a), 0);
	CHECK_INT_EQ(dx_close(a), -EBADF);
	CHECK_INT_EQ(errno, EDOM);
	dx_close(b);
	dx_close(c);
	dx_close(d);
}

/* Listen, connect and accept over one family's loopback. */
static void
loopback_session(int family)
{
	struct dx_addr any, bound, peer, client_local, client_peer;
	int s, c, a;

	addr_loopback(&any, family, 0);
	s = server_open(&any, 0, &bound);
	CHECK(s >= 0);
	CHECK(dx_addr_port(&bound) != 0);
	c = dx_socket(family, SOCK_STREAM, 0);
	CHECK_OK(dx_connect(c, &bound, dx_deadline_in(WAIT_MS)));
	a = accept_wait(s, &peer);
	check_fd_flags(a, 1, 1);
	CHECK_OK(dx_local_addr(c, &client_local));
	CHECK_OK(dx_peer_addr(c, &client_peer));
	CHECK_INT_EQ(peer.u.sa.sa_family, family);
	CHECK_INT_EQ(peer.len, family == AF_INET ? sizeof(struct sockaddr_in)
	                                         : sizeof(struct sockaddr_in6));
	CHECK(dx_addr_equal(&peer, &client_local));
	CHECK(dx_addr_equal(&client_peer, &bound));
	exchange(c, a);
	CHECK_INT_EQ(dx_accept(s, NULL), -EAGAIN);
	dx_close(a);
	dx_close(c);
	dx_close(s);
}

TEST(tcp4_listen_connect_accept)
{
	loopback_session(AF_INET);
}

TEST(tcp6_listen_connect_accept)
{
	if (have_ipv6("tcp6_listen_connect_accept"))
		loopback_session(AF_INET6);
}

TEST(dualstack_wildcard_accepts_ipv4)
{
	struct dx_addr any, bound, to, peer, client_local;
	int s, c, a;

	if (!have_ipv6("dualstack_wildcard_accepts_ipv4"))
		return;
	addr_any6(&any, 1);
	s = server_open(&any, 0, &bound);
	CHECK(s >= 0);
	CHECK_INT_EQ(int_option(s, IPPROTO_IPV6, IPV6_V6ONLY), 0);
	addr_loopback(&to, AF_INET, dx_addr_port(&bound));
	c = dx_socket(AF_INET, SOCK_STREAM, 0);
	CHECK_OK(dx_connect(c, &to, dx_deadline_in(WAIT_MS)));
	a = accept_wait(s, &peer);
	CHECK(a >= 0);
	CHECK_INT_EQ(peer.u.sa.sa_family, AF_INET6);
	dx_addr_unmap(&peer);
	CHECK_INT_EQ(peer.u.sa.sa_family, AF_INET);
	CHECK_OK(dx_local_addr(c, &client_local));
	CHECK(dx_addr_equal(&peer, &client_local));
	exchange(c, a);
	dx_close(a);
	dx_close(c);
	dx_close(s);
}

TEST(v6only_wildcard_refuses_ipv4)
{
	struct dx_addr any, bound, to;
	int s, s2, c;

	if (!have_ipv6("v6only_wildcard_refuses_ipv4"))
		return;
	addr_any6(&any, 0);
	s = server_open(&any, 0, &bound);
	CHECK(s >= 0);
	CHECK_INT_EQ(int_option(s, IPPROTO_IPV6, IPV6_V6ONLY), 1);
	addr_loopback(&to, AF_INET, dx_addr_port(&bound));
	c = dx_socket(AF_INET, SOCK_STREAM, 0);
	CHECK_INT_EQ(dx_connect(c, &to, dx_deadline_in(WAIT_MS)),
	             -ECONNREFUSED);
	addr_any6(&any, 1);
	s2 = server_open(&any, DX_SOCK_V6ONLY, &bound);
	CHECK(s2 >= 0);
	CHECK_INT_EQ(int_option(s2, IPPROTO_IPV6, IPV6_V6ONLY), 1);
	dx_close(c);
	dx_close(s);
	dx_close(s2);
}

TEST(accept_retries_eintr)
{
	struct dx_addr any, bound, peer;
	int s, c, a;

	addr_loopback(&any, AF_INET, 0);
	s = server_open(&any, 0, &bound);
	c = dx_socket(AF_INET, SOCK_STREAM, 0);
	CHECK_OK(dx_connect(c, &bound, dx_deadline_in(WAIT_MS)));
	CHECK_INT_EQ(dx_wait(s, POLLIN, dx_deadline_in(WAIT_MS)), POLLIN);
	fault_set(2, EINTR);
	dx__sys.accept4 = fake_accept4;
	errno = EDOM;
	a = dx_accept(s, &peer);
	CHECK(a >= 0);
	CHECK_INT_EQ(errno, EDOM);
	CHECK_INT_EQ(fault.calls, 3);
	CHECK_INT_EQ(fault.accept_flags, SOCK_CLOEXEC | SOCK_NONBLOCK);
	fault_set(1, ECONNABORTED);
	CHECK_INT_EQ(dx_accept(s, NULL), -ECONNABORTED);
	dx__sys_reset();
	dx_close(a);
	dx_close(c);
	dx_close(s);
}

TEST(addresses_of_unconnected_socket)
{
	struct dx_addr addr;
	int fd = dx_socket(AF_INET, SOCK_STREAM, 0);

	CHECK_INT_EQ(dx_peer_addr(fd, &addr), -ENOTCONN);
	CHECK_OK(dx_local_addr(fd, &addr));
	CHECK_INT_EQ(addr.u.sa.sa_family, AF_INET);
	CHECK_INT_EQ(dx_addr_port(&addr), 0);
	CHECK_INT_EQ(dx_local_addr(-1, &addr), -EBADF);
	CHECK_INT_EQ(dx_listen(-1, 1), -EBADF);
	dx_close(fd);
}

/* ------------------------------------------------------------------------
 * dx_connect outcomes
 * ------------------------------------------------------------------------ */

/* A port that is bound but not listening refuses, and nobody can take it. */
TEST(connect_refused)
{
	struct dx_addr bound;
	int hold = closed_port(&bound), c;

	c = dx_socket(AF_INET, SOCK_STREAM, 0);
	CHECK_INT_EQ(dx_connect(c, &bound, dx_deadline_in(WAIT_MS)),
	             -ECONNREFUSED);
	dx_close(c);
	c = dx_socket(AF_INET, SOCK_STREAM, DX_SOCK_BLOCKING);
	CHECK_INT_EQ(dx_connect(c, &bound, dx_deadline_in(WAIT_MS)),
	             -ECONNREFUSED);
	dx_close(c);
	dx_close(hold);
}

/*
 * The handshake that never completes: a real connect to a real listener
 * is started, but poll() is replaced by a silent network that reports
 * nothing until its timeout. The wait must end at the deadline.
 */
TEST(connect_times_out)
{
	struct dx_addr any, bound;
	int s, c;
	int64_t t0;

	addr_loopback(&any, AF_INET, 0);
	s = server_open(&any, 0, &bound);
	c = dx_socket(AF_INET, SOCK_STREAM, 0);
	fault_set(0, 0);
	dx__sys.connect = fake_connect;
	fault.then_eintr = 0;
	dx__sys.poll = silent_poll;
	t0 = dx_now_ms();
	CHECK_INT_EQ(dx_connect(c, &bound, dx_deadline_in(150)), -ETIMEDOUT);
	CHECK(dx_now_ms() - t0 >= 150);
	CHECK(dx_now_ms() - t0 < 150 + MARGIN_MS);
	CHECK_INT_EQ(fault.calls, 1);
	dx__sys_reset();
	dx_close(c);
	dx_close(s);
}

/*
 * EINTR from connect(): the kernel goes on connecting, so dx_connect must
 * wait for the outcome and must not call connect() a second time.
 */
TEST(connect_eintr_waits_for_outcome)
{
	struct dx_addr any, bound, refused;
	int s, c, a, hold;

	addr_loopback(&any, AF_INET, 0);
	s = server_open(&any, 0, &bound);
	fault_set(0, 0);
	fault.then_eintr = 1;
	dx__sys.connect = fake_connect;
	for (unsigned flags = 0; flags <= DX_SOCK_BLOCKING; flags++) {
		c = dx_socket(AF_INET, SOCK_STREAM, flags);
		fault.calls = 0;
		CHECK_INT_EQ(dx_connect(c, &bound, dx_deadline_in(WAIT_MS)), 0);
		CHECK_INT_EQ(fault.calls, 1);
		a = accept_wait(s, NULL);
		CHECK(a >= 0);
		exchange(c, a);
		dx_close(a);
		dx_close(c);
	}
	hold = closed_port(&refused);
	c = dx_socket(AF_INET, SOCK_STREAM, 0);
	fault.calls = 0;
	CHECK_INT_EQ(dx_connect(c, &refused, dx_deadline_in(WAIT_MS)),
	             -ECONNREFUSED);
	CHECK_INT_EQ(fault.calls, 1);
	dx__sys_reset();
	dx_close(c);
	dx_close(hold);
	dx_close(s);
}

/*
 * A unix listener on the abstract NAME with a backlog of 0 and one client
 * already waiting in it (CLIENT), so that the next connect finds it full.
 * Returns the listener; its address goes to ADDR.
 */
static int
full_unix_backlog(const char *name, struct dx_addr *addr, int *client)
{
	struct dx_endpoint ep;
	int s;

	CHECK_OK(ep_parse(&ep, "unix://%s", abstract_name(name)));
	CHECK_INT_EQ(dx_endpoint_resolve(&ep, 0, addr, 1), 1);
	s = dx_listen_endpoint(&ep, 0, 0, NULL, 0);
	CHECK(s >= 0);
	*client = dx_connect_endpoint(&ep, 0, dx_deadline_in(WAIT_MS));
	CHECK(*client >= 0);
	return s;
}

/*
 * A unix listener with a full backlog makes a non-blocking connect say
 * EAGAIN; dx_connect retries until its deadline, and succeeds as soon as
 * the backlog has room.
 */
TEST(connect_unix_backlog_full)
{
	struct dx_addr addr;
	int s, c1, c2;
	int64_t t0;

	s = full_unix_backlog("backlog", &addr, &c1);
	c2 = dx_socket(AF_UNIX, SOCK_STREAM, 0);
	t0 = dx_now_ms();
	CHECK_INT_EQ(dx_connect(c2, &addr, dx_deadline_in(100)), -ETIMEDOUT);
	CHECK(dx_now_ms() - t0 >= 100);
	CHECK(dx_now_ms() - t0 < 100 + MARGIN_MS);
	dx_close(c2);
	fault_set(2, EAGAIN);
	dx__sys.connect = fake_connect;
	c2 = dx_socket(AF_UNIX, SOCK_STREAM, 0);
	dx_close(accept_wait(s, NULL));
	CHECK_INT_EQ(dx_connect(c2, &addr, dx_deadline_in(WAIT_MS)), 0);
	CHECK_INT_EQ(fault.calls, 3);
	dx__sys_reset();
	dx_close(c2);
	dx_close(c1);
	dx_close(s);
}

/*
 * dx_connect_start returns at once. Over loopback a tcp connect says
 * EINPROGRESS (or 0), and a send once writable tells the outcome: it goes
 * through to an open port and fails as the connect did on a closed one
 * (which may also say so at once); a unix connect to a full backlog says
 * EAGAIN instead of waiting.
 */
TEST(connect_start_does_not_wait)
{
	struct dx_addr any, bound, addr;
	char buf[4];
	int s, c, a, hold, c1, rc;

	addr_loopback(&any, AF_INET, 0);
	s = server_open(&any, 0, &bound);
	CHECK(s >= 0);
	c = dx_socket(AF_INET, SOCK_STREAM, 0);
	rc = dx_connect_start(c, &bound);
	CHECK(rc == 0 || rc == -EINPROGRESS);
	CHECK(dx_wait(c, POLLOUT, dx_deadline_in(WAIT_MS)) > 0);
	CHECK_INT_EQ(dx_send(c, "ping", 4), 4);
	a = accept_wait(s, NULL);
	CHECK(a >= 0);
	CHECK(dx_wait(a, POLLIN, dx_deadline_in(WAIT_MS)) > 0);
	CHECK_INT_EQ(dx_read(a, buf, sizeof(buf)), 4);
	CHECK(memcmp(buf, "ping", 4) == 0);
	dx_close(a);
	dx_close(c);
	dx_close(s);

	hold = closed_port(&bound);
	c = dx_socket(AF_INET, SOCK_STREAM, 0);
	rc = dx_connect_start(c, &bound);
	CHECK(rc == -ECONNREFUSED || rc == -EINPROGRESS);
	if (rc == -EINPROGRESS) {
		CHECK(dx_wait(c, POLLOUT, dx_deadline_in(WAIT_MS)) > 0);
		CHECK_INT_EQ(dx_send(c, "ping", 4), -ECONNREFUSED);
	}
	dx_close(c);
	dx_close(hold);

	s = full_unix_backlog("start", &addr, &c1);
	c = dx_socket(AF_UNIX, SOCK_STREAM, 0);
	CHECK_INT_EQ(dx_connect_start(c, &addr), -EAGAIN);
	dx_close(c);
	dx_close(c1);
	dx_close(s);
}

/* ------------------------------------------------------------------------
 * Endpoints
 * ------------------------------------------------------------------------ */

TEST(endpoint_tcp)
{
	struct dx_endpoint ep;
	struct dx_addr bound;
	int s, c, a;

	CHECK_OK(ep_parse(&ep, "tcp://127.0.0.1:0"));
	s = dx_listen_endpoint(&ep, 0, 8, NULL, 0);
	CHECK(s >= 0);
	CHECK_INT_EQ(int_option(s, SOL_SOCKET, SO_ACCEPTCONN), 1);
	CHECK_INT_EQ(int_option(s, SOL_SOCKET, SO_REUSEADDR), 1);
	CHECK_INT_EQ(int_option(s, SOL_SOCKET, SO_REUSEPORT), 0);
	CHECK_OK(dx_local_addr(s, &bound));
	CHECK_OK(ep_parse(&ep, "tcp://127.0.0.1:%u", dx_addr_port(&bound)));
	c = dx_connect_endpoint(&ep, 0, dx_deadline_in(WAIT_MS));
	check_fd_flags(c, 1, 1);
	a = accept_wait(s, NULL);
	exchange(c, a);
	dx_close(a);
	dx_close(c);
	dx_close(s);
}

TEST(endpoint_tcp_reuseport)
{
	struct dx_endpoint ep;
	struct dx_addr bound;
	int s1, s2;

	CHECK_OK(ep_parse(&ep, "tcp://127.0.0.1:0"));
	s1 = dx_listen_endpoint(&ep, DX_SOCK_REUSEPORT, 8, NULL, 0);
	CHECK(s1 >= 0);
	CHECK_INT_EQ(int_option(s1, SOL_SOCKET, SO_REUSEPORT), 1);
	CHECK_OK(dx_local_addr(s1, &bound));
	CHECK_OK(ep_parse(&ep, "tcp://127.0.0.1:%u", dx_addr_port(&bound)));
	s2 = dx_listen_endpoint(&ep, DX_SOCK_REUSEPORT, 8, NULL, 0);
	CHECK(s2 >= 0);
	dx_close(s2);
	dx_close(s1);
}

TEST(endpoint_udp)
{
	struct dx_endpoint ep;
	struct dx_addr bound, from, client_local;
	char buf[16];
	int s, c;

	CHECK_OK(ep_parse(&ep, "udp://127.0.0.1:0"));
	s = dx_listen_endpoint(&ep, 0, 8, NULL, 0);
	CHECK(s >= 0);
	CHECK_INT_EQ(int_option(s, SOL_SOCKET, SO_TYPE), SOCK_DGRAM);
	CHECK_INT_EQ(int_option(s, SOL_SOCKET, SO_REUSEADDR), 0);
	CHECK_OK(dx_local_addr(s, &bound));
	CHECK_OK(ep_parse(&ep, "udp://127.0.0.1:%u", dx_addr_port(&bound)));
	c = dx_connect_endpoint(&ep, 0, dx_deadline_in(WAIT_MS));
	check_fd_flags(c, 1, 1);
	CHECK_INT_EQ(dx_sendto(c, "ping", 4, NULL), 4);
	CHECK_INT_EQ(dx_wait(s, POLLIN, dx_deadline_in(WAIT_MS)), POLLIN);
	CHECK_INT_EQ(dx_recvfrom(s, buf, sizeof(buf), &from), 4);
	CHECK_OK(dx_local_addr(c, &client_local));
	CHECK(dx_addr_equal(&from, &client_local));
	CHECK_INT_EQ(dx_sendto(s, "pong", 4, &from), 4);
	CHECK_INT_EQ(dx_read_some(c, buf, sizeof(buf), dx_deadline_in(WAIT_MS)),
	             4);
	CHECK(memcmp(buf, "pong", 4) == 0);
	dx_close(c);
	dx_close(s);
}

TEST(endpoint_unix_path)
{
	char dir[] = "/tmp/dx-test-sock.XXXXXX", path[64];
	struct dx_endpoint ep;
	struct dx_addr peer;
	int s, c, a;

	CHECK(mkdtemp(dir) != NULL);
	(void)snprintf(path, sizeof(path), "%s/s", dir);
	CHECK_OK(ep_parse(&ep, "unix://%s", path));
	s = dx_listen_endpoint(&ep, 0, 8, NULL, 0);
	CHECK(s >= 0);
	CHECK_INT_EQ(access(path, F_OK), 0);
	c = dx_connect_endpoint(&ep, 0, dx_deadline_in(WAIT_MS));
	check_fd_flags(c, 1, 1);
	a = accept_wait(s, &peer);
	CHECK(a >= 0);
	CHECK_INT_EQ(peer.u.sa.sa_family, AF_UNIX);
	exchange(c, a);
	dx_close(a);
	dx_close(c);
	dx_close(s);
	unlink(path);
	rmdir(dir);
}

/* The unixgram client is autobound, so the server's reply reaches it. */
TEST(endpoint_unixgram_reply)
{
	struct dx_endpoint ep;
	struct dx_addr from;
	char buf[16];
	int s, c;

	CHECK_OK(ep_parse(&ep, "unixgram://%s", abstract_name("gram")));
	s = dx_listen_endpoint(&ep, 0, 8, NULL, 0);
	CHECK(s >= 0);
	CHECK_INT_EQ(int_option(s, SOL_SOCKET, SO_TYPE), SOCK_DGRAM);
	c = dx_connect_endpoint(&ep, 0, dx_deadline_in(WAIT_MS));
	check_fd_flags(c, 1, 1);
	CHECK_INT_EQ(dx_sendto(c, "ping", 4, NULL), 4);
	CHECK_INT_EQ(dx_wait(s, POLLIN, dx_deadline_in(WAIT_MS)), POLLIN);
	CHECK_INT_EQ(dx_recvfrom(s, buf, sizeof(buf), &from), 4);
	CHECK(from.len > sizeof(sa_family_t));
	CHECK_INT_EQ(from.u.un.sun_path[0], '\0');
	CHECK_INT_EQ(dx_sendto(s, "pong", 4, &from), 4);
	CHECK_INT_EQ(dx_read_some(c, buf, sizeof(buf), dx_deadline_in(WAIT_MS)),
	             4);
	CHECK(memcmp(buf, "pong", 4) == 0);
	dx_close(c);
	dx_close(s);
}

TEST(listen_endpoint_errors)
{
	struct dx_endpoint ep;
	struct dx_addr bound;
	char why[256] = "", want[256];
	int s;

	CHECK_OK(ep_parse(&ep, "tcp://127.0.0.1:0"));
	s = dx_listen_endpoint(&ep, 0, 8, NULL, 0);
	CHECK_OK(dx_local_addr(s, &bound));
	CHECK_OK(ep_parse(&ep, "tcp://127.0.0.1:%u", dx_addr_port(&bound)));
	CHECK_INT_EQ(dx_listen_endpoint(&ep, 0, 8, why, sizeof(why)),
	             -EADDRINUSE);
	(void)snprintf(want, sizeof(want),
	               "cannot bind tcp://127.0.0.1:%u: Address already in use",
	               dx_addr_port(&bound));
	CHECK_STR_EQ(why, want);
	CHECK_OK(ep_parse(&ep, "unix:///nonexistent-dx-test-dir/s"));
	CHECK_INT_EQ(dx_listen_endpoint(&ep, 0, 8, why, sizeof(why)), -ENOENT);
	CHECK_STR_EQ(why, "cannot bind unix:///nonexistent-dx-test-dir/s: "
	                  "No such file or directory");
	CHECK_INT_EQ(dx_listen_endpoint(&ep, 0, 8, NULL, 0), -ENOENT);
	dx_close(s);
}

TEST(connect_endpoint_errors)
{
	struct dx_endpoint ep;
	struct dx_addr bound;
	int hold = closed_port(&bound);

	CHECK_OK(ep_parse(&ep, "tcp://127.0.0.1:%u", dx_addr_port(&bound)));
	CHECK_INT_EQ(dx_connect_endpoint(&ep, 0, dx_deadline_in(WAIT_MS)),
	             -ECONNREFUSED);
	CHECK_OK(ep_parse(&ep, "unix://%s", abstract_name("nobody")));
	CHECK_INT_EQ(dx_connect_endpoint(&ep, 0, dx_deadline_in(WAIT_MS)),
	             -ECONNREFUSED);
	CHECK_OK(ep_parse(&ep, "unixgram:///nonexistent-dx-test-dir/g"));
	CHECK_INT_EQ(dx_connect_endpoint(&ep, 0, dx_deadline_in(WAIT_MS)),
	             -ENOENT);
	dx_close(hold);
}

/*
 * Every resolved address is tried with a fresh socket: with the first
 * attempt refused, "localhost" still connects when it has a second
 * address, and reports the refusal when it has only one.
 */
TEST(connect_endpoint_tries_every_address)
{
	struct dx_endpoint ep;
	struct dx_addr any, bound, addrs[8];
	int s, c, n;

	if (!have_ipv6("connect_endpoint_tries_every_address"))
		return;
	addr_any6(&any, 1);
	s = server_open(&any, 0, &bound);
	CHECK(s >= 0);
	CHECK_OK(ep_parse(&ep, "tcp://localhost:%u", dx_addr_port(&bound)));
	n = dx_endpoint_resolve(&ep, 0, addrs, DX_ARRAY_LEN(addrs));
	CHECK(n >= 1);
	fault_set(1, ECONNREFUSED);
	dx__sys.connect = fake_connect;
	c = dx_connect_endpoint(&ep, 0, dx_deadline_in(WAIT_MS));
	if (n >= 2) {
		CHECK(c >= 0);
		CHECK_INT_EQ(fault.calls, 2);
		dx_close(accept_wait(s, NULL));
		dx_close(c);
	} else {
		printf("  localhost has one address: refusal path only\n");
		CHECK_INT_EQ(c, -ECONNREFUSED);
		CHECK_INT_EQ(fault.calls, 1);
	}
	dx__sys_reset();
	dx_close(s);
}

/* ------------------------------------------------------------------------
 * Trace
 * ------------------------------------------------------------------------ */

/* Checks that line I is the printf-formatted text. */
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
	CHECK_STR_EQ(i < nlines ? lines[i] : "(no line)", want);
}

/* The lines of the seed's connection-oriented figure, end to end. */
TEST(trace_session)
{
	struct dx_endpoint ep;
	struct dx_addr bound;
	char buf[8];
	int s, c, a;
	unsigned port, cport;

	CHECK_OK(ep_parse(&ep, "tcp://127.0.0.1:0"));
	nlines = 0;
	dx_trace_set(capture, NULL);
	CHECK_INT_EQ(dx_trace_on(), 1);
	s = dx_listen_endpoint(&ep, 0, 128, NULL, 0);
	CHECK_OK(dx_local_addr(s, &bound));
	port = dx_addr_port(&bound);
	c = dx_socket(AF_INET, SOCK_STREAM, 0);
	CHECK_OK(dx_connect(c, &bound, dx_deadline_in(WAIT_MS)));
	a = accept_wait(s, NULL);
	CHECK_INT_EQ(dx_write(c, "hello", 5), 5);
	CHECK_INT_EQ(dx_read_some(a, buf, sizeof(buf), dx_deadline_in(WAIT_MS)),
	             5);
	CHECK_OK(dx_close(c));
	CHECK_INT_EQ(dx_read_some(a, buf, sizeof(buf), dx_deadline_in(WAIT_MS)),
	             0);
	CHECK_OK(dx_close(a));
	CHECK_OK(dx_close(s));
	CHECK_INT_EQ(dx_socket(12345, SOCK_DGRAM, 0), -EAFNOSUPPORT);
	dx_trace_set(NULL, NULL);
	CHECK_INT_EQ(dx_trace_on(), 0);

	CHECK_INT_EQ(nlines, 15);
	check_line(0, "socket(AF_INET, SOCK_STREAM) = %d", s);
	check_line(1, "setsockopt(%d, SO_REUSEADDR, 1)", s);
	check_line(2, "bind(%d, 127.0.0.1:0) = 0", s);
	check_line(3, "listen(%d, 128) = 0", s);
	check_line(4, "getsockname(%d) = 127.0.0.1:%u", s, port);
	check_line(5, "socket(AF_INET, SOCK_STREAM) = %d", c);
	check_line(6, "connect(%d, 127.0.0.1:%u) = 0", c, port);
	CHECK_INT_EQ(
	        sscanf(lines[7], "accept(%*d) = %*d from 127.0.0.1:%u", &cport),
	        1);
	check_line(7, "accept(%d) = %d from 127.0.0.1:%u", s, a, cport);
	check_line(8, "write(%d) = 5 bytes", c);
	check_line(9, "read(%d) = 5 bytes", a);
	check_line(10, "close(%d) = 0", c);
	check_line(11, "read(%d) = 0 (EOF)", a);
	check_line(12, "close(%d) = 0", a);
	check_line(13, "close(%d) = 0", s);
	check_line(14, "socket(?, SOCK_DGRAM) = -1 EAFNOSUPPORT (Address "
	               "family not supported by protocol)");
}

TEST(trace_ipv6_and_errors)
{
	struct dx_addr any, bound, to;
	int s, c;
	unsigned port;

	if (!have_ipv6("trace_ipv6_and_errors"))
		return;
	addr_loopback(&any, AF_INET6, 0);
	s = dx_socket(AF_INET6, SOCK_STREAM, 0);
	CHECK_OK(dx_bind(s, &any, 0));
	CHECK_OK(dx_local_addr(s, &bound));
	port = dx_addr_port(&bound);
	addr_loopback(&to, AF_INET6, (uint16_t)port);
	c = dx_socket(AF_INET6, SOCK_STREAM, 0);
	nlines = 0;
	dx_trace_set(capture, NULL);
	CHECK_INT_EQ(dx_bind(c, &any, 0), 0);
	CHECK_INT_EQ(dx_connect(c, &to, dx_deadline_in(WAIT_MS)),
	             -ECONNREFUSED);
	CHECK_INT_EQ(dx_close(-1), -EBADF);
	dx_trace_set(NULL, NULL);
	CHECK_INT_EQ(nlines, 4);
	check_line(0, "setsockopt(%d, IPV6_V6ONLY, 1)", c);
	check_line(1, "bind(%d, [::1]:0) = 0", c);
	check_line(2,
	           "connect(%d, [::1]:%u) = -1 ECONNREFUSED (Connection "
	           "refused)",
	           c, port);
	check_line(3, "close(-1) = -1 EBADF (Bad file descriptor)");
	dx_close(c);
	dx_close(s);
}

int
main(void)
{
	/* Line by line, so a crash or a hang still shows how far it got. */
	(void)setvbuf(stdout, NULL, _IOLBF, 0);
	RUN(socket_flags);
	RUN(tcp4_listen_connect_accept);
	RUN(tcp6_listen_connect_accept);
	RUN(dualstack_wildcard_accepts_ipv4);
	RUN(v6only_wildcard_refuses_ipv4);
	RUN(accept_retries_eintr);
	RUN(addresses_of_unconnected_socket);
	RUN(connect_refused);
	RUN(connect_times_out);
	RUN(connect_eintr_waits_for_outcome);
	RUN(connect_unix_backlog_full);
	RUN(connect_start_does_not_wait);
	RUN(endpoint_tcp);
	RUN(endpoint_tcp_reuseport);
	RUN(endpoint_udp);
	RUN(endpoint_unix_path);
	RUN(endpoint_unixgram_reply);
	RUN(listen_endpoint_errors);
	RUN(connect_endpoint_errors);
	RUN(connect_endpoint_tries_every_address);
	RUN(trace_session);
	RUN(trace_ipv6_and_errors);
	CHECK_DONE();
}
