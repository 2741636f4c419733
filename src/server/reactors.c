/* SPDX-License-Identifier: MIT */
/*
 * reactors.c - the epoll model on every CPU ("--model epoll"): one
 * reactor thread per CPU the process may run on (sched_getaffinity), or
 * --workers N. With one, this is the epoll model itself (model_epoll.c),
 * single-threaded, with nothing added. With more, each reactor runs the
 * server's own main loop (dx__server_run) on its own copy of the server:
 * its own epoll set, connection table, buffer pool and scratch, and its
 * own listener watch ("paused") flags. The main thread keeps the real
 * signalfd and the datagram listeners; what reactors share is the
 * live-connection table and the --rate bucket (concurrent.c), under one
 * mutex, so --max-conns, --per-source and --rate hold for the whole
 * server exactly as for one loop.
 *
 * Signals: a pipe stands in for each reactor's signalfd and the main
 * thread writes the struct signalfd_siginfo that stops it, so a reactor
 * handles SIGTERM (stop accepting, drain for --drain, then end what is
 * left) exactly as a lone loop does. SIGUSR1 is the main thread's alone:
 * it logs counters summed over the reactors (the counters hook). A reactor
 * that has finished writes its index to a pipe the main loop watches;
 * the main thread joins it, and stops once none is left.
 *
 * Balance: by default every reactor watches the one listening socket
 * with EPOLLEXCLUSIVE, so the kernel wakes one reactor per connection and
 * all share one accept queue. DUPLEX_BALANCE=reuseport (serve.c sets
 * srv->reuseport) instead gives each reactor its own SO_REUSEPORT socket
 * bound to the same TCP address: the kernel spreads connections by hash
 * over private accept queues. docs/models.md has the measurements and
 * why the shared queue is the default.
 *
 * Threads start when the main loop begins (the begin hook), after
 * privileges were dropped, so that they inherit PR_SET_NO_NEW_PRIVS,
 * which is per thread; the signals the server reads stay blocked in
 * them, as they inherit the main thread's mask.
 */
#include "server/server.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#define MAX_REACTORS 64

extern const struct dx_model dx__model_epoll;

struct reactors_state;

struct reactor {
	struct dx_server *srv; /* its copy of the server */
	struct reactors_state *st;
	size_t index;
	dx_log_fn log; /* the main server's, which its lines go to */
	void *log_ctx;
	pthread_t tid;
	int sigw;    /* the write end of the pipe that is its sigfd */
	int running; /* started and not yet joined */
	int err;     /* what dx__server_run returned */
};

struct reactors_state {
	pthread_mutex_t lock; /* the shared table's and the rate bucket's */
	pthread_rwlock_t accept_lock; /* accept() shared, shedding alone */
	int done[2]; /* a finished reactor writes its index here */
	size_t n, live;
	struct reactor r[MAX_REACTORS];
	/* What reactors that have been joined counted. */
	uint64_t done_accepted, done_served[DX_MAX_LISTENERS];
};

static int
is_ip_stream(const struct dx_listener *l)
{
	return l->ep.scheme == DX_SCHEME_TCP && l->fd >= 0;
}

/*
 * A new member of L's SO_REUSEPORT group: a socket bound to the very
 * address L got (port 0 resolved), or -EADDRINUSE if another address of
 * L's name won.
 */
static int
listen_member(const struct dx_server *srv, const struct dx_listener *l)
{
	struct dx_endpoint ep = l->ep;
	struct dx_addr got;
	int fd;

	ep.port = dx_addr_port(&l->bound);
	fd = dx_listen_endpoint(&ep, DX_SOCK_REUSEPORT, srv->backlog, NULL, 0);
	if (fd >= 0 &&
	    (dx_local_addr(fd, &got) < 0 || !dx_addr_equal(&got, &l->bound))) {
		dx_close(fd);
		fd = -EADDRINUSE;
	}
	if (fd >= 0)
		dx__listener_tune(l, fd);
	return fd;
}

/*
 * DUPLEX_BALANCE=reuseport: reopens each TCP listener with SO_REUSEPORT
 * (it becomes reactor 0's; the others open their own). It was opened
 * without, which is what makes a second server on the same address
 * (another duplex, in either mode) fail with EADDRINUSE; it is closed
 * only now and the group is bound at once in its place.
 */
static int
reopen_reuseport(struct dx_server *srv)
{
	int err = 0;

	for (size_t i = 0; i < srv->nls && err == 0; i++) {
		struct dx_listener *l = &srv->ls[i];

		if (!is_ip_stream(l))
			continue;
		dx_close(l->fd);
		l->fd = listen_member(srv, l);
		err = l->fd < 0 ? l->fd : 0;
	}
	return err;
}

/* A reactor's log line: the main server's, with "reactor K: " first. */
static void
reactor_log(void *ctx, int level, const char *line)
{
	const struct reactor *rc = ctx;
	char tagged[1100];

	snprintf(tagged, sizeof(tagged), "reactor %zu: %s", rc->index, line);
	rc->log(rc->log_ctx, level, tagged);
}

/* Undoes a reactor copy: what it opened, then the copy itself. */
static void
free_reactor(struct dx_server *main, struct reactor *rc)
{
	struct dx_server *r = rc->srv;

	if (r == NULL)
		return;
	if (r->model_state != NULL)
		dx__model_epoll.free(r);
	for (size_t i = 0; i < r->nls; i++)
		if (r->ls[i].fd >= 0 && r->ls[i].fd != main->ls[i].fd)
			dx_close(r->ls[i].fd); /* its own SO_REUSEPORT socket */
	if (r->epfd >= 0)
		close(r->epfd);
	if (r->sigfd >= 0)
		close(r->sigfd);
	if (rc->sigw >= 0)
		close(rc->sigw);
	if (r->reserve_fd >= 0)
		close(r->reserve_fd);
	free(r);
	rc->srv = NULL;
	rc->sigw = -1;
}

/*
 * Makes reactor RC's copy of MAIN: its stream listeners (with
 * SO_REUSEPORT, its own sockets but for reactor 0's), a pipe for a sigfd,
 * an epoll set, a reserve descriptor, and the epoll model's state.
 */
static int
make_reactor(struct dx_server *main, struct reactor *rc)
{
	struct dx_server *r = malloc(sizeof(*r));
	int p[2], fd;

	rc->srv = r;
	if (r == NULL)
		return -ENOMEM;
	memcpy(r, main, sizeof(*r));
	r->sigfd = r->epfd = r->reserve_fd = -1;
	r->model = &dx__model_epoll;
	r->model_state = NULL;
	r->iter = NULL;
	r->stream_elsewhere = 0;
	r->exclusive = 1; /* harmless on a socket only it watches */
	/* With one listener for all, reactors keep to their share. */
	r->loops = main->reuseport ? 0 : rc->st->n;
	if (r->loops > 1) /* each starts watching the shared listeners */
		atomic_store(&r->src->watching, (int)r->loops);
	r->accepted = 0;
	rc->log = main->log;
	rc->log_ctx = main->log_ctx;
	r->log = main->log != NULL ? reactor_log : NULL;
	r->log_ctx = rc;
	for (size_t i = 0; i < r->nls; i++) {
		r->served[i] = 0;
		if (dx_scheme_socktype(r->ls[i].ep.scheme) == SOCK_DGRAM)
			r->ls[i].fd = -1; /* the main thread serves these */
	}
	for (size_t i = 0; i < r->nls && main->reuseport && rc->index > 0;
	     i++) {
		if (!is_ip_stream(&r->ls[i]))
			continue;
		fd = listen_member(main, &main->ls[i]);
		if (fd < 0)
			return fd;
		r->ls[i].fd = fd;
	}
	if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0)
		return dx__neg_errno();
	r->sigfd = p[0];
	rc->sigw = p[1];
	r->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (r->epfd < 0)
		return dx__neg_errno();
	/* Its own: shedding closes and reopens it, which two threads must
	 * not do to one descriptor. */
	r->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (r->reserve_fd < 0)
		return dx__neg_errno();
	return dx__model_epoll.start(r);
}

static int
reactors_start(struct dx_server *srv)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = DX_MODEL_TAG};
	struct reactors_state *st;
	size_t n = dx__loop_count(srv, MAX_REACTORS);
	int err = 0;

	if (n == 1) { /* the epoll model itself, as if alone */
		srv->model = &dx__model_epoll;
		return srv->model->start(srv);
	}
	st = calloc(1, sizeof(*st));
	if (st == NULL)
		return -ENOMEM;
	srv->model_state = st;
	st->n = n;
	st->done[0] = st->done[1] = -1;
	for (size_t k = 0; k < n; k++) {
		st->r[k].sigw = -1;
		st->r[k].st = st;
		st->r[k].index = k;
	}
	pthread_mutex_init(&st->lock, NULL);
	pthread_rwlock_init(&st->accept_lock, NULL);
	srv->sources.lock = &st->lock;
	srv->accept_lock = &st->accept_lock;
	srv->stream_elsewhere = 1;
	if (pipe2(st->done, O_CLOEXEC | O_NONBLOCK) < 0 ||
	    epoll_ctl(srv->epfd, EPOLL_CTL_ADD, st->done[0], &ev) < 0)
		return dx__neg_errno();
	if (srv->reuseport)
		err = reopen_reuseport(srv);
	for (size_t k = 0; k < n && err == 0; k++)
		err = make_reactor(srv, &st->r[k]);
	return err;
}

/* A reactor thread: the server's main loop on its copy. */
static void *
reactor_main(void *arg)
{
	struct reactor *rc = arg;
	size_t index = rc->index;

	rc->err = dx__server_run(rc->srv);
	if (rc->err < 0)
		/* Not stopped but broken: its connections end now, so that
		 * their places in the shared table are given back. */
		dx__model_epoll.terminate(rc->srv, SIGKILL);
	/* A full pipe cannot happen: it holds far more than 64 indexes. */
	if (write(rc->st->done[1], &index, sizeof(index)) < 0)
		rc->err = -errno;
	return NULL;
}

static int
reactors_begin(struct dx_server *srv)
{
	struct reactors_state *st = srv->model_state;
	char name[16];
	int rc;

	for (size_t k = 0; k < st->n; k++) {
		rc = pthread_create(&st->r[k].tid, NULL, reactor_main,
		                    &st->r[k]);
		if (rc != 0)
			return -rc;
		snprintf(name, sizeof(name), "duplex-r%u", (unsigned)k % 100);
		pthread_setname_np(st->r[k].tid, name);
		st->r[k].running = 1;
		st->live++;
	}
	dx__log(srv, DX_LOG_DEBUG, "%zu epoll reactors, %s", st->n,
	        srv->reuseport ? "one SO_REUSEPORT listener each"
	                       : "sharing each listener (EPOLLEXCLUSIVE)");
	return 0;
}

/* Hands reactor RC a signal as its signalfd would. */
static void
send_signal(struct reactor *rc, int sig)
{
	struct signalfd_siginfo si;

	memset(&si, 0, sizeof(si));
	si.ssi_signo = (uint32_t)sig;
	/* Atomic (under PIPE_BUF); a full pipe already holds a stop. */
	if (write(rc->sigw, &si, sizeof(si)) < 0)
		return;
}

/*
 * Joins reactor K and frees its copy; its counts are kept, so that the
 * totals logged at exit include them.
 */
static void
join_reactor(struct dx_server *srv, struct reactors_state *st, size_t k)
{
	struct reactor *rc = &st->r[k];

	pthread_join(rc->tid, NULL);
	rc->running = 0;
	st->live--;
	st->done_accepted += rc->srv->accepted;
	for (size_t i = 0; i < srv->nls; i++)
		st->done_served[i] += rc->srv->served[i];
	if (rc->err < 0) {
		dx__log(srv, DX_LOG_ERROR, "reactor %zu failed: %s", k,
		        dx_strerror(rc->err));
		if (!srv->stop) { /* one fails, the server stops */
			srv->stop = 1;
			dx__stream_stop(srv);
		}
	}
	free_reactor(srv, rc);
}

/* The done pipe is readable: a reactor has finished. */
static void
reactors_event(struct dx_server *srv, uint64_t tag, uint32_t events)
{
	struct reactors_state *st = srv->model_state;
	size_t k;

	(void)tag;
	(void)events;
	while (read(st->done[0], &k, sizeof(k)) == (ssize_t)sizeof(k))
		if (k < st->n && st->r[k].running)
			join_reactor(srv, st, k);
}

/* The main thread's units are its reactors; connections live in them. */
static size_t
reactors_active(const struct dx_server *srv)
{
	const struct reactors_state *st = srv->model_state;

	return st != NULL ? st->live : 0;
}

/* SIGTERM or SIGINT: each reactor stops accepting and drains on its own. */
static void
reactors_stop(struct dx_server *srv)
{
	struct reactors_state *st = srv->model_state;
	int sig = srv->stop > 1 ? srv->stop : SIGTERM;

	for (size_t k = 0; k < st->n; k++)
		if (st->r[k].running)
			send_signal(&st->r[k], sig);
}

/* SIGHUP: each reactor reads the rules file again for itself. */
static void
reactors_reload(struct dx_server *srv)
{
	struct reactors_state *st = srv->model_state;

	for (size_t k = 0; k < st->n; k++)
		if (st->r[k].running)
			send_signal(&st->r[k], SIGHUP);
}

/*
 * The drain deadline: nothing to do. Each reactor has the same deadline
 * and ends (then kills) its own connections when it passes.
 */
static void
reactors_terminate(struct dx_server *srv, int sig)
{
	(void)srv;
	(void)sig;
}

/*
 * The counters (SIGUSR1, exit): the stream listeners' served and the
 * accepted count are the reactors', those joined and those running.
 */
static void
reactors_counters(struct dx_server *srv)
{
	struct reactors_state *st = srv->model_state;
	uint64_t accepted = st->done_accepted;

	for (size_t i = 0; i < srv->nls; i++)
		if (dx_scheme_socktype(srv->ls[i].ep.scheme) == SOCK_STREAM)
			srv->served[i] = st->done_served[i];
	for (size_t k = 0; k < st->n; k++) {
		const struct dx_server *r = st->r[k].srv;
		if (r == NULL)
			continue;
		accepted += r->accepted;
		for (size_t i = 0; i < srv->nls; i++)
			if (r->ls[i].fd >= 0)
				srv->served[i] += r->served[i];
		dx__log(srv, DX_LOG_DEBUG,
		        "counters: reactor %zu: accepted %llu", k,
		        (unsigned long long)r->accepted);
	}
	srv->accepted = accepted;
}

/*
 * Stops and joins reactors still running (the main loop failed), then
 * frees every copy. Each drains as on SIGTERM, within --drain.
 */
static void
reactors_free(struct dx_server *srv)
{
	struct reactors_state *st = srv->model_state;

	if (st == NULL)
		return;
	for (size_t k = 0; k < st->n; k++)
		if (st->r[k].running)
			send_signal(&st->r[k], SIGTERM);
	for (size_t k = 0; k < st->n; k++) {
		if (st->r[k].running) {
			pthread_join(st->r[k].tid, NULL);
			st->r[k].running = 0;
		}
		free_reactor(srv, &st->r[k]);
	}
	if (st->done[0] >= 0) {
		close(st->done[0]);
		close(st->done[1]);
	}
	srv->sources.lock = NULL;
	srv->accept_lock = NULL;
	pthread_mutex_destroy(&st->lock);
	pthread_rwlock_destroy(&st->accept_lock);
	free(st);
	srv->model_state = NULL;
}

const struct dx_model dx__model_reactors = {
        .name = "epoll",
        .start = reactors_start,
        .serve = dx__serve_elsewhere,
        .event = reactors_event,
        .active = reactors_active,
        .stop = reactors_stop,
        .reload = reactors_reload,
        .terminate = reactors_terminate,
        .begin = reactors_begin,
        .counters = reactors_counters,
        .free = reactors_free,
};
