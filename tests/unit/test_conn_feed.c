/* SPDX-License-Identifier: MIT */
/*
 * test_conn_feed.c - the connection steps a completion model drives
 * (conn_feed.c): input within the output room, end of file and errors,
 * draining after our half-close, output queued behind a send in flight,
 * the buffer's return to its pool, and the half-close once all is sent.
 * The connection is one end of a socketpair, so shutdown() is real.
 */
#include "check.h"
#include "server/conn_feed.h"

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

static struct dx_bufpool pool = {.max_free = 4};
static int peer = -1;

/* C on a fresh socketpair end, serving SVC; the other end is PEER. */
static void
open_conn(struct dx_conn *c, struct dx_service_conf *conf,
          const struct dx_service *svc)
{
	struct dx_addr unix_peer = {.u.un.sun_family = AF_UNIX};
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) < 0)
		sv[0] = sv[1] = -1;
	conf->svc = svc;
	dx__conn_init(c, sv[0], &unix_peer, conf, &pool, 1000);
	peer = sv[1];
	CHECK_INT_EQ(dx__conn_open(c, 1000), DX_END_NONE);
}

static void
close_conn(struct dx_conn *c)
{
	dx__conn_finish(c);
	close(peer);
}

TEST(input_queues_echo_and_sent_releases_buffer)
{
	struct dx_service_conf conf = {0};
	struct dx_conn c;

	open_conn(&c, &conf, &dx__service_echo);
	CHECK_INT_EQ(dx__conn_input(&c, (const uint8_t *)"hello", 5, 1001),
	             DX_END_NONE);
	CHECK(dx__conn_pending(&c));
	CHECK_INT_EQ(c.active_ms, 1001);
	CHECK_INT_EQ(dx_conn_space(&c), DX_CONN_BUF - 5);
	CHECK_INT_EQ(dx__conn_sent(&c, 2, 1002), DX_END_NONE);
	CHECK_INT_EQ(c.out_off, 2);
	CHECK_INT_EQ(c.wrote_ms, 1002);
	CHECK_INT_EQ(dx__conn_sent(&c, 3, 1003), DX_END_NONE);
	CHECK(!dx__conn_pending(&c));
	CHECK(c.out == NULL);
	CHECK_INT_EQ(pool.nfree, 1);
	close_conn(&c);
}

TEST(service_queues_behind_a_send_in_flight)
{
	struct dx_service_conf conf = {0};
	struct dx_conn c;
	uint8_t *sending;

	open_conn(&c, &conf, &dx__service_echo);
	dx__conn_input(&c, (const uint8_t *)"abcdef", 6, 1001);
	dx__conn_sent(&c, 4, 1002); /* "ef" left, at offset 4 */
	dx__conn_compact(&c);
	CHECK_INT_EQ(c.out_off, 0);
	CHECK_INT_EQ(c.out_len, 2);
	CHECK(memcmp(c.out, "ef", 2) == 0);
	sending = c.out; /* a send of [0, 2) is now in flight */
	dx__conn_input(&c, (const uint8_t *)"gh", 2, 1003);
	CHECK(c.out == sending);
	CHECK_INT_EQ(c.out_off, 0);
	CHECK(memcmp(c.out, "efgh", 4) == 0);
	CHECK_INT_EQ(dx__conn_sent(&c, 2, 1004), DX_END_NONE);
	CHECK(dx__conn_pending(&c));
	CHECK(memcmp(c.out + c.out_off, "gh", 2) == 0);
	close_conn(&c);
}

TEST(eof_closes_only_once_everything_is_sent)
{
	struct dx_service_conf conf = {0};
	struct dx_conn c;
	char buf[16];

	open_conn(&c, &conf, &dx__service_echo);
	dx__conn_input(&c, (const uint8_t *)"bye", 3, 1001);
	CHECK_INT_EQ(dx__conn_input(&c, NULL, 0, 1002), DX_END_NONE);
	CHECK(c.flags & DX_CONN_EOF_IN);
	CHECK(c.flags & DX_CONN_DONE);
	CHECK_INT_EQ(dx__conn_maybe_shutdown(&c, 1003, dx__conn_pending(&c)),
	             DX_END_NONE);
	CHECK(!(c.flags & DX_CONN_SHUT_WR));
	CHECK_INT_EQ(write(c.fd, c.out, 3), 3); /* as the ring's send would */
	dx__conn_sent(&c, 3, 1004);
	/* The peer had already closed its side: nothing is left unread, so
	 * no shutdown(2) first; the close itself ends the stream. */
	CHECK_INT_EQ(dx__conn_maybe_shutdown(&c, 1005, dx__conn_pending(&c)),
	             DX_END_DONE);
	CHECK(!(c.flags & DX_CONN_SHUT_WR));
	CHECK_INT_EQ(read(peer, buf, sizeof(buf)), 3);
	dx__conn_finish(&c);
	CHECK_INT_EQ(read(peer, buf, sizeof(buf)), 0);
	close(peer);
}

TEST(draining_drops_input_until_eof_or_error)
{
	struct dx_service_conf conf = {0};
	struct dx_conn c;

	open_conn(&c, &conf, &dx__service_daytime); /* says its line, done */
	CHECK(c.flags & DX_CONN_DONE);
	dx__conn_sent(&c, (ssize_t)c.out_len, 1001);
	CHECK_INT_EQ(dx__conn_maybe_shutdown(&c, 1002, dx__conn_pending(&c)),
	             DX_END_NONE);
	CHECK(c.flags & DX_CONN_SHUT_WR);
	CHECK_INT_EQ(c.drain_ms, 1002);
	CHECK_INT_EQ(dx__conn_input(&c, (const uint8_t *)"junk", 4, 1003),
	             DX_END_NONE);
	CHECK(!dx__conn_pending(&c));
	CHECK_INT_EQ(dx__conn_input(&c, NULL, 0, 1004), DX_END_DONE);
	CHECK_INT_EQ(dx__conn_input(&c, NULL, -ECONNRESET, 1005), DX_END_DONE);
	close_conn(&c);
}

TEST(errors_end_the_connection_as_the_peers)
{
	struct dx_service_conf conf = {0};
	struct dx_conn c;

	open_conn(&c, &conf, &dx__service_echo);
	CHECK_INT_EQ(dx__conn_input(&c, NULL, -ECONNRESET, 1001), DX_END_PEER);
	dx__conn_input(&c, (const uint8_t *)"x", 1, 1002);
	CHECK_INT_EQ(dx__conn_sent(&c, -EPIPE, 1003), DX_END_PEER);
	close_conn(&c);
}

TEST(produce_fills_the_room_until_done)
{
	struct dx_service_conf conf = {0};
	struct dx_conn c;

	open_conn(&c, &conf, &dx__service_chargen);
	CHECK(c.flags & DX_CONN_WANT_WRITE);
	CHECK_INT_EQ(dx__conn_produce(&c), DX_END_NONE);
	CHECK_INT_EQ(dx_conn_space(&c), 0);
	CHECK(memcmp(c.out, "!\"#$%", 5) == 0);
	CHECK_INT_EQ(dx__conn_produce(&c), DX_END_NONE); /* no room: no-op */
	CHECK_INT_EQ(c.out_len, DX_CONN_BUF);
	dx__conn_sent(&c, DX_CONN_BUF, 1001);
	c.flags |= DX_CONN_DONE;
	CHECK_INT_EQ(dx__conn_produce(&c), DX_END_NONE);
	CHECK(c.out == NULL);
	close_conn(&c);
}

int
main(void)
{
	RUN(input_queues_echo_and_sent_releases_buffer);
	RUN(service_queues_behind_a_send_in_flight);
	RUN(eof_closes_only_once_everything_is_sent);
	RUN(draining_drops_input_until_eof_or_error);
	RUN(errors_end_the_connection_as_the_peers);
	RUN(produce_fills_the_room_until_done);
	dx__pool_drain(&pool);
	CHECK_DONE();
}
