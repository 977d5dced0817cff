// RFC 7208 check_host(): may an IP address send mail for a domain? (domain-facts §2.)
//
// Three parts, each usable on its own:
//  - the macro parser and expander (RFC 7208 §7): spf::ParseMacroString / spf::ExpandMacros;
//  - the record parser (§4.5, §4.6, §5, §6): spf::ParseRecord finds every syntax error of a
//    record up front, as §4.6 requires, before any term is evaluated;
//  - SpfEvaluator, which runs check_host() asynchronously on the Resolver seam.
//
// The evaluator asks TXT (never the old type-99 SPF RR), A, AAAA, MX and PTR, each through
// FollowCnames, so a CNAME answered alone is followed and a CNAME loop is an error, not a hang.
// Limits (§4.6.4): at most 10 DNS-querying terms (include, a, mx, ptr, exists, redirect) per
// evaluation, counted across nested includes and redirects in evaluation order; at most 2
// void lookups; at most 10 MX names per mx (more -> permerror); at most the first 10 PTR names
// per ptr or %{p}. Only the query a term makes itself (a/exists: A or AAAA, mx: MX, ptr: PTR)
// can be a void lookup; the address lookups behind mx and ptr are not counted, so a sender's
// PTR records cannot push a domain's evaluation into permerror.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/ip.h"
#include "agent/resolver.h"
#include "agent/status.h"

namespace repwatch {

enum class SpfResult { kNone, kNeutral, kPass, kFail, kSoftfail, kTemperror, kPermerror };

// "none", "neutral", "pass", "fail", "softfail", "temperror", "permerror".
std::string_view SpfResultName(SpfResult r);

inline constexpr int kSpfMaxDnsLookups = 10;  // §4.6.4: terms that query DNS
inline constexpr int kSpfMaxVoidLookups = 2;  // §4.6.4: NXDOMAIN / empty answers
inline constexpr int kSpfMaxMxNames = 10;     // §4.6.4: MX records behind one mx
inline constexpr int kSpfMaxPtrNames = 10;    // §4.6.4: PTR names used by ptr and %{p}

struct SpfRequest {
  IpAddress ip;                      // IPv4-mapped already normalised to IPv4 by IpAddress
  std::string domain;                // the domain whose policy is checked
  std::string sender;                // MAIL FROM ("" -> postmaster@helo per RFC 7208 §2.4)
  std::string helo;                  // for %{h}
  std::string receiver = "unknown";  // %{r}, exp only
  int64_t timestamp = 0;             // %{t}, exp only (unix seconds)
};

struct SpfOutcome {
  SpfResult result = SpfResult::kNone;
  // For a person to act on: names the record's domain and the deciding term, and for nested
  // records the chain that led there, e.g.
  //   "ip4:192.0.2.0/24 matched in acme.example"
  //   "-all in acme.example: 198.51.100.7 not listed"
  //   "include:_spf.esp.example -> permerror: more than 10 DNS lookups (11th: a:x.example)"
  //   "no SPF record at acme.example", "2 SPF records at acme.example"
  //   "TXT lookup for acme.example: timeout"
  //   "syntax error in _spf.esp.example: unknown mechanism 'ip5:1.2.3.4'"
  std::string reason;
  std::string explanation;  // the expanded exp= text, for fail only ("" if none or unusable)
  std::string matched;      // the term that decided, as written ("" for none / errors / default)
  // Pass-qualified terms authorising (nearly) the whole Internet, in any record fetched during
  // this evaluation, as "<term> in <domain>": +all / all, ip4 with prefix <= 8, ip6 with prefix <= 16.
  std::vector<std::string> permissive;
  int dns_lookups = 0;  // DNS-querying terms counted toward the limit of 10
  int void_lookups = 0;
};

namespace spf {

// ---- Macros (RFC 7208 §7) ----------------------------------------------------------------

// Where a macro-string appears: domain-specs and modifier values may use the letters
// s l o d i p h v; the explanation text fetched by exp= may also use c r t, and spaces.
enum class MacroContext { kDomainSpec, kExplanation };

struct MacroToken {
  enum class Kind {
    kLiteral,  // `text` as written
    kEscape,   // %% %_ %- ; `text` is what it stands for ("%", " ", "%20")
    kMacro,    // %{letter digits r delimiters}
  };
  Kind kind = Kind::kLiteral;
  std::string text;
  char letter = 0;          // lowercase macro letter
  bool url_escape = false;  // the letter was written uppercase
  int keep = 0;             // rightmost parts to keep; 0 = all
  bool reverse = false;
  std::string delimiters;  // "" = "."
};

struct MacroString {
  std::vector<MacroToken> tokens;
  bool uses_p = false;  // needs the validated PTR name (costs DNS lookups)
  bool empty() const { return tokens.empty(); }
};

// Parses `text` (no surrounding spaces). Errors name the offending piece, e.g.
// "'%(' is not a macro (use %{...}, %%, %_ or %-)" or "macro letter 'r' is only allowed in exp text".
Result<MacroString> ParseMacroString(std::string_view text, MacroContext context);

// Parses a domain-spec: a macro-string that ends in a macro or in "." plus a valid top label
// (§7.1), so "museum", "example.com:8080", "111.222.33.44" and "" are errors.
Result<MacroString> ParseDomainSpec(std::string_view text);

// The values macros expand to. `ip` selects %{i} %{c} %{v}; `ptr` is the validated name for
// %{p} ("unknown" when none validated), needed only when MacroString::uses_p.
struct MacroValues {
  std::string sender;         // %{s}: local@domain after the postmaster substitution
  std::string local;          // %{l}
  std::string sender_domain;  // %{o}
  std::string domain;         // %{d}: the domain whose record is being evaluated
  IpAddress ip;               // %{i} (IPv6: 32 dot-separated nibbles, uppercase hex as the
                              // RFC 7208 test suite expects), %{c}, %{v}
  std::string helo;           // %{h}
  std::string ptr = "unknown";
  std::string receiver = "unknown";
  int64_t timestamp = 0;
};

// Expands every token. An uppercase letter URL-escapes the value (all but A-Z a-z 0-9 - . _ ~).
std::string ExpandMacros(const MacroString& macro, const MacroValues& values);

// Turns an expanded domain-spec into a name to query (§7.3): drops one trailing dot and, past
// 253 characters, whole labels from the left. nullopt when no valid DNS name results (an empty
// label, a label over 63 characters, nothing left), which callers treat as a name that does not exist.
std::optional<std::string> ToQueryName(std::string expanded);

// check_host()'s initial test (§4.3): a multi-label name, labels of 1-63 characters, at most
// 253 characters (one trailing dot allowed), ending in a valid top label. "[1.2.3.4]",
// "localhost" and "a..example.com" are not domains; the result for them is none.
bool IsValidDomain(std::string_view domain);

// ---- Records (RFC 7208 §4.5, §4.6, §5, §6) -------------------------------------------------

// §4.5: "v=spf1" alone or followed by a space, case-insensitively ("v=spf10" is not a record).
bool IsSpfRecord(std::string_view text);

enum class Mechanism { kAll, kInclude, kA, kMx, kPtr, kIp4, kIp6, kExists };

struct Term {
  std::string text;                        // as written, qualifier included, for reasons
  SpfResult qualifier = SpfResult::kPass;  // + pass, - fail, ~ softfail, ? neutral
  Mechanism mechanism = Mechanism::kAll;
  MacroString domain;                 // include/exists: always; a/mx/ptr: optional (empty = current domain)
  int cidr4 = 32;                     // a, mx, ip4
  int cidr6 = 128;                    // a, mx, ip6
  std::array<uint8_t, 16> network{};  // ip4 (first 4 bytes) / ip6, as written (host bits may be set)

  bool QueriesDns() const;  // counts toward the limit of 10
};

struct SpfRecord {
  std::vector<Term> terms;  // mechanisms, in order
  std::optional<MacroString> redirect;
  std::optional<MacroString> exp;
  std::string redirect_text;  // "redirect=..." as written
};

// Parses a whole record (starting "v=spf1"). Any error anywhere makes the record unusable
// (§4.6): unknown mechanisms, bad CIDR (/33, /032, ip4 with //), a bad address, a bad or empty
// domain-spec, a bad macro, redirect or exp twice, a control or non-ASCII character.
// Unknown modifiers (name=macro-string) are checked and ignored.
Result<SpfRecord> ParseRecord(std::string_view text);

}  // namespace spf

// Runs check_host() on `resolver`. done() runs exactly once, from a Resolver::Poll(), never
// from inside CheckHost (a domain that fails the initial test is answered none after a
// query for "invalid", which RFC 6761 reserves and resolvers answer locally).
//
// Hostile data never crashes or hangs it: records are parsed in one pass with no recursion,
// include/redirect loops end at the lookup limit, CNAME loops are lookup errors, expansions
// longer than 253 characters are truncated from the left, and names that cannot be queried
// count as void lookups that match nothing.
//
// DNS failures (timeout, SERVFAIL, REFUSED, network, CNAME loop) give temperror, except where
// the RFC says to carry on: the PTR lookup of ptr (no match), address lookups validating PTR
// names (that name is skipped), and everything about exp (no explanation). Several address
// lookups of one term (mx hosts, PTR names) go out together; their answers are then read in
// record order, so results do not depend on which answer comes first.
class SpfEvaluator {
 public:
  explicit SpfEvaluator(Resolver& resolver) : resolver_(resolver) {}
  void CheckHost(const SpfRequest& request, std::function<void(SpfOutcome)> done);

 private:
  Resolver& resolver_;
};

}  // namespace repwatch
