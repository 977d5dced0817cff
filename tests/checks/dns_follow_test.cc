#include "checks/dns_follow.h"

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <optional>

#include "fakes.h"

using namespace repwatch;
using namespace repwatch::testing;

namespace {

using Q = std::pair<std::string, uint16_t>;

// Asks through FollowCnames and polls until the one callback has run.
struct Follower {
  FollowedAnswer Run(const std::string& name, uint16_t qtype) {
    std::optional<FollowedAnswer> out;
    int calls = 0;
    FollowCnames(resolver, name, qtype, [&](FollowedAnswer a) {
      ++calls;
      out = std::move(a);
    });
    CHECK(calls == 0);  // never from inside FollowCnames
    for (int i = 0; i < 100 && !out; ++i) resolver.Poll(std::chrono::milliseconds(1));
    REQUIRE(out.has_value());
    resolver.Poll(std::chrono::milliseconds(1));  // nothing more may arrive
    CHECK(calls == 1);
    CHECK(resolver.Pending() == 0);
    return std::move(*out);
  }
  FakeResolver resolver;
};

}  // namespace

TEST_CASE("FollowCnames: no CNAME, one question", "[dns_follow]") {
  Follower f;
  f.resolver.Set("mail.example", rrtype::kA,
                 Answer({ARecord("mail.example", 192, 0, 2, 1), ARecord("mail.example", 192, 0, 2, 2)}));
  FollowedAnswer a = f.Run("mail.example", rrtype::kA);
  CHECK(a.ok());
  CHECK_FALSE(a.empty());
  CHECK(a.error.empty());
  CHECK(a.queries == 1);
  CHECK(a.canonical == "mail.example");
  CHECK(a.chain.empty());
  REQUIRE(a.response.answers.size() == 2);
  CHECK(a.response.answers[1].addr[3] == 2);  // wire order kept
  CHECK(f.resolver.asked == std::vector<Q>{{"mail.example", rrtype::kA}});
}

TEST_CASE("FollowCnames: NODATA and NXDOMAIN without CNAMEs are empty, not errors", "[dns_follow]") {
  Follower f;
  f.resolver.Set("nodata.example", rrtype::kA, Answer({}));
  FollowedAnswer nodata = f.Run("nodata.example", rrtype::kA);
  CHECK(nodata.ok());
  CHECK(nodata.empty());
  CHECK(nodata.canonical == "nodata.example");

  FollowedAnswer nx = f.Run("missing.example", rrtype::kA);  // the fake's default is NXDOMAIN
  CHECK_FALSE(nx.ok());
  CHECK(nx.empty());
  CHECK(nx.error.empty());
  CHECK(nx.response.status == DnsStatus::kNxDomain);
}

TEST_CASE("FollowCnames: records of another type at the name are dropped", "[dns_follow]") {
  Follower f;
  f.resolver.Set("mail.example", rrtype::kA,
                 Answer({TxtRecord({"x"}), ARecord("mail.example", 192, 0, 2, 1), ARecord("other.example", 192, 0, 2, 9)}));
  FollowedAnswer a = f.Run("mail.example", rrtype::kA);
  REQUIRE(a.response.answers.size() == 1);
  CHECK(a.response.answers[0].addr[3] == 1);
}

TEST_CASE("FollowCnames: a CNAME answered together with its target's records is one question", "[dns_follow]") {
  Follower f;
  f.resolver.Set("www.example", rrtype::kA,
                 Answer({CnameRecord("www.example", "host.example"), ARecord("host.example", 192, 0, 2, 5)}));
  FollowedAnswer a = f.Run("www.example", rrtype::kA);
  CHECK(a.ok());
  CHECK(a.queries == 1);
  CHECK(a.canonical == "host.example");
  CHECK(a.chain == std::vector<std::string>{"host.example"});
  REQUIRE(a.response.answers.size() == 1);  // only the A records, not the CNAME
  CHECK(a.response.answers[0].type == rrtype::kA);
  CHECK(f.resolver.asked.size() == 1);
}

TEST_CASE("FollowCnames: a CNAME answered alone is asked again at its target", "[dns_follow]") {
  Follower f;
  f.resolver.Set("www.example", rrtype::kA, Answer({CnameRecord("www.example", "host.example")}));
  f.resolver.Set("host.example", rrtype::kA, Answer({ARecord("host.example", 192, 0, 2, 5)}));
  FollowedAnswer a = f.Run("www.example", rrtype::kA);
  CHECK(a.ok());
  CHECK(a.queries == 2);
  CHECK(a.canonical == "host.example");
  CHECK(a.chain == std::vector<std::string>{"host.example"});
  REQUIRE(a.response.answers.size() == 1);
  CHECK(a.response.answers[0].addr[3] == 5);
  CHECK(f.resolver.asked == std::vector<Q>{{"www.example", rrtype::kA}, {"host.example", rrtype::kA}});
}

TEST_CASE("FollowCnames: a chain of three, partly chased by the resolver", "[dns_follow]") {
  Follower f;
  // The first answer chases a -> b -> c but stops there; c -> d is asked separately.
  f.resolver.Set("a.example", rrtype::kA,
                 Answer({CnameRecord("a.example", "b.example"), CnameRecord("b.example", "c.example")}));
  f.resolver.Set("c.example", rrtype::kA,
                 Answer({CnameRecord("c.example", "d.example"), ARecord("d.example", 198, 51, 100, 1)}));
  FollowedAnswer a = f.Run("a.example", rrtype::kA);
  CHECK(a.ok());
  CHECK(a.queries == 2);
  CHECK(a.canonical == "d.example");
  CHECK(a.chain == std::vector<std::string>{"b.example", "c.example", "d.example"});
  REQUIRE(a.response.answers.size() == 1);
  CHECK(a.response.answers[0].addr[0] == 198);
}

TEST_CASE("FollowCnames: a chain of three answered one CNAME at a time", "[dns_follow]") {
  Follower f;
  f.resolver.Set("a.example", rrtype::kPtr, Answer({CnameRecord("a.example", "b.example")}));
  f.resolver.Set("b.example", rrtype::kPtr, Answer({CnameRecord("b.example", "c.example")}));
  f.resolver.Set("c.example", rrtype::kPtr, Answer({CnameRecord("c.example", "d.example")}));
  f.resolver.Set("d.example", rrtype::kPtr, Answer({PtrRecord("d.example", "mail.example")}));
  FollowedAnswer a = f.Run("a.example", rrtype::kPtr);
  CHECK(a.ok());
  CHECK(a.queries == 4);
  CHECK(a.canonical == "d.example");
  CHECK(a.chain == std::vector<std::string>{"b.example", "c.example", "d.example"});
  REQUIRE(a.response.answers.size() == 1);
  CHECK(a.response.answers[0].target == "mail.example");
}

TEST_CASE("FollowCnames: a CNAME loop is an error, never a hang", "[dns_follow]") {
  SECTION("answered one CNAME at a time") {
    Follower f;
    f.resolver.Set("a.example", rrtype::kA, Answer({CnameRecord("a.example", "b.example")}));
    f.resolver.Set("b.example", rrtype::kA, Answer({CnameRecord("b.example", "a.example")}));
    FollowedAnswer a = f.Run("a.example", rrtype::kA);
    CHECK_THAT(a.error, Catch::Contains("loop"));
    CHECK(a.response.status == DnsStatus::kServFail);
    CHECK(a.response.detail == a.error);
    CHECK(a.response.answers.empty());
    CHECK_FALSE(a.ok());
    CHECK_FALSE(a.empty());
    CHECK(a.queries == 2);
  }
  SECTION("answered in one response") {
    Follower f;
    f.resolver.Set("a.example", rrtype::kA,
                   Answer({CnameRecord("a.example", "b.example"), CnameRecord("b.example", "a.example")}));
    FollowedAnswer a = f.Run("a.example", rrtype::kA);
    CHECK_THAT(a.error, Catch::Contains("loop"));
    CHECK(a.response.status == DnsStatus::kServFail);
    CHECK(a.queries == 1);
  }
  SECTION("a name that is its own CNAME") {
    Follower f;
    f.resolver.Set("a.example", rrtype::kA, Answer({CnameRecord("a.example", "a.example")}));
    FollowedAnswer a = f.Run("a.example", rrtype::kA);
    CHECK_THAT(a.error, Catch::Contains("loop"));
    CHECK(a.queries == 1);
  }
  SECTION("a loop further down the chain") {
    Follower f;
    f.resolver.Set("a.example", rrtype::kA, Answer({CnameRecord("a.example", "b.example")}));
    f.resolver.Set("b.example", rrtype::kA, Answer({CnameRecord("b.example", "c.example")}));
    f.resolver.Set("c.example", rrtype::kA, Answer({CnameRecord("c.example", "b.example")}));
    FollowedAnswer a = f.Run("a.example", rrtype::kA);
    CHECK_THAT(a.error, Catch::Contains("loop at b.example"));
    CHECK(a.queries == 3);
  }
}

TEST_CASE("FollowCnames: kMaxCnameHops hops are followed, one more is an error", "[dns_follow]") {
  auto name = [](int i) { return fmt::format("n{}.example", i); };
  for (const bool together : {false, true}) {
    for (const int hops : {kMaxCnameHops, kMaxCnameHops + 1, 40}) {
      INFO("hops " << hops << (together ? ", answered together" : ", one at a time"));
      Follower f;
      std::vector<DnsRecord> all;
      for (int i = 0; i < hops; ++i) {
        if (together) {
          all.push_back(CnameRecord(name(i), name(i + 1)));
        } else {
          f.resolver.Set(name(i), rrtype::kA, Answer({CnameRecord(name(i), name(i + 1))}));
        }
      }
      f.resolver.Set(name(hops), rrtype::kA, Answer({ARecord(name(hops), 192, 0, 2, 1)}));
      if (together) {
        all.push_back(ARecord(name(hops), 192, 0, 2, 1));
        f.resolver.Set(name(0), rrtype::kA, Answer(all));
      }
      FollowedAnswer a = f.Run(name(0), rrtype::kA);
      if (hops <= kMaxCnameHops) {
        CHECK(a.ok());
        CHECK(a.canonical == name(hops));
        CHECK(a.chain.size() == static_cast<size_t>(hops));
      } else {
        CHECK_FALSE(a.ok());
        CHECK_THAT(a.error, Catch::Contains("longer than " + std::to_string(kMaxCnameHops)));
        CHECK(a.response.status == DnsStatus::kServFail);
        CHECK(a.queries <= kMaxCnameHops + 1);
      }
    }
  }
}

TEST_CASE("FollowCnames: NXDOMAIN at the CNAME's target", "[dns_follow]") {
  Follower f;
  f.resolver.Set("www.example", rrtype::kA, Answer({CnameRecord("www.example", "gone.example")}));
  FollowedAnswer a = f.Run("www.example", rrtype::kA);
  CHECK(a.response.status == DnsStatus::kNxDomain);
  CHECK(a.empty());
  CHECK(a.error.empty());
  CHECK(a.canonical == "gone.example");
  CHECK(a.chain == std::vector<std::string>{"gone.example"});
  CHECK(a.queries == 2);
}

TEST_CASE("FollowCnames: NODATA at the CNAME's target, answered together", "[dns_follow]") {
  Follower f;
  // The resolver chased the CNAME and found no A at the end: the answer holds only the CNAME,
  // so FollowCnames cannot tell and asks the target itself.
  f.resolver.Set("www.example", rrtype::kA, Answer({CnameRecord("www.example", "host.example")}));
  f.resolver.Set("host.example", rrtype::kA, Answer({}));
  FollowedAnswer a = f.Run("www.example", rrtype::kA);
  CHECK(a.ok());
  CHECK(a.empty());
  CHECK(a.canonical == "host.example");
}

TEST_CASE("FollowCnames: a failure at the CNAME's target is passed on", "[dns_follow]") {
  for (const DnsStatus s : {DnsStatus::kTimeout, DnsStatus::kServFail, DnsStatus::kRefused}) {
    INFO(DnsStatusName(s));
    Follower f;
    f.resolver.Set("www.example", rrtype::kA, Answer({CnameRecord("www.example", "dead.example")}));
    f.resolver.Set("dead.example", rrtype::kA, Failure(s));
    FollowedAnswer a = f.Run("www.example", rrtype::kA);
    CHECK(a.response.status == s);
    CHECK_FALSE(a.ok());
    CHECK_FALSE(a.empty());
    CHECK(a.error.empty());  // a DNS failure, not a chain error
    CHECK(a.canonical == "dead.example");
    CHECK(a.chain == std::vector<std::string>{"dead.example"});
    CHECK(a.queries == 2);
  }
}

TEST_CASE("FollowCnames: a failure on the first question", "[dns_follow]") {
  Follower f;
  f.resolver.Set("www.example", rrtype::kA, Failure(DnsStatus::kTimeout));
  FollowedAnswer a = f.Run("www.example", rrtype::kA);
  CHECK(a.response.status == DnsStatus::kTimeout);
  CHECK(a.canonical == "www.example");
  CHECK(a.queries == 1);
}

TEST_CASE("FollowCnames: the asked name is matched case-insensitively", "[dns_follow]") {
  Follower f;
  f.resolver.Set("www.example", rrtype::kA,
                 Answer({CnameRecord("www.example", "host.example"), ARecord("host.example", 192, 0, 2, 5)}));
  FollowedAnswer a = f.Run("WWW.Example", rrtype::kA);
  CHECK(a.ok());
  CHECK(a.canonical == "host.example");
  REQUIRE(a.response.answers.size() == 1);
  CHECK(f.resolver.asked == std::vector<Q>{{"www.example", rrtype::kA}});  // asked in lowercase
}

TEST_CASE("FollowCnames: the callback runs only from Poll, once per call", "[dns_follow]") {
  FakeResolver resolver;
  resolver.Set("www.example", rrtype::kA, Answer({CnameRecord("www.example", "host.example")}));
  resolver.Set("host.example", rrtype::kA, Answer({ARecord("host.example", 192, 0, 2, 5)}));
  int calls = 0;
  for (int i = 0; i < 3; ++i) FollowCnames(resolver, "www.example", rrtype::kA, [&](FollowedAnswer) { ++calls; });
  CHECK(calls == 0);
  resolver.Poll(std::chrono::milliseconds(0));
  CHECK(calls == 0);  // the CNAME came alone: the re-asks are queued, not answered yet
  resolver.Poll(std::chrono::milliseconds(0));
  CHECK(calls == 3);
  resolver.Poll(std::chrono::milliseconds(0));
  CHECK(calls == 3);
}
