/* SPDX-License-Identifier: MIT */
/*
 * acl.c - the `acl` filter: allow and deny lists of CIDRs. Deny wins; with an allow
 * list, an address on neither list is denied. IPv4 clients of a dual-stack listener
 * arrive as ::ffff:a.b.c.d and are matched as IPv4. Unix-socket clients carry no
 * address: the socket file's permissions govern them, the filter lets them through.
 */
#include <netinet/in.h>
#include <string.h>

#include "pipeline/pipeline.h"

static bool listed(const struct sp_conf_cidr *list, size_t n, const struct sockaddr *sa)
{
	for (size_t i = 0; i < n; i++)
		if (sp_cidr_match(&list[i], sa))
			return true;
	return false;
}

/* ::ffff:a.b.c.d -> a.b.c.d, so "127.0.0.0/8" matches on a [::] listener too. */
static const struct sockaddr *unmap_v4(const struct sockaddr *sa, struct sockaddr_in *tmp)
{
	const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
	if (sa->sa_family != AF_INET6 || !IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
		return sa;
	memset(tmp, 0, sizeof(*tmp));
	tmp->sin_family = AF_INET;
	tmp->sin_port = in6->sin6_port;
	memcpy(&tmp->sin_addr, &in6->sin6_addr.s6_addr[12], 4);
	return (const struct sockaddr *)tmp;
}

static enum sp_verdict acl_filter(struct sp_stage *st, const struct sockaddr *peer,
				  unsigned shard, uint64_t now_ns)
{
	const struct sp_conf_acl *acl = &st->conf->acl;
	struct sockaddr_in tmp;

	if (peer->sa_family != AF_INET && peer->sa_family != AF_INET6)
		return SP_VERDICT_PASS;
	peer = unmap_v4(peer, &tmp);
	if (listed(acl->deny, acl->n_deny, peer))
		return SP_VERDICT_DENY;
	if (acl->n_allow && !listed(acl->allow, acl->n_allow, peer))
		return SP_VERDICT_DENY;
	return SP_VERDICT_PASS;
}

const struct sp_stage_ops sp_acl_ops = {
	.kind = SP_STAGE_ACL,
	.filter = acl_filter,
};
