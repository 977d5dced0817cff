// DnsblCheck: is an address listed on each configured DNSBL, with which codes and
// meanings — and could we tell at all? (domain-facts §1.)
//
// Per cycle, BeginCycle() probes every zone's RFC 5782 test points for each family
// in use (127.0.0.2 must be listed and 127.0.0.1 not; ::ffff:7f00:2 / ::ffff:7f00:1
// for IPv6). A zone whose test points misbehave is unhealthy for that family and
// every lookup against it ends `error`, so a dead or wildcarded zone can never
// raise (or clear) a listing. CheckIp() then asks A for each zone of the address's
// family, decodes every A record, and fetches TXT for listed addresses.
#pragma once

#include <map>
#include <set>
#include <string>
#include <string_view>

#include "checks/check.h"

namespace repwatch {

// "99.2.0.192.zen.spamhaus.org" / nibbles + zone. `query_zone` has no trailing dot.
std::string DnsblQueryName(const IpAddress& ip, std::string_view query_zone);

// Decodes one A answer for (ip, zone) per domain-facts §1.2:
//  - timeout / SERVFAIL / REFUSED / other RCODE -> error (never clean, never listed);
//  - NXDOMAIN or no A record -> clean;
//  - any value outside 127.0.0.0/8 -> error (zone broken or wildcarded);
//  - 127.255.255.0/24 and zone-specific error codes -> error, unless real listing
//    codes came back too, in which case the errors are ignored;
//  - zone-specific "not listed" values (quorum's 127.0.0.0) are ignored;
//  - anything else in 127/8 -> listed, every value kept with its meaning.
// Fills zone, status, allowlist, codes, meanings, error and delist_url (not txt).
DnsblZoneResult DecodeDnsblAnswer(const DnsblZone& zone, const IpAddress& ip, const DnsResponse& answer);

// Zone health for one family from the answers at its positive and negative test points.
// `detail` says what was wrong in words, when not ok.
ZoneHealth AssessTestPoints(const DnsblZone& zone, const DnsResponse& positive, const DnsResponse& negative,
                            std::string* detail);

// The RFC 5782 test point query names of a zone for a family.
std::string PositiveTestPoint(Family family, std::string_view query_zone);
std::string NegativeTestPoint(Family family, std::string_view query_zone);

// Whether a zone is queried for addresses of a family.
bool ZoneServes(const DnsblZone& zone, Family family);

class DnsblCheck final : public Check {
 public:
  DnsblCheck(const Config& config, CheckEnv env, std::set<Family> families);

  std::string_view Name() const override { return "dnsbl"; }
  void BeginCycle(CycleReport* cycle, Done done) override;
  void CheckIp(const Target& target, IpReport* report, Done done) override;
  size_t ExpectedQueries(const Target& target) const override;

 private:
  struct IpWork;
  void Lookup(const std::shared_ptr<IpWork>& work, size_t slot);

  const Config& config_;
  CheckEnv env_;
  std::set<Family> families_;
  // Health per zone (index into config_.dnsbl), refreshed by BeginCycle.
  std::vector<ZoneHealthReport> health_;
};

}  // namespace repwatch
