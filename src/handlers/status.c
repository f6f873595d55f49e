/* SPDX-License-Identifier: MIT */
/*
 * status.c - the text of the `status` handler's /status.json: the builder of
 * `spargioctl --json stats` (stats/stats_json.c) plus the uptime, run on the shard that
 * serves the request. That is safe there: it reads per-shard counters and atomic flags
 * with relaxed loads and takes no lock, so it never waits for the main thread (which
 * runs the same builder for the control socket) nor for another shard; gen is the
 * generation current on this shard, alive for the callback. The page itself
 * (status_page.html) is built in as a string and only fetches this JSON.
 */
#include <errno.h>

#include "handlers/metrics.h"
#include "stats/stats_json.h"

static int append(const char *buf, size_t size, void *arg)
{
	struct sp_text *t = arg;
	sp_text_printf(t, "%.*s", (int)size, buf);
	return t->failed ? -1 : 0;
}

int sp_status_json(struct sp_text *t, const struct sp_gen *gen, struct sp_engine *eng)
{
	json_t *j = sp_stats_json(gen, eng);
	/* the page shows the uptime too: the one key `stats` has not (`status` has it) */
	if (j && json_object_set_new(j, "uptime_s", json_real(sp_stats_uptime_s())) < 0) {
		json_decref(j);
		j = NULL;
	}
	int ret = j ? json_dump_callback(j, append, t, JSON_COMPACT | JSON_ENSURE_ASCII) : -1;
	json_decref(j);
	if (ret == 0)
		sp_text_printf(t, "\n");
	return ret < 0 || t->failed ? -ENOMEM : 0;
}
