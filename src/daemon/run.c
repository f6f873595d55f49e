/* SPDX-License-Identifier: MIT */
/*
 * run.c - the daemon's life: load, bind, drop privileges, start the engine, serve, and
 * on signals reload or stop. The main thread is not a shard: it waits on a signalfd and
 * a tick, and does the slow things (parsing, binding) so the shards never do.
 */
#include <errno.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "control/control.h"
#include "daemon/daemon.h"
#include "daemon/testhook.h"
#include "stats/stats_json.h"
#include "engine/log.h"

#define TICK_MS 1000

/* shards: auto. The CPUs this process may run on (taskset, a cpuset cgroup), which on a
 * plain host are the online ones. */
static unsigned allowed_cpus(void)
{
	cpu_set_t set;
	long n = sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set)
							       : sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (unsigned)n : 1;
}

static int start_engine(struct sp_daemon *d)
{
	struct sp_engine_config ec;
	sp_engine_config_defaults(&ec);
	ec.shards = d->nshards;
	ec.ring_entries = d->cfg->engine.ring_entries;
	/* The CQ carries what the shard keeps in flight: a relay's two receives per
	 * connection of its share of max_connections (capped at the kernel's 65536; past
	 * that the kernel backlogs CQEs, lossless but slower), and at least 4x the SQ
	 * (asked as is: the engine logs it when the kernel cuts it). */
	uint64_t share = (d->cfg->limits.max_connections + d->nshards - 1) / d->nshards;
	uint64_t cq = 2 * share < 65536 ? 2 * share : 65536;
	ec.cq_entries = (unsigned)(cq > 4ull * ec.ring_entries ? cq : 4ull * ec.ring_entries);
	ec.steal = d->cfg->engine.steal;
	ec.pin_cpus = d->cfg->engine.pin_cpus;
	ec.idle_spin_us = d->cfg->engine.idle_spin_us;
	/* Provided buffers for receives (proxy relays): taken only when data arrives, so
	 * idle connections hold none. The ring hands them out in turn, so all of them get
	 * touched in time: keep it small (1 MiB a shard). A 4 KiB buffer holds a request or
	 * an answer; a receive that fills one means a stream, which goes on through the
	 * relay's own 16 KiB LIFO pool (relay.c). */
	ec.buf_count = 256;
	ec.buf_size = 4096;
	int ret = sp_engine_create(&ec, &d->eng);
	if (ret == -EPERM || ret == -ENOSYS)
		sp_log(SP_LOG_ERR, "io_uring is not permitted here (%s): a seccomp filter or "
		       "container profile blocks io_uring_setup", strerror(-ret));
	else if (ret < 0)
		sp_log(SP_LOG_ERR, "cannot start the engine: %s", strerror(-ret));
	return ret;
}

static void update_status(struct sp_daemon *d)
{
	sp_notify_status("generation %u, %llu connections, %zu listeners, %u shards%s",
			 d->generation, (unsigned long long)atomic_load(&d->active), d->n_socks,
			 d->nshards, atomic_load(&d->paused) ? ", accepting paused" : "");
}

/* Watchdog: WATCHDOG=1 only when every shard answered the previous ping. */
static void tick(struct sp_daemon *d, bool watchdog)
{
	if (watchdog) {
		if (sp_daemon_pinged(d))
			sp_notify_watchdog();
		else
			sp_log(SP_LOG_WARN, "watchdog: a shard did not answer within a tick");
		sp_daemon_ping(d);
	}
	update_status(d);
	sp_testhook_tick(d); /* nothing, but in the tests' build */
}

/* Wait for connections to finish after the listeners closed: up to drain_timeout, or
 * until SIGQUIT asks for now. */
static void drain(struct sp_daemon *d, int sfd)
{
	uint64_t deadline = sp_now_ns() + d->cfg->limits.drain_timeout_ms * 1000000ull;
	uint64_t left;
	while ((left = atomic_load(&d->active)) > 0) {
		uint64_t now = sp_now_ns();
		if (now >= deadline) {
			sp_log(SP_LOG_WARN, "drain timeout: closing %llu connections",
			       (unsigned long long)left);
			return;
		}
		struct pollfd pfd = { .fd = sfd, .events = POLLIN };
		if (poll(&pfd, 1, 50) > 0) {
			struct signalfd_siginfo si;
			if (read(sfd, &si, sizeof(si)) == sizeof(si) && si.ssi_signo == SIGQUIT) {
				sp_log(SP_LOG_INFO, "SIGQUIT: closing %llu connections now",
				       (unsigned long long)left);
				return;
			}
		}
	}
}

static int serve(struct sp_daemon *d, int sfd)
{
	uint64_t wd_usec = sp_notify_watchdog_usec();
	/* the tick feeds systemd (STATUS=, WATCHDOG=): without it, sleep until an event */
	bool ticking = wd_usec || sp_notify_enabled();
	int timeout = TICK_MS;
	if (wd_usec && wd_usec / 2000 < (uint64_t)timeout)
		timeout = (int)(wd_usec / 2000 > 0 ? wd_usec / 2000 : 1);
	if (wd_usec)
		sp_daemon_ping(d);

	uint64_t next_tick = sp_now_ns() + (uint64_t)timeout * 1000000ull;
	for (;;) {
		int ctl_ms = sp_control_tick(d->control); /* idle clients, refusal summaries */
		struct pollfd pfd[72] = { { .fd = sfd, .events = POLLIN } };
		size_t nctl = sp_control_pollfds(d->control, pfd + 1, 71);
		uint64_t now = sp_now_ns();
		int wait_ms = !ticking	    ? -1
			      : now >= next_tick ? 0
						 : (int)((next_tick - now) / 1000000u) + 1;
		if (ctl_ms >= 0 && (wait_ms < 0 || ctl_ms < wait_ms))
			wait_ms = ctl_ms;
		int n = poll(pfd, 1 + nctl, wait_ms);
		if (n < 0 && errno != EINTR)
			return -errno;
		if (ticking && sp_now_ns() >= next_tick) {
			tick(d, wd_usec != 0);
			next_tick = sp_now_ns() + (uint64_t)timeout * 1000000ull;
		}
		if (n <= 0)
			continue;
		sp_control_dispatch(d->control, pfd + 1, nctl);
		struct signalfd_siginfo si;
		if (!(pfd[0].revents & POLLIN) || read(sfd, &si, sizeof(si)) != sizeof(si))
			continue;
		switch (si.ssi_signo) {
		case SIGHUP: {
			char err[1024];
			sp_log(SP_LOG_INFO, "SIGHUP: reloading %s", d->config_path);
			sp_daemon_reload(d, err, sizeof(err));
			break;
		}
		case SIGTERM:
		case SIGINT:
			sp_log(SP_LOG_INFO, "%s: stopping; draining %llu connections (up to %llu ms)",
			       strsignal((int)si.ssi_signo), (unsigned long long)atomic_load(&d->active),
			       (unsigned long long)d->cfg->limits.drain_timeout_ms);
			sp_notify_stopping();
			sp_daemon_stop_accepting(d);
			drain(d, sfd);
			return 0;
		case SIGQUIT:
			sp_log(SP_LOG_INFO, "SIGQUIT: stopping now");
			sp_notify_stopping();
			sp_daemon_stop_accepting(d);
			return 0;
		}
	}
}

int sp_daemon_run(const char *config_path)
{
	struct sp_daemon d = { .config_path = config_path, .start_ns = sp_now_ns() };
	struct sp_conf_errors errs = { 0 };
	struct sp_prepared p;
	char err[1024];
	int status = SP_EXIT_STARTUP;

	/* Signals go to the signalfd; every thread started later inherits the mask. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGQUIT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	int sfd = signalfd(-1, &set, SFD_CLOEXEC);
	if (sfd < 0) {
		sp_log(SP_LOG_ERR, "signalfd: %s", strerror(errno));
		return SP_EXIT_STARTUP;
	}

	struct sp_config *cfg = NULL;
	if (sp_config_load(config_path, &cfg, &errs) < 0) {
		for (unsigned i = 0; i < errs.count; i++)
			fprintf(stderr, "%s\n", errs.msgs[i]);
		if (errs.dropped)
			fprintf(stderr, "... and %u more errors\n", errs.dropped);
		if (!errs.count)
			fprintf(stderr, "%s: cannot load the configuration\n", config_path);
		sp_conf_errors_free(&errs);
		close(sfd);
		return SP_EXIT_CONFIG;
	}
	sp_conf_errors_free(&errs);
	sp_logging_setup(cfg->log.target, cfg->log.level);
	sp_log_async_start(); /* from here on no thread waits for the log */
	if (sp_daemon_check_start(cfg, err, sizeof(err)) < 0) {
		sp_config_unref(cfg);
		status = SP_EXIT_CONFIG;
		goto out;
	}

	d.nshards = cfg->engine.shards ? cfg->engine.shards : allowed_cpus();
	sp_systemd_sockets_load();
	sp_daemon_shards_init(&d);
	int ret = sp_daemon_prepare(&d, cfg, &p, err, sizeof(err));
	if (ret < 0) {
		sp_log(SP_LOG_ERR, "%s", err);
		sp_config_unref(cfg);
		status = ret == -EIO ? SP_EXIT_STARTUP : SP_EXIT_CONFIG;
		goto out;
	}
	struct passwd *pw = cfg->process.user ? getpwnam(cfg->process.user) : NULL;
	d.control = sp_control_open(&d, cfg->control.socket, cfg->control.mode,
				    pw ? pw->pw_uid : (uid_t)-1, err, sizeof(err));
	if (!d.control) {
		sp_log(SP_LOG_ERR, "%s", err);
		sp_prepared_abort(&p);
		goto out;
	}
	if (sp_drop_privileges(cfg, err, sizeof(err)) < 0) {
		sp_log(SP_LOG_ERR, "%s", err);
		sp_prepared_abort(&p);
		goto out;
	}
	sp_daemon_commit(&d, &p); /* no engine yet: published once it runs */
	/* for the status page: d outlives the engine, and the shards start after this */
	const struct sp_stats_process proc = { &d.active, &d.paused, d.start_ns };
	sp_stats_process = &proc;
	if (start_engine(&d) < 0)
		goto out;
	sp_daemon_publish(&d, d.gen);

	sp_log(SP_LOG_INFO, "spargiod %s: generation %u, %zu listeners, %u shards, config %s",
	       PACKAGE_VERSION, d.generation, d.n_socks, d.nshards, config_path);
	sp_notify_ready();
	update_status(&d);
	status = serve(&d, sfd) < 0 ? SP_EXIT_STARTUP : SP_EXIT_OK;

	sp_engine_stop(d.eng);
	sp_engine_join(d.eng);
	sp_engine_destroy(d.eng);
	d.eng = NULL;
	sp_log(SP_LOG_INFO, "stopped");
out:
	sp_stats_process = NULL;
	sp_control_close(d.control);
	sp_daemon_shards_fini(&d);
	for (size_t i = 0; i < d.n_socks; i++) {
		sp_listener_retire(d.socks[i]);
		sp_listener_unref(d.socks[i]);
	}
	free(d.socks);
	sp_gen_unref(d.gen);
	sp_config_unref(d.cfg);
	sp_systemd_sockets_close();
	sp_log_async_stop();
	close(sfd);
	return status;
}
