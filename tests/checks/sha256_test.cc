// tests/checks/sha256_test.cc: the std-only SHA-256 against FIPS 180-4 / NIST test vectors and
// OpenSSL (which the proxy links) on every length around the block and padding boundaries.
#include "checks/sha256.h"

#include <gtest/gtest.h>
#include <openssl/sha.h>

#include <string>

namespace mxscreen::checks {
namespace {

TEST(Sha256, NistVectors) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(sha256_hex(std::string(1000000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, AgreesWithOpenSslAcrossBlockBoundaries) {
  std::string text;
  for (int n = 0; n <= 200; ++n) {
    unsigned char expected[SHA256_DIGEST_LENGTH];
    SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), expected);
    auto got = sha256(text);
    EXPECT_EQ(std::string(got.begin(), got.end()),
              std::string(expected, expected + SHA256_DIGEST_LENGTH))
        << "length " << n;
    text += static_cast<char>('a' + n % 26);
  }
}

}  // namespace
}  // namespace mxscreen::checks
