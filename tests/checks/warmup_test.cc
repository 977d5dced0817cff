#include "checks/warmup.h"

#include <catch2/catch.hpp>

#include "agent/scheduler.h"
#include "agent/targets.h"
#include "builders.h"
#include "fakes.h"
#include "temp_dir.h"

namespace repwatch {
namespace {

using testing::FakeClock;
using testing::FakeResolver;

constexpr long long kDay = 86400;

// The fake clock's wall time starts at 1,790,000,000 (2026-09-21 11:33:20 UTC).
struct Lab {
  testing::TempDir tmp;
  std::unique_ptr<VolumeStore> store;
  Config config;
  FakeClock clock;
  FakeResolver dns;

  Lab() {
    auto opened = VolumeStore::Open(tmp.sub("state"));
    REQUIRE(opened.ok());
    store = std::move(opened).value();
    config.ranges.push_back(testing::Range("new", {"192.0.2.0/28"}));
    config.api.token = "0123456789abcdef0123";  // volume comes in: the check is on
  }
  long long Now() const { return UnixSeconds(clock.WallNow()); }
  long long Today() const { return Now() / kDay; }
  void Send(const char* ip, VolumeOutcome outcome, uint32_t count, long long at, std::string reply = {},
            std::string receiver = "gmail.com") {
    VolumeEvent e;
    e.ip = IpAddress::Parse(ip).value();
    e.outcome = outcome;
    e.count = count;
    e.at = at;
    e.reply = std::move(reply);
    e.receiver = std::move(receiver);
    Status s = store->Add({e}, Now());
    INFO(s.message());
    REQUIRE(s.ok());
  }
  std::vector<IpReport> Run(std::vector<std::string> targets) {
    CheckEnv env{dns, clock};
    env.volume = store.get();
    std::vector<std::unique_ptr<Check>> checks = MakeChecks(config, env, {Family::kIpv4});
    REQUIRE(checks.size() >= 1);
    Scheduler scheduler(checks, dns, clock);
    std::vector<IpReport> out;
    auto set = TargetSet::FromArguments(targets, config.ranges);
    REQUIRE(set.ok());
    scheduler.RunCycle(set.value(), CycleOptions{}, [&](IpReport&& r) { out.push_back(std::move(r)); });
    return out;
  }
};

TEST_CASE("warmup check: established senders are not warming up; a new one is, from its first day", "[warmup]") {
  Lab lab;
  const long long t = lab.Now();
  // .1 has sent since the store's first day (10 days ago): established.
  for (int d = 10; d >= 0; --d) lab.Send("192.0.2.1", VolumeOutcome::kDelivered, 1000, t - d * kDay);
  // .2 started 3 days ago: day 3 of double-30 (allowance 50 * 2^3 = 400).
  for (int d = 3; d >= 1; --d) lab.Send("192.0.2.2", VolumeOutcome::kDelivered, 50 << (3 - d), t - d * kDay);
  lab.Send("192.0.2.2", VolumeOutcome::kDelivered, 300, t);
  lab.Send("192.0.2.2", VolumeOutcome::kDeferred, 10, t, "421 4.7.0 try again later");  // 3.2%: below 5%
  auto reports = lab.Run({"192.0.2.1", "192.0.2.2", "192.0.2.3"});
  REQUIRE(reports.size() == 3);

  CHECK_FALSE(reports[0].warmup);
  REQUIRE(reports[0].volume);
  CHECK(reports[0].volume->delivered == 1000);

  REQUIRE(reports[1].warmup);
  const WarmupReport& w = *reports[1].warmup;
  CHECK(w.origin == "auto");
  CHECK(w.schedule == "double-30");
  CHECK(w.day == 3);
  CHECK(w.allowance == 400);
  CHECK(w.sent == 310);
  CHECK(w.ratio == Approx(0.775));
  CHECK(w.signal == WarmupSignal::kOk);
  REQUIRE(reports[1].volume);
  CHECK(reports[1].volume->delivered == 300);
  CHECK(reports[1].volume->deferred == 10);
  CHECK(reports[1].volume->bounced == 0);

  CHECK_FALSE(reports[2].warmup);  // never sent
  CHECK_FALSE(reports[2].volume);
}

TEST_CASE("warmup check: ahead, backoff and a configured start with a custom schedule", "[warmup]") {
  Lab lab;
  const long long t = lab.Now();
  lab.Send("192.0.2.9", VolumeOutcome::kDelivered, 1, t - 20 * kDay);  // the store's first day: someone else
  // .2: first day today, 80 sent against 50 x 1.2 = 60 -> ahead.
  lab.Send("192.0.2.2", VolumeOutcome::kDelivered, 80, t);
  // .3: first day today, 100 attempts of which 30 rate-limited -> backoff wins over ahead.
  lab.Send("192.0.2.3", VolumeOutcome::kDelivered, 70, t);
  lab.Send("192.0.2.3", VolumeOutcome::kDeferred, 30, t,
           "421-4.7.28 [192.0.2.3] Gmail has detected an unusual rate of unsolicited mail originating from your IP");
  auto reports = lab.Run({"192.0.2.2", "192.0.2.3"});
  REQUIRE(reports[0].warmup);
  CHECK(reports[0].warmup->signal == WarmupSignal::kAhead);
  CHECK(reports[0].warmup->day == 0);
  CHECK(reports[0].warmup->allowance == 50);
  REQUIRE(reports[1].warmup);
  CHECK(reports[1].warmup->signal == WarmupSignal::kBackoff);
  CHECK_FALSE(reports[1].warmup->detail.empty());

  // A range with warmup_start and its own schedule: day counted from the date.
  RangeConfig custom = testing::Range("custom", {"198.51.100.0/29"});
  const long long start_day = lab.Today() - 2;
  std::time_t st = start_day * kDay;
  std::tm tm{};
  gmtime_r(&st, &tm);
  char date[16];
  std::strftime(date, sizeof date, "%Y-%m-%d", &tm);
  custom.warmup_start = date;
  custom.warmup_schedule = "slow";
  lab.config.ranges.push_back(custom);
  lab.config.warmup.schedules.push_back(WarmupScheduleConfig{"slow", false, {10, 20, 30, 40}, {}});
  lab.Send("198.51.100.1", VolumeOutcome::kDelivered, 25, t);
  auto more = lab.Run({"198.51.100.1", "198.51.100.2"});
  REQUIRE(more[0].warmup);
  CHECK(more[0].warmup->origin == "config");
  CHECK(more[0].warmup->start == date);
  CHECK(more[0].warmup->schedule == "slow");
  CHECK(more[0].warmup->day == 2);
  CHECK(more[0].warmup->allowance == 30);
  CHECK(more[0].warmup->sent == 25);
  CHECK(more[0].warmup->signal == WarmupSignal::kOk);
  // .2 of that range sent nothing: still on its ramp (configured), not stalled on day 2.
  REQUIRE(more[1].warmup);
  CHECK(more[1].warmup->sent == 0);
  CHECK(more[1].warmup->signal == WarmupSignal::kOk);
}

TEST_CASE("warmup check: an established address idle for 30 days warms up again", "[warmup]") {
  Lab lab;
  const long long t = lab.Now();
  lab.Send("192.0.2.1", VolumeOutcome::kDelivered, 5000, t - 60 * kDay);  // the store's first day
  lab.Send("192.0.2.1", VolumeOutcome::kDelivered, 5000, t - 59 * kDay);
  lab.Send("192.0.2.1", VolumeOutcome::kDelivered, 40, t - kDay);  // after 58 idle days
  lab.Send("192.0.2.1", VolumeOutcome::kDelivered, 60, t);
  auto reports = lab.Run({"192.0.2.1"});
  REQUIRE(reports[0].warmup);
  CHECK(reports[0].warmup->origin == "auto");
  CHECK(reports[0].warmup->day == 1);
  CHECK(reports[0].warmup->allowance == 100);
}

TEST_CASE("warmup check: a completed ramp is reported for a week, then the address leaves warm-up", "[warmup]") {
  Lab lab;
  const long long t = lab.Now();
  lab.config.warmup.schedules.push_back(WarmupScheduleConfig{"short", false, {10, 20}, {}});
  lab.config.warmup.schedule = "short";
  lab.Send("192.0.2.9", VolumeOutcome::kDelivered, 1, t - 40 * kDay);  // the store's first day
  lab.Send("192.0.2.1", VolumeOutcome::kDelivered, 10, t - 3 * kDay);  // day 3 of a 2-day ramp
  lab.Send("192.0.2.1", VolumeOutcome::kDelivered, 10, t);
  lab.Send("192.0.2.2", VolumeOutcome::kDelivered, 10, t - 9 * kDay);  // day 9: 2 + 7 days past
  lab.Send("192.0.2.2", VolumeOutcome::kDelivered, 10, t);
  auto reports = lab.Run({"192.0.2.1", "192.0.2.2"});
  REQUIRE(reports[0].warmup);
  CHECK(reports[0].warmup->signal == WarmupSignal::kCompleted);
  CHECK_FALSE(reports[1].warmup);
  CHECK(reports[1].volume);
}

TEST_CASE("warmup check: off without volume input or a store", "[warmup]") {
  Config config;
  config.ranges.push_back(testing::Range("r", {"192.0.2.0/28"}));
  CHECK_FALSE(WarmupCheckEnabled(config));
  config.ranges[0].warmup_start = "2026-11-01";
  CHECK(WarmupCheckEnabled(config));
  FakeResolver dns;
  FakeClock clock;
  auto checks = MakeChecks(config, CheckEnv{dns, clock}, {Family::kIpv4});  // no volume store
  for (const auto& c : checks) CHECK(c->Name() != "warmup");
}

TEST_CASE("warmup: the config's built-in schedule names are the built-in schedules", "[warmup]") {
  for (const WarmupSchedule& s : BuiltInSchedules()) {
    INFO(s.name);
    auto cfg = ParseConfig("[dns]\nservers = [\"127.0.0.1:53\"]\n[warmup]\nschedule = \"" + s.name + "\"\n", "t.toml");
    CHECK(cfg.ok());
  }
  auto bad = ParseConfig("[dns]\nservers = [\"127.0.0.1:53\"]\n[warmup]\nschedule = \"fast\"\n", "t.toml");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error() ==
        "t.toml:4:12: warmup.schedule \"fast\" is not double-30, sendgrid-hourly, per-receiver or a "
        "[[warmup.schedules]] name");
}

}  // namespace
}  // namespace repwatch
