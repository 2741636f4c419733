/* SPDX-License-Identifier: MIT */
/*
 * test_hash.c - SipHash-2-4 against the published vectors (key 00..0f,
 * message 00..len-1), and fresh keys that differ.
 */
#include "check.h"
#include "internal.h"

TEST(siphash_reference_vectors)
{
	static const struct {
		size_t len;
		uint64_t want;
	} vec[] = {
	        {0, 0x726fdb47dd0e0e31ULL},  {1, 0x74f839c593dc67fdULL},
	        {7, 0xab0200f58b01d137ULL},  {8, 0x93f5f5799a932462ULL},
	        {15, 0xa129ca6149be45e5ULL}, {16, 0x3f2acc7f57c29bdbULL},
	        {63, 0x958a324ceb064572ULL},
	};
	struct dx_hash_key k = {{0x0706050403020100ULL, 0x0f0e0d0c0b0a0908ULL}};
	uint8_t msg[64];

	for (size_t i = 0; i < sizeof(msg); i++)
		msg[i] = (uint8_t)i;
	for (size_t i = 0; i < DX_ARRAY_LEN(vec); i++)
		CHECK(dx__siphash(&k, msg, vec[i].len) == vec[i].want);
}

TEST(fresh_keys_differ)
{
	struct dx_hash_key a, b;
	uint8_t msg[16] = {127, 0, 0, 1};

	dx__hash_key_new(&a);
	dx__hash_key_new(&b);
	CHECK(a.k[0] != b.k[0] || a.k[1] != b.k[1]);
	CHECK(dx__siphash(&a, msg, 16) != dx__siphash(&b, msg, 16));
}

int
main(void)
{
	RUN(siphash_reference_vectors);
	RUN(fresh_keys_differ);
	CHECK_DONE();
}
