/* SPDX-License-Identifier: MIT */
/*
 * metrics.c - the `metrics` handler: `GET /metrics` over HTTP/1.1 answered with the
 * Prometheus text of the daemon's figures (metrics_text.c), on any TCP listener. The
 * `status` handler is the same code with other resources: `GET /` the live status page
 * (status_page.html, built in), `GET /status.json` its figures (status.c). Both are
 * read-only: only GET and HEAD of those paths are served, nothing else is a command.
 *
 * One request at a time per connection: read a head (metrics_http.c, with the strict
 * parser of src/http), send the whole
 * answer, then read the next (pipelined requests wait in the input buffer); keep-alive
 * unless the client or a refusal says otherwise. A timer bounds every wait: a head must
 * be complete 10 s after its first byte (or after accept), an idle kept-alive connection
 * ends after 60 s, an answer the client does not read after 30 s. After a 4xx/5xx that
 * closes, the write side is shut and input drained for up to 2 s, so the client reads
 * the answer rather than a reset.
 *
 * The text is built on the shard in one go, from the generation current on this shard
 * (a kept-alive scraper sees reloads), reading counters with relaxed loads: it never
 * blocks and takes no lock. Its buffer is the session's own, grown as needed, kept
 * for the connection's next answers and freed when the session is released.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "handlers/metrics.h"
#include "engine/bug.h"
#include "http/http.h"
#include "net/listener.h"
#include "pipeline/pipeline.h"

#define MS 1000000ull
#define HEAD_TIMEOUT_NS (10000 * MS)
#define IDLE_TIMEOUT_NS (60000 * MS)
#define SEND_TIMEOUT_NS (30000 * MS)
#define LINGER_NS (2000 * MS)
#define LINGER_MAX (64u << 10)
#define HEAD_ROOM 512 /* the answer's header is written in front of the body */

struct metrics {
	struct sp_session s;
	struct sp_op recv_op, send_op;
	struct sp_timer timer;
	uint64_t deadline;    /* of what we wait for now */
	bool timed_out;       /* the deadline passed: the op in flight was cancelled */
	bool idle;            /* between requests, nothing received yet */
	bool close_after;     /* close once the answer is sent */
	bool lingering;       /* answer sent, write side shut, draining input */
	bool done;
	bool status;          /* the `status` stage: its resources, not /metrics */
	const char *error;    /* the session's end reason after an error answer */
	unsigned requests;
	size_t lingered;
	struct sp_text out;   /* the answer: out.buf[out_off .. out.len) still to send */
	size_t out_off;
	size_t in_len;
	size_t scanned;       /* the parser's position in `in` */
	char in[SP_MREQ_HEAD_MAX];
};

static void process(struct metrics *m);

static void finish(struct metrics *m, const char *reason)
{
	if (m->done)
		return;
	m->done = true;
	snprintf(m->s.log_extra, sizeof(m->s.log_extra), "requests=%u", m->requests);
	sp_session_close(&m->s, reason);
}

static void arm(struct metrics *m, uint64_t ns)
{
	m->timed_out = false;
	m->deadline = sp_now_ns() + ns;
	sp_timer_arm(&m->timer, m->deadline);
}

static void on_timer(struct sp_op *op, int res, uint32_t flags)
{
	struct metrics *m = sp_container_of(op, struct metrics, timer.op);
	/* a fired timer may race a re-arm: only a deadline really passed counts */
	if (res != 0 || m->done || sp_now_ns() < m->deadline)
		return;
	m->timed_out = true;
	if (sp_op_busy(&m->recv_op))
		sp_op_cancel(&m->recv_op);
	if (sp_op_busy(&m->send_op))
		sp_op_cancel(&m->send_op);
}

static void recv_more(struct metrics *m)
{
	struct io_uring_sqe *sqe = sp_sqe();
	io_uring_prep_recv(sqe, m->s.fd, m->in + m->in_len, sizeof(m->in) - m->in_len, 0);
	sp_op_submit(&m->recv_op, sqe);
}

static void send_rest(struct metrics *m)
{
	struct io_uring_sqe *sqe = sp_sqe();
	io_uring_prep_send(sqe, m->s.fd, m->out.buf + m->out_off, m->out.len - m->out_off,
			   MSG_NOSIGNAL);
	sp_op_submit(&m->send_op, sqe);
}

/* The generation current on this shard: a kept-alive scraper follows reloads. It stays
 * alive during this callback (only this shard's adopt message releases it). NULL when
 * the listener left the configuration: answer from the session's own, then close. */
static const struct sp_gen *current_gen(struct metrics *m)
{
	unsigned me = sp_shard_index(sp_shard_current());
	const struct sp_gen_listener *e =
		atomic_load_explicit(&m->s.lst->sock->cur[me], memory_order_relaxed);
	return e ? e->gen : NULL;
}

static void answer(struct metrics *m, const struct sp_mreq *r)
{
	struct sp_text *t = &m->out;
	int status = r->status;
	const struct sp_gen *gen = current_gen(m);

	t->len = 0;
	t->failed = false;
	sp_text_printf(t, "%*s", HEAD_ROOM, "");
	struct sp_engine *eng = sp_shard_engine(sp_shard_current());
	if (!gen)
		gen = m->s.gen;
	if (status == 200 && r->resource == SP_MRES_METRICS)
		sp_metrics_text(t, gen, eng);
	else if (status == 200 && r->resource == SP_MRES_STATUS_PAGE)
		sp_text_printf(t, "%.*s", (int)sp_status_page_len, sp_status_page_html);
	else if (status == 200 && sp_status_json(t, gen, eng) < 0)
		t->failed = true;
	if (t->failed) { /* out of memory: a short answer from what we have */
		sp_text_free(t);
		sp_text_printf(t, "%*s", HEAD_ROOM, "");
		status = 500;
	}
	if (status != 200)
		sp_text_printf(t, "%d %s\n", status, sp_http_reason(status));
	if (t->failed) {
		finish(m, "out of memory");
		return;
	}
	m->close_after = !r->keep_alive || status >= 500 || !current_gen(m);
	m->error = status >= 400 && status != 404 ? "bad request" : NULL;

	const char *type = "text/plain; charset=utf-8";
	if (status == 200)
		type = r->resource == SP_MRES_METRICS ? "text/plain; version=0.0.4; charset=utf-8"
		       : r->resource == SP_MRES_STATUS_PAGE ? "text/html; charset=utf-8"
							    : "application/json";
	/* the page loads nothing from anywhere but its own /status.json */
	const char *extra = !m->status ? ""
		: "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n"
		  "Content-Security-Policy: default-src 'none'; script-src 'unsafe-inline'; "
		  "style-src 'unsafe-inline'; img-src data:; connect-src 'self'; "
		  "frame-ancestors 'none'; form-action 'none'\r\n";
	char head[HEAD_ROOM];
	int n = snprintf(head, sizeof(head),
			 "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
			 "Content-Length: %zu\r\n%s%s%s\r\n",
			 status, sp_http_reason(status), type,
			 t->len - HEAD_ROOM, extra, status == 405 ? "Allow: GET, HEAD\r\n" : "",
			 m->close_after ? "Connection: close\r\n" : "");
	SP_BUG_ON(n < 0 || n >= HEAD_ROOM);
	m->out_off = HEAD_ROOM - (size_t)n;
	memcpy(t->buf + m->out_off, head, (size_t)n);
	if (r->head)
		t->len = HEAD_ROOM; /* HEAD: the same header, no body */

	m->requests++;
	if (r->head_len) { /* the next request, if pipelined, moves to the front */
		memmove(m->in, m->in + r->head_len, m->in_len - r->head_len);
		m->in_len -= r->head_len;
		m->scanned = 0;
	}
	arm(m, SEND_TIMEOUT_NS);
	send_rest(m);
}

static void process(struct metrics *m)
{
	struct sp_mreq r;
	int (*request)(const char *, size_t, size_t *, struct sp_mreq *) =
		m->status ? sp_status_request : sp_metrics_request;
	if (request(m->in, m->in_len, &m->scanned, &r))
		answer(m, &r);
	else
		recv_more(m);
}

static void linger(struct metrics *m)
{
	shutdown(m->s.fd, SHUT_WR); /* quick and non-blocking: the client sees our end */
	m->lingering = true;
	m->in_len = 0;
	arm(m, LINGER_NS);
	recv_more(m);
}

static void on_send(struct sp_op *op, int res, uint32_t flags)
{
	struct metrics *m = sp_container_of(op, struct metrics, send_op);

	if (res <= 0) {
		finish(m, m->timed_out ? "send timeout" : res == -ECANCELED ? "stopped" : "send error");
		return;
	}
	m->out_off += (size_t)res;
	m->s.bytes_out += (size_t)res;
	if (m->out_off < m->out.len) {
		send_rest(m);
		return;
	}
	if (m->close_after) {
		if (m->error)
			linger(m);
		else
			finish(m, NULL);
		return;
	}
	m->idle = m->in_len == 0;
	arm(m, m->idle ? IDLE_TIMEOUT_NS : HEAD_TIMEOUT_NS);
	process(m);
}

static void on_recv(struct sp_op *op, int res, uint32_t flags)
{
	struct metrics *m = sp_container_of(op, struct metrics, recv_op);

	if (m->lingering) {
		m->lingered += res > 0 ? (size_t)res : 0;
		if (res > 0 && m->lingered < LINGER_MAX && !m->timed_out)
			recv_more(m); /* in_len stays 0: what arrives is dropped */
		else
			finish(m, m->error);
		return;
	}
	if (res <= 0) {
		const char *why = res == 0 ? NULL : m->timed_out ? "request timeout"
						: res == -ECANCELED ? "stopped" : "recv error";
		if (res == 0 && m->in_len)
			why = "incomplete request";
		else if (m->timed_out && m->idle)
			why = NULL; /* a kept-alive connection left idle: a clean end */
		finish(m, why);
		return;
	}
	if (m->idle) { /* a new request began: its head has HEAD_TIMEOUT to arrive */
		m->idle = false;
		arm(m, HEAD_TIMEOUT_NS);
	}
	m->in_len += (size_t)res;
	m->s.bytes_in += (size_t)res;
	process(m);
}

static void start(struct sp_session *s, bool status)
{
	struct metrics *m = (struct metrics *)s;
	m->status = status;
	sp_op_init(&m->recv_op, &s->task, on_recv);
	sp_op_init(&m->send_op, &s->task, on_send);
	sp_timer_init(&m->timer, &s->task, on_timer);
	arm(m, HEAD_TIMEOUT_NS);
	/* browsers open spare connections they may never use: for the page, one that
	 * sends nothing ends cleanly at the head timeout, not as an error */
	m->idle = status;
	recv_more(m);
}

static void metrics_start(struct sp_session *s);

/* Nothing is in flight any more: the answer buffer can go. */
static void metrics_release(struct sp_session *s)
{
	sp_text_free(&((struct metrics *)s)->out);
}

const struct sp_stage_ops sp_metrics_ops = {
	.kind = SP_STAGE_METRICS,
	.session_size = sizeof(struct metrics),
	.start = metrics_start,
	.release = metrics_release,
};

static void metrics_start(struct sp_session *s)
{
	start(s, false);
}

static void status_start(struct sp_session *s)
{
	start(s, true);
}

const struct sp_stage_ops sp_status_ops = {
	.kind = SP_STAGE_STATUS,
	.session_size = sizeof(struct metrics),
	.start = status_start,
	.release = metrics_release,
};
