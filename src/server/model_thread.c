/* SPDX-License-Identifier: MIT */
/*
 * model_thread.c - a thread per connection, blocking on its one socket in
 * the same loop a forked child runs (dx__conn_run). Not a pool: a pool
 * bounds concurrency by its size and makes a slow client hold a worker
 * that others queue behind, while --max-conns already bounds the threads
 * here, and a thread costs only its stack (128 KiB reserved, a few pages
 * touched). A finished thread writes its slot number to a pipe the main
 * loop watches, so that all accounting (the live count, per-source
 * counts) stays on the main thread and needs no lock.
 */
#include "server/server.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#define STACK_SIZE ((size_t)128 * 1024)
#define SCRATCH    16384

struct tslot {
	struct dx_server *srv;
	struct dx_listener *l;
	struct dx_addr peer;
	uint8_t key[16];
	uint32_t connnum, index;
	int fd;
	_Atomic int running; /* 1 until the thread is about to report */
	_Atomic int pid;     /* exec: the program, once it runs */
	int used;
};

struct thread_state {
	struct tslot *slot;
	size_t cap, active;
	int done[2]; /* the pipe finished threads report on */
	pthread_attr_t attr;
};

static int
thread_start(struct dx_server *srv)
{
	struct thread_state *st = calloc(1, sizeof(*st));
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = DX_MODEL_TAG};

	if (st == NULL)
		return -ENOMEM;
	srv->model_state = st;
	int size;

	st->cap = srv->max_conns ? srv->max_conns : 4096;
	if (pipe2(st->done, O_CLOEXEC | O_NONBLOCK) < 0)
		return dx__neg_errno();
	/* Room for every thread's report at once (a report may not be
	 * dropped): a default pipe holds 8,192; past the system's pipe size
	 * limit, the pipe's room bounds the threads instead. */
	size = fcntl(st->done[1], F_SETPIPE_SZ,
	             (int)(st->cap * sizeof(uint32_t[2])));
	if (size < 0)
		size = fcntl(st->done[1], F_GETPIPE_SZ);
	if (size > 0 && (size_t)size / sizeof(uint32_t[2]) < st->cap)
		st->cap = (size_t)size / sizeof(uint32_t[2]);
	/* The model's bound is the server's: past it, clients wait in the
	 * backlog as under --max-conns, rather than being turned away. */
	if (srv->max_conns == 0 || srv->max_conns > st->cap)
		srv->max_conns = st->cap;
	st->slot = calloc(st->cap, sizeof(*st->slot));
	if (st->slot == NULL)
		return -ENOMEM;
	pthread_attr_init(&st->attr);
	pthread_attr_setstacksize(&st->attr, STACK_SIZE);
	pthread_attr_setdetachstate(&st->attr, PTHREAD_CREATE_DETACHED);
	if (epoll_ctl(srv->epfd, EPOLL_CTL_ADD, st->done[0], &ev) < 0)
		return dx__neg_errno();
	return 0;
}

static void
thread_free(struct dx_server *srv)
{
	struct thread_state *st = srv->model_state;

	if (st == NULL)
		return;
	if (st->done[0] > 0) {
		close(st->done[0]);
		close(st->done[1]);
	}
	pthread_attr_destroy(&st->attr);
	free(st->slot);
	free(st);
	srv->model_state = NULL;
}

/* The thread: serve one connection, then report its slot. */
static void *
serve_thread(void *arg)
{
	struct tslot *t = arg;
	struct thread_state *st = t->srv->model_state;
	struct dx_bufpool pool = {0};
	uint8_t scratch[SCRATCH];
	struct dx_conn c;
	uint32_t report[2] = {t->index, 0};

	dx__conn_init(&c, t->fd, &t->peer, &t->l->conf, &pool, dx_now_ms());
	if (t->l->conf.svc->flags & DX_SVC_EXEC)
		report[1] = (uint32_t)dx__exec_stream(
		        t->srv, t->l, t->fd, &t->peer, t->connnum,
		        &t->srv->limits, 1, &t->pid);
	else
		report[1] = (uint32_t)dx__conn_run(&c, &t->srv->limits, scratch,
		                                   sizeof(scratch));
	dx__stream_log_end(t->srv, &c, (int)report[1]);
	dx__pool_drain(&pool);
	atomic_store(&t->running, 0);
	/* An 8-byte write to a pipe is atomic (under PIPE_BUF), so reports
	 * never interleave, and the pipe has room for every slot's. */
	(void)dx_write(st->done[1], report, sizeof(report));
	return NULL;
}

/* A free slot, or NULL when --max-conns (or 4096) threads are running. */
static struct tslot *
free_slot(struct thread_state *st)
{
	for (size_t i = 0; i < st->cap; i++)
		if (!st->slot[i].used) {
			st->slot[i].index = (uint32_t)i;
			return &st->slot[i];
		}
	return NULL;
}

static void
thread_serve(struct dx_server *srv, struct dx_listener *l, int fd,
             const struct dx_addr *peer)
{
	struct thread_state *st = srv->model_state;
	struct tslot *t = free_slot(st);
	pthread_t tid;
	uint8_t key[16];
	int err = -EAGAIN;

	dx__source_key(peer, key);
	if (t != NULL) {
		t->srv = srv;
		t->l = l;
		t->peer = *peer;
		t->fd = fd;
		memcpy(t->key, key, 16);
		t->connnum = dx__sources_count(srv->src, key);
		atomic_store(&t->running, 1);
		atomic_store(&t->pid, 0);
		t->used = 1;
		err = -pthread_create(&tid, &st->attr, serve_thread, t);
	}
	if (err == 0) {
		st->active++;
		srv->served[l - srv->ls]++;
		return;
	}
	if (t != NULL)
		t->used = 0;
	srv->refused[DX_REFUSE_FORK]++;
	dx__log(srv, DX_LOG_WARN, "%s: cannot start a thread: %s", l->name,
	        dx_strerror(err));
	dx_close(fd);
	dx__stream_released(srv, key);
}

/* Reads the slots of finished threads and releases them. */
static void
thread_event(struct dx_server *srv, uint64_t tag, uint32_t events)
{
	struct thread_state *st = srv->model_state;
	uint32_t report[64][2];
	ssize_t n;

	(void)tag;
	(void)events;
	n = dx_read(st->done[0], report, sizeof(report));
	for (ssize_t i = 0; i < n / (ssize_t)sizeof(report[0]); i++) {
		struct tslot *t = &st->slot[report[i][0]];
		/* The thread logged its connection's end itself. */
		t->used = 0;
		st->active--;
		dx__stream_released(srv, t->key);
	}
}

static size_t
thread_active(const struct dx_server *srv)
{
	const struct thread_state *st = srv->model_state;

	return st ? st->active : 0;
}

/*
 * Ends running connections: shutdown(2) wakes a thread blocked on its
 * socket with end of file, and exec programs get the signal. Accepting
 * has stopped, so no descriptor number is being reused under us by the
 * main thread; a thread's own exec pipes are closed before it reports.
 */
static void
thread_terminate(struct dx_server *srv, int sig)
{
	struct thread_state *st = srv->model_state;

	for (size_t i = 0; i < st->cap; i++) {
		struct tslot *t = &st->slot[i];
		pid_t pid = atomic_load(&t->pid);

		if (!t->used || !atomic_load(&t->running))
			continue;
		if (pid > 0)
			kill(-pid, sig);
		if (sig == SIGKILL || pid <= 0)
			shutdown(t->fd, SHUT_RDWR);
	}
}

const struct dx_model dx__model_thread = {
        .name = "thread",
        .start = thread_start,
        .serve = thread_serve,
        .event = thread_event,
        .active = thread_active,
        .terminate = thread_terminate,
        .free = thread_free,
};
