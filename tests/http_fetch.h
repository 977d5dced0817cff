// A minimal HTTP/1.1 client for tests: one request to 127.0.0.1 over a plain
// socket (Connection: close). Tests run inside a loopback-only namespace.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

#include <catch2/catch.hpp>

namespace repwatch::testing {

struct Reply {
  int status = 0;
  std::string head;  // status line and headers
  std::string body;
};

// `headers`: extra header lines, each ending in "\r\n".
inline Reply Fetch(int port, const std::string& method, const std::string& target, const std::string& body = "",
                   const std::string& headers = "") {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  std::string request = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n";
  if (!body.empty()) request += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  request += headers;
  request += "\r\n" + body;
  REQUIRE(send(fd, request.data(), request.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(request.size()));
  std::string raw;
  char buf[4096];
  for (ssize_t n; (n = recv(fd, buf, sizeof buf, 0)) > 0;) raw.append(buf, static_cast<size_t>(n));
  close(fd);
  Reply reply;
  const size_t split = raw.find("\r\n\r\n");
  REQUIRE(split != std::string::npos);
  reply.head = raw.substr(0, split);
  reply.body = raw.substr(split + 4);
  REQUIRE(raw.rfind("HTTP/1.1 ", 0) == 0);
  reply.status = std::stoi(raw.substr(9, 3));
  return reply;
}

}  // namespace repwatch::testing
