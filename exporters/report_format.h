// How reports look to people and scripts: `check --json` lines (DESIGN.md,
// "check --json output"), the same IP shape for GET /api/v1/ips/{ip}, and the
// readable table `check` prints by default.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "checks/report.h"

namespace repwatch {

// {"kind":"zone","zone":Z,"health":H, "ipv4":H?, "ipv6":H?, "detail":D?}
nlohmann::ordered_json ZoneHealthJson(const ZoneHealthReport& zone);
// {"kind":"ip","ip":IP,"range":NAME|null,"dnsbl":[{"zone","status","codes","meanings","txt","error",...}]}
//  plus "fcrdns":{...}, "spf":[...] and "mx":[...] when those checks ran (checks/report_json.h).
nlohmann::ordered_json IpReportJson(const IpReport& report);


// Fixed-width tables for a terminal.
std::string ZoneHealthTable(const std::vector<ZoneHealthReport>& zones);
std::string IpReportTableHeader();
std::string IpReportTableRow(const IpReport& report);

}  // namespace repwatch
