// proxy/log.h: one line per event, in postscreen's vocabulary, to stderr or syslog (mail
// facility), as text or JSON objects. Callers pass client-supplied text through
// protocol::printable() first; the JSON writer escapes every field once more.
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

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
  static void info(const std::string& message) { event(LogLevel::kInfo, "", message); }
  static void warning(const std::string& message) { event(LogLevel::kWarning, "", message); }
  static void error(const std::string& message) { event(LogLevel::kError, "", message); }
};

}  // namespace mxscreen::proxy
