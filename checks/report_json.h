// The JSON form of the FCrDNS and SPF report sections (DESIGN.md, "check --json
// output"): what `check --json` and GET /api/v1/ips/{ip} print, and what the state
// store keeps per address. Reading gives back what writing was given; anything
// malformed reads as nullopt (the caller says what it was reading).
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <vector>

#include "checks/report.h"

namespace repwatch {

// {"result","ptr":[...],"confirmed":NAME|null,"generic":BOOL,"generic_name"?,"generic_reason"?,
//  "expected_ptr"?:{"pattern","ok"},"helo"?:{"name","ok","problems":[...],"detail"?},"reason"? (when not pass)}
nlohmann::ordered_json FcrdnsJson(const FcrdnsReport& report);
std::optional<FcrdnsReport> FcrdnsFromJson(const nlohmann::json& j);

// [{"domain","result","reason","permissive"?:[...]}]
nlohmann::ordered_json SpfJson(const std::vector<SpfDomainResult>& results);
std::optional<std::vector<SpfDomainResult>> SpfFromJson(const nlohmann::json& j);

// [{"domain","host","address","stage","code","enhanced","class","zone","reason","text","error",
//   "tls"?:{"ok","protocol","name_match","peer_name","error"},"probed_at":RFC 3339 | null,"reused"?:true}]
nlohmann::ordered_json MxJson(const std::vector<MxProbeResult>& results);
std::optional<std::vector<MxProbeResult>> MxFromJson(const nlohmann::json& j);

// {"delivered","deferred","bounced"}
nlohmann::ordered_json VolumeJson(const VolumeReport& volume);
// {"schedule","start","origin","day","allowance","sent","ratio","signal","detail"}
nlohmann::ordered_json WarmupJson(const WarmupReport& warmup);

}  // namespace repwatch
