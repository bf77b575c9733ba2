// checks/greylist.h: the greylist decision, postgrey's semantics. Given the stored record of a
// triplet (client network, normalised sender, recipient) and the time, it says new / early
// retry / passed / allowlisted and hands back the record and TTL to store. No I/O, no clock.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "checks/finding.h"
#include "protocol/address.h"

namespace mxscreen::checks {

// The [greylist] section as the decision needs it (the proxy maps config to it).
struct GreylistPolicy {
  std::chrono::seconds delay = std::chrono::minutes(5);        // postgrey --delay
  std::chrono::seconds retry_window = std::chrono::hours(48);  // postgrey --retry-window
  std::chrono::seconds max_age = std::chrono::days(35);        // postgrey --max-age
  int ipv4_prefix = 24;
  int ipv6_prefix = 64;
  int auto_allowlist_clients = 5;  // postgrey --auto-whitelist-clients; 0 = off
  bool strip_sender_tags = true;   // SRS, BATV, "+tag" and VERP numbers
  // A triplet that never passed is kept this long past retry_window, so that the sweep
  // (proxy/greylist_sweep.h) meets it and counts it as never retried before it expires.
  std::chrono::seconds unretried_keep{0};
};

enum class GreylistOutcome : uint8_t {
  kNew,                 // first sight (or the old record lapsed): 450
  kEarlyRetry,          // seen, but before `delay` has passed: 450
  kPassed,              // retried after `delay` within `retry_window`: pass, triplet allowlisted
  kAllowlistedTriplet,  // passed before and seen within `max_age`: pass
};

// What greylisting a triplet answered (proxy/greylisting.h works it out against the store).
struct GreylistAnswer {
  enum class Verdict { kPass, kDefer, kStoreUnavailable };
  Verdict verdict = Verdict::kPass;
  // "new", "early retry", "passed", "allowlisted": the word on the GREYLIST log line.
  std::string outcome;
  std::string detail;  // " by client_allowlist_file: <why>" and the like, for the log
  bool recipient_allowlisted = false;  // the recipient allowlist file let it through
  std::chrono::seconds wait{0};        // kDefer: until a retry can pass
  std::chrono::seconds delayed{0};     // "passed": how long the triplet was held back
  // The identity kind of the triplet's key: "spf", "ptr", "net"; "none" when no triplet was
  // keyed (allowlist files, an auto-allowlisted client, the nolisting pass).
  std::string key = "net";
  std::string key_text;  // " key=ptr:example.net", for the log; "" when key is "none"
  // greylist.only_if: " (only_if: no_fcrdns: ptr=none fcrdns=no ...)", the facts that made
  // the decision, for the log; "" when the gate is off.
  std::string gate;

  bool passed() const { return verdict != Verdict::kDefer; }
};

// The 450 a deferred RCPT gets (greylist.reply_text after Postfix's "Recipient address
// rejected:"), no CRLF; the policy service defers with the same reply_text.
std::string greylist_reply(std::string_view recipient, std::string_view reply_text);

// "new", "early retry", "passed", "allowlisted": the reason on the GREYLIST log line.
std::string_view to_string(GreylistOutcome outcome);

struct GreylistResult {
  GreylistOutcome outcome = GreylistOutcome::kNew;
  std::string new_record;        // store this under the triplet key...
  std::chrono::seconds ttl{0};   // ...for this long (always >= 1 s)
  std::chrono::seconds wait{0};  // kNew/kEarlyRetry: how long until a retry can pass

  bool passed() const {
    return outcome == GreylistOutcome::kPassed || outcome == GreylistOutcome::kAllowlistedTriplet;
  }
};

// The sender as greylisting compares it: lower case; with `strip_tags`, SRS0/SRS1 addresses
// turned back into the original sender, BATV ("prvs=tag=") removed, a "+tag" extension
// removed and number-only words of the local part replaced by '#' (postgrey's VERP rule), so
// that one real sender is one triplet. The null sender stays "".
std::string normalize_sender(std::string_view sender, bool strip_tags);

// "gl:<network>/<prefix>:<sender>:<recipient>" with the client's network (policy prefixes),
// the normalised sender and the lower-cased recipient. ':' and '%' inside the addresses are
// %-escaped so that the key is unambiguous. An escaped address longer than
// kGreylistKeyPartLimit bytes (RFC 5321 4.5.3.1.3 allows a path of 256) is stored as its first
// kGreylistKeyPrefix bytes, '~' and the SHA-256 (hex) of the whole, so that a key is at most
// about 450 bytes whatever the client sends (under LMDB's 511-byte key limit).
inline constexpr std::size_t kGreylistKeyPartLimit = 200;
inline constexpr std::size_t kGreylistKeyPrefix = 64;
std::string greylist_key(const protocol::IpAddress& client, std::string_view sender,
                         std::string_view recipient, const GreylistPolicy& policy);

// "gl:<client_part>:<sender>:<recipient>" as greylist_key() builds it, for a client part the
// caller made (the network above, or an identity of checks/greylist_identity.h); the client
// part goes in as is.
std::string triplet_key(std::string_view client_part, std::string_view sender,
                        std::string_view recipient, const GreylistPolicy& policy);
// `text` %-escaped and bounded as the addresses of a key are, for a client part.
std::string key_part(std::string_view text);

// The triplet record: first seen, last seen (epoch seconds), whether it passed, whether the
// client had forward-confirmed rDNS at the first try, and whether the sweep counted it as never
// retried. The triplet itself is the key (greylist_admin.h reads it back from there).
struct GreylistRecord {
  int64_t first_seen = 0;
  int64_t last_seen = 0;
  bool passed = false;
  bool fcrdns = false;
  bool counted = false;

  // "first:last:passed:fcrdns:counted", e.g. "1700000000:1700000300:1:1:0".
  std::string to_string() const;
  // nullopt for anything malformed (the caller then treats the triplet as new). The
  // "first:last:passed" records of earlier versions read with fcrdns and counted false.
  static std::optional<GreylistRecord> parse(std::string_view text);
};

// The decision for one RCPT. `record` is the stored value (nullopt = not found); `fcrdns`, the
// client's forward-confirmed rDNS now, is written into a new record.
GreylistResult decide(std::optional<std::string_view> record, int64_t now_seconds,
                      const GreylistPolicy& policy, bool fcrdns = false);

// The escaped, bounded sender and recipient parts of greylist_key, and the "gl:<network>/<n>:"
// prefix every triplet of one client network starts with.
std::string greylist_key_sender(std::string_view sender, const GreylistPolicy& policy);
std::string greylist_key_recipient(std::string_view recipient);
std::string greylist_key_prefix(const protocol::IpAddress& client, const GreylistPolicy& policy);

// --- auto-allowlist of clients (postgrey --auto-whitelist-clients) ---

// "gla:<client address>".
std::string client_allowlist_key(const protocol::IpAddress& client);

struct ClientPassRecord {
  int64_t count = 0;         // triplet passes counted for this client
  int64_t last_counted = 0;  // epoch seconds of the last counted pass

  std::string to_string() const;  // "count:last_counted"
  static std::optional<ClientPassRecord> parse(std::string_view text);
};

// Passes are counted at most once per hour per client, as postgrey does (a clock that went
// backwards counts too, so a bad clock cannot freeze the counter).
inline constexpr std::chrono::seconds kClientCountInterval = std::chrono::hours(1);
bool should_count_client_pass(std::optional<int64_t> last_counted, int64_t now_seconds);

// True when the client's record reaches policy.auto_allowlist_clients (never when that is 0).
bool client_allowlisted(std::optional<std::string_view> record, const GreylistPolicy& policy);

// After a passing triplet: the client record to store (TTL = policy.max_age), or nullopt when
// this pass is not counted (counted less than an hour ago, or auto-allowlisting is off).
std::optional<std::string> count_client_pass(std::optional<std::string_view> record,
                                             int64_t now_seconds, const GreylistPolicy& policy);

// The RCPT's greylisting in the dialogue (`who` is "[ip]:port"): the GREYLIST line and
// mxscreen_greylist_total by outcome and key; a deferred triplet's RCPT gets greylist_reply
// (kDeferRcpt); a store that failed is a warning, and the RCPT goes on (fail open).
Finding greylist_finding(const GreylistAnswer& answer, std::string_view who,
                         std::string_view sender, std::string_view recipient,
                         std::string_view reply_text);
// The same answer on the policy service (`who` is the client and envelope): the GREYLIST line
// ending "(policy)" and, as `reply`, the Postfix access(5) action: DEFER_IF_PERMIT with
// reply_text (Postfix makes it "450 4.2.0 <rcpt>: Recipient address rejected: <text>"),
// postgrey's "PREPEND X-Greylist: delayed N seconds by mxscreen at <hostname>" for a triplet
// that passed after waiting when `x_greylist_header`, else DUNNO. Not counted here: the service
// counts every answer in mxscreen_policy_verdicts_total.
Finding greylist_policy_finding(const GreylistAnswer& answer, std::string_view who,
                                std::string_view reply_text, bool x_greylist_header,
                                std::string_view hostname);

}  // namespace mxscreen::checks
