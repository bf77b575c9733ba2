// protocol/smtp_command.cc: the SMTP command parser. Paths follow RFC 5321 section 4.1.2 with
// Postfix's leniency (strict_rfc821_envelopes = no); hostname checks follow Postfix's
// valid_hostname(3) and smtpd_check.c so that mxscreen rejects exactly what Postfix would.
#include "protocol/smtp_command.h"

#include <array>
#include <utility>

#include "protocol/address.h"

namespace mxscreen::protocol {
namespace {

constexpr size_t kMaxHostnameLength = 255;  // RFC 1035, Postfix's VALID_HOSTNAME_LEN
constexpr size_t kMaxLabelLength = 63;      // RFC 1035, Postfix's VALID_LABEL_LEN

constexpr std::array<std::pair<std::string_view, Verb>, 15> kVerbs = {{
    {"EHLO", Verb::kEhlo},
    {"HELO", Verb::kHelo},
    {"MAIL", Verb::kMail},
    {"RCPT", Verb::kRcpt},
    {"DATA", Verb::kData},
    {"BDAT", Verb::kBdat},
    {"RSET", Verb::kRset},
    {"NOOP", Verb::kNoop},
    {"QUIT", Verb::kQuit},
    {"VRFY", Verb::kVrfy},
    {"EXPN", Verb::kExpn},
    {"HELP", Verb::kHelp},
    {"STARTTLS", Verb::kStarttls},
    {"AUTH", Verb::kAuth},
    {"ETRN", Verb::kEtrn},
}};

bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
bool is_alpha(unsigned char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_alnum(unsigned char c) { return is_alpha(c) || is_digit(c); }
bool is_space(char c) { return c == ' ' || c == '\t'; }
char to_upper(char c) { return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c; }

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (to_upper(a[i]) != to_upper(b[i])) return false;
  }
  return true;
}

bool istarts_with(std::string_view text, std::string_view prefix) {
  return text.size() >= prefix.size() && iequals(text.substr(0, prefix.size()), prefix);
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && is_space(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_space(text.back())) text.remove_suffix(1);
  return text;
}

bool has_8bit(std::string_view text) {
  for (unsigned char c : text) {
    if (c >= 0x80) return true;
  }
  return false;
}

Verb lookup_verb(std::string_view word) {
  for (const auto& [name, verb] : kVerbs) {
    if (iequals(word, name)) return verb;
  }
  return Verb::kUnknown;
}

// "a.example." counts as "a.example", but "a.." stays as is (Postfix's dup_if_truncate()).
std::string_view strip_trailing_dot(std::string_view name) {
  if (name.size() > 1 && name.back() == '.' && name[name.size() - 2] != '.') {
    name.remove_suffix(1);
  }
  return name;
}

// Postfix's valid_hostname(3), underscores included ("grr.." says its source). With
// allow_8bit, bytes >= 0x80 count as letters (EAI domains under SMTPUTF8).
bool valid_hostname(std::string_view name, bool allow_8bit) {
  if (name.empty() || name.size() > kMaxHostnameLength) return false;
  size_t label = 0;
  bool non_numeric = false;
  for (size_t i = 0; i < name.size(); ++i) {
    auto c = static_cast<unsigned char>(name[i]);
    bool last = i + 1 == name.size();
    if (is_alnum(c) || c == '_' || (allow_8bit && c >= 0x80)) {
      if (++label > kMaxLabelLength) return false;
      if (!is_digit(c)) non_numeric = true;
    } else if (c == '.') {
      if (label == 0 || last) return false;
      label = 0;
    } else if (c == '-') {
      if (++label == 1 || last || name[i + 1] == '.') return false;
    } else {
      return false;
    }
  }
  return non_numeric;  // "192.0.2.1" is not a hostname
}

// The inside of "[...]": an IPv4 address, or "IPv6:" and an IPv6 address (RFC 5321 section
// 4.1.3). General address literals ("tag:content") are not accepted, as Postfix doesn't.
bool valid_address_literal(std::string_view inner) {
  if (istarts_with(inner, "IPv6:")) {
    inner.remove_prefix(5);
    return inner.find(':') != std::string_view::npos && IpAddress::parse(inner).has_value();
  }
  return inner.find(':') == std::string_view::npos && IpAddress::parse(inner).has_value();
}

// `text[pos]` is '"'. Returns the index after the closing quote, or npos when the string is
// unterminated or holds a control character (RFC 5321 qtextSMTP / quoted-pairSMTP).
size_t skip_quoted(std::string_view text, size_t pos) {
  for (size_t i = pos + 1; i < text.size(); ++i) {
    auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x20 || c == 0x7f) return std::string_view::npos;
    if (c == '\\') {
      ++i;
    } else if (c == '"') {
      return i + 1;
    }
  }
  return std::string_view::npos;
}

// RFC 5322 atext plus '.' (Postfix accepts "a..b" and ".a" unless strict), 8-bit bytes are
// refused later unless SMTPUTF8.
bool is_local_char(unsigned char c) {
  static constexpr std::string_view kSpecials = "!#$%&'*+-/=?^_`{|}~.";
  return is_alnum(c) || c >= 0x80 || kSpecials.find(static_cast<char>(c)) != std::string_view::npos;
}

// A domain in a path: labels of letters, digits, '-', '_' (and 8-bit bytes, checked later),
// one trailing dot allowed; or an address literal. Hostname rules proper are is_fqdn_address's.
bool valid_envelope_domain(std::string_view domain) {
  if (domain.empty() || domain.size() > kMaxHostnameLength) return false;
  if (domain.front() == '[') {
    return domain.size() > 2 && domain.back() == ']' &&
           valid_address_literal(domain.substr(1, domain.size() - 2));
  }
  domain = strip_trailing_dot(domain);
  size_t label = 0;
  for (size_t i = 0; i < domain.size(); ++i) {
    auto c = static_cast<unsigned char>(domain[i]);
    if (c == '.') {
      if (label == 0 || i + 1 == domain.size()) return false;
      label = 0;
    } else if (is_alnum(c) || c == '-' || c == '_' || c >= 0x80) {
      ++label;
    } else {
      return false;
    }
  }
  return true;
}

// Splits "<path> params" or "path params" into the path text (without <>) and the rest.
bool split_path(std::string_view rest, std::string_view* path, std::string_view* tail) {
  bool bracketed = rest.front() == '<';
  size_t pos = bracketed ? 1 : 0;
  while (pos < rest.size()) {
    char c = rest[pos];
    if (c == '"') {
      pos = skip_quoted(rest, pos);
      if (pos == std::string_view::npos) return false;
      continue;
    }
    if ((bracketed && c == '>') || (!bracketed && is_space(c))) break;
    if (c == '<' || c == '>') return false;
    // Control characters (a bare CR, NUL, DEL) have no place in a path (RFC 5321 4.1.2), and
    // the line holding them is replayed to the backend byte for byte (issue 13).
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return false;
    ++pos;
  }
  if (!bracketed) {
    *path = rest.substr(0, pos);
    *tail = rest.substr(pos);
    return true;
  }
  if (pos >= rest.size()) return false;  // no closing '>'
  *path = rest.substr(1, pos - 1);
  *tail = rest.substr(pos + 1);
  return tail->empty() || is_space(tail->front());
}

// "user@domain", "\"a b\"@domain", "postmaster", "@r1,@r2:user@domain", or "" for <>.
bool parse_mailbox(std::string_view text, Path* path) {
  if (text.empty()) {
    path->null_path = true;
    return true;
  }
  if (text.front() == '@') {
    // A source route (RFC 5321 section 4.1.1.3, appendix C): "@a,@b:", each hop a domain;
    // accepted and ignored.
    size_t colon = text.find(':');
    if (colon == std::string_view::npos) return false;
    std::string_view route = text.substr(0, colon);
    while (!route.empty()) {
      size_t comma = route.find(',');
      std::string_view hop = route.substr(0, comma);
      if (hop.size() < 2 || hop.front() != '@' || !valid_envelope_domain(hop.substr(1))) {
        return false;
      }
      route.remove_prefix(comma == std::string_view::npos ? route.size() : comma + 1);
      if (comma != std::string_view::npos && route.empty()) return false;
    }
    text.remove_prefix(colon + 1);
    if (text.empty()) return false;
  }
  size_t pos = 0;
  if (text.front() == '"') {
    pos = skip_quoted(text, 0);
    if (pos == std::string_view::npos) return false;
  } else {
    while (pos < text.size() && is_local_char(static_cast<unsigned char>(text[pos]))) ++pos;
    if (pos == 0) return false;
  }
  std::string_view domain;
  if (pos < text.size()) {
    if (text[pos] != '@') return false;
    domain = text.substr(pos + 1);
    if (!valid_envelope_domain(domain)) return false;
  }
  path->address = std::string(text);
  path->local_part = std::string(text.substr(0, pos));
  path->domain = std::string(domain);
  return true;
}

// RFC 5321 section 4.1.2: esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-").
bool valid_keyword(std::string_view keyword) {
  if (keyword.empty() || !is_alnum(static_cast<unsigned char>(keyword.front()))) return false;
  for (unsigned char c : keyword) {
    if (!is_alnum(c) && c != '-') return false;
  }
  return true;
}

// esmtp-value = 1*(%d33-60 / %d62-126), plus UTF-8 (RFC 6531 section 3.3; checked later).
bool valid_value(std::string_view value) {
  if (value.empty()) return false;
  for (unsigned char c : value) {
    if (c < 33 || c == '=' || c == 127) return false;
  }
  return true;
}

bool all_digits(std::string_view text) {
  for (unsigned char c : text) {
    if (!is_digit(c)) return false;
  }
  return !text.empty();
}

// RFC 3461 section 4.1: "NEVER" or a list of SUCCESS, FAILURE, DELAY.
bool valid_notify(std::string_view value) {
  if (iequals(value, "NEVER")) return true;
  while (true) {
    size_t comma = value.find(',');
    std::string_view item = value.substr(0, comma);
    if (!iequals(item, "SUCCESS") && !iequals(item, "FAILURE") && !iequals(item, "DELAY")) {
      return false;
    }
    if (comma == std::string_view::npos) return true;
    value.remove_prefix(comma + 1);
  }
}

// The values of the parameters mxscreen knows (RFC 1870, 6152, 6531, 3461); others pass.
bool valid_known_param(const EsmtpParam& p) {
  std::string_view v = p.value;
  if (p.keyword == "SMTPUTF8") return !p.has_value;
  if (p.keyword != "SIZE" && p.keyword != "BODY" && p.keyword != "RET" && p.keyword != "ENVID" &&
      p.keyword != "NOTIFY" && p.keyword != "ORCPT") {
    return true;
  }
  if (!p.has_value) return false;
  if (p.keyword == "SIZE") return v.size() <= 20 && all_digits(v);
  if (p.keyword == "BODY") {
    return iequals(v, "7BIT") || iequals(v, "8BITMIME") || iequals(v, "BINARYMIME");
  }
  if (p.keyword == "RET") return iequals(v, "FULL") || iequals(v, "HDRS");
  if (p.keyword == "NOTIFY") return valid_notify(v);
  if (p.keyword == "ORCPT") {
    size_t semicolon = v.find(';');  // addr-type ";" xtext
    return semicolon != std::string_view::npos && semicolon > 0 && semicolon + 1 < v.size();
  }
  return true;  // ENVID: any xtext
}

bool parse_params(std::string_view tail, std::vector<EsmtpParam>* params, std::string* error) {
  while (true) {
    tail = trim(tail);
    if (tail.empty()) return true;
    size_t end = 0;
    while (end < tail.size() && !is_space(tail[end])) ++end;
    std::string_view token = tail.substr(0, end);
    tail.remove_prefix(end);
    size_t eq = token.find('=');
    EsmtpParam param;
    std::string_view keyword = token.substr(0, eq);
    if (!valid_keyword(keyword)) {
      *error = "5.5.4 Invalid parameter syntax";
      return false;
    }
    for (char c : keyword) param.keyword += to_upper(c);
    param.has_value = eq != std::string_view::npos;
    if (param.has_value) param.value = std::string(token.substr(eq + 1));
    if ((param.has_value && !valid_value(param.value)) || !valid_known_param(param)) {
      *error = "5.5.4 Invalid parameter: " + param.keyword;
      return false;
    }
    for (const auto& seen : *params) {
      if (seen.keyword == param.keyword) {
        *error = "5.5.4 Duplicate parameter: " + param.keyword;
        return false;
      }
    }
    params->push_back(std::move(param));
  }
}

std::optional<MailArgs> parse_envelope(std::string_view argument, bool is_mail, bool smtputf8,
                                       std::string* error) {
  std::string_view prefix = is_mail ? "FROM:" : "TO:";
  std::string_view syntax =
      is_mail ? "5.5.4 Syntax: MAIL FROM:<address>" : "5.5.4 Syntax: RCPT TO:<address>";
  std::string_view bad_address =
      is_mail ? "5.1.7 Bad sender address syntax" : "5.1.3 Bad recipient address syntax";
  if (!istarts_with(argument, prefix)) {
    *error = syntax;
    return std::nullopt;
  }
  // "FROM: <a@b>": Postfix takes spaces after the colon unless strict_rfc821_envelopes.
  std::string_view rest = trim(argument.substr(prefix.size()));
  if (rest.empty()) {
    *error = syntax;
    return std::nullopt;
  }
  MailArgs args;
  std::string_view path_text;
  std::string_view tail;
  if (!split_path(rest, &path_text, &tail) || !parse_mailbox(path_text, &args.path) ||
      (!is_mail && args.path.null_path)) {
    *error = bad_address;
    return std::nullopt;
  }
  if (!parse_params(tail, &args.params, error)) return std::nullopt;
  if (is_mail) {
    for (const auto& p : args.params) smtputf8 = smtputf8 || p.keyword == "SMTPUTF8";
  }
  if (!smtputf8) {
    if (has_8bit(path_text)) {
      *error = "5.6.7 Must declare SMTPUTF8 to send unicode address";
      return std::nullopt;
    }
    for (const auto& p : args.params) {
      if (has_8bit(p.value)) {
        *error = "5.5.4 Invalid parameter: " + p.keyword;
        return std::nullopt;
      }
    }
  }
  return args;
}

}  // namespace

Command parse_command(std::string_view line) {
  Command cmd;
  size_t start = 0;
  while (start < line.size() && is_space(line[start])) ++start;
  size_t end = start;
  while (end < line.size() && !is_space(line[end])) ++end;
  cmd.verb_text = line.substr(start, end - start);
  cmd.argument = trim(line.substr(end));
  cmd.verb = lookup_verb(cmd.verb_text);
  return cmd;
}

std::optional<MailArgs> parse_mail_from(std::string_view argument, std::string* error) {
  return parse_envelope(argument, true, false, error);
}

std::optional<MailArgs> parse_rcpt_to(std::string_view argument, std::string* error,
                                      bool smtputf8) {
  return parse_envelope(argument, false, smtputf8, error);
}

bool is_valid_helo(std::string_view helo) {
  if (helo.empty()) return false;
  // Postfix: reject_invalid_hostaddr for "[...]", else reject_invalid_hostname, which also
  // takes a bare IP address ("XXX back compat" in smtpd_check.c).
  if (helo.front() == '[') {
    return helo.size() > 2 && helo.back() == ']' &&
           valid_address_literal(helo.substr(1, helo.size() - 2));
  }
  std::string_view name = strip_trailing_dot(helo);
  return valid_hostname(name, false) || IpAddress::parse(name).has_value();
}

bool is_fqdn(std::string_view name) {
  if (!name.empty() && name.front() == '[') return true;
  name = strip_trailing_dot(name);
  return valid_hostname(name, false) && name.find('.') != std::string_view::npos;
}

bool is_fqdn_address(const Path& path) {
  if (path.null_path || path.address.empty()) return true;
  std::string_view domain = path.domain;
  if (domain.size() > 2 && domain.front() == '[' && domain.back() == ']') return true;
  domain = strip_trailing_dot(domain);
  return valid_hostname(domain, true) && domain.find('.') != std::string_view::npos;
}

bool is_non_smtp_command(std::string_view line, const std::vector<std::string>& forbidden_verbs) {
  Command cmd = parse_command(line);
  for (const auto& verb : forbidden_verbs) {
    if (!verb.empty() && iequals(cmd.verb_text, verb)) return true;
  }
  // A header line: "Name:" at the very start, the name of letters, digits and hyphens.
  size_t pos = 0;
  while (pos < line.size() &&
         (is_alnum(static_cast<unsigned char>(line[pos])) || line[pos] == '-')) {
    ++pos;
  }
  return pos > 0 && pos < line.size() && line[pos] == ':' &&
         lookup_verb(line.substr(0, pos)) == Verb::kUnknown;
}

}  // namespace mxscreen::protocol
