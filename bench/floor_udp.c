/* SPDX-License-Identifier: MIT */
/*
 * floor_udp.c - the UDP floor for bench/run: the least a UDP echo server
 * can do. One blocking socket; recvmmsg(MSG_WAITFORONE) takes up to 32
 * datagrams per call, sendmmsg sends them back to their senders. No
 * checks, no guard, no logging.
 *
 *   floor_udp PORT [HOST]   (PORT 0: the kernel picks; the bound port is
 *                            printed on stdout; HOST default 127.0.0.1)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>

#define BATCH 32
#define SIZE  65536

static char buf[BATCH][SIZE];

int
main(int argc, char **argv)
{
	struct sockaddr_in addr = {.sin_family = AF_INET};
	struct sockaddr_in peer[BATCH];
	struct mmsghdr msg[BATCH];
	struct iovec iov[BATCH];
	socklen_t len = sizeof(addr);
	int fd, n;

	if (argc < 2 || inet_pton(AF_INET, argc > 2 ? argv[2] : "127.0.0.1",
	                          &addr.sin_addr) != 1) {
		fprintf(stderr, "usage: floor_udp PORT [HOST]\n");
		return 2;
	}
	addr.sin_port = htons((unsigned short)atoi(argv[1]));
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&addr, &len) < 0) {
		perror("floor_udp");
		return 1;
	}
	printf("%d\n", ntohs(addr.sin_port));
	fflush(stdout);
	for (;;) {
		for (int i = 0; i < BATCH; i++) {
			iov[i] = (struct iovec){buf[i], SIZE};
			msg[i].msg_hdr = (struct msghdr){
			        .msg_name = &peer[i],
			        .msg_namelen = sizeof(peer[i]),
			        .msg_iov = &iov[i],
			        .msg_iovlen = 1,
			};
		}
		n = recvmmsg(fd, msg, BATCH, MSG_WAITFORONE, NULL);
		if (n <= 0)
			continue; /* EINTR; nothing else happens to a bound
			             socket */
		for (int i = 0; i < n; i++)
			iov[i].iov_len = msg[i].msg_len;
		(void)sendmmsg(fd, msg, (unsigned)n, 0);
	}
}
