// Sending volume: what each source address really sent, from MTA logs
// (agent/log_formats.h, agent/log_tailer.h) or the push API, counted per address,
// hour, outcome, receiver group and reply class in their own SQLite file
// (agent/volume_store.h). The warm-up check (checks/warmup.h) reads the counts.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "agent/ip.h"

namespace repwatch {

enum class VolumeOutcome { kDelivered, kDeferred, kBounced };
std::string_view VolumeOutcomeName(VolumeOutcome o);  // "delivered" | "deferred" | "bounced"
std::optional<VolumeOutcome> ParseVolumeOutcome(std::string_view name);

// One delivery attempt (or `count` of them) seen in a log line or pushed by an MTA.
struct VolumeEvent {
  IpAddress ip;                 // the sending (source) address
  VolumeOutcome outcome = VolumeOutcome::kDelivered;
  uint32_t count = 1;
  std::string receiver;         // recipient domain or MX host name, lowercase; empty when unknown
  long long at = 0;             // Unix seconds of the attempt; 0: unknown (the reader uses "now")
  std::string reply;            // the remote reply text of a deferral or bounce, as logged; may be empty
};

}  // namespace repwatch
