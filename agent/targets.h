// TargetSet: the addresses one cycle checks, in a stable order, without
// materialising them (a /16 is 65,536 addresses; At(i) computes the i-th).
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "agent/config.h"
#include "agent/shard.h"
#include "checks/check.h"

namespace repwatch {

// The most addresses one CIDR block may hold (same limit as the config's).
inline constexpr uint64_t kMaxBlockAddresses = uint64_t{1} << 20;

// The configured range holding `ip`, or nullptr.
const RangeConfig* RangeOf(const IpAddress& ip, const std::vector<RangeConfig>& ranges);

class TargetSet {
 public:
  // Every address of every configured range.
  static TargetSet FromRanges(const std::vector<RangeConfig>& ranges);
  // Command-line targets (IPs or CIDRs). An address inside a configured range is
  // attributed to that range; others get no range. Errors name the bad argument.
  static Result<TargetSet> FromArguments(const std::vector<std::string>& args, const std::vector<RangeConfig>& ranges);

  // Keeps only the addresses `shard` owns (see agent/shard.h). Costs one index per
  // owned address; a single shard (count 1) costs nothing.
  void Restrict(const Shard& shard);

  size_t size() const { return restricted_ ? owned_.size() : size_; }
  Target At(size_t index) const;
  std::set<Family> families() const;
  std::map<std::string, size_t> CountPerRange() const;  // range name -> addresses

 private:
  struct Block {
    Cidr cidr;
    const RangeConfig* range;
    size_t first;  // index of the block's first address in the set
  };
  void Add(const Cidr& cidr, const RangeConfig* range);
  Target AtUnrestricted(size_t index) const;
  std::vector<Block> blocks_;
  size_t size_ = 0;
  // Command-line sets: the configured ranges, to attribute each address lazily.
  const std::vector<RangeConfig>* lookup_ranges_ = nullptr;
  bool restricted_ = false;
  std::vector<uint32_t> owned_;  // after Restrict: indexes of the owned addresses
};

}  // namespace repwatch
