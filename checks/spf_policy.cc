// checks/spf_policy.cc: see spf_policy.h.

#include "checks/spf_policy.h"

#include "protocol/escape.h"

namespace mxscreen::checks {
namespace {

// A domain's exp= text goes into a reply line: printable ASCII only, bounded.
std::string shown_explanation(std::string_view text) {
  std::string out;
  for (char c : text.substr(0, kSpfExplanationShown)) {
    auto u = static_cast<unsigned char>(c);
    out += (u >= 0x20 && u < 0x7f) ? c : '?';
  }
  return out;
}

std::string reason(const SpfFinding& finding) {
  std::string text = "Message rejected due to: SPF " + std::string(to_string(finding.result)) +
                     " - not authorized";
  if (!finding.explanation.empty()) text += ". " + shown_explanation(finding.explanation);
  return text;
}

}  // namespace

std::string_view to_string(SpfMode mode) {
  switch (mode) {
    case SpfMode::kOff:
      return "off";
    case SpfMode::kLog:
      return "log";
    case SpfMode::kRejectFail:
      return "reject_fail";
    case SpfMode::kRejectFailSoftfail:
      return "reject_fail_softfail";
  }
  return "off";
}

bool spf_rejects(const SpfFinding& finding, SpfMode mode) {
  if (finding.result == SpfResult::kFail) {
    return mode == SpfMode::kRejectFail || mode == SpfMode::kRejectFailSoftfail;
  }
  return finding.result == SpfResult::kSoftFail && mode == SpfMode::kRejectFailSoftfail;
}

std::string spf_reject_reply(const SpfFinding& finding, std::string_view sender) {
  return "550 5.7.23 <" + protocol::printable(sender, 255) +
         ">: Sender address rejected: " + reason(finding);
}

std::string spf_policy_action(const SpfFinding& finding) { return "550 5.7.23 " + reason(finding); }

std::string spf_log_facts(const SpfFinding& finding, const SpfRequest& request) {
  std::string out = "identity=" + finding.identity + "; client-ip=" + request.client.to_string() +
                    "; helo=" + protocol::printable(request.helo, 255) + "; envelope-from=<" +
                    protocol::printable(request.mail_from, 255) +
                    ">; receiver=" + protocol::printable(request.receiver, 255) +
                    "; domain=" + protocol::printable(finding.domain, 255);
  if (!finding.mechanism.empty()) {
    out += "; mechanism=" + protocol::printable(finding.mechanism, 255);
  }
  if (!finding.problem.empty()) {
    out += "; problem=\"" + protocol::printable(finding.problem, 255) + "\"";
  }
  return out;
}

Finding spf_report(const SpfFinding& finding, const SpfRequest& request, std::string_view who,
                   std::string_view side, bool rejected) {
  std::string result(to_string(finding.result));
  std::string action = rejected ? "reject" : "accept";
  Finding f;
  f.test = "spf";
  f.outcome = result;
  f.word = "SPF";
  f.detail.append("SPF ")
      .append(result)
      .append(" ")
      .append(who)
      .append(": ")
      .append(spf_log_facts(finding, request))
      .append("; action=")
      .append(action)
      .append(" (")
      .append(side)
      .append(")");
  f.client_field = false;
  f.fields = {{"result", result}, {"side", std::string(side)}, {"action", action}};
  f.counter = "mxscreen_spf_total";
  f.labels.append("result=\"")
      .append(result)
      .append("\",side=\"")
      .append(side)
      .append("\",action=\"")
      .append(action)
      .append("\"");
  return f;
}

Finding spf_rcpt_finding(const SpfFinding& finding, SpfMode mode, std::string_view sender) {
  Finding f;
  f.test = "spf";
  f.outcome = "pass";
  if (!spf_rejects(finding, mode)) return f;
  f.outcome = "reject";
  f.reply = spf_reject_reply(finding, sender);
  f.then = Finding::Then::kRejectRcpt;
  return f;
}

}  // namespace mxscreen::checks
