/* SPDX-License-Identifier: MIT */
/*
 * malloc_fail.c - an LD_PRELOAD shim for reliability scenario S29: while
 * armed, it fails one in DX_SHIM_EVERY calls to malloc, calloc, realloc,
 * posix_memalign and aligned_alloc with ENOMEM, which calls is decided by
 * a hash of the call's number and DX_SHIM_SEED, so a run is repeatable.
 *
 * The test controls it through DX_SHIM_CTL, a file of at least 24 bytes
 * mapped shared at load (so forked children see the same page): byte 0
 * arms it ('1') or disarms it (anything else); bytes 8-15 count the calls
 * made while armed and bytes 16-23 the failures, as native 64-bit
 * integers. Built by the test (conftest.py, build_shim) with the system's
 * C compiler; it uses glibc's __libc_* allocator entry points, so it
 * needs no dlsym() and allocates nothing itself.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shim.h"

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);

struct ctl {
	char armed;
	char pad[7];
	uint64_t calls, fails;
};

static struct ctl *ctl;
static uint64_t every, seed;

__attribute__((constructor)) static void
shim_init(void)
{
	const char *path = getenv("DX_SHIM_CTL");
	const char *e = getenv("DX_SHIM_EVERY");
	const char *s = getenv("DX_SHIM_SEED");

	every = e ? strtoull(e, NULL, 10) : 0;
	seed = s ? strtoull(s, NULL, 10) : 0;
	if (every > 0)
		ctl = dx_shim_map(path, sizeof(struct ctl));
}

/* 1 when this call is to fail (and counts it). */
static int
fail_now(void)
{
	uint64_t n;

	if (ctl == NULL ||
	    __atomic_load_n(&ctl->armed, __ATOMIC_RELAXED) != '1')
		return 0;
	n = __atomic_fetch_add(&ctl->calls, 1, __ATOMIC_RELAXED);
	if (dx_shim_mix(n ^ seed) % every != 0)
		return 0;
	__atomic_fetch_add(&ctl->fails, 1, __ATOMIC_RELAXED);
	errno = ENOMEM;
	return 1;
}

void *
malloc(size_t n)
{
	return fail_now() ? NULL : __libc_malloc(n);
}

void *
calloc(size_t n, size_t size)
{
	return fail_now() ? NULL : __libc_calloc(n, size);
}

void *
realloc(void *p, size_t n)
{
	return fail_now() ? NULL : __libc_realloc(p, n);
}

int
posix_memalign(void **out, size_t align, size_t n)
{
	void *p;

	if (fail_now())
		return ENOMEM;
	p = __libc_memalign(align, n);
	if (p == NULL)
		return ENOMEM;
	*out = p;
	return 0;
}

void *
aligned_alloc(size_t align, size_t n)
{
	return fail_now() ? NULL : __libc_memalign(align, n);
}
