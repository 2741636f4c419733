/* SPDX-License-Identifier: MIT */
/*
 * model_uring.c - the completion-driven concurrent server: one thread, one
 * io_uring, every connection the same state machine as under epoll
 * (conn.c, stepped through conn_feed.c). The ring lives inside the
 * server's main loop: its eventfd sits in the server's epoll set (edge
 * triggered, so it is never read) and wakes the loop; everything a turn
 * of the loop prepares is submitted in tick(), just before the loop
 * waits, by the same call that collects what completed (deferred task
 * work, kernel 6.1: completions are run in that call, not by interrupting
 * us), and what it collected is handled there too, a few rounds at most.
 * A busy server thus makes a system call or two per batch of requests.
 *
 * Input comes from one ring of provided buffers (kernel 5.19). A
 * connection that has caught up (no output queued, nothing left in its
 * socket) has a multishot receive armed (kernel 6.0), so a request costs
 * no submission at all; one under backpressure has single receives of at
 * most its output room, so a peer that sends without reading finds the
 * socket's window closing as it would under epoll, instead of having its
 * backlog moved into our buffers. A multishot receive is cancelled as
 * soon as the room falls below a buffer; the few bytes that arrive before
 * the cancel lands are held, in order, in their ring buffers. When the
 * ring runs low, connections wait by poll and read(2) into one scratch
 * buffer, as under epoll, so no connection starves for buffers. Output:
 * conn.c's pooled buffer, one send in flight at a time, the service
 * free to queue behind it. An idle connection costs its slot in a table
 * indexed by descriptor and one armed receive in the kernel, no buffer.
 *
 * Bulk: a mirror (echo) whose output buffer fills from its input leaves
 * the ring's receives for the rest of its life and is driven by polls and
 * conn.c's dx__conn_ready(), which splices its stream socket -> pipe ->
 * socket as under the other models (see "Bulk" below).
 *
 * Completions name their connection by descriptor and a generation, so a
 * completion for an earlier connection on a reused descriptor is only
 * tidied up. Closing cancels what is in flight; the output buffer of a
 * send still in flight is kept until its completion says the kernel is
 * done with it.
 *
 * Accepting: while no limit can defer a connection, a multishot accept
 * per listener in the ring, each connection then admitted by the shared
 * code (concurrent.c); near --max-conns, with --rate, or out of
 * descriptors, the shared accept(2) path (see "Accepting" below).
 *
 * Timeouts: a sweep ten times a second, as the epoll model. exec: the
 * program gets the socket and is watched through a pidfd in the server's
 * epoll set; nothing is armed on the socket until it exits.
 *
 * Fallback: when io_uring cannot be had (built without liburing, or
 * io_uring_setup fails with ENOSYS, with EPERM under
 * kernel.io_uring_disabled, ...; or provided-buffer rings are missing),
 * start() logs one warning, switches srv->model to the epoll model and
 * starts that instead: the server runs, on epoll. DUPLEX_NO_URING=1 in
 * the environment forces this, as if io_uring_setup had failed with
 * ENOSYS (for tests).
 */
#include "server/server.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

extern const struct dx_model dx__model_epoll;

/* Logs the one notice and hands the server to the epoll model. */
static int
fall_back(struct dx_server *srv, int err)
{
	dx__log(srv, DX_LOG_WARN,
	        "io_uring unavailable (%s); using the epoll model",
	        dx_strerror(err));
	srv->model = &dx__model_epoll;
	return srv->model->start(srv);
}

#ifdef HAVE_LIBURING

#include "child.h"
#include "server/conn_feed.h"

#include <liburing.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#define SWEEP_MS     100
#define SQ_ENTRIES   1024
#define CQ_ENTRIES   8192
#define CQE_BATCH    64
#define FLUSH_ROUNDS 4 /* submit-and-reap rounds per turn */
/* Provided buffers, a power of two; a build may shrink the ring to test
 * what happens when it runs dry (-DDX_URING_BUFS=16). */
#ifdef DX_URING_BUFS
#define BUF_COUNT DX_URING_BUFS
#else
#define BUF_COUNT 256
#endif
#define BUF_SIZE  4096
#define BUF_GROUP 0
#define BUF_LOW   (BUF_COUNT / 8) /* fewer free: poll and read instead */
#define NO_BUF    0xffffu
_Static_assert(BUF_COUNT < NO_BUF && BUF_SIZE <= UINT16_MAX,
               "held input lists index and measure buffers in 16 bits");
_Static_assert(DX_MAX_LISTENERS <= 64, "acc_armed has a bit per listener");
/* Buffers the kernel may pick from at a time (see publish()). */
#define BUF_PUBLISH (BUF_COUNT < 64 ? BUF_COUNT : 64)

/* After the ring's accept ran out of descriptors: the shared path's for
 * this long (it sheds clients through its reserved descriptor). */
#define RETAKE_MS 1000
/* Beyond the listen backlog, what a multishot accept may take in one go
 * before the turn that could stop it (connections whose handshake ends
 * while the kernel empties the queue). */
#define ACCEPT_SLACK 64

/* Epoll tags: the ring's eventfd, and PIDFD_TAG + fd for exec's pidfds. */
#define EVENTFD_TAG DX_MODEL_TAG
#define PIDFD_TAG   (DX_MODEL_TAG << 1)

/* user_data: the operation (4 bits), generation (28) and descriptor;
 * OP_ACCEPT: the listener's index, generation 1 for its cancel. */
enum op { OP_RECV = 1, OP_POLL, OP_SEND, OP_CANCEL, OP_ACCEPT };
#define GEN_MASK 0x0fffffffu

/* How a connection takes input; one input operation at most is armed. */
#define S_ARMED   0x01u /* an input operation is in the kernel */
#define S_MULTI   0x02u /* it is a multishot receive */
#define S_POLL    0x04u /* it is a poll: the buffer ring ran low */
#define S_CANCEL  0x08u /* its cancellation has been asked for */
#define S_BACKLOG 0x10u /* the last receive left bytes in the socket */
#define S_DRY     0x20u /* the ring had no buffer for the last receive */
/* A mirror's bulk stream (see "Bulk" below): */
#define S_TOBULK 0x40u /* its buffer filled: moving to conn.c once quiet */
#define S_BULK   0x80u /* driven by polls and dx__conn_ready(): splices */

struct slot {
	struct dx_conn c; /* its peer gives the source key (admission's) */
	uint32_t gen;
	uint32_t sending; /* bytes of the send in flight; 0: none */
	int32_t rx_end;   /* after the held input: 1 EOF, -errno, 0 none */
	int pidfd;        /* exec: the program's pidfd, else -1 */
	pid_t pid;
	uint16_t head, tail; /* held input buffers; NO_BUF: none */
	uint16_t head_off;   /* bytes of the first already handed over */
	uint8_t used, flags; /* S_* */
};

/* Output buffers of sends still in flight for connections that ended. */
struct orphan {
	uint64_t ud;
	uint8_t *buf;
};

struct uring_state {
	struct io_uring ring;
	int ring_ok, efd, multishot;
	void *map; /* the buffer ring, then the buffers */
	size_t map_len;
	struct io_uring_buf_ring *br;
	uint8_t *bufs;
	uint16_t stack[BUF_COUNT];  /* free, not published: last freed on top */
	unsigned nstack, published; /* published: the kernel may pick them */
	uint16_t next[BUF_COUNT], len[BUF_COUNT]; /* held input lists */
	struct slot *slot;                        /* indexed by descriptor */
	size_t cap, active;
	uint32_t gen;
	int64_t next_sweep;
	struct dx_bufpool pool;
	struct orphan *orphans;
	size_t norphans, orphans_cap;
	int accepting;      /* the listeners are ours: multishot accepts */
	int no_accept;      /* the kernel refused them: never again */
	uint64_t acc_armed; /* listeners with a multishot accept in flight */
	int64_t retake_ms;  /* not before then (descriptors ran out) */
	uint8_t scratch[DX_CONN_BUF]; /* reads after a poll */
};

static uint64_t
ud_of(enum op op, const struct slot *s)
{
	return (uint64_t)op << 60 | (uint64_t)s->gen << 32 | (uint32_t)s->c.fd;
}

/* The operation armed for S's input. */
static uint64_t
input_ud(const struct slot *s)
{
	return ud_of((s->flags & S_POLL) ? OP_POLL : OP_RECV, s);
}

/* ---------------------------------------------------------------------
 * The ring, its buffers and its eventfd
 * --------------------------------------------------------------------- */

/* Sets up the ring, with the newer flags when the kernel has them. */
static int
ring_open(struct uring_state *st)
{
	const unsigned tries[] = {
	        IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL |
	                IORING_SETUP_SINGLE_ISSUER |
	                IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
	        IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL |
	                IORING_SETUP_SINGLE_ISSUER,
	        IORING_SETUP_CQSIZE,
	};
	struct io_uring_params p;
	int err = -EINVAL;

	for (size_t i = 0; i < DX_ARRAY_LEN(tries) && err == -EINVAL; i++) {
		memset(&p, 0, sizeof(p));
		p.flags = tries[i];
		p.cq_entries = CQ_ENTRIES;
		err = io_uring_queue_init_params(SQ_ENTRIES, &st->ring, &p);
	}
	st->ring_ok = err == 0;
	return err;
}

static uint8_t *
buf_addr(const struct uring_state *st, unsigned b)
{
	return st->bufs + (size_t)b * BUF_SIZE;
}

/* Buffer B is free again; publish() hands it to the kernel. */
static void
recycle(struct uring_state *st, unsigned b)
{
	st->stack[st->nstack++] = (uint16_t)b;
}

/*
 * Tops up the buffers the kernel may pick from to BUF_PUBLISH, the most
 * recently freed first, before every submit (with deferred task work the
 * kernel fills buffers only inside our calls). The kernel takes buffers
 * in the order they were published; publishing all of them would cycle
 * every receive through the whole 1 MiB, cold in the cache and every page
 * of it touched (about 100 bytes per connection in the 10,000-connection
 * idle benchmark); this way a few dozen hot buffers do the work. A burst
 * of more receives than are published gets ENOBUFS and reads once by
 * poll and read(2) (S_DRY), as when the ring runs low.
 */
static void
publish(struct uring_state *st)
{
	int n = 0;

	while (st->published < BUF_PUBLISH && st->nstack > 0) {
		unsigned b = st->stack[--st->nstack];

		io_uring_buf_ring_add(st->br, buf_addr(st, b), BUF_SIZE,
		                      (unsigned short)b,
		                      io_uring_buf_ring_mask(BUF_COUNT), n++);
		st->published++;
	}
	if (n > 0)
		io_uring_buf_ring_advance(st->br, n);
}

/* 1 when so few buffers are left that new input waits by poll instead. */
static int
ring_low(const struct uring_state *st)
{
	return st->published + st->nstack < BUF_LOW;
}

/* Maps the provided-buffer ring and its buffers and registers them. */
static int
bufs_open(struct uring_state *st)
{
	size_t ring_len = BUF_COUNT * sizeof(struct io_uring_buf);
	struct io_uring_buf_reg reg;
	int err;

	st->map_len = ring_len + (size_t)BUF_COUNT * BUF_SIZE;
	st->map = mmap(NULL, st->map_len, PROT_READ | PROT_WRITE,
	               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (st->map == MAP_FAILED) {
		st->map = NULL;
		return dx__neg_errno();
	}
	st->br = st->map;
	st->bufs = (uint8_t *)st->map + ring_len;
	memset(&reg, 0, sizeof(reg));
	reg.ring_addr = (uintptr_t)st->br;
	reg.ring_entries = BUF_COUNT;
	reg.bgid = BUF_GROUP;
	err = io_uring_register_buf_ring(&st->ring, &reg, 0);
	if (err < 0)
		return err;
	io_uring_buf_ring_init(st->br);
	for (unsigned b = BUF_COUNT; b-- > 0;)
		recycle(st, b); /* buffer 0 on top */
	publish(st);
	return 0;
}

/* Puts the ring's eventfd into the server's epoll set, edge-triggered. */
static int
events_open(struct dx_server *srv, struct uring_state *st)
{
	struct epoll_event ev = {.events = EPOLLIN | EPOLLET,
	                         .data.u64 = EVENTFD_TAG};
	int err;

	st->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (st->efd < 0)
		return dx__neg_errno();
	err = io_uring_register_eventfd(&st->ring, st->efd);
	if (err == 0 && epoll_ctl(srv->epfd, EPOLL_CTL_ADD, st->efd, &ev) < 0)
		err = dx__neg_errno();
	return err;
}

static void
uring_free(struct dx_server *srv)
{
	struct uring_state *st = srv->model_state;

	if (st == NULL)
		return;
	/* The ring goes first: closing it cancels what is still in flight
	 * (only the sends of connections already closed, at exit). */
	if (st->ring_ok)
		io_uring_queue_exit(&st->ring);
	if (st->efd >= 0)
		close(st->efd);
	if (st->map != NULL)
		munmap(st->map, st->map_len);
	for (size_t i = 0; i < st->norphans; i++)
		dx__pool_put(&st->pool, st->orphans[i].buf);
	free(st->orphans);
	dx__pool_drain(&st->pool);
	free(st->slot);
	free(st);
	srv->model_state = NULL;
}

/* One slot per possible descriptor, as the epoll model has. */
static int
slots_open(struct uring_state *st)
{
	struct rlimit rl;

	st->cap = getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
	                          rl.rlim_cur != RLIM_INFINITY
	                  ? (size_t)rl.rlim_cur
	                  : 65536;
	st->slot = calloc(st->cap, sizeof(*st->slot));
	st->pool.max_free = 256;
	st->multishot = 1;
	return st->slot ? 0 : -ENOMEM;
}

static int
no_uring(void)
{
	const char *v = getenv("DUPLEX_NO_URING");

	return v != NULL && strcmp(v, "1") == 0;
}

static int
uring_start(struct dx_server *srv)
{
	struct uring_state *st;
	int err;

	if (no_uring())
		return fall_back(srv, -ENOSYS);
	st = calloc(1, sizeof(*st));
	if (st == NULL)
		return -ENOMEM;
	st->efd = -1;
	srv->model_state = st;
	err = slots_open(st);
	if (err < 0)
		return err;
	err = ring_open(st);
	if (err == 0)
		err = bufs_open(st);
	if (err == 0)
		err = events_open(srv, st);
	if (err < 0) {
		uring_free(srv);
		return fall_back(srv, err);
	}
	dx__log(srv, DX_LOG_DEBUG,
	        "io_uring: flags %#x, %d buffers of %d bytes", st->ring.flags,
	        BUF_COUNT, BUF_SIZE);
	return 0;
}

/* A submission entry; a full queue is submitted to make room. */
static struct io_uring_sqe *
get_sqe(struct uring_state *st)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&st->ring);

	if (sqe == NULL) {
		publish(st);
		io_uring_submit(&st->ring);
		sqe = io_uring_get_sqe(&st->ring);
	}
	return sqe;
}

/* Asks the kernel to cancel operation UD on behalf of S. */
static int
cancel(struct uring_state *st, const struct slot *s, uint64_t ud)
{
	struct io_uring_sqe *sqe = get_sqe(st);

	if (sqe == NULL)
		return -EBUSY;
	io_uring_prep_cancel64(sqe, ud, 0);
	io_uring_sqe_set_data64(sqe, ud_of(OP_CANCEL, s));
	return 0;
}

/* ---------------------------------------------------------------------
 * A connection's input: held buffers, receives, polls
 * --------------------------------------------------------------------- */

/* Appends LEN bytes in buffer B to S's held input. */
static void
hold(struct uring_state *st, struct slot *s, unsigned b, uint32_t len)
{
	st->len[b] = (uint16_t)len;
	st->next[b] = NO_BUF;
	if (s->tail == NO_BUF)
		s->head = (uint16_t)b;
	else
		st->next[s->tail] = (uint16_t)b;
	s->tail = (uint16_t)b;
}

/* Drops the first held buffer after N more of its bytes were taken. */
static void
consume_held(struct uring_state *st, struct slot *s, size_t n)
{
	unsigned b = s->head;

	s->head_off = (uint16_t)(s->head_off + n);
	if (s->head_off < st->len[b])
		return;
	s->head = st->next[b];
	s->head_off = 0;
	if (s->head == NO_BUF)
		s->tail = NO_BUF;
	recycle(st, b);
}

/*
 * Hands held input to the service as far as its output room allows (all
 * of it once draining), then the end of file or error that followed it.
 */
static int
feed_held(struct uring_state *st, struct slot *s, int64_t now)
{
	struct dx_conn *c = &s->c;
	int end = DX_END_NONE;
	ssize_t last;

	while (end == DX_END_NONE && s->head != NO_BUF) {
		size_t n = st->len[s->head] - s->head_off;
		size_t room =
		        (c->flags & DX_CONN_SHUT_WR) ? n : dx_conn_space(c);

		if (room == 0)
			return DX_END_NONE;
		n = n < room ? n : room;
		end = dx__conn_input(c, buf_addr(st, s->head) + s->head_off,
		                     (ssize_t)n, now);
		consume_held(st, s, n);
	}
	if (end != DX_END_NONE || s->head != NO_BUF || s->rx_end == 0)
		return end;
	last = s->rx_end > 0 ? 0 : s->rx_end;
	s->rx_end = 0;
	return dx__conn_input(c, NULL, last, now);
}

/*
 * 1 while S should have input armed: conn.c's rule (draining after our
 * half-close, or before the peer's end of file with output room), and
 * nothing held back from an earlier receive.
 */
static int
wants_input(const struct slot *s)
{
	const struct dx_conn *c = &s->c;

	if (s->pidfd >= 0 || (s->flags & S_TOBULK))
		return 0;
	if (c->flags & DX_CONN_SHUT_WR)
		return 1;
	return !(c->flags & DX_CONN_EOF_IN) && s->rx_end == 0 &&
	       s->head == NO_BUF && dx_conn_space(c) > 0;
}

/*
 * Arms S's input. A multishot receive only for a connection that has
 * caught up (no output queued, nothing left in the socket) or is
 * draining: it takes whatever arrives, as fast as it arrives, so under
 * backpressure it would move the peer's backlog into our buffers. Else
 * one receive of at most the output room, or, with the ring low, a poll
 * and a read(2) as the epoll model does.
 */
static int
arm_input(struct uring_state *st, struct slot *s)
{
	const struct dx_conn *c = &s->c;
	struct io_uring_sqe *sqe = get_sqe(st);
	int drain = (c->flags & DX_CONN_SHUT_WR) != 0;
	size_t len = drain ? BUF_SIZE : dx_conn_space(c);

	if (sqe == NULL)
		return DX_END_ERROR;
	s->flags &= ~(S_MULTI | S_POLL);
	if ((s->flags & S_DRY) || ring_low(st)) {
		io_uring_prep_poll_add(sqe, c->fd, POLLIN);
		s->flags = (uint8_t)((s->flags & ~S_DRY) | S_POLL);
	} else if (st->multishot && !(s->flags & S_BACKLOG) &&
	           (drain || !dx__conn_pending(c))) {
		io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
		s->flags |= S_MULTI;
	} else {
		io_uring_prep_recv(sqe, c->fd, NULL,
		                   len < BUF_SIZE ? len : BUF_SIZE, 0);
	}
	if (!(s->flags & S_POLL)) {
		sqe->flags |= IOSQE_BUFFER_SELECT;
		sqe->buf_group = BUF_GROUP;
	}
	s->flags |= S_ARMED;
	io_uring_sqe_set_data64(sqe, input_ud(s));
	return DX_END_NONE;
}

/*
 * Arms input when S wants it; cancels a multishot receive once S must not
 * read, or is short of room for a whole buffer (so that a peer that sends
 * without reading costs at most what arrives before the cancel lands);
 * cancels any input operation of a connection moving to the bulk path,
 * which must not wait on a receive that may never complete.
 */
static int
update_input(struct uring_state *st, struct slot *s)
{
	int want = wants_input(s);
	int tight = !(s->c.flags & DX_CONN_SHUT_WR) &&
	            dx_conn_space(&s->c) < BUF_SIZE;
	int stop = (s->flags & S_TOBULK) ||
	           ((s->flags & S_MULTI) && (!want || tight));

	if (!(s->flags & S_ARMED))
		return want ? arm_input(st, s) : DX_END_NONE;
	if (stop && !(s->flags & S_CANCEL)) {
		if (cancel(st, s, input_ud(s)) < 0)
			return DX_END_ERROR;
		s->flags |= S_CANCEL;
	}
	return DX_END_NONE;
}

/* A receive completed with RES and FLAGS. */
static void
received(struct uring_state *st, struct slot *s, int res, unsigned flags)
{
	unsigned b = flags >> IORING_CQE_BUFFER_SHIFT;
	int multi = (s->flags & S_MULTI) != 0;

	if (!multi)
		s->flags = (uint8_t)((s->flags & ~S_BACKLOG) |
		                     ((flags & IORING_CQE_F_SOCK_NONEMPTY)
		                              ? S_BACKLOG
		                              : 0));
	if (!(flags & IORING_CQE_F_MORE))
		s->flags &= ~(S_ARMED | S_MULTI | S_CANCEL);
	if ((flags & IORING_CQE_F_BUFFER) && res > 0) {
		hold(st, s, b, (uint32_t)res);
		return;
	}
	if (flags & IORING_CQE_F_BUFFER)
		recycle(st, b);
	if (res == -ENOBUFS)
		s->flags |= S_DRY;
	else if (res == -EINVAL && multi)
		st->multishot = 0; /* before 6.0: single receives only */
	else if (res != -ECANCELED && s->rx_end == 0)
		s->rx_end = res == 0 ? 1 : res;
}

/* A poll completed with RES: reads as conn.c's on_readable() does. */
static int
polled(struct uring_state *st, struct slot *s, int res, int64_t now)
{
	struct dx_conn *c = &s->c;
	size_t room = (c->flags & DX_CONN_SHUT_WR) ? sizeof(st->scratch)
	                                           : dx_conn_space(c);
	ssize_t n;

	s->flags &= ~(S_ARMED | S_POLL | S_CANCEL);
	if (res == -ECANCELED || room == 0)
		return DX_END_NONE;
	n = res < 0 ? res : dx_read(c->fd, st->scratch, room);
	if (n == -EAGAIN)
		return DX_END_NONE;
	s->flags = (uint8_t)((s->flags & ~S_BACKLOG) |
	                     ((size_t)n == room ? S_BACKLOG : 0));
	return dx__conn_input(c, st->scratch, n, now);
}

/* ---------------------------------------------------------------------
 * A connection: sending, moving on, closing
 * --------------------------------------------------------------------- */

/* Sends S's queued output; the service may queue more behind it. */
static int
start_send(struct uring_state *st, struct slot *s)
{
	struct io_uring_sqe *sqe = get_sqe(st);

	if (sqe == NULL)
		return DX_END_ERROR;
	dx__conn_compact(&s->c); /* out_off stays 0 while it is in flight */
	s->sending = s->c.out_len;
	io_uring_prep_send(sqe, s->c.fd, s->c.out, s->sending, MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, ud_of(OP_SEND, s));
	return DX_END_NONE;
}

/* ---------------------------------------------------------------------
 * Bulk: a mirror's stream handed to conn.c, which splices it
 *
 * The ring's path copies every byte twice (kernel -> ring buffer ->
 * output buffer, then the send copies it back in). For echo's bulk
 * stream the shared layer does better: conn.c moves it socket -> pipe ->
 * socket with splice(2) once one read fills the whole output buffer.
 * So a mirror whose output buffer fills from its input (a stream, not an
 * exchange of small messages, which stays on the multishot receive)
 * stops taking input from the ring, lets what the ring already holds and
 * what is in flight finish, in order, and from then on is driven as the
 * epoll model drives a connection: a one-shot poll for the events
 * dx__conn_events() names, and dx__conn_ready() when it fires, which
 * sends, reads, splices, half-closes and drains under conn.c's rules
 * (a full pipe stops reading, so TCP holds back a peer that stops
 * reading). The switch is for the rest of the connection.
 * IORING_OP_SPLICE is not used: the kernel runs every splice request in
 * an io-wq worker thread (it cannot be issued without blocking), which
 * costs a thread switch per request and a blocked worker per idle
 * socket; docs/uring.md has the measurements.
 * --------------------------------------------------------------------- */

/* 1 when S, a mirror still taking input, has filled its output buffer. */
static int
bulk_due(const struct slot *s)
{
	const struct dx_conn *c = &s->c;

	return (c->conf->svc->flags & DX_SVC_MIRROR) &&
	       !(c->flags & (DX_CONN_EOF_IN | DX_CONN_SHUT_WR)) &&
	       dx_conn_space(c) == 0;
}

/* 1 once nothing of S's is in flight in the ring or held in its buffers. */
static int
quiet(const struct slot *s)
{
	return !(s->flags & S_ARMED) && s->sending == 0 && s->head == NO_BUF &&
	       s->rx_end == 0;
}

/* Arms the poll for what the bulk connection in S waits for, if none is. */
static int
arm_bulk(struct uring_state *st, struct slot *s)
{
	short ev = dx__conn_events(&s->c);
	struct io_uring_sqe *sqe;

	if ((s->flags & S_ARMED) || ev == 0)
		return DX_END_NONE;
	sqe = get_sqe(st);
	if (sqe == NULL)
		return DX_END_ERROR;
	io_uring_prep_poll_add(sqe, s->c.fd, (unsigned)ev);
	s->flags |= S_ARMED | S_POLL;
	io_uring_sqe_set_data64(sqe, ud_of(OP_POLL, s));
	return DX_END_NONE;
}

/* The bulk connection in S polled RES: conn.c does the rest. */
static int
bulk_ready(struct uring_state *st, struct slot *s, int res, int64_t now)
{
	s->flags &= ~(S_ARMED | S_POLL | S_CANCEL);
	if (res == -ECANCELED)
		return DX_END_NONE;
	return dx__conn_ready(&s->c, res < 0 ? POLLERR : (short)res,
	                      st->scratch, sizeof(st->scratch), now);
}

/*
 * Moves the connection in S on after anything happened to it: hands held
 * input over, lets the service write, half-closes once it is done and
 * everything is sent, sends, and arms or cancels input; or, on the bulk
 * path, re-arms its poll.
 */
static int
progress(struct uring_state *st, struct slot *s, int64_t now)
{
	int end;

	if (s->flags & S_BULK)
		return arm_bulk(st, s);
	end = feed_held(st, s, now);
	if (end == DX_END_NONE)
		end = dx__conn_produce(&s->c);
	if (end == DX_END_NONE)
		end = dx__conn_maybe_shutdown(&s->c, now,
		                              dx__conn_pending(&s->c));
	if (end == DX_END_NONE && s->sending == 0 && dx__conn_pending(&s->c))
		end = start_send(st, s);
	if (end == DX_END_NONE && bulk_due(s))
		s->flags |= S_TOBULK;
	if (end == DX_END_NONE && (s->flags & S_TOBULK) && quiet(s)) {
		s->flags = (uint8_t)((s->flags & ~S_TOBULK) | S_BULK);
		return arm_bulk(st, s);
	}
	if (end == DX_END_NONE)
		end = update_input(st, s);
	return end;
}

/* Remembers BUF until the send UD completes; leaks it if it cannot. */
static void
orphan(struct uring_state *st, uint64_t ud, uint8_t *buf)
{
	if (st->norphans == st->orphans_cap) {
		size_t cap = st->orphans_cap ? 2 * st->orphans_cap : 16;
		struct orphan *v = realloc(st->orphans, cap * sizeof(*v));

		if (v == NULL)
			return;
		st->orphans = v;
		st->orphans_cap = cap;
	}
	st->orphans[st->norphans++] = (struct orphan){.ud = ud, .buf = buf};
}

/* Cancels what S has in flight and gives back its held buffers. */
static void
abandon_io(struct uring_state *st, struct slot *s)
{
	if (s->flags & S_ARMED)
		cancel(st, s, input_ud(s));
	if (s->sending) {
		cancel(st, s, ud_of(OP_SEND, s));
		/* The kernel may still read the buffer until it completes. */
		orphan(st, ud_of(OP_SEND, s), s->c.out);
		s->c.out = NULL;
	}
	while (s->head != NO_BUF)
		consume_held(st, s, st->len[s->head] - s->head_off);
}

/* Ends the connection in S: closes it, ends its program, accounts. */
static void
close_slot(struct dx_server *srv, struct slot *s, int end)
{
	struct uring_state *st = srv->model_state;
	uint8_t key[16];

	dx__stream_log_end(srv, &s->c, end);
	if (s->pidfd >= 0) {
		kill(-s->pid, SIGKILL);
		waitid(P_PIDFD, (id_t)s->pidfd, NULL, WEXITED | WNOHANG);
		close(s->pidfd);
	}
	abandon_io(st, s);
	/* An operation still armed holds the socket open until its cancel
	 * is submitted, at the end of this turn of the loop. */
	dx__conn_finish(&s->c);
	dx__conn_source_key(&s->c, key);
	memset(s, 0, sizeof(*s));
	st->active--;
	dx__stream_released(srv, key);
}

/* ---------------------------------------------------------------------
 * exec:PROGRAM, as the epoll model runs it
 * --------------------------------------------------------------------- */

static int
start_exec(struct dx_server *srv, struct dx_listener *l, struct slot *s,
           const struct dx_addr *peer)
{
	struct epoll_event ev = {.events = EPOLLIN};
	struct dx_env env;
	uint8_t key[16];
	int err;

	dx__conn_source_key(&s->c, key);
	err = dx__exec_env(&env, s->c.fd, peer,
	                   dx__sources_count(srv->src, key));
	if (err == 0) /* the program gets an ordinary, blocking socket */
		err = dx__set_nonblock(s->c.fd, 0);
	if (err == 0)
		err = dx__spawn(l->conf.argv, env.vars,
		                (int[3]){s->c.fd, s->c.fd, 2}, 1,
		                &l->conf.rlimits, &s->pid);
	if (err == 0) {
		s->pidfd = dx__pidfd_open(s->pid);
		err = s->pidfd < 0 ? s->pidfd : 0;
	}
	if (err < 0 && s->pid > 0) /* started but cannot be watched */
		kill(-s->pid, SIGKILL);
	if (s->pidfd < 0)
		s->pidfd = -1;
	ev.data.u64 = PIDFD_TAG + (uint64_t)s->c.fd;
	if (err == 0 && epoll_ctl(srv->epfd, EPOLL_CTL_ADD, s->pidfd, &ev) < 0)
		err = dx__neg_errno();
	return err;
}

/* The exec program of the connection in S exited: drain and close. */
static void
exec_exited(struct dx_server *srv, struct slot *s)
{
	int64_t now = dx_now_ms();
	siginfo_t si;
	int end;

	memset(&si, 0, sizeof(si));
	waitid(P_PIDFD, (id_t)s->pidfd, &si, WEXITED | WNOHANG);
	kill(-s->pid, SIGKILL); /* what it left behind in its group */
	close(s->pidfd);
	s->pidfd = -1;
	if (si.si_code != CLD_EXITED || si.si_status != 0) {
		dx__exec_log_end(srv, s->c.conf->argv[0], s->pid,
		                 si.si_code == CLD_EXITED ? 0 : si.si_status,
		                 si.si_status);
		close_slot(srv, s, DX_END_ERROR);
		return;
	}
	/* Now as any finished connection: half-close, drain, close. */
	dx__set_nonblock(s->c.fd, 1);
	end = dx__conn_end_output(&s->c, now);
	if (end == DX_END_NONE)
		end = progress(srv->model_state, s, now);
	if (end != DX_END_NONE)
		close_slot(srv, s, end);
}

static void
uring_serve(struct dx_server *srv, struct dx_listener *l, int fd,
            const struct dx_addr *peer)
{
	struct uring_state *st = srv->model_state;
	int64_t now = dx_now_ms();
	struct slot *s;
	int end;

	if ((size_t)fd >= st->cap) {
		uint8_t key[16];
		dx__source_key(peer, key);
		dx_close(fd);
		dx__stream_released(srv, key);
		return;
	}
	s = &st->slot[fd];
	dx__conn_init(&s->c, fd, peer, &l->conf, &st->pool, now);
	s->gen = ++st->gen & GEN_MASK;
	s->pidfd = -1;
	s->head = s->tail = NO_BUF;
	s->used = 1;
	st->active++;
	srv->served[l - srv->ls]++;
	if (l->conf.svc->flags & DX_SVC_EXEC)
		end = start_exec(srv, l, s, peer) < 0 ? DX_END_ERROR
		                                      : DX_END_NONE;
	else
		end = dx__conn_open(&s->c, now);
	if (end == DX_END_NONE && s->pidfd < 0)
		end = progress(st, s, now);
	if (end != DX_END_NONE)
		close_slot(srv, s, end);
}

/* ---------------------------------------------------------------------
 * Accepting: a multishot accept per listener, while no limit can defer
 *
 * The shared path costs a wake-up of the loop, an accept4(2) and the
 * accept4 that finds the queue empty per burst; a multishot accept in the
 * ring takes the connections as their handshakes end, in the same call
 * that runs the rest of the turn's work (7-10% less server CPU per
 * connection in connrate, docs/uring.md). It cannot give the peer's
 * address (one buffer for every connection it takes), so each costs a
 * getpeername(2) for admission, which is then the shared one
 * (dx__stream_accepted: rules, --per-source, --max-conns).
 *
 * What it cannot do is wait: the kernel takes every connection queued,
 * and the loop learns of them after. So the ring accepts only while that
 * cannot overrun a limit (no --rate, no stop, and more --max-conns places
 * free than the listen backlog and ACCEPT_SLACK, twice that to start
 * again), and the listeners go back to the shared path, which defers by
 * leaving clients in the backlog, otherwise. It also honours the
 * descriptor limit as it was when it was armed: a descriptor at or above
 * the limit as it is now is shed as accept4's EMFILE would have been, and
 * EMFILE itself, as every exhaustion error, hands the listeners back for
 * RETAKE_MS, the shared path shedding through its reserve descriptor.
 * --------------------------------------------------------------------- */

/* 1 while the ring may accept; START: the stricter bound to take over. */
static int
may_accept_ahead(const struct dx_server *srv, const struct uring_state *st,
                 int64_t now, int start)
{
	size_t margin = (size_t)srv->backlog + ACCEPT_SLACK;
	size_t total, left;

	if (st->no_accept || srv->stop || srv->accept_paused || srv->rate > 0 ||
	    now < st->retake_ms)
		return 0;
	if (!srv->max_conns)
		return 1;
	total = atomic_load_explicit(&srv->src->total, memory_order_relaxed);
	left = srv->max_conns > total ? srv->max_conns - total : 0;
	return left > (start ? 2 * margin : margin);
}

static int
stream_listener(const struct dx_listener *l)
{
	return l->fd >= 0 && dx_scheme_socktype(l->ep.scheme) == SOCK_STREAM;
}

/* Listener I's accept; with CANCEL, the request that cancels it. */
static uint64_t
accept_ud(size_t i, int cancel)
{
	return (uint64_t)OP_ACCEPT << 60 | (uint64_t)(cancel != 0) << 32 | i;
}

/* Arms listener I's multishot accept. */
static void
arm_accept(struct dx_server *srv, size_t i)
{
	struct uring_state *st = srv->model_state;
	struct io_uring_sqe *sqe = get_sqe(st);

	if (sqe == NULL)
		return; /* the next turn's take_or_give() tries again */
	io_uring_prep_multishot_accept(sqe, srv->ls[i].fd, NULL, NULL,
	                               SOCK_CLOEXEC | SOCK_NONBLOCK);
	io_uring_sqe_set_data64(sqe, accept_ud(i, 0));
	st->acc_armed |= UINT64_C(1) << i;
	dx_trace("accept(%d) multishot [io_uring]", srv->ls[i].fd);
}

/* Takes the stream listeners from the shared path. */
static void
take_listeners(struct dx_server *srv)
{
	struct uring_state *st = srv->model_state;

	dx__log(srv, DX_LOG_DEBUG, "io_uring: the ring accepts");
	dx__stream_take_listeners(srv, 1);
	st->accepting = 1;
	for (size_t i = 0; i < srv->nls; i++)
		if (stream_listener(&srv->ls[i]) &&
		    !(st->acc_armed & (UINT64_C(1) << i)))
			arm_accept(srv, i);
}

/* Cancels the ring's accepts and gives the listeners back. */
static void
give_back_listeners(struct dx_server *srv)
{
	struct uring_state *st = srv->model_state;

	if (!st->accepting)
		return;
	dx__log(srv, DX_LOG_DEBUG, "io_uring: accept(2) accepts");
	st->accepting = 0;
	for (size_t i = 0; i < srv->nls; i++) {
		struct io_uring_sqe *sqe;

		if (!(st->acc_armed & (UINT64_C(1) << i)) ||
		    (sqe = get_sqe(st)) == NULL)
			continue;
		io_uring_prep_cancel64(sqe, accept_ud(i, 0), 0);
		io_uring_sqe_set_data64(sqe, accept_ud(i, 1));
	}
	dx__stream_take_listeners(srv, 0);
}

/* Each turn: takes the listeners when it may, gives them back if not. */
static void
take_or_give(struct dx_server *srv, int64_t now)
{
	struct uring_state *st = srv->model_state;

	if (!st->accepting && may_accept_ahead(srv, st, now, 1))
		take_listeners(srv);
	else if (st->accepting && !may_accept_ahead(srv, st, now, 0))
		give_back_listeners(srv);
}

/* The ring's accept failed with ERR: descriptors or memory ran out. */
static int
exhausted(int err)
{
	return err == -EMFILE || err == -ENFILE || err == -ENOBUFS ||
	       err == -ENOMEM;
}

/* The ring accepted FD on listener I: checks, then the shared admission. */
static void
accepted(struct dx_server *srv, size_t i, int fd)
{
	struct uring_state *st = srv->model_state;
	struct dx_listener *l = &srv->ls[i];
	char who[DX_ADDRSTRLEN];
	struct dx_addr peer;
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && (rlim_t)fd >= rl.rlim_cur) {
		dx_trace("accept(%d) = %d over the descriptor limit [io_uring]",
		         l->fd, fd);
		dx_close(fd);
		dx__stream_refused(srv, DX_REFUSE_FDS, NULL);
		st->retake_ms = dx_now_ms() + RETAKE_MS;
		give_back_listeners(srv);
		return;
	}
	memset(&peer, 0, sizeof(peer));
	peer.len = sizeof(peer.u.ss);
	if (getpeername(fd, &peer.u.sa, &peer.len) < 0) {
		dx_close(fd); /* the peer is gone: accept4's ECONNABORTED */
		return;
	}
	if (dx_trace_on()) { /* as accept4's: the seed's figure */
		dx_addr_format(&peer, who, sizeof(who));
		dx_trace("accept(%d) = %d from %s", l->fd, fd, who);
	}
	dx__stream_accepted(srv, l, fd, &peer);
}

/* A completion of listener I's multishot accept. */
static void
accept_done(struct dx_server *srv, const struct io_uring_cqe *cqe)
{
	struct uring_state *st = srv->model_state;
	size_t i = (uint32_t)cqe->user_data;

	if (!(cqe->flags & IORING_CQE_F_MORE))
		st->acc_armed &= ~(UINT64_C(1) << i);
	if (cqe->res >= 0) {
		accepted(srv, i, cqe->res);
	} else if (cqe->res != -ECANCELED) {
		dx_trace("accept(%d) = -1 (%s) [io_uring]", srv->ls[i].fd,
		         dx_strerror(cqe->res));
		if (exhausted(cqe->res))
			st->retake_ms = dx_now_ms() + RETAKE_MS;
		else if (cqe->res == -EINVAL)
			st->no_accept = 1; /* not for this listener or kernel */
		if (exhausted(cqe->res) || cqe->res == -EINVAL)
			give_back_listeners(srv);
	}
	/* One that ended on a routine error (ECONNABORTED...) goes on. */
	if (st->accepting && !(st->acc_armed & (UINT64_C(1) << i)))
		arm_accept(srv, i);
}

/* ---------------------------------------------------------------------
 * Completions
 * --------------------------------------------------------------------- */

/* A completion for a connection that has ended: tidy up after it. */
static void
forget(struct uring_state *st, uint64_t ud, unsigned flags)
{
	if (flags & IORING_CQE_F_BUFFER)
		recycle(st, flags >> IORING_CQE_BUFFER_SHIFT);
	if ((ud >> 60) != OP_SEND)
		return;
	for (size_t i = 0; i < st->norphans; i++) {
		if (st->orphans[i].ud != ud)
			continue;
		dx__pool_put(&st->pool, st->orphans[i].buf);
		st->orphans[i] = st->orphans[--st->norphans];
		return;
	}
}

/* --trace: a receive or send the ring completed, as io.c shows calls. */
static void
trace_op(const char *op, int fd, int res)
{
	if (!dx_trace_on() || res == -ECANCELED)
		return;
	if (res < 0)
		dx_trace("%s(%d) = -1 (%s) [io_uring]", op, fd,
		         dx_strerror(res));
	else if (res == 0 && op[0] == 'r')
		dx_trace("%s(%d) = 0 (EOF) [io_uring]", op, fd);
	else
		dx_trace("%s(%d) = %d bytes [io_uring]", op, fd, res);
}

/* Applies completion CQE to its connection in S. */
static int
apply(struct uring_state *st, struct slot *s, const struct io_uring_cqe *cqe,
      int64_t now)
{
	switch (cqe->user_data >> 60) {
	case OP_RECV:
		trace_op("recv", s->c.fd, cqe->res);
		received(st, s, cqe->res, cqe->flags);
		return DX_END_NONE;
	case OP_POLL:
		if (s->flags & S_BULK)
			return bulk_ready(st, s, cqe->res, now);
		return polled(st, s, cqe->res, now);
	case OP_SEND:
		trace_op("send", s->c.fd, cqe->res);
		s->sending = 0;
		return dx__conn_sent(&s->c, cqe->res, now);
	default: /* a cancel that found nothing: ask again if need be */
		if (cqe->res < 0)
			s->flags &= ~S_CANCEL;
		return DX_END_NONE;
	}
}

static void
complete(struct dx_server *srv, const struct io_uring_cqe *cqe, int64_t now)
{
	struct uring_state *st = srv->model_state;
	uint64_t ud = cqe->user_data;
	struct slot *s = &st->slot[(uint32_t)ud];
	int end;

	if ((ud >> 60) == OP_ACCEPT) {
		if (ud == accept_ud((uint32_t)ud, 0))
			accept_done(srv, cqe);
		return; /* else its cancel's */
	}
	if (cqe->flags & IORING_CQE_F_BUFFER)
		st->published--; /* the kernel filled one */
	if (!s->used || s->gen != ((ud >> 32) & GEN_MASK)) {
		forget(st, ud, cqe->flags);
		return;
	}
	end = apply(st, s, cqe, now);
	if (end == DX_END_NONE)
		end = progress(st, s, now);
	if (end != DX_END_NONE)
		close_slot(srv, s, end);
}

/*
 * 1 when the kernel holds completions back until we enter it: deferred
 * task work (IORING_SETUP_DEFER_TASKRUN), or an overflowed queue.
 */
static int
work_pending(const struct uring_state *st)
{
	return (IO_URING_READ_ONCE(*st->ring.sq.kflags) &
	        (IORING_SQ_TASKRUN | IORING_SQ_CQ_OVERFLOW)) != 0;
}

/*
 * Handles the completions in the queue, all as of NOW, without entering
 * the kernel (the turn's submit does that). Returns how many there were.
 */
static unsigned
reap(struct dx_server *srv, int64_t now)
{
	struct uring_state *st = srv->model_state;
	struct io_uring_cqe *cqe;
	unsigned head, n = 0;

	io_uring_for_each_cqe(&st->ring, head, cqe)
	{
		complete(srv, cqe, now);
		n++;
	}
	io_uring_cq_advance(&st->ring, n);
	return n;
}

static void
uring_event(struct dx_server *srv, uint64_t tag, uint32_t events)
{
	struct uring_state *st = srv->model_state;
	struct slot *s;

	if (tag >= PIDFD_TAG) {
		s = &st->slot[tag - PIDFD_TAG];
		if (s->used && s->pidfd >= 0)
			exec_exited(srv, s);
		return;
	}
	reap(srv, dx_now_ms());
}

/* ---------------------------------------------------------------------
 * Each turn of the loop: timeouts, then the one submit
 * --------------------------------------------------------------------- */

/* Which limit has ended S at NOW; exec programs have only the lifetime. */
static int
expired(const struct dx_server *srv, const struct slot *s, int64_t now)
{
	if (s->pidfd < 0)
		return dx__conn_expired(&s->c, &srv->limits, now);
	if (srv->limits.lifetime_ms > 0 &&
	    now >= s->c.started_ms + srv->limits.lifetime_ms)
		return DX_END_LIFETIME;
	return DX_END_NONE;
}

/* Ends every connection whose time limit has passed. */
static void
sweep(struct dx_server *srv, int64_t now)
{
	struct uring_state *st = srv->model_state;
	size_t seen = 0, total = st->active;

	for (size_t fd = 0; fd < st->cap && seen < total; fd++) {
		struct slot *s = &st->slot[fd];
		int end;

		if (!s->used)
			continue;
		seen++;
		end = expired(srv, s, now);
		if (end != DX_END_NONE)
			close_slot(srv, s, end);
	}
}

/*
 * Submits what this turn prepared and collects what completed, in one
 * call that also runs the kernel's deferred work, then handles it; again
 * while a round found anything, a few rounds at most. A round that found
 * something is followed by another even with nothing to submit: the
 * kernel runs a bounded amount of deferred work per call, and what it
 * leaves raises neither the TASKRUN flag nor the eventfd on every
 * kernel. Returns 1 when work may be left for another turn.
 *
 * The eventfd is turned off meanwhile (IORING_CQ_EVENTFD_DISABLED): it
 * would be signalled for every batch of completions these calls post
 * (the signal, and the epoll wake-up it causes, were about 3% of the
 * server's CPU in ping-pong), when we are awake and reaping anyway. Work
 * the kernel queues while it is off raises the TASKRUN flag but not the
 * eventfd, so once it is on again the flag is read (after a full fence:
 * the kernel sets the flag, then reads whether the eventfd is on) and
 * the loop is kept from sleeping on work already queued.
 */
static int
flush_ring(struct dx_server *srv, int64_t now)
{
	struct uring_state *st = srv->model_state;
	unsigned got = 0;

	io_uring_cq_eventfd_toggle(&st->ring, 0);
	for (int i = 0; i < FLUSH_ROUNDS; i++) {
		publish(st);
		if (got > 0 || io_uring_sq_ready(&st->ring) > 0 ||
		    work_pending(st))
			io_uring_submit_and_get_events(&st->ring);
		got = reap(srv, now);
		if (got == 0)
			break;
	}
	io_uring_cq_eventfd_toggle(&st->ring, 1);
	atomic_thread_fence(memory_order_seq_cst);
	return got > 0 || io_uring_sq_ready(&st->ring) > 0 ||
	       io_uring_cq_ready(&st->ring) > 0 || work_pending(st);
}

/*
 * Runs as the main loop is about to wait: the sweep when it is due, then
 * the submit for everything this turn prepared. Returns the next sweep,
 * or NOW when work is left (the loop must not sleep on it).
 */
static int64_t
uring_tick(struct dx_server *srv, int64_t now)
{
	struct uring_state *st = srv->model_state;

	if (st->active > 0 && now >= st->next_sweep) {
		sweep(srv, now);
		st->next_sweep = now + SWEEP_MS;
	}
	take_or_give(srv, now);
	if (flush_ring(srv, now))
		return now;
	/* The last connection of a stopping server ended in this turn: the
	 * loop must look again (and finish) rather than sleep. */
	if (srv->stop && st->active == 0)
		return now;
	return st->active > 0 ? st->next_sweep : DX_FOREVER;
}

/* SIGTERM: the ring stops accepting (the shared path is paused). */
static void
uring_stop(struct dx_server *srv)
{
	give_back_listeners(srv);
}

static size_t
uring_active(const struct dx_server *srv)
{
	const struct uring_state *st = srv->model_state;

	return st ? st->active : 0;
}

/* SIGTERM asks exec programs to end and closes the rest; SIGKILL ends all. */
static void
uring_terminate(struct dx_server *srv, int sig)
{
	struct uring_state *st = srv->model_state;

	for (size_t fd = 0; fd < st->cap && st->active > 0; fd++) {
		struct slot *s = &st->slot[fd];
		if (!s->used)
			continue;
		if (s->pidfd >= 0 && sig == SIGTERM)
			kill(-s->pid, SIGTERM);
		else
			close_slot(srv, s, DX_END_LIFETIME);
	}
}

const struct dx_model dx__model_uring = {
        .name = "uring",
        .start = uring_start,
        .serve = uring_serve,
        .event = uring_event,
        .tick = uring_tick,
        .active = uring_active,
        .stop = uring_stop,
        .terminate = uring_terminate,
        .free = uring_free,
};

#else /* !HAVE_LIBURING */

/* Built without liburing: the model exists and always falls back. */
static int
uring_start(struct dx_server *srv)
{
	return fall_back(srv, -ENOSYS);
}

const struct dx_model dx__model_uring = {
        .name = "uring",
        .start = uring_start,
};

#endif /* HAVE_LIBURING */
