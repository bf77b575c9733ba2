// proxy/policy_server.cc: see policy_server.h. One Connection per Postfix smtpd process (the
// smtpd keeps its policy connection open across sessions, up to smtpd_policy_service_max_idle
// and _max_ttl). Requests on a connection are answered one at a time, in order: while the
// store is asked, the connection is not read.
#include "proxy/policy_server.h"

#include <charconv>
#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "checks/spam_trap.h"
#include "checks/store_keys.h"
#include "protocol/escape.h"
#include "protocol/policy.h"
#include "proxy/client_dns.h"
#include "proxy/conn.h"
#include "proxy/domain_dns.h"
#include "proxy/greylisting.h"
#include "proxy/log.h"
#include "proxy/metrics.h"
#include "proxy/server.h"
#include "proxy/spf_check.h"

namespace mxscreen::proxy {
namespace {

namespace keys = checks::store_keys;

// Answers waiting for a client that does not read; past this, its requests are not read.
constexpr std::size_t kMaxQueuedAnswers = 16 * 1024;

std::string labels(std::string_view name, std::string_view value) {
  return std::string(name) + "=\"" + label_value(value) + "\"";
}

}  // namespace

class PolicyServer::Connection : public ConnHandler {
 public:
  Connection(uv_loop_t* loop, PolicyServer& owner, Server& server)
      : owner_(owner), server_(server), conn_(*this), parser_(limits(server)), loop_(loop) {}
  ~Connection() override { *alive_ = false; }

  Conn& conn() { return conn_; }

  bool start() {
    if (!timer_.init<&Connection::timed_out>(loop_, this)) return false;
    auto peer = tcp_peer(conn_.tcp());  // only for log lines: Postfix on loopback
    peer_ = peer ? peer->log_string() : "unknown (reset before accept)";
    conn_.start_reading();
    arm_timer();
    return true;
  }

  void on_read(Conn&, std::string_view bytes) override {
    parser_.feed(bytes);
    process();
  }
  void on_eof(Conn&) override { close(); }
  void on_error(Conn&, int) override { close(); }
  void on_drained(Conn&) override {
    if (!busy_ && !closing_) conn_.start_reading();
  }

 private:
  static protocol::PolicyLimits limits(Server& server) {
    protocol::PolicyLimits l;
    l.max_request_bytes = server.runtime()->config->policy.request_size_limit;
    return l;
  }
  const PolicyConfig& config() const { return server_.runtime()->config->policy; }

  // Hands out every complete request buffered, one at a time.
  void process() {
    while (!busy_ && !closing_) {
      protocol::PolicyRequest request;
      auto status = parser_.next(&request);
      if (status == protocol::PolicyParse::kNeedMore) {
        arm_timer();
        return;
      }
      if (status != protocol::PolicyParse::kRequest) {
        refuse(std::string(protocol::to_string(status)),
               status == protocol::PolicyParse::kTooLarge            ? "too_large"
               : status == protocol::PolicyParse::kTooManyAttributes ? "too_many_attributes"
                                                                     : "bad_line");
        return;
      }
      partial_ = false;  // the next request gets a request_timeout of its own
      handle(request);
    }
  }

  // Postfix expects an answer to each request; anything that is not one is closed.
  void refuse(const std::string& why, std::string_view reason) {
    Log::event(LogLevel::kWarning, "POLICY",
               "POLICY " + why + " from " + peer_ + "; closing the connection",
               {{"reason", std::string(reason)}});
    metrics().inc("mxscreen_policy_errors_total", labels("reason", reason));
    close();
  }

  void handle(const protocol::PolicyRequest& request) {
    metrics().inc("mxscreen_policy_requests_total");
    const auto& runtime = *server_.runtime();
    // Only RCPT is greylisted; Postfix may call the service from other restriction lists.
    bool rcpt = protocol::ascii_lower(request.get("protocol_state")) == "rcpt";
    bool spf = runtime.config->sender.spf != checks::SpfMode::kOff;
    if (request.get("request") != "smtpd_access_policy" || !rcpt ||
        (!runtime.config->greylist.enabled && !spf && runtime.trap_recipients.empty())) {
      return answer("DUNNO", "skipped", "dunno");
    }
    auto client = protocol::IpAddress::parse(request.get("client_address"));
    if (!client) {
      Log::event(LogLevel::kWarning, "POLICY",
                 "POLICY request from " + peer_ + " without a valid client_address \"" +
                     protocol::printable(request.get("client_address")) + "\"; DUNNO");
      return answer("DUNNO", "skipped", "dunno");
    }
    client_ = client->to_string();  // requests are answered one at a time
    protocol::Endpoint endpoint{*client, 0};
    auto port = request.get("client_port");  // Postfix >= 3.2
    uint16_t number = 0;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), number);
    if (ec == std::errc() && end == port.data() + port.size()) endpoint.port = number;
    std::string envelope = " from=<" + protocol::printable(request.get("sender"), 255) + "> to=<" +
                           protocol::printable(request.get("recipient"), 255) + ">";
    std::string who = endpoint.log_string() + envelope;
    if (runtime.access.decide(*client) == checks::AccessDecision::kPermit) {
      log_greylist("allowlisted", who, " by access.allow");
      return answer("DUNNO", "allowlisted", "dunno");
    }
    if (runtime.trap_recipients.is_trap(request.get("recipient")))
      return trap(*client, who, request.get("recipient"));
    if (!runtime.config->greylist.enabled && !spf) return answer("DUNNO", "skipped", "dunno");
    query_ = GreylistQuery{};
    query_.client = *client;
    // Postfix's client_name is the forward-confirmed name, or "unknown"; reverse_client_name
    // is the PTR name, verified or not.
    if (auto name = request.get("client_name"); name != "unknown") query_.verified_name = name;
    query_.sender = request.get("sender");
    query_.recipient = request.get("recipient");
    if (runtime.greylist_only_if != 0) {
      checks::ClientFacts facts;
      facts.client = *client;
      facts.fcrdns = !query_.verified_name.empty();
      if (auto name = request.get("reverse_client_name"); name != "unknown") {
        facts.ptr_name = name;
      }
      facts.helo = request.get("helo_name");
      query_.facts = facts;
    }
    who_ = who;
    busy_ = true;
    conn_.stop_reading();
    timer_.stop();
    if (spf) return check_spf(query_, std::string(request.get("helo_name")), who);
    after_spf(query_, who);
  }

  // SPF of the request's sender (sender.spf), then greylisting. Postfix asks once per RCPT on
  // the connection of one smtpd: the finding for the same client, HELO and sender is kept for
  // the next request.
  void check_spf(GreylistQuery query, const std::string& helo, const std::string& who) {
    const auto& config = *server_.runtime()->config;
    checks::SpfRequest request{query.client, helo, query.sender, config.server.hostname,
                               std::chrono::duration_cast<std::chrono::seconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count()};
    std::string key = query.client.to_string() + "|" + helo + "|" + query.sender;
    if (spf_last_ && key == spf_key_) return spf_found(*spf_last_, request, query, who, false);
    spf_key_ = key;
    spf_last_.reset();
    Resolver* resolver = server_.resolver();
    if (!resolver) {
      checks::SpfFinding f;
      f.result = checks::SpfResult::kTempError;
      f.problem = "no DNS resolver";
      return spf_found(f, request, query, who, true);
    }
    auto alive = alive_;
    spf_run_ = std::make_unique<SpfEvaluation>(
        loop_, *resolver, config.sender, request,
        [this, alive, request, query, who](const checks::SpfFinding& f) {
          if (!*alive || closing_) return;
          spf_found(f, request, query, who, true);
        });
    if (spf_run_->immediate()) spf_found(*spf_run_->immediate(), request, query, who, true);
  }

  void spf_found(const checks::SpfFinding& finding, const checks::SpfRequest& request,
                 GreylistQuery query, const std::string& who, bool fresh) {
    const auto& config = *server_.runtime()->config;
    bool reject = checks::spf_rejects(finding, config.sender.spf);
    if (fresh) {
      spf_last_ = finding;
      report(checks::spf_report(finding, request, who, "policy", reject), client_);
    }
    if (reject) {
      // Postfix makes it "550 5.7.23 <rcpt>: Recipient address rejected: Message rejected
      // due to: SPF fail - not authorized" (access(5) with an enhanced status code).
      answer(checks::spf_policy_action(finding), "spf_reject", "reject");
      return resume();
    }
    query.spf_result = finding.result;
    if (finding.result == checks::SpfResult::kPass) query.spf_domain = finding.domain;
    after_spf(query, who);
  }

  void after_spf(const GreylistQuery& query, const std::string& who) {
    const auto& runtime = *server_.runtime();
    const auto& greylist = runtime.config->greylist;
    if (!greylist.enabled) {
      answer("DUNNO", "skipped", "dunno");
      return resume();
    }
    if (&query != &query_) query_ = query;
    if (&who != &who_) who_ = who;
    // only_if's "spf" fact: the finding's word when sender.spf ran, else "" (unchecked).
    if (query_.facts && runtime.config->sender.spf != checks::SpfMode::kOff) {
      query_.facts->spf = std::string(checks::to_string(query_.spf_result));
    }
    // A DNSWL client skips greylisting, as it skips mxscreen's own tests: ask the lists (the
    // worker's DNS cache answers most of these at once), then greylist. Identity keys and
    // only_if read the client's PTR and FCrDNS (Postfix may not know them: with
    // smtpd_peername_lookup = no, or behind the PROXY protocol) and its DNSBL score, as the
    // session's own lookups see them, so that both sides key and gate a client alike.
    Resolver* resolver = server_.resolver();
    bool names =
        (greylist.identity_keys && query_.verified_name.empty()) || runtime.greylist_only_if != 0;
    if (resolver && (has_dnswl(*runtime.dnsbl_sites) || names)) {
      dns_ = std::make_unique<ClientLookups>(
          *resolver, server_.dnsbl_health(), runtime.dnsbl_sites, query_.client,
          ClientLookupsOptions{}, [this, names](ClientDnsEvent) { dns_answered(names); });
      return;
    }
    lookup_helo();
  }

  static bool has_dnswl(const std::vector<checks::DnsblSite>& sites) {
    for (const auto& site : sites) {
      if (site.weight < 0) return true;
    }
    return false;
  }

  // Greylist trap (greylist.trap_recipients): ban the client on every listener and host, then
  // answer 521, which makes Postfix disconnect it (access(5)).
  void trap(const protocol::IpAddress& client, const std::string& who, std::string_view rcpt) {
    auto finding = checks::trap_finding(client, who, {}, rcpt, true);
    report(finding, client_);
    busy_ = true;
    conn_.stop_reading();
    timer_.stop();
    auto alive = alive_;
    server_.bans().ban(client, finding.test, finding.ban, std::chrono::seconds(0),
                       [this, alive, reply = finding.reply](StoreStatus, std::chrono::seconds) {
                         if (!*alive || closing_) return;
                         answer(reply, "trap", "reject");
                         resume();
                       });
  }

  void dns_answered(bool names) {
    if (!dns_) return;
    const auto& snap = dns_->snapshot();
    if (names ? !snap.done : !snap.dnsbl_done()) return;
    int rank = snap.dnsbl_rank;
    if (query_.verified_name.empty() && snap.fcrdns == FcrdnsState::kConfirmed) {
      query_.verified_name = snap.ptr_name;
    }
    if (query_.facts) {
      query_.facts->fcrdns = !query_.verified_name.empty();
      if (snap.ptr == PtrState::kFound) query_.facts->ptr_name = snap.ptr_name;
      query_.facts->dnsbl_rank = rank;
    }
    // The lookups are done with (this runs inside their callback, which allows it).
    dns_.reset();
    if (has_dnswl(*server_.runtime()->dnsbl_sites) &&
        rank <= server_.runtime()->config->dnsbl.allowlist_threshold) {
      log_greylist("allowlisted", who_, " by DNSWL (rank " + std::to_string(rank) + ")");
      answer("DUNNO", "allowlisted", "dunno");
      return resume();
    }
    lookup_helo();
  }

  // greylist.only_if's "helo" fact: does the HELO name resolve (A, AAAA or MX)?
  void lookup_helo() {
    const auto& runtime = *server_.runtime();
    Resolver* resolver = server_.resolver();
    if (query_.facts && resolver &&
        (runtime.greylist_only_if & checks::bit(checks::GateFact::kHelo)) != 0) {
      DomainLookupPlan plan;
      plan.helo = checks::helo_lookup_name(query_.facts->helo);
      if (!plan.helo.empty()) {
        helo_dns_ = std::make_unique<DomainLookups>(
            *resolver, std::move(plan), [this](const checks::DomainFacts& facts) {
              query_.facts->helo_exists = facts.helo;
              helo_dns_.reset();  // done with (its callback allows it)
              greylist(query_, who_);
            });
        return;
      }
    }
    greylist(query_, who_);
  }

  void greylist(const GreylistQuery& query, const std::string& who) {
    if (server_.runtime()->config->greylist.skip_on_nolisting_pass) {
      // The rule mxscreen's own RCPT follows (greylist.skip_on_nolisting_pass): a client that
      // tried the fake MX first is not greylisted while the pair signal lives
      // (fake_mx.pair_window), so the later recipients and transactions of its session are
      // not either.
      auto alive = alive_;
      server_.store().get(server_.bans().key(keys::kFakeMxFirst, query.client),
                          [this, alive, query, who](StoreStatus st, const std::string&) {
                            if (!*alive || closing_) return;
                            if (st != StoreStatus::kOk) return greylist_triplet_now(query, who);
                            log_greylist("nolisting", who, "");
                            answer("DUNNO", "nolisting", "dunno");
                            resume();
                          });
      return;
    }
    greylist_triplet_now(query, who);
  }

  void greylist_triplet_now(const GreylistQuery& query, const std::string& who) {
    auto alive = alive_;
    greylist_triplet(server_.store(), *server_.runtime(), query,
                     [this, alive, who](GreylistAnswer a) {
                       if (!*alive || closing_) return;
                       decided(a, who);
                       resume();
                     });
  }

  // The answer is out: read and answer the next request.
  void resume() {
    busy_ = false;
    if (closing_) return;
    if (conn_.queued() <= kMaxQueuedAnswers) conn_.start_reading();
    process();
  }

  void decided(const GreylistAnswer& a, const std::string& who) {
    const auto& config = *server_.runtime()->config;
    // The text mxscreen's own RCPT uses (checks::greylist_policy_finding).
    auto finding =
        checks::greylist_policy_finding(a, who, config.greylist.reply_text,
                                        config.policy.x_greylist_header, config.server.hostname);
    report(finding, client_);
    if (a.verdict == GreylistAnswer::Verdict::kStoreUnavailable) {
      return answer(finding.reply, finding.outcome, "dunno");
    }
    std::string_view verb = finding.then == checks::Finding::Then::kDeferRcpt ? "defer_if_permit"
                            : finding.reply.starts_with("PREPEND")            ? "prepend"
                                                                              : "dunno";
    answer(finding.reply, a.outcome, verb, a.key);
  }

  void log_greylist(const std::string& outcome, const std::string& who, const std::string& extra,
                    const std::string& key = "none") {
    Log::event(LogLevel::kInfo, "GREYLIST", "GREYLIST " + outcome + " " + who + extra + " (policy)",
               {{"client", client_}, {"outcome", outcome}, {"side", "policy"}, {"key", key}});
  }

  // `key`: the identity kind of the triplet's key ("spf", "ptr", "net"), "none" when no
  // triplet was keyed.
  void answer(const std::string& action, std::string_view outcome, std::string_view verb,
              std::string_view key = "none") {
    metrics().inc(
        "mxscreen_policy_verdicts_total",
        labels("action", verb) + "," + labels("outcome", outcome) + "," + labels("key", key));
    if (!conn_.write(protocol::format_policy_action(action))) return close();
    if (conn_.queued() > kMaxQueuedAnswers) conn_.stop_reading();
  }

  // The idle time between requests, or the time left for a request that has begun (armed
  // once per request: a client that trickles bytes does not push its deadline back).
  void arm_timer() {
    if (!timer_ || closing_) return;
    bool partial = parser_.buffered() > 0;
    if (partial && partial_) return;
    auto after = partial ? config().request_timeout : config().idle_timeout;
    partial_ = partial;
    timer_.start(after);
  }

  void timed_out() {
    if (busy_) return;
    if (partial_) return refuse("request timeout", "request_timeout");
    metrics().inc("mxscreen_policy_errors_total", labels("reason", "idle_timeout"));
    close();
  }

  void close() {
    if (closing_) return;
    closing_ = true;
    timer_.close();
    conn_.close_after_flush();
    owner_.closed(this);
  }

  PolicyServer& owner_;
  Server& server_;
  Conn conn_;
  protocol::PolicyParser parser_;
  uv_loop_t* loop_;
  Timer timer_;
  std::string peer_;
  std::string client_;    // client_address of the request being answered, for the log
  bool busy_ = false;     // a request is with the store: nothing else is read or answered
  bool partial_ = false;  // the timer runs for a request that has begun
  bool closing_ = false;
  std::unique_ptr<ClientLookups> dns_;       // DNSWL, PTR, FCrDNS of the request being answered
  std::unique_ptr<DomainLookups> helo_dns_;  // its HELO name, for greylist.only_if
  GreylistQuery query_;                      // the request being answered
  std::string who_;                          // its client and envelope, for the log
  std::unique_ptr<SpfEvaluation> spf_run_;   // SPF of the request being answered
  std::string spf_key_;                      // client|helo|sender of spf_last_
  std::optional<checks::SpfFinding> spf_last_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

PolicyServer::PolicyServer(uv_loop_t* loop, Server& server) : loop_(loop), server_(server) {
  auto& m = metrics();
  m.describe("mxscreen_policy_connections_total", "counter",
             "Policy service connections, by result (accepted, refused at "
             "policy.max_connections).");
  m.describe("mxscreen_policy_connections_active", "gauge", "Policy service connections open now.");
  m.describe("mxscreen_policy_requests_total", "counter", "Policy requests answered or refused.");
  m.describe("mxscreen_policy_verdicts_total", "counter",
             "Policy answers, by action (defer_if_permit, dunno, prepend) and greylist outcome.");
  m.describe("mxscreen_policy_errors_total", "counter",
             "Policy connections closed for a reason (too_large, too_many_attributes, bad_line, "
             "request_timeout, idle_timeout).");
  uv_check_init(loop_, reaper_.get());
  reaper_.initialized();
  reaper_->data = this;
}

PolicyServer::~PolicyServer() {
  listener_.close();
  connections_.clear();
  dead_.clear();
  metrics().set("mxscreen_policy_connections_active", "", 0);
}

int PolicyServer::start(const protocol::Endpoint& at) {
  int rc = uv_tcp_init(loop_, listener_.get());
  if (rc != 0) return rc;
  listener_.initialized();
  listener_->data = this;
  auto ss = sockaddr_from_endpoint(at);
  rc = uv_tcp_bind(listener_.get(), reinterpret_cast<const sockaddr*>(&ss),
                   at.address.is_v4() ? 0 : UV_TCP_IPV6ONLY);
  if (rc == 0) rc = uv_listen(listener_.stream(), 1024, on_connection);
  if (rc != 0) listener_.close();
  update_gauge();
  return rc;
}

void PolicyServer::on_connection(uv_stream_t* listener, int status) {
  auto* self = static_cast<PolicyServer*>(listener->data);
  if (!self || status < 0) return;
  self->accept_one();
}

void PolicyServer::accept_one() {
  auto connection = std::make_unique<Connection>(loop_, *this, server_);
  if (connection->conn().init(loop_) != 0 ||
      uv_accept(listener_.stream(), connection->conn().stream()) != 0) {
    return;
  }
  const auto& config = server_.runtime()->config->policy;
  if (connections_.size() >= static_cast<std::size_t>(config.max_connections)) {
    // Closed at once: Postfix's policy client retries (smtpd_policy_service_try_limit) and
    // then applies smtpd_policy_service_default_action.
    metrics().inc("mxscreen_policy_connections_total", "result=\"refused\"");
    if (!full_logged_) {
      Log::warning("policy service: " + std::to_string(connections_.size()) +
                   " connections (policy.max_connections); refusing new ones");
      full_logged_ = true;
    }
    return;  // the Conn closes with the connection object
  }
  full_logged_ = false;
  uv_tcp_nodelay(connection->conn().tcp(), 1);
  if (!connection->start()) return;
  metrics().inc("mxscreen_policy_connections_total", "result=\"accepted\"");
  Connection* raw = connection.get();
  connections_.emplace(raw, std::move(connection));
  update_gauge();
}

void PolicyServer::closed(Connection* connection) {
  auto it = connections_.find(connection);
  if (it == connections_.end()) return;
  // Freed after the callback that closed it has unwound.
  dead_.push_back(std::move(it->second));
  connections_.erase(it);
  update_gauge();
  uv_check_start(reaper_.get(), [](uv_check_t* h) {
    if (auto* self = static_cast<PolicyServer*>(h->data)) {
      self->dead_.clear();
      uv_check_stop(h);
    }
  });
}

void PolicyServer::update_gauge() {
  metrics().set("mxscreen_policy_connections_active", "",
                static_cast<int64_t>(connections_.size()));
}

}  // namespace mxscreen::proxy
