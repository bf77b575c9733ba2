// proxy/ctl_state.h: the admin socket's requests on greylist and pass-cache state (issue 19),
// as OpenBSD's spamdb lists and edits its grey and white entries:
//   greylist list [--client A] [--sender S] [--recipient R] [--limit N] [--cursor C]
//     (A: an address or network, or spf=DOMAIN / ptr=DOMAIN for identity-keyed triplets)
//   greylist pass|drop (CLIENT SENDER RECIPIENT | KEY | --client A)
//   greylist report [--limit N]
//   cache show ADDRESS | cache drop ADDRESS | cache flush
// Every walk goes through Store::scan_page, so it is the same on memory, lmdb and redis and
// bounded: a listing answers one page (kMaxPage lines at most) and the cursor of the next; a
// bulk edit (--client, flush) changes at most kMaxEdits entries per request and says when more
// remain. The parser is apart from the socket so that the control request fuzzer reaches it.
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "protocol/address.h"

namespace mxscreen::proxy {

class Server;

struct StateRequest {
  enum class Kind {
    kGreylistList,
    kGreylistPass,
    kGreylistDrop,
    kGreylistReport,
    kCacheShow,
    kCacheDrop,
    kCacheFlush,
  };
  static constexpr std::size_t kDefaultPage = 100;
  static constexpr std::size_t kMaxPage = 1000;  // lines of one listing page
  static constexpr std::size_t kDefaultReport = 20;
  static constexpr std::size_t kMaxReport = 100;          // senders in one report
  static constexpr std::size_t kMaxEdits = 1000;          // entries one pass/drop/flush changes
  static constexpr std::size_t kReportCounters = 10'000;  // never-retried counters read

  Kind kind = Kind::kGreylistList;
  std::optional<protocol::Cidr> client;  // --client, a triplet's client, cache's ADDRESS
  bool client_is_address = false;        // --client named one address (not a network)
  // --client spf=DOMAIN | ptr=DOMAIN (or a triplet's CLIENT so written): the client part of
  // identity-keyed triplets (checks/greylist_identity.h), as the key holds it.
  std::string identity;
  std::optional<std::string> sender;  // a filter, or a triplet's sender ("<>" = null)
  std::optional<std::string> recipient;
  std::string key;  // a triplet named by its store key ("gl:...")
  std::size_t limit = kDefaultPage;
  std::string cursor;  // decoded
};

// `args` is the request line's words, args[0] being "greylist" or "cache". nullopt and *error
// ("ERR ...\n", a message for the admin) for a bad request.
std::optional<StateRequest> parse_state_request(const std::vector<std::string>& args,
                                                std::string* error);

// Answers `request` against the server's store and config; `reply` gets the whole answer (body
// lines, then "OK ..." or "ERR ...") once, on the loop thread.
void run_state_request(const StateRequest& request, Server& server,
                       std::function<void(const std::string&)> reply);

// The cursor as the admin sees and types it: one word of printable ASCII (other bytes and '%'
// as %XX), whatever bytes the engine's cursor holds.
std::string encode_cursor(const std::string& cursor);
std::optional<std::string> decode_cursor(const std::string& text);

}  // namespace mxscreen::proxy
