/* SPDX-License-Identifier: MIT */
/*
 * conn_feed.h - driving a connection's state machine (conn.h) from
 * completions instead of readiness: a completion model receives and sends
 * through its own queue, then hands the results here. Each function is
 * one step of conn.c's dx__conn_ready() without its system call, with the
 * same rules: input never exceeds the output room, a finished service is
 * half-closed once everything is sent, and input after our half-close is
 * drained and dropped.
 */
#ifndef DX_CONN_FEED_H
#define DX_CONN_FEED_H

#include "server/conn.h"

/*
 * Hands the result of one receive to C's service: N bytes at DATA, the
 * peer's end of file (N == 0) or a receive error (N < 0, -errno). Unless C
 * is draining, N is at most dx_conn_space(C). Returns DX_END_NONE or why
 * the connection ended.
 */
int dx__conn_input(struct dx_conn *c, const uint8_t *data, ssize_t n,
                   int64_t now);

/*
 * Lets the service produce output when it asked to (DX_CONN_WANT_WRITE),
 * is not done and has room. Returns DX_END_NONE or DX_END_ERROR.
 */
int dx__conn_produce(struct dx_conn *c);

/*
 * Accounts a completed send of C's output: N bytes from c->out_off were
 * sent, or the send failed (N < 0). The buffer goes back to its pool once
 * nothing is queued. The caller sends from c->out + c->out_off and keeps
 * c->out_off at 0 while a send is in flight (see dx__conn_compact), so
 * the service may queue more behind it. Returns DX_END_NONE or
 * DX_END_PEER.
 */
int dx__conn_sent(struct dx_conn *c, ssize_t n, int64_t now);

/* Moves C's unsent output to the front of its buffer. */
void dx__conn_compact(struct dx_conn *c);

/*
 * Once the service is done (or the peer's end of file came and nothing
 * more is to be written) and nothing is PENDING (the caller's count of
 * output not yet sent), half-closes C and starts the drain. Returns
 * DX_END_NONE, DX_END_DONE (the peer had already closed its side) or
 * DX_END_PEER.
 */
int dx__conn_maybe_shutdown(struct dx_conn *c, int64_t now, int pending);

/* Maps a handler's return value to C's state: DX_END_ERROR for a failure,
 * DX_END_NONE otherwise (DX_STREAM_DONE marks C done). */
int dx__conn_handled(struct dx_conn *c, int rc);

/* 1 while C has output queued and not yet sent. */
int dx__conn_pending(const struct dx_conn *c);

#endif /* DX_CONN_FEED_H */
