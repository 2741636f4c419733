/* SPDX-License-Identifier: MIT */
/*
 * iterative.c - the connectionless iterative server (the seed's first
 * design): one socket, datagrams served one at a time in arrival order.
 * The system calls are batched (recvmmsg, sendmmsg) without changing that
 * order: a batch is served front to back and its replies leave in the same
 * order. Each reply goes to the sender's address from the local address
 * the request arrived on (IP_PKTINFO, IPV6_PKTINFO), so a wildcard socket
 * on a host with several addresses answers from the one that was asked.
 * The socket is never connect()ed: every sender is served.
 */
#include "server/server.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define BATCH 32
/*
 * The receive queue is all the buffering an iterative server has: a burst
 * that arrives while it is off the CPU waits there or is lost. The
 * kernel's default (net.core.rmem_default, 208 KiB) holds some 270 small
 * datagrams, 13 ms at 20,000 a second; this asks for 2 MiB, which the
 * kernel doubles for its overhead and caps at net.core.rmem_max.
 */
#define RCVBUF_BYTES (2 << 20)
/* Larger than any UDP payload, so MSG_TRUNC means a unixgram giant. */
#define RECV_SIZE DX_REQUEST_MAX

union pktinfo_buf {
	char buf[CMSG_SPACE(sizeof(struct in6_pktinfo)) +
	         CMSG_SPACE(sizeof(struct in_pktinfo))];
	struct cmsghdr align;
};

/* One batch's messages and buffers, allocated once per server. */
struct dx_iter {
	struct mmsghdr in[BATCH], out[BATCH];
	struct iovec in_iov[BATCH], out_iov[BATCH];
	struct dx_addr peer[BATCH];
	union pktinfo_buf in_ctl[BATCH], out_ctl[BATCH];
	uint8_t in_buf[BATCH][RECV_SIZE];
	uint8_t out_buf[BATCH][DX_REQUEST_MAX]; /* a reply may be as long */
	int used; /* receive entries the last batch filled (BATCH at first) */
	int ctl;  /* whether the receive entries ask for packet info */
	int stop_fd; /* readable once the server stops, or -1: see below */
};

/* 1 for 0.0.0.0 and ::, the addresses that stand for every address. */
static int
wildcard(const struct dx_addr *a)
{
	if (a->u.sa.sa_family == AF_INET)
		return a->u.in.sin_addr.s_addr == htonl(INADDR_ANY);
	if (a->u.sa.sa_family == AF_INET6)
		return IN6_IS_ADDR_UNSPECIFIED(&a->u.in6.sin6_addr);
	return 0;
}

int
dx__iter_open(struct dx_server *srv, struct dx_listener *l)
{
	int on = 1, family = l->bound.u.sa.sa_family, rc;
	int rcvbuf = RCVBUF_BYTES;

	if (srv->iter == NULL) {
		srv->iter = calloc(1, sizeof(*srv->iter));
		if (srv->iter != NULL) {
			srv->iter->used = BATCH;
			srv->iter->stop_fd = -1;
		}
		if (srv->iter == NULL)
			return -ENOMEM;
	}
	/* A smaller queue is no reason not to serve: the result is traced
	 * and the server goes on. */
	rc = setsockopt(l->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	dx_trace("setsockopt(%d, SO_RCVBUF, %d) = %d", l->fd, rcvbuf, rc);
	rc = 0;
	/*
	 * Only a wildcard socket can be asked on several addresses (and only
	 * it receives broadcasts); one bound to an address answers from it
	 * anyway, so it pays for no packet info on either side.
	 */
	l->pktinfo = wildcard(&l->bound);
	if (l->pktinfo && family == AF_INET)
		rc = setsockopt(l->fd, IPPROTO_IP, IP_PKTINFO, &on, sizeof(on));
	else if (l->pktinfo && family == AF_INET6)
		rc = setsockopt(l->fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &on,
		                sizeof(on));
	if (l->pktinfo)
		dx_trace("setsockopt(%d, %s, 1) = %d", l->fd,
		         family == AF_INET ? "IP_PKTINFO" : "IPV6_RECVPKTINFO",
		         rc);
	return rc < 0 ? dx__neg_errno() : 0;
}

void
dx__iter_free(struct dx_server *srv)
{
	free(srv->iter);
	srv->iter = NULL;
}

/*
 * Readies the receive side of the batch: names, buffers, and control space
 * when CTL (the listener asked for packet info; without it the kernel has
 * none to give, and an empty control buffer costs nothing to copy back).
 */
static void
prepare_receive(struct dx_iter *it, int ctl)
{
	/* Only entries the kernel wrote need resetting: with one datagram
	 * per wakeup, this is one entry, not the whole batch. A listener
	 * that wants the other kind of entry gets all of them anew. */
	int n = ctl == it->ctl ? it->used : BATCH;

	it->ctl = ctl;
	for (int i = 0; i < n; i++) {
		struct msghdr *m = &it->in[i].msg_hdr;

		it->in_iov[i] = (struct iovec){it->in_buf[i], RECV_SIZE};
		it->peer[i].u.sa.sa_family = AF_UNSPEC;
		*m = (struct msghdr){
		        .msg_name = &it->peer[i].u.ss,
		        .msg_namelen = sizeof(it->peer[i].u.ss),
		        .msg_iov = &it->in_iov[i],
		        .msg_iovlen = 1,
		        .msg_control = ctl ? it->in_ctl[i].buf : NULL,
		        .msg_controllen = ctl ? sizeof(it->in_ctl[i].buf) : 0,
		};
	}
}

/*
 * The local address datagram I arrived on, from its packet info; the
 * listener's own address when there is none (unix sockets).
 */
static void
arrival_address(const struct dx_listener *l, struct msghdr *m,
                struct dx_addr *local)
{
	struct cmsghdr *c;

	*local = l->bound;
	for (c = CMSG_FIRSTHDR(m); c; c = CMSG_NXTHDR(m, c)) {
		if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
			struct in_pktinfo pi;
			memcpy(&pi, CMSG_DATA(c), sizeof(pi));
			local->u.in.sin_addr = pi.ipi_addr;
		} else if (c->cmsg_level == IPPROTO_IPV6 &&
		           c->cmsg_type == IPV6_PKTINFO) {
			struct in6_pktinfo pi;
			memcpy(&pi, CMSG_DATA(c), sizeof(pi));
			local->u.in6.sin6_addr = pi.ipi6_addr;
			local->u.in6.sin6_scope_id = pi.ipi6_ifindex;
		}
	}
}

/* Sets the reply's source to LOCAL, the address the request came to. */
static size_t
reply_source(const struct dx_addr *local, union pktinfo_buf *ctl)
{
	struct msghdr m = {.msg_control = ctl->buf,
	                   .msg_controllen = sizeof(ctl->buf)};
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);

	memset(ctl->buf, 0, sizeof(ctl->buf));
	if (local->u.sa.sa_family == AF_INET) {
		struct in_pktinfo pi = {.ipi_spec_dst = local->u.in.sin_addr};
		c->cmsg_level = IPPROTO_IP;
		c->cmsg_type = IP_PKTINFO;
		c->cmsg_len = CMSG_LEN(sizeof(pi));
		memcpy(CMSG_DATA(c), &pi, sizeof(pi));
		return CMSG_SPACE(sizeof(pi));
	}
	if (local->u.sa.sa_family == AF_INET6) {
		struct in6_pktinfo pi = {.ipi6_addr = local->u.in6.sin6_addr};
		/* A link-local source only means something on its link. */
		if (IN6_IS_ADDR_LINKLOCAL(&pi.ipi6_addr))
			pi.ipi6_ifindex = local->u.in6.sin6_scope_id;
		c->cmsg_level = IPPROTO_IPV6;
		c->cmsg_type = IPV6_PKTINFO;
		c->cmsg_len = CMSG_LEN(sizeof(pi));
		memcpy(CMSG_DATA(c), &pi, sizeof(pi));
		return CMSG_SPACE(sizeof(pi));
	}
	return 0;
}

/* Counts a datagram that gets no reply, and says why at debug level. */
static void
drop(struct dx_server *srv, const struct dx_listener *l,
     const struct dx_addr *peer, enum dx_drop reason)
{
	char who[DX_ADDRSTRLEN];

	srv->drops[reason]++;
	if (srv->verbosity >= DX_LOG_DEBUG) {
		dx_addr_format(peer, who, sizeof(who));
		dx__log(srv, DX_LOG_DEBUG, "%s: no reply to %s: %s", l->name,
		        who, dx__drop_name(reason));
	}
}

/* Whether the guard lets PEER be answered; counts the drop if not. */
static int
admit(struct dx_server *srv, const struct dx_listener *l,
      const struct dx_addr *peer, const struct dx_addr *local)
{
	int reason = dx__guard_check(&srv->guard, peer, local);

	if (reason < 0 && (l->conf.svc->flags & DX_SVC_AMPLIFIES) &&
	    dx__budget_take(srv->budget, peer, dx_now_ms()) < 0)
		reason = DX_DROP_BUDGET;
	if (reason >= 0)
		drop(srv, l, peer, (enum dx_drop)reason);
	return reason < 0;
}

/* The cancel test of a waiting handler when the watcher reads signals. */
static int
stopped(void *ctx)
{
	const struct dx_server *srv = ctx;

	return srv->stop;
}

/*
 * Queues LEN bytes at DATA as reply NOUT, to PEER, from LOCAL when the
 * listener must say which of its addresses answers (NULL otherwise).
 * Returns 1, the number of replies queued.
 */
static int
queue_reply(struct dx_iter *it, int nout, uint8_t *data, size_t len,
            struct dx_addr *peer, const struct dx_addr *local)
{
	struct msghdr *m = &it->out[nout].msg_hdr;

	it->out_iov[nout] = (struct iovec){data, len};
	*m = (struct msghdr){
	        .msg_name = &peer->u.ss,
	        .msg_namelen = peer->len,
	        .msg_iov = &it->out_iov[nout],
	        .msg_iovlen = 1,
	};
	if (local != NULL)
		m->msg_controllen = reply_source(local, &it->out_ctl[nout]);
	if (m->msg_controllen > 0)
		m->msg_control = it->out_ctl[nout].buf;
	return 1;
}

/*
 * Serves datagram I of the batch. Returns 1 when it queued a reply in
 * out[NOUT], 0 when there is none.
 */
static int
serve_one(struct dx_server *srv, struct dx_listener *l, int i, int nout)
{
	struct dx_iter *it = srv->iter;
	struct msghdr *m = &it->in[i].msg_hdr;
	struct dx_addr *peer = &it->peer[i], local;
	struct dx_dgram_req req;
	ssize_t n;

	peer->len = m->msg_namelen;
	if (m->msg_flags & MSG_TRUNC) {
		drop(srv, l, peer, DX_DROP_TRUNCATED);
		return 0;
	}
	/* The receive that the stop's shutdown(SHUT_RD) ends returns an
	 * empty message from nowhere: not a datagram, so not a drop. */
	if (srv->stop && peer->len == 0 && it->in[i].msg_len == 0)
		return 0;
	if (peer->u.sa.sa_family != l->bound.u.sa.sa_family ||
	    peer->len <= sizeof(sa_family_t)) {
		drop(srv, l, peer, DX_DROP_NO_ADDRESS);
		return 0;
	}
	if (l->pktinfo)
		arrival_address(l, m, &local);
	else
		local = l->bound;
	if (l->guard && !admit(srv, l, peer, &local))
		return 0;
	/* A mirror's reply is its request: sent from where it was
	 * received, with no copy and no reply buffer to touch. */
	if (l->conf.svc->flags & DX_SVC_MIRROR) {
		srv->served[l - srv->ls]++;
		return queue_reply(it, nout, it->in_buf[i], it->in[i].msg_len,
		                   peer, l->pktinfo ? &local : NULL);
	}
	req = (struct dx_dgram_req){
	        .data = it->in_buf[i],
	        .len = it->in[i].msg_len,
	        .peer = peer,
	        .local = &local,
	        .conf = &l->conf,
	        .reply = it->out_buf[nout],
	        /* A waiting handler watches for the server's stop: on the
	         * signal descriptor itself, unless a watcher thread reads
	         * that (dx__iter_run) and says so on stop_fd. */
	        .cancel_fd = it->stop_fd >= 0 ? it->stop_fd : srv->sigfd,
	        .cancelled = it->stop_fd >= 0 ? stopped : dx__server_signals,
	        .cancel_ctx = srv,
	};
	n = l->conf.svc->dgram(&req);
	srv->served[l - srv->ls]++;
	if (n == DX_NOREPLY)
		return 0;
	if (n < 0) {
		drop(srv, l, peer, DX_DROP_FAILED);
		return 0;
	}
	if (l->guard && (l->conf.svc->flags & DX_SVC_AMPLIFIES))
		dx__budget_charge(srv->budget, peer, (size_t)n);
	return queue_reply(it, nout, it->out_buf[nout], (size_t)n, peer,
	                   l->pktinfo ? &local : NULL);
}

/* Sends the batch's replies in order; a reply that fails is counted. */
static void
send_replies(struct dx_server *srv, struct dx_listener *l, int n)
{
	int done = 0, rc;

	while (done < n) {
		rc = dx__sendmmsg(l->fd, srv->iter->out + done,
		                  (unsigned)(n - done));
		if (rc > 0) {
			done += rc;
			continue;
		}
		drop(srv, l,
		     (const struct dx_addr *)srv->iter->out[done]
		             .msg_hdr.msg_name,
		     DX_DROP_SEND);
		dx__log(srv, DX_LOG_DEBUG, "%s: reply not sent: %s", l->name,
		        dx_strerror(rc));
		done++;
	}
}

/*
 * Receives one batch (waiting for it when WAIT), serves it front to back
 * and sends the replies in order. Returns the number received, or -errno.
 */
static int
serve_batch(struct dx_server *srv, struct dx_listener *l, int wait)
{
	int n, nout = 0;

	prepare_receive(srv->iter, l->pktinfo);
	n = dx__recvmmsg(l->fd, srv->iter->in, BATCH, wait);
	srv->iter->used = n > 0 ? n : 0;
	if (n < 0) {
		if (n != -EAGAIN)
			dx__log(srv, DX_LOG_WARN, "%s: receive: %s", l->name,
			        dx_strerror(n));
		return n;
	}
	for (int i = 0; i < n; i++)
		nout += serve_one(srv, l, i, nout);
	send_replies(srv, l, nout);
	return n;
}

/*
 * serve_batch() for a server that busy-polls (--busy-poll): receives
 * without sleeping until a datagram comes or the window has passed since
 * the call began, and only then sleeps in the receive. A request that
 * comes within the window finds the server awake: no wakeup, which on a
 * virtual CPU that halts when idle costs more than serving the datagram.
 * An idle server spins for one window and then sleeps as before.
 */
static int
serve_batch_polling(struct dx_server *srv, struct dx_listener *l)
{
	int64_t until = dx__now_us() + srv->busy_poll_us;
	int n;

	do {
		n = serve_batch(srv, l, 0);
		if (n != -EAGAIN)
			return n;
	} while (!srv->stop && dx__now_us() < until);
	return srv->stop ? -EAGAIN : serve_batch(srv, l, 1);
}

void
dx__iter_serve(struct dx_server *srv, struct dx_listener *l)
{
	/* A few batches per wakeup, so one busy socket cannot starve others. */
	for (int round = 0; round < 4; round++)
		if (serve_batch(srv, l, 0) < BATCH)
			return;
}

/* The thread that waits for signals while the server waits in recvmmsg. */
struct watcher {
	struct dx_server *srv;
	struct dx_listener *l;
	int done_fd; /* readable once the serving loop has ended */
	int stop_fd; /* written once the server stops */
};

static void *
watch_signals(void *arg)
{
	struct watcher *w = arg;
	struct pollfd p[2] = {{.fd = w->srv->sigfd, .events = POLLIN},
	                      {.fd = w->done_fd, .events = POLLIN}};
	uint64_t one = 1;

	while (!w->srv->stop) {
		int rc = dx_poll(p, 2, DX_FOREVER);

		if (rc < 0 || p[1].revents) {
			if (rc < 0)
				dx__log(w->srv, DX_LOG_ERROR, "signals: %s",
				        dx_strerror(rc));
			w->srv->stop = 1;
			break;
		}
		if (p[0].revents)
			dx__server_signals(w->srv);
	}
	/* Wakes the receive: the socket reads end of file from now on.
	 * Unconnected, it reports ENOTCONN, and does it anyway. A handler
	 * that waits (exec) is woken through stop_fd. */
	shutdown(w->l->fd, SHUT_RD);
	(void)write(w->stop_fd, &one, sizeof(one));
	return NULL;
}

int
dx__iter_run(struct dx_server *srv, struct dx_listener *l)
{
	struct watcher w = {.srv = srv, .l = l};
	int flags = fcntl(l->fd, F_GETFL), err = 0;
	pthread_t tid;
	uint64_t one = 1;

	w.done_fd = eventfd(0, EFD_CLOEXEC);
	w.stop_fd = eventfd(0, EFD_CLOEXEC);
	srv->iter->stop_fd = w.stop_fd;
	if (w.done_fd < 0 || w.stop_fd < 0 || flags < 0 ||
	    fcntl(l->fd, F_SETFL, flags & ~O_NONBLOCK) < 0) {
		err = dx__neg_errno();
		goto out;
	}
	err = -pthread_create(&tid, NULL, watch_signals, &w);
	if (err < 0)
		goto out;
	/*
	 * The serving thread takes a copy of the descriptor table (the same
	 * open files under the same numbers) and leaves the watcher the sole
	 * owner of the one they shared: the kernel looks a descriptor of an
	 * unshared table up without taking a reference to its file, twice a
	 * batch. The watcher opens nothing; what this thread opens from now
	 * on (an exec run's pipes) is in its table alone, so no copy of a
	 * pipe's end can keep a program's output from ending. Failing that,
	 * the table stays shared, which is only slower.
	 */
	(void)unshare(CLONE_FILES);
	while (!srv->stop) {
		int n = srv->busy_poll_us > 0 ? serve_batch_polling(srv, l)
		                              : serve_batch(srv, l, 1);

		if (n < 0 && n != -EAGAIN && n != -ENOMEM && n != -ENOBUFS) {
			err = n;
			break;
		}
	}
	(void)write(w.done_fd, &one, sizeof(one));
	pthread_join(tid, NULL);
out:
	srv->iter->stop_fd = -1;
	if (w.done_fd >= 0)
		close(w.done_fd);
	if (w.stop_fd >= 0)
		close(w.stop_fd);
	return err;
}
