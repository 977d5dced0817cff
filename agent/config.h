// Configuration: the TOML file described in DESIGN.md and configs/example.toml.
// LoadConfig() validates everything up front and reports *every* problem as
// "file:line:col: message"; a Config that loaded is safe to run as is.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "agent/catalogue.h"
#include "agent/log_formats.h"
#include "agent/ip.h"
#include "agent/status.h"

namespace repwatch {

struct SourcePos {
  std::string file;
  int line = 0;
  int column = 0;
};

struct ConfigIssue {
  SourcePos pos;
  std::string message;
  std::string ToString() const;  // "file:line:col: message"
};

struct AgentConfig {
  std::string state_dir = "/var/lib/repwatch";
  std::chrono::seconds interval{3600};
  std::string instance;           // name carried in webhooks; default: host name
  std::string listen_address = "127.0.0.1:9754";  // [agent] listen_address; CLI flag overrides
};

struct DnsServer {
  std::string host;  // numeric IPv4/IPv6 address only; names would need a resolver
  uint16_t port = 53;
  std::string ToString() const;   // "127.0.0.1:53" / "[::1]:53"
};

struct DnsConfig {
  std::vector<DnsServer> servers;               // required, no public default
  std::chrono::milliseconds timeout{2000};      // per attempt
  int attempts = 3;                             // total tries per question (>= 1)
  int max_in_flight = 256;                      // questions on the wire, all servers together
  double max_qps = 0;                           // global rate limit; 0 = unlimited
  double max_qps_per_server = 0;                // per-server rate limit; 0 = unlimited
  int sockets = 4;                              // UDP sockets (each its own random source port)
};

struct DnsblZone {
  std::string zone;            // as configured, lowercased (may contain "{key}"); the metric label
  std::string query_zone;      // what is queried: "{key}" replaced by the secret key
  ZoneFamily family = ZoneFamily::kBoth;
  CatalogueEntry entry;        // from the catalogue, or a generic entry for unknown zones
  bool known = false;          // found in the catalogue
  SourcePos pos;
};

struct RangeConfig {
  std::string name;
  std::vector<Cidr> cidrs;
  std::vector<std::string> spf_domains;
  std::string helo;                            // optional; "{ptr}" stands for the address's PTR name
  std::string expected_ptr;                    // optional glob ("*.out.acme.example"); '*' = one or more chars
  std::optional<std::string> warmup_start;     // "YYYY-MM-DD"
  std::string warmup_schedule;
  std::map<std::string, std::string> labels;   // [ranges.labels] free-form, for routing
  bool mx_probe = true;                        // false: [mx_probe] skips this range (its IPs are not on this host)
  SourcePos pos;
};

// [fcrdns]: forward-confirmed reverse DNS, generic PTR names and HELO, for every address.
struct FcrdnsConfig {
  bool enabled = true;
};

// [spf]: RFC 7208 check_host() for every address and each of its range's spf_domains.
struct SpfConfig {
  bool enabled = true;
};

// [mx_probe]: SMTP sessions from each sending IP to the receivers' MX hosts
// (checks/mx_probe.h). Absent section: the check is off.
struct MxProbeConfig {
  bool enabled = false;
  std::vector<std::string> domains;           // receiver domains, lowercase, in order; "catalogue" expanded
  uint16_t port = 25;
  std::string mail_from;                      // empty: the session ends after EHLO (and STARTTLS)
  std::string rcpt_to;                        // "{domain}" = the receiver domain; needs mail_from
  bool starttls = true;                       // use STARTTLS when the server offers it
  std::chrono::seconds min_interval{6 * 3600};  // per (source IP, receiver domain); the daemon reuses the last result until then
  double max_rate = 1;                        // sessions started per second, all sources together
  int max_parallel = 4;                       // sessions at once (still one at a time per destination host)
  std::chrono::milliseconds connect_timeout{10000};
  std::chrono::milliseconds banner_timeout{60000};   // the greeting, however slowly it trickles in
  std::chrono::milliseconds command_timeout{30000};  // each reply after that (and the TLS handshake)
};

// [[volume.sources]]: an MTA log to follow (agent/volume_ingest.h).
struct VolumeSourceConfig {
  std::string name;                          // unique; default: the path. Keys the stored position.
  LogFormat format = LogFormat::kPostfix;    // `kind`
  std::string path;
  std::map<std::string, IpAddress> tags;     // postfix: syslog tag or service name -> source address
  SourcePos pos;
};

struct VolumeConfig {
  std::vector<VolumeSourceConfig> sources;
  std::chrono::milliseconds poll_interval{1000};  // how often the logs are read
};

// [api]: the bearer token that write endpoints (POST /api/v1/volume) require.
struct ApiConfig {
  std::string token;  // from token_file or token_env; empty: write endpoints answer 403
};

// [[warmup.schedules]]: a custom ramp.
struct WarmupScheduleConfig {
  std::string name;
  bool hourly = false;                 // per = "hour" | "day"
  std::vector<uint64_t> allowances;    // one per ramp day
  SourcePos pos;
};

// [warmup]: who is warming up and how they are judged (checks/warmup.h).
struct WarmupConfig {
  bool auto_start = true;              // an address first seen sending starts a ramp (and again after idle_days)
  int idle_days = 30;
  std::string schedule = "double-30";  // for auto-started addresses and ranges without warmup_schedule
  double tolerance = 1.2;
  double backoff_share = 0.05;
  int backoff_min_attempts = 50;
  double stall_ratio = 0.25;
  int stall_days = 3;
  std::vector<WarmupScheduleConfig> schedules;
};

struct AlertsConfig {
  int raise_after = 2;                        // consecutive problem results before an event
  int clear_after = 2;                        // consecutive ok results before the clearing event
  std::chrono::seconds failing_after{6 * 3600};  // a stream in `error` this long -> check.failing
  // MX streams count sessions, not cycles: a receiver's reply is its own verdict and
  // sessions are min_interval apart, so by default one reply raises or clears.
  int mx_raise_after = 1;
  int mx_clear_after = 1;
};

enum class WebhookFormat { kStandard, kSlack, kAlertmanager };

// One [[webhooks]] sink.
struct WebhookConfig {
  std::string name;                           // unique; the metric label
  std::string url;                            // http:// or https://
  WebhookFormat format = WebhookFormat::kStandard;
  std::string secret;                         // "whsec_..." (standard: required), read from secret_env/secret_file
  std::vector<std::string> events;            // globs ("dnsbl.*"); empty = every event
  std::vector<std::string> ranges;            // range names; empty = every range
  std::map<std::string, std::string> labels;  // the range's labels must include these
  std::chrono::milliseconds timeout{15000};   // per request
  std::chrono::seconds min_interval{10};      // per-sink rate limit: at most one request per interval
  int max_items = 100;                        // items per request (bursts are split beyond this)
  // Retries: exponential back-off with jitter from retry_initial (x4 per attempt) up to
  // retry_max; a longer Retry-After from the receiver wins. Retries never stop (at least once).
  std::chrono::milliseconds retry_initial{5000};
  std::chrono::milliseconds retry_max{24 * 3600 * 1000};
  SourcePos pos;
};

struct Config {
  std::string path;
  AgentConfig agent;
  DnsConfig dns;
  std::vector<DnsblZone> dnsbl;
  std::vector<RangeConfig> ranges;
  FcrdnsConfig fcrdns;
  SpfConfig spf;
  MxProbeConfig mx_probe;
  VolumeConfig volume;
  ApiConfig api;
  WarmupConfig warmup;
  AlertsConfig alerts;
  std::vector<WebhookConfig> webhooks;
  std::vector<ConfigIssue> warnings;  // e.g. a dead or redundant zone; never fatal
};

// Reads and validates `path`. On failure the Status message holds every issue,
// one "file:line:col: message" per line, in file order. Secrets (DNSBL keys) are
// read from the environment variable or file the config names, never from the
// config text, and never appear in a message; a relative key_file is resolved
// against the config file's directory. Zones are looked up in Catalogue::BuiltIn().
Result<Config> LoadConfig(const std::string& path);

// Same, from text already in memory; `path` is used in messages. Secrets files
// named in the text are still read from disk.
Result<Config> ParseConfig(std::string_view toml_text, const std::string& path);

// Parses "30s", "5m", "1h", "1h30m", "2d"; nullopt if malformed or zero.
// Units go from large to small, each at most once.
std::optional<std::chrono::seconds> ParseDuration(std::string_view text);
// Same, also accepting milliseconds ("500ms", "1s500ms"); for dns.timeout.
std::optional<std::chrono::milliseconds> ParseDurationMillis(std::string_view text);

}  // namespace repwatch
