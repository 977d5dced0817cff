#include "checks/report_json.h"

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

std::vector<std::string> Strings(const nlohmann::json& j, const char* key) {
  std::vector<std::string> out;
  if (auto it = j.find(key); it != j.end() && it->is_array())
    for (const auto& v : *it)
      if (v.is_string()) out.push_back(v.get<std::string>());
  return out;
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
  r.generic = j.value("generic", false);
  r.generic_name = StringOr(j, "generic_name");
  r.generic_reason = StringOr(j, "generic_reason");
  if (auto e = j.find("expected_ptr"); e != j.end() && e->is_object()) {
    r.expected_ptr = StringOr(*e, "pattern");
    r.expected_ptr_ok = e->value("ok", true);
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

}  // namespace repwatch
