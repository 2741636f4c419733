/* SPDX-License-Identifier: MIT */
/*
 * canary.c - an LD_PRELOAD library for reliability scenario S35: loaded
 * into a process, it leaves a mark beside itself, an empty file named
 * "loaded.COMM.PID", and does nothing else. The test starts the server
 * with it preloaded: the server's own mark shows that the preload took,
 * and the mark of any other process (an exec: program, or what that runs)
 * shows that LD_PRELOAD reached it. The directory comes from where the
 * library itself lies (dladdr), as the programs get no variable of ours.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

__attribute__((constructor)) static void
mark(void)
{
	char comm[64] = "?", path[4096];
	const char *slash;
	Dl_info self;
	ssize_t n;
	int fd;

	fd = open("/proc/self/comm", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		n = read(fd, comm, sizeof(comm) - 1);
		comm[n > 0 ? n : 0] = '\0';
		comm[strcspn(comm, "\n/")] = '\0';
		close(fd);
	}
	if (dladdr((void *)mark, &self) == 0 || self.dli_fname == NULL ||
	    (slash = strrchr(self.dli_fname, '/')) == NULL)
		return;
	snprintf(path, sizeof(path), "%.*s/loaded.%s.%d",
	         (int)(slash - self.dli_fname), self.dli_fname, comm,
	         (int)getpid());
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd >= 0)
		close(fd);
}
