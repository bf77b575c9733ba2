// proxy/deploy_lint.cc: see deploy_lint.h. Blocking sockets and a child process with timeouts:
// this runs in `mxscreen --check-config`, never on an event loop.
#include "proxy/deploy_lint.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

#include "protocol/ehlo.h"
#include "protocol/escape.h"
#include "protocol/proxy_header.h"
#include "protocol/xclient.h"
#include "proxy/backend_probe.h"
#include "proxy/smtp_probe.h"

namespace mxscreen::proxy {
namespace {

// How long postconf may take, and how much of its output is read.
constexpr int kPostconfTimeoutMs = 10000;
constexpr std::size_t kPostconfOutputLimit = 1 << 20;

bool is_loopback(const protocol::IpAddress& a) {
  if (a.is_v4()) return a.bytes[0] == 127;
  static const auto kV6Loopback = *protocol::IpAddress::parse("::1");
  return a == kV6Loopback;
}

// The client a handoff would name: loopback, of the backend's address family.
protocol::Endpoint loopback_client(const protocol::Endpoint& backend) {
  protocol::Endpoint e;
  e.address = backend.address.is_v4() ? protocol::IpAddress::v4(127, 0, 0, 1)
                                      : *protocol::IpAddress::parse("::1");
  e.port = 4711;
  return e;
}

std::vector<std::string> words(std::string_view text) {
  std::vector<std::string> out;
  std::string word;
  for (char c : text) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == ',' || c == '{' || c == '}') {
      if (!word.empty()) out.push_back(std::move(word));
      word.clear();
    } else {
      word += c;
    }
  }
  if (!word.empty()) out.push_back(std::move(word));
  return out;
}

// Runs `argv` with stdout captured (stderr too, into `err`), at most kPostconfTimeoutMs.
// nullopt when it could not run or failed, with the reason in `why`.
std::optional<std::string> run_capture(const std::vector<std::string>& argv, std::string* why) {
  int out[2];
  if (pipe2(out, O_CLOEXEC) != 0) {
    *why = std::strerror(errno);
    return std::nullopt;
  }
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = fork();
  if (pid < 0) {
    *why = std::strerror(errno);
    close(out[0]);
    close(out[1]);
    return std::nullopt;
  }
  if (pid == 0) {
    dup2(out[1], 1);
    dup2(out[1], 2);
    int null = open("/dev/null", O_RDONLY);
    if (null >= 0) dup2(null, 0);
    execv(args[0], args.data());
    _exit(127);
  }
  close(out[1]);
  std::string text;
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(kPostconfTimeoutMs);
  bool timed_out = false;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    deadline - std::chrono::steady_clock::now())
                    .count();
    if (left <= 0) {
      timed_out = true;
      break;
    }
    pollfd p{out[0], POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left)) <= 0) continue;
    char buf[4096];
    ssize_t n = read(out[0], buf, sizeof buf);
    if (n <= 0) break;
    if (text.size() < kPostconfOutputLimit) text.append(buf, static_cast<std::size_t>(n));
  }
  close(out[0]);
  if (timed_out) kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  if (timed_out) {
    *why = "no answer within " + std::to_string(kPostconfTimeoutMs / 1000) + "s";
    return std::nullopt;
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    auto eol = text.find('\n');
    *why = "exit " + std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : 128) +
           (text.empty() ? "" : ": " + protocol::printable(text.substr(0, eol), 200));
    return std::nullopt;
  }
  return text;
}

std::string postconf_binary() {
  for (const char* dir : {"/usr/sbin", "/usr/local/sbin", "/sbin", "/usr/bin", "/usr/local/bin"}) {
    std::string path = std::string(dir) + "/postconf";
    if (access(path.c_str(), X_OK) == 0) return path;
  }
  return "";
}

}  // namespace

std::vector<std::string> backend_handoff_warnings(const Config& config) {
  std::vector<std::string> out;
  const auto& backend = config.backend;
  const std::string at = "backend " + backend.address.to_string();
  const int timeout =
      static_cast<int>(std::max<int64_t>(1, std::chrono::duration_cast<std::chrono::seconds>(
                                                backend.connect_timeout + backend.banner_timeout)
                                                .count()));
  std::string error;
  int fd = open_tcp(backend.address, timeout, &error);
  if (fd < 0) {
    out.push_back(at + " not reachable (" + error +
                  "): mail handed off now would get 421; the handoff and STARTTLS were not "
                  "checked");
    return out;
  }
  const auto client = loopback_client(backend.address);
  const bool proxy =
      backend.handoff == HandoffMode::kProxyV1 || backend.handoff == HandoffMode::kProxyV2;
  const char* mode = backend.handoff == HandoffMode::kProxyV1   ? "proxy_v1"
                     : backend.handoff == HandoffMode::kProxyV2 ? "proxy_v2"
                     : backend.handoff == HandoffMode::kXclient ? "xclient"
                                                                : "none";
  if (backend.handoff == HandoffMode::kProxyV1) {
    send_all(fd, protocol::encode_proxy_v1(client, backend.address));
  } else if (backend.handoff == HandoffMode::kProxyV2) {
    send_all(fd, protocol::encode_proxy_v2(client, backend.address));
  }
  std::string rest;
  auto fail = [&](const std::string& what) {
    out.push_back(at + " (backend.handoff = \"" + mode + "\"): " + what);
    send_all(fd, "QUIT\r\n");
    close(fd);
    return out;
  };
  auto banner = read_reply(fd, &rest, &error);
  if (!banner) {
    return fail(proxy ? "no banner after the PROXY header (" + error +
                            "): is this a Postfix smtpd with smtpd_upstream_proxy_protocol = "
                            "haproxy?"
                      : "no banner (" + error +
                            "): does it wait for a PROXY header (smtpd_upstream_proxy_protocol)? "
                            "Then set backend.handoff = \"proxy_v2\"");
  }
  if (banner->code != 220) {
    return fail("greets with " + banner->first_line() +
                (proxy ? std::string()
                       : ": if its smtpd waits for a PROXY header (smtpd_upstream_proxy_protocol),"
                         " set backend.handoff = \"proxy_v2\""));
  }
  send_all(fd, "EHLO " + config.server.hostname + "\r\n");
  auto ehlo = read_reply(fd, &rest, &error);
  if (!ehlo) return fail("no answer to EHLO (" + error + ")");
  if (ehlo->code != 250) {
    // A smtpd that does not expect the PROXY protocol greets at once and then answers the
    // header as a command line.
    return fail(proxy ? "the PROXY header was answered as a command (" + ehlo->first_line() +
                            "): its smtpd does not expect the PROXY protocol; give it "
                            "-o smtpd_upstream_proxy_protocol=haproxy, or set backend.handoff"
                      : "EHLO answered " + ehlo->first_line());
  }
  std::vector<std::string> lines = ehlo->lines;
  if (auto w = backend_starttls_warning(config, lines); !w.empty()) out.push_back(w);
  if (backend.handoff == HandoffMode::kXclient) {
    if (!protocol::ehlo_offers(lines, "XCLIENT")) {
      return fail(
          "does not offer XCLIENT to this host: the handoff would fail; give that smtpd "
          "-o smtpd_authorized_xclient_hosts=127.0.0.1 (or set backend.handoff to a PROXY mode)");
    }
    protocol::XclientAttrs attrs;
    attrs.client = client;
    send_all(fd, protocol::encode_xclient(attrs));
    auto answer = read_reply(fd, &rest, &error);
    if (!answer) return fail("no answer to XCLIENT (" + error + ")");
    if (answer->code != 220) {
      return fail("refuses XCLIENT (" + answer->first_line() +
                  "): is this host in its smtpd_authorized_xclient_hosts?");
    }
  }
  send_all(fd, "QUIT\r\n");
  close(fd);
  return out;
}

std::string policy_restriction_warning(std::string_view restrictions,
                                       const protocol::Endpoint& listen, std::string_view where) {
  auto w = words(restrictions);
  const std::string want = listen.to_string();
  // Built by append: GCC 12's -Wrestrict misfires on "literal" + std::string&& in Release.
  std::string port = ":";
  port += std::to_string(listen.port);
  for (std::size_t i = 0; i + 1 < w.size(); ++i) {
    if (w[i] != "check_policy_service") continue;
    std::string target = w[i + 1];
    if (target.rfind("inet:", 0) == 0) target = target.substr(5);
    bool any_host = listen.address == protocol::IpAddress{} ||
                    listen.address == *protocol::IpAddress::parse("::");
    if (target == want || (any_host && target.size() > port.size() &&
                           target.compare(target.size() - port.size(), port.size(), port) == 0)) {
      return "";
    }
  }
  return std::string(where) + " has no check_policy_service inet:" + want +
         ": mail of sessions spliced at connect (PASS OLD, allowlisted, DNSWL) and later "
         "recipients of every session are not greylisted; add it after "
         "reject_unauth_destination (README, Deploying)";
}

std::optional<std::string> service_override(std::string_view text,
                                            const protocol::Endpoint& backend,
                                            std::string_view parameter) {
  const std::string port = std::to_string(backend.port);
  std::optional<std::string> found;
  while (!text.empty()) {
    auto eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    text.remove_prefix(eol == std::string_view::npos ? text.size() : eol + 1);
    auto slash = line.find('/');
    auto eq = line.find(" = ");
    if (slash == std::string_view::npos || eq == std::string_view::npos || eq < slash) continue;
    std::string_view service = line.substr(0, slash);
    std::string_view rest = line.substr(slash + 1, eq - slash - 1);  // "inet/parameter"
    if (rest != "inet/" + std::string(parameter)) continue;
    bool same = service == backend.to_string() || service == port ||
                (service.size() > port.size() + 1 &&
                 service.substr(service.size() - port.size() - 1) == ":" + port);
    if (same) found = std::string(line.substr(eq + 3));
  }
  return found;
}

std::vector<std::string> postfix_policy_warnings(const Config& config,
                                                 const std::string& postfix_config_dir,
                                                 std::string postconf) {
  std::vector<std::string> out;
  if (!config.policy.listen || !is_loopback(config.backend.address.address)) return out;
  if (postconf.empty()) postconf = postconf_binary();
  if (postconf.empty() || access(postconf.c_str(), X_OK) != 0) {
    out.push_back("postconf not found: whether Postfix asks the policy service (" +
                  config.policy.listen->to_string() + ") was not checked");
    return out;
  }
  std::vector<std::string> base = {postconf};
  if (!postfix_config_dir.empty()) base.insert(base.end(), {"-c", postfix_config_dir});
  const std::string dir = postfix_config_dir.empty() ? "Postfix's default" : postfix_config_dir;
  std::string why;
  auto args = base;
  args.push_back("-P");
  // master.cf may lack -o lines: a failing -P is no verdict on main.cf.
  auto services = run_capture(args, &why);
  if (services) {
    if (auto value =
            service_override(*services, config.backend.address, "smtpd_recipient_restrictions")) {
      std::string w = policy_restriction_warning(
          *value, *config.policy.listen,
          "the master.cf service " + config.backend.address.to_string() + " (" + dir + ")");
      if (!w.empty()) out.push_back(w);
      return out;
    }
  }
  args = base;
  args.insert(args.end(), {"-h", "smtpd_recipient_restrictions"});
  auto value = run_capture(args, &why);
  if (!value) {
    out.push_back("postconf (" + dir + ") failed: " + why +
                  "; whether Postfix asks the policy service was not checked");
    return out;
  }
  std::string w = policy_restriction_warning(*value, *config.policy.listen,
                                             "smtpd_recipient_restrictions in " + dir + " main.cf");
  if (!w.empty()) out.push_back(w);
  return out;
}

}  // namespace mxscreen::proxy
