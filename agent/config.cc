#include "agent/config.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <initializer_list>
#include <set>
#include <sstream>

#include <toml++/toml.h>

#include "agent/receivers.h"
#include "agent/text.h"

namespace repwatch {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr uint64_t kMaxBlockSize = uint64_t{1} << 20;

// The built-in warm-up schedules (checks/warmup_schedule.h BuiltInSchedules; a test
// keeps the two lists equal).
constexpr std::string_view kBuiltInScheduleNames[] = {"double-30", "sendgrid-hourly", "per-receiver"};

// Big public resolvers, whose DNSBL queries Spamhaus and others refuse.
const std::set<std::string, std::less<>> kPublicResolvers = {
    "8.8.8.8", "8.8.4.4", "1.1.1.1", "1.0.0.1", "9.9.9.9", "149.112.112.112", "208.67.222.222",
    "208.67.220.220", "2001:4860:4860::8888", "2001:4860:4860::8844", "2606:4700:4700::1111",
    "2606:4700:4700::1001", "2620:fe::fe"};

std::string Quote(std::string_view s) { return "\"" + std::string(s) + "\""; }

std::string_view TypeName(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::table: return "a table";
    case toml::node_type::array: return "an array";
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a float";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::date: return "a date";
    case toml::node_type::time: return "a time";
    case toml::node_type::date_time: return "a date-time";
    default: return "nothing";
  }
}

std::optional<int> ParsePort(std::string_view s) {
  int port = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), port);
  if (ec != std::errc() || end != s.data() + s.size() || port < 1 || port > 65535) return std::nullopt;
  return port;
}

// "IP:port" or "[IPv6]:port", numeric only.
std::optional<DnsServer> ParseServer(std::string_view s) {
  std::string_view host, port;
  if (!s.empty() && s[0] == '[') {
    const size_t close = s.find("]:");
    if (close == std::string_view::npos) return std::nullopt;
    host = s.substr(1, close - 1);
    port = s.substr(close + 2);
  } else {
    const size_t colon = s.find(':');
    if (colon == std::string_view::npos || s.find(':', colon + 1) != std::string_view::npos) return std::nullopt;
    host = s.substr(0, colon);
    port = s.substr(colon + 1);
  }
  auto ip = IpAddress::Parse(host);
  auto p = ParsePort(port);
  if (!ip.ok() || !p) return std::nullopt;
  return DnsServer{ip.value().ToString(), static_cast<uint16_t>(*p)};
}

bool ValidDate(int y, int m, int d) {
  static constexpr int kDays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (y < 1970 || y > 9999 || m < 1 || m > 12 || d < 1 || d > kDays[m - 1]) return false;
  const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return !(m == 2 && d == 29 && !leap);
}

std::optional<std::string> ParseDate(std::string_view s) {
  int y = 0, m = 0, d = 0;
  if (s.size() != 10 || s[4] != '-' || s[7] != '-') return std::nullopt;
  auto num = [&](size_t at, size_t len, int& out) {
    auto [end, ec] = std::from_chars(s.data() + at, s.data() + at + len, out);
    return ec == std::errc() && end == s.data() + at + len;
  };
  if (!num(0, 4, y) || !num(5, 2, m) || !num(8, 2, d) || !ValidDate(y, m, d)) return std::nullopt;
  return std::string(s);
}

bool ValidLabelName(std::string_view s) {
  if (s.empty() || std::isdigit(static_cast<unsigned char>(s[0]))) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; });
}

std::optional<std::string> HostNameProblem(std::string_view name) {
  if (name.find('{') != std::string_view::npos) return "bad character '{'";
  return ZoneNameProblem(name);
}

std::string Trim(std::string s) {
  const char* ws = " \t\r\n";
  const size_t b = s.find_first_not_of(ws);
  if (b == std::string::npos) return {};
  return s.substr(b, s.find_last_not_of(ws) - b + 1);
}

std::optional<std::string> ReadFile(const std::string& path, std::string* error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *error = std::strerror(errno);
    return std::nullopt;
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) {
    *error = "read error";
    return std::nullopt;
  }
  return ss.str();
}

struct CidrAt {
  Cidr cidr;
  std::string range;
  SourcePos pos;
};

// Walks the parsed TOML tree, filling a Config and collecting every issue.
class Loader {
 public:
  explicit Loader(std::string path) : path_(std::move(path)) { config_.path = path_; }

  Result<Config> Run(const toml::table& root);

 private:
  SourcePos Pos(const toml::source_region& r) const {
    if (r.begin.line == 0) return SourcePos{path_, 1, 1};
    return SourcePos{path_, static_cast<int>(r.begin.line), static_cast<int>(r.begin.column)};
  }
  void Error(const toml::source_region& at, std::string msg) { errors_.push_back({Pos(at), std::move(msg)}); }
  void Warn(const toml::source_region& at, std::string msg) { config_.warnings.push_back({Pos(at), std::move(msg)}); }

  void CheckKeys(const toml::table& t, std::initializer_list<std::string_view> allowed, std::string_view section);
  const toml::table* Section(const toml::table& root, std::string_view name);
  const toml::node* Typed(const toml::table& t, std::string_view key, std::string_view where, toml::node_type type,
                          std::string_view want);
  void String(const toml::table& t, std::string_view key, std::string_view where, std::string& out);
  void Int(const toml::table& t, std::string_view key, std::string_view where, int min, int& out);
  void Number(const toml::table& t, std::string_view key, std::string_view where, double& out);
  std::vector<const toml::node*> StringArray(const toml::table& t, std::string_view key, std::string_view where);
  template <typename D>
  void Duration(const toml::table& t, std::string_view key, std::string_view where, D min, std::string_view min_text,
                D& out);

  void Agent(const toml::table& root);
  void Dns(const toml::table& root);
  void Servers(const toml::table& dns);
  void Dnsbl(const toml::table& root);
  std::optional<DnsblZone> Zone(const toml::table& t, std::string_view where);
  bool ZoneFamilyFor(const toml::table& t, std::string_view where, DnsblZone& z);
  void ZoneKey(const toml::table& t, std::string_view where, DnsblZone& z);
  void ZoneWarnings(const toml::table& t, const DnsblZone& z);
  void Ranges(const toml::table& root);
  void Range(const toml::table& t, std::string_view where, RangeConfig& r);
  void RangeCidrs(const toml::table& t, std::string_view where, RangeConfig& r);
  void RangeOptional(const toml::table& t, std::string_view where, RangeConfig& r);
  void Overlaps();
  void Enabled(const toml::table& root, std::string_view section, bool& enabled);
  std::optional<std::string> Secret(const toml::table& t, std::string_view where, std::string_view what,
                                    std::string_view prefix = "secret");
  void Webhooks(const toml::table& root);
  void Webhook(const toml::table& t, std::string_view where, WebhookConfig& w);
  void Alerts(const toml::table& root);
  void MxProbe(const toml::table& root);
  void Volume(const toml::table& root);
  void VolumeSource(const toml::table& t, const std::string& where, VolumeSourceConfig& v);
  void Api(const toml::table& root);
  void Warmup(const toml::table& root);
  void WarmupSchedules(const toml::table& t);
  void MxProbeDomains(const toml::table& t);

  std::string path_;
  Config config_;
  std::vector<ConfigIssue> errors_;
  std::vector<CidrAt> cidrs_;
};

void Loader::CheckKeys(const toml::table& t, std::initializer_list<std::string_view> allowed,
                       std::string_view section) {
  for (const auto& [k, v] : t) {
    if (std::find(allowed.begin(), allowed.end(), k.str()) == allowed.end())
      Error(k.source(), "unknown key '" + std::string(k.str()) + "' in [" + std::string(section) + "]");
  }
}

const toml::table* Loader::Section(const toml::table& root, std::string_view name) {
  const toml::node* n = root.get(name);
  if (!n) return nullptr;
  if (!n->is_table()) Error(n->source(), std::string(name) + " must be a table: write [" + std::string(name) + "]");
  return n->as_table();
}

const toml::node* Loader::Typed(const toml::table& t, std::string_view key, std::string_view where,
                                toml::node_type type, std::string_view want) {
  const toml::node* n = t.get(key);
  if (!n) return nullptr;
  if (n->type() == type) return n;
  Error(n->source(), std::string(where) + " must be " + std::string(want) + ", not " + std::string(TypeName(*n)));
  return nullptr;
}

void Loader::String(const toml::table& t, std::string_view key, std::string_view where, std::string& out) {
  if (auto n = Typed(t, key, where, toml::node_type::string, "a string")) out = n->as_string()->get();
}

void Loader::Int(const toml::table& t, std::string_view key, std::string_view where, int min, int& out) {
  const toml::node* n = Typed(t, key, where, toml::node_type::integer, "an integer");
  if (!n) return;
  const int64_t v = n->as_integer()->get();
  if (v < min || v > 1'000'000) {
    Error(n->source(), std::string(where) + " must be between " + std::to_string(min) + " and 1000000, not " +
                           std::to_string(v));
    return;
  }
  out = static_cast<int>(v);
}

void Loader::Number(const toml::table& t, std::string_view key, std::string_view where, double& out) {
  const toml::node* n = t.get(key);
  if (!n) return;
  if (!n->is_number()) {
    Error(n->source(), std::string(where) + " must be a number, not " + std::string(TypeName(*n)));
    return;
  }
  const double v = n->is_integer() ? static_cast<double>(n->as_integer()->get()) : n->as_floating_point()->get();
  if (!(v >= 0) || v > 1e9) {
    Error(n->source(), std::string(where) + " must be 0 (unlimited) or a positive rate");
    return;
  }
  out = v;
}

std::vector<const toml::node*> Loader::StringArray(const toml::table& t, std::string_view key,
                                                   std::string_view where) {
  std::vector<const toml::node*> out;
  const toml::node* n = Typed(t, key, where, toml::node_type::array, "an array of strings");
  if (!n) return out;
  const toml::array& arr = *n->as_array();
  for (size_t i = 0; i < arr.size(); ++i) {
    if (arr[i].is_string()) out.push_back(&arr[i]);
    else Error(arr[i].source(), std::string(where) + "[" + std::to_string(i) + "] must be a string, not " +
                                    std::string(TypeName(arr[i])));
  }
  return out;
}

template <typename D>
void Loader::Duration(const toml::table& t, std::string_view key, std::string_view where, D min,
                      std::string_view min_text, D& out) {
  const toml::node* n = Typed(t, key, where, toml::node_type::string, "a duration string like \"5m\"");
  if (!n) return;
  const std::string& text = n->as_string()->get();
  std::optional<D> d;
  if constexpr (std::is_same_v<D, milliseconds>) d = ParseDurationMillis(text);
  else d = ParseDuration(text);
  if (!d) {
    Error(n->source(), std::string(where) + ": bad duration " + Quote(text) +
                           " (use e.g. \"30s\", \"5m\", \"1h30m\", \"2d\")");
  } else if (*d < min) {
    Error(n->source(), std::string(where) + " " + Quote(text) + " is too short: the minimum is " + std::string(min_text));
  } else {
    out = *d;
  }
}

void Loader::Agent(const toml::table& root) {
  const toml::table* t = Section(root, "agent");
  if (!t) return;
  CheckKeys(*t, {"state_dir", "interval", "instance", "listen_address"}, "agent");
  AgentConfig& a = config_.agent;
  String(*t, "state_dir", "agent.state_dir", a.state_dir);
  if (a.state_dir.empty()) Error(t->get("state_dir")->source(), "agent.state_dir must not be empty");
  Duration(*t, "interval", "agent.interval", seconds(60), "1m", a.interval);
  String(*t, "instance", "agent.instance", a.instance);
  if (t->get("instance") && a.instance.empty()) Error(t->get("instance")->source(), "agent.instance must not be empty");
  String(*t, "listen_address", "agent.listen_address", a.listen_address);
  if (const toml::node* n = t->get("listen_address"); n && n->is_string()) {
    const size_t colon = a.listen_address.rfind(':');
    if (colon == std::string::npos || colon == 0 || !ParsePort(a.listen_address.substr(colon + 1)))
      Error(n->source(), "agent.listen_address " + Quote(a.listen_address) + " must be HOST:PORT");
  }
}

void Loader::Servers(const toml::table& dns) {
  const std::string hint = " (list your own resolver, e.g. [\"127.0.0.1:53\"]; there is no public default)";
  if (!dns.get("servers")) {
    Error(dns.source(), "dns.servers is required" + hint);
    return;
  }
  const toml::node* n = dns.get("servers");
  if (n->is_array() && n->as_array()->empty()) Error(n->source(), "dns.servers is empty" + hint);
  for (const toml::node* s : StringArray(dns, "servers", "dns.servers")) {
    const std::string& text = s->as_string()->get();
    auto server = ParseServer(text);
    if (!server) {
      Error(s->source(), "dns.servers: " + Quote(text) + " is not a numeric IP:port or [IPv6]:port");
      continue;
    }
    if (kPublicResolvers.count(server->host))
      Warn(s->source(), "dns.servers: " + server->host + " is a public resolver; Spamhaus and other lists refuse "
                        "its queries (127.255.255.254), so their answers will be errors: use your own resolver");
    config_.dns.servers.push_back(*server);
  }
}

void Loader::Dns(const toml::table& root) {
  const toml::table* t = Section(root, "dns");
  if (!t) {
    if (!root.get("dns"))
      Error(root.source(), "[dns] servers is required (your own resolver, e.g. [\"127.0.0.1:53\"]; no public default)");
    return;
  }
  CheckKeys(*t, {"servers", "timeout", "attempts", "max_in_flight", "max_qps", "max_qps_per_server", "sockets"}, "dns");
  DnsConfig& d = config_.dns;
  Servers(*t);
  Duration(*t, "timeout", "dns.timeout", milliseconds(1), "1ms", d.timeout);
  Int(*t, "attempts", "dns.attempts", 1, d.attempts);
  Int(*t, "max_in_flight", "dns.max_in_flight", 1, d.max_in_flight);
  Number(*t, "max_qps", "dns.max_qps", d.max_qps);
  Number(*t, "max_qps_per_server", "dns.max_qps_per_server", d.max_qps_per_server);
  Int(*t, "sockets", "dns.sockets", 1, d.sockets);
}

bool Loader::ZoneFamilyFor(const toml::table& t, std::string_view where, DnsblZone& z) {
  const std::string domain_msg = "zone " + Quote(z.zone) +
                                 " lists domain names, not IP addresses (a domain/RHS list such as DBL or "
                                 "URIBL); repwatch checks IPs, so remove it";
  if (z.known && z.entry.family == ZoneFamily::kDomain) {
    Error(t.get("zone")->source(), domain_msg);
    return false;
  }
  z.family = z.known ? z.entry.family : ZoneFamily::kBoth;
  std::string text;
  String(t, "family", std::string(where) + ".family", text);
  if (text.empty()) return true;
  auto f = ParseZoneFamily(text);
  if (f == ZoneFamily::kDomain) {
    Error(t.get("family")->source(), domain_msg);
    return false;
  }
  if (!f) {
    Error(t.get("family")->source(), std::string(where) + ".family must be \"ipv4\", \"ipv6\" or \"both\", not " +
                                         Quote(text));
    return false;
  }
  if (z.known && z.entry.family != ZoneFamily::kBoth && *f != z.entry.family)
    Warn(t.get("family")->source(), "zone " + Quote(z.zone) + " serves " + std::string(ZoneFamilyName(z.entry.family)) +
                                        " only (catalogue); family = " + Quote(text) + " queries addresses it never lists");
  z.family = *f;
  return true;
}

void Loader::ZoneKey(const toml::table& t, std::string_view where, DnsblZone& z) {
  const toml::node* env = t.get("key_env");
  const toml::node* file = t.get("key_file");
  const size_t slot = z.zone.find("{key}");
  z.query_zone = z.zone;
  if (slot == std::string::npos) {
    if (env || file) Error((env ? env : file)->source(), std::string(where) + ": key_env/key_file given but zone " +
                                                             Quote(z.zone) + " has no {key} label to put it in");
    return;
  }
  if (!env == !file) {
    Error(t.source(), "zone " + Quote(z.zone) + " needs its key from exactly one of key_env or key_file");
    return;
  }
  std::string name, key, error;
  String(t, env ? "key_env" : "key_file", std::string(where) + (env ? ".key_env" : ".key_file"), name);
  const toml::node* at = env ? env : file;
  if (name.empty()) return;
  std::string source;
  if (env) {
    const char* v = std::getenv(name.c_str());
    key = Trim(v ? v : "");
    source = "environment variable " + name;
    if (key.empty()) return Error(at->source(), source + " (key for zone " + Quote(z.zone) + ") is unset or empty");
  } else {
    std::string full = name;
    if (full[0] != '/' && path_.find('/') != std::string::npos) full = path_.substr(0, path_.rfind('/') + 1) + name;
    auto content = ReadFile(full, &error);
    source = "key_file " + Quote(full);
    if (!content) return Error(at->source(), "cannot read " + source + ": " + error);
    key = Trim(*content);
    if (key.empty()) return Error(at->source(), source + " (key for zone " + Quote(z.zone) + ") is empty");
  }
  const bool label_ok = key.size() <= 63 && std::all_of(key.begin(), key.end(), [](char c) {
                          return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_';
                        });
  if (!label_ok) return Error(at->source(), "the key from " + source + " is not a single DNS label (letters, digits, '-')");
  if (z.zone.ends_with(".dq.spamhaus.net") && key.size() != 26)
    return Error(at->source(), "the key from " + source + " has " + std::to_string(key.size()) +
                                   " characters; Spamhaus DQS keys have 26");
  z.query_zone.replace(slot, 5, key);
}

void Loader::ZoneWarnings(const toml::table& t, const DnsblZone& z) {
  const auto& e = z.entry;
  const std::string q = "zone " + Quote(z.zone);
  if (!z.known)
    Warn(t.source(), q + " is not in the catalogue: any 127.0.0.0/8 answer counts as listed, with no meaning");
  if (!e.dead.empty()) Warn(t.source(), q + " is dead: " + e.dead + "; remove it");
  if (!e.redundant.empty()) Warn(t.source(), q + " is redundant: " + e.redundant);
  if (e.key_required && z.zone.find("{key}") == std::string::npos)
    Warn(t.source(), q + " answers only with an access key; its answers will be errors");
  if (!e.note.empty()) Warn(t.source(), q + ": " + e.note);
}

std::optional<DnsblZone> Loader::Zone(const toml::table& t, std::string_view where) {
  CheckKeys(t, {"zone", "family", "key_env", "key_file"}, "[dnsbl]");
  DnsblZone z;
  z.pos = Pos(t.source());
  String(t, "zone", std::string(where) + ".zone", z.zone);
  const toml::node* at = t.get("zone");
  if (!at) Error(t.source(), std::string(where) + ": missing 'zone'");
  else if (at->is_string() && z.zone.empty()) Error(at->source(), std::string(where) + ".zone is empty");
  if (z.zone.empty()) return std::nullopt;
  z.zone = AsciiLower(z.zone);
  if (z.zone.ends_with(".dq.spamhaus.net") && !z.zone.starts_with("{key}.")) {
    Error(at->source(), "Spamhaus DQS zones take the key as the first label: write \"{key}.<zone>.dq.spamhaus.net\" "
                        "and set key_env or key_file, so the key stays out of the config and the metrics");
    return std::nullopt;
  }
  if (auto problem = ZoneNameProblem(z.zone)) {
    Error(at->source(), "zone " + Quote(z.zone) + " is not a valid DNS name: " + *problem);
    return std::nullopt;
  }
  const CatalogueEntry* e = Catalogue::BuiltIn().Find(z.zone);
  z.known = e != nullptr;
  if (e) z.entry = *e;
  else z.entry.zone = z.entry.name = z.zone;
  if (!ZoneFamilyFor(t, where, z)) return std::nullopt;
  ZoneKey(t, where, z);
  ZoneWarnings(t, z);
  return z;
}

void Loader::Dnsbl(const toml::table& root) {
  const toml::node* n = root.get("dnsbl");
  if (!n) return;
  const toml::array* arr = n->as_array();
  if (!arr || !arr->is_array_of_tables()) return Error(n->source(), "dnsbl must be a list of tables: write [[dnsbl]]");
  std::map<std::string, int> seen;  // zone -> line
  for (size_t i = 0; i < arr->size(); ++i) {
    const toml::table& t = *(*arr)[i].as_table();
    auto z = Zone(t, "dnsbl[" + std::to_string(i) + "]");
    if (!z) continue;
    auto [it, fresh] = seen.emplace(z->zone, z->pos.line);
    if (!fresh) Error(t.get("zone")->source(), "duplicate zone " + Quote(z->zone) + " (already at line " +
                                                   std::to_string(it->second) + ")");
    else config_.dnsbl.push_back(std::move(*z));
  }
}

void Loader::RangeCidrs(const toml::table& t, std::string_view where, RangeConfig& r) {
  const std::string w = std::string(where) + ".cidrs";
  const toml::node* n = t.get("cidrs");
  if (!n) return Error(t.source(), "range " + Quote(r.name) + " has no addresses: 'cidrs' is missing");
  if (n->is_array() && n->as_array()->empty())
    return Error(n->source(), "range " + Quote(r.name) + " has no addresses: 'cidrs' is empty");
  for (const toml::node* s : StringArray(t, "cidrs", w)) {
    const std::string& text = s->as_string()->get();
    auto cidr = Cidr::Parse(text);
    if (!cidr.ok()) {
      std::string reason = cidr.error();  // may repeat our prefix; say it once
      if (const std::string dup = "bad CIDR " + Quote(text) + ": "; reason.starts_with(dup)) reason.erase(0, dup.size());
      Error(s->source(), "bad CIDR " + Quote(text) + " in " + w + ": " + reason);
      continue;
    }
    if (cidr.value().Size() > kMaxBlockSize) {
      const int bits = (cidr.value().network().is_v4() ? 32 : 128) - cidr.value().prefix();
      const std::string count = bits < 64 ? " (" + std::to_string(uint64_t{1} << bits) + ")" : "";
      Error(s->source(), "CIDR " + Quote(text) + " in " + w + " has 2^" + std::to_string(bits) + count +
                             " addresses, more than the 2^20 (1048576) that can be walked each cycle; "
                             "list the sending addresses or smaller blocks instead");
      continue;
    }
    r.cidrs.push_back(cidr.value());
    cidrs_.push_back({cidr.value(), r.name, Pos(s->source())});
  }
}

void Loader::RangeOptional(const toml::table& t, std::string_view where, RangeConfig& r) {
  const std::string w(where);
  for (const toml::node* s : StringArray(t, "spf_domains", w + ".spf_domains")) {
    const std::string& d = s->as_string()->get();
    if (auto problem = HostNameProblem(d)) Error(s->source(), w + ".spf_domains: " + Quote(d) + " is not a domain: " + *problem);
    else r.spf_domains.push_back(AsciiLower(d));
  }
  String(t, "helo", w + ".helo", r.helo);
  r.helo = AsciiLower(r.helo);
  if (!r.helo.empty()) {
    // "{ptr}" is filled in per address; check the rest with a stand-in name.
    std::string probe = r.helo;
    for (size_t p = probe.find("{ptr}"); p != std::string::npos; p = probe.find("{ptr}"))
      probe.replace(p, 5, "ptr.example");
    if (auto problem = HostNameProblem(probe))
      Error(t.get("helo")->source(), w + ".helo " + Quote(r.helo) + " is not a host name: " + *problem +
                                         " (\"{ptr}\" may stand for the PTR name)");
  }
  String(t, "expected_ptr", w + ".expected_ptr", r.expected_ptr);
  r.expected_ptr = AsciiLower(r.expected_ptr);
  if (!r.expected_ptr.empty()) {
    std::string probe = r.expected_ptr;
    std::replace(probe.begin(), probe.end(), '*', 'x');
    if (auto problem = HostNameProblem(probe))
      Error(t.get("expected_ptr")->source(), w + ".expected_ptr " + Quote(r.expected_ptr) +
                                                 " is not a name pattern: " + *problem + " ('*' matches any characters)");
  }
  if (const toml::node* n = t.get("warmup_start")) {
    std::optional<std::string> date;
    if (n->is_string()) date = ParseDate(n->as_string()->get());
    if (const auto* d = n->as_date(); d && ValidDate(d->get().year, d->get().month, d->get().day)) {
      char buf[16];
      std::snprintf(buf, sizeof buf, "%04d-%02d-%02d", d->get().year, d->get().month, d->get().day);
      date = buf;
    }
    if (!date) Error(n->source(), w + ".warmup_start must be a date \"YYYY-MM-DD\"");
    r.warmup_start = date;
  }
  if (auto n = Typed(t, "mx_probe", w + ".mx_probe", toml::node_type::boolean, "true or false"))
    r.mx_probe = n->as_boolean()->get();
  String(t, "warmup_schedule", w + ".warmup_schedule", r.warmup_schedule);  // checked in Warmup()
  if (const toml::node* n = t.get("labels")) {
    if (!n->is_table()) return Error(n->source(), w + ".labels must be a table of strings");
    for (const auto& [k, v] : *n->as_table()) {
      if (!ValidLabelName(k.str())) Error(k.source(), w + ".labels: " + Quote(k.str()) + " is not a valid label name");
      else if (!v.is_string()) Error(v.source(), w + ".labels." + std::string(k.str()) + " must be a string");
      else r.labels[std::string(k.str())] = v.as_string()->get();
    }
  }
}

void Loader::Range(const toml::table& t, std::string_view where, RangeConfig& r) {
  CheckKeys(t, {"name", "cidrs", "spf_domains", "helo", "expected_ptr", "warmup_start", "warmup_schedule", "labels",
                "mx_probe"},
            "[ranges]");
  r.pos = Pos(t.source());
  String(t, "name", std::string(where) + ".name", r.name);
  if (!t.get("name")) Error(t.source(), std::string(where) + ": missing 'name'");
  else if (t.get("name")->is_string() && r.name.empty()) Error(t.get("name")->source(), std::string(where) + ".name is empty");
  RangeCidrs(t, where, r);
  RangeOptional(t, where, r);
}

void Loader::Ranges(const toml::table& root) {
  const toml::node* n = root.get("ranges");
  if (!n) return;
  const toml::array* arr = n->as_array();
  if (!arr || !arr->is_array_of_tables()) return Error(n->source(), "ranges must be a list of tables: write [[ranges]]");
  std::map<std::string, int> seen;
  for (size_t i = 0; i < arr->size(); ++i) {
    const toml::table& t = *(*arr)[i].as_table();
    RangeConfig r;
    Range(t, "ranges[" + std::to_string(i) + "]", r);
    if (r.name.empty()) continue;
    auto [it, fresh] = seen.emplace(r.name, r.pos.line);
    if (!fresh) Error(t.get("name")->source(), "duplicate range name " + Quote(r.name) + " (already at line " +
                                                   std::to_string(it->second) + ")");
    config_.ranges.push_back(std::move(r));
  }
  Overlaps();
}

// CIDR blocks are nested or disjoint: after sorting by network (larger block
// first on ties), a block overlaps iff its network lies in the last open block.
void Loader::Overlaps() {
  std::vector<const CidrAt*> sorted;
  for (const CidrAt& c : cidrs_) sorted.push_back(&c);
  std::sort(sorted.begin(), sorted.end(), [](const CidrAt* a, const CidrAt* b) {
    if (a->cidr.network() != b->cidr.network()) return a->cidr.network() < b->cidr.network();
    return a->cidr.prefix() < b->cidr.prefix();
  });
  const CidrAt* open = nullptr;
  for (const CidrAt* c : sorted) {
    if (!open || !open->cidr.Contains(c->cidr.network())) {
      open = c;
      continue;
    }
    const bool open_first = std::pair(open->pos.line, open->pos.column) < std::pair(c->pos.line, c->pos.column);
    const CidrAt& later = open_first ? *c : *open;
    const CidrAt& earlier = open_first ? *open : *c;
    errors_.push_back({later.pos, later.cidr.ToString() + " in range " + Quote(later.range) + " overlaps " +
                                      earlier.cidr.ToString() + " in range " + Quote(earlier.range) + " (line " +
                                      std::to_string(earlier.pos.line) + "): an IP must belong to exactly one range"});
  }
}

void Loader::Enabled(const toml::table& root, std::string_view section, bool& enabled) {
  const toml::table* t = Section(root, section);
  if (!t) return;
  CheckKeys(*t, {"enabled"}, section);
  if (auto n = Typed(*t, "enabled", std::string(section) + ".enabled", toml::node_type::boolean, "true or false"))
    enabled = n->as_boolean()->get();
}

void Loader::Alerts(const toml::table& root) {
  const toml::table* t = Section(root, "alerts");
  if (!t) return;
  CheckKeys(*t, {"raise_after", "clear_after", "failing_after", "mx_raise_after", "mx_clear_after"}, "alerts");
  Int(*t, "mx_raise_after", "alerts.mx_raise_after", 1, config_.alerts.mx_raise_after);
  Int(*t, "mx_clear_after", "alerts.mx_clear_after", 1, config_.alerts.mx_clear_after);
  Int(*t, "raise_after", "alerts.raise_after", 1, config_.alerts.raise_after);
  Int(*t, "clear_after", "alerts.clear_after", 1, config_.alerts.clear_after);
  Duration(*t, "failing_after", "alerts.failing_after", seconds(60), "1m", config_.alerts.failing_after);
}

void Loader::MxProbeDomains(const toml::table& t) {
  MxProbeConfig& m = config_.mx_probe;
  std::set<std::string, std::less<>> seen, listed;  // every domain so far / those written out
  auto add = [&](const std::string& d) {
    if (seen.insert(d).second) m.domains.push_back(d);
  };
  if (!t.get("domains")) {
    for (const Receiver& r : ReceiverCatalogue()) add(r.domain);
    return;
  }
  for (const toml::node* s : StringArray(t, "domains", "mx_probe.domains")) {
    const std::string d = AsciiLower(s->as_string()->get());
    if (d == "catalogue") {
      for (const Receiver& r : ReceiverCatalogue()) add(r.domain);
    } else if (auto problem = HostNameProblem(d)) {
      Error(s->source(), "mx_probe.domains: " + Quote(d) + " is not a domain: " + *problem +
                             " (\"catalogue\" stands for the built-in list of big receivers)");
    } else if (!listed.insert(d).second) {
      Error(s->source(), "mx_probe.domains: " + Quote(d) + " is listed twice");
    } else {
      add(d);  // also in the catalogue: probed once
    }
  }
  if (t.get("domains")->is_array() && t.get("domains")->as_array()->empty())
    Error(t.get("domains")->source(), "mx_probe.domains is empty (leave it out for the built-in catalogue)");
}

void Loader::MxProbe(const toml::table& root) {
  const toml::table* t = Section(root, "mx_probe");
  if (!t) return;
  CheckKeys(*t, {"enabled", "domains", "port", "mail_from", "rcpt_to", "starttls", "min_interval", "max_rate",
                 "max_parallel", "connect_timeout", "banner_timeout", "command_timeout"},
            "mx_probe");
  MxProbeConfig& m = config_.mx_probe;
  m.enabled = true;
  if (auto n = Typed(*t, "enabled", "mx_probe.enabled", toml::node_type::boolean, "true or false"))
    m.enabled = n->as_boolean()->get();
  MxProbeDomains(*t);
  int port = m.port;
  Int(*t, "port", "mx_probe.port", 1, port);
  if (port > 65535) Error(t->get("port")->source(), "mx_probe.port " + std::to_string(port) + " is not a TCP port");
  m.port = static_cast<uint16_t>(port);
  auto address = [&](std::string_view key, std::string& out, bool domain_placeholder) {
    String(*t, key, "mx_probe." + std::string(key), out);
    if (out.empty()) {
      if (t->get(key)) Error(t->get(key)->source(), "mx_probe." + std::string(key) + " is empty (leave it out instead)");
      return;
    }
    std::string probe = out;
    if (domain_placeholder)
      for (size_t p = probe.find("{domain}"); p != std::string::npos; p = probe.find("{domain}"))
        probe.replace(p, 8, "example.com");
    const size_t at = probe.rfind('@');
    const bool bad_chars = std::any_of(probe.begin(), probe.end(), [](char c) {
      return c <= ' ' || c == '<' || c == '>' || c == '"' || c == 0x7f;
    });
    if (at == std::string::npos || at == 0 || bad_chars || HostNameProblem(probe.substr(at + 1)))
      Error(t->get(key)->source(), "mx_probe." + std::string(key) + " " + Quote(out) + " is not a mail address" +
                                       (domain_placeholder ? " (\"{domain}\" stands for the receiver domain)" : ""));
  };
  address("mail_from", m.mail_from, false);
  address("rcpt_to", m.rcpt_to, true);
  if (!m.rcpt_to.empty() && m.mail_from.empty())
    Error(t->get("rcpt_to")->source(), "mx_probe.rcpt_to needs mail_from: RCPT TO only follows MAIL FROM");
  if (auto n = Typed(*t, "starttls", "mx_probe.starttls", toml::node_type::boolean, "true or false"))
    m.starttls = n->as_boolean()->get();
  Duration(*t, "min_interval", "mx_probe.min_interval", seconds(60), "1m", m.min_interval);
  if (const toml::node* n = t->get("max_rate"); n && n->is_number() &&
      !((n->is_integer() ? static_cast<double>(n->as_integer()->get()) : n->as_floating_point()->get()) > 0))
    Error(n->source(), "mx_probe.max_rate must be above 0 (sessions started per second)");
  else
    Number(*t, "max_rate", "mx_probe.max_rate", m.max_rate);
  Int(*t, "max_parallel", "mx_probe.max_parallel", 1, m.max_parallel);
  if (m.max_parallel > 256) Error(t->get("max_parallel")->source(), "mx_probe.max_parallel must be at most 256");
  Duration(*t, "connect_timeout", "mx_probe.connect_timeout", milliseconds(100), "100ms", m.connect_timeout);
  Duration(*t, "banner_timeout", "mx_probe.banner_timeout", milliseconds(100), "100ms", m.banner_timeout);
  Duration(*t, "command_timeout", "mx_probe.command_timeout", milliseconds(100), "100ms", m.command_timeout);
}

void Loader::VolumeSource(const toml::table& t, const std::string& where, VolumeSourceConfig& v) {
  CheckKeys(t, {"name", "kind", "path", "tags"}, "[volume.sources]");
  v.pos = Pos(t.source());
  std::string kind;
  String(t, "kind", where + ".kind", kind);
  if (!t.get("kind")) Error(t.source(), where + ": missing 'kind' (postfix, exim, kumomta or powermta)");
  else if (auto f = ParseLogFormat(kind)) v.format = *f;
  else if (t.get("kind")->is_string())
    Error(t.get("kind")->source(), where + ".kind " + Quote(kind) + " is not one of postfix, exim, kumomta, powermta");
  String(t, "path", where + ".path", v.path);
  if (!t.get("path")) Error(t.source(), where + ": missing 'path' (the log file to follow)");
  else if (t.get("path")->is_string() && (v.path.empty() || v.path[0] != '/'))
    Error(t.get("path")->source(), where + ".path " + Quote(v.path) + " must be an absolute path");
  v.name = v.path;
  String(t, "name", where + ".name", v.name);
  if (const toml::node* n = t.get("tags")) {
    if (!n->is_table()) {
      Error(n->source(), where + ".tags must be a table: { \"postfix-ip2\" = \"192.0.2.11\" }");
    } else {
      for (const auto& [k, val] : *n->as_table()) {
        auto ip = val.is_string() ? IpAddress::Parse(val.as_string()->get()) : Result<IpAddress>(Status::Error(""));
        if (!ip.ok())
          Error(val.source(), where + ".tags." + std::string(k.str()) + " must be an IP address string, the address "
                                                                          "this tag's smtp service binds");
        else
          v.tags.emplace(std::string(k.str()), ip.value());
      }
    }
  }
  if (!v.tags.empty() && v.format != LogFormat::kPostfix)
    Error(t.get("tags")->source(), where + ".tags is for postfix logs only (other formats log the source address)");
  if (v.format == LogFormat::kPostfix && v.tags.empty() && t.get("kind") && !t.get("tags"))
    Error(t.source(), where + ": a postfix log needs 'tags' (syslog tag or service name -> source address): "
                                "Postfix never logs the address it sends from");
}

void Loader::Volume(const toml::table& root) {
  const toml::table* t = Section(root, "volume");
  if (!t) return;
  CheckKeys(*t, {"sources", "poll_interval"}, "volume");
  Duration(*t, "poll_interval", "volume.poll_interval", milliseconds(100), "100ms", config_.volume.poll_interval);
  const toml::node* n = t->get("sources");
  if (!n) return;
  const toml::array* arr = n->as_array();
  if (!arr || !arr->is_array_of_tables())
    return Error(n->source(), "volume.sources must be a list of tables: write [[volume.sources]]");
  std::map<std::string, int> seen;
  for (size_t i = 0; i < arr->size(); ++i) {
    VolumeSourceConfig v;
    const std::string where = "volume.sources[" + std::to_string(i) + "]";
    VolumeSource(*(*arr)[i].as_table(), where, v);
    if (auto [it, fresh] = seen.emplace(v.name, v.pos.line); !fresh && !v.name.empty())
      Error((*arr)[i].source(), where + ": " + Quote(v.name) + " is already a source (line " +
                                    std::to_string(it->second) + "); give one of them a different name or path");
    config_.volume.sources.push_back(std::move(v));
  }
}

void Loader::Api(const toml::table& root) {
  const toml::table* t = Section(root, "api");
  if (!t) return;
  CheckKeys(*t, {"token_file", "token_env"}, "api");
  // The same rules as webhook secrets: exactly one source, never echoed.
  if (auto token = Secret(*t, "api", "API token", "token")) config_.api.token = *token;
  if (!config_.api.token.empty() && config_.api.token.size() < 16)
    Error((t->get("token_env") ? t->get("token_env") : t->get("token_file"))->source(),
          "api: the token must be at least 16 characters");
}

void Loader::WarmupSchedules(const toml::table& t) {
  const toml::node* n = t.get("schedules");
  if (!n) return;
  const toml::array* arr = n->as_array();
  if (!arr || !arr->is_array_of_tables())
    return Error(n->source(), "warmup.schedules must be a list of tables: write [[warmup.schedules]]");
  for (size_t i = 0; i < arr->size(); ++i) {
    const toml::table& s = *(*arr)[i].as_table();
    const std::string where = "warmup.schedules[" + std::to_string(i) + "]";
    CheckKeys(s, {"name", "per", "allowances"}, "[warmup.schedules]");
    WarmupScheduleConfig w;
    w.pos = Pos(s.source());
    String(s, "name", where + ".name", w.name);
    if (!s.get("name")) Error(s.source(), where + ": missing 'name'");
    std::string per = "day";
    String(s, "per", where + ".per", per);
    if (per == "hour") w.hourly = true;
    else if (per != "day") Error(s.get("per")->source(), where + ".per " + Quote(per) + " must be \"day\" or \"hour\"");
    const toml::node* a = Typed(s, "allowances", where + ".allowances", toml::node_type::array, "an array of counts");
    if (!s.get("allowances")) Error(s.source(), where + ": missing 'allowances' (one count per ramp day)");
    if (a) {
      const toml::array& list = *a->as_array();
      if (list.empty()) Error(a->source(), where + ".allowances is empty");
      for (size_t k = 0; k < list.size(); ++k) {
        if (!list[k].is_integer() || list[k].as_integer()->get() < 0) {
          Error(list[k].source(), where + ".allowances[" + std::to_string(k) + "] must be a count (an integer >= 0)");
          continue;
        }
        w.allowances.push_back(static_cast<uint64_t>(list[k].as_integer()->get()));
      }
    }
    for (const WarmupScheduleConfig& other : config_.warmup.schedules)
      if (other.name == w.name) Error(s.get("name")->source(), where + ": schedule " + Quote(w.name) + " is defined twice");
    for (std::string_view builtin : kBuiltInScheduleNames)
      if (w.name == builtin) Error(s.get("name")->source(), where + ": " + Quote(w.name) + " is a built-in schedule");
    config_.warmup.schedules.push_back(std::move(w));
  }
}

void Loader::Warmup(const toml::table& root) {
  WarmupConfig& w = config_.warmup;
  if (const toml::table* t = Section(root, "warmup")) {
    CheckKeys(*t, {"auto_start", "idle_days", "schedule", "tolerance", "backoff_share", "backoff_min_attempts",
                   "stall_ratio", "stall_days", "schedules"},
              "warmup");
    if (auto n = Typed(*t, "auto_start", "warmup.auto_start", toml::node_type::boolean, "true or false"))
      w.auto_start = n->as_boolean()->get();
    Int(*t, "idle_days", "warmup.idle_days", 1, w.idle_days);
    String(*t, "schedule", "warmup.schedule", w.schedule);
    Number(*t, "tolerance", "warmup.tolerance", w.tolerance);
    if (t->get("tolerance") && w.tolerance < 1)
      Error(t->get("tolerance")->source(), "warmup.tolerance must be at least 1 (1.2 = 20% over the allowance)");
    Number(*t, "backoff_share", "warmup.backoff_share", w.backoff_share);
    if (w.backoff_share > 1) Error(t->get("backoff_share")->source(), "warmup.backoff_share is a share: 0..1");
    Int(*t, "backoff_min_attempts", "warmup.backoff_min_attempts", 1, w.backoff_min_attempts);
    Number(*t, "stall_ratio", "warmup.stall_ratio", w.stall_ratio);
    if (w.stall_ratio > 1) Error(t->get("stall_ratio")->source(), "warmup.stall_ratio is a share: 0..1");
    Int(*t, "stall_days", "warmup.stall_days", 1, w.stall_days);
    WarmupSchedules(*t);
  }
  auto known = [&](const std::string& name) {
    return std::find(std::begin(kBuiltInScheduleNames), std::end(kBuiltInScheduleNames), name) !=
               std::end(kBuiltInScheduleNames) ||
           std::any_of(w.schedules.begin(), w.schedules.end(),
                       [&](const WarmupScheduleConfig& c) { return c.name == name; });
  };
  const std::string names = "double-30, sendgrid-hourly, per-receiver or a [[warmup.schedules]] name";
  if (!known(w.schedule)) {
    const toml::node* n = root.at_path("warmup.schedule").node();
    Error(n ? n->source() : root.source(), "warmup.schedule " + Quote(w.schedule) + " is not " + names);
  }
  const toml::node* ranges = root.get("ranges");
  if (ranges && ranges->is_array_of_tables())
    for (const toml::node& r : *ranges->as_array())
      if (const toml::node* n = r.as_table()->get("warmup_schedule"); n && n->is_string() && !known(n->as_string()->get()))
        Error(n->source(), "warmup_schedule " + Quote(n->as_string()->get()) + " is not " + names);
}

// A secret from `secret_env` (an environment variable) or `secret_file` (a file,
// relative to the config's directory): exactly one of them. Never echoed in messages.
// `prefix`: the keys are <prefix>_env and <prefix>_file.
std::optional<std::string> Loader::Secret(const toml::table& t, std::string_view where, std::string_view what,
                                          std::string_view prefix) {
  const std::string env_key = std::string(prefix) + "_env", file_key = std::string(prefix) + "_file";
  const toml::node* env = t.get(env_key);
  const toml::node* file = t.get(file_key);
  if (!env && !file) return std::nullopt;
  if (env && file) {
    Error(file->source(),
          std::string(where) + ": give the " + std::string(what) + " in " + env_key + " or " + file_key + ", not both");
    return std::nullopt;
  }
  std::string name;
  String(t, env ? env_key : file_key, std::string(where) + "." + (env ? env_key : file_key), name);
  const toml::node* at = env ? env : file;
  if (name.empty()) return std::nullopt;
  if (env) {
    const char* v = std::getenv(name.c_str());
    std::string value = Trim(v ? v : "");
    if (value.empty()) Error(at->source(), "environment variable " + name + " (" + std::string(what) + ") is unset or empty");
    return value.empty() ? std::nullopt : std::optional(value);
  }
  std::string full = name, error;
  if (full[0] != '/' && path_.find('/') != std::string::npos) full = path_.substr(0, path_.rfind('/') + 1) + name;
  auto content = ReadFile(full, &error);
  if (!content) {
    Error(at->source(), "cannot read secret_file " + Quote(full) + " (" + std::string(what) + "): " + error);
    return std::nullopt;
  }
  std::string value = Trim(*content);
  if (value.empty()) Error(at->source(), "secret_file " + Quote(full) + " (" + std::string(what) + ") is empty");
  return value.empty() ? std::nullopt : std::optional(value);
}

void Loader::Webhook(const toml::table& t, std::string_view where, WebhookConfig& w) {
  const std::string at(where);
  CheckKeys(t, {"name", "url", "format", "secret_env", "secret_file", "events", "ranges", "labels", "timeout",
                "min_interval", "max_items", "retry_initial", "retry_max"},
            "[webhooks]");
  w.pos = Pos(t.source());
  String(t, "name", at + ".name", w.name);
  if (!t.get("name")) Error(t.source(), at + ": missing 'name'");
  else if (t.get("name")->is_string() &&
           (w.name.empty() || !std::all_of(w.name.begin(), w.name.end(), [](char c) {
             return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
           })))
    Error(t.get("name")->source(), at + ".name " + Quote(w.name) + " must be letters, digits, '_' or '-'");
  String(t, "url", at + ".url", w.url);
  if (!t.get("url")) Error(t.source(), at + ": missing 'url'");
  else if (!w.url.starts_with("http://") && !w.url.starts_with("https://"))
    Error(t.get("url")->source(), at + ".url " + Quote(w.url) + " must start with http:// or https://");
  std::string format = "standard";
  String(t, "format", at + ".format", format);
  if (format == "standard") w.format = WebhookFormat::kStandard;
  else if (format == "slack") w.format = WebhookFormat::kSlack;
  else if (format == "alertmanager") w.format = WebhookFormat::kAlertmanager;
  else Error(t.get("format")->source(), at + ".format " + Quote(format) + " is not one of standard, slack, alertmanager");
  if (auto secret = Secret(t, at, "secret of webhook " + Quote(w.name))) w.secret = *secret;
  if (w.format == WebhookFormat::kStandard && w.secret.empty() && !t.get("secret_env") && !t.get("secret_file"))
    Error(t.source(), at + ": format \"standard\" signs every request: give secret_env or secret_file (whsec_...)");
  if (!w.secret.empty() && w.format == WebhookFormat::kStandard && !w.secret.starts_with("whsec_"))
    Error((t.get("secret_env") ? t.get("secret_env") : t.get("secret_file"))->source(),
          at + ": the secret of webhook " + Quote(w.name) + " must look like whsec_<base64 key>");
  for (const toml::node* n : StringArray(t, "events", at + ".events")) {
    const std::string& e = n->as_string()->get();
    static const std::set<std::string, std::less<>> kPrefixes = {"dnsbl", "fcrdns", "spf", "mx", "warmup", "zone",
                                                                "check", "*"};
    if (!kPrefixes.count(e.substr(0, e.find('.'))))
      Error(n->source(), at + ".events: " + Quote(e) + " matches no event type (dnsbl.*, fcrdns.*, spf.*, mx.*, "
                                                       "warmup.*, zone.*, check.failing)");
    w.events.push_back(e);
  }
  for (const toml::node* n : StringArray(t, "ranges", at + ".ranges")) w.ranges.push_back(n->as_string()->get());
  if (const toml::node* n = t.get("labels")) {
    if (!n->is_table()) Error(n->source(), at + ".labels must be a table of strings");
    else
      for (const auto& [k, v] : *n->as_table()) {
        if (!v.is_string()) Error(v.source(), at + ".labels." + std::string(k.str()) + " must be a string");
        else w.labels[std::string(k.str())] = v.as_string()->get();
      }
  }
  Duration(t, "timeout", at + ".timeout", milliseconds(100), "100ms", w.timeout);
  Duration(t, "min_interval", at + ".min_interval", seconds(1), "1s", w.min_interval);
  Int(t, "max_items", at + ".max_items", 1, w.max_items);
  Duration(t, "retry_initial", at + ".retry_initial", milliseconds(100), "100ms", w.retry_initial);
  Duration(t, "retry_max", at + ".retry_max", milliseconds(100), "100ms", w.retry_max);
  if (w.retry_max < w.retry_initial)
    Error((t.get("retry_max") ? t.get("retry_max") : t.get("retry_initial"))->source(),
          at + ".retry_max is shorter than retry_initial");
}

void Loader::Webhooks(const toml::table& root) {
  const toml::node* n = root.get("webhooks");
  if (!n) return;
  const toml::array* arr = n->as_array();
  if (!arr || !arr->is_array_of_tables()) return Error(n->source(), "webhooks must be a list of tables: write [[webhooks]]");
  std::map<std::string, int> seen;
  for (size_t i = 0; i < arr->size(); ++i) {
    const toml::table& t = *(*arr)[i].as_table();
    WebhookConfig w;
    Webhook(t, "webhooks[" + std::to_string(i) + "]", w);
    if (!w.name.empty()) {
      auto [it, fresh] = seen.emplace(w.name, w.pos.line);
      if (!fresh)
        Error(t.get("name")->source(), "duplicate webhook name " + Quote(w.name) + " (already at line " +
                                           std::to_string(it->second) + ")");
    }
    for (const std::string& r : w.ranges)
      if (std::none_of(config_.ranges.begin(), config_.ranges.end(), [&](const RangeConfig& c) { return c.name == r; }))
        Error(t.get("ranges")->source(), "webhooks[" + std::to_string(i) + "].ranges: no range is named " + Quote(r));
    config_.webhooks.push_back(std::move(w));
  }
}

Result<Config> Loader::Run(const toml::table& root) {
  for (const auto& [k, v] : root) {
    static const std::set<std::string, std::less<>> kSections = {"agent", "dns", "dnsbl", "ranges", "fcrdns",
                                                                      "spf",   "mx_probe", "alerts", "webhooks",
                                                                      "volume", "api", "warmup"};
    if (kSections.count(k.str())) continue;
    if (v.is_table() || v.is_array_of_tables())
      Error(k.source(), "unknown section [" + std::string(k.str()) + "] (not supported by this release)");
    else
      Error(k.source(), "unknown key '" + std::string(k.str()) + "' at top level");
  }
  Agent(root);
  Dns(root);
  Dnsbl(root);
  Ranges(root);
  Enabled(root, "fcrdns", config_.fcrdns.enabled);
  Enabled(root, "spf", config_.spf.enabled);
  MxProbe(root);
  Volume(root);
  Api(root);
  Warmup(root);
  Alerts(root);
  Webhooks(root);
  if (config_.agent.instance.empty()) {
    char host[256] = {};
    config_.agent.instance = gethostname(host, sizeof host - 1) == 0 && host[0] ? host : "repwatch";
  }
  if (errors_.empty()) return std::move(config_);
  std::stable_sort(errors_.begin(), errors_.end(), [](const ConfigIssue& a, const ConfigIssue& b) {
    return std::pair(a.pos.line, a.pos.column) < std::pair(b.pos.line, b.pos.column);
  });
  std::string message;
  for (const ConfigIssue& e : errors_) message += (message.empty() ? "" : "\n") + e.ToString();
  return Status::Error(message);
}

}  // namespace

std::string ConfigIssue::ToString() const {
  return pos.file + ":" + std::to_string(pos.line) + ":" + std::to_string(pos.column) + ": " + message;
}

std::string DnsServer::ToString() const {
  const std::string h = host.find(':') == std::string::npos ? host : "[" + host + "]";
  return h + ":" + std::to_string(port);
}

std::optional<milliseconds> ParseDurationMillis(std::string_view text) {
  static constexpr std::pair<std::string_view, int64_t> kUnits[] = {
      {"d", 86'400'000}, {"h", 3'600'000}, {"ms", 1}, {"m", 60'000}, {"s", 1'000}};
  static constexpr int kRank[] = {0, 1, 4, 2, 3};  // order units must appear in
  int64_t total = 0;
  int last_rank = -1;
  while (!text.empty()) {
    int64_t n = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
    if (ec != std::errc() || end == text.data() || n > 1'000'000'000) return std::nullopt;
    text.remove_prefix(static_cast<size_t>(end - text.data()));
    int unit = 0;
    while (unit < 5 && !text.starts_with(kUnits[unit].first)) ++unit;
    if (unit == 5 || kRank[unit] <= last_rank) return std::nullopt;
    last_rank = kRank[unit];
    total += n * kUnits[unit].second;
    text.remove_prefix(kUnits[unit].first.size());
  }
  if (total <= 0) return std::nullopt;
  return milliseconds(total);
}

std::optional<seconds> ParseDuration(std::string_view text) {
  auto ms = ParseDurationMillis(text);
  if (!ms || ms->count() % 1000 != 0) return std::nullopt;
  return std::chrono::duration_cast<seconds>(*ms);
}

Result<Config> ParseConfig(std::string_view toml_text, const std::string& path) {
  toml::table root;
  try {
    root = toml::parse(toml_text, path);
  } catch (const toml::parse_error& e) {
    return Status::Error(ConfigIssue{SourcePos{path, static_cast<int>(e.source().begin.line),
                                               static_cast<int>(e.source().begin.column)},
                                     std::string(e.description())}
                             .ToString());
  }
  return Loader(path).Run(root);
}

Result<Config> LoadConfig(const std::string& path) {
  std::string error;
  auto text = ReadFile(path, &error);
  if (!text) return Status::Error(ConfigIssue{SourcePos{path, 1, 1}, "cannot read the config: " + error}.ToString());
  return ParseConfig(*text, path);
}

}  // namespace repwatch
