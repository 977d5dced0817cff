// DnsClient: the production Resolver. One thread, one epoll loop, a few
// non-blocking UDP sockets (each bound to its own kernel-chosen random port),
// thousands of questions in flight.
//
// Contract:
// - Packets are built and parsed with ldns (agent/dns_wire.h says which parts).
//   Each attempt gets a random 16-bit ID (unique among the questions in flight on
//   its socket) and the 0x20-free lowercase name we were given. A name ldns
//   rejects ends at once with kNetworkError ("could not send"), detail saying why.
// - A reply counts only if it is at least a header long, its ID matches a question
//   in flight on that socket from that server address, QR is set, and its question
//   section (name, type, class) equals ours. Anything else is dropped whole and
//   counted in DnsStats::dropped; the question keeps waiting. Malformed packets
//   never crash the client.
// - TC set: the question is re-asked over TCP to the same server (2-byte length
//   prefix, same validation), non-blocking on the same epoll loop, with its own
//   `timeout`. The fallback does not use up an attempt; if it fails (timeout,
//   refused, closed) a remaining attempt retries over UDP on the next server.
// - First attempts go to the servers round-robin. No valid reply within `timeout`:
//   re-sent (new ID, next server round-robin) up to `attempts` tries in total,
//   then the callback gets kTimeout. A late reply to an earlier attempt is
//   dropped (its ID is no longer in flight).
// - SERVFAIL / REFUSED are final answers (no retry on another server is assumed
//   to help against one operator's resolver), reported as such.
// - At most `max_in_flight` questions on the wire; the rest wait in a FIFO. Sending
//   is paced by token buckets: `max_qps` overall and `max_qps_per_server` per server
//   (bursts of 10 ms worth, at least one). Retries count against both.
// - `sockets` UDP sockets per address family in use, shared by that family's servers.
// - Callbacks run from Poll() only, each exactly once; they may call Query() (sent
//   before that Poll returns). Destroying the client drops pending callbacks unrun.
// - Stats: queries once per Query(), attempts once per packet sent (TCP included),
//   failures once per question that ended with a failure status.
#pragma once

#include <memory>

#include "agent/clock.h"
#include "agent/config.h"
#include "agent/dns_stats.h"
#include "agent/resolver.h"
#include "agent/status.h"

namespace repwatch {

class DnsClient final : public Resolver {
 public:
  // Opens the sockets and the epoll instance. Errors name the server or syscall.
  static Result<std::unique_ptr<DnsClient>> Create(const DnsConfig& config, Clock& clock, DnsStats& stats);
  ~DnsClient() override;

  void Query(std::string name, uint16_t qtype, Callback callback) override;
  size_t Pending() const override;
  void Poll(std::chrono::milliseconds max_wait) override;

  class Impl;

 private:
  explicit DnsClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace repwatch
