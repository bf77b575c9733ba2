// tests/proxy/tls_test.cc: TlsContext loading (good pairs, and broken or mismatched files named
// in the error) and TlsSession against a real OpenSSL client over memory BIOs: handshakes in
// TLS 1.2 and 1.3, data both ways, garbage, stalls, refusals, close, and ticket resumption.
#include "proxy/tls.h"

#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

namespace mxscreen::proxy {
namespace {

namespace fs = std::filesystem;
using Result = TlsSession::Result;

// Certificates made once per test run with the openssl CLI, in a temporary directory removed
// at exit.
struct CertDir {
  fs::path dir;
  bool ok = false;

  CertDir() {
    std::string templ = (fs::temp_directory_path() / "mxscreen-tls-XXXXXX").string();
    if (mkdtemp(templ.data()) == nullptr) return;
    dir = templ;
    const std::string ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    const std::string cmd =
        "(cd '" + dir.string() + "' && " +
        "openssl req -x509 -newkey rsa:2048 -nodes -keyout rsa.key -out rsa.crt -days 2 "
        "-subj /CN=mx.test && " +
        "openssl req -x509 " + ec + " -keyout ec.key -out ec.crt -days 2 -subj /CN=mx.test && " +
        "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 -out other_rsa.key && " +
        "openssl req -x509 " + ec + " -keyout ca.key -out ca.crt -days 2 -subj /CN=test-ca && " +
        "openssl req -new " + ec + " -keyout leaf.key -out leaf.csr -subj /CN=mx.test && " +
        "openssl x509 -req -in leaf.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
        "-out leaf.crt -days 2 && " +
        "cat leaf.crt ca.crt > chain.crt && " + "printf 'not a certificate\\n' > broken.pem && " +
        // A PEM frame around garbage: the file is "a certificate" only by its armour.
        "printf -- '-----BEGIN CERTIFICATE-----\\nAAAA\\n-----END CERTIFICATE-----\\n' > "
        "garbled.crt && " +
        "printf -- '-----BEGIN PRIVATE KEY-----\\nAAAA\\n-----END PRIVATE KEY-----\\n' > "
        "garbled.key" +
        ") > /dev/null 2>&1";
    ok = std::system(cmd.c_str()) == 0;
  }
  ~CertDir() {
    std::error_code ec;
    if (!dir.empty()) fs::remove_all(dir, ec);
  }
  std::string operator()(const char* name) const { return (dir / name).string(); }
};

const CertDir& certs() {
  static CertDir dir;
  return dir;
}

TlsSettings rsa_and_ecdsa() {
  TlsSettings s;
  s.cert_key_files = {{certs()("rsa.crt"), certs()("rsa.key")},
                      {certs()("ec.crt"), certs()("ec.key")}};
  return s;
}

std::shared_ptr<TlsContext> make_context(const TlsSettings& settings) {
  std::string error;
  auto ctx = TlsContext::create(settings, &error);
  EXPECT_NE(ctx, nullptr) << error;
  return ctx;
}

struct CtxFree {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
struct SslFree {
  void operator()(SSL* s) const { SSL_free(s); }
};
using ClientCtx = std::unique_ptr<SSL_CTX, CtxFree>;

ClientCtx client_ctx(int min_version = TLS1_2_VERSION, int max_version = TLS1_3_VERSION) {
  ClientCtx ctx(SSL_CTX_new(TLS_client_method()));
  SSL_CTX_set_min_proto_version(ctx.get(), min_version);
  SSL_CTX_set_max_proto_version(ctx.get(), max_version);
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);
  SSL_CTX_set_session_cache_mode(ctx.get(),
                                 SSL_SESS_CACHE_OFF);  // sessions are handed over by hand
  return ctx;
}

// A client SSL over two memory BIOs.
class Client {
 public:
  explicit Client(SSL_CTX* ctx, SSL_SESSION* resume = nullptr) : ssl_(SSL_new(ctx)) {
    in_ = BIO_new(BIO_s_mem());
    out_ = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(in_, -1);
    SSL_set_bio(ssl_.get(), in_, out_);
    SSL_set_connect_state(ssl_.get());
    SSL_set_tlsext_host_name(ssl_.get(), "mx.test");
    if (resume != nullptr) SSL_set_session(ssl_.get(), resume);
  }
  SSL* ssl() const { return ssl_.get(); }

  // Returns 1 done, 0 wants more, -1 failed.
  int handshake() {
    int rc = SSL_do_handshake(ssl_.get());
    if (rc == 1) return 1;
    int e = SSL_get_error(ssl_.get(), rc);
    ERR_clear_error();
    return e == SSL_ERROR_WANT_READ ? 0 : -1;
  }
  std::string take() {
    std::string out(BIO_ctrl_pending(out_), '\0');
    if (!out.empty()) BIO_read(out_, out.data(), static_cast<int>(out.size()));
    return out;
  }
  void give(std::string_view bytes) {
    if (!bytes.empty()) BIO_write(in_, bytes.data(), static_cast<int>(bytes.size()));
  }
  void send(std::string_view data) {
    while (!data.empty()) {
      std::size_t n = 0;
      ASSERT_EQ(SSL_write_ex(ssl_.get(), data.data(), data.size(), &n), 1);
      data.remove_prefix(n);
    }
  }
  // Reads all it can; returns SSL_get_error of the last call (WANT_READ, ZERO_RETURN...).
  int read_all(std::string* into) {
    char buf[16384];
    for (;;) {
      std::size_t n = 0;
      if (SSL_read_ex(ssl_.get(), buf, sizeof buf, &n) == 1) {
        into->append(buf, n);
        continue;
      }
      int e = SSL_get_error(ssl_.get(), 0);
      ERR_clear_error();
      return e;
    }
  }

 private:
  std::unique_ptr<SSL, SslFree> ssl_;
  BIO* in_;
  BIO* out_;
};

struct HandshakeOutcome {
  bool ok = false;
  int handshake_done_reports = 0;
  Result last = Result::kWantMore;
};

// Moves bytes between the two until both are done, one fails, or nothing moves.
HandshakeOutcome run_handshake(TlsSession& server, Client& client) {
  HandshakeOutcome out;
  for (int round = 0; round < 20; ++round) {
    int c = client.handshake();
    std::string to_server = client.take();
    if (c < 0 && to_server.empty()) return out;
    std::string plain, to_client;
    if (!to_server.empty()) {
      out.last = server.feed(to_server, &plain, &to_client);
      if (out.last == Result::kHandshakeDone) ++out.handshake_done_reports;
      if (out.last == Result::kError) return out;
      client.give(to_client);
    }
    if (c == 1 && server.handshake_done() && to_server.empty()) {
      std::string ignored;
      client.read_all(&ignored);  // takes in TLS 1.3 session tickets
      out.ok = true;
      return out;
    }
  }
  return out;
}

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(certs().ok) << "openssl CLI could not make certificates"; }
};

using TlsContextTest = TlsTest;
using TlsSessionTest = TlsTest;

std::string create_error(const TlsSettings& settings) {
  std::string error;
  EXPECT_EQ(TlsContext::create(settings, &error), nullptr);
  return error;
}

TEST_F(TlsContextTest, LoadsRsaAndEcdsaPairs) {
  std::string error;
  auto ctx = TlsContext::create(rsa_and_ecdsa(), &error);
  ASSERT_NE(ctx, nullptr) << error;
  EXPECT_NE(ctx->raw(), nullptr);
  EXPECT_TRUE(error.empty());
}

TEST_F(TlsContextTest, MissingCertFileNamesTheFile) {
  TlsSettings s;
  s.cert_key_files = {{certs()("nope.crt"), certs()("rsa.key")}};
  std::string error = create_error(s);
  EXPECT_EQ(error, "cert_file " + certs()("nope.crt") + ": No such file or directory");
}

TEST_F(TlsContextTest, BrokenCertNamesTheFile) {
  TlsSettings s;
  s.cert_key_files = {{certs()("broken.pem"), certs()("rsa.key")}};
  EXPECT_EQ(create_error(s), "cert_file " + certs()("broken.pem") + ": no start line");
  s.cert_key_files = {{certs()("garbled.crt"), certs()("rsa.key")}};
  std::string error = create_error(s);
  EXPECT_EQ(error.rfind("cert_file " + certs()("garbled.crt") + ": ", 0), 0u) << error;
}

TEST_F(TlsContextTest, BrokenKeyNamesTheFile) {
  TlsSettings s;
  s.cert_key_files = {{certs()("rsa.crt"), certs()("broken.pem")}};
  EXPECT_EQ(create_error(s), "key_file " + certs()("broken.pem") + ": no PEM private key found");
  s.cert_key_files = {{certs()("rsa.crt"), certs()("garbled.key")}};
  EXPECT_EQ(create_error(s), "key_file " + certs()("garbled.key") + ": wrong tag");
  s.cert_key_files = {{certs()("rsa.crt"), certs()("missing.key")}};
  EXPECT_EQ(create_error(s), "key_file " + certs()("missing.key") + ": No such file or directory");
}

TEST_F(TlsContextTest, KeyNotMatchingCertNamesBothFiles) {
  TlsSettings s;
  s.cert_key_files = {{certs()("rsa.crt"), certs()("other_rsa.key")}};
  EXPECT_EQ(create_error(s), "key_file " + certs()("other_rsa.key") + " does not match cert_file " +
                                 certs()("rsa.crt") + ": key values mismatch");
  s.cert_key_files = {{certs()("rsa.crt"), certs()("ec.key")}};
  EXPECT_EQ(create_error(s), "key_file " + certs()("ec.key") + " does not match cert_file " +
                                 certs()("rsa.crt") +
                                 ": the key is not of the certificate's type (RSA)");
}

TEST_F(TlsContextTest, SecondCertificateOfOneTypeRefused) {
  TlsSettings s;
  s.cert_key_files = {{certs()("ec.crt"), certs()("ec.key")},
                      {certs()("chain.crt"), certs()("leaf.key")}};
  EXPECT_EQ(create_error(s), "cert_file " + certs()("chain.crt") +
                                 ": a second ECDSA certificate (at most one per key type)");
}

TEST_F(TlsContextTest, SettingsRefused) {
  TlsSettings s = rsa_and_ecdsa();
  s.protocols = "SSLv3";
  EXPECT_EQ(create_error(s), "protocols \"SSLv3\": expected \"TLSv1.2+\" or \"TLSv1.3+\"");
  s = rsa_and_ecdsa();
  s.ciphers = "NO-SUCH-CIPHER";
  EXPECT_EQ(create_error(s).rfind("ciphers \"NO-SUCH-CIPHER\": ", 0), 0u);
  s = rsa_and_ecdsa();
  s.ciphersuites = "TLS_NOPE";
  EXPECT_EQ(create_error(s).rfind("ciphersuites \"TLS_NOPE\": ", 0), 0u);
  s = TlsSettings{};
  EXPECT_EQ(create_error(s), "no certificate configured (cert_file and key_file)");
}

TEST_F(TlsSessionTest, HandshakeTls13) {
  auto ctx = make_context(rsa_and_ecdsa());
  ClientCtx cctx = client_ctx();
  TlsSession server(ctx);
  Client client(cctx.get());
  EXPECT_EQ(server.protocol(), "");
  HandshakeOutcome hs = run_handshake(server, client);
  ASSERT_TRUE(hs.ok) << server.error();
  EXPECT_EQ(hs.handshake_done_reports, 1);
  EXPECT_EQ(server.protocol(), "TLSv1.3");
  EXPECT_EQ(server.cipher(), SSL_get_cipher_name(client.ssl()));
  EXPECT_FALSE(server.client_cert_offered());
  EXPECT_FALSE(server.session_reused());
  // Nothing more to say once done.
  std::string plain, to_client;
  EXPECT_EQ(server.feed("", &plain, &to_client), Result::kOk);
  EXPECT_TRUE(plain.empty());
}

TEST_F(TlsSessionTest, HandshakeTls12) {
  auto ctx = make_context(rsa_and_ecdsa());
  ClientCtx cctx = client_ctx(TLS1_2_VERSION, TLS1_2_VERSION);
  TlsSession server(ctx);
  Client client(cctx.get());
  HandshakeOutcome hs = run_handshake(server, client);
  ASSERT_TRUE(hs.ok) << server.error();
  EXPECT_EQ(hs.handshake_done_reports, 1);
  EXPECT_EQ(server.protocol(), "TLSv1.2");
  EXPECT_EQ(server.cipher().find("ECDHE-"), 0u) << server.cipher();
}

TEST_F(TlsSessionTest, ServesEcdsaOrRsaByClientSignatureAlgorithms) {
  auto ctx = make_context(rsa_and_ecdsa());
  for (auto [sigalgs, want] : {std::pair{"ECDSA+SHA256", EVP_PKEY_EC},
                               std::pair{"RSA-PSS+SHA256:RSA+SHA256", EVP_PKEY_RSA}}) {
    for (int version : {TLS1_2_VERSION, TLS1_3_VERSION}) {
      ClientCtx cctx = client_ctx(version, version);
      ASSERT_EQ(SSL_CTX_set1_sigalgs_list(cctx.get(), sigalgs), 1);
      TlsSession server(ctx);
      Client client(cctx.get());
      ASSERT_TRUE(run_handshake(server, client).ok) << sigalgs << ": " << server.error();
      X509* peer = SSL_get0_peer_certificate(client.ssl());
      ASSERT_NE(peer, nullptr);
      EXPECT_EQ(EVP_PKEY_get_base_id(X509_get0_pubkey(peer)), want) << sigalgs << " " << version;
    }
  }
}

TEST_F(TlsSessionTest, ServesTheChainAndVerifies) {
  TlsSettings s;
  s.cert_key_files = {{certs()("chain.crt"), certs()("leaf.key")}};
  auto ctx = make_context(s);
  ClientCtx cctx = client_ctx();
  ASSERT_EQ(SSL_CTX_load_verify_locations(cctx.get(), certs()("ca.crt").c_str(), nullptr), 1);
  SSL_CTX_set_verify(cctx.get(), SSL_VERIFY_PEER, nullptr);
  TlsSession server(ctx);
  Client client(cctx.get());
  ASSERT_TRUE(run_handshake(server, client).ok) << server.error();
  EXPECT_EQ(SSL_get_verify_result(client.ssl()), X509_V_OK);
  EXPECT_EQ(sk_X509_num(SSL_get_peer_cert_chain(client.ssl())), 2);
}

// Sends `data` each way and checks it arrives byte for byte; returns false on failure.
void exchange(TlsSession& server, Client& client, const std::string& data) {
  // client -> server, fed in one call however large.
  client.send(data);
  std::string ct = client.take();
  std::string plain, to_client;
  ASSERT_EQ(server.feed(ct, &plain, &to_client), Result::kOk) << server.error();
  EXPECT_TRUE(plain == data) << "client->server: " << plain.size() << " of " << data.size();
  EXPECT_LT(to_client.size(), 1024u);  // no output explosion: nothing to answer here
  // server -> client.
  std::string out;
  ASSERT_TRUE(server.write(data, &out));
  client.give(out);
  std::string got;
  EXPECT_EQ(client.read_all(&got), SSL_ERROR_WANT_READ);
  EXPECT_TRUE(got == data) << "server->client: " << got.size() << " of " << data.size();
}

TEST_F(TlsSessionTest, DataBothWaysByteExact) {
  auto ctx = make_context(rsa_and_ecdsa());
  for (int version : {TLS1_2_VERSION, TLS1_3_VERSION}) {
    ClientCtx cctx = client_ctx(version, version);
    TlsSession server(ctx);
    Client client(cctx.get());
    ASSERT_TRUE(run_handshake(server, client).ok) << server.error();
    exchange(server, client, "EHLO client.example\r\n");
    std::string binary;
    for (int i = 0; i < 70000; ++i) binary.push_back(static_cast<char>(i * 7 + (i >> 8)));
    exchange(server, client, binary);
    std::string out;
    EXPECT_TRUE(server.write("", &out));
    EXPECT_TRUE(out.empty());
  }
}

TEST_F(TlsSessionTest, TenMegabytesBothWays) {
  auto ctx = make_context(rsa_and_ecdsa());
  for (int version : {TLS1_2_VERSION, TLS1_3_VERSION}) {
    ClientCtx cctx = client_ctx(version, version);
    TlsSession server(ctx);
    Client client(cctx.get());
    ASSERT_TRUE(run_handshake(server, client).ok) << server.error();
    std::string big(std::size_t{10} * 1024 * 1024, '\0');
    unsigned x = 12345;
    for (char& c : big) c = static_cast<char>((x = x * 1103515245 + 12345) >> 16);
    exchange(server, client, big);
  }
}

TEST_F(TlsSessionTest, HandshakeFedOneByteAtATime) {
  auto ctx = make_context(rsa_and_ecdsa());
  ClientCtx cctx = client_ctx();
  TlsSession server(ctx);
  Client client(cctx.get());
  ASSERT_EQ(client.handshake(), 0);
  std::string hello = client.take();
  ASSERT_GT(hello.size(), 100u);
  std::string plain, to_client;
  // A stall anywhere in the ClientHello: more wanted, nothing said, nothing buffered for us.
  for (std::size_t i = 0; i + 1 < hello.size(); ++i) {
    ASSERT_EQ(server.feed(hello.substr(i, 1), &plain, &to_client), Result::kWantMore) << i;
    ASSERT_TRUE(to_client.empty()) << i;
  }
  EXPECT_EQ(server.feed(hello.substr(hello.size() - 1), &plain, &to_client), Result::kWantMore);
  EXPECT_GT(to_client.size(), 100u);   // ServerHello ... Finished
  EXPECT_LT(to_client.size(), 8192u);  // and no more than that
  client.give(to_client);
  ASSERT_EQ(client.handshake(), 1);
  std::string finished = client.take();
  Result last = Result::kWantMore;
  int done_reports = 0;
  for (char c : finished) {
    last = server.feed(std::string_view(&c, 1), &plain, &to_client);
    if (last == Result::kHandshakeDone) ++done_reports;
  }
  EXPECT_EQ(done_reports, 1);
  EXPECT_TRUE(server.handshake_done());
  EXPECT_TRUE(plain.empty());
}

TEST_F(TlsSessionTest, StalledHandshakeStaysQuiet) {
  auto ctx = make_context(rsa_and_ecdsa());
  ClientCtx cctx = client_ctx();
  TlsSession server(ctx);
  Client client(cctx.get());
  client.handshake();
  std::string hello = client.take();
  std::string plain, to_client;
  EXPECT_EQ(server.feed(std::string_view(hello).substr(0, hello.size() / 2), &plain, &to_client),
            Result::kWantMore);
  EXPECT_EQ(server.feed("", &plain, &to_client), Result::kWantMore);
  EXPECT_TRUE(to_client.empty());
  EXPECT_FALSE(server.handshake_done());
  std::string out;
  EXPECT_FALSE(server.write("too early", &out));
  EXPECT_TRUE(out.empty());
  server.shutdown(&out);  // nothing to close yet
  EXPECT_TRUE(out.empty());
}

TEST_F(TlsSessionTest, SmtpInsteadOfClientHello) {
  auto ctx = make_context(rsa_and_ecdsa());
  TlsSession server(ctx);
  std::string plain, to_client;
  EXPECT_EQ(server.feed("EHLO foo\r\n", &plain, &to_client), Result::kError);
  EXPECT_EQ(server.error(), "wrong version number");
  EXPECT_TRUE(plain.empty());
  EXPECT_LT(to_client.size(), 64u);
  // Sticky, and quiet.
  to_client.clear();
  EXPECT_EQ(server.feed("QUIT\r\n", &plain, &to_client), Result::kError);
  EXPECT_TRUE(to_client.empty());
  EXPECT_FALSE(server.write("x", &to_client));
}

TEST_F(TlsSessionTest, HttpInsteadOfClientHello) {
  auto ctx = make_context(rsa_and_ecdsa());
  TlsSession server(ctx);
  std::string plain, to_client;
  EXPECT_EQ(server.feed("GET / HTTP/1.1\r\nHost: x\r\n\r\n", &plain, &to_client), Result::kError);
  EXPECT_EQ(server.error(), "http request");
  TlsSession other(ctx);  // one session's failure leaves no error behind for the next
  EXPECT_EQ(other.feed("\x16\x03", &plain, &to_client), Result::kWantMore);
}

TEST_F(TlsSessionTest, RandomBytesInsteadOfClientHello) {
  auto ctx = make_context(rsa_and_ecdsa());
  std::string junk(100000, '\0');
  unsigned x = 7;
  for (char& c : junk) c = static_cast<char>((x = x * 69069 + 1) >> 24);
  junk[0] = 0x16;  // looks like a handshake record at first
  junk[1] = 0x03;
  junk[2] = 0x01;
  TlsSession server(ctx);
  std::string plain, to_client;
  EXPECT_EQ(server.feed(junk, &plain, &to_client), Result::kError);
  EXPECT_FALSE(server.error().empty());
  EXPECT_LT(to_client.size(), 64u);
}

TEST_F(TlsSessionTest, Tls13OnlyRefusesTls12Client) {
  TlsSettings s = rsa_and_ecdsa();
  s.protocols = "TLSv1.3";
  auto ctx = make_context(s);
  ClientCtx cctx = client_ctx(TLS1_2_VERSION, TLS1_2_VERSION);
  TlsSession server(ctx);
  Client client(cctx.get());
  client.handshake();
  std::string plain, to_client;
  EXPECT_EQ(server.feed(client.take(), &plain, &to_client), Result::kError);
  EXPECT_EQ(server.error(), "unsupported protocol");
  ASSERT_FALSE(to_client.empty());  // a protocol_version alert
  client.give(to_client);
  EXPECT_EQ(client.handshake(), -1);
  // And a TLS 1.3 client is served.
  ClientCtx modern = client_ctx();
  TlsSession server2(ctx);
  Client client2(modern.get());
  ASSERT_TRUE(run_handshake(server2, client2).ok) << server2.error();
  EXPECT_EQ(server2.protocol(), "TLSv1.3");
}

TEST_F(TlsSessionTest, NoSharedCipher) {
  TlsSettings s = rsa_and_ecdsa();
  s.ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256";
  auto ctx = make_context(s);
  ClientCtx cctx = client_ctx(TLS1_2_VERSION, TLS1_2_VERSION);
  ASSERT_EQ(SSL_CTX_set_cipher_list(cctx.get(), "ECDHE-RSA-AES256-GCM-SHA384"), 1);
  TlsSession server(ctx);
  Client client(cctx.get());
  HandshakeOutcome hs = run_handshake(server, client);
  EXPECT_FALSE(hs.ok);
  EXPECT_EQ(hs.last, Result::kError);
  EXPECT_EQ(server.error(), "no shared cipher");
}

TEST_F(TlsSessionTest, TamperedRecordIsFatal) {
  auto ctx = make_context(rsa_and_ecdsa());
  ClientCtx cctx = client_ctx();
  TlsSession server(ctx);
  Client client(cctx.get());
  ASSERT_TRUE(run_handshake(server, client).ok);
  client.send("MAIL FROM:<a@example.org>\r\n");
  std::string ct = client.take();
  ct[ct.size() - 3] ^= 0x01;
  std::string plain, to_client;
  EXPECT_EQ(server.feed(ct, &plain, &to_client), Result::kError);
  EXPECT_EQ(server.error(), "decryption failed or bad record mac");
  EXPECT_TRUE(plain.empty());
}

TEST_F(TlsSessionTest, RenegotiationRefused) {
  auto ctx = make_context(rsa_and_ecdsa());
  ClientCtx cctx = client_ctx(TLS1_2_VERSION, TLS1_2_VERSION);
  TlsSession server(ctx);
  Client client(cctx.get());
  ASSERT_TRUE(run_handshake(server, client).ok);
  ASSERT_EQ(SSL_renegotiate(client.ssl()), 1);
  client.handshake();
  std::string plain, to_client;
  Result r = server.feed(client.take(), &plain, &to_client);
  // Refused with a no_renegotiation warning; the session itself carries on.
  EXPECT_EQ(r, Result::kOk) << server.error();
  EXPECT_FALSE(to_client.empty());
  EXPECT_EQ(SSL_get_secure_renegotiation_support(client.ssl()), 1);
}

TEST_F(TlsSessionTest, CloseNotifyBothWays) {
  auto ctx = make_context(rsa_and_ecdsa());
  ClientCtx cctx = client_ctx();
  {
    TlsSession server(ctx);
    Client client(cctx.get());
    ASSERT_TRUE(run_handshake(server, client).ok);
    client.send("QUIT\r\n");
    SSL_shutdown(client.ssl());
    std::string plain, to_client;
    EXPECT_EQ(server.feed(client.take(), &plain, &to_client), Result::kClosed);
    EXPECT_EQ(plain, "QUIT\r\n");
    EXPECT_TRUE(server.closed());
    EXPECT_EQ(server.feed("more", &plain, &to_client), Result::kClosed);
    // We may still answer (half-close) and then close ourselves.
    std::string out;
    EXPECT_TRUE(server.write("221 2.0.0 Bye\r\n", &out));
    server.shutdown(&out);
    client.give(out);
    std::string got;
    EXPECT_EQ(client.read_all(&got), SSL_ERROR_ZERO_RETURN);
    EXPECT_EQ(got, "221 2.0.0 Bye\r\n");
  }
  {
    TlsSession server(ctx);
    Client client(cctx.get());
    ASSERT_TRUE(run_handshake(server, client).ok);
    std::string out;
    server.shutdown(&out);
    EXPECT_FALSE(out.empty());
    std::string again;
    server.shutdown(&again);
    EXPECT_TRUE(again.empty());
    EXPECT_FALSE(server.write("late", &again));
    client.give(out);
    std::string got;
    EXPECT_EQ(client.read_all(&got), SSL_ERROR_ZERO_RETURN);
  }
}

// One client connection; returns the session to resume from (caller frees), and whether
// this one was a resumption.
SSL_SESSION* connect_once(const std::shared_ptr<TlsContext>& ctx, SSL_CTX* cctx,
                          SSL_SESSION* resume, bool* reused) {
  TlsSession server(ctx);
  Client client(cctx, resume);
  HandshakeOutcome hs = run_handshake(server, client);
  EXPECT_TRUE(hs.ok) << server.error();
  *reused = server.session_reused();
  EXPECT_EQ(*reused, SSL_session_reused(client.ssl()) == 1);
  SSL_SESSION* session = SSL_get1_session(client.ssl());
  SSL_shutdown(client.ssl());  // a client that quits without close_notify spoils its session
  return session;
}

TEST_F(TlsSessionTest, TicketsResumeAcrossOneRotationNotTwo) {
  TlsSettings s = rsa_and_ecdsa();
  s.ticket_key_rotation = std::chrono::seconds(60);
  using std::chrono::seconds;
  const auto t0 = std::chrono::steady_clock::time_point{} + std::chrono::hours(1);
  for (int version : {TLS1_2_VERSION, TLS1_3_VERSION}) {
    auto ctx = make_context(s);
    EXPECT_FALSE(ctx->rotate_ticket_keys(t0));  // notes the start
    ClientCtx cctx = client_ctx(version, version);
    bool reused = true;
    SSL_SESSION* first = connect_once(ctx, cctx.get(), nullptr, &reused);
    EXPECT_FALSE(reused);
    SSL_SESSION* second = connect_once(ctx, cctx.get(), first, &reused);
    EXPECT_TRUE(reused) << version;
    EXPECT_FALSE(ctx->rotate_ticket_keys(t0 + seconds(59)));
    EXPECT_TRUE(ctx->rotate_ticket_keys(t0 + seconds(60)));
    SSL_SESSION* third = connect_once(ctx, cctx.get(), first, &reused);
    EXPECT_TRUE(reused) << "previous key still opens tickets, version " << version;
    EXPECT_TRUE(ctx->rotate_ticket_keys(t0 + seconds(120)));
    SSL_SESSION* fourth = connect_once(ctx, cctx.get(), first, &reused);
    EXPECT_FALSE(reused) << "two rotations later the ticket is dead, version " << version;
    for (SSL_SESSION* x : {first, second, third, fourth}) SSL_SESSION_free(x);
  }
}

TEST_F(TlsSessionTest, ReloadAdoptsTicketKeys) {
  auto old_ctx = make_context(rsa_and_ecdsa());
  ClientCtx cctx = client_ctx();
  bool reused = true;
  SSL_SESSION* first = connect_once(old_ctx, cctx.get(), nullptr, &reused);
  auto fresh = make_context(rsa_and_ecdsa());
  SSL_SESSION* second = connect_once(fresh, cctx.get(), first, &reused);
  EXPECT_FALSE(reused);
  auto adopted = make_context(rsa_and_ecdsa());
  adopted->adopt_ticket_keys(*old_ctx);
  SSL_SESSION* third = connect_once(adopted, cctx.get(), first, &reused);
  EXPECT_TRUE(reused);
  for (SSL_SESSION* x : {first, second, third}) SSL_SESSION_free(x);
}

TEST_F(TlsSessionTest, NoTicketsWhenOff) {
  TlsSettings s = rsa_and_ecdsa();
  s.session_tickets = false;
  auto ctx = make_context(s);
  ClientCtx cctx = client_ctx(TLS1_3_VERSION, TLS1_3_VERSION);
  bool reused = true;
  SSL_SESSION* first = connect_once(ctx, cctx.get(), nullptr, &reused);
  EXPECT_EQ(SSL_SESSION_is_resumable(first), 0);
  EXPECT_FALSE(ctx->rotate_ticket_keys(std::chrono::steady_clock::time_point{}));
  SSL_SESSION_free(first);
}

}  // namespace
}  // namespace mxscreen::proxy
