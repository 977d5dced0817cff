// The one place that names metrics. Everything under repwatch_* is built here,
// from two sources read at scrape time:
//  - a MetricsSnapshot published at the end of each cycle (listings, counts per
//    zone and range, zone health, cycle timing) — the collector style Prometheus
//    recommends for state refreshed on a schedule;
//  - live counters (DnsStats) kept by the DNS client.
// Per-IP series exist only while an IP is listed; everything else is per zone/range.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include "agent/config.h"
#include "agent/dns_stats.h"
#include "checks/report.h"

namespace repwatch {

struct MetricsSnapshot {
  struct Listing {
    std::string ip, zone, code, range;
    bool operator<(const Listing& o) const;
  };
  using ZoneRange = std::pair<std::string, std::string>;  // (zone, range)

  std::vector<Listing> listings;                 // block-list listings, one per (ip, zone, code)
  std::map<ZoneRange, size_t> listed_ips;        // block lists: addresses listed
  std::map<ZoneRange, size_t> error_ips;         // lookups that ended in error
  std::map<ZoneRange, size_t> allowlisted_ips;   // allow lists: addresses listed (good)
  std::vector<ZoneHealthReport> zones;
  std::map<std::string, size_t> targets;         // addresses per range
  bool have_cycle = false;
  double cycle_duration_seconds = 0;
  long long last_success_unix = 0;
};

// Accumulates one cycle's reports into a snapshot. Seeds every configured
// (zone, range) pair with zeros so counts exist before anything is listed.
class SnapshotBuilder {
 public:
  explicit SnapshotBuilder(const Config& config);
  void Add(const IpReport& report);
  void SetCycle(const CycleReport& cycle);
  std::shared_ptr<const MetricsSnapshot> Finish(double cycle_duration_seconds, long long success_unix);

 private:
  std::shared_ptr<MetricsSnapshot> snap_;
};

class MetricsExporter final : public prometheus::Collectable {
 public:
  explicit MetricsExporter(const DnsStats& dns_stats);
  void Publish(std::shared_ptr<const MetricsSnapshot> snapshot);
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  const DnsStats& dns_stats_;
  mutable std::mutex mu_;
  std::shared_ptr<const MetricsSnapshot> snapshot_;
};

}  // namespace repwatch
