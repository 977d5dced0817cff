// CachingResolver: a per-cycle answer cache in front of the real resolver, for
// names many addresses share — SPF records and their includes, MX hosts, HELO
// names. A cycle over a /16 that sends for one domain then asks each SPF name
// once per TTL, not 65,536 times.
//
// - Identical questions in flight are coalesced: one query upstream, every
//   caller gets the answer.
// - NOERROR answers are kept for the smallest TTL among their records; NXDOMAIN
//   and NODATA for kNegativeTtl (the SOA minimum is not parsed). TTL 0 answers
//   and failures (timeout, SERVFAIL, ...) are handed to the waiting callers and
//   never kept.
// - Clear() forgets everything, including answers still in flight (they reach their
//   callers but are not kept); the agent calls it at the start of each cycle.
// - At most `max_entries` answers are kept; beyond that new answers are passed
//   through without being stored (expired ones are swept first).
//
// Threading and callbacks follow Resolver: callbacks run from Poll() only, even for
// hits. The scheduler polls this object; questions that must not be cached
// (per-address DNSBL and PTR lookups) go straight to `upstream`, whose callbacks
// run from the same Poll().
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <string>
#include <unordered_map>
#include <vector>

#include "agent/clock.h"
#include "agent/resolver.h"

namespace repwatch {

class CachingResolver final : public Resolver {
 public:
  static constexpr std::chrono::seconds kNegativeTtl{300};

  struct Stats {
    uint64_t hits = 0;       // answered from the cache
    uint64_t coalesced = 0;  // joined a question already in flight
    uint64_t misses = 0;     // sent upstream
  };

  CachingResolver(Resolver& upstream, const Clock& clock, size_t max_entries = 200'000);

  void Query(std::string name, uint16_t qtype, Callback callback) override;
  size_t Pending() const override;
  void Poll(std::chrono::milliseconds max_wait) override;

  void Clear();
  const Stats& stats() const { return stats_; }
  size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    DnsResponse response;
    std::chrono::steady_clock::time_point expires;
  };
  struct Ready {
    Callback callback;
    DnsResponse response;
  };
  void Store(const std::string& key, const DnsResponse& response);

  Resolver& upstream_;
  const Clock& clock_;
  size_t max_entries_;
  std::unordered_map<std::string, Entry> entries_;
  std::unordered_map<std::string, std::vector<Callback>> in_flight_;
  std::deque<Ready> ready_;
  Stats stats_;
  uint64_t generation_ = 0;  // bumped by Clear()
};

}  // namespace repwatch
