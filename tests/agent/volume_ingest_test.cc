#include "agent/volume_ingest.h"

#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include "fakes.h"
#include "temp_dir.h"

namespace repwatch {
namespace {

// FakeClock's wall time is 2026-09-21 14:13:20Z, day 20717; the lines are from that morning.
constexpr long long kToday = 20717;
constexpr long long kTenOClock = kToday * 24 + 10;

const char kRateLimited[] =
    ": SMTP error from remote mail server after end of data: 421-4.7.28 [192.0.2.10] Gmail has detected an "
    "unusual rate of unsolicited mail originating from your IP address.";
const char kUserUnknown[] =
    ": SMTP error from remote mail server after RCPT TO:<bob@yahoo.com>: 550 5.1.1 <bob@yahoo.com>: Recipient "
    "address rejected: User unknown";

std::string EximLine(int id, const std::string& flag, const std::string& rcpt, const std::string& source,
                     const std::string& tail = "") {
  char qid[32];
  std::snprintf(qid, sizeof qid, "1tpAbC-%06d-Xy", id % 1000000);
  std::string line = "2026-09-21 10:00:00 +0000 " + std::string(qid) + " " + flag + " " + rcpt +
                     " R=dnslookup T=remote_smtp H=mx.example.org [198.51.100.25]:25";
  if (!source.empty()) line += " I=[" + source + "]:48372";
  return line + tail;
}

// Line i of a generated log, and what it counts as.
struct Expect {
  uint64_t lines = 0, events = 0, ignored = 0, malformed = 0;
  uint64_t delivered10 = 0, delivered11 = 0, deferred = 0, bounced = 0;
};

std::string GeneratedLine(int i, Expect& e) {
  ++e.lines;
  switch (i % 10) {
    case 0: ++e.events, ++e.deferred; return EximLine(i, "==", "ann@gmail.com", "192.0.2.10", kRateLimited);
    case 1: ++e.events, ++e.bounced; return EximLine(i, "**", "bob@yahoo.com", "192.0.2.10", kUserUnknown);
    case 2: ++e.ignored; return EximLine(i, "<=", "carol@example.org", "");  // an arrival
    case 3: ++e.malformed; return "garbage " + std::to_string(i);
    default:
      ++e.events;
      if (i % 2 == 0) {
        ++e.delivered10;
        return EximLine(i, "=>", "dan@outlook.com", "192.0.2.10");
      }
      ++e.delivered11;
      return EximLine(i, "=>", "eve@gmail.com", "192.0.2.11");
  }
}

// Lines [from, to) of the generated log, each with its newline.
std::string Generate(int from, int to, Expect& e) {
  std::string out;
  for (int i = from; i < to; ++i) out += GeneratedLine(i, e) + "\n";
  return out;
}

void Append(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::app | std::ios::binary);
  f << text;
  REQUIRE(f.good());
}

VolumeConfig EximConfig(const std::string& path) {
  VolumeConfig c;
  VolumeSourceConfig s;
  s.name = "exim";
  s.format = LogFormat::kExim;
  s.path = path;
  c.sources.push_back(s);
  c.poll_interval = std::chrono::milliseconds(20);
  return c;
}

IpAddress Ip(const char* text) { return IpAddress::Parse(text).value(); }

std::unique_ptr<VolumeStore> OpenStore(const std::string& dir) {
  auto s = VolumeStore::Open(dir);
  REQUIRE(s.ok());
  return std::move(s).value();
}

VolumeTotals Today(VolumeStore& store, const char* ip) {
  auto d = store.Days(Ip(ip), kToday, kToday);
  REQUIRE(d.ok());
  auto it = d.value().find(kToday);
  return it == d.value().end() ? VolumeTotals{} : it->second;
}

// The store holds exactly what the generated lines say.
void CheckTotals(VolumeStore& store, const Expect& e) {
  const VolumeTotals a = Today(store, "192.0.2.10"), b = Today(store, "192.0.2.11");
  CHECK(a.delivered == e.delivered10);
  CHECK(a.deferred == e.deferred);
  CHECK(a.bounced == e.bounced);
  CHECK(a.throttled == e.deferred);
  CHECK(b.delivered == e.delivered11);
  CHECK(b.deferred + b.bounced == 0);
}

void CheckStats(const SourceStats& s, const Expect& e) {
  CHECK(s.lines == e.lines);
  CHECK(s.events == e.events);
  CHECK(s.ignored == e.ignored);
  CHECK(s.malformed == e.malformed);
}

uint64_t SizeOf(const std::string& path) { return std::filesystem::file_size(path); }

TEST_CASE("ingester: an Exim and a Postfix log end to end, exact counts", "[volume_ingest]") {
  testing::TempDir dir;
  const std::string exim = dir.sub("mainlog"), postfix = dir.sub("mail.log");
  Append(exim, EximLine(1, "=>", "ann@gmail.com", "192.0.2.10") + "\n" +
                   EximLine(2, "=>", "bob@googlemail.com", "192.0.2.10") + "\n" +
                   EximLine(3, "==", "ann@gmail.com", "192.0.2.10", kRateLimited) + "\n" +
                   EximLine(4, "**", "bob@yahoo.com", "192.0.2.10", kUserUnknown) + "\n" +
                   EximLine(5, "<=", "carol@example.org", "") + "\n" +    // arrival: ignored
                   EximLine(6, "=>", "dan@example.org", "") + "\n" +      // no I=: ignored
                   "2026-09-21 10:00:00 +0000 Start queue run: pid=123\n" +  // ignored
                   "not a log line at all\n" +                               // malformed
                   EximLine(7, "=>", "eve@hotmail.de", "192.0.2.10"));      // still being written
  Append(postfix,
         "2026-09-21T10:30:00+00:00 mx1 postfix-ip2/smtp[2345]: 4F1A2B3C4D: to=<bob@yahoo.com>, "
         "relay=mta5.am0.yahoodns.net[98.136.96.75]:25, delay=1.2, delays=0.1/0/0.5/0.6, dsn=2.0.0, status=sent "
         "(250 ok dirdel)\n"
         "2026-09-21T10:30:01+00:00 mx1 postfix-ip9/smtp[2346]: 4F1A2B3C4E: to=<bob@yahoo.com>, "
         "relay=mta5.am0.yahoodns.net[98.136.96.75]:25, delay=1.2, delays=0.1/0/0.5/0.6, dsn=2.0.0, status=sent "
         "(250 ok dirdel)\n");

  VolumeConfig config = EximConfig(exim);
  VolumeSourceConfig pf;
  pf.format = LogFormat::kPostfix;
  pf.path = postfix;  // no name: the path names it
  pf.tags = {{"postfix-ip2", Ip("192.0.2.20")}};
  config.sources.push_back(pf);

  auto store = OpenStore(dir.sub("state"));
  testing::FakeClock clock;
  VolumeIngester ingester(config, *store, clock);
  REQUIRE(ingester.CatchUp().ok());

  auto stats = ingester.Stats();
  REQUIRE(stats.size() == 2);
  CHECK(stats[0].name == "exim");
  CHECK(stats[0].lines == 8);
  CHECK(stats[0].events == 4);
  CHECK(stats[0].ignored == 3);
  CHECK(stats[0].malformed == 1);
  CHECK(stats[0].long_lines == 0);
  CHECK(stats[0].last_error.empty());
  CHECK(stats[1].name == postfix);
  CHECK(stats[1].lines == 2);
  CHECK(stats[1].events == 1);
  CHECK(stats[1].ignored == 1);  // postfix-ip9 maps to no address

  VolumeTotals a = Today(*store, "192.0.2.10");
  CHECK(a.delivered == 2);
  CHECK(a.deferred == 1);
  CHECK(a.bounced == 1);
  CHECK(a.throttled == 1);
  CHECK(a.attempts_by_group == std::map<std::string, uint64_t>{{"gmail", 3}, {"yahoo", 1}});
  CHECK(a.throttled_by_group == std::map<std::string, uint64_t>{{"gmail", 1}});
  auto hours = store->Hours(Ip("192.0.2.10"), kTenOClock, kTenOClock);
  REQUIRE(hours.ok());
  CHECK(hours.value().at(kTenOClock).attempts() == 4);
  VolumeTotals p = Today(*store, "192.0.2.20");
  CHECK(p.delivered == 1);
  CHECK(p.attempts_by_group == std::map<std::string, uint64_t>{{"yahoo", 1}});

  // The positions are stored: everything but the partial line.
  auto pos = store->Position("exim");
  REQUIRE(pos.ok());
  REQUIRE(pos.value());
  const uint64_t partial = EximLine(7, "=>", "eve@hotmail.de", "192.0.2.10").size();
  CHECK(pos.value()->offset == SizeOf(exim) - partial);
  CHECK(store->Position(postfix).value()->offset == SizeOf(postfix));

  // The partial line completed; nothing new elsewhere.
  Append(exim, "\n");
  REQUIRE(ingester.CatchUp().ok());
  stats = ingester.Stats();
  CHECK(stats[0].lines == 9);
  CHECK(stats[0].events == 5);
  CHECK(stats[1].lines == 2);
  a = Today(*store, "192.0.2.10");
  CHECK(a.delivered == 3);
  CHECK(a.attempts_by_group.at("microsoft") == 1);
  CHECK(store->Position("exim").value()->offset == SizeOf(exim));
}

TEST_CASE("ingester: a big log in batches, rotation and copytruncate counted", "[volume_ingest]") {
  testing::TempDir dir;
  const std::string log = dir.sub("mainlog");
  Expect e;
  Append(log, Generate(0, 120'003, e));  // three batches of at most 50,000 lines
  auto store = OpenStore(dir.sub("state"));
  testing::FakeClock clock;
  VolumeIngester ingester(EximConfig(log), *store, clock);
  REQUIRE(ingester.CatchUp().ok());
  CheckStats(ingester.Stats()[0], e);
  CheckTotals(*store, e);
  CHECK(store->Position("exim").value()->offset == SizeOf(log));

  // Rotation by rename: lines written to the old file after the rename are counted too.
  Append(log, Generate(120'003, 120'010, e));
  std::filesystem::rename(log, dir.sub("mainlog.1"));
  Append(dir.sub("mainlog.1"), Generate(120'010, 120'020, e));
  Append(log, Generate(120'020, 120'035, e));
  REQUIRE(ingester.CatchUp().ok());
  CheckStats(ingester.Stats()[0], e);
  CheckTotals(*store, e);
  CHECK(ingester.Stats()[0].rotations == 1);

  // copytruncate.
  std::filesystem::resize_file(log, 0);
  Append(log, Generate(120'035, 120'040, e));
  REQUIRE(ingester.CatchUp().ok());
  CheckStats(ingester.Stats()[0], e);
  CheckTotals(*store, e);
  CHECK(ingester.Stats()[0].truncations == 1);
  CHECK(store->Position("exim").value()->offset == SizeOf(log));
}

TEST_CASE("ingester: restart mid-file and across a rotation, no line lost or counted twice", "[volume_ingest]") {
  testing::TempDir dir;
  const std::string log = dir.sub("mainlog");
  const std::string state = dir.sub("state");
  testing::FakeClock clock;
  Expect e;
  std::string first = Generate(0, 1000, e);
  Expect tail_of_line;  // the line being written when we stop
  std::string next = GeneratedLine(1000, tail_of_line);
  Append(log, first + next.substr(0, 40));
  {
    auto store = OpenStore(state);
    VolumeIngester ingester(EximConfig(log), *store, clock);
    REQUIRE(ingester.CatchUp().ok());
    CheckStats(ingester.Stats()[0], e);
    CheckTotals(*store, e);
  }
  // While down: the line completed, more lines, a rotation, and a new file.
  Append(log, next.substr(40) + "\n");
  e.lines += tail_of_line.lines, e.events += tail_of_line.events, e.ignored += tail_of_line.ignored;
  e.malformed += tail_of_line.malformed, e.deferred += tail_of_line.deferred, e.bounced += tail_of_line.bounced;
  e.delivered10 += tail_of_line.delivered10, e.delivered11 += tail_of_line.delivered11;
  Expect more;  // counted by the second run only
  std::string second = Generate(1001, 1500, more);
  Append(log, second);
  std::filesystem::rename(log, dir.sub("mainlog.1"));
  std::string third = Generate(1500, 2000, more);
  Append(log, third);
  {
    auto store = OpenStore(state);
    VolumeIngester ingester(EximConfig(log), *store, clock);
    REQUIRE(ingester.CatchUp().ok());
    const SourceStats s = ingester.Stats()[0];
    CHECK(s.lines == 1 + more.lines);
    CHECK(s.rotations == 1);
    Expect all = e;
    all.lines += more.lines, all.events += more.events, all.deferred += more.deferred, all.bounced += more.bounced;
    all.delivered10 += more.delivered10, all.delivered11 += more.delivered11;
    CheckTotals(*store, all);
    CHECK(store->Position("exim").value()->offset == SizeOf(log));
  }
  // A third run with nothing new adds nothing.
  auto store = OpenStore(state);
  const VolumeTotals before = Today(*store, "192.0.2.10");
  VolumeIngester ingester(EximConfig(log), *store, clock);
  REQUIRE(ingester.CatchUp().ok());
  CHECK(ingester.Stats()[0].lines == 0);
  CHECK(Today(*store, "192.0.2.10").attempts() == before.attempts());
}

TEST_CASE("ingester: a PowerMTA file resumed mid-file still knows its header", "[volume_ingest]") {
  testing::TempDir dir;
  const std::string acct = dir.sub("acct.csv");
  const std::string state = dir.sub("state");
  VolumeConfig config;
  VolumeSourceConfig s;
  s.name = "pmta";
  s.format = LogFormat::kPowerMta;
  s.path = acct;
  config.sources.push_back(s);
  auto record = [](const char* type, const char* rcpt, const char* diag) {
    return std::string(type) + ",2026-09-21 10:00:00+0000," + rcpt + ",\"" + diag + "\",192.0.2.30\n";
  };
  Append(acct, "type,timeLogged,rcpt,dsnDiag,dlvSourceIp\n" + record("d", "a@gmail.com", "smtp;250 ok") +
                   record("d", "b@gmail.com", "smtp;250 ok"));
  testing::FakeClock clock;
  {
    auto store = OpenStore(state);
    VolumeIngester ingester(config, *store, clock);
    REQUIRE(ingester.CatchUp().ok());
    CHECK(ingester.Stats()[0].events == 2);
  }
  Append(acct, record("b", "c@yahoo.com", "smtp;550 5.1.1 user unknown") + record("d", "d@gmail.com", "smtp;250 ok") +
                   record("t", "e@gmail.com", "smtp;421 4.7.28 unusual rate of unsolicited mail, try again later"));
  auto store = OpenStore(state);
  VolumeIngester ingester(config, *store, clock);
  REQUIRE(ingester.CatchUp().ok());
  const SourceStats st = ingester.Stats()[0];
  CHECK(st.lines == 3);
  CHECK(st.events == 3);
  CHECK(st.malformed == 0);
  const VolumeTotals t = Today(*store, "192.0.2.30");
  CHECK(t.delivered == 3);
  CHECK(t.bounced == 1);
  CHECK(t.deferred == 1);
  CHECK(t.throttled == 1);
}

TEST_CASE("ingester: kill -9 at any moment, then a restart: exact totals", "[volume_ingest]") {
  testing::TempDir dir;
  const std::string log = dir.sub("mainlog");
  Expect e;
  Append(log, Generate(0, 150'000, e));
  int interrupted = 0, mid_file = 0;
  // Killed 0, 3, 20 and 60 ms after its first batch was committed (150,000 lines are three).
  for (int delay_ms : {0, 3, 20, 60}) {
    const std::string state = dir.sub("state" + std::to_string(delay_ms));
    { OpenStore(state); }  // created before the child starts
    const pid_t child = fork();
    REQUIRE(child >= 0);
    if (child == 0) {
      testing::FakeClock clock;
      auto store = VolumeStore::Open(state);
      if (!store.ok()) _exit(2);
      VolumeIngester ingester(EximConfig(log), *store.value(), clock);
      _exit(ingester.CatchUp().ok() ? 0 : 1);
    }
    {
      auto watch = OpenStore(state);
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
      while (!watch->Position("exim").value() && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    kill(child, SIGKILL);
    int status = 0;
    REQUIRE(waitpid(child, &status, 0) == child);
    if (WIFSIGNALED(status)) ++interrupted;
    else CHECK(WEXITSTATUS(status) == 0);

    auto store = OpenStore(state);
    const uint64_t before = Today(*store, "192.0.2.10").attempts() + Today(*store, "192.0.2.11").attempts();
    INFO("killed " << delay_ms << " ms after the first commit with " << before << " attempts stored");
    if (before > 0 && before < e.events) ++mid_file;
    testing::FakeClock clock;
    VolumeIngester ingester(EximConfig(log), *store, clock);
    REQUIRE(ingester.CatchUp().ok());
    CheckTotals(*store, e);
    CHECK(ingester.Stats()[0].events + before == e.events);
    CHECK(store->Position("exim").value()->offset == SizeOf(log));
  }
  CHECK(interrupted > 0);
  CHECK(mid_file > 0);
}

TEST_CASE("ingester: a batch the store refuses is read again, not lost", "[volume_ingest]") {
  testing::TempDir dir;
  const std::string log = dir.sub("mainlog");
  const std::string state = dir.sub("state");
  Expect e;
  Append(log, Generate(0, 100, e));
  auto store = OpenStore(state);
  testing::FakeClock clock;
  VolumeIngester ingester(EximConfig(log), *store, clock);

  // Another process holds the write lock past the busy timeout.
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open((state + "/volume.db").c_str(), &db) == SQLITE_OK);
  REQUIRE(sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK);
  Status failed = ingester.CatchUp();
  CHECK_FALSE(failed.ok());
  CHECK_THAT(failed.message(), Catch::Contains("volume.db") && Catch::Contains("locked"));
  CHECK(ingester.Stats()[0].last_error == failed.message());
  CHECK(ingester.Stats()[0].lines == 0);
  REQUIRE(sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr) == SQLITE_OK);
  sqlite3_close(db);

  Append(log, Generate(100, 150, e));
  REQUIRE(ingester.CatchUp().ok());
  CheckStats(ingester.Stats()[0], e);
  CheckTotals(*store, e);
  CHECK(ingester.Stats()[0].last_error.empty());
}

TEST_CASE("ingester: an unreadable source is reported, a missing one waited for, then reported after a minute", "[volume_ingest]") {
  testing::TempDir dir;
  std::filesystem::create_directory(dir.sub("mainlog"));
  VolumeConfig config = EximConfig(dir.sub("mainlog"));
  VolumeSourceConfig missing;
  missing.name = "later";
  missing.format = LogFormat::kExim;
  missing.path = dir.sub("not-yet.log");
  config.sources.push_back(missing);
  auto store = OpenStore(dir.sub("state"));
  testing::FakeClock clock;
  VolumeIngester ingester(config, *store, clock);
  Status s = ingester.CatchUp();
  REQUIRE_FALSE(s.ok());
  CHECK(s.message() == "cannot read " + dir.sub("mainlog") + ": Is a directory");
  auto stats = ingester.Stats();
  CHECK(stats[0].last_error == s.message());
  CHECK(stats[1].last_error.empty());
  CHECK(store->Position("later").value() == std::nullopt);  // nothing stored for a file never seen

  // Missing for a minute: still waited for, but now reported (a wrong path shows).
  clock.Advance(std::chrono::seconds(59));
  CHECK_FALSE(ingester.CatchUp().ok());
  CHECK(ingester.Stats()[1].last_error.empty());
  clock.Advance(std::chrono::seconds(1));
  CHECK_FALSE(ingester.CatchUp().ok());
  CHECK(ingester.Stats()[1].last_error ==
        dir.sub("not-yet.log") + ": no such file for 60 s or more (still waiting for it)");

  Expect e;
  Append(dir.sub("not-yet.log"), Generate(0, 20, e));
  CHECK_FALSE(ingester.CatchUp().ok());  // the directory is still there
  CheckStats(ingester.Stats()[1], e);
  CHECK(ingester.Stats()[1].last_error.empty());  // there now: the error clears
  CheckTotals(*store, e);
}

TEST_CASE("ingester: the thread follows appended lines until stopped", "[volume_ingest]") {
  testing::TempDir dir;
  const std::string log = dir.sub("mainlog");
  auto store = OpenStore(dir.sub("state"));
  testing::FakeClock clock;
  VolumeIngester ingester(EximConfig(log), *store, clock);
  ingester.Start();
  Expect e;
  auto wait_for = [&](uint64_t lines) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (ingester.Stats()[0].lines < lines && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    return ingester.Stats()[0].lines;
  };
  Append(log, Generate(0, 30, e));
  CHECK(wait_for(30) == 30);
  Append(log, Generate(30, 45, e));
  CHECK(wait_for(45) == 45);
  ingester.Stop();
  Append(log, Generate(45, 50, e));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  CHECK(ingester.Stats()[0].lines == 45);
  REQUIRE(ingester.CatchUp().ok());  // still works after Stop()
  CheckStats(ingester.Stats()[0], e);
  CheckTotals(*store, e);
}

}  // namespace
}  // namespace repwatch
