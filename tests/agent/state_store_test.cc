#include "agent/state_store.h"

#include "builders.h"
#include "temp_dir.h"

#include <sqlite3.h>
#include <unistd.h>

#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>

#include <catch2/catch.hpp>

namespace repwatch {
namespace {

namespace fs = std::filesystem;

using testing::TempDir;

IpAddress Ip(const char* text) { return IpAddress::Parse(text).value(); }

DnsblZoneResult Listed(const std::string& zone, std::vector<std::string> codes) {
  DnsblZoneResult r;
  r.zone = zone;
  r.status = DnsblStatus::kListed;
  r.codes = std::move(codes);
  for (const auto& c : r.codes) r.meanings.push_back("meaning of " + c);
  r.txt = "see https://example.test/" + zone;
  r.delist_url = "https://example.test/delist";
  return r;
}

DnsblZoneResult Clean(const std::string& zone) {
  DnsblZoneResult r;
  r.zone = zone;
  r.status = DnsblStatus::kClean;
  return r;
}

DnsblZoneResult Failed(const std::string& zone) {
  DnsblZoneResult r;
  r.zone = zone;
  r.error = "timeout";
  return r;
}

IpReport Report(const char* ip, std::vector<DnsblZoneResult> results) {
  return testing::DnsblReport(Ip(ip), "acme-out", std::move(results));
}

std::unique_ptr<StateStore> OpenStore(const std::string& dir) {
  auto store = StateStore::Open(dir);
  INFO((store.ok() ? std::string() : store.error()));
  REQUIRE(store.ok());
  return std::move(store).value();
}

void RunCycle(StateStore& store, long long now, const std::vector<IpReport>& reports) {
  REQUIRE(store.BeginCycle(now).ok());
  for (const auto& r : reports) {
    Status s = store.RecordIp(r, now);
    INFO(s.message());
    REQUIRE(s.ok());
  }
  REQUIRE(store.EndCycle(now + 5, 5.0, reports.size(), true).ok());
}

const DnsblZoneResult& ZoneOf(const IpReport& r, const std::string& zone) {
  for (const auto& z : *r.dnsbl)
    if (z.zone == zone) return z;
  FAIL("zone " << zone << " missing");
  throw 0;
}

// The first column of the first row of `sql`, read straight from the database file.
long long CountRows(const std::string& dir, const std::string& sql) {
  sqlite3* db = nullptr;
  sqlite3_stmt* stmt = nullptr;
  long long n = -1;
  if (sqlite3_open_v2((dir + "/repwatch.db").c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK &&
      sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK && sqlite3_step(stmt) == SQLITE_ROW)
    n = sqlite3_column_int64(stmt, 0);
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return n;
}

TEST_CASE("StateStore creates state_dir and the database, WAL mode", "[state]") {
  TempDir tmp;
  const std::string dir = tmp.sub("a/b");
  auto store = OpenStore(dir);
  CHECK(fs::is_directory(dir));
  CHECK((fs::status(dir).permissions() & fs::perms::all) ==
        (fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec));
  CHECK(fs::exists(dir + "/repwatch.db"));
  CHECK(fs::exists(dir + "/repwatch.db-wal"));  // WAL mode, while open
  CHECK(CountRows(dir, "SELECT max(version) FROM schema_version") == 4);
}

TEST_CASE("StateStore refuses a state_dir it cannot use, naming it", "[state]") {
  TempDir tmp;
  std::ofstream(tmp.sub("file")) << "x";
  auto store = StateStore::Open(tmp.sub("file/sub"));
  REQUIRE_FALSE(store.ok());
  CHECK_THAT(store.error(), Catch::Contains(tmp.sub("file/sub")));

  const std::string dir = tmp.sub("corrupt");
  fs::create_directories(dir);
  std::ofstream(dir + "/repwatch.db") << std::string(4096, 'x');
  auto corrupt = StateStore::Open(dir);
  REQUIRE_FALSE(corrupt.ok());
  CHECK_THAT(corrupt.error(), Catch::Contains(dir + "/repwatch.db"));
}

TEST_CASE("StateStore keeps listings across close and reopen", "[state]") {
  TempDir tmp;
  {
    auto store = OpenStore(tmp.sub("s"));
    RunCycle(*store, 1000,
             {Report("192.0.2.1", {Listed("zen.example", {"127.0.0.2", "127.0.0.4"}), Clean("bl.example")}),
              Report("192.0.2.2", {Clean("zen.example"), Clean("bl.example")})});
  }
  auto store = OpenStore(tmp.sub("s"));
  auto listings = store->CurrentListings();
  REQUIRE(listings.ok());
  REQUIRE(listings.value().size() == 1);
  const StoredListing& l = listings.value()[0];
  CHECK(l.ip == "192.0.2.1");
  CHECK(l.range == "acme-out");
  CHECK(l.zone == "zen.example");
  CHECK(l.codes == std::vector<std::string>{"127.0.0.2", "127.0.0.4"});
  CHECK(l.meanings == std::vector<std::string>{"meaning of 127.0.0.2", "meaning of 127.0.0.4"});
  CHECK(l.first_seen == 1000);
  CHECK(l.last_seen == 1000);
  CHECK(store->LastSuccessfulCycle().value() == 1005);
  CHECK(CountRows(tmp.sub("s"), "SELECT count(*) FROM dnsbl_state") == 1);
  CHECK(CountRows(tmp.sub("s"), "SELECT count(*) FROM ips") == 2);
}

TEST_CASE("StateStore: a listing keeps first_seen; clean ends it into history", "[state]") {
  TempDir tmp;
  auto store = OpenStore(tmp.sub("s"));
  RunCycle(*store, 1000, {Report("192.0.2.1", {Listed("zen.example", {"127.0.0.2"})})});
  RunCycle(*store, 2000, {Report("192.0.2.1", {Listed("zen.example", {"127.0.0.3"})})});
  auto l = store->CurrentListings().value();
  REQUIRE(l.size() == 1);
  CHECK(l[0].first_seen == 1000);
  CHECK(l[0].last_seen == 2000);
  CHECK(l[0].codes == std::vector<std::string>{"127.0.0.3"});

  RunCycle(*store, 3000, {Report("192.0.2.1", {Clean("zen.example")})});
  CHECK(store->CurrentListings().value().empty());
  CHECK(CountRows(tmp.sub("s"), "SELECT count(*) FROM dnsbl_state") == 0);
  CHECK(CountRows(tmp.sub("s"),
                  "SELECT count(*) FROM dnsbl_history WHERE ip='192.0.2.1' AND first_seen=1000 "
                  "AND last_seen=2000 AND cleared_at=3000 AND range='acme-out'") == 1);
}

TEST_CASE("StateStore: an error never raises nor clears", "[state]") {
  TempDir tmp;
  auto store = OpenStore(tmp.sub("s"));
  RunCycle(*store, 1000, {Report("192.0.2.1", {Listed("zen.example", {"127.0.0.2"}), Clean("bl.example")})});
  RunCycle(*store, 2000, {Report("192.0.2.1", {Failed("zen.example"), Failed("bl.example")})});

  SECTION("a listing that errors stays listed, with its dates, and remembers the error") {
    auto l = store->CurrentListings().value();
    REQUIRE(l.size() == 1);
    CHECK(l[0].zone == "zen.example");
    CHECK(l[0].first_seen == 1000);
    CHECK(l[0].last_seen == 1000);
    CHECK(l[0].codes == std::vector<std::string>{"127.0.0.2"});
    CHECK(l[0].last_error == "timeout");
    auto ip = store->LoadIp(Ip("192.0.2.1"), {"zen.example", "bl.example"}).value();
    REQUIRE(ip);
    CHECK(ZoneOf(*ip, "zen.example").status == DnsblStatus::kListed);
    CHECK(ZoneOf(*ip, "zen.example").error == "timeout");
    CHECK(ZoneOf(*ip, "bl.example").status == DnsblStatus::kError);
    CHECK(ZoneOf(*ip, "bl.example").error == "timeout");
  }
  SECTION("the next answer decides: listed again keeps first_seen and forgets the error") {
    RunCycle(*store, 3000, {Report("192.0.2.1", {Listed("zen.example", {"127.0.0.2"}), Clean("bl.example")})});
    auto l = store->CurrentListings().value();
    REQUIRE(l.size() == 1);
    CHECK(l[0].first_seen == 1000);
    CHECK(l[0].last_seen == 3000);
    CHECK(l[0].last_error.empty());
    CHECK(CountRows(tmp.sub("s"), "SELECT count(*) FROM dnsbl_state") == 1);
    CHECK(CountRows(tmp.sub("s"), "SELECT count(*) FROM dnsbl_history") == 0);
  }
  SECTION("an error row that turns listed starts a new listing") {
    RunCycle(*store, 3000, {Report("192.0.2.1", {Listed("bl.example", {"127.0.0.9"})})});
    auto ip = store->LoadIp(Ip("192.0.2.1"), {"bl.example"}).value();
    CHECK(ZoneOf(*ip, "bl.example").status == DnsblStatus::kListed);
    CHECK(ZoneOf(*ip, "bl.example").error.empty());
    CHECK(CountRows(tmp.sub("s"), "SELECT first_seen FROM dnsbl_state WHERE zone='bl.example'") == 3000);
  }
}

TEST_CASE("StateStore::LoadIp answers in check --json shape", "[state]") {
  TempDir tmp;
  auto store = OpenStore(tmp.sub("s"));
  DnsblZoneResult allow = Listed("wl.example", {"127.0.2.15"});
  allow.allowlist = true;
  RunCycle(*store, 1000,
           {Report("2001:db8::1", {Listed("zen.example", {"127.0.0.2"}), allow, Clean("bl.example")})});

  CHECK_FALSE(store->LoadIp(Ip("2001:db8::2"), {"zen.example"}).value().has_value());
  auto ip = store->LoadIp(Ip("2001:db8::1"), {"bl.example", "zen.example", "wl.example"}).value();
  REQUIRE(ip);
  CHECK(ip->range == "acme-out");
  REQUIRE(ip->dnsbl->size() == 3);
  CHECK((*ip->dnsbl)[0].zone == "bl.example");
  CHECK((*ip->dnsbl)[0].status == DnsblStatus::kClean);
  const DnsblZoneResult& zen = (*ip->dnsbl)[1];
  CHECK(zen.status == DnsblStatus::kListed);
  CHECK(zen.codes == std::vector<std::string>{"127.0.0.2"});
  CHECK(zen.meanings == std::vector<std::string>{"meaning of 127.0.0.2"});
  CHECK(zen.txt == "see https://example.test/zen.example");
  CHECK(zen.delist_url == "https://example.test/delist");
  CHECK((*ip->dnsbl)[2].allowlist);
  auto listings = store->CurrentListings().value();
  REQUIRE(listings.size() == 2);
  CHECK(listings[0].allowlist == (listings[0].zone == "wl.example"));
}

// An address with only FCrDNS and SPF sections.
IpReport CheckedReport(const char* ip, FcrdnsResult fcrdns, const std::string& spf_result) {
  IpReport r;
  r.ip = Ip(ip);
  r.range = "acme-out";
  FcrdnsReport& f = r.fcrdns.emplace();
  f.result = fcrdns;
  f.ptr = {"mail.acme.example", "other.acme.example"};
  if (fcrdns == FcrdnsResult::kPass) f.confirmed = "other.acme.example";
  else f.reason = std::string(FcrdnsResultName(fcrdns)) + " because of the test";
  f.helo.emplace().name = "mail.acme.example";
  r.spf.emplace();
  r.spf->push_back({"acme.example", spf_result, "reason for " + spf_result, {}});
  r.spf->push_back({"wide.example", "pass", "+all matched", {"+all in wide.example"}});
  return r;
}

TEST_CASE("StateStore keeps the FCrDNS and SPF sections; an error keeps the stored problem", "[state]") {
  TempDir tmp;
  auto store = OpenStore(tmp.sub("s"));
  auto load = [&] { return store->LoadIp(Ip("192.0.2.1"), {}).value().value(); };

  RunCycle(*store, 1000, {CheckedReport("192.0.2.1", FcrdnsResult::kFail, "softfail")});
  IpReport got = load();
  REQUIRE(got.fcrdns);
  CHECK(got.fcrdns->result == FcrdnsResult::kFail);
  CHECK(got.fcrdns->ptr == std::vector<std::string>{"mail.acme.example", "other.acme.example"});
  CHECK(got.fcrdns->reason == "fail because of the test");
  REQUIRE(got.fcrdns->helo);
  CHECK(got.fcrdns->helo->name == "mail.acme.example");
  REQUIRE(got.spf);
  REQUIRE(got.spf->size() == 2);
  CHECK((*got.spf)[0].result == "softfail");
  CHECK((*got.spf)[1].permissive == std::vector<std::string>{"+all in wide.example"});

  // Both checks could not tell: the stored problems stay, the pass stays a pass.
  RunCycle(*store, 2000, {CheckedReport("192.0.2.1", FcrdnsResult::kTempError, "temperror")});
  got = load();
  CHECK(got.fcrdns->result == FcrdnsResult::kFail);
  CHECK((*got.spf)[0].result == "softfail");
  CHECK((*got.spf)[1].result == "pass");

  // Fixed: both clear.
  RunCycle(*store, 3000, {CheckedReport("192.0.2.1", FcrdnsResult::kPass, "pass")});
  got = load();
  CHECK(got.fcrdns->result == FcrdnsResult::kPass);
  CHECK(got.fcrdns->confirmed == "other.acme.example");
  CHECK((*got.spf)[0].result == "pass");

  // An error over a pass is stored as the error: nothing to keep.
  RunCycle(*store, 4000, {CheckedReport("192.0.2.1", FcrdnsResult::kTempError, "temperror")});
  got = load();
  CHECK(got.fcrdns->result == FcrdnsResult::kTempError);
  CHECK((*got.spf)[0].result == "temperror");

  // A report without the sections (checks disabled) stores none.
  RunCycle(*store, 5000, {Report("192.0.2.1", {})});
  got = load();
  CHECK_FALSE(got.fcrdns);
  CHECK_FALSE(got.spf);
}

// One MX probe result with every field set; tls only when `tls_ok` is given.
MxProbeResult Mx(const std::string& domain, SmtpClass cls, long long probed_at, std::optional<bool> tls_ok = {}) {
  MxProbeResult m;
  m.domain = domain;
  m.host = "mx1." + domain;
  m.address = "203.0.113.25";
  m.stage = cls == SmtpClass::kError ? MxStage::kConnect : MxStage::kRcpt;
  m.cls = cls;
  if (cls != SmtpClass::kError) {
    m.code = cls == SmtpClass::kOk ? 250 : 550;
    m.enhanced = cls == SmtpClass::kOk ? "2.1.5" : "5.7.606";
    m.text = cls == SmtpClass::kOk ? "Recipient OK" : "Access denied, banned sending IP [192.0.2.1]";
  } else {
    m.error = "connection refused";
  }
  if (cls == SmtpClass::kBlockedByList) m.zone = "zen.spamhaus.org";
  if (cls == SmtpClass::kPolicyFailure) m.reason = "rdns";
  if (tls_ok) {
    MxTlsReport& t = m.tls.emplace();
    t.ok = *tls_ok;
    t.protocol = *tls_ok ? "TLSv1.3" : "";
    t.name_match = *tls_ok;
    t.peer_name = *tls_ok ? "mx1." + domain : "";
    t.error = *tls_ok ? "" : "handshake: certificate verify failed";
  }
  m.probed_at = probed_at;
  return m;
}

IpReport MxReport(const char* ip, std::vector<MxProbeResult> results) {
  IpReport r;
  r.ip = Ip(ip);
  r.range = "acme-out";
  r.mx = std::move(results);
  return r;
}

void CheckSameMx(const MxProbeResult& got, const MxProbeResult& want) {
  INFO("domain " << want.domain);
  CHECK(got.domain == want.domain);
  CHECK(got.host == want.host);
  CHECK(got.address == want.address);
  CHECK(got.stage == want.stage);
  CHECK(got.code == want.code);
  CHECK(got.enhanced == want.enhanced);
  CHECK(got.cls == want.cls);
  CHECK(got.zone == want.zone);
  CHECK(got.reason == want.reason);
  CHECK(got.text == want.text);
  CHECK(got.error == want.error);
  REQUIRE(got.tls.has_value() == want.tls.has_value());
  if (want.tls) {
    CHECK(got.tls->ok == want.tls->ok);
    CHECK(got.tls->protocol == want.tls->protocol);
    CHECK(got.tls->name_match == want.tls->name_match);
    CHECK(got.tls->peer_name == want.tls->peer_name);
    CHECK(got.tls->error == want.tls->error);
  }
  CHECK(got.probed_at == want.probed_at);
}

TEST_CASE("StateStore keeps MX results: StoredMx and LoadIp give back every field, never `reused`",
          "[state][mx]") {
  TempDir tmp;
  MxProbeResult blocked = Mx("outlook.com", SmtpClass::kReputationBlock, 1'790'000'000, true);
  blocked.tls->name_match = false;  // a certificate for another name: kept as such
  blocked.tls->peer_name = "*.olc.protection.outlook.com";
  MxProbeResult listed = Mx("gmx.net", SmtpClass::kBlockedByList, 1'790'000'100, false);
  MxProbeResult ok = Mx("gmail.com", SmtpClass::kOk, 1'789'990'000);
  ok.reused = true;  // reported again this cycle: a property of the cycle, not of the result
  {
    auto store = OpenStore(tmp.sub("s"));
    CHECK(store->StoredMx(Ip("192.0.2.1")).value().empty());
    RunCycle(*store, 1'790'000'200, {MxReport("192.0.2.1", {blocked, listed, ok})});
  }
  auto store = OpenStore(tmp.sub("s"));  // across a restart
  auto stored = store->StoredMx(Ip("192.0.2.1"));
  INFO((stored.ok() ? std::string() : stored.error()));
  REQUIRE(stored.ok());
  REQUIRE(stored.value().size() == 3);
  CheckSameMx(stored.value()[0], blocked);
  CheckSameMx(stored.value()[1], listed);
  CheckSameMx(stored.value()[2], ok);
  for (const MxProbeResult& m : stored.value()) CHECK_FALSE(m.reused);
  CHECK(CountRows(tmp.sub("s"), "SELECT count(*) FROM ips WHERE mx IS NOT NULL") == 1);
  CHECK(CountRows(tmp.sub("s"), "SELECT count(*) FROM ips WHERE mx LIKE '%reused%'") == 0);
  CHECK(CountRows(tmp.sub("s"), "SELECT count(*) FROM ips WHERE fcrdns IS NULL AND spf IS NULL") == 1);

  auto ip = store->LoadIp(Ip("192.0.2.1"), {}).value();
  REQUIRE(ip);
  CHECK(ip->range == "acme-out");
  CHECK_FALSE(ip->fcrdns);
  CHECK_FALSE(ip->spf);
  REQUIRE(ip->mx);
  REQUIRE(ip->mx->size() == 3);
  CheckSameMx((*ip->mx)[0], blocked);
  CheckSameMx((*ip->mx)[1], listed);
  CheckSameMx((*ip->mx)[2], ok);
  CHECK_FALSE((*ip->mx)[2].reused);

  // Unknown addresses and addresses never probed have none.
  CHECK(store->StoredMx(Ip("192.0.2.2")).value().empty());
  RunCycle(*store, 1'790'003'800, {Report("192.0.2.3", {Clean("zen.example")})});
  CHECK(store->StoredMx(Ip("192.0.2.3")).value().empty());
  CHECK_FALSE(store->LoadIp(Ip("192.0.2.3"), {}).value().value().mx);

  // A report without the section (the check turned off) stores none.
  RunCycle(*store, 1'790'007'400, {Report("192.0.2.1", {})});
  CHECK(store->StoredMx(Ip("192.0.2.1")).value().empty());
  CHECK_FALSE(store->LoadIp(Ip("192.0.2.1"), {}).value().value().mx);
}

TEST_CASE("StateStore::ForEachCheckedIp includes addresses that only have MX results", "[state][mx]") {
  TempDir tmp;
  auto store = OpenStore(tmp.sub("s"));
  RunCycle(*store, 1000,
           {MxReport("192.0.2.9", {Mx("gmail.com", SmtpClass::kRateLimit, 990)}),
            Report("192.0.2.10", {Clean("zen.example")}),  // DNSBL only: not a checked address
            CheckedReport("192.0.2.1", FcrdnsResult::kPass, "pass")});
  std::vector<IpReport> seen;
  REQUIRE(store->ForEachCheckedIp([&](IpReport&& r) { seen.push_back(std::move(r)); }).ok());
  REQUIRE(seen.size() == 2);
  CHECK(seen[0].ip.ToString() == "192.0.2.1");
  CHECK(seen[0].fcrdns);
  CHECK_FALSE(seen[0].mx);
  CHECK(seen[1].ip.ToString() == "192.0.2.9");
  CHECK(seen[1].range == "acme-out");
  CHECK_FALSE(seen[1].fcrdns);
  CHECK_FALSE(seen[1].spf);
  CHECK_FALSE(seen[1].dnsbl);
  REQUIRE(seen[1].mx);
  REQUIRE(seen[1].mx->size() == 1);
  CheckSameMx((*seen[1].mx)[0], Mx("gmail.com", SmtpClass::kRateLimit, 990));
}

TEST_CASE("StateStore::StoredProblem of an MX domain: problem classes only", "[state][mx]") {
  TempDir tmp;
  auto store = OpenStore(tmp.sub("s"));
  RunCycle(*store, 1000,
           {MxReport("192.0.2.1", {Mx("rep.example", SmtpClass::kReputationBlock, 1000),
                                   Mx("list.example", SmtpClass::kBlockedByList, 1000),
                                   Mx("rate.example", SmtpClass::kRateLimit, 1000),
                                   Mx("policy.example", SmtpClass::kPolicyFailure, 1000),
                                   Mx("ok.example", SmtpClass::kOk, 1000),
                                   Mx("grey.example", SmtpClass::kGreylist, 1000),
                                   Mx("other.example", SmtpClass::kOther, 1000),
                                   Mx("error.example", SmtpClass::kError, 1000)})});
  REQUIRE(store->BeginCycle(2000).ok());
  auto problem = [&](const std::string& ip, const std::string& check, const std::string& subject) {
    auto r = store->StoredProblem(ip, check, subject);
    INFO((r.ok() ? std::string() : r.error()));
    REQUIRE(r.ok());
    return r.value();
  };
  CHECK(problem("192.0.2.1", "mx", "rep.example"));
  CHECK(problem("192.0.2.1", "mx", "list.example"));
  CHECK(problem("192.0.2.1", "mx", "rate.example"));
  CHECK(problem("192.0.2.1", "mx", "policy.example"));
  CHECK_FALSE(problem("192.0.2.1", "mx", "ok.example"));
  CHECK_FALSE(problem("192.0.2.1", "mx", "grey.example"));
  CHECK_FALSE(problem("192.0.2.1", "mx", "other.example"));
  CHECK_FALSE(problem("192.0.2.1", "mx", "error.example"));
  CHECK_FALSE(problem("192.0.2.1", "mx", "unknown.example"));
  CHECK_FALSE(problem("192.0.2.2", "mx", "rep.example"));
  CHECK_FALSE(problem("192.0.2.1", "spf", "rep.example"));  // the mx column is not the spf column
  REQUIRE(store->AbortCycle().ok());
}

TEST_CASE("StateStore: an MX result without a reply keeps the stored one that had a reply", "[state][mx]") {
  TempDir tmp;
  auto store = OpenStore(tmp.sub("s"));
  auto stored = [&] {
    auto r = store->StoredMx(Ip("192.0.2.1"));
    REQUIRE(r.ok());
    std::map<std::string, MxProbeResult> by_domain;
    for (MxProbeResult& m : r.value()) by_domain[m.domain] = std::move(m);
    return by_domain;
  };
  const MxProbeResult rep = Mx("rep.example", SmtpClass::kReputationBlock, 1000, true);
  const MxProbeResult ok = Mx("ok.example", SmtpClass::kOk, 1000, true);
  const MxProbeResult grey = Mx("grey.example", SmtpClass::kGreylist, 1000);
  const MxProbeResult other = Mx("other.example", SmtpClass::kOther, 1000);
  const MxProbeResult failed = Mx("failed.example", SmtpClass::kError, 1000);
  RunCycle(*store, 1000, {MxReport("192.0.2.1", {rep, ok, grey, other, failed})});

  // Every session fails this time: what had a reply stays, with its probed_at. An
  // `other` reply is a reply: stored, so min_interval counts from it.
  MxProbeResult refused = Mx("rep.example", SmtpClass::kError, 2000);
  MxProbeResult unknown_user = Mx("ok.example", SmtpClass::kOther, 2000);
  unknown_user.code = 550;
  unknown_user.enhanced = "5.1.1";
  unknown_user.text = "user unknown";
  MxProbeResult timeout = Mx("grey.example", SmtpClass::kError, 2000);
  timeout.stage = MxStage::kBanner;
  timeout.error = "banner timeout";
  MxProbeResult failed_again = Mx("failed.example", SmtpClass::kError, 2000);
  failed_again.error = "no route to host";
  const MxProbeResult new_failed = Mx("new.example", SmtpClass::kError, 2000);
  RunCycle(*store, 2000,
           {MxReport("192.0.2.1", {refused, unknown_user, timeout, Mx("other.example", SmtpClass::kError, 2000),
                                   failed_again, new_failed})});
  auto got = stored();
  REQUIRE(got.size() == 6);
  CheckSameMx(got.at("rep.example"), rep);
  CheckSameMx(got.at("ok.example"), unknown_user);
  CheckSameMx(got.at("grey.example"), grey);
  CheckSameMx(got.at("other.example"), other);
  CheckSameMx(got.at("failed.example"), failed_again);  // nothing with a reply to keep: the new error
  CheckSameMx(got.at("new.example"), new_failed);
  REQUIRE(store->BeginCycle(2500).ok());
  CHECK(store->StoredProblem("192.0.2.1", "mx", "rep.example").value());
  REQUIRE(store->AbortCycle().ok());

  // A fresh answer replaces whatever was stored, problem or not.
  const MxProbeResult rep_ok = Mx("rep.example", SmtpClass::kOk, 3000, false);
  MxProbeResult ok_rate = Mx("ok.example", SmtpClass::kRateLimit, 3000);
  ok_rate.code = 421;
  ok_rate.enhanced = "4.7.0";
  const MxProbeResult grey_again = Mx("grey.example", SmtpClass::kGreylist, 3000);
  const MxProbeResult failed_ok = Mx("failed.example", SmtpClass::kOk, 3000);
  RunCycle(*store, 3000, {MxReport("192.0.2.1", {rep_ok, ok_rate, grey_again, failed_ok})});
  got = stored();
  REQUIRE(got.size() == 4);
  CheckSameMx(got.at("rep.example"), rep_ok);
  CheckSameMx(got.at("ok.example"), ok_rate);
  CheckSameMx(got.at("grey.example"), grey_again);
  CheckSameMx(got.at("failed.example"), failed_ok);
  REQUIRE(store->BeginCycle(3500).ok());
  CHECK_FALSE(store->StoredProblem("192.0.2.1", "mx", "rep.example").value());
  CHECK(store->StoredProblem("192.0.2.1", "mx", "ok.example").value());
  REQUIRE(store->AbortCycle().ok());
}

TEST_CASE("StateStore: an aborted cycle leaves the previous state", "[state]") {
  TempDir tmp;
  auto store = OpenStore(tmp.sub("s"));
  RunCycle(*store, 1000, {Report("192.0.2.1", {Listed("zen.example", {"127.0.0.2"})})});
  REQUIRE(store->BeginCycle(2000).ok());
  REQUIRE(store->RecordIp(Report("192.0.2.1", {Clean("zen.example")}), 2000).ok());
  CHECK_FALSE(store->BeginCycle(2000).ok());
  REQUIRE(store->AbortCycle().ok());
  CHECK(store->CurrentListings().value().size() == 1);
  CHECK_FALSE(store->RecordIp(Report("192.0.2.1", {}), 2000).ok());
  CHECK(store->LastSuccessfulCycle().value() == 1005);
}

TEST_CASE("StateStore keeps zone health", "[state]") {
  TempDir tmp;
  {
    auto store = OpenStore(tmp.sub("s"));
    REQUIRE(store->BeginCycle(1000).ok());
    ZoneHealthReport dead{"dead.example", ZoneHealth::kListsEverything, ZoneHealth::kListsEverything,
                          std::nullopt, "127.0.0.1 listed as 127.0.0.2"};
    REQUIRE(store->RecordZoneHealth(dead, 1000).ok());
    ZoneHealthReport ok;
    ok.zone = "zen.example";
    REQUIRE(store->RecordZoneHealth(ok, 1000).ok());
    REQUIRE(store->EndCycle(1001, 1, 0, false).ok());
  }
  auto store = OpenStore(tmp.sub("s"));
  auto zones = store->ZoneHealths().value();
  REQUIRE(zones.size() == 2);
  CHECK(zones[0].zone == "dead.example");
  CHECK(zones[0].health == ZoneHealth::kListsEverything);
  CHECK(zones[0].ipv4 == ZoneHealth::kListsEverything);
  CHECK_FALSE(zones[0].ipv6.has_value());
  CHECK(zones[0].detail == "127.0.0.1 listed as 127.0.0.2");
  CHECK(zones[1].health == ZoneHealth::kOk);
  CHECK(store->LastSuccessfulCycle().value() == 0);
}

TEST_CASE("StateStore records clean addresses fast", "[state][.bench]") {
  TempDir tmp;
  auto store = OpenStore(tmp.sub("s"));
  std::vector<DnsblZoneResult> zones;
  for (int i = 0; i < 30; ++i) zones.push_back(Clean("zone" + std::to_string(i) + ".example"));
  const uint32_t base = IpAddress::Parse("10.0.0.0").value().v4();
  constexpr int kAddresses = 65536;
  for (long long cycle = 0; cycle < 2; ++cycle) {
    auto start = std::chrono::steady_clock::now();
    const std::clock_t cpu_start = std::clock();
    REQUIRE(store->BeginCycle(1000 + cycle).ok());
    IpReport report = testing::DnsblReport(IpAddress(), "bench", zones);
    int failures = 0;
    for (uint32_t i = 0; i < kAddresses; ++i) {
      report.ip = IpAddress::V4(base + i);
      failures += store->RecordIp(report, 1000 + cycle).ok() ? 0 : 1;
    }
    REQUIRE(failures == 0);
    REQUIRE(store->EndCycle(1000 + cycle, 1, kAddresses, true).ok());
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    double cpu = static_cast<double>(std::clock() - cpu_start) / CLOCKS_PER_SEC;
    WARN("cycle " << cycle << ": " << kAddresses << " clean addresses x 30 zones in " << s << " s = "
                  << static_cast<long long>(kAddresses / s) << " RecordIp/s wall, "
                  << static_cast<long long>(kAddresses / cpu) << " RecordIp/s of CPU time");
  }
}

}  // namespace
}  // namespace repwatch
