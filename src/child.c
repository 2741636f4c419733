/* SPDX-License-Identifier: MIT */
/*
 * child.c - runs a program for a connection or a datagram the way a
 * careful inetd does: the given descriptors become 0, 1 and 2 and every
 * other descriptor is closed, every signal disposition is reset to its
 * default and the mask emptied, the program leads a process group of its
 * own (so a timeout can end it together with its children), and it sees
 * only the environment it is given.
 *
 * The child is started with clone(CLONE_VM | CLONE_VFORK), as vfork(2)
 * and glibc's posix_spawn do, not with fork(2): it borrows the caller's
 * memory instead of copying it, and the calling thread sleeps until the
 * program is running. A fork copies every page table of the server and,
 * in a process with many threads (the thread model), holds the memory
 * map's lock while it does, stalling every other thread; the cost of a
 * spawn would grow with the server. The price is discipline in the
 * child: it runs on a stack of its own, shares every byte of memory with
 * a live multi-threaded process, and so makes only raw system calls (no
 * allocation, no lock, no stdio) until execve(2); it reports a failure by
 * storing errno where the parent reads it once it wakes.
 */
#include "child.h"
#include "service/service.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/resource.h>
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

/*
 * The child's stack. It lives in the calling thread's frame, which sleeps
 * while the child runs; the child needs well under a page of it.
 */
#define CHILD_STACK 8192

/* What the child reads, and the one thing it writes, in shared memory. */
struct spawn_args {
	char *const *argv;
	char *const *envp;
	const int *fds;
	int newgroup;
	const struct dx_rlimits *limits;
	volatile int err; /* errno of the step that failed; 0 if none */
};

/*
 * In the child: every signal to its default action, none blocked. The
 * mask comes last: signals stay blocked (the parent blocked all of them
 * around the clone) until no handler of the server's is left to run one
 * in memory the server shares.
 */
static void __attribute__((no_sanitize_address)) reset_signals(void)
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
 * (in the child's own copy of the table). Closed now, not marked
 * close-on-exec: the parent wakes as soon as execve(2) has replaced the
 * memory, before the kernel closes close-on-exec descriptors, and a copy
 * still open here would keep alive a file the parent has closed, which an
 * epoll set goes on reporting under its old tag until the last copy goes.
 */
static int __attribute__((no_sanitize_address)) setup_fds(const int fds[3])
{
	for (int i = 0; i < 3; i++) {
		if (fds[i] == i ? fcntl(i, F_SETFD, 0) < 0
		                : dup2(fds[i], i) < 0)
			return -1;
	}
	return close_range(3, ~0U, 0);
}

/*
 * The child's side: never returns. Not instrumented by AddressSanitizer,
 * which would poison and unpoison stack shadow that belongs to the
 * parent's thread.
 */
/* Sets one limit to VALUE (0: leaves it); the hard limit to HARD. */
static int __attribute__((no_sanitize_address))
set_limit(int resource, uint64_t value, uint64_t hard)
{
	struct rlimit r = {.rlim_cur = value, .rlim_max = hard};

	return value == 0 ? 0 : setrlimit(resource, &r);
}

static int __attribute__((no_sanitize_address))
set_limits(const struct dx_rlimits *l)
{
	if (l == NULL)
		return 0;
	if (set_limit(RLIMIT_CPU, l->cpu_s, l->cpu_s + 1) < 0 ||
	    set_limit(RLIMIT_NOFILE, l->files, l->files) < 0 ||
	    set_limit(RLIMIT_AS, l->memory, l->memory) < 0)
		return -1;
	return 0;
}

static int __attribute__((noreturn, no_sanitize_address)) child_exec(void *arg)
{
	struct spawn_args *a = arg;

	reset_signals();
	if ((a->newgroup && setpgid(0, 0) < 0) || set_limits(a->limits) < 0 ||
	    setup_fds(a->fds) < 0) {
		a->err = errno;
	} else {
		execve(a->argv[0], a->argv, a->envp);
		a->err = errno;
	}
	_exit(127);
}

int
dx__spawn(char *const argv[], char *const envp[], const int fds[3],
          int newgroup, const struct dx_rlimits *limits, pid_t *pid)
{
	_Alignas(16) unsigned char stack[CHILD_STACK];
	struct spawn_args a = {argv, envp, fds, newgroup, limits, 0};
	uint64_t all = ~UINT64_C(0), old = 0;
	int err = 0;

	/* No handler may run in the child before it resets them all. */
	syscall(SYS_rt_sigprocmask, SIG_SETMASK, &all, &old, sizeof(old));
	*pid = clone(child_exec, stack + sizeof(stack),
	             CLONE_VM | CLONE_VFORK | SIGCHLD, &a);
	if (*pid < 0)
		err = dx__neg_errno();
	syscall(SYS_rt_sigprocmask, SIG_SETMASK, &old, NULL, sizeof(old));
	/* Awake: the program runs, or the child has exited and said why. */
	if (err == 0 && a.err != 0) {
		err = -a.err;
		while (waitpid(*pid, NULL, 0) < 0 && errno == EINTR)
			;
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
