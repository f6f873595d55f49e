/* SPDX-License-Identifier: MIT */
/*
 * commands.c - the control commands (spargioctl(8)): status, stats, shards, listeners,
 * routes, upstreams, reload, server, drain, run on lines that parse.c checked. Figures
 * are sums of the per-shard counters, read with relaxed loads (no lock, the shards never
 * wait for us), through stats/figures.h like the metrics handler; their JSON is built by
 * stats/stats_json.c, shared with the status page. JSON is built with jansson: no
 * hand-written escaping.
 */
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "control/control.h"
#include "daemon/daemon.h"
#include "upstream/upstream.h"
#include "stats/figures.h"
#include "stats/stats_json.h"

#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)

static json_t *error_answer(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static json_t *error_answer(const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	json_t *j = json_pack("{s:b, s:s}", "ok", 0, "error", msg);
	/* jansson refuses invalid UTF-8: junk in a command gets a plain answer */
	return j ? j : json_pack("{s:b, s:s}", "ok", 0, "error", "command is not valid UTF-8");
}

static json_t *server_enable(struct sp_daemon *d, const char *upstream, const char *address,
			     bool enable)
{
	int ret = sp_upstream_set_enabled(d->gen ? d->gen->upstreams : NULL, upstream, address,
					  enable);
	if (ret == -ENOENT)
		return error_answer("no upstream named '%s'", upstream);
	if (ret == -ESRCH)
		return error_answer("upstream '%s' has no server '%s'", upstream, address);
	struct sp_server *s = sp_upstream_server(sp_upstream_find(d->gen->upstreams, upstream),
						 address);
	return json_pack("{s:b, s:s, s:s, s:s}", "ok", 1, "upstream", upstream, "server",
			 s->conf->address.text, "state", sp_server_state(s));
}

static json_t *status_json(struct sp_daemon *d)
{
	return json_pack("{s:b, s:s, s:i, s:f, s:s, s:i, s:i, s:I, s:b, s:I}", "ok", 1,
		"version", PACKAGE_VERSION, "pid", (int)getpid(),
		"uptime_s", (double)(sp_now_ns() - d->start_ns) / 1e9,
		"config", d->config_path, "generation", (int)d->generation,
		"shards", (int)d->nshards, "connections", (json_int_t)LOAD(d->active),
		"accepting_paused", LOAD(d->paused),
		"reloads_failed", (json_int_t)LOAD(d->reloads_failed));
}

static json_t *drain_listener(struct sp_daemon *d, const char *name)
{
	for (size_t i = 0; d->gen && i < d->gen->n_listeners; i++) {
		const struct sp_gen_listener *e = &d->gen->listeners[i];
		if (strcmp(e->conf->name, name) != 0)
			continue;
		if (!sp_daemon_drain_listener(d, e->sock))
			return error_answer("listener '%s' is already draining", name);
		return json_pack("{s:b, s:s, s:s}", "ok", 1, "listener", name, "state", "draining");
	}
	return error_answer("no listener named '%s'", name);
}

static json_t *answer(struct sp_daemon *d, const struct sp_ctl_command *c)
{
	switch (c->cmd) {
	case SP_CTL_STATUS:
		return status_json(d);
	case SP_CTL_SHARDS:
		return json_pack("{s:b, s:o}", "ok", 1, "shards", sp_stats_json_shards(d->eng));
	case SP_CTL_LISTENERS:
		return json_pack("{s:b, s:o}", "ok", 1, "listeners", sp_stats_json_listeners(d->gen));
	case SP_CTL_ROUTES:
		return json_pack("{s:b, s:o}", "ok", 1, "routes", sp_stats_json_routes(d->gen));
	case SP_CTL_UPSTREAMS:
		return json_pack("{s:b, s:o}", "ok", 1, "upstreams", sp_stats_json_upstreams(d->gen));
	case SP_CTL_STATS: /* the status page's /status.json is this same builder */
		return sp_stats_json(d->gen, d->eng);
	case SP_CTL_RELOAD: {
		char err[1024];
		if (sp_daemon_reload(d, err, sizeof(err)) < 0)
			return json_pack("{s:b, s:s, s:i}", "ok", 0, "error", err,
					 "generation", (int)d->generation);
		return json_pack("{s:b, s:i}", "ok", 1, "generation", (int)d->generation);
	}
	case SP_CTL_DRAIN:
		return drain_listener(d, c->args[0]);
	case SP_CTL_SERVER_ENABLE:
	case SP_CTL_SERVER_DISABLE:
		return server_enable(d, c->args[0], c->args[1], c->cmd == SP_CTL_SERVER_ENABLE);
	}
	return error_answer("unknown command '%s'", c->name);
}

char *sp_control_answer(struct sp_daemon *d, const char *line, size_t len)
{
	struct sp_ctl_command c;
	char err[160];
	json_t *j;

	if (sp_control_parse(line, len, &c, err, sizeof(err)) < 0)
		j = error_answer("%s", err);
	else
		j = answer(d, &c);
	char *text = json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII);
	json_decref(j);
	return text;
}
