#include "agent/catalogue.h"

#include <catch2/catch.hpp>

#include <set>
#include <string>

namespace repwatch {
namespace {

constexpr uint32_t Quad(uint32_t a, uint32_t b, uint32_t c, uint32_t d) { return a << 24 | b << 16 | c << 8 | d; }

bool Overlap(const CodeRange& a, const CodeRange& b) { return a.lo <= b.hi && b.lo <= a.hi; }

void CheckRanges(const std::string& zone, const std::vector<CodeRange>& ranges) {
  for (size_t i = 0; i < ranges.size(); ++i) {
    INFO(zone << " range " << i);
    CHECK(ranges[i].lo <= ranges[i].hi);
    CHECK((ranges[i].lo >> 24) == 127);
    CHECK((ranges[i].hi >> 24) == 127);
    CHECK_FALSE(ranges[i].meaning.empty());
    CHECK_FALSE(UniversalErrorCode(ranges[i].hi).has_value());
    for (size_t j = i + 1; j < ranges.size(); ++j) CHECK_FALSE(Overlap(ranges[i], ranges[j]));
  }
}

TEST_CASE("built-in catalogue: at least 25 live lists, unique zones", "[catalogue]") {
  const Catalogue& cat = Catalogue::BuiltIn();
  int live = 0;
  std::set<std::string> zones;
  for (const CatalogueEntry& e : cat.entries()) {
    INFO(e.zone);
    CHECK(zones.insert(e.zone).second);
    CHECK_FALSE(ZoneNameProblem(e.zone).has_value());
    CHECK_FALSE(e.name.empty());
    CHECK(e.key_required == (e.zone.find("{key}") != std::string::npos));
    if (e.dead.empty()) {
      ++live;
      CHECK_FALSE(e.delist_url.empty());
    }
  }
  CHECK(live >= 25);
}

TEST_CASE("built-in catalogue: every code range is well-formed", "[catalogue]") {
  for (const CatalogueEntry& e : Catalogue::BuiltIn().entries()) {
    CheckRanges(e.zone, e.codes);
    CheckRanges(e.zone, e.errors);
    CheckRanges(e.zone, e.not_listed);
    for (const CodeRange& c : e.codes) {
      for (const CodeRange& x : e.errors) CHECK_FALSE(Overlap(c, x));
      for (const CodeRange& x : e.not_listed) CHECK_FALSE(Overlap(c, x));
    }
  }
}

TEST_CASE("built-in catalogue: facts from the reference", "[catalogue]") {
  const Catalogue& cat = Catalogue::BuiltIn();
  struct Want {
    const char* zone;
    ZoneFamily family;
    ZoneKind kind;
  };
  const Want wants[] = {
      {"zen.spamhaus.org", ZoneFamily::kBoth, ZoneKind::kBlock},
      {"{key}.zen.dq.spamhaus.net", ZoneFamily::kBoth, ZoneKind::kBlock},
      {"{key}.authbl.dq.spamhaus.net", ZoneFamily::kBoth, ZoneKind::kBlock},
      {"dbl.spamhaus.org", ZoneFamily::kDomain, ZoneKind::kBlock},
      {"b.barracudacentral.org", ZoneFamily::kIpv4, ZoneKind::kBlock},
      {"bl.spamcop.net", ZoneFamily::kIpv4, ZoneKind::kBlock},
      {"dnsbl-3.uceprotect.net", ZoneFamily::kIpv4, ZoneKind::kBlock},
      {"wl.mailspike.net", ZoneFamily::kIpv4, ZoneKind::kAllow},
      {"list.dnswl.org", ZoneFamily::kBoth, ZoneKind::kAllow},
      {"multi.uribl.com", ZoneFamily::kDomain, ZoneKind::kBlock},
  };
  for (const Want& w : wants) {
    INFO(w.zone);
    const CatalogueEntry* e = cat.Find(w.zone);
    REQUIRE(e != nullptr);
    CHECK(e->family == w.family);
    CHECK(e->kind == w.kind);
  }
  const CatalogueEntry* zen = cat.Find("ZEN.Spamhaus.ORG");  // case-insensitive
  REQUIRE(zen != nullptr);
  CHECK(zen->codes.front().lo == Quad(127, 0, 0, 2));
  CHECK(cat.Find("{key}.zen.dq.spamhaus.net")->key_required);
  CHECK(cat.Find("dbl.spamhaus.org")->errors.at(0).lo == Quad(127, 0, 1, 255));
  CHECK(cat.Find("list.dnswl.org")->errors.at(0).lo == Quad(127, 0, 0, 255));
  CHECK(cat.Find("multi.uribl.com")->errors.at(0).lo == Quad(127, 0, 0, 1));
  CHECK(cat.Find("list.quorum.to")->not_listed.at(0).lo == Quad(127, 0, 0, 0));
  CHECK_FALSE(cat.Find("cbl.abuseat.org")->redundant.empty());
  CHECK(cat.Find("bl.spamcop.net")->delist_url.find("{ip}") != std::string::npos);
  CHECK(cat.Find("no.such.zone.example") == nullptr);
  for (const char* dead : {"dnsbl.sorbs.net", "dnsbl.ahbl.org", "bl.spamcannibal.org", "dul.ru",
                           "dnsbl.cyberlogic.net", "dnsbl.njabl.org", "list.dsbl.org", "dnsbl.inps.de",
                           "ubl.unsubscore.com"}) {
    INFO(dead);
    REQUIRE(cat.Find(dead) != nullptr);
    CHECK_FALSE(cat.Find(dead)->dead.empty());
  }
}

TEST_CASE("Catalogue::Parse reads ranges, errors and not_listed", "[catalogue]") {
  auto cat = Catalogue::Parse(R"([[zone]]
zone = "bl.example.org"
name = "Example"
family = "ipv4"
kind = "allow"
not_listed = ["127.0.0.0"]
[zone.codes]
"127.0.2.2-127.0.2.24" = "young"
"127.0.0.2" = "listed"
[zone.errors]
"127.0.0.1" = "refused"
)",
                              "test.toml");
  REQUIRE(cat.ok());
  const CatalogueEntry& e = cat.value().entries().at(0);
  CHECK(e.kind == ZoneKind::kAllow);
  CHECK(e.family == ZoneFamily::kIpv4);
  REQUIRE(e.codes.size() == 2);
  CHECK(e.codes[0].lo == Quad(127, 0, 0, 2));  // sorted by value
  CHECK(e.codes[1].lo == Quad(127, 0, 2, 2));
  CHECK(e.codes[1].hi == Quad(127, 0, 2, 24));
  CHECK(e.codes[1].Contains(Quad(127, 0, 2, 10)));
  CHECK(e.codes[1].meaning == "young");
  CHECK(e.errors.at(0).meaning == "refused");
  CHECK(e.not_listed.at(0).lo == Quad(127, 0, 0, 0));
}

TEST_CASE("Catalogue::Parse reports every error as origin:line:col", "[catalogue]") {
  auto cat = Catalogue::Parse(R"([[zone]]
zone = "a.example.org"
name = "A"
family = "ipv5"
colour = "red"
[zone.codes]
"127.0.0.9-127.0.0.3" = "backwards"
"10.0.0.2" = "outside 127/8"
[[zone]]
zone = "A.example.org"
name = "dup"
family = "ipv4"
kind = "maybe"
)",
                              "cat.toml");
  REQUIRE_FALSE(cat.ok());
  const std::string& m = cat.error();
  CHECK_THAT(m, Catch::Contains("cat.toml:4:10: zone \"a.example.org\": family must be ipv4, ipv6, both or domain"));
  CHECK_THAT(m, Catch::Contains("cat.toml:5:1: zone[0]: unknown key 'colour'"));
  CHECK_THAT(m, Catch::Contains("cat.toml:7:1: zone \"a.example.org\": bad codes entry \"127.0.0.9-127.0.0.3\""));
  CHECK_THAT(m, Catch::Contains("cat.toml:8:1: zone \"a.example.org\": bad codes entry \"10.0.0.2\""));
  CHECK_THAT(m, Catch::Contains("cat.toml:13:8: zone \"a.example.org\": kind must be block or allow"));
  CHECK_THAT(m, Catch::Contains("cat.toml:9:1: duplicate zone \"a.example.org\""));
}

TEST_CASE("Catalogue::Parse reports TOML syntax errors with position", "[catalogue]") {
  auto cat = Catalogue::Parse("[[zone]]\nzone = \"x.example\n", "bad.toml");
  REQUIRE_FALSE(cat.ok());
  CHECK_THAT(cat.error(), Catch::StartsWith("bad.toml:2:"));
}

TEST_CASE("UniversalErrorCode covers 127.255.255.0/24 only", "[catalogue]") {
  CHECK(UniversalErrorCode(Quad(127, 255, 255, 252)) == "typo in the zone name");
  CHECK_THAT(*UniversalErrorCode(Quad(127, 255, 255, 254)), Catch::Contains("public/open resolver"));
  CHECK(UniversalErrorCode(Quad(127, 255, 255, 255)) == "too many queries (rate limited)");
  CHECK(UniversalErrorCode(Quad(127, 255, 255, 0)) == "error code reserved by the list");
  CHECK_FALSE(UniversalErrorCode(Quad(127, 0, 0, 2)).has_value());
  CHECK_FALSE(UniversalErrorCode(Quad(127, 255, 254, 255)).has_value());
  CHECK_FALSE(UniversalErrorCode(Quad(128, 255, 255, 255)).has_value());
}

TEST_CASE("ZoneNameProblem", "[catalogue]") {
  struct Case {
    const char* zone;
    bool ok;
  };
  const Case cases[] = {
      {"zen.spamhaus.org", true},       {"{key}.zen.dq.spamhaus.net", true}, {"dnsbl-1.uceprotect.net", true},
      {"", false},                      {"localhost", false},                {"zen..spamhaus.org", false},
      {".zen.spamhaus.org", false},     {"zen.spamhaus.org.", false},        {"bad zone.example", false},
      {"-bad.example", false},          {"{key}.{key}.example", false},      {"{key.example", false},
      {"a.b!.example", false},
  };
  for (const Case& c : cases) {
    INFO(c.zone);
    CHECK(ZoneNameProblem(c.zone).has_value() != c.ok);
  }
  CHECK(ZoneNameProblem(std::string(64, 'a') + ".example").has_value());
  CHECK_FALSE(ZoneNameProblem(std::string(63, 'a') + ".example").has_value());
}

TEST_CASE("ZoneFamily names round-trip", "[catalogue]") {
  for (ZoneFamily f : {ZoneFamily::kIpv4, ZoneFamily::kIpv6, ZoneFamily::kBoth, ZoneFamily::kDomain})
    CHECK(ParseZoneFamily(ZoneFamilyName(f)) == f);
  CHECK_FALSE(ParseZoneFamily("IPv4").has_value());
}

}  // namespace
}  // namespace repwatch
