// proxy/tls.h: the TLS engine for STARTTLS (RFC 3207). TlsContext owns the SSL_CTX built from
// [tls] (certificates, protocols, ciphers, rotated ticket keys); TlsSession is one server-side
// TLS session over memory BIOs: fed ciphertext, it gives back plaintext and bytes for the client.
#pragma once

#include <openssl/types.h>

#include <array>
#include <chrono>
#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mxscreen::proxy {

struct TlsSettings {
  // Certificate (leaf first, then its chain, PEM) + private key (PEM) pairs; at most one per key
  // type (RSA, ECDSA, Ed25519...). OpenSSL picks the one the client's signature algorithms allow.
  std::vector<std::pair<std::string, std::string>> cert_key_files;
  std::string protocols = "TLSv1.2+";  // minimum version: "TLSv1.2[+]" or "TLSv1.3[+]"
  std::string ciphers;                 // TLS <= 1.2 cipher list; "" = OpenSSL's default
  std::string ciphersuites;            // TLS 1.3 suites; "" = OpenSSL's default
  bool session_tickets = true;
  std::chrono::seconds ticket_key_rotation{3600};
};

// Owns an SSL_CTX built from settings. Renegotiation, compression and 0-RTT are off, the
// server's cipher order wins, client certificates are not requested. Session tickets are sealed
// with our own keys (AES-256-CBC + HMAC-SHA256): a current key that issues tickets and the previous
// one that still opens them (and has them renewed), so a ticket lives at most two rotation periods.
// Thread: loop thread only.
class TlsContext {
 public:
  // nullptr and *error ("cert_file /etc/x.pem: no start line") when the settings do not load.
  static std::shared_ptr<TlsContext> create(const TlsSettings& settings, std::string* error);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  SSL_CTX* raw() const { return ctx_.get(); }
  const TlsSettings& settings() const { return settings_; }

  // Call from a timer (period: anything up to ticket_key_rotation). The first call only notes
  // the time; afterwards, once ticket_key_rotation has passed since the last rotation, the
  // current key becomes the previous one and a fresh key issues tickets. Returns true when it
  // rotated. With session_tickets = false this does nothing.
  bool rotate_ticket_keys(std::chrono::steady_clock::time_point now);
  // On reload (SIGHUP): take over the old context's ticket keys so that clients holding
  // tickets from before the reload still resume.
  void adopt_ticket_keys(const TlsContext& previous);

 private:
  struct TicketKey {
    std::array<unsigned char, 16> name{};
    std::array<unsigned char, 32> aes_key{};
    std::array<unsigned char, 32> hmac_key{};
  };
  struct CtxFree {
    void operator()(SSL_CTX* ctx) const;
  };

  explicit TlsContext(TlsSettings settings);
  bool load(std::string* error);
  bool load_pair(const std::string& cert_file, const std::string& key_file,
                 std::vector<int>* key_types, std::string* error);
  static bool new_ticket_key(TicketKey* key);
  static int ticket_key_cb(SSL* ssl, unsigned char* key_name, unsigned char* iv,
                           EVP_CIPHER_CTX* cipher, EVP_MAC_CTX* hmac, int encrypt);

  TlsSettings settings_;
  std::unique_ptr<SSL_CTX, CtxFree> ctx_;
  // The keys are read by handshakes on every worker thread and rotated on the first one.
  mutable std::mutex keys_mutex_;
  TicketKey current_key_;
  std::optional<TicketKey> previous_key_;
  std::optional<std::chrono::steady_clock::time_point> current_key_since_;
};

// One server-side TLS session over memory BIOs: no socket, no clock, no blocking call, so it
// runs on the libuv loop. The caller moves bytes: what the client sent goes into feed(), and
// everything that lands in *to_client goes to the client, in order. Thread: loop thread only.
class TlsSession {
 public:
  enum class Result {
    kOk,             // handshake done earlier; any complete application data is in *plaintext
    kWantMore,       // handshake in progress: send *to_client, then feed more
    kHandshakeDone,  // the handshake completed in this call (reported once)
    kClosed,         // the client sent close_notify; nothing more will be read
    kError,          // fatal; error() says why; *to_client may hold an alert worth sending
  };

  explicit TlsSession(std::shared_ptr<TlsContext> context);
  ~TlsSession();
  TlsSession(const TlsSession&) = delete;
  TlsSession& operator=(const TlsSession&) = delete;

  // Ciphertext from the client. Appends decrypted application data to *plaintext (never more
  // than ciphertext.size() bytes) and bytes for the client (handshake, tickets, alerts) to
  // *to_client. The input is handed to OpenSSL in kFeedChunk slices, so its buffers stay one
  // record large whatever the caller passes. kClosed and kError win over kHandshakeDone when
  // both happen in one call (handshake_done() still tells). After kClosed or kError, returns
  // the same again and reads nothing.
  Result feed(std::string_view ciphertext, std::string* plaintext, std::string* to_client);
  // Encrypts application data into *to_client. False before the handshake is done, after an
  // error, or after shutdown().
  bool write(std::string_view plaintext, std::string* to_client);
  // close_notify into *to_client (nothing if the handshake never finished or it was sent).
  void shutdown(std::string* to_client);

  bool handshake_done() const { return handshake_done_; }
  bool closed() const { return closed_; }
  std::string protocol() const;  // "TLSv1.3"; "" before the handshake
  std::string cipher() const;    // "TLS_AES_256_GCM_SHA384"; "" before the handshake
  bool session_reused() const;
  // We never request a client certificate, so this is true only for a client that sends one
  // unasked; reported for the session log line.
  bool client_cert_offered() const;
  // Why feed()/write() failed, in OpenSSL's words: "wrong version number", "http request",
  // "no shared cipher", "unsupported protocol"...
  const std::string& error() const { return error_; }

  static constexpr std::size_t kFeedChunk = 16 * 1024;
  static constexpr std::size_t kWriteChunk = 16 * 1024;  // one full record per SSL_write

 private:
  struct SslFree {
    void operator()(SSL* ssl) const;
  };

  Result pump(std::string* plaintext, std::string* to_client, bool* done_now);
  void drain_output(std::string* to_client);
  Result fail(int ssl_error);

  std::shared_ptr<TlsContext> context_;
  std::unique_ptr<SSL, SslFree> ssl_;
  BIO* from_client_ = nullptr;  // owned by ssl_
  BIO* to_client_ = nullptr;    // owned by ssl_
  std::string error_;
  bool handshake_done_ = false;
  bool closed_ = false;
  bool failed_ = false;
  bool shutdown_sent_ = false;
};

}  // namespace mxscreen::proxy
