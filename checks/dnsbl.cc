// checks/dnsbl.cc: see dnsbl.h. Site syntax follows postconf(5) postscreen_dnsbl_sites; the
// filter octet syntax ([n..m] ranges, [a;b;c] lists) follows Postfix's ip_match.
#include "checks/dnsbl.h"

#include <charconv>
#include <vector>

#include "protocol/escape.h"

namespace mxscreen::checks {
namespace {

constexpr std::size_t kMaxDomainName = 253;  // RFC 1035 section 2.3.4, without the root dot

bool parse_int(std::string_view text, int* out) {
  if (text.empty()) return false;
  const char* first = text.data();
  const char* last = text.data() + text.size();
  if (*first == '+') ++first;
  auto [ptr, ec] = std::from_chars(first, last, *out);
  return ec == std::errc() && ptr == last && first != last;
}

bool parse_octet(std::string_view text, int* out) {
  if (text.empty() || text.size() > 3) return false;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
  }
  return parse_int(text, out) && *out <= 255;
}

// "2", "[2..11]", "[2;4;6]", "[1..3;7]".
bool parse_filter_octet(std::string_view text, std::bitset<256>* set, std::string* error) {
  int value = 0;
  if (parse_octet(text, &value)) {
    set->set(static_cast<std::size_t>(value));
    return true;
  }
  if (text.size() < 3 || text.front() != '[' || text.back() != ']') {
    *error = "bad filter octet \"" + std::string(text) + "\"";
    return false;
  }
  std::string_view items = text.substr(1, text.size() - 2);
  while (true) {
    std::size_t semi = items.find(';');
    std::string_view item = items.substr(0, semi);
    std::size_t dots = item.find("..");
    int low = 0;
    int high = 0;
    bool ok = dots == std::string_view::npos
                  ? parse_octet(item, &low) && (high = low, true)
                  : parse_octet(item.substr(0, dots), &low) &&
                        parse_octet(item.substr(dots + 2), &high) && low <= high;
    if (!ok) {
      *error = "bad filter octet \"" + std::string(text) + "\" (want n, [n..m] or [a;b;c])";
      return false;
    }
    for (int v = low; v <= high; ++v) set->set(static_cast<std::size_t>(v));
    if (semi == std::string_view::npos) break;
    items.remove_prefix(semi + 1);
  }
  return true;
}

std::optional<DnsblFilter> parse_filter(std::string_view text, std::string* error) {
  // Split at the dots outside brackets: "127.0.[0..255].[1..3]" has four octets.
  std::vector<std::string_view> octets;
  std::size_t start = 0;
  bool in_brackets = false;
  for (std::size_t i = 0; i <= text.size(); ++i) {
    if (i == text.size() || (text[i] == '.' && !in_brackets)) {
      octets.push_back(text.substr(start, i - start));
      start = i + 1;
    } else if (text[i] == '[') {
      in_brackets = true;
    } else if (text[i] == ']') {
      in_brackets = false;
    }
  }
  if (octets.size() != 4) {
    *error = "filter \"" + std::string(text) + "\" needs four octets";
    return std::nullopt;
  }
  DnsblFilter filter;
  for (std::size_t i = 0; i < 4; ++i) {
    if (!parse_filter_octet(octets[i], &filter.octets[i], error)) return std::nullopt;
  }
  return filter;
}

// A domain name as a list zone: letters, digits, '-', '_' in non-empty labels of at most 63.
bool valid_zone(std::string_view zone) {
  if (zone.empty() || zone.size() > kMaxDomainName) return false;
  std::size_t label = 0;
  for (char c : zone) {
    if (c == '.') {
      if (label == 0) return false;
      label = 0;
      continue;
    }
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    if (!ok || ++label > 63) return false;
  }
  return label > 0;
}

std::string_view strip_dot(std::string_view name) {
  while (!name.empty() && name.back() == '.') name.remove_suffix(1);
  return name;
}

}  // namespace

bool DnsblFilter::matches(const protocol::IpAddress& answer) const {
  if (!answer.is_v4()) return false;
  for (std::size_t i = 0; i < 4; ++i) {
    if (!octets[i].test(answer.bytes[i])) return false;
  }
  return true;
}

std::optional<DnsblSite> parse_dnsbl_site(std::string_view text, std::string* error) {
  std::string scratch;
  if (!error) error = &scratch;
  DnsblSite site;
  site.text = std::string(text);
  std::string_view rest = text;
  std::size_t star = rest.rfind('*');
  if (star != std::string_view::npos) {
    if (!parse_int(rest.substr(star + 1), &site.weight)) {
      *error = "dnsbl site \"" + site.text + "\": bad weight \"" +
               std::string(rest.substr(star + 1)) + "\" (want an integer)";
      return std::nullopt;
    }
    rest = rest.substr(0, star);
  }
  std::size_t eq = rest.find('=');
  if (eq != std::string_view::npos) {
    std::string why;
    site.filter = parse_filter(rest.substr(eq + 1), &why);
    if (!site.filter) {
      *error = "dnsbl site \"" + site.text + "\": " + why;
      return std::nullopt;
    }
    rest = rest.substr(0, eq);
  }
  site.zone = protocol::ascii_lower(strip_dot(rest));
  if (!valid_zone(site.zone)) {
    *error = "dnsbl site \"" + site.text + "\": bad zone name \"" + std::string(rest) + "\"";
    return std::nullopt;
  }
  return site;
}

std::optional<std::vector<DnsblSite>> parse_dnsbl_sites(const std::vector<std::string>& texts,
                                                        std::vector<std::string>* errors) {
  std::vector<DnsblSite> sites;
  bool ok = true;
  for (const auto& text : texts) {
    std::string error;
    auto site = parse_dnsbl_site(text, &error);
    if (site) {
      sites.push_back(std::move(*site));
    } else {
      ok = false;
      if (errors) errors->push_back(std::move(error));
    }
  }
  if (!ok) return std::nullopt;
  return sites;
}

std::string dnsbl_query_name(const protocol::IpAddress& client, std::string_view zone) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string name;
  if (client.is_v4()) {
    for (int i = 3; i >= 0; --i) {
      name += std::to_string(client.bytes[static_cast<std::size_t>(i)]);
      name += '.';
    }
  } else {
    name.reserve(64 + zone.size());
    for (int i = 15; i >= 0; --i) {
      uint8_t b = client.bytes[static_cast<std::size_t>(i)];
      name += kHex[b & 0x0f];
      name += '.';
      name += kHex[b >> 4];
      name += '.';
    }
  }
  name += strip_dot(zone);
  return name;
}

std::string rhsbl_query_name(std::string_view domain, std::string_view zone) {
  domain = strip_dot(domain);
  zone = strip_dot(zone);
  if (domain.empty() || domain.size() + 1 + zone.size() > kMaxDomainName) return {};
  std::string name = protocol::ascii_lower(domain);
  name += '.';
  name += zone;
  return name;
}

std::string dnsbl_reply_name(std::string_view zone, const DnsblReplyMap& reply_map) {
  auto it = reply_map.find(protocol::ascii_lower(strip_dot(zone)));
  return it != reply_map.end() ? it->second : std::string(kUnnamedDnsbl);
}

bool filter_matches(const DnsblSite& site, const protocol::IpAddress& answer) {
  return !site.filter || site.filter->matches(answer);
}

bool is_dnsbl_error_answer(const protocol::IpAddress& answer) {
  if (!answer.is_v4()) return true;
  const auto& b = answer.bytes;
  if (b[0] != 127) return true;
  if (b[1] == 255 && b[2] == 255) return true;
  if (b[1] == 0 && b[2] == 0 && (b[3] == 1 || b[3] == 255)) return true;
  return false;
}

std::string_view to_string(DnsblOutcome outcome) {
  switch (outcome) {
    case DnsblOutcome::kNotListed:
      return "not listed";
    case DnsblOutcome::kListed:
      return "listed";
    case DnsblOutcome::kZoneError:
      return "zone error";
  }
  return "?";
}

DnsblOutcome DnsblScore::add(const DnsblSite& site, std::span<const protocol::IpAddress> answers) {
  for (const auto& answer : answers) {
    if (is_dnsbl_error_answer(answer)) {
      ++zone_errors_;
      return DnsblOutcome::kZoneError;
    }
  }
  DnsblHit hit;
  for (const auto& answer : answers) {
    if (filter_matches(site, answer)) hit.answers.push_back(answer);
  }
  if (hit.answers.empty()) return DnsblOutcome::kNotListed;
  hit.zone = site.zone;
  hit.site = site.text;
  hit.weight = site.weight;
  total_ += site.weight;
  hits_.push_back(std::move(hit));
  return DnsblOutcome::kListed;
}

DnsblDecision dnsbl_decision(int rank, int threshold, int allowlist_threshold, Action action) {
  if (rank <= allowlist_threshold) return DnsblDecision::kAllowlisted;
  if (rank < threshold || action == Action::kOff) return DnsblDecision::kPass;
  return DnsblDecision::kListed;
}

std::string dnsbl_reject_text(const protocol::IpAddress& client, const std::vector<DnsblHit>& hits,
                              std::string_view reply_text, const DnsblReplyMap& reply_map) {
  std::string zone;
  int weight = 0;
  for (const auto& hit : hits) {
    if (zone.empty() || hit.weight > weight) {
      zone = hit.zone;
      weight = hit.weight;
    }
  }
  std::string text = "Service unavailable; client [" + client.to_string() + "] blocked using " +
                     dnsbl_reply_name(zone, reply_map);
  bool names_zone = false;
  const std::string lower = protocol::ascii_lower(reply_text);
  for (const auto& hit : hits) names_zone = names_zone || lower.find(hit.zone) != std::string::npos;
  if (!reply_text.empty() && !names_zone) text += "; " + protocol::printable(reply_text, 200);
  return text;
}

DnsblReplies dnsbl_replies(Action action, std::string_view text) {
  DnsblReplies out;
  switch (verdict_for(action, true, "DNSBL").outcome) {
    case Outcome::kDrop:
      out.drop = "521 5.7.1 " + std::string(text);
      break;
    case Outcome::kEnforce:
      out.enforce = "550 5.7.1 " + std::string(text);
      break;
    default:
      break;
  }
  return out;
}

std::vector<Finding> dnsbl_findings(const protocol::IpAddress& client, std::string_view who,
                                    int rank, const std::vector<DnsblHit>& hits,
                                    std::string_view reply_text, int threshold,
                                    int allowlist_threshold, Action action,
                                    const DnsblReplyMap& reply_map) {
  std::vector<Finding> out;
  if (rank != 0) {
    std::string sites;
    for (const auto& hit : hits) {
      if (!sites.empty()) sites += ' ';
      sites.append(hit.site).append("(").append(std::to_string(hit.weight)).append(")");
    }
    Finding line;
    line.test = "dnsbl";
    line.outcome = "rank";
    line.word = "DNSBL";
    line.detail.append("DNSBL rank ")
        .append(std::to_string(rank))
        .append(" for ")
        .append(who)
        .append(": ")
        .append(sites);
    line.fields = {{"rank", std::to_string(rank)}};
    out.push_back(std::move(line));
  }
  Finding f;
  f.test = "dnsbl";
  switch (dnsbl_decision(rank, threshold, allowlist_threshold, action)) {
    case DnsblDecision::kAllowlisted:
      f.outcome = "allowlist";
      f.counted_as_test_result().then = Finding::Then::kAllowlist;
      break;
    case DnsblDecision::kPass:
      f.outcome = "pass";
      break;
    case DnsblDecision::kListed: {
      f.outcome = std::string(to_string(action));
      f.counted_as_test_result();
      // The zone is in the DNSBL line above; the client reads the admin's name for it
      // (dnsbl.reply_map), never the zone, which may hold a DQS key.
      auto replies = dnsbl_replies(action, dnsbl_reject_text(client, hits, reply_text, reply_map));
      if (!replies.drop.empty()) {
        f.closes(Finding::Then::kReplyAndClose, std::move(replies.drop));
      } else if (!replies.enforce.empty()) {
        f.then = Finding::Then::kEnforce;
        f.reply = std::move(replies.enforce);
      }
      break;
    }
  }
  out.push_back(std::move(f));
  return out;
}

}  // namespace mxscreen::checks
