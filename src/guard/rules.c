/* SPDX-License-Identifier: MIT */
/*
 * rules.c - the access rules of rules.h: strict parsing of "--allow" and
 * "--deny" text, the per-connection check (first match decides, as in a
 * firewall) and the log form of a rule. Addresses are literals read with
 * inet_pton(); nothing here ever resolves a name. A CIDR is stored with
 * its host bits zero (host bits in the text are an error, not silently
 * cleared), so a match is a memcmp() of the whole bytes of the prefix and
 * one masked byte, with no mask to build per connection.
 */
#include "guard/rules.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* The mask of a prefix's last, partial byte, by prefix % 8. */
static const uint8_t part_mask[8] = {0x00, 0x80, 0xc0, 0xe0,
                                     0xf0, 0xf8, 0xfc, 0xfe};

/* 1 when the first PREFIX bits of A equal NET's. */
static int
prefix_match(const uint8_t *a, const uint8_t *net, unsigned prefix)
{
	unsigned full = prefix >> 3, rest = prefix & 7;

	if (memcmp(a, net, full) != 0)
		return 0;
	return rest == 0 || (a[full] & part_mask[rest]) == net[full];
}

/* Zeroes every bit of ADDR (LEN bytes) after the first PREFIX. */
static void
clear_host_bits(uint8_t *addr, size_t len, unsigned prefix)
{
	size_t full = prefix >> 3;

	if (full >= len)
		return;
	addr[full] &= part_mask[prefix & 7];
	memset(addr + full + 1, 0, len - full - 1);
}

/* ------------------------------------------------------------------------
 * Parsing
 * ------------------------------------------------------------------------ */

static int
not_an_address(const char *text, char *why, size_t whylen)
{
	return dx__why(why, whylen, -DX_ERULE,
	               "'%s' is not an IPv4 or IPv6 address or CIDR", text);
}

/* Refuses text that is empty, too long, or has spaces at either end. */
static int
check_text(const char *text, char *why, size_t whylen)
{
	size_t n = strnlen(text, DX_RULE_TEXT_MAX + 1);

	if (n == 0)
		return dx__why(why, whylen, -DX_ERULE,
		               "empty rule '': expected an IPv4 or IPv6 "
		               "address or CIDR, uid:N or gid:N");
	if (n > DX_RULE_TEXT_MAX)
		return dx__why(why, whylen, -DX_ERULE,
		               "rule '%.*s...' is longer than %d bytes",
		               DX_RULE_TEXT_MAX, text, DX_RULE_TEXT_MAX);
	if (isspace((unsigned char)text[0]) ||
	    isspace((unsigned char)text[n - 1]))
		return dx__why(why, whylen, -DX_ERULE,
		               "rule '%s' has leading or trailing spaces",
		               text);
	return 0;
}

/*
 * Parses "uid:N" or "gid:N": N in decimal digits only, at most
 * 4294967294 ((uid_t)-1 is no one's id).
 */
static int
parse_id(const char *text, struct dx_rule *rule, char *why, size_t whylen)
{
	const char *p = text + 4;
	uint64_t v = 0;

	rule->kind = text[0] == 'u' ? DX_RULE_UID : DX_RULE_GID;
	for (; *p >= '0' && *p <= '9'; p++)
		if (v <= UINT32_MAX)
			v = v * 10 + (uint64_t)(*p - '0');
	if (*p != '\0' || p == text + 4)
		return dx__why(why, whylen, -DX_ERULE,
		               "'%s' is not %.4s followed by a decimal number",
		               text, text);
	if (v >= UINT32_MAX)
		return dx__why(
		        why, whylen, -DX_ERULE,
		        "'%s' is out of range: the largest %.3s is %" PRIu32,
		        text, text, UINT32_MAX - 1);
	rule->id = (uint32_t)v;
	return 0;
}

/*
 * Copies the address part of TEXT into HOST (DX_RULE_TEXT_MAX + 1 bytes):
 * "[v6]" loses its brackets. Points *REST at what follows ("" or "/N").
 * Returns 1 for a bracketed address, 0 for a bare one, -1 for neither.
 */
static int
split_host(const char *text, char *host, const char **rest)
{
	const char *start = text, *end;
	int bracketed = text[0] == '[';

	if (bracketed) {
		start = text + 1;
		end = strchr(start, ']');
		if (end == NULL)
			return -1;
		*rest = end + 1;
	} else {
		end = strchr(text, '/');
		if (end == NULL)
			end = text + strlen(text);
		*rest = end;
	}
	if (**rest != '\0' && **rest != '/')
		return -1;
	memcpy(host, start, (size_t)(end - start));
	host[end - start] = '\0';
	return bracketed;
}

/*
 * Parses the "/N" in REST (or "" for the full length MAX) into *PREFIX:
 * decimal digits, at most MAX. TEXT is the whole rule, for WHY.
 */
static int
parse_prefix(const char *text, const char *rest, unsigned max, uint8_t *prefix,
             char *why, size_t whylen)
{
	const char *p = rest + 1;
	unsigned v = 0;

	if (*rest == '\0') {
		*prefix = (uint8_t)max;
		return 0;
	}
	if (*p < '0' || *p > '9')
		return dx__why(why, whylen, -DX_ERULE,
		               "expected a decimal prefix length after '/' in "
		               "'%s'",
		               text);
	for (; *p >= '0' && *p <= '9'; p++)
		if (v <= 128)
			v = v * 10 + (unsigned)(*p - '0');
	if (*p != '\0')
		return dx__why(why, whylen, -DX_ERULE,
		               "'%s' has garbage after the prefix length",
		               text);
	if (v > max)
		return dx__why(why, whylen, -DX_ERULE,
		               "prefix /%s is longer than %u bits in '%s'",
		               rest + 1, max, text);
	*prefix = (uint8_t)v;
	return 0;
}

/*
 * Refuses a CIDR with host bits set, suggesting the network it probably
 * meant, and an IPv4-mapped IPv6 rule, which no peer would ever match
 * because mapped peers are matched as IPv4.
 */
static int
check_network(const char *text, const struct dx_rule *rule, char *why,
              size_t whylen)
{
	static const uint8_t mapped[12] = {[10] = 0xff, [11] = 0xff};
	int v4 = rule->kind == DX_RULE_IP4;
	size_t len = v4 ? 4 : 16;
	uint8_t net[16];
	char host[INET6_ADDRSTRLEN];

	memcpy(net, rule->addr, sizeof(net));
	clear_host_bits(net, len, rule->prefix);
	if (memcmp(net, rule->addr, len) != 0) {
		inet_ntop(v4 ? AF_INET : AF_INET6, net, host, sizeof(host));
		return dx__why(why, whylen, -DX_ERULE,
		               "'%s' has host bits set; did you mean %s/%u?",
		               text, host, rule->prefix);
	}
	if (v4 || memcmp(rule->addr, mapped, sizeof(mapped)) != 0)
		return 0;
	inet_ntop(AF_INET, rule->addr + 12, host, sizeof(host));
	return dx__why(why, whylen, -DX_ERULE,
	               "'%s' is IPv4-mapped and would never match (such peers "
	               "are matched as IPv4); write %s/%u",
	               text, host, rule->prefix - 96u);
}

/* Parses an IPv4 or IPv6 address or CIDR, bare or "[v6]" or "[v6]/N". */
static int
parse_ip(const char *text, struct dx_rule *rule, char *why, size_t whylen)
{
	char host[DX_RULE_TEXT_MAX + 1];
	const char *rest;
	int bracketed, rc;

	bracketed = split_host(text, host, &rest);
	if (bracketed < 0)
		return not_an_address(text, why, whylen);
	if (!bracketed && inet_pton(AF_INET, host, rule->addr) == 1)
		rule->kind = DX_RULE_IP4;
	else if (inet_pton(AF_INET6, host, rule->addr) == 1)
		rule->kind = DX_RULE_IP6;
	else
		return not_an_address(text, why, whylen);
	rc = parse_prefix(text, rest, rule->kind == DX_RULE_IP4 ? 32 : 128,
	                  &rule->prefix, why, whylen);
	if (rc < 0)
		return rc;
	return check_network(text, rule, why, whylen);
}

int
dx__rules_add(struct dx_rules *rules, int allow, const char *text, char *why,
              size_t whylen)
{
	struct dx_rule rule;
	int rc;

	rc = check_text(text, why, whylen);
	if (rc < 0)
		return rc;
	if (rules->n >= DX_MAX_RULES)
		return dx__why(why, whylen, -E2BIG,
		               "too many rules: cannot add '%s' (at most %d)",
		               text, DX_MAX_RULES);
	memset(&rule, 0, sizeof(rule));
	rule.allow = allow != 0;
	if (strncmp(text, "uid:", 4) == 0 || strncmp(text, "gid:", 4) == 0)
		rc = parse_id(text, &rule, why, whylen);
	else
		rc = parse_ip(text, &rule, why, whylen);
	if (rc < 0)
		return rc;
	rules->r[rules->n++] = rule;
	rules->n_allow += rule.allow;
	return 0;
}

/* ------------------------------------------------------------------------
 * Rules files
 * ------------------------------------------------------------------------ */

/* Cuts the word at *P (blanks skipped before it); returns it. */
static char *
next_word(char **p)
{
	char *w = *p + strspn(*p, " \t\r"), *e = w + strcspn(w, " \t\r");

	*p = *e != '\0' ? e + 1 : e;
	*e = '\0';
	return w;
}

/* Parses one line (no newline) into NEXT; NAME:LINENO for errors. */
static int
parse_line(struct dx_rules *next, char *line, const char *name, unsigned lineno,
           char *why, size_t whylen)
{
	char *p = line, *verb, *rule, reason[256];
	int rc;

	verb = next_word(&p);
	if (*verb == '\0' || *verb == '#')
		return 0;
	rule = next_word(&p);
	if ((strcmp(verb, "allow") != 0 && strcmp(verb, "deny") != 0) ||
	    *rule == '\0' || *next_word(&p) != '\0')
		return dx__why(why, whylen, -DX_ERULE,
		               "%s:%u: expected 'allow RULE' or 'deny RULE'",
		               name, lineno);
	rc = dx__rules_add(next, strcmp(verb, "allow") == 0, rule, reason,
	                   sizeof(reason));
	if (rc < 0)
		return dx__why(why, whylen, rc, "%s:%u: %s", name, lineno,
		               reason);
	return 0;
}

int
dx__rules_parse(struct dx_rules *rules, const char *text, const char *name,
                char *why, size_t whylen)
{
	struct dx_rules *next = malloc(sizeof(*next));
	char line[256];
	unsigned lineno = 0;
	int rc = 0;

	if (next == NULL)
		return dx__why(why, whylen, -ENOMEM, "%s: out of memory", name);
	*next = *rules;
	while (rc == 0 && *text != '\0') {
		size_t len = strcspn(text, "\n");

		lineno++;
		if (len >= sizeof(line))
			rc = dx__why(why, whylen, -DX_ERULE,
			             "%s:%u: line too long", name, lineno);
		if (rc == 0) {
			memcpy(line, text, len);
			line[len] = '\0';
			rc = parse_line(next, line, name, lineno, why, whylen);
		}
		text += len + (text[len] == '\n');
	}
	if (rc == 0)
		*rules = *next;
	free(next);
	return rc;
}

#define RULES_FILE_MAX 65536

int
dx__rules_load(struct dx_rules *rules, const char *path, char *why,
               size_t whylen)
{
	char *text = malloc(RULES_FILE_MAX + 1);
	size_t n = 0;
	int rc = 0;
	FILE *f;

	if (text == NULL)
		return dx__why(why, whylen, -ENOMEM, "%s: out of memory", path);
	f = fopen(path, "re");
	if (f == NULL) {
		rc = dx__why(why, whylen, dx__neg_errno(), "%s: %s", path,
		             strerror(errno));
	} else {
		n = fread(text, 1, RULES_FILE_MAX + 1, f);
		if (ferror(f))
			rc = dx__why(why, whylen, -EIO, "%s: cannot read it",
			             path);
		else if (n > RULES_FILE_MAX)
			rc = dx__why(why, whylen, -EFBIG,
			             "%s: larger than %d bytes", path,
			             RULES_FILE_MAX);
		fclose(f);
	}
	if (rc == 0 && memchr(text, '\0', n) != NULL)
		rc = dx__why(why, whylen, -DX_ERULE, "%s: not a text file",
		             path);
	if (rc == 0) {
		text[n] = '\0';
		rc = dx__rules_parse(rules, text, path, why, whylen);
	}
	free(text);
	return rc;
}

/* ------------------------------------------------------------------------
 * Checking
 * ------------------------------------------------------------------------ */

/*
 * The rule kind of an IP peer, with *IP pointing at its address bytes in
 * COPY (PEER unmapped), or -1 for a peer that is not an IP peer.
 */
static int
peer_kind(const struct dx_addr *peer, struct dx_addr *copy, const uint8_t **ip)
{
	if (peer == NULL)
		return -1;
	*copy = *peer;
	dx_addr_unmap(copy);
	if (copy->u.sa.sa_family == AF_INET &&
	    copy->len >= sizeof(struct sockaddr_in)) {
		*ip = (const uint8_t *)&copy->u.in.sin_addr;
		return DX_RULE_IP4;
	}
	if (copy->u.sa.sa_family == AF_INET6 &&
	    copy->len >= sizeof(struct sockaddr_in6)) {
		*ip = copy->u.in6.sin6_addr.s6_addr;
		return DX_RULE_IP6;
	}
	return -1;
}

static int
rule_matches(const struct dx_rule *r, int kind, const uint8_t *ip,
             const struct ucred *uc)
{
	switch (r->kind) {
	case DX_RULE_UID:
		return uc != NULL && uc->uid == r->id;
	case DX_RULE_GID:
		return uc != NULL && uc->gid == r->id;
	default:
		return r->kind == kind && prefix_match(ip, r->addr, r->prefix);
	}
}

int
dx__rules_check(const struct dx_rules *rules, const struct dx_addr *peer,
                const struct ucred *cred, int *allowed)
{
	struct dx_addr copy;
	const uint8_t *ip = NULL;
	int kind = peer_kind(peer, &copy, &ip);
	int is_unix = peer == NULL || peer->u.sa.sa_family == AF_UNIX;
	const struct ucred *uc = is_unix ? cred : NULL;

	for (size_t i = 0; i < rules->n; i++) {
		if (rule_matches(&rules->r[i], kind, ip, uc)) {
			*allowed = rules->r[i].allow;
			return (int)i;
		}
	}
	*allowed = rules->n_allow == 0;
	return -1;
}

/* ------------------------------------------------------------------------
 * Formatting
 * ------------------------------------------------------------------------ */

/* Writes "VERB ADDR[/N]" into TMP; returns its length or -EINVAL. */
static int
format_ip(const struct dx_rule *r, const char *verb, char *tmp, size_t len)
{
	int v4 = r->kind == DX_RULE_IP4;
	unsigned full = v4 ? 32 : 128;
	char host[INET6_ADDRSTRLEN];

	if (r->prefix > full ||
	    !inet_ntop(v4 ? AF_INET : AF_INET6, r->addr, host, sizeof(host)))
		return -EINVAL;
	if (r->prefix == full)
		return snprintf(tmp, len, "%s %s", verb, host);
	return snprintf(tmp, len, "%s %s/%u", verb, host, r->prefix);
}

int
dx__rule_format(const struct dx_rule *r, char *buf, size_t len)
{
	const char *verb = r->allow ? "allow" : "deny";
	char tmp[DX_RULESTRLEN];
	int n;

	if (r->kind == DX_RULE_UID || r->kind == DX_RULE_GID)
		n = snprintf(tmp, sizeof(tmp), "%s %cid:%" PRIu32, verb,
		             r->kind == DX_RULE_UID ? 'u' : 'g', r->id);
	else if (r->kind == DX_RULE_IP4 || r->kind == DX_RULE_IP6)
		n = format_ip(r, verb, tmp, sizeof(tmp));
	else
		return -EINVAL;
	if (n < 0 || len == 0)
		return n < 0 ? n : 0;
	if ((size_t)n >= len)
		n = (int)(len - 1);
	memcpy(buf, tmp, (size_t)n);
	buf[n] = '\0';
	return n;
}
