// proxy/client_dns.h: the DNS facts about one client, gathered from accept on, all at once:
// every DNSBL/DNSWL site, the PTR and then A/AAAA of the PTR names (FCrDNS). Answers are
// scored with checks/dnsbl as they come; the session reads snapshot() whenever it decides.
// Destroying a ClientLookups at any time is safe: answers still on their way are dropped.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "checks/dnsbl.h"
#include "checks/rdns.h"
#include "protocol/address.h"
#include "proxy/dns.h"

namespace mxscreen::proxy {

// Which DNSBL zones answer sanely. One per worker, shared by its sessions: a zone that answers
// its own error codes (checks::is_dnsbl_error_answer) is logged once and shown as
// mxscreen_dnsbl_zone_healthy{zone} 0 until it answers like a list again.
class DnsblZoneHealth {
 public:
  void report_error(const std::string& zone, const protocol::IpAddress& answer);
  void report_sane(const std::string& zone);
  bool healthy(const std::string& zone) const;

 private:
  std::map<std::string, bool, std::less<>> healthy_;
};

struct ClientLookupsOptions {
  bool reply_text = false;        // dnsbl.reply_text: fetch the TXT of listing (positive) sites
  std::size_t max_ptr_names = 4;  // PTR names whose A/AAAA are looked up for FCrDNS
};

// What the lookups found, in the words of the checks that judge it (checks/rdns.h).
using PtrState = checks::PtrFact;
using FcrdnsState = checks::FcrdnsFact;

std::string_view to_string(PtrState state);
std::string_view to_string(FcrdnsState state);

struct ClientDnsSnapshot {
  int dnsbl_rank = 0;  // sum of weights of listing sites so far (missing = not listed)
  std::vector<checks::DnsblHit> dnsbl_hits;
  std::size_t dnsbl_sites = 0;     // configured
  std::size_t dnsbl_answered = 0;  // answered (incl. negative, tempfail and zone errors)
  std::size_t dnsbl_tempfail = 0;
  std::vector<std::string> dnsbl_error_zones;  // zones that answered an error code
  std::string reply_text;                      // TXT of the heaviest listing site, if asked for
  // The smallest TTL (seconds) of the DNSBL answers so far: how long the verdict holds
  // (checks::dnsbl_verdict_ttl clamps it). 0 for a negative answer off the wire (udns does not
  // give the SOA minimum) or a failure, which then lasts the shortest time allowed.
  uint32_t dnsbl_ttl = UINT32_MAX;

  PtrState ptr = PtrState::kPending;
  std::string ptr_name;  // the confirmed name, else the first PTR name
  FcrdnsState fcrdns = FcrdnsState::kPending;

  bool dnsbl_done() const { return dnsbl_answered == dnsbl_sites; }
  bool done = false;  // every lookup answered
};

enum class ClientDnsEvent : uint8_t { kDnsbl, kReplyText, kPtr, kFcrdns, kDone };

class ClientLookups {
 public:
  // Called on the loop after each answer; the answer that completes the set is reported as
  // kDone instead of its own event, and nothing follows it. The callback may destroy this.
  using Update = std::function<void(ClientDnsEvent)>;

  // Starts every lookup at once. `sites` is shared so that a reload cannot pull it away.
  ClientLookups(Resolver& resolver, DnsblZoneHealth& health,
                std::shared_ptr<const std::vector<checks::DnsblSite>> sites,
                const protocol::IpAddress& client, ClientLookupsOptions options, Update update);
  ~ClientLookups();
  ClientLookups(const ClientLookups&) = delete;
  ClientLookups& operator=(const ClientLookups&) = delete;

  const ClientDnsSnapshot& snapshot() const { return snapshot_; }
  bool done() const { return snapshot_.done; }

 private:
  void on_site(std::size_t index, const DnsAnswer& answer);
  void on_reply_text(std::size_t index, const DnsAnswer& answer);
  void on_ptr(const DnsAnswer& answer);
  void on_forward(const DnsAnswer& answer);
  // Runs the update callback last: it may destroy `this`.
  void notify(ClientDnsEvent event);
  bool all_done() const;

  Resolver& resolver_;
  DnsblZoneHealth& health_;
  std::shared_ptr<const std::vector<checks::DnsblSite>> sites_;
  protocol::IpAddress client_;
  ClientLookupsOptions options_;
  Update update_;
  checks::DnsblScore score_;
  ClientDnsSnapshot snapshot_;
  std::vector<std::string> ptr_names_;
  std::size_t forward_pending_ = 0;
  bool forward_tempfail_ = false;
  std::size_t reply_text_pending_ = 0;
  int reply_text_site_ = -1;        // index of the site whose TXT is in snapshot_.reply_text
  std::vector<DnsLookup> lookups_;  // dropped on destruction: no callback after that
};

}  // namespace mxscreen::proxy
