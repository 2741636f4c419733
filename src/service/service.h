/* SPDX-License-Identifier: MIT */
/*
 * service.h - the service seam. A service is written once and runs under
 * every server: a datagram handler (request bytes and peer in, reply bytes
 * or none out) for the iterative server, and a stream handler written as a
 * small non-blocking state machine for the concurrent server's models.
 * Each service is one file and one row of the table in table.c, as
 * inetd's biltins[] is.
 */
#ifndef DX_SERVICE_H
#define DX_SERVICE_H

#include "internal.h"

#include <stdint.h>

/* Largest UDP payload over IPv4: 65,535 - 20 (IP) - 8 (UDP). */
#define DX_DGRAM_MAX 65507
/*
 * The largest request the iterative server takes whole, and so the size of
 * every reply buffer: a handler may answer with as many bytes as it was
 * sent (echo). It is larger than DX_DGRAM_MAX: UDP over IPv6 carries up to
 * 65,527 bytes (the IPv6 header is not inside the 16-bit length), and a
 * unix datagram can be larger still; anything longer arrives truncated and
 * is dropped, never half-answered.
 */
#define DX_REQUEST_MAX 65536

/* The reply a datagram handler returns when it sends nothing. */
#define DX_NOREPLY (-1)

/* Service flags. */
#define DX_SVC_AMPLIFIES 0x1u /* a reply may outweigh its request */
#define DX_SVC_EXEC      0x2u /* runs a program; needs argv */
/*
 * Its stream output is its input, byte for byte and nothing else (echo):
 * a model may queue input as output itself (read into the output buffer,
 * or splice(2) a bulk stream so the bytes never enter user space) and
 * then calls input() only for the end of file.
 */
#define DX_SVC_MIRROR 0x4u

struct dx_quotes;

/*
 * Resource limits an exec: program starts under, set between fork and
 * execve; 0 leaves a limit as the server's own. Soft and hard limit are
 * the same, but for CPU time, where SIGXCPU at the limit is followed by
 * SIGKILL one second later for a program that ignores it.
 */
struct dx_rlimits {
	uint64_t cpu_s;  /* RLIMIT_CPU, seconds */
	uint64_t files;  /* RLIMIT_NOFILE */
	uint64_t memory; /* RLIMIT_AS, bytes */
};

/*
 * How one service is configured on one listener: what the table row does
 * not fix. Owned by the server's configuration.
 */
struct dx_service_conf {
	const struct dx_service *svc;
	char **argv;                    /* exec: program and arguments */
	int64_t exec_timeout_ms;        /* exec: kill the run after this */
	struct dx_rlimits rlimits;      /* exec: the program's limits */
	const struct dx_quotes *quotes; /* qotd: the quotations */
};

/* One datagram request, as the iterative server hands it to a service. */
struct dx_dgram_req {
	const uint8_t *data;
	size_t len;                  /* at most DX_REQUEST_MAX */
	const struct dx_addr *peer;  /* the sender */
	const struct dx_addr *local; /* the address it arrived on */
	const struct dx_service_conf *conf;
	uint8_t *reply; /* DX_REQUEST_MAX bytes for the reply */
	/*
	 * A handler that waits (exec) also watches CANCEL_FD (or not, if -1);
	 * when it is readable it calls CANCELLED(CANCEL_CTX), and abandons
	 * the request if that returns nonzero. The server passes its signal
	 * descriptor, so SIGTERM is not kept waiting by a running program.
	 */
	int cancel_fd;
	int (*cancelled)(void *ctx);
	void *cancel_ctx;
};

/*
 * Serves one datagram. Returns the reply's length (0 is a valid, empty
 * reply), DX_NOREPLY for none, or -errno when serving failed (counted,
 * no reply).
 */
typedef ssize_t (*dx_dgram_fn)(const struct dx_dgram_req *req);

/*
 * A connection as a stream service sees it. The model owns the storage
 * and the descriptor; the service only queues output and keeps a few
 * words of state. Kept small: an idle connection costs this much.
 */
struct dx_bufpool;

/*
 * A connection's peer, kept small (20 bytes, not a 132-byte dx_addr):
 * an IPv4 address in ADDR's first 4 bytes or an IPv6 one (its scope id is
 * not kept), the port in network order; FAMILY 0 for a unix-socket peer,
 * which has no address worth naming.
 */
struct dx_peer {
	uint8_t addr[16];
	uint16_t port;
	uint8_t family;
};

struct dx_conn {
	int fd;
	uint32_t flags;   /* DX_CONN_* below */
	uint8_t *out;     /* output buffer, DX_CONN_BUF bytes, or NULL */
	uint32_t out_off; /* first unsent byte */
	uint32_t out_len; /* end of queued bytes */
	uint32_t st[2];   /* the service's own state */
	const struct dx_service_conf *conf;
	struct dx_bufpool *pool;
	int64_t started_ms, active_ms, wrote_ms, drain_ms;
	int64_t now_ms; /* the time of the event being handled */
	int pipe[2];    /* a mirror's bulk stream: read end, write end */
	uint32_t piped; /* bytes in the pipe, sent before anything else */
	uint32_t pipe_cap;
	/* Bytes received from and sent to the peer, drained input included:
	 * for the line that logs the connection's end. */
	uint64_t bytes_in, bytes_out;
	struct dx_peer peer; /* for that line too */
};

#define DX_CONN_BUF 16384

#define DX_CONN_WANT_WRITE 0x01u /* call writable() when there is room */
#define DX_CONN_EOF_IN     0x02u /* the peer half-closed */
#define DX_CONN_DONE       0x04u /* the service has no more to say */
#define DX_CONN_SHUT_WR    0x08u /* we sent our FIN; draining input */
#define DX_CONN_SPLICE     0x10u /* a mirror's input goes through pipe[] */
#define DX_CONN_PIPE_FULL  0x20u /* the pipe took no more: wait till empty */
#define DX_CONN_BLOCKING   0x40u /* read and send wait (blocking models) */
#define DX_CONN_PROCESS    0x80u /* its process serves it alone (fork) */

/* Returned by a stream handler: go on, or output is complete. */
#define DX_STREAM_MORE 0
#define DX_STREAM_DONE 1

/*
 * A stream service: a small non-blocking state machine. Each handler
 * returns DX_STREAM_MORE, DX_STREAM_DONE (once queued output is sent the
 * server half-closes and drains, so nothing is lost to a reset), or
 * -errno to abort the connection. Blocking models drive it in a loop,
 * event models from readiness or completions; it never blocks.
 */
struct dx_stream_ops {
	/* The connection opened. */
	int (*open)(struct dx_conn *c);
	/*
	 * LEN bytes arrived; LEN is never more than dx_conn_space() at the
	 * call. LEN == 0 means the peer half-closed (end of file).
	 */
	int (*input)(struct dx_conn *c, const uint8_t *data, size_t len);
	/* There is room for output and DX_CONN_WANT_WRITE is set. */
	int (*writable)(struct dx_conn *c);
};

/* Room left in C's output buffer. */
size_t dx_conn_space(const struct dx_conn *c);
/*
 * Queues LEN bytes of output. Returns how many were queued (less than LEN
 * only when the buffer filled, or when no buffer could be had: -ENOMEM).
 */
ssize_t dx_conn_write(struct dx_conn *c, const void *data, size_t len);
/* Reserves the whole free space of the buffer for the caller to fill;
 * *LEN receives its size. Returns NULL when there is none. */
uint8_t *dx_conn_reserve(struct dx_conn *c, size_t *len);
/* Commits LEN bytes written into a reservation. */
void dx_conn_commit(struct dx_conn *c, size_t len);

/*
 * A row of the service table. NAME is what users type; PORT the IANA
 * well-known port the default table serves it on.
 */
struct dx_service {
	const char *name;
	uint16_t port;
	unsigned flags;
	dx_dgram_fn dgram;
	const struct dx_stream_ops *stream; /* NULL for exec: it spawns */
	const char *summary;
};

/* Finds a service by name ("echo"; "exec" for exec:PROGRAM). */
const struct dx_service *dx__service_find(const char *name);
/* The table, for listing; *N receives its length. */
const struct dx_service *const *dx__service_table(size_t *n);

extern const struct dx_service dx__service_echo;
extern const struct dx_service dx__service_discard;
extern const struct dx_service dx__service_chargen;
extern const struct dx_service dx__service_qotd;
extern const struct dx_service dx__service_daytime;
extern const struct dx_service dx__service_time;
extern const struct dx_service dx__service_exec;

/* chargen.c: writes LEN bytes of the RFC 864 pattern starting at line
 * LINE (0-94) and column COL (0-73 of "72 characters, CR, LF"). */
void dx__chargen_fill(uint8_t *out, size_t len, unsigned *line, unsigned *col);

/* qotd.c: the quotation list. */
struct dx_quotes {
	const char **text;
	size_t count;
	char *storage; /* owned: the loaded file, or NULL for built-ins */
};

/* The built-in quotations; static. */
const struct dx_quotes *dx__quotes_builtin(void);
/*
 * Loads quotations from PATH: quotations separated by lines holding a
 * single '%' (the fortune format), each at most 512 bytes. Returns 0 or
 * an error with WHY naming the file and line.
 */
int dx__quotes_load(struct dx_quotes *q, const char *path, char *why,
                    size_t whylen);
void dx__quotes_free(struct dx_quotes *q);

/* time.c: RFC 868 seconds since 1900 for a Unix time, modulo 2^32. */
uint32_t dx__rfc868_time(int64_t unix_seconds);

/*
 * time.c: the Unix time an RFC 868 count stands for, with an era pivot: a
 * count whose top bit is set is read in 1968-2036, one whose top bit is
 * clear in 2036-2104 (after the wrap), as RFC 4330 reads NTP's same
 * count. Inverse of dx__rfc868_time() for 1968-01-20 to 2104-02-26.
 */
int64_t dx__rfc868_unix(uint32_t count);

/* daytime.c: formats the RFC 867 line for a Unix time into BUF. */
size_t dx__daytime_format(int64_t unix_seconds, char *buf, size_t len);

/*
 * Helpers for services that answer once: queue TEXT and finish
 * (DX_STREAM_DONE), and an input handler that reads and ignores.
 */
int dx__stream_say(struct dx_conn *c, const void *text, size_t len);
int dx__stream_ignore(struct dx_conn *c, const uint8_t *data, size_t len);

/* A small, fast, non-cryptographic generator (chargen lengths, qotd). */
uint32_t dx__random(void);

#endif /* DX_SERVICE_H */
