#include "checks/report_json.h"

#include <fmt/format.h>

#include <cmath>
#include <ctime>

namespace repwatch {
namespace {

using J = nlohmann::ordered_json;

template <typename Enum, typename NameFn>
std::optional<Enum> FromName(const nlohmann::json& v, NameFn name_of, int count) {
  if (!v.is_string()) return std::nullopt;
  for (int i = 0; i < count; ++i)
    if (name_of(static_cast<Enum>(i)) == v.get<std::string>()) return static_cast<Enum>(i);
  return std::nullopt;
}

std::string StringOr(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// A wrong-typed value reads as absent, like StringOr: nlohmann's value() would throw.
bool BoolOr(const nlohmann::json& j, const char* key, bool fallback) {
  auto it = j.find(key);
  return it != j.end() && it->is_boolean() ? it->get<bool>() : fallback;
}

std::vector<std::string> Strings(const nlohmann::json& j, const char* key) {
  std::vector<std::string> out;
  if (auto it = j.find(key); it != j.end() && it->is_array())
    for (const auto& v : *it)
      if (v.is_string()) out.push_back(v.get<std::string>());
  return out;
}

std::string Rfc3339(long long unix_seconds) {
  const std::time_t t = unix_seconds;
  std::tm tm{};
  gmtime_r(&t, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                     tm.tm_min, tm.tm_sec);
}

std::optional<long long> ParseRfc3339(const std::string& s) {
  std::tm tm{};
  const char* end = strptime(s.c_str(), "%Y-%m-%dT%H:%M:%SZ", &tm);
  if (!end || *end) return std::nullopt;
  return static_cast<long long>(timegm(&tm));
}

}  // namespace

J FcrdnsJson(const FcrdnsReport& r) {
  J j = {{"result", FcrdnsResultName(r.result)},
         {"ptr", r.ptr},
         {"confirmed", r.confirmed.empty() ? J(nullptr) : J(r.confirmed)},
         {"generic", r.generic}};
  if (r.generic) {
    j["generic_name"] = r.generic_name;
    j["generic_reason"] = r.generic_reason;
  }
  if (!r.expected_ptr.empty()) j["expected_ptr"] = {{"pattern", r.expected_ptr}, {"ok", r.expected_ptr_ok}};
  if (r.helo) {
    J problems = J::array();
    for (HeloProblem p : r.helo->problems) problems.push_back(HeloProblemName(p));
    j["helo"] = {{"name", r.helo->name}, {"ok", r.helo->ok()}, {"problems", std::move(problems)}};
    if (!r.helo->detail.empty()) j["helo"]["detail"] = r.helo->detail;
  }
  if (r.result != FcrdnsResult::kPass) j["reason"] = r.reason;
  return j;
}

std::optional<FcrdnsReport> FcrdnsFromJson(const nlohmann::json& j) {
  if (!j.is_object()) return std::nullopt;
  auto result = FromName<FcrdnsResult>(j.value("result", nlohmann::json()), FcrdnsResultName, 4);
  if (!result) return std::nullopt;
  FcrdnsReport r;
  r.result = *result;
  r.ptr = Strings(j, "ptr");
  r.confirmed = StringOr(j, "confirmed");
  r.generic = BoolOr(j, "generic", false);
  r.generic_name = StringOr(j, "generic_name");
  r.generic_reason = StringOr(j, "generic_reason");
  if (auto e = j.find("expected_ptr"); e != j.end() && e->is_object()) {
    r.expected_ptr = StringOr(*e, "pattern");
    r.expected_ptr_ok = BoolOr(*e, "ok", true);
  }
  if (auto h = j.find("helo"); h != j.end() && h->is_object()) {
    HeloReport& helo = r.helo.emplace();
    helo.name = StringOr(*h, "name");
    helo.detail = StringOr(*h, "detail");
    if (auto p = h->find("problems"); p != h->end() && p->is_array())
      for (const auto& v : *p)
        if (auto problem = FromName<HeloProblem>(v, HeloProblemName, 5)) helo.problems.push_back(*problem);
  }
  r.reason = StringOr(j, "reason");
  return r;
}

J SpfJson(const std::vector<SpfDomainResult>& results) {
  J list = J::array();
  for (const auto& r : results) {
    J d = {{"domain", r.domain}, {"result", r.result}, {"reason", r.reason}};
    if (!r.permissive.empty()) d["permissive"] = r.permissive;
    list.push_back(std::move(d));
  }
  return list;
}

std::optional<std::vector<SpfDomainResult>> SpfFromJson(const nlohmann::json& j) {
  if (!j.is_array()) return std::nullopt;
  std::vector<SpfDomainResult> out;
  for (const auto& d : j) {
    if (!d.is_object() || StringOr(d, "domain").empty() || StringOr(d, "result").empty()) return std::nullopt;
    out.push_back({StringOr(d, "domain"), StringOr(d, "result"), StringOr(d, "reason"), Strings(d, "permissive")});
  }
  return out;
}

J MxJson(const std::vector<MxProbeResult>& results) {
  J list = J::array();
  for (const MxProbeResult& r : results) {
    J d = {{"domain", r.domain},        {"host", r.host},      {"address", r.address},
           {"stage", MxStageName(r.stage)}, {"code", r.code},  {"enhanced", r.enhanced},
           {"class", SmtpClassName(r.cls)}, {"zone", r.zone},  {"reason", r.reason},
           {"text", r.text},            {"error", r.error}};
    if (r.tls)
      d["tls"] = {{"ok", r.tls->ok},
                  {"protocol", r.tls->protocol},
                  {"name_match", r.tls->name_match},
                  {"peer_name", r.tls->peer_name},
                  {"error", r.tls->error}};
    d["probed_at"] = r.probed_at > 0 ? J(Rfc3339(r.probed_at)) : J(nullptr);
    if (r.reused) d["reused"] = true;
    list.push_back(std::move(d));
  }
  return list;
}

std::optional<std::vector<MxProbeResult>> MxFromJson(const nlohmann::json& j) {
  if (!j.is_array()) return std::nullopt;
  std::vector<MxProbeResult> out;
  for (const auto& d : j) {
    if (!d.is_object() || StringOr(d, "domain").empty()) return std::nullopt;
    MxProbeResult r;
    r.domain = StringOr(d, "domain");
    r.host = StringOr(d, "host");
    r.address = StringOr(d, "address");
    auto stage = ParseMxStage(StringOr(d, "stage"));
    auto cls = ParseSmtpClass(StringOr(d, "class"));
    if (!stage || !cls) return std::nullopt;
    r.stage = *stage;
    r.cls = *cls;
    if (auto c = d.find("code"); c != d.end() && c->is_number_integer()) r.code = c->get<int>();
    r.enhanced = StringOr(d, "enhanced");
    r.zone = StringOr(d, "zone");
    r.reason = StringOr(d, "reason");
    r.text = StringOr(d, "text");
    r.error = StringOr(d, "error");
    if (auto t = d.find("tls"); t != d.end() && t->is_object()) {
      MxTlsReport tls;
      tls.ok = BoolOr(*t, "ok", false);
      tls.protocol = StringOr(*t, "protocol");
      tls.name_match = BoolOr(*t, "name_match", false);
      tls.peer_name = StringOr(*t, "peer_name");
      tls.error = StringOr(*t, "error");
      r.tls = tls;
    }
    if (auto at = ParseRfc3339(StringOr(d, "probed_at"))) r.probed_at = *at;
    r.reused = BoolOr(d, "reused", false);
    out.push_back(std::move(r));
  }
  return out;
}

J VolumeJson(const VolumeReport& v) {
  return {{"delivered", v.delivered}, {"deferred", v.deferred}, {"bounced", v.bounced}};
}

J WarmupJson(const WarmupReport& w) {
  return {{"schedule", w.schedule},   {"start", w.start}, {"origin", w.origin},
          {"day", w.day},             {"allowance", w.allowance}, {"sent", w.sent},
          {"ratio", std::round(w.ratio * 1000) / 1000}, {"signal", WarmupSignalName(w.signal)},
          {"detail", w.detail}};
}

}  // namespace repwatch
