// Throughput of the MTA log parsers (agent/log_formats.h) on one core. Not a test;
// `scripts/bench.sh logs` builds it, runs it and records its output in docs/benchmarks.md.
//
// For each format it generates N realistic delivery lines (default 2,000,000): ~90% delivered,
// ~8% deferred (half of them Google's flattened 421-4.7.28 reply), ~2% bounced, from 256
// source addresses to ~100,000 recipients over 5,000 domains, one timestamp second per
// ~20 lines. PowerMTA's file starts with its header line. Lines are generated in chunks
// of 65,536 into one buffer, and only parsing is timed. The reference is a plain memchr
// line split over the same buffer, timed the same way: the ratio of the two rates is what
// to compare across machines and loads. For KumoMTA it also times nlohmann::json's DOM parse
// of the same lines (the parser reads JSON by hand because of that figure). Every generated
// line must come out as the event it was generated as (source and outcome of each; no
// malformed lines), and Postfix and Exim must reach 200,000 lines/s, else the exit status is 1.
//
// With --ingest DIR, the same lines are also written to a file in DIR and read end to end
// by the agent's own path: VolumeIngester::CatchUp, i.e. the tailer's preads, the parser and
// the SQLite store (one transaction per 50,000 lines, position included), on this thread.
// Its reference is a plain read() + memchr line split of the same file. The ingester must
// count every generated event, and its stored position must be the file's end.
//
//   repwatch_log_bench [--lines N] [--format postfix|exim|kumomta|powermta]... [--ingest DIR]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <filesystem>

#include "agent/clock.h"
#include "agent/log_formats.h"
#include "agent/volume_ingest.h"
#include "agent/volume_store.h"

using namespace repwatch;

namespace {

constexpr int kSources = 256;
constexpr int kDomains = 5000;
constexpr int kUsers = 100000;
constexpr long long kStart = 1741046400;  // 2025-03-04T00:00:00Z
constexpr size_t kChunk = 65536;

const char* const kBigDomains[] = {"gmail.com", "outlook.com", "yahoo.com", "hotmail.com", "icloud.com",
                                   "gmx.net",   "web.de",      "aol.com",   "comcast.net", "orange.fr"};

const std::string kGmail421 =
    "421-4.7.28 [%s      15] Our system has detected an unusual rate of 421-4.7.28 unsolicited mail originating "
    "from your IP address. To protect our 421-4.7.28 users from spam, mail sent from your IP address has been "
    "temporarily 421-4.7.28 rate limited. For more information, go to 421-4.7.28  "
    "https://support.google.com/mail/?p=UnsolicitedRateLimitError to 421 4.7.28 review our Bulk Email Senders "
    "Guidelines. a1si1234567qkb.89 - gsmtp";

struct Line {
  VolumeOutcome outcome;
  int source;       // 0..255
  int user;
  int domain;       // < 10: a big mailbox provider
  bool gmail_rate;  // deferred with Google's 421-4.7.28
  long long at;
  unsigned long long id;
};

class Generator {
 public:
  explicit Generator(uint64_t seed) : rng_(seed) {}
  Line Next(size_t i) {
    Line l{};
    const unsigned r = static_cast<unsigned>(rng_() % 1000);
    l.outcome = r < 900 ? VolumeOutcome::kDelivered : r < 980 ? VolumeOutcome::kDeferred : VolumeOutcome::kBounced;
    l.source = static_cast<int>(rng_() % kSources);
    l.user = static_cast<int>(rng_() % kUsers);
    l.domain = rng_() % 2 == 0 ? static_cast<int>(rng_() % 10) : static_cast<int>(rng_() % kDomains);
    l.gmail_rate = l.outcome == VolumeOutcome::kDeferred && rng_() % 2 == 0;
    if (l.gmail_rate) l.domain = 0;
    l.at = kStart + static_cast<long long>(i / 20);
    l.id = rng_();
    return l;
  }

 private:
  std::mt19937_64 rng_;
};

std::string Domain(int d) { return d < 10 ? kBigDomains[d] : "d" + std::to_string(d) + ".example"; }
std::string SourceIp(int s) { return "198.18.0." + std::to_string(s); }
std::string MxHost(int d) { return d == 0 ? "gmail-smtp-in.l.google.com" : "mx1." + Domain(d); }
std::string MxIp(int d) { return "198.51.100." + std::to_string(d % 250 + 1); }

// The remote reply of a failure, without MTA decoration.
std::string Reply(const Line& l) {
  char buf[1024];
  if (l.gmail_rate) {
    std::snprintf(buf, sizeof buf, kGmail421.c_str(), SourceIp(l.source).c_str());
    return buf;
  }
  if (l.outcome == VolumeOutcome::kDeferred) return "451 4.7.1 Service unavailable - try again later";
  std::snprintf(buf, sizeof buf,
                "550 5.1.1 <u%d@%s>: Recipient address rejected: User unknown in virtual mailbox table", l.user,
                Domain(l.domain).c_str());
  return buf;
}

void Civil(long long t, int* y, int* mo, int* d, int* h, int* mi, int* s) {
  const time_t tt = static_cast<time_t>(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  *y = tm.tm_year + 1900, *mo = tm.tm_mon + 1, *d = tm.tm_mday, *h = tm.tm_hour, *mi = tm.tm_min, *s = tm.tm_sec;
}

void Postfix(const Line& l, std::string* out) {
  static const char* const kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  int y, mo, d, h, mi, s;
  Civil(l.at, &y, &mo, &d, &h, &mi, &s);
  const std::string dom = Domain(l.domain);
  char buf[2048];
  const char* status = l.outcome == VolumeOutcome::kDelivered  ? "sent"
                       : l.outcome == VolumeOutcome::kDeferred ? "deferred"
                                                               : "bounced";
  const char* dsn = l.outcome == VolumeOutcome::kDelivered  ? "2.0.0"
                    : l.gmail_rate                          ? "4.7.28"
                    : l.outcome == VolumeOutcome::kDeferred ? "4.7.1"
                                                            : "5.1.1";
  std::string reply = l.outcome == VolumeOutcome::kDelivered
                          ? "250 2.0.0 OK  " + std::to_string(l.at) + " a" + std::to_string(l.id % 100000) + " - gsmtp"
                          : "host " + MxHost(l.domain) + "[" + MxIp(l.domain) + "] said: " + Reply(l) +
                                " (in reply to " + (l.gmail_rate ? "end of DATA" : "RCPT TO") + " command)";
  // Half the sources by syslog_name, half by a service name under postfix/.
  char tag[64];
  if (l.source % 2 == 0) {
    std::snprintf(tag, sizeof tag, "postfix-ip%d/smtp", l.source);
  } else {
    std::snprintf(tag, sizeof tag, "postfix/ip%dout/smtp", l.source);
  }
  std::snprintf(buf, sizeof buf,
                "%s %2d %02d:%02d:%02d mx1 %s[%llu]: %llX: to=<u%d@%s>, relay=%s[%s]:25, delay=1.2, "
                "delays=0.1/0/0.5/0.6, dsn=%s, status=%s (%s)\n",
                kMonths[mo - 1], d, h, mi, s, tag, 1000 + l.id % 60000, l.id & 0xFFFFFFFFFFull, l.user, dom.c_str(),
                MxHost(l.domain).c_str(), MxIp(l.domain).c_str(), dsn, status, reply.c_str());
  *out += buf;
}

void Exim(const Line& l, std::string* out) {
  int y, mo, d, h, mi, s;
  Civil(l.at, &y, &mo, &d, &h, &mi, &s);
  const std::string dom = Domain(l.domain);
  static const char kB62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  char id[17];
  unsigned long long v = l.id;
  for (int i = 0; i < 16; ++i, v /= 62) id[i] = kB62[v % 62];
  id[6] = id[13] = '-';
  id[16] = '\0';
  char buf[2048];
  const std::string host = MxHost(l.domain), ip = MxIp(l.domain), src = SourceIp(l.source);
  const unsigned port = 30000 + static_cast<unsigned>(l.id % 30000);
  if (l.outcome == VolumeOutcome::kDelivered) {
    std::snprintf(buf, sizeof buf,
                  "%04d-%02d-%02d %02d:%02d:%02d %s => u%d@%s R=dnslookup T=remote_smtp H=%s [%s]:25 I=[%s]:%u "
                  "X=TLS1.3:TLS_AES_256_GCM_SHA384:256 CV=yes C=\"250 2.0.0 OK id=%llu\" QT=2s DT=1s\n",
                  y, mo, d, h, mi, s, id, l.user, dom.c_str(), host.c_str(), ip.c_str(), src.c_str(), port,
                  l.id % 1000000);
  } else {
    const std::string command = l.gmail_rate ? "end of data" : "RCPT TO:<u" + std::to_string(l.user) + "@" + dom + ">";
    std::snprintf(buf, sizeof buf,
                  "%04d-%02d-%02d %02d:%02d:%02d %s %s u%d@%s R=dnslookup T=remote_smtp %sH=%s [%s]:25 I=[%s]:%u "
                  "X=TLS1.3:TLS_AES_256_GCM_SHA384:256 CV=yes: SMTP error from remote mail server after %s: %s\n",
                  y, mo, d, h, mi, s, id, l.outcome == VolumeOutcome::kDeferred ? "==" : "**", l.user, dom.c_str(),
                  l.outcome == VolumeOutcome::kDeferred ? "defer (-44) " : "", host.c_str(), ip.c_str(), src.c_str(),
                  port, command.c_str(), Reply(l).c_str());
  }
  *out += buf;
}

void KumoMta(const Line& l, std::string* out) {
  const std::string dom = Domain(l.domain);
  const char* type = l.outcome == VolumeOutcome::kDelivered ? "Delivery"
                     : l.outcome == VolumeOutcome::kDeferred ? "TransientFailure"
                                                             : "Bounce";
  int code = 250, cls = 2, subject = 0, detail = 0;
  std::string content = "OK id=" + std::to_string(l.id % 1000000);
  if (l.outcome != VolumeOutcome::kDelivered) {
    const std::string r = Reply(l);  // "421-4.7.28 ..." / "451 4.7.1 ..." / "550 5.1.1 <...>..."
    code = std::atoi(r.c_str());
    std::sscanf(r.c_str() + 4, "%d.%d.%d", &cls, &subject, &detail);
    content = r.substr(r.find(' ', 4) + 1);
  }
  char buf[4096];
  std::snprintf(buf, sizeof buf,
                "{\"type\":\"%s\",\"id\":\"%016llx%016llx\",\"sender\":\"bounce@d.example\",\"recipient\":\"u%d@%s\","
                "\"queue\":\"%s\",\"site\":\"%s\",\"size\":2100,\"response\":{\"code\":%d,\"enhanced_code\":"
                "{\"class\":%d,\"subject\":%d,\"detail\":%d},\"content\":\"%s\",\"command\":\".\"},"
                "\"peer_address\":{\"name\":\"%s.\",\"addr\":\"%s\"},\"timestamp\":%lld,\"created\":%lld,"
                "\"num_attempts\":0,\"bounce_classification\":\"Uncategorized\",\"egress_pool\":\"pool0\","
                "\"egress_source\":\"ip%d\",\"feedback_report\":null,\"meta\":{},\"headers\":{},"
                "\"delivery_protocol\":\"ESMTP\",\"reception_protocol\":null,"
                "\"nodeid\":\"d8e014c7-eaeb-4683-a56e-61324e91b1fc\",\"source_address\":{\"address\":\"%s:%u\","
                "\"server\":null,\"protocol\":null}}\n",
                type, l.id, ~l.id, l.user, dom.c_str(), dom.c_str(), MxHost(l.domain).c_str(), code, cls, subject,
                detail, content.c_str(), MxHost(l.domain).c_str(), MxIp(l.domain).c_str(), l.at, l.at - 2, l.source,
                SourceIp(l.source).c_str(), 30000 + static_cast<unsigned>(l.id % 30000));
  *out += buf;
}

const char kPmtaHeader[] =
    "type,timeLogged,timeQueued,orig,rcpt,orcpt,dsnAction,dsnStatus,dsnDiag,dsnMta,bounceCat,srcType,srcMta,dlvType,"
    "dlvSourceIp,dlvDestinationIp,dlvEsmtpAvailable,dlvSize,vmta,jobId,envId,queue,vmtaPool\n";

void PowerMta(const Line& l, std::string* out) {
  int y, mo, d, h, mi, s;
  Civil(l.at, &y, &mo, &d, &h, &mi, &s);
  const std::string dom = Domain(l.domain);
  const char* type = l.outcome == VolumeOutcome::kDelivered  ? "d"
                     : l.outcome == VolumeOutcome::kDeferred ? "t"
                                                             : "b";
  const char* action = l.outcome == VolumeOutcome::kDelivered ? "relayed"
                       : l.outcome == VolumeOutcome::kDeferred ? "delayed"
                                                               : "failed";
  std::string status = "2.0.0 (success)", diag = "smtp;250 2.0.0 OK id=" + std::to_string(l.id % 1000000);
  if (l.outcome != VolumeOutcome::kDelivered) {
    const std::string r = Reply(l);
    status = r.substr(4, r.find(' ', 4) - 4) + " (undefined status)";
    diag = "\"smtp;" + r + "\"";  // quoted: these replies hold commas in real life
  }
  char buf[2048];
  std::snprintf(buf, sizeof buf,
                "%s,%04d-%02d-%02d %02d:%02d:%02d+0000,%04d-%02d-%02d %02d:%02d:%02d+0000,bounce@d.example,u%d@%s,,"
                "%s,%s,%s,%s (%s),%s,smtp,mta1.d.example (192.0.2.1),smtp,%s,%s,\"PIPELINING,8BITMIME,SIZE,STARTTLS\","
                "2345,vmta-ip%d,job%llu,,%s/vmta-ip%d,pool-a\n",
                type, y, mo, d, h, mi, s, y, mo, d, h, mi, s, l.user, dom.c_str(), action, status.c_str(),
                diag.c_str(), MxHost(l.domain).c_str(), MxIp(l.domain).c_str(),
                l.outcome == VolumeOutcome::kBounced ? "bad-mailbox" : "", SourceIp(l.source).c_str(),
                MxIp(l.domain).c_str(), l.source, l.id % 100, dom.c_str(), l.source);
  *out += buf;
}

struct BenchResult {
  size_t lines = 0, bytes = 0;
  double parse_s = 0, reference_s = 0, nlohmann_s = 0;  // nlohmann: kumomta only
  size_t events = 0, ignored = 0, malformed = 0, by_outcome[3] = {0, 0, 0}, want[3] = {0, 0, 0};
  bool fields_ok = true;
};

std::map<std::string, IpAddress> Tags() {
  std::map<std::string, IpAddress> tags;
  for (int s = 0; s < kSources; ++s) {
    const std::string key = s % 2 == 0 ? "postfix-ip" + std::to_string(s) : "ip" + std::to_string(s) + "out";
    tags.emplace(key, IpAddress::Parse(SourceIp(s)).value());
  }
  return tags;
}

// `file`: when open, every generated chunk is also appended to it (for --ingest).
BenchResult Run(LogFormat format, size_t n, std::FILE* file) {
  auto parser = MakeLineParser(format, Tags());
  const long long now = kStart + static_cast<long long>(n / 20) + 3600;
  Generator gen(42);
  BenchResult r;
  std::string buf;
  VolumeEvent ev;
  std::vector<Line> truth;
  volatile size_t sink = 0;
  for (size_t done = 0; done < n;) {
    const size_t count = std::min(kChunk, n - done);
    buf.clear();
    truth.clear();
    if (format == LogFormat::kPowerMta && done == 0) buf += kPmtaHeader;
    for (size_t i = 0; i < count; ++i) {
      truth.push_back(gen.Next(done + i));
      const Line& l = truth.back();
      ++r.want[static_cast<int>(l.outcome)];
      switch (format) {
        case LogFormat::kPostfix: Postfix(l, &buf); break;
        case LogFormat::kExim: Exim(l, &buf); break;
        case LogFormat::kKumoMta: KumoMta(l, &buf); break;
        case LogFormat::kPowerMta: PowerMta(l, &buf); break;
      }
    }
    r.bytes += buf.size();
    if (file != nullptr && std::fwrite(buf.data(), 1, buf.size(), file) != buf.size()) {
      std::perror("writing the --ingest file");
      std::exit(2);
    }

    // Reference: split the buffer into lines with memchr, nothing else.
    auto t0 = std::chrono::steady_clock::now();
    size_t lines = 0, sum = 0;
    for (const char *p = buf.data(), *end = p + buf.size(); p < end;) {
      const char* nl = static_cast<const char*>(std::memchr(p, '\n', static_cast<size_t>(end - p)));
      if (nl == nullptr) nl = end;
      sum += static_cast<size_t>(nl - p);
      ++lines;
      p = nl + 1;
    }
    sink = sink + sum;
    auto t1 = std::chrono::steady_clock::now();
    r.reference_s += std::chrono::duration<double>(t1 - t0).count();

    // The parsers: the same split, each line parsed into one reused event.
    size_t k = 0;
    t0 = std::chrono::steady_clock::now();
    for (const char *p = buf.data(), *end = p + buf.size(); p < end;) {
      const char* nl = static_cast<const char*>(std::memchr(p, '\n', static_cast<size_t>(end - p)));
      if (nl == nullptr) nl = end;
      switch (parser->Parse(std::string_view(p, static_cast<size_t>(nl - p)), now, &ev)) {
        case LineKind::kEvent:
          ++r.events;
          ++r.by_outcome[static_cast<int>(ev.outcome)];
          // Every event against the line it was generated from (source and outcome).
          if (k < truth.size() && (ev.ip.bytes()[3] != truth[k].source || ev.outcome != truth[k].outcome))
            r.fields_ok = false;
          ++k;
          break;
        case LineKind::kIgnored: ++r.ignored; break;
        case LineKind::kMalformed: ++r.malformed; break;
      }
      p = nl + 1;
    }
    t1 = std::chrono::steady_clock::now();
    r.parse_s += std::chrono::duration<double>(t1 - t0).count();

    // KumoMTA: what nlohmann::json's DOM parse alone costs on the same lines (the parser reads JSON by hand).
    if (format == LogFormat::kKumoMta) {
      size_t objects = 0;
      t0 = std::chrono::steady_clock::now();
      for (const char *p = buf.data(), *end = p + buf.size(); p < end;) {
        const char* nl = static_cast<const char*>(std::memchr(p, '\n', static_cast<size_t>(end - p)));
        if (nl == nullptr) nl = end;
        const nlohmann::json j = nlohmann::json::parse(p, nl, nullptr, /*allow_exceptions=*/false);
        objects += j.is_object() ? 1 : 0;
        p = nl + 1;
      }
      t1 = std::chrono::steady_clock::now();
      sink = sink + objects;
      r.nlohmann_s += std::chrono::duration<double>(t1 - t0).count();
    }
    r.lines += lines;
    done += count;
  }
  return r;
}

struct IngestResult {
  double ingest_s = 0, reference_s = 0;
  uint64_t lines = 0, events = 0, malformed = 0, offset = 0, size = 0;
  std::string error;
};

// The file read the agent's way (tailer + parser + store, on this thread), and the
// reference: read() + memchr over the same file, nothing else.
IngestResult Ingest(LogFormat format, const std::string& dir, const std::string& path) {
  IngestResult r;
  r.size = std::filesystem::file_size(path);
  auto t0 = std::chrono::steady_clock::now();
  {
    const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    std::vector<char> buf(1 << 20);
    size_t lines = 0;
    for (ssize_t got; (got = read(fd, buf.data(), buf.size())) > 0;)
      for (const char *p = buf.data(), *end = p + got; (p = static_cast<const char*>(std::memchr(p, '\n', end - p)));
           ++p)
        ++lines;
    close(fd);
    volatile size_t sink = lines;
    (void)sink;
  }
  r.reference_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  const std::string state = dir + "/state";
  std::filesystem::remove_all(state);
  std::filesystem::create_directories(state);
  auto store = VolumeStore::Open(state);
  if (!store.ok()) {
    r.error = store.error();
    return r;
  }
  VolumeConfig config;
  VolumeSourceConfig source;
  source.name = "bench";
  source.format = format;
  source.path = path;
  source.tags = Tags();
  config.sources.push_back(source);
  SystemClock clock;
  VolumeIngester ingester(config, *store.value(), clock);
  t0 = std::chrono::steady_clock::now();
  const Status s = ingester.CatchUp();
  r.ingest_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!s.ok()) r.error = s.message();
  const SourceStats st = ingester.Stats().at(0);
  r.lines = st.lines;
  r.events = st.events;
  r.malformed = st.malformed;
  if (auto pos = store.value()->Position("bench"); pos.ok() && pos.value()) r.offset = pos.value()->offset;
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  size_t n = 2000000;
  std::vector<LogFormat> formats;
  std::string ingest_dir;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--ingest" && i + 1 < argc) {
      ingest_dir = argv[++i];
    } else if (a == "--lines" && i + 1 < argc) {
      n = std::strtoul(argv[++i], nullptr, 10);
    } else if (a == "--format" && i + 1 < argc && ParseLogFormat(argv[i + 1])) {
      formats.push_back(*ParseLogFormat(argv[++i]));
    } else {
      std::fprintf(stderr,
                   "usage: repwatch_log_bench [--lines N] [--format postfix|exim|kumomta|powermta]... [--ingest DIR]\n");
      return 2;
    }
  }
  if (n == 0) n = 1;
  if (formats.empty()) formats = {LogFormat::kPostfix, LogFormat::kExim, LogFormat::kKumoMta, LogFormat::kPowerMta};

  bool ok = true;
  for (LogFormat f : formats) {
    const std::string file_path = ingest_dir.empty() ? "" : ingest_dir + "/" + std::string(LogFormatName(f)) + ".log";
    std::FILE* file = file_path.empty() ? nullptr : std::fopen(file_path.c_str(), "w");
    if (!file_path.empty() && file == nullptr) {
      std::perror(file_path.c_str());
      return 2;
    }
    const BenchResult r = Run(f, n, file);
    if (file != nullptr) std::fclose(file);
    const double rate = static_cast<double>(r.lines) / r.parse_s;
    const double ref = static_cast<double>(r.lines) / r.reference_s;
    const bool exact = r.malformed == 0 && r.fields_ok && r.by_outcome[0] == r.want[0] &&
                       r.by_outcome[1] == r.want[1] && r.by_outcome[2] == r.want[2] &&
                       r.ignored == (f == LogFormat::kPowerMta ? 1u : 0u);
    const bool target = f != LogFormat::kPostfix && f != LogFormat::kExim ? true : rate >= 200000;
    ok = ok && exact && target;
    const double mb = static_cast<double>(r.bytes) / 1e6;
    std::printf("- %s: %zu lines (%.1f MB, %.0f bytes/line) in %.3f s => %.0f lines/s",
                std::string(LogFormatName(f)).c_str(), r.lines, mb, 1e6 * mb / static_cast<double>(r.lines), r.parse_s,
                rate);
    if (f == LogFormat::kPostfix || f == LogFormat::kExim)
      std::printf(" (target >= 200000: %s)", rate >= 200000 ? "met" : "MISSED");
    std::printf("\n  reference, memchr line split of the same buffers: %.0f lines/s; parsing runs at %.2f%% of it\n",
                ref, 100.0 * rate / ref);
    if (r.nlohmann_s > 0)
      std::printf("  nlohmann::json::parse (DOM) of the same lines, nothing else: %.0f lines/s\n",
                  static_cast<double>(r.lines) / r.nlohmann_s);
    std::printf("  events %zu (delivered %zu, deferred %zu, bounced %zu), ignored %zu, malformed %zu: %s\n", r.events,
                r.by_outcome[0], r.by_outcome[1], r.by_outcome[2], r.ignored, r.malformed,
                exact ? "as generated" : "NOT as generated");
    if (!file_path.empty()) {
      const IngestResult in = Ingest(f, ingest_dir, file_path);
      const bool in_ok = in.error.empty() && in.events == r.events && in.malformed == 0 && in.offset == in.size;
      ok = ok && in_ok;
      std::printf("  end to end (tailer + parser + SQLite store, one transaction per 50,000 lines): %.3f s => %.0f "
                  "lines/s; reference, read() + memchr of the same file: %.0f lines/s; %llu events stored, position "
                  "%llu of %llu bytes: %s\n",
                  in.ingest_s, static_cast<double>(in.lines) / in.ingest_s,
                  static_cast<double>(in.lines) / in.reference_s, static_cast<unsigned long long>(in.events),
                  static_cast<unsigned long long>(in.offset), static_cast<unsigned long long>(in.size),
                  in_ok ? "all of them" : ("WRONG " + in.error).c_str());
      std::filesystem::remove(file_path);
      std::filesystem::remove_all(ingest_dir + "/state");
    }
    std::fflush(stdout);
  }
  return ok ? 0 : 1;
}
