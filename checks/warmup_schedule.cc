#include "checks/warmup_schedule.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace repwatch {
namespace {

// Threshold comparisons allow for the rounding of `count x factor` in doubles, so a count
// exactly at a threshold (576 against 480 x 1.2) is never taken to be past it.
constexpr double kSlack = 1e-12;
bool Above(double value, double limit) { return value > limit + std::abs(limit) * kSlack; }
bool Below(double value, double limit) { return value < limit - std::abs(limit) * kSlack; }

uint64_t At(const std::vector<uint64_t>& v, int day) {
  return day >= 0 && day < static_cast<int>(v.size()) ? v[static_cast<size_t>(day)] : 0;
}

uint64_t Times24(uint64_t hourly) {
  return hourly > std::numeric_limits<uint64_t>::max() / 24 ? std::numeric_limits<uint64_t>::max() : hourly * 24;
}

uint64_t Round(double x) { return static_cast<uint64_t>(std::llround(x)); }

// 0.325 -> "32.5%", 0.05 -> "5%".
std::string Percent(double share) {
  std::string s = fmt::format("{:.2f}", share * 100);
  while (s.back() == '0') s.pop_back();
  if (s.back() == '.') s.pop_back();
  return s + "%";
}

WarmupSchedule Double30() {
  WarmupSchedule s;
  s.name = "double-30";
  uint64_t v = 50;
  for (int day = 0; day < 30; ++day, v *= 2) s.allowances.push_back(std::min<uint64_t>(v, 2'000'000));
  return s;
}

// Days 0-20 as SendGrid publishes them (day 12's 1,000 is the source's own step); days
// 21-41 are day 20 x 1.4^(day - 20), rounded, since the facts give only days 30 and 41
// of that stretch: this makes day 30 484,039 (SendGrid: 484,029) and day 41 19,601,464
// (SendGrid: 19,601,056), both within 0.003%.
WarmupSchedule SendGridHourly() {
  WarmupSchedule s;
  s.name = "sendgrid-hourly";
  s.hourly = true;
  s.allowances = {20,  28,   39,   55,   77,   108,  151,  211,  295,   413,  579,
                  810, 1000, 1587, 2222, 3111, 4356, 6098, 8583, 11953, 16734};
  for (int day = 21; day <= 41; ++day) s.allowances.push_back(Round(16734 * std::pow(1.4, day - 20)));
  return s;
}

// Per receiver group: 200 on day 0, doubling through day 6 (12,800), then 12,800 x 1.3^(day - 6).
WarmupSchedule PerReceiver() {
  std::vector<uint64_t> group;
  for (int day = 0; day < 30; ++day)
    group.push_back(day <= 6 ? uint64_t{200} << day : Round(12800 * std::pow(1.3, day - 6)));
  WarmupSchedule s;
  s.name = "per-receiver";
  for (const char* g : {"gmail", "microsoft", "yahoo", "other"}) s.by_group[g] = group;
  for (int day = 0; day < 30; ++day) {
    uint64_t sum = 0;
    for (const auto& [name, allowances] : s.by_group) sum += allowances[static_cast<size_t>(day)];
    s.allowances.push_back(sum);
  }
  return s;
}

// A count per group, with groups the schedule does not name counted as "other".
uint64_t GroupCount(const std::map<std::string, uint64_t>& counts, const WarmupSchedule& s, const std::string& group) {
  uint64_t n = 0;
  for (const auto& [name, count] : counts)
    if (name == group || (group == "other" && !s.by_group.contains(name))) n += count;
  return n;
}

// What one judgement is about: the whole address, or one receiver group of it.
struct Scope {
  std::string prefix;  // "" or "gmail: "
  uint64_t sent = 0, throttled = 0, hour_sent = 0;
  uint64_t allowance = 0;  // today's, in the schedule's unit (per hour for hourly schedules)
};

struct Finding {
  double severity = 0;  // how far past the threshold; orders the groups, worst first
  std::string text;
};

std::optional<Finding> Backoff(const Scope& s, const WarmupThresholds& t) {
  if (s.sent == 0 || s.sent < t.backoff_min_attempts) return std::nullopt;
  const double share = static_cast<double>(s.throttled) / static_cast<double>(s.sent);
  if (!Above(share, t.backoff_share)) return std::nullopt;
  return Finding{share, fmt::format("{}{} of {} attempts throttled today ({}, above {})", s.prefix, s.throttled, s.sent,
                                    Percent(share), Percent(t.backoff_share))};
}

std::optional<Finding> Ahead(const Scope& s, bool hourly, const WarmupThresholds& t) {
  auto over = [](uint64_t sent, double limit) {
    return limit > 0 ? static_cast<double>(sent) / limit : std::numeric_limits<double>::infinity();
  };
  std::vector<std::string> parts;
  double severity = 0;
  const uint64_t daily = hourly ? Times24(s.allowance) : s.allowance;
  const double day_limit = static_cast<double>(daily) * t.tolerance;
  if (Above(static_cast<double>(s.sent), day_limit)) {
    parts.push_back(
        fmt::format("{} sent today against an allowance of {} (x{} tolerance)", s.sent, daily, t.tolerance));
    severity = over(s.sent, day_limit);
  }
  const double hour_limit = static_cast<double>(s.allowance) * t.tolerance;
  if (hourly && Above(static_cast<double>(s.hour_sent), hour_limit)) {
    parts.push_back(fmt::format("this hour: {} sent, cap {} x{}", s.hour_sent, s.allowance, t.tolerance));
    severity = std::max(severity, over(s.hour_sent, hour_limit));
  }
  if (parts.empty()) return std::nullopt;
  return Finding{severity, s.prefix + fmt::format("{}", fmt::join(parts, "; "))};
}

// Every scope that `judge` flags, worst first, in one line; nullopt when none is.
template <typename Judge>
std::optional<std::string> Worst(const std::vector<Scope>& scopes, Judge judge) {
  std::vector<Finding> found;
  for (const Scope& s : scopes)
    if (auto f = judge(s)) found.push_back(std::move(*f));
  if (found.empty()) return std::nullopt;
  std::stable_sort(found.begin(), found.end(),
                   [](const Finding& a, const Finding& b) { return a.severity > b.severity; });
  std::vector<std::string> texts;
  for (Finding& f : found) texts.push_back(std::move(f.text));
  return fmt::format("{}", fmt::join(texts, "; "));
}

std::optional<std::string> Stalled(const WarmupSchedule& schedule, const WarmupThresholds& t, int day,
                                   const std::vector<VolumeTotals>& previous) {
  if (t.stall_days <= 0 || day < t.stall_days) return std::nullopt;
  std::vector<std::string> days;
  for (int k = 0; k < t.stall_days; ++k) {
    const size_t i = static_cast<size_t>(k);
    const uint64_t sent = i < previous.size() ? previous[i].attempts() : 0;  // missing: idle
    const uint64_t allowance = schedule.DailyAllowance(day - 1 - k);
    if (!Below(static_cast<double>(sent), static_cast<double>(allowance) * t.stall_ratio)) return std::nullopt;
    days.push_back(fmt::format("{} of {}", sent, allowance));
  }
  return fmt::format("below {} of the allowance on each of the last {} days: {} (yesterday first)",
                     Percent(t.stall_ratio), t.stall_days, fmt::join(days, ", "));
}

}  // namespace

uint64_t WarmupSchedule::DailyAllowance(int day) const {
  return hourly ? Times24(At(allowances, day)) : At(allowances, day);
}

const std::vector<WarmupSchedule>& BuiltInSchedules() {
  static const std::vector<WarmupSchedule> schedules = {Double30(), SendGridHourly(), PerReceiver()};
  return schedules;
}

std::string_view WarmupSignalName(WarmupSignal s) {
  switch (s) {
    case WarmupSignal::kOk: return "ok";
    case WarmupSignal::kAhead: return "ahead";
    case WarmupSignal::kBackoff: return "backoff";
    case WarmupSignal::kStalled: return "stalled";
    case WarmupSignal::kCompleted: return "completed";
  }
  return "ok";
}

std::optional<WarmupSignal> ParseWarmupSignal(std::string_view name) {
  for (WarmupSignal s : {WarmupSignal::kOk, WarmupSignal::kAhead, WarmupSignal::kBackoff, WarmupSignal::kStalled,
                         WarmupSignal::kCompleted})
    if (WarmupSignalName(s) == name) return s;
  return std::nullopt;
}

WarmupVerdict EvaluateWarmup(const WarmupSchedule& schedule, const WarmupThresholds& thresholds,
                             const WarmupInputs& inputs) {
  const WarmupInputs& in = inputs;
  const int day = std::max(in.day, 0);
  WarmupVerdict v;
  v.sent = in.today.attempts();
  if (day >= schedule.days()) {
    v.signal = WarmupSignal::kCompleted;
    v.detail = fmt::format("the {}-day ramp is complete (day {}; {} sent today)", schedule.days(), day + 1, v.sent);
    return v;
  }
  v.allowance = schedule.DailyAllowance(day);
  v.ratio = v.allowance > 0 ? static_cast<double>(v.sent) / static_cast<double>(v.allowance) : 0;

  std::vector<Scope> scopes;
  if (schedule.by_group.empty()) {
    scopes.push_back({"", v.sent, in.today.throttled, in.this_hour.attempts(), At(schedule.allowances, day)});
  } else {
    for (const auto& [group, allowances] : schedule.by_group)
      scopes.push_back({group + ": ", GroupCount(in.today.attempts_by_group, schedule, group),
                        GroupCount(in.today.throttled_by_group, schedule, group),
                        GroupCount(in.this_hour.attempts_by_group, schedule, group), At(allowances, day)});
  }

  if (auto d = Worst(scopes, [&](const Scope& s) { return Backoff(s, thresholds); })) {
    v.signal = WarmupSignal::kBackoff;
    v.detail = std::move(*d);
  } else if (auto a = Worst(scopes, [&](const Scope& s) { return Ahead(s, schedule.hourly, thresholds); })) {
    v.signal = WarmupSignal::kAhead;
    v.detail = std::move(*a);
  } else if (auto st = Stalled(schedule, thresholds, day, in.previous)) {
    v.signal = WarmupSignal::kStalled;
    v.detail = std::move(*st);
  } else {
    v.detail = fmt::format("{} sent today of an allowance of {} (day {} of {})", v.sent, v.allowance, day + 1,
                           schedule.days());
  }
  return v;
}

}  // namespace repwatch
