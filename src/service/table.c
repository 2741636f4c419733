/* SPDX-License-Identifier: MIT */
/*
 * table.c - the service table: one row per service, one file per service.
 * Adding a service means one file and one line here.
 */
#include "service/service.h"

#include <errno.h>
#include <strings.h>
#include <unistd.h>

static const struct dx_service *const services[] = {
        &dx__service_echo, &dx__service_discard, &dx__service_chargen,
        &dx__service_qotd, &dx__service_daytime, &dx__service_time,
        &dx__service_exec,
};

const struct dx_service *
dx__service_find(const char *name)
{
	for (size_t i = 0; i < DX_ARRAY_LEN(services); i++)
		if (strcasecmp(services[i]->name, name) == 0)
			return services[i];
	return NULL;
}

const struct dx_service *const *
dx__service_table(size_t *n)
{
	*n = DX_ARRAY_LEN(services);
	return services;
}

int
dx__stream_say(struct dx_conn *c, const void *text, size_t len)
{
	ssize_t n = dx_conn_write(c, text, len);

	if (n < 0)
		return (int)n;
	return (size_t)n == len ? DX_STREAM_DONE : -ENOBUFS;
}

int
dx__stream_ignore(struct dx_conn *c, const uint8_t *data, size_t len)
{
	(void)c;
	(void)data;
	(void)len;
	return DX_STREAM_MORE;
}

/*
 * xorshift32, seeded once from the clock and the pid: chargen lengths and
 * qotd choices need variety, not secrecy. Not thread-safe by design: a
 * lost update between threads only repeats a number.
 */
uint32_t
dx__random(void)
{
	static uint32_t state;
	uint32_t x = state;

	if (x == 0)
		x = (uint32_t)dx_now_ms() * 2654435761u ^ (uint32_t)getpid() ^
		    0x9e3779b9u;
	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	state = x;
	return x;
}
