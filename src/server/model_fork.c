/* SPDX-License-Identifier: MIT */
/*
 * model_fork.c - the seed's concurrent server: a child process per
 * connection. The parent accepts, forks and closes its copy of the
 * connection; the child serves it and exits. Children are accounted in a
 * table keyed by pid: the live count is the table's size, entries leave
 * it only when waitpid() reports the child, so the count cannot drift
 * and no child is left a zombie. Each child leads a process group; when
 * it is reaped, anything left in its group (an exec'd program's
 * background jobs) is killed.
 */
#include "server/server.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

struct fork_child {
	pid_t pid;
	uint8_t key[16];
};

/*
 * The child table is the parent's alone, and the parent writes it at
 * every fork: memory a child shared would be copied for the parent's
 * next write and the copy left to the child, about a page per child. So
 * the whole state is one mapping marked MADV_WIPEONFORK: a child gets
 * none of it (it reads zeros, and never looks), and it grows by mremap(),
 * which keeps the advice.
 */
struct fork_state {
	size_t n, cap;
	struct fork_child child[];
};

static size_t
state_len(size_t cap)
{
	return sizeof(struct fork_state) + cap * sizeof(struct fork_child);
}

/* Maps a state for CAP children, or grows OLD to it; NULL if it can't. */
static struct fork_state *
map_state(struct fork_state *old, size_t cap)
{
	void *p = old == NULL
	                  ? mmap(NULL, state_len(cap), PROT_READ | PROT_WRITE,
	                         MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
	                  : mremap(old, state_len(old->cap), state_len(cap),
	                           MREMAP_MAYMOVE);
	struct fork_state *st = p;

	if (p == MAP_FAILED)
		return NULL;
	if (old == NULL)
		(void)madvise(p, state_len(cap), MADV_WIPEONFORK); /* 4.14 */
	st->cap = cap;
	return st;
}

static int
fork_start(struct dx_server *srv)
{
	/* A page's worth at first; whole pages as it doubles. */
	size_t cap =
	        (4096 - sizeof(struct fork_state)) / sizeof(struct fork_child);

	srv->model_state = map_state(NULL, cap);
	return srv->model_state ? 0 : -ENOMEM;
}

static void
fork_free(struct dx_server *srv)
{
	struct fork_state *st = srv->model_state;

	if (st != NULL)
		munmap(st, state_len(st->cap));
	srv->model_state = NULL;
}

/* Makes room for one more child in the table; it may move. */
static int
reserve_slot(struct dx_server *srv)
{
	struct fork_state *st = srv->model_state;

	if (st->n < st->cap)
		return 0;
	st = map_state(st, 2 * st->cap);
	if (st == NULL)
		return -ENOMEM;
	srv->model_state = st;
	return 0;
}

/*
 * The child's side: drop everything of the parent's but the connection,
 * take default signals back, serve, exit with the reason it ended.
 */
static void __attribute__((noreturn))
child_main(struct dx_server *srv, struct dx_listener *l, int fd,
           const struct dx_addr *peer, uint32_t connnum)
{
	/* Static, so that the child's buffers cost only the pages the
	 * connection's bytes touch: no malloc, no heap page to copy. */
	static uint8_t scratch[65536], out[DX_CONN_BUF];
	struct dx_bufpool pool = {.own = out};
	struct dx_conn c;
	sigset_t none;
	int end;

	setpgid(0, 0);
	for (size_t i = 0; i < srv->nls; i++)
		if (srv->ls[i].fd >= 0)
			close(srv->ls[i].fd);
	close(srv->epfd);
	close(srv->sigfd);
	close(srv->reserve_fd);
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	dx__conn_init(&c, fd, peer, &l->conf, &pool, dx_now_ms());
	if (l->conf.svc->flags & DX_SVC_EXEC) {
		end = dx__exec_stream(srv, l, fd, peer, connnum, &srv->limits,
		                      0, NULL);
	} else {
		c.flags |= DX_CONN_PROCESS; /* this process serves c alone */
		end = dx__conn_run(&c, &srv->limits, scratch, sizeof(scratch));
	}
	dx__stream_log_end(srv, &c, end);
	_exit(end);
}

static void
fork_serve(struct dx_server *srv, struct dx_listener *l, int fd,
           const struct dx_addr *peer)
{
	struct fork_state *st;
	uint8_t key[16];
	uint32_t connnum;
	pid_t pid;

	dx__source_key(peer, key);
	/* Read before the fork: the child sees the table wiped. */
	connnum = dx__sources_count(srv->src, key);
	/*
	 * _Fork(), not fork(): the parent has one thread, so glibc's fork
	 * bookkeeping (atfork handlers, malloc's arena locks, its thread
	 * lists) buys nothing here and dirties pages every child would then
	 * keep a copy of.
	 */
	pid = reserve_slot(srv) == 0 ? _Fork() : -1;
	if (pid == 0)
		child_main(srv, l, fd, peer, connnum);
	dx_close(fd);
	if (pid < 0) {
		srv->refused[DX_REFUSE_FORK]++;
		dx__log(srv, DX_LOG_WARN, "%s: cannot fork: %s", l->name,
		        dx_strerror(-errno));
		dx__stream_released(srv, key);
		return;
	}
	dx_trace("fork() = child %d", (int)pid);
	st = srv->model_state;
	st->child[st->n].pid = pid;
	memcpy(st->child[st->n].key, key, 16);
	st->n++;
	srv->served[l - srv->ls]++;
}

/*
 * Logs a child killed by a signal. A child that exits has logged its
 * connection's end itself (at -v), with what only it knows: the bytes.
 */
static void
log_exit(struct dx_server *srv, pid_t pid, int status)
{
	if (WIFSIGNALED(status))
		dx__log(srv, DX_LOG_INFO, "child %d killed by signal %d",
		        (int)pid, WTERMSIG(status));
}

static void
fork_child_exited(struct dx_server *srv, pid_t pid, int status)
{
	struct fork_state *st = srv->model_state;
	uint8_t key[16];

	for (size_t i = 0; i < st->n; i++) {
		if (st->child[i].pid != pid)
			continue;
		memcpy(key, st->child[i].key, 16);
		st->child[i] = st->child[--st->n];
		/* Whatever the connection left running goes with it. */
		kill(-pid, SIGKILL);
		log_exit(srv, pid, status);
		dx__stream_released(srv, key);
		return;
	}
}

static size_t
fork_active(const struct dx_server *srv)
{
	const struct fork_state *st = srv->model_state;

	return st ? st->n : 0;
}

static void
fork_terminate(struct dx_server *srv, int sig)
{
	struct fork_state *st = srv->model_state;

	for (size_t i = 0; i < st->n; i++)
		kill(-st->child[i].pid, sig);
}

const struct dx_model dx__model_fork = {
        .name = "fork",
        .start = fork_start,
        .serve = fork_serve,
        .child_exited = fork_child_exited,
        .active = fork_active,
        .terminate = fork_terminate,
        .free = fork_free,
};
