/* SPDX-License-Identifier: MIT */
/*
 * test_rules.c - the access rules: strict parsing with one-sentence
 * errors, first-match ordering, the default, address families (IPv4-mapped
 * peers match as IPv4), prefix boundaries, uid/gid rules for unix peers,
 * and formatting that parses back into the same rule.
 */
#include "check.h"
#include "guard/rules.h"

#include <arpa/inet.h>
#include <errno.h>
#include <sys/socket.h>

static struct dx_addr
ip(const char *host)
{
	struct dx_addr a = {0};

	if (strchr(host, ':')) {
		a.u.in6.sin6_family = AF_INET6;
		inet_pton(AF_INET6, host, &a.u.in6.sin6_addr);
		a.u.in6.sin6_port = htons(40000);
		a.len = sizeof(a.u.in6);
	} else {
		a.u.in.sin_family = AF_INET;
		inet_pton(AF_INET, host, &a.u.in.sin_addr);
		a.u.in.sin_port = htons(40000);
		a.len = sizeof(a.u.in);
	}
	return a;
}

/* An unnamed unix peer, as accept(2) reports a client that did not bind. */
static struct dx_addr
unix_peer(void)
{
	struct dx_addr a = {0};

	a.u.un.sun_family = AF_UNIX;
	a.len = sizeof(sa_family_t);
	return a;
}

/* Adds each "+TEXT" (allow) or "-TEXT" (deny) in order; all must parse. */
static void
load(struct dx_rules *rules, const char *const *list, size_t n)
{
	char why[256];

	memset(rules, 0, sizeof(*rules));
	for (size_t i = 0; i < n; i++) {
		int rc = dx__rules_add(rules, list[i][0] == '+', list[i] + 1,
		                       why, sizeof(why));
		if (rc != 0)
			CHECK_FAIL_("add '%s': %d %s", list[i], rc, why);
	}
}

/* Checks PEER against RULES: the matching index and the decision. */
static void
expect(const struct dx_rules *rules, const char *peer, int index, int allow)
{
	struct dx_addr a = ip(peer);
	int allowed = -7, got = dx__rules_check(rules, &a, NULL, &allowed);

	if (got != index || allowed != allow)
		CHECK_FAIL_("peer %s: index %d allowed %d, want %d %d", peer,
		            got, allowed, index, allow);
}

TEST(errors)
{
	static const struct {
		const char *text, *why;
	} cases[] = {
	        {"", "empty rule ''"},
	        {" 10.0.0.1",
	         "rule ' 10.0.0.1' has leading or trailing spaces"},
	        {"10.0.0.1 ",
	         "rule '10.0.0.1 ' has leading or trailing spaces"},
	        {"\t::1", "has leading or trailing spaces"},
	        {"uid:1\n", "has leading or trailing spaces"},
	        {"300.1.1.1",
	         "'300.1.1.1' is not an IPv4 or IPv6 address or CIDR"},
	        {"10.0.0.1/8",
	         "'10.0.0.1/8' has host bits set; did you mean 10.0.0.0/8?"},
	        {"10.0.16.1/20", "did you mean 10.0.16.0/20?"},
	        {"2001:db8::1/32",
	         "'2001:db8::1/32' has host bits set; did you mean "
	         "2001:db8::/32?"},
	        {"[2001:db8::1]/64", "did you mean 2001:db8::/64?"},
	        {"1.2.3.4/0", "did you mean 0.0.0.0/0?"},
	        {"::1/0", "did you mean ::/0?"},
	        {"10.0.0.0/33", "prefix /33 is longer than 32 bits in "
	                        "'10.0.0.0/33'"},
	        {"10.0.0.0/999999999999", "prefix /999999999999 is longer"},
	        {"::/129", "prefix /129 is longer than 128 bits in '::/129'"},
	        {"[::1]/200", "prefix /200 is longer than 128 bits"},
	        {"10.0.0.0/8x", "'10.0.0.0/8x' has garbage after the prefix"},
	        {"10.0.0.0/8/8", "has garbage after the prefix"},
	        {"::/0.", "has garbage after the prefix"},
	        {"10.0.0.0/", "expected a decimal prefix length after '/' in "
	                      "'10.0.0.0/'"},
	        {"10.0.0.0/-8", "expected a decimal prefix length"},
	        {"10.0.0.0/+8", "expected a decimal prefix length"},
	        {"10.0.0.0/ 8", "expected a decimal prefix length"},
	        {"10.0.0.0 /8", "'10.0.0.0 /8' is not an IPv4 or IPv6"},
	        {"10.0.0", "is not an IPv4 or IPv6 address or CIDR"},
	        {"10.0.0.0.0", "is not an IPv4 or IPv6 address or CIDR"},
	        {"0x0a000001", "is not an IPv4 or IPv6 address or CIDR"},
	        {"localhost", "'localhost' is not an IPv4 or IPv6 address"},
	        {"/8", "'/8' is not an IPv4 or IPv6 address or CIDR"},
	        {"[10.0.0.1]", "'[10.0.0.1]' is not an IPv4 or IPv6"},
	        {"[::1", "'[::1' is not an IPv4 or IPv6"},
	        {"[::1]x", "'[::1]x' is not an IPv4 or IPv6"},
	        {"[::1]]", "is not an IPv4 or IPv6"},
	        {"[]", "is not an IPv4 or IPv6"},
	        {"::1]", "is not an IPv4 or IPv6"},
	        {"fe80::1%eth0", "'fe80::1%eth0' is not an IPv4 or IPv6"},
	        {"1:2:3:4:5:6:7:8:9", "is not an IPv4 or IPv6"},
	        {"UID:5", "'UID:5' is not an IPv4 or IPv6"},
	        {"user:5", "is not an IPv4 or IPv6"},
	        {"uid:", "'uid:' is not uid: followed by a decimal number"},
	        {"gid:", "'gid:' is not gid: followed by a decimal number"},
	        {"uid:-1", "'uid:-1' is not uid: followed by a decimal"},
	        {"uid:+5", "is not uid: followed by a decimal number"},
	        {"uid:0x10", "is not uid: followed by a decimal number"},
	        {"gid:1a", "'gid:1a' is not gid: followed by a decimal"},
	        {"gid:root", "is not gid: followed by a decimal number"},
	        {"uid:1 2", "is not uid: followed by a decimal number"},
	        {"uid:4294967295",
	         "'uid:4294967295' is out of range: the largest uid is "
	         "4294967294"},
	        {"gid:99999999999999999999999",
	         "the largest gid is 4294967294"},
	        {"::ffff:10.0.0.1", "'::ffff:10.0.0.1' is IPv4-mapped and "
	                            "would never match"},
	        {"::ffff:10.0.0.1", "write 10.0.0.1/32"},
	        {"::ffff:0:0/96", "write 0.0.0.0/0"},
	        {"[::ffff:10.1.0.0]/112", "write 10.1.0.0/16"},
	        {"12345678901234567890123456789012345678901234567890123456789"
	         "012345",
	         "is longer than 64 bytes"},
	};
	struct dx_rules rules = {0};
	char why[256];

	for (size_t i = 0; i < DX_ARRAY_LEN(cases); i++) {
		int rc;
		why[0] = '\0';
		rc = dx__rules_add(&rules, 1, cases[i].text, why, sizeof(why));
		if (rc != -DX_ERULE || strstr(why, cases[i].why) == NULL)
			CHECK_FAIL_("'%s': rc %d why \"%s\", want \"%s\"",
			            cases[i].text, rc, why, cases[i].why);
		rc = dx__rules_add(&rules, 0, cases[i].text, NULL, 0);
		if (rc != -DX_ERULE)
			CHECK_FAIL_("'%s' without why: rc %d", cases[i].text,
			            rc);
	}
	CHECK_INT_EQ(rules.n, 0);
	CHECK_INT_EQ(rules.n_allow, 0);
}

TEST(length_limit)
{
	char text[DX_RULE_TEXT_MAX + 2], why[256] = "";
	struct dx_rules rules = {0};

	/* 64 bytes is accepted: "uid:" and 60 zeros, then a 1. */
	memset(text, '0', sizeof(text));
	memcpy(text, "uid:", 4);
	text[DX_RULE_TEXT_MAX - 1] = '1';
	text[DX_RULE_TEXT_MAX] = '\0';
	CHECK_INT_EQ(dx__rules_add(&rules, 0, text, why, sizeof(why)), 0);
	CHECK_INT_EQ(rules.r[0].id, 1);
	text[DX_RULE_TEXT_MAX] = '1';
	text[DX_RULE_TEXT_MAX + 1] = '\0';
	CHECK_INT_EQ(dx__rules_add(&rules, 0, text, why, sizeof(why)),
	             -DX_ERULE);
	CHECK(strstr(why, "'uid:000") != NULL);
	CHECK(strstr(why, "...' is longer than 64 bytes") != NULL);
	CHECK_INT_EQ(rules.n, 1);
}

TEST(table_full)
{
	static struct dx_rules rules;
	char text[32], why[256] = "";

	for (int i = 0; i < DX_MAX_RULES; i++) {
		(void)snprintf(text, sizeof(text), "uid:%d", i);
		CHECK_INT_EQ(
		        dx__rules_add(&rules, i & 1, text, why, sizeof(why)),
		        0);
	}
	CHECK_INT_EQ(rules.n, DX_MAX_RULES);
	CHECK_INT_EQ(rules.n_allow, DX_MAX_RULES / 2);
	CHECK_INT_EQ(dx__rules_add(&rules, 1, "10.0.0.0/8", why, sizeof(why)),
	             -E2BIG);
	CHECK(strstr(why, "'10.0.0.0/8'") != NULL);
	CHECK(strstr(why, "at most 256") != NULL);
	CHECK_INT_EQ(rules.n, DX_MAX_RULES);
	CHECK_INT_EQ(rules.n_allow, DX_MAX_RULES / 2);
}

TEST(first_match_decides)
{
	static const char *const deny_first[] = {"-10.0.0.5", "+10.0.0.0/8"};
	static const char *const allow_first[] = {"+10.0.0.0/8", "-10.0.0.5"};
	struct dx_rules rules;

	load(&rules, deny_first, 2);
	expect(&rules, "10.0.0.5", 0, 0);
	expect(&rules, "10.0.0.6", 1, 1);
	expect(&rules, "11.0.0.5", -1, 0);
	load(&rules, allow_first, 2);
	expect(&rules, "10.0.0.5", 0, 1);
	expect(&rules, "10.0.0.6", 0, 1);
	expect(&rules, "11.0.0.5", -1, 0);
}

TEST(default_decision)
{
	static const char *const deny_only[] = {"-192.0.2.0/24", "-::1"};
	static const char *const one_allow[] = {"-192.0.2.0/24", "+::1"};
	struct dx_rules rules;

	memset(&rules, 0, sizeof(rules));
	expect(&rules, "127.0.0.1", -1, 1);
	expect(&rules, "::1", -1, 1);
	load(&rules, deny_only, 2);
	expect(&rules, "192.0.2.9", 0, 0);
	expect(&rules, "::1", 1, 0);
	expect(&rules, "127.0.0.1", -1, 1);
	expect(&rules, "::2", -1, 1);
	load(&rules, one_allow, 2);
	CHECK_INT_EQ(rules.n_allow, 1);
	expect(&rules, "192.0.2.9", 0, 0);
	expect(&rules, "::1", 1, 1);
	expect(&rules, "127.0.0.1", -1, 0);
	expect(&rules, "::2", -1, 0);
}

TEST(families)
{
	static const char *const v4[] = {"+10.0.0.0/8", "-0.0.0.0/0"};
	static const char *const v6[] = {"-::/0"};
	struct dx_rules rules;
	struct dx_addr a;
	int allowed;

	/* An IPv4-mapped peer is the IPv4 peer it stands for. */
	load(&rules, v4, 2);
	expect(&rules, "::ffff:10.1.2.3", 0, 1);
	expect(&rules, "::ffff:192.0.2.1", 1, 0);
	/* IPv4 rules never match a native IPv6 peer. */
	expect(&rules, "::1", -1, 0);
	expect(&rules, "::a00:1", -1, 0);
	expect(&rules, "2001:db8::1", -1, 0);
	/* And IPv6 rules never match an IPv4 peer, mapped or not. */
	load(&rules, v6, 1);
	expect(&rules, "::1", 0, 0);
	expect(&rules, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 0, 0);
	expect(&rules, "127.0.0.1", -1, 1);
	expect(&rules, "::ffff:127.0.0.1", -1, 1);
	/* A peer whose length is too short for its family matches nothing. */
	load(&rules, v4, 2);
	a = ip("10.0.0.1");
	a.len = sizeof(sa_family_t);
	CHECK_INT_EQ(dx__rules_check(&rules, &a, NULL, &allowed), -1);
	CHECK_INT_EQ(allowed, 0);
}

TEST(zero_prefix)
{
	static const char *const list[] = {"-0.0.0.0/0", "+::/0"};
	struct dx_rules rules;

	load(&rules, list, 2);
	expect(&rules, "0.0.0.0", 0, 0);
	expect(&rules, "1.2.3.4", 0, 0);
	expect(&rules, "255.255.255.255", 0, 0);
	expect(&rules, "::", 1, 1);
	expect(&rules, "fe80::1", 1, 1);
	expect(&rules, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 1, 1);
}

TEST(prefix_boundaries)
{
	static const char *const list[] = {
	        "+2001:db8:1:2::/64", "+10.0.16.0/20", "+2001:db8:0:80::/57",
	        "+192.0.2.128/25"};
	struct dx_rules rules;

	load(&rules, list, 4);
	expect(&rules, "2001:db8:1:2::", 0, 1);
	expect(&rules, "2001:db8:1:2:ffff:ffff:ffff:ffff", 0, 1);
	expect(&rules, "2001:db8:1:1:ffff:ffff:ffff:ffff", -1, 0);
	expect(&rules, "2001:db8:1:3::", -1, 0);
	expect(&rules, "2001:db9:1:2::", -1, 0);
	expect(&rules, "10.0.16.0", 1, 1);
	expect(&rules, "10.0.31.255", 1, 1);
	expect(&rules, "10.0.15.255", -1, 0);
	expect(&rules, "10.0.32.0", -1, 0);
	expect(&rules, "2001:db8:0:80::", 2, 1);
	expect(&rules, "2001:db8:0:ff:ffff::1", 2, 1);
	expect(&rules, "2001:db8:0:7f:ffff::1", -1, 0);
	expect(&rules, "2001:db8:0:100::", -1, 0);
	expect(&rules, "192.0.2.128", 3, 1);
	expect(&rules, "192.0.2.255", 3, 1);
	expect(&rules, "192.0.2.127", -1, 0);
}

TEST(credentials)
{
	static const char *const list[] = {"-uid:1000", "+gid:100",
	                                   "+127.0.0.0/8"};
	struct dx_rules rules;
	struct ucred alice = {.pid = 1, .uid = 1000, .gid = 100};
	struct ucred bob = {.pid = 1, .uid = 1001, .gid = 100};
	struct ucred carol = {.pid = 1, .uid = 1002, .gid = 1000};
	struct dx_addr u = unix_peer(), lo = ip("127.0.0.1");
	int allowed = -7;

	load(&rules, list, 3);
	CHECK_INT_EQ(dx__rules_check(&rules, &u, &alice, &allowed), 0);
	CHECK_INT_EQ(allowed, 0);
	CHECK_INT_EQ(dx__rules_check(&rules, &u, &bob, &allowed), 1);
	CHECK_INT_EQ(allowed, 1);
	/* A gid rule compares the gid, never the uid. */
	CHECK_INT_EQ(dx__rules_check(&rules, &u, &carol, &allowed), -1);
	CHECK_INT_EQ(allowed, 0);
	/* No credentials: no uid/gid rule matches, and no IP rule either. */
	CHECK_INT_EQ(dx__rules_check(&rules, &u, NULL, &allowed), -1);
	CHECK_INT_EQ(allowed, 0);
	/* A NULL peer with credentials is a unix peer of unknown address. */
	CHECK_INT_EQ(dx__rules_check(&rules, NULL, &alice, &allowed), 0);
	CHECK_INT_EQ(dx__rules_check(&rules, NULL, NULL, &allowed), -1);
	CHECK_INT_EQ(allowed, 0);
	/* uid/gid rules never match IP peers, even given credentials. */
	CHECK_INT_EQ(dx__rules_check(&rules, &lo, &alice, &allowed), 2);
	CHECK_INT_EQ(allowed, 1);
	lo = ip("192.0.2.1");
	CHECK_INT_EQ(dx__rules_check(&rules, &lo, &bob, &allowed), -1);
	CHECK_INT_EQ(allowed, 0);
}

TEST(uid_zero_and_max)
{
	static const char *const list[] = {"+uid:0", "-uid:4294967294"};
	struct dx_rules rules;
	struct ucred root = {.uid = 0, .gid = 0};
	struct ucred big = {.uid = 4294967294u, .gid = 5};
	struct dx_addr u = unix_peer();
	int allowed;

	load(&rules, list, 2);
	CHECK_INT_EQ(dx__rules_check(&rules, &u, &root, &allowed), 0);
	CHECK_INT_EQ(allowed, 1);
	CHECK_INT_EQ(dx__rules_check(&rules, &u, &big, &allowed), 1);
	CHECK_INT_EQ(allowed, 0);
}

TEST(format_round_trip)
{
	static const struct {
		const char *text, *want;
	} cases[] = {
	        {"127.0.0.1", "127.0.0.1"},
	        {"127.0.0.1/32", "127.0.0.1"},
	        {"10.0.0.0/8", "10.0.0.0/8"},
	        {"10.0.0.0/08", "10.0.0.0/8"},
	        {"0.0.0.0/0", "0.0.0.0/0"},
	        {"192.0.2.128/25", "192.0.2.128/25"},
	        {"::1", "::1"},
	        {"[::1]", "::1"},
	        {"[::1]/128", "::1"},
	        {"::/0", "::/0"},
	        {"[::]/0", "::/0"},
	        {"2001:DB8::/32", "2001:db8::/32"},
	        {"[2001:db8::]/32", "2001:db8::/32"},
	        {"2001:db8:0:0:1::/80", "2001:db8:0:0:1::/80"},
	        {"fe80::/10", "fe80::/10"},
	        {"::fffe:0:0/95", "::fffe:0:0/95"},
	        {"uid:1000", "uid:1000"},
	        {"uid:007", "uid:7"},
	        {"gid:0", "gid:0"},
	        {"gid:4294967294", "gid:4294967294"},
	};
	char buf[DX_RULESTRLEN], want[DX_RULESTRLEN], why[256];

	for (size_t i = 0; i < DX_ARRAY_LEN(cases); i++) {
		for (int allow = 0; allow <= 1; allow++) {
			struct dx_rules rules = {0};
			const char *verb = allow ? "allow " : "deny ";
			int rc = dx__rules_add(&rules, allow, cases[i].text,
			                       why, sizeof(why));
			if (rc != 0) {
				CHECK_FAIL_("'%s': %d %s", cases[i].text, rc,
				            why);
				continue;
			}
			(void)snprintf(want, sizeof(want), "%s%s", verb,
			               cases[i].want);
			rc = dx__rule_format(&rules.r[0], buf, sizeof(buf));
			CHECK_STR_EQ(buf, want);
			CHECK_INT_EQ(rc, strlen(want));
			CHECK_OK(dx__rules_add(&rules, allow,
			                       buf + strlen(verb), why,
			                       sizeof(why)));
			CHECK(memcmp(&rules.r[0].addr, &rules.r[1].addr, 16) ==
			      0);
			CHECK_INT_EQ(rules.r[0].kind, rules.r[1].kind);
			CHECK_INT_EQ(rules.r[0].prefix, rules.r[1].prefix);
			CHECK_INT_EQ(rules.r[0].id, rules.r[1].id);
			CHECK_INT_EQ(rules.r[0].allow, rules.r[1].allow);
		}
	}
}

TEST(format_truncates)
{
	struct dx_rules rules = {0};
	struct dx_rule bad = {.kind = 9};
	char buf[8] = "xxxxxxx";

	CHECK_OK(dx__rules_add(&rules, 1, "10.0.0.0/8", NULL, 0));
	CHECK_INT_EQ(dx__rule_format(&rules.r[0], buf, sizeof(buf)), 7);
	CHECK_STR_EQ(buf, "allow 1");
	CHECK_INT_EQ(dx__rule_format(&rules.r[0], buf, 0), 0);
	CHECK_INT_EQ(dx__rule_format(&bad, buf, sizeof(buf)), -EINVAL);
	bad.kind = DX_RULE_IP4;
	bad.prefix = 33;
	CHECK_INT_EQ(dx__rule_format(&bad, buf, sizeof(buf)), -EINVAL);
}

TEST(text_parse)
{
	struct dx_rules rules;
	char why[256];

	memset(&rules, 0, sizeof(rules));
	CHECK_OK(dx__rules_add(&rules, 1, "192.0.2.0/24", why, sizeof(why)));
	CHECK_OK(dx__rules_parse(&rules,
	                         "# office\n\n  deny 10.0.0.5 \r\n"
	                         "allow\t10.0.0.0/8\ndeny uid:0",
	                         "acl", why, sizeof(why)));
	CHECK_INT_EQ(rules.n, 4);
	CHECK_INT_EQ(rules.n_allow, 2);
	expect(&rules, "10.0.0.5", 1, 0);
	expect(&rules, "10.0.0.6", 2, 1);
	CHECK_OK(dx__rules_parse(&rules, "", "empty", why, sizeof(why)));
	CHECK_INT_EQ(rules.n, 4);
}

TEST(text_errors_leave_rules_unchanged)
{
	static const struct {
		const char *text, *want;
	} bad[] = {
	        {"allow 10.0.0.0/8\npermit 10.0.0.1\n", "acl:2: expected"},
	        {"deny\n", "acl:1: expected"},
	        {"deny 10.0.0.1 10.0.0.2\n", "acl:1: expected"},
	        {"deny 10.0.0.1/8\n", "acl:1: "},
	        {"deny example.com\n", "acl:1: "},
	};
	struct dx_rules rules;
	char why[256];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&rules, 0, sizeof(rules));
		CHECK_OK(dx__rules_add(&rules, 0, "::1", why, sizeof(why)));
		CHECK(dx__rules_parse(&rules, bad[i].text, "acl", why,
		                      sizeof(why)) < 0);
		CHECK(strstr(why, bad[i].want) == why);
		CHECK_INT_EQ(rules.n, 1);
	}
	CHECK(dx__rules_load(&rules, "/nonexistent/acl", why, sizeof(why)) < 0);
	CHECK(strstr(why, "/nonexistent/acl: ") == why);
	CHECK_INT_EQ(rules.n, 1);
}

int
main(void)
{
	RUN(errors);
	RUN(length_limit);
	RUN(table_full);
	RUN(first_match_decides);
	RUN(default_decision);
	RUN(families);
	RUN(zero_prefix);
	RUN(prefix_boundaries);
	RUN(credentials);
	RUN(uid_zero_and_max);
	RUN(format_round_trip);
	RUN(format_truncates);
	RUN(text_parse);
	RUN(text_errors_leave_rules_unchanged);
	CHECK_DONE();
}
