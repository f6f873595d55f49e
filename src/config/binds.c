/* SPDX-License-Identifier: MIT */
/*
 * binds.c - listener binds that cannot all be bound although they are written
 * differently, found while parsing so that `spargiod -t` says so: a wildcard address
 * beside another address on the same TCP port (0.0.0.0:80 and 127.0.0.1:80; listeners are
 * dual-stack, so [::]:80 takes the IPv4 port too), and unix paths that name one file
 * ("/x/u.sock", "/x/./u.sock", "/x//u.sock"), the control socket's included. Equal
 * binds are sec_listeners.c's; paths that meet through symlinks, safety.c's.
 */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "config/schema.h"

char *sp_cf_path_norm(const char *path, char *out, size_t size)
{
	size_t o = 0;
	const char *p = path;
	if (size < 2)
		return NULL;
	while (*p) {
		while (*p == '/')
			p++;
		size_t seg = strcspn(p, "/");
		if (seg == 0 || (seg == 1 && p[0] == '.')) {
			p += seg;
			continue; /* "//" and "/./" name the same directory */
		}
		if (o + 1 + seg + 1 > size)
			return NULL;
		out[o++] = '/';
		memcpy(out + o, p, seg);
		o += seg;
		p += seg;
	}
	if (o == 0)
		out[o++] = '/';
	out[o] = 0;
	return out;
}

/* What a TCP bind takes: IPv4 (v4-mapped IPv6 included) or IPv6, address, port. */
struct inet_take {
	size_t i;  /* listener index */
	bool v4, any;
	uint8_t a[16];
	uint16_t port;
};

static bool inet_take(const struct sp_conf_listener *l, size_t i, struct inet_take *t)
{
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	static const uint8_t zero[16];
	if (l->protocol != SP_PROTO_TCP || l->bind.kind != SP_ADDR_INET)
		return false;
	memset(t, 0, sizeof(*t));
	t->i = i;
	if (l->bind.sa.ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)&l->bind.sa;
		t->v4 = true;
		t->port = ntohs(in->sin_port);
		memcpy(t->a, &in->sin_addr, 4);
	} else {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&l->bind.sa;
		t->port = ntohs(in6->sin6_port);
		t->v4 = !memcmp(in6->sin6_addr.s6_addr, mapped, 12);
		memcpy(t->a, in6->sin6_addr.s6_addr + (t->v4 ? 12 : 0), t->v4 ? 4 : 16);
	}
	t->any = !memcmp(t->a, zero, t->v4 ? 4 : 16);
	return t->port != 0; /* port 0: each bind gets a port of its own */
}

static int by_port(const void *a, const void *b)
{
	const struct inet_take *x = a, *y = b;
	if (x->port != y->port)
		return (x->port > y->port) - (x->port < y->port);
	return (x->i > y->i) - (x->i < y->i);
}

static bool same_addr(const struct inet_take *x, const struct inet_take *y)
{
	return x->v4 == y->v4 && !memcmp(x->a, y->a, x->v4 ? 4 : 16);
}

/* Report t beside the wildcard w, at whichever of the two is written later. */
static void overlap(struct sp_cf_ctx *cx, const struct sp_ynode *const *bind_at,
		    const struct inet_take *t, const struct inet_take *w)
{
	const struct sp_conf_listener *ls = cx->cfg->listeners;
	const struct inet_take *first = t->i < w->i ? t : w, *later = t->i < w->i ? w : t;
	const struct sp_ynode *at = bind_at[first->i];
	sp_cf_error(cx, bind_at[later->i],
		    "bind '%s' of listener '%s' cannot be bound beside '%s' of listener '%s' "
		    "(at %u:%u): %s takes TCP port %u on every address%s",
		    ls[later->i].bind.text, ls[later->i].name ? ls[later->i].name : "?",
		    ls[first->i].bind.text, ls[first->i].name ? ls[first->i].name : "?",
		    at->pos.line, at->pos.col, ls[w->i].bind.text, (unsigned)w->port,
		    w->v4 ? "" : " (IPv4 too: listeners are dual-stack)");
}

static void inet_overlaps(struct sp_cf_ctx *cx, const struct sp_ynode *const *bind_at)
{
	const struct sp_config *c = cx->cfg;
	struct inet_take *v = calloc(c->n_listeners + 1, sizeof(*v));
	size_t n = 0;
	if (!v) {
		cx->oom = true;
		return;
	}
	for (size_t i = 0; i < c->n_listeners; i++)
		if (bind_at[i] && inet_take(&c->listeners[i], i, &v[n]))
			n++;
	qsort(v, n, sizeof(*v), by_port);
	/* per port: only a wildcard overlaps an address other than its own, so a group
	 * costs one pass whatever its size (equal binds are reported as duplicates) */
	for (size_t s = 0, e; s < n; s = e) {
		const struct inet_take *any4 = NULL, *any6 = NULL;
		for (e = s; e < n && v[e].port == v[s].port; e++) {
			if (v[e].any && v[e].v4 && !any4)
				any4 = &v[e];
			if (v[e].any && !v[e].v4 && !any6)
				any6 = &v[e];
		}
		for (size_t k = s; k < e; k++) {
			const struct inet_take *t = &v[k];
			if (t->v4 && any4 && !same_addr(t, any4))
				overlap(cx, bind_at, t, any4);
			else if (any6 && !same_addr(t, any6))
				overlap(cx, bind_at, t, any6);
		}
	}
	free(v);
}

/* A unix listener on the control socket's path: both would bind one file. */
static void unix_control(struct sp_cf_ctx *cx, const struct sp_ynode *const *bind_at)
{
	const struct sp_config *c = cx->cfg;
	char ctl[sizeof(((struct sockaddr_un *)0)->sun_path) + 1], path[sizeof(ctl)];
	if (!c->control.socket || !sp_cf_path_norm(c->control.socket, ctl, sizeof(ctl)))
		return;
	for (size_t i = 0; i < c->n_listeners; i++) {
		const struct sp_conf_listener *l = &c->listeners[i];
		const struct sockaddr_un *un = (const struct sockaddr_un *)&l->bind.sa;
		if (!bind_at[i] || l->bind.kind != SP_ADDR_UNIX || un->sun_path[0] != '/' ||
		    !sp_cf_path_norm(un->sun_path, path, sizeof(path)) || strcmp(ctl, path))
			continue;
		sp_cf_error(cx, bind_at[i], "listener '%s' binds the control socket's path %s",
			    l->name ? l->name : "?", c->control.socket);
	}
}

void sp_cf_binds_overlap(struct sp_cf_ctx *cx, const struct sp_ynode *const *bind_at)
{
	inet_overlaps(cx, bind_at);
	unix_control(cx, bind_at);
}
