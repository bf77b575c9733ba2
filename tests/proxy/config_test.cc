// tests/proxy/config_test.cc: config loading: durations, defaults, every kind of error with
// its exact line:col, errors collected together, and the shipped config.toml.example.
#include "proxy/config.h"

#include <gtest/gtest.h>

#include <string>

namespace mxscreen::proxy {
namespace {

using std::chrono::milliseconds;

ConfigResult parse(std::string_view text) { return parse_config(text, "t.toml"); }

// The single error of `text`, as "t.toml:line:col: message".
std::string only_error(std::string_view text) {
  ConfigResult r = parse(text);
  EXPECT_FALSE(r.config.has_value());
  if (r.errors.size() != 1) {
    std::string all;
    for (const auto& e : r.errors) all += e.to_string() + "\n";
    ADD_FAILURE() << "expected exactly one error, got " << r.errors.size() << ":\n" << all;
    return all;
  }
  return r.errors[0].to_string();
}

TEST(ConfigDuration, Units) {
  EXPECT_EQ(parse_duration("500ms"), milliseconds(500));
  EXPECT_EQ(parse_duration("6s"), milliseconds(6000));
  EXPECT_EQ(parse_duration("5m"), milliseconds(300000));
  EXPECT_EQ(parse_duration("2h"), milliseconds(7200000));
  EXPECT_EQ(parse_duration("35d"), milliseconds(int64_t{35} * 86400000));
  EXPECT_EQ(parse_duration("1w"), milliseconds(int64_t{7} * 86400000));
  EXPECT_EQ(parse_duration("0s"), milliseconds(0));
}

TEST(ConfigDuration, BareNumberIsSeconds) {
  EXPECT_EQ(parse_duration("300"), milliseconds(300000));
  EXPECT_EQ(parse_duration("0"), milliseconds(0));
}

TEST(ConfigDuration, RejectsGarbage) {
  for (std::string_view bad : {"", "s", "-1s", "-5", "1.5s", "6 s", " 6s", "6sec", "6S", "abc",
                               "6s ", "99999999999999999999", "9999999999999999d"}) {
    EXPECT_EQ(parse_duration(bad), std::nullopt) << bad;
  }
}

TEST(ConfigDefaults, EmptyFile) {
  ConfigResult r = parse("");
  ASSERT_TRUE(r.config.has_value());
  ASSERT_TRUE(r.errors.empty());
  const Config& c = *r.config;
  EXPECT_EQ(c.server.hostname, "");
  EXPECT_EQ(c.server.user, "mxscreen");
  EXPECT_EQ(c.server.state_dir, "/var/lib/mxscreen");
  EXPECT_EQ(c.server.max_sessions, 20000);
  EXPECT_DOUBLE_EQ(c.server.stress_threshold, 0.8);
  EXPECT_EQ(c.server.drain_timeout, milliseconds(30000));
  EXPECT_EQ(c.server.workers, 1);
  EXPECT_EQ(c.server.buffer_size, 65536u);
  ASSERT_EQ(c.listen.size(), 1u);
  EXPECT_EQ(c.listen[0].address.to_string(), "0.0.0.0:25");
  EXPECT_EQ(c.listen[0].role, ListenRole::kMx);
  EXPECT_FALSE(c.listen[0].proxy_protocol);
  EXPECT_EQ(c.backend.address.to_string(), "127.0.0.1:10025");
  EXPECT_EQ(c.backend.handoff, HandoffMode::kProxyV2);
  EXPECT_EQ(c.backend.connect_timeout, milliseconds(5000));
  EXPECT_EQ(c.backend.max_sessions, 200);
  EXPECT_EQ(c.backend.banner_timeout, milliseconds(30000));
  EXPECT_EQ(c.greet.banner, "$hostname ESMTP");
  EXPECT_EQ(c.greet.wait, milliseconds(6000));
  EXPECT_EQ(c.greet.action, checks::Action::kEnforce);
  EXPECT_TRUE(c.smtp.helo_required);
  EXPECT_TRUE(c.smtp.disable_vrfy);
  EXPECT_EQ(c.smtp.line_length_limit, 2048);
  EXPECT_EQ(c.smtp.command_count_limit, 20);
  EXPECT_EQ(c.smtp.command_time_limit, milliseconds(300000));
  EXPECT_EQ(c.smtp.pipelining, checks::Action::kEnforce);
  EXPECT_EQ(c.smtp.non_smtp_command, checks::Action::kDrop);
  EXPECT_EQ(c.smtp.bare_newline, checks::Action::kOff);
  EXPECT_EQ(c.smtp.idle_timeout, milliseconds(300000));
  EXPECT_EQ(c.errors.sleep_time, milliseconds(1000));
  EXPECT_EQ(c.errors.soft_limit, 10);
  EXPECT_EQ(c.errors.hard_limit, 20);
  EXPECT_EQ(c.errors.junk_command_limit, 100);
  EXPECT_TRUE(c.helo.reject_invalid);
  EXPECT_TRUE(c.helo.reject_non_fqdn);
  EXPECT_FALSE(c.helo.reject_unknown);
  EXPECT_TRUE(c.helo.rhsbl.empty());
  EXPECT_FALSE(c.client.reject_unknown_reverse);
  EXPECT_FALSE(c.client.reject_unknown);
  EXPECT_TRUE(c.sender.reject_non_fqdn);
  EXPECT_FALSE(c.sender.reject_unknown_domain);
  EXPECT_TRUE(c.recipient.reject_non_fqdn);
  ASSERT_EQ(c.dnsbl.sites.size(), 2u);
  EXPECT_EQ(c.dnsbl.sites[0], "zen.spamhaus.org=127.0.0.[2..11]*3");
  EXPECT_EQ(c.dnsbl.threshold, 3);
  EXPECT_EQ(c.dnsbl.allowlist_threshold, -1);
  EXPECT_EQ(c.dnsbl.action, checks::Action::kEnforce);
  EXPECT_TRUE(c.dns.nameservers.empty());
  EXPECT_EQ(c.dns.timeout, milliseconds(5000));
  EXPECT_TRUE(c.greylist.enabled);
  EXPECT_EQ(c.greylist.delay, milliseconds(300000));
  EXPECT_EQ(c.greylist.retry_window, milliseconds(int64_t{2} * 86400000));
  EXPECT_EQ(c.greylist.max_age, milliseconds(int64_t{35} * 86400000));
  EXPECT_EQ(c.greylist.ipv4_prefix, 24);
  EXPECT_EQ(c.greylist.ipv6_prefix, 64);
  EXPECT_EQ(c.greylist.auto_allowlist_clients, 5);
  EXPECT_TRUE(c.cache.enabled);
  EXPECT_EQ(c.cache.greet_ttl, milliseconds(86400000));
  EXPECT_EQ(c.cache.dnsbl_min_ttl, milliseconds(60000));
  EXPECT_EQ(c.cache.dnsbl_max_ttl, milliseconds(3600000));
  EXPECT_EQ(c.cache.pipelining_ttl, milliseconds(int64_t{30} * 86400000));
  EXPECT_EQ(c.cache.non_smtp_command_ttl, milliseconds(int64_t{30} * 86400000));
  EXPECT_EQ(c.cache.bare_newline_ttl, milliseconds(int64_t{30} * 86400000));
  EXPECT_TRUE(c.dnsbl.reply_map.empty());
  EXPECT_EQ(c.fake_mx.action, FakeMxAction::kReset);
  EXPECT_EQ(c.fake_mx.ban_after, 3);
  EXPECT_EQ(c.fake_mx.window, milliseconds(86400000));
  EXPECT_EQ(c.fake_mx.pair_window, milliseconds(600000));
  EXPECT_EQ(c.ban.ban_time, milliseconds(3600000));
  EXPECT_EQ(c.ban.max_ban_time, milliseconds(int64_t{7} * 86400000));
  EXPECT_EQ(c.ban.max_retry, 3);
  EXPECT_EQ(c.ban.find_time, milliseconds(600000));
  EXPECT_EQ(c.limits.client_connection_count, 50);
  EXPECT_EQ(c.limits.client_connection_rate, 0);
  EXPECT_EQ(c.limits.ipv6_prefix, 84);  // Postfix 3.8's smtpd_client_ipv6_prefix_length
  EXPECT_EQ(c.ban.ipv6_prefix, 64);
  ASSERT_EQ(c.access.allow.size(), 2u);
  EXPECT_EQ(c.access.allow[0].to_string(), "127.0.0.0/8");
  EXPECT_EQ(c.access.allow[1].to_string(), "::1/128");
  EXPECT_TRUE(c.access.deny.empty());
  EXPECT_EQ(c.access.file, "");
  EXPECT_EQ(c.tls.cert_file, "");
  EXPECT_EQ(c.tls.key_file, "");
  EXPECT_EQ(c.store.backend, StoreBackend::kLmdb);
  EXPECT_EQ(c.store.redis_url, "redis://127.0.0.1:6379/0");
  ASSERT_TRUE(c.metrics.listen.has_value());
  EXPECT_EQ(c.metrics.listen->to_string(), "127.0.0.1:9425");
  EXPECT_EQ(c.log.format, LogFormat::kText);
  EXPECT_EQ(c.log.target, LogTarget::kStderr);
}

TEST(ConfigParse, ReadsValues) {
  ConfigResult r = parse(R"(
[server]
hostname = "mx.example.org"
stress_threshold = 1
buffer_size = 16384

[[listen]]
address = "[::]:25"
proxy_protocol = true
proxy_trusted = ["::1", "10.0.0.0/8"]

[[listen]]
address = "192.0.2.10:25"
role = "fake_mx"

[backend]
address = "[::1]:2525"
handoff = "xclient"
connect_timeout = 2

[greet]
wait = "500ms"
action = "drop"

[dns]
nameservers = ["127.0.0.1:5353", "::1"]

[access]
allow = []
deny = ["192.0.2.0/24", "2001:db8::/32"]

[fake_mx]
action = "tempfail"

[metrics]
listen = ""

[log]
format = "json"
target = "syslog"
)");
  ASSERT_TRUE(r.config.has_value()) << r.errors[0].to_string();
  const Config& c = *r.config;
  EXPECT_EQ(c.server.hostname, "mx.example.org");
  EXPECT_DOUBLE_EQ(c.server.stress_threshold, 1.0);
  EXPECT_EQ(c.server.buffer_size, 16384u);
  ASSERT_EQ(c.listen.size(), 2u);
  EXPECT_EQ(c.listen[0].address.to_string(), "[::]:25");
  EXPECT_TRUE(c.listen[0].proxy_protocol);
  ASSERT_EQ(c.listen[0].proxy_trusted.size(), 2u);
  EXPECT_EQ(c.listen[0].proxy_trusted[1].to_string(), "10.0.0.0/8");
  EXPECT_EQ(c.listen[0].line, 7);
  EXPECT_EQ(c.listen[1].role, ListenRole::kFakeMx);
  EXPECT_EQ(c.backend.address.to_string(), "[::1]:2525");
  EXPECT_EQ(c.backend.handoff, HandoffMode::kXclient);
  EXPECT_EQ(c.backend.connect_timeout, milliseconds(2000));
  EXPECT_EQ(c.greet.wait, milliseconds(500));
  EXPECT_EQ(c.greet.action, checks::Action::kDrop);
  ASSERT_EQ(c.dns.nameservers.size(), 2u);
  EXPECT_EQ(c.dns.nameservers[1].to_string(), "[::1]:53");
  EXPECT_TRUE(c.access.allow.empty());
  ASSERT_EQ(c.access.deny.size(), 2u);
  EXPECT_EQ(c.access.deny[1].to_string(), "2001:db8::/32");
  EXPECT_EQ(c.fake_mx.action, FakeMxAction::kTempfail);
  EXPECT_FALSE(c.metrics.listen.has_value());
  EXPECT_EQ(c.log.format, LogFormat::kJson);
  EXPECT_EQ(c.log.target, LogTarget::kSyslog);
}

TEST(ConfigParse, PolicySection) {
  EXPECT_FALSE(parse("").config->policy.listen.has_value());  // off by default
  ConfigResult r = parse(R"(
[policy]
listen = "127.0.0.1:10040"
max_connections = 50
idle_timeout = "400s"
request_timeout = "2s"
request_size_limit = 4096
x_greylist_header = true
)");
  ASSERT_TRUE(r.ok()) << r.errors[0].to_string();
  const PolicyConfig& p = r.config->policy;
  ASSERT_TRUE(p.listen.has_value());
  EXPECT_EQ(p.listen->to_string(), "127.0.0.1:10040");
  EXPECT_EQ(p.max_connections, 50);
  EXPECT_EQ(p.idle_timeout, milliseconds(400000));
  EXPECT_EQ(p.request_timeout, milliseconds(2000));
  EXPECT_EQ(p.request_size_limit, 4096u);
  EXPECT_TRUE(p.x_greylist_header);
  EXPECT_FALSE(parse("[policy]\nlisten = \"\"\n").config->policy.listen.has_value());
  EXPECT_EQ(only_error("[policy]\nlisten = \"localhost\"\n"),
            "t.toml:2:10: 'listen' in [policy]: invalid address \"localhost\": expected ip:port, "
            "e.g. \"127.0.0.1:10025\" or \"[::1]:10025\"");
  EXPECT_EQ(only_error("[policy]\nrequest_size_limit = 100\n"),
            "t.toml:2:22: 'request_size_limit' in [policy]: must be between 1024 and 1048576, "
            "got 100");
  EXPECT_EQ(only_error("[policy]\nlisten_on = \"127.0.0.1:1\"\n"),
            "t.toml:2:13: unknown key 'listen_on' in [policy]");
}

TEST(ConfigParse, SenderSpf) {
  const SenderConfig defaults = parse("").config->sender;
  EXPECT_EQ(defaults.spf, checks::SpfMode::kOff);
  EXPECT_EQ(defaults.spf_timeout, milliseconds(20000));
  EXPECT_EQ(defaults.spf_max_in_flight, 1000);
  ConfigResult r = parse(R"(
[sender]
spf = "reject_fail_softfail"
spf_timeout = "30s"
spf_max_in_flight = 50
)");
  ASSERT_TRUE(r.ok()) << r.errors[0].to_string();
  EXPECT_EQ(r.config->sender.spf, checks::SpfMode::kRejectFailSoftfail);
  EXPECT_EQ(r.config->sender.spf_timeout, milliseconds(30000));
  EXPECT_EQ(r.config->sender.spf_max_in_flight, 50);
  EXPECT_EQ(only_error("[sender]\nspf = \"reject\"\n"),
            "t.toml:2:7: 'spf' in [sender]: invalid value \"reject\": expected off | log | "
            "reject_fail | reject_fail_softfail");
  EXPECT_EQ(only_error("[sender]\nspf_max_in_flight = 0\n"),
            "t.toml:2:21: 'spf_max_in_flight' in [sender]: must be at least 1, got 0");
}

TEST(ConfigParse, GreylistIdentityOnlyIfTraps) {
  const GreylistConfig defaults = parse("").config->greylist;
  EXPECT_TRUE(defaults.identity_keys);
  EXPECT_TRUE(defaults.only_if.empty());
  EXPECT_TRUE(defaults.trap_recipients.empty());
  ConfigResult r = parse(R"(
[sender]
spf = "log"
[greylist]
identity_keys = false
only_if = ["no_fcrdns", "spf"]
trap_recipients = ["old-sales@example.org"]
)");
  ASSERT_TRUE(r.ok()) << r.errors[0].to_string();
  EXPECT_FALSE(r.config->greylist.identity_keys);
  EXPECT_EQ(r.config->greylist.only_if, (std::vector<std::string>{"no_fcrdns", "spf"}));
  EXPECT_EQ(r.config->greylist.trap_recipients,
            (std::vector<std::string>{"old-sales@example.org"}));
  EXPECT_EQ(only_error("[greylist]\nonly_if = [\"ptr\"]\n"),
            "t.toml:2:12: 'only_if' in [greylist]: invalid fact (expected no_fcrdns, "
            "dynamic_ptr, dnsbl, helo, spf) \"ptr\"");
  EXPECT_EQ(only_error("[greylist]\nonly_if = [\"spf\"]\n"),
            "t.toml:2:11: 'only_if' in [greylist]: \"spf\" needs sender.spf (it is \"off\")");
  EXPECT_EQ(only_error("[greylist]\ntrap_recipients = [\"<a@b>\"]\n"),
            "t.toml:2:20: 'trap_recipients' in [greylist]: invalid address \"<a@b>\"");
}

TEST(ConfigErrorFormat, ToString) {
  EXPECT_EQ((ConfigError{"a.toml", 3, 7, "boom"}).to_string(), "a.toml:3:7: boom");
  EXPECT_EQ((ConfigError{"a.toml", 0, 0, "cannot open"}).to_string(), "a.toml: cannot open");
}

TEST(ConfigErrors, SyntaxErrorIsOneErrorAtItsPosition) {
  // The message is tomlplusplus's own wording; the position is what we promise.
  const std::string e = only_error("[server]\nmax_sessions = = 3\n");
  EXPECT_EQ(e.rfind("t.toml:2:16: ", 0), 0u) << e;
  EXPECT_GT(e.size(), std::string("t.toml:2:16: ").size());
}

TEST(ConfigErrors, UnknownKey) {
  EXPECT_EQ(only_error("[server]\nmax_session = 3\n"),
            "t.toml:2:15: unknown key 'max_session' in [server]");
}

TEST(ConfigErrors, UnknownSectionAndTopLevelKey) {
  EXPECT_EQ(only_error("\n[sever]\nx = 1\n"), "t.toml:2:1: unknown section [sever]");
  EXPECT_EQ(only_error("debug = true\n"), "t.toml:1:9: unknown key 'debug' at top level");
}

TEST(ConfigErrors, UnknownKeyInListen) {
  EXPECT_EQ(only_error("[[listen]]\naddress = \"0.0.0.0:25\"\nproxy = true\n"),
            "t.toml:3:9: unknown key 'proxy' in [[listen]]");
}

TEST(ConfigErrors, ProxyProtocolNeedsTrustedUpstreams) {
  // A PROXY header from anyone would let any client choose its own address (issue 13).
  EXPECT_EQ(only_error("[[listen]]\naddress = \"0.0.0.0:25\"\nproxy_protocol = true\n"),
            "t.toml:3:18: 'proxy_protocol' in [[listen]]: proxy_protocol = true needs "
            "proxy_trusted, the addresses of the upstream balancers whose PROXY header is "
            "believed (e.g. proxy_trusted = [\"127.0.0.1/32\"])");
}

TEST(ConfigErrors, MissingListenAddressPointsAtTable) {
  EXPECT_EQ(only_error("\n[[listen]]\nrole = \"mx\"\n"),
            "t.toml:2:1: 'address' in [[listen]]: missing (e.g. address = \"0.0.0.0:25\")");
}

TEST(ConfigErrors, ListenMustBeArrayOfTables) {
  EXPECT_EQ(only_error("[listen]\naddress = \"0.0.0.0:25\"\n"),
            "t.toml:1:1: 'listen' must be an array of tables: write [[listen]]");
}

TEST(ConfigErrors, EmptyListenArray) {
  EXPECT_EQ(only_error("listen = []\n"),
            "t.toml:1:10: 'listen' is empty: add a [[listen]] entry or leave it out");
}

TEST(ConfigErrors, TwoBadListenAddressesAreNotDuplicates) {
  ConfigResult r = parse("[[listen]]\naddress = \"x\"\n[[listen]]\naddress = \"y\"\n");
  ASSERT_EQ(r.errors.size(), 2u);
  EXPECT_EQ(r.errors[1].to_string().substr(0, 12), "t.toml:4:11:");
}

TEST(ConfigErrors, DuplicateListenAddress) {
  EXPECT_EQ(only_error("[[listen]]\naddress = \"0.0.0.0:25\"\n"
                       "[[listen]]\naddress = \"0.0.0.0:25\"\n"),
            "t.toml:4:11: 'address' in [[listen]]: duplicate listen address 0.0.0.0:25");
}

TEST(ConfigErrors, WrongType) {
  EXPECT_EQ(only_error("[server]\nmax_sessions = \"many\"\n"),
            "t.toml:2:16: 'max_sessions' in [server]: expected an integer, got a string");
  EXPECT_EQ(only_error("[smtp]\nhelo_required = 1\n"),
            "t.toml:2:17: 'helo_required' in [smtp]: expected a boolean, got an integer");
  EXPECT_EQ(only_error("[server]\nuser = 0\n"),
            "t.toml:2:8: 'user' in [server]: expected a string, got an integer");
  EXPECT_EQ(only_error("server = 3\n"), "t.toml:1:10: 'server' must be a table: write [server]");
}

TEST(ConfigErrors, BadDuration) {
  EXPECT_EQ(only_error("[greet]\nwait = \"6 seconds\"\n"),
            "t.toml:2:8: 'wait' in [greet]: invalid duration \"6 seconds\": expected e.g. "
            "\"500ms\", \"6s\", \"5m\", \"2h\", \"35d\"");
  EXPECT_EQ(only_error("[greet]\nwait = -1\n"),
            "t.toml:2:8: 'wait' in [greet]: invalid duration -1");
  EXPECT_EQ(only_error("[backend]\nconnect_timeout = \"0s\"\n"),
            "t.toml:2:19: 'connect_timeout' in [backend]: must be greater than 0");
  EXPECT_EQ(only_error("[greet]\nwait = true\n"),
            "t.toml:2:8: 'wait' in [greet]: expected a duration string such as \"6s\", got a "
            "boolean");
}

TEST(ConfigErrors, BadEndpoint) {
  EXPECT_EQ(only_error("[backend]\naddress = \"localhost:10025\"\n"),
            "t.toml:2:11: 'address' in [backend]: invalid address \"localhost:10025\": expected "
            "ip:port, e.g. \"127.0.0.1:10025\" or \"[::1]:10025\"");
  EXPECT_EQ(only_error("[metrics]\nlisten = \"127.0.0.1\"\n").substr(0, 40),
            "t.toml:2:10: 'listen' in [metrics]: inva");
}

TEST(ConfigErrors, BadCidrPointsAtElement) {
  EXPECT_EQ(only_error("[access]\ndeny = [\"192.0.2.0/24\",\n  \"10.0.0.0/33\"]\n"),
            "t.toml:3:3: 'deny' in [access]: invalid network (expected e.g. \"192.0.2.0/24\" or "
            "\"2001:db8::/32\") \"10.0.0.0/33\"");
  EXPECT_EQ(only_error("[access]\nallow = [\"127.0.0.1\", 5]\n"),
            "t.toml:2:23: 'allow' in [access]: expected strings, got an integer");
}

TEST(ConfigErrors, BadEnumListsAllowedValues) {
  EXPECT_EQ(only_error("[backend]\nhandoff = \"proxy\"\n"),
            "t.toml:2:11: 'handoff' in [backend]: invalid value \"proxy\": expected proxy_v1 | "
            "proxy_v2 | xclient | none");
  EXPECT_EQ(only_error("[greet]\naction = \"reject\"\n"),
            "t.toml:2:10: 'action' in [greet]: invalid value \"reject\": expected off | ignore | "
            "enforce | drop");
  EXPECT_EQ(only_error("[[listen]]\naddress = \"0.0.0.0:25\"\nrole = \"fake\"\n"),
            "t.toml:3:8: 'role' in [[listen]]: invalid value \"fake\": expected mx | fake_mx");
  EXPECT_EQ(only_error("[store]\nbackend = \"sqlite\"\n"),
            "t.toml:2:11: 'backend' in [store]: invalid value \"sqlite\": expected lmdb | redis | "
            "memory");
}

TEST(ConfigErrors, Ranges) {
  EXPECT_EQ(only_error("[server]\nmax_sessions = 0\n"),
            "t.toml:2:16: 'max_sessions' in [server]: must be at least 1, got 0");
  EXPECT_EQ(only_error("[server]\nstress_threshold = 1.5\n"),
            "t.toml:2:20: 'stress_threshold' in [server]: must be greater than 0 and at most 1, "
            "got 1.5");
  EXPECT_EQ(only_error("[server]\nstress_threshold = 0\n").substr(0, 20), "t.toml:2:20: 'stress");
  EXPECT_EQ(only_error("[greylist]\nipv4_prefix = 33\n"),
            "t.toml:2:15: 'ipv4_prefix' in [greylist]: must be between 0 and 32, got 33");
  EXPECT_EQ(only_error("[greylist]\nipv6_prefix = -1\n"),
            "t.toml:2:15: 'ipv6_prefix' in [greylist]: must be between 0 and 128, got -1");
  EXPECT_EQ(only_error("[ban]\nipv6_prefix = 16\n"),
            "t.toml:2:15: 'ipv6_prefix' in [ban]: must be between 32 and 128, got 16");
  EXPECT_EQ(only_error("[limits]\nipv6_prefix = 129\n"),
            "t.toml:2:15: 'ipv6_prefix' in [limits]: must be between 32 and 128, got 129");
  EXPECT_EQ(only_error("[smtp]\nline_length_limit = 100\n"),
            "t.toml:2:21: 'line_length_limit' in [smtp]: must be at least 512, got 100");
}

// The side doors' and the memory store's bounds (issue 13): defaults, values, ranges.
TEST(ConfigParse, SideDoorAndStoreBounds) {
  ConfigResult d = parse("");
  ASSERT_TRUE(d.config.has_value());
  EXPECT_EQ(d.config->metrics.max_connections, 16);
  EXPECT_EQ(d.config->metrics.timeout, milliseconds(5000));
  EXPECT_EQ(d.config->server.ctl_max_connections, 16);
  EXPECT_EQ(d.config->server.ctl_timeout, milliseconds(5000));
  EXPECT_EQ(d.config->store.memory_max_bytes, std::size_t{256} << 20);
  ConfigResult r = parse(
      "[server]\nctl_max_connections = 4\nctl_timeout = \"1s\"\n[metrics]\nmax_connections = 2\n"
      "timeout = \"500ms\"\n[store]\nmemory_max_bytes = 1048576\n");
  ASSERT_TRUE(r.config.has_value()) << r.errors[0].to_string();
  EXPECT_EQ(r.config->server.ctl_max_connections, 4);
  EXPECT_EQ(r.config->server.ctl_timeout, milliseconds(1000));
  EXPECT_EQ(r.config->metrics.max_connections, 2);
  EXPECT_EQ(r.config->metrics.timeout, milliseconds(500));
  EXPECT_EQ(r.config->store.memory_max_bytes, 1048576u);
  EXPECT_EQ(only_error("[metrics]\nmax_connections = 0\n"),
            "t.toml:2:19: 'max_connections' in [metrics]: must be between 1 and 1024, got 0");
  EXPECT_EQ(only_error("[server]\nctl_timeout = \"0s\"\n").substr(0, 40),
            "t.toml:2:15: 'ctl_timeout' in [server]: ");
  EXPECT_EQ(only_error("[store]\nmemory_max_bytes = 1000\n").substr(0, 44),
            "t.toml:2:20: 'memory_max_bytes' in [store]: ");
}

TEST(ConfigErrors, HardLimitBelowSoftLimit) {
  EXPECT_EQ(only_error("[errors]\nsoft_limit = 10\nhard_limit = 5\n"),
            "t.toml:3:14: 'hard_limit' in [errors]: must be at least soft_limit (10), got 5");
  // Only soft_limit given: the error points at the [errors] table.
  EXPECT_EQ(only_error("[errors]\nsoft_limit = 30\n"),
            "t.toml:1:1: 'hard_limit' in [errors]: must be at least soft_limit (30), got 20");
}

TEST(ConfigErrors, CrossFieldChecks) {
  EXPECT_EQ(only_error("[tls]\ncert_file = \"/etc/c.pem\"\n"),
            "t.toml:2:13: 'cert_file' in [tls]: needs key_file too (set both, or neither for no "
            "TLS)");
  EXPECT_EQ(only_error("[ban]\nban_time = \"8d\"\n"),
            "t.toml:1:1: 'max_ban_time' in [ban]: must be at least ban_time");
  EXPECT_EQ(only_error("[greylist]\ndelay = \"3d\"\n"),
            "t.toml:1:1: 'retry_window' in [greylist]: must be longer than delay");
}

TEST(ConfigErrors, DnsblSiteShape) {
  EXPECT_EQ(only_error("[dnsbl]\nsites = [\"b.example=127.0.0.2*x\"]\n"),
            "t.toml:2:10: 'sites' in [dnsbl]: invalid site (expected zone, zone=filter, "
            "zone*weight or zone=filter*weight) \"b.example=127.0.0.2*x\"");
  // The filter is parsed too, not only the shape.
  EXPECT_EQ(only_error("[dnsbl]\nsites = [\"a.example\", \"b.example=127.0.0.[9..2]\"]\n"),
            "t.toml:2:23: 'sites' in [dnsbl]: invalid site (expected zone, zone=filter, "
            "zone*weight or zone=filter*weight) \"b.example=127.0.0.[9..2]\"");
  // RHSBL lists take the same syntax, with the same checks.
  EXPECT_EQ(only_error("[sender]\nrhsbl = [\"dbl.example=127.0.1.[2..99]*x\"]\n"),
            "t.toml:2:10: 'rhsbl' in [sender]: invalid site (expected zone, zone=filter, "
            "zone*weight or zone=filter*weight) \"dbl.example=127.0.1.[2..99]*x\"");
  ConfigResult r = parse(
      "[dnsbl]\nsites = [\"a.example\", \"b.example*2\", \"c.example=127.0.0.2\"]\n"
      "[helo]\nrhsbl = [\"dbl.example=127.0.1.[2..99]\"]\n"
      "[client]\nrhsbl_reverse = [\"dbl.example\"]\n");
  EXPECT_TRUE(r.config.has_value());
}

TEST(ConfigParse, DnsblReplyMapNamesConfiguredZonesOnly) {
  ConfigResult r = parse(
      "[dnsbl]\nsites = [\"key1.zen.dq.example=127.0.0.[2..11]*3\"]\n"
      "reply_map = { \"key1.zen.dq.example\" = \"zen.spamhaus.org\", "
      "\"key1.dbl.dq.example\" = \"dbl.spamhaus.org\" }\n"
      "[sender]\nrhsbl = [\"key1.dbl.dq.example\"]\n");
  ASSERT_TRUE(r.config.has_value()) << r.errors[0].to_string();
  EXPECT_EQ(r.config->dnsbl.reply_map.at("key1.zen.dq.example"), "zen.spamhaus.org");
  EXPECT_EQ(r.config->dnsbl.reply_map.at("key1.dbl.dq.example"), "dbl.spamhaus.org");
  // A typo would otherwise go unnoticed (and the list stay unnamed).
  EXPECT_EQ(only_error("[dnsbl]\nsites = [\"zen.example\"]\nreply_map = { \"zen.exampel\" = "
                       "\"zen\" }\n"),
            "t.toml:3:31: 'reply_map' in [dnsbl]: \"zen.exampel\": not the zone of any site in "
            "dnsbl.sites, helo.rhsbl, sender.rhsbl or client.rhsbl_reverse (lower case, no "
            "trailing dot)");
  EXPECT_EQ(only_error("[dnsbl]\nsites = [\"zen.example\"]\nreply_map = { \"zen.example\" = "
                       "\"a\\r\\nb\" }\n"),
            "t.toml:3:31: 'reply_map' in [dnsbl]: \"zen.example\": must be printable ASCII on "
            "one line");
}

TEST(ConfigParse, CacheTtlsAndTheOldPassTtl) {
  ConfigResult r = parse(
      "[cache]\ngreet_ttl = \"2d\"\ndnsbl_min_ttl = \"5s\"\ndnsbl_max_ttl = \"10m\"\n"
      "pipelining_ttl = \"1d\"\nnon_smtp_command_ttl = 0\nbare_newline_ttl = \"3d\"\n");
  ASSERT_TRUE(r.config.has_value());
  EXPECT_EQ(r.config->cache.greet_ttl, milliseconds(2 * 86400000));
  EXPECT_EQ(r.config->cache.dnsbl_min_ttl, milliseconds(5000));
  EXPECT_EQ(r.config->cache.dnsbl_max_ttl, milliseconds(600000));
  EXPECT_EQ(r.config->cache.non_smtp_command_ttl, milliseconds(0));
  EXPECT_TRUE(r.warnings.empty());
  EXPECT_EQ(only_error("[cache]\ndnsbl_min_ttl = \"2h\"\n"),
            "t.toml:1:1: 'dnsbl_max_ttl' in [cache]: must be at least dnsbl_min_ttl");
  // pass_ttl = 0 still means "no cache", any other value "a cache"; both are deprecated.
  r = parse("[cache]\npass_ttl = \"0s\"\n");
  ASSERT_TRUE(r.config.has_value());
  EXPECT_FALSE(r.config->cache.enabled);
  ASSERT_EQ(r.warnings.size(), 1u);
  EXPECT_EQ(r.warnings[0].to_string(),
            "t.toml:2:12: warning: 'pass_ttl' in [cache]: deprecated: write enabled = false");
  r = parse("[cache]\nenabled = false\npass_ttl = \"24h\"\n");
  ASSERT_TRUE(r.config.has_value());
  EXPECT_TRUE(r.config->cache.enabled);
  ASSERT_EQ(r.warnings.size(), 1u);
}

TEST(ConfigErrors, CollectsEveryProblemInFileOrder) {
  ConfigResult r = parse(R"([server]
max_sessions = 0
workers = "two"
colour = "blue"

[[listen]]
address = "nowhere"
role = "mx"

[greet]
wait = "soon"
action = "maybe"

[bogus]
)");
  EXPECT_FALSE(r.config.has_value());
  std::vector<std::string> got;
  for (const auto& e : r.errors) got.push_back(e.to_string());
  ASSERT_EQ(got.size(), 7u) << ::testing::PrintToString(got);
  EXPECT_EQ(got[0].substr(0, 13), "t.toml:2:16: ");
  EXPECT_EQ(got[1].substr(0, 11), "t.toml:3:11");
  EXPECT_EQ(got[2], "t.toml:4:10: unknown key 'colour' in [server]");
  EXPECT_EQ(got[3].substr(0, 11), "t.toml:7:11");
  EXPECT_EQ(got[4].substr(0, 12), "t.toml:11:8:");
  EXPECT_EQ(got[5].substr(0, 13), "t.toml:12:10:");
  EXPECT_EQ(got[6], "t.toml:14:1: unknown section [bogus]");
}

TEST(ConfigLoad, MissingFile) {
  ConfigResult r = load_config("/nonexistent/mxscreen.toml");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].to_string(),
            "/nonexistent/mxscreen.toml: cannot open: No such file or directory");
}

TEST(ConfigLoad, ExampleFileLoadsAsIs) {
  ConfigResult r = load_config(MXSCREEN_SOURCE_DIR "/config.toml.example");
  for (const auto& e : r.errors) ADD_FAILURE() << e.to_string();
  ASSERT_TRUE(r.config.has_value());
  const Config& c = *r.config;
  ASSERT_EQ(c.listen.size(), 1u);
  EXPECT_EQ(c.listen[0].address.to_string(), "0.0.0.0:25");
  EXPECT_EQ(c.listen[0].role, ListenRole::kMx);
  // The example documents the defaults: it must mean the same as an empty file.
  const Config d = *parse("").config;
  EXPECT_EQ(c.server.max_sessions, d.server.max_sessions);
  EXPECT_EQ(c.backend.address, d.backend.address);
  EXPECT_EQ(c.backend.handoff, d.backend.handoff);
  EXPECT_EQ(c.greet.wait, d.greet.wait);
  EXPECT_EQ(c.greet.banner, d.greet.banner);
  EXPECT_EQ(c.smtp.idle_timeout, d.smtp.idle_timeout);
  EXPECT_EQ(c.server.buffer_size, d.server.buffer_size);
  EXPECT_EQ(c.dnsbl.sites, d.dnsbl.sites);
  EXPECT_EQ(c.greylist.max_age, d.greylist.max_age);
  EXPECT_EQ(c.metrics.listen, d.metrics.listen);
  EXPECT_EQ(c.access.allow.size(), d.access.allow.size());
}

}  // namespace
}  // namespace mxscreen::proxy
