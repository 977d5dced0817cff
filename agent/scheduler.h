// Scheduler: runs one cycle — every enabled check over every target — on the
// single-threaded resolver loop, and hands each finished IpReport to a sink in
// target order (an address that finished early waits for the ones before it).
//
// Load is spread evenly: with a non-zero `spread`, address i of N starts no
// earlier than cycle_start + i * spread / N, so a cycle over a /16 turns into a
// steady trickle instead of a burst. Memory stays bounded: at most
// `max_addresses_in_flight` addresses are open at once and new ones start only
// while the resolver's queue is below `max_pending_queries`.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "agent/clock.h"
#include "agent/resolver.h"
#include "agent/targets.h"
#include "checks/check.h"

namespace repwatch {

struct CycleOptions {
  std::chrono::nanoseconds spread{0};   // 0: as fast as the resolver's rate limits allow
  size_t max_addresses_in_flight = 4096;
  size_t max_pending_queries = 8192;
  const std::atomic<bool>* stop = nullptr;  // when set, no new address starts; open ones finish
  // With `stop`: how long open addresses (or the cycle-level work before them, such
  // as the zones' test points) may take to finish after the stop request
  // (unset: as long as they need). Those still open then are abandoned -- not
  // delivered, their results dropped -- so a shutdown or reload is not held up by
  // DNS timeouts or a rate-limited queue. An abandoned address stays owned by the
  // Scheduler until it is destroyed or its checks are done with it, so callbacks
  // from later polls of the same resolver and checks remain safe.
  std::optional<std::chrono::milliseconds> stop_grace;
  // Called once the cycle-level work (zone health) is done, before any address starts.
  std::function<void(const CycleReport&)> on_cycle_begun;
  // Called after every poll of the loop (at least every 100 ms while the cycle runs,
  // the cycle-level work included), e.g. to commit what finished addresses wrote while
  // the next ones take long, or to notice a stop request.
  std::function<void()> on_poll;
};

struct CycleOutcome {
  CycleReport report;
  size_t addresses_done = 0;
  bool completed = false;  // false when stopped early
  std::chrono::nanoseconds duration{0};
};

class Scheduler {
 public:
  using Sink = std::function<void(IpReport&&)>;
  Scheduler(std::vector<std::unique_ptr<Check>>& checks, Resolver& resolver, Clock& clock);

  CycleOutcome RunCycle(const TargetSet& targets, const CycleOptions& options, const Sink& sink);

 private:
  // Every check's BeginCycle, polled to completion; false when abandoned after a stop.
  bool RunBeginCycle(CycleReport* report, const CycleOptions& options);
  void PollAll(std::chrono::milliseconds max_wait);  // the resolver, then every check's Poll

  struct OpenAddress {
    Target target;
    IpReport report;
    size_t remaining;  // checks not done yet, +1 while they are being started
  };

  std::vector<std::unique_ptr<Check>>& checks_;
  struct OpenBegin {
    CycleReport report;
    size_t remaining;  // checks whose BeginCycle is not done yet
  };

  std::vector<std::unique_ptr<OpenAddress>> abandoned_;  // see CycleOptions::stop_grace
  std::vector<std::unique_ptr<OpenBegin>> abandoned_begins_;
  Resolver& resolver_;
  Clock& clock_;
};

}  // namespace repwatch
