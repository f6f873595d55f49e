/* SPDX-License-Identifier: MIT */
/*
 * files_send.c - answers: response heads, conditional requests and ranges, error pages,
 * and the body's way out. One send is in flight per connection at a time (a short send
 * is resumed before anything else), so bytes never reorder.
 *
 * Bodies, by size:
 *   cached content (files up to FILES_CONTENT_MAX): one sendmsg of [head, content]
 *   up to FILES_CONTENT_MAX: one read after the head in the session's buffer, one send
 *   larger: files_body.c (read+send or splice, overlapped)
 * A file that shrinks under us ends the connection: its Content-Length was promised.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "handlers/files.h"

#define MS 1000000ull

/* ------------------------------------------------------------------------------------ */
/* Heads                                                                                 */

struct w {
	char *p;
};

static void put(struct w *w, const char *s)
{
	size_t n = strlen(s);
	memcpy(w->p, s, n);
	w->p += n;
}

static void put_u64(struct w *w, uint64_t v)
{
	char tmp[20];
	int n = 0;
	do
		tmp[n++] = (char)('0' + v % 10);
	while ((v /= 10));
	while (n)
		*w->p++ = tmp[--n];
}

/* Date: formatted once a second per thread. */
static const char *http_now(void)
{
	static __thread time_t sec = -1;
	static __thread char buf[SP_HTTP_DATE_LEN + 1];
	time_t t = time(NULL);
	if (t != sec) {
		sec = t;
		sp_http_date_format(t, buf);
	}
	return buf;
}

size_t files_status_line(char *p, int status)
{
	struct w w = { p };
	put(&w, "HTTP/1.1 ");
	put_u64(&w, (uint64_t)status);
	*w.p++ = ' ';
	put(&w, sp_http_reason(status));
	put(&w, "\r\nServer: spargiod\r\nDate: ");
	put(&w, http_now());
	put(&w, "\r\n");
	return (size_t)(w.p - p);
}

static void put_connection(struct files_session *f, struct w *w)
{
	if (!f->keep_alive)
		put(w, "Connection: close\r\n");
	else if (f->req.minor == 0)
		put(w, "Connection: keep-alive\r\n");
	put(w, "\r\n");
}

void files_meta_from_statx(struct files_meta *m, const struct statx *s, const char *mime)
{
	m->size = s->stx_size;
	m->ino = s->stx_ino;
	m->dev = makedev(s->stx_dev_major, s->stx_dev_minor);
	m->mtime = s->stx_mtime.tv_sec;
	m->mtime_nsec = s->stx_mtime.tv_nsec;
	m->ctime = s->stx_ctime.tv_sec;
	m->ctime_nsec = s->stx_ctime.tv_nsec;
	m->mime = mime;
	uint64_t mt = (uint64_t)m->mtime * 1000000000ull + m->mtime_nsec;
	snprintf(m->etag, sizeof(m->etag), "\"%" PRIx64 "-%" PRIx64 "-%" PRIx64 "\"", m->ino,
		 m->size, mt);
	sp_http_date_format((time_t)m->mtime, m->last_modified);
}

/* ------------------------------------------------------------------------------------ */
/* Sending                                                                               */

static void on_sent(struct sp_op *op, int res, uint32_t flags);

static void submit_msg(struct files_session *f)
{
	files_set_deadline(f, PH_SEND, f->fs->conf->send_timeout_ms * MS);
	f->send_op.fn = on_sent;
	/* room for a receive linked behind too: no submit may cut the pair */
	struct io_uring_sqe *sqe = sp_sqes(2);
	if (f->msg.msg_iovlen == 1)
		io_uring_prep_send(sqe, f->s.fd, f->iov_cur[0].iov_base, f->iov_cur[0].iov_len,
				   MSG_NOSIGNAL);
	else
		io_uring_prep_sendmsg(sqe, f->s.fd, &f->msg, MSG_NOSIGNAL);
	bool linked = files_link_recv(f, sqe);
	sp_op_submit(&f->send_op, sqe);
	if (linked)
		files_submit_linked_recv(f);
}

/* Send a[0..an) then b[0..bn) (bn may be 0); then the request is done. */
static void send2(struct files_session *f, const void *a, size_t an, const void *b, size_t bn)
{
	f->iov[0] = (struct iovec){ (void *)a, an };
	f->iov[1] = (struct iovec){ (void *)b, bn };
	memset(&f->msg, 0, sizeof(f->msg));
	f->iov_cur = f->iov;
	f->msg.msg_iov = f->iov;
	f->msg.msg_iovlen = bn ? 2 : 1;
	submit_msg(f);
}

static void on_sent(struct sp_op *op, int res, uint32_t flags)
{
	struct files_session *f = sp_container_of(op, struct files_session, send_op);
	(void)flags;
	if (f->closing)
		return;
	if (res <= 0) {
		files_fail(f, res == -ECANCELED			  ? "stopped"
			      : res == -EPIPE || res == -ECONNRESET ? "reset"
								  : "send error");
		return;
	}
	f->bytes_sent += (unsigned)res;
	f->s.bytes_out += (unsigned)res;
	size_t n = (size_t)res;
	while (n && f->msg.msg_iovlen) { /* a short send: move past what went */
		struct iovec *v = f->iov_cur;
		if (n >= v->iov_len) {
			n -= v->iov_len;
			f->iov_cur++;
			f->msg.msg_iov = f->iov_cur;
			f->msg.msg_iovlen--;
		} else {
			v->iov_base = (char *)v->iov_base + n;
			v->iov_len -= n;
			n = 0;
		}
	}
	while (f->msg.msg_iovlen && f->iov_cur->iov_len == 0) {
		f->iov_cur++;
		f->msg.msg_iov = f->iov_cur;
		f->msg.msg_iovlen--;
	}
	if (f->msg.msg_iovlen) {
		submit_msg(f);
		return;
	}
	files_finish(f);
}

static void on_read_small(struct sp_op *op, int res, uint32_t flags)
{
	struct files_session *f = sp_container_of(op, struct files_session, file_op);
	(void)flags;
	if (f->closing)
		return;
	if (res < 0 || (uint64_t)res != f->body_left) {
		files_fail(f, res == -ECANCELED ? "stopped" : res < 0 ? "read error" : "file changed");
		return;
	}
	char *body = f->w->out + f->head_len_out;
	/* keep a copy of a whole small file in the cache of the shard that holds it */
	if (f->entry && f->body_off == 0 && f->body_left == f->meta.size &&
	    f->entry_cache == files_my_cache(f))
		files_cache_set_content(f->entry_cache, f->entry, body, (size_t)f->body_left);
	send2(f, f->w->out, f->head_len_out + (size_t)f->body_left, NULL, 0);
}

/* The head is in f->w->head[0..head_len_out); the body is body_left bytes at body_off. */
static void start_body(struct files_session *f)
{
	size_t hl = f->head_len_out;
	if (!f->body_left) {
		send2(f, f->w->head, hl, NULL, 0);
		return;
	}
	if (f->body_left >= FILES_SENDFILE_MIN && f->fs->conf->splice == SP_SPLICE_AUTO &&
	    files_sendfile(f))
		return;
	const char *content = f->entry ? files_entry_content(f->entry) : NULL;
	if (content) {
		send2(f, f->w->head, hl, content + f->body_off, (size_t)f->body_left);
		return;
	}
	if (f->body_left <= FILES_CONTENT_MAX) {
		memcpy(f->w->out, f->w->head, hl);
		f->file_op.fn = on_read_small;
		struct io_uring_sqe *sqe = sp_sqe();
		io_uring_prep_read(sqe, f->entry ? files_entry_fd(f->entry) : f->fd, f->w->out + hl,
				   (unsigned)f->body_left,
				   f->body_off);
		sp_op_submit(&f->file_op, sqe);
		return;
	}
	files_body_start(f);
}

/* ------------------------------------------------------------------------------------ */
/* Answers                                                                               */

static void not_modified(struct files_session *f)
{
	struct w w = { f->w->head };
	f->status = 304;
	w.p += files_status_line(w.p, 304);
	put(&w, "Last-Modified: ");
	put(&w, f->meta.last_modified);
	put(&w, "\r\nETag: ");
	put(&w, f->meta.etag);
	put(&w, "\r\n");
	put(&w, f->fs->cache_control);
	put_connection(f, &w);
	f->head_len_out = (size_t)(w.p - f->w->head);
	f->body_left = 0;
	start_body(f);
}

void files_respond_file(struct files_session *f)
{
	const struct files_meta *m = &f->meta;
	const struct sp_http_request *r = &f->req;

	/* RFC 9110 13.2.2: If-None-Match decides when present, else If-Modified-Since */
	if (r->if_none_match.len) {
		if (!r->if_none_match_many && sp_http_etag_match_weak(r->if_none_match, m->etag)) {
			not_modified(f);
			return;
		}
	} else if (r->if_modified_since.len) {
		time_t t = sp_http_date_parse(r->if_modified_since);
		if (t != (time_t)-1 && m->mtime <= t) {
			not_modified(f);
			return;
		}
	}
	uint64_t first = 0, last = m->size ? m->size - 1 : 0;
	int status = 200;
	/* If-Range present (p set), even empty: only a validator that holds lets the range in */
	if (r->range.len &&
	    (!r->if_range.p || sp_http_if_range_holds(r->if_range, m->etag, (time_t)m->mtime))) {
		enum sp_http_range_kind k = sp_http_range(r->range, m->size, &first, &last);
		if (k == SP_RANGE_UNSATISFIABLE) {
			f->range_size = m->size;
			files_respond_error(f, 416, false);
			return;
		}
		if (k == SP_RANGE_OK)
			status = 206;
	}
	uint64_t len = status == 206 ? last - first + 1 : m->size;

	struct w w = { f->w->head };
	f->status = status;
	w.p += files_status_line(w.p, status);
	put(&w, "Content-Type: ");
	put(&w, m->mime);
	put(&w, "\r\nContent-Length: ");
	put_u64(&w, len);
	put(&w, "\r\nLast-Modified: ");
	put(&w, m->last_modified);
	put(&w, "\r\nETag: ");
	put(&w, m->etag);
	put(&w, "\r\nAccept-Ranges: bytes\r\n");
	if (status == 206) {
		put(&w, "Content-Range: bytes ");
		put_u64(&w, first);
		*w.p++ = '-';
		put_u64(&w, last);
		*w.p++ = '/';
		put_u64(&w, m->size);
		put(&w, "\r\n");
	}
	put(&w, f->fs->cache_control);
	put_connection(f, &w);
	f->head_len_out = (size_t)(w.p - f->w->head);
	f->body_off = first;
	f->body_left = r->method == SP_HTTP_HEAD ? 0 : len;
	start_body(f);
}

/* A short text answer. Statuses from the parser close the connection (close_after). */
static void respond_text(struct files_session *f, int status, const char *extra, bool close_after)
{
	char body[80];
	int bl = snprintf(body, sizeof(body), "%d %s\n", status, sp_http_reason(status));
	if (close_after) {
		f->close_after = true;
		f->keep_alive = false;
	}
	struct w w = { f->w->head };
	f->status = status;
	w.p += files_status_line(w.p, status);
	put(&w, "Content-Type: text/plain; charset=utf-8\r\nContent-Length: ");
	put_u64(&w, (uint64_t)bl);
	put(&w, "\r\n");
	put(&w, extra);
	put_connection(f, &w);
	f->head_len_out = (size_t)(w.p - f->w->head);
	bool head_only = f->head_len > 0 && f->req.method == SP_HTTP_HEAD;
	memcpy(f->w->out, f->w->head, f->head_len_out);
	memcpy(f->w->out + f->head_len_out, body, (size_t)bl);
	send2(f, f->w->out, f->head_len_out + (head_only ? 0 : (size_t)bl), NULL, 0);
}

void files_respond_error(struct files_session *f, int status, bool close_after)
{
	char extra[96] = "";
	if (status == 405)
		snprintf(extra, sizeof(extra), "Allow: GET, HEAD\r\n");
	else if (status == 416)
		snprintf(extra, sizeof(extra), "Content-Range: bytes */%" PRIu64 "\r\n",
			 f->range_size);
	respond_text(f, status, extra, close_after || status >= 500);
}

size_t files_url_encode(char *dst, size_t cap, const char *src, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)src[i];
		bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			     (c >= '0' && c <= '9') || strchr("-._~/", c);
		if (plain && c) {
			if (o + 1 < cap)
				dst[o] = (char)c;
			o++;
		} else {
			if (o + 3 < cap) {
				dst[o] = '%';
				dst[o + 1] = hex[c >> 4];
				dst[o + 2] = hex[c & 15];
			}
			o += 3;
		}
	}
	if (cap)
		dst[o < cap ? o : cap - 1] = '\0';
	return o;
}

void files_respond_redirect(struct files_session *f)
{
	/* "/dir" -> "/dir/", the query kept. The path is re-encoded from what we resolved,
	 * and the query was checked by the parser (no CR, LF or controls): nothing unchecked
	 * reaches the header. */
	char loc[512];
	size_t n = files_url_encode(loc, sizeof(loc), f->w->path, f->dir_len);
	const char *t = f->req.target.p, *end = t + f->req.target.len;
	const char *q = memchr(t, '?', f->req.target.len);
	const char *hash = memchr(t, '#', f->req.target.len);
	if (hash)
		end = hash;
	size_t qlen = q && q < end ? (size_t)(end - q) : 0;
	if (n >= sizeof(loc) || qlen > 256) {
		files_respond_error(f, 414, false);
		return;
	}
	char extra[sizeof(loc) + 300];
	snprintf(extra, sizeof(extra), "Location: /%s/%.*s\r\n", loc, (int)qlen, qlen ? q : "");
	respond_text(f, 301, extra, false);
}

void files_respond_listing(struct files_session *f)
{
	struct w w = { f->w->head };
	f->status = 200;
	w.p += files_status_line(w.p, 200);
	put(&w, "Content-Type: text/html; charset=utf-8\r\nContent-Length: ");
	put_u64(&w, f->listing_len);
	put(&w, "\r\n");
	put_connection(f, &w);
	f->head_len_out = (size_t)(w.p - f->w->head);
	bool head_only = f->req.method == SP_HTTP_HEAD;
	send2(f, f->w->head, f->head_len_out, f->listing, head_only ? 0 : f->listing_len);
}

void files_close_pipe(struct files_session *f)
{
	if (f->pipe[0] >= 0) {
		close(f->pipe[0]);
		close(f->pipe[1]);
	}
	f->pipe[0] = f->pipe[1] = -1;
}

void files_release_file(struct files_session *f)
{
	files_close_pipe(f);
	if (f->entry)
		files_entry_put(f->entry);
	f->entry = NULL;
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
	free(f->listing);
	f->listing = NULL;
}

void files_send_init(struct files_session *f)
{
	sp_op_init(&f->send_op, &f->s.task, on_sent);
}
