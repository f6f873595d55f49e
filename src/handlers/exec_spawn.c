/* SPDX-License-Identifier: MIT */
/*
 * exec_spawn.c - starting the child of a connection without forking the daemon: vfork
 * (the kernel's CLONE_VM|CLONE_VFORK, as posix_spawn does), and pidfd_open on its pid.
 * posix_spawn itself cannot set rlimits or switch users, hence our own child code.
 *
 * The child shares our memory until it execs, and only this thread is suspended, so it
 * runs with the rules of a vfork child: everything it needs is prepared before vfork,
 * and it makes raw system calls only. Not even libc wrappers: setuid() and friends in a
 * threaded program signal every thread of the *parent* to change ids together, and
 * sanitizer interceptors keep state shared with the parent. Under ThreadSanitizer vfork
 * is a fork, which the same code survives (only the failure report below is lost; the
 * child still exits 127).
 *
 * What the child resets before exec (design.md, pitfalls): the signal mask (the daemon
 * blocks signals for its signalfd) and every disposition (SIGPIPE is ignored here, and
 * an ignored signal stays ignored across exec); the soft RLIMIT_NOFILE we started with;
 * every fd but 0-2 (close_range); a new session and process group (timeouts kill the
 * group); ids, rlimits, working directory. Its environment is built from scratch, so
 * NOTIFY_SOCKET, LISTEN_* and WATCHDOG_* never reach it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "handlers/exec.h"

/* Written once, before main, and only read afterwards. */
static rlim_t initial_nofile = RLIM_INFINITY;

__attribute__((constructor)) static void record_initial_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
		initial_nofile = rl.rlim_cur;
}

rlim_t exec_initial_nofile(void)
{
	return initial_nofile;
}

/* The failing step of a child that did not reach exec, by number (the child can only
 * store an int). */
static const char *const steps[] = { "", "setsid", "stdio", "close_range", "setrlimit",
				     "setgroups", "setresgid", "setresuid", "chdir",
				     "sigprocmask", "execve" };
enum { ST_NONE, ST_SETSID, ST_STDIO, ST_CLOSE, ST_RLIMIT, ST_GROUPS, ST_GID, ST_UID, ST_CHDIR,
       ST_SIGMASK, ST_EXEC };

struct plan {
	const char *path;
	char *const *argv, *const *envp;
	int fd[3];                 /* become 0, 1, 2 */
	const char *cwd;
	const struct exec_route *r;
	const unsigned long *dfl;  /* a kernel sigaction with SIG_DFL: all zeroes */
	const unsigned long *empty; /* an empty kernel sigset */
	volatile int err, step;    /* set by a child that failed, read after vfork returns */
};

#define CHILD_CODE __attribute__((noinline, noreturn, no_sanitize_address, \
				  no_sanitize_thread, no_sanitize_undefined))

CHILD_CODE static void child(struct plan *p)
{
	const struct exec_route *r = p->r;
	int fd[3] = { p->fd[0], p->fd[1], p->fd[2] };
	int step = ST_SETSID;

	/* Dispositions first, while every signal is still blocked (the parent blocked them
	 * around vfork): no handler of the daemon may run in here. */
	for (long sig = 1; sig <= 64; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			syscall(SYS_rt_sigaction, sig, p->dfl, NULL, 8L);
	if (syscall(SYS_setsid) < 0)
		goto fail;

	step = ST_STDIO; /* out of 0-2 first, so no dup3 overwrites a source still needed */
	for (int i = 0; i < 3; i++) {
		if (fd[i] >= 3)
			continue;
		long moved = syscall(SYS_fcntl, fd[i], F_DUPFD, 3L);
		if (moved < 0)
			goto fail;
		for (int j = 2; j >= i; j--)
			if (fd[j] == p->fd[i])
				fd[j] = (int)moved;
	}
	for (long i = 0; i < 3; i++)
		if (syscall(SYS_dup3, fd[i], i, 0L) < 0)
			goto fail;
	step = ST_CLOSE;
	if (syscall(SYS_close_range, 3L, ~0UL, 0L) < 0)
		goto fail;

	step = ST_RLIMIT;
	for (unsigned i = 0; i < r->n_rlimits; i++)
		if (syscall(SYS_prlimit64, 0L, (long)r->rlimits[i].resource, &r->rlimits[i].lim,
			    NULL) < 0)
			goto fail;
	if (r->set_ids) {
		step = ST_GROUPS;
		if (syscall(SYS_setgroups, (long)r->n_groups, r->groups) < 0)
			goto fail;
		step = ST_GID;
		if (syscall(SYS_setresgid, (long)r->gid, (long)r->gid, (long)r->gid) < 0)
			goto fail;
		step = ST_UID;
		if (syscall(SYS_setresuid, (long)r->uid, (long)r->uid, (long)r->uid) < 0)
			goto fail;
	}
	step = ST_CHDIR; /* as the new user: its permissions apply */
	if (syscall(SYS_chdir, p->cwd) < 0)
		goto fail;
	step = ST_SIGMASK;
	if (syscall(SYS_rt_sigprocmask, (long)SIG_SETMASK, p->empty, NULL, 8L) < 0)
		goto fail;
	step = ST_EXEC;
	syscall(SYS_execve, p->path, p->argv, p->envp);
fail:
	p->err = errno;
	p->step = step;
	for (;;)
		syscall(SYS_exit_group, 127L);
}

/* ------------------------------------------------------------------------------------ */

static void addr_port(const struct sockaddr_storage *ss, char *addr, size_t n, unsigned *port)
{
	addr[0] = '\0';
	*port = 0;
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
		inet_ntop(AF_INET, &in->sin_addr, addr, (socklen_t)n);
		*port = ntohs(in->sin_port);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
		inet_ntop(AF_INET6, &in6->sin6_addr, addr, (socklen_t)n);
		*port = ntohs(in6->sin6_port);
	}
}

#define CONN_VARS 6
#define CONN_VAR_MAX 112 /* "SPARGIOD_LISTENER=" + a 64-character name, or an address */

/* The route's environment plus this connection's variables, in one allocation. Unix
 * socket connections get no address variables. */
static char **conn_env(struct exec_session *e)
{
	const struct exec_route *r = e->r;
	size_t nptr = r->n_env + CONN_VARS + 1;
	char **envp = malloc(nptr * sizeof(char *) + CONN_VARS * CONN_VAR_MAX);
	if (!envp)
		return NULL;
	char *buf = (char *)(envp + nptr);
	size_t n = 0;
	for (size_t i = 0; i < r->n_env; i++)
		envp[n++] = r->env[i];

	struct sockaddr_storage local;
	socklen_t len = sizeof(local);
	char addr[INET6_ADDRSTRLEN];
	unsigned port;
	const struct sockaddr_storage *ends[2] = { &e->s.peer, NULL };
	/* a PROXY header gave the client (s.peer) and the address it connected to: LOCAL_*
	 * is that destination, as REMOTE_* is its source, not the proxy's connection to us */
	socklen_t dstlen;
	const struct sockaddr *dst = sp_session_pp_dst(&e->s, &dstlen);
	if (dst)
		ends[1] = (const struct sockaddr_storage *)dst;
	else if (getsockname(e->s.fd, (struct sockaddr *)&local, &len) == 0)
		ends[1] = &local;
	for (int i = 0; i < 2; i++) {
		if (!ends[i])
			continue;
		addr_port(ends[i], addr, sizeof(addr), &port);
		if (!addr[0])
			continue;
		const char *who = i ? "LOCAL" : "REMOTE";
		snprintf(buf, CONN_VAR_MAX, "%s_ADDR=%s", who, addr);
		envp[n++] = buf;
		buf += CONN_VAR_MAX;
		snprintf(buf, CONN_VAR_MAX, "%s_PORT=%u", who, port);
		envp[n++] = buf;
		buf += CONN_VAR_MAX;
	}
	snprintf(buf, CONN_VAR_MAX, "SPARGIOD_ROUTE=%s", e->s.route->conf->name);
	envp[n++] = buf;
	buf += CONN_VAR_MAX;
	snprintf(buf, CONN_VAR_MAX, "SPARGIOD_LISTENER=%s", e->s.lst->conf->name);
	envp[n++] = buf;
	envp[n] = NULL;
	return envp;
}

int exec_spawn(struct exec_session *e, int in, int out, int err, const char **why)
{
	static const unsigned long zeroes[4];
	const struct sp_conf_exec *c = e->r->conf;
	char **envp = conn_env(e);
	if (!envp) {
		*why = "environment";
		return -ENOMEM;
	}
	struct plan p = {
		.path = c->argv[0], .argv = c->argv, .envp = envp, .fd = { in, out, err },
		.cwd = c->working_dir, .r = e->r, .dfl = zeroes, .empty = zeroes,
	};
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	e->spawned_ns = sp_now_ns(); /* we may resume only once the child ran a while */
	pid_t pid = vfork();
	if (pid == 0)
		child(&p);
	int saved = errno;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	free(envp);
	if (pid < 0) {
		*why = "vfork";
		return -saved;
	}
	int pidfd = pidfd_open(pid, 0);
	if (pidfd < 0) {
		/* we cannot watch it: end it now, waiting is short after SIGKILL */
		saved = errno;
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		*why = "pidfd_open";
		return -saved;
	}
	e->pid = pid;
	e->pidfd = pidfd;
	if (p.step) { /* it exited (127) before exec; its exit is reaped as usual */
		*why = steps[p.step];
		return -p.err;
	}
	return 0;
}
