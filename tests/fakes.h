// Test doubles behind the seams: a table-driven Resolver and a manual Clock.
#pragma once

#include <algorithm>
#include <array>
#include <chrono>
#include <deque>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "agent/clock.h"
#include "agent/resolver.h"

namespace repwatch::testing {

class FakeClock final : public Clock {
 public:
  std::chrono::steady_clock::time_point Now() const override { return now_; }
  std::chrono::system_clock::time_point WallNow() const override {
    return std::chrono::system_clock::time_point(std::chrono::seconds(1'790'000'000)) + (now_ - origin_);
  }
  void Advance(std::chrono::nanoseconds d) { now_ += d; }

 private:
  std::chrono::steady_clock::time_point origin_{};
  std::chrono::steady_clock::time_point now_{};
};

inline DnsRecord ARecord(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
  DnsRecord r;
  r.type = rrtype::kA;
  r.addr = {a, b, c, d};
  return r;
}

// Records with an owner (lowercase, no trailing dot), as CNAME following needs.
// `ttl` matters only to the cycle cache.
inline DnsRecord ARecord(std::string owner, uint8_t a, uint8_t b, uint8_t c, uint8_t d, uint32_t ttl = 300) {
  DnsRecord r = ARecord(a, b, c, d);
  r.owner = std::move(owner);
  r.ttl = ttl;
  return r;
}

inline DnsRecord AaaaRecord(std::string owner, const std::array<uint8_t, 16>& bytes, uint32_t ttl = 300) {
  DnsRecord r;
  r.type = rrtype::kAaaa;
  r.owner = std::move(owner);
  r.addr = bytes;
  r.ttl = ttl;
  return r;
}

inline DnsRecord PtrRecord(std::string owner, std::string target, uint32_t ttl = 300) {
  DnsRecord r;
  r.type = rrtype::kPtr;
  r.owner = std::move(owner);
  r.target = std::move(target);
  r.ttl = ttl;
  return r;
}

inline DnsRecord CnameRecord(std::string owner, std::string target, uint32_t ttl = 300) {
  DnsRecord r;
  r.type = rrtype::kCname;
  r.owner = std::move(owner);
  r.target = std::move(target);
  r.ttl = ttl;
  return r;
}

inline DnsRecord TxtRecord(std::vector<std::string> strings) {
  DnsRecord r;
  r.type = rrtype::kTxt;
  r.strings = std::move(strings);
  return r;
}

inline DnsResponse Answer(std::vector<DnsRecord> records) {
  DnsResponse a;
  a.status = DnsStatus::kNoError;
  a.rcode = 0;
  a.answers = std::move(records);
  return a;
}

inline DnsResponse Failure(DnsStatus s) {
  DnsResponse a;
  a.status = s;
  return a;
}

// Answers from a table keyed by (name, type); anything else is NXDOMAIN. Answers
// are delivered on Poll(), and the optional `clock` advances by `latency` per Poll
// so pacing can be observed.
class FakeResolver final : public Resolver {
 public:
  void Set(const std::string& name, uint16_t type, DnsResponse answer) { table_[{name, type}] = std::move(answer); }
  // Default for names not in the table (NXDOMAIN unless changed).
  void SetDefault(DnsResponse answer) { default_ = std::move(answer); }

  void Query(std::string name, uint16_t qtype, Callback cb) override {
    asked.emplace_back(name, qtype);
    queue_.push_back({std::move(name), qtype, std::move(cb)});
  }
  size_t Pending() const override { return queue_.size(); }
  void Poll(std::chrono::milliseconds max_wait) override {
    if (clock) clock->Advance(queue_.empty() ? std::chrono::nanoseconds(max_wait) : latency);
    auto batch = std::move(queue_);
    queue_.clear();
    if (answer_newest_first) std::reverse(batch.begin(), batch.end());
    for (auto& q : batch) {
      auto it = table_.find({q.name, q.type});
      DnsResponse a = it != table_.end() ? it->second : default_;
      q.cb(std::move(a));
    }
  }

  std::vector<std::pair<std::string, uint16_t>> asked;
  FakeClock* clock = nullptr;
  bool answer_newest_first = false;  // deliver each Poll's answers in reverse order
  std::chrono::nanoseconds latency{std::chrono::microseconds(100)};

 private:
  struct Pending_ {
    std::string name;
    uint16_t type;
    Callback cb;
  };
  std::map<std::pair<std::string, uint16_t>, DnsResponse> table_;
  DnsResponse default_ = Failure(DnsStatus::kNxDomain);
  std::deque<Pending_> queue_;
};

}  // namespace repwatch::testing
