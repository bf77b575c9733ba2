// checks/access.cc: see access.h.
#include "checks/access.h"

namespace mxscreen::checks {
namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r'; }

}  // namespace

std::vector<AccessRule> parse_access_file(std::string_view text,
                                          std::vector<AccessFileError>* errors) {
  std::vector<AccessRule> rules;
  int line_no = 0;
  while (!text.empty()) {
    ++line_no;
    std::size_t eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    text = eol == std::string_view::npos ? std::string_view{} : text.substr(eol + 1);

    std::size_t pos = 0;
    while (pos < line.size() && is_space(line[pos])) ++pos;
    if (pos == line.size() || line[pos] == '#') continue;
    std::size_t end = pos;
    while (end < line.size() && !is_space(line[end])) ++end;
    std::string_view net = line.substr(pos, end - pos);
    std::size_t act = end;
    while (act < line.size() && is_space(line[act])) ++act;
    std::size_t act_end = act;
    while (act_end < line.size() && !is_space(line[act_end])) ++act_end;
    std::string_view action = line.substr(act, act_end - act);

    auto cidr = protocol::Cidr::parse(net);
    if (!cidr) {
      if (errors) errors->push_back({line_no, static_cast<int>(pos) + 1, "bad network address"});
      continue;
    }
    AccessDecision decision;
    if (action == "permit" || action == "PERMIT") {
      decision = AccessDecision::kPermit;
    } else if (action == "reject" || action == "REJECT") {
      decision = AccessDecision::kReject;
    } else if (action == "dunno" || action == "DUNNO") {
      decision = AccessDecision::kDunno;
    } else {
      if (errors) {
        errors->push_back({line_no, static_cast<int>(act) + 1,
                           "expected permit, reject or dunno after the network"});
      }
      continue;
    }
    rules.push_back({*cidr, decision});
  }
  return rules;
}

AccessList::AccessList(std::vector<AccessRule> file_rules, const std::vector<protocol::Cidr>& deny,
                       const std::vector<protocol::Cidr>& allow)
    : rules_(std::move(file_rules)) {
  for (const auto& net : deny) rules_.push_back({net, AccessDecision::kReject});
  for (const auto& net : allow) rules_.push_back({net, AccessDecision::kPermit});
}

std::string access_reject_reply(const protocol::IpAddress& client) {
  return "554 5.7.1 Service unavailable; client [" + client.to_string() +
         "] blocked using access list";
}

AccessDecision AccessList::decide(const protocol::IpAddress& client) const {
  // First match wins, as in a Postfix cidr table; "dunno" ends the search without a verdict.
  for (const auto& rule : rules_) {
    if (rule.network.contains(client)) return rule.decision;
  }
  return AccessDecision::kDunno;
}

Finding access_finding(AccessDecision decision, const protocol::IpAddress& client,
                       std::string_view who) {
  Finding f;
  switch (decision) {
    case AccessDecision::kReject:
      f.test = "denylisted";
      f.outcome = "reject";
      f.word = "DENYLISTED";
      f.detail.append("DENYLISTED ").append(who);
      return f.closes(Finding::Then::kReplyAndClose, access_reject_reply(client));
    case AccessDecision::kPermit:
      f.test = "allowlisted";
      f.outcome = "permit";
      f.word = "ALLOWLISTED";
      f.detail.append("ALLOWLISTED ").append(who);
      return f;
    case AccessDecision::kDunno:
      break;
  }
  f.test = "access";
  f.outcome = "pass";
  return f;
}

}  // namespace mxscreen::checks
