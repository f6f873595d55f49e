/* SPDX-License-Identifier: MIT */
/*
 * stages.c - one pipeline stage: `- NAME: {options}`. Every stage of the schema is fully
 * validated here, whether or not its module exists yet in src/pipeline; the daemon, not
 * the parser, refuses stages it cannot run.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/schema.h"

/* In the order of enum sp_stage_kind. */
static const char *const stage_names[] = { "acl",  "rate_limit", "echo",    "proxy",
					   "files", "exec",	  "udp_proxy", "metrics",
					   "status",    NULL };

const char *sp_stage_name(enum sp_stage_kind kind)
{
	return (unsigned)kind < sizeof(stage_names) / sizeof(stage_names[0]) - 1
		       ? stage_names[kind]
		       : "unknown";
}

bool sp_stage_is_handler(enum sp_stage_kind kind)
{
	return kind != SP_STAGE_ACL && kind != SP_STAGE_RATE_LIMIT;
}

/*
 * Defaults of stage options:
 *   acl:        allow and deny empty (at least one must be given)
 *   rate_limit: burst max(1, per_source), max_sources 65536
 *   proxy:      idle_timeout 300s, send_proxy_protocol off, notsent_lowat 32KiB
 *   files:      index index.html, keepalive_timeout 60s, autoindex false, no
 *               cache_control, dotfiles ignore, max_header_size 8KiB, max_headers 100,
 *               header_timeout 10s, send_timeout 60s, file_cache 1024 (per shard),
 *               file_cache_valid 1s, splice auto, notsent_lowat 32KiB,
 *               allow_system_root false
 *   exec:       max_instances 64, user unset (the daemon's), timeout 0 (none), no env,
 *               stdio socket, group unset (the user's), working_dir /, queue 0 (refuse),
 *               queue_timeout 10s, kill_grace 5s, limits unset
 *   udp_proxy:  session_timeout 30s
 *   echo, metrics, status: no options
 */

static void cidrs(struct sp_cf_ctx *cx, const struct sp_ynode *seq, const char *key,
		  struct sp_conf_cidr **out, size_t *n_out)
{
	if (!seq || !sp_cf_seq(cx, seq, key))
		return;
	struct sp_conf_cidr *v = sp_cf_alloc(cx, seq->n, sizeof(*v));
	if (!v)
		return;
	for (size_t i = 0; i < seq->n; i++) {
		const struct sp_ynode *n = seq->kids[i];
		char *s = NULL;
		if (!sp_cf_str(cx, n, key, &s))
			continue;
		const char *why = "";
		int ret = sp_cf_parse_cidr(s, &v[i], &why);
		if (!ret)
			continue;
		char show[80];
		sp_show(show, sizeof(show), n->str, n->len);
		if (ret == -ERANGE) {
			char net[INET6_ADDRSTRLEN];
			inet_ntop(v[i].family, v[i].addr, net, sizeof(net));
			sp_cf_error(cx, n, "invalid CIDR '%s' in '%s': %s (did you mean '%s/%u'?)",
				    show, key, why, net, v[i].prefix);
		} else {
			sp_cf_error(cx, n, "invalid CIDR '%s' in '%s': %s", show, key, why);
		}
	}
	*out = v;
	*n_out = seq->n;
}

static void acl(struct sp_cf_ctx *cx, const struct sp_ynode *opts, const struct sp_ynode *at,
		struct sp_conf_acl *a)
{
	static const char *const keys[] = { "allow", "deny", NULL };
	enum { ALLOW, DENY, N };
	const struct sp_ynode *v[N];
	if (!sp_cf_fields(cx, opts, "'acl'", keys, v))
		return;
	cidrs(cx, v[ALLOW], "allow", &a->allow, &a->n_allow);
	cidrs(cx, v[DENY], "deny", &a->deny, &a->n_deny);
	if (!v[ALLOW] && !v[DENY])
		sp_cf_error(cx, at, "'acl' needs 'allow', 'deny' or both");
}

static void rate_limit(struct sp_cf_ctx *cx, const struct sp_ynode *opts,
		       const struct sp_ynode *at, struct sp_conf_rate_limit *r)
{
	static const char *const keys[] = { "per_source", "burst", "max_sources", NULL };
	enum { PER_SOURCE, BURST, MAX_SOURCES, N };
	const struct sp_ynode *v[N];
	r->max_sources = 65536;
	if (!sp_cf_fields(cx, opts, "'rate_limit'", keys, v))
		return;
	if (sp_cf_require(cx, at, v[PER_SOURCE], "per_source", "'rate_limit'")) {
		const struct sp_ynode *n = v[PER_SOURCE];
		char show[64];
		if (n->kind != SP_YSCALAR || sp_cf_parse_rate(n->str, &r->per_source) < 0)
			sp_cf_error(cx, n, "invalid rate '%s' for 'per_source' (expected COUNT/s, "
					   "COUNT/m or COUNT/h, like 100/s)",
				    n->kind == SP_YSCALAR ? sp_show(show, sizeof(show), n->str, n->len)
							  : "...");
	}
	r->burst = r->per_source >= 1 ? (unsigned)r->per_source : 1;
	sp_cf_uint(cx, v[BURST], "burst", 1, 1000000000, &r->burst);
	sp_cf_uint(cx, v[MAX_SOURCES], "max_sources", 1, 1u << 24, &r->max_sources);
}

static struct sp_conf_upstream *upstream_ref(struct sp_cf_ctx *cx, const struct sp_ynode *at,
					     const struct sp_ynode *n, const char *stage,
					     const struct sp_cf_names *upstreams)
{
	if (!sp_cf_require(cx, at, n, "upstream", stage))
		return NULL;
	return sp_cf_names_ref(cx, upstreams, n, "upstream", "upstream");
}

/* A size between min and max bytes ("8KiB"); *out untouched when n is absent. */
static void size_opt(struct sp_cf_ctx *cx, const struct sp_ynode *n, const char *key,
		     uint64_t min, uint64_t max, unsigned *out)
{
	char *s = NULL;
	uint64_t v;
	if (!n || !sp_cf_str(cx, n, key, &s))
		return;
	if (sp_parse_size(s, &v) < 0 || v < min || v > max) {
		char show[40];
		sp_cf_error(cx, n, "invalid size '%s' for '%s' (%lluKiB to %lluKiB, like 8KiB)",
			    sp_show(show, sizeof(show), n->str, n->len), key,
			    (unsigned long long)(min >> 10), (unsigned long long)(max >> 10));
		return;
	}
	*out = (unsigned)v;
}

/* notsent_lowat of proxy and files: TCP_NOTSENT_LOWAT on the sockets a large transfer
 * goes into (relay.h, files_body.c); 0 leaves the kernel's default. */
#define NOTSENT_LOWAT_DEFAULT (32 * 1024)
static void notsent_lowat_opt(struct sp_cf_ctx *cx, const struct sp_ynode *n, unsigned *out)
{
	size_opt(cx, n, "notsent_lowat", 0, 64 << 20, out);
}

static void proxy(struct sp_cf_ctx *cx, const struct sp_ynode *opts, const struct sp_ynode *at,
		  struct sp_conf_proxy *p, const struct sp_cf_names *upstreams)
{
	static const char *const keys[] = { "upstream", "idle_timeout", "send_proxy_protocol",
					    "notsent_lowat", NULL };
	static const char *const versions[] = { "off", "v1", "v2", NULL };
	enum { UPSTREAM, IDLE, SEND_PP, NOTSENT_LOWAT, N };
	const struct sp_ynode *v[N];
	int i;
	p->idle_timeout_ms = 300000;
	p->send_proxy_protocol = SP_PP_OFF;
	p->notsent_lowat = NOTSENT_LOWAT_DEFAULT;
	if (!sp_cf_fields(cx, opts, "'proxy'", keys, v))
		return;
	p->upstream = upstream_ref(cx, at, v[UPSTREAM], "'proxy'", upstreams);
	sp_cf_duration(cx, v[IDLE], "idle_timeout", 1, &p->idle_timeout_ms);
	if (v[SEND_PP] && sp_cf_enum(cx, v[SEND_PP], "send_proxy_protocol", versions, &i))
		p->send_proxy_protocol = (enum sp_proxy_protocol)i;
	notsent_lowat_opt(cx, v[NOTSENT_LOWAT], &p->notsent_lowat);
}

/* A header value we send as is: printable ASCII and spaces, no CR/LF (header injection). */
static bool header_value_ok(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
			return false;
	return true;
}

static void files(struct sp_cf_ctx *cx, const struct sp_ynode *opts, const struct sp_ynode *at,
		  struct sp_conf_files *f)
{
	static const char *const keys[] = { "root",	       "index",		"keepalive_timeout",
					    "autoindex",       "cache_control", "dotfiles",
					    "max_header_size", "max_headers",	"header_timeout",
					    "send_timeout",    "file_cache",	"file_cache_valid",
					    "splice",	       "notsent_lowat", "allow_system_root",
					    NULL };
	static const char *const dotfiles[] = { "ignore", "allow", "deny", NULL };
	static const char *const splice[] = { "auto", "on", "off", NULL };
	enum { ROOT, INDEX, KEEPALIVE, AUTOINDEX, CACHE_CONTROL, DOTFILES, MAX_HEADER_SIZE,
	       MAX_HEADERS, HEADER_TIMEOUT, SEND_TIMEOUT, FILE_CACHE, FILE_CACHE_VALID, SPLICE,
	       NOTSENT_LOWAT, ALLOW_SYSTEM_ROOT, N };
	const struct sp_ynode *v[N];
	int i;
	f->keepalive_timeout_ms = 60000;
	f->max_header_size = 8192;
	f->max_headers = 100;
	f->header_timeout_ms = 10000;
	f->send_timeout_ms = 60000;
	f->file_cache = 1024;
	f->file_cache_valid_ms = 1000;
	f->notsent_lowat = NOTSENT_LOWAT_DEFAULT;
	if (!(f->index = sp_cf_strdup(cx, "index.html")))
		return;
	if (!sp_cf_fields(cx, opts, "'files'", keys, v))
		return;
	if (sp_cf_require(cx, at, v[ROOT], "root", "'files'"))
		sp_cf_path(cx, v[ROOT], "root", &f->root);
	if (sp_cf_str(cx, v[INDEX], "index", &f->index) && v[INDEX] &&
	    (strchr(f->index, '/') || !strcmp(f->index, ".") || !strcmp(f->index, "..")))
		sp_cf_error(cx, v[INDEX], "'index' is a file name, without '/'");
	sp_cf_duration(cx, v[KEEPALIVE], "keepalive_timeout", 1, &f->keepalive_timeout_ms);
	sp_cf_bool(cx, v[AUTOINDEX], "autoindex", &f->autoindex);
	if (sp_cf_str(cx, v[CACHE_CONTROL], "cache_control", &f->cache_control) &&
	    f->cache_control && !header_value_ok(f->cache_control))
		sp_cf_error(cx, v[CACHE_CONTROL], "'cache_control' must be printable ASCII on one line");
	if (v[DOTFILES] && sp_cf_enum(cx, v[DOTFILES], "dotfiles", dotfiles, &i))
		f->dotfiles = (enum sp_dotfiles)i;
	size_opt(cx, v[MAX_HEADER_SIZE], "max_header_size", 1024, 1024 * 1024, &f->max_header_size);
	sp_cf_uint(cx, v[MAX_HEADERS], "max_headers", 1, 10000, &f->max_headers);
	sp_cf_duration(cx, v[HEADER_TIMEOUT], "header_timeout", 1, &f->header_timeout_ms);
	sp_cf_duration(cx, v[SEND_TIMEOUT], "send_timeout", 1, &f->send_timeout_ms);
	sp_cf_uint(cx, v[FILE_CACHE], "file_cache", 0, 1u << 20, &f->file_cache);
	sp_cf_duration(cx, v[FILE_CACHE_VALID], "file_cache_valid", 0, &f->file_cache_valid_ms);
	if (v[SPLICE] && sp_cf_enum(cx, v[SPLICE], "splice", splice, &i))
		f->splice = (enum sp_files_splice)i;
	notsent_lowat_opt(cx, v[NOTSENT_LOWAT], &f->notsent_lowat);
	sp_cf_bool(cx, v[ALLOW_SYSTEM_ROOT], "allow_system_root", &f->allow_system_root);
}

static bool env_name(const char *s)
{
	if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || *s == '_'))
		return false;
	size_t len = strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_");
	return s[len] == '\0';
}

static void exec_env(struct sp_cf_ctx *cx, const struct sp_ynode *map, struct sp_conf_exec *e)
{
	char show[64], found[80];
	if (map->kind != SP_YMAP) {
		sp_cf_type_error(cx, map, "env", "a mapping of NAME: value");
		return;
	}
	e->env = sp_cf_alloc(cx, map->n + 1, sizeof(*e->env));
	struct sp_cf_names seen = { calloc(map->n + 1, sizeof(*seen.v)), map->n };
	if (!e->env || !seen.v) {
		free(seen.v);
		return;
	}
	for (size_t i = 0; i < map->n; i++) {
		const struct sp_ynode *k = map->kids[2 * i], *val = map->kids[2 * i + 1];
		if (k->kind != SP_YSCALAR || !env_name(k->str)) {
			sp_cf_error(cx, k, "invalid environment variable name '%s' (letters, digits "
					   "and '_', not starting with a digit)",
				    k->kind == SP_YSCALAR ? sp_show(show, sizeof(show), k->str, k->len)
							  : "...");
			continue;
		}
		seen.v[i] = (struct sp_cf_named){ k->str, k, NULL };
		/* an empty value is fine here, unlike in most string keys */
		enum sp_cf_type t = sp_cf_type(val);
		if (t == SP_CF_NULL || t == SP_CF_MAP || t == SP_CF_SEQ) {
			sp_cf_error(cx, val, "expected a string for environment variable '%s', found %s",
				    k->str, sp_cf_found(val, found, sizeof(found)));
			continue;
		}
		char *kv = sp_cf_alloc(cx, 1, k->len + val->len + 2);
		if (!kv)
			break;
		memcpy(kv, k->str, k->len);
		kv[k->len] = '=';
		memcpy(kv + k->len + 1, val->str, val->len + 1);
		e->env[e->n_env++] = kv;
	}
	sp_cf_names_sort(cx, &seen, "environment variable");
	sp_cf_names_free(&seen);
}

/* exec's `limits: {nofile: 1024, as: 512MiB, cpu: 10s}` */
static void exec_limits(struct sp_cf_ctx *cx, const struct sp_ynode *map, struct sp_conf_exec *e)
{
	static const char *const keys[] = { "nofile", "as", "cpu", NULL };
	enum { NOFILE, AS, CPU, N };
	const struct sp_ynode *v[N];
	unsigned nofile = 0;
	uint64_t cpu_ms = 0;
	char *as;
	if (!sp_cf_fields(cx, map, "'limits'", keys, v))
		return;
	if (sp_cf_uint(cx, v[NOFILE], "nofile", 1, 1u << 30, &nofile))
		e->limits.nofile = nofile;
	if (v[AS] && sp_cf_str(cx, v[AS], "as", &as) &&
	    (sp_parse_size(as, &e->limits.as) < 0 || e->limits.as < 1u << 20)) {
		char show[40];
		sp_cf_error(cx, v[AS], "invalid size '%s' for 'as' (at least 1MiB, like 512MiB)",
			    sp_show(show, sizeof(show), v[AS]->str, v[AS]->len));
	}
	if (sp_cf_duration(cx, v[CPU], "cpu", 1000, &cpu_ms))
		e->limits.cpu = (cpu_ms + 999) / 1000; /* RLIMIT_CPU counts whole seconds */
}

static void exec(struct sp_cf_ctx *cx, const struct sp_ynode *opts, const struct sp_ynode *at,
		 struct sp_conf_exec *e)
{
	static const char *const keys[] = { "command", "max_instances", "user", "timeout",
					    "env",     "stdio",		"group", "working_dir",
					    "queue",   "queue_timeout", "kill_grace", "limits",
					    NULL };
	static const char *const stdios[] = { "socket", "pipe", NULL };
	enum { COMMAND, MAX, USER, TIMEOUT, ENV, STDIO, GROUP, WORKDIR, QUEUE, QUEUE_TIMEOUT,
	       GRACE, LIMITS, N };
	const struct sp_ynode *v[N];
	int i;
	e->max_instances = 64;
	e->stdio = SP_EXEC_SOCKET;
	e->queue_timeout_ms = 10000;
	e->kill_grace_ms = 5000;
	if (!(e->working_dir = sp_cf_strdup(cx, "/")))
		return;
	if (!sp_cf_fields(cx, opts, "'exec'", keys, v))
		return;
	if (sp_cf_require(cx, at, v[COMMAND], "command", "'exec'") &&
	    sp_cf_strlist(cx, v[COMMAND], "command", &e->argv, &e->argc)) {
		if (!e->argc)
			sp_cf_error(cx, v[COMMAND], "'command' needs at least the program to run");
		else if (e->argv[0][0] != '/')
			sp_cf_error(cx, v[COMMAND]->kids[0],
				    "the program of 'command' must be an absolute path (no PATH "
				    "search)");
	}
	sp_cf_uint(cx, v[MAX], "max_instances", 1, 65536, &e->max_instances);
	sp_cf_account(cx, v[USER], "user", &e->user);
	sp_cf_duration(cx, v[TIMEOUT], "timeout", 0, &e->timeout_ms);
	if (v[ENV] && sp_cf_type(v[ENV]) != SP_CF_NULL)
		exec_env(cx, v[ENV], e);
	if (!e->env)
		e->env = sp_cf_alloc(cx, 1, sizeof(*e->env)); /* always NULL-terminated */
	if (v[STDIO] && sp_cf_enum(cx, v[STDIO], "stdio", stdios, &i))
		e->stdio = (enum sp_exec_stdio)i;
	sp_cf_account(cx, v[GROUP], "group", &e->group);
	sp_cf_path(cx, v[WORKDIR], "working_dir", &e->working_dir);
	sp_cf_uint(cx, v[QUEUE], "queue", 0, 65536, &e->queue);
	sp_cf_duration(cx, v[QUEUE_TIMEOUT], "queue_timeout", 1, &e->queue_timeout_ms);
	sp_cf_duration(cx, v[GRACE], "kill_grace", 0, &e->kill_grace_ms);
	if (v[LIMITS] && sp_cf_type(v[LIMITS]) != SP_CF_NULL)
		exec_limits(cx, v[LIMITS], e);
}

static void udp_proxy(struct sp_cf_ctx *cx, const struct sp_ynode *opts, const struct sp_ynode *at,
		      struct sp_conf_udp_proxy *u, const struct sp_cf_names *upstreams)
{
	static const char *const keys[] = { "upstream", "session_timeout", NULL };
	enum { UPSTREAM, SESSION, N };
	const struct sp_ynode *v[N];
	u->session_timeout_ms = 30000;
	if (!sp_cf_fields(cx, opts, "'udp_proxy'", keys, v))
		return;
	u->upstream = upstream_ref(cx, at, v[UPSTREAM], "'udp_proxy'", upstreams);
	sp_cf_duration(cx, v[SESSION], "session_timeout", 1, &u->session_timeout_ms);
	if (!u->upstream)
		return;
	if (u->upstream->tls)
		sp_cf_error(cx, v[UPSTREAM], "upstream '%s' has 'tls', which udp_proxy cannot use",
			    u->upstream->name);
	for (size_t i = 0; i < u->upstream->n_servers; i++) {
		if (u->upstream->servers[i].address.kind == SP_ADDR_UNIX) {
			sp_cf_error(cx, v[UPSTREAM], "upstream '%s' has a unix socket server; "
						     "udp_proxy needs host:port servers",
				    u->upstream->name);
			break;
		}
	}
}

static void no_options(struct sp_cf_ctx *cx, const struct sp_ynode *opts, const char *what)
{
	static const char *const none[] = { NULL };
	const struct sp_ynode *v[1];
	sp_cf_fields(cx, opts, what, none, v);
}

bool sp_cf_stage(struct sp_cf_ctx *cx, const struct sp_ynode *item,
		 const struct sp_cf_names *upstreams, struct sp_conf_stage *st)
{
	const struct sp_ynode *name, *opts = NULL;
	char show[64];
	st->pos = item->pos;
	if (item->kind == SP_YSCALAR && sp_cf_type(item) != SP_CF_NULL) {
		name = item; /* `- echo` */
	} else if (item->kind == SP_YMAP && item->n == 1 && item->kids[0]->kind == SP_YSCALAR) {
		name = item->kids[0];
		opts = item->kids[1];
	} else if (item->kind == SP_YMAP && item->n > 1) {
		sp_cf_error(cx, item, "a stage is one key, its name, with its options under it "
				      "(- proxy: {upstream: app}); this one has %zu keys (are the "
				      "options indented under the stage name?)",
			    item->n);
		return false;
	} else {
		sp_cf_type_error(cx, item, "pipeline", "a stage (- NAME: {options})");
		return false;
	}
	int kind = 0;
	while (stage_names[kind] && strcmp(stage_names[kind], name->str))
		kind++;
	if (!stage_names[kind]) {
		const char *hint = sp_suggest(name->str, stage_names);
		sp_show(show, sizeof(show), name->str, name->len);
		if (hint)
			sp_cf_error(cx, name, "unknown stage '%s' (did you mean '%s'?)", show, hint);
		else
			sp_cf_error(cx, name, "unknown stage '%s' (filters: acl, rate_limit; handlers: "
					      "echo, proxy, files, exec, udp_proxy, metrics, status)",
				    show);
		return false;
	}
	st->kind = (enum sp_stage_kind)kind;
	st->pos = name->pos;
	char what[24];
	snprintf(what, sizeof(what), "'%s'", stage_names[kind]);
	/* where "missing required key" points: the options, or the name when there are none */
	const struct sp_ynode *at = opts && opts->kind == SP_YMAP ? opts : name;
	switch (st->kind) {
	case SP_STAGE_ACL:
		acl(cx, opts, at, &st->acl);
		break;
	case SP_STAGE_RATE_LIMIT:
		rate_limit(cx, opts, at, &st->rate_limit);
		break;
	case SP_STAGE_PROXY:
		proxy(cx, opts, at, &st->proxy, upstreams);
		break;
	case SP_STAGE_FILES:
		files(cx, opts, at, &st->files);
		break;
	case SP_STAGE_EXEC:
		exec(cx, opts, at, &st->exec);
		break;
	case SP_STAGE_UDP_PROXY:
		udp_proxy(cx, opts, at, &st->udp_proxy, upstreams);
		break;
	case SP_STAGE_ECHO:
	case SP_STAGE_METRICS:
	case SP_STAGE_STATUS:
		no_options(cx, opts, what);
		break;
	}
	return true;
}
