/* SPDX-License-Identifier: MIT */
/*
 * util.c - what the subcommands share: error lines, strict number and
 * duration parsing, JSON strings, and the --trace printer.
 */
#include "cli.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

void
cli_error(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fputs("duplex: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int
cli_usage_error(const char *command)
{
	cli_error("%s: bad usage (see 'duplex %s --help')", command, command);
	return DX_EXIT_USAGE;
}

void
cli_json_string(FILE *out, const char *s)
{
	fputc('"', out);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(out, "\\%c", *p);
		else if (*p < 0x20)
			fprintf(out, "\\u%04x", *p);
		else
			fputc(*p, out);
	}
	fputc('"', out);
}

static void
trace_line(void *ctx, const char *line)
{
	FILE *out = ctx;

	fprintf(out, "trace: %s\n", line);
}

void
cli_trace_to_stderr(void)
{
	setvbuf(stderr, NULL, _IOLBF, 0);
	dx_trace_set(trace_line, stderr);
}

/* A unit a duration may carry, and what one of it is worth. */
struct unit {
	const char *suffix;
	double worth;
};

/* A number with one of the N UNITS after it, in the units' measure. */
static long long
parse_units(const char *text, const struct unit *units, size_t n)
{
	char *end;
	double value;

	if (text == NULL || *text < '0' || *text > '9')
		return -1;
	errno = 0;
	value = strtod(text, &end);
	if (errno != 0 || value < 0 || value > 1e9)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (strcmp(end, units[i].suffix) == 0)
			return (long long)(value * units[i].worth + 0.5);
	return -1;
}

long long
cli_parse_duration(const char *text)
{
	static const struct unit ms[] = {
	        {"ms", 1},      {"s", 1000}, {"m", 60000},
	        {"h", 3600000}, {"", 1000},
	};

	return parse_units(text, ms, sizeof(ms) / sizeof(*ms));
}

long long
cli_parse_duration_us(const char *text)
{
	static const struct unit us[] = {
	        {"us", 1}, {"ms", 1000}, {"s", 1000000}, {"", 1000000}};

	return parse_units(text, us, sizeof(us) / sizeof(*us));
}

int
cli_parse_count(const char *text, long long lo, long long hi, long long *out)
{
	char *end;
	long long value;

	if (text == NULL || *text < '0' || *text > '9')
		return -1;
	errno = 0;
	value = strtoll(text, &end, 10);
	if (errno != 0 || *end != '\0' || value < lo || value > hi)
		return -1;
	*out = value;
	return 0;
}

long long
cli_parse_size(const char *text)
{
	static const char units[] = "KMG";
	long long n;
	char *end;
	const char *u;
	int shift;

	if (text == NULL || *text < '0' || *text > '9')
		return -1;
	errno = 0;
	n = strtoll(text, &end, 10);
	if (errno != 0)
		return -1;
	if (*end == '\0')
		return n;
	u = strchr(units, *end);
	if (u == NULL || end[1] != '\0')
		return -1;
	shift = 10 * (int)(u - units + 1);
	return n > (LLONG_MAX >> shift) ? -1 : n << shift;
}
