// checks/dialogue.cc: see dialogue.h. Reply codes and texts are Postfix's smtpd's where it has
// one, postscreen's for the deep tests.
#include "checks/dialogue.h"

#include <algorithm>

#include "checks/bare_newline.h"
#include "checks/envelope.h"
#include "checks/non_smtp.h"
#include "checks/pipelining.h"
#include "protocol/escape.h"

namespace mxscreen::checks {
namespace {

using protocol::Verb;

std::string crlf(std::string text) { return text + "\r\n"; }

// A finding of the dialogue: logged with the test and outcome as fields, counted in
// mxscreen_test_results_total; `word` "" logs the test's name as the word.
Finding dialogue_finding(std::string word, std::string detail, std::string test,
                         std::string outcome) {
  Finding f;
  f.word = word.empty() ? test : std::move(word);
  f.detail = std::move(detail);
  f.test = std::move(test);
  f.outcome = std::move(outcome);
  f.fields = {{"test", f.test}, {"outcome", f.outcome}};
  f.counted_as_test_result();
  return f;
}

std::string verb_name(const protocol::Command& cmd) {
  std::string name(cmd.verb_text.substr(0, 16));
  for (char& c : name) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return protocol::printable(name, 16);
}

// The HELO checks, with the session's local address among this host's own (copied only for a
// local address the listeners do not name, a wildcard listener's).
std::optional<std::string> helo_reject(const std::string& helo, const DialoguePolicy& policy,
                                       const std::optional<protocol::IpAddress>& local) {
  if (!local || !new_own_address(policy.helo_facts, *local)) {
    return helo_reject_reply(helo, policy.helo, policy.helo_facts);
  }
  HeloFacts facts = policy.helo_facts;
  facts.own_addresses.push_back(*local);
  return helo_reject_reply(helo, policy.helo, facts);
}

// The path of a MAIL or RCPT line the dialogue accepted, parsed again as it was then.
protocol::Path path_of(const std::string& line, bool rcpt, bool smtputf8) {
  if (line.empty()) return {};
  auto cmd = protocol::parse_command(line);
  std::string why;
  auto args = rcpt ? protocol::parse_rcpt_to(cmd.argument, &why, smtputf8)
                   : protocol::parse_mail_from(cmd.argument, &why);
  return args ? std::move(args->path) : protocol::Path{};
}

}  // namespace

bool Step::closes() const {
  return std::any_of(findings.begin(), findings.end(),
                     [](const Finding& f) { return f.ends_session(); });
}

std::string Step::sent() const {
  std::string out = reply;
  for (const auto& f : findings) {
    if (f.ends_session() && !f.reply.empty()) out.append(f.reply).append("\r\n");
  }
  return out;
}

Dialogue::Dialogue(std::shared_ptr<const DialoguePolicy> policy, DialogueClient client)
    : policy_(std::move(policy)),
      client_address_(client.address),
      client_port_(client.port),
      local_(client.local),
      tempfail_rcpt_(client.tempfail_rcpt),
      errors_(client.under_stress ? policy_->errors.under_stress() : policy_->errors) {
  if (!client.enforced_by.empty() || !client.enforce_reply.empty() || client.client_reject) {
    refusal_ = std::make_unique<Refusal>(Refusal{std::move(client.enforced_by),
                                                 std::move(client.enforce_reply),
                                                 std::move(client.client_reject)});
  }
}

std::string Dialogue::who() const {
  if (!client_port_) return std::string("[") + client_address_.to_string() + "]";
  return protocol::Endpoint{client_address_, *client_port_}.log_string();
}

const std::string& Dialogue::enforced_by() const {
  static const std::string kNone;
  return refusal_ ? refusal_->enforced_by : kNone;
}

Step Dialogue::error(std::string reply, Step step) {
  auto d = errors_.on_error_reply();
  if (d.disconnect) return too_many_errors(std::move(step));
  step.reply = crlf(std::move(reply));
  step.delay = d.delay;
  return step;
}

Step Dialogue::too_many_errors(Step step) {
  step.reply.clear();
  step.delay = std::chrono::milliseconds{0};
  step.findings.push_back(
      dialogue_finding("HARD-LIMIT",
                       "too many errors (" + std::to_string(errors_.errors()) + ") from " + who() +
                           " after " + last_verb_ + "; 421 and disconnect",
                       "errors", "drop")
          .closes(Finding::Then::kReplyAndClose,
                  "421 4.7.0 " + policy_->hostname + " Error: too many errors"));
  return step;
}

Step Dialogue::junk(std::string reply) {
  auto d = errors_.on_junk_command();
  Step step;
  if (d.disconnect) return too_many_errors(std::move(step));
  step.reply = crlf(std::move(reply));
  step.delay = d.delay;
  return step;
}

bool Dialogue::apply(const Verdict& verdict, const std::string& test, const std::string& detail,
                     Step* step) {
  if (verdict.passed()) return false;
  failed_ |= deep_test_bit(test);
  std::string outcome = verdict.outcome == Outcome::kDrop      ? "drop"
                        : verdict.outcome == Outcome::kEnforce ? "enforce"
                                                               : "ignore";
  step->findings.push_back(dialogue_finding("", detail, test, outcome));
  if (verdict.outcome == Outcome::kDrop) {
    // postscreen's drop: 521 and close now.
    step->findings.back().closes(Finding::Then::kReplyAndClose, "521 5.5.1 Protocol error");
    step->reply.clear();
    step->delay = std::chrono::milliseconds{0};
    return true;
  }
  if (verdict.outcome == Outcome::kEnforce && enforced_by().empty()) {
    if (!refusal_) refusal_ = std::make_unique<Refusal>();
    refusal_->enforced_by = verdict.reason;
  }
  return false;
}

Step Dialogue::on_line(const protocol::Line& line, std::string_view early_input) {
  Step step;
  if (++commands_ > policy_->command_count_limit) {
    step.findings.push_back(
        dialogue_finding("COMMAND COUNT LIMIT",
                         "COMMAND COUNT LIMIT from " + who() + " after " + last_verb_,
                         "command_count", "drop")
            .closes(Finding::Then::kReplyAndClose,
                    "421 4.7.0 " + policy_->hostname + " Error: too many commands"));
    return step;
  }
  if (line.too_long) return error("500 5.5.2 Error: line too long");
  if (line.has_nul) return error("500 5.5.2 Error: NUL character in command");

  if (line.bare_lf && !bare_newline_seen_) {
    bare_newline_seen_ = true;
    auto v = bare_newline_verdict(policy_->bare_newline, true);
    if (apply(v, "bare_newline", "BARE NEWLINE from " + who() + " after " + last_verb_, &step)) {
      return step;
    }
  }
  auto non_smtp =
      non_smtp_verdict(policy_->non_smtp_command, line.text, policy_->forbidden_commands);
  if (!non_smtp.passed()) {
    if (apply(non_smtp, "non_smtp",
              "NON-SMTP COMMAND from " + who() + " after " + last_verb_ + ": " +
                  protocol::printable(line.text),
              &step)) {
      return step;
    }
  }
  if (!early_input.empty() && !pipelining_seen_) {
    auto v = pipelining_verdict(policy_->pipelining, true, false);
    if (!v.passed()) {
      pipelining_seen_ = true;
      // postscreen's line: the command just read, then what arrived before its reply.
      std::string verb = verb_name(protocol::parse_command(line.text));
      if (apply(v, "pipelining",
                "COMMAND PIPELINING from " + who() + " after " + verb + ": " +
                    protocol::printable(early_input),
                &step)) {
        return step;
      }
    }
  }
  auto cmd = protocol::parse_command(line.text);
  Step result = on_command(cmd, line.text);
  last_verb_ = verb_name(cmd);
  for (auto& f : step.findings) result.findings.insert(result.findings.begin(), std::move(f));
  return result;
}

Step Dialogue::on_command(const protocol::Command& cmd, const std::string& raw) {
  switch (cmd.verb) {
    case Verb::kEhlo:
      return on_helo(cmd, true);
    case Verb::kHelo:
      return on_helo(cmd, false);
    case Verb::kMail:
      return on_mail(cmd, raw);
    case Verb::kRcpt:
      return on_rcpt(cmd, raw);
    case Verb::kData:
    case Verb::kBdat:
      if (!in_mail_) return error("503 5.5.1 Error: need RCPT command");
      return error("554 5.5.1 Error: no valid recipients");
    case Verb::kRset:
      in_mail_ = false;
      mail_line_.clear();
      return junk("250 2.0.0 Ok");
    case Verb::kNoop:
      return junk("250 2.0.0 Ok");
    case Verb::kHelp:
      return junk("214 2.0.0 Ok");
    case Verb::kEtrn:
      return junk("458 4.3.0 Unable to queue messages");
    case Verb::kVrfy:
      if (policy_->disable_vrfy) {
        errors_.on_junk_command();
        return error("502 5.5.1 VRFY command is disabled");
      }
      return junk("252 2.0.0 Send mail to find out");
    case Verb::kExpn:
      return error("502 5.5.1 EXPN command is disabled");
    case Verb::kQuit: {
      // Not a test: the client's own goodbye, the session's outcome "quit".
      Step step;
      Finding bye;
      bye.test = "quit";
      step.findings.push_back(
          std::move(bye.closes(Finding::Then::kReplyAndClose, "221 2.0.0 Bye")));
      return step;
    }
    case Verb::kAuth: {
      Step step = error("503 5.5.1 Error: authentication not enabled");
      // Before a hard-limit finding that closes the session: the AUTH line and its strike come
      // first.
      auto auth =
          dialogue_finding("AUTH", "AUTH attempt on an MX port from " + who(), "auth", "reject");
      auth.strike = "AUTH on an MX port";
      step.findings.insert(step.findings.begin(), std::move(auth));
      return step;
    }
    case Verb::kStarttls: {
      if (!policy_->offer_starttls || tls_active_) {
        return error("502 5.5.1 Error: command not implemented");
      }
      if (!cmd.argument.empty()) return error("501 5.5.4 Syntax: STARTTLS");
      Step step;
      step.reply = crlf("220 2.0.0 Ready to start TLS");
      step.then = Step::Then::kStartTls;
      return step;
    }
    case Verb::kUnknown:
      break;
  }
  return error("500 5.5.2 Error: command not recognized");
}

Step Dialogue::on_helo(const protocol::Command& cmd, bool esmtp) {
  if (cmd.argument.empty()) {
    return error(esmtp ? "501 5.5.4 Syntax: EHLO hostname" : "501 5.5.4 Syntax: HELO hostname");
  }
  esmtp_ = esmtp;
  helo_ = std::string(cmd.argument);
  helo_reject_ = helo_reject(helo_, *policy_, local_);
  in_mail_ = false;  // RFC 5321 4.1.4: EHLO resets the transaction
  mail_line_.clear();
  Step step;
  if (esmtp) {
    std::vector<std::string> lines = {policy_->hostname};
    for (const auto& cap : policy_->capabilities) lines.push_back(cap);
    if (policy_->offer_starttls && !tls_active_) lines.push_back("STARTTLS");
    for (size_t i = 0; i < lines.size(); ++i) {
      step.reply += "250" + std::string(i + 1 < lines.size() ? "-" : " ") + lines[i] + "\r\n";
    }
  } else {
    step.reply = crlf("250 " + policy_->hostname);
  }
  if (policy_->handoff_after_helo && !helo_reject_ && enforced_by().empty()) {
    step.then = Step::Then::kHandoff;
  }
  return step;
}

Step Dialogue::on_mail(const protocol::Command& cmd, const std::string& raw) {
  if (policy_->helo_required && helo_.empty())
    return error("503 5.5.1 Error: send HELO/EHLO first");
  if (in_mail_) return error("503 5.5.1 Error: nested MAIL command");
  std::string why;
  auto args = protocol::parse_mail_from(cmd.argument, &why);
  if (!args) return error(address_syntax_reply(why));
  smtputf8_ = false;
  for (const auto& param : args->params) smtputf8_ = smtputf8_ || param.keyword == "SMTPUTF8";
  mail_line_ = raw;
  in_mail_ = true;
  Step step;
  step.reply = crlf("250 2.1.0 Ok");
  return step;
}

Step Dialogue::on_rcpt(const protocol::Command& cmd, const std::string& raw) {
  if (!in_mail_) return error("503 5.5.1 Error: need MAIL command");
  std::string why;
  auto args = protocol::parse_rcpt_to(cmd.argument, &why, smtputf8_);
  if (!args) return error(address_syntax_reply(why));

  // Postfix's order with smtpd_delay_reject: client, HELO, sender, recipient restrictions.
  std::optional<std::string> reject;
  std::string test;
  if (tempfail_rcpt_) {
    reject = "450 4.7.1 <" + protocol::printable(args->path.address, 255) +
             ">: Recipient address rejected: Service temporarily unavailable, try again later";
    test = "fake_mx";
  } else if (!enforced_by().empty()) {
    reject = !refusal_->enforce_reply.empty()
                 ? refusal_->enforce_reply
                 : "550 5.7.1 Service unavailable; client [" + client_address_.to_string() +
                       "] blocked by the " + refusal_->enforced_by + " test";
    test = "enforce";
  } else if (refusal_ && refusal_->client_reject) {
    reject = refusal_->client_reject;
    test = "client";
  } else if (helo_reject_) {
    reject = helo_reject_;
    test = "helo";
  } else if ((reject = sender_reject_reply(sender(), policy_->sender_reject_non_fqdn))) {
    test = "sender";
  } else if ((reject = recipient_reject_reply(args->path, policy_->recipient_reject_non_fqdn))) {
    test = "recipient";
  }
  if (reject) return rcpt_rejected(*reject, args->path.address, test);
  rcpt_line_ = raw;
  Step step;
  step.then = Step::Then::kHandoff;
  return step;
}

Step Dialogue::rcpt_rejected(const std::string& reply, const std::string& rcpt,
                             const std::string& test) {
  Step step = error(reply);
  std::string log = "NOQUEUE: reject: RCPT from " + who() + ": " + reply + "; from=<" +
                    protocol::printable(sender().address, 255) + "> to=<" +
                    protocol::printable(rcpt, 255) + "> proto=" + (esmtp_ ? "ESMTP" : "SMTP") +
                    " helo=<" + protocol::printable(helo_, 255) + ">";
  step.findings.insert(step.findings.begin(), dialogue_finding("NOQUEUE", log, test, "reject"));
  return step;
}

protocol::Path Dialogue::sender() const { return path_of(mail_line_, false, false); }

protocol::Path Dialogue::recipient() const { return path_of(rcpt_line_, true, smtputf8_); }

Step Dialogue::refuse_handoff(std::string reply) {
  rcpt_line_.clear();
  return error(std::move(reply));
}

Step Dialogue::reject_held_rcpt(const std::string& reply, const std::string& test) {
  std::string rcpt = recipient().address;
  rcpt_line_.clear();
  return rcpt_rejected(reply, rcpt, test);
}

Step Dialogue::on_time_limit() {
  Step step;
  step.findings.push_back(
      dialogue_finding("COMMAND TIME LIMIT",
                       "COMMAND TIME LIMIT from " + who() + " after " + last_verb_, "command_time",
                       "drop")
          .closes(Finding::Then::kReplyAndClose,
                  "421 4.4.2 " + policy_->hostname + " Error: timeout exceeded"));
  return step;
}

void Dialogue::reset_after_starttls() {
  tls_active_ = true;
  esmtp_ = false;
  helo_.clear();
  helo_reject_.reset();
  in_mail_ = false;
  mail_line_.clear();
  rcpt_line_.clear();
}

}  // namespace mxscreen::checks
