// proxy/session.h: one client, from accept to close (DESIGN.md "A session's life"): the
// optional PROXY header of an upstream balancer, the connect decision, the greet test and the
// pre-dialogue (checks::Dialogue). When the client is to meet the backend the session makes a
// Handoff (handoff.h), which owns the backend side from then on (queue wait, backend
// connection, identity, replay, splice); the session keeps the client's connection, its TLS
// and its held input, and passes client events to the Handoff once spliced.
#pragma once

#include <uv.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "checks/dialogue.h"
#include "checks/pass_cache.h"
#include "checks/pregreet.h"
#include "protocol/address.h"
#include "protocol/line_reader.h"
#include "protocol/reply.h"
#include "proxy/conn.h"
#include "proxy/deadline_list.h"
#include "proxy/domain_dns.h"
#include "proxy/greylisting.h"
#include "proxy/handoff.h"
#include "proxy/server.h"
#include "proxy/spf_check.h"
#include "proxy/tls.h"

namespace mxscreen::proxy {

class Session final : private HandoffClient {
 public:
  Session(Server& server, const Listener& listener);
  ~Session() override;

  // Takes the connection from the listener and starts the session. False: accept failed.
  bool accept(uv_stream_t* listener_stream);
  // SIGTERM: a session still in the pre-dialogue gets 421 and closes; a spliced one goes on.
  void shutdown_if_unspliced();
  // The drain timeout ran out.
  void abort();
  // Where the server keeps it in its list of live sessions (Server only).
  uint32_t server_index() const { return server_index_; }
  void set_server_index(uint32_t index) { server_index_ = index; }
  // The server's wake timer (Server::wake_at): the greet wait that ends at `deadline` is over
  // (ignored when the session has moved on).
  void wake(uint64_t deadline);

  // HandoffClient is also the client connection's handler (the backend's is the Handoff).
 private:
  void on_read(Conn& conn, std::string_view bytes) override;
  void on_eof(Conn& conn) override;
  void on_error(Conn& conn, int status) override;
  void on_drained(Conn& conn) override;

  // kProxyHeader: reading an upstream's PROXY header; kConnect: the connect decision (access,
  // bans, limits, pass cache) is being made, client bytes are only held. kHandoff: handoff_
  // has the backend side (queued, connecting, replaying, then spliced: handoff_->spliced()).
  enum class State : uint8_t { kProxyHeader, kConnect, kGreet, kDialogue, kHandoff, kDone };

  const Config& config() const { return *runtime_->config; }
  // A proxy_protocol listener believes only its proxy_trusted upstreams; false: closed.
  bool proxy_upstream_trusted();
  void connect_decision();
  bool within_client_limits();
  protocol::IpAddress limits_network() const;  // what the per-client limits count
  // session_store.cc: the verdict cache and greylisting.
  void lookup_pass_cache();
  void continue_after_cache();
  checks::PassTtls pass_ttls() const;
  checks::CachedTestSet cached_tests_enabled() const;
  // The DNSBL answers of an expired DNSBL verdict are in: PASS OLD, or screened as new.
  void dnsbl_rechecked();
  void pass_old(const std::string& how);
  void pass_new(const std::string& how);
  void greylist_rcpt();
  void greylist_decided(const GreylistAnswer& answer);
  // What greylist.only_if scores: the client's DNS facts, the HELO and its lookup.
  checks::ClientFacts client_facts() const;
  // Identity keys and only_if read the client's PTR/FCrDNS (and DNSBL score): false while
  // those lookups (each bounded by dns.timeout) are still out.
  bool greylist_facts_ready() const;
  void resume_dialogue();

  // session_abuse.cc: bans, fake-MX (nolisting) records, strikes.
  void check_ban();
  void after_ban_check();
  // Records the hit, then runs `then` once the pair signal is stored (or failed).
  void record_fake_mx_hit(std::function<void()> then);
  void fake_mx_action();  // fake_mx.action: reset, 421, or the dialogue
  void record_mx_visit();
  void strike(const std::string& why);

  void start_client_dns();
  void on_client_dns(ClientDnsEvent event);
  // The DNSBL score at the end of the greet wait: false when the session ended (drop).
  bool apply_dnsbl(bool* allowlisted);
  void start_greet();
  void greet_done();
  void start_dialogue();
  checks::DialogueClient dialogue_client() const;
  void dialogue_input(std::string_view bytes);
  void run_dialogue();
  // A check's finding (checks/finding.h), the one place where the session logs, counts,
  // strikes, replies and closes for it.
  void apply(const checks::Finding& finding);
  void apply_step(checks::Step step);

  // The pre-dialogue is over: make the Handoff with what it replays (the EHLO name, the MAIL
  // and RCPT lines), free the dialogue, its lookups and its SPF run, and let it take a backend
  // slot or queue for one.
  void start_handoff();
  // The client's lookups are all in (or were when the handoff started): give the verified
  // name to the Handoff for XCLIENT and free them.
  void release_client_dns();
  bool spliced() const { return handoff_ && handoff_->spliced(); }

  // HandoffClient: the client side, for the Handoff.
  Conn& client_conn() override { return client_conn_; }
  const protocol::Endpoint& client_endpoint() const override { return client_; }
  const protocol::Endpoint& local_endpoint() const override { return local_; }
  const Runtime& runtime() const override { return *runtime_; }
  Server& server() const override { return server_; }
  bool client_tls() const override { return tls_ != nullptr; }
  void start_client_tls() override;
  std::string take_client_input() override;
  std::string verified_name() const override;

  // Client I/O through TLS once STARTTLS has run (tls.cc-free: TlsSession does the work).
  void client_write(std::string_view plaintext) override;
  void client_ciphertext(std::string_view bytes);
  void client_close_notify() override;
  // At connect: every backend slot taken and the queue full: 421 4.3.2, logged and counted,
  // and true.
  bool refuse_if_backend_full();
  // session_spf.cc: SPF of the sender (sender.spf), started when a MAIL is accepted and
  // decided at the RCPT that would hand off (as Postfix's smtpd_delay_reject answers sender
  // restrictions at RCPT). rcpt_ready: the held RCPT passed the dialogue: SPF, the DNS tests of
  // names, then rcpt_passed.
  void maybe_start_spf();
  // The finding of the current MAIL's SPF evaluation; null while it runs or when none ran.
  const checks::SpfFinding* spf_finding() const {
    return pre_->spf && pre_->spf->finding ? &*pre_->spf->finding : nullptr;
  }
  void spf_found(const checks::SpfFinding& finding);
  void rcpt_ready(bool resumed = false);  // resumed: after waiting for SPF
  // The held RCPT passed the dialogue: greylisting, then the handoff.
  void rcpt_passed();
  // Starts the DNS tests of the HELO name, sender domain and reverse name (domain_dns.h) when
  // any is on; true when they run (rcpt_passed or a reject follows).
  bool check_domains();
  void on_client_bytes(std::string_view bytes);
  void start_tls();
  void tls_failed(const std::string& reason);
  bool tls_pending() const { return tls_ && !tls_->handshake_done(); }

  void hold(std::string_view bytes);
  void reply_and_close(const std::string& reply, const std::string& outcome) override;
  void finish(const std::string& outcome) override;
  void arm_timer(std::chrono::milliseconds after);
  void stop_timer();  // the phase deadline, including a pending greet wait
  void stop_command_timer() {
    if (pre_ && pre_->command_deadline) pre_->command_deadline->cancel();
  }
  void timer_fired();
  void command_time_limit_reached();
  double seconds_since(std::chrono::steady_clock::time_point t) const;
  std::string who() const override { return client_.log_string(); }
  std::string client_labels() const override;

  Server& server_;
  const Listener& listener_;
  std::shared_ptr<const Runtime> runtime_;
  Conn client_conn_;
  std::unique_ptr<TlsSession> tls_;  // after STARTTLS
  // DNSBL, PTR and FCrDNS, from connect on: kept past the handoff until the last answer (the
  // verified name for XCLIENT).
  std::unique_ptr<ClientLookups> dns_;
  // SPF of the current MAIL (sender.spf), made at the first MAIL it is on for: a held session
  // does not carry it (about 350 bytes).
  struct SpfState {
    std::string mail_line;                      // the MAIL line run/finding are about
    checks::SpfRequest request;                 // ... and its facts
    std::unique_ptr<SpfEvaluation> run;         // while it runs
    std::optional<checks::SpfFinding> finding;  // ... and once it is in
    bool waiting = false;                       // the held RCPT waits for the finding
  };
  // What only the pre-dialogue needs (from accept to the handoff), in one allocation freed when
  // the handoff starts: a client waiting in the backend queue costs no more than its
  // connection, its Session and its Handoff (issue 15). Null from start_handoff on.
  struct PreDialogue {
    std::optional<checks::PregreetTest> pregreet;
    // On the heap, made when the dialogue starts: a held or early-handed-off session does not
    // carry them (memory per held connection, issue 8).
    std::unique_ptr<protocol::LineReader> lines;
    std::unique_ptr<checks::Dialogue> dialogue;
    std::unique_ptr<checks::Step> sleeping;     // an error reply waiting out its delay
    std::unique_ptr<DomainLookups> domain_dns;  // names the client gave, at RCPT
    std::unique_ptr<SpfState> spf;
    // A test said enforce with a reply of its own (the DNSBL, Finding::Then::kEnforce): every
    // RCPT gets it.
    std::string dnsbl_enforce_reply;
    // The current phase's deadline or an error sleep; made on first use.
    std::unique_ptr<Timer> timer;
    // smtp.command_time_limit for the whole dialogue, in the server's list for that delay
    // (Server::deadlines, one timer for every session); made when the dialogue starts.
    std::unique_ptr<DeadlineEntry> command_deadline;
    // A cached pass whose DNSBL verdict is being looked up again (dnsbl_rechecked).
    std::unique_ptr<checks::PassRecord> cached_pass;
    // uv_now() ms when the greet wait ends; 0 = none pending.
    uint64_t wake_deadline = 0;
    // The HELO name's A/AAAA/MX at RCPT, for greylist.only_if's "helo" fact (unset: not asked).
    std::optional<checks::NameFact> helo_exists;
    bool store_wait = false;
    bool greylist_waits_dns = false;  // greylist_rcpt waits for greylist_facts_ready()
  };
  std::unique_ptr<PreDialogue> pre_ = std::make_unique<PreDialogue>();
  State state_ = State::kConnect;
  bool client_gets_backend_banner_ = false;  // allowlisted: no banner of ours was sent
  bool permitted_ = false;  // access list permit (exempt from limits, bans and strikes)
  // Came to the fake MX first, within fake_mx.pair_window (a store answer that may come late).
  bool nolisting_pass_ = false;
  // Counted in the server's per-client limits table, as client_'s network by this session's
  // limits.ipv6_prefix (~Session uncounts the same one: a reload does not change runtime_).
  bool counted_ = false;
  uint32_t server_index_ = UINT32_MAX;
  protocol::Endpoint client_;
  protocol::Endpoint local_;
  std::chrono::steady_clock::time_point started_;
  // Store callbacks (Redis answers later) check this before touching the session.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  // Client bytes held before the splice (PROXY header, ignored pregreet, input that arrived
  // during the handoff); bounded by server.buffer_size, past which reading the client pauses.
  std::string held_;
  // The backend side, from start_handoff on (declared after the client's connection: it goes
  // first, and its splice(2) holds dups of that connection's descriptor).
  std::unique_ptr<Handoff> handoff_;
};

}  // namespace mxscreen::proxy
