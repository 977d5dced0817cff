#include "agent/ip.h"

#include <catch2/catch.hpp>

using repwatch::Cidr;
using repwatch::IpAddress;

TEST_CASE("IPv4 and IPv6 parse and print canonically", "[ip]") {
  CHECK(IpAddress::Parse("192.0.2.99").value().ToString() == "192.0.2.99");
  CHECK(IpAddress::Parse("2001:DB8:0:0::25").value().ToString() == "2001:db8::25");
  CHECK(IpAddress::Parse("2001:db8::25").value() == IpAddress::Parse("2001:DB8:0:0:0:0:0:25").value());
  CHECK_FALSE(IpAddress::Parse("192.0.2.256").ok());
  CHECK_FALSE(IpAddress::Parse("example.com").ok());
  CHECK(IpAddress::Parse("nope").error() == "not an IP address: \"nope\"");
}

TEST_CASE("IPv4-mapped IPv6 senders are treated as IPv4", "[ip]") {
  auto ip = IpAddress::Parse("::ffff:192.0.2.10").value();
  CHECK(ip.is_v4());
  CHECK(ip.ToString() == "192.0.2.10");
}

TEST_CASE("DNSBL reversed labels follow RFC 5782", "[ip]") {
  CHECK(IpAddress::Parse("192.0.2.99").value().ReversedLabels() == "99.2.0.192");
  CHECK(IpAddress::Parse("2001:db8::1").value().ReversedLabels() ==
        "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2");
  // Spamhaus's own example (domain-facts §1.1).
  CHECK(IpAddress::Parse("2001:db8:7ca6:22::45").value().ReversedLabels() ==
        "5.4.0.0.0.0.0.0.0.0.0.0.0.0.0.0.2.2.0.0.6.a.c.7.8.b.d.0.1.0.0.2");
  CHECK(IpAddress::Parse("192.0.2.99").value().ReverseDnsName() == "99.2.0.192.in-addr.arpa");
  CHECK(IpAddress::Parse("2001:db8::1").value().ReverseDnsName().ends_with(".ip6.arpa"));
}

TEST_CASE("CIDR blocks parse strictly and walk their addresses", "[ip]") {
  auto c = Cidr::Parse("192.0.2.0/24").value();
  CHECK(c.Size() == 256);
  CHECK(c.At(0).ToString() == "192.0.2.0");
  CHECK(c.At(255).ToString() == "192.0.2.255");
  CHECK(c.Contains(IpAddress::Parse("192.0.2.77").value()));
  CHECK_FALSE(c.Contains(IpAddress::Parse("192.0.3.1").value()));
  CHECK_FALSE(c.Contains(IpAddress::Parse("2001:db8::1").value()));
  CHECK(Cidr::Parse("198.18.0.0/16").value().Size() == 65536);

  auto v6 = Cidr::Parse("2001:db8:10::/120").value();
  CHECK(v6.Size() == 256);
  CHECK(v6.At(255).ToString() == "2001:db8:10::ff");
  CHECK(Cidr::Parse("2001:db8::/65").value().Size() == uint64_t{1} << 63);
  CHECK(Cidr::Parse("2001:db8::/64").value().Size() == UINT64_MAX);  // saturates
  CHECK(Cidr::Parse("2001:db8::/32").value().Size() == UINT64_MAX);
  CHECK(Cidr::Parse("192.0.2.7").value().Size() == 1);

  CHECK(Cidr::Parse("192.0.2.0/33").error() == "bad CIDR \"192.0.2.0/33\": prefix must be 0-32");
  CHECK(Cidr::Parse("192.0.2.0/024").error() == "bad CIDR \"192.0.2.0/024\": prefix must be 0-32");
  CHECK(Cidr::Parse("192.0.2.0/").error() == "bad CIDR \"192.0.2.0/\": prefix must be 0-32");
  CHECK(Cidr::Parse("192.0.2.1/24").error() ==
        "bad CIDR \"192.0.2.1/24\": host bits set below /24 (did you mean 192.0.2.0/24?)");
  CHECK(Cidr::Parse("2001:db8::1/64").error() ==
        "bad CIDR \"2001:db8::1/64\": host bits set below /64 (did you mean 2001:db8::/64?)");
}

TEST_CASE("Plus carries across IPv6 bytes", "[ip]") {
  auto ip = IpAddress::Parse("2001:db8::ff").value();
  CHECK(ip.Plus(1).ToString() == "2001:db8::100");
  CHECK(IpAddress::Parse("192.0.2.255").value().Plus(1).ToString() == "192.0.3.0");
}
