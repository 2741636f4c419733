/* SPDX-License-Identifier: MIT */
/*
 * conn.h - one stream connection's life, the same under every model: the
 * service's state machine, the output buffer, half-close and a bounded
 * drain before close, and the per-connection timeouts. Event models call
 * dx__conn_events/ready/deadline/expired from their loops; blocking
 * models call dx__conn_run, which is that loop around poll().
 */
#ifndef DX_CONN_H
#define DX_CONN_H

#include "service/service.h"

/* Per-connection time limits in milliseconds; 0 turns one off. */
struct dx_conn_limits {
	int64_t idle_ms;          /* no byte moved either way */
	int64_t lifetime_ms;      /* since the connection opened */
	int64_t write_timeout_ms; /* output pending and no progress */
	int64_t linger_ms;        /* draining input after our half-close */
};

/* Why a connection ended. */
enum dx_conn_end {
	DX_END_NONE,
	DX_END_DONE,        /* served; the peer closed after our FIN */
	DX_END_PEER,        /* the peer closed or reset first */
	DX_END_IDLE,        /* idle timeout */
	DX_END_LIFETIME,    /* lifetime reached */
	DX_END_WRITE_STALL, /* the peer stopped reading */
	DX_END_LINGER,      /* the drain after our FIN ran out of time */
	DX_END_ERROR,       /* the service or a system call failed */
	DX_END_COUNT
};

const char *dx__conn_end_name(enum dx_conn_end end);

/*
 * Output buffers, recycled: a connection holds one only while it has
 * output queued, so an idle connection costs no buffer, and a busy
 * server stops calling malloc once warm. One pool per thread.
 */
struct dx_freebuf {
	struct dx_freebuf *next; /* a free buffer's first bytes */
};

struct dx_bufpool {
	struct dx_freebuf *free;
	size_t nfree, max_free;
	/*
	 * A buffer of the owner's (DX_CONN_BUF bytes, e.g. a forked child's
	 * static one), lent before any from malloc and never freed; NULL if
	 * none. A child that never calls malloc dirties no heap page.
	 */
	uint8_t *own;
	int own_lent;
};

uint8_t *dx__pool_get(struct dx_bufpool *pool);
void dx__pool_put(struct dx_bufpool *pool, uint8_t *buf);
void dx__pool_drain(struct dx_bufpool *pool);

/* Readies C for the connected socket FD (non-blocking), from PEER. */
void dx__conn_init(struct dx_conn *c, int fd, const struct dx_addr *peer,
                   const struct dx_service_conf *conf, struct dx_bufpool *pool,
                   int64_t now);
/* C's peer as a dx_addr, for dx_addr_format(). */
void dx__conn_peer(const struct dx_conn *c, struct dx_addr *peer);
/* Runs the service's open(). Returns DX_END_NONE or why it ended. */
int dx__conn_open(struct dx_conn *c, int64_t now);
/* The poll events C waits for (POLLIN, POLLOUT). */
short dx__conn_events(const struct dx_conn *c);
/*
 * Handles readiness REVENTS: sends, reads (into SCRATCH, at most LEN
 * bytes at a time), calls the service. Returns DX_END_NONE or why the
 * connection ended.
 */
int dx__conn_ready(struct dx_conn *c, short revents, uint8_t *scratch,
                   size_t len, int64_t now);
/*
 * Declares C's output complete (an exec program exited): once queued
 * output is sent it half-closes and drains. Returns DX_END_NONE or why
 * the connection ended.
 */
int dx__conn_end_output(struct dx_conn *c, int64_t now);
/* The earliest time one of LIM's limits ends C; DX_FOREVER if none. */
int64_t dx__conn_deadline(const struct dx_conn *c,
                          const struct dx_conn_limits *lim);
/* Which limit has passed at NOW, or DX_END_NONE. */
int dx__conn_expired(const struct dx_conn *c, const struct dx_conn_limits *lim,
                     int64_t now);
/* Closes the socket and returns the buffer to its pool. */
void dx__conn_finish(struct dx_conn *c);
/* The blocking loop: serves C to its end. Returns why it ended. */
int dx__conn_run(struct dx_conn *c, const struct dx_conn_limits *lim,
                 uint8_t *scratch, size_t len);

/*
 * Ends a connection whose output is complete without losing it: half-
 * closes FD, reads and drops input until the peer's end of file or
 * LINGER_MS, then closes. Returns DX_END_DONE, _LINGER or _PEER.
 */
int dx__linger_close(int fd, int64_t linger_ms);

#endif /* DX_CONN_H */
