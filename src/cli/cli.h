/* SPDX-License-Identifier: MIT */
/*
 * cli.h - what the duplex command's subcommands share: the exit codes,
 * error reporting in one format ("duplex: what failed: why"), and small
 * output helpers. Only the command prints and exits; the library never does.
 */
#ifndef DX_CLI_H
#define DX_CLI_H

#include "config.h"

#include <stdio.h>

#include "duplex.h"

/* Exit codes, documented in docs/duplex.1 (EXIT STATUS). */
enum {
	DX_EXIT_OK = 0,      /* success */
	DX_EXIT_FAIL = 1,    /* the operation failed (I/O, no answer, ...) */
	DX_EXIT_USAGE = 2,   /* bad usage or bad input; nothing was done */
	DX_EXIT_TIMEOUT = 3, /* no answer before the deadline */
	DX_EXIT_REFUSED = 4  /* the peer refused (RST, ICMP unreachable) */
};

/* One subcommand: "duplex NAME ARGS...". RUN returns the exit code. */
struct cli_command {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;
};

/*
 * Prints "duplex: MESSAGE" and a newline on stderr. Messages quote the
 * offending input: duplex: bad endpoint 'tcp://x:65536': port 65536 is
 * out of range 0-65535.
 */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prints "duplex: COMMAND: see 'duplex COMMAND --help'" and returns 2. */
int cli_usage_error(const char *command);

/* Writes S as a JSON string literal (quotes and escapes included). */
void cli_json_string(FILE *out, const char *s);

/* Installs a trace function that prints each socket call on stderr. */
void cli_trace_to_stderr(void);

/*
 * Parses a duration: a number with an optional unit ms, s (default), m, h
 * ("1.5", "200ms", "2m"). Returns milliseconds, or -1 for bad text.
 */
long long cli_parse_duration(const char *text);
/* The same in microseconds, for units us, ms and s (the default). */
long long cli_parse_duration_us(const char *text);

/*
 * Parses a size: a whole number of bytes with an optional binary unit K,
 * M or G ("65536", "64M"). Returns the bytes, or -1 for bad text.
 */
long long cli_parse_size(const char *text);

/* Strict parse of a count in [LO, HI]; returns 0 or -1 for bad text. */
int cli_parse_count(const char *text, long long lo, long long hi,
                    long long *out);

/*
 * --as SERVICE (answer.c): the answer of a service that sends and closes,
 * checked and shown. CLI_AS_RAW: any bytes, shown as they are.
 */
enum { CLI_AS_RAW = 0, CLI_AS_TIME, CLI_AS_DAYTIME };

/* The most a checked answer may be: beyond it a server is streaming. */
#define CLI_ANSWER_MAX 1024

/* "time" or "daytime" as CLI_AS_*, or -1 after COMMAND's error line. */
int cli_parse_answer(const char *command, const char *text);

/* 0 when the N bytes at BUF are an answer AS allows, else -1 and WHY. */
int cli_check_answer(int as, const uint8_t *buf, size_t n, char *why,
                     size_t whylen);

/* Prints a checked answer: time as an ISO 8601 UTC date, daytime as is. */
void cli_print_answer(int as, const uint8_t *buf, size_t n);

/* The subcommands (one file each under src/cli/). */
int cmd_port(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_send(int argc, char **argv);
int cmd_connect(int argc, char **argv);
int cmd_bench(int argc, char **argv);

#endif /* DX_CLI_H */
