/* SPDX-License-Identifier: MIT */
/*
 * privs.h - the user and group a server drops to after binding (privs.c).
 */
#ifndef DX_PRIVS_H
#define DX_PRIVS_H

#include "internal.h"

struct dx_privs {
	uid_t uid;
	gid_t gid;
	int have_uid, have_gid;
	char name[64];
};

/*
 * Looks up USER (a name or number; its primary group unless GROUP is
 * given) and GROUP (either may be NULL). Returns 0 or an error with WHY
 * naming the unknown user or group.
 */
int dx__privs_resolve(struct dx_privs *p, const char *user, const char *group,
                      char *why, size_t whylen);

/*
 * Drops to P: supplementary groups (the user's, or none), then gid, then
 * uid, each checked, all three ids verified, then PR_SET_NO_NEW_PRIVS.
 * Returns 0 or an error with WHY.
 */
int dx__privs_drop(const struct dx_privs *p, char *why, size_t whylen);

#endif /* DX_PRIVS_H */
