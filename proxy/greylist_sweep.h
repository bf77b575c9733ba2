// proxy/greylist_sweep.h: what greylisting costs, counted (issue 19). The first worker walks
// the greylist triplets every greylist.sweep_interval, in bounded pages, and counts each one
// that never retried within retry_window once: mxscreen_greylist_never_retried_total{fcrdns}
// and the per-sender counters behind `ctl greylist report`. Why a walk: a triplet that never
// retries is never met again by a session, so counting "when its record is next read" would
// miss exactly these; unretried records are kept greylist_policy().unretried_keep past the
// window so that a walk meets each one before it lapses. The record is claimed with put_if
// (checks::claim_never_retried) so that workers and hosts sharing Redis count it once.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "proxy/config.h"
#include "proxy/store.h"
#include "proxy/uv_handle.h"

namespace mxscreen::proxy {

class GreylistSweep {
 public:
  using ConfigSource = std::function<const Config&()>;  // the current config (reloads)
  // Triplets claimed per page. On lmdb each claim is two synced writes on the loop thread (the
  // claim and the report count), so a page is small and the next one waits for the loop to
  // serve I/O in between; on redis and memory the writes do not hold the loop.
  static constexpr std::size_t kLmdbPageSize = 8;
  static constexpr std::size_t kPageSize = 256;

  GreylistSweep(uv_loop_t* loop, Store& store, ConfigSource config);
  ~GreylistSweep();
  GreylistSweep(const GreylistSweep&) = delete;
  GreylistSweep& operator=(const GreylistSweep&) = delete;

  // The first walk starts after one sweep_interval.
  void start();
  void stop();

 private:
  void schedule(uint64_t delay_ms);
  void walk_page();
  void walk_done();

  uv_loop_t* loop_;
  Store& store_;
  ConfigSource config_;
  Timer timer_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  std::string cursor_;    // the walk's next page ("" = a new walk)
  uint64_t counted_ = 0;  // in this walk
  uint64_t counted_fcrdns_ = 0;
};

}  // namespace mxscreen::proxy
