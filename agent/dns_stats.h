// Counters kept by the DNS client and read by the metrics exporter at scrape time
// (from another thread, hence atomics). Only exporters/ turns these into metric names.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace repwatch {

// Why a question ended without a usable answer (one count per question).
enum class DnsFailure : size_t { kTimeout, kServFail, kRefused, kOtherRcode, kNetwork, kCount };
std::string_view DnsFailureName(DnsFailure f);  // "timeout" | "servfail" | "refused" | "rcode" | "network"

// Why a received packet was dropped unread (one count per packet).
enum class DnsDrop : size_t {
  kShort,             // shorter than a DNS header
  kUnknownId,         // no question in flight with that ID from that server/socket
  kNotResponse,       // QR bit clear
  kQuestionMismatch,  // question name/type/class differ from what we asked
  kMalformed,         // ldns could not parse it
  kCount
};
std::string_view DnsDropName(DnsDrop d);  // "short" | "unknown_id" | "not_response" | "question_mismatch" | "malformed"

struct DnsStats {
  std::atomic<uint64_t> queries{0};        // questions asked (each counted once)
  std::atomic<uint64_t> attempts{0};       // packets sent, retries included
  std::atomic<uint64_t> tcp_fallbacks{0};  // truncated UDP answers retried over TCP
  std::array<std::atomic<uint64_t>, static_cast<size_t>(DnsFailure::kCount)> failures{};
  std::array<std::atomic<uint64_t>, static_cast<size_t>(DnsDrop::kCount)> dropped{};

  void Fail(DnsFailure f) { failures[static_cast<size_t>(f)].fetch_add(1, std::memory_order_relaxed); }
  void Drop(DnsDrop d) { dropped[static_cast<size_t>(d)].fetch_add(1, std::memory_order_relaxed); }
};

}  // namespace repwatch
