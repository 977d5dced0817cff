// POST /api/v1/volume: sending volume pushed by any MTA without a log format of
// ours. Bearer token ([api] token_file / token_env) required:
//   Authorization: Bearer <token>  -> else 401 (403 when no token is configured)
// Body: one JSON object {"ip", "count", "outcome", "receiver"?, "at"?, "reply"?} or an
// array of them (at most 10,000):
//   ip        an address of a configured range
//   count     1..1,000,000
//   outcome   "delivered" | "deferred" | "bounced"
//   receiver  recipient domain or MX host (its receiver group is what is kept)
//   at        Unix seconds or RFC 3339 ("2026-11-23T10:00:00Z"); default: now; at most
//             120 days old and 1 hour ahead
//   reply     the remote reply of a deferral or bounce, classified like MX-probe replies
// Every item is checked before anything is stored: a bad one answers 400 naming the
// item and field ("[3].count must be an integer from 1 to 1000000") and nothing is
// applied. With several agents (--shard.count), an address another shard owns is
// refused the same way with 421 naming the owner's index: counts stored here would be
// judged by no one. Success: 200 {"accepted": N}.
#pragma once

#include <memory>

#include "agent/clock.h"
#include "agent/config.h"
#include "agent/shard.h"
#include "agent/volume_store.h"
#include "exporters/http_server.h"

namespace repwatch {

// `store` and `clock` must outlive the server. A reload registers the route again
// with the new config; requests in flight finish with the one they started with.
void AddVolumeRoutes(HttpServer& server, std::shared_ptr<const Config> config, VolumeStore& store, Clock& clock,
                     Shard shard = {});

}  // namespace repwatch
