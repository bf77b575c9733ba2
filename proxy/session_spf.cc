// proxy/session_spf.cc: SPF in mxscreen's own dialogue (sender.spf). The evaluation starts as
// soon as a MAIL FROM is accepted, so its DNS rounds overlap the client's RCPTs; the finding is
// applied at the RCPT that would hand off, before the DNS tests of names and greylisting: a
// refused sender gets "550 5.7.23" for that RCPT (a NOQUEUE line with test spf), anything
// else goes on with the finding as a fact for greylisting (GreylistQuery::spf_*).

#include <chrono>

#include "checks/spf_policy.h"
#include "proxy/session.h"

namespace mxscreen::proxy {

void Session::maybe_start_spf() {
  const auto& c = config();
  if (c.sender.spf == checks::SpfMode::kOff || !pre_->dialogue) return;
  const std::string& mail = pre_->dialogue->mail_line();
  if (pre_->spf ? mail == pre_->spf->mail_line : mail.empty()) return;
  // A new transaction (or none after RSET/EHLO): the old evaluation is of no use.
  if (!pre_->spf) pre_->spf = std::make_unique<SpfState>();
  pre_->spf->mail_line = mail;
  pre_->spf->run.reset();
  pre_->spf->finding.reset();
  if (mail.empty()) return;
  pre_->spf->request = checks::SpfRequest{client_.address, pre_->dialogue->helo(),
                                          pre_->dialogue->sender().address, c.server.hostname,
                                          std::chrono::duration_cast<std::chrono::seconds>(
                                              std::chrono::system_clock::now().time_since_epoch())
                                              .count()};
  Resolver* resolver = server_.resolver();
  if (!resolver) {
    checks::SpfFinding f;
    f.result = checks::SpfResult::kTempError;
    f.problem = "no DNS resolver";
    return spf_found(f);
  }
  pre_->spf->run = std::make_unique<SpfEvaluation>(
      server_.loop(), *resolver, c.sender, pre_->spf->request,
      [this](const checks::SpfFinding& finding) { spf_found(finding); });
  if (pre_->spf->run->immediate()) spf_found(*pre_->spf->run->immediate());
}

void Session::spf_found(const checks::SpfFinding& finding) {
  pre_->spf->finding = finding;
  apply(checks::spf_report(finding, pre_->spf->request, who(), "session",
                           checks::spf_rejects(finding, config().sender.spf)));
  if (!pre_->spf->waiting || state_ != State::kDialogue) return;
  pre_->spf->waiting = false;
  pre_->store_wait = false;
  rcpt_ready(true);
}

void Session::rcpt_ready(bool resumed) {
  if (!pre_->dialogue->rcpt_line().empty()) {
    if (config().sender.spf != checks::SpfMode::kOff && pre_->spf && !pre_->spf->finding &&
        pre_->spf->run) {
      // The evaluation is still out: the RCPT (and what follows it) waits for it.
      pre_->spf->waiting = true;
      pre_->store_wait = true;
      client_conn_.stop_reading();
      return;
    }
    if (const auto* spf = spf_finding()) {
      auto finding =
          checks::spf_rcpt_finding(*spf, config().sender.spf, pre_->dialogue->sender().address);
      if (finding.then != checks::Finding::Then::kContinue) {
        apply(finding);
        // Called from run_dialogue's loop, the loop goes on by itself; after a wait, resume it.
        if (resumed) resume_dialogue();
        return;
      }
    }
    if (check_domains()) return;  // then rcpt_passed()
  }
  rcpt_passed();
}

}  // namespace mxscreen::proxy
