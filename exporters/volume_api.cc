#include "exporters/volume_api.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <ctime>

#include "agent/targets.h"

namespace repwatch {
namespace {

constexpr size_t kMaxItems = 10000;
constexpr long long kMaxCount = 1000000;
constexpr long long kMaxAge = 120LL * 86400, kMaxAhead = 3600;

std::optional<long long> ParseRfc3339(const std::string& s) {
  std::tm tm{};
  const char* end = strptime(s.c_str(), "%Y-%m-%dT%H:%M:%SZ", &tm);
  if (!end || *end) return std::nullopt;
  return static_cast<long long>(timegm(&tm));
}

// One item, checked; returns the reason it is bad ("count must be ...") or fills *out.
std::optional<std::string> ReadItem(const nlohmann::json& j, const Config& config, long long now, VolumeEvent* out) {
  if (!j.is_object()) return "must be an object";
  for (const auto& [key, value] : j.items())
    if (key != "ip" && key != "count" && key != "outcome" && key != "receiver" && key != "at" && key != "reply")
      return fmt::format("{}: unknown field (ip, count, outcome, receiver, at, reply)", key);
  auto ip_it = j.find("ip");
  if (ip_it == j.end() || !ip_it->is_string()) return "ip is missing or not a string";
  auto ip = IpAddress::Parse(ip_it->get<std::string>());
  if (!ip.ok()) return fmt::format("ip \"{}\" is not an IP address", ip_it->get<std::string>());
  if (!RangeOf(ip.value(), config.ranges)) return fmt::format("ip {} is in no configured range", ip.value().ToString());
  out->ip = ip.value();
  auto count = j.find("count");
  if (count == j.end() || !count->is_number_integer() || count->get<long long>() < 1 ||
      count->get<long long>() > kMaxCount)
    return fmt::format("count must be an integer from 1 to {}", kMaxCount);
  out->count = static_cast<uint32_t>(count->get<long long>());
  auto outcome = j.find("outcome");
  std::optional<VolumeOutcome> o;
  if (outcome != j.end() && outcome->is_string()) o = ParseVolumeOutcome(outcome->get<std::string>());
  if (!o) return "outcome must be \"delivered\", \"deferred\" or \"bounced\"";
  out->outcome = *o;
  if (auto r = j.find("receiver"); r != j.end()) {
    if (!r->is_string()) return "receiver must be a string (a domain or MX host)";
    out->receiver = r->get<std::string>();
  }
  if (auto r = j.find("reply"); r != j.end()) {
    if (!r->is_string()) return "reply must be a string";
    out->reply = r->get<std::string>();
  }
  out->at = now;
  if (auto at = j.find("at"); at != j.end()) {
    std::optional<long long> t;
    if (at->is_number_integer()) t = at->get<long long>();
    else if (at->is_string()) t = ParseRfc3339(at->get<std::string>());
    if (!t) return "at must be Unix seconds or an RFC 3339 UTC time like \"2026-11-23T10:00:00Z\"";
    if (*t < now - kMaxAge || *t > now + kMaxAhead) return "at is more than 120 days old or more than 1 hour ahead";
    out->at = *t;
  }
  return std::nullopt;
}

}  // namespace

void AddVolumeRoutes(HttpServer& server, std::shared_ptr<const Config> config, VolumeStore& store, Clock& clock,
                     Shard shard) {
  server.AddRoute("POST", "/api/v1/volume", [config, &store, &clock, shard](const HttpRequest& req) {
    if (config->api.token.empty())
      return HttpResponse::Text(403, "no [api] token is configured: write endpoints are off\n");
    if (!BearerTokenMatches(req.Header("authorization"), config->api.token)) {
      HttpResponse r = HttpResponse::Text(401, "missing or wrong bearer token\n");
      r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"repwatch\"");
      return r;
    }
    auto body = nlohmann::json::parse(req.body, nullptr, /*allow_exceptions=*/false);
    if (body.is_discarded()) return HttpResponse::Text(400, "the body is not valid JSON\n");
    const bool batch = body.is_array();
    if (batch && body.empty()) return HttpResponse::Text(400, "the batch is empty\n");
    if (batch && body.size() > kMaxItems)
      return HttpResponse::Text(400, fmt::format("a batch holds at most {} items, not {}\n", kMaxItems, body.size()));
    const long long now = UnixSeconds(clock.WallNow());
    std::vector<VolumeEvent> events(batch ? body.size() : 1);
    for (size_t i = 0; i < events.size(); ++i) {
      if (auto bad = ReadItem(batch ? body[i] : body, *config, now, &events[i]))
        return HttpResponse::Text(
            400, (batch ? fmt::format("[{}]{}", i, bad->starts_with("must") ? " " : ".") : std::string()) + *bad + "\n");
    }
    // Counts for another shard's address would be stored here and judged nowhere.
    for (size_t i = 0; i < events.size(); ++i) {
      const IpAddress& ip = events[i].ip;
      if (!shard.Owns(ip))
        return HttpResponse::Text(
            421, fmt::format("{}ip {} belongs to shard {} of {}, not to this agent (shard {}): push it to that agent\n",
                             batch ? fmt::format("[{}].", i) : std::string(), ip.ToString(),
                             Shard::OwnerOf(ip, shard.count), shard.count, shard.index));
    }
    if (Status s = store.Add(events, now); !s.ok()) return HttpResponse::Text(500, s.message() + "\n");
    HttpResponse r;
    r.content_type = "application/json";
    r.body = nlohmann::json{{"accepted", events.size()}}.dump() + "\n";
    return r;
  });
}

}  // namespace repwatch
