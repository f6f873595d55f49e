/* SPDX-License-Identifier: MIT */
/*
 * listener.h - listening sockets and their acceptors.
 *
 * A listener is one socket (bound by us, or passed by systemd) shared by the generations
 * whose config binds the same address, so a reload never closes a socket it keeps. Every
 * shard runs one acceptor on it: a multishot accept on the shard's own ring.
 *
 * Lifetime. `refs` keeps the memory (generations, armed acceptors); `hold` keeps the fd
 * open (the daemon's registry, armed acceptors). Retiring a listener drops the registry's
 * hold: the socket closes as soon as no acceptor is armed on it, not when the last old
 * session ends, so a removed address stops taking connections promptly.
 */
#ifndef SP_LISTENER_H
#define SP_LISTENER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <sys/types.h>

#include "config/config.h"
#include "engine/engine.h"

struct sp_gen_listener;
struct sp_listener;

struct sp_acceptor {
	struct sp_op op;        /* multishot accept */
	struct sp_timer retry;  /* after EMFILE/ENFILE/ENOMEM */
	struct sp_listener *l;
	bool armed, retrying;
	bool paused;            /* max_connections reached (set by the daemon) */
	_Atomic uint64_t accepted, errors; /* written by its shard only */
};

/* What became of this listener's connections, per shard, written by that shard only
 * (relaxed load + store); readers sum the shards. A session may end on another shard
 * than the one that opened it: active = sum(opened) - sum(closed). */
struct sp_listener_counters {
	_Atomic uint64_t opened, closed;   /* sessions started and ended */
	_Atomic uint64_t refused_limit;    /* accepted past limits.max_connections, closed */
	_Atomic uint64_t refused_acl;      /* denied by an acl filter */
	_Atomic uint64_t refused_rate_limit; /* denied by a rate_limit filter */
} __attribute__((aligned(64)));

struct sp_listener {
	_Atomic unsigned refs, hold;
	_Atomic bool closing;
	char *key;             /* "tcp 127.0.0.1:80": equal keys share the socket */
	char *name;            /* listener name when bound (logs) */
	int fd;
	bool owned;            /* bound by us (systemd sockets are not closed on retire) */
	char *unix_path;       /* unlinked on close if it is still our socket */
	dev_t unix_dev;
	ino_t unix_ino;
	unsigned nshards;
	struct sp_acceptor *acc;                  /* [nshards] */
	struct sp_listener_counters *counters;    /* [nshards]; kept across reloads */
	const struct sp_gen_listener *_Atomic *cur; /* [nshards]: entry in that shard's generation */
};

/* The accept handler of the daemon: returns false to pause this acceptor (limit). */
typedef bool (*sp_accept_fn)(struct sp_listener *l, int fd);
void sp_listener_set_accept_fn(sp_accept_fn fn);

/* systemd socket activation: sockets passed by name (sd_listen_fds_with_names). */
int sp_systemd_sockets_load(void); /* once at start; returns the number found */
void sp_systemd_sockets_close(void);

/* The registry key of a listener config (compare to reuse a socket across reloads). */
char *sp_listener_key(const struct sp_conf_listener *c);

/* Bind or adopt the socket of c (main thread). On failure returns NULL and writes why. */
struct sp_listener *sp_listener_open(const struct sp_conf_listener *c, unsigned nshards,
				     char *err, size_t errlen);
struct sp_listener *sp_listener_ref(struct sp_listener *l);
void sp_listener_unref(struct sp_listener *l);
/* Stop taking connections on l: drops the registry's hold (main thread, once). */
void sp_listener_retire(struct sp_listener *l);

/* On the current shard: arm its acceptor unless paused, retired or armed already. */
void sp_acceptor_start(struct sp_listener *l);
/* On the current shard: cancel its acceptor (pause or retire). */
void sp_acceptor_stop(struct sp_listener *l);

#endif
