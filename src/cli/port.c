/* SPDX-License-Identifier: MIT */
/*
 * port.c - "duplex port": what a port number means. A number or a service
 * name is looked up in the built-in IANA registry (and in the system's
 * services database for aliases) and shown with its IANA range and where
 * it stands against the kernel's ephemeral range; --ranges shows the
 * ranges side by side, and --free finds a port that is free to bind now.
 */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SEP " — " /* between the parts of an output line */

static const char usage_text[] =
        "usage: duplex port [--json] PORT[/PROTO]\n"
        "       duplex port [--json] NAME[/PROTO]\n"
        "       duplex port [--json] --ranges\n"
        "       duplex port [--json] [--udp] --free LO-HI\n"
        "\n"
        "Shows what a port means: its rows in the IANA service registry, its\n"
        "IANA range (well-known 0-1023, registered 1024-49151, "
        "dynamic/private\n"
        "49152-65535) and whether the kernel picks ephemeral ports there.\n"
        "\n"
        "  PORT[/PROTO]  a number 0-65535; PROTO is tcp, udp, sctp or dccp\n"
        "                (default: every protocol)\n"
        "  NAME[/PROTO]  a service name, in any case: the IANA registry, then\n"
        "                the system's services database (/etc/services)\n"
        "  --ranges      the IANA ranges beside the OS ephemeral range\n"
        "  --free LO-HI  print one port in LO-HI that is free to bind right "
        "now\n"
        "                on 127.0.0.1 and the wildcard (tcp; with --udp, udp)\n"
        "  --json        print one JSON document instead of text\n"
        "  -h, --help    print this help\n"
        "\n"
        "Exit status: 0 done; 1 no free port in the range; 2 bad usage or bad\n"
        "input, which includes an unknown service name.\n";

static const struct option long_options[] = {
        {"json", no_argument, NULL, 'j'},
        {"ranges", no_argument, NULL, 'r'},
        {"free", required_argument, NULL, 'f'},
        {"udp", no_argument, NULL, 'u'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
};

/* What the command line asks for. */
struct options {
	int json, ranges, udp, help;
	const char *free_range; /* --free LO-HI */
	const char *query;      /* PORT[/PROTO] or NAME[/PROTO] */
};

/* The kernel's ephemeral range, or the error that hid it. */
struct ephemeral {
	int err;
	uint16_t lo, hi;
};

/* How a query was answered: a number, an IANA name, a services alias. */
enum query_kind { QUERY_NUMBER, QUERY_NAME, QUERY_ALIAS };

/* A parsed query. */
struct query {
	const char *text;    /* as typed */
	char name[256];      /* the part before the last '/' */
	enum dx_proto proto; /* 0: every protocol */
	enum query_kind kind;
	uint16_t port; /* for QUERY_NUMBER and QUERY_ALIAS */
};

/* A registry row as dx_registry_by_port() and _by_name() hand them out. */
typedef const struct dx_service_entry *entry_ref;

/* The registry rows that answer a query, and the ephemeral range. */
struct answer {
	entry_ref *rows;
	size_t n;
	struct ephemeral eph;
};

/* Called once per distinct port span of an answer; I counts from 0. */
typedef void (*span_fn)(uint16_t lo, uint16_t hi, size_t i,
                        const struct ephemeral *eph);

/* ------------------------------------------------------------------------
 * Queries: PORT[/PROTO] and NAME[/PROTO]
 * ------------------------------------------------------------------------ */

/* Prints why Q's port is bad, quoting the input; returns DX_EXIT_USAGE. */
static int
bad_port(const struct query *q, int err)
{
	if (err == -DX_EPORTRANGE)
		cli_error("bad port '%s': port %s is out of range 0-65535",
		          q->text, q->name);
	else if (err == -DX_ESERVICE && q->proto != 0)
		cli_error("bad port '%s': unknown service name '%s' for %s",
		          q->text, q->name, dx_proto_name(q->proto));
	else if (err == -DX_ESERVICE)
		cli_error("bad port '%s': unknown service name '%s'", q->text,
		          q->name);
	else if (err == -DX_EPORT)
		cli_error("bad port '%s': '%s' is not a decimal number or a "
		          "service name",
		          q->text, q->name);
	else
		cli_error("bad port '%s': %s", q->text, dx_strerror(err));
	return DX_EXIT_USAGE;
}

/* Splits TEXT at its last '/' into a name and a protocol. */
static int
split_query(const char *text, struct query *q)
{
	const char *slash = strrchr(text, '/');
	size_t len = slash ? (size_t)(slash - text) : strlen(text);

	memset(q, 0, sizeof(*q));
	q->text = text;
	if (len >= sizeof(q->name)) {
		cli_error(
		        "bad port '%s': too long for a port or a service name",
		        text);
		return DX_EXIT_USAGE;
	}
	memcpy(q->name, text, len);
	if (slash != NULL && dx_proto_parse(slash + 1, &q->proto) != 0) {
		cli_error("bad port '%s': unknown protocol '%s' (tcp, udp, "
		          "sctp or dccp)",
		          text, slash + 1);
		return DX_EXIT_USAGE;
	}
	return DX_EXIT_OK;
}

/*
 * Parses TEXT and decides how to answer it: a number, else a name with
 * IANA rows, else an alias the system's services database knows. Prints
 * the error and returns DX_EXIT_USAGE for anything else.
 */
static int
resolve_query(const char *text, struct query *q)
{
	int rc = split_query(text, q);

	if (rc != DX_EXIT_OK)
		return rc;
	rc = dx_port_parse(q->name, &q->port);
	if (rc != -DX_EPORT) {
		q->kind = QUERY_NUMBER;
		return rc == 0 ? DX_EXIT_OK : bad_port(q, rc);
	}
	if (dx_registry_by_name(q->name, q->proto, NULL, 0) > 0) {
		q->kind = QUERY_NAME;
		return DX_EXIT_OK;
	}
	q->kind = QUERY_ALIAS;
	rc = dx_port_lookup(q->name, q->proto, &q->port);
	return rc == 0 ? DX_EXIT_OK : bad_port(q, rc);
}

static size_t
lookup_rows(const struct query *q, entry_ref *out, size_t max)
{
	if (q->kind == QUERY_NAME)
		return dx_registry_by_name(q->name, q->proto, out, max);
	return dx_registry_by_port(q->port, q->proto, out, max);
}

/* Fills A with the rows that answer Q; returns 0 or -ENOMEM. */
static int
fetch_answer(const struct query *q, struct answer *a)
{
	size_t n = lookup_rows(q, NULL, 0);

	a->rows = calloc(n ? n : 1, sizeof(entry_ref));
	if (a->rows == NULL)
		return -ENOMEM;
	a->n = lookup_rows(q, a->rows, n);
	a->eph.err = dx_ephemeral_range(&a->eph.lo, &a->eph.hi);
	return 0;
}

/*
 * Calls FN for each port span the answer covers: the queried port for a
 * number or an alias, else each distinct row range, in row order.
 */
static void
each_span(const struct query *q, const struct answer *a, span_fn fn)
{
	size_t count = 0;

	if (q->kind != QUERY_NAME) {
		fn(q->port, q->port, 0, &a->eph);
		return;
	}
	for (size_t i = 0; i < a->n; i++) {
		const struct dx_service_entry *e = a->rows[i], *prev;
		prev = i > 0 ? a->rows[i - 1] : NULL;
		if (prev != NULL && prev->port_lo == e->port_lo &&
		    prev->port_hi == e->port_hi)
			continue;
		fn(e->port_lo, e->port_hi, count++, &a->eph);
	}
}

/* Where LO-HI stands against the ephemeral range; NULL when unknown. */
static const char *
relation(uint16_t lo, uint16_t hi, const struct ephemeral *eph)
{
	if (eph->err != 0)
		return NULL;
	if (lo >= eph->lo && hi <= eph->hi)
		return "inside";
	if (hi < eph->lo || lo > eph->hi)
		return "outside";
	return "partly inside";
}

/* ------------------------------------------------------------------------
 * Text output
 * ------------------------------------------------------------------------ */

/* Prints " — well-known (0-1023)" and the newline for PORT's class. */
static void
print_class(uint16_t port)
{
	enum dx_port_class cls = dx_port_class(port);
	uint16_t lo, hi;

	dx_port_class_bounds(cls, &lo, &hi);
	printf(SEP "%s (%u-%u)\n", dx_port_class_name(cls), lo, hi);
}

/* "7/tcp echo — Echo — well-known (0-1023)"; a range row shows its range. */
static void
print_row_text(const struct dx_service_entry *e)
{
	if (e->port_lo == e->port_hi)
		printf("%u", e->port_lo);
	else
		printf("%u-%u", e->port_lo, e->port_hi);
	printf("/%s %s", dx_proto_name(e->proto), e->name);
	if (e->description[0] != '\0')
		printf(SEP "%s", e->description);
	print_class(e->port_lo);
}

/* A port without rows: one line for its protocol, or for tcp and udp. */
static void
print_unassigned(const struct query *q)
{
	enum dx_proto first = q->proto ? q->proto : DX_PROTO_TCP;
	enum dx_proto last = q->proto ? q->proto : DX_PROTO_UDP;

	for (int p = (int)first; p <= (int)last; p++) {
		printf("%u/%s (unassigned)", q->port,
		       dx_proto_name((enum dx_proto)p));
		print_class(q->port);
	}
}

/* "7: outside the OS ephemeral range 32768-60999". */
static void
print_span_text(uint16_t lo, uint16_t hi, size_t i, const struct ephemeral *eph)
{
	const char *rel = relation(lo, hi, eph);

	if (lo == hi)
		printf("%u: ", lo);
	else
		printf("%u-%u: ", lo, hi);
	if (rel == NULL)
		printf("OS ephemeral range unknown (%s)\n",
		       dx_strerror(eph->err));
	else
		printf("%s the OS ephemeral range %u-%u\n", rel, eph->lo,
		       eph->hi);
}

static void
print_query_text(const struct query *q, const struct answer *a)
{
	if (q->kind == QUERY_ALIAS)
		printf("%s: not in the IANA registry; the system's services "
		       "database gives port %u\n",
		       q->name, q->port);
	for (size_t i = 0; i < a->n; i++)
		print_row_text(a->rows[i]);
	if (a->n == 0)
		print_unassigned(q);
	each_span(q, a, print_span_text);
}

/* ------------------------------------------------------------------------
 * JSON output: one document per run, on one line
 * ------------------------------------------------------------------------ */

/* Writes "KEY":VALUE, after a comma unless FIRST; a NULL VALUE is null. */
static void
json_str(const char *key, const char *value, int first)
{
	printf("%s\"%s\":", first ? "" : ",", key);
	if (value != NULL)
		cli_json_string(stdout, value);
	else
		printf("null");
}

static void
json_uint(const char *key, unsigned value, int first)
{
	printf("%s\"%s\":%u", first ? "" : ",", key, value);
}

/* Writes ,"KEY":{"low":LO,"high":HI}, or null when the range is unknown. */
static void
json_range(const char *key, int known, uint16_t lo, uint16_t hi)
{
	printf(",\"%s\":", key);
	if (!known) {
		printf("null");
		return;
	}
	putchar('{');
	json_uint("low", lo, 1);
	json_uint("high", hi, 0);
	putchar('}');
}

static void
json_entry(const struct dx_service_entry *e, int first)
{
	printf("%s{", first ? "" : ",");
	json_str("name", e->name, 1);
	json_str("description", e->description, 0);
	json_str("proto", dx_proto_name(e->proto), 0);
	json_uint("port", e->port_lo, 0);
	json_uint("port_high", e->port_hi, 0);
	json_str("class", dx_port_class_name(dx_port_class(e->port_lo)), 0);
	putchar('}');
}

static void
json_span(uint16_t lo, uint16_t hi, size_t i, const struct ephemeral *eph)
{
	enum dx_port_class cls = dx_port_class(lo);
	uint16_t clo, chi;

	dx_port_class_bounds(cls, &clo, &chi);
	printf("%s{", i ? "," : "");
	json_uint("port", lo, 1);
	json_uint("port_high", hi, 0);
	json_str("class", dx_port_class_name(cls), 0);
	json_uint("class_low", clo, 0);
	json_uint("class_high", chi, 0);
	json_str("ephemeral", relation(lo, hi, eph), 0);
	putchar('}');
}

static void
print_query_json(const struct query *q, const struct answer *a)
{
	static const char *const sources[] = {
	        [QUERY_NUMBER] = "number",
	        [QUERY_NAME] = "iana",
	        [QUERY_ALIAS] = "services",
	};

	putchar('{');
	json_str("query", q->text, 1);
	json_str("source", sources[q->kind], 0);
	json_str("proto", q->proto ? dx_proto_name(q->proto) : NULL, 0);
	printf(",\"entries\":[");
	for (size_t i = 0; i < a->n; i++)
		json_entry(a->rows[i], i == 0);
	printf("],\"ports\":[");
	each_span(q, a, json_span);
	putchar(']');
	json_range("ephemeral_range", a->eph.err == 0, a->eph.lo, a->eph.hi);
	puts("}");
}

static int
show_query(const char *text, int json)
{
	struct query q;
	struct answer a = {0};
	int rc = resolve_query(text, &q);

	if (rc != DX_EXIT_OK)
		return rc;
	if (fetch_answer(&q, &a) != 0) {
		cli_error("port '%s': %s", text, dx_strerror(-ENOMEM));
		return DX_EXIT_FAIL;
	}
	if (json)
		print_query_json(&q, &a);
	else
		print_query_text(&q, &a);
	free(a.rows);
	return DX_EXIT_OK;
}

/* ------------------------------------------------------------------------
 * --ranges
 * ------------------------------------------------------------------------ */

/* Fills *OLO-*OHI with the overlap of LO-HI and EPH; 0 when there is none. */
static int
overlap(uint16_t lo, uint16_t hi, const struct ephemeral *eph, uint16_t *olo,
        uint16_t *ohi)
{
	if (eph->err != 0 || hi < eph->lo || lo > eph->hi)
		return 0;
	*olo = lo > eph->lo ? lo : eph->lo;
	*ohi = hi < eph->hi ? hi : eph->hi;
	return 1;
}

static void
print_ranges_text(const struct ephemeral *eph)
{
	uint16_t lo, hi, olo, ohi;

	printf("%-16s %5s %5s  %s\n", "range", "low", "high",
	       "overlap with the OS ephemeral range");
	for (int c = DX_PORT_WELL_KNOWN; c <= DX_PORT_DYNAMIC; c++) {
		dx_port_class_bounds((enum dx_port_class)c, &lo, &hi);
		printf("%-16s %5u %5u  ",
		       dx_port_class_name((enum dx_port_class)c), lo, hi);
		if (eph->err != 0)
			puts("unknown");
		else if (!overlap(lo, hi, eph, &olo, &ohi))
			puts("none");
		else
			printf("%u-%u (%u ports)\n", olo, ohi, ohi - olo + 1u);
	}
	if (eph->err != 0)
		printf("%-16s %5s %5s  unknown: %s\n", "OS ephemeral", "-", "-",
		       dx_strerror(eph->err));
	else
		printf("%-16s %5u %5u  the kernel's pick for outgoing "
		       "connections\n",
		       "OS ephemeral", eph->lo, eph->hi);
	dx_port_class_bounds(DX_PORT_REGISTERED, &lo, &hi);
	if (overlap(lo, hi, eph, &olo, &ohi))
		printf("note: a server on a registered port in %u-%u can find "
		       "it taken by an outgoing connection\n",
		       olo, ohi);
}

static void
print_ranges_json(const struct ephemeral *eph)
{
	uint16_t lo, hi, olo = 0, ohi = 0;
	int shared;

	printf("{\"ranges\":[");
	for (int c = DX_PORT_WELL_KNOWN; c <= DX_PORT_DYNAMIC; c++) {
		dx_port_class_bounds((enum dx_port_class)c, &lo, &hi);
		printf("%s{", c == DX_PORT_WELL_KNOWN ? "" : ",");
		json_str("class", dx_port_class_name((enum dx_port_class)c), 1);
		json_uint("low", lo, 0);
		json_uint("high", hi, 0);
		shared = overlap(lo, hi, eph, &olo, &ohi);
		json_range("ephemeral_overlap", shared, olo, ohi);
		putchar('}');
	}
	putchar(']');
	json_range("ephemeral_range", eph->err == 0, eph->lo, eph->hi);
	puts("}");
}

static int
show_ranges(int json)
{
	struct ephemeral eph = {0};

	eph.err = dx_ephemeral_range(&eph.lo, &eph.hi);
	if (json)
		print_ranges_json(&eph);
	else
		print_ranges_text(&eph);
	return DX_EXIT_OK;
}

/* ------------------------------------------------------------------------
 * --free LO-HI
 * ------------------------------------------------------------------------ */

/* Prints why one half of a --free range is bad; returns DX_EXIT_USAGE. */
static int
bad_range(const char *text, const char *half, const char *part, int err)
{
	if (err == -DX_ENOPORT)
		cli_error("bad port range '%s': %s port is missing (expected "
		          "LO-HI)",
		          text, half);
	else if (err == -DX_EPORTRANGE)
		cli_error(
		        "bad port range '%s': port %s is out of range 0-65535",
		        text, part);
	else
		cli_error("bad port range '%s': '%s' is not a decimal number "
		          "(expected LO-HI)",
		          text, part);
	return DX_EXIT_USAGE;
}

/* Parses LO-HI, or one port, for --free; prints any error. */
static int
parse_range(const char *text, uint16_t *lo, uint16_t *hi)
{
	char *low = strdup(text), *high;
	int rc = DX_EXIT_USAGE, err;

	if (low == NULL) {
		cli_error("--free '%s': %s", text, dx_strerror(-ENOMEM));
		return DX_EXIT_FAIL;
	}
	high = strchr(low, '-');
	if (high != NULL)
		*high++ = '\0';
	else
		high = low; /* one port: LO-LO */
	if ((err = dx_port_parse(low, lo)) != 0)
		bad_range(text, "low", low, err);
	else if ((err = dx_port_parse(high, hi)) != 0)
		bad_range(text, "high", high, err);
	else if (*lo > *hi)
		cli_error("bad port range '%s': low port %u is above high "
		          "port %u",
		          text, *lo, *hi);
	else if (*lo == 0)
		cli_error("bad port range '%s': port 0 is no port to bind (it "
		          "asks the kernel for any free port)",
		          text);
	else
		rc = DX_EXIT_OK;
	free(low);
	return rc;
}

/*
 * 1 when a socket of TYPE can bind ADDR right now, 0 when the port is in
 * use, -EACCES when it needs privilege, or another -errno. A family the
 * kernel lacks (no IPv6) has nothing to collide with and counts as free.
 */
static int
try_bind(const void *addr, socklen_t len, int type)
{
	int family = ((const struct sockaddr *)addr)->sa_family, off = 0;
	int fd = socket(family, type | SOCK_CLOEXEC, 0), rc = 1;

	if (fd < 0)
		return errno == EAFNOSUPPORT ? 1 : -errno;
	if (family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
	if (bind(fd, addr, len) != 0) {
		if (errno == EADDRINUSE)
			rc = 0;
		else if (family == AF_INET6 && errno == EADDRNOTAVAIL)
			rc = 1;
		else
			rc = -errno;
	}
	close(fd);
	return rc;
}

/*
 * Tries PORT on 127.0.0.1, 0.0.0.0 and the dual-stack [::], one at a
 * time: a server binds one of them, and any of them can be taken.
 */
static int
port_is_free(uint16_t port, int type)
{
	struct sockaddr_in v4 = {.sin_family = AF_INET};
	struct sockaddr_in6 v6 = {.sin6_family = AF_INET6};
	int rc;

	v4.sin_port = v6.sin6_port = htons(port);
	v6.sin6_addr = in6addr_any;
	v4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	rc = try_bind(&v4, sizeof(v4), type);
	if (rc == 1) {
		v4.sin_addr.s_addr = htonl(INADDR_ANY);
		rc = try_bind(&v4, sizeof(v4), type);
	}
	if (rc == 1)
		rc = try_bind(&v6, sizeof(v6), type);
	return rc;
}

static uint32_t
gcd(uint32_t a, uint32_t b)
{
	while (b != 0) {
		uint32_t t = a % b;
		a = b;
		b = t;
	}
	return a;
}

/*
 * Finds a free port in LO-HI, visiting each once in a pseudo-random
 * order: a random start and a random step coprime with the range size.
 * *DENIED is set when some port needed privilege. Returns 0, -EADDRINUSE
 * when none is free, or -errno.
 */
static int
find_free(uint16_t lo, uint16_t hi, int type, uint16_t *port, int *denied)
{
	struct timespec ts;
	uint32_t n = (uint32_t)(hi - lo) + 1, seed, cur, step;

	clock_gettime(CLOCK_REALTIME, &ts);
	seed = (uint32_t)ts.tv_nsec * 2654435761u ^ (uint32_t)getpid();
	cur = seed % n;
	for (step = (seed >> 16) % n + 1; gcd(step, n) != 1; step++)
		;
	for (uint32_t i = 0; i < n; i++, cur = (cur + step) % n) {
		int rc = port_is_free((uint16_t)(lo + cur), type);
		if (rc == 1) {
			*port = (uint16_t)(lo + cur);
			return 0;
		}
		if (rc == -EACCES)
			*denied = 1;
		else if (rc < 0)
			return rc;
	}
	return -EADDRINUSE;
}

static int
show_free(const char *text, int udp, int json)
{
	const char *proto = udp ? "udp" : "tcp", *why;
	uint16_t lo, hi, port;
	int denied = 0, rc = parse_range(text, &lo, &hi);

	if (rc != DX_EXIT_OK)
		return rc;
	rc = find_free(lo, hi, udp ? SOCK_DGRAM : SOCK_STREAM, &port, &denied);
	if (rc != 0) {
		why = denied ? "every port is in use or needs privilege to bind"
		             : "every port is in use";
		cli_error("no free %s port in '%s': %s", proto, text,
		          rc == -EADDRINUSE ? why : dx_strerror(rc));
		return DX_EXIT_FAIL;
	}
	if (!json) {
		printf("%u\n", port);
		return DX_EXIT_OK;
	}
	putchar('{');
	json_uint("port", port, 1);
	json_str("proto", proto, 0);
	json_uint("low", lo, 0);
	json_uint("high", hi, 0);
	puts("}");
	return DX_EXIT_OK;
}

/* ------------------------------------------------------------------------
 * The command line
 * ------------------------------------------------------------------------ */

/* 1 for "--free" or an abbreviation getopt_long() accepts ("--fr"). */
static int
is_free_option(const char *arg)
{
	size_t len = strlen(arg);

	return len >= 3 && strncmp(arg, "--free", len) == 0;
}

/*
 * "-1" or "-80-90": getopt would take them for options, so they are
 * caught first and reported as the bad port or range they are (either
 * parse fails: the text before the first '-' is empty).
 */
static int
reject_negative(char **argv, int i)
{
	struct query q;
	uint16_t lo, hi;

	if (is_free_option(argv[i - 1]))
		parse_range(argv[i], &lo, &hi);
	else if (resolve_query(argv[i], &q) == DX_EXIT_OK)
		cli_error("port: unknown option '%s' (see 'duplex port "
		          "--help')",
		          argv[i]);
	return DX_EXIT_USAGE;
}

/* Exactly one of a query, --ranges and --free; --udp only with --free. */
static int
check_modes(const struct options *o)
{
	int modes = (o->query != NULL) + o->ranges + (o->free_range != NULL);

	if (o->help)
		return DX_EXIT_OK;
	if (modes == 0)
		cli_error("port: missing PORT, NAME, --ranges or --free LO-HI "
		          "(see 'duplex port --help')");
	else if (modes > 1)
		cli_error("port: PORT or NAME, --ranges and --free go one at a "
		          "time (see 'duplex port --help')");
	else if (o->udp && o->free_range == NULL)
		cli_error(
		        "port: --udp goes with --free (write PORT/udp to look "
		        "up a udp port)");
	else
		return DX_EXIT_OK;
	return DX_EXIT_USAGE;
}

/* Returns DX_EXIT_OK with *O filled in, or DX_EXIT_USAGE (reported). */
static int
parse_options(int argc, char **argv, struct options *o)
{
	int c;

	memset(o, 0, sizeof(*o));
	for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
		if (argv[i][0] == '-' && argv[i][1] >= '0' && argv[i][1] <= '9')
			return reject_negative(argv, i);
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", long_options, NULL)) != -1) {
		if (c == 'j')
			o->json = 1;
		else if (c == 'r')
			o->ranges = 1;
		else if (c == 'f')
			o->free_range = optarg;
		else if (c == 'u')
			o->udp = 1;
		else if (c == 'h')
			o->help = 1;
		else {
			cli_error("port: %s '%s' (see 'duplex port --help')",
			          c == ':' ? "missing argument for"
			                   : "unknown option",
			          argv[optind - 1]);
			return DX_EXIT_USAGE;
		}
	}
	if (argc - optind > 1) {
		cli_error("port: one PORT or NAME at a time, not '%s' and '%s'",
		          argv[optind], argv[optind + 1]);
		return DX_EXIT_USAGE;
	}
	o->query = optind < argc ? argv[optind] : NULL;
	return check_modes(o);
}

int
cmd_port(int argc, char **argv)
{
	struct options o;
	int rc = parse_options(argc, argv, &o);

	if (rc != DX_EXIT_OK)
		return rc;
	if (o.help)
		printf("%s", usage_text);
	else if (o.ranges)
		rc = show_ranges(o.json);
	else if (o.free_range != NULL)
		rc = show_free(o.free_range, o.udp, o.json);
	else
		rc = show_query(o.query, o.json);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		cli_error("port: cannot write the output: %s", strerror(errno));
		rc = DX_EXIT_FAIL;
	}
	return rc;
}
