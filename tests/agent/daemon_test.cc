#include "agent/daemon.h"

#include <catch2/catch.hpp>

#include <stdlib.h>

#include <fstream>

#include "temp_dir.h"

namespace repwatch {
namespace {

const std::string kDns = "[dns]\nservers = [\"127.0.0.1:53\"]\n";

Config Parse(const std::string& toml) {
  auto c = ParseConfig(toml, "t.toml");
  INFO((c.ok() ? std::string() : c.error()));
  REQUIRE(c.ok());
  return std::move(c).value();
}

TEST_CASE("daemon: state_dir and listen_address need a restart, each named with both values", "[daemon]") {
  Config running = Parse("[agent]\nstate_dir = \"/var/lib/a\"\nlisten_address = \"127.0.0.1:9754\"\n" + kDns);
  Config next = Parse("[agent]\nstate_dir = \"/var/lib/b\"\nlisten_address = \"0.0.0.0:9754\"\ninterval = \"5m\"\n" + kDns);

  auto warnings = RestartOnlyChanges(running, next, /*listen_from_flag=*/false);
  REQUIRE(warnings.size() == 2);
  CHECK(warnings[0] == "agent.state_dir changed to /var/lib/b: needs a restart; the state stays in /var/lib/a");
  CHECK(warnings[1] ==
        "agent.listen_address changed to 0.0.0.0:9754: needs a restart; still listening on 127.0.0.1:9754");
  // --web.listen-address overrides the config: its listen_address is not in use.
  CHECK(RestartOnlyChanges(running, next, /*listen_from_flag=*/true).size() == 1);

  KeepRestartOnly(running, next);
  CHECK(next.agent.state_dir == "/var/lib/a");
  CHECK(next.agent.listen_address == "127.0.0.1:9754");
  CHECK(next.agent.interval == std::chrono::minutes(5));  // everything else is taken
  CHECK(RestartOnlyChanges(running, next, false).empty());
}

TEST_CASE("daemon: everything else applies without a restart", "[daemon]") {
  Config running = Parse(kDns + "[[dnsbl]]\nzone = \"a.test\"\n[[ranges]]\nname = \"r\"\ncidrs = [\"192.0.2.0/28\"]\n");
  Config next = Parse("[agent]\ninterval = \"1m\"\ninstance = \"other\"\n" + kDns +
                      "timeout = \"1s\"\n[[dnsbl]]\nzone = \"b.test\"\n[[ranges]]\nname = \"s\"\ncidrs = [\"198.51.100.0/30\"]\n"
                      "[alerts]\nraise_after = 5\n");
  CHECK(RestartOnlyChanges(running, next, false).empty());
}

TEST_CASE("daemon: a webhook secret that does not decode is a config error with its position", "[daemon]") {
  setenv("REPWATCH_DAEMON_TEST_SECRET", "whsec_c2hvcnQ=", 1);  // "short": 5 bytes, not 24-64
  Config c = Parse(kDns + "[[webhooks]]\nname = \"oncall\"\nurl = \"http://127.0.0.1:9/\"\n"
                          "secret_env = \"REPWATCH_DAEMON_TEST_SECRET\"\n");
  Status s = CheckWebhookKeys(c);
  REQUIRE_FALSE(s.ok());
  CHECK_THAT(s.message(), Catch::StartsWith("t.toml:3:1: webhook \"oncall\": "));
  CHECK(s.message().find("c2hvcnQ") == std::string::npos);  // never the secret itself

  setenv("REPWATCH_DAEMON_TEST_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", 1);
  CHECK(CheckWebhookKeys(Parse(kDns + "[[webhooks]]\nname = \"oncall\"\nurl = \"http://127.0.0.1:9/\"\n"
                                      "secret_env = \"REPWATCH_DAEMON_TEST_SECRET\"\n"))
            .ok());
}

TEST_CASE("daemon: LoadDaemonConfig reports file:line:col for a broken or missing file", "[daemon]") {
  testing::TempDir tmp;
  const std::string path = tmp.sub("repwatch.toml");
  std::ofstream(path) << kDns << "[agent]\ninterval = \"soon\"\n";
  auto bad = LoadDaemonConfig(path);
  REQUIRE_FALSE(bad.ok());
  CHECK_THAT(bad.error(), Catch::StartsWith(path + ":4:"));
  CHECK_THAT(bad.error(), Catch::Contains("interval"));

  auto missing = LoadDaemonConfig(tmp.sub("nowhere.toml"));
  REQUIRE_FALSE(missing.ok());
  CHECK_THAT(missing.error(), Catch::Contains("nowhere.toml"));

  std::ofstream(path) << kDns;
  CHECK(LoadDaemonConfig(path).ok());
}

}  // namespace
}  // namespace repwatch
