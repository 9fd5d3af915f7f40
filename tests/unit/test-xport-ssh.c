/*
 * xport-ssh: shell quoting, the failures that need no server, the
 * ~/.ssh/config reader (sshconf), ProxyJump lists and known_hosts lookups,
 * as TAP;
 * with "driver ..." arguments, a tiny client for tests/func/ssh-transport.sh
 * that runs a remote command through the transport, copying stdin to it and
 * its output to stdout.
 */
#include "autoconf.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libssh/libssh.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "tap.h"

#include "base/err.h"
#include "base/log.h"
#include "base/xmalloc.h"
#include "config/config.h"
#include "wire/known-hosts.h"
#include "wire/sshconf.h"
#include "wire/xport-ssh.h"
#include "wire/xport.h"

static void
test_quote(void)
{
	static const struct {
		const char *in, *want;
	} cases[] = {
		{ "serve", "serve" },
		{ "/opt/openmrs/distribution", "/opt/openmrs/distribution" },
		{ "--root=/a,b:c@d%e+f", "--root=/a,b:c@d%e+f" },
		{ "", "''" },
		{ "two words", "'two words'" },
		{ "it's", "'it'\\''s'" },
		{ "'", "''\\'''" },
		{ "$(reboot)", "'$(reboot)'" },
		{ "`id`;rm -rf /", "'`id`;rm -rf /'" },
		{ "a\nb", "'a\nb'" },
		{ "*?[]~#&|<>!\\\"", "'*?[]~#&|<>!\\\"'" },
	};
	char *q;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		q = xport_ssh_quote(cases[i].in);
		CHECK(strcmp(q, cases[i].want) == 0, "quote case %zu", i);
		free(q);
	}
}

static void
test_quote_argv(void)
{
	char *argv[] = { "serve", "--root", "/srv/my site", "it's", NULL };
	char *empty[] = { NULL };
	char *s;

	s = xport_ssh_quote_argv(argv);
	CHECK(strcmp(s, "serve --root '/srv/my site' 'it'\\''s'") == 0, "argv joined: %s", s);
	free(s);
	s = xport_ssh_quote_argv(empty);
	CHECK(strcmp(s, "") == 0, "empty argv is an empty string");
	free(s);
}

/* The query most cases use: alias "site" reaching 10.0.0.5:2222 as openmrs. */
static const struct sshconf_query query = {
	.host = "site", .hostname = "10.0.0.5", .port = 2222, .user = "openmrs",
	.local_user = "admin", .home = "/home/admin",
};

static void
test_sshconf_good(void)
{
	static const struct {
		const char *text;
		const char *known_hosts;	/* first user file, or NULL */
		const char *known_hosts2;	/* second, or NULL */
		enum sshconf_strict strict;
		const char *jump;		/* proxy_jump, or NULL */
		int proxy_set;
	} cases[] = {
		{ "", NULL, NULL, SSHCONF_STRICT_UNSET, NULL, 0 },
		{ "Host site\n  UserKnownHostsFile /kh\n", "/kh", NULL, SSHCONF_STRICT_UNSET, NULL, 0 },
		/* The first value wins; later blocks fill only what is unset. */
		{ "Host site\n UserKnownHostsFile /a\nHost *\n UserKnownHostsFile /b\n"
		  " StrictHostKeyChecking no\n", "/a", NULL, SSHCONF_STRICT_NO, NULL, 0 },
		{ "Host *\n StrictHostKeyChecking yes\nHost site\n StrictHostKeyChecking no\n",
		  NULL, NULL, SSHCONF_STRICT_YES, NULL, 0 },
		/* Lines before any Host apply to every host. */
		{ "StrictHostKeyChecking accept-new\nHost other\n UserKnownHostsFile /o\n",
		  NULL, NULL, SSHCONF_STRICT_ACCEPT_NEW, NULL, 0 },
		/* Another host's block, a negated pattern, wildcards, case. */
		{ "Host other\n UserKnownHostsFile /o\n", NULL, NULL, SSHCONF_STRICT_UNSET, NULL, 0 },
		{ "Host * !site\n UserKnownHostsFile /o\n", NULL, NULL, SSHCONF_STRICT_UNSET, NULL, 0 },
		{ "Host s?te\n UserKnownHostsFile /q\n", "/q", NULL, SSHCONF_STRICT_UNSET, NULL, 0 },
		{ "host SITE\n userknownhostsfile /c\n", "/c", NULL, SSHCONF_STRICT_UNSET, NULL, 0 },
		{ "Host x* s*\n UserKnownHostsFile /w\n", "/w", NULL, SSHCONF_STRICT_UNSET, NULL, 0 },
		/* Host matches the alias, not the HostName. */
		{ "Host 10.0.0.5\n UserKnownHostsFile /ip\n", NULL, NULL, SSHCONF_STRICT_UNSET,
		  NULL, 0 },
		/* Match host is the HostName, originalhost the alias. */
		{ "Match host 10.0.0.*\n UserKnownHostsFile /m\n", "/m", NULL,
		  SSHCONF_STRICT_UNSET, NULL, 0 },
		{ "Match originalhost site user openmrs\n StrictHostKeyChecking ask\n", NULL, NULL,
		  SSHCONF_STRICT_ASK, NULL, 0 },
		{ "Match originalhost site user root\n StrictHostKeyChecking ask\n", NULL, NULL,
		  SSHCONF_STRICT_UNSET, NULL, 0 },
		{ "Match !localuser root\n StrictHostKeyChecking true\n", NULL, NULL,
		  SSHCONF_STRICT_YES, NULL, 0 },
		{ "Match host site,10.0.0.*,!10.0.0.5\n StrictHostKeyChecking no\n", NULL, NULL,
		  SSHCONF_STRICT_UNSET, NULL, 0 },
		{ "Match all\n StrictHostKeyChecking off\n", NULL, NULL, SSHCONF_STRICT_NO, NULL, 0 },
		/* Not evaluated: the block does not apply, in either sense of exec. */
		{ "Match exec \"true\"\n StrictHostKeyChecking no\n", NULL, NULL,
		  SSHCONF_STRICT_UNSET, NULL, 0 },
		{ "Match !exec \"false\" host *\n StrictHostKeyChecking no\n", NULL, NULL,
		  SSHCONF_STRICT_UNSET, NULL, 0 },
		{ "Match canonical all\n StrictHostKeyChecking no\n", NULL, NULL,
		  SSHCONF_STRICT_UNSET, NULL, 0 },
		/* Spellings: '=', quotes, comments, tabs, CRLF. */
		{ "Host site\nUserKnownHostsFile=/e\n", "/e", NULL, SSHCONF_STRICT_UNSET, NULL, 0 },
		{ "Host=site\n\tUserKnownHostsFile = \"/with space/kh\" # note\r\n",
		  "/with space/kh", NULL, SSHCONF_STRICT_UNSET, NULL, 0 },
		{ "# Host site\n  # UserKnownHostsFile /no\n\n", NULL, NULL, SSHCONF_STRICT_UNSET,
		  NULL, 0 },
		/* Several files; tokens; "none" is as unset. */
		{ "UserKnownHostsFile ~/.ssh/kh %d/kh2\n", "/home/admin/.ssh/kh", "/home/admin/kh2",
		  SSHCONF_STRICT_UNSET, NULL, 0 },
		{ "UserKnownHostsFile /kh/%h_%p_%n_%r_%u_%%\n", "/kh/10.0.0.5_2222_site_openmrs_admin_%",
		  NULL, SSHCONF_STRICT_UNSET, NULL, 0 },
		{ "UserKnownHostsFile ${DS_TEST_KH_DIR}/kh\n", "/from/env/kh", NULL,
		  SSHCONF_STRICT_UNSET, NULL, 0 },
		{ "UserKnownHostsFile none\nHost *\n UserKnownHostsFile /later\n", "/later", NULL,
		  SSHCONF_STRICT_UNSET, NULL, 0 },
		/* ProxyJump and ProxyCommand: the first of them wins. */
		{ "Host site\n ProxyJump gw\n", NULL, NULL, SSHCONF_STRICT_UNSET, "gw", 1 },
		{ "Host site\n ProxyJump u@gw:2200,gw2\n", NULL, NULL, SSHCONF_STRICT_UNSET,
		  "u@gw:2200,gw2", 1 },
		{ "Host site\n ProxyCommand nc %h %p\n ProxyJump gw\n", NULL, NULL,
		  SSHCONF_STRICT_UNSET, NULL, 1 },
		{ "Host site\n ProxyJump none\nHost *\n ProxyJump gw\n", NULL, NULL,
		  SSHCONF_STRICT_UNSET, NULL, 1 },
		{ "Host other\n ProxyJump gw\n", NULL, NULL, SSHCONF_STRICT_UNSET, NULL, 0 },
		/* Keywords that are libssh's business are skipped. */
		{ "Host site\n HostName x\n Port 1\n Ciphers aes128-ctr\n Bogus yes\n", NULL, NULL,
		  SSHCONF_STRICT_UNSET, NULL, 0 },
	};

	setenv("DS_TEST_KH_DIR", "/from/env", 1);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sshconf conf = { 0 };
		const char *t = cases[i].text;
		char **kh;
		int r;

		r = sshconf_read_mem("config", t, strlen(t), ".", &query, &conf);
		kh = conf.user_known_hosts;
		CHECK(r == 0, "good %zu: reads (%d)", i, r);
		if (cases[i].known_hosts == NULL)
			CHECK(kh == NULL, "good %zu: no UserKnownHostsFile", i);
		else
			CHECK(kh != NULL && strcmp(kh[0], cases[i].known_hosts) == 0 &&
			    (cases[i].known_hosts2 == NULL ? kh[1] == NULL :
			    kh[1] != NULL && strcmp(kh[1], cases[i].known_hosts2) == 0),
			    "good %zu: UserKnownHostsFile %s", i, kh ? kh[0] : "(none)");
		CHECK(conf.strict == cases[i].strict, "good %zu: StrictHostKeyChecking %s", i,
		    sshconf_strict_name(conf.strict));
		CHECK(conf.proxy_set == cases[i].proxy_set &&
		    (cases[i].jump == NULL ? conf.proxy_jump == NULL :
		    conf.proxy_jump != NULL && strcmp(conf.proxy_jump, cases[i].jump) == 0),
		    "good %zu: ProxyJump %s", i, conf.proxy_jump ? conf.proxy_jump : "(none)");
		sshconf_release(&conf);
	}
}

static void
test_sshconf_origin(void)
{
	static const char text[] = "Host site\n  StrictHostKeyChecking accept-new\n"
	    "  UserKnownHostsFile /kh\n  ProxyJump gw\n";
	struct sshconf conf = { 0 };

	CHECK(sshconf_read_mem("cfg", text, sizeof(text) - 1, ".", &query, &conf) == 0,
	    "origins: reads");
	CHECK(conf.strict_origin && strcmp(conf.strict_origin, "cfg:2") == 0,
	    "StrictHostKeyChecking from cfg:2");
	CHECK(conf.user_known_hosts_origin &&
	    strcmp(conf.user_known_hosts_origin, "cfg:3") == 0, "UserKnownHostsFile from cfg:3");
	CHECK(conf.proxy_jump_origin && strcmp(conf.proxy_jump_origin, "cfg:4") == 0,
	    "ProxyJump from cfg:4");
	sshconf_release(&conf);
	CHECK(conf.user_known_hosts == NULL && conf.strict == SSHCONF_STRICT_UNSET,
	    "release zeroes");
}

static void
test_sshconf_bad(void)
{
	static const char *const bad[] = {
		"StrictHostKeyChecking maybe\n",
		"Host site\n StrictHostKeyChecking\tsometimes\n",
		"UserKnownHostsFile /kh/%Q\n",
		"UserKnownHostsFile \"/unterminated\n",
		"UserKnownHostsFile ${DS_TEST_UNSET_VARIABLE}/kh\n",
		"UserKnownHostsFile ${}/kh\n",
		"UserKnownHostsFile ${DS_TEST_KH_DIR/kh\n",
		"ProxyJump a,,b\n",
		"ProxyJump @gw\n",
		"ProxyJump gw:0\n",
		"ProxyJump gw:99999\n",
		"ProxyJump gw:22x\n",
		"ProxyJump [::1\n",
		"ProxyJump gw,\n",
		"Match\n",
		"Match host\n",
		"Match sometimes\n",
		"Include inc-loop.conf\n",
	};
	char nul[] = "Host site\n UserKnownHostsFile /a\0b\n";

	unsetenv("DS_TEST_UNSET_VARIABLE");
	/* A file that includes itself ends at the depth limit. */
	tap_write_file("inc-loop.conf", "Include inc-loop.conf\n", 22);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct sshconf conf = { 0 };
		int r = sshconf_read_mem("config", bad[i], strlen(bad[i]), ".", &query, &conf);

		CHECK(r == DS_ERR_CONFIG, "bad %zu refused", i);
		sshconf_release(&conf);
	}
	{
		struct sshconf conf = { 0 };

		CHECK(sshconf_read_mem("config", nul, sizeof(nul) - 1, ".", &query, &conf) ==
		    DS_ERR_CONFIG, "a NUL byte is refused");
		sshconf_release(&conf);
	}
	{
		struct sshconf conf = { 0 };
		static const char other[] = "Host other\n StrictHostKeyChecking maybe\n";

		/* Another host's block is not ours to judge. */
		CHECK(sshconf_read_mem("config", other, sizeof(other) - 1, ".", &query, &conf) == 0,
		    "a bad value in another host's block is not an error");
		sshconf_release(&conf);
	}
}

static void
test_sshconf_include(void)
{
	static const char main_text[] = "Host site\n  Include conf.d/*.conf\n"
	    "Host *\n  StrictHostKeyChecking yes\n";
	static const char a_text[] = "UserKnownHostsFile /from-a\nHost nobody\n";
	static const char b_text[] = "UserKnownHostsFile /from-b\nProxyJump gw\n";
	struct sshconf conf = { 0 };

	CHECK(mkdir("conf.d", 0700) == 0, "conf.d");
	/* Read in order (a, then b); a Host line inside ends at the file's end. */
	tap_write_file("conf.d/a.conf", a_text, sizeof(a_text) - 1);
	tap_write_file("conf.d/b.conf", b_text, sizeof(b_text) - 1);
	CHECK(sshconf_read_mem("config", main_text, sizeof(main_text) - 1, ".", &query,
	    &conf) == 0, "include: reads");
	CHECK(conf.user_known_hosts && strcmp(conf.user_known_hosts[0], "/from-a") == 0,
	    "include: the first file's value wins");
	/* As ssh: each included file starts in the including block's state. */
	CHECK(conf.proxy_jump != NULL && strcmp(conf.proxy_jump, "gw") == 0,
	    "include: a.conf's 'Host nobody' does not reach into b.conf (%s)",
	    conf.proxy_jump ? conf.proxy_jump : "none");
	CHECK(conf.strict == SSHCONF_STRICT_YES, "include: the outer file goes on after it");
	CHECK(conf.user_known_hosts_origin &&
	    strcmp(conf.user_known_hosts_origin, "./conf.d/a.conf:1") == 0,
	    "include: origin names the included file (%s)",
	    conf.user_known_hosts_origin ? conf.user_known_hosts_origin : "none");
	sshconf_release(&conf);
	CHECK(sshconf_read_file("no-such-config", ".", &query, &conf) == 0 &&
	    conf.user_known_hosts == NULL, "a missing file is an empty one");
	sshconf_release(&conf);
}

static void
test_parse_jump(void)
{
	static const struct {
		const char *spec;
		size_t n;
		const char *user0, *host0;
		unsigned port0;
		const char *host_last;
	} cases[] = {
		{ "gw", 1, NULL, "gw", 0, "gw" },
		{ "admin@gw.example.org:2222", 1, "admin", "gw.example.org", 2222, "gw.example.org" },
		{ "ssh://u@gw:22", 1, "u", "gw", 22, "gw" },
		{ "[fe80::1]:2200", 1, NULL, "fe80::1", 2200, "fe80::1" },
		{ "u@[::1]", 1, "u", "::1", 0, "::1" },
		{ "first,second,u@third:3", 3, NULL, "first", 0, "third" },
		{ "none", 0, NULL, NULL, 0, NULL },
	};
	static const char *const bad[] = { "", ",", "gw,", ",gw", "a,,b", "@gw", "gw:", "gw:0",
	    "gw:65536", "gw:2x", "[]:22", "[::1]x", "g w", "a/b" };
	struct sshconf_hop *hops;
	size_t n;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int r = sshconf_parse_jump(cases[i].spec, &hops, &n);

		CHECK(r == 0 && n == cases[i].n, "jump '%s': %zu hops", cases[i].spec, n);
		if (r == 0 && n > 0) {
			CHECK((cases[i].user0 == NULL ? hops[0].user == NULL :
			    hops[0].user != NULL && strcmp(hops[0].user, cases[i].user0) == 0) &&
			    strcmp(hops[0].host, cases[i].host0) == 0 &&
			    hops[0].port == cases[i].port0 &&
			    strcmp(hops[n - 1].host, cases[i].host_last) == 0,
			    "jump '%s': first %s port %u, last %s", cases[i].spec, hops[0].host,
			    hops[0].port, hops[n - 1].host);
		}
		sshconf_hops_free(hops, n);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK(sshconf_parse_jump(bad[i], &hops, &n) == DS_ERR_INVALID && hops == NULL &&
		    n == 0, "jump '%s' refused", bad[i]);
	}
}

/* "NAME TYPE BASE64" for KEY, as a known_hosts line. */
static char *
kh_line(const char *name, ssh_key key)
{
	char *b64 = NULL, *s;

	if (ssh_pki_export_pubkey_base64(key, &b64) != SSH_OK)
		return xstrdup("broken");
	s = xasprintf("%s %s %s\n", name, ssh_key_type_to_char(ssh_key_type(key)), b64);
	ssh_string_free_char(b64);
	return s;
}

/* OpenSSH's hashed host name: |1|base64(salt)|base64(HMAC-SHA1(salt, name)). */
static char *
hashed_name(const char *name)
{
	unsigned char salt[20], mac[20];
	unsigned char salt64[64], mac64[64];
	unsigned int maclen = sizeof(mac);

	for (size_t i = 0; i < sizeof(salt); i++)
		salt[i] = (unsigned char)(i * 37 + 11);
	HMAC(EVP_sha1(), salt, sizeof(salt), (const unsigned char *)name, strlen(name), mac,
	    &maclen);
	EVP_EncodeBlock(salt64, salt, sizeof(salt));
	EVP_EncodeBlock(mac64, mac, maclen);
	return xasprintf("|1|%s|%s", salt64, mac64);
}

static int
check_state(char *const *files, const char *name, ssh_key key, enum known_hosts_state want,
    const char *file, unsigned line)
{
	struct known_hosts_result res;
	int ok;

	if (known_hosts_check(files, name, key, &res) != 0)
		return 0;
	ok = res.state == want && (file == NULL ? res.file == NULL :
	    res.file != NULL && strcmp(res.file, file) == 0 && res.line == line);
	if (!ok)
		printf("# state %d (want %d) at %s:%u\n", res.state, want,
		    res.file ? res.file : "-", res.line);
	known_hosts_result_release(&res);
	return ok;
}

static void
test_known_hosts(void)
{
	ssh_key k1 = NULL, k2 = NULL, ec = NULL;
	const char *name = "[10.0.0.5]:2222";
	char *l1, *l2, *lec, *other, *hashed, *text, *n;
	char *one[] = { "kh1", NULL }, *two[] = { "kh1", "kh2", NULL };
	char *missing[] = { "no-such-dir/kh", "kh-none", NULL };
	struct known_hosts_result res;
	struct stat st;

	n = known_hosts_name("Site.Example.ORG", 22);
	CHECK(strcmp(n, "site.example.org") == 0, "name on port 22: %s", n);
	free(n);
	n = known_hosts_name("10.0.0.5", 2222);
	CHECK(strcmp(n, "[10.0.0.5]:2222") == 0, "name off port 22: %s", n);
	free(n);
	CHECK(ssh_pki_generate(SSH_KEYTYPE_ED25519, 0, &k1) == SSH_OK &&
	    ssh_pki_generate(SSH_KEYTYPE_ED25519, 0, &k2) == SSH_OK &&
	    ssh_pki_generate(SSH_KEYTYPE_ECDSA_P256, 256, &ec) == SSH_OK, "three keys");
	l1 = kh_line(name, k1);
	l2 = kh_line(name, k2);
	lec = kh_line(name, ec);
	other = kh_line("[10.0.0.6]:2222", k2);

	CHECK(check_state(missing, name, k1, KNOWN_HOSTS_UNKNOWN, NULL, 0),
	    "missing files: unknown");
	/* Comments, blank lines, another host's key, a line that does not parse. */
	text = xasprintf("# comment\n\n%s%s broken-type AAAA\n   %s", other, name, l1);
	tap_write_file("kh1", text, strlen(text));
	free(text);
	CHECK(check_state(one, name, k1, KNOWN_HOSTS_MATCH, "kh1", 5), "match at kh1:5");
	CHECK(check_state(one, name, k2, KNOWN_HOSTS_CHANGED, "kh1", 5), "changed at kh1:5");
	CHECK(known_hosts_check(one, name, k2, &res) == 0 && res.recorded_type != NULL &&
	    strcmp(res.recorded_type, "ssh-ed25519") == 0, "changed names the recorded type");
	known_hosts_result_release(&res);
	CHECK(check_state(one, name, ec, KNOWN_HOSTS_OTHER_TYPE, "kh1", 5),
	    "another type recorded: other type");
	CHECK(check_state(one, "[10.0.0.7]:2222", k1, KNOWN_HOSTS_UNKNOWN, NULL, 0),
	    "another host: unknown");
	/* A match in a later file wins over a changed key in an earlier one. */
	tap_write_file("kh2", l2, strlen(l2));
	CHECK(check_state(two, name, k2, KNOWN_HOSTS_MATCH, "kh2", 1), "match in kh2 wins");
	/* @revoked wins over everything. */
	text = xasprintf("%s@revoked %s", l2, l1);
	tap_write_file("kh2", text, strlen(text));
	free(text);
	CHECK(check_state(two, name, k1, KNOWN_HOSTS_REVOKED, "kh2", 2), "revoked at kh2:2");
	CHECK(check_state(two, name, k2, KNOWN_HOSTS_MATCH, "kh2", 1),
	    "another key's revocation does not matter");
	/* Hashed names, CRLF line ends. */
	hashed = hashed_name(name);
	text = xasprintf("%s %s", hashed, strchr(lec, ' ') + 1);
	text[strlen(text) - 1] = '\r';
	free(hashed);
	hashed = xasprintf("%s\n", text);
	tap_write_file("kh2", hashed, strlen(hashed));
	free(text);
	free(hashed);
	CHECK(check_state(two, name, ec, KNOWN_HOSTS_MATCH, "kh2", 1), "hashed name matches");
	CHECK(check_state(two, "[10.0.0.8]:2222", ec, KNOWN_HOSTS_UNKNOWN, NULL, 0),
	    "hashed name: another host is unknown");

	/* Recording: the directory made 0700, the file 0600, our line after a last
	 * line without its newline. */
	CHECK(known_hosts_record("new-dir/kh", name, k1) == 0, "record into a new directory");
	CHECK(stat("new-dir", &st) == 0 && (st.st_mode & 0777) == 0700, "directory is 0700");
	CHECK(stat("new-dir/kh", &st) == 0 && (st.st_mode & 0777) == 0600, "file is 0600");
	{
		char *rec[] = { "new-dir/kh", NULL };

		CHECK(check_state(rec, name, k1, KNOWN_HOSTS_MATCH, "new-dir/kh", 1),
		    "the recorded key matches");
	}
	tap_write_file("kh3", "# no newline", 12);
	{
		char *rec[] = { "kh3", NULL };

		CHECK(known_hosts_record("kh3", name, k2) == 0 &&
		    check_state(rec, name, k2, KNOWN_HOSTS_MATCH, "kh3", 2),
		    "recorded on a line of its own");
	}
	CHECK(known_hosts_record("no-such-dir/deeper/kh", name, k1) == DS_ERR_SYSTEM,
	    "a directory two levels missing: an error, logged");
	free(l1);
	free(l2);
	free(lec);
	free(other);
	ssh_key_free(k1);
	ssh_key_free(k2);
	ssh_key_free(ec);
}

/* A TCP port on loopback that nobody listens on (bound, never listened). */
static int
closed_port(int *fd_out)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sin, &len) != 0)
		return -1;
	*fd_out = fd;
	return ntohs(sin.sin_port);
}

static void
test_open_failures(void)
{
	struct config_host host;
	struct xport *x = (struct xport *)1;
	int fd = -1, port, r;

	memset(&host, 0, sizeof(host));
	host.name = "nowhere";
	r = xport_ssh_open(&host, NULL, NULL, &x);
	CHECK(r == DS_ERR_CONFIG && x == NULL, "no address: DS_ERR_CONFIG, *out NULL (%d)", r);

	port = closed_port(&fd);
	CHECK(port > 0, "a closed loopback port");
	host.address = "127.0.0.1";
	host.port = (unsigned)port;
	host.known_hosts = "known_hosts";
	host.connect_timeout = 5;
	x = (struct xport *)1;
	r = xport_ssh_open(&host, "serve", NULL, &x);
	CHECK(r == DS_ERR_CONNECT && x == NULL, "refused: DS_ERR_CONNECT (%d)", r);
	r = xport_ssh_trust(&host, NULL, NULL, NULL);
	CHECK(r == DS_ERR_CONNECT, "trust refused: DS_ERR_CONNECT (%d)", r);
	CHECK(access("known_hosts", F_OK) != 0, "nothing recorded");
	if (fd >= 0)
		close(fd);
}

static int
driver_usage(void)
{
	fprintf(stderr, "usage: test-xport-ssh driver [-a ADDRESS] [-p PORT] [-l USER] "
	    "[-i IDENTITY] [-k KNOWN_HOSTS] [-r REMOTE_COMMAND] [-t IDLE_TIMEOUT] "
	    "[-c CONNECT_TIMEOUT] [-n] [-N NAME] [-v] [-- REMOTE_ARGS...]\n");
	return 2;
}

/*
 * Exit: the remote exit status, or 100 + -DS_ERR_* when the transport
 * failed (open, read, write or close).
 */
static int
driver(int argc, char **argv)
{
	struct config_host host;
	struct xport_ssh_opts opts;
	struct xport *x = NULL;
	char buf[65536], *args = NULL;
	size_t n;
	ssize_t got;
	int ch, r;

	memset(&host, 0, sizeof(host));
	memset(&opts, 0, sizeof(opts));
	host.name = "test-host";
	optind = 1;
	while ((ch = getopt(argc, argv, "a:p:l:i:k:r:t:c:nN:v")) != -1) {
		switch (ch) {
		case 'a': host.address = optarg; break;
		case 'p': host.port = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'l': host.user = optarg; break;
		case 'i': host.identity = optarg; break;
		case 'k': host.known_hosts = optarg; break;
		case 'r': host.remote_command = optarg; break;
		case 't': host.idle_timeout = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'c': host.connect_timeout = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'n': opts.accept_new = 1; break;
		case 'N': host.name = optarg; break;
		case 'v': log_set_level(LOG_LEVEL_DEBUG); break;
		default: return driver_usage();
		}
	}
	args = xport_ssh_quote_argv(argv + optind);
	r = xport_ssh_open(&host, args, &opts, &x);
	free(args);
	if (r != 0)
		goto out;
	while ((n = fread(buf, 1, sizeof(buf), stdin)) > 0)
		if ((r = xport_write(x, buf, n)) != 0)
			goto out;
	if ((r = xport_shutdown(x)) != 0)
		goto out;
	while ((got = xport_read(x, buf, sizeof(buf))) > 0)
		fwrite(buf, 1, (size_t)got, stdout);
	fflush(stdout);
	if (got < 0) {
		r = (int)got;
		goto out;
	}
	r = xport_close(x);
	fprintf(stderr, "driver: close returned %d\n", r);
out:
	if (r < 0)
		fprintf(stderr, "driver: %s (%d)\n", ds_strerror(r), r);
	xport_free(x);
	return r < 0 ? 100 - r : r;
}

int
main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "driver") == 0)
		return driver(argc - 1, argv + 1);
	/* The failures below are expected; their messages go to the TAP log. */
	tap_run("quote", test_quote);
	tap_run("quote_argv", test_quote_argv);
	tap_run("open_failures", test_open_failures);
	tap_run("sshconf_good", test_sshconf_good);
	tap_run("sshconf_origin", test_sshconf_origin);
	tap_run("sshconf_bad", test_sshconf_bad);
	tap_run("sshconf_include", test_sshconf_include);
	tap_run("parse_jump", test_parse_jump);
	tap_run("known_hosts", test_known_hosts);
	return tap_done();
}
