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
#include <sched.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/wait.h>
#include <unistd.h>

/* How many connections one readiness event may accept. */
#define ACCEPT_BURST 32
/*
 * Accepting paused at --max-conns with a table shared by several loops:
 * a place freed in another loop resumes that loop only, so this one looks
 * again this often.
 */
#define SHARED_LOOK_MS 10
/* How far over its share of the connections a reactor may go. */
#define BALANCE_SLACK 2
/* Out of descriptors with none to shed with, or of memory: look again
 * after this. */
#define SHED_RETRY_MS 100

extern const struct dx_model dx__model_fork;
extern const struct dx_model dx__model_reactors;
extern const struct dx_model dx__model_thread;
extern const struct dx_model dx__model_prefork;
extern const struct dx_model dx__model_uring;

/* "epoll" is dx__model_reactors: the epoll model on every CPU. */
static const struct dx_model *const models[] = {
        &dx__model_fork,     &dx__model_prefork, &dx__model_thread,
        &dx__model_reactors, &dx__model_uring,
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
        [DX_REFUSE_FULL] = "max-conns-refused",
        [DX_DEFER_MAX_CONNS] = "max-conns-deferred",
        [DX_DEFER_RATE] = "rate-deferred",
        [DX_DEFER_MEMORY] = "memory-deferred",
};

const char *
dx__refuse_name(enum dx_refuse r)
{
	return r < DX_REFUSE_COUNT ? refuse_names[r] : "unknown";
}

void
dx__serve_elsewhere(struct dx_server *srv, struct dx_listener *l, int fd,
                    const struct dx_addr *peer)
{
	(void)srv;
	(void)l;
	(void)peer;
	dx_close(fd);
}

size_t
dx__loop_count(const struct dx_server *srv, size_t max)
{
	cpu_set_t set;
	long n = (long)srv->workers;

	if (n == 0)
		n = sched_getaffinity(0, sizeof(set), &set) == 0
		            ? CPU_COUNT(&set)
		            : sysconf(_SC_NPROCESSORS_ONLN);
	if (n < 1)
		n = 1;
	return (size_t)n > max ? max : (size_t)n;
}

int
dx__stream_open(struct dx_server *srv)
{
	size_t cap = srv->max_conns ? 2 * srv->max_conns : 16384;
	int err;

	srv->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (srv->reserve_fd < 0)
		return dx__neg_errno();
	/* Kept even without --per-source: exec's TCPCONNNUM comes from it. */
	err = dx__sources_alloc(&srv->sources, cap);
	if (err < 0)
		return err;
	srv->src = &srv->sources;
	return srv->model->start ? srv->model->start(srv) : 0;
}

void
dx__stream_free(struct dx_server *srv)
{
	if (srv->model && srv->model->free)
		srv->model->free(srv);
	dx__sources_free(&srv->sources);
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

/* The epoll events the stream listeners are watched with. */
uint32_t
dx__listener_events(const struct dx_server *srv)
{
	/* Worker processes sharing a listener: wake one, not all. */
	return EPOLLIN | (srv->exclusive ? EPOLLEXCLUSIVE : 0);
}

/*
 * Watches stream listener I, or stops, as ON says. Removed and added again
 * rather than modified: EPOLLEXCLUSIVE allows no EPOLL_CTL_MOD.
 */
static void
watch_listener(struct dx_server *srv, size_t i, int on)
{
	struct dx_listener *l = &srv->ls[i];
	struct epoll_event ev = {.events = dx__listener_events(srv),
	                         .data.u64 = i};

	/* Not in the set: the model (uring) or the reactors accept. */
	if (srv->model_accepts || srv->stream_elsewhere || l->fd < 0 ||
	    l->paused == !on || dx_scheme_socktype(l->ep.scheme) != SOCK_STREAM)
		return;
	epoll_ctl(srv->epfd, on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, l->fd, &ev);
	l->paused = !on;
}

/*
 * Stops or restarts watching the stream listeners (a listener waiting for
 * its --rate bucket stays unwatched). COUNTED: the change is already in
 * the count of reactors watching.
 */
static void
pause_listeners(struct dx_server *srv, int paused, int counted)
{
	if (srv->stream_elsewhere)
		return;
	if (srv->loops > 1 && !counted && srv->accept_paused != paused)
		atomic_fetch_add(&srv->src->watching, paused ? -1 : 1);
	srv->accept_paused = paused;
	for (size_t i = 0; i < srv->nls; i++)
		watch_listener(srv, i,
		               !paused && srv->ls[i].rate_resume_ms == 0);
}

static void
set_paused(struct dx_server *srv, int paused)
{
	pause_listeners(srv, paused, 0);
}

/*
 * Refills listener L's rate bucket; returns 1 when a token could be taken.
 * Each listener has a bucket of its own, as xinetd's cps and inetd's -R
 * are per service: a flood of one service defers its own clients, not
 * those of the others. The buckets are the shared table's, so every loop
 * and worker draws from the same one.
 */
static int
take_rate_token(struct dx_server *srv, const struct dx_listener *l, int64_t now)
{
	struct dx_rate_bucket *b = &srv->src->rate[l - srv->ls];
	int taken = 0;

	if (srv->rate <= 0)
		return 1;
	dx__sources_lock(srv->src);
	if (b->ms == 0)
		b->tokens = srv->rate;
	else
		b->tokens += srv->rate * (double)(now - b->ms) / 1000.0;
	if (b->tokens > srv->rate)
		b->tokens = srv->rate;
	b->ms = now;
	if (b->tokens >= 1.0) {
		b->tokens -= 1.0;
		taken = 1;
	}
	dx__sources_unlock(srv->src);
	return taken;
}

/* accept() found nothing: the token taken for it goes back. */
static void
give_back_token(struct dx_server *srv, const struct dx_listener *l)
{
	struct dx_rate_bucket *b = &srv->src->rate[l - srv->ls];

	if (srv->rate <= 0)
		return;
	dx__sources_lock(srv->src);
	b->tokens += 1.0;
	if (b->tokens > srv->rate)
		b->tokens = srv->rate;
	dx__sources_unlock(srv->src);
}

/*
 * The key a reserved place is counted under in a worker's ledger and the
 * shared table: no peer's (see dx__source_key), so that the master gives
 * back the places a worker that died held, as it gives back its sources.
 */
static const uint8_t reserved_key[16] = {[15] = 0xff};

/*
 * Loops that share the table (reactor threads, worker processes) reserve
 * a place before accept(), so that a client, once accepted, is never
 * refused because another loop took the last place meanwhile: it waits in
 * the backlog, as with one loop. Returns 1 when a place was reserved, 0
 * when none need be (one loop, or no --max-conns), -1 when full.
 */
static int
reserve_place(struct dx_server *srv)
{
	struct dx_sources *s = srv->src;
	int rc = 1;

	/* Refusing at the limit, the admission checks it instead: a place
	 * reserved for an accept that finds the queue empty would, for that
	 * moment, make another loop close a client it had room for. */
	if (!srv->max_conns || s->lock == NULL || srv->refuse_full)
		return 0;
	dx__sources_lock(s);
	if (s->total >= srv->max_conns ||
	    (srv->ledger != NULL && dx__sources_add(s, reserved_key) < 0))
		rc = -1;
	else
		s->total++;
	dx__sources_unlock(s);
	if (rc > 0 && srv->ledger != NULL)
		dx__sources_add(srv->ledger, reserved_key);
	return rc;
}

static void
release_place(struct dx_server *srv)
{
	dx__sources_lock(srv->src);
	if (srv->src->total > 0)
		srv->src->total--;
	if (srv->ledger != NULL)
		dx__sources_remove(srv->src, reserved_key);
	dx__sources_unlock(srv->src);
	if (srv->ledger != NULL)
		dx__sources_remove(srv->ledger, reserved_key);
}

/* --max-conns reached (defined with shed(), which it may call). */
static void defer_full(struct dx_server *srv, struct dx_listener *l);

/*
 * Reactors sharing a listener: EPOLLEXCLUSIVE wakes the reactor that
 * waits first, so connections that arrive one at a time would all go to
 * one reactor. One that holds more than its share of the server's live
 * connections (plus BALANCE_SLACK) stops watching the listeners until it
 * is back within it (looked at every SHARED_LOOK_MS), but only once it has
 * emptied the accept queue, and never as the last one watching. A reactor
 * that stopped with clients queued would strand them: EPOLLEXCLUSIVE woke
 * it alone for them, and the others sleep until the next arrival. And the
 * one with the fewest may still be paused from an earlier turn: a burst
 * of long connections would wait for its next look (10,000 held
 * connections took 5.5 s to set up so, against 0.9 s for uring's).
 */
static int
over_share(struct dx_server *srv)
{
	return srv->loops > 1 &&
	       srv->model->active(srv) >
	               srv->src->total / srv->loops + BALANCE_SLACK;
}

/* Leaves the reactors watching the listeners, unless it is the last. */
static int
leave_watchers(struct dx_server *srv)
{
	int w = atomic_load(&srv->src->watching);

	while (w > 1)
		if (atomic_compare_exchange_weak(&srv->src->watching, &w,
		                                 w - 1))
			return 1;
	return 0;
}

/*
 * 1 when limits let another connection in on L now; pauses accepting if
 * not: on every listener at --max-conns, on L alone when its --rate
 * bucket is empty.
 */
static int
may_accept(struct dx_server *srv, struct dx_listener *l)
{
	int64_t now = srv->now_ms; /* the loop's reading: accepting waits not */

	if (srv->stop)
		return 0;
	if (srv->max_conns && srv->src->total >= srv->max_conns) {
		defer_full(srv, l);
		return 0;
	}
	if (!take_rate_token(srv, l, now)) {
		refuse(srv, DX_DEFER_RATE, NULL);
		l->rate_resume_ms = now + (int64_t)(1000.0 / srv->rate) + 1;
		watch_listener(srv, (size_t)(l - srv->ls), 0);
		return 0;
	}
	return 1;
}

/* Watches again the listeners whose --rate wait is over; returns when
 * the next one's is, or NEXT. */
static int64_t
resume_rated(struct dx_server *srv, int64_t now, int64_t next)
{
	for (size_t i = 0; srv->rate > 0 && i < srv->nls; i++) {
		struct dx_listener *l = &srv->ls[i];
		if (l->rate_resume_ms == 0)
			continue;
		if (now < l->rate_resume_ms) {
			if (l->rate_resume_ms < next)
				next = l->rate_resume_ms;
			continue;
		}
		l->rate_resume_ms = 0;
		watch_listener(srv, i, !srv->accept_paused && !srv->stop);
	}
	return next;
}

/*
 * accept(). Reactor threads share ACCEPT_LOCK for it and shedding holds
 * it alone, so that the descriptor shedding frees cannot be taken by
 * another reactor's accept() (that client would be served, while this
 * one is neither shed nor served).
 */
static int
accept_one(struct dx_server *srv, struct dx_listener *l, struct dx_addr *peer)
{
	int fd;

	if (srv->accept_lock == NULL)
		return dx_accept(l->fd, peer);
	pthread_rwlock_rdlock(srv->accept_lock);
	fd = dx_accept(l->fd, peer);
	pthread_rwlock_unlock(srv->accept_lock);
	return fd;
}

/*
 * Out of descriptors: frees the reserve to accept and close one client.
 * When that accept fails too but the reserve opens again (the shortage
 * was brief: the system's table has room again), it is tried once more.
 * Otherwise (the table is still full: another process took the entry the
 * reserve gave back, and the reserve cannot be had either) accepting
 * pauses for a moment: the listener stays readable, and watching it
 * would spin. A reserve lost so is opened again at the next shed.
 */
static void
shed(struct dx_server *srv, struct dx_listener *l)
{
	int fd = -EMFILE;

	refuse(srv, DX_REFUSE_FDS, NULL);
	if (srv->accept_lock != NULL)
		pthread_rwlock_wrlock(srv->accept_lock);
	for (int tries = 0; tries < 2 && (fd == -EMFILE || fd == -ENFILE);
	     tries++) {
		if (srv->reserve_fd >= 0)
			close(srv->reserve_fd);
		fd = dx_accept(l->fd, NULL);
		if (fd >= 0)
			dx_close(fd);
		srv->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (srv->reserve_fd < 0)
			break;
	}
	if (srv->accept_lock != NULL)
		pthread_rwlock_unlock(srv->accept_lock);
	if (srv->reserve_fd < 0 || (fd < 0 && fd != -EAGAIN)) {
		srv->resume_ms = dx_now_ms() + SHED_RETRY_MS;
		set_paused(srv, 1);
	}
}

/*
 * No memory for a new socket (ENOBUFS, ENOMEM): the kernel fails accept()
 * before it takes the client off the queue, and closing a client would
 * free no memory, so none is shed: accepting pauses for a moment (the
 * listener stays readable, and watching it would spin), and the client
 * waits in the backlog.
 */
static void
defer_short_of_memory(struct dx_server *srv)
{
	refuse(srv, DX_DEFER_MEMORY, NULL);
	srv->resume_ms = dx_now_ms() + SHED_RETRY_MS;
	set_paused(srv, 1);
}

/*
 * An accept() on L that failed with FD, other than -EAGAIN: out of
 * descriptors, it sheds; short of memory, it pauses; no longer listening
 * (shut down as the server stops, by another reactor or the prefork
 * master, before this one saw the signal), it stops watching, which
 * would only spin. Returns 1 then, when accepting is over for this turn;
 * 0 for the routine errors (ECONNABORTED, EPROTO, EPERM, network
 * errors), after which the next client may be accepted.
 */
static int
accept_failed(struct dx_server *srv, struct dx_listener *l, int fd)
{
	if (fd == -EMFILE || fd == -ENFILE) {
		shed(srv, l);
		return 1;
	}
	if (fd == -ENOBUFS || fd == -ENOMEM) {
		defer_short_of_memory(srv);
		return 1;
	}
	if (fd == -EINVAL) {
		set_paused(srv, 1);
		return 1;
	}
	return 0;
}

/*
 * --max-conns reached: accepting pauses until a connection ends, and the
 * clients wait in the backlog (as tcpserver's -c); or, with --when-full
 * refuse, those waiting on L now are accepted and closed at once (as
 * ncat's --max-conns), at most a burst of them a turn, and the listener
 * stays watched: each turn empties its queue, so it cannot spin. An
 * accept that fails pauses as the accept loop's would.
 */
static void
defer_full(struct dx_server *srv, struct dx_listener *l)
{
	struct dx_addr peer;
	int fd;

	if (!srv->refuse_full) {
		refuse(srv, DX_DEFER_MAX_CONNS, NULL);
		set_paused(srv, 1);
		return;
	}
	for (int i = 0; i < ACCEPT_BURST; i++) {
		fd = accept_one(srv, l, &peer);
		if (fd == -EAGAIN || (fd < 0 && accept_failed(srv, l, fd)))
			return;
		if (fd >= 0) {
			dx_addr_unmap(&peer);
			refuse(srv, DX_REFUSE_FULL, &peer);
			dx_close(fd);
		}
	}
}

/*
 * Rules and per-source limit; returns 1 and counts the source if in.
 * RESERVED: reserve_place() took a place, which this gives back (counted
 * again when admitted: the total is one over for a moment, never under).
 */
static int
admit(struct dx_server *srv, int fd, const struct dx_addr *peer,
      uint8_t key[16], int reserved)
{
	struct ucred cred, *credp = NULL;
	socklen_t len = sizeof(cred);
	int allowed = 1, rc;

	if (peer->u.sa.sa_family == AF_UNIX &&
	    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0)
		credp = &cred;
	if (srv->rules.n > 0)
		dx__rules_check(&srv->rules, peer, credp, &allowed);
	if (!allowed) {
		if (reserved)
			release_place(srv);
		refuse(srv, DX_REFUSE_DENIED, peer);
		return 0;
	}
	dx__source_key(peer, key);
	rc = dx__sources_admit(
	        srv->src, key,
	        peer->u.sa.sa_family == AF_UNIX ? 0 : srv->per_source,
	        reserved ? 0 : srv->max_conns);
	if (reserved)
		release_place(srv);
	switch (rc) {
	case DX_ADMIT_PER_SOURCE:
		refuse(srv, DX_REFUSE_PER_SOURCE, peer);
		return 0;
	case DX_ADMIT_MAX: /* loops that accepted together, under refuse;
	                    * or one uring's ring accepted past the limit */
		refuse(srv, DX_REFUSE_FULL, peer);
		return 0;
	}
	if (srv->ledger != NULL)
		dx__sources_add(srv->ledger, key);
	return 1;
}

/*
 * 1 when the client of the connection FD reset it while it waited in the
 * backlog. Asked only under --rate: a flood the bucket deferred leaves
 * its dead connections queued before the clients that came after it, and
 * each would take a token (and start a program) for nobody, so the
 * service would come back only a backlog's worth of tokens after the
 * flood ended. A client that closed with FIN is served: it may have sent
 * a request, or expect the service to speak first.
 */
static int
reset_already(int fd)
{
	int rc = dx_wait(fd, POLLIN, 0); /* a deadline passed: no wait */

	return rc > 0 && (rc & (POLLERR | POLLHUP)) != 0;
}

void
dx__stream_accept(struct dx_server *srv, struct dx_listener *l)
{
	struct dx_addr peer;
	uint8_t key[16];
	int fd;

	for (int i = 0; i < ACCEPT_BURST && may_accept(srv, l); i++) {
		int reserved = reserve_place(srv);
		if (reserved < 0) {
			give_back_token(srv, l);
			defer_full(srv, l);
			return;
		}
		fd = accept_one(srv, l, &peer);
		if (fd < 0) { /* nothing accepted: token and place go back */
			give_back_token(srv, l);
			if (reserved)
				release_place(srv);
		}
		if (fd == -EAGAIN) { /* the queue is empty: see over_share */
			if (over_share(srv) && leave_watchers(srv))
				pause_listeners(srv, 1, 1);
			return;
		}
		if (fd < 0) {
			if (accept_failed(srv, l, fd))
				return;
			continue;
		}
		if (srv->rate > 0 && reset_already(fd)) {
			dx_close(fd);
			give_back_token(srv, l);
			if (reserved)
				release_place(srv);
			continue;
		}
		dx_addr_unmap(&peer);
		if (!admit(srv, fd, &peer, key, reserved)) {
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
	if (srv->accept_paused && !srv->stop && srv->resume_ms == 0 &&
	    (!srv->max_conns || srv->refuse_full ||
	     srv->src->total < srv->max_conns) &&
	    !over_share(srv))
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

/* The listener whose connection C is: C's conf is the listener's. */
static const struct dx_listener *
conn_listener(const struct dx_conn *c)
{
	size_t off = offsetof(struct dx_listener, conf);

	return (const void *)((const char *)c->conf - off);
}

void
dx__stream_log_end(const struct dx_server *srv, const struct dx_conn *c,
                   int end)
{
	const struct dx_listener *l = conn_listener(c);
	char at[DX_ADDRSTRLEN] = "?", from[DX_ADDRSTRLEN] = "a unix peer";
	char bytes[64] = "";
	struct dx_addr peer;
	long long ms;

	if (srv->verbosity < DX_LOG_DEBUG)
		return; /* not even the clock read */
	ms = (long long)(dx_now_ms() - c->started_ms);
	dx_addr_format(&l->bound, at, sizeof(at));
	dx__conn_peer(c, &peer);
	if (peer.u.sa.sa_family != AF_UNIX)
		dx_addr_format(&peer, from, sizeof(from));
	if (!(c->conf->svc->flags & DX_SVC_EXEC)) /* exec: the program's */
		snprintf(bytes, sizeof(bytes), " in %llu B, out %llu B;",
		         (unsigned long long)c->bytes_in,
		         (unsigned long long)c->bytes_out);
	dx__log(srv, DX_LOG_DEBUG,
	        "%s on %s://%s: connection from %s ended: %s;%s %lld ms",
	        l->name, dx_scheme_name(l->ep.scheme), at, from,
	        dx__conn_end_name((enum dx_conn_end)end), bytes, ms);
}

int64_t
dx__stream_tick(struct dx_server *srv, int64_t now)
{
	int64_t next =
	        srv->model->tick ? srv->model->tick(srv, now) : DX_FOREVER;

	next = resume_rated(srv, now, next);
	if (srv->resume_ms && now >= srv->resume_ms) {
		srv->resume_ms = 0;
		maybe_resume(srv);
	}
	if (srv->resume_ms && srv->resume_ms < next)
		next = srv->resume_ms;
	if (srv->accept_paused && srv->src->lock != NULL && !srv->stop &&
	    srv->resume_ms == 0) {
		maybe_resume(srv);
		if (srv->accept_paused && now + SHARED_LOOK_MS < next)
			next = now + SHARED_LOOK_MS;
	}
	if (srv->stop && srv->stop_deadline && now >= srv->stop_deadline) {
		/* First ask (SIGTERM), a second later insist (SIGKILL). */
		int sig = srv->stop_signal ? SIGKILL : SIGTERM;
		/* Workers and reactors log their own, with counts. */
		if (!srv->stream_elsewhere)
			dx__log(srv, DX_LOG_WARN,
			        "drain time over: %s %zu connections",
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

/*
 * Stopping: a client that connects from now on is refused at once, and
 * one still in the accept queue is reset, rather than left waiting out
 * the drain to be reset at the exit. shutdown(SHUT_RD) takes a listening
 * socket out of the listening state (TCP) or refuses connects to it
 * (unix) while its descriptor stays open, so no thread or worker that
 * still holds the number can see it reused. The file of a unix listener
 * is removed at the exit as before.
 */
static void
refuse_new_clients(struct dx_server *srv)
{
	for (size_t i = 0; i < srv->nls; i++) {
		const struct dx_listener *l = &srv->ls[i];

		if (l->fd < 0 ||
		    dx_scheme_socktype(l->ep.scheme) != SOCK_STREAM)
			continue;
		if (shutdown(l->fd, SHUT_RD) == 0)
			dx_trace("shutdown(%d, SHUT_RD) = 0", l->fd);
	}
}

void
dx__stream_stop(struct dx_server *srv)
{
	set_paused(srv, 1);
	if (srv->model->stop != NULL)
		srv->model->stop(srv);
	refuse_new_clients(srv);
	if (srv->model->active(srv) == 0)
		return;
	if (!srv->stream_elsewhere) /* else each worker or reactor logs */
		dx__log(srv, DX_LOG_INFO,
		        "waiting up to %lld ms for %zu connections",
		        (long long)srv->drain_ms, srv->model->active(srv));
	srv->stop_deadline = dx_now_ms() + srv->drain_ms;
}

void
dx__stream_reload(struct dx_server *srv)
{
	struct dx_rules *next;
	char why[512];

	if (srv->rules_file == NULL) {
		dx__log(srv, DX_LOG_INFO, "SIGHUP: no --rules file to read");
		return;
	}
	next = malloc(sizeof(*next));
	if (next == NULL) {
		dx__log(srv, DX_LOG_ERROR,
		        "SIGHUP: out of memory; the rules "
		        "in force stay");
		return;
	}
	*next = srv->rules_cli;
	if (dx__rules_load(next, srv->rules_file, why, sizeof(why)) < 0) {
		dx__log(srv, DX_LOG_ERROR,
		        "SIGHUP: %s; the rules in force stay", why);
	} else {
		srv->rules = *next;
		dx__log(srv, DX_LOG_INFO,
		        "rules read again from %s: %zu in all", srv->rules_file,
		        srv->rules.n);
	}
	free(next);
	if (srv->model->reload != NULL)
		srv->model->reload(srv);
}

uint32_t
dx__stream_source_count(struct dx_server *srv, const uint8_t key[16])
{
	uint32_t n;

	dx__sources_lock(srv->src);
	n = dx__sources_count(srv->src, key);
	dx__sources_unlock(srv->src);
	return n;
}

void
dx__stream_log_counters(struct dx_server *srv)
{
	char line[512];
	size_t used = 0;

	for (int r = 0; r < DX_REFUSE_COUNT && used < sizeof(line); r++)
		used += (size_t)snprintf(line + used, sizeof(line) - used,
		                         " %s=%llu", dx__refuse_name(r),
		                         (unsigned long long)srv->refused[r]);
	dx__log(srv, DX_LOG_INFO, "counters: connections: accepted=%llu%s",
	        (unsigned long long)srv->accepted, line);
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

/* ---------------------------------------------------------------------
 * A model that accepts on its own (the uring model's multishot accept)
 * --------------------------------------------------------------------- */

void
dx__stream_take_listeners(struct dx_server *srv, int take)
{
	if (take) {
		for (size_t i = 0; i < srv->nls; i++) {
			struct dx_listener *l = &srv->ls[i];

			if (l->fd < 0 ||
			    dx_scheme_socktype(l->ep.scheme) != SOCK_STREAM)
				continue;
			if (!l->paused)
				epoll_ctl(srv->epfd, EPOLL_CTL_DEL, l->fd,
				          NULL);
			l->paused = 1;
		}
		srv->model_accepts = 1;
		return;
	}
	srv->model_accepts = 0;
	set_paused(srv, srv->accept_paused); /* watched again if not paused */
}

void
dx__stream_accepted(struct dx_server *srv, struct dx_listener *l, int fd,
                    struct dx_addr *peer)
{
	uint8_t key[16];

	dx_addr_unmap(peer);
	if (!admit(srv, fd, peer, key, 0)) {
		dx_close(fd);
		return;
	}
	srv->accepted++;
	srv->model->serve(srv, l, fd, peer);
}

void
dx__stream_refused(struct dx_server *srv, enum dx_refuse why,
                   const struct dx_addr *peer)
{
	refuse(srv, why, peer);
}
