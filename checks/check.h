// One interface for every check kind (dnsbl, fcrdns, spf, mx_probe, warmup).
// A check is asynchronous: it issues questions through the Resolver seam and
// reports by filling its section of a report and calling done(). Checks know
// nothing of exporters; the scheduler (agent/scheduler.h) drives them.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <set>
#include <string_view>
#include <vector>

#include "agent/clock.h"
#include "agent/config.h"
#include "agent/resolver.h"
#include "checks/report.h"

namespace repwatch {

struct Target {
  IpAddress ip;
  const RangeConfig* range = nullptr;  // never null for addresses from the config
};

// The seams a check may use. `resolver` is for per-address questions; `shared`,
// when set, is the cycle cache (agent/dns_cache.h) for names many addresses ask
// about (SPF records, HELO names). Both are served by the same Poll loop.
class SmtpDialer;
class MxHistory;
class VolumeStore;

// The MX probe also needs `dialer` (agent/smtp_dialer.h); `mx_history` (checks/mx_probe.h),
// when set, holds the last results so min_interval spans restarts; `stop`, when set,
// makes probes not yet started end at once (reusing the last result) so shutdown is quick.
// The warm-up check needs `volume` (agent/volume_store.h); without it, it does not run.
struct CheckEnv {
  Resolver& resolver;
  Clock& clock;
  Resolver* shared = nullptr;
  SmtpDialer* dialer = nullptr;
  MxHistory* mx_history = nullptr;
  const std::atomic<bool>* stop = nullptr;
  VolumeStore* volume = nullptr;
  Resolver& SharedResolver() const { return shared ? *shared : resolver; }
};

class Check {
 public:
  using Done = std::function<void()>;
  virtual ~Check() = default;

  // The config section and JSON key, e.g. "dnsbl".
  virtual std::string_view Name() const = 0;

  // Cycle-level work before any address (e.g. zone health from test points).
  // Fills *cycle and calls done() exactly once, possibly from a resolver callback.
  virtual void BeginCycle(CycleReport* cycle, Done done) = 0;

  // Checks one address: fills its section of *report, then calls done() exactly once.
  // `report` and `target` stay valid until done() runs.
  virtual void CheckIp(const Target& target, IpReport* report, Done done) = 0;

  // Resolver questions CheckIp will normally ask for this target; the scheduler
  // uses it to spread a cycle's load evenly over the interval.
  virtual size_t ExpectedQueries(const Target& target) const = 0;

  // Called from the scheduler's loop after every Resolver::Poll. A check whose work
  // runs on other threads (the MX probe's SMTP sessions) delivers its results here,
  // so every done() still runs on the loop's thread.
  virtual void Poll() {}
};

// The registry: config section name -> factory. Returns the enabled checks.
// `families` are the address families this run will check; cycle-level probes
// (e.g. IPv6 zone test points) are skipped for families with no target.
std::vector<std::unique_ptr<Check>> MakeChecks(const Config& config, CheckEnv env, const std::set<Family>& families);

}  // namespace repwatch
