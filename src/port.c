/* SPDX-License-Identifier: MIT */
/*
 * port.c - 16-bit port numbers: strict parsing, the IANA ranges (RFC 6335
 * section 6), lookups in the built-in IANA service registry (the table
 * tools/gen_registry.c generates, laid out in registry.h), service names
 * from the system's services database, and the kernel's ephemeral range.
 */
#include "internal.h"
#include "registry.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <pthread.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define EPHEMERAL_PATH "/proc/sys/net/ipv4/ip_local_port_range"

static const char *const proto_names[] = {
        [DX_PROTO_TCP] = "tcp",
        [DX_PROTO_UDP] = "udp",
        [DX_PROTO_SCTP] = "sctp",
        [DX_PROTO_DCCP] = "dccp",
};

/* The IANA ranges, indexed by enum dx_port_class. */
static const struct {
	const char *name;
	uint16_t lo, hi;
} port_classes[] = {
        [DX_PORT_WELL_KNOWN] = {"well-known", 0, 1023},
        [DX_PORT_REGISTERED] = {"registered", 1024, 49151},
        [DX_PORT_DYNAMIC] = {"dynamic/private", 49152, 65535},
};

/* Guards the first fill of each dx__registry_entries row. */
static pthread_mutex_t entries_lock = PTHREAD_MUTEX_INITIALIZER;

const char *
dx_proto_name(enum dx_proto proto)
{
	if ((size_t)proto >= DX_ARRAY_LEN(proto_names))
		return NULL;
	return proto_names[proto];
}

/* Protocol names match in any case ("UDP" is udp), as service names do. */
int
dx_proto_parse(const char *text, enum dx_proto *proto)
{
	for (size_t i = DX_PROTO_TCP; text && i < DX_ARRAY_LEN(proto_names);
	     i++)
		if (strcasecmp(text, proto_names[i]) == 0) {
			*proto = (enum dx_proto)i;
			return 0;
		}
	return -DX_ESYNTAX;
}

/* 1 when S is one or more decimal digits and nothing else. */
static int
all_digits(const char *s)
{
	return *s != '\0' && s[strspn(s, "0123456789")] == '\0';
}

/*
 * A minus sign before digits makes a negative number, which is out of
 * range rather than "not a number": "-1" reads as a port below 0.
 */
int
dx_port_parse(const char *text, uint16_t *port)
{
	unsigned long value = 0;

	if (text == NULL || *text == '\0')
		return -DX_ENOPORT;
	if (text[0] == '-' && all_digits(text + 1) &&
	    text[1 + strspn(text + 1, "0")] != '\0')
		return -DX_EPORTRANGE;
	if (!all_digits(text))
		return -DX_EPORT;
	for (; *text; text++) {
		value = value * 10 + (unsigned long)(*text - '0');
		if (value > 65535)
			return -DX_EPORTRANGE;
	}
	*port = (uint16_t)value;
	return 0;
}

enum dx_port_class
dx_port_class(uint16_t port)
{
	if (port <= port_classes[DX_PORT_WELL_KNOWN].hi)
		return DX_PORT_WELL_KNOWN;
	if (port <= port_classes[DX_PORT_REGISTERED].hi)
		return DX_PORT_REGISTERED;
	return DX_PORT_DYNAMIC;
}

/* NULL for a value outside the enum. */
const char *
dx_port_class_name(enum dx_port_class cls)
{
	if ((size_t)cls >= DX_ARRAY_LEN(port_classes))
		return NULL;
	return port_classes[cls].name;
}

/* A value outside the enum gets the empty range 1-0. */
void
dx_port_class_bounds(enum dx_port_class cls, uint16_t *lo, uint16_t *hi)
{
	if ((size_t)cls >= DX_ARRAY_LEN(port_classes)) {
		*lo = 1;
		*hi = 0;
		return;
	}
	*lo = port_classes[cls].lo;
	*hi = port_classes[cls].hi;
}

/*
 * Stores row I as the Nth result when there is room; returns N + 1. A
 * public row is built from the compact one the first time it is handed
 * out, under a lock, so a lookup touches only the pages it returns.
 */
static size_t
store(const struct dx_service_entry **out, size_t max, size_t n, size_t i)
{
	const struct dx__registry_row *row = &dx__registry[i];
	struct dx_service_entry *e = &dx__registry_entries[i];

	if (n >= max)
		return n + 1;
	pthread_mutex_lock(&entries_lock);
	if (e->name == NULL) {
		e->description = dx__registry_pool + row->desc;
		e->port_lo = row->port_lo;
		e->port_hi = row->port_hi;
		e->proto = (enum dx_proto)row->proto;
		e->name = dx__registry_pool + row->name;
	}
	pthread_mutex_unlock(&entries_lock);
	out[n] = e;
	return n + 1;
}

/* The first row whose port_lo is at least PORT. */
static size_t
first_row_from(unsigned port)
{
	size_t lo = 0, hi = dx__registry_len;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (dx__registry[mid].port_lo < port)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/*
 * Rows are sorted by port_lo, so the rows covering PORT start no earlier
 * than PORT minus the widest span any row has.
 */
size_t
dx_registry_by_port(uint16_t port, enum dx_proto proto,
                    const struct dx_service_entry **out, size_t max)
{
	unsigned from = port > dx__registry_max_span
	                        ? (unsigned)(port - dx__registry_max_span)
	                        : 0;
	size_t n = 0;

	for (size_t i = first_row_from(from);
	     i < dx__registry_len && dx__registry[i].port_lo <= port; i++) {
		const struct dx__registry_row *row = &dx__registry[i];
		if (row->port_hi >= port && (proto == 0 || row->proto == proto))
			n = store(out, max, n, i);
	}
	return n;
}

static const char *
row_name(size_t index_pos)
{
	return dx__registry_pool +
	       dx__registry[dx__registry_name_index[index_pos]].name;
}

/* The first position in the name index whose name is not below NAME. */
static size_t
first_name_from(const char *name)
{
	size_t lo = 0, hi = dx__registry_len;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (strcasecmp(row_name(mid), name) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/*
 * The position in the name index, at I or after it, of the next row named
 * NAME for PROTO (0 = any); dx__registry_len when there is none. Equal
 * names sort by row number, so the rows come in registry order.
 */
static size_t
next_named(const char *name, enum dx_proto proto, size_t i)
{
	for (; i < dx__registry_len && strcasecmp(row_name(i), name) == 0; i++)
		if (proto == 0 ||
		    dx__registry[dx__registry_name_index[i]].proto == proto)
			return i;
	return dx__registry_len;
}

size_t
dx_registry_by_name(const char *name, enum dx_proto proto,
                    const struct dx_service_entry **out, size_t max)
{
	size_t n = 0;

	if (name == NULL)
		return 0;
	for (size_t i = next_named(name, proto, first_name_from(name));
	     i < dx__registry_len; i = next_named(name, proto, i + 1))
		n = store(out, max, n, dx__registry_name_index[i]);
	return n;
}

size_t
dx_registry_size(void)
{
	return dx__registry_len;
}

/* Looks NAME up in the system's services database (NSS, /etc/services). */
static int
services_lookup(const char *name, enum dx_proto proto, uint16_t *port)
{
	struct servent entry, *found = NULL;
	char buf[4096];

	if (getservbyname_r(name, proto ? dx_proto_name(proto) : NULL, &entry,
	                    buf, sizeof(buf), &found) != 0 ||
	    found == NULL)
		return -DX_ESERVICE;
	*port = ntohs((uint16_t)found->s_port);
	return 0;
}

/*
 * A number is tried first, so "80" never reaches a name lookup. Text that
 * is no known name but starts like a number ("7x", "0x50", "+7", " 7")
 * is reported as a malformed number rather than an unknown name.
 */
int
dx_port_lookup(const char *text, enum dx_proto proto, uint16_t *port)
{
	int rc = dx_port_parse(text, port);
	size_t i;

	if (rc != -DX_EPORT)
		return rc;
	i = next_named(text, proto, first_name_from(text));
	if (i < dx__registry_len) {
		*port = dx__registry[dx__registry_name_index[i]].port_lo;
		return 0;
	}
	if (services_lookup(text, proto, port) == 0)
		return 0;
	if (strchr("0123456789+- \t\n\v\f\r", text[0]) != NULL)
		return -DX_EPORT;
	return -DX_ESERVICE;
}

/* Parses one port at *CURSOR and moves past it. */
static int
take_port(const char **cursor, uint16_t *port)
{
	char digits[8];
	size_t n = strspn(*cursor, "0123456789");

	if (n == 0 || n >= sizeof(digits))
		return -EINVAL;
	memcpy(digits, *cursor, n);
	digits[n] = '\0';
	*cursor += n;
	return dx_port_parse(digits, port) == 0 ? 0 : -EINVAL;
}

int
dx__ephemeral_parse(const char *text, uint16_t *lo, uint16_t *hi)
{
	uint16_t a, b;
	size_t blanks;

	if (take_port(&text, &a) != 0)
		return -EINVAL;
	blanks = strspn(text, " \t");
	text += blanks;
	if (blanks == 0 || take_port(&text, &b) != 0)
		return -EINVAL;
	if (*text == '\n')
		text++;
	if (*text != '\0' || a > b)
		return -EINVAL;
	*lo = a;
	*hi = b;
	return 0;
}

/* Reads a small file whole into BUF as a string; -EINVAL if it is longer. */
static int
read_small_file(const char *path, char *buf, size_t size)
{
	size_t len = 0;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return dx__neg_errno();
	do {
		n = dx_read(fd, buf + len, size - 1 - len);
		len += n > 0 ? (size_t)n : 0;
	} while (n > 0 && len < size - 1);
	close(fd);
	buf[len] = '\0';
	if (n < 0)
		return (int)n;
	return n == 0 ? 0 : -EINVAL;
}

int
dx_ephemeral_range(uint16_t *lo, uint16_t *hi)
{
	char text[64];
	int rc = read_small_file(EPHEMERAL_PATH, text, sizeof(text));

	if (rc < 0)
		return rc;
	return dx__ephemeral_parse(text, lo, hi);
}
