#include "checks/spf_eval.h"

#include <arpa/inet.h>
#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <optional>

#include "fakes.h"

using namespace repwatch;
using namespace repwatch::testing;

namespace {

// Zone data for the FakeResolver, with owners set as FollowCnames expects.
class SpfZone {
 public:
  explicit SpfZone(FakeResolver& r) : r_(r) {}

  SpfZone& Txt(const std::string& name, std::vector<std::vector<std::string>> records) {
    std::vector<DnsRecord> rs;
    for (auto& strings : records) {
      DnsRecord rec;
      rec.type = rrtype::kTxt;
      rec.owner = name;
      rec.strings = std::move(strings);
      rs.push_back(std::move(rec));
    }
    r_.Set(name, rrtype::kTxt, Answer(std::move(rs)));
    return *this;
  }
  SpfZone& Spf(const std::string& name, const std::string& record) { return Txt(name, {{record}}); }
  SpfZone& Addr(const std::string& name, std::vector<std::string> addresses) {
    std::vector<DnsRecord> a, aaaa;
    for (const std::string& text : addresses) {
      DnsRecord rec;
      rec.owner = name;
      if (inet_pton(AF_INET, text.c_str(), rec.addr.data()) == 1) {
        rec.type = rrtype::kA;
        a.push_back(rec);
      } else {
        REQUIRE(inet_pton(AF_INET6, text.c_str(), rec.addr.data()) == 1);
        rec.type = rrtype::kAaaa;
        aaaa.push_back(rec);
      }
    }
    r_.Set(name, rrtype::kA, Answer(a));
    r_.Set(name, rrtype::kAaaa, Answer(aaaa));
    return *this;
  }
  SpfZone& Mx(const std::string& name, const std::vector<std::string>& hosts) {
    std::vector<DnsRecord> rs;
    for (const std::string& host : hosts) {
      DnsRecord rec;
      rec.type = rrtype::kMx;
      rec.owner = name;
      rec.target = host;
      rec.preference = 10;
      rs.push_back(rec);
    }
    r_.Set(name, rrtype::kMx, Answer(rs));
    return *this;
  }
  SpfZone& Cname(const std::string& name, uint16_t type, const std::string& target) {
    DnsRecord rec;
    rec.type = rrtype::kCname;
    rec.owner = name;
    rec.target = target;
    r_.Set(name, type, Answer({rec}));
    return *this;
  }
  SpfZone& Fail(const std::string& name, uint16_t type, DnsStatus status) {
    r_.Set(name, type, Failure(status));
    return *this;
  }

 private:
  FakeResolver& r_;
};

SpfRequest Request(const std::string& ip, const std::string& domain = "acme.example") {
  SpfRequest q;
  q.ip = IpAddress::Parse(ip).value();
  q.domain = domain;
  q.sender = "bounce@" + domain;
  q.helo = "mail.acme.example";
  return q;
}

// Runs one evaluation to the end; fails the test if done() runs inside CheckHost, runs
// twice, or never runs.
SpfOutcome Run(FakeResolver& resolver, const SpfRequest& request) {
  SpfEvaluator evaluator(resolver);
  int calls = 0;
  bool inside = true;
  std::optional<SpfOutcome> out;
  evaluator.CheckHost(request, [&](SpfOutcome o) {
    CHECK_FALSE(inside);
    ++calls;
    out = std::move(o);
  });
  inside = false;
  CHECK(calls == 0);
  for (int i = 0; i < 200 && resolver.Pending() > 0; ++i) resolver.Poll(std::chrono::milliseconds(0));
  REQUIRE(calls == 1);
  return *out;
}

bool Asked(const FakeResolver& r, const std::string& name, uint16_t type) {
  return std::find(r.asked.begin(), r.asked.end(), std::make_pair(name, type)) != r.asked.end();
}

}  // namespace

TEST_CASE("SPF: result names", "[spf]") {
  CHECK(SpfResultName(SpfResult::kNone) == "none");
  CHECK(SpfResultName(SpfResult::kNeutral) == "neutral");
  CHECK(SpfResultName(SpfResult::kPass) == "pass");
  CHECK(SpfResultName(SpfResult::kFail) == "fail");
  CHECK(SpfResultName(SpfResult::kSoftfail) == "softfail");
  CHECK(SpfResultName(SpfResult::kTemperror) == "temperror");
  CHECK(SpfResultName(SpfResult::kPermerror) == "permerror");
}

TEST_CASE("SPF: record selection and parsing", "[spf]") {
  CHECK(spf::IsSpfRecord("v=spf1"));
  CHECK(spf::IsSpfRecord("V=SPF1 -all"));
  CHECK_FALSE(spf::IsSpfRecord("v=spf10 -all"));
  CHECK_FALSE(spf::IsSpfRecord("v=spf1-all"));
  CHECK_FALSE(spf::IsSpfRecord(" v=spf1 -all"));

  auto r = spf::ParseRecord("v=spf1 a/24//64 mx:mx.acme.example ~ip4:192.0.2.0/24 ip6:2001:db8::/32 -all exp=why.%{d}");
  REQUIRE(r.ok());
  REQUIRE(r.value().terms.size() == 5);
  CHECK(r.value().terms[0].cidr4 == 24);
  CHECK(r.value().terms[0].cidr6 == 64);
  CHECK(r.value().terms[2].qualifier == SpfResult::kSoftfail);
  CHECK(r.value().terms[4].qualifier == SpfResult::kFail);
  CHECK(r.value().exp.has_value());
  CHECK_FALSE(r.value().redirect.has_value());

  CHECK(spf::ParseRecord("v=spf1 ip5:1.2.3.4 -all").error() == "unknown mechanism 'ip5:1.2.3.4'");
  CHECK(spf::ParseRecord("v=spf1 ip4:1.2.3.4/032").error().find("'ip4:1.2.3.4/032'") != std::string::npos);
  CHECK_FALSE(spf::ParseRecord("v=spf1 ip4:01.2.3.4").ok());
  CHECK_FALSE(spf::ParseRecord("v=spf1 a:example.com:8080").ok());
  CHECK_FALSE(spf::ParseRecord("v=spf1 exp=a.example exp=b.example").ok());
  CHECK_FALSE(spf::ParseRecord("v=spf1 foo=%{x}").ok());
  CHECK(spf::ParseRecord("v=spf1 foo=bar -all").ok());  // unknown modifiers are ignored
  CHECK(spf::ParseRecord("v=spf1 a:x.example\tb").error().find("control character") != std::string::npos);
}

TEST_CASE("SPF: macro expansion follows the RFC 7208 §7.4 examples", "[spf]") {
  spf::MacroValues v;
  v.sender = "strong-bad@email.example.com";
  v.local = "strong-bad";
  v.sender_domain = v.domain = "email.example.com";
  v.ip = IpAddress::Parse("192.0.2.3").value();
  v.helo = "mx.example.org";
  const auto expand = [&](const std::string& text) {
    auto m = spf::ParseMacroString(text, spf::MacroContext::kExplanation);
    REQUIRE(m.ok());
    return spf::ExpandMacros(m.value(), v);
  };
  CHECK(expand("%{s}") == "strong-bad@email.example.com");
  CHECK(expand("%{o}") == "email.example.com");
  CHECK(expand("%{d}") == "email.example.com");
  CHECK(expand("%{d4}") == "email.example.com");
  CHECK(expand("%{d3}") == "email.example.com");
  CHECK(expand("%{d2}") == "example.com");
  CHECK(expand("%{d1}") == "com");
  CHECK(expand("%{dr}") == "com.example.email");
  CHECK(expand("%{d2r}") == "example.email");
  CHECK(expand("%{l}") == "strong-bad");
  CHECK(expand("%{l-}") == "strong.bad");
  CHECK(expand("%{lr}") == "strong-bad");
  CHECK(expand("%{lr-}") == "bad.strong");
  CHECK(expand("%{l1r-}") == "strong");
  CHECK(expand("%{ir}.%{v}._spf.%{d2}") == "3.2.0.192.in-addr._spf.example.com");
  CHECK(expand("%{lr-}.lp._spf.%{d2}") == "bad.strong.lp._spf.example.com");
  CHECK(expand("%{lr-}.lp.%{ir}.%{v}._spf.%{d2}") == "bad.strong.lp.3.2.0.192.in-addr._spf.example.com");
  CHECK(expand("%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}") == "3.2.0.192.in-addr.strong.lp._spf.example.com");
  CHECK(expand("%{d2}.trusted-domains.example.net") == "example.com.trusted-domains.example.net");
  CHECK(expand("%%%_%-") == "% %20");
  CHECK(expand("%{S}") == "strong-bad%40email.example.com");
  CHECK(expand("%{c} at %{t} by %{r}") == "192.0.2.3 at 0 by unknown");
  v.ip = IpAddress::Parse("2001:db8::cb01").value();
  // Uppercase nibbles, as the RFC 7208 test suite expects (DNS does not care).
  CHECK(expand("%{ir}.%{v}._spf.%{d2}") ==
        "1.0.B.C.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.B.D.0.1.0.0.2.ip6._spf.example.com");
  CHECK(expand("%{c}") == "2001:db8::cb01");

  CHECK_FALSE(spf::ParseMacroString("%{r}", spf::MacroContext::kDomainSpec).ok());  // exp-only letter
  CHECK_FALSE(spf::ParseMacroString("%{d0}", spf::MacroContext::kDomainSpec).ok());
  CHECK_FALSE(spf::ParseMacroString("%{x}", spf::MacroContext::kDomainSpec).ok());
  CHECK_FALSE(spf::ParseMacroString("100%", spf::MacroContext::kDomainSpec).ok());
  CHECK_FALSE(spf::ParseMacroString("%{d", spf::MacroContext::kDomainSpec).ok());
}

TEST_CASE("SPF: expanded names are truncated from the left to 253 characters", "[spf]") {
  const std::string label(60, 'x');
  const std::string long_name = label + "." + label + "." + label + "." + label + "." + label + ".example.com.";
  auto name = spf::ToQueryName(long_name);
  REQUIRE(name);
  CHECK(name->size() <= 253);
  CHECK(name->ends_with(label + ".example.com"));
  CHECK(long_name.substr(long_name.size() - name->size() - 1, name->size()) == *name);
  CHECK_FALSE(spf::ToQueryName(std::string(300, 'a')));          // one label, nothing to drop
  CHECK_FALSE(spf::ToQueryName("a..example.com"));               // empty label
  CHECK_FALSE(spf::ToQueryName(std::string(64, 'a') + ".com"));  // label over 63
  CHECK(spf::ToQueryName("acme.example.") == "acme.example");
}

TEST_CASE("SPF: pass, fail with explanation, neutral", "[spf]") {
  FakeResolver r;
  SpfZone(r)
      .Spf("acme.example", "v=spf1 ip4:192.0.2.0/24 -all exp=why.acme.example")
      .Txt("why.acme.example", {{"%{i} is not a mail server ", "of %{d}"}});
  auto pass = Run(r, Request("192.0.2.7"));
  CHECK(pass.result == SpfResult::kPass);
  CHECK(pass.reason == "ip4:192.0.2.0/24 matched in acme.example");
  CHECK(pass.matched == "ip4:192.0.2.0/24");
  CHECK(pass.explanation.empty());
  CHECK(pass.dns_lookups == 0);

  auto fail = Run(r, Request("198.51.100.7"));
  CHECK(fail.result == SpfResult::kFail);
  CHECK(fail.reason == "-all in acme.example: 198.51.100.7 not listed");
  CHECK(fail.matched == "-all");
  CHECK(fail.explanation == "198.51.100.7 is not a mail server of acme.example");

  SpfZone(r).Spf("quiet.example", "v=spf1 ip4:192.0.2.1");
  auto neutral = Run(r, Request("192.0.2.7", "quiet.example"));
  CHECK(neutral.result == SpfResult::kNeutral);
  CHECK(neutral.matched.empty());
  CHECK(neutral.reason.find("quiet.example") != std::string::npos);
}

TEST_CASE("SPF: none, multiple records, DNS failure", "[spf]") {
  FakeResolver r;
  SpfZone(r)
      .Txt("plain.example", {{"google-site-verification=abc"}})
      .Txt("twice.example", {{"v=spf1 -all"}, {"v=spf1 +all"}})
      .Fail("slow.example", rrtype::kTxt, DnsStatus::kTimeout)
      .Fail("broken.example", rrtype::kTxt, DnsStatus::kServFail);

  auto none = Run(r, Request("192.0.2.1", "plain.example"));
  CHECK(none.result == SpfResult::kNone);
  CHECK(none.reason == "no SPF record at plain.example");
  CHECK(Run(r, Request("192.0.2.1", "nxdomain.example")).result == SpfResult::kNone);

  auto twice = Run(r, Request("192.0.2.1", "twice.example"));
  CHECK(twice.result == SpfResult::kPermerror);
  CHECK(twice.reason == "2 SPF records at twice.example");

  auto slow = Run(r, Request("192.0.2.1", "slow.example"));
  CHECK(slow.result == SpfResult::kTemperror);
  CHECK(slow.reason == "TXT lookup for slow.example: timeout");
  CHECK(Run(r, Request("192.0.2.1", "broken.example")).result == SpfResult::kTemperror);
}

TEST_CASE("SPF: an invalid domain is none, and done() still comes from Poll", "[spf]") {
  FakeResolver r;
  for (const std::string& d :
       std::vector<std::string>{"localhost", "[192.0.2.1]", "a..example", std::string(64, 'a') + ".example"}) {
    auto out = Run(r, Request("192.0.2.1", d));  // Run checks done() is not synchronous
    CHECK(out.result == SpfResult::kNone);
    CHECK(out.reason.find("not a valid domain name") != std::string::npos);
  }
}

TEST_CASE("SPF: a syntax error anywhere names the record and the term", "[spf]") {
  FakeResolver r;
  SpfZone(r)
      .Spf("acme.example", "v=spf1 ip4:192.0.2.0/24 include:_spf.esp.example -all")
      .Spf("_spf.esp.example", "v=spf1 include:_b.esp.example")
      .Spf("_b.esp.example", "v=spf1 +all ip5:1.2.3.4");
  // The first term would match, but the record is checked whole before evaluation.
  SpfZone(r).Spf("early.example", "v=spf1 +all ip5:1.2.3.4");
  auto early = Run(r, Request("192.0.2.7", "early.example"));
  CHECK(early.result == SpfResult::kPermerror);
  CHECK(early.reason == "syntax error in early.example: unknown mechanism 'ip5:1.2.3.4'");

  auto nested = Run(r, Request("198.51.100.7"));
  CHECK(nested.result == SpfResult::kPermerror);
  CHECK(nested.reason ==
        "include:_spf.esp.example -> include:_b.esp.example -> permerror: syntax error in _b.esp.example: "
        "unknown mechanism 'ip5:1.2.3.4'");
}

TEST_CASE("SPF: the 11th DNS lookup is a permerror that names the include and the term", "[spf]") {
  FakeResolver r;
  std::string esp = "v=spf1";
  for (int i = 1; i <= 9; ++i) {
    const std::string host = fmt::format("h{}.esp.example", i);
    esp += " a:" + host;
    SpfZone(r).Addr(host, {fmt::format("203.0.113.{}", i)});
  }
  esp += " a:x.example -all";
  SpfZone(r).Spf("acme.example", "v=spf1 include:_spf.esp.example -all").Spf("_spf.esp.example", esp);
  auto out = Run(r, Request("198.51.100.7"));
  CHECK(out.result == SpfResult::kPermerror);
  CHECK(out.reason == "include:_spf.esp.example -> permerror: more than 10 DNS lookups (11th: a:x.example)");
  CHECK(out.dns_lookups == 10);
  CHECK_FALSE(Asked(r, "x.example", rrtype::kA));  // the 11th term is never asked
}

TEST_CASE("SPF: an include loop ends at the lookup limit", "[spf]") {
  FakeResolver r;
  SpfZone(r).Spf("a.example", "v=spf1 include:b.example -all").Spf("b.example", "v=spf1 include:a.example -all");
  auto out = Run(r, Request("192.0.2.1", "a.example"));
  CHECK(out.result == SpfResult::kPermerror);
  CHECK(out.reason.find("more than 10 DNS lookups") != std::string::npos);
  CHECK(out.reason.starts_with("include:b.example -> include:a.example -> "));
  CHECK(out.dns_lookups == 10);

  SpfZone(r).Spf("self.example", "v=spf1 redirect=self.example");
  auto redirect = Run(r, Request("192.0.2.1", "self.example"));
  CHECK(redirect.result == SpfResult::kPermerror);
  CHECK(redirect.reason.find("(11th: redirect=self.example)") != std::string::npos);
}

TEST_CASE("SPF: the third void lookup is a permerror", "[spf]") {
  FakeResolver r;
  SpfZone(r).Spf("acme.example", "v=spf1 a:gone1.example mx:gone2.example exists:gone3.example ip4:192.0.2.1 -all");
  auto out = Run(r, Request("192.0.2.1"));
  CHECK(out.result == SpfResult::kPermerror);
  CHECK(out.reason == "more than 2 void lookups (3rd: exists:gone3.example)");
  CHECK(out.void_lookups == 3);

  SpfZone(r).Spf("two.example", "v=spf1 a:gone1.example a:gone2.example ip4:192.0.2.1 -all");
  auto two = Run(r, Request("192.0.2.1", "two.example"));
  CHECK(two.result == SpfResult::kPass);
  CHECK(two.void_lookups == 2);
}

TEST_CASE("SPF: permissive terms are flagged wherever they are fetched", "[spf]") {
  FakeResolver r;
  SpfZone(r)
      .Spf("acme.example", "v=spf1 ip4:192.0.2.0/24 include:_spf.esp.example -all")
      .Spf("_spf.esp.example", "v=spf1 ip4:0.0.0.0/0 ip6:::/0 ?all");
  auto out = Run(r, Request("198.51.100.7"));
  CHECK(out.result == SpfResult::kPass);
  CHECK(out.reason == "include:_spf.esp.example matched in acme.example: ip4:0.0.0.0/0 matched in _spf.esp.example");
  CHECK(out.permissive ==
        std::vector<std::string>{"ip4:0.0.0.0/0 in _spf.esp.example", "ip6:::/0 in _spf.esp.example"});

  SpfZone(r).Spf("open.example", "v=spf1 +all").Spf("open2.example", "v=spf1 all");
  CHECK(Run(r, Request("198.51.100.7", "open.example")).permissive == std::vector<std::string>{"+all in open.example"});
  CHECK(Run(r, Request("198.51.100.7", "open2.example")).permissive ==
        std::vector<std::string>{"all in open2.example"});

  SpfZone(r).Spf("strict.example", "v=spf1 ip4:192.0.2.0/24 ip4:10.0.0.0/9 ip6:2001:db8::/32 -ip4:0.0.0.0/0 ~all -all");
  auto strict = Run(r, Request("198.51.100.7", "strict.example"));
  CHECK(strict.permissive.empty());
  SpfZone(r).Spf("wide.example", "v=spf1 ip4:10.0.0.0/8 ip6:2000::/3 -all");
  CHECK(Run(r, Request("198.51.100.7", "wide.example")).permissive ==
        std::vector<std::string>{"ip4:10.0.0.0/8 in wide.example", "ip6:2000::/3 in wide.example"});
}

TEST_CASE("SPF: a 10 kB record evaluates to a named result", "[spf]") {
  FakeResolver r;
  // 40 strings of 255 bytes joined with no separator: many ip4 terms, then -all.
  std::string text = "v=spf1";
  for (int i = 0; text.size() < 40 * 255 - 30; ++i) text += fmt::format(" ip4:10.{}.{}.0/24", i / 256 % 256, i % 256);
  text += " -all";
  text.resize(40 * 255, ' ');
  std::vector<std::string> strings;
  for (size_t i = 0; i < text.size(); i += 255) strings.push_back(text.substr(i, 255));
  REQUIRE(strings.size() == 40);
  SpfZone(r).Txt("big.example", {strings});
  auto out = Run(r, Request("198.51.100.7", "big.example"));
  CHECK(out.result == SpfResult::kFail);
  CHECK(out.reason == "-all in big.example: 198.51.100.7 not listed");
  auto hit = Run(r, Request("10.1.7.9", "big.example"));
  CHECK(hit.result == SpfResult::kPass);
  CHECK(hit.matched == "ip4:10.1.7.0/24");

  // 10 kB of junk after the version: a permerror that names the record.
  std::vector<std::string> junk(40, std::string(255, '%'));
  junk[0].replace(0, 7, "v=spf1 ");
  SpfZone(r).Txt("junk.example", {junk});
  auto bad = Run(r, Request("198.51.100.7", "junk.example"));
  CHECK(bad.result == SpfResult::kPermerror);
  CHECK(bad.reason.starts_with("syntax error in junk.example: "));
}

TEST_CASE("SPF: a macro that expands past 253 characters is truncated from the left", "[spf]") {
  FakeResolver r;
  SpfZone(r).Spf("acme.example", "v=spf1 exists:%{l}.%{l}.%{l}.%{l}.%{l}._spf.acme.example -all");
  SpfRequest q = Request("192.0.2.1");
  q.sender = std::string(60, 'x') + "@acme.example";  // 5 x 61 + 17 = 322 characters
  auto out = Run(r, q);
  CHECK(out.result == SpfResult::kFail);  // the truncated name does not exist
  const std::string label(60, 'x');
  const std::string want = label + "." + label + "." + label + "._spf.acme.example";  // two labels dropped
  CHECK(want.size() <= 253);
  CHECK(Asked(r, want, rrtype::kA));
  CHECK(out.void_lookups == 1);

  // A label over 63 characters cannot be queried: no match, counted as a void lookup.
  SpfZone(r).Spf("long.example", "v=spf1 a:%{l}x.long.example ?all");
  q.domain = "long.example";
  q.sender = std::string(63, 'y') + "@long.example";
  auto longlabel = Run(r, q);
  CHECK(longlabel.result == SpfResult::kNeutral);
  CHECK(longlabel.void_lookups == 1);
}

TEST_CASE("SPF: mx, exists, ptr and IPv4-mapped clients", "[spf]") {
  FakeResolver r;
  SpfZone(r)
      .Spf("acme.example", "v=spf1 mx -all")
      .Mx("acme.example", {"mx1.acme.example", "mx2.acme.example"})
      .Addr("mx1.acme.example", {"192.0.2.10", "2001:db8::10"})
      .Addr("mx2.acme.example", {"192.0.2.20"});
  auto v4 = Run(r, Request("::ffff:192.0.2.20"));
  CHECK(v4.result == SpfResult::kPass);
  CHECK(v4.reason == "mx matched in acme.example: MX host mx2.acme.example");
  CHECK(Run(r, Request("2001:db8::10")).result == SpfResult::kPass);
  CHECK(Run(r, Request("2001:db8::20")).result == SpfResult::kFail);

  std::vector<std::string> eleven;
  for (int i = 0; i < 11; ++i) eleven.push_back(fmt::format("mx{}.big.example", i));
  SpfZone(r).Spf("big.example", "v=spf1 mx ?all").Mx("big.example", eleven);
  auto many = Run(r, Request("192.0.2.1", "big.example"));
  CHECK(many.result == SpfResult::kPermerror);
  CHECK(many.reason == "mx in big.example: big.example has 11 MX records (more than 10)");

  SpfZone(r)
      .Spf("ex.example", "v=spf1 exists:%{ir}.allow.ex.example -all")
      .Addr("1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.allow.ex.example", {"127.0.0.2"});
  auto ex = Run(r, Request("2001:db8::1", "ex.example"));
  CHECK(ex.result == SpfResult::kPass);  // exists asks A even for an IPv6 client
  CHECK(Asked(r, "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.allow.ex.example", rrtype::kA));

  SpfZone(r)
      .Spf("ptr.example", "v=spf1 ptr -all")
      .Addr("out.ptr.example", {"192.0.2.99"})
      .Addr("fake.ptr.example", {"192.0.2.1"});
  DnsRecord ptr1, ptr2;
  ptr1.type = ptr2.type = rrtype::kPtr;
  ptr1.owner = ptr2.owner = "99.2.0.192.in-addr.arpa";
  ptr1.target = "fake.ptr.example";
  ptr2.target = "out.ptr.example";
  r.Set("99.2.0.192.in-addr.arpa", rrtype::kPtr, Answer({ptr1, ptr2}));
  auto p = Run(r, Request("192.0.2.99", "ptr.example"));
  CHECK(p.result == SpfResult::kPass);
  CHECK(p.reason == "ptr matched in ptr.example: validated PTR name out.ptr.example");
}

TEST_CASE("SPF: include and redirect results map as RFC 7208 says", "[spf]") {
  FakeResolver r;
  SpfZone(r)
      .Spf("acme.example", "v=spf1 include:none.example -all")
      .Spf("tmp.example", "v=spf1 include:slow.example -all")
      .Fail("slow.example", rrtype::kTxt, DnsStatus::kTimeout)
      .Spf("red.example", "v=spf1 redirect=none.example")
      .Spf("soft.example", "v=spf1 include:fails.example ~all")
      .Spf("fails.example", "v=spf1 -all");
  auto none = Run(r, Request("192.0.2.1"));
  CHECK(none.result == SpfResult::kPermerror);
  CHECK(none.reason == "include:none.example -> permerror: no SPF record at none.example");
  auto tmp = Run(r, Request("192.0.2.1", "tmp.example"));
  CHECK(tmp.result == SpfResult::kTemperror);
  CHECK(tmp.reason == "include:slow.example -> temperror: TXT lookup for slow.example: timeout");
  auto red = Run(r, Request("192.0.2.1", "red.example"));
  CHECK(red.result == SpfResult::kPermerror);
  CHECK(red.reason == "redirect=none.example -> permerror: no SPF record at none.example");
  auto soft = Run(r, Request("192.0.2.1", "soft.example"));  // an included fail is just no match
  CHECK(soft.result == SpfResult::kSoftfail);
  CHECK(soft.dns_lookups == 1);
}

TEST_CASE("SPF: CNAMEs are followed, and a CNAME loop is a named temperror", "[spf]") {
  FakeResolver r;
  SpfZone(r)
      .Cname("acme.example", rrtype::kTxt, "spf.host.example")
      .Spf("spf.host.example", "v=spf1 a:mail.acme.example -all")
      .Cname("mail.acme.example", rrtype::kA, "edge.host.example")
      .Addr("edge.host.example", {"192.0.2.5"});
  auto out = Run(r, Request("192.0.2.5"));
  CHECK(out.result == SpfResult::kPass);

  SpfZone(r).Cname("loop.example", rrtype::kTxt, "loop2.example").Cname("loop2.example", rrtype::kTxt, "loop.example");
  auto loop = Run(r, Request("192.0.2.5", "loop.example"));
  CHECK(loop.result == SpfResult::kTemperror);
  CHECK(loop.reason.find("CNAME loop") != std::string::npos);
}

TEST_CASE("SPF: answers to concurrent lookups are read in record order, whatever order they come in", "[spf]") {
  for (const bool reversed : {false, true}) {
    FakeResolver r;
    r.answer_newest_first = reversed;
    SpfZone(r)
        .Spf("acme.example", "v=spf1 mx -all")
        .Mx("acme.example", {"mx1.acme.example", "mx2.acme.example", "mx3.acme.example"})
        .Fail("mx1.acme.example", rrtype::kA, DnsStatus::kTimeout)
        .Addr("mx2.acme.example", {"192.0.2.2"})
        .Addr("mx3.acme.example", {"192.0.2.3"});
    auto err = Run(r, Request("192.0.2.3"));  // mx1 comes first: its failure decides
    CHECK(err.result == SpfResult::kTemperror);
    CHECK(err.reason == "mx in acme.example: A lookup for mx1.acme.example: timeout");
    SpfZone(r).Addr("mx1.acme.example", {"192.0.2.1"});
    auto ok = Run(r, Request("192.0.2.3"));
    CHECK(ok.result == SpfResult::kPass);
    CHECK(ok.reason == "mx matched in acme.example: MX host mx3.acme.example");
  }
}
