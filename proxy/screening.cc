// proxy/screening.cc: see screening.h.
#include "proxy/screening.h"

#include "checks/domain.h"
#include "checks/rdns.h"
#include "protocol/ehlo.h"

namespace mxscreen::proxy {

checks::PassTtls pass_ttls(const CacheConfig& c) {
  using Sec = std::chrono::seconds;
  checks::PassTtls t;
  t.greet = std::chrono::duration_cast<Sec>(c.greet_ttl);
  t.dnsbl_min = std::chrono::duration_cast<Sec>(c.dnsbl_min_ttl);
  t.dnsbl_max = std::chrono::duration_cast<Sec>(c.dnsbl_max_ttl);
  t.pipelining = std::chrono::duration_cast<Sec>(c.pipelining_ttl);
  t.non_smtp = std::chrono::duration_cast<Sec>(c.non_smtp_command_ttl);
  t.bare_newline = std::chrono::duration_cast<Sec>(c.bare_newline_ttl);
  return t;
}

checks::CachedTestSet cached_tests_enabled(const Runtime& runtime) {
  checks::CachedTestSet set{};
  for (std::size_t i = 0; i < set.size(); ++i) {
    set[i] = runtime.plan.on(checks::to_string(static_cast<checks::CachedTest>(i)));
  }
  auto& dnsbl = set[static_cast<std::size_t>(checks::CachedTest::kDnsbl)];
  dnsbl = dnsbl && runtime.config->dnsbl.action != checks::Action::kOff;
  return set;
}

std::shared_ptr<const checks::DialoguePolicy> make_dialogue_policy(
    const Runtime& runtime, const std::vector<std::string>& backend_ehlo) {
  const Config& c = *runtime.config;
  auto p = std::make_shared<checks::DialoguePolicy>();
  p->hostname = c.server.hostname;
  p->helo_required = c.smtp.helo_required;
  p->disable_vrfy = c.smtp.disable_vrfy;
  p->command_count_limit = c.smtp.command_count_limit;
  p->pipelining = c.smtp.pipelining;
  p->non_smtp_command = c.smtp.non_smtp_command;
  p->bare_newline = c.smtp.bare_newline;
  p->helo = c.helo;
  p->helo_facts.hostname = c.server.hostname;
  for (const auto& listen : c.listen) {
    const auto& a = listen.address.address;
    if (checks::new_own_address(p->helo_facts, a)) p->helo_facts.own_addresses.push_back(a);
  }
  p->sender_reject_non_fqdn = c.sender.reject_non_fqdn;
  p->recipient_reject_non_fqdn = c.recipient.reject_non_fqdn;
  p->errors = {c.errors.sleep_time, c.errors.soft_limit, c.errors.hard_limit,
               c.errors.junk_command_limit};
  bool withhold = c.smtp.pipelining != checks::Action::kOff;
  p->capabilities = backend_ehlo.empty() ? protocol::default_capabilities(withhold)
                                         : protocol::mirror_capabilities(backend_ehlo, withhold);
  if (c.smtp.disable_vrfy) {
    // As Postfix with disable_vrfy_command: do not offer what is refused.
    std::erase_if(p->capabilities, [](const std::string& cap) { return cap == "VRFY"; });
  }
  p->handoff_after_helo = runtime.plan.handoff_after_helo();
  p->offer_starttls = runtime.tls != nullptr;
  return p;
}

checks::DialogueClient make_dialogue_client(const Runtime& runtime, const DialogueFacts& facts) {
  const Config& c = *runtime.config;
  checks::DialogueClient d;
  d.address = facts.client;
  d.port = facts.client_port;
  d.local = facts.local;
  d.under_stress = facts.under_stress;
  d.tempfail_rcpt = facts.fake_mx;
  if (facts.pregreet_enforced) {
    d.enforced_by = "pregreet";
  } else if (!facts.dnsbl_enforce_reply.empty()) {
    d.enforced_by = "DNSBL";
    d.enforce_reply = facts.dnsbl_enforce_reply;
  }
  checks::RdnsPolicy rdns{c.client.reject_unknown_reverse, c.client.reject_unknown};
  if (rdns.reject_unknown_reverse || rdns.reject_unknown) {
    auto ptr = checks::PtrFact::kTempFail;  // no resolver: a temporary failure, as Postfix
    auto fcrdns = checks::FcrdnsFact::kTempFail;
    if (facts.dns) {
      ptr = static_cast<checks::PtrFact>(facts.dns->ptr);
      fcrdns = static_cast<checks::FcrdnsFact>(facts.dns->fcrdns);
    }
    d.client_reject = checks::rdns_reject_reply(ptr, fcrdns, facts.client.to_string(), rdns);
  }
  return d;
}

DomainLookupPlan domain_lookup_plan(const Runtime& runtime, const std::string& helo_given,
                                    const std::string& sender, const std::string& reverse) {
  const Config& c = *runtime.config;
  const std::string helo = checks::helo_lookup_name(helo_given);
  const std::string domain = checks::sender_lookup_domain(sender);
  DomainLookupPlan plan;
  // greylist.only_if's "helo" fact asks too; only helo.reject_unknown rejects on it.
  bool gate_helo =
      c.greylist.enabled && (runtime.greylist_only_if & checks::bit(checks::GateFact::kHelo)) != 0;
  if (c.helo.reject_unknown || gate_helo) plan.helo = helo;
  if (c.sender.reject_unknown_domain) plan.sender_domain = domain;
  plan.helo_rhsbl_name = helo;
  plan.helo_rhsbl = runtime.helo_rhsbl;
  plan.sender_rhsbl_name = domain;
  plan.sender_rhsbl = runtime.sender_rhsbl;
  // Postfix's reject_rhsbl_reverse_client: the PTR name, verified or not.
  plan.reverse_rhsbl_name = reverse;
  plan.reverse_rhsbl = runtime.reverse_rhsbl;
  return plan;
}

}  // namespace mxscreen::proxy
