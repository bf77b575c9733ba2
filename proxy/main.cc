// proxy/main.cc: the command line (DESIGN.md "Interface contract"): load and check the
// config, raise the open-files limit, bind as root, drop to server.user, run the loop.
// Exit codes: 0 clean stop, 1 runtime failure, 2 bad configuration or arguments.
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "proxy/backend_probe.h"
#include "proxy/config.h"
#include "proxy/control.h"
#include "proxy/ctl_check.h"
#include "proxy/deploy_lint.h"
#include "proxy/explain.h"
#include "proxy/log.h"
#include "proxy/server.h"
#include "version.h"

namespace mxscreen::proxy {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

void usage(FILE* out) {
  std::fprintf(out,
               "usage: mxscreen --config FILE         run in the foreground\n"
               "       mxscreen --check-config [--plan] [--postfix-config DIR] --config FILE\n"
               "       mxscreen ctl --config FILE bans | unban ADDR | ban ADDR DURATION | stats\n"
               "       mxscreen ctl --config FILE explain ADDRESS [--helo NAME] [--from ADDR]\n"
               "                                          [--to ADDR] [--json]\n"
               "       mxscreen ctl --config FILE check [--warn-sessions S] [--crit-sessions S]\n"
               "                                        [--warn-queue S] [--crit-queue S]\n"
               "       mxscreen ctl --config FILE greylist list [--client A] [--sender S]\n"
               "                                        [--recipient R] [--limit N] [--cursor C]\n"
               "       mxscreen ctl --config FILE greylist pass|drop CLIENT SENDER RECIPIENT\n"
               "                                        | KEY | --client A\n"
               "       mxscreen ctl --config FILE greylist report [--limit N]\n"
               "       mxscreen ctl --config FILE cache show ADDR | cache drop ADDR | cache flush\n"
               "       mxscreen --version\n");
}

// Every session holds its client's descriptor, and a spliced one the backend's too (at most
// backend.max_sessions of them); leave room for listeners, DNS, store and logs. Returns how
// many sessions the limit holds: past it the connect decision answers 421 (server.h). The
// splice(2) path's pipes use only descriptors left over (Server::take_kernel_splice_files).
constexpr rlim_t kReservedFiles = 64;

std::size_t raise_open_files(int max_sessions, int backend_sessions) {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return SIZE_MAX;
  if (rl.rlim_cur < rl.rlim_max) {
    rlimit raised = rl;
    raised.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) rl = raised;
  }
  if (rl.rlim_cur == RLIM_INFINITY) return SIZE_MAX;
  const rlim_t overhead = static_cast<rlim_t>(backend_sessions) + kReservedFiles;
  const std::size_t fit = rl.rlim_cur > overhead ? rl.rlim_cur - overhead : 1;
  if (fit < static_cast<std::size_t>(max_sessions)) {
    Log::warning("open files limit " + std::to_string(rl.rlim_cur) + " cannot fit " +
                 "server.max_sessions = " + std::to_string(max_sessions) + " (needs about " +
                 std::to_string(static_cast<rlim_t>(max_sessions) + overhead) + "); " +
                 std::to_string(fit) +
                 " sessions fit; past that new clients get 421 4.3.2 (limit=\"open_files\")");
  }
  return fit;
}

// Gives server.state_dir to server.user, as root. The directory is opened without following a
// symbolic link and chowned through that descriptor: a link planted there (or a race that swaps
// the directory for one) would otherwise hand root's chown of any file to whoever planted it.
bool own_state_dir(const std::string& dir, const passwd& pw) {
  mkdir(dir.c_str(), 0750);  // never follows a link: a link there makes it fail with EEXIST
  int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    struct stat st {};
    if (err == ELOOP || (lstat(dir.c_str(), &st) == 0 && S_ISLNK(st.st_mode))) {
      Log::error("server.state_dir " + dir +
                 " is a symbolic link; refusing to chown it as root (set server.state_dir to "
                 "the real directory)");
      return false;
    }
    Log::warning("cannot chown " + dir + ": " + std::strerror(err));
    return true;  // as before: the store says what it cannot open
  }
  if (fchown(fd, pw.pw_uid, pw.pw_gid) != 0) {
    Log::warning("cannot chown " + dir + ": " + std::strerror(errno));
  }
  close(fd);
  return true;
}

bool drop_privileges(const Config& config) {
  const std::string& user = config.server.user;
  if (user.empty() || geteuid() != 0) {
    if (!user.empty()) Log::info("not root: server.user = \"" + user + "\" ignored");
    return true;
  }
  const passwd* pw = getpwnam(user.c_str());
  if (!pw) {
    Log::error("server.user \"" + user + "\" does not exist; refusing to run as root");
    return false;
  }
  if (!config.server.state_dir.empty() && !own_state_dir(config.server.state_dir, *pw)) {
    return false;
  }
  if (initgroups(pw->pw_name, pw->pw_gid) != 0 || setgid(pw->pw_gid) != 0 ||
      setuid(pw->pw_uid) != 0) {
    Log::error("cannot drop privileges to " + user + ": " + std::strerror(errno));
    return false;
  }
  Log::info("running as " + user);
  return true;
}

// `--config FILE` or `--config=FILE` at argv[*i] (moving *i past it): true, with *path set.
bool config_arg(int argc, char** argv, int* i, std::string* path) {
  std::string arg = argv[*i];
  if (arg == "--config" && *i + 1 < argc) {
    *path = argv[++*i];
    return true;
  }
  if (arg.rfind("--config=", 0) == 0) {
    *path = arg.substr(9);
    return true;
  }
  return false;
}

// Whether `pw` can open `path` for reading, asked of the kernel itself (modes, ACLs, every
// directory on the way) by a child that takes the user's identity. "" = readable, else why not.
// Only as root, before any thread starts.
std::string unreadable_by(const passwd& pw, const std::string& path) {
  int count = 64;
  std::vector<gid_t> groups(static_cast<std::size_t>(count));
  if (getgrouplist(pw.pw_name, pw.pw_gid, groups.data(), &count) < 0) {
    groups.resize(static_cast<std::size_t>(count));
    getgrouplist(pw.pw_name, pw.pw_gid, groups.data(), &count);
  }
  groups.resize(static_cast<std::size_t>(std::max(count, 0)));
  pid_t child = fork();
  if (child < 0) return "";  // cannot tell: say nothing
  if (child == 0) {
    if (setgroups(groups.size(), groups.data()) != 0 || setgid(pw.pw_gid) != 0 ||
        setuid(pw.pw_uid) != 0) {
      _exit(0);
    }
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    _exit(fd >= 0 ? 0 : (errno > 0 && errno < 255 ? errno : EACCES));
  }
  int status = 0;
  if (waitpid(child, &status, 0) != child || !WIFEXITED(status)) return "";
  return WEXITSTATUS(status) == 0 ? "" : std::strerror(WEXITSTATUS(status));
}

// Every file a SIGHUP reload reads again, after the privilege drop, that server.user cannot
// read: one warning each (the start, as root, reads them all; the reload would be refused).
std::vector<std::string> reload_warnings(const Config& config, const std::string& config_path) {
  std::vector<std::string> out;
  if (geteuid() != 0 || config.server.user.empty()) return out;
  const passwd* found = getpwnam(config.server.user.c_str());
  if (!found) return out;  // drop_privileges says so
  const passwd pw = *found;
  std::vector<std::pair<std::string, std::string>> files = {{"the config file", config_path}};
  auto add = [&](const char* what, const std::string& path) {
    if (!path.empty()) files.emplace_back(what, path);
  };
  add("tls.cert_file", config.tls.cert_file);
  add("tls.key_file", config.tls.key_file);
  for (const auto& f : config.tls.extra_cert_files) add("tls.extra_cert_files", f);
  for (const auto& f : config.tls.extra_key_files) add("tls.extra_key_files", f);
  add("access.file", config.access.file);
  add("greylist.client_allowlist_file", config.greylist.client_allowlist_file);
  add("greylist.recipient_allowlist_file", config.greylist.recipient_allowlist_file);
  for (const auto& [what, path] : files) {
    std::string why = unreadable_by(pw, path);
    if (why.empty()) continue;
    std::string hint = what.find("key") != std::string::npos
                           ? "; Debian's way: chgrp ssl-cert " + path + " && chmod 0640 " + path +
                                 " && adduser " + pw.pw_name + " ssl-cert"
                           : "";
    out.push_back(what + " " + path + " is not readable by server.user \"" + pw.pw_name + "\" (" +
                  why + "): it is read now, as root, but every SIGHUP reload will be " + "refused" +
                  hint);
  }
  return out;
}

// `mxscreen ctl --config FILE request...`: the admin socket's client (control.h).
int run_ctl_command(int argc, char** argv) {
  std::string config_path;
  std::vector<std::string> request;
  for (int i = 2; i < argc; ++i) {
    if (!config_arg(argc, argv, &i, &config_path)) request.push_back(argv[i]);
  }
  if (config_path.empty() || request.empty()) {
    usage(stderr);
    return kExitUsage;
  }
  auto loaded = load_config(config_path);
  if (!loaded.config) {
    for (const auto& e : loaded.errors) std::fprintf(stderr, "%s\n", e.to_string().c_str());
    return kExitUsage;
  }
  if (request[0] == "check") {
    return run_ctl_check(*loaded.config, {request.begin() + 1, request.end()});
  }
  if (request[0] == "explain") {
    // The server answers within explain_time_limit; a little longer here.
    auto limit = std::chrono::duration_cast<std::chrono::seconds>(
        explain_time_limit(*loaded.config) + std::chrono::seconds(5));
    return run_ctl(loaded.config->server.state_dir, request, limit);
  }
  return run_ctl(loaded.config->server.state_dir, request);
}

int run(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "ctl") return run_ctl_command(argc, argv);
  std::string config_path;
  bool check_only = false;
  bool print_plan = false;         // --plan: the enabled tests, their phase and needs, the handoff
  std::string postfix_config_dir;  // --postfix-config DIR: "" = postconf's default
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--version") {
      std::printf("mxscreen %s\n", MXSCREEN_VERSION);
      return kExitOk;
    } else if (arg == "--help" || arg == "-h") {
      usage(stdout);
      return kExitOk;
    } else if (arg == "--check-config") {
      check_only = true;
    } else if (arg == "--plan") {
      check_only = print_plan = true;
    } else if (arg == "--postfix-config" && i + 1 < argc) {
      postfix_config_dir = argv[++i];  // postconf -c DIR for the policy check
    } else if (config_arg(argc, argv, &i, &config_path)) {
      continue;
    } else {
      std::fprintf(stderr, "mxscreen: unknown argument '%s'\n", arg.c_str());
      usage(stderr);
      return kExitUsage;
    }
  }
  if (config_path.empty()) {
    usage(stderr);
    return kExitUsage;
  }

  std::vector<std::string> errors;
  std::vector<std::string> config_warnings;  // "file:line:col: warning: ..."
  auto runtime = load_runtime(config_path, &errors, &config_warnings);
  if (!runtime) {
    for (const auto& e : errors) std::fprintf(stderr, "%s\n", e.c_str());
    return kExitUsage;
  }
  const auto warnings = reload_warnings(*runtime->config, config_path);
  if (check_only) {
    if (print_plan) std::printf("%s", runtime->plan.describe().c_str());
    for (const auto& w : warnings)
      std::fprintf(stderr, "%s: warning: %s\n", config_path.c_str(), w.c_str());
    for (const auto& w : config_warnings) std::fprintf(stderr, "%s\n", w.c_str());
    // The deployment, read-only (deploy_lint.h): the backend takes the handoff and offers
    // STARTTLS where it must; Postfix asks the policy service.
    auto lint = backend_handoff_warnings(*runtime->config);
    for (auto& w : postfix_policy_warnings(*runtime->config, postfix_config_dir)) {
      lint.push_back(std::move(w));
    }
    for (const auto& w : lint) {
      std::fprintf(stderr, "%s: warning: %s\n", config_path.c_str(), w.c_str());
    }
    std::printf("%s: configuration OK\n", config_path.c_str());
    return kExitOk;
  }
  const Config& config = *runtime->config;
  Log::configure(config.log.format, config.log.target);
  for (const auto& w : warnings) Log::warning(w);
  for (const auto& w : config_warnings) Log::warning(w);
  std::signal(SIGPIPE, SIG_IGN);
  const std::size_t fit = raise_open_files(config.server.max_sessions, config.backend.max_sessions);

  // Worker 0 runs on the default loop (it owns the signals) in this thread; the others each
  // get a loop and a thread once everything is bound and started.
  const auto workers = static_cast<std::size_t>(config.server.workers);
  WorkerGroup group(workers);
  group.open_files_sessions = fit;
  std::vector<std::unique_ptr<uv_loop_t>> loops;
  std::vector<std::unique_ptr<Server>> servers;
  // Close what was made and let each loop run its close callbacks.
  auto finish = [&](int rc) {
    servers.clear();
    uv_run(uv_default_loop(), UV_RUN_NOWAIT);
    for (auto& loop : loops) {
      uv_run(loop.get(), UV_RUN_NOWAIT);
      uv_loop_close(loop.get());
    }
    return rc;
  };
  for (std::size_t i = 0; i < workers; ++i) {
    uv_loop_t* loop = uv_default_loop();
    if (i > 0) {
      loops.push_back(std::make_unique<uv_loop_t>());
      loop = loops.back().get();
      if (int e = uv_loop_init(loop); e != 0) {
        loops.pop_back();
        Log::error("cannot start worker " + std::to_string(i) + ": " + uv_error(e));
        return finish(kExitFailure);
      }
    }
    servers.push_back(std::make_unique<Server>(loop, runtime, config_path, group, i));
  }
  for (auto& server : servers) {
    if (!server->bind()) return finish(kExitFailure);
  }
  if (!drop_privileges(config)) return finish(kExitFailure);
  for (auto& server : servers) {
    if (!server->start()) return finish(kExitFailure);
  }
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < loops.size(); ++i) {
    threads.emplace_back([loop = loops[i].get(), name = "mxscreen-w" + std::to_string(i + 1)] {
      pthread_setname_np(pthread_self(), name.c_str());  // `top -H`, /proc/PID/task/*/comm
      Log::batch(true);
      uv_run(loop, UV_RUN_DEFAULT);
      Log::batch(false);
    });
  }
  Log::info(std::string("mxscreen ") + MXSCREEN_VERSION + " started" +
            (workers > 1 ? " with " + std::to_string(workers) + " workers" : ""));
  Log::batch(true);
  uv_run(uv_default_loop(), UV_RUN_DEFAULT);
  Log::batch(false);
  for (auto& thread : threads) thread.join();
  Log::info("stopped");
  return finish(kExitOk);
}

}  // namespace
}  // namespace mxscreen::proxy

int main(int argc, char** argv) {
  try {
    return mxscreen::proxy::run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mxscreen: fatal: %s\n", e.what());
    return 1;
  }
}
