#include "agent/volume_store.h"

#include <sqlite3.h>

#include <catch2/catch.hpp>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include "temp_dir.h"

namespace repwatch {
namespace {

constexpr long long kDay = 86400;
constexpr long long kDay0 = 20000;  // 2024-10-04, a UTC day number
constexpr long long kT0 = kDay0 * kDay;

const char kRateLimit[] =
    "host gmail-smtp-in.l.google.com[142.250.1.26] said: 421-4.7.28 Gmail has detected an unusual rate of "
    "unsolicited mail originating from your IP address. (in reply to end of DATA command)";
const char kListed[] = "550 5.7.1 Service unavailable; Client host [192.0.2.10] blocked using zen.spamhaus.org";
const char kUserUnknown[] = "550 5.1.1 <bob@yahoo.com>: Recipient address rejected: User unknown";
const char kReputation[] = "550 5.7.1 Mail rejected by Outlook.com for policy reasons. Reasons for rejection may be "
                           "related to content with spam-like characteristics or IP/domain reputation problems. "
                           "(S3140)";

IpAddress Ip(const char* text) { return IpAddress::Parse(text).value(); }

VolumeEvent Event(const char* ip, VolumeOutcome outcome, const char* receiver, long long at, uint32_t count = 1,
                  const char* reply = "") {
  VolumeEvent e;
  e.ip = Ip(ip);
  e.outcome = outcome;
  e.receiver = receiver;
  e.at = at;
  e.count = count;
  e.reply = reply;
  return e;
}

std::unique_ptr<VolumeStore> OpenStore(const testing::TempDir& dir) {
  auto s = VolumeStore::Open(dir.sub("state"));
  REQUIRE(s.ok());
  return std::move(s).value();
}

// Every count row, as "ip hour outcome grp cls count", straight from the file.
std::vector<std::string> Rows(const testing::TempDir& dir) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open_v2(dir.sub("state/volume.db").c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
  sqlite3_stmt* s = nullptr;
  REQUIRE(sqlite3_prepare_v2(db,
                             "SELECT ip || ' ' || hour || ' ' || outcome || ' ' || grp || ' ' || cls || ' ' || count "
                             "FROM volume ORDER BY ip, hour, outcome, grp, cls",
                             -1, &s, nullptr) == SQLITE_OK);
  std::vector<std::string> out;
  while (sqlite3_step(s) == SQLITE_ROW) out.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(s, 0)));
  sqlite3_finalize(s);
  sqlite3_close(db);
  return out;
}

TEST_CASE("volume store: counts by outcome, receiver group and reply class", "[volume_store]") {
  testing::TempDir dir;
  auto store = OpenStore(dir);
  const long long t = kT0 + 10 * 3600 + 5;  // 10:00:05 on day 0
  const long long h = t / 3600;
  std::vector<VolumeEvent> events = {
      Event("192.0.2.10", VolumeOutcome::kDelivered, "gmail.com", t, 2),
      Event("192.0.2.10", VolumeOutcome::kDelivered, "googlemail.com", t + 60),
      Event("192.0.2.10", VolumeOutcome::kDelivered, "gmail-smtp-in.l.google.com", 0),  // at 0: now
      Event("192.0.2.10", VolumeOutcome::kDeferred, "gmail.com", t, 3, kRateLimit),
      Event("192.0.2.10", VolumeOutcome::kBounced, "outlook.com", t, 1, kReputation),
      Event("192.0.2.10", VolumeOutcome::kBounced, "hotmail.de", t, 1, kListed),
      Event("192.0.2.10", VolumeOutcome::kBounced, "yahoo.com", t, 4, kUserUnknown),
      Event("192.0.2.10", VolumeOutcome::kDeferred, "", t, 1),              // no reply logged, no receiver
      Event("192.0.2.10", VolumeOutcome::kDelivered, "example.org", t, 1, kRateLimit),  // a delivery has no class
      Event("192.0.2.10", VolumeOutcome::kDelivered, "example.org", t, 0),  // count 0: ignored
      Event("2001:db8::1", VolumeOutcome::kDelivered, "aol.com", t, 7),
  };
  REQUIRE(store->Add(events, t + 30).ok());

  const std::string H = std::to_string(h);
  CHECK(Rows(dir) == std::vector<std::string>{
                         "192.0.2.10 " + H + " 0 gmail  4",
                         "192.0.2.10 " + H + " 0 other  1",
                         "192.0.2.10 " + H + " 1 gmail rate_limit 3",
                         "192.0.2.10 " + H + " 1 other  1",
                         "192.0.2.10 " + H + " 2 microsoft blocked_by_list 1",
                         "192.0.2.10 " + H + " 2 microsoft reputation_block 1",
                         "192.0.2.10 " + H + " 2 yahoo other 4",
                         "2001:db8::1 " + H + " 0 yahoo  7",
                     });

  auto days = store->Days(Ip("192.0.2.10"), kDay0 - 5, kDay0 + 5);
  REQUIRE(days.ok());
  REQUIRE(days.value().size() == 1);
  const VolumeTotals& d = days.value().at(kDay0);
  CHECK(d.delivered == 5);
  CHECK(d.deferred == 4);
  CHECK(d.bounced == 6);
  CHECK(d.attempts() == 15);
  CHECK(d.throttled == 5);
  CHECK(d.attempts_by_group == std::map<std::string, uint64_t>{{"gmail", 7}, {"microsoft", 2}, {"other", 2}, {"yahoo", 4}});
  CHECK(d.throttled_by_group == std::map<std::string, uint64_t>{{"gmail", 3}, {"microsoft", 2}});

  auto v6 = store->Hours(Ip("2001:db8::1"), h, h);
  REQUIRE(v6.ok());
  REQUIRE(v6.value().size() == 1);
  CHECK(v6.value().at(h).delivered == 7);
  CHECK(v6.value().at(h).attempts_by_group == std::map<std::string, uint64_t>{{"yahoo", 7}});
  CHECK(v6.value().at(h).throttled_by_group.empty());

  // A second batch adds to the same rows.
  REQUIRE(store->Add({Event("192.0.2.10", VolumeOutcome::kDeferred, "gmail.com", t, 2, kRateLimit)}, t).ok());
  CHECK(store->Days(Ip("192.0.2.10"), kDay0, kDay0).value().at(kDay0).throttled == 7);
  CHECK(Rows(dir).size() == 8);
}

TEST_CASE("volume store: Days and Hours sum their periods, only periods with traffic", "[volume_store]") {
  testing::TempDir dir;
  auto store = OpenStore(dir);
  const IpAddress ip = Ip("192.0.2.20");
  std::vector<VolumeEvent> events;
  // Day 0: 23:59:59 (hour 23) x2; day 1: 00:00:00 x3, 00:30 x4, 05:00 x5; day 3: x6; another address x100.
  events.push_back(Event("192.0.2.20", VolumeOutcome::kDelivered, "gmail.com", kT0 + kDay - 1, 2));
  events.push_back(Event("192.0.2.20", VolumeOutcome::kDelivered, "gmail.com", kT0 + kDay, 3));
  events.push_back(Event("192.0.2.20", VolumeOutcome::kDeferred, "gmail.com", kT0 + kDay + 1800, 4));
  events.push_back(Event("192.0.2.20", VolumeOutcome::kBounced, "yahoo.com", kT0 + kDay + 5 * 3600, 5));
  events.push_back(Event("192.0.2.20", VolumeOutcome::kDelivered, "web.de", kT0 + 3 * kDay + 7, 6));
  events.push_back(Event("192.0.2.21", VolumeOutcome::kDelivered, "gmail.com", kT0 + kDay, 100));
  REQUIRE(store->Add(events, kT0 + 3 * kDay + 100).ok());

  auto days = store->Days(ip, kDay0, kDay0 + 3);
  REQUIRE(days.ok());
  REQUIRE(days.value().size() == 3);
  CHECK(days.value().at(kDay0).attempts() == 2);
  CHECK(days.value().at(kDay0 + 1).delivered == 3);
  CHECK(days.value().at(kDay0 + 1).deferred == 4);
  CHECK(days.value().at(kDay0 + 1).bounced == 5);
  CHECK(days.value().at(kDay0 + 1).attempts_by_group == std::map<std::string, uint64_t>{{"gmail", 7}, {"yahoo", 5}});
  CHECK(days.value().at(kDay0 + 3).attempts() == 6);
  CHECK(days.value().count(kDay0 + 2) == 0);

  auto edge = store->Days(ip, kDay0 + 1, kDay0 + 2);
  REQUIRE(edge.ok());
  REQUIRE(edge.value().size() == 1);
  CHECK(edge.value().at(kDay0 + 1).attempts() == 12);

  const long long h = (kT0 + kDay) / 3600;
  auto hours = store->Hours(ip, h - 1, h + 5);
  REQUIRE(hours.ok());
  REQUIRE(hours.value().size() == 3);
  CHECK(hours.value().at(h - 1).attempts() == 2);
  CHECK(hours.value().at(h).attempts() == 7);
  CHECK(hours.value().at(h + 5).attempts() == 5);
  CHECK(store->Hours(ip, h + 1, h + 4).value().empty());
  CHECK(store->Days(Ip("192.0.2.99"), 0, kDay0 + 100).value().empty());

  auto active = store->ActiveIps(kDay0 + 1, kDay0 + 1);
  REQUIRE(active.ok());
  CHECK(active.value() == std::vector<std::string>{"192.0.2.20", "192.0.2.21"});
  CHECK(store->ActiveIps(kDay0 + 3, kDay0 + 10).value() == std::vector<std::string>{"192.0.2.20"});
  CHECK(store->ActiveIps(kDay0 + 4, kDay0 + 10).value().empty());

  auto first = store->FirstDay();
  REQUIRE(first.ok());
  CHECK(first.value() == kDay0);
}

TEST_CASE("volume store: ActiveIps in address-text order", "[volume_store]") {
  testing::TempDir dir;
  auto store = OpenStore(dir);
  CHECK(store->FirstDay().value() == std::nullopt);
  REQUIRE(store
              ->Add({Event("198.51.100.2", VolumeOutcome::kDelivered, "", kT0),
                     Event("2001:db8::5", VolumeOutcome::kDelivered, "", kT0),
                     Event("192.0.2.100", VolumeOutcome::kDelivered, "", kT0),
                     Event("192.0.2.11", VolumeOutcome::kDelivered, "", kT0)},
                    kT0)
              .ok());
  CHECK(store->ActiveIps(kDay0, kDay0).value() ==
        std::vector<std::string>{"192.0.2.100", "192.0.2.11", "198.51.100.2", "2001:db8::5"});
}

TEST_CASE("volume store: CurrentRunStart after an idle gap", "[volume_store]") {
  testing::TempDir dir;
  auto store = OpenStore(dir);
  auto at_day = [](const char* ip, long long day) { return Event(ip, VolumeOutcome::kDelivered, "gmail.com", day * kDay + 3600); };
  // A: days 0, 1, 2, then 30 idle days (3..32), then 33, 34. B: days 0, 1, then 29 idle days (2..30), then 31.
  REQUIRE(store
              ->Add({at_day("192.0.2.1", kDay0), at_day("192.0.2.1", kDay0 + 1), at_day("192.0.2.1", kDay0 + 2),
                     at_day("192.0.2.1", kDay0 + 33), at_day("192.0.2.1", kDay0 + 34), at_day("192.0.2.2", kDay0),
                     at_day("192.0.2.2", kDay0 + 1), at_day("192.0.2.2", kDay0 + 31)},
                    (kDay0 + 34) * kDay)
              .ok());
  CHECK(store->CurrentRunStart(Ip("192.0.2.1"), 30).value() == kDay0 + 33);
  CHECK(store->CurrentRunStart(Ip("192.0.2.1"), 31).value() == kDay0);
  CHECK(store->CurrentRunStart(Ip("192.0.2.2"), 30).value() == kDay0);
  CHECK(store->CurrentRunStart(Ip("192.0.2.2"), 29).value() == kDay0 + 31);
  CHECK(store->CurrentRunStart(Ip("192.0.2.2"), 1).value() == kDay0 + 31);
  CHECK(store->CurrentRunStart(Ip("192.0.2.3"), 30).value() == std::nullopt);
}

TEST_CASE("volume store: positions round-trip with the counts, across a reopen", "[volume_store]") {
  testing::TempDir dir;
  const TailPosition p1{0xfd01, 0xffffffffffff0001ull, 123456789012ull};
  {
    auto store = OpenStore(dir);
    CHECK(store->Position("exim").value() == std::nullopt);
    REQUIRE(store->Add({}, kT0, "exim", p1).ok());
    CHECK(store->Position("exim").value() == p1);
    const TailPosition p2{1, 2, 3};
    REQUIRE(store->Add({Event("192.0.2.1", VolumeOutcome::kDelivered, "", kT0, 9)}, kT0, "postfix", p2).ok());
    CHECK(store->Position("postfix").value() == p2);
    CHECK(store->Position("exim").value() == p1);
    // No source: counts only.
    REQUIRE(store->Add({Event("192.0.2.1", VolumeOutcome::kDelivered, "", kT0, 1)}, kT0).ok());
    CHECK(store->Position("").value() == std::nullopt);
  }
  auto store = OpenStore(dir);
  CHECK(store->Position("exim").value() == p1);
  CHECK(store->Position("postfix").value() == TailPosition{1, 2, 3});
  CHECK(store->Days(Ip("192.0.2.1"), kDay0, kDay0).value().at(kDay0).delivered == 10);
}

TEST_CASE("volume store: hours older than 120 days are dropped", "[volume_store]") {
  testing::TempDir dir;
  auto store = OpenStore(dir);
  REQUIRE(store
              ->Add({Event("192.0.2.1", VolumeOutcome::kDelivered, "", kT0), Event("192.0.2.1", VolumeOutcome::kDelivered, "", kT0 + 10 * kDay)},
                    kT0 + 10 * kDay)
              .ok());
  CHECK(store->Days(Ip("192.0.2.1"), kDay0, kDay0 + 200).value().size() == 2);
  REQUIRE(store->Add({}, kT0 + 125 * kDay).ok());
  auto days = store->Days(Ip("192.0.2.1"), kDay0, kDay0 + 200);
  REQUIRE(days.value().size() == 1);
  CHECK(days.value().count(kDay0 + 10) == 1);
  CHECK(store->FirstDay().value() == kDay0 + 10);
}

TEST_CASE("volume store: concurrent Add from two threads, reads alongside", "[volume_store]") {
  testing::TempDir dir;
  auto store = OpenStore(dir);
  constexpr int kBatches = 200;
  // Catch2's assertions are not thread-safe: the threads count, the test checks.
  std::atomic<int> failures{0}, torn_reads{0}, reads{0};
  auto writer = [&](const char* ip, const char* source) {
    for (int i = 0; i < kBatches; ++i) {
      std::vector<VolumeEvent> events;
      for (int j = 0; j < 10; ++j)
        events.push_back(Event(ip, j % 3 == 0 ? VolumeOutcome::kDeferred : VolumeOutcome::kDelivered, "gmail.com",
                               kT0 + j * 3600, 1, j % 3 == 0 ? kRateLimit : ""));
      if (!store->Add(events, kT0 + kDay, source, TailPosition{1, 2, static_cast<uint64_t>(i + 1)}).ok()) ++failures;
    }
  };
  std::atomic<bool> done{false};
  std::thread reader([&] {
    while (!done) {
      auto d = store->Days(Ip("192.0.2.1"), kDay0, kDay0);
      if (!d.ok()) ++failures;
      else if (!d.value().empty() && d.value().at(kDay0).attempts() % 10 != 0) ++torn_reads;  // whole batches only
      ++reads;
    }
  });
  std::thread a(writer, "192.0.2.1", "a");
  std::thread b(writer, "192.0.2.2", "b");
  a.join();
  b.join();
  done = true;
  reader.join();
  CHECK(failures == 0);
  CHECK(torn_reads == 0);
  CHECK(reads > 0);
  for (const char* ip : {"192.0.2.1", "192.0.2.2"}) {
    const VolumeTotals t = store->Days(Ip(ip), kDay0, kDay0).value().at(kDay0);
    CHECK(t.delivered == 6 * kBatches);
    CHECK(t.deferred == 4 * kBatches);
    CHECK(t.throttled == 4 * kBatches);
  }
  CHECK(store->Position("a").value()->offset == kBatches);
  CHECK(store->Position("b").value()->offset == kBatches);
}

TEST_CASE("volume store: open errors name the path", "[volume_store]") {
  testing::TempDir dir;
  SECTION("state_dir is a file") {
    std::ofstream(dir.sub("file")) << "x";
    auto s = VolumeStore::Open(dir.sub("file"));
    REQUIRE_FALSE(s.ok());
    CHECK(s.error() == "state_dir " + dir.sub("file") + ": not a directory");
  }
  SECTION("a database from a newer repwatch") {
    { OpenStore(dir); }
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(dir.sub("state/volume.db").c_str(), &db) == SQLITE_OK);
    REQUIRE(sqlite3_exec(db, "INSERT INTO schema_version VALUES (99)", nullptr, nullptr, nullptr) == SQLITE_OK);
    sqlite3_close(db);
    auto s = VolumeStore::Open(dir.sub("state"));
    REQUIRE_FALSE(s.ok());
    CHECK(s.error() == dir.sub("state/volume.db") + ": schema version 99 is newer than this repwatch understands (1)");
  }
  SECTION("not a database") {
    std::filesystem::create_directory(dir.sub("state"));
    std::ofstream(dir.sub("state/volume.db")) << std::string(4096, 'x');
    auto s = VolumeStore::Open(dir.sub("state"));
    REQUIRE_FALSE(s.ok());
    CHECK_THAT(s.error(), Catch::StartsWith(dir.sub("state/volume.db") + ": "));
  }
}

}  // namespace
}  // namespace repwatch
