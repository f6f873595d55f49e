/* SPDX-License-Identifier: MIT */
/* test_config.c - valid configs: every field of a full config comes through, defaults
 * fill what is left out, references resolve to the objects they name, lookups and the
 * reference count work, files load, and the resource checks of `spargiod -t` report
 * what is missing on the system. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "config_harness.h"
#include "engine/log.h"

static const char full_yaml[] =
	"version: 1\n"
	"engine:\n"
	"  shards: 4\n"
	"  ring_entries: 256\n"
	"  steal: false\n"
	"  pin_cpus: true\n"
	"  idle_spin_us: 20\n"
	"control:\n"
	"  socket: /run/sp/ctl.sock\n"
	"  mode: \"0600\"\n"
	"log:\n"
	"  level: debug\n"
	"  target: journal\n"
	"  access_log: false\n"
	"limits:\n"
	"  max_connections: 1000\n"
	"  drain_timeout: 1m30s\n"
	"process:\n"
	"  user: nobody\n"
	"  group: nogroup\n"
	"upstreams:\n"
	"  - name: app\n"
	"    balance: least_conn\n"
	"    connect_timeout: 250ms\n"
	"    retries: 3\n"
	"    servers:\n"
	"      - {address: \"127.0.0.1:9001\", weight: 5}\n"
	"      - {address: \"[::1]:9002\", backup: true}\n"
	"      - unix:/run/app.sock\n"
	"    health_check: {interval: 5s, timeout: 500ms, fall: 4, rise: 1}\n"
	"    tls: {sni: app.internal, verify: false, ca: /etc/ca.pem}\n"
	"  - name: dns\n"
	"    balance: random_two\n"
	"    servers: [\"10.0.0.53:53\"]\n"
	"listeners:\n"
	"  - name: web\n"
	"    bind: \"0.0.0.0:8080\"\n"
	"    protocol: tcp\n"
	"    backlog: 511\n"
	"    proxy_protocol: true\n"
	"    tls:\n"
	"      cert: /etc/web.crt\n"
	"      key: /etc/web.key\n"
	"      min_version: \"1.3\"\n"
	"      alpn: [h2, http/1.1]\n"
	"    route: static\n"
	"  - name: dns\n"
	"    bind: \"[::]:5353\"\n"
	"    protocol: udp\n"
	"    route: dns\n"
	"  - name: app\n"
	"    bind: unix:/run/app-in.sock\n"
	"    route: app\n"
	"  - name: act\n"
	"    bind: systemd:web-act\n"
	"    route: shell\n"
	"routes:\n"
	"  - name: static\n"
	"    placement: pinned\n"
	"    pipeline:\n"
	"      - acl: {allow: [\"127.0.0.0/8\", \"::1/128\"], deny: [\"127.0.0.2\"]}\n"
	"      - rate_limit: {per_source: 6000/m, burst: 20, max_sources: 100}\n"
	"      - files: {root: /srv/www, index: home.html, keepalive_timeout: 5s}\n"
	"  - name: app\n"
	"    placement: round_robin\n"
	"    pipeline:\n"
	"      - proxy: {upstream: app, idle_timeout: 1h, send_proxy_protocol: v2,\n"
	"                 notsent_lowat: 64KiB}\n"
	"  - name: shell\n"
	"    placement: sticky\n"
	"    pipeline:\n"
	"      - exec: {command: [/bin/cat, -u], max_instances: 8, user: nobody, timeout: 30s,\n"
	"               env: {GREETING: hi, EMPTY: \"\"}, stdio: pipe, group: adm,\n"
	"               working_dir: /tmp, queue: 16, queue_timeout: 2s, kill_grace: 1s,\n"
	"               limits: {nofile: 256, as: 512MiB, cpu: 1500ms}}\n"
	"  - name: dns\n"
	"    pipeline:\n"
	"      - udp_proxy: {upstream: dns, session_timeout: 10s}\n"
	"  - name: metrics\n"
	"    pipeline:\n"
	"      - metrics: {}\n"
	"  - name: echo\n"
	"    pipeline:\n"
	"      - rate_limit: {per_source: 0.5/s}\n"
	"      - echo\n";

static void check_inet(const struct sp_conf_addr *a, int family, const char *host, unsigned port)
{
	char buf[INET6_ADDRSTRLEN];
	ck_assert_int_eq(a->kind, SP_ADDR_INET);
	ck_assert_int_eq(a->sa.ss_family, family);
	if (family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)&a->sa;
		ck_assert_uint_eq(a->salen, sizeof(*in));
		ck_assert_uint_eq(ntohs(in->sin_port), port);
		inet_ntop(AF_INET, &in->sin_addr, buf, sizeof(buf));
	} else {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&a->sa;
		ck_assert_uint_eq(a->salen, sizeof(*in6));
		ck_assert_uint_eq(ntohs(in6->sin6_port), port);
		inet_ntop(AF_INET6, &in6->sin6_addr, buf, sizeof(buf));
	}
	ck_assert_str_eq(buf, host);
}

START_TEST(test_full_globals)
{
	struct sp_config *c = load_ok(full_yaml);
	ck_assert_str_eq(c->path, "t.yaml");
	ck_assert_uint_eq(c->engine.shards, 4);
	ck_assert_uint_eq(c->engine.ring_entries, 256);
	ck_assert(!c->engine.steal);
	ck_assert(c->engine.pin_cpus);
	ck_assert_uint_eq(c->engine.idle_spin_us, 20);
	ck_assert_str_eq(c->control.socket, "/run/sp/ctl.sock");
	ck_assert_uint_eq(c->control.mode, 0600);
	ck_assert_int_eq(c->log.level, SP_LOG_DEBUG);
	ck_assert_int_eq(c->log.target, SP_LOG_TARGET_JOURNAL);
	ck_assert(!c->log.access_log);
	ck_assert_uint_eq(c->limits.max_connections, 1000);
	ck_assert_uint_eq(c->limits.drain_timeout_ms, 90000);
	ck_assert_str_eq(c->process.user, "nobody");
	ck_assert_str_eq(c->process.group, "nogroup");
	ck_assert_uint_eq(c->process.pos.line, 19);
	ck_assert_uint_eq(c->process.pos.col, 3);
	sp_config_unref(c);
}
END_TEST

START_TEST(test_full_upstreams)
{
	struct sp_config *c = load_ok(full_yaml);
	ck_assert_uint_eq(c->n_upstreams, 2);
	struct sp_conf_upstream *u = &c->upstreams[0];
	ck_assert_str_eq(u->name, "app");
	ck_assert_uint_eq(u->pos.line, 22);
	ck_assert_uint_eq(u->pos.col, 5);
	ck_assert_int_eq(u->balance, SP_BALANCE_LEAST_CONN);
	ck_assert_uint_eq(u->connect_timeout_ms, 250);
	ck_assert_uint_eq(u->retries, 3);
	ck_assert_uint_eq(u->n_servers, 3);
	check_inet(&u->servers[0].address, AF_INET, "127.0.0.1", 9001);
	ck_assert_str_eq(u->servers[0].address.text, "127.0.0.1:9001");
	ck_assert_uint_eq(u->servers[0].weight, 5);
	ck_assert(!u->servers[0].backup);
	check_inet(&u->servers[1].address, AF_INET6, "::1", 9002);
	ck_assert_uint_eq(u->servers[1].weight, 1);
	ck_assert(u->servers[1].backup);
	ck_assert_int_eq(u->servers[2].address.kind, SP_ADDR_UNIX);
	const struct sockaddr_un *un = (const struct sockaddr_un *)&u->servers[2].address.sa;
	ck_assert_int_eq(un->sun_family, AF_UNIX);
	ck_assert_str_eq(un->sun_path, "/run/app.sock");
	ck_assert_uint_eq(u->servers[2].address.salen,
			  offsetof(struct sockaddr_un, sun_path) + strlen("/run/app.sock") + 1);
	ck_assert_ptr_nonnull(u->health_check);
	ck_assert_uint_eq(u->health_check->interval_ms, 5000);
	ck_assert_uint_eq(u->health_check->timeout_ms, 500);
	ck_assert_uint_eq(u->health_check->fall, 4);
	ck_assert_uint_eq(u->health_check->rise, 1);
	ck_assert_ptr_nonnull(u->tls);
	ck_assert_str_eq(u->tls->sni, "app.internal");
	ck_assert(!u->tls->verify);
	ck_assert_str_eq(u->tls->ca, "/etc/ca.pem");
	ck_assert_uint_eq(u->tls->pos.line, 31);

	u = &c->upstreams[1];
	ck_assert_str_eq(u->name, "dns");
	ck_assert_int_eq(u->balance, SP_BALANCE_RANDOM_TWO);
	ck_assert_uint_eq(u->connect_timeout_ms, 2000); /* defaults */
	ck_assert_uint_eq(u->retries, 1);
	ck_assert_ptr_null(u->health_check);
	ck_assert_ptr_null(u->tls);
	ck_assert_uint_eq(u->n_servers, 1);
	check_inet(&u->servers[0].address, AF_INET, "10.0.0.53", 53);
	sp_config_unref(c);
}
END_TEST

START_TEST(test_full_listeners)
{
	struct sp_config *c = load_ok(full_yaml);
	ck_assert_uint_eq(c->n_listeners, 4);
	struct sp_conf_listener *l = &c->listeners[0];
	ck_assert_str_eq(l->name, "web");
	ck_assert_uint_eq(l->pos.line, 36);
	ck_assert_uint_eq(l->pos.col, 5);
	check_inet(&l->bind, AF_INET, "0.0.0.0", 8080);
	ck_assert_int_eq(l->protocol, SP_PROTO_TCP);
	ck_assert_uint_eq(l->backlog, 511);
	ck_assert(l->proxy_protocol);
	ck_assert_ptr_nonnull(l->tls);
	ck_assert_str_eq(l->tls->cert, "/etc/web.crt");
	ck_assert_str_eq(l->tls->key, "/etc/web.key");
	ck_assert_uint_eq(l->tls->min_version, 0x0304);
	ck_assert_uint_eq(l->tls->n_alpn, 2);
	ck_assert_str_eq(l->tls->alpn[0], "h2");
	ck_assert_str_eq(l->tls->alpn[1], "http/1.1");
	ck_assert_ptr_null(l->tls->alpn[2]);
	ck_assert_ptr_eq(l->route, &c->routes[0]);

	l = &c->listeners[1];
	check_inet(&l->bind, AF_INET6, "::", 5353);
	ck_assert_int_eq(l->protocol, SP_PROTO_UDP);
	ck_assert_uint_eq(l->backlog, 1024);
	ck_assert(!l->proxy_protocol);
	ck_assert_ptr_null(l->tls);
	ck_assert_ptr_eq(l->route, &c->routes[3]);

	l = &c->listeners[2];
	ck_assert_int_eq(l->bind.kind, SP_ADDR_UNIX);
	ck_assert_str_eq(l->bind.text, "unix:/run/app-in.sock");
	ck_assert_ptr_eq(l->route, &c->routes[1]);

	l = &c->listeners[3];
	ck_assert_int_eq(l->bind.kind, SP_ADDR_SYSTEMD);
	ck_assert_str_eq(l->bind.name, "web-act");
	ck_assert_str_eq(l->bind.text, "systemd:web-act");
	ck_assert_ptr_eq(l->route, &c->routes[2]);
	sp_config_unref(c);
}
END_TEST

START_TEST(test_full_routes)
{
	struct sp_config *c = load_ok(full_yaml);
	ck_assert_uint_eq(c->n_routes, 6);
	struct sp_conf_route *r = &c->routes[0];
	ck_assert_str_eq(r->name, "static");
	ck_assert_int_eq(r->placement, SP_CONF_PINNED);
	ck_assert_uint_eq(r->n_stages, 3);

	struct sp_conf_stage *st = &r->stages[0];
	ck_assert_int_eq(st->kind, SP_STAGE_ACL);
	ck_assert_uint_eq(st->pos.line, 61);
	ck_assert_uint_eq(st->pos.col, 9);
	ck_assert_uint_eq(st->acl.n_allow, 2);
	ck_assert_int_eq(st->acl.allow[0].family, AF_INET);
	ck_assert_uint_eq(st->acl.allow[0].prefix, 8);
	ck_assert_uint_eq(st->acl.allow[0].addr[0], 127);
	ck_assert_int_eq(st->acl.allow[1].family, AF_INET6);
	ck_assert_uint_eq(st->acl.allow[1].prefix, 128);
	ck_assert_uint_eq(st->acl.allow[1].addr[15], 1);
	ck_assert_uint_eq(st->acl.n_deny, 1);
	ck_assert_uint_eq(st->acl.deny[0].prefix, 32);

	st = &r->stages[1];
	ck_assert_int_eq(st->kind, SP_STAGE_RATE_LIMIT);
	ck_assert(st->rate_limit.per_source > 99.99 && st->rate_limit.per_source < 100.01);
	ck_assert_uint_eq(st->rate_limit.burst, 20);
	ck_assert_uint_eq(st->rate_limit.max_sources, 100);

	st = &r->stages[2];
	ck_assert_int_eq(st->kind, SP_STAGE_FILES);
	ck_assert_str_eq(st->files.root, "/srv/www");
	ck_assert_str_eq(st->files.index, "home.html");
	ck_assert_uint_eq(st->files.keepalive_timeout_ms, 5000);

	r = &c->routes[1];
	ck_assert_int_eq(r->placement, SP_CONF_ROUND_ROBIN);
	ck_assert_uint_eq(r->n_stages, 1);
	st = &r->stages[0];
	ck_assert_int_eq(st->kind, SP_STAGE_PROXY);
	ck_assert_ptr_eq(st->proxy.upstream, &c->upstreams[0]);
	ck_assert_uint_eq(st->proxy.idle_timeout_ms, 3600000);
	ck_assert_int_eq(st->proxy.send_proxy_protocol, SP_PP_V2);
	ck_assert_uint_eq(st->proxy.notsent_lowat, 65536);

	r = &c->routes[2];
	ck_assert_int_eq(r->placement, SP_CONF_STICKY);
	st = &r->stages[0];
	ck_assert_int_eq(st->kind, SP_STAGE_EXEC);
	ck_assert_uint_eq(st->exec.argc, 2);
	ck_assert_str_eq(st->exec.argv[0], "/bin/cat");
	ck_assert_str_eq(st->exec.argv[1], "-u");
	ck_assert_ptr_null(st->exec.argv[2]);
	ck_assert_uint_eq(st->exec.max_instances, 8);
	ck_assert_str_eq(st->exec.user, "nobody");
	ck_assert_uint_eq(st->exec.timeout_ms, 30000);
	ck_assert_uint_eq(st->exec.n_env, 2);
	ck_assert_str_eq(st->exec.env[0], "GREETING=hi");
	ck_assert_str_eq(st->exec.env[1], "EMPTY=");
	ck_assert_ptr_null(st->exec.env[2]);
	ck_assert_int_eq(st->exec.stdio, SP_EXEC_PIPE);
	ck_assert_str_eq(st->exec.group, "adm");
	ck_assert_str_eq(st->exec.working_dir, "/tmp");
	ck_assert_uint_eq(st->exec.queue, 16);
	ck_assert_uint_eq(st->exec.queue_timeout_ms, 2000);
	ck_assert_uint_eq(st->exec.kill_grace_ms, 1000);
	ck_assert_uint_eq(st->exec.limits.nofile, 256);
	ck_assert_uint_eq(st->exec.limits.as, 512ull << 20);
	ck_assert_uint_eq(st->exec.limits.cpu, 2); /* rounded up to whole seconds */

	r = &c->routes[3];
	ck_assert_int_eq(r->placement, SP_CONF_STEALABLE);
	st = &r->stages[0];
	ck_assert_int_eq(st->kind, SP_STAGE_UDP_PROXY);
	ck_assert_ptr_eq(st->udp_proxy.upstream, &c->upstreams[1]);
	ck_assert_uint_eq(st->udp_proxy.session_timeout_ms, 10000);

	ck_assert_int_eq(c->routes[4].stages[0].kind, SP_STAGE_METRICS);

	r = &c->routes[5];
	ck_assert_uint_eq(r->n_stages, 2);
	ck_assert(r->stages[0].rate_limit.per_source == 0.5);
	ck_assert_uint_eq(r->stages[0].rate_limit.burst, 1); /* max(1, per_source) */
	ck_assert_uint_eq(r->stages[0].rate_limit.max_sources, 65536);
	ck_assert_int_eq(r->stages[1].kind, SP_STAGE_ECHO);
	sp_config_unref(c);
}
END_TEST

START_TEST(test_defaults)
{
	struct sp_config *c = load_ok("version: 1\n"
				      "upstreams: [{name: u, servers: [\"127.0.0.1:1\"],\n"
				      "             health_check: {}, tls: {}},\n"
				      "            {name: v, servers: [\"127.0.0.1:2\"]}]\n"
				      "listeners: [{name: l, bind: \"127.0.0.1:0\", route: r,\n"
				      "             tls: {cert: /c, key: /k}}]\n"
				      "routes:\n"
				      "  - {name: r, pipeline: [{rate_limit: {per_source: 100/s}},\n"
				      "                         {proxy: {upstream: u}}]}\n"
				      "  - {name: f, pipeline: [{files: {root: /}}]}\n"
				      "  - {name: e, pipeline: [{exec: {command: [/bin/true]}}]}\n"
				      "  - {name: d, pipeline: [{udp_proxy: {upstream: v}}]}\n");
	ck_assert_uint_eq(c->engine.shards, 0);
	ck_assert_uint_eq(c->engine.ring_entries, 1024);
	ck_assert(c->engine.steal);
	ck_assert(!c->engine.pin_cpus);
	ck_assert_uint_eq(c->engine.idle_spin_us, 0);
	ck_assert_str_eq(c->control.socket, "/run/spargiod/control.sock");
	ck_assert_uint_eq(c->control.mode, 0660);
	ck_assert_int_eq(c->log.level, SP_LOG_INFO);
	ck_assert_int_eq(c->log.target, SP_LOG_TARGET_AUTO);
	ck_assert(c->log.access_log);
	ck_assert_uint_eq(c->limits.max_connections, 65536);
	ck_assert_uint_eq(c->limits.per_source, 0);
	ck_assert_uint_eq(c->listeners[0].max_connections, 0);
	ck_assert(!c->listeners[0].per_source_set);
	ck_assert_uint_eq(c->limits.drain_timeout_ms, 30000);
	ck_assert_ptr_null(c->process.user);
	ck_assert_ptr_null(c->process.group);

	const struct sp_conf_upstream *u = &c->upstreams[0];
	ck_assert_int_eq(u->balance, SP_BALANCE_ROUND_ROBIN);
	ck_assert_uint_eq(u->health_check->interval_ms, 2000);
	ck_assert_uint_eq(u->health_check->timeout_ms, 1000);
	ck_assert_uint_eq(u->health_check->fall, 3);
	ck_assert_uint_eq(u->health_check->rise, 2);
	ck_assert(u->tls->verify);
	ck_assert_ptr_null(u->tls->sni);
	ck_assert_ptr_null(u->tls->ca);

	const struct sp_conf_listener *l = &c->listeners[0];
	ck_assert_uint_eq(l->tls->min_version, 0x0303);
	ck_assert_uint_eq(l->tls->n_alpn, 0);

	const struct sp_conf_stage *st = c->routes[0].stages;
	ck_assert_uint_eq(st[0].rate_limit.burst, 100);
	ck_assert_uint_eq(st[1].proxy.idle_timeout_ms, 300000);
	ck_assert_int_eq(st[1].proxy.send_proxy_protocol, SP_PP_OFF);
	ck_assert_uint_eq(st[1].proxy.notsent_lowat, 32768);
	st = c->routes[1].stages;
	ck_assert_str_eq(st[0].files.index, "index.html");
	ck_assert_uint_eq(st[0].files.keepalive_timeout_ms, 60000);
	st = c->routes[2].stages;
	ck_assert_uint_eq(st[0].exec.max_instances, 64);
	ck_assert_ptr_null(st[0].exec.user);
	ck_assert_uint_eq(st[0].exec.timeout_ms, 0);
	ck_assert_uint_eq(st[0].exec.n_env, 0);
	ck_assert_ptr_nonnull(st[0].exec.env);
	ck_assert_ptr_null(st[0].exec.env[0]);
	ck_assert_int_eq(st[0].exec.stdio, SP_EXEC_SOCKET);
	ck_assert_ptr_null(st[0].exec.group);
	ck_assert_str_eq(st[0].exec.working_dir, "/");
	ck_assert_uint_eq(st[0].exec.queue, 0);
	ck_assert_uint_eq(st[0].exec.queue_timeout_ms, 10000);
	ck_assert_uint_eq(st[0].exec.kill_grace_ms, 5000);
	ck_assert_uint_eq(st[0].exec.limits.nofile, 0);
	ck_assert_uint_eq(st[0].exec.limits.as, 0);
	ck_assert_uint_eq(st[0].exec.limits.cpu, 0);
	st = c->routes[3].stages;
	ck_assert_uint_eq(st[0].udp_proxy.session_timeout_ms, 30000);
	sp_config_unref(c);
}
END_TEST

START_TEST(test_files_options)
{
	struct sp_config *c = load_ok("version: 1\n"
				      "routes:\n"
				      "  - name: d\n"
				      "    pipeline: [{files: {root: /srv}}]\n"
				      "  - name: f\n"
				      "    pipeline:\n"
				      "      - files: {root: /srv, autoindex: true, cache_control: \"max-age=60\",\n"
				      "               dotfiles: allow, max_header_size: 16KiB, max_headers: 50,\n"
				      "               header_timeout: 5s, send_timeout: 30s, file_cache: 0,\n"
				      "               file_cache_valid: 250ms, splice: on, notsent_lowat: 128KiB}\n"
				      "  - name: g\n"
				      "    pipeline: [{files: {root: /srv, dotfiles: deny, splice: off, notsent_lowat: 0}}]\n");
	const struct sp_conf_files *f = &c->routes[0].stages[0].files;
	ck_assert(!f->autoindex);
	ck_assert_ptr_null(f->cache_control);
	ck_assert_int_eq(f->dotfiles, SP_DOTFILES_IGNORE);
	ck_assert_uint_eq(f->max_header_size, 8192);
	ck_assert_uint_eq(f->max_headers, 100);
	ck_assert_uint_eq(f->header_timeout_ms, 10000);
	ck_assert_uint_eq(f->send_timeout_ms, 60000);
	ck_assert_uint_eq(f->file_cache, 1024);
	ck_assert_uint_eq(f->file_cache_valid_ms, 1000);
	ck_assert_int_eq(f->splice, SP_SPLICE_AUTO);
	ck_assert_uint_eq(f->notsent_lowat, 32768);
	f = &c->routes[1].stages[0].files;
	ck_assert(f->autoindex);
	ck_assert_str_eq(f->cache_control, "max-age=60");
	ck_assert_int_eq(f->dotfiles, SP_DOTFILES_ALLOW);
	ck_assert_uint_eq(f->max_header_size, 16384);
	ck_assert_uint_eq(f->max_headers, 50);
	ck_assert_uint_eq(f->header_timeout_ms, 5000);
	ck_assert_uint_eq(f->send_timeout_ms, 30000);
	ck_assert_uint_eq(f->file_cache, 0);
	ck_assert_uint_eq(f->file_cache_valid_ms, 250);
	ck_assert_int_eq(f->splice, SP_SPLICE_ON);
	ck_assert_uint_eq(f->notsent_lowat, 131072);
	f = &c->routes[2].stages[0].files;
	ck_assert_int_eq(f->dotfiles, SP_DOTFILES_DENY);
	ck_assert_int_eq(f->splice, SP_SPLICE_OFF);
	ck_assert_uint_eq(f->notsent_lowat, 0);
	sp_config_unref(c);
}
END_TEST

START_TEST(test_minimal_and_yaml_forms)
{
	/* no sections but version; empty sections; shorthand forms; bools and octal modes
	 * as YAML 1.1 writers put them */
	struct sp_config *c = load_ok("version: 1\n");
	ck_assert_uint_eq(c->n_listeners + c->n_routes + c->n_upstreams, 0);
	sp_config_unref(c);

	c = load_ok("version: 1\nengine:\nlog: {}\nupstreams:\nroutes: []\n");
	sp_config_unref(c);

	c = load_ok("\xef\xbb\xbf# a comment, after a UTF-8 BOM\n"
		    "version: 1\n"
		    "engine: {shards: auto, steal: off, pin_cpus: yes}\n"
		    "control: {mode: 0640}\n"
		    "routes: [{name: r, pipeline: [echo]}, {name: m, pipeline: [{metrics: }]}]\n"
		    "listeners: [{name: l, bind: \"unix:@abstract\", route: r}]\n");
	ck_assert_uint_eq(c->engine.shards, 0);
	ck_assert(!c->engine.steal);
	ck_assert(c->engine.pin_cpus);
	ck_assert_uint_eq(c->control.mode, 0640);
	ck_assert_int_eq(c->routes[0].stages[0].kind, SP_STAGE_ECHO);
	ck_assert_int_eq(c->routes[1].stages[0].kind, SP_STAGE_METRICS);
	const struct sockaddr_un *un = (const struct sockaddr_un *)&c->listeners[0].bind.sa;
	ck_assert_int_eq(un->sun_path[0], '\0');
	ck_assert_int_eq(memcmp(un->sun_path + 1, "abstract", 8), 0);
	ck_assert_uint_eq(c->listeners[0].bind.salen,
			  offsetof(struct sockaddr_un, sun_path) + 1 + strlen("abstract"));
	sp_config_unref(c);
}
END_TEST

START_TEST(test_lookups_and_refs)
{
	struct sp_config *c = load_ok(full_yaml);
	ck_assert_ptr_eq(sp_config_route(c, "shell"), &c->routes[2]);
	ck_assert_ptr_eq(sp_config_upstream(c, "dns"), &c->upstreams[1]);
	ck_assert_ptr_eq(sp_config_listener(c, "act"), &c->listeners[3]);
	ck_assert_ptr_null(sp_config_route(c, "nope"));
	ck_assert_ptr_null(sp_config_upstream(c, "web"));
	ck_assert_ptr_null(sp_config_listener(c, ""));

	ck_assert_ptr_eq(sp_config_ref(c), c);
	ck_assert_uint_eq(atomic_load(&c->refs), 2);
	sp_config_unref(c);
	ck_assert_str_eq(c->routes[0].name, "static"); /* still held */
	sp_config_unref(c);
	sp_config_unref(NULL);
}
END_TEST

START_TEST(test_stage_names)
{
	ck_assert_str_eq(sp_stage_name(SP_STAGE_ACL), "acl");
	ck_assert_str_eq(sp_stage_name(SP_STAGE_RATE_LIMIT), "rate_limit");
	ck_assert_str_eq(sp_stage_name(SP_STAGE_ECHO), "echo");
	ck_assert_str_eq(sp_stage_name(SP_STAGE_PROXY), "proxy");
	ck_assert_str_eq(sp_stage_name(SP_STAGE_FILES), "files");
	ck_assert_str_eq(sp_stage_name(SP_STAGE_EXEC), "exec");
	ck_assert_str_eq(sp_stage_name(SP_STAGE_UDP_PROXY), "udp_proxy");
	ck_assert_str_eq(sp_stage_name(SP_STAGE_METRICS), "metrics");
	ck_assert_str_eq(sp_stage_name(SP_STAGE_STATUS), "status");
	ck_assert(!sp_stage_is_handler(SP_STAGE_ACL));
	ck_assert(!sp_stage_is_handler(SP_STAGE_RATE_LIMIT));
	for (int k = SP_STAGE_ECHO; k <= SP_STAGE_STATUS; k++)
		ck_assert(sp_stage_is_handler((enum sp_stage_kind)k));
}
END_TEST

/* ---- files and resources ------------------------------------------------------- */

static char tmpdir[64];

static void make_tmpdir(void)
{
	strcpy(tmpdir, "/tmp/sp-config-test.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
}

static void remove_tmpdir(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	ck_assert_int_eq(system(cmd), 0);
}

START_TEST(test_load_file)
{
	char path[128], big[256];
	struct sp_config *c = NULL;
	struct sp_conf_errors errs;
	make_tmpdir();
	snprintf(path, sizeof(path), "%s/ok.yaml", tmpdir);
	write_file(path, "version: 1\nlog: {level: warn}\n");
	ck_assert_int_eq(sp_config_load(path, &c, &errs), 0);
	ck_assert_uint_eq(errs.count, 0);
	ck_assert_str_eq(c->path, path);
	ck_assert_int_eq(c->log.level, SP_LOG_WARN);
	sp_config_unref(c);

	/* unreadable: -errno and a message without a position */
	snprintf(path, sizeof(path), "%s/missing.yaml", tmpdir);
	ck_assert_int_eq(sp_config_load(path, &c, &errs), -ENOENT);
	ck_assert_ptr_null(c);
	ck_assert_uint_eq(errs.count, 1);
	snprintf(big, sizeof(big), "%s: cannot open: No such file or directory", path);
	ck_assert_str_eq(errs.msgs[0], big);
	sp_conf_errors_free(&errs);
	ck_assert_uint_eq(errs.count, 0);
	ck_assert_ptr_null(errs.msgs);

	ck_assert_int_eq(sp_config_load(tmpdir, &c, &errs), -EISDIR);
	sp_conf_errors_free(&errs);

	/* a file over 1 MiB is refused before it is parsed */
	snprintf(path, sizeof(path), "%s/big.yaml", tmpdir);
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	for (int i = 0; i < 70000; i++)
		fputs("# comment line\n", f);
	fclose(f);
	ck_assert_int_eq(sp_config_load(path, &c, &errs), -EINVAL);
	ck_assert_uint_eq(errs.count, 1);
	ck_assert_ptr_nonnull(strstr(errs.msgs[0], ":1:1: file too large (at most 1048576 bytes)"));
	sp_conf_errors_free(&errs);

	/* errs may be NULL for callers that only want the verdict */
	ck_assert_int_eq(sp_config_load(path, &c, NULL), -EINVAL);
	remove_tmpdir();
}
END_TEST

/* A self-signed P-256 certificate and its key, written as PEM. */
static EVP_PKEY *make_cert(const char *crt, const char *key)
{
	EVP_PKEY *pk = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	ck_assert_ptr_nonnull(pk);
	ck_assert_ptr_nonnull(x);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_set_pubkey(x, pk);
	X509_NAME *n = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"t", -1, -1, 0);
	X509_set_issuer_name(x, n);
	ck_assert_int_gt(X509_sign(x, pk, EVP_sha256()), 0);
	FILE *f = fopen(crt, "w");
	ck_assert_ptr_nonnull(f);
	PEM_write_X509(f, x);
	fclose(f);
	if (key) {
		f = fopen(key, "w");
		ck_assert_ptr_nonnull(f);
		PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL);
		fclose(f);
	}
	X509_free(x);
	return pk;
}

static struct sp_conf_errors check_resources(const char *yaml, int want)
{
	struct sp_config *c = load_ok(yaml);
	struct sp_conf_errors errs = { 0 };
	ck_assert_int_eq(sp_config_check_resources(c, &errs), want);
	sp_config_unref(c);
	return errs;
}

START_TEST(test_resources)
{
	char yaml[4096], p[8][160];
	make_tmpdir();
	snprintf(p[0], sizeof(p[0]), "%s/a.crt", tmpdir);
	snprintf(p[1], sizeof(p[1]), "%s/a.key", tmpdir);
	snprintf(p[2], sizeof(p[2]), "%s/b.crt", tmpdir);
	snprintf(p[3], sizeof(p[3]), "%s/www", tmpdir);
	snprintf(p[4], sizeof(p[4]), "%s/prog", tmpdir);
	EVP_PKEY_free(make_cert(p[0], p[1]));
	EVP_PKEY_free(make_cert(p[2], NULL));
	ck_assert_int_eq(mkdir(p[3], 0755), 0);
	write_file(p[4], "#!/bin/sh\n");
	ck_assert_int_eq(chmod(p[4], 0755), 0);

	/* everything present: no errors */
	snprintf(yaml, sizeof(yaml),
		 "version: 1\n"
		 "process: {user: root, group: root}\n"
		 "upstreams: [{name: u, servers: [\"127.0.0.1:1\"], tls: {ca: %s}}]\n"
		 "listeners: [{name: l, bind: \"127.0.0.1:0\", route: r,\n"
		 "             tls: {cert: %s, key: %s}}]\n"
		 "routes:\n"
		 "  - {name: r, pipeline: [{proxy: {upstream: u}}]}\n"
		 "  - {name: f, pipeline: [{files: {root: %s}}]}\n"
		 "  - {name: e, pipeline: [{exec: {command: [%s], user: root}}]}\n",
		 p[0], p[0], p[1], p[3], p[4]);
	struct sp_conf_errors errs = check_resources(yaml, 0);
	ck_assert_uint_eq(errs.count, 0);

	/* a key of another certificate, a root that is a file, a program that is not
	 * executable, users and groups that do not exist, a CA that is not one */
	ck_assert_int_eq(chmod(p[4], 0644), 0);
	snprintf(yaml, sizeof(yaml),
		 "version: 1\n"
		 "process: {user: no-such-user-xyz, group: no-such-group-xyz}\n"
		 "upstreams: [{name: u, servers: [\"127.0.0.1:1\"], tls: {ca: %s}}]\n"
		 "listeners: [{name: l, bind: \"127.0.0.1:0\", route: r,\n"
		 "             tls: {cert: %s, key: %s}}]\n"
		 "routes:\n"
		 "  - {name: r, pipeline: [{proxy: {upstream: u}}]}\n"
		 "  - {name: f, pipeline: [{files: {root: %s}}]}\n"
		 "  - {name: e, pipeline: [{exec: {command: [%s], user: no-such-user-xyz}}]}\n"
		 "  - {name: g, pipeline: [{files: {root: %s/nope}}]}\n",
		 p[4], p[2], p[1], p[4], p[4], tmpdir);
	errs = check_resources(yaml, -EINVAL);
	char want[9][400];
	snprintf(want[0], 400, "t.yaml:2:10: no user 'no-such-user-xyz' on this system");
	snprintf(want[1], 400, "t.yaml:2:10: no group 'no-such-group-xyz' on this system");
	snprintf(want[2], 400, "t.yaml:3:54: upstream 'u': cannot load CA '%s': ", p[4]);
	snprintf(want[3], 400, "t.yaml:5:19: listener 'l': key '%s' does not match certificate '%s'",
		 p[1], p[2]);
	snprintf(want[4], 400, "t.yaml:8:27: files root '%s' is not a directory", p[4]);
	snprintf(want[5], 400, "t.yaml:9:27: exec command '%s' is not an executable file", p[4]);
	snprintf(want[6], 400, "t.yaml:9:27: no user 'no-such-user-xyz' on this system");
	snprintf(want[7], 400, "t.yaml:10:27: files root '%s/nope': No such file or directory",
		 tmpdir);
	ck_assert_uint_eq(errs.count, 8);
	for (unsigned i = 0; i < 8; i++)
		ck_assert_msg(!strncmp(errs.msgs[i], want[i], strlen(want[i])), "%s\n!= %s",
			      errs.msgs[i], want[i]);
	sp_conf_errors_free(&errs);

	/* exec: a working_dir that is a file, one that is missing, a group nobody has */
	snprintf(yaml, sizeof(yaml),
		 "version: 1\n"
		 "routes:\n"
		 "  - {name: e, pipeline: [{exec: {command: [/bin/cat], working_dir: %s}}]}\n"
		 "  - {name: f, pipeline: [{exec: {command: [/bin/cat], working_dir: %s/nope,\n"
		 "                                 group: no-such-group-xyz}}]}\n",
		 p[4], tmpdir);
	errs = check_resources(yaml, -EINVAL);
	snprintf(want[0], 400, "t.yaml:3:27: exec working_dir '%s' is not a directory", p[4]);
	snprintf(want[1], 400, "t.yaml:4:27: no group 'no-such-group-xyz' on this system");
	snprintf(want[2], 400, "t.yaml:4:27: exec working_dir '%s/nope': No such file or directory",
		 tmpdir);
	ck_assert_uint_eq(errs.count, 3);
	for (unsigned i = 0; i < 3; i++)
		ck_assert_str_eq(errs.msgs[i], want[i]);
	sp_conf_errors_free(&errs);

	/* missing certificate files */
	snprintf(yaml, sizeof(yaml),
		 "version: 1\n"
		 "listeners: [{name: l, bind: \"127.0.0.1:0\", route: r,\n"
		 "             tls: {cert: %s/none.crt, key: %s}}]\n"
		 "routes: [{name: r, pipeline: [echo]}]\n",
		 tmpdir, p[1]);
	errs = check_resources(yaml, -EINVAL);
	ck_assert_uint_eq(errs.count, 1);
	snprintf(want[0], 400,
		 "t.yaml:3:19: listener 'l': cannot read certificate '%s/none.crt': No such file or "
		 "directory",
		 tmpdir);
	ck_assert_str_eq(errs.msgs[0], want[0]);
	sp_conf_errors_free(&errs);

	/* present but not a certificate */
	snprintf(yaml, sizeof(yaml),
		 "version: 1\n"
		 "listeners: [{name: l, bind: \"127.0.0.1:0\", route: r,\n"
		 "             tls: {cert: %s, key: %s}}]\n"
		 "routes: [{name: r, pipeline: [echo]}]\n",
		 p[4], p[1]);
	errs = check_resources(yaml, -EINVAL);
	ck_assert_uint_eq(errs.count, 1);
	snprintf(want[0], 400, "t.yaml:3:19: listener 'l': cannot load certificate '%s': ", p[4]);
	ck_assert_msg(!strncmp(errs.msgs[0], want[0], strlen(want[0])), "%s", errs.msgs[0]);
	sp_conf_errors_free(&errs);
	remove_tmpdir();
}
END_TEST

int main(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("valid");
	tcase_add_test(tc, test_full_globals);
	tcase_add_test(tc, test_full_upstreams);
	tcase_add_test(tc, test_full_listeners);
	tcase_add_test(tc, test_full_routes);
	tcase_add_test(tc, test_defaults);
	tcase_add_test(tc, test_files_options);
	tcase_add_test(tc, test_minimal_and_yaml_forms);
	tcase_add_test(tc, test_lookups_and_refs);
	tcase_add_test(tc, test_stage_names);
	suite_add_tcase(s, tc);
	tc = tcase_create("files");
	tcase_add_test(tc, test_load_file);
	tcase_add_test(tc, test_resources);
	suite_add_tcase(s, tc);
	return run_config_suite(s);
}
