// checks/greylist.cc: see greylist.h. Record and key formats are plain text so that an admin
// can read them with `mdb_dump` or `redis-cli`.
#include "checks/greylist.h"

#include <algorithm>
#include <charconv>

#include "checks/sha256.h"
#include "checks/store_keys.h"
#include "protocol/escape.h"

namespace mxscreen::checks {
namespace {

using std::chrono::seconds;

bool starts_with_sep(std::string_view local, std::string_view prefix) {
  return local.size() > prefix.size() && local.substr(0, prefix.size()) == prefix &&
         (local[prefix.size()] == '=' || local[prefix.size()] == '+' ||
          local[prefix.size()] == '-');
}

// "HHH=TT=domain=local" (the SRS0 opaque part) -> local, domain.
bool parse_srs0_body(std::string_view body, std::string& local, std::string& domain) {
  size_t hash_end = body.find('=');
  if (hash_end == std::string_view::npos) return false;
  size_t tt_end = body.find('=', hash_end + 1);
  if (tt_end == std::string_view::npos) return false;
  size_t domain_end = body.find('=', tt_end + 1);
  if (domain_end == std::string_view::npos) return false;
  std::string_view orig_domain = body.substr(tt_end + 1, domain_end - tt_end - 1);
  std::string_view orig_local = body.substr(domain_end + 1);
  if (orig_domain.empty() || orig_local.empty()) return false;
  local = orig_local;
  domain = orig_domain;
  return true;
}

// Sender Rewriting Scheme (libsrs2's format):
//   SRS0=HHH=TT=orig-domain=orig-local@forwarder
//   SRS1=HHH=first-forwarder=<sep>HHH=TT=orig-domain=orig-local@forwarder2
void undo_srs(std::string& local, std::string& domain) {
  if (starts_with_sep(local, "srs0")) {
    parse_srs0_body(std::string_view(local).substr(5), local, domain);
  } else if (starts_with_sep(local, "srs1")) {
    std::string_view rest = std::string_view(local).substr(5);
    size_t hash_end = rest.find('=');
    if (hash_end == std::string_view::npos) return;
    size_t fwd_end = rest.find('=', hash_end + 1);
    if (fwd_end == std::string_view::npos || fwd_end + 2 > rest.size()) return;
    char sep = rest[fwd_end + 1];
    if (sep != '=' && sep != '+' && sep != '-') return;
    parse_srs0_body(rest.substr(fwd_end + 2), local, domain);
  }
}

// Bounce Address Tag Validation: "prvs=TAG=local" (and Microsoft's "msprvs1=TAG=local").
void undo_batv(std::string& local) {
  for (std::string_view prefix : {"prvs=", "msprvs1="}) {
    if (local.size() <= prefix.size() || local.compare(0, prefix.size(), prefix) != 0) continue;
    size_t tag_end = local.find('=', prefix.size());
    if (tag_end == std::string::npos || tag_end + 1 >= local.size()) return;
    local.erase(0, tag_end + 1);
    return;
  }
}

bool is_word_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

// postgrey: `$user =~ s/\+.*//; $user =~ s/\b\d+\b/#/g;`
void strip_verp(std::string& local) {
  size_t plus = local.find('+');
  if (plus != std::string::npos && plus > 0) local.erase(plus);
  std::string out;
  out.reserve(local.size());
  for (size_t i = 0; i < local.size();) {
    bool boundary_before = i == 0 || !is_word_char(local[i - 1]);
    if (boundary_before && local[i] >= '0' && local[i] <= '9') {
      size_t j = i;
      while (j < local.size() && local[j] >= '0' && local[j] <= '9') ++j;
      if (j == local.size() || !is_word_char(local[j])) {
        out += '#';
        i = j;
        continue;
      }
      out.append(local, i, j - i);
      i = j;
      continue;
    }
    out += local[i++];
  }
  local = std::move(out);
}

void append_escaped(std::string& out, std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (char c : text) {
    auto u = static_cast<unsigned char>(c);
    if (c == ':' || c == '%' || u <= 0x20 || u == 0x7f) {
      out += '%';
      out += kHex[u >> 4];
      out += kHex[u & 0xf];
    } else {
      out += c;
    }
  }
}

// "a:b[:c]" of decimal integers; false on anything else.
bool parse_fields(std::string_view text, int64_t* fields, size_t count) {
  const char* p = text.data();
  const char* end = text.data() + text.size();
  for (size_t i = 0; i < count; ++i) {
    if (i > 0) {
      if (p == end || *p != ':') return false;
      ++p;
    }
    auto [next, ec] = std::from_chars(p, end, fields[i]);
    if (ec != std::errc() || next == p) return false;
    p = next;
  }
  return p == end;
}

seconds at_least_one(int64_t s) { return seconds(std::max<int64_t>(s, 1)); }

GreylistResult first_sight(int64_t now, const GreylistPolicy& policy, bool fcrdns) {
  return {GreylistOutcome::kNew, GreylistRecord{now, now, false, fcrdns, false}.to_string(),
          at_least_one(policy.retry_window.count() + policy.unretried_keep.count()), policy.delay};
}

}  // namespace

std::string greylist_reply(std::string_view recipient, std::string_view reply_text) {
  return "450 4.2.0 <" + protocol::printable(recipient, 255) +
         ">: Recipient address rejected: " + std::string(reply_text);
}

std::string_view to_string(GreylistOutcome outcome) {
  switch (outcome) {
    case GreylistOutcome::kNew:
      return "new";
    case GreylistOutcome::kEarlyRetry:
      return "early retry";
    case GreylistOutcome::kPassed:
      return "passed";
    case GreylistOutcome::kAllowlistedTriplet:
      return "allowlisted";
  }
  return "new";
}

std::string normalize_sender(std::string_view sender, bool strip_tags) {
  std::string address = protocol::ascii_lower(sender);
  if (!strip_tags) return address;
  size_t at = address.rfind('@');
  if (at == std::string::npos || at == 0) return address;
  std::string local = address.substr(0, at);
  std::string domain = address.substr(at + 1);
  undo_srs(local, domain);
  undo_batv(local);
  strip_verp(local);
  return local + "@" + domain;
}

namespace {

// One escaped address of the key, cut to kGreylistKeyPartLimit: a longer one becomes its first
// kGreylistKeyPrefix bytes, '~' and the SHA-256 of the whole escaped part. Different addresses
// stay different keys; the client no longer chooses how much the store holds.
void append_bounded(std::string& key, std::string_view address) {
  std::string part;
  append_escaped(part, address);
  if (part.size() <= kGreylistKeyPartLimit) {
    key += part;
    return;
  }
  key.append(part, 0, kGreylistKeyPrefix);
  key += '~';
  key += sha256_hex(part);
}

}  // namespace

std::string greylist_key_sender(std::string_view sender, const GreylistPolicy& policy) {
  std::string part;
  append_bounded(part, normalize_sender(sender, policy.strip_sender_tags));
  return part;
}

std::string greylist_key_recipient(std::string_view recipient) {
  std::string part;
  append_bounded(part, protocol::ascii_lower(recipient));
  return part;
}

std::string greylist_key_prefix(const protocol::IpAddress& client, const GreylistPolicy& policy) {
  int prefix = client.is_v4() ? policy.ipv4_prefix : policy.ipv6_prefix;
  std::string key(store_keys::kGreylist);
  key += protocol::mask_address(client, prefix).to_string();
  key += '/';
  key += std::to_string(prefix);
  key += ':';
  return key;
}

std::string greylist_key(const protocol::IpAddress& client, std::string_view sender,
                         std::string_view recipient, const GreylistPolicy& policy) {
  std::string key = greylist_key_prefix(client, policy);
  key += greylist_key_sender(sender, policy);
  key += ':';
  key += greylist_key_recipient(recipient);
  return key;
}

std::string triplet_key(std::string_view client_part, std::string_view sender,
                        std::string_view recipient, const GreylistPolicy& policy) {
  std::string key(store_keys::kGreylist);
  key += client_part;
  key += ':';
  key += greylist_key_sender(sender, policy);
  key += ':';
  key += greylist_key_recipient(recipient);
  return key;
}

std::string key_part(std::string_view text) {
  std::string part;
  append_bounded(part, text);
  return part;
}

std::string GreylistRecord::to_string() const {
  auto flag = [](bool b) { return b ? ":1" : ":0"; };
  return std::to_string(first_seen) + ":" + std::to_string(last_seen) + flag(passed) +
         flag(fcrdns) + flag(counted);
}

std::optional<GreylistRecord> GreylistRecord::parse(std::string_view text) {
  int64_t f[5] = {0, 0, 0, 0, 0};
  if (!parse_fields(text, f, 5) && !parse_fields(text, f, 3)) return std::nullopt;
  for (int i = 2; i < 5; ++i) {
    if (f[i] != 0 && f[i] != 1) return std::nullopt;
  }
  return GreylistRecord{f[0], f[1], f[2] == 1, f[3] == 1, f[4] == 1};
}

GreylistResult decide(std::optional<std::string_view> stored, int64_t now,
                      const GreylistPolicy& policy, bool fcrdns) {
  std::optional<GreylistRecord> record;
  if (stored) record = GreylistRecord::parse(*stored);
  // No record, a malformed one, or one from the future (the clock went back): start over.
  if (!record || record->first_seen > now) return first_sight(now, policy, fcrdns);
  // The FCrDNS fact of the first try stays with the triplet.
  GreylistRecord next{record->first_seen, now, record->passed, record->fcrdns, false};

  if (record->passed) {
    // postgrey --max-age counts from the last time the triplet was seen.
    if (now - record->last_seen > policy.max_age.count()) return first_sight(now, policy, fcrdns);
    return {GreylistOutcome::kAllowlistedTriplet, next.to_string(),
            at_least_one(policy.max_age.count()), seconds(0)};
  }

  int64_t age = now - record->first_seen;
  // postgrey --retry-window counts from the first sighting; early retries do not extend it.
  if (age > policy.retry_window.count()) return first_sight(now, policy, fcrdns);
  if (age < policy.delay.count()) {
    return {GreylistOutcome::kEarlyRetry, next.to_string(),
            at_least_one(policy.retry_window.count() - age + policy.unretried_keep.count()),
            seconds(policy.delay.count() - age)};
  }
  next.passed = true;
  return {GreylistOutcome::kPassed, next.to_string(), at_least_one(policy.max_age.count()),
          seconds(0)};
}

std::string client_allowlist_key(const protocol::IpAddress& client) {
  return store_keys::make(store_keys::kAutoAllow, client.to_string());
}

std::string ClientPassRecord::to_string() const {
  return std::to_string(count) + ":" + std::to_string(last_counted);
}

std::optional<ClientPassRecord> ClientPassRecord::parse(std::string_view text) {
  int64_t f[2];
  if (!parse_fields(text, f, 2) || f[0] < 0) return std::nullopt;
  return ClientPassRecord{f[0], f[1]};
}

bool should_count_client_pass(std::optional<int64_t> last_counted, int64_t now) {
  // postgrey: `$now >= $cawl_last + 3600 or $cawl_last > $now`.
  return !last_counted || now >= *last_counted + kClientCountInterval.count() ||
         *last_counted > now;
}

bool client_allowlisted(std::optional<std::string_view> stored, const GreylistPolicy& policy) {
  if (policy.auto_allowlist_clients <= 0 || !stored) return false;
  auto record = ClientPassRecord::parse(*stored);
  return record && record->count >= policy.auto_allowlist_clients;
}

std::optional<std::string> count_client_pass(std::optional<std::string_view> stored, int64_t now,
                                             const GreylistPolicy& policy) {
  if (policy.auto_allowlist_clients <= 0) return std::nullopt;
  std::optional<ClientPassRecord> record;
  if (stored) record = ClientPassRecord::parse(*stored);
  if (!record) return ClientPassRecord{1, now}.to_string();
  if (!should_count_client_pass(record->last_counted, now)) return std::nullopt;
  return ClientPassRecord{record->count + 1, now}.to_string();
}

Finding greylist_finding(const GreylistAnswer& answer, std::string_view who,
                         std::string_view sender, std::string_view recipient,
                         std::string_view reply_text) {
  Finding f;
  f.test = "greylist";
  f.word = "GREYLIST";
  f.counter = "mxscreen_greylist_total";
  // The outcome words and key kinds are label-safe words of greylisting's own.
  auto count = [&f, &answer](std::string_view outcome) {
    f.labels.append("outcome=\"")
        .append(outcome)
        .append("\",key=\"")
        .append(answer.key)
        .append("\"");
  };
  if (answer.verdict == GreylistAnswer::Verdict::kStoreUnavailable) {
    f.outcome = "store_unavailable";
    f.warning = true;
    f.detail.append("GREYLIST skipped for ")
        .append(who)
        .append(": state store unavailable; failing open");
    count(f.outcome);
    return f;
  }
  f.outcome = answer.outcome;
  f.detail.append("GREYLIST ")
      .append(answer.outcome)
      .append(" ")
      .append(who)
      .append(" from=<")
      .append(protocol::printable(sender, 255))
      .append("> to=<")
      .append(protocol::printable(recipient, 255))
      .append(">")
      .append(answer.key_text);
  if (answer.verdict == GreylistAnswer::Verdict::kDefer) {
    f.detail.append(" retry in ").append(std::to_string(answer.wait.count())).append("s");
    f.reply = greylist_reply(recipient, reply_text);
    f.then = Finding::Then::kDeferRcpt;
  } else {
    f.detail.append(protocol::printable(answer.detail, 300));
  }
  f.detail.append(answer.gate);
  f.fields = {{"outcome", answer.outcome}, {"key", answer.key}};
  count(answer.outcome);
  return f;
}

Finding greylist_policy_finding(const GreylistAnswer& answer, std::string_view who,
                                std::string_view reply_text, bool x_greylist_header,
                                std::string_view hostname) {
  Finding f;
  f.test = "greylist";
  f.word = "GREYLIST";
  f.reply = "DUNNO";
  if (answer.verdict == GreylistAnswer::Verdict::kStoreUnavailable) {
    f.outcome = "store_unavailable";
    f.warning = true;
    f.client_field = false;
    f.detail.append("GREYLIST skipped for ")
        .append(who)
        .append(" (policy): state store unavailable; failing open");
    return f;
  }
  f.outcome = answer.outcome;
  f.detail.append("GREYLIST ")
      .append(answer.outcome)
      .append(" ")
      .append(who)
      .append(answer.key_text);
  if (answer.verdict == GreylistAnswer::Verdict::kDefer) {
    f.detail.append(" retry in ").append(std::to_string(answer.wait.count())).append("s");
    f.reply = "DEFER_IF_PERMIT 4.2.0 " + std::string(reply_text);
    f.then = Finding::Then::kDeferRcpt;
  } else {
    f.detail.append(protocol::printable(answer.detail, 300));
    if (x_greylist_header && answer.outcome == "passed") {
      // postgrey's header on a message that was held back.
      f.reply = "PREPEND X-Greylist: delayed " + std::to_string(answer.delayed.count()) +
                " seconds by mxscreen at " + std::string(hostname);
    }
  }
  f.detail.append(answer.gate).append(" (policy)");
  f.fields = {{"outcome", answer.outcome}, {"side", "policy"}, {"key", answer.key}};
  return f;
}

}  // namespace mxscreen::checks
