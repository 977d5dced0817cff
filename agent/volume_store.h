// The volume store: per-address sending counts in their own SQLite file,
// <state_dir>/volume.db (WAL), apart from repwatch.db so log ingestion and the push
// API never wait for a cycle's transaction, nor it for them.
//
// Counts are kept per (address, UTC hour, outcome, receiver group, reply class):
//  - receiver group: ReceiverGroup() of the event's receiver (agent/receivers.h):
//    gmail | microsoft | yahoo | other ("other" when unknown);
//  - reply class: for deferrals and bounces with a reply, SmtpClassName(ClassifyText(reply).cls)
//    (agent/smtp_reply.h), so rate_limit / reputation_block replies can be told from
//    ordinary failures; "" for deliveries and when no reply was logged.
// Hours older than 120 days are dropped.
//
// A log source's position is stored in the same transaction as the counts its lines
// produced: a crash or restart loses both or neither, so no line is counted twice or lost.
// Thread-safe: the ingester thread, the HTTP thread (push API) and the cycle read and write concurrently.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agent/log_tailer.h"
#include "agent/status.h"
#include "agent/volume.h"

namespace repwatch {

// Totals of one address over one period (an hour or a UTC day).
struct VolumeTotals {
  uint64_t delivered = 0, deferred = 0, bounced = 0;
  uint64_t throttled = 0;  // deferrals and bounces whose reply is rate_limit, reputation_block or blocked_by_list
  std::map<std::string, uint64_t> attempts_by_group;   // group -> delivered + deferred + bounced
  std::map<std::string, uint64_t> throttled_by_group;  // group -> throttled
  uint64_t attempts() const { return delivered + deferred + bounced; }
};

class VolumeStore {
 public:
  // Creates state_dir if missing and opens/migrates <state_dir>/volume.db.
  static Result<std::unique_ptr<VolumeStore>> Open(const std::string& state_dir);
  ~VolumeStore();

  // Adds the events (at == 0 means `now`) and, when `source` is given, stores its new
  // position — one transaction. Events with count 0 are ignored.
  Status Add(const std::vector<VolumeEvent>& events, long long now, const std::string& source = {},
             std::optional<TailPosition> position = std::nullopt);
  // Where a log source stopped (nullopt: never read).
  Result<std::optional<TailPosition>> Position(const std::string& source) const;

  // One address: totals per UTC day (day = unix / 86400) for days in [from_day, to_day],
  // only days with traffic; and per hour (hour = unix / 3600) likewise.
  Result<std::map<long long, VolumeTotals>> Days(const IpAddress& ip, long long from_day, long long to_day) const;
  Result<std::map<long long, VolumeTotals>> Hours(const IpAddress& ip, long long from_hour, long long to_hour) const;
  // The first day of the address's latest run of traffic: the earliest day with traffic
  // that follows a gap of at least `idle_days` days without any (or the first day ever).
  // nullopt when the address never sent.
  Result<std::optional<long long>> CurrentRunStart(const IpAddress& ip, int idle_days) const;
  // The first day the store has any traffic for (any address); nullopt when empty.
  Result<std::optional<long long>> FirstDay() const;
  // Addresses with traffic in [from_day, to_day], in address-text order.
  Result<std::vector<std::string>> ActiveIps(long long from_day, long long to_day) const;

  class Impl;

 private:
  explicit VolumeStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace repwatch
