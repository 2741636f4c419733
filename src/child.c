/* SPDX-License-Identifier: MIT */
/*
 * child.c - runs a program for a connection or a datagram the way a
 * careful inetd does: the given descriptors become 0, 1 and 2 and every
 * other descriptor is closed, every signal disposition is reset to its
 * default and the mask emptied, the program leads a process group of its
 * own (so a timeout can end it together with its children), and it sees
 * only the environment it is given.
 */
#include "child.h"

#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The fixed PATH every spawned program gets. */
const char dx__spawn_path[] = "PATH=/usr/local/bin:/usr/bin:/bin";

static int
setup_actions(posix_spawn_file_actions_t *fa, const int fds[3])
{
	int err = 0;

	for (int i = 0; i < 3 && err == 0; i++)
		err = posix_spawn_file_actions_adddup2(fa, fds[i], i);
	if (err == 0)
		err = posix_spawn_file_actions_addclosefrom_np(fa, 3);
	return -err;
}

static int
setup_attr(posix_spawnattr_t *attr, int newgroup)
{
	sigset_t all, none;
	int err;

	sigfillset(&all);
	sigemptyset(&none);
	err = posix_spawnattr_setflags(
	        attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK |
	                      (newgroup ? POSIX_SPAWN_SETPGROUP : 0));
	if (err == 0)
		err = posix_spawnattr_setsigdefault(attr, &all);
	if (err == 0)
		err = posix_spawnattr_setsigmask(attr, &none);
	if (err == 0)
		err = posix_spawnattr_setpgroup(attr, 0);
	return -err;
}

int
dx__spawn(char *const argv[], char *const envp[], const int fds[3],
          int newgroup, pid_t *pid)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	int err;

	if (posix_spawn_file_actions_init(&fa) != 0)
		return -ENOMEM;
	if (posix_spawnattr_init(&attr) != 0) {
		posix_spawn_file_actions_destroy(&fa);
		return -ENOMEM;
	}
	err = setup_actions(&fa, fds);
	if (err == 0)
		err = setup_attr(&attr, newgroup);
	if (err == 0)
		err = -posix_spawn(pid, argv[0], &fa, &attr, argv, envp);
	posix_spawnattr_destroy(&attr);
	posix_spawn_file_actions_destroy(&fa);
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
