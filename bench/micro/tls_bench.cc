// bench/micro/tls_bench.cc: MB/s through TlsSession in 16 KiB records, both directions of a
// TLS splice (server write + client decrypt; client encrypt + server feed), against a plain
// 16 KiB memcpy as the baseline a clear-text splice pays at most.
#include <benchmark/benchmark.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>

#include "proxy/tls.h"

namespace mxscreen::proxy {
namespace {

constexpr std::size_t kRecord = std::size_t{16} * 1024;

// A self-signed P-256 certificate written to a temporary directory, made with the OpenSSL API.
struct BenchCert {
  std::string dir;
  std::string cert_file;
  std::string key_file;

  BenchCert() {
    std::string templ = (std::filesystem::temp_directory_path() / "mxscreen-tlsb-XXXXXX").string();
    if (mkdtemp(templ.data()) == nullptr) std::abort();
    dir = templ;
    cert_file = dir + "/cert.pem";
    key_file = dir + "/key.pem";
    EVP_PKEY* key = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
    X509* x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, key);
    X509_NAME* name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>("mx.bench"), -1, -1, 0);
    X509_set_issuer_name(x, name);
    X509_sign(x, key, EVP_sha256());
    FILE* f = std::fopen(cert_file.c_str(), "w");
    PEM_write_X509(f, x);
    std::fclose(f);
    f = std::fopen(key_file.c_str(), "w");
    PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr);
    std::fclose(f);
    X509_free(x);
    EVP_PKEY_free(key);
  }
  ~BenchCert() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
};

// A connected pair: TlsSession (server) and a client SSL over memory BIOs.
struct Pair {
  std::shared_ptr<TlsContext> ctx;
  SSL_CTX* client_ctx = nullptr;
  SSL* client = nullptr;
  BIO* client_in = nullptr;
  BIO* client_out = nullptr;
  std::unique_ptr<TlsSession> server;

  explicit Pair(int version) {
    static BenchCert cert;
    TlsSettings s;
    s.cert_key_files = {{cert.cert_file, cert.key_file}};
    std::string error;
    ctx = TlsContext::create(s, &error);
    if (!ctx) std::abort();
    client_ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_min_proto_version(client_ctx, version);
    SSL_CTX_set_max_proto_version(client_ctx, version);
    client = SSL_new(client_ctx);
    client_in = BIO_new(BIO_s_mem());
    client_out = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(client_in, -1);
    SSL_set_bio(client, client_in, client_out);
    SSL_set_connect_state(client);
    server = std::make_unique<TlsSession>(ctx);
    std::string plain;
    for (int i = 0; i < 10 && !(server->handshake_done() && SSL_is_init_finished(client)); ++i) {
      SSL_do_handshake(client);
      std::string to_server = take(client_out), to_client;
      server->feed(to_server, &plain, &to_client);
      BIO_write(client_in, to_client.data(), static_cast<int>(to_client.size()));
    }
    if (!server->handshake_done()) std::abort();
    ERR_clear_error();
  }
  ~Pair() {
    SSL_free(client);
    SSL_CTX_free(client_ctx);
  }
  static std::string take(BIO* bio) {
    std::string out(BIO_ctrl_pending(bio), '\0');
    if (!out.empty()) BIO_read(bio, out.data(), static_cast<int>(out.size()));
    return out;
  }
};

void BM_PlainMemcpy16K(benchmark::State& state) {
  std::string src(kRecord, 'x');
  std::string dst(kRecord, '\0');
  for (auto _ : state) {
    std::memcpy(dst.data(), src.data(), kRecord);
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kRecord));
}
BENCHMARK(BM_PlainMemcpy16K);

// backend -> client: TlsSession::write, then the client decrypts.
void BM_TlsServerWriteClientRead16K(benchmark::State& state) {
  Pair pair(static_cast<int>(state.range(0)));
  std::string src(kRecord, 'x');
  std::string wire;
  std::string dst(kRecord, '\0');
  for (auto _ : state) {
    wire.clear();
    if (!pair.server->write(src, &wire)) state.SkipWithError("write failed");
    BIO_write(pair.client_in, wire.data(), static_cast<int>(wire.size()));
    std::size_t n = 0;
    if (SSL_read_ex(pair.client, dst.data(), dst.size(), &n) != 1 || n != kRecord) {
      state.SkipWithError("client read failed");
      break;
    }
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kRecord));
  state.SetLabel(pair.server->protocol() + " " + pair.server->cipher());
}
BENCHMARK(BM_TlsServerWriteClientRead16K)->Arg(TLS1_2_VERSION)->Arg(TLS1_3_VERSION);

// client -> backend: the client encrypts, TlsSession::feed decrypts.
void BM_TlsClientWriteServerFeed16K(benchmark::State& state) {
  Pair pair(static_cast<int>(state.range(0)));
  std::string src(kRecord, 'x');
  std::string wire(kRecord + 1024, '\0');
  std::string plain;
  std::string to_client;
  for (auto _ : state) {
    std::size_t n = 0;
    SSL_write_ex(pair.client, src.data(), src.size(), &n);
    int len = BIO_read(pair.client_out, wire.data(), static_cast<int>(wire.size()));
    plain.clear();
    if (pair.server->feed(std::string_view(wire.data(), static_cast<std::size_t>(len)), &plain,
                          &to_client) != TlsSession::Result::kOk ||
        plain.size() != kRecord) {
      state.SkipWithError("feed failed");
      break;
    }
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kRecord));
  state.SetLabel(pair.server->protocol() + " " + pair.server->cipher());
}
BENCHMARK(BM_TlsClientWriteServerFeed16K)->Arg(TLS1_2_VERSION)->Arg(TLS1_3_VERSION);

}  // namespace
}  // namespace mxscreen::proxy
