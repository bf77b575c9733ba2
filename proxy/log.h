// proxy/log.h: one line per event, in postscreen's vocabulary, to stderr or syslog (mail
// facility), as text or JSON objects. Lines are whole in every write(2), batched per loop turn.
// Callers pass client-supplied text through protocol::printable() first; the JSON writer escapes
// every field once more.
#pragma once

#include <initializer_list>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "checks/finding.h"
#include "proxy/config.h"  // LogFormat, LogTarget

namespace mxscreen::proxy {

enum class LogLevel { kInfo, kWarning, kError };

using LogField = std::pair<std::string_view, std::string>;

class Log {
 public:
  static void configure(LogFormat format, LogTarget target);
  // `event` is the log word (CONNECT, PREGREET, ...), `message` the whole human line.
  static void event(LogLevel level, std::string_view event, const std::string& message,
                    std::initializer_list<LogField> fields = {});
  static void event_with(LogLevel level, std::string_view event, const std::string& message,
                         std::span<const LogField> fields);
  // While an event loop runs, its thread collects lines and writes them with one write(2)
  // when the loop is about to wait (Server's prepare hook calls flush()) or 16 KiB are
  // pending: a busy worker makes one log write per loop turn, not one per line. Off by
  // default; batch(false) writes what is pending. stderr only (syslog is one call per line).
  static void batch(bool on);
  static void flush();
  static void info(const std::string& message) { event(LogLevel::kInfo, "", message); }
  static void warning(const std::string& message) { event(LogLevel::kWarning, "", message); }
  static void error(const std::string& message) { event(LogLevel::kError, "", message); }
};

// A check's finding as the log and the metrics see it: its line (with `client` as the first
// JSON field unless the finding says otherwise) and its counter. What the finding does to the
// session is Session::apply's; the policy service reports findings with this alone.
void report(const checks::Finding& finding, const std::string& client);

}  // namespace mxscreen::proxy
