// checks/rdns.h: reverse DNS tests of the client, Postfix's
// reject_unknown_reverse_client_hostname (no PTR at all) and reject_unknown_client_hostname
// (the PTR name's A/AAAA do not lead back to the client). A DNS failure gives 450, a proven
// absence 550, with Postfix's texts; answered at RCPT as with smtpd_delay_reject = yes.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "protocol/address.h"

namespace mxscreen::checks {

// The facts the session gathered; kPending counts as a temporary failure.
enum class PtrFact : uint8_t { kPending, kFound, kNone, kTempFail };
// kNoPtr: no PTR name to confirm (PTR NXDOMAIN/NODATA). Postfix's reject_unknown_client_hostname
// fails it just like kMismatch; reject_unknown_reverse_client_hostname only kNoPtr.
enum class FcrdnsFact : uint8_t { kPending, kConfirmed, kMismatch, kNoPtr, kTempFail };

struct RdnsPolicy {
  bool reject_unknown_reverse = false;
  bool reject_unknown = false;
};

std::optional<std::string> rdns_reject_reply(PtrFact ptr, FcrdnsFact fcrdns,
                                             const std::string& client_address,
                                             const RdnsPolicy& policy);

// A reverse name that looks like an ISP's generic name for a pool of dynamic or home
// addresses rather than a mail server's own: it spells the client's IPv4 address (its four
// octets in order or reversed, as in "1-2-3-4.pool.example.net", "4.3.2.1.dsl.example.net",
// or as eight hex digits, "pC0000201.dip.example.de"), or one of its words is a pool word
// (dynamic, dyn, dsl, adsl, pool, dhcp, dial, dialup, ppp, pppoe, cable, broadband, cpe,
// customer, cust, residential, static-ip...). The greylist's only_if gate counts it as a
// suspicious fact, and its identity key does not group a whole pool under the ISP's domain.
bool reverse_name_looks_dynamic(std::string_view name, const protocol::IpAddress& client);

}  // namespace mxscreen::checks
