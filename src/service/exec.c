/* SPDX-License-Identifier: MIT */
/*
 * exec.c - exec:PROGRAM [ARGS]: runs a program per datagram, as inetd's
 * "wait" datagram services do but without handing over the socket. The
 * datagram is the program's standard input; what it writes to standard
 * output is the reply, sent when it exits 0; more than DX_DGRAM_MAX bytes
 * of it gets the program killed at once, and no reply.
 * A run that outlives its timeout is killed with its whole process group,
 * and so is anything it left running once it has exited.
 */
#include "service/service.h"
#include "child.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

/* One run's descriptors: the program's stdin and stdout, and its pidfd. */
struct run {
	int in, out, pidfd;
	pid_t pid;
};

static int
start(const struct dx_dgram_req *req, struct run *run)
{
	int in[2] = {-1, -1}, out[2] = {-1, -1}, err;
	struct dx_env env;
	int is_unix = req->peer->u.sa.sa_family == AF_UNIX;

	err = dx__env_ucspi(&env, is_unix ? "UNIX" : "UDP", req->local,
	                    req->peer);
	if (err == 0 && (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0))
		err = dx__neg_errno();
	if (err == 0)
		err = dx__spawn(req->conf->argv, env.vars,
		                (int[3]){in[0], out[1], STDERR_FILENO}, 1,
		                &req->conf->rlimits, &run->pid);
	if (err == 0) {
		run->pidfd = dx__pidfd_open(run->pid);
		err = run->pidfd < 0 ? run->pidfd : 0;
	}
	run->in = in[1];
	run->out = out[0];
	if (in[0] >= 0)
		close(in[0]);
	if (out[1] >= 0)
		close(out[1]);
	return err;
}

/*
 * Waits until FD is ready for EVENTS, the deadline passes, or the server
 * says the request is cancelled (SIGTERM). Returns the revents, or
 * -ETIMEDOUT, -ECANCELED or -errno.
 */
static int
wait_or_cancel(const struct dx_dgram_req *req, int fd, short events,
               int64_t deadline)
{
	struct pollfd p[2] = {{.fd = fd, .events = events},
	                      {.fd = req->cancel_fd, .events = POLLIN}};
	size_t n = req->cancel_fd >= 0 && req->cancelled ? 2 : 1;
	int rc;

	for (;;) {
		rc = dx_poll(p, n, deadline);
		if (rc < 0)
			return rc;
		if (p[0].revents)
			return p[0].revents;
		if (n == 2 && req->cancelled(req->cancel_ctx))
			return -ECANCELED;
	}
}

/*
 * Collects standard output until end of file or the deadline. Output
 * longer than a datagram can carry is -EMSGSIZE: the caller kills the
 * program at once rather than wait for it (an endless writer would hold
 * the iterative server until the timeout) and sends no reply, never a
 * truncated one. One byte past the cap is enough to know.
 */
static ssize_t
collect(const struct dx_dgram_req *req, struct run *run, int64_t deadline)
{
	size_t got = 0;
	ssize_t n;
	int rc;

	fcntl(run->out, F_SETFL, O_NONBLOCK);
	while (got <= DX_DGRAM_MAX) { /* the reply has DX_REQUEST_MAX bytes */
		n = dx_read(run->out, req->reply + got, DX_DGRAM_MAX + 1 - got);
		if (n == 0)
			break;
		if (n > 0) {
			got += (size_t)n;
			continue;
		}
		if (n != -EAGAIN)
			return n;
		rc = wait_or_cancel(req, run->out, POLLIN, deadline);
		if (rc < 0)
			return rc;
	}
	return got > DX_DGRAM_MAX ? -EMSGSIZE : (ssize_t)got;
}

/*
 * Waits for the program's exit until DEADLINE, then ends its group.
 * Returns 0 when it exited 0, -ETIMEDOUT, -ECANCELED or -ECHILD.
 */
static int
finish(const struct dx_dgram_req *req, struct run *run, int64_t deadline,
       int err)
{
	int status = 0;

	if (run->pid <= 0)
		return err ? err : -ECHILD;
	if (err == 0)
		err = wait_or_cancel(req, run->pidfd, POLLIN, deadline);
	kill(-run->pid, SIGKILL);
	while (waitpid(run->pid, &status, 0) < 0 && errno == EINTR)
		;
	if (err < 0)
		return err;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -ECHILD;
}

static ssize_t
exec_dgram(const struct dx_dgram_req *req)
{
	struct run run = {-1, -1, -1, 0};
	int64_t deadline = dx_deadline_in(req->conf->exec_timeout_ms);
	ssize_t n = 0;
	int err;

	err = start(req, &run);
	if (err == 0) {
		fcntl(run.in, F_SETFL, O_NONBLOCK);
		/* A program that does not read its input is its own affair. */
		(void)dx_write_all(run.in, req->data, req->len, 0, deadline,
		                   NULL);
		close(run.in);
		run.in = -1;
		n = collect(req, &run, deadline);
	}
	err = finish(req, &run, deadline, err < 0 ? err : (n < 0 ? (int)n : 0));
	if (run.in >= 0)
		close(run.in);
	if (run.out >= 0)
		close(run.out);
	if (run.pidfd >= 0)
		close(run.pidfd);
	return err < 0 ? err : n;
}

const struct dx_service dx__service_exec = {
        .name = "exec",
        .flags = DX_SVC_AMPLIFIES | DX_SVC_EXEC,
        .dgram = exec_dgram,
        .summary = "runs a program per datagram or connection",
};
