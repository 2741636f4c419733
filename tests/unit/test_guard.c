/* SPDX-License-Identifier: MIT */
/*
 * test_guard.c - the reflection rules and the per-source reply budget.
 */
#include "check.h"
#include "guard/guard.h"

#include <arpa/inet.h>

static struct dx_addr
ip(const char *host, uint16_t port)
{
	struct dx_addr a = {0};

	if (strchr(host, ':')) {
		a.u.in6.sin6_family = AF_INET6;
		inet_pton(AF_INET6, host, &a.u.in6.sin6_addr);
		a.u.in6.sin6_port = htons(port);
		a.len = sizeof(a.u.in6);
	} else {
		a.u.in.sin_family = AF_INET;
		inet_pton(AF_INET, host, &a.u.in.sin_addr);
		a.u.in.sin_port = htons(port);
		a.len = sizeof(a.u.in);
	}
	return a;
}

TEST(source_ports)
{
	struct dx_guard g = {0};
	static const struct {
		uint16_t port;
		int want;
	} cases[] = {
	        {0, DX_DROP_SRC_PORT},
	        {7, DX_DROP_SRC_PORT},
	        {19, DX_DROP_SRC_PORT},
	        {1023, DX_DROP_SRC_PORT},
	        {2049, DX_DROP_SRC_PORT},
	        {1024, -1},
	        {40000, -1},
	        {10007, DX_DROP_OWN_PORT},
	        {10019, DX_DROP_OWN_PORT},
	        {17007, DX_DROP_OWN_PORT},
	};

	dx__guard_add_port(&g, 17007);
	for (size_t i = 0; i < DX_ARRAY_LEN(cases); i++) {
		struct dx_addr a = ip("127.0.0.1", cases[i].port);
		int got = dx__guard_check(&g, &a, NULL);
		if (got != cases[i].want)
			CHECK_FAIL_("port %u: got %d want %d", cases[i].port,
			            got, cases[i].want);
	}
}

TEST(bad_sources_and_destinations)
{
	struct dx_guard g = {0};
	struct dx_addr ok = ip("127.0.0.1", 40000), a;

	g.bcast[g.n_bcast++].s_addr = inet_addr("192.0.2.255");
	a = ip("0.0.0.0", 40000);
	CHECK_INT_EQ(dx__guard_check(&g, &a, NULL), DX_DROP_BAD_SRC);
	a = ip("255.255.255.255", 40000);
	CHECK_INT_EQ(dx__guard_check(&g, &a, NULL), DX_DROP_BAD_SRC);
	a = ip("224.0.0.1", 40000);
	CHECK_INT_EQ(dx__guard_check(&g, &a, NULL), DX_DROP_BAD_SRC);
	a = ip("192.0.2.255", 40000);
	CHECK_INT_EQ(dx__guard_check(&g, &a, NULL), DX_DROP_BAD_SRC);
	a = ip("ff02::1", 40000);
	CHECK_INT_EQ(dx__guard_check(&g, &a, NULL), DX_DROP_BAD_SRC);
	a = ip("::ffff:224.0.0.1", 40000);
	CHECK_INT_EQ(dx__guard_check(&g, &a, NULL), DX_DROP_BAD_SRC);
	a = ip("255.255.255.255", 7);
	CHECK_INT_EQ(dx__guard_check(&g, &ok, &a), DX_DROP_BAD_DST);
	a = ip("127.0.0.2", 7);
	CHECK_INT_EQ(dx__guard_check(&g, &ok, &a), -1);
	a = ip("::1", 40000);
	CHECK_INT_EQ(dx__guard_check(&g, &a, NULL), -1);
}

TEST(unix_peers_pass)
{
	struct dx_guard g = {0};
	struct dx_addr a = {.u.un = {.sun_family = AF_UNIX}};

	a.len = sizeof(sa_family_t) + 2;
	CHECK_INT_EQ(dx__guard_check(&g, &a, NULL), -1);
}

TEST(budget_limits_rate_per_source)
{
	static struct dx_budget b;
	struct dx_addr one = ip("127.0.0.1", 40000);
	struct dx_addr other = ip("127.0.0.2", 40000);
	int ok = 0;

	dx__budget_init(&b, 20, 0);
	for (int i = 0; i < 100; i++)
		ok += dx__budget_take(&b, &one, 1000) == 0;
	CHECK_INT_EQ(ok, 20);
	CHECK_INT_EQ(dx__budget_take(&b, &other, 1000), 0);
	/* Half a second refills half the bucket. */
	ok = 0;
	for (int i = 0; i < 100; i++)
		ok += dx__budget_take(&b, &one, 1500) == 0;
	CHECK_INT_EQ(ok, 10);
}

TEST(budget_bytes_go_into_debt)
{
	static struct dx_budget b;
	struct dx_addr one = ip("127.0.0.1", 40000);

	dx__budget_init(&b, 0, 1000);
	CHECK_INT_EQ(dx__budget_take(&b, &one, 0), 0);
	dx__budget_charge(&b, &one, 1500);
	CHECK_INT_EQ(dx__budget_take(&b, &one, 0), -1);
}

TEST(budget_groups_ipv6_by_64)
{
	static struct dx_budget b;
	struct dx_addr a = ip("2001:db8::1", 40000);
	struct dx_addr same64 = ip("2001:db8::2", 40000);
	struct dx_addr other64 = ip("2001:db8:0:1::1", 40000);

	dx__budget_init(&b, 1, 0);
	CHECK_INT_EQ(dx__budget_take(&b, &a, 0), 0);
	CHECK_INT_EQ(dx__budget_take(&b, &same64, 0), -1);
	CHECK_INT_EQ(dx__budget_take(&b, &other64, 0), 0);
}

TEST(budget_table_stays_bounded_under_spoofed_flood)
{
	static struct dx_budget b;
	struct dx_addr a = ip("10.0.0.0", 40000);
	int ok = 0;

	dx__budget_init(&b, 1, 0);
	/* Many more sources than slots: every new one starts full. */
	for (uint32_t i = 0; i < 3 * DX_BUDGET_SLOTS; i++) {
		a.u.in.sin_addr.s_addr = htonl(0x0a000000u + i);
		ok += dx__budget_take(&b, &a, 0) == 0;
	}
	CHECK_INT_EQ(ok, 3 * DX_BUDGET_SLOTS);
}

int
main(void)
{
	RUN(source_ports);
	RUN(bad_sources_and_destinations);
	RUN(unix_peers_pass);
	RUN(budget_limits_rate_per_source);
	RUN(budget_bytes_go_into_debt);
	RUN(budget_groups_ipv6_by_64);
	RUN(budget_table_stays_bounded_under_spoofed_flood);
	CHECK_DONE();
}
