// What checks produce: typed results, one section per check kind. Checks fill
// these; the state store, the JSON printer and the metrics exporter read them.
// Nothing here knows about metrics, HTTP or SQL.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/ip.h"

namespace repwatch {

// Every lookup ends in one of three ways; `error` ("could not tell") never raises
// nor clears anything downstream.
enum class Verdict { kOk, kProblem, kError };

enum class DnsblStatus { kClean, kListed, kError };
std::string_view DnsblStatusName(DnsblStatus s);  // "clean" | "listed" | "error"

struct DnsblZoneResult {
  std::string zone;                   // the zone label as configured ("{key}" never expanded)
  DnsblStatus status = DnsblStatus::kError;
  bool allowlist = false;             // listed on an allow list: a positive signal, not a problem
  std::vector<std::string> codes;     // every A value kept, dotted, in answer order
  std::vector<std::string> meanings;  // one per code
  std::string txt;                    // TXT reason for listed IPs (strings joined), may be empty
  std::string error;                  // why status is error, for people
  std::string delist_url;             // "{ip}" already substituted; may be empty
  Verdict verdict() const;            // listed on a block list -> kProblem
};

enum class ZoneHealth { kOk, kNotAnswering, kListsEverything, kError };
std::string_view ZoneHealthName(ZoneHealth h);  // "ok" | "not_answering" | "lists_everything" | "error"

struct ZoneHealthReport {
  std::string zone;
  ZoneHealth health = ZoneHealth::kOk;        // worst of the families probed
  std::optional<ZoneHealth> ipv4;             // per family probed
  std::optional<ZoneHealth> ipv6;
  std::string detail;                         // what the test points answered, when not ok
  ZoneHealth ForFamily(Family f) const;       // health that applies to addresses of family f
};

// One address's results from one pass of every enabled check.
struct IpReport {
  IpAddress ip;
  std::string range;
  std::optional<std::vector<DnsblZoneResult>> dnsbl;  // absent when the check is disabled
};

// Cycle-level results (not tied to one address).
struct CycleReport {
  std::vector<ZoneHealthReport> zones;
};

}  // namespace repwatch
