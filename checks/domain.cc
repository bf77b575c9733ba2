// checks/domain.cc: see domain.h.
#include "checks/domain.h"

#include <algorithm>
#include <cctype>

#include "protocol/escape.h"

namespace mxscreen::checks {
namespace {

std::string dns_name(std::string_view name) {
  while (!name.empty() && name.back() == '.') name.remove_suffix(1);
  if (name.empty() || name.front() == '[' || name.find('.') == std::string_view::npos) return "";
  return protocol::ascii_lower(name);
}

std::string shown(std::string_view text) { return protocol::printable(text, 255); }

}  // namespace

NameFact combine_name_answers(bool any_record, bool any_tempfail) {
  if (any_record) return NameFact::kExists;
  return any_tempfail ? NameFact::kTempFail : NameFact::kNone;
}

std::string helo_lookup_name(std::string_view helo) { return dns_name(helo); }

std::string sender_lookup_domain(std::string_view address) {
  auto at = address.rfind('@');
  if (at == std::string_view::npos) return "";
  return dns_name(address.substr(at + 1));
}

std::optional<DomainReject> domain_reject_reply(const DomainFacts& facts, const DomainNames& names,
                                                const DnsblReplyMap& reply_map) {
  const std::string blocked = "554 5.7.1 Service unavailable; ";
  if (facts.reverse_listed) {
    return DomainReject{blocked + "Client host [" + shown(names.reverse_name) + "] blocked using " +
                            dnsbl_reply_name(facts.reverse_listed->zone, reply_map),
                        "reverse_rhsbl"};
  }
  if (facts.helo && *facts.helo != NameFact::kExists) {
    bool temporary = *facts.helo == NameFact::kTempFail;
    return DomainReject{std::string(temporary ? "450 4.7.1" : "550 5.7.1") + " <" +
                            shown(names.helo) + ">: Helo command rejected: Host not found",
                        "helo_unknown"};
  }
  if (facts.helo_listed) {
    return DomainReject{blocked + "Helo command [" + shown(names.helo) + "] blocked using " +
                            dnsbl_reply_name(facts.helo_listed->zone, reply_map),
                        "helo_rhsbl"};
  }
  if (facts.sender && *facts.sender != NameFact::kExists) {
    bool temporary = *facts.sender == NameFact::kTempFail;
    return DomainReject{std::string(temporary ? "450 4.1.8" : "550 5.1.8") + " <" +
                            shown(names.sender) + ">: Sender address rejected: Domain not found",
                        "sender_unknown"};
  }
  if (facts.sender_listed) {
    return DomainReject{blocked + "Sender address [" + shown(names.sender) + "] blocked using " +
                            dnsbl_reply_name(facts.sender_listed->zone, reply_map),
                        "sender_rhsbl"};
  }
  return std::nullopt;
}

std::vector<Finding> domain_findings(const DomainFacts& facts, bool reject_unknown_helo,
                                     const DomainNames& names, const DnsblReplyMap& reply_map,
                                     std::string_view who) {
  std::vector<Finding> out;
  for (const auto& [what, listing] : {std::pair{"reverse name", &facts.reverse_listed},
                                      std::pair{"HELO name", &facts.helo_listed},
                                      std::pair{"sender domain", &facts.sender_listed}}) {
    if (!*listing) continue;
    Finding line;
    line.test = "rhsbl";
    line.outcome = "listed";
    line.word = "RHSBL";
    line.detail.append("RHSBL ")
        .append(what)
        .append(" of ")
        .append(who)
        .append(" listed by ")
        .append((*listing)->zone);
    line.fields = {{"zone", (*listing)->zone}};
    out.push_back(std::move(line));
  }
  DomainFacts tested = facts;
  if (!reject_unknown_helo) tested.helo.reset();
  auto reject = domain_reject_reply(tested, names, reply_map);
  Finding f;
  f.test = reject ? reject->test : "domain";
  f.outcome = reject ? "reject" : "pass";
  f.counter = kTestResults;
  f.labels = "test=\"domain\",outcome=\"" + (reject ? reject->test : "pass") + "\"";
  if (reject) {
    f.reply = std::move(reject->reply);
    f.then = Finding::Then::kRejectRcpt;
  }
  out.push_back(std::move(f));
  return out;
}

}  // namespace mxscreen::checks
