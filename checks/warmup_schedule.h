// Warm-up schedules and the signals of one address against its schedule
// (domain-facts §5). Pure functions: the warm-up check (checks/warmup.h) gathers
// the counts, this file judges them.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/volume_store.h"

namespace repwatch {

struct WarmupSchedule {
  std::string name;
  bool hourly = false;              // allowances are per hour of each ramp day (SendGrid-style); else per day
  std::vector<uint64_t> allowances;  // one per ramp day, day 0 first; the ramp is complete after the last
  // Per-receiver schedules: group ("gmail", "microsoft", "yahoo", "other") -> daily
  // allowances per ramp day. When set, every group is judged on its own and
  // `allowances` holds the per-day sums.
  std::map<std::string, std::vector<uint64_t>> by_group;

  int days() const { return static_cast<int>(allowances.size()); }
  // The allowance of a whole ramp day (hourly schedules: 24 x the hourly cap).
  uint64_t DailyAllowance(int day) const;
};

// Built-ins, by name:
//  - "double-30": per day, 50 on day 0, doubling each day, capped at 2,000,000; 30 days.
//  - "sendgrid-hourly": SendGrid's hourly caps (20, 28, 39, 55, 77, 108, ... about x1.4 a day), 42 days.
//    Days 0-20 are SendGrid's table as published (day 12's 1,000 included); days 21-41 are
//    round(16,734 x 1.4^(day - 20)), as the facts give only days 30 and 41 of that stretch:
//    day 30 = 484,039 (SendGrid 484,029), day 41 = 19,601,464 (SendGrid 19,601,056).
//  - "per-receiver": per receiver group (gmail, microsoft, yahoo, other), 200 a day
//    each at first, doubling for a week, then +30% a day; 30 days. Each group: days 0-6
//    200, 400, ... 12,800, then round(12,800 x 1.3^(day - 6)) (after Postmark's guide).
const std::vector<WarmupSchedule>& BuiltInSchedules();

enum class WarmupSignal { kOk, kAhead, kBackoff, kStalled, kCompleted };
std::string_view WarmupSignalName(WarmupSignal s);  // "ok" | "ahead" | "backoff" | "stalled" | "completed"
std::optional<WarmupSignal> ParseWarmupSignal(std::string_view name);

struct WarmupThresholds {
  double tolerance = 1.2;               // ahead: volume > allowance x tolerance
  double backoff_share = 0.05;          // backoff: throttled / attempts today above this ...
  uint64_t backoff_min_attempts = 50;   // ... with at least this many attempts today
  double stall_ratio = 0.25;            // stalled: volume < allowance x stall_ratio ...
  int stall_days = 3;                   // ... on each of the last stall_days complete days
};

struct WarmupInputs {
  int day = 0;                          // ramp day of today (0 = the start day)
  VolumeTotals today;                   // UTC today so far
  VolumeTotals this_hour;               // the current UTC hour so far
  int hour_of_day = 0;                  // 0..23, the current UTC hour
  std::vector<VolumeTotals> previous;   // previous[0] = yesterday, [1] = the day before, ... (zeros when idle)
};

struct WarmupVerdict {
  WarmupSignal signal = WarmupSignal::kOk;
  uint64_t allowance = 0;   // today's allowance (hourly schedules: the whole day's)
  uint64_t sent = 0;        // today's attempts (delivered + deferred + bounced)
  double ratio = 0;         // sent / allowance (0 when the allowance is 0)
  std::string detail;       // the numbers behind the signal, for people:
                            // "412 sent today against an allowance of 200 (x1.2 tolerance)", ...
};

// Precedence: completed (day >= schedule length) > backoff > ahead > stalled > ok.
//  - backoff: today's throttled share above backoff_share with at least
//    backoff_min_attempts attempts (per group for per-receiver schedules);
//  - ahead: today's attempts above allowance x tolerance, or, for hourly schedules,
//    this hour's above the hourly cap x tolerance (per group likewise);
//  - stalled: each of the last stall_days complete ramp days (only days on the ramp,
//    so not before day stall_days) below allowance x stall_ratio. previous[k] is judged
//    against the allowance of ramp day `day - 1 - k`; entries missing from `previous`
//    count as idle days. Per-receiver schedules: judged on the address's totals, since
//    a receiver the list barely has is no stall.
// "Above" and "below" are strict: a count exactly at a threshold does not fire.
// A negative day counts as day 0. Per-receiver schedules: a group the schedule does not
// name counts as "other"; the signal is the worst group's, and allowance / sent / ratio
// stay the address's totals. Completed: allowance and ratio 0 (the ramp has none left).
// detail, one line, days counted from 1 for people:
//   ok:        "900 sent today of an allowance of 1600 (day 2 of 30)"
//   ahead:     "412 sent today against an allowance of 200 (x1.2 tolerance)",
//              "this hour: 45 sent, cap 28 x1.2" (both, "; "-joined, when both fire)
//   backoff:   "130 of 400 attempts throttled today (32.5%, above 5%)"
//   stalled:   "below 25% of the allowance on each of the last 3 days: 10 of 936, 0 of 672, 0 of 480
//               (yesterday first)" (one line)
//   completed: "the 42-day ramp is complete (day 43; 5000 sent today)"
// with per-group findings prefixed by the group ("gmail: 130 of 400 ..."), every group
// that fires listed, worst first, "; "-joined.
WarmupVerdict EvaluateWarmup(const WarmupSchedule& schedule, const WarmupThresholds& thresholds,
                             const WarmupInputs& inputs);

}  // namespace repwatch
