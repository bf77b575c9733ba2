// proxy/ctl_state.cc: see ctl_state.h.
#include "proxy/ctl_state.h"

#include <charconv>
#include <memory>

#include "checks/greylist.h"
#include "checks/greylist_admin.h"
#include "checks/pass_cache.h"
#include "checks/store_keys.h"
#include "protocol/escape.h"
#include "proxy/control.h"
#include "proxy/greylisting.h"
#include "proxy/server.h"

namespace mxscreen::proxy {
namespace {

using Reply = std::function<void(const std::string&)>;

std::string store_error(StoreStatus status) {
  return "ERR state store " + std::string(to_string(status)) + "\n";
}

std::string bad(const std::string& what, const std::string& text) {
  return "ERR invalid " + what + " \"" + protocol::printable(text) + "\"\n";
}

// "<a@b>" -> "a@b"; "<>" stays the null sender's name.
std::string strip_brackets(const std::string& address) {
  if (address.size() > 2 && address.front() == '<' && address.back() == '>') {
    return address.substr(1, address.size() - 2);
  }
  return address;
}

std::string angle(const std::string& part) { return "<" + protocol::printable(part, 300) + ">"; }

std::string seconds_text(int64_t s) { return std::to_string(s) + "s"; }

// The first `n` words of the request, for an error message.
std::string first_words(const std::vector<std::string>& args, std::size_t n) {
  std::string out;
  for (std::size_t i = 0; i < n && i < args.size(); ++i) out += (i ? " " : "") + args[i];
  return protocol::printable(out);
}

// "1 triplet", "2 triplets".
std::string counted(std::size_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

constexpr const char* kGreylistUsage =
    "expected: greylist list [--client A] [--sender S] [--recipient R] [--limit N] "
    "[--cursor C] | greylist pass|drop (CLIENT SENDER RECIPIENT | KEY | --client A) | "
    "greylist report [--limit N]";
constexpr const char* kCacheUsage =
    "expected: cache show ADDRESS | cache drop ADDRESS | cache flush";

// "spf=example.org" / "ptr=example.net" as greylist_identity.h puts it in a key; "" for
// anything else.
std::string identity_part(const std::string& text) {
  for (std::string_view kind : {"spf=", "ptr="}) {
    if (text.size() > kind.size() && text.starts_with(kind)) {
      return std::string(kind) + checks::key_part(protocol::ascii_lower(text.substr(kind.size())));
    }
  }
  return "";
}

// A client argument: an address or network, or an identity; false + *error otherwise.
bool parse_client(const std::string& value, StateRequest& r, std::string* error) {
  r.identity = identity_part(value);
  if (!r.identity.empty()) return true;
  r.client = protocol::Cidr::parse(value);
  if (!r.client) {
    *error = bad("address", value);
    return false;
  }
  r.client_is_address = value.find('/') == std::string::npos;
  return true;
}

// Options "--name value" after the first two words; false + *error on anything else.
bool parse_options(const std::vector<std::string>& args, std::size_t from,
                   const std::vector<std::string>& allowed, StateRequest& r, std::size_t max_limit,
                   std::string* error) {
  for (std::size_t i = from; i < args.size(); i += 2) {
    const std::string& name = args[i];
    bool known = false;
    for (const auto& a : allowed) known = known || a == name;
    if (!known) {
      *error = "ERR unknown option \"" + protocol::printable(name) + "\" for " + args[0] + " " +
               args[1] + "\n";
      return false;
    }
    if (i + 1 >= args.size()) {
      *error = "ERR " + name + " needs a value\n";
      return false;
    }
    const std::string& value = args[i + 1];
    if (name == "--client") {
      if (!parse_client(value, r, error)) return false;
    } else if (name == "--sender") {
      r.sender = strip_brackets(value);
    } else if (name == "--recipient") {
      r.recipient = strip_brackets(value);
    } else if (name == "--limit") {
      std::size_t n = 0;
      auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
      if (ec != std::errc() || end != value.data() + value.size() || n == 0 || n > max_limit) {
        *error = "ERR invalid --limit \"" + protocol::printable(value) + "\" (1.." +
                 std::to_string(max_limit) + ")\n";
        return false;
      }
      r.limit = n;
    } else if (name == "--cursor") {
      auto cursor = decode_cursor(value);
      if (!cursor || cursor->empty()) {
        *error = bad("--cursor", value);
        return false;
      }
      r.cursor = *cursor;
    }
  }
  return true;
}

std::optional<StateRequest> parse_greylist(const std::vector<std::string>& args,
                                           std::string* error) {
  StateRequest r;
  const std::string what = args.size() > 1 ? args[1] : "";
  if (what == "list") {
    r.kind = StateRequest::Kind::kGreylistList;
    if (!parse_options(args, 2, {"--client", "--sender", "--recipient", "--limit", "--cursor"}, r,
                       StateRequest::kMaxPage, error)) {
      return std::nullopt;
    }
    return r;
  }
  if (what == "report") {
    r.kind = StateRequest::Kind::kGreylistReport;
    r.limit = StateRequest::kDefaultReport;
    if (!parse_options(args, 2, {"--limit"}, r, StateRequest::kMaxReport, error)) {
      return std::nullopt;
    }
    return r;
  }
  if (what == "pass" || what == "drop") {
    r.kind = what == "pass" ? StateRequest::Kind::kGreylistPass : StateRequest::Kind::kGreylistDrop;
    if (args.size() == 4 && args[2] == "--client") {
      if (!parse_options(args, 2, {"--client"}, r, 0, error)) return std::nullopt;
      return r;
    }
    if (args.size() == 3 && args[2].starts_with(checks::store_keys::kGreylist)) {
      if (!checks::parse_greylist_key(args[2])) {
        *error = bad("greylist key", args[2]);
        return std::nullopt;
      }
      r.key = args[2];
      return r;
    }
    if (args.size() == 5) {
      if (!parse_client(args[2], r, error)) return std::nullopt;
      r.sender = strip_brackets(args[3]);
      if (*r.sender == "<>") r.sender = "";
      r.recipient = strip_brackets(args[4]);
      if (r.recipient->empty() || *r.recipient == "<>") {
        *error = bad("recipient", args[4]);
        return std::nullopt;
      }
      return r;
    }
    *error = "ERR greylist " + what + " needs a triplet (CLIENT SENDER RECIPIENT, \"<>\" for " +
             "the null sender), its key (gl:...) or --client ADDRESS\n";
    return std::nullopt;
  }
  *error = "ERR unknown request \"" + first_words(args, 2) + "\"; " + kGreylistUsage + "\n";
  return std::nullopt;
}

std::optional<StateRequest> parse_cache(const std::vector<std::string>& args, std::string* error) {
  StateRequest r;
  const std::string what = args.size() > 1 ? args[1] : "";
  if (what == "flush" && args.size() == 2) {
    r.kind = StateRequest::Kind::kCacheFlush;
    return r;
  }
  if ((what == "show" || what == "drop") && args.size() == 3) {
    r.kind = what == "show" ? StateRequest::Kind::kCacheShow : StateRequest::Kind::kCacheDrop;
    auto address = protocol::IpAddress::parse(args[2]);
    if (!address) {
      *error = bad("address", args[2]);
      return std::nullopt;
    }
    r.client = protocol::Cidr{*address, address->is_v4() ? 32 : 128};
    r.client_is_address = true;
    return r;
  }
  *error = "ERR unknown request \"" + first_words(args, 2) + "\"; " + kCacheUsage + "\n";
  return std::nullopt;
}

// --- greylist --------------------------------------------------------------------------

std::string triplet_text(const checks::GreylistTriplet& t) {
  return t.network + " " + angle(t.sender) + " " + angle(t.recipient);
}

std::string listing_line(const checks::GreylistTriplet& t, const checks::GreylistRecord& record,
                         int64_t now, const checks::GreylistPolicy& policy) {
  std::string line = triplet_text(t) + " " +
                     std::string(checks::to_string(checks::triplet_state(record, now, policy))) +
                     " first=" + utc_time(record.first_seen) +
                     " last=" + utc_time(record.last_seen) +
                     " fcrdns=" + (record.fcrdns ? "yes" : "no");
  if (!record.passed && now - record.first_seen <= policy.retry_window.count()) {
    line += " passes_after=" + utc_time(record.first_seen + policy.delay.count());
  }
  return line + "\n";
}

// A walk over `prefix` that gathers up to `want` items `keep` accepts, following pages (at most
// kRounds of them, so that a sparse walk answers in time) and ends with the cursor to go on.
struct Gather {
  static constexpr int kRounds = 10;
  Store* store;
  std::string prefix;
  std::size_t want;
  Store::ScanFilter keep;
  std::function<void(StoreStatus, std::vector<Store::Item>, std::string next)> done;
  std::vector<Store::Item> items;
  int rounds = 0;

  static void next(const std::shared_ptr<Gather>& g, const std::string& cursor) {
    g->store->scan_page(
        g->prefix, cursor, g->want - g->items.size(), g->keep,
        [g](StoreStatus status, Store::ScanPage page) {
          if (status != StoreStatus::kOk) return g->done(status, {}, "");
          for (auto& item : page.items) g->items.push_back(std::move(item));
          if (!page.next.empty() && g->items.size() < g->want && ++g->rounds < kRounds) {
            return next(g, page.next);
          }
          g->done(StoreStatus::kOk, std::move(g->items), page.next);
        });
  }
};

void gather(Store& store, std::string prefix, std::string cursor, std::size_t want,
            Store::ScanFilter keep,
            std::function<void(StoreStatus, std::vector<Store::Item>, std::string)> done) {
  auto g = std::make_shared<Gather>(
      Gather{&store, std::move(prefix), want, std::move(keep), std::move(done), {}, 0});
  Gather::next(g, cursor);
}

std::string client_prefix(const StateRequest& r, const checks::GreylistPolicy& policy) {
  if (!r.identity.empty()) {
    return checks::store_keys::make(checks::store_keys::kGreylist, r.identity + ":");
  }
  return r.client ? checks::greylist_key_prefix(r.client->network, policy)
                  : std::string(checks::store_keys::kGreylist);
}

void greylist_list(const StateRequest& r, Server& server, Reply reply) {
  const auto policy = greylist_policy(server.runtime()->config->greylist);
  const auto filter = checks::make_greylist_filter(r.sender, r.recipient, policy);
  auto keep = [filter](std::string_view key, std::string_view value) {
    auto triplet = checks::parse_greylist_key(key);
    return triplet && checks::GreylistRecord::parse(value) &&
           checks::greylist_filter_matches(filter, *triplet);
  };
  gather(server.store(), client_prefix(r, policy), r.cursor, r.limit, keep,
         [reply, policy](StoreStatus status, std::vector<Store::Item> items, std::string next) {
           if (status == StoreStatus::kNotFound) return reply("ERR --cursor is not this store's\n");
           if (status != StoreStatus::kOk) return reply(store_error(status));
           const int64_t now = wall_clock_seconds();
           std::string text;
           for (const auto& item : items) {
             text += listing_line(*checks::parse_greylist_key(item.key),
                                  *checks::GreylistRecord::parse(item.value), now, policy);
           }
           text += "OK " + counted(items.size(), "triplet", "triplets");
           if (!next.empty()) text += "; more: --cursor " + encode_cursor(next);
           reply(text + "\n");
         });
}

// ctl greylist pass: the record says passed, written with put_if over what was read (a session
// deciding the same triplet meanwhile makes it read again).
void pass_key(Store& store, const std::string& key, int64_t ttl_seconds,
              std::function<void(StoreStatus)> done, int attempt = 1) {
  store.get(key, [&store, key, ttl_seconds, done, attempt](StoreStatus status, std::string value) {
    if (status == StoreStatus::kUnavailable) return done(status);
    std::optional<std::string> stored;
    if (status == StoreStatus::kOk) stored = value;
    store.put_if(key, stored, checks::admin_pass_record(stored, wall_clock_seconds()),
                 std::chrono::seconds(ttl_seconds),
                 [&store, key, ttl_seconds, done, attempt](StoreStatus put) {
                   if (put == StoreStatus::kConflict && attempt < 3) {
                     return pass_key(store, key, ttl_seconds, done, attempt + 1);
                   }
                   done(put);
                 });
  });
}

void greylist_edit_one(const StateRequest& r, Server& server, Reply reply) {
  const auto policy = greylist_policy(server.runtime()->config->greylist);
  const std::string key =
      !r.key.empty() ? r.key
      : !r.identity.empty()
          ? checks::triplet_key(r.identity, *r.sender, *r.recipient, policy)
          : checks::greylist_key(r.client->network, *r.sender, *r.recipient, policy);
  const std::string what = triplet_text(*checks::parse_greylist_key(key));
  if (r.kind == StateRequest::Kind::kGreylistDrop) {
    server.store().remove(key, [reply, what](StoreStatus status) {
      reply(status == StoreStatus::kOk ? "OK dropped " + what + "\n" : store_error(status));
    });
    return;
  }
  pass_key(server.store(), key, policy.max_age.count(), [reply, what](StoreStatus status) {
    reply(status == StoreStatus::kOk ? "OK passed " + what + "\n" : store_error(status));
  });
}

// A bulk edit: page after page of matching keys, `edit` on each, until the walk ends or
// kMaxEdits entries were changed.
struct BulkEdit {
  Store* store;
  std::string prefix;
  Store::ScanFilter keep;
  std::function<void(const std::string& key, std::function<void(StoreStatus)>)> edit;
  std::function<void(StoreStatus, std::size_t edited, bool more)> done;
  std::size_t edited = 0;

  static void page(const std::shared_ptr<BulkEdit>& b, const std::string& cursor) {
    constexpr std::size_t kPage = 100;
    std::size_t want = std::min(kPage, StateRequest::kMaxEdits - b->edited);
    b->store->scan_page(b->prefix, cursor, want, b->keep,
                        [b](StoreStatus status, Store::ScanPage p) {
                          if (status != StoreStatus::kOk) return b->done(status, b->edited, false);
                          auto left = std::make_shared<std::size_t>(p.items.size() + 1);
                          auto failed = std::make_shared<StoreStatus>(StoreStatus::kOk);
                          auto next = p.next;
                          auto answered = [b, left, failed, next](StoreStatus s) {
                            if (s != StoreStatus::kOk) *failed = s;
                            if (--*left > 0) return;
                            if (*failed != StoreStatus::kOk)
                              return b->done(*failed, b->edited, false);
                            if (next.empty()) return b->done(StoreStatus::kOk, b->edited, false);
                            if (b->edited >= StateRequest::kMaxEdits) {
                              return b->done(StoreStatus::kOk, b->edited, true);
                            }
                            page(b, next);
                          };
                          for (const auto& item : p.items) {
                            ++b->edited;
                            b->edit(item.key, answered);
                          }
                          answered(StoreStatus::kOk);
                        });
  }
};

void bulk_edit(Store& store, std::string prefix, Store::ScanFilter keep,
               std::function<void(const std::string&, std::function<void(StoreStatus)>)> edit,
               std::function<void(StoreStatus, std::size_t, bool)> done) {
  auto b = std::make_shared<BulkEdit>(
      BulkEdit{&store, std::move(prefix), std::move(keep), std::move(edit), std::move(done), 0});
  BulkEdit::page(b, "");
}

std::string more_text(bool more) {
  return more ? "; more remain (at most " + std::to_string(StateRequest::kMaxEdits) +
                    " per request): run it again"
              : "";
}

void greylist_edit_client(const StateRequest& r, Server& server, Reply reply) {
  const auto& config = server.runtime()->config->greylist;
  const auto policy = greylist_policy(config);
  Store& store = server.store();
  const bool pass = r.kind == StateRequest::Kind::kGreylistPass;
  const std::string prefix = client_prefix(r, policy);
  const std::string network =
      prefix.substr(checks::store_keys::kGreylist.size(),
                    prefix.size() - checks::store_keys::kGreylist.size() - 1);
  // The client's auto-allowlist count (postgrey's): a pass lets its next triplets through too
  // (when auto_allowlist_clients is on); a drop makes it a stranger again.
  const std::string allowlist_key =
      r.client_is_address ? checks::client_allowlist_key(r.client->network) : "";
  auto finish = [reply, pass, network, allowlist_key, &store, policy](
                    StoreStatus status, std::size_t edited, bool more) {
    if (status != StoreStatus::kOk) return reply(store_error(status));
    std::string text = (pass ? "OK passed " : "OK dropped ") +
                       counted(edited, "triplet", "triplets") + " of " + network;
    if (allowlist_key.empty()) return reply(text + more_text(more) + "\n");
    auto answer = [reply, text, more](const std::string& extra) {
      reply(text + extra + more_text(more) + "\n");
    };
    const std::string who = allowlist_key.substr(4);
    if (!pass) {
      store.remove(allowlist_key, [answer, who](StoreStatus s) {
        answer(s == StoreStatus::kOk ? "; client " + who + " no longer auto-allowlisted"
                                     : "; client allowlist count: state store error");
      });
    } else if (policy.auto_allowlist_clients > 0) {
      checks::ClientPassRecord record{policy.auto_allowlist_clients, wall_clock_seconds()};
      store.put(allowlist_key, record.to_string(), policy.max_age, [answer, who](StoreStatus s) {
        answer(s == StoreStatus::kOk ? "; client " + who + " auto-allowlisted"
                                     : "; client allowlist count: state store error");
      });
    } else {
      answer("");
    }
  };
  Store::ScanFilter keep;
  if (pass) {
    keep = [](std::string_view, std::string_view value) {
      auto record = checks::GreylistRecord::parse(value);
      return !record || !record->passed;
    };
  }
  bulk_edit(
      store, prefix, keep,
      [&store, pass, ttl = policy.max_age.count()](const std::string& key,
                                                   std::function<void(StoreStatus)> done) {
        if (pass) return pass_key(store, key, ttl, std::move(done));
        store.remove(key, std::move(done));
      },
      finish);
}

void greylist_report(const StateRequest& r, Server& server, Reply reply) {
  gather(server.store(), std::string(checks::store_keys::kNeverRetried), "",
         StateRequest::kReportCounters, {},
         [reply, limit = r.limit](StoreStatus status, std::vector<Store::Item> items,
                                  std::string next) {
           if (status != StoreStatus::kOk) return reply(store_error(status));
           std::vector<std::pair<std::string, std::string>> counters;
           counters.reserve(items.size());
           for (auto& item : items)
             counters.emplace_back(std::move(item.key), std::move(item.value));
           auto rows = checks::rank_never_retried(counters, limit);
           std::string text;
           for (const auto& row : rows) {
             text += std::to_string(row.total) + " fcrdns=" + std::to_string(row.fcrdns) + " " +
                     angle(row.sender) + "\n";
           }
           text += "OK top " + std::to_string(rows.size()) +
                   " senders by greylisted triplets never retried within retry_window (counts "
                   "kept " +
                   std::to_string(checks::kNeverRetriedReportTtl.count() / 86400) + "d)";
           if (!next.empty()) {
             text += "; only the first " + std::to_string(StateRequest::kReportCounters) +
                     " counters read";
           }
           reply(text + "\n");
         });
}

// --- cache -------------------------------------------------------------------------------

void cache_show(const StateRequest& r, Server& server, Reply reply) {
  const std::string who = r.client->network.to_string();
  server.store().get(checks::pass_cache_key(r.client->network), [reply, who](StoreStatus status,
                                                                             std::string value) {
    if (status == StoreStatus::kNotFound) return reply("OK " + who + " is not in the pass cache\n");
    if (status != StoreStatus::kOk) return reply(store_error(status));
    auto record = checks::parse_pass_record(value);
    if (!record) {
      return reply("OK " + who + " has an unreadable pass cache record (screened as new)\n");
    }
    const int64_t now = wall_clock_seconds();
    std::string text;
    for (std::size_t i = 0; i < checks::kCachedTests; ++i) {
      int64_t at = record->expires[i];
      if (at <= 0) continue;
      text += std::string(checks::to_string(static_cast<checks::CachedTest>(i))) +
              (at > now ? " passed until=" : " expired at=") + utc_time(at) +
              (at > now ? " left=" + seconds_text(at - now) : "") + "\n";
    }
    reply(text + "OK " + who + " cached until " + utc_time(record->latest()) + "\n");
  });
}

void cache_drop(const StateRequest& r, Server& server, Reply reply) {
  const std::string who = r.client->network.to_string();
  server.store().remove(checks::pass_cache_key(r.client->network), [reply, who](StoreStatus s) {
    reply(s == StoreStatus::kOk ? "OK dropped the pass cache entry of " + who + "\n"
                                : store_error(s));
  });
}

void cache_flush(Server& server, Reply reply) {
  Store& store = server.store();
  bulk_edit(
      store, std::string(checks::store_keys::kPassCache), {},
      [&store](const std::string& key, std::function<void(StoreStatus)> done) {
        store.remove(key, std::move(done));
      },
      [reply](StoreStatus status, std::size_t edited, bool more) {
        if (status != StoreStatus::kOk) return reply(store_error(status));
        reply("OK flushed " + counted(edited, "pass cache entry", "pass cache entries") +
              more_text(more) + "\n");
      });
}

}  // namespace

std::optional<StateRequest> parse_state_request(const std::vector<std::string>& args,
                                                std::string* error) {
  if (!args.empty() && args[0] == "greylist") return parse_greylist(args, error);
  if (!args.empty() && args[0] == "cache") return parse_cache(args, error);
  *error = "ERR not a greylist or cache request\n";
  return std::nullopt;
}

void run_state_request(const StateRequest& request, Server& server, Reply reply) {
  switch (request.kind) {
    case StateRequest::Kind::kGreylistList:
      return greylist_list(request, server, std::move(reply));
    case StateRequest::Kind::kGreylistPass:
    case StateRequest::Kind::kGreylistDrop:
      if (request.key.empty() && !request.sender) {
        return greylist_edit_client(request, server, std::move(reply));
      }
      return greylist_edit_one(request, server, std::move(reply));
    case StateRequest::Kind::kGreylistReport:
      return greylist_report(request, server, std::move(reply));
    case StateRequest::Kind::kCacheShow:
      return cache_show(request, server, std::move(reply));
    case StateRequest::Kind::kCacheDrop:
      return cache_drop(request, server, std::move(reply));
    case StateRequest::Kind::kCacheFlush:
      return cache_flush(server, std::move(reply));
  }
}

std::string encode_cursor(const std::string& cursor) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char c : cursor) {
    auto u = static_cast<unsigned char>(c);
    if (u > 0x20 && u < 0x7f && c != '%') {
      out += c;
    } else {
      out += '%';
      out += kHex[u >> 4];
      out += kHex[u & 0xf];
    }
  }
  return out;
}

std::optional<std::string> decode_cursor(const std::string& text) {
  return protocol::percent_decode(text);
}

}  // namespace mxscreen::proxy
