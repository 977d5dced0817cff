#include "agent/shard.h"

#include <string>

namespace repwatch {
namespace {

// SplitMix64's finaliser: a cheap, well-mixed 64-bit hash step.
uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

uint64_t AddressKey(const IpAddress& ip) {
  uint64_t h = ip.is_v4() ? 4 : 6;
  const auto& b = ip.bytes();
  const int n = ip.is_v4() ? 4 : 16;
  for (int i = 0; i < n; i += 4)
    h = Mix(h ^ (uint64_t{b[i]} << 24 | uint64_t{b[i + 1]} << 16 | uint64_t{b[i + 2]} << 8 | b[i + 3]));
  return h;
}

}  // namespace

Result<Shard> Shard::Make(uint32_t index, uint32_t count) {
  if (count == 0) return Status::Error("--shard.count must be at least 1");
  if (index >= count)
    return Status::Error("--shard.index " + std::to_string(index) + " must be below --shard.count " +
                         std::to_string(count));
  return Shard{index, count};
}

uint32_t Shard::OwnerOf(const IpAddress& ip, uint32_t count) {
  const uint64_t key = AddressKey(ip);
  uint32_t best = 0;
  uint64_t best_weight = 0;
  for (uint32_t i = 0; i < count; ++i) {
    const uint64_t w = Mix(key ^ Mix(i));
    if (i == 0 || w > best_weight) {
      best = i;
      best_weight = w;
    }
  }
  return best;
}

}  // namespace repwatch
