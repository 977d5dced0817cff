#include "exporters/http_server.h"

#include <CivetServer.h>
#include <arpa/inet.h>
#include <openssl/crypto.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <mutex>
#include <optional>
#include <sstream>

#include <prometheus/text_serializer.h>

#include "build_info.h"

namespace repwatch {
namespace {

constexpr unsigned kCivetFeatureIpv6 = 8;

// civetweb reports why it could not start through log_message, on the starting thread.
thread_local std::string t_start_log;
thread_local bool t_starting = false;

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

bool IsNumericHost(const std::string& host, int family) {
  unsigned char buf[16];
  return inet_pton(family, host.c_str(), buf) == 1;
}

// "host:port" / ":port" / "[v6]:port" -> civetweb's listening_ports spec.
Result<std::string> CivetPortSpec(const std::string& address) {
  const std::string where = "listen address \"" + address + "\": ";
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos) return Status::Error(where + "expected HOST:PORT");
  std::string host = address.substr(0, colon);
  const std::string port = address.substr(colon + 1);
  int port_number = -1;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), port_number);
  if (port.empty() || ec != std::errc() || end != port.data() + port.size() || port_number > 65535)
    return Status::Error(where + "bad port \"" + port + "\"");
  const bool v6 = host.size() >= 2 && host.front() == '[' && host.back() == ']';
  if (v6) {
    host = host.substr(1, host.size() - 2);
    if (!IsNumericHost(host, AF_INET6)) return Status::Error(where + "bad IPv6 address \"" + host + "\"");
    if (!mg_check_feature(kCivetFeatureIpv6))
      return Status::Error(where + "this build of civetweb has no IPv6 support; listen on an IPv4 address");
    return "[" + host + "]:" + port;
  }
  if (host.empty()) return port;
  if (!IsNumericHost(host, AF_INET))
    return Status::Error(where + "host must be a numeric IPv4 address or [IPv6] address, got \"" + host + "\"");
  return host + ":" + port;
}

std::string ReadBody(mg_connection* conn, bool* too_large) {
  std::string body;
  char buf[8192];
  for (int n; (n = mg_read(conn, buf, sizeof buf)) > 0;) {
    if (body.size() + n > HttpServer::kMaxBodyBytes) {
      *too_large = true;
      return {};
    }
    body.append(buf, n);
  }
  return body;
}

HttpRequest ToRequest(mg_connection* conn) {
  const mg_request_info* info = mg_get_request_info(conn);
  HttpRequest req;
  req.method = info->request_method ? info->request_method : "";
  req.path = info->local_uri ? info->local_uri : "";
  req.query = info->query_string ? info->query_string : "";
  req.remote_addr = info->remote_addr;
  for (int i = 0; i < info->num_headers; ++i)
    req.headers[Lower(info->http_headers[i].name)] = info->http_headers[i].value;
  return req;
}

void Send(mg_connection* conn, const HttpResponse& res, bool with_body) {
  std::string head = "HTTP/1.1 " + std::to_string(res.status) + " " + mg_get_response_code_text(conn, res.status) +
                     "\r\nContent-Type: " + res.content_type +
                     "\r\nContent-Length: " + std::to_string(res.body.size()) + "\r\nConnection: close\r\n";
  for (const auto& [name, value] : res.headers) head += name + ": " + value + "\r\n";
  head += "\r\n";
  mg_write(conn, head.data(), head.size());
  if (with_body && !res.body.empty()) mg_write(conn, res.body.data(), res.body.size());
}

}  // namespace

std::string_view HttpRequest::Header(std::string_view name) const {
  auto it = headers.find(Lower(name));
  return it == headers.end() ? std::string_view() : std::string_view(it->second);
}

HttpResponse HttpResponse::Text(int status, std::string body) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

// Every method goes to HttpServer::Dispatch; civetweb only does the wire.
class HttpServer::Adapter : public CivetHandler {
 public:
  explicit Adapter(const HttpServer& owner) : owner_(owner) {}
  ~Adapter() override { civet.reset(); }  // stop serving before this handler goes away

  using CivetHandler::handleDelete;
  using CivetHandler::handleGet;
  using CivetHandler::handleHead;
  using CivetHandler::handleOptions;
  using CivetHandler::handlePatch;
  using CivetHandler::handlePost;
  using CivetHandler::handlePut;
  bool handleGet(CivetServer*, mg_connection* c, int* s) override { return Serve(c, s); }
  bool handlePost(CivetServer*, mg_connection* c, int* s) override { return Serve(c, s); }
  bool handleHead(CivetServer*, mg_connection* c, int* s) override { return Serve(c, s); }
  bool handlePut(CivetServer*, mg_connection* c, int* s) override { return Serve(c, s); }
  bool handleDelete(CivetServer*, mg_connection* c, int* s) override { return Serve(c, s); }
  bool handleOptions(CivetServer*, mg_connection* c, int* s) override { return Serve(c, s); }
  bool handlePatch(CivetServer*, mg_connection* c, int* s) override { return Serve(c, s); }

  std::unique_ptr<CivetServer> civet;

 private:
  bool Serve(mg_connection* conn, int* status) {
    HttpRequest req = ToRequest(conn);
    bool too_large = mg_get_request_info(conn)->content_length > static_cast<long long>(kMaxBodyBytes);
    if (!too_large) req.body = ReadBody(conn, &too_large);
    HttpResponse res = too_large ? HttpResponse::Text(413, "request body over 1 MiB\n") : owner_.Dispatch(req);
    Send(conn, res, req.method != "HEAD");
    *status = res.status;
    return true;
  }

  const HttpServer& owner_;
};

HttpServer::HttpServer(std::string listen_address) : listen_address_(std::move(listen_address)) {}

HttpServer::~HttpServer() { Stop(); }

void HttpServer::AddRoute(std::string method, std::string path, HttpHandler handler) {
  Route route{std::move(method), std::move(path), false, std::move(handler)};
  if (!route.path.empty() && route.path.back() == '*') {
    route.path.pop_back();
    route.prefix = true;
  }
  std::unique_lock lock(routes_mu_);
  std::erase_if(routes_, [&](const Route& r) {
    return r.method == route.method && r.path == route.path && r.prefix == route.prefix;
  });
  routes_.push_back(std::move(route));
  std::stable_sort(routes_.begin(), routes_.end(),
                   [](const Route& a, const Route& b) { return a.path.size() > b.path.size(); });
}

HttpResponse HttpServer::Dispatch(HttpRequest& req) const {
  const std::string method = req.method == "HEAD" ? "GET" : req.method;
  HttpHandler handler;
  std::string allowed;
  {
    std::shared_lock lock(routes_mu_);
    for (const Route& r : routes_) {
      const bool match = r.prefix ? req.path.starts_with(r.path) : req.path == r.path;
      if (!match) continue;
      if (r.method != method) {
        allowed += (allowed.empty() ? "" : ", ") + r.method;
        continue;
      }
      req.tail = r.prefix ? req.path.substr(r.path.size()) : "";
      handler = r.handler;
      break;
    }
  }
  if (!handler && allowed.empty()) return HttpResponse::Text(404, "not found: " + req.path + "\n");
  if (!handler) {
    HttpResponse res = HttpResponse::Text(405, req.method + " not allowed on " + req.path + "\n");
    res.headers.emplace_back("Allow", allowed);
    return res;
  }
  try {
    return handler(req);
  } catch (const std::exception& e) {
    return HttpResponse::Text(500, std::string("internal error: ") + e.what() + "\n");
  }
}

Status HttpServer::Start() {
  if (adapter_) return Status::Error("listen address " + listen_address_ + ": already serving");
  auto spec = CivetPortSpec(listen_address_);
  if (!spec.ok()) return spec.status();
  CivetCallbacks callbacks;
  callbacks.log_message = [](const mg_connection*, const char* message) {
    if (!t_starting) return 0;
    if (t_start_log.empty()) t_start_log = message;
    return 1;
  };
  auto adapter = std::make_unique<Adapter>(*this);
  t_start_log.clear();
  t_starting = true;
  try {
    adapter->civet = std::make_unique<CivetServer>(
        std::vector<std::string>{"listening_ports", spec.value(), "num_threads", "4", "request_timeout_ms", "10000"},
        &callbacks);
  } catch (const CivetException& e) {
    t_starting = false;
    return Status::Error("listen address " + listen_address_ + ": " + (t_start_log.empty() ? e.what() : t_start_log));
  }
  t_starting = false;
  adapter->civet->addHandler("**", *adapter);
  auto ports = adapter->civet->getListeningPortsFull();
  port_ = ports.empty() ? 0 : ports.front().port;
  adapter_ = std::move(adapter);
  return Status::Ok();
}

void HttpServer::Stop() {
  adapter_.reset();
  port_ = 0;
}

namespace {

HttpResponse MetricsPage(const std::vector<std::shared_ptr<prometheus::Collectable>>& collectables) {
  std::vector<prometheus::MetricFamily> families;
  for (const auto& c : collectables) {
    auto more = c->Collect();
    std::move(more.begin(), more.end(), std::back_inserter(families));
  }
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, families);
  HttpResponse res = HttpResponse::Text(200, out.str());
  res.content_type = "text/plain; version=0.0.4; charset=utf-8";
  return res;
}

HttpResponse LandingPage() {
  HttpResponse res;
  res.content_type = "text/html; charset=utf-8";
  res.body = std::string(
                 "<!DOCTYPE html>\n<html><head><title>repwatch</title></head><body>\n"
                 "<h1>repwatch</h1>\n<p>Watches the reputation of mail-sending IP ranges. Version ") +
             build::kVersion + " (" + build::kRevision +
             ").</p>\n<ul>\n"
             "<li><a href=\"metrics\">Metrics</a></li>\n"
             "<li><a href=\"-/healthy\">Health</a></li>\n"
             "<li><a href=\"-/ready\">Readiness</a> (after the first full cycle)</li>\n"
             "</ul>\n</body></html>\n";
  return res;
}

}  // namespace

bool IsLoopbackClient(const std::string& remote_addr) {
  unsigned char a[16];
  if (inet_pton(AF_INET, remote_addr.c_str(), a) == 1) return a[0] == 127;
  if (inet_pton(AF_INET6, remote_addr.c_str(), a) != 1) return false;
  static constexpr unsigned char kLoopback6[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  static constexpr unsigned char kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  return std::equal(a, a + 16, kLoopback6) || (std::equal(a, a + 12, kMapped) && a[12] == 127);
}

bool BearerTokenMatches(std::string_view authorization, std::string_view token) {
  constexpr std::string_view kBearer = "Bearer ";
  if (token.empty() || !authorization.starts_with(kBearer)) return false;
  std::string_view given = authorization.substr(kBearer.size());
  return given.size() == token.size() && CRYPTO_memcmp(given.data(), token.data(), token.size()) == 0;
}

void AddReloadRoute(HttpServer& server, ReloadRoute route) {
  server.AddRoute("POST", "/-/reload", [route = std::move(route)](const HttpRequest& req) {
    const std::string token = route.token ? route.token() : "";
    if (!token.empty() && !BearerTokenMatches(req.Header("authorization"), token)) {
      HttpResponse r = HttpResponse::Text(401, "missing or wrong bearer token\n");
      r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"repwatch\"");
      return r;
    }
    if (token.empty() && !IsLoopbackClient(req.remote_addr))
      return HttpResponse::Text(403, "no [api] token is configured: only loopback clients may reload\n");
    const Status s = route.reload();
    if (!s.ok()) return HttpResponse::Text(500, "reload failed; the running config is kept:\n" + s.message() + "\n");
    return HttpResponse::Text(200, "config reloaded\n");
  });
}

void AddStandardRoutes(HttpServer& server, StandardRoutes routes) {
  server.AddRoute("GET", "/metrics", [collectables = std::move(routes.collectables)](const HttpRequest&) {
    return MetricsPage(collectables);
  });
  server.AddRoute("GET", "/", [](const HttpRequest&) { return LandingPage(); });
  server.AddRoute("GET", "/-/healthy", [](const HttpRequest&) { return HttpResponse::Text(200, "OK\n"); });
  server.AddRoute("GET", "/-/ready", [ready = std::move(routes.ready)](const HttpRequest&) {
    if (ready && ready()) return HttpResponse::Text(200, "OK\n");
    return HttpResponse::Text(503, "not ready: the first full cycle has not finished\n");
  });
}

}  // namespace repwatch
