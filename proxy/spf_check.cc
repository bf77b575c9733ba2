// proxy/spf_check.cc: see spf_check.h.

#include "proxy/spf_check.h"

#include <atomic>

#include "proxy/log.h"
#include "proxy/metrics.h"

namespace mxscreen::proxy {
namespace {

std::atomic<int> g_in_flight{0};

void update_gauge() { metrics().set("mxscreen_spf_in_flight", "", g_in_flight.load()); }

checks::SpfFinding temperror(const checks::SpfRequest& request, std::string problem) {
  checks::SpfFinding f;
  f.result = checks::SpfResult::kTempError;
  f.identity = request.mail_from.empty() ? "helo" : "mailfrom";
  f.problem = std::move(problem);
  return f;
}

}  // namespace

SpfEvaluation::SpfEvaluation(uv_loop_t* loop, Resolver& resolver, const SenderConfig& config,
                             checks::SpfRequest request, Done done)
    : request_(std::move(request)), done_(std::move(done)) {
  // A named bound on the evaluations (and so the lookups: at most a round's questions each)
  // one process has out: a flood of distinct sender domains cannot fill the resolver.
  int now = g_in_flight.fetch_add(1) + 1;
  if (now > config.spf_max_in_flight) {
    g_in_flight.fetch_sub(1);
    metrics().inc("mxscreen_spf_limit_total");
    immediate_ = temperror(request_, "over sender.spf_max_in_flight (" +
                                         std::to_string(config.spf_max_in_flight) +
                                         " SPF evaluations in flight)");
    return;
  }
  holds_slot_ = true;
  update_gauge();
  auto timeout = config.spf_timeout;
  driver_ = std::make_unique<AsyncCheckDriver<checks::SpfFinding>>(
      loop, resolver, std::make_unique<checks::SpfCheck>(request_), timeout,
      [this, timeout] {
        metrics().inc("mxscreen_spf_timeouts_total");
        return temperror(request_, "no finding within sender.spf_timeout (" +
                                       std::to_string(timeout.count()) + "ms)");
      },
      [this](const checks::SpfFinding& finding) {
        release();
        if (starting_) {
          immediate_ = finding;
          return;
        }
        Done then = std::move(done_);
        then(finding);  // may destroy this object: nothing after it
      });
  starting_ = true;
  driver_->start();
  starting_ = false;
}

SpfEvaluation::~SpfEvaluation() { release(); }

void SpfEvaluation::release() {
  if (!holds_slot_) return;
  holds_slot_ = false;
  g_in_flight.fetch_sub(1);
  update_gauge();
}

int SpfEvaluation::in_flight() { return g_in_flight.load(); }

void describe_spf_metrics() {
  auto& m = metrics();
  m.describe("mxscreen_spf_total", "counter",
             "SPF findings (RFC 7208 check_host), by result, side (session, policy) and action "
             "(reject, accept).");
  m.describe("mxscreen_spf_in_flight", "gauge", "SPF evaluations waiting for DNS now.");
  m.describe("mxscreen_spf_limit_total", "counter",
             "SPF evaluations not started: sender.spf_max_in_flight were in flight (temperror).");
  m.describe("mxscreen_spf_timeouts_total", "counter",
             "SPF evaluations given up after sender.spf_timeout (temperror).");
}

}  // namespace mxscreen::proxy
