#include "agent/log_formats.h"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>
#include <ctime>
#include <functional>
#include <vector>

#include "agent/text.h"

namespace repwatch {
namespace {

// No MTA writes a delivery line this long; a longer one (a runaway or binary file)
// is rejected before any scanning.
constexpr size_t kMaxLine = 64 * 1024;

constexpr std::string_view::size_type npos = std::string_view::npos;

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsAlnum(char c) { return IsDigit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

// The value of the `n` decimal digits at s[pos], or -1.
int Digits(std::string_view s, size_t pos, size_t n) {
  if (pos + n > s.size()) return -1;
  int v = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (!IsDigit(s[i])) return -1;
    v = v * 10 + (s[i] - '0');
  }
  return v;
}

bool StartsWithNoCase(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i)
    if (AsciiLower(s[i]) != AsciiLower(prefix[i])) return false;
  return true;
}

// The common prelude: a trailing '\r' (CRLF files) is dropped; nullopt for a line
// too long to be a log line.
std::optional<std::string_view> Prepare(std::string_view line) {
  if (line.size() > kMaxLine) return std::nullopt;
  if (line.ends_with('\r')) line.remove_suffix(1);
  return line;
}

bool IsBlank(std::string_view line) { return line.find_first_not_of(" \t") == npos; }

// --- addresses ------------------------------------------------------------------------------------------

// IPv4 or IPv6 text (as IpAddress::Parse, without its heap copy); an IPv6 zone ("%eth0") is dropped.
std::optional<IpAddress> ParseIp(std::string_view text) {
  if (const size_t pct = text.find('%'); pct != npos && text.find(':') != npos) text = text.substr(0, pct);
  if (text.empty() || text.size() > 45) return std::nullopt;
  bool v6 = false;
  for (char c : text) {
    if (c == ':') {
      v6 = true;
    } else if (!IsDigit(c) && c != '.' && !((c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
      return std::nullopt;
    }
  }
  char buf[48];
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  if (!v6) {
    in_addr a4{};
    if (inet_pton(AF_INET, buf, &a4) != 1) return std::nullopt;
    return IpAddress::V4(ntohl(a4.s_addr));
  }
  std::array<uint8_t, 16> b{};
  if (inet_pton(AF_INET6, buf, b.data()) != 1) return std::nullopt;
  return IpAddress::V6(b);
}

bool IsPort(std::string_view s) {
  if (s.empty() || s.size() > 5) return false;
  unsigned v = 0;
  for (char c : s) {
    if (!IsDigit(c)) return false;
    v = v * 10 + static_cast<unsigned>(c - '0');
  }
  return v <= 65535;
}

// "ip:port", "[v6]:port" (Rust's SocketAddr), or a bare address.
std::optional<IpAddress> ParseSocketAddress(std::string_view text) {
  if (text.starts_with('[')) {
    const size_t close = text.find(']');
    if (close == npos) return std::nullopt;
    const std::string_view rest = text.substr(close + 1);
    if (!rest.empty() && !(rest[0] == ':' && IsPort(rest.substr(1)))) return std::nullopt;
    return ParseIp(text.substr(1, close - 1));
  }
  const size_t colon = text.find(':');
  if (colon != npos && text.find(':', colon + 1) == npos) {  // one colon: IPv4 with a port
    if (!IsPort(text.substr(colon + 1))) return std::nullopt;
    return ParseIp(text.substr(0, colon));
  }
  return ParseIp(text);
}

// --- receivers ------------------------------------------------------------------------------------------

// The domain of an address ("bob@Example.ORG" -> "Example.ORG"); empty without one.
std::string_view DomainOf(std::string_view address) {
  const size_t at = address.rfind('@');
  if (at == npos) return {};
  return address.substr(at + 1);
}

// out = lowercase `name` without a trailing dot (reuses out's buffer).
void SetLower(std::string* out, std::string_view name) {
  if (name.ends_with('.')) name.remove_suffix(1);
  out->assign(name);
  for (char& c : *out) c = AsciiLower(c);
}

// The recipient's domain, else the fallback host name.
void SetReceiver(std::string* out, std::string_view recipient, std::string_view fallback_host) {
  const std::string_view domain = DomainOf(recipient);
  SetLower(out, domain.empty() ? fallback_host : domain);
}

// --- time -----------------------------------------------------------------------------------------------

struct Civil {
  int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
};

bool IsLeap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

int DaysInMonth(int y, int m) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && IsLeap(y) ? 29 : kDays[m - 1];
}

bool Valid(const Civil& c) {
  return c.year >= 1970 && c.year <= 9999 && c.month >= 1 && c.month <= 12 && c.day >= 1 &&
         c.day <= DaysInMonth(c.year, c.month) && c.hour <= 23 && c.minute <= 59 && c.second <= 60;
}

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
long long DaysFromCivil(long long y, int m, int d) {
  y -= m <= 2;
  const long long era = (y >= 0 ? y : y - 399) / 400;
  const long long yoe = y - era * 400;
  const long long doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const long long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

long long UtcSeconds(const Civil& c) {
  return DaysFromCivil(c.year, c.month, c.day) * 86400 + c.hour * 3600 + c.minute * 60 + c.second;
}

// Wall-clock times without a zone are the local time of the host that wrote the log,
// which is the host the agent tails it on. mktime is called once per distinct minute
// (log lines come in time order), so this costs almost nothing per line.
class LocalTime {
 public:
  std::optional<long long> ToUnix(const Civil& c) {
    const long long key = ((((static_cast<long long>(c.year) * 16 + c.month) * 32 + c.day) * 32 + c.hour) * 64) +
                          c.minute;
    if (key != minute_key_) {
      std::tm tm{};
      tm.tm_year = c.year - 1900;
      tm.tm_mon = c.month - 1;
      tm.tm_mday = c.day;
      tm.tm_hour = c.hour;
      tm.tm_min = c.minute;
      tm.tm_isdst = -1;
      const std::time_t t = std::mktime(&tm);
      if (t == static_cast<std::time_t>(-1)) return std::nullopt;
      minute_key_ = key;
      minute_unix_ = t;
    }
    return minute_unix_ + c.second;
  }

  // The local calendar year of a Unix time.
  int YearOf(long long unix) {
    if (unix >= year_begin_ && unix < year_end_) return year_;
    const std::time_t t = static_cast<std::time_t>(unix);
    std::tm tm{};
    if (localtime_r(&t, &tm) == nullptr) return 1970;
    year_ = tm.tm_year + 1900;
    std::tm b{};
    b.tm_year = year_ - 1900;
    b.tm_mday = 1;
    b.tm_isdst = -1;
    std::tm e = b;
    e.tm_year += 1;
    year_begin_ = std::mktime(&b);
    year_end_ = std::mktime(&e);
    return year_;
  }

 private:
  long long minute_key_ = -1;
  long long minute_unix_ = 0;
  int year_ = 0;
  long long year_begin_ = 0, year_end_ = 0;
};

// "Z", "+01:00", "+0100", "-05" at s[*pos]: the offset east of UTC in seconds.
std::optional<int> ParseZone(std::string_view s, size_t* pos) {
  size_t p = *pos;
  if (p < s.size() && s[p] == 'Z') {
    *pos = p + 1;
    return 0;
  }
  if (p >= s.size() || (s[p] != '+' && s[p] != '-')) return std::nullopt;
  const int sign = s[p] == '-' ? -1 : 1;
  const int hh = Digits(s, p + 1, 2);
  if (hh < 0 || hh > 23) return std::nullopt;
  p += 3;
  int mm = 0;
  if (p < s.size() && s[p] == ':') ++p;
  if (const int m = Digits(s, p, 2); m >= 0) {
    if (m > 59) return std::nullopt;
    mm = m;
    p += 2;
  }
  *pos = p;
  return sign * (hh * 3600 + mm * 60);
}

// "YYYY-MM-DD<sep>HH:MM:SS[.fraction]" at s[*pos] (the fraction is dropped).
bool ParseDateTime(std::string_view s, size_t* pos, char sep, Civil* c) {
  const size_t p = *pos;
  if (p + 19 > s.size() || s[p + 4] != '-' || s[p + 7] != '-' || s[p + 10] != sep || s[p + 13] != ':' ||
      s[p + 16] != ':')
    return false;
  c->year = Digits(s, p, 4);
  c->month = Digits(s, p + 5, 2);
  c->day = Digits(s, p + 8, 2);
  c->hour = Digits(s, p + 11, 2);
  c->minute = Digits(s, p + 14, 2);
  c->second = Digits(s, p + 17, 2);
  if (!Valid(*c)) return false;  // also catches the -1 of a non-digit
  size_t q = p + 19;
  if (q < s.size() && (s[q] == '.' || s[q] == ',') && q + 1 < s.size() && IsDigit(s[q + 1])) {
    ++q;
    while (q < s.size() && IsDigit(s[q])) ++q;
  }
  *pos = q;
  return true;
}

// Unix seconds of a parsed time: exact with an offset, else local time.
std::optional<long long> ToUnix(const Civil& c, std::optional<int> offset, LocalTime& local) {
  if (offset) return UtcSeconds(c) - *offset;
  return local.ToUnix(c);
}

// An RFC 3339 or "YYYY-MM-DD HH:MM:SS[+zone]" timestamp that must fill `text`.
std::optional<long long> ParseTimestampText(std::string_view text, char sep, LocalTime& local) {
  size_t p = 0;
  Civil c;
  if (!ParseDateTime(text, &p, sep, &c)) return std::nullopt;
  std::optional<int> offset;
  if (p < text.size() && !(offset = ParseZone(text, &p))) return std::nullopt;
  if (p != text.size()) return std::nullopt;
  return ToUnix(c, offset, local);
}

// RFC 3164 "Mar  4 10:11:12" at the start of s; the year is that of `now` (local time),
// or an earlier one when that would put the line more than a day in the future
// (a December line read in January; Feb 29 of the last leap year).
std::optional<long long> ParseSyslogTime(std::string_view s, size_t* pos, long long now, LocalTime& local) {
  static constexpr std::string_view kMonths = "JanFebMarAprMayJunJulAugSepOctNovDec";
  if (s.size() < 15 || s[3] != ' ') return std::nullopt;
  Civil c;
  for (int m = 0; m < 12; ++m)
    if (s.substr(0, 3) == kMonths.substr(static_cast<size_t>(m) * 3, 3)) c.month = m + 1;
  if (c.month == 0) return std::nullopt;
  size_t p = 4;
  if (s[p] == ' ') ++p;  // space-padded day
  if (p < s.size() && IsDigit(s[p])) c.day = s[p++] - '0';
  if (p < s.size() && IsDigit(s[p])) c.day = c.day * 10 + (s[p++] - '0');
  if (c.day == 0 || p + 9 > s.size() || s[p] != ' ' || s[p + 3] != ':' || s[p + 6] != ':') return std::nullopt;
  c.hour = Digits(s, p + 1, 2);
  c.minute = Digits(s, p + 4, 2);
  c.second = Digits(s, p + 7, 2);
  p += 9;
  if (p + 1 < s.size() && s[p] == '.' && IsDigit(s[p + 1])) {  // high-precision variants
    ++p;
    while (p < s.size() && IsDigit(s[p])) ++p;
  }
  const int year = local.YearOf(now);
  for (c.year = year; c.year >= year - 8; --c.year) {
    if (!Valid(c)) continue;
    const std::optional<long long> t = local.ToUnix(c);
    if (!t) return std::nullopt;
    if (*t <= now + 86400) {
      *pos = p;
      return t;
    }
  }
  return std::nullopt;
}

// --- postfix --------------------------------------------------------------------------------------------

class PostfixParser final : public LineParser {
 public:
  explicit PostfixParser(const std::map<std::string, IpAddress>& tags) : tags_(tags.begin(), tags.end()) {}

  LineKind Parse(std::string_view raw, long long now, VolumeEvent* out) override {
    const std::optional<std::string_view> prepared = Prepare(raw);
    if (!prepared) return LineKind::kMalformed;
    const std::string_view line = *prepared;
    if (IsBlank(line)) return LineKind::kIgnored;
    if (now <= 0) now = static_cast<long long>(std::time(nullptr));

    // Timestamp: RFC 3339 (rsyslog's file format) or RFC 3164.
    size_t p = 0;
    std::optional<long long> at;
    if (IsDigit(line[0])) {
      Civil c;
      if (!ParseDateTime(line, &p, 'T', &c)) return LineKind::kMalformed;
      std::optional<int> offset;
      if (p < line.size() && line[p] != ' ' && !(offset = ParseZone(line, &p))) return LineKind::kMalformed;
      at = ToUnix(c, offset, local_);
    } else {
      at = ParseSyslogTime(line, &p, now, local_);
    }
    if (!at || p >= line.size() || line[p] != ' ') return LineKind::kMalformed;

    // "<host> <tag>[pid]: " (some set-ups log no host).
    while (p < line.size() && line[p] == ' ') ++p;
    size_t end = line.find(' ', p);
    if (end == npos) return LineKind::kMalformed;
    std::string_view token = line.substr(p, end - p);
    if (!token.ends_with(':')) {
      p = end + 1;
      end = line.find(' ', p);
      token = line.substr(p, (end == npos ? line.size() : end) - p);
      if (!token.ends_with(':')) return LineKind::kIgnored;  // "last message repeated 3 times", ...
    }
    if (end == npos) return LineKind::kIgnored;
    token.remove_suffix(1);
    if (const size_t bracket = token.find('['); bracket != npos) {
      if (!token.ends_with(']')) return LineKind::kIgnored;
      token = token.substr(0, bracket);
    }
    const IpAddress* ip = Source(token);
    if (ip == nullptr) return LineKind::kIgnored;  // another daemon, or an unmapped smtp tag

    // "<queue id>: to=<rcpt>, [orig_to=<...>, ]relay=host[ip]:port, ..., status=<word> (<reply>)"
    p = end + 1;
    size_t q = p;
    while (q < line.size() && IsAlnum(line[q])) ++q;
    if (q == p || line.substr(q, 6) != ": to=<") return LineKind::kIgnored;  // "connect to ...", "warning: ..."
    const size_t rcpt_begin = q + 6;
    const size_t rcpt_end = line.find(">,", rcpt_begin);
    if (rcpt_end == npos) return LineKind::kMalformed;
    const std::string_view rcpt = line.substr(rcpt_begin, rcpt_end - rcpt_begin);
    static constexpr std::string_view kStatus = ", status=";
    const size_t status = line.find(kStatus, rcpt_end);
    if (status == npos) return LineKind::kMalformed;
    const size_t word_begin = status + kStatus.size();
    const size_t word_end = line.find(' ', word_begin);
    const std::string_view word = line.substr(word_begin, (word_end == npos ? line.size() : word_end) - word_begin);
    VolumeOutcome outcome;
    if (word == "sent") {
      outcome = VolumeOutcome::kDelivered;
    } else if (word == "deferred") {
      outcome = VolumeOutcome::kDeferred;
    } else if (word == "bounced") {
      outcome = VolumeOutcome::kBounced;
    } else {
      return word.empty() ? LineKind::kMalformed : LineKind::kIgnored;  // expired, deliverable (verify), ...
    }
    if (word_end == npos || line.substr(word_end, 2) != " (" || !line.ends_with(')')) return LineKind::kMalformed;
    std::string_view relay;
    static constexpr std::string_view kRelay = ", relay=";
    if (const size_t r = line.find(kRelay, rcpt_end); r != npos && r < status) {
      relay = line.substr(r + kRelay.size());
      relay = relay.substr(0, relay.find_first_of("[,"));
      if (relay == "none") relay = {};
    }

    out->ip = *ip;
    out->outcome = outcome;
    out->count = 1;
    SetReceiver(&out->receiver, rcpt, relay);
    out->at = *at;
    if (outcome == VolumeOutcome::kDelivered) {
      out->reply.clear();
    } else {
      out->reply.assign(line.substr(word_end + 2, line.size() - word_end - 3));
    }
    return LineKind::kEvent;
  }

 private:
  // The source address of a syslog tag ("postfix-ip2/smtp", "postfix/ip2out/smtp",
  // "postfix/smtp-ip2"), or null. Only the SMTP client's lines count: the process
  // must be "smtp", unless the process name is itself a mapped service name.
  const IpAddress* Source(std::string_view tag) const {
    const size_t slash = tag.rfind('/');
    const std::string_view process = slash == npos ? tag : tag.substr(slash + 1);
    if (process != "smtp") return Find(process);
    if (slash == npos) return nullptr;
    const std::string_view name = tag.substr(0, slash);  // the syslog_name
    if (const IpAddress* ip = Find(name)) return ip;
    const size_t prev = name.rfind('/');
    if (prev == npos) return nullptr;
    return Find(name.substr(prev + 1));  // the service of "postfix/ip2out/smtp"
  }

  const IpAddress* Find(std::string_view key) const {
    if (key.empty()) return nullptr;
    const auto it = tags_.find(key);
    return it == tags_.end() ? nullptr : &it->second;
  }

  std::map<std::string, IpAddress, std::less<>> tags_;
  LocalTime local_;
};

// --- exim -----------------------------------------------------------------------------------------------

// "1tpAbC-000123-Xy" (before 4.97) or "1tpAbC-00000000123-XyZA".
bool IsEximId(std::string_view id) {
  const size_t d1 = id.find('-');
  const size_t d2 = d1 == npos ? npos : id.find('-', d1 + 1);
  if (d1 != 6 || d2 == npos) return false;
  const size_t mid = d2 - d1 - 1, tail = id.size() - d2 - 1;
  if (mid < 6 || mid > 11 || tail < 2 || tail > 4) return false;
  for (size_t i = 0; i < id.size(); ++i)
    if (i != d1 && i != d2 && !IsAlnum(id[i])) return false;
  return true;
}

class EximParser final : public LineParser {
 public:
  LineKind Parse(std::string_view raw, long long /*now*/, VolumeEvent* out) override {
    const std::optional<std::string_view> prepared = Prepare(raw);
    if (!prepared) return LineKind::kMalformed;
    const std::string_view line = *prepared;
    if (IsBlank(line)) return LineKind::kIgnored;

    // "YYYY-MM-DD HH:MM:SS[.ms][ +zone] [[pid] ]<id> <flag> <rcpt> ..."
    size_t p = 0;
    Civil c;
    if (!ParseDateTime(line, &p, ' ', &c)) return LineKind::kMalformed;
    std::optional<int> offset;
    if (p < line.size() && (line[p] == '+' || line[p] == '-')) {
      if (!(offset = ParseZone(line, &p))) return LineKind::kMalformed;
    } else if (p + 2 < line.size() && line[p] == ' ' && (line[p + 1] == '+' || line[p + 1] == '-') &&
               IsDigit(line[p + 2])) {
      ++p;
      if (!(offset = ParseZone(line, &p))) return LineKind::kMalformed;
    }
    if (p >= line.size() || line[p] != ' ') return LineKind::kMalformed;
    ++p;
    if (p < line.size() && line[p] == '[') {  // log_selector +pid
      const size_t close = line.find("] ", p);
      if (close == npos) return LineKind::kMalformed;
      p = close + 2;
    }
    size_t end = line.find(' ', p);
    if (end == npos || !IsEximId(line.substr(p, end - p))) return LineKind::kIgnored;  // "Start queue run", ...
    p = end + 1;
    const std::string_view flag = line.substr(p, 3);
    VolumeOutcome outcome;
    if (flag == "=> " || flag == "-> ") {
      outcome = VolumeOutcome::kDelivered;
    } else if (flag == "== ") {
      outcome = VolumeOutcome::kDeferred;
    } else if (flag == "** ") {
      outcome = VolumeOutcome::kBounced;
    } else {
      return LineKind::kIgnored;  // "<=" arrival, "*>" suppressed, "Completed", ...
    }
    p += 3;
    end = line.find(' ', p);
    if (end == p) return LineKind::kMalformed;
    const std::string_view rcpt = line.substr(p, (end == npos ? line.size() : end) - p);
    if (end == npos) return LineKind::kIgnored;  // "** bob@example.org" with no transport: no source

    // I=[ip]:port (log_selector +outgoing_interface). Without it the source is unknown.
    static constexpr std::string_view kInterface = " I=[";
    const size_t i = line.find(kInterface, end);
    if (i == npos) return LineKind::kIgnored;
    const size_t ip_begin = i + kInterface.size();
    const size_t close = line.find(']', ip_begin);
    if (close == npos) return LineKind::kMalformed;
    const std::optional<IpAddress> ip = ParseIp(line.substr(ip_begin, close - ip_begin));
    if (!ip) return LineKind::kMalformed;
    size_t after = close + 1;
    if (after < line.size() && line[after] == ':' && after + 1 < line.size() && IsDigit(line[after + 1])) {
      const size_t port_begin = ++after;
      while (after < line.size() && IsDigit(line[after])) ++after;
      if (!IsPort(line.substr(port_begin, after - port_begin))) return LineKind::kMalformed;
    }
    if (after < line.size() && line[after] != ' ' && line[after] != ':') return LineKind::kMalformed;

    const std::optional<long long> at = ToUnix(c, offset, local_);
    if (!at) return LineKind::kMalformed;

    std::string_view host;  // H=name [ip]:port; "H=[ip]" has no name
    static constexpr std::string_view kHost = " H=";
    if (const size_t h = line.find(kHost, end); h != npos && h < i) {
      host = line.substr(h + kHost.size());
      host = host.substr(0, host.find(' '));
      if (host.starts_with('[')) host = {};
    }

    out->ip = *ip;
    out->outcome = outcome;
    out->count = 1;
    SetReceiver(&out->receiver, rcpt, host);
    out->at = *at;
    out->reply.clear();
    if (outcome != VolumeOutcome::kDelivered) out->reply.assign(FailureReply(line, after));
    return LineKind::kEvent;
  }

 private:
  // The remote reply of a "**" or "==" line: what follows "SMTP error from remote mail
  // server after <command>: " (and an older Exim's "host <name> [<ip>]: "), else the
  // text after the fields ("...I=[ip]:port: Remote host closed connection ...").
  static std::string_view FailureReply(std::string_view line, size_t from) {
    static constexpr std::string_view kSmtpError = "SMTP error from remote mail server after ";
    if (const size_t m = line.find(kSmtpError, from); m != npos) {
      const size_t colon = line.find(": ", m + kSmtpError.size());
      if (colon == npos) return line.substr(m + kSmtpError.size());
      std::string_view reply = line.substr(colon + 2);
      if (reply.starts_with("host ")) {
        const size_t bracket = reply.find("]: ");
        if (bracket != npos && reply.substr(0, bracket).find(" [") != npos) reply.remove_prefix(bracket + 3);
      }
      return reply;
    }
    const size_t colon = line.find(": ", from);
    return colon == npos ? std::string_view() : line.substr(colon + 2);
  }

  LocalTime local_;
};

// --- kumomta --------------------------------------------------------------------------------------------

// A strict RFC 8259 reader for one line, by hand: nlohmann::json builds a DOM (a map
// node and a string per member); its parse alone took ~40-50k KumoMTA records/s on one
// core here, the whole KumoMTA parser with this reader ~400k (tests/bench/log_parse_bench.cc
// prints both). It validates the whole text (as nlohmann does, except that it does not
// check UTF-8 and nests at most 64 deep) and hands out views of values; strings are
// unescaped only when read. tests/agent/log_formats_test.cc checks it against nlohmann.
class JsonReader {
 public:
  enum class Kind { kNull, kBool, kNumber, kString, kArray, kObject };
  struct Value {
    Kind kind = Kind::kNull;
    std::string_view text;  // a string's content without quotes (escapes kept); else the whole token
    bool escaped = false;   // a string with backslash escapes
  };

  // Calls member(key, value) for each member of the object that `text` must hold
  // (whitespace around it allowed); false when `text` is not exactly one valid object.
  // Keys are compared raw: the names KumoMTA writes need no escapes.
  template <typename F>
  static bool Object(std::string_view text, F&& member) {
    JsonReader r(text);
    r.Ws();
    if (!r.Members(0, member)) return false;
    r.Ws();
    return r.p_ == r.s_.size();
  }

  // A string value's text, unescaped (into *scratch when it has escapes).
  static std::string_view Text(const Value& v, std::string* scratch) {
    if (!v.escaped) return v.text;
    scratch->clear();
    AppendUnescaped(v.text, scratch);
    return *scratch;
  }

  static void AppendUnescaped(std::string_view s, std::string* out) {
    for (size_t i = 0; i < s.size(); ++i) {
      if (s[i] != '\\') {
        *out += s[i];
        continue;
      }
      const char e = s[++i];
      switch (e) {
        case 'b': *out += '\b'; break;
        case 'f': *out += '\f'; break;
        case 'n': *out += '\n'; break;
        case 'r': *out += '\r'; break;
        case 't': *out += '\t'; break;
        case 'u': {
          uint32_t cp = Hex4(s.substr(i + 1));
          i += 4;
          if (cp >= 0xD800 && cp <= 0xDBFF) {  // validated: a low surrogate follows
            cp = 0x10000 + ((cp - 0xD800) << 10) + (Hex4(s.substr(i + 3)) - 0xDC00);
            i += 6;
          }
          AppendUtf8(cp, out);
          break;
        }
        default: *out += e;  // " \ /
      }
    }
  }

  // A number without fraction or exponent that fits a long long.
  static std::optional<long long> Integer(const Value& v) {
    if (v.kind != Kind::kNumber || v.text.find_first_of(".eE") != npos) return std::nullopt;
    long long n = 0;
    const auto [end, ec] = std::from_chars(v.text.data(), v.text.data() + v.text.size(), n);
    if (ec != std::errc() || end != v.text.data() + v.text.size()) return std::nullopt;
    return n;
  }

  // Calls element(value) for each element of a (validated) array value.
  template <typename F>
  static void ForEachElement(const Value& array, F&& element) {
    JsonReader r(array.text);
    r.Elements(0, element);
  }

  static std::optional<double> Double(const Value& v) {
    if (v.kind != Kind::kNumber) return std::nullopt;
    double d = 0;
    const auto [end, ec] = std::from_chars(v.text.data(), v.text.data() + v.text.size(), d);
    if (ec != std::errc() || end != v.text.data() + v.text.size()) return std::nullopt;
    return d;
  }

 private:
  explicit JsonReader(std::string_view s) : s_(s) {}

  static constexpr int kMaxDepth = 64;

  static int HexDigit(char c) {
    if (IsDigit(c)) return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }
  // Four hex digits, or 0xFFFFFFFF.
  static uint32_t Hex4(std::string_view s) {
    if (s.size() < 4) return 0xFFFFFFFF;
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      const int d = HexDigit(s[static_cast<size_t>(i)]);
      if (d < 0) return 0xFFFFFFFF;
      v = v << 4 | static_cast<uint32_t>(d);
    }
    return v;
  }
  static void AppendUtf8(uint32_t cp, std::string* out) {
    if (cp < 0x80) {
      *out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      *out += static_cast<char>(0xC0 | cp >> 6);
      *out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      *out += static_cast<char>(0xE0 | cp >> 12);
      *out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      *out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      *out += static_cast<char>(0xF0 | cp >> 18);
      *out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      *out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      *out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  char Peek() const { return p_ < s_.size() ? s_[p_] : '\0'; }
  void Ws() {
    while (p_ < s_.size() && (s_[p_] == ' ' || s_[p_] == '\t' || s_[p_] == '\n' || s_[p_] == '\r')) ++p_;
  }

  // At '{': reads the members up to and with the '}'.
  template <typename F>
  bool Members(int depth, F&& member) {
    if (Peek() != '{' || depth > kMaxDepth) return false;
    ++p_;
    Ws();
    if (Peek() == '}') {
      ++p_;
      return true;
    }
    while (true) {
      Value key, value;
      if (!String(&key)) return false;
      Ws();
      if (Peek() != ':') return false;
      ++p_;
      Ws();
      if (!Read(depth + 1, &value)) return false;
      member(key.text, value);
      Ws();
      if (Peek() == ',') {
        ++p_;
        Ws();
        continue;
      }
      if (Peek() != '}') return false;
      ++p_;
      return true;
    }
  }

  bool Read(int depth, Value* v) {
    const size_t begin = p_;
    switch (Peek()) {
      case '{':
        v->kind = Kind::kObject;
        if (!Members(depth, [](std::string_view, const Value&) {})) return false;
        break;
      case '[':
        v->kind = Kind::kArray;
        if (!Elements(depth, [](const Value&) {})) return false;
        break;
      case '"': return String(v);
      case 't': v->kind = Kind::kBool; return Literal("true", v);
      case 'f': v->kind = Kind::kBool; return Literal("false", v);
      case 'n': v->kind = Kind::kNull; return Literal("null", v);
      default: return Number(v);
    }
    v->text = s_.substr(begin, p_ - begin);
    return true;
  }

  template <typename F>
  bool Elements(int depth, F&& element) {
    if (Peek() != '[' || depth > kMaxDepth) return false;
    ++p_;
    Ws();
    if (Peek() == ']') {
      ++p_;
      return true;
    }
    while (true) {
      Value value;
      if (!Read(depth + 1, &value)) return false;
      element(value);
      Ws();
      if (Peek() == ',') {
        ++p_;
        Ws();
        continue;
      }
      if (Peek() != ']') return false;
      ++p_;
      return true;
    }
  }

  bool Literal(std::string_view word, Value* v) {
    if (s_.substr(p_, word.size()) != word) return false;
    v->text = s_.substr(p_, word.size());
    p_ += word.size();
    return true;
  }

  // -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?, finite as a double (like nlohmann:
  // "1e999" is an error; "1e-999" is 0).
  bool Number(Value* v) {
    const size_t begin = p_;
    auto digits = [this] {
      const size_t from = p_;
      while (p_ < s_.size() && IsDigit(s_[p_])) ++p_;
      return p_ - from;
    };
    if (Peek() == '-') ++p_;
    size_t integer_digits = 1;
    if (Peek() == '0') {
      ++p_;
    } else if ((integer_digits = digits()) == 0) {
      return false;
    }
    if (Peek() == '.') {
      ++p_;
      if (digits() == 0) return false;
    }
    const size_t exponent_at = p_;
    if (Peek() == 'e' || Peek() == 'E') {
      ++p_;
      if (Peek() == '+' || Peek() == '-') ++p_;
      if (digits() == 0) return false;
    }
    v->kind = Kind::kNumber;
    v->text = s_.substr(begin, p_ - begin);
    if (exponent_at == p_ && integer_digits < 300) return true;  // cannot overflow
    double d = 0;
    if (std::from_chars(v->text.data(), v->text.data() + v->text.size(), d).ec != std::errc::result_out_of_range)
      return true;
    // Out of range: an overflow when the magnitude's decimal exponent is positive, else an underflow.
    long long exponent = 0;
    if (exponent_at != p_) {
      const std::string_view e = s_.substr(exponent_at + 1, p_ - exponent_at - 1);
      const bool negative = e.starts_with('-');
      const std::string_view digits_only = e.substr(e.starts_with('-') || e.starts_with('+') ? 1 : 0);
      // Saturates: anything past 18 digits is beyond any double either way.
      for (char c : digits_only.substr(0, 18)) exponent = exponent * 10 + (c - '0');
      if (negative) exponent = -exponent;
    }
    return exponent + static_cast<long long>(integer_digits) <= 0;
  }

  // At '"': a string with valid escapes (surrogates paired) and no raw control characters.
  bool String(Value* v) {
    if (Peek() != '"') return false;
    const size_t begin = ++p_;
    v->kind = Kind::kString;
    v->escaped = false;
    while (p_ < s_.size()) {
      const char c = s_[p_];
      if (c == '"') {
        v->text = s_.substr(begin, p_ - begin);
        ++p_;
        return true;
      }
      if (static_cast<unsigned char>(c) < 0x20) return false;
      if (c != '\\') {
        ++p_;
        continue;
      }
      v->escaped = true;
      const char e = Peek2();
      if (e == 'u') {
        const uint32_t cp = Hex4(s_.substr(p_ + 2));
        if (cp == 0xFFFFFFFF || (cp >= 0xDC00 && cp <= 0xDFFF)) return false;
        p_ += 6;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          const uint32_t low = s_.substr(p_, 2) == "\\u" ? Hex4(s_.substr(p_ + 2)) : 0xFFFFFFFF;
          if (low < 0xDC00 || low > 0xDFFF) return false;
          p_ += 6;
        }
      } else if (e == '"' || e == '\\' || e == '/' || e == 'b' || e == 'f' || e == 'n' || e == 'r' || e == 't') {
        p_ += 2;
      } else {
        return false;
      }
    }
    return false;
  }
  char Peek2() const { return p_ + 1 < s_.size() ? s_[p_ + 1] : '\0'; }

  std::string_view s_;
  size_t p_ = 0;
};

using JsonValue = JsonReader::Value;
using JsonKind = JsonReader::Kind;

// The member `key` of an object value (the last one, as JSON parsers keep), or nullopt.
std::optional<JsonValue> Member(const JsonValue& object, std::string_view key) {
  std::optional<JsonValue> found;
  if (object.kind != JsonKind::kObject) return found;
  JsonReader::Object(object.text, [&](std::string_view k, const JsonValue& v) {
    if (k == key) found = v;
  });
  return found;
}

void AppendInteger(long long v, std::string* out) {
  char buf[24];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  out->append(buf, static_cast<size_t>(end - buf));
}

class KumoMtaParser final : public LineParser {
 public:
  LineKind Parse(std::string_view raw, long long /*now*/, VolumeEvent* out) override {
    const std::optional<std::string_view> prepared = Prepare(raw);
    if (!prepared) return LineKind::kMalformed;
    const std::string_view line = *prepared;
    if (IsBlank(line)) return LineKind::kIgnored;

    std::optional<JsonValue> type, source, timestamp, recipient, peer, response;
    const bool valid = JsonReader::Object(line, [&](std::string_view key, const JsonValue& v) {
      if (key == "type") {
        type = v;
      } else if (key == "source_address") {
        source = v;
      } else if (key == "timestamp") {
        timestamp = v;
      } else if (key == "recipient") {
        recipient = v;
      } else if (key == "peer_address") {
        peer = v;
      } else if (key == "response") {
        response = v;
      }
    });
    if (!valid || !type || type->kind != JsonKind::kString) return LineKind::kMalformed;
    const std::string_view t = JsonReader::Text(*type, &scratch_);
    VolumeOutcome outcome;
    if (t == "Delivery") {
      outcome = VolumeOutcome::kDelivered;
    } else if (t == "TransientFailure") {
      outcome = VolumeOutcome::kDeferred;
    } else if (t == "Bounce") {
      outcome = VolumeOutcome::kBounced;
    } else {
      return LineKind::kIgnored;  // Reception, Expiration, AdminBounce, OOB, Feedback, ...
    }

    // source_address {address: "ip:port"} (since 2024.09.02); null when no connection was made.
    if (!source || source->kind == JsonKind::kNull) return LineKind::kIgnored;
    const std::optional<JsonValue> address = source->kind == JsonKind::kObject ? Member(*source, "address") : source;
    if (!address || address->kind != JsonKind::kString) return LineKind::kMalformed;
    const std::optional<IpAddress> ip = ParseSocketAddress(JsonReader::Text(*address, &scratch_));
    if (!ip) return LineKind::kMalformed;

    // timestamp: Unix seconds (an integer; a float or RFC 3339 text tolerated).
    std::optional<long long> at;
    if (!timestamp) return LineKind::kMalformed;
    if (timestamp->kind == JsonKind::kString) {
      at = ParseTimestampText(JsonReader::Text(*timestamp, &scratch_), 'T', local_);
    } else if (!(at = JsonReader::Integer(*timestamp))) {
      const std::optional<double> d = JsonReader::Double(*timestamp);
      if (d && *d > 0 && *d < kMaxUnix) at = static_cast<long long>(*d);
    }
    if (!at || *at <= 0 || *at >= kMaxUnix) return LineKind::kMalformed;

    // recipient: a string (an array in batched records: one attempt per recipient).
    uint32_t count = 1;
    std::string_view rcpt;
    if (recipient && recipient->kind == JsonKind::kString) {
      rcpt = JsonReader::Text(*recipient, &rcpt_);
    } else if (recipient && recipient->kind == JsonKind::kArray) {
      bool strings = true;
      std::optional<JsonValue> first;
      count = 0;
      JsonReader::ForEachElement(*recipient, [&](const JsonValue& v) {
        strings = strings && v.kind == JsonKind::kString;
        if (!first) first = v;
        ++count;
      });
      if (!strings || count == 0) return LineKind::kMalformed;
      rcpt = JsonReader::Text(*first, &rcpt_);
    } else {
      return LineKind::kMalformed;
    }
    std::string_view mx;
    if (peer)
      if (const std::optional<JsonValue> name = Member(*peer, "name"); name && name->kind == JsonKind::kString)
        mx = JsonReader::Text(*name, &scratch_);

    out->ip = *ip;
    out->outcome = outcome;
    out->count = count;
    SetReceiver(&out->receiver, rcpt, mx);
    out->at = *at;
    out->reply.clear();
    if (outcome != VolumeOutcome::kDelivered && response) Reply(*response, &out->reply);
    return LineKind::kEvent;
  }

 private:
  static constexpr long long kMaxUnix = 253402300800;  // 10000-01-01

  // "<code> <class.subject.detail> <content>", leaving out what is missing.
  static void Reply(const JsonValue& response, std::string* out) {
    std::optional<JsonValue> code, enhanced, content;
    if (response.kind != JsonKind::kObject) return;
    JsonReader::Object(response.text, [&](std::string_view key, const JsonValue& v) {
      if (key == "code") {
        code = v;
      } else if (key == "enhanced_code") {
        enhanced = v;
      } else if (key == "content") {
        content = v;
      }
    });
    if (const std::optional<long long> c = code ? JsonReader::Integer(*code) : std::nullopt) AppendInteger(*c, out);
    if (enhanced && enhanced->kind == JsonKind::kObject) {
      std::optional<long long> cls, subject, detail;
      JsonReader::Object(enhanced->text, [&](std::string_view key, const JsonValue& v) {
        if (key == "class") {
          cls = JsonReader::Integer(v);
        } else if (key == "subject") {
          subject = JsonReader::Integer(v);
        } else if (key == "detail") {
          detail = JsonReader::Integer(v);
        }
      });
      if (cls && subject && detail) {
        if (!out->empty()) *out += ' ';
        AppendInteger(*cls, out);
        *out += '.';
        AppendInteger(*subject, out);
        *out += '.';
        AppendInteger(*detail, out);
      }
    }
    if (content && content->kind == JsonKind::kString && !content->text.empty()) {
      if (!out->empty()) *out += ' ';
      if (content->escaped) {
        JsonReader::AppendUnescaped(content->text, out);
      } else {
        out->append(content->text);
      }
    }
  }

  std::string scratch_, rcpt_;
  LocalTime local_;
};

// --- powermta -------------------------------------------------------------------------------------------

class PowerMtaParser final : public LineParser {
 public:
  LineKind Parse(std::string_view raw, long long /*now*/, VolumeEvent* out) override {
    const std::optional<std::string_view> prepared = Prepare(raw);
    if (!prepared) return LineKind::kMalformed;
    const std::string_view line = *prepared;
    if (IsBlank(line)) return LineKind::kIgnored;
    if (!Split(line.starts_with("\xEF\xBB\xBF") ? line.substr(3) : line)) return LineKind::kMalformed;  // a BOM
    const std::string_view type = fields_[0].text;
    if (type == "type") return ReadHeader();
    if (fields_.size() == 1) return LineKind::kMalformed;  // not CSV at all
    // Record types are short words (d, b, t, tq, r, rb, rs, f, ...); anything else in
    // the first column is not a record, e.g. a line of text that happens to hold a comma.
    if (type.size() > 8 || !std::all_of(type.begin(), type.end(), [](char c) { return IsAlnum(c) || c == '_'; }))
      return LineKind::kMalformed;

    // A header is bound to the first record type that follows it, so files with one
    // header per record type are read right even when the types interleave later.
    if (pending_bind_) {
      pending_bind_ = false;
      const auto it = bound_.find(type);
      if (it == bound_.end()) {
        bound_.emplace(std::string(type), current_);
      } else {
        it->second = current_;
      }
    }
    const Header* h = Choose(type);
    if (h == nullptr) return LineKind::kMalformed;  // no header seen yet

    std::string_view kind = type;
    if (kind.empty() && h->dsn_action >= 0) kind = Field(h->dsn_action);
    VolumeOutcome outcome;
    if (kind == "d" || kind == "relayed" || kind == "delivered") {
      outcome = VolumeOutcome::kDelivered;
    } else if (kind == "b" || kind == "failed") {
      outcome = VolumeOutcome::kBounced;
    } else if (kind == "t" || kind == "tq" || kind == "delayed") {
      outcome = VolumeOutcome::kDeferred;
    } else {
      return LineKind::kIgnored;  // r (receipt), rb / rs (remote bounce / status), f (feedback), ...
    }

    // A record has its header's columns (fewer: truncated); the source and the time are required.
    if (fields_.size() != h->columns || h->source_ip < 0 || h->time_logged < 0) return LineKind::kMalformed;
    const std::string_view source = Field(h->source_ip);
    if (source.empty()) return LineKind::kIgnored;  // no connection was made (expired, ...)
    const std::optional<IpAddress> ip = ParseIp(source);
    if (!ip) return LineKind::kMalformed;
    const std::optional<long long> at = ParseTimestampText(Field(h->time_logged), ' ', local_);
    if (!at) return LineKind::kMalformed;

    out->ip = *ip;
    out->outcome = outcome;
    out->count = 1;
    // The receiver: the recipient's domain, else the name of dsnMta "mx.example.org (198.51.100.25)".
    std::string_view mx = h->dsn_mta >= 0 && Present(h->dsn_mta) ? Field(h->dsn_mta) : std::string_view();
    mx = mx.substr(0, mx.find(' '));
    if (mx.starts_with('(') || mx.starts_with('[')) mx = {};
    if (h->rcpt >= 0 && Present(h->rcpt)) {
      Unescaped(h->rcpt, &scratch_);
      SetReceiver(&out->receiver, scratch_, mx);
    } else {
      SetReceiver(&out->receiver, {}, mx);
    }
    out->at = *at;
    out->reply.clear();
    if (outcome != VolumeOutcome::kDelivered) SetReply(*h, &out->reply);
    return LineKind::kEvent;
  }

 private:
  struct Header {
    size_t columns = 0;
    int time_logged = -1, rcpt = -1, dsn_action = -1, dsn_status = -1, dsn_diag = -1, dsn_mta = -1, source_ip = -1;
    bool operator==(const Header&) const = default;
  };
  struct FieldView {
    std::string_view text;  // without the quotes; doubled quotes still doubled
    bool doubled_quotes = false;
  };

  // Splits a CSV line into fields_ (RFC 4180 quoting). False for an unterminated quote
  // or text after a closing quote.
  bool Split(std::string_view line) {
    fields_.clear();
    size_t p = 0;
    while (true) {
      FieldView f;
      if (p < line.size() && line[p] == '"') {
        const size_t begin = ++p;
        while (true) {
          const size_t quote = line.find('"', p);
          if (quote == npos) return false;
          if (quote + 1 < line.size() && line[quote + 1] == '"') {
            f.doubled_quotes = true;
            p = quote + 2;
            continue;
          }
          f.text = line.substr(begin, quote - begin);
          p = quote + 1;
          break;
        }
        if (p < line.size() && line[p] != ',') return false;
      } else {
        const size_t comma = line.find(',', p);
        f.text = line.substr(p, (comma == npos ? line.size() : comma) - p);
        p = comma == npos ? line.size() : comma;
      }
      fields_.push_back(f);
      if (p >= line.size()) return true;
      ++p;  // the comma
    }
  }

  LineKind ReadHeader() {
    Header h;
    h.columns = fields_.size();
    for (size_t i = 0; i < fields_.size(); ++i) {
      const std::string_view name = fields_[i].text;
      const int index = static_cast<int>(i);
      if (name == "timeLogged") h.time_logged = index;
      if (name == "rcpt") h.rcpt = index;
      if (name == "dsnAction") h.dsn_action = index;
      if (name == "dsnStatus") h.dsn_status = index;
      if (name == "dsnDiag") h.dsn_diag = index;
      if (name == "dsnMta") h.dsn_mta = index;
      if (name == "dlvSourceIp") h.source_ip = index;
    }
    current_ = -1;
    for (size_t i = 0; i < headers_.size(); ++i)
      if (headers_[i] == h) current_ = static_cast<int>(i);
    if (current_ < 0) {
      if (headers_.size() >= 64) {  // a file rewriting its header endlessly: start over
        headers_.clear();
        bound_.clear();
      }
      headers_.push_back(h);
      current_ = static_cast<int>(headers_.size()) - 1;
    }
    pending_bind_ = true;
    return LineKind::kIgnored;
  }

  // The header for a record: the one bound to its type, else the latest; the one whose
  // column count fits the record is preferred.
  const Header* Choose(std::string_view type) const {
    const Header* bound = nullptr;
    if (const auto it = bound_.find(type); it != bound_.end()) bound = &headers_[static_cast<size_t>(it->second)];
    const Header* latest = current_ >= 0 ? &headers_[static_cast<size_t>(current_)] : nullptr;
    if (bound != nullptr && bound->columns == fields_.size()) return bound;
    if (latest != nullptr && latest->columns == fields_.size()) return latest;
    return bound != nullptr ? bound : latest;
  }

  bool Present(int index) const { return static_cast<size_t>(index) < fields_.size(); }
  std::string_view Field(int index) const { return fields_[static_cast<size_t>(index)].text; }

  void Unescaped(int index, std::string* out) const {
    const FieldView& f = fields_[static_cast<size_t>(index)];
    out->assign(f.text);
    if (!f.doubled_quotes) return;
    size_t w = 0;
    for (size_t r = 0; r < out->size(); ++r, ++w) {
      (*out)[w] = (*out)[r];
      if ((*out)[r] == '"') ++r;  // the second of a doubled quote
    }
    out->resize(w);
  }

  // dsnDiag without its "smtp;" type ("smtp;421 4.7.28 ..." -> "421 4.7.28 ..."); when it
  // carries no reply code, the enhanced code of dsnStatus ("4.4.1 (no answer from host)") leads.
  void SetReply(const Header& h, std::string* out) {
    std::string_view diag;
    if (h.dsn_diag >= 0 && Present(h.dsn_diag)) {
      Unescaped(h.dsn_diag, &scratch_);
      diag = scratch_;
      if (StartsWithNoCase(diag, "smtp;")) diag.remove_prefix(5);
      while (diag.starts_with(' ')) diag.remove_prefix(1);
    }
    if (diag.size() >= 3 && IsDigit(diag[0]) && IsDigit(diag[1]) && IsDigit(diag[2])) {
      out->assign(diag);
      return;
    }
    std::string_view status = h.dsn_status >= 0 && Present(h.dsn_status) ? Field(h.dsn_status) : std::string_view();
    if (!status.empty() && !diag.empty()) status = status.substr(0, status.find(' '));
    out->assign(status);
    if (!out->empty() && !diag.empty()) *out += ' ';
    out->append(diag);
  }

  std::vector<FieldView> fields_;
  std::vector<Header> headers_;
  int current_ = -1;
  bool pending_bind_ = false;
  std::map<std::string, int, std::less<>> bound_;  // record type -> index in headers_
  std::string scratch_;
  LocalTime local_;
};

}  // namespace

std::string_view LogFormatName(LogFormat f) {
  switch (f) {
    case LogFormat::kPostfix: return "postfix";
    case LogFormat::kExim: return "exim";
    case LogFormat::kKumoMta: return "kumomta";
    case LogFormat::kPowerMta: return "powermta";
  }
  return "postfix";
}

std::optional<LogFormat> ParseLogFormat(std::string_view name) {
  for (LogFormat f : {LogFormat::kPostfix, LogFormat::kExim, LogFormat::kKumoMta, LogFormat::kPowerMta})
    if (name == LogFormatName(f)) return f;
  return std::nullopt;
}

std::unique_ptr<LineParser> MakeLineParser(LogFormat format, const std::map<std::string, IpAddress>& postfix_tags) {
  switch (format) {
    case LogFormat::kPostfix: return std::make_unique<PostfixParser>(postfix_tags);
    case LogFormat::kExim: return std::make_unique<EximParser>();
    case LogFormat::kKumoMta: return std::make_unique<KumoMtaParser>();
    case LogFormat::kPowerMta: return std::make_unique<PowerMtaParser>();
  }
  return nullptr;
}

}  // namespace repwatch
