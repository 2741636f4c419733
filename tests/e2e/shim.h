/* SPDX-License-Identifier: MIT */
/*
 * shim.h - what the LD_PRELOAD shims of the end-to-end tests (short_io.c,
 * malloc_fail.c) share: a repeatable hash for their random choices and the
 * control file the test reads their counts from. Header-only: each shim
 * is built from its one .c file by the test (conftest.py, build_shim).
 */
#ifndef DX_TEST_SHIM_H
#define DX_TEST_SHIM_H

#include <fcntl.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

/* splitmix64: a well-mixed 64-bit hash of X (a call's number and a seed). */
static inline uint64_t
dx_shim_mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15u;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9u;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebu;
	return x ^ (x >> 31);
}

/*
 * The first LEN bytes of the file PATH, mapped shared, so that the test and
 * every process the shim is loaded into (forked children included) see the
 * same counts; NULL when PATH is NULL or cannot be mapped.
 */
static inline void *
dx_shim_map(const char *path, size_t len)
{
	void *p;
	int fd;

	if (path == NULL || (fd = open(path, O_RDWR | O_CLOEXEC)) < 0)
		return NULL;
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	return p == MAP_FAILED ? NULL : p;
}

#endif /* DX_TEST_SHIM_H */
