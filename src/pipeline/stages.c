/* SPDX-License-Identifier: MIT */
/* stages.c - the stage modules of this build, by kind. A new stage adds one line here. */
#include "pipeline/pipeline.h"

extern const struct sp_stage_ops sp_acl_ops, sp_rate_limit_ops, sp_echo_ops, sp_proxy_ops, sp_metrics_ops;
extern const struct sp_stage_ops sp_files_ops;
extern const struct sp_stage_ops sp_exec_ops;
extern const struct sp_stage_ops sp_status_ops;

const struct sp_stage_ops *sp_stage_ops_for(enum sp_stage_kind kind)
{
	switch (kind) {
	case SP_STAGE_ACL: return &sp_acl_ops;
	case SP_STAGE_RATE_LIMIT: return &sp_rate_limit_ops;
	case SP_STAGE_ECHO: return &sp_echo_ops;
	case SP_STAGE_EXEC: return &sp_exec_ops;
	case SP_STAGE_PROXY: return &sp_proxy_ops;
	case SP_STAGE_FILES: return &sp_files_ops;
	case SP_STAGE_METRICS: return &sp_metrics_ops;
	case SP_STAGE_STATUS: return &sp_status_ops;
	default: return NULL; /* udp_proxy: a later issue */
	}
}
