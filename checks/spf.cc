// checks/spf.cc: check_host() (RFC 7208 4-6). Each round replays the evaluation from the start
// over the answers gathered so far, like a sans-I/O parser re-fed its buffer: where an answer
// is missing the evaluation stops and the round's questions are what it was missing (a
// mechanism's whole batch at once: the A/AAAA of every MX or PTR name). Replaying is cheap
// next to a DNS round trip, keeps the evaluation an ordinary recursive function and counts
// the limits the same way on every round.

#include "checks/spf.h"

#include <algorithm>
#include <array>
#include <vector>

#include "checks/dnsbl.h"
#include "checks/spf_record.h"

namespace mxscreen::checks {
namespace {

using spf::MechanismKind;
using spf::Qualifier;

SpfResult qualifier_result(Qualifier q) {
  switch (q) {
    case Qualifier::kPass:
      return SpfResult::kPass;
    case Qualifier::kFail:
      return SpfResult::kFail;
    case Qualifier::kSoftFail:
      return SpfResult::kSoftFail;
    case Qualifier::kNeutral:
      return SpfResult::kNeutral;
  }
  return SpfResult::kNeutral;
}

// An IPv4-mapped IPv6 client is an IPv4 client (RFC 7208 5, 9).
protocol::IpAddress unmap(const protocol::IpAddress& ip) {
  if (ip.is_v4()) return ip;
  static constexpr std::array<uint8_t, 12> kMapped{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (!std::equal(kMapped.begin(), kMapped.end(), ip.bytes.begin())) return ip;
  return protocol::IpAddress::v4(ip.bytes[12], ip.bytes[13], ip.bytes[14], ip.bytes[15]);
}

// The PTR question's name: the reverse lookup name is DNSBL's query name under the arpa zones.
std::string reverse_name(const protocol::IpAddress& ip) {
  return dnsbl_query_name(ip, ip.is_v4() ? "in-addr.arpa" : "ip6.arpa");
}

bool is_ok(const DnsReply& r) { return r.status == DnsReplyStatus::kOk && !r.values.empty(); }
bool is_void(const DnsReply& r) {
  return r.status == DnsReplyStatus::kNxDomain || r.status == DnsReplyStatus::kNoData ||
         (r.status == DnsReplyStatus::kOk && r.values.empty());
}

std::string name_of(std::string_view value) {
  std::string name(value);
  if (!name.empty() && name.back() == '.') name.pop_back();
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return name;
}

bool in_domain(const std::string& name, const std::string& domain) {
  return name == domain || (name.size() > domain.size() &&
                            name.compare(name.size() - domain.size(), domain.size(), domain) == 0 &&
                            name[name.size() - domain.size() - 1] == '.');
}

}  // namespace

std::string_view to_string(SpfResult result) {
  switch (result) {
    case SpfResult::kNone:
      return "none";
    case SpfResult::kNeutral:
      return "neutral";
    case SpfResult::kPass:
      return "pass";
    case SpfResult::kFail:
      return "fail";
    case SpfResult::kSoftFail:
      return "softfail";
    case SpfResult::kTempError:
      return "temperror";
    case SpfResult::kPermError:
      return "permerror";
  }
  return "none";
}

// One replay of check_host() over the answers so far. After any call that may look something
// up, `pending_` says an answer was missing: the caller returns at once, its value unused.
class SpfCheck::Evaluation {
 public:
  Evaluation(const SpfRequest& request, const std::map<DnsQuestion, DnsReply>& answers,
             std::map<std::string, spf::ParsedRecord, std::less<>>& parsed)
      : answers_(answers), parsed_(parsed) {
    facts_.ip = unmap(request.client);
    facts_.helo = request.helo;
    facts_.receiver = request.receiver;
    facts_.now = request.now;
    std::string domain;
    if (request.mail_from.empty()) {
      identity_ = "helo";
      facts_.local_part = "postmaster";
      domain = request.helo;
    } else {
      identity_ = "mailfrom";
      std::size_t at = request.mail_from.rfind('@');
      facts_.local_part = at == std::string::npos ? "" : request.mail_from.substr(0, at);
      domain = at == std::string::npos ? request.mail_from : request.mail_from.substr(at + 1);
      if (facts_.local_part.empty()) facts_.local_part = "postmaster";  // 4.3
    }
    facts_.sender_domain = domain;
    facts_.sender = facts_.local_part + "@" + domain;
    given_domain_ = domain;
  }

  std::optional<SpfFinding> run() {
    SpfFinding finding;
    finding.identity = identity_;
    auto domain = spf::initial_domain(given_domain_);
    if (!domain) {
      finding.domain = given_domain_;
      finding.problem = "no valid domain to check";  // 4.3: "none"
      return finding;
    }
    finding.domain = *domain;
    HostResult r = check_host(*domain);
    if (pending_) return std::nullopt;
    if (r.result == SpfResult::kFail && r.exp) {
      finding.explanation = explain(*r.exp, r.exp_domain);
      if (pending_) return std::nullopt;
    }
    finding.result = r.result;
    finding.mechanism = r.mechanism;
    finding.problem = r.problem;
    finding.lookups = lookups_;
    finding.void_lookups = voids_;
    return finding;
  }

  const std::vector<DnsQuestion>& missing() const { return missing_; }

 private:
  struct HostResult {
    SpfResult result = SpfResult::kNone;
    std::string mechanism;
    std::string problem;
    std::optional<std::string> exp;  // the deciding record's exp= ...
    std::string exp_domain;          // ... and its <domain>
  };
  enum class Match : uint8_t { kMatch, kNoMatch, kTempError, kPermError };

  static HostResult error(SpfResult result, std::string problem) {
    HostResult r;
    r.result = result;
    r.problem = std::move(problem);
    return r;
  }

  const DnsReply* lookup(DnsRecordType type, const std::string& name) {
    DnsQuestion q{type, name};
    auto it = answers_.find(q);
    if (it != answers_.end()) return &it->second;
    if (std::find(missing_.begin(), missing_.end(), q) == missing_.end()) missing_.push_back(q);
    pending_ = true;
    return nullptr;
  }

  DnsRecordType address_type() const {
    return facts_.ip.is_v4() ? DnsRecordType::kA : DnsRecordType::kAAAA;
  }

  bool contains(const DnsReply& reply, int prefix) const {
    for (const std::string& value : reply.values) {
      auto address = protocol::IpAddress::parse(value);
      if (!address || address->family != facts_.ip.family) continue;
      protocol::Cidr network{protocol::mask_address(*address, prefix), prefix};
      if (network.contains(facts_.ip)) return true;
    }
    return false;
  }

  // The void-lookup limit (4.6.4): false once it is exceeded.
  bool count_void(std::string& problem) {
    if (++voids_ <= kSpfVoidLookupLimit) return true;
    problem = "more than " + std::to_string(kSpfVoidLookupLimit) + " void lookups";
    return false;
  }

  // %{p} (7.3): a validated name of the client, preferably <domain> or a name under it.
  std::string validated_ptr(const std::string& domain) {
    auto cached = ptr_names_.find(domain);
    if (cached != ptr_names_.end()) return cached->second;
    const DnsReply* ptr = lookup(DnsRecordType::kPTR, reverse_name(facts_.ip));
    if (!ptr) return {};
    std::vector<std::string> valid = validated_names(*ptr);
    if (pending_) return {};
    std::string best = "unknown";
    for (int pass = 0; pass < 2 && best == "unknown"; ++pass) {
      for (const std::string& name : valid) {
        if (pass == 0 ? name == domain : in_domain(name, domain)) {
          best = name;
          break;
        }
      }
    }
    if (best == "unknown" && !valid.empty()) best = valid.front();
    ptr_names_[domain] = best;
    return best;
  }

  // The PTR names (at most kSpfNameLimit, 4.6.4) whose A/AAAA lead back to the client.
  std::vector<std::string> validated_names(const DnsReply& ptr) {
    std::vector<std::string> names;
    if (ptr.status != DnsReplyStatus::kOk) return names;
    for (const std::string& value : ptr.values) {
      if (names.size() == kSpfNameLimit) break;
      names.push_back(name_of(value));
    }
    std::vector<const DnsReply*> addresses;
    for (const std::string& name : names) {
      addresses.push_back(spf::lookup_name(name) ? lookup(address_type(), name) : nullptr);
    }
    std::vector<std::string> valid;
    if (pending_) return valid;
    for (std::size_t i = 0; i < names.size(); ++i) {
      int prefix = facts_.ip.is_v4() ? 32 : 128;
      if (addresses[i] && contains(*addresses[i], prefix)) valid.push_back(names[i]);
    }
    return valid;
  }

  // A domain-spec's target name; nullopt when no query can be made of it (or pending).
  std::optional<std::string> target(const std::string& spec, const std::string& domain) {
    if (spec.empty()) return domain;
    spf::MacroFacts facts = facts_;
    facts.domain = domain;
    if (spf::uses_ptr_macro(spec)) {
      facts.validated_ptr = validated_ptr(domain);
      if (pending_) return std::nullopt;
    }
    auto expanded = spf::expand_macros(spec, facts, false);
    if (!expanded) return std::nullopt;
    return spf::lookup_name(*expanded);
  }

  HostResult check_host(const std::string& domain) {
    const DnsReply* txt = lookup(DnsRecordType::kTXT, domain);
    if (!txt) return {};
    if (txt->status == DnsReplyStatus::kTempFail) {
      return error(SpfResult::kTempError, "DNS error looking up TXT of " + domain);
    }
    std::vector<const std::string*> records;
    if (txt->status == DnsReplyStatus::kOk) {
      for (const std::string& value : txt->values) {
        if (spf::is_spf_record(value)) records.push_back(&value);
      }
    }
    if (records.empty()) return error(SpfResult::kNone, "no SPF record at " + domain);
    if (records.size() > 1) {
      return error(SpfResult::kPermError, "more than one SPF record at " + domain);  // 4.5
    }
    auto cached = parsed_.find(*records.front());
    if (cached == parsed_.end()) {
      cached = parsed_.emplace(*records.front(), spf::parse_record(*records.front())).first;
    }
    const spf::ParsedRecord& parsed = cached->second;
    if (!parsed.record) return error(SpfResult::kPermError, domain + ": " + parsed.error);
    const spf::Record& record = *parsed.record;
    for (const spf::Mechanism& mechanism : record.mechanisms) {
      if (mechanism.does_lookup() && ++lookups_ > kSpfLookupLimit) {
        return error(SpfResult::kPermError,
                     "more than " + std::to_string(kSpfLookupLimit) + " DNS-lookup terms");
      }
      std::string problem;
      Match match = evaluate(mechanism, domain, problem);
      if (pending_) return {};
      if (match == Match::kNoMatch) continue;
      if (match == Match::kTempError) return error(SpfResult::kTempError, problem);
      if (match == Match::kPermError) return error(SpfResult::kPermError, problem);
      HostResult r;
      r.result = qualifier_result(mechanism.qualifier);
      r.mechanism = mechanism.text;
      r.exp = record.exp;
      r.exp_domain = domain;
      return r;
    }
    if (record.redirect) {
      if (++lookups_ > kSpfLookupLimit) {
        return error(SpfResult::kPermError,
                     "more than " + std::to_string(kSpfLookupLimit) + " DNS-lookup terms");
      }
      auto to = target(*record.redirect, domain);
      if (pending_) return {};
      if (!to) return error(SpfResult::kPermError, "redirect to no domain from " + domain);
      HostResult r = check_host(*to);
      if (pending_) return {};
      if (r.result == SpfResult::kNone) {  // 6.1
        return error(SpfResult::kPermError, "redirect to " + *to + " without an SPF record");
      }
      return r;
    }
    HostResult r;
    r.result = SpfResult::kNeutral;  // 4.7
    r.mechanism = "default";
    return r;
  }

  Match evaluate(const spf::Mechanism& m, const std::string& domain, std::string& problem) {
    switch (m.kind) {
      case MechanismKind::kAll:
        return Match::kMatch;
      case MechanismKind::kIp4:
      case MechanismKind::kIp6:
        return m.network.contains(facts_.ip) ? Match::kMatch : Match::kNoMatch;
      case MechanismKind::kInclude:
        return include(m, domain, problem);
      case MechanismKind::kA:
      case MechanismKind::kMx:
      case MechanismKind::kExists:
        return address(m, domain, problem);
      case MechanismKind::kPtr:
        return ptr(m, domain, problem);
    }
    return Match::kNoMatch;
  }

  Match include(const spf::Mechanism& m, const std::string& domain, std::string& problem) {
    auto to = target(m.domain_spec, domain);
    if (pending_) return Match::kNoMatch;
    if (!to) {
      problem = "include of no domain in " + domain;
      return Match::kPermError;
    }
    HostResult r = check_host(*to);
    if (pending_) return Match::kNoMatch;
    switch (r.result) {  // 5.2's table
      case SpfResult::kPass:
        return Match::kMatch;
      case SpfResult::kFail:
      case SpfResult::kSoftFail:
      case SpfResult::kNeutral:
        return Match::kNoMatch;
      case SpfResult::kTempError:
        problem = r.problem;
        return Match::kTempError;
      case SpfResult::kNone:
        problem = "include:" + *to + " has no SPF record";
        return Match::kPermError;
      case SpfResult::kPermError:
        problem = r.problem;
        return Match::kPermError;
    }
    return Match::kNoMatch;
  }

  // a, mx and exists.
  Match address(const spf::Mechanism& m, const std::string& domain, std::string& problem) {
    auto to = target(m.domain_spec, domain);
    if (pending_ || !to) return Match::kNoMatch;  // 4.3/4.8: an unusable name does not match
    DnsRecordType first = m.kind == MechanismKind::kMx       ? DnsRecordType::kMX
                          : m.kind == MechanismKind::kExists ? DnsRecordType::kA
                                                             : address_type();
    const DnsReply* reply = lookup(first, *to);
    if (!reply) return Match::kNoMatch;
    if (reply->status == DnsReplyStatus::kTempFail) {
      problem = "DNS error looking up " + *to;
      return Match::kTempError;
    }
    if (is_void(*reply)) return count_void(problem) ? Match::kNoMatch : Match::kPermError;
    if (m.kind == MechanismKind::kExists) return Match::kMatch;
    int prefix = facts_.ip.is_v4() ? m.cidr4 : m.cidr6;
    if (m.kind == MechanismKind::kA)
      return contains(*reply, prefix) ? Match::kMatch : Match::kNoMatch;
    std::vector<std::string> hosts;
    for (const std::string& value : reply->values) {
      std::string host = name_of(value);
      if (!host.empty()) hosts.push_back(host);  // "" / ".": a null MX (RFC 7505)
    }
    if (hosts.size() > kSpfNameLimit) {
      problem = "more than " + std::to_string(kSpfNameLimit) + " MX names for " + *to;
      return Match::kPermError;
    }
    std::vector<const DnsReply*> addresses;
    for (const std::string& host : hosts) {
      addresses.push_back(spf::lookup_name(host) ? lookup(address_type(), host) : nullptr);
    }
    if (pending_) return Match::kNoMatch;
    for (std::size_t i = 0; i < hosts.size(); ++i) {
      if (!addresses[i]) continue;
      if (addresses[i]->status == DnsReplyStatus::kTempFail) {
        problem = "DNS error looking up " + hosts[i];
        return Match::kTempError;
      }
      if (contains(*addresses[i], prefix)) return Match::kMatch;
    }
    return Match::kNoMatch;
  }

  Match ptr(const spf::Mechanism& m, const std::string& domain, std::string& problem) {
    auto to = target(m.domain_spec, domain);
    if (pending_ || !to) return Match::kNoMatch;
    const DnsReply* reply = lookup(DnsRecordType::kPTR, reverse_name(facts_.ip));
    if (!reply) return Match::kNoMatch;
    // 5.5: a DNS error on the PTR lookup makes the mechanism not match.
    if (reply->status == DnsReplyStatus::kTempFail) return Match::kNoMatch;
    if (is_void(*reply)) return count_void(problem) ? Match::kNoMatch : Match::kPermError;
    std::vector<std::string> valid = validated_names(*reply);
    if (pending_) return Match::kNoMatch;
    for (const std::string& name : valid) {
      if (in_domain(name, *to)) return Match::kMatch;
    }
    return Match::kNoMatch;
  }

  // 6.2: the explanation of a fail; "" whenever anything is wrong with it.
  std::string explain(const std::string& spec, const std::string& domain) {
    auto to = target(spec, domain);
    if (pending_ || !to) return {};
    const DnsReply* txt = lookup(DnsRecordType::kTXT, *to);
    if (!txt || !is_ok(*txt) || txt->values.size() != 1) return {};
    const std::string& text = txt->values.front();
    spf::MacroFacts facts = facts_;
    facts.domain = domain;
    if (spf::uses_ptr_macro(text)) {
      facts.validated_ptr = validated_ptr(domain);
      if (pending_) return {};
    }
    auto expanded = spf::expand_macros(text, facts, true);
    return expanded.value_or("");
  }

  const std::map<DnsQuestion, DnsReply>& answers_;
  std::map<std::string, spf::ParsedRecord, std::less<>>& parsed_;
  spf::MacroFacts facts_;
  std::string identity_;
  std::string given_domain_;
  std::map<std::string, std::string> ptr_names_;
  std::vector<DnsQuestion> missing_;
  bool pending_ = false;
  int lookups_ = 0;
  int voids_ = 0;
};

SpfCheck::SpfCheck(SpfRequest request) : request_(std::move(request)) {}
SpfCheck::~SpfCheck() = default;

Progress<SpfFinding> SpfCheck::next() {
  Progress<SpfFinding> progress;
  if (!finding_) {
    Evaluation evaluation(request_, answers_, parsed_);
    finding_ = evaluation.run();
    if (!finding_) {
      asked_.clear();
      for (const DnsQuestion& q : evaluation.missing()) asked_.insert(q);
      progress.questions = evaluation.missing();
      if (questions_asked() > kSpfQuestionLimit || progress.questions.empty()) {
        SpfFinding f;
        f.result = SpfResult::kPermError;
        f.problem = "more than " + std::to_string(kSpfQuestionLimit) + " DNS questions";
        finding_ = f;
        progress.questions.clear();
      }
    }
  }
  progress.finding = finding_;
  return progress;
}

void SpfCheck::answer(const DnsQuestion& question, DnsReply reply) {
  auto it = asked_.find(question);
  if (it == asked_.end()) return;
  asked_.erase(it);
  answers_[question] = std::move(reply);
}

}  // namespace mxscreen::checks
