/* SPDX-License-Identifier: MIT */
/*
 * answer.c - "--as SERVICE" for the clients: the answer of a classic
 * service that sends and closes (time, daytime) checked before it is
 * shown, so that a broken or hostile server is reported, not believed.
 * time (RFC 868): exactly 4 bytes, shown as an ISO 8601 UTC date read
 * with an era pivot (src/service/time.c), so that counts past the 2036
 * wrap show as 2036-2104. daytime (RFC 867): ASCII printing characters,
 * space, CR and LF only, at most CLI_ANSWER_MAX bytes: an endless stream
 * is cut off there, not copied.
 */
#include "cli.h"
#include "service/service.h"

#include <string.h>
#include <time.h>

int
cli_parse_answer(const char *command, const char *text)
{
	if (strcmp(text, "time") == 0)
		return CLI_AS_TIME;
	if (strcmp(text, "daytime") == 0)
		return CLI_AS_DAYTIME;
	cli_error("%s: bad value '%s' for --as (expected time or daytime)",
	          command, text);
	return -1;
}

int
cli_check_answer(int as, const uint8_t *buf, size_t n, char *why, size_t whylen)
{
	if (as == CLI_AS_TIME && n != 4) {
		snprintf(why, whylen,
		         "an answer of %zu bytes is not an RFC 868 time (4 "
		         "bytes)",
		         n);
		return -1;
	}
	if (as != CLI_AS_DAYTIME)
		return 0;
	if (n == 0 || n > CLI_ANSWER_MAX) {
		snprintf(why, whylen,
		         "an answer of %s%zu bytes is not an RFC 867 daytime "
		         "(1 to %d bytes)",
		         n > CLI_ANSWER_MAX ? "more than " : "",
		         n > CLI_ANSWER_MAX ? (size_t)CLI_ANSWER_MAX : n,
		         CLI_ANSWER_MAX);
		return -1;
	}
	for (size_t i = 0; i < n; i++)
		if ((buf[i] < 0x20 || buf[i] > 0x7e) && buf[i] != '\r' &&
		    buf[i] != '\n') {
			snprintf(why, whylen,
			         "byte %zu of the answer (0x%02x) is not "
			         "daytime text",
			         i, buf[i]);
			return -1;
		}
	return 0;
}

void
cli_print_answer(int as, const uint8_t *buf, size_t n)
{
	uint32_t count;
	time_t t;
	struct tm tm;
	char date[64];

	if (as != CLI_AS_TIME) {
		fwrite(buf, 1, n, stdout);
		return;
	}
	count = (uint32_t)buf[0] << 24 | (uint32_t)buf[1] << 16 |
	        (uint32_t)buf[2] << 8 | buf[3];
	t = (time_t)dx__rfc868_unix(count);
	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(date, sizeof(date), "%lld", (long long)t);
	printf("%s\n", date);
}
