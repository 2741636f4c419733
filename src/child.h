/* SPDX-License-Identifier: MIT */
/*
 * child.h - running a program per connection or per datagram (child.c),
 * and the UCSPI environment it gets.
 */
#ifndef DX_CHILD_H
#define DX_CHILD_H

#include "internal.h"

struct dx_rlimits;

#include <stdio.h>

/*
 * A laundered environment built in place: the fixed PATH, PROTO and the
 * UCSPI address variables, plus what a caller adds. Nothing of the
 * server's own environment is inherited.
 */
struct dx_env {
	char *vars[24];
	size_t count;
	char buf[1024];
	size_t used;
};

extern const char dx__spawn_path[];

/*
 * Fills ENV with PATH, PROTO=PROTO and PROTO{LOCAL,REMOTE}{IP,PORT} (or
 * ...PATH for unix sockets), as tcp-environ(5) describes: PROTO is "TCP",
 * "UDP", "UNIX" or "UNIXGRAM". Returns 0 or -E2BIG.
 */
int dx__env_ucspi(struct dx_env *env, const char *proto,
                  const struct dx_addr *local, const struct dx_addr *remote);
/* Adds NAME=VALUE to ENV. Returns 0 or -E2BIG. */
int dx__env_add(struct dx_env *env, const char *name, const char *value);

/*
 * Starts ARGV[0] (an absolute path) with FDS as its descriptors 0, 1, 2
 * (each FDS[i] is either i or a descriptor above 2),
 * no other descriptor open, default signal dispositions, an empty signal
 * mask, and ENVP. With NEWGROUP it leads a process group of its own (so
 * a timeout can end it with its children); otherwise it stays in the
 * caller's. LIMITS (or NULL) are set before the program starts. Returns 0
 * and the child's pid, or -errno (the program could not be started).
 */
int dx__spawn(char *const argv[], char *const envp[], const int fds[3],
              int newgroup, const struct dx_rlimits *limits, pid_t *pid);

/*
 * Adds UNIXREMOTEEUID, UNIXREMOTEEGID and UNIXREMOTEPID from the unix
 * socket FD's SO_PEERCRED. Returns 0 or -E2BIG.
 */
int dx__env_add_peercred(struct dx_env *env, int fd);

/*
 * Sets or clears O_NONBLOCK on FD's open file. A program is given its
 * socket blocking, as any program expects its standard input and output;
 * the server sets it back before it drains the socket itself.
 */
int dx__set_nonblock(int fd, int on);

/* pidfd_open(2): a descriptor that polls readable when PID exits. */
int dx__pidfd_open(pid_t pid);

#endif /* DX_CHILD_H */
