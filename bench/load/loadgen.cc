// bench/load/loadgen.cc: mxscreen's load generator. One process, one libuv loop, many
// simulated SMTP clients (client.h) spread over 127.x.y.z source addresses. Scenarios:
//   hold   N silent connections, held for --hold seconds (greet wait / tarpit occupancy)
//   bots   N bot sessions, C at a time, roles mixed by --mix
//   legit  N messages of --size bytes over C sessions, --per-conn messages per connection,
//          with --starttls 1 each session after a full STARTTLS handshake
//   mixed  a legit stream at --rate per second during a bot flood at --bot-rate per second
// Every run is capped by --duration and stops by itself. Output: one JSON line on stdout,
// one human line on stderr. The generator's own CPU time is reported so that a saturated
// generator is visible rather than mistaken for a slow target.
#include <sys/resource.h>
#include <uv.h>

#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "bench/load/client.h"

namespace mxscreen::bench {
namespace {

struct Options {
  std::string scenario = "legit";
  std::string label = "target";
  std::string target = "127.0.0.1:25";
  long sessions = 1000;
  long concurrency = 50;
  double duration_s = 60;
  double hold_s = 10;
  double grace_s = 5;
  std::string mix = "pregreet=25,pipeline=25,http=25,quit=25";
  long size = 1024;
  int per_conn = 1;
  bool starttls = false;
  double rate = 20;
  double bot_rate = -1;  // mixed: default 10 x rate
  long bot_concurrency = 4000;
  std::string src = "127.1";
  std::string bot_src = "127.3";
  long timeout_ms = 30000;
  long connect_parallel = 128;
  std::string ready_file;
};

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "loadgen: %s\n"
               "usage: mxscreen_loadgen --scenario hold|bots|legit|mixed --target IP:PORT\n"
               "  [--label NAME] [--sessions N] [--concurrency C] [--duration S] [--hold S]\n"
               "  [--grace S] [--mix pregreet=25,pipeline=25,http=25,quit=25] [--size BYTES]\n"
               "  [--per-conn M] [--starttls 0|1] [--rate R] [--bot-rate B] [--bot-concurrency C]\n"
               "  [--src A.B] [--bot-src A.B] [--timeout MS] [--connect-parallel K]\n"
               "  [--ready-file PATH]\n",
               why);
  std::exit(2);
}

Options parse_options(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string key = argv[i];
    if (key == "--help" || key == "-h") usage("help");
    if (i + 1 >= argc) usage(("missing value for " + key).c_str());
    std::string value = argv[++i];
    if (key == "--scenario")
      o.scenario = value;
    else if (key == "--label")
      o.label = value;
    else if (key == "--target")
      o.target = value;
    else if (key == "--sessions")
      o.sessions = std::atol(value.c_str());
    else if (key == "--concurrency")
      o.concurrency = std::atol(value.c_str());
    else if (key == "--duration")
      o.duration_s = std::atof(value.c_str());
    else if (key == "--hold")
      o.hold_s = std::atof(value.c_str());
    else if (key == "--grace")
      o.grace_s = std::atof(value.c_str());
    else if (key == "--mix")
      o.mix = value;
    else if (key == "--size")
      o.size = std::atol(value.c_str());
    else if (key == "--per-conn")
      o.per_conn = std::max(1, std::atoi(value.c_str()));
    else if (key == "--starttls")
      o.starttls = value == "1" || value == "yes";
    else if (key == "--rate")
      o.rate = std::atof(value.c_str());
    else if (key == "--bot-rate")
      o.bot_rate = std::atof(value.c_str());
    else if (key == "--bot-concurrency")
      o.bot_concurrency = std::atol(value.c_str());
    else if (key == "--src")
      o.src = value;
    else if (key == "--bot-src")
      o.bot_src = value;
    else if (key == "--timeout")
      o.timeout_ms = std::atol(value.c_str());
    else if (key == "--connect-parallel")
      o.connect_parallel = std::atol(value.c_str());
    else if (key == "--ready-file")
      o.ready_file = value;
    else
      usage(("unknown option " + key).c_str());
  }
  if (o.scenario != "hold" && o.scenario != "bots" && o.scenario != "legit" &&
      o.scenario != "mixed") {
    usage("unknown scenario");
  }
  if (o.bot_rate < 0) o.bot_rate = 10 * o.rate;
  return o;
}

// Role weights from "pregreet=25,pipeline=25,http=25,quit=25".
std::vector<std::pair<Role, int>> parse_mix(const std::string& mix) {
  std::vector<std::pair<Role, int>> weights;
  size_t pos = 0;
  while (pos < mix.size()) {
    size_t comma = mix.find(',', pos);
    std::string item =
        mix.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    pos = comma == std::string::npos ? mix.size() : comma + 1;
    size_t eq = item.find('=');
    std::string name = item.substr(0, eq);
    int weight = eq == std::string::npos ? 1 : std::atoi(item.c_str() + eq + 1);
    Role role;
    if (name == "pregreet")
      role = Role::kPregreet;
    else if (name == "pipeline")
      role = Role::kPipeline;
    else if (name == "http")
      role = Role::kHttp;
    else if (name == "quit")
      role = Role::kQuit;
    else
      usage(("unknown bot kind in --mix: " + name).c_str());
    if (weight > 0) weights.emplace_back(role, weight);
  }
  if (weights.empty()) usage("empty --mix");
  return weights;
}

// Sources A.B.x.y with x in 0..255 and y in 1..254, in turn: 65,024 addresses, so neither the
// 28,232 local ports per address nor the per-client limits of the targets are ever reached.
class SourceAddresses {
 public:
  explicit SourceAddresses(const std::string& prefix) {
    unsigned a = 127, b = 1;
    if (std::sscanf(prefix.c_str(), "%u.%u", &a, &b) != 2 || a > 255 || b > 255) {
      usage("--src/--bot-src must look like 127.1");
    }
    a_ = a;
    b_ = b;
  }
  sockaddr_in next() {
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = 0;
    uint32_t x = (next_ / 254) % 256, y = next_ % 254 + 1;
    ++next_;
    sa.sin_addr.s_addr = htonl((a_ << 24) | (b_ << 16) | (x << 8) | y);
    return sa;
  }

 private:
  uint32_t a_ = 127, b_ = 1, next_ = 0;
};

struct Percentiles {
  double p50 = 0, p90 = 0, p99 = 0, max = 0;
  size_t n = 0;
};

Percentiles percentiles(std::vector<double> v) {
  Percentiles p;
  p.n = v.size();
  if (v.empty()) return p;
  std::sort(v.begin(), v.end());
  auto at = [&](double q) {
    size_t i = static_cast<size_t>(std::ceil(q * static_cast<double>(v.size())));
    return v[std::min(v.size() - 1, i == 0 ? 0 : i - 1)];
  };
  p.p50 = at(0.50);
  p.p90 = at(0.90);
  p.p99 = at(0.99);
  p.max = v.back();
  return p;
}

// One stream of clients of one kind: a budget, a concurrency cap, and either a closed loop
// (start a client when one ends) or an open loop at a fixed rate.
struct Stream {
  std::string name;
  std::vector<std::pair<Role, int>> roles;
  int role_weight_total = 0;
  long budget = 0;  // clients to start; <0 = unlimited (until the duration cap)
  long concurrency = 0;
  double rate = 0;  // clients per second; 0 = closed loop
  SourceAddresses sources{"127.1"};
  long started = 0, inflight = 0, connecting = 0, established = 0;
  long role_cursor = 0;
  std::unordered_map<Client*, std::unique_ptr<Client>> clients;
  std::map<std::string, long> outcomes;
  std::vector<double> message_latency_ms, session_latency_ms, connect_latency_ms;
  long messages = 0;
  uint64_t message_bytes = 0;
  long ok_sessions = 0;
  uint64_t first_start_ns = 0, last_end_ns = 0;

  Role next_role() {
    long slot = role_cursor++ % role_weight_total;
    for (const auto& [role, weight] : roles) {
      if (slot < weight) return role;
      slot -= weight;
    }
    return roles.front().first;
  }
};

bool is_error_kind(const std::string& kind) {
  return kind != "ok" && kind != "rejected" && kind != "dropped" && kind != "passed" &&
         kind != "held";
}

class Run {
 public:
  Run(uv_loop_t* loop, Options options) : loop_(loop), o_(std::move(options)) {
    if (uv_ip4_addr(host_of(o_.target).c_str(), port_of(o_.target), &target_) != 0) {
      usage("--target must be IPv4 IP:PORT");
    }
    build_script();
    if (o_.scenario == "hold") {
      add_stream("hold", {{Role::kHold, 1}}, o_.sessions, o_.sessions, 0, o_.src);
    } else if (o_.scenario == "bots") {
      add_stream("bots", parse_mix(o_.mix), o_.sessions, o_.concurrency, 0, o_.src);
    } else if (o_.scenario == "legit") {
      // N messages: ceil(N / per_conn) sessions.
      long sessions = (o_.sessions + o_.per_conn - 1) / o_.per_conn;
      add_stream("legit", {{Role::kLegit, 1}}, sessions, o_.concurrency, 0, o_.src);
    } else {
      add_stream("legit", {{Role::kLegit, 1}}, -1, o_.concurrency, o_.rate, o_.src);
      if (o_.bot_rate > 0) {
        add_stream("bots", parse_mix(o_.mix), -1, o_.bot_concurrency, o_.bot_rate, o_.bot_src);
      }
    }
  }

  void start() {
    start_ns_ = now_ns();
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    cpu_start_s_ = cpu_seconds(ru);
    uv_timer_init(loop_, &tick_);
    tick_.data = this;
    uv_timer_start(
        &tick_, [](uv_timer_t* t) { static_cast<Run*>(t->data)->on_tick(); }, 0, 5);
  }

  void report();

 private:
  static std::string host_of(const std::string& t) { return t.substr(0, t.rfind(':')); }
  static int port_of(const std::string& t) { return std::atoi(t.c_str() + t.rfind(':') + 1); }
  static double cpu_seconds(const rusage& ru) {
    return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
  }
  double elapsed_s() const { return static_cast<double>(now_ns() - start_ns_) / 1e9; }

  void build_script() {
    script_.per_conn = o_.per_conn;
    if (o_.starttls) {
      // Any certificate: the bench measures the handshake, not the PKI. No session reuse, so
      // every session is a full handshake.
      tls_.reset(SSL_CTX_new(TLS_client_method()));
      if (!tls_) usage("cannot create a TLS client context");
      SSL_CTX_set_verify(tls_.get(), SSL_VERIFY_NONE, nullptr);
      SSL_CTX_set_session_cache_mode(tls_.get(), SSL_SESS_CACHE_OFF);
      script_.tls = tls_.get();
    }
    std::string body =
        "From: <bench@loadgen.test>\r\nTo: <user@example.test>\r\n"
        "Subject: mxscreen load test\r\nMessage-ID: <bench@loadgen.test>\r\n\r\n";
    const std::string line(76, 'x');
    while (body.size() + 78 <= static_cast<size_t>(std::max(o_.size, 0L))) body += line + "\r\n";
    if (body.size() < static_cast<size_t>(o_.size)) {
      body += std::string(
          static_cast<size_t>(o_.size) - body.size() - std::min<size_t>(2, o_.size - body.size()),
          'y');
      body += "\r\n";
    }
    script_.message_size = body.size();
    script_.body = body + ".\r\n";
  }

  void add_stream(const std::string& name, std::vector<std::pair<Role, int>> roles, long budget,
                  long concurrency, double rate, const std::string& src) {
    auto s = std::make_unique<Stream>();
    s->name = name;
    s->roles = std::move(roles);
    for (const auto& r : s->roles) s->role_weight_total += r.second;
    s->budget = budget;
    s->concurrency = std::max(1L, concurrency);
    s->rate = rate;
    s->sources = SourceAddresses(src);
    streams_.push_back(std::move(s));
  }

  bool may_start(const Stream& s) const {
    if (stopping_ || holding_) return false;
    if (s.budget >= 0 && s.started >= s.budget) return false;
    if (s.inflight >= s.concurrency) return false;
    if (s.connecting >= o_.connect_parallel) return false;
    return true;
  }

  void pump(Stream& s) {
    if (s.rate > 0) {
      long owed = static_cast<long>(s.rate * elapsed_s()) - s.started;
      while (owed-- > 0) {
        if (!may_start(s)) {
          // An open-loop client that cannot start now is counted, not queued.
          if (!stopping_ && s.inflight >= s.concurrency) ++s.outcomes["skipped_concurrency_cap"];
          ++s.started;
          continue;
        }
        launch(s);
      }
      return;
    }
    while (may_start(s)) launch(s);
  }

  void launch(Stream& s) {
    Role role = s.next_role();
    ++s.started;
    ++s.inflight;
    ++s.connecting;
    if (s.first_start_ns == 0) s.first_start_ns = now_ns();
    Stream* sp = &s;
    auto client_holder = std::make_unique<Client>(
        loop_, role, script_, [this, sp](const Outcome& out) { ended(*sp, out); },
        [sp](double ms) { sp->message_latency_ms.push_back(ms); },
        [sp]() {
          --sp->connecting;
          ++sp->established;
        });
    Client* client = client_holder.get();
    s.clients.emplace(client, std::move(client_holder));
    uint64_t timeout = o_.scenario == "hold" ? 0 : static_cast<uint64_t>(o_.timeout_ms);
    client->start(s.sources.next(), target_, timeout);
  }

  void ended(Stream& s, const Outcome& out) {
    --s.inflight;
    if (out.connect_ms < 0)
      --s.connecting;
    else
      s.connect_latency_ms.push_back(out.connect_ms);
    ++s.outcomes[out.kind];
    if (out.ok) {
      ++s.ok_sessions;
      s.session_latency_ms.push_back(out.session_ms);
    }
    s.messages += out.messages;
    s.message_bytes += out.message_bytes;
    s.last_end_ns = now_ns();
    // The client object is destroyed here; its on_close touches nothing after calling us.
    s.clients.erase(out.client);
    if (!stopping_) pump(s);
  }

  void on_tick() {
    double t = elapsed_s();
    for (auto& s : streams_) pump(*s);
    if (o_.scenario == "hold") hold_tick(t);
    if (!stopping_ && t >= o_.duration_s) stop_starting();
    bool idle = true;
    for (auto& s : streams_) {
      if (s->inflight > 0 || (!stopping_ && (s->budget < 0 || s->started < s->budget))) {
        idle = false;
      }
    }
    if (stopping_ && t >= stop_at_s_ + o_.grace_s) {
      for (auto& s : streams_) abort_all(*s, "cutoff");
    }
    if (idle && !holding_) finish();
  }

  void hold_tick(double t) {
    Stream& s = *streams_.front();
    if (!holding_ && !stopping_ && (s.started >= s.budget && s.connecting == 0)) {
      holding_ = true;
      hold_started_s_ = t;
      established_at_hold_ = s.inflight;
      if (!o_.ready_file.empty()) {
        if (FILE* f = std::fopen(o_.ready_file.c_str(), "w")) {
          std::fprintf(f, "%ld\n", established_at_hold_);
          std::fclose(f);
        }
      }
      std::fprintf(stderr, "loadgen: holding %ld connections after %.1f s\n", established_at_hold_,
                   t);
    }
    if (holding_ && (t - hold_started_s_ >= o_.hold_s || t >= o_.duration_s)) {
      held_at_end_ = s.inflight;
      holding_ = false;
      stop_starting();
      abort_all(s, "held");
    }
  }

  void stop_starting() {
    if (stopping_) return;
    stopping_ = true;
    stop_at_s_ = elapsed_s();
  }

  void abort_all(Stream& s, const char* kind) {
    std::vector<Client*> all;
    all.reserve(s.clients.size());
    for (auto& [ptr, owner] : s.clients) all.push_back(ptr);
    for (Client* c : all) c->abort(kind);
  }

  void finish() {
    if (finished_) return;
    finished_ = true;
    end_ns_ = now_ns();
    uv_timer_stop(&tick_);
    uv_close(reinterpret_cast<uv_handle_t*>(&tick_), nullptr);
  }

  uv_loop_t* loop_;
  Options o_;
  sockaddr_in target_{};
  struct CtxFree {
    void operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }
  };
  std::unique_ptr<SSL_CTX, CtxFree> tls_;  // before script_, which points into it
  LegitScript script_;
  std::vector<std::unique_ptr<Stream>> streams_;
  uv_timer_t tick_{};
  uint64_t start_ns_ = 0, end_ns_ = 0;
  double cpu_start_s_ = 0;
  bool stopping_ = false, holding_ = false, finished_ = false;
  double stop_at_s_ = 0, hold_started_s_ = 0;
  long established_at_hold_ = 0, held_at_end_ = 0;
};

void append_percentiles(std::string& json, const char* name, const std::vector<double>& v) {
  Percentiles p = percentiles(v);
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "\"%s\":{\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"max\":%.3f,\"n\":%zu}", name,
                p.p50, p.p90, p.p99, p.max, p.n);
  json += buf;
}

void append_counts(std::string& json, const char* name, const std::map<std::string, long>& counts,
                   bool errors_only) {
  json += "\"";
  json += name;
  json += "\":{";
  bool first = true;
  for (const auto& [kind, n] : counts) {
    if (errors_only != is_error_kind(kind)) continue;
    if (!first) json += ",";
    first = false;
    json += "\"" + kind + "\":" + std::to_string(n);
  }
  json += "}";
}

std::string num(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.3f", v);
  return buf;
}

void Run::report() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  const double cpu = cpu_seconds(ru) - cpu_start_s_;
  const double duration = static_cast<double>((end_ns_ ? end_ns_ : now_ns()) - start_ns_) / 1e9;
  Stream& main = *streams_.front();
  // Rates over the stream's active span: first start to last end (a hold over its hold time
  // is not a rate).
  const double span = main.last_end_ns > main.first_start_ns
                          ? static_cast<double>(main.last_end_ns - main.first_start_ns) / 1e9
                          : duration;
  long errors_total = 0;
  for (const auto& s : streams_) {
    for (const auto& [kind, n] : s->outcomes) {
      if (is_error_kind(kind) && kind != "skipped_concurrency_cap") errors_total += n;
    }
  }
  const bool legit = main.name == "legit";
  std::string j = "{";
  j += "\"scenario\":\"" + o_.scenario + "\",\"label\":\"" + o_.label + "\",\"target\":\"" +
       o_.target + "\"";
  j += ",\"duration_s\":" + num(duration) + ",\"span_s\":" + num(span);
  j += ",\"started\":" + std::to_string(main.started);
  j += ",\"sessions\":" + std::to_string(main.ok_sessions);
  j += ",\"sessions_per_s\":" + num(main.ok_sessions / span);
  j += ",\"messages\":" + std::to_string(main.messages);
  j += ",\"messages_per_s\":" + num(main.messages / span);
  j += ",\"mb_per_s\":" + num(static_cast<double>(main.message_bytes) / 1e6 / span);
  j += ",\"message_size\":" + std::to_string(script_.message_size);
  j += ",";
  append_percentiles(j, "latency_ms", legit ? main.message_latency_ms : main.session_latency_ms);
  j += ",";
  append_percentiles(j, "session_ms", main.session_latency_ms);
  j += ",";
  append_percentiles(j, "connect_ms", main.connect_latency_ms);
  j += ",";
  append_counts(j, "outcomes", main.outcomes, false);
  j += ",";
  append_counts(j, "errors", main.outcomes, true);
  j += ",\"errors_total\":" + std::to_string(errors_total);
  if (o_.scenario == "hold") {
    j += ",\"established\":" + std::to_string(established_at_hold_);
    j += ",\"held\":" + std::to_string(held_at_end_);
    j += ",\"hold_s\":" + num(o_.hold_s);
  }
  if (streams_.size() > 1) {
    Stream& bots = *streams_[1];
    j += ",\"bots\":{\"started\":" + std::to_string(bots.started) +
         ",\"sessions\":" + std::to_string(bots.ok_sessions) +
         ",\"sessions_per_s\":" + num(bots.ok_sessions / duration) + ",\"rate\":" + num(bots.rate) +
         ",";
    append_counts(j, "outcomes", bots.outcomes, false);
    j += ",";
    append_counts(j, "errors", bots.outcomes, true);
    j += "}";
  }
  j += ",\"loadgen_cpu_s\":" + num(cpu) + ",\"loadgen_cpu_share\":" + num(cpu / duration);
  j += "}";
  std::printf("%s\n", j.c_str());
  std::fflush(stdout);

  Percentiles lat = percentiles(legit ? main.message_latency_ms : main.session_latency_ms);
  std::fprintf(
      stderr,
      "loadgen %s %s: %ld ok sessions (%.0f/s), %ld msgs (%.1f/s, %.2f MB/s), "
      "latency p50 %.2f p99 %.2f ms, %ld errors, %.1f s, loadgen cpu %.0f%%%s\n",
      o_.scenario.c_str(), o_.label.c_str(), main.ok_sessions, main.ok_sessions / span,
      main.messages, main.messages / span, static_cast<double>(main.message_bytes) / 1e6 / span,
      lat.p50, lat.p99, errors_total, duration, 100 * cpu / duration,
      o_.scenario == "hold"
          ? (", held " + std::to_string(held_at_end_) + "/" + std::to_string(o_.sessions)).c_str()
          : "");
}

}  // namespace
}  // namespace mxscreen::bench

int main(int argc, char** argv) {
  using namespace mxscreen::bench;
  Options options = parse_options(argc, argv);
  // One descriptor per client: ask for the hard limit (20,000 on the bench machines).
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  std::signal(SIGPIPE, SIG_IGN);
  uv_loop_t* loop = uv_default_loop();
  Run run(loop, options);
  run.start();
  uv_run(loop, UV_RUN_DEFAULT);
  run.report();
  uv_loop_close(loop);
  return 0;
}
