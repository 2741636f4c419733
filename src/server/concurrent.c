/* SPDX-License-Identifier: MIT */
/*
 * concurrent.c - the connection-oriented concurrent server (the seed's
 * second design), the part every model shares: accepting, admission and
 * accounting. accept() errors are routine and never stop the server; an
 * out-of-descriptors error sheds the waiting connection through a reserved
 * descriptor instead of spinning on a listener that stays readable. A
 * client is checked against the access rules and its source's limit
 * before any model spends a process or thread on it. --max-conns and
 * --rate defer: the listener is left unwatched, so clients wait in the
 * kernel's backlog, as tcpserver does; the listener is never closed.
 */
#include "server/server.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/wait.h>
#include <unistd.h>

/* How many connections one readiness event may accept. */
#define ACCEPT_BURST 32

extern const struct dx_model dx__model_fork;
extern const struct dx_model dx__model_epoll;
extern const struct dx_model dx__model_thread;
extern const struct dx_model dx__model_prefork;
extern const struct dx_model dx__model_uring;

static const struct dx_model *const models[] = {
        &dx__model_fork,  &dx__model_prefork, &dx__model_thread,
        &dx__model_epoll, &dx__model_uring,
};

const struct dx_model *
dx__model_find(const char *name)
{
	for (size_t i = 0; i < DX_ARRAY_LEN(models); i++)
		if (strcmp(models[i]->name, name) == 0)
			return models[i];
	return NULL;
}

const char *
dx__model_names(void)
{
	static char names[64];

	if (names[0] == '\0')
		for (size_t i = 0; i < DX_ARRAY_LEN(models); i++)
			snprintf(names + strlen(names),
			         sizeof(names) - strlen(names), "%s%s",
			         i ? " " : "", models[i]->name);
	return names;
}

static const char *const refuse_names[DX_REFUSE_COUNT] = {
        [DX_REFUSE_DENIED] = "denied",
        [DX_REFUSE_PER_SOURCE] = "per-source-limit",
        [DX_REFUSE_FDS] = "out-of-descriptors",
        [DX_REFUSE_FORK] = "cannot-start",
        [DX_DEFER_MAX_CONNS] = "max-conns-deferred",
        [DX_DEFER_RATE] = "rate-deferred",
};

const char *
dx__refuse_name(enum dx_refuse r)
{
	return r < DX_REFUSE_COUNT ? refuse_names[r] : "unknown";
}

int
dx__stream_open(struct dx_server *srv)
{
	size_t cap = srv->max_conns ? 2 * srv->max_conns : 16384;

	srv->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (srv->reserve_fd < 0)
		return dx__neg_errno();
	/* Kept even without --per-source: exec's TCPCONNNUM comes from it. */
	srv->sources.slots = calloc(cap, sizeof(*srv->sources.slots));
	if (srv->sources.slots == NULL)
		return -ENOMEM;
	srv->sources.cap = cap;
	srv->src = &srv->sources;
	srv->rate_tokens = srv->rate;
	srv->rate_ms = dx_now_ms();
	return srv->model->start ? srv->model->start(srv) : 0;
}

void
dx__stream_free(struct dx_server *srv)
{
	if (srv->model && srv->model->free)
		srv->model->free(srv);
	free(srv->sources.slots);
	srv->sources.slots = NULL;
	if (srv->reserve_fd > 0)
		close(srv->reserve_fd);
	srv->reserve_fd = -1;
}

/* Counts a refusal, and logs it at most once a second per reason. */
static void
refuse(struct dx_server *srv, enum dx_refuse why, const struct dx_addr *peer)
{
	char who[DX_ADDRSTRLEN] = "";
	int64_t now = dx_now_ms();

	srv->refused[why]++;
	if (now - srv->refuse_logged_ms[why] < 1000 &&
	    srv->verbosity < DX_LOG_DEBUG)
		return;
	srv->refuse_logged_ms[why] = now;
	if (peer != NULL)
		dx_addr_format(peer, who, sizeof(who));
	dx__log(srv, DX_LOG_INFO, "%s%s%s (%llu so far)", dx__refuse_name(why),
	        peer ? ": " : "", who, (unsigned long long)srv->refused[why]);
}

/* Stops or restarts watching the stream listeners. */
uint32_t
dx__listener_events(const struct dx_server *srv)
{
	/* Worker processes sharing a listener: wake one, not all. */
	return EPOLLIN | (srv->exclusive ? EPOLLEXCLUSIVE : 0);
}

/*
 * Stops or restarts watching the stream listeners. Removed and added
 * again rather than modified: EPOLLEXCLUSIVE allows no EPOLL_CTL_MOD.
 */
static void
set_paused(struct dx_server *srv, int paused)
{
	if (srv->stream_elsewhere)
		return;
	for (size_t i = 0; i < srv->nls; i++) {
		struct dx_listener *l = &srv->ls[i];
		struct epoll_event ev = {.events = dx__listener_events(srv),
		                         .data.u64 = i};

		if (l->fd < 0 || l->paused == paused ||
		    dx_scheme_socktype(l->ep.scheme) != SOCK_STREAM)
			continue;
		epoll_ctl(srv->epfd, paused ? EPOLL_CTL_DEL : EPOLL_CTL_ADD,
		          l->fd, &ev);
		l->paused = paused;
	}
}

/* Refills the rate bucket; returns 1 when a token could be taken. */
static int
take_rate_token(struct dx_server *srv, int64_t now)
{
	if (srv->rate <= 0)
		return 1;
	srv->rate_tokens += srv->rate * (double)(now - srv->rate_ms) / 1000.0;
	if (srv->rate_tokens > srv->rate)
		srv->rate_tokens = srv->rate;
	srv->rate_ms = now;
	if (srv->rate_tokens < 1.0)
		return 0;
	srv->rate_tokens -= 1.0;
	return 1;
}

/* 1 when limits let another connection in now; pauses accepting if not. */
static int
may_accept(struct dx_server *srv)
{
	int64_t now = dx_now_ms();

	if (srv->stop)
		return 0;
	if (srv->max_conns && srv->src->total >= srv->max_conns) {
		refuse(srv, DX_DEFER_MAX_CONNS, NULL);
		set_paused(srv, 1);
		return 0;
	}
	if (!take_rate_token(srv, now)) {
		refuse(srv, DX_DEFER_RATE, NULL);
		srv->resume_ms = now + (int64_t)(1000.0 / srv->rate) + 1;
		set_paused(srv, 1);
		return 0;
	}
	return 1;
}

/* Out of descriptors: frees the reserve to accept and close one client. */
static void
shed(struct dx_server *srv, struct dx_listener *l)
{
	int fd;

	refuse(srv, DX_REFUSE_FDS, NULL);
	if (srv->reserve_fd >= 0)
		close(srv->reserve_fd);
	fd = dx_accept(l->fd, NULL);
	if (fd >= 0)
		dx_close(fd);
	srv->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

/* Rules and per-source limit; returns 1 and counts the source if in. */
static int
admit(struct dx_server *srv, int fd, const struct dx_addr *peer,
      uint8_t key[16])
{
	struct ucred cred, *credp = NULL;
	socklen_t len = sizeof(cred);
	int allowed = 1;

	if (peer->u.sa.sa_family == AF_UNIX &&
	    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0)
		credp = &cred;
	if (srv->rules.n > 0)
		dx__rules_check(&srv->rules, peer, credp, &allowed);
	if (!allowed) {
		refuse(srv, DX_REFUSE_DENIED, peer);
		return 0;
	}
	dx__source_key(peer, key);
	switch (dx__sources_admit(
	        srv->src, key,
	        peer->u.sa.sa_family == AF_UNIX ? 0 : srv->per_source,
	        srv->max_conns)) {
	case DX_ADMIT_PER_SOURCE:
		refuse(srv, DX_REFUSE_PER_SOURCE, peer);
		return 0;
	case DX_ADMIT_MAX: /* another worker took the last place */
		refuse(srv, DX_DEFER_MAX_CONNS, peer);
		return 0;
	}
	if (srv->ledger != NULL)
		dx__sources_add(srv->ledger, key);
	return 1;
}

void
dx__stream_accept(struct dx_server *srv, struct dx_listener *l)
{
	struct dx_addr peer;
	uint8_t key[16];
	int fd;

	for (int i = 0; i < ACCEPT_BURST && may_accept(srv); i++) {
		fd = dx_accept(l->fd, &peer);
		if (fd == -EAGAIN)
			return;
		if (fd == -EMFILE || fd == -ENFILE || fd == -ENOBUFS ||
		    fd == -ENOMEM) {
			shed(srv, l);
			return;
		}
		if (fd < 0) /* ECONNABORTED, EPROTO, EPERM, network errors */
			continue;
		dx_addr_unmap(&peer);
		if (!admit(srv, fd, &peer, key)) {
			dx_close(fd);
			continue;
		}
		srv->accepted++;
		srv->model->serve(srv, l, fd, &peer);
	}
}

/* Watches the listeners again once no limit defers accepting. */
static void
maybe_resume(struct dx_server *srv)
{
	if (!srv->stop && srv->resume_ms == 0 &&
	    (!srv->max_conns || srv->src->total < srv->max_conns))
		set_paused(srv, 0);
}

void
dx__stream_released(struct dx_server *srv, const uint8_t key[16])
{
	dx__sources_release(srv->src, key);
	if (srv->ledger != NULL)
		dx__sources_remove(srv->ledger, key);
	maybe_resume(srv);
}

int64_t
dx__stream_tick(struct dx_server *srv, int64_t now)
{
	int64_t next =
	        srv->model->tick ? srv->model->tick(srv, now) : DX_FOREVER;

	if (srv->resume_ms && now >= srv->resume_ms) {
		srv->resume_ms = 0;
		maybe_resume(srv);
	}
	if (srv->resume_ms && srv->resume_ms < next)
		next = srv->resume_ms;
	if (srv->stop && srv->stop_deadline && now >= srv->stop_deadline) {
		/* First ask (SIGTERM), a second later insist (SIGKILL). */
		int sig = srv->stop_signal ? SIGKILL : SIGTERM;
		dx__log(srv, DX_LOG_WARN, "drain time over: %s %zu connections",
		        sig == SIGTERM ? "ending" : "killing",
		        srv->model->active(srv));
		srv->model->terminate(srv, sig);
		srv->stop_signal = sig;
		srv->stop_deadline = sig == SIGTERM ? now + 1000 : 0;
	}
	if (srv->stop && srv->stop_deadline && srv->stop_deadline < next)
		next = srv->stop_deadline;
	return next;
}

void
dx__stream_stop(struct dx_server *srv)
{
	set_paused(srv, 1);
	if (srv->model->stop != NULL)
		srv->model->stop(srv);
	if (srv->model->active(srv) == 0)
		return;
	dx__log(srv, DX_LOG_INFO, "waiting up to %lld ms for %zu connections",
	        (long long)srv->drain_ms, srv->model->active(srv));
	srv->stop_deadline = dx_now_ms() + srv->drain_ms;
}

void
dx__stream_reap(struct dx_server *srv)
{
	int status;
	pid_t pid;

	/* Models that reap their own children (through pidfds) opt out. */
	if (srv->model == NULL || srv->model->child_exited == NULL)
		return;
	/* One SIGCHLD may stand for many exits: reap until none is left. */
	for (;;) {
		pid = waitpid(-1, &status, WNOHANG);
		if (pid < 0 && errno == EINTR)
			continue;
		if (pid <= 0)
			return;
		srv->model->child_exited(srv, pid, status);
	}
}
