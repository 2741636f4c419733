/* SPDX-License-Identifier: MIT */
/*
 * server.c - a server's life: listeners added from "SERVICE ENDPOINT"
 * pairs, opened (with stale unix socket files handled), served by one
 * epoll loop that also watches the caller's signal descriptor, and closed
 * (unix socket files removed). Signals arrive as data on that descriptor,
 * never as handlers: SIGTERM and SIGINT stop, SIGUSR1 logs the counters.
 */
#include "server/server.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#define SIGNAL_TAG UINT64_MAX

void
dx__server_init(struct dx_server *srv)
{
	memset(srv, 0, sizeof(*srv));
	srv->sigfd = -1;
	srv->epfd = -1;
	srv->verbosity = DX_LOG_INFO;
	srv->exec_timeout_ms = 10000;
	srv->budget_dgrams = 20;
	srv->budget_bytes = 16384;
	srv->reserve_fd = -1;
	srv->refused = srv->refused_own;
	srv->unix_mode = -1;
	/* What the benchmark shows best (bench/results): the fastest or
	 * near it everywhere, 121 B per idle connection, and available on
	 * every kernel. fork, the seed's design, is one option away. */
	srv->model = dx__model_find("epoll");
	srv->drain_ms = 10000;
	srv->backlog = 1024;
	srv->limits = (struct dx_conn_limits){
	        .idle_ms = 300000,
	        .write_timeout_ms = 30000,
	        .linger_ms = 5000,
	};
}

void
dx__log(const struct dx_server *srv, int level, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	if (srv->log == NULL || level > srv->verbosity)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	srv->log(srv->log_ctx, level, line);
}

/* Frees what parse_exec() allocated for L. */
static void
free_exec(struct dx_listener *l)
{
	free(l->exec_buf);
	free(l->conf.argv);
	l->exec_buf = NULL;
	l->conf.argv = NULL;
}

/*
 * Splits "exec:PROGRAM ARG..." at spaces into a NULL-ended argv whose
 * strings live in L->exec_buf. The program must be an absolute path that
 * can be run now, so a typo stops the server before it serves.
 */
static int
parse_exec(struct dx_listener *l, const char *spec, char *why, size_t wl)
{
	const char *cmd = spec + strlen("exec:");
	char *tok, *save = NULL;
	size_t n = 0, cap = strlen(cmd) / 2 + 2;
	int err = 0;

	if (*cmd != '/')
		return dx__why(why, wl, -EINVAL,
		               "'%s': the program must be an absolute path, "
		               "as in exec:/bin/cat",
		               spec);
	l->exec_buf = strdup(cmd);
	l->conf.argv = calloc(cap + 1, sizeof(char *));
	if (l->exec_buf == NULL || l->conf.argv == NULL) {
		free_exec(l);
		return -ENOMEM;
	}
	for (tok = strtok_r(l->exec_buf, " \t", &save); tok && n < cap;
	     tok = strtok_r(NULL, " \t", &save))
		l->conf.argv[n++] = tok;
	if (n == 0 || access(l->conf.argv[0], X_OK) < 0) {
		err = n == 0 ? -EINVAL : dx__neg_errno();
		dx__why(why, wl, err, "'%s': cannot run %s: %s", spec, cmd,
		        dx_strerror(err));
		free_exec(l);
	}
	return err;
}

/* Sets L's service from SPEC: a table name or exec:PROGRAM. */
static int
parse_service(struct dx_listener *l, const char *spec, char *why, size_t wl)
{
	const struct dx_service *svc;

	if (strncmp(spec, "exec:", 5) == 0) {
		l->conf.svc = &dx__service_exec;
		return parse_exec(l, spec, why, wl);
	}
	svc = dx__service_find(spec);
	if (svc == NULL || (svc->flags & DX_SVC_EXEC))
		return dx__why(why, wl, -ENOENT,
		               "unknown service '%s' (expected echo, discard, "
		               "chargen, qotd, daytime, time or exec:PROGRAM)",
		               spec);
	l->conf.svc = svc;
	return 0;
}

int
dx__server_add(struct dx_server *srv, const char *service, const char *endpoint,
               int guard, char *why, size_t whylen)
{
	struct dx_listener *l;
	char reason[160];
	int err;

	if (srv->nls == DX_MAX_LISTENERS)
		return dx__why(why, whylen, -E2BIG, "more than %d listeners",
		               DX_MAX_LISTENERS);
	l = &srv->ls[srv->nls];
	memset(l, 0, sizeof(*l));
	l->fd = -1;
	err = dx_endpoint_parse(&l->ep, endpoint, reason, sizeof(reason));
	if (err < 0)
		return dx__why(why, whylen, err, "bad endpoint '%s': %s",
		               endpoint, reason);
	err = parse_service(l, service, why, whylen);
	if (err < 0)
		return err;
	l->conf.exec_timeout_ms = srv->exec_timeout_ms;
	l->conf.rlimits = srv->exec_rlimits;
	l->conf.quotes = srv->quotes;
	l->guard = guard;
	snprintf(l->name, sizeof(l->name), "%s", service);
	if (dx_scheme_socktype(l->ep.scheme) == SOCK_STREAM)
		srv->has_stream = 1;
	srv->nls++;
	return 0;
}

/*
 * 1 when PATH is a unix socket file nobody serves: connecting to it is
 * refused. Such a file is left behind by a server that did not exit
 * cleanly, and may be replaced.
 */
static int
stale_socket(const struct dx_endpoint *ep)
{
	struct dx_endpoint probe = *ep;
	struct stat st;
	int fd;

	if (ep->path[0] == '@' || stat(ep->path, &st) < 0 ||
	    !S_ISSOCK(st.st_mode))
		return 0;
	fd = dx_connect_endpoint(&probe, 0, dx_deadline_in(100));
	if (fd >= 0) {
		dx_close(fd);
		return 0;
	}
	return fd == -ECONNREFUSED;
}

/*
 * Opens L's socket. A unix socket file is created under a umask that
 * lets nobody else in, so that no client connects before --mode applies.
 */
static int
listen_unix_mode(struct dx_server *srv, struct dx_listener *l, char *why,
                 size_t wl)
{
	mode_t old = 0;
	int fd, restrict_mode = srv->unix_mode >= 0;

	if (restrict_mode)
		old = umask(0177);
	fd = dx_listen_endpoint(&l->ep, 0, srv->backlog, why, wl);
	if (restrict_mode)
		umask(old);
	return fd;
}

void
dx__listener_tune(const struct dx_listener *l, int fd)
{
	int lowat = DX_NOTSENT_LOWAT, rc;

	if (l->ep.scheme != DX_SCHEME_TCP ||
	    !(l->conf.svc->flags & (DX_SVC_AMPLIFIES | DX_SVC_MIRROR)))
		return;
	/* Best effort: without it (before Linux 3.12) the kernel's limit,
	 * tcp_wmem's maximum, bounds the queue instead. */
	rc = setsockopt(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &lowat,
	                sizeof(lowat));
	dx_trace("setsockopt(%d, TCP_NOTSENT_LOWAT, %d) = %d", fd, lowat,
	         rc < 0 ? -errno : rc);
}

static int
open_listener(struct dx_server *srv, struct dx_listener *l, char *why,
              size_t wl)
{
	int unixpath = (l->ep.scheme == DX_SCHEME_UNIX ||
	                l->ep.scheme == DX_SCHEME_UNIXGRAM) &&
	               l->ep.path[0] != '@';
	int fd = listen_unix_mode(srv, l, why, wl);

	if (fd == -EADDRINUSE && unixpath && stale_socket(&l->ep)) {
		dx__log(srv, DX_LOG_INFO, "removing stale socket file %s",
		        l->ep.path);
		unlink(l->ep.path);
		fd = listen_unix_mode(srv, l, why, wl);
	}
	if (fd < 0)
		return fd;
	if (unixpath && srv->unix_mode >= 0 &&
	    chmod(l->ep.path, (mode_t)srv->unix_mode) < 0) {
		int err = dx__neg_errno();
		dx_close(fd);
		unlink(l->ep.path);
		return dx__why(why, wl, err, "cannot chmod %s: %s", l->ep.path,
		               dx_strerror(err));
	}
	l->fd = fd;
	l->created_path = unixpath;
	dx__listener_tune(l, fd);
	dx_local_addr(fd, &l->bound);
	if (l->ep.scheme == DX_SCHEME_UDP)
		dx__guard_add_port(&srv->guard, dx_addr_port(&l->bound));
	if (dx_scheme_socktype(l->ep.scheme) == SOCK_DGRAM)
		return dx__iter_open(srv, l);
	return 0;
}

int
dx__server_open(struct dx_server *srv, char *why, size_t whylen)
{
	int err;

	srv->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (srv->epfd < 0)
		return dx__neg_errno();
	srv->budget = malloc(sizeof(*srv->budget));
	if (srv->budget == NULL)
		return -ENOMEM;
	dx__budget_init(srv->budget, srv->budget_dgrams, srv->budget_bytes);
	err = dx__guard_load_broadcast(&srv->guard);
	if (err < 0)
		dx__log(srv, DX_LOG_WARN, "cannot list broadcast addresses: %s",
		        dx_strerror(err));
	for (size_t i = 0; i < srv->nls; i++) {
		err = open_listener(srv, &srv->ls[i], why, whylen);
		if (err < 0)
			return err;
	}
	if (srv->has_stream) {
		err = dx__stream_open(srv);
		if (err < 0)
			return dx__why(why, whylen, err,
			               "cannot start the %s model: %s",
			               srv->model->name, dx_strerror(err));
	}
	return 0;
}

/* Reads every pending signal; returns -errno on a broken descriptor. */
static int
handle_signals(struct dx_server *srv)
{
	struct signalfd_siginfo si;
	ssize_t n;

	while ((n = dx_read(srv->sigfd, &si, sizeof(si))) == sizeof(si)) {
		if ((si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) &&
		    !srv->stop) {
			dx__log(srv, DX_LOG_INFO, "stopping on %s",
			        si.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT");
			srv->stop = (int)si.ssi_signo;
			if (srv->has_stream)
				dx__stream_stop(srv);
		} else if (si.ssi_signo == SIGUSR1) {
			dx__server_log_counters(srv);
		} else if (si.ssi_signo == SIGHUP && srv->has_stream &&
		           !srv->stop) {
			dx__stream_reload(srv);
		} else if (si.ssi_signo == SIGCHLD && srv->has_stream) {
			/* A datagram-only server's children are its exec
			 * programs, each waited for by its own request. */
			dx__stream_reap(srv);
		}
	}
	return n == -EAGAIN ? 0 : (n < 0 ? (int)n : 0);
}

/* Watches listener I, unless worker processes serve it or it is closed. */
static int
watch_listener(struct dx_server *srv, size_t i)
{
	struct dx_listener *l = &srv->ls[i];
	int stream = dx_scheme_socktype(l->ep.scheme) == SOCK_STREAM;
	struct epoll_event ev = {.events = stream ? dx__listener_events(srv)
	                                          : EPOLLIN,
	                         .data.u64 = i};

	if (l->fd < 0 || (stream && srv->stream_elsewhere))
		return 0;
	return epoll_ctl(srv->epfd, EPOLL_CTL_ADD, l->fd, &ev) < 0
	               ? dx__neg_errno()
	               : 0;
}

int
dx__server_signals(void *ctx)
{
	struct dx_server *srv = ctx;

	handle_signals(srv);
	return srv->stop;
}

static int
watch(int epfd, int fd, uint64_t tag)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = tag};

	return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? dx__neg_errno()
	                                                   : 0;
}

/* Serves whatever event TAG stands for. */
static int
dispatch(struct dx_server *srv, uint64_t tag, uint32_t events)
{
	struct dx_listener *l;

	if (tag == SIGNAL_TAG)
		return handle_signals(srv);
	if (tag >= DX_MODEL_TAG) {
		srv->model->event(srv, tag, events);
		return 0;
	}
	l = &srv->ls[tag];
	if (srv->stop)
		return 0;
	if (dx_scheme_socktype(l->ep.scheme) == SOCK_DGRAM)
		dx__iter_serve(srv, l);
	else
		dx__stream_accept(srv, l);
	return 0;
}

/* After a stop, the server is finished once no connection is left. */
static int
finished(const struct dx_server *srv)
{
	return srv->stop && (!srv->has_stream || srv->model->active(srv) == 0);
}

/*
 * Waits for events until DEADLINE; with --busy-poll, after a turn that had
 * events (AFTER_WORK), first looks for them without sleeping for up to the
 * window (see serve_batch_polling()). A turn woken only by its deadline
 * (the timeout sweep) is no traffic, so no spin follows it, nor one whose
 * deadline has passed. A deadline that passes meanwhile is seen at most
 * one window late.
 */
static int
wait_events(struct dx_server *srv, struct epoll_event *evs, int max,
            int64_t deadline, int after_work)
{
	if (srv->busy_poll_us > 0 && after_work) {
		int64_t until = dx__now_us() + srv->busy_poll_us;
		int n;

		do {
			n = dx__epoll_wait(srv->epfd, evs, max, 0);
			if (n != 0)
				return n;
		} while (dx__now_us() < until);
	}
	return dx__epoll_wait(srv->epfd, evs, max, deadline);
}

int
dx__server_run(struct dx_server *srv)
{
	struct epoll_event evs[256];
	int n = 0, err = 0;

	/* One datagram socket and nothing else to watch: no event loop. */
	if (srv->nls == 1 && !srv->has_stream && srv->sigfd >= 0 &&
	    srv->ls[0].fd >= 0 &&
	    dx_scheme_socktype(srv->ls[0].ep.scheme) == SOCK_DGRAM)
		return dx__iter_run(srv, &srv->ls[0]);
	if (srv->sigfd >= 0)
		err = watch(srv->epfd, srv->sigfd, SIGNAL_TAG);
	for (size_t i = 0; i < srv->nls && err == 0; i++)
		err = watch_listener(srv, i);
	if (err == 0 && srv->has_stream && srv->model->begin != NULL)
		err = srv->model->begin(srv);
	/*
	 * One clock reading per wakeup, taken after the wait: handlers don't
	 * wait, so it serves the batch and then the ticks that follow it,
	 * which at worst see a deadline a batch's work late, never early.
	 */
	srv->now_ms = dx_now_ms();
	while (err == 0 && !finished(srv)) {
		int64_t next = srv->has_stream
		                       ? dx__stream_tick(srv, srv->now_ms)
		                       : DX_FOREVER;
		/* A tick that wants another turn at once (work left in the
		 * ring, a stop to finish) gets it: no spin before it. */
		n = wait_events(srv, evs, (int)DX_ARRAY_LEN(evs), next,
		                n > 0 && next > srv->now_ms);
		if (n < 0)
			err = n;
		srv->now_ms = dx_now_ms();
		for (int i = 0; i < n && err == 0; i++)
			err = dispatch(srv, evs[i].data.u64, evs[i].events);
	}
	return err;
}

void
dx__server_log_counters(struct dx_server *srv)
{
	char line[768];
	size_t used = 0;

	if (srv->has_stream && srv->model->counters != NULL)
		srv->model->counters(srv);
	for (size_t i = 0; i < srv->nls; i++) {
		dx_addr_format(&srv->ls[i].bound, line, sizeof(line));
		dx__log(srv, DX_LOG_INFO,
		        "counters: %s on %s://%s: served %llu", srv->ls[i].name,
		        dx_scheme_name(srv->ls[i].ep.scheme), line,
		        (unsigned long long)srv->served[i]);
	}
	if (srv->has_stream)
		dx__stream_log_counters(srv);
	for (int r = 0; r < DX_DROP_COUNT && used < sizeof(line); r++)
		used += (size_t)snprintf(line + used, sizeof(line) - used,
		                         " %s=%llu", dx__drop_name(r),
		                         (unsigned long long)srv->drops[r]);
	dx__log(srv, DX_LOG_INFO, "counters: no reply:%s", line);
}

void
dx__server_close(struct dx_server *srv)
{
	/* The model first: reactor threads still running are stopped and
	 * joined before the listeners they watch are closed. */
	if (srv->has_stream)
		dx__stream_free(srv);
	for (size_t i = 0; i < srv->nls; i++) {
		struct dx_listener *l = &srv->ls[i];

		if (l->fd >= 0)
			dx_close(l->fd);
		if (l->created_path)
			unlink(l->ep.path);
		free_exec(l);
	}
	if (srv->epfd >= 0)
		close(srv->epfd);
	srv->epfd = -1;
	dx__iter_free(srv);
	free(srv->budget);
	srv->nls = 0;
}
