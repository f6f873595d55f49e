/* SPDX-License-Identifier: MIT */
/*
 * exec_route.c - what an exec route knows before its first connection, built at
 * generation init on the main thread: the user and groups to run as (getpwnam and
 * getgrouplist may block on NSS, so never on a shard), the environment template and the
 * resource limits. Read-only afterwards, except the queue's atomics.
 */
#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "engine/log.h"
#include "handlers/exec.h"

/* systemd's default PATH for services */
#define EXEC_DEFAULT_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* Names set per connection: the configured env cannot override them. */
static const char *const per_connection[] = { "REMOTE_ADDR", "REMOTE_PORT", "LOCAL_ADDR",
					      "LOCAL_PORT", "SPARGIOD_ROUTE", "SPARGIOD_LISTENER",
					      NULL };

/* systemd's protocol with the daemon itself: a child must never see it. */
static bool reserved(const char *kv)
{
	return !strncmp(kv, "NOTIFY_SOCKET=", 14) || !strncmp(kv, "LISTEN_", 7) ||
	       !strncmp(kv, "WATCHDOG_", 9);
}

static size_t name_len(const char *kv)
{
	const char *eq = strchr(kv, '=');
	return eq ? (size_t)(eq - kv) : strlen(kv);
}

static bool same_name(const char *a, const char *b)
{
	size_t n = name_len(a);
	return n == name_len(b) && !strncmp(a, b, n);
}

static int env_set(struct exec_route *r, const char *kv)
{
	char *copy = strdup(kv);
	if (!copy)
		return -ENOMEM;
	for (size_t i = 0; i < r->n_env; i++) {
		if (same_name(r->env[i], kv)) {
			free(r->env[i]);
			r->env[i] = copy;
			return 0;
		}
	}
	r->env[r->n_env++] = copy;
	return 0;
}

static int env_setf(struct exec_route *r, const char *name, const char *value)
{
	char buf[4096];
	if ((size_t)snprintf(buf, sizeof(buf), "%s=%s", name, value) >= sizeof(buf))
		return -ENAMETOOLONG;
	return env_set(r, buf);
}

/* A clean environment: PATH, the user's HOME/USER/LOGNAME/SHELL when `user` is set, then
 * the configured variables over them. The per-connection ones come at spawn. */
static int build_env(struct exec_route *r, const struct sp_conf_exec *c, const struct passwd *pw)
{
	r->env = calloc(c->n_env + 6, sizeof(*r->env));
	if (!r->env)
		return -ENOMEM;
	int ret = env_set(r, EXEC_DEFAULT_PATH);
	if (!ret && pw) {
		ret = env_setf(r, "HOME", pw->pw_dir);
		ret = ret ? ret : env_setf(r, "USER", pw->pw_name);
		ret = ret ? ret : env_setf(r, "LOGNAME", pw->pw_name);
		ret = ret ? ret : env_setf(r, "SHELL", pw->pw_shell);
	}
	for (size_t i = 0; !ret && i < c->n_env; i++) {
		const char *kv = c->env[i];
		bool ours = false;
		for (size_t j = 0; !ours && per_connection[j]; j++)
			ours = same_name(kv, per_connection[j]);
		if (ours || reserved(kv)) {
			sp_log(SP_LOG_WARN, "exec %s: env %.*s is not passed (%s)", c->argv[0],
			       (int)name_len(kv), kv,
			       ours ? "set per connection" : "systemd's, for spargiod alone");
			continue;
		}
		ret = env_set(r, kv);
	}
	return ret;
}

/* May this process change its uids and gids (root, or CAP_SETUID and CAP_SETGID)? */
static bool may_switch_ids(void)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[2];
	if (geteuid() == 0)
		return true;
	if (syscall(SYS_capget, &hdr, data) < 0)
		return false;
	uint32_t need = (1u << CAP_SETUID) | (1u << CAP_SETGID);
	return (data[0].effective & need) == need;
}

static int resolve_ids(struct exec_route *r, const struct sp_conf_exec *c, struct passwd **pwp,
		       char *err, size_t errlen)
{
	struct passwd *pw = NULL;
	r->uid = geteuid();
	r->gid = getegid();
	if (c->user) {
		errno = 0;
		if (!(pw = getpwnam(c->user))) {
			snprintf(err, errlen, "no user '%s' on this system", c->user);
			return errno ? -errno : -ENOENT;
		}
		r->uid = pw->pw_uid;
		r->gid = pw->pw_gid;
	}
	if (c->group) {
		errno = 0;
		struct group *gr = getgrnam(c->group);
		if (!gr) {
			snprintf(err, errlen, "no group '%s' on this system", c->group);
			return errno ? -errno : -ENOENT;
		}
		r->gid = gr->gr_gid;
	}
	*pwp = pw;
	if (!c->user && !c->group)
		return 0;
	if (r->uid == geteuid() && r->gid == getegid())
		return 0; /* already them: keep our groups, no privilege needed */
	if (!may_switch_ids()) {
		snprintf(err, errlen, "cannot run commands as %s%s%s: spargiod runs as uid %u "
			 "without the privilege to change users", c->user ? c->user : "",
			 c->user && c->group ? ":" : "", c->group ? c->group : "",
			 (unsigned)geteuid());
		return -EPERM;
	}
	r->set_ids = true;
	int n = 32;
	for (;;) {
		gid_t *g = realloc(r->groups, (size_t)n * sizeof(*g));
		if (!g)
			return -ENOMEM;
		r->groups = g;
		if (!pw) { /* a group without a user: that group alone */
			g[0] = r->gid;
			r->n_groups = 1;
			return 0;
		}
		int want = n;
		if (getgrouplist(pw->pw_name, r->gid, g, &want) >= 0) {
			r->n_groups = (size_t)want;
			return 0;
		}
		if (want <= n || want > 65536) {
			snprintf(err, errlen, "cannot list the groups of user '%s'", pw->pw_name);
			return -EINVAL;
		}
		n = want;
	}
}

static void limits(struct exec_route *r, const struct sp_conf_exec *c)
{
	struct rlimit cur = { RLIM_INFINITY, RLIM_INFINITY };
	getrlimit(RLIMIT_NOFILE, &cur);
	/* the soft limit we started with: we may have raised ours for the connections */
	struct exec_rlimit nofile = { RLIMIT_NOFILE, { exec_initial_nofile(), cur.rlim_max } };
	if (nofile.lim.rlim_cur > nofile.lim.rlim_max)
		nofile.lim.rlim_cur = nofile.lim.rlim_max;
	if (c->limits.nofile)
		nofile.lim.rlim_cur = nofile.lim.rlim_max = c->limits.nofile;
	r->rlimits[r->n_rlimits++] = nofile;
	const struct exec_rlimit as = { RLIMIT_AS, { c->limits.as, c->limits.as } };
	/* SIGXCPU at the limit, SIGKILL a second later */
	const struct exec_rlimit cpu = { RLIMIT_CPU, { c->limits.cpu, c->limits.cpu + 1 } };
	if (c->limits.as)
		r->rlimits[r->n_rlimits++] = as;
	if (c->limits.cpu)
		r->rlimits[r->n_rlimits++] = cpu;
}

int exec_route_init(struct exec_route *r, const struct sp_conf_exec *c, unsigned nshards,
		    char *err, size_t errlen)
{
	struct passwd *pw = NULL;
	r->conf = c;
	int ret = resolve_ids(r, c, &pw, err, errlen);
	if (ret < 0)
		return ret;
	/* pw points into getpwnam's static buffer: used right away, on the main thread */
	ret = build_env(r, c, c->user ? pw : NULL);
	if (ret < 0)
		return ret;
	limits(r, c);
	exec_queue_init(&r->q, c, nshards);
	/* the fallback for kernels before 6.7, on demand (tests, a misbehaving WAITID) */
	if (getenv("SPARGIOD_EXEC_POLL_PIDFD")) {
		atomic_store(&r->no_waitid, true);
		sp_log(SP_LOG_INFO, "exec %s: SPARGIOD_EXEC_POLL_PIDFD: exits seen by polling "
		       "pidfds", c->argv[0]);
	}
	return 0;
}

void exec_route_fini(struct exec_route *r)
{
	for (size_t i = 0; i < r->n_env; i++)
		free(r->env[i]);
	free(r->env);
	free(r->groups);
}
