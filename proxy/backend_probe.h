// proxy/backend_probe.h: learns what the backend offers in its EHLO reply (at start, on reload,
// and again later while it is unreachable), so mxscreen's own EHLO reply mirrors it. A probe
// is one short session: identity (a PROXY header naming the backend itself), banner, EHLO,
// QUIT, bounded by backend.banner_timeout.
#pragma once

#include <uv.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "protocol/reply.h"
#include "proxy/config.h"
#include "proxy/conn.h"

namespace mxscreen::proxy {

// A path on which a STARTTLS-capable client would get no TLS, judged from the backend's EHLO
// reply (greeting line first); the warning, or "". With the PROXY protocol (or none): [tls] is
// set and the backend offers no STARTTLS, so the sessions spliced at connect (PASS OLD,
// access.allow, DNSWL), which only the backend's STARTTLS can serve, are in clear text. With
// XCLIENT: the backend's STARTTLS is never offered (the stream is read), so without [tls] no
// session gets TLS although the backend could do it.
std::string backend_starttls_warning(const Config& config, const std::vector<std::string>& ehlo);

class BackendProbe : public ConnHandler {
 public:
  // `done` gets the EHLO reply lines (greeting line first), or nullopt and a reason.
  using Done = std::function<void(std::optional<std::vector<std::string>>, const std::string&)>;

  BackendProbe(uv_loop_t* loop, const BackendConfig& backend, std::string hostname, Done done);
  ~BackendProbe() override;
  void start();

  void on_read(Conn& conn, std::string_view bytes) override;
  void on_eof(Conn& conn) override;
  void on_error(Conn& conn, int status) override;
  void on_connect(Conn& conn, int status) override;

 private:
  void finish(std::optional<std::vector<std::string>> lines, const std::string& why);
  void timed_out() { finish(std::nullopt, "timeout"); }

  uv_loop_t* loop_;
  BackendConfig backend_;
  std::string hostname_;
  Done done_;
  Conn conn_;
  Timer timer_;
  protocol::ReplyReader reader_;
  bool sent_ehlo_ = false;
  bool finished_ = false;
};

}  // namespace mxscreen::proxy
