/* SPDX-License-Identifier: MIT */
/*
 * sec_upstreams.c - `upstreams:`: named pools of servers that proxy and udp_proxy stages
 * connect to, with balancing, optional health checks and optional TLS origination.
 */
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "config/schema.h"

/*
 * Defaults:
 *   upstream:     balance round_robin, connect_timeout 2s, retries 1,
 *                 no health_check, no tls
 *   server:       weight 1, backup false ("- 127.0.0.1:80" is short for {address: ...})
 *   health_check: interval 2s, timeout 1s, fall 3, rise 2
 *   tls:          no sni, verify true, ca unset (the system's trust store)
 */

/* Returns the node of the address, for duplicate checks. */
static const struct sp_ynode *server(struct sp_cf_ctx *cx, const struct sp_ynode *item,
				     struct sp_conf_server *s)
{
	static const char *const keys[] = { "address", "weight", "backup", NULL };
	enum { ADDRESS, WEIGHT, BACKUP, N };
	const struct sp_ynode *v[N];
	s->weight = 1;
	if (item->kind == SP_YSCALAR && sp_cf_type(item) != SP_CF_NULL) {
		memset(v, 0, sizeof(v));
		v[ADDRESS] = item;
	} else {
		if (!sp_cf_fields(cx, item, "a server", keys, v))
			return NULL;
		sp_cf_require(cx, item, v[ADDRESS], "address", "a server");
	}
	if (v[ADDRESS] && sp_cf_addr(cx, v[ADDRESS], "address", &s->address)) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)&s->address.sa;
		if (s->address.kind == SP_ADDR_SYSTEMD)
			sp_cf_error(cx, v[ADDRESS], "a server address is host:port or unix:/path, "
						    "not a systemd socket");
		else if (s->address.kind == SP_ADDR_INET && in->sin_port == 0)
			sp_cf_error(cx, v[ADDRESS], "a server address needs a port other than 0");
	}
	sp_cf_uint(cx, v[WEIGHT], "weight", 1, 256, &s->weight);
	sp_cf_bool(cx, v[BACKUP], "backup", &s->backup);
	return v[ADDRESS];
}

static void health_check(struct sp_cf_ctx *cx, const struct sp_ynode *map,
			 struct sp_conf_upstream *u)
{
	static const char *const keys[] = { "interval", "timeout", "fall", "rise", NULL };
	enum { INTERVAL, TIMEOUT, FALL, RISE, N };
	const struct sp_ynode *v[N];
	struct sp_conf_health_check *h = sp_cf_alloc(cx, 1, sizeof(*h));
	if (!h || !sp_cf_fields(cx, map, "'health_check'", keys, v))
		return;
	h->interval_ms = 2000;
	h->timeout_ms = 1000;
	h->fall = 3;
	h->rise = 2;
	bool ok = sp_cf_duration(cx, v[INTERVAL], "interval", 1, &h->interval_ms);
	ok &= sp_cf_duration(cx, v[TIMEOUT], "timeout", 1, &h->timeout_ms);
	if (ok && h->timeout_ms > h->interval_ms)
		sp_cf_error(cx, v[TIMEOUT] ? v[TIMEOUT] : map,
			    "the health check timeout (%llums) is longer than its interval (%llums)",
			    (unsigned long long)h->timeout_ms, (unsigned long long)h->interval_ms);
	sp_cf_uint(cx, v[FALL], "fall", 1, 100, &h->fall);
	sp_cf_uint(cx, v[RISE], "rise", 1, 100, &h->rise);
	u->health_check = h;
}

static void tls_client(struct sp_cf_ctx *cx, const struct sp_ynode *map, struct sp_conf_upstream *u)
{
	static const char *const keys[] = { "sni", "verify", "ca", NULL };
	enum { SNI, VERIFY, CA, N };
	const struct sp_ynode *v[N];
	struct sp_conf_tls_client *t = sp_cf_alloc(cx, 1, sizeof(*t));
	if (!t || !sp_cf_fields(cx, map, "'tls'", keys, v))
		return;
	t->pos = map->pos;
	t->verify = true;
	if (sp_cf_str(cx, v[SNI], "sni", &t->sni) && t->sni &&
	    (strlen(t->sni) > 253 || strcspn(t->sni, " \t/:") != strlen(t->sni)))
		sp_cf_error(cx, v[SNI], "'sni' must be a host name");
	sp_cf_bool(cx, v[VERIFY], "verify", &t->verify);
	sp_cf_path(cx, v[CA], "ca", &t->ca);
	u->tls = t;
}

static void servers(struct sp_cf_ctx *cx, const struct sp_ynode *seq, struct sp_conf_upstream *u)
{
	if (!sp_cf_seq(cx, seq, "servers"))
		return;
	if (!seq->n) {
		sp_cf_error(cx, seq, "'servers' must list at least one server");
		return;
	}
	u->servers = sp_cf_alloc(cx, seq->n, sizeof(*u->servers));
	if (!u->servers)
		return;
	u->n_servers = seq->n;
	struct sp_cf_names addrs = { calloc(seq->n, sizeof(*addrs.v)), seq->n };
	for (size_t i = 0; i < seq->n; i++) {
		const struct sp_ynode *at = server(cx, seq->kids[i], &u->servers[i]);
		if (addrs.v) {
			addrs.v[i].name = u->servers[i].address.text;
			addrs.v[i].node = at ? at : seq->kids[i];
		}
	}
	/* `server disable UPSTREAM ADDRESS` names a server by its address */
	if (addrs.v)
		sp_cf_names_sort(cx, &addrs, "server");
	sp_cf_names_free(&addrs);
}

/* Returns the node of the name, for duplicate checks. */
static const struct sp_ynode *upstream(struct sp_cf_ctx *cx, const struct sp_ynode *item,
				       struct sp_conf_upstream *u)
{
	static const char *const keys[] = { "name",    "balance", "connect_timeout", "retries",
					    "servers", "health_check", "tls", NULL };
	static const char *const balances[] = { "round_robin", "least_conn", "source_hash",
						"random_two", NULL };
	enum { NAME, BALANCE, CONNECT, RETRIES, SERVERS, HEALTH, TLS, N };
	const struct sp_ynode *v[N];
	int b;
	u->pos = item->pos;
	u->balance = SP_BALANCE_ROUND_ROBIN;
	u->connect_timeout_ms = 2000;
	u->retries = 1;
	if (!sp_cf_fields(cx, item, "an upstream", keys, v))
		return NULL;
	if (sp_cf_require(cx, item, v[NAME], "name", "an upstream"))
		sp_cf_name(cx, v[NAME], "name", &u->name);
	if (v[BALANCE] && sp_cf_enum(cx, v[BALANCE], "balance", balances, &b))
		u->balance = (enum sp_balance)b;
	sp_cf_duration(cx, v[CONNECT], "connect_timeout", 1, &u->connect_timeout_ms);
	sp_cf_uint(cx, v[RETRIES], "retries", 0, 16, &u->retries);
	if (sp_cf_require(cx, item, v[SERVERS], "servers", "an upstream"))
		servers(cx, v[SERVERS], u);
	if (v[HEALTH])
		health_check(cx, v[HEALTH], u);
	if (v[TLS])
		tls_client(cx, v[TLS], u);
	return v[NAME];
}

void sp_cf_upstreams(struct sp_cf_ctx *cx, const struct sp_ynode *seq, struct sp_cf_names *names)
{
	if (!seq || sp_cf_type(seq) == SP_CF_NULL || !sp_cf_seq(cx, seq, "upstreams"))
		return;
	struct sp_config *c = cx->cfg;
	c->upstreams = sp_cf_alloc(cx, seq->n, sizeof(*c->upstreams));
	names->v = calloc(seq->n ? seq->n : 1, sizeof(*names->v));
	if (!c->upstreams || !names->v) {
		cx->oom = true;
		sp_cf_error(cx, seq, "out of memory");
		return;
	}
	c->n_upstreams = seq->n;
	names->n = seq->n;
	for (size_t i = 0; i < seq->n; i++) {
		struct sp_conf_upstream *u = &c->upstreams[i];
		const struct sp_ynode *at = upstream(cx, seq->kids[i], u);
		names->v[i] = (struct sp_cf_named){ u->name, at ? at : seq->kids[i], u };
	}
	sp_cf_names_sort(cx, names, "upstream");
}
