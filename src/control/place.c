/* SPDX-License-Identifier: MIT */
/*
 * place.c - where the control socket may be bound. Whoever can write the socket's
 * directory can put a socket of their own at its path before the daemon starts (root's
 * spargioctl would then talk to it) or swap it later, so the directory must belong to
 * root or to us and be writable by nobody else (a sticky one, like /tmp, is accepted
 * with a warning: others cannot remove our socket there, only take the name first). A
 * file already at the path is replaced only when it is a dead socket of root or of us.
 */
#include <errno.h>
#include <libgen.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "config/config.h"
#include "control/control.h"
#include "engine/log.h"

static const char *user_name(uid_t uid)
{
	struct passwd *pw = getpwuid(uid);
	return pw ? pw->pw_name : "no such user";
}

static bool trusted(uid_t uid, uid_t also)
{
	return uid == 0 || uid == geteuid() || uid == also;
}

/* The directory: created private when missing (search rights for whom the socket's mode
 * lets in: 0660 makes 0750), else checked (sp_socket_dir_check). */
static int place_dir(const char *path, mode_t mode, uid_t also, char *err, size_t errlen)
{
	char *copy = strdup(path), why[512];
	if (!copy) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	const char *dir = dirname(copy);
	mode_t dmode = 0700 | (mode & 0060 ? 0050 : 0) | (mode & 0006 ? 0005 : 0);
	int ret = 0;
	if (mkdir(dir, dmode) == 0) {
		if (chmod(dir, dmode) < 0) /* the umask does not narrow it further */
			sp_log(SP_LOG_WARN, "control socket: chmod %s: %s", dir, strerror(errno));
	} else if (errno != EEXIST) {
		snprintf(err, errlen, "control.socket %s: cannot create its directory %s: %s", path,
			 dir, strerror(errno));
		ret = -errno;
	} else if ((ret = sp_socket_dir_check(path, also, why, sizeof(why))) < 0) {
		snprintf(err, errlen, "control.socket %s: %s", path, why);
	} else if (ret > 0) {
		sp_log(SP_LOG_WARN, "control.socket %s: %s", path, why);
		ret = 0;
	}
	free(copy);
	return ret;
}

int sp_control_place(const char *path, mode_t mode, uid_t also, char *err, size_t errlen)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct stat st;
	int ret = place_dir(path, mode, also, err, errlen);
	if (ret < 0 || lstat(path, &st) < 0)
		return ret;
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen, "control.socket %s exists and is not a socket", path);
		return -EEXIST;
	}
	if (!trusted(st.st_uid, also)) {
		snprintf(err, errlen, "control.socket %s is a socket of uid %u (%s), not of root or "
			 "of this daemon's user: it is neither trusted nor replaced; remove it, and "
			 "use a directory only root and the daemon can write", path,
			 (unsigned)st.st_uid, user_name(st.st_uid));
		return -EPERM;
	}
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (probe < 0) {
		snprintf(err, errlen, "control.socket %s: %s", path, strerror(errno));
		return -errno;
	}
	/* non-blocking: a live socket with a full backlog answers EAGAIN, not a hang */
	ret = connect(probe, (struct sockaddr *)&sun, sizeof(sun)) == 0 || errno == EAGAIN;
	close(probe);
	if (ret) {
		snprintf(err, errlen, "control.socket %s: a program of uid %u (%s) listens there, "
			 "another spargiod probably", path, (unsigned)st.st_uid,
			 user_name(st.st_uid));
		return -EADDRINUSE;
	}
	unlink(path); /* stale, from a run that did not stop cleanly */
	return 0;
}
