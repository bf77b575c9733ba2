// proxy/config.h: the mxscreen configuration as plain values, one struct per TOML section,
// member names = TOML key names. load_config()/parse_config() read a TOML file, fill in the
// defaults of DESIGN.md and report every problem as "file:line:col: message".
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "checks/dnsbl.h"
#include "checks/fake_mx.h"
#include "checks/helo.h"
#include "checks/spf_policy.h"
#include "checks/verdict.h"
#include "protocol/address.h"

namespace mxscreen::proxy {

struct ServerConfig {
  std::string hostname;           // empty = gethostname(), resolved by the proxy, not here
  std::string user = "mxscreen";  // drop root after binding ("" = stay)
  std::string state_dir = "/var/lib/mxscreen";
  int max_sessions = 20000;
  double stress_threshold = 0.8;  // share of max_sessions that turns stress mode on
  std::chrono::milliseconds drain_timeout = std::chrono::seconds(30);
  int workers = 1;
  std::size_t buffer_size = 65536;  // bytes buffered per direction per spliced session
  // Plain spliced sessions move bytes with splice(2) (kernel_splice.h) instead of copying, once
  // 64 KiB have gone one way (handoff.cc, kKernelSpliceAfter). Off by default: it saves
  // mxscreen CPU, but a backend on the same host reading big messages gets 11-14% less through
  // (bench/README.md, "splice(2) and the receiver"; HAProxy's own splicing measured the same).
  bool kernel_splice = false;
  // The admin socket (state_dir/mxscreen.ctl): connections at once (more are answered "ERR
  // busy" and closed) and how long a connection may take to send its request.
  int ctl_max_connections = 16;
  std::chrono::milliseconds ctl_timeout = std::chrono::seconds(5);
};

enum class ListenRole : uint8_t { kMx, kFakeMx };

struct ListenConfig {
  protocol::Endpoint address;
  ListenRole role = ListenRole::kMx;
  bool proxy_protocol = false;  // expect PROXY v1/v2 from an upstream load balancer
  // The upstream balancers whose PROXY header is believed (Haraka's haproxy_hosts). Required
  // when proxy_protocol is on: a connection from any other address is closed unheard.
  std::vector<protocol::Cidr> proxy_trusted;
  // Where the [[listen]] entry is in the file (0 = built-in default), for bind errors.
  int line = 0;
  int column = 0;
};

enum class HandoffMode : uint8_t { kProxyV1, kProxyV2, kXclient, kNone };

struct BackendConfig {
  protocol::Endpoint address = {protocol::IpAddress::v4(127, 0, 0, 1), 10025};
  HandoffMode handoff = HandoffMode::kProxyV2;
  std::chrono::milliseconds connect_timeout = std::chrono::seconds(5);
  int max_sessions = 200;
  std::chrono::milliseconds banner_timeout =
      std::chrono::seconds(30);  // wait for the backend's 220
  // Sessions ready for handoff that wait for a slot (FIFO) when max_sessions are taken, and
  // how long one waits before 421 (under RFC 5321 4.5.3.2's 5-minute reply timeouts).
  int queue_max = 10000;
  std::chrono::milliseconds queue_timeout = std::chrono::seconds(120);
};

struct GreetConfig {
  std::string banner = "$hostname ESMTP";  // $hostname is expanded by the proxy
  std::chrono::milliseconds wait = std::chrono::seconds(6);
  checks::Action action = checks::Action::kEnforce;
};

struct SmtpConfig {
  bool helo_required = true;
  bool disable_vrfy = true;
  int line_length_limit = 2048;
  int command_count_limit = 20;
  std::chrono::milliseconds command_time_limit = std::chrono::seconds(300);
  checks::Action pipelining = checks::Action::kEnforce;
  checks::Action non_smtp_command = checks::Action::kDrop;
  checks::Action bare_newline = checks::Action::kOff;
  std::chrono::milliseconds idle_timeout = std::chrono::seconds(300);  // splice idle timeout
};

struct ErrorsConfig {  // Postfix smtpd_error_sleep_time, smtpd_soft/hard_error_limit
  std::chrono::milliseconds sleep_time = std::chrono::seconds(1);
  int soft_limit = 10;
  int hard_limit = 20;
  int junk_command_limit = 100;
};

// The checks answered on EHLO/HELO are checks::HeloPolicy's switches; the DNS tests of the name
// (answered at RCPT, checks/domain.h) are here.
struct HeloConfig : checks::HeloPolicy {
  bool reject_unknown = false;
  std::vector<std::string> rhsbl;
};

struct ClientConfig {
  bool reject_unknown_reverse = false;
  bool reject_unknown = false;
  std::vector<std::string> rhsbl_reverse;
};

struct SenderConfig {
  bool reject_non_fqdn = true;
  bool reject_unknown_domain = false;
  std::vector<std::string> rhsbl;
  // SPF (RFC 7208) of the MAIL FROM (or HELO for the null sender): off | log | reject_fail |
  // reject_fail_softfail (postfix-policyd-spf's choices; checks/spf_policy.h).
  checks::SpfMode spf = checks::SpfMode::kOff;
  // RFC 7208 4.6.4: a bound on one whole evaluation ("SHOULD allow at least 20 seconds").
  std::chrono::milliseconds spf_timeout{20000};
  // SPF evaluations waiting for DNS at once in the process; past it: temperror at once.
  int spf_max_in_flight = 1000;
};

struct RecipientConfig {
  bool reject_non_fqdn = true;
};

struct DnsblConfig {
  // postscreen_dnsbl_sites syntax: name=filter*weight (filter and weight optional).
  std::vector<std::string> sites = {"zen.spamhaus.org=127.0.0.[2..11]*3",
                                    "list.dnswl.org=127.0.[0..255].[1..3]*-5"};
  int threshold = 3;
  int allowlist_threshold = -1;
  checks::Action action = checks::Action::kEnforce;
  bool reply_text = false;  // TXT of the listing site in the reject text
  // postscreen_dnsbl_reply_map: zone -> the name a rejected client is told ("blocked using
  // <name>"), for DNSBL and RHSBL lists alike. Unmapped zones are never named to a client.
  checks::DnsblReplyMap reply_map;
};

struct DnsConfig {
  std::vector<protocol::Endpoint> nameservers;  // empty = /etc/resolv.conf
  std::chrono::milliseconds timeout = std::chrono::seconds(5);
  std::chrono::milliseconds ttl_min = std::chrono::seconds(60);  // postscreen_dnsbl_min_ttl
  std::chrono::milliseconds ttl_max = std::chrono::hours(1);     // postscreen_dnsbl_max_ttl
  std::chrono::milliseconds negative_ttl = std::chrono::seconds(60);
  int cache_size = 50000;   // entries, least recently used evicted; 0 = no cache
  int retries = 2;          // resends within timeout
  int max_queries = 10000;  // in flight; beyond that lookups answer tempfail
};

struct GreylistConfig {
  bool enabled = true;
  std::chrono::milliseconds delay = std::chrono::minutes(5);
  std::chrono::milliseconds retry_window = std::chrono::hours(48);
  std::chrono::milliseconds max_age = std::chrono::days(35);
  int ipv4_prefix = 24;
  int ipv6_prefix = 64;
  int auto_allowlist_clients = 5;
  std::string reply_text = "Greylisted, please try again later";  // after "450 4.2.0"
  bool strip_sender_tags = true;        // SRS, BATV, +tag and VERP numbers: one sender, one triplet
  bool skip_on_nolisting_pass = false;  // fake MX first, then the real one: no greylisting
  // How often the first worker walks the triplets to count those never retried within
  // retry_window (mxscreen_greylist_never_retried_total); unretried triplets are kept
  // max(1h, 3 x this) past retry_window so that a walk meets them.
  std::chrono::milliseconds sweep_interval = std::chrono::minutes(5);
  // postgrey's whitelist_clients / whitelist_recipients (checks/greylist_allowlist.h); read at
  // start and on SIGHUP. "" = none.
  std::string client_allowlist_file;
  std::string recipient_allowlist_file;
  // Identity-keyed triplets (checks/greylist_identity.h): the client part of a triplet is the
  // SPF-pass sender domain, else the organisational domain of the forward-confirmed reverse
  // name, else the network. On by default: a key, never a bypass.
  bool identity_keys = true;
  // Greylist only clients with one of these suspicious facts (checks/greylist_gate.h:
  // "no_fcrdns", "dynamic_ptr", "dnsbl", "helo", "spf"); empty = greylist every client.
  std::vector<std::string> only_if;
  // Spam traps (checks/spam_trap.h): a RCPT to one bans the client at once.
  std::vector<std::string> trap_recipients;
};

// The verdict cache (checks/pass_cache.h): one TTL per test, postscreen's names and defaults.
// The shortest IPv6 prefix that limits.ipv6_prefix and ban.ipv6_prefix accept: fewer bits
// would lump whole providers together.
inline constexpr int kMinClientIpv6Prefix = 32;

struct CacheConfig {
  bool enabled = true;  // false: no PASS OLD, every session is screened
  std::chrono::milliseconds greet_ttl = std::chrono::days(1);          // postscreen_greet_ttl
  std::chrono::milliseconds dnsbl_min_ttl = std::chrono::seconds(60);  // postscreen_dnsbl_min_ttl
  std::chrono::milliseconds dnsbl_max_ttl = std::chrono::hours(1);     // postscreen_dnsbl_max_ttl
  std::chrono::milliseconds pipelining_ttl = std::chrono::days(30);
  std::chrono::milliseconds non_smtp_command_ttl = std::chrono::days(30);
  std::chrono::milliseconds bare_newline_ttl = std::chrono::days(30);
};

using checks::FakeMxAction;  // checks/fake_mx.h

struct FakeMxConfig {
  FakeMxAction action = FakeMxAction::kReset;
  int ban_after = 3;
  std::chrono::milliseconds window = std::chrono::hours(24);
  std::chrono::milliseconds pair_window = std::chrono::minutes(10);
};

struct BanConfig {
  std::chrono::milliseconds ban_time = std::chrono::hours(1);
  std::chrono::milliseconds max_ban_time = std::chrono::days(7);
  int max_retry = 3;
  std::chrono::milliseconds find_time = std::chrono::minutes(10);
  bool on_fake_mx = true;  // ban clients that only ever come to the fake MX
  bool on_strikes = true;  // ban after max_retry drop verdicts / hard limits / AUTH in find_time
  bool reply = false;      // true: 554 5.7.1 to a banned client; false: close without a word
  // Bans, strikes, fake-MX hits and real-MX visits count IPv6 clients per this network.
  int ipv6_prefix = 64;
  // argv (no shell) run on each ban / unban; "{address}" is replaced by the client address,
  // which is appended when no argument names it. Empty: nothing is run.
  std::vector<std::string> command;
  std::vector<std::string> unban_command;
};

struct LimitsConfig {
  int client_connection_count = 50;
  int client_connection_rate = 0;  // per minute, 0 = off
  int ipv6_prefix = 84;            // IPv6 clients counted per network (Postfix 3.8's default)
};

struct AccessConfig {
  std::vector<protocol::Cidr> allow = {
      {protocol::IpAddress::v4(127, 0, 0, 0), 8},
      {protocol::IpAddress{protocol::IpAddress::Family::kV6,
                           {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}},
       128}};
  std::vector<protocol::Cidr> deny;
  std::string file;  // postscreen cidr format: "192.0.2.0/24 permit|reject"
};

struct TlsConfig {
  std::string cert_file;  // empty = no STARTTLS; PEM, the chain after the certificate
  std::string key_file;
  // Further certificate/key pairs (e.g. ECDSA beside RSA), pairwise by position.
  std::vector<std::string> extra_cert_files;
  std::vector<std::string> extra_key_files;
  std::string protocols = "TLSv1.2+";  // "TLSv1.2+" | "TLSv1.3"
  std::string ciphers;                 // TLS 1.2 cipher list; "" = OpenSSL's default
  std::string ciphersuites;            // TLS 1.3 suites; "" = OpenSSL's default
  std::chrono::milliseconds handshake_timeout = std::chrono::seconds(10);
  bool session_tickets = true;
  std::chrono::milliseconds ticket_key_rotation = std::chrono::hours(1);
};

enum class StoreBackend : uint8_t { kLmdb, kRedis, kMemory };

struct StoreConfig {
  StoreBackend backend = StoreBackend::kLmdb;
  std::string redis_url = "redis://127.0.0.1:6379/0";
  std::size_t map_size = 256u << 20;  // LMDB map size in bytes; a full map fails open
  // Memory engine bound in bytes (keys, values, a fixed estimate per entry); when reached,
  // expired entries go and new keys are refused (fail open), live ones are kept.
  std::size_t memory_max_bytes = 256u << 20;
};

struct MetricsConfig {
  // nullopt = off (listen = "" in the file).
  std::optional<protocol::Endpoint> listen =
      protocol::Endpoint{protocol::IpAddress::v4(127, 0, 0, 1), 9425};
  // Scrapes at once (more get 503 and are closed), and how long a scraper may take to send its
  // request: an idle connection is closed after it.
  int max_connections = 16;
  std::chrono::milliseconds timeout = std::chrono::seconds(5);
};

// The Postfix policy service (proxy/policy_server.h): the backend's check_policy_service.
struct PolicyConfig {
  std::optional<protocol::Endpoint> listen;  // nullopt = off (listen = "" in the file)
  int max_connections = 200;                 // one per backend smtpd process, at most
  // Above Postfix's smtpd_policy_service_max_idle (300s): Postfix closes first, never we.
  std::chrono::milliseconds idle_timeout = std::chrono::seconds(600);
  std::chrono::milliseconds request_timeout = std::chrono::seconds(10);  // a begun request
  std::size_t request_size_limit = 16384;                                // bytes of one request
  bool x_greylist_header = false;  // PREPEND X-Greylist: on a pass after the delay
};

enum class LogFormat : uint8_t { kText, kJson };
enum class LogTarget : uint8_t { kStderr, kSyslog };

struct LogConfig {
  LogFormat format = LogFormat::kText;
  LogTarget target = LogTarget::kStderr;
};

struct Config {
  ServerConfig server;
  // Default when the file has no [[listen]]: one mx listener on 0.0.0.0:25.
  std::vector<ListenConfig> listen;
  BackendConfig backend;
  GreetConfig greet;
  SmtpConfig smtp;
  ErrorsConfig errors;
  HeloConfig helo;
  ClientConfig client;
  SenderConfig sender;
  RecipientConfig recipient;
  DnsblConfig dnsbl;
  DnsConfig dns;
  GreylistConfig greylist;
  CacheConfig cache;
  FakeMxConfig fake_mx;
  BanConfig ban;
  LimitsConfig limits;
  AccessConfig access;
  TlsConfig tls;
  StoreConfig store;
  MetricsConfig metrics;
  PolicyConfig policy;
  LogConfig log;
};

struct ConfigError {
  std::string file;
  int line = 0;  // 1-based; 0 = no position (e.g. the file cannot be read)
  int column = 0;
  std::string message;

  // "file:line:col: message", or "file: message" without a position.
  std::string to_string() const;
};

struct ConfigResult {
  std::optional<Config> config;  // set iff errors is empty
  std::vector<ConfigError> errors;
  // Accepted, but worth the admin's attention (a deprecated key): "file:line:col: warning: ...".
  std::vector<ConfigError> warnings;

  bool ok() const { return config.has_value(); }
};

// Reads and validates the file at `path`.
ConfigResult load_config(const std::string& path);
// Same for TOML text already in memory; `path_for_messages` names it in errors.
ConfigResult parse_config(std::string_view toml_text, const std::string& path_for_messages);

// "500ms", "6s", "5m", "2h", "35d", "1w"; a bare number is seconds (Postfix's default unit).
// Negative, empty, fractional or garbage input, or overflow, gives nullopt.
std::optional<std::chrono::milliseconds> parse_duration(std::string_view text);

std::string_view to_string(ListenRole role);
std::string_view to_string(HandoffMode mode);
std::string_view to_string(FakeMxAction action);
std::string_view to_string(StoreBackend backend);
std::string_view to_string(LogFormat format);
std::string_view to_string(LogTarget target);

}  // namespace mxscreen::proxy
