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

namespace repwatch {
namespace {

// The items of one event type in the outbox, as JSON, for one sink, in order.
std::vector<nlohmann::json> OutboxItems(const fs::path& dir, const std::string& sink, const std::string& type) {
  sqlite3* db = nullptr;
  sqlite3_stmt* q = nullptr;
  std::vector<nlohmann::json> out;
  sqlite3_open_v2((dir / "repwatch.db").c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
  sqlite3_prepare_v2(db, "SELECT item FROM outbox_items WHERE sink = ?1 AND type = ?2 ORDER BY id", -1, &q, nullptr);
  sqlite3_bind_text(q, 1, sink.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(q, 2, type.c_str(), -1, SQLITE_TRANSIENT);
  while (sqlite3_step(q) == SQLITE_ROW)
    out.push_back(nlohmann::json::parse(reinterpret_cast<const char*>(sqlite3_column_text(q, 0))));
  sqlite3_finalize(q);
  sqlite3_close(db);
  return out;
}

// One alert stream row straight from the file: "state problems oks error_since", or "" when there is none.
std::string StreamRowText(const fs::path& dir, const std::string& ip, const std::string& check,
                          const std::string& subject) {
  sqlite3* db = nullptr;
  sqlite3_stmt* q = nullptr;
  std::string out;
  sqlite3_open_v2((dir / "repwatch.db").c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
  sqlite3_prepare_v2(db,
                     "SELECT state, problems, oks, coalesce(error_since, '-') FROM alert_streams "
                     "WHERE ip = ?1 AND check_kind = ?2 AND subject = ?3",
                     -1, &q, nullptr);
  sqlite3_bind_text(q, 1, ip.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(q, 2, check.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(q, 3, subject.c_str(), -1, SQLITE_TRANSIENT);
  if (sqlite3_step(q) == SQLITE_ROW)
    for (int c = 0; c < 4; ++c) out += std::string(c ? " " : "") + reinterpret_cast<const char*>(sqlite3_column_text(q, c));
  sqlite3_finalize(q);
  sqlite3_close(db);
  return out;
}

MxProbeResult MxResult(const std::string& domain, SmtpClass cls, long long probed_at) {
  MxProbeResult m;
  m.domain = domain;
  m.host = "mx1." + domain;
  m.address = "203.0.113.25";
  m.cls = cls;
  m.probed_at = probed_at;
  // A plausible deciding reply per class; the class itself is what the tracker reads.
  struct Reply {
    MxStage stage;
    int code;
    const char* enhanced;
    const char* text;
  };
  const Reply reply = cls == SmtpClass::kOk         ? Reply{MxStage::kRcpt, 250, "2.1.5", "OK"}
                      : cls == SmtpClass::kGreylist ? Reply{MxStage::kRcpt, 451, "4.7.1", "Greylisted"}
                      : cls == SmtpClass::kOther    ? Reply{MxStage::kRcpt, 550, "5.1.1", "User unknown"}
                      : cls == SmtpClass::kError    ? Reply{MxStage::kConnect, 0, "", ""}
                                                    : Reply{MxStage::kMail, 554, "5.7.1", "Service unavailable"};
  m.stage = reply.stage;
  m.code = reply.code;
  m.enhanced = reply.enhanced;
  m.text = reply.text;
  if (cls == SmtpClass::kError) m.error = "connection refused";
  return m;
}

IpReport MxReport(const char* ip, std::vector<MxProbeResult> results) {
  IpReport r;
  r.ip = IpAddress::Parse(ip).value();
  r.range = "acme";
  r.mx = std::move(results);
  return r;
}

TEST_CASE("AlertTracker: one MX problem reply raises mx.rejected at once, one ok reply resolves it", "[alerts][mx]") {
  Agent a;
  REQUIRE(a.config.alerts.mx_raise_after == 1);
  REQUIRE(a.config.alerts.mx_clear_after == 1);
  MxProbeResult rejected;
  rejected.domain = "outlook.com";
  rejected.host = "outlook-com.olc.protection.outlook.com";
  rejected.address = "52.101.68.10";
  rejected.stage = MxStage::kRcpt;
  rejected.code = 550;
  rejected.enhanced = "5.7.606";
  rejected.cls = SmtpClass::kReputationBlock;
  rejected.text = "Access denied, banned sending IP [192.0.2.7]. To request removal from this list please visit "
                  "https://sender.office.com/ and follow the directions.";
  rejected.tls = MxTlsReport{true, "TLSv1.3", true, "*.olc.protection.outlook.com", ""};
  rejected.probed_at = 1'790'003'500;
  a.Cycle({MxReport("192.0.2.7", {rejected, MxResult("gmail.com", SmtpClass::kOk, 1'790'003'500)})});
  REQUIRE(a.now == 1'790'003'600);
  // The oncall sink takes dnsbl.* only.
  CHECK(Outbox(a.tmp.path) == std::vector<std::string>{"everything mx.rejected outlook.com|acme 192.0.2.7"});
  CHECK(a.alerts->raised() == std::map<std::string, size_t>{{"mx.rejected", 1}});
  CHECK(StreamRowText(a.tmp.path, "192.0.2.7", "mx", "outlook.com") == "problem 0 0 -");
  CHECK(StreamRowText(a.tmp.path, "192.0.2.7", "mx", "gmail.com").empty());  // plainly ok: no row

  const auto raised = OutboxItems(a.tmp.path, "everything", "mx.rejected");
  REQUIRE(raised.size() == 1);
  const nlohmann::json want = {
      {"ip", "192.0.2.7"},
      {"range", "acme"},
      {"labels", nlohmann::json::object()},
      {"domain", "outlook.com"},
      {"host", "outlook-com.olc.protection.outlook.com"},
      {"address", "52.101.68.10"},
      {"stage", "rcpt"},
      {"code", 550},
      {"enhanced", "5.7.606"},
      {"class", "reputation_block"},
      {"zone", ""},
      {"reason", ""},
      {"text", rejected.text},
      {"error", ""},
      {"tls",
       {{"ok", true}, {"protocol", "TLSv1.3"}, {"name_match", true}, {"peer_name", "*.olc.protection.outlook.com"},
        {"error", ""}}},
      {"probed_at", "2026-09-21T15:11:40Z"},
      {"evidence",
       {{"session", "from 192.0.2.7 to outlook-com.olc.protection.outlook.com[52.101.68.10]"},
        {"reply", "550 5.7.606 Access denied, banned sending IP [192.0.2.7]. To request removal from this list "
                  "please visit https://sender.office.com/ and follow the directions."}}},
      {"first_seen", "2026-09-21T15:13:20Z"},
      {"type", "mx.rejected"},
      {"at", "2026-09-21T15:13:20Z"},
      {"instance", "test-agent"},
  };
  CHECK(raised[0] == want);

  MxProbeResult accepted = MxResult("outlook.com", SmtpClass::kOk, 1'790'007'100);
  accepted.host = "outlook-com.olc.protection.outlook.com";
  accepted.address = "52.101.68.10";
  a.Cycle({MxReport("192.0.2.7", {accepted, MxResult("gmail.com", SmtpClass::kOk, 1'790'007'100)})});
  CHECK(Outbox(a.tmp.path) == std::vector<std::string>{"everything mx.rejected outlook.com|acme 192.0.2.7",
                                                       "everything mx.resolved outlook.com|acme 192.0.2.7"});
  CHECK(a.alerts->raised() == std::map<std::string, size_t>{{"mx.rejected", 1}, {"mx.resolved", 1}});
  CHECK(StreamRowText(a.tmp.path, "192.0.2.7", "mx", "outlook.com").empty());
  const auto resolved = OutboxItems(a.tmp.path, "everything", "mx.resolved");
  REQUIRE(resolved.size() == 1);
  CHECK(resolved[0].at("class") == "ok");
  CHECK(resolved[0].at("code") == 250);
  CHECK(resolved[0].at("enhanced") == "2.1.5");
  CHECK(resolved[0].at("evidence") ==
        nlohmann::json{{"session", "from 192.0.2.7 to outlook-com.olc.protection.outlook.com[52.101.68.10]"},
                       {"reply", "250 2.1.5 OK"}});
  CHECK(resolved[0].at("first_seen") == "2026-09-21T15:13:20Z");  // when the rejection began
  CHECK(resolved[0].at("at") == "2026-09-21T16:13:20Z");
  CHECK_FALSE(resolved[0].contains("tls"));
  CHECK_FALSE(resolved[0].contains("reused"));
}

TEST_CASE("AlertTracker: a reused MX result changes nothing", "[alerts][mx]") {
  Agent a;
  a.config.alerts.mx_raise_after = 2;
  a.config.alerts.mx_clear_after = 2;
  a.Open();
  auto reused = [](MxProbeResult m) {
    m.reused = true;
    return m;
  };
  const MxProbeResult blocked = MxResult("gmx.net", SmtpClass::kBlockedByList, 1'790'003'500);
  a.Cycle({MxReport("192.0.2.7", {blocked})});
  CHECK(StreamRowText(a.tmp.path, "192.0.2.7", "mx", "gmx.net") == "ok 1 0 -");
  // The same session reported again for three cycles: not a second, third, fourth reply.
  for (int i = 0; i < 3; ++i) a.Cycle({MxReport("192.0.2.7", {reused(blocked)})});
  CHECK(StreamRowText(a.tmp.path, "192.0.2.7", "mx", "gmx.net") == "ok 1 0 -");
  CHECK(Outbox(a.tmp.path).empty());
  CHECK(a.alerts->raised().empty());

  a.Cycle({MxReport("192.0.2.7", {MxResult("gmx.net", SmtpClass::kBlockedByList, a.now + 3500)})});
  CHECK(Outbox(a.tmp.path) == std::vector<std::string>{"everything mx.rejected gmx.net|acme 192.0.2.7"});
  CHECK(StreamRowText(a.tmp.path, "192.0.2.7", "mx", "gmx.net") == "problem 0 0 -");

  // Raised: reused ok results do not count towards clearing either.
  const MxProbeResult ok = MxResult("gmx.net", SmtpClass::kOk, a.now + 3500);
  a.Cycle({MxReport("192.0.2.7", {ok})});
  CHECK(StreamRowText(a.tmp.path, "192.0.2.7", "mx", "gmx.net") == "problem 0 1 -");
  for (int i = 0; i < 3; ++i) a.Cycle({MxReport("192.0.2.7", {reused(ok)})});
  CHECK(StreamRowText(a.tmp.path, "192.0.2.7", "mx", "gmx.net") == "problem 0 1 -");
  CHECK(Outbox(a.tmp.path).size() == 1);
  a.Cycle({MxReport("192.0.2.7", {MxResult("gmx.net", SmtpClass::kOk, a.now + 3500)})});
  CHECK(Outbox(a.tmp.path) == std::vector<std::string>{"everything mx.rejected gmx.net|acme 192.0.2.7",
                                                       "everything mx.resolved gmx.net|acme 192.0.2.7"});

  // A stream with no row: a reused problem does not even start one.
  a.Cycle({MxReport("192.0.2.8", {reused(MxResult("gmail.com", SmtpClass::kRateLimit, 1'790'000'000))})});
  CHECK(StreamRowText(a.tmp.path, "192.0.2.8", "mx", "gmail.com").empty());
  CHECK(Outbox(a.tmp.path).size() == 2);
}

TEST_CASE("AlertTracker: MX results of class error or other neither raise nor clear", "[alerts][mx]") {
  Agent a;
  const auto error = [&] { return MxResult("gmail.com", SmtpClass::kError, a.now + 3500); };
  const auto other = [&] { return MxResult("gmail.com", SmtpClass::kOther, a.now + 3500); };
  a.Cycle({MxReport("192.0.2.7", {error()})});
  a.Cycle({MxReport("192.0.2.7", {other()})});
  CHECK(Outbox(a.tmp.path).empty());
  CHECK(StreamRowText(a.tmp.path, "192.0.2.7", "mx", "gmail.com") == "ok 0 0 1790003600");

  a.Cycle({MxReport("192.0.2.7", {MxResult("gmail.com", SmtpClass::kPolicyFailure, a.now + 3500)})});
  CHECK(Outbox(a.tmp.path) == std::vector<std::string>{"everything mx.rejected gmail.com|acme 192.0.2.7"});
  a.Cycle({MxReport("192.0.2.7", {error()})});
  a.Cycle({MxReport("192.0.2.7", {other()})});
  CHECK(Outbox(a.tmp.path).size() == 1);
  CHECK(StreamRowText(a.tmp.path, "192.0.2.7", "mx", "gmail.com") == "problem 0 0 1790014400");

  // Greylisting is the routine first answer to an unknown sender: ok.
  a.Cycle({MxReport("192.0.2.7", {MxResult("gmail.com", SmtpClass::kGreylist, a.now + 3500)})});
  CHECK(Outbox(a.tmp.path) == std::vector<std::string>{"everything mx.rejected gmail.com|acme 192.0.2.7",
                                                       "everything mx.resolved gmail.com|acme 192.0.2.7"});
  CHECK(a.alerts->raised() == std::map<std::string, size_t>{{"mx.rejected", 1}, {"mx.resolved", 1}});
}

TEST_CASE("AlertTracker: a stored MX rejection is old news after a restart", "[alerts][mx]") {
  Agent old;
  old.config.webhooks.clear();
  old.Open();
  old.Cycle({MxReport("192.0.2.8", {MxResult("yahoo.com", SmtpClass::kRateLimit, old.now + 3500)})});
  {
    sqlite3* db = nullptr;
    sqlite3_open((old.tmp.path / "repwatch.db").c_str(), &db);
    sqlite3_exec(db, "DELETE FROM alert_streams", nullptr, nullptr, nullptr);
    sqlite3_close(db);
  }
  old.config.webhooks = Agent().config.webhooks;
  old.Open();
  old.Cycle({MxReport("192.0.2.8", {MxResult("yahoo.com", SmtpClass::kRateLimit, old.now + 3500)})});
  CHECK(Outbox(old.tmp.path).empty());
  CHECK(StreamRowText(old.tmp.path, "192.0.2.8", "mx", "yahoo.com") == "problem 0 0 -");
  old.Cycle({MxReport("192.0.2.8", {MxResult("yahoo.com", SmtpClass::kOk, old.now + 3500)})});
  CHECK(Outbox(old.tmp.path) == std::vector<std::string>{"everything mx.resolved yahoo.com|acme 192.0.2.8"});
}

}  // namespace
}  // namespace repwatch

namespace repwatch {
namespace {

IpReport WarmupIpReport(const char* ip, WarmupSignal signal, uint64_t sent) {
  IpReport r;
  r.ip = IpAddress::Parse(ip).value();
  r.range = "acme";
  WarmupReport& w = r.warmup.emplace();
  w.schedule = "double-30";
  w.start = "2026-09-18";
  w.origin = "auto";
  w.day = 3;
  w.allowance = 400;
  w.sent = sent;
  w.ratio = static_cast<double>(sent) / 400;
  w.signal = signal;
  w.detail = "numbers";
  r.volume = VolumeReport{sent, 0, 0};
  return r;
}

TEST_CASE("AlertTracker: warm-up signals raise warmup.* once per episode, with no clearing event", "[alerts][warmup]") {
  Agent a;
  a.Cycle({WarmupIpReport("192.0.2.8", WarmupSignal::kOk, 100)});
  CHECK(Outbox(a.tmp.path).empty());
  a.Cycle({WarmupIpReport("192.0.2.8", WarmupSignal::kAhead, 500)});  // one cycle raises
  a.Cycle({WarmupIpReport("192.0.2.8", WarmupSignal::kAhead, 600)});  // still ahead: nothing new
  CHECK(Outbox(a.tmp.path) == std::vector<std::string>{"everything warmup.ahead acme 192.0.2.8"});
  a.Cycle({WarmupIpReport("192.0.2.8", WarmupSignal::kBackoff, 600)});  // ahead ends silently, backoff raises
  a.Cycle({WarmupIpReport("192.0.2.8", WarmupSignal::kOk, 300)});
  a.Cycle({WarmupIpReport("192.0.2.8", WarmupSignal::kAhead, 700)});  // a new episode
  a.Cycle({WarmupIpReport("192.0.2.8", WarmupSignal::kCompleted, 700)});
  a.Cycle({WarmupIpReport("192.0.2.8", WarmupSignal::kCompleted, 700)});
  CHECK(Outbox(a.tmp.path) == std::vector<std::string>{"everything warmup.ahead acme 192.0.2.8",
                                                       "everything warmup.backoff acme 192.0.2.8",
                                                       "everything warmup.ahead acme 192.0.2.8",
                                                       "everything warmup.completed acme 192.0.2.8"});
  const auto items = OutboxItems(a.tmp.path, "everything", "warmup.backoff");
  REQUIRE(items.size() == 1);
  CHECK(items[0]["signal"] == "backoff");
  CHECK(items[0]["day"] == 3);
  CHECK(items[0]["allowance"] == 400);
  CHECK(items[0]["sent"] == 600);
  CHECK(items[0]["ratio"] == 1.5);
  CHECK(items[0]["detail"] == "numbers");
  CHECK(items[0]["evidence"]["volume_today"]["delivered"] == 600);
  CHECK(items[0]["range"] == "acme");
  CHECK(EventTypesOf("warmup", "ahead").clear.empty());
}

}  // namespace
}  // namespace repwatch
