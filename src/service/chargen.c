/* SPDX-License-Identifier: MIT */
/*
 * chargen.c - the Character Generator Protocol (RFC 864), byte for byte
 * as xinetd (and the RFC's own example) sends it: lines of 72 characters
 * and CR LF, drawn from the 93 characters '!' to '}', each line starting
 * one character later than the one before; the start wraps after 93
 * lines and the whole pattern repeats every 95 lines (lines 93 and 94
 * start again at '!' and '"'). A datagram of any content gets one reply
 * of a random length 0-512 from the start of the pattern.
 */
#include "service/service.h"

#include <errno.h>

#define CHARGEN_FIRST     '!'
#define CHARGEN_RING      93 /* '!' .. '}' */
#define CHARGEN_PERIOD    95 /* lines before the pattern repeats */
#define CHARGEN_WIDTH     72
#define CHARGEN_LINE      (CHARGEN_WIDTH + 2)
#define CHARGEN_DGRAM_MAX 512

void
dx__chargen_fill(uint8_t *out, size_t len, unsigned *line, unsigned *col)
{
	for (size_t i = 0; i < len; i++) {
		unsigned start = *line % CHARGEN_RING;

		if (*col < CHARGEN_WIDTH)
			out[i] = (uint8_t)(CHARGEN_FIRST +
			                   (start + *col) % CHARGEN_RING);
		else
			out[i] = *col == CHARGEN_WIDTH ? '\r' : '\n';
		if (++*col == CHARGEN_LINE) {
			*col = 0;
			*line = (*line + 1) % CHARGEN_PERIOD;
		}
	}
}

static ssize_t
chargen_dgram(const struct dx_dgram_req *req)
{
	size_t len = dx__random() % (CHARGEN_DGRAM_MAX + 1);
	unsigned line = 0, col = 0;

	dx__chargen_fill(req->reply, len, &line, &col);
	return (ssize_t)len;
}

/* A stream gets the pattern for as long as the peer reads it. */
static int
chargen_open(struct dx_conn *c)
{
	c->st[0] = 0; /* line */
	c->st[1] = 0; /* column */
	c->flags |= DX_CONN_WANT_WRITE;
	return DX_STREAM_MORE;
}

static int
chargen_writable(struct dx_conn *c)
{
	size_t len;
	uint8_t *p = dx_conn_reserve(c, &len);

	if (p == NULL)
		return -ENOMEM;
	dx__chargen_fill(p, len, &c->st[0], &c->st[1]);
	dx_conn_commit(c, len);
	return DX_STREAM_MORE;
}

/* Input is read and ignored; the peer's half-close does not stop it. */
static int
chargen_input(struct dx_conn *c, const uint8_t *data, size_t len)
{
	(void)c;
	(void)data;
	(void)len;
	return DX_STREAM_MORE;
}

static const struct dx_stream_ops chargen_stream = {
        .open = chargen_open,
        .input = chargen_input,
        .writable = chargen_writable,
};

const struct dx_service dx__service_chargen = {
        .name = "chargen",
        .port = 19,
        .flags = DX_SVC_AMPLIFIES,
        .dgram = chargen_dgram,
        .stream = &chargen_stream,
        .summary = "sends lines of characters (RFC 864)",
};
