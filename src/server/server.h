/* SPDX-License-Identifier: MIT */
/*
 * server.h - a server: its listeners (one service on one endpoint each),
 * the main loop that watches them and the signal descriptor, logging, and
 * the counters. Datagram listeners are served by the iterative server
 * (iterative.c); stream listeners by the concurrent server's model.
 */
#ifndef DX_SERVER_H
#define DX_SERVER_H

#include "guard/guard.h"
#include "guard/rules.h"
#include "server/conn.h"
#include "service/service.h"

#include <pthread.h>
#include <stdatomic.h>

enum dx_log_level { DX_LOG_ERROR, DX_LOG_WARN, DX_LOG_INFO, DX_LOG_DEBUG };

/* Receives one log line (no newline); LEVEL is a dx_log_level. */
typedef void (*dx_log_fn)(void *ctx, int level, const char *line);

#define DX_MAX_LISTENERS 64

/* One service on one endpoint. */
struct dx_listener {
	struct dx_endpoint ep;
	struct dx_service_conf conf;
	char name[64];  /* the service as the user wrote it, for logs */
	char *exec_buf; /* exec: the strings conf.argv points into */
	int fd;
	int guard;        /* reflection guard and budget on */
	int pktinfo;      /* bound to a wildcard: replies need their source */
	int created_path; /* we made its unix socket file: remove it */
	struct dx_addr bound;
	int paused;             /* not watched while limits defer accepting */
	int64_t rate_resume_ms; /* --rate: its bucket lets it accept again */
};

struct dx_iter;
struct dx_server;

/*
 * A concurrency model: how the concurrent server gets one unit of
 * concurrency per client. One file each (model_fork.c, ...), one row in
 * the table in concurrent.c; chosen at run time by name. The accept path,
 * admission (rules, limits) and accounting are shared (concurrent.c); a
 * model only serves what it is handed and reports what has ended.
 */
struct dx_model {
	const char *name;
	/* Readies the model once the listeners are open. */
	int (*start)(struct dx_server *srv);
	/*
	 * Serves the admitted connection FD from PEER on L. The model owns
	 * FD from here on and calls dx__stream_released() when it ends.
	 */
	void (*serve)(struct dx_server *srv, struct dx_listener *l, int fd,
	              const struct dx_addr *peer);
	/*
	 * A child process exited; STATUS from waitpid. Only models that
	 * reap with waitpid(-1) (process per connection) set it; the others
	 * reap their exec programs through pidfds.
	 */
	void (*child_exited)(struct dx_server *srv, pid_t pid, int status);
	/* Event models: a descriptor the model registered with srv->epfd
	 * (its epoll data >= DX_MODEL_TAG) is ready with EVENTS. */
	void (*event)(struct dx_server *srv, uint64_t tag, uint32_t events);
	/* Event models: timeouts due at NOW; returns the next deadline. */
	int64_t (*tick)(struct dx_server *srv, int64_t now);
	/* Connections being served now. */
	size_t (*active)(const struct dx_server *srv);
	/* Optional: the server stops accepting (SIGTERM arrived). */
	void (*stop)(struct dx_server *srv);
	/*
	 * Optional: the main loop starts. Called after privileges were
	 * dropped, so threads started here inherit the dropped state (some
	 * of it, PR_SET_NO_NEW_PRIVS, is per thread).
	 */
	int (*begin)(struct dx_server *srv);
	/* Asks every connection to end (SIGTERM), or forces it (SIGKILL). */
	void (*terminate)(struct dx_server *srv, int sig);
	/* Optional: SIGHUP reached the server; the model passes it on to
	 * the loops that accept (prefork's workers, epoll's reactors). */
	void (*reload)(struct dx_server *srv);
	/* Optional: folds what other processes (prefork's workers) or
	 * threads (epoll's reactors) served and accepted into the server's
	 * counters before they are logged. */
	void (*counters)(struct dx_server *srv);
	void (*free)(struct dx_server *srv);
};

/* Epoll data at or above this belongs to the model's own descriptors. */
#define DX_MODEL_TAG (UINT64_C(1) << 32)

const struct dx_model *dx__model_find(const char *name);
/* The names of the models this build has, space-separated. */
const char *dx__model_names(void);

/* Why a connection was refused or deferred; each is counted. */
enum dx_refuse {
	DX_REFUSE_DENIED,     /* an access rule */
	DX_REFUSE_PER_SOURCE, /* --per-source */
	DX_REFUSE_FDS,        /* out of descriptors: shed */
	DX_REFUSE_FORK,       /* the model could not start a unit */
	DX_REFUSE_FULL,       /* --max-conns reached, --when-full refuse */
	DX_DEFER_MAX_CONNS,   /* --max-conns reached: accepting paused */
	DX_DEFER_RATE,        /* --rate bucket empty: accepting paused */
	DX_DEFER_MEMORY,      /* no memory for a socket: accepting paused */
	DX_REFUSE_COUNT
};
const char *dx__refuse_name(enum dx_refuse r);

/* Per-source concurrency: live connections per IPv4 address or IPv6 /64. */
struct dx_source_slot {
	uint8_t key[16];
	uint32_t count;
};
/*
 * The table of live connections per source, and their total. LOCK is NULL
 * for a table one event loop owns; reactor threads share one table under
 * a mutex, worker processes one in shared memory under a robust
 * process-shared mutex. The --rate bucket lives here too, so that it is
 * one bucket for the whole server, under the same lock; a bucket never
 * used (RATE_MS 0) starts full.
 */
struct dx_sources {
	struct dx_source_slot *slots;
	size_t cap;
	struct dx_hash_key hkey; /* where a key lands: not a peer's choice */
	/* Changed under the lock; atomic because limits read it without. */
	_Atomic size_t total;
	/* Reactors sharing a listener: how many watch it now (over_share). */
	_Atomic int watching;
	pthread_mutex_t *lock;
	/* --rate: a token bucket per listener, indexed as dx_server's ls[]. */
	struct dx_rate_bucket {
		double tokens;
		int64_t ms; /* last refilled; 0: never, full */
	} rate[DX_MAX_LISTENERS];
};
/*
 * Allocates S's slots for CAP sources, or frees them. The table is the
 * server process's own: it is mapped MADV_WIPEONFORK, so a forked child
 * neither shares its pages nor keeps a copy of each one the parent writes
 * after the fork (a child per connection would keep about a page each).
 */
int dx__sources_alloc(struct dx_sources *s, size_t cap);
void dx__sources_free(struct dx_sources *s);
void dx__source_key(const struct dx_addr *peer, uint8_t key[16]);
/* C's source key: dx__source_key() of the peer it was admitted from. */
void dx__conn_source_key(const struct dx_conn *c, uint8_t key[16]);
/* Adds one; returns the count after, or -ENOMEM when the table is full. */
int dx__sources_add(struct dx_sources *s, const uint8_t key[16]);
/* Removes N (all of them when N exceeds the count). */
void dx__sources_sub(struct dx_sources *s, const uint8_t key[16], uint32_t n);
void dx__sources_remove(struct dx_sources *s, const uint8_t key[16]);
uint32_t dx__sources_count(const struct dx_sources *s, const uint8_t key[16]);

/*
 * Takes S's lock, if it has one (a no-op for a table one loop owns), and
 * gives it back. A worker that died holding it left it "owner died": the
 * table is still consistent (every update is a single count change made
 * before the unlock), so it is marked so and taken.
 */
void dx__sources_lock(struct dx_sources *s);
void dx__sources_unlock(struct dx_sources *s);
/* What dx__sources_admit() decided. */
enum { DX_ADMIT_OK, DX_ADMIT_PER_SOURCE, DX_ADMIT_MAX };
/*
 * Under the table's lock: admits one more connection from KEY unless the
 * source already has PER_SOURCE (0: no limit, or a unix peer) or the
 * total is MAX_TOTAL (0: no limit). Returns a DX_ADMIT_* value.
 */
int dx__sources_admit(struct dx_sources *s, const uint8_t key[16],
                      uint32_t per_source, size_t max_total);
/* Under the table's lock: releases one connection from KEY. */
void dx__sources_release(struct dx_sources *s, const uint8_t key[16]);

struct dx_server {
	/*
	 * What the server writes at every accept, together at the start of
	 * the struct: under the fork model each page of it the parent writes
	 * after a fork is one the child keeps a copy of (4 KiB of its PSS),
	 * and spread over the struct these were three pages. serve.c
	 * allocates the struct page-aligned, so they share the first page.
	 */
	int64_t now_ms; /* the clock when the loop last woke */
	/* Counters, read by other threads (SIGUSR1): connections accepted,
	 * and requests or connections served per listener (as ls[]). */
	_Atomic uint64_t accepted;
	_Atomic uint64_t served[DX_MAX_LISTENERS];
	struct dx_sources sources; /* its total changes at every accept */

	struct dx_listener ls[DX_MAX_LISTENERS];
	size_t nls;
	int sigfd; /* signalfd for TERM, INT, HUP, USR1, CHLD; caller's */
	int epfd;
	dx_log_fn log;
	void *log_ctx;
	int verbosity; /* the highest dx_log_level printed */
	int64_t exec_timeout_ms;
	/* --busy-poll: how long the server's own loop keeps receiving
	 * without sleeping after its last datagram or event; 0: it sleeps
	 * at once. */
	int64_t busy_poll_us;
	struct dx_rlimits exec_rlimits;     /* exec: the programs' limits */
	double budget_dgrams, budget_bytes; /* per source per second */
	const struct dx_quotes *quotes;
	struct dx_guard guard;
	struct dx_budget *budget;
	struct dx_iter *iter;
	_Atomic uint64_t drops[DX_DROP_COUNT];
	/* Set by whichever thread reads SIGTERM: the signal that stops the
	 * server (SIGTERM or SIGINT), or 1. */
	_Atomic int stop;

	/* The concurrent server. */
	const struct dx_model *model;
	void *model_state;
	struct dx_rules rules;
	/* --rules FILE: read again on SIGHUP; its rules follow RULES_CLI,
	 * those of --allow and --deny. */
	const char *rules_file;
	struct dx_rules rules_cli;
	struct dx_conn_limits limits;
	size_t max_conns;      /* 0: no limit */
	int refuse_full;       /* at max_conns: accept and close, not wait */
	uint32_t per_source;   /* 0: no limit */
	double rate;           /* new connections per second; 0: none */
	int64_t resume_ms;     /* out of descriptors or memory: try again */
	int64_t drain_ms;      /* after SIGTERM, time for connections */
	int64_t stop_deadline; /* when draining ends them */
	int stop_signal;       /* the last signal sent to end them */
	int reserve_fd;        /* held for shedding load at EMFILE */
	int backlog;
	int unix_mode;          /* chmod for unix socket files; -1: umask's */
	struct dx_sources *src; /* &sources, or the workers' shared table */
	struct dx_sources *ledger; /* a worker's own share, in shared memory */
	int stream_elsewhere; /* workers or reactors serve stream listeners */
	int exclusive;        /* EPOLLEXCLUSIVE on stream listeners */
	int reuseport;        /* epoll reactors: a SO_REUSEPORT listener each */
	int accept_paused;    /* limits or the stop unwatched the listeners */
	int model_accepts;    /* the model accepts on them itself (uring) */
	pthread_rwlock_t *accept_lock; /* reactors: accept() vs shedding */
	size_t workers; /* prefork workers, epoll reactors: how many */
	size_t loops;   /* reactors sharing the listeners: how many */
	/* Counters, read by other threads (SIGUSR1). REFUSED points to this
	 * server's own array, or, in a reactor, to the main thread's, so that
	 * refusals are counted once for the whole server. */
	_Atomic uint64_t refused_own[DX_REFUSE_COUNT];
	_Atomic uint64_t *refused;
	int64_t refuse_logged_ms[DX_REFUSE_COUNT];
	int has_stream;
};

/* Sets defaults: no listeners, INFO logging, 10 s exec timeout, budget. */
void dx__server_init(struct dx_server *srv);

/*
 * Adds SERVICE ("echo", "exec:/bin/cat -u", ...) on ENDPOINT. GUARD turns
 * the datagram guard on. Returns 0 or an error with WHY filled.
 */
int dx__server_add(struct dx_server *srv, const char *service,
                   const char *endpoint, int guard, char *why, size_t whylen);

/* Opens every listener. Returns 0 or an error with WHY filled. */
int dx__server_open(struct dx_server *srv, char *why, size_t whylen);

/*
 * Unsent bytes a connection of a service that produces more than it is
 * sent (chargen, the short answers, exec programs) or as much (echo) may
 * queue in the kernel. Without it the kernel's send-buffer autotuning lets
 * each one queue up to tcp_wmem's maximum (4 MiB by default) for a client
 * that never reads: 100 chargen clients pinned 200-300 MB of kernel
 * memory, and the server spent seconds of CPU generating it. Sent but
 * unacknowledged bytes are not counted, so a fast reader on a long path is
 * not slowed.
 */
#define DX_NOTSENT_LOWAT (128 * 1024)
/*
 * Sets the options of L's listening socket FD that its connections
 * inherit (TCP_NOTSENT_LOWAT, above, for such services on tcp://).
 */
void dx__listener_tune(const struct dx_listener *l, int fd);

/* Serves until SIGTERM or SIGINT arrives on srv->sigfd. Returns 0/-errno. */
int dx__server_run(struct dx_server *srv);

/* Closes every listener, removes the unix socket files we created. */
void dx__server_close(struct dx_server *srv);

/*
 * Handles the signals waiting on srv->sigfd now (for handlers that wait,
 * such as exec). CTX is the server. Returns 1 once the server is to stop.
 */
int dx__server_signals(void *ctx);

/* Logs the counters (on SIGUSR1 and at exit). */
void dx__server_log_counters(struct dx_server *srv);

void dx__log(const struct dx_server *srv, int level, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* concurrent.c: the connection-oriented concurrent server. */
int dx__stream_open(struct dx_server *srv);
/*
 * How many loops (prefork's workers, epoll's reactors) to run: --workers,
 * else one per CPU this process may run on (its affinity: under taskset
 * -c 1, one), at least 1 and at most MAX.
 */
size_t dx__loop_count(const struct dx_server *srv, size_t max);
/*
 * The serve hook of a model whose main loop never accepts (prefork's
 * master, the reactors' main thread: their workers or reactors do). It is
 * never called; were it, it would close FD rather than leak it.
 */
void dx__serve_elsewhere(struct dx_server *srv, struct dx_listener *l, int fd,
                         const struct dx_addr *peer);
/* The epoll events a stream listener is watched with. */
uint32_t dx__listener_events(const struct dx_server *srv);
/* Accepts and admits what waits on L, handing each to the model. */
void dx__stream_accept(struct dx_server *srv, struct dx_listener *l);
/* A model's connection from PEER ended. */
void dx__stream_released(struct dx_server *srv, const uint8_t key[16]);
/*
 * Logs, at debug level, that connection C (its descriptor may be closed by
 * now) ended and why (END): its listener, its peer, the bytes it received
 * and sent and how long it lasted; an exec connection's bytes are its
 * program's and are not seen. C's conf must be its listener's
 * (&l->conf), as dx__conn_init() was given it. Every model logs every
 * connection's end through this one line (a fork child its own).
 */
void dx__stream_log_end(const struct dx_server *srv, const struct dx_conn *c,
                        int end);
/* Timers: the rate bucket, and the drain deadline. Returns the next one. */
int64_t dx__stream_tick(struct dx_server *srv, int64_t now);
/* SIGTERM: stop accepting; connections get srv->drain_ms to finish. */
void dx__stream_stop(struct dx_server *srv);
/*
 * SIGHUP: reads --rules FILE again. Valid, its rules replace the file's
 * part of the access rules for connections accepted from now on (those
 * being served are untouched); invalid, the error is logged and the rules
 * in force stay. Then the model passes the signal on (its reload hook).
 */
void dx__stream_reload(struct dx_server *srv);
/* Under the table's lock: live connections from KEY (exec's TCPCONNNUM). */
uint32_t dx__stream_source_count(struct dx_server *srv, const uint8_t key[16]);
/* Logs accepted and refused connections (SIGUSR1 and at exit). */
void dx__stream_log_counters(struct dx_server *srv);
/* Reaps every exited child (SIGCHLD) and tells the model. */
void dx__stream_reap(struct dx_server *srv);
void dx__stream_free(struct dx_server *srv);
/*
 * For a model that accepts on the stream listeners itself (the uring
 * model's multishot accept). TAKE 1 takes them out of the epoll set and
 * out of dx__stream_accept()'s hands; TAKE 0 gives them back, watched
 * again unless accepting is paused. While they are taken, pausing (the
 * stop) is only recorded: the model stops its own accepting. The model
 * takes them only while no limit can defer a connection: no --rate, and
 * more --max-conns places free than it may accept before it can stop.
 */
void dx__stream_take_listeners(struct dx_server *srv, int take);
/*
 * FD from PEER, accepted by the model on L: the admission
 * dx__stream_accept() applies after accept() (rules, --per-source,
 * --max-conns; refused: closed and counted), then serve().
 */
void dx__stream_accepted(struct dx_server *srv, struct dx_listener *l, int fd,
                         struct dx_addr *peer);
/* Counts and logs a refusal the model made (a client it shed). */
void dx__stream_refused(struct dx_server *srv, enum dx_refuse why,
                        const struct dx_addr *peer);
/*
 * Runs the exec: service for a connection (or datagram-less stream) on
 * FD: spawns the program with FD as its standard input and output and
 * the UCSPI environment, waits for it (killing it at the lifetime limit),
 * then half-closes and drains FD. NEWGROUP puts it in a process group of
 * its own, killed when it exits; *PID (if not NULL) receives its pid as
 * soon as it runs. Used by blocking models.
 */
int dx__exec_stream(const struct dx_server *srv, const struct dx_listener *l,
                    int fd, const struct dx_addr *peer, uint32_t connnum,
                    const struct dx_conn_limits *lim, int newgroup,
                    _Atomic int *pid);
/*
 * Logs how the exec program PID (PROGRAM) ended when that was not exit
 * status 0: killed by signal SIGNO (when SIGNO > 0) at info level, which
 * is news to an operator, or its exit status CODE at debug level, which
 * is the program's own business.
 */
void dx__exec_log_end(const struct dx_server *srv, const char *program,
                      pid_t pid, int signo, int code);

struct dx_env;
/*
 * The UCSPI environment of an exec program on stream connection FD from
 * PEER: PROTO, TCP{LOCAL,REMOTE}{IP,PORT} and TCPCONNNUM, or for unix
 * sockets UNIX{LOCAL,REMOTE}PATH and the peer's credentials.
 */
int dx__exec_env(struct dx_env *env, int fd, const struct dx_addr *peer,
                 uint32_t connnum);

/* iterative.c: the connectionless iterative server. */
int dx__iter_open(struct dx_server *srv, struct dx_listener *l);
/* Serves the datagrams waiting on L, in arrival order, a batch at a time. */
void dx__iter_serve(struct dx_server *srv, struct dx_listener *l);
/*
 * Serves L, the server's only socket, until the server stops: the seed's
 * iterative server exactly, blocking in the receive itself rather than in
 * epoll_wait() first, while a second thread waits for the signals.
 */
int dx__iter_run(struct dx_server *srv, struct dx_listener *l);
void dx__iter_free(struct dx_server *srv);

#endif /* DX_SERVER_H */
