// What checks produce: typed results, one section per check kind. Checks fill
// these; the state store, the JSON printer and the metrics exporter read them.
// Nothing here knows about metrics, HTTP or SQL.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/ip.h"
#include "agent/smtp_reply.h"
#include "checks/warmup_schedule.h"

namespace repwatch {

// Every lookup ends in one of three ways; `error` ("could not tell") never raises
// nor clears anything downstream.
enum class Verdict { kOk, kProblem, kError };

enum class DnsblStatus { kClean, kListed, kError };
std::string_view DnsblStatusName(DnsblStatus s);  // "clean" | "listed" | "error"

struct DnsblZoneResult {
  std::string zone;                   // the zone label as configured ("{key}" never expanded)
  DnsblStatus status = DnsblStatus::kError;
  bool allowlist = false;             // listed on an allow list: a positive signal, not a problem
  std::vector<std::string> codes;     // every A value kept, dotted, in answer order
  std::vector<std::string> meanings;  // one per code
  std::string txt;                    // TXT reason for listed IPs (strings joined), may be empty
  std::string error;                  // why status is error, for people
  std::string delist_url;             // "{ip}" already substituted; may be empty
  Verdict verdict() const;            // listed on a block list -> kProblem
};

enum class ZoneHealth { kOk, kNotAnswering, kListsEverything, kError };
std::string_view ZoneHealthName(ZoneHealth h);  // "ok" | "not_answering" | "lists_everything" | "error"

struct ZoneHealthReport {
  std::string zone;
  ZoneHealth health = ZoneHealth::kOk;        // worst of the families probed
  std::optional<ZoneHealth> ipv4;             // per family probed
  std::optional<ZoneHealth> ipv6;
  std::string detail;                         // what the test points answered, when not ok
  ZoneHealth ForFamily(Family f) const;       // health that applies to addresses of family f
};

// Forward-confirmed reverse DNS (domain-facts §3) and HELO.
enum class FcrdnsResult { kPass, kFail, kNoPtr, kTempError };
std::string_view FcrdnsResultName(FcrdnsResult r);  // "pass" | "fail" | "no_ptr" | "temperror"

// What is wrong with the HELO name, each named on its own.
enum class HeloProblem { kNotFqdn, kNoAddress, kWrongAddress, kPtrMismatch, kTempError };
std::string_view HeloProblemName(HeloProblem p);  // "not_fqdn" | "no_address" | "wrong_address" | "ptr_mismatch" | "temperror"

struct HeloReport {
  std::string name;                    // as announced: the range's helo ({ptr} filled in) or the PTR name
  std::vector<HeloProblem> problems;   // empty: the HELO is fine
  std::string detail;                  // the problems in words
  bool ok() const { return problems.empty(); }
};

struct FcrdnsReport {
  FcrdnsResult result = FcrdnsResult::kTempError;
  std::vector<std::string> ptr;        // PTR names (lowercase, no trailing dot), at most 10
  std::string confirmed;               // the PTR name whose forward lookup gave the address back
  bool generic = false;                // a PTR name looks like a dynamic / generic pool name
  std::string generic_name;            // the PTR name judged generic
  std::string generic_reason;          // which name, and why
  std::string expected_ptr;            // the range's pattern, empty when none is set
  bool expected_ptr_ok = true;         // some PTR name matches the pattern
  std::optional<HeloReport> helo;      // absent when there is no HELO name to check
  std::string reason;                  // why the result is not pass, for people

  // A problem when the result is fail / no_ptr, the name is generic or unexpected,
  // or the HELO has a problem other than temperror; error when the result is temperror.
  Verdict verdict() const;
};

struct SpfDomainResult {
  std::string domain;
  std::string result;                  // RFC 7208 result name: "pass", "fail", ..., "permerror"
  std::string reason;                  // what decided it, for people
  std::vector<std::string> permissive; // terms authorising the whole Internet, "<term> in <domain>"
  Verdict verdict() const;             // pass -> ok, temperror -> error, anything else -> problem
};

// MX probe (checks/mx_probe.h): one SMTP session from the address to one receiver.
// The step whose reply (or failure) decided the result.
enum class MxStage { kConnect, kBanner, kEhlo, kStarttls, kMail, kRcpt };
std::string_view MxStageName(MxStage s);  // "connect" | "banner" | "ehlo" | "starttls" | "mail" | "rcpt"
std::optional<MxStage> ParseMxStage(std::string_view name);

struct MxTlsReport {
  bool ok = false;                     // the handshake succeeded
  std::string protocol;                // "TLSv1.3"
  bool name_match = false;             // the certificate names the MX host (RFC 6125); the chain is not judged
  std::string peer_name;               // the certificate's first DNS name or CN
  std::string error;                   // why not ok: "454 4.7.0 TLS not available", "handshake: ..."
};

struct MxProbeResult {
  std::string domain;                  // the receiver domain, as configured
  std::string host;                    // the MX host the session was with (or the first one tried)
  std::string address;                 // its address, empty when none was reached
  MxStage stage = MxStage::kConnect;
  int code = 0;                        // the deciding reply's code; 0 without a reply
  std::string enhanced;                // "5.7.606", empty when absent
  SmtpClass cls = SmtpClass::kError;
  std::string zone;                    // the block list the reply named (blocked_by_list)
  std::string reason;                  // the classifier's sub-reason
  std::string text;                    // the normalised reply text (codes removed)
  std::string error;                   // for class error: what failed ("connection refused", "not a local address", ...)
  std::optional<MxTlsReport> tls;      // absent when STARTTLS was not offered (or is turned off)
  long long probed_at = 0;             // Unix seconds when the session ran
  bool reused = false;                 // not probed this cycle: min_interval has not passed since probed_at

  // blocked_by_list, reputation_block, rate_limit, policy_failure -> kProblem;
  // ok and greylist -> kOk (greylisting is the routine first answer to an unknown
  // sender); other (e.g. 5.1.1 for the probe's own recipient) and error -> kError.
  Verdict verdict() const;
};

// Warm-up (checks/warmup.h): today's (UTC) volume, and where the address stands on its ramp.
struct VolumeReport {
  uint64_t delivered = 0, deferred = 0, bounced = 0;
};

struct WarmupReport {
  std::string schedule;
  std::string start;                   // "YYYY-MM-DD", the ramp's day 0
  std::string origin;                  // "config" (warmup_start) | "auto" (first seen sending, or after idle_days)
  int day = 0;                         // today's ramp day
  uint64_t allowance = 0;              // today's
  uint64_t sent = 0;                   // today's attempts so far
  double ratio = 0;                    // sent / allowance
  WarmupSignal signal = WarmupSignal::kOk;
  std::string detail;                  // the numbers behind the signal
  // ahead / backoff -> kProblem for their streams; see AlertTracker.
};

// One address's results from one pass of every enabled check.
struct IpReport {
  IpAddress ip;
  std::string range;
  std::optional<std::vector<DnsblZoneResult>> dnsbl;  // absent when the check is disabled
  std::optional<FcrdnsReport> fcrdns;
  std::optional<std::vector<SpfDomainResult>> spf;    // one per spf_domains entry of the range
  std::optional<std::vector<MxProbeResult>> mx;       // one per [mx_probe] domain; absent when the range is not probed
  std::optional<VolumeReport> volume;                 // absent when the address sent nothing today
  std::optional<WarmupReport> warmup;                 // absent when the address is not warming up
};

// Cycle-level results (not tied to one address).
struct CycleReport {
  std::vector<ZoneHealthReport> zones;
};

}  // namespace repwatch
