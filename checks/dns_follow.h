// Lookups that follow CNAME chains, shared by the FCrDNS and SPF checks.
//
// A recursive resolver usually answers a CNAME together with the records at its
// target, but not always (unbound's local-data answers the CNAME alone, and RFC
// 2317 classless reverse delegation is a CNAME on the PTR side). FollowCnames asks
// `qtype` at `name`; when the answer holds a CNAME for the name asked but no
// record of `qtype` at the end of the chain, it asks again at the target, up to
// kMaxCnameHops times. A loop or a too-long chain is an error, never a hang.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "agent/resolver.h"

namespace repwatch {

inline constexpr int kMaxCnameHops = 8;

struct FollowedAnswer {
  // The last response. On success its `answers` hold only the records of `qtype`
  // owned by the end of the chain (`canonical`), in wire order. status is
  // kNoError (possibly with no records: NODATA), kNxDomain, or a failure.
  DnsResponse response;
  std::string canonical;            // the name the records belong to (== asked name without CNAMEs)
  std::vector<std::string> chain;   // CNAME targets followed, in order (empty without CNAMEs)
  std::string error;                // non-empty for "CNAME loop at x" / "CNAME chain longer than 8";
                                    // then response.status is kServFail and detail says the same
  int queries = 0;                  // questions actually sent (1 + re-asks)

  bool ok() const { return error.empty() && response.status == DnsStatus::kNoError; }
  // NXDOMAIN, or NOERROR without a record of the type asked: RFC 7208's "void lookup".
  bool empty() const {
    return error.empty() && (response.status == DnsStatus::kNxDomain ||
                             (response.status == DnsStatus::kNoError && response.answers.empty()));
  }
};

// Names are compared case-insensitively; `name` has no trailing dot. `done` runs
// exactly once, from a later Resolver::Poll().
void FollowCnames(Resolver& resolver, std::string name, uint16_t qtype, std::function<void(FollowedAnswer)> done);

}  // namespace repwatch
