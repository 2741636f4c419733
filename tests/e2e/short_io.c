/* SPDX-License-Identifier: MIT */
/*
 * short_io.c - an LD_PRELOAD shim for reliability scenario S7: on stream
 * sockets, write(), send() and sendto() move fewer bytes than asked (half
 * of the calls, a length picked at random from 1 to the whole), and on a
 * non-blocking one one call in eight fails with EAGAIN although there is
 * room. Both are what the kernel may do at any time; a server that loses
 * or repeats a byte, or gives up, when they happen is wrong. Other
 * descriptors (pipes, eventfds, files) pass through untouched. The random
 * choices come from DX_SHIM_SEED, so a run is repeatable; DX_SHIM_CTL,
 * if set, names a file whose first 8 bytes the shim keeps counting its
 * interventions in (native 64-bit), so the test can tell it worked.
 * Built by the test with the system's C compiler; glibc's own entry points
 * are reached through dlsym(RTLD_NEXT).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "shim.h"

static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_send)(int, const void *, size_t, int);
static ssize_t (*real_sendto)(int, const void *, size_t, int,
                              const struct sockaddr *, socklen_t);
static uint64_t seed, counter;
static uint64_t *hits;

__attribute__((constructor)) static void
shim_init(void)
{
	const char *s = getenv("DX_SHIM_SEED");
	const char *path = getenv("DX_SHIM_CTL");

	real_write = (ssize_t(*)(int, const void *, size_t))dlsym(RTLD_NEXT,
	                                                          "write");
	real_send = (ssize_t(*)(int, const void *, size_t, int))dlsym(RTLD_NEXT,
	                                                              "send");
	real_sendto = (ssize_t(*)(int, const void *, size_t, int,
	                          const struct sockaddr *,
	                          socklen_t))dlsym(RTLD_NEXT, "sendto");
	seed = s ? strtoull(s, NULL, 10) : 7;
	hits = dx_shim_map(path, sizeof(*hits));
}

/* A hash of the call's number: thread-safe and repeatable. */
static uint64_t
next_random(void)
{
	return dx_shim_mix(__atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED) ^
	                   seed);
}

static void
count(void)
{
	if (hits != NULL)
		__atomic_fetch_add(hits, 1, __ATOMIC_RELAXED);
}

/*
 * How much of LEN to pass on for FD: LEN, fewer, or -1 meaning "fail with
 * EAGAIN". Only stream sockets are touched.
 */
static ssize_t
allow(int fd, size_t len)
{
	int type = 0;
	socklen_t tl = sizeof(type);
	uint64_t r;

	if (len < 2 || getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0 ||
	    type != SOCK_STREAM)
		return (ssize_t)len;
	r = next_random();
	if ((r & 7) == 0 && (fcntl(fd, F_GETFL) & O_NONBLOCK)) {
		count();
		return -1;
	}
	if (r & 8)
		return (ssize_t)len;
	count();
	return 1 + (ssize_t)((r >> 8) % (len - 1));
}

ssize_t
write(int fd, const void *buf, size_t len)
{
	ssize_t n = allow(fd, len);

	if (n < 0) {
		errno = EAGAIN;
		return -1;
	}
	return real_write(fd, buf, (size_t)n);
}

ssize_t
send(int fd, const void *buf, size_t len, int flags)
{
	ssize_t n = allow(fd, len);

	if (n < 0) {
		errno = EAGAIN;
		return -1;
	}
	return real_send(fd, buf, (size_t)n, flags);
}

ssize_t
sendto(int fd, const void *buf, size_t len, int flags,
       const struct sockaddr *to, socklen_t tolen)
{
	ssize_t n = allow(fd, len);

	if (n < 0) {
		errno = EAGAIN;
		return -1;
	}
	return real_sendto(fd, buf, (size_t)n, flags, to, tolen);
}
