/* SPDX-License-Identifier: MIT */
/*
 * internal.h - what the library's files share and the public header does
 * not show: the build configuration, the system-call table through which
 * every socket and I/O call goes (so tests can inject faults, as SQLite's
 * aSyscall[] does), and small helpers.
 */
#ifndef DX_INTERNAL_H
#define DX_INTERNAL_H

#include "config.h" /* defines _GNU_SOURCE and HAVE_* before any header */

#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <sys/types.h>

#include "duplex.h"

#define DX_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/*
 * The system calls the I/O and socket layers make. Production code uses
 * dx__sys as initialised in io.c (the libc functions); a test may replace
 * entries to return EINTR, EAGAIN or short counts on chosen calls, and
 * must restore them with dx__sys_reset(). Nothing else calls these
 * functions directly.
 */
struct epoll_event;
struct mmsghdr;

struct dx_sysops {
	ssize_t (*read)(int fd, void *buf, size_t len);
	ssize_t (*write)(int fd, const void *buf, size_t len);
	ssize_t (*send)(int fd, const void *buf, size_t len, int flags);
	ssize_t (*recvfrom)(int fd, void *buf, size_t len, int flags,
	                    struct sockaddr *from, socklen_t *fromlen);
	ssize_t (*sendto)(int fd, const void *buf, size_t len, int flags,
	                  const struct sockaddr *to, socklen_t tolen);
	ssize_t (*recvmsg)(int fd, struct msghdr *msg, int flags);
	ssize_t (*sendmsg)(int fd, const struct msghdr *msg, int flags);
	int (*poll)(struct pollfd *fds, nfds_t n, int timeout);
	int (*accept4)(int fd, struct sockaddr *addr, socklen_t *len,
	               int flags);
	int (*connect)(int fd, const struct sockaddr *addr, socklen_t len);
	int (*recvmmsg)(int fd, struct mmsghdr *v, unsigned n, int flags,
	                struct timespec *timeout);
	int (*sendmmsg)(int fd, struct mmsghdr *v, unsigned n, int flags);
	int (*epoll_wait)(int epfd, struct epoll_event *evs, int max,
	                  int timeout);
	ssize_t (*splice)(int in, loff_t *in_off, int out, loff_t *out_off,
	                  size_t len, unsigned flags);
	ssize_t (*vmsplice)(int fd, const struct iovec *iov, size_t n,
	                    unsigned flags);
};

extern struct dx_sysops dx__sys;

/*
 * The batched and event calls of the I/O layer, for the servers:
 * recvmmsg(2) (returns the count, -EAGAIN or -errno; with WAIT on a
 * blocking descriptor it waits for the first datagram and takes what else
 * is queued then, MSG_WAITFORONE; without, it never waits),
 * sendmmsg(2) (returns how many were sent, >= 1, or -errno for the first
 * message, after waiting a bounded time out of EAGAIN), and epoll_wait(2)
 * until DEADLINE (returns the count, 0 at the deadline, or -errno). EINTR
 * is retried; with tracing on, each datagram gets its own trace line.
 */
int dx__recvmmsg(int fd, struct mmsghdr *v, unsigned n, int wait);
int dx__sendmmsg(int fd, struct mmsghdr *v, unsigned n);
int dx__epoll_wait(int epfd, struct epoll_event *evs, int max,
                   int64_t deadline);
/*
 * One splice(2) of at most LEN bytes from IN to OUT, one of them a pipe
 * (the pipe side never waits; a socket waits as its own O_NONBLOCK says).
 * Returns the count (0: end of file on IN), -EAGAIN or -errno; EINTR is
 * retried. Into a socket whose peer has gone it raises SIGPIPE, as
 * write(2) does: the command ignores SIGPIPE.
 */
ssize_t dx__splice(int in, int out, size_t len);
/*
 * One vmsplice(2) of at most LEN bytes at BUF into the pipe PIPE_W, which
 * then refers to those pages instead of holding a copy: BUF must stay
 * unchanged until the pipe's contents have been consumed (spliced on),
 * which is what the caller promises. Returns the count, -EAGAIN (a full
 * non-blocking pipe) or -errno; EINTR is retried.
 */
ssize_t dx__vmsplice(int pipe_w, const void *buf, size_t len);
void dx__sys_reset(void);

/* -errno of the current errno, never 0 (a failing call always sets it). */
int dx__neg_errno(void);
/* CLOCK_MONOTONIC in microseconds. */
int64_t dx__now_us(void);

/* "EMFILE" for -EMFILE, for trace lines; "E?" where libc cannot name it. */
const char *dx__errno_name(int err);

/* Maps a getaddrinfo() return value to the library's resolver range. */
int dx__eai_error(int eai);

/* Writes a "why" sentence when the caller gave a buffer; returns ERR. */
int dx__why(char *why, size_t whylen, int err, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

/*
 * hash.c: SipHash-2-4 under a secret key, for tables keyed by what a peer
 * chooses (its address), so no peer can aim its keys at one bucket.
 * dx__hash_key_new() draws 128 random bits (getrandom; the clock and the
 * pid if the kernel has no entropy yet). A table shared between processes
 * takes its key before they fork.
 */
struct dx_hash_key {
	uint64_t k[2];
};
uint64_t dx__siphash(const struct dx_hash_key *k, const void *data, size_t len);
void dx__hash_key_new(struct dx_hash_key *k);

#endif /* DX_INTERNAL_H */
