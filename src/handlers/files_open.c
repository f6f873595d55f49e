/* SPDX-License-Identifier: MIT */
/*
 * files_open.c - from a normalised request path to an open regular file under the root.
 *
 * Every open is IORING_OP_OPENAT2 relative to the root's fd with RESOLVE_BENEATH and
 * RESOLVE_NO_MAGICLINKS: ".." and symbolic links may move around inside the root but
 * never out of it (EXDEV), /proc magic links never resolve, and a loop is ELOOP. Those,
 * like a missing file, are a 404; EAGAIN (a rename raced the lookup) is retried. Then
 * IORING_OP_STATX on the fd: only a regular file is served; a directory gets its index,
 * a listing (autoindex) or a redirect to the name with a '/'.
 *
 * The shard's cache answers most requests without either op. A cached file older than
 * file_cache_valid is checked with a statx of its path: the same inode, size, mtime and
 * ctime keep it. That statx follows links wherever they go, which is harmless: it only
 * compares identities, and anything that differs is opened again through openat2.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "handlers/files.h"

#define OPEN_TRIES 8 /* EAGAIN from RESOLVE_BENEATH: a concurrent rename; try again */

static void submit_open(struct files_session *f, bool directory);

static int status_of(int err)
{
	switch (err) {
	case ENOENT:
	case ENOTDIR:
	case EXDEV:  /* the path leads out of the root */
	case ELOOP:  /* a loop, or a magic link */
		return 404;
	case EACCES:
	case EPERM:
		return 403;
	case ENAMETOOLONG:
		return 414;
	case EAGAIN:
	case EMFILE:
	case ENFILE:
	case ENOMEM:
		return 503;
	default:
		return 500;
	}
}

/* Serve the cache entry e (found on this shard). */
static void use_entry(struct files_session *f, struct files_entry *e)
{
	files_entry_get(e);
	f->entry = e;
	f->entry_cache = files_my_cache(f);
	f->meta = *files_entry_meta(e);
	files_respond_file(f);
}

static void close_own_fd(struct files_session *f)
{
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
}

static void on_statx(struct sp_op *op, int res, uint32_t flags)
{
	struct files_session *f = sp_container_of(op, struct files_session, file_op);
	(void)flags;
	if (f->closing)
		return;
	if (res < 0) {
		close_own_fd(f);
		if (res == -ECANCELED)
			files_fail(f, "stopped");
		else
			files_respond_error(f, status_of(-res), false);
		return;
	}
	unsigned mode = f->w->stx.stx_mode;
	if (S_ISDIR(mode)) {
		close_own_fd(f);
		if (f->open_kind == OPEN_DIR_PROBE)
			files_autoindex_or_forbid(f);
		else if (f->open_kind == OPEN_INDEX)
			files_respond_error(f, 403, false); /* an "index.html" directory */
		else
			files_respond_redirect(f); /* "/dir" -> "/dir/" */
		return;
	}
	if (!S_ISREG(mode) || f->open_kind == OPEN_DIR_PROBE) {
		close_own_fd(f); /* FIFOs would hang, devices leak: only regular files */
		files_respond_error(f, 404, false);
		return;
	}
	files_meta_from_statx(&f->meta, &f->w->stx, sp_mime_lookup(f->fs->mime, f->w->path));
	struct files_cache *c = files_my_cache(f);
	struct files_entry *e = files_cache_insert(c, f->w->path, f->fd, &f->meta, sp_pass_ns());
	if (e) { /* the cache owns the fd now; we hold a reference */
		f->fd = -1;
		files_entry_get(e);
		f->entry = e;
		f->entry_cache = c;
	}
	files_respond_file(f);
}

static void on_open(struct sp_op *op, int res, uint32_t flags)
{
	struct files_session *f = sp_container_of(op, struct files_session, file_op);
	(void)flags;
	if (f->closing) {
		if (res >= 0)
			close(res);
		return;
	}
	if (res == -ECANCELED) {
		files_fail(f, "stopped");
		return;
	}
	if (res == -EAGAIN && ++f->open_tries < OPEN_TRIES) {
		submit_open(f, f->open_kind == OPEN_DIR_PROBE);
		return;
	}
	if (res < 0) {
		if (f->open_kind == OPEN_INDEX && res == -ENOENT) {
			/* no index: is the directory itself there? (for autoindex or a 403) */
			f->w->path[f->dir_len] = '\0';
			f->open_kind = OPEN_DIR_PROBE;
			submit_open(f, true);
			return;
		}
		files_respond_error(f, status_of(-res), false);
		return;
	}
	f->fd = res;
	f->file_op.fn = on_statx;
	struct io_uring_sqe *sqe = sp_sqe();
	io_uring_prep_statx(sqe, f->fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS, &f->w->stx);
	sp_op_submit(&f->file_op, sqe);
}

static void submit_open(struct files_session *f, bool directory)
{
	memset(&f->w->how, 0, sizeof(f->w->how));
	/* O_NONBLOCK: opening a FIFO must not wait for a writer */
	f->w->how.flags = O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY | (directory ? O_DIRECTORY : 0);
	f->w->how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
	f->file_op.fn = on_open;
	struct io_uring_sqe *sqe = sp_sqe();
	io_uring_prep_openat2(sqe, f->fs->root_fd, f->w->path, &f->w->how);
	sp_op_submit(&f->file_op, sqe);
}

static bool same_file(const struct files_meta *m, const struct statx *s)
{
	return S_ISREG(s->stx_mode) && s->stx_ino == m->ino &&
	       makedev(s->stx_dev_major, s->stx_dev_minor) == m->dev && s->stx_size == m->size &&
	       s->stx_mtime.tv_sec == m->mtime && s->stx_mtime.tv_nsec == m->mtime_nsec &&
	       s->stx_ctime.tv_sec == m->ctime && s->stx_ctime.tv_nsec == m->ctime_nsec;
}

static void on_revalidate(struct sp_op *op, int res, uint32_t flags)
{
	struct files_session *f = sp_container_of(op, struct files_session, file_op);
	(void)flags;
	if (f->closing)
		return;
	if (res == -ECANCELED) {
		files_fail(f, "stopped");
		return;
	}
	struct files_entry *e = f->entry;
	if (res == 0 && same_file(files_entry_meta(e), &f->w->stx)) {
		files_entry_validated(e, sp_pass_ns());
		files_respond_file(f);
		return;
	}
	/* changed, replaced or gone: forget it (its shard drops it) and open afresh */
	files_entry_mark_stale(e);
	files_entry_put(e);
	f->entry = NULL;
	f->open_tries = 0;
	submit_open(f, false);
}

void files_open_path(struct files_session *f)
{
	struct files_cache *c = files_my_cache(f);
	f->open_tries = 0;
	f->open_kind = OPEN_FILE;
	f->dir_len = strlen(f->w->path);
	if (f->path_flags & SP_HTTP_PATH_DIR) { /* "dir/index.html" ("./index.html") */
		int n = snprintf(f->w->path + f->dir_len, sizeof(f->w->path) - f->dir_len, "/%s",
				 f->fs->conf->index);
		if (n < 0 || (size_t)n >= sizeof(f->w->path) - f->dir_len) {
			files_respond_error(f, 414, false);
			return;
		}
		f->open_kind = OPEN_INDEX;
	}
	bool stale;
	struct files_entry *e = files_cache_find(c, f->w->path, sp_pass_ns(),
						 f->fs->conf->file_cache_valid_ms * 1000000ull, &stale);
	if (e && !stale) {
		use_entry(f, e);
		return;
	}
	if (e) { /* check it again before trusting it */
		files_entry_get(e);
		f->entry = e;
		f->entry_cache = c;
		f->meta = *files_entry_meta(e);
		f->file_op.fn = on_revalidate;
		struct io_uring_sqe *sqe = sp_sqe();
		io_uring_prep_statx(sqe, f->fs->root_fd, f->w->path, 0, STATX_BASIC_STATS, &f->w->stx);
		sp_op_submit(&f->file_op, sqe);
		return;
	}
	submit_open(f, false);
}

void files_open_init(struct files_session *f)
{
	sp_op_init(&f->file_op, &f->s.task, on_open);
}
