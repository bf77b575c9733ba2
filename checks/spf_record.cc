// checks/spf_record.cc: RFC 7208's record syntax (4.5, 4.6, 5, 6, 12) and macros (7).

#include "checks/spf_record.h"

#include <algorithm>
#include <cctype>

namespace mxscreen::checks::spf {
namespace {

inline constexpr std::size_t kMaxDomainLength = 253;  // 4.3, 7.3
inline constexpr std::size_t kMaxLabelLength = 63;

bool is_alpha(char c) { return std::isalpha(static_cast<unsigned char>(c)) != 0; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_alnum(char c) { return is_alpha(c) || is_digit(c); }

std::string lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && lower(a) == lower(b);
}

// A CIDR length: 1*DIGIT without a leading zero (the suite's cidr4-032), at most `max`.
std::optional<int> parse_cidr_length(std::string_view digits, int max) {
  if (digits.empty() || digits.size() > 3 || (digits.size() > 1 && digits[0] == '0')) {
    return std::nullopt;
  }
  int value = 0;
  for (char c : digits) {
    if (!is_digit(c)) return std::nullopt;
    value = value * 10 + (c - '0');
  }
  if (value > max) return std::nullopt;
  return value;
}

// ip4-network = qnum "." qnum "." qnum "." qnum, qnum without leading zeros (12).
std::optional<protocol::IpAddress> parse_ip4_network(std::string_view text) {
  int parts = 0;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    std::size_t dot = text.find('.', pos);
    std::string_view part = text.substr(pos, dot == std::string_view::npos ? text.npos : dot - pos);
    if (!parse_cidr_length(part, 255)) return std::nullopt;
    ++parts;
    if (dot == std::string_view::npos) break;
    pos = dot + 1;
  }
  if (parts != 4) return std::nullopt;
  return protocol::IpAddress::parse(text);
}

// Removes a trailing dual-cidr-length ("/24", "//64", "/24//64") from `spec`.
bool split_dual_cidr(std::string_view& spec, Mechanism& mechanism) {
  std::size_t slash = spec.rfind('/');
  if (slash != std::string_view::npos && slash > 0 && spec[slash - 1] == '/' &&
      !spec.substr(slash + 1).empty() &&
      std::all_of(spec.begin() + static_cast<std::ptrdiff_t>(slash) + 1, spec.end(), is_digit)) {
    auto length = parse_cidr_length(spec.substr(slash + 1), 128);
    if (!length) return false;
    mechanism.cidr6 = *length;
    spec = spec.substr(0, slash - 1);
    slash = spec.rfind('/');
  }
  if (slash != std::string_view::npos && !spec.substr(slash + 1).empty() &&
      std::all_of(spec.begin() + static_cast<std::ptrdiff_t>(slash) + 1, spec.end(), is_digit)) {
    auto length = parse_cidr_length(spec.substr(slash + 1), 32);
    if (!length) return false;
    mechanism.cidr4 = *length;
    spec = spec.substr(0, slash);
  }
  return true;
}

// The mechanism after its qualifier; false on any syntax error.
bool parse_mechanism(std::string_view term, Mechanism& mechanism) {
  std::size_t end = term.find_first_of(":/");
  std::string name = lower(term.substr(0, end));
  std::string_view rest = end == std::string_view::npos ? std::string_view{} : term.substr(end);
  auto domain_arg = [&](bool required) {
    if (rest.empty()) return !required;
    if (rest[0] != ':') return false;
    mechanism.domain_spec = std::string(rest.substr(1));
    return valid_domain_spec(mechanism.domain_spec);
  };
  if (name == "all") {
    mechanism.kind = MechanismKind::kAll;
    return rest.empty();
  }
  if (name == "include" || name == "exists") {
    mechanism.kind = name == "include" ? MechanismKind::kInclude : MechanismKind::kExists;
    return domain_arg(true);
  }
  if (name == "ptr") {
    mechanism.kind = MechanismKind::kPtr;
    return domain_arg(false);
  }
  if (name == "a" || name == "mx") {
    mechanism.kind = name == "a" ? MechanismKind::kA : MechanismKind::kMx;
    if (!split_dual_cidr(rest, mechanism)) return false;
    return domain_arg(false);
  }
  if (name == "ip4" || name == "ip6") {
    if (rest.empty() || rest[0] != ':') return false;
    std::string_view network = rest.substr(1);
    int prefix = name == "ip4" ? 32 : 128;
    std::size_t slash = network.rfind('/');
    if (slash != std::string_view::npos) {
      auto length = parse_cidr_length(network.substr(slash + 1), prefix);
      if (!length) return false;
      prefix = *length;
      network = network.substr(0, slash);
    }
    std::optional<protocol::IpAddress> address;
    if (name == "ip4") {
      mechanism.kind = MechanismKind::kIp4;
      address = parse_ip4_network(network);
    } else {
      mechanism.kind = MechanismKind::kIp6;
      if (network.find(':') == std::string_view::npos) return false;
      address = protocol::IpAddress::parse(network);
      if (address) address = address->as_v6();  // "::ffff:a.b.c.d" is still an ip6 network
    }
    if (!address) return false;
    mechanism.network = protocol::Cidr{protocol::mask_address(*address, prefix), prefix};
    return true;
  }
  return false;
}

// name = ALPHA *( ALPHA / DIGIT / "-" / "_" / "." ) followed by "=" (6, 12).
std::optional<std::size_t> modifier_name_end(std::string_view term) {
  if (term.empty() || !is_alpha(term[0])) return std::nullopt;
  for (std::size_t i = 1; i < term.size(); ++i) {
    char c = term[i];
    if (c == '=') return i;
    if (!is_alnum(c) && c != '-' && c != '_' && c != '.') return std::nullopt;
  }
  return std::nullopt;
}

bool is_macro_letter(char c, bool explanation) {
  switch (std::tolower(static_cast<unsigned char>(c))) {
    case 's':
    case 'l':
    case 'o':
    case 'd':
    case 'i':
    case 'p':
    case 'h':
    case 'v':
      return true;
    case 'c':
    case 'r':
    case 't':
      return explanation;  // 7.3: only in the explanation string
    default:
      return false;
  }
}

bool is_delimiter(char c) { return std::string_view(".-+,/_=").find(c) != std::string_view::npos; }

// One %{...} macro-expand starting at text[pos] == '%' && text[pos+1] == '{'.
struct MacroExpand {
  char letter = 0;
  int keep = 0;  // 0 = all parts
  bool reverse = false;
  std::string delimiters;
  std::size_t end = 0;  // one past the '}'
};

std::optional<MacroExpand> parse_macro_expand(std::string_view text, std::size_t pos,
                                              bool explanation) {
  MacroExpand m;
  std::size_t i = pos + 2;
  if (i >= text.size() || !is_macro_letter(text[i], explanation)) return std::nullopt;
  m.letter = text[i++];
  std::size_t digits = i;
  while (i < text.size() && is_digit(text[i])) ++i;
  if (i > digits) {
    if (i - digits > 3) return std::nullopt;
    m.keep = std::stoi(std::string(text.substr(digits, i - digits)));
    if (m.keep == 0) return std::nullopt;  // 7.3: the DIGIT transformer MUST be nonzero
  }
  if (i < text.size() && (text[i] == 'r' || text[i] == 'R')) {
    m.reverse = true;
    ++i;
  }
  while (i < text.size() && is_delimiter(text[i])) m.delimiters += text[i++];
  if (i >= text.size() || text[i] != '}') return std::nullopt;
  m.end = i + 1;
  return m;
}

// Walks a macro-string: calls `literal(char)` and `macro(MacroExpand)` / `escape(char)` for
// "%%", "%_", "%-"; false on a syntax error.
template <typename Literal, typename Escape, typename Macro>
bool walk(std::string_view text, bool explanation, Literal literal, Escape escape, Macro macro) {
  for (std::size_t i = 0; i < text.size();) {
    char c = text[i];
    if (c == '%') {
      if (i + 1 >= text.size()) return false;
      char n = text[i + 1];
      if (n == '%' || n == '_' || n == '-') {
        escape(n);
        i += 2;
        continue;
      }
      if (n != '{') return false;
      auto m = parse_macro_expand(text, i, explanation);
      if (!m) return false;
      macro(*m);
      i = m->end;
      continue;
    }
    // macro-literal = %x21-24 / %x26-7E; the explanation string also has spaces (6.2).
    auto u = static_cast<unsigned char>(c);
    if (!((u >= 0x21 && u <= 0x7e) || (explanation && u == ' '))) return false;
    literal(c);
    ++i;
  }
  return true;
}

bool valid_toplabel(std::string_view label) {
  if (label.empty()) return false;
  if (!std::all_of(label.begin(), label.end(), [](char c) { return is_alnum(c) || c == '-'; })) {
    return false;
  }
  if (label.find('-') != std::string_view::npos) {
    return is_alnum(label.front()) && is_alnum(label.back());
  }
  return std::any_of(label.begin(), label.end(), is_alpha);
}

std::string ip_macro(const protocol::IpAddress& ip) {
  if (ip.is_v4()) return ip.to_string();
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (uint8_t byte : ip.bytes) {
    if (!out.empty()) out += '.';
    out += kHex[byte >> 4];
    out += '.';
    out += kHex[byte & 0x0f];
  }
  return out;
}

std::string macro_value(char letter, const MacroFacts& f) {
  switch (std::tolower(static_cast<unsigned char>(letter))) {
    case 's':
      return f.sender;
    case 'l':
      return f.local_part;
    case 'o':
      return f.sender_domain;
    case 'd':
      return f.domain;
    case 'i':
      return ip_macro(f.ip);
    case 'p':
      return f.validated_ptr.empty() ? "unknown" : f.validated_ptr;
    case 'v':
      return f.ip.is_v4() ? "in-addr" : "ip6";
    case 'h':
      return f.helo;
    case 'c':
      return f.ip.to_string();
    case 'r':
      return f.receiver.empty() ? "unknown" : f.receiver;
    case 't':
      return std::to_string(f.now);
    default:
      return {};
  }
}

// 7.3: split on the delimiters, reverse, keep the right-hand parts, join with ".".
std::string transform(const std::string& value, const MacroExpand& m) {
  std::string delimiters = m.delimiters.empty() ? "." : m.delimiters;
  std::vector<std::string> parts;
  std::size_t start = 0;
  for (std::size_t i = 0; i <= value.size(); ++i) {
    if (i == value.size() || delimiters.find(value[i]) != std::string::npos) {
      parts.emplace_back(value.substr(start, i - start));
      start = i + 1;
    }
  }
  if (m.reverse) std::reverse(parts.begin(), parts.end());
  std::size_t first = 0;
  if (m.keep > 0 && static_cast<std::size_t>(m.keep) < parts.size()) {
    first = parts.size() - static_cast<std::size_t>(m.keep);
  }
  std::string out;
  for (std::size_t i = first; i < parts.size(); ++i) {
    if (i > first) out += '.';
    out += parts[i];
  }
  return out;
}

// 7.3: an upper-case macro letter URL-escapes every character outside "unreserved".
std::string url_escape(const std::string& value) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char c : value) {
    if (is_alnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += c;
    } else {
      auto u = static_cast<unsigned char>(c);
      out += '%';
      out += kHex[u >> 4];
      out += kHex[u & 0x0f];
    }
  }
  return out;
}

bool valid_labels(std::string_view name) {
  if (name.empty()) return false;
  std::size_t start = 0;
  while (true) {
    std::size_t dot = name.find('.', start);
    std::size_t length = (dot == std::string_view::npos ? name.size() : dot) - start;
    if (length == 0 || length > kMaxLabelLength) return false;
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

}  // namespace

bool Mechanism::does_lookup() const {
  return kind == MechanismKind::kInclude || kind == MechanismKind::kA ||
         kind == MechanismKind::kMx || kind == MechanismKind::kPtr ||
         kind == MechanismKind::kExists;
}

bool is_spf_record(std::string_view txt) {
  return txt.size() >= 6 && iequals(txt.substr(0, 6), "v=spf1") &&
         (txt.size() == 6 || txt[6] == ' ');
}

ParsedRecord parse_record(std::string_view text) {
  ParsedRecord out;
  if (!is_spf_record(text)) {
    out.error = "not an SPF record";
    return out;
  }
  if (std::any_of(text.begin(), text.end(), [](char c) { return (c & 0x80) != 0; })) {
    out.error = "non-ASCII character in the record";  // 3.1
    return out;
  }
  Record record;
  std::size_t pos = 6;
  while (pos < text.size()) {
    if (text[pos] == ' ') {
      ++pos;
      continue;
    }
    std::size_t end = text.find(' ', pos);
    std::string_view term = text.substr(pos, end == std::string_view::npos ? text.npos : end - pos);
    pos = end == std::string_view::npos ? text.size() : end;
    auto fail = [&](std::string why) {
      out.error = why + ": \"" + std::string(term) + "\"";
      return out;
    };
    if (auto name_end = modifier_name_end(term)) {
      std::string name = lower(term.substr(0, *name_end));
      std::string value(term.substr(*name_end + 1));
      if (name == "redirect" || name == "exp") {
        auto& slot = name == "redirect" ? record.redirect : record.exp;
        if (slot) return fail("modifier given twice");  // 6
        if (!valid_domain_spec(value)) return fail("bad domain-spec");
        slot = value;
      } else if (!valid_macro_string(value, true)) {
        return fail("bad macro-string");  // unknown modifiers are ignored, but parsed (6)
      }
      continue;
    }
    Mechanism mechanism;
    mechanism.text = std::string(term);
    std::string_view rest = term;
    if (!rest.empty() && std::string_view("+-~?").find(rest[0]) != std::string_view::npos) {
      mechanism.qualifier = static_cast<Qualifier>(rest[0]);
      rest.remove_prefix(1);
    }
    if (!parse_mechanism(rest, mechanism)) return fail("unknown or malformed mechanism");
    record.mechanisms.push_back(std::move(mechanism));
  }
  out.record = std::move(record);
  return out;
}

bool valid_macro_string(std::string_view text, bool explanation) {
  return walk(
      text, explanation, [](char) {}, [](char) {}, [](const MacroExpand&) {});
}

bool valid_domain_spec(std::string_view text) {
  if (text.empty()) return false;
  // The literal characters after the last macro-expand (domain-end is one of those, or
  // "." toplabel ["."]).
  std::string tail;
  bool ends_in_macro = false;
  bool ok = walk(
      text, false,
      [&](char c) {
        tail += c;
        ends_in_macro = false;
      },
      [&](char) {
        tail.clear();
        ends_in_macro = true;
      },
      [&](const MacroExpand&) {
        tail.clear();
        ends_in_macro = true;
      });
  if (!ok) return false;
  if (ends_in_macro) return true;
  std::string_view t = tail;
  if (!t.empty() && t.back() == '.') t.remove_suffix(1);
  std::size_t dot = t.rfind('.');
  if (dot == std::string_view::npos) return false;
  return valid_toplabel(t.substr(dot + 1));
}

bool uses_ptr_macro(std::string_view text) {
  bool uses = false;
  walk(
      text, true, [](char) {}, [](char) {},
      [&](const MacroExpand& m) { uses = uses || m.letter == 'p' || m.letter == 'P'; });
  return uses;
}

std::optional<std::string> expand_macros(std::string_view text, const MacroFacts& facts,
                                         bool explanation) {
  std::string out;
  bool ok = walk(
      text, explanation, [&](char c) { out += c; },
      [&](char e) {
        if (e == '%') out += '%';
        if (e == '_') out += ' ';
        if (e == '-') out += "%20";
      },
      [&](const MacroExpand& m) {
        std::string value = transform(macro_value(m.letter, facts), m);
        out += std::isupper(static_cast<unsigned char>(m.letter)) ? url_escape(value) : value;
      });
  if (!ok) return std::nullopt;
  return out;
}

std::optional<std::string> lookup_name(std::string_view expanded) {
  std::string name = lower(expanded);
  if (!name.empty() && name.back() == '.') name.pop_back();
  while (name.size() > kMaxDomainLength) {
    std::size_t dot = name.find('.');
    if (dot == std::string::npos) return std::nullopt;
    name.erase(0, dot + 1);
  }
  if (!valid_labels(name)) return std::nullopt;
  return name;
}

std::optional<std::string> initial_domain(std::string_view domain) {
  std::string name = lower(domain);
  if (!name.empty() && name.back() == '.') name.pop_back();
  if (name.empty() || name.front() == '[' || name.size() > kMaxDomainLength) return std::nullopt;
  if (name.find('.') == std::string::npos || !valid_labels(name)) return std::nullopt;
  return name;
}

}  // namespace mxscreen::checks::spf
