/* SPDX-License-Identifier: MIT */
/*
 * pp_read.c - reading the PROXY protocol header of a session on a listener with
 * `proxy_protocol: true`, before its filters and handler run.
 *
 * The header is peeked (MSG_PEEK, under a linked timeout for what is left of the
 * deadline), parsed, and exactly its bytes are then consumed with a plain non-blocking
 * recv (they are known to be there), so not one byte of the client's own data is taken.
 * A header that arrived in pieces is consumed piece by piece: every peeked byte of an
 * incomplete header belongs to the header. No header, a malformed one, or none within
 * SP_PP_TIMEOUT_MS ends the session: a receiver must never guess.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "pipeline/pipeline.h"
#include "pipeline/proxy_protocol.h"

struct sp_pp_reader {
	struct sp_session *s;
	struct sp_op op, tmo; /* the peek and its linked timeout */
	struct __kernel_timespec ts;
	uint64_t deadline_ns;
	uint8_t *buf;         /* SP_PP_MAX bytes while reading */
	unsigned have;        /* header bytes consumed so far */
	int res;
	void (*done)(struct sp_session *s, const char *err);
	struct sockaddr_storage dst; /* from the header, for send_proxy_protocol */
	socklen_t dstlen;            /* 0: the header gave none */
};

size_t sp_pp_reader_size(void)
{
	return sizeof(struct sp_pp_reader);
}

const struct sockaddr *sp_session_pp_dst(const struct sp_session *s, socklen_t *len)
{
	if (!s->pp || !s->pp->dstlen)
		return NULL;
	*len = s->pp->dstlen;
	return (const struct sockaddr *)&s->pp->dst;
}

static void finish(struct sp_session *s, const char *err)
{
	struct sp_pp_reader *r = s->pp;
	free(r->buf);
	r->buf = NULL;
	r->done(s, err);
}

static void peek(struct sp_session *s)
{
	struct sp_pp_reader *r = s->pp;
	uint64_t now = sp_now_ns();
	if (now >= r->deadline_ns) {
		finish(s, "proxy header timeout");
		return;
	}
	uint64_t left = r->deadline_ns - now;
	r->ts.tv_sec = (long long)(left / 1000000000ull);
	r->ts.tv_nsec = (long long)(left % 1000000000ull);
	struct io_uring_sqe *sqe = sp_sqes(2);
	io_uring_prep_recv(sqe, s->fd, r->buf + r->have, SP_PP_MAX - r->have, MSG_PEEK);
	sp_op_submit_timeout(&r->op, sqe, &r->tmo, &r->ts);
}

/* Take n peeked bytes off the socket for good. */
static bool consume(struct sp_session *s, unsigned n)
{
	struct sp_pp_reader *r = s->pp;
	ssize_t got = recv(s->fd, r->buf + r->have, n, MSG_DONTWAIT);
	if (got != (ssize_t)n)
		return false;
	r->have += n;
	return true;
}

static void settle(struct sp_session *s)
{
	struct sp_pp_reader *r = s->pp;
	if (sp_op_busy(&r->op) || sp_op_busy(&r->tmo))
		return;
	if (r->res == -ECANCELED) {
		finish(s, sp_engine_stopping(sp_shard_engine(sp_shard_current())) ?
				  "stopped" : "proxy header timeout");
		return;
	}
	if (r->res <= 0) {
		finish(s, r->res == 0 ? "closed before the proxy header" : "recv error");
		return;
	}
	unsigned avail = r->have + (unsigned)r->res;
	struct sp_pp_addrs a;
	int len = sp_pp_parse(r->buf, avail, &a);
	if (len < 0) {
		finish(s, len == -E2BIG ? "proxy header too long" : "bad proxy header");
		return;
	}
	if (len == 0) { /* a valid beginning: every byte of it is header */
		if (avail >= SP_PP_MAX || !consume(s, (unsigned)r->res))
			finish(s, "bad proxy header");
		else
			peek(s);
		return;
	}
	if (!consume(s, (unsigned)len - r->have)) {
		finish(s, "recv error");
		return;
	}
	if (a.family != AF_UNSPEC) {
		s->peer = a.src;
		s->peerlen = a.srclen;
		r->dst = a.dst;
		r->dstlen = a.dstlen;
	}
	finish(s, NULL);
}

static void on_peek(struct sp_op *op, int res, uint32_t flags)
{
	struct sp_pp_reader *r = sp_container_of(op, struct sp_pp_reader, op);
	r->res = res;
	settle(r->s);
}

static void on_tmo(struct sp_op *op, int res, uint32_t flags)
{
	struct sp_pp_reader *r = sp_container_of(op, struct sp_pp_reader, tmo);
	settle(r->s);
}

void sp_pp_read_start(struct sp_session *s, void (*done)(struct sp_session *s, const char *err))
{
	struct sp_pp_reader *r = s->pp;
	r->s = s;
	sp_op_init(&r->op, &s->task, on_peek);
	sp_op_init(&r->tmo, &s->task, on_tmo);
	r->done = done;
	r->deadline_ns = sp_now_ns() + SP_PP_TIMEOUT_MS * 1000000ull;
	r->buf = malloc(SP_PP_MAX);
	if (!r->buf) {
		done(s, "out of memory");
		return;
	}
	peek(s);
}
