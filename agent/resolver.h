// The resolver seam. Checks ask questions through Resolver and get each answer
// through a callback run from Poll(); they never touch sockets. The production
// implementation is DnsClient (agent/dns_client.h); tests use a table-driven fake.
//
// A DnsResponse is already validated (ID, QR bit and question matched, packet
// well formed); everything else on the wire was dropped and counted by the client.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace repwatch {

// RR types we ask for (values from the IANA registry).
namespace rrtype {
inline constexpr uint16_t kA = 1, kNs = 2, kCname = 5, kPtr = 12, kMx = 15, kTxt = 16, kAaaa = 28;
}

enum class DnsStatus {
  kNoError,       // NOERROR; answers may be empty (NODATA)
  kNxDomain,      // NXDOMAIN
  kServFail,      // SERVFAIL
  kRefused,       // REFUSED
  kOtherRcode,    // any other RCODE (FORMERR, NOTIMP, ...)
  kTimeout,       // no valid answer after every retry
  kNetworkError,  // could not send (no route, socket error, ...)
};

// Short lowercase token for a status: "noerror", "nxdomain", "servfail", "refused",
// "rcode", "timeout", "network". Used as the metric `reason` label and in messages.
std::string_view DnsStatusName(DnsStatus s);

struct DnsRecord {
  uint16_t type = 0;
  uint32_t ttl = 0;
  std::string owner;                   // lowercase, no trailing dot
  std::array<uint8_t, 16> addr{};      // A: first 4 bytes (network order); AAAA: all 16
  std::string target;                  // CNAME / PTR / MX / NS target: lowercase, no trailing dot
  uint16_t preference = 0;             // MX
  std::vector<std::string> strings;    // TXT character-strings, in order, unjoined
};

struct DnsResponse {
  DnsStatus status = DnsStatus::kTimeout;
  int rcode = -1;                      // the wire RCODE when a response arrived
  std::vector<DnsRecord> answers;      // the answer section, in wire order
  std::string detail;                  // for failures: what happened, for people
};

class Resolver {
 public:
  using Callback = std::function<void(DnsResponse&&)>;
  virtual ~Resolver() = default;

  // Queues one question. `name` is a domain name without trailing dot. The callback
  // runs exactly once, from a later Poll(), never from inside Query().
  virtual void Query(std::string name, uint16_t qtype, Callback callback) = 0;

  // Questions queued or in flight whose callbacks have not run yet.
  virtual size_t Pending() const = 0;

  // Sends what rate limits allow, receives, retries, expires timeouts and runs
  // callbacks. Returns after at most `max_wait` (earlier when something happened).
  virtual void Poll(std::chrono::milliseconds max_wait) = 0;
};

}  // namespace repwatch
