// The check registry: config section name -> factory. Adding a check kind means
// one new file in checks/ and one entry here.
#include <algorithm>
#include <functional>
#include <string_view>

#include "checks/check.h"
#include "checks/dnsbl.h"
#include "checks/fcrdns.h"
#include "checks/mx_probe.h"
#include "checks/spf.h"
#include "checks/warmup.h"

namespace repwatch {
namespace {

struct CheckKind {
  std::string_view name;
  std::function<bool(const Config&)> enabled;
  std::function<std::unique_ptr<Check>(const Config&, CheckEnv, const std::set<Family>&)> make;
};

const std::vector<CheckKind>& Kinds() {
  static const std::vector<CheckKind> kinds = {
      {"dnsbl", [](const Config& c) { return !c.dnsbl.empty(); },
       [](const Config& c, CheckEnv env, const std::set<Family>& f) {
         return std::make_unique<DnsblCheck>(c, env, f);
       }},
      {"fcrdns", [](const Config& c) { return c.fcrdns.enabled; },
       [](const Config&, CheckEnv env, const std::set<Family>&) { return std::make_unique<FcrdnsCheck>(env); }},
      {"spf",
       [](const Config& c) {
         return c.spf.enabled && std::any_of(c.ranges.begin(), c.ranges.end(),
                                             [](const RangeConfig& r) { return !r.spf_domains.empty(); });
       },
       [](const Config&, CheckEnv env, const std::set<Family>&) { return std::make_unique<SpfCheck>(env); }},
      {"mx",
       [](const Config& c) {
         return c.mx_probe.enabled && !c.mx_probe.domains.empty() &&
                std::any_of(c.ranges.begin(), c.ranges.end(), [](const RangeConfig& r) { return r.mx_probe; });
       },
       [](const Config& c, CheckEnv env, const std::set<Family>&) { return std::make_unique<MxProbeCheck>(c, env); }},
      {"warmup", WarmupCheckEnabled,
       [](const Config& c, CheckEnv env, const std::set<Family>&) -> std::unique_ptr<Check> {
         if (!env.volume) return nullptr;  // `repwatch check` without a state directory to read
         return std::make_unique<WarmupCheck>(c, env, *env.volume);
       }},
  };
  return kinds;
}

}  // namespace

std::vector<std::unique_ptr<Check>> MakeChecks(const Config& config, CheckEnv env, const std::set<Family>& families) {
  std::vector<std::unique_ptr<Check>> out;
  for (const auto& kind : Kinds())
    if (kind.enabled(config))
      if (auto check = kind.make(config, env, families)) out.push_back(std::move(check));
  return out;
}

}  // namespace repwatch
