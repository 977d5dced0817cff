#include "agent/scheduler.h"

#include <algorithm>
#include <deque>
#include <unordered_map>

namespace repwatch {
namespace {

constexpr std::chrono::milliseconds kMaxPollWait{100};

// Whether CycleOptions::stop_grace has run out since a stop request was first seen
// (remembered in `seen`); never without a stop request or a grace.
bool GraceOver(const CycleOptions& options, std::optional<std::chrono::steady_clock::time_point>& seen,
               std::chrono::steady_clock::time_point now) {
  if (!options.stop || !options.stop->load()) return false;
  if (!seen) seen = now;
  return options.stop_grace && now - *seen >= *options.stop_grace;
}

}  // namespace

Scheduler::Scheduler(std::vector<std::unique_ptr<Check>>& checks, Resolver& resolver, Clock& clock)
    : checks_(checks), resolver_(resolver), clock_(clock) {}

bool Scheduler::RunBeginCycle(CycleReport* report, const CycleOptions& options) {
  // On the heap: after a stop, a check may still call back into an abandoned begin.
  auto begin = std::make_unique<OpenBegin>();
  begin->remaining = checks_.size();
  OpenBegin* raw = begin.get();
  for (auto& check : checks_) check->BeginCycle(&raw->report, [raw] { --raw->remaining; });
  std::optional<std::chrono::steady_clock::time_point> stop_seen;
  while (begin->remaining > 0) {
    if (GraceOver(options, stop_seen, clock_.Now())) {
      abandoned_begins_.push_back(std::move(begin));
      return false;
    }
    PollAll(kMaxPollWait);
    if (options.on_poll) options.on_poll();
  }
  *report = std::move(begin->report);
  return true;
}

void Scheduler::PollAll(std::chrono::milliseconds max_wait) {
  resolver_.Poll(max_wait);
  for (auto& check : checks_) check->Poll();
}

CycleOutcome Scheduler::RunCycle(const TargetSet& targets, const CycleOptions& options, const Sink& sink) {
  std::erase_if(abandoned_, [](const auto& o) { return o->remaining == 0; });
  std::erase_if(abandoned_begins_, [](const auto& b) { return b->remaining == 0; });
  CycleOutcome out;
  const auto start = clock_.Now();
  if (!RunBeginCycle(&out.report, options)) {  // stopped while the zones were being probed
    out.duration = clock_.Now() - start;
    return out;
  }
  if (options.on_cycle_begun) options.on_cycle_begun(out.report);

  std::unordered_map<size_t, std::unique_ptr<OpenAddress>> open;
  const size_t n = targets.size();
  const auto pace_start = clock_.Now();
  auto due = [&](size_t i) {
    return pace_start + std::chrono::duration_cast<std::chrono::nanoseconds>(options.spread * i / std::max<size_t>(n, 1));
  };
  size_t next = 0;      // next address to start
  size_t next_out = 0;  // next address to deliver
  auto stopped = [&] { return options.stop && options.stop->load(); };
  std::optional<std::chrono::steady_clock::time_point> stop_seen;

  while ((next < n && !stopped()) || !open.empty()) {
    const auto now = clock_.Now();
    while (next < n && !stopped() && open.size() < options.max_addresses_in_flight &&
           resolver_.Pending() < options.max_pending_queries && (options.spread.count() == 0 || due(next) <= now)) {
      auto o = std::make_unique<OpenAddress>(OpenAddress{targets.At(next), {}, checks_.size() + 1});
      o->report.ip = o->target.ip;
      if (o->target.range) o->report.range = o->target.range->name;
      OpenAddress* raw = o.get();
      const size_t id = next++;
      open.emplace(id, std::move(o));
      auto done = [raw] { --raw->remaining; };
      for (auto& check : checks_) check->CheckIp(raw->target, &raw->report, done);
      done();  // the +1 above: no address finishes while its checks are still being started
    }
    // Deliver in target order: the oldest open address gates the ones after it.
    for (auto it = open.find(next_out); it != open.end() && it->second->remaining == 0; it = open.find(next_out)) {
      sink(std::move(it->second->report));
      open.erase(it);
      ++next_out;
      ++out.addresses_done;
    }
    if (open.empty() && (next >= n || stopped())) break;
    if (GraceOver(options, stop_seen, now)) {
      for (auto& [id, o] : open) abandoned_.push_back(std::move(o));
      break;
    }
    auto wait = kMaxPollWait;
    if (options.spread.count() > 0 && next < n && open.size() < options.max_addresses_in_flight) {
      // Rounded up: a zero wait before a start that is due in under 1 ms would spin.
      const auto until = std::chrono::ceil<std::chrono::milliseconds>(due(next) - clock_.Now());
      wait = std::clamp(until, std::chrono::milliseconds(0), kMaxPollWait);
    }
    PollAll(wait);
    if (options.on_poll) options.on_poll();
  }
  out.completed = out.addresses_done == n;
  out.duration = clock_.Now() - start;
  return out;
}

}  // namespace repwatch
