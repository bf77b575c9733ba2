// proxy/backend_probe.cc: see backend_probe.h.
#include "proxy/backend_probe.h"

#include "protocol/ehlo.h"
#include "protocol/escape.h"
#include "protocol/proxy_header.h"

namespace mxscreen::proxy {

std::string backend_starttls_warning(const Config& config, const std::vector<std::string>& ehlo) {
  const bool own_tls = !config.tls.cert_file.empty();
  const bool backend_tls = protocol::ehlo_offers(ehlo, "STARTTLS");
  const std::string backend = "backend " + config.backend.address.to_string();
  if (config.backend.handoff == HandoffMode::kXclient) {
    // The spliced stream is read in this mode: the backend's STARTTLS never reaches a client,
    // mxscreen's own takes its place on every path.
    if (own_tls || !backend_tls) return "";
    return backend +
           " offers STARTTLS, but with handoff = \"xclient\" mxscreen reads every command after "
           "the handoff and so never offers it, and [tls] is not set: no client gets TLS; set "
           "[tls] (the backend's certificate will do; README, Deploying)";
  }
  if (!own_tls || backend_tls) return "";
  return "[tls] is set but " + backend +
         " does not offer STARTTLS: clients spliced at connect (PASS OLD, access.allow, DNSWL) "
         "talk to it in clear text; give that smtpd smtpd_tls_security_level = may and a "
         "certificate (README, Deploying)";
}

BackendProbe::BackendProbe(uv_loop_t* loop, const BackendConfig& backend, std::string hostname,
                           Done done)
    : loop_(loop),
      backend_(backend),
      hostname_(std::move(hostname)),
      done_(std::move(done)),
      conn_(*this) {}

BackendProbe::~BackendProbe() = default;

void BackendProbe::start() {
  timer_.init<&BackendProbe::timed_out>(loop_, this);
  timer_.start(backend_.connect_timeout + backend_.banner_timeout);
  int rc = conn_.init(loop_);
  if (rc == 0) rc = conn_.connect(backend_.address);
  if (rc != 0) finish(std::nullopt, uv_error(rc));
}

void BackendProbe::on_connect(Conn&, int status) {
  if (status != 0) {
    finish(std::nullopt, uv_error(status));
    return;
  }
  // The probe speaks for itself: the PROXY header names the backend as both ends.
  if (backend_.handoff == HandoffMode::kProxyV1) {
    conn_.write(protocol::encode_proxy_v1(backend_.address, backend_.address));
  } else if (backend_.handoff == HandoffMode::kProxyV2) {
    conn_.write(protocol::encode_proxy_v2(backend_.address, backend_.address));
  }
  conn_.start_reading();
}

void BackendProbe::on_read(Conn&, std::string_view bytes) {
  while (!bytes.empty() && !finished_) {
    size_t used = 0;
    auto status = reader_.feed(bytes, &used);
    if (status == protocol::ReplyReader::Status::kNeedMore) return;
    if (status == protocol::ReplyReader::Status::kInvalid) {
      finish(std::nullopt, "malformed reply");
      return;
    }
    bytes.remove_prefix(used);
    if (!sent_ehlo_) {
      if (reader_.code() != 220) {
        finish(std::nullopt, "banner " + std::to_string(reader_.code()));
        return;
      }
      sent_ehlo_ = true;
      reader_.reset();
      conn_.write("EHLO " + hostname_ + "\r\n");
      continue;
    }
    if (reader_.code() != 250) {
      finish(std::nullopt, "EHLO answered " + std::to_string(reader_.code()));
      return;
    }
    conn_.write("QUIT\r\n");
    finish(reader_.lines(), "");
    return;
  }
}

void BackendProbe::on_eof(Conn&) { finish(std::nullopt, "connection closed"); }
void BackendProbe::on_error(Conn&, int status) { finish(std::nullopt, uv_error(status)); }

void BackendProbe::finish(std::optional<std::vector<std::string>> lines, const std::string& why) {
  if (finished_) return;
  finished_ = true;
  timer_.close();
  conn_.close_after_flush();
  auto done = std::move(done_);
  done(std::move(lines), why);  // may destroy this
}

}  // namespace mxscreen::proxy
