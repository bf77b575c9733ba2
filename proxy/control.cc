// proxy/control.cc: see control.h.
#include "proxy/control.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <sstream>

#include "protocol/address.h"
#include "protocol/escape.h"
#include "proxy/abuse.h"
#include "proxy/config.h"
#include "proxy/explain.h"
#include "proxy/log.h"
#include "proxy/metrics.h"
#include "proxy/server.h"
#include "version.h"

namespace mxscreen::proxy {
namespace {

std::vector<std::string> words(const std::string& line) {
  std::vector<std::string> out;
  std::istringstream in(line);
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

struct WriteReq {
  uv_write_t req{};
  std::string data;
};

}  // namespace

std::string utc_time(int64_t epoch) {
  std::time_t t = static_cast<std::time_t>(epoch);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string control_socket_path(const std::string& state_dir) {
  return (state_dir.empty() ? std::string(".") : state_dir) + "/" + kControlSocketName;
}

struct ControlServer::Client {
  ControlServer* owner = nullptr;
  UvHandle<uv_pipe_t> pipe;
  Timer timer;  // server.ctl_timeout, from accept to the answer written
  std::string request;
  bool answered = false;
  std::shared_ptr<bool> alive = std::make_shared<bool>(true);

  void timed_out() {
    count_admin_close("ctl", "timeout");
    Log::warning("ctl: connection closed: no request answered within server.ctl_timeout");
    owner->drop(this);
  }
};

ControlServer::ControlServer(uv_loop_t* loop, Server& server) : loop_(loop), server_(server) {}

ControlServer::~ControlServer() { stop(); }

int ControlServer::start(const std::string& path) {
  sockaddr_un probe{};
  if (path.size() >= sizeof probe.sun_path) return UV_ENAMETOOLONG;
  // A socket file left by a crash would make the bind fail; nothing else may sit there.
  struct stat st {};
  if (lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) return UV_EEXIST;
    unlink(path.c_str());
  }
  int rc = uv_pipe_init(loop_, listener_.get(), 0);
  if (rc != 0) return rc;
  listener_.initialized();
  listener_->data = this;
  mode_t old = umask(077);  // never a moment open to others
  rc = uv_pipe_bind(listener_.get(), path.c_str());
  umask(old);
  if (rc == 0 && chmod(path.c_str(), 0600) != 0) rc = uv_translate_sys_error(errno);
  if (rc == 0) rc = uv_listen(listener_.stream(), 16, &ControlServer::on_connection);
  if (rc != 0) {
    listener_.close();
    return rc;
  }
  path_ = path;
  return 0;
}

void ControlServer::stop() {
  if (!listener_) return;
  listener_.close();
  if (!path_.empty()) unlink(path_.c_str());
  path_.clear();
  for (auto& c : clients_) *c->alive = false;
  clients_.clear();
}

void ControlServer::on_connection(uv_stream_t* listener, int status) {
  auto* self = static_cast<ControlServer*>(listener->data);
  if (!self || status < 0) return;
  auto client = std::make_unique<Client>();
  client->owner = self;
  uv_pipe_init(self->loop_, client->pipe.get(), 0);
  client->pipe.initialized();
  if (uv_accept(listener, client->pipe.stream()) != 0) return;
  const ServerConfig& config = self->server_.runtime()->config->server;
  if (self->clients_.size() >= static_cast<std::size_t>(config.ctl_max_connections)) {
    // Refused at once (the descriptor is back before the next accept); the admin retries.
    count_admin_close("ctl", "max_connections");
    Log::warning("ctl: connection refused: " + std::to_string(self->clients_.size()) +
                 " admin connections open (server.ctl_max_connections)");
    static constexpr char kBusy[] =
        "ERR busy: too many admin connections (server.ctl_max_connections); try again\n";
    uv_buf_t buf = uv_buf_init(const_cast<char*>(kBusy), sizeof kBusy - 1);
    uv_try_write(client->pipe.stream(), &buf, 1);  // a fresh socket takes this much at once
    return;
  }
  client->pipe->data = client.get();
  client->timer.init<&Client::timed_out>(self->loop_, client.get());
  client->timer.start(config.ctl_timeout);
  uv_read_start(
      client->pipe.stream(),
      [](uv_handle_t*, size_t suggested, uv_buf_t* buf) {
        buf->base = new char[suggested];
        buf->len = suggested;
      },
      [](uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
        std::unique_ptr<char[]> owned(buf->base);
        auto* c = static_cast<Client*>(stream->data);
        if (!c || c->answered) return;
        if (nread < 0) return c->owner->drop(c);
        c->request.append(buf->base, static_cast<std::size_t>(nread));
        auto eol = c->request.find('\n');
        if (eol == std::string::npos) {
          if (c->request.size() > kMaxRequest) c->owner->answer(c, "ERR request too long\n");
          return;
        }
        uv_read_stop(stream);
        std::string line = c->request.substr(0, eol);
        if (!line.empty() && line.back() == '\r') line.pop_back();
        c->owner->handle(c, line);
      });
  self->clients_.push_back(std::move(client));
}

ControlRequest parse_control_request(const std::string& line) {
  auto args = words(line);
  const std::string what = args.empty() ? "" : args[0];
  ControlRequest request;
  if (what == "bans" && args.size() == 1) {
    request.kind = ControlRequest::Kind::kBans;
  } else if (what == "stats" && args.size() == 1) {
    request.kind = ControlRequest::Kind::kStats;
  } else if (what == "greylist" || what == "cache") {
    auto state = parse_state_request(args, &request.error);
    if (state) {
      request.kind = ControlRequest::Kind::kState;
      request.state = std::move(*state);
    }
  } else if ((what == "unban" && args.size() == 2) || (what == "ban" && args.size() == 3)) {
    // An address, or the network `bans` lists for an IPv6 client ("2001:db8:1:2::/64"): either
    // names the client's ban.ipv6_prefix network.
    auto network = protocol::Cidr::parse(args[1]);
    if (!network) {
      request.error = "ERR invalid address \"" + protocol::printable(args[1]) + "\"\n";
      return request;
    }
    request.address = network->network;
    if (what == "unban") {
      request.kind = ControlRequest::Kind::kUnban;
      return request;
    }
    auto length = parse_duration(args[2]);
    auto secs = length ? std::chrono::duration_cast<std::chrono::seconds>(*length)
                       : std::chrono::seconds(0);
    if (secs.count() <= 0) {
      request.error = "ERR invalid duration \"" + protocol::printable(args[2]) +
                      "\" (expected e.g. 90s, 30m, 12h, 7d)\n";
      return request;
    }
    request.kind = ControlRequest::Kind::kBan;
    request.duration = secs;
  } else {
    request.error = "ERR unknown request \"" + protocol::printable(line) +
                    "\"; expected: bans | unban ADDR | ban ADDR DURATION | stats | "
                    "greylist list|pass|drop|report ... | cache show|drop|flush ... | "
                    "explain ADDR ...\n";
  }
  return request;
}

void ControlServer::handle(Client* client, const std::string& line) {
  Log::info("ctl: " + protocol::printable(line));
  auto alive = client->alive;
  auto reply = [this, client, alive](const std::string& text) {
    if (*alive) answer(client, text);
  };
  if (auto args = words(line); !args.empty() && args[0] == "explain") {
    // DNS lookups, each within dns.timeout: more time than server.ctl_timeout (explain.h).
    const auto limit = explain_time_limit(*server_.runtime()->config);
    client->timer.start(limit);
    return serve_explain(server_, {args.begin() + 1, args.end()}, reply);
  }
  const ControlRequest request = parse_control_request(line);
  const auto address = request.address;
  const std::string who = server_.bans().identity(address);  // "2001:db8:1:2::/64" for IPv6
  switch (request.kind) {
    case ControlRequest::Kind::kInvalid:
      return reply(request.error);
    case ControlRequest::Kind::kState:
      return run_state_request(request.state, server_, reply);
    case ControlRequest::Kind::kBans:
      server_.bans().list([reply](StoreStatus status, std::vector<BanEntry> bans) {
        if (status != StoreStatus::kOk) {
          return reply("ERR state store " + std::string(to_string(status)) + "\n");
        }
        std::string text;
        const int64_t now = wall_clock_seconds();
        for (const auto& b : bans) {
          text += b.address + " until=" + utc_time(b.record.until) +
                  " left=" + std::to_string(b.record.until - now) +
                  "s reason=" + protocol::printable(b.record.reason, 200) + "\n";
        }
        reply(text + "OK " + std::to_string(bans.size()) + " banned\n");
      });
      return;
    case ControlRequest::Kind::kUnban:
      server_.bans().unban(address, [reply, who](StoreStatus status) {
        reply(status == StoreStatus::kOk
                  ? "OK unbanned " + who + "\n"
                  : "ERR state store " + std::string(to_string(status)) + "\n");
      });
      return;
    case ControlRequest::Kind::kBan:
      server_.bans().ban(
          address, "admin", "banned by the admin", request.duration,
          [reply, who](StoreStatus status, std::chrono::seconds s) {
            reply(status == StoreStatus::kOk
                      ? "OK banned " + who + " for " + std::to_string(s.count()) + "s\n"
                      : "ERR state store " + std::string(to_string(status)) + "\n");
          });
      return;
    case ControlRequest::Kind::kStats: {
      std::string text = std::string("version ") + MXSCREEN_VERSION + "\n" + "sessions_active " +
                         std::to_string(server_.active_sessions()) + "\n" + "backend_sessions " +
                         std::to_string(server_.backend_sessions()) + "\n" + "stress " +
                         (server_.under_stress() ? "yes" : "no") + "\n" + "store " +
                         std::string(server_.store().engine()) + "\n";
      // Then every counter and gauge as /metrics has it (histogram buckets left out).
      std::istringstream in(metrics().render());
      for (std::string l; std::getline(in, l);) {
        if (!l.empty() && l[0] != '#' && l.find("_bucket{") == std::string::npos) text += l + "\n";
      }
      return reply(text + "OK\n");
    }
  }
}

void ControlServer::answer(Client* client, const std::string& text) {
  if (client->answered) return;
  client->answered = true;
  auto* w = new WriteReq{};
  w->data = text;
  uv_buf_t buf = uv_buf_init(w->data.data(), static_cast<unsigned>(w->data.size()));
  w->req.data = w;
  int rc = uv_write(&w->req, client->pipe.stream(), &buf, 1, [](uv_write_t* req, int) {
    std::unique_ptr<WriteReq> owned(static_cast<WriteReq*>(req->data));
    auto* c = static_cast<Client*>(req->handle->data);
    if (c) c->owner->drop(c);  // null when the client was closed meanwhile
  });
  if (rc != 0) {
    delete w;
    drop(client);
  }
}

void ControlServer::drop(Client* client) {
  *client->alive = false;
  auto it = std::find_if(clients_.begin(), clients_.end(),
                         [client](const auto& c) { return c.get() == client; });
  if (it != clients_.end()) clients_.erase(it);  // closes the pipe
}

int run_ctl(const std::string& state_dir, const std::vector<std::string>& request,
            std::chrono::seconds timeout_after) {
  const std::string path = control_socket_path(state_dir);
  std::string line;
  for (const auto& r : request) {
    if (r.find_first_of(" \t\r\n") != std::string::npos) {
      std::fprintf(stderr,
                   "mxscreen ctl: white space inside \"%s\": requests are one line of words\n",
                   protocol::printable(r).c_str());
      return 2;
    }
    line += (line.empty() ? "" : " ") + r;
  }
  if (line.empty()) {
    std::fprintf(stderr,
                 "mxscreen ctl: expected one of: bans | unban ADDR | ban ADDR DURATION | "
                 "stats | greylist ... | cache ... | explain ADDR [--helo NAME] [--from ADDR] "
                 "[--to ADDR] [--json]\n");
    return 2;
  }
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) {
    std::fprintf(stderr, "mxscreen ctl: socket path too long: %s\n", path.c_str());
    return 1;
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  timeval timeout{static_cast<time_t>(timeout_after.count()), 0};
  if (fd >= 0) {
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
  }
  if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    std::fprintf(stderr, "mxscreen ctl: cannot connect to %s: %s (is mxscreen running?)\n",
                 path.c_str(), std::strerror(errno));
    if (fd >= 0) close(fd);
    return 1;
  }
  line += "\n";
  std::string answer;
  bool io_ok =
      send(fd, line.data(), line.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(line.size());
  // Read even when the send failed: a busy server answers "ERR busy" and closes at once.
  char buf[4096];
  for (ssize_t n; (n = recv(fd, buf, sizeof buf, 0)) != 0;) {
    if (n < 0) {
      io_ok = false;
      break;
    }
    answer.append(buf, static_cast<std::size_t>(n));
  }
  close(fd);
  if (!io_ok && answer.rfind("ERR ", 0) == 0) io_ok = true;
  if (!io_ok) {
    std::fprintf(stderr, "mxscreen ctl: no answer from %s: %s\n", path.c_str(),
                 std::strerror(errno));
    return 1;
  }
  // Body lines to stdout; the status line's text to stdout (OK) or stderr (ERR).
  auto last = answer.rfind('\n', answer.size() >= 2 ? answer.size() - 2 : 0);
  std::string body = last == std::string::npos ? "" : answer.substr(0, last + 1);
  std::string status = last == std::string::npos ? answer : answer.substr(last + 1);
  std::fwrite(body.data(), 1, body.size(), stdout);
  if (status.rfind("OK", 0) == 0) {
    std::string rest = status.size() > 3 ? status.substr(3) : "";
    std::fwrite(rest.data(), 1, rest.size(), stdout);
    return 0;
  }
  std::fprintf(stderr, "mxscreen ctl: %s",
               status.rfind("ERR ", 0) == 0 ? status.c_str() + 4 : status.c_str());
  if (status.empty() || status.back() != '\n') std::fputc('\n', stderr);
  return 1;
}

}  // namespace mxscreen::proxy
