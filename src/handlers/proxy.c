/* SPDX-License-Identifier: MIT */
/*
 * proxy.c - the `proxy` handler: pick a server of the route's upstream, connect under a
 * linked timeout (connect_timeout), try the next server on failure (retries), optionally
 * send a PROXY protocol header, then relay bytes both ways (relay.c) until both sides
 * closed, one reset, or idle_timeout passed.
 *
 * Sessions are pinned (the relay holds provided buffers of its shard's ring). Balancing
 * state is the current shard's row of the pool; server state is shared (upstream.h).
 * Access log fields: upstream=, server=, connect_ms=, tries=.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "handlers/relay.h"
#include "pipeline/pipeline.h"
#include "pipeline/proxy_protocol.h"
#include "upstream/upstream.h"

#define MAX_TRIES 17 /* retries is at most 16 */

struct proxy {
	struct sp_session s;
	union { /* one after the other: an idle proxied connection carries only the relay */
		struct {
			struct sp_op op, tmo; /* connect (then the PROXY header send) + timeout */
			struct __kernel_timespec ts;
		} c;
		struct sp_relay relay;
	};
	struct sp_upstream *u;
	struct sp_server *srv;    /* the server tried last or connected to */
	bool srv_held;            /* srv counts this session active */
	bool connected, relaying;
	int upfd;
	int conn_res;
	uint64_t key;             /* client address hash (source_hash) */
	uint64_t conn_start_ns;
	uint8_t *pp;              /* PROXY header to send, while it is sent */
	uint16_t pp_len, pp_off;
	uint8_t ntried;
	uint16_t tried[MAX_TRIES];
};

static const struct sp_conf_proxy *conf_of(const struct proxy *p)
{
	return &p->s.handler->conf->proxy;
}

static void set_nodelay(int fd)
{
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)); /* fails on unix: fine */
}

/* The socket's peer gets a reset instead of a FIN when it is closed. */
static void linger0(int fd)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
}

static void log_fields(struct proxy *p, double connect_ms)
{
	int n = snprintf(p->s.log_extra, sizeof(p->s.log_extra), "upstream=%s server=%s",
			 p->u->conf->name, p->srv ? p->srv->conf->address.text : "-");
	if (n > 0 && (size_t)n < sizeof(p->s.log_extra) && connect_ms >= 0)
		n += snprintf(p->s.log_extra + n, sizeof(p->s.log_extra) - (size_t)n,
			      " connect_ms=%.3f", connect_ms);
	if (n > 0 && (size_t)n < sizeof(p->s.log_extra))
		snprintf(p->s.log_extra + n, sizeof(p->s.log_extra) - (size_t)n, " tries=%u",
			 p->ntried);
}

static void end(struct proxy *p, const char *reason)
{
	if (!p->connected)
		log_fields(p, -1);
	sp_session_close(&p->s, reason);
}

static void on_relay_end(struct sp_relay *r, const char *reason, int reset_fd)
{
	struct proxy *p = sp_container_of(r, struct proxy, relay);
	if (reset_fd >= 0)
		linger0(reset_fd);
	sp_session_close(&p->s, reason);
}

static void relay(struct proxy *p)
{
	memset(&p->relay, 0, sizeof(p->relay)); /* the connect's ops are idle: reuse their room */
	p->relaying = true;
	sp_relay_start(&p->relay, &p->s.task, p->s.fd, p->upfd,
		       conf_of(p)->idle_timeout_ms * 1000000ull, conf_of(p)->notsent_lowat,
		       &p->s.bytes_in, &p->s.bytes_out, on_relay_end);
}

static void send_pp_rest(struct proxy *p)
{
	struct io_uring_sqe *sqe = sp_sqe();
	io_uring_prep_send(sqe, p->upfd, p->pp + p->pp_off, p->pp_len - p->pp_off, MSG_NOSIGNAL);
	sp_op_submit(&p->c.op, sqe);
}

static void on_pp_sent(struct sp_op *op, int res, uint32_t flags)
{
	struct proxy *p = sp_container_of(op, struct proxy, c.op);
	if (res <= 0) {
		end(p, res == -ECANCELED ? "stopped" : "server reset");
		return;
	}
	p->pp_off += (uint16_t)res;
	if (p->pp_off < p->pp_len) {
		send_pp_rest(p);
		return;
	}
	free(p->pp);
	p->pp = NULL;
	relay(p);
}

/* The header names the client (the PROXY header's source when we got one) and the
 * address it connected to (the header's destination, else our socket's own). */
static void send_pp(struct proxy *p)
{
	struct sockaddr_storage local;
	socklen_t len = sizeof(local);
	const struct sockaddr *dst = sp_session_pp_dst(&p->s, &len);
	if (!dst) {
		len = sizeof(local);
		if (getsockname(p->s.fd, (struct sockaddr *)&local, &len) < 0)
			memset(&local, 0, sizeof(local));
		dst = (const struct sockaddr *)&local;
	}
	p->pp = malloc(SP_PP_BUILD_MAX);
	if (!p->pp) {
		end(p, "out of memory");
		return;
	}
	int version = conf_of(p)->send_proxy_protocol == SP_PP_V1 ? 1 : 2;
	p->pp_len = (uint16_t)sp_pp_build(version, (const struct sockaddr *)&p->s.peer, dst, p->pp);
	p->pp_off = 0;
	sp_op_init(&p->c.op, &p->s.task, on_pp_sent);
	send_pp_rest(p);
}

static void try_next(struct proxy *p);

static void connected(struct proxy *p)
{
	uint64_t now = sp_now_ns();
	p->connected = true;
	sp_server_connected(p->srv);
	log_fields(p, (double)(now - p->conn_start_ns) / 1e6);
	set_nodelay(p->upfd);
	if (conf_of(p)->send_proxy_protocol != SP_PP_OFF)
		send_pp(p);
	else
		relay(p);
}

/* Both halves of the connect's linked pair are back. */
static void settle(struct proxy *p)
{
	if (sp_op_busy(&p->c.op) || sp_op_busy(&p->c.tmo))
		return;
	int res = p->conn_res;
	if (res == 0) {
		connected(p);
		return;
	}
	close(p->upfd);
	p->upfd = -1;
	if (res == -ECANCELED && sp_engine_stopping(sp_shard_engine(sp_shard_current()))) {
		p->srv_held = false;
		sp_server_release(p->srv);
		end(p, "stopped");
		return;
	}
	p->srv_held = false;
	sp_server_failed(p->srv, res == -ECANCELED ? "connect timeout" : strerror(-res),
			 sp_now_ns());
	try_next(p);
}

static void on_connect(struct sp_op *op, int res, uint32_t flags)
{
	struct proxy *p = sp_container_of(op, struct proxy, c.op);
	p->conn_res = res;
	settle(p);
}

static void on_tmo(struct sp_op *op, int res, uint32_t flags)
{
	settle(sp_container_of(op, struct proxy, c.tmo));
}

static void try_next(struct proxy *p)
{
	if (p->ntried > p->u->conf->retries) {
		end(p, "connect failed");
		return;
	}
	unsigned shard = sp_shard_index(sp_shard_current());
	struct sp_server *srv = sp_upstream_pick(p->u, shard, p->key, p->tried, p->ntried,
						 sp_now_ns());
	if (!srv) {
		end(p, p->ntried ? "connect failed" : "no server available");
		return;
	}
	p->srv = srv;
	p->srv_held = true;
	p->tried[p->ntried++] = (uint16_t)srv->idx;

	const struct sp_conf_addr *a = &srv->conf->address;
	/* non-blocking: the connect waits on a poll, never in an io-wq worker */
	p->upfd = socket(a->sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (p->upfd < 0) {
		p->srv_held = false;
		sp_server_release(srv);
		end(p, "out of sockets");
		return;
	}
	uint64_t ms = p->u->conf->connect_timeout_ms;
	p->c.ts.tv_sec = (long long)(ms / 1000);
	p->c.ts.tv_nsec = (long long)(ms % 1000) * 1000000;
	p->conn_start_ns = sp_now_ns();
	struct io_uring_sqe *sqe = sp_sqes(2);
	io_uring_prep_connect(sqe, p->upfd, (const struct sockaddr *)&a->sa, a->salen);
	sp_op_submit_timeout(&p->c.op, sqe, &p->c.tmo, &p->c.ts);
}

static void proxy_start(struct sp_session *s)
{
	struct proxy *p = (struct proxy *)s;
	p->upfd = -1;
	p->u = sp_upstreams_get(s->gen->upstreams, conf_of(p)->upstream);
	p->key = sp_addr_hash((const struct sockaddr *)&s->peer);
	sp_op_init(&p->c.op, &s->task, on_connect);
	sp_op_init(&p->c.tmo, &s->task, on_tmo);
	set_nodelay(s->fd);
	try_next(p);
}

static void proxy_release(struct sp_session *s)
{
	struct proxy *p = (struct proxy *)s;
	if (p->relaying)
		sp_relay_release(&p->relay);
	free(p->pp);
	if (p->upfd >= 0)
		close(p->upfd);
	if (p->srv_held)
		sp_server_release(p->srv);
}

static int proxy_init(struct sp_stage *st, unsigned nshards, char *err, size_t errlen)
{
	const struct sp_conf_upstream *u = st->conf->proxy.upstream;
	if (u->tls) {
		snprintf(err, errlen, "upstream '%s' has 'tls': TLS origination is not in this "
			 "build yet", u->name);
		return -ENOTSUP;
	}
	/* the fallback for kernels before 6.17, on demand (tests, a misbehaving kernel) */
	if (getenv("SPARGIOD_PROXY_NO_MULTISHOT"))
		sp_relay_no_multishot("SPARGIOD_PROXY_NO_MULTISHOT");
	return 0;
}

const struct sp_stage_ops sp_proxy_ops = {
	.kind = SP_STAGE_PROXY,
	.init = proxy_init,
	.session_size = sizeof(struct proxy),
	.start = proxy_start,
	.release = proxy_release,
	.pinned = true,
};
