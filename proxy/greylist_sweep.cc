// proxy/greylist_sweep.cc: see greylist_sweep.h.
#include "proxy/greylist_sweep.h"

#include <algorithm>
#include <vector>

#include "checks/greylist_admin.h"
#include "checks/store_keys.h"
#include "proxy/greylisting.h"
#include "proxy/log.h"
#include "proxy/metrics.h"

namespace mxscreen::proxy {

GreylistSweep::GreylistSweep(uv_loop_t* loop, Store& store, ConfigSource config)
    : loop_(loop), store_(store), config_(std::move(config)) {
  metrics().describe("mxscreen_greylist_never_retried_total", "counter",
                     "Greylisted triplets that never retried within greylist.retry_window, by "
                     "whether the client had forward-confirmed rDNS at its first try.");
  // Both series from the start: a rate() alert needs them before the first one counts.
  metrics().inc("mxscreen_greylist_never_retried_total", "fcrdns=\"yes\"", 0);
  metrics().inc("mxscreen_greylist_never_retried_total", "fcrdns=\"no\"", 0);
}

GreylistSweep::~GreylistSweep() { stop(); }

void GreylistSweep::start() {
  // The sweep alone does not keep the loop running.
  if (!timer_.init<&GreylistSweep::walk_page>(loop_, this, false)) return;
  schedule(static_cast<uint64_t>(config_().greylist.sweep_interval.count()));
}

void GreylistSweep::stop() {
  *alive_ = false;
  timer_.close();
}

void GreylistSweep::schedule(uint64_t delay_ms) {
  if (!timer_ || !*alive_) return;
  timer_.start(std::chrono::milliseconds(std::max<uint64_t>(delay_ms, 1)));
}

void GreylistSweep::walk_page() {
  const Config& config = config_();
  if (!config.greylist.enabled) return walk_done();
  const auto policy = greylist_policy(config.greylist);
  const int64_t now = wall_clock_seconds();
  auto keep = [now, policy](std::string_view, std::string_view value) {
    return checks::claim_never_retried(value, now, policy).has_value();
  };
  auto alive = alive_;
  store_.scan_page(
      std::string(checks::store_keys::kGreylist), cursor_,
      store_.engine() == "lmdb" ? kLmdbPageSize : kPageSize, keep,
      [this, alive, now, policy](StoreStatus status, Store::ScanPage page) {
        if (!*alive) return;
        if (status != StoreStatus::kOk) {
          // The store is down (logged and counted by the engine): try again next interval.
          cursor_.clear();
          return walk_done();
        }
        cursor_ = page.next;
        auto waiting = std::make_shared<std::size_t>(page.items.size() + 1);
        auto answered = [this, alive, waiting] {
          if (!*alive || --*waiting > 0) return;
          // The next page after the loop has served I/O (and no recursion on lmdb/memory).
          if (cursor_.empty()) return walk_done();
          schedule(1);
        };
        for (const auto& item : page.items) {
          auto claim = checks::claim_never_retried(item.value, now, policy);
          auto triplet = checks::parse_greylist_key(item.key);
          if (!claim) {
            answered();
            continue;
          }
          store_.put_if(item.key, item.value, claim->new_record, claim->ttl,
                        [this, alive, answered, fcrdns = claim->record.fcrdns,
                         sender = triplet ? triplet->sender : std::string("?")](StoreStatus put) {
                          if (*alive && put == StoreStatus::kOk) {
                            metrics().inc("mxscreen_greylist_never_retried_total",
                                          fcrdns ? "fcrdns=\"yes\"" : "fcrdns=\"no\"");
                            ++counted_;
                            if (fcrdns) ++counted_fcrdns_;
                            store_.increment(checks::never_retried_report_key(fcrdns, sender), 1,
                                             checks::kNeverRetriedReportTtl);
                          }
                          answered();
                        });
        }
        answered();
      });
}

void GreylistSweep::walk_done() {
  if (counted_ > 0) {
    Log::event(
        LogLevel::kInfo, "GREYLIST",
        "GREYLIST never retried: " + std::to_string(counted_) + " triplets (" +
            std::to_string(counted_fcrdns_) +
            " from FCrDNS clients) lapsed without a retry within retry_window",
        {{"never_retried", std::to_string(counted_)}, {"fcrdns", std::to_string(counted_fcrdns_)}});
  }
  counted_ = counted_fcrdns_ = 0;
  cursor_.clear();
  schedule(static_cast<uint64_t>(config_().greylist.sweep_interval.count()));
}

}  // namespace mxscreen::proxy
