// proxy/command_runner.h: runs ban.command / ban.unban_command (issue 6): an argv, never a
// shell, with "{address}" replaced by the client address (appended when no argument names it).
// At most kMaxRunning run at once, at most kMaxQueued wait; a command that outlives kTimeout is
// killed. Failures (spawn error, non-zero exit, signal, full queue) are logged and counted,
// never fatal.
#pragma once

#include <uv.h>

#include <chrono>
#include <cstddef>
#include <deque>
#include <memory>
#include <string>
#include <vector>

namespace mxscreen::proxy {

// The argv for one address: "{address}" replaced in every argument, or the address appended.
std::vector<std::string> command_argv(const std::vector<std::string>& templ,
                                      const std::string& address);

class CommandRunner {
 public:
  static constexpr std::size_t kMaxRunning = 4;
  static constexpr std::size_t kMaxQueued = 1000;
  static constexpr std::chrono::seconds kTimeout{30};

  explicit CommandRunner(uv_loop_t* loop);
  ~CommandRunner();
  CommandRunner(const CommandRunner&) = delete;
  CommandRunner& operator=(const CommandRunner&) = delete;

  // `what` names the command in logs and metrics ("ban", "unban").
  void run(const std::string& what, std::vector<std::string> argv);

  std::size_t running() const { return running_.size(); }
  std::size_t queued() const { return queue_.size(); }

 private:
  struct Job {
    std::string what;
    std::vector<std::string> argv;
  };
  struct Running;

  void start_next();
  void finished(Running* running, int64_t exit_status, int term_signal);
  static void on_exit(uv_process_t* process, int64_t exit_status, int term_signal);

  uv_loop_t* loop_;
  std::deque<Job> queue_;
  std::vector<std::unique_ptr<Running>> running_;
};

}  // namespace mxscreen::proxy
