/* SPDX-License-Identifier: MIT */
/*
 * budget.c - the per-source reply budget of the amplifying datagram
 * services: token buckets in a fixed-size open-addressing table, keyed by
 * IPv4 address or IPv6 /64 (one host's worth of addresses).
 */
#include "guard/guard.h"

#include <string.h>

#define PROBES 8

/* The bucket key: the IPv4 address, or the first 64 bits of IPv6. */
static void
source_key(const struct dx_addr *peer, uint8_t key[16])
{
	struct dx_addr a = *peer;

	memset(key, 0, 16);
	dx_addr_unmap(&a);
	if (a.u.sa.sa_family == AF_INET)
		memcpy(key, &a.u.in.sin_addr, 4);
	else if (a.u.sa.sa_family == AF_INET6) {
		key[15] = 6;
		memcpy(key, &a.u.in6.sin6_addr, 8);
	}
}

/* The slot for PEER: its own, or a fresh one (full buckets) in its place. */
static struct dx_budget_slot *
find_slot(struct dx_budget *b, const struct dx_addr *peer, int64_t now)
{
	uint8_t key[16];
	uint32_t h;
	struct dx_budget_slot *s, *oldest = NULL;

	source_key(peer, key);
	h = (uint32_t)dx__siphash(&b->hkey, key, 16);
	for (int i = 0; i < PROBES; i++) {
		s = &b->slots[(h + (uint32_t)i) % DX_BUDGET_SLOTS];
		if (s->used && memcmp(s->key, key, 16) == 0)
			return s;
		if (oldest == NULL || !s->used ||
		    (oldest->used && s->last_ms < oldest->last_ms))
			oldest = s;
	}
	memcpy(oldest->key, key, 16);
	oldest->used = 1;
	oldest->last_ms = now;
	oldest->dgrams = b->dgram_rate;
	oldest->bytes = b->byte_rate;
	return oldest;
}

void
dx__budget_init(struct dx_budget *b, double dgram_rate, double byte_rate)
{
	memset(b->slots, 0, sizeof(b->slots));
	b->dgram_rate = dgram_rate;
	b->byte_rate = byte_rate;
	dx__hash_key_new(&b->hkey);
}

/* Refills a bucket for the time since it was last seen, up to one second. */
static void
refill(double *tokens, double rate, double seconds)
{
	*tokens += rate * seconds;
	if (*tokens > rate)
		*tokens = rate;
}

int
dx__budget_take(struct dx_budget *b, const struct dx_addr *peer, int64_t now_ms)
{
	struct dx_budget_slot *s;
	double seconds;

	if (b->dgram_rate <= 0 && b->byte_rate <= 0)
		return 0;
	s = find_slot(b, peer, now_ms);
	seconds = (double)(now_ms - s->last_ms) / 1000.0;
	s->last_ms = now_ms;
	refill(&s->dgrams, b->dgram_rate, seconds);
	refill(&s->bytes, b->byte_rate, seconds);
	if ((b->dgram_rate > 0 && s->dgrams < 1.0) ||
	    (b->byte_rate > 0 && s->bytes <= 0.0))
		return -1;
	s->dgrams -= 1.0;
	return 0;
}

void
dx__budget_charge(struct dx_budget *b, const struct dx_addr *peer, size_t bytes)
{
	if (b->byte_rate <= 0)
		return;
	find_slot(b, peer, dx_now_ms())->bytes -= (double)bytes;
}
