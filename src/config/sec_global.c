/* SPDX-License-Identifier: MIT */
/*
 * sec_global.c - the single-instance sections: version, engine, control, log, limits,
 * process. Their defaults are set here, in one place, before the file is read.
 */
#include <string.h>

#include "config/schema.h"
#include "engine/log.h"

/*
 * Defaults of every optional key of the single-instance sections (spargiod.yaml(5)):
 *   engine:  shards auto (0: one per online CPU), ring_entries 1024, steal true,
 *            pin_cpus false, idle_spin_us 0
 *   control: socket /run/spargiod/control.sock, mode "0660"
 *   log:     level info, target auto, access_log true
 *   limits:  max_connections 65536, drain_timeout 30s, per_source 0 (no cap)
 *   process: user and group unset (the daemon stays who it was started as)
 */
static void defaults(struct sp_cf_ctx *cx, struct sp_config *c)
{
	c->engine.shards = 0;
	c->engine.ring_entries = 1024;
	c->engine.steal = true;
	c->engine.pin_cpus = false;
	c->engine.idle_spin_us = 0;
	c->control.socket = sp_cf_strdup(cx, "/run/spargiod/control.sock");
	c->control.mode = 0660;
	c->log.level = SP_LOG_INFO;
	c->log.target = SP_LOG_TARGET_AUTO;
	c->log.access_log = true;
	c->limits.max_connections = 65536;
	c->limits.drain_timeout_ms = 30000;
}

static void version(struct sp_cf_ctx *cx, const struct sp_ynode *root, const struct sp_ynode *n)
{
	unsigned v;
	if (!n) {
		sp_cf_error(cx, root, "missing required key 'version' at the top level "
				      "(this is schema version 1: add 'version: 1')");
		return;
	}
	if (sp_cf_type(n) != SP_CF_INT) {
		sp_cf_type_error(cx, n, "version", "an integer");
		return;
	}
	if (!sp_cf_uint(cx, n, "version", 0, 1000000, &v))
		return;
	if (v != 1)
		sp_cf_error(cx, n, "unsupported schema version %u (this spargiod reads version 1)", v);
}

static void engine(struct sp_cf_ctx *cx, const struct sp_ynode *map)
{
	static const char *const keys[] = { "shards",	"ring_entries", "steal",
					    "pin_cpus", "idle_spin_us", NULL };
	enum { SHARDS, RING, STEAL, PIN, SPIN, N };
	const struct sp_ynode *v[N];
	struct sp_config *c = cx->cfg;
	if (!sp_cf_fields(cx, map, "'engine'", keys, v))
		return;
	if (v[SHARDS]) {
		if (v[SHARDS]->kind == SP_YSCALAR && !strcmp(v[SHARDS]->str, "auto"))
			c->engine.shards = 0;
		else if (sp_cf_type(v[SHARDS]) != SP_CF_INT)
			sp_cf_type_error(cx, v[SHARDS], "shards", "an integer or auto");
		else
			sp_cf_uint(cx, v[SHARDS], "shards", 1, 1024, &c->engine.shards);
	}
	if (sp_cf_uint(cx, v[RING], "ring_entries", 8, 32768, &c->engine.ring_entries) &&
	    (c->engine.ring_entries & (c->engine.ring_entries - 1)))
		sp_cf_error(cx, v[RING], "'ring_entries' must be a power of two (found %u)",
			    c->engine.ring_entries);
	sp_cf_bool(cx, v[STEAL], "steal", &c->engine.steal);
	sp_cf_bool(cx, v[PIN], "pin_cpus", &c->engine.pin_cpus);
	sp_cf_uint(cx, v[SPIN], "idle_spin_us", 0, 1000000, &c->engine.idle_spin_us);
}

/* "0660" or 0660: octal digits whether YAML would call them a number or a string */
static void mode(struct sp_cf_ctx *cx, const struct sp_ynode *n, mode_t *out)
{
	char show[32];
	if (!n)
		return;
	if (n->kind != SP_YSCALAR || sp_cf_type(n) == SP_CF_NULL) {
		sp_cf_type_error(cx, n, "mode", "octal permissions (\"0660\")");
		return;
	}
	if (!n->len || n->len > 4 || strspn(n->str, "01234567") != n->len) {
		sp_cf_error(cx, n, "invalid mode '%s' (expected octal permissions like \"0660\")",
			    sp_show(show, sizeof(show), n->str, n->len));
		return;
	}
	mode_t m = 0;
	for (const char *p = n->str; *p; p++)
		m = (mode_t)(m * 8 + (mode_t)(*p - '0'));
	if (m > 0777) {
		sp_cf_error(cx, n, "invalid mode '%s' (only permission bits, at most 0777)",
			    sp_show(show, sizeof(show), n->str, n->len));
		return;
	}
	*out = m;
}

static void control(struct sp_cf_ctx *cx, const struct sp_ynode *map)
{
	static const char *const keys[] = { "socket", "mode", NULL };
	enum { SOCKET, MODE, N };
	const struct sp_ynode *v[N];
	if (!sp_cf_fields(cx, map, "'control'", keys, v))
		return;
	if (v[SOCKET])
		cx->cfg->control.pos = v[SOCKET]->pos;
	if (v[SOCKET] && sp_cf_path(cx, v[SOCKET], "socket", &cx->cfg->control.socket) &&
	    v[SOCKET]->len >= 108)
		sp_cf_error(cx, v[SOCKET], "the control socket path is longer than 107 bytes");
	mode(cx, v[MODE], &cx->cfg->control.mode);
}

static void logging(struct sp_cf_ctx *cx, const struct sp_ynode *map)
{
	static const char *const keys[] = { "level", "target", "access_log", NULL };
	static const char *const levels[] = { "error", "warn", "info", "debug", NULL };
	static const int level_of[] = { SP_LOG_ERR, SP_LOG_WARN, SP_LOG_INFO, SP_LOG_DEBUG };
	static const char *const targets[] = { "auto", "stderr", "journal", NULL };
	enum { LEVEL, TARGET, ACCESS, N };
	const struct sp_ynode *v[N];
	int i;
	if (!sp_cf_fields(cx, map, "'log'", keys, v))
		return;
	if (v[LEVEL] && sp_cf_enum(cx, v[LEVEL], "level", levels, &i))
		cx->cfg->log.level = level_of[i];
	if (v[TARGET] && sp_cf_enum(cx, v[TARGET], "target", targets, &i))
		cx->cfg->log.target = (enum sp_log_target)i;
	sp_cf_bool(cx, v[ACCESS], "access_log", &cx->cfg->log.access_log);
}

static void limits(struct sp_cf_ctx *cx, const struct sp_ynode *map)
{
	static const char *const keys[] = { "max_connections", "drain_timeout", "per_source",
					    NULL };
	enum { MAXCONN, DRAIN, PER_SOURCE, N };
	const struct sp_ynode *v[N];
	if (!sp_cf_fields(cx, map, "'limits'", keys, v))
		return;
	sp_cf_uint(cx, v[MAXCONN], "max_connections", 1, 1u << 24,
		   &cx->cfg->limits.max_connections);
	sp_cf_duration(cx, v[DRAIN], "drain_timeout", 0, &cx->cfg->limits.drain_timeout_ms);
	sp_cf_uint(cx, v[PER_SOURCE], "per_source", 0, 65535, &cx->cfg->limits.per_source);
}

static void process(struct sp_cf_ctx *cx, const struct sp_ynode *map)
{
	static const char *const keys[] = { "user", "group", NULL };
	enum { USER, GROUP, N };
	const struct sp_ynode *v[N];
	if (!sp_cf_fields(cx, map, "'process'", keys, v))
		return;
	if (map)
		cx->cfg->process.pos = map->pos;
	sp_cf_account(cx, v[USER], "user", &cx->cfg->process.user);
	sp_cf_account(cx, v[GROUP], "group", &cx->cfg->process.group);
}

void sp_cf_globals(struct sp_cf_ctx *cx, const struct sp_ynode *root,
		   const struct sp_ynode *const top[SP_TOP_N])
{
	defaults(cx, cx->cfg);
	version(cx, root, top[SP_TOP_VERSION]);
	engine(cx, top[SP_TOP_ENGINE]);
	control(cx, top[SP_TOP_CONTROL]);
	logging(cx, top[SP_TOP_LOG]);
	limits(cx, top[SP_TOP_LIMITS]);
	process(cx, top[SP_TOP_PROCESS]);
}
