/* SPDX-License-Identifier: MIT */
/*
 * fuzz_guard.c - libFuzzer target for the datagram guard, the classifier
 * every UDP request meets before a service runs (S38). The input picks a
 * peer (IPv4, IPv6, IPv4-mapped IPv6 or unix), an arrival address, the
 * server's own ports and broadcast addresses, then a run of requests from
 * four sources against a reply budget. Checked:
 * - the verdict is "answer" or one of the four reflection reasons, and
 *   the same on a second call;
 * - a unix peer is always answered; an IPv4-mapped peer fares exactly as
 *   its IPv4 form;
 * - "answer" only for a source port of 1024 or more, not 2049, not one of
 *   the server's ports or the classic fallback ports, from an address
 *   that is not 0.0.0.0, broadcast or multicast, to one that is neither
 *   broadcast nor multicast;
 * - no source is answered more than its budget allows: in no stretch of
 *   time more than one second's worth plus the rate over the stretch (at
 *   most four sources: the table never has to forget one).
 */
#include "guard/guard.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Reads N bytes from the input, or zeros once it is used up. */
struct input {
	const uint8_t *p;
	size_t left;
};

static void
take(struct input *in, void *out, size_t n)
{
	size_t k = n < in->left ? n : in->left;

	memset(out, 0, n);
	memcpy(out, in->p, k);
	in->p += k;
	in->left -= k;
}

static uint8_t
byte(struct input *in)
{
	uint8_t b;

	take(in, &b, 1);
	return b;
}

static uint16_t
port(struct input *in)
{
	uint8_t b[2];

	take(in, b, 2);
	return (uint16_t)(b[0] << 8 | b[1]);
}

/* An address of kind KIND (0 IPv4, 1 IPv6, 2 IPv4-mapped, 3 unix). */
static struct dx_addr
addr_of(int kind, const uint8_t ip[16], uint16_t p)
{
	struct dx_addr a;

	memset(&a, 0, sizeof(a));
	if (kind == 0) {
		a.u.in.sin_family = AF_INET;
		memcpy(&a.u.in.sin_addr, ip, 4);
		a.u.in.sin_port = htons(p);
		a.len = sizeof(a.u.in);
	} else if (kind == 1 || kind == 2) {
		a.u.in6.sin6_family = AF_INET6;
		if (kind == 2) {
			a.u.in6.sin6_addr.s6_addr[10] = 0xff;
			a.u.in6.sin6_addr.s6_addr[11] = 0xff;
			memcpy(&a.u.in6.sin6_addr.s6_addr[12], ip, 4);
		} else {
			memcpy(&a.u.in6.sin6_addr, ip, 16);
		}
		a.u.in6.sin6_port = htons(p);
		a.len = sizeof(a.u.in6);
	} else {
		a.u.un.sun_family = AF_UNIX;
		a.len = sizeof(sa_family_t);
	}
	return a;
}

/* 1 for an IPv4 address (network order bytes) no reply may go to. */
static int
bad_v4(const struct dx_guard *g, const uint8_t ip[4])
{
	uint32_t h = (uint32_t)ip[0] << 24 | (uint32_t)ip[1] << 16 |
	             (uint32_t)ip[2] << 8 | ip[3];

	if (h == 0 || h == 0xffffffffu || (h >> 28) == 0xe)
		return 1;
	for (size_t i = 0; i < g->n_bcast; i++)
		if (memcmp(&g->bcast[i], ip, 4) == 0)
			return 1;
	return 0;
}

static int
bad_addr(const struct dx_guard *g, int kind, const uint8_t ip[16])
{
	static const uint8_t zero[16];

	if (kind == 0 || kind == 2)
		return bad_v4(g, ip);
	if (kind == 1)
		return ip[0] == 0xff || memcmp(ip, zero, 16) == 0 ||
		       (memcmp(ip, zero, 10) == 0 && ip[10] == 0xff &&
		        ip[11] == 0xff && bad_v4(g, ip + 12));
	return 0;
}

static int
own_port(const struct dx_guard *g, uint16_t p)
{
	for (size_t i = 0; i < g->n_own; i++)
		if (g->own_ports[i] == p)
			return 1;
	return p >= 10007 && p <= 10037 &&
	       (p == 10007 || p == 10009 || p == 10013 || p == 10017 ||
	        p == 10019 || p == 10037);
}

static void
check_verdict(struct input *in)
{
	struct dx_guard g;
	uint8_t flags = byte(in), peer_ip[16], dst_ip[16];
	int pk = flags & 3, dk = (flags >> 2) & 3, has_dst = (flags >> 4) & 1;
	uint16_t pp = port(in), dp = port(in);
	struct dx_addr peer, dst, v4peer, v4dst;
	int v, want_ok;

	memset(&g, 0, sizeof(g));
	take(in, peer_ip, sizeof(peer_ip));
	take(in, dst_ip, sizeof(dst_ip));
	for (size_t n = byte(in) % 8, i = 0; i < n; i++)
		dx__guard_add_port(&g, port(in));
	for (size_t n = byte(in) % 4, i = 0; i < n; i++)
		take(in, &g.bcast[g.n_bcast++], 4);
	dk = dk == 3 ? 0 : dk; /* a unix arrival address means none */
	peer = addr_of(pk, peer_ip, pp);
	dst = addr_of(dk, dst_ip, dp);
	v = dx__guard_check(&g, &peer, has_dst ? &dst : NULL);
	if (v != -1 && v != DX_DROP_SRC_PORT && v != DX_DROP_OWN_PORT &&
	    v != DX_DROP_BAD_SRC && v != DX_DROP_BAD_DST)
		abort();
	if (v != dx__guard_check(&g, &peer, has_dst ? &dst : NULL))
		abort();
	if (pk == 3) {
		if (v != -1)
			abort();
		return;
	}
	want_ok = pp >= 1024 && pp != 2049 && !own_port(&g, pp) &&
	          !bad_addr(&g, pk, peer_ip) &&
	          !(has_dst && bad_addr(&g, dk, dst_ip));
	if ((v == -1) != want_ok)
		abort();
	if (pk == 2 || dk == 2) { /* mapped: as the IPv4 forms */
		v4peer = pk == 2 ? addr_of(0, peer_ip, pp) : peer;
		v4dst = dk == 2 ? addr_of(0, dst_ip, dp) : dst;
		if (v != dx__guard_check(&g, &v4peer, has_dst ? &v4dst : NULL))
			abort();
	}
}

/* The last answers of one source, for the window check below. */
#define KEPT 64

struct answers {
	int64_t at[KEPT]; /* a ring: answer k at at[k % KEPT] */
	long long n;
};

/*
 * Records an answer at NOW and checks every window that starts at one of
 * the kept answers and ends now: a bucket holds at most one second's
 * worth (RATE) and refills at RATE a second, so however long the source
 * was quiet before, no window of T ms holds more than RATE + RATE * T /
 * 1000 answers.
 */
static void
answered(struct answers *a, double rate, int64_t now)
{
	long long oldest;

	a->at[a->n % KEPT] = now;
	a->n++;
	oldest = a->n > KEPT ? a->n - KEPT : 0;
	for (long long k = oldest; k < a->n; k++) {
		int64_t since = a->at[k % KEPT];
		double count = (double)(a->n - k);
		if (count > rate + rate * (double)(now - since) / 1000.0 + 1e-6)
			abort();
	}
}

/* Requests from four sources against a budget of RATE a second. */
static void
check_budget(struct input *in)
{
	static struct dx_budget b; /* large: not on the stack */
	static struct answers ans[4];
	double rate = 1 + byte(in) % 50;
	struct dx_addr src[4];
	int64_t now = 1000000;
	uint8_t ip[16];

	dx__budget_init(&b, rate, 0);
	memset(ans, 0, sizeof(ans));
	for (int i = 0; i < 4; i++) {
		take(in, ip, sizeof(ip));
		ip[0] = (uint8_t)i; /* four distinct sources, whatever else */
		src[i] = addr_of(i % 2, ip, 5000);
	}
	for (int n = 0; n < 2048 && in->left > 0; n++) {
		uint8_t op = byte(in);
		int i = op & 3;

		now += (op >> 2) * (op >> 2); /* 0 ms to about 4 s */
		if (dx__budget_take(&b, &src[i], now) == 0)
			answered(&ans[i], rate, now);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = {data, size};

	check_verdict(&in);
	check_budget(&in);
	return 0;
}
