#include "exporters/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>

#include <catch2/catch.hpp>
#include "http_fetch.h"
#include <prometheus/counter.h>
#include <prometheus/registry.h>

namespace repwatch {
namespace {

using testing::Fetch;
using testing::Reply;

std::unique_ptr<HttpServer> StartOnFreePort() {
  auto server = std::make_unique<HttpServer>("127.0.0.1:0");
  Status s = server->Start();
  INFO(s.message());
  REQUIRE(s.ok());
  REQUIRE(server->port() > 0);
  return server;
}

TEST_CASE("HttpServer serves the standard routes", "[http]") {
  auto registry = std::make_shared<prometheus::Registry>();
  prometheus::BuildCounter().Name("repwatch_test_events_total").Help("Test events.").Register(*registry).Add({}).Increment(3);
  std::atomic<bool> ready{false};
  auto server = StartOnFreePort();
  AddStandardRoutes(*server, {{registry}, [&ready] { return ready.load(); }});

  Reply metrics = Fetch(server->port(), "GET", "/metrics");
  CHECK(metrics.status == 200);
  CHECK_THAT(metrics.head, Catch::Contains("Content-Type: text/plain; version=0.0.4; charset=utf-8"));
  CHECK_THAT(metrics.body, Catch::Contains("# TYPE repwatch_test_events_total counter"));
  CHECK_THAT(metrics.body, Catch::Contains("repwatch_test_events_total 3"));

  Reply landing = Fetch(server->port(), "GET", "/");
  CHECK(landing.status == 200);
  CHECK_THAT(landing.head, Catch::Contains("text/html"));
  CHECK_THAT(landing.body, Catch::Contains("href=\"metrics\""));
  CHECK_THAT(landing.body, Catch::Contains("href=\"-/ready\""));

  Reply healthy = Fetch(server->port(), "GET", "/-/healthy");
  CHECK(healthy.status == 200);
  CHECK(healthy.body == "OK\n");

  CHECK(Fetch(server->port(), "GET", "/-/ready").status == 503);
  ready = true;
  CHECK(Fetch(server->port(), "GET", "/-/ready").status == 200);

  Reply head = Fetch(server->port(), "HEAD", "/-/healthy");
  CHECK(head.status == 200);
  CHECK(head.body.empty());
  CHECK(Fetch(server->port(), "GET", "/nowhere").status == 404);
  Reply post = Fetch(server->port(), "POST", "/metrics", "x");
  CHECK(post.status == 405);
  CHECK_THAT(post.head, Catch::Contains("Allow: GET"));
}

TEST_CASE("HttpServer routes by method and path prefix, with bodies", "[http]") {
  auto server = StartOnFreePort();
  server->AddRoute("GET", "/api/v1/ips/*", [](const HttpRequest& req) {
    return HttpResponse::Text(200, "ip=" + req.tail + " q=" + req.query);
  });
  server->AddRoute("POST", "/api/v1/volume", [](const HttpRequest& req) {
    HttpResponse res = HttpResponse::Text(202, std::to_string(req.body.size()) + " bytes, auth=" +
                                                   std::string(req.Header("AUTHORIZATION")));
    res.headers.emplace_back("X-Test", "yes");
    return res;
  });
  server->AddRoute("GET", "/boom", [](const HttpRequest&) -> HttpResponse { throw std::runtime_error("kaput"); });

  Reply ip = Fetch(server->port(), "GET", "/api/v1/ips/192.0.2.1?pretty=1");
  CHECK(ip.status == 200);
  CHECK(ip.body == "ip=192.0.2.1 q=pretty=1");
  Reply v6 = Fetch(server->port(), "GET", "/api/v1/ips/2001%3adb8%3a%3a1");
  CHECK(v6.body == "ip=2001:db8::1 q=");

  Reply volume = Fetch(server->port(), "POST", "/api/v1/volume", std::string(5000, 'v'));
  CHECK(volume.status == 202);
  CHECK(volume.body == "5000 bytes, auth=");
  CHECK_THAT(volume.head, Catch::Contains("X-Test: yes"));

  Reply huge = Fetch(server->port(), "POST", "/api/v1/volume", std::string(HttpServer::kMaxBodyBytes + 1, 'v'));
  CHECK(huge.status == 413);
  Reply boom = Fetch(server->port(), "GET", "/boom");
  CHECK(boom.status == 500);
  CHECK_THAT(boom.body, Catch::Contains("kaput"));
}

TEST_CASE("HttpServer reports a bind failure as an error naming the address", "[http]") {
  auto first = StartOnFreePort();
  const std::string address = "127.0.0.1:" + std::to_string(first->port());
  HttpServer second(address);
  Status s = second.Start();
  REQUIRE_FALSE(s.ok());
  CHECK_THAT(s.message(), Catch::Contains(address));
  CHECK_THAT(s.message(), Catch::Contains("in use"));
  CHECK(Fetch(first->port(), "GET", "/nowhere").status == 404);  // the first one is unharmed
}

TEST_CASE("HttpServer rejects bad listen addresses clearly", "[http]") {
  for (const char* bad : {"9754", "localhost:9754", "127.0.0.1:99999", "127.0.0.1:", "[::1", "[zz::1]:80"}) {
    HttpServer server(bad);
    Status s = server.Start();
    INFO(bad);
    REQUIRE_FALSE(s.ok());
    CHECK_THAT(s.message(), Catch::Contains(bad));
  }
}

TEST_CASE("HttpServer on IPv6 loopback serves, or says IPv6 is unsupported", "[http]") {
  HttpServer server("[::1]:0");
  Status s = server.Start();
  if (!s.ok()) {
    CHECK_THAT(s.message(), Catch::Contains("no IPv6 support"));
    WARN(s.message());
    return;
  }
  int fd = socket(AF_INET6, SOCK_STREAM, 0);
  sockaddr_in6 addr{};
  addr.sin6_family = AF_INET6;
  addr.sin6_port = htons(static_cast<uint16_t>(server.port()));
  addr.sin6_addr = in6addr_loopback;
  CHECK(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  close(fd);
}

TEST_CASE("POST /-/reload answers after the reload was tried: 200, or 500 with the errors", "[http][reload]") {
  auto server = StartOnFreePort();
  Status next = Status::Ok();
  int tried = 0;
  AddReloadRoute(*server, ReloadRoute{[&] { ++tried; return next; }, [] { return std::string(); }});

  Reply ok = Fetch(server->port(), "POST", "/-/reload");
  CHECK(ok.status == 200);
  CHECK(ok.body == "config reloaded\n");
  CHECK(tried == 1);

  next = Status::Error("/etc/repwatch.toml:3:12: agent.interval: bad duration \"soon\"");
  Reply bad = Fetch(server->port(), "POST", "/-/reload");
  CHECK(bad.status == 500);
  CHECK_THAT(bad.body, Catch::Contains("the running config is kept"));
  CHECK_THAT(bad.body, Catch::Contains("/etc/repwatch.toml:3:12: agent.interval: bad duration"));
  CHECK(tried == 2);

  Reply get = Fetch(server->port(), "GET", "/-/reload");
  CHECK(get.status == 405);
  CHECK_THAT(get.head, Catch::Contains("Allow: POST"));
  CHECK(tried == 2);
}

TEST_CASE("POST /-/reload needs the API token once one is configured", "[http][reload]") {
  auto server = StartOnFreePort();
  std::string token = "0123456789abcdef0123";
  int tried = 0;
  AddReloadRoute(*server, ReloadRoute{[&] { ++tried; return Status::Ok(); }, [&] { return token; }});

  Reply none = Fetch(server->port(), "POST", "/-/reload");
  CHECK(none.status == 401);
  CHECK_THAT(none.head, Catch::Contains("WWW-Authenticate: Bearer"));
  CHECK(Fetch(server->port(), "POST", "/-/reload", "", "Authorization: Bearer wrong\r\n").status == 401);
  CHECK(tried == 0);
  CHECK(Fetch(server->port(), "POST", "/-/reload", "", "Authorization: Bearer " + token + "\r\n").status == 200);
  CHECK(tried == 1);
  // The token is read per request: a reload that removes it opens the route to loopback clients.
  token.clear();
  CHECK(Fetch(server->port(), "POST", "/-/reload").status == 200);
  CHECK(tried == 2);
}

TEST_CASE("IsLoopbackClient: only 127/8, ::1 and IPv4-mapped 127/8 (the reload route's 403 without a token)",
          "[http]") {
  for (const char* local : {"127.0.0.1", "127.255.1.1", "::1", "::ffff:127.0.0.2"}) {
    INFO(local);
    CHECK(IsLoopbackClient(local));
  }
  for (const char* remote : {"10.0.0.1", "192.0.2.1", "128.0.0.1", "::ffff:10.0.0.1", "2001:db8::1", "::", "::2",
                             "", "localhost", "127.0.0.1:9754", "garbage"}) {
    INFO(remote);
    CHECK_FALSE(IsLoopbackClient(remote));
  }
}

TEST_CASE("BearerTokenMatches: exact token after \"Bearer \" only", "[http]") {
  CHECK(BearerTokenMatches("Bearer secret-token", "secret-token"));
  CHECK_FALSE(BearerTokenMatches("Bearer secret-tokeN", "secret-token"));
  CHECK_FALSE(BearerTokenMatches("Bearer secret-token ", "secret-token"));
  CHECK_FALSE(BearerTokenMatches("bearer secret-token", "secret-token"));
  CHECK_FALSE(BearerTokenMatches("secret-token", "secret-token"));
  CHECK_FALSE(BearerTokenMatches("Bearer ", ""));  // no token configured: nothing matches
}

}  // namespace
}  // namespace repwatch
