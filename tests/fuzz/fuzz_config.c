/* SPDX-License-Identifier: MIT */
/*
 * fuzz_config.c - libFuzzer target for the config loader: any bytes go through
 * sp_config_load_buffer, and everything is freed (LeakSanitizer catches what is not).
 * Also checks the loader's promises: a result xor errors, every error starts with the
 * file name, references point into the same config. The first bytes are also fed to the
 * value parsers shared with the control socket. Built and run by run-fuzz-config.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"

#define CHECK(cond)                                                                            \
	do {                                                                                   \
		if (!(cond))                                                                   \
			abort();                                                               \
	} while (0)

static void check_config(struct sp_config *c)
{
	for (size_t i = 0; i < c->n_listeners; i++) {
		const struct sp_conf_listener *l = &c->listeners[i];
		CHECK(l->name && l->bind.text);
		CHECK(l->route >= c->routes && l->route < c->routes + c->n_routes);
		CHECK(sp_config_listener(c, l->name));
	}
	for (size_t i = 0; i < c->n_routes; i++) {
		const struct sp_conf_route *r = &c->routes[i];
		CHECK(r->n_stages > 0 && sp_stage_is_handler(r->stages[r->n_stages - 1].kind));
		for (size_t j = 0; j + 1 < r->n_stages; j++)
			CHECK(!sp_stage_is_handler(r->stages[j].kind));
		const struct sp_conf_stage *h = &r->stages[r->n_stages - 1];
		if (h->kind == SP_STAGE_PROXY || h->kind == SP_STAGE_UDP_PROXY) {
			const struct sp_conf_upstream *u = h->kind == SP_STAGE_PROXY
								   ? h->proxy.upstream
								   : h->udp_proxy.upstream;
			CHECK(u >= c->upstreams && u < c->upstreams + c->n_upstreams);
		}
		CHECK(sp_config_route(c, r->name));
	}
	for (size_t i = 0; i < c->n_upstreams; i++)
		CHECK(c->upstreams[i].n_servers > 0 && sp_config_upstream(c, c->upstreams[i].name));
	sp_config_unref(sp_config_ref(c));
}

static void values(const uint8_t *data, size_t size)
{
	char s[257];
	size_t n = size < 256 ? size : 256;
	memcpy(s, data, n);
	s[n] = '\0';
	uint64_t v;
	(void)sp_parse_duration_ms(s, &v);
	(void)sp_parse_size(s, &v);
	struct sp_conf_addr a;
	const char *why;
	if (sp_parse_addr(s, &a, &why) == 0)
		sp_conf_addr_clear(&a);
	struct sp_conf_cidr c;
	if (sp_parse_cidr(s, &c) == 0) {
		struct sockaddr_in6 sa = { .sin6_family = AF_INET6 };
		memcpy(&sa.sin6_addr, data, size < 16 ? size : 16);
		(void)sp_cidr_match(&c, (struct sockaddr *)&sa);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sp_config *cfg = NULL;
	struct sp_conf_errors errs;
	int ret = sp_config_load_buffer("f.yaml", (const char *)data, size, &cfg, &errs);
	if (ret == 0) {
		CHECK(cfg && errs.count == 0 && errs.dropped == 0);
		check_config(cfg);
	} else {
		CHECK(!cfg && (ret == -EINVAL || ret == -ENOMEM));
		CHECK(errs.count > 0 && errs.count <= SP_CONF_MAX_ERRORS);
	}
	for (unsigned i = 0; i < errs.count; i++)
		CHECK(!strncmp(errs.msgs[i], "f.yaml:", 7));
	sp_conf_errors_free(&errs);
	sp_config_unref(cfg);
	values(data, size);
	return 0;
}
