/* SPDX-License-Identifier: MIT */
/*
 * safety.c - the checks a start makes before it binds anything, which `spargiod -t` and
 * a reload make as well, so that all three agree: a files root that is a system
 * directory, a files root served by a daemon that stays root, socket paths taken by a
 * file that is not a socket or by a socket of another user (a squatter in a shared
 * directory), and unix paths that name one file through a symlink.
 */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "config/report.h"

/* Serving one of these hands out the system's secrets or its kernel's state. */
static const char *const system_dirs[] = { "/", "/boot", "/dev", "/etc", "/proc", "/root",
					   "/sys", NULL };

struct check {
	const struct sp_config *cfg;
	struct sp_conf_report rep;
	void (*warn)(void *arg, const char *line);
	void *arg;
	uid_t user_uid; /* of process.user; (uid_t)-1 when unset or unknown */
};

static void warn(struct check *k, struct sp_conf_pos pos, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void warn(struct check *k, struct sp_conf_pos pos, const char *fmt, ...)
{
	char text[768], line[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	snprintf(line, sizeof(line), "%s:%u:%u: warning: %s", k->cfg->path, pos.line, pos.col,
		 text);
	if (k->warn)
		k->warn(k->arg, line);
}

/* The files are served as root: root now, and no process.user to drop to (or root). */
static bool serves_as_root(const struct check *k)
{
	return geteuid() == 0 && (!k->cfg->process.user || k->user_uid == 0);
}

static void files_root(struct check *k, const struct sp_conf_stage *st)
{
	char real[PATH_MAX];
	if (!st->files.root || !realpath(st->files.root, real))
		return; /* missing: sp_config_check_resources says so, and the open fails */
	for (size_t i = 0; system_dirs[i]; i++) {
		if (strcmp(real, system_dirs[i]) || st->files.allow_system_root)
			continue;
		sp_report(&k->rep, st->pos, "files root '%s' is %s, a system directory: it would "
			  "serve every file there the daemon can read; serve a directory made for "
			  "it, or set 'allow_system_root: true' if this is really meant",
			  st->files.root, real);
		return;
	}
	if (serves_as_root(k))
		warn(k, st->pos, "files root '%s' is served by a daemon running as root: any file "
		     "under it that root can read will be sent; set process.user to drop "
		     "privileges (spargiod.yaml(5), \"process\")", st->files.root);
}

int sp_socket_dir_check(const char *path, uid_t also, char *err, size_t errlen)
{
	char *copy = strdup(path);
	const char *dir = copy ? dirname(copy) : NULL;
	struct stat st;
	int ret = 0;
	if (!dir) {
		snprintf(err, errlen, "out of memory");
		ret = -ENOMEM;
	} else if (stat(dir, &st) < 0) {
		ret = errno == ENOENT ? 0 : -errno; /* missing: made private at start */
		if (ret)
			snprintf(err, errlen, "its directory %s: %s", dir, strerror(errno));
	} else if (st.st_uid != 0 && st.st_uid != geteuid() && st.st_uid != also) {
		struct passwd *pw = getpwuid(st.st_uid);
		snprintf(err, errlen, "its directory %s belongs to uid %u (%s), who could replace "
			 "the socket: use a directory of root or of this daemon's user", dir,
			 (unsigned)st.st_uid, pw ? pw->pw_name : "no such user");
		ret = -EPERM;
	} else if ((st.st_mode & 0022) && !(st.st_mode & S_ISVTX)) {
		snprintf(err, errlen, "its directory %s is writable by other users (mode %04o), "
			 "who could replace the socket: use a private directory", dir,
			 (unsigned)(st.st_mode & 07777));
		ret = -EPERM;
	} else if (st.st_mode & 0022) {
		snprintf(err, errlen, "its directory %s is shared (mode %04o): another user could "
			 "take the name before a start; a private directory is safer", dir,
			 (unsigned)(st.st_mode & 07777));
		ret = 1;
	}
	free(copy);
	return ret;
}

/* A socket file at path must be a socket of root, of us or of process.user: a socket of
 * anyone else may be a trap set in a shared directory before the daemon started. */
static void socket_path(struct check *k, struct sp_conf_pos pos, const char *what,
			const char *path)
{
	struct stat st;
	if (path[0] != '/' || lstat(path, &st) < 0)
		return;
	if (!S_ISSOCK(st.st_mode)) {
		sp_report(&k->rep, pos, "%s '%s' exists and is not a socket: spargiod does not "
			  "replace it", what, path);
		return;
	}
	if (st.st_uid == 0 || st.st_uid == geteuid() || st.st_uid == k->user_uid)
		return;
	struct passwd *pw = getpwuid(st.st_uid);
	sp_report(&k->rep, pos, "%s '%s' is a socket of uid %u (%s), not of root or of this "
		  "daemon's user: it is not replaced nor trusted; remove it, or use a "
		  "directory only the daemon can write", what, path, (unsigned)st.st_uid,
		  pw ? pw->pw_name : "no such user");
}

/* "/real/dir/name" of a unix socket path, its directory resolved (the socket itself
 * may not exist yet). NULL when the directory does not resolve. */
static char *real_socket_path(const char *path)
{
	char *dir = strdup(path), real[PATH_MAX], *out = NULL;
	char *slash = dir ? strrchr(dir, '/') : NULL;
	if (!slash) {
		free(dir);
		return NULL;
	}
	*slash = 0;
	if (realpath(dir[0] ? dir : "/", real) &&
	    asprintf(&out, "%s/%s", strcmp(real, "/") ? real : "", slash + 1) < 0)
		out = NULL;
	free(dir);
	return out;
}

static const char *unix_path(const struct sp_conf_listener *l)
{
	const struct sockaddr_un *un = (const struct sockaddr_un *)&l->bind.sa;
	return l->bind.kind == SP_ADDR_UNIX && un->sun_path[0] == '/' ? un->sun_path : NULL;
}

/* Two unix sockets (the control socket as index n) that meet through a symlink. */
static void same_files(struct check *k)
{
	const struct sp_config *c = k->cfg;
	char **real = calloc(c->n_listeners + 1, sizeof(*real));
	if (!real)
		return;
	for (size_t i = 0; i <= c->n_listeners; i++) {
		const char *p = i < c->n_listeners ? unix_path(&c->listeners[i]) : c->control.socket;
		real[i] = p ? real_socket_path(p) : NULL;
	}
	for (size_t j = 1; j <= c->n_listeners; j++) {
		for (size_t i = 0; i < j && real[j]; i++) {
			if (!real[i] || strcmp(real[i], real[j]))
				continue;
			bool ctl = j == c->n_listeners;
			const struct sp_conf_listener *a = &c->listeners[i];
			sp_report(&k->rep, ctl ? c->control.pos : c->listeners[j].pos,
				  "%s%s%s and listener '%s' (at %u:%u) bind one file, %s",
				  ctl ? "control.socket" : "listener '",
				  ctl ? "" : c->listeners[j].name, ctl ? "" : "'", a->name,
				  a->pos.line, a->pos.col, real[j]);
			break;
		}
	}
	for (size_t i = 0; i <= c->n_listeners; i++)
		free(real[i]);
	free(real);
}

int sp_config_check_start(const struct sp_config *cfg, struct sp_conf_errors *errs,
			  void (*warn_fn)(void *arg, const char *line), void *arg)
{
	struct check k = { .cfg = cfg, .warn = warn_fn, .arg = arg, .user_uid = (uid_t)-1 };
	sp_report_init(&k.rep, cfg->path);
	struct passwd *pw = cfg->process.user ? getpwnam(cfg->process.user) : NULL;
	if (pw)
		k.user_uid = pw->pw_uid;
	for (size_t i = 0; i < cfg->n_routes; i++)
		for (size_t j = 0; j < cfg->routes[i].n_stages; j++)
			if (cfg->routes[i].stages[j].kind == SP_STAGE_FILES)
				files_root(&k, &cfg->routes[i].stages[j]);
	if (cfg->control.socket) {
		char why[512];
		int r = sp_socket_dir_check(cfg->control.socket, k.user_uid, why, sizeof(why));
		if (r < 0)
			sp_report(&k.rep, cfg->control.pos, "control.socket %s: %s",
				  cfg->control.socket, why);
		else if (r > 0)
			warn(&k, cfg->control.pos, "control.socket %s: %s", cfg->control.socket, why);
		socket_path(&k, cfg->control.pos, "control.socket", cfg->control.socket);
	}
	for (size_t i = 0; i < cfg->n_listeners; i++) {
		const struct sp_conf_listener *l = &cfg->listeners[i];
		char what[96];
		snprintf(what, sizeof(what), "listener '%s': unix socket", l->name);
		if (unix_path(l))
			socket_path(&k, l->pos, what, unix_path(l));
	}
	same_files(&k);
	int ret = sp_report_count(&k.rep) ? -EINVAL : 0;
	sp_report_finish(&k.rep, errs);
	return ret;
}
