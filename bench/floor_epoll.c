/* SPDX-License-Identifier: MIT */
/*
 * floor_epoll.c - the TCP floor for bench/run: a minimal single-threaded
 * epoll echo server. epoll_wait, accept4, read, write; nothing else. A
 * short write (only under bulk load) parks the rest and stops reading
 * that connection until it has gone out, so the echo stays exact.
 *
 *   floor_epoll PORT [HOST]   (PORT 0: the kernel picks; the bound port
 *                              is printed on stdout; HOST default
 *                              127.0.0.1)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAXFD 65536
#define SIZE  65536

/* The unsent rest of a short write, per descriptor. */
static struct {
	char *data;
	size_t len, off;
} pend[MAXFD];
static char buf[SIZE];

static void
drop(int fd)
{
	free(pend[fd].data);
	pend[fd].data = NULL;
	close(fd); /* also leaves the epoll set */
}

static void
watch(int ep, int fd, unsigned events, int op)
{
	struct epoll_event ev = {.events = events, .data.fd = fd};

	if (epoll_ctl(ep, op, fd, &ev) < 0)
		drop(fd);
}

/* Writes the parked rest; back to reading once it is all out. */
static void
flush(int ep, int fd)
{
	ssize_t n = write(fd, pend[fd].data + pend[fd].off,
	                  pend[fd].len - pend[fd].off);

	if (n < 0 && errno != EAGAIN) {
		drop(fd);
		return;
	}
	pend[fd].off += n > 0 ? (size_t)n : 0;
	if (pend[fd].off == pend[fd].len) {
		free(pend[fd].data);
		pend[fd].data = NULL;
		watch(ep, fd, EPOLLIN, EPOLL_CTL_MOD);
	}
}

static void
echo(int ep, int fd)
{
	ssize_t n = read(fd, buf, SIZE), w;

	if (n == 0 || (n < 0 && errno != EAGAIN)) {
		drop(fd);
		return;
	}
	if (n < 0)
		return;
	w = write(fd, buf, (size_t)n);
	if (w < 0 && errno != EAGAIN) {
		drop(fd);
		return;
	}
	if (w == n)
		return;
	w = w < 0 ? 0 : w;
	pend[fd].len = (size_t)(n - w);
	pend[fd].off = 0;
	pend[fd].data = malloc(pend[fd].len);
	if (pend[fd].data == NULL) {
		drop(fd);
		return;
	}
	memcpy(pend[fd].data, buf + w, pend[fd].len);
	watch(ep, fd, EPOLLOUT, EPOLL_CTL_MOD);
}

int
main(int argc, char **argv)
{
	struct sockaddr_in addr = {.sin_family = AF_INET};
	struct epoll_event evs[256];
	socklen_t len = sizeof(addr);
	int lfd, ep, on = 1;

	if (argc < 2 || inet_pton(AF_INET, argc > 2 ? argv[2] : "127.0.0.1",
	                          &addr.sin_addr) != 1) {
		fprintf(stderr, "usage: floor_epoll PORT [HOST]\n");
		return 2;
	}
	addr.sin_port = htons((unsigned short)atoi(argv[1]));
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	ep = epoll_create1(0);
	if (lfd < 0 || ep < 0 ||
	    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) < 0 ||
	    bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
	    listen(lfd, 4096) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&addr, &len) < 0) {
		perror("floor_epoll");
		return 1;
	}
	watch(ep, lfd, EPOLLIN, EPOLL_CTL_ADD);
	printf("%d\n", ntohs(addr.sin_port));
	fflush(stdout);
	for (;;) {
		int n = epoll_wait(ep, evs, 256, -1);

		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd, c;

			if (fd != lfd) {
				if (pend[fd].data)
					flush(ep, fd);
				else
					echo(ep, fd);
				continue;
			}
			while ((c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >=
			       0) {
				if (c >= MAXFD)
					close(c);
				else
					watch(ep, c, EPOLLIN, EPOLL_CTL_ADD);
			}
		}
	}
}
