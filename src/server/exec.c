/* SPDX-License-Identifier: MIT */
/*
 * exec.c - exec:PROGRAM on a stream connection, for the blocking models:
 * the program gets the socket as its standard input and output, the UCSPI
 * environment and nothing else; this process keeps its own reference to
 * the socket, so that when the program exits the connection is not torn
 * down with unread input (a reset that can destroy the program's last
 * output) but half-closed and drained. The program either stays in the
 * caller's process group (a process per connection, which the model kills
 * as a whole when the unit ends) or leads its own, killed here once the
 * program exits.
 */
#include "server/server.h"
#include "child.h"

#include <errno.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int
dx__exec_env(struct dx_env *env, int fd, const struct dx_addr *peer,
             uint32_t connnum)
{
	struct dx_addr local;
	char num[16];
	int err, is_unix = peer->u.sa.sa_family == AF_UNIX;

	err = dx_local_addr(fd, &local);
	if (err == 0)
		err = dx__env_ucspi(env, is_unix ? "UNIX" : "TCP", &local,
		                    peer);
	if (err == 0 && !is_unix) {
		snprintf(num, sizeof(num), "%u", connnum);
		err = dx__env_add(env, "TCPCONNNUM", num);
	}
	if (err == 0 && is_unix)
		err = dx__env_add_peercred(env, fd);
	return err;
}

/* Waits for PID until DEADLINE; kills it there. Returns its status. */
static int
wait_program(pid_t pid, int64_t deadline)
{
	int pidfd = dx__pidfd_open(pid), status = 0;

	if (pidfd >= 0 && dx_wait(pidfd, POLLIN, deadline) == -ETIMEDOUT)
		kill(pid, SIGKILL);
	if (pidfd >= 0)
		close(pidfd);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return status;
}

void
dx__exec_log_end(const struct dx_server *srv, const char *program, pid_t pid,
                 int signo, int code)
{
	const char *name = signo > 0 ? sigabbrev_np(signo) : NULL;

	if (signo > 0)
		dx__log(srv, DX_LOG_INFO,
		        "program %s (pid %d) killed by signal %d (SIG%s)",
		        program, (int)pid, signo, name ? name : "?");
	else if (code != 0)
		dx__log(srv, DX_LOG_DEBUG, "program %s (pid %d) exited %d",
		        program, (int)pid, code);
}

int
dx__exec_stream(const struct dx_server *srv, const struct dx_listener *l,
                int fd, const struct dx_addr *peer, uint32_t connnum,
                const struct dx_conn_limits *lim, int newgroup,
                _Atomic int *pidp)
{
	struct dx_env env;
	pid_t pid = -1;
	int err, status;

	err = dx__exec_env(&env, fd, peer, connnum);
	if (err == 0)
		err = dx__set_nonblock(fd, 0);
	if (err == 0)
		err = dx__spawn(l->conf.argv, env.vars, (int[3]){fd, fd, 2},
		                newgroup, &l->conf.rlimits, &pid);
	if (err < 0) {
		dx_close(fd);
		return DX_END_ERROR;
	}
	if (pidp != NULL)
		atomic_store(pidp, (int)pid);
	status = wait_program(
	        pid,
	        dx_deadline_in(lim->lifetime_ms > 0 ? lim->lifetime_ms : -1));
	if (newgroup)
		kill(-pid, SIGKILL); /* what it left running in its group */
	if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL &&
	    lim->lifetime_ms > 0) {
		dx_close(fd);
		return DX_END_LIFETIME;
	}
	dx__exec_log_end(srv, l->conf.argv[0], pid,
	                 WIFSIGNALED(status) ? WTERMSIG(status) : 0,
	                 WIFEXITED(status) ? WEXITSTATUS(status) : 0);
	dx__set_nonblock(fd, 1);
	err = dx__linger_close(fd, lim->linger_ms);
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? err
	                                                     : DX_END_ERROR;
}
