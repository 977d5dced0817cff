// Small builders for test inputs that would otherwise be repeated per test file.
#pragma once

#include <string>
#include <vector>

#include "agent/config.h"
#include "checks/report.h"

namespace repwatch::testing {

// A range named `name` over CIDRs that must parse (tests pass literals).
inline RangeConfig Range(const std::string& name, const std::vector<std::string>& cidrs) {
  RangeConfig r;
  r.name = name;
  for (const auto& c : cidrs) r.cidrs.push_back(Cidr::Parse(c).value());
  return r;
}

// An address's report carrying only DNSBL results.
inline IpReport DnsblReport(const IpAddress& ip, std::string range, std::vector<DnsblZoneResult> results) {
  IpReport report;
  report.ip = ip;
  report.range = std::move(range);
  report.dnsbl = std::move(results);
  return report;
}

}  // namespace repwatch::testing
