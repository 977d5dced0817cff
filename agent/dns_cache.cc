#include "agent/dns_cache.h"

#include <algorithm>
#include <utility>

#include "agent/text.h"

namespace repwatch {
namespace {

std::string Key(std::string_view name, uint16_t qtype) {
  std::string key = AsciiLower(name);
  key += '/';
  key += std::to_string(qtype);
  return key;
}

}  // namespace

CachingResolver::CachingResolver(Resolver& upstream, const Clock& clock, size_t max_entries)
    : upstream_(upstream), clock_(clock), max_entries_(max_entries) {}

void CachingResolver::Query(std::string name, uint16_t qtype, Callback callback) {
  std::string key = Key(name, qtype);
  if (auto it = entries_.find(key); it != entries_.end()) {
    if (it->second.expires > clock_.Now()) {
      ++stats_.hits;
      ready_.push_back({std::move(callback), it->second.response});
      return;
    }
    entries_.erase(it);
  }
  if (auto it = in_flight_.find(key); it != in_flight_.end()) {
    ++stats_.coalesced;
    it->second.push_back(std::move(callback));
    return;
  }
  ++stats_.misses;
  in_flight_[key].push_back(std::move(callback));
  upstream_.Query(std::move(name), qtype, [this, key, generation = generation_](DnsResponse&& response) {
    auto node = in_flight_.extract(key);
    if (generation == generation_) Store(key, response);  // asked before a Clear(): hand out, do not keep
    std::vector<Callback>& waiters = node.mapped();
    for (size_t i = 0; i + 1 < waiters.size(); ++i) waiters[i](DnsResponse(response));
    waiters.back()(std::move(response));
  });
}

void CachingResolver::Store(const std::string& key, const DnsResponse& response) {
  std::chrono::seconds ttl{0};
  if (response.status == DnsStatus::kNxDomain || (response.status == DnsStatus::kNoError && response.answers.empty())) {
    ttl = kNegativeTtl;
  } else if (response.status == DnsStatus::kNoError) {
    uint32_t min_ttl = UINT32_MAX;
    for (const DnsRecord& r : response.answers) min_ttl = std::min(min_ttl, r.ttl);
    ttl = std::chrono::seconds(min_ttl);
  }
  if (ttl.count() == 0) return;
  const auto now = clock_.Now();
  if (entries_.size() >= max_entries_)
    std::erase_if(entries_, [&](const auto& e) { return e.second.expires <= now; });
  if (entries_.size() >= max_entries_) return;
  entries_[key] = Entry{response, now + ttl};
}

size_t CachingResolver::Pending() const { return ready_.size() + upstream_.Pending(); }

void CachingResolver::Poll(std::chrono::milliseconds max_wait) {
  if (!ready_.empty()) {
    // Hits first; callbacks may ask again, which lands behind them, so drain one batch.
    auto batch = std::move(ready_);
    ready_.clear();
    for (Ready& r : batch) r.callback(std::move(r.response));
    max_wait = std::chrono::milliseconds(0);
  }
  upstream_.Poll(ready_.empty() ? max_wait : std::chrono::milliseconds(0));
}

void CachingResolver::Clear() {
  entries_.clear();
  ++generation_;
}

}  // namespace repwatch
