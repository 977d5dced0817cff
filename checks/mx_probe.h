// The MX probe (domain-facts §4): from each sending IP, an SMTP session with each
// configured receiver's MX host — banner, EHLO, STARTTLS when offered, optionally
// MAIL FROM and RCPT TO, never DATA, then QUIT — and the deciding reply classified
// with the reply catalogue (agent/smtp_reply.h).
//
// Politeness:
//  - at most one session at a time per destination address;
//  - at most [mx_probe] max_rate sessions started per second, max_parallel at once;
//  - per (source IP, receiver domain) no new session within min_interval of the last
//    one that got a reply: that result (from MxHistory) is reported again, marked
//    `reused`; a session that got no reply (class error) is retried next cycle;
//  - a deadline on every step (connect, banner, each reply, the TLS handshake).
//
// Sessions block, so they run on the check's own worker threads; results come back
// through Check::Poll on the scheduler's thread. MX and host addresses are resolved
// on that thread through the shared (cycle-cached) resolver: RFC 5321 §5.1 order
// (lowest preference first; no MX -> the domain itself; a null MX -> error), and the
// next host is tried only when a connection cannot be made.
#pragma once

#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "agent/smtp_dialer.h"
#include "checks/check.h"

namespace repwatch {

// The stored results of earlier sessions. The daemon reads them from the state store;
// `repwatch check` has none and probes every time.
class MxHistory {
 public:
  virtual ~MxHistory() = default;
  // The last stored result per receiver domain of this address (any order).
  virtual std::vector<MxProbeResult> Last(const IpAddress& ip) = 0;
};

struct MxHost {
  std::string name;                  // lowercase, no trailing dot
  std::vector<IpAddress> addresses;  // of the source's family, in answer order
};

// Everything one session needs; built on the scheduler's thread.
struct MxSessionPlan {
  std::string domain;
  IpAddress source;
  std::string helo;                  // a host name or an address literal "[192.0.2.1]"
  std::vector<MxHost> hosts;         // in the order to try
  uint16_t port = 25;
  std::string mail_from;             // empty: end after EHLO (and STARTTLS)
  std::string rcpt_to;               // already expanded; empty: no RCPT TO
  bool starttls = true;
  std::chrono::milliseconds connect_timeout{10000};
  std::chrono::milliseconds banner_timeout{60000};
  std::chrono::milliseconds command_timeout{30000};
};

// Serialises sessions per destination address. Acquire blocks while another
// session holds the address.
class HostGate {
 public:
  virtual ~HostGate() = default;
  virtual void Acquire(const std::string& address) = 0;
  virtual void Release(const std::string& address) = 0;
};

// One session, start to end, on the calling thread. Never throws; every failure is a
// result of class error with the stage it happened at. `probed_at` is left to the caller.
MxProbeResult RunMxSession(SmtpDialer& dialer, const MxSessionPlan& plan, HostGate& gate);

class MxProbeCheck final : public Check {
 public:
  // Uses env.dialer, or real sockets when it is not set. Starts
  // config.mx_probe.max_parallel worker threads.
  MxProbeCheck(const Config& config, CheckEnv env);
  ~MxProbeCheck() override;  // waits for sessions in progress; queued ones are dropped

  std::string_view Name() const override { return "mx"; }
  void BeginCycle(CycleReport* cycle, Done done) override;
  void CheckIp(const Target& target, IpReport* report, Done done) override;
  size_t ExpectedQueries(const Target& target) const override;
  void Poll() override;

 private:
  struct IpState;
  struct Job {
    uint64_t order = 0;  // address first, then domain: addresses finish one after another
    MxSessionPlan plan;
    std::optional<MxProbeResult> previous;  // reported instead when the agent stops first
    std::function<void(MxProbeResult&&)> finish;  // runs on the scheduler's thread
  };
  class WorkerGate;

  void StartDomain(const std::shared_ptr<IpState>& state, size_t index);
  void Submit(Job job);
  void WorkerLoop();
  // Under mu_: the startable job (its first address free) of the earliest address,
  // reserved for the caller. Address order, not arrival order: MX answers for one
  // domain arrive for every address at once, and a cycle whose addresses all wait on
  // their last domain would commit nothing for minutes.
  std::optional<Job> PickJob(std::string* reserved);
  void AcquireAddress(const std::string& address);
  void ReleaseAddress(const std::string& address);

  const MxProbeConfig config_;
  CheckEnv env_;
  std::unique_ptr<SmtpDialer> own_dialer_;  // when env.dialer is not set

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> queue_;
  std::map<std::string, int> busy_;     // destination addresses in a session (or reserved for one)
  std::chrono::steady_clock::time_point next_start_{};
  uint64_t next_ip_order_ = 0;  // scheduler thread only
  bool shutdown_ = false;
  std::vector<std::pair<std::function<void(MxProbeResult&&)>, MxProbeResult>> finished_;
  std::vector<std::thread> workers_;
};

}  // namespace repwatch
