// protocol/smtp_command.h: SMTP command parsing (RFC 5321 section 4.1): the verb, MAIL FROM and
// RCPT TO paths with their ESMTP parameters, HELO/EHLO and address checks with Postfix's
// semantics, and detection of non-SMTP commands (HTTP, proxy CONNECT, header lines).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mxscreen::protocol {

enum class Verb {
  kEhlo,
  kHelo,
  kMail,
  kRcpt,
  kData,
  kBdat,
  kRset,
  kNoop,
  kQuit,
  kVrfy,
  kExpn,
  kHelp,
  kStarttls,
  kAuth,
  kEtrn,
  kUnknown
};

// Views into the line given to parse_command(); valid as long as that line is.
struct Command {
  Verb verb = Verb::kUnknown;
  std::string_view verb_text;  // as sent; empty for an empty line
  std::string_view argument;   // after the verb, leading and trailing spaces/tabs trimmed
};

// The verb is the first space- or tab-separated word, matched case-insensitively; leading
// whitespace is skipped, as Postfix's smtpd tokenizer does.
Command parse_command(std::string_view line);

struct Path {
  std::string address;     // without <> and source route, empty for <>; a quoted local part keeps
                           // its quotes ("\"a b\"@example.org")
  bool null_path = false;  // <>
  std::string local_part;
  std::string domain;  // empty when unqualified ("postmaster"); may be an address literal
                       // "[192.0.2.1]" / "[IPv6:2001:db8::1]"
};

struct EsmtpParam {
  std::string keyword;  // upper-cased
  std::string value;    // as sent
  bool has_value = false;
};

struct MailArgs {
  Path path;
  std::vector<EsmtpParam> params;  // in the order sent
};

// "FROM:<a@b> SIZE=100 BODY=8BITMIME" / "TO:<a@b> NOTIFY=SUCCESS ORCPT=rfc822;a@b", the argument
// of Command. As Postfix with strict_rfc821_envelopes = no: "FROM: <a@b>" and a bare "FROM:a@b"
// are accepted; a source route "<@a,@b:x@y>" is dropped. On failure returns nullopt and sets
// *error to the text for a 501 reply ("5.1.7 Bad sender address syntax", "5.5.4 Invalid
// parameter: SIZE", ...). Known parameters (SIZE, BODY, SMTPUTF8, RET, ENVID, NOTIFY, ORCPT) have
// their values checked; others pass through for the backend to judge at replay. 8-bit bytes need
// SMTPUTF8 (RFC 6531 section 3.4): on MAIL as a parameter, on RCPT as `smtputf8` (the
// transaction's MAIL had it); Postfix answers that case with 553 5.6.7.
std::optional<MailArgs> parse_mail_from(std::string_view argument, std::string* error);
std::optional<MailArgs> parse_rcpt_to(std::string_view argument, std::string* error,
                                      bool smtputf8 = false);

// Postfix's reject_invalid_helo_hostname: a valid hostname (valid_hostname(3): letters, digits,
// hyphens, underscores, labels <= 63, total <= 255, no leading/trailing hyphen, not all-numeric,
// one trailing dot ignored), a bare IP address, or an address literal [192.0.2.1] /
// [IPv6:2001:db8::1].
bool is_valid_helo(std::string_view helo);
// Postfix's reject_non_fqdn_helo_hostname: a valid hostname with a dot. A name starting with
// '[' is not checked (Postfix skips address literals here), so it counts as fully qualified.
bool is_fqdn(std::string_view name);
// Postfix's reject_non_fqdn_sender / reject_non_fqdn_recipient: the null path and an address
// literal domain pass; otherwise the domain must be a valid hostname with a dot.
bool is_fqdn_address(const Path& path);

// A line no SMTP client sends (postscreen_forbidden_commands): its first word is one of
// `forbidden_verbs` (case-insensitive; Postfix's default "CONNECT GET POST", "USER"/"PASS" for
// POP3 clients), or it looks like a message or HTTP header ("Host: x", "User-Agent: x": a word of
// letters, digits and hyphens then ':', as Postfix 3.9's /^[^ ]+: /) and is not an SMTP verb.
bool is_non_smtp_command(std::string_view line, const std::vector<std::string>& forbidden_verbs);

}  // namespace mxscreen::protocol
