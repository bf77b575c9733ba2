// checks/greylist_allowlist.cc: see greylist_allowlist.h.
#include "checks/greylist_allowlist.h"

#include <re2/re2.h>

#include <algorithm>
#include <cctype>

#include "protocol/escape.h"

namespace mxscreen::checks {
namespace {

bool ends_with_domain(std::string_view name, std::string_view domain) {
  if (name == domain) return true;
  return name.size() > domain.size() && name.ends_with(domain) &&
         name[name.size() - domain.size() - 1] == '.';
}

// Calls entry(word, &offset) for each non-comment line's first word; a second word is an error.
// An error message from entry is reported at the word's column plus the offset it set.
template <typename Entry>
void for_each_entry(std::string_view text, std::vector<AccessFileError>* errors, Entry entry) {
  int line_no = 0;
  while (!text.empty()) {
    ++line_no;
    auto eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    text = eol == std::string_view::npos ? std::string_view() : text.substr(eol + 1);
    if (auto hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
    auto start = line.find_first_not_of(" \t\r");
    if (start == std::string_view::npos) continue;
    auto end = line.find_last_not_of(" \t\r");
    std::string_view word = line.substr(start, end - start + 1);
    // A regex may hold spaces; anything else is one word.
    if (word.front() != '/' && word.find_first_of(" \t") != std::string_view::npos) {
      errors->push_back({line_no, static_cast<int>(start) + 1,
                         "one entry per line, got \"" + std::string(word) + "\""});
      continue;
    }
    int offset = 0;
    if (auto message = entry(word, &offset); !message.empty()) {
      errors->push_back({line_no, static_cast<int>(start) + 1 + offset, message});
    }
  }
}

// "/regex/" -> the compiled regex, or an error message (and in *offset where in the word the
// error is, when RE2 names the offending fragment).
std::string compile(std::string_view word, std::vector<AllowlistRegex>* out, int* offset) {
  if (word.size() < 3 || word.back() != '/') return "a regex must be written /.../";
  std::string_view body = word.substr(1, word.size() - 2);
  RE2::Options options;
  options.set_case_sensitive(false);
  options.set_log_errors(false);  // reported as file:line:col instead of on stderr
  auto pattern = std::make_shared<const RE2>(re2::StringPiece(body.data(), body.size()), options);
  if (!pattern->ok()) {
    const std::string& fragment = pattern->error_arg();
    if (auto at = body.find(fragment); !fragment.empty() && at != std::string_view::npos) {
      *offset = static_cast<int>(at) + 1;
    }
    return "invalid regex " + std::string(word) + ": " + pattern->error();
  }
  out->push_back({std::string(word), std::move(pattern)});
  return "";
}

bool search(const AllowlistRegex& re, std::string_view text) {
  return RE2::PartialMatch(re2::StringPiece(text.data(), text.size()), *re.pattern);
}

bool plausible_domain(std::string_view d) {
  if (d.empty() || d.size() > 253 || d.front() == '.' || d.back() == '.') return false;
  return std::all_of(d.begin(), d.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '-' || c == '.' || c == '_';
  });
}

}  // namespace

ClientAllowlist ClientAllowlist::parse(std::string_view text,
                                       std::vector<AccessFileError>* errors) {
  ClientAllowlist list;
  for_each_entry(text, errors, [&](std::string_view word, int* offset) -> std::string {
    if (word.front() == '/') return compile(word, &list.regexes_, offset);
    if (auto cidr = protocol::Cidr::parse(word)) {
      list.networks_.push_back(*cidr);
      return "";
    }
    if (auto address = protocol::IpAddress::parse(word)) {
      list.networks_.push_back(
          *protocol::Cidr::parse(std::string(word) + (address->is_v4() ? "/32" : "/128")));
      return "";
    }
    if (word.size() > 1 && word.back() == '.') word.remove_suffix(1);  // "example.com."
    if (plausible_domain(word)) {
      list.suffixes_.push_back(protocol::ascii_lower(word));
      return "";
    }
    return "expected an address, a network, a domain or a /regex/, got \"" + std::string(word) +
           "\"";
  });
  return list;
}

bool ClientAllowlist::matches(const protocol::IpAddress& client, std::string_view verified_name,
                              std::string* why) const {
  for (const auto& net : networks_) {
    if (net.contains(client)) {
      if (why) *why = net.to_string();
      return true;
    }
  }
  if (verified_name.empty()) return false;
  std::string name = protocol::ascii_lower(verified_name);
  while (!name.empty() && name.back() == '.') name.pop_back();
  for (const auto& suffix : suffixes_) {
    if (ends_with_domain(name, suffix)) {
      if (why) *why = suffix;
      return true;
    }
  }
  for (const auto& re : regexes_) {
    if (search(re, name)) {
      if (why) *why = re.text;
      return true;
    }
  }
  return false;
}

RecipientAllowlist RecipientAllowlist::parse(std::string_view text,
                                             std::vector<AccessFileError>* errors) {
  RecipientAllowlist list;
  for_each_entry(text, errors, [&](std::string_view word, int* offset) -> std::string {
    if (word.front() == '/') return compile(word, &list.regexes_, offset);
    auto at = word.rfind('@');
    if (at == std::string_view::npos) {
      if (word.size() > 1 && word.back() == '.') word.remove_suffix(1);
      if (!plausible_domain(word)) return "invalid domain \"" + std::string(word) + "\"";
      list.domains_.push_back(protocol::ascii_lower(word));
    } else if (at == word.size() - 1) {
      if (at == 0) return "an empty local part";
      list.local_parts_.push_back(protocol::ascii_lower(word.substr(0, at)));
    } else {
      if (at == 0 || !plausible_domain(word.substr(at + 1))) {
        return "invalid address \"" + std::string(word) + "\"";
      }
      list.addresses_.push_back(protocol::ascii_lower(word));
    }
    return "";
  });
  return list;
}

bool RecipientAllowlist::matches(std::string_view recipient, std::string* why) const {
  std::string address = protocol::ascii_lower(recipient);
  auto at = address.rfind('@');
  std::string local = at == std::string::npos ? address : address.substr(0, at);
  std::string domain = at == std::string::npos ? "" : address.substr(at + 1);
  auto found = [&](const std::string& entry) {
    if (why) *why = entry;
    return true;
  };
  for (const auto& a : addresses_) {
    if (a == address) return found(a);
  }
  for (const auto& l : local_parts_) {
    if (l == local) return found(l + "@");
  }
  for (const auto& d : domains_) {
    if (!domain.empty() && ends_with_domain(domain, d)) return found(d);
  }
  for (const auto& re : regexes_) {
    if (search(re, address)) return found(re.text);
  }
  return false;
}

}  // namespace mxscreen::checks
