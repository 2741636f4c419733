/* SPDX-License-Identifier: MIT */
/*
 * main.c - the duplex command: parses the subcommand name and hands the
 * rest of the arguments to that subcommand's file. The table below is the
 * list of subcommands; adding one means one row and one file.
 */
#include "cli.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

static const struct cli_command commands[] = {
        {"serve", cmd_serve, "serve services on endpoints"},
        {"send", cmd_send, "send a datagram and print the reply"},
        {"connect", cmd_connect, "stdin to a stream endpoint, it to stdout"},
        {"bench", cmd_bench, "load-test a server: ops/s, latency, errors"},
        {"port", cmd_port,
         "port numbers, IANA ranges and the service registry"},
};

static void
print_usage(FILE *out)
{
	fprintf(out, "usage: duplex COMMAND [ARGS...]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(out, "  %-10s %s\n", commands[i].name,
		        commands[i].summary);
	fprintf(out, "\n'duplex COMMAND --help' describes one command; "
	             "man duplex describes them all.\n");
}

static const struct cli_command *
find_command(const char *name)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

int
main(int argc, char **argv)
{
	const struct cli_command *cmd;
	int rc;

	/*
	 * A peer that closes early must cost an EPIPE, never the process:
	 * the library sends with MSG_NOSIGNAL, and this covers plain write()s
	 * to pipes and terminals too.
	 */
	signal(SIGPIPE, SIG_IGN);
	if (argc < 2) {
		print_usage(stderr);
		return DX_EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		print_usage(stdout);
		return DX_EXIT_OK;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("duplex %s\n", DX_VERSION);
		return DX_EXIT_OK;
	}
	cmd = find_command(argv[1]);
	if (cmd == NULL) {
		cli_error("unknown command '%s' (see 'duplex --help')",
		          argv[1]);
		return DX_EXIT_USAGE;
	}
	rc = cmd->run(argc - 1, argv + 1);
	/* Output is checked once here rather than at every printf (a
	 * subcommand that failed has said why already). */
	if (rc == DX_EXIT_OK && (fflush(stdout) != 0 || ferror(stdout))) {
		cli_error("cannot write to standard output");
		return DX_EXIT_FAIL;
	}
	return rc;
}
