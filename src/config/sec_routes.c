/* SPDX-License-Identifier: MIT */
/*
 * sec_routes.c - `routes:`: a name, a placement and a pipeline of stages, filters first
 * and exactly one handler last. The stages themselves are read by stages.c.
 */
#include <stdlib.h>

#include "config/schema.h"

/* Defaults: placement stealable. name and pipeline are required. */

static void pipeline(struct sp_cf_ctx *cx, const struct sp_ynode *seq, struct sp_conf_route *r,
		     const struct sp_cf_names *upstreams)
{
	if (!sp_cf_seq(cx, seq, "pipeline"))
		return;
	if (!seq->n) {
		sp_cf_error(cx, seq, "the pipeline of a route needs at least its handler");
		return;
	}
	r->stages = sp_cf_alloc(cx, seq->n, sizeof(*r->stages));
	if (!r->stages)
		return;
	r->n_stages = seq->n;

	const struct sp_conf_stage *handler = NULL;
	bool all_known = true;
	for (size_t i = 0; i < seq->n; i++) {
		struct sp_conf_stage *st = &r->stages[i];
		if (!sp_cf_stage(cx, seq->kids[i], upstreams, st)) {
			all_known = false;
			continue;
		}
		const char *name = sp_stage_name(st->kind);
		if (sp_stage_is_handler(st->kind) && handler)
			sp_report(cx->rep, st->pos,
				  "a second handler '%s' (the pipeline already ends with '%s' at "
				  "%u:%u; exactly one handler, last)",
				  name, sp_stage_name(handler->kind), handler->pos.line,
				  handler->pos.col);
		else if (sp_stage_is_handler(st->kind))
			handler = st;
		else if (handler)
			sp_report(cx->rep, st->pos,
				  "filter '%s' after the handler '%s': filters come first, the "
				  "handler last",
				  name, sp_stage_name(handler->kind));
	}
	/* an unknown stage may well be the handler misspelt: say that, not this */
	if (!handler && all_known)
		sp_cf_error(cx, seq, "the pipeline has no handler: it must end with one of echo, "
				     "proxy, files, exec, udp_proxy, metrics or status");
}

/* Returns the node of the name, for duplicate checks. */
static const struct sp_ynode *route(struct sp_cf_ctx *cx, const struct sp_ynode *item,
				    struct sp_conf_route *r, const struct sp_cf_names *upstreams)
{
	static const char *const keys[] = { "name", "placement", "pipeline", NULL };
	static const char *const placements[] = { "pinned", "round_robin", "sticky", "stealable",
						  NULL };
	enum { NAME, PLACEMENT, PIPELINE, N };
	const struct sp_ynode *v[N];
	int p;
	r->pos = item->pos;
	r->placement = SP_CONF_STEALABLE;
	if (!sp_cf_fields(cx, item, "a route", keys, v))
		return NULL;
	if (sp_cf_require(cx, item, v[NAME], "name", "a route"))
		sp_cf_name(cx, v[NAME], "name", &r->name);
	if (v[PLACEMENT] && sp_cf_enum(cx, v[PLACEMENT], "placement", placements, &p))
		r->placement = (enum sp_conf_placement)p;
	if (sp_cf_require(cx, item, v[PIPELINE], "pipeline", "a route"))
		pipeline(cx, v[PIPELINE], r, upstreams);
	return v[NAME];
}

void sp_cf_routes(struct sp_cf_ctx *cx, const struct sp_ynode *seq,
		  const struct sp_cf_names *upstreams, struct sp_cf_names *names)
{
	if (!seq || sp_cf_type(seq) == SP_CF_NULL || !sp_cf_seq(cx, seq, "routes"))
		return;
	struct sp_config *c = cx->cfg;
	c->routes = sp_cf_alloc(cx, seq->n, sizeof(*c->routes));
	names->v = calloc(seq->n ? seq->n : 1, sizeof(*names->v));
	if (!c->routes || !names->v) {
		cx->oom = true;
		sp_cf_error(cx, seq, "out of memory");
		return;
	}
	c->n_routes = seq->n;
	names->n = seq->n;
	for (size_t i = 0; i < seq->n; i++) {
		struct sp_conf_route *r = &c->routes[i];
		const struct sp_ynode *at = route(cx, seq->kids[i], r, upstreams);
		names->v[i] = (struct sp_cf_named){ r->name, at ? at : seq->kids[i], r };
	}
	sp_cf_names_sort(cx, names, "route");
}
