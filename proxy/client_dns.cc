// proxy/client_dns.cc: see client_dns.h. FCrDNS follows Postfix's reject_unknown_client_hostname:
// the client address -> PTR name(s) -> A/AAAA must contain the client address again.
#include "proxy/client_dns.h"

#include <algorithm>

#include "proxy/log.h"
#include "proxy/metrics.h"

namespace mxscreen::proxy {
namespace {

std::string zone_label(std::string_view zone) { return "zone=\"" + label_value(zone) + "\""; }

// What a list's own error code means, for the log line (Spamhaus's DNSBL return codes,
// dnswl.org's "query refused").
std::string_view error_meaning(const protocol::IpAddress& answer) {
  const auto& b = answer.bytes;
  if (answer.is_v4() && b[0] == 127 && b[1] == 255 && b[2] == 255) {
    if (b[3] == 252) return "typing error in the DNSBL name";
    if (b[3] == 254) return "query refused (public or unregistered resolver)";
    if (b[3] == 255) return "query refused (excessive number of queries)";
    return "query refused";
  }
  if (answer.is_v4() && b[0] == 127 && b[1] == 0 && b[2] == 0 && b[3] == 255) {
    return "query refused";
  }
  return "not a listing code";
}

}  // namespace

std::string_view to_string(PtrState state) {
  switch (state) {
    case PtrState::kPending:
      return "pending";
    case PtrState::kFound:
      return "found";
    case PtrState::kNone:
      return "none";
    case PtrState::kTempFail:
      return "tempfail";
  }
  return "?";
}

std::string_view to_string(FcrdnsState state) {
  switch (state) {
    case FcrdnsState::kPending:
      return "pending";
    case FcrdnsState::kConfirmed:
      return "confirmed";
    case FcrdnsState::kMismatch:
      return "mismatch";
    case FcrdnsState::kNoPtr:
      return "no ptr";
    case FcrdnsState::kTempFail:
      return "tempfail";
  }
  return "?";
}

void DnsblZoneHealth::report_error(const std::string& zone, const protocol::IpAddress& answer) {
  metrics().inc("mxscreen_dnsbl_errors_total", zone_label(zone));
  auto it = healthy_.find(zone);
  if (it != healthy_.end() && !it->second) return;  // logged already
  healthy_[zone] = false;
  metrics().set("mxscreen_dnsbl_zone_healthy", zone_label(zone), 0);
  Log::event(LogLevel::kWarning, "DNSBL",
             "DNSBL zone " + zone + " answered " + answer.to_string() + ": " +
                 std::string(error_meaning(answer)) + "; not a listing",
             {{"zone", zone}, {"answer", answer.to_string()}});
}

void DnsblZoneHealth::report_sane(const std::string& zone) {
  auto it = healthy_.find(zone);
  if (it != healthy_.end() && it->second) return;
  bool was_unhealthy = it != healthy_.end();
  healthy_[zone] = true;
  metrics().set("mxscreen_dnsbl_zone_healthy", zone_label(zone), 1);
  if (was_unhealthy) {
    Log::event(LogLevel::kInfo, "DNSBL", "DNSBL zone " + zone + " answers sanely again",
               {{"zone", zone}});
  }
}

bool DnsblZoneHealth::healthy(const std::string& zone) const {
  auto it = healthy_.find(zone);
  return it == healthy_.end() || it->second;
}

ClientLookups::ClientLookups(Resolver& resolver, DnsblZoneHealth& health,
                             std::shared_ptr<const std::vector<checks::DnsblSite>> sites,
                             const protocol::IpAddress& client, ClientLookupsOptions options,
                             Update update)
    : resolver_(resolver),
      health_(health),
      sites_(std::move(sites)),
      client_(client),
      options_(options),
      update_(std::move(update)) {
  std::size_t n = sites_ ? sites_->size() : 0;
  snapshot_.dnsbl_sites = n;
  lookups_.reserve(n + 1 + options_.max_ptr_names + 1);
  // Every answer arrives from the loop, never inside lookup(), so `this` is complete by then.
  for (std::size_t i = 0; i < n; ++i) {
    lookups_.push_back(
        resolver_.lookup(DnsType::kA, checks::dnsbl_query_name(client_, (*sites_)[i].zone),
                         [this, i](const DnsAnswer& answer) { on_site(i, answer); }));
  }
  lookups_.push_back(
      resolver_.lookup_ptr(client_, [this](const DnsAnswer& answer) { on_ptr(answer); }));
}

ClientLookups::~ClientLookups() = default;

bool ClientLookups::all_done() const {
  return snapshot_.dnsbl_done() && snapshot_.fcrdns != FcrdnsState::kPending &&
         reply_text_pending_ == 0;
}

void ClientLookups::notify(ClientDnsEvent event) {
  if (snapshot_.done) return;
  if (all_done()) {
    snapshot_.done = true;
    event = ClientDnsEvent::kDone;
  }
  if (!update_) return;
  // A copy: the callback may destroy `this`, and with it update_, while it runs.
  Update update = update_;
  update(event);
}

void ClientLookups::on_site(std::size_t index, const DnsAnswer& answer) {
  const checks::DnsblSite& site = (*sites_)[index];
  ++snapshot_.dnsbl_answered;
  snapshot_.dnsbl_ttl = std::min(snapshot_.dnsbl_ttl, answer.ttl);
  std::vector<protocol::IpAddress> addresses;
  if (answer.status == DnsStatus::kOk) {
    for (const auto& value : answer.values) {
      if (auto ip = protocol::IpAddress::parse(value)) addresses.push_back(*ip);
    }
  } else if (answer.status == DnsStatus::kTempFail) {
    ++snapshot_.dnsbl_tempfail;
    metrics().inc("mxscreen_dnsbl_tempfail_total", zone_label(site.zone));
  }
  checks::DnsblOutcome outcome = score_.add(site, addresses);
  switch (outcome) {
    case checks::DnsblOutcome::kZoneError:
      for (const auto& ip : addresses) {
        if (checks::is_dnsbl_error_answer(ip)) {
          health_.report_error(site.zone, ip);
          break;
        }
      }
      snapshot_.dnsbl_error_zones.push_back(site.zone);
      break;
    case checks::DnsblOutcome::kListed:
      health_.report_sane(site.zone);
      metrics().inc("mxscreen_dnsbl_hits_total", zone_label(site.zone));
      break;
    case checks::DnsblOutcome::kNotListed:
      if (answer.status != DnsStatus::kTempFail) health_.report_sane(site.zone);
      break;
  }
  snapshot_.dnsbl_rank = score_.rank();
  snapshot_.dnsbl_hits = score_.hits();
  if (outcome == checks::DnsblOutcome::kListed && options_.reply_text && site.weight > 0) {
    ++reply_text_pending_;
    lookups_.push_back(
        resolver_.lookup(DnsType::kTXT, checks::dnsbl_query_name(client_, site.zone),
                         [this, index](const DnsAnswer& txt) { on_reply_text(index, txt); }));
  }
  notify(ClientDnsEvent::kDnsbl);
}

void ClientLookups::on_reply_text(std::size_t index, const DnsAnswer& answer) {
  --reply_text_pending_;
  // The text of the heaviest listing site wins; on a tie, the one configured first.
  const checks::DnsblSite& site = (*sites_)[index];
  bool better = reply_text_site_ < 0 || site.weight > (*sites_)[reply_text_site_].weight ||
                (site.weight == (*sites_)[reply_text_site_].weight &&
                 index < static_cast<std::size_t>(reply_text_site_));
  if (answer.status == DnsStatus::kOk && !answer.values.empty() && better) {
    snapshot_.reply_text = answer.values.front();
    reply_text_site_ = static_cast<int>(index);
  }
  notify(ClientDnsEvent::kReplyText);
}

void ClientLookups::on_ptr(const DnsAnswer& answer) {
  switch (answer.status) {
    case DnsStatus::kOk:
      snapshot_.ptr = PtrState::kFound;
      break;
    case DnsStatus::kNxDomain:
    case DnsStatus::kNoData:
      snapshot_.ptr = PtrState::kNone;
      snapshot_.fcrdns = FcrdnsState::kNoPtr;
      break;
    case DnsStatus::kTempFail:
      snapshot_.ptr = PtrState::kTempFail;
      snapshot_.fcrdns = FcrdnsState::kTempFail;
      break;
  }
  if (snapshot_.ptr != PtrState::kFound) {
    notify(ClientDnsEvent::kPtr);
    return;
  }
  for (const auto& name : answer.values) {
    if (ptr_names_.size() >= options_.max_ptr_names) break;
    ptr_names_.push_back(name);
  }
  snapshot_.ptr_name = ptr_names_.front();
  forward_pending_ = ptr_names_.size();
  DnsType type = client_.is_v4() ? DnsType::kA : DnsType::kAAAA;
  for (const auto& name : ptr_names_) {
    lookups_.push_back(resolver_.lookup(type, name, [this, name](const DnsAnswer& forward) {
      if (snapshot_.fcrdns == FcrdnsState::kPending) {
        for (const auto& value : forward.values) {
          auto ip = protocol::IpAddress::parse(value);
          if (ip && *ip == client_) {
            snapshot_.ptr_name = name;
            snapshot_.fcrdns = FcrdnsState::kConfirmed;
            break;
          }
        }
      }
      on_forward(forward);
    }));
  }
  notify(ClientDnsEvent::kPtr);
}

void ClientLookups::on_forward(const DnsAnswer& answer) {
  --forward_pending_;
  if (answer.status == DnsStatus::kTempFail) forward_tempfail_ = true;
  if (snapshot_.fcrdns == FcrdnsState::kPending && forward_pending_ == 0) {
    snapshot_.fcrdns = forward_tempfail_ ? FcrdnsState::kTempFail : FcrdnsState::kMismatch;
  }
  if (snapshot_.fcrdns != FcrdnsState::kPending) notify(ClientDnsEvent::kFcrdns);
}

}  // namespace mxscreen::proxy
