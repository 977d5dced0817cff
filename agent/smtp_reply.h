// SMTP replies and the catalogue that classifies them (domain-facts §4).
//
// One classifier serves the MX probe (a reply read off the wire), the
// `repwatch classify` command (a reply or bounce line pasted by a person) and log
// ingestion (a deferral or bounce text from an MTA's log). The rules of §4.3 are
// applied in order, case-insensitively, to the normalised text: continuation
// prefixes ("421-4.7.28 ") stripped, lines joined, whitespace collapsed. The rules
// see the enhanced code in front of that text, so code tokens such as "4.7.28" or
// "5.7.6xx" in rules 6 and 7 match it.
//
// Two readings of §4.3 beyond its literal text (domain-facts lists both signals):
//  - Comcast's BL000000 (no list bit set) is Comcast's own block: rule 3 is not
//    applied to a text carrying it, so it reaches rule 7 even if it says "DNSBLs".
//  - Rule 5's words are not taken from a reply that carries a receiver's own
//    verdict code named by rules 6 / 7 (X.7.28, 4.7.650/651, 4.7.500, 5.7.6xx,
//    RP-/SC-/DY-/OU-00x, S3140/S3150, TSxx, RTR:, RLY:Bx, DYN:T1, CON:B1,
//    BL000000); rule 5's enhanced codes still count. Gmail's "unusual rate of
//    unsolicited email originating from your DKIM domain" (4.7.28) is a rate
//    limit, and every Outlook.com SC-/DY-/OU-00x text opens with "Mail rejected
//    by Outlook.com for policy reasons": read literally, rule 7's SC-00x and
//    OU-002 tokens could never fire.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace repwatch {

// What a reply says about the sending IP.
enum class SmtpClass {
  kOk,               // 2xx, or 3xx at the transaction stage
  kBlockedByList,    // a third-party block list is named or implied (zone extracted when named)
  kReputationBlock,  // 5xx: the receiver's own reputation verdict (banned IP, RTR:, SC-00x, ...)
  kRateLimit,        // 4xx: slow down (4.7.28, TSS04, 4.7.650, RP-00x, "try again later", ...)
  kGreylist,         // 4xx greylisting
  kPolicyFailure,    // authentication / rDNS / allow-list policy (X.7.2x, SPF, DKIM, PTR, ...)
  kOther,            // anything else (5.1.1 user unknown, 5.2.2 mailbox full, ...): not an IP problem
  kError,            // no reply to classify: connection refused, timeout, TLS failure (never a reputation verdict)
};
std::string_view SmtpClassName(SmtpClass c);  // "ok" | "blocked_by_list" | ... | "other" | "error"
std::optional<SmtpClass> ParseSmtpClass(std::string_view name);

// One whole reply as read off the wire: the code of its last line and the text of
// every line with its "NNN-" / "NNN " prefix removed (enhanced codes are kept).
struct SmtpReply {
  int code = 0;                     // 0 when there was no valid reply
  std::vector<std::string> lines;   // text after the code and separator, in order
};

// Feeds raw lines (CRLF already removed) into a reply. Returns false when `line`
// does not start with a three-digit code 200..599 followed by '-', ' ' or end of
// line, or when its code differs from the lines before it; `reply` is then
// unchanged. Otherwise sets *last_line (when not null) to whether this was the
// last line ("NNN " or a bare "NNN").
bool AppendReplyLine(SmtpReply& reply, std::string_view line, bool* last_line);

struct ReplyClassification {
  SmtpClass cls = SmtpClass::kOther;
  int code = 0;                 // the basic reply code, 0 when none was found
  std::string enhanced;         // "X.Y.Z" (RFC 3463) when present, else empty
  std::string zone;             // the block list named by the reply ("zen.spamhaus.org", lowercased), else empty;
                                // set for blocked_by_list and for receiver_dnsbl_error (whose list failed)
  std::string reason;           // the sub-reason: "receiver_dnsbl_error", "rdns", "auth", "recipient_policy", ... or empty
  std::string text;             // the normalised text the rules ran on (code and enhanced code stripped)
};

// Classifies a reply read off the wire. `transaction_stage`: a 3xx is ok (354 after
// DATA, 334 in AUTH); outside a transaction a 3xx is `other` ("unexpected_3xx").
// A reply with no valid code (code outside 200..599, e.g. 0) is `error`.
ReplyClassification ClassifyReply(const SmtpReply& reply, bool transaction_stage = true);

// Classifies free text: a reply (possibly multi-line, or flattened by an MTA's log
// into "421-4.7.28 ... 421-4.7.28 ... 421 4.7.28 ..."), or a whole bounce / log line
// in which the reply starts somewhere inside ("... said: 550 5.7.606 Access denied ...").
// The first "NNN " / "NNN-" with NNN in 200..599 that is followed by an enhanced code
// or text is taken as the reply, preferring one after "said:", then one at the start
// of a line or after ':' ';' '(', then one followed by an enhanced code; never a part
// of an IP address ("[142.250.1.26]") or a port (":25", "port 587"), and a 3xx only
// in those preferred places. Postfix's " (in reply to ... command)" and a closing
// parenthesis opened before the reply are dropped. A 3xx counts as the transaction stage.
// With no code, the class comes from the text alone: the rules that test the code
// class (1: ok, 4: greylist 4xx, 6: rate_limit 4xx, 7: reputation_block 5xx) cannot
// fire, those that do not (2: receiver_dnsbl_error, 3: blocked_by_list, 5:
// policy_failure) can; code is 0, enhanced empty, and the result is never `error`.
ReplyClassification ClassifyText(std::string_view text);

}  // namespace repwatch
