#include "exporters/report_format.h"

#include <fmt/format.h>

#include "checks/report_json.h"

namespace repwatch {

nlohmann::ordered_json ZoneHealthJson(const ZoneHealthReport& zone) {
  nlohmann::ordered_json j = {{"kind", "zone"}, {"zone", zone.zone}, {"health", ZoneHealthName(zone.health)}};
  if (zone.ipv4) j["ipv4"] = ZoneHealthName(*zone.ipv4);
  if (zone.ipv6) j["ipv6"] = ZoneHealthName(*zone.ipv6);
  if (!zone.detail.empty()) j["detail"] = zone.detail;
  return j;
}

nlohmann::ordered_json IpReportJson(const IpReport& report) {
  nlohmann::ordered_json j = {{"kind", "ip"}, {"ip", report.ip.ToString()}};
  j["range"] = report.range.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(report.range);
  if (report.dnsbl) {
    nlohmann::ordered_json list = nlohmann::ordered_json::array();
    for (const auto& r : *report.dnsbl) {
      nlohmann::ordered_json z = {{"zone", r.zone},     {"status", DnsblStatusName(r.status)},
                          {"codes", r.codes},   {"meanings", r.meanings},
                          {"txt", r.txt},       {"error", r.error.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(r.error)}};
      if (r.allowlist) z["allowlist"] = true;
      if (!r.delist_url.empty()) z["delist_url"] = r.delist_url;
      list.push_back(std::move(z));
    }
    j["dnsbl"] = std::move(list);
  }
  if (report.fcrdns) j["fcrdns"] = FcrdnsJson(*report.fcrdns);
  if (report.spf) j["spf"] = SpfJson(*report.spf);
  if (report.mx) j["mx"] = MxJson(*report.mx);
  if (report.volume) j["volume"] = VolumeJson(*report.volume);
  if (report.warmup) j["warmup"] = WarmupJson(*report.warmup);
  return j;
}

std::string ZoneHealthTable(const std::vector<ZoneHealthReport>& zones) {
  std::string out = fmt::format("{:<36} {:<17} {}\n", "ZONE", "HEALTH", "DETAIL");
  for (const auto& z : zones) out += fmt::format("{:<36} {:<17} {}\n", z.zone, ZoneHealthName(z.health), z.detail);
  return out;
}

std::string IpReportTableHeader() {
  return fmt::format("{:<40} {:<16} {:<8} {:<10} {:<10} {:<8} {}\n", "IP", "RANGE", "DNSBL", "FCRDNS", "SPF", "MX",
                     "DETAIL");
}

namespace {

// The FCrDNS column and what it adds to DETAIL.
std::pair<std::string, std::vector<std::string>> FcrdnsCell(const FcrdnsReport& r) {
  std::vector<std::string> notes;
  if (r.result != FcrdnsResult::kPass) notes.push_back(r.reason);
  if (r.generic) notes.push_back("generic PTR: " + r.generic_reason);
  if (!r.expected_ptr_ok) notes.push_back(fmt::format("no PTR name matches {}", r.expected_ptr));
  if (r.helo && !r.helo->ok()) notes.push_back(r.helo->detail);
  std::string cell(FcrdnsResultName(r.result));
  if (r.result == FcrdnsResult::kPass && r.verdict() == Verdict::kProblem) cell = "pass*";
  return {cell, notes};
}

std::pair<std::string, std::vector<std::string>> SpfCell(const std::vector<SpfDomainResult>& results) {
  std::vector<std::string> notes;
  size_t pass = 0;
  for (const auto& r : results) {
    if (r.result == "pass") ++pass;
    else notes.push_back(fmt::format("SPF {} {}: {}", r.domain, r.result, r.reason));
    for (const auto& p : r.permissive) notes.push_back(fmt::format("SPF {} authorises everyone: {}", r.domain, p));
  }
  return {fmt::format("{}/{} pass", pass, results.size()), notes};
}

// The MX column ("3/4 ok") and a note for each receiver that did not say ok.
std::pair<std::string, std::vector<std::string>> MxCell(const std::vector<MxProbeResult>& results) {
  std::vector<std::string> notes;
  size_t ok = 0;
  for (const auto& r : results) {
    if (r.cls == SmtpClass::kOk) {
      ++ok;
      continue;
    }
    if (r.cls == SmtpClass::kError) {
      notes.push_back(fmt::format("MX {} at {}: error: {}", r.domain, MxStageName(r.stage), r.error));
      continue;
    }
    std::string what = fmt::format("MX {} at {}: {}", r.domain, MxStageName(r.stage), SmtpClassName(r.cls));
    if (!r.zone.empty()) what += fmt::format(" ({})", r.zone);
    what += fmt::format(": {}{} {}", r.code, r.enhanced.empty() ? "" : " " + r.enhanced, r.text);
    notes.push_back(std::move(what));
  }
  return {fmt::format("{}/{} ok", ok, results.size()), notes};
}

}  // namespace

std::string IpReportTableRow(const IpReport& report) {
  std::vector<std::string> listed, allowed, errors;
  for (const auto& r : report.dnsbl.value_or(std::vector<DnsblZoneResult>{})) {
    std::vector<std::string> codes;
    for (size_t i = 0; i < r.codes.size(); ++i)
      codes.push_back(fmt::format("{} {}", r.codes[i], i < r.meanings.size() ? r.meanings[i] : ""));
    if (r.status == DnsblStatus::kListed) {
      std::string s = fmt::format("{} [{}]", r.zone, fmt::join(codes, "; "));
      if (!r.txt.empty()) s += fmt::format(" \"{}\"", r.txt);
      (r.allowlist ? allowed : listed).push_back(std::move(s));
    } else if (r.status == DnsblStatus::kError) {
      errors.push_back(r.zone);
    }
  }
  const char* status = !report.dnsbl ? "-" : !listed.empty() ? "LISTED" : !errors.empty() ? "error" : "clean";
  std::string detail;
  if (!listed.empty()) detail += fmt::format("{}", fmt::join(listed, ", "));
  if (!allowed.empty()) detail += fmt::format("{}allow-listed: {}", detail.empty() ? "" : "; ", fmt::join(allowed, ", "));
  if (!errors.empty()) detail += fmt::format("{}could not tell: {}", detail.empty() ? "" : "; ", fmt::join(errors, ", "));
  std::string fcrdns = "-", spf = "-", mx = "-";
  std::vector<std::string> notes;
  if (report.fcrdns) {
    auto [cell, more] = FcrdnsCell(*report.fcrdns);
    fcrdns = cell;
    notes.insert(notes.end(), more.begin(), more.end());
  }
  if (report.spf) {
    auto [cell, more] = SpfCell(*report.spf);
    spf = cell;
    notes.insert(notes.end(), more.begin(), more.end());
  }
  if (report.warmup && report.warmup->signal != WarmupSignal::kOk)
    notes.push_back(fmt::format("warm-up {} (day {} of {}): {}", WarmupSignalName(report.warmup->signal),
                                report.warmup->day, report.warmup->schedule, report.warmup->detail));
  if (report.mx) {
    auto [cell, more] = MxCell(*report.mx);
    mx = cell;
    notes.insert(notes.end(), more.begin(), more.end());
  }
  for (const auto& n : notes) {
    if (!detail.empty()) detail += "; ";
    detail += n;
  }
  return fmt::format("{:<40} {:<16} {:<8} {:<10} {:<10} {:<8} {}\n", report.ip.ToString(),
                     report.range.empty() ? "-" : report.range, status, fcrdns, spf, mx, detail);
}

}  // namespace repwatch
