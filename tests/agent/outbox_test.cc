#include "agent/outbox.h"

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include "agent/state_store.h"

namespace repwatch {
namespace {

namespace fs = std::filesystem;

struct TempDir {
  fs::path path;
  TempDir() {
    char tmpl[] = "/tmp/repwatch_outbox_test.XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

constexpr long long kNow = 1'790'000'000;
constexpr long long kNowMs = kNow * 1000;

// A state directory with the schema, and a way to queue items as the cycle does.
struct Fixture {
  TempDir dir;
  std::unique_ptr<StateStore> store;
  std::unique_ptr<Outbox> outbox;
  Fixture() {
    auto s = StateStore::Open(dir.path.string());
    REQUIRE(s.ok());
    store = std::move(s).value();
    auto o = Outbox::Open(dir.path.string());
    INFO((o.ok() ? "" : o.error()));
    REQUIRE(o.ok());
    outbox = std::move(o).value();
  }
  // Queues n items in one cycle; item i is {"ip":"10.0.<i/256>.<i%256>","pad":"xxx..."}.
  void Enqueue(const std::string& sink, const std::string& type, const std::string& group, int n, long long created = kNow,
               size_t pad = 0, int first = 0) {
    REQUIRE(store->BeginCycle(created).ok());
    for (int i = first; i < first + n; ++i)
      REQUIRE(store
                  ->EnqueueWebhookItem(sink, type, group,
                                       fmt::format(R"({{"ip":"10.0.{}.{}","pad":"{}"}})", i / 256, i % 256,
                                                   std::string(pad, 'x')),
                                       created)
                  .ok());
    REQUIRE(store->EndCycle(created, 0.1, 0, true).ok());
  }
};

// A JSON-ish body: type, group and the items, so tests can read back what went in.
std::string Build(const OutboxContent& c) {
  std::string body = "{\"type\":\"" + c.type + "\",\"group\":\"" + c.group_key + "\",\"items\":[";
  for (size_t i = 0; i < c.items.size(); ++i) body += (i ? "," : "") + c.items[i];
  return body + "]}";
}

OutboxBatch NextBatch(Outbox& o, const std::string& sink, long long now_ms, size_t max_items = 100,
                      size_t max_bytes = Outbox::kDefaultMaxBodyBytes) {
  auto next = o.Next(sink, now_ms, max_items, max_bytes, Build);
  INFO((next.ok() ? "" : next.error()));
  REQUIRE(next.ok());
  REQUIRE(next.value().has_value());
  return *next.value();
}

bool NothingDue(Outbox& o, const std::string& sink, long long now_ms) {
  auto next = o.Next(sink, now_ms, 100, Outbox::kDefaultMaxBodyBytes, Build);
  REQUIRE(next.ok());
  return !next.value().has_value();
}

size_t Count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

TEST_CASE("Outbox: a burst of 500 items goes out as ceil(500 / max_items) batches, same id and bytes on retry",
          "[outbox]") {
  Fixture f;
  f.Enqueue("oncall", "dnsbl.listed", "zen|acme", 500);
  CHECK(f.outbox->Depth("oncall").value().items == 500);
  CHECK(f.outbox->Depth("oncall").value().oldest_created == kNow);

  std::set<std::string> ids;
  long long now = kNowMs;
  int batches = 0;
  while (true) {
    auto next = f.outbox->Next("oncall", now, 100, Outbox::kDefaultMaxBodyBytes, Build);
    REQUIRE(next.ok());
    if (!next.value()) break;
    const OutboxBatch first = *next.value();
    ++batches;
    CHECK(first.items == 100);
    CHECK(Count(first.body, "\"ip\"") == 100);
    CHECK(first.attempts == 0);
    CHECK(first.created == now / 1000);
    CHECK(ids.insert(first.id).second);

    // Two failures: the same batch comes back only when due, with the same id and bytes,
    // and no other batch is formed meanwhile.
    REQUIRE(f.outbox->RecordFailure(first, now + 400, "HTTP 500: boom").ok());
    CHECK(NothingDue(*f.outbox, "oncall", now + 399));
    OutboxBatch again = NextBatch(*f.outbox, "oncall", now + 400);
    CHECK(again.id == first.id);
    CHECK(again.body == first.body);
    CHECK(again.attempts == 1);
    CHECK(again.last_error == "HTTP 500: boom");
    REQUIRE(f.outbox->RecordFailure(again, now + 1000, "timeout").ok());
    OutboxBatch third = NextBatch(*f.outbox, "oncall", now + 5000);
    CHECK(third.id == first.id);
    CHECK(third.body == first.body);
    CHECK(third.attempts == 2);

    REQUIRE(f.outbox->MarkDelivered(third).ok());
    CHECK(f.outbox->Depth("oncall").value().items == 500 - 100 * batches);
    now += 10'000;
  }
  CHECK(batches == 5);
  CHECK(f.outbox->Depth("oncall").value().items == 0);
  CHECK(f.outbox->Depth("oncall").value().oldest_created == 0);
}

TEST_CASE("Outbox: max_items splits a burst; 7 items by 3 -> 3, 3, 1", "[outbox]") {
  Fixture f;
  f.Enqueue("s", "dnsbl.listed", "g", 7);
  std::vector<long long> sizes;
  for (int i = 0; i < 3; ++i) {
    OutboxBatch b = NextBatch(*f.outbox, "s", kNowMs, 3);
    sizes.push_back(b.items);
    REQUIRE(f.outbox->MarkDelivered(b).ok());
  }
  CHECK(sizes == std::vector<long long>{3, 3, 1});
  CHECK(NothingDue(*f.outbox, "s", kNowMs));
}

TEST_CASE("Outbox: bodies stay under max_body_bytes; a single item too big still goes alone", "[outbox]") {
  Fixture f;
  f.Enqueue("s", "dnsbl.listed", "g", 60, kNow, 1000);  // ~1 kB per item: 60 kB in all
  std::vector<long long> sizes;
  long long total = 0;
  while (true) {
    auto next = f.outbox->Next("s", kNowMs, 100, 20000, Build);
    REQUIRE(next.ok());
    if (!next.value()) break;
    CHECK(next.value()->body.size() <= 20000);
    CHECK(Count(next.value()->body, "\"ip\"") == static_cast<size_t>(next.value()->items));
    sizes.push_back(next.value()->items);
    total += next.value()->items;
    REQUIRE(f.outbox->MarkDelivered(*next.value()).ok());
  }
  INFO("batch sizes: " << Catch::Detail::stringify(sizes));
  CHECK(total == 60);
  CHECK(sizes.size() == 4);  // ~1.03 kB per item: 18 or 19 fit in 20 kB, 60 = 3 full + the rest
  for (size_t i = 0; i + 1 < sizes.size(); ++i) CHECK(sizes[i] >= 17);

  f.Enqueue("s", "dnsbl.listed", "g", 1, kNow, 30000);
  OutboxBatch big = NextBatch(*f.outbox, "s", kNowMs, 100, 20000);
  CHECK(big.items == 1);
  CHECK(big.body.size() > 20000);
}

TEST_CASE("Outbox: items of different types, groups or sinks never share a batch", "[outbox]") {
  Fixture f;
  f.Enqueue("a", "dnsbl.listed", "zen|r1", 3, kNow, 0, 0);
  f.Enqueue("a", "dnsbl.listed", "sbl|r1", 3, kNow, 0, 100);
  f.Enqueue("a", "dnsbl.delisted", "zen|r1", 3, kNow, 0, 200);
  f.Enqueue("a", "dnsbl.listed", "zen|r1", 2, kNow, 0, 300);  // later, same group as the first
  f.Enqueue("b", "dnsbl.listed", "zen|r1", 4, kNow, 0, 400);

  std::vector<std::string> seen;
  while (true) {
    auto next = f.outbox->Next("a", kNowMs, 100, Outbox::kDefaultMaxBodyBytes, Build);
    REQUIRE(next.ok());
    if (!next.value()) break;
    const OutboxBatch& b = *next.value();
    const size_t at = b.body.find("\"group\":\"") + 9;
    seen.push_back(fmt::format("{} {} {}", b.type, b.body.substr(at, b.body.find('"', at) - at), b.items));
    REQUIRE(f.outbox->MarkDelivered(b).ok());
  }
  // Oldest group first. The later listings of zen|r1 came after its delisting, so they
  // do not join the first batch: the receiver sees listed, delisted, listed, in order.
  CHECK(seen == std::vector<std::string>{"dnsbl.listed zen|r1 3", "dnsbl.listed sbl|r1 3", "dnsbl.delisted zen|r1 3",
                                         "dnsbl.listed zen|r1 2"});
  CHECK(f.outbox->Depth("b").value().items == 4);
  CHECK(NextBatch(*f.outbox, "b", kNowMs).items == 4);
}

TEST_CASE("Outbox: batches survive a new connection (a restart) with their id, body and schedule", "[outbox]") {
  Fixture f;
  f.Enqueue("s", "dnsbl.listed", "g", 10);
  OutboxBatch b = NextBatch(*f.outbox, "s", kNowMs);
  REQUIRE(f.outbox->RecordFailure(b, kNowMs + 60'000, "connect").ok());
  f.outbox.reset();
  auto reopened = Outbox::Open(f.dir.path.string());
  REQUIRE(reopened.ok());
  Outbox& o = *reopened.value();
  CHECK(NothingDue(o, "s", kNowMs + 59'999));
  OutboxBatch again = NextBatch(o, "s", kNowMs + 60'000);
  CHECK(again.id == b.id);
  CHECK(again.body == b.body);
  CHECK(again.attempts == 1);
}

TEST_CASE("Outbox: disable and enable a sink; depth and oldest item", "[outbox]") {
  Fixture f;
  f.Enqueue("s", "dnsbl.listed", "g", 2, kNow - 300);
  f.Enqueue("s", "zone.down", "z", 1, kNow);
  CHECK(f.outbox->Depth("s").value().items == 3);
  CHECK(f.outbox->Depth("s").value().oldest_created == kNow - 300);
  CHECK(f.outbox->Depth("other").value().items == 0);

  CHECK_FALSE(f.outbox->SinkDisabled("s").value().has_value());
  REQUIRE(f.outbox->DisableSink("s", kNow, "http://x answered 410 Gone").ok());
  CHECK(f.outbox->SinkDisabled("s").value() == std::optional<std::string>("http://x answered 410 Gone"));
  CHECK(f.outbox->Depth("s").value().items == 3);  // items are kept
  REQUIRE(f.outbox->EnableSink("s").ok());
  CHECK_FALSE(f.outbox->SinkDisabled("s").value().has_value());
}

TEST_CASE("Outbox: waits for the cycle's write lock instead of failing", "[outbox]") {
  Fixture f;
  REQUIRE(f.store->BeginCycle(kNow).ok());  // holds the write lock
  REQUIRE(f.store->EnqueueWebhookItem("s", "dnsbl.listed", "g", R"({"ip":"10.0.0.1"})", kNow).ok());
  std::thread cycle([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    REQUIRE(f.store->EndCycle(kNow, 0.3, 1, true).ok());
  });
  const auto t0 = std::chrono::steady_clock::now();
  auto next = f.outbox->Next("s", kNowMs, 100, Outbox::kDefaultMaxBodyBytes, Build);
  const auto waited = std::chrono::steady_clock::now() - t0;
  cycle.join();
  INFO((next.ok() ? "" : next.error()));
  REQUIRE(next.ok());
  REQUIRE(next.value().has_value());
  CHECK(next.value()->items == 1);
  CHECK(waited >= std::chrono::milliseconds(250));
}

TEST_CASE("Outbox: errors name the database path and the step", "[outbox]") {
  TempDir dir;
  auto missing = Outbox::Open((dir.path / "nowhere").string());
  REQUIRE_FALSE(missing.ok());
  CHECK_THAT(missing.error(), Catch::Contains((dir.path / "nowhere" / "repwatch.db").string()));

  // A database without the schema (StateStore::Open never ran on it).
  { std::ofstream touch((dir.path / "repwatch.db").string()); }
  auto bare = Outbox::Open(dir.path.string());
  REQUIRE_FALSE(bare.ok());
  CHECK_THAT(bare.error(), Catch::Contains("repwatch.db: prepare '"));
  CHECK_THAT(bare.error(), Catch::Contains("no such table"));
}

TEST_CASE("NewMessageId: msg_ + 27 base62 characters, never repeated", "[outbox]") {
  std::set<std::string> ids;
  for (int i = 0; i < 2000; ++i) {
    std::string id = NewMessageId();
    REQUIRE(id.size() == 31);
    REQUIRE(id.rfind("msg_", 0) == 0);
    for (char c : id.substr(4)) REQUIRE(std::isalnum(static_cast<unsigned char>(c)));
    ids.insert(id);
  }
  CHECK(ids.size() == 2000);
}

}  // namespace
}  // namespace repwatch
