/* SPDX-License-Identifier: MIT */
/*
 * files_index.c - `autoindex`: the HTML listing of a directory that has no index file.
 * Reading a directory has no io_uring op, so the listing is built on a helper thread
 * (sp_job): openat2 with the same RESOLVE_BENEATH rules, readdir, sort, HTML. Names are
 * HTML-escaped in text and percent-encoded in links; dotfiles are left out unless
 * `dotfiles: allow`, and so are symbolic links that a request could not follow (out of
 * the root, dangling, loops). Bounded: at most MAX_ENTRIES names and MAX_PAGE bytes.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "handlers/files.h"

#define MAX_ENTRIES 10000
#define MAX_PAGE (4u << 20)

struct page {
	char *p;
	size_t len, cap;
	bool oom;
};

static void add(struct page *pg, const char *s, size_t n)
{
	if (pg->oom)
		return;
	if (pg->len + n + 1 > pg->cap) {
		size_t cap = pg->cap ? pg->cap * 2 : 4096;
		while (cap < pg->len + n + 1)
			cap *= 2;
		char *p = realloc(pg->p, cap);
		if (!p) {
			pg->oom = true;
			return;
		}
		pg->p = p;
		pg->cap = cap;
	}
	memcpy(pg->p + pg->len, s, n);
	pg->len += n;
	pg->p[pg->len] = '\0';
}

static void adds(struct page *pg, const char *s)
{
	add(pg, s, strlen(s));
}

static void add_html(struct page *pg, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '&': adds(pg, "&amp;"); break;
		case '<': adds(pg, "&lt;"); break;
		case '>': adds(pg, "&gt;"); break;
		case '"': adds(pg, "&quot;"); break;
		case '\'': adds(pg, "&#39;"); break;
		default: add(pg, s, 1);
		}
	}
}

struct item {
	char *name;
	bool dir;
	long long size;
	time_t mtime;
};

static int by_name(const void *a, const void *b)
{
	const struct item *x = a, *y = b;
	if (x->dir != y->dir)
		return x->dir ? -1 : 1; /* directories first */
	return strcmp(x->name, y->name);
}

static void add_item(struct page *pg, const struct item *it)
{
	char href[3 * 256 + 2], line[96];
	files_url_encode(href, sizeof(href), it->name, strlen(it->name));
	adds(pg, "<a href=\"./");
	adds(pg, href);
	adds(pg, it->dir ? "/\">" : "\">");
	add_html(pg, it->name);
	adds(pg, it->dir ? "/</a>" : "</a>");
	char date[SP_HTTP_DATE_LEN + 1];
	sp_http_date_format(it->mtime, date);
	if (it->dir)
		snprintf(line, sizeof(line), "  %s  -\n", date);
	else
		snprintf(line, sizeof(line), "  %s  %lld\n", date, it->size);
	adds(pg, line);
}

/* A symbolic link in the listed directory: listed only when it resolves, under the rules
 * a request for it would meet (beneath the root, no magic links), to something there;
 * *st becomes what it leads to (a link to a directory is listed as one). */
static bool link_inside(struct files_session *f, const char *name, struct stat *st)
{
	struct open_how how = { .flags = O_PATH | O_CLOEXEC,
				.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS };
	char path[FILES_PATH_MAX + 258];
	if ((size_t)snprintf(path, sizeof(path), "%s/%s", f->w->path, name) >= sizeof(path))
		return false;
	int fd, tries = 0;
	do
		fd = (int)syscall(SYS_openat2, f->fs->root_fd, path, &how, sizeof(how));
	while (fd < 0 && errno == EAGAIN && ++tries < 8);
	if (fd < 0)
		return false;
	bool ok = fstat(fd, st) == 0;
	close(fd);
	return ok;
}

static int read_dir(struct files_session *f, struct item **out, size_t *count, bool *cut)
{
	struct open_how how = { .flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NONBLOCK,
				.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS };
	int fd;
	do /* the helper thread may wait: it is not a shard */
		fd = (int)syscall(SYS_openat2, f->fs->root_fd, f->w->path, &how, sizeof(how));
	while (fd < 0 && errno == EAGAIN);
	if (fd < 0)
		return -errno;
	DIR *d = fdopendir(fd);
	if (!d) {
		int e = errno;
		close(fd);
		return -e;
	}
	bool dots = f->fs->conf->dotfiles == SP_DOTFILES_ALLOW;
	struct item *v = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	int ret = 0;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.' && (!dots || !strcmp(de->d_name, ".") ||
					     !strcmp(de->d_name, "..")))
			continue;
		if (n == MAX_ENTRIES) {
			*cut = true;
			break;
		}
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			struct item *nv = realloc(v, cap * sizeof(*v));
			if (!nv) {
				ret = -ENOMEM;
				break;
			}
			v = nv;
		}
		struct stat st;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (S_ISLNK(st.st_mode) && !link_inside(f, de->d_name, &st))
			continue; /* it leads out of the root, nowhere, or in a loop: a 404 */
		if (!(v[n].name = strdup(de->d_name))) {
			ret = -ENOMEM;
			break;
		}
		v[n].dir = S_ISDIR(st.st_mode);
		v[n].size = (long long)st.st_size;
		v[n].mtime = st.st_mtime;
		n++;
	}
	closedir(d);
	*out = v;
	*count = n;
	return ret;
}

/* Helper thread: f->w->path is the directory; fills f->listing. */
static int build_listing(struct sp_job *job)
{
	struct files_session *f = sp_container_of(job, struct files_session, job);
	struct item *v = NULL;
	size_t n = 0;
	bool cut = false;
	int ret = read_dir(f, &v, &n, &cut);
	struct page pg = { 0 };
	if (!ret) {
		if (n)
			qsort(v, n, sizeof(*v), by_name);
		char title[FILES_PATH_MAX + 2];
		snprintf(title, sizeof(title), "/%s/", strcmp(f->w->path, ".") ? f->w->path : "");
		if (!strcmp(title, "//"))
			title[1] = '\0';
		adds(&pg, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Index of ");
		add_html(&pg, title);
		adds(&pg, "</title></head>\n<body><h1>Index of ");
		add_html(&pg, title);
		adds(&pg, "</h1><hr><pre>\n");
		if (strcmp(title, "/"))
			adds(&pg, "<a href=\"../\">../</a>\n");
		for (size_t i = 0; i < n && pg.len < MAX_PAGE; i++)
			add_item(&pg, &v[i]);
		if (cut || pg.len >= MAX_PAGE)
			adds(&pg, "(more entries not shown)\n");
		adds(&pg, "</pre><hr></body></html>\n");
		ret = pg.oom ? -ENOMEM : 0;
	}
	for (size_t i = 0; i < n; i++)
		free(v[i].name);
	free(v);
	if (ret) {
		free(pg.p);
		return ret;
	}
	f->listing = pg.p;
	f->listing_len = pg.len;
	return 0;
}

static void on_listing(struct sp_op *op, int res, uint32_t flags)
{
	struct files_session *f = sp_container_of(op, struct files_session, job.op);
	(void)flags;
	if (f->closing)
		return; /* the listing is freed with the session */
	if (res < 0) {
		files_respond_error(f, res == -ENOMEM ? 503 : res == -EACCES ? 403 : 404, false);
		return;
	}
	files_respond_listing(f);
}

void files_autoindex_or_forbid(struct files_session *f)
{
	if (!f->fs->conf->autoindex) {
		files_respond_error(f, 403, false);
		return;
	}
	sp_op_init(&f->job.op, &f->s.task, on_listing);
	f->job.work = build_listing;
	sp_job_submit(&f->job);
}
