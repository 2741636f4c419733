/* SPDX-License-Identifier: MIT */
/*
 * echo.c - the Echo Protocol (RFC 862): every datagram comes back as it
 * came, a zero-length one included; on a stream every byte comes back, and
 * the peer's half-close is answered with ours once all of it is sent.
 */
#include "service/service.h"

#include <errno.h>
#include <string.h>

static ssize_t
echo_dgram(const struct dx_dgram_req *req)
{
	if (req->len > DX_REQUEST_MAX) /* the server never hands over more */
		return -EMSGSIZE;
	memcpy(req->reply, req->data, req->len);
	return (ssize_t)req->len;
}

/* The model never hands over more than there is room for. */
static int
echo_input(struct dx_conn *c, const uint8_t *data, size_t len)
{
	if (len == 0)
		return DX_STREAM_DONE;
	return dx_conn_write(c, data, len) == (ssize_t)len ? DX_STREAM_MORE
	                                                   : -ENOBUFS;
}

static const struct dx_stream_ops echo_stream = {
        .input = echo_input,
};

const struct dx_service dx__service_echo = {
        .name = "echo",
        .port = 7,
        .flags = DX_SVC_MIRROR,
        .dgram = echo_dgram,
        .stream = &echo_stream,
        .summary = "sends back what it receives (RFC 862)",
};
