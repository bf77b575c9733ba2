// proxy/command_runner.cc: see command_runner.h.
#include "proxy/command_runner.h"

#include <algorithm>
#include <csignal>

#include "protocol/escape.h"
#include "proxy/log.h"
#include "proxy/metrics.h"
#include "proxy/uv_handle.h"

namespace mxscreen::proxy {
namespace {

constexpr std::string_view kPlaceholder = "{address}";

std::string printable_argv(const std::vector<std::string>& argv) {
  std::string out;
  for (const auto& arg : argv) {
    if (!out.empty()) out += ' ';
    out += protocol::printable(arg);
  }
  return out;
}

}  // namespace

std::vector<std::string> command_argv(const std::vector<std::string>& templ,
                                      const std::string& address) {
  std::vector<std::string> argv;
  bool named = false;
  for (std::string arg : templ) {
    for (auto at = arg.find(kPlaceholder); at != std::string::npos;
         at = arg.find(kPlaceholder, at + address.size())) {
      arg.replace(at, kPlaceholder.size(), address);
      named = true;
    }
    argv.push_back(std::move(arg));
  }
  if (!named) argv.push_back(address);
  return argv;
}

struct CommandRunner::Running {
  CommandRunner* runner = nullptr;
  Job job;
  UvHandle<uv_process_t> process;
  Timer timer;  // kTimeout, then SIGKILL

  void timed_out() {
    Log::warning(job.what + " command " + printable_argv(job.argv) + " still running after " +
                 std::to_string(kTimeout.count()) + "s: killed");
    uv_process_kill(process.get(), SIGKILL);
  }
};

CommandRunner::CommandRunner(uv_loop_t* loop) : loop_(loop) {}

CommandRunner::~CommandRunner() {
  // Children still running are left to finish on their own; their handles close with us.
  for (auto& r : running_) r->process->data = nullptr;
}

void CommandRunner::run(const std::string& what, std::vector<std::string> argv) {
  if (argv.empty()) return;
  if (queue_.size() >= kMaxQueued) {
    Log::warning(what + " command queue full (" + std::to_string(kMaxQueued) +
                 " waiting): not running " + printable_argv(argv));
    metrics().inc("mxscreen_ban_commands_total",
                  "command=\"" + label_value(what) + "\",result=\"dropped\"");
    return;
  }
  queue_.push_back(Job{what, std::move(argv)});
  start_next();
}

void CommandRunner::start_next() {
  while (running_.size() < kMaxRunning && !queue_.empty()) {
    auto r = std::make_unique<Running>();
    r->runner = this;
    r->job = std::move(queue_.front());
    queue_.pop_front();
    std::vector<char*> args;
    for (auto& a : r->job.argv) args.push_back(a.data());
    args.push_back(nullptr);
    uv_stdio_container_t stdio[3];
    for (auto& s : stdio) s.flags = UV_IGNORE;
    uv_process_options_t options{};
    options.exit_cb = &CommandRunner::on_exit;
    options.file = args[0];
    options.args = args.data();
    options.stdio = stdio;
    options.stdio_count = 3;
    r->process->data = r.get();
    int rc = uv_spawn(loop_, r->process.get(), &options);
    // uv_spawn initialises the handle even when it fails; it must be closed either way.
    r->process.initialized();
    if (rc != 0) {
      Log::warning(r->job.what + " command " + printable_argv(r->job.argv) +
                   " cannot start: " + uv_error(rc));
      metrics().inc("mxscreen_ban_commands_total",
                    "command=\"" + label_value(r->job.what) + "\",result=\"error\"");
      continue;
    }
    r->timer.init<&Running::timed_out>(loop_, r.get());
    r->timer.start(kTimeout);
    running_.push_back(std::move(r));
  }
}

void CommandRunner::on_exit(uv_process_t* process, int64_t exit_status, int term_signal) {
  auto* r = static_cast<Running*>(process->data);
  if (!r) return;
  r->runner->finished(r, exit_status, term_signal);
}

void CommandRunner::finished(Running* r, int64_t exit_status, int term_signal) {
  const bool ok = exit_status == 0 && term_signal == 0;
  if (!ok) {
    Log::warning(r->job.what + " command " + printable_argv(r->job.argv) + " failed: " +
                 (term_signal != 0 ? "signal " + std::to_string(term_signal)
                                   : "exit status " + std::to_string(exit_status)));
  }
  metrics().inc("mxscreen_ban_commands_total", "command=\"" + label_value(r->job.what) +
                                                   "\",result=\"" + (ok ? "ok" : "error") + "\"");
  auto it =
      std::find_if(running_.begin(), running_.end(), [r](const auto& p) { return p.get() == r; });
  if (it != running_.end()) running_.erase(it);  // closes the process and timer handles
  start_next();
}

}  // namespace mxscreen::proxy
