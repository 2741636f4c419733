/* SPDX-License-Identifier: MIT */
/*
 * connect.c - "duplex connect ENDPOINT": the stream client. Copies standard
 * input to a tcp:// or unix:// socket and the socket to standard output in
 * one poll loop with a bounded buffer each way; the end of standard input
 * becomes shutdown(SHUT_WR) while the socket is still read until the peer
 * closes, as nc -N does. With -z it probes tcp:// or udp:// ports instead,
 * a window of sockets at a time, and sends no data.
 */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

static const char usage[] =
        "usage: duplex connect [OPTIONS] ENDPOINT\n"
        "       duplex connect -z [--timeout DURATION] ENDPOINT\n"
        "\n"
        "Connects to a tcp:// or unix:// ENDPOINT, copies standard input to\n"
        "the socket and the socket to standard output. At the end of standard\n"
        "input the socket's write side is shut down, so the peer reads end of\n"
        "file, and its reply is still read until it closes. When the peer\n"
        "closes first, what it sent is written out and the command ends\n"
        "without waiting for standard input.\n"
        "\n"
        "With -z no data is sent: each port of a tcp:// or udp:// ENDPOINT is\n"
        "probed and printed as open, closed or filtered (udp: open|filtered\n"
        "when nothing answers an empty datagram). The port may be a range\n"
        "LO-HI, e.g. tcp://127.0.0.1:8000-8010; 64 ports are probed at a\n"
        "time, so a range takes at most about (ports / 64 + 1) x the timeout.\n"
        "A host name is scanned at the first address it resolves to.\n"
        "\n"
        "options:\n"
        "  -w, --timeout DURATION  connect timeout for each address the\n"
        "                          endpoint resolves to (default: the "
        "kernel's;\n"
        "                          with -z, 1s per port)\n"
        "  -i, --idle DURATION     give up when no byte has moved either way\n"
        "                          for DURATION\n"
        "      --no-shutdown       keep the write side open at the end of\n"
        "                          input; end only when the peer closes\n"
        "      --send-only         copy standard input to the socket only; "
        "what\n"
        "                          the peer sends is read and dropped; after "
        "the\n"
        "                          input is sent and the write side shut "
        "down,\n"
        "                          end when the peer closes (closing earlier\n"
        "                          could reset the connection and lose data)\n"
        "      --recv-only         copy the socket to standard output only;\n"
        "                          standard input is not read and the write\n"
        "                          side is shut down at once (nc -d -N)\n"
        "      --as SERVICE        send nothing, read the answer of SERVICE\n"
        "                          and check it: time (4 bytes, shown as an\n"
        "                          ISO 8601 UTC date, read past the 2036\n"
        "                          wrap) or daytime (text, at most 1024\n"
        "                          bytes: a longer stream is cut off); it\n"
        "                          must come within --idle (default 5s)\n"
        "  -z, --scan              probe ports, send no data\n"
        "      --trace             print every socket call on stderr\n"
        "  -h, --help              this text\n"
        "\n"
        "exit status: 0 done, the peer closed (-z: a port is open, or\n"
        "open|filtered for udp), 1 failure, e.g. a reset connection (-z: no\n"
        "port open; --as: not the service's answer), 2 bad input, 3 connect\n"
        "timeout or --idle expired, 4 refused\n";

/* Bytes buffered each way; a side is not read while its buffer is full. */
#define RELAY_BUF ((size_t)64 * 1024)
/* Ports probed at once by -z. */
#define SCAN_WINDOW 64
/* -z's connect or reply timeout for each port without --timeout. */
#define SCAN_TIMEOUT_MS 1000
/* --as without --idle: how long a time or daytime server may be silent. */
#define ANSWER_IDLE_MS 5000
/* How many resolved addresses a connect tries at most. */
#define MAX_ADDRS 16
/* "Keep going": the relay's steps return an exit code or this. */
#define GO_ON (-1)

struct conn_opts {
	long long timeout_ms; /* -1: none of our own */
	long long idle_ms;    /* -1: no idle limit */
	int no_shutdown, send_only, recv_only, scan;
	int as; /* --as: CLI_AS_* */
};

/* ------------------------------------------------------------------------
 * Options and the endpoint
 * ------------------------------------------------------------------------ */

static const struct option long_opts[] = {
        {"timeout", required_argument, NULL, 'w'},
        {"idle", required_argument, NULL, 'i'},
        {"no-shutdown", no_argument, NULL, 'N'},
        {"send-only", no_argument, NULL, 'S'},
        {"recv-only", no_argument, NULL, 'R'},
        {"scan", no_argument, NULL, 'z'},
        {"as", required_argument, NULL, 'a'},
        {"trace", no_argument, NULL, 'T'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
};

/* Sets the flag option C; returns 0 when C is not one. */
static int
set_flag(struct conn_opts *o, int c)
{
	switch (c) {
	case 'N':
		o->no_shutdown = 1;
		return 1;
	case 'S':
		o->send_only = 1;
		return 1;
	case 'R':
		o->recv_only = 1;
		return 1;
	case 'z':
		o->scan = 1;
		return 1;
	case 'T':
		cli_trace_to_stderr();
		return 1;
	default:
		return 0;
	}
}

/* Rejects options that contradict each other; 0 or -1 (error printed). */
static int
check_opts(const struct conn_opts *o)
{
	if (o->send_only && o->recv_only) {
		cli_error("connect: --send-only and --recv-only exclude each "
		          "other");
		return -1;
	}
	if (o->as != CLI_AS_RAW && (o->send_only || o->no_shutdown)) {
		cli_error("connect: --as sends nothing; it takes neither "
		          "--send-only nor --no-shutdown");
		return -1;
	}
	if (o->scan && (o->send_only || o->recv_only || o->no_shutdown ||
	                o->idle_ms >= 0 || o->as != CLI_AS_RAW)) {
		cli_error("connect: -z sends no data; it takes only --timeout "
		          "and --trace");
		return -1;
	}
	return 0;
}

/* Parses the options into O; returns -1 (error printed), 0, or 1 (help). */
static int
parse_opts(int argc, char **argv, struct conn_opts *o)
{
	int c;

	while ((c = getopt_long(argc, argv, "w:i:zh", long_opts, NULL)) != -1) {
		if (c == 'w' &&
		    (o->timeout_ms = cli_parse_duration(optarg)) > 0)
			continue;
		if (c == 'i' && (o->idle_ms = cli_parse_duration(optarg)) > 0)
			continue;
		if (c == 'a' &&
		    (o->as = cli_parse_answer("connect", optarg)) < 0)
			return -1;
		if (c == 'a')
			continue;
		if (set_flag(o, c))
			continue;
		if (c == 'h') {
			(void)fputs(usage, stdout);
			return 1;
		}
		if (c != '?')
			cli_error("connect: bad value '%s' for -%c", optarg, c);
		return -1;
	}
	return check_opts(o);
}

/* Parses the N characters at TEXT as one port; 0 or -1. */
static int
parse_bound(const char *text, size_t n, uint16_t *port)
{
	char buf[8];

	if (n == 0 || n >= sizeof(buf))
		return -1;
	memcpy(buf, text, n);
	buf[n] = '\0';
	return dx_port_parse(buf, port) == 0 ? 0 : -1;
}

/*
 * Finds a port range "LO-HI" ending a tcp:// or udp:// TEXT: a port made
 * of digits and one '-' (a service name has a letter, so "http-alt" is no
 * range). Returns 0 when there is none, 1 with *LO, *HI and *PREFIX (the
 * length of TEXT before the range) set, or -1 (error printed) when the
 * range is malformed.
 */
static int
find_range(const char *text, uint16_t *lo, uint16_t *hi, size_t *prefix)
{
	const char *port = strrchr(text, ':'), *dash;

	if (strncasecmp(text, "tcp://", 6) != 0 &&
	    strncasecmp(text, "udp://", 6) != 0)
		return 0;
	if (port == NULL || port - text < 6)
		return 0;
	port++;
	dash = strchr(port, '-');
	if (dash == NULL || port[strspn(port, "0123456789-")] != '\0')
		return 0;
	*prefix = (size_t)(port - text);
	if (parse_bound(port, (size_t)(dash - port), lo) < 0 ||
	    parse_bound(dash + 1, strlen(dash + 1), hi) < 0 || *lo > *hi) {
		cli_error("bad port range '%s' in '%s': expected LO-HI, two "
		          "ports 0-65535 with LO <= HI",
		          port, text);
		return -1;
	}
	return 1;
}

/* A stream endpoint to connect to, or a tcp:// or udp:// one for -z. */
static int
check_scheme(const char *text, int scan, const struct dx_endpoint *ep)
{
	if (!scan && dx_scheme_socktype(ep->scheme) != SOCK_STREAM) {
		cli_error(
		        "connect: '%s' is a datagram endpoint; connect is for "
		        "streams (tcp:// or unix://): use duplex send",
		        text);
		return DX_EXIT_USAGE;
	}
	if (scan && ep->scheme != DX_SCHEME_TCP &&
	    ep->scheme != DX_SCHEME_UDP) {
		cli_error("connect: -z scans tcp:// and udp:// ports, not '%s'",
		          text);
		return DX_EXIT_USAGE;
	}
	return 0;
}

/*
 * Parses TEXT into EP for the mode. With -z the port may be a range: it is
 * parsed as port 0 and kept in *LO and *HI; otherwise *LO and *HI are the
 * endpoint's port. Returns 0 or an exit code (error printed).
 */
static int
parse_target(const char *text, int scan, struct dx_endpoint *ep, uint16_t *lo,
             uint16_t *hi)
{
	char buf[1024], why[256];
	const char *parse = text;
	size_t prefix = 0;
	int r = find_range(text, lo, hi, &prefix);

	if (r < 0)
		return DX_EXIT_USAGE;
	if (r > 0 && !scan) {
		cli_error("bad endpoint '%s': a port range needs -z", text);
		return DX_EXIT_USAGE;
	}
	if (r > 0 && prefix + 2 > sizeof(buf)) {
		cli_error("bad endpoint '%s': too long", text);
		return DX_EXIT_USAGE;
	}
	if (r > 0) {
		(void)snprintf(buf, sizeof(buf), "%.*s0", (int)prefix, text);
		parse = buf;
	}
	if (dx_endpoint_parse(ep, parse, why, sizeof(why)) < 0) {
		cli_error("bad endpoint '%s': %s", text, why);
		return DX_EXIT_USAGE;
	}
	if (r == 0)
		*lo = *hi = ep->port;
	return check_scheme(text, scan, ep);
}

/* ------------------------------------------------------------------------
 * Connecting
 * ------------------------------------------------------------------------ */

/* The exit code for a failed connect (ENOENT: no unix socket there). */
static int
connect_exit(int err)
{
	if (err == -ETIMEDOUT)
		return DX_EXIT_TIMEOUT;
	if (err == -ECONNREFUSED || err == -ENOENT)
		return DX_EXIT_REFUSED;
	return DX_EXIT_FAIL;
}

/*
 * Connects to each address EP resolves to in turn, each try with a
 * deadline of its own TIMEOUT_MS from its start (-1: the kernel's own
 * limit). Returns the connected non-blocking descriptor or the last error.
 */
static int
open_stream(const struct dx_endpoint *ep, long long timeout_ms)
{
	struct dx_addr addrs[MAX_ADDRS];
	int n, fd = -EADDRNOTAVAIL, rc;

	n = dx_endpoint_resolve(ep, 0, addrs, MAX_ADDRS);
	if (n < 0)
		return n;
	for (int i = 0; i < n; i++) {
		fd = dx_socket(addrs[i].u.sa.sa_family, SOCK_STREAM, 0);
		if (fd < 0)
			continue;
		rc = dx_connect(fd, &addrs[i], dx_deadline_in(timeout_ms));
		if (rc == 0)
			return fd;
		dx_close(fd);
		fd = rc;
	}
	return fd;
}

/* poll()'s timeout for DEADLINE: -1 for ever, else the ms left, >= 0. */
static int
poll_ms(int64_t deadline)
{
	int64_t left;

	if (deadline == DX_FOREVER)
		return -1;
	left = deadline - dx_now_ms();
	if (left < 0)
		return 0;
	return left > INT_MAX ? INT_MAX : (int)left;
}

/*
 * poll(2) over several descriptors, which the I/O layer's dx_wait() (one
 * descriptor) does not cover. A signal (EINTR) only ends the wait early
 * with nothing ready: the callers loop, recomputing what to wait for and
 * for how long. Returns the count of ready descriptors (>= 0) or -errno.
 */
static int
wait_many(struct pollfd *pfd, nfds_t n, int64_t deadline)
{
	int rc = poll(pfd, n, poll_ms(deadline));

	if (rc >= 0)
		return rc;
	return errno == EINTR ? 0 : -errno;
}

/* ------------------------------------------------------------------------
 * The relay: standard input -> socket -> standard output
 * ------------------------------------------------------------------------ */

/* One direction's bytes in flight: DATA[OFF, LEN) waits to be written. */
struct buf {
	size_t off, len;
	char data[RELAY_BUF];
};

struct relay {
	int sock;
	const char *name; /* the endpoint as the user wrote it */
	const struct conn_opts *o;
	struct buf up;     /* standard input -> socket */
	struct buf down;   /* socket -> standard output */
	size_t out_chunk;  /* most bytes one write to standard output takes */
	int in_eof;        /* standard input ended (or is not read) */
	int wr_shut;       /* nothing more is sent: shut down, or peer gone */
	int sock_eof;      /* the peer closed its side (sent its FIN) */
	int64_t last_move; /* when a byte last moved, for --idle */
};

/* Marks N bytes of B written; an empty buffer starts over at 0. */
static void
buf_consume(struct buf *b, size_t n)
{
	b->off += n;
	if (b->off == b->len)
		b->off = b->len = 0;
}

/*
 * Standard input and output are shared with other processes (a shell's
 * terminal, a pipeline), and O_NONBLOCK belongs to the open file that they
 * share, so it is left alone: they are read and written only when poll()
 * says they are ready. A blocking write to a pipe or socket that has some
 * room can still block until all of it fits, so writes there are cut to
 * PIPE_BUF bytes, which a pipe that polls writable always takes at once.
 */
static void
relay_init(struct relay *r, int sock, const char *name,
           const struct conn_opts *o)
{
	struct stat st;

	r->sock = sock;
	r->name = name;
	r->o = o;
	r->out_chunk = RELAY_BUF;
	if (fstat(STDOUT_FILENO, &st) == 0 &&
	    (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode)))
		r->out_chunk = PIPE_BUF;
	r->in_eof = o->recv_only;
	r->last_move = dx_now_ms();
}

/* The one line for a socket to NAME that failed; returns the exit code. */
static int
conn_failed(const char *name, int err)
{
	if (err == -ECONNRESET)
		cli_error("connect: the connection to '%s' was reset by the "
		          "peer",
		          name);
	else
		cli_error("connect: the connection to '%s' failed: %s", name,
		          dx_strerror(err));
	return DX_EXIT_FAIL;
}

static int
sock_failed(const struct relay *r, int err)
{
	return conn_failed(r->name, err);
}

/*
 * shutdown(FD, SHUT_WR): neither blocks nor says EINTR, so the socket
 * layer has no wrapper for it; traced here. Returns 0 or -errno.
 */
static int
shutdown_write(int fd)
{
	int err = shutdown(fd, SHUT_WR) < 0 ? -errno : 0;

	if (dx_trace_on() && err == 0)
		dx_trace("shutdown(%d, SHUT_WR) = 0", fd);
	else if (dx_trace_on())
		dx_trace("shutdown(%d, SHUT_WR) = -1 (%s)", fd,
		         dx_strerror(err));
	return err;
}

/*
 * Sends the peer a FIN while the socket stays open for reading: the
 * half-close that lets a server read to end of file and still answer.
 * ENOTCONN means the connection is already gone, which the next read
 * reports.
 */
static int
shut_write(struct relay *r)
{
	int err = shutdown_write(r->sock);

	r->wr_shut = 1;
	if (err < 0 && err != -ENOTCONN)
		return sock_failed(r, err);
	return GO_ON;
}

/*
 * Nothing more goes to the socket: standard input is not read any more and
 * what is buffered for the peer is dropped.
 */
static void
stop_up(struct relay *r)
{
	r->up.off = r->up.len = 0;
	r->in_eof = r->wr_shut = 1;
}

/*
 * What follows from the state before each wait: the end once the peer has
 * closed, its bytes are written out and (--send-only) standard input is
 * all sent; the half-close once standard input has ended and its bytes
 * are sent; and the --idle limit.
 */
static int
relay_settle(struct relay *r)
{
	int up_done = r->wr_shut || (r->in_eof && r->up.len == 0);

	if (r->sock_eof && r->down.len == 0 && up_done)
		return DX_EXIT_OK;
	if (r->o->idle_ms >= 0 && dx_now_ms() >= r->last_move + r->o->idle_ms) {
		cli_error("connect: no data moved for %lld ms (--idle); "
		          "closing '%s'",
		          r->o->idle_ms, r->name);
		return DX_EXIT_TIMEOUT;
	}
	if (r->in_eof && r->up.len == 0 && !r->wr_shut && !r->o->no_shutdown)
		return shut_write(r);
	return GO_ON;
}

/*
 * Watches each descriptor only while it can make progress: standard input
 * while the up buffer has room, the socket for reading while the down
 * buffer has room and for writing while the up buffer holds bytes,
 * standard output while the down buffer does. A full buffer so stops its
 * reader, and memory stays at the two buffers however fast a side is.
 */
static void
relay_events(const struct relay *r, struct pollfd *pfd)
{
	memset(pfd, 0, 3 * sizeof(*pfd));
	pfd[0].fd = pfd[1].fd = pfd[2].fd = -1;
	if (!r->in_eof && r->up.len < RELAY_BUF) {
		pfd[0].fd = STDIN_FILENO;
		pfd[0].events = POLLIN;
	}
	if (!r->sock_eof && r->down.len < RELAY_BUF)
		pfd[1].events |= POLLIN;
	if (r->up.len > 0 && !r->wr_shut)
		pfd[1].events |= POLLOUT;
	if (pfd[1].events != 0)
		pfd[1].fd = r->sock;
	if (r->down.len > 0) {
		pfd[2].fd = STDOUT_FILENO;
		pfd[2].events = POLLOUT;
	}
}

/*
 * Socket -> down buffer; with --send-only the bytes are dropped. At the
 * peer's FIN the session ends once the down buffer is written out,
 * without waiting for standard input; --send-only goes on sending it, as
 * sending is its purpose and the FIN only says the peer has no more to
 * say.
 */
static int
pump_recv(struct relay *r)
{
	struct buf *b = &r->down;
	ssize_t n = dx_read(r->sock, b->data + b->len, RELAY_BUF - b->len);

	if (n == -EAGAIN)
		return GO_ON;
	if (n < 0)
		return sock_failed(r, (int)n);
	if (n == 0) {
		r->sock_eof = 1;
		if (!r->o->send_only)
			stop_up(r);
		return GO_ON;
	}
	r->last_move = dx_now_ms();
	if (!r->o->send_only)
		b->len += (size_t)n;
	return GO_ON;
}

/*
 * Up buffer -> socket. EPIPE means the peer closed and then refused more
 * data: nothing more is sent, and the reads decide how the session ends
 * (end of file after the peer's FIN, or its reset).
 */
static int
pump_send(struct relay *r)
{
	struct buf *b = &r->up;
	ssize_t n = dx_send(r->sock, b->data + b->off, b->len - b->off);

	if (n == -EAGAIN)
		return GO_ON;
	if (n == -EPIPE) {
		stop_up(r);
		return GO_ON;
	}
	if (n < 0)
		return sock_failed(r, (int)n);
	r->last_move = dx_now_ms();
	buf_consume(b, (size_t)n);
	return GO_ON;
}

/* Standard input -> up buffer. */
static int
pump_stdin(struct relay *r)
{
	struct buf *b = &r->up;
	ssize_t n = dx_read(STDIN_FILENO, b->data + b->len, RELAY_BUF - b->len);

	if (n == -EAGAIN)
		return GO_ON;
	if (n < 0) {
		cli_error("connect: cannot read standard input: %s",
		          dx_strerror((int)n));
		return DX_EXIT_FAIL;
	}
	if (n == 0)
		r->in_eof = 1;
	else
		r->last_move = dx_now_ms();
	b->len += (size_t)n;
	return GO_ON;
}

/* Down buffer -> standard output, at most out_chunk bytes a write. */
static int
pump_stdout(struct relay *r)
{
	struct buf *b = &r->down;
	size_t len = b->len - b->off;
	ssize_t n;

	n = dx_write(STDOUT_FILENO, b->data + b->off,
	             len < r->out_chunk ? len : r->out_chunk);
	if (n == -EAGAIN)
		return GO_ON;
	if (n < 0) {
		cli_error("connect: cannot write standard output: %s",
		          dx_strerror((int)n));
		return DX_EXIT_FAIL;
	}
	if (n > 0)
		r->last_move = dx_now_ms();
	buf_consume(b, (size_t)n);
	return GO_ON;
}

/*
 * Moves what poll() found ready. The socket is read before it is written,
 * so a FIN that has arrived is seen before more bytes go its way. Standard
 * input and output are blocking descriptors: they are touched only when
 * they reported an event (an error or hang-up event makes the call say
 * what happened). Returns an exit code or GO_ON.
 */
static int
relay_pump(struct relay *r, const struct pollfd *pfd)
{
	short sock = pfd[1].revents, trouble = POLLERR | POLLHUP | POLLNVAL;
	int rc = GO_ON;

	if ((pfd[1].events & POLLIN) && (sock & (POLLIN | trouble)))
		rc = pump_recv(r);
	if (rc == GO_ON && pfd[2].revents)
		rc = pump_stdout(r);
	if (rc == GO_ON && pfd[0].revents)
		rc = pump_stdin(r);
	if (rc == GO_ON && (pfd[1].events & POLLOUT) && !r->wr_shut &&
	    (sock & (POLLOUT | trouble)))
		rc = pump_send(r);
	return rc;
}

/* The poll loop; returns the exit code. */
static int
relay_run(struct relay *r)
{
	struct pollfd pfd[3];
	int64_t deadline;
	int rc;

	for (;;) {
		rc = relay_settle(r);
		if (rc != GO_ON)
			return rc;
		relay_events(r, pfd);
		deadline = r->o->idle_ms < 0 ? DX_FOREVER
		                             : r->last_move + r->o->idle_ms;
		rc = wait_many(pfd, 3, deadline);
		if (rc < 0) {
			cli_error("connect: poll: %s", dx_strerror(rc));
			return DX_EXIT_FAIL;
		}
		rc = relay_pump(r, pfd);
		if (rc != GO_ON)
			return rc;
	}
}

/*
 * --as: reads the answer of a service that sends and closes (time,
 * daytime), sending nothing. Ends with an error at the first byte past
 * CLI_ANSWER_MAX (a server that streams is not copied on), at a reset,
 * or when no byte comes for the idle limit; a whole answer is checked
 * before it is printed.
 */
static int
run_answer(int fd, const char *name, const struct conn_opts *o)
{
	uint8_t buf[CLI_ANSWER_MAX + 1];
	long long idle = o->idle_ms > 0 ? o->idle_ms : ANSWER_IDLE_MS;
	size_t have = 0;
	char why[128];
	ssize_t n;
	int rc = shutdown_write(fd);

	if (rc < 0 && rc != -ENOTCONN)
		return conn_failed(name, rc);
	while (have <= CLI_ANSWER_MAX) {
		rc = dx_wait(fd, POLLIN, dx_deadline_in(idle));
		if (rc == -ETIMEDOUT) {
			cli_error("connect: no answer from '%s' for %lld ms "
			          "(%zu bytes so far)",
			          name, idle, have);
			return DX_EXIT_TIMEOUT;
		}
		n = rc < 0 ? rc : dx_read(fd, buf + have, sizeof(buf) - have);
		if (n == 0)
			break;
		if (n == -EAGAIN)
			continue;
		if (n < 0)
			return conn_failed(name, (int)n);
		have += (size_t)n;
	}
	if (cli_check_answer(o->as, buf, have, why, sizeof(why)) < 0) {
		cli_error("connect: '%s': %s", name, why);
		return DX_EXIT_FAIL;
	}
	cli_print_answer(o->as, buf, have);
	return fflush(stdout) == 0 ? DX_EXIT_OK : DX_EXIT_FAIL;
}

static int
run_stream(const struct dx_endpoint *ep, const char *text,
           const struct conn_opts *o)
{
	struct relay *r = NULL;
	int fd, rc;

	fd = open_stream(ep, o->timeout_ms);
	if (fd < 0) {
		cli_error("connect: cannot reach '%s': %s", text,
		          dx_strerror(fd));
		return connect_exit(fd);
	}
	if (o->as != CLI_AS_RAW) {
		rc = run_answer(fd, text, o);
		goto out;
	}
	r = calloc(1, sizeof(*r));
	if (r == NULL) {
		cli_error("connect: out of memory");
		rc = DX_EXIT_FAIL;
		goto out;
	}
	relay_init(r, fd, text, o);
	rc = relay_run(r);
out:
	free(r);
	dx_close(fd);
	return rc;
}

/* ------------------------------------------------------------------------
 * -z: probing ports
 * ------------------------------------------------------------------------ */

/* One port under probe in the window. */
struct probe {
	int fd; /* -1 once the outcome is known */
	uint32_t port;
	int64_t deadline;  /* the outcome is a timeout after this */
	const char *state; /* NULL while the probe is under way */
};

struct scan {
	struct dx_addr addr; /* the port is filled in per probe */
	char host[DX_ADDRSTRLEN];
	enum dx_scheme scheme;
	long long timeout_ms;
	uint32_t head, next, hi; /* next port to print, to start; the last */
	int found;               /* a port was open (udp: or open|filtered) */
	uint32_t failed;         /* the port whose probe ended the scan */
	struct probe win[SCAN_WINDOW]; /* port P is in win[P % SCAN_WINDOW] */
};

/*
 * The state an outcome ERR means for a probe: 0 is a handshake or a reply,
 * -ETIMEDOUT is silence until the deadline. An ICMP unreachable other
 * than "port" and a local firewall's EPERM say something stands in the
 * way. NULL for any other error, which is the scanner's own failure.
 */
static const char *
probe_state(enum dx_scheme scheme, int err)
{
	switch (err) {
	case 0:
		return "open";
	case -ECONNREFUSED:
		return "closed";
	case -ETIMEDOUT:
		return scheme == DX_SCHEME_UDP ? "open|filtered" : "filtered";
	case -EHOSTUNREACH:
	case -ENETUNREACH:
	case -EPERM:
		return "filtered";
	default:
		return NULL;
	}
}

/* Ends probe P with outcome ERR; returns 0 or ERR when it is no state. */
static int
probe_end(struct scan *s, struct probe *p, int err)
{
	p->state = probe_state(s->scheme, err);
	if (p->fd >= 0)
		dx_close(p->fd);
	p->fd = -1;
	if (p->state == NULL)
		s->failed = p->port;
	return p->state != NULL ? 0 : err;
}

/*
 * The outcome of a connect that went on after dx_connect() returned, as
 * the kernel keeps it in SO_ERROR (sock.c reads it the same way); traced,
 * since every socket call is.
 */
static int
connect_result(int fd)
{
	socklen_t len = sizeof(int);
	int err = 0;

	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (dx_trace_on())
		dx_trace("getsockopt(%d, SO_ERROR) = %d (%s)", fd, err,
		         err == 0 ? "connected" : dx_strerror(-err));
	return -err;
}

/*
 * Starts the probe of PORT in P. TCP: dx_connect() with a deadline that
 * has already passed sends the SYN and reports the outcome only when it
 * is known at once; -ETIMEDOUT then means the handshake goes on in the
 * kernel, and its outcome arrives later as writability and SO_ERROR. UDP:
 * a connected socket sends an empty datagram, so only the probed address
 * can answer and an ICMP port unreachable comes back as ECONNREFUSED.
 * Returns 0 or an error that ends the scan.
 */
static int
probe_start(struct scan *s, struct probe *p, uint32_t port)
{
	struct dx_addr a = s->addr;
	int rc;

	if (a.u.sa.sa_family == AF_INET6)
		a.u.in6.sin6_port = htons((uint16_t)port);
	else
		a.u.in.sin_port = htons((uint16_t)port);
	p->port = port;
	p->state = NULL;
	p->deadline = dx_deadline_in(s->timeout_ms);
	p->fd = dx_socket(a.u.sa.sa_family, dx_scheme_socktype(s->scheme), 0);
	if (p->fd < 0) {
		s->failed = port;
		return p->fd;
	}
	rc = dx_connect(p->fd, &a, dx_now_ms());
	if (s->scheme == DX_SCHEME_UDP && rc == 0)
		rc = (int)dx_send(p->fd, "", 0);
	if (s->scheme == DX_SCHEME_UDP && rc >= 0)
		return 0;
	if (s->scheme == DX_SCHEME_TCP && rc == -ETIMEDOUT)
		return 0;
	return probe_end(s, p, rc);
}

/* Reads the outcome of probe P after poll() reported an event on it. */
static int
probe_check(struct scan *s, struct probe *p)
{
	char reply[64];
	ssize_t n;

	if (s->scheme == DX_SCHEME_TCP)
		return probe_end(s, p, connect_result(p->fd));
	n = dx_recvfrom(p->fd, reply, sizeof(reply), NULL);
	if (n == -EAGAIN)
		return 0;
	return probe_end(s, p, n >= 0 ? 0 : (int)n);
}

/*
 * Waits once for the probes under way: until the first event or the
 * earliest deadline; probes past their deadline end as timeouts. Returns
 * 0 or an error that ends the scan.
 */
static int
scan_wait(struct scan *s)
{
	struct pollfd pfd[SCAN_WINDOW];
	struct probe *which[SCAN_WINDOW];
	int64_t deadline = DX_FOREVER;
	nfds_t n = 0;
	int rc = 0;

	for (uint32_t port = s->head; port < s->next; port++) {
		struct probe *p = &s->win[port % SCAN_WINDOW];
		if (p->state != NULL)
			continue;
		pfd[n] = (struct pollfd){.fd = p->fd, .events = POLLIN};
		if (s->scheme == DX_SCHEME_TCP)
			pfd[n].events = POLLOUT;
		deadline = p->deadline < deadline ? p->deadline : deadline;
		which[n++] = p;
	}
	if (n > 0)
		rc = wait_many(pfd, n, deadline);
	for (nfds_t i = 0; rc >= 0 && i < n; i++) {
		if (pfd[i].revents)
			rc = probe_check(s, which[i]);
		if (rc >= 0 && which[i]->state == NULL &&
		    dx_now_ms() >= which[i]->deadline)
			rc = probe_end(s, which[i], -ETIMEDOUT);
	}
	return rc;
}

/* Prints the probes that have ended, in port order, from the head on. */
static void
scan_report(struct scan *s)
{
	enum dx_proto proto =
	        s->scheme == DX_SCHEME_UDP ? DX_PROTO_UDP : DX_PROTO_TCP;
	const struct dx_service_entry *svc;
	struct probe *p;

	while (s->head < s->next &&
	       (p = &s->win[s->head % SCAN_WINDOW])->state != NULL) {
		printf("%s %u/%s %s", s->host, (unsigned)p->port,
		       dx_proto_name(proto), p->state);
		if (dx_registry_by_port((uint16_t)p->port, proto, &svc, 1) > 0)
			printf(" %s", svc->name);
		putchar('\n');
		if (strcmp(p->state, "closed") != 0 &&
		    strcmp(p->state, "filtered") != 0)
			s->found = 1;
		s->head++;
	}
	(void)fflush(stdout);
}

/* Keeps up to SCAN_WINDOW probes under way until every port is printed. */
static int
scan_ports(struct scan *s)
{
	int rc = 0;

	while (rc >= 0 && s->head <= s->hi) {
		while (rc >= 0 && s->next <= s->hi &&
		       s->next - s->head < SCAN_WINDOW) {
			rc = probe_start(s, &s->win[s->next % SCAN_WINDOW],
			                 s->next);
			s->next++;
		}
		if (rc >= 0)
			rc = scan_wait(s);
		scan_report(s);
	}
	for (uint32_t port = s->head; port < s->next; port++)
		if (s->win[port % SCAN_WINDOW].fd >= 0)
			dx_close(s->win[port % SCAN_WINDOW].fd);
	return rc;
}

static int
run_scan(const struct dx_endpoint *ep, const char *text, uint16_t lo,
         uint16_t hi, const struct conn_opts *o)
{
	struct scan s;
	int rc;

	memset(&s, 0, sizeof(s));
	rc = dx_endpoint_resolve(ep, 0, &s.addr, 1);
	if (rc < 0) {
		cli_error("connect: cannot resolve '%s': %s", text,
		          dx_strerror(rc));
		return DX_EXIT_FAIL;
	}
	dx_addr_format_host(&s.addr, s.host, sizeof(s.host));
	s.scheme = ep->scheme;
	s.timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : SCAN_TIMEOUT_MS;
	s.head = s.next = lo;
	s.hi = hi;
	rc = scan_ports(&s);
	if (rc < 0) {
		cli_error("connect: scan of '%s' failed at port %u: %s", text,
		          (unsigned)s.failed, dx_strerror(rc));
		return DX_EXIT_FAIL;
	}
	return s.found ? DX_EXIT_OK : DX_EXIT_FAIL;
}

/* ------------------------------------------------------------------------
 * The command
 * ------------------------------------------------------------------------ */

int
cmd_connect(int argc, char **argv)
{
	struct conn_opts o = {-1, -1, 0, 0, 0, 0, CLI_AS_RAW};
	struct dx_endpoint ep;
	uint16_t lo = 0, hi = 0;
	int rc = parse_opts(argc, argv, &o);

	if (rc != 0)
		return rc > 0 ? DX_EXIT_OK : DX_EXIT_USAGE;
	argc -= optind;
	argv += optind;
	if (argc != 1)
		return cli_usage_error("connect");
	rc = parse_target(argv[0], o.scan, &ep, &lo, &hi);
	if (rc != 0)
		return rc;
	if (o.scan)
		return run_scan(&ep, argv[0], lo, hi, &o);
	return run_stream(&ep, argv[0], &o);
}
