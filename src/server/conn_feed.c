/* SPDX-License-Identifier: MIT */
/*
 * conn_feed.c - the steps of a connection's state machine for completion
 * models (see conn_feed.h). They mirror conn.c's on_readable() after its
 * read, on_writable() without its send and flush()'s accounting, so that
 * the same service sees the same calls whichever model drives it; keep
 * the two in step. dx__conn_handled() and dx__conn_maybe_shutdown() are
 * conn.c's own.
 */
#include "server/conn_feed.h"

#include <string.h>
#include <unistd.h>

int
dx__conn_handled(struct dx_conn *c, int rc)
{
	if (rc < 0)
		return DX_END_ERROR;
	if (rc == DX_STREAM_DONE)
		c->flags |= DX_CONN_DONE;
	return DX_END_NONE;
}

int
dx__conn_pending(const struct dx_conn *c)
{
	return c->out_off < c->out_len;
}

/* on_readable() from its read on: drained input is dropped. */
int
dx__conn_input(struct dx_conn *c, const uint8_t *data, ssize_t n, int64_t now)
{
	const struct dx_stream_ops *ops = c->conf->svc->stream;

	if (n > 0)
		c->bytes_in += (uint64_t)n;
	if (c->flags & DX_CONN_SHUT_WR)
		return n > 0 ? DX_END_NONE : DX_END_DONE;
	if (n < 0)
		return DX_END_PEER;
	c->active_ms = now;
	if (n == 0)
		c->flags |= DX_CONN_EOF_IN;
	return dx__conn_handled(c, ops->input(c, data, (size_t)n));
}

/* The service half of on_writable(). */
int
dx__conn_produce(struct dx_conn *c)
{
	const struct dx_stream_ops *ops = c->conf->svc->stream;

	if (!(c->flags & DX_CONN_WANT_WRITE) || (c->flags & DX_CONN_DONE) ||
	    dx_conn_space(c) == 0)
		return DX_END_NONE;
	return dx__conn_handled(c, ops->writable(c));
}

/* flush()'s accounting of one send. */
int
dx__conn_sent(struct dx_conn *c, ssize_t n, int64_t now)
{
	if (n < 0)
		return DX_END_PEER;
	c->out_off += (uint32_t)n;
	c->bytes_out += (uint64_t)n;
	c->active_ms = c->wrote_ms = now;
	if (!dx__conn_pending(c) && c->out != NULL) {
		dx__pool_put(c->pool, c->out);
		c->out = NULL;
		c->out_off = c->out_len = 0;
	}
	return DX_END_NONE;
}

void
dx__conn_compact(struct dx_conn *c)
{
	if (c->out == NULL || c->out_off == 0)
		return;
	memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
	c->out_len -= c->out_off;
	c->out_off = 0;
}

int
dx__conn_maybe_shutdown(struct dx_conn *c, int64_t now, int pending)
{
	if ((c->flags & DX_CONN_EOF_IN) && !pending &&
	    !(c->flags & DX_CONN_WANT_WRITE))
		c->flags |= DX_CONN_DONE;
	if (!(c->flags & DX_CONN_DONE) || pending ||
	    (c->flags & DX_CONN_SHUT_WR))
		return DX_END_NONE;
	/* The peer's end of file is read, so no input is left unread to
	 * turn the close into a reset: close(2) sends our FIN by itself,
	 * and a shutdown(2) first would cost a system call per connection. */
	if (c->flags & DX_CONN_EOF_IN)
		return DX_END_DONE;
	if (shutdown(c->fd, SHUT_WR) < 0)
		return DX_END_PEER;
	dx_trace("shutdown(%d, SHUT_WR) = 0", c->fd);
	c->flags |= DX_CONN_SHUT_WR;
	c->drain_ms = now;
	return DX_END_NONE;
}
