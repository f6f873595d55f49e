/* SPDX-License-Identifier: MIT */
/*
 * listener.c - binding listening sockets (a reuseport group per TCP bind) and accepting
 * on every shard, one reserved slot per connection (see listener.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "engine/log.h"
#include "net/listener.h"

#define RETRY_NS (100 * 1000000ull) /* after EMFILE and friends */


/* ------------------------------------------------------------------------------------ */
/* systemd sockets                                                                       */

static int *sd_fds;
static char **sd_names;
static int n_sd;

int sp_systemd_sockets_load(void)
{
	n_sd = sd_listen_fds_with_names(1, &sd_names);
	if (n_sd <= 0) {
		n_sd = 0;
		return 0;
	}
	sd_fds = calloc((size_t)n_sd, sizeof(*sd_fds));
	for (int i = 0; i < n_sd; i++) {
		sd_fds[i] = SD_LISTEN_FDS_START + i;
		fcntl(sd_fds[i], F_SETFD, FD_CLOEXEC);
	}
	return n_sd;
}

void sp_systemd_sockets_close(void)
{
	for (int i = 0; i < n_sd; i++) {
		close(sd_fds[i]);
		free(sd_names[i]);
	}
	free(sd_names);
	free(sd_fds);
	sd_names = NULL;
	sd_fds = NULL;
	n_sd = 0;
}

static int sd_lookup(const char *name)
{
	for (int i = 0; i < n_sd; i++)
		if (sd_names && sd_names[i] && strcmp(sd_names[i], name) == 0)
			return sd_fds[i];
	return -1;
}

/* ------------------------------------------------------------------------------------ */
/* Binding                                                                               */

char *sp_listener_key(const struct sp_conf_listener *c)
{
	char *key;
	if (asprintf(&key, "%s %s", c->protocol == SP_PROTO_UDP ? "udp" : "tcp",
		     c->bind.text) < 0)
		return NULL;
	return key;
}

/* A unix socket file left by a crashed run is removed; one somebody listens on is not. */
static int clear_stale_unix(const struct sockaddr_un *sun, socklen_t len)
{
	struct stat st;
	if (sun->sun_path[0] == 0 || lstat(sun->sun_path, &st) < 0)
		return 0; /* abstract, or nothing there */
	if (!S_ISSOCK(st.st_mode))
		return -EEXIST;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int ret = connect(fd, (const struct sockaddr *)sun, len);
	close(fd);
	if (ret == 0)
		return -EADDRINUSE;
	unlink(sun->sun_path);
	return 0;
}

/* One socket of ours: non-blocking (accept4() must never wait on a shard). */
static int bind_one(const struct sp_conf_listener *c, const struct sockaddr *sa, socklen_t len,
		    bool reuseport, int *out)
{
	int type = c->protocol == SP_PROTO_UDP ? SOCK_DGRAM : SOCK_STREAM;
	int one = 1;
	int fd = socket(sa->sa_family, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if ((sa->sa_family != AF_UNIX &&
	     setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0) ||
	    (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0) ||
	    bind(fd, sa, len) < 0 || (type == SOCK_STREAM && listen(fd, (int)c->backlog) < 0)) {
		int e = errno;
		close(fd);
		return -e;
	}
	*out = fd;
	return 0;
}

/*
 * A TCP bind of ours: one socket per shard in an SO_REUSEPORT group. A group would
 * silently take in another process of our user that listens there already (another
 * spargiod): a plain bind first, which such a listener refuses, says the address is free.
 */
static int bind_group(const struct sp_conf_listener *c, struct sp_listener *l)
{
	struct sockaddr_storage sa = c->bind.sa;
	socklen_t len = c->bind.salen;
	int fd, ret = bind_one(c, (struct sockaddr *)&sa, len, false, &fd);
	if (ret < 0)
		return ret;
	close(fd);
	for (unsigned i = 0; i < l->nshards; i++) {
		ret = bind_one(c, (struct sockaddr *)&sa, len, true, &l->fds[i]);
		if (ret < 0)
			return ret;
		l->n_fds = i + 1;
		if (i == 0) { /* port 0: the others join the port the first one got */
			socklen_t got = sizeof(sa);
			if (getsockname(l->fds[0], (struct sockaddr *)&sa, &got) < 0)
				return -errno;
		}
	}
	return 0;
}

static int bind_socket(const struct sp_conf_listener *c, struct sp_listener *l, char *err,
		       size_t errlen)
{
	const struct sp_conf_addr *a = &c->bind;
	int family = a->sa.ss_family, ret;

	if (family == AF_UNIX) {
		ret = clear_stale_unix((const struct sockaddr_un *)&a->sa, a->salen);
		if (ret < 0) {
			snprintf(err, errlen, "%s", ret == -EEXIST ? "path exists and is not a socket"
					     : ret == -EADDRINUSE ? "another process listens on it"
								  : strerror(-ret));
			return ret;
		}
	}
	l->owned = true;
	if (family != AF_UNIX && c->protocol == SP_PROTO_TCP) {
		ret = bind_group(c, l);
	} else {
		ret = bind_one(c, (const struct sockaddr *)&a->sa, a->salen, false, &l->fds[0]);
		l->n_fds = ret < 0 ? 0 : 1;
	}
	if (ret < 0) {
		snprintf(err, errlen, "%s", strerror(-ret));
		return ret;
	}
	if (family == AF_UNIX) {
		const struct sockaddr_un *sun = (const struct sockaddr_un *)&a->sa;
		struct stat st;
		if (sun->sun_path[0] && stat(sun->sun_path, &st) == 0) {
			l->unix_path = strdup(sun->sun_path);
			l->unix_dev = st.st_dev;
			l->unix_ino = st.st_ino;
		}
	}
	return 0;
}

/* n_fds stays: shards read it without a hold (accepts_here); the fds only with one. */
static void close_fds(struct sp_listener *l)
{
	for (unsigned i = 0; i < l->n_fds; i++) {
		if (l->owned && l->fds[i] >= 0)
			close(l->fds[i]);
		l->fds[i] = -1;
	}
}

static void listener_free(struct sp_listener *l)
{
	close_fds(l);
	free(l->unix_path);
	free(l->key);
	free(l->name);
	free(l->fds);
	free(l->acc);
	free(l->cur);
	free(l->counters);
	free(l);
}

static _Atomic unsigned serials;
static _Atomic unsigned homes; /* shared sockets: the next home shard */

struct sp_listener *sp_listener_open(const struct sp_conf_listener *c, unsigned nshards,
				     char *err, size_t errlen)
{
	struct sp_listener *l = calloc(1, sizeof(*l));
	if (!l) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	atomic_init(&l->refs, 1);
	atomic_init(&l->hold, 1);
	l->nshards = nshards;
	l->serial = atomic_fetch_add_explicit(&serials, 1, memory_order_relaxed) + 1;
	l->stream = c->protocol == SP_PROTO_TCP;
	l->key = sp_listener_key(c);
	l->name = strdup(c->name);
	l->fds = calloc(nshards, sizeof(*l->fds));
	l->acc = calloc(nshards, sizeof(*l->acc));
	l->cur = calloc(nshards, sizeof(*l->cur));
	l->counters = aligned_alloc(64, sizeof(*l->counters) * nshards);
	if (!l->key || !l->name || !l->fds || !l->acc || !l->cur || !l->counters) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	memset(l->counters, 0, sizeof(*l->counters) * nshards);
	if (c->bind.kind == SP_ADDR_SYSTEMD) {
		int fd = sd_lookup(c->bind.name);
		if (fd < 0) {
			snprintf(err, errlen, "no socket named '%s' was passed by systemd (FileDescriptorName=)",
				 c->bind.name);
			goto fail;
		}
		int type = c->protocol == SP_PROTO_UDP ? SOCK_DGRAM : SOCK_STREAM;
		if (sd_is_socket(fd, AF_UNSPEC, type, type == SOCK_STREAM) <= 0) {
			snprintf(err, errlen, "systemd socket '%s' is not a %s socket", c->bind.name,
				 type == SOCK_STREAM ? "listening stream" : "datagram");
			goto fail;
		}
		/* accept4() on a shard must not wait; systemd (Accept=no) never accepts on it */
		int fl = fcntl(fd, F_GETFL);
		if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
			snprintf(err, errlen, "systemd socket '%s': %s", c->bind.name, strerror(errno));
			goto fail;
		}
		l->fds[0] = fd;
		l->n_fds = 1;
	} else if (bind_socket(c, l, err, errlen) < 0) {
		goto fail;
	}
	/* Shared sockets get their home shards in turn, so that several spread the work. */
	if (l->n_fds == 1)
		l->home = atomic_fetch_add_explicit(&homes, 1, memory_order_relaxed) % nshards;
	return l;
fail:
	listener_free(l);
	return NULL;
}

struct sp_listener *sp_listener_ref(struct sp_listener *l)
{
	atomic_fetch_add_explicit(&l->refs, 1, memory_order_relaxed);
	return l;
}

static void close_socket(struct sp_listener *l)
{
	if (l->unix_path) {
		struct stat st; /* unlink only the file we created, not a successor's */
		if (stat(l->unix_path, &st) == 0 && st.st_dev == l->unix_dev &&
		    st.st_ino == l->unix_ino)
			unlink(l->unix_path);
	}
	close_fds(l);
}

void sp_listener_unref(struct sp_listener *l)
{
	if (!l || atomic_fetch_sub_explicit(&l->refs, 1, memory_order_acq_rel) != 1)
		return;
	listener_free(l);
}

/* Take a hold on the fds unless they are already gone (holds never come back from zero). */
static bool hold_get(struct sp_listener *l)
{
	unsigned h = atomic_load(&l->hold);
	while (h) {
		if (atomic_compare_exchange_weak(&l->hold, &h, h + 1))
			return true;
	}
	return false;
}

static void hold_put(struct sp_listener *l)
{
	if (atomic_fetch_sub_explicit(&l->hold, 1, memory_order_acq_rel) == 1)
		close_socket(l);
}

void sp_listener_retire(struct sp_listener *l)
{
	atomic_store(&l->closing, true);
	hold_put(l);
}

/* ------------------------------------------------------------------------------------ */
/* Acceptors (each on its own shard)                                                     */

#define ACCEPT_BATCH 32 /* connections per drain; the poll re-armed after it fires at once */

static const struct sp_accept_ops *ops;

void sp_listener_set_accept_ops(const struct sp_accept_ops *o)
{
	ops = o;
}

static unsigned me(void)
{
	return sp_shard_index(sp_shard_current());
}

/*
 * An acceptor is engaged while its poll is armed, its retry timer runs or it waits for
 * a slot: then it holds one hold (the fds) and one reference (the memory), and the
 * state that ends the engagement lets go of both.
 */
static void disengage(struct sp_listener *l)
{
	hold_put(l);
	sp_listener_unref(l);
}

/* Whether this shard accepts on l at all: every shard on a group, the home on a shared
 * socket; never on a datagram socket (no udp handler yet). */
static bool accepts_here(const struct sp_listener *l)
{
	return l->stream && (l->n_fds > 1 || me() == l->home);
}

static bool may_run(struct sp_listener *l, struct sp_acceptor *a)
{
	return !a->stopped && !atomic_load(&l->closing) &&
	       !sp_engine_stopping(sp_shard_engine(sp_shard_current()));
}

/* One-shot bump: the acceptor's shard is the only writer. */
static inline void bump(_Atomic uint64_t *c)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
			      memory_order_relaxed);
}

struct handoff {
	struct sp_msg m;
	struct sp_listener *l; /* a reference */
	int fd;
	socklen_t peerlen;
	struct sockaddr_storage peer;
};

static void on_handoff(struct sp_msg *m)
{
	struct handoff *h = sp_container_of(m, struct handoff, m);
	ops->accept(h->l, h->fd, &h->peer, h->peerlen);
	sp_listener_unref(h->l);
	free(h);
}

/* A connection taken from a shared socket goes to the shards in turn (this one too). */
static void deliver(struct sp_listener *l, struct sp_acceptor *a, int fd,
		    const struct sockaddr_storage *peer, socklen_t peerlen)
{
	if (l->n_fds == 1 && l->nshards > 1) {
		unsigned to = a->next++ % l->nshards;
		struct handoff *h = to == me() ? NULL : malloc(sizeof(*h));
		if (h) {
			h->l = sp_listener_ref(l);
			h->fd = fd;
			h->peer = *peer;
			h->peerlen = peerlen;
			sp_msg_post(sp_engine_shard(sp_shard_engine(sp_shard_current()), to), &h->m,
				    on_handoff);
			return;
		}
	}
	ops->accept(l, fd, peer, peerlen);
}

static void arm_poll(struct sp_listener *l, struct sp_acceptor *a)
{
	sp_op_poll(&a->op, l->fds[l->n_fds > 1 ? me() : 0], POLLIN);
	a->armed = true;
}

/*
 * The listener is retired: take the clients waiting in this shard's queue now, served
 * by the generation they came under (l->cur[] is cleared after us), as far as slots
 * allow, rather than let the close reset them; then close this shard's member of a
 * group, so that the kernel sends later clients to the members still open. Bounded
 * by the backlog.
 */
static void final_drain(struct sp_listener *l)
{
	if (!l->owned || !accepts_here(l) || !hold_get(l))
		return; /* systemd's socket keeps its queue for our successor */
	unsigned i = l->n_fds > 1 ? me() : 0;
	for (unsigned n = 0; n < 65536 && ops->acquire(l); n++) {
		struct sockaddr_storage peer;
		socklen_t peerlen = sizeof(peer);
		int fd = accept4(l->fds[i], (struct sockaddr *)&peer, &peerlen, SOCK_CLOEXEC);
		if (fd < 0) {
			int e = errno;
			ops->release(l);
			if (e == EINTR || e == ECONNABORTED || e == EPROTO)
				continue;
			break;
		}
		bump(&l->acc[me()].accepted);
		ops->accept(l, fd, &peer, peerlen);
	}
	if (l->n_fds > 1 && l->owned) {
		close(l->fds[i]); /* only this shard uses it; the hold keeps close_fds away */
		l->fds[i] = -1;
	}
	hold_put(l);
}

/* Accept no more here: let go; a retired listener's queue is served first (whatever
 * comes first on this shard: its stop, or a completion or wake that finds it closing). */
static void wind_down(struct sp_listener *l, struct sp_acceptor *a)
{
	if (!a->stopped && atomic_load(&l->closing) &&
	    !sp_engine_stopping(sp_shard_engine(sp_shard_current())))
		final_drain(l);
	a->stopped = true;
	disengage(l);
}

/*
 * Engaged and told a connection may wait: take as many as there are slots (up to a
 * batch), then poll again; out of slots, wait for sp_acceptor_resume; on an error that
 * more tries would repeat (out of descriptors or memory), retry in 100 ms. The clients
 * that are not taken wait in the backlog.
 */
static void drain(struct sp_listener *l, struct sp_acceptor *a)
{
	if (!may_run(l, a)) {
		wind_down(l, a);
		return;
	}
	int lfd = l->fds[l->n_fds > 1 ? me() : 0];
	for (unsigned n = 0; n < ACCEPT_BATCH; n++) {
		if (!ops->acquire(l)) {
			a->waiting = true;
			return;
		}
		struct sockaddr_storage peer;
		socklen_t peerlen = sizeof(peer);
		int fd = accept4(lfd, (struct sockaddr *)&peer, &peerlen, SOCK_CLOEXEC);
		if (fd >= 0) {
			bump(&a->accepted);
			deliver(l, a, fd, &peer, peerlen);
			continue;
		}
		int e = errno;
		ops->release(l);
		if (e == EAGAIN || e == EWOULDBLOCK)
			break;
		if (e == EINTR || e == ECONNABORTED || e == EPROTO)
			continue; /* that client left already; the next may be there */
		bump(&a->errors);
		sp_log(SP_LOG_WARN, "listener %s: accept: %s; retrying in 100 ms", l->name,
		       strerror(e));
		a->retrying = true;
		sp_timer_after(&a->retry, RETRY_NS);
		return;
	}
	arm_poll(l, a);
}

static void on_poll(struct sp_op *op, int res, uint32_t flags)
{
	struct sp_acceptor *a = sp_container_of(op, struct sp_acceptor, op);
	struct sp_listener *l = a->l;
	a->armed = false;
	if (!may_run(l, a)) {
		wind_down(l, a);
	} else if (res == -ECANCELED) {
		arm_poll(l, a); /* a stop that a start undid before the cancel came back */
	} else if (res < 0) {
		bump(&a->errors);
		sp_log(SP_LOG_WARN, "listener %s: poll: %s; retrying in 100 ms", l->name,
		       strerror(-res));
		a->retrying = true;
		sp_timer_after(&a->retry, RETRY_NS);
	} else {
		drain(l, a);
	}
}

static void on_retry(struct sp_op *op, int res, uint32_t flags)
{
	struct sp_acceptor *a = sp_container_of(op, struct sp_acceptor, retry.op);
	a->retrying = false;
	drain(a->l, a); /* cancelled: drain sees the stop and lets go */
}

void sp_acceptor_start(struct sp_listener *l)
{
	struct sp_acceptor *a = &l->acc[me()];

	if (!a->l) {
		a->l = l;
		a->next = me();
		sp_op_init(&a->op, NULL, on_poll);
		sp_timer_init(&a->retry, NULL, on_retry);
	}
	a->stopped = false;
	if (!accepts_here(l) || a->armed || a->retrying || a->waiting || !may_run(l, a))
		return;
	if (!hold_get(l))
		return;
	sp_listener_ref(l);
	arm_poll(l, a);
}

void sp_acceptor_stop(struct sp_listener *l)
{
	struct sp_acceptor *a = &l->acc[me()];
	if (!a->stopped && atomic_load(&l->closing) &&
	    !sp_engine_stopping(sp_shard_engine(sp_shard_current())))
		final_drain(l);
	a->stopped = true;
	if (a->armed)
		sp_op_cancel(&a->op); /* on_poll lets go */
	if (a->retrying && sp_timer_cancel(&a->retry) == 0) {
		a->retrying = false;
		disengage(l);
	}
	if (a->waiting) {
		a->waiting = false;
		disengage(l);
	}
}

void sp_acceptor_resume(struct sp_listener *l)
{
	struct sp_acceptor *a = &l->acc[me()];
	if (!a->waiting)
		return;
	a->waiting = false;
	drain(l, a);
}
