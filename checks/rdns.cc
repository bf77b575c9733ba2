// checks/rdns.cc: see rdns.h.
#include "checks/rdns.h"

#include <algorithm>
#include <array>
#include <vector>

#include "protocol/escape.h"

namespace mxscreen::checks {

std::optional<std::string> rdns_reject_reply(PtrFact ptr, FcrdnsFact fcrdns,
                                             const std::string& client_address,
                                             const RdnsPolicy& policy) {
  if (policy.reject_unknown_reverse && ptr != PtrFact::kFound) {
    bool temporary = ptr != PtrFact::kNone;
    return std::string(temporary ? "450 4.7.25" : "550 5.7.25") +
           " Client host rejected: cannot find your reverse hostname, [" + client_address + "]";
  }
  if (policy.reject_unknown && fcrdns != FcrdnsFact::kConfirmed) {
    bool temporary = fcrdns == FcrdnsFact::kPending || fcrdns == FcrdnsFact::kTempFail;
    return std::string(temporary ? "450 4.7.25" : "550 5.7.25") +
           " Client host rejected: cannot find your hostname, [" + client_address + "]";
  }
  return std::nullopt;
}

}  // namespace mxscreen::checks

namespace mxscreen::checks {
namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

// The decimal numbers of `name` in order ("c-73-22-1-5.hsd1" -> 73 22 1 5 1); a run too long
// to be an octet is kept as 1000 so that it breaks a sequence.
std::vector<int> numbers(std::string_view name) {
  std::vector<int> out;
  for (std::size_t i = 0; i < name.size();) {
    if (!is_digit(name[i])) {
      ++i;
      continue;
    }
    int value = 0;
    std::size_t j = i;
    for (; j < name.size() && is_digit(name[j]); ++j)
      value = std::min(1000, value * 10 + (name[j] - '0'));
    out.push_back(value);
    i = j;
  }
  return out;
}

bool contains_sequence(const std::vector<int>& haystack, const std::array<int, 4>& needle) {
  for (std::size_t i = 0; i + needle.size() <= haystack.size(); ++i) {
    if (std::equal(needle.begin(), needle.end(), haystack.begin() + static_cast<long>(i))) {
      return true;
    }
  }
  return false;
}

bool spells_ipv4(std::string_view name, const protocol::IpAddress& client) {
  if (!client.is_v4()) return false;
  const auto& b = client.bytes;
  std::array<int, 4> forward{b[0], b[1], b[2], b[3]};
  std::array<int, 4> reverse{b[3], b[2], b[1], b[0]};
  auto found = numbers(name);
  if (contains_sequence(found, forward) || contains_sequence(found, reverse)) return true;
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (int i = 0; i < 4; ++i) {
    hex += kHex[b[i] >> 4];
    hex += kHex[b[i] & 0xf];
  }
  return protocol::ascii_lower(name).find(hex) != std::string::npos;
}

// Words ISPs put into the generic names of their customers' addresses (the letters of one
// label part, between digits, dots and dashes).
constexpr std::string_view kPoolWords[] = {
    "dynamic", "dyn",      "dynip",  "dsl",         "adsl",   "vdsl",  "xdsl",       "pool",
    "dhcp",    "dial",     "dialup", "dialin",      "ppp",    "pppoe", "cable",      "broadband",
    "cpe",     "customer", "cust",   "residential", "resnet", "dip",   "unassigned", "nat"};

bool has_pool_word(std::string_view name) {
  std::string lower = protocol::ascii_lower(name);
  for (std::size_t i = 0; i < lower.size();) {
    if (!is_alpha(lower[i])) {
      ++i;
      continue;
    }
    std::size_t j = i;
    while (j < lower.size() && is_alpha(lower[j])) ++j;
    std::string_view word(lower.data() + i, j - i);
    for (auto pool : kPoolWords) {
      if (word == pool) return true;
    }
    i = j;
  }
  return false;
}

}  // namespace

bool reverse_name_looks_dynamic(std::string_view name, const protocol::IpAddress& client) {
  return spells_ipv4(name, client) || has_pool_word(name);
}

}  // namespace mxscreen::checks
