// proxy/domain_dns.h: the DNS lookups of the names a client gives (issue 4), started at the RCPT
// that would hand off and all run in parallel: A, AAAA and MX of the HELO name and of the
// sender domain (helo.reject_unknown, sender.reject_unknown_domain), and the RHSBL lists for
// the HELO name, the sender domain and the client's reverse name. The facts go to
// checks::domain_reject_reply.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "checks/dnsbl.h"
#include "checks/domain.h"
#include "proxy/dns.h"

namespace mxscreen::proxy {

using DnsblSites = std::shared_ptr<const std::vector<checks::DnsblSite>>;

struct DomainLookupPlan {
  std::string helo;           // the HELO name to check for existence ("" = do not)
  std::string sender_domain;  // the sender domain to check for existence ("" = do not)
  // RHSBL lists and the name each is asked about ("" or no sites = skipped).
  std::string helo_rhsbl_name, sender_rhsbl_name, reverse_rhsbl_name;
  DnsblSites helo_rhsbl, sender_rhsbl, reverse_rhsbl;

  bool empty() const;
};

class DomainLookups {
 public:
  // Runs on the loop once every lookup has answered (each within dns.timeout); it may destroy
  // this object.
  using Done = std::function<void(const checks::DomainFacts&)>;

  DomainLookups(Resolver& resolver, DomainLookupPlan plan, Done done);
  DomainLookups(const DomainLookups&) = delete;
  DomainLookups& operator=(const DomainLookups&) = delete;

 private:
  struct NameState {
    bool any_record = false;
    bool any_tempfail = false;
    int pending = 0;
  };
  struct ListState {
    checks::DnsblScore score;
    int pending = 0;
  };

  void lookup_name(const std::string& name, NameState* state);
  void lookup_list(const std::string& name, const DnsblSites& sites, ListState* state);
  void answered();

  Resolver& resolver_;
  DomainLookupPlan plan_;
  Done done_;
  NameState helo_, sender_;
  ListState helo_list_, sender_list_, reverse_list_;
  int pending_ = 0;
  std::vector<DnsLookup> lookups_;  // dropped on destruction: no callback after that
};

}  // namespace mxscreen::proxy
