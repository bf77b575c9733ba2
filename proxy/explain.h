// proxy/explain.h: `mxscreen ctl explain ADDRESS [--helo NAME] [--from ADDR] [--to ADDR]
// [--json]` (issue 19): a dry run of every enabled test for one client, in the running process,
// against its live config, store and DNS, writing nothing. The facts are gathered on worker 0's
// loop (Explainer: store reads, the client's DNS, the DNS of the names it gives and SPF, then
// the session's own greylist_triplet on a DryRunStore); conclude() then walks them in the session's
// order with the session's own decisions and reply texts (checks/, proxy/screening.h) and says what
// each test finds and what the client would be answered. Tests that watch a live dialogue
// (pregreet, pipelining, non-SMTP commands, bare newline) are reported as not evaluated.
#pragma once

#include <uv.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "checks/domain.h"
#include "checks/limits.h"
#include "protocol/address.h"
#include "proxy/client_dns.h"
#include "proxy/domain_dns.h"
#include "proxy/greylisting.h"
#include "proxy/runtime.h"
#include "proxy/spf_check.h"
#include "proxy/store.h"
#include "proxy/uv_handle.h"

namespace mxscreen::proxy {

class Server;

// Longest --helo, --from or --to value taken (RFC 5321 4.5.3.1: a path is at most 256 bytes).
inline constexpr std::size_t kExplainValueLimit = 256;

struct ExplainRequest {
  protocol::IpAddress client;
  std::string helo;       // "" = not given: the client's PTR name, else "[address]"
  std::string sender;     // "" with sender_given: the null sender
  std::string recipient;  // "" = not given: postmaster@server.hostname
  bool helo_given = false, sender_given = false, recipient_given = false;
  bool json = false;
  std::string error;  // set when the request is invalid: the "ERR ..." text, no newline
};

// The words after "explain". Every value must be printable ASCII without spaces, at most
// kExplainValueLimit bytes; "<>" (or "") is the null sender.
ExplainRequest parse_explain_request(const std::vector<std::string>& args);

// A read the dry run made of the state store, shown to the admin.
struct StoreRead {
  std::string key;
  StoreStatus status = StoreStatus::kNotFound;
  std::string value;
};

// greylist_triplet's answer, run on a store that writes nothing (DryRunStore), and the reads
// it made on the way (the client's pass count, the triplet's record, its network record).
struct GreylistPeek {
  GreylistAnswer answer;
  std::vector<StoreRead> reads;
};

// Reads go to the real store (and are kept in `reads`); writes are not made and answer kOk as
// if they were, so greylist_triplet decides exactly as for a session and changes nothing.
class DryRunStore : public Store {
 public:
  explicit DryRunStore(Store& real) : real_(real) {}
  void get(const std::string& key, GetCallback cb) override;
  void put(const std::string&, const std::string&, std::chrono::seconds,
           StatusCallback cb) override;
  void increment(const std::string&, int64_t by, std::chrono::seconds,
                 IncrementCallback cb) override;
  void put_if(const std::string&, const std::optional<std::string>&, const std::string&,
              std::chrono::seconds, StatusCallback cb) override;
  void remove(const std::string&, StatusCallback cb) override;
  void scan_page(const std::string& prefix, const std::string& cursor, std::size_t max,
                 const ScanFilter& keep, PageCallback cb) override;
  std::string_view engine() const override { return real_.engine(); }
  bool dry_run() const override { return true; }

  std::vector<StoreRead> reads;

 private:
  Store& real_;
};

// What Explainer gathered.
struct ExplainFacts {
  ExplainRequest request;
  int64_t now = 0;  // wall clock, seconds
  StoreStatus ban_status = StoreStatus::kNotFound;
  std::string ban_record;
  StoreStatus pass_status = StoreStatus::kNotFound;
  std::string pass_record;
  bool nolisting_pass = false;  // the fake MX's pair signal (fmxp:) is stored for the client
  checks::ClientLimits::Result limits = checks::ClientLimits::Result::kOk;
  int concurrent = 0;  // the client's sessions now
  bool resolver = false;
  std::optional<ClientDnsSnapshot> dns;        // set when a resolver runs
  std::optional<checks::DomainFacts> domains;  // set when the names were looked up
  std::optional<checks::SpfFinding> spf;       // set when sender.spf is on
  std::optional<GreylistPeek> greylist;        // set when greylisting is on
  bool timed_out = false;  // some lookup had not answered when the deadline came
  std::vector<std::string> backend_ehlo;
  bool under_stress = false;
};

struct ExplainLine {
  std::string test;    // the plan's name ("dnsbl", "greylist"), or "access", "ban", ...
  std::string phase;   // connect, greet_end, stream, helo, rcpt
  std::string result;  // one word: pass, listed, new, not_evaluated, ...
  std::string detail;  // for the admin; client-given text escaped
};

struct ExplainAnswer {
  std::string phase;   // where it happens: connect, greet_end, helo, mail, rcpt
  std::string action;  // reply (and the session goes on or ends), close, handoff
  std::string reply;   // "554 5.7.1 ..." without CRLF; "" for a handoff or a silent close
  std::string detail;
};

struct ExplainReport {
  std::string client, helo, sender, recipient;
  std::vector<ExplainLine> lines;
  ExplainAnswer answer;
};

// The HELO name the dry run gives: --helo, else the verified name, else "[address]".
std::string explain_helo(const ExplainFacts& facts);

// The dry run's conclusion, in the session's order (session.cc connect_decision, greet_done,
// the dialogue, rcpt_passed). Pure but for reading `runtime`.
ExplainReport conclude(const Runtime& runtime, const ExplainFacts& facts);

// "test PHASE RESULT: detail" lines then "answer PHASE ACTION: reply"; or one JSON object.
std::string format_text(const ExplainReport& report);
std::string format_json(const ExplainReport& report);

// Gathers the facts for one request on `server`'s loop, then calls `done` with the formatted
// answer (the caller checks its own liveness). Bounded by dns.timeout per DNS step: whatever
// has not answered by then is reported as pending.
class Explainer : public std::enable_shared_from_this<Explainer> {
 public:
  using Done = std::function<void(const std::string& text)>;
  Explainer(Server& server, ExplainRequest request);
  ~Explainer();
  // `done` may hold the explainer itself: it is let go once it has run.
  void start(Done done);

 private:
  void client_dns_done();
  void stage1_done();   // store reads and the client's DNS
  void start_stage2();  // the names' DNS and SPF
  void stage2_done();
  void start_greylist();  // then the greylist triplet, read only, on every fact the session has
  void finish();
  void timer_fired();  // dns.timeout ran out for the step in progress

  Server& server_;
  std::shared_ptr<const Runtime> runtime_;
  ExplainFacts facts_;
  Done done_;
  int stage1_ = 0;  // answers still out
  int stage2_ = 0;
  bool finished_ = false;
  std::unique_ptr<ClientLookups> dns_;
  std::unique_ptr<DomainLookups> domain_dns_;
  std::unique_ptr<SpfEvaluation> spf_;
  bool greylist_started_ = false;
  std::unique_ptr<DryRunStore> dry_store_;  // greylist_triplet's store: reads only
  Timer timer_;                             // dns.timeout per DNS step
};

// The admin socket's "explain ..." request (control.cc): `reply` gets the whole answer, the
// report then "OK", or "ERR ..." for a bad request.
void serve_explain(Server& server, const std::vector<std::string>& args,
                   std::function<void(const std::string&)> reply);
// How long an explain request may take: every DNS step within dns.timeout, and some slack.
std::chrono::milliseconds explain_time_limit(const Config& config);

}  // namespace mxscreen::proxy
