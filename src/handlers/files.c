/* SPDX-License-Identifier: MIT */
/*
 * files.c - the `files` handler: static files over HTTP/1.x. This file holds the stage
 * (root directory fd, MIME table and caches, built on the main thread when a generation
 * is prepared) and each connection's request loop:
 *
 *   read a head -> parse (src/http) -> open (files_open.c) -> answer (files_send.c)
 *        ^                                                               |
 *        +------------- keep-alive: leftover bytes are the next request -+
 *
 * Requests are served one at a time in arrival order; pipelined requests wait in the
 * buffer (or the socket) until the previous answer is out, so answers never reorder.
 *
 * Timeouts: one watchdog timer per session ticks a few times per timeout and compares
 * the clock with a deadline that each phase sets with a plain store. The ticks fall on
 * a grid shared by all sessions, so a shard with thousands of idle connections wakes a
 * few times a second for all of them, not once per connection per tick. A head must be
 * complete header_timeout after its first byte (after the connection, for the first
 * request) however it trickles in; an idle keep-alive connection lasts
 * keepalive_timeout (and from its second tick holds no request buffer: maybe_shed);
 * an answer that makes no progress for send_timeout is dropped.
 * Closing after an error is lingering: shut down our side, read and drop what the
 * client still sends for a moment, so our answer is not lost to a reset.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine/log.h"
#include "handlers/files.h"
#include "net/listener.h"

#define MS 1000000ull
#define LINGER_BYTES (64 * 1024)

static void read_more(struct files_session *f);
static void try_parse(struct files_session *f);
static void end_session(struct files_session *f, const char *reason);

struct files_cache *files_my_cache(struct files_session *f)
{
	return f->fs->caches[sp_shard_index(sp_task_shard(&f->s.task))];
}

static struct files_pool *my_pool(struct files_session *f)
{
	return &f->fs->pools[sp_shard_index(sp_task_shard(&f->s.task))];
}

/* Work areas are mapped one by one, not taken from malloc (72 KiB, under its mmap
 * threshold): those of a burst of requests on many connections go back to the kernel
 * once answered, where from the heap they left holes between the sessions that kept their
 * touched pages resident (2.2 KB more per idle connection after one request on each of
 * 2000 at once). */
static struct files_work *work_map(void)
{
	void *p = mmap(NULL, sizeof(struct files_work), PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

static void work_unmap(struct files_work *w)
{
	munmap(w, sizeof(*w));
}

/* A work area for the request about to be answered; false: none (the session ends). */
static bool take_work(struct files_session *f)
{
	if (f->w)
		return true;
	struct files_pool *p = my_pool(f);
	struct files_work *w = p->free;
	if (w) {
		p->free = w->next;
		p->n--;
	} else if (!(w = work_map())) {
		sp_log(SP_LOG_ERR, "files: out of memory for a request");
		end_session(f, "out of memory");
		return false;
	}
	f->w = w;
	return true;
}

static void give_back_work(struct files_session *f)
{
	struct files_work *w = f->w;
	if (!w)
		return;
	f->w = NULL;
	struct files_pool *p = my_pool(f);
	if (p->n >= FILES_POOL_KEEP) {
		work_unmap(w);
		return;
	}
	w->next = p->free;
	p->free = w;
	p->n++;
}

void files_set_deadline(struct files_session *f, enum files_phase phase, uint64_t timeout_ns)
{
	f->phase = phase;
	f->deadline_ns = sp_pass_ns() + timeout_ns;
}

/* The listener stopped accepting (SIGTERM, `drain`, removed by a reload): answer what
 * is asked with Connection: close, and end idle keep-alive connections, so a drain takes
 * as long as the longest answer rather than keepalive_timeout or drain_timeout. */
static bool draining(struct files_session *f)
{
	return atomic_load_explicit(&f->s.lst->sock->closing, memory_order_relaxed);
}

static void end_session(struct files_session *f, const char *reason)
{
	if (f->closing)
		return;
	f->closing = true;
	snprintf(f->s.log_extra, sizeof(f->s.log_extra), "requests=%u", f->requests);
	sp_session_close(&f->s, reason);
}

void files_fail(struct files_session *f, const char *reason)
{
	end_session(f, reason);
}

/* One access-log line per request (the connection's own line comes at its end). */
static void log_request(struct files_session *f)
{
	if (!f->s.gen->cfg->log.access_log)
		return;
	struct sp_http_str m = f->req.method_name, t = f->req.target;
	double ms = (double)(sp_now_ns() - f->req_start_ns) / 1e6;
	int mlen = m.len ? (int)(m.len > 16 ? 16 : m.len) : 1;
	int tlen = t.len ? (int)(t.len > 200 ? 200 : t.len) : 1;
	const char *mp = m.len ? m.p : "-", *tp = t.len ? t.p : "-";
	char fields[512], client[64]; /* the address is written out here, not kept per session */
	sp_sockaddr_str((struct sockaddr *)&f->s.peer, f->s.peerlen, client, sizeof(client));
	snprintf(fields, sizeof(fields),
		 "SPARGIOD_EVENT=request\nLISTENER=%s\nROUTE=%s\nCLIENT=%s\nMETHOD=%.*s\n"
		 "PATH=%.*s\nSTATUS=%d\nBYTES=%llu\nDURATION_MS=%.3f",
		 f->s.lst->conf->name, f->s.route->conf->name, client, mlen, mp, tlen, tp,
		 f->status, (unsigned long long)f->bytes_sent, ms);
	sp_log_fields(SP_LOG_INFO, fields,
		      "access listener=%s route=%s client=%s method=%.*s path=%.*s status=%d "
		      "bytes=%llu duration_ms=%.3f",
		      f->s.lst->conf->name, f->s.route->conf->name, client, mlen, mp, tlen, tp,
		      f->status, (unsigned long long)f->bytes_sent, ms);
}

/* ------------------------------------------------------------------------------------ */
/* Closing: lingering                                                                    */

static void on_shutdown(struct sp_op *op, int res, uint32_t flags)
{
	(void)op, (void)res, (void)flags; /* the reads that follow tell how it ends */
}

static void linger(struct files_session *f)
{
	files_set_deadline(f, PH_LINGER, FILES_LINGER_NS);
	f->in_start = f->in_len = 0;
	struct io_uring_sqe *sqe = sp_sqe();
	io_uring_prep_shutdown(sqe, f->s.fd, SHUT_WR);
	sp_op_submit(&f->aux_op, sqe);
	read_more(f);
}

/* ------------------------------------------------------------------------------------ */
/* Requests                                                                              */

static void begin_head(struct files_session *f)
{
	memset(&f->req, 0, sizeof(f->req));
	f->req_start_ns = sp_pass_ns(); /* the request came in before this pass */
	f->scanned = 0;
	f->head_len = 0;
	f->status = 0;
	f->bytes_sent = 0;
	f->close_after = false;
	files_set_deadline(f, PH_HEAD, f->fs->conf->header_timeout_ms * MS);
}

/* The answer is out: log it, then the next request, or close. */
void files_finish(struct files_session *f)
{
	log_request(f);
	files_release_file(f);
	give_back_work(f);
	f->requests++;
	f->responding = false;
	if (f->close_after || !f->keep_alive || f->peer_closed) {
		if (f->peer_closed)
			end_session(f, NULL);
		else
			linger(f);
		return;
	}
	/* what follows the head is the next request (pipelined), or will be */
	f->in_start += f->head_len;
	f->in_len -= f->head_len;
	if (f->in_len) {
		begin_head(f);
		try_parse(f);
		return;
	}
	if (!sp_op_busy(&f->recv_op))
		f->in_start = 0;
	memset(&f->req, 0, sizeof(f->req));
	files_set_deadline(f, PH_IDLE, f->fs->conf->keepalive_timeout_ms * MS);
	read_more(f);
}

static void handle_request(struct files_session *f)
{
	struct files_stage *fs = f->fs;
	f->keep_alive = f->req.keep_alive && !draining(f);
	f->responding = true;
	files_set_deadline(f, PH_WORK, fs->conf->send_timeout_ms * MS);

	int ret = sp_http_path(f->req.target.p, f->req.target.len, f->w->path, sizeof(f->w->path),
			       &f->path_flags);
	if (ret < 0) {
		files_respond_error(f, -ret, false);
		return;
	}
	if (f->path_flags & SP_HTTP_PATH_DOTSEG) {
		if (fs->conf->dotfiles == SP_DOTFILES_IGNORE) {
			files_respond_error(f, 404, false);
			return;
		}
		if (fs->conf->dotfiles == SP_DOTFILES_DENY) {
			files_respond_error(f, 403, false);
			return;
		}
	}
	files_open_path(f);
}

static void try_parse(struct files_session *f)
{
	char *p = f->in + f->in_start;
	long n = sp_http_parse(p, f->in_len, &f->scanned, &f->fs->limits, &f->req);
	if (n != 0 && !take_work(f))
		return;
	if (n > 0) {
		f->head_len = (size_t)n;
		handle_request(f);
	} else if (n < 0) {
		f->keep_alive = false;
		f->responding = true;
		files_respond_error(f, (int)-n, true);
	} else if (f->in_start + f->in_len < f->in_cap) {
		read_more(f);
	} else if (sp_op_busy(&f->recv_op)) {
		return; /* a read-ahead still writes into in: its completion comes back here */
	} else if (f->in_start) { /* room at the front: move the partial head there */
		memmove(f->in, p, f->in_len);
		f->in_start = 0;
		read_more(f);
	} else if (f->in_cap < f->fs->conf->max_header_size) { /* a long head: grow */
		size_t cap = f->in_cap * 4 < f->fs->conf->max_header_size ? f->in_cap * 4
									   : f->fs->conf->max_header_size;
		char *in = realloc(f->in, cap);
		if (!in) {
			end_session(f, "out of memory");
			return;
		}
		f->in = in;
		f->in_cap = cap;
		read_more(f);
	} else if (take_work(f)) {
		f->keep_alive = false;
		f->responding = true;
		files_respond_error(f, sp_http_overflow_status(p, f->in_len), true);
	}
}

/* ------------------------------------------------------------------------------------ */
/* Idle connections give their request buffer back                                       */

static void on_readable(struct sp_op *op, int res, uint32_t flags);
static void on_recv(struct sp_op *op, int res, uint32_t flags);

static bool alloc_in(struct files_session *f)
{
	/* most request heads fit in FILES_IN_MIN; a longer one grows it to max_header_size */
	size_t max = f->fs->conf->max_header_size;
	f->in_cap = max < FILES_IN_MIN ? max : FILES_IN_MIN;
	f->in_start = f->in_len = 0;
	f->in = malloc(f->in_cap);
	if (f->in)
		return true;
	f->in_cap = 0;
	sp_log(SP_LOG_ERR, "files: out of memory for a session");
	end_session(f, "out of memory");
	return false;
}

/*
 * A keep-alive connection idle for a whole tick: cancel its receive, and once that is
 * back (shed_buffer) free the request buffer and wait with a poll, which holds no
 * memory; the next request gets a fresh buffer (on_readable). A connection whose
 * requests come less than a tick apart never gets here.
 */
static void maybe_shed(struct files_session *f)
{
	uint64_t idle_since = f->deadline_ns - f->fs->conf->keepalive_timeout_ms * MS;
	if (f->shedding || !f->in || f->in_len || !sp_op_busy(&f->recv_op) ||
	    sp_now_ns() - idle_since < f->fs->tick_ns)
		return;
	f->shedding = true;
	sp_op_cancel(&f->recv_op);
}

static void shed_buffer(struct files_session *f)
{
	free(f->in);
	f->in = NULL;
	f->in_cap = f->in_start = f->in_len = 0;
	files_poll(f, &f->recv_op, on_readable, POLLIN);
}

static void on_readable(struct sp_op *op, int res, uint32_t flags)
{
	struct files_session *f = sp_container_of(op, struct files_session, recv_op);
	(void)flags;
	f->recv_op.fn = on_recv;
	if (f->closing)
		return;
	if (res == -ECANCELED) {
		end_session(f, "stopped");
		return;
	}
	if (res < 0) {
		end_session(f, "recv error");
		return;
	}
	if (alloc_in(f))
		read_more(f); /* data, or the end: on_recv tells */
}

static void on_recv(struct sp_op *op, int res, uint32_t flags)
{
	struct files_session *f = sp_container_of(op, struct files_session, recv_op);
	(void)flags;
	if (f->closing)
		return;
	if (f->shedding) {
		f->shedding = false;
		if (res == -ECANCELED && !sp_engine_stopping(sp_shard_engine(sp_shard_current()))) {
			shed_buffer(f);
			return;
		}
		/* it completed before the cancel: as any receive */
	}
	if (res == -ECANCELED) {
		end_session(f, "stopped");
		return;
	}
	if (f->phase == PH_LINGER) {
		f->in_len += res > 0 ? (size_t)res : 0;
		if (res <= 0 || f->in_len > LINGER_BYTES)
			end_session(f, f->close_after ? "http error" : NULL);
		else
			read_more(f);
		return;
	}
	if (res < 0) {
		end_session(f, res == -ECONNRESET ? "reset" : "recv error");
		return;
	}
	if (f->responding) { /* read ahead while answering: the answer goes out first */
		f->in_len += (size_t)res;
		f->s.bytes_in += (size_t)res;
		f->peer_closed = res == 0;
		return;
	}
	if (res == 0) { /* the client closed: cleanly between requests */
		end_session(f, f->in_len ? "closed mid-request" : NULL);
		return;
	}
	if (f->phase == PH_IDLE)
		begin_head(f);
	f->in_len += (size_t)res;
	f->s.bytes_in += (size_t)res;
	try_parse(f);
}

static void read_more(struct files_session *f)
{
	if (sp_op_busy(&f->recv_op))
		return; /* armed with the last answer already */
	struct io_uring_sqe *sqe = sp_sqe();
	if (f->phase == PH_LINGER) /* drop it: reuse the whole buffer */
		io_uring_prep_recv(sqe, f->s.fd, f->in, f->in_cap, 0);
	else
		io_uring_prep_recv(sqe, f->s.fd, f->in + f->in_start + f->in_len,
				   f->in_cap - f->in_start - f->in_len, 0);
	sp_op_submit(&f->recv_op, sqe);
}

/*
 * Called with the SQE of a request's last send still unsubmitted: when the connection
 * stays open and nothing of the next request is here yet, link a receive behind the
 * send, so the kernel starts waiting for the next request as soon as this answer is out,
 * without a trip through this loop in between. Returns true when it linked one.
 */
bool files_link_recv(struct files_session *f, struct io_uring_sqe *send_sqe)
{
	if (!f->keep_alive || f->close_after || f->peer_closed || f->in_len != f->head_len ||
	    sp_op_busy(&f->recv_op) || f->in_start + f->in_len >= f->in_cap)
		return false;
	send_sqe->flags |= IOSQE_IO_LINK;
	return true;
}

void files_submit_linked_recv(struct files_session *f)
{
	struct io_uring_sqe *sqe = sp_sqe();
	io_uring_prep_recv(sqe, f->s.fd, f->in + f->in_start + f->in_len,
			   f->in_cap - f->in_start - f->in_len, 0);
	sp_op_submit(&f->recv_op, sqe);
}

/* ------------------------------------------------------------------------------------ */
/* Watchdog                                                                              */

static void on_tick(struct sp_op *op, int res, uint32_t flags)
{
	struct files_session *f = sp_container_of(op, struct files_session, watchdog.op);
	(void)flags;
	if (f->closing)
		return;
	if (res == -ECANCELED) {
		end_session(f, "stopped");
		return;
	}
	if (f->phase == PH_IDLE && draining(f)) {
		end_session(f, NULL);
		return;
	}
	if (sp_now_ns() < f->deadline_ns) {
		if (f->phase == PH_IDLE)
			maybe_shed(f);
		sp_timer_next_tick(&f->watchdog, f->fs->tick_ns);
		return;
	}
	switch (f->phase) {
	case PH_IDLE:
		end_session(f, NULL); /* an idle keep-alive connection: a normal end */
		break;
	case PH_HEAD:
		if (f->in_len) { /* part of a head: a slow client, logged as 408 */
			f->status = 408;
			log_request(f);
		}
		end_session(f, "header timeout");
		break;
	case PH_LINGER:
		end_session(f, f->close_after ? "http error" : NULL);
		break;
	default:
		end_session(f, "send timeout");
		break;
	}
}

/* ------------------------------------------------------------------------------------ */
/* The session                                                                           */

static void files_start(struct sp_session *s)
{
	struct files_session *f = (struct files_session *)s;
	struct files_stage *fs = s->handler->state;
	f->fs = fs;
	f->fd = -1;
	f->pipe[0] = f->pipe[1] = -1;
	sp_op_init(&f->recv_op, &s->task, on_recv);
	sp_op_init(&f->aux_op, &s->task, on_shutdown);
	sp_timer_init(&f->watchdog, &s->task, on_tick);
	files_send_init(f);
	files_open_init(f);
	/* Nagle would hold each response's last partial segment until the client ACKs
	 * the one before (a delayed ACK, on keep-alive): a third fewer 1 MiB responses a
	 * second on loopback. A head goes out with MSG_MORE, so no response is split. */
	int one = 1;
	setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)); /* unix: fails, fine */

	if (!alloc_in(f))
		return;
	sp_timer_next_tick(&f->watchdog, f->fs->tick_ns);
	begin_head(f); /* the first request's deadline counts from the connection */
	read_more(f);
}

static void files_release(struct sp_session *s)
{
	struct files_session *f = (struct files_session *)s;
	files_release_file(f);
	give_back_work(f);
	free(f->in);
	free(f->chunk);
	free(f->listing);
}

/* ------------------------------------------------------------------------------------ */
/* The stage                                                                             */

static void files_destroy(struct sp_stage *st)
{
	struct files_stage *fs = st->state;
	if (!fs)
		return;
	for (unsigned i = 0; fs->caches && i < fs->nshards; i++)
		files_cache_destroy(fs->caches[i]);
	free(fs->caches);
	for (unsigned i = 0; fs->pools && i < fs->nshards; i++)
		while (fs->pools[i].free) {
			struct files_work *w = fs->pools[i].free;
			fs->pools[i].free = w->next;
			work_unmap(w);
		}
	free(fs->pools);
	sp_mime_free(fs->mime);
	if (fs->root_fd >= 0)
		close(fs->root_fd);
	free(fs);
	st->state = NULL;
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

/* Said once per process: without cachestat, sendfile is kept only for the files whose
 * page cache mincore may report. */
static void warn_no_cachestat(void)
{
	static _Atomic bool said;
	int e = files_cachestat_probe();
	if (!e || atomic_exchange(&said, true))
		return;
	sp_log(SP_LOG_WARN,
	       "files: cachestat(2) %s: the page cache is checked with mincore(2) instead, "
	       "which sees only files the daemon's user owns or may write; bodies of %u KiB "
	       "or more of other files go by splice or read and send, never sendfile",
	       e == ENOSYS ? "is not in this kernel (Linux 6.5 or later has it)"
			   : "is not permitted (a seccomp filter; under systemd add it to "
			     "SystemCallFilter=)",
	       FILES_SENDFILE_MIN / 1024);
}

static int files_init(struct sp_stage *st, unsigned nshards, char *err, size_t errlen)
{
	const struct sp_conf_files *conf = &st->conf->files;
	struct files_stage *fs = calloc(1, sizeof(*fs));
	if (!fs)
		return -ENOMEM;
	st->state = fs;
	fs->conf = conf;
	fs->nshards = nshards;
	fs->root_fd = open(conf->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fs->root_fd < 0) {
		int e = errno;
		snprintf(err, errlen, "root '%s': %s", conf->root, strerror(e));
		files_destroy(st);
		return -e;
	}
	size_t loaded;
	fs->caches = calloc(nshards, sizeof(*fs->caches));
	fs->pools = calloc(nshards, sizeof(*fs->pools));
	if (!fs->caches || !fs->pools || sp_mime_create("/etc/mime.types", &fs->mime, &loaded) < 0) {
		files_destroy(st);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < nshards; i++)
		if (!(fs->caches[i] = files_cache_create(conf->file_cache))) {
			files_destroy(st);
			return -ENOMEM;
		}
	fs->limits.max_target = min_u64(conf->max_header_size, 2 * FILES_PATH_MAX);
	fs->limits.max_headers = conf->max_headers;
	if (conf->cache_control)
		snprintf(fs->cache_control, sizeof(fs->cache_control), "Cache-Control: %.200s\r\n",
			 conf->cache_control);
	/* a few ticks per shortest timeout: deadlines are met within a quarter of them */
	uint64_t shortest = min_u64(min_u64(conf->header_timeout_ms, conf->keepalive_timeout_ms),
				    min_u64(conf->send_timeout_ms, FILES_LINGER_NS / MS));
	fs->tick_ns = min_u64(1000, shortest / 4 ? shortest / 4 : 1) * MS;
	if (fs->tick_ns < 50 * MS)
		fs->tick_ns = 50 * MS;
	if (conf->splice == SP_SPLICE_AUTO)
		warn_no_cachestat();
	return 0;
}

const struct sp_stage_ops sp_files_ops = {
	.kind = SP_STAGE_FILES,
	.init = files_init,
	.destroy = files_destroy,
	.session_size = sizeof(struct files_session),
	.start = files_start,
	.release = files_release,
};
