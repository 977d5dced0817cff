#include "checks/report.h"

#include <algorithm>
#include <iterator>

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

std::string_view FcrdnsResultName(FcrdnsResult r) {
  switch (r) {
    case FcrdnsResult::kPass: return "pass";
    case FcrdnsResult::kFail: return "fail";
    case FcrdnsResult::kNoPtr: return "no_ptr";
    case FcrdnsResult::kTempError: return "temperror";
  }
  return "temperror";
}

std::string_view HeloProblemName(HeloProblem p) {
  switch (p) {
    case HeloProblem::kNotFqdn: return "not_fqdn";
    case HeloProblem::kNoAddress: return "no_address";
    case HeloProblem::kWrongAddress: return "wrong_address";
    case HeloProblem::kPtrMismatch: return "ptr_mismatch";
    case HeloProblem::kTempError: return "temperror";
  }
  return "temperror";
}

Verdict FcrdnsReport::verdict() const {
  if (result == FcrdnsResult::kTempError) return Verdict::kError;
  if (result != FcrdnsResult::kPass || generic || !expected_ptr_ok) return Verdict::kProblem;
  if (!helo) return Verdict::kOk;
  const auto& p = helo->problems;
  if (std::any_of(p.begin(), p.end(), [](HeloProblem x) { return x != HeloProblem::kTempError; }))
    return Verdict::kProblem;
  return p.empty() ? Verdict::kOk : Verdict::kError;
}

Verdict SpfDomainResult::verdict() const {
  if (result == "pass") return Verdict::kOk;
  if (result == "temperror") return Verdict::kError;
  return Verdict::kProblem;
}

namespace {
constexpr std::string_view kMxStageNames[] = {"connect", "banner", "ehlo", "starttls", "mail", "rcpt"};
}  // namespace

std::string_view MxStageName(MxStage s) { return kMxStageNames[static_cast<size_t>(s)]; }

std::optional<MxStage> ParseMxStage(std::string_view name) {
  for (size_t i = 0; i < std::size(kMxStageNames); ++i)
    if (kMxStageNames[i] == name) return static_cast<MxStage>(i);
  return std::nullopt;
}

Verdict MxProbeResult::verdict() const {
  switch (cls) {
    case SmtpClass::kBlockedByList:
    case SmtpClass::kReputationBlock:
    case SmtpClass::kRateLimit:
    case SmtpClass::kPolicyFailure: return Verdict::kProblem;
    case SmtpClass::kOk:
    case SmtpClass::kGreylist: return Verdict::kOk;
    case SmtpClass::kOther:
    case SmtpClass::kError: return Verdict::kError;
  }
  return Verdict::kError;
}

}  // namespace repwatch
