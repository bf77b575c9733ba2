// tests/proxy/dns_unbound_test.cc: the Resolver and ClientLookups against a real unbound on
// a high loopback port serving local zones (DNSBL, DNSWL, PTR, A, MX, TXT, an error-answering
// zone), and against a nameserver that never answers. Waits are "run the loop until".
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "checks/dnsbl.h"
#include "proxy/client_dns.h"
#include "proxy/dns.h"
#include "proxy/metrics.h"

namespace mxscreen::proxy {
namespace {

using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

protocol::IpAddress ip(const char* text) { return *protocol::IpAddress::parse(text); }

// A loopback port free for both UDP and TCP right now (unbound listens on both).
uint16_t free_port() {
  for (int attempt = 0; attempt < 50; ++attempt) {
    int udp = socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(udp, reinterpret_cast<sockaddr*>(&sin), sizeof sin) != 0) {
      close(udp);
      continue;
    }
    socklen_t len = sizeof sin;
    getsockname(udp, reinterpret_cast<sockaddr*>(&sin), &len);
    int tcp = socket(AF_INET, SOCK_STREAM, 0);
    bool ok = bind(tcp, reinterpret_cast<sockaddr*>(&sin), sizeof sin) == 0;
    close(tcp);
    close(udp);
    if (ok) return ntohs(sin.sin_port);
  }
  return 0;
}

std::string find_unbound() {
  for (const char* path : {"/usr/sbin/unbound", "/usr/local/sbin/unbound", "/usr/bin/unbound"}) {
    if (access(path, X_OK) == 0) return path;
  }
  return {};
}

// Runs `loop` until `done()` or the deadline; a 5 ms ticker keeps UV_RUN_ONCE from blocking.
bool run_until(uv_loop_t* loop, const std::function<bool()>& done,
               std::chrono::milliseconds limit = 5s) {
  uv_timer_t ticker;
  uv_timer_init(loop, &ticker);
  uv_timer_start(
      &ticker, [](uv_timer_t*) {}, 5, 5);
  auto deadline = SteadyClock::now() + limit;
  while (!done() && SteadyClock::now() < deadline) uv_run(loop, UV_RUN_ONCE);
  uv_close(reinterpret_cast<uv_handle_t*>(&ticker), nullptr);
  uv_run(loop, UV_RUN_NOWAIT);
  return done();
}

const char* kZones = R"(
  local-zone: "ready.test." static
  local-data: "ready.test. 300 IN A 127.0.0.1"
  local-zone: "zen.test." static
  local-data: "2.0.0.127.zen.test. 300 IN A 127.0.0.2"
  local-data: '2.0.0.127.zen.test. 300 IN TXT "Listed by zen.test, see https://zen.test/q/127.0.0.2"' 
  local-data: "3.0.0.127.zen.test. 300 IN A 127.255.255.254"
  local-zone: "wl.test." static
  local-data: "33.0.0.127.wl.test. 300 IN A 127.0.10.2"
  local-zone: "bl2.test." static
  local-data: "2.0.0.127.bl2.test. 300 IN A 127.0.0.4"
  local-zone: "dbl.test." static
  local-data: "spammer.test.dbl.test. 300 IN A 127.0.1.2"
  local-zone: "good.test." static
  local-data: "good.test. 300 IN MX 10 mail.good.test."
  local-data: "good.test. 300 IN MX 5 mx1.good.test."
  local-data: "mail.good.test. 300 IN A 127.0.0.33"
  local-data: "mx1.good.test. 300 IN A 127.0.0.35"
  local-zone: "liar.test." static
  local-data: "liar.test. 300 IN A 127.0.0.99"
  local-zone: "0.0.127.in-addr.arpa." static
  local-data-ptr: "127.0.0.33 mail.good.test"
  local-data-ptr: "127.0.0.34 liar.test"
)";

class DnsUnbound : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::string binary = find_unbound();
    if (binary.empty()) return;
    char tmpl[] = "/tmp/mxscreen-unbound-XXXXXX";
    if (!mkdtemp(tmpl)) return;
    dir_ = tmpl;
    port_ = free_port();
    std::string conf = dir_ + "/unbound.conf";
    {
      std::ofstream out(conf);
      out << "server:\n"
          << "  do-daemonize: no\n  username: \"\"\n  chroot: \"\"\n"
          << "  directory: \"" << dir_ << "\"\n  pidfile: \"\"\n"
          << "  use-syslog: no\n  logfile: \"\"\n  verbosity: 0\n  num-threads: 1\n"
          << "  interface: 127.0.0.1\n  port: " << port_ << "\n"
          << "  do-ip6: no\n  access-control: 127.0.0.0/8 allow\n"
          << "  module-config: \"iterator\"\n"
          << kZones << "remote-control:\n  control-enable: no\n";
    }
    pid_ = fork();
    if (pid_ == 0) {
      std::string log = dir_ + "/unbound.log";
      freopen(log.c_str(), "w", stderr);
      freopen("/dev/null", "w", stdout);
      execl(binary.c_str(), binary.c_str(), "-d", "-c", conf.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    // Ready when it answers ready.test (deadline, no fixed sleep).
    uv_loop_t loop;
    uv_loop_init(&loop);
    {
      DnsConfig config;
      config.nameservers = {server()};
      config.timeout = 200ms;
      DnsOptions options;
      options.cache_size = 0;
      options.retries = 0;
      Resolver resolver(&loop, config, options);
      auto deadline = SteadyClock::now() + 10s;
      while (!ready_ && SteadyClock::now() < deadline) {
        if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
          pid_ = -1;
          break;
        }
        bool answered = false;
        auto token = resolver.lookup(DnsType::kA, "ready.test", [&](const DnsAnswer& a) {
          answered = true;
          ready_ = a.status == DnsStatus::kOk;
        });
        run_until(
            &loop, [&] { return answered; }, 1s);
      }
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
  }

  static void TearDownTestSuite() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  static protocol::Endpoint server() { return {ip("127.0.0.1"), port_}; }

  void SetUp() override {
    if (find_unbound().empty()) GTEST_SKIP() << "unbound is not installed";
    ASSERT_TRUE(ready_) << "unbound did not answer on 127.0.0.1:" << port_ << "; see " << dir_
                        << "/unbound.log";
    uv_loop_init(&loop_);
    loop_open_ = true;
  }

  void TearDown() override {
    if (loop_open_) {
      lookups_.clear();
      resolvers_.clear();
      uv_run(&loop_, UV_RUN_DEFAULT);  // close callbacks
      EXPECT_EQ(uv_loop_close(&loop_), 0);
    }
  }

  Resolver& resolver(std::chrono::milliseconds timeout = 2s, std::size_t cache_size = 1000,
                     std::optional<protocol::Endpoint> at = std::nullopt) {
    DnsConfig config;
    config.nameservers = {at.value_or(server())};
    config.timeout = timeout;
    DnsOptions options;
    options.cache_size = cache_size;
    resolvers_.push_back(std::make_unique<Resolver>(&loop_, config, options));
    EXPECT_TRUE(resolvers_.back()->ok()) << resolvers_.back()->error();
    return *resolvers_.back();
  }

  // Looks up and runs the loop until the answer is in.
  DnsAnswer ask(Resolver& r, DnsType type, const std::string& name) {
    std::optional<DnsAnswer> answer;
    auto token = r.lookup(type, name, [&](const DnsAnswer& a) { answer = a; });
    EXPECT_TRUE(run_until(&loop_, [&] { return answer.has_value(); })) << name;
    return answer.value_or(DnsAnswer{});
  }

  std::shared_ptr<const std::vector<checks::DnsblSite>> sites(std::vector<std::string> texts) {
    std::vector<std::string> errors;
    auto parsed = checks::parse_dnsbl_sites(texts, &errors);
    EXPECT_TRUE(parsed) << (errors.empty() ? "" : errors.front());
    return std::make_shared<const std::vector<checks::DnsblSite>>(
        parsed.value_or(std::vector<checks::DnsblSite>{}));
  }

  // Runs ClientLookups for `client` to the end and returns its snapshot.
  ClientDnsSnapshot client_facts(Resolver& r, const char* client,
                                 std::shared_ptr<const std::vector<checks::DnsblSite>> list,
                                 ClientLookupsOptions options = {}) {
    bool done = false;
    ClientLookups lookups(r, health_, std::move(list), ip(client), options,
                          [&](ClientDnsEvent event) { done = event == ClientDnsEvent::kDone; });
    EXPECT_TRUE(run_until(&loop_, [&] { return done; })) << client;
    EXPECT_TRUE(lookups.done());
    return lookups.snapshot();
  }

  static inline std::string dir_;
  static inline uint16_t port_ = 0;
  static inline pid_t pid_ = -1;
  static inline bool ready_ = false;

  uv_loop_t loop_{};
  bool loop_open_ = false;
  DnsblZoneHealth health_;
  std::vector<std::unique_ptr<Resolver>> resolvers_;
  std::vector<DnsLookup> lookups_;
};

TEST_F(DnsUnbound, AnswersEveryTypeAndStatus) {
  Resolver& r = resolver();
  DnsAnswer a = ask(r, DnsType::kA, "mail.good.test");
  EXPECT_EQ(a.status, DnsStatus::kOk);
  EXPECT_EQ(a.values, std::vector<std::string>{"127.0.0.33"});
  EXPECT_GT(a.ttl, 0u);

  DnsAnswer mx = ask(r, DnsType::kMX, "good.test");
  EXPECT_EQ(mx.status, DnsStatus::kOk);
  EXPECT_EQ(mx.values, (std::vector<std::string>{"mx1.good.test", "mail.good.test"}));

  DnsAnswer ptr = ask(r, DnsType::kPTR, Resolver::ptr_name(ip("127.0.0.33")));
  EXPECT_EQ(ptr.status, DnsStatus::kOk);
  EXPECT_EQ(ptr.values, std::vector<std::string>{"mail.good.test"});

  DnsAnswer txt = ask(r, DnsType::kTXT, "2.0.0.127.zen.test");
  EXPECT_EQ(txt.status, DnsStatus::kOk);
  EXPECT_EQ(txt.values,
            std::vector<std::string>{"Listed by zen.test, see https://zen.test/q/127.0.0.2"});

  EXPECT_EQ(ask(r, DnsType::kA, "nothing.good.test").status, DnsStatus::kNxDomain);
  EXPECT_EQ(ask(r, DnsType::kAAAA, "mail.good.test").status, DnsStatus::kNoData);
  EXPECT_EQ(ask(r, DnsType::kA, "9.0.0.127.zen.test").status, DnsStatus::kNxDomain);
}

TEST_F(DnsUnbound, CallbacksNeverRunInsideLookup) {
  Resolver& r = resolver();
  ask(r, DnsType::kA, "mail.good.test");  // now cached
  bool called = false;
  auto token = r.lookup(DnsType::kA, "mail.good.test", [&](const DnsAnswer&) { called = true; });
  EXPECT_FALSE(called);  // even a cache hit comes from the loop
  EXPECT_TRUE(run_until(&loop_, [&] { return called; }));
}

TEST_F(DnsUnbound, CacheHitsAndSharedQueries) {
  Resolver& r = resolver();
  auto hits = [] { return metrics().value("mxscreen_dns_cache_total", "result=\"hit\""); };
  auto shared = [] { return metrics().value("mxscreen_dns_cache_total", "result=\"shared\""); };
  auto misses = [] { return metrics().value("mxscreen_dns_cache_total", "result=\"miss\""); };
  uint64_t h0 = hits(), s0 = shared(), m0 = misses();

  int answered = 0;
  auto t1 = r.lookup(DnsType::kA, "mx1.good.test", [&](const DnsAnswer&) { ++answered; });
  auto t2 = r.lookup(DnsType::kA, "MX1.good.test.", [&](const DnsAnswer&) { ++answered; });
  EXPECT_EQ(r.in_flight(), 1u);
  EXPECT_TRUE(run_until(&loop_, [&] { return answered == 2; }));
  EXPECT_EQ(misses() - m0, 1u);
  EXPECT_EQ(shared() - s0, 1u);

  EXPECT_EQ(ask(r, DnsType::kA, "mx1.good.test").values.front(), "127.0.0.35");
  EXPECT_EQ(hits() - h0, 1u);
  // Negative answers are cached as well.
  ask(r, DnsType::kA, "nothing.good.test");
  EXPECT_EQ(ask(r, DnsType::kA, "nothing.good.test").status, DnsStatus::kNxDomain);
  EXPECT_EQ(hits() - h0, 2u);
  // Every query that went to the wire is in the latency histogram.
  EXPECT_GT(metrics().observations("mxscreen_dns_query_seconds"), 0u);
  EXPECT_NE(metrics().render().find("mxscreen_dns_query_seconds_bucket{le=\"+Inf\"}"),
            std::string::npos);
}

TEST_F(DnsUnbound, DroppedInterestIsNeverCalledBack) {
  Resolver& r = resolver();
  bool dropped_called = false;
  bool other_called = false;
  {
    auto dropped =
        r.lookup(DnsType::kA, "liar.test", [&](const DnsAnswer&) { dropped_called = true; });
  }
  auto other = r.lookup(DnsType::kA, "liar.test", [&](const DnsAnswer&) { other_called = true; });
  EXPECT_TRUE(run_until(&loop_, [&] { return other_called; }));
  EXPECT_FALSE(dropped_called);
}

TEST_F(DnsUnbound, ClientLookupsListedClientWithoutPtr) {
  Resolver& r = resolver();
  auto list =
      sites({"zen.test=127.0.0.[2..11]*3", "wl.test=127.0.[0..255].[1..3]*-5", "bl2.test*2"});
  ClientLookupsOptions options;
  options.reply_text = true;
  ClientDnsSnapshot s = client_facts(r, "127.0.0.2", list, options);
  EXPECT_EQ(s.dnsbl_rank, 5);
  ASSERT_EQ(s.dnsbl_hits.size(), 2u);
  EXPECT_EQ(s.dnsbl_answered, 3u);
  EXPECT_EQ(s.reply_text, "Listed by zen.test, see https://zen.test/q/127.0.0.2");
  EXPECT_EQ(s.ptr, PtrState::kNone);
  EXPECT_EQ(s.fcrdns, FcrdnsState::kNoPtr);
}

TEST_F(DnsUnbound, ClientLookupsAllowlistedConfirmedClient) {
  Resolver& r = resolver();
  auto list = sites({"zen.test=127.0.0.[2..11]*3", "wl.test=127.0.[0..255].[1..3]*-5"});
  ClientDnsSnapshot s = client_facts(r, "127.0.0.33", list);
  EXPECT_EQ(s.dnsbl_rank, -5);
  EXPECT_EQ(s.ptr, PtrState::kFound);
  EXPECT_EQ(s.ptr_name, "mail.good.test");
  EXPECT_EQ(s.fcrdns, FcrdnsState::kConfirmed);
}

TEST_F(DnsUnbound, ClientLookupsFcrdnsMismatch) {
  Resolver& r = resolver();
  ClientDnsSnapshot s = client_facts(r, "127.0.0.34", sites({}));
  EXPECT_EQ(s.ptr, PtrState::kFound);
  EXPECT_EQ(s.ptr_name, "liar.test");
  EXPECT_EQ(s.fcrdns, FcrdnsState::kMismatch);
  EXPECT_EQ(s.dnsbl_rank, 0);
}

TEST_F(DnsUnbound, ZoneErrorAnswerIsNoListingAndMarksZoneUnhealthy) {
  Resolver& r = resolver();
  auto list = sites({"zen.test*3"});  // no filter: any answer would do, yet not an error code
  ClientDnsSnapshot s = client_facts(r, "127.0.0.3", list);
  EXPECT_EQ(s.dnsbl_rank, 0);
  EXPECT_TRUE(s.dnsbl_hits.empty());
  EXPECT_EQ(s.dnsbl_error_zones, std::vector<std::string>{"zen.test"});
  EXPECT_FALSE(health_.healthy("zen.test"));
  EXPECT_EQ(metrics().value("mxscreen_dnsbl_zone_healthy", "zone=\"zen.test\""), 0u);
  // A sane answer (a real listing) makes the zone healthy again.
  ClientDnsSnapshot listed = client_facts(r, "127.0.0.2", list);
  EXPECT_EQ(listed.dnsbl_rank, 3);
  EXPECT_TRUE(health_.healthy("zen.test"));
  EXPECT_EQ(metrics().value("mxscreen_dnsbl_zone_healthy", "zone=\"zen.test\""), 1u);
}

TEST_F(DnsUnbound, ClientLookupsMayDieAnyTime) {
  Resolver& r = resolver(2s, 0);
  auto list = sites({"zen.test*3", "wl.test*-5", "bl2.test*2"});
  {
    ClientLookups early(r, health_, list, ip("127.0.0.33"), {},
                        [](ClientDnsEvent) { ADD_FAILURE() << "called back after destruction"; });
  }
  // Destroyed from inside its own callback, with answers still to come.
  std::unique_ptr<ClientLookups> owned;
  owned =
      std::make_unique<ClientLookups>(r, health_, list, ip("127.0.0.33"), ClientLookupsOptions{},
                                      [&](ClientDnsEvent) { owned.reset(); });
  EXPECT_TRUE(run_until(&loop_, [&] { return !owned && r.in_flight() == 0; }));
}

TEST_F(DnsUnbound, SilentNameserverGivesTempFailInTimeAndStallsNothing) {
  // A UDP socket that takes every query and never answers.
  int black_hole = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(black_hole, reinterpret_cast<sockaddr*>(&sin), sizeof sin), 0);
  socklen_t len = sizeof sin;
  getsockname(black_hole, reinterpret_cast<sockaddr*>(&sin), &len);
  protocol::Endpoint dead{ip("127.0.0.1"), ntohs(sin.sin_port)};

  constexpr auto kTimeout = 700ms;
  Resolver& silent = resolver(kTimeout, 1000, dead);
  Resolver& good = resolver(2s, 0);

  auto start = SteadyClock::now();
  std::optional<DnsAnswer> dead_answer;
  SteadyClock::time_point dead_at;
  auto t1 = silent.lookup(DnsType::kA, "mail.good.test", [&](const DnsAnswer& a) {
    dead_answer = a;
    dead_at = SteadyClock::now();
  });
  // Clients served by the good server meanwhile are not delayed.
  int good_answers = 0;
  SteadyClock::time_point good_at;
  std::vector<DnsLookup> tokens;
  for (const char* name : {"mail.good.test", "mx1.good.test", "liar.test", "ready.test"}) {
    tokens.push_back(good.lookup(DnsType::kA, name, [&](const DnsAnswer& a) {
      EXPECT_EQ(a.status, DnsStatus::kOk);
      if (++good_answers == 4) good_at = SteadyClock::now();
    }));
  }
  EXPECT_TRUE(run_until(
      &loop_, [&] { return good_answers == 4; }, 2s));
  EXPECT_FALSE(dead_answer.has_value());
  EXPECT_LT(good_at - start, 200ms);

  EXPECT_TRUE(run_until(
      &loop_, [&] { return dead_answer.has_value(); }, 5s));
  ASSERT_TRUE(dead_answer);
  EXPECT_EQ(dead_answer->status, DnsStatus::kTempFail);
  EXPECT_GE(dead_at - start, kTimeout - 50ms);
  EXPECT_LT(dead_at - start, kTimeout + 300ms);
  // Temporary failures are not cached: the next lookup asks again (and fails again).
  EXPECT_FALSE(silent.cache().get(DnsType::kA, "mail.good.test", DnsCache::Clock::now()));
  EXPECT_EQ(silent.in_flight(), 0u);
  close(black_hole);
}

// The added latency a clean client sees with 3 DNSBL sites (plus PTR and FCrDNS), every
// answer from unbound (no cache). Printed for the record; asserted only loosely.
TEST_F(DnsUnbound, ClientLookupsLatencyWithThreeSites) {
  Resolver& r = resolver(2s, 0);
  auto list =
      sites({"zen.test=127.0.0.[2..11]*3", "wl.test=127.0.[0..255].[1..3]*-5", "bl2.test*2"});
  constexpr int kRuns = 101;
  std::vector<double> dnsbl_ms;
  std::vector<double> all_ms;
  for (int i = 0; i < kRuns; ++i) {
    std::string client = "127.0.0." + std::to_string(40 + i);
    auto start = SteadyClock::now();
    SteadyClock::time_point dnsbl_at{};
    bool done = false;
    std::unique_ptr<ClientLookups> lookups;
    lookups = std::make_unique<ClientLookups>(
        r, health_, list, ip(client.c_str()), ClientLookupsOptions{}, [&](ClientDnsEvent e) {
          if (lookups->snapshot().dnsbl_done() && dnsbl_at == SteadyClock::time_point{}) {
            dnsbl_at = SteadyClock::now();
          }
          done = e == ClientDnsEvent::kDone;
        });
    ASSERT_TRUE(run_until(&loop_, [&] { return done; }));
    auto end = SteadyClock::now();
    dnsbl_ms.push_back(std::chrono::duration<double, std::milli>(dnsbl_at - start).count());
    all_ms.push_back(std::chrono::duration<double, std::milli>(end - start).count());
  }
  std::sort(dnsbl_ms.begin(), dnsbl_ms.end());
  std::sort(all_ms.begin(), all_ms.end());
  std::cout << "ClientLookups, 3 DNSBL sites + PTR/FCrDNS against local unbound, no cache, "
            << kRuns << " runs: DNSBL score final after median " << dnsbl_ms[kRuns / 2]
            << " ms (p90 " << dnsbl_ms[kRuns * 9 / 10] << " ms), everything after median "
            << all_ms[kRuns / 2] << " ms (p90 " << all_ms[kRuns * 9 / 10] << " ms)\n";
  RecordProperty("dnsbl_median_ms", std::to_string(dnsbl_ms[kRuns / 2]));
  RecordProperty("all_median_ms", std::to_string(all_ms[kRuns / 2]));
  EXPECT_LT(all_ms[kRuns / 2], 100.0);
}

}  // namespace
}  // namespace mxscreen::proxy
