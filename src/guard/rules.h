/* SPDX-License-Identifier: MIT */
/*
 * rules.h - the concurrent server's access rules (--allow RULE and
 * --deny RULE), checked on each accepted connection before any fork, so a
 * refused client gets nothing and costs no child.
 *
 * A rule is an IPv4 or IPv6 address or CIDR ("10.0.0.0/8", "::1",
 * "[2001:db8::]/32"), or "uid:N" / "gid:N" for the credentials of a
 * unix-socket peer. Rules are ordered like a firewall's: they are checked in
 * the order given and the first one that matches decides. When none
 * matches, the peer is allowed if and only if there are no allow rules at
 * all (so "--deny X" alone refuses X only, and any "--allow" turns the
 * default into refusal).
 */
#ifndef DX_RULES_H
#define DX_RULES_H

#include "internal.h"

#include <stdint.h>

struct ucred;

enum dx_rule_kind { DX_RULE_IP4, DX_RULE_IP6, DX_RULE_UID, DX_RULE_GID };

/*
 * One rule. For the IP kinds ADDR holds the network in its first 4 or 16
 * bytes with every host bit zero (dx__rules_add() refuses any other), so a
 * match compares PREFIX / 8 whole bytes and at most one masked byte. For
 * the uid and gid kinds ID holds the number; PREFIX and ADDR are zero.
 */
struct dx_rule {
	uint8_t allow, kind, prefix;
	uint8_t addr[16];
	uint32_t id;
};

#define DX_MAX_RULES 256
/* Longest rule text dx__rules_add() accepts, without its NUL. */
#define DX_RULE_TEXT_MAX 64
/* Buffer size that holds any dx__rule_format() text with its NUL. */
#define DX_RULESTRLEN 64

/* The rules in order; start from a zeroed structure. */
struct dx_rules {
	struct dx_rule r[DX_MAX_RULES];
	size_t n;
	size_t n_allow;
};

/*
 * Appends the rule written as TEXT, an allow rule if ALLOW is non-zero and a
 * deny rule otherwise. Parsing is strict, because a typo in an access list
 * must never widen it: no spaces, no names (no DNS ever), no host bits set
 * in a CIDR, no IPv4-mapped IPv6 rule (write it as IPv4). Returns 0, or
 * -DX_ERULE for text that is not a rule and -E2BIG when DX_MAX_RULES are
 * already set; either way RULES is unchanged and WHY (when not NULL) gets
 * one sentence naming the text.
 */
int dx__rules_add(struct dx_rules *rules, int allow, const char *text,
                  char *why, size_t whylen);

/*
 * Appends the rules written in TEXT, one per line: "allow RULE" or "deny
 * RULE", RULE as dx__rules_add() takes it; blank lines and lines whose
 * first non-blank is '#' are skipped, blanks around the words ignored.
 * NAME names TEXT in WHY ("NAME:LINE: ..."). Returns 0, or a negative
 * error (-DX_ERULE, -E2BIG) with RULES unchanged.
 */
int dx__rules_parse(struct dx_rules *rules, const char *text, const char *name,
                    char *why, size_t whylen);

/*
 * Reads the file PATH (at most 64 KiB) and appends its rules as
 * dx__rules_parse() does. Returns 0, or a negative error with RULES
 * unchanged and WHY naming the file.
 */
int dx__rules_load(struct dx_rules *rules, const char *path, char *why,
                   size_t whylen);

/*
 * Decides for a peer with address PEER and, for a unix-socket peer, the
 * SO_PEERCRED credentials CRED (NULL when unknown). An IPv4-mapped IPv6
 * peer is matched as the IPv4 peer it is. IP rules match only IP peers of
 * their own family; uid and gid rules match only unix peers (or a NULL
 * PEER) with a CRED, and a gid rule looks at the primary group only.
 * Returns the index of the first matching rule and sets *ALLOWED from it,
 * or returns -1 when no rule matched, with *ALLOWED set to whether RULES
 * has no allow rule.
 */
int dx__rules_check(const struct dx_rules *rules, const struct dx_addr *peer,
                    const struct ucred *cred, int *allowed);

/*
 * Formats R for logs as "allow 10.0.0.0/8", "deny ::1" or "deny uid:1000";
 * a full-length prefix (/32, /128) is left out. The text after the verb is
 * accepted by dx__rules_add() as the same rule. Returns the length written
 * (truncated to LEN-1), or -EINVAL for a rule of unknown kind.
 */
int dx__rule_format(const struct dx_rule *r, char *buf, size_t len);

#endif /* DX_RULES_H */
