// Parsers for MTA delivery logs (domain-facts §6), one line at a time. Each turns
// a delivery, deferral or bounce line into a VolumeEvent and ignores everything
// else (arrivals, other daemons, queue-manager lines). They are hand-written over
// string_view (no regex): ingestion must keep up with busy MTAs (the benchmark
// target is 200,000 lines/s on one core for Postfix and Exim).
//
//  - postfix: syslog lines "<ts> <host> <tag>/smtp[pid]: <qid>: to=<rcpt>, relay=<mx>[ip]:port, ...,
//    dsn=X.Y.Z, status=sent|deferred|bounced (<reply>)". Postfix never logs the source
//    address: it comes from `tags`, keyed by the syslog tag ("postfix-ip2" of
//    "postfix-ip2/smtp[123]") or by the service name ("ip2out" of "postfix/ip2out/smtp[123]"
//    or "smtp-ip2" of "postfix/smtp-ip2[123]"). A delivery line whose tag maps to no
//    address is ignored (counted as unmapped). Timestamps: RFC 3164 "Mar  4 10:11:12"
//    (year from `now`, a date in the future means last year) or RFC 3339 "2025-03-04T10:11:12.123+00:00".
//  - exim: "<date> <time> <msgid> => | -> | ** | == <rcpt> ... H=<host> [ip]:port I=[ip]:port ...";
//    `=>`/`->` delivered, `**` bounced, `==` deferred; the source is I=[...] (log_selector
//    +outgoing_interface); a line without I= is ignored (unknown source).
//  - kumomta: one JSON object per line; type Delivery -> delivered, TransientFailure -> deferred,
//    Bounce -> bounced, others ignored; source_address.address "ip:port" or "[v6]:port";
//    recipient's domain; response.code/enhanced_code/content as the reply.
//  - powermta: accounting CSV with a header line (columns by name; repeated headers
//    allowed, quoted fields with commas and doubled quotes); type d -> delivered,
//    b -> bounced, t/tq -> deferred (also dsnAction: relayed/delivered, failed, delayed);
//    dlvSourceIp, rcpt, timeLogged, dsnStatus/dsnDiag as the reply.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "agent/volume.h"

namespace repwatch {

enum class LogFormat { kPostfix, kExim, kKumoMta, kPowerMta };
std::string_view LogFormatName(LogFormat f);  // "postfix" | "exim" | "kumomta" | "powermta"
std::optional<LogFormat> ParseLogFormat(std::string_view name);

enum class LineKind {
  kEvent,      // *out was filled
  kIgnored,    // a well-formed line that is not a delivery attempt (or, postfix, an unmapped tag)
  kMalformed,  // a line this format cannot read (garbage, truncated, a bad address)
};

class LineParser {
 public:
  virtual ~LineParser() = default;
  // Parses one line (no trailing newline). Stateful: the PowerMTA parser remembers
  // the last header. `now_unix` dates syslog timestamps that carry no year.
  virtual LineKind Parse(std::string_view line, long long now_unix, VolumeEvent* out) = 0;
};

// `postfix_tags`: syslog tag or service name -> source address (postfix only).
std::unique_ptr<LineParser> MakeLineParser(LogFormat format, const std::map<std::string, IpAddress>& postfix_tags = {});

}  // namespace repwatch
