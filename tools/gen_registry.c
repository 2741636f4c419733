/* SPDX-License-Identifier: MIT */
/*
 * gen_registry.c - a build-time host tool: compiles IANA's service registry
 * (service-names-port-numbers.csv, RFC 4180 CSV) into the compact C table
 * that src/registry.h describes.
 *
 *   gen_registry IN.csv OUT.c
 *
 * Rows with a service name, a port (or range) and a protocol are kept;
 * descriptions are cut to their first line, trimmed and capped. Strings are
 * stored once in a pool. A malformed file stops the build: the tool exits
 * non-zero with "gen_registry: FILE:LINE: what is wrong" and leaves OUT as
 * it was.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../include/duplex.h"

#define DESC_MAX   120   /* bytes of description kept */
#define MAX_FIELDS 64    /* more fields than this in a record is malformed */
#define NAME_BITS  24    /* width of dx__registry_row.name */
#define ROWS_MAX   65535 /* the name index holds uint16_t row numbers */

/* A cursor over the CSV text, which is parsed in place. */
struct csv {
	const char *path;
	char *p, *end;
	unsigned line; /* physical line of p, from 1 */
};

/* What ends a field. */
enum { END_FIELD, END_RECORD, END_INPUT };

/* The deduplicated string pool: NUL-terminated strings back to back. */
struct pool {
	char *data;
	size_t len, cap;
	uint32_t *slots; /* open addressing: offset + 1, or 0 for empty */
	size_t nslots, used;
};

/* A kept registry row before it is written out. */
struct row {
	uint32_t name, desc; /* offsets in the pool */
	uint16_t lo, hi;
	enum dx_proto proto;
	unsigned line; /* file order, to keep equal ports in registry order */
};

static const char *progname = "gen_registry";

/* The pool and rows, for the qsort() comparators, which take no context. */
static const struct pool *sort_pool;
static const struct row *sort_rows;

/* The generated file, and whether a write to it failed. */
struct output {
	FILE *f;
	int failed;
};

static void fail(const char *path, unsigned line, const char *fmt, ...)
        __attribute__((format(printf, 3, 4), noreturn));
static void emit(struct output *o, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

/* Prints "gen_registry: PATH:LINE: MESSAGE" (LINE 0: no line) and exits 1. */
static void
fail(const char *path, unsigned line, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (line > 0)
		(void)fprintf(stderr, "%s: %s:%u: %s\n", progname, path, line,
		              msg);
	else
		(void)fprintf(stderr, "%s: %s: %s\n", progname, path, msg);
	exit(1);
}

/*
 * Writes to the generated file. A failed write is remembered and reported
 * once, when the file is closed.
 */
static void
emit(struct output *o, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (vfprintf(o->f, fmt, ap) < 0)
		o->failed = 1;
	va_end(ap);
}

static void *
xrealloc(void *ptr, size_t size)
{
	ptr = realloc(ptr, size);
	if (ptr == NULL) {
		(void)fprintf(stderr, "%s: out of memory\n", progname);
		exit(1);
	}
	return ptr;
}

/* Reads all of PATH into a buffer with one spare byte past *LEN. */
static char *
read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	size_t cap = 1 << 20, n = 0;
	char *buf = NULL;

	if (f == NULL)
		fail(path, 0, "%s", strerror(errno));
	do {
		cap *= 2;
		buf = xrealloc(buf, cap);
		n += fread(buf + n, 1, cap - n - 1, f);
	} while (n == cap - 1);
	if (ferror(f) || fclose(f) != 0)
		fail(path, 0, "read error");
	buf[n] = '\0';
	*len = n;
	return buf;
}

/* Consumes what ends a field: a comma, CRLF or LF, or the end of input. */
static int
take_end(struct csv *c)
{
	if (c->p == c->end)
		return END_INPUT;
	if (*c->p == ',') {
		c->p++;
		return END_FIELD;
	}
	if (*c->p == '\r' && (c->p + 1 == c->end || c->p[1] != '\n'))
		fail(c->path, c->line, "carriage return without a line feed");
	if (*c->p == '\r')
		c->p++;
	if (*c->p != '\n')
		fail(c->path, c->line, "unexpected '%c' after a quoted field",
		     *c->p);
	c->p++;
	c->line++;
	return END_RECORD;
}

/* Reads a quoted field in place, turning "" into ". */
static int
read_quoted(struct csv *c, char **field)
{
	char *out = c->p;
	unsigned opened = c->line;
	int end;

	*field = out;
	for (c->p++;; c->p++) {
		if (c->p == c->end)
			fail(c->path, c->line,
			     "quoted field opened on line %u is never closed",
			     opened);
		if (*c->p == '"' && (c->p + 1 == c->end || c->p[1] != '"'))
			break;
		if (*c->p == '"')
			c->p++;
		else if (*c->p == '\n')
			c->line++;
		*out++ = *c->p;
	}
	c->p++;
	end = take_end(c);
	*out = '\0';
	return end;
}

/* Reads one field in place into *FIELD; returns what ended it. */
static int
read_field(struct csv *c, char **field)
{
	char *stop;
	int end;

	if (c->p < c->end && *c->p == '"')
		return read_quoted(c, field);
	*field = c->p;
	while (c->p < c->end && *c->p != ',' && *c->p != '\n' &&
	       *c->p != '\r') {
		if (*c->p == '"')
			fail(c->path, c->line,
			     "quote inside an unquoted field");
		c->p++;
	}
	stop = c->p;
	end = take_end(c);
	*stop = '\0';
	return end;
}

/* Reads one record into FIELDS; returns the field count, 0 at the end. */
static size_t
read_record(struct csv *c, char **fields)
{
	size_t n = 0;

	if (c->p == c->end)
		return 0;
	do {
		if (n == MAX_FIELDS)
			fail(c->path, c->line, "more than %d fields",
			     MAX_FIELDS);
	} while (read_field(c, &fields[n++]) == END_FIELD);
	return n;
}

/* The column of the header named NAME. */
static size_t
find_column(const struct csv *c, char **header, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(header[i], name) == 0)
			return i;
	fail(c->path, 1, "no '%s' column in the header", name);
}

static uint32_t
hash_string(const char *s)
{
	uint32_t h = 2166136261u; /* FNV-1a */

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

/* Grows the hash table of P to twice its size and re-inserts every string. */
static void
pool_rehash(struct pool *p)
{
	size_t n = p->nslots ? p->nslots * 2 : 4096;
	uint32_t *slots = xrealloc(NULL, n * sizeof(*slots));

	memset(slots, 0, n * sizeof(*slots));
	for (size_t i = 0; i < p->nslots; i++) {
		size_t j;
		if (p->slots[i] == 0)
			continue;
		j = hash_string(p->data + p->slots[i] - 1) & (n - 1);
		while (slots[j] != 0)
			j = (j + 1) & (n - 1);
		slots[j] = p->slots[i];
	}
	free(p->slots);
	p->slots = slots;
	p->nslots = n;
}

/* The offset of S in the pool, adding S if it is not there yet. */
static uint32_t
pool_add(struct pool *p, const char *s)
{
	size_t len = strlen(s) + 1, i;

	while (p->data == NULL || p->len + len > p->cap) {
		p->cap = p->cap ? p->cap * 2 : 65536;
		p->data = xrealloc(p->data, p->cap);
	}
	if (2 * (p->used + 1) > p->nslots)
		pool_rehash(p);
	i = hash_string(s) & (p->nslots - 1);
	for (; p->slots[i] != 0; i = (i + 1) & (p->nslots - 1))
		if (strcmp(p->data + p->slots[i] - 1, s) == 0)
			return p->slots[i] - 1;
	memcpy(p->data + p->len, s, len);
	p->slots[i] = (uint32_t)p->len + 1;
	p->used++;
	p->len += len;
	return (uint32_t)(p->len - len);
}

/* Parses LEN decimal digits at S (1 to 5 of them, at most 65535). */
static int
parse_number(const char *s, size_t len, uint16_t *out)
{
	unsigned long v = 0;

	if (len == 0 || len > 5)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v > 65535)
		return -1;
	*out = (uint16_t)v;
	return 0;
}

/* Parses "N" or "N-M" with N <= M. */
static int
parse_ports(const char *text, uint16_t *lo, uint16_t *hi)
{
	const char *dash = strchr(text, '-');

	if (dash == NULL) {
		if (parse_number(text, strlen(text), lo) != 0)
			return -1;
		*hi = *lo;
		return 0;
	}
	if (parse_number(text, (size_t)(dash - text), lo) != 0 ||
	    parse_number(dash + 1, strlen(dash + 1), hi) != 0)
		return -1;
	return *lo <= *hi ? 0 : -1;
}

static int
parse_proto(const char *text, enum dx_proto *proto)
{
	static const char *const names[] = {
	        [DX_PROTO_TCP] = "tcp",
	        [DX_PROTO_UDP] = "udp",
	        [DX_PROTO_SCTP] = "sctp",
	        [DX_PROTO_DCCP] = "dccp",
	};

	for (size_t i = DX_PROTO_TCP; i < sizeof(names) / sizeof(*names); i++)
		if (strcmp(text, names[i]) == 0) {
			*proto = (enum dx_proto)i;
			return 0;
		}
	return -1;
}

/* A service name is printable ASCII: strcasecmp() then orders it alike
 * in every locale. */
static int
valid_name(const char *s)
{
	for (; *s; s++)
		if (*s < 0x20 || *s > 0x7e)
			return 0;
	return 1;
}

/* Cuts a description in place to its first line, trimmed and capped. */
static char *
short_description(char *s)
{
	size_t len;

	s += strspn(s, " \t");
	len = strcspn(s, "\r\n");
	if (len > DESC_MAX) {
		len = DESC_MAX;
		while (len > 0 && ((unsigned char)s[len] & 0xc0) == 0x80)
			len--; /* do not split a UTF-8 sequence */
	}
	while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
		len--;
	s[len] = '\0';
	return s;
}

/* The columns of the registry this tool reads. */
struct columns {
	size_t count, name, port, proto, desc;
};

/*
 * Turns one record (starting on LINE) into *ROW. Returns 1 for a kept row,
 * 0 for a row without a name, port or protocol; exits on a malformed one.
 */
static int
make_row(const struct csv *c, unsigned line, char **f,
         const struct columns *col, struct pool *pool, struct row *row)
{
	if (f[col->name][0] == '\0' || f[col->port][0] == '\0' ||
	    f[col->proto][0] == '\0')
		return 0;
	if (!valid_name(f[col->name]))
		fail(c->path, line, "service name '%s' is not printable ASCII",
		     f[col->name]);
	if (parse_ports(f[col->port], &row->lo, &row->hi) != 0)
		fail(c->path, line, "bad port number '%s'", f[col->port]);
	if (parse_proto(f[col->proto], &row->proto) != 0)
		fail(c->path, line, "unknown transport protocol '%s'",
		     f[col->proto]);
	row->name = pool_add(pool, f[col->name]);
	row->desc = pool_add(pool, short_description(f[col->desc]));
	row->line = line;
	if (row->name >= (1u << NAME_BITS))
		fail(c->path, line, "string pool too large for the row format");
	return 1;
}

/* Reads the header and finds the columns this tool needs. */
static void
read_header(struct csv *c, struct columns *col)
{
	char *f[MAX_FIELDS];

	if (c->end - c->p >= 3 && memcmp(c->p, "\xef\xbb\xbf", 3) == 0)
		c->p += 3; /* a UTF-8 byte order mark */
	col->count = read_record(c, f);
	if (col->count == 0)
		fail(c->path, 1, "empty file: no header");
	col->name = find_column(c, f, col->count, "Service Name");
	col->port = find_column(c, f, col->count, "Port Number");
	col->proto = find_column(c, f, col->count, "Transport Protocol");
	col->desc = find_column(c, f, col->count, "Description");
}

/* Parses the whole registry; returns the kept rows and their count. */
static struct row *
parse_registry(struct csv *c, struct pool *pool, size_t *count)
{
	struct columns col;
	struct row *rows = NULL;
	size_t n = 0, cap = 0, nf;
	char *f[MAX_FIELDS];
	unsigned line;

	read_header(c, &col);
	for (line = c->line; (nf = read_record(c, f)) > 0; line = c->line) {
		if (nf != col.count)
			fail(c->path, line,
			     "%zu fields, but the header has %zu", nf,
			     col.count);
		if (n == cap) {
			cap = cap ? cap * 2 : 4096;
			rows = xrealloc(rows, cap * sizeof(*rows));
		}
		n += (size_t)make_row(c, line, f, &col, pool, &rows[n]);
	}
	if (n == 0 || n > ROWS_MAX)
		fail(c->path, 0,
		     "%zu rows with a name, port and protocol "
		     "(expected 1 to %d)",
		     n, ROWS_MAX);
	*count = n;
	return rows;
}

/* Orders rows by port, then in file order. */
static int
compare_ports(const void *a, const void *b)
{
	const struct row *x = a, *y = b;

	if (x->lo != y->lo)
		return x->lo < y->lo ? -1 : 1;
	return x->line < y->line ? -1 : x->line > y->line;
}

/* Orders row numbers by name (ignoring case), then by row number. */
static int
compare_names(const void *a, const void *b)
{
	uint16_t x = *(const uint16_t *)a, y = *(const uint16_t *)b;
	int cmp = strcasecmp(sort_pool->data + sort_rows[x].name,
	                     sort_pool->data + sort_rows[y].name);

	return cmp != 0 ? cmp : (x > y) - (x < y);
}

/* Writes S as the body of a C string literal. */
static void
emit_escaped(struct output *out, const char *s)
{
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\' || ch == '?') /* ? for trigraphs */
			emit(out, "\\%c", ch);
		else if (ch < 0x20 || ch > 0x7e)
			emit(out, "\\%03o", ch);
		else
			emit(out, "%c", ch);
	}
}

static void
emit_pool(struct output *out, const struct pool *pool)
{
	emit(out, "const char dx__registry_pool[] =\n");
	for (size_t off = 0; off < pool->len;
	     off += strlen(pool->data + off) + 1) {
		emit(out, "\t\"");
		emit_escaped(out, pool->data + off);
		emit(out, "\\0\"\n");
	}
	emit(out, "\t;\n\n");
}

static void
emit_rows(struct output *out, const struct row *rows, size_t n)
{
	unsigned span = 0;

	emit(out, "const struct dx__registry_row dx__registry[] = {\n");
	for (size_t i = 0; i < n; i++) {
		emit(out, "\t{%u, %u, %u, %u, %u},\n", rows[i].name,
		     (unsigned)rows[i].proto, rows[i].desc, rows[i].lo,
		     rows[i].hi);
		if ((unsigned)(rows[i].hi - rows[i].lo) > span)
			span = (unsigned)(rows[i].hi - rows[i].lo);
	}
	emit(out, "};\n\nconst size_t dx__registry_len = %zu;\n", n);
	emit(out, "const uint16_t dx__registry_max_span = %u;\n", span);
	emit(out, "struct dx_service_entry dx__registry_entries[%zu];\n\n", n);
}

static void
emit_name_index(struct output *out, const uint16_t *index, size_t n)
{
	emit(out, "const uint16_t dx__registry_name_index[] = {");
	for (size_t i = 0; i < n; i++)
		emit(out, "%s%u,", i % 12 ? " " : "\n\t", index[i]);
	emit(out, "\n};\n");
}

/* Writes the table to OUT via a temporary file, so failure leaves none. */
static void
write_table(const char *path, const struct pool *pool, const struct row *rows,
            const uint16_t *index, size_t n)
{
	size_t len = strlen(path) + 5;
	char *tmp = xrealloc(NULL, len);
	struct output out = {0};

	(void)snprintf(tmp, len, "%s.tmp", path);
	out.f = fopen(tmp, "w");
	if (out.f == NULL)
		fail(tmp, 0, "%s", strerror(errno));
	emit(&out, "/* Generated by tools/gen_registry.c from IANA's service "
	           "registry. Do not edit. */\n#include \"registry.h\"\n\n");
	emit_pool(&out, pool);
	emit_rows(&out, rows, n);
	emit_name_index(&out, index, n);
	out.failed |= ferror(out.f) != 0;
	out.failed |= fclose(out.f) != 0;
	if (out.failed || rename(tmp, path) != 0) {
		(void)remove(tmp);
		fail(path, 0, "cannot write: %s", strerror(errno));
	}
	free(tmp);
}

int
main(int argc, char **argv)
{
	struct pool pool = {0};
	struct csv c = {0};
	struct row *rows;
	uint16_t *index;
	char *text;
	size_t n, len;

	if (argc != 3) {
		(void)fprintf(stderr, "usage: %s IN.csv OUT.c\n", progname);
		return 2;
	}
	c.path = argv[1];
	c.p = text = read_file(argv[1], &len);
	c.end = c.p + len;
	c.line = 1;
	rows = parse_registry(&c, &pool, &n);
	qsort(rows, n, sizeof(*rows), compare_ports);
	index = xrealloc(NULL, n * sizeof(*index));
	for (size_t i = 0; i < n; i++)
		index[i] = (uint16_t)i;
	sort_pool = &pool;
	sort_rows = rows;
	qsort(index, n, sizeof(*index), compare_names);
	sort_pool = NULL;
	sort_rows = NULL;
	write_table(argv[2], &pool, rows, index, n);
	free(index);
	free(rows);
	free(pool.data);
	free(pool.slots);
	free(text);
	return 0;
}
