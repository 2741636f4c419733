/* SPDX-License-Identifier: MIT */
/*
 * bench.c - "duplex bench ENDPOINT --pattern P -c N -d DURATION": the load
 * generator. T threads each drive their share of N sockets from one epoll
 * loop, non-blocking. Every reply is checked byte for byte against what
 * was sent: each message is a slice of a fixed noise block chosen by its
 * connection and sequence number, with both numbers mixed into its first
 * eight bytes, so a late or misdirected reply is told from a corrupted
 * one. Latencies go into a log-linear histogram per thread (1 ns steps
 * below 256 ns, then 128 steps per power of two: under 0.4% error up to
 * 275 s), merged at the end.
 *
 *   udp       N datagram sockets, one request outstanding on each; a
 *             request unanswered after --timeout is a timeout, and a new
 *             one goes out
 *   pingpong  N stream connections: one message, its whole echo, the next
 *   connrate  N slots, each: connect, one message, its echo, close, again
 *   bulk      N connections streaming through an echo server (MiB/s)
 *   idle      N connections opened, each proven served by the echo of one
 *             message, then held for the duration
 *
 * Connections are opened before the clock starts (connrate opens its own
 * as it goes); operations still in flight at the end are not counted.
 * idle opens its connections IDLE_WINDOW at a time: a connection counts
 * as open once its message has come back, so no more than the window
 * waits in the server's accept queue. A client that outran a slow
 * accepter would overflow a short backlog (socat's is 5, xinetd's 64),
 * and each dropped SYN costs a second before it is sent again.
 */
#include "cli.h"
#include "service/service.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static const char usage[] =
        "usage: duplex bench [OPTIONS] ENDPOINT\n"
        "\n"
        "Puts load on the server at ENDPOINT and reports operations per\n"
        "second, latency percentiles, errors, timeouts and verify failures.\n"
        "Every reply is checked byte for byte.\n"
        "\n"
        "patterns (ENDPOINT udp:// or unixgram:// for udp, tcp:// or unix://\n"
        "for the others):\n"
        "  udp       N sockets, each with one request outstanding\n"
        "  pingpong  N connections, each sending a message and waiting for\n"
        "            its whole echo before the next\n"
        "  connrate  N slots: connect, one message, its echo, close, repeat\n"
        "            (tcp connections end with a reset: no TIME_WAIT)\n"
        "  bulk      N connections streaming through an echo server\n"
        "  idle      N connections opened and held for the duration; each\n"
        "            sends one message and waits for its echo first\n"
        "            (--size 0: no message, for servers that do not echo)\n"
        "\n"
        "options:\n"
        "  -p, --pattern P         the pattern (default udp for datagram\n"
        "                          endpoints, pingpong for stream ones)\n"
        "  -c, --connections N     sockets, connections or slots (default 1)\n"
        "  -d, --duration DURATION how long to measure (default 10s)\n"
        "  -s, --size BYTES        message size (default 64; bulk: the chunk\n"
        "                          written at a time, default 65536; idle:\n"
        "                          0 for no message)\n"
        "  -t, --threads T         threads to share the connections\n"
        "                          (default 1)\n"
        "      --timeout DURATION  udp: a request unanswered this long\n"
        "                          is lost and replaced (default 200ms)\n"
        "      --json              print one JSON object instead of text\n"
        "      --trace             print every socket call on stderr\n"
        "  -h, --help              this text\n"
        "\n"
        "exit status: 0 no errors and no verify failures (timeouts allowed),\n"
        "1 errors, verify failures or no operation at all, 2 bad input\n";

enum pattern { BP_UDP, BP_PINGPONG, BP_CONNRATE, BP_BULK, BP_IDLE };

#define SIZE_MAX_STREAM (16LL << 20)

static const struct {
	const char *name;
	int socktype;       /* the endpoint it needs */
	long long size;     /* default --size */
	long long size_max; /* largest --size */
} patterns[] = {
        [BP_UDP] = {"udp", SOCK_DGRAM, 64, DX_DGRAM_MAX},
        [BP_PINGPONG] = {"pingpong", SOCK_STREAM, 64, SIZE_MAX_STREAM},
        [BP_CONNRATE] = {"connrate", SOCK_STREAM, 64, SIZE_MAX_STREAM},
        [BP_BULK] = {"bulk", SOCK_STREAM, 65536, SIZE_MAX_STREAM},
        [BP_IDLE] = {"idle", SOCK_STREAM, 64, SIZE_MAX_STREAM},
};

#define MAX_CONNS    1000000
#define MAX_THREADS  64
#define SETUP_MS     10000 /* opening every connection may take this long, */
#define SETUP_MS_PER 5     /* plus this much per connection */
#define IDLE_WINDOW  16    /* idle: connections being opened at a time */
#define CONNECT_MS   2000  /* one connect may take this long */
#define TICK_MS      100   /* a worker looks at the clock at least this often */
#define MAX_EVENTS   256
#define LATE_MAX     4 /* timed-out requests remembered per socket */
#define STREAM_BUF   (256u << 10)

struct bench_opts {
	enum pattern pattern;
	long long conns, threads, size, duration_ms, timeout_ms;
	int json, have_pattern, have_size;
	const char *target; /* the endpoint as written */
	struct dx_endpoint ep;
	struct dx_addr addr; /* resolved once */
};

/* ------------------------------------------------------------------------
 * The latency histogram: log-linear, in nanoseconds
 * ------------------------------------------------------------------------ */

#define HIST_SUB_BITS  7
#define HIST_SUB       (1u << HIST_SUB_BITS)
#define HIST_MAX_SHIFT 30 /* the last bucket starts near 2^38 ns: 275 s */
#define HIST_BUCKETS   ((HIST_MAX_SHIFT + 2) * HIST_SUB)

struct hist {
	uint64_t n, sum, max;
	uint64_t count[HIST_BUCKETS];
};

/*
 * Values below 2 * HIST_SUB have a bucket each; above, a value whose top
 * bit is bit B falls in one of HIST_SUB buckets of width 2^(B - 7).
 */
static unsigned
hist_index(uint64_t v)
{
	unsigned shift;

	if (v < (uint64_t)2 * HIST_SUB)
		return (unsigned)v;
	shift = (unsigned)(63 - __builtin_clzll(v)) - HIST_SUB_BITS;
	if (shift > HIST_MAX_SHIFT)
		return HIST_BUCKETS - 1;
	return shift * HIST_SUB + (unsigned)(v >> shift);
}

/* The middle of bucket I, in nanoseconds. */
static double
hist_value(unsigned i)
{
	unsigned shift;

	if (i < 2 * HIST_SUB)
		return i;
	shift = i / HIST_SUB - 1;
	return (double)((uint64_t)(i - shift * HIST_SUB) << shift) +
	       (double)((UINT64_C(1) << shift) - 1) / 2;
}

static void
hist_add(struct hist *h, uint64_t ns)
{
	h->count[hist_index(ns)]++;
	h->n++;
	h->sum += ns;
	if (ns > h->max)
		h->max = ns;
}

static void
hist_merge(struct hist *into, const struct hist *h)
{
	for (unsigned i = 0; i < HIST_BUCKETS; i++)
		into->count[i] += h->count[i];
	into->n += h->n;
	into->sum += h->sum;
	if (h->max > into->max)
		into->max = h->max;
}

/* The value at quantile Q (0 < Q <= 1), never above the exact maximum. */
static double
hist_quantile(const struct hist *h, double q)
{
	uint64_t rank = (uint64_t)(q * (double)h->n), seen = 0;

	if ((double)rank < q * (double)h->n || rank == 0)
		rank++;
	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		seen += h->count[i];
		if (seen >= rank) {
			double v = hist_value(i);
			return v > (double)h->max ? (double)h->max : v;
		}
	}
	return (double)h->max;
}

/* ------------------------------------------------------------------------
 * What is sent: slices of a noise block, so that every byte is checked
 * ------------------------------------------------------------------------ */

#define NOISE_LEN  65536u
#define NOISE_MASK (NOISE_LEN - 1)

/* Twice the block, so that any slice up to NOISE_LEN is contiguous. */
static uint8_t noise[2 * NOISE_LEN];

/* splitmix64's finaliser: a cheap, well-spread 64-bit mix. */
static uint64_t
mix64(uint64_t x)
{
	x += UINT64_C(0x9e3779b97f4a7c15);
	x = (x ^ (x >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	x = (x ^ (x >> 27)) * UINT64_C(0x94d049bb133111eb);
	return x ^ (x >> 31);
}

static void
noise_init(void)
{
	for (unsigned i = 0; i < NOISE_LEN; i += 8) {
		uint64_t x = mix64(i);
		memcpy(noise + i, &x, 8);
	}
	memcpy(noise + NOISE_LEN, noise, NOISE_LEN);
}

/* Where message SEQ of connection ID (or ID's bulk stream) starts. */
static uint64_t
stream_base(uint32_t id, uint32_t seq)
{
	return mix64((uint64_t)id << 32 | seq);
}

/* Writes bytes FROM..FROM+LEN of the stream that starts at BASE. */
static void
stream_fill(uint8_t *dst, uint64_t base, uint64_t from, size_t len)
{
	while (len > 0) {
		size_t k = len < NOISE_LEN ? len : NOISE_LEN;
		memcpy(dst, noise + ((base + from) & NOISE_MASK), k);
		dst += k;
		from += k;
		len -= k;
	}
}

/* 1 when P holds bytes FROM..FROM+LEN of the stream at BASE. */
static int
stream_match(const uint8_t *p, uint64_t base, uint64_t from, size_t len)
{
	while (len > 0) {
		size_t k = len < NOISE_LEN ? len : NOISE_LEN;
		if (memcmp(p, noise + ((base + from) & NOISE_MASK), k) != 0)
			return 0;
		p += k;
		from += k;
		len -= k;
	}
	return 1;
}

/* Byte J of message SEQ of connection ID, for J < 8: noise ^ the tag. */
static uint8_t
msg_head(uint32_t id, uint32_t seq, uint64_t base, uint64_t j)
{
	uint64_t tag = (uint64_t)id << 32 | seq;

	return noise[(base + j) & NOISE_MASK] ^ (uint8_t)(tag >> (8 * j));
}

static void
msg_fill(uint8_t *dst, uint32_t id, uint32_t seq, uint64_t from, size_t len)
{
	uint64_t base = stream_base(id, seq);

	stream_fill(dst, base, from, len);
	for (uint64_t j = from; j < 8 && j < from + len; j++)
		dst[j - from] = msg_head(id, seq, base, j);
}

static int
msg_match(const uint8_t *p, uint32_t id, uint32_t seq, uint64_t from,
          size_t len)
{
	uint64_t base = stream_base(id, seq), j = from;

	for (; j < 8 && j < from + len; j++)
		if (p[j - from] != msg_head(id, seq, base, j))
			return 0;
	return stream_match(p + (j - from), base, j, len - (j - from));
}

/* ------------------------------------------------------------------------
 * Workers
 * ------------------------------------------------------------------------ */

struct counters {
	uint64_t ops, bytes, errors, timeouts, verify, late, established,
	        closed;
};

enum conn_state { CS_EXCHANGE, CS_CONNECTING, CS_HELD };

struct conn {
	int fd;
	uint32_t id;     /* over all threads */
	uint32_t seq;    /* the current message */
	uint32_t events; /* registered with epoll; 0 for none */
	enum conn_state state;
	unsigned bad;   /* the current message failed verification */
	unsigned nlate; /* timed-out requests so far (udp) */
	uint32_t late[LATE_MAX];
	uint64_t sent, got; /* of the message; of the stream in bulk */
	int pipe[2];        /* bulk: the pipe its chunks are spliced through */
	uint32_t piped;     /* bulk: bytes in it, the stream's from sent on */
	uint64_t t0;        /* when the current operation started, ns */
	struct conn *prev, *next; /* udp: outstanding, oldest first */
};

struct run;

struct worker {
	pthread_t tid;
	struct run *run;
	const struct bench_opts *o;
	struct conn *conns;
	size_t n, alive;
	int epfd, first_err;
	uint8_t *in, *out;
	size_t buflen;
	struct conn *oldest, *newest;
	struct counters c;
	uint64_t elapsed_ns;
	_Atomic uint64_t shown; /* ops (bulk: bytes) for the progress line */
	struct hist hist;
};

/* What the threads share: the start signal, the stop flag. */
struct run {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int ready, go;
	uint64_t end_ns;
	int64_t setup_deadline;
	atomic_int stop;
	atomic_int running;
};

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int
is_tcp(const struct bench_opts *o)
{
	return o->ep.scheme == DX_SCHEME_TCP;
}

/* Registers C for EV (level-triggered); returns 0 or -errno. */
static int
set_events(struct worker *w, struct conn *c, uint32_t ev)
{
	struct epoll_event e = {.events = ev, .data.ptr = c};

	if (c->events == ev)
		return 0;
	if (epoll_ctl(w->epfd, c->events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c->fd,
	              &e) < 0)
		return -errno;
	c->events = ev;
	return 0;
}

static void
list_remove(struct worker *w, struct conn *c)
{
	if (c->prev == NULL && w->oldest != c)
		return; /* not on the list */
	if (c->prev)
		c->prev->next = c->next;
	else
		w->oldest = c->next;
	if (c->next)
		c->next->prev = c->prev;
	else
		w->newest = c->prev;
	c->prev = c->next = NULL;
}

static void
list_append(struct worker *w, struct conn *c)
{
	c->prev = w->newest;
	c->next = NULL;
	if (w->newest)
		w->newest->next = c;
	else
		w->oldest = c;
	w->newest = c;
}

static void
close_socket(struct worker *w, struct conn *c)
{
	if (c->fd < 0)
		return;
	list_remove(w, c);
	dx_close(c->fd);
	c->fd = -1;
	c->events = 0;
	for (int i = 0; i < 2; i++) {
		if (c->pipe[i] >= 0)
			dx_close(c->pipe[i]);
		c->pipe[i] = -1;
	}
	c->piped = 0;
}

/* A socket failed: it is counted, closed and not used again. */
static void
conn_fail(struct worker *w, struct conn *c, int err)
{
	if (w->first_err == 0 && err < 0)
		w->first_err = err;
	w->c.errors++;
	close_socket(w, c);
	w->alive--;
}

/* ---- udp */

static void
udp_request(struct worker *w, struct conn *c, uint64_t now)
{
	size_t size = (size_t)w->o->size;
	ssize_t n;

	c->seq++;
	msg_fill(w->out, c->id, c->seq, 0, size);
	c->t0 = now;
	list_append(w, c);
	n = dx_send(c->fd, w->out, size);
	/* -EAGAIN: a full queue dropped it; the timeout sends another. */
	if (n < 0 && n != -EAGAIN)
		conn_fail(w, c, (int)n);
}

/* 1 when P is the reply to one of C's timed-out requests. */
static int
udp_is_late(const struct conn *c, const uint8_t *p, size_t len)
{
	unsigned k = c->nlate < LATE_MAX ? c->nlate : LATE_MAX;

	for (unsigned i = 0; i < k; i++)
		if (msg_match(p, c->id, c->late[i], 0, len))
			return 1;
	return 0;
}

static void
udp_event(struct worker *w, struct conn *c, uint32_t ev)
{
	size_t size = (size_t)w->o->size;
	ssize_t n = dx_recvfrom(c->fd, w->in, size, NULL);
	uint64_t now;

	(void)ev;
	if (n == -EAGAIN)
		return;
	if (n < 0) {
		conn_fail(w, c, (int)n);
		return;
	}
	now = now_ns();
	if ((size_t)n == size && msg_match(w->in, c->id, c->seq, 0, size)) {
		w->c.ops++;
		w->c.bytes += size;
		hist_add(&w->hist, now - c->t0);
	} else if ((size_t)n == size && udp_is_late(c, w->in, size)) {
		w->c.late++;
		return;
	} else {
		w->c.verify++;
	}
	list_remove(w, c);
	udp_request(w, c, now);
}

/* Requests unanswered for --timeout are lost: count them, send anew. */
static void
udp_expire(struct worker *w, uint64_t now)
{
	uint64_t limit = (uint64_t)w->o->timeout_ms * 1000000u;

	while (w->oldest && now - w->oldest->t0 >= limit) {
		struct conn *c = w->oldest;

		w->c.timeouts++;
		c->late[c->nlate++ % LATE_MAX] = c->seq;
		list_remove(w, c);
		udp_request(w, c, now);
	}
}

/* ---- stream messages: pingpong and connrate */

/* Sends what is left of C's message; returns 0 or a negative error. */
static int
msg_send(struct worker *w, struct conn *c)
{
	uint64_t size = (uint64_t)w->o->size;

	while (c->sent < size) {
		size_t k = size - c->sent < w->buflen ? (size_t)(size - c->sent)
		                                      : w->buflen;
		ssize_t n;

		msg_fill(w->out, c->id, c->seq, c->sent, k);
		n = dx_send(c->fd, w->out, k);
		if (n == -EAGAIN)
			return set_events(w, c, EPOLLIN | EPOLLOUT);
		if (n < 0)
			return (int)n;
		c->sent += (uint64_t)n;
	}
	return set_events(w, c, EPOLLIN);
}

/*
 * Reads some of the echo of C's message and checks it. Returns 1 when the
 * whole echo is in, 0 when more is to come, or a negative error (-EPIPE
 * for an end of file: the server closed the connection).
 */
static int
msg_receive(struct worker *w, struct conn *c)
{
	uint64_t left = (uint64_t)w->o->size - c->got;
	size_t want = left < w->buflen ? (size_t)left : w->buflen;
	ssize_t n = dx_read(c->fd, w->in, want);

	if (n == -EAGAIN)
		return 0;
	if (n <= 0)
		return n == 0 ? -EPIPE : (int)n;
	if (!msg_match(w->in, c->id, c->seq, c->got, (size_t)n))
		c->bad = 1;
	c->got += (uint64_t)n;
	return c->got == (uint64_t)w->o->size;
}

static void
msg_done(struct worker *w, struct conn *c, uint64_t now)
{
	if (c->bad) {
		w->c.verify++;
		return;
	}
	w->c.ops++;
	w->c.bytes += (uint64_t)w->o->size;
	hist_add(&w->hist, now - c->t0);
}

static void
msg_reset(struct conn *c, uint64_t now)
{
	c->seq++;
	c->sent = c->got = 0;
	c->bad = 0;
	c->t0 = now;
}

static void
pingpong_event(struct worker *w, struct conn *c, uint32_t ev)
{
	int rc = 0;

	if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP))
		rc = msg_receive(w, c);
	if (rc == 1) {
		uint64_t now = now_ns();
		msg_done(w, c, now);
		msg_reset(c, now);
		rc = msg_send(w, c);
	} else if (rc == 0 && (ev & EPOLLOUT)) {
		rc = msg_send(w, c);
	}
	if (rc < 0)
		conn_fail(w, c, rc);
}

/* ---- connrate */

/* Ends a slot's connection; tcp with a reset, so no TIME_WAIT is left. */
static void
slot_close(struct worker *w, struct conn *c)
{
	struct linger lg = {1, 0};

	if (is_tcp(w->o))
		(void)setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close_socket(w, c);
}

static void
set_nodelay(const struct bench_opts *o, int fd)
{
	int on = 1;

	if (o->ep.scheme == DX_SCHEME_TCP)
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
}

/*
 * Opens a slot's next connection and, once connected, sends its message.
 * A tcp connect goes on in the background; a unix one finishes at once or
 * waits for backlog room. When there is a message, a tcp one is sent
 * right after the connect starts: over loopback the handshake is over by
 * the time connect(2) returns, so the send goes through (or it says
 * EAGAIN and the slot waits to write, or it fails as the connect did),
 * and the poll and getsockopt(SO_ERROR) that would find that out first
 * are saved: two of the ten system calls a connection cost the load.
 */
static int
slot_open(struct worker *w, struct conn *c, uint64_t now)
{
	const struct bench_opts *o = w->o;
	int rc, fd = dx_socket(o->addr.u.sa.sa_family, SOCK_STREAM, 0);

	if (fd < 0)
		return fd;
	c->fd = fd;
	c->events = 0;
	msg_reset(c, now);
	set_nodelay(o, fd);
	if (is_tcp(o) && o->size > 0) {
		rc = dx_connect_start(fd, &o->addr);
		if (rc < 0 && rc != -EINPROGRESS)
			return rc;
		c->state = CS_EXCHANGE;
		return msg_send(w, c);
	}
	rc = dx_connect(fd, &o->addr,
	                is_tcp(o) ? 0 : dx_deadline_in(CONNECT_MS));
	if (rc == 0) {
		c->state = CS_EXCHANGE;
		return msg_send(w, c);
	}
	if (rc == -ETIMEDOUT && is_tcp(o)) {
		c->state = CS_CONNECTING;
		return set_events(w, c, EPOLLOUT);
	}
	return rc;
}

static int
slot_connected(struct worker *w, struct conn *c)
{
	socklen_t len = sizeof(int);
	int err = 0;

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		return -errno;
	if (err != 0)
		return -err;
	c->state = CS_EXCHANGE;
	return msg_send(w, c);
}

static void
connrate_event(struct worker *w, struct conn *c, uint32_t ev)
{
	int rc = 0;

	if (c->state == CS_CONNECTING) {
		rc = slot_connected(w, c);
	} else {
		if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP))
			rc = msg_receive(w, c);
		if (rc == 1) {
			uint64_t now = now_ns();
			msg_done(w, c, now);
			slot_close(w, c);
			rc = slot_open(w, c, now);
		} else if (rc == 0 && (ev & EPOLLOUT)) {
			rc = msg_send(w, c);
		}
	}
	if (rc < 0)
		conn_fail(w, c, rc);
}

/* ---- bulk and idle */

/*
 * Sends the next chunk of C's stream, which starts at BASE. A chunk no
 * longer than the noise block is a contiguous slice of the doubled block,
 * and goes to the socket by reference: vmsplice into C's pipe, splice on
 * (the block never changes after noise_init, as vmsplice requires). The
 * load generator then spends no copy on what it sends, as a server that
 * splices spends none on what it echoes; where C has no pipe, send(2)
 * copies the slice, and a longer chunk is filled in first.
 */
static void
bulk_send(struct worker *w, struct conn *c, uint64_t base)
{
	const uint8_t *at = noise + ((base + c->sent) & NOISE_MASK);
	size_t k = (size_t)w->o->size;
	ssize_t n;

	if (k > NOISE_LEN) {
		stream_fill(w->out, base, c->sent, k);
		n = dx_send(c->fd, w->out, k);
	} else if (c->pipe[0] < 0) {
		n = dx_send(c->fd, at, k);
	} else {
		if (c->piped == 0) {
			n = dx__vmsplice(c->pipe[1], at, k);
			if (n <= 0) {
				conn_fail(w, c, n < 0 ? (int)n : -EIO);
				return;
			}
			c->piped = (uint32_t)n;
		}
		n = dx__splice(c->pipe[0], c->fd, c->piped);
		if (n > 0)
			c->piped -= (uint32_t)n;
	}
	if (n > 0)
		c->sent += (uint64_t)n;
	else if (n != -EAGAIN)
		conn_fail(w, c, n < 0 ? (int)n : -EIO);
}

static void
bulk_event(struct worker *w, struct conn *c, uint32_t ev)
{
	uint64_t base = stream_base(c->id, 0);
	ssize_t n;

	if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
		n = dx_read(c->fd, w->in, w->buflen);
		if (n == 0 || (n < 0 && n != -EAGAIN)) {
			conn_fail(w, c, n == 0 ? -EPIPE : (int)n);
			return;
		}
		if (n > 0) {
			if (!stream_match(w->in, base, c->got, (size_t)n))
				w->c.verify++;
			c->got += (uint64_t)n;
			w->c.bytes += (uint64_t)n;
		}
	}
	if (ev & EPOLLOUT)
		bulk_send(w, c, base);
}

/* An idle connection that becomes readable was closed (or spoke). */
static void
idle_event(struct worker *w, struct conn *c, uint32_t ev)
{
	ssize_t n = dx_read(c->fd, w->in, w->buflen);

	(void)ev;
	if (n > 0 || n == -EAGAIN)
		return;
	w->c.closed++;
	conn_fail(w, c, n == 0 ? -EPIPE : (int)n);
}

/*
 * idle's opening: one step of C's connect and probe. Returns 1 when C is
 * held (connected, and its message echoed unless --size is 0), 0 while
 * under way, or a negative error (-EBADMSG for an echo that differs).
 */
static int
idle_step(struct worker *w, struct conn *c, uint32_t ev)
{
	int rc = 0;

	if (c->state == CS_CONNECTING) {
		if (!(ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			return 0;
		rc = slot_connected(w, c);
	} else if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
		rc = msg_receive(w, c);
	} else if (ev & EPOLLOUT) {
		rc = msg_send(w, c);
	}
	if (rc < 0 || (rc == 0 && w->o->size > 0))
		return rc;
	if (c->bad)
		return -EBADMSG;
	c->state = CS_HELD;
	w->c.established++;
	hist_add(&w->hist, now_ns() - c->t0);
	rc = set_events(w, c, EPOLLIN | EPOLLRDHUP);
	return rc < 0 ? rc : 1;
}

/* Starts opening C: a socket, its connect, its message. */
static int
idle_start(struct worker *w, struct conn *c)
{
	int rc = slot_open(w, c, now_ns());

	if (c->fd >= 0)
		w->alive++;
	if (rc == 0 && c->state == CS_EXCHANGE)
		rc = idle_step(w, c, 0);
	return rc;
}

/* A socket of idle's opening failed; -EBADMSG is a verify failure. */
static void
idle_fail(struct worker *w, struct conn *c, int err)
{
	if (c->fd < 0) {
		w->c.errors++;
		if (w->first_err == 0)
			w->first_err = err;
		return;
	}
	if (err == -EBADMSG) {
		w->c.verify++;
		close_socket(w, c);
		w->alive--;
		return;
	}
	conn_fail(w, c, err);
}

/*
 * Opens the worker's idle connections, IDLE_WINDOW under way at a time,
 * until all are held or the setup time is up; what is still under way
 * then has timed out.
 */
static void
idle_setup(struct worker *w)
{
	struct epoll_event evs[MAX_EVENTS];
	size_t next = 0, busy = 0;

	while ((next < w->n || busy > 0) && !atomic_load(&w->run->stop) &&
	       dx_now_ms() < w->run->setup_deadline) {
		int n;

		for (; busy < IDLE_WINDOW && next < w->n; next++) {
			struct conn *c = &w->conns[next];
			int rc = idle_start(w, c);

			if (rc < 0)
				idle_fail(w, c, rc);
			else if (rc == 0)
				busy++;
		}
		n = dx__epoll_wait(w->epfd, evs, MAX_EVENTS,
		                   w->run->setup_deadline);
		if (n < 0) {
			w->first_err = n;
			w->c.errors++;
			break;
		}
		for (int i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;
			int rc;

			if (c->fd < 0)
				continue;
			if (c->state == CS_HELD) {
				idle_event(w, c, evs[i].events);
				continue;
			}
			rc = idle_step(w, c, evs[i].events);
			if (rc < 0)
				idle_fail(w, c, rc);
			if (rc != 0)
				busy--;
		}
	}
	for (size_t i = 0; i < w->n; i++)
		if (i >= next ||
		    (w->conns[i].fd >= 0 && w->conns[i].state != CS_HELD))
			idle_fail(w, &w->conns[i], -ETIMEDOUT);
}

static void
handle(struct worker *w, struct conn *c, uint32_t ev)
{
	if (c->fd < 0)
		return; /* failed earlier in this batch */
	switch (w->o->pattern) {
	case BP_UDP:
		udp_event(w, c, ev);
		break;
	case BP_PINGPONG:
		pingpong_event(w, c, ev);
		break;
	case BP_CONNRATE:
		connrate_event(w, c, ev);
		break;
	case BP_BULK:
		bulk_event(w, c, ev);
		break;
	case BP_IDLE:
		idle_event(w, c, ev);
		break;
	}
}

/* ---- the worker's life: open, wait for the start, run, close */

/*
 * Opens one socket of the worker's share (udp, pingpong, bulk; idle opens
 * its own); returns 0 or an error. Bulk writes whenever it can.
 */
static int
open_one(struct worker *w, struct conn *c)
{
	const struct bench_opts *o = w->o;
	int64_t deadline = dx_deadline_in(CONNECT_MS);
	int fd, rc;

	if (deadline > w->run->setup_deadline)
		deadline = w->run->setup_deadline;
	if (o->pattern == BP_UDP) {
		fd = dx_connect_endpoint(&o->ep, 0, deadline);
		if (fd < 0)
			return fd;
	} else {
		fd = dx_socket(o->addr.u.sa.sa_family, SOCK_STREAM, 0);
		if (fd < 0)
			return fd;
		set_nodelay(o, fd);
		rc = dx_connect(fd, &o->addr, deadline);
		if (rc < 0) {
			dx_close(fd);
			return rc;
		}
		w->c.established++;
	}
	c->fd = fd;
	w->alive++;
	/* Without a pipe, bulk_send copies: slower, no less correct. */
	if (o->pattern == BP_BULK && (size_t)o->size <= NOISE_LEN &&
	    pipe2(c->pipe, O_CLOEXEC | O_NONBLOCK) < 0)
		c->pipe[0] = c->pipe[1] = -1;
	return set_events(w, c,
	                  o->pattern == BP_BULK ? EPOLLIN | EPOLLOUT : EPOLLIN);
}

static void
worker_setup(struct worker *w)
{
	w->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (w->epfd < 0) {
		w->first_err = -errno;
		w->c.errors++;
		return;
	}
	if (w->o->pattern == BP_CONNRATE) {
		w->alive = w->n; /* slots open their connections as they go */
		return;
	}
	if (w->o->pattern == BP_IDLE) {
		idle_setup(w);
		return;
	}
	for (size_t i = 0; i < w->n; i++) {
		struct conn *c = &w->conns[i];
		int rc = dx_now_ms() < w->run->setup_deadline ? open_one(w, c)
		                                              : -ETIMEDOUT;
		if (rc < 0 && c->fd >= 0)
			conn_fail(w, c, rc);
		else if (rc < 0)
			w->c.errors++;
		if (rc < 0 && w->first_err == 0)
			w->first_err = rc;
	}
}

/* The first operation on every socket, at the start signal. */
static void
worker_begin(struct worker *w, uint64_t now)
{
	for (size_t i = 0; i < w->n; i++) {
		struct conn *c = &w->conns[i];
		int rc = 0;

		if (w->o->pattern == BP_CONNRATE) {
			rc = slot_open(w, c, now);
		} else if (c->fd < 0) {
			continue;
		} else if (w->o->pattern == BP_UDP) {
			udp_request(w, c, now);
		} else if (w->o->pattern == BP_PINGPONG) {
			msg_reset(c, now);
			rc = msg_send(w, c);
		}
		if (rc < 0)
			conn_fail(w, c, rc);
	}
}

/* Tells the main thread this worker is ready; waits for the start. */
static void
worker_wait_start(struct worker *w)
{
	struct run *run = w->run;

	pthread_mutex_lock(&run->mu);
	run->ready++;
	pthread_cond_broadcast(&run->cv);
	while (!run->go)
		pthread_cond_wait(&run->cv, &run->mu);
	pthread_mutex_unlock(&run->mu);
}

/* How long epoll may wait: until the end, the next udp timeout, a tick. */
static int64_t
wait_deadline(const struct worker *w, uint64_t now, uint64_t end)
{
	uint64_t until = now + TICK_MS * 1000000ull;

	if (end < until)
		until = end;
	if (w->oldest) {
		uint64_t t =
		        w->oldest->t0 + (uint64_t)w->o->timeout_ms * 1000000u;
		if (t < until)
			until = t > now ? t : now;
	}
	return dx_now_ms() + (int64_t)((until - now + 999999) / 1000000);
}

static void
worker_loop(struct worker *w, uint64_t end)
{
	struct epoll_event evs[MAX_EVENTS];
	uint64_t now = now_ns();

	while (w->alive > 0 && now < end && !atomic_load(&w->run->stop)) {
		int n = dx__epoll_wait(w->epfd, evs, MAX_EVENTS,
		                       wait_deadline(w, now, end));
		if (n < 0) {
			w->first_err = n;
			w->c.errors++;
			break;
		}
		for (int i = 0; i < n; i++)
			handle(w, evs[i].data.ptr, evs[i].events);
		now = now_ns();
		if (w->o->pattern == BP_UDP)
			udp_expire(w, now);
		atomic_store_explicit(&w->shown,
		                      w->o->pattern == BP_BULK ? w->c.bytes
		                                               : w->c.ops,
		                      memory_order_relaxed);
	}
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	uint64_t start;

	worker_setup(w);
	worker_wait_start(w);
	start = now_ns();
	if (w->epfd >= 0 && !atomic_load(&w->run->stop)) {
		worker_begin(w, start);
		worker_loop(w, w->run->end_ns);
	}
	w->elapsed_ns = now_ns() - start;
	for (size_t i = 0; i < w->n; i++) {
		if (w->o->pattern == BP_BULK)
			w->c.ops += w->conns[i].got / (uint64_t)w->o->size;
		close_socket(w, &w->conns[i]);
	}
	if (w->epfd >= 0)
		close(w->epfd);
	atomic_fetch_sub(&w->run->running, 1);
	return NULL;
}

/* ------------------------------------------------------------------------
 * Options and input checks
 * ------------------------------------------------------------------------ */

static const struct option long_opts[] = {
        {"pattern", required_argument, NULL, 'p'},
        {"connections", required_argument, NULL, 'c'},
        {"duration", required_argument, NULL, 'd'},
        {"size", required_argument, NULL, 's'},
        {"threads", required_argument, NULL, 't'},
        {"timeout", required_argument, NULL, 'O'},
        {"json", no_argument, NULL, 'j'},
        {"trace", no_argument, NULL, 'T'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
};

static int
parse_pattern(const char *text, enum pattern *p)
{
	for (size_t i = 0; i < DX_ARRAY_LEN(patterns); i++)
		if (strcmp(text, patterns[i].name) == 0) {
			*p = (enum pattern)i;
			return 0;
		}
	return -1;
}

/* Applies option C; returns 0, or -1 after printing why. */
static int
apply_option(int c, struct bench_opts *o)
{
	switch (c) {
	case 'p':
		o->have_pattern = 1;
		if (parse_pattern(optarg, &o->pattern) == 0)
			return 0;
		cli_error("bench: unknown pattern '%s' (udp, pingpong, "
		          "connrate, bulk, idle)",
		          optarg);
		return -1;
	case 'c':
		if (cli_parse_count(optarg, 1, MAX_CONNS, &o->conns) == 0)
			return 0;
		cli_error("bench: bad value '%s' for --connections (1-%d)",
		          optarg, MAX_CONNS);
		return -1;
	case 'd':
		o->duration_ms = cli_parse_duration(optarg);
		if (o->duration_ms > 0 && o->duration_ms <= 86400000)
			return 0;
		cli_error("bench: bad value '%s' for --duration (e.g. 10, "
		          "2.5, 500ms, 1m; at most 24h)",
		          optarg);
		return -1;
	case 's':
		o->have_size = 1;
		if (cli_parse_count(optarg, 0, SIZE_MAX_STREAM, &o->size) == 0)
			return 0;
		cli_error("bench: bad value '%s' for --size (1-%lld bytes; "
		          "0 for idle)",
		          optarg, SIZE_MAX_STREAM);
		return -1;
	case 't':
		if (cli_parse_count(optarg, 1, MAX_THREADS, &o->threads) == 0)
			return 0;
		cli_error("bench: bad value '%s' for --threads (1-%d)", optarg,
		          MAX_THREADS);
		return -1;
	case 'O':
		o->timeout_ms = cli_parse_duration(optarg);
		if (o->timeout_ms > 0 && o->timeout_ms <= 60000)
			return 0;
		cli_error("bench: bad value '%s' for --timeout (1ms-60s)",
		          optarg);
		return -1;
	case 'j':
		o->json = 1;
		return 0;
	case 'T':
		cli_trace_to_stderr();
		return 0;
	default:
		return -1;
	}
}

/* Parses the options into O; returns -1 (error printed), 0, or 1 (help). */
static int
parse_opts(int argc, char **argv, struct bench_opts *o)
{
	int c;

	opterr = 0; /* one line of our own instead of getopt's */
	while ((c = getopt_long(argc, argv, ":p:c:d:s:t:h", long_opts, NULL)) !=
	       -1) {
		if (c == 'h') {
			(void)fputs(usage, stdout);
			return 1;
		}
		if (c == ':' || c == '?') {
			cli_error("bench: %s '%s' (see 'duplex bench --help')",
			          c == ':' ? "missing value for option"
			                   : "unknown option",
			          argv[optind - 1]);
			return -1;
		}
		if (apply_option(c, o) < 0)
			return -1;
	}
	return 0;
}

/* Checks the endpoint against the pattern and the size against both. */
static int
check_target(struct bench_opts *o, const char *text)
{
	char why[256];
	int socktype;

	o->target = text;
	if (dx_endpoint_parse(&o->ep, text, why, sizeof(why)) < 0) {
		cli_error("bad endpoint '%s': %s", text, why);
		return -1;
	}
	socktype = dx_scheme_socktype(o->ep.scheme);
	if (!o->have_pattern)
		o->pattern = socktype == SOCK_DGRAM ? BP_UDP : BP_PINGPONG;
	if (socktype != patterns[o->pattern].socktype) {
		cli_error("bench: pattern '%s' needs %s endpoint, not '%s'",
		          patterns[o->pattern].name,
		          o->pattern == BP_UDP
		                  ? "a datagram (udp:// or unixgram://)"
		                  : "a stream (tcp:// or unix://)",
		          text);
		return -1;
	}
	if (!o->have_size)
		o->size = patterns[o->pattern].size;
	if (o->size == 0 && o->pattern != BP_IDLE) {
		cli_error("bench: --size '0' is only for the idle pattern");
		return -1;
	}
	if (o->size > patterns[o->pattern].size_max) {
		cli_error("bench: --size '%lld' is more than one datagram can "
		          "carry (%lld bytes)",
		          o->size, patterns[o->pattern].size_max);
		return -1;
	}
	if (o->threads > o->conns)
		o->threads = o->conns;
	return 0;
}

/* Makes room for every socket under RLIMIT_NOFILE; -1 when it cannot. */
static int
raise_fd_limit(const struct bench_opts *o)
{
	struct rlimit rl;
	rlim_t need = (rlim_t)o->conns + (rlim_t)o->threads + 32;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= need)
		return 0;
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need) {
		cli_error("bench: -c %lld needs %llu descriptors; the limit is "
		          "%llu (ulimit -n)",
		          o->conns, (unsigned long long)need,
		          (unsigned long long)rl.rlim_max);
		return -1;
	}
	rl.rlim_cur = need;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
		cli_error(
		        "bench: cannot raise the descriptor limit to %llu: %s",
		        (unsigned long long)need, dx_strerror(-errno));
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------------------
 * The run: start the workers, watch them, add up, report
 * ------------------------------------------------------------------------ */

struct totals {
	struct counters c;
	uint64_t elapsed_ns;
	int first_err;
	struct hist hist;
};

/* Splits the connections among the workers and gives each its buffers. */
static int
workers_init(struct worker *ws, struct conn *conns, struct run *run,
             const struct bench_opts *o)
{
	size_t buflen = o->pattern == BP_UDP ? (size_t)o->size : STREAM_BUF;

	if (o->pattern == BP_BULK && (size_t)o->size > buflen)
		buflen = (size_t)o->size;
	for (long long t = 0; t < o->threads; t++) {
		struct worker *w = &ws[t];
		size_t lo = (size_t)(o->conns * t / o->threads);
		size_t hi = (size_t)(o->conns * (t + 1) / o->threads);

		w->run = run;
		w->o = o;
		w->conns = conns + lo;
		w->n = hi - lo;
		w->epfd = -1;
		w->buflen = buflen;
		w->in = malloc(buflen);
		w->out = malloc(buflen);
		if (w->in == NULL || w->out == NULL)
			return -ENOMEM;
		for (size_t i = lo; i < hi; i++) {
			conns[i].fd = -1;
			conns[i].pipe[0] = conns[i].pipe[1] = -1;
			conns[i].id = (uint32_t)i;
		}
	}
	return 0;
}

static void
progress_line(const struct bench_opts *o, struct worker *ws, uint64_t t,
              uint64_t *last, uint64_t *last_t)
{
	uint64_t sum = 0;
	double secs, rate;

	for (long long i = 0; i < o->threads; i++)
		sum += atomic_load_explicit(&ws[i].shown, memory_order_relaxed);
	secs = (double)(t - *last_t) / 1e9;
	rate = secs > 0 ? (double)(sum - *last) / secs : 0;
	if (o->pattern == BP_BULK)
		(void)fprintf(stderr,
		              "\rduplex: bench: %.0f s, %.1f MiB/s\033[K",
		              (double)t / 1e9, rate / 1048576.0);
	else
		(void)fprintf(stderr,
		              "\rduplex: bench: %.0f s, %.0f ops/s, %" PRIu64
		              " ops\033[K",
		              (double)t / 1e9, rate, sum);
	*last = sum;
	*last_t = t;
}

/*
 * Waits until the end (or SIGINT/SIGTERM, or every worker gone), printing
 * a progress line each second when stderr is a terminal.
 */
static void
watch(const struct bench_opts *o, struct run *run, struct worker *ws,
      uint64_t start, const sigset_t *sigs)
{
	int tty = isatty(STDERR_FILENO), shown = 0;
	uint64_t last = 0, last_t = 0, now, t;

	while ((now = now_ns()) < run->end_ns &&
	       atomic_load(&run->running) > 0) {
		uint64_t wait = run->end_ns - now;
		struct timespec ts;

		if (wait > 250000000u)
			wait = 250000000u;
		ts.tv_sec = 0;
		ts.tv_nsec = (long)wait;
		if (sigtimedwait(sigs, NULL, &ts) > 0) {
			atomic_store(&run->stop, 1);
			break;
		}
		t = now_ns() - start;
		if (tty && t - last_t >= 1000000000u) {
			progress_line(o, ws, t, &last, &last_t);
			shown = 1;
		}
	}
	if (shown)
		(void)fputs("\r\033[K", stderr);
}

static void
counters_add(struct counters *a, const struct counters *b)
{
	a->ops += b->ops;
	a->bytes += b->bytes;
	a->errors += b->errors;
	a->timeouts += b->timeouts;
	a->verify += b->verify;
	a->late += b->late;
	a->established += b->established;
	a->closed += b->closed;
}

static void
add_up(const struct bench_opts *o, const struct worker *ws, struct totals *t)
{
	for (long long i = 0; i < o->threads; i++) {
		const struct worker *w = &ws[i];

		counters_add(&t->c, &w->c);
		hist_merge(&t->hist, &w->hist);
		if (w->elapsed_ns > t->elapsed_ns)
			t->elapsed_ns = w->elapsed_ns;
		if (t->first_err == 0)
			t->first_err = w->first_err;
	}
	if (o->pattern == BP_IDLE)
		t->c.ops = t->c.established;
}

/* Runs the workers; fills T. Returns 0 or a negative error. */
static int
run_workers(const struct bench_opts *o, struct worker *ws, struct run *run,
            struct totals *t)
{
	sigset_t sigs, old;
	long long started = 0;
	uint64_t start;
	int rc = 0;

	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, &old);
	run->setup_deadline =
	        dx_deadline_in(SETUP_MS + SETUP_MS_PER * (int64_t)o->conns);
	for (; started < o->threads; started++) {
		rc = -pthread_create(&ws[started].tid, NULL, worker_main,
		                     &ws[started]);
		if (rc < 0)
			break;
		atomic_fetch_add(&run->running, 1);
	}
	if (rc < 0)
		atomic_store(&run->stop, 1);
	pthread_mutex_lock(&run->mu);
	while (run->ready < started)
		pthread_cond_wait(&run->cv, &run->mu);
	start = now_ns();
	run->end_ns = start + (uint64_t)o->duration_ms * 1000000u;
	run->go = 1;
	pthread_cond_broadcast(&run->cv);
	pthread_mutex_unlock(&run->mu);
	if (rc == 0)
		watch(o, run, ws, start, &sigs);
	for (long long i = 0; i < started; i++)
		pthread_join(ws[i].tid, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	add_up(o, ws, t);
	return rc;
}

/* ---- the report */

static double
per_second(uint64_t n, uint64_t ns)
{
	return ns > 0 ? (double)n * 1e9 / (double)ns : 0;
}

static void
json_latency(const struct hist *h)
{
	static const struct {
		const char *key;
		double q;
	} qs[] = {{"p50", 0.5}, {"p90", 0.9}, {"p99", 0.99}, {"p999", 0.999}};

	if (h->n == 0) {
		printf("null");
		return;
	}
	printf("{\"mean\": %.3f", (double)h->sum / (double)h->n / 1e3);
	for (size_t i = 0; i < DX_ARRAY_LEN(qs); i++)
		printf(", \"%s\": %.3f", qs[i].key,
		       hist_quantile(h, qs[i].q) / 1e3);
	printf(", \"max\": %.3f}", (double)h->max / 1e3);
}

static void
report_json(const struct bench_opts *o, const struct totals *t)
{
	const struct counters *c = &t->c;

	printf("{\"endpoint\": ");
	cli_json_string(stdout, o->target);
	printf(", \"pattern\": \"%s\", \"connections\": %lld, "
	       "\"threads\": %lld, \"size\": %lld, \"duration_s\": %.3f, ",
	       patterns[o->pattern].name, o->conns, o->threads, o->size,
	       (double)t->elapsed_ns / 1e9);
	printf("\"ops\": %" PRIu64 ", \"ops_per_s\": %.1f, \"bytes\": %" PRIu64
	       ", \"mib_per_s\": %.2f, \"latency_us\": ",
	       c->ops, per_second(c->ops, t->elapsed_ns), c->bytes,
	       per_second(c->bytes, t->elapsed_ns) / 1048576.0);
	json_latency(&t->hist);
	printf(", \"errors\": %" PRIu64 ", \"timeouts\": %" PRIu64
	       ", \"verify_failures\": %" PRIu64 ", \"late_replies\": %" PRIu64
	       ", \"established\": %" PRIu64 ", \"closed_by_peer\": %" PRIu64
	       "}\n",
	       c->errors, c->timeouts, c->verify, c->late, c->established,
	       c->closed);
}

static void
report_text(const struct bench_opts *o, const struct totals *t)
{
	const struct counters *c = &t->c;
	const struct hist *h = &t->hist;
	char what[64] = "";

	if (o->pattern != BP_IDLE)
		(void)snprintf(what, sizeof(what), ", %lld-byte %s", o->size,
		               o->pattern == BP_BULK ? "chunks" : "messages");
	printf("duplex bench %s: pattern %s, %lld connection%s, %lld "
	       "thread%s%s, %.2f s\n",
	       o->target, patterns[o->pattern].name, o->conns,
	       o->conns == 1 ? "" : "s", o->threads, o->threads == 1 ? "" : "s",
	       what, (double)t->elapsed_ns / 1e9);
	if (o->pattern == BP_IDLE)
		printf("established %" PRIu64 " of %lld, closed by the server "
		       "%" PRIu64 "\n",
		       c->established, o->conns, c->closed);
	else
		printf("ops         %" PRIu64 " (%.1f/s), %.2f MiB/s\n", c->ops,
		       per_second(c->ops, t->elapsed_ns),
		       per_second(c->bytes, t->elapsed_ns) / 1048576.0);
	if (h->n > 0)
		printf("latency us  p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  "
		       "max %.1f  mean %.1f%s\n",
		       hist_quantile(h, 0.5) / 1e3, hist_quantile(h, 0.9) / 1e3,
		       hist_quantile(h, 0.99) / 1e3,
		       hist_quantile(h, 0.999) / 1e3, (double)h->max / 1e3,
		       (double)h->sum / (double)h->n / 1e3,
		       o->pattern == BP_IDLE ? " (opening)" : "");
	printf("errors %" PRIu64 ", timeouts %" PRIu64 ", verify failures "
	       "%" PRIu64 ", late replies %" PRIu64 "\n",
	       c->errors, c->timeouts, c->verify, c->late);
}

/* The exit code, with one line on stderr saying what went wrong. */
static int
verdict(const struct bench_opts *o, const struct totals *t)
{
	const struct counters *c = &t->c;

	if (c->verify > 0)
		cli_error("bench: %" PRIu64 " repl%s from '%s' did not match "
		          "what was sent",
		          c->verify, c->verify == 1 ? "y" : "ies", o->target);
	if (c->errors > 0)
		cli_error("bench: %" PRIu64 " error%s on '%s'%s%s", c->errors,
		          c->errors == 1 ? "" : "s", o->target,
		          t->first_err ? ", the first: " : "",
		          t->first_err ? dx_strerror(t->first_err) : "");
	if (c->ops == 0 && c->errors == 0 && c->verify == 0)
		cli_error("bench: no operation completed on '%s'", o->target);
	return c->verify > 0 || c->errors > 0 || c->ops == 0 ? DX_EXIT_FAIL
	                                                     : DX_EXIT_OK;
}

static int
run_bench(const struct bench_opts *o)
{
	struct run run = {.mu = PTHREAD_MUTEX_INITIALIZER,
	                  .cv = PTHREAD_COND_INITIALIZER};
	struct worker *ws = calloc((size_t)o->threads, sizeof(*ws));
	struct conn *conns = calloc((size_t)o->conns, sizeof(*conns));
	struct totals *t = calloc(1, sizeof(*t));
	int rc = DX_EXIT_FAIL, err = -ENOMEM;

	if (ws == NULL || conns == NULL || t == NULL ||
	    workers_init(ws, conns, &run, o) < 0)
		goto out;
	noise_init();
	err = run_workers(o, ws, &run, t);
	if (err < 0)
		goto out;
	if (o->json)
		report_json(o, t);
	else
		report_text(o, t);
	(void)fflush(stdout);
	rc = verdict(o, t);
out:
	if (err < 0)
		cli_error("bench: %s", dx_strerror(err));
	for (long long i = 0; ws != NULL && i < o->threads; i++) {
		free(ws[i].in);
		free(ws[i].out);
	}
	free(t);
	free(conns);
	free(ws);
	return rc;
}

int
cmd_bench(int argc, char **argv)
{
	struct bench_opts o = {.conns = 1,
	                       .threads = 1,
	                       .duration_ms = 10000,
	                       .timeout_ms = 200};
	int r = parse_opts(argc, argv, &o), n;

	if (r != 0)
		return r > 0 ? DX_EXIT_OK : DX_EXIT_USAGE;
	if (argc - optind != 1)
		return cli_usage_error("bench");
	if (check_target(&o, argv[optind]) < 0 || raise_fd_limit(&o) < 0)
		return DX_EXIT_USAGE;
	n = dx_endpoint_resolve(&o.ep, 0, &o.addr, 1);
	if (n <= 0) {
		cli_error("bench: cannot resolve '%s': %s", o.target,
		          dx_strerror(n == 0 ? -EADDRNOTAVAIL : n));
		return DX_EXIT_FAIL;
	}
	return run_bench(&o);
}
