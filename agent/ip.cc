#include "agent/ip.h"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>

namespace repwatch {
namespace {

constexpr char kHex[] = "0123456789abcdef";

bool IsV4Mapped(const std::array<uint8_t, 16>& b) {
  for (int i = 0; i < 10; ++i)
    if (b[i] != 0) return false;
  return b[10] == 0xff && b[11] == 0xff;
}

// `ip` with every bit below `prefix` cleared.
IpAddress Masked(const IpAddress& ip, int prefix) {
  std::array<uint8_t, 16> b = ip.bytes();
  const int max = ip.is_v4() ? 32 : 128;
  for (int bit = prefix; bit < max; ++bit) b[bit / 8] &= static_cast<uint8_t>(~(0x80 >> (bit % 8)));
  if (ip.is_v4()) return IpAddress::V4(uint32_t{b[0]} << 24 | uint32_t{b[1]} << 16 | uint32_t{b[2]} << 8 | b[3]);
  return IpAddress::V6(b);
}

}  // namespace

IpAddress IpAddress::V4(uint32_t host_order) {
  IpAddress ip;
  ip.family_ = Family::kIpv4;
  ip.bytes_[0] = static_cast<uint8_t>(host_order >> 24);
  ip.bytes_[1] = static_cast<uint8_t>(host_order >> 16);
  ip.bytes_[2] = static_cast<uint8_t>(host_order >> 8);
  ip.bytes_[3] = static_cast<uint8_t>(host_order);
  return ip;
}

IpAddress IpAddress::V6(const std::array<uint8_t, 16>& bytes) {
  if (IsV4Mapped(bytes))
    return V4(uint32_t{bytes[12]} << 24 | uint32_t{bytes[13]} << 16 | uint32_t{bytes[14]} << 8 | bytes[15]);
  IpAddress ip;
  ip.family_ = Family::kIpv6;
  ip.bytes_ = bytes;
  return ip;
}

Result<IpAddress> IpAddress::Parse(std::string_view text) {
  std::string s(text);
  in_addr a4{};
  if (inet_pton(AF_INET, s.c_str(), &a4) == 1) return V4(ntohl(a4.s_addr));
  std::array<uint8_t, 16> b{};
  if (inet_pton(AF_INET6, s.c_str(), b.data()) == 1) return V6(b);
  return Status::Error("not an IP address: \"" + s + "\"");
}

uint32_t IpAddress::v4() const {
  return uint32_t{bytes_[0]} << 24 | uint32_t{bytes_[1]} << 16 | uint32_t{bytes_[2]} << 8 | bytes_[3];
}

std::string IpAddress::ToString() const {
  char buf[INET6_ADDRSTRLEN];
  const int af = is_v4() ? AF_INET : AF_INET6;
  if (inet_ntop(af, bytes_.data(), buf, sizeof buf) == nullptr) return "?";
  return buf;
}

std::string IpAddress::ReversedLabels() const {
  if (is_v4()) {
    std::string out;
    for (int i = 3; i >= 0; --i) {
      out += std::to_string(bytes_[i]);
      if (i) out += '.';
    }
    return out;
  }
  return NibbleLabels(bytes_);
}

std::string NibbleLabels(const std::array<uint8_t, 16>& bytes) {
  std::string out;
  out.reserve(63);
  for (int i = 15; i >= 0; --i) {
    out += kHex[bytes[i] & 0xf];
    out += '.';
    out += kHex[bytes[i] >> 4];
    if (i) out += '.';
  }
  return out;
}

std::string IpAddress::ReverseDnsName() const {
  return ReversedLabels() + (is_v4() ? ".in-addr.arpa" : ".ip6.arpa");
}

IpAddress IpAddress::Plus(uint64_t n) const {
  if (is_v4()) return V4(v4() + static_cast<uint32_t>(n));
  IpAddress r = *this;
  unsigned carry = 0;
  for (int i = 15; i >= 0; --i) {
    const unsigned add = (i >= 8 ? static_cast<unsigned>((n >> (8 * (15 - i))) & 0xff) : 0u);
    const unsigned sum = r.bytes_[i] + add + carry;
    r.bytes_[i] = static_cast<uint8_t>(sum);
    carry = sum >> 8;
  }
  return r;
}

Result<Cidr> Cidr::Parse(std::string_view text) {
  const auto slash = text.find('/');
  auto ip = IpAddress::Parse(text.substr(0, slash));
  if (!ip.ok()) return Status::Error("bad CIDR \"" + std::string(text) + "\": address is not an IP address");
  // An IPv4-mapped address was normalised to IPv4; its prefix would be a /96+ form we do not accept.
  const int max = ip.value().is_v4() ? 32 : 128;
  int prefix = max;
  if (slash != std::string_view::npos) {
    const std::string_view p = text.substr(slash + 1);
    auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), prefix);
    if (p.empty() || ec != std::errc() || end != p.data() + p.size() || (p.size() > 1 && p[0] == '0') ||
        prefix < 0 || prefix > max)
      return Status::Error("bad CIDR \"" + std::string(text) + "\": prefix must be 0-" + std::to_string(max));
  }
  Cidr c;
  c.network_ = Masked(ip.value(), prefix);
  c.prefix_ = prefix;
  if (c.network_ != ip.value())
    return Status::Error("bad CIDR \"" + std::string(text) + "\": host bits set below /" + std::to_string(prefix) +
                         " (did you mean " + c.ToString() + "?)");
  return c;
}

bool Cidr::Contains(const IpAddress& ip) const {
  if (ip.family() != network_.family()) return false;
  const auto& a = ip.bytes();
  const auto& n = network_.bytes();
  int bit = 0;
  for (; bit + 8 <= prefix_; bit += 8)
    if (a[bit / 8] != n[bit / 8]) return false;
  if (bit < prefix_) {
    const uint8_t mask = static_cast<uint8_t>(0xff << (8 - (prefix_ - bit)));
    if ((a[bit / 8] & mask) != (n[bit / 8] & mask)) return false;
  }
  return true;
}

uint64_t Cidr::Size() const {
  const int host_bits = (network_.is_v4() ? 32 : 128) - prefix_;
  if (host_bits >= 64) return UINT64_MAX;
  return uint64_t{1} << host_bits;
}

std::string Cidr::ToString() const { return network_.ToString() + "/" + std::to_string(prefix_); }

}  // namespace repwatch
