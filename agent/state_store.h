// StateStore: repwatch's durable state in SQLite (<state_dir>/repwatch.db, WAL mode).
// Survives restarts; nothing is ever silently dropped. Only sparse state is kept,
// so a clean /16 × 30 lists costs one row per address, not one per lookup:
//  - ips:            one row per address checked: range, last_checked, and the latest
//                    fcrdns and spf sections in their check --json form (NULL when
//                    the check is disabled); a section ending in error keeps the
//                    stored problem it would replace
//  - dnsbl_state:    one row per (ip, zone) that is NOT clean (listed or error),
//                    with codes, meanings, txt, error, first_seen, last_seen
//                    (first/last seen of the current listing; an `error` result
//                    keeps the listing's first_seen — an error never clears).
//  - dnsbl_history:  listings that ended (ip, zone, codes, first_seen, last_seen, cleared_at)
//  - zone_health:    latest health per zone
//  - cycles:         started, finished, duration, addresses, success
// A (ip, zone) with no dnsbl_state row for an address checked at last_checked was clean.
//
// How one DNSBL result changes the (ip, zone) row ("an error never raises nor clears"):
//   result   no row                 listed row                        error row
//   clean    -                      delete; append to dnsbl_history   delete
//   listed   insert, first_seen=now update codes, last_seen; keep     replace, first_seen=now
//                                   first_seen; forget last error
//   error    insert error row       keep it LISTED (codes, first/last replace error text,
//                                   seen unchanged); remember error   last_seen=now
// Zones absent from a report are left untouched; a report without a dnsbl section
// (check disabled) only refreshes the ips row.
//
// Threads: one writer (the cycle) and any number of readers (HTTP, webhooks). Reads
// use their own connection and see what the cycle committed at its last checkpoint:
// each address is consistent, a cycle may be partly visible.
#pragma once

#include <chrono>
#include <functional>
#include <map>
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
  std::string delist_url;
  bool allowlist = false;    // listed on an allow list: good news, not a problem
  long long first_seen = 0;  // unix seconds
  long long last_seen = 0;
  std::string last_error;    // the latest lookup error while listed ("" if the last lookup answered)
};

// One alert stream's stored state (agent/alerts.h): (ip, check, subject).
struct StreamRow {
  bool problem = false;                  // the stream's state: raised (problem) or not
  int problems = 0;                      // consecutive problem results while ok
  int oks = 0;                           // consecutive ok results while problem
  long long since = 0;                   // first problem result of the current run / raise (first_seen)
  std::optional<long long> error_since;  // first of the current run of error results
  bool failing_sent = false;             // check.failing raised for the current error run
  // A row equal to the default needs no storage.
  bool IsDefault() const { return !problem && problems == 0 && !error_since; }
};

// Lets another connection of this process (the webhook sender, agent/outbox.h) take
// the database's write lock during a cycle: it raises its hand while it waits, and
// StateStore::Checkpoint, having committed, waits for it (up to 200 ms) before the
// cycle writes again.
namespace write_turn {
void Want();
void Done();
bool Wanted();
}  // namespace write_turn

class StateStore {
 public:
  // Creates state_dir if missing (mode 0750) and opens/migrates the database
  // (schema_version table; each migration in its own transaction). Refuses a
  // database written by a newer repwatch. Errors name the path and the step.
  static Result<std::unique_ptr<StateStore>> Open(const std::string& state_dir);
  ~StateStore();

  // A cycle's writes go in one transaction: BeginCycle ... Record* ... EndCycle.
  // A crash before EndCycle leaves the previous state intact. Record* outside a
  // cycle is an error. Statements are prepared once; BeginCycle reads which
  // addresses have dnsbl_state rows, so RecordIp of a clean address that has none
  // is a single upsert (~370k/s on the 2-core dev machine, 30 zones per address).
  Status BeginCycle(long long now);
  Status RecordIp(const IpReport& report, long long now);
  Status RecordZoneHealth(const ZoneHealthReport& health, long long now);
  // Commits what the open cycle wrote so far. The next write opens a new transaction,
  // so the write lock is free between checkpoints and the webhook sender (its own
  // connection) can record deliveries during a long cycle. Stream changes and the
  // webhook items they raise are written between the same two checkpoints, so a crash
  // loses both or neither. The agent checkpoints after every address of a spread
  // cycle and every 200 ms of a fast one.
  Status Checkpoint();
  // Queues one webhook item (agent/outbox.h) for `sink`, inside the open cycle.
  // `group_key` says which items may share a request (e.g. "zone|range").
  Status EnqueueWebhookItem(const std::string& sink, const std::string& type, const std::string& group_key,
                            const std::string& item_json, long long now);
  // Alert streams of one address, by (check, subject); only non-default rows exist.
  // ip "" holds the zone streams. Inside the open cycle.
  Result<std::map<std::pair<std::string, std::string>, StreamRow>> LoadStreams(const std::string& ip);
  // Stores a stream row (a default row is deleted). Inside the open cycle.
  Status SaveStream(const std::string& ip, const std::string& check, const std::string& subject, const StreamRow& row);
  // Whether the last stored result of (ip, check, subject) was a problem: a block-list
  // listing (dnsbl), a problem verdict of the stored fcrdns section, spf or mx domain, an
  // unhealthy zone (ip "", check "zone"). Read before RecordIp / RecordZoneHealth.
  Result<bool> StoredProblem(const std::string& ip, const std::string& check, const std::string& subject);
  // Appends to `cycles` and commits.
  Status EndCycle(long long now, double duration_seconds, size_t addresses, bool success);
  // Drops the open cycle's writes (shutdown mid-cycle). No-op outside a cycle.
  Status AbortCycle();

  // Reads (committed state only). Listings on allow lists included, flagged.
  Result<std::vector<StoredListing>> CurrentListings() const;
  // The stored state of one address in IpReport shape, or nullopt if the address
  // was never checked. One DnsblZoneResult per zone given, in that order: clean
  // when there is no row; rows of zones not given are left out. A listing whose
  // latest lookup failed reads as listed, with `error` saying what failed.
  Result<std::optional<IpReport>> LoadIp(const IpAddress& ip, const std::vector<std::string>& zones_for_family) const;
  Result<std::vector<ZoneHealthReport>> ZoneHealths() const;
  // Every stored address that has an fcrdns, spf or mx section, as an IpReport with only
  // those sections (and ip, range), in address-text order. For the start-up metrics.
  Status ForEachCheckedIp(const std::function<void(IpReport&&)>& fn) const;
  // The stored MX probe results of one address (empty when none). Committed state:
  // the MX probe's history for min_interval (checks/mx_probe.h).
  Result<std::vector<MxProbeResult>> StoredMx(const IpAddress& ip) const;
  // Unix seconds of the last successful cycle end, 0 if none.
  Result<long long> LastSuccessfulCycle() const;

  class Impl;

 private:
  explicit StateStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace repwatch
