/* SPDX-License-Identifier: MIT */
/*
 * serve.c - "duplex serve [OPTIONS] SERVICE ENDPOINT [SERVICE ENDPOINT...]":
 * parses the pairs and options (in any order), blocks the signals the
 * server handles and turns them into a signalfd, opens every listener,
 * prints one "serving SERVICE on ENDPOINT" line per listener on stdout
 * (port 0 shows the port the kernel chose), and serves until SIGTERM or
 * SIGINT, then exits 0.
 */
#include "cli.h"
#include "server/privs.h"
#include "server/server.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>

static const char usage[] =
        "usage: duplex serve [OPTIONS] [SERVICE ENDPOINT...]\n"
        "\n"
        "Serves each SERVICE on its ENDPOINT until SIGTERM or SIGINT. A "
        "udp://\n"
        "or unixgram:// endpoint is served by the iterative server: one\n"
        "socket, one datagram at a time, in arrival order. A tcp:// or "
        "unix://\n"
        "endpoint is served by the concurrent server: one unit of concurrency\n"
        "per client, as --model says. With no SERVICE ENDPOINT pairs, serves\n"
        "the default table: the six services on TCP and UDP on 127.0.0.1, at\n"
        "their well-known ports when it may bind them, else at 10000 + port.\n"
        "\n"
        "services: echo discard chargen qotd daytime time 'exec:PROGRAM ARGS'\n"
        "\n"
        "concurrent server options:\n"
        "  --model NAME              epoll (default), fork, prefork, thread "
        "or\n"
        "                            uring (docs/models.md)\n"
        "  --workers N               prefork's worker processes, epoll's\n"
        "                            reactor threads (default: one per CPU)\n"
        "  --max-conns N             at most N connections; then stop\n"
        "                            accepting until one ends\n"
        "  --when-full queue|refuse  at --max-conns, let clients wait in the\n"
        "                            backlog (queue, the default) or accept\n"
        "                            and close them at once (refuse)\n"
        "  --per-source N            at most N connections per IPv4 address\n"
        "                            or IPv6 /64; more are refused\n"
        "  --rate N/s                accept at most N new connections a "
        "second\n"
        "                            on each listener (a bucket per\n"
        "                            service, as xinetd's cps)\n"
        "  --idle DURATION           close after this long without traffic\n"
        "                            (default 5m; 0 turns it off)\n"
        "  --lifetime DURATION       close after this long in all (default "
        "off)\n"
        "  --write-timeout DURATION  close when the peer reads nothing for "
        "this\n"
        "                            long (default 30s)\n"
        "  --linger DURATION         after our half-close, read the peer's "
        "rest\n"
        "                            for at most this long (default 5s)\n"
        "  --drain DURATION          on SIGTERM, time connections get to "
        "finish\n"
        "                            (default 10s)\n"
        "  --allow RULE, --deny RULE access rules, first match wins: an IPv4 "
        "or\n"
        "                            IPv6 address or CIDR, uid:N or gid:N\n"
        "  --rules FILE              more rules, a line each ('allow RULE',\n"
        "                            'deny RULE', '#' comments), after those\n"
        "                            above; read again on SIGHUP\n"
        "  --user USER, --group GROUP  drop privileges after binding\n"
        "  --mode OCTAL              permissions of unix socket files\n"
        "  --backlog N               listen backlog (default 1024)\n"
        "\n"
        "datagram server options:\n"
        "  --no-guard[=SERVICE,...]  turn the datagram reflection guard and\n"
        "                            reply budget off (for all, or the named)\n"
        "  --budget N/s              replies per second per source for\n"
        "                            amplifying services (default 20/s)\n"
        "  --budget-bytes N/s        reply bytes per second per source\n"
        "                            (default 16384/s)\n"
        "  --busy-poll DURATION      after each datagram, go on receiving\n"
        "                            this long without sleeping (e.g. 50us;\n"
        "                            at most 10ms; default 0: sleep at once)\n"
        "  --quotes FILE             qotd quotations, separated by '%' lines\n"
        "  --exec-timeout DURATION   kill an exec: run after this (default "
        "10s)\n"
        "  --exec-cpu DURATION       exec: programs' CPU time limit "
        "(RLIMIT_CPU;\n"
        "                            SIGXCPU, then SIGKILL a second later)\n"
        "  --exec-files N            exec: programs' descriptor limit\n"
        "                            (RLIMIT_NOFILE)\n"
        "  --exec-memory SIZE        exec: programs' address space limit\n"
        "                            (RLIMIT_AS; e.g. 256M)\n"
        "  --trace                   print every socket call on stderr\n"
        "  -v, --verbose             log every dropped datagram\n"
        "  -q, --quiet               log errors only\n"
        "  -h, --help                this text\n";

struct serve_opts {
	char *no_guard; /* NULL: guard on; "": off for all; else a list */
	struct dx_quotes quotes;
	int have_quotes;
	const char *user, *group;
};

static int apply_number(int c, struct dx_server *srv);

static void
log_line(void *ctx, int level, const char *line)
{
	(void)ctx;
	fprintf(stderr, "duplex: %s%s\n",
	        level == DX_LOG_ERROR  ? "error: "
	        : level == DX_LOG_WARN ? "warning: "
	                               : "",
	        line);
}

/* Parses "N/s" (or a plain N) into a rate per second. */
static int
parse_rate(const char *text, double *rate)
{
	char buf[32];
	size_t len = strlen(text);
	long long n;

	if (len >= sizeof(buf))
		return -1;
	memcpy(buf, text, len + 1);
	if (len > 2 && strcmp(buf + len - 2, "/s") == 0)
		buf[len - 2] = '\0';
	if (cli_parse_count(buf, 0, 100000000, &n) < 0)
		return -1;
	*rate = (double)n;
	return 0;
}

/* 1 when the guard is on for SERVICE under the --no-guard list. */
static int
guard_for(const struct serve_opts *o, const char *service)
{
	size_t len;
	const char *p;

	if (o->no_guard == NULL)
		return 1;
	if (*o->no_guard == '\0')
		return 0;
	len = strcspn(service, ":");
	for (p = o->no_guard; *p;
	     p += strcspn(p, ",") + (p[strcspn(p, ",")] != 0))
		if (strcspn(p, ",") == len && strncmp(p, service, len) == 0)
			return 0;
	return 1;
}

static const struct option long_opts[] = {
        {"no-guard", optional_argument, NULL, 'G'},
        {"budget", required_argument, NULL, 'b'},
        {"budget-bytes", required_argument, NULL, 'B'},
        {"quotes", required_argument, NULL, 'Q'},
        {"busy-poll", required_argument, NULL, 'P'},
        {"exec-timeout", required_argument, NULL, 'T'},
        {"exec-cpu", required_argument, NULL, 'C'},
        {"exec-files", required_argument, NULL, 'F'},
        {"exec-memory", required_argument, NULL, 'X'},
        {"trace", no_argument, NULL, 't'},
        {"model", required_argument, NULL, 'M'},
        {"max-conns", required_argument, NULL, 'c'},
        {"when-full", required_argument, NULL, 'f'},
        {"per-source", required_argument, NULL, 'p'},
        {"rate", required_argument, NULL, 'r'},
        {"idle", required_argument, NULL, 'I'},
        {"lifetime", required_argument, NULL, 'L'},
        {"write-timeout", required_argument, NULL, 'W'},
        {"linger", required_argument, NULL, 'l'},
        {"drain", required_argument, NULL, 'D'},
        {"allow", required_argument, NULL, 'A'},
        {"deny", required_argument, NULL, 'd'},
        {"rules", required_argument, NULL, 'R'},
        {"user", required_argument, NULL, 'u'},
        {"group", required_argument, NULL, 'g'},
        {"mode", required_argument, NULL, 'm'},
        {"backlog", required_argument, NULL, 'k'},
        {"workers", required_argument, NULL, 'n'},
        {"verbose", no_argument, NULL, 'v'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
};

/* The duration options: where each one's value goes. */
static int64_t *
duration_slot(int c, struct dx_server *srv)
{
	switch (c) {
	case 'I':
		return &srv->limits.idle_ms;
	case 'L':
		return &srv->limits.lifetime_ms;
	case 'W':
		return &srv->limits.write_timeout_ms;
	case 'l':
		return &srv->limits.linger_ms;
	case 'D':
		return &srv->drain_ms;
	default:
		return NULL;
	}
}

/* The concurrent server's options; returns 0, or -1 after an error. */
static int
apply_stream_option(int c, struct dx_server *srv, struct serve_opts *o)
{
	char why[256];
	long long n;

	switch (c) {
	case 'M':
		srv->model = dx__model_find(optarg);
		if (srv->model)
			return 0;
		cli_error("unknown model '%s' (this build has: %s)", optarg,
		          dx__model_names());
		return -1;
	case 'A':
	case 'd':
		if (dx__rules_add(&srv->rules, c == 'A', optarg, why,
		                  sizeof(why)) == 0)
			return 0;
		cli_error("bad rule for --%s: %s", c == 'A' ? "allow" : "deny",
		          why);
		return -1;
	case 'R':
		srv->rules_file = optarg;
		return 0;
	case 'f':
		if (strcmp(optarg, "queue") == 0 ||
		    strcmp(optarg, "refuse") == 0) {
			srv->refuse_full = optarg[0] == 'r';
			return 0;
		}
		cli_error("bad value '%s' for --when-full (queue or refuse)",
		          optarg);
		return -1;
	case 'u':
		o->user = optarg;
		return 0;
	case 'g':
		o->group = optarg;
		return 0;
	case 'm':
		n = strtol(optarg, NULL, 8);
		if (strspn(optarg, "01234567") == strlen(optarg) &&
		    strlen(optarg) <= 4 && *optarg) {
			srv->unix_mode = (int)n;
			return 0;
		}
		cli_error("bad mode '%s' (expected octal, e.g. 660)", optarg);
		return -1;
	}
	return apply_number(c, srv);
}

/* The numeric options of the concurrent server. */
static int
apply_number(int c, struct dx_server *srv)
{
	int64_t *slot = duration_slot(c, srv);
	long long n;

	if (slot != NULL) {
		n = cli_parse_duration(optarg);
		if (n >= 0) {
			*slot = n;
			return 0;
		}
		cli_error("bad duration '%s' (e.g. 500ms, 10s, 2m; 0 is off)",
		          optarg);
		return -1;
	}
	if (c == 'r')
		return parse_rate(optarg, &srv->rate) == 0
		               ? 0
		               : (cli_error("bad rate '%s' (expected N/s)",
		                            optarg),
		                  -1);
	if (cli_parse_count(optarg, 1, 1000000, &n) < 0) {
		cli_error("bad number '%s' (expected 1-1000000)", optarg);
		return -1;
	}
	if (c == 'c')
		srv->max_conns = (size_t)n;
	else if (c == 'p')
		srv->per_source = (uint32_t)n;
	else if (c == 'n')
		srv->workers = (size_t)n;
	else
		srv->backlog = (int)n;
	return 0;
}

/*
 * --exec-cpu, --exec-files, --exec-memory: a limit for exec: programs, no
 * higher than the server's own hard limit (which it could not give).
 */
static int
apply_rlimit(int c, struct dx_server *srv)
{
	static const struct {
		int opt, resource;
		const char *name, *expect;
	} map[] = {
	        {'C', RLIMIT_CPU, "exec-cpu", "a duration of 1s or more"},
	        {'F', RLIMIT_NOFILE, "exec-files", "a count of 1 or more"},
	        {'X', RLIMIT_AS, "exec-memory", "a size, e.g. 256M"},
	};
	struct dx_rlimits *lim = &srv->exec_rlimits;
	struct rlimit hard;
	long long v = -1;
	size_t i = 0;

	while (map[i].opt != c)
		i++;
	if (c == 'C') {
		long long ms = cli_parse_duration(optarg);
		v = ms >= 1000 ? (ms + 999) / 1000 : -1; /* whole seconds */
	} else if (c == 'F') {
		if (cli_parse_count(optarg, 1, INT_MAX, &v) < 0)
			v = -1;
	} else {
		v = cli_parse_size(optarg);
	}
	if (v <= 0) {
		cli_error("bad value '%s' for --%s (expected %s)", optarg,
		          map[i].name, map[i].expect);
		return -1;
	}
	if (getrlimit(map[i].resource, &hard) == 0 &&
	    hard.rlim_max != RLIM_INFINITY &&
	    (rlim_t)v + (c == 'C') > hard.rlim_max) {
		cli_error("--%s %s is above this process's hard limit (%llu)",
		          map[i].name, optarg,
		          (unsigned long long)hard.rlim_max);
		return -1;
	}
	if (c == 'C')
		lim->cpu_s = (uint64_t)v;
	else if (c == 'F')
		lim->files = (uint64_t)v;
	else
		lim->memory = (uint64_t)v;
	return 0;
}

/* --busy-poll's ceiling: past it, a server might as well never sleep. */
#define BUSY_POLL_MAX_US 10000

/* Applies one option; returns 0, 1 for --help, or -1 after an error. */
static int
apply_option(int c, struct dx_server *srv, struct serve_opts *o)
{
	char why[256];
	long long ms, us;

	if (strchr("McfprILWlDAdRugmkn", c) != NULL && c != 0)
		return apply_stream_option(c, srv, o);
	switch (c) {
	case 'G':
		o->no_guard = optarg ? optarg : "";
		return 0;
	case 'b':
	case 'B':
		if (parse_rate(optarg, c == 'b' ? &srv->budget_dgrams
		                                : &srv->budget_bytes) == 0)
			return 0;
		cli_error("bad rate '%s' (expected N/s)", optarg);
		return -1;
	case 'Q':
		if (o->have_quotes)
			dx__quotes_free(&o->quotes);
		if (dx__quotes_load(&o->quotes, optarg, why, sizeof(why)) < 0) {
			cli_error("%s", why);
			return -1;
		}
		o->have_quotes = 1;
		srv->quotes = &o->quotes;
		return 0;
	case 'P':
		us = cli_parse_duration_us(optarg);
		if (us >= 0 && us <= BUSY_POLL_MAX_US) {
			srv->busy_poll_us = us;
			return 0;
		}
		cli_error("bad duration '%s' for --busy-poll (0 to 10ms, e.g. "
		          "50us)",
		          optarg);
		return -1;
	case 'T':
		ms = cli_parse_duration(optarg);
		if (ms > 0) {
			srv->exec_timeout_ms = ms;
			return 0;
		}
		cli_error("bad duration '%s' (e.g. 500ms, 10s, 2m)", optarg);
		return -1;
	case 'C':
	case 'F':
	case 'X':
		return apply_rlimit(c, srv);
	case 't':
		cli_trace_to_stderr();
		return 0;
	case 'v':
		srv->verbosity = DX_LOG_DEBUG;
		return 0;
	case 'q':
		srv->verbosity = DX_LOG_ERROR;
		return 0;
	case 'h':
		fputs(usage, stdout);
		return 1;
	default:
		return -1;
	}
}

/*
 * 1 when this process may bind PORT on 127.0.0.1 for SCHEME now: root (or
 * CAP_NET_BIND_SERVICE) for ports below 1024, and nobody else there.
 */
static int
may_bind(enum dx_scheme scheme, uint16_t port)
{
	struct dx_endpoint ep = {.scheme = scheme, .host = "127.0.0.1"};
	int fd;

	ep.port = port;
	fd = dx_listen_endpoint(&ep, 0, 1, NULL, 0);
	if (fd < 0)
		return 0;
	dx_close(fd);
	return 1;
}

/*
 * The default table: every built-in service on TCP and UDP on 127.0.0.1
 * (never a public address by default), at its well-known port when that
 * can be bound, otherwise at 10,000 + the well-known port.
 */
static int
add_default_table(struct dx_server *srv, const struct serve_opts *o)
{
	static const enum dx_scheme schemes[] = {DX_SCHEME_TCP, DX_SCHEME_UDP};
	const struct dx_service *const *t;
	char ep[64], why[512];
	size_t n;

	t = dx__service_table(&n);
	for (size_t i = 0; i < n; i++) {
		if (t[i]->flags & DX_SVC_EXEC)
			continue;
		for (size_t s = 0; s < 2; s++) {
			uint16_t port = t[i]->port;
			if (!may_bind(schemes[s], port))
				port = (uint16_t)(10000 + port);
			snprintf(ep, sizeof(ep), "%s://127.0.0.1:%u",
			         dx_scheme_name(schemes[s]), port);
			if (dx__server_add(srv, t[i]->name, ep,
			                   guard_for(o, t[i]->name), why,
			                   sizeof(why)) < 0) {
				cli_error("%s", why);
				return -1;
			}
		}
	}
	return 0;
}

/* Adds the SERVICE ENDPOINT pairs left in ARGV after the options. */
static int
add_pairs(struct dx_server *srv, const struct serve_opts *o, int argc,
          char **argv)
{
	char why[512];

	if (argc == 0)
		return add_default_table(srv, o);
	if (argc % 2 != 0) {
		cli_error("serve: expected SERVICE ENDPOINT pairs "
		          "(see 'duplex serve --help')");
		return -1;
	}
	for (int i = 0; i < argc; i += 2)
		if (dx__server_add(srv, argv[i], argv[i + 1],
		                   guard_for(o, argv[i]), why,
		                   sizeof(why)) < 0) {
			cli_error("%s", why);
			return -1;
		}
	return 0;
}

/* Blocks the server's signals and returns a signalfd for them. */
static int
signal_fd(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGCHLD);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -1;
	return signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}

static void
print_listeners(const struct dx_server *srv)
{
	char addr[DX_ADDRSTRLEN];

	for (size_t i = 0; i < srv->nls; i++) {
		const struct dx_listener *l = &srv->ls[i];

		dx_addr_format(&l->bound, addr, sizeof(addr));
		printf("serving %s on %s://%s\n", l->name,
		       dx_scheme_name(l->ep.scheme), addr);
	}
	fflush(stdout);
}

/*
 * DUPLEX_BALANCE: how epoll reactors share a TCP listener: "exclusive"
 * (the default: one socket, EPOLLEXCLUSIVE) or "reuseport" (a socket
 * each). Returns 0, or -1 after an error line.
 */
static int
apply_balance(struct dx_server *srv)
{
	const char *v = getenv("DUPLEX_BALANCE");

	if (v == NULL || *v == '\0' || strcmp(v, "exclusive") == 0)
		return 0;
	if (strcmp(v, "reuseport") == 0) {
		srv->reuseport = 1;
		return 0;
	}
	cli_error("bad DUPLEX_BALANCE '%s' (expected exclusive or reuseport)",
	          v);
	return -1;
}

static int
run(struct dx_server *srv, const struct serve_opts *o)
{
	struct dx_privs privs;
	char why[512] = "";
	int err;

	if (apply_balance(srv) < 0)
		return DX_EXIT_USAGE;
	/* Look the user up before binding: a typo must not leave a server. */
	if (dx__privs_resolve(&privs, o->user, o->group, why, sizeof(why)) <
	    0) {
		cli_error("%s", why);
		return DX_EXIT_USAGE;
	}
	srv->sigfd = signal_fd();
	if (srv->sigfd < 0) {
		cli_error("serve: cannot set up signals: %s",
		          dx_strerror(-errno));
		return DX_EXIT_FAIL;
	}
	err = dx__server_open(srv, why, sizeof(why));
	if (err < 0) {
		cli_error("%s", why[0] ? why : dx_strerror(err));
		return DX_EXIT_FAIL;
	}
	if (dx__privs_drop(&privs, why, sizeof(why)) < 0) {
		cli_error("%s", why);
		return DX_EXIT_FAIL;
	}
	print_listeners(srv);
	err = dx__server_run(srv);
	dx__server_log_counters(srv);
	if (err < 0) {
		cli_error("serve: %s", dx_strerror(err));
		return DX_EXIT_FAIL;
	}
	return DX_EXIT_OK;
}

/*
 * The server, page-aligned: what it writes at every accept then lies on
 * one page (struct dx_server), the one page of it a fork child keeps.
 */
static struct dx_server *
server_new(void)
{
	size_t page = 4096,
	       len = (sizeof(struct dx_server) + page - 1) & ~(page - 1);

	return aligned_alloc(page, len);
}

int
cmd_serve(int argc, char **argv)
{
	struct dx_server *srv = server_new();
	struct serve_opts o = {0};
	int c, rc = DX_EXIT_USAGE;

	if (srv == NULL)
		return DX_EXIT_FAIL;
	dx__server_init(srv);
	srv->log = log_line;
	while ((c = getopt_long(argc, argv, "vqh", long_opts, NULL)) != -1) {
		int r = apply_option(c, srv, &o);
		if (r != 0) {
			rc = r > 0 ? DX_EXIT_OK : DX_EXIT_USAGE;
			goto out;
		}
	}
	if (srv->rules_file != NULL) {
		char why[512];

		srv->rules_cli = srv->rules;
		if (dx__rules_load(&srv->rules, srv->rules_file, why,
		                   sizeof(why)) < 0) {
			cli_error("%s", why);
			rc = DX_EXIT_USAGE;
			goto out;
		}
	}
	if (add_pairs(srv, &o, argc - optind, argv + optind) < 0)
		goto out;
	rc = run(srv, &o);
out:
	dx__server_close(srv);
	if (srv->sigfd >= 0)
		close(srv->sigfd);
	if (o.have_quotes)
		dx__quotes_free(&o.quotes);
	free(srv);
	return rc;
}
