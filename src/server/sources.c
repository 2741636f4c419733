/* SPDX-License-Identifier: MIT */
/*
 * sources.c - live connections per source (an IPv4 address or an IPv6
 * /64, as one host usually owns a whole /64), for --per-source: an open
 * addressing table with backward-shift deletion, sized once at start.
 */
#include "server/server.h"
#include "server/conn.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

/* See server.h: a worker that died holding the lock left it consistent. */
void
dx__sources_lock(struct dx_sources *s)
{
	if (s->lock != NULL && pthread_mutex_lock(s->lock) == EOWNERDEAD)
		pthread_mutex_consistent(s->lock);
}

void
dx__sources_unlock(struct dx_sources *s)
{
	if (s->lock != NULL)
		pthread_mutex_unlock(s->lock);
}

int
dx__sources_alloc(struct dx_sources *s, size_t cap)
{
	size_t len = cap * sizeof(*s->slots);
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
	               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (p == MAP_FAILED)
		return dx__neg_errno();
	(void)madvise(p, len, MADV_WIPEONFORK); /* Linux 4.14; else shared */
	s->slots = p;
	s->cap = cap;
	s->total = 0;
	dx__hash_key_new(&s->hkey);
	return 0;
}

void
dx__sources_free(struct dx_sources *s)
{
	if (s->slots != NULL)
		munmap(s->slots, s->cap * sizeof(*s->slots));
	s->slots = NULL;
	s->cap = 0;
}

void
dx__source_key(const struct dx_addr *peer, uint8_t key[16])
{
	memset(key, 0, 16);
	if (peer->u.sa.sa_family == AF_INET) {
		memcpy(key, &peer->u.in.sin_addr, 4);
	} else if (peer->u.sa.sa_family == AF_INET6) {
		memcpy(key, &peer->u.in6.sin6_addr, 8);
		key[15] = 6;
	} else {
		key[15] = 1; /* every unix-socket peer is one source */
	}
}

void
dx__conn_source_key(const struct dx_conn *c, uint8_t key[16])
{
	struct dx_addr peer;

	dx__conn_peer(c, &peer);
	dx__source_key(&peer, key);
}

/* Keyed (hash.c): a client owning many addresses cannot pick ones that
 * share a home and make every lookup walk one long run of slots. */
static size_t
home(const struct dx_sources *s, const uint8_t key[16])
{
	return (size_t)(dx__siphash(&s->hkey, key, 16) % s->cap);
}

/* The slot holding KEY, or the empty slot where it would go. */
static struct dx_source_slot *
lookup(const struct dx_sources *s, const uint8_t key[16])
{
	size_t i = home(s, key);

	for (size_t n = 0; n < s->cap; n++, i = (i + 1) % s->cap) {
		struct dx_source_slot *slot = &s->slots[i];
		if (slot->count == 0 || memcmp(slot->key, key, 16) == 0)
			return slot;
	}
	return NULL;
}

uint32_t
dx__sources_count(const struct dx_sources *s, const uint8_t key[16])
{
	const struct dx_source_slot *slot = s->cap ? lookup(s, key) : NULL;

	return slot ? slot->count : 0;
}

int
dx__sources_add(struct dx_sources *s, const uint8_t key[16])
{
	struct dx_source_slot *slot = s->cap ? lookup(s, key) : NULL;

	if (slot == NULL)
		return -ENOMEM;
	memcpy(slot->key, key, 16);
	return (int)++slot->count;
}

void
dx__sources_remove(struct dx_sources *s, const uint8_t key[16])
{
	dx__sources_sub(s, key, 1);
}

void
dx__sources_sub(struct dx_sources *s, const uint8_t key[16], uint32_t n)
{
	struct dx_source_slot *slot = s->cap ? lookup(s, key) : NULL;
	size_t i, j;

	if (slot == NULL || slot->count == 0)
		return;
	slot->count = slot->count > n ? slot->count - n : 0;
	if (slot->count > 0)
		return;
	/* Shift later members of the probe run back over the hole. */
	i = (size_t)(slot - s->slots);
	for (j = (i + 1) % s->cap; s->slots[j].count; j = (j + 1) % s->cap) {
		size_t h = home(s, s->slots[j].key);
		if ((j > i && (h <= i || h > j)) ||
		    (j < i && h <= i && h > j)) {
			s->slots[i] = s->slots[j];
			s->slots[j].count = 0;
			i = j;
		}
	}
}

int
dx__sources_admit(struct dx_sources *s, const uint8_t key[16],
                  uint32_t per_source, size_t max_total)
{
	int rc = DX_ADMIT_OK;

	dx__sources_lock(s);
	if (max_total && s->total >= max_total)
		rc = DX_ADMIT_MAX;
	else if ((per_source && dx__sources_count(s, key) >= per_source) ||
	         dx__sources_add(s, key) < 0) /* a full table refuses too */
		rc = DX_ADMIT_PER_SOURCE;
	else
		s->total++;
	dx__sources_unlock(s);
	return rc;
}

void
dx__sources_release(struct dx_sources *s, const uint8_t key[16])
{
	dx__sources_lock(s);
	dx__sources_remove(s, key);
	if (s->total > 0)
		s->total--;
	dx__sources_unlock(s);
}
