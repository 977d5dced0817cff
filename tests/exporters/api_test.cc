#include "exporters/api.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <filesystem>

#include "http_fetch.h"

using namespace repwatch;

namespace {

DnsblZone Zone(const std::string& name, ZoneFamily family) {
  DnsblZone z;
  z.zone = z.query_zone = name;
  z.family = family;
  return z;
}

testing::Reply Get(HttpServer& server, const std::string& path) { return testing::Fetch(server.port(), "GET", path); }

}  // namespace

TEST_CASE("GET /api/v1/ips/{ip} returns the stored state in check --json shape", "[api]") {
  const auto dir = std::filesystem::temp_directory_path() / ("repwatch-api-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  auto store = StateStore::Open(dir.string());
  REQUIRE(store.ok());
  Config config;
  config.dnsbl = {Zone("a.test", ZoneFamily::kBoth), Zone("b.test", ZoneFamily::kBoth), Zone("v6.test", ZoneFamily::kIpv6)};

  IpReport r;
  r.ip = IpAddress::Parse("192.0.2.7").value();
  r.range = "out";
  DnsblZoneResult listed;
  listed.zone = "a.test";
  listed.status = DnsblStatus::kListed;
  listed.codes = {"127.0.0.2"};
  listed.meanings = {"SBL"};
  listed.txt = "why";
  DnsblZoneResult clean;
  clean.zone = "b.test";
  clean.status = DnsblStatus::kClean;
  r.dnsbl = std::vector<DnsblZoneResult>{listed, clean};
  REQUIRE(store.value()->BeginCycle(1000).ok());
  REQUIRE(store.value()->RecordIp(r, 1000).ok());
  REQUIRE(store.value()->EndCycle(1001, 1.0, 1, true).ok());

  HttpServer server("127.0.0.1:0");
  AddApiRoutes(server, std::make_shared<const Config>(config), *store.value());
  REQUIRE(server.Start().ok());

  auto ok = Get(server, "/api/v1/ips/192.0.2.7");
  CHECK(ok.status == 200);
  CHECK_THAT(ok.head, Catch::Contains("Content-Type: application/json"));
  auto j = nlohmann::json::parse(ok.body);
  CHECK(j["kind"] == "ip");
  CHECK(j["ip"] == "192.0.2.7");
  CHECK(j["range"] == "out");
  REQUIRE(j["dnsbl"].size() == 2);  // v6.test does not apply to an IPv4 address
  CHECK(j["dnsbl"][0]["zone"] == "a.test");
  CHECK(j["dnsbl"][0]["status"] == "listed");
  CHECK(j["dnsbl"][0]["codes"] == nlohmann::json::array({"127.0.0.2"}));
  CHECK(j["dnsbl"][1]["status"] == "clean");

  CHECK(Get(server, "/api/v1/ips/192.0.2.8").status == 404);
  auto bad = Get(server, "/api/v1/ips/not-an-ip");
  CHECK(bad.status == 400);
  CHECK_THAT(bad.body, Catch::Contains("not an IP address"));
  std::filesystem::remove_all(dir);
}
