// checks/dialogue.h: mxscreen's own SMTP engine for the pre-dialogue (postscreen_smtpd.c's
// job), sans I/O: it is handed one command line at a time and says what to reply, how long
// to wait first (error sleep), and what happens next (go on, close, hand off, start TLS).
// It runs the deep protocol tests, the HELO and envelope checks, and Postfix's error limits.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "checks/errors.h"
#include "checks/finding.h"
#include "checks/helo.h"
#include "checks/non_smtp.h"
#include "checks/verdict.h"
#include "protocol/address.h"
#include "protocol/line_reader.h"
#include "protocol/smtp_command.h"

namespace mxscreen::checks {

// What the dialogue is configured with: the same for every session of one config and one probe
// of the backend's EHLO, so it is made once and shared (proxy/screening.h); a copy per session
// was over half a KiB of every client in the dialogue (issue 15).
struct DialoguePolicy {
  std::string hostname;  // in the 421 replies and the EHLO reply
  bool helo_required = true;
  bool disable_vrfy = true;
  int command_count_limit = 20;
  Action pipelining = Action::kEnforce;
  Action non_smtp_command = Action::kDrop;
  Action bare_newline = Action::kOff;
  std::vector<std::string> forbidden_commands = default_forbidden_commands();
  HeloPolicy helo;
  // This host's name and the addresses it listens on; the session's own local address is
  // DialogueClient::local.
  HeloFacts helo_facts;
  bool sender_reject_non_fqdn = true;
  bool recipient_reject_non_fqdn = true;
  ErrorPolicy errors;  // DialogueClient::under_stress tightens them
  // EHLO keywords after the greeting line, as the backend offers them, already without
  // what mxscreen cannot honour before handoff (AUTH, XCLIENT, PIPELINING while tested).
  std::vector<std::string> capabilities;
  bool offer_starttls = false;
  // Hand off after a passing EHLO/HELO (only HELO checks are on) instead of at the first
  // RCPT that passes.
  bool handoff_after_helo = false;
};

// What the dialogue knows of its one client, decided before the dialogue starts.
struct DialogueClient {
  protocol::IpAddress address;   // in reject texts, and "[ip]:port" in log lines
  std::optional<uint16_t> port;  // unset: "[ip]" (a dry run, explain.h)
  // The address the client connected to: one of this host's own for the HELO check (unset: the
  // policy's helo_facts alone).
  std::optional<protocol::IpAddress> local;
  bool under_stress = false;  // server.stress_threshold passed: Postfix's stress error limits
  // The fake MX with action tempfail_rcpt: talk, then 450 at every RCPT, never hand off
  // (the classic Postfix nolisting recipe).
  bool tempfail_rcpt = false;
  // A test before the dialogue (greet, DNSBL) said enforce: every RCPT gets 550, with
  // `enforce_reply` when that test has its own text.
  std::string enforced_by;
  std::string enforce_reply;
  // A client restriction decided before the dialogue (reverse DNS): the reply to every RCPT.
  std::optional<std::string> client_reject;
};

// The dialogue's answer to one line: its findings (the deep tests' hits, NOQUEUE rejects, the
// error and command limits, QUIT), then the reply. A finding that ends the session carries the
// last reply itself (Finding::closes); the session applies the findings in order
// (Session::apply), then sends `reply` after `delay`, then does `then`.
struct Step {
  enum class Then { kContinue, kHandoff, kStartTls };
  std::string reply;  // CRLF-terminated, may be several lines; empty at a handoff at RCPT
  std::chrono::milliseconds delay{0};
  Then then = Then::kContinue;
  std::vector<Finding> findings;

  // A finding ends the session here.
  bool closes() const;
  // What the client reads for this step: `reply`, then the closing finding's reply (with CRLF).
  std::string sent() const;
};

class Dialogue {
 public:
  // `policy` is never null.
  Dialogue(std::shared_ptr<const DialoguePolicy> policy, DialogueClient client);

  // One command line. `early_input`: what the client had already sent behind it when this
  // line was taken (the pipelining test), empty when nothing.
  Step on_line(const protocol::Line& line, std::string_view early_input = {});
  // smtp.command_time_limit ran out.
  Step on_time_limit();
  // RFC 3207 4.2: after the TLS handshake the client starts over with EHLO.
  void reset_after_starttls();

  // What the handoff replays to the backend.
  bool esmtp() const { return esmtp_; }
  const std::string& helo() const { return helo_; }
  const std::string& mail_line() const { return mail_line_; }
  const std::string& rcpt_line() const { return rcpt_line_; }
  // The envelope of the RCPT that asked for the handoff (greylisting's triplet): the lines above
  // parsed again (a Path each, kept beside them, was 200 bytes more per client in the dialogue).
  protocol::Path sender() const;
  protocol::Path recipient() const;
  // The session held the handoff back (greylisting): the RCPT got `reply` instead, counted
  // as an error reply as Postfix counts its 450.
  Step refuse_handoff(std::string reply);
  // The session's own test of the held RCPT failed (the DNS tests of names, domain.h): the
  // reply, an error, and a NOQUEUE line naming `test`, as for the dialogue's own rejects.
  Step reject_held_rcpt(const std::string& reply, const std::string& test);
  const std::string& enforced_by() const;
  int errors() const { return errors_.errors(); }
  // Whether a deep test ("pipelining", "non_smtp", "bare_newline") failed in this session,
  // whatever its action: a failed test is not a pass for the verdict cache (pass_cache.h).
  bool failed(std::string_view test) const { return (failed_ & deep_test_bit(test)) != 0; }

 private:
  Step rcpt_rejected(const std::string& reply, const std::string& rcpt, const std::string& test);
  Step on_command(const protocol::Command& cmd, const std::string& raw);
  Step on_helo(const protocol::Command& cmd, bool esmtp);
  Step on_mail(const protocol::Command& cmd, const std::string& raw);
  Step on_rcpt(const protocol::Command& cmd, const std::string& raw);
  Step junk(std::string reply);
  // An error reply, through the error counter (sleep, or 421 at the hard limit).
  Step error(std::string reply, Step step = {});
  Step too_many_errors(Step step);
  // Applies a deep test's verdict; returns true when the session ends here (drop).
  bool apply(const Verdict& verdict, const std::string& test, const std::string& detail,
             Step* step);

  std::string who() const;  // "[ip]:port"

  std::shared_ptr<const DialoguePolicy> policy_;
  // The client (DialogueClient), kept compact: every client in the dialogue has a Dialogue, and
  // in a burst they all have one at once (issue 15).
  protocol::IpAddress client_address_;
  std::optional<uint16_t> client_port_;
  std::optional<protocol::IpAddress> local_;
  bool tempfail_rcpt_ = false;
  // What every RCPT gets instead of a handoff, decided before the dialogue (DialogueClient) or
  // by a deep test that said enforce (apply). Rare, so on the heap only when there is one.
  struct Refusal {
    std::string enforced_by;
    std::string enforce_reply;
    std::optional<std::string> client_reject;
  };
  std::unique_ptr<Refusal> refusal_;
  ErrorCounter errors_;
  int commands_ = 0;
  bool esmtp_ = false;
  bool tls_active_ = false;
  bool pipelining_seen_ = false;
  bool bare_newline_seen_ = false;
  std::string helo_;
  std::optional<std::string> helo_reject_;
  bool in_mail_ = false;
  bool smtputf8_ = false;  // MAIL had SMTPUTF8: 8-bit recipients are fine
  std::string mail_line_;
  std::string rcpt_line_;
  std::string last_verb_ = "CONNECT";
  // The deep tests that failed (apply), one bit each.
  static uint8_t deep_test_bit(std::string_view test) {
    return test == "pipelining" ? 1 : test == "non_smtp" ? 2 : test == "bare_newline" ? 4 : 0;
  }
  uint8_t failed_ = 0;
};

}  // namespace mxscreen::checks
