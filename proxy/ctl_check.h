// proxy/ctl_check.h: `mxscreen ctl check`, a monitoring plugin (Nagios, Icinga, Checkmk):
// exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN, and one status line with perfdata after `|`.
// It reads mxscreen's own /metrics and probes the backend the way a handoff would begin
// (the PROXY header where the handoff is PROXY, then Postfix's 220). evaluate_check is the
// pure half, fed the metrics text and the probe's result.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/config.h"

namespace mxscreen::proxy {

enum class CheckStatus : int { kOk = 0, kWarning = 1, kCritical = 2, kUnknown = 3 };

struct CheckThresholds {
  double warn_sessions = 0.8;  // share of server.max_sessions
  double crit_sessions = 0.95;
  double warn_queue = 0.25;  // share of backend.queue_max waiting
  double crit_queue = 0.75;
};

struct CheckInput {
  std::string_view metrics;                  // /metrics text
  std::optional<std::string> backend_error;  // empty: the backend greeted with 220
  long max_sessions = 0;
  long queue_max = 0;
};

struct CheckResult {
  CheckStatus status = CheckStatus::kUnknown;
  std::string line;  // "MXSCREEN OK - ... | perfdata"
};

CheckResult evaluate_check(const CheckInput& input, const CheckThresholds& thresholds);

// Parses `--warn-sessions 0.8 --crit-sessions 0.95 --warn-queue 0.25 --crit-queue 0.75`;
// false with `error` set on anything else.
bool parse_check_args(const std::vector<std::string>& args, CheckThresholds* thresholds,
                      std::string* error);

// The whole plugin: fetch, probe, evaluate, print. Returns the exit code.
int run_ctl_check(const Config& config, const std::vector<std::string>& args);

}  // namespace mxscreen::proxy
