#include "checks/mx_probe.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "agent/text.h"
#include "checks/dns_follow.h"

namespace repwatch {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

std::string Seconds(milliseconds d) {
  if (d.count() % 1000 == 0) return fmt::format("{}s", d.count() / 1000);
  return fmt::format("{:g}s", static_cast<double>(d.count()) / 1000.0);
}

MxProbeResult ErrorResult(const MxSessionPlan& plan, MxStage stage, std::string host, std::string address,
                          std::string error) {
  MxProbeResult r;
  r.domain = plan.domain;
  r.host = std::move(host);
  r.address = std::move(address);
  r.stage = stage;
  r.cls = SmtpClass::kError;
  r.error = std::move(error);
  return r;
}

// Fills the reply fields of `r` from the reply that decided the session.
void Decide(MxProbeResult& r, MxStage stage, const SmtpReply& reply) {
  const ReplyClassification c = ClassifyReply(reply);
  r.stage = stage;
  r.code = c.code;
  r.enhanced = c.enhanced;
  r.cls = c.cls;
  r.zone = c.zone;
  r.reason = c.reason;
  r.text = c.text;
  r.error.clear();
}

// The EHLO reply's first line only: the rest lists extensions, not a verdict.
SmtpReply Greeting(const SmtpReply& reply) {
  SmtpReply g;
  g.code = reply.code;
  if (!reply.lines.empty()) g.lines.push_back(reply.lines.front());
  return g;
}

bool OffersStartTls(const SmtpReply& ehlo) {
  for (size_t i = 1; i < ehlo.lines.size(); ++i) {
    std::string_view l = ehlo.lines[i];
    while (!l.empty() && l.back() == ' ') l.remove_suffix(1);
    if (AsciiLower(l) == "starttls") return true;
  }
  return false;
}

const char* StepName(MxStage s) {
  switch (s) {
    case MxStage::kConnect: return "the connection";
    case MxStage::kBanner: return "the banner";
    case MxStage::kEhlo: return "the reply to EHLO";
    case MxStage::kStarttls: return "the reply to STARTTLS";
    case MxStage::kMail: return "the reply to MAIL FROM";
    case MxStage::kRcpt: return "the reply to RCPT TO";
  }
  return "a reply";
}

// The protocol on one open connection. Returns the result; `*retry_plain` is set
// when the TLS handshake failed and the session should be redone without STARTTLS.
MxProbeResult Converse(SmtpConnection& conn, const MxSessionPlan& plan, const MxHost& host, const IpAddress& dest,
                       std::optional<MxTlsReport>& tls, bool* retry_plain) {
  MxProbeResult r = ErrorResult(plan, MxStage::kBanner, host.name, dest.ToString(), "");
  auto deadline = [](milliseconds d) { return steady_clock::now() + d; };
  // Reads one reply for `stage`; on failure fills r as an error and returns nullopt.
  auto read = [&](MxStage stage, milliseconds timeout) -> std::optional<SmtpReply> {
    auto reply = conn.ReadReply(deadline(timeout));
    if (reply.ok()) return std::move(reply).value();
    r.stage = stage;
    r.cls = SmtpClass::kError;
    if (reply.error() == "timeout")
      r.error = fmt::format("timeout after {} waiting for {}", Seconds(timeout), StepName(stage));
    else
      r.error = fmt::format("{} while waiting for {}", reply.error(), StepName(stage));
    return std::nullopt;
  };
  auto send = [&](MxStage stage, const std::string& line) {
    Status s = conn.SendLine(line, deadline(plan.command_timeout));
    if (s.ok()) return true;
    r.stage = stage;
    r.cls = SmtpClass::kError;
    r.error = fmt::format("{} while sending {}", s.message(), line.substr(0, line.find(' ')));
    return false;
  };
  auto quit = [&] {  // best effort: the verdict is already known
    if (conn.SendLine("QUIT", deadline(plan.command_timeout)).ok()) (void)conn.ReadReply(deadline(plan.command_timeout));
  };
  auto finish = [&](MxStage stage, const SmtpReply& reply) {
    Decide(r, stage, reply);
    r.tls = tls;
    quit();
    return r;
  };

  auto banner = read(MxStage::kBanner, plan.banner_timeout);
  if (!banner) return r;
  if (banner->code != 220) return finish(MxStage::kBanner, *banner);

  if (!send(MxStage::kEhlo, "EHLO " + plan.helo)) return r;
  auto ehlo = read(MxStage::kEhlo, plan.command_timeout);
  if (!ehlo) return r;
  if (ehlo->code != 250) return finish(MxStage::kEhlo, *ehlo);
  MxStage stage = MxStage::kEhlo;
  SmtpReply last = Greeting(*ehlo);

  if (plan.starttls && OffersStartTls(*ehlo)) {
    if (!send(MxStage::kStarttls, "STARTTLS")) return r;
    auto go = read(MxStage::kStarttls, plan.command_timeout);
    if (!go) return r;
    tls.emplace();
    if (go->code != 220) {
      // Refused: go on in plain text, as an MTA would.
      const ReplyClassification c = ClassifyReply(*go);
      tls->error = fmt::format("STARTTLS refused: {} {}", go->code, c.enhanced.empty() ? c.text : c.enhanced + " " + c.text);
    } else {
      auto info = conn.StartTls(host.name, deadline(plan.command_timeout));
      if (!info.ok()) {
        tls->error = info.error();
        *retry_plain = true;  // the connection is unusable now
        r.stage = MxStage::kStarttls;
        r.cls = SmtpClass::kError;
        r.error = info.error();
        r.tls = tls;
        return r;
      }
      tls->ok = true;
      tls->protocol = info.value().protocol;
      tls->name_match = info.value().name_match;
      tls->peer_name = info.value().peer_name;
      if (!send(MxStage::kEhlo, "EHLO " + plan.helo)) return r;
      auto again = read(MxStage::kEhlo, plan.command_timeout);
      if (!again) return r;
      if (again->code != 250) return finish(MxStage::kEhlo, *again);
      stage = MxStage::kStarttls;
      last = Greeting(*again);
    }
  }
  r.tls = tls;

  if (!plan.mail_from.empty()) {
    if (!send(MxStage::kMail, "MAIL FROM:<" + plan.mail_from + ">")) return r;
    auto mail = read(MxStage::kMail, plan.command_timeout);
    if (!mail) return r;
    if (mail->code / 100 != 2) return finish(MxStage::kMail, *mail);
    stage = MxStage::kMail;
    last = *mail;
    if (!plan.rcpt_to.empty()) {
      if (!send(MxStage::kRcpt, "RCPT TO:<" + plan.rcpt_to + ">")) return r;
      auto rcpt = read(MxStage::kRcpt, plan.command_timeout);
      if (!rcpt) return r;
      return finish(MxStage::kRcpt, *rcpt);
    }
  }
  return finish(stage, last);
}

}  // namespace

MxProbeResult RunMxSession(SmtpDialer& dialer, const MxSessionPlan& plan, HostGate& gate) {
  if (plan.hosts.empty()) return ErrorResult(plan, MxStage::kConnect, "", "", "no MX host to connect to");
  std::vector<std::string> failures;
  std::string first_address;
  for (const MxHost& host : plan.hosts) {
    for (const IpAddress& dest : host.addresses) {
      const std::string address = dest.ToString();
      if (first_address.empty()) first_address = address;
      gate.Acquire(address);
      auto connected = dialer.Connect(plan.source, dest, plan.port, steady_clock::now() + plan.connect_timeout);
      if (auto* err = std::get_if<DialError>(&connected)) {
        gate.Release(address);
        if (err->kind == DialErrorKind::kNotLocal)  // no other host can fix that
          return ErrorResult(plan, MxStage::kConnect, plan.hosts.front().name, "",
                             fmt::format("not a local address: {} is not on this host, so it cannot be the source",
                                         plan.source.ToString()));
        failures.push_back(fmt::format("{}[{}]: {}", host.name, address, err->message));
        continue;
      }
      std::unique_ptr<SmtpConnection> conn = std::move(std::get<SmtpDialer::Connected>(connected).connection);
      std::optional<MxTlsReport> tls;
      bool retry_plain = false;
      MxProbeResult r = Converse(*conn, plan, host, dest, tls, &retry_plain);
      conn.reset();
      if (retry_plain) {  // a failed handshake: once more without STARTTLS, as MTAs do
        MxSessionPlan plain = plan;
        plain.starttls = false;
        auto again = dialer.Connect(plan.source, dest, plan.port, steady_clock::now() + plan.connect_timeout);
        if (auto* c = std::get_if<SmtpDialer::Connected>(&again)) {
          std::optional<MxTlsReport> none;
          bool unused = false;
          r = Converse(*c->connection, plain, host, dest, none, &unused);
          c->connection.reset();
        }
        r.tls = tls;
      }
      gate.Release(address);  // after the connection is closed: one session per destination, strictly
      return r;
    }
    if (host.addresses.empty()) failures.push_back(fmt::format("{}: no address of the source's family", host.name));
  }
  std::string error = failures.size() == 1 ? failures.front().substr(failures.front().find("]: ") + 3) : "";
  if (failures.size() != 1) {
    error = "no MX host could be reached: ";
    for (size_t i = 0; i < failures.size(); ++i) error += (i ? "; " : "") + failures[i];
  }
  return ErrorResult(plan, MxStage::kConnect, plan.hosts.front().name, first_address, error);
}

// ---------------------------------------------------------------------------

// One address's sessions: every domain's result lands in report->mx[index].
struct MxProbeCheck::IpState {
  uint64_t order;
  Target target;
  IpReport* report;
  Done done;
  size_t remaining;
  std::string helo;
  std::vector<MxProbeResult> history;
};

class MxProbeCheck::WorkerGate final : public HostGate {
 public:
  WorkerGate(MxProbeCheck& check, std::string reserved) : check_(check), reserved_(std::move(reserved)) {}
  ~WorkerGate() override {
    if (!reserved_.empty()) check_.ReleaseAddress(reserved_);
  }
  void Acquire(const std::string& address) override {
    if (address == reserved_) {
      reserved_.clear();  // taken when the job was picked
      return;
    }
    check_.AcquireAddress(address);
  }
  void Release(const std::string& address) override { check_.ReleaseAddress(address); }

 private:
  MxProbeCheck& check_;
  std::string reserved_;
};

MxProbeCheck::MxProbeCheck(const Config& config, CheckEnv env) : config_(config.mx_probe), env_(env) {
  if (!env_.dialer) {
    own_dialer_ = MakeSocketDialer();
    env_.dialer = own_dialer_.get();
  }
  for (int i = 0; i < config_.max_parallel; ++i) workers_.emplace_back([this] { WorkerLoop(); });
}

MxProbeCheck::~MxProbeCheck() {
  {
    std::lock_guard lock(mu_);
    shutdown_ = true;
    queue_.clear();
  }
  cv_.notify_all();
  for (std::thread& t : workers_) t.join();
}

void MxProbeCheck::BeginCycle(CycleReport*, Done done) { done(); }

size_t MxProbeCheck::ExpectedQueries(const Target& target) const {
  // MX and host lookups are shared by every address (the cycle cache); only a
  // HELO built from the PTR name asks per address.
  if (!target.range || !target.range->mx_probe) return 0;
  return target.range->helo.empty() || target.range->helo.find("{ptr}") != std::string::npos ? 1 : 0;
}

void MxProbeCheck::CheckIp(const Target& target, IpReport* report, Done done) {
  if (!target.range || !target.range->mx_probe || config_.domains.empty()) return done();
  auto state = std::make_shared<IpState>(
      IpState{next_ip_order_++, target, report, std::move(done), config_.domains.size(), "", {}});
  report->mx.emplace(config_.domains.size());
  if (env_.mx_history) state->history = env_.mx_history->Last(target.ip);

  auto start = [this, state] {
    for (size_t i = 0; i < config_.domains.size(); ++i) StartDomain(state, i);
  };
  const std::string& helo = target.range->helo;
  if (!helo.empty() && helo.find("{ptr}") == std::string::npos) {
    state->helo = helo;
    return start();
  }
  // The PTR name (the first, as FCrDNS would announce it); an address literal without one.
  FollowCnames(env_.resolver, target.ip.ReverseDnsName(), rrtype::kPtr, [state, start](FollowedAnswer a) {
    std::string ptr;
    if (a.ok())
      for (const DnsRecord& rec : a.response.answers)
        if (rec.type == rrtype::kPtr && !rec.target.empty()) {
          ptr = rec.target;
          break;
        }
    const std::string literal =
        state->target.ip.is_v4() ? "[" + state->target.ip.ToString() + "]" : "[IPv6:" + state->target.ip.ToString() + "]";
    const std::string& pattern = state->target.range->helo;
    if (pattern.empty()) {
      state->helo = ptr.empty() ? literal : ptr;
    } else if (ptr.empty()) {
      state->helo = literal;
    } else {
      state->helo = pattern;
      for (size_t p = state->helo.find("{ptr}"); p != std::string::npos; p = state->helo.find("{ptr}", p + ptr.size()))
        state->helo.replace(p, 5, ptr);
    }
    start();
  });
}

void MxProbeCheck::StartDomain(const std::shared_ptr<IpState>& state, size_t index) {
  const std::string& domain = config_.domains[index];
  auto finish = [state, index](MxProbeResult&& r) {
    (*state->report->mx)[index] = std::move(r);
    if (--state->remaining == 0) state->done();
  };
  const long long now = UnixSeconds(env_.clock.WallNow());
  std::optional<MxProbeResult> previous;
  for (const MxProbeResult& h : state->history)
    if (h.domain == domain) previous = h;
  // A session that got no reply (class error) is no contact to space out: retried next cycle.
  if (previous && previous->cls != SmtpClass::kError && now - previous->probed_at < config_.min_interval.count() &&
      now >= previous->probed_at) {
    previous->reused = true;
    return finish(std::move(*previous));
  }

  auto plan = std::make_shared<MxSessionPlan>();
  plan->domain = domain;
  plan->source = state->target.ip;
  plan->helo = state->helo;
  plan->port = config_.port;
  plan->mail_from = config_.mail_from;
  plan->rcpt_to = config_.rcpt_to;
  for (size_t p = plan->rcpt_to.find("{domain}"); p != std::string::npos; p = plan->rcpt_to.find("{domain}", p + domain.size()))
    plan->rcpt_to.replace(p, 8, domain);
  plan->starttls = config_.starttls;
  plan->connect_timeout = config_.connect_timeout;
  plan->banner_timeout = config_.banner_timeout;
  plan->command_timeout = config_.command_timeout;

  auto fail = [plan, finish, now](std::string host, std::string error) mutable {
    MxProbeResult r = ErrorResult(*plan, MxStage::kConnect, std::move(host), "", std::move(error));
    r.probed_at = now;
    finish(std::move(r));
  };
  if (previous) previous->reused = true;  // only reported if the agent stops before the session
  const uint64_t order = state->order * 1024 + index;
  auto submit = [this, order, plan, previous, finish] { Submit(Job{order, *plan, previous, finish}); };
  const uint16_t addr_type = state->target.ip.is_v4() ? rrtype::kA : rrtype::kAaaa;
  const char* family = state->target.ip.is_v4() ? "IPv4" : "IPv6";

  Resolver& dns = env_.SharedResolver();
  FollowCnames(dns, domain, rrtype::kMx, [&dns, plan, fail, submit, addr_type, family, domain](FollowedAnswer mx) mutable {
    if (!mx.error.empty()) return fail("", fmt::format("MX lookup for {}: {}", domain, mx.error));
    if (mx.response.status == DnsStatus::kNxDomain) return fail("", fmt::format("{} does not exist (NXDOMAIN)", domain));
    if (mx.response.status != DnsStatus::kNoError)
      return fail("", fmt::format("MX lookup for {} failed: {}", domain,
                                  mx.response.detail.empty() ? std::string(DnsStatusName(mx.response.status))
                                                             : mx.response.detail));
    std::vector<std::pair<uint16_t, std::string>> hosts;
    for (const DnsRecord& rec : mx.response.answers)
      if (rec.type == rrtype::kMx) hosts.emplace_back(rec.preference, rec.target);
    if (hosts.size() == 1 && hosts.front().second.empty())
      return fail("", fmt::format("{} accepts no mail (null MX, RFC 7505)", domain));
    if (hosts.empty()) hosts.emplace_back(0, mx.canonical.empty() ? domain : mx.canonical);  // RFC 5321 §5.1: implicit MX
    std::stable_sort(hosts.begin(), hosts.end());
    hosts.erase(std::unique(hosts.begin(), hosts.end()), hosts.end());
    plan->hosts.resize(hosts.size());
    auto remaining = std::make_shared<size_t>(hosts.size());
    for (size_t i = 0; i < hosts.size(); ++i) {
      plan->hosts[i].name = hosts[i].second;
      FollowCnames(dns, hosts[i].second, addr_type, [plan, i, remaining, fail, submit, addr_type, family, domain](FollowedAnswer a) mutable {
        if (a.ok())
          for (const DnsRecord& rec : a.response.answers) {
            if (rec.type != addr_type) continue;
            if (addr_type == rrtype::kA) {
              plan->hosts[i].addresses.push_back(IpAddress::V4(static_cast<uint32_t>(rec.addr[0]) << 24 |
                                                               static_cast<uint32_t>(rec.addr[1]) << 16 |
                                                               static_cast<uint32_t>(rec.addr[2]) << 8 | rec.addr[3]));
            } else {
              plan->hosts[i].addresses.push_back(IpAddress::V6(rec.addr));
            }
          }
        if (--*remaining > 0) return;
        const bool any = std::any_of(plan->hosts.begin(), plan->hosts.end(),
                                     [](const MxHost& h) { return !h.addresses.empty(); });
        if (!any)
          return fail(plan->hosts.front().name,
                      fmt::format("no MX host of {} has an {} address", domain, family));
        submit();
      });
    }
  });
}

void MxProbeCheck::Submit(Job job) {
  {
    std::lock_guard lock(mu_);
    queue_.push_back(std::move(job));
  }
  cv_.notify_one();
}

std::optional<MxProbeCheck::Job> MxProbeCheck::PickJob(std::string* reserved) {
  auto best = queue_.end();
  std::string best_first;
  for (auto it = queue_.begin(); it != queue_.end(); ++it) {
    if (best != queue_.end() && it->order > best->order) continue;
    std::string first;
    for (const MxHost& h : it->plan.hosts)
      if (!h.addresses.empty()) {
        first = h.addresses.front().ToString();
        break;
      }
    if (busy_.count(first)) continue;
    best = it;
    best_first = std::move(first);
  }
  if (best == queue_.end()) return std::nullopt;
  Job job = std::move(*best);
  queue_.erase(best);
  busy_[best_first] = 1;
  *reserved = best_first;
  return job;
}

void MxProbeCheck::AcquireAddress(const std::string& address) {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return !busy_.count(address); });
  busy_[address] = 1;
}

void MxProbeCheck::ReleaseAddress(const std::string& address) {
  {
    std::lock_guard lock(mu_);
    busy_.erase(address);
  }
  cv_.notify_all();
}

void MxProbeCheck::WorkerLoop() {
  const auto gap = std::chrono::duration_cast<steady_clock::duration>(std::chrono::duration<double>(1.0 / config_.max_rate));
  for (;;) {
    std::string reserved;
    std::optional<Job> job;
    bool stopping = false;
    {
      std::unique_lock lock(mu_);
      for (;;) {
        if (shutdown_) return;
        stopping = env_.stop && env_.stop->load();
        if (stopping && !queue_.empty()) {
          job = std::move(queue_.front());
          queue_.pop_front();
          break;
        }
        const auto now = steady_clock::now();
        if (!queue_.empty() && now < next_start_) {
          cv_.wait_until(lock, next_start_);
          continue;
        }
        if ((job = PickJob(&reserved))) {
          next_start_ = std::max(now, next_start_) + gap;
          break;
        }
        // Nothing startable: wake on a new job, a released address, or to look at `stop`.
        cv_.wait_for(lock, milliseconds(200));
      }
    }
    MxProbeResult result;
    if (stopping) {
      result = job->previous ? *job->previous
                             : ErrorResult(job->plan, MxStage::kConnect, "", "", "not probed: the agent is stopping");
    } else {
      {
        WorkerGate gate(*this, reserved);
        result = RunMxSession(*env_.dialer, job->plan, gate);
      }
      result.probed_at = UnixSeconds(env_.clock.WallNow());
    }
    {
      std::lock_guard lock(mu_);
      finished_.emplace_back(std::move(job->finish), std::move(result));
    }
    cv_.notify_all();  // a reserved address may have been freed
  }
}

void MxProbeCheck::Poll() {
  decltype(finished_) ready;
  {
    std::lock_guard lock(mu_);
    ready.swap(finished_);
  }
  for (auto& [finish, result] : ready) finish(std::move(result));
}

}  // namespace repwatch
