/* SPDX-License-Identifier: MIT */
/*
 * privs.c - dropping privileges after the listeners are bound, so a
 * server may take ports below 1024 as root and serve as nobody. The user
 * and group are looked up before anything is bound (a typo stops the
 * server before it serves), and every step of the drop is checked: a
 * process that believes it dropped root and did not is worse than one
 * that refuses to start.
 */
#include "server/privs.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

/* Strict decimal id, or -1. */
static long long
numeric_id(const char *text)
{
	char *end;
	long long v;

	if (*text < '0' || *text > '9')
		return -1;
	errno = 0;
	v = strtoll(text, &end, 10);
	return errno || *end || v > 0xfffffffeLL ? -1 : v;
}

static int
resolve_user(struct dx_privs *p, const char *user, char *why, size_t wl)
{
	struct passwd pw, *res = NULL;
	char buf[4096];
	long long id = numeric_id(user);
	int rc = id >= 0 ? getpwuid_r((uid_t)id, &pw, buf, sizeof(buf), &res)
	                 : getpwnam_r(user, &pw, buf, sizeof(buf), &res);

	if (res == NULL && id < 0)
		return dx__why(why, wl, rc ? -rc : -ENOENT, "unknown user '%s'",
		               user);
	p->uid = res ? res->pw_uid : (uid_t)id;
	if (!p->have_gid) {
		if (res == NULL)
			return dx__why(why, wl, -ENOENT,
			               "user %s has no passwd entry: name a "
			               "--group",
			               user);
		p->gid = res->pw_gid;
	}
	snprintf(p->name, sizeof(p->name), "%s", res ? res->pw_name : user);
	p->have_uid = 1;
	return 0;
}

static int
resolve_group(struct dx_privs *p, const char *group, char *why, size_t wl)
{
	struct group gr, *res = NULL;
	char buf[8192];
	long long id = numeric_id(group);
	int rc;

	if (id >= 0) {
		p->gid = (gid_t)id;
	} else {
		rc = getgrnam_r(group, &gr, buf, sizeof(buf), &res);
		if (res == NULL)
			return dx__why(why, wl, rc ? -rc : -ENOENT,
			               "unknown group '%s'", group);
		p->gid = res->gr_gid;
	}
	p->have_gid = 1;
	return 0;
}

int
dx__privs_resolve(struct dx_privs *p, const char *user, const char *group,
                  char *why, size_t whylen)
{
	int err = 0;

	memset(p, 0, sizeof(*p));
	if (group != NULL)
		err = resolve_group(p, group, why, whylen);
	if (err == 0 && user != NULL)
		err = resolve_user(p, user, why, whylen);
	return err;
}

/* Checks that all three ids (real, effective, saved) are the target. */
static int
verify(const struct dx_privs *p)
{
	uid_t ru, eu, su;
	gid_t rg, eg, sg;

	if (getresuid(&ru, &eu, &su) < 0 || getresgid(&rg, &eg, &sg) < 0)
		return dx__neg_errno();
	if (p->have_uid && (ru != p->uid || eu != p->uid || su != p->uid))
		return -EPERM;
	if (p->have_gid && (rg != p->gid || eg != p->gid || sg != p->gid))
		return -EPERM;
	return 0;
}

int
dx__privs_drop(const struct dx_privs *p, char *why, size_t whylen)
{
	int err = 0;

	if (!p->have_uid && !p->have_gid)
		return 0;
	/* Supplementary groups first, while we may still change them. */
	if (p->have_uid ? initgroups(p->name, p->gid) < 0
	                : setgroups(0, NULL) < 0)
		err = dx__neg_errno();
	if (err == 0 && setresgid(p->gid, p->gid, p->gid) < 0)
		err = dx__neg_errno();
	if (err == 0 && p->have_uid && setresuid(p->uid, p->uid, p->uid) < 0)
		err = dx__neg_errno();
	if (err == 0)
		err = verify(p);
	if (err == 0 && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		err = dx__neg_errno();
	if (err < 0)
		return dx__why(why, whylen, err,
		               "cannot drop privileges to %s:%u: %s",
		               p->have_uid ? p->name : "(same user)",
		               (unsigned)p->gid, dx_strerror(err));
	return 0;
}
