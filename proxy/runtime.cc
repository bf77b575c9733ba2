// proxy/runtime.cc: see runtime.h.
#include "proxy/runtime.h"

#include <unistd.h>

#include <fstream>
#include <sstream>

namespace mxscreen::proxy {
namespace {

// server.hostname when empty: the machine's name, as Postfix's myhostname defaults to it.
std::string system_hostname() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return "localhost";
  return buf;
}

std::string expand_banner(const Config& config) {
  const std::string& host = config.server.hostname;
  std::string banner = config.greet.banner;
  for (size_t pos; (pos = banner.find("$hostname")) != std::string::npos;) {
    banner.replace(pos, 9, host);
  }
  return banner;
}

// The plan's view of the config (checks/plan.h): which settings switch a test on.
checks::PlanSettings plan_settings(const Config& c, const Runtime& rt) {
  checks::PlanSettings s;
  s.dnsbl_sites = !rt.dnsbl_sites->empty();
  s.greet = c.greet.action;
  s.pipelining = c.smtp.pipelining;
  s.non_smtp_command = c.smtp.non_smtp_command;
  s.bare_newline = c.smtp.bare_newline;
  s.helo = c.helo;
  s.helo_reject_unknown = c.helo.reject_unknown;
  s.helo_rhsbl = !rt.helo_rhsbl->empty();
  s.client_reject_unknown_reverse = c.client.reject_unknown_reverse;
  s.client_reject_unknown = c.client.reject_unknown;
  s.client_rhsbl_reverse = !rt.reverse_rhsbl->empty();
  s.sender_reject_non_fqdn = c.sender.reject_non_fqdn;
  s.sender_reject_unknown_domain = c.sender.reject_unknown_domain;
  s.sender_rhsbl = !rt.sender_rhsbl->empty();
  s.sender_spf = c.sender.spf != checks::SpfMode::kOff;
  s.recipient_reject_non_fqdn = c.recipient.reject_non_fqdn;
  s.greylist = c.greylist.enabled;
  // Identity keys and the only_if gate read the client's PTR and FCrDNS (and DNSBL score);
  // the gate's "helo" fact looks the HELO name up at RCPT.
  s.greylist_needs_client_name =
      rt.greylist_clients->needs_name() || c.greylist.identity_keys || rt.greylist_only_if != 0;
  s.greylist_helo_lookup = (rt.greylist_only_if & checks::bit(checks::GateFact::kHelo)) != 0;
  s.xclient_name = c.backend.handoff == HandoffMode::kXclient;
  return s;
}

}  // namespace

std::shared_ptr<const Runtime> build_runtime(Config config, std::vector<std::string>* errors) {
  auto rt = std::make_shared<Runtime>();
  // A rule file (access list, greylist allowlists): read, parsed by `parse`, every bad line
  // reported as file:line:col. False when it cannot be read or has errors.
  auto load = [errors](const std::string& path, const char* what, auto parse, auto* out) {
    if (path.empty()) return true;
    std::ifstream in(path);
    if (!in) {
      errors->push_back(path + ":0:0: cannot read " + what);
      return false;
    }
    std::stringstream text;
    text << in.rdbuf();
    std::vector<checks::AccessFileError> file_errors;
    *out = parse(text.str(), &file_errors);
    for (const auto& e : file_errors) {
      errors->push_back(path + ":" + std::to_string(e.line) + ":" + std::to_string(e.column) +
                        ": " + e.message);
    }
    return file_errors.empty();
  };
  std::vector<checks::AccessRule> file_rules;
  checks::ClientAllowlist grey_clients;
  checks::RecipientAllowlist grey_recipients;
  if (!load(config.access.file, "access file", checks::parse_access_file, &file_rules) ||
      !load(config.greylist.client_allowlist_file, "greylist client allowlist",
            checks::ClientAllowlist::parse, &grey_clients) ||
      !load(config.greylist.recipient_allowlist_file, "greylist recipient allowlist",
            checks::RecipientAllowlist::parse, &grey_recipients)) {
    return nullptr;
  }
  rt->greylist_clients = std::make_shared<const checks::ClientAllowlist>(std::move(grey_clients));
  rt->greylist_recipients =
      std::make_shared<const checks::RecipientAllowlist>(std::move(grey_recipients));
  if (!config.tls.cert_file.empty()) {
    TlsSettings settings;
    settings.cert_key_files.emplace_back(config.tls.cert_file, config.tls.key_file);
    for (size_t i = 0; i < config.tls.extra_cert_files.size(); ++i) {
      settings.cert_key_files.emplace_back(config.tls.extra_cert_files[i],
                                           config.tls.extra_key_files[i]);
    }
    settings.protocols = config.tls.protocols;
    settings.ciphers = config.tls.ciphers;
    settings.ciphersuites = config.tls.ciphersuites;
    settings.session_tickets = config.tls.session_tickets;
    settings.ticket_key_rotation =
        std::chrono::duration_cast<std::chrono::seconds>(config.tls.ticket_key_rotation);
    std::string error;
    rt->tls = TlsContext::create(settings, &error);
    if (!rt->tls) {
      errors->push_back("[tls]: " + error);
      return nullptr;
    }
  }
  std::vector<std::string> site_errors;
  auto sites = checks::parse_dnsbl_sites(config.dnsbl.sites, &site_errors);
  for (const auto& e : site_errors) errors->push_back("[dnsbl] sites: " + e);
  if (!sites) return nullptr;
  rt->dnsbl_sites = std::make_shared<const std::vector<checks::DnsblSite>>(std::move(*sites));
  auto rhsbl = [&](const std::vector<std::string>& texts, const std::string& where) {
    std::vector<std::string> list_errors;
    auto parsed = checks::parse_dnsbl_sites(texts, &list_errors);
    for (const auto& e : list_errors) errors->push_back(where + ": " + e);
    return parsed ? std::make_shared<const std::vector<checks::DnsblSite>>(std::move(*parsed))
                  : nullptr;
  };
  rt->helo_rhsbl = rhsbl(config.helo.rhsbl, "[helo] rhsbl");
  rt->sender_rhsbl = rhsbl(config.sender.rhsbl, "[sender] rhsbl");
  rt->reverse_rhsbl = rhsbl(config.client.rhsbl_reverse, "[client] rhsbl_reverse");
  if (!rt->helo_rhsbl || !rt->sender_rhsbl || !rt->reverse_rhsbl) return nullptr;
  rt->access = checks::AccessList(std::move(file_rules), config.access.deny, config.access.allow);
  if (config.server.hostname.empty()) config.server.hostname = system_hostname();
  rt->banner = expand_banner(config);
  for (const auto& fact : config.greylist.only_if) {
    if (auto f = checks::parse_gate_fact(fact)) rt->greylist_only_if |= checks::bit(*f);
  }
  rt->trap_recipients = checks::TrapRecipients(config.greylist.trap_recipients);
  rt->plan = checks::Plan(plan_settings(config, *rt));
  rt->config = std::make_shared<const Config>(std::move(config));
  return rt;
}

std::shared_ptr<const Runtime> load_runtime(const std::string& path,
                                            std::vector<std::string>* errors,
                                            std::vector<std::string>* warnings) {
  auto loaded = load_config(path);
  for (const auto& e : loaded.errors) errors->push_back(e.to_string());
  for (const auto& w : loaded.warnings) {
    if (warnings) warnings->push_back(w.to_string());
  }
  if (!loaded.config) return nullptr;
  auto runtime = build_runtime(std::move(*loaded.config), errors);
  return errors->empty() ? runtime : nullptr;
}

}  // namespace mxscreen::proxy
