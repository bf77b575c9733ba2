// proxy/log.cc: see log.h.
#include "proxy/log.h"

#include <syslog.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>

#include "protocol/escape.h"
#include "proxy/metrics.h"

namespace mxscreen::proxy {
namespace {

LogFormat g_format = LogFormat::kText;
LogTarget g_target = LogTarget::kStderr;
const std::string g_pid = std::to_string(getpid());  // no fork after start

constexpr std::size_t kBatchLimit = 16 * 1024;
thread_local bool t_batching = false;
thread_local std::string t_pending;

void write_stderr(const std::string& out) {
  ssize_t ignored = ::write(STDERR_FILENO, out.data(), out.size());
  (void)ignored;
}

std::string_view level_name(LogLevel level) {
  switch (level) {
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarning:
      return "warning";
    case LogLevel::kError:
      return "error";
  }
  return "info";
}

std::string timestamp() {
  auto now = std::chrono::system_clock::now();
  auto secs = std::chrono::system_clock::to_time_t(now);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()) % 1000;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(ms.count()));
  return buf;
}

}  // namespace

void Log::configure(LogFormat format, LogTarget target) {
  if (target == LogTarget::kSyslog && g_target != LogTarget::kSyslog) {
    openlog("mxscreen", LOG_PID | LOG_NDELAY, LOG_MAIL);
  }
  g_format = format;
  g_target = target;
}

void Log::event(LogLevel level, std::string_view event, const std::string& message,
                std::initializer_list<LogField> fields) {
  event_with(level, event, message, std::span<const LogField>(fields.begin(), fields.size()));
}

void report(const checks::Finding& f, const std::string& client) {
  if (!f.word.empty()) {
    std::vector<LogField> fields;
    fields.reserve(f.fields.size() + 1);
    if (f.client_field) fields.emplace_back("client", client);
    fields.insert(fields.end(), f.fields.begin(), f.fields.end());
    Log::event_with(f.warning ? LogLevel::kWarning : LogLevel::kInfo, f.word, f.detail, fields);
  }
  if (!f.counter.empty()) metrics().inc(std::string(f.counter), f.labels);
}

void Log::event_with(LogLevel level, std::string_view event, const std::string& message,
                     std::span<const LogField> fields) {
  std::string line;
  if (g_format == LogFormat::kJson) {
    line = "{";
    if (g_target == LogTarget::kStderr) line += "\"ts\":\"" + timestamp() + "\",";
    line += "\"level\":\"" + std::string(level_name(level)) + "\"";
    if (!event.empty()) line += ",\"event\":\"" + protocol::json_escape(event) + "\"";
    for (const auto& [key, value] : fields) {
      line += ",\"" + protocol::json_escape(key) + "\":\"" + protocol::json_escape(value) + "\"";
    }
    line += ",\"msg\":\"" + protocol::json_escape(message) + "\"}";
  } else {
    if (level != LogLevel::kInfo) line = std::string(level_name(level)) + ": ";
    line += message;
  }

  if (g_target == LogTarget::kSyslog) {
    int prio = level == LogLevel::kError     ? LOG_ERR
               : level == LogLevel::kWarning ? LOG_WARNING
                                             : LOG_INFO;
    syslog(prio, "%s", line.c_str());  // never a client-controlled format string
    return;
  }
  std::string out =
      g_format == LogFormat::kJson ? line : timestamp() + " mxscreen[" + g_pid + "]: " + line;
  out += '\n';
  if (t_batching) {
    t_pending += out;
    if (t_pending.size() >= kBatchLimit) flush();
    return;
  }
  // One write(2) per line (or per batch of whole lines): concurrent writers never interleave
  // within a line.
  write_stderr(out);
}

void Log::batch(bool on) {
  if (!on) flush();
  t_batching = on;
}

void Log::flush() {
  if (t_pending.empty()) return;
  write_stderr(t_pending);
  t_pending.clear();
  if (t_pending.capacity() > 4 * kBatchLimit) t_pending.shrink_to_fit();
}

}  // namespace mxscreen::proxy
