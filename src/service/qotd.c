/* SPDX-License-Identifier: MIT */
/*
 * qotd.c - the Quote of the Day Protocol (RFC 865): one short message, at
 * most 512 characters, chosen at random per request from a built-in list
 * or from a file in the fortune format (quotations separated by lines
 * holding a single '%').
 */
#include "service/service.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define QOTD_MAX      512
#define QOTD_FILE_MAX (4 << 20)

static const char *builtin_text[] = {
        "Program testing can be used to show the presence of bugs, but never "
        "to show their absence.\r\n\t-- Edsger W. Dijkstra\r\n",
        "Be conservative in what you do, be liberal in what you accept from "
        "others.\r\n\t-- Jon Postel, RFC 761\r\n",
        "Simplicity is prerequisite for reliability.\r\n"
        "\t-- Edsger W. Dijkstra\r\n",
        "There are two ways of constructing a software design: one way is to "
        "make it so simple that there are obviously no deficiencies.\r\n"
        "\t-- C. A. R. Hoare\r\n",
        "The network is the computer.\r\n\t-- John Gage\r\n",
        "Write programs that do one thing and do it well. Write programs to "
        "work together.\r\n\t-- Doug McIlroy\r\n",
        "Any sufficiently advanced technology is indistinguishable from "
        "magic.\r\n\t-- Arthur C. Clarke\r\n",
        "Make it work, make it right, make it fast.\r\n\t-- Kent Beck\r\n",
};

static const struct dx_quotes builtin = {
        .text = builtin_text,
        .count = DX_ARRAY_LEN(builtin_text),
};

const struct dx_quotes *
dx__quotes_builtin(void)
{
	return &builtin;
}

/*
 * Reads the whole of PATH (at most QOTD_FILE_MAX bytes) into *OUT, which
 * the caller frees, NUL-terminated. Returns 0 or -errno.
 */
static int
read_file(const char *path, char **out)
{
	struct stat st;
	char *buf = NULL;
	ssize_t n;
	int fd;

	*out = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return dx__neg_errno();
	if (fstat(fd, &st) < 0) {
		n = dx__neg_errno();
		goto out;
	}
	n = st.st_size > QOTD_FILE_MAX ? -EFBIG : -ENOMEM;
	if (st.st_size <= QOTD_FILE_MAX)
		buf = malloc((size_t)st.st_size + 1);
	if (buf == NULL)
		goto out;
	n = dx_read_full(fd, buf, (size_t)st.st_size, DX_FOREVER, NULL);
	if (n >= 0) {
		buf[n] = '\0';
		*out = buf;
		buf = NULL;
	}
out:
	free(buf);
	close(fd);
	return n < 0 ? (int)n : 0;
}

/* Stores (or counts) the quotation [START, END); 0 when it is too long. */
static int
store_quote(char *start, char *end, const char **quotes, size_t *n)
{
	if ((size_t)(end - start) > QOTD_MAX)
		return 0;
	if (quotes != NULL) {
		quotes[*n] = start;
		*end = '\0';
	}
	(*n)++;
	return 1;
}

/*
 * Splits TEXT at lines holding a single '%'. With QUOTES NULL it only
 * counts; otherwise it stores each quotation and ends it in place. A
 * quotation longer than QOTD_MAX sets *BAD_LINE to its first line and
 * makes the count 0.
 */
static size_t
split_quotes(char *text, const char **quotes, size_t *bad_line)
{
	size_t n = 0, line = 1, start_line = 1;
	char *start = text, *p = text;

	while (*p != '\0') {
		size_t len = strcspn(p, "\n");
		char *next = p[len] == '\n' ? p + len + 1 : p + len;

		if (len == 1 && *p == '%') {
			if (p > start && !store_quote(start, p, quotes, &n))
				break;
			start = next;
			start_line = line + 1;
		}
		p = next;
		line++;
	}
	if (*p == '\0' && p > start && store_quote(start, p, quotes, &n))
		return n;
	if (*p == '\0' && p <= start)
		return n;
	*bad_line = start_line;
	return 0;
}

int
dx__quotes_load(struct dx_quotes *q, const char *path, char *why, size_t whylen)
{
	char *text = NULL;
	size_t count, bad_line = 0;
	int err;

	memset(q, 0, sizeof(*q));
	err = read_file(path, &text);
	if (err < 0 || text == NULL)
		return dx__why(why, whylen, err, "cannot read '%s': %s", path,
		               dx_strerror(err));
	count = split_quotes(text, NULL, &bad_line);
	if (count == 0) {
		free(text);
		if (bad_line)
			return dx__why(why, whylen, -EMSGSIZE,
			               "%s:%zu: quotation longer than %d bytes",
			               path, bad_line, QOTD_MAX);
		return dx__why(why, whylen, -ENODATA, "'%s' holds no quotation",
		               path);
	}
	q->text = calloc(count, sizeof(*q->text));
	if (q->text == NULL) {
		free(text);
		return -ENOMEM;
	}
	q->count = split_quotes(text, q->text, &bad_line);
	q->storage = text;
	return 0;
}

void
dx__quotes_free(struct dx_quotes *q)
{
	free(q->text);
	free(q->storage);
	memset(q, 0, sizeof(*q));
}

/* A random quotation from CONF's list, or the built-in one. */
static const char *
pick(const struct dx_service_conf *conf)
{
	const struct dx_quotes *q =
	        conf && conf->quotes ? conf->quotes : &builtin;

	return q->text[dx__random() % q->count];
}

static ssize_t
qotd_dgram(const struct dx_dgram_req *req)
{
	const char *text = pick(req->conf);
	size_t len = strlen(text);

	memcpy(req->reply, text, len);
	return (ssize_t)len;
}

static int
qotd_open(struct dx_conn *c)
{
	const char *text = pick(c->conf);

	return dx__stream_say(c, text, strlen(text));
}

static const struct dx_stream_ops qotd_stream = {
        .open = qotd_open,
        .input = dx__stream_ignore,
};

const struct dx_service dx__service_qotd = {
        .name = "qotd",
        .port = 17,
        .flags = DX_SVC_AMPLIFIES,
        .dgram = qotd_dgram,
        .stream = &qotd_stream,
        .summary = "sends a quotation (RFC 865)",
};
