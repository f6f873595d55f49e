/* SPDX-License-Identifier: MIT */
/*
 * privdrop.c - `process.user` / `process.group`: started as root, become them once the
 * listeners and the control socket are bound, before any shard thread exists.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "daemon/daemon.h"
#include "engine/log.h"

int sp_drop_privileges(const struct sp_config *cfg, char *err, size_t errlen)
{
	if (!cfg->process.user)
		return 0;
	struct passwd *pw = getpwnam(cfg->process.user);
	if (!pw) {
		snprintf(err, errlen, "process.user: no user '%s'", cfg->process.user);
		return -ENOENT;
	}
	gid_t gid = pw->pw_gid;
	if (cfg->process.group) {
		struct group *gr = getgrnam(cfg->process.group);
		if (!gr) {
			snprintf(err, errlen, "process.group: no group '%s'", cfg->process.group);
			return -ENOENT;
		}
		gid = gr->gr_gid;
	}
	if (geteuid() != 0) {
		if (geteuid() != pw->pw_uid)
			sp_log(SP_LOG_WARN, "process.user '%s' ignored: not started as root",
			       cfg->process.user);
		return 0;
	}
	if (initgroups(pw->pw_name, gid) < 0 || setgid(gid) < 0 || setuid(pw->pw_uid) < 0) {
		snprintf(err, errlen, "cannot become user '%s': %s", pw->pw_name, strerror(errno));
		return -errno;
	}
	if (pw->pw_uid != 0 && setuid(0) == 0) {
		snprintf(err, errlen, "privileges could be regained after dropping them");
		return -EPERM;
	}
	sp_log(SP_LOG_INFO, "running as user %s (uid %u, gid %u)", pw->pw_name,
	       (unsigned)pw->pw_uid, (unsigned)gid);
	return 0;
}
