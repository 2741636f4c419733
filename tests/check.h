/* SPDX-License-Identifier: MIT */
/*
 * check.h - the unit tests' assertion header. Each test file is its own
 * executable (CTest runs it in its own process with a timeout); a failed
 * check prints file, line, the expression and both values, and the file
 * goes on so that one run shows every failure. main() ends with
 * CHECK_DONE(), which prints "N passed, N failed" and sets the exit code.
 *
 *   TEST(parse_port) { CHECK_INT_EQ(dx_port_parse("7", &p), 0); }
 *   int main(void) { RUN(parse_port); CHECK_DONE(); }
 */
#ifndef DX_CHECK_H
#define DX_CHECK_H

#include "config.h" /* _GNU_SOURCE before any system header */

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "duplex.h"

static int check_passed, check_failed;
static int check_test_failed;

#define TEST(name) static void test_##name(void)

#define RUN(name)                                   \
	do {                                        \
		check_test_failed = 0;              \
		test_##name();                      \
		if (check_test_failed) {            \
			check_failed++;             \
			printf("FAIL %s\n", #name); \
		} else {                            \
			check_passed++;             \
			printf("ok   %s\n", #name); \
		}                                   \
	} while (0)

#define CHECK_FAIL_(...)                                 \
	do {                                             \
		printf("  %s:%d: ", __FILE__, __LINE__); \
		printf(__VA_ARGS__);                     \
		printf("\n");                            \
		check_test_failed = 1;                   \
	} while (0)

#define CHECK(expr)                                      \
	do {                                             \
		if (!(expr))                             \
			CHECK_FAIL_("CHECK(%s)", #expr); \
	} while (0)

#define CHECK_INT_EQ(a, b)                                                   \
	do {                                                                 \
		intmax_t a_ = (intmax_t)(a), b_ = (intmax_t)(b);             \
		if (a_ != b_)                                                \
			CHECK_FAIL_("%s == %s: %jd != %jd", #a, #b, a_, b_); \
	} while (0)

#define CHECK_STR_EQ(a, b)                                                   \
	do {                                                                 \
		const char *a_ = (a), *b_ = (b);                             \
		if (a_ == NULL || b_ == NULL || strcmp(a_, b_) != 0)         \
			CHECK_FAIL_("%s == %s: \"%s\" != \"%s\"", #a, #b,    \
			            a_ ? a_ : "(null)", b_ ? b_ : "(null)"); \
	} while (0)

/* Checks that a library call succeeded, printing dx_strerror() if not. */
#define CHECK_OK(call)                                                       \
	do {                                                                 \
		intmax_t rc_ = (intmax_t)(call);                             \
		if (rc_ < 0)                                                 \
			CHECK_FAIL_("%s: %s", #call, dx_strerror((int)rc_)); \
	} while (0)

#define CHECK_DONE()                                                          \
	do {                                                                  \
		printf("%d passed, %d failed\n", check_passed, check_failed); \
		return check_failed ? 1 : 0;                                  \
	} while (0)

#endif /* DX_CHECK_H */
