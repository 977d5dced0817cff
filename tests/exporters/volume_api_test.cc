#include "exporters/volume_api.h"

#include <catch2/catch.hpp>

#include "builders.h"
#include "fakes.h"
#include "http_fetch.h"
#include "temp_dir.h"

namespace repwatch {
namespace {

using testing::Fetch;
using testing::Reply;

constexpr const char* kToken = "s3cret-token-0123456789";
const std::string kAuth = std::string("Authorization: Bearer ") + kToken + "\r\n";

struct Api {
  testing::TempDir tmp;
  Config config;
  testing::FakeClock clock;
  std::unique_ptr<VolumeStore> store;
  std::unique_ptr<HttpServer> server;

  explicit Api(std::string token = kToken, Shard shard = {}) {
    config.ranges.push_back(testing::Range("out", {"192.0.2.0/28", "2001:db8::/120"}));
    config.api.token = std::move(token);
    auto opened = VolumeStore::Open(tmp.sub("state"));
    REQUIRE(opened.ok());
    store = std::move(opened).value();
    server = std::make_unique<HttpServer>("127.0.0.1:0");
    AddVolumeRoutes(*server, std::make_shared<const Config>(config), *store, clock, shard);
    REQUIRE(server->Start().ok());
  }
  Reply Post(const std::string& body, const std::string& headers = kAuth) {
    return Fetch(server->port(), "POST", "/api/v1/volume", body, headers);
  }
  long long Today() const { return UnixSeconds(clock.WallNow()) / 86400; }
  VolumeTotals TodayOf(const char* ip) {
    auto days = store->Days(IpAddress::Parse(ip).value(), Today(), Today());
    REQUIRE(days.ok());
    auto it = days.value().find(Today());
    return it == days.value().end() ? VolumeTotals{} : it->second;
  }
};

TEST_CASE("volume API: a batch with the token is counted", "[volume_api]") {
  Api api;
  Reply r = api.Post(R"([{"ip":"192.0.2.1","count":40,"outcome":"delivered","receiver":"gmail.com"},
                         {"ip":"192.0.2.1","count":3,"outcome":"deferred","receiver":"outlook.com",
                          "reply":"451 4.7.650 The mail server [192.0.2.1] has been temporarily rate limited due to IP reputation."},
                         {"ip":"2001:db8::5","count":1,"outcome":"bounced"}])");
  CHECK(r.status == 200);
  CHECK(r.body == "{\"accepted\":3}\n");
  const VolumeTotals v4 = api.TodayOf("192.0.2.1");
  CHECK(v4.delivered == 40);
  CHECK(v4.deferred == 3);
  CHECK(v4.throttled == 3);
  CHECK(v4.attempts_by_group.at("gmail") == 40);
  CHECK(v4.attempts_by_group.at("microsoft") == 3);
  CHECK(api.TodayOf("2001:db8::5").bounced == 1);
  // A single object works too.
  CHECK(api.Post(R"({"ip":"192.0.2.1","count":2,"outcome":"delivered"})").status == 200);
  CHECK(api.TodayOf("192.0.2.1").delivered == 42);
}

TEST_CASE("volume API: no or a wrong token is 401; no token configured is 403", "[volume_api]") {
  Api api;
  const std::string body = R"({"ip":"192.0.2.1","count":1,"outcome":"delivered"})";
  Reply none = api.Post(body, "");
  CHECK(none.status == 401);
  CHECK_THAT(none.head, Catch::Contains("WWW-Authenticate: Bearer"));
  CHECK(api.Post(body, "Authorization: Bearer wrong-token-0123456789\r\n").status == 401);
  CHECK(api.Post(body, std::string("Authorization: Basic ") + kToken + "\r\n").status == 401);
  CHECK(api.TodayOf("192.0.2.1").attempts() == 0);

  Api off("");
  Reply r = off.Post(body);
  CHECK(r.status == 403);
  CHECK(r.body == "no [api] token is configured: write endpoints are off\n");
}

TEST_CASE("volume API: a bad item is a 400 that names it, and nothing is applied", "[volume_api]") {
  Api api;
  const std::string good = R"({"ip":"192.0.2.1","count":5,"outcome":"delivered"})";
  struct Case {
    std::string body, answer;
  };
  const Case cases[] = {
      {"not json", "the body is not valid JSON\n"},
      {"[]", "the batch is empty\n"},
      {"[" + good + R"(,{"ip":"192.0.2.1","count":0,"outcome":"delivered"}])",
       "[1].count must be an integer from 1 to 1000000\n"},
      {"[" + good + R"(,{"ip":"192.0.2.1","count":"5","outcome":"delivered"}])",
       "[1].count must be an integer from 1 to 1000000\n"},
      {"[" + good + R"(,{"ip":"192.0.2.999","count":1,"outcome":"delivered"}])",
       "[1].ip \"192.0.2.999\" is not an IP address\n"},
      {"[" + good + R"(,{"ip":"198.51.100.1","count":1,"outcome":"delivered"}])",
       "[1].ip 198.51.100.1 is in no configured range\n"},
      {"[" + good + R"(,{"ip":"192.0.2.1","count":1,"outcome":"sent"}])",
       "[1].outcome must be \"delivered\", \"deferred\" or \"bounced\"\n"},
      {"[" + good + R"(,{"ip":"192.0.2.1","count":1,"outcome":"delivered","at":"yesterday"}])",
       "[1].at must be Unix seconds or an RFC 3339 UTC time like \"2026-11-23T10:00:00Z\"\n"},
      {"[" + good + R"(,{"ip":"192.0.2.1","count":1,"outcome":"delivered","at":1000}])",
       "[1].at is more than 120 days old or more than 1 hour ahead\n"},
      {"[" + good + R"(,{"ip":"192.0.2.1","count":1,"outcome":"delivered","colour":"red"}])",
       "[1].colour: unknown field (ip, count, outcome, receiver, at, reply)\n"},
      {R"({"count":1,"outcome":"delivered"})", "ip is missing or not a string\n"},
      {"[" + good + ",42]", "[1] must be an object\n"},
  };
  for (const Case& c : cases) {
    INFO(c.body);
    Reply r = api.Post(c.body);
    CHECK(r.status == 400);
    CHECK(r.body == c.answer);
  }
  CHECK(api.TodayOf("192.0.2.1").attempts() == 0);  // the good first items were not applied either
}

TEST_CASE("volume API: an address another shard owns is refused with 421 naming it, nothing applied",
          "[volume_api]") {
  const Shard shard = Shard::Make(1, 3).value();
  // One address this shard owns and one it does not.
  std::string mine, theirs;
  for (int i = 0; i < 16 && (mine.empty() || theirs.empty()); ++i) {
    const std::string ip = "192.0.2." + std::to_string(i);
    (shard.Owns(IpAddress::Parse(ip).value()) ? mine : theirs) = ip;
  }
  REQUIRE_FALSE(mine.empty());
  REQUIRE_FALSE(theirs.empty());
  const uint32_t owner = Shard::OwnerOf(IpAddress::Parse(theirs).value(), 3);
  Api api(kToken, shard);
  Reply r = api.Post(R"([{"ip":")" + mine + R"(","count":5,"outcome":"delivered"},{"ip":")" + theirs +
                     R"(","count":7,"outcome":"delivered"}])");
  CHECK(r.status == 421);
  CHECK(r.body == "[1].ip " + theirs + " belongs to shard " + std::to_string(owner) +
                      " of 3, not to this agent (shard 1): push it to that agent\n");
  CHECK(api.TodayOf(mine.c_str()).delivered == 0);  // the batch is refused whole
  r = api.Post(R"({"ip":")" + mine + R"(","count":5,"outcome":"delivered"})");
  CHECK(r.status == 200);
  CHECK(api.TodayOf(mine.c_str()).delivered == 5);
}

}  // namespace
}  // namespace repwatch
