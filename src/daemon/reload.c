/* SPDX-License-Identifier: MIT */
/*
 * reload.c - turning a config into the running generation, on the main thread, off the
 * shards' path. Prepare binds what is new and builds the routes; nothing runs until
 * commit, so a failure at any step leaves the old generation serving untouched. Commit
 * publishes to every shard by message and retires the sockets no longer configured.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/daemon.h"
#include "engine/log.h"
#include "net/srclimit.h"
#include "upstream/upstream.h"

void sp_prepared_abort(struct sp_prepared *p)
{
	for (size_t i = 0; i < p->n_socks; i++) {
		if (p->fresh[i])
			sp_listener_retire(p->socks[i]);
		sp_listener_unref(p->socks[i]);
	}
	free(p->socks);
	free(p->fresh);
	sp_gen_unref(p->gen);
	sp_config_unref(p->cfg);
	memset(p, 0, sizeof(*p));
}

/* The socket of the running registry with this key, not yet claimed by this reload. */
static struct sp_listener *find_running(struct sp_daemon *d, const char *key,
					struct sp_prepared *p)
{
	for (size_t i = 0; i < d->n_socks; i++) {
		if (strcmp(d->socks[i]->key, key) != 0)
			continue;
		bool claimed = false;
		for (size_t j = 0; j < p->n_socks; j++)
			claimed |= p->socks[j] == d->socks[i];
		if (!claimed)
			return d->socks[i];
	}
	return NULL;
}

int sp_daemon_prepare(struct sp_daemon *d, struct sp_config *cfg, struct sp_prepared *p,
		      char *err, size_t errlen)
{
	int ret = -EINVAL; /* -EIO: a socket could not be bound */
	memset(p, 0, sizeof(*p));
	p->cfg = cfg;
	p->gen = sp_gen_create(cfg, d->generation + 1, d->nshards, err, errlen);
	if (!p->gen)
		goto fail;
	p->socks = calloc(cfg->n_listeners + 1, sizeof(*p->socks));
	p->fresh = calloc(cfg->n_listeners + 1, sizeof(*p->fresh));
	if (!p->socks || !p->fresh) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	for (size_t i = 0; i < cfg->n_listeners; i++) {
		const struct sp_conf_listener *c = &cfg->listeners[i];
		char *key = sp_listener_key(c);
		struct sp_listener *l = key ? find_running(d, key, p) : NULL;
		free(key);
		if (l) {
			sp_listener_ref(l); /* the registry's reference, kept across the swap */
		} else {
			char why[256];
			l = sp_listener_open(c, d->nshards, why, sizeof(why));
			if (!l) {
				snprintf(err, errlen, "%s:%u:%u: listener '%s': cannot bind %s: %s",
					 cfg->path, c->pos.line, c->pos.col, c->name,
					 c->bind.text, why);
				ret = -EIO;
				goto fail;
			}
			p->fresh[p->n_socks] = true;
		}
		p->socks[p->n_socks++] = l;
		struct sp_gen_listener *e = &p->gen->listeners[i];
		e->sock = sp_listener_ref(l);
		e->conf = c;
		e->route = sp_gen_route(p->gen, c->route);
		e->gen = p->gen;
		p->gen->n_listeners = i + 1;
	}
	return 0;
fail:
	p->cfg = NULL; /* the caller keeps its reference on failure */
	sp_prepared_abort(p);
	return ret;
}

/* Settings that only a restart changes: say so rather than pretend they applied. */
static void warn_restart_only(const struct sp_config *old, const struct sp_config *cfg)
{
	if (!old)
		return;
	if (old->engine.shards != cfg->engine.shards ||
	    old->engine.ring_entries != cfg->engine.ring_entries ||
	    old->engine.steal != cfg->engine.steal || old->engine.pin_cpus != cfg->engine.pin_cpus ||
	    old->engine.idle_spin_us != cfg->engine.idle_spin_us)
		sp_log(SP_LOG_WARN, "reload: engine settings changed; they apply at the next restart");
	if (strcmp(old->control.socket, cfg->control.socket) != 0 || old->control.mode != cfg->control.mode)
		sp_log(SP_LOG_WARN, "reload: control settings changed; they apply at the next restart");
	if ((old->process.user == NULL) != (cfg->process.user == NULL) ||
	    (old->process.user && strcmp(old->process.user, cfg->process.user) != 0))
		sp_log(SP_LOG_WARN, "reload: process.user changed; it applies at the next restart");
}

static void set_listener_limits(struct sp_daemon *d, struct sp_prepared *p);

void sp_daemon_commit(struct sp_daemon *d, struct sp_prepared *p)
{
	/* Retire the sockets the new config no longer binds: they stop accepting now. */
	for (size_t i = 0; i < d->n_socks; i++) {
		bool kept = false;
		for (size_t j = 0; j < p->n_socks; j++)
			kept |= p->socks[j] == d->socks[i];
		if (!kept)
			sp_listener_retire(d->socks[i]);
		sp_listener_unref(d->socks[i]); /* the old registry's reference */
	}
	free(d->socks);
	free(p->fresh);
	d->socks = p->socks;
	d->n_socks = p->n_socks;

	warn_restart_only(d->cfg, p->cfg);
	set_listener_limits(d, p);
	atomic_store(&d->max_connections, p->cfg->limits.max_connections);
	atomic_store(&d->access_log, p->cfg->log.access_log);
	sp_log_set_level(p->cfg->log.level);

	d->generation = p->gen->number;
	/* routes the new config no longer has: their long-lived sessions are ended */
	for (size_t i = 0; d->gen && i < d->gen->n_routes; i++)
		if (!sp_config_route(p->cfg, d->gen->routes[i].conf->name))
			atomic_store(&d->gen->routes[i].retired, true);
	/* servers keep their state (disabled, down) across the reload */
	sp_upstreams_inherit(p->gen->upstreams, d->gen ? d->gen->upstreams : NULL);
	if (d->eng)
		sp_daemon_publish(d, p->gen);
	sp_gen_unref(d->gen);
	sp_config_unref(d->cfg);
	d->gen = p->gen;
	d->cfg = p->cfg;
	memset(p, 0, sizeof(*p));
	if (d->eng)
		sp_daemon_wake_acceptors(d); /* a raised limit lets waiting clients in */
}

/* Each listener's limits as the new generation says; the per-source table on first use. */
static void set_listener_limits(struct sp_daemon *d, struct sp_prepared *p)
{
	bool per_source = false;
	for (size_t i = 0; i < p->gen->n_listeners; i++) {
		const struct sp_gen_listener *e = &p->gen->listeners[i];
		unsigned cap = e->conf->per_source_set ? e->conf->per_source
						      : p->cfg->limits.per_source;
		atomic_store(&e->sock->max, e->conf->max_connections);
		per_source |= cap != 0;
		atomic_store(&e->sock->per_source, cap);
	}
	if (per_source && sp_srclimit_init() < 0) /* a few pages, once */
		sp_log(SP_LOG_ERR, "per_source: out of memory: connections are not counted");
}

static void log_errors(const struct sp_conf_errors *errs)
{
	for (unsigned i = 0; i < errs->count; i++)
		sp_log(SP_LOG_ERR, "%s", errs->msgs[i]);
	if (errs->dropped)
		sp_log(SP_LOG_ERR, "... and %u more errors", errs->dropped);
}

static void log_warning(void *arg, const char *line)
{
	(void)arg;
	sp_log(SP_LOG_WARN, "%s", line);
}

int sp_daemon_check_start(const struct sp_config *cfg, char *err, size_t errlen)
{
	struct sp_conf_errors errs = { 0 };
	int ret = sp_config_check_start(cfg, &errs, log_warning, NULL);
	log_errors(&errs);
	if (ret < 0)
		snprintf(err, errlen, "%s", errs.count ? errs.msgs[0] : "invalid configuration");
	sp_conf_errors_free(&errs);
	return ret;
}

int sp_daemon_reload(struct sp_daemon *d, char *err, size_t errlen)
{
	struct sp_conf_errors errs = { 0 };
	struct sp_config *cfg = NULL;
	struct sp_prepared p;

	sp_notify_reloading();
	int ret = sp_config_load(d->config_path, &cfg, &errs);
	if (ret < 0) {
		log_errors(&errs);
		snprintf(err, errlen, "%s", errs.count ? errs.msgs[0] : strerror(-ret));
		sp_conf_errors_free(&errs);
		goto rejected;
	}
	sp_conf_errors_free(&errs);
	if (sp_daemon_check_start(cfg, err, errlen) < 0) {
		sp_config_unref(cfg);
		goto rejected;
	}
	ret = sp_daemon_prepare(d, cfg, &p, err, errlen);
	if (ret < 0) {
		sp_config_unref(cfg);
		sp_log(SP_LOG_ERR, "%s", err);
		goto rejected;
	}
	sp_daemon_commit(d, &p);
	sp_log(SP_LOG_INFO, "reload: generation %u running (%zu listeners, %zu routes)",
	       d->generation, d->cfg->n_listeners, d->cfg->n_routes);
	sp_notify_status("generation %u running; %llu connections", d->generation,
			 (unsigned long long)atomic_load(&d->active));
	sp_notify_ready();
	return 0;
rejected:
	atomic_fetch_add(&d->reloads_failed, 1);
	sp_log(SP_LOG_ERR, "reload rejected; generation %u keeps serving", d->generation);
	sp_notify_status("reload rejected, generation %u keeps serving: %s", d->generation, err);
	sp_notify_ready(); /* systemd must leave "reloading" on a rejected reload too */
	return -EINVAL;
}
