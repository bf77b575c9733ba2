// checks/greylist_allowlist.h: postgrey's whitelist_clients / whitelist_recipients files for
// greylisting (issue 5). One entry a line, '#' comments and blank lines ignored.
//
// Clients (greylist.client_allowlist_file):
//   192.0.2.0/24, 2001:db8::/32, 192.0.2.7   the client address
//   example.com                               the verified PTR name is it or ends in .example.com
//   /^mail-[a-z0-9]+\.example\.net$/          a regex (RE2 syntax, case-insensitive) against the
//                                             verified PTR name
// Recipients (greylist.recipient_allowlist_file):
//   postmaster@                               that local part at any domain
//   abuse@example.com                         that address
//   example.com                               every address of that domain and its subdomains
//   /^.*@lists\.example\.org$/                a regex against the address
// A verified name is one that forward-confirms (FCrDNS): a PTR alone could be anything.
// Regexes run on RE2 (linear time in the input): a recipient is chosen by the client, and a
// backtracking engine (std::regex) let one RCPT cost a quarter of a second of loop time. RE2 is
// a pure library (no I/O, no clock), so it may live in checks/ beside the standard library.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "checks/access.h"
#include "protocol/address.h"

namespace re2 {
class RE2;
}

namespace mxscreen::checks {

// "/text/" as written in the file, and the compiled pattern.
struct AllowlistRegex {
  std::string text;
  std::shared_ptr<const re2::RE2> pattern;
};

class ClientAllowlist {
 public:
  // Entries of a client file; bad lines are reported in `errors` (line, column, message) and
  // left out.
  static ClientAllowlist parse(std::string_view text, std::vector<AccessFileError>* errors);

  // `verified_name` is "" when the client's name did not forward-confirm. On a match, `why`
  // names the entry ("192.0.2.0/24", "example.com", "/regex/").
  bool matches(const protocol::IpAddress& client, std::string_view verified_name,
               std::string* why = nullptr) const;
  bool needs_name() const { return !suffixes_.empty() || !regexes_.empty(); }
  bool empty() const { return networks_.empty() && !needs_name(); }

 private:
  std::vector<protocol::Cidr> networks_;
  std::vector<std::string> suffixes_;  // lower case, no dots at the ends
  std::vector<AllowlistRegex> regexes_;
};

class RecipientAllowlist {
 public:
  static RecipientAllowlist parse(std::string_view text, std::vector<AccessFileError>* errors);

  bool matches(std::string_view recipient, std::string* why = nullptr) const;
  bool empty() const {
    return local_parts_.empty() && addresses_.empty() && domains_.empty() && regexes_.empty();
  }

 private:
  std::vector<std::string> local_parts_;  // "postmaster" (from "postmaster@")
  std::vector<std::string> addresses_;    // lower case
  std::vector<std::string> domains_;      // lower case
  std::vector<AllowlistRegex> regexes_;
};

}  // namespace mxscreen::checks
