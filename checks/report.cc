#include "checks/report.h"

namespace repwatch {

std::string_view DnsblStatusName(DnsblStatus s) {
  switch (s) {
    case DnsblStatus::kClean: return "clean";
    case DnsblStatus::kListed: return "listed";
    case DnsblStatus::kError: return "error";
  }
  return "error";
}

std::string_view ZoneHealthName(ZoneHealth h) {
  switch (h) {
    case ZoneHealth::kOk: return "ok";
    case ZoneHealth::kNotAnswering: return "not_answering";
    case ZoneHealth::kListsEverything: return "lists_everything";
    case ZoneHealth::kError: return "error";
  }
  return "error";
}

Verdict DnsblZoneResult::verdict() const {
  switch (status) {
    case DnsblStatus::kClean: return Verdict::kOk;
    case DnsblStatus::kListed: return allowlist ? Verdict::kOk : Verdict::kProblem;
    case DnsblStatus::kError: return Verdict::kError;
  }
  return Verdict::kError;
}

ZoneHealth ZoneHealthReport::ForFamily(Family f) const {
  const std::optional<ZoneHealth>& h = f == Family::kIpv4 ? ipv4 : ipv6;
  // A family never probed has no verdict: treat as not answering rather than ok.
  return h.value_or(ZoneHealth::kNotAnswering);
}

}  // namespace repwatch
