// Throughput benchmark for DnsClient against a real server on loopback (not part
// of ctest). Asks IPS x ZONES A questions (reversed 10.x.y.z under zN.bench) and
// prints questions per second and the outcome counts. --write FILE writes the
// same questions in dnsperf's input format instead, so both tools run one set.
//
//   g++ -std=c++20 -O2 -I. tests/bench/dns_bench.cc agent/dns_client.cc agent/dns_wire.cc
//       agent/dns_stats.cc agent/resolver.cc -lldns -o /tmp/dns_bench
//   /tmp/dns_bench PORT IPS ZONES IN_FLIGHT [SOCKETS] [--write FILE]
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "agent/dns_client.h"

using namespace repwatch;

static std::string Name(size_t i, size_t zones) {
  const size_t ip = i / zones;
  std::string name;
  name.reserve(40);
  name += std::to_string(ip & 255) + '.' + std::to_string((ip >> 8) & 255) + '.' +
          std::to_string((ip >> 16) & 255) + ".10.z" + std::to_string(i % zones) + ".bench";
  return name;
}

int main(int argc, char** argv) {
  if (argc < 5) return std::fprintf(stderr, "usage: dns_bench PORT IPS ZONES IN_FLIGHT [SOCKETS] [--write FILE]\n"), 2;
  const auto port = static_cast<uint16_t>(std::atoi(argv[1]));
  const size_t ips = std::strtoul(argv[2], nullptr, 10), zones = std::strtoul(argv[3], nullptr, 10);
  const size_t total = ips * zones;
  if (argc >= 8 && std::strcmp(argv[6], "--write") == 0) {
    FILE* f = std::fopen(argv[7], "w");
    for (size_t i = 0; i < total; ++i) std::fprintf(f, "%s A\n", Name(i, zones).c_str());
    return std::fclose(f);
  }
  DnsConfig config;
  config.servers = {{"127.0.0.1", port}};
  config.max_in_flight = std::atoi(argv[4]);
  config.sockets = argc > 5 ? std::atoi(argv[5]) : 4;
  config.timeout = std::chrono::milliseconds(1000);
  SystemClock clock;
  DnsStats stats;
  auto client = DnsClient::Create(config, clock, stats);
  if (!client.ok()) return std::fprintf(stderr, "%s\n", client.error().c_str()), 1;
  DnsClient& c = *client.value();
  size_t next = 0, done = 0, counts[8] = {};
  const size_t window = static_cast<size_t>(config.max_in_flight) * 2;
  const auto start = std::chrono::steady_clock::now();
  while (done < total) {
    while (next < total && c.Pending() < window) {
      c.Query(Name(next++, zones), rrtype::kA, [&](DnsResponse&& r) {
        ++done;
        ++counts[static_cast<int>(r.status)];
      });
    }
    c.Poll(std::chrono::milliseconds(100));
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("questions %zu in %.3f s = %.0f q/s; noerror %zu nxdomain %zu timeout %zu other %zu; attempts %llu\n",
              total, secs, total / secs, counts[0], counts[1], counts[5], total - counts[0] - counts[1] - counts[5],
              static_cast<unsigned long long>(stats.attempts.load()));
  uint64_t dropped = 0;
  for (auto& d : stats.dropped) dropped += d.load();
  std::printf("dropped %llu\n", static_cast<unsigned long long>(dropped));
}
