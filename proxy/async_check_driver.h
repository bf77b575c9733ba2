// proxy/async_check_driver.h: runs a checks::AsyncCheck (checks/async_check.h) on a worker's
// loop: each round's DNS questions go to the Resolver (its cache first, every query bounded by
// dns.timeout, identical queries in flight shared), all at once; when the last one is
// answered the check is asked again. The whole evaluation is bounded by `deadline`: when it
// passes, the lookups are dropped and `expired()` gives the finding. Never blocks; answers
// always come from the loop. Destroying the driver drops interest: no callback after that.
#pragma once

#include <uv.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "checks/async_check.h"
#include "proxy/dns.h"
#include "proxy/uv_handle.h"

namespace mxscreen::proxy {

DnsType to_dns_type(checks::DnsRecordType type);
checks::DnsReply to_check_reply(const DnsAnswer& answer);

template <typename Result>
class AsyncCheckDriver {
 public:
  using Done = std::function<void(const Result&)>;

  AsyncCheckDriver(uv_loop_t* loop, Resolver& resolver,
                   std::unique_ptr<checks::AsyncCheck<Result>> check,
                   std::chrono::milliseconds deadline, std::function<Result()> expired, Done done)
      : resolver_(resolver),
        check_(std::move(check)),
        expired_(std::move(expired)),
        done_(std::move(done)) {
    if (timer_.init<&AsyncCheckDriver::expire>(loop, this)) timer_.start(deadline);
  }
  AsyncCheckDriver(const AsyncCheckDriver&) = delete;
  AsyncCheckDriver& operator=(const AsyncCheckDriver&) = delete;

  // The first round: the check's first questions (or, rarely, its finding: then `done` runs
  // here, before start() returns).
  void start() { round(); }
  std::size_t lookups_in_flight() const { return pending_; }

 private:
  void round() {
    checks::Progress<Result> progress = check_->next();
    if (progress.done()) return finish(*progress.finding);
    lookups_.clear();
    pending_ = progress.questions.size();
    for (checks::DnsQuestion& q : progress.questions) {
      // The callback runs from the loop, after this round has asked everything.
      lookups_.push_back(
          resolver_.lookup(to_dns_type(q.type), q.name, [this, q](const DnsAnswer& answer) {
            check_->answer(q, to_check_reply(answer));
            if (--pending_ == 0) round();
          }));
    }
  }

  void expire() { finish(expired_()); }

  void finish(const Result& finding) {
    if (finished_) return;
    finished_ = true;
    timer_.close();
    lookups_.clear();
    pending_ = 0;
    Done done = std::move(done_);
    done(finding);  // may destroy this driver: nothing after it
  }

  Resolver& resolver_;
  std::unique_ptr<checks::AsyncCheck<Result>> check_;
  std::function<Result()> expired_;
  Done done_;
  Timer timer_;
  std::vector<DnsLookup> lookups_;
  std::size_t pending_ = 0;
  bool finished_ = false;
};

}  // namespace mxscreen::proxy
