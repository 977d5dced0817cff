#include "exporters/metrics.h"

#include "builders.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <sstream>
#include <thread>

#include <catch2/catch.hpp>
#include <prometheus/text_serializer.h>

namespace repwatch {
namespace {

Config TestConfig() {
  Config c;
  RangeConfig acme;
  acme.name = "acme";
  acme.cidrs = {Cidr::Parse("192.0.2.0/30").value()};
  RangeConfig v6;
  v6.name = "v6pool";
  v6.cidrs = {Cidr::Parse("2001:db8::/126").value()};
  c.ranges = {acme, v6};
  DnsblZone zen;
  zen.zone = "zen.example";
  zen.family = ZoneFamily::kIpv4;
  DnsblZone wl;
  wl.zone = "wl.example";
  wl.family = ZoneFamily::kBoth;
  wl.entry.kind = ZoneKind::kAllow;
  c.dnsbl = {zen, wl};
  return c;
}

DnsblZoneResult ZoneResult(const std::string& zone, DnsblStatus status, std::vector<std::string> codes = {}) {
  DnsblZoneResult r;
  r.zone = zone;
  r.status = status;
  r.codes = std::move(codes);
  r.allowlist = zone == "wl.example";
  if (status == DnsblStatus::kError) r.error = "timeout";
  return r;
}

IpReport Report(const char* ip, std::string range, std::vector<DnsblZoneResult> results) {
  return testing::DnsblReport(IpAddress::Parse(ip).value(), std::move(range), std::move(results));
}

std::shared_ptr<const MetricsSnapshot> SmallSnapshot() {
  SnapshotBuilder b(TestConfig());
  b.Add(Report("192.0.2.1", "acme",
               {ZoneResult("zen.example", DnsblStatus::kListed, {"127.0.0.2", "127.0.0.4"}),
                ZoneResult("wl.example", DnsblStatus::kClean)}));
  b.Add(Report("192.0.2.2", "acme",
               {ZoneResult("zen.example", DnsblStatus::kClean), ZoneResult("wl.example", DnsblStatus::kListed, {"127.0.2.15"})}));
  b.Add(Report("192.0.2.3", "acme",
               {ZoneResult("zen.example", DnsblStatus::kError), ZoneResult("wl.example", DnsblStatus::kClean)}));
  b.Add(Report("2001:db8::1", "v6pool", {ZoneResult("wl.example", DnsblStatus::kClean)}));
  ZoneHealthReport zen;
  zen.zone = "zen.example";
  zen.ipv4 = ZoneHealth::kOk;
  ZoneHealthReport wl;
  wl.zone = "wl.example";
  wl.health = ZoneHealth::kNotAnswering;
  wl.ipv4 = ZoneHealth::kOk;
  wl.ipv6 = ZoneHealth::kNotAnswering;
  b.SetCycle(CycleReport{{zen, wl}});
  return b.Finish(12.5, 1700000000);
}

std::string Serialize(const prometheus::Collectable& c) {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, c.Collect());
  return out.str();
}

// The sample lines of one family, as serialised.
std::vector<std::string> Series(const std::string& text, const std::string& name) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (line.rfind(name + "{", 0) == 0 || line.rfind(name + " ", 0) == 0) out.push_back(line);
  return out;
}

using Lines = std::vector<std::string>;

TEST_CASE("MetricsExporter: exact series for a small snapshot", "[metrics]") {
  DnsStats dns;
  MetricsExporter exporter(dns);
  exporter.Publish(SmallSnapshot());
  const std::string text = Serialize(exporter);
  INFO(text);

  CHECK(Series(text, "repwatch_dnsbl_listed") ==
        Lines{R"(repwatch_dnsbl_listed{ip="192.0.2.1",zone="zen.example",code="127.0.0.2",range="acme"} 1)",
              R"(repwatch_dnsbl_listed{ip="192.0.2.1",zone="zen.example",code="127.0.0.4",range="acme"} 1)"});
  CHECK(Series(text, "repwatch_dnsbl_listed_ips") ==
        Lines{R"(repwatch_dnsbl_listed_ips{zone="zen.example",range="acme"} 1)"});
  CHECK(Series(text, "repwatch_dnsbl_error_ips") ==
        Lines{R"(repwatch_dnsbl_error_ips{zone="wl.example",range="acme"} 0)",
              R"(repwatch_dnsbl_error_ips{zone="wl.example",range="v6pool"} 0)",
              R"(repwatch_dnsbl_error_ips{zone="zen.example",range="acme"} 1)"});
  CHECK(Series(text, "repwatch_dnsbl_allowlisted_ips") ==
        Lines{R"(repwatch_dnsbl_allowlisted_ips{zone="wl.example",range="acme"} 1)",
              R"(repwatch_dnsbl_allowlisted_ips{zone="wl.example",range="v6pool"} 0)"});
  CHECK(Series(text, "repwatch_dnsbl_zone_up") ==
        Lines{R"(repwatch_dnsbl_zone_up{zone="zen.example"} 1)", R"(repwatch_dnsbl_zone_up{zone="wl.example"} 0)"});
  CHECK(Series(text, "repwatch_dnsbl_zone_health") ==
        Lines{R"(repwatch_dnsbl_zone_health{zone="zen.example",family="ipv4",health="ok"} 1)",
              R"(repwatch_dnsbl_zone_health{zone="wl.example",family="ipv4",health="ok"} 1)",
              R"(repwatch_dnsbl_zone_health{zone="wl.example",family="ipv6",health="not_answering"} 1)"});
  CHECK(Series(text, "repwatch_targets") ==
        Lines{R"(repwatch_targets{range="acme"} 3)", R"(repwatch_targets{range="v6pool"} 1)"});
  CHECK(Series(text, "repwatch_cycle_duration_seconds") == Lines{"repwatch_cycle_duration_seconds 12.5"});
  CHECK(Series(text, "repwatch_cycle_interval_seconds") == Lines{"repwatch_cycle_interval_seconds 3600"});
  CHECK(Series(text, "repwatch_last_cycle_success_timestamp_seconds") ==
        Lines{"repwatch_last_cycle_success_timestamp_seconds 1700000000"});
}

TEST_CASE("MetricsExporter: listing info carries each code's meaning and the delisting URL", "[metrics]") {
  SnapshotBuilder b(TestConfig());
  DnsblZoneResult zen = ZoneResult("zen.example", DnsblStatus::kListed, {"127.0.0.4", "127.0.0.2", "127.0.0.4"});
  zen.meanings = {"XBL: exploited host", "SBL: spam source", "XBL: exploited host"};
  zen.delist_url = "https://check.example/?ip=192.0.2.1";
  b.Add(Report("192.0.2.1", "acme", {zen}));
  DnsStats dns;
  MetricsExporter exporter(dns);
  SECTION("from this cycle's results") { exporter.Publish(b.Finish(1, 1700000000)); }
  SECTION("from the store (what a completed cycle and the start-up snapshot export)") {
    StoredListing stored;
    stored.ip = "192.0.2.1";
    stored.range = "acme";
    stored.zone = "zen.example";
    stored.codes = zen.codes;
    stored.meanings = zen.meanings;
    stored.delist_url = zen.delist_url;
    b.UseStoredListings({stored});
    exporter.Publish(b.Finish(1, 1700000000));
  }
  const std::string text = Serialize(exporter);
  INFO(text);
  CHECK(Series(text, "repwatch_dnsbl_listed").size() == 2);
  CHECK(Series(text, "repwatch_dnsbl_listing_info") ==
        Lines{R"(repwatch_dnsbl_listing_info{ip="192.0.2.1",zone="zen.example",code="127.0.0.2",range="acme",meaning="SBL: spam source",delist_url="https://check.example/?ip=192.0.2.1"} 1)",
              R"(repwatch_dnsbl_listing_info{ip="192.0.2.1",zone="zen.example",code="127.0.0.4",range="acme",meaning="XBL: exploited host",delist_url="https://check.example/?ip=192.0.2.1"} 1)"});
}

TEST_CASE("MetricsExporter: a listing without codes or meanings keeps empty labels", "[metrics]") {
  SnapshotBuilder b(TestConfig());
  b.Add(Report("192.0.2.1", "acme", {ZoneResult("zen.example", DnsblStatus::kListed, {})}));
  DnsStats dns;
  MetricsExporter exporter(dns);
  exporter.Publish(b.Finish(1, 1700000000));
  const std::string text = Serialize(exporter);
  INFO(text);
  CHECK(Series(text, "repwatch_dnsbl_listing_info") ==
        Lines{R"(repwatch_dnsbl_listing_info{ip="192.0.2.1",zone="zen.example",code="",range="acme",meaning="",delist_url=""} 1)"});
}

TEST_CASE("MetricsExporter: before any cycle, only build info and DNS counters", "[metrics]") {
  DnsStats dns;
  dns.queries = 7;
  dns.Fail(DnsFailure::kTimeout);
  dns.Drop(DnsDrop::kUnknownId);
  MetricsExporter exporter(dns);
  const std::string text = Serialize(exporter);
  INFO(text);
  CHECK(text.find("repwatch_dnsbl_") == std::string::npos);
  CHECK(text.find("repwatch_cycle_duration_seconds") == std::string::npos);
  CHECK(text.find("repwatch_last_cycle_success_timestamp_seconds") == std::string::npos);
  REQUIRE(Series(text, "repwatch_build_info").size() == 1);
  CHECK_THAT(Series(text, "repwatch_build_info")[0], Catch::StartsWith("repwatch_build_info{version=\""));
  CHECK(Series(text, "repwatch_dns_queries_total") == Lines{"repwatch_dns_queries_total 7"});
  CHECK(Series(text, "repwatch_dns_attempts_total") == Lines{"repwatch_dns_attempts_total 0"});
  CHECK(Series(text, "repwatch_dns_query_failures_total") ==
        Lines{R"(repwatch_dns_query_failures_total{reason="timeout"} 1)",
              R"(repwatch_dns_query_failures_total{reason="servfail"} 0)",
              R"(repwatch_dns_query_failures_total{reason="refused"} 0)",
              R"(repwatch_dns_query_failures_total{reason="rcode"} 0)",
              R"(repwatch_dns_query_failures_total{reason="network"} 0)"});
  CHECK(Series(text, "repwatch_dns_dropped_packets_total").size() == static_cast<size_t>(DnsDrop::kCount));
  CHECK_THAT(text, Catch::Contains(R"(repwatch_dns_dropped_packets_total{reason="unknown_id"} 1)"));
}

TEST_CASE("MetricsExporter: a failed first cycle omits the last success time", "[metrics]") {
  DnsStats dns;
  MetricsExporter exporter(dns);
  exporter.Publish(SnapshotBuilder(TestConfig()).Finish(3, 0));
  const std::string text = Serialize(exporter);
  CHECK(Series(text, "repwatch_last_cycle_success_timestamp_seconds").empty());
  CHECK(Series(text, "repwatch_dnsbl_listed").empty());
  CHECK(Series(text, "repwatch_dnsbl_listed_ips") ==
        Lines{R"(repwatch_dnsbl_listed_ips{zone="zen.example",range="acme"} 0)"});
  CHECK(Series(text, "repwatch_targets") ==
        Lines{R"(repwatch_targets{range="acme"} 0)", R"(repwatch_targets{range="v6pool"} 0)"});
}

TEST_CASE("MetricsExporter output passes promtool check metrics", "[metrics]") {
  if (access("/usr/bin/promtool", X_OK) != 0) {
    WARN("promtool not installed; skipping the exposition lint");
    return;
  }
  DnsStats dns;
  MetricsExporter exporter(dns);
  for (bool published : {false, true}) {
    if (published) exporter.Publish(SmallSnapshot());
    const std::string text = Serialize(exporter);
    char path[] = "/tmp/repwatch_metrics_test.XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    REQUIRE(write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()));
    close(fd);
    std::string cmd = std::string("/usr/bin/promtool check metrics < ") + path + " 2>&1";
    FILE* p = popen(cmd.c_str(), "r");
    REQUIRE(p);
    std::string report;
    char buf[256];
    while (fgets(buf, sizeof buf, p)) report += buf;
    int status = pclose(p);
    unlink(path);
    INFO("published=" << published << "\n" << text << "\npromtool said:\n" << report);
    CHECK(status == 0);
    CHECK(report.empty());
  }
}

TEST_CASE("MetricsExporter: scrapes while cycles publish", "[metrics]") {
  DnsStats dns;
  MetricsExporter exporter(dns);
  std::atomic<bool> stop{false};
  std::thread publisher([&] {
    while (!stop) exporter.Publish(SmallSnapshot());
  });
  size_t scraped = 0;
  for (int i = 0; i < 200; ++i) scraped += exporter.Collect().size();
  stop = true;
  publisher.join();
  CHECK(scraped > 0);
}

}  // namespace
}  // namespace repwatch

namespace repwatch {
namespace {

StoredListing Stored(std::string ip, std::string range, std::string zone, std::vector<std::string> codes,
                     bool allowlist = false) {
  StoredListing l;
  l.ip = std::move(ip);
  l.range = std::move(range);
  l.zone = std::move(zone);
  l.codes = std::move(codes);
  l.allowlist = allowlist;
  return l;
}

}  // namespace

TEST_CASE("SnapshotBuilder: stored listings keep a listing whose lookup now errors", "[metrics]") {
  SnapshotBuilder b(TestConfig());
  // This cycle, 192.0.2.1's zen lookup timed out; the store still holds its listing.
  b.Add(Report("192.0.2.1", "acme", {ZoneResult("zen.example", DnsblStatus::kError), ZoneResult("wl.example", DnsblStatus::kClean)}));
  b.UseStoredListings({
      Stored("192.0.2.1", "acme", "zen.example", {"127.0.0.2"}),
      Stored("192.0.2.2", "acme", "wl.example", {"127.0.2.15"}, true),
      Stored("192.0.2.3", "acme", "gone.example", {"127.0.0.2"}),   // zone left the config
      Stored("198.51.100.1", "acme", "zen.example", {"127.0.0.2"}), // address left the range
      Stored("192.0.2.3", "old-name", "zen.example", {"127.0.0.2"}), // range renamed
  });
  DnsStats dns;
  MetricsExporter exporter(dns);
  exporter.Publish(b.Finish(1, 1700000000));
  const std::string text = Serialize(exporter);
  INFO(text);
  CHECK(Series(text, "repwatch_dnsbl_listed") ==
        Lines{R"(repwatch_dnsbl_listed{ip="192.0.2.1",zone="zen.example",code="127.0.0.2",range="acme"} 1)"});
  CHECK(Series(text, "repwatch_dnsbl_listed_ips") == Lines{R"(repwatch_dnsbl_listed_ips{zone="zen.example",range="acme"} 1)"});
  CHECK(Series(text, "repwatch_dnsbl_error_ips") ==
        Lines{R"(repwatch_dnsbl_error_ips{zone="wl.example",range="acme"} 0)",
              R"(repwatch_dnsbl_error_ips{zone="wl.example",range="v6pool"} 0)",
              R"(repwatch_dnsbl_error_ips{zone="zen.example",range="acme"} 1)"});
  CHECK_THAT(text, Catch::Contains(R"(repwatch_dnsbl_allowlisted_ips{zone="wl.example",range="acme"} 1)"));
}

}  // namespace repwatch

namespace repwatch {

TEST_CASE("SnapshotBuilder: the start-up snapshot shows stored listings, not cycle numbers", "[metrics]") {
  SnapshotBuilder b(TestConfig());
  b.UseStoredListings({Stored("192.0.2.1", "acme", "zen.example", {"127.0.0.2", "127.0.0.4"})});
  ZoneHealthReport zen;
  zen.zone = "zen.example";
  zen.ipv4 = ZoneHealth::kOk;
  b.SetCycle(CycleReport{{zen}});
  DnsStats dns;
  MetricsExporter exporter(dns);
  exporter.Publish(b.FinishRestored(1700000000));
  const std::string text = Serialize(exporter);
  INFO(text);
  CHECK(Series(text, "repwatch_dnsbl_listed").size() == 2);
  CHECK(Series(text, "repwatch_dnsbl_listed_ips") == Lines{R"(repwatch_dnsbl_listed_ips{zone="zen.example",range="acme"} 1)"});
  CHECK(Series(text, "repwatch_dnsbl_zone_up") == Lines{R"(repwatch_dnsbl_zone_up{zone="zen.example"} 1)"});
  CHECK(Series(text, "repwatch_last_cycle_success_timestamp_seconds") ==
        Lines{"repwatch_last_cycle_success_timestamp_seconds 1700000000"});
  // Not known until this process ends a cycle:
  CHECK(Series(text, "repwatch_cycle_duration_seconds").empty());
  CHECK(Series(text, "repwatch_targets").empty());
  CHECK(Series(text, "repwatch_dnsbl_error_ips").empty());
}

}  // namespace repwatch

namespace repwatch {
namespace {

IpReport Checked(const char* ip, FcrdnsResult result, std::vector<SpfDomainResult> spf) {
  IpReport r;
  r.ip = IpAddress::Parse(ip).value();
  r.range = "acme";
  FcrdnsReport& f = r.fcrdns.emplace();
  f.result = result;
  f.ptr = {"mail.acme.example"};
  r.spf = std::move(spf);
  return r;
}

TEST_CASE("MetricsExporter: FCrDNS and SPF series only for problems, counts per range and result", "[metrics]") {
  Config config = TestConfig();
  config.dnsbl.clear();
  config.ranges[0].spf_domains = {"acme.example"};
  SnapshotBuilder b(config);
  const SpfDomainResult pass{"acme.example", "pass", "ip4 matched", {}};
  b.Add(Checked("192.0.2.0", FcrdnsResult::kPass, {pass}));
  IpReport generic = Checked("192.0.2.1", FcrdnsResult::kPass, {{"acme.example", "softfail", "~all", {}}});
  generic.fcrdns->generic = true;
  generic.fcrdns->generic_name = "1-2-0-192.dyn.example";
  generic.fcrdns->expected_ptr = "*.out.acme.example";
  generic.fcrdns->expected_ptr_ok = false;
  generic.fcrdns->helo.emplace().name = "mail.acme.example";
  generic.fcrdns->helo->problems = {HeloProblem::kWrongAddress, HeloProblem::kTempError};
  b.Add(generic);
  b.Add(Checked("192.0.2.2", FcrdnsResult::kNoPtr, {{"acme.example", "temperror", "timeout", {}}}));
  b.Add(Checked("192.0.2.3", FcrdnsResult::kTempError,
                {{"acme.example", "pass", "+all", {"+all in acme.example"}}}));
  b.Add(Checked("2001:db8::1", FcrdnsResult::kFail, {}));
  DnsStats dns;
  MetricsExporter exporter(dns);
  exporter.Publish(b.Finish(1, 1700000000));
  const std::string text = Serialize(exporter);
  INFO(text);

  CHECK(Series(text, "repwatch_fcrdns_failing") ==
        Lines{R"(repwatch_fcrdns_failing{ip="192.0.2.2",range="acme",result="no_ptr"} 1)",
              R"(repwatch_fcrdns_failing{ip="2001:db8::1",range="acme",result="fail"} 1)"});
  CHECK(Series(text, "repwatch_ptr_generic") ==
        Lines{R"(repwatch_ptr_generic{ip="192.0.2.1",ptr="1-2-0-192.dyn.example",range="acme"} 1)"});
  CHECK(Series(text, "repwatch_ptr_unexpected") ==
        Lines{R"(repwatch_ptr_unexpected{ip="192.0.2.1",ptr="mail.acme.example",range="acme"} 1)"});
  // temperror is "could not tell", never a problem series.
  CHECK(Series(text, "repwatch_helo_problem") ==
        Lines{R"(repwatch_helo_problem{helo="mail.acme.example",ip="192.0.2.1",problem="wrong_address",range="acme"} 1)"});
  CHECK(Series(text, "repwatch_fcrdns_ips") ==
        Lines{R"(repwatch_fcrdns_ips{range="acme",result="fail"} 1)",
              R"(repwatch_fcrdns_ips{range="acme",result="no_ptr"} 1)",
              R"(repwatch_fcrdns_ips{range="acme",result="pass"} 2)",
              R"(repwatch_fcrdns_ips{range="acme",result="temperror"} 1)",
              R"(repwatch_fcrdns_ips{range="v6pool",result="fail"} 0)",
              R"(repwatch_fcrdns_ips{range="v6pool",result="no_ptr"} 0)",
              R"(repwatch_fcrdns_ips{range="v6pool",result="pass"} 0)",
              R"(repwatch_fcrdns_ips{range="v6pool",result="temperror"} 0)"});
  CHECK(Series(text, "repwatch_spf_unauthorized") ==
        Lines{R"(repwatch_spf_unauthorized{domain="acme.example",ip="192.0.2.1",range="acme",result="softfail"} 1)"});
  const auto spf_ips = Series(text, "repwatch_spf_ips");
  CHECK(spf_ips.size() == 7);  // every result of the one (range, domain), zeros included
  CHECK(std::count(spf_ips.begin(), spf_ips.end(),
                   R"(repwatch_spf_ips{domain="acme.example",range="acme",result="pass"} 2)") == 1);
  CHECK(std::count(spf_ips.begin(), spf_ips.end(),
                   R"(repwatch_spf_ips{domain="acme.example",range="acme",result="permerror"} 0)") == 1);
  CHECK(Series(text, "repwatch_spf_permissive") ==
        Lines{R"(repwatch_spf_permissive{domain="acme.example",term="+all in acme.example"} 1)"});

  // The start-up snapshot rebuilds the same problem series from stored sections.
  SnapshotBuilder restored(config);
  restored.AddStored(Checked("192.0.2.2", FcrdnsResult::kNoPtr, {}));
  restored.AddStored(Checked("198.51.100.1", FcrdnsResult::kNoPtr, {}));  // left its range: skipped
  exporter.Publish(restored.FinishRestored(1700000000));
  const std::string after = Serialize(exporter);
  CHECK(Series(after, "repwatch_fcrdns_failing") ==
        Lines{R"(repwatch_fcrdns_failing{ip="192.0.2.2",range="acme",result="no_ptr"} 1)"});
}

}  // namespace
}  // namespace repwatch

namespace repwatch {
namespace {

MxProbeResult MxAnswer(const std::string& domain, SmtpClass cls, MxStage stage, int code, const std::string& enhanced) {
  MxProbeResult m;
  m.domain = domain;
  m.host = "mx1." + domain;
  m.address = "203.0.113.25";
  m.cls = cls;
  m.stage = stage;
  m.code = code;
  m.enhanced = enhanced;
  m.probed_at = 1'700'000'000;
  return m;
}

MxTlsReport Tls(bool ok, bool name_match) {
  MxTlsReport t;
  t.ok = ok;
  t.protocol = ok ? "TLSv1.3" : "";
  t.name_match = name_match;
  t.error = ok ? "" : "handshake: wrong version number";
  return t;
}

IpReport WithMx(const char* ip, std::vector<MxProbeResult> results) {
  IpReport r;
  r.ip = IpAddress::Parse(ip).value();
  r.range = "acme";
  r.mx = std::move(results);
  return r;
}

Config MxConfig() {
  Config config = TestConfig();
  config.dnsbl.clear();
  config.mx_probe.enabled = true;
  config.mx_probe.domains = {"gmail.com", "outlook.com"};
  config.ranges[1].mx_probe = false;  // v6pool lives on another host
  return config;
}

// Three addresses, each with one result per receiver domain.
std::vector<IpReport> MxReports() {
  MxProbeResult gmail_ok = MxAnswer("gmail.com", SmtpClass::kOk, MxStage::kRcpt, 250, "2.1.5");
  gmail_ok.tls = Tls(true, true);
  MxProbeResult outlook_blocked = MxAnswer("outlook.com", SmtpClass::kReputationBlock, MxStage::kRcpt, 550, "5.7.606");
  outlook_blocked.tls = Tls(true, false);
  MxProbeResult gmail_listed = MxAnswer("gmail.com", SmtpClass::kBlockedByList, MxStage::kBanner, 554, "");
  gmail_listed.zone = "zen.spamhaus.org";  // no tls: STARTTLS not offered
  MxProbeResult outlook_failed = MxAnswer("outlook.com", SmtpClass::kError, MxStage::kConnect, 0, "");
  outlook_failed.error = "connection refused";
  outlook_failed.tls = Tls(false, false);  // a session without a reply says nothing about TLS
  MxProbeResult gmail_grey = MxAnswer("gmail.com", SmtpClass::kGreylist, MxStage::kRcpt, 451, "4.7.1");
  gmail_grey.tls = Tls(false, false);
  MxProbeResult outlook_other = MxAnswer("outlook.com", SmtpClass::kOther, MxStage::kRcpt, 550, "5.1.1");
  outlook_other.tls = Tls(true, true);
  return {WithMx("192.0.2.0", {gmail_ok, outlook_blocked}), WithMx("192.0.2.1", {gmail_listed, outlook_failed}),
          WithMx("192.0.2.2", {gmail_grey, outlook_other})};
}

Lines Sorted(Lines lines) {
  std::sort(lines.begin(), lines.end());
  return lines;
}

TEST_CASE("MetricsExporter: MX series for every answer but ok, counts per class and STARTTLS outcome",
          "[metrics][mx]") {
  SnapshotBuilder b(MxConfig());
  for (const IpReport& r : MxReports()) b.Add(r);
  DnsStats dns;
  MetricsExporter exporter(dns);
  exporter.Publish(b.Finish(1, 1700000000));
  const std::string text = Serialize(exporter);
  INFO(text);

  CHECK(Sorted(Series(text, "repwatch_mx_not_ok")) ==
        Sorted(Lines{
            R"(repwatch_mx_not_ok{class="reputation_block",code="550",domain="outlook.com",enhanced="5.7.606",ip="192.0.2.0",range="acme",stage="rcpt",zone=""} 1)",
            R"(repwatch_mx_not_ok{class="blocked_by_list",code="554",domain="gmail.com",enhanced="",ip="192.0.2.1",range="acme",stage="banner",zone="zen.spamhaus.org"} 1)",
            R"(repwatch_mx_not_ok{class="error",code="",domain="outlook.com",enhanced="",ip="192.0.2.1",range="acme",stage="connect",zone=""} 1)",
            R"(repwatch_mx_not_ok{class="greylist",code="451",domain="gmail.com",enhanced="4.7.1",ip="192.0.2.2",range="acme",stage="rcpt",zone=""} 1)",
            R"(repwatch_mx_not_ok{class="other",code="550",domain="outlook.com",enhanced="5.1.1",ip="192.0.2.2",range="acme",stage="rcpt",zone=""} 1)",
        }));

  // Every class of every (range, domain) probed, zeros included; v6pool has mx_probe = false.
  Lines want_ips;
  for (const char* domain : {"gmail.com", "outlook.com"})
    for (const char* cls : {"ok", "blocked_by_list", "reputation_block", "rate_limit", "greylist", "policy_failure",
                            "other", "error"}) {
      const std::string d = domain, c = cls;
      const bool one = (d == "gmail.com" && (c == "ok" || c == "blocked_by_list" || c == "greylist")) ||
                       (d == "outlook.com" && (c == "reputation_block" || c == "error" || c == "other"));
      want_ips.push_back("repwatch_mx_ips{class=\"" + c + "\",domain=\"" + d + "\",range=\"acme\"} " + (one ? "1" : "0"));
    }
  REQUIRE(want_ips.size() == 16);
  CHECK(Sorted(Series(text, "repwatch_mx_ips")) == Sorted(want_ips));

  CHECK(Sorted(Series(text, "repwatch_mx_tls_ips")) ==
        Sorted(Lines{
            R"(repwatch_mx_tls_ips{domain="gmail.com",range="acme",tls="ok"} 1)",
            R"(repwatch_mx_tls_ips{domain="gmail.com",range="acme",tls="name_mismatch"} 0)",
            R"(repwatch_mx_tls_ips{domain="gmail.com",range="acme",tls="failed"} 1)",
            R"(repwatch_mx_tls_ips{domain="gmail.com",range="acme",tls="not_offered"} 1)",
            R"(repwatch_mx_tls_ips{domain="outlook.com",range="acme",tls="ok"} 1)",
            R"(repwatch_mx_tls_ips{domain="outlook.com",range="acme",tls="name_mismatch"} 1)",
            R"(repwatch_mx_tls_ips{domain="outlook.com",range="acme",tls="failed"} 0)",
            R"(repwatch_mx_tls_ips{domain="outlook.com",range="acme",tls="not_offered"} 0)",
        }));
  CHECK(text.find("v6pool\",tls=") == std::string::npos);
}

TEST_CASE("MetricsExporter: config reload outcome and time, once the daemon reports them", "[metrics][reload]") {
  DnsStats dns;
  MetricsExporter exporter(dns);
  std::string text = Serialize(exporter);
  CHECK(text.find("repwatch_config_") == std::string::npos);  // `check` and tests: no such families

  exporter.SetConfigReload(true, 1790000000);
  text = Serialize(exporter);
  INFO(text);
  CHECK(Series(text, "repwatch_config_last_reload_successful") == Lines{"repwatch_config_last_reload_successful 1"});
  CHECK(Series(text, "repwatch_config_last_reload_success_timestamp_seconds") ==
        Lines{"repwatch_config_last_reload_success_timestamp_seconds 1790000000"});
  CHECK_THAT(text, Catch::Contains("# TYPE repwatch_config_last_reload_successful gauge"));
  CHECK_THAT(text, Catch::Contains("# TYPE repwatch_config_last_reload_success_timestamp_seconds gauge"));

  // A failed reload: 0, and the time stays that of the config still running.
  exporter.SetConfigReload(false, 1790000000);
  text = Serialize(exporter);
  CHECK(Series(text, "repwatch_config_last_reload_successful") == Lines{"repwatch_config_last_reload_successful 0"});
  CHECK(Series(text, "repwatch_config_last_reload_success_timestamp_seconds") ==
        Lines{"repwatch_config_last_reload_success_timestamp_seconds 1790000000"});
}

TEST_CASE("SnapshotBuilder: MX counts are seeded only when the probe runs", "[metrics][mx]") {
  DnsStats dns;
  MetricsExporter exporter(dns);
  exporter.Publish(SnapshotBuilder(MxConfig()).Finish(1, 1700000000));
  const std::string text = Serialize(exporter);
  INFO(text);
  CHECK(Series(text, "repwatch_mx_not_ok").empty());
  const Lines ips = Series(text, "repwatch_mx_ips");
  CHECK(ips.size() == 16);
  CHECK(std::count(ips.begin(), ips.end(), R"(repwatch_mx_ips{class="rate_limit",domain="outlook.com",range="acme"} 0)") ==
        1);
  for (const std::string& line : ips) CHECK_THAT(line, Catch::Contains("range=\"acme\"") && Catch::EndsWith("} 0"));
  CHECK(Series(text, "repwatch_mx_tls_ips").size() == 8);

  Config off = MxConfig();
  off.mx_probe.enabled = false;
  exporter.Publish(SnapshotBuilder(off).Finish(1, 1700000000));
  const std::string none = Serialize(exporter);
  CHECK(Series(none, "repwatch_mx_ips").empty());
  CHECK(Series(none, "repwatch_mx_tls_ips").empty());
}

TEST_CASE("SnapshotBuilder::AddStored brings the MX series back after a restart", "[metrics][mx]") {
  SnapshotBuilder restored(MxConfig());
  const std::vector<IpReport> reports = MxReports();
  restored.AddStored(reports[0]);
  IpReport moved = reports[1];
  moved.ip = IpAddress::Parse("198.51.100.1").value();  // left its range: skipped
  restored.AddStored(moved);
  DnsStats dns;
  MetricsExporter exporter(dns);
  exporter.Publish(restored.FinishRestored(1700000000));
  const std::string text = Serialize(exporter);
  INFO(text);
  CHECK(Series(text, "repwatch_mx_not_ok") ==
        Lines{R"(repwatch_mx_not_ok{class="reputation_block",code="550",domain="outlook.com",enhanced="5.7.606",ip="192.0.2.0",range="acme",stage="rcpt",zone=""} 1)"});
  const Lines ips = Series(text, "repwatch_mx_ips");
  CHECK(std::count(ips.begin(), ips.end(), R"(repwatch_mx_ips{class="ok",domain="gmail.com",range="acme"} 1)") == 1);
  CHECK(std::count(ips.begin(), ips.end(),
                   R"(repwatch_mx_ips{class="reputation_block",domain="outlook.com",range="acme"} 1)") == 1);
  CHECK(std::count(ips.begin(), ips.end(), R"(repwatch_mx_ips{class="error",domain="outlook.com",range="acme"} 0)") ==
        1);
  CHECK(Series(text, "repwatch_targets").empty());
}

TEST_CASE("SnapshotBuilder: warm-up series only for addresses on a ramp; AddStored brings them back",
          "[metrics][warmup]") {
  Config config;
  config.ranges = {testing::Range("new", {"192.0.2.0/30"})};
  config.ranges[0].warmup_start = "2026-11-23";  // warm-up on: the counts per signal are seeded
  auto report = [](const char* ip, std::optional<WarmupReport> w, VolumeReport v) {
    IpReport r;
    r.ip = IpAddress::Parse(ip).value();
    r.range = "new";
    r.warmup = std::move(w);
    r.volume = v;
    return r;
  };
  WarmupReport ahead{"double-30", "2026-11-23", "config", 0, 50, 181, 3.62, WarmupSignal::kAhead, "181 sent"};
  WarmupReport done{"double-30", "2026-10-01", "config", 53, 0, 900, 0, WarmupSignal::kCompleted, "complete"};
  const std::vector<IpReport> reports = {report("192.0.2.1", ahead, {120, 40, 21}),
                                         report("192.0.2.2", done, {900, 0, 0}),
                                         report("192.0.2.3", std::nullopt, {5, 0, 0})};
  DnsStats dns;
  for (const bool restored : {false, true}) {
    INFO((restored ? "start-up snapshot" : "cycle snapshot"));
    SnapshotBuilder b(config);
    for (const IpReport& r : reports) restored ? b.AddStored(r) : b.Add(r);
    MetricsExporter exporter(dns);
    exporter.Publish(restored ? b.FinishRestored(1700000000) : b.Finish(1.0, 1700000000));
    const std::string text = Serialize(exporter);
    INFO(text);
    // Per address: only 192.0.2.1, on its ramp (completed and not warming: none).
    CHECK(Series(text, "repwatch_warmup_day") ==
          Lines{R"(repwatch_warmup_day{ip="192.0.2.1",range="new",schedule="double-30"} 0)"});
    CHECK(Series(text, "repwatch_warmup_allowance") == Lines{R"(repwatch_warmup_allowance{ip="192.0.2.1",range="new"} 50)"});
    CHECK(Series(text, "repwatch_warmup_sent") == Lines{R"(repwatch_warmup_sent{ip="192.0.2.1",range="new"} 181)"});
    CHECK(Series(text, "repwatch_warmup_ratio") == Lines{R"(repwatch_warmup_ratio{ip="192.0.2.1",range="new"} 3.62)"});
    CHECK(Series(text, "repwatch_warmup_signal") ==
          Lines{R"(repwatch_warmup_signal{ip="192.0.2.1",range="new",signal="ahead"} 1)"});
    const Lines ips = Series(text, "repwatch_warmup_ips");
    CHECK(std::count(ips.begin(), ips.end(), R"(repwatch_warmup_ips{range="new",signal="ahead"} 1)") == 1);
    CHECK(std::count(ips.begin(), ips.end(), R"(repwatch_warmup_ips{range="new",signal="completed"} 1)") == 1);
    CHECK(std::count(ips.begin(), ips.end(), R"(repwatch_warmup_ips{range="new",signal="ok"} 0)") == 1);
    CHECK(Series(text, "repwatch_volume_today") ==
          Lines{R"(repwatch_volume_today{outcome="bounced",range="new"} 21)",
                R"(repwatch_volume_today{outcome="deferred",range="new"} 40)",
                R"(repwatch_volume_today{outcome="delivered",range="new"} 1025)"});
  }
}

TEST_CASE("MetricsExporter: log-source series from the ingester's statistics, gone when cleared", "[metrics][volume]") {
  DnsStats dns;
  MetricsExporter exporter(dns);
  SourceStats mail;
  mail.name = "mx1-postfix";
  mail.events = 12;
  mail.ignored = 30;
  mail.malformed = 2;
  mail.long_lines = 1;
  mail.rotations = 3;
  mail.truncations = 1;
  SourceStats acct;
  acct.name = "/var/log/pmta/acct.csv";
  acct.last_error = "cannot open /var/log/pmta/acct.csv: Permission denied";
  int calls = 0;
  exporter.SetVolumeSources([&] {
    ++calls;
    return std::vector<SourceStats>{mail, acct};
  });
  std::string text = Serialize(exporter);
  INFO(text);
  CHECK(calls == 1);  // read at scrape time
  CHECK(Series(text, "repwatch_volume_log_lines_total") ==
        Lines{R"(repwatch_volume_log_lines_total{source="mx1-postfix",result="counted"} 12)",
              R"(repwatch_volume_log_lines_total{source="mx1-postfix",result="ignored"} 30)",
              R"(repwatch_volume_log_lines_total{source="mx1-postfix",result="malformed"} 2)",
              R"(repwatch_volume_log_lines_total{source="mx1-postfix",result="too_long"} 1)",
              R"(repwatch_volume_log_lines_total{source="/var/log/pmta/acct.csv",result="counted"} 0)",
              R"(repwatch_volume_log_lines_total{source="/var/log/pmta/acct.csv",result="ignored"} 0)",
              R"(repwatch_volume_log_lines_total{source="/var/log/pmta/acct.csv",result="malformed"} 0)",
              R"(repwatch_volume_log_lines_total{source="/var/log/pmta/acct.csv",result="too_long"} 0)"});
  CHECK(Series(text, "repwatch_volume_log_rotations_total") ==
        Lines{R"(repwatch_volume_log_rotations_total{source="mx1-postfix",kind="rename"} 3)",
              R"(repwatch_volume_log_rotations_total{source="mx1-postfix",kind="truncate"} 1)",
              R"(repwatch_volume_log_rotations_total{source="/var/log/pmta/acct.csv",kind="rename"} 0)",
              R"(repwatch_volume_log_rotations_total{source="/var/log/pmta/acct.csv",kind="truncate"} 0)"});
  CHECK(Series(text, "repwatch_volume_log_up") ==
        Lines{R"(repwatch_volume_log_up{source="mx1-postfix"} 1)",
              R"(repwatch_volume_log_up{source="/var/log/pmta/acct.csv"} 0)"});
  CHECK_THAT(text, Catch::Contains("# TYPE repwatch_volume_log_lines_total counter"));
  CHECK_THAT(text, Catch::Contains("# TYPE repwatch_volume_log_up gauge"));

  exporter.SetVolumeSources({});
  text = Serialize(exporter);
  CHECK(text.find("repwatch_volume_log_") == std::string::npos);
  CHECK(calls == 1);
}

}  // namespace
}  // namespace repwatch
