/* SPDX-License-Identifier: MIT */
/*
 * time.c - the Time Protocol (RFC 868): the time as a 32-bit big-endian
 * count of seconds since 1900-01-01T00:00:00Z. The count wraps at
 * 2036-02-07T06:28:16Z; the server then sends the count modulo 2^32 (0 at
 * the wrap, growing again), as RFC 868 clients that apply an era pivot
 * expect. See docs/services.md.
 */
#include "service/service.h"

#include <string.h>
#include <time.h>

/* Seconds from 1900-01-01 to 1970-01-01. */
#define RFC868_EPOCH_OFFSET 2208988800LL

uint32_t
dx__rfc868_time(int64_t unix_seconds)
{
	return (uint32_t)((uint64_t)(unix_seconds + RFC868_EPOCH_OFFSET) &
	                  0xffffffffu);
}

int64_t
dx__rfc868_unix(uint32_t count)
{
	int64_t since_1900 = (int64_t)count;

	if (!(count & 0x80000000u))
		since_1900 += (int64_t)1 << 32;
	return since_1900 - RFC868_EPOCH_OFFSET;
}

static ssize_t
time_dgram(const struct dx_dgram_req *req)
{
	uint32_t t = dx__rfc868_time((int64_t)time(NULL));
	uint8_t be[4] = {(uint8_t)(t >> 24), (uint8_t)(t >> 16),
	                 (uint8_t)(t >> 8), (uint8_t)t};

	memcpy(req->reply, be, sizeof(be));
	return (ssize_t)sizeof(be);
}

static int
time_open(struct dx_conn *c)
{
	uint8_t be[4];
	struct dx_dgram_req req = {.reply = be};

	time_dgram(&req);
	return dx__stream_say(c, be, sizeof(be));
}

static const struct dx_stream_ops time_stream = {
        .open = time_open,
        .input = dx__stream_ignore,
};

const struct dx_service dx__service_time = {
        .name = "time",
        .port = 37,
        .flags = DX_SVC_AMPLIFIES,
        .dgram = time_dgram,
        .stream = &time_stream,
        .summary = "sends the time as 32-bit seconds since 1900 (RFC 868)",
};
