/* SPDX-License-Identifier: MIT */
/*
 * test_endpoint.c - unit tests for endpoint.c: the endpoint grammar (every
 * valid form round-trips through dx_endpoint_format(), every bad form
 * fails with the right code and a sentence quoting the offending part),
 * resolution against 127.0.0.1, ::1 and the local resolver only, and the
 * formatting, unmapping and comparison of socket addresses.
 */
#include "internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netdb.h>
#include <stddef.h>
#include <stdlib.h>
#include <unistd.h>

#include "check.h"

#define A50 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
/* The longest unix path and abstract name the grammar takes. */
#define PATH107       "/tmp/" A50 A50 "aa"
#define ABSTRACT107   "@" A50 A50 "aaaaaa"
#define SUN_PATH_SIZE sizeof(((struct sockaddr_un *)0)->sun_path)
#define LABEL63 \
	"abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabc"
/* Three labels of 63, one of 61 and the dots between them: 253 bytes. */
#define NAME253 LABEL63 "." LABEL63 "." LABEL63 "." A50 "aaaaaaaaaaa"

struct valid_case {
	const char *text;
	const char *host;
	const char *path;
	const char *canonical; /* dx_endpoint_format() of the parse */
	enum dx_scheme scheme;
	uint16_t port;
};

static const struct valid_case valid_cases[] = {
        {"tcp://127.0.0.1:7", "127.0.0.1", "", "tcp://127.0.0.1:7",
         DX_SCHEME_TCP, 7},
        {"udp://127.0.0.1:7", "127.0.0.1", "", "udp://127.0.0.1:7",
         DX_SCHEME_UDP, 7},
        {"tcp://[::1]:7", "::1", "", "tcp://[::1]:7", DX_SCHEME_TCP, 7},
        {"udp://[::1]:7", "::1", "", "udp://[::1]:7", DX_SCHEME_UDP, 7},
        {"tcp://[fe80::1%lo]:7", "fe80::1%lo", "", "tcp://[fe80::1%lo]:7",
         DX_SCHEME_TCP, 7},
        {"tcp://[fe80::1%1]:7", "fe80::1%1", "", "tcp://[fe80::1%1]:7",
         DX_SCHEME_TCP, 7},
        {"tcp://:7", "", "", "tcp://:7", DX_SCHEME_TCP, 7},
        {"udp://:9000", "", "", "udp://:9000", DX_SCHEME_UDP, 9000},
        {"tcp://[::]:0", "::", "", "tcp://[::]:0", DX_SCHEME_TCP, 0},
        {"tcp://[::ffff:127.0.0.1]:80", "::ffff:127.0.0.1", "",
         "tcp://[::ffff:127.0.0.1]:80", DX_SCHEME_TCP, 80},
        {"tcp://[1:2:3:4:5:6:7:8]:65535", "1:2:3:4:5:6:7:8", "",
         "tcp://[1:2:3:4:5:6:7:8]:65535", DX_SCHEME_TCP, 65535},
        {"tcp://127.0.0.1:0", "127.0.0.1", "", "tcp://127.0.0.1:0",
         DX_SCHEME_TCP, 0},
        {"tcp://127.0.0.1:007", "127.0.0.1", "", "tcp://127.0.0.1:7",
         DX_SCHEME_TCP, 7},
        {"tcp://localhost:7", "localhost", "", "tcp://localhost:7",
         DX_SCHEME_TCP, 7},
        {"TCP://localhost:7", "localhost", "", "tcp://localhost:7",
         DX_SCHEME_TCP, 7},
        {"Udp://LocalHost:7", "LocalHost", "", "udp://LocalHost:7",
         DX_SCHEME_UDP, 7},
        {"tcp://my_host-1.example.com.:80", "my_host-1.example.com.", "",
         "tcp://my_host-1.example.com.:80", DX_SCHEME_TCP, 80},
        {"tcp://" LABEL63 ":1", LABEL63, "", "tcp://" LABEL63 ":1",
         DX_SCHEME_TCP, 1},
        {"tcp://" NAME253 ":1", NAME253, "", "tcp://" NAME253 ":1",
         DX_SCHEME_TCP, 1},
        {"tcp://127.0.0.1:echo", "127.0.0.1", "", "tcp://127.0.0.1:7",
         DX_SCHEME_TCP, 7},
        {"udp://[::1]:echo", "::1", "", "udp://[::1]:7", DX_SCHEME_UDP, 7},
        {"tcp://localhost:daytime", "localhost", "", "tcp://localhost:13",
         DX_SCHEME_TCP, 13},
        {"tcp://localhost:9pfs", "localhost", "", "tcp://localhost:564",
         DX_SCHEME_TCP, 564},
        {"tcp://localhost:z39.50", "localhost", "", "tcp://localhost:210",
         DX_SCHEME_TCP, 210},
        {"unix:///run/x.sock", "", "/run/x.sock", "unix:///run/x.sock",
         DX_SCHEME_UNIX, 0},
        {"unix://x.sock", "", "x.sock", "unix://x.sock", DX_SCHEME_UNIX, 0},
        {"unix://@name", "", "@name", "unix://@name", DX_SCHEME_UNIX, 0},
        {"UNIX://@name", "", "@name", "unix://@name", DX_SCHEME_UNIX, 0},
        {"unixgram:///tmp/y.sock", "", "/tmp/y.sock", "unixgram:///tmp/y.sock",
         DX_SCHEME_UNIXGRAM, 0},
        {"unixgram://@g", "", "@g", "unixgram://@g", DX_SCHEME_UNIXGRAM, 0},
        {"unix:///a://b", "", "/a://b", "unix:///a://b", DX_SCHEME_UNIX, 0},
        {"unix://" PATH107, "", PATH107, "unix://" PATH107, DX_SCHEME_UNIX, 0},
        {"unix://" ABSTRACT107, "", ABSTRACT107, "unix://" ABSTRACT107,
         DX_SCHEME_UNIX, 0},
};

static int
same_endpoint(const struct dx_endpoint *a, const struct dx_endpoint *b)
{
	return a->scheme == b->scheme && a->port == b->port &&
	       strcmp(a->host, b->host) == 0 && strcmp(a->path, b->path) == 0;
}

TEST(valid_forms_parse_and_round_trip)
{
	for (size_t i = 0; i < DX_ARRAY_LEN(valid_cases); i++) {
		const struct valid_case *c = &valid_cases[i];
		struct dx_endpoint ep, again;
		char why[256] = "", buf[512];
		int rc = dx_endpoint_parse(&ep, c->text, why, sizeof(why));

		if (rc != 0) {
			CHECK_FAIL_("parse '%s': %s (%s)", c->text,
			            dx_strerror(rc), why);
			continue;
		}
		CHECK_INT_EQ(ep.scheme, c->scheme);
		CHECK_STR_EQ(ep.host, c->host);
		CHECK_INT_EQ(ep.port, c->port);
		CHECK_STR_EQ(ep.path, c->path);
		CHECK_INT_EQ(dx_endpoint_format(&ep, buf, sizeof(buf)),
		             strlen(c->canonical));
		CHECK_STR_EQ(buf, c->canonical);
		CHECK_INT_EQ(dx_endpoint_parse(&again, buf, NULL, 0), 0);
		CHECK(same_endpoint(&ep, &again));
	}
}

struct bad_case {
	const char *text;
	int code;
	const char *why; /* a part of the sentence: the offending text */
};

static const struct bad_case bad_cases[] = {
        {"", DX_ESYNTAX, "empty"},
        {"htp://x:1", DX_ESCHEME,
         "unknown scheme 'htp' (expected tcp, udp, "
         "unix or unixgram)"},
        {"tcpx://x:1", DX_ESCHEME, "'tcpx'"},
        {"localhost:7", DX_ESCHEME, "'localhost:7'"},
        {"://x:1", DX_ESCHEME, "missing scheme"},
        {"tcp:/x:1", DX_ESYNTAX, "'tcp'"},
        {"tcp:x:1", DX_ESYNTAX, "'tcp:x:1'"},
        {"tcp://127.0.0.1:65536", DX_EPORTRANGE,
         "port 65536 is out of range 0-65535"},
        {"udp://[::1]:99999999999", DX_EPORTRANGE, "99999999999"},
        {"tcp://127.0.0.1:", DX_ENOPORT, "port is empty"},
        {"tcp://[::1]:", DX_ENOPORT, "port is empty"},
        {"tcp://localhost", DX_ENOPORT,
         "missing ':PORT' after host 'localhost'"},
        {"tcp://[::1]", DX_ENOPORT, "missing ':PORT' after host '[::1]'"},
        {"tcp://", DX_ENOPORT, "tcp://:PORT"},
        {"tcp://127.0.0.1:7]x", DX_ESYNTAX,
         "unexpected text ']x' after the port '7'"},
        {"tcp://[::1]:7]x", DX_ESYNTAX, "']x'"},
        {"tcp://127.0.0.1:7/x", DX_ESYNTAX, "'/x'"},
        {"tcp://127.0.0.1:7 ", DX_ESYNTAX, "' '"},
        {"tcp://127.0.0.1:echo/", DX_ESYNTAX, "'/'"},
        {"tcp://127.0.0.1:/7", DX_EPORT, "'/7'"},
        {"tcp://[::1]x:7", DX_ESYNTAX, "'x:7'"},
        {"tcp://[::1:7", DX_EHOST, "unterminated '[' in IPv6 address '[::1:7'"},
        {"tcp://[::1", DX_EHOST, "unterminated '['"},
        {"tcp://[]:7", DX_EHOST, "'[]'"},
        {"tcp://[1::2::3]:7", DX_EHOST,
         "'1::2::3' is not a valid IPv6 address"},
        {"tcp://[127.0.0.1]:7", DX_EHOST, "'127.0.0.1' is not a valid IPv6"},
        {"tcp://[1:2:3:4:5:6:7:8:9]:7", DX_EHOST, "'1:2:3:4:5:6:7:8:9'"},
        {"tcp://[fe80::1%]:7", DX_EHOST, "zone"},
        {"tcp://[fe80::1%a/b]:7", DX_EHOST, "'a/b'"},
        {"tcp://[fe80::1%0123456789abcdef]:7", DX_EHOST, "'0123456789abcdef'"},
        {"tcp://::1:7", DX_EHOST,
         "IPv6 address must be in brackets, as in tcp://[::1]:7"},
        {"udp://fe80::1", DX_EHOST, "udp://[fe80::1]:PORT"},
        {"tcp://a:b:c", DX_EHOST, "'a:b'"},
        {"tcp://300.1.1.1:7", DX_EHOST, "'300.1.1.1' is not a valid IPv4"},
        {"tcp://127.1:7", DX_EHOST, "'127.1'"},
        {"tcp://1.2.3.4.5:7", DX_EHOST, "'1.2.3.4.5'"},
        {"tcp://bad/host:7", DX_EHOST, "'/' in host name 'bad/host'"},
        {"tcp://user@host:7", DX_EHOST, "'@'"},
        {"tcp://a\x01:7", DX_EHOST, "'\\x01'"},
        {"tcp://a..b:7", DX_EHOST, "'a..b' has an empty label"},
        {"tcp://.:7", DX_EHOST, "empty label"},
        {"tcp://.a:7", DX_EHOST, "empty label"},
        {"tcp://" LABEL63 "x:7", DX_EHOST, "longer than 63"},
        {"tcp://" NAME253 "x:7", DX_EHOST, "254 bytes, longer than 253"},
        {"tcp://127.0.0.1:nosuch", DX_ESERVICE,
         "unknown service name 'nosuch' for tcp"},
        {"udp://127.0.0.1:nosuch", DX_ESERVICE, "'nosuch' for udp"},
        {"unix://", DX_EPATH, "empty"},
        {"unixgram://", DX_EPATH, "empty"},
        {"unix://@", DX_EPATH, "'@'"},
        {"unix://x" PATH107, DX_EPATH,
         "unix socket path is 108 bytes, longer than 107"},
        {"unix://@" PATH107, DX_EPATH, "108 bytes"},
};

TEST(bad_forms_fail_and_name_the_part)
{
	for (size_t i = 0; i < DX_ARRAY_LEN(bad_cases); i++) {
		const struct bad_case *c = &bad_cases[i];
		struct dx_endpoint ep;
		char why[512] = "";
		int rc;

		memset(&ep, 0xa5, sizeof(ep));
		rc = dx_endpoint_parse(&ep, c->text, why, sizeof(why));
		if (rc != -c->code)
			CHECK_FAIL_("'%s': %d (%s), expected %d (%s): %s",
			            c->text, rc, dx_strerror(rc), -c->code,
			            dx_strerror(-c->code), why);
		if (strstr(why, c->why) == NULL)
			CHECK_FAIL_("'%s': why \"%s\" lacks \"%s\"", c->text,
			            why, c->why);
		CHECK(ep.port == 0xa5a5); /* untouched on failure */
	}
}

/*
 * Signs and fractions are no numbers. Whether "-1" is "not a number" or
 * "out of range" is dx_port_parse()'s call (and whether "0x50" is a bad
 * number or an unknown name dx_port_lookup()'s); the endpoint parser must
 * fail with that code and quote the text.
 */
TEST(bad_ports_follow_port_parse)
{
	static const char *const ports[] = {"-1", "+7",    "7.5",   "-0",
	                                    "+",  "65536", "100000"};

	for (size_t i = 0; i < DX_ARRAY_LEN(ports); i++) {
		char text[64], why[256] = "";
		struct dx_endpoint ep;
		uint16_t port;
		int want = dx_port_parse(ports[i], &port), rc;

		(void)snprintf(text, sizeof(text), "tcp://127.0.0.1:%s",
		               ports[i]);
		rc = dx_endpoint_parse(&ep, text, why, sizeof(why));
		CHECK(want < 0);
		CHECK_INT_EQ(rc, want);
		if (strstr(why, ports[i]) == NULL)
			CHECK_FAIL_("'%s': why \"%s\"", text, why);
	}
}

TEST(hex_port_follows_port_lookup)
{
	uint16_t port;
	int want = dx_port_lookup("0x50", DX_PROTO_TCP, &port);
	char why[256] = "";
	struct dx_endpoint ep;

	CHECK(want < 0);
	CHECK_INT_EQ(dx_endpoint_parse(&ep, "tcp://h:0x50", why, sizeof(why)),
	             want);
	CHECK(strstr(why, "'0x50'") != NULL);
}

/*
 * A service name is looked up for the scheme's protocol: imap is tcp-only
 * and biff udp-only in the IANA registry, so each is unknown for the other
 * (unless the system's services database says otherwise).
 */
TEST(service_name_follows_the_protocol)
{
	struct dx_endpoint ep;
	char why[256] = "";
	uint16_t port;

	CHECK_INT_EQ(dx_endpoint_parse(&ep, "tcp://[::1]:imap", NULL, 0), 0);
	CHECK_INT_EQ(ep.port, 143);
	CHECK_INT_EQ(dx_endpoint_parse(&ep, "udp://[::1]:biff", NULL, 0), 0);
	CHECK_INT_EQ(ep.port, 512);
	if (dx_port_lookup("imap", DX_PROTO_UDP, &port) == -DX_ESERVICE) {
		CHECK_INT_EQ(dx_endpoint_parse(&ep, "udp://[::1]:imap", why,
		                               sizeof(why)),
		             -DX_ESERVICE);
		CHECK(strstr(why, "unknown service name 'imap' for udp") !=
		      NULL);
	}
	if (dx_port_lookup("biff", DX_PROTO_TCP, &port) == -DX_ESERVICE) {
		CHECK_INT_EQ(dx_endpoint_parse(&ep, "tcp://[::1]:biff", why,
		                               sizeof(why)),
		             -DX_ESERVICE);
		CHECK(strstr(why, "'biff' for tcp") != NULL);
	}
}

TEST(parse_without_why_buffer)
{
	struct dx_endpoint ep;
	char why[4] = "xyz";

	CHECK_INT_EQ(dx_endpoint_parse(&ep, "tcp://x:65536", NULL, 0),
	             -DX_EPORTRANGE);
	CHECK_INT_EQ(dx_endpoint_parse(&ep, "tcp://x:65536", why, 0),
	             -DX_EPORTRANGE);
	CHECK_STR_EQ(why, "xyz");
	CHECK_INT_EQ(dx_endpoint_parse(&ep, "tcp://x:65536", why, sizeof(why)),
	             -DX_EPORTRANGE);
	CHECK_STR_EQ(why, "por");
	CHECK_INT_EQ(dx_endpoint_parse(&ep, NULL, NULL, 0), -DX_ESYNTAX);
}

TEST(format_needs_room)
{
	struct dx_endpoint ep;
	char buf[32];

	CHECK_INT_EQ(dx_endpoint_parse(&ep, "tcp://[::1]:7", NULL, 0), 0);
	CHECK_INT_EQ(dx_endpoint_format(&ep, buf, 14), 13);
	CHECK_INT_EQ(dx_endpoint_format(&ep, buf, 13), -ENOSPC);
	CHECK_STR_EQ(buf, "");
	CHECK_INT_EQ(dx_endpoint_format(&ep, NULL, 0), -ENOSPC);
	ep.scheme = (enum dx_scheme)0;
	CHECK_INT_EQ(dx_endpoint_format(&ep, buf, sizeof(buf)), -EINVAL);
}

TEST(schemes)
{
	CHECK_INT_EQ(dx_scheme_socktype(DX_SCHEME_TCP), SOCK_STREAM);
	CHECK_INT_EQ(dx_scheme_socktype(DX_SCHEME_UDP), SOCK_DGRAM);
	CHECK_INT_EQ(dx_scheme_socktype(DX_SCHEME_UNIX), SOCK_STREAM);
	CHECK_INT_EQ(dx_scheme_socktype(DX_SCHEME_UNIXGRAM), SOCK_DGRAM);
	CHECK_INT_EQ(dx_scheme_socktype((enum dx_scheme)0), -EINVAL);
	CHECK_STR_EQ(dx_scheme_name(DX_SCHEME_TCP), "tcp");
	CHECK_STR_EQ(dx_scheme_name(DX_SCHEME_UDP), "udp");
	CHECK_STR_EQ(dx_scheme_name(DX_SCHEME_UNIX), "unix");
	CHECK_STR_EQ(dx_scheme_name(DX_SCHEME_UNIXGRAM), "unixgram");
	CHECK(dx_scheme_name((enum dx_scheme)99) == NULL);
}

/* ------------------------------------------------------------------------
 * Socket addresses
 * ------------------------------------------------------------------------ */

static struct dx_addr
make_in(const char *ip, uint16_t port)
{
	struct dx_addr a;

	memset(&a, 0, sizeof(a));
	a.u.in.sin_family = AF_INET;
	a.u.in.sin_port = htons(port);
	inet_pton(AF_INET, ip, &a.u.in.sin_addr);
	a.len = sizeof(a.u.in);
	return a;
}

static struct dx_addr
make_in6(const char *ip, uint16_t port, uint32_t scope)
{
	struct dx_addr a;

	memset(&a, 0, sizeof(a));
	a.u.in6.sin6_family = AF_INET6;
	a.u.in6.sin6_port = htons(port);
	a.u.in6.sin6_scope_id = scope;
	inet_pton(AF_INET6, ip, &a.u.in6.sin6_addr);
	a.len = sizeof(a.u.in6);
	return a;
}

/* A unix address of N bytes of NAME (a leading NUL for abstract). */
static struct dx_addr
make_un(const char *name, size_t n, size_t extra)
{
	struct dx_addr a;

	memset(&a, 0, sizeof(a));
	a.u.un.sun_family = AF_UNIX;
	memcpy(a.u.un.sun_path, name, n);
	a.len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + extra);
	return a;
}

static void
check_format(const struct dx_addr *a, const char *want, const char *host)
{
	char buf[DX_ADDRSTRLEN];

	CHECK_INT_EQ(dx_addr_format(a, buf, sizeof(buf)), strlen(want));
	CHECK_STR_EQ(buf, want);
	CHECK_INT_EQ(dx_addr_format_host(a, buf, sizeof(buf)), strlen(host));
	CHECK_STR_EQ(buf, host);
}

TEST(addr_format_each_family)
{
	struct dx_addr a = make_in("127.0.0.1", 7);
	unsigned lo = if_nametoindex("lo");
	char big[SUN_PATH_SIZE + 1];

	check_format(&a, "127.0.0.1:7", "127.0.0.1");
	a = make_in6("::1", 7, 0);
	check_format(&a, "[::1]:7", "::1");
	a = make_in6("::ffff:127.0.0.1", 65535, 0);
	check_format(&a, "127.0.0.1:65535", "127.0.0.1");
	a = make_in6("fe80::1", 7, 4000000000u);
	check_format(&a, "[fe80::1%4000000000]:7", "fe80::1%4000000000");
	if (lo != 0) {
		a = make_in6("fe80::1", 7, lo);
		check_format(&a, "[fe80::1%lo]:7", "fe80::1%lo");
	}
	a = make_un("/run/x.sock", 11, 1);
	check_format(&a, "/run/x.sock", "/run/x.sock");
	a = make_un("/run/x.sock", 11, 0); /* no NUL counted */
	check_format(&a, "/run/x.sock", "/run/x.sock");
	a = make_un("\0name", 5, 0);
	check_format(&a, "@name", "@name");
	a = make_un("\0a\0b", 4, 0);
	check_format(&a, "@a@b", "@a@b");
	memset(big, 'p', sizeof(big));
	big[SUN_PATH_SIZE] = '\0';
	a = make_un(big, SUN_PATH_SIZE, 0); /* sun_path full, no NUL */
	check_format(&a, big, big);
}

TEST(addr_format_unnamed_unknown_and_short)
{
	struct dx_addr a;
	char buf[8];

	memset(&a, 0, sizeof(a));
	a.u.un.sun_family = AF_UNIX;
	a.len = sizeof(sa_family_t);
	check_format(&a, "(unnamed)", "(unnamed)");
	a.len = 0;
	check_format(&a, "(unnamed)", "(unnamed)");
	a.u.sa.sa_family = AF_APPLETALK;
	a.len = 16;
	CHECK_INT_EQ(dx_addr_format(&a, buf, sizeof(buf)), -EAFNOSUPPORT);
	CHECK_INT_EQ(dx_addr_format_host(&a, buf, sizeof(buf)), -EAFNOSUPPORT);
	a = make_in("127.0.0.1", 7);
	CHECK_INT_EQ(dx_addr_format(&a, buf, 5), 4);
	CHECK_STR_EQ(buf, "127.");
	CHECK_INT_EQ(dx_addr_format(&a, buf, sizeof(buf)), 7);
	CHECK_STR_EQ(buf, "127.0.0");
	buf[0] = 'x';
	CHECK_INT_EQ(dx_addr_format(&a, buf, 0), 0);
	CHECK(buf[0] == 'x');
}

TEST(addr_port)
{
	struct dx_addr a = make_in("127.0.0.1", 65535);

	CHECK_INT_EQ(dx_addr_port(&a), 65535);
	a = make_in6("::1", 7, 0);
	CHECK_INT_EQ(dx_addr_port(&a), 7);
	a = make_un("/x", 2, 1);
	CHECK_INT_EQ(dx_addr_port(&a), 0);
}

static int
same_bytes(const struct dx_addr *a, const struct dx_addr *b)
{
	return a->len == b->len && a->dualstack == b->dualstack &&
	       memcmp(&a->u.ss, &b->u.ss, sizeof(a->u.ss)) == 0;
}

TEST(addr_unmap)
{
	struct dx_addr a = make_in6("::ffff:127.0.0.2", 4242, 0);
	struct dx_addr b = make_in("127.0.0.2", 4242);
	struct dx_addr c = make_in6("::1", 7, 0), d = c;

	a.dualstack = 1;
	CHECK(!dx_addr_equal(&a, &b));
	dx_addr_unmap(&a);
	CHECK_INT_EQ(a.u.sa.sa_family, AF_INET);
	CHECK_INT_EQ(a.len, sizeof(struct sockaddr_in));
	CHECK_INT_EQ(dx_addr_port(&a), 4242);
	CHECK_INT_EQ(a.dualstack, 0);
	CHECK(memcmp(&a.u.in, &b.u.in, sizeof(b.u.in)) == 0);
	CHECK(dx_addr_equal(&a, &b));
	dx_addr_unmap(&c); /* not mapped: unchanged */
	CHECK(same_bytes(&c, &d));
	d = b;
	dx_addr_unmap(&b); /* IPv4 already: unchanged */
	CHECK(same_bytes(&b, &d));
	c = make_in6("::127.0.0.2", 4242, 0); /* v4-compatible, not mapped */
	dx_addr_unmap(&c);
	CHECK_INT_EQ(c.u.sa.sa_family, AF_INET6);
}

TEST(addr_equal)
{
	struct dx_addr a = make_in("127.0.0.1", 7), b = a;
	struct dx_addr u1 = make_un("/x", 2, 1), u2 = make_un("/x", 2, 0);
	struct dx_addr ab = make_un("\0x", 2, 0), ab2 = make_un("\0x\0", 3, 0);
	struct dx_addr none;

	CHECK(dx_addr_equal(&a, &b));
	b.u.in.sin_zero[0] = 1; /* padding is not the address */
	CHECK(dx_addr_equal(&a, &b));
	b = make_in("127.0.0.1", 8);
	CHECK(!dx_addr_equal(&a, &b));
	b = make_in("127.0.0.2", 7);
	CHECK(!dx_addr_equal(&a, &b));
	b = make_in6("::ffff:127.0.0.1", 7, 0);
	CHECK(!dx_addr_equal(&a, &b));
	a = make_in6("fe80::1", 7, 1);
	b = make_in6("fe80::1", 7, 1);
	CHECK(dx_addr_equal(&a, &b));
	b.u.in6.sin6_scope_id = 2;
	CHECK(!dx_addr_equal(&a, &b));
	b = make_in6("fe80::2", 7, 1);
	CHECK(!dx_addr_equal(&a, &b));
	CHECK(dx_addr_equal(&u1, &u2)); /* with and without the NUL */
	CHECK(!dx_addr_equal(&u1, &ab));
	CHECK(!dx_addr_equal(&ab, &ab2)); /* abstract names count NULs */
	CHECK(dx_addr_equal(&ab, &ab));
	memset(&none, 0, sizeof(none));
	none.u.un.sun_family = AF_UNIX;
	none.len = sizeof(sa_family_t);
	CHECK(dx_addr_equal(&none, &none));
	CHECK(!dx_addr_equal(&none, &u1));
	CHECK(!dx_addr_equal(&u1, &none));
}

/* ------------------------------------------------------------------------
 * Resolution
 * ------------------------------------------------------------------------ */

static int
resolve(const char *text, unsigned flags, struct dx_addr *out, size_t max)
{
	struct dx_endpoint ep;
	char why[256] = "";
	int rc;

	memset(out, 0, max * sizeof(*out));
	rc = dx_endpoint_parse(&ep, text, why, sizeof(why));
	if (rc < 0) {
		CHECK_FAIL_("parse '%s': %s", text, why);
		return rc;
	}
	return dx_endpoint_resolve(&ep, flags, out, max);
}

static int
is_loopback(const struct dx_addr *a)
{
	if (a->u.sa.sa_family == AF_INET)
		return (ntohl(a->u.in.sin_addr.s_addr) >> 24) == 127;
	return a->u.sa.sa_family == AF_INET6 &&
	       IN6_IS_ADDR_LOOPBACK(&a->u.in6.sin6_addr);
}

TEST(resolve_literals)
{
	struct dx_addr out[4];
	char buf[DX_ADDRSTRLEN];

	CHECK_INT_EQ(resolve("tcp://127.0.0.1:7", 0, out, 4), 1);
	CHECK_INT_EQ(out[0].u.sa.sa_family, AF_INET);
	CHECK_INT_EQ(out[0].len, sizeof(struct sockaddr_in));
	CHECK_INT_EQ(out[0].dualstack, 0);
	dx_addr_format(&out[0], buf, sizeof(buf));
	CHECK_STR_EQ(buf, "127.0.0.1:7");
	CHECK_INT_EQ(resolve("udp://[::1]:65535", DX_RESOLVE_NUMERIC, out, 4),
	             1);
	CHECK_INT_EQ(out[0].u.sa.sa_family, AF_INET6);
	CHECK_INT_EQ(out[0].len, sizeof(struct sockaddr_in6));
	dx_addr_format(&out[0], buf, sizeof(buf));
	CHECK_STR_EQ(buf, "[::1]:65535");
	CHECK_INT_EQ(resolve("tcp://127.0.0.1:7", DX_RESOLVE_PASSIVE, out, 1),
	             1);
	dx_addr_format(&out[0], buf, sizeof(buf));
	CHECK_STR_EQ(buf, "127.0.0.1:7");
}

TEST(resolve_zone)
{
	struct dx_addr out[2];
	char buf[DX_ADDRSTRLEN];
	unsigned lo = if_nametoindex("lo");

	if (lo == 0)
		return;
	CHECK_INT_EQ(resolve("tcp://[fe80::1%lo]:7", 0, out, 2), 1);
	CHECK_INT_EQ(out[0].u.in6.sin6_scope_id, lo);
	dx_addr_format(&out[0], buf, sizeof(buf));
	CHECK_STR_EQ(buf, "[fe80::1%lo]:7");
}

TEST(resolve_localhost)
{
	struct dx_addr out[8];
	int n = resolve("tcp://localhost:7", 0, out, 8);

	CHECK(n >= 1);
	for (int i = 0; i < n; i++) {
		CHECK(is_loopback(&out[i]));
		CHECK_INT_EQ(dx_addr_port(&out[i]), 7);
		for (int j = 0; j < i; j++)
			CHECK(!dx_addr_equal(&out[i], &out[j]));
	}
	CHECK_INT_EQ(resolve("tcp://localhost:7", 0, out, 1), 1);
	CHECK_INT_EQ(resolve("tcp://localhost:7", DX_RESOLVE_NUMERIC, out, 8),
	             dx__eai_error(EAI_NONAME));
}

/* Without DX_RESOLVE_PASSIVE an empty host is the loopback. */
TEST(resolve_empty_host_active)
{
	struct dx_addr out[8];
	int n = resolve("udp://:9", 0, out, 8);

	CHECK(n >= 1);
	for (int i = 0; i < n; i++) {
		CHECK(is_loopback(&out[i]));
		CHECK_INT_EQ(dx_addr_port(&out[i]), 9);
	}
}

TEST(resolve_passive_wildcard)
{
	struct dx_addr out[4];
	char buf[DX_ADDRSTRLEN];
	int fd = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (fd >= 0)
		close(fd);
	CHECK_INT_EQ(resolve("tcp://:8080", DX_RESOLVE_PASSIVE, out, 4), 1);
	dx_addr_format(&out[0], buf, sizeof(buf));
	if (fd >= 0) {
		CHECK_INT_EQ(out[0].u.sa.sa_family, AF_INET6);
		CHECK_INT_EQ(out[0].dualstack, 1);
		CHECK_INT_EQ(out[0].len, sizeof(struct sockaddr_in6));
		CHECK_STR_EQ(buf, "[::]:8080");
	} else {
		CHECK_INT_EQ(out[0].u.sa.sa_family, AF_INET);
		CHECK_INT_EQ(out[0].dualstack, 0);
		CHECK_STR_EQ(buf, "0.0.0.0:8080");
	}
}

TEST(resolve_unix_lengths)
{
	size_t base = offsetof(struct sockaddr_un, sun_path);
	struct dx_addr out[2];
	char buf[DX_ADDRSTRLEN];

	CHECK_INT_EQ(resolve("unix:///run/x.sock", 0, out, 2), 1);
	CHECK_INT_EQ(out[0].u.sa.sa_family, AF_UNIX);
	CHECK_INT_EQ(out[0].len, base + 12);
	dx_addr_format(&out[0], buf, sizeof(buf));
	CHECK_STR_EQ(buf, "/run/x.sock");
	CHECK_INT_EQ(resolve("unixgram://@name", 0, out, 2), 1);
	CHECK_INT_EQ(out[0].len, base + 5);
	CHECK(memcmp(out[0].u.un.sun_path, "\0name", 5) == 0);
	dx_addr_format(&out[0], buf, sizeof(buf));
	CHECK_STR_EQ(buf, "@name");
	CHECK_INT_EQ(resolve("unix://" PATH107, 0, out, 2), 1);
	CHECK_INT_EQ(out[0].len, sizeof(struct sockaddr_un));
}

TEST(resolve_rejects_bad_arguments)
{
	struct dx_endpoint ep;
	struct dx_addr out[1];

	CHECK_INT_EQ(dx_endpoint_parse(&ep, "tcp://127.0.0.1:7", NULL, 0), 0);
	CHECK_INT_EQ(dx_endpoint_resolve(&ep, 0, out, 0), -EINVAL);
	CHECK_INT_EQ(dx_endpoint_resolve(&ep, 0, NULL, 1), -EINVAL);
	ep.scheme = (enum dx_scheme)0;
	CHECK_INT_EQ(dx_endpoint_resolve(&ep, 0, out, 1), -EINVAL);
	CHECK_INT_EQ(dx_endpoint_parse(&ep, "unix://x", NULL, 0), 0);
	ep.path[0] = '\0';
	CHECK_INT_EQ(dx_endpoint_resolve(&ep, 0, out, 1), -EINVAL);
}

/*
 * What resolve gives, bound for real, is what the kernel reports back:
 * the lengths are right and dx_addr_equal() agrees with getsockname().
 */
static void
check_bind_roundtrip(const char *text, int type)
{
	struct dx_addr want, got;
	int fd = -1;

	if (resolve(text, DX_RESOLVE_PASSIVE, &want, 1) != 1)
		goto out;
	fd = socket(want.u.sa.sa_family, type | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, &want.u.sa, want.len) < 0) {
		CHECK_FAIL_("bind %s: %s", text, strerror(errno));
		goto out;
	}
	memset(&got, 0, sizeof(got));
	got.len = sizeof(got.u);
	CHECK(getsockname(fd, &got.u.sa, &got.len) == 0);
	CHECK_INT_EQ(got.len, want.len);
	CHECK(dx_addr_equal(&want, &got));
out:
	if (fd >= 0)
		close(fd);
}

TEST(resolved_addresses_bind)
{
	char text[128];
	struct dx_addr a;
	char buf[DX_ADDRSTRLEN];
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	(void)snprintf(text, sizeof(text), "unix://@duplex-test-%ld",
	               (long)getpid());
	check_bind_roundtrip(text, SOCK_STREAM);
	(void)snprintf(text, sizeof(text),
	               "unixgram:///tmp/duplex-test-%ld.sock", (long)getpid());
	(void)unlink(text + strlen("unixgram://")); /* a stale one */
	check_bind_roundtrip(text, SOCK_DGRAM);
	(void)unlink(text + strlen("unixgram://"));
	/* An ephemeral port on 127.0.0.1, read back and formatted. */
	CHECK(resolve("tcp://127.0.0.1:0", 0, &a, 1) == 1);
	CHECK(fd >= 0 && bind(fd, &a.u.sa, a.len) == 0);
	a.len = sizeof(a.u);
	CHECK(getsockname(fd, &a.u.sa, &a.len) == 0);
	CHECK(dx_addr_port(&a) != 0);
	(void)snprintf(text, sizeof(text), "127.0.0.1:%u",
	               (unsigned)dx_addr_port(&a));
	dx_addr_format(&a, buf, sizeof(buf));
	CHECK_STR_EQ(buf, text);
	if (fd >= 0)
		close(fd);
}

int
main(void)
{
	RUN(valid_forms_parse_and_round_trip);
	RUN(bad_forms_fail_and_name_the_part);
	RUN(bad_ports_follow_port_parse);
	RUN(hex_port_follows_port_lookup);
	RUN(service_name_follows_the_protocol);
	RUN(parse_without_why_buffer);
	RUN(format_needs_room);
	RUN(schemes);
	RUN(addr_format_each_family);
	RUN(addr_format_unnamed_unknown_and_short);
	RUN(addr_port);
	RUN(addr_unmap);
	RUN(addr_equal);
	RUN(resolve_literals);
	RUN(resolve_zone);
	RUN(resolve_localhost);
	RUN(resolve_empty_host_active);
	RUN(resolve_passive_wildcard);
	RUN(resolve_unix_lengths);
	RUN(resolve_rejects_bad_arguments);
	RUN(resolved_addresses_bind);
	CHECK_DONE();
}
