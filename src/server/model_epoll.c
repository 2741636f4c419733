/* SPDX-License-Identifier: MIT */
/*
 * model_epoll.c - the event-driven concurrent server: one thread, one
 * epoll set (the server's own), every connection a non-blocking state
 * machine (conn.c) driven from readiness, level-triggered. Per-connection
 * state is one slot in a table indexed by descriptor, allocated once and
 * touched only as descriptors are used; output buffers come from a pool
 * and are held only while output is queued, so an idle connection costs
 * its slot and the kernel's socket, nothing more. Timeouts are found by a
 * sweep ten times a second. exec: runs the program with the socket as its
 * standard input and output and watches it through a pidfd; when it
 * exits, the socket is half-closed and drained like any other. This is
 * one reactor: "--model epoll" runs one per CPU (reactors.c), each in a
 * thread of its own with its own copy of the server and of this state.
 */
#include "server/server.h"
#include "child.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#define SWEEP_MS 100
/* The tag of a connection's socket is DX_MODEL_TAG + fd; of its exec
 * program's pidfd, PIDFD_TAG + the socket's fd. */
#define PIDFD_TAG (DX_MODEL_TAG << 1)

struct slot {
	struct dx_conn c; /* its peer gives the source key (admission's) */
	uint32_t events;  /* registered with epoll; 0 while exec runs */
	int pidfd;        /* exec: the program's pidfd, else -1 */
	pid_t pid;
	uint8_t used;
};

struct epoll_state {
	struct slot *slot; /* indexed by descriptor */
	size_t cap, active;
	int64_t next_sweep;
	struct dx_bufpool pool;
	uint8_t scratch[65536];
};

static int
epoll_start(struct dx_server *srv)
{
	struct epoll_state *st = calloc(1, sizeof(*st));
	struct rlimit rl;

	if (st == NULL)
		return -ENOMEM;
	/* One slot per possible descriptor: calloc'd pages stay untouched
	 * (and cost nothing) until a descriptor that high is used. */
	st->cap = getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
	                          rl.rlim_cur != RLIM_INFINITY
	                  ? (size_t)rl.rlim_cur
	                  : 65536;
	st->slot = calloc(st->cap, sizeof(*st->slot));
	st->pool.max_free = 256;
	srv->model_state = st;
	return st->slot ? 0 : -ENOMEM;
}

static void
epoll_free(struct dx_server *srv)
{
	struct epoll_state *st = srv->model_state;

	if (st == NULL)
		return;
	dx__pool_drain(&st->pool);
	free(st->slot);
	free(st);
	srv->model_state = NULL;
}

/* Registers, changes or keeps FD's epoll events to match the connection. */
static int
update_events(struct dx_server *srv, struct slot *s)
{
	uint32_t want = (uint32_t)dx__conn_events(&s->c);
	struct epoll_event ev = {.events = want,
	                         .data.u64 = DX_MODEL_TAG + (uint64_t)s->c.fd};
	int op = s->events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;

	if (want == s->events)
		return 0;
	if (epoll_ctl(srv->epfd, op, s->c.fd, &ev) < 0)
		return dx__neg_errno();
	s->events = want;
	return 0;
}

/* Ends the connection in S: closes it, ends its program, accounts. */
static void
close_slot(struct dx_server *srv, struct slot *s, int end)
{
	struct epoll_state *st = srv->model_state;
	uint8_t key[16];

	dx__stream_log_end(srv, &s->c, end);
	if (s->pidfd >= 0) {
		kill(-s->pid, SIGKILL);
		/* Waited for, not polled: SIGKILL ends it at once, and a
		 * WNOHANG here would leave a zombie this model never reaps. */
		while (waitid(P_PIDFD, (id_t)s->pidfd, &(siginfo_t){0},
		              WEXITED) < 0 &&
		       errno == EINTR)
			;
		close(s->pidfd);
	}
	dx__conn_finish(&s->c);
	dx__conn_source_key(&s->c, key);
	memset(s, 0, sizeof(*s));
	st->active--;
	dx__stream_released(srv, key);
}

/* Starts exec:PROGRAM on the connection in S. */
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
	                   dx__stream_source_count(srv, key));
	if (err == 0)
		err = dx__set_nonblock(s->c.fd, 0);
	if (err == 0)
		err = dx__spawn(l->conf.argv, env.vars,
		                (int[3]){s->c.fd, s->c.fd, 2}, 1,
		                &l->conf.rlimits, &s->pid);
	if (err == 0) {
		int pidfd = dx__pidfd_open(s->pid);
		err = pidfd < 0 ? pidfd : 0;
		if (err < 0) { /* unwatched, it must not run on */
			kill(-s->pid, SIGKILL);
			waitpid(s->pid, NULL, 0);
		} else {
			s->pidfd = pidfd;
		}
	}
	ev.data.u64 = PIDFD_TAG + (uint64_t)s->c.fd;
	if (err == 0 && epoll_ctl(srv->epfd, EPOLL_CTL_ADD, s->pidfd, &ev) < 0)
		err = dx__neg_errno();
	return err;
}

static void
epoll_serve(struct dx_server *srv, struct dx_listener *l, int fd,
            const struct dx_addr *peer)
{
	struct epoll_state *st = srv->model_state;
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
	dx__conn_init(&s->c, fd, peer, &l->conf, &st->pool, srv->now_ms);
	s->pidfd = -1;
	s->used = 1;
	st->active++;
	srv->served[l - srv->ls]++;
	if (l->conf.svc->flags & DX_SVC_EXEC)
		end = start_exec(srv, l, s, peer) < 0 ? DX_END_ERROR
		                                      : DX_END_NONE;
	else
		end = dx__conn_open(&s->c, srv->now_ms);
	/* A client that speaks first (echo, discard, most protocols) has
	 * usually sent by the time it is accepted: read now rather than be
	 * told so by the next epoll_wait. One read is lost on a client that
	 * has not (it returns EAGAIN); under connrate load the server's
	 * epoll_wait calls fell from one per 4 connections to one per 30. */
	if (end == DX_END_NONE && s->pidfd < 0 &&
	    dx__conn_events(&s->c) == POLLIN)
		end = dx__conn_ready(&s->c, POLLIN, st->scratch,
		                     sizeof(st->scratch), srv->now_ms);
	if (end == DX_END_NONE && s->pidfd < 0 && update_events(srv, s) < 0)
		end = DX_END_ERROR;
	if (end != DX_END_NONE)
		close_slot(srv, s, end);
}

/* The exec program of the connection in S exited: drain and close. */
static void
exec_exited(struct dx_server *srv, struct slot *s)
{
	siginfo_t si;
	int end;

	memset(&si, 0, sizeof(si));
	if (waitid(P_PIDFD, (id_t)s->pidfd, &si, WEXITED | WNOHANG) == 0 &&
	    si.si_pid == 0)
		return; /* still running: a stale event (see epoll_event) */
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
	end = dx__conn_end_output(&s->c, dx_now_ms());
	if (end == DX_END_NONE && update_events(srv, s) < 0)
		end = DX_END_ERROR;
	if (end != DX_END_NONE)
		close_slot(srv, s, end);
}

static void
epoll_event(struct dx_server *srv, uint64_t tag, uint32_t events)
{
	struct epoll_state *st = srv->model_state;
	struct slot *s;
	int end;

	if (tag >= PIDFD_TAG) {
		s = &st->slot[tag - PIDFD_TAG];
		if (s->used && s->pidfd >= 0)
			exec_exited(srv, s);
		return;
	}
	s = &st->slot[tag - DX_MODEL_TAG];
	/*
	 * While its program runs, the socket is not watched (and blocks):
	 * an event for it, like an event for a pidfd whose program still
	 * runs, is stale. A descriptor closed while a child that another
	 * thread is spawning still holds its copy (until that child's exec)
	 * stays registered that long, and its number may be reused at once.
	 */
	if (!s->used || s->pidfd >= 0)
		return;
	end = dx__conn_ready(&s->c, (short)events, st->scratch,
	                     sizeof(st->scratch), srv->now_ms);
	if (end == DX_END_NONE && update_events(srv, s) < 0)
		end = DX_END_ERROR;
	if (end != DX_END_NONE)
		close_slot(srv, s, end);
}

/* Ends every connection whose time limit has passed. */
static int64_t
epoll_tick(struct dx_server *srv, int64_t now)
{
	struct epoll_state *st = srv->model_state;
	size_t seen = 0, live = st->active; /* close_slot() lowers active */

	if (st->active == 0)
		return DX_FOREVER;
	if (now < st->next_sweep)
		return st->next_sweep;
	for (size_t fd = 0; fd < st->cap && seen < live; fd++) {
		struct slot *s = &st->slot[fd];
		int end;
		if (!s->used)
			continue;
		seen++;
		end = s->pidfd >= 0
		              ? DX_END_NONE
		              : dx__conn_expired(&s->c, &srv->limits, now);
		if (s->pidfd >= 0 && srv->limits.lifetime_ms > 0 &&
		    now >= s->c.started_ms + srv->limits.lifetime_ms)
			end = DX_END_LIFETIME;
		if (end != DX_END_NONE)
			close_slot(srv, s, end);
	}
	st->next_sweep = now + SWEEP_MS;
	return st->next_sweep;
}

static size_t
epoll_active(const struct dx_server *srv)
{
	const struct epoll_state *st = srv->model_state;

	return st ? st->active : 0;
}

/* SIGTERM asks exec programs to end and closes the rest; SIGKILL ends all. */
static void
epoll_terminate(struct dx_server *srv, int sig)
{
	struct epoll_state *st = srv->model_state;

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

const struct dx_model dx__model_epoll = {
        .name = "epoll",
        .start = epoll_start,
        .serve = epoll_serve,
        .event = epoll_event,
        .tick = epoll_tick,
        .active = epoll_active,
        .terminate = epoll_terminate,
        .free = epoll_free,
};
