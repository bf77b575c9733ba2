// proxy/session.h: one client, from accept to close (DESIGN.md "A session's life"): the
// optional PROXY header of an upstream balancer, the connect decision, the greet test, the
// pre-dialogue (checks::Dialogue), the handoff to the backend (identity, banner, XCLIENT,
// replay of EHLO/MAIL/RCPT) and the splice both ways. Handoff and splice live in handoff.cc.
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
#include "protocol/command_stream.h"
#include "protocol/line_reader.h"
#include "protocol/reply.h"
#include "proxy/conn.h"
#include "proxy/domain_dns.h"
#include "proxy/greylisting.h"
#include "proxy/kernel_splice.h"
#include "proxy/server.h"
#include "proxy/spf_check.h"
#include "proxy/tls.h"

namespace mxscreen::proxy {

class Session : public ConnHandler, public KernelSpliceHandler {
 public:
  Session(Server& server, const Listener& listener);
  ~Session() override;

  // Takes the connection from the listener and starts the session. False: accept failed.
  bool accept(uv_stream_t* listener_stream);
  // SIGTERM: a session still in the pre-dialogue gets 421 and closes; a spliced one goes on.
  void shutdown_if_unspliced();
  // The drain timeout ran out.
  void abort();
  // The server's wake timer (Server::wake_at): the greet wait or the backend queue wait that
  // ends at `deadline` is over (ignored when the session has moved on or has another one).
  void wake(uint64_t deadline);
  // The backend slot this session queued for (ticket) is its own now: hand off. False when it
  // no longer waits (gone, timed out): the caller passes the slot on.
  bool backend_slot_granted(uint64_t ticket);

  void on_read(Conn& conn, std::string_view bytes) override;
  void on_eof(Conn& conn) override;
  void on_error(Conn& conn, int status) override;
  void on_drained(Conn& conn) override;
  void on_connect(Conn& conn, int status) override;

  void kernel_splice_eof(bool client_side) override;
  void kernel_splice_error(bool client_side, int status) override;
  void kernel_splice_refused(int status) override;

 private:
  // kProxyHeader: reading an upstream's PROXY header; kConnect: the connect decision (access,
  // bans, limits, pass cache) is being made, client bytes are only held.
  enum class State { kProxyHeader, kConnect, kGreet, kDialogue, kHandoff, kSplice, kDone };
  // Handoff steps, in order; the replay steps run only when the dialogue got that far.
  // kQueued: waiting for a backend slot (backend.queue_max), no backend connection yet.
  enum class Step { kQueued, kConnecting, kBanner, kXclientEhlo, kXclient, kHelo, kMail, kRcpt };

  const Config& config() const { return *runtime_->config; }
  // A proxy_protocol listener believes only its proxy_trusted upstreams; false: closed.
  bool proxy_upstream_trusted();
  void connect_decision();
  bool within_client_limits();
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
  checks::DialoguePolicy dialogue_policy() const;
  void dialogue_input(std::string_view bytes);
  void run_dialogue();
  // A check's finding (checks/finding.h), the one place where the session logs, counts,
  // strikes, replies and closes for it.
  void apply(const checks::Finding& finding);
  void apply_step(checks::Step step);
  void send_reply(const std::string& reply);

  // handoff.cc
  void start_handoff();
  // Keeps what the handoff needs of the pre-dialogue (handoff_) and frees the rest.
  void take_handoff_facts();
  // The client's lookups are all in (or were when the handoff started): keep the verified name
  // for XCLIENT and free them.
  void release_client_dns();
  void connect_backend();  // holding a backend slot
  void queue_timed_out();
  // 421 4.3.2 when the backend has no slot and the queue no place (or the wait was too long).
  void refuse_backend_busy(const std::string& why);
  void backend_reply(std::string_view bytes);
  void backend_step_done();
  void send_backend_step(Step step, std::string_view line);
  void start_splice(const std::string& to_client);
  void splice_from(Conn& from, Conn& to, std::string_view bytes, uint64_t* counter);
  // Hands a plain session's bytes to the kernel (splice(2)) when nothing needs to see them.
  void try_kernel_splice();
  // handoff = "xclient", or inside mxscreen's TLS: the client's commands pass through
  // commands_ (command_stream.h).
  void commands_from_client(std::string_view bytes);
  void replies_from_backend(std::string_view bytes);
  std::size_t run_commands(std::string_view input);  // bytes of `input` used
  void resume_commands();
  void command_refused(const protocol::CommandStream::Action& action);
  void backend_failed(const std::string& reason);

  // Client I/O through TLS once STARTTLS has run (tls.cc-free: TlsSession does the work).
  void client_write(std::string_view plaintext);
  void client_ciphertext(std::string_view bytes);
  void client_close_notify();
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
    return spf_ && spf_->finding ? &*spf_->finding : nullptr;
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
  void reply_and_close(const std::string& reply, const std::string& outcome);
  void finish(const std::string& outcome);
  void arm_timer(std::chrono::milliseconds after);
  void stop_timer();  // the phase deadline, including a pending greet wait
  void stop_command_timer() {
    if (command_timer_) command_timer_->stop();
  }
  void timer_fired();
  void command_time_limit_reached();
  double seconds_since(std::chrono::steady_clock::time_point t) const;
  std::string who() const { return client_.log_string(); }
  std::string client_labels() const;

  Server& server_;
  const Listener& listener_;
  std::shared_ptr<const Runtime> runtime_;
  Conn client_conn_;
  std::unique_ptr<Conn> backend_conn_;
  std::unique_ptr<TlsSession> tls_;            // after STARTTLS
  std::unique_ptr<ClientLookups> dns_;         // DNSBL, PTR and FCrDNS, from connect on
  std::unique_ptr<DomainLookups> domain_dns_;  // names the client gave, at RCPT
  // SPF of the current MAIL (sender.spf), made at the first MAIL it is on for: a held session
  // does not carry it (about 350 bytes).
  struct SpfState {
    std::string mail_line;                      // the MAIL line run/finding are about
    checks::SpfRequest request;                 // ... and its facts
    std::unique_ptr<SpfEvaluation> run;         // while it runs
    std::optional<checks::SpfFinding> finding;  // ... and once it is in
    bool waiting = false;                       // the held RCPT waits for the finding
  };
  std::unique_ptr<SpfState> spf_;
  // A test said enforce with a reply of its own (the DNSBL, Finding::Then::kEnforce): every
  // RCPT gets it.
  std::string dnsbl_enforce_reply_;
  // The current phase's deadline or an error sleep; made on first use.
  std::unique_ptr<Timer> timer_;
  // smtp.command_time_limit for the whole dialogue; made when the dialogue starts.
  std::unique_ptr<Timer> command_timer_;
  // uv_now() ms when the greet wait or the backend queue wait ends; 0 = none pending.
  uint64_t wake_deadline_ = 0;
  uint64_t queue_ticket_ = 0;  // our place in the backend queue; 0 = not queued
  uint64_t queued_at_ = 0;     // uv_now() ms when it was taken
  State state_ = State::kConnect;
  Step step_ = Step::kConnecting;

  protocol::Endpoint client_;
  protocol::Endpoint local_;
  std::chrono::steady_clock::time_point started_;
  std::optional<checks::PregreetTest> pregreet_;
  // On the heap, made when the dialogue starts: a held or early-handed-off session does not
  // carry them (memory per held connection, issue 8).
  std::unique_ptr<protocol::LineReader> lines_;
  std::unique_ptr<checks::Dialogue> dialogue_;
  std::unique_ptr<checks::Step> sleeping_;  // an error reply waiting out its delay
  // What the handoff still needs once the pre-dialogue is over, taken when it starts so that
  // the dialogue, its lookups and its SPF run can go: a client waiting in the backend queue
  // costs what a held one does (issue 15).
  struct HandoffFacts {
    bool after_dialogue = false;  // the dialogue ran: replay what it accepted
    bool esmtp = false;
    uint32_t helo_size = 0;
    uint32_t mail_size = 0;
    uint32_t rcpt_size = 0;
    // One allocation for the four: the EHLO/HELO argument, the accepted MAIL line (empty:
    // handoff after EHLO), the held RCPT line (empty: none) and the forward-confirmed PTR name
    // for XCLIENT NAME= (appended once dns_ is done).
    std::string text;
    std::string_view helo() const { return std::string_view(text).substr(0, helo_size); }
    std::string_view mail_line() const {
      return std::string_view(text).substr(helo_size, mail_size);
    }
    std::string_view rcpt_line() const {
      return std::string_view(text).substr(helo_size + mail_size, rcpt_size);
    }
    std::string_view verified_name() const {
      return std::string_view(text).substr(helo_size + mail_size + rcpt_size);
    }
  };
  std::unique_ptr<HandoffFacts> handoff_;  // null: no dialogue and no lookups to keep
  // A cached pass whose DNSBL verdict is being looked up again (dnsbl_rechecked).
  std::unique_ptr<checks::PassRecord> cached_pass_;
  bool store_wait_ = false;
  bool permitted_ = false;       // access list permit (exempt from limits and bans)
  bool nolisting_pass_ = false;  // came to the fake MX first, within fake_mx.pair_window
  // The HELO name's A/AAAA/MX at RCPT, for greylist.only_if's "helo" fact (unset: not asked).
  std::optional<checks::NameFact> helo_exists_;
  bool greylist_waits_dns_ = false;  // greylist_rcpt waits for greylist_facts_ready()
  // Store callbacks (Redis answers later) check this before touching the session.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  // Client bytes held before the splice (PROXY header, ignored pregreet, input that arrived
  // during the handoff); bounded by server.buffer_size, past which reading the client pauses.
  std::string held_;
  std::unique_ptr<protocol::ReplyReader> backend_reader_;  // made at the handoff
  bool client_gets_backend_banner_ = false;  // allowlisted: no banner of ours was sent
  bool backend_chunking_ = false;            // the backend's EHLO to us offered CHUNKING
  // handoff = "xclient" or mxscreen's TLS: the client's command stream after the handoff, and
  // client bytes that wait for the backend's replies (bounded by server.buffer_size: reading
  // pauses).
  std::unique_ptr<protocol::CommandStream> commands_;
  std::string commands_held_;
  std::optional<protocol::IpAddress> counted_as_;  // in the server's per-client limits table
  bool client_eof_ = false;
  bool backend_eof_ = false;
  uint64_t last_activity_ = 0;  // uv_now() of the last spliced byte
  uint64_t bytes_in_ = 0;       // client -> backend
  uint64_t bytes_out_ = 0;      // backend -> client
  // server.kernel_splice: the splice(2) path once both write queues are empty (declared after
  // the connections: it goes first). Tried once per session.
  std::unique_ptr<KernelSplice> kernel_splice_;
  bool kernel_splice_tried_ = false;
  bool kernel_splice_files_ = false;  // took Server::kKernelSpliceFiles descriptors
};

}  // namespace mxscreen::proxy
