#include "checks/dnsbl.h"

#include <catch2/catch.hpp>

#include "fakes.h"

using namespace repwatch;
using namespace repwatch::testing;

namespace {

CodeRange Code(uint32_t lo, uint32_t hi, std::string meaning) { return CodeRange{lo, hi, std::move(meaning)}; }
constexpr uint32_t V(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
  return uint32_t{a} << 24 | uint32_t{b} << 16 | uint32_t{c} << 8 | d;
}

DnsblZone Zone(const std::string& name, CatalogueEntry entry = {}, ZoneFamily family = ZoneFamily::kBoth) {
  DnsblZone z;
  z.zone = z.query_zone = name;
  entry.zone = name;
  z.entry = std::move(entry);
  z.family = family;
  return z;
}

CatalogueEntry ZenLike() {
  CatalogueEntry e;
  e.codes = {Code(V(127, 0, 0, 2), V(127, 0, 0, 2), "SBL"), Code(V(127, 0, 0, 4), V(127, 0, 0, 7), "XBL"),
             Code(V(127, 0, 0, 10), V(127, 0, 0, 11), "PBL")};
  e.delist_url = "https://check.spamhaus.org/listed/?searchterm={ip}";
  return e;
}

const IpAddress kIp = IpAddress::Parse("192.0.2.99").value();

}  // namespace

TEST_CASE("query names: reversed octets / nibbles + zone", "[dnsbl]") {
  CHECK(DnsblQueryName(kIp, "zen.spamhaus.org") == "99.2.0.192.zen.spamhaus.org");
  CHECK(DnsblQueryName(IpAddress::Parse("2001:db8:7ca6:22::45").value(), "KEY.sbl.dq.spamhaus.net") ==
        "5.4.0.0.0.0.0.0.0.0.0.0.0.0.0.0.2.2.0.0.6.a.c.7.8.b.d.0.1.0.0.2.KEY.sbl.dq.spamhaus.net");
  CHECK(PositiveTestPoint(Family::kIpv4, "bl.test") == "2.0.0.127.bl.test");
  CHECK(NegativeTestPoint(Family::kIpv4, "bl.test") == "1.0.0.127.bl.test");
  CHECK(PositiveTestPoint(Family::kIpv6, "bl.test") ==
        "2.0.0.0.0.0.f.7.f.f.f.f.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.bl.test");
  CHECK(NegativeTestPoint(Family::kIpv6, "bl.test") ==
        "1.0.0.0.0.0.f.7.f.f.f.f.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.bl.test");
}

TEST_CASE("decoding: clean answers", "[dnsbl]") {
  const DnsblZone z = Zone("zen.test", ZenLike());
  CHECK(DecodeDnsblAnswer(z, kIp, Failure(DnsStatus::kNxDomain)).status == DnsblStatus::kClean);
  CHECK(DecodeDnsblAnswer(z, kIp, Answer({})).status == DnsblStatus::kClean);
  // TXT is decoration: a TXT record without an A record never makes a listing.
  CHECK(DecodeDnsblAnswer(z, kIp, Answer({TxtRecord({"listed!"})})).status == DnsblStatus::kClean);
}

TEST_CASE("decoding: every A record is kept with its meaning", "[dnsbl]") {
  const DnsblZone z = Zone("zen.test", ZenLike());
  auto r = DecodeDnsblAnswer(z, kIp, Answer({ARecord(127, 0, 0, 2), ARecord(127, 0, 0, 4), ARecord(127, 0, 0, 11)}));
  CHECK(r.status == DnsblStatus::kListed);
  CHECK(r.codes == std::vector<std::string>{"127.0.0.2", "127.0.0.4", "127.0.0.11"});
  CHECK(r.meanings == std::vector<std::string>{"SBL", "XBL", "PBL"});
  CHECK(r.delist_url == "https://check.spamhaus.org/listed/?searchterm=192.0.2.99");
  CHECK(r.verdict() == Verdict::kProblem);
  CHECK(r.error.empty());

  auto odd = DecodeDnsblAnswer(z, kIp, Answer({ARecord(127, 0, 0, 42)}));
  CHECK(odd.status == DnsblStatus::kListed);
  CHECK(odd.meanings == std::vector<std::string>{"undocumented return code"});

  auto generic = DecodeDnsblAnswer(Zone("unknown.test"), kIp, Answer({ARecord(127, 0, 0, 3)}));
  CHECK(generic.status == DnsblStatus::kListed);
  CHECK(generic.meanings == std::vector<std::string>{"listed"});
}

TEST_CASE("decoding: error answers are never listed and never clean", "[dnsbl]") {
  CatalogueEntry dbl = ZenLike();
  dbl.errors = {Code(V(127, 0, 1, 255), V(127, 0, 1, 255), "an IP was queried in a domain list")};
  CatalogueEntry uribl;
  uribl.errors = {Code(V(127, 0, 0, 1), V(127, 0, 0, 1), "query refused")};
  CatalogueEntry dnswl;
  dnswl.kind = ZoneKind::kAllow;
  dnswl.errors = {Code(V(127, 0, 0, 255), V(127, 0, 0, 255), "query blocked")};

  struct Case {
    const char* what;
    DnsblZone zone;
    DnsResponse answer;
    std::string error_contains;
  };
  const std::vector<Case> cases = {
      {"Spamhaus typo code", Zone("zen.test", ZenLike()), Answer({ARecord(127, 255, 255, 252)}), "typo"},
      {"Spamhaus open resolver code", Zone("zen.test", ZenLike()), Answer({ARecord(127, 255, 255, 254)}), "resolver"},
      {"Spamhaus rate limit code", Zone("zen.test", ZenLike()), Answer({ARecord(127, 255, 255, 255)}), "many"},
      {"other 127.255.255.x", Zone("zen.test", ZenLike()), Answer({ARecord(127, 255, 255, 1)}), "127.255.255.1"},
      {"DBL IP-in-domain-list", Zone("dbl.test", dbl), Answer({ARecord(127, 0, 1, 255)}), "domain list"},
      {"URIBL refused", Zone("uribl.test", uribl), Answer({ARecord(127, 0, 0, 1)}), "refused"},
      {"DNSWL blocked", Zone("dnswl.test", dnswl), Answer({ARecord(127, 0, 0, 255)}), "blocked"},
      {"outside 127/8", Zone("zen.test", ZenLike()), Answer({ARecord(192, 0, 2, 1)}), "outside 127.0.0.0/8"},
      {"outside 127/8 mixed with a real code", Zone("zen.test", ZenLike()),
       Answer({ARecord(127, 0, 0, 2), ARecord(198, 51, 100, 7)}), "outside"},
      {"SERVFAIL", Zone("zen.test", ZenLike()), Failure(DnsStatus::kServFail), "servfail"},
      {"REFUSED", Zone("zen.test", ZenLike()), Failure(DnsStatus::kRefused), "refused"},
      {"timeout", Zone("zen.test", ZenLike()), Failure(DnsStatus::kTimeout), "timeout"},
      {"other rcode", Zone("zen.test", ZenLike()), Failure(DnsStatus::kOtherRcode), "rcode"},
      {"network", Zone("zen.test", ZenLike()), Failure(DnsStatus::kNetworkError), "network"},
  };
  for (const auto& c : cases) {
    INFO(c.what);
    auto r = DecodeDnsblAnswer(c.zone, kIp, c.answer);
    CHECK(r.status == DnsblStatus::kError);
    CHECK(r.verdict() == Verdict::kError);
    CHECK_THAT(r.error, Catch::Contains(c.error_contains));
  }
}

TEST_CASE("decoding: real codes win over error codes; not-listed values are ignored", "[dnsbl]") {
  auto mixed = DecodeDnsblAnswer(Zone("zen.test", ZenLike()), kIp,
                                 Answer({ARecord(127, 255, 255, 254), ARecord(127, 0, 0, 2)}));
  CHECK(mixed.status == DnsblStatus::kListed);
  CHECK(mixed.codes == std::vector<std::string>{"127.0.0.2"});

  CatalogueEntry quorum;
  quorum.not_listed = {Code(V(127, 0, 0, 0), V(127, 0, 0, 0), "not listed")};
  CHECK(DecodeDnsblAnswer(Zone("quorum.test", quorum), kIp, Answer({ARecord(127, 0, 0, 0)})).status ==
        DnsblStatus::kClean);
}

TEST_CASE("decoding: an allow-list listing is a positive signal", "[dnsbl]") {
  CatalogueEntry wl;
  wl.kind = ZoneKind::kAllow;
  wl.codes = {Code(V(127, 0, 0, 0), V(127, 0, 255, 3), "trusted")};
  auto r = DecodeDnsblAnswer(Zone("wl.test", wl), kIp, Answer({ARecord(127, 0, 10, 2)}));
  CHECK(r.status == DnsblStatus::kListed);
  CHECK(r.allowlist);
  CHECK(r.verdict() == Verdict::kOk);
}

TEST_CASE("zone health from the RFC 5782 test points", "[dnsbl]") {
  const DnsblZone z = Zone("zen.test", ZenLike());
  const auto listed = Answer({ARecord(127, 0, 0, 2)});
  const auto nx = Failure(DnsStatus::kNxDomain);
  struct Case {
    const char* what;
    DnsResponse pos, neg;
    ZoneHealth want;
  };
  const std::vector<Case> cases = {
      {"healthy", listed, nx, ZoneHealth::kOk},
      {"healthy with NODATA negative", listed, Answer({}), ZoneHealth::kOk},
      {"positive NXDOMAIN", nx, nx, ZoneHealth::kNotAnswering},
      {"positive timeout", Failure(DnsStatus::kTimeout), Failure(DnsStatus::kTimeout), ZoneHealth::kNotAnswering},
      {"zone not served (REFUSED)", Failure(DnsStatus::kRefused), Failure(DnsStatus::kRefused),
       ZoneHealth::kNotAnswering},
      {"open resolver refused everywhere", Answer({ARecord(127, 255, 255, 254)}), Answer({ARecord(127, 255, 255, 254)}),
       ZoneHealth::kError},
      {"lists everything", listed, listed, ZoneHealth::kListsEverything},
      {"parked domain answers outside 127/8", Answer({ARecord(192, 0, 2, 80)}), Answer({ARecord(192, 0, 2, 80)}),
       ZoneHealth::kListsEverything},
      {"positive outside 127/8 only", Answer({ARecord(192, 0, 2, 80)}), nx, ZoneHealth::kError},
      {"negative point times out", listed, Failure(DnsStatus::kTimeout), ZoneHealth::kError},
  };
  for (const auto& c : cases) {
    INFO(c.what);
    std::string detail;
    CHECK(AssessTestPoints(z, c.pos, c.neg, &detail) == c.want);
    CHECK(detail.empty() == (c.want == ZoneHealth::kOk));
  }
}

namespace {

struct Fixture {
  Fixture() {
    config.dnsbl.push_back(Zone("good.test", ZenLike()));
    config.dnsbl.push_back(Zone("v4only.test", {}, ZoneFamily::kIpv4));
    config.dnsbl.push_back(Zone("v6only.test", {}, ZoneFamily::kIpv6));
    config.dnsbl.push_back(Zone("everything.test"));
    for (const auto& z : {"good.test", "v4only.test", "everything.test"})
      resolver.Set(PositiveTestPoint(Family::kIpv4, z), rrtype::kA, Answer({ARecord(127, 0, 0, 2)}));
    for (const auto& z : {"good.test", "v6only.test", "everything.test"})
      resolver.Set(PositiveTestPoint(Family::kIpv6, z), rrtype::kA, Answer({ARecord(127, 0, 0, 2)}));
    resolver.Set(NegativeTestPoint(Family::kIpv4, "everything.test"), rrtype::kA, Answer({ARecord(127, 0, 0, 2)}));
    resolver.Set(NegativeTestPoint(Family::kIpv6, "everything.test"), rrtype::kA, Answer({ARecord(127, 0, 0, 2)}));
  }
  CycleReport Begin(DnsblCheck& check) {
    CycleReport cycle;
    bool done = false;
    check.BeginCycle(&cycle, [&] { done = true; });
    while (!done) resolver.Poll(std::chrono::milliseconds(1));
    return cycle;
  }
  IpReport Run(DnsblCheck& check, const std::string& ip) {
    IpReport report;
    Target t{IpAddress::Parse(ip).value(), nullptr};
    bool done = false;
    check.CheckIp(t, &report, [&] { done = true; });
    while (!done) resolver.Poll(std::chrono::milliseconds(1));
    return report;
  }
  Config config;
  FakeClock clock;
  FakeResolver resolver;
};

}  // namespace

TEST_CASE("DnsblCheck: health gates lookups, families select zones, TXT for listings", "[dnsbl]") {
  Fixture f;
  DnsblCheck check(f.config, CheckEnv{f.resolver, f.clock}, {Family::kIpv4, Family::kIpv6});
  CycleReport cycle = f.Begin(check);
  REQUIRE(cycle.zones.size() == 4);
  CHECK(cycle.zones[0].health == ZoneHealth::kOk);
  CHECK(cycle.zones[1].ipv4 == ZoneHealth::kOk);
  CHECK_FALSE(cycle.zones[1].ipv6.has_value());  // an IPv4 zone is never probed for IPv6
  CHECK(cycle.zones[2].ipv6 == ZoneHealth::kOk);
  CHECK(cycle.zones[3].health == ZoneHealth::kListsEverything);
  CHECK_THAT(cycle.zones[3].detail, Catch::Contains("negative test point answered 127.0.0.2"));

  f.resolver.Set("99.2.0.192.good.test", rrtype::kA, Answer({ARecord(127, 0, 0, 2), ARecord(127, 0, 0, 4)}));
  f.resolver.Set("99.2.0.192.good.test", rrtype::kTxt, Answer({TxtRecord({"Listed ", "in SBL"}), TxtRecord({"see url"})}));
  f.resolver.asked.clear();
  IpReport r = f.Run(check, "192.0.2.99");
  REQUIRE(r.dnsbl.has_value());
  REQUIRE(r.dnsbl->size() == 3);  // good, v4only, everything; never v6only
  const auto& good = (*r.dnsbl)[0];
  CHECK(good.zone == "good.test");
  CHECK(good.status == DnsblStatus::kListed);
  CHECK(good.codes == std::vector<std::string>{"127.0.0.2", "127.0.0.4"});
  CHECK(good.txt == "Listed in SBL; see url");
  CHECK((*r.dnsbl)[1].status == DnsblStatus::kClean);
  CHECK((*r.dnsbl)[2].status == DnsblStatus::kError);
  CHECK_THAT((*r.dnsbl)[2].error, Catch::Contains("lists_everything"));
  // The unhealthy zone is not even asked; TXT only for the listing.
  using Q = std::pair<std::string, uint16_t>;
  CHECK(f.resolver.asked == std::vector<Q>{{"99.2.0.192.good.test", rrtype::kA},
                                           {"99.2.0.192.v4only.test", rrtype::kA},
                                           {"99.2.0.192.good.test", rrtype::kTxt}});

  IpReport v6 = f.Run(check, "2001:db8::1");
  REQUIRE(v6.dnsbl->size() == 3);  // good, v6only, everything
  CHECK((*v6.dnsbl)[1].zone == "v6only.test");
  CHECK((*v6.dnsbl)[1].status == DnsblStatus::kClean);
}

TEST_CASE("DnsblCheck: a failed TXT lookup keeps the listing", "[dnsbl]") {
  Fixture f;
  DnsblCheck check(f.config, CheckEnv{f.resolver, f.clock}, {Family::kIpv4});
  f.Begin(check);
  f.resolver.Set("99.2.0.192.good.test", rrtype::kA, Answer({ARecord(127, 0, 0, 2)}));
  f.resolver.Set("99.2.0.192.good.test", rrtype::kTxt, Failure(DnsStatus::kTimeout));
  IpReport r = f.Run(check, "192.0.2.99");
  CHECK((*r.dnsbl)[0].status == DnsblStatus::kListed);
  CHECK((*r.dnsbl)[0].txt.empty());
}

TEST_CASE("DnsblCheck: a family with no targets is not probed", "[dnsbl]") {
  Fixture f;
  DnsblCheck check(f.config, CheckEnv{f.resolver, f.clock}, {Family::kIpv4});
  CycleReport cycle = f.Begin(check);
  for (const auto& q : f.resolver.asked) CHECK_THAT(q.first, !Catch::Contains("f.f.f.f"));
  REQUIRE(cycle.zones.size() == 3);  // v6only.test had nothing to probe
  for (const auto& z : cycle.zones) CHECK(z.zone != "v6only.test");
}
