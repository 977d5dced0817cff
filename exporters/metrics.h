// The one place that names metrics. Everything under repwatch_* is built here,
// from two sources read at scrape time:
//  - a MetricsSnapshot published at the end of each cycle (listings, counts per
//    zone and range, zone health, cycle timing) — the collector style Prometheus
//    recommends for state refreshed on a schedule;
//  - live counters (DnsStats) kept by the DNS client.
// Per-IP series exist only while an IP is listed; everything else is per zone/range.
//
// Every family carries HELP and TYPE; values are in base units; counters end in _total.
// From the snapshot (absent until the first cycle has been published):
//   repwatch_dnsbl_listed{ip,zone,code,range}         gauge 1 per block-list listing and code
//   repwatch_dnsbl_listing_info{ip,zone,code,range,meaning,delist_url}
//                                                     gauge 1, the same listings with the code's meaning
//                                                     and the list's delisting URL (empty when unknown)
//   repwatch_dnsbl_listed_ips{zone,range}             gauge, addresses listed on a block list
//   repwatch_dnsbl_error_ips{zone,range}              gauge, addresses whose lookup ended in error
//   repwatch_dnsbl_allowlisted_ips{zone,range}        gauge, addresses listed on an allow list
//   repwatch_dnsbl_zone_up{zone}                      gauge 1 when the zone's health is ok, else 0
//   repwatch_dnsbl_zone_health{zone,family,health}    gauge 1, the health per address family probed
//   repwatch_fcrdns_failing{ip,range,result}          gauge 1 while FCrDNS fails (result fail | no_ptr)
//   repwatch_ptr_generic{ip,range,ptr}                gauge 1 while a PTR name looks generic / dynamic
//   repwatch_ptr_unexpected{ip,range,ptr}             gauge 1 while no PTR name matches the range's expected_ptr
//   repwatch_helo_problem{ip,range,helo,problem}      gauge 1 per HELO problem (not_fqdn | no_address |
//                                                     wrong_address | ptr_mismatch)
//   repwatch_fcrdns_ips{range,result}                 gauge, addresses per FCrDNS result (pass ... temperror)
//   repwatch_spf_unauthorized{ip,range,domain,result} gauge 1 while SPF does not pass (temperror excluded)
//   repwatch_spf_ips{range,domain,result}             gauge, addresses per SPF result
//   repwatch_spf_permissive{domain,term}              gauge 1 for a record term authorising the whole Internet
//   repwatch_mx_not_ok{ip,range,domain,class,stage,code,enhanced,zone}
//                                                     gauge 1 while a receiver's last answer was not ok
//                                                     (class blocked_by_list ... error; code "" without a reply)
//   repwatch_mx_ips{range,domain,class}               gauge, addresses per MX probe class
//   repwatch_mx_tls_ips{range,domain,tls}             gauge, addresses per STARTTLS outcome
//                                                     (ok | name_mismatch | failed | not_offered)
//   For addresses on a warm-up ramp (not those that completed it):
//   repwatch_warmup_day{ip,range,schedule}            gauge, today's ramp day (0 = the first)
//   repwatch_warmup_allowance{ip,range}               gauge, today's allowance (messages)
//   repwatch_warmup_sent{ip,range}                    gauge, today's attempts so far
//   repwatch_warmup_ratio{ip,range}                   gauge, sent / allowance
//   repwatch_warmup_signal{ip,range,signal}           gauge 1 (ok | ahead | backoff | stalled)
//   repwatch_warmup_ips{range,signal}                 gauge, addresses per signal (completed included)
//   repwatch_volume_today{range,outcome}              gauge, today's (UTC) attempts per outcome
//   repwatch_targets{range}                           gauge, addresses checked in the last cycle
//   repwatch_cycle_duration_seconds                   gauge, the last cycle
//   repwatch_last_cycle_success_timestamp_seconds     gauge, omitted until a cycle succeeded
// Always present:
//   repwatch_build_info{version,revision}             gauge 1
//   repwatch_dns_queries_total                        counter, questions asked
//   repwatch_dns_attempts_total                       counter, packets sent, retries included
//   repwatch_dns_tcp_fallbacks_total                  counter, truncated answers retried over TCP
//   repwatch_dns_query_failures_total{reason}         counter, every reason from 0
//   repwatch_dns_dropped_packets_total{reason}        counter, every reason from 0
// Once the daemon reports its config loads (SetConfigReload; `repwatch run`):
//   repwatch_config_last_reload_successful            gauge, 1 when the last reload (or the start) loaded
//                                                     the config, 0 when it failed and the old one runs on
//   repwatch_config_last_reload_success_timestamp_seconds  gauge, when the running config was loaded
// Once webhook statistics are given (SetWebhookStats), one series per configured sink:
//   repwatch_webhook_sent_total{sink}                 counter, requests the receiver took (2xx)
//   repwatch_webhook_failures_total{sink,reason}      counter, failed attempts, every reason from 0
//                                                     (timeout | connect | http_4xx | http_5xx |
//                                                     http_429 | gone | other)
//   repwatch_webhook_queue_items{sink}                gauge, event items not delivered yet
//   repwatch_webhook_oldest_undelivered_age_seconds{sink}  gauge, age of the oldest of them (0 when none)
//   repwatch_webhook_sink_disabled{sink}              gauge 1 while the sink is disabled (after a 410)
// Once log-source statistics are given (SetVolumeSources), per [[volume.sources]] entry
// (counters since the process started or the config was last reloaded):
//   repwatch_volume_log_lines_total{source,result}    counter, lines read: counted (a delivery attempt) |
//                                                     ignored (another kind of line) | malformed |
//                                                     too_long (skipped whole, over 1 MiB)
//   repwatch_volume_log_rotations_total{source,kind}  counter, rotations followed: rename | truncate
//   repwatch_volume_log_up{source}                    gauge 1 while the log reads without error (0 also
//                                                     when its file has not been there for a minute)
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include "agent/config.h"
#include "agent/dns_stats.h"
#include "agent/state_store.h"
#include "agent/volume_ingest.h"
#include "checks/report.h"

namespace repwatch {

class WebhookStats;  // exporters/webhooks.h

struct MetricsSnapshot {
  struct Listing {
    std::string ip, zone, code, range;
    std::string meaning, delist_url;  // for people (repwatch_dnsbl_listing_info); not part of the key
    bool operator<(const Listing& o) const;
  };
  using ZoneRange = std::pair<std::string, std::string>;  // (zone, range)

  std::vector<Listing> listings;                 // block-list listings, one per (ip, zone, code)
  std::map<ZoneRange, size_t> listed_ips;        // block lists: addresses listed
  std::map<ZoneRange, size_t> error_ips;         // lookups that ended in error
  std::map<ZoneRange, size_t> allowlisted_ips;   // allow lists: addresses listed (good)
  std::vector<ZoneHealthReport> zones;
  std::map<std::string, size_t> targets;         // addresses per range
  // FCrDNS / SPF: per-address series (only for addresses with a problem) and counts,
  // keyed by metric name, then by the full label set.
  using LabelSet = std::map<std::string, std::string>;
  std::map<std::string, std::vector<LabelSet>, std::less<>> problems;
  std::map<std::string, std::map<LabelSet, size_t>, std::less<>> counts;
  // Per-address gauges with a value (warm-up day, allowance, ...), by metric name.
  std::map<std::string, std::vector<std::pair<LabelSet, double>>, std::less<>> values;
  bool have_cycle = false;
  // Built at start-up from the state store, before this process finished a cycle:
  // listings, listed counts, zone health and the last success time are the stored
  // ones; cycle duration, targets and error counts are omitted until a cycle ends.
  bool restored = false;
  double cycle_duration_seconds = 0;
  long long last_success_unix = 0;
  double interval_seconds = 0;                   // [agent] interval, for "no cycle in 3 intervals" alerts
};

// Accumulates one cycle's reports into a snapshot. Seeds every configured
// (zone, range) pair with zeros so counts exist before anything is listed: pairs
// where the zone serves a family the range has addresses of; listed_ips for block
// lists, allowlisted_ips for allow lists, error_ips for both. Domain zones are skipped.
// One builder per cycle: Finish hands the snapshot over and the builder is spent.
class SnapshotBuilder {
 public:
  explicit SnapshotBuilder(const Config& config);
  // Counts the address under targets[range], and each of its DNSBL, FCrDNS and SPF results.
  void Add(const IpReport& report);
  void SetCycle(const CycleReport& cycle);
  // Replaces the listings and the listed / allow-listed counts with the stored
  // ones. The store keeps a listing LISTED while its lookups end in `error`
  // ("an error never clears"), so the per-IP series and the alerts built on them
  // survive a resolver hiccup or an unhealthy zone. Stored rows for zones or
  // ranges no longer configured, or addresses that left their range, are skipped.
  void UseStoredListings(const std::vector<StoredListing>& stored);
  // Adds a stored address's fcrdns / spf / mx sections (StateStore::ForEachCheckedIp),
  // or its warm-up and volume as volume.db has them, to the start-up snapshot, so their
  // series survive a restart too. Addresses that left their range are skipped; targets
  // are not counted.
  void AddStored(const IpReport& report);
  // The start-up snapshot (see MetricsSnapshot::restored), after UseStoredListings
  // and SetCycle with the stored zone health. Keeps listing series (and the alerts
  // on them) steady across a restart instead of vanishing until the first cycle ends.
  std::shared_ptr<const MetricsSnapshot> FinishRestored(long long last_success_unix);
  // success_unix: end of the last successful cycle (0: none yet, the metric is omitted).
  std::shared_ptr<const MetricsSnapshot> Finish(double cycle_duration_seconds, long long success_unix);

 private:
  void AddFcrdns(const IpReport& report, const FcrdnsReport& r);
  void AddSpf(const IpReport& report, const std::vector<SpfDomainResult>& results);
  void AddMx(const IpReport& report, const std::vector<MxProbeResult>& results);
  void AddWarmup(const IpReport& report);

  std::vector<RangeConfig> ranges_;  // a copy: the builder may outlive the Config it was made from
  std::shared_ptr<MetricsSnapshot> snap_;
  std::set<std::pair<std::string, std::string>> permissive_;  // (domain, term), once each
};

class MetricsExporter final : public prometheus::Collectable {
 public:
  // dns_stats must outlive the exporter.
  explicit MetricsExporter(const DnsStats& dns_stats);
  // Thread-safe: the cycle thread publishes while the HTTP thread collects.
  void Publish(std::shared_ptr<const MetricsSnapshot> snapshot);
  // The outcome of the last config load (start-up or reload) and the time the running
  // config was loaded. Thread-safe.
  void SetConfigReload(bool successful, long long success_unix);
  std::vector<prometheus::MetricFamily> Collect() const override;
  // The webhook sender's statistics (nullptr: no webhook families). Thread-safe; a
  // reload that rebuilds the sender hands over its new statistics here.
  void SetWebhookStats(std::shared_ptr<const WebhookStats> stats);
  // Where the log-source families come from (VolumeIngester::Stats; empty: none),
  // called at scrape time on the HTTP thread. Whoever owns the ingester clears it
  // (SetVolumeSources({})) before the ingester goes away.
  void SetVolumeSources(std::function<std::vector<SourceStats>()> stats);

 private:
  const DnsStats& dns_stats_;
  mutable std::mutex mu_;
  std::optional<std::pair<bool, long long>> config_reload_;  // (successful, success_unix)
  std::shared_ptr<const MetricsSnapshot> snapshot_;
  std::shared_ptr<const WebhookStats> webhook_stats_;
  std::function<std::vector<SourceStats>()> volume_sources_;
};

}  // namespace repwatch
