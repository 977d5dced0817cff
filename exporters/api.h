// The read API on the one HTTP listener:
//   GET /api/v1/ips/{ip} -> the stored state of one address, in the same shape as
//   a `check --json` IP line (DESIGN.md). 400 for a malformed address, 404 for one
//   never checked, 500 (with the reason) when the state store fails.
// It reads the last committed cycle through StateStore's reader connection, so it
// never sees a half-written cycle.
#pragma once

#include <memory>

#include "agent/config.h"
#include "agent/state_store.h"
#include "exporters/http_server.h"

namespace repwatch {

// `store` must outlive the server. A reload registers the route again with the new
// config; requests in flight finish with the one they started with.
void AddApiRoutes(HttpServer& server, std::shared_ptr<const Config> config, const StateStore& store);

}  // namespace repwatch
