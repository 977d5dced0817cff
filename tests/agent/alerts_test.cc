#include "agent/alerts.h"

#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>

#include <catch2/catch.hpp>

#include "builders.h"
#include "temp_dir.h"

namespace repwatch {
namespace {

namespace fs = std::filesystem;

using testing::TempDir;

// Feeds a sequence of verdicts to one stream and returns the transitions.
std::vector<Transition> Feed(const std::vector<Verdict>& verdicts, AlertsConfig config = {}) {
  StreamRow row;
  std::vector<Transition> out;
  long long now = 1000;
  for (Verdict v : verdicts) out.push_back(ApplyResult(row, v, now += 3600, config));
  return out;
}

constexpr Verdict P = Verdict::kProblem, O = Verdict::kOk, E = Verdict::kError;
constexpr Transition N = Transition::kNone, R = Transition::kRaise, C = Transition::kClear;

TEST_CASE("ApplyResult: raise after 2, clear after 2; one odd result pages nobody", "[alerts]") {
  CHECK(Feed({P, P, P, O, O, O}) == std::vector<Transition>{N, R, N, N, C, N});
  CHECK(Feed({P, O, P, O, P, O}) == std::vector<Transition>{N, N, N, N, N, N});
  CHECK(Feed({P, P, O, P, O, O}) == std::vector<Transition>{N, R, N, N, N, C});
}

TEST_CASE("ApplyResult: the flapping scenario raises exactly one listing and one clearing", "[alerts]") {
  // listed, error, listed, clean, error, clean (DESIGN: an error neither raises nor clears)
  const auto t = Feed({P, E, P, O, E, O});
  CHECK(t == std::vector<Transition>{N, N, R, N, N, C});
  CHECK(std::count(t.begin(), t.end(), R) == 1);
  CHECK(std::count(t.begin(), t.end(), C) == 1);
}

TEST_CASE("ApplyResult: thresholds are configurable", "[alerts]") {
  AlertsConfig c;
  c.raise_after = 1;
  c.clear_after = 3;
  CHECK(Feed({P, O, O, E, O, P}, c) == std::vector<Transition>{R, N, N, N, C, R});
}

TEST_CASE("ApplyResult: a known problem starts raised, silently", "[alerts]") {
  StreamRow row;
  CHECK(ApplyResult(row, P, 100, {}, /*known_problem=*/true) == N);
  CHECK(row.problem);
  CHECK(ApplyResult(row, O, 200, {}) == N);
  CHECK(ApplyResult(row, O, 300, {}) == C);
}

TEST_CASE("ApplyResult: a stream in error longer than failing_after raises check.failing once", "[alerts]") {
  AlertsConfig c;
  c.failing_after = std::chrono::hours(6);
  StreamRow row;
  CHECK(ApplyResult(row, E, 0, c) == N);
  CHECK(ApplyResult(row, E, 5 * 3600, c) == N);
  CHECK(ApplyResult(row, E, 6 * 3600, c) == Transition::kFailing);
  CHECK(ApplyResult(row, E, 9 * 3600, c) == N);
  CHECK(ApplyResult(row, O, 10 * 3600, c) == N);  // answered again: the run of errors ends
  CHECK(row.IsDefault());
  CHECK(ApplyResult(row, E, 11 * 3600, c) == N);
  CHECK(ApplyResult(row, E, 17 * 3600, c) == Transition::kFailing);
}

TEST_CASE("SinkAccepts: event globs, ranges and labels", "[alerts]") {
  RangeConfig acme = testing::Range("acme", {"192.0.2.0/24"});
  acme.labels = {{"team", "mail"}};
  WebhookConfig all;
  CHECK(SinkAccepts(all, "dnsbl.listed", &acme));
  CHECK(SinkAccepts(all, "zone.unhealthy", nullptr));
  WebhookConfig w;
  w.events = {"dnsbl.*", "zone.*"};
  CHECK(SinkAccepts(w, "dnsbl.delisted", &acme));
  CHECK_FALSE(SinkAccepts(w, "spf.unauthorized", &acme));
  w.ranges = {"acme"};
  CHECK(SinkAccepts(w, "dnsbl.listed", &acme));
  CHECK_FALSE(SinkAccepts(w, "zone.unhealthy", nullptr));  // no range: a range filter excludes it
  WebhookConfig team;
  team.labels = {{"team", "mail"}};
  CHECK(SinkAccepts(team, "fcrdns.failed", &acme));
  team.labels = {{"team", "web"}};
  CHECK_FALSE(SinkAccepts(team, "fcrdns.failed", &acme));
}

DnsblZoneResult Zone(const std::string& zone, DnsblStatus status) {
  DnsblZoneResult r;
  r.zone = zone;
  r.status = status;
  if (status == DnsblStatus::kListed) {
    r.codes = {"127.0.0.2"};
    r.meanings = {"SBL"};
  }
  if (status == DnsblStatus::kError) r.error = "timeout";
  return r;
}

// Rows of the outbox, as (sink, type, group) strings, straight from the file.
std::vector<std::string> Outbox(const fs::path& dir) {
  sqlite3* db = nullptr;
  sqlite3_stmt* q = nullptr;
  std::vector<std::string> out;
  sqlite3_open_v2((dir / "repwatch.db").c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
  sqlite3_prepare_v2(db, "SELECT sink, type, group_key, item FROM outbox_items ORDER BY id", -1, &q, nullptr);
  while (sqlite3_step(q) == SQLITE_ROW) {
    std::string row;
    for (int c = 0; c < 3; ++c) row += std::string(c ? " " : "") + reinterpret_cast<const char*>(sqlite3_column_text(q, c));
    auto item = nlohmann::json::parse(reinterpret_cast<const char*>(sqlite3_column_text(q, 3)));
    row += " " + item.value("ip", std::string("-"));
    out.push_back(row);
  }
  sqlite3_finalize(q);
  sqlite3_close(db);
  return out;
}

struct Agent {
  TempDir tmp;
  Config config;
  std::unique_ptr<StateStore> store;
  std::unique_ptr<AlertTracker> alerts;
  long long now = 1'790'000'000;

  Agent() {
    config.ranges = {testing::Range("acme", {"192.0.2.0/24"})};
    config.agent.instance = "test-agent";
    WebhookConfig oncall;
    oncall.name = "oncall";
    oncall.events = {"dnsbl.*"};
    WebhookConfig everything;
    everything.name = "everything";
    config.webhooks = {oncall, everything};
    Open();
  }
  void Open() {
    alerts.reset();
    store.reset();
    store = std::move(StateStore::Open(tmp.path.string())).value();
    alerts = std::make_unique<AlertTracker>(config, *store);
  }
  void Cycle(const std::vector<IpReport>& reports) {
    now += 3600;
    REQUIRE(store->BeginCycle(now).ok());
    for (const IpReport& r : reports) {
      Status s = alerts->Record(r, now);
      INFO(s.message());
      REQUIRE(s.ok());
      REQUIRE(store->RecordIp(r, now).ok());
      REQUIRE(store->Checkpoint().ok());
    }
    REQUIRE(store->EndCycle(now + 1, 1, reports.size(), true).ok());
  }
};

IpReport Listed(const char* ip, DnsblStatus zen) {
  return testing::DnsblReport(IpAddress::Parse(ip).value(), "acme", {Zone("zen.example", zen)});
}

TEST_CASE("AlertTracker: flapping through a real state store raises one listing and one clearing", "[alerts]") {
  Agent a;
  for (DnsblStatus s : {DnsblStatus::kListed, DnsblStatus::kError, DnsblStatus::kListed, DnsblStatus::kClean,
                        DnsblStatus::kError, DnsblStatus::kClean})
    a.Cycle({Listed("192.0.2.7", s)});
  CHECK(Outbox(a.tmp.path) == std::vector<std::string>{
                                  "oncall dnsbl.listed zen.example|acme 192.0.2.7",
                                  "everything dnsbl.listed zen.example|acme 192.0.2.7",
                                  "oncall dnsbl.delisted zen.example|acme 192.0.2.7",
                                  "everything dnsbl.delisted zen.example|acme 192.0.2.7",
                              });
}

TEST_CASE("AlertTracker: a restart raises nothing the store already knew", "[alerts]") {
  Agent a;
  a.Cycle({Listed("192.0.2.7", DnsblStatus::kListed)});
  a.Cycle({Listed("192.0.2.7", DnsblStatus::kListed)});
  REQUIRE(Outbox(a.tmp.path).size() == 2);
  a.Open();  // restart: streams come back from the file
  a.Cycle({Listed("192.0.2.7", DnsblStatus::kListed)});
  CHECK(Outbox(a.tmp.path).size() == 2);

  // A store written before alerting existed: listings but no streams. Its first
  // cycle must not page for them either.
  Agent old;
  old.config.webhooks.clear();
  old.Open();
  old.Cycle({Listed("192.0.2.8", DnsblStatus::kListed)});
  old.Cycle({Listed("192.0.2.8", DnsblStatus::kListed)});
  old.config.webhooks = a.config.webhooks;
  {
    sqlite3* db = nullptr;
    sqlite3_open((old.tmp.path / "repwatch.db").c_str(), &db);
    sqlite3_exec(db, "DELETE FROM alert_streams", nullptr, nullptr, nullptr);
    sqlite3_close(db);
  }
  old.Open();
  old.Cycle({Listed("192.0.2.8", DnsblStatus::kListed)});
  CHECK(Outbox(old.tmp.path).empty());
  old.Cycle({Listed("192.0.2.8", DnsblStatus::kClean)});
  old.Cycle({Listed("192.0.2.8", DnsblStatus::kClean)});
  CHECK(Outbox(old.tmp.path) == std::vector<std::string>{"oncall dnsbl.delisted zen.example|acme 192.0.2.8",
                                                         "everything dnsbl.delisted zen.example|acme 192.0.2.8"});
}

TEST_CASE("AlertTracker: FCrDNS, SPF and zone streams, filtered per sink", "[alerts]") {
  Agent a;
  IpReport r;
  r.ip = IpAddress::Parse("192.0.2.9").value();
  r.range = "acme";
  r.fcrdns.emplace().result = FcrdnsResult::kNoPtr;
  r.spf.emplace();
  r.spf->push_back({"acme.example", "softfail", "~all in acme.example", {}});
  r.spf->push_back({"ok.example", "pass", "ip4 matched", {}});
  ZoneHealthReport zone;
  zone.zone = "bl.example";
  zone.health = ZoneHealth::kNotAnswering;
  for (int i = 0; i < 2; ++i) {
    a.Cycle({r});
    REQUIRE(a.store->BeginCycle(a.now + 10).ok());
    REQUIRE(a.alerts->RecordZone(zone, a.now + 10).ok());
    REQUIRE(a.store->RecordZoneHealth(zone, a.now + 10).ok());
    REQUIRE(a.store->EndCycle(a.now + 11, 1, 0, true).ok());
  }
  CHECK(Outbox(a.tmp.path) == std::vector<std::string>{"everything fcrdns.failed acme 192.0.2.9",
                                                       "everything spf.unauthorized acme.example|acme 192.0.2.9",
                                                       "everything zone.unhealthy bl.example -"});
  CHECK(a.alerts->raised().at("spf.unauthorized") == 1);
}

}  // namespace
}  // namespace repwatch

namespace repwatch {
namespace {

TEST_CASE("StateStore::Checkpoint leaves the write lock free until the cycle writes again", "[alerts][state]") {
  Agent a;
  a.now += 3600;
  REQUIRE(a.store->BeginCycle(a.now).ok());
  REQUIRE(a.store->RecordIp(Listed("192.0.2.7", DnsblStatus::kListed), a.now).ok());
  auto try_write = [&] {
    sqlite3* db = nullptr;
    sqlite3_open((a.tmp.path / "repwatch.db").c_str(), &db);
    const int rc = sqlite3_exec(db, "BEGIN IMMEDIATE; COMMIT;", nullptr, nullptr, nullptr);
    sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
    sqlite3_close(db);
    return rc;
  };
  CHECK(try_write() == SQLITE_BUSY);  // mid-cycle, before a checkpoint
  REQUIRE(a.store->Checkpoint().ok());
  CHECK(try_write() == SQLITE_OK);    // the sender's turn
  REQUIRE(a.store->RecordIp(Listed("192.0.2.8", DnsblStatus::kListed), a.now).ok());
  CHECK(try_write() == SQLITE_BUSY);  // writing again reopened the transaction
  REQUIRE(a.store->EndCycle(a.now + 1, 1, 2, true).ok());
  CHECK(a.store->LoadIp(IpAddress::Parse("192.0.2.8").value(), {"zen.example"}).value().has_value());
}

TEST_CASE("AlertTracker: a stored listing whose first result after an upgrade is an error is still old news",
          "[alerts]") {
  Agent old;
  old.config.webhooks.clear();
  old.Open();
  old.Cycle({Listed("192.0.2.8", DnsblStatus::kListed)});
  old.Cycle({Listed("192.0.2.8", DnsblStatus::kListed)});
  {
    sqlite3* db = nullptr;
    sqlite3_open((old.tmp.path / "repwatch.db").c_str(), &db);
    sqlite3_exec(db, "DELETE FROM alert_streams", nullptr, nullptr, nullptr);
    sqlite3_close(db);
  }
  old.config.webhooks = Agent().config.webhooks;
  old.Open();
  old.Cycle({Listed("192.0.2.8", DnsblStatus::kError)});
  old.Cycle({Listed("192.0.2.8", DnsblStatus::kListed)});
  old.Cycle({Listed("192.0.2.8", DnsblStatus::kListed)});
  CHECK(Outbox(old.tmp.path).empty());
}

}  // namespace
}  // namespace repwatch
