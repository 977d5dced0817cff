#include "checks/dnsbl.h"

#include <fmt/format.h>

#include <algorithm>

namespace repwatch {
namespace {

std::string Dotted(uint32_t v) {
  return fmt::format("{}.{}.{}.{}", v >> 24, (v >> 16) & 0xff, (v >> 8) & 0xff, v & 0xff);
}

uint32_t ARecordValue(const DnsRecord& r) {
  return uint32_t{r.addr[0]} << 24 | uint32_t{r.addr[1]} << 16 | uint32_t{r.addr[2]} << 8 | r.addr[3];
}

const CodeRange* FindCode(const std::vector<CodeRange>& ranges, uint32_t v) {
  for (const auto& r : ranges)
    if (r.Contains(v)) return &r;
  return nullptr;
}

std::string FailureText(const DnsResponse& a) {
  std::string s(DnsStatusName(a.status));
  if (!a.detail.empty()) s += ": " + a.detail;
  return s;
}

std::string ReplaceAll(std::string s, std::string_view from, std::string_view to) {
  for (size_t p = s.find(from); p != std::string::npos; p = s.find(from, p + to.size())) s.replace(p, from.size(), to);
  return s;
}

// Builds the 16 bytes of the IPv4-mapped IPv6 address ::ffff:127.0.0.<last>.
std::array<uint8_t, 16> MappedLoopback(uint8_t last) {
  std::array<uint8_t, 16> b{};
  b[10] = b[11] = 0xff;
  b[12] = 127;
  b[15] = last;
  return b;
}

std::string DescribeAnswer(const DnsResponse& a) {
  if (a.status != DnsStatus::kNoError) return FailureText(a);
  std::vector<std::string> values;
  for (const auto& r : a.answers)
    if (r.type == rrtype::kA) values.push_back(Dotted(ARecordValue(r)));
  return values.empty() ? "no A record" : fmt::format("{}", fmt::join(values, ","));
}

}  // namespace

std::string DnsblQueryName(const IpAddress& ip, std::string_view query_zone) {
  std::string name = ip.ReversedLabels();
  name += '.';
  name += query_zone;
  return name;
}

std::string PositiveTestPoint(Family family, std::string_view query_zone) {
  return (family == Family::kIpv4 ? std::string("2.0.0.127") : NibbleLabels(MappedLoopback(2))) + "." +
         std::string(query_zone);
}

std::string NegativeTestPoint(Family family, std::string_view query_zone) {
  return (family == Family::kIpv4 ? std::string("1.0.0.127") : NibbleLabels(MappedLoopback(1))) + "." +
         std::string(query_zone);
}

bool ZoneServes(const DnsblZone& zone, Family family) {
  switch (zone.family) {
    case ZoneFamily::kBoth: return true;
    case ZoneFamily::kIpv4: return family == Family::kIpv4;
    case ZoneFamily::kIpv6: return family == Family::kIpv6;
    case ZoneFamily::kDomain: return false;
  }
  return false;
}

DnsblZoneResult DecodeDnsblAnswer(const DnsblZone& zone, const IpAddress& ip, const DnsResponse& answer) {
  DnsblZoneResult r;
  r.zone = zone.zone;
  r.allowlist = zone.entry.kind == ZoneKind::kAllow;
  if (answer.status == DnsStatus::kNxDomain) {
    r.status = DnsblStatus::kClean;
    return r;
  }
  if (answer.status != DnsStatus::kNoError) {
    r.status = DnsblStatus::kError;
    r.error = FailureText(answer);
    return r;
  }
  std::vector<std::string> listed_codes, listed_meanings, error_codes, error_reasons;
  bool outside = false;
  for (const auto& rec : answer.answers) {
    if (rec.type != rrtype::kA) continue;
    const uint32_t v = ARecordValue(rec);
    const std::string code = Dotted(v);
    if ((v >> 24) != 127) {
      outside = true;
      error_codes.push_back(code);
      error_reasons.push_back("answer outside 127.0.0.0/8: zone broken or wildcarded");
    } else if (auto universal = UniversalErrorCode(v)) {
      error_codes.push_back(code);
      error_reasons.push_back(*universal);
    } else if (const CodeRange* err = FindCode(zone.entry.errors, v)) {
      error_codes.push_back(code);
      error_reasons.push_back(err->meaning);
    } else if (FindCode(zone.entry.not_listed, v)) {
      continue;
    } else {
      const CodeRange* c = FindCode(zone.entry.codes, v);
      listed_codes.push_back(code);
      listed_meanings.push_back(c ? c->meaning : zone.entry.codes.empty() ? "listed" : "undocumented return code");
    }
  }
  // An answer outside 127/8 means nothing in it can be trusted; error codes mixed
  // with real codes are ignored (domain-facts §1.2 rules 3 and 5).
  if (outside || (listed_codes.empty() && !error_codes.empty())) {
    r.status = DnsblStatus::kError;
    r.codes = std::move(error_codes);
    r.meanings = std::move(error_reasons);
    r.error = fmt::format("{} answered {}", zone.zone, fmt::join(r.codes, ","));
    if (!r.meanings.empty()) r.error += ": " + r.meanings.front();
    return r;
  }
  if (listed_codes.empty()) {
    r.status = DnsblStatus::kClean;
    return r;
  }
  r.status = DnsblStatus::kListed;
  r.codes = std::move(listed_codes);
  r.meanings = std::move(listed_meanings);
  if (!zone.entry.delist_url.empty()) r.delist_url = ReplaceAll(zone.entry.delist_url, "{ip}", ip.ToString());
  return r;
}

ZoneHealth AssessTestPoints(const DnsblZone& zone, const DnsResponse& positive, const DnsResponse& negative,
                            std::string* detail) {
  // The test points are decoded as if they were our own addresses.
  const IpAddress any = IpAddress::V4(0x7f000001);
  const DnsblZoneResult pos = DecodeDnsblAnswer(zone, any, positive);
  const DnsblZoneResult neg = DecodeDnsblAnswer(zone, any, negative);
  const bool neg_outside = std::any_of(negative.answers.begin(), negative.answers.end(), [](const DnsRecord& r) {
    return r.type == rrtype::kA && r.addr[0] != 127;
  });
  const std::string seen = fmt::format("positive test point answered {}; negative test point answered {}",
                                       DescribeAnswer(positive), DescribeAnswer(negative));
  ZoneHealth h;
  if (neg.status == DnsblStatus::kListed || neg_outside) {
    h = ZoneHealth::kListsEverything;
  } else if (pos.status == DnsblStatus::kListed) {
    h = neg.status == DnsblStatus::kClean ? ZoneHealth::kOk : ZoneHealth::kError;
  } else if (pos.status == DnsblStatus::kError && !pos.codes.empty()) {
    h = ZoneHealth::kError;  // answered, but with error codes: we are refused or rate limited
  } else {
    h = ZoneHealth::kNotAnswering;
  }
  if (h != ZoneHealth::kOk && detail) *detail = seen;
  return h;
}

// --- DnsblCheck -------------------------------------------------------------

DnsblCheck::DnsblCheck(const Config& config, CheckEnv env, std::set<Family> families)
    : config_(config), env_(env), families_(std::move(families)) {
  health_.resize(config_.dnsbl.size());
  for (size_t i = 0; i < config_.dnsbl.size(); ++i) health_[i].zone = config_.dnsbl[i].zone;
}

void DnsblCheck::BeginCycle(CycleReport* cycle, Done done) {
  struct Probe {
    size_t zone;
    Family family;
    DnsResponse positive, negative;
  };
  struct State {
    std::vector<Probe> probes;
    size_t remaining = 0;
    CycleReport* cycle;
    Done done;
  };
  auto state = std::make_shared<State>();
  state->cycle = cycle;
  state->done = std::move(done);
  for (size_t z = 0; z < config_.dnsbl.size(); ++z)
    for (Family f : families_)
      if (ZoneServes(config_.dnsbl[z], f)) state->probes.push_back(Probe{z, f, {}, {}});

  auto finish = [this, state] {
    std::vector<ZoneHealthReport> fresh(config_.dnsbl.size());
    for (size_t z = 0; z < fresh.size(); ++z) fresh[z].zone = config_.dnsbl[z].zone;
    for (const Probe& p : state->probes) {
      ZoneHealthReport& h = fresh[p.zone];
      std::string detail;
      const ZoneHealth fh = AssessTestPoints(config_.dnsbl[p.zone], p.positive, p.negative, &detail);
      (p.family == Family::kIpv4 ? h.ipv4 : h.ipv6) = fh;
      if (fh != ZoneHealth::kOk && h.health == ZoneHealth::kOk) {
        h.health = fh;
        h.detail = std::string(p.family == Family::kIpv4 ? "IPv4: " : "IPv6: ") + detail;
      }
    }
    health_ = fresh;
    // Zones not probed (no target of their family this run) have no health to report.
    for (const auto& h : fresh)
      if (h.ipv4 || h.ipv6) state->cycle->zones.push_back(h);
    state->done();
  };
  state->remaining = state->probes.size() * 2;
  if (state->remaining == 0) return finish();
  for (size_t i = 0; i < state->probes.size(); ++i) {
    const Probe& p = state->probes[i];
    const std::string& qz = config_.dnsbl[p.zone].query_zone;
    auto on_answer = [state, finish, i](bool positive) {
      return [state, finish, i, positive](DnsResponse&& a) {
        (positive ? state->probes[i].positive : state->probes[i].negative) = std::move(a);
        if (--state->remaining == 0) finish();
      };
    };
    env_.resolver.Query(PositiveTestPoint(p.family, qz), rrtype::kA, on_answer(true));
    env_.resolver.Query(NegativeTestPoint(p.family, qz), rrtype::kA, on_answer(false));
  }
}

struct DnsblCheck::IpWork {
  IpAddress ip;
  std::vector<size_t> zones;            // indexes into config_.dnsbl, in config order
  std::vector<DnsblZoneResult> results;  // parallel to zones
  size_t remaining = 0;
  IpReport* report;
  Done done;

  void Finish() {
    if (--remaining > 0) return;
    report->dnsbl = std::move(results);
    done();
  }
};

size_t DnsblCheck::ExpectedQueries(const Target& target) const {
  size_t n = 0;
  for (size_t z = 0; z < config_.dnsbl.size(); ++z)
    if (ZoneServes(config_.dnsbl[z], target.ip.family())) ++n;
  return n;
}

void DnsblCheck::CheckIp(const Target& target, IpReport* report, Done done) {
  auto work = std::make_shared<IpWork>();
  work->ip = target.ip;
  work->report = report;
  work->done = std::move(done);
  for (size_t z = 0; z < config_.dnsbl.size(); ++z)
    if (ZoneServes(config_.dnsbl[z], target.ip.family())) work->zones.push_back(z);
  work->results.resize(work->zones.size());
  work->remaining = work->zones.size() + 1;  // +1 guards against finishing inside the loop
  for (size_t slot = 0; slot < work->zones.size(); ++slot) Lookup(work, slot);
  work->Finish();
}

void DnsblCheck::Lookup(const std::shared_ptr<IpWork>& work, size_t slot) {
  const size_t z = work->zones[slot];
  const DnsblZone& zone = config_.dnsbl[z];
  const ZoneHealth health = health_[z].ForFamily(work->ip.family());
  if (health != ZoneHealth::kOk) {
    DnsblZoneResult& r = work->results[slot];
    r.zone = zone.zone;
    r.allowlist = zone.entry.kind == ZoneKind::kAllow;
    r.status = DnsblStatus::kError;
    r.error = fmt::format("zone unhealthy ({}): {}", ZoneHealthName(health), health_[z].detail);
    return work->Finish();
  }
  std::string name = DnsblQueryName(work->ip, zone.query_zone);
  env_.resolver.Query(name, rrtype::kA, [this, work, slot, &zone, name](DnsResponse&& a) {
    DnsblZoneResult& r = work->results[slot] = DecodeDnsblAnswer(zone, work->ip, a);
    if (r.status != DnsblStatus::kListed) return work->Finish();
    // TXT is decoration: its failure never changes the verdict.
    env_.resolver.Query(name, rrtype::kTxt, [work, slot](DnsResponse&& t) {
      std::vector<std::string> texts;
      for (const auto& rec : t.answers) {
        if (rec.type != rrtype::kTxt) continue;
        std::string joined;
        for (const auto& s : rec.strings) joined += s;
        texts.push_back(std::move(joined));
      }
      work->results[slot].txt = fmt::format("{}", fmt::join(texts, "; "));
      work->Finish();
    });
  });
}

}  // namespace repwatch
