/* SPDX-License-Identifier: MIT */
/*
 * libevent_echo.c - the libevent peer for bench/run: the idiomatic
 * libevent 2 echo server, as its book and sample code write it. One
 * thread, one event base; an evconnlistener accepts, each connection gets
 * a bufferevent whose read callback moves its input buffer to its output
 * buffer (evbuffer_add_buffer: no copy), and an error or end of file
 * frees it. Nothing tuned beyond the idiom; one guard: when a peer is
 * slow to read and 1 MiB waits unsent, the connection stops reading until
 * its output has drained (the write callback is set only then), so a
 * bufferevent cannot grow without bound under bulk load.
 *
 *   libevent_echo PORT [HOST]   (PORT 0: the kernel picks; the bound port
 *                                is printed on stdout; HOST default
 *                                127.0.0.1)
 *
 * Built by bench/run with `cc -O2 -std=c11 ... -levent` when libevent's
 * headers are installed (Debian package libevent-dev).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>

#define OUT_HIGH (1u << 20) /* stop reading while this much is unsent */

static void echo_read(struct bufferevent *bev, void *arg);
static void echo_event(struct bufferevent *bev, short events, void *arg);

/* The output has drained: read again, and stop watching writes. */
static void
echo_written(struct bufferevent *bev, void *arg)
{
	(void)arg;
	bufferevent_setcb(bev, echo_read, NULL, echo_event, NULL);
	bufferevent_enable(bev, EV_READ);
}

static void
echo_read(struct bufferevent *bev, void *arg)
{
	struct evbuffer *out = bufferevent_get_output(bev);

	(void)arg;
	evbuffer_add_buffer(out, bufferevent_get_input(bev));
	if (evbuffer_get_length(out) >= OUT_HIGH) {
		bufferevent_disable(bev, EV_READ);
		bufferevent_setcb(bev, echo_read, echo_written, echo_event,
		                  NULL);
	}
}

static void
echo_event(struct bufferevent *bev, short events, void *arg)
{
	(void)arg;
	if (events & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		bufferevent_free(bev);
}

static void
accept_conn(struct evconnlistener *lst, evutil_socket_t fd, struct sockaddr *sa,
            int len, void *arg)
{
	struct event_base *base = evconnlistener_get_base(lst);
	struct bufferevent *bev =
	        bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);

	(void)sa;
	(void)len;
	(void)arg;
	if (bev == NULL) {
		evutil_closesocket(fd);
		return;
	}
	bufferevent_setcb(bev, echo_read, NULL, echo_event, NULL);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
}

int
main(int argc, char **argv)
{
	struct sockaddr_in addr = {.sin_family = AF_INET};
	socklen_t len = sizeof(addr);
	struct event_base *base;
	struct evconnlistener *lst;

	if (argc < 2 || inet_pton(AF_INET, argc > 2 ? argv[2] : "127.0.0.1",
	                          &addr.sin_addr) != 1) {
		(void)fprintf(stderr, "usage: libevent_echo PORT [HOST]\n");
		return 2;
	}
	addr.sin_port = htons((unsigned short)atoi(argv[1]));
	(void)signal(SIGPIPE, SIG_IGN);
	base = event_base_new();
	if (base == NULL) {
		(void)fprintf(stderr, "libevent_echo: event_base_new failed\n");
		return 1;
	}
	lst = evconnlistener_new_bind(base, accept_conn, NULL,
	                              LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE,
	                              4096, (struct sockaddr *)&addr,
	                              sizeof(addr));
	if (lst == NULL || getsockname(evconnlistener_get_fd(lst),
	                               (struct sockaddr *)&addr, &len) < 0) {
		perror("libevent_echo");
		return 1;
	}
	printf("%d\n", ntohs(addr.sin_port));
	(void)fflush(stdout);
	event_base_dispatch(base);
	evconnlistener_free(lst);
	event_base_free(base);
	return 0;
}
