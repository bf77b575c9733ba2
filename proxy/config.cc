// proxy/config.cc: TOML -> Config. Each section is read through a Section reader that knows
// the section's keys, converts and range-checks values, and records every problem with the
// line:col of the offending value. The one place that catches tomlplusplus's exceptions.
#include "proxy/config.h"

#include <toml++/toml.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <set>
#include <span>
#include <sstream>
#include <utility>

#include "checks/dnsbl.h"
#include "checks/greylist_gate.h"

namespace mxscreen::proxy {
namespace {

using Ms = std::chrono::milliseconds;
constexpr int64_t kIntMax = std::numeric_limits<int>::max();

template <typename E>
using Named = checks::NamedValue<E>;

constexpr Named<ListenRole> kListenRoles[] = {{"mx", ListenRole::kMx},
                                              {"fake_mx", ListenRole::kFakeMx}};
constexpr Named<HandoffMode> kHandoffModes[] = {{"proxy_v1", HandoffMode::kProxyV1},
                                                {"proxy_v2", HandoffMode::kProxyV2},
                                                {"xclient", HandoffMode::kXclient},
                                                {"none", HandoffMode::kNone}};
constexpr Named<FakeMxAction> kFakeMxActions[] = {{"reset", FakeMxAction::kReset},
                                                  {"tempfail", FakeMxAction::kTempfail},
                                                  {"tempfail_rcpt", FakeMxAction::kTempfailRcpt}};
constexpr Named<StoreBackend> kStoreBackends[] = {{"lmdb", StoreBackend::kLmdb},
                                                  {"redis", StoreBackend::kRedis},
                                                  {"memory", StoreBackend::kMemory}};
constexpr Named<LogFormat> kLogFormats[] = {{"text", LogFormat::kText}, {"json", LogFormat::kJson}};
constexpr Named<LogTarget> kLogTargets[] = {{"stderr", LogTarget::kStderr},
                                            {"syslog", LogTarget::kSyslog}};
constexpr Named<checks::SpfMode> kSpfModes[] = {
    {"off", checks::SpfMode::kOff},
    {"log", checks::SpfMode::kLog},
    {"reject_fail", checks::SpfMode::kRejectFail},
    {"reject_fail_softfail", checks::SpfMode::kRejectFailSoftfail}};
constexpr auto& kActions = checks::kActionNames;

template <typename E>
std::string_view name_of(std::span<const Named<E>> names, E value) {
  for (const auto& n : names) {
    if (n.value == value) return n.name;
  }
  return "?";
}

struct Pos {
  int line = 0;
  int column = 0;
};

Pos pos_of(const toml::node& node) {
  const auto& begin = node.source().begin;
  return {static_cast<int>(begin.line), static_cast<int>(begin.column)};
}

std::string_view type_name(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a number";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::date:
      return "a date";
    case toml::node_type::time:
      return "a time";
    case toml::node_type::date_time:
      return "a date-time";
    case toml::node_type::none:
      break;
  }
  return "nothing";
}

class Reporter {
 public:
  explicit Reporter(std::string file) : file_(std::move(file)) {}
  void error(Pos pos, std::string message) {
    errors_.push_back({file_, pos.line, pos.column, std::move(message)});
  }
  void warning(Pos pos, std::string message) {
    warnings_.push_back({file_, pos.line, pos.column, "warning: " + std::move(message)});
  }
  std::vector<ConfigError> take_warnings() { return std::move(warnings_); }
  bool empty() const { return errors_.empty(); }
  std::size_t count() const { return errors_.size(); }
  std::vector<ConfigError> take() {
    std::stable_sort(errors_.begin(), errors_.end(), [](const auto& a, const auto& b) {
      return std::pair(a.line, a.column) < std::pair(b.line, b.column);
    });
    return std::move(errors_);
  }

 private:
  std::string file_;
  std::vector<ConfigError> errors_;
  std::vector<ConfigError> warnings_;
};

// One TOML table: typed reads of known keys (absent key = keep the default), then finish()
// reports every key nobody asked for.
class Section {
 public:
  Section(Reporter& reporter, const toml::table* table, std::string label)
      : reporter_(reporter), table_(table), label_(std::move(label)) {}

  // Position of the key's value, or of the table when the key is absent.
  Pos where(std::string_view key) const {
    const toml::node* node = table_ ? table_->get(key) : nullptr;
    if (node) return pos_of(*node);
    return table_ ? pos_of(*table_) : Pos{};
  }
  std::string name(std::string_view key) const { return "'" + std::string(key) + "' in " + label_; }
  void error(std::string_view key, const std::string& message) {
    reporter_.error(where(key), name(key) + ": " + message);
  }
  void warning(std::string_view key, const std::string& message) {
    reporter_.warning(where(key), name(key) + ": " + message);
  }
  void check(bool ok, std::string_view key, const std::string& message) {
    if (!ok) error(key, message);
  }

  void read(std::string_view key, bool& out) {
    if (auto v = typed<bool>(key, "a boolean")) out = *v;
  }
  void read(std::string_view key, std::string& out) {
    if (auto v = typed<std::string>(key, "a string")) out = std::move(*v);
  }
  void read(std::string_view key, int& out, int64_t min, int64_t max = kIntMax) {
    if (auto v = integer(key, min, max)) out = static_cast<int>(*v);
  }
  void read(std::string_view key, std::size_t& out, int64_t min, int64_t max) {
    if (auto v = integer(key, min, max)) out = static_cast<std::size_t>(*v);
  }
  // Range (lo, hi]: a share such as stress_threshold.
  void read_share(std::string_view key, double& out) {
    const toml::node* node = get(key);
    if (!node) return;
    std::optional<double> v;
    if (node->is_floating_point() || node->is_integer()) v = node->value<double>();
    if (!v) return wrong_type(key, *node, "a number");
    if (!(*v > 0.0 && *v <= 1.0)) {
      std::ostringstream got;
      got << *v;
      return error(key, "must be greater than 0 and at most 1, got " + got.str());
    }
    out = *v;
  }
  void read_duration(std::string_view key, Ms& out, Ms min = Ms(0)) {
    const toml::node* node = get(key);
    if (!node) return;
    std::optional<Ms> v;
    if (auto s = node->value_exact<std::string>()) {
      v = parse_duration(*s);
      if (!v)
        return error(key, "invalid duration \"" + *s +
                              "\": expected e.g. \"500ms\", "
                              "\"6s\", \"5m\", \"2h\", \"35d\"");
    } else if (auto i = node->value_exact<int64_t>()) {  // bare number = seconds, as Postfix
      v = parse_duration(std::to_string(*i));
      if (!v) return error(key, "invalid duration " + std::to_string(*i));
    } else {
      return wrong_type(key, *node, "a duration string such as \"6s\"");
    }
    if (*v < min) {
      return error(key, min == Ms(1) ? "must be greater than 0"
                                     : "must be at least " + std::to_string(min.count()) + "ms");
    }
    out = *v;
  }
  template <typename E>
  void read(std::string_view key, E& out, std::span<const Named<E>> names) {
    auto s = typed<std::string>(key, "a string");
    if (!s) return;
    std::string allowed;
    for (const auto& n : names) {
      if (n.name == *s) {
        out = n.value;
        return;
      }
      allowed += (allowed.empty() ? "" : " | ") + std::string(n.name);
    }
    error(key, "invalid value \"" + *s + "\": expected " + allowed);
  }
  void read(std::string_view key, checks::Action& out) {
    read(key, out, std::span<const Named<checks::Action>>(kActions));
  }
  // Each element goes through `convert` (string -> T); failures are reported per element.
  template <typename T, typename Convert>
  void read_list(std::string_view key, std::vector<T>& out, std::string_view what,
                 Convert convert) {
    const toml::node* node = get(key);
    if (!node) return;
    const toml::array* array = node->as_array();
    if (!array) return wrong_type(key, *node, "an array of strings");
    std::vector<T> values;
    bool ok = true;
    for (const toml::node& element : *array) {
      auto s = element.value_exact<std::string>();
      std::optional<T> value;
      if (!s) {
        reporter_.error(pos_of(element),
                        name(key) + ": expected strings, got " + std::string(type_name(element)));
      } else if (!(value = convert(*s))) {
        reporter_.error(pos_of(element),
                        name(key) + ": invalid " + std::string(what) + " \"" + *s + "\"");
      }
      if (value) values.push_back(std::move(*value));
      ok = ok && value.has_value();
    }
    if (ok) out = std::move(values);
  }
  void read(std::string_view key, std::vector<std::string>& out) {
    read_list(key, out, "string", [](const std::string& s) { return std::optional(s); });
  }
  // A table of strings ({ "a" = "x", "b" = "y" }); `check` returns "" or what is wrong with an
  // entry, reported at the entry.
  template <typename Check>
  void read_string_table(std::string_view key, std::map<std::string, std::string, std::less<>>& out,
                         Check check) {
    const toml::node* node = get(key);
    if (!node) return;
    const toml::table* table = node->as_table();
    if (!table) return wrong_type(key, *node, "a table of strings");
    std::map<std::string, std::string, std::less<>> values;
    bool ok = true;
    for (const auto& [k, element] : *table) {
      auto v = element.template value_exact<std::string>();
      std::string why = v ? check(std::string(k.str()), *v)
                          : "expected a string, got " + std::string(type_name(element));
      if (!why.empty()) {
        reporter_.error(pos_of(element), name(key) + ": \"" + std::string(k.str()) + "\": " + why);
        ok = false;
        continue;
      }
      values.emplace(std::string(k.str()), std::move(*v));
    }
    if (ok) out = std::move(values);
  }
  void read(std::string_view key, std::vector<protocol::Cidr>& out) {
    read_list(key, out, "network (expected e.g. \"192.0.2.0/24\" or \"2001:db8::/32\")",
              [](const std::string& s) { return protocol::Cidr::parse(s); });
  }
  void read(std::string_view key, protocol::Endpoint& out) {
    auto s = typed<std::string>(key, "a string");
    if (!s) return;
    if (auto e = protocol::Endpoint::parse(*s)) {
      out = *e;
    } else {
      error(key, "invalid address \"" + *s +
                     "\": expected ip:port, e.g. \"127.0.0.1:10025\" or \"[::1]:10025\"");
    }
  }

  const toml::node* get(std::string_view key) {
    known_.emplace(key);
    return table_ ? table_->get(key) : nullptr;
  }
  void finish() {
    if (!table_) return;
    for (const auto& [key, node] : *table_) {
      if (!known_.contains(key.str())) {
        reporter_.error(pos_of(node), "unknown key '" + std::string(key.str()) + "' in " + label_);
      }
    }
  }

 private:
  template <typename T>
  std::optional<T> typed(std::string_view key, std::string_view expected) {
    const toml::node* node = get(key);
    if (!node) return std::nullopt;
    auto v = node->value_exact<T>();
    if (!v) wrong_type(key, *node, expected);
    return v;
  }
  std::optional<int64_t> integer(std::string_view key, int64_t min, int64_t max) {
    auto v = typed<int64_t>(key, "an integer");
    if (!v) return std::nullopt;
    if (*v < min || *v > max) {
      error(key, (max == kIntMax
                      ? "must be at least " + std::to_string(min)
                      : "must be between " + std::to_string(min) + " and " + std::to_string(max)) +
                     ", got " + std::to_string(*v));
      return std::nullopt;
    }
    return v;
  }
  void wrong_type(std::string_view key, const toml::node& node, std::string_view expected) {
    error(key, "expected " + std::string(expected) + ", got " + std::string(type_name(node)));
  }

  Reporter& reporter_;
  const toml::table* table_;
  std::string label_;
  std::set<std::string, std::less<>> known_;
};

void read_server(Section& s, ServerConfig& c) {
  s.read("hostname", c.hostname);
  s.read("user", c.user);
  s.read("state_dir", c.state_dir);
  s.read("max_sessions", c.max_sessions, 1);
  s.read_share("stress_threshold", c.stress_threshold);
  s.read_duration("drain_timeout", c.drain_timeout);
  s.read("workers", c.workers, 1, 256);
  s.read("buffer_size", c.buffer_size, 1024, int64_t{64} << 20);
  s.read("kernel_splice", c.kernel_splice);
  s.read("ctl_max_connections", c.ctl_max_connections, 1, 1024);
  s.read_duration("ctl_timeout", c.ctl_timeout, Ms(1));
}

void read_backend(Section& s, BackendConfig& c) {
  s.read("address", c.address);
  s.read("handoff", c.handoff, std::span<const Named<HandoffMode>>(kHandoffModes));
  s.read_duration("connect_timeout", c.connect_timeout, Ms(1));
  s.read("max_sessions", c.max_sessions, 1);
  s.read_duration("banner_timeout", c.banner_timeout, Ms(1));
  s.read("queue_max", c.queue_max, 0);
  s.read_duration("queue_timeout", c.queue_timeout, Ms(1));
}

void read_greet(Section& s, GreetConfig& c) {
  s.read("banner", c.banner);
  s.check(c.banner.find_first_of("\r\n") == std::string::npos, "banner", "must be a single line");
  s.read_duration("wait", c.wait);
  s.read("action", c.action);
}

void read_smtp(Section& s, SmtpConfig& c) {
  s.read("helo_required", c.helo_required);
  s.read("disable_vrfy", c.disable_vrfy);
  // RFC 5321 4.5.3.1.4: a command line is up to 512 octets; refuse anything shorter.
  s.read("line_length_limit", c.line_length_limit, 512);
  s.read("command_count_limit", c.command_count_limit, 1);
  s.read_duration("command_time_limit", c.command_time_limit, Ms(1));
  s.read("pipelining", c.pipelining);
  s.read("non_smtp_command", c.non_smtp_command);
  s.read("bare_newline", c.bare_newline);
  s.read_duration("idle_timeout", c.idle_timeout, Ms(1));
}

void read_errors(Section& s, ErrorsConfig& c) {
  s.read_duration("sleep_time", c.sleep_time);
  s.read("soft_limit", c.soft_limit, 0);
  s.read("hard_limit", c.hard_limit, 1);
  s.read("junk_command_limit", c.junk_command_limit, 0);
  s.check(c.hard_limit >= c.soft_limit, "hard_limit",
          "must be at least soft_limit (" + std::to_string(c.soft_limit) + "), got " +
              std::to_string(c.hard_limit));
}

// postscreen_dnsbl_sites syntax, "domain[=filter][*weight]", for DNSBL and RHSBL lists alike:
// each entry is parsed as the checks will use it, so a bad filter is reported with its place.
void read_sites(Section& s, std::string_view key, std::vector<std::string>& out) {
  s.read_list(key, out, "site (expected zone, zone=filter, zone*weight or zone=filter*weight)",
              [](const std::string& v) -> std::optional<std::string> {
                std::string why;
                if (!checks::parse_dnsbl_site(v, &why)) return std::nullopt;
                return v;
              });
}

void read_checks(Section& helo, Section& client, Section& sender, Section& recipient, Config& c) {
  helo.read("reject_invalid", c.helo.reject_invalid);
  helo.read("reject_non_fqdn", c.helo.reject_non_fqdn);
  helo.read("reject_own_name", c.helo.reject_own_name);
  helo.read("reject_unknown", c.helo.reject_unknown);
  read_sites(helo, "rhsbl", c.helo.rhsbl);
  client.read("reject_unknown_reverse", c.client.reject_unknown_reverse);
  client.read("reject_unknown", c.client.reject_unknown);
  read_sites(client, "rhsbl_reverse", c.client.rhsbl_reverse);
  sender.read("reject_non_fqdn", c.sender.reject_non_fqdn);
  sender.read("reject_unknown_domain", c.sender.reject_unknown_domain);
  read_sites(sender, "rhsbl", c.sender.rhsbl);
  sender.read("spf", c.sender.spf, std::span<const Named<checks::SpfMode>>(kSpfModes));
  sender.read_duration("spf_timeout", c.sender.spf_timeout, Ms(1));
  sender.read("spf_max_in_flight", c.sender.spf_max_in_flight, 1);
  recipient.read("reject_non_fqdn", c.recipient.reject_non_fqdn);
}

// After read_checks: reply_map may name the zones of the RHSBL lists as well.
void read_dnsbl(Section& s, Config& config) {
  DnsblConfig& c = config.dnsbl;
  read_sites(s, "sites", c.sites);
  s.read("threshold", c.threshold, 1);
  s.read("allowlist_threshold", c.allowlist_threshold, -kIntMax);
  s.read("action", c.action);
  s.read("reply_text", c.reply_text);
  std::set<std::string, std::less<>> zones;
  for (const auto* list :
       {&c.sites, &config.helo.rhsbl, &config.sender.rhsbl, &config.client.rhsbl_reverse}) {
    for (const auto& text : *list) {
      if (auto site = checks::parse_dnsbl_site(text, nullptr)) zones.insert(site->zone);
    }
  }
  s.read_string_table("reply_map", c.reply_map,
                      [&zones](const std::string& zone, const std::string& shown) -> std::string {
                        if (!zones.contains(zone)) {
                          return "not the zone of any site in dnsbl.sites, helo.rhsbl, "
                                 "sender.rhsbl or client.rhsbl_reverse (lower case, no "
                                 "trailing dot)";
                        }
                        if (shown.empty() || shown.size() > 200)
                          return "must be 1 to 200 characters";
                        for (unsigned char ch : shown) {
                          if (ch < 0x20 || ch > 0x7e) return "must be printable ASCII on one line";
                        }
                        return "";
                      });
}

void read_cache(Section& s, CacheConfig& c) {
  s.read("enabled", c.enabled);
  s.read_duration("greet_ttl", c.greet_ttl);
  s.read_duration("dnsbl_min_ttl", c.dnsbl_min_ttl, Ms(1000));
  s.read_duration("dnsbl_max_ttl", c.dnsbl_max_ttl, Ms(1000));
  s.check(c.dnsbl_max_ttl >= c.dnsbl_min_ttl, "dnsbl_max_ttl", "must be at least dnsbl_min_ttl");
  s.read_duration("pipelining_ttl", c.pipelining_ttl);
  s.read_duration("non_smtp_command_ttl", c.non_smtp_command_ttl);
  s.read_duration("bare_newline_ttl", c.bare_newline_ttl);
  // Before one TTL per test there was one for everything: it still says whether there is a
  // cache ("0" = none, as before), its value is ignored.
  Ms pass_ttl{-1};
  s.read_duration("pass_ttl", pass_ttl);
  if (pass_ttl == Ms(0)) {
    c.enabled = false;
    s.warning("pass_ttl", "deprecated: write enabled = false");
  } else if (pass_ttl > Ms(0)) {
    c.enabled = true;
    s.warning("pass_ttl",
              "deprecated, its value is ignored: each test has its own TTL now (greet_ttl, "
              "dnsbl_min_ttl, dnsbl_max_ttl, pipelining_ttl, non_smtp_command_ttl, "
              "bare_newline_ttl); write enabled = true");
  }
}

void read_dns(Section& s, DnsConfig& c) {
  // "ip:port", or a bare address for port 53 as in resolv.conf.
  s.read_list("nameservers", c.nameservers, "nameserver (expected ip or ip:port)",
              [](const std::string& v) -> std::optional<protocol::Endpoint> {
                if (auto e = protocol::Endpoint::parse(v)) return e;
                if (auto ip = protocol::IpAddress::parse(v)) return protocol::Endpoint{*ip, 53};
                return std::nullopt;
              });
  s.read_duration("timeout", c.timeout, Ms(1));
  s.read_duration("ttl_min", c.ttl_min);
  s.read_duration("ttl_max", c.ttl_max, Ms(1000));
  s.read_duration("negative_ttl", c.negative_ttl);
  s.check(c.ttl_max >= c.ttl_min, "ttl_max", "must be at least ttl_min");
  s.read("cache_size", c.cache_size, 0);
  s.read("retries", c.retries, 0, 10);
  s.read("max_queries", c.max_queries, 1);
}

void read_greylist(Section& s, GreylistConfig& c) {
  s.read("enabled", c.enabled);
  s.read_duration("delay", c.delay);
  s.read_duration("retry_window", c.retry_window, Ms(1));
  s.read_duration("max_age", c.max_age, Ms(1));
  s.read("ipv4_prefix", c.ipv4_prefix, 0, 32);
  s.read("ipv6_prefix", c.ipv6_prefix, 0, 128);
  s.read("auto_allowlist_clients", c.auto_allowlist_clients, 0);
  s.read("reply_text", c.reply_text);
  s.check(c.reply_text.find_first_of("\r\n") == std::string::npos, "reply_text",
          "must be a single line");
  s.read("strip_sender_tags", c.strip_sender_tags);
  s.read("skip_on_nolisting_pass", c.skip_on_nolisting_pass);
  s.read_duration("sweep_interval", c.sweep_interval, Ms(1000));
  s.read("client_allowlist_file", c.client_allowlist_file);
  s.read("recipient_allowlist_file", c.recipient_allowlist_file);
  s.read("identity_keys", c.identity_keys);
  s.read_list("only_if", c.only_if, "fact (expected no_fcrdns, dynamic_ptr, dnsbl, helo, spf)",
              [](const std::string& v) -> std::optional<std::string> {
                if (!checks::parse_gate_fact(v)) return std::nullopt;
                return v;
              });
  // An address as a RCPT gives it (no <>): a local part, '@', a domain.
  s.read_list("trap_recipients", c.trap_recipients, "address",
              [](const std::string& v) -> std::optional<std::string> {
                auto at = v.rfind('@');
                if (at == std::string::npos || at == 0 || at + 1 == v.size() ||
                    v.find_first_of("<> \t\r\n") != std::string::npos) {
                  return std::nullopt;
                }
                return v;
              });
  s.check(c.retry_window > c.delay, "retry_window", "must be longer than delay");
}

void read_fake_mx_and_ban(Section& fake_mx, Section& ban, Config& c) {
  fake_mx.read("action", c.fake_mx.action, std::span<const Named<FakeMxAction>>(kFakeMxActions));
  fake_mx.read("ban_after", c.fake_mx.ban_after, 0);
  fake_mx.read_duration("window", c.fake_mx.window, Ms(1));
  fake_mx.read_duration("pair_window", c.fake_mx.pair_window);
  ban.read_duration("ban_time", c.ban.ban_time, Ms(1));
  ban.read_duration("max_ban_time", c.ban.max_ban_time, Ms(1));
  ban.read("max_retry", c.ban.max_retry, 1);
  ban.read_duration("find_time", c.ban.find_time, Ms(1));
  ban.read("on_fake_mx", c.ban.on_fake_mx);
  ban.read("on_strikes", c.ban.on_strikes);
  ban.read("reply", c.ban.reply);
  ban.read("ipv6_prefix", c.ban.ipv6_prefix, kMinClientIpv6Prefix, 128);
  ban.check(c.ban.max_ban_time >= c.ban.ban_time, "max_ban_time", "must be at least ban_time");
  ban.read("command", c.ban.command);
  ban.read("unban_command", c.ban.unban_command);
  // An argv run without a shell: the program by absolute path, so PATH cannot change it.
  ban.check(c.ban.command.empty() || c.ban.command.front().starts_with("/"), "command",
            "must start with the absolute path of a program, e.g. [\"/usr/sbin/nft\", ...]");
  ban.check(c.ban.unban_command.empty() || c.ban.unban_command.front().starts_with("/"),
            "unban_command",
            "must start with the absolute path of a program, e.g. [\"/usr/sbin/nft\", ...]");
}

void read_access_and_tls(Section& access, Section& tls, Config& c) {
  access.read("allow", c.access.allow);
  access.read("deny", c.access.deny);
  access.read("file", c.access.file);
  tls.read("cert_file", c.tls.cert_file);
  tls.read("key_file", c.tls.key_file);
  tls.read("extra_cert_files", c.tls.extra_cert_files);
  tls.read("extra_key_files", c.tls.extra_key_files);
  tls.check(c.tls.extra_cert_files.size() == c.tls.extra_key_files.size(), "extra_key_files",
            "needs one key file per file in extra_cert_files");
  tls.read("protocols", c.tls.protocols);
  tls.check(c.tls.protocols == "TLSv1.2+" || c.tls.protocols == "TLSv1.3", "protocols",
            "invalid value \"" + c.tls.protocols + "\": expected TLSv1.2+ | TLSv1.3");
  tls.read("ciphers", c.tls.ciphers);
  tls.read("ciphersuites", c.tls.ciphersuites);
  tls.read_duration("handshake_timeout", c.tls.handshake_timeout, Ms(1));
  tls.read("session_tickets", c.tls.session_tickets);
  tls.read_duration("ticket_key_rotation", c.tls.ticket_key_rotation, Ms(1000));
  if (c.tls.cert_file.empty() != c.tls.key_file.empty()) {
    const char* missing = c.tls.cert_file.empty() ? "cert_file" : "key_file";
    const char* given = c.tls.cert_file.empty() ? "key_file" : "cert_file";
    tls.error(given, std::string("needs ") + missing + " too (set both, or neither for no TLS)");
  }
}

void read_runtime(Section& store, Section& metrics, Section& log, Config& c) {
  store.read("backend", c.store.backend, std::span<const Named<StoreBackend>>(kStoreBackends));
  store.read("redis_url", c.store.redis_url);
  store.read("map_size", c.store.map_size, int64_t{1} << 20, int64_t{1} << 40);
  store.read("memory_max_bytes", c.store.memory_max_bytes, int64_t{1} << 20, int64_t{1} << 40);
  store.check(c.store.backend != StoreBackend::kRedis || !c.store.redis_url.empty(), "redis_url",
              "must be set when backend = \"redis\"");
  if (metrics.get("listen")) {
    std::string text;
    metrics.read("listen", text);
    if (text.empty()) {
      c.metrics.listen.reset();
    } else {
      protocol::Endpoint endpoint;
      metrics.read("listen", endpoint);
      c.metrics.listen = endpoint;
    }
  }
  metrics.read("max_connections", c.metrics.max_connections, 1, 1024);
  metrics.read_duration("timeout", c.metrics.timeout, Ms(1));
  log.read("format", c.log.format, std::span<const Named<LogFormat>>(kLogFormats));
  log.read("target", c.log.target, std::span<const Named<LogTarget>>(kLogTargets));
}

void read_policy(Section& s, PolicyConfig& c) {
  if (s.get("listen")) {
    std::string text;
    s.read("listen", text);
    if (!text.empty()) {
      protocol::Endpoint endpoint;
      s.read("listen", endpoint);
      c.listen = endpoint;
    }
  }
  s.read("max_connections", c.max_connections, 1, 100000);
  s.read_duration("idle_timeout", c.idle_timeout, Ms(1000));
  s.read_duration("request_timeout", c.request_timeout, Ms(1));
  // Postfix's requests are about 1 KiB (more with client certificate attributes).
  s.read("request_size_limit", c.request_size_limit, 1024, int64_t{1} << 20);
  s.read("x_greylist_header", c.x_greylist_header);
}

void read_listeners(Reporter& reporter, const toml::node* node, Config& c) {
  if (node && node->is_array() && node->as_array()->empty()) {
    reporter.error(pos_of(*node), "'listen' is empty: add a [[listen]] entry or leave it out");
    return;
  }
  if (node && !node->is_array_of_tables()) {
    reporter.error(pos_of(*node), "'listen' must be an array of tables: write [[listen]]");
    return;
  }
  if (node) {
    for (const toml::node& entry : *node->as_array()) {
      Section s(reporter, entry.as_table(), "[[listen]]");
      ListenConfig listen;
      const Pos pos = pos_of(entry);
      listen.line = pos.line;
      listen.column = pos.column;
      if (!s.get("address")) s.error("address", "missing (e.g. address = \"0.0.0.0:25\")");
      const std::size_t errors_before = reporter.count();
      s.read("address", listen.address);
      const bool address_ok = reporter.count() == errors_before;
      s.read("role", listen.role, std::span<const Named<ListenRole>>(kListenRoles));
      s.read("proxy_protocol", listen.proxy_protocol);
      s.read("proxy_trusted", listen.proxy_trusted);
      if (listen.proxy_protocol && listen.proxy_trusted.empty()) {
        s.error("proxy_protocol",
                "proxy_protocol = true needs proxy_trusted, the addresses of the upstream "
                "balancers whose PROXY header is believed (e.g. proxy_trusted = "
                "[\"127.0.0.1/32\"])");
      }
      s.finish();
      for (const auto& other : c.listen) {
        if (address_ok && other.address == listen.address) {
          s.error("address", "duplicate listen address " + listen.address.to_string());
        }
      }
      c.listen.push_back(listen);
    }
  }
  if (c.listen.empty()) {
    ListenConfig any;
    any.address = {protocol::IpAddress::v4(0, 0, 0, 0), 25};
    c.listen.push_back(any);
  }
}

constexpr std::string_view kSections[] = {
    "server", "listen",    "backend", "greet", "smtp",     "errors", "helo",    "client",
    "sender", "recipient", "dnsbl",   "dns",   "greylist", "cache",  "fake_mx", "ban",
    "limits", "access",    "tls",     "store", "metrics",  "policy", "log"};

void read_all(Reporter& reporter, const toml::table& root, Config& c) {
  std::vector<std::unique_ptr<Section>> sections;
  auto section = [&](std::string_view name) -> Section& {
    const toml::node* node = root.get(name);
    const toml::table* table = node ? node->as_table() : nullptr;
    if (node && !table) {
      reporter.error(pos_of(*node), "'" + std::string(name) + "' must be a table: write [" +
                                        std::string(name) + "]");
    }
    sections.push_back(std::make_unique<Section>(reporter, table, "[" + std::string(name) + "]"));
    return *sections.back();
  };
  for (const auto& [key, node] : root) {
    if (std::find(std::begin(kSections), std::end(kSections), key.str()) == std::end(kSections)) {
      reporter.error(pos_of(node),
                     node.is_table() ? "unknown section [" + std::string(key.str()) + "]"
                                     : "unknown key '" + std::string(key.str()) + "' at top level");
    }
  }
  read_server(section("server"), c.server);
  read_listeners(reporter, root.get("listen"), c);
  read_backend(section("backend"), c.backend);
  read_greet(section("greet"), c.greet);
  read_smtp(section("smtp"), c.smtp);
  read_errors(section("errors"), c.errors);
  read_checks(section("helo"), section("client"), section("sender"), section("recipient"), c);
  read_dnsbl(section("dnsbl"), c);
  read_dns(section("dns"), c.dns);
  Section& greylist = section("greylist");
  read_greylist(greylist, c.greylist);
  // Without SPF every client's "spf" fact is unknown, which counts as suspicious: the gate
  // would greylist everyone.
  greylist.check(c.sender.spf != checks::SpfMode::kOff ||
                     std::find(c.greylist.only_if.begin(), c.greylist.only_if.end(), "spf") ==
                         c.greylist.only_if.end(),
                 "only_if", "\"spf\" needs sender.spf (it is \"off\")");
  read_cache(section("cache"), c.cache);
  read_fake_mx_and_ban(section("fake_mx"), section("ban"), c);
  Section& limits = section("limits");
  limits.read("client_connection_count", c.limits.client_connection_count, 0);
  limits.read("client_connection_rate", c.limits.client_connection_rate, 0);
  limits.read("ipv6_prefix", c.limits.ipv6_prefix, kMinClientIpv6Prefix, 128);
  read_access_and_tls(section("access"), section("tls"), c);
  read_runtime(section("store"), section("metrics"), section("log"), c);
  read_policy(section("policy"), c.policy);
  for (auto& s : sections) s->finish();
}

}  // namespace

std::string ConfigError::to_string() const {
  if (line <= 0) return file + ": " + message;
  return file + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " + message;
}

ConfigResult parse_config(std::string_view toml_text, const std::string& path_for_messages) {
  Reporter reporter(path_for_messages);
  toml::table root;
  try {
    root = toml::parse(toml_text, path_for_messages);
  } catch (const toml::parse_error& e) {
    const auto& begin = e.source().begin;
    reporter.error({static_cast<int>(begin.line), static_cast<int>(begin.column)},
                   std::string(e.description()));
    return {std::nullopt, reporter.take(), {}};
  }
  Config config;
  read_all(reporter, root, config);
  if (!reporter.empty()) return {std::nullopt, reporter.take(), reporter.take_warnings()};
  return {std::move(config), {}, reporter.take_warnings()};
}

ConfigResult load_config(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return {std::nullopt, {{path, 0, 0, std::string("cannot open: ") + std::strerror(errno)}}, {}};
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return {std::nullopt, {{path, 0, 0, "read error"}}, {}};
  return parse_config(text.str(), path);
}

std::optional<std::chrono::milliseconds> parse_duration(std::string_view text) {
  std::size_t digits = 0;
  int64_t number = 0;
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') {
    const int d = text[digits] - '0';
    if (number > (kMax - d) / 10) return std::nullopt;
    number = number * 10 + d;
    ++digits;
  }
  if (digits == 0) return std::nullopt;
  // A bare number is seconds, Postfix's default time unit.
  constexpr std::pair<std::string_view, int64_t> kUnits[] = {{"", 1000},
                                                             {"ms", 1},
                                                             {"s", 1000},
                                                             {"m", int64_t{60} * 1000},
                                                             {"h", int64_t{3600} * 1000},
                                                             {"d", int64_t{86400} * 1000},
                                                             {"w", int64_t{604800} * 1000}};
  const std::string_view unit = text.substr(digits);
  const auto* found = std::find_if(std::begin(kUnits), std::end(kUnits),
                                   [&](const auto& u) { return u.first == unit; });
  if (found == std::end(kUnits)) return std::nullopt;
  const int64_t factor = found->second;
  if (number > kMax / factor) return std::nullopt;
  return std::chrono::milliseconds(number * factor);
}

std::string_view to_string(ListenRole role) {
  return name_of(std::span<const Named<ListenRole>>(kListenRoles), role);
}
std::string_view to_string(HandoffMode mode) {
  return name_of(std::span<const Named<HandoffMode>>(kHandoffModes), mode);
}
std::string_view to_string(FakeMxAction action) {
  return name_of(std::span<const Named<FakeMxAction>>(kFakeMxActions), action);
}
std::string_view to_string(StoreBackend backend) {
  return name_of(std::span<const Named<StoreBackend>>(kStoreBackends), backend);
}
std::string_view to_string(LogFormat format) {
  return name_of(std::span<const Named<LogFormat>>(kLogFormats), format);
}
std::string_view to_string(LogTarget target) {
  return name_of(std::span<const Named<LogTarget>>(kLogTargets), target);
}

}  // namespace mxscreen::proxy
