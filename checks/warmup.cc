#include "checks/warmup.h"

#include <fmt/format.h>

#include <algorithm>
#include <ctime>

#include "agent/log.h"

namespace repwatch {
namespace {

constexpr long long kDay = 86400;

std::optional<long long> DayOfDate(const std::string& ymd) {
  std::tm tm{};
  const char* end = strptime(ymd.c_str(), "%Y-%m-%d", &tm);
  if (!end || *end) return std::nullopt;
  return static_cast<long long>(timegm(&tm)) / kDay;
}

std::string DateOfDay(long long day) {
  const std::time_t t = day * kDay;
  std::tm tm{};
  gmtime_r(&t, &tm);
  return fmt::format("{:04}-{:02}-{:02}", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
}

}  // namespace

bool WarmupCheckEnabled(const Config& c) {
  return !c.volume.sources.empty() || !c.api.token.empty() ||
         std::any_of(c.ranges.begin(), c.ranges.end(), [](const RangeConfig& r) { return r.warmup_start.has_value(); });
}

std::map<std::string, WarmupSchedule> SchedulesOf(const Config& config) {
  std::map<std::string, WarmupSchedule> out;
  for (const WarmupSchedule& s : BuiltInSchedules()) out.emplace(s.name, s);
  for (const WarmupScheduleConfig& c : config.warmup.schedules) {
    WarmupSchedule s;
    s.name = c.name;
    s.hourly = c.hourly;
    s.allowances = c.allowances;
    out[c.name] = std::move(s);
  }
  return out;
}

WarmupCheck::WarmupCheck(const Config& config, CheckEnv env, VolumeStore& store)
    : config_(config.warmup), env_(env), store_(store), schedules_(SchedulesOf(config)) {}

void WarmupCheck::BeginCycle(CycleReport*, Done done) {
  auto first = store_.FirstDay();
  if (first.ok()) first_data_day_ = first.value();
  else log::Error(first.error());
  done();
}

void WarmupCheck::CheckIp(const Target& target, IpReport* report, Done done) {
  const long long now = UnixSeconds(env_.clock.WallNow());
  const long long today = now / kDay, hour = now / 3600;
  const RangeConfig* range = target.range;
  const int history = std::max(config_.stall_days, 1);
  auto days = store_.Days(target.ip, today - history, today);
  if (!days.ok()) {
    log::Error(days.error());
    return done();
  }
  if (auto it = days.value().find(today); it != days.value().end())
    report->volume = VolumeReport{it->second.delivered, it->second.deferred, it->second.bounced};

  // Day 0 of the ramp, and why.
  std::optional<long long> start, run;
  std::string origin;
  if (config_.auto_start || (range && range->warmup_start)) {
    auto r = store_.CurrentRunStart(target.ip, config_.idle_days);
    if (r.ok()) run = r.value();
    else log::Error(r.error());
  }
  if (range && range->warmup_start) {
    start = DayOfDate(*range->warmup_start);
    origin = "config";
    // Silent for idle_days or more after its configured start: the ramp begins again.
    if (start && run && *run >= *start + config_.idle_days) {
      start = run;
      origin = "auto";
    }
  } else if (config_.auto_start && run) {
    // Sending since the store's first day: established, not new (unless idle since).
    const bool established = first_data_day_ && *run <= *first_data_day_;
    if (!established) {
      start = run;
      origin = "auto";
    }
  }
  if (!start || today < *start) return done();

  const std::string& name = range && !range->warmup_schedule.empty() ? range->warmup_schedule : config_.schedule;
  auto it = schedules_.find(name);
  if (it == schedules_.end()) return done();  // the config loader rejects unknown names
  const WarmupSchedule& schedule = it->second;
  const int day = static_cast<int>(today - *start);
  if (day >= schedule.days() + kCompletedReportDays) return done();

  WarmupInputs in;
  in.day = day;
  in.hour_of_day = static_cast<int>((now % kDay) / 3600);
  if (auto t = days.value().find(today); t != days.value().end()) in.today = t->second;
  for (int back = 1; back <= history; ++back) {
    auto p = days.value().find(today - back);
    in.previous.push_back(p != days.value().end() ? p->second : VolumeTotals{});
  }
  if (schedule.hourly) {
    auto hours = store_.Hours(target.ip, hour, hour);
    if (hours.ok()) {
      if (auto h = hours.value().find(hour); h != hours.value().end()) in.this_hour = h->second;
    } else {
      log::Error(hours.error());
    }
  }
  const WarmupVerdict v = EvaluateWarmup(schedule, WarmupThresholds{config_.tolerance, config_.backoff_share,
                                                                     static_cast<uint64_t>(config_.backoff_min_attempts),
                                                                     config_.stall_ratio, config_.stall_days},
                                         in);
  WarmupReport& w = report->warmup.emplace();
  w.schedule = schedule.name;
  w.start = DateOfDay(*start);
  w.origin = origin;
  w.day = day;
  w.allowance = v.allowance;
  w.sent = v.sent;
  w.ratio = v.ratio;
  w.signal = v.signal;
  w.detail = v.detail;
  done();
}

}  // namespace repwatch
