// tests/checks/spf_fake_dns.h: a fake resolver for the SPF evaluator's unit tests: answers
// from a small in-memory zone (records per name and type, names that exist, names whose
// queries time out) and drives an SpfCheck round by round to its finding.
#pragma once

#include <algorithm>
#include <cctype>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "checks/spf.h"

namespace mxscreen::checks::testing {

class FakeDns {
 public:
  static std::string fold(std::string name) {
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (!name.empty() && name.back() == '.') name.pop_back();
    return name;
  }

  void add(const std::string& name, DnsRecordType type, std::string value) {
    names_.insert(fold(name));
    records_[{fold(name), type}].push_back(std::move(value));
  }
  void add_name(const std::string& name) { names_.insert(fold(name)); }
  void add_timeout(const std::string& name) { timeouts_.insert(fold(name)); }
  // An MX record with its preference; answers list names by preference, as udns gives them.
  void add_mx(const std::string& name, int preference, std::string host) {
    names_.insert(fold(name));
    mx_[fold(name)].emplace_back(preference, std::move(host));
  }

  DnsReply reply(const DnsQuestion& q) const {
    ++queries;
    DnsReply r;
    std::string name = fold(q.name);
    std::vector<std::string> values;
    if (q.type == DnsRecordType::kMX) {
      auto it = mx_.find(name);
      if (it != mx_.end()) {
        auto sorted = it->second;
        std::stable_sort(sorted.begin(), sorted.end(),
                         [](const auto& a, const auto& b) { return a.first < b.first; });
        for (auto& [pref, host] : sorted) values.push_back(host);
      }
    } else {
      auto it = records_.find({name, q.type});
      if (it != records_.end()) values = it->second;
    }
    if (!values.empty()) {
      r.status = DnsReplyStatus::kOk;
      r.values = values;
    } else if (timeouts_.count(name)) {
      r.status = DnsReplyStatus::kTempFail;
    } else if (names_.count(name)) {
      r.status = DnsReplyStatus::kNoData;
    } else {
      r.status = DnsReplyStatus::kNxDomain;
    }
    return r;
  }

  // Runs `check` to its finding, answering every round from the zone.
  SpfFinding run(SpfCheck& check, int* rounds = nullptr) const {
    for (int round = 1;; ++round) {
      auto progress = check.next();
      if (progress.done()) {
        if (rounds) *rounds = round;
        return *progress.finding;
      }
      for (const DnsQuestion& q : progress.questions) check.answer(q, reply(q));
    }
  }

  mutable int queries = 0;

 private:
  std::map<std::pair<std::string, DnsRecordType>, std::vector<std::string>> records_;
  std::map<std::string, std::vector<std::pair<int, std::string>>> mx_;
  std::set<std::string> names_;
  std::set<std::string> timeouts_;
};

}  // namespace mxscreen::checks::testing
