// checks/store_keys.h: every key prefix mxscreen writes in the state store, in one place. The
// store is shared by workers and, over Redis, by hosts and versions: a prefix is part of the
// stored format, so it changes only with a migration. A key is prefix + identity, where the
// identity is an address, an IPv6 network ("2001:db8::/64") or a greylist triplet.
#pragma once

#include <string>
#include <string_view>

namespace mxscreen::checks::store_keys {

inline constexpr std::string_view kBan = "ban:";           // BanRecord; TTL = the ban's length
inline constexpr std::string_view kBanCount = "banc:";     // bans so far, for escalation
inline constexpr std::string_view kStrike = "strike:";     // protocol strikes in ban.find_time
inline constexpr std::string_view kFakeMxHits = "fmx:";    // fake-MX hits in fake_mx.window
inline constexpr std::string_view kRealMxSeen = "mx:";     // came to the real MX in the window
inline constexpr std::string_view kFakeMxFirst = "fmxp:";  // fake MX first: the nolisting pair
inline constexpr std::string_view kPassCache = "pass:";    // PassRecord: tests passed, expiry
inline constexpr std::string_view kGreylist = "gl:";       // GreylistRecord, per triplet
inline constexpr std::string_view kAutoAllow = "gla:";     // ClientPassRecord: passes so far
// Never-retried triplets per sender ("glnr:y:<sender>" from FCrDNS clients, "glnr:n:...").
inline constexpr std::string_view kNeverRetried = "glnr:";

inline std::string make(std::string_view prefix, std::string_view identity) {
  std::string key;
  key.reserve(prefix.size() + identity.size());
  key += prefix;
  key += identity;
  return key;
}

// The identity in a key made with `prefix`; empty when the key does not start with it.
inline std::string_view identity_of(std::string_view prefix, std::string_view key) {
  return key.substr(0, prefix.size()) == prefix ? key.substr(prefix.size()) : std::string_view();
}

}  // namespace mxscreen::checks::store_keys
