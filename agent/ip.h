// IP addresses and CIDR blocks, IPv4 and IPv6, as plain values.
// IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) are normalised to IPv4 on parse,
// because DNSBLs, PTR and SPF all treat such senders as IPv4.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <string>
#include <string_view>

#include "agent/status.h"

namespace repwatch {

enum class Family { kIpv4, kIpv6 };

class IpAddress {
 public:
  IpAddress() = default;
  static IpAddress V4(uint32_t host_order);
  static IpAddress V6(const std::array<uint8_t, 16>& bytes);
  // Accepts dotted quad or any RFC 4291 text form; "::ffff:1.2.3.4" becomes IPv4.
  static Result<IpAddress> Parse(std::string_view text);

  Family family() const { return family_; }
  bool is_v4() const { return family_ == Family::kIpv4; }
  uint32_t v4() const;                                  // host order; only for IPv4
  const std::array<uint8_t, 16>& bytes() const { return bytes_; }  // IPv4 in the first 4 bytes
  std::string ToString() const;                         // canonical (RFC 5952 for IPv6)

  // The DNSBL / reverse-DNS label sequence, without zone:
  // 192.0.2.99 -> "99.2.0.192"; IPv6 -> 32 reversed lowercase nibbles joined by dots.
  std::string ReversedLabels() const;
  // Full reverse-DNS name: "...in-addr.arpa" or "...ip6.arpa" (no trailing dot).
  std::string ReverseDnsName() const;

  // Adds n to the address (wraps within the family). Used to walk CIDR blocks.
  IpAddress Plus(uint64_t n) const;

  auto operator<=>(const IpAddress&) const = default;

 private:
  Family family_ = Family::kIpv4;
  std::array<uint8_t, 16> bytes_{};
};

// 32 reversed lowercase nibbles joined by dots, from raw bytes. Unlike
// IpAddress::ReversedLabels this never normalises IPv4-mapped addresses, which the
// RFC 5782 IPv6 test points (::ffff:7f00:2) need.
std::string NibbleLabels(const std::array<uint8_t, 16>& bytes);

class Cidr {
 public:
  // "192.0.2.0/24", "2001:db8::/120", or a bare address (a /32 or /128).
  // Host bits set below the prefix are an error, so typos do not silently widen a range.
  static Result<Cidr> Parse(std::string_view text);

  const IpAddress& network() const { return network_; }
  int prefix() const { return prefix_; }
  bool Contains(const IpAddress& ip) const;
  // Number of addresses; saturates at UINT64_MAX for huge IPv6 blocks.
  uint64_t Size() const;
  IpAddress At(uint64_t index) const { return network_.Plus(index); }
  std::string ToString() const;

 private:
  IpAddress network_;
  int prefix_ = 0;
};

}  // namespace repwatch
