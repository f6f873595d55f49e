/* SPDX-License-Identifier: MIT */
/*
 * daemon.h - the running daemon: the engine, the current generation, the listener
 * registry and the connection count. The main thread owns everything here except what
 * a field says; shards reach the daemon only through the messages of shards.c.
 */
#ifndef SP_DAEMON_H
#define SP_DAEMON_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "engine/engine.h"
#include "net/listener.h"
#include "pipeline/pipeline.h"

/* Exit statuses of spargiod(8). */
enum { SP_EXIT_OK = 0, SP_EXIT_CONFIG = 1, SP_EXIT_USAGE = 2, SP_EXIT_STARTUP = 3 };

/* What one shard knows of the daemon; touched by that shard only unless marked. */
struct sp_shard_ctx {
	struct sp_daemon *d;
	struct sp_gen *gen;           /* the generation new connections get here */
	struct sp_msg wake_msg;       /* a slot may be free: waiting acceptors try again */
	_Atomic bool wake_pending;    /* any thread */
	_Atomic bool starved;         /* any thread: an acceptor here waits for a slot */
	struct sp_msg ping_msg;       /* watchdog: the shard answers when it runs */
	_Atomic bool ping_pending;    /* any thread */
	_Atomic uint64_t ping_ack;    /* read by the main thread */
	struct sp_msg stop_msg;       /* stop accepting (graceful stop) */
} __attribute__((aligned(64)));

struct sp_daemon {
	const char *config_path;
	struct sp_config *cfg;    /* current (main thread) */
	struct sp_gen *gen;       /* current (main thread's reference) */
	unsigned generation;
	unsigned nshards;
	struct sp_engine *eng;
	struct sp_shard_ctx *ctx; /* [nshards] */
	struct sp_control *control;
	struct sp_listener **socks; /* registry: the sockets of the current generation */
	size_t n_socks;
	uint64_t start_ns;

	/* any thread */
	_Atomic uint64_t active;           /* connections open, and slots taken to accept one */
	_Atomic unsigned max_connections;
	_Atomic bool paused;               /* an acceptor found max_connections reached */
	_Atomic bool starving;             /* some shard is starved (shards.c) */
	_Atomic uint64_t ping_seq;
	_Atomic bool access_log;
	_Atomic uint64_t reloads_failed;
};

/* A reload being prepared: the new generation with its sockets, not yet running. */
struct sp_prepared {
	struct sp_config *cfg;
	struct sp_gen *gen;
	struct sp_listener **socks; /* one per listener of gen, with the registry's hold */
	bool *fresh;                /* socks[i] was bound for this reload */
	size_t n_socks;
};

/* reload.c */
int sp_daemon_prepare(struct sp_daemon *d, struct sp_config *cfg, struct sp_prepared *p,
		      char *err, size_t errlen);
void sp_daemon_commit(struct sp_daemon *d, struct sp_prepared *p);
void sp_prepared_abort(struct sp_prepared *p);
/* SIGHUP / control `reload`: load, prepare, commit. 0, or -errno with err filled (the
 * first error; every error is logged). The old generation keeps serving on failure. */
int sp_daemon_reload(struct sp_daemon *d, char *err, size_t errlen);
/* sp_config_check_start for a start or a reload: warnings and errors to the log, the
 * first error in err. Returns 0 or -EINVAL. */
int sp_daemon_check_start(const struct sp_config *cfg, char *err, size_t errlen);

/* shards.c */
void sp_daemon_shards_init(struct sp_daemon *d); /* accept fn, session hooks, ctx */
void sp_daemon_publish(struct sp_daemon *d, struct sp_gen *gen); /* to every shard */
void sp_daemon_stop_accepting(struct sp_daemon *d);
/* Control `drain`: stop accepting on l until a reload binds it again. False when it
 * is not accepting already. */
bool sp_daemon_drain_listener(struct sp_daemon *d, struct sp_listener *l);
/* Every shard's acceptors waiting for a slot try again (after a limit was raised). */
void sp_daemon_wake_acceptors(struct sp_daemon *d);
void sp_daemon_ping(struct sp_daemon *d);   /* watchdog round: ask every shard */
bool sp_daemon_pinged(struct sp_daemon *d); /* every shard answered the last round */
void sp_daemon_shards_fini(struct sp_daemon *d); /* after the engine joined */

/* notify.c: systemd's notify protocol (no-ops without NOTIFY_SOCKET) */
bool sp_notify_enabled(void); /* NOTIFY_SOCKET is set: someone reads STATUS= */
void sp_notify_ready(void);
void sp_notify_reloading(void);
void sp_notify_stopping(void);
void sp_notify_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void sp_notify_watchdog(void);
uint64_t sp_notify_watchdog_usec(void); /* 0: no watchdog asked */

/* logging.c */
void sp_logging_setup(enum sp_log_target target, int level);
void sp_access_log(const struct sp_session *s);
void sp_access_log_denied(const struct sp_gen_listener *l, const struct sockaddr *peer,
			  const char *stage);

/* privdrop.c */
int sp_drop_privileges(const struct sp_config *cfg, char *err, size_t errlen);

/* run.c */
int sp_daemon_run(const char *config_path);
void sp_print_version(void);

#endif
