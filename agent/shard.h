// Shard: which addresses one agent of N owns, by rendezvous (highest-random-
// weight) hashing. Every agent computes the same owner for an address from the
// address and N alone — no coordination — and going from N to N+1 agents moves
// only the ~1/(N+1) of addresses the new shard wins. Used with a Kubernetes
// StatefulSet: --shard.index = pod ordinal, --shard.count = replicas.
#pragma once

#include <cstdint>

#include "agent/ip.h"
#include "agent/status.h"

namespace repwatch {

struct Shard {
  uint32_t index = 0;
  uint32_t count = 1;

  // index < count, count >= 1; the error names the flags.
  static Result<Shard> Make(uint32_t index, uint32_t count);
  bool all() const { return count == 1; }
  // The shard (0..count-1) that owns `ip`.
  static uint32_t OwnerOf(const IpAddress& ip, uint32_t count);
  bool Owns(const IpAddress& ip) const { return all() || OwnerOf(ip, count) == index; }
};

}  // namespace repwatch
