#include "agent/alerts.h"

#include <fmt/format.h>

#include <algorithm>
#include <ctime>

#include "checks/report_json.h"

namespace repwatch {
namespace {

using J = nlohmann::ordered_json;

// '*' matches any run of characters (including none), as in "dnsbl.*" or "*".
bool GlobMatch(std::string_view pattern, std::string_view text) {
  if (pattern.empty()) return text.empty();
  if (pattern.front() == '*') {
    for (size_t i = 0; i <= text.size(); ++i)
      if (GlobMatch(pattern.substr(1), text.substr(i))) return true;
    return false;
  }
  return !text.empty() && pattern.front() == text.front() && GlobMatch(pattern.substr(1), text.substr(1));
}

J RangeFields(const RangeConfig* range) {
  J j = J::object();
  if (!range) return j;
  j["range"] = range->name;
  j["labels"] = J::object();
  for (const auto& [k, v] : range->labels) j["labels"][k] = v;
  return j;
}

std::string Rfc3339(long long unix_seconds) {
  const std::time_t t = unix_seconds;
  std::tm tm{};
  gmtime_r(&t, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                     tm.tm_min, tm.tm_sec);
}

}  // namespace

Transition ApplyResult(StreamRow& row, Verdict verdict, long long now, const AlertsConfig& config,
                       bool known_problem) {
  if (verdict == Verdict::kError) {
    if (!row.error_since) row.error_since = now;
    if (!row.failing_sent && now - *row.error_since >= config.failing_after.count()) {
      row.failing_sent = true;
      return Transition::kFailing;
    }
    return Transition::kNone;
  }
  row.error_since.reset();
  row.failing_sent = false;
  if (verdict == Verdict::kProblem) {
    row.oks = 0;
    if (row.problem) return Transition::kNone;
    if (known_problem && row.problems == 0) {  // the store already knew: silently in the problem state
      row.problem = true;
      row.problems = 0;
      row.since = now;
      return Transition::kNone;
    }
    if (row.problems++ == 0) row.since = now;
    if (row.problems < config.raise_after) return Transition::kNone;
    row.problem = true;
    row.problems = 0;
    return Transition::kRaise;
  }
  row.problems = 0;
  if (!row.problem) return Transition::kNone;
  if (++row.oks < config.clear_after) return Transition::kNone;
  row.problem = false;
  row.oks = 0;
  return Transition::kClear;
}

EventTypes EventTypesOf(std::string_view check, std::string_view subject) {
  if (check == "warmup") {
    if (subject == "ahead") return {"warmup.ahead", ""};
    if (subject == "backoff") return {"warmup.backoff", ""};
    if (subject == "completed") return {"warmup.completed", ""};
  }
  if (check == "dnsbl") return {"dnsbl.listed", "dnsbl.delisted"};
  if (check == "fcrdns") return {"fcrdns.failed", "fcrdns.resolved"};
  if (check == "spf") return {"spf.unauthorized", "spf.resolved"};
  if (check == "mx") return {"mx.rejected", "mx.resolved"};
  if (check == "zone") return {"zone.unhealthy", "zone.recovered"};
  return {"check.failing", ""};
}

bool SinkAccepts(const WebhookConfig& sink, std::string_view type, const RangeConfig* range) {
  if (!sink.events.empty() &&
      std::none_of(sink.events.begin(), sink.events.end(), [&](const std::string& g) { return GlobMatch(g, type); }))
    return false;
  if (!range) return sink.ranges.empty() && sink.labels.empty();  // zone events carry no range
  if (!sink.ranges.empty() && std::find(sink.ranges.begin(), sink.ranges.end(), range->name) == sink.ranges.end())
    return false;
  for (const auto& [k, v] : sink.labels) {
    auto it = range->labels.find(k);
    if (it == range->labels.end() || it->second != v) return false;
  }
  return true;
}

AlertTracker::AlertTracker(const Config& config, StateStore& store)
    : config_(config), mx_alerts_(config.alerts), warmup_alerts_(config.alerts), store_(store) {
  mx_alerts_.raise_after = config.alerts.mx_raise_after;
  mx_alerts_.clear_after = config.alerts.mx_clear_after;
  warmup_alerts_.raise_after = 1;
  warmup_alerts_.clear_after = 1;
}

Status AlertTracker::Record(const IpReport& report, long long now) {
  const std::string ip = report.ip.ToString();
  const RangeConfig* range = nullptr;
  for (const RangeConfig& r : config_.ranges)
    if (r.name == report.range) range = &r;
  std::vector<Subject> subjects;
  if (report.dnsbl) {
    for (const DnsblZoneResult& z : *report.dnsbl) {
      // Items are built only when an event fires: most results change nothing.
      auto item = [&ip, &report, &z, range] {
        J j = {{"ip", ip}};
        j.update(RangeFields(range));
        j["zone"] = z.zone;
        j["codes"] = z.codes;
        j["meanings"] = z.meanings;
        j["txt"] = z.txt;
        j["delist_url"] = z.delist_url;
        j["evidence"] = {{"query", fmt::format("{}.{}", report.ip.ReversedLabels(), z.zone)}};
        if (!z.error.empty()) j["error"] = z.error;
        return j;
      };
      subjects.push_back({"dnsbl", z.zone, z.verdict(), item, z.zone + "|" + report.range});
    }
  }
  if (report.fcrdns) {
    auto item = [&ip, &report, range] {
      J j = {{"ip", ip}};
      j.update(RangeFields(range));
      j["fcrdns"] = FcrdnsJson(*report.fcrdns);
      j["evidence"] = {{"query", report.ip.ReverseDnsName()}};
      return j;
    };
    subjects.push_back({"fcrdns", "", report.fcrdns->verdict(), item, report.range});
  }
  // By reference into the report itself: the item builders below outlive this loop.
  static const std::vector<SpfDomainResult> kNoSpf;
  for (const SpfDomainResult& d : report.spf ? *report.spf : kNoSpf) {
    auto item = [&ip, &d, range] {
      J j = {{"ip", ip}};
      j.update(RangeFields(range));
      j["domain"] = d.domain;
      j["result"] = d.result;
      j["reason"] = d.reason;
      if (!d.permissive.empty()) j["permissive"] = d.permissive;
      j["evidence"] = {{"query", d.domain + " TXT"}};
      return j;
    };
    subjects.push_back({"spf", d.domain, d.verdict(), item, d.domain + "|" + report.range});
  }
  static const std::vector<MxProbeResult> kNoMx;
  for (const MxProbeResult& m : report.mx ? *report.mx : kNoMx) {
    if (m.reused) continue;  // no session this cycle: nothing new to count
    auto item = [&ip, &m, range] {
      J j = {{"ip", ip}};
      j.update(RangeFields(range));
      J mx = MxJson({m}).at(0);
      mx.erase("reused");
      j.update(mx);
      std::string reply = m.code ? std::to_string(m.code) : "";
      if (!m.enhanced.empty()) reply += " " + m.enhanced;
      if (!m.text.empty()) reply += " " + m.text;
      j["evidence"] = {{"session", fmt::format("from {} to {}[{}]", ip, m.host, m.address)},
                       {"reply", reply}};
      return j;
    };
    subjects.push_back({"mx", m.domain, m.verdict(), item, m.domain + "|" + report.range});
  }
  if (report.warmup) {
    // Signals come from counts, not from lookups that can hiccup: one cycle raises.
    auto item = [&ip, &report, range] {
      J j = {{"ip", ip}};
      j.update(RangeFields(range));
      j.update(WarmupJson(*report.warmup));
      if (report.volume) j["evidence"] = {{"volume_today", VolumeJson(*report.volume)}};
      return j;
    };
    const WarmupSignal signal = report.warmup->signal;
    for (auto [name, raised] : {std::pair{"ahead", signal == WarmupSignal::kAhead},
                                std::pair{"backoff", signal == WarmupSignal::kBackoff},
                                std::pair{"completed", signal == WarmupSignal::kCompleted}})
      subjects.push_back({"warmup", name, raised ? Verdict::kProblem : Verdict::kOk, item, report.range});
  }
  if (subjects.empty()) return Status::Ok();
  auto rows = store_.LoadStreams(ip);
  if (!rows.ok()) return rows.status();
  for (const Subject& s : subjects) {
    auto it = rows.value().find({s.check, s.subject});
    std::optional<StreamRow> old;
    if (it != rows.value().end()) old = it->second;
    bool known = false;
    // No run of problems yet (no row, or only errors so far): was it a problem already?
    if ((!old || (!old->problem && old->problems == 0)) && s.verdict == Verdict::kProblem) {
      auto stored = store_.StoredProblem(ip, s.check, s.subject);
      if (!stored.ok()) return stored.status();
      known = stored.value();
    }
    if (Status st = Apply(ip, range, s, old, known, now); !st.ok()) return st;
  }
  return Status::Ok();
}

Status AlertTracker::RecordZone(const ZoneHealthReport& zone, long long now) {
  auto item = [&zone] {
    return J{{"zone", zone.zone}, {"health", ZoneHealthName(zone.health)}, {"detail", zone.detail}};
  };
  const Verdict v = zone.health == ZoneHealth::kOk ? Verdict::kOk : Verdict::kProblem;
  Subject s{"zone", zone.zone, v, item, zone.zone};
  auto rows = store_.LoadStreams("");
  if (!rows.ok()) return rows.status();
  auto it = rows.value().find({"zone", zone.zone});
  std::optional<StreamRow> old;
  if (it != rows.value().end()) old = it->second;
  bool known = false;
  if ((!old || (!old->problem && old->problems == 0)) && v == Verdict::kProblem) {
    auto stored = store_.StoredProblem("", "zone", zone.zone);
    if (!stored.ok()) return stored.status();
    known = stored.value();
  }
  return Apply("", nullptr, s, old, known, now);
}

Status AlertTracker::Apply(const std::string& ip, const RangeConfig* range, const Subject& s,
                           const std::optional<StreamRow>& old, bool known_problem, long long now) {
  StreamRow row = old.value_or(StreamRow{});
  const AlertsConfig& thresholds = s.check == "mx" ? mx_alerts_ : s.check == "warmup" ? warmup_alerts_ : config_.alerts;
  const Transition t = ApplyResult(row, s.verdict, now, thresholds, known_problem);
  // The event's items first, the stream second: if an item cannot be written, the
  // stream keeps its old state and raises again next time.
  if (Status st = Event(t, range, s, old, row, now); !st.ok()) return st;
  if (old || !row.IsDefault()) return store_.SaveStream(ip, s.check, s.subject, row);
  return Status::Ok();
}

Status AlertTracker::Event(Transition t, const RangeConfig* range, const Subject& s,
                           const std::optional<StreamRow>& old, const StreamRow& row, long long now) {
  const EventTypes types = EventTypesOf(s.check, s.subject);
  switch (t) {
    case Transition::kNone: return Status::Ok();
    case Transition::kRaise: {
      J item = s.item();
      item["first_seen"] = Rfc3339(row.since);
      return Emit(types.raise, range, s.group, std::move(item), now);
    }
    case Transition::kClear: {
      if (types.clear.empty()) return Status::Ok();  // a signal that only announces (warm-up)
      J item = s.item();
      if (old) item["first_seen"] = Rfc3339(old->since);
      return Emit(types.clear, range, s.group, std::move(item), now);
    }
    case Transition::kFailing: {
      J item = s.item();
      item["check"] = s.check;
      if (!s.subject.empty()) item["subject"] = s.subject;
      item["error_since"] = Rfc3339(*row.error_since);
      return Emit("check.failing", range, s.check + "|" + s.group, std::move(item), now);
    }
  }
  return Status::Ok();
}

Status AlertTracker::Emit(std::string_view type, const RangeConfig* range, const std::string& group, J item,
                          long long now) {
  ++raised_[std::string(type)];
  item["type"] = type;
  item["at"] = Rfc3339(now);
  item["instance"] = config_.agent.instance;
  const std::string text = item.dump();
  for (const WebhookConfig& sink : config_.webhooks) {
    if (!SinkAccepts(sink, type, range)) continue;
    if (Status st = store_.EnqueueWebhookItem(sink.name, std::string(type), group, text, now); !st.ok()) return st;
  }
  return Status::Ok();
}

}  // namespace repwatch
