// tests/proxy/command_runner_test.cc: ban.command / ban.unban_command: the argv built for an
// address (no shell), and real processes run with bounded concurrency, failures counted.
#include "proxy/command_runner.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "proxy/metrics.h"

namespace mxscreen::proxy {
namespace {

using Argv = std::vector<std::string>;

TEST(CommandArgv, ReplacesThePlaceholderEverywhere) {
  EXPECT_EQ(
      command_argv({"/usr/sbin/nft", "add", "element", "inet", "filter", "banned", "{ {address} }"},
                   "192.0.2.7"),
      (Argv{"/usr/sbin/nft", "add", "element", "inet", "filter", "banned", "{ 192.0.2.7 }"}));
  EXPECT_EQ(command_argv({"/bin/echo", "{address}-{address}"}, "::1"),
            (Argv{"/bin/echo", "::1-::1"}));
}

TEST(CommandArgv, AppendsTheAddressWhenNoArgumentNamesIt) {
  EXPECT_EQ(command_argv({"/usr/local/bin/ban"}, "2001:db8::1"),
            (Argv{"/usr/local/bin/ban", "2001:db8::1"}));
}

TEST(CommandArgv, AnAddressIsOneArgumentNeverAShellWord) {
  // The address comes from a parsed IP, but even odd text stays one argv element.
  EXPECT_EQ(command_argv({"/bin/true", "{address}"}, "a b;rm -rf /"),
            (Argv{"/bin/true", "a b;rm -rf /"}));
}

class CommandRunnerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    uv_loop_init(&loop_);
    char tmpl[] = "/tmp/mxscreen-cmd-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    runner_.reset();
    uv_run(&loop_, UV_RUN_DEFAULT);
    uv_loop_close(&loop_);
    std::filesystem::remove_all(dir_);
  }
  uint64_t count(const std::string& result) {
    return metrics().value("mxscreen_ban_commands_total",
                           "command=\"ban\",result=\"" + result + "\"");
  }
  std::string read(const std::string& name) {
    std::ifstream in(dir_ + "/" + name);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }

  uv_loop_t loop_{};
  std::string dir_;
  std::unique_ptr<CommandRunner> runner_;
};

TEST_F(CommandRunnerTest, RunsEveryCommandAtMostFourAtOnce) {
  runner_ = std::make_unique<CommandRunner>(&loop_);
  uint64_t ok0 = count("ok");
  // Each child appends its address to a file; the address is $1 of the script, never parsed
  // by a shell as code.
  const std::string script = "echo \"$1\" >> " + dir_ + "/out";
  for (int i = 0; i < 10; ++i) {
    runner_->run("ban",
                 command_argv({"/bin/sh", "-c", script, "sh"}, "192.0.2." + std::to_string(i)));
    EXPECT_LE(runner_->running(), CommandRunner::kMaxRunning);
  }
  EXPECT_EQ(runner_->running(), CommandRunner::kMaxRunning);
  EXPECT_EQ(runner_->queued(), 6u);
  uv_run(&loop_, UV_RUN_DEFAULT);  // returns when every child has exited
  EXPECT_EQ(count("ok") - ok0, 10u);
  std::string out = read("out");
  for (int i = 0; i < 10; ++i) {
    EXPECT_NE(out.find("192.0.2." + std::to_string(i) + "\n"), std::string::npos) << out;
  }
}

TEST_F(CommandRunnerTest, FailuresAreCountedNotFatal) {
  runner_ = std::make_unique<CommandRunner>(&loop_);
  uint64_t errors0 = count("error");
  runner_->run("ban", {"/nonexistent/ban-helper", "192.0.2.1"});
  runner_->run("ban", {"/bin/false", "192.0.2.1"});
  runner_->run("ban", {"/bin/sh", "-c", "kill -9 $$"});
  uv_run(&loop_, UV_RUN_DEFAULT);
  EXPECT_EQ(count("error") - errors0, 3u);
  EXPECT_EQ(runner_->running(), 0u);
}

}  // namespace
}  // namespace mxscreen::proxy
