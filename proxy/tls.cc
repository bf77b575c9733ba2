// proxy/tls.cc: TlsContext (certificate loading with errors that name the file, protocol and
// cipher settings, our own rotated session-ticket keys) and TlsSession (SSL over two memory
// BIOs, pumped in bounded slices).
#include "proxy/tls.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <utility>

namespace mxscreen::proxy {
namespace {

// Server-side session-ID cache for TLS 1.2 clients without ticket support (OpenSSL's default
// size, made explicit: the oldest entries are evicted when it is full).
constexpr long kSessionCacheEntries = 20480;
constexpr unsigned char kSessionIdContext[] = "mxscreen";

int context_ex_index() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

// The earliest error on this thread's OpenSSL queue (the root cause: "no start line" rather
// than the "PEM lib" stacked on it), in OpenSSL's words; the queue is emptied either way so
// nothing leaks into the next session's diagnosis.
std::string take_openssl_error(std::string_view fallback) {
  unsigned long chosen = 0;
  bool decoder_gave_up = false;
  for (unsigned long e = ERR_get_error(); e != 0; e = ERR_get_error()) {
    // OpenSSL 3's key decoders say "unsupported" first whatever the file holds; the real
    // complaint, if any, follows (the SSL library's own "PEM lib" is only a wrapper).
    if (ERR_GET_LIB(e) == ERR_LIB_OSSL_DECODER && ERR_GET_REASON(e) == ERR_R_UNSUPPORTED) {
      decoder_gave_up = true;
    } else if (chosen == 0 && !(decoder_gave_up && ERR_GET_LIB(e) == ERR_LIB_SSL)) {
      chosen = e;
    }
  }
  if (chosen == 0) return decoder_gave_up ? "no PEM private key found" : std::string(fallback);
  if (ERR_SYSTEM_ERROR(chosen)) return std::strerror(ERR_GET_REASON(chosen));
  const char* reason = ERR_reason_error_string(chosen);
  if (reason != nullptr) return reason;
  char buf[256];
  ERR_error_string_n(chosen, buf, sizeof buf);
  return buf;
}

std::optional<int> parse_min_version(std::string_view protocols) {
  if (!protocols.empty() && protocols.back() == '+') protocols.remove_suffix(1);
  if (protocols == "TLSv1.2") return TLS1_2_VERSION;
  if (protocols == "TLSv1.3") return TLS1_3_VERSION;
  return std::nullopt;
}

const char* key_type_name(int type) {
  switch (type) {
    case EVP_PKEY_RSA:
      return "RSA";
    case EVP_PKEY_EC:
      return "ECDSA";
    case EVP_PKEY_ED25519:
      return "Ed25519";
    default:
      return "other";
  }
}

}  // namespace

void TlsContext::CtxFree::operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }
void TlsSession::SslFree::operator()(SSL* ssl) const { SSL_free(ssl); }

TlsContext::TlsContext(TlsSettings settings) : settings_(std::move(settings)) {}

TlsContext::~TlsContext() {
  OPENSSL_cleanse(&current_key_, sizeof current_key_);
  if (previous_key_) OPENSSL_cleanse(&*previous_key_, sizeof *previous_key_);
}

std::shared_ptr<TlsContext> TlsContext::create(const TlsSettings& settings, std::string* error) {
  std::shared_ptr<TlsContext> context(new TlsContext(settings));
  ERR_clear_error();
  if (!context->load(error)) return nullptr;
  return context;
}

bool TlsContext::load(std::string* error) {
  std::optional<int> min_version = parse_min_version(settings_.protocols);
  if (!min_version) {
    *error = "protocols \"" + settings_.protocols + "\": expected \"TLSv1.2+\" or \"TLSv1.3+\"";
    return false;
  }
  if (settings_.cert_key_files.empty()) {
    *error = "no certificate configured (cert_file and key_file)";
    return false;
  }
  ctx_.reset(SSL_CTX_new(TLS_server_method()));
  if (!ctx_) {
    *error = "SSL_CTX_new: " + take_openssl_error("out of memory");
    return false;
  }
  SSL_CTX* ctx = ctx_.get();
  SSL_CTX_set_min_proto_version(ctx, *min_version);
  SSL_CTX_set_options(
      ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  // Idle sessions (most of a screening dialogue) then hold no 2 x 17 KiB record buffers.
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  SSL_CTX_set_max_early_data(ctx, 0);
  SSL_CTX_set_dh_auto(ctx, 1);
  if (!settings_.ciphers.empty() && SSL_CTX_set_cipher_list(ctx, settings_.ciphers.c_str()) != 1) {
    *error = "ciphers \"" + settings_.ciphers + "\": " + take_openssl_error("no cipher matched");
    return false;
  }
  if (!settings_.ciphersuites.empty() &&
      SSL_CTX_set_ciphersuites(ctx, settings_.ciphersuites.c_str()) != 1) {
    *error = "ciphersuites \"" + settings_.ciphersuites +
             "\": " + take_openssl_error("no ciphersuite matched");
    return false;
  }
  std::vector<int> key_types;
  for (const auto& [cert_file, key_file] : settings_.cert_key_files) {
    if (!load_pair(cert_file, key_file, &key_types, error)) return false;
  }

  SSL_CTX_set_session_id_context(ctx, kSessionIdContext, sizeof kSessionIdContext - 1);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
  SSL_CTX_sess_set_cache_size(ctx, kSessionCacheEntries);
  if (!settings_.session_tickets) {
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_num_tickets(ctx, 0);  // TLS 1.3 would otherwise issue stateful tickets
    return true;
  }
  // A ticket must not outlive the key that opens it: issued under the current key, it is
  // accepted while that key is current or previous, i.e. for at least one rotation period.
  SSL_CTX_set_timeout(ctx, static_cast<long>(std::max<long long>(
                               1, static_cast<long long>(settings_.ticket_key_rotation.count()))));
  if (!new_ticket_key(&current_key_)) {
    *error = "session ticket key: " + take_openssl_error("no randomness");
    return false;
  }
  SSL_CTX_set_ex_data(ctx, context_ex_index(), this);
  SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, &TlsContext::ticket_key_cb);
  return true;
}

bool TlsContext::load_pair(const std::string& cert_file, const std::string& key_file,
                           std::vector<int>* key_types, std::string* error) {
  SSL_CTX* ctx = ctx_.get();
  if (SSL_CTX_use_certificate_chain_file(ctx, cert_file.c_str()) != 1) {
    *error = "cert_file " + cert_file + ": " + take_openssl_error("cannot load certificate");
    return false;
  }
  // OpenSSL keeps one certificate per key type; a second one of a type would silently replace
  // the first.
  int type = EVP_PKEY_get_base_id(X509_get0_pubkey(SSL_CTX_get0_certificate(ctx)));
  if (std::find(key_types->begin(), key_types->end(), type) != key_types->end()) {
    *error = "cert_file " + cert_file + ": a second " + key_type_name(type) +
             " certificate (at most one per key type)";
    return false;
  }
  key_types->push_back(type);
  if (SSL_CTX_use_PrivateKey_file(ctx, key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    unsigned long reason = ERR_GET_REASON(ERR_peek_error());
    std::string why = take_openssl_error("cannot load private key");
    if (reason == X509_R_KEY_VALUES_MISMATCH || reason == X509_R_KEY_TYPE_MISMATCH) {
      *error = "key_file " + key_file + " does not match cert_file " + cert_file + ": " + why;
    } else {
      *error = "key_file " + key_file + ": " + why;
    }
    return false;
  }
  // A key of another type than the certificate lands in an empty slot without complaint.
  if (SSL_CTX_check_private_key(ctx) != 1) {
    bool other_type = ERR_GET_REASON(ERR_peek_error()) == SSL_R_NO_CERTIFICATE_ASSIGNED;
    std::string why = take_openssl_error("key values mismatch");
    if (other_type)
      why = std::string("the key is not of the certificate's type (") + key_type_name(type) + ")";
    *error = "key_file " + key_file + " does not match cert_file " + cert_file + ": " + why;
    return false;
  }
  return true;
}

bool TlsContext::new_ticket_key(TicketKey* key) {
  return RAND_bytes(key->name.data(), static_cast<int>(key->name.size())) == 1 &&
         RAND_priv_bytes(key->aes_key.data(), static_cast<int>(key->aes_key.size())) == 1 &&
         RAND_priv_bytes(key->hmac_key.data(), static_cast<int>(key->hmac_key.size())) == 1;
}

bool TlsContext::rotate_ticket_keys(std::chrono::steady_clock::time_point now) {
  if (!settings_.session_tickets) return false;
  if (!current_key_since_) {
    current_key_since_ = now;
    return false;
  }
  if (now - *current_key_since_ < settings_.ticket_key_rotation) return false;
  TicketKey fresh;
  if (!new_ticket_key(&fresh)) {
    ERR_clear_error();
    return false;  // keep the current key; the next tick tries again
  }
  std::lock_guard lock(keys_mutex_);
  previous_key_ = current_key_;
  current_key_ = fresh;
  OPENSSL_cleanse(&fresh, sizeof fresh);
  current_key_since_ = now;
  return true;
}

void TlsContext::adopt_ticket_keys(const TlsContext& previous) {
  if (!settings_.session_tickets || !previous.settings_.session_tickets) return;
  std::scoped_lock lock(keys_mutex_, previous.keys_mutex_);
  current_key_ = previous.current_key_;
  previous_key_ = previous.previous_key_;
  current_key_since_ = previous.current_key_since_;
}

// RFC 5077 section 4 layout as OpenSSL drives it. Returns 1 (key set), 2 (key set, ticket
// should be renewed), 0 (unknown key: full handshake) or -1 (error). Called from inside
// OpenSSL: no exceptions, no allocation.
int TlsContext::ticket_key_cb(SSL* ssl, unsigned char* key_name, unsigned char* iv,
                              EVP_CIPHER_CTX* cipher, EVP_MAC_CTX* hmac, int encrypt) {
  auto* self =
      static_cast<TlsContext*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), context_ex_index()));
  if (self == nullptr) return -1;
  // A copy taken under the lock: a rotation on another worker may replace the keys meanwhile.
  TicketKey key;
  int found = 1;
  {
    std::lock_guard lock(self->keys_mutex_);
    if (encrypt != 0) {
      key = self->current_key_;
    } else if (std::memcmp(key_name, self->current_key_.name.data(), 16) == 0) {
      key = self->current_key_;
    } else if (self->previous_key_ &&
               std::memcmp(key_name, self->previous_key_->name.data(), 16) == 0) {
      key = *self->previous_key_;
      found = 2;
    } else {
      return 0;
    }
  }
  if (encrypt != 0) {
    std::memcpy(key_name, key.name.data(), key.name.size());
    if (RAND_bytes(iv, EVP_CIPHER_get_iv_length(EVP_aes_256_cbc())) != 1) {
      OPENSSL_cleanse(&key, sizeof key);
      return -1;
    }
  }
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_octet_string(
          OSSL_MAC_PARAM_KEY, const_cast<unsigned char*>(key.hmac_key.data()), key.hmac_key.size()),
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
      OSSL_PARAM_construct_end(),
  };
  int ok = EVP_MAC_CTX_set_params(hmac, params);
  if (ok == 1) {
    ok = encrypt != 0
             ? EVP_EncryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, key.aes_key.data(), iv)
             : EVP_DecryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, key.aes_key.data(), iv);
  }
  OPENSSL_cleanse(&key, sizeof key);
  return ok == 1 ? found : -1;
}

TlsSession::TlsSession(std::shared_ptr<TlsContext> context) : context_(std::move(context)) {
  ERR_clear_error();
  ssl_.reset(SSL_new(context_->raw()));
  from_client_ = BIO_new(BIO_s_mem());
  to_client_ = BIO_new(BIO_s_mem());
  if (!ssl_ || from_client_ == nullptr || to_client_ == nullptr) {
    BIO_free(from_client_);
    BIO_free(to_client_);
    from_client_ = to_client_ = nullptr;
    error_ = "cannot create TLS session: " + take_openssl_error("out of memory");
    failed_ = true;
    return;
  }
  // An empty input BIO means "no more yet", not end of stream: the caller sees TCP EOF itself.
  BIO_set_mem_eof_return(from_client_, -1);
  SSL_set_bio(ssl_.get(), from_client_, to_client_);
  SSL_set_accept_state(ssl_.get());
}

TlsSession::~TlsSession() = default;

TlsSession::Result TlsSession::feed(std::string_view ciphertext, std::string* plaintext,
                                    std::string* to_client) {
  if (failed_) return Result::kError;
  if (closed_) return Result::kClosed;
  bool done_now = false;
  Result result = Result::kOk;
  do {
    std::size_t n = std::min(kFeedChunk, ciphertext.size());
    if (n > 0 &&
        BIO_write(from_client_, ciphertext.data(), static_cast<int>(n)) != static_cast<int>(n)) {
      error_ = "cannot buffer input: " + take_openssl_error("out of memory");
      failed_ = true;
      return Result::kError;
    }
    ciphertext.remove_prefix(n);
    result = pump(plaintext, to_client, &done_now);
    if (result == Result::kError || result == Result::kClosed) return result;
  } while (!ciphertext.empty());
  return done_now ? Result::kHandshakeDone : result;
}

// Runs OpenSSL until it has consumed everything in from_client_ (it then wants to read).
TlsSession::Result TlsSession::pump(std::string* plaintext, std::string* to_client,
                                    bool* done_now) {
  SSL* ssl = ssl_.get();
  ERR_clear_error();
  if (!handshake_done_) {
    int rc = SSL_do_handshake(ssl);
    drain_output(to_client);
    if (rc != 1) {
      int e = SSL_get_error(ssl, rc);
      if (e == SSL_ERROR_WANT_READ) return Result::kWantMore;
      return fail(e);
    }
    handshake_done_ = true;
    *done_now = true;
  }
  char buf[16 * 1024];  // one TLS record's worth of plaintext
  for (;;) {
    std::size_t got = 0;
    int rc = SSL_read_ex(ssl, buf, sizeof buf, &got);
    drain_output(to_client);  // TLS 1.3 KeyUpdate answers, alerts
    if (rc == 1) {
      plaintext->append(buf, got);
      continue;
    }
    int e = SSL_get_error(ssl, rc);
    if (e == SSL_ERROR_WANT_READ) return Result::kOk;
    if (e == SSL_ERROR_ZERO_RETURN) {
      closed_ = true;
      return Result::kClosed;
    }
    return fail(e);
  }
}

void TlsSession::drain_output(std::string* to_client) {
  std::size_t pending = BIO_ctrl_pending(to_client_);
  if (pending == 0) return;
  std::size_t old = to_client->size();
  to_client->resize(old + pending);
  int n = BIO_read(to_client_, to_client->data() + old, static_cast<int>(pending));
  to_client->resize(old + static_cast<std::size_t>(std::max(n, 0)));
}

TlsSession::Result TlsSession::fail(int ssl_error) {
  failed_ = true;
  switch (ssl_error) {
    case SSL_ERROR_SSL:
      error_ = take_openssl_error("protocol error");
      break;
    case SSL_ERROR_SYSCALL:
      error_ = take_openssl_error("unexpected end of stream");
      break;
    case SSL_ERROR_WANT_WRITE:  // memory BIOs never fill; kept for a clear message
      error_ = "output blocked";
      break;
    default:
      error_ = "unexpected SSL_get_error " + std::to_string(ssl_error);
      ERR_clear_error();
      break;
  }
  return Result::kError;
}

bool TlsSession::write(std::string_view plaintext, std::string* to_client) {
  if (failed_ || !handshake_done_ || shutdown_sent_) return false;
  ERR_clear_error();
  while (!plaintext.empty()) {
    std::size_t n = std::min(kWriteChunk, plaintext.size());
    std::size_t written = 0;
    int rc = SSL_write_ex(ssl_.get(), plaintext.data(), n, &written);
    drain_output(to_client);
    if (rc != 1) {
      fail(SSL_get_error(ssl_.get(), rc));
      return false;
    }
    plaintext.remove_prefix(written);
  }
  return true;
}

void TlsSession::shutdown(std::string* to_client) {
  if (failed_ || !handshake_done_ || shutdown_sent_) return;
  ERR_clear_error();
  SSL_shutdown(ssl_.get());  // 0 = sent, peer's not seen yet: fine, we do not wait for it
  ERR_clear_error();
  drain_output(to_client);
  shutdown_sent_ = true;
}

std::string TlsSession::protocol() const {
  return handshake_done_ ? SSL_get_version(ssl_.get()) : "";
}

std::string TlsSession::cipher() const {
  if (!handshake_done_) return "";
  const char* name = SSL_get_cipher_name(ssl_.get());
  return name != nullptr ? name : "";
}

bool TlsSession::session_reused() const {
  return handshake_done_ && SSL_session_reused(ssl_.get()) == 1;
}

bool TlsSession::client_cert_offered() const {
  return handshake_done_ && SSL_get0_peer_certificate(ssl_.get()) != nullptr;
}

}  // namespace mxscreen::proxy
