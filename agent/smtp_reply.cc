#include "agent/smtp_reply.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>

#include "agent/catalogue.h"
#include "agent/text.h"

namespace repwatch {
namespace {

// One case-insensitive PCRE2 pattern, compiled once. A pattern here is a constant
// of this file, so a compile failure is a build bug: the process aborts with
// PCRE2's message. Subjects are bytes (no PCRE2_UTF): log lines need not be UTF-8.
class Pattern {
 public:
  explicit Pattern(const char* pattern) {
    int error = 0;
    PCRE2_SIZE offset = 0;
    code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern), PCRE2_ZERO_TERMINATED, PCRE2_CASELESS, &error,
                          &offset, nullptr);
    if (code_ == nullptr) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(error, message, sizeof message);
      std::fprintf(stderr, "repwatch: SMTP reply pattern \"%s\" does not compile at %zu: %s (build bug)\n", pattern,
                   static_cast<size_t>(offset), reinterpret_cast<const char*>(message));
      std::abort();
    }
    // JIT is an optimisation: without it (unsupported CPU, no executable memory)
    // pcre2_match falls back to the interpreter with the same results.
    pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE);
  }
  Pattern(const Pattern&) = delete;
  Pattern& operator=(const Pattern&) = delete;

  // The text of capture `group` (0: the whole match) of the first match in
  // `subject`, or nullopt when there is no match or the group did not take part.
  // Match errors (resource limits) count as no match.
  std::optional<std::string_view> Find(std::string_view subject, int group = 0) const {
    std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> md(
        pcre2_match_data_create_from_pattern(code_, nullptr), &pcre2_match_data_free);
    if (!md) return std::nullopt;
    const char* data = subject.data() != nullptr ? subject.data() : "";
    const int rc = pcre2_match(code_, reinterpret_cast<PCRE2_SPTR>(data), subject.size(), 0, 0, md.get(), nullptr);
    if (rc < 0 || group >= rc) return std::nullopt;
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md.get());
    if (ov[2 * group] == PCRE2_UNSET) return std::nullopt;
    return std::string_view(data + ov[2 * group], ov[2 * group + 1] - ov[2 * group]);
  }
  bool In(std::string_view subject) const { return Find(subject).has_value(); }

 private:
  pcre2_code* code_ = nullptr;
};

// The regexes of domain-facts §4.3, in rule order, plus the helpers for zones
// and sub-reasons. Built once, on first use, and never destroyed (threads may
// still classify while the process exits).
struct Rules {
  // Rule 2: the receiver's DNSBL query failed; never our listing.
  Pattern dnsbl_error{
      R"(open resolver|returnc/|127\.255\.255\.|excessive number of queries|query (was )?(blocked|refused))"
      R"(|RPBL_BLOCKED)"};
  // Rule 3: a third-party list is named or implied.
  Pattern list{
      R"(blocked using \S+|listed (at|on|in|by) \S+\.(org|net|com|io)|in a black ?list at|black ?listed (at|by))"
      R"(|spamhaus|spamcop|barracuda(central)?|sorbs|uceprotect|psbl|surriel|mailspike|senderscore|cloudmark)"
      R"(|abuseat|\bcbl\b|\bdnsbls?\b|\brbls?\b|\[BL2\d\]|BL000(?!000)[01]{3})"};
  // The zone named by a rule-3 text (capture 1 or 2).
  Pattern zone{R"(blocked using (\S+)|black ?list at (\S+))"};
  // Comcast's bit field with no list bit set: Comcast's own verdict (see Classify).
  Pattern comcast_own{R"(\bBL000000\b)"};
  // Rule 4.
  Pattern greylist{R"(gr[ae]y-?list)"};
  // Rule 5: by enhanced code (matched against the whole "X.Y.Z") or by text.
  Pattern policy_code{R"(^[245]\.7\.(2[0-7]|29|30|32|40|515)$)"};
  Pattern policy_text{
      R"(\bSPF\b|DKIM|DMARC|PTR|reverse (DNS|hostname)|cannot find your (reverse )?hostname|unauthenticated)"
      R"(|not authenticated|authentication|whitelist|allowlist|not authorized to send|policy reasons|has a policy)"};
  // A receiver's own verdict code, as named by rules 6 and 7 (matched against the
  // subject: the enhanced code, then the text). With one, rule 5's words are not taken.
  Pattern receiver_verdict{
      R"(^([245]\.7\.28|4\.7\.65[01]|4\.7\.500|5\.7\.6[0-4]\d)\b|RP-00[1-3]|SC-00[1-4]|OU-00[12]|DY-00[12])"
      R"(|\bA?S31[45]0\b|\bTSS?0\d\b|RTR:|RLY:B\d|DYN:T1|CON:B1|\bBL000000\b)"};
  // Rule-5 sub-reasons, tried in this order; "recipient_policy" is what remains.
  Pattern rdns_code{R"(^[245]\.7\.25$)"};
  Pattern rdns_text{R"(\bPTR\b|\brDNS\b|reverse ?(DNS|hostname|lookup)|(find|resolve) your (reverse )?host ?name)"};
  Pattern auth_text{R"(\bSPF\b|DKIM|DMARC|authenticat)"};
  // Rule 6 (4xx only): three alternatives with the same outcome.
  Pattern rate_text{
      R"(rate.?limit|throttl|too many (connections|messages|recipients|sessions)|unexpected volume)"
      R"(|temporarily deferred|server busy|try again later|unusual rate)"};
  Pattern rate_token{R"(4\.7\.28|4\.7\.65[01]|4\.7\.500|RP-00[1-3]|\bTSS?0\d\b|DYN:T1|CON:B1|RLY:B\d)"};
  Pattern rate_reputation{R"(reputation|unsolicited|complaints)"};
  // Rule 7 (5xx only).
  Pattern reputation{
      R"(reputation|unsolicited|banned sending IP|5\.7\.6[0-4]\d|\bA?S31[45]0\b|SC-00[1-4]|OU-00[12]|DY-00[12])"
      R"(|RTR:|RLY:B\d|BL000000|5\.7\.28|our block ?list|spam(my)? (patterns|characteristics))"
      R"(|characteristic of spam|poor reputation)"};
};

const Rules& TheRules() {
  static const Rules* rules = new Rules();
  return *rules;
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v'; }
bool IsAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

// "X.Y.Z" of RFC 3463: class 2, 4 or 5, subject and detail of 1 to 3 digits.
bool IsEnhancedCode(std::string_view s) {
  if (s.size() < 5 || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.') return false;
  size_t i = 2;
  for (int part = 0; part < 2; ++part) {
    const size_t start = i;
    while (i < s.size() && IsDigit(s[i])) ++i;
    if (i == start || i - start > 3) return false;
    if (part == 0) {
      if (i >= s.size() || s[i] != '.') return false;
      ++i;
    }
  }
  return i == s.size();
}

// Whether `s` starts with an enhanced code followed by whitespace or its end.
bool StartsWithEnhancedCode(std::string_view s) {
  size_t end = 0;
  while (end < s.size() && !IsSpace(s[end])) ++end;
  return IsEnhancedCode(s.substr(0, end));
}

std::vector<std::string_view> Tokens(std::string_view line) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && IsSpace(line[i])) ++i;
    const size_t start = i;
    while (i < line.size() && !IsSpace(line[i])) ++i;
    if (i > start) out.push_back(line.substr(start, i - start));
  }
  return out;
}

struct Normalised {
  std::string enhanced;
  std::string text;
};

// Joins the lines of one reply with basic code `code` into one line of
// single-space-separated words, dropping every continuation prefix:
//  - at the start of a line: "NNN", "NNN-" (glued to the next word or not), then an enhanced code;
//  - inside a line (an MTA flattened the reply into one log line): "NNN-", "NNN-X.Y.Z",
//    "NNN X.Y.Z", and a bare "NNN" once an "NNN-" showed that the reply had several lines
//    (Postfix keeps every line's prefix, the last one being "NNN ").
// Only prefixes with the reply's own code are dropped. The first enhanced code
// found in a prefix position is the reply's. With `code` 0 (no reply code found)
// the words are only joined.
Normalised Normalise(const std::vector<std::string_view>& lines, int code) {
  const std::string basic = std::to_string(code);
  Normalised out;
  bool multiline = false;
  auto note_enhanced = [&](std::string_view e) {
    if (out.enhanced.empty()) out.enhanced = std::string(e);
  };
  auto emit = [&](std::string_view word) {
    if (!out.text.empty()) out.text += ' ';
    out.text += word;
  };
  if (code == 0) {
    for (std::string_view line : lines)
      for (std::string_view w : Tokens(line)) emit(w);
    return out;
  }
  for (std::string_view line : lines) {
    const std::vector<std::string_view> words = Tokens(line);
    for (size_t k = 0; k < words.size(); ++k) {
      std::string_view w = words[k];
      const bool line_start = k == 0;
      const bool next_enhanced = k + 1 < words.size() && IsEnhancedCode(words[k + 1]);
      if (w.size() > 3 && w.substr(0, 3) == basic && w[3] == '-') {  // "NNN-..." continuation prefix
        multiline = true;
        w.remove_prefix(4);
        if (w.empty()) {
          if (next_enhanced) note_enhanced(words[++k]);
          continue;
        }
        if (IsEnhancedCode(w)) {
          note_enhanced(w);
          continue;
        }
        emit(w);
        continue;
      }
      if (w == basic && (line_start || next_enhanced || multiline)) {  // "NNN " prefix
        if (next_enhanced) note_enhanced(words[++k]);
        continue;
      }
      if (line_start && IsEnhancedCode(w)) {  // a line whose "NNN-" was already removed
        note_enhanced(w);
        continue;
      }
      emit(w);
    }
  }
  return out;
}

// Postfix appends " (in reply to RCPT TO command)" to the reply it quotes, and a
// bounce line may close a parenthesis opened before the reply started.
void TrimLogDecorations(std::string& text) {
  for (;;) {
    const std::string lower = AsciiLower(text);
    const size_t open = lower.find("(in reply to ");
    if (open == std::string::npos) break;
    const size_t close = text.find(')', open);
    size_t from = open;
    while (from > 0 && text[from - 1] == ' ') --from;
    text.erase(from, close == std::string::npos ? std::string::npos : close + 1 - from);
  }
  auto count = [&](char c) { return std::count(text.begin(), text.end(), c); };
  while (!text.empty() && text.back() == ')' && count(')') > count('(')) {
    text.pop_back();
    while (!text.empty() && text.back() == ' ') text.pop_back();
  }
  while (!text.empty() && text.front() == ' ') text.erase(0, 1);
  while (!text.empty() && text.back() == ' ') text.pop_back();
}

// The zone of a "blocked using <zone>" / "black list at <zone>" text: trailing
// punctuation and a "=value" suffix dropped, lowercased, and only when it is a
// plausible zone name ("blocked using Trend Micro RBL+" names none).
std::string ExtractZone(std::string_view subject) {
  const Rules& rules = TheRules();
  std::optional<std::string_view> z = rules.zone.Find(subject, 1);
  if (!z) z = rules.zone.Find(subject, 2);
  if (!z) return {};
  std::string_view zone = *z;
  if (const size_t eq = zone.find('='); eq != std::string_view::npos) zone = zone.substr(0, eq);
  while (!zone.empty() && std::string_view(".,;:)]>'\"").find(zone.back()) != std::string_view::npos)
    zone.remove_suffix(1);
  while (!zone.empty() && std::string_view("([<'\"").find(zone.front()) != std::string_view::npos)
    zone.remove_prefix(1);
  std::string out = AsciiLower(zone);
  if (ZoneNameProblem(out).has_value() || out.find("{key}") != std::string::npos) return {};
  return out;
}

// Applies the rules of domain-facts §4.3 in order. `code` 0 means no code was
// found: only the rules that do not test the code class can fire (2, 3, 5).
ReplyClassification Classify(int code, Normalised n, bool transaction_stage) {
  const Rules& rules = TheRules();
  ReplyClassification r;
  r.code = code;
  r.enhanced = std::move(n.enhanced);
  r.text = std::move(n.text);
  // The rules see the enhanced code too: rules 6 and 7 name codes ("4.7.28", "5.7.6xx").
  const std::string subject = r.enhanced.empty() ? r.text : r.enhanced + " " + r.text;
  const int cls = code / 100;

  // Rule 1.
  if (cls == 2 || (cls == 3 && transaction_stage)) {
    r.cls = SmtpClass::kOk;
    return r;
  }
  if (cls == 3) {  // a 3xx outside a transaction says nothing about the IP
    r.cls = SmtpClass::kOther;
    r.reason = "unexpected_3xx";
    return r;
  }
  // Rule 2.
  if (rules.dnsbl_error.In(subject)) {
    r.cls = SmtpClass::kOther;
    r.reason = "receiver_dnsbl_error";
    r.zone = ExtractZone(subject);
    return r;
  }
  // Rule 3. Comcast's bit field is more specific than its generic wording: BL000000
  // (no list bit set) is Comcast's own block, a rule-7 token, even if the text also
  // says "DNSBLs".
  if (!rules.comcast_own.In(subject) && rules.list.In(subject)) {
    r.cls = SmtpClass::kBlockedByList;
    r.zone = ExtractZone(subject);
    return r;
  }
  // Rule 4.
  if (cls == 4 && rules.greylist.In(subject)) {
    r.cls = SmtpClass::kGreylist;
    return r;
  }
  // Rule 5. Its words are not taken from a reply that carries a receiver's own
  // verdict code: Gmail's X.7.28 names the DKIM or SPF domain an unusual rate is
  // counted for, and Outlook.com's SC-/DY-/OU-00x texts all open with "Mail
  // rejected by Outlook.com for policy reasons". The codes of rule 5 still count.
  const bool policy_code = rules.policy_code.In(r.enhanced);
  if (policy_code || (!rules.receiver_verdict.In(subject) && rules.policy_text.In(r.text))) {
    r.cls = SmtpClass::kPolicyFailure;
    if (rules.rdns_code.In(r.enhanced) || rules.rdns_text.In(r.text)) r.reason = "rdns";
    else if (policy_code || rules.auth_text.In(r.text)) r.reason = "auth";
    else r.reason = "recipient_policy";
    return r;
  }
  // Rule 6.
  if (cls == 4 && (rules.rate_text.In(subject) || rules.rate_token.In(subject) || rules.rate_reputation.In(subject))) {
    r.cls = SmtpClass::kRateLimit;
    return r;
  }
  // Rule 7.
  if (cls == 5 && rules.reputation.In(subject)) {
    r.cls = SmtpClass::kReputationBlock;
    return r;
  }
  // Rule 8.
  r.cls = SmtpClass::kOther;
  return r;
}

// Where a reply starts inside free text. A candidate is a token "NNN" (NNN in
// 200..599) at the start of the text or after whitespace or one of `([;"'=`,
// followed by ' ' or '-' and then an enhanced code, a letter or one of `<[("'`.
// Never a part of an IP address ("[142.250.1.26]": preceded by '.') or a port
// (":25", "port 587"). Preference, first match of each in turn:
//  1. a candidate after "said:" (Postfix: "host X[ip] said: 550 ...");
//  2. one at the start of a line or after ':' ';' '(' ("refused to talk to me: 421 ...",
//     "Diagnostic-Code: smtp; 550 ...", "RCPT TO:<a@b>: 550 ...");
//  3. one followed by an enhanced code;
//  4. any 2xx/4xx/5xx candidate (a 3xx needs 1, 2 or 3).
struct Candidate {
  size_t pos = 0;
  int code = 0;
  bool reply_position = false;
  bool enhanced = false;
};

std::optional<Candidate> CandidateAt(std::string_view text, size_t i) {
  if (i + 4 > text.size()) return std::nullopt;
  if (text[i] < '2' || text[i] > '5' || !IsDigit(text[i + 1]) || !IsDigit(text[i + 2])) return std::nullopt;
  if (text[i + 3] != ' ' && text[i + 3] != '-') return std::nullopt;
  if (i > 0 && !IsSpace(text[i - 1]) && std::string_view("([;\"'=").find(text[i - 1]) == std::string_view::npos)
    return std::nullopt;
  const std::string_view after = text.substr(i + 4);
  Candidate c;
  c.pos = i;
  c.code = (text[i] - '0') * 100 + (text[i + 1] - '0') * 10 + (text[i + 2] - '0');
  c.enhanced = StartsWithEnhancedCode(after);
  if (!c.enhanced && (after.empty() || (!IsAlpha(after[0]) && std::string_view("<[(\"'").find(after[0]) ==
                                                                    std::string_view::npos)))
    return std::nullopt;
  size_t b = i;
  while (b > 0 && (text[b - 1] == ' ' || text[b - 1] == '\t')) --b;
  if (b >= 4 && b < i && AsciiLower(text.substr(b - 4, 4)) == "port" && (b == 4 || !IsAlpha(text[b - 5])))
    return std::nullopt;
  c.reply_position = b == 0 || std::string_view("\r\n:;(").find(text[b - 1]) != std::string_view::npos;
  return c;
}

std::optional<Candidate> FindReplyStart(std::string_view text) {
  std::vector<Candidate> all;
  for (size_t i = 0; i + 4 <= text.size(); ++i)
    if (auto c = CandidateAt(text, i)) all.push_back(*c);
  const size_t said = AsciiLower(text).find("said:");
  if (said != std::string::npos)
    for (const Candidate& c : all)
      if (c.pos > said) return c;
  for (const Candidate& c : all)
    if (c.reply_position) return c;
  for (const Candidate& c : all)
    if (c.enhanced) return c;
  for (const Candidate& c : all)
    if (c.code / 100 != 3) return c;
  return std::nullopt;
}

std::vector<std::string_view> SplitLines(std::string_view text) {
  std::vector<std::string_view> lines;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t eol = std::min(text.find('\n', start), text.size());
    lines.push_back(text.substr(start, eol - start));
    start = eol + 1;
  }
  return lines;
}

}  // namespace

std::string_view SmtpClassName(SmtpClass c) {
  switch (c) {
    case SmtpClass::kOk: return "ok";
    case SmtpClass::kBlockedByList: return "blocked_by_list";
    case SmtpClass::kReputationBlock: return "reputation_block";
    case SmtpClass::kRateLimit: return "rate_limit";
    case SmtpClass::kGreylist: return "greylist";
    case SmtpClass::kPolicyFailure: return "policy_failure";
    case SmtpClass::kOther: return "other";
    case SmtpClass::kError: return "error";
  }
  return "other";
}

std::optional<SmtpClass> ParseSmtpClass(std::string_view name) {
  for (SmtpClass c : {SmtpClass::kOk, SmtpClass::kBlockedByList, SmtpClass::kReputationBlock, SmtpClass::kRateLimit,
                      SmtpClass::kGreylist, SmtpClass::kPolicyFailure, SmtpClass::kOther, SmtpClass::kError})
    if (name == SmtpClassName(c)) return c;
  return std::nullopt;
}

bool AppendReplyLine(SmtpReply& reply, std::string_view line, bool* last_line) {
  if (line.size() < 3 || line[0] < '2' || line[0] > '5' || !IsDigit(line[1]) || !IsDigit(line[2])) return false;
  if (line.size() > 3 && line[3] != '-' && line[3] != ' ') return false;
  const int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
  if (reply.code != 0 && reply.code != code) return false;
  reply.code = code;
  reply.lines.emplace_back(line.size() > 4 ? line.substr(4) : std::string_view());
  if (last_line != nullptr) *last_line = line.size() == 3 || line[3] == ' ';
  return true;
}

ReplyClassification ClassifyReply(const SmtpReply& reply, bool transaction_stage) {
  std::vector<std::string_view> lines(reply.lines.begin(), reply.lines.end());
  if (reply.code < 200 || reply.code > 599) {
    ReplyClassification r;
    r.cls = SmtpClass::kError;
    r.text = Normalise(lines, 0).text;
    return r;
  }
  return Classify(reply.code, Normalise(lines, reply.code), transaction_stage);
}

ReplyClassification ClassifyText(std::string_view text) {
  const std::optional<Candidate> start = FindReplyStart(text);
  Normalised n;
  if (start) {
    n = Normalise(SplitLines(text.substr(start->pos)), start->code);
  } else {
    n.text = Normalise(SplitLines(text), 0).text;
  }
  TrimLogDecorations(n.text);
  return Classify(start ? start->code : 0, std::move(n), /*transaction_stage=*/true);
}

}  // namespace repwatch
