#include "checks/fcrdns.h"

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include "agent/dns_cache.h"
#include "builders.h"
#include "fakes.h"

using namespace repwatch;
using namespace repwatch::testing;

namespace {

using Q = std::pair<std::string, uint16_t>;

IpAddress Ip(const std::string& text) { return IpAddress::Parse(text).value(); }

// A or AAAA record for `owner` pointing at `ip`.
DnsRecord AddrRecord(const std::string& owner, const std::string& ip) {
  const IpAddress a = Ip(ip);
  const auto& b = a.bytes();
  return a.is_v4() ? ARecord(owner, b[0], b[1], b[2], b[3]) : AaaaRecord(owner, b);
}

// The HELO lookup goes through a cycle cache over the same fake, as in the agent.
struct Fixture {
  // PTR records for `ip` at its reverse name.
  void Ptr(const std::string& ip, const std::vector<std::string>& names) {
    const std::string reverse = Ip(ip).ReverseDnsName();
    std::vector<DnsRecord> records;
    for (const auto& n : names) records.push_back(PtrRecord(reverse, n));
    resolver.Set(reverse, rrtype::kPtr, Answer(records));
  }
  void PtrStatus(const std::string& ip, DnsResponse r) { resolver.Set(Ip(ip).ReverseDnsName(), rrtype::kPtr, r); }
  // Forward records: A or AAAA after the family of the first address.
  void Addr(const std::string& name, const std::vector<std::string>& ips) {
    std::vector<DnsRecord> records;
    for (const auto& ip : ips) records.push_back(AddrRecord(name, ip));
    resolver.Set(name, Ip(ips.front()).is_v4() ? rrtype::kA : rrtype::kAaaa, Answer(records));
  }
  // The usual good case: PTR name <-> address.
  void Host(const std::string& ip, const std::string& name) {
    Ptr(ip, {name});
    Addr(name, {ip});
  }

  FcrdnsReport Run(const std::string& ip) {
    IpReport report;
    Target t{Ip(ip), &range};
    int done = 0;
    check.CheckIp(t, &report, [&] { ++done; });
    CHECK(done == 0);
    for (int i = 0; i < 100 && done == 0; ++i) cache.Poll(std::chrono::milliseconds(1));
    REQUIRE(done == 1);
    cache.Poll(std::chrono::milliseconds(1));
    CHECK(done == 1);
    CHECK(cache.Pending() == 0);
    REQUIRE(report.fcrdns.has_value());
    return *report.fcrdns;
  }
  size_t Asked(const std::string& name, uint16_t qtype) const {
    return static_cast<size_t>(std::count(resolver.asked.begin(), resolver.asked.end(), Q{name, qtype}));
  }

  FakeClock clock;
  FakeResolver resolver;
  CachingResolver cache{resolver, clock};
  FcrdnsCheck check{CheckEnv{resolver, clock, &cache}};
  RangeConfig range = Range("mta", {"192.0.2.0/24", "2001:db8::/64"});
};

bool Has(const HeloReport& h, HeloProblem p) { return std::find(h.problems.begin(), h.problems.end(), p) != h.problems.end(); }

}  // namespace

TEST_CASE("FcrdnsCheck: IPv4 pass", "[fcrdns]") {
  Fixture f;
  f.Host("192.0.2.7", "mail.acme.example");
  FcrdnsReport r = f.Run("192.0.2.7");
  CHECK(r.result == FcrdnsResult::kPass);
  CHECK(FcrdnsResultName(r.result) == "pass");
  CHECK(r.ptr == std::vector<std::string>{"mail.acme.example"});
  CHECK(r.confirmed == "mail.acme.example");
  CHECK(r.reason.empty());
  CHECK_FALSE(r.generic);
  CHECK(r.expected_ptr.empty());
  CHECK(r.expected_ptr_ok);
  REQUIRE(r.helo.has_value());
  CHECK(r.helo->name == "mail.acme.example");  // by default the PTR name
  CHECK(r.helo->ok());
  CHECK(r.helo->detail.empty());
  CHECK(r.verdict() == Verdict::kOk);
  CHECK(f.Asked("7.2.0.192.in-addr.arpa", rrtype::kPtr) == 1);
  CHECK(f.Asked("mail.acme.example", rrtype::kA) >= 1);
  CHECK(f.Asked("mail.acme.example", rrtype::kAaaa) == 0);
}

TEST_CASE("FcrdnsCheck: IPv6 pass through the nibble ip6.arpa name and AAAA", "[fcrdns]") {
  Fixture f;
  const std::string reverse = "5.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa";
  f.resolver.Set(reverse, rrtype::kPtr, Answer({PtrRecord(reverse, "mail.v6.example")}));
  // Written differently, the same 16 bytes: the compare is binary.
  f.Addr("mail.v6.example", {"2001:DB8:0:0::25"});
  FcrdnsReport r = f.Run("2001:db8::25");
  CHECK(r.result == FcrdnsResult::kPass);
  CHECK(r.confirmed == "mail.v6.example");
  CHECK(r.verdict() == Verdict::kOk);
  CHECK(f.Asked(reverse, rrtype::kPtr) == 1);
  CHECK(f.Asked("mail.v6.example", rrtype::kAaaa) >= 1);
  CHECK(f.Asked("mail.v6.example", rrtype::kA) == 0);
}

TEST_CASE("FcrdnsCheck: an IPv6 address whose PTR name has only an A record fails", "[fcrdns]") {
  Fixture f;
  f.Ptr("2001:db8::26", {"bad.v6.example"});
  f.Addr("bad.v6.example", {"192.0.2.26"});
  FcrdnsReport r = f.Run("2001:db8::26");
  CHECK(r.result == FcrdnsResult::kFail);
  CHECK_THAT(r.reason, Catch::Contains("bad.v6.example has no AAAA record"));
}

TEST_CASE("FcrdnsCheck: an AAAA differing in one byte does not confirm", "[fcrdns]") {
  Fixture f;
  f.Ptr("2001:db8::25", {"mail.v6.example"});
  f.Addr("mail.v6.example", {"2001:db8::2:25", "2001:db8::24"});
  FcrdnsReport r = f.Run("2001:db8::25");
  CHECK(r.result == FcrdnsResult::kFail);
  CHECK_THAT(r.reason, Catch::Contains("2001:db8::2:25, 2001:db8::24, not 2001:db8::25"));
}

TEST_CASE("FcrdnsCheck: fail when the PTR name resolves elsewhere", "[fcrdns]") {
  Fixture f;
  f.Ptr("192.0.2.7", {"mail.acme.example"});
  f.Addr("mail.acme.example", {"198.51.100.1"});
  FcrdnsReport r = f.Run("192.0.2.7");
  CHECK(r.result == FcrdnsResult::kFail);
  CHECK(FcrdnsResultName(r.result) == "fail");
  CHECK(r.confirmed.empty());
  CHECK_THAT(r.reason, Catch::Contains("mail.acme.example"));
  CHECK_THAT(r.reason, Catch::Contains("198.51.100.1"));
  CHECK_THAT(r.reason, Catch::Contains("192.0.2.7"));
  CHECK(r.verdict() == Verdict::kProblem);
  // The default HELO is the PTR name, which does not resolve to the address either.
  REQUIRE(r.helo.has_value());
  CHECK(r.helo->problems == std::vector<HeloProblem>{HeloProblem::kWrongAddress});
}

TEST_CASE("FcrdnsCheck: fail when the PTR name has no address", "[fcrdns]") {
  SECTION("NXDOMAIN") {
    Fixture f;
    f.Ptr("192.0.2.13", {"golf.plain.example"});
    FcrdnsReport r = f.Run("192.0.2.13");
    CHECK(r.result == FcrdnsResult::kFail);
    CHECK_THAT(r.reason, Catch::Contains("golf.plain.example has no A record (NXDOMAIN)"));
    CHECK(r.verdict() == Verdict::kProblem);
    REQUIRE(r.helo.has_value());
    CHECK(r.helo->problems == std::vector<HeloProblem>{HeloProblem::kNoAddress});
  }
  SECTION("NODATA") {
    Fixture f;
    f.Ptr("192.0.2.13", {"golf.plain.example"});
    f.resolver.Set("golf.plain.example", rrtype::kA, Answer({}));
    FcrdnsReport r = f.Run("192.0.2.13");
    CHECK(r.result == FcrdnsResult::kFail);
    CHECK_THAT(r.reason, Catch::Contains("golf.plain.example has no A record"));
    CHECK_THAT(r.reason, !Catch::Contains("NXDOMAIN"));
  }
}

TEST_CASE("FcrdnsCheck: no_ptr on NXDOMAIN and on NODATA", "[fcrdns]") {
  for (const bool nxdomain : {true, false}) {
    INFO((nxdomain ? "NXDOMAIN" : "NODATA"));
    Fixture f;
    if (!nxdomain) f.PtrStatus("192.0.2.3", Answer({}));
    FcrdnsReport r = f.Run("192.0.2.3");
    CHECK(r.result == FcrdnsResult::kNoPtr);
    CHECK(FcrdnsResultName(r.result) == "no_ptr");
    CHECK(r.ptr.empty());
    CHECK_THAT(r.reason, Catch::Contains("3.2.0.192.in-addr.arpa"));
    CHECK_THAT(r.reason, Catch::Contains(nxdomain ? "NXDOMAIN" : "no PTR"));
    CHECK(r.verdict() == Verdict::kProblem);
    CHECK_FALSE(r.helo.has_value());  // no PTR and no configured HELO: nothing to check
    CHECK(f.resolver.asked.size() == 1);
  }
}

TEST_CASE("FcrdnsCheck: a PTR answer of another type only is no_ptr", "[fcrdns]") {
  Fixture f;
  f.PtrStatus("192.0.2.3", Answer({TxtRecord({"nope"})}));
  CHECK(f.Run("192.0.2.3").result == FcrdnsResult::kNoPtr);
}

TEST_CASE("FcrdnsCheck: temperror when the PTR lookup fails", "[fcrdns]") {
  for (const DnsStatus s : {DnsStatus::kTimeout, DnsStatus::kServFail, DnsStatus::kRefused}) {
    INFO(DnsStatusName(s));
    Fixture f;
    f.range.expected_ptr = "*.out.acme.example";
    f.PtrStatus("192.0.2.10", Failure(s));
    FcrdnsReport r = f.Run("192.0.2.10");
    CHECK(r.result == FcrdnsResult::kTempError);
    CHECK(FcrdnsResultName(r.result) == "temperror");
    CHECK_THAT(r.reason, Catch::Contains("PTR lookup for 10.2.0.192.in-addr.arpa"));
    CHECK_THAT(r.reason, Catch::Contains(std::string(DnsStatusName(s))));
    CHECK(r.expected_ptr_ok);  // could not tell
    CHECK(r.verdict() == Verdict::kError);
    CHECK(f.resolver.asked.size() == 1);
  }
}

TEST_CASE("FcrdnsCheck: several PTR names, only the second confirms", "[fcrdns]") {
  Fixture f;
  f.Ptr("192.0.2.5", {"one.multi.example", "two.multi.example"});
  f.Addr("one.multi.example", {"192.0.2.205"});
  f.Addr("two.multi.example", {"192.0.2.5"});
  FcrdnsReport r = f.Run("192.0.2.5");
  CHECK(r.result == FcrdnsResult::kPass);
  CHECK(r.ptr == std::vector<std::string>{"one.multi.example", "two.multi.example"});
  CHECK(r.confirmed == "two.multi.example");
  CHECK(r.reason.empty());
  // The default HELO is the confirming name, not the stale first one.
  REQUIRE(r.helo.has_value());
  CHECK(r.helo->name == "two.multi.example");
  CHECK(r.helo->ok());
  CHECK(r.verdict() == Verdict::kOk);
}

TEST_CASE("FcrdnsCheck: several PTR names answered in any order", "[fcrdns]") {
  Fixture f;
  f.resolver.answer_newest_first = true;
  f.Ptr("192.0.2.5", {"one.multi.example", "two.multi.example", "three.multi.example"});
  f.Addr("one.multi.example", {"192.0.2.205"});
  f.Addr("two.multi.example", {"192.0.2.5"});
  f.Addr("three.multi.example", {"192.0.2.5"});
  FcrdnsReport r = f.Run("192.0.2.5");
  CHECK(r.result == FcrdnsResult::kPass);
  CHECK(r.confirmed == "two.multi.example");  // the first confirming name in PTR order
}

TEST_CASE("FcrdnsCheck: at most 10 PTR names are used", "[fcrdns]") {
  Fixture f;
  std::vector<std::string> names;
  for (int i = 1; i <= 12; ++i) names.push_back(fmt::format("n{}.multi.example", i));
  f.Ptr("192.0.2.5", names);
  f.Addr("n12.multi.example", {"192.0.2.5"});  // only the 12th would confirm
  FcrdnsReport r = f.Run("192.0.2.5");
  CHECK(r.ptr == std::vector<std::string>(names.begin(), names.begin() + 10));
  CHECK(r.result == FcrdnsResult::kFail);
  // Forward lookups for the first 10 only; the default HELO (n1, none confirms) reuses n1's answer.
  for (int i = 1; i <= 12; ++i) {
    INFO(names[i - 1]);
    CHECK(f.Asked(names[i - 1], rrtype::kA) == (i <= 10 ? 1u : 0u));
  }
}

TEST_CASE("FcrdnsCheck: duplicate PTR names are asked once", "[fcrdns]") {
  Fixture f;
  f.Ptr("192.0.2.5", {"one.multi.example", "two.multi.example", "one.multi.example"});
  f.Addr("one.multi.example", {"192.0.2.5"});
  f.Addr("two.multi.example", {"192.0.2.5"});
  FcrdnsReport r = f.Run("192.0.2.5");
  CHECK(r.ptr == std::vector<std::string>{"one.multi.example", "two.multi.example"});
  CHECK(r.result == FcrdnsResult::kPass);
  CHECK(f.Asked("two.multi.example", rrtype::kA) == 1);
}

TEST_CASE("FcrdnsCheck: a forward CNAME chain confirms", "[fcrdns]") {
  Fixture f;
  f.Ptr("192.0.2.6", {"charlie.plain.example"});
  // PTR -> alias, alias CNAME -> middle CNAME -> host, host A -> IP; the resolver does not chase.
  f.resolver.Set("charlie.plain.example", rrtype::kA, Answer({CnameRecord("charlie.plain.example", "mid.plain.example")}));
  f.resolver.Set("mid.plain.example", rrtype::kA, Answer({CnameRecord("mid.plain.example", "host.plain.example")}));
  f.Addr("host.plain.example", {"192.0.2.6"});
  FcrdnsReport r = f.Run("192.0.2.6");
  CHECK(r.result == FcrdnsResult::kPass);
  CHECK(r.confirmed == "charlie.plain.example");  // the PTR name, not the end of the chain
  REQUIRE(r.helo.has_value());
  CHECK(r.helo->ok());
}

TEST_CASE("FcrdnsCheck: a forward CNAME to the wrong host names the chain's end", "[fcrdns]") {
  Fixture f;
  f.Ptr("192.0.2.6", {"alias.plain.example"});
  f.resolver.Set("alias.plain.example", rrtype::kA,
                 Answer({CnameRecord("alias.plain.example", "other.plain.example"),
                         ARecord("other.plain.example", 198, 51, 100, 9)}));
  FcrdnsReport r = f.Run("192.0.2.6");
  CHECK(r.result == FcrdnsResult::kFail);
  CHECK_THAT(r.reason, Catch::Contains("alias.plain.example (via other.plain.example) resolves to 198.51.100.9"));
}

TEST_CASE("FcrdnsCheck: an RFC 2317 CNAME on the reverse side is followed", "[fcrdns]") {
  for (const std::string delegated : {"10.0/28.2.0.192.in-addr.arpa", "10.0-15.2.0.192.in-addr.arpa"}) {
    INFO(delegated);
    Fixture f;
    f.resolver.Set("10.2.0.192.in-addr.arpa", rrtype::kPtr,
                   Answer({CnameRecord("10.2.0.192.in-addr.arpa", delegated)}));
    f.resolver.Set(delegated, rrtype::kPtr, Answer({PtrRecord(delegated, "hotel.classless.example")}));
    f.Addr("hotel.classless.example", {"192.0.2.10"});
    FcrdnsReport r = f.Run("192.0.2.10");
    CHECK(r.result == FcrdnsResult::kPass);
    CHECK(r.ptr == std::vector<std::string>{"hotel.classless.example"});
    CHECK(r.confirmed == "hotel.classless.example");
    CHECK(f.Asked(delegated, rrtype::kPtr) == 1);
  }
}

TEST_CASE("FcrdnsCheck: no PTR behind an RFC 2317 CNAME names the delegated name", "[fcrdns]") {
  Fixture f;
  f.resolver.Set("10.2.0.192.in-addr.arpa", rrtype::kPtr,
                 Answer({CnameRecord("10.2.0.192.in-addr.arpa", "10.0/28.2.0.192.in-addr.arpa")}));
  FcrdnsReport r = f.Run("192.0.2.10");
  CHECK(r.result == FcrdnsResult::kNoPtr);
  CHECK_THAT(r.reason, Catch::Contains("10.0/28.2.0.192.in-addr.arpa"));
}

TEST_CASE("FcrdnsCheck: a CNAME loop on the reverse side is temperror", "[fcrdns]") {
  Fixture f;
  f.resolver.Set("9.2.0.192.in-addr.arpa", rrtype::kPtr,
                 Answer({CnameRecord("9.2.0.192.in-addr.arpa", "9.0/28.2.0.192.in-addr.arpa")}));
  f.resolver.Set("9.0/28.2.0.192.in-addr.arpa", rrtype::kPtr,
                 Answer({CnameRecord("9.0/28.2.0.192.in-addr.arpa", "9.2.0.192.in-addr.arpa")}));
  FcrdnsReport r = f.Run("192.0.2.9");
  CHECK(r.result == FcrdnsResult::kTempError);
  CHECK_THAT(r.reason, Catch::Contains("loop"));
  CHECK(r.verdict() == Verdict::kError);
}

TEST_CASE("FcrdnsCheck: a forward lookup that fails", "[fcrdns]") {
  SECTION("and nothing confirms: temperror") {
    Fixture f;
    f.Ptr("192.0.2.12", {"slow.dead.example", "other.multi.example"});
    f.resolver.Set("slow.dead.example", rrtype::kA, Failure(DnsStatus::kTimeout));
    f.Addr("other.multi.example", {"198.51.100.12"});
    FcrdnsReport r = f.Run("192.0.2.12");
    CHECK(r.result == FcrdnsResult::kTempError);
    CHECK_THAT(r.reason, Catch::Contains("A lookup for slow.dead.example: timeout"));
    CHECK_THAT(r.reason, Catch::Contains("other.multi.example resolves to 198.51.100.12"));
    CHECK(r.verdict() == Verdict::kError);
  }
  SECTION("but another name confirms: pass") {
    Fixture f;
    f.Ptr("192.0.2.12", {"slow.dead.example", "three.multi.example"});
    f.resolver.Set("slow.dead.example", rrtype::kA, Failure(DnsStatus::kServFail));
    f.Addr("three.multi.example", {"192.0.2.12"});
    FcrdnsReport r = f.Run("192.0.2.12");
    CHECK(r.result == FcrdnsResult::kPass);
    CHECK(r.confirmed == "three.multi.example");
    CHECK(r.reason.empty());
    REQUIRE(r.helo.has_value());
    CHECK(r.helo->name == "three.multi.example");
    CHECK(r.verdict() == Verdict::kOk);
  }
  SECTION("a forward CNAME loop counts as a failure") {
    Fixture f;
    f.Ptr("192.0.2.12", {"loop.dead.example"});
    f.resolver.Set("loop.dead.example", rrtype::kA, Answer({CnameRecord("loop.dead.example", "loop.dead.example")}));
    FcrdnsReport r = f.Run("192.0.2.12");
    CHECK(r.result == FcrdnsResult::kTempError);
    CHECK_THAT(r.reason, Catch::Contains("loop"));
  }
}

TEST_CASE("FcrdnsCheck: HELO set on the range but not the PTR name", "[fcrdns]") {
  Fixture f;
  f.range.helo = "smtp.acme.example";
  f.Host("192.0.2.7", "mail.acme.example");
  f.Addr("smtp.acme.example", {"192.0.2.7"});
  FcrdnsReport r = f.Run("192.0.2.7");
  CHECK(r.result == FcrdnsResult::kPass);
  REQUIRE(r.helo.has_value());
  CHECK(r.helo->name == "smtp.acme.example");
  CHECK(r.helo->problems == std::vector<HeloProblem>{HeloProblem::kPtrMismatch});
  CHECK(HeloProblemName(HeloProblem::kPtrMismatch) == "ptr_mismatch");
  CHECK_THAT(r.helo->detail, Catch::Contains("not the PTR name mail.acme.example"));
  CHECK(r.verdict() == Verdict::kProblem);
}

TEST_CASE("FcrdnsCheck: HELO equal to the PTR name", "[fcrdns]") {
  Fixture f;
  f.range.helo = "mail.acme.example";
  f.Host("192.0.2.7", "mail.acme.example");
  FcrdnsReport r = f.Run("192.0.2.7");
  REQUIRE(r.helo.has_value());
  CHECK(r.helo->ok());
  CHECK(r.verdict() == Verdict::kOk);
}

TEST_CASE("FcrdnsCheck: a \"{ptr}\" HELO is the PTR name", "[fcrdns]") {
  SECTION("alone") {
    Fixture f;
    f.range.helo = "{ptr}";
    f.Host("192.0.2.16", "mta.out.acme.example");
    FcrdnsReport r = f.Run("192.0.2.16");
    REQUIRE(r.helo.has_value());
    CHECK(r.helo->name == "mta.out.acme.example");
    CHECK(r.helo->ok());
  }
  SECTION("inside a longer name") {
    Fixture f;
    f.range.helo = "helo.{ptr}";
    f.Host("192.0.2.16", "mta.out.acme.example");
    f.Addr("helo.mta.out.acme.example", {"192.0.2.16"});
    FcrdnsReport r = f.Run("192.0.2.16");
    REQUIRE(r.helo.has_value());
    CHECK(r.helo->name == "helo.mta.out.acme.example");
    CHECK(r.helo->problems == std::vector<HeloProblem>{HeloProblem::kPtrMismatch});
  }
  SECTION("with several PTR names: the confirming one") {
    Fixture f;
    f.range.helo = "{ptr}";
    f.Ptr("192.0.2.5", {"one.multi.example", "two.multi.example"});
    f.Addr("one.multi.example", {"192.0.2.205"});
    f.Addr("two.multi.example", {"192.0.2.5"});
    FcrdnsReport r = f.Run("192.0.2.5");
    REQUIRE(r.helo.has_value());
    CHECK(r.helo->name == "two.multi.example");
    CHECK(r.helo->ok());
  }
  SECTION("and no PTR name: nothing to check") {
    Fixture f;
    f.range.helo = "{ptr}";
    FcrdnsReport r = f.Run("192.0.2.3");
    CHECK(r.result == FcrdnsResult::kNoPtr);
    CHECK_FALSE(r.helo.has_value());
  }
}

TEST_CASE("FcrdnsCheck: a HELO that is not a fully qualified name is not looked up", "[fcrdns]") {
  for (const std::string helo : {"localhost", "mail", "[192.0.2.1]", "192.0.2.1", "ipv6:2001:db8::1"}) {
    INFO(helo);
    Fixture f;
    f.range.helo = helo;
    f.Host("192.0.2.7", "mail.acme.example");
    FcrdnsReport r = f.Run("192.0.2.7");
    REQUIRE(r.helo.has_value());
    CHECK(r.helo->name == helo);
    CHECK(Has(*r.helo, HeloProblem::kNotFqdn));
    CHECK(Has(*r.helo, HeloProblem::kPtrMismatch));
    CHECK_THAT(r.helo->detail, Catch::Contains("HELO " + helo + " is"));
    CHECK(r.verdict() == Verdict::kProblem);
    for (const auto& q : f.resolver.asked) CHECK(q.first != helo);
  }
}

TEST_CASE("FcrdnsCheck: a PTR name that is a single label makes a bad default HELO", "[fcrdns]") {
  Fixture f;
  f.Host("192.0.2.20", "mailhost");
  FcrdnsReport r = f.Run("192.0.2.20");
  CHECK(r.result == FcrdnsResult::kPass);
  REQUIRE(r.helo.has_value());
  CHECK(r.helo->problems == std::vector<HeloProblem>{HeloProblem::kNotFqdn});
  CHECK(r.verdict() == Verdict::kProblem);
}

TEST_CASE("FcrdnsCheck: HELO address problems", "[fcrdns]") {
  SECTION("resolves to another address: wrong_address") {
    Fixture f;
    f.Host("192.0.2.21", "india.helo.example");
    f.range.helo = "elsewhere.helo.example";
    f.Addr("elsewhere.helo.example", {"192.0.2.201"});
    FcrdnsReport r = f.Run("192.0.2.21");
    CHECK(r.result == FcrdnsResult::kPass);
    REQUIRE(r.helo.has_value());
    CHECK(Has(*r.helo, HeloProblem::kWrongAddress));
    CHECK(Has(*r.helo, HeloProblem::kPtrMismatch));
    CHECK_THAT(r.helo->detail, Catch::Contains("elsewhere.helo.example resolves to 192.0.2.201, not 192.0.2.21"));
    CHECK(r.verdict() == Verdict::kProblem);
  }
  SECTION("NXDOMAIN: no_address") {
    Fixture f;
    f.range.helo = "missing.helo.example";
    f.Host("192.0.2.23", "lima.helo.example");
    FcrdnsReport r = f.Run("192.0.2.23");
    REQUIRE(r.helo.has_value());
    CHECK(r.helo->problems == std::vector<HeloProblem>{HeloProblem::kNoAddress, HeloProblem::kPtrMismatch});
    CHECK(r.verdict() == Verdict::kProblem);
  }
  SECTION("a timeout is temperror, and alone it is an error, not a problem") {
    // Two PTR names: the first confirms, the second (the configured HELO) does not answer.
    Fixture f;
    f.range.helo = "mike.dead.example";
    f.Ptr("192.0.2.24", {"mike.helo.example", "mike.dead.example"});
    f.Addr("mike.helo.example", {"192.0.2.24"});
    f.resolver.Set("mike.dead.example", rrtype::kA, Failure(DnsStatus::kTimeout));
    FcrdnsReport r = f.Run("192.0.2.24");
    CHECK(r.result == FcrdnsResult::kPass);
    REQUIRE(r.helo.has_value());
    CHECK(r.helo->problems == std::vector<HeloProblem>{HeloProblem::kTempError});
    CHECK(HeloProblemName(HeloProblem::kTempError) == "temperror");
    CHECK_THAT(r.helo->detail, Catch::Contains("A lookup for mike.dead.example: timeout"));
    CHECK(r.verdict() == Verdict::kError);
  }
  SECTION("a timeout with another HELO problem is a problem") {
    Fixture f;
    f.range.helo = "mail.dead.example";
    f.Host("192.0.2.24", "mike.helo.example");
    f.resolver.Set("mail.dead.example", rrtype::kA, Failure(DnsStatus::kTimeout));
    FcrdnsReport r = f.Run("192.0.2.24");
    REQUIRE(r.helo.has_value());
    CHECK(r.helo->problems == std::vector<HeloProblem>{HeloProblem::kTempError, HeloProblem::kPtrMismatch});
    CHECK(r.verdict() == Verdict::kProblem);
  }
}

TEST_CASE("FcrdnsCheck: a HELO on the range is checked even without a PTR", "[fcrdns]") {
  Fixture f;
  f.range.helo = "mail.acme.example";
  f.Addr("mail.acme.example", {"192.0.2.3"});
  FcrdnsReport r = f.Run("192.0.2.3");
  CHECK(r.result == FcrdnsResult::kNoPtr);
  REQUIRE(r.helo.has_value());
  CHECK(r.helo->problems == std::vector<HeloProblem>{HeloProblem::kPtrMismatch});
  CHECK_THAT(r.helo->detail, Catch::Contains("no PTR name"));
}

TEST_CASE("FcrdnsCheck: the HELO lookup goes through the cycle cache", "[fcrdns]") {
  Fixture f;
  f.range.helo = "relay.acme.example";
  f.resolver.Set("relay.acme.example", rrtype::kA,
                 Answer({ARecord("relay.acme.example", 192, 0, 2, 1), ARecord("relay.acme.example", 192, 0, 2, 2)}));
  f.Ptr("192.0.2.1", {"mta1.acme.example"});
  f.Addr("mta1.acme.example", {"192.0.2.1"});
  f.Ptr("192.0.2.2", {"mta2.acme.example"});
  f.Addr("mta2.acme.example", {"192.0.2.2"});
  for (const char* ip : {"192.0.2.1", "192.0.2.2"}) {
    FcrdnsReport r = f.Run(ip);
    CHECK(r.result == FcrdnsResult::kPass);
    REQUIRE(r.helo);
    CHECK(r.helo->problems == std::vector<HeloProblem>{HeloProblem::kPtrMismatch});  // resolves, not the PTR
  }
  // Forward lookups per address go straight to the resolver; the shared HELO is asked once.
  CHECK(f.Asked("mta1.acme.example", rrtype::kA) == 1);
  CHECK(f.Asked("mta2.acme.example", rrtype::kA) == 1);
  CHECK(f.Asked("relay.acme.example", rrtype::kA) == 1);
  CHECK(f.cache.stats().hits == 1);
}

TEST_CASE("FcrdnsCheck: the default HELO reuses the forward lookup; a fixed one works without a cache", "[fcrdns]") {
  FakeClock clock;
  FakeResolver resolver;
  resolver.Set("7.2.0.192.in-addr.arpa", rrtype::kPtr, Answer({PtrRecord("7.2.0.192.in-addr.arpa", "mail.acme.example")}));
  resolver.Set("mail.acme.example", rrtype::kA, Answer({ARecord("mail.acme.example", 192, 0, 2, 7)}));
  resolver.Set("out.acme.example", rrtype::kA, Answer({ARecord("out.acme.example", 192, 0, 2, 7)}));
  FcrdnsCheck check(CheckEnv{resolver, clock});
  RangeConfig range = Range("mta", {"192.0.2.0/24"});
  auto run = [&] {
    IpReport report;
    bool done = false;
    resolver.asked.clear();
    check.CheckIp(Target{Ip("192.0.2.7"), &range}, &report, [&] { done = true; });
    for (int i = 0; i < 100 && !done; ++i) resolver.Poll(std::chrono::milliseconds(1));
    REQUIRE(done);
    return *report.fcrdns;
  };
  FcrdnsReport r = run();
  CHECK(r.result == FcrdnsResult::kPass);
  CHECK(r.helo->ok());
  CHECK(resolver.asked.size() == 2);  // PTR, forward A; the HELO is that same name
  range.helo = "out.acme.example";
  r = run();
  CHECK(r.helo->problems == std::vector<HeloProblem>{HeloProblem::kPtrMismatch});
  CHECK(resolver.asked.size() == 3);  // PTR, forward A, HELO A
}

TEST_CASE("FcrdnsCheck: expected_ptr", "[fcrdns]") {
  SECTION("matched") {
    Fixture f;
    f.range.expected_ptr = "*.out.acme.example";
    f.Host("192.0.2.16", "mta.out.acme.example");
    FcrdnsReport r = f.Run("192.0.2.16");
    CHECK(r.expected_ptr == "*.out.acme.example");
    CHECK(r.expected_ptr_ok);
    CHECK(r.verdict() == Verdict::kOk);
  }
  SECTION("not matched") {
    Fixture f;
    f.range.expected_ptr = "*.out.acme.example";
    f.Host("192.0.2.17", "smtp.acme.example");
    FcrdnsReport r = f.Run("192.0.2.17");
    CHECK(r.result == FcrdnsResult::kPass);
    CHECK_FALSE(r.expected_ptr_ok);
    CHECK(r.verdict() == Verdict::kProblem);
  }
  SECTION("any PTR name may match") {
    Fixture f;
    f.range.expected_ptr = "*.out.acme.example";
    f.Ptr("192.0.2.16", {"smtp.acme.example", "mta.out.acme.example"});
    f.Addr("smtp.acme.example", {"192.0.2.16"});
    FcrdnsReport r = f.Run("192.0.2.16");
    CHECK(r.expected_ptr_ok);
  }
  SECTION("no PTR at all does not match") {
    Fixture f;
    f.range.expected_ptr = "*.out.acme.example";
    FcrdnsReport r = f.Run("192.0.2.3");
    CHECK_FALSE(r.expected_ptr_ok);
  }
}

TEST_CASE("FcrdnsCheck: a generic PTR name that confirms is a pass and a problem", "[fcrdns]") {
  Fixture f;
  f.Host("192.0.2.7", "192-0-2-7.dyn.isp.example");
  FcrdnsReport r = f.Run("192.0.2.7");
  CHECK(r.result == FcrdnsResult::kPass);
  CHECK(r.generic);
  CHECK_THAT(r.generic_reason, Catch::Contains("192-0-2-7.dyn.isp.example"));
  CHECK_THAT(r.generic_reason, Catch::Contains("\"192-0-2-7\""));
  CHECK(r.verdict() == Verdict::kProblem);
}

TEST_CASE("FcrdnsCheck: ExpectedQueries and Name", "[fcrdns]") {
  Fixture f;
  CHECK(f.check.Name() == "fcrdns");
  CHECK(f.check.ExpectedQueries(Target{Ip("192.0.2.7"), &f.range}) == 2);
  CycleReport cycle;
  bool done = false;
  f.check.BeginCycle(&cycle, [&] { done = true; });
  CHECK(done);
}

// --- GenericPtrReason -------------------------------------------------------------

TEST_CASE("GenericPtrReason: generic / dynamic pool names are flagged", "[fcrdns]") {
  struct Case {
    const char* ip;
    const char* name;
    const char* reason_contains;
  };
  const std::vector<Case> cases = {
      {"192.0.2.7", "192-0-2-7.dyn.isp.example", "\"192-0-2-7\""},
      {"192.0.2.7", "7-2-0-192.pool.isp.example", "reversed address as \"7-2-0-192\""},
      {"192.0.2.7", "7.2.0.192.broadband.example", "reversed address as \"7.2.0.192\""},
      {"192.0.2.7", "mail.192.0.2.7.static.example", "\"192.0.2.7\""},
      {"192.0.2.7", "host192000002007.isp.example", "\"192000002007\""},
      {"192.0.2.7", "ip192-000-002-007.isp.example", "\"192-000-002-007\""},
      {"192.0.2.7", "x192027.isp.example", "\"192027\""},
      {"192.0.2.7", "c0000207.dsl.isp.example", "hex as \"c0000207\""},
      {"192.0.2.7", "C0000207.ISP.EXAMPLE", "hex as \"c0000207\""},
      {"192.0.2.7", "pool-192-0-2-7.nycmny.fios.isp.example", "\"192-0-2-7\""},
      {"192.0.2.7", "cpe-192-0-2-7.cable.isp.example", "\"192-0-2-7\""},
      {"192.0.2.7", "ip-192-0-2-7.eu-west-1.compute.internal", "\"192-0-2-7\""},
      {"203.0.113.7", "static-203-0-113-7.isp.example", "contains the address"},
      {"192.0.2.7", "adsl-dynamic-77.isp.example", "keyword \"adsl\""},
      {"192.0.2.7", "ppp-77.isp.example", "keyword \"ppp\""},
      {"192.0.2.7", "77.pppoe.isp.example", "keyword \"pppoe\""},
      {"192.0.2.7", "cable-77-12.isp.example", "keyword \"cable\""},
      {"192.0.2.7", "dhcp-77.isp.example", "keyword \"dhcp\""},
      {"192.0.2.7", "client-77.isp.example", "keyword \"client\""},
      {"192.0.2.7", "customer.77.isp.example", "keyword \"customer\""},
      {"192.0.2.7", "mx.static.isp.example", "keyword \"static\""},
      {"192.0.2.7", "host12.isp.example", "keyword \"host\""},
      {"192.0.2.7", "ip-77.isp.example", "keyword \"ip-\""},
      {"192.0.2.7", "dyn77.isp.example", "keyword \"dyn\""},
      {"192.0.2.7", "mail.dynamic.isp.example", "keyword \"dynamic\""},
      {"192.0.2.7", "xdsl-line.isp.example", "keyword \"xdsl\""},
      {"192.0.2.7", "dialup-77.isp.example", "keyword \"dialup\""},
      {"192.0.2.7", "dial-up-77.isp.example", "keyword \"dial-up\""},
      {"192.0.2.7", "gprs77.mobile.example", "keyword \"gprs\""},
      {"192.0.2.7", "user77.isp.example", "keyword \"user\""},
      {"192.0.2.7", "nat-pool.isp.example", "keyword \"nat\""},
      {"192.0.2.7", "wifi.hotel.example", "keyword \"wifi\""},
      {"192.0.2.7", "77.KABEL.isp.example", "keyword \"kabel\""},
      {"192.0.2.7", "unused-addr.isp.example", "keyword \"unused-addr\""},
      {"192.0.2.7", "123-45-67.isp.example", "mostly digits"},
      {"192.0.2.7", "a1b22c333.isp.example", "mostly digits"},
      {"2001:db8::25", "2001-db8--25.v6.isp.example", "\"2001-db8--25\""},
      {"2001:db8::25", "x20010db8000000000000000000000025.v6.isp.example", "32 hex digits"},
  };
  for (const auto& c : cases) {
    INFO(c.ip << " " << c.name);
    auto why = GenericPtrReason(Ip(c.ip), c.name);
    REQUIRE(why.has_value());
    CHECK_THAT(*why, Catch::Contains(c.reason_contains));
  }
}

TEST_CASE("GenericPtrReason: ordinary mail host names are not flagged", "[fcrdns]") {
  struct Case {
    const char* ip;
    const char* name;
  };
  const std::vector<Case> cases = {
      {"192.0.2.7", "mail.acme.example"},
      {"192.0.2.7", "mx1.example.com"},
      {"192.0.2.7", "smtp-out-3.mail.example"},
      {"192.0.2.7", "mta-07.mailer.example"},
      {"192.0.2.7", "out.example.net"},
      {"192.0.2.7", "mail2.example.org"},
      {"192.0.2.7", "a.mx.example"},
      {"192.0.2.7", "relay.acme.example"},
      {"192.0.2.7", "bounce.news.example.com"},
      {"192.0.2.7", "mail-wm1-f41.mailer.example"},
      {"192.0.2.7", "o1.ptr1234.sender.example"},
      {"192.0.2.7", "mx-b.dynect-free.example"},
      {"192.0.2.7", "smtp7.acme.example"},
      {"192.0.2.7", "hostmaster.acme.example"},
      {"192.0.2.7", "natural.example"},
      {"203.0.113.7", "mail.203.example"},
      {"2001:db8::25", "mail.v6.example"},
      {"2001:db8::25", "mx25.v6.example"},
  };
  for (const auto& c : cases) {
    INFO(c.ip << " " << c.name);
    auto why = GenericPtrReason(Ip(c.ip), c.name);
    CHECK_FALSE(why.has_value());
    if (why) WARN(*why);
  }
}

TEST_CASE("GenericPtrReason: octets must not run into more digits", "[fcrdns]") {
  // 192.0.2.10 is not inside 192-0-2-100 (nor reversed, nor zero-padded).
  CHECK_FALSE(GenericPtrReason(Ip("192.0.2.10"), "relay.192-0-2-100.example").has_value());
  CHECK_FALSE(GenericPtrReason(Ip("192.0.2.10"), "relay.110-2-0-192.example").has_value());
  CHECK_FALSE(GenericPtrReason(Ip("192.0.2.10"), "relay.c000020a0.example").has_value());
  // ...but 192.0.2.100 is.
  CHECK(GenericPtrReason(Ip("192.0.2.100"), "relay.192-0-2-100.example").has_value());
  CHECK(GenericPtrReason(Ip("192.0.2.10"), "relay.192-0-2-10.example").has_value());
  // Letters next to decimal octets do not glue them.
  CHECK(GenericPtrReason(Ip("192.0.2.10"), "relay.ip192-0-2-10x.example").has_value());
}

// --- MatchesNamePattern -----------------------------------------------------------

TEST_CASE("MatchesNamePattern", "[fcrdns]") {
  struct Case {
    const char* pattern;
    const char* name;
    bool match;
  };
  const std::vector<Case> cases = {
      {"*.out.acme.example", "a.out.acme.example", true},
      {"*.out.acme.example", "mta-12.out.acme.example", true},
      {"*.out.acme.example", "out.acme.example", false},  // '*' needs at least one character
      {"*.out.acme.example", ".out.acme.example", false},
      {"*.out.acme.example", "A.OUT.acme.example.", true},
      {"*.OUT.acme.example.", "a.out.acme.example", true},
      {"*.out.acme.example", "x.y.out.acme.example", true},  // dots included
      {"*.out.acme.example", "a.out.acme.example.evil", false},
      {"*.out.acme.example", "a.notout.acme.example", false},
      {"*.out.acme.example", "aout.acme.example", false},
      {"mail*.acme.example", "mail7.acme.example", true},
      {"mail*.acme.example", "mailout.eu.acme.example", true},
      {"mail*.acme.example", "mail.acme.example", false},
      {"mail*.acme.example", "smtp7.acme.example", false},
      {"*", "anything.example", true},
      {"*", "x", true},
      {"*", "", false},
      {"mail.acme.example", "mail.acme.example", true},
      {"mail.acme.example", "MAIL.Acme.Example.", true},
      {"mail.acme.example", "mail2.acme.example", false},
      {"mail.acme.example", "mail.acme.exampl", false},
      {"mail.acme.example", "", false},
      {"mta-*.out.*.example", "mta-1.out.eu.example", true},
      {"mta-*.out.*.example", "mta-1.out..example", false},
      {"*a*", "bab", true},
      {"*a*", "ab", false},
      {"*a*", "ba", false},
      {"*.*", "a.b", true},
      {"*.*", "ab", false},
  };
  for (const auto& c : cases) {
    INFO("pattern \"" << c.pattern << "\" name \"" << c.name << "\"");
    CHECK(MatchesNamePattern(c.pattern, c.name) == c.match);
  }
}

// --- HeloNameProblem --------------------------------------------------------------

TEST_CASE("HeloNameProblem: good host names", "[fcrdns]") {
  for (const std::string& name : std::vector<std::string>{"mail.acme.example", "MAIL.Acme.Example.", "mx-1.a.example", "a.b",
                                 "xn--bcher-kva.example", "123.example.com", std::string(63, 'a') + ".example"}) {
    INFO(name);
    auto problem = HeloNameProblem(name);
    CHECK_FALSE(problem.has_value());
    if (problem) WARN(*problem);
  }
}

TEST_CASE("HeloNameProblem: bad HELO names", "[fcrdns]") {
  struct Case {
    std::string name;
    std::string contains;
  };
  const std::vector<Case> cases = {
      {"", "empty"},
      {".", "empty"},
      {"localhost", "localhost"},
      {"LOCALHOST.", "localhost"},
      {"mail.localhost", "localhost"},
      {"mail", "single label"},
      {"[192.0.2.1]", "address literal"},
      {"[IPv6:2001:db8::1]", "address literal"},
      {"192.0.2.1", "address literal"},
      {"2001:db8::1", "address literal"},
      {std::string(64, 'a') + ".example", "longer than 63"},
      {"mail..acme.example", "empty label"},
      {".acme.example", "empty label"},
      {"mail_1.acme.example", "character '_'"},
      {"mail 1.acme.example", "character ' '"},
      {"mail.acme.example/", "character '/'"},
      {"-mail.acme.example", "starts or ends with '-'"},
      {"mail-.acme.example", "starts or ends with '-'"},
      {std::string(50, 'a') + "." + std::string(50, 'b') + "." + std::string(50, 'c') + "." + std::string(50, 'd') +
           "." + std::string(50, 'e') + ".example",
       "longer than 253"},
  };
  for (const auto& c : cases) {
    INFO("\"" << c.name << "\"");
    auto problem = HeloNameProblem(c.name);
    REQUIRE(problem.has_value());
    CHECK_THAT(*problem, Catch::Contains(c.contains));
  }
}
