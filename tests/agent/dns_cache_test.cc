#include "agent/dns_cache.h"

#include <catch2/catch.hpp>

#include <optional>

#include "fakes.h"

using namespace repwatch;
using namespace repwatch::testing;
using namespace std::chrono_literals;

namespace {

using Q = std::pair<std::string, uint16_t>;

struct Fixture {
  // Asks through the cache and polls it until the answer has arrived.
  DnsResponse Ask(const std::string& name, uint16_t qtype) {
    std::optional<DnsResponse> out;
    cache.Query(name, qtype, [&](DnsResponse&& r) { out = std::move(r); });
    REQUIRE_FALSE(out.has_value());  // never from inside Query, hits included
    CHECK(cache.Pending() >= 1);
    for (int i = 0; i < 10 && !out; ++i) cache.Poll(0ms);
    REQUIRE(out.has_value());
    CHECK(cache.Pending() == 0);
    return std::move(*out);
  }
  size_t Asked(const std::string& name, uint16_t qtype) const {
    return static_cast<size_t>(std::count(upstream.asked.begin(), upstream.asked.end(), Q{name, qtype}));
  }

  FakeClock clock;
  FakeResolver upstream;
  CachingResolver cache{upstream, clock};
};

}  // namespace

TEST_CASE("CachingResolver: a second identical question is a hit, still delivered from Poll", "[dns_cache]") {
  Fixture f;
  f.upstream.Set("spf.example", rrtype::kTxt, [] {
    DnsResponse r = Answer({TxtRecord({"v=spf1 -all"})});
    r.answers[0].owner = "spf.example";
    r.answers[0].ttl = 300;
    return r;
  }());
  DnsResponse first = f.Ask("spf.example", rrtype::kTxt);
  CHECK(first.status == DnsStatus::kNoError);
  CHECK(f.cache.size() == 1);

  int calls = 0;
  std::optional<DnsResponse> second;
  f.cache.Query("spf.example", rrtype::kTxt, [&](DnsResponse&& r) {
    ++calls;
    second = std::move(r);
  });
  CHECK(calls == 0);
  CHECK(f.cache.Pending() == 1);
  f.cache.Poll(0ms);
  CHECK(calls == 1);
  REQUIRE(second.has_value());
  CHECK(second->status == DnsStatus::kNoError);
  REQUIRE(second->answers.size() == 1);
  CHECK(second->answers[0].strings == std::vector<std::string>{"v=spf1 -all"});
  CHECK(f.upstream.asked.size() == 1);
  CHECK(f.cache.stats().hits == 1);
  CHECK(f.cache.stats().misses == 1);
  CHECK(f.cache.stats().coalesced == 0);
}

TEST_CASE("CachingResolver: identical questions in flight are coalesced", "[dns_cache]") {
  Fixture f;
  f.upstream.Set("helo.example", rrtype::kA, Answer({ARecord("helo.example", 192, 0, 2, 1, 60)}));
  std::vector<DnsResponse> got;
  for (int i = 0; i < 5; ++i) f.cache.Query("helo.example", rrtype::kA, [&](DnsResponse&& r) { got.push_back(r); });
  CHECK(got.empty());
  CHECK(f.upstream.asked.size() == 1);
  CHECK(f.cache.Pending() == 1);  // one question upstream
  f.cache.Poll(0ms);
  REQUIRE(got.size() == 5);
  for (const DnsResponse& r : got) {
    CHECK(r.status == DnsStatus::kNoError);
    REQUIRE(r.answers.size() == 1);
    CHECK(r.answers[0].addr[3] == 1);
  }
  CHECK(f.cache.stats().misses == 1);
  CHECK(f.cache.stats().coalesced == 4);
  CHECK(f.cache.stats().hits == 0);
}

TEST_CASE("CachingResolver: coalesced failures reach every caller and are not kept", "[dns_cache]") {
  Fixture f;
  f.upstream.Set("dead.example", rrtype::kA, Failure(DnsStatus::kTimeout));
  std::vector<DnsStatus> got;
  for (int i = 0; i < 3; ++i) f.cache.Query("dead.example", rrtype::kA, [&](DnsResponse&& r) { got.push_back(r.status); });
  f.cache.Poll(0ms);
  CHECK(got == std::vector<DnsStatus>(3, DnsStatus::kTimeout));
  CHECK(f.cache.size() == 0);
}

TEST_CASE("CachingResolver: answers are kept for their smallest TTL", "[dns_cache]") {
  Fixture f;
  f.upstream.Set("www.example", rrtype::kA,
                 Answer({CnameRecord("www.example", "host.example", 3600), ARecord("host.example", 192, 0, 2, 1, 60),
                         ARecord("host.example", 192, 0, 2, 2, 120)}));
  f.Ask("www.example", rrtype::kA);
  f.clock.Advance(59s);
  f.Ask("www.example", rrtype::kA);
  CHECK(f.Asked("www.example", rrtype::kA) == 1);
  f.clock.Advance(2s);  // 61 s: past the A records' 60 s
  f.Ask("www.example", rrtype::kA);
  CHECK(f.Asked("www.example", rrtype::kA) == 2);
  CHECK(f.cache.stats().hits == 1);
  CHECK(f.cache.stats().misses == 2);
  // The fresh answer is kept again.
  f.Ask("www.example", rrtype::kA);
  CHECK(f.Asked("www.example", rrtype::kA) == 2);
}

TEST_CASE("CachingResolver: NXDOMAIN and NODATA are kept for kNegativeTtl", "[dns_cache]") {
  for (const bool nxdomain : {true, false}) {
    INFO((nxdomain ? "NXDOMAIN" : "NODATA"));
    Fixture f;
    if (!nxdomain) f.upstream.Set("void.example", rrtype::kTxt, Answer({}));
    DnsResponse first = f.Ask("void.example", rrtype::kTxt);
    CHECK(first.status == (nxdomain ? DnsStatus::kNxDomain : DnsStatus::kNoError));
    f.clock.Advance(CachingResolver::kNegativeTtl - 1s);
    DnsResponse hit = f.Ask("void.example", rrtype::kTxt);
    CHECK(hit.status == first.status);
    CHECK(hit.answers.empty());
    CHECK(f.Asked("void.example", rrtype::kTxt) == 1);
    f.clock.Advance(2s);
    f.Ask("void.example", rrtype::kTxt);
    CHECK(f.Asked("void.example", rrtype::kTxt) == 2);
  }
}

TEST_CASE("CachingResolver: failures are never kept", "[dns_cache]") {
  for (const DnsStatus s : {DnsStatus::kTimeout, DnsStatus::kServFail, DnsStatus::kRefused, DnsStatus::kOtherRcode,
                            DnsStatus::kNetworkError}) {
    INFO(DnsStatusName(s));
    Fixture f;
    f.upstream.Set("dead.example", rrtype::kA, Failure(s));
    CHECK(f.Ask("dead.example", rrtype::kA).status == s);
    CHECK(f.Ask("dead.example", rrtype::kA).status == s);
    CHECK(f.Asked("dead.example", rrtype::kA) == 2);
    CHECK(f.cache.size() == 0);
    CHECK(f.cache.stats().hits == 0);
  }
}

TEST_CASE("CachingResolver: a failure does not evict a good answer kept earlier", "[dns_cache]") {
  Fixture f;
  f.upstream.Set("a.example", rrtype::kA, Answer({ARecord("a.example", 192, 0, 2, 1, 600)}));
  f.Ask("a.example", rrtype::kA);
  f.upstream.Set("a.example", rrtype::kA, Failure(DnsStatus::kServFail));
  CHECK(f.Ask("a.example", rrtype::kA).status == DnsStatus::kNoError);  // still the kept answer
  CHECK(f.Asked("a.example", rrtype::kA) == 1);
}

TEST_CASE("CachingResolver: TTL 0 answers are passed on, not kept", "[dns_cache]") {
  Fixture f;
  f.upstream.Set("zero.example", rrtype::kA,
                 Answer({ARecord("zero.example", 192, 0, 2, 1, 300), ARecord("zero.example", 192, 0, 2, 2, 0)}));
  CHECK(f.Ask("zero.example", rrtype::kA).answers.size() == 2);
  CHECK(f.Ask("zero.example", rrtype::kA).answers.size() == 2);
  CHECK(f.Asked("zero.example", rrtype::kA) == 2);
  CHECK(f.cache.size() == 0);
}

TEST_CASE("CachingResolver: Clear() forgets every answer", "[dns_cache]") {
  Fixture f;
  f.upstream.Set("a.example", rrtype::kA, Answer({ARecord("a.example", 192, 0, 2, 1, 600)}));
  f.Ask("a.example", rrtype::kA);
  f.Ask("nx.example", rrtype::kA);
  CHECK(f.cache.size() == 2);
  f.cache.Clear();
  CHECK(f.cache.size() == 0);
  f.Ask("a.example", rrtype::kA);
  f.Ask("nx.example", rrtype::kA);
  CHECK(f.upstream.asked.size() == 4);
  CHECK(f.cache.stats().hits == 0);
}

TEST_CASE("CachingResolver: an answer asked before Clear() reaches its caller but is not kept", "[dns_cache]") {
  Fixture f;
  f.upstream.Set("a.example", rrtype::kA, Answer({ARecord("a.example", 192, 0, 2, 1, 600)}));
  bool answered = false;
  f.cache.Query("a.example", rrtype::kA, [&](DnsResponse&& r) { answered = r.status == DnsStatus::kNoError; });
  f.cache.Clear();  // a new cycle starts while the question is on the wire
  f.cache.Poll(0ms);
  CHECK(answered);
  CHECK(f.cache.size() == 0);
  f.Ask("a.example", rrtype::kA);
  CHECK(f.Asked("a.example", rrtype::kA) == 2);
}

TEST_CASE("CachingResolver: at most max_entries answers are kept", "[dns_cache]") {
  FakeClock clock;
  FakeResolver upstream;
  CachingResolver cache(upstream, clock, 2);
  auto ask = [&](const std::string& name) {
    std::optional<DnsResponse> out;
    cache.Query(name, rrtype::kA, [&](DnsResponse&& r) { out = std::move(r); });
    for (int i = 0; i < 10 && !out; ++i) cache.Poll(0ms);
    REQUIRE(out.has_value());
    return *out;
  };
  upstream.Set("a.example", rrtype::kA, Answer({ARecord("a.example", 192, 0, 2, 1, 60)}));
  upstream.Set("b.example", rrtype::kA, Answer({ARecord("b.example", 192, 0, 2, 2, 600)}));
  upstream.Set("c.example", rrtype::kA, Answer({ARecord("c.example", 192, 0, 2, 3, 600)}));
  ask("a.example");
  ask("b.example");
  CHECK(cache.size() == 2);
  CHECK(ask("c.example").answers.size() == 1);  // passed through, not kept
  CHECK(cache.size() == 2);
  ask("c.example");
  CHECK(upstream.asked.size() == 4);
  ask("a.example");  // still kept
  ask("b.example");
  CHECK(upstream.asked.size() == 4);

  // Once a.example has expired, its place is swept free for c.example.
  clock.Advance(61s);
  ask("c.example");
  CHECK(cache.size() == 2);
  ask("c.example");
  ask("b.example");
  CHECK(upstream.asked.size() == 5);
  CHECK(cache.size() <= 2);
}

TEST_CASE("CachingResolver: keys ignore case; query types are kept apart", "[dns_cache]") {
  Fixture f;
  f.upstream.Set("Mail.Example", rrtype::kA, Answer({ARecord("mail.example", 192, 0, 2, 1, 600)}));
  f.upstream.Set("mail.example", rrtype::kAaaa, Answer({}));
  f.upstream.Set("mail.example", rrtype::kTxt, Answer({TxtRecord({"hello"})}));
  CHECK(f.Ask("Mail.Example", rrtype::kA).answers.size() == 1);
  DnsResponse lower = f.Ask("mail.example", rrtype::kA);
  REQUIRE(lower.answers.size() == 1);  // a hit: the fake would say NXDOMAIN for the lowercase name
  CHECK(lower.answers[0].addr[3] == 1);
  f.Ask("MAIL.EXAMPLE", rrtype::kA);
  CHECK(f.upstream.asked.size() == 1);
  CHECK(f.cache.stats().hits == 2);

  CHECK(f.Ask("mail.example", rrtype::kAaaa).answers.empty());
  CHECK(f.upstream.asked.size() == 2);
  CHECK(f.Ask("mail.example", rrtype::kAaaa).status == DnsStatus::kNoError);  // NODATA, kept
  CHECK(f.upstream.asked.size() == 2);
  f.Ask("mail.example", rrtype::kTxt);  // TTL 0 in the record: not kept, but a different key anyway
  CHECK(f.upstream.asked.size() == 3);
  CHECK(f.cache.stats().misses == 3);
}

TEST_CASE("CachingResolver: callbacks may ask again from inside a callback", "[dns_cache]") {
  Fixture f;
  f.upstream.Set("a.example", rrtype::kA, Answer({ARecord("a.example", 192, 0, 2, 1, 600)}));
  f.Ask("a.example", rrtype::kA);
  int calls = 0;
  f.cache.Query("a.example", rrtype::kA, [&](DnsResponse&&) {
    ++calls;
    f.cache.Query("a.example", rrtype::kA, [&](DnsResponse&&) { ++calls; });
  });
  f.cache.Poll(0ms);
  CHECK(calls == 1);  // the second hit is queued behind, for the next Poll
  CHECK(f.cache.Pending() == 1);
  f.cache.Poll(0ms);
  CHECK(calls == 2);
  CHECK(f.cache.Pending() == 0);
  CHECK(f.upstream.asked.size() == 1);
}

TEST_CASE("CachingResolver: Pending counts hits waiting and the upstream's questions", "[dns_cache]") {
  Fixture f;
  f.upstream.Set("a.example", rrtype::kA, Answer({ARecord("a.example", 192, 0, 2, 1, 600)}));
  f.Ask("a.example", rrtype::kA);
  CHECK(f.cache.Pending() == 0);
  f.cache.Query("a.example", rrtype::kA, [](DnsResponse&&) {});      // hit
  f.cache.Query("b.example", rrtype::kA, [](DnsResponse&&) {});      // upstream
  f.upstream.Query("c.example", rrtype::kA, [](DnsResponse&&) {});   // straight to the upstream
  CHECK(f.cache.Pending() == 3);
  f.cache.Poll(0ms);
  CHECK(f.cache.Pending() == 0);  // one Poll of the cache serves the upstream's own questions too
}
