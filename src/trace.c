/* SPDX-License-Identifier: MIT */
/*
 * trace.c - the --trace hook: the socket and I/O layers describe each call
 * in one line and hand it to a process-wide function, so the figures of
 * the socket interface can be watched as they happen.
 */
#include "internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

/*
 * The hook and its context. They are plain variables: dx_trace_set() is
 * meant to be called once at start-up, before any thread that traces
 * exists, and the hot path then pays one load and one branch.
 */
static dx_trace_fn trace_fn;
static void *trace_ctx;

void
dx_trace_set(dx_trace_fn fn, void *ctx)
{
	trace_ctx = ctx;
	trace_fn = fn;
}

int
dx_trace_on(void)
{
	return trace_fn != NULL;
}

/*
 * Formats into a stack buffer (a longer line is cut, never allocated) and
 * calls the hook. errno is preserved, because callers trace between a
 * failing system call and the code that reads errno.
 */
void
dx_trace(const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int saved = errno;

	if (trace_fn == NULL)
		return;
	va_start(ap, fmt);
	(void)vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	trace_fn(trace_ctx, line);
	errno = saved;
}
