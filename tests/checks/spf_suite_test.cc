// tests/checks/spf_suite_test.cc: every case of the RFC 7208 test suite
// (tests/checks/spf/rfc7208-tests.tsv, converted from the published YAML; see the README there)
// through checks::SpfCheck, with a fake resolver answering from each scenario's zone data.

#include <gtest/gtest.h>

#include <cctype>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "checks/spf.h"
#include "tests/checks/spf_fake_dns.h"

namespace mxscreen::checks {
namespace {

using testing::FakeDns;

std::string unescape(const std::string& text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\\' && i + 1 < text.size() && text[i + 1] == '\\') {
      out += '\\';
      ++i;
    } else if (text[i] == '\\' && i + 3 < text.size() && text[i + 1] == 'x') {
      out += static_cast<char>(std::stoi(text.substr(i + 2, 2), nullptr, 16));
      i += 3;
    } else {
      out += text[i];
    }
  }
  return out;
}

std::vector<std::string> split(const std::string& line, char sep) {
  std::vector<std::string> fields;
  std::stringstream stream(line);
  std::string field;
  while (std::getline(stream, field, sep)) fields.push_back(unescape(field));
  if (!line.empty() && line.back() == sep) fields.emplace_back();
  return fields;
}

struct SuiteCase {
  std::string scenario, name, spec, helo, host, mail_from, explanation;
  std::vector<std::string> results;
  int zone = 0;
};

struct Suite {
  std::vector<FakeDns> zones;
  std::vector<SuiteCase> cases;
};

Suite load_suite() {
  Suite suite;
  std::ifstream file(std::string(MXSCREEN_SOURCE_DIR) + "/tests/checks/spf/rfc7208-tests.tsv");
  std::string line, scenario;
  while (std::getline(file, line)) {
    if (line.empty() || line[0] == '#') continue;
    auto f = split(line, '\t');
    if (f[0] == "scenario") {
      scenario = f[1];
      suite.zones.emplace_back();
    } else if (f[0] == "name") {
      suite.zones.back().add_name(f[1]);
    } else if (f[0] == "timeout") {
      suite.zones.back().add_timeout(f[1]);
    } else if (f[0] == "record") {
      const std::string& type = f[2];
      if (type == "MX") {
        std::size_t space = f[3].find(' ');
        suite.zones.back().add_mx(f[1], std::stoi(f[3].substr(0, space)), f[3].substr(space + 1));
      } else {
        DnsRecordType t = type == "A"      ? DnsRecordType::kA
                          : type == "AAAA" ? DnsRecordType::kAAAA
                          : type == "PTR"  ? DnsRecordType::kPTR
                                           : DnsRecordType::kTXT;
        suite.zones.back().add(f[1], t, f[3]);
      }
    } else if (f[0] == "test") {
      SuiteCase c;
      c.scenario = scenario;
      c.name = f[1];
      c.spec = f[2];
      c.helo = f[3];
      c.host = f[4];
      c.mail_from = f[5];
      c.results = split(f[6], ',');
      c.explanation = f.size() > 7 ? f[7] : "";
      c.zone = static_cast<int>(suite.zones.size()) - 1;
      suite.cases.push_back(c);
    }
  }
  return suite;
}

bool iequal(const std::string& a, const std::string& b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](unsigned char x, unsigned char y) {
           return std::tolower(x) == std::tolower(y);
         });
}

TEST(ChecksSpfSuite, Rfc7208TestSuite) {
  Suite suite = load_suite();
  ASSERT_EQ(suite.cases.size(), 198u) << "the suite file is incomplete";
  int passed = 0;
  for (const SuiteCase& c : suite.cases) {
    SCOPED_TRACE(c.scenario + " / " + c.name + " (RFC 7208 " + c.spec + ")");
    auto ip = protocol::IpAddress::parse(c.host);
    ASSERT_TRUE(ip) << c.host;
    SpfCheck check(SpfRequest{*ip, c.helo, c.mail_from, "mx.receiver.example", 1700000000});
    SpfFinding finding = suite.zones[static_cast<std::size_t>(c.zone)].run(check);
    std::string got(to_string(finding.result));
    bool result_ok = std::find(c.results.begin(), c.results.end(), got) != c.results.end();
    // "DEFAULT": no exp= text applies (ours is the reply text's own). The suite's expected
    // texts mix the case of %{ir}'s hex digits; DNS names are case-blind, so compare so.
    bool exp_ok = c.explanation.empty() ||
                  (c.explanation == "DEFAULT" ? finding.explanation.empty()
                                              : iequal(finding.explanation, c.explanation));
    EXPECT_TRUE(result_ok) << "result " << got << ", expected "
                           << ::testing::PrintToString(c.results) << " (" << finding.problem << ")";
    EXPECT_TRUE(exp_ok) << "explanation \"" << finding.explanation << "\", expected \""
                        << c.explanation << "\"";
    if (result_ok && exp_ok) ++passed;
    if (std::getenv("SPF_SUITE_VERBOSE"))
      std::cout << c.name << " " << got << " [" << finding.mechanism << "] " << finding.explanation
                << " / " << finding.problem << "\n";
  }
  std::cout << "RFC 7208 test suite: " << passed << "/" << suite.cases.size() << " passed\n";
  RecordProperty("passed", passed);
}

}  // namespace
}  // namespace mxscreen::checks
