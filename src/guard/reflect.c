/* SPDX-License-Identifier: MIT */
/*
 * reflect.c - the rules that keep a datagram service from being used as a
 * reflector: no reply to privileged source ports (where the other classic
 * services live: the echo <-> chargen loop), to NFS's 2049, to this
 * server's own service ports (two duplex servers pointed at each other),
 * to sources that cannot be real senders (0.0.0.0, broadcast, multicast),
 * or to datagrams sent to a broadcast or multicast address (one request,
 * many replies). OpenBSD inetd's dg_badinput() is the precedent. The
 * classic services' duplex fallback ports (10,000 + the well-known port,
 * where the default table serves when it may not bind below 1024) count
 * as service ports too, so two duplex servers on one host cannot be
 * pointed at each other either.
 */
#include "guard/guard.h"

#include <ifaddrs.h>
#include <net/if.h>
#include <string.h>

static const char *const drop_names[DX_DROP_COUNT] = {
        [DX_DROP_SRC_PORT] = "source-port",
        [DX_DROP_OWN_PORT] = "own-port",
        [DX_DROP_BAD_SRC] = "bad-source",
        [DX_DROP_BAD_DST] = "broadcast-destination",
        [DX_DROP_BUDGET] = "over-budget",
        [DX_DROP_TRUNCATED] = "truncated",
        [DX_DROP_NO_ADDRESS] = "no-reply-address",
        [DX_DROP_FAILED] = "service-failed",
        [DX_DROP_SEND] = "send-failed",
};

const char *
dx__drop_name(enum dx_drop reason)
{
	return reason < DX_DROP_COUNT ? drop_names[reason] : "unknown";
}

int
dx__guard_load_broadcast(struct dx_guard *g)
{
	struct ifaddrs *list, *ifa;

	if (getifaddrs(&list) < 0)
		return dx__neg_errno();
	for (ifa = list; ifa; ifa = ifa->ifa_next) {
		const struct sockaddr *b = ifa->ifa_broadaddr;
		if (!(ifa->ifa_flags & IFF_BROADCAST) || b == NULL ||
		    b->sa_family != AF_INET ||
		    g->n_bcast == DX_ARRAY_LEN(g->bcast))
			continue;
		g->bcast[g->n_bcast++] =
		        ((const struct sockaddr_in *)(const void *)b)->sin_addr;
	}
	freeifaddrs(list);
	return 0;
}

void
dx__guard_add_port(struct dx_guard *g, uint16_t port)
{
	for (size_t i = 0; i < g->n_own; i++)
		if (g->own_ports[i] == port)
			return;
	if (g->n_own < DX_ARRAY_LEN(g->own_ports))
		g->own_ports[g->n_own++] = port;
}

/* 1 for 0.0.0.0, 255.255.255.255, 224.0.0.0/4 and directed broadcasts. */
static int
bad_ipv4(const struct dx_guard *g, struct in_addr a)
{
	uint32_t h = ntohl(a.s_addr);

	if (h == 0 || h == 0xffffffffu || (h >> 28) == 0xe)
		return 1;
	for (size_t i = 0; i < g->n_bcast; i++)
		if (g->bcast[i].s_addr == a.s_addr)
			return 1;
	return 0;
}

/* Like bad_ipv4() for any IP address, v4-mapped IPv6 included. */
static int
bad_ip(const struct dx_guard *g, const struct dx_addr *addr)
{
	struct dx_addr a = *addr;

	dx_addr_unmap(&a);
	if (a.u.sa.sa_family == AF_INET)
		return bad_ipv4(g, a.u.in.sin_addr);
	if (a.u.sa.sa_family == AF_INET6)
		return IN6_IS_ADDR_MULTICAST(&a.u.in6.sin6_addr) ||
		       IN6_IS_ADDR_UNSPECIFIED(&a.u.in6.sin6_addr);
	return 0;
}

/* 1 for a port the default table may serve a classic service on. */
static int
fallback_port(uint16_t port)
{
	static const uint16_t ports[] = {10007, 10009, 10013,
	                                 10017, 10019, 10037};

	for (size_t i = 0; i < DX_ARRAY_LEN(ports); i++)
		if (ports[i] == port)
			return 1;
	return 0;
}

int
dx__guard_check(const struct dx_guard *g, const struct dx_addr *peer,
                const struct dx_addr *dst)
{
	uint16_t port;

	if (peer->u.sa.sa_family == AF_UNIX)
		return -1;
	if (bad_ip(g, peer))
		return DX_DROP_BAD_SRC;
	if (dst != NULL && bad_ip(g, dst))
		return DX_DROP_BAD_DST;
	port = dx_addr_port(peer);
	if (port < 1024 || port == 2049)
		return DX_DROP_SRC_PORT;
	for (size_t i = 0; i < g->n_own; i++)
		if (g->own_ports[i] == port)
			return DX_DROP_OWN_PORT;
	return fallback_port(port) ? DX_DROP_OWN_PORT : -1;
}
