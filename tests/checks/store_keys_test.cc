#include "checks/store_keys.h"

#include <gtest/gtest.h>

#include <set>
#include <string_view>

namespace mxscreen::checks::store_keys {
namespace {

TEST(StoreKeysTest, MakeAndIdentityOfRoundTrip) {
  std::string key = make(kBan, "2001:db8:1::/64");
  EXPECT_EQ(key, "ban:2001:db8:1::/64");
  EXPECT_EQ(identity_of(kBan, key), "2001:db8:1::/64");
  EXPECT_EQ(identity_of(kBanCount, key), "");  // "banc:" is not a prefix of "ban:..."
  EXPECT_EQ(identity_of(kBan, "ba"), "");
}

// A scan of one prefix must never return another kind's keys: no prefix starts another.
TEST(StoreKeysTest, NoPrefixIsAPrefixOfAnother) {
  const std::string_view all[] = {kBan,         kBanCount,  kStrike,   kFakeMxHits, kRealMxSeen,
                                  kFakeMxFirst, kPassCache, kGreylist, kAutoAllow,  kNeverRetried};
  std::set<std::string_view> seen;
  for (auto a : all) {
    EXPECT_TRUE(seen.insert(a).second) << a;
    EXPECT_EQ(a.back(), ':') << a;
    for (auto b : all) {
      if (a == b) continue;
      EXPECT_NE(b.substr(0, a.size()), a) << a << " starts " << b;
    }
  }
}

}  // namespace
}  // namespace mxscreen::checks::store_keys
