/* SPDX-License-Identifier: MIT */
/*
 * listener.h - listening sockets and their acceptors.
 *
 * A listener is the socket(s) of one bind (bound by us, or passed by systemd), shared by
 * the generations whose config binds the same address, so a reload never closes a
 * socket it keeps (and never drops the connections queued on it).
 *
 * Spreading. A TCP bind of ours is an SO_REUSEPORT group of one socket per shard: the
 * kernel spreads connections over the group by their addresses and each shard accepts
 * from its own socket only. A unix socket (no reuseport for AF_UNIX) and a socket
 * passed by systemd (one socket, whose queue must outlive the daemon: members of ours
 * would drop theirs at each restart) are accepted on one shard, which hands the
 * connections to the shards in turn.
 *
 * Slots. A connection is accepted only with a slot reserved first (the daemon's
 * acquire: max_connections, the listener's own limit), so limits are never exceeded
 * and clients beyond them wait in the backlog, one leaving it per freed slot. Hence
 * no multishot accept: a one-shot poll says a connection waits, accept4() on the
 * non-blocking socket takes exactly one per slot. An acceptor out of slots stays
 * "waiting" until the daemon calls sp_acceptor_resume on its shard.
 *
 * Lifetime. `refs` keeps the memory (generations, armed acceptors, connections handed
 * to another shard); `hold` keeps the fds open (the daemon's registry, armed
 * acceptors). Retiring a listener drops the registry's hold: the sockets close as soon
 * as no acceptor is armed on them, not when the last old session ends, so a removed
 * address stops taking connections promptly.
 */
#ifndef SP_LISTENER_H
#define SP_LISTENER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "config/config.h"
#include "engine/engine.h"

struct sp_gen_listener;
struct sp_listener;

struct sp_acceptor {
	struct sp_op op;        /* one-shot poll of the socket for a waiting connection */
	struct sp_timer retry;  /* after EMFILE/ENFILE/ENOMEM */
	struct sp_listener *l;
	bool armed, retrying;
	bool waiting;           /* a connection waits and no slot is free: resume wakes it */
	bool stopped;           /* drain, stop, listener gone from this shard's generation */
	unsigned next;          /* hand-off: the shard the next connection goes to */
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
	_Atomic uint64_t refused_per_source; /* the client's address held per_source already */
} __attribute__((aligned(64)));

struct sp_listener {
	_Atomic unsigned refs, hold;
	_Atomic bool closing;
	char *key;             /* "tcp 127.0.0.1:80": equal keys share the sockets */
	char *name;            /* listener name when bound (logs) */
	unsigned serial;       /* unique per listener (per-source counts are per listener) */
	int *fds;              /* [n_fds]: n_fds == nshards (group), or 1 (shared) */
	unsigned n_fds;
	unsigned home;         /* shared socket: the shard that accepts and hands off */
	bool stream;           /* SOCK_STREAM: acceptors run (udp has none yet) */
	bool owned;            /* bound by us (systemd sockets are not closed on retire) */
	char *unix_path;       /* unlinked on close if it is still our socket */
	dev_t unix_dev;
	ino_t unix_ino;
	unsigned nshards;
	_Atomic unsigned active;  /* connections and reserved slots (listener limit) */
	_Atomic unsigned max;     /* listeners[].max_connections of the current generation; 0: none */
	_Atomic unsigned per_source; /* the current generation's cap per address; 0: none */
	struct sp_acceptor *acc;                  /* [nshards] */
	struct sp_listener_counters *counters;    /* [nshards]; kept across reloads */
	const struct sp_gen_listener *_Atomic *cur; /* [nshards]: entry in that shard's generation */
};

/* The daemon's side of accepting, all called on a shard. */
struct sp_accept_ops {
	/* Reserve a slot for one connection on l; false: none free now (the acceptor then
	 * waits for sp_acceptor_resume on its shard). */
	bool (*acquire)(struct sp_listener *l);
	/* Give back a slot reserved and not used (nothing was waiting after all). */
	void (*release)(struct sp_listener *l);
	/* A connection with its slot, on the shard that serves it; owns fd and the slot. */
	void (*accept)(struct sp_listener *l, int fd, const struct sockaddr_storage *peer,
		       socklen_t peerlen);
};
void sp_listener_set_accept_ops(const struct sp_accept_ops *ops);

/* systemd socket activation: sockets passed by name (sd_listen_fds_with_names). */
int sp_systemd_sockets_load(void); /* once at start; returns the number found */
void sp_systemd_sockets_close(void);

/* The registry key of a listener config (compare to reuse a socket across reloads). */
char *sp_listener_key(const struct sp_conf_listener *c);

/* Bind or adopt the socket(s) of c (main thread). On failure returns NULL and writes why. */
struct sp_listener *sp_listener_open(const struct sp_conf_listener *c, unsigned nshards,
				     char *err, size_t errlen);
struct sp_listener *sp_listener_ref(struct sp_listener *l);
void sp_listener_unref(struct sp_listener *l);
/* Stop taking connections on l: drops the registry's hold (main thread, once). */
void sp_listener_retire(struct sp_listener *l);

/* On the current shard: accept on l from now on (unless retired or armed already). */
void sp_acceptor_start(struct sp_listener *l);
/* On the current shard: stop accepting on l (drain, stop, listener removed). */
void sp_acceptor_stop(struct sp_listener *l);
/* On the current shard: a slot may be free; an acceptor waiting for one tries again. */
void sp_acceptor_resume(struct sp_listener *l);

#endif
