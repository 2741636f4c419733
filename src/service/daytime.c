/* SPDX-License-Identifier: MIT */
/*
 * daytime.c - the Daytime Protocol (RFC 867): the date and time as one
 * human-readable line. RFC 867 fixes no syntax; duplex sends the line
 * inetd has always sent, ctime(3)'s in local time, ended by CR LF:
 * "Wed Nov 25 13:05:04 2026\r\n".
 */
#include "service/service.h"

#include <string.h>
#include <time.h>

size_t
dx__daytime_format(int64_t unix_seconds, char *buf, size_t len)
{
	time_t t = (time_t)unix_seconds;
	struct tm tm;

	if (localtime_r(&t, &tm) == NULL)
		return 0;
	return strftime(buf, len, "%a %b %e %H:%M:%S %Y\r\n", &tm);
}

static ssize_t
daytime_dgram(const struct dx_dgram_req *req)
{
	return (ssize_t)dx__daytime_format((int64_t)time(NULL),
	                                   (char *)req->reply, DX_DGRAM_MAX);
}

static int
daytime_open(struct dx_conn *c)
{
	char line[64];
	size_t n = dx__daytime_format((int64_t)time(NULL), line, sizeof(line));

	return dx__stream_say(c, line, n);
}

static const struct dx_stream_ops daytime_stream = {
        .open = daytime_open,
        .input = dx__stream_ignore,
};

const struct dx_service dx__service_daytime = {
        .name = "daytime",
        .port = 13,
        .flags = DX_SVC_AMPLIFIES,
        .dgram = daytime_dgram,
        .stream = &daytime_stream,
        .summary = "sends the date and time as text (RFC 867)",
};
