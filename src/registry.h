/* SPDX-License-Identifier: MIT */
/*
 * registry.h - the layout of the built-in IANA service registry, shared by
 * tools/gen_registry.c (which writes registry_table.c at build time) and
 * port.c (which reads it). The table is compact, read-only data without
 * pointers, so it needs no relocation and its pages stay shared:
 *
 *   dx__registry_pool        every name and description once, each
 *                            NUL-terminated; rows hold offsets into it.
 *   dx__registry[]           12-byte rows, sorted by port_lo and then in
 *                            registry (file) order.
 *   dx__registry_name_index  row numbers sorted by strcasecmp() of the
 *                            name and then by row number, for binary search.
 *
 * The public struct dx_service_entry rows that dx_registry_by_port() and
 * dx_registry_by_name() hand out live in dx__registry_entries, which is
 * zero-initialised storage that port.c fills row by row, on first use.
 */
#ifndef DX_REGISTRY_H
#define DX_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include "duplex.h"

/* One registry row: a service name, a port range and a protocol. */
struct dx__registry_row {
	uint32_t name : 24; /* offset of the name in dx__registry_pool */
	uint32_t proto : 8; /* enum dx_proto */
	uint32_t desc;      /* offset of the description ("" if none) */
	uint16_t port_lo;   /* a row may cover a range of ports */
	uint16_t port_hi;
};

extern const char dx__registry_pool[];
extern const struct dx__registry_row dx__registry[];
extern const size_t dx__registry_len;
extern const uint16_t dx__registry_name_index[];
/* The widest range any row covers (port_hi - port_lo). */
extern const uint16_t dx__registry_max_span;
/* dx__registry_len entries, filled by port.c from dx__registry[]. */
extern struct dx_service_entry dx__registry_entries[];

/*
 * Parses the text of /proc/sys/net/ipv4/ip_local_port_range ("32768\t60999"
 * and an optional newline) strictly. Returns 0 or -EINVAL. Internal to
 * port.c; declared here for the unit tests.
 */
int dx__ephemeral_parse(const char *text, uint16_t *lo, uint16_t *hi);

#endif /* DX_REGISTRY_H */
