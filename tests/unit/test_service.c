/* SPDX-License-Identifier: MIT */
/*
 * test_service.c - the services' datagram handlers and their helpers: the
 * chargen pattern, the RFC 868 clock across the 2036 wrap, the daytime
 * line, qotd quotation files, and the table.
 */
#include "check.h"
#include "service/service.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

static uint8_t reply[DX_REQUEST_MAX];

static ssize_t
serve(const struct dx_service *svc, const char *data, size_t len,
      const struct dx_service_conf *conf)
{
	struct dx_addr peer = {.len = sizeof(struct sockaddr_in)};
	struct dx_dgram_req req = {
	        .data = (const uint8_t *)data,
	        .len = len,
	        .peer = &peer,
	        .local = &peer,
	        .conf = conf,
	        .reply = reply,
	};

	peer.u.in.sin_family = AF_INET;
	return svc->dgram(&req);
}

TEST(table_finds_every_service)
{
	size_t n;
	const struct dx_service *const *t = dx__service_table(&n);

	CHECK_INT_EQ(n, 7);
	for (size_t i = 0; i < n; i++)
		CHECK(dx__service_find(t[i]->name) == t[i]);
	CHECK(dx__service_find("ECHO") == &dx__service_echo);
	CHECK(dx__service_find("nosuch") == NULL);
	CHECK_INT_EQ(dx__service_find("daytime")->port, 13);
}

TEST(echo_returns_request_even_empty)
{
	CHECK_INT_EQ(serve(&dx__service_echo, "hello", 5, NULL), 5);
	CHECK(memcmp(reply, "hello", 5) == 0);
	CHECK_INT_EQ(serve(&dx__service_echo, "", 0, NULL), 0);
	CHECK_INT_EQ(serve(&dx__service_discard, "x", 1, NULL), DX_NOREPLY);
}

TEST(chargen_pattern_is_xinetds)
{
	uint8_t buf[74 * 96];
	unsigned line = 0, col = 0;

	dx__chargen_fill(buf, sizeof(buf), &line, &col);
	/* Line 0 starts with '!', line 1 with '"'; 93 characters '!'..'}'. */
	CHECK_INT_EQ(buf[0], '!');
	CHECK_INT_EQ(buf[71], '!' + 71);
	CHECK_INT_EQ(buf[72], '\r');
	CHECK_INT_EQ(buf[73], '\n');
	CHECK_INT_EQ(buf[74], '"');
	CHECK_INT_EQ(buf[(size_t)74 * 24 + 71], '!' + (24 + 71) % 93);
	CHECK_INT_EQ(buf[(size_t)74 * 92], '}');
	/* Lines 93 and 94 start over at '!' and '"'; so does line 95. */
	CHECK_INT_EQ(buf[(size_t)74 * 93], '!');
	CHECK_INT_EQ(buf[(size_t)74 * 94], '"');
	CHECK_INT_EQ(buf[(size_t)74 * 95], '!');
	CHECK_INT_EQ(line, 1);
	CHECK_INT_EQ(col, 0);
}

TEST(chargen_fill_resumes_where_it_stopped)
{
	uint8_t whole[300], parts[300];
	unsigned l1 = 0, c1 = 0, l2 = 0, c2 = 0;

	dx__chargen_fill(whole, sizeof(whole), &l1, &c1);
	dx__chargen_fill(parts, 100, &l2, &c2);
	dx__chargen_fill(parts + 100, 200, &l2, &c2);
	CHECK(memcmp(whole, parts, sizeof(whole)) == 0);
}

TEST(chargen_datagram_at_most_512)
{
	int saw_long = 0;

	for (int i = 0; i < 200; i++) {
		ssize_t n = serve(&dx__service_chargen, "", 0, NULL);
		CHECK(n >= 0 && n <= 512);
		saw_long |= n > 256;
		if (n > 0)
			CHECK_INT_EQ(reply[0], '!');
	}
	CHECK(saw_long);
}

TEST(rfc868_time_and_the_2036_wrap)
{
	CHECK_INT_EQ(dx__rfc868_time(0), 2208988800u);
	/* 2036-02-07T06:28:15Z is the last second before the wrap. */
	CHECK_INT_EQ(dx__rfc868_time(2085978495), 0xffffffffu);
	CHECK_INT_EQ(dx__rfc868_time(2085978496), 0);
	CHECK_INT_EQ(dx__rfc868_time(2085978497), 1);
	CHECK_INT_EQ(serve(&dx__service_time, "", 0, NULL), 4);
}

TEST(rfc868_era_pivot)
{
	/* Both sides of the wrap, today, and the ends of the window. */
	static const int64_t when[] = {0,          1796083200, 2085978495,
	                               2085978496, 2085978497, 4233462143,
	                               -61505152};

	for (size_t i = 0; i < sizeof(when) / sizeof(when[0]); i++)
		CHECK_INT_EQ(dx__rfc868_unix(dx__rfc868_time(when[i])),
		             when[i]);
	CHECK_INT_EQ(dx__rfc868_unix(0), 2085978496);
	CHECK_INT_EQ(dx__rfc868_unix(0x7fffffffu), 2085978496 + 0x7fffffffLL);
	CHECK_INT_EQ(dx__rfc868_unix(0x80000000u), -61505152);
}

TEST(daytime_is_ctime_line)
{
	char line[64];
	size_t n;

	setenv("TZ", "UTC", 1);
	n = dx__daytime_format(0, line, sizeof(line));
	CHECK_STR_EQ(line, "Thu Jan  1 00:00:00 1970\r\n");
	CHECK_INT_EQ(n, 26);
	CHECK_INT_EQ(serve(&dx__service_daytime, "", 0, NULL), 26);
}

static char *
write_temp(const char *text)
{
	static char path[] = "/tmp/dx-quotes-XXXXXX";
	int fd;

	strcpy(path, "/tmp/dx-quotes-XXXXXX");
	fd = mkstemp(path);
	if (fd < 0)
		return NULL;
	if (write(fd, text, strlen(text)) < 0)
		path[0] = '\0';
	close(fd);
	return path;
}

TEST(qotd_file_is_split_at_percent_lines)
{
	struct dx_quotes q;
	struct dx_service_conf conf = {.svc = &dx__service_qotd};
	char why[256];
	char *path = write_temp("first\nquote\n%\nsecond\n%\n%\n");
	ssize_t n;

	CHECK_OK(dx__quotes_load(&q, path, why, sizeof(why)));
	CHECK_INT_EQ(q.count, 2);
	CHECK_STR_EQ(q.text[0], "first\nquote\n");
	CHECK_STR_EQ(q.text[1], "second\n");
	conf.quotes = &q;
	n = serve(&dx__service_qotd, "", 0, &conf);
	CHECK(n == 12 || n == 7);
	dx__quotes_free(&q);
	unlink(path);
}

TEST(qotd_rejects_long_quote_and_empty_file)
{
	struct dx_quotes q;
	char why[256], big[700];
	char *path;

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	path = write_temp(big);
	CHECK(dx__quotes_load(&q, path, why, sizeof(why)) < 0);
	CHECK(strstr(why, "longer than 512") != NULL);
	CHECK(strstr(why, path) != NULL);
	unlink(path);
	path = write_temp("%\n%\n");
	CHECK(dx__quotes_load(&q, path, why, sizeof(why)) < 0);
	CHECK(strstr(why, "no quotation") != NULL);
	unlink(path);
	CHECK(dx__quotes_load(&q, "/nonexistent/q", why, sizeof(why)) ==
	      -ENOENT);
}

TEST(builtin_quotes_fit_rfc865)
{
	const struct dx_quotes *q = dx__quotes_builtin();

	CHECK(q->count > 0);
	for (size_t i = 0; i < q->count; i++)
		CHECK(strlen(q->text[i]) <= 512);
}

int
main(void)
{
	RUN(table_finds_every_service);
	RUN(echo_returns_request_even_empty);
	RUN(chargen_pattern_is_xinetds);
	RUN(chargen_fill_resumes_where_it_stopped);
	RUN(chargen_datagram_at_most_512);
	RUN(rfc868_time_and_the_2036_wrap);
	RUN(rfc868_era_pivot);
	RUN(daytime_is_ctime_line);
	RUN(qotd_file_is_split_at_percent_lines);
	RUN(qotd_rejects_long_quote_and_empty_file);
	RUN(builtin_quotes_fit_rfc865);
	CHECK_DONE();
}
