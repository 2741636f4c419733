/* SPDX-License-Identifier: MIT */
/*
 * sock.c - the seed's socket interface: socket, bind, listen, accept,
 * connect and close, with sockets born close-on-exec and non-blocking, one
 * trace line per call, and the endpoint-level helpers that servers and
 * clients open their sockets with.
 */
#include "internal.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* How many resolved addresses an endpoint helper tries at most. */
#define MAX_ADDRS 16

/* Long enough for any dx_endpoint_format() result. */
#define ENDPOINT_TEXT 320

/* ------------------------------------------------------------------------
 * Trace helpers
 * ------------------------------------------------------------------------ */

struct name {
	int value;
	const char *text;
};

static const struct name family_names[] = {
        {AF_INET, "AF_INET"},
        {AF_INET6, "AF_INET6"},
        {AF_UNIX, "AF_UNIX"},
        {AF_UNSPEC, "AF_UNSPEC"},
};

static const struct name type_names[] = {
        {SOCK_STREAM, "SOCK_STREAM"},
        {SOCK_DGRAM, "SOCK_DGRAM"},
        {SOCK_SEQPACKET, "SOCK_SEQPACKET"},
        {SOCK_RAW, "SOCK_RAW"},
};

/* The name of VALUE in TABLE, or "?". */
static const char *
name_of(const struct name *table, size_t n, int value)
{
	for (size_t i = 0; i < n; i++)
		if (table[i].value == value)
			return table[i].text;
	return "?";
}

/*
 * "= 3" for RC >= 0, "= -1 EMFILE (Too many open files)" otherwise; a
 * trace line may be cut, so snprintf's length is not needed.
 */
static const char *
result_text(int rc, char *buf, size_t len)
{
	if (rc >= 0)
		(void)snprintf(buf, len, "= %d", rc);
	else
		(void)snprintf(buf, len, "= -1 %s (%s)", dx__errno_name(rc),
		               dx_strerror(rc));
	return buf;
}

/* The text of an address for a trace line; never NULL. */
static const char *
addr_text(const struct dx_addr *addr, char *buf, size_t len)
{
	if (dx_addr_format(addr, buf, len) < 0)
		return "(unknown)";
	return buf;
}

/* "bind(3, 127.0.0.1:7007) = 0" and the like. */
static void
trace_addr_call(const char *call, int fd, const struct dx_addr *addr, int rc)
{
	char text[DX_ADDRSTRLEN], res[128];

	if (!dx_trace_on())
		return;
	dx_trace("%s(%d, %s) %s", call, fd, addr_text(addr, text, sizeof(text)),
	         result_text(rc, res, sizeof(res)));
}

/*
 * setsockopt(2) of an int option, traced as "setsockopt(3, NAME, VALUE)"
 * with the result appended only when it failed. Returns 0 or -errno.
 */
static int
set_option(int fd, int level, int option, const char *name, int value)
{
	char res[128];
	int rc = 0;

	if (setsockopt(fd, level, option, &value, sizeof(value)) < 0)
		rc = dx__neg_errno();
	if (!dx_trace_on())
		return rc;
	if (rc < 0)
		dx_trace("setsockopt(%d, %s, %d) %s", fd, name, value,
		         result_text(rc, res, sizeof(res)));
	else
		dx_trace("setsockopt(%d, %s, %d)", fd, name, value);
	return rc;
}

/* ------------------------------------------------------------------------
 * The socket calls
 * ------------------------------------------------------------------------ */

int
dx_socket(int family, int type, unsigned flags)
{
	char res[128];
	int fd;

	if (!(flags & DX_SOCK_BLOCKING))
		type |= SOCK_NONBLOCK;
	if (!(flags & DX_SOCK_INHERIT))
		type |= SOCK_CLOEXEC;
	fd = socket(family, type, 0);
	if (fd < 0)
		fd = dx__neg_errno();
	if (dx_trace_on())
		dx_trace("socket(%s, %s) %s",
		         name_of(family_names, DX_ARRAY_LEN(family_names),
		                 family),
		         name_of(type_names, DX_ARRAY_LEN(type_names),
		                 type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC)),
		         result_text(fd, res, sizeof(res)));
	return fd;
}

int
dx_bind(int fd, const struct dx_addr *addr, unsigned flags)
{
	int rc = 0, v6only;

	if (addr->u.sa.sa_family == AF_INET6) {
		v6only = (flags & DX_SOCK_V6ONLY) || !addr->dualstack;
		rc = set_option(fd, IPPROTO_IPV6, IPV6_V6ONLY, "IPV6_V6ONLY",
		                v6only);
		if (rc < 0)
			goto out;
	}
	if (bind(fd, &addr->u.sa, addr->len) < 0)
		rc = dx__neg_errno();
	trace_addr_call("bind", fd, addr, rc);
out:
	return rc;
}

int
dx_listen(int fd, int backlog)
{
	char res[128];
	int rc = 0;

	if (listen(fd, backlog) < 0)
		rc = dx__neg_errno();
	if (dx_trace_on())
		dx_trace("listen(%d, %d) %s", fd, backlog,
		         result_text(rc, res, sizeof(res)));
	return rc;
}

/* "accept(3) = 4 from 127.0.0.1:51022"; -EAGAIN is routine and untraced. */
static void
trace_accept(int fd, int rc, const struct dx_addr *peer)
{
	char text[DX_ADDRSTRLEN], res[128];

	if (!dx_trace_on() || rc == -EAGAIN)
		return;
	if (rc < 0)
		dx_trace("accept(%d) %s", fd,
		         result_text(rc, res, sizeof(res)));
	else
		dx_trace("accept(%d) = %d from %s", fd, rc,
		         addr_text(peer, text, sizeof(text)));
}

int
dx_accept(int fd, struct dx_addr *peer)
{
	struct dx_addr local;
	struct dx_addr *addr = peer != NULL ? peer : &local;
	int saved = errno, rc;

	do {
		addr->len = sizeof(addr->u.ss);
		rc = dx__sys.accept4(fd, &addr->u.sa, &addr->len,
		                     SOCK_CLOEXEC | SOCK_NONBLOCK);
	} while (rc < 0 && errno == EINTR);
	if (rc < 0) {
		rc = dx__neg_errno();
	} else {
		errno = saved;
		addr->dualstack = 0;
	}
	trace_accept(fd, rc, addr);
	return rc;
}

/*
 * One connect(2). A non-blocking connect to a unix stream listener whose
 * backlog is full fails with EAGAIN and starts nothing (Linux), so that
 * case is retried every few milliseconds until DEADLINE. Returns 0,
 * -EINPROGRESS or -EINTR (the connect goes on), -ETIMEDOUT or -errno.
 */
static int
start_connect(int fd, const struct dx_addr *addr, int64_t deadline)
{
	int64_t now;
	int rc;

	for (;;) {
		if (dx__sys.connect(fd, &addr->u.sa, addr->len) == 0)
			return 0;
		rc = dx__neg_errno();
		if (rc != -EAGAIN || addr->u.sa.sa_family != AF_UNIX)
			return rc;
		now = dx_now_ms();
		if (deadline <= now)
			return -ETIMEDOUT;
		(void)dx__sys.poll(NULL, 0,
		                   deadline - now > 10 ? 10
		                                       : (int)(deadline - now));
	}
}

/*
 * Waits for a connect that is under way, then reads its outcome. After
 * EINTR the kernel goes on connecting; calling connect() again would only
 * say EALREADY, so the socket's writability is the one signal to wait for.
 */
static int
finish_connect(int fd, int64_t deadline)
{
	socklen_t len = sizeof(int);
	int err = 0, rc;

	rc = dx_wait(fd, POLLOUT, deadline);
	if (rc < 0)
		return rc;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		return dx__neg_errno();
	return err != 0 ? -err : 0;
}

int
dx_connect(int fd, const struct dx_addr *addr, int64_t deadline)
{
	int saved = errno, rc;

	rc = start_connect(fd, addr, deadline);
	if (rc == -EINPROGRESS || rc == -EINTR)
		rc = finish_connect(fd, deadline);
	if (rc == 0)
		errno = saved;
	trace_addr_call("connect", fd, addr, rc);
	return rc;
}

int
dx_connect_start(int fd, const struct dx_addr *addr)
{
	int saved = errno, rc = 0;

	if (dx__sys.connect(fd, &addr->u.sa, addr->len) < 0)
		rc = dx__neg_errno();
	errno = saved;
	trace_addr_call("connect", fd, addr, rc);
	return rc;
}

/* getsockname(2) or getpeername(2), traced as "getsockname(3) = ADDR". */
static int
sock_name(int fd, struct dx_addr *addr, int peer)
{
	const char *call = peer ? "getpeername" : "getsockname";
	char text[DX_ADDRSTRLEN], res[128];
	int rc;

	addr->len = sizeof(addr->u.ss);
	addr->dualstack = 0;
	if (peer)
		rc = getpeername(fd, &addr->u.sa, &addr->len);
	else
		rc = getsockname(fd, &addr->u.sa, &addr->len);
	rc = rc < 0 ? dx__neg_errno() : 0;
	if (!dx_trace_on())
		return rc;
	if (rc < 0)
		dx_trace("%s(%d) %s", call, fd,
		         result_text(rc, res, sizeof(res)));
	else
		dx_trace("%s(%d) = %s", call, fd,
		         addr_text(addr, text, sizeof(text)));
	return rc;
}

int
dx_local_addr(int fd, struct dx_addr *addr)
{
	return sock_name(fd, addr, 0);
}

int
dx_peer_addr(int fd, struct dx_addr *addr)
{
	return sock_name(fd, addr, 1);
}

/*
 * On Linux the descriptor is released even when close() says EINTR, so
 * that is success: retrying could close a descriptor another thread has
 * just been given. errno is preserved, so error paths may close freely.
 */
int
dx_close(int fd)
{
	char res[128];
	int saved = errno, rc = 0;

	if (close(fd) < 0 && errno != EINTR)
		rc = dx__neg_errno();
	errno = saved;
	if (dx_trace_on())
		dx_trace("close(%d) %s", fd, result_text(rc, res, sizeof(res)));
	return rc;
}

/* ------------------------------------------------------------------------
 * Endpoints
 * ------------------------------------------------------------------------ */

/*
 * The options a listening IP socket gets before bind. SO_REUSEADDR lets a
 * restarted server bind while old connections sit in TIME_WAIT; unix
 * sockets have no use for either option. *STEP names a failing call.
 */
static int
set_listen_options(int fd, const struct dx_addr *addr, int socktype,
                   unsigned flags, const char **step)
{
	int family = addr->u.sa.sa_family, rc = 0;

	if (family != AF_INET && family != AF_INET6)
		goto out;
	if (socktype == SOCK_STREAM) {
		*step = "set SO_REUSEADDR on";
		rc = set_option(fd, SOL_SOCKET, SO_REUSEADDR, "SO_REUSEADDR",
		                1);
		if (rc < 0)
			goto out;
	}
	if (flags & DX_SOCK_REUSEPORT) {
		*step = "set SO_REUSEPORT on";
		rc = set_option(fd, SOL_SOCKET, SO_REUSEPORT, "SO_REUSEPORT",
		                1);
	}
out:
	return rc;
}

/*
 * Opens one server socket bound to ADDR (and listening, for streams).
 * Returns the descriptor, or an error with *STEP naming the failed call.
 */
static int
listen_addr(const struct dx_addr *addr, int socktype, unsigned flags,
            int backlog, const char **step)
{
	int fd, rc;

	*step = "create a socket for";
	fd = dx_socket(addr->u.sa.sa_family, socktype, flags);
	if (fd < 0)
		return fd;
	rc = set_listen_options(fd, addr, socktype, flags, step);
	if (rc < 0)
		goto fail;
	*step = "bind";
	rc = dx_bind(fd, addr, flags);
	if (rc < 0)
		goto fail;
	*step = "listen on";
	if (socktype == SOCK_STREAM)
		rc = dx_listen(fd, backlog);
	if (rc < 0)
		goto fail;
	return fd;
fail:
	dx_close(fd);
	return rc;
}

/* EP as text for a why-sentence, e.g. "tcp://127.0.0.1:7". */
static const char *
endpoint_text(const struct dx_endpoint *ep, char *buf, size_t len)
{
	if (dx_endpoint_format(ep, buf, len) < 0)
		(void)snprintf(buf, len, "the %s endpoint",
		               dx_scheme_name(ep->scheme));
	return buf;
}

/*
 * The addresses of a passive name are tried in order and the first that
 * binds wins; when none does, WHY tells the last failure.
 */
int
dx_listen_endpoint(const struct dx_endpoint *ep, unsigned flags, int backlog,
                   char *why, size_t whylen)
{
	struct dx_addr addrs[MAX_ADDRS];
	char text[ENDPOINT_TEXT];
	const char *step = "resolve";
	int socktype = dx_scheme_socktype(ep->scheme);
	int n, rc;

	n = dx_endpoint_resolve(ep, DX_RESOLVE_PASSIVE, addrs, MAX_ADDRS);
	rc = n == 0 ? -EADDRNOTAVAIL : n;
	for (int i = 0; i < n; i++) {
		rc = listen_addr(&addrs[i], socktype, flags, backlog, &step);
		if (rc >= 0)
			goto out;
	}
	dx__why(why, whylen, rc, "cannot %s %s: %s", step,
	        endpoint_text(ep, text, sizeof(text)), dx_strerror(rc));
out:
	return rc;
}

/*
 * A unixgram client binds to an autobound abstract address (bind with
 * only the family: Linux picks a unique name) so that the server has an
 * address to reply to.
 */
static int
bind_autobind(int fd, unsigned flags)
{
	struct dx_addr addr;

	memset(&addr, 0, sizeof(addr));
	addr.u.un.sun_family = AF_UNIX;
	addr.len = sizeof(sa_family_t);
	return dx_bind(fd, &addr, flags);
}

/* A fresh socket for SCHEME connected to ADDR; the descriptor or -errno. */
static int
connect_addr(enum dx_scheme scheme, const struct dx_addr *addr, unsigned flags,
             int64_t deadline)
{
	int fd, rc = 0;

	fd = dx_socket(addr->u.sa.sa_family, dx_scheme_socktype(scheme), flags);
	if (fd < 0)
		return fd;
	if (scheme == DX_SCHEME_UNIXGRAM)
		rc = bind_autobind(fd, flags);
	if (rc == 0)
		rc = dx_connect(fd, addr, deadline);
	if (rc < 0) {
		dx_close(fd);
		return rc;
	}
	return fd;
}

int
dx_connect_endpoint(const struct dx_endpoint *ep, unsigned flags,
                    int64_t deadline)
{
	struct dx_addr addrs[MAX_ADDRS];
	int n, rc;

	n = dx_endpoint_resolve(ep, 0, addrs, MAX_ADDRS);
	rc = n == 0 ? -EADDRNOTAVAIL : n;
	for (int i = 0; i < n; i++) {
		rc = connect_addr(ep->scheme, &addrs[i], flags, deadline);
		if (rc >= 0)
			break;
	}
	return rc;
}
