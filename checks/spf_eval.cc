#include "checks/spf_eval.h"

#include <arpa/inet.h>
#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <memory>
#include <utility>

#include "checks/dns_follow.h"

namespace repwatch {

std::string_view SpfResultName(SpfResult r) {
  switch (r) {
    case SpfResult::kNone: return "none";
    case SpfResult::kNeutral: return "neutral";
    case SpfResult::kPass: return "pass";
    case SpfResult::kFail: return "fail";
    case SpfResult::kSoftfail: return "softfail";
    case SpfResult::kTemperror: return "temperror";
    case SpfResult::kPermerror: return "permerror";
  }
  return "?";
}

namespace spf {
namespace {

bool IsAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsAlnum(char c) { return IsAlpha(c) || IsDigit(c); }
char Lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

std::string Lowered(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = Lower(c);
  return out;
}

bool AllDigits(std::string_view s) { return !s.empty() && std::all_of(s.begin(), s.end(), IsDigit); }

// Text with control and non-ASCII bytes shown as \xNN, for error messages; hostile records
// can hold terms of kilobytes, so long text is cut.
std::string Printable(std::string_view s) {
  constexpr size_t kMax = 100;
  std::string out;
  if (s.size() > kMax) return Printable(s.substr(0, kMax - 3)) + "...";
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u > 0x7e)
      out += fmt::format("\\x{:02x}", u);
    else
      out += c;
  }
  return out;
}

// RFC 7208 §7.1: toplabel = ( *alphanum ALPHA *alphanum ) / ( 1*alphanum "-" *( alphanum / "-" ) alphanum ).
bool IsTopLabel(std::string_view s) {
  if (s.empty() || !IsAlnum(s.front()) || !IsAlnum(s.back())) return false;
  bool dash = false, alpha = false;
  for (char c : s) {
    if (c == '-')
      dash = true;
    else if (IsAlpha(c))
      alpha = true;
    else if (!IsDigit(c))
      return false;
  }
  return dash || alpha;
}

// Labels of a name without its trailing dot: each 1-63 characters, 253 in all.
bool LabelsValid(std::string_view name, size_t* count) {
  if (name.empty() || name.size() > 253) return false;
  *count = 0;
  size_t start = 0;
  for (;;) {
    const size_t dot = name.find('.', start);
    const size_t len = (dot == std::string_view::npos ? name.size() : dot) - start;
    if (len == 0 || len > 63) return false;
    ++*count;
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

Result<MacroToken> ParseMacroBody(std::string_view body, MacroContext context) {
  const std::string shown = "%{" + Printable(body) + "}";
  if (body.empty()) return Status::Error("empty macro '%{}'");
  MacroToken t;
  t.kind = MacroToken::Kind::kMacro;
  t.letter = Lower(body[0]);
  t.url_escape = body[0] >= 'A' && body[0] <= 'Z';
  const std::string_view always = "slodiphv", exp_only = "crt";
  if (exp_only.find(t.letter) != std::string_view::npos) {
    if (context != MacroContext::kExplanation)
      return Status::Error(fmt::format("macro letter '{}' in '{}' is only allowed in exp text", body[0], shown));
  } else if (always.find(t.letter) == std::string_view::npos) {
    return Status::Error(fmt::format("unknown macro letter in '{}'", shown));
  }
  size_t i = 1;
  if (i < body.size() && IsDigit(body[i])) {
    int keep = 0;
    for (; i < body.size() && IsDigit(body[i]); ++i) keep = std::min(keep * 10 + (body[i] - '0'), 1000);
    if (keep == 0) return Status::Error(fmt::format("'{}' keeps zero parts", shown));
    t.keep = keep;
  }
  if (i < body.size() && Lower(body[i]) == 'r') {
    t.reverse = true;
    ++i;
  }
  for (; i < body.size(); ++i) {
    if (std::string_view(".-+,/_=").find(body[i]) == std::string_view::npos)
      return Status::Error(fmt::format("bad transformer or delimiter in '{}'", shown));
    t.delimiters += body[i];
  }
  return t;
}

// The value of %{i}: dotted quad, or 32 dot-separated nibbles in address order.
std::string IpDots(const IpAddress& ip) {
  if (ip.is_v4()) return ip.ToString();
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (uint8_t b : ip.bytes()) {
    if (!out.empty()) out += '.';
    out += kHex[b >> 4];
    out += '.';
    out += kHex[b & 0xf];
  }
  return out;
}

std::string MacroValue(char letter, const MacroValues& v) {
  switch (letter) {
    case 's': return v.sender;
    case 'l': return v.local;
    case 'o': return v.sender_domain;
    case 'd': return v.domain;
    case 'i': return IpDots(v.ip);
    case 'p': return v.ptr;
    case 'v': return v.ip.is_v4() ? "in-addr" : "ip6";
    case 'h': return v.helo;
    case 'c': return v.ip.ToString();
    case 'r': return v.receiver;
    case 't': return std::to_string(v.timestamp);
  }
  return "";
}

// §7.3: split on the delimiters, optionally reverse, keep the rightmost parts, join with dots.
std::string Transform(const std::string& value, const MacroToken& t) {
  if (t.keep == 0 && !t.reverse && t.delimiters.empty()) return value;
  const std::string_view delimiters = t.delimiters.empty() ? std::string_view(".") : std::string_view(t.delimiters);
  std::vector<std::string_view> parts;
  std::string_view rest = value;
  for (;;) {
    const size_t cut = rest.find_first_of(delimiters);
    parts.push_back(rest.substr(0, cut));
    if (cut == std::string_view::npos) break;
    rest.remove_prefix(cut + 1);
  }
  if (t.reverse) std::reverse(parts.begin(), parts.end());
  if (t.keep > 0 && static_cast<size_t>(t.keep) < parts.size()) parts.erase(parts.begin(), parts.end() - t.keep);
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i) out += '.';
    out += parts[i];
  }
  return out;
}

std::string UrlEscape(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (IsAlnum(c) || c == '-' || c == '.' || c == '_' || c == '~')
      out += c;
    else
      out += fmt::format("%{:02X}", static_cast<unsigned char>(c));
  }
  return out;
}

std::optional<int> ParsePrefix(std::string_view digits, int max) {
  if (!AllDigits(digits) || digits.size() > 3 || (digits.size() > 1 && digits[0] == '0')) return std::nullopt;
  int v = 0;
  for (char c : digits) v = v * 10 + (c - '0');
  if (v > max) return std::nullopt;
  return v;
}

// Strict dotted quad: four decimal numbers 0-255 without leading zeros.
bool ParseIp4(std::string_view s, std::array<uint8_t, 16>* out) {
  for (int part = 0; part < 4; ++part) {
    const size_t dot = s.find('.');
    if ((part < 3) != (dot != std::string_view::npos)) return false;
    const auto v = ParsePrefix(s.substr(0, dot), 255);
    if (!v) return false;
    (*out)[part] = static_cast<uint8_t>(*v);
    if (part < 3) s.remove_prefix(dot + 1);
  }
  return true;
}

Status BadTerm(std::string_view term, std::string_view problem) {
  return Status::Error(fmt::format("'{}': {}", Printable(term), problem));
}

// a / mx: [ "/" ip4-cidr ] [ "//" ip6-cidr ] at the end of `rest`, which is shortened.
Status StripDualCidr(std::string_view term, std::string_view* rest, Term* t) {
  size_t p = rest->rfind("//");
  if (p != std::string_view::npos && AllDigits(rest->substr(p + 2))) {
    const auto v = ParsePrefix(rest->substr(p + 2), 128);
    if (!v) return BadTerm(term, "IPv6 prefix length must be 0-128 without leading zeros");
    t->cidr6 = *v;
    *rest = rest->substr(0, p);
  }
  p = rest->rfind('/');
  if (p != std::string_view::npos && AllDigits(rest->substr(p + 1))) {
    const auto v = ParsePrefix(rest->substr(p + 1), 32);
    if (!v) return BadTerm(term, "IPv4 prefix length must be 0-32 without leading zeros");
    t->cidr4 = *v;
    *rest = rest->substr(0, p);
  }
  return Status::Ok();
}

// `rest` is "" or ":" domain-spec (required when `needed`).
Status ParseTarget(std::string_view term, std::string_view rest, bool needed, Term* t) {
  if (rest.empty() && !needed) return Status::Ok();
  if (rest.empty() || rest[0] != ':')
    return BadTerm(term, needed ? "needs ':' and a domain" : "expected ':' and a domain");
  auto spec = ParseDomainSpec(rest.substr(1));
  if (!spec.ok()) return BadTerm(term, spec.error());
  t->domain = std::move(spec).value();
  return Status::Ok();
}

Result<Term> ParseMechanism(std::string_view text) {
  Term t;
  t.text = std::string(text);
  std::string_view s = text;
  if (!s.empty() && std::string_view("+-~?").find(s[0]) != std::string_view::npos) {
    t.qualifier = s[0] == '-'   ? SpfResult::kFail
                  : s[0] == '~' ? SpfResult::kSoftfail
                  : s[0] == '?' ? SpfResult::kNeutral
                                : SpfResult::kPass;
    s.remove_prefix(1);
  }
  const size_t end = s.find_first_of(":/");
  const std::string name = Lowered(s.substr(0, end));
  std::string_view rest = end == std::string_view::npos ? std::string_view() : s.substr(end);
  Status st;
  if (name == "all") {
    t.mechanism = Mechanism::kAll;
    if (!rest.empty()) st = BadTerm(text, "'all' takes no argument");
  } else if (name == "include" || name == "exists") {
    t.mechanism = name == "include" ? Mechanism::kInclude : Mechanism::kExists;
    st = ParseTarget(text, rest, true, &t);
  } else if (name == "a" || name == "mx") {
    t.mechanism = name == "a" ? Mechanism::kA : Mechanism::kMx;
    st = StripDualCidr(text, &rest, &t);
    if (st.ok()) st = ParseTarget(text, rest, false, &t);
  } else if (name == "ptr") {
    t.mechanism = Mechanism::kPtr;
    st = ParseTarget(text, rest, false, &t);
  } else if (name == "ip4" || name == "ip6") {
    const bool v4 = name == "ip4";
    t.mechanism = v4 ? Mechanism::kIp4 : Mechanism::kIp6;
    if (rest.empty() || rest[0] != ':') return BadTerm(text, "needs ':' and an address");
    rest.remove_prefix(1);
    const size_t slash = rest.find('/');
    const std::string addr(rest.substr(0, slash));
    if (v4 ? !ParseIp4(addr, &t.network)
           : (addr.find(':') == std::string::npos || inet_pton(AF_INET6, addr.c_str(), t.network.data()) != 1))
      return BadTerm(text, v4 ? "not a dotted-quad IPv4 address" : "not an IPv6 address");
    if (slash != std::string_view::npos) {
      const auto prefix = ParsePrefix(rest.substr(slash + 1), v4 ? 32 : 128);
      if (!prefix)
        return BadTerm(text, v4 ? "IPv4 prefix length must be /0-/32 without leading zeros (no dual CIDR)"
                                : "IPv6 prefix length must be /0-/128 without leading zeros");
      (v4 ? t.cidr4 : t.cidr6) = *prefix;
    }
  } else {
    if (name == "redirect" || name == "exp")
      return Status::Error(
          fmt::format("unknown mechanism '{}' ({} is a modifier: {}=...)", Printable(text), name, name));
    return Status::Error(fmt::format("unknown mechanism '{}'", Printable(text)));
  }
  if (!st.ok()) return st;
  return t;
}

// name = ALPHA *( ALPHA / DIGIT / "-" / "_" / "." )
bool IsModifierName(std::string_view n) {
  if (n.empty() || !IsAlpha(n[0])) return false;
  return std::all_of(n.begin(), n.end(), [](char c) { return IsAlnum(c) || c == '-' || c == '_' || c == '.'; });
}

}  // namespace

Result<MacroString> ParseMacroString(std::string_view text, MacroContext context) {
  MacroString out;
  for (size_t i = 0; i < text.size();) {
    const char c = text[i];
    if (c != '%') {
      const auto u = static_cast<unsigned char>(c);
      if ((u < 0x21 || u > 0x7e) && !(c == ' ' && context == MacroContext::kExplanation))
        return Status::Error(fmt::format("character {} not allowed", Printable(text.substr(i, 1))));
      if (out.tokens.empty() || out.tokens.back().kind != MacroToken::Kind::kLiteral) out.tokens.emplace_back();
      out.tokens.back().text += c;
      ++i;
      continue;
    }
    if (i + 1 == text.size()) return Status::Error("'%' at the end (write %% for a percent sign)");
    const char n = text[i + 1];
    if (n == '%' || n == '_' || n == '-') {
      MacroToken t;
      t.kind = MacroToken::Kind::kEscape;
      t.text = n == '%' ? "%" : n == '_' ? " " : "%20";
      out.tokens.push_back(std::move(t));
      i += 2;
      continue;
    }
    if (n != '{')
      return Status::Error(
          fmt::format("'%{}' is not a macro (use %{{...}}, %%, %_ or %-)", Printable(text.substr(i + 1, 1))));
    const size_t close = text.find('}', i + 2);
    if (close == std::string_view::npos)
      return Status::Error(fmt::format("unterminated macro '{}'", Printable(text.substr(i))));
    auto token = ParseMacroBody(text.substr(i + 2, close - i - 2), context);
    if (!token.ok()) return token.status();
    if (token.value().letter == 'p') out.uses_p = true;
    out.tokens.push_back(std::move(token).value());
    i = close + 1;
  }
  return out;
}

Result<MacroString> ParseDomainSpec(std::string_view text) {
  if (text.empty()) return Status::Error("empty domain");
  auto spec = ParseMacroString(text, MacroContext::kDomainSpec);
  if (!spec.ok()) return spec;
  const MacroToken& last = spec.value().tokens.back();
  if (last.kind == MacroToken::Kind::kLiteral) {
    std::string_view s = last.text;
    if (s.ends_with('.')) s.remove_suffix(1);
    const size_t dot = s.rfind('.');
    if (dot == std::string_view::npos || !IsTopLabel(s.substr(dot + 1)))
      return Status::Error(fmt::format("'{}' must end in a macro or in '.' and a valid top-level label", text));
  }
  return spec;
}

std::string ExpandMacros(const MacroString& macro, const MacroValues& values) {
  std::string out;
  for (const MacroToken& t : macro.tokens) {
    if (t.kind != MacroToken::Kind::kMacro) {
      out += t.text;
      continue;
    }
    std::string v = Transform(MacroValue(t.letter, values), t);
    out += t.url_escape ? UrlEscape(v) : v;
  }
  return out;
}

std::optional<std::string> ToQueryName(std::string expanded) {
  if (expanded.ends_with('.')) expanded.pop_back();
  if (expanded.size() > 253) {
    // Keep what follows the first dot that leaves at most 253 characters.
    const size_t dot = expanded.find('.', expanded.size() - 254);
    if (dot == std::string::npos) return std::nullopt;
    expanded.erase(0, dot + 1);
  }
  size_t labels = 0;
  if (!LabelsValid(expanded, &labels)) return std::nullopt;
  return expanded;
}

bool IsValidDomain(std::string_view domain) {
  if (domain.ends_with('.')) domain.remove_suffix(1);
  size_t labels = 0;
  if (!LabelsValid(domain, &labels) || labels < 2) return false;
  return IsTopLabel(domain.substr(domain.rfind('.') + 1));
}

bool IsSpfRecord(std::string_view text) {
  return text.size() >= 6 && Lowered(text.substr(0, 6)) == "v=spf1" && (text.size() == 6 || text[6] == ' ');
}

bool Term::QueriesDns() const {
  switch (mechanism) {
    case Mechanism::kInclude:
    case Mechanism::kA:
    case Mechanism::kMx:
    case Mechanism::kPtr:
    case Mechanism::kExists: return true;
    default: return false;
  }
}

Result<SpfRecord> ParseRecord(std::string_view text) {
  for (size_t i = 0; i < text.size(); ++i) {
    const auto u = static_cast<unsigned char>(text[i]);
    if (u == ' ' || (u > 0x20 && u < 0x7f)) continue;
    const size_t start = text.rfind(' ', i) == std::string_view::npos ? 0 : text.rfind(' ', i) + 1;
    const std::string_view term = text.substr(start, text.find(' ', i) - start);
    return Status::Error(fmt::format("{} character \\x{:02x} in '{}'", u < 0x20 || u == 0x7f ? "control" : "non-ASCII",
                                     u, Printable(term)));
  }
  if (!IsSpfRecord(text)) return Status::Error("not an SPF record (must start with 'v=spf1')");
  SpfRecord record;
  size_t pos = 6;
  while (pos < text.size()) {
    if (text[pos] == ' ') {
      ++pos;
      continue;
    }
    const size_t end = std::min(text.find(' ', pos), text.size());
    const std::string_view term = text.substr(pos, end - pos);
    pos = end;
    const size_t eq = term.find('=');
    if (eq != std::string_view::npos && IsModifierName(term.substr(0, eq))) {
      const std::string name = Lowered(term.substr(0, eq));
      const std::string_view value = term.substr(eq + 1);
      if (name == "redirect" || name == "exp") {
        auto& slot = name == "redirect" ? record.redirect : record.exp;
        if (slot) return Status::Error(fmt::format("'{}=' appears twice", name));
        auto spec = ParseDomainSpec(value);
        if (!spec.ok()) return BadTerm(term, spec.error());
        slot = std::move(spec).value();
        if (name == "redirect") record.redirect_text = std::string(term);
      } else {
        auto macro = ParseMacroString(value, MacroContext::kDomainSpec);  // checked, then ignored (§6)
        if (!macro.ok()) return BadTerm(term, macro.error());
      }
      continue;
    }
    auto mechanism = ParseMechanism(term);
    if (!mechanism.ok()) return mechanism.status();
    record.terms.push_back(std::move(mechanism).value());
  }
  return record;
}

}  // namespace spf

// ---- The evaluator -------------------------------------------------------------------------

namespace {

using spf::MacroString;
using spf::Mechanism;
using spf::SpfRecord;
using spf::Term;

// How one check_host() call (the top one, an include or a redirect) ended.
struct FrameResult {
  SpfResult result = SpfResult::kNeutral;
  std::string message;  // what decided, without the chain
  std::string chain;    // "include:a -> redirect=b" of the record that decided ("" at the top)
  std::string reason;   // chain + result + message
  std::string matched;
  std::string explanation;
};

// One record being evaluated.
struct Frame {
  std::string domain;
  std::string chain;
  bool final = true;  // its result becomes the outcome (the top record, or reached from it by redirects)
  SpfRecord record;
  size_t next = 0;  // index of the term being evaluated
  std::function<void(FrameResult)> done;

  const Term& term() const { return record.terms[next]; }
};
using FramePtr = std::shared_ptr<Frame>;

std::string Chained(const std::string& chain, SpfResult result, const std::string& message) {
  if (chain.empty()) return message;
  return fmt::format("{} -> {}: {}", chain, SpfResultName(result), message);
}

std::string Extend(const std::string& chain, const std::string& step) {
  return chain.empty() ? step : chain + " -> " + step;
}

std::string Describe(const FollowedAnswer& a) {
  if (!a.error.empty()) return a.error;
  return std::string(DnsStatusName(a.response.status));
}

bool SameName(std::string_view a, std::string_view b) {
  if (a.ends_with('.')) a.remove_suffix(1);
  if (b.ends_with('.')) b.remove_suffix(1);
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return spf::Lower(x) == spf::Lower(y); });
}

// `name` is `domain` or one of its subdomains.
bool InDomain(std::string_view name, std::string_view domain) {
  if (domain.ends_with('.')) domain.remove_suffix(1);
  if (name.ends_with('.')) name.remove_suffix(1);
  if (SameName(name, domain)) return true;
  return name.size() > domain.size() && name[name.size() - domain.size() - 1] == '.' &&
         SameName(name.substr(name.size() - domain.size()), domain);
}

bool PrefixEqual(const std::array<uint8_t, 16>& a, const std::array<uint8_t, 16>& b, int bits) {
  int i = 0;
  for (; bits >= 8; bits -= 8, ++i)
    if (a[i] != b[i]) return false;
  if (bits == 0) return true;
  const auto mask = static_cast<uint8_t>(0xff << (8 - bits));
  return (a[i] & mask) == (b[i] & mask);
}

std::string Joined(const DnsRecord& txt) {
  std::string out;
  for (const std::string& s : txt.strings) out += s;
  return out;
}

class Evaluation : public std::enable_shared_from_this<Evaluation> {
 public:
  Evaluation(Resolver& resolver, const SpfRequest& request, std::function<void(SpfOutcome)> done)
      : resolver_(resolver), request_(request), done_(std::move(done)) {
    std::string sender = request.sender.empty() ? "postmaster@" + request.helo : request.sender;
    const size_t at = sender.rfind('@');
    values_.local = at == std::string::npos ? "postmaster" : sender.substr(0, at);
    values_.sender_domain = at == std::string::npos ? sender : sender.substr(at + 1);
    if (values_.local.empty()) values_.local = "postmaster";
    values_.sender = values_.local + "@" + values_.sender_domain;
    values_.ip = request.ip;
    values_.helo = request.helo;
    values_.receiver = request.receiver;
    values_.timestamp = request.timestamp;
    ip_text_ = request.ip.ToString();
    address_type_ = request.ip.is_v4() ? rrtype::kA : rrtype::kAaaa;
  }

  void Start() {
    auto self = shared_from_this();
    if (!spf::IsValidDomain(request_.domain)) {
      // No DNS needed, but done() must still come from Poll().
      resolver_.Query("invalid", rrtype::kTxt, [self](DnsResponse&&) {
        FrameResult r;
        r.result = SpfResult::kNone;
        r.message = r.reason = fmt::format("'{}' is not a valid domain name", spf::Printable(self->request_.domain));
        self->Deliver(std::move(r));
      });
      return;
    }
    CheckHostAt(request_.domain, "", true, [self](FrameResult r) { self->Deliver(std::move(r)); });
  }

 private:
  using NameCallback = std::function<void(std::optional<std::string>)>;

  void Deliver(FrameResult r) {
    if (delivered_) return;
    delivered_ = true;
    SpfOutcome out;
    out.result = r.result;
    out.reason = std::move(r.reason);
    if (r.result == SpfResult::kFail) out.explanation = std::move(r.explanation);
    out.matched = std::move(r.matched);
    out.permissive = std::move(permissive_);
    out.dns_lookups = dns_lookups_;
    out.void_lookups = void_lookups_;
    done_(std::move(out));
  }

  // ---- check_host() on one domain ----

  void CheckHostAt(std::string domain, std::string chain, bool final, std::function<void(FrameResult)> done) {
    auto f = std::make_shared<Frame>();
    if (domain.ends_with('.')) domain.pop_back();
    f->domain = std::move(domain);
    f->chain = std::move(chain);
    f->final = final;
    f->done = std::move(done);
    auto self = shared_from_this();
    FollowCnames(resolver_, f->domain, rrtype::kTxt, [self, f](FollowedAnswer a) { self->OnRecords(f, std::move(a)); });
  }

  void OnRecords(const FramePtr& f, FollowedAnswer a) {
    if (!a.ok() && !a.empty())
      return Finish(f, SpfResult::kTemperror, fmt::format("TXT lookup for {}: {}", f->domain, Describe(a)));
    std::vector<std::string> records;
    for (const DnsRecord& rec : a.response.answers) {
      if (rec.type != rrtype::kTxt) continue;
      std::string text = Joined(rec);
      if (spf::IsSpfRecord(text)) records.push_back(std::move(text));
    }
    if (records.empty()) return Finish(f, SpfResult::kNone, fmt::format("no SPF record at {}", f->domain));
    if (records.size() > 1)
      return Finish(f, SpfResult::kPermerror, fmt::format("{} SPF records at {}", records.size(), f->domain));
    auto parsed = spf::ParseRecord(records[0]);
    if (!parsed.ok())
      return Finish(f, SpfResult::kPermerror, fmt::format("syntax error in {}: {}", f->domain, parsed.error()));
    f->record = std::move(parsed).value();
    for (const Term& t : f->record.terms) {
      if (t.qualifier != SpfResult::kPass) continue;
      if (t.mechanism == Mechanism::kAll || (t.mechanism == Mechanism::kIp4 && t.cidr4 <= 8) ||
          (t.mechanism == Mechanism::kIp6 && t.cidr6 <= 16))
        permissive_.push_back(fmt::format("{} in {}", t.text, f->domain));
    }
    Step(f);
  }

  void Finish(const FramePtr& f, SpfResult result, std::string message, std::string matched = "",
              std::string explanation = "") {
    FrameResult r;
    r.result = result;
    r.reason = Chained(f->chain, result, message);
    r.message = std::move(message);
    r.chain = f->chain;
    r.matched = std::move(matched);
    r.explanation = std::move(explanation);
    f->done(std::move(r));
  }

  // Evaluates terms from f->next until one needs DNS (which resumes here) or the record is done.
  void Step(const FramePtr& f) {
    for (; f->next < f->record.terms.size(); ++f->next) {
      const Term& t = f->term();
      switch (t.mechanism) {
        case Mechanism::kAll: return Matched(f, "");
        case Mechanism::kIp4:
          if (request_.ip.is_v4() && PrefixEqual(t.network, request_.ip.bytes(), t.cidr4)) return Matched(f, "");
          continue;
        case Mechanism::kIp6:
          if (!request_.ip.is_v4() && PrefixEqual(t.network, request_.ip.bytes(), t.cidr6)) return Matched(f, "");
          continue;
        default: break;
      }
      if (!CountLookup(f, t.text)) return;
      switch (t.mechanism) {
        case Mechanism::kA: return EvalA(f);
        case Mechanism::kMx: return EvalMx(f);
        case Mechanism::kPtr: return EvalPtr(f);
        case Mechanism::kExists: return EvalExists(f);
        case Mechanism::kInclude: return EvalInclude(f);
        default: return;  // handled above
      }
    }
    if (f->record.redirect) return Redirect(f);
    Finish(f, SpfResult::kNeutral, fmt::format("nothing in {} matched {} (neutral by default)", f->domain, ip_text_));
  }

  void Resume(const FramePtr& f, bool match, const std::string& detail = "") {
    if (match) return Matched(f, detail);
    ++f->next;
    Step(f);
  }

  void Matched(const FramePtr& f, const std::string& detail) {
    const Term& t = f->term();
    std::string message;
    if (t.mechanism == Mechanism::kAll)
      message = t.qualifier == SpfResult::kPass ? fmt::format("{} in {}: every address passes", t.text, f->domain)
                                                : fmt::format("{} in {}: {} not listed", t.text, f->domain, ip_text_);
    else
      message =
          fmt::format("{} matched in {}", spf::Printable(t.text), f->domain) + (detail.empty() ? "" : ": " + detail);
    if (t.qualifier != SpfResult::kFail || !f->final || !f->record.exp)
      return Finish(f, t.qualifier, std::move(message), t.text);
    auto self = shared_from_this();
    Explain(f, [self, f, message](std::string explanation) {
      self->Finish(f, SpfResult::kFail, message, f->term().text, std::move(explanation));
    });
  }

  bool CountLookup(const FramePtr& f, const std::string& term) {
    if (++dns_lookups_ <= kSpfMaxDnsLookups) return true;
    --dns_lookups_;
    Finish(f, SpfResult::kPermerror,
           fmt::format("more than {} DNS lookups ({}th: {})", kSpfMaxDnsLookups, kSpfMaxDnsLookups + 1,
                       spf::Printable(term)));
    return false;
  }

  // Counts a void lookup by the current term; false (and the frame finished) past the limit.
  bool CountVoid(const FramePtr& f) {
    if (++void_lookups_ <= kSpfMaxVoidLookups) return true;
    Finish(f, SpfResult::kPermerror,
           fmt::format("more than {} void lookups ({}rd: {})", kSpfMaxVoidLookups, kSpfMaxVoidLookups + 1,
                       spf::Printable(f->term().text)));
    return false;
  }

  void NoMatchVoid(const FramePtr& f) {
    if (CountVoid(f)) Resume(f, false);
  }

  // ---- macros ----

  void Expand(const FramePtr& f, const MacroString& m, std::function<void(std::string)> done) {
    spf::MacroValues v = values_;
    v.domain = f->domain;
    if (!m.uses_p) return done(spf::ExpandMacros(m, v));
    auto self = shared_from_this();
    ValidatedPtrName(f->domain, [self, m, v, done](std::string p) mutable {
      v.ptr = std::move(p);
      done(spf::ExpandMacros(m, v));
    });
  }

  // The name the current a/mx/ptr/exists/include term queries.
  void TargetName(const FramePtr& f, NameCallback done) {
    const Term& t = f->term();
    if (t.domain.empty()) return done(f->domain);
    Expand(f, t.domain, [done](std::string s) { done(spf::ToQueryName(std::move(s))); });
  }

  // ---- mechanisms ----

  void EvalA(const FramePtr& f) {
    auto self = shared_from_this();
    TargetName(f, [self, f](std::optional<std::string> name) {
      if (!name) return self->NoMatchVoid(f);
      FollowCnames(self->resolver_, *name, self->address_type_, [self, f, n = *name](FollowedAnswer a) {
        if (a.empty()) return self->NoMatchVoid(f);
        if (!a.ok()) return self->LookupFailed(f, self->address_type_, n, a);
        self->Resume(f, self->AnyAddressMatches(a, f->term()));
      });
    });
  }

  void EvalExists(const FramePtr& f) {
    auto self = shared_from_this();
    TargetName(f, [self, f](std::optional<std::string> name) {
      if (!name) return self->NoMatchVoid(f);
      FollowCnames(self->resolver_, *name, rrtype::kA, [self, f, n = *name](FollowedAnswer a) {
        if (a.empty()) return self->NoMatchVoid(f);
        if (!a.ok()) return self->LookupFailed(f, rrtype::kA, n, a);
        self->Resume(f, true);
      });
    });
  }

  void EvalMx(const FramePtr& f) {
    auto self = shared_from_this();
    TargetName(f, [self, f](std::optional<std::string> name) {
      if (!name) return self->NoMatchVoid(f);
      FollowCnames(self->resolver_, *name, rrtype::kMx, [self, f, n = *name](FollowedAnswer a) {
        if (a.empty()) return self->NoMatchVoid(f);
        if (!a.ok()) return self->LookupFailed(f, rrtype::kMx, n, a);
        auto& mx = a.response.answers;
        if (mx.size() > static_cast<size_t>(kSpfMaxMxNames))
          return self->Finish(f, SpfResult::kPermerror,
                              fmt::format("{} in {}: {} has {} MX records (more than {})",
                                          spf::Printable(f->term().text), f->domain, n, mx.size(), kSpfMaxMxNames));
        std::stable_sort(mx.begin(), mx.end(),
                         [](const DnsRecord& x, const DnsRecord& y) { return x.preference < y.preference; });
        std::vector<std::string> hosts;
        for (const DnsRecord& rec : mx)
          if (!rec.target.empty() && rec.target != ".") hosts.push_back(rec.target);  // RFC 7505 null MX
        self->LookupAll(hosts, [self, f, hosts](std::vector<FollowedAnswer> answers) {
          for (size_t i = 0; i < hosts.size(); ++i) {
            if (answers[i].empty()) continue;
            if (!answers[i].ok()) return self->LookupFailed(f, self->address_type_, hosts[i], answers[i]);
            if (self->AnyAddressMatches(answers[i], f->term())) return self->Resume(f, true, "MX host " + hosts[i]);
          }
          self->Resume(f, false);
        });
      });
    });
  }

  void EvalPtr(const FramePtr& f) {
    auto self = shared_from_this();
    TargetName(f, [self, f](std::optional<std::string> name) {
      if (!name) return self->NoMatchVoid(f);
      FollowCnames(self->resolver_, self->request_.ip.ReverseDnsName(), rrtype::kPtr,
                   [self, f, target = *name](FollowedAnswer a) {
                     if (a.empty()) return self->NoMatchVoid(f);
                     if (!a.ok()) return self->Resume(f, false);  // §5.5: a DNS error means no match
                     std::vector<std::string> names;
                     for (const std::string& n : self->PtrNames(a))
                       if (InDomain(n, target)) names.push_back(n);
                     self->Validate(names, [self, f, names](std::vector<bool> valid) {
                       for (size_t i = 0; i < names.size(); ++i)
                         if (valid[i]) return self->Resume(f, true, "validated PTR name " + names[i]);
                       self->Resume(f, false);
                     });
                   });
    });
  }

  void EvalInclude(const FramePtr& f) {
    auto self = shared_from_this();
    Expand(f, f->term().domain, [self, f](std::string expanded) {
      const auto name = spf::ToQueryName(expanded);
      if (!name || !spf::IsValidDomain(*name))
        return self->Finish(f, SpfResult::kPermerror,
                            fmt::format("{}: '{}' is not a valid domain name", spf::Printable(f->term().text),
                                        spf::Printable(expanded)));
      self->CheckHostAt(*name, Extend(f->chain, "include:" + *name), false, [self, f](FrameResult r) {
        switch (r.result) {
          case SpfResult::kPass: return self->Resume(f, true, r.message);
          case SpfResult::kFail:
          case SpfResult::kSoftfail:
          case SpfResult::kNeutral: return self->Resume(f, false);
          case SpfResult::kNone: return f->done(AsPermerror(std::move(r)));
          case SpfResult::kTemperror:
          case SpfResult::kPermerror: return f->done(std::move(r));
        }
      });
    });
  }

  void Redirect(const FramePtr& f) {
    if (!CountLookup(f, f->record.redirect_text)) return;
    auto self = shared_from_this();
    Expand(f, *f->record.redirect, [self, f](std::string expanded) {
      const auto name = spf::ToQueryName(expanded);
      if (!name || !spf::IsValidDomain(*name))
        return self->Finish(f, SpfResult::kPermerror,
                            fmt::format("{}: '{}' is not a valid domain name", spf::Printable(f->record.redirect_text),
                                        spf::Printable(expanded)));
      self->CheckHostAt(*name, Extend(f->chain, "redirect=" + *name), f->final, [f](FrameResult r) {
        f->done(r.result == SpfResult::kNone ? AsPermerror(std::move(r)) : std::move(r));
      });
    });
  }

  static FrameResult AsPermerror(FrameResult r) {
    r.result = SpfResult::kPermerror;
    r.reason = Chained(r.chain, r.result, r.message);
    return r;
  }

  void LookupFailed(const FramePtr& f, uint16_t qtype, const std::string& name, const FollowedAnswer& a) {
    const char* type = qtype == rrtype::kA      ? "A"
                       : qtype == rrtype::kAaaa ? "AAAA"
                       : qtype == rrtype::kMx   ? "MX"
                                                : "PTR";
    Finish(f, SpfResult::kTemperror,
           fmt::format("{} in {}: {} lookup for {}: {}", spf::Printable(f->term().text), f->domain, type, name,
                       Describe(a)));
  }

  bool AnyAddressMatches(const FollowedAnswer& a, const Term& t) const {
    const int prefix = request_.ip.is_v4() ? t.cidr4 : t.cidr6;
    return std::any_of(a.response.answers.begin(), a.response.answers.end(), [&](const DnsRecord& rec) {
      return rec.type == address_type_ && PrefixEqual(rec.addr, request_.ip.bytes(), prefix);
    });
  }

  // ---- address lookups for several names at once ----

  void LookupAll(const std::vector<std::string>& names, std::function<void(std::vector<FollowedAnswer>)> done) {
    if (names.empty()) return done({});
    struct Join {
      std::vector<FollowedAnswer> answers;
      size_t left;
      std::function<void(std::vector<FollowedAnswer>)> done;
    };
    auto join = std::make_shared<Join>(Join{std::vector<FollowedAnswer>(names.size()), names.size(), std::move(done)});
    for (size_t i = 0; i < names.size(); ++i) {
      FollowCnames(resolver_, names[i], address_type_, [join, i](FollowedAnswer a) {
        join->answers[i] = std::move(a);
        if (--join->left == 0) join->done(std::move(join->answers));
      });
    }
  }

  // §5.5: a name is validated when one of its addresses is the client's. Lookup errors skip the name.
  void Validate(const std::vector<std::string>& names, std::function<void(std::vector<bool>)> done) {
    auto self = shared_from_this();
    LookupAll(names, [self, done](std::vector<FollowedAnswer> answers) {
      std::vector<bool> valid;
      for (const FollowedAnswer& a : answers) {
        const bool ok =
            a.ok() && std::any_of(a.response.answers.begin(), a.response.answers.end(), [&](const DnsRecord& r) {
              return r.type == self->address_type_ &&
                     PrefixEqual(r.addr, self->request_.ip.bytes(), self->request_.ip.is_v4() ? 32 : 128);
            });
        valid.push_back(ok);
      }
      done(std::move(valid));
    });
  }

  // The first kSpfMaxPtrNames PTR names, in answer order; the rest are ignored (§4.6.4).
  std::vector<std::string> PtrNames(const FollowedAnswer& a) const {
    std::vector<std::string> names;
    for (const DnsRecord& rec : a.response.answers) {
      if (names.size() == static_cast<size_t>(kSpfMaxPtrNames)) break;
      if (rec.type == rrtype::kPtr && !rec.target.empty()) names.push_back(rec.target);
    }
    return names;
  }

  // %{p} (§7.3): a validated name equal to or under `domain`, else any validated name, else "unknown".
  void ValidatedPtrName(const std::string& domain, std::function<void(std::string)> done) {
    if (auto it = ptr_names_.find(domain); it != ptr_names_.end()) return done(it->second);
    auto self = shared_from_this();
    FollowCnames(resolver_, request_.ip.ReverseDnsName(), rrtype::kPtr, [self, domain, done](FollowedAnswer a) {
      std::vector<std::string> names = a.ok() ? self->PtrNames(a) : std::vector<std::string>{};
      self->Validate(names, [self, domain, done, names](std::vector<bool> valid) {
        std::string best = "unknown";
        int best_rank = 0;
        for (size_t i = 0; i < names.size(); ++i) {
          if (!valid[i]) continue;
          const int rank = SameName(names[i], domain) ? 3 : InDomain(names[i], domain) ? 2 : 1;
          if (rank > best_rank) {
            best = names[i];
            best_rank = rank;
          }
        }
        self->ptr_names_[domain] = best;
        done(best);
      });
    });
  }

  // ---- exp= (§6.2): every problem means no explanation ----

  void Explain(const FramePtr& f, std::function<void(std::string)> done) {
    auto self = shared_from_this();
    Expand(f, *f->record.exp, [self, f, done](std::string expanded) {
      const auto name = spf::ToQueryName(std::move(expanded));
      if (!name) return done("");
      FollowCnames(self->resolver_, *name, rrtype::kTxt, [self, f, done](FollowedAnswer a) {
        if (!a.ok() || a.response.answers.size() != 1) return done("");
        const std::string text = Joined(a.response.answers[0]);
        auto macro = spf::ParseMacroString(text, spf::MacroContext::kExplanation);  // also rejects non-ASCII
        if (!macro.ok()) return done("");
        self->Expand(f, macro.value(), done);
      });
    });
  }

  Resolver& resolver_;
  SpfRequest request_;
  std::function<void(SpfOutcome)> done_;
  spf::MacroValues values_;
  std::string ip_text_;
  uint16_t address_type_ = rrtype::kA;
  int dns_lookups_ = 0;
  int void_lookups_ = 0;
  std::vector<std::string> permissive_;
  std::map<std::string, std::string> ptr_names_;  // %{p} per current domain
  bool delivered_ = false;
};

}  // namespace

void SpfEvaluator::CheckHost(const SpfRequest& request, std::function<void(SpfOutcome)> done) {
  std::make_shared<Evaluation>(resolver_, request, std::move(done))->Start();
}

}  // namespace repwatch
