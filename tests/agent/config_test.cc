#include "agent/config.h"
#include "agent/receivers.h"

#include <catch2/catch.hpp>

#include <stdlib.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace repwatch {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// Lines 1-2 of most test configs.
const std::string kDns = "[dns]\nservers = [\"127.0.0.1:53\"]\n";
// A 26-character key, like a Spamhaus DQS key. Must never show up in a message.
const std::string kKey = "abcdefghijklmnopqrstuvwxyz";

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

std::vector<std::string> Errors(const std::string& toml) {
  auto cfg = ParseConfig(toml, "t.toml");
  if (cfg.ok()) return {};
  return Lines(cfg.error());
}

std::string Joined(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) out += l + "\n";
  return out;
}

bool AnyStartsWith(const std::vector<std::string>& lines, const std::string& prefix) {
  for (const auto& l : lines)
    if (l.rfind(prefix, 0) == 0) return true;
  return false;
}

std::string TempDir() {
  char tmpl[] = "/tmp/repwatch_config_test.XXXXXX";
  REQUIRE(mkdtemp(tmpl) != nullptr);
  return tmpl;
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
}

struct ErrorCase {
  const char* what;
  std::string toml;
  std::string want;  // "t.toml:line:col: message", matched as a prefix of one error line
};

TEST_CASE("every config error has file:line:col and a clear message", "[config]") {
  const std::string range = "[[ranges]]\nname = \"a\"\n";  // lines 3-4 after kDns
  const ErrorCase cases[] = {
      {"syntax", "[dns\n", "t.toml:1:5: "},
      {"unknown key", kDns + "foo = 1\n", "t.toml:3:1: unknown key 'foo' in [dns]"},
      {"unknown section", kDns + "[reputation]\nscore = []\n",
       "t.toml:3:2: unknown section [reputation] (not supported by this release)"},
      {"unknown top-level key", "verbose = true\n" + kDns, "t.toml:1:1: unknown key 'verbose' at top level"},
      {"fcrdns enabled type", kDns + "[fcrdns]\nenabled = \"yes\"\n",
       "t.toml:4:11: fcrdns.enabled must be true or false, not a string"},
      {"spf unknown key", kDns + "[spf]\nsender = \"x\"\n", "t.toml:4:1: unknown key 'sender' in [spf]"},
      {"helo not a host name", kDns + range + "cidrs = [\"192.0.2.1\"]\nhelo = \"mail..{ptr}\"\n",
       "t.toml:6:8: ranges[0].helo \"mail..{ptr}\" is not a host name"},
      {"expected_ptr not a pattern", kDns + range + "cidrs = [\"192.0.2.1\"]\nexpected_ptr = \"*..example\"\n",
       "t.toml:6:16: ranges[0].expected_ptr \"*..example\" is not a name pattern"},
      {"webhook url", kDns + "[[webhooks]]\nname = \"w\"\nformat = \"slack\"\nurl = \"ftp://h\"\n",
       "t.toml:6:7: webhooks[0].url \"ftp://h\" must start with http:// or https://"},
      {"webhook format", kDns + "[[webhooks]]\nname = \"w\"\nurl = \"http://h/\"\nformat = \"teams\"\n",
       "t.toml:6:10: webhooks[0].format \"teams\" is not one of standard, slack, alertmanager"},
      {"standard webhook without secret", kDns + "[[webhooks]]\nname = \"w\"\nurl = \"http://h/\"\n",
       "t.toml:3:1: webhooks[0]: format \"standard\" signs every request: give secret_env or secret_file"},
      {"webhook secret unset", kDns + "[[webhooks]]\nname = \"w\"\nurl = \"http://h/\"\nsecret_env = \"REPWATCH_TEST_UNSET\"\n",
       "t.toml:6:14: environment variable REPWATCH_TEST_UNSET (secret of webhook \"w\") is unset or empty"},
      {"webhook event filter", kDns + "[[webhooks]]\nname = \"w\"\nformat = \"slack\"\nurl = \"http://h/\"\nevents = [\"ip.*\"]\n",
       "t.toml:7:11: webhooks[0].events: \"ip.*\" matches no event type"},
      {"alerts failing_after", kDns + "[alerts]\nfailing_after = \"10s\"\n",
       "t.toml:4:17: alerts.failing_after \"10s\" is too short: the minimum is 1m"},
      {"unknown range key", kDns + range + "cidrs = [\"192.0.2.1\"]\nhelos = \"x\"\n",
       "t.toml:6:1: unknown key 'helos' in [[ranges]]"},
      {"wrong type", kDns + "attempts = \"3\"\n", "t.toml:3:12: dns.attempts must be an integer, not a string"},
      {"wrong type array", kDns + range + "cidrs = \"192.0.2.0/24\"\n",
       "t.toml:5:9: ranges[0].cidrs must be an array of strings, not a string"},
      {"bad CIDR", kDns + range + "cidrs = [\"192.0.2.0/33\"]\n",
       "t.toml:5:10: bad CIDR \"192.0.2.0/33\" in ranges[0].cidrs: "},
      {"host bits set", kDns + range + "cidrs = [\"192.0.2.1/24\"]\n",
       "t.toml:5:10: bad CIDR \"192.0.2.1/24\" in ranges[0].cidrs: "},
      {"not an address", kDns + range + "cidrs = [\"192.0.2.0/24\", \"mail.example\"]\n",
       "t.toml:5:26: bad CIDR \"mail.example\" in ranges[0].cidrs: "},
      {"block too large", kDns + range + "cidrs = [\"10.0.0.0/8\"]\n",
       "t.toml:5:10: CIDR \"10.0.0.0/8\" in ranges[0].cidrs has 2^24 (16777216) addresses, more than the 2^20 "
       "(1048576) that can be walked each cycle; list the sending addresses or smaller blocks instead"},
      {"v6 block too large", kDns + range + "cidrs = [\"2001:db8::/64\"]\n",
       "t.toml:5:10: CIDR \"2001:db8::/64\" in ranges[0].cidrs has 2^64 addresses, more than"},
      {"empty cidrs", kDns + range + "cidrs = []\n", "t.toml:5:9: range \"a\" has no addresses: 'cidrs' is empty"},
      {"missing cidrs", kDns + range, "t.toml:3:1: range \"a\" has no addresses: 'cidrs' is missing"},
      {"missing range name", kDns + "[[ranges]]\ncidrs = [\"192.0.2.1\"]\n", "t.toml:3:1: ranges[0]: missing 'name'"},
      {"duplicate range", kDns + range + "cidrs = [\"192.0.2.1\"]\n[[ranges]]\nname = \"a\"\ncidrs = [\"192.0.2.2\"]\n",
       "t.toml:7:8: duplicate range name \"a\" (already at line 3)"},
      {"overlap across ranges",
       kDns + range + "cidrs = [\"192.0.2.0/24\"]\n[[ranges]]\nname = \"b\"\ncidrs = [\"192.0.2.128/25\"]\n",
       "t.toml:8:10: 192.0.2.128/25 in range \"b\" overlaps 192.0.2.0/24 in range \"a\" (line 5): an IP must belong "
       "to exactly one range"},
      {"overlap, larger block later",
       kDns + range + "cidrs = [\"192.0.2.7\"]\n[[ranges]]\nname = \"b\"\ncidrs = [\"192.0.2.0/29\"]\n",
       "t.toml:8:10: 192.0.2.0/29 in range \"b\" overlaps 192.0.2.7/32 in range \"a\" (line 5)"},
      {"overlap within a range", kDns + range + "cidrs = [\"2001:db8::/120\", \"2001:db8::10\"]\n",
       "t.toml:5:28: 2001:db8::10/128 in range \"a\" overlaps 2001:db8::/120 in range \"a\" (line 5)"},
      {"bad duration", "[agent]\ninterval = \"90x\"\n" + kDns,
       "t.toml:2:12: agent.interval: bad duration \"90x\" (use e.g. \"30s\", \"5m\", \"1h30m\", \"2d\")"},
      {"interval too short", "[agent]\ninterval = \"30s\"\n" + kDns,
       "t.toml:2:12: agent.interval \"30s\" is too short: the minimum is 1m"},
      {"duration not a string", "[agent]\ninterval = 3600\n" + kDns,
       "t.toml:2:12: agent.interval must be a duration string like \"5m\", not an integer"},
      {"zero timeout", kDns + "timeout = \"0s\"\n", "t.toml:3:11: dns.timeout: bad duration \"0s\""},
      {"zero attempts", kDns + "attempts = 0\n", "t.toml:3:12: dns.attempts must be between 1 and 1000000, not 0"},
      {"negative qps", kDns + "max_qps = -1.5\n", "t.toml:3:11: dns.max_qps must be 0 (unlimited) or a positive rate"},
      {"zero sockets", kDns + "sockets = 0\n", "t.toml:3:11: dns.sockets must be between 1 and 1000000, not 0"},
      {"raise_after", kDns + "[alerts]\nraise_after = 0\n", "t.toml:4:15: alerts.raise_after must be between 1"},
      {"listen address", "[agent]\nlisten_address = \"9754\"\n" + kDns,
       "t.toml:2:18: agent.listen_address \"9754\" must be HOST:PORT"},
      {"no [dns]", "[agent]\n", "t.toml:1:1: [dns] servers is required"},
      {"servers missing", "[dns]\ntimeout = \"2s\"\n", "t.toml:1:1: dns.servers is required (list your own resolver"},
      {"servers empty", "[dns]\nservers = []\n", "t.toml:2:11: dns.servers is empty (list your own resolver"},
      {"server without port", "[dns]\nservers = [\"127.0.0.1\"]\n",
       "t.toml:2:12: dns.servers: \"127.0.0.1\" is not a numeric IP:port or [IPv6]:port"},
      {"server name", "[dns]\nservers = [\"resolver.example:53\"]\n",
       "t.toml:2:12: dns.servers: \"resolver.example:53\" is not a numeric IP:port"},
      {"v6 server without brackets", "[dns]\nservers = [\"::1:53\"]\n",
       "t.toml:2:12: dns.servers: \"::1:53\" is not a numeric IP:port"},
      {"server bad port", "[dns]\nservers = [\"[::1]:99999\"]\n",
       "t.toml:2:12: dns.servers: \"[::1]:99999\" is not a numeric IP:port"},
      {"domain zone", kDns + "[[dnsbl]]\nzone = \"dbl.spamhaus.org\"\n",
       "t.toml:4:8: zone \"dbl.spamhaus.org\" lists domain names, not IP addresses"},
      {"domain family", kDns + "[[dnsbl]]\nzone = \"rhs.example.org\"\nfamily = \"domain\"\n",
       "t.toml:5:10: zone \"rhs.example.org\" lists domain names, not IP addresses"},
      {"bad family", kDns + "[[dnsbl]]\nzone = \"bl.spamcop.net\"\nfamily = \"ipv5\"\n",
       "t.toml:5:10: dnsbl[0].family must be \"ipv4\", \"ipv6\" or \"both\", not \"ipv5\""},
      {"bad zone name", kDns + "[[dnsbl]]\nzone = \"zen..spamhaus.org\"\n",
       "t.toml:4:8: zone \"zen..spamhaus.org\" is not a valid DNS name: empty label"},
      {"zone with space", kDns + "[[dnsbl]]\nzone = \"bl spamcop.net\"\n",
       "t.toml:4:8: zone \"bl spamcop.net\" is not a valid DNS name: bad character ' '"},
      {"missing zone", kDns + "[[dnsbl]]\nfamily = \"ipv4\"\n", "t.toml:3:1: dnsbl[0]: missing 'zone'"},
      {"unknown dnsbl key", kDns + "[[dnsbl]]\nzone = \"bl.spamcop.net\"\nkey = \"x\"\n",
       "t.toml:5:1: unknown key 'key' in [[dnsbl]]"},
      {"duplicate zone", kDns + "[[dnsbl]]\nzone = \"bl.spamcop.net\"\n[[dnsbl]]\nzone = \"BL.spamcop.net\"\n",
       "t.toml:6:8: duplicate zone \"bl.spamcop.net\" (already at line 3)"},
      {"dnsbl not an array", kDns + "[dnsbl]\nzone = \"bl.spamcop.net\"\n",
       "t.toml:3:1: dnsbl must be a list of tables: write [[dnsbl]]"},
      {"key zone without key", kDns + "[[dnsbl]]\nzone = \"{key}.zen.dq.spamhaus.net\"\n",
       "t.toml:3:1: zone \"{key}.zen.dq.spamhaus.net\" needs its key from exactly one of key_env or key_file"},
      {"key env unset", kDns + "[[dnsbl]]\nzone = \"{key}.zen.dq.spamhaus.net\"\nkey_env = \"REPWATCH_TEST_UNSET\"\n",
       "t.toml:5:11: environment variable REPWATCH_TEST_UNSET (key for zone \"{key}.zen.dq.spamhaus.net\") is unset "
       "or empty"},
      {"key file unreadable", kDns + "[[dnsbl]]\nzone = \"{key}.zen.dq.spamhaus.net\"\nkey_file = \"/nonexistent/dqs.key\"\n",
       "t.toml:5:12: cannot read key_file \"/nonexistent/dqs.key\": No such file or directory"},
      {"key for a keyless zone", kDns + "[[dnsbl]]\nzone = \"bl.spamcop.net\"\nkey_env = \"X\"\n",
       "t.toml:5:11: dnsbl[0]: key_env/key_file given but zone \"bl.spamcop.net\" has no {key} label to put it in"},
      {"key written into the zone", kDns + "[[dnsbl]]\nzone = \"" + kKey + ".zen.dq.spamhaus.net\"\n",
       "t.toml:4:8: Spamhaus DQS zones take the key as the first label"},
      {"bad warmup date", kDns + range + "cidrs = [\"192.0.2.1\"]\nwarmup_start = \"2026-02-30\"\n",
       "t.toml:6:16: ranges[0].warmup_start must be a date \"YYYY-MM-DD\""},
      {"bad helo", kDns + range + "cidrs = [\"192.0.2.1\"]\nhelo = \"mail_1 .example\"\n",
       "t.toml:6:8: ranges[0].helo \"mail_1 .example\" is not a host name"},
      {"bad spf domain", kDns + range + "cidrs = [\"192.0.2.1\"]\nspf_domains = [\"acme..example\"]\n",
       "t.toml:6:16: ranges[0].spf_domains: \"acme..example\" is not a domain"},
      {"label not a string", kDns + range + "cidrs = [\"192.0.2.1\"]\nlabels = { team = 1 }\n",
       "t.toml:6:19: ranges[0].labels.team must be a string"},
      {"bad label name", kDns + range + "cidrs = [\"192.0.2.1\"]\nlabels = { \"a-b\" = \"x\" }\n",
       "t.toml:6:12: ranges[0].labels: \"a-b\" is not a valid label name"},
      {"range mx_probe type", kDns + range + "cidrs = [\"192.0.2.1\"]\nmx_probe = \"no\"\n",
       "t.toml:6:12: ranges[0].mx_probe must be true or false, not a string"},
      {"mx_probe not a table", "mx_probe = true\n" + kDns, "t.toml:1:12: mx_probe must be a table: write [mx_probe]"},
      {"mx_probe unknown key", kDns + "[mx_probe]\nhelo = \"mail.acme.example\"\n",
       "t.toml:4:1: unknown key 'helo' in [mx_probe]"},
      {"mx_probe enabled type", kDns + "[mx_probe]\nenabled = 1\n",
       "t.toml:4:11: mx_probe.enabled must be true or false, not an integer"},
      {"mx_probe bad domain", kDns + "[mx_probe]\ndomains = [\"gmail..com\"]\n",
       "t.toml:4:12: mx_probe.domains: \"gmail..com\" is not a domain: empty label (\"..\" or a leading dot) "
       "(\"catalogue\" stands for the built-in list of big receivers)"},
      {"mx_probe domain with a placeholder", kDns + "[mx_probe]\ndomains = [\"catalogue\", \"{domain}.example\"]\n",
       "t.toml:4:25: mx_probe.domains: \"{domain}.example\" is not a domain: bad character '{' (\"catalogue\" stands "
       "for the built-in list of big receivers)"},
      {"mx_probe domain listed twice", kDns + "[mx_probe]\ndomains = [\"mx.partner.example\", \"MX.Partner.example\"]\n",
       "t.toml:4:34: mx_probe.domains: \"mx.partner.example\" is listed twice"},
      {"mx_probe catalogue domain listed twice", kDns + "[mx_probe]\ndomains = [\"gmail.com\", \"gmail.com\"]\n",
       "t.toml:4:25: mx_probe.domains: \"gmail.com\" is listed twice"},
      {"mx_probe domain not a string", kDns + "[mx_probe]\ndomains = [\"gmail.com\", 7]\n",
       "t.toml:4:25: mx_probe.domains[1] must be a string, not an integer"},
      {"mx_probe empty domains", kDns + "[mx_probe]\ndomains = []\n",
       "t.toml:4:11: mx_probe.domains is empty (leave it out for the built-in catalogue)"},
      {"mx_probe port out of range", kDns + "[mx_probe]\nport = 70000\n",
       "t.toml:4:8: mx_probe.port 70000 is not a TCP port"},
      {"mx_probe port zero", kDns + "[mx_probe]\nport = 0\n",
       "t.toml:4:8: mx_probe.port must be between 1 and 1000000, not 0"},
      {"mx_probe rcpt_to without mail_from", kDns + "[mx_probe]\nrcpt_to = \"postmaster@{domain}\"\n",
       "t.toml:4:11: mx_probe.rcpt_to needs mail_from: RCPT TO only follows MAIL FROM"},
      {"mx_probe mail_from without @", kDns + "[mx_probe]\nmail_from = \"probe.acme.example\"\n",
       "t.toml:4:13: mx_probe.mail_from \"probe.acme.example\" is not a mail address"},
      {"mx_probe mail_from with a space", kDns + "[mx_probe]\nmail_from = \"probe @acme.example\"\n",
       "t.toml:4:13: mx_probe.mail_from \"probe @acme.example\" is not a mail address"},
      {"mx_probe mail_from in brackets", kDns + "[mx_probe]\nmail_from = \"<probe@acme.example>\"\n",
       "t.toml:4:13: mx_probe.mail_from \"<probe@acme.example>\" is not a mail address"},
      {"mx_probe mail_from empty", kDns + "[mx_probe]\nmail_from = \"\"\n",
       "t.toml:4:13: mx_probe.mail_from is empty (leave it out instead)"},
      {"mx_probe rcpt_to bad domain",
       kDns + "[mx_probe]\nmail_from = \"probe@acme.example\"\nrcpt_to = \"postmaster@{domain}..example\"\n",
       "t.toml:5:11: mx_probe.rcpt_to \"postmaster@{domain}..example\" is not a mail address (\"{domain}\" stands for "
       "the receiver domain)"},
      {"mx_probe rcpt_to without local part",
       kDns + "[mx_probe]\nmail_from = \"probe@acme.example\"\nrcpt_to = \"@{domain}\"\n",
       "t.toml:5:11: mx_probe.rcpt_to \"@{domain}\" is not a mail address (\"{domain}\" stands for the receiver domain)"},
      {"mx_probe max_rate zero", kDns + "[mx_probe]\nmax_rate = 0\n",
       "t.toml:4:12: mx_probe.max_rate must be above 0 (sessions started per second)"},
      {"mx_probe max_rate type", kDns + "[mx_probe]\nmax_rate = \"fast\"\n",
       "t.toml:4:12: mx_probe.max_rate must be a number, not a string"},
      {"mx_probe max_rate negative", kDns + "[mx_probe]\nmax_rate = -1\n",
       "t.toml:4:12: mx_probe.max_rate must be above 0 (sessions started per second)"},
      {"mx_probe max_parallel zero", kDns + "[mx_probe]\nmax_parallel = 0\n",
       "t.toml:4:16: mx_probe.max_parallel must be between 1 and 1000000, not 0"},
      {"mx_probe max_parallel too many", kDns + "[mx_probe]\nmax_parallel = 257\n",
       "t.toml:4:16: mx_probe.max_parallel must be at most 256"},
      {"mx_probe min_interval too short", kDns + "[mx_probe]\nmin_interval = \"30s\"\n",
       "t.toml:4:16: mx_probe.min_interval \"30s\" is too short: the minimum is 1m"},
      {"mx_probe connect_timeout too short", kDns + "[mx_probe]\nconnect_timeout = \"50ms\"\n",
       "t.toml:4:19: mx_probe.connect_timeout \"50ms\" is too short: the minimum is 100ms"},
      {"mx_probe banner_timeout bad duration", kDns + "[mx_probe]\nbanner_timeout = \"1 minute\"\n",
       "t.toml:4:18: mx_probe.banner_timeout: bad duration \"1 minute\" (use e.g. \"30s\", \"5m\", \"1h30m\", \"2d\")"},
      {"mx_probe command_timeout not a string", kDns + "[mx_probe]\ncommand_timeout = 30\n",
       "t.toml:4:19: mx_probe.command_timeout must be a duration string like \"5m\", not an integer"},
      {"mx_raise_after zero", kDns + "[alerts]\nmx_raise_after = 0\n",
       "t.toml:4:18: alerts.mx_raise_after must be between 1 and 1000000, not 0"},
      {"mx_clear_after type", kDns + "[alerts]\nmx_clear_after = \"1\"\n",
       "t.toml:4:18: alerts.mx_clear_after must be an integer, not a string"},
  };
  unsetenv("REPWATCH_TEST_UNSET");
  for (const ErrorCase& c : cases) {
    INFO(c.what << "\n--- config:\n" << c.toml << "--- errors:\n" << Joined(Errors(c.toml)));
    CHECK(AnyStartsWith(Errors(c.toml), c.want));
  }
}

TEST_CASE("every error is reported at once, in file order", "[config]") {
  const std::string toml = R"([agent]
interval = "90x"
colour = "blue"
[dns]
servers = ["8.8.8.8"]
attempts = 0
[[dnsbl]]
zone = "dbl.spamhaus.org"
[[ranges]]
name = "a"
cidrs = ["192.0.2.0/33", "10.0.0.0/8"]
[[ranges]]
name = "a"
cidrs = []
[webhooks]
)";
  const auto errors = Errors(toml);
  INFO(Joined(errors));
  const std::vector<std::string> want_prefixes = {
      "t.toml:2:12: agent.interval: bad duration",
      "t.toml:3:1: unknown key 'colour' in [agent]",
      "t.toml:5:12: dns.servers: \"8.8.8.8\" is not a numeric IP:port",
      "t.toml:6:12: dns.attempts must be between 1",
      "t.toml:8:8: zone \"dbl.spamhaus.org\" lists domain names",
      "t.toml:11:10: bad CIDR \"192.0.2.0/33\"",
      "t.toml:11:26: CIDR \"10.0.0.0/8\" in ranges[0].cidrs has 2^24 (16777216) addresses",
      "t.toml:13:8: duplicate range name \"a\"",
      "t.toml:14:9: range \"a\" has no addresses",
      "t.toml:15:1: webhooks must be a list of tables: write [[webhooks]]",
  };
  REQUIRE(errors.size() == want_prefixes.size());
  for (size_t i = 0; i < errors.size(); ++i) CHECK_THAT(errors[i], Catch::StartsWith(want_prefixes[i]));
}

TEST_CASE("a minimal config gets the documented defaults", "[config]") {
  auto cfg = ParseConfig(kDns + "[[ranges]]\nname = \"a\"\ncidrs = [\"192.0.2.0/24\", \"2001:db8::1\"]\n", "t.toml");
  REQUIRE(cfg.ok());
  const Config& c = cfg.value();
  CHECK(c.path == "t.toml");
  CHECK(c.agent.state_dir == "/var/lib/repwatch");
  CHECK(c.agent.interval == seconds(3600));
  CHECK(c.agent.listen_address == "127.0.0.1:9754");
  char host[256] = {};
  REQUIRE(gethostname(host, sizeof host - 1) == 0);
  CHECK(c.agent.instance == host);
  REQUIRE(c.dns.servers.size() == 1);
  CHECK(c.dns.servers[0].host == "127.0.0.1");
  CHECK(c.dns.servers[0].port == 53);
  CHECK(c.dns.timeout == milliseconds(2000));
  CHECK(c.dns.attempts == 3);
  CHECK(c.dns.max_in_flight == 256);
  CHECK(c.dns.sockets == 4);
  CHECK(c.alerts.raise_after == 2);
  CHECK(c.alerts.clear_after == 2);
  REQUIRE(c.ranges.size() == 1);
  CHECK(c.ranges[0].cidrs.size() == 2);
  CHECK(c.ranges[0].pos.line == 3);
  CHECK(c.warnings.empty());
}

TEST_CASE("a public resolver in dns.servers warns", "[config]") {
  auto cfg = ParseConfig("[dns]\nservers = [\"127.0.0.1:53\", \"[2606:4700:4700:0::1111]:53\"]\n", "t.toml");
  REQUIRE(cfg.ok());
  REQUIRE(cfg.value().warnings.size() == 1);
  CHECK_THAT(cfg.value().warnings[0].ToString(),
             Catch::StartsWith("t.toml:2:28: dns.servers: 2606:4700:4700::1111 is a public resolver"));
}

TEST_CASE("blocks of exactly 2^20 addresses are allowed", "[config]") {
  auto cfg = ParseConfig(kDns + "[[ranges]]\nname = \"big\"\ncidrs = [\"10.16.0.0/12\", \"2001:db8::/108\"]\n", "t.toml");
  REQUIRE(cfg.ok());
  CHECK(cfg.value().ranges.at(0).cidrs.at(0).Size() == (uint64_t{1} << 20));
}

TEST_CASE("every supported key is read", "[config]") {
  const std::string toml = R"([agent]
state_dir = "/srv/repwatch"
interval = "1h30m"
instance = "probe-7"
listen_address = "[::1]:9999"
[dns]
servers = ["192.0.2.53:5353", "[2001:db8::53]:53"]
timeout = "1s500ms"
attempts = 2
max_in_flight = 64
max_qps = 500
max_qps_per_server = 250.5
sockets = 8
[[dnsbl]]
zone = "bl.spamcop.net"
family = "both"
[[ranges]]
name = "acme"
cidrs = ["198.51.100.0/28"]
spf_domains = ["Acme.example"]
helo = "mail.acme.example"
warmup_start = 2026-11-01
warmup_schedule = "double-30"
labels = { team = "mail", tier = "gold" }
[alerts]
raise_after = 3
clear_after = 5
)";
  auto cfg = ParseConfig(toml, "t.toml");
  REQUIRE(cfg.ok());
  const Config& c = cfg.value();
  CHECK(c.agent.state_dir == "/srv/repwatch");
  CHECK(c.agent.interval == seconds(5400));
  CHECK(c.agent.instance == "probe-7");
  CHECK(c.agent.listen_address == "[::1]:9999");
  REQUIRE(c.dns.servers.size() == 2);
  CHECK(c.dns.servers[0].ToString() == "192.0.2.53:5353");
  CHECK(c.dns.servers[1].ToString() == "[2001:db8::53]:53");
  CHECK(c.dns.timeout == milliseconds(1500));
  CHECK(c.dns.attempts == 2);
  CHECK(c.dns.max_in_flight == 64);
  CHECK(c.dns.max_qps == 500);
  CHECK(c.dns.max_qps_per_server == 250.5);
  CHECK(c.dns.sockets == 8);
  REQUIRE(c.dnsbl.size() == 1);
  CHECK(c.dnsbl[0].family == ZoneFamily::kBoth);
  CHECK(c.dnsbl[0].pos.line == 14);
  const RangeConfig& r = c.ranges.at(0);
  CHECK(r.spf_domains == std::vector<std::string>{"acme.example"});
  CHECK(r.helo == "mail.acme.example");
  CHECK(r.warmup_start == "2026-11-01");
  CHECK(r.warmup_schedule == "double-30");
  CHECK(r.labels == std::map<std::string, std::string>{{"team", "mail"}, {"tier", "gold"}});
  CHECK(c.alerts.raise_after == 3);
  CHECK(c.alerts.clear_after == 5);
  // family = "both" on an IPv4-only catalogue zone is allowed, with a warning.
  REQUIRE(c.warnings.size() == 1);
  CHECK_THAT(c.warnings[0].ToString(), Catch::StartsWith("t.toml:16:10: zone \"bl.spamcop.net\" serves ipv4 only"));
}

std::vector<std::string> CatalogueDomains() {
  std::vector<std::string> out;
  for (const Receiver& r : ReceiverCatalogue()) out.push_back(r.domain);
  return out;
}

TEST_CASE("[mx_probe]: absent means off; present without domains probes the catalogue", "[config][mx]") {
  const std::string range = "[[ranges]]\nname = \"a\"\ncidrs = [\"192.0.2.0/24\"]\n";
  auto absent = ParseConfig(kDns + range, "t.toml");
  REQUIRE(absent.ok());
  const MxProbeConfig& off = absent.value().mx_probe;
  CHECK_FALSE(off.enabled);
  CHECK(off.domains.empty());
  CHECK(off.port == 25);
  CHECK(off.mail_from.empty());
  CHECK(off.rcpt_to.empty());
  CHECK(off.starttls);
  CHECK(off.min_interval == seconds(6 * 3600));
  CHECK(off.max_rate == 1);
  CHECK(off.max_parallel == 4);
  CHECK(off.connect_timeout == milliseconds(10000));
  CHECK(off.banner_timeout == milliseconds(60000));
  CHECK(off.command_timeout == milliseconds(30000));
  CHECK(absent.value().alerts.mx_raise_after == 1);
  CHECK(absent.value().alerts.mx_clear_after == 1);
  CHECK(absent.value().ranges.at(0).mx_probe);

  auto bare = ParseConfig(kDns + range + "[mx_probe]\n", "t.toml");
  REQUIRE(bare.ok());
  const MxProbeConfig& on = bare.value().mx_probe;
  CHECK(on.enabled);
  REQUIRE(CatalogueDomains().size() == 13);
  CHECK(on.domains == CatalogueDomains());
  CHECK(on.domains.front() == "gmail.com");
  CHECK(on.port == 25);
  CHECK(on.mail_from.empty());
  CHECK(on.rcpt_to.empty());
  CHECK(on.starttls);
  CHECK(on.min_interval == seconds(6 * 3600));
  CHECK(on.max_rate == 1);
  CHECK(on.max_parallel == 4);
  CHECK(bare.value().warnings.empty());

  auto disabled = ParseConfig(kDns + "[mx_probe]\nenabled = false\ndomains = [\"mx.partner.example\"]\n", "t.toml");
  REQUIRE(disabled.ok());
  CHECK_FALSE(disabled.value().mx_probe.enabled);
  CHECK(disabled.value().mx_probe.domains == std::vector<std::string>{"mx.partner.example"});
}

TEST_CASE("[mx_probe] domains: \"catalogue\" expands in place, its entries are probed once", "[config][mx]") {
  auto domains = [](const std::string& list) {
    auto cfg = ParseConfig(kDns + "[mx_probe]\ndomains = " + list + "\n", "t.toml");
    INFO(list << "\n" << (cfg.ok() ? std::string() : cfg.error()));
    REQUIRE(cfg.ok());
    CHECK(cfg.value().warnings.empty());
    return cfg.value().mx_probe.domains;
  };
  const std::vector<std::string> catalogue = CatalogueDomains();
  REQUIRE(catalogue.size() == 13);

  CHECK(domains(R"(["catalogue"])") == catalogue);
  CHECK(domains(R"(["Mx.Partner.Example"])") == std::vector<std::string>{"mx.partner.example"});

  // In place: what comes before stays before, what comes after stays after.
  std::vector<std::string> want = {"mx.partner.example"};
  want.insert(want.end(), catalogue.begin(), catalogue.end());
  want.push_back("mx.other.example");
  CHECK(domains(R"(["mx.partner.example", "catalogue", "mx.other.example"])") == want);

  // A catalogue entry written out as well: no error, probed once, where it first appears.
  CHECK(domains(R"(["catalogue", "outlook.com", "mx.partner.example"])") ==
        [&] {
          std::vector<std::string> w = catalogue;
          w.push_back("mx.partner.example");
          return w;
        }());
  std::vector<std::string> yahoo_first = {"yahoo.com"};
  for (const std::string& d : catalogue)
    if (d != "yahoo.com") yahoo_first.push_back(d);
  CHECK(domains(R"(["Yahoo.com", "catalogue"])") == yahoo_first);

  // The token twice (any case) is still one catalogue.
  CHECK(domains(R"(["catalogue", "CATALOGUE"])") == catalogue);
}

TEST_CASE("every [mx_probe] key is read", "[config][mx]") {
  const std::string toml = kDns + R"([[ranges]]
name = "acme"
cidrs = ["198.51.100.0/28"]
[[ranges]]
name = "elsewhere"
cidrs = ["203.0.113.0/28"]
mx_probe = false
[mx_probe]
enabled = true
domains = ["Mx.Partner.example", "gmail.com"]
port = 2525
mail_from = "probe@acme.example"
rcpt_to = "postmaster@{domain}"
starttls = false
min_interval = "2h30m"
max_rate = 0.5
max_parallel = 16
connect_timeout = "1500ms"
banner_timeout = "2m"
command_timeout = "1s250ms"
[alerts]
mx_raise_after = 2
mx_clear_after = 3
)";
  auto cfg = ParseConfig(toml, "t.toml");
  INFO((cfg.ok() ? std::string() : cfg.error()));
  REQUIRE(cfg.ok());
  const Config& c = cfg.value();
  const MxProbeConfig& m = c.mx_probe;
  CHECK(m.enabled);
  CHECK(m.domains == std::vector<std::string>{"mx.partner.example", "gmail.com"});
  CHECK(m.port == 2525);
  CHECK(m.mail_from == "probe@acme.example");
  CHECK(m.rcpt_to == "postmaster@{domain}");  // expanded per session, not here
  CHECK_FALSE(m.starttls);
  CHECK(m.min_interval == seconds(9000));
  CHECK(m.max_rate == 0.5);
  CHECK(m.max_parallel == 16);
  CHECK(m.connect_timeout == milliseconds(1500));
  CHECK(m.banner_timeout == milliseconds(120000));
  CHECK(m.command_timeout == milliseconds(1250));
  REQUIRE(c.ranges.size() == 2);
  CHECK(c.ranges[0].mx_probe);
  CHECK_FALSE(c.ranges[1].mx_probe);
  CHECK(c.alerts.mx_raise_after == 2);
  CHECK(c.alerts.mx_clear_after == 3);
  CHECK(c.alerts.raise_after == 2);  // the other streams keep theirs
  CHECK(c.alerts.clear_after == 2);
  CHECK(c.warnings.empty());
}

TEST_CASE("[mx_probe]: every error at once, exactly, in file order", "[config][mx]") {
  const std::string toml = kDns + R"([mx_probe]
domains = ["catalogue", "acme..example", "mx.partner.example", "mx.partner.example"]
port = 70000
rcpt_to = "postmaster@{domain}"
max_rate = 0
probe_from = "192.0.2.1"
)";
  CHECK(Errors(toml) ==
        std::vector<std::string>{
            "t.toml:4:25: mx_probe.domains: \"acme..example\" is not a domain: empty label (\"..\" or a leading "
            "dot) (\"catalogue\" stands for the built-in list of big receivers)",
            "t.toml:4:64: mx_probe.domains: \"mx.partner.example\" is listed twice",
            "t.toml:5:8: mx_probe.port 70000 is not a TCP port",
            "t.toml:6:11: mx_probe.rcpt_to needs mail_from: RCPT TO only follows MAIL FROM",
            "t.toml:7:12: mx_probe.max_rate must be above 0 (sessions started per second)",
            "t.toml:8:1: unknown key 'probe_from' in [mx_probe]",
        });
}

TEST_CASE("zones: catalogue entries, families and unknown zones", "[config]") {
  auto cfg = ParseConfig(kDns + R"([[dnsbl]]
zone = "zen.spamhaus.org"
[[dnsbl]]
zone = "bl.spamcop.net"
[[dnsbl]]
zone = "Bl.Example.NET"
[[dnsbl]]
zone = "v6.example.net"
family = "ipv6"
)",
                         "t.toml");
  REQUIRE(cfg.ok());
  const auto& z = cfg.value().dnsbl;
  REQUIRE(z.size() == 4);
  CHECK(z[0].known);
  CHECK(z[0].family == ZoneFamily::kBoth);
  CHECK(z[0].entry.name == "Spamhaus ZEN");
  CHECK(z[0].query_zone == "zen.spamhaus.org");
  CHECK(z[1].family == ZoneFamily::kIpv4);
  CHECK_FALSE(z[2].known);
  CHECK(z[2].zone == "bl.example.net");
  CHECK(z[2].query_zone == "bl.example.net");
  CHECK(z[2].family == ZoneFamily::kBoth);
  CHECK(z[2].entry.name == "bl.example.net");
  CHECK(z[2].entry.kind == ZoneKind::kBlock);
  CHECK(z[2].entry.codes.empty());
  CHECK(z[2].pos.line == 7);
  CHECK(z[3].family == ZoneFamily::kIpv6);
  const auto& w = cfg.value().warnings;
  REQUIRE(w.size() == 2);
  CHECK(w[0].ToString() ==
        "t.toml:7:1: zone \"bl.example.net\" is not in the catalogue: any 127.0.0.0/8 answer counts as listed, with no "
        "meaning");
}

TEST_CASE("dead, redundant and caveated zones warn but load", "[config]") {
  auto cfg = ParseConfig(kDns + R"([[dnsbl]]
zone = "dnsbl.sorbs.net"
[[dnsbl]]
zone = "cbl.abuseat.org"
[[dnsbl]]
zone = "b.barracudacentral.org"
)",
                         "t.toml");
  REQUIRE(cfg.ok());
  const auto& w = cfg.value().warnings;
  REQUIRE(w.size() == 3);
  CHECK_THAT(w[0].ToString(), Catch::StartsWith("t.toml:3:1: zone \"dnsbl.sorbs.net\" is dead: SORBS was shut down"));
  CHECK_THAT(w[1].ToString(), Catch::StartsWith("t.toml:5:1: zone \"cbl.abuseat.org\" is redundant: "));
  CHECK_THAT(w[1].message, Catch::Contains("zen.spamhaus.org"));
  CHECK_THAT(w[2].ToString(), Catch::StartsWith("t.toml:7:1: zone \"b.barracudacentral.org\": Barracuda answers only"));
}

TEST_CASE("every dead IP zone in the catalogue warns", "[config][catalogue]") {
  int dead = 0;
  for (const CatalogueEntry& e : Catalogue::BuiltIn().entries()) {
    if (e.dead.empty() || e.family == ZoneFamily::kDomain) continue;
    ++dead;
    auto cfg = ParseConfig(kDns + "[[dnsbl]]\nzone = \"" + e.zone + "\"\n", "t.toml");
    INFO(e.zone);
    REQUIRE(cfg.ok());
    REQUIRE(cfg.value().warnings.size() == 1);
    CHECK_THAT(cfg.value().warnings[0].message, Catch::Contains("is dead: " + e.dead));
  }
  CHECK(dead >= 10);
}

TEST_CASE("a {key} zone takes its key from the environment", "[config]") {
  setenv("REPWATCH_TEST_DQS_KEY", (" " + kKey + "\n").c_str(), 1);
  auto cfg = ParseConfig(kDns + "[[dnsbl]]\nzone = \"{key}.zen.dq.spamhaus.net\"\nkey_env = \"REPWATCH_TEST_DQS_KEY\"\n",
                         "t.toml");
  unsetenv("REPWATCH_TEST_DQS_KEY");
  REQUIRE(cfg.ok());
  const DnsblZone& z = cfg.value().dnsbl.at(0);
  CHECK(z.zone == "{key}.zen.dq.spamhaus.net");
  CHECK(z.query_zone == kKey + ".zen.dq.spamhaus.net");
  CHECK(z.known);
  CHECK(z.entry.key_required);
  CHECK(z.family == ZoneFamily::kBoth);
  CHECK(cfg.value().warnings.empty());
}

TEST_CASE("a {key} zone takes its key from a file, relative to the config", "[config]") {
  const std::string dir = TempDir();
  WriteFile(dir + "/dqs.key", kKey + "\n");
  WriteFile(dir + "/empty.key", " \n");
  WriteFile(dir + "/repwatch.toml", kDns + R"([[dnsbl]]
zone = "{key}.zen.dq.spamhaus.net"
key_file = "dqs.key"
)");
  WriteFile(dir + "/empty.toml", kDns + R"([[dnsbl]]
zone = "{key}.zen.dq.spamhaus.net"
key_file = "empty.key"
)");
  auto cfg = LoadConfig(dir + "/repwatch.toml");
  REQUIRE(cfg.ok());
  CHECK(cfg.value().dnsbl.at(0).query_zone == kKey + ".zen.dq.spamhaus.net");
  CHECK(cfg.value().path == dir + "/repwatch.toml");

  auto empty = LoadConfig(dir + "/empty.toml");
  REQUIRE_FALSE(empty.ok());
  CHECK(empty.error() == dir + "/empty.toml:5:12: key_file \"" + dir +
                             "/empty.key\" (key for zone \"{key}.zen.dq.spamhaus.net\") is empty");
  for (const char* f : {"/dqs.key", "/empty.key", "/repwatch.toml", "/empty.toml"}) unlink((dir + f).c_str());
  rmdir(dir.c_str());
}

TEST_CASE("the key never appears in any message", "[config]") {
  setenv("REPWATCH_TEST_SHORT_KEY", "abcdefghij", 1);
  setenv("REPWATCH_TEST_BAD_KEY", (kKey + "!").c_str(), 1);
  setenv("REPWATCH_TEST_DQS_KEY", kKey.c_str(), 1);
  const std::string toml = kDns + R"([[dnsbl]]
zone = "{key}.zen.dq.spamhaus.net"
key_env = "REPWATCH_TEST_SHORT_KEY"
[[dnsbl]]
zone = "{key}.sbl.dq.spamhaus.net"
key_env = "REPWATCH_TEST_BAD_KEY"
[[dnsbl]]
zone = "{key}.xbl.dq.spamhaus.net"
key_env = "REPWATCH_TEST_DQS_KEY"
[[dnsbl]]
zone = "{key}.xbl.dq.spamhaus.net"
key_env = "REPWATCH_TEST_DQS_KEY"
[[dnsbl]]
zone = "abcdefghijklmnopqrstuvwxyz.pbl.dq.spamhaus.net"
)";
  auto cfg = ParseConfig(toml, "t.toml");
  for (const char* v : {"REPWATCH_TEST_SHORT_KEY", "REPWATCH_TEST_BAD_KEY", "REPWATCH_TEST_DQS_KEY"}) unsetenv(v);
  REQUIRE_FALSE(cfg.ok());
  const auto errors = Lines(cfg.error());
  INFO(cfg.error());
  REQUIRE(errors.size() == 4);
  CHECK(errors[0] == "t.toml:5:11: the key from environment variable REPWATCH_TEST_SHORT_KEY has 10 characters; "
                     "Spamhaus DQS keys have 26");
  CHECK_THAT(errors[1], Catch::StartsWith("t.toml:8:11: the key from environment variable REPWATCH_TEST_BAD_KEY is "
                                          "not a single DNS label"));
  CHECK_THAT(errors[2], Catch::StartsWith("t.toml:13:8: duplicate zone \"{key}.xbl.dq.spamhaus.net\""));
  CHECK_THAT(errors[3], Catch::StartsWith("t.toml:16:8: Spamhaus DQS zones take the key as the first label"));
  CHECK(cfg.error().find("abcdefghij") == std::string::npos);
}

TEST_CASE("ParseDuration", "[config]") {
  struct Case {
    const char* text;
    long long secs;  // 0 = invalid
  };
  const Case cases[] = {
      {"30s", 30},   {"5m", 300},     {"1h", 3600},   {"1h30m", 5400}, {"2d", 172800}, {"1d2h3m4s", 93784},
      {"90x", 0},    {"", 0},         {"0s", 0},      {"1", 0},        {"m", 0},       {"30m1h", 0},
      {"1h1h", 0},   {"-5m", 0},      {"1.5h", 0},    {" 5m", 0},      {"5m ", 0},     {"500ms", 0},
      {"5M", 0},     {"99999999999d", 0},
  };
  for (const Case& c : cases) {
    INFO(c.text);
    auto d = ParseDuration(c.text);
    if (c.secs == 0) CHECK_FALSE(d.has_value());
    else CHECK(d == seconds(c.secs));
  }
  CHECK(ParseDurationMillis("500ms") == milliseconds(500));
  CHECK(ParseDurationMillis("1s500ms") == milliseconds(1500));
  CHECK(ParseDurationMillis("2s") == milliseconds(2000));
  CHECK_FALSE(ParseDurationMillis("500ms1s").has_value());
}

TEST_CASE("the example config loads without errors or warnings", "[config]") {
  std::string here = __FILE__;
  const std::string root = here.substr(0, here.rfind("tests/agent/"));
  unsetenv("REPWATCH_DQS_KEY");
  setenv("REPWATCH_ONCALL_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", 1);
  setenv("REPWATCH_API_TOKEN", "a-long-enough-api-token-for-tests", 1);
  auto cfg = LoadConfig(root + "configs/example.toml");
  unsetenv("REPWATCH_ONCALL_SECRET");
  unsetenv("REPWATCH_API_TOKEN");
  INFO((cfg.ok() ? std::string() : cfg.error()));
  REQUIRE(cfg.ok());
  const Config& c = cfg.value();
  for (const auto& w : c.warnings) FAIL_CHECK(w.ToString());
  CHECK(c.dnsbl.size() >= 3);
  CHECK(c.ranges.size() == 2);
  CHECK(c.dns.servers.size() == 2);
  CHECK(c.agent.instance == "mx-monitor-1");
  for (const DnsblZone& z : c.dnsbl) CHECK(z.known);
  REQUIRE(c.webhooks.size() == 1);
  CHECK(c.webhooks[0].format == WebhookFormat::kStandard);
  CHECK(c.webhooks[0].secret.starts_with("whsec_"));
  CHECK(c.alerts.failing_after == std::chrono::hours(6));
  CHECK(c.mx_probe.enabled);
  CHECK(c.mx_probe.domains.size() == ReceiverCatalogue().size() + 1);
  CHECK(c.mx_probe.domains.back() == "mx.partner.example");
  CHECK(c.mx_probe.rcpt_to == "postmaster@{domain}");
  REQUIRE(c.volume.sources.size() == 2);
  CHECK(c.volume.sources[0].tags.size() == 2);
  CHECK(c.api.token.size() >= 16);
  CHECK(c.warmup.schedules.size() == 1);
}

TEST_CASE("a missing config file is reported", "[config]") {
  auto cfg = LoadConfig("/nonexistent/repwatch.toml");
  REQUIRE_FALSE(cfg.ok());
  CHECK(cfg.error() == "/nonexistent/repwatch.toml:1:1: cannot read the config: No such file or directory");
}

}  // namespace
}  // namespace repwatch
