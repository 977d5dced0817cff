#include "agent/targets.h"

#include <algorithm>

namespace repwatch {

void TargetSet::Add(const Cidr& cidr, const RangeConfig* range) {
  blocks_.push_back(Block{cidr, range, size_});
  size_ += static_cast<size_t>(cidr.Size());
}

TargetSet TargetSet::FromRanges(const std::vector<RangeConfig>& ranges) {
  TargetSet set;
  for (const auto& r : ranges)
    for (const auto& c : r.cidrs) set.Add(c, &r);
  return set;
}

Result<TargetSet> TargetSet::FromArguments(const std::vector<std::string>& args,
                                           const std::vector<RangeConfig>& ranges) {
  TargetSet set;
  set.lookup_ranges_ = &ranges;
  for (const auto& arg : args) {
    auto cidr = Cidr::Parse(arg);
    if (!cidr.ok()) return Status::Error("target " + cidr.error());
    if (cidr.value().Size() > kMaxBlockAddresses)
      return Status::Error("target \"" + arg + "\" has more than " + std::to_string(kMaxBlockAddresses) +
                           " addresses; give a smaller block");
    set.Add(cidr.value(), nullptr);
  }
  return set;
}

void TargetSet::Restrict(const Shard& shard) {
  if (shard.all()) return;
  std::vector<uint32_t> owned;
  for (size_t i = 0; i < size_; ++i)
    if (shard.Owns(AtUnrestricted(i).ip)) owned.push_back(static_cast<uint32_t>(i));
  owned_ = std::move(owned);
  restricted_ = true;
}

Target TargetSet::At(size_t index) const { return AtUnrestricted(restricted_ ? owned_[index] : index); }

Target TargetSet::AtUnrestricted(size_t index) const {
  auto it = std::upper_bound(blocks_.begin(), blocks_.end(), index,
                             [](size_t i, const Block& b) { return i < b.first; });
  const Block& b = *std::prev(it);
  Target t{b.cidr.At(index - b.first), b.range};
  if (!t.range && lookup_ranges_) t.range = RangeOf(t.ip, *lookup_ranges_);
  return t;
}

const RangeConfig* RangeOf(const IpAddress& ip, const std::vector<RangeConfig>& ranges) {
  for (const auto& r : ranges)
    for (const auto& c : r.cidrs)
      if (c.Contains(ip)) return &r;
  return nullptr;
}

std::set<Family> TargetSet::families() const {
  std::set<Family> f;
  for (const auto& b : blocks_) f.insert(b.cidr.network().family());
  return f;
}

std::map<std::string, size_t> TargetSet::CountPerRange() const {
  std::map<std::string, size_t> out;
  if (lookup_ranges_ || restricted_) {
    for (size_t i = 0; i < size(); ++i)
      if (const RangeConfig* r = At(i).range) ++out[r->name];
    return out;
  }
  for (const auto& b : blocks_)
    if (b.range) out[b.range->name] += static_cast<size_t>(b.cidr.Size());
  return out;
}

}  // namespace repwatch
