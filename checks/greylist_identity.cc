// checks/greylist_identity.cc: see greylist_identity.h.
#include "checks/greylist_identity.h"

#include "checks/rdns.h"
#include "protocol/escape.h"

namespace mxscreen::checks {
namespace {

// Lower case, no trailing dot.
std::string domain_form(std::string_view domain) {
  std::string out = protocol::ascii_lower(domain);
  while (!out.empty() && out.back() == '.') out.pop_back();
  return out;
}

}  // namespace

std::string_view to_string(IdentityKind kind) {
  switch (kind) {
    case IdentityKind::kSpf:
      return "spf";
    case IdentityKind::kPtr:
      return "ptr";
    case IdentityKind::kNet:
      return "net";
  }
  return "net";
}

GreylistIdentity choose_identity(const IdentityFacts& facts, const protocol::IpAddress& client,
                                 bool identity_keys) {
  if (!identity_keys) return {};
  if (auto spf = domain_form(facts.spf_pass_domain); !spf.empty()) {
    return {IdentityKind::kSpf, std::move(spf)};
  }
  auto org = domain_form(facts.verified_org_domain);
  if (!org.empty() && !facts.verified_name.empty() &&
      !reverse_name_looks_dynamic(facts.verified_name, client)) {
    return {IdentityKind::kPtr, std::move(org)};
  }
  return {};
}

std::string greylist_key(const GreylistIdentity& identity, const protocol::IpAddress& client,
                         std::string_view sender, std::string_view recipient,
                         const GreylistPolicy& policy) {
  if (identity.kind == IdentityKind::kNet) return greylist_key(client, sender, recipient, policy);
  std::string part(to_string(identity.kind));
  part += '=';
  part += key_part(identity.domain);
  return triplet_key(part, sender, recipient, policy);
}

std::string describe(const GreylistIdentity& identity, const protocol::IpAddress& client,
                     const GreylistPolicy& policy) {
  std::string text(to_string(identity.kind));
  text += ':';
  if (identity.kind != IdentityKind::kNet) return text + protocol::printable(identity.domain, 255);
  int prefix = client.is_v4() ? policy.ipv4_prefix : policy.ipv6_prefix;
  return text + protocol::mask_address(client, prefix).to_string() + "/" + std::to_string(prefix);
}

}  // namespace mxscreen::checks
