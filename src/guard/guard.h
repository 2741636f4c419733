/* SPDX-License-Identifier: MIT */
/*
 * guard.h - the datagram guard against reflection and amplification: which
 * sources never get a reply (reflect.c), and a per-source reply budget
 * (budget.c). See docs/guard.md for the reasons behind each rule.
 */
#ifndef DX_GUARD_H
#define DX_GUARD_H

#include "internal.h"

#include <stdint.h>

/* Why a datagram got no reply; each is counted. */
enum dx_drop {
	DX_DROP_SRC_PORT,   /* source port < 1024 or 2049 (NFS) */
	DX_DROP_OWN_PORT,   /* source port is one of our UDP service ports */
	DX_DROP_BAD_SRC,    /* source is 0.0.0.0, broadcast or multicast */
	DX_DROP_BAD_DST,    /* sent to a broadcast or multicast address */
	DX_DROP_BUDGET,     /* the source is over its reply budget */
	DX_DROP_TRUNCATED,  /* larger than the receive buffer */
	DX_DROP_NO_ADDRESS, /* a unixgram sender with no address to reply to */
	DX_DROP_FAILED,     /* the service failed (exec error or timeout) */
	DX_DROP_SEND,       /* the reply could not be sent */
	DX_DROP_COUNT
};

/* "source-port", "own-port", ... for logs and counters. */
const char *dx__drop_name(enum dx_drop reason);

/* The server's own UDP service ports and the host's broadcast addresses. */
struct dx_guard {
	uint16_t own_ports[64];
	size_t n_own;
	struct in_addr bcast[32];
	size_t n_bcast;
};

/* Fills G's broadcast list from the host's interfaces. Returns 0/-errno. */
int dx__guard_load_broadcast(struct dx_guard *g);
/* Adds a UDP port this server serves on. */
void dx__guard_add_port(struct dx_guard *g, uint16_t port);

/*
 * Checks a datagram from PEER that arrived for DST (DST may be NULL when
 * the arrival address is unknown). Returns -1 when it may be answered, or
 * the dx_drop reason it must not be. Unix-domain peers always pass.
 */
int dx__guard_check(const struct dx_guard *g, const struct dx_addr *peer,
                    const struct dx_addr *dst);

/*
 * Per-source reply budget: a token bucket per IPv4 address or IPv6 /64,
 * in datagrams and in bytes per second, with one second of burst. The
 * table has a fixed size; when it is full the least recently seen source
 * of a probe sequence is forgotten, which only ever errs toward a fresh
 * (full) bucket for a new source, never toward an unbounded one.
 */
#define DX_BUDGET_SLOTS 4096

struct dx_budget_slot {
	uint8_t key[16];
	int64_t last_ms;
	double dgrams, bytes;
	uint8_t used;
};

struct dx_budget {
	double dgram_rate, byte_rate; /* per second; 0 = unlimited */
	/* Keyed (hash.c): a spoofing sender cannot pick sources that share
	 * a probe sequence and evict a victim's bucket, which would then
	 * start full again. */
	struct dx_hash_key hkey;
	struct dx_budget_slot slots[DX_BUDGET_SLOTS];
};

/* Sets the rates and empties the table. */
void dx__budget_init(struct dx_budget *b, double dgram_rate, double byte_rate);
/*
 * Takes one datagram from PEER's budget at NOW_MS. Returns 0 when PEER may
 * be answered, -1 when it is over budget. The reply's bytes are charged
 * afterwards with dx__budget_charge(), so a budget may go into debt.
 */
int dx__budget_take(struct dx_budget *b, const struct dx_addr *peer,
                    int64_t now_ms);
void dx__budget_charge(struct dx_budget *b, const struct dx_addr *peer,
                       size_t bytes);

#endif /* DX_GUARD_H */
