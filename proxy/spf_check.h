// proxy/spf_check.h: SPF (checks/spf.h) for the session's MAIL FROM and the policy service's
// requests: an evaluation on the worker's loop through the DNS cache and resolver
// (async_check_driver.h), bounded by sender.spf_timeout as a whole and by
// sender.spf_max_in_flight evaluations at once in the process (past it: temperror at once,
// counted in mxscreen_spf_limit_total, and the mail goes on: a temperror is never refused).
// The SPF log line and mxscreen_spf_total are a finding (checks::spf_report) both callers report.
#pragma once

#include <uv.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "checks/spf.h"
#include "checks/spf_policy.h"
#include "proxy/async_check_driver.h"
#include "proxy/config.h"

namespace mxscreen::proxy {

class SpfEvaluation {
 public:
  using Done = std::function<void(const checks::SpfFinding&)>;

  // Starts the evaluation. When the finding is known at once (over spf_max_in_flight, or
  // nothing to look up) it is in immediate() and `done` never runs; otherwise `done` runs on
  // the loop later (and may destroy this object).
  SpfEvaluation(uv_loop_t* loop, Resolver& resolver, const SenderConfig& config,
                checks::SpfRequest request, Done done);
  ~SpfEvaluation();
  SpfEvaluation(const SpfEvaluation&) = delete;
  SpfEvaluation& operator=(const SpfEvaluation&) = delete;

  const std::optional<checks::SpfFinding>& immediate() const { return immediate_; }
  const checks::SpfRequest& request() const { return request_; }

  // SPF evaluations in flight in this process (all workers).
  static int in_flight();

 private:
  void release();

  checks::SpfRequest request_;
  Done done_;
  std::unique_ptr<AsyncCheckDriver<checks::SpfFinding>> driver_;
  std::optional<checks::SpfFinding> immediate_;
  bool holds_slot_ = false;
  bool starting_ = false;
};

// Describes the SPF metrics (once, from the server).
void describe_spf_metrics();

}  // namespace mxscreen::proxy
