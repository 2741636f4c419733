/* SPDX-License-Identifier: MIT */
/*
 * model_prefork.c - N worker processes (default: one per CPU), forked
 * after the listeners are bound, each running the epoll model on the same
 * listening sockets (EPOLLEXCLUSIVE wakes one worker per connection).
 * Because the listener is shared, a worker that dies loses no queued
 * connection: they wait in the one accept queue for the others. The
 * master serves the datagram listeners, replaces a dead worker at once (a
 * worker that dies within a second of starting is replaced a second after
 * it started, so a crash loop cannot spin), and stops them on SIGTERM.
 *
 * The limits stay exact across workers: the live-connection table (per
 * source, and the total that --max-conns bounds) lives in shared memory
 * under a robust process-shared mutex, and each worker keeps a ledger of
 * what it holds there, so the master can give back a dead worker's share.
 * The workers count what they serve in the same region, and the master
 * logs those counts as its own.
 */
#include "server/server.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_WORKERS    64
#define RESPAWN_MIN_MS 1000
/*
 * After the drain time, a worker ends its own connections: SIGTERM to
 * their programs, then SIGKILL a second later, as every model does. The
 * master kills a worker only this long after that, for a worker that
 * hangs: killed first, a worker would leave its programs running.
 */
#define KILL_GRACE_MS 1000

extern const struct dx_model dx__model_epoll;

/* The shared region: the mutex, the tables' headers, then their slots. */
struct shared {
	pthread_mutex_t lock;
	struct dx_sources global;
	struct dx_sources ledger[MAX_WORKERS];
	_Atomic uint64_t served[DX_MAX_LISTENERS]; /* by all workers */
	/* Each worker's own counters, as it last published them. */
	struct worker_counts {
		_Atomic uint64_t accepted, refused[DX_REFUSE_COUNT];
	} counts[MAX_WORKERS];
};

struct worker {
	pid_t pid;        /* 0 while waiting to be respawned */
	int64_t start_ms; /* when it was (or will be) started */
};

struct prefork_state {
	struct shared *shm;
	size_t shm_len, n;
	int64_t kill_at; /* stopping: when to SIGKILL workers still left */
	struct worker w[MAX_WORKERS];
	/* What workers that have ended counted, before their slots were
	 * cleared for their replacements. */
	uint64_t gone_accepted, gone_refused[DX_REFUSE_COUNT];
};

/* In a worker process only: the shared served counters, and its own. */
static _Atomic uint64_t *worker_served;
static struct worker_counts *worker_counts;
/* In a worker process only: the epoll model, counting into the above. */
static struct dx_model worker_model;

/* Maps the shared tables: the global one sized like a process's own. */
static struct shared *
map_shared(size_t cap, size_t n, size_t *len)
{
	size_t slots = cap * (1 + n);
	struct shared *shm;
	pthread_mutexattr_t a;

	*len = sizeof(*shm) + slots * sizeof(struct dx_source_slot);
	shm = mmap(NULL, *len, PROT_READ | PROT_WRITE,
	           MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (shm == MAP_FAILED)
		return NULL;
	pthread_mutexattr_init(&a);
	pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
	pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
	pthread_mutex_init(&shm->lock, &a);
	pthread_mutexattr_destroy(&a);
	shm->global.slots = (struct dx_source_slot *)(shm + 1);
	shm->global.cap = cap;
	shm->global.lock = &shm->lock;
	/* Drawn here, before any worker is forked: all hash alike. */
	dx__hash_key_new(&shm->global.hkey);
	for (size_t i = 0; i < n; i++) {
		shm->ledger[i].slots = shm->global.slots + cap * (i + 1);
		shm->ledger[i].cap = cap;
		shm->ledger[i].hkey = shm->global.hkey;
	}
	return shm;
}

/* A worker's serve: the epoll model's, counted where the master sees it. */
static void
worker_serve(struct dx_server *srv, struct dx_listener *l, int fd,
             const struct dx_addr *peer)
{
	size_t i = (size_t)(l - srv->ls);
	uint64_t before = srv->served[i];

	dx__model_epoll.serve(srv, l, fd, peer);
	if (srv->served[i] != before)
		atomic_fetch_add(&worker_served[i], srv->served[i] - before);
}

/* A worker's counters, where its master sums them (SIGUSR1, exit). */
static void
publish(const struct dx_server *srv)
{
	atomic_store(&worker_counts->accepted, srv->accepted);
	for (int r = 0; r < DX_REFUSE_COUNT; r++)
		atomic_store(&worker_counts->refused[r], srv->refused[r]);
}

/* A worker's tick: the epoll model's, and its counters published. */
static int64_t
worker_tick(struct dx_server *srv, int64_t now)
{
	publish(srv);
	return dx__model_epoll.tick(srv, now);
}

/*
 * A worker that stops (SIGTERM from its master, or its master died) will
 * accept no more: it closes its copies of the listeners at once, so that
 * once the master's are gone too (a master killed) the address is free for
 * a new server while this worker drains.
 */
static void
worker_stop(struct dx_server *srv)
{
	for (size_t k = 0; k < srv->nls; k++) {
		if (srv->ls[k].fd < 0)
			continue;
		epoll_ctl(srv->epfd, EPOLL_CTL_DEL, srv->ls[k].fd, NULL);
		close(srv->ls[k].fd);
		srv->ls[k].fd = -1;
	}
	if (dx__model_epoll.stop != NULL)
		dx__model_epoll.stop(srv);
}

/* The worker's side: the epoll model on the shared stream listeners. */
static void __attribute__((noreturn))
worker_main(struct dx_server *srv, struct prefork_state *st, size_t i,
            pid_t master)
{
	int err;

	/* A worker does not outlive its master, even one that died before
	 * the worker could ask to be told. */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() != master)
		_exit(1);
	for (size_t k = 0; k < srv->nls; k++)
		if (dx_scheme_socktype(srv->ls[k].ep.scheme) == SOCK_DGRAM &&
		    srv->ls[k].fd >= 0) {
			close(srv->ls[k].fd);
			srv->ls[k].fd = -1;
		}
	close(srv->epfd);
	srv->epfd = epoll_create1(EPOLL_CLOEXEC);
	worker_model = dx__model_epoll;
	worker_model.serve = worker_serve;
	worker_model.stop = worker_stop;
	worker_model.tick = worker_tick;
	worker_served = st->shm->served;
	worker_counts = &st->shm->counts[i];
	memset(worker_counts, 0, sizeof(*worker_counts));
	srv->model = &worker_model;
	srv->model_state = NULL;
	srv->src = &st->shm->global;
	srv->ledger = &st->shm->ledger[i];
	srv->stream_elsewhere = 0;
	srv->exclusive = 1;
	/* EPOLLEXCLUSIVE wakes the worker that waits first: the share rule
	 * (concurrent.c) spreads connections as it does over reactors. */
	srv->loops = st->n;
	srv->accepted = 0;
	srv->refused = srv->refused_own;
	for (int r = 0; r < DX_REFUSE_COUNT; r++)
		srv->refused[r] = 0;
	err = srv->epfd < 0 ? -errno : dx__model_epoll.start(srv);
	if (err == 0)
		err = dx__server_run(srv);
	publish(srv);
	if (err < 0)
		dx__log(srv, DX_LOG_ERROR, "worker %zu: %s", i,
		        dx_strerror(err));
	_exit(err < 0 ? 1 : 0);
}

/*
 * Starts worker I now. When the fork fails (EAGAIN at a process limit,
 * ENOMEM), says so and has the tick try again RESPAWN_MIN_MS later: the
 * other workers serve meanwhile.
 */
static int
spawn_worker(struct dx_server *srv, struct prefork_state *st, size_t i)
{
	pid_t master = getpid(), pid = fork();
	int err;

	if (pid == 0)
		worker_main(srv, st, i, master);
	if (pid < 0) {
		err = dx__neg_errno();
		st->w[i].start_ms = dx_now_ms() + RESPAWN_MIN_MS;
		dx__log(srv, DX_LOG_WARN,
		        "cannot start worker %zu: %s; trying again in %d ms", i,
		        dx_strerror(err), RESPAWN_MIN_MS);
		return err;
	}
	dx_trace("fork() = worker %d", (int)pid);
	st->w[i].pid = pid;
	st->w[i].start_ms = dx_now_ms();
	return 0;
}

static int
prefork_start(struct dx_server *srv)
{
	struct prefork_state *st = calloc(1, sizeof(*st));

	if (st == NULL)
		return -ENOMEM;
	srv->model_state = st;
	st->n = dx__loop_count(srv, MAX_WORKERS);
	st->shm = map_shared(srv->sources.cap, st->n, &st->shm_len);
	if (st->shm == NULL)
		return -ENOMEM;
	srv->src = &st->shm->global;
	srv->stream_elsewhere = 1;
	/*
	 * Not forked here: the server has not dropped its privileges yet
	 * (--user), and a worker must not keep them. The first tick of the
	 * main loop, which runs after the drop, starts every worker.
	 */
	for (size_t i = 0; i < st->n; i++)
		st->w[i].start_ms = dx_now_ms();
	return 0;
}

/* Gives back a dead worker's connections to the shared table. */
static void
settle_ledger(struct dx_sources *global, struct dx_sources *ledger)
{
	dx__sources_lock(global);
	for (size_t k = 0; k < ledger->cap; k++) {
		struct dx_source_slot *s = &ledger->slots[k];
		if (s->count == 0)
			continue;
		dx__sources_sub(global, s->key, s->count);
		global->total -=
		        s->count < global->total ? s->count : global->total;
		s->count = 0;
	}
	dx__sources_unlock(global);
}

/* Worker I has ended: what it counted stays counted, its slot is freed. */
static void
keep_counts(struct prefork_state *st, size_t i)
{
	struct worker_counts *c = &st->shm->counts[i];

	st->gone_accepted += atomic_exchange(&c->accepted, 0);
	for (int r = 0; r < DX_REFUSE_COUNT; r++)
		st->gone_refused[r] += atomic_exchange(&c->refused[r], 0);
}

static void
prefork_child_exited(struct dx_server *srv, pid_t pid, int status)
{
	struct prefork_state *st = srv->model_state;

	for (size_t i = 0; i < st->n; i++) {
		if (st->w[i].pid != pid)
			continue;
		st->w[i].pid = 0;
		settle_ledger(&st->shm->global, &st->shm->ledger[i]);
		keep_counts(st, i);
		if (srv->stop)
			return;
		dx__log(srv, DX_LOG_WARN, "worker %d %s %d; replacing it",
		        (int)pid,
		        WIFSIGNALED(status) ? "killed by signal" : "exited",
		        WIFSIGNALED(status) ? WTERMSIG(status)
		                            : WEXITSTATUS(status));
		if (dx_now_ms() >= st->w[i].start_ms + RESPAWN_MIN_MS)
			(void)spawn_worker(srv, st, i);
		else
			st->w[i].start_ms += RESPAWN_MIN_MS;
		return;
	}
}

/*
 * Respawns workers whose crash-loop delay is over; stopping, kills the
 * workers left at the kill time. Returns the next deadline.
 */
static int64_t
prefork_tick(struct dx_server *srv, int64_t now)
{
	struct prefork_state *st = srv->model_state;
	int64_t next = st->kill_at ? st->kill_at : DX_FOREVER;

	if (st->kill_at && now >= st->kill_at) {
		dx__log(srv, DX_LOG_WARN, "killing %zu workers still draining",
		        srv->model->active(srv));
		for (size_t i = 0; i < st->n; i++)
			if (st->w[i].pid > 0)
				kill(st->w[i].pid, SIGKILL);
		st->kill_at = 0;
		next = DX_FOREVER;
	}
	for (size_t i = 0; i < st->n && !srv->stop; i++) {
		if (st->w[i].pid != 0)
			continue;
		if (now >= st->w[i].start_ms)
			(void)spawn_worker(srv, st, i);
		if (st->w[i].pid == 0 && st->w[i].start_ms < next)
			next = st->w[i].start_ms;
	}
	return next;
}

/* The master's units are its workers; connections live in them. */
static size_t
prefork_active(const struct dx_server *srv)
{
	const struct prefork_state *st = srv->model_state;
	size_t live = 0;

	for (size_t i = 0; st != NULL && i < st->n; i++)
		live += st->w[i].pid > 0;
	return live;
}

/*
 * SIGTERM goes to the workers at once; SIGKILL only after KILL_GRACE_MS
 * (see there), from prefork_tick.
 */
static void
prefork_terminate(struct dx_server *srv, int sig)
{
	struct prefork_state *st = srv->model_state;

	if (sig == SIGKILL) {
		if (st->kill_at == 0)
			st->kill_at = dx_now_ms() + KILL_GRACE_MS;
		return;
	}
	for (size_t i = 0; i < st->n; i++)
		if (st->w[i].pid > 0)
			kill(st->w[i].pid, sig);
}

/* The stream counters are the workers': served, accepted, refused. */
static void
prefork_counters(struct dx_server *srv)
{
	struct prefork_state *st = srv->model_state;

	if (st == NULL)
		return;
	for (size_t i = 0; i < srv->nls; i++)
		if (dx_scheme_socktype(srv->ls[i].ep.scheme) == SOCK_STREAM)
			srv->served[i] = atomic_load(&st->shm->served[i]);
	/* The master accepts nothing: the counts are the workers' (those
	 * running as of their last tick, and those that have ended). */
	srv->accepted = st->gone_accepted;
	for (int r = 0; r < DX_REFUSE_COUNT; r++)
		srv->refused[r] = st->gone_refused[r];
	for (size_t k = 0; k < st->n; k++) {
		struct worker_counts *c = &st->shm->counts[k];
		srv->accepted += atomic_load(&c->accepted);
		for (int r = 0; r < DX_REFUSE_COUNT; r++)
			srv->refused[r] += atomic_load(&c->refused[r]);
	}
}

/* SIGTERM: each worker stops accepting and drains on its own. */
static void
prefork_stop(struct dx_server *srv)
{
	prefork_terminate(srv, SIGTERM);
}

/* SIGHUP: each worker reads the rules file again for itself. */
static void
prefork_reload(struct dx_server *srv)
{
	struct prefork_state *st = srv->model_state;

	for (size_t i = 0; i < st->n; i++)
		if (st->w[i].pid > 0)
			kill(st->w[i].pid, SIGHUP);
}

static void
prefork_free(struct dx_server *srv)
{
	struct prefork_state *st = srv->model_state;

	if (st == NULL)
		return;
	if (st->shm != NULL)
		munmap(st->shm, st->shm_len);
	srv->src = &srv->sources;
	free(st);
	srv->model_state = NULL;
}

const struct dx_model dx__model_prefork = {
        .name = "prefork",
        .start = prefork_start,
        .serve = dx__serve_elsewhere,
        .child_exited = prefork_child_exited,
        .tick = prefork_tick,
        .active = prefork_active,
        .stop = prefork_stop,
        .reload = prefork_reload,
        .terminate = prefork_terminate,
        .counters = prefork_counters,
        .free = prefork_free,
};
