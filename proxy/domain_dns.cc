// proxy/domain_dns.cc: see domain_dns.h.
#include "proxy/domain_dns.h"

#include <algorithm>

#include "proxy/metrics.h"

namespace mxscreen::proxy {

bool DomainLookupPlan::empty() const {
  auto no_list = [](const std::string& name, const DnsblSites& sites) {
    return name.empty() || !sites || sites->empty();
  };
  return helo.empty() && sender_domain.empty() && no_list(helo_rhsbl_name, helo_rhsbl) &&
         no_list(sender_rhsbl_name, sender_rhsbl) && no_list(reverse_rhsbl_name, reverse_rhsbl);
}

DomainLookups::DomainLookups(Resolver& resolver, DomainLookupPlan plan, Done done)
    : resolver_(resolver), plan_(std::move(plan)), done_(std::move(done)) {
  // Count everything first: an answer from the cache still arrives on a later loop turn, but
  // the count must be complete before the first one does.
  ++pending_;
  if (!plan_.helo.empty()) lookup_name(plan_.helo, &helo_);
  if (!plan_.sender_domain.empty()) lookup_name(plan_.sender_domain, &sender_);
  lookup_list(plan_.reverse_rhsbl_name, plan_.reverse_rhsbl, &reverse_list_);
  lookup_list(plan_.helo_rhsbl_name, plan_.helo_rhsbl, &helo_list_);
  lookup_list(plan_.sender_rhsbl_name, plan_.sender_rhsbl, &sender_list_);
  --pending_;
}

void DomainLookups::lookup_name(const std::string& name, NameState* state) {
  for (DnsType type : {DnsType::kA, DnsType::kAAAA, DnsType::kMX}) {
    ++pending_;
    ++state->pending;
    lookups_.push_back(resolver_.lookup(type, name, [this, state](const DnsAnswer& answer) {
      if (answer.status == DnsStatus::kOk && !answer.values.empty()) state->any_record = true;
      if (answer.status == DnsStatus::kTempFail) state->any_tempfail = true;
      --state->pending;
      answered();
    }));
  }
}

void DomainLookups::lookup_list(const std::string& name, const DnsblSites& sites,
                                ListState* state) {
  if (name.empty() || !sites) return;
  for (const auto& site : *sites) {
    std::string query = checks::rhsbl_query_name(name, site.zone);
    if (query.empty()) continue;
    ++pending_;
    ++state->pending;
    lookups_.push_back(
        resolver_.lookup(DnsType::kA, query, [this, state, &site](const DnsAnswer& answer) {
          std::vector<protocol::IpAddress> addresses;
          if (answer.status == DnsStatus::kOk) {
            for (const auto& v : answer.values) {
              if (auto a = protocol::IpAddress::parse(v)) addresses.push_back(*a);
            }
          }
          auto outcome = state->score.add(site, addresses);
          if (outcome == checks::DnsblOutcome::kListed) {
            metrics().inc("mxscreen_rhsbl_hits_total", "zone=\"" + label_value(site.zone) + "\"");
          }
          --state->pending;
          answered();
        }));
  }
}

void DomainLookups::answered() {
  if (--pending_ > 0) return;
  checks::DomainFacts facts;
  if (!plan_.helo.empty()) {
    facts.helo = checks::combine_name_answers(helo_.any_record, helo_.any_tempfail);
  }
  if (!plan_.sender_domain.empty()) {
    facts.sender = checks::combine_name_answers(sender_.any_record, sender_.any_tempfail);
  }
  auto listing = [](const ListState& list) -> std::optional<checks::RhsblListing> {
    if (list.score.rank() < 1 || list.score.hits().empty()) return std::nullopt;
    const auto& hits = list.score.hits();
    auto heaviest = std::max_element(
        hits.begin(), hits.end(), [](const auto& a, const auto& b) { return a.weight < b.weight; });
    return checks::RhsblListing{heaviest->zone};
  };
  facts.reverse_listed = listing(reverse_list_);
  facts.helo_listed = listing(helo_list_);
  facts.sender_listed = listing(sender_list_);
  auto done = std::move(done_);
  done(facts);  // may destroy this
}

}  // namespace mxscreen::proxy
