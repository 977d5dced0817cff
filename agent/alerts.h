// Alerting: turns each cycle's results into state transitions and webhook items.
//
// Every result belongs to a verdict stream (ip, check, subject): (ip, "dnsbl", zone),
// (ip, "fcrdns", ""), (ip, "spf", domain), ("", "zone", zone). A stream moves from ok
// to problem only after `raise_after` consecutive problem results, and back after
// `clear_after` consecutive ok results. An `error` result neither raises nor clears
// and does not break a run of confirming results; a stream in error for longer than
// `failing_after` raises one `check.failing`.
//
// Nothing is raised for what the state store already knew: a stream with no row whose
// previous stored result was already a problem (a listing, a failing FCrDNS or SPF
// result, an unhealthy zone) starts in the problem state, silently. So the first
// cycle after a restart or an upgrade pages nobody for old news.
//
// Stream rows and the webhook items they raise are written through the StateStore in
// the open cycle's transaction (see StateStore::Checkpoint): both or neither survive a
// crash. Items go to every sink whose filters (event globs, ranges, range labels)
// accept them; the webhook sender (exporters/webhooks.h) groups and delivers them.
#pragma once

#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/config.h"
#include "agent/state_store.h"
#include "checks/report.h"

namespace repwatch {

enum class Transition { kNone, kRaise, kClear, kFailing };

// One result applied to a stream. `known_problem`: there is no row yet but the store's
// previous result for this stream was a problem (see above).
Transition ApplyResult(StreamRow& row, Verdict verdict, long long now, const AlertsConfig& config,
                       bool known_problem = false);

// The event types of a check: raised when the stream goes to problem, cleared back.
struct EventTypes {
  std::string_view raise, clear;
};
// "dnsbl" -> dnsbl.listed / dnsbl.delisted, ... Warm-up streams are per signal:
// ("warmup", "ahead") -> warmup.ahead, ("warmup", "backoff") -> warmup.backoff,
// ("warmup", "completed") -> warmup.completed, none with a clearing event ("").
EventTypes EventTypesOf(std::string_view check, std::string_view subject = {});

// Whether a sink's filters accept an event about a range. `range` may be null (zone events).
bool SinkAccepts(const WebhookConfig& sink, std::string_view type, const RangeConfig* range);

class AlertTracker {
 public:
  AlertTracker(const Config& config, StateStore& store);

  // Applies every result of one address. Call BEFORE StateStore::RecordIp for the
  // same report, inside the open cycle, so the previous stored results can be read.
  Status Record(const IpReport& report, long long now);
  // Applies the cycle's zone health. Call before StateStore::RecordZoneHealth.
  Status RecordZone(const ZoneHealthReport& zone, long long now);

  // Events raised so far (all sinks), by type, for logs and tests.
  const std::map<std::string, size_t>& raised() const { return raised_; }

 private:
  struct Subject {
    std::string check, subject;
    Verdict verdict;
    std::function<nlohmann::ordered_json()> item;  // what a person needs to act; built when an event fires
    std::string group;             // items with the same type and group may share a request
  };
  Status Apply(const std::string& ip, const RangeConfig* range, const Subject& s, const std::optional<StreamRow>& old,
               bool known_problem, long long now);
  Status Event(Transition t, const RangeConfig* range, const Subject& s, const std::optional<StreamRow>& old,
               const StreamRow& row, long long now);
  Status Emit(std::string_view type, const RangeConfig* range, const std::string& group, nlohmann::ordered_json item,
              long long now);

  const Config& config_;
  AlertsConfig mx_alerts_;      // config_.alerts with the mx_* thresholds
  AlertsConfig warmup_alerts_;  // raise and clear after one cycle
  StateStore& store_;
  std::map<std::string, size_t> raised_;
};

}  // namespace repwatch
