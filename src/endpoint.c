/* SPDX-License-Identifier: MIT */
/*
 * endpoint.c - addresses and endpoints: the one endpoint grammar
 * (tcp://HOST:PORT, udp://HOST:PORT, unix://PATH, unixgram://PATH), its
 * canonical text form, its resolution into socket addresses, and the
 * formatting and comparison of those addresses. Parsing never touches the
 * network (a service name is looked up in the built-in registry and the
 * services database); only dx_endpoint_resolve() asks the resolver.
 */
#include "internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netdb.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* Longest unix path text: sun_path less the terminating NUL. */
#define PATH_MAX_TEXT (sizeof(((struct sockaddr_un *)0)->sun_path) - 1)
/* Longest host name (RFC 1035, without a trailing dot) and label. */
#define NAME_MAX_TEXT 253
#define LABEL_MAX     63
/* How much of an offending input a why-sentence quotes at most. */
#define QUOTE_MAX 80
/* Room for an IPv6 host with its zone, without brackets. */
#define HOST_TEXT_MAX (INET6_ADDRSTRLEN + IF_NAMESIZE + 1)
/* The characters of a host name, and of a port token (numbers, names). */
#define NAME_CHARS                             \
	"0123456789abcdefghijklmnopqrstuvwxyz" \
	"ABCDEFGHIJKLMNOPQRSTUVWXYZ-_."
#define PORT_CHARS NAME_CHARS "+"

/* One scheme: its name, socket type and, for IP schemes, protocol. */
struct scheme_row {
	const char *name;
	enum dx_scheme scheme;
	int socktype;
	enum dx_proto proto; /* 0 for the unix schemes */
};

static const struct scheme_row schemes[] = {
        {"tcp", DX_SCHEME_TCP, SOCK_STREAM, DX_PROTO_TCP},
        {"udp", DX_SCHEME_UDP, SOCK_DGRAM, DX_PROTO_UDP},
        {"unix", DX_SCHEME_UNIX, SOCK_STREAM, (enum dx_proto)0},
        {"unixgram", DX_SCHEME_UNIXGRAM, SOCK_DGRAM, (enum dx_proto)0},
};

static const struct scheme_row *
scheme_by_value(enum dx_scheme scheme)
{
	for (size_t i = 0; i < DX_ARRAY_LEN(schemes); i++)
		if (schemes[i].scheme == scheme)
			return &schemes[i];
	return NULL;
}

/* Schemes match in any case, as RFC 3986 (3.1) has it for URI schemes. */
static const struct scheme_row *
scheme_by_name(const char *name, size_t n)
{
	for (size_t i = 0; i < DX_ARRAY_LEN(schemes); i++)
		if (strlen(schemes[i].name) == n &&
		    strncasecmp(schemes[i].name, name, n) == 0)
			return &schemes[i];
	return NULL;
}

static int
quote_len(size_t n)
{
	return n > QUOTE_MAX ? QUOTE_MAX : (int)n;
}

/* ------------------------------------------------------------------------
 * Socket addresses
 * ------------------------------------------------------------------------ */

/*
 * Writes the name of a unix address into TMP (DX_ADDRSTRLEN bytes): the
 * path, or '@' and the abstract name with any NUL inside it shown as '@'
 * (as ss(8) does). Returns the length.
 */
static int
format_unix(const struct dx_addr *addr, char *tmp)
{
	const char *p = addr->u.un.sun_path;
	size_t n = addr->len - offsetof(struct sockaddr_un, sun_path);

	if (n > sizeof(addr->u.un.sun_path))
		n = sizeof(addr->u.un.sun_path);
	if (p[0] != '\0') {
		n = strnlen(p, n);
		memcpy(tmp, p, n);
	} else {
		tmp[0] = '@';
		for (size_t i = 1; i < n; i++)
			tmp[i] = p[i] != '\0' ? p[i] : '@';
	}
	tmp[n] = '\0';
	return (int)n;
}

/*
 * Writes an IPv6 host into BUF (HOST_TEXT_MAX bytes): the IPv4 form for a
 * v4-mapped address, else the address and, for a scoped one, "%zone" by
 * interface name, or by number when the index has no name.
 */
static void
format_in6_host(const struct sockaddr_in6 *in6, char *buf)
{
	char zone[IF_NAMESIZE];
	size_t n;

	if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
		inet_ntop(AF_INET, &in6->sin6_addr.s6_addr[12], buf,
		          HOST_TEXT_MAX);
		return;
	}
	inet_ntop(AF_INET6, &in6->sin6_addr, buf, HOST_TEXT_MAX);
	if (in6->sin6_scope_id == 0)
		return;
	n = strlen(buf);
	if (if_indextoname(in6->sin6_scope_id, zone) != NULL)
		(void)snprintf(buf + n, HOST_TEXT_MAX - n, "%%%s", zone);
	else
		(void)snprintf(buf + n, HOST_TEXT_MAX - n, "%%%u",
		               (unsigned)in6->sin6_scope_id);
}

/*
 * Writes ADDR into TMP (DX_ADDRSTRLEN bytes), with ":port" after an IP
 * host when WITH_PORT is set. Returns the length or -EAFNOSUPPORT.
 */
static int
format_addr(const struct dx_addr *addr, char *tmp, int with_port)
{
	char host[HOST_TEXT_MAX];

	if (addr->len <= sizeof(sa_family_t))
		return snprintf(tmp, DX_ADDRSTRLEN, "(unnamed)");
	switch (addr->u.sa.sa_family) {
	case AF_UNIX:
		return format_unix(addr, tmp);
	case AF_INET:
		inet_ntop(AF_INET, &addr->u.in.sin_addr, host, sizeof(host));
		break;
	case AF_INET6:
		format_in6_host(&addr->u.in6, host);
		break;
	default:
		return -EAFNOSUPPORT;
	}
	if (!with_port)
		return snprintf(tmp, DX_ADDRSTRLEN, "%s", host);
	if (strchr(host, ':') != NULL)
		return snprintf(tmp, DX_ADDRSTRLEN, "[%s]:%u", host,
		                (unsigned)dx_addr_port(addr));
	return snprintf(tmp, DX_ADDRSTRLEN, "%s:%u", host,
	                (unsigned)dx_addr_port(addr));
}

/* Copies N bytes of TMP into BUF, truncated to LEN - 1; returns the count. */
static int
copy_out(const char *tmp, int n, char *buf, size_t len)
{
	if (n < 0 || len == 0)
		return n < 0 ? n : 0;
	if ((size_t)n >= len)
		n = (int)(len - 1);
	memcpy(buf, tmp, (size_t)n);
	buf[n] = '\0';
	return n;
}

int
dx_addr_format(const struct dx_addr *addr, char *buf, size_t len)
{
	char tmp[DX_ADDRSTRLEN];

	return copy_out(tmp, format_addr(addr, tmp, 1), buf, len);
}

/* For a unix address the host is its path, as dx_addr_format() writes. */
int
dx_addr_format_host(const struct dx_addr *addr, char *buf, size_t len)
{
	char tmp[DX_ADDRSTRLEN];

	return copy_out(tmp, format_addr(addr, tmp, 0), buf, len);
}

uint16_t
dx_addr_port(const struct dx_addr *addr)
{
	if (addr->len <= sizeof(sa_family_t))
		return 0;
	if (addr->u.sa.sa_family == AF_INET)
		return ntohs(addr->u.in.sin_port);
	if (addr->u.sa.sa_family == AF_INET6)
		return ntohs(addr->u.in6.sin6_port);
	return 0;
}

/* The unmapped address is a plain IPv4 one, so dualstack is cleared. */
void
dx_addr_unmap(struct dx_addr *addr)
{
	struct sockaddr_in in;

	if (addr->u.sa.sa_family != AF_INET6 ||
	    addr->len < sizeof(struct sockaddr_in6) ||
	    !IN6_IS_ADDR_V4MAPPED(&addr->u.in6.sin6_addr))
		return;
	memset(&in, 0, sizeof(in));
	in.sin_family = AF_INET;
	in.sin_port = addr->u.in6.sin6_port;
	memcpy(&in.sin_addr, &addr->u.in6.sin6_addr.s6_addr[12], 4);
	memset(&addr->u, 0, sizeof(addr->u));
	addr->u.in = in;
	addr->len = sizeof(in);
	addr->dualstack = 0;
}

/*
 * The significant bytes of a unix address: a path up to its NUL, an
 * abstract name (leading NUL included) to the address length.
 */
static size_t
unix_name_len(const struct dx_addr *addr)
{
	size_t n = addr->len - offsetof(struct sockaddr_un, sun_path);

	if (n > sizeof(addr->u.un.sun_path))
		n = sizeof(addr->u.un.sun_path);
	if (addr->u.un.sun_path[0] != '\0')
		n = strnlen(addr->u.un.sun_path, n);
	return n;
}

/*
 * IPv6 addresses compare their scope too (fe80::1%lo is not
 * fe80::1%eth0); a v4-mapped address never equals its IPv4 form (call
 * dx_addr_unmap() first for that). Unnamed addresses (no more than a
 * family) equal each other and nothing else.
 */
int
dx_addr_equal(const struct dx_addr *a, const struct dx_addr *b)
{
	size_t n;

	if (a->len <= sizeof(sa_family_t) || b->len <= sizeof(sa_family_t))
		return a->len <= sizeof(sa_family_t) &&
		       b->len <= sizeof(sa_family_t);
	if (a->u.sa.sa_family != b->u.sa.sa_family)
		return 0;
	switch (a->u.sa.sa_family) {
	case AF_INET:
		return a->u.in.sin_port == b->u.in.sin_port &&
		       a->u.in.sin_addr.s_addr == b->u.in.sin_addr.s_addr;
	case AF_INET6:
		return a->u.in6.sin6_port == b->u.in6.sin6_port &&
		       a->u.in6.sin6_scope_id == b->u.in6.sin6_scope_id &&
		       IN6_ARE_ADDR_EQUAL(&a->u.in6.sin6_addr,
		                          &b->u.in6.sin6_addr);
	case AF_UNIX:
		n = unix_name_len(a);
		return n == unix_name_len(b) &&
		       memcmp(a->u.un.sun_path, b->u.un.sun_path, n) == 0;
	default:
		n = a->len < sizeof(a->u) ? a->len : sizeof(a->u);
		return a->len == b->len && memcmp(&a->u, &b->u, n) == 0;
	}
}

/* SOCK_STREAM or SOCK_DGRAM; -EINVAL for a value outside the enum. */
int
dx_scheme_socktype(enum dx_scheme scheme)
{
	const struct scheme_row *row = scheme_by_value(scheme);

	return row != NULL ? row->socktype : -EINVAL;
}

/* NULL for a value outside the enum, as dx_proto_name() does. */
const char *
dx_scheme_name(enum dx_scheme scheme)
{
	const struct scheme_row *row = scheme_by_value(scheme);

	return row != NULL ? row->name : NULL;
}

/* ------------------------------------------------------------------------
 * Parsing
 * ------------------------------------------------------------------------ */

/*
 * TEXT has no "scheme://". When it starts with a known scheme and a ':'
 * (as in "tcp:/x") the slashes are what is missing; else the scheme is.
 */
static int
missing_scheme(const char *text, char *why, size_t whylen)
{
	const char *colon = strchr(text, ':');
	size_t n = colon != NULL ? (size_t)(colon - text) : 0;

	if (colon != NULL && scheme_by_name(text, n) != NULL)
		return dx__why(why, whylen, -DX_ESYNTAX,
		               "expected '://' after the scheme '%.*s' in "
		               "'%.*s'",
		               (int)n, text, quote_len(strlen(text)), text);
	return dx__why(why, whylen, -DX_ESCHEME,
	               "missing scheme in '%.*s' (expected tcp://, udp://, "
	               "unix:// or unixgram://)",
	               quote_len(strlen(text)), text);
}

/*
 * Finds the scheme of TEXT and points *REST after its "://". Returns the
 * scheme's row, or NULL with the error in *RC.
 */
static const struct scheme_row *
parse_scheme(const char *text, const char **rest, int *rc, char *why,
             size_t whylen)
{
	const char *sep = strstr(text, "://");
	const struct scheme_row *row;
	size_t n;

	if (sep == NULL) {
		*rc = missing_scheme(text, why, whylen);
		return NULL;
	}
	n = (size_t)(sep - text);
	row = scheme_by_name(text, n);
	*rest = sep + 3;
	if (row == NULL && n == 0)
		*rc = dx__why(why, whylen, -DX_ESCHEME,
		              "missing scheme before '://' (expected tcp, "
		              "udp, unix or unixgram)");
	else if (row == NULL)
		*rc = dx__why(why, whylen, -DX_ESCHEME,
		              "unknown scheme '%.*s' (expected tcp, udp, unix "
		              "or unixgram)",
		              quote_len(n), text);
	return row;
}

/*
 * A unix PATH is everything after "://", verbatim: at most 107 bytes so
 * that it fits sun_path with its NUL, and "@name" (an abstract socket)
 * needs a name.
 */
static int
parse_path(struct dx_endpoint *ep, const char *path, char *why, size_t whylen)
{
	size_t n = strlen(path);

	if (n == 0)
		return dx__why(why, whylen, -DX_EPATH,
		               "unix socket path is empty (expected "
		               "unix:///path/to/socket or unix://@name)");
	if (n > PATH_MAX_TEXT)
		return dx__why(why, whylen, -DX_EPATH,
		               "unix socket path is %zu bytes, longer than %zu",
		               n, PATH_MAX_TEXT);
	if (n == 1 && path[0] == '@')
		return dx__why(why, whylen, -DX_EPATH,
		               "abstract unix socket name after '@' is empty");
	memcpy(ep->path, path, n + 1);
	return 0;
}

/* 1 when the N bytes at S are an IPv6 address, with an optional "%zone". */
static int
is_ipv6(const char *s, size_t n)
{
	char addr[INET6_ADDRSTRLEN];
	struct in6_addr in6;
	const char *pct = memchr(s, '%', n);

	if (pct != NULL)
		n = (size_t)(pct - s);
	if (n >= sizeof(addr))
		return 0;
	memcpy(addr, s, n);
	addr[n] = '\0';
	return inet_pton(AF_INET6, addr, &in6) == 1;
}

/*
 * A zone (N > 0 bytes) is an interface name or index: up to IF_NAMESIZE
 * - 1 printable characters, none of them '/', ':', '%', '[' or ']'.
 */
static int
check_zone(const char *zone, size_t n, char *why, size_t whylen)
{
	if (n >= IF_NAMESIZE)
		return dx__why(why, whylen, -DX_EHOST,
		               "zone '%.*s' is %zu bytes, longer than %d",
		               quote_len(n), zone, n, IF_NAMESIZE - 1);
	for (size_t i = 0; i < n; i++)
		if (zone[i] <= ' ' || zone[i] >= 0x7f ||
		    strchr("/:%[]", zone[i]) != NULL)
			return dx__why(why, whylen, -DX_EHOST,
			               "zone '%.*s' is not an interface name "
			               "or index",
			               (int)n, zone);
	return 0;
}

/* Checks the N bytes between '[' and ']'. */
static int
check_ipv6(const char *s, size_t n, char *why, size_t whylen)
{
	const char *pct = memchr(s, '%', n);
	size_t alen = pct != NULL ? (size_t)(pct - s) : n;

	if (n == 0)
		return dx__why(why, whylen, -DX_EHOST,
		               "IPv6 address in '[]' is empty");
	if (!is_ipv6(s, alen))
		return dx__why(why, whylen, -DX_EHOST,
		               "'%.*s' is not a valid IPv6 address",
		               quote_len(alen), s);
	if (pct != NULL && alen + 1 == n)
		return dx__why(why, whylen, -DX_EHOST,
		               "zone after '%%' in '%.*s' is empty",
		               quote_len(n), s);
	if (pct != NULL)
		return check_zone(pct + 1, n - alen - 1, why, whylen);
	return 0;
}

/* "[v6]:PORT": stores the host and points *PORT at the port text. */
static int
parse_bracketed(struct dx_endpoint *ep, const char *auth, const char **port,
                char *why, size_t whylen)
{
	const char *close = strchr(auth, ']');
	size_t n;
	int rc;

	if (close == NULL)
		return dx__why(why, whylen, -DX_EHOST,
		               "unterminated '[' in IPv6 address '%.*s'",
		               quote_len(strlen(auth)), auth);
	n = (size_t)(close - auth - 1);
	rc = check_ipv6(auth + 1, n, why, whylen);
	if (rc < 0)
		return rc;
	memcpy(ep->host, auth + 1, n);
	ep->host[n] = '\0';
	if (close[1] == '\0')
		return dx__why(why, whylen, -DX_ENOPORT,
		               "missing ':PORT' after host '[%s]'", ep->host);
	if (close[1] != ':')
		return dx__why(why, whylen, -DX_ESYNTAX,
		               "unexpected text '%.*s' after ']' (expected "
		               "':PORT')",
		               quote_len(strlen(close + 1)), close + 1);
	*port = close + 2;
	return 0;
}

/*
 * AUTH holds two or more ':' outside brackets. Suggests the bracketed
 * form, reading the text after the last ':' as the port when what comes
 * before it is an IPv6 address ("::1:7" is [::1]:7).
 */
static int
unbracketed_ipv6(const struct scheme_row *row, const char *auth, char *why,
                 size_t whylen)
{
	const char *last = strrchr(auth, ':');
	size_t n = (size_t)(last - auth);

	if (is_ipv6(auth, n))
		return dx__why(why, whylen, -DX_EHOST,
		               "IPv6 address must be in brackets, as in "
		               "%s://[%.*s]:%.*s",
		               row->name, quote_len(n), auth,
		               quote_len(strlen(last + 1)), last + 1);
	if (is_ipv6(auth, strlen(auth)))
		return dx__why(why, whylen, -DX_EHOST,
		               "IPv6 address must be in brackets, as in "
		               "%s://[%s]:PORT",
		               row->name, auth);
	return dx__why(why, whylen, -DX_EHOST,
	               "host '%.*s' holds ':' (an IPv6 address must be in "
	               "brackets, as in %s://[::1]:7)",
	               quote_len(n), auth, row->name);
}

/* Describes byte C for a message: itself when printable, else \xNN. */
static const char *
char_text(unsigned char c, char out[8])
{
	if (c > ' ' && c < 0x7f)
		(void)snprintf(out, 8, "%c", c);
	else
		(void)snprintf(out, 8, "\\x%02x", c);
	return out;
}

/* A host name: letters, digits, '-', '_' and '.', in labels of 1-63. */
static int
check_name(const char *s, size_t n, char *why, size_t whylen)
{
	size_t len = s[n - 1] == '.' ? n - 1 : n, label = 0;
	char c[8];

	if (len > NAME_MAX_TEXT)
		return dx__why(why, whylen, -DX_EHOST,
		               "host name is %zu bytes, longer than %d", len,
		               NAME_MAX_TEXT);
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '.') {
			if (label == 0)
				break;
			label = 0;
		} else if (strchr(NAME_CHARS, s[i]) == NULL) {
			return dx__why(why, whylen, -DX_EHOST,
			               "invalid character '%s' in host name "
			               "'%.*s'",
			               char_text((unsigned char)s[i], c),
			               quote_len(n), s);
		} else if (++label > LABEL_MAX) {
			return dx__why(why, whylen, -DX_EHOST,
			               "label in host name '%.*s' is longer "
			               "than %d bytes",
			               quote_len(n), s, LABEL_MAX);
		}
	}
	if (label == 0)
		return dx__why(why, whylen, -DX_EHOST,
		               "host name '%.*s' has an empty label",
		               quote_len(n), s);
	return 0;
}

/*
 * A host outside brackets: empty (the wildcard), an IPv4 literal (what is
 * all digits and dots, starting with a digit, must be one, in dotted-quad
 * form: "127.1" is refused), or a name.
 */
static int
check_host(const char *s, size_t n, char *why, size_t whylen)
{
	char addr[INET_ADDRSTRLEN];
	struct in_addr in;
	size_t i = 0;

	if (n == 0)
		return 0;
	while (i < n && ((s[i] >= '0' && s[i] <= '9') || s[i] == '.'))
		i++;
	if (i < n || s[0] == '.')
		return check_name(s, n, why, whylen);
	if (n < sizeof(addr)) {
		memcpy(addr, s, n);
		addr[n] = '\0';
		if (inet_pton(AF_INET, addr, &in) == 1)
			return 0;
	}
	return dx__why(why, whylen, -DX_EHOST,
	               "'%.*s' is not a valid IPv4 address", quote_len(n), s);
}

/* "HOST:PORT" outside brackets: stores HOST, points *PORT at the port. */
static int
parse_plain_host(struct dx_endpoint *ep, const struct scheme_row *row,
                 const char *auth, const char **port, char *why, size_t whylen)
{
	const char *colon = strchr(auth, ':');
	size_t n = colon != NULL ? (size_t)(colon - auth) : strlen(auth);
	int rc;

	if (colon != NULL && strchr(colon + 1, ':') != NULL)
		return unbracketed_ipv6(row, auth, why, whylen);
	rc = check_host(auth, n, why, whylen);
	if (rc < 0)
		return rc;
	memcpy(ep->host, auth, n);
	ep->host[n] = '\0';
	if (colon == NULL && n == 0)
		return dx__why(why, whylen, -DX_ENOPORT,
		               "missing HOST:PORT after '%s://' (write "
		               "%s://:PORT for the wildcard)",
		               row->name, row->name);
	if (colon == NULL)
		return dx__why(why, whylen, -DX_ENOPORT,
		               "missing ':PORT' after host '%s'", ep->host);
	*port = colon + 1;
	return 0;
}

/* 1 when S holds a letter: a service name has one (RFC 6335 5.1). */
static int
has_letter(const char *s)
{
	for (; *s != '\0'; s++)
		if ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z'))
			return 1;
	return 0;
}

/* The why-sentence for dx_port_parse() or dx_port_lookup() error RC. */
static int
port_why(int rc, const char *text, const struct scheme_row *row, char *why,
         size_t whylen)
{
	int n = quote_len(strlen(text));

	switch (rc) {
	case -DX_EPORTRANGE:
		return dx__why(why, whylen, rc,
		               "port %.*s is out of range 0-65535", n, text);
	case -DX_ESERVICE:
		return dx__why(why, whylen, rc,
		               "unknown service name '%.*s' for %s", n, text,
		               row->name);
	case -DX_EPORT:
		return dx__why(why, whylen, rc,
		               "port '%.*s' is not a decimal number", n, text);
	default:
		return dx__why(why, whylen, rc, "port '%.*s': %s", n, text,
		               dx_strerror(rc));
	}
}

/*
 * The port token (digits, or a service name's letters, digits, '-', '_'
 * and '.') must end the text. A token without a letter can only be a
 * number and is judged by dx_port_parse() ("-1", "7.5"); one with a
 * letter by dx_port_lookup().
 */
static int
parse_port(struct dx_endpoint *ep, const struct scheme_row *row,
           const char *text, char *why, size_t whylen)
{
	size_t n = strspn(text, PORT_CHARS), len = strlen(text);
	int rc;

	if (len == 0)
		return dx__why(why, whylen, -DX_ENOPORT,
		               "port is empty (expected a number or a service "
		               "name after ':')");
	if (n == 0)
		return dx__why(why, whylen, -DX_EPORT,
		               "port '%.*s' is not a number or a service name",
		               quote_len(len), text);
	if (n < len)
		return dx__why(why, whylen, -DX_ESYNTAX,
		               "unexpected text '%.*s' after the port '%.*s'",
		               quote_len(len - n), text + n, quote_len(n),
		               text);
	if (has_letter(text))
		rc = dx_port_lookup(text, row->proto, &ep->port);
	else
		rc = dx_port_parse(text, &ep->port);
	return rc == 0 ? 0 : port_why(rc, text, row, why, whylen);
}

/* HOST:PORT or [IPv6]:PORT after "tcp://" or "udp://". */
static int
parse_authority(struct dx_endpoint *ep, const struct scheme_row *row,
                const char *auth, char *why, size_t whylen)
{
	const char *port = ""; /* set by both on success */
	int rc;

	if (auth[0] == '[')
		rc = parse_bracketed(ep, auth, &port, why, whylen);
	else
		rc = parse_plain_host(ep, row, auth, &port, why, whylen);
	if (rc < 0)
		return rc;
	return parse_port(ep, row, port, why, whylen);
}

/*
 * The scheme matches in any case ("TCP://" is tcp); the host keeps the
 * case it was written in. EP is written only on success, and then in
 * full: the unused fields and bytes are zero.
 */
int
dx_endpoint_parse(struct dx_endpoint *ep, const char *text, char *why,
                  size_t whylen)
{
	const struct scheme_row *row;
	struct dx_endpoint tmp;
	const char *rest = "";
	int rc = 0;

	if (text == NULL || text[0] == '\0')
		return dx__why(why, whylen, -DX_ESYNTAX, "endpoint is empty");
	row = parse_scheme(text, &rest, &rc, why, whylen);
	if (row == NULL)
		return rc;
	memset(&tmp, 0, sizeof(tmp));
	tmp.scheme = row->scheme;
	if (row->proto == 0)
		rc = parse_path(&tmp, rest, why, whylen);
	else
		rc = parse_authority(&tmp, row, rest, why, whylen);
	if (rc == 0)
		memcpy(ep, &tmp, sizeof(tmp));
	return rc;
}

/* Also -EINVAL for a scheme outside the enum. */
int
dx_endpoint_format(const struct dx_endpoint *ep, char *buf, size_t len)
{
	const struct scheme_row *row = scheme_by_value(ep->scheme);
	int hlen = (int)strnlen(ep->host, sizeof(ep->host));
	int n;

	if (row == NULL)
		return -EINVAL;
	if (row->proto == 0)
		n = snprintf(buf, len, "%s://%.*s", row->name,
		             (int)sizeof(ep->path), ep->path);
	else if (memchr(ep->host, ':', (size_t)hlen) != NULL)
		n = snprintf(buf, len, "%s://[%.*s]:%u", row->name, hlen,
		             ep->host, (unsigned)ep->port);
	else
		n = snprintf(buf, len, "%s://%.*s:%u", row->name, hlen,
		             ep->host, (unsigned)ep->port);
	if (n >= 0 && (size_t)n < len)
		return n;
	if (len > 0)
		buf[0] = '\0';
	return -ENOSPC;
}

/* ------------------------------------------------------------------------
 * Resolution
 * ------------------------------------------------------------------------ */

/*
 * The one address of a unix endpoint. A path's length counts its NUL, as
 * the kernel's getsockname() does; an abstract name's counts the leading
 * NUL and exactly the name's bytes.
 */
static int
resolve_unix(const struct dx_endpoint *ep, struct dx_addr *out)
{
	size_t n = strnlen(ep->path, sizeof(ep->path));

	if (n == 0 || n == sizeof(ep->path))
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	out->u.un.sun_family = AF_UNIX;
	if (ep->path[0] == '@') {
		memcpy(out->u.un.sun_path + 1, ep->path + 1, n - 1);
		out->len =
		        (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
	} else {
		memcpy(out->u.un.sun_path, ep->path, n);
		out->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
		                       n + 1);
	}
	return 1;
}

/*
 * The passive wildcard: "::" accepting IPv4 too when this kernel can make
 * an IPv6 socket at all (one probe socket, closed at once), else 0.0.0.0.
 */
static int
resolve_wildcard(const struct dx_endpoint *ep, struct dx_addr *out)
{
	int fd = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	memset(out, 0, sizeof(*out));
	if (fd >= 0) {
		close(fd);
		out->u.in6.sin6_family = AF_INET6;
		out->u.in6.sin6_addr = in6addr_any;
		out->u.in6.sin6_port = htons(ep->port);
		out->len = sizeof(out->u.in6);
		out->dualstack = 1;
	} else {
		out->u.in.sin_family = AF_INET;
		out->u.in.sin_addr.s_addr = htonl(INADDR_ANY);
		out->u.in.sin_port = htons(ep->port);
		out->len = sizeof(out->u.in);
	}
	return 1;
}

/* Copies up to MAX distinct IPv4 and IPv6 results; returns how many. */
static int
copy_results(const struct addrinfo *ai, struct dx_addr *out, size_t max)
{
	size_t n = 0, i;

	for (; ai != NULL && n < max; ai = ai->ai_next) {
		if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
		    ai->ai_addrlen > sizeof(out->u))
			continue;
		memset(&out[n], 0, sizeof(out[n]));
		memcpy(&out[n].u, ai->ai_addr, ai->ai_addrlen);
		out[n].len = ai->ai_addrlen;
		for (i = 0; i < n && !dx_addr_equal(&out[i], &out[n]); i++)
			;
		if (i == n)
			n++;
	}
	return n > 0 ? (int)n : dx__eai_error(EAI_NONAME);
}

/* 1 when HOST is an IPv4 or IPv6 literal, so no lookup is needed. */
static int
is_literal(const char *host)
{
	struct in_addr in;

	return strchr(host, ':') != NULL || inet_pton(AF_INET, host, &in) == 1;
}

/*
 * getaddrinfo() for an IP endpoint. No AI_ADDRCONFIG: it drops ::1 and
 * 127.0.0.1 on a host whose only interface is loopback.
 */
static int
resolve_ip(const struct dx_endpoint *ep, const struct scheme_row *row,
           unsigned flags, struct dx_addr *out, size_t max)
{
	struct addrinfo hints, *res = NULL;
	char service[8];
	int rc;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = row->socktype;
	hints.ai_flags = AI_NUMERICSERV;
	if (flags & DX_RESOLVE_PASSIVE)
		hints.ai_flags |= AI_PASSIVE;
	if ((flags & DX_RESOLVE_NUMERIC) || is_literal(ep->host))
		hints.ai_flags |= AI_NUMERICHOST;
	(void)snprintf(service, sizeof(service), "%u", (unsigned)ep->port);
	rc = getaddrinfo(ep->host[0] != '\0' ? ep->host : NULL, service, &hints,
	                 &res);
	if (rc != 0) {
		rc = dx__eai_error(rc);
		res = NULL;
		goto out;
	}
	rc = copy_results(res, out, max);
out:
	if (res != NULL)
		freeaddrinfo(res);
	return rc;
}

/*
 * Decisions beyond the header: the count returned is the number of
 * addresses stored (never more than MAX, duplicates dropped); MAX == 0 or
 * a malformed EP (unknown scheme, unterminated host, empty or
 * unterminated unix path) is -EINVAL. A non-passive empty host means the
 * loopback addresses, as getaddrinfo() gives for no node name: "tcp://:7"
 * connects locally.
 */
int
dx_endpoint_resolve(const struct dx_endpoint *ep, unsigned flags,
                    struct dx_addr *out, size_t max)
{
	const struct scheme_row *row = scheme_by_value(ep->scheme);

	if (row == NULL || out == NULL || max == 0)
		return -EINVAL;
	if (row->proto == 0)
		return resolve_unix(ep, out);
	if (strnlen(ep->host, sizeof(ep->host)) == sizeof(ep->host))
		return -EINVAL;
	if (ep->host[0] == '\0' && (flags & DX_RESOLVE_PASSIVE))
		return resolve_wildcard(ep, out);
	return resolve_ip(ep, row, flags, out, max);
}
