/* SPDX-License-Identifier: MIT */
/*
 * send.c - "duplex send ENDPOINT [DATA]": the datagram client. Sends DATA
 * (or standard input) as one datagram on a connected socket, so the kernel
 * drops replies from any other source and an ICMP port unreachable comes
 * back as "refused"; waits for the reply, resending after each timeout
 * with the wait doubled; prints the reply. --count N repeats the probe
 * and ends with a loss and latency summary, as ping does. Each probe has
 * a socket of its own (a new source port or unix address): a reply to an
 * earlier probe that comes late, or twice, goes to a socket that is gone
 * and can never be taken for the answer to a later one. A server's
 * datagram carries no sequence number to tell them apart by.
 */
#include "cli.h"
#include "service/service.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/*
 * Room for the largest reply there can be (UDP over IPv6 carries 65,527
 * bytes, a unix datagram more): a longer one is reported as truncated,
 * never printed in part.
 */
#define REPLY_MAX DX_REQUEST_MAX

static const char usage[] =
        "usage: duplex send [OPTIONS] ENDPOINT [DATA]\n"
        "\n"
        "Sends DATA (or standard input) as one datagram to a udp:// or\n"
        "unixgram:// ENDPOINT and prints the reply.\n"
        "\n"
        "options:\n"
        "  -t, --timeout DURATION   wait per attempt (default 1s)\n"
        "  -r, --retries N          resends after a timeout, each waiting\n"
        "                           twice as long (default 2)\n"
        "  -c, --count N            send N probes and print a summary\n"
        "  -i, --interval DURATION  time between probes (default 1s)\n"
        "  -x, --hex                print replies as a hex dump\n"
        "      --as SERVICE         check the reply as SERVICE's answer and\n"
        "                           show it: time (4 bytes, shown as an\n"
        "                           ISO 8601 UTC date, read past the 2036\n"
        "                           wrap) or daytime (text, at most 1024\n"
        "                           bytes); without DATA the request is\n"
        "                           empty and standard input is not read\n"
        "      --trace              print every socket call on stderr\n"
        "  -h, --help               this text\n"
        "\n"
        "exit status: 0 every probe answered, 2 bad input, 3 no reply before\n"
        "the timeout, 4 refused (ICMP port unreachable), 1 other failure\n"
        "(with --as: a reply that is not the service's answer)\n";

struct send_opts {
	long long timeout_ms, interval_ms, retries, count;
	int hex, as; /* as: CLI_AS_* */
};

struct probe_stats {
	long long sent, received, late;
	double rtt_min, rtt_max, rtt_sum;
};

static void
print_hex(const uint8_t *p, size_t n)
{
	for (size_t off = 0; off < n; off += 16) {
		printf("%04zx ", off);
		for (size_t i = off; i < off + 16; i++)
			i < n ? printf(" %02x", p[i]) : printf("   ");
		printf("  |");
		for (size_t i = off; i < off + 16 && i < n; i++)
			putchar(p[i] >= 32 && p[i] < 127 ? p[i] : '.');
		printf("|\n");
	}
}

/* Discards replies that arrived after their probe gave up on them. */
static void
drain_late(int fd, uint8_t *buf, struct probe_stats *st)
{
	while (dx_recvfrom(fd, buf, REPLY_MAX, NULL) >= 0)
		st->late++;
}

/*
 * One probe: send, wait, resend after each timeout. Returns the reply
 * length, -ETIMEDOUT, -ECONNREFUSED or another -errno; *RTT_MS is the time
 * from the last send to the reply.
 */
static ssize_t
probe(int fd, const struct send_opts *o, const void *data, size_t len,
      uint8_t *buf, double *rtt_ms)
{
	long long wait_ms = o->timeout_ms;
	ssize_t n = -ETIMEDOUT;

	for (long long attempt = 0; attempt <= o->retries; attempt++) {
		int64_t t0 = dx_now_ms();
		struct timespec a, b;
		clock_gettime(CLOCK_MONOTONIC, &a);
		n = dx_send(fd, data, len);
		if (n < 0 && n != -EAGAIN)
			return n;
		n = dx_wait(fd, POLLIN, t0 + wait_ms);
		if (n > 0)
			n = dx_recvfrom(fd, buf, REPLY_MAX, NULL);
		if (n > REPLY_MAX) /* truncated: never shown as a reply */
			return -EMSGSIZE;
		if (n >= 0) {
			clock_gettime(CLOCK_MONOTONIC, &b);
			*rtt_ms = (double)(b.tv_sec - a.tv_sec) * 1e3 +
			          (double)(b.tv_nsec - a.tv_nsec) / 1e6;
			return n;
		}
		if (n != -ETIMEDOUT && n != -EAGAIN)
			return n;
		wait_ms *= 2;
	}
	return -ETIMEDOUT;
}

/* Prints probe SEQ's outcome; BAD says why a reply is not the answer. */
static void
report(const struct send_opts *o, long long seq, ssize_t n, const uint8_t *buf,
       double rtt, const char *bad)
{
	if (o->count == 1) {
		if (n < 0 || bad != NULL)
			return; /* run_probes() says why on stderr */
		if (o->hex)
			print_hex(buf, (size_t)n);
		else
			cli_print_answer(o->as, buf, (size_t)n);
		return;
	}
	if (n >= 0 && bad != NULL)
		printf("seq=%lld bad reply: %s\n", seq, bad);
	else if (n >= 0 && o->as != CLI_AS_RAW) {
		printf("seq=%lld reply in %.3f ms: ", seq, rtt);
		cli_print_answer(o->as, buf, (size_t)n);
	} else if (n >= 0)
		printf("seq=%lld reply %zd bytes in %.3f ms\n", seq, n, rtt);
	else
		printf("seq=%lld %s\n", seq, dx_strerror((int)n));
	if (n >= 0 && o->hex)
		print_hex(buf, (size_t)n);
}

static void
summary(const struct probe_stats *st)
{
	double loss = st->sent ? 100.0 * (double)(st->sent - st->received) /
	                                 (double)st->sent
	                       : 0;

	printf("%lld sent, %lld received, %.1f%% loss", st->sent, st->received,
	       loss);
	if (st->received)
		printf(", rtt min/avg/max %.3f/%.3f/%.3f ms", st->rtt_min,
		       st->rtt_sum / (double)st->received, st->rtt_max);
	if (st->late)
		printf(", %lld late replies ignored", st->late);
	printf("\n");
}

static int
exit_code(ssize_t last_err, const struct probe_stats *st)
{
	if (st->received == st->sent)
		return DX_EXIT_OK;
	if (last_err == -ECONNREFUSED)
		return DX_EXIT_REFUSED;
	if (last_err == -ETIMEDOUT)
		return DX_EXIT_TIMEOUT;
	return DX_EXIT_FAIL;
}

/*
 * Runs the probes, the first on FD, each later one on a new socket to EP;
 * closes FD (or its successor) on return.
 */
static int
run_probes(int fd, const struct dx_endpoint *ep, const struct send_opts *o,
           const void *data, size_t len)
{
	uint8_t *buf = malloc(REPLY_MAX);
	struct probe_stats st = {.rtt_min = 1e300};
	ssize_t n, last_err = 0;
	double rtt = 0;
	char why[128];
	const char *bad;

	for (long long seq = 1; buf != NULL && seq <= o->count; seq++) {
		if (seq > 1) {
			drain_late(fd, buf, &st);
			dx_close(fd);
			fd = dx_connect_endpoint(ep, 0,
			                         dx_deadline_in(o->timeout_ms));
		}
		st.sent++;
		n = fd < 0 ? fd : probe(fd, o, data, len, buf, &rtt);
		bad = n >= 0 && cli_check_answer(o->as, buf, (size_t)n, why,
		                                 sizeof(why)) < 0
		              ? why
		              : NULL;
		report(o, seq, n, buf, rtt, bad);
		if (bad != NULL) {
			last_err = -EBADMSG;
			if (o->count == 1)
				cli_error("send: %s", bad);
		} else if (n >= 0) {
			st.received++;
			st.rtt_sum += rtt;
			st.rtt_min = rtt < st.rtt_min ? rtt : st.rtt_min;
			st.rtt_max = rtt > st.rtt_max ? rtt : st.rtt_max;
		} else {
			last_err = n;
			if (o->count == 1)
				cli_error("send: %s", dx_strerror((int)n));
		}
		if (seq < o->count)
			(void)dx_wait(-1, 0, dx_deadline_in(o->interval_ms));
	}
	if (fd >= 0) {
		if (buf != NULL)
			drain_late(fd, buf, &st);
		dx_close(fd);
	}
	if (buf == NULL)
		return DX_EXIT_FAIL;
	if (o->count > 1)
		summary(&st);
	fflush(stdout);
	free(buf);
	return exit_code(last_err, &st);
}

static const struct option long_opts[] = {
        {"timeout", required_argument, NULL, 't'},
        {"retries", required_argument, NULL, 'r'},
        {"count", required_argument, NULL, 'c'},
        {"interval", required_argument, NULL, 'i'},
        {"hex", no_argument, NULL, 'x'},
        {"as", required_argument, NULL, 'a'},
        {"trace", no_argument, NULL, 'T'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
};

/* Parses the options into O; returns -1 (error printed), 0, or 1 (help). */
static int
parse_opts(int argc, char **argv, struct send_opts *o)
{
	int c;

	while ((c = getopt_long(argc, argv, "t:r:c:i:xh", long_opts, NULL)) !=
	       -1) {
		if (c == 't' &&
		    (o->timeout_ms = cli_parse_duration(optarg)) > 0)
			continue;
		if (c == 'i' &&
		    (o->interval_ms = cli_parse_duration(optarg)) >= 0)
			continue;
		if (c == 'r' &&
		    cli_parse_count(optarg, 0, 100, &o->retries) == 0)
			continue;
		if (c == 'c' &&
		    cli_parse_count(optarg, 1, 1000000, &o->count) == 0)
			continue;
		if (c == 'a' && (o->as = cli_parse_answer("send", optarg)) < 0)
			return -1;
		if (c == 'a')
			continue;
		if (c == 'x' || c == 'T') {
			if (c == 'x')
				o->hex = 1;
			else
				cli_trace_to_stderr();
			continue;
		}
		if (c == 'h') {
			fputs(usage, stdout);
			return 1;
		}
		if (c != '?')
			cli_error("send: bad value '%s' for -%c", optarg, c);
		return -1;
	}
	return 0;
}

/*
 * The datagram: DATA, or all of standard input (one datagram's worth);
 * with --as and no DATA, an empty one (what time and daytime expect).
 */
static ssize_t
read_payload(int argc, char **argv, int as, uint8_t *buf)
{
	ssize_t n;

	if (argc > 1 || as != CLI_AS_RAW) {
		size_t len = argc > 1 ? strlen(argv[1]) : 0;
		if (len > DX_DGRAM_MAX)
			return -EMSGSIZE;
		memcpy(buf, argc > 1 ? argv[1] : "", len);
		return (ssize_t)len;
	}
	n = dx_read_full(STDIN_FILENO, buf, DX_DGRAM_MAX + 1, DX_FOREVER, NULL);
	return n > DX_DGRAM_MAX ? -EMSGSIZE : n;
}

int
cmd_send(int argc, char **argv)
{
	struct send_opts o = {1000, 1000, 2, 1, 0, CLI_AS_RAW};
	struct dx_endpoint ep;
	char why[256];
	uint8_t *data = NULL;
	ssize_t len;
	int fd = -1, rc = DX_EXIT_USAGE, r = parse_opts(argc, argv, &o);

	if (r != 0)
		return r > 0 ? DX_EXIT_OK : DX_EXIT_USAGE;
	argc -= optind;
	argv += optind;
	if (argc < 1 || argc > 2)
		return cli_usage_error("send");
	if (dx_endpoint_parse(&ep, argv[0], why, sizeof(why)) < 0) {
		cli_error("bad endpoint '%s': %s", argv[0], why);
		return DX_EXIT_USAGE;
	}
	if (dx_scheme_socktype(ep.scheme) != SOCK_DGRAM) {
		cli_error("send: '%s' is not a datagram endpoint (udp:// or "
		          "unixgram://); use duplex connect",
		          argv[0]);
		return DX_EXIT_USAGE;
	}
	data = malloc(DX_DGRAM_MAX + 1);
	len = data ? read_payload(argc, argv, o.as, data) : -ENOMEM;
	if (len < 0) {
		cli_error("send: %s",
		          len == -EMSGSIZE ? "data is longer than one datagram "
		                             "can carry (65507 bytes)"
		                           : dx_strerror((int)len));
		rc = len == -EMSGSIZE ? DX_EXIT_USAGE : DX_EXIT_FAIL;
		goto out;
	}
	fd = dx_connect_endpoint(&ep, 0, dx_deadline_in(o.timeout_ms));
	if (fd < 0) {
		cli_error("send: cannot reach '%s': %s", argv[0],
		          dx_strerror(fd));
		rc = fd == -ECONNREFUSED || fd == -ENOENT ? DX_EXIT_REFUSED
		                                          : DX_EXIT_FAIL;
		goto out;
	}
	rc = run_probes(fd, &ep, &o, data, (size_t)len);
	fd = -1; /* closed by run_probes() */
out:
	if (fd >= 0)
		dx_close(fd);
	free(data);
	return rc;
}
