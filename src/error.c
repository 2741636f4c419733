/* SPDX-License-Identifier: MIT */
/*
 * error.c - the library's error codes and their sentences. System errors
 * are -errno; the library's own codes and the resolver's are mapped into
 * ranges above any errno so one int carries every failure.
 */
#include "internal.h"

#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const own_errors[] = {
        [DX_ESCHEME - DX_EBASE] = "unknown endpoint scheme",
        [DX_ESYNTAX - DX_EBASE] = "malformed endpoint",
        [DX_EHOST - DX_EBASE] = "malformed host",
        [DX_EPORT - DX_EBASE] = "port is not a decimal number",
        [DX_EPORTRANGE - DX_EBASE] = "port is out of range 0-65535",
        [DX_ENOPORT - DX_EBASE] = "port is missing",
        [DX_ESERVICE - DX_EBASE] = "unknown service name",
        [DX_EPATH - DX_EBASE] = "unix socket path is empty or too long",
        [DX_ETRUNC - DX_EBASE] = "datagram truncated",
};

/* The resolver codes glibc defines, in the order we number them. */
static const int eai_codes[] = {
        EAI_BADFLAGS, EAI_NONAME,   EAI_AGAIN,      EAI_FAIL,
        EAI_FAMILY,   EAI_SOCKTYPE, EAI_SERVICE,    EAI_MEMORY,
        EAI_OVERFLOW, EAI_NODATA,   EAI_ADDRFAMILY,
};

int
dx__eai_error(int eai)
{
	if (eai == EAI_SYSTEM)
		return dx__neg_errno();
	for (size_t i = 0; i < DX_ARRAY_LEN(eai_codes); i++)
		if (eai_codes[i] == eai)
			return -(DX_EAI_BASE + 1 + (int)i);
	return -(DX_EAI_BASE + 1 + (int)DX_ARRAY_LEN(eai_codes));
}

int
dx__neg_errno(void)
{
	return errno > 0 ? -errno : -EIO;
}

const char *
dx_strerror(int err)
{
	int code = -err;

	if (code > DX_EBASE && code < DX_ELAST && own_errors[code - DX_EBASE])
		return own_errors[code - DX_EBASE];
	if (code > DX_EAI_BASE) {
		size_t i = (size_t)(code - DX_EAI_BASE - 1);
		if (i < DX_ARRAY_LEN(eai_codes))
			return gai_strerror(eai_codes[i]);
		return "unknown resolver error";
	}
	if (code > 0 && code < DX_EBASE)
		return strerror(code);
	return err == 0 ? "success" : "unknown error";
}

int
dx__why(char *why, size_t whylen, int err, const char *fmt, ...)
{
	va_list ap;

	if (why != NULL && whylen > 0) {
		va_start(ap, fmt);
		vsnprintf(why, whylen, fmt, ap);
		va_end(ap);
	}
	return err;
}

const char *
dx__errno_name(int err)
{
	const char *name = NULL;

#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 32)
	name = strerrorname_np(-err);
#endif
	return name != NULL ? name : "E?";
}
