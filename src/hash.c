/* SPDX-License-Identifier: MIT */
/*
 * hash.c - SipHash-2-4 (Aumasson and Bernstein, 2012), the keyed hash of
 * the tables whose keys a peer chooses: the per-source connection counts
 * and the per-source reply budget. With a plain hash a client that owns
 * many addresses (an IPv6 /48 holds 65,536 /64s) or a sender that spoofs
 * them could pick keys that all land in one place: long probe chains on
 * every accept, or a reply budget evicted on purpose so that a victim's
 * bucket starts full again. Keyed with 128 random bits per process, where
 * a key lands cannot be predicted from outside. Written from the paper's
 * description; checked against its published vectors (tests/unit).
 */
#include "internal.h"

#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

static uint64_t
rotl(uint64_t x, int b)
{
	return (x << b) | (x >> (64 - b));
}

/* One SipRound over the state V. */
static void
sipround(uint64_t v[4])
{
	v[0] += v[1];
	v[1] = rotl(v[1], 13) ^ v[0];
	v[0] = rotl(v[0], 32);
	v[2] += v[3];
	v[3] = rotl(v[3], 16) ^ v[2];
	v[0] += v[3];
	v[3] = rotl(v[3], 21) ^ v[0];
	v[2] += v[1];
	v[1] = rotl(v[1], 17) ^ v[2];
	v[2] = rotl(v[2], 32);
}

/* The 8 bytes at P as a little-endian word. */
static uint64_t
load_le64(const uint8_t *p)
{
	uint64_t w = 0;

	for (int i = 7; i >= 0; i--)
		w = (w << 8) | p[i];
	return w;
}

/* Absorbs one message word M: two compression rounds. */
static void
absorb(uint64_t v[4], uint64_t m)
{
	v[3] ^= m;
	sipround(v);
	sipround(v);
	v[0] ^= m;
}

uint64_t
dx__siphash(const struct dx_hash_key *k, const void *data, size_t len)
{
	const uint8_t *p = data;
	uint64_t v[4] = {k->k[0] ^ 0x736f6d6570736575ULL,
	                 k->k[1] ^ 0x646f72616e646f6dULL,
	                 k->k[0] ^ 0x6c7967656e657261ULL,
	                 k->k[1] ^ 0x7465646279746573ULL};
	uint64_t last = (uint64_t)len << 56;
	size_t whole = len - len % 8;

	for (size_t i = 0; i < whole; i += 8)
		absorb(v, load_le64(p + i));
	for (size_t i = whole; i < len; i++)
		last |= (uint64_t)p[i] << (8 * (i - whole));
	absorb(v, last);
	v[2] ^= 0xff;
	for (int i = 0; i < 4; i++)
		sipround(v);
	return v[0] ^ v[1] ^ v[2] ^ v[3];
}

void
dx__hash_key_new(struct dx_hash_key *k)
{
	struct timespec ts;

	if (getrandom(k->k, sizeof(k->k), GRND_NONBLOCK) ==
	    (ssize_t)sizeof(k->k))
		return;
	/* No entropy yet (early boot) or no getrandom: weaker, never none.
	 * The clock's nanoseconds and the process id are not secret, but
	 * still differ between runs and hosts. */
	clock_gettime(CLOCK_REALTIME, &ts);
	k->k[0] = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^
	          (uint64_t)(uintptr_t)k;
	k->k[1] = ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)&ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	k->k[1] ^= (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ULL;
}
