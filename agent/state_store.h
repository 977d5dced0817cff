// StateStore: repwatch's durable state in SQLite (<state_dir>/repwatch.db, WAL mode).
// Survives restarts; nothing is ever silently dropped. Only sparse state is kept,
// so a clean /16 × 30 lists costs one row per address, not one per lookup:
//  - ips:            one row per address checked: range, last_checked
//  - dnsbl_state:    one row per (ip, zone) that is NOT clean (listed or error),
//                    with codes, meanings, txt, error, first_seen, last_seen
//                    (first/last seen of the current listing; an `error` result
//                    keeps the listing's first_seen — an error never clears).
//  - dnsbl_history:  listings that ended (ip, zone, codes, first_seen, last_seen, cleared_at)
//  - zone_health:    latest health per zone
//  - cycles:         started, finished, duration, addresses, success
// A (ip, zone) with no dnsbl_state row for an address checked at last_checked was clean.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agent/status.h"
#include "checks/report.h"

namespace repwatch {

// A stored listing, as shown by metrics and the API.
struct StoredListing {
  std::string ip;
  std::string range;
  std::string zone;
  std::vector<std::string> codes;
  std::vector<std::string> meanings;
  std::string txt;
  long long first_seen = 0;  // unix seconds
  long long last_seen = 0;
};

class StateStore {
 public:
  // Creates state_dir if missing and opens/migrates the database. Errors name the path.
  static Result<std::unique_ptr<StateStore>> Open(const std::string& state_dir);
  ~StateStore();

  // A cycle's writes go in one transaction: BeginCycle ... Record* ... EndCycle.
  // A crash before EndCycle leaves the previous state intact.
  Status BeginCycle(long long now);
  Status RecordIp(const IpReport& report, long long now);
  Status RecordZoneHealth(const ZoneHealthReport& health, long long now);
  Status EndCycle(long long now, double duration_seconds, size_t addresses, bool success);

  // Reads.
  Result<std::vector<StoredListing>> CurrentListings() const;
  // The stored state of one address in IpReport shape (clean zones included, for
  // the zones given), or nullopt if the address was never checked.
  Result<std::optional<IpReport>> LoadIp(const IpAddress& ip, const std::vector<std::string>& zones_for_family) const;
  Result<std::vector<ZoneHealthReport>> ZoneHealths() const;
  // Unix seconds of the last successful cycle end, 0 if none.
  Result<long long> LastSuccessfulCycle() const;

  class Impl;

 private:
  explicit StateStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace repwatch
