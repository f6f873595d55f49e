/* SPDX-License-Identifier: MIT */
/*
 * config.c - loading a config (read, parse, validate, compile into one arena), its
 * reference count and lookups by name. The sections are validated in sec_*.c and
 * stages.c; this file only says in which order and what happens to the result.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/schema.h"

/* Runs the sections in an order that lets references resolve at once: upstreams, then
 * routes (proxy -> upstream), then listeners (listener -> route). Errors come out
 * sorted by position whatever the order here. */
static void sections(struct sp_cf_ctx *cx, const struct sp_ynode *root)
{
	static const char *const keys[] = { [SP_TOP_VERSION] = "version",
					    [SP_TOP_ENGINE] = "engine",
					    [SP_TOP_CONTROL] = "control",
					    [SP_TOP_LOG] = "log",
					    [SP_TOP_LIMITS] = "limits",
					    [SP_TOP_PROCESS] = "process",
					    [SP_TOP_UPSTREAMS] = "upstreams",
					    [SP_TOP_LISTENERS] = "listeners",
					    [SP_TOP_ROUTES] = "routes",
					    [SP_TOP_N] = NULL };
	const struct sp_ynode *top[SP_TOP_N];
	struct sp_cf_names upstreams = { 0 }, routes = { 0 };

	if (root->kind != SP_YMAP) {
		char found[80];
		sp_cf_error(cx, root, "expected a mapping of sections (version, engine, listeners, "
				      "routes...) at the top level, found %s",
			    sp_cf_found(root, found, sizeof(found)));
		return;
	}
	sp_cf_fields(cx, root, "the top level", keys, top);
	sp_cf_globals(cx, root, top);
	sp_cf_upstreams(cx, top[SP_TOP_UPSTREAMS], &upstreams);
	sp_cf_routes(cx, top[SP_TOP_ROUTES], &upstreams, &routes);
	sp_cf_listeners(cx, top[SP_TOP_LISTENERS], &routes);
	sp_cf_names_free(&upstreams);
	sp_cf_names_free(&routes);
}

static int compile(const char *name, const char *buf, size_t len, struct sp_conf_report *rep,
		   struct sp_config **out)
{
	struct sp_arena *tree = sp_arena_new(), *mem = sp_arena_new();
	struct sp_config *cfg = mem ? sp_arena_alloc(mem, 1, sizeof(*cfg)) : NULL;
	if (!tree || !cfg || !(cfg->path = sp_arena_strdup(mem, name))) {
		sp_report(rep, (struct sp_conf_pos){ 0, 0 }, "out of memory");
		sp_arena_free(tree);
		sp_arena_free(mem);
		return -ENOMEM;
	}
	atomic_init(&cfg->refs, 1);
	cfg->arena = mem;

	struct sp_cf_ctx cx = { .rep = rep, .arena = mem, .cfg = cfg };
	const struct sp_ynode *root = sp_yaml_parse(buf, len, tree, rep);
	if (root)
		sections(&cx, root);
	sp_arena_free(tree); /* nothing in the config points into the tree */

	if (!root || sp_report_count(rep)) {
		sp_arena_free(mem);
		return cx.oom ? -ENOMEM : -EINVAL;
	}
	*out = cfg;
	return 0;
}

int sp_config_load_buffer(const char *name, const char *buf, size_t len,
			  struct sp_config **out, struct sp_conf_errors *errs)
{
	struct sp_conf_report rep;
	*out = NULL;
	if (errs)
		memset(errs, 0, sizeof(*errs));
	sp_report_init(&rep, name);
	int ret = compile(name, buf, len, &rep, out);
	sp_report_finish(&rep, errs);
	return ret;
}

/* At most SP_YAML_MAX_FILE + 1 bytes: enough to tell a file that is too large, without
 * reading all of one that never ends (a FIFO, /dev/zero). */
static int read_file(const char *path, char **buf, size_t *len, struct sp_conf_report *rep)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		int err = errno;
		sp_report(rep, (struct sp_conf_pos){ 0, 0 }, "cannot open: %s", strerror(err));
		return -err;
	}
	size_t cap = SP_YAML_MAX_FILE + 1, n = 0;
	struct stat st;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size < cap)
		cap = (size_t)st.st_size + 1; /* +1 notices a file that grew meanwhile */
	char *b = malloc(cap);
	if (!b) {
		close(fd);
		sp_report(rep, (struct sp_conf_pos){ 0, 0 }, "out of memory");
		return -ENOMEM;
	}
	while (n < cap) {
		ssize_t r = read(fd, b + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int err = errno;
			sp_report(rep, (struct sp_conf_pos){ 0, 0 }, "cannot read: %s", strerror(err));
			free(b);
			close(fd);
			return -err;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n == cap && cap <= SP_YAML_MAX_FILE) {
			/* it grew: read on, up to the bound */
			char *nb = realloc(b, SP_YAML_MAX_FILE + 1);
			if (!nb)
				break;
			b = nb;
			cap = SP_YAML_MAX_FILE + 1;
		}
	}
	close(fd);
	*buf = b;
	*len = n;
	return 0;
}

int sp_config_load(const char *path, struct sp_config **out, struct sp_conf_errors *errs)
{
	struct sp_conf_report rep;
	char *buf = NULL;
	size_t len = 0;
	*out = NULL;
	if (errs)
		memset(errs, 0, sizeof(*errs));
	sp_report_init(&rep, path);
	int ret = read_file(path, &buf, &len, &rep);
	if (ret == 0)
		ret = compile(path, buf, len, &rep, out); /* reports a file too large */
	free(buf);
	sp_report_finish(&rep, errs);
	return ret;
}

struct sp_config *sp_config_ref(struct sp_config *cfg)
{
	/* relaxed: taking a reference needs one already held, which orders it */
	atomic_fetch_add_explicit(&cfg->refs, 1, memory_order_relaxed);
	return cfg;
}

void sp_config_unref(struct sp_config *cfg)
{
	/* acq_rel: the thread that frees must see every other holder done with it */
	if (cfg && atomic_fetch_sub_explicit(&cfg->refs, 1, memory_order_acq_rel) == 1)
		sp_arena_free(cfg->arena); /* cfg itself lives in its arena */
}

struct sp_conf_route *sp_config_route(const struct sp_config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->n_routes; i++)
		if (cfg->routes[i].name && !strcmp(cfg->routes[i].name, name))
			return &cfg->routes[i];
	return NULL;
}

struct sp_conf_upstream *sp_config_upstream(const struct sp_config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->n_upstreams; i++)
		if (cfg->upstreams[i].name && !strcmp(cfg->upstreams[i].name, name))
			return &cfg->upstreams[i];
	return NULL;
}

struct sp_conf_listener *sp_config_listener(const struct sp_config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->n_listeners; i++)
		if (cfg->listeners[i].name && !strcmp(cfg->listeners[i].name, name))
			return &cfg->listeners[i];
	return NULL;
}
