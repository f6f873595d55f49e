/* SPDX-License-Identifier: MIT */
/*
 * sec_listeners.c - `listeners:`: what spargiod binds, how (tcp or udp, TLS, PROXY
 * protocol) and which route a connection runs. Checks that the route's handler fits the
 * protocol and that no two listeners bind the same address.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/schema.h"

/*
 * Defaults: protocol tcp, backlog 1024, proxy_protocol false, no tls, max_connections
 * and per_source unset (limits.max_connections and limits.per_source apply).
 * tls: min_version "1.2", no alpn; cert and key are required.
 */

static void tls_server(struct sp_cf_ctx *cx, const struct sp_ynode *map,
		       struct sp_conf_listener *l)
{
	static const char *const keys[] = { "cert", "key", "min_version", "alpn", NULL };
	enum { CERT, KEY, MIN, ALPN, N };
	const struct sp_ynode *v[N];
	struct sp_conf_tls_server *t = sp_cf_alloc(cx, 1, sizeof(*t));
	if (!t || !sp_cf_fields(cx, map, "'tls'", keys, v))
		return;
	t->pos = map->pos;
	t->min_version = 0x0303;
	if (sp_cf_require(cx, map, v[CERT], "cert", "'tls'"))
		sp_cf_path(cx, v[CERT], "cert", &t->cert);
	if (sp_cf_require(cx, map, v[KEY], "key", "'tls'"))
		sp_cf_path(cx, v[KEY], "key", &t->key);
	if (v[MIN]) {
		/* "1.2" quoted or not: a float to YAML, a version to us */
		const struct sp_ynode *n = v[MIN];
		if (n->kind == SP_YSCALAR && !strcmp(n->str, "1.2"))
			t->min_version = 0x0303;
		else if (n->kind == SP_YSCALAR && !strcmp(n->str, "1.3"))
			t->min_version = 0x0304;
		else
			sp_cf_type_error(cx, n, "min_version", "\"1.2\" or \"1.3\"");
	}
	if (v[ALPN] && sp_cf_strlist(cx, v[ALPN], "alpn", &t->alpn, &t->n_alpn)) {
		for (size_t i = 0; i < t->n_alpn; i++)
			if (strlen(t->alpn[i]) > 255)
				sp_cf_error(cx, v[ALPN]->kids[i], "an ALPN protocol name is at most "
								  "255 bytes");
	}
	l->tls = t;
}

static void check_fit(struct sp_cf_ctx *cx, const struct sp_ynode *at,
		      const struct sp_conf_listener *l)
{
	const struct sp_conf_route *r = l->route;
	if (!r->n_stages || !sp_stage_is_handler(r->stages[r->n_stages - 1].kind))
		return; /* the pipeline is wrong already, and reported */
	enum sp_stage_kind h = r->stages[r->n_stages - 1].kind;
	if (l->protocol == SP_PROTO_UDP && h != SP_STAGE_UDP_PROXY)
		sp_cf_error(cx, at, "listener '%s' is udp, but route '%s' ends in '%s': a udp "
				    "listener needs a route whose handler is udp_proxy",
			    l->name ? l->name : "?", r->name, sp_stage_name(h));
	else if (l->protocol == SP_PROTO_TCP && h == SP_STAGE_UDP_PROXY)
		sp_cf_error(cx, at, "listener '%s' is tcp, but route '%s' ends in 'udp_proxy', "
				    "which serves udp listeners only",
			    l->name ? l->name : "?", r->name);
}

/* Returns the node of the name, for duplicate checks; *bind_at gets that of the bind. */
static const struct sp_ynode *listener(struct sp_cf_ctx *cx, const struct sp_ynode *item,
				       struct sp_conf_listener *l, const struct sp_cf_names *routes,
				       const struct sp_ynode **bind_at)
{
	static const char *const keys[] = { "name",	      "bind", "protocol", "backlog",
					    "proxy_protocol", "tls",  "route",	  "max_connections",
					    "per_source",     NULL };
	static const char *const protocols[] = { "tcp", "udp", NULL };
	enum { NAME, BIND, PROTOCOL, BACKLOG, PROXY_PROTOCOL, TLS, ROUTE, MAXCONN, PER_SOURCE, N };
	const struct sp_ynode *v[N];
	int p;
	l->pos = item->pos;
	l->protocol = SP_PROTO_TCP;
	l->backlog = 1024;
	*bind_at = NULL;
	if (!sp_cf_fields(cx, item, "a listener", keys, v))
		return NULL;
	if (sp_cf_require(cx, item, v[NAME], "name", "a listener"))
		sp_cf_name(cx, v[NAME], "name", &l->name);
	if (v[PROTOCOL] && sp_cf_enum(cx, v[PROTOCOL], "protocol", protocols, &p))
		l->protocol = (enum sp_listen_proto)p;
	bool udp = l->protocol == SP_PROTO_UDP;
	if (sp_cf_require(cx, item, v[BIND], "bind", "a listener") &&
	    sp_cf_addr(cx, v[BIND], "bind", &l->bind)) {
		*bind_at = v[BIND];
		if (udp && l->bind.kind == SP_ADDR_UNIX)
			sp_cf_error(cx, v[BIND], "a udp listener binds host:port or systemd:NAME, "
						 "not a unix socket");
	}
	sp_cf_uint(cx, v[BACKLOG], "backlog", 1, 65535, &l->backlog);
	sp_cf_uint(cx, v[MAXCONN], "max_connections", 1, 1u << 24, &l->max_connections);
	if (v[PER_SOURCE])
		l->per_source_set = sp_cf_uint(cx, v[PER_SOURCE], "per_source", 0, 65535,
					       &l->per_source);
	if (sp_cf_bool(cx, v[PROXY_PROTOCOL], "proxy_protocol", &l->proxy_protocol) &&
	    l->proxy_protocol && udp)
		sp_cf_error(cx, v[PROXY_PROTOCOL], "'proxy_protocol' is for tcp listeners only");
	if (v[TLS] && udp)
		sp_cf_error(cx, v[TLS], "'tls' is for tcp listeners only (DTLS is not supported)");
	else if (v[TLS])
		tls_server(cx, v[TLS], l);
	if (sp_cf_require(cx, item, v[ROUTE], "route", "a listener")) {
		l->route = sp_cf_names_ref(cx, routes, v[ROUTE], "route", "route");
		if (l->route)
			check_fit(cx, v[ROUTE], l);
	}
	return v[NAME];
}

/* "tcp 127.0.0.1:80" for binds that must not repeat; NULL for those that may: port 0
 * (each gets its own port) and systemd sockets (several may share a name). */
static char *bind_key(const struct sp_conf_listener *l)
{
	char host[INET6_ADDRSTRLEN], *key = NULL;
	const char *proto = l->protocol == SP_PROTO_UDP ? "udp" : "tcp";
	int ret = -1;
	if (!l->bind.text || l->bind.kind == SP_ADDR_SYSTEMD)
		return NULL;
	if (l->bind.kind == SP_ADDR_UNIX)
		return asprintf(&key, "%s %s", proto, l->bind.text) < 0 ? NULL : key;
	if (l->bind.sa.ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)&l->bind.sa;
		if (!in->sin_port || !inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host)))
			return NULL;
		ret = asprintf(&key, "%s %s:%u", proto, host, ntohs(in->sin_port));
	} else {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&l->bind.sa;
		if (!in6->sin6_port || !inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host)))
			return NULL;
		ret = asprintf(&key, "%s [%s]:%u", proto, host, ntohs(in6->sin6_port));
	}
	return ret < 0 ? NULL : key;
}

static void unique_binds(struct sp_cf_ctx *cx, const struct sp_ynode *const *bind_at)
{
	struct sp_config *c = cx->cfg;
	size_t n = c->n_listeners;
	struct sp_cf_names binds = { calloc(n + 1, sizeof(*binds.v)), n };
	char **keys = calloc(n + 1, sizeof(*keys)); /* sorting reorders binds.v: free these */
	if (binds.v && keys) {
		for (size_t i = 0; i < n; i++) {
			keys[i] = bind_at[i] ? bind_key(&c->listeners[i]) : NULL;
			binds.v[i] = (struct sp_cf_named){ keys[i], bind_at[i], NULL };
		}
		sp_cf_names_sort(cx, &binds, "bind");
		for (size_t i = 0; i < n; i++)
			free(keys[i]);
	}
	free(keys);
	sp_cf_names_free(&binds);
}

void sp_cf_listeners(struct sp_cf_ctx *cx, const struct sp_ynode *seq,
		     const struct sp_cf_names *routes)
{
	if (!seq || sp_cf_type(seq) == SP_CF_NULL || !sp_cf_seq(cx, seq, "listeners"))
		return;
	struct sp_config *c = cx->cfg;
	struct sp_cf_names names = { calloc(seq->n + 1, sizeof(*names.v)), seq->n };
	const struct sp_ynode **bind_at = calloc(seq->n + 1, sizeof(*bind_at));
	c->listeners = sp_cf_alloc(cx, seq->n, sizeof(*c->listeners));
	if (!c->listeners || !names.v || !bind_at) {
		cx->oom = true;
		sp_cf_error(cx, seq, "out of memory");
		free(names.v);
		free(bind_at);
		return;
	}
	c->n_listeners = seq->n;
	for (size_t i = 0; i < seq->n; i++) {
		struct sp_conf_listener *l = &c->listeners[i];
		const struct sp_ynode *at = listener(cx, seq->kids[i], l, routes, &bind_at[i]);
		names.v[i] = (struct sp_cf_named){ l->name, at ? at : seq->kids[i], l };
	}
	sp_cf_names_sort(cx, &names, "listener");
	sp_cf_names_free(&names);
	unique_binds(cx, bind_at);
	sp_cf_binds_overlap(cx, bind_at);
	free(bind_at);
}
