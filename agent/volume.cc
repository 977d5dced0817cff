#include "agent/volume.h"

namespace repwatch {

std::string_view VolumeOutcomeName(VolumeOutcome o) {
  switch (o) {
    case VolumeOutcome::kDelivered: return "delivered";
    case VolumeOutcome::kDeferred: return "deferred";
    case VolumeOutcome::kBounced: return "bounced";
  }
  return "delivered";
}

std::optional<VolumeOutcome> ParseVolumeOutcome(std::string_view name) {
  for (VolumeOutcome o : {VolumeOutcome::kDelivered, VolumeOutcome::kDeferred, VolumeOutcome::kBounced})
    if (name == VolumeOutcomeName(o)) return o;
  return std::nullopt;
}

}  // namespace repwatch
