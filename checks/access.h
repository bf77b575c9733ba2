// checks/access.h: the static access list of the connect decision (postscreen_access_list):
// CIDR rules that permit (allowlist: straight to the backend) or reject a client. Rules come
// from access.file (postscreen's cidr format, first match wins), then access.deny, then
// access.allow. The file's text is handed in; reading it is proxy/'s job.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "checks/finding.h"
#include "protocol/address.h"

namespace mxscreen::checks {

enum class AccessDecision { kDunno, kPermit, kReject };

struct AccessRule {
  protocol::Cidr network;
  AccessDecision decision = AccessDecision::kDunno;
};

struct AccessFileError {
  int line = 0;
  int column = 0;
  std::string message;
};

// Parses "192.0.2.0/24 permit" / "2001:db8::/32 reject" lines; '#' comments and blank lines
// are skipped. Every bad line is reported; the good ones are still returned.
std::vector<AccessRule> parse_access_file(std::string_view text,
                                          std::vector<AccessFileError>* errors);

// The reply a rejected client gets at connect (postscreen_access_list's "reject"), no CRLF.
std::string access_reject_reply(const protocol::IpAddress& client);

class AccessList {
 public:
  AccessList() = default;
  AccessList(std::vector<AccessRule> file_rules, const std::vector<protocol::Cidr>& deny,
             const std::vector<protocol::Cidr>& allow);

  AccessDecision decide(const protocol::IpAddress& client) const;
  std::size_t size() const { return rules_.size(); }

 private:
  std::vector<AccessRule> rules_;
};

// The connect decision's finding on the access list (`who` is "[ip]:port"): a reject is
// DENYLISTED, access_reject_reply and close; a permit is ALLOWLISTED and goes on (the session
// hands the client straight to the backend); no rule passes silently.
Finding access_finding(AccessDecision decision, const protocol::IpAddress& client,
                       std::string_view who);

}  // namespace mxscreen::checks
