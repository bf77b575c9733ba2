// proxy/store_lmdb.cc: see store_lmdb.h. On disk a value is 8 bytes of expiry (epoch seconds,
// native byte order, 0 = never) followed by the value bytes. Keys longer than LMDB's key limit
// (511 bytes) are stored as a prefix plus a 64-bit FNV-1a hash of the whole key.
#include "proxy/store_lmdb.h"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>

#include "proxy/log.h"
#include "proxy/metrics.h"

namespace mxscreen::proxy {

struct LmdbEnv {
  MDB_env* env = nullptr;
  MDB_dbi dbi = 0;
  std::string path;
  std::size_t map_size = 0;
  std::size_t max_key = 0;

  ~LmdbEnv() {
    if (env) mdb_env_close(env);
  }
};

namespace {

constexpr std::size_t kExpirySize = sizeof(int64_t);

std::string lmdb_error(const std::string& path, std::string_view what, int rc) {
  return "lmdb " + path + ": " + std::string(what) + ": " + mdb_strerror(rc);
}

// The file is opened once per process and shared by every store on it (one per worker):
// LMDB forbids a second mdb_env_open of the same file in one process.
std::shared_ptr<LmdbEnv> open_env(const std::string& path, std::size_t map_size,
                                  std::string* error) {
  static std::mutex mutex;
  static std::map<std::string, std::weak_ptr<LmdbEnv>> envs;
  std::lock_guard lock(mutex);
  if (auto shared = envs[path].lock()) return shared;

  std::error_code ec;
  auto dir = std::filesystem::path(path).parent_path();
  if (!dir.empty()) std::filesystem::create_directories(dir, ec);
  auto env = std::make_shared<LmdbEnv>();
  env->path = path;
  env->map_size = map_size;
  auto fail = [&](std::string_view what, int rc) -> std::shared_ptr<LmdbEnv> {
    if (error) *error = lmdb_error(path, what, rc);
    return nullptr;
  };
  int rc = mdb_env_create(&env->env);
  if (rc != 0) return fail("cannot create environment", rc);
  if ((rc = mdb_env_set_mapsize(env->env, map_size)) != 0) return fail("map size", rc);
  // MDB_NOTLS: read transactions belong to the store, not the thread (several stores, one
  // thread in tests). Default sync: a commit is on disk before the callback runs.
  rc = mdb_env_open(env->env, path.c_str(), MDB_NOSUBDIR | MDB_NOTLS, 0600);
  if (rc != 0) return fail("cannot open", rc);
  int dead = 0;
  mdb_reader_check(env->env, &dead);  // reader slots of a process that died (kill -9)
  MDB_txn* txn = nullptr;
  if ((rc = mdb_txn_begin(env->env, nullptr, 0, &txn)) != 0) return fail("cannot begin", rc);
  if ((rc = mdb_dbi_open(txn, nullptr, 0, &env->dbi)) != 0) {
    mdb_txn_abort(txn);
    return fail("cannot open database", rc);
  }
  if ((rc = mdb_txn_commit(txn)) != 0) return fail("cannot commit", rc);
  env->max_key = static_cast<std::size_t>(mdb_env_get_maxkeysize(env->env));
  envs[path] = env;
  return env;
}

// Aborts on scope exit unless committed.
class Txn {
 public:
  Txn(MDB_env* env, unsigned flags) { rc_ = mdb_txn_begin(env, nullptr, flags, &txn_); }
  ~Txn() {
    if (txn_) mdb_txn_abort(txn_);
  }
  Txn(const Txn&) = delete;
  Txn& operator=(const Txn&) = delete;
  [[nodiscard]] int begin_rc() const { return rc_; }
  [[nodiscard]] MDB_txn* get() const { return txn_; }
  int commit() {
    int rc = mdb_txn_commit(txn_);
    txn_ = nullptr;
    return rc;
  }

 private:
  MDB_txn* txn_ = nullptr;
  int rc_ = 0;
};

uint64_t fnv1a(std::string_view text) {
  uint64_t hash = 1469598103934665603ULL;
  for (unsigned char c : text) {
    hash ^= c;
    hash *= 1099511628211ULL;
  }
  return hash;
}

// The key as stored: itself, or a prefix and a hash when it is longer than LMDB allows.
MDB_val key_val(const std::string& key, std::size_t max_key, std::string& scratch) {
  if (key.size() <= max_key) return MDB_val{key.size(), const_cast<char*>(key.data())};
  static constexpr char kHex[] = "0123456789abcdef";
  scratch.assign(key, 0, max_key - 17);
  scratch += '#';
  uint64_t hash = fnv1a(key);
  for (int shift = 60; shift >= 0; shift -= 4) scratch += kHex[(hash >> shift) & 0xf];
  return MDB_val{scratch.size(), scratch.data()};
}

int64_t read_expiry(const MDB_val& val) {
  int64_t expires_at = 0;
  std::memcpy(&expires_at, val.mv_data, kExpirySize);
  return expires_at;
}

bool live(const MDB_val& val, int64_t now) {
  if (val.mv_size < kExpirySize) return false;
  int64_t expires_at = read_expiry(val);
  return expires_at == 0 || expires_at > now;
}

std::string_view payload(const MDB_val& val) {
  return {static_cast<const char*>(val.mv_data) + kExpirySize, val.mv_size - kExpirySize};
}

int64_t expiry(int64_t now, std::chrono::seconds ttl) {
  return ttl.count() > 0 ? now + ttl.count() : 0;
}

// Writes expiry + value without an intermediate copy (MDB_RESERVE).
int write_value(MDB_txn* txn, MDB_dbi dbi, MDB_val* key, int64_t expires_at,
                std::string_view value) {
  MDB_val val{kExpirySize + value.size(), nullptr};
  int rc = mdb_put(txn, dbi, key, &val, MDB_RESERVE);
  if (rc != 0) return rc;
  std::memcpy(val.mv_data, &expires_at, kExpirySize);
  if (!value.empty())
    std::memcpy(static_cast<char*>(val.mv_data) + kExpirySize, value.data(), value.size());
  return 0;
}

}  // namespace

std::unique_ptr<LmdbStore> LmdbStore::open(uv_loop_t* loop, const std::string& path,
                                           const StoreLimits& limits, StoreClock clock,
                                           std::string* error) {
  auto env = open_env(path, limits.map_size, error);
  if (!env) return nullptr;
  return std::unique_ptr<LmdbStore>(new LmdbStore(loop, std::move(env), limits, std::move(clock)));
}

LmdbStore::LmdbStore(uv_loop_t* loop, std::shared_ptr<LmdbEnv> env, const StoreLimits& limits,
                     StoreClock clock)
    : env_(std::move(env)), limits_(limits), clock_(std::move(clock)) {
  // The sweep alone does not keep the loop running.
  if (loop && sweep_timer_.init<&LmdbStore::on_sweep_timer>(loop, this, false)) {
    schedule_sweep(std::chrono::milliseconds(limits_.sweep_interval).count());
  } else {
    sweep_timer_.close();
  }
}

LmdbStore::~LmdbStore() = default;

void LmdbStore::schedule_sweep(uint64_t delay_ms) {
  // Never 0 ms: libuv 1.44 runs a 0 ms timer re-armed in its own callback again in the same
  // loop turn, which would starve I/O.
  sweep_timer_.start(std::chrono::milliseconds(std::max<uint64_t>(delay_ms, 1)));
}

void LmdbStore::on_sweep_timer() {
  bool done = sweep_step();
  // The rest of an unfinished pass goes on after the loop has served I/O.
  schedule_sweep(done ? std::chrono::milliseconds(limits_.sweep_interval).count() : 1);
}

StoreStatus LmdbStore::failed(std::string_view op, int rc) {
  count_store_error(engine(), rc == MDB_MAP_FULL ? "map_full" : "error");
  if (rc != failing_rc_) {
    if (rc == MDB_MAP_FULL) {
      Log::warning("lmdb " + env_->path + " full (map_size " +
                   std::to_string(env_->map_size >> 10) + " KiB): " + std::string(op) +
                   " refused; failing open until expired keys are swept (raise store.map_size)");
    } else {
      Log::warning("lmdb " + env_->path + " " + std::string(op) + " failed: " + mdb_strerror(rc) +
                   "; failing open");
    }
  }
  failing_rc_ = rc;
  return StoreStatus::kUnavailable;
}

void LmdbStore::succeeded() {
  if (failing_rc_ == 0) return;
  Log::info("lmdb " + env_->path + " accepts writes again");
  failing_rc_ = 0;
}

void LmdbStore::get(const std::string& key, GetCallback cb) {
  count_store_operation(engine(), "get");
  StoreStatus status = StoreStatus::kNotFound;
  std::string value;
  {  // the read ends before the callback, which may write
    std::string scratch;
    MDB_val k = key_val(key, env_->max_key, scratch);
    MDB_val v{};
    Txn txn(env_->env, MDB_RDONLY);
    int rc = txn.begin_rc() != 0 ? txn.begin_rc() : mdb_get(txn.get(), env_->dbi, &k, &v);
    if (rc == 0 && live(v, clock_())) {
      status = StoreStatus::kOk;
      value = payload(v);
    } else if (rc != 0 && rc != MDB_NOTFOUND) {
      status = failed("get", rc);
    }
  }
  if (cb) cb(status, std::move(value));
}

void LmdbStore::put(const std::string& key, const std::string& value, std::chrono::seconds ttl,
                    StatusCallback cb) {
  count_store_operation(engine(), "put");
  StoreStatus status = StoreStatus::kOk;
  {
    std::string scratch;
    MDB_val k = key_val(key, env_->max_key, scratch);
    Txn txn(env_->env, 0);
    int rc = txn.begin_rc();
    if (rc == 0) rc = write_value(txn.get(), env_->dbi, &k, expiry(clock_(), ttl), value);
    if (rc == 0) rc = txn.commit();
    if (rc == 0) {
      succeeded();
    } else {
      status = failed("put", rc);
    }
  }
  if (cb) cb(status);
}

void LmdbStore::increment(const std::string& key, int64_t by, std::chrono::seconds ttl,
                          IncrementCallback cb) {
  count_store_operation(engine(), "increment");
  StoreStatus status = StoreStatus::kOk;
  int64_t result = by;
  {
    std::string scratch;
    MDB_val k = key_val(key, env_->max_key, scratch);
    MDB_val v{};
    int64_t now = clock_();
    Txn txn(env_->env, 0);
    int rc = txn.begin_rc();
    int64_t expires_at = expiry(now, ttl);
    bool not_integer = false;
    if (rc == 0) {
      int found = mdb_get(txn.get(), env_->dbi, &k, &v);
      if (found == 0 && live(v, now)) {
        std::string_view text = payload(v);
        int64_t current = 0;
        auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), current);
        not_integer = ec != std::errc() || end != text.data() + text.size() ||
                      __builtin_add_overflow(current, by, &result);
        expires_at = read_expiry(v);  // the TTL was set when the key was created
      } else if (found != 0 && found != MDB_NOTFOUND) {
        rc = found;
      }
    }
    if (not_integer) {
      count_store_error(engine(), "not_integer");
      status = StoreStatus::kUnavailable;
      result = 0;
    } else {
      if (rc == 0) rc = write_value(txn.get(), env_->dbi, &k, expires_at, std::to_string(result));
      if (rc == 0) rc = txn.commit();
      if (rc == 0) {
        succeeded();
      } else {
        status = failed("increment", rc);
        result = 0;
      }
    }
  }
  if (cb) cb(status, result);
}

void LmdbStore::put_if(const std::string& key, const std::optional<std::string>& expected,
                       const std::string& value, std::chrono::seconds ttl, StatusCallback cb) {
  count_store_operation(engine(), "put_if");
  StoreStatus status = StoreStatus::kOk;
  {  // read, compare and write in one write transaction: LMDB runs one writer at a time
    std::string scratch;
    MDB_val k = key_val(key, env_->max_key, scratch);
    MDB_val v{};
    int64_t now = clock_();
    Txn txn(env_->env, 0);
    int rc = txn.begin_rc();
    if (rc == 0) {
      int found = mdb_get(txn.get(), env_->dbi, &k, &v);
      if (found != 0 && found != MDB_NOTFOUND) {
        rc = found;
      } else {
        bool present = found == 0 && live(v, now);
        if (expected ? !present || payload(v) != *expected : present)
          status = StoreStatus::kConflict;
      }
    }
    if (status == StoreStatus::kOk) {
      if (rc == 0) rc = write_value(txn.get(), env_->dbi, &k, expiry(now, ttl), value);
      if (rc == 0) rc = txn.commit();
      if (rc == 0) {
        succeeded();
      } else {
        status = failed("put_if", rc);
      }
    }
  }
  if (cb) cb(status);
}

void LmdbStore::remove(const std::string& key, StatusCallback cb) {
  count_store_operation(engine(), "remove");
  StoreStatus status = StoreStatus::kOk;
  {
    std::string scratch;
    MDB_val k = key_val(key, env_->max_key, scratch);
    Txn txn(env_->env, 0);
    int rc = txn.begin_rc() != 0 ? txn.begin_rc() : mdb_del(txn.get(), env_->dbi, &k, nullptr);
    if (rc == MDB_NOTFOUND)
      rc = 0;  // nothing to commit; the abort is free
    else if (rc == 0)
      rc = txn.commit();
    if (rc != 0) status = failed("remove", rc);
  }
  if (cb) cb(status);
}

void LmdbStore::scan_page(const std::string& prefix, const std::string& cursor, std::size_t max,
                          const ScanFilter& keep, PageCallback cb) {
  count_store_operation(engine(), "scan");
  max = std::max<std::size_t>(max, 1);
  StoreStatus status = StoreStatus::kOk;
  ScanPage page;
  {  // the read ends before the callback, which may write
    Txn txn(env_->env, MDB_RDONLY);
    MDB_cursor* cursor_handle = nullptr;
    int rc = txn.begin_rc() != 0 ? txn.begin_rc()
                                 : mdb_cursor_open(txn.get(), env_->dbi, &cursor_handle);
    if (rc == 0) {
      int64_t now = clock_();
      // Keys sort bytewise: those with the prefix follow the first one at or after it; a
      // later page starts after the key the previous one stopped at.
      const std::string& from = cursor.empty() || cursor < prefix ? prefix : cursor;
      MDB_val k{from.size(), const_cast<char*>(from.data())};
      MDB_val v{};
      std::size_t examined = 0;
      std::string_view last;  // the last key looked at (the map stays valid in the txn)
      for (rc = mdb_cursor_get(cursor_handle, &k, &v, MDB_SET_RANGE); rc == 0;
           rc = mdb_cursor_get(cursor_handle, &k, &v, MDB_NEXT)) {
        std::string_view key(static_cast<const char*>(k.mv_data), k.mv_size);
        if (!key.starts_with(prefix)) break;
        if (&from == &cursor && key == cursor) continue;
        if (page.items.size() == max || examined == limits_.scan_page_examined) {
          page.next = last;  // more keys follow: the next page starts after `last`
          break;
        }
        ++examined;
        last = key;
        if (!live(v, now) || (keep && !keep(key, payload(v)))) continue;
        page.items.push_back({std::string(key), std::string(payload(v))});
      }
      mdb_cursor_close(cursor_handle);
      if (rc == MDB_NOTFOUND) rc = 0;
    }
    if (rc != 0) status = failed("scan", rc);
  }
  if (cb) cb(status, status == StoreStatus::kOk ? std::move(page) : ScanPage{});
}

bool LmdbStore::sweep_step() {
  int64_t now = clock_();
  Txn txn(env_->env, 0);
  if (txn.begin_rc() != 0) {
    failed("sweep", txn.begin_rc());
    return true;
  }
  MDB_cursor* cursor = nullptr;
  int rc = mdb_cursor_open(txn.get(), env_->dbi, &cursor);
  if (rc != 0) {
    failed("sweep", rc);
    return true;
  }
  MDB_val k{}, v{};
  if (sweep_resume_.empty()) {
    rc = mdb_cursor_get(cursor, &k, &v, MDB_FIRST);
  } else {
    k = MDB_val{sweep_resume_.size(), sweep_resume_.data()};
    rc = mdb_cursor_get(cursor, &k, &v, MDB_SET_RANGE);
  }
  std::size_t seen = 0;
  uint64_t removed = 0;
  bool done = true;
  while (rc == 0) {
    if (seen++ == limits_.sweep_batch) {  // this key is the first of the next batch
      sweep_resume_.assign(static_cast<const char*>(k.mv_data), k.mv_size);
      done = false;
      break;
    }
    if (!live(v, now)) {
      // After a cursor delete, MDB_NEXT yields the key that followed the deleted one.
      if ((rc = mdb_cursor_del(cursor, 0)) != 0) break;
      ++removed;
    }
    rc = mdb_cursor_get(cursor, &k, &v, MDB_NEXT);
  }
  mdb_cursor_close(cursor);
  if (rc != 0 && rc != MDB_NOTFOUND) {
    failed("sweep", rc);
    return true;  // the transaction is aborted; the next pass starts over
  }
  if (removed > 0) {
    if ((rc = txn.commit()) != 0) {
      failed("sweep", rc);
      return true;
    }
    metrics().inc("mxscreen_store_expired_total", "engine=\"lmdb\"", removed);
  }
  if (done) sweep_resume_.clear();
  return done;
}

std::size_t LmdbStore::entry_count() const {
  MDB_stat stat{};
  Txn txn(env_->env, MDB_RDONLY);
  if (txn.begin_rc() != 0 || mdb_stat(txn.get(), env_->dbi, &stat) != 0) return 0;
  return stat.ms_entries;
}

}  // namespace mxscreen::proxy
