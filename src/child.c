/* SPDX-License-Identifier: MIT */
/*
 * child.c - runs a program for a connection or a datagram the way a
 * careful inetd does (fork and execve, so that nothing of the server's
 * signal state can survive into the program): the given descriptors become 0, 1
 * and 2 and every other descriptor is closed, every signal disposition is reset
 * to its default and the mask emptied, the program leads a process group of its
 * own (so a timeout can end it together with its children), and it sees
 * only the environment it is given.
 */
#include "child.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/wait.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The fixed PATH every spawned program gets. */
const char dx__spawn_path[] = "PATH=/usr/local/bin:/usr/bin:/bin";

/*
 * The kernel's sigaction, for rt_sigaction(2) directly: glibc's wrappers
 * refuse to touch the signals it reserves for itself (32, 33), and its
 * posix_spawn leaves those ignored in the child, where an ignored signal
 * survives exec. So the child resets every disposition here itself.
 */
struct kernel_sigaction {
	void (*handler)(int);
	unsigned long flags;
	void (*restorer)(void);
	uint64_t mask;
};

#define KERNEL_NSIG 64

/* In the child: every signal to its default action, none blocked. */
static void
reset_signals(void)
{
	struct kernel_sigaction dfl = {.handler = SIG_DFL};
	uint64_t none = 0;

	for (int sig = 1; sig <= KERNEL_NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			syscall(SYS_rt_sigaction, sig, &dfl, NULL,
			        sizeof(none));
	syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, NULL, sizeof(none));
}

/*
 * In the child: FDS become 0, 1, 2 and every other descriptor is closed
 * at exec (marked close-on-exec, so the error pipe lives until then).
 */
static int
setup_fds(const int fds[3])
{
	for (int i = 0; i < 3; i++) {
		if (fds[i] == i ? fcntl(i, F_SETFD, 0) < 0
		                : dup2(fds[i], i) < 0)
			return -1;
	}
	return close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
}

/* The child's side: never returns; reports a failed exec on ERRPIPE. */
static void __attribute__((noreturn))
child_exec(char *const argv[], char *const envp[], const int fds[3],
           int newgroup, int errpipe)
{
	int err;

	reset_signals();
	if ((newgroup && setpgid(0, 0) < 0) || setup_fds(fds) < 0)
		err = errno;
	else {
		execve(argv[0], argv, envp);
		err = errno;
	}
	(void)!write(errpipe, &err, sizeof(err));
	_exit(127);
}

int
dx__spawn(char *const argv[], char *const envp[], const int fds[3],
          int newgroup, pid_t *pid)
{
	int errpipe[2], err = 0;
	ssize_t n;

	if (pipe2(errpipe, O_CLOEXEC) < 0)
		return dx__neg_errno();
	*pid = fork();
	if (*pid == 0)
		child_exec(argv, envp, fds, newgroup, errpipe[1]);
	if (*pid < 0)
		err = dx__neg_errno();
	close(errpipe[1]);
	/* End of file: the exec happened. Four bytes: why it did not. */
	n = err ? 0
	        : dx_read_full(errpipe[0], &err, sizeof(err), DX_FOREVER, NULL);
	close(errpipe[0]);
	if (n == (ssize_t)sizeof(err)) {
		while (waitpid(*pid, NULL, 0) < 0 && errno == EINTR)
			;
		err = -err;
	}
	if (err == 0)
		dx_trace("spawn(%s) = pid %d", argv[0], (int)*pid);
	return err;
}

int
dx__pidfd_open(pid_t pid)
{
	long fd = syscall(SYS_pidfd_open, pid, 0);

	return fd < 0 ? dx__neg_errno() : (int)fd;
}

int
dx__env_add(struct dx_env *env, const char *name, const char *value)
{
	int n;

	if (env->count + 2 > DX_ARRAY_LEN(env->vars))
		return -E2BIG;
	n = snprintf(env->buf + env->used, sizeof(env->buf) - env->used,
	             "%s=%s", name, value);
	if (n < 0 || (size_t)n >= sizeof(env->buf) - env->used)
		return -E2BIG;
	env->vars[env->count++] = env->buf + env->used;
	env->vars[env->count] = NULL;
	env->used += (size_t)n + 1;
	return 0;
}

/* Adds PREFIX##REMOTEIP/PORT (or PATH) for one address. */
static int
env_add_addr(struct dx_env *env, const char *prefix, const char *side,
             const struct dx_addr *addr)
{
	char name[32], host[DX_ADDRSTRLEN], port[8];
	int err;

	if (addr->u.sa.sa_family == AF_UNIX) {
		dx_addr_format(addr, host, sizeof(host));
		snprintf(name, sizeof(name), "%s%sPATH", prefix, side);
		return dx__env_add(env, name, host);
	}
	dx_addr_format_host(addr, host, sizeof(host));
	snprintf(port, sizeof(port), "%u", dx_addr_port(addr));
	snprintf(name, sizeof(name), "%s%sIP", prefix, side);
	err = dx__env_add(env, name, host);
	snprintf(name, sizeof(name), "%s%sPORT", prefix, side);
	return err ? err : dx__env_add(env, name, port);
}

int
dx__env_ucspi(struct dx_env *env, const char *proto,
              const struct dx_addr *local, const struct dx_addr *remote)
{
	int err;

	memset(env, 0, sizeof(*env));
	env->vars[env->count++] = (char *)dx__spawn_path;
	err = dx__env_add(env, "PROTO", proto);
	if (err == 0)
		err = env_add_addr(env, proto, "LOCAL", local);
	if (err == 0)
		err = env_add_addr(env, proto, "REMOTE", remote);
	return err;
}

int
dx__env_add_peercred(struct dx_env *env, int fd)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	char num[16];
	int err;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return 0; /* no credentials to pass: not an error */
	snprintf(num, sizeof(num), "%u", (unsigned)cred.uid);
	err = dx__env_add(env, "UNIXREMOTEEUID", num);
	snprintf(num, sizeof(num), "%u", (unsigned)cred.gid);
	if (err == 0)
		err = dx__env_add(env, "UNIXREMOTEEGID", num);
	snprintf(num, sizeof(num), "%d", (int)cred.pid);
	return err ? err : dx__env_add(env, "UNIXREMOTEPID", num);
}

int
dx__set_nonblock(int fd, int on)
{
	int flags = fcntl(fd, F_GETFL);

	if (flags < 0)
		return dx__neg_errno();
	flags = on ? flags | O_NONBLOCK : flags & ~O_NONBLOCK;
	return fcntl(fd, F_SETFL, flags) < 0 ? dx__neg_errno() : 0;
}
