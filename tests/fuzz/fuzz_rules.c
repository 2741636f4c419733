/* SPDX-License-Identifier: MIT */
/*
 * fuzz_rules.c - libFuzzer target for the access-rule grammar. Every input
 * either fails with -DX_ERULE and a non-empty why-sentence, or is a rule
 * whose log form parses back (after its verb) into the same rule and
 * formats to the same text again. An accepted rule is then checked against
 * fixed peers, where an IPv4-mapped peer must fare as its IPv4 form, and
 * against its own network address (which it must match) and that address
 * with the last bit of the prefix flipped (which it must not). The same
 * input read as a rules file (dx__rules_parse) either fails with a
 * why-sentence naming the file and leaves the rules as they were, or
 * gives rules that each format to a rule that parses again.
 */
#include "guard/rules.h"

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct dx_addr
peer_of(int kind, const uint8_t *bytes)
{
	struct dx_addr a;

	memset(&a, 0, sizeof(a));
	if (kind == DX_RULE_IP4) {
		a.u.in.sin_family = AF_INET;
		memcpy(&a.u.in.sin_addr, bytes, 4);
		a.len = sizeof(a.u.in);
	} else {
		a.u.in6.sin6_family = AF_INET6;
		memcpy(&a.u.in6.sin6_addr, bytes, 16);
		a.len = sizeof(a.u.in6);
	}
	return a;
}

static int
check(const struct dx_rules *rules, const struct dx_addr *peer,
      const struct ucred *cred)
{
	int allowed = -1, rc = dx__rules_check(rules, peer, cred, &allowed);

	if (rc < -1 || rc >= (int)rules->n || (allowed != 0 && allowed != 1))
		abort();
	if (rc >= 0 && allowed != rules->r[rc].allow)
		abort();
	return rc;
}

/* Fixed peers, each family and a unix peer with credentials. */
static void
check_fixed(const struct dx_rules *rules)
{
	static const uint8_t v4[4] = {10, 0, 0, 1};
	static const uint8_t mapped[16] = {
	        [10] = 0xff, [11] = 0xff, [12] = 10, [15] = 1};
	static const uint8_t v6[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 1};
	struct ucred cred = {.pid = 1, .uid = 1000, .gid = 100};
	struct dx_addr a = peer_of(DX_RULE_IP4, v4);
	struct dx_addr m = peer_of(DX_RULE_IP6, mapped);
	struct dx_addr s = peer_of(DX_RULE_IP6, v6), u;
	int is_cred = rules->r[0].kind >= DX_RULE_UID;

	if (check(rules, &a, NULL) != check(rules, &m, NULL))
		abort();
	if (is_cred &&
	    (check(rules, &a, &cred) >= 0 || check(rules, &s, &cred) >= 0))
		abort();
	memset(&u, 0, sizeof(u));
	u.u.un.sun_family = AF_UNIX;
	u.len = sizeof(sa_family_t);
	if (!is_cred && check(rules, &u, &cred) >= 0)
		abort();
	if (check(rules, &u, NULL) >= 0)
		abort();
}

/* An IP rule matches its own network and not the next one over. */
static void
check_edges(const struct dx_rules *rules)
{
	const struct dx_rule *r = &rules->r[0];
	uint8_t bytes[16];
	struct dx_addr a;

	if (r->kind >= DX_RULE_UID)
		return;
	a = peer_of(r->kind, r->addr);
	if (check(rules, &a, NULL) != 0)
		abort();
	if (r->prefix == 0)
		return;
	memcpy(bytes, r->addr, sizeof(bytes));
	bytes[(r->prefix - 1) / 8] ^= (uint8_t)(0x80 >> ((r->prefix - 1) % 8));
	a = peer_of(r->kind, bytes);
	if (check(rules, &a, NULL) != -1)
		abort();
}

/* TEXT as a rules file: all or nothing, and every rule well formed. */
static void
check_file(const char *text)
{
	struct dx_rules *rules = calloc(1, sizeof(*rules));
	char why[256] = "", buf[DX_RULESTRLEN];
	int rc;

	if (rules == NULL)
		return;
	rc = dx__rules_parse(rules, text, "fuzz", why, sizeof(why));
	if (rc < 0 && (strncmp(why, "fuzz:", 5) != 0 || rules->n != 0))
		abort();
	for (size_t i = 0; rc == 0 && i < rules->n; i++)
		if (dx__rule_format(&rules->r[i], buf, sizeof(buf)) <= 0)
			abort();
	free(rules);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char text[256], why[256] = "", buf[DX_RULESTRLEN], buf2[DX_RULESTRLEN];
	struct dx_rules *rules = calloc(1, sizeof(*rules));
	int allow = (int)(size & 1), rc, n;
	const struct dx_rule *a, *b;
	size_t skip = allow ? 6 : 5;

	if (rules == NULL || size >= sizeof(text))
		goto out;
	memcpy(text, data, size);
	text[size] = '\0';
	check_file(text);
	rc = dx__rules_add(rules, allow, text, why, sizeof(why));
	if (rc < 0) {
		if (rc != -DX_ERULE || why[0] == '\0' || rules->n != 0)
			abort();
		goto out;
	}
	n = dx__rule_format(&rules->r[0], buf, sizeof(buf));
	if (n < 0 || (size_t)n != strlen(buf) || (size_t)n + 1 >= sizeof(buf) ||
	    strncmp(buf, allow ? "allow " : "deny ", skip) != 0)
		abort();
	if (dx__rules_add(rules, allow, buf + skip, why, sizeof(why)) != 0)
		abort();
	a = &rules->r[0];
	b = &rules->r[1];
	if (a->allow != b->allow || a->kind != b->kind ||
	    a->prefix != b->prefix || a->id != b->id ||
	    memcmp(a->addr, b->addr, sizeof(a->addr)) != 0)
		abort();
	if (dx__rule_format(b, buf2, sizeof(buf2)) != n ||
	    strcmp(buf, buf2) != 0)
		abort();
	check_fixed(rules);
	check_edges(rules);
out:
	free(rules);
	return 0;
}
