// protocol/ehlo.cc: see ehlo.h.
#include "protocol/ehlo.h"

#include <cctype>

namespace mxscreen::protocol {
namespace {

std::string keyword(const std::string& line) {
  std::string kw;
  for (char c : line) {
    if (c == ' ' || c == '=') break;
    kw += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  return kw;
}

}  // namespace

std::vector<std::string> mirror_capabilities(const std::vector<std::string>& backend_lines,
                                             bool withhold_pipelining) {
  std::vector<std::string> out;
  for (size_t i = 1; i < backend_lines.size(); ++i) {
    const std::string& line = backend_lines[i];
    std::string kw = keyword(line);
    if (kw.empty() || kw == "AUTH" || kw == "XCLIENT" || kw == "XFORWARD" || kw == "STARTTLS") {
      continue;
    }
    if (kw == "PIPELINING" && withhold_pipelining) continue;
    out.push_back(line);
  }
  return out;
}

bool ehlo_offers(const std::vector<std::string>& lines, const std::string& wanted) {
  for (size_t i = 1; i < lines.size(); ++i) {
    if (keyword(lines[i]) == keyword(wanted)) return true;
  }
  return false;
}

std::vector<std::string> default_capabilities(bool withhold_pipelining) {
  std::vector<std::string> lines = {
      "",    "PIPELINING", "SIZE 10240000", "8BITMIME", "ENHANCEDSTATUSCODES",
      "DSN", "SMTPUTF8",   "CHUNKING"};
  return mirror_capabilities(lines, withhold_pipelining);
}

}  // namespace mxscreen::protocol
