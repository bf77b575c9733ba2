// proxy/store_lmdb.h: the lmdb engine (store.backend = "lmdb", the default): one file
// server.state_dir/mxscreen.lmdb, one write transaction per put/increment/remove, synced, so an
// acknowledged write survives kill -9. Values carry their absolute expiry; a loop timer sweeps
// expired keys in bounded batches. A full map fails open (kUnavailable), logged and counted.
#pragma once

#include <lmdb.h>
#include <uv.h>

#include <memory>
#include <string>

#include "proxy/store.h"
#include "proxy/uv_handle.h"

namespace mxscreen::proxy {

inline constexpr const char* kLmdbFileName = "mxscreen.lmdb";

struct LmdbEnv;  // one per file and process (LMDB forbids opening a file twice in a process)

class LmdbStore : public Store {
 public:
  // Opens (creating it and its directory if needed) the file at `path`. `loop` runs the sweep
  // timer (nullptr = no background sweep). nullptr + *error when the file cannot be opened.
  static std::unique_ptr<LmdbStore> open(uv_loop_t* loop, const std::string& path,
                                         const StoreLimits& limits, StoreClock clock,
                                         std::string* error);
  ~LmdbStore() override;

  void get(const std::string& key, GetCallback cb) override;
  void put(const std::string& key, const std::string& value, std::chrono::seconds ttl,
           StatusCallback cb = {}) override;
  void increment(const std::string& key, int64_t by, std::chrono::seconds ttl,
                 IncrementCallback cb = {}) override;
  void put_if(const std::string& key, const std::optional<std::string>& expected,
              const std::string& value, std::chrono::seconds ttl, StatusCallback cb = {}) override;
  void remove(const std::string& key, StatusCallback cb = {}) override;
  void scan_page(const std::string& prefix, const std::string& cursor, std::size_t max,
                 const ScanFilter& keep, PageCallback cb) override;
  std::string_view engine() const override { return "lmdb"; }

  // One sweep batch (at most StoreLimits::sweep_batch keys); true when the pass reached the
  // end of the database. The timer calls it; tests may too.
  bool sweep_step();
  // Keys in the file, expired or not.
  std::size_t entry_count() const;

 private:
  LmdbStore(uv_loop_t* loop, std::shared_ptr<LmdbEnv> env, const StoreLimits& limits,
            StoreClock clock);
  void on_sweep_timer();
  void schedule_sweep(uint64_t delay_ms);
  // Logs (once per episode) and counts a failed operation; returns kUnavailable.
  StoreStatus failed(std::string_view op, int rc);
  void succeeded();

  std::shared_ptr<LmdbEnv> env_;
  StoreLimits limits_;
  StoreClock clock_;
  Timer sweep_timer_;
  std::string sweep_resume_;  // the next key of an unfinished pass ("" = start over)
  int failing_rc_ = 0;        // the error of the current episode, 0 = healthy
};

}  // namespace mxscreen::proxy
