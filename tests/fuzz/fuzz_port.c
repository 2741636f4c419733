/* SPDX-License-Identifier: MIT */
/*
 * fuzz_port.c - libFuzzer target for port parsing and service lookup.
 * dx_port_parse() is checked against a plain oracle (digits only, at most
 * 65535, empty is -DX_ENOPORT); dx_port_lookup() must agree with it on
 * numbers and otherwise give a port or one of its documented codes, for
 * every protocol. Nothing here calls the resolver.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The oracle: 0 and *VALUE for digits, 1 for too big, -1 for no number. */
static int
oracle(const char *text, unsigned long *value)
{
	size_t n = strspn(text, "0123456789");

	*value = 0;
	if (text[0] == '\0' || text[n] != '\0')
		return -1;
	for (size_t i = 0; i < n; i++) {
		*value = *value * 10 + (unsigned long)(text[i] - '0');
		if (*value > 65535)
			return 1;
	}
	return 0;
}

static void
check_parse(const char *text)
{
	unsigned long value;
	uint16_t port = 0;
	int want = oracle(text, &value), rc = dx_port_parse(text, &port);

	if (want == 0 && (rc != 0 || port != value))
		abort();
	if (want == 1 && rc != -DX_EPORTRANGE)
		abort();
	if (want < 0 && text[0] == '\0' && rc != -DX_ENOPORT)
		abort();
	if (want < 0 && rc != -DX_EPORT && rc != -DX_EPORTRANGE &&
	    rc != -DX_ENOPORT)
		abort();
}

static void
check_lookup(const char *text, enum dx_proto proto)
{
	uint16_t want = 0, port = 0;
	int prc = dx_port_parse(text, &want);
	int rc = dx_port_lookup(text, proto, &port);

	if (prc == 0 && (rc != 0 || port != want))
		abort();
	if (prc == -DX_EPORTRANGE || prc == -DX_ENOPORT) {
		if (rc != prc)
			abort();
	} else if (rc != 0 && rc != -DX_EPORT && rc != -DX_ESERVICE) {
		abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char text[256];

	if (size >= sizeof(text))
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	check_parse(text);
	check_lookup(text, DX_PROTO_TCP);
	check_lookup(text, DX_PROTO_UDP);
	check_lookup(text, DX_PROTO_SCTP);
	check_lookup(text, DX_PROTO_DCCP);
	return 0;
}
