#include "exporters/metrics.h"

#include <algorithm>
#include <chrono>
#include <set>
#include <tuple>

#include "agent/targets.h"
#include "build_info.h"
#include "checks/warmup.h"
#include "exporters/webhooks.h"

namespace repwatch {
namespace {

constexpr const char* kFcrdnsFailing = "repwatch_fcrdns_failing";
constexpr const char* kPtrGeneric = "repwatch_ptr_generic";
constexpr const char* kPtrUnexpected = "repwatch_ptr_unexpected";
constexpr const char* kHeloProblem = "repwatch_helo_problem";
constexpr const char* kFcrdnsIps = "repwatch_fcrdns_ips";
constexpr const char* kSpfUnauthorized = "repwatch_spf_unauthorized";
constexpr const char* kSpfIps = "repwatch_spf_ips";
constexpr const char* kSpfPermissive = "repwatch_spf_permissive";
constexpr const char* kMxNotOk = "repwatch_mx_not_ok";
constexpr const char* kMxIps = "repwatch_mx_ips";
constexpr const char* kMxTlsIps = "repwatch_mx_tls_ips";
constexpr const char* kWarmupDay = "repwatch_warmup_day";
constexpr const char* kWarmupAllowance = "repwatch_warmup_allowance";
constexpr const char* kWarmupSent = "repwatch_warmup_sent";
constexpr const char* kWarmupRatio = "repwatch_warmup_ratio";
constexpr const char* kWarmupSignal = "repwatch_warmup_signal";
constexpr const char* kWarmupIps = "repwatch_warmup_ips";
constexpr const char* kVolumeToday = "repwatch_volume_today";

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;
using Labels = std::vector<ClientMetric::Label>;

bool ZoneServesRange(ZoneFamily zone, const RangeConfig& range) {
  if (zone == ZoneFamily::kDomain) return false;
  return std::any_of(range.cidrs.begin(), range.cidrs.end(), [zone](const Cidr& c) {
    return zone == ZoneFamily::kBoth || (zone == ZoneFamily::kIpv4) == c.network().is_v4();
  });
}

// FCrDNS, SPF and MX families: per-address problem series and counts per range.
struct MetricHelp {
  std::string_view name, help;
};
constexpr MetricHelp kCheckMetrics[] = {
    {kFcrdnsFailing, "1 while the address's reverse DNS is not forward-confirmed (result fail or no_ptr)."},
    {kPtrGeneric, "1 while a PTR name of the address looks generic or dynamic (IP digits, pool keywords)."},
    {kPtrUnexpected, "1 while no PTR name of the address matches its range's expected_ptr pattern."},
    {kHeloProblem, "1 per problem with the HELO name the address announces."},
    {kFcrdnsIps, "Addresses per FCrDNS result in the last cycle, per range."},
    {kSpfUnauthorized, "1 while the domain's SPF policy does not authorise the address (any result but pass)."},
    {kSpfIps, "Addresses per SPF result in the last cycle, per range and domain."},
    {kSpfPermissive, "1 for an SPF record term that authorises (nearly) the whole Internet."},
    {kMxNotOk, "1 while the receiver's last answer to a session from the address was not ok (class and reply in labels)."},
    {kMxIps, "Addresses per MX probe class in the last cycle, per range and receiver domain."},
    {kMxTlsIps, "Addresses per STARTTLS outcome (ok, name_mismatch, failed, not_offered), per range and receiver domain."},
    {kWarmupDay, "Today's day on the warm-up ramp (0 = the first day), per address warming up."},
    {kWarmupAllowance, "Today's warm-up allowance in messages, per address warming up."},
    {kWarmupSent, "Today's (UTC) delivery attempts so far, per address warming up."},
    {kWarmupRatio, "Today's attempts divided by today's allowance, per address warming up."},
    {kWarmupSignal, "1 for the address's warm-up signal: ok, ahead, backoff or stalled."},
    {kWarmupIps, "Addresses per warm-up signal in the last cycle, per range."},
    {kVolumeToday, "Today's (UTC) delivery attempts per outcome (delivered, deferred, bounced), per range."},
};

MetricFamily NewFamily(std::string name, std::string help, MetricType type) {
  return MetricFamily{std::move(name), std::move(help), type, {}};
}

void AddSample(MetricFamily& family, Labels labels, double value) {
  ClientMetric m;
  m.label = std::move(labels);
  if (family.type == MetricType::Counter)
    m.counter.value = value;
  else
    m.gauge.value = value;
  family.metric.push_back(std::move(m));
}

void AddPerZoneRange(std::vector<MetricFamily>& out, const char* name, const char* help,
                     const std::map<MetricsSnapshot::ZoneRange, size_t>& counts) {
  MetricFamily f = NewFamily(name, help, MetricType::Gauge);
  for (const auto& [key, n] : counts)
    AddSample(f, {{"zone", key.first}, {"range", key.second}}, static_cast<double>(n));
  out.push_back(std::move(f));
}

void AddListings(std::vector<MetricFamily>& out, const MetricsSnapshot& s) {
  MetricFamily f = NewFamily("repwatch_dnsbl_listed",
                          "1 for each current block-list listing of an address, per return code.",
                          MetricType::Gauge);
  MetricFamily info = NewFamily("repwatch_dnsbl_listing_info",
                                "1 for each current block-list listing, with the code's meaning and the list's "
                                "delisting URL (empty when the catalogue has none).",
                                MetricType::Gauge);
  for (const auto& l : s.listings) {
    AddSample(f, {{"ip", l.ip}, {"zone", l.zone}, {"code", l.code}, {"range", l.range}}, 1);
    AddSample(info,
              {{"ip", l.ip}, {"zone", l.zone}, {"code", l.code}, {"range", l.range}, {"meaning", l.meaning},
               {"delist_url", l.delist_url}},
              1);
  }
  out.push_back(std::move(f));
  out.push_back(std::move(info));
}

// One listing per distinct code, each with its meaning (codes and meanings are parallel).
void AddListing(std::vector<MetricsSnapshot::Listing>& out, const std::string& ip, const std::string& zone,
                const std::string& range, const std::vector<std::string>& codes,
                const std::vector<std::string>& meanings, const std::string& delist_url) {
  std::map<std::string, std::string> by_code;
  for (size_t i = 0; i < codes.size(); ++i) by_code.emplace(codes[i], i < meanings.size() ? meanings[i] : "");
  if (by_code.empty()) by_code.emplace("", "");
  for (const auto& [code, meaning] : by_code) out.push_back({ip, zone, code, range, meaning, delist_url});
}

void AddZones(std::vector<MetricFamily>& out, const MetricsSnapshot& s) {
  MetricFamily up = NewFamily("repwatch_dnsbl_zone_up",
                           "1 when the DNSBL zone answers its test points correctly, 0 otherwise.",
                           MetricType::Gauge);
  MetricFamily health = NewFamily("repwatch_dnsbl_zone_health",
                               "1 for the current health of a DNSBL zone, per address family probed.",
                               MetricType::Gauge);
  for (const ZoneHealthReport& z : s.zones) {
    AddSample(up, {{"zone", z.zone}}, z.health == ZoneHealth::kOk ? 1 : 0);
    for (auto [family, h] : {std::pair{"ipv4", z.ipv4}, std::pair{"ipv6", z.ipv6}})
      if (h) AddSample(health, {{"zone", z.zone}, {"family", family}, {"health", std::string(ZoneHealthName(*h))}}, 1);
  }
  out.push_back(std::move(up));
  out.push_back(std::move(health));
}

void AddLastSuccess(std::vector<MetricFamily>& out, const MetricsSnapshot& s) {
  MetricFamily interval = NewFamily("repwatch_cycle_interval_seconds", "The configured time between cycle starts.",
                                 MetricType::Gauge);
  AddSample(interval, {}, s.interval_seconds);
  out.push_back(std::move(interval));
  if (s.last_success_unix <= 0) return;
  MetricFamily success = NewFamily("repwatch_last_cycle_success_timestamp_seconds",
                                "Unix time the last successful cycle ended.", MetricType::Gauge);
  AddSample(success, {}, static_cast<double>(s.last_success_unix));
  out.push_back(std::move(success));
}

void AddCycle(std::vector<MetricFamily>& out, const MetricsSnapshot& s) {
  if (s.restored) return AddLastSuccess(out, s);
  MetricFamily targets = NewFamily("repwatch_targets", "Addresses checked in the last cycle, per range.",
                                MetricType::Gauge);
  for (const auto& [range, n] : s.targets) AddSample(targets, {{"range", range}}, static_cast<double>(n));
  out.push_back(std::move(targets));
  MetricFamily duration = NewFamily("repwatch_cycle_duration_seconds", "Duration of the last cycle.",
                                 MetricType::Gauge);
  AddSample(duration, {}, s.cycle_duration_seconds);
  out.push_back(std::move(duration));
  AddLastSuccess(out, s);
}

Labels ToLabels(const MetricsSnapshot::LabelSet& set) {
  Labels labels;
  for (const auto& [name, value] : set) labels.push_back({name, value});
  return labels;
}

void AddChecks(std::vector<MetricFamily>& out, const MetricsSnapshot& s) {
  for (const MetricHelp& m : kCheckMetrics) {
    MetricFamily f = NewFamily(std::string(m.name), std::string(m.help), MetricType::Gauge);
    if (auto it = s.problems.find(m.name); it != s.problems.end())
      for (const auto& labels : it->second) AddSample(f, ToLabels(labels), 1);
    if (auto it = s.counts.find(m.name); it != s.counts.end())
      for (const auto& [labels, n] : it->second) AddSample(f, ToLabels(labels), static_cast<double>(n));
    if (auto it = s.values.find(m.name); it != s.values.end())
      for (const auto& [labels, v] : it->second) AddSample(f, ToLabels(labels), v);
    out.push_back(std::move(f));
  }
}

void AddSnapshot(std::vector<MetricFamily>& out, const MetricsSnapshot& s) {
  AddListings(out, s);
  AddChecks(out, s);
  AddPerZoneRange(out, "repwatch_dnsbl_listed_ips", "Addresses listed on a block list, per zone and range.",
                  s.listed_ips);
  if (!s.restored)
    AddPerZoneRange(out, "repwatch_dnsbl_error_ips",
                    "Addresses whose lookup ended in error (could not tell), per zone and range.", s.error_ips);
  AddPerZoneRange(out, "repwatch_dnsbl_allowlisted_ips", "Addresses listed on an allow list, per zone and range.",
                  s.allowlisted_ips);
  AddZones(out, s);
  AddCycle(out, s);
}

double Load(const std::atomic<uint64_t>& v) { return static_cast<double>(v.load(std::memory_order_relaxed)); }

template <typename Reason, typename NameFn>
MetricFamily PerReason(const char* name, const char* help, const auto& counters, NameFn name_of) {
  MetricFamily f = NewFamily(name, help, MetricType::Counter);
  for (size_t i = 0; i < counters.size(); ++i)
    AddSample(f, {{"reason", std::string(name_of(static_cast<Reason>(i)))}}, Load(counters[i]));
  return f;
}

void AddDns(std::vector<MetricFamily>& out, const DnsStats& d) {
  for (auto [name, help, value] :
       {std::tuple{"repwatch_dns_queries_total", "DNS questions asked, each counted once.", &d.queries},
        std::tuple{"repwatch_dns_attempts_total", "DNS packets sent, retries included.", &d.attempts},
        std::tuple{"repwatch_dns_tcp_fallbacks_total", "Truncated UDP answers retried over TCP.",
                   &d.tcp_fallbacks}}) {
    MetricFamily f = NewFamily(name, help, MetricType::Counter);
    AddSample(f, {}, Load(*value));
    out.push_back(std::move(f));
  }
  out.push_back(PerReason<DnsFailure>("repwatch_dns_query_failures_total",
                                      "DNS questions that ended without a usable answer, by reason.",
                                      d.failures, DnsFailureName));
  out.push_back(PerReason<DnsDrop>("repwatch_dns_dropped_packets_total",
                                   "Received DNS packets dropped unread, by reason.", d.dropped, DnsDropName));
}

void AddWebhooks(std::vector<MetricFamily>& out, const WebhookStats& stats) {
  MetricFamily sent = NewFamily("repwatch_webhook_sent_total", "Webhook requests the receiver accepted (2xx).",
                                MetricType::Counter);
  MetricFamily failures = NewFamily("repwatch_webhook_failures_total",
                                    "Webhook requests that failed and will be retried (or disabled the sink), by reason.",
                                    MetricType::Counter);
  MetricFamily queue = NewFamily("repwatch_webhook_queue_items", "Webhook event items not delivered yet.",
                                 MetricType::Gauge);
  MetricFamily age = NewFamily("repwatch_webhook_oldest_undelivered_age_seconds",
                               "Age of the oldest webhook event item not delivered yet, 0 when none.",
                               MetricType::Gauge);
  MetricFamily disabled = NewFamily("repwatch_webhook_sink_disabled",
                                    "1 while the webhook sink is disabled (its receiver answered 410 Gone).",
                                    MetricType::Gauge);
  const long long now = std::chrono::duration_cast<std::chrono::seconds>(
                            std::chrono::system_clock::now().time_since_epoch()).count();
  for (const auto& s : stats.sinks()) {
    AddSample(sent, {{"sink", s->sink}}, Load(s->sent));
    for (size_t i = 0; i < kWebhookFailureCount; ++i)
      AddSample(failures, {{"sink", s->sink}, {"reason", std::string(WebhookFailureName(static_cast<WebhookFailure>(i)))}},
                Load(s->failures[i]));
    AddSample(queue, {{"sink", s->sink}}, static_cast<double>(s->queue_items.load()));
    const long long oldest = s->oldest_created.load();
    AddSample(age, {{"sink", s->sink}}, oldest > 0 ? static_cast<double>(std::max(0LL, now - oldest)) : 0.0);
    AddSample(disabled, {{"sink", s->sink}}, s->disabled.load() ? 1 : 0);
  }
  for (MetricFamily* f : {&sent, &failures, &queue, &age, &disabled}) out.push_back(std::move(*f));
}

void AddConfigReload(std::vector<MetricFamily>& out, bool successful, long long success_unix) {
  MetricFamily ok = NewFamily("repwatch_config_last_reload_successful",
                              "1 when the last config load (start-up, SIGHUP or POST /-/reload) succeeded; 0 when "
                              "it failed and the previous config is still running.",
                              MetricType::Gauge);
  AddSample(ok, {}, successful ? 1 : 0);
  MetricFamily at = NewFamily("repwatch_config_last_reload_success_timestamp_seconds",
                              "Unix time at which the running config was loaded.", MetricType::Gauge);
  AddSample(at, {}, static_cast<double>(success_unix));
  out.push_back(std::move(ok));
  out.push_back(std::move(at));
}

void AddVolumeSources(std::vector<MetricFamily>& out, const std::vector<SourceStats>& sources) {
  MetricFamily lines = NewFamily("repwatch_volume_log_lines_total",
                                 "Log lines read since start or the last reload, by result: counted (a delivery attempt), ignored, "
                                 "malformed, too_long (skipped whole).",
                                 MetricType::Counter);
  MetricFamily rotations = NewFamily("repwatch_volume_log_rotations_total",
                                     "Log rotations followed since start or the last reload, by kind: rename or truncate.",
                                     MetricType::Counter);
  MetricFamily up = NewFamily("repwatch_volume_log_up", "1 while the log source reads without error.",
                              MetricType::Gauge);
  for (const SourceStats& s : sources) {
    // Every line is exactly one of: an event, ignored, malformed, or skipped too long
    // (the tailer's count of lines handed out excludes the skipped ones).
    AddSample(lines, {{"source", s.name}, {"result", "counted"}}, static_cast<double>(s.events));
    AddSample(lines, {{"source", s.name}, {"result", "ignored"}}, static_cast<double>(s.ignored));
    AddSample(lines, {{"source", s.name}, {"result", "malformed"}}, static_cast<double>(s.malformed));
    AddSample(lines, {{"source", s.name}, {"result", "too_long"}}, static_cast<double>(s.long_lines));
    AddSample(rotations, {{"source", s.name}, {"kind", "rename"}}, static_cast<double>(s.rotations));
    AddSample(rotations, {{"source", s.name}, {"kind", "truncate"}}, static_cast<double>(s.truncations));
    AddSample(up, {{"source", s.name}}, s.last_error.empty() ? 1 : 0);
  }
  for (MetricFamily* f : {&lines, &rotations, &up}) out.push_back(std::move(*f));
}

}  // namespace

bool MetricsSnapshot::Listing::operator<(const Listing& o) const {
  return std::tie(ip, zone, code, range) < std::tie(o.ip, o.zone, o.code, o.range);
}

SnapshotBuilder::SnapshotBuilder(const Config& config)
    : ranges_(config.ranges), snap_(std::make_shared<MetricsSnapshot>()) {
  snap_->interval_seconds = static_cast<double>(config.agent.interval.count());
  for (const RangeConfig& range : config.ranges) {
    snap_->targets[range.name] = 0;
    for (const DnsblZone& zone : config.dnsbl) {
      if (!ZoneServesRange(zone.family, range)) continue;
      MetricsSnapshot::ZoneRange key{zone.zone, range.name};
      (zone.entry.kind == ZoneKind::kAllow ? snap_->allowlisted_ips : snap_->listed_ips)[key] = 0;
      snap_->error_ips[key] = 0;
    }
    // Zero counts for every result, so "how many fail" is 0 rather than absent.
    if (config.fcrdns.enabled)
      for (const char* result : {"pass", "fail", "no_ptr", "temperror"})
        snap_->counts[kFcrdnsIps][{{"range", range.name}, {"result", result}}] = 0;
    if (config.spf.enabled)
      for (const std::string& domain : range.spf_domains)
        for (const char* result : {"pass", "fail", "softfail", "neutral", "none", "permerror", "temperror"})
          snap_->counts[kSpfIps][{{"range", range.name}, {"domain", domain}, {"result", result}}] = 0;
    if (WarmupCheckEnabled(config)) {
      for (const char* signal : {"ok", "ahead", "backoff", "stalled", "completed"})
        snap_->counts[kWarmupIps][{{"range", range.name}, {"signal", signal}}] = 0;
      for (const char* outcome : {"delivered", "deferred", "bounced"})
        snap_->counts[kVolumeToday][{{"range", range.name}, {"outcome", outcome}}] = 0;
    }
    if (config.mx_probe.enabled && range.mx_probe)
      for (const std::string& domain : config.mx_probe.domains) {
        for (const char* cls : {"ok", "blocked_by_list", "reputation_block", "rate_limit", "greylist", "policy_failure",
                                "other", "error"})
          snap_->counts[kMxIps][{{"range", range.name}, {"domain", domain}, {"class", cls}}] = 0;
        for (const char* tls : {"ok", "name_mismatch", "failed", "not_offered"})
          snap_->counts[kMxTlsIps][{{"range", range.name}, {"domain", domain}, {"tls", tls}}] = 0;
      }
  }
}

void SnapshotBuilder::AddFcrdns(const IpReport& report, const FcrdnsReport& r) {
  const std::string ip = report.ip.ToString();
  ++snap_->counts[kFcrdnsIps][{{"range", report.range}, {"result", std::string(FcrdnsResultName(r.result))}}];
  auto problem = [&](const char* name, MetricsSnapshot::LabelSet labels) {
    labels["ip"] = ip;
    labels["range"] = report.range;
    snap_->problems[name].push_back(std::move(labels));
  };
  if (r.result == FcrdnsResult::kFail || r.result == FcrdnsResult::kNoPtr)
    problem(kFcrdnsFailing, {{"result", std::string(FcrdnsResultName(r.result))}});
  if (r.generic) problem(kPtrGeneric, {{"ptr", r.generic_name}});
  if (!r.expected_ptr_ok && !r.ptr.empty()) problem(kPtrUnexpected, {{"ptr", r.ptr.front()}});
  if (r.helo)
    for (HeloProblem p : r.helo->problems)
      if (p != HeloProblem::kTempError)
        problem(kHeloProblem, {{"helo", r.helo->name}, {"problem", std::string(HeloProblemName(p))}});
}

void SnapshotBuilder::AddSpf(const IpReport& report, const std::vector<SpfDomainResult>& results) {
  for (const SpfDomainResult& r : results) {
    ++snap_->counts[kSpfIps][{{"range", report.range}, {"domain", r.domain}, {"result", r.result}}];
    if (r.verdict() == Verdict::kProblem)
      snap_->problems[kSpfUnauthorized].push_back(
          {{"ip", report.ip.ToString()}, {"range", report.range}, {"domain", r.domain}, {"result", r.result}});
    for (const std::string& term : r.permissive) permissive_.insert({r.domain, term});
  }
}

void SnapshotBuilder::AddMx(const IpReport& report, const std::vector<MxProbeResult>& results) {
  for (const MxProbeResult& r : results) {
    const std::string cls(SmtpClassName(r.cls));
    ++snap_->counts[kMxIps][{{"range", report.range}, {"domain", r.domain}, {"class", cls}}];
    if (r.cls != SmtpClass::kError) {  // a session that failed says nothing about TLS
      const char* tls = !r.tls ? "not_offered" : !r.tls->ok ? "failed" : r.tls->name_match ? "ok" : "name_mismatch";
      ++snap_->counts[kMxTlsIps][{{"range", report.range}, {"domain", r.domain}, {"tls", tls}}];
    }
    if (r.cls == SmtpClass::kOk) continue;
    snap_->problems[kMxNotOk].push_back({{"ip", report.ip.ToString()},
                                         {"range", report.range},
                                         {"domain", r.domain},
                                         {"class", cls},
                                         {"stage", std::string(MxStageName(r.stage))},
                                         {"code", r.code ? std::to_string(r.code) : ""},
                                         {"enhanced", r.enhanced},
                                         {"zone", r.zone}});
  }
}

void SnapshotBuilder::AddWarmup(const IpReport& report) {
  if (report.volume) {
    snap_->counts[kVolumeToday][{{"range", report.range}, {"outcome", "delivered"}}] += report.volume->delivered;
    snap_->counts[kVolumeToday][{{"range", report.range}, {"outcome", "deferred"}}] += report.volume->deferred;
    snap_->counts[kVolumeToday][{{"range", report.range}, {"outcome", "bounced"}}] += report.volume->bounced;
  }
  if (!report.warmup) return;
  const WarmupReport& w = *report.warmup;
  const std::string signal(WarmupSignalName(w.signal));
  ++snap_->counts[kWarmupIps][{{"range", report.range}, {"signal", signal}}];
  if (w.signal == WarmupSignal::kCompleted) return;  // off the ramp: no per-address series
  const MetricsSnapshot::LabelSet ip = {{"ip", report.ip.ToString()}, {"range", report.range}};
  auto with = [&ip](const char* key, const std::string& value) {
    MetricsSnapshot::LabelSet l = ip;
    l[key] = value;
    return l;
  };
  snap_->values[kWarmupDay].emplace_back(with("schedule", w.schedule), w.day);
  snap_->values[kWarmupAllowance].emplace_back(ip, static_cast<double>(w.allowance));
  snap_->values[kWarmupSent].emplace_back(ip, static_cast<double>(w.sent));
  snap_->values[kWarmupRatio].emplace_back(ip, w.ratio);
  snap_->problems[kWarmupSignal].push_back(with("signal", signal));
}

void SnapshotBuilder::AddStored(const IpReport& report) {
  if (!snap_) return;
  const RangeConfig* range = RangeOf(report.ip, ranges_);
  if (!range || range->name != report.range) return;
  if (report.fcrdns) AddFcrdns(report, *report.fcrdns);
  if (report.spf) AddSpf(report, *report.spf);
  if (report.mx) AddMx(report, *report.mx);
  AddWarmup(report);
}

void SnapshotBuilder::Add(const IpReport& report) {
  if (!snap_) return;
  ++snap_->targets[report.range];
  if (report.fcrdns) AddFcrdns(report, *report.fcrdns);
  if (report.spf) AddSpf(report, *report.spf);
  if (report.mx) AddMx(report, *report.mx);
  AddWarmup(report);
  if (!report.dnsbl) return;
  const std::string ip = report.ip.ToString();
  for (const DnsblZoneResult& r : *report.dnsbl) {
    MetricsSnapshot::ZoneRange key{r.zone, report.range};
    if (r.status == DnsblStatus::kError) {
      ++snap_->error_ips[key];
    } else if (r.status == DnsblStatus::kListed && r.allowlist) {
      ++snap_->allowlisted_ips[key];
    } else if (r.status == DnsblStatus::kListed) {
      ++snap_->listed_ips[key];
      AddListing(snap_->listings, ip, r.zone, report.range, r.codes, r.meanings, r.delist_url);
    }
  }
}

void SnapshotBuilder::UseStoredListings(const std::vector<StoredListing>& stored) {
  if (!snap_) return;
  snap_->listings.clear();
  for (auto* counts : {&snap_->listed_ips, &snap_->allowlisted_ips})
    for (auto& [key, n] : *counts) n = 0;
  for (const StoredListing& l : stored) {
    auto ip = IpAddress::Parse(l.ip);
    const RangeConfig* range = ip.ok() ? RangeOf(ip.value(), ranges_) : nullptr;
    if (!range || range->name != l.range) continue;
    auto& counts = l.allowlist ? snap_->allowlisted_ips : snap_->listed_ips;
    auto it = counts.find({l.zone, l.range});
    if (it == counts.end()) continue;  // zone no longer configured for this range
    ++it->second;
    if (l.allowlist) continue;
    AddListing(snap_->listings, l.ip, l.zone, l.range, l.codes, l.meanings, l.delist_url);
  }
}

void SnapshotBuilder::SetCycle(const CycleReport& cycle) {
  if (snap_) snap_->zones = cycle.zones;
}

std::shared_ptr<const MetricsSnapshot> SnapshotBuilder::Finish(double cycle_duration_seconds,
                                                               long long success_unix) {
  if (!snap_) return nullptr;
  std::sort(snap_->listings.begin(), snap_->listings.end());
  for (const auto& [domain, term] : permissive_)
    snap_->problems[kSpfPermissive].push_back({{"domain", domain}, {"term", term}});
  snap_->have_cycle = true;
  snap_->cycle_duration_seconds = cycle_duration_seconds;
  snap_->last_success_unix = success_unix;
  return std::move(snap_);
}

std::shared_ptr<const MetricsSnapshot> SnapshotBuilder::FinishRestored(long long last_success_unix) {
  if (!snap_) return nullptr;
  snap_->restored = true;
  return Finish(0, last_success_unix);
}

MetricsExporter::MetricsExporter(const DnsStats& dns_stats) : dns_stats_(dns_stats) {}

void MetricsExporter::SetWebhookStats(std::shared_ptr<const WebhookStats> stats) {
  std::lock_guard lock(mu_);
  webhook_stats_ = std::move(stats);
}

void MetricsExporter::SetVolumeSources(std::function<std::vector<SourceStats>()> stats) {
  std::lock_guard lock(mu_);
  volume_sources_ = std::move(stats);
}

void MetricsExporter::Publish(std::shared_ptr<const MetricsSnapshot> snapshot) {
  std::lock_guard lock(mu_);
  snapshot_ = std::move(snapshot);
}

void MetricsExporter::SetConfigReload(bool successful, long long success_unix) {
  std::lock_guard lock(mu_);
  config_reload_.emplace(successful, success_unix);
}

std::vector<MetricFamily> MetricsExporter::Collect() const {
  std::shared_ptr<const MetricsSnapshot> snap;
  std::optional<std::pair<bool, long long>> reload;
  std::shared_ptr<const WebhookStats> webhooks;
  std::vector<SourceStats> sources;
  {
    std::lock_guard lock(mu_);
    snap = snapshot_;
    reload = config_reload_;
    webhooks = webhook_stats_;
    if (volume_sources_) sources = volume_sources_();  // under mu_: the ingester cannot go away meanwhile
  }
  std::vector<MetricFamily> out;
  MetricFamily info = NewFamily("repwatch_build_info", "Version and git revision of this repwatch, always 1.",
                             MetricType::Gauge);
  AddSample(info, {{"version", build::kVersion}, {"revision", build::kRevision}}, 1);
  out.push_back(std::move(info));
  AddDns(out, dns_stats_);
  if (reload) AddConfigReload(out, reload->first, reload->second);
  if (webhooks) AddWebhooks(out, *webhooks);
  if (!sources.empty()) AddVolumeSources(out, sources);
  if (snap && snap->have_cycle) AddSnapshot(out, *snap);
  std::erase_if(out, [](const MetricFamily& f) { return f.metric.empty(); });
  return out;
}

}  // namespace repwatch
