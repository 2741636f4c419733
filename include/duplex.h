/* SPDX-License-Identifier: MIT */
/*
 * duplex.h - the one public header of libduplex: process-to-process
 * communication over sockets. Endpoints, ports and the IANA registry, the I/O
 * layer, the socket layer and its trace hook.
 *
 * Conventions: every function returns 0 (or a count >= 0) on success and a
 * negative code on failure: -errno for system errors, or one of the DX_E*
 * codes below; dx_strerror() explains any of them. The library never prints,
 * never exits and never changes signal dispositions. Memory belongs to
 * whoever allocated it: the library fills caller-provided structures.
 */
#ifndef DUPLEX_H
#define DUPLEX_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DX_VERSION "0.1.0"

/* ------------------------------------------------------------------------
 * Errors
 * ------------------------------------------------------------------------ */

/*
 * The library's own codes live above any errno value. Resolver
 * (getaddrinfo) failures have their own range: -(DX_EAI_BASE + n).
 */
enum {
	DX_EBASE = 2000,
	DX_ESCHEME,    /* unknown endpoint scheme */
	DX_ESYNTAX,    /* malformed endpoint */
	DX_EHOST,      /* malformed host part */
	DX_EPORT,      /* port is not a decimal number */
	DX_EPORTRANGE, /* port outside 0-65535 */
	DX_ENOPORT,    /* port missing or empty */
	DX_ESERVICE,   /* unknown service name for that protocol */
	DX_EPATH,      /* unix socket path empty or too long */
	DX_ETRUNC,     /* a datagram was truncated on receipt */
	DX_ERULE,      /* malformed access rule */
	DX_ELAST,
	DX_EAI_BASE = 3000 /* + the resolver's own code, see dx_strerror() */
};

/*
 * Returns a static English sentence for any code this library returns
 * (a negative errno, a DX_E* code or a resolver code). Never NULL.
 */
const char *dx_strerror(int err);

/* ------------------------------------------------------------------------
 * Ports and the IANA service registry (port.c, the generated table)
 * ------------------------------------------------------------------------ */

enum dx_proto { DX_PROTO_TCP = 1, DX_PROTO_UDP, DX_PROTO_SCTP, DX_PROTO_DCCP };

/* "tcp", "udp", ... for a protocol; NULL for an unknown value. */
const char *dx_proto_name(enum dx_proto proto);
/* Parses "tcp", "udp", "sctp" or "dccp". Returns 0 or -DX_ESYNTAX. */
int dx_proto_parse(const char *text, enum dx_proto *proto);

/*
 * Parses a port number strictly: decimal digits only, 0-65535, no sign,
 * no spaces, no base prefix. Leading zeros are accepted ("007" is 7).
 * Returns 0, -DX_ENOPORT (empty), -DX_EPORT (not a number) or
 * -DX_EPORTRANGE (a number outside 0-65535).
 */
int dx_port_parse(const char *text, uint16_t *port);

/* The IANA ranges (RFC 6335 section 6). */
enum dx_port_class {
	DX_PORT_WELL_KNOWN, /* 0-1023, also called system ports */
	DX_PORT_REGISTERED, /* 1024-49151, also called user ports */
	DX_PORT_DYNAMIC     /* 49152-65535, dynamic/private */
};

enum dx_port_class dx_port_class(uint16_t port);
/* "well-known", "registered", "dynamic/private". */
const char *dx_port_class_name(enum dx_port_class cls);
/* Fills *lo and *hi with the bounds of a class. */
void dx_port_class_bounds(enum dx_port_class cls, uint16_t *lo, uint16_t *hi);

/* One row of the IANA service registry, built in at compile time. */
struct dx_service_entry {
	const char *name;        /* service name, e.g. "echo" */
	const char *description; /* e.g. "Echo"; may be "" */
	uint16_t port_lo;        /* a row may cover a range of ports */
	uint16_t port_hi;
	enum dx_proto proto;
};

/*
 * Registry rows that cover PORT for PROTO (0 = every protocol), in
 * registry order. Stores at most MAX pointers to static rows in OUT and
 * returns how many rows match in all (which may exceed MAX).
 */
size_t dx_registry_by_port(uint16_t port, enum dx_proto proto,
                           const struct dx_service_entry **out, size_t max);

/*
 * Registry rows named NAME (case-insensitive) for PROTO (0 = every
 * protocol); same storage contract as dx_registry_by_port().
 */
size_t dx_registry_by_name(const char *name, enum dx_proto proto,
                           const struct dx_service_entry **out, size_t max);

/* Number of rows in the built-in registry. */
size_t dx_registry_size(void);

/*
 * Resolves a port written as a number or a service name for PROTO: first
 * a strict number, then the IANA registry, then the system's services
 * database (/etc/services aliases). Returns 0, a dx_port_parse() error for
 * a malformed number, or -DX_ESERVICE for an unknown name.
 */
int dx_port_lookup(const char *text, enum dx_proto proto, uint16_t *port);

/*
 * The kernel's ephemeral port range for outgoing connections, from
 * /proc/sys/net/ipv4/ip_local_port_range. Returns 0 or -errno.
 */
int dx_ephemeral_range(uint16_t *lo, uint16_t *hi);

/* ------------------------------------------------------------------------
 * Addresses and endpoints (endpoint.c)
 * ------------------------------------------------------------------------ */

/* A socket address of any family the library speaks, with its length. */
struct dx_addr {
	union {
		struct sockaddr sa;
		struct sockaddr_in in;
		struct sockaddr_in6 in6;
		struct sockaddr_un un;
		struct sockaddr_storage ss;
	} u;
	socklen_t len;
	/* For a passive IPv6 wildcard: accept IPv4 too (IPV6_V6ONLY off). */
	unsigned char dualstack;
};

/*
 * Longest text dx_addr_format() writes, with its NUL: a unix path (107
 * bytes plus '@'), or "[IPv6%zone]:65535".
 */
#define DX_ADDRSTRLEN 128

/*
 * Formats an address: "127.0.0.1:7", "[::1]:7", "[fe80::1%eth0]:7",
 * "/run/x.sock", "@abstract" or "(unnamed)" for an unbound unix socket.
 * An IPv4-mapped IPv6 address is written as its IPv4 form. Returns the
 * length written (truncated to LEN-1) or -EAFNOSUPPORT.
 */
int dx_addr_format(const struct dx_addr *addr, char *buf, size_t len);
/* Like dx_addr_format() but the host alone ("127.0.0.1", "::1"). */
int dx_addr_format_host(const struct dx_addr *addr, char *buf, size_t len);
/* The port of an IP address; 0 for other families. */
uint16_t dx_addr_port(const struct dx_addr *addr);
/*
 * Rewrites an IPv4-mapped IPv6 address (::ffff:a.b.c.d) as AF_INET in
 * place, so rules and limits see one form. Other addresses are unchanged.
 */
void dx_addr_unmap(struct dx_addr *addr);
/* 1 when two addresses are the same family, address and port. */
int dx_addr_equal(const struct dx_addr *a, const struct dx_addr *b);

enum dx_scheme {
	DX_SCHEME_TCP = 1,
	DX_SCHEME_UDP,
	DX_SCHEME_UNIX,
	DX_SCHEME_UNIXGRAM
};

/* The scheme's SOCK_STREAM or SOCK_DGRAM. */
int dx_scheme_socktype(enum dx_scheme scheme);
/* "tcp", "udp", "unix", "unixgram". */
const char *dx_scheme_name(enum dx_scheme scheme);

/*
 * A parsed endpoint: scheme://host:port or scheme://path. Plain data; the
 * caller owns it. HOST is empty for the wildcard, holds an IPv6 literal
 * without brackets (and with its "%zone", if any), and is otherwise an
 * IPv4 literal or a name. PATH is the unix socket path; a leading '@'
 * names a Linux abstract socket.
 */
struct dx_endpoint {
	enum dx_scheme scheme;
	char host[256];
	uint16_t port;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

/*
 * Parses TEXT, one of:
 *   tcp://HOST:PORT   udp://HOST:PORT   unix://PATH   unixgram://PATH
 * HOST is an IPv4 literal, a bracketed IPv6 literal ("[::1]",
 * "[fe80::1%eth0]"), a host name, or empty for the wildcard. PORT is a
 * number or a service name for the scheme's protocol (resolved here).
 * Returns 0 or a DX_E* code; when WHY is not NULL it receives one sentence
 * naming the offending part (e.g. "port 65536 is out of range 0-65535").
 */
int dx_endpoint_parse(struct dx_endpoint *ep, const char *text, char *why,
                      size_t whylen);

/*
 * Formats EP canonically (numeric port, IPv6 in brackets); parsing the
 * result gives back an equal endpoint. Returns the length or -ENOSPC.
 */
int dx_endpoint_format(const struct dx_endpoint *ep, char *buf, size_t len);

/* Flags for dx_endpoint_resolve(). */
#define DX_RESOLVE_PASSIVE 0x1u /* for bind(): empty host is the wildcard */
#define DX_RESOLVE_NUMERIC 0x2u /* no name lookups */

/*
 * Resolves EP into at most MAX addresses in OUT, in the resolver's order
 * (the order connect() should try them). A passive empty host yields one
 * dual-stack IPv6 wildcard when the kernel has IPv6, else 0.0.0.0. A unix
 * endpoint yields its one address. Returns the count (>= 1) or an error:
 * -(DX_EAI_BASE + n) from the resolver, or -errno.
 */
int dx_endpoint_resolve(const struct dx_endpoint *ep, unsigned flags,
                        struct dx_addr *out, size_t max);

/* ------------------------------------------------------------------------
 * Time and the I/O layer (io.c)
 *
 * The one place where EINTR, EAGAIN and short reads and writes are
 * handled. Deadlines are absolute CLOCK_MONOTONIC milliseconds from
 * dx_now_ms(); DX_FOREVER waits without limit and 0 never waits.
 * ------------------------------------------------------------------------ */

#define DX_FOREVER INT64_MAX

/* Milliseconds of CLOCK_MONOTONIC. */
int64_t dx_now_ms(void);
/* dx_now_ms() + MS, or DX_FOREVER for MS < 0. */
int64_t dx_deadline_in(int64_t ms);

/*
 * One read(2), EINTR retried. Returns bytes read, 0 at end of file,
 * -EAGAIN when a non-blocking fd has nothing, or -errno.
 */
ssize_t dx_read(int fd, void *buf, size_t len);
/* One write(2), EINTR retried. Returns bytes written, -EAGAIN or -errno. */
ssize_t dx_write(int fd, const void *buf, size_t len);
/*
 * One send(2) with MSG_NOSIGNAL (a closed peer is -EPIPE, never SIGPIPE),
 * EINTR retried. Returns bytes sent, -EAGAIN or -errno.
 */
ssize_t dx_send(int fd, const void *buf, size_t len);

/*
 * Waits until FD is ready for EVENTS (POLLIN, POLLOUT) or DEADLINE passes.
 * Returns the revents (> 0; POLLERR, POLLHUP and POLLNVAL included, so
 * the next call on FD reports the error), -ETIMEDOUT, or -errno.
 */
int dx_wait(int fd, short events, int64_t deadline);

/*
 * poll(2) over N descriptors until one is ready or DEADLINE passes, EINTR
 * retried with the time that is left. Returns how many are ready (> 0;
 * see each revents), -ETIMEDOUT or -errno.
 */
struct pollfd;
int dx_poll(struct pollfd *fds, size_t n, int64_t deadline);

/*
 * Writes all LEN bytes, looping over short writes and waiting out EAGAIN
 * until DEADLINE. Uses send(MSG_NOSIGNAL) when SOCKET is nonzero and
 * write(2) otherwise (a pipe with no reader then raises SIGPIPE unless
 * the caller ignores it). Returns 0, -ETIMEDOUT (some bytes may have been
 * written: *DONE says how many when DONE is not NULL) or -errno.
 */
int dx_write_all(int fd, const void *buf, size_t len, int socket,
                 int64_t deadline, size_t *done);

/*
 * Reads until LEN bytes have arrived, end of file, or DEADLINE. Returns
 * the bytes read (< LEN only at end of file), -ETIMEDOUT (*DONE bytes
 * arrived) or -errno.
 */
ssize_t dx_read_full(int fd, void *buf, size_t len, int64_t deadline,
                     size_t *done);

/*
 * Reads what is there, waiting until at least one byte, end of file or
 * DEADLINE. Returns bytes read, 0 at end of file, -ETIMEDOUT or -errno.
 */
ssize_t dx_read_some(int fd, void *buf, size_t len, int64_t deadline);

/*
 * One recvfrom(2) on a datagram socket that reports truncation: the
 * datagram's real length is returned even when it was larger than LEN
 * (a result > LEN means truncated), EINTR retried. FROM may be NULL; an
 * unnamed sender (an unbound unix socket) gives FROM->len == 0. Not for
 * stream sockets, where MSG_TRUNC discards data. Returns the length,
 * -EAGAIN or -errno.
 */
ssize_t dx_recvfrom(int fd, void *buf, size_t len, struct dx_addr *from);
/* One sendto(2) with MSG_NOSIGNAL, EINTR retried; TO may be NULL. */
ssize_t dx_sendto(int fd, const void *buf, size_t len,
                  const struct dx_addr *to);

/* ------------------------------------------------------------------------
 * The socket layer (sock.c): the seed's socket interface
 * ------------------------------------------------------------------------ */

/* Flags for dx_socket() and the helpers built on it. */
#define DX_SOCK_BLOCKING  0x1u /* omit SOCK_NONBLOCK */
#define DX_SOCK_INHERIT   0x2u /* omit SOCK_CLOEXEC */
#define DX_SOCK_V6ONLY    0x4u /* IPV6_V6ONLY on; default follows the address */
#define DX_SOCK_REUSEPORT 0x8u

/*
 * socket(2), born SOCK_CLOEXEC|SOCK_NONBLOCK unless FLAGS say otherwise.
 * Returns the descriptor or -errno.
 */
int dx_socket(int family, int type, unsigned flags);
/*
 * bind(2). For AF_INET6 it first sets IPV6_V6ONLY explicitly: off for a
 * dualstack wildcard, on otherwise (or with DX_SOCK_V6ONLY). Returns 0 or
 * -errno.
 */
int dx_bind(int fd, const struct dx_addr *addr, unsigned flags);
/* listen(2). Returns 0 or -errno. */
int dx_listen(int fd, int backlog);
/*
 * accept4(2) with SOCK_CLOEXEC|SOCK_NONBLOCK, EINTR retried. PEER may be
 * NULL. Returns the new descriptor, -EAGAIN or -errno.
 */
int dx_accept(int fd, struct dx_addr *peer);
/*
 * connect(2) on a non-blocking socket, waiting until DEADLINE for the
 * handshake. Returns 0, -ETIMEDOUT or -errno (e.g. -ECONNREFUSED).
 */
int dx_connect(int fd, const struct dx_addr *addr, int64_t deadline);
/*
 * connect(2) on a non-blocking socket, started and not waited for: one
 * call. Returns 0 (connected), -EINPROGRESS (tcp: the handshake goes on;
 * writability ends it and SO_ERROR, or the first send, tells how), -EAGAIN
 * (unix: the listener's backlog is full) or -errno.
 */
int dx_connect_start(int fd, const struct dx_addr *addr);
/* getsockname(2) / getpeername(2) into a dx_addr. */
int dx_local_addr(int fd, struct dx_addr *addr);
int dx_peer_addr(int fd, struct dx_addr *addr);
/* close(2) with the trace line; returns 0 or -errno, never retries. */
int dx_close(int fd);

/*
 * Opens a server socket for EP: socket, SO_REUSEADDR (stream), bind,
 * listen(BACKLOG) for stream schemes. A unix path is bound as given; a
 * stale socket file is the caller's decision. Returns the descriptor or
 * an error; WHY as for dx_endpoint_parse().
 */
int dx_listen_endpoint(const struct dx_endpoint *ep, unsigned flags,
                       int backlog, char *why, size_t whylen);

/*
 * Opens a client socket connected to EP, trying each resolved address in
 * turn until one connects; each try gets until DEADLINE. Datagram schemes
 * get a connected datagram socket (a unixgram client is bound to an
 * autobound abstract address so that replies can reach it). Returns the
 * descriptor or the last error.
 */
int dx_connect_endpoint(const struct dx_endpoint *ep, unsigned flags,
                        int64_t deadline);

/* ------------------------------------------------------------------------
 * Trace (trace.c): one line per socket call, for --trace
 * ------------------------------------------------------------------------ */

/*
 * Receives one complete line (no newline) per socket call, e.g.
 * "socket(AF_INET, SOCK_DGRAM) = 3" or "recvfrom(3) <- 127.0.0.1:40211
 * 5 bytes". Called on the calling thread, synchronously.
 */
typedef void (*dx_trace_fn)(void *ctx, const char *line);

/* Installs FN (NULL turns tracing off). Process-wide: call it before
 * starting threads. */
void dx_trace_set(dx_trace_fn fn, void *ctx);
/* 1 when a trace function is installed. */
int dx_trace_on(void);
/* Sends one printf-formatted line to the trace function, if any. */
void dx_trace(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#ifdef __cplusplus
}
#endif
#endif /* DUPLEX_H */
