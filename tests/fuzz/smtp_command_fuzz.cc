// tests/fuzz/smtp_command_fuzz.cc: one client command line through every parser of
// protocol/smtp_command (verb, MAIL/RCPT paths and ESMTP parameters, HELO checks, non-SMTP
// detection) and the escapes that put it in a log line.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "protocol/escape.h"
#include "protocol/smtp_command.h"
#include "protocol/xclient.h"
#include "tests/fuzz/fuzz_check.h"

using namespace mxscreen::protocol;

namespace {

bool inside(std::string_view part, std::string_view whole) {
  return part.empty() ||
         (part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size());
}

void check_path(const MailArgs& args) {
  FUZZ_CHECK(!args.path.null_path || args.path.address.empty());
  for (const auto& p : args.params) FUZZ_CHECK(p.has_value || p.value.empty());
  (void)is_fqdn_address(args.path);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view line(reinterpret_cast<const char*>(data), size);
  Command cmd = parse_command(line);
  FUZZ_CHECK(inside(cmd.verb_text, line));
  FUZZ_CHECK(inside(cmd.argument, line));
  std::string error;
  if (auto mail = parse_mail_from(cmd.argument, &error)) check_path(*mail);
  error.clear();
  if (auto rcpt = parse_rcpt_to(cmd.argument, &error, false)) check_path(*rcpt);
  if (auto rcpt = parse_rcpt_to(cmd.argument, &error, true)) check_path(*rcpt);
  (void)is_valid_helo(cmd.argument);
  (void)is_fqdn(cmd.argument);
  (void)is_non_smtp_command(line, {"CONNECT", "GET", "POST", "USER", "PASS"});
  std::string shown = printable(line, 200);
  for (unsigned char c : shown) FUZZ_CHECK(c >= 0x20 && c < 0x7f);
  std::string json = json_escape(line);
  for (unsigned char c : json) FUZZ_CHECK(c >= 0x20 && c < 0x7f);
  std::string xtext = xtext_encode(line);
  for (unsigned char c : xtext) FUZZ_CHECK(c > 0x20 && c < 0x7f && c != '=');
  return 0;
}
