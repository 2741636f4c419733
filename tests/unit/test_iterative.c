/* SPDX-License-Identifier: MIT */
/*
 * test_iterative.c - the iterative server's batch: a whole batch served in
 * order with the largest requests there can be (UDP over IPv6, 65,527
 * bytes; unix datagrams, 65,536), and a longer one counted and dropped.
 * The request lands last in the batch, where a reply buffer too small
 * for it would run past the end of the server's batch memory (what
 * AddressSanitizer sees: make check runs these tests under it too).
 */
#include "check.h"
#include "server/server.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#define BATCH 32

static uint8_t big[DX_REQUEST_MAX + 1];

static void
fill(uint8_t *p, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)((i * 131u + seed) >> 3);
}

/* A server of one echo listener on ENDPOINT, opened; NULL if it can't. */
static struct dx_server *
echo_server(const char *endpoint)
{
	struct dx_server *srv = malloc(sizeof(*srv));
	char why[256];

	if (srv == NULL)
		return NULL;
	dx__server_init(srv);
	srv->verbosity = -1;
	if (dx__server_add(srv, "echo", endpoint, 1, why, sizeof(why)) < 0 ||
	    dx__server_open(srv, why, sizeof(why)) < 0) {
		printf("  (%s: %s)\n", endpoint, why);
		dx__server_close(srv);
		free(srv);
		return NULL;
	}
	return srv;
}

static void
close_server(struct dx_server *srv)
{
	dx__server_close(srv);
	free(srv);
}

/* A client socket of the listener's family, with room for big datagrams. */
static int
client(const struct dx_server *srv, const char *unix_path)
{
	int family = srv->ls[0].bound.u.sa.sa_family, size = 1 << 21;
	int fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct dx_addr self = {0};

	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
	if (unix_path != NULL) { /* a unix sender needs a name to be answered */
		self.u.un.sun_family = AF_UNIX;
		snprintf(self.u.un.sun_path, sizeof(self.u.un.sun_path), "%s",
		         unix_path);
		unlink(unix_path);
		self.len = sizeof(self.u.un);
		if (bind(fd, &self.u.sa, self.len) < 0) {
			close(fd);
			return -1;
		}
	}
	return fd;
}

static ssize_t
send_to(int fd, const struct dx_server *srv, const void *p, size_t len)
{
	const struct dx_addr *a = &srv->ls[0].bound;

	return sendto(fd, p, len, 0, &a->u.sa, a->len);
}

/* The next reply within a second, into BUF; its length or -1. */
static ssize_t
reply(int fd, uint8_t *buf, size_t len)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};

	if (poll(&p, 1, 1000) != 1)
		return -1;
	return recv(fd, buf, len, MSG_TRUNC);
}

TEST(full_batch_ending_in_the_largest_ipv6_datagram)
{
	struct dx_server *srv = echo_server("udp://[::1]:0");
	uint8_t *got = malloc(DX_REQUEST_MAX + 1);
	char small[16];
	int fd;

	if (srv == NULL || got == NULL) {
		printf("  (skipped: no IPv6 loopback)\n");
		free(got);
		if (srv)
			close_server(srv);
		return;
	}
	fd = client(srv, NULL);
	CHECK(fd >= 0);
	fill(big, 65527, 6);
	for (int i = 0; i < BATCH - 1; i++) {
		int n = snprintf(small, sizeof(small), "small %d", i);
		CHECK_INT_EQ(send_to(fd, srv, small, (size_t)n), n);
	}
	CHECK_INT_EQ(send_to(fd, srv, big, 65527), 65527);
	dx__iter_serve(srv, &srv->ls[0]);
	for (int i = 0; i < BATCH - 1; i++) {
		int n = snprintf(small, sizeof(small), "small %d", i);
		CHECK_INT_EQ(reply(fd, got, DX_REQUEST_MAX), n);
		CHECK(memcmp(got, small, (size_t)n) == 0);
	}
	CHECK_INT_EQ(reply(fd, got, DX_REQUEST_MAX + 1), 65527);
	CHECK(memcmp(got, big, 65527) == 0);
	CHECK_INT_EQ(srv->drops[DX_DROP_TRUNCATED], 0);
	CHECK_INT_EQ(srv->served[0], BATCH);
	close(fd);
	close_server(srv);
	free(got);
}

TEST(unix_datagrams_up_to_64k_whole_longer_dropped)
{
	char path[64], cpath[64];
	struct dx_server *srv;
	uint8_t *got = malloc(DX_REQUEST_MAX + 1);
	int fd;

	snprintf(path, sizeof(path), "/tmp/dx-test-iter-%d.sock", getpid());
	snprintf(cpath, sizeof(cpath), "/tmp/dx-test-iter-%d.c", getpid());
	{
		char ep[96];
		snprintf(ep, sizeof(ep), "unixgram://%s", path);
		srv = echo_server(ep);
	}
	CHECK(srv != NULL && got != NULL);
	if (srv == NULL || got == NULL) {
		free(got);
		return;
	}
	fd = client(srv, cpath);
	CHECK(fd >= 0);
	fill(big, sizeof(big), 9);
	/* The longest first: it arrives truncated and gets no reply. */
	CHECK_INT_EQ(send_to(fd, srv, big, DX_REQUEST_MAX + 1),
	             DX_REQUEST_MAX + 1);
	CHECK_INT_EQ(send_to(fd, srv, big, DX_REQUEST_MAX), DX_REQUEST_MAX);
	dx__iter_serve(srv, &srv->ls[0]);
	CHECK_INT_EQ(reply(fd, got, DX_REQUEST_MAX + 1), DX_REQUEST_MAX);
	CHECK(memcmp(got, big, DX_REQUEST_MAX) == 0);
	CHECK_INT_EQ(srv->drops[DX_DROP_TRUNCATED], 1);
	CHECK_INT_EQ(srv->served[0], 1);
	close(fd);
	unlink(cpath);
	close_server(srv);
	free(got);
}

int
main(void)
{
	RUN(full_batch_ending_in_the_largest_ipv6_datagram);
	RUN(unix_datagrams_up_to_64k_whole_longer_dropped);
	CHECK_DONE();
}
