#include "agent/shard.h"

#include <catch2/catch.hpp>

#include "agent/targets.h"
#include "builders.h"

using namespace repwatch;

using repwatch::testing::Range;

TEST_CASE("shards of the ranges cover every address exactly once, evenly", "[shard]") {
  const std::vector<RangeConfig> ranges = {Range("a", {"198.18.0.0/16"}), Range("b", {"2001:db8::/116"})};
  const TargetSet all = TargetSet::FromRanges(ranges);
  REQUIRE(all.size() == 65536 + 4096);
  for (uint32_t n : {1u, 2u, 3u, 5u, 8u}) {
    INFO(n << " shards");
    std::map<IpAddress, int> seen;
    size_t smallest = SIZE_MAX, largest = 0;
    for (uint32_t i = 0; i < n; ++i) {
      TargetSet part = TargetSet::FromRanges(ranges);
      part.Restrict(Shard::Make(i, n).value());
      for (size_t k = 0; k < part.size(); ++k) ++seen[part.At(k).ip];
      smallest = std::min(smallest, part.size());
      largest = std::max(largest, part.size());
    }
    CHECK(seen.size() == all.size());
    CHECK(std::all_of(seen.begin(), seen.end(), [](const auto& e) { return e.second == 1; }));
    const double fair = static_cast<double>(all.size()) / n;
    CHECK(smallest > 0.95 * fair);
    CHECK(largest < 1.05 * fair);
  }
}

TEST_CASE("resizing from N to N+1 shards moves about 1/(N+1) of the addresses", "[shard]") {
  const Cidr block = Cidr::Parse("198.18.0.0/16").value();
  for (uint32_t n : {1u, 2u, 4u, 9u}) {
    size_t moved = 0, moved_elsewhere = 0;
    for (uint64_t k = 0; k < block.Size(); ++k) {
      const IpAddress ip = block.At(k);
      const uint32_t before = Shard::OwnerOf(ip, n), after = Shard::OwnerOf(ip, n + 1);
      if (before != after) ++moved;
      if (before != after && after != n) ++moved_elsewhere;  // only the new shard may win
    }
    const double share = static_cast<double>(moved) / static_cast<double>(block.Size());
    INFO(n << " -> " << n + 1 << " shards moved " << moved << " addresses (" << share * 100 << "%)");
    CHECK(share > 0.9 / (n + 1));
    CHECK(share < 1.1 / (n + 1));
    CHECK(moved_elsewhere == 0);
  }
}

TEST_CASE("shard flags are checked", "[shard]") {
  CHECK(Shard::Make(0, 1).ok());
  CHECK(Shard::Make(2, 3).ok());
  CHECK(Shard::Make(3, 3).error() == "--shard.index 3 must be below --shard.count 3");
  CHECK(Shard::Make(0, 0).error() == "--shard.count must be at least 1");
  CHECK(Shard::Make(0, 1).value().Owns(IpAddress::Parse("192.0.2.1").value()));
}

TEST_CASE("a restricted set keeps each address's range and counts per range", "[shard]") {
  const std::vector<RangeConfig> ranges = {Range("a", {"192.0.2.0/24"}), Range("b", {"198.51.100.0/24"})};
  TargetSet part = TargetSet::FromRanges(ranges);
  part.Restrict(Shard::Make(1, 2).value());
  size_t a = 0, b = 0;
  for (size_t k = 0; k < part.size(); ++k) {
    const Target t = part.At(k);
    CHECK(Shard::OwnerOf(t.ip, 2) == 1);
    CHECK(t.range->name == (ranges[0].cidrs[0].Contains(t.ip) ? "a" : "b"));
    (t.range->name == "a" ? a : b)++;
  }
  CHECK(part.CountPerRange() == std::map<std::string, size_t>{{"a", a}, {"b", b}});
}
