#include "checks/warmup_schedule.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <functional>
#include <stdexcept>

using namespace repwatch;

namespace {

const WarmupSchedule& BuiltIn(const std::string& name) {
  for (const WarmupSchedule& s : BuiltInSchedules())
    if (s.name == name) return s;
  FAIL("no built-in schedule " << name);
  throw std::logic_error("unreachable");
}

// `attempts` attempts today, `throttled` of them deferred with a rate-limit reply.
VolumeTotals Totals(uint64_t attempts, uint64_t throttled = 0) {
  VolumeTotals t;
  t.delivered = attempts - throttled;
  t.deferred = throttled;
  t.throttled = throttled;
  return t;
}

// Per receiver group: group -> {attempts, throttled}; the totals are the sums.
VolumeTotals Groups(const std::map<std::string, std::pair<uint64_t, uint64_t>>& groups) {
  VolumeTotals t;
  for (const auto& [group, counts] : groups) {
    t.delivered += counts.first - counts.second;
    t.deferred += counts.second;
    t.throttled += counts.second;
    t.attempts_by_group[group] = counts.first;
    t.throttled_by_group[group] = counts.second;
  }
  return t;
}

// A small daily ramp whose numbers are easy to follow.
WarmupSchedule Daily(std::vector<uint64_t> allowances) {
  WarmupSchedule s;
  s.name = "custom";
  s.allowances = std::move(allowances);
  return s;
}
WarmupSchedule Small() { return Daily({200, 400, 800, 1600, 3200}); }

WarmupVerdict Eval(const WarmupSchedule& s, int day, VolumeTotals today, std::vector<VolumeTotals> previous = {},
                   VolumeTotals this_hour = {}) {
  WarmupInputs in;
  in.day = day;
  in.today = std::move(today);
  in.this_hour = std::move(this_hour);
  in.previous = std::move(previous);
  return EvaluateWarmup(s, WarmupThresholds{}, in);
}

// Yesterday and the two days before well on the ramp, so nothing stalls.
const std::vector<VolumeTotals> kBusy = {Totals(1'000'000), Totals(1'000'000), Totals(1'000'000)};

bool Increasing(const std::vector<uint64_t>& v) {
  return std::adjacent_find(v.begin(), v.end(), std::greater_equal<>()) == v.end();
}

}  // namespace

TEST_CASE("warmup built-ins: exactly double-30, sendgrid-hourly and per-receiver", "[warmup_schedule]") {
  const auto& all = BuiltInSchedules();
  REQUIRE(all.size() == 3);
  CHECK(all[0].name == "double-30");
  CHECK(all[1].name == "sendgrid-hourly");
  CHECK(all[2].name == "per-receiver");
}

TEST_CASE("warmup built-ins: double-30 doubles from 50 up to 2,000,000 over 30 days", "[warmup_schedule]") {
  const WarmupSchedule& s = BuiltIn("double-30");
  CHECK_FALSE(s.hourly);
  CHECK(s.by_group.empty());
  REQUIRE(s.days() == 30);
  CHECK(s.allowances[0] == 50);
  CHECK(s.allowances[1] == 100);
  CHECK(s.allowances[15] == 1'638'400);
  CHECK(s.allowances[16] == 2'000'000);
  CHECK(s.allowances[29] == 2'000'000);
  CHECK(std::is_sorted(s.allowances.begin(), s.allowances.end()));
  CHECK(s.DailyAllowance(3) == 400);
}

TEST_CASE("warmup built-ins: sendgrid-hourly is SendGrid's table, then x1.4 a day to day 41", "[warmup_schedule]") {
  const WarmupSchedule& s = BuiltIn("sendgrid-hourly");
  CHECK(s.hourly);
  CHECK(s.by_group.empty());
  REQUIRE(s.days() == 42);
  const std::vector<uint64_t> table = {20,  28,   39,   55,   77,   108,  151,  211,  295,   413,  579,
                                       810, 1000, 1587, 2222, 3111, 4356, 6098, 8583, 11953, 16734};
  CHECK(std::vector<uint64_t>(s.allowances.begin(), s.allowances.begin() + 21) == table);
  CHECK(s.allowances[21] == 23'428);
  CHECK(s.allowances[30] == 484'039);  // SendGrid: 484,029
  CHECK(s.allowances[30] == Approx(484'029).epsilon(1e-4));
  CHECK(s.allowances[41] == 19'601'464);  // SendGrid: 19,601,056
  CHECK(s.allowances[41] == Approx(19'601'056).epsilon(1e-4));
  CHECK(Increasing(s.allowances));
  for (int day = 21; day < 42; ++day)
    CHECK(static_cast<double>(s.allowances[day]) / static_cast<double>(s.allowances[day - 1]) ==
          Approx(1.4).epsilon(1e-3));
  CHECK(s.DailyAllowance(0) == 480);
  CHECK(s.DailyAllowance(12) == 24'000);
  CHECK(s.DailyAllowance(42) == 0);
  CHECK(s.DailyAllowance(-1) == 0);
}

TEST_CASE("warmup built-ins: per-receiver ramps each group from 200, doubling a week, then +30%", "[warmup_schedule]") {
  const WarmupSchedule& s = BuiltIn("per-receiver");
  CHECK_FALSE(s.hourly);
  REQUIRE(s.days() == 30);
  std::vector<std::string> groups;
  for (const auto& [group, allowances] : s.by_group) groups.push_back(group);
  CHECK(groups == std::vector<std::string>{"gmail", "microsoft", "other", "yahoo"});
  const std::vector<uint64_t>& gmail = s.by_group.at("gmail");
  REQUIRE(gmail.size() == 30);
  CHECK(std::vector<uint64_t>(gmail.begin(), gmail.begin() + 8) ==
        std::vector<uint64_t>{200, 400, 800, 1600, 3200, 6400, 12800, 16640});
  for (int day = 8; day < 30; ++day)
    CHECK(static_cast<double>(gmail[day]) / static_cast<double>(gmail[day - 1]) == Approx(1.3).epsilon(1e-3));
  CHECK(Increasing(gmail));
  for (const auto& [group, allowances] : s.by_group) CHECK(allowances == gmail);
  for (int day = 0; day < 30; ++day) CHECK(s.allowances[day] == 4 * gmail[day]);
  CHECK(s.allowances[0] == 800);
  CHECK(s.DailyAllowance(1) == 1600);
}

TEST_CASE("warmup signals: names round-trip, anything else is refused", "[warmup_schedule]") {
  for (WarmupSignal s : {WarmupSignal::kOk, WarmupSignal::kAhead, WarmupSignal::kBackoff, WarmupSignal::kStalled,
                         WarmupSignal::kCompleted})
    CHECK(ParseWarmupSignal(WarmupSignalName(s)) == s);
  CHECK(WarmupSignalName(WarmupSignal::kBackoff) == "backoff");
  CHECK(WarmupSignalName(WarmupSignal::kCompleted) == "completed");
  CHECK_FALSE(ParseWarmupSignal("OK"));
  CHECK_FALSE(ParseWarmupSignal(""));
  CHECK_FALSE(ParseWarmupSignal("stall"));
}

TEST_CASE("warmup: ok gives today's count against the allowance and the ramp day", "[warmup_schedule]") {
  const WarmupVerdict v = Eval(Small(), 1, Totals(300));
  CHECK(v.signal == WarmupSignal::kOk);
  CHECK(v.allowance == 400);
  CHECK(v.sent == 300);
  CHECK(v.ratio == Approx(0.75));
  CHECK(v.detail == "300 sent today of an allowance of 400 (day 2 of 5)");

  const WarmupVerdict idle = Eval(Small(), 0, Totals(0));
  CHECK(idle.signal == WarmupSignal::kOk);
  CHECK(idle.ratio == 0);
  CHECK(idle.detail == "0 sent today of an allowance of 200 (day 1 of 5)");

  CHECK(Eval(Small(), -3, Totals(10)).detail == "10 sent today of an allowance of 200 (day 1 of 5)");  // as day 0
}

TEST_CASE("warmup: ahead only past allowance x tolerance", "[warmup_schedule]") {
  const WarmupVerdict at = Eval(Small(), 1, Totals(480));  // 400 x 1.2 exactly
  CHECK(at.signal == WarmupSignal::kOk);
  CHECK(at.ratio == Approx(1.2));

  const WarmupVerdict over = Eval(Small(), 1, Totals(481));
  CHECK(over.signal == WarmupSignal::kAhead);
  CHECK(over.allowance == 400);
  CHECK(over.ratio == Approx(1.2025));
  CHECK(over.detail == "481 sent today against an allowance of 400 (x1.2 tolerance)");

  // Hourly schedules judge the whole day too: day 0 is 20 an hour, 480 a day.
  const WarmupSchedule& sg = BuiltIn("sendgrid-hourly");
  CHECK(Eval(sg, 0, Totals(576)).signal == WarmupSignal::kOk);
  CHECK(Eval(sg, 0, Totals(577)).detail == "577 sent today against an allowance of 480 (x1.2 tolerance)");

  WarmupInputs in;
  in.day = 1;
  in.today = Totals(450);
  WarmupThresholds strict;
  strict.tolerance = 1.0;
  CHECK(EvaluateWarmup(Small(), strict, in).signal == WarmupSignal::kAhead);
  CHECK(EvaluateWarmup(Small(), strict, in).detail == "450 sent today against an allowance of 400 (x1 tolerance)");
}

TEST_CASE("warmup: hourly schedules are ahead when this hour passes the hourly cap x tolerance", "[warmup_schedule]") {
  const WarmupSchedule& sg = BuiltIn("sendgrid-hourly");
  // Day 0: cap 20 an hour, 24 with the tolerance.
  CHECK(Eval(sg, 0, Totals(24), {}, Totals(24)).signal == WarmupSignal::kOk);
  const WarmupVerdict burst = Eval(sg, 0, Totals(25), {}, Totals(25));
  CHECK(burst.signal == WarmupSignal::kAhead);
  CHECK(burst.detail == "this hour: 25 sent, cap 20 x1.2");
  CHECK(burst.allowance == 480);
  CHECK(burst.ratio == Approx(25.0 / 480));

  // Day 1: cap 28 (33.6 with the tolerance).
  CHECK(Eval(sg, 1, Totals(100), {}, Totals(33)).signal == WarmupSignal::kOk);
  CHECK(Eval(sg, 1, Totals(100), {}, Totals(45)).detail == "this hour: 45 sent, cap 28 x1.2");

  const WarmupVerdict both = Eval(sg, 0, Totals(600), {}, Totals(30));
  CHECK(both.signal == WarmupSignal::kAhead);
  CHECK(both.detail == "600 sent today against an allowance of 480 (x1.2 tolerance); this hour: 30 sent, cap 20 x1.2");

  // Daily schedules have no hourly cap.
  CHECK(Eval(Small(), 1, Totals(300), {}, Totals(300)).signal == WarmupSignal::kOk);
}

TEST_CASE("warmup: backoff past the throttled share with enough attempts", "[warmup_schedule]") {
  const WarmupSchedule s = Small();
  CHECK(Eval(s, 3, Totals(100, 5), kBusy).signal == WarmupSignal::kOk);  // 5% exactly
  const WarmupVerdict six = Eval(s, 3, Totals(100, 6), kBusy);
  CHECK(six.signal == WarmupSignal::kBackoff);
  CHECK(six.detail == "6 of 100 attempts throttled today (6%, above 5%)");
  CHECK(six.ratio == Approx(100.0 / 1600));

  CHECK(Eval(s, 3, Totals(49, 49), kBusy).signal == WarmupSignal::kOk);  // below backoff_min_attempts
  CHECK(Eval(s, 3, Totals(50, 2), kBusy).signal == WarmupSignal::kOk);   // 4%
  CHECK(Eval(s, 3, Totals(50, 3), kBusy).signal == WarmupSignal::kBackoff);

  CHECK(Eval(s, 3, Totals(400, 130), kBusy).detail == "130 of 400 attempts throttled today (32.5%, above 5%)");

  // Backoff comes before ahead.
  const WarmupVerdict both = Eval(s, 0, Totals(1000, 100));
  CHECK(both.signal == WarmupSignal::kBackoff);
  CHECK(both.detail == "100 of 1000 attempts throttled today (10%, above 5%)");
  CHECK(both.ratio == Approx(5.0));
}

TEST_CASE("warmup: stalled after stall_days days on the ramp each below allowance x stall_ratio", "[warmup_schedule]") {
  const WarmupSchedule s = Small();  // 200, 400, 800, 1600, 3200
  const std::vector<VolumeTotals> idle = {Totals(0), Totals(0), Totals(0)};
  // Day 2: only two ramp days behind, not judged.
  CHECK(Eval(s, 2, Totals(0), idle).signal == WarmupSignal::kOk);

  const WarmupVerdict stalled = Eval(s, 3, Totals(0), idle);
  CHECK(stalled.signal == WarmupSignal::kStalled);
  CHECK(stalled.allowance == 1600);
  CHECK(stalled.ratio == 0);
  CHECK(stalled.detail ==
        "below 25% of the allowance on each of the last 3 days: 0 of 800, 0 of 400, 0 of 200 (yesterday first)");

  // Each previous day against its own ramp day: yesterday (day 2) 800 -> 200, day 1 400 -> 100, day 0 200 -> 50.
  const WarmupVerdict low = Eval(s, 3, Totals(0), {Totals(199), Totals(99), Totals(49)});
  CHECK(low.signal == WarmupSignal::kStalled);
  CHECK(low.detail ==
        "below 25% of the allowance on each of the last 3 days: 199 of 800, 99 of 400, 49 of 200 (yesterday first)");
  CHECK(Eval(s, 3, Totals(0), {Totals(199), Totals(99), Totals(50)}).signal == WarmupSignal::kOk);
  CHECK(Eval(s, 3, Totals(0), {Totals(199), Totals(100), Totals(49)}).signal == WarmupSignal::kOk);
  CHECK(Eval(s, 3, Totals(0), {Totals(200), Totals(99), Totals(49)}).signal == WarmupSignal::kOk);

  // Only the last stall_days days count; days missing from `previous` are idle.
  CHECK(Eval(s, 4, Totals(0), {Totals(0), Totals(0), Totals(0), Totals(5000)}).signal == WarmupSignal::kStalled);
  CHECK(Eval(s, 3, Totals(0), {}).signal == WarmupSignal::kStalled);

  // Ahead and backoff come before stalled.
  CHECK(Eval(s, 3, Totals(2000), idle).signal == WarmupSignal::kAhead);
  CHECK(Eval(s, 3, Totals(100, 50), idle).signal == WarmupSignal::kBackoff);

  WarmupInputs in;
  in.day = 3;
  in.previous = idle;
  WarmupThresholds t;
  t.stall_days = 4;
  CHECK(EvaluateWarmup(s, t, in).signal == WarmupSignal::kOk);
  in.day = 4;
  CHECK(EvaluateWarmup(s, t, in).signal == WarmupSignal::kStalled);
}

TEST_CASE("warmup: completed once the ramp is over, before anything else", "[warmup_schedule]") {
  const WarmupSchedule& d30 = BuiltIn("double-30");
  const WarmupVerdict last = Eval(d30, 29, Totals(1000), kBusy);
  CHECK(last.signal == WarmupSignal::kOk);
  CHECK(last.allowance == 2'000'000);

  const std::vector<VolumeTotals> idle = {Totals(0), Totals(0), Totals(0)};
  const WarmupVerdict done = Eval(d30, 30, Totals(1000, 900), idle, Totals(1000));
  CHECK(done.signal == WarmupSignal::kCompleted);
  CHECK(done.allowance == 0);
  CHECK(done.sent == 1000);
  CHECK(done.ratio == 0);
  CHECK(done.detail == "the 30-day ramp is complete (day 31; 1000 sent today)");
  CHECK(Eval(BuiltIn("sendgrid-hourly"), 42, Totals(1'000'000'000), {}, Totals(1'000'000)).signal ==
        WarmupSignal::kCompleted);
  CHECK(Eval(BuiltIn("sendgrid-hourly"), 41, Totals(1'000'000'000), {}, Totals(1'000'000)).signal ==
        WarmupSignal::kAhead);
}

TEST_CASE("warmup per-receiver: each group is judged on its own, the worst one named", "[warmup_schedule]") {
  const WarmupSchedule& s = BuiltIn("per-receiver");  // day 1: 400 per group, 1600 in all

  const WarmupVerdict gmail =
      Eval(s, 1, Groups({{"gmail", {500, 0}}, {"microsoft", {100, 0}}, {"yahoo", {100, 0}}, {"other", {100, 0}}}));
  CHECK(gmail.signal == WarmupSignal::kAhead);
  CHECK(gmail.detail == "gmail: 500 sent today against an allowance of 400 (x1.2 tolerance)");
  CHECK(gmail.allowance == 1600);
  CHECK(gmail.sent == 800);
  CHECK(gmail.ratio == Approx(0.5));

  const WarmupVerdict fine =
      Eval(s, 1, Groups({{"gmail", {480, 0}}, {"microsoft", {400, 0}}, {"yahoo", {400, 0}}, {"other", {400, 0}}}));
  CHECK(fine.signal == WarmupSignal::kOk);
  CHECK(fine.detail == "1680 sent today of an allowance of 1600 (day 2 of 30)");

  // Two groups ahead: the one further past its allowance first.
  CHECK(Eval(s, 1, Groups({{"gmail", {500, 0}}, {"yahoo", {900, 0}}})).detail ==
        "yahoo: 900 sent today against an allowance of 400 (x1.2 tolerance); "
        "gmail: 500 sent today against an allowance of 400 (x1.2 tolerance)");

  // A receiver the schedule does not name counts as "other".
  CHECK(Eval(s, 1, Groups({{"comcast", {300, 0}}, {"other", {300, 0}}})).detail ==
        "other: 600 sent today against an allowance of 400 (x1.2 tolerance)");
}

TEST_CASE("warmup per-receiver: backoff in one group even when the totals look fine", "[warmup_schedule]") {
  const WarmupSchedule& s = BuiltIn("per-receiver");  // day 3: 1600 per group

  // 60 of 3100 (1.9%) in all, but 60% at Gmail.
  const WarmupVerdict v =
      Eval(s, 3, Groups({{"gmail", {100, 60}}, {"microsoft", {1000, 0}}, {"yahoo", {1000, 0}}, {"other", {1000, 0}}}),
           kBusy);
  CHECK(v.signal == WarmupSignal::kBackoff);
  CHECK(v.detail == "gmail: 60 of 100 attempts throttled today (60%, above 5%)");
  CHECK(v.ratio == Approx(3100.0 / 6400));

  // Below backoff_min_attempts in the group: not judged, whatever the share.
  CHECK(Eval(s, 3, Groups({{"gmail", {40, 40}}, {"microsoft", {1000, 0}}}), kBusy).signal == WarmupSignal::kOk);

  // The worst group decides the signal: backoff at Yahoo beats ahead at Gmail.
  const WarmupVerdict worst =
      Eval(s, 3, Groups({{"gmail", {5000, 0}}, {"yahoo", {200, 40}}, {"microsoft", {130, 13}}}), kBusy);
  CHECK(worst.signal == WarmupSignal::kBackoff);
  CHECK(worst.detail ==
        "yahoo: 40 of 200 attempts throttled today (20%, above 5%); "
        "microsoft: 13 of 130 attempts throttled today (10%, above 5%)");
  CHECK(Eval(s, 3, Groups({{"gmail", {5000, 0}}, {"yahoo", {200, 10}}}), kBusy).detail ==
        "gmail: 5000 sent today against an allowance of 1600 (x1.2 tolerance)");
}

TEST_CASE("warmup: a zero allowance makes any volume ahead and the ratio 0", "[warmup_schedule]") {
  const WarmupSchedule pause = Daily({100, 0, 100});
  const WarmupVerdict v = Eval(pause, 1, Totals(1));
  CHECK(v.signal == WarmupSignal::kAhead);
  CHECK(v.allowance == 0);
  CHECK(v.ratio == 0);
  CHECK(v.detail == "1 sent today against an allowance of 0 (x1.2 tolerance)");
  CHECK(Eval(pause, 1, Totals(0)).signal == WarmupSignal::kOk);
}
