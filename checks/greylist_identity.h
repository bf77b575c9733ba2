// checks/greylist_identity.h: who the client is for a greylist triplet (issue 18). Big senders
// retry from another address of a large pool, so a triplet keyed by the client's /24 is new
// again at every retry. The client part of the key is, in order: the sender's domain when its
// SPF passed for this client ("spf"), the organisational domain of the client's
// forward-confirmed reverse name ("ptr", the registrable domain by the Public Suffix List,
// which the caller looks up), else the client network as before ("net"). A key, never a
// bypass: every triplet still waits out greylist.delay once.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "checks/greylist.h"
#include "protocol/address.h"

namespace mxscreen::checks {

enum class IdentityKind : uint8_t { kSpf, kPtr, kNet };

// "spf", "ptr", "net": the key= word on GREYLIST lines and the key label of the metrics.
std::string_view to_string(IdentityKind kind);

struct IdentityFacts {
  // The sender's domain when SPF (RFC 7208 check_host) gave "pass" for this client, else "".
  std::string spf_pass_domain;
  // The forward-confirmed reverse name of the client ("" when it has none) and its
  // registrable domain under the Public Suffix List ("" when it has none: a bare public
  // suffix, a single label).
  std::string verified_name;
  std::string verified_org_domain;
};

struct GreylistIdentity {
  IdentityKind kind = IdentityKind::kNet;
  std::string domain;  // kSpf, kPtr: the lower-case domain without a trailing dot
};

// The identity for `client`. With `identity_keys` off it is always the network. A
// forward-confirmed name that looks like a dynamic pool's (reverse_name_looks_dynamic) is
// not used: a whole ISP's customers are not one sender.
GreylistIdentity choose_identity(const IdentityFacts& facts, const protocol::IpAddress& client,
                                 bool identity_keys);

// The triplet's store key for that identity: the network key of greylist_key() for kNet
// (records stored before identity keys existed stay valid), else
// "gl:spf=<domain>:<sender>:<recipient>" or "gl:ptr=<domain>:<sender>:<recipient>".
std::string greylist_key(const GreylistIdentity& identity, const protocol::IpAddress& client,
                         std::string_view sender, std::string_view recipient,
                         const GreylistPolicy& policy);

// "spf:example.org", "ptr:example.net", "net:192.0.2.0/24": the key= text on log lines.
std::string describe(const GreylistIdentity& identity, const protocol::IpAddress& client,
                     const GreylistPolicy& policy);

}  // namespace mxscreen::checks
