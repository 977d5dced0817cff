#include "agent/scheduler.h"

#include <catch2/catch.hpp>

#include <functional>
#include <optional>

#include "builders.h"
#include "fakes.h"

using namespace repwatch;
using namespace repwatch::testing;
using namespace std::chrono_literals;

namespace {

// A check that asks one question per address and records when each started.
class RecordingCheck final : public Check {
 public:
  RecordingCheck(Resolver& r, Clock& c) : resolver_(r), clock_(c) {}
  std::string_view Name() const override { return "recording"; }
  void BeginCycle(CycleReport*, Done done) override {
    ++cycles;
    done();
  }
  void CheckIp(const Target& t, IpReport* report, Done done) override {
    started.push_back(clock_.Now());
    max_open = std::max(max_open, ++open);
    resolver_.Query(t.ip.ReverseDnsName(), rrtype::kPtr, [this, report, done](DnsResponse&&) {
      --open;
      report->dnsbl.emplace();
      done();
    });
  }
  size_t ExpectedQueries(const Target&) const override { return 1; }

  std::vector<std::chrono::steady_clock::time_point> started;
  int cycles = 0;
  size_t open = 0, max_open = 0;

 private:
  Resolver& resolver_;
  Clock& clock_;
};

}  // namespace

TEST_CASE("scheduler: every address reported once, with its range", "[scheduler]") {
  FakeClock clock;
  FakeResolver resolver;
  resolver.answer_newest_first = true;  // addresses finish out of order
  std::vector<std::unique_ptr<Check>> checks;
  checks.push_back(std::make_unique<RecordingCheck>(resolver, clock));
  std::vector<RangeConfig> ranges = {Range("a", {"192.0.2.0/28"}), Range("b", {"2001:db8::/126", "198.51.100.7"})};
  TargetSet targets = TargetSet::FromRanges(ranges);
  REQUIRE(targets.size() == 21);

  Scheduler s(checks, resolver, clock);
  std::map<std::string, std::string> seen;
  std::vector<IpAddress> order;
  CycleOptions opts;
  opts.max_addresses_in_flight = 4;
  size_t zones_reported_before_first_ip = SIZE_MAX;
  opts.on_cycle_begun = [&](const CycleReport&) { zones_reported_before_first_ip = order.size(); };
  auto out = s.RunCycle(targets, opts, [&](IpReport&& r) {
    CHECK(r.dnsbl.has_value());
    CHECK(seen.emplace(r.ip.ToString(), r.range).second);
    order.push_back(r.ip);
  });
  CHECK(zones_reported_before_first_ip == 0);
  for (size_t i = 0; i < order.size(); ++i) CHECK(order[i] == targets.At(i).ip);  // target order
  CHECK(out.completed);
  CHECK(out.addresses_done == 21);
  CHECK(seen.size() == 21);
  CHECK(seen["192.0.2.15"] == "a");
  CHECK(seen["2001:db8::3"] == "b");
  CHECK(seen["198.51.100.7"] == "b");
  auto* rec = static_cast<RecordingCheck*>(checks[0].get());
  CHECK(rec->max_open <= 4);
  CHECK(rec->cycles == 1);
}

TEST_CASE("scheduler: a spread cycle starts addresses evenly over the interval", "[scheduler]") {
  FakeClock clock;
  FakeResolver resolver;
  resolver.clock = &clock;
  std::vector<std::unique_ptr<Check>> checks;
  checks.push_back(std::make_unique<RecordingCheck>(resolver, clock));
  std::vector<RangeConfig> ranges = {Range("a", {"192.0.2.0/29"})};  // 8 addresses
  Scheduler s(checks, resolver, clock);
  CycleOptions opts;
  opts.spread = 8s;
  const auto t0 = clock.Now();
  auto out = s.RunCycle(TargetSet::FromRanges(ranges), opts, [](IpReport&&) {});
  CHECK(out.completed);
  auto* rec = static_cast<RecordingCheck*>(checks[0].get());
  REQUIRE(rec->started.size() == 8);
  for (size_t i = 0; i < 8; ++i) {
    const auto offset = rec->started[i] - t0;
    INFO("address " << i << " started at " << std::chrono::duration<double>(offset).count() << " s");
    CHECK(offset >= std::chrono::seconds(i));                             // never early
    CHECK(offset < std::chrono::seconds(i) + std::chrono::milliseconds(150));  // nor much late
  }
  CHECK(out.duration >= 7s);
}

TEST_CASE("scheduler: a stop request lets open addresses finish and starts no more", "[scheduler]") {
  FakeClock clock;
  FakeResolver resolver;
  std::vector<std::unique_ptr<Check>> checks;
  checks.push_back(std::make_unique<RecordingCheck>(resolver, clock));
  std::vector<RangeConfig> ranges = {Range("a", {"192.0.2.0/24"})};
  Scheduler s(checks, resolver, clock);
  std::atomic<bool> stop{false};
  CycleOptions opts;
  opts.max_addresses_in_flight = 10;
  opts.stop = &stop;
  size_t reported = 0;
  auto out = s.RunCycle(TargetSet::FromRanges(ranges), opts, [&](IpReport&&) {
    if (++reported == 15) stop = true;
  });
  CHECK_FALSE(out.completed);
  CHECK(out.addresses_done == reported);
  CHECK(reported < 256);
  CHECK(resolver.Pending() == 0);
}

TEST_CASE("scheduler: after stop_grace, addresses still open are abandoned safely", "[scheduler]") {
  // A check whose answers come only when the test says so (a resolver that never answers).
  class HangingCheck final : public Check {
   public:
    std::string_view Name() const override { return "hanging"; }
    void BeginCycle(CycleReport*, Done done) override { done(); }
    void CheckIp(const Target&, IpReport* report, Done done) override {
      waiting.push_back([report, done] {
        report->dnsbl.emplace();  // writes into the abandoned report: must still be alive
        done();
      });
    }
    size_t ExpectedQueries(const Target&) const override { return 1; }
    std::vector<std::function<void()>> waiting;
  };
  FakeClock clock;
  FakeResolver resolver;
  resolver.clock = &clock;
  std::vector<std::unique_ptr<Check>> checks;
  checks.push_back(std::make_unique<HangingCheck>());
  auto* hanging = static_cast<HangingCheck*>(checks[0].get());
  std::vector<RangeConfig> ranges = {Range("a", {"192.0.2.0/28"})};
  Scheduler s(checks, resolver, clock);
  std::atomic<bool> stop{false};
  CycleOptions opts;
  opts.max_addresses_in_flight = 4;
  opts.stop = &stop;
  opts.stop_grace = 500ms;
  std::optional<std::chrono::steady_clock::time_point> stopped_at;
  opts.on_poll = [&] {
    if (!stopped_at) {
      stop = true;
      stopped_at = clock.Now();
    }
  };
  size_t delivered = 0;
  auto out = s.RunCycle(TargetSet::FromRanges(ranges), opts, [&](IpReport&&) { ++delivered; });
  CHECK_FALSE(out.completed);
  CHECK(out.addresses_done == 0);
  CHECK(delivered == 0);
  REQUIRE(stopped_at);
  CHECK(clock.Now() - *stopped_at >= 500ms);
  CHECK(clock.Now() - *stopped_at < 700ms);
  REQUIRE(hanging->waiting.size() == 4);  // no address started after the stop

  // The late answers arrive after the cycle gave up on them: nothing is delivered
  // and nothing is touched that is gone (ASan would tell).
  for (auto& answer : hanging->waiting) answer();
  hanging->waiting.clear();
  CHECK(delivered == 0);

  // The next cycle runs normally with the same scheduler and checks.
  stop = false;
  opts.on_poll = [&] {
    for (auto& answer : hanging->waiting) answer();
    hanging->waiting.clear();
  };
  out = s.RunCycle(TargetSet::FromRanges(ranges), opts, [&](IpReport&&) { ++delivered; });
  CHECK(out.completed);
  CHECK(delivered == 16);
}

TEST_CASE("scheduler: a stop while the zones are probed ends the cycle after stop_grace, safely", "[scheduler]") {
  // A check whose cycle-level work (zone test points) waits on a resolver that never answers.
  class HangingBegin final : public Check {
   public:
    std::string_view Name() const override { return "hanging-begin"; }
    void BeginCycle(CycleReport* cycle, Done done) override {
      waiting.push_back([cycle, done] {
        cycle->zones.emplace_back();  // writes into the abandoned report: must still be alive
        done();
      });
    }
    void CheckIp(const Target&, IpReport*, Done done) override {
      ++started;
      done();
    }
    size_t ExpectedQueries(const Target&) const override { return 0; }
    std::vector<std::function<void()>> waiting;
    int started = 0;
  };
  FakeClock clock;
  FakeResolver resolver;
  resolver.clock = &clock;
  std::vector<std::unique_ptr<Check>> checks;
  checks.push_back(std::make_unique<HangingBegin>());
  auto* hanging = static_cast<HangingBegin*>(checks[0].get());
  std::vector<RangeConfig> ranges = {Range("a", {"192.0.2.0/28"})};
  Scheduler s(checks, resolver, clock);
  std::atomic<bool> stop{false};
  CycleOptions opts;
  opts.stop = &stop;
  opts.stop_grace = 500ms;
  int polls = 0;
  std::optional<std::chrono::steady_clock::time_point> stopped_at;
  opts.on_poll = [&] {  // called while the begin waits, too
    if (++polls == 3) {
      stop = true;
      stopped_at = clock.Now();
    }
  };
  bool begun = false;
  opts.on_cycle_begun = [&](const CycleReport&) { begun = true; };
  size_t delivered = 0;
  auto out = s.RunCycle(TargetSet::FromRanges(ranges), opts, [&](IpReport&&) { ++delivered; });
  CHECK_FALSE(out.completed);
  CHECK_FALSE(begun);
  CHECK(out.addresses_done == 0);
  CHECK(hanging->started == 0);
  REQUIRE(stopped_at);
  CHECK(clock.Now() - *stopped_at >= 500ms);
  CHECK(clock.Now() - *stopped_at < 700ms);

  // The late answer arrives after the cycle gave up: nothing that is gone is touched.
  REQUIRE(hanging->waiting.size() == 1);
  hanging->waiting[0]();
  hanging->waiting.clear();

  // The next cycle, its zones answered, runs every address.
  stop = false;
  opts.on_poll = [&] {
    for (auto& answer : hanging->waiting) answer();
    hanging->waiting.clear();
  };
  out = s.RunCycle(TargetSet::FromRanges(ranges), opts, [&](IpReport&&) { ++delivered; });
  CHECK(out.completed);
  CHECK(begun);
  CHECK(out.report.zones.size() == 1);
  CHECK(delivered == 16);
}

TEST_CASE("targets: command-line addresses take their configured range", "[scheduler]") {
  std::vector<RangeConfig> ranges = {Range("a", {"192.0.2.0/28"})};
  auto set = TargetSet::FromArguments({"192.0.2.8/30", "203.0.113.5"}, ranges);
  REQUIRE(set.ok());
  CHECK(set.value().size() == 5);
  CHECK(set.value().At(0).range == &ranges[0]);
  CHECK(set.value().At(4).range == nullptr);
  CHECK(set.value().CountPerRange() == std::map<std::string, size_t>{{"a", 4}});
  CHECK(TargetSet::FromArguments({"192.0.2.1/24"}, ranges).error() ==
        "target bad CIDR \"192.0.2.1/24\": host bits set below /24 (did you mean 192.0.2.0/24?)");
  CHECK_THAT(TargetSet::FromArguments({"10.0.0.0/8"}, ranges).error(), Catch::Contains("more than 1048576"));
}
