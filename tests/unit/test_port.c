/* SPDX-License-Identifier: MIT */
/*
 * test_port.c - unit tests for port.c: strict port and protocol parsing,
 * the IANA classes at every boundary, the built-in registry (by port, by
 * name, range rows, case, order), dx_port_lookup() including an alias only
 * the system's services database knows, and the ephemeral range parser.
 */
#include "config.h"

#include <errno.h>
#include <netdb.h>
#include <strings.h>

#include "check.h"
#include "registry.h"

#define MAXROWS 64

TEST(port_parse_good)
{
	static const struct {
		const char *text;
		uint16_t port;
	} cases[] = {
	        {"0", 0},          {"7", 7},
	        {"007", 7},        {"80", 80},
	        {"1023", 1023},    {"65535", 65535},
	        {"065535", 65535}, {"00000000000000000000000000080", 80},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		uint16_t port = 1;
		CHECK_INT_EQ(dx_port_parse(cases[i].text, &port), 0);
		CHECK_INT_EQ(port, cases[i].port);
	}
}

TEST(port_parse_bad)
{
	static const struct {
		const char *text;
		int err;
	} cases[] = {
	        {"", -DX_ENOPORT},
	        {NULL, -DX_ENOPORT},
	        {"-1", -DX_EPORTRANGE},
	        {"-65536", -DX_EPORTRANGE},
	        {"-0", -DX_EPORT},
	        {"-", -DX_EPORT},
	        {"+7", -DX_EPORT},
	        {"7x", -DX_EPORT},
	        {"0x50", -DX_EPORT},
	        {" 7", -DX_EPORT},
	        {"7 ", -DX_EPORT},
	        {"7\n", -DX_EPORT},
	        {"1e3", -DX_EPORT},
	        {"http", -DX_EPORT},
	        {"65536", -DX_EPORTRANGE},
	        {"99999999999999999999", -DX_EPORTRANGE},
	        {"4294967297", -DX_EPORTRANGE}, /* 2^32 + 1 must not wrap */
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		uint16_t port = 4242;
		CHECK_INT_EQ(dx_port_parse(cases[i].text, &port), cases[i].err);
		CHECK_INT_EQ(port, 4242); /* untouched on failure */
	}
}

TEST(proto)
{
	static const struct {
		const char *text;
		enum dx_proto proto;
	} cases[] = {
	        {"tcp", DX_PROTO_TCP},   {"udp", DX_PROTO_UDP},
	        {"sctp", DX_PROTO_SCTP}, {"dccp", DX_PROTO_DCCP},
	        {"UDP", DX_PROTO_UDP},
	};
	static const char *const bad[] = {"", "sctpx", "tc", "tcp ", "ip"};
	enum dx_proto proto;

	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		CHECK_INT_EQ(dx_proto_parse(cases[i].text, &proto), 0);
		CHECK_INT_EQ(proto, cases[i].proto);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
		CHECK_INT_EQ(dx_proto_parse(bad[i], &proto), -DX_ESYNTAX);
	CHECK_INT_EQ(dx_proto_parse(NULL, &proto), -DX_ESYNTAX);
	CHECK_STR_EQ(dx_proto_name(DX_PROTO_TCP), "tcp");
	CHECK_STR_EQ(dx_proto_name(DX_PROTO_DCCP), "dccp");
	CHECK(dx_proto_name((enum dx_proto)0) == NULL);
	CHECK(dx_proto_name((enum dx_proto)99) == NULL);
}

TEST(port_class)
{
	static const struct {
		uint16_t port;
		enum dx_port_class cls;
	} cases[] = {
	        {0, DX_PORT_WELL_KNOWN},    {1023, DX_PORT_WELL_KNOWN},
	        {1024, DX_PORT_REGISTERED}, {49151, DX_PORT_REGISTERED},
	        {49152, DX_PORT_DYNAMIC},   {65535, DX_PORT_DYNAMIC},
	};
	static const struct {
		enum dx_port_class cls;
		const char *name;
		uint16_t lo, hi;
	} classes[] = {
	        {DX_PORT_WELL_KNOWN, "well-known", 0, 1023},
	        {DX_PORT_REGISTERED, "registered", 1024, 49151},
	        {DX_PORT_DYNAMIC, "dynamic/private", 49152, 65535},
	};
	uint16_t lo, hi;

	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++)
		CHECK_INT_EQ(dx_port_class(cases[i].port), cases[i].cls);
	for (size_t i = 0; i < sizeof(classes) / sizeof(*classes); i++) {
		CHECK_STR_EQ(dx_port_class_name(classes[i].cls),
		             classes[i].name);
		dx_port_class_bounds(classes[i].cls, &lo, &hi);
		CHECK_INT_EQ(lo, classes[i].lo);
		CHECK_INT_EQ(hi, classes[i].hi);
	}
	CHECK(dx_port_class_name((enum dx_port_class)7) == NULL);
	dx_port_class_bounds((enum dx_port_class)7, &lo, &hi);
	CHECK(lo > hi);
}

/* The row for PORT/PROTO that is named NAME, or NULL. */
static const struct dx_service_entry *
find_row(uint16_t port, enum dx_proto proto, const char *name)
{
	const struct dx_service_entry *rows[MAXROWS];
	size_t n = dx_registry_by_port(port, proto, rows, MAXROWS);

	for (size_t i = 0; i < n && i < MAXROWS; i++)
		if (strcmp(rows[i]->name, name) == 0)
			return rows[i];
	return NULL;
}

TEST(registry_by_port)
{
	static const struct {
		uint16_t port;
		enum dx_proto proto;
		const char *name;
	} cases[] = {
	        {7, DX_PROTO_TCP, "echo"},     {7, DX_PROTO_UDP, "echo"},
	        {53, DX_PROTO_UDP, "domain"},  {443, DX_PROTO_TCP, "https"},
	        {9, DX_PROTO_SCTP, "discard"}, {9, DX_PROTO_DCCP, "discard"},
	        {6000, DX_PROTO_TCP, "x11"},   {6010, DX_PROTO_TCP, "x11"},
	        {6063, DX_PROTO_UDP, "x11"},   {5353, DX_PROTO_UDP, "mdns"},
	};
	const struct dx_service_entry *rows[MAXROWS], *e;

	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		e = find_row(cases[i].port, cases[i].proto, cases[i].name);
		CHECK(e != NULL);
		if (e == NULL)
			continue;
		CHECK_INT_EQ(e->proto, cases[i].proto);
		CHECK(e->port_lo <= cases[i].port);
		CHECK(e->port_hi >= cases[i].port);
	}
	e = find_row(6010, DX_PROTO_TCP, "x11");
	CHECK(e != NULL && e->port_lo == 6000 && e->port_hi == 6063);
	CHECK(find_row(6064, DX_PROTO_TCP, "x11") == NULL);
	CHECK(find_row(5999, DX_PROTO_TCP, "x11") == NULL);
	e = find_row(7, DX_PROTO_TCP, "echo");
	CHECK(e != NULL && strcmp(e->description, "Echo") == 0);
	CHECK_INT_EQ(dx_registry_by_port(49152, 0, rows, MAXROWS), 0);
}

TEST(registry_by_port_contract)
{
	const struct dx_service_entry *rows[MAXROWS], *one[1];
	size_t all = dx_registry_by_port(9, 0, rows, MAXROWS);

	/* discard: tcp, udp, sctp and dccp, in registry order. */
	CHECK_INT_EQ(all, 4);
	CHECK_INT_EQ(dx_registry_by_port(9, 0, NULL, 0), all);
	CHECK_INT_EQ(dx_registry_by_port(9, 0, one, 1), all);
	CHECK(one[0] == rows[0]);
	CHECK_INT_EQ(rows[0]->proto, DX_PROTO_TCP);
	CHECK_INT_EQ(rows[1]->proto, DX_PROTO_UDP);
	CHECK_INT_EQ(rows[2]->proto, DX_PROTO_SCTP);
	CHECK_INT_EQ(rows[3]->proto, DX_PROTO_DCCP);
	/* The same row is the same static object every time. */
	CHECK(find_row(9, DX_PROTO_TCP, "discard") == rows[0]);
	CHECK_INT_EQ(dx_registry_by_port(9, DX_PROTO_UDP, rows, MAXROWS), 1);
	CHECK(dx_registry_size() > 10000);
	CHECK_INT_EQ(dx_registry_size(), dx__registry_len);
}

TEST(registry_by_name)
{
	static const struct {
		const char *name;
		enum dx_proto proto;
		uint16_t port;
	} cases[] = {
	        {"https", DX_PROTO_TCP, 443}, {"domain", DX_PROTO_UDP, 53},
	        {"echo", DX_PROTO_UDP, 7},    {"HTTPS", DX_PROTO_TCP, 443},
	        {"Domain", DX_PROTO_TCP, 53}, {"x11", DX_PROTO_TCP, 6000},
	        {"mdns", DX_PROTO_UDP, 5353},
	};
	const struct dx_service_entry *rows[MAXROWS];

	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		size_t n = dx_registry_by_name(cases[i].name, cases[i].proto,
		                               rows, MAXROWS);
		CHECK(n >= 1);
		if (n == 0)
			continue;
		CHECK_INT_EQ(rows[0]->port_lo, cases[i].port);
		CHECK_INT_EQ(rows[0]->proto, cases[i].proto);
		CHECK(strcasecmp(rows[0]->name, cases[i].name) == 0);
	}
	CHECK_INT_EQ(dx_registry_by_name("nosuchservice", 0, rows, MAXROWS), 0);
	CHECK_INT_EQ(dx_registry_by_name("", 0, rows, MAXROWS), 0);
	CHECK_INT_EQ(dx_registry_by_name("http", DX_PROTO_DCCP, rows, 4), 0);
	CHECK_INT_EQ(dx_registry_by_name(NULL, 0, rows, MAXROWS), 0);
	CHECK_INT_EQ(dx_registry_by_name("echo", 0, NULL, 0), 2);
}

TEST(registry_by_name_order)
{
	const struct dx_service_entry *rows[MAXROWS];
	size_t n =
	        dx_registry_by_name("compressnet", DX_PROTO_TCP, rows, MAXROWS);

	/* compressnet has ports 2 and 3: registry order is port order. */
	CHECK_INT_EQ(n, 2);
	if (n == 2) {
		CHECK_INT_EQ(rows[0]->port_lo, 2);
		CHECK_INT_EQ(rows[1]->port_lo, 3);
	}
	n = dx_registry_by_name("https", 0, rows, MAXROWS);
	CHECK(n >= 3);
	for (size_t i = 1; i < n && i < MAXROWS; i++)
		CHECK(rows[i - 1]->proto <= rows[i]->proto);
}

/* Every row is where both indexes say it is. */
TEST(registry_indexes)
{
	const struct dx_service_entry *rows[MAXROWS];
	int misses = 0;

	for (size_t i = 0; i < dx__registry_len; i++) {
		const struct dx__registry_row *r = &dx__registry[i];
		const char *name = dx__registry_pool + r->name;
		size_t n;
		int found = 0;
		misses += dx_registry_by_name(name, r->proto, NULL, 0) == 0;
		if (i > 0 && dx__registry[i - 1].port_lo > r->port_lo)
			misses++;
		n = dx_registry_by_port(r->port_hi, r->proto, rows, MAXROWS);
		for (size_t j = 0; j < n && j < MAXROWS; j++)
			found |= strcmp(rows[j]->name, name) == 0;
		misses += !found || n == 0;
		misses += strlen(dx__registry_pool + r->desc) > 120;
	}
	CHECK_INT_EQ(misses, 0);
}

TEST(port_lookup)
{
	static const struct {
		const char *text;
		enum dx_proto proto;
		int rc;
		uint16_t port;
	} cases[] = {
	        {"80", DX_PROTO_TCP, 0, 80},
	        {"007", DX_PROTO_UDP, 0, 7},
	        {"https", DX_PROTO_TCP, 0, 443},
	        {"HTTPS", DX_PROTO_TCP, 0, 443},
	        {"domain", DX_PROTO_UDP, 0, 53},
	        {"echo", 0, 0, 7},
	        {"x11", DX_PROTO_TCP, 0, 6000},
	        {"9pfs", DX_PROTO_TCP, 0, 564}, /* a name that starts with 9 */
	        {"", DX_PROTO_TCP, -DX_ENOPORT, 0},
	        {"65536", DX_PROTO_TCP, -DX_EPORTRANGE, 0},
	        {"-1", DX_PROTO_TCP, -DX_EPORTRANGE, 0},
	        {"7x", DX_PROTO_TCP, -DX_EPORT, 0},
	        {"0x50", DX_PROTO_TCP, -DX_EPORT, 0},
	        {"+7", DX_PROTO_TCP, -DX_EPORT, 0},
	        {" 7", DX_PROTO_TCP, -DX_EPORT, 0},
	        {"nosuchservice", DX_PROTO_TCP, -DX_ESERVICE, 0},
	        {"http", DX_PROTO_DCCP, -DX_ESERVICE, 0},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		uint16_t port = 0;
		CHECK_INT_EQ(
		        dx_port_lookup(cases[i].text, cases[i].proto, &port),
		        cases[i].rc);
		if (cases[i].rc == 0)
			CHECK_INT_EQ(port, cases[i].port);
	}
}

/* "sink" is discard's alias in Debian's /etc/services, not an IANA name. */
TEST(port_lookup_services_alias)
{
	struct servent *se = getservbyname("sink", "tcp");
	uint16_t port = 0;

	if (se == NULL) {
		printf("  skip: no 'sink' alias in the services database "
		       "(/etc/services absent or different)\n");
		return;
	}
	CHECK_INT_EQ(dx_registry_by_name("sink", 0, NULL, 0), 0);
	CHECK_INT_EQ(dx_port_lookup("sink", DX_PROTO_TCP, &port), 0);
	CHECK_INT_EQ(port, ntohs((uint16_t)se->s_port));
}

TEST(ephemeral_parse)
{
	static const struct {
		const char *text;
		int rc;
		uint16_t lo, hi;
	} cases[] = {
	        {"32768\t60999\n", 0, 32768, 60999},
	        {"32768\t60999", 0, 32768, 60999},
	        {"1024 65535\n", 0, 1024, 65535},
	        {"5000 5000\n", 0, 5000, 5000},
	        {"", -EINVAL, 0, 0},
	        {"32768\n", -EINVAL, 0, 0},
	        {"32768\t\n", -EINVAL, 0, 0},
	        {"32768\t60999\n\n", -EINVAL, 0, 0},
	        {"32768\t60999 1\n", -EINVAL, 0, 0},
	        {"60999\t32768\n", -EINVAL, 0, 0},
	        {"32768\t65536\n", -EINVAL, 0, 0},
	        {"-1\t60999\n", -EINVAL, 0, 0},
	        {" 32768\t60999\n", -EINVAL, 0, 0},
	        {"32768,60999\n", -EINVAL, 0, 0},
	        {"0x8000\t60999\n", -EINVAL, 0, 0},
	        {"99999999999\t60999\n", -EINVAL, 0, 0},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		uint16_t lo = 7, hi = 7;
		CHECK_INT_EQ(dx__ephemeral_parse(cases[i].text, &lo, &hi),
		             cases[i].rc);
		CHECK_INT_EQ(lo, cases[i].rc == 0 ? cases[i].lo : 7);
		CHECK_INT_EQ(hi, cases[i].rc == 0 ? cases[i].hi : 7);
	}
}

TEST(ephemeral_range)
{
	uint16_t lo = 0, hi = 0;
	int rc = dx_ephemeral_range(&lo, &hi);

	if (rc == -ENOENT) {
		printf("  skip: no /proc/sys/net/ipv4/ip_local_port_range\n");
		return;
	}
	CHECK_OK(rc);
	CHECK(lo <= hi);
	CHECK(lo > 0);
}

int
main(void)
{
	RUN(port_parse_good);
	RUN(port_parse_bad);
	RUN(proto);
	RUN(port_class);
	RUN(registry_by_port);
	RUN(registry_by_port_contract);
	RUN(registry_by_name);
	RUN(registry_by_name_order);
	RUN(registry_indexes);
	RUN(port_lookup);
	RUN(port_lookup_services_alias);
	RUN(ephemeral_parse);
	RUN(ephemeral_range);
	CHECK_DONE();
}
