/* SPDX-License-Identifier: MIT */
/*
 * listener.c - binding listening sockets and accepting on every shard.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
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

static sp_accept_fn accept_fn;

void sp_listener_set_accept_fn(sp_accept_fn fn)
{
	accept_fn = fn;
}

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

static int bind_socket(const struct sp_conf_listener *c, struct sp_listener *l, char *err,
		       size_t errlen)
{
	const struct sp_conf_addr *a = &c->bind;
	int type = c->protocol == SP_PROTO_UDP ? SOCK_DGRAM : SOCK_STREAM;
	int family = a->sa.ss_family;
	int one = 1;

	if (family == AF_UNIX) {
		int ret = clear_stale_unix((const struct sockaddr_un *)&a->sa, a->salen);
		if (ret < 0) {
			snprintf(err, errlen, "%s", ret == -EEXIST ? "path exists and is not a socket"
					     : ret == -EADDRINUSE ? "another process listens on it"
								  : strerror(-ret));
			return ret;
		}
	}
	int fd = socket(family, type | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	if (family != AF_UNIX && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
		goto fail;
	if (bind(fd, (const struct sockaddr *)&a->sa, a->salen) < 0)
		goto fail;
	if (type == SOCK_STREAM && listen(fd, (int)c->backlog) < 0)
		goto fail;
	if (family == AF_UNIX) {
		const struct sockaddr_un *sun = (const struct sockaddr_un *)&a->sa;
		struct stat st;
		if (sun->sun_path[0] && stat(sun->sun_path, &st) == 0) {
			l->unix_path = strdup(sun->sun_path);
			l->unix_dev = st.st_dev;
			l->unix_ino = st.st_ino;
		}
	}
	l->fd = fd;
	l->owned = true;
	return 0;
fail:;
	int e = errno;
	snprintf(err, errlen, "%s", strerror(e));
	if (fd >= 0)
		close(fd);
	return -e;
}

static void listener_free(struct sp_listener *l)
{
	free(l->unix_path);
	free(l->key);
	free(l->name);
	free(l->acc);
	free(l->cur);
	free(l->counters);
	free(l);
}

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
	l->fd = -1;
	l->nshards = nshards;
	l->key = sp_listener_key(c);
	l->name = strdup(c->name);
	l->acc = calloc(nshards, sizeof(*l->acc));
	l->cur = calloc(nshards, sizeof(*l->cur));
	l->counters = aligned_alloc(64, sizeof(*l->counters) * nshards);
	if (!l->key || !l->name || !l->acc || !l->cur || !l->counters) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	memset(l->counters, 0, sizeof(*l->counters) * nshards);
	if (c->bind.kind == SP_ADDR_SYSTEMD) {
		l->fd = sd_lookup(c->bind.name);
		if (l->fd < 0) {
			snprintf(err, errlen, "no socket named '%s' was passed by systemd (FileDescriptorName=)",
				 c->bind.name);
			goto fail;
		}
		int type = c->protocol == SP_PROTO_UDP ? SOCK_DGRAM : SOCK_STREAM;
		if (sd_is_socket(l->fd, AF_UNSPEC, type, type == SOCK_STREAM) <= 0) {
			snprintf(err, errlen, "systemd socket '%s' is not a %s socket", c->bind.name,
				 type == SOCK_STREAM ? "listening stream" : "datagram");
			l->fd = -1;
			goto fail;
		}
	} else if (bind_socket(c, l, err, errlen) < 0) {
		goto fail;
	}
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
	if (l->owned && l->fd >= 0)
		close(l->fd);
	l->fd = -1;
}

void sp_listener_unref(struct sp_listener *l)
{
	if (!l || atomic_fetch_sub_explicit(&l->refs, 1, memory_order_acq_rel) != 1)
		return;
	listener_free(l);
}

/* Take a hold on the fd unless it is already gone (holds never come back from zero). */
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

static struct sp_acceptor *my_acceptor(struct sp_listener *l)
{
	return &l->acc[sp_shard_index(sp_shard_current())];
}

/* An armed op or timer holds the fd and the memory; this lets go of both. */
static void acceptor_put(struct sp_listener *l)
{
	hold_put(l);
	sp_listener_unref(l);
}

static void on_accept(struct sp_op *op, int res, uint32_t flags);

/* One writer (the acceptor's shard): no read-modify-write needed, readers load. */
static inline void bump(_Atomic uint64_t *c)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
			      memory_order_relaxed);
}

static void on_retry(struct sp_op *op, int res, uint32_t flags)
{
	struct sp_acceptor *a = sp_container_of(op, struct sp_acceptor, retry.op);
	struct sp_listener *l = a->l;
	a->retrying = false;
	sp_acceptor_start(l);
	acceptor_put(l);
}

void sp_acceptor_start(struct sp_listener *l)
{
	struct sp_acceptor *a = my_acceptor(l);

	if (!a->l) {
		a->l = l;
		sp_op_init(&a->op, NULL, on_accept);
		sp_timer_init(&a->retry, NULL, on_retry);
	}
	if (a->armed || a->retrying || a->paused || atomic_load(&l->closing) ||
	    sp_engine_stopping(sp_shard_engine(sp_shard_current())))
		return;
	if (!hold_get(l))
		return;
	sp_listener_ref(l);
	struct io_uring_sqe *sqe = sp_sqe();
	io_uring_prep_multishot_accept(sqe, l->fd, NULL, NULL, SOCK_CLOEXEC);
	sp_op_submit(&a->op, sqe);
	a->armed = true;
}

void sp_acceptor_stop(struct sp_listener *l)
{
	struct sp_acceptor *a = my_acceptor(l);
	if (a->armed)
		sp_op_cancel(&a->op);
	if (a->retrying && sp_timer_cancel(&a->retry) == 0) {
		a->retrying = false;
		acceptor_put(l);
	}
}

static void on_accept(struct sp_op *op, int res, uint32_t flags)
{
	struct sp_acceptor *a = sp_container_of(op, struct sp_acceptor, op);
	struct sp_listener *l = a->l;

	if (res >= 0) {
		bump(&a->accepted);
		if (!accept_fn(l, res) && (flags & IORING_CQE_F_MORE))
			sp_op_cancel(&a->op); /* paused: the limit is reached */
	} else if (res != -ECANCELED) {
		bump(&a->errors);
	}
	if (flags & IORING_CQE_F_MORE)
		return;
	a->armed = false;
	if (res < 0 && res != -ECANCELED) {
		/* Out of descriptors or memory, or worse: pending clients wait in the backlog;
		 * retry shortly instead of spinning on the error. */
		if (!atomic_load(&l->closing) && hold_get(l)) {
			sp_log(SP_LOG_WARN, "listener %s: accept: %s; retrying in 100 ms", l->name,
			       strerror(-res));
			sp_listener_ref(l);
			a->retrying = true;
			sp_timer_after(&a->retry, RETRY_NS);
		}
	} else {
		sp_acceptor_start(l); /* multishot ended, or a cancel raced a resume */
	}
	acceptor_put(l);
}
