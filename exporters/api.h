// The read API on the one HTTP listener:
//   GET /api/v1/ips/{ip} -> the stored state of one address, in the same shape as
//   a `check --json` IP line (DESIGN.md). 400 for a malformed address, 404 for one
//   never checked, 500 (with the reason) when the state store fails.
// It reads the last committed cycle through StateStore's reader connection, so it
// never sees a half-written cycle.
#pragma once

#include "agent/config.h"
#include "agent/state_store.h"
#include "exporters/http_server.h"

namespace repwatch {

// `config` and `store` must outlive the server.
void AddApiRoutes(HttpServer& server, const Config& config, const StateStore& store);

}  // namespace repwatch
