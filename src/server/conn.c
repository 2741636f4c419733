/* SPDX-License-Identifier: MIT */
/*
 * conn.c - a stream connection's state machine (see conn.h). The one rule
 * that keeps data safe: never close with unread input from the peer, or
 * the kernel answers it with a reset that can destroy our last bytes in
 * flight. So a finished connection sends everything, half-closes
 * (shutdown SHUT_WR), and reads and discards until the peer's end of file
 * or the linger bound, and only then closes. One that has already read
 * the peer's end of file has nothing left unread and simply closes.
 */
#include "server/conn.h"
#include "server/conn_feed.h"
#include "child.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

static const char *const end_names[DX_END_COUNT] = {
        [DX_END_NONE] = "open",
        [DX_END_DONE] = "done",
        [DX_END_PEER] = "peer-closed",
        [DX_END_IDLE] = "idle-timeout",
        [DX_END_LIFETIME] = "lifetime",
        [DX_END_WRITE_STALL] = "write-timeout",
        [DX_END_LINGER] = "linger-timeout",
        [DX_END_ERROR] = "error",
};

const char *
dx__conn_end_name(enum dx_conn_end end)
{
	return end < DX_END_COUNT ? end_names[end] : "unknown";
}

uint8_t *
dx__pool_get(struct dx_bufpool *pool)
{
	struct dx_freebuf *buf = pool->free;

	if (pool->own != NULL && !pool->own_lent) {
		pool->own_lent = 1;
		return pool->own;
	}
	if (buf == NULL)
		return malloc(DX_CONN_BUF);
	pool->free = buf->next;
	pool->nfree--;
	return (uint8_t *)buf;
}

void
dx__pool_put(struct dx_bufpool *pool, uint8_t *buf)
{
	struct dx_freebuf *node = (struct dx_freebuf *)(void *)buf;

	if (buf == pool->own) {
		pool->own_lent = 0;
		return;
	}
	if (pool->nfree >= pool->max_free) {
		free(buf);
		return;
	}
	/* malloc's alignment suits the node the free buffer now holds. */
	node->next = pool->free;
	pool->free = node;
	pool->nfree++;
}

void
dx__pool_drain(struct dx_bufpool *pool)
{
	while (pool->free != NULL) {
		struct dx_freebuf *buf = pool->free;
		pool->free = buf->next;
		free(buf);
	}
	pool->nfree = 0;
}

size_t
dx_conn_space(const struct dx_conn *c)
{
	return DX_CONN_BUF - c->out_len;
}

uint8_t *
dx_conn_reserve(struct dx_conn *c, size_t *len)
{
	if (c->out == NULL) {
		c->out = dx__pool_get(c->pool);
		if (c->out == NULL)
			return NULL;
	}
	/* Move unsent bytes to the front so the free space is contiguous. */
	if (c->out_off > 0) {
		memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
		c->out_len -= c->out_off;
		c->out_off = 0;
	}
	*len = DX_CONN_BUF - c->out_len;
	return *len ? c->out + c->out_len : NULL;
}

void
dx_conn_commit(struct dx_conn *c, size_t len)
{
	if (len > 0 && c->out_off == c->out_len)
		c->wrote_ms = c->now_ms; /* output starts waiting on the peer */
	c->out_len += (uint32_t)len;
}

ssize_t
dx_conn_write(struct dx_conn *c, const void *data, size_t len)
{
	size_t room;
	uint8_t *p = dx_conn_reserve(c, &room);

	if (p == NULL)
		return c->out == NULL ? -ENOMEM : 0;
	if (len > room)
		len = room;
	memcpy(p, data, len);
	dx_conn_commit(c, len);
	return (ssize_t)len;
}

void
dx__conn_init(struct dx_conn *c, int fd, const struct dx_addr *peer,
              const struct dx_service_conf *conf, struct dx_bufpool *pool,
              int64_t now)
{
	memset(c, 0, sizeof(*c));
	c->fd = fd;
	c->pipe[0] = c->pipe[1] = -1;
	c->conf = conf;
	c->pool = pool;
	c->started_ms = c->active_ms = c->wrote_ms = c->now_ms = now;
	if (peer->u.sa.sa_family == AF_INET) {
		memcpy(c->peer.addr, &peer->u.in.sin_addr, 4);
		c->peer.port = peer->u.in.sin_port;
		c->peer.family = AF_INET;
	} else if (peer->u.sa.sa_family == AF_INET6) {
		memcpy(c->peer.addr, &peer->u.in6.sin6_addr, 16);
		c->peer.port = peer->u.in6.sin6_port;
		c->peer.family = AF_INET6;
	}
}

void
dx__conn_peer(const struct dx_conn *c, struct dx_addr *peer)
{
	memset(peer, 0, sizeof(*peer));
	if (c->peer.family == AF_INET) {
		peer->u.in.sin_family = AF_INET;
		memcpy(&peer->u.in.sin_addr, c->peer.addr, 4);
		peer->u.in.sin_port = c->peer.port;
		peer->len = sizeof(peer->u.in);
	} else if (c->peer.family == AF_INET6) {
		peer->u.in6.sin6_family = AF_INET6;
		memcpy(&peer->u.in6.sin6_addr, c->peer.addr, 16);
		peer->u.in6.sin6_port = c->peer.port;
		peer->len = sizeof(peer->u.in6);
	} else {
		peer->u.un.sun_family = AF_UNIX;
		peer->len = sizeof(sa_family_t);
	}
}

int
dx__conn_open(struct dx_conn *c, int64_t now)
{
	const struct dx_stream_ops *ops = c->conf->svc->stream;

	c->active_ms = c->now_ms = now;
	return ops->open ? dx__conn_handled(c, ops->open(c)) : DX_END_NONE;
}

/* Bytes in the output buffer not yet sent. */
static int
buffered(const struct dx_conn *c)
{
	return c->out_off < c->out_len;
}

/* Output not yet sent: buffered, or in a mirror's pipe. */
static int
pending(const struct dx_conn *c)
{
	return buffered(c) || c->piped > 0;
}

/*
 * How much input may be taken now: what the output buffer has room for
 * (a service's output is bounded by it, so is what it is given), or, for
 * a spliced mirror, what the pipe has room for once the buffer is empty.
 */
static size_t
input_room(const struct dx_conn *c)
{
	if (!(c->flags & DX_CONN_SPLICE))
		return dx_conn_space(c);
	return buffered(c) || (c->flags & DX_CONN_PIPE_FULL)
	               ? 0
	               : c->pipe_cap - c->piped;
}

/*
 * A mirror's stream turns to splice(2) once a read fills the whole output
 * buffer: a bulk transfer, where moving the pages socket -> pipe -> socket
 * beats copying every byte out and back in. Small exchanges (ping-pong)
 * stay with read and send, which cost less for a few bytes. No pipe to be
 * had (out of descriptors) simply leaves the connection copying.
 */
#define SPLICE_PIPE_SIZE (256 * 1024)

static void
start_splice(struct dx_conn *c)
{
	int size;

	if (pipe2(c->pipe, O_NONBLOCK | O_CLOEXEC) < 0) {
		c->pipe[0] = c->pipe[1] = -1;
		return;
	}
	(void)fcntl(c->pipe[1], F_SETPIPE_SZ, SPLICE_PIPE_SIZE);
	size = fcntl(c->pipe[1], F_GETPIPE_SZ);
	c->pipe_cap = size > 0 ? (uint32_t)size : 65536;
	c->flags |= DX_CONN_SPLICE;
}

/*
 * Output is waiting on the peer: bytes queued, or a service (chargen)
 * that produces as fast as the peer reads. The write timeout runs then.
 */
static int
waiting_to_write(const struct dx_conn *c)
{
	return pending(c) ||
	       ((c->flags & DX_CONN_WANT_WRITE) && !(c->flags & DX_CONN_DONE));
}

short
dx__conn_events(const struct dx_conn *c)
{
	short ev = 0;

	if (pending(c) ||
	    ((c->flags & DX_CONN_WANT_WRITE) && !(c->flags & DX_CONN_DONE)))
		ev |= POLLOUT;
	if ((c->flags & DX_CONN_SHUT_WR) ||
	    (!(c->flags & DX_CONN_EOF_IN) && input_room(c) > 0))
		ev |= POLLIN;
	return ev;
}

/*
 * The clock after a system call that may have waited: a blocking model's
 * socket waits in read and send themselves (dx__conn_run), so the time
 * taken before the call is stale once it returns. Event models never
 * wait in them and keep the one reading their loop took.
 */
static void
clock_after_io(struct dx_conn *c)
{
	if (c->flags & DX_CONN_BLOCKING)
		c->now_ms = dx_now_ms();
}

/* A millisecond limit as a socket timeout; 0 stays 0 (no timeout). */
static struct timeval
ms_timeval(int64_t ms)
{
	return (struct timeval){.tv_sec = (time_t)(ms / 1000),
	                        .tv_usec = (suseconds_t)(ms % 1000) * 1000};
}

/*
 * The watch of a process that serves one connection alone (the fork
 * model's child, DX_CONN_PROCESS). SO_RCVTIMEO and SO_SNDTIMEO would do,
 * but the kernel then arms and deletes a timer in every read that waits:
 * in the fork model's ping-pong profile (perf record -C 1) about 2% of the
 * CPU per request, the one difference in the read path from xinetd's
 * child. So the socket gets no timeouts; an interval timer ticks instead,
 * WATCH_TICKS times per shortest limit, and every read or send that may
 * wait bumps watch_changes on its way in and out (odd: waiting, in a wait
 * of kind watch_kind). A tick that finds the same odd count as the tick
 * before counts a tick of waiting; once the waiting ticks reach the kind's
 * limit (--idle for reads, --write-timeout for sends) the socket is shut
 * down, which ends the wait, and watch_fired says which limit it was. A
 * wait thus ends after at least its limit and less than one tick more.
 * Interrupted reads and sends restart (SA_RESTART, no socket timeouts).
 */
#define WATCH_TICKS 8

enum { WATCH_READ, WATCH_SEND };

/*
 * The watch's state lives in dx__conn_run()'s frame, on a stack page the
 * child writes anyway, and is found through a thread-local pointer in
 * the page of the thread's control block, which fork itself writes (the
 * child's thread id): statics would cost every child its own copy of one
 * more page (4 KiB per held connection, measured in /proc/PID/smaps).
 */
struct watch {
	volatile sig_atomic_t changes, kind, fired;
	sig_atomic_t limit[2]; /* ticks per limit; 0: none */
	sig_atomic_t seen, waited;
	int fd;
};

static __thread struct watch *watching;

static void
watch_tick(int sig)
{
	struct watch *w = watching;
	sig_atomic_t now, kind;
	int saved = errno;

	(void)sig;
	if (w == NULL)
		return;
	now = w->changes;
	kind = w->kind;
	if (!(now & 1) || now != w->seen) {
		w->seen = now;
		w->waited = 0;
	} else if (++w->waited >= w->limit[kind] && w->limit[kind] > 0 &&
	           !w->fired) {
		w->fired = 1 + kind;
		(void)shutdown(w->fd, SHUT_RDWR);
	}
	errno = saved;
}

/* Ticks in LIMIT_MS, rounded up; 0 for no limit. */
static sig_atomic_t
ticks_in(int64_t limit_ms, int64_t tick_ms)
{
	return limit_ms > 0 ? (sig_atomic_t)((limit_ms + tick_ms - 1) / tick_ms)
	                    : 0;
}

/* Starts watch W of FD under LIM; 0, or -1 when it cannot. */
static int
watch_start(struct watch *w, int fd, const struct dx_conn_limits *lim)
{
	struct sigaction sa = {.sa_handler = watch_tick,
	                       .sa_flags = SA_RESTART};
	int64_t shortest = lim->idle_ms, tick;
	struct itimerval it;

	if (shortest <= 0 ||
	    (lim->write_timeout_ms > 0 && lim->write_timeout_ms < shortest))
		shortest = lim->write_timeout_ms;
	if (shortest <= 0)
		return 0; /* nothing to watch */
	tick = shortest / WATCH_TICKS > 0 ? shortest / WATCH_TICKS : 1;
	*w = (struct watch){.seen = -1, .fd = fd};
	w->limit[WATCH_READ] = ticks_in(lim->idle_ms, tick);
	w->limit[WATCH_SEND] = ticks_in(lim->write_timeout_ms, tick);
	watching = w;
	it.it_interval = it.it_value = ms_timeval(tick);
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGALRM, &sa, NULL) < 0 ||
	    setitimer(ITIMER_REAL, &it, NULL) < 0) {
		watching = NULL;
		return -1;
	}
	return 0;
}

/* Stops the watch (its state goes with dx__conn_run's frame). */
static void
watch_stop(void)
{
	struct itimerval off = {{0, 0}, {0, 0}};

	if (watching == NULL)
		return;
	(void)setitimer(ITIMER_REAL, &off, NULL);
	watching = NULL;
}

/* The way into (KIND) and out of (-1) a read or send that may wait. */
static void
watch(const struct dx_conn *c, int kind)
{
	struct watch *w = watching;

	if (!(c->flags & DX_CONN_PROCESS) || w == NULL)
		return;
	if (kind >= 0)
		w->kind = kind;
	/* Kept below 2^30 (a busy connection makes billions of these): a
	 * sig_atomic_t must not overflow; the parity survives the mask. */
	w->changes = (w->changes + 1) & 0x3fffffff;
}

/* Why the watch ended the connection, or END when it did not. */
static int
watch_end(int end)
{
	struct watch *w = watching;
	int fired = w != NULL ? w->fired : 0;

	watch_stop();
	if (!fired)
		return end;
	return fired == 1 + WATCH_READ ? DX_END_IDLE : DX_END_WRITE_STALL;
}

/* Sends queued output; frees the buffer once it is empty. */
static int
flush(struct dx_conn *c)
{
	ssize_t n;

	while (buffered(c)) {
		watch(c, WATCH_SEND);
		n = dx_send(c->fd, c->out + c->out_off,
		            c->out_len - c->out_off);
		watch(c, -1);
		if (n == -EAGAIN)
			return DX_END_NONE;
		if (n < 0)
			return DX_END_PEER;
		c->out_off += (uint32_t)n;
		c->bytes_out += (uint64_t)n;
		clock_after_io(c);
		c->active_ms = c->wrote_ms = c->now_ms;
	}
	if (c->out != NULL) {
		dx__pool_put(c->pool, c->out);
		c->out = NULL;
		c->out_off = c->out_len = 0;
	}
	/* The pipe fills only once the buffer is empty: order is kept. */
	while (c->piped > 0) {
		n = dx__splice(c->pipe[0], c->fd, c->piped);
		if (n == -EAGAIN)
			return DX_END_NONE;
		if (n <= 0)
			return DX_END_PEER;
		c->piped -= (uint32_t)n;
		c->bytes_out += (uint64_t)n;
		clock_after_io(c);
		c->active_ms = c->wrote_ms = c->now_ms;
	}
	c->flags &= ~DX_CONN_PIPE_FULL;
	return DX_END_NONE;
}

/* Output side: send, let the service produce more, send again. */
static int
on_writable(struct dx_conn *c)
{
	const struct dx_stream_ops *ops = c->conf->svc->stream;
	int end = flush(c);

	if (end == DX_END_NONE && (c->flags & DX_CONN_WANT_WRITE) &&
	    !(c->flags & DX_CONN_DONE) && dx_conn_space(c) > 0) {
		end = dx__conn_handled(c, ops->writable(c));
		if (end == DX_END_NONE)
			end = flush(c);
	}
	return end;
}

/*
 * A spliced mirror's input: straight from the socket into the pipe, to
 * be sent as it is. Only its end of file reaches the service.
 */
static int
splice_in(struct dx_conn *c, uint8_t *scratch)
{
	const struct dx_stream_ops *ops = c->conf->svc->stream;
	ssize_t n = dx__splice(c->fd, c->pipe[1], input_room(c));

	clock_after_io(c);
	if (n == -EAGAIN) {
		/* A pipe holds so many buffers, not bytes: with some in it,
		 * it may be full short of its size. Take no more until it
		 * empties, rather than be woken for input again and again. */
		if (c->piped > 0)
			c->flags |= DX_CONN_PIPE_FULL;
		return DX_END_NONE;
	}
	if (n < 0)
		return DX_END_PEER;
	c->active_ms = c->now_ms;
	if (n == 0) {
		c->flags |= DX_CONN_EOF_IN;
		return dx__conn_handled(c, ops->input(c, scratch, 0));
	}
	if (c->piped == 0) /* output starts waiting on the peer */
		c->wrote_ms = c->now_ms;
	c->piped += (uint32_t)n;
	c->bytes_in += (uint64_t)n;
	return DX_END_NONE;
}

/* Input side: one read, handed to the service or, once draining, dropped. */
static int
on_readable(struct dx_conn *c, uint8_t *scratch, size_t len)
{
	const struct dx_stream_ops *ops = c->conf->svc->stream;
	size_t room = dx_conn_space(c);
	ssize_t n;

	uint8_t *into = scratch;
	int mirror = (c->conf->svc->flags & DX_SVC_MIRROR) &&
	             !(c->flags & DX_CONN_SHUT_WR);

	if (mirror && (c->flags & DX_CONN_SPLICE))
		return splice_in(c, scratch);
	if (!(c->flags & DX_CONN_SHUT_WR) && room < len)
		len = room;
	/* A mirror's input is its output: read it where it is sent from. */
	if (mirror && len > 0 && (into = dx_conn_reserve(c, &room)) == NULL)
		return DX_END_ERROR;
	n = dx_read(c->fd, into, len);
	clock_after_io(c);
	if (n == -EAGAIN)
		return DX_END_NONE;
	if (n > 0)
		c->bytes_in += (uint64_t)n;
	if (c->flags & DX_CONN_SHUT_WR)
		return n > 0 ? DX_END_NONE : DX_END_DONE;
	if (n < 0)
		return DX_END_PEER;
	c->active_ms = c->now_ms;
	if (n == 0) {
		c->flags |= DX_CONN_EOF_IN;
	} else if (mirror) {
		dx_conn_commit(c, (size_t)n);
		if ((size_t)n == DX_CONN_BUF)
			start_splice(c);
		return DX_END_NONE;
	}
	return dx__conn_handled(c, ops->input(c, scratch, (size_t)n));
}

/* Half-closes once the service is done and everything is sent. */
static int
maybe_shutdown(struct dx_conn *c)
{
	return dx__conn_maybe_shutdown(c, c->now_ms, pending(c));
}

int
dx__conn_end_output(struct dx_conn *c, int64_t now)
{
	c->now_ms = now;
	c->flags |= DX_CONN_DONE;
	c->flags &= ~DX_CONN_WANT_WRITE;
	return maybe_shutdown(c);
}

int
dx__conn_ready(struct dx_conn *c, short revents, uint8_t *scratch, size_t len,
               int64_t now)
{
	int end = DX_END_NONE;

	c->now_ms = now;
	/* An error on a stream socket (a reset, a timeout) ends it: nothing
	 * more can be sent, so input left unread is not read only to fail. */
	if (revents & POLLERR)
		return DX_END_PEER;
	if (revents & (POLLOUT | POLLHUP))
		end = on_writable(c);
	if (end == DX_END_NONE && (revents & (POLLIN | POLLERR | POLLHUP)) &&
	    (dx__conn_events(c) & POLLIN))
		end = on_readable(c, scratch, len);
	if (end == DX_END_NONE)
		end = on_writable(c);
	return end == DX_END_NONE ? maybe_shutdown(c) : end;
}

static int64_t
earliest(int64_t a, int64_t since, int64_t limit)
{
	return limit > 0 && since + limit < a ? since + limit : a;
}

int64_t
dx__conn_deadline(const struct dx_conn *c, const struct dx_conn_limits *lim)
{
	int64_t d = DX_FOREVER;

	d = earliest(d, c->started_ms, lim->lifetime_ms);
	d = earliest(d, c->active_ms, lim->idle_ms);
	if (waiting_to_write(c))
		d = earliest(d, c->wrote_ms, lim->write_timeout_ms);
	if (c->flags & DX_CONN_SHUT_WR)
		d = earliest(d, c->drain_ms, lim->linger_ms);
	return d;
}

int
dx__conn_expired(const struct dx_conn *c, const struct dx_conn_limits *lim,
                 int64_t now)
{
	if ((c->flags & DX_CONN_SHUT_WR) && lim->linger_ms > 0 &&
	    now >= c->drain_ms + lim->linger_ms)
		return DX_END_LINGER;
	if (lim->lifetime_ms > 0 && now >= c->started_ms + lim->lifetime_ms)
		return DX_END_LIFETIME;
	if (waiting_to_write(c) && lim->write_timeout_ms > 0 &&
	    now >= c->wrote_ms + lim->write_timeout_ms)
		return DX_END_WRITE_STALL;
	if (lim->idle_ms > 0 && now >= c->active_ms + lim->idle_ms)
		return DX_END_IDLE;
	return DX_END_NONE;
}

void
dx__conn_finish(struct dx_conn *c)
{
	if (c->fd >= 0)
		dx_close(c->fd);
	c->fd = -1;
	if (c->out != NULL)
		dx__pool_put(c->pool, c->out);
	c->out = NULL;
	for (int i = 0; i < 2; i++)
		if (c->pipe[i] >= 0)
			close(c->pipe[i]);
	c->pipe[0] = c->pipe[1] = -1;
	c->flags &= ~(DX_CONN_SPLICE | DX_CONN_PIPE_FULL);
	c->piped = 0;
}

/*
 * Blocking models: when no lifetime must be watched, the socket is made
 * blocking with the idle and write limits as its receive and send
 * timeouts, so a request costs read and send, not poll, read and send.
 * A process serving one connection alone keeps those limits with a timer
 * of its own instead (watch_start). Returns 1 when that is set up; 0
 * leaves the socket non-blocking.
 */
static int
block_in_io(struct dx_conn *c, const struct dx_conn_limits *lim,
            struct watch *w)
{
	struct timeval rcv = ms_timeval(lim->idle_ms);
	struct timeval snd = ms_timeval(lim->write_timeout_ms);
	int fd = c->fd;

	if (lim->lifetime_ms > 0 ||
	    ((c->flags & DX_CONN_PROCESS) && watch_start(w, fd, lim) < 0))
		c->flags &= ~DX_CONN_PROCESS;
	if (lim->lifetime_ms > 0)
		return 0;
	if (c->flags & DX_CONN_PROCESS)
		rcv = snd = ms_timeval(0);
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &rcv, sizeof(rcv)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &snd, sizeof(snd)) < 0)
		return 0;
	return dx__set_nonblock(fd, 0) == 0;
}

/*
 * A mirror (echo) in a blocking model: read, send it all back, read
 * again, and nothing else. The socket's own timeouts keep the idle and
 * write limits (block_in_io), so no clock is read per request and no
 * state but the socket and the buffer is touched: a process or thread per
 * connection runs this right after a context switch, where every page
 * touched costs a TLB miss and every cache line a miss. Hands the
 * connection back to the general loop (DX_END_NONE, clock read afresh)
 * at end of file, at a read that fills the buffer (a bulk stream, which
 * goes to splice) and at a short send; ends it at a timeout or an error.
 */
static int
mirror_blocking(struct dx_conn *c, uint8_t *scratch)
{
	size_t room;
	uint8_t *buf = dx_conn_reserve(c, &room);
	ssize_t n, sent;
	int end = DX_END_NONE;

	if (buf == NULL)
		return DX_END_ERROR;
	/* ROOM is the whole buffer here (nothing is queued when the loop
	 * calls this); a read that fills it ends the tight loop. */
	for (;;) {
		watch(c, WATCH_READ);
		n = dx_read(c->fd, buf, room);
		watch(c, -1);
		if (n <= 0)
			break;
		c->bytes_in += (uint64_t)n;
		if ((size_t)n == room)
			break;
		watch(c, WATCH_SEND);
		sent = dx_send(c->fd, buf, (size_t)n);
		watch(c, -1);
		if (sent > 0)
			c->bytes_out += (uint64_t)sent;
		if (sent != n) {
			if (sent == -EAGAIN) /* SO_SNDTIMEO ran out */
				return DX_END_WRITE_STALL;
			if (sent < 0)
				return DX_END_PEER;
			memmove(buf, buf + sent, (size_t)(n - sent));
			n -= sent;
			break;
		}
	}
	if (n == -EAGAIN) /* SO_RCVTIMEO ran out */
		return DX_END_IDLE;
	if (n < 0)
		return DX_END_PEER;
	c->now_ms = c->active_ms = dx_now_ms();
	if (n > 0) {
		dx_conn_commit(c, (size_t)n);
		if (n == DX_CONN_BUF)
			start_splice(c);
	} else {
		c->flags |= DX_CONN_EOF_IN;
		end = dx__conn_handled(
		        c, c->conf->svc->stream->input(c, scratch, 0));
	}
	if (end == DX_END_NONE)
		end = on_writable(c);
	return end == DX_END_NONE ? maybe_shutdown(c) : end;
}

int
dx__conn_run(struct dx_conn *c, const struct dx_conn_limits *lim,
             uint8_t *scratch, size_t len)
{
	int end = dx__conn_open(c, dx_now_ms()), rc;
	struct watch w;
	short ev;

	if (block_in_io(c, lim, &w))
		c->flags |= DX_CONN_BLOCKING;
	if (end == DX_END_NONE)
		end = maybe_shutdown(c);
	while (end == DX_END_NONE) {
		/* A spliced stream waits in poll(2), under the connection's
		 * deadlines: a blocking splice(2) into the socket waits the
		 * send timeout once per partial send, so a peer that never
		 * reads would be held several write timeouts long. */
		if ((c->flags & DX_CONN_BLOCKING) &&
		    (c->flags & DX_CONN_SPLICE) &&
		    dx__set_nonblock(c->fd, 1) == 0)
			c->flags &= ~DX_CONN_BLOCKING;
		ev = dx__conn_events(c);
		/* Only waiting for input: let read(2) itself wait, up to the
		 * idle limit. A drain after our FIN keeps its own deadline.
		 * The clock is read once the read returns (clock_after_io). */
		if ((c->flags & DX_CONN_BLOCKING) && ev == POLLIN &&
		    !(c->flags & DX_CONN_SHUT_WR)) {
			if ((c->conf->svc->flags & DX_SVC_MIRROR) &&
			    !(c->flags & DX_CONN_SPLICE)) {
				end = mirror_blocking(c, scratch);
				continue;
			}
			watch(c, WATCH_READ);
			end = dx__conn_ready(c, POLLIN, scratch, len,
			                     c->now_ms);
			watch(c, -1);
			if (end == DX_END_NONE)
				end = dx__conn_expired(c, lim, c->now_ms);
			continue;
		}
		rc = dx_wait(c->fd, ev, dx__conn_deadline(c, lim));
		if (rc == -ETIMEDOUT)
			end = dx__conn_expired(c, lim, dx_now_ms());
		else if (rc < 0)
			end = DX_END_ERROR;
		else
			end = dx__conn_ready(c, (short)rc, scratch, len,
			                     dx_now_ms());
	}
	dx__conn_finish(c);
	return (c->flags & DX_CONN_PROCESS) ? watch_end(end) : end;
}

int
dx__linger_close(int fd, int64_t linger_ms)
{
	uint8_t sink[4096];
	int64_t deadline = dx_deadline_in(linger_ms > 0 ? linger_ms : 0);
	ssize_t n = 1;

	if (shutdown(fd, SHUT_WR) == 0) {
		dx_trace("shutdown(%d, SHUT_WR) = 0", fd);
		while (n > 0 || n == -EAGAIN) {
			n = dx_read_some(fd, sink, sizeof(sink), deadline);
			if (n == -ETIMEDOUT)
				break;
		}
	}
	dx_close(fd);
	return n == 0 ? DX_END_DONE
	              : (n == -ETIMEDOUT ? DX_END_LINGER : DX_END_PEER);
}
