// FcrdnsCheck: forward-confirmed reverse DNS, generic-looking PTR names and the
// HELO name, for every address (domain-facts §3).
//
// - PTR at the reverse name (in-addr.arpa / nibble ip6.arpa), CNAMEs followed (RFC
//   2317 classless delegation). NXDOMAIN or no PTR -> no_ptr; SERVFAIL, timeout or
//   a CNAME loop -> temperror (an `error`, never a problem).
// - Each PTR name (the first 10) -> A for IPv4, AAAA for IPv6, CNAMEs followed.
//   pass when any address equals the IP (binary compare). When none does: temperror
//   if any forward lookup failed (we could not tell), else fail.
// - Generic names and the range's expected_ptr pattern are judged on the PTR names.
// - HELO: the range's `helo` ("{ptr}" filled in) or, by default, the PTR name
//   (the confirming one, else the first). It must be an FQDN, resolve to the IP and
//   equal one of the PTR names; each failure is named.
//
// PTR and forward lookups are per address and go straight to the resolver; the
// HELO lookup, shared by a whole range, goes through the cycle cache.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "checks/check.h"

namespace repwatch {

// Why `name` looks like a generic / dynamic pool name for `ip`, or nullopt:
// it contains the IP's octets (forward or reversed; joined by '-', '.' or nothing;
// zero-padded; hex), a dynamic-pool keyword as a label or next to digits, or a
// first label that is mostly digits.
std::optional<std::string> GenericPtrReason(const IpAddress& ip, std::string_view name);

// Glob match, ASCII case-insensitive: '*' matches one or more characters
// (dots included); everything else matches itself.
bool MatchesNamePattern(std::string_view pattern, std::string_view name);

// Why `name` cannot be an SMTP HELO host name (not an FQDN, an address literal,
// localhost, a bad label), or nullopt.
std::optional<std::string> HeloNameProblem(std::string_view name);

class FcrdnsCheck final : public Check {
 public:
  explicit FcrdnsCheck(CheckEnv env) : env_(env) {}

  std::string_view Name() const override { return "fcrdns"; }
  void BeginCycle(CycleReport*, Done done) override { done(); }
  void CheckIp(const Target& target, IpReport* report, Done done) override;
  size_t ExpectedQueries(const Target&) const override { return 2; }  // PTR + one forward lookup

 private:
  struct Work;
  void Forward(const std::shared_ptr<Work>& work);
  void Helo(const std::shared_ptr<Work>& work);
  void Finish(const std::shared_ptr<Work>& work);

  CheckEnv env_;
};

}  // namespace repwatch
