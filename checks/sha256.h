// checks/sha256.h: SHA-256 (FIPS 180-4) in the standard library alone, for checks that must
// bound what a client can make them store (greylist keys) without leaving the checks/ room
// for OpenSSL. Not for secrets: no constant-time promises; a digest of public text.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace mxscreen::checks {

std::array<uint8_t, 32> sha256(std::string_view data);
// The digest as 64 lower-case hex digits.
std::string sha256_hex(std::string_view data);

}  // namespace mxscreen::checks
