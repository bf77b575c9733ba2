// proxy/dns.cc: see dns.h. udns does the wire format and the resends; this file ties it to
// libuv, enforces dns.timeout per lookup (udns only counts whole seconds), shares identical
// queries, feeds the cache and counts everything on /metrics.
#include "proxy/dns.h"

#include <arpa/inet.h>
#include <udns.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <ctime>
#include <mutex>
#include <string_view>
#include <utility>

#include "checks/dnsbl.h"
#include "proxy/log.h"
#include "proxy/metrics.h"

namespace mxscreen::proxy {
namespace {

constexpr char kHistogram[] = "mxscreen_dns_query_seconds";

void observe_latency(double seconds) { metrics().observe(kHistogram, "", seconds); }

int udns_type(DnsType type) {
  switch (type) {
    case DnsType::kA:
      return DNS_T_A;
    case DnsType::kAAAA:
      return DNS_T_AAAA;
    case DnsType::kPTR:
      return DNS_T_PTR;
    case DnsType::kMX:
      return DNS_T_MX;
    case DnsType::kTXT:
      return DNS_T_TXT;
  }
  return DNS_T_A;
}

dns_parse_fn* udns_parser(DnsType type) {
  switch (type) {
    case DnsType::kA:
      return dns_parse_a4;
    case DnsType::kAAAA:
      return dns_parse_a6;
    case DnsType::kPTR:
      return dns_parse_ptr;
    case DnsType::kMX:
      return dns_parse_mx;
    case DnsType::kTXT:
      return dns_parse_txt;
  }
  return dns_parse_a4;
}

DnsStatus status_from_udns(int status) {
  switch (status) {
    case DNS_E_NXDOMAIN:
      return DnsStatus::kNxDomain;
    case DNS_E_NODATA:
      return DnsStatus::kNoData;
    default:
      return DnsStatus::kTempFail;  // DNS_E_TEMPFAIL (timeout, SERVFAIL), PROTOCOL, NOMEM
  }
}

// Turns a parsed udns RRset into values; frees nothing (the caller frees `result`).
DnsAnswer answer_from_udns(DnsType type, void* result) {
  DnsAnswer answer;
  answer.status = DnsStatus::kOk;
  char text[INET6_ADDRSTRLEN];
  switch (type) {
    case DnsType::kA: {
      auto* rr = static_cast<dns_rr_a4*>(result);
      answer.ttl = rr->dnsa4_ttl;
      for (int i = 0; i < rr->dnsa4_nrr; ++i) {
        if (inet_ntop(AF_INET, &rr->dnsa4_addr[i], text, sizeof text))
          answer.values.emplace_back(text);
      }
      break;
    }
    case DnsType::kAAAA: {
      auto* rr = static_cast<dns_rr_a6*>(result);
      answer.ttl = rr->dnsa6_ttl;
      for (int i = 0; i < rr->dnsa6_nrr; ++i) {
        if (inet_ntop(AF_INET6, &rr->dnsa6_addr[i], text, sizeof text))
          answer.values.emplace_back(text);
      }
      break;
    }
    case DnsType::kPTR: {
      auto* rr = static_cast<dns_rr_ptr*>(result);
      answer.ttl = rr->dnsptr_ttl;
      for (int i = 0; i < rr->dnsptr_nrr; ++i) answer.values.emplace_back(rr->dnsptr_ptr[i]);
      break;
    }
    case DnsType::kMX: {
      auto* rr = static_cast<dns_rr_mx*>(result);
      answer.ttl = rr->dnsmx_ttl;
      std::vector<std::pair<int, std::string>> mx;
      for (int i = 0; i < rr->dnsmx_nrr; ++i)
        mx.emplace_back(rr->dnsmx_mx[i].priority, rr->dnsmx_mx[i].name);
      std::stable_sort(mx.begin(), mx.end(),
                       [](const auto& a, const auto& b) { return a.first < b.first; });
      for (auto& [pref, name] : mx) answer.values.push_back(std::move(name));
      break;
    }
    case DnsType::kTXT: {
      auto* rr = static_cast<dns_rr_txt*>(result);
      answer.ttl = rr->dnstxt_ttl;
      for (int i = 0; i < rr->dnstxt_nrr; ++i) {
        answer.values.emplace_back(reinterpret_cast<const char*>(rr->dnstxt_txt[i].txt),
                                   static_cast<std::size_t>(rr->dnstxt_txt[i].len));
      }
      break;
    }
  }
  if (answer.values.empty()) answer.status = DnsStatus::kNoData;
  return answer;
}

// udns's default context must be initialised once before dns_new() may copy it.
bool init_udns_default(std::string* error) {
  static std::once_flag once;
  static int status = 0;
  std::call_once(once, [] { status = dns_init(nullptr, 0); });
  if (status < 0) *error = "udns: cannot read /etc/resolv.conf";
  return status >= 0;
}

}  // namespace

DnsAnswer parse_dns_reply(DnsType type, std::string_view packet) {
  DnsAnswer answer;
  const auto* pkt = reinterpret_cast<const unsigned char*>(packet.data());
  const unsigned char* end = pkt + packet.size();
  // What udns checks before it calls the parser: a header, one question, its name.
  if (packet.size() < DNS_HSIZE || dns_numqd(pkt) != 1) return answer;
  const unsigned char* cur = dns_payload(pkt);
  unsigned char qdn[DNS_MAXDN];
  if (dns_getdn(pkt, &cur, end, qdn, sizeof qdn) <= 0 || end - cur < 4) return answer;
  // udns's parsers start at the question's type and assert that it is what was asked.
  if (dns_get16(cur) != static_cast<unsigned>(udns_type(type)) || dns_get16(cur + 2) != DNS_C_IN) {
    return answer;
  }
  if (dns_rcode(pkt) == DNS_R_NXDOMAIN) {
    answer.status = DnsStatus::kNxDomain;
    return answer;
  }
  if (dns_rcode(pkt) != DNS_R_NOERROR) return answer;
  void* result = nullptr;
  int status = udns_parser(type)(qdn, pkt, cur, end, &result);
  if (status < 0 || !result) {
    answer.status = status_from_udns(status);
    free(result);
    return answer;
  }
  answer = answer_from_udns(type, result);
  free(result);  // udns allocates results with malloc()
  return answer;
}

// One udns query, shared by every lookup of the same (type, name) while it is in flight.
struct Resolver::Query {
  Resolver* owner = nullptr;
  std::string key;
  DnsType type = DnsType::kA;
  dns_query* udns = nullptr;
  uint64_t started_ns = 0;
  Timer deadline;  // dns.timeout: the lookup fails temporarily past it
  std::vector<std::weak_ptr<DnsLookup::Waiter>> waiters;

  void timed_out();
};

Resolver::Resolver(uv_loop_t* loop, const DnsConfig& config, const DnsOptions& options)
    : loop_(loop),
      options_(options),
      timeout_(std::max(config.timeout, std::chrono::milliseconds(1))),
      cache_(DnsCacheLimits{options.ttl_min, options.ttl_max, options.negative_ttl,
                            options.cache_size}) {
  metrics().describe("mxscreen_dns_queries_total", "counter",
                     "DNS queries sent, by type and outcome");
  metrics().describe(kHistogram, "histogram",
                     "DNS query latency on the wire (cache hits excluded).");
  metrics().describe("mxscreen_dns_cache_total", "counter",
                     "DNS lookups by cache result (hit, miss, shared = joined a query in flight)");
  udns_timer_.init<&Resolver::on_udns_timer>(loop_, this);
  deliver_timer_.init<&Resolver::deliver_now>(loop_, this);

  if (!init_udns_default(&error_)) return;
  dns_ctx* ctx = dns_new(nullptr);
  if (!ctx) {
    error_ = "udns: cannot create a resolver context";
    return;
  }
  dns_add_srch(ctx, nullptr);  // names are absolute; never append a search domain
  if (!config.nameservers.empty()) {
    dns_add_serv(ctx, nullptr);
    for (const auto& server : config.nameservers) {
      sockaddr_storage ss = sockaddr_from_endpoint(server);
      if (dns_add_serv_s(ctx, reinterpret_cast<const sockaddr*>(&ss)) < 0) {
        error_ = "udns: cannot add nameserver " + server.to_string() + " (at most " +
                 std::to_string(DNS_MAXSERV) + ")";
        dns_free(ctx);
        return;
      }
    }
  }
  // udns doubles the wait on each resend; pick the first wait so that all tries fit into
  // dns.timeout where whole seconds allow. The deadline timer has the last word anyway.
  int tries = std::max(1, options_.retries + 1);
  int64_t budget = timeout_.count() / 1000;
  int64_t first = budget / ((int64_t{1} << std::min(tries, 20)) - 1);
  dns_set_opt(ctx, DNS_OPT_TIMEOUT, static_cast<int>(std::max<int64_t>(1, first)));
  dns_set_opt(ctx, DNS_OPT_NTRIES, tries);
  dns_set_tmcbck(ctx, &Resolver::on_udns_timer_request, this);
  int fd = dns_open(ctx);
  if (fd < 0) {
    error_ = "udns: cannot open the resolver socket";
    dns_free(ctx);
    return;
  }
  int rc = uv_poll_init(loop_, poll_.get(), fd);
  if (rc != 0) {
    error_ = "udns socket: " + uv_error(rc);
    dns_free(ctx);
    return;
  }
  poll_.initialized();
  poll_->data = this;
  uv_poll_start(poll_.get(), UV_READABLE, &Resolver::on_readable);
  ctx_ = ctx;
}

Resolver::~Resolver() {
  alive_.reset();
  // Stop polling before udns closes its socket, then drop every query without callbacks.
  poll_.close();
  udns_timer_.close();
  deliver_timer_.close();
  queries_.clear();
  if (ctx_) dns_free(ctx_);
}

DnsCache::Clock::time_point Resolver::now() const {
  // uv_now() is CLOCK_MONOTONIC in milliseconds, as steady_clock is on Linux.
  return DnsCache::Clock::time_point(std::chrono::milliseconds(uv_now(loop_)));
}

std::string Resolver::ptr_name(const protocol::IpAddress& address) {
  return checks::dnsbl_query_name(address, address.is_v4() ? "in-addr.arpa" : "ip6.arpa");
}

DnsLookup Resolver::lookup_ptr(const protocol::IpAddress& address, Callback callback) {
  return lookup(DnsType::kPTR, ptr_name(address), std::move(callback));
}

DnsLookup Resolver::lookup(DnsType type, const std::string& name, Callback callback) {
  auto waiter = std::make_shared<DnsLookup::Waiter>();
  waiter->callback = std::move(callback);
  std::string key = DnsCache::key(type, name);

  if (auto cached = cache_.get(type, name, now())) {
    metrics().inc("mxscreen_dns_cache_total", "result=\"hit\"");
    deliver_later(waiter, std::make_shared<const DnsAnswer>(std::move(*cached)));
    return DnsLookup(std::move(waiter));
  }
  if (auto it = queries_.find(key); it != queries_.end()) {
    metrics().inc("mxscreen_dns_cache_total", "result=\"shared\"");
    it->second->waiters.push_back(waiter);
    return DnsLookup(std::move(waiter));
  }
  metrics().inc("mxscreen_dns_cache_total", "result=\"miss\"");
  auto fail = [&](DnsStatus status, std::string_view why) {
    metrics().inc("mxscreen_dns_queries_total", "type=\"" + std::string(to_string(type)) +
                                                    "\",status=\"" + std::string(why) + "\"");
    auto answer = std::make_shared<DnsAnswer>();
    answer->status = status;
    deliver_later(waiter, std::move(answer));
    return DnsLookup(std::move(waiter));
  };
  if (!ctx_) return fail(DnsStatus::kTempFail, "unavailable");
  // Every query in flight holds a udns slot, a timer and its waiters: bounded by max_queries.
  if (queries_.size() >= options_.max_queries) {
    metrics().inc("mxscreen_dns_overload_total");
    return fail(DnsStatus::kTempFail, "overload");
  }

  auto query = std::make_unique<Query>();
  query->owner = this;
  query->key = key;
  query->type = type;
  query->started_ns = uv_hrtime();
  query->waiters.push_back(waiter);
  query->udns = dns_submit_p(ctx_, name.c_str(), DNS_C_IN, udns_type(type), DNS_NOSRCH,
                             udns_parser(type), &Resolver::on_udns_answer, query.get());
  if (!query->udns) {
    // A name udns cannot encode (empty label, longer than 255 octets) cannot exist.
    return fail(dns_status(ctx_) == DNS_E_BADQUERY ? DnsStatus::kNxDomain : DnsStatus::kTempFail,
                "badquery");
  }
  query->deadline.init<&Query::timed_out>(loop_, query.get());
  query->deadline.start(timeout_);
  queries_.emplace(std::move(key), std::move(query));
  return DnsLookup(std::move(waiter));
}

void Resolver::complete(Query* query, DnsAnswer answer) {
  double seconds = static_cast<double>(uv_hrtime() - query->started_ns) / 1e9;
  observe_latency(seconds);
  metrics().inc("mxscreen_dns_queries_total", "type=\"" + std::string(to_string(query->type)) +
                                                  "\",status=\"" +
                                                  std::string(to_string(answer.status)) + "\"");
  auto node = queries_.extract(query->key);  // owns `query` until the end of this function
  std::string_view name = std::string_view(query->key).substr(query->key.find(' ') + 1);
  cache_.put(query->type, name, answer, now());
  auto shared = std::make_shared<const DnsAnswer>(std::move(answer));
  for (auto& waiter : query->waiters) deliver_later(std::move(waiter), shared);
}

void Resolver::deliver_later(std::weak_ptr<DnsLookup::Waiter> waiter,
                             std::shared_ptr<const DnsAnswer> answer) {
  deliveries_.push_back(Delivery{std::move(waiter), std::move(answer)});
  if (!deliver_timer_.active()) deliver_timer_.start(std::chrono::milliseconds(0));
}

void Resolver::deliver_now() {
  std::vector<Delivery> batch;
  batch.swap(deliveries_);
  std::weak_ptr<bool> alive = alive_;
  for (auto& delivery : batch) {
    auto waiter = delivery.waiter.lock();
    if (!waiter || waiter->done) continue;
    waiter->done = true;
    auto callback = std::move(waiter->callback);
    callback(*delivery.answer);
    // A callback may destroy this resolver (or the session that owns it).
    if (alive.expired()) return;
  }
}

void Resolver::on_udns_answer(dns_ctx* ctx, void* result, void* data) {
  auto* query = static_cast<Query*>(data);
  Resolver* self = query->owner;
  DnsAnswer answer;
  if (result) {
    answer = answer_from_udns(query->type, result);
    free(result);  // udns allocates results with malloc()
  } else {
    answer.status = status_from_udns(dns_status(ctx));
  }
  query->udns = nullptr;
  self->complete(query, std::move(answer));
}

void Resolver::Query::timed_out() {
  Query* query = this;
  Resolver* self = owner;
  if (query->udns) {
    dns_cancel(self->ctx_, query->udns);
    // udns 0.4 (Debian 12) unlinks a cancelled query but never frees it (found by LSan);
    // other versions are left alone: a small leak beats a double free.
    static const bool cancel_leaks = std::string_view(dns_version()) == "0.4";
    if (cancel_leaks) free(query->udns);
  }
  query->udns = nullptr;
  DnsAnswer answer;
  answer.status = DnsStatus::kTempFail;
  self->complete(query, std::move(answer));
}

void Resolver::on_udns_timer_request(dns_ctx* /*ctx*/, int timeout, void* data) {
  auto* self = static_cast<Resolver*>(data);
  if (timeout < 0) {
    self->udns_timer_.stop();
  } else {
    self->udns_timer_.start(std::chrono::seconds(timeout));
  }
}

void Resolver::on_udns_timer() {
  if (ctx_) dns_timeouts(ctx_, -1, time(nullptr));
}

void Resolver::on_readable(uv_poll_t* poll, int status, int /*events*/) {
  auto* self = static_cast<Resolver*>(poll->data);
  if (!self || !self->ctx_ || status < 0) return;
  dns_ioevent(self->ctx_, time(nullptr));
}

}  // namespace mxscreen::proxy
