// The warm-up check (domain-facts §5): where each address stands on its volume
// ramp. It reads the volume store (agent/volume_store.h: counts from MTA logs and
// the push API) on the scheduler's thread; no DNS.
//
// An address is warming up when:
//  - its range sets warmup_start (origin "config"), or
//  - [warmup] auto_start is on and the address started sending after repwatch began
//    counting (origin "auto": day 0 is its first day with traffic), or
//  - it sends again after idle_days (30) without any traffic: day 0 is then the first
//    day of the new run (for a configured start: a run that begins idle_days or more
//    after it).
// Addresses that already sent on the first day the store has data for are taken as
// established, not new. The ramp's schedule is the range's warmup_schedule, else
// [warmup] schedule. A completed ramp is reported as `completed` for 7 more days, then
// the address leaves warm-up. Addresses not warming up get only the `volume` section
// (when they sent today), which costs no per-address metric series.
#pragma once

#include <map>
#include <string>

#include "agent/volume_store.h"
#include "checks/check.h"
#include "checks/warmup_schedule.h"

namespace repwatch {

inline constexpr int kCompletedReportDays = 7;

// Whether the config asks for warm-up tracking: some volume comes in (log sources or
// the push API's token) or a range has a warmup_start.
bool WarmupCheckEnabled(const Config& config);

// Built-in schedules plus the config's [[warmup.schedules]], by name.
std::map<std::string, WarmupSchedule> SchedulesOf(const Config& config);

class WarmupCheck final : public Check {
 public:
  WarmupCheck(const Config& config, CheckEnv env, VolumeStore& store);

  std::string_view Name() const override { return "warmup"; }
  void BeginCycle(CycleReport* cycle, Done done) override;
  void CheckIp(const Target& target, IpReport* report, Done done) override;
  size_t ExpectedQueries(const Target&) const override { return 0; }

 private:
  const WarmupConfig config_;
  CheckEnv env_;
  VolumeStore& store_;
  std::map<std::string, WarmupSchedule> schedules_;
  std::optional<long long> first_data_day_;  // refreshed each cycle
};

}  // namespace repwatch
