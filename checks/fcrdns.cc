#include "checks/fcrdns.h"

#include <fmt/format.h>

#include <algorithm>

#include "agent/text.h"
#include "checks/dns_follow.h"

namespace repwatch {
namespace {

constexpr size_t kMaxPtrNames = 10;  // as RFC 7208 §4.6.4 caps ptr

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// `needle` occurs in `hay` with no digit or hex letter glued on either side
// (so "192-0-2-10" does not match inside "192-0-2-100").
bool ContainsBounded(std::string_view hay, std::string_view needle, bool hex) {
  auto glued = [&](char c) { return IsDigit(c) || (hex && ((c >= 'a' && c <= 'f'))); };
  for (size_t p = hay.find(needle); p != std::string_view::npos; p = hay.find(needle, p + 1)) {
    const bool left = p == 0 || !glued(hay[p - 1]);
    const bool right = p + needle.size() == hay.size() || !glued(hay[p + needle.size()]);
    if (left && right) return true;
  }
  return false;
}

std::optional<std::string> ContainsAddress(const IpAddress& ip, std::string_view name) {
  if (ip.is_v4()) {
    const auto& b = ip.bytes();
    const int o[4] = {b[0], b[1], b[2], b[3]};
    for (const bool reversed : {false, true}) {
      const int a = reversed ? o[3] : o[0], bb = reversed ? o[2] : o[1], c = reversed ? o[1] : o[2],
                d = reversed ? o[0] : o[3];
      const char* order = reversed ? "reversed " : "";
      for (const char* sep : {"-", ".", ""}) {
        const std::string joined = fmt::format("{}{}{}{}{}{}{}", a, sep, bb, sep, c, sep, d);
        if (ContainsBounded(name, joined, false)) return fmt::format("contains the {}address as \"{}\"", order, joined);
        const std::string padded = fmt::format("{:03}{}{:03}{}{:03}{}{:03}", a, sep, bb, sep, c, sep, d);
        if (ContainsBounded(name, padded, false)) return fmt::format("contains the {}address as \"{}\"", order, padded);
      }
    }
    const std::string hex = fmt::format("{:02x}{:02x}{:02x}{:02x}", o[0], o[1], o[2], o[3]);
    if (ContainsBounded(name, hex, true)) return fmt::format("contains the address in hex as \"{}\"", hex);
    return std::nullopt;
  }
  // IPv6: the canonical text with ':' as '-' (e.g. "2001-db8--25"), or all 32 nibbles.
  std::string text = ip.ToString();
  std::replace(text.begin(), text.end(), ':', '-');
  if (ContainsBounded(name, text, true)) return fmt::format("contains the address as \"{}\"", text);
  std::string nibbles;
  for (uint8_t byte : ip.bytes()) nibbles += fmt::format("{:02x}", byte);
  if (ContainsBounded(name, nibbles, true)) return fmt::format("contains the address's 32 hex digits");
  return std::nullopt;
}

// Dynamic-pool keywords as a label or next to digits (domain-facts §3, after
// rspamd's hfilter families [.-]word[.-], word[.-]?[0-9], [0-9][.-]?word): the
// keyword must start the name or follow '.', '-' or a digit, and end the name or
// be followed by '.', '-' or a digit. "host" and "ip-" count only right before a digit.
std::optional<std::string> ContainsKeyword(std::string_view name) {
  static constexpr std::string_view kKeywords[] = {
      "dynamic", "dynip", "dyn",    "dhcp",      "pool",     "xdsl",     "adsl",        "dsl",     "pppoe",
      "pptp",    "ppp",   "cable",  "catv",      "broadband", "bredband", "dialup",     "dial-up", "client",
      "customer", "homeuser", "user", "nat",     "gprs",     "cdma",     "wifi",        "fbx",     "kabel",
      "static",  "unused-addr", "in-addr"};
  auto separator = [](char c) { return c == '.' || c == '-'; };
  // The leftmost keyword wins, so the reason names the first one a reader sees.
  size_t best = std::string_view::npos;
  std::string_view found;
  auto consider = [&](std::string_view word, bool digit_only_after) {
    for (size_t p = name.find(word); p != std::string_view::npos && p < best; p = name.find(word, p + 1)) {
      const size_t end = p + word.size();
      const bool left = p == 0 || separator(name[p - 1]) || (!digit_only_after && IsDigit(name[p - 1]));
      const bool right = digit_only_after ? end < name.size() && IsDigit(name[end])
                                          : end == name.size() || separator(name[end]) || IsDigit(name[end]);
      if (left && right) {
        best = p;
        found = word;
        return;
      }
    }
  };
  for (std::string_view word : kKeywords) consider(word, false);
  consider("host", true);
  consider("ip-", true);
  if (found.empty()) return std::nullopt;
  return fmt::format("has the dynamic-pool keyword \"{}\"", found);
}

std::optional<std::string> MostlyDigits(std::string_view name) {
  const std::string_view first = name.substr(0, name.find('.'));
  const auto digits = std::count_if(first.begin(), first.end(), IsDigit);
  if (first.size() >= 3 && static_cast<size_t>(digits) * 2 > first.size())
    return fmt::format("its first label \"{}\" is mostly digits", first);
  return std::nullopt;
}

bool SameAddress(const IpAddress& ip, const DnsRecord& r) {
  const auto& b = ip.bytes();
  if (ip.is_v4()) return r.type == rrtype::kA && std::equal(b.begin(), b.begin() + 4, r.addr.begin());
  return r.type == rrtype::kAaaa && r.addr == b;
}

std::string AddressOf(const DnsRecord& r) {
  if (r.type == rrtype::kA) return IpAddress::V4(uint32_t{r.addr[0]} << 24 | uint32_t{r.addr[1]} << 16 |
                                                 uint32_t{r.addr[2]} << 8 | r.addr[3]).ToString();
  return IpAddress::V6(r.addr).ToString();
}

std::string Failure(const DnsResponse& r) {
  std::string s(DnsStatusName(r.status));
  if (!r.detail.empty()) s += " (" + r.detail + ")";
  return s;
}

// What a forward lookup said about `ip`, for people.
struct ForwardResult {
  bool confirmed = false;
  bool failed = false;      // DNS failure: could not tell
  bool no_address = false;  // NXDOMAIN or no record of the type
  std::string detail;
};

ForwardResult JudgeForward(const IpAddress& ip, const std::string& name, const FollowedAnswer& a) {
  const char* type = ip.is_v4() ? "A" : "AAAA";
  ForwardResult out;
  if (!a.error.empty() || (a.response.status != DnsStatus::kNoError && a.response.status != DnsStatus::kNxDomain)) {
    out.failed = true;
    out.detail = fmt::format("{} lookup for {}: {}", type, name, a.error.empty() ? Failure(a.response) : a.error);
    return out;
  }
  if (a.empty()) {
    out.no_address = true;
    out.detail = fmt::format("{} has no {} record{}", name, type,
                             a.response.status == DnsStatus::kNxDomain ? " (NXDOMAIN)" : "");
    return out;
  }
  std::vector<std::string> seen;
  for (const DnsRecord& r : a.response.answers) {
    if (SameAddress(ip, r)) out.confirmed = true;
    seen.push_back(AddressOf(r));
  }
  out.detail = fmt::format("{}{} resolves to {}", name, a.chain.empty() ? "" : " (via " + a.chain.back() + ")",
                           fmt::join(seen, ", "));
  if (!out.confirmed) out.detail += fmt::format(", not {}", ip.ToString());
  return out;
}

}  // namespace

std::optional<std::string> GenericPtrReason(const IpAddress& ip, std::string_view name) {
  const std::string lower = AsciiLower(name);
  if (auto r = ContainsAddress(ip, lower)) return r;
  if (auto r = ContainsKeyword(lower)) return r;
  return MostlyDigits(lower);
}

bool MatchesNamePattern(std::string_view pattern, std::string_view name) {
  if (pattern.ends_with('.')) pattern.remove_suffix(1);
  if (name.ends_with('.')) name.remove_suffix(1);
  // Iterative glob with backtracking to the last '*'.
  size_t p = 0, n = 0, star = std::string_view::npos, resume = 0;
  while (n < name.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      resume = ++n;  // '*' takes at least one character
    } else if (p < pattern.size() && AsciiLower(pattern[p]) == AsciiLower(name[n])) {
      ++p;
      ++n;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      n = ++resume;
      if (n > name.size()) return false;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*' && star == p) ++p;
  return p == pattern.size();
}

std::optional<std::string> HeloNameProblem(std::string_view name) {
  if (name.ends_with('.')) name.remove_suffix(1);
  if (name.empty()) return "empty";
  if (name.front() == '[' || IpAddress::Parse(name).ok()) return "an address literal, not a host name";
  if (SameDomainName(name, "localhost") || AsciiLower(name).ends_with(".localhost")) return "localhost";
  if (name.find('.') == std::string_view::npos) return "a single label, not a fully qualified name";
  if (name.size() > 253) return "longer than 253 characters";
  size_t start = 0;
  while (start <= name.size()) {
    const size_t end = std::min(name.find('.', start), name.size());
    const std::string_view label = name.substr(start, end - start);
    if (label.empty()) return "has an empty label";
    if (label.size() > 63) return fmt::format("label \"{}\" is longer than 63 characters", label);
    for (char c : label)
      if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-'))
        return fmt::format("label \"{}\" has the character '{}'", label, c);
    if (label.front() == '-' || label.back() == '-') return fmt::format("label \"{}\" starts or ends with '-'", label);
    start = end + 1;
  }
  return std::nullopt;
}

struct FcrdnsCheck::Work {
  Target target;
  IpReport* report;
  Done done;
  FcrdnsReport r;
  std::vector<ForwardResult> forward;  // one per PTR name
  size_t outstanding = 0;              // forward lookups + HELO lookup still open
  std::string ptr_name;                // the confirming PTR name, else the first
  std::optional<ForwardResult> helo_forward;
};

void FcrdnsCheck::CheckIp(const Target& target, IpReport* report, Done done) {
  auto work = std::make_shared<Work>(Work{target, report, std::move(done), {}, {}, 0, {}, {}});
  if (target.range) work->r.expected_ptr = target.range->expected_ptr;
  const std::string reverse = target.ip.ReverseDnsName();
  FollowCnames(env_.resolver, reverse, rrtype::kPtr, [this, work, reverse](FollowedAnswer a) {
    FcrdnsReport& r = work->r;
    if (!a.error.empty() || (a.response.status != DnsStatus::kNoError && a.response.status != DnsStatus::kNxDomain)) {
      r.result = FcrdnsResult::kTempError;
      r.reason = fmt::format("PTR lookup for {}: {}", reverse, a.error.empty() ? Failure(a.response) : a.error);
      return Finish(work);
    }
    for (const DnsRecord& rec : a.response.answers)
      if (std::find(r.ptr.begin(), r.ptr.end(), rec.target) == r.ptr.end() && r.ptr.size() < kMaxPtrNames)
        r.ptr.push_back(rec.target);
    if (r.ptr.empty()) {
      r.result = FcrdnsResult::kNoPtr;
      r.reason = fmt::format("no PTR record at {}{}", a.canonical,
                             a.response.status == DnsStatus::kNxDomain ? " (NXDOMAIN)" : " (no PTR in the answer)");
    }
    Forward(work);  // then Helo(), once we know which PTR name confirms
  });
}

void FcrdnsCheck::Forward(const std::shared_ptr<Work>& work) {
  const uint16_t qtype = work->target.ip.is_v4() ? rrtype::kA : rrtype::kAaaa;
  work->forward.resize(work->r.ptr.size());
  if (work->r.ptr.empty()) return Helo(work);
  work->outstanding += work->r.ptr.size();
  for (size_t i = 0; i < work->r.ptr.size(); ++i) {
    FollowCnames(env_.resolver, work->r.ptr[i], qtype, [this, work, i](FollowedAnswer a) {
      work->forward[i] = JudgeForward(work->target.ip, work->r.ptr[i], a);
      if (--work->outstanding == 0) Helo(work);
    });
  }
}

void FcrdnsCheck::Helo(const std::shared_ptr<Work>& work) {
  FcrdnsReport& r = work->r;
  // The confirming PTR name, else the first: a stale extra PTR must not become the HELO.
  std::string& ptr_name = work->ptr_name;
  ptr_name = r.ptr.empty() ? "" : r.ptr.front();
  for (size_t i = 0; i < r.ptr.size(); ++i) {
    if (work->forward[i].confirmed) {
      ptr_name = r.ptr[i];
      break;
    }
  }
  std::string name = work->target.range ? work->target.range->helo : "";
  if (name.find("{ptr}") != std::string::npos && ptr_name.empty()) name.clear();
  for (size_t p = name.find("{ptr}"); p != std::string::npos; p = name.find("{ptr}")) name.replace(p, 5, ptr_name);
  if (name.empty()) name = ptr_name;
  if (name.empty()) {
    if (work->outstanding == 0) Finish(work);
    return;
  }
  r.helo.emplace().name = name;
  if (auto problem = HeloNameProblem(name)) {
    r.helo->problems.push_back(HeloProblem::kNotFqdn);
    r.helo->detail = fmt::format("HELO {} is {}", name, *problem);
    if (work->outstanding == 0) Finish(work);
    return;
  }
  // The usual HELO is a PTR name whose addresses we just looked up: no second lookup.
  for (size_t i = 0; i < r.ptr.size(); ++i) {
    if (SameDomainName(r.ptr[i], name)) {
      work->helo_forward = work->forward[i];
      return Finish(work);
    }
  }
  // A fixed HELO is shared by the whole range: ask through the cycle cache.
  ++work->outstanding;
  const uint16_t qtype = work->target.ip.is_v4() ? rrtype::kA : rrtype::kAaaa;
  FollowCnames(env_.SharedResolver(), name, qtype, [this, work, name](FollowedAnswer a) {
    work->helo_forward = JudgeForward(work->target.ip, name, a);
    if (--work->outstanding == 0) Finish(work);
  });
}

void FcrdnsCheck::Finish(const std::shared_ptr<Work>& work) {
  FcrdnsReport& r = work->r;
  const IpAddress& ip = work->target.ip;
  if (!r.ptr.empty()) {
    std::vector<std::string> details;
    bool failed = false;
    for (size_t i = 0; i < r.ptr.size(); ++i) {
      if (work->forward[i].confirmed && r.confirmed.empty()) r.confirmed = r.ptr[i];
      failed |= work->forward[i].failed;
      details.push_back(work->forward[i].detail);
    }
    if (!r.confirmed.empty()) {
      r.result = FcrdnsResult::kPass;
    } else {
      r.result = failed ? FcrdnsResult::kTempError : FcrdnsResult::kFail;
      r.reason = fmt::format("{}", fmt::join(details, "; "));
    }
    for (const std::string& name : r.ptr) {
      if (auto why = GenericPtrReason(ip, name)) {
        r.generic = true;
        r.generic_name = name;
        r.generic_reason = fmt::format("{} {}", name, *why);
        break;
      }
    }
    if (!r.expected_ptr.empty())
      r.expected_ptr_ok = std::any_of(r.ptr.begin(), r.ptr.end(),
                                      [&](const std::string& n) { return MatchesNamePattern(r.expected_ptr, n); });
  } else if (!r.expected_ptr.empty()) {
    r.expected_ptr_ok = r.result == FcrdnsResult::kTempError;  // no name to judge unless we could not tell
  }
  if (r.helo && work->helo_forward) {
    HeloReport& h = *r.helo;
    const ForwardResult& f = *work->helo_forward;
    std::vector<std::string> words;
    if (f.failed) {
      h.problems.push_back(HeloProblem::kTempError);
      words.push_back(f.detail);
    } else if (!f.confirmed) {
      h.problems.push_back(f.no_address ? HeloProblem::kNoAddress : HeloProblem::kWrongAddress);
      words.push_back("HELO " + f.detail);
    }
    const bool matches_ptr = std::any_of(r.ptr.begin(), r.ptr.end(),
                                         [&](const std::string& n) { return SameDomainName(n, h.name); });
    if (!matches_ptr) {
      h.problems.push_back(HeloProblem::kPtrMismatch);
      words.push_back(r.ptr.empty() ? fmt::format("HELO {} but the address has no PTR name", h.name)
                                    : fmt::format("HELO {} is not the PTR name {}", h.name, work->ptr_name));
    }
    h.detail = fmt::format("{}", fmt::join(words, "; "));
  } else if (r.helo && !r.helo->ok()) {
    // not_fqdn was decided without a lookup; the PTR comparison still applies.
    HeloReport& h = *r.helo;
    if (std::none_of(r.ptr.begin(), r.ptr.end(), [&](const std::string& n) { return SameDomainName(n, h.name); })) {
      h.problems.push_back(HeloProblem::kPtrMismatch);
      h.detail += r.ptr.empty() ? "; the address has no PTR name" : fmt::format("; not the PTR name {}", work->ptr_name);
    }
  }
  work->report->fcrdns = std::move(r);
  work->done();
}

}  // namespace repwatch
