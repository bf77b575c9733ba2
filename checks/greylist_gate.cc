// checks/greylist_gate.cc: see greylist_gate.h.
#include "checks/greylist_gate.h"

#include "checks/rdns.h"
#include "protocol/escape.h"

namespace mxscreen::checks {

std::optional<GateFact> parse_gate_fact(std::string_view name) {
  for (std::size_t i = 0; i < std::size(kGateFactNames); ++i) {
    if (name == kGateFactNames[i]) return static_cast<GateFact>(1u << i);
  }
  return std::nullopt;
}

namespace {

std::string_view helo_word(const ClientFacts& f, bool* suspicious) {
  *suspicious = true;
  if (f.helo.empty()) return "none";
  if (f.helo.front() == '[') return "literal";
  if (!f.helo_exists) return "unchecked";
  switch (*f.helo_exists) {
    case NameFact::kExists:
      *suspicious = false;
      return "ok";
    case NameFact::kNone:
      return "unknown";
    case NameFact::kTempFail:
      return "tempfail";
  }
  return "unchecked";
}

}  // namespace

GateDecision greylist_gate(const ClientFacts& f, GateFacts only_if) {
  GateDecision d;
  bool helo_suspicious = false;
  std::string_view helo = helo_word(f, &helo_suspicious);
  bool spf_suspicious = f.spf != "pass" && f.spf != "neutral";
  bool dynamic = !f.ptr_name.empty() && reverse_name_looks_dynamic(f.ptr_name, f.client);
  d.facts =
      "ptr=" + (f.ptr_name.empty() ? std::string("none") : protocol::printable(f.ptr_name, 255)) +
      " fcrdns=" + (f.fcrdns ? "yes" : "no") + (dynamic ? " dynamic" : "") +
      " dnsbl=" + std::to_string(f.dnsbl_rank) + " helo=" + std::string(helo) +
      " spf=" + (f.spf.empty() ? std::string("unchecked") : protocol::printable(f.spf, 20));
  if (only_if == 0) return d;
  const bool holds[] = {!f.fcrdns, dynamic, f.dnsbl_rank > 0, helo_suspicious, spf_suspicious};
  for (std::size_t i = 0; i < std::size(kGateFactNames); ++i) {
    if ((only_if & (1u << i)) == 0 || !holds[i]) continue;
    if (!d.suspicious.empty()) d.suspicious += ',';
    d.suspicious += kGateFactNames[i];
  }
  d.greylist = !d.suspicious.empty();
  return d;
}

}  // namespace mxscreen::checks
