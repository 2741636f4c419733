/* SPDX-License-Identifier: MIT */
/*
 * fuzz_endpoint.c - libFuzzer target for the endpoint grammar. Every input
 * either fails with a DX_E* code and a non-empty why-sentence, or parses
 * into an endpoint whose canonical text parses back into the same endpoint
 * field by field (and formats to the same text again). A unix endpoint is
 * also turned into its socket address, which formats back to its path.
 * Nothing here calls the resolver.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
same_endpoint(const struct dx_endpoint *a, const struct dx_endpoint *b)
{
	return a->scheme == b->scheme && a->port == b->port &&
	       strcmp(a->host, b->host) == 0 && strcmp(a->path, b->path) == 0;
}

/* The unix address of EP formats back to EP's path. */
static void
check_unix_addr(const struct dx_endpoint *ep)
{
	struct dx_addr addr;
	char buf[DX_ADDRSTRLEN];

	if (dx_endpoint_resolve(ep, 0, &addr, 1) != 1)
		abort();
	if (dx_addr_format(&addr, buf, sizeof(buf)) < 0 ||
	    strcmp(buf, ep->path) != 0)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char text[1024], why[256] = "", buf[512], buf2[512];
	struct dx_endpoint ep, again;
	int rc, n;

	if (size >= sizeof(text))
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	rc = dx_endpoint_parse(&ep, text, why, sizeof(why));
	if (rc < 0) {
		if (rc <= -DX_ELAST || rc > -DX_EBASE || why[0] == '\0')
			abort();
		return 0;
	}
	n = dx_endpoint_format(&ep, buf, sizeof(buf));
	if (n < 0 || (size_t)n != strlen(buf))
		abort();
	if (dx_endpoint_parse(&again, buf, why, sizeof(why)) != 0 ||
	    !same_endpoint(&ep, &again))
		abort();
	if (dx_endpoint_format(&again, buf2, sizeof(buf2)) != n ||
	    strcmp(buf, buf2) != 0)
		abort();
	if (ep.scheme == DX_SCHEME_UNIX || ep.scheme == DX_SCHEME_UNIXGRAM)
		check_unix_addr(&ep);
	return 0;
}
