// HttpServer: repwatch's one HTTP listener (DESIGN.md "HTTP"), civetweb underneath.
// It knows routes, not probes or state: each route is a plain function from an
// HttpRequest to an HttpResponse, so a new endpoint (POST /-/reload,
// GET /api/v1/ips/{ip}, POST /api/v1/volume) is one AddRoute call in its own file.
// AddStandardRoutes() registers /metrics, /, /-/healthy and /-/ready.
//
// Listen addresses: "127.0.0.1:9754", ":9754" (every IPv4 interface), "[::1]:9754".
// Host parts are numeric (no name lookups). Port 0 picks a free port (see port()).
// The Debian civetweb 1.15 build has no IPv6 support: an IPv6 address is then
// refused by Start() with an error saying so, rather than silently bound elsewhere.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <prometheus/collectable.h>

#include "agent/status.h"

namespace repwatch {

struct HttpRequest {
  std::string method;                          // "GET", "POST", ... (HEAD is served by GET routes)
  std::string path;                            // URL-decoded, without the query
  std::string query;                           // raw text after '?', may be empty
  std::string tail;                            // for prefix routes: the path after the prefix
  std::map<std::string, std::string> headers;  // names lowercased
  std::string body;                            // at most kMaxBodyBytes; larger bodies get 413
  std::string remote_addr;

  // The header's value, or "" (name case-insensitive).
  std::string_view Header(std::string_view name) const;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers, e.g. WWW-Authenticate

  static HttpResponse Text(int status, std::string body);
};

using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;

class HttpServer {
 public:
  static constexpr size_t kMaxBodyBytes = 1 << 20;

  explicit HttpServer(std::string listen_address);
  ~HttpServer();  // stops; in-flight requests finish first
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Routes may be added before or after Start. `path` matches exactly, or, when it
  // ends in '*', as a prefix ("/api/v1/ips/*"); the longest matching route wins.
  // A path that matches with another method answers 405 with an Allow header;
  // no match answers 404. A handler that throws answers 500.
  void AddRoute(std::string method, std::string path, HttpHandler handler);

  // Binds and starts serving. Errors (bad address, port in use) name the address.
  Status Start();
  void Stop();
  // The bound port (useful after listening on port 0); 0 before Start.
  int port() const { return port_; }
  const std::string& listen_address() const { return listen_address_; }

 private:
  // Runs the matching route; called by the civetweb adapter on its worker threads.
  HttpResponse Dispatch(HttpRequest& request) const;

  struct Route {
    std::string method, path;
    bool prefix = false;
    HttpHandler handler;
  };
  class Adapter;

  std::string listen_address_;
  int port_ = 0;
  mutable std::shared_mutex routes_mu_;
  std::vector<Route> routes_;  // longest path first
  std::unique_ptr<Adapter> adapter_;
};

struct StandardRoutes {
  // Serialised in order on GET /metrics (text exposition format 0.0.4).
  std::vector<std::shared_ptr<prometheus::Collectable>> collectables;
  // /-/ready answers 200 once this returns true (after the first full cycle), 503 before.
  std::function<bool()> ready;
};

// GET /metrics, / (an HTML landing page linking the others), /-/healthy (200 "OK"),
// /-/ready.
void AddStandardRoutes(HttpServer& server, StandardRoutes routes);

// POST /-/reload (`repwatch run`, agent/daemon.h). `reload` tries a reload and says how
// it went; it blocks until the config was re-read (bounded by the daemon). Answers
// 200 "config reloaded", or 500 with the errors ("file:line:col: message" lines).
// Who may ask: a reload is a write and the listener may face the network, so with
// an [api] token (`token` returns the running one) the request must carry it
// (Authorization: Bearer; else 401); without one, only loopback clients may (else
// 403) -- Prometheus's /-/reload is open to anyone who reaches its listener.
// GET answers 405.
struct ReloadRoute {
  std::function<Status()> reload;
  std::function<std::string()> token;  // "" when no [api] token is configured
};
void AddReloadRoute(HttpServer& server, ReloadRoute route);

// Whether an Authorization header value is "Bearer <token>" (constant-time compare).
// An empty token never matches.
bool BearerTokenMatches(std::string_view authorization, std::string_view token);
// The client address of a request (HttpRequest::remote_addr) is on this host:
// 127.0.0.0/8, ::1, or IPv4-mapped 127/8. Behind a local reverse proxy every client
// looks like this: give such a setup an [api] token.
bool IsLoopbackClient(const std::string& remote_addr);

}  // namespace repwatch
