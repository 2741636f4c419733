/* SPDX-License-Identifier: MIT */
/*
 * discard.c - the Discard Protocol (RFC 863): reads and throws away; a
 * datagram gets no reply.
 */
#include "service/service.h"

static ssize_t
discard_dgram(const struct dx_dgram_req *req)
{
	(void)req;
	return DX_NOREPLY;
}

static int
discard_input(struct dx_conn *c, const uint8_t *data, size_t len)
{
	(void)c;
	(void)data;
	return len == 0 ? DX_STREAM_DONE : DX_STREAM_MORE;
}

static const struct dx_stream_ops discard_stream = {
        .input = discard_input,
};

const struct dx_service dx__service_discard = {
        .name = "discard",
        .port = 9,
        .dgram = discard_dgram,
        .stream = &discard_stream,
        .summary = "reads and throws away (RFC 863)",
};
