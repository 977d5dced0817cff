#include "checks/mx_probe.h"

#include <catch2/catch.hpp>

#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "agent/scheduler.h"
#include "agent/targets.h"
#include "builders.h"
#include "fakes.h"

namespace repwatch {
namespace {

using testing::ARecord;
using testing::Answer;
using testing::FakeClock;
using testing::FakeResolver;
using testing::Failure;
using testing::PtrRecord;

// What a scripted server does. Replies are raw lines, as on the wire without CRLF.
struct FakeServer {
  std::optional<DialError> dial_error;
  std::vector<std::string> banner = {"220 mx.test ESMTP"};
  // Replies by command verb (EHLO, STARTTLS, MAIL, RCPT, QUIT); a verb with no
  // entry is answered "250 ok" (QUIT "221", STARTTLS "220"); an empty reply means
  // the server never answers.
  std::map<std::string, std::vector<std::string>> replies;
  std::vector<std::string> ehlo_after_tls;  // empty: the same as before TLS
  std::optional<std::string> tls_error;     // the handshake fails with this
  TlsInfo tls{"TLSv1.3", "TLS_AES_256_GCM_SHA384", true, "mx.test"};
  std::chrono::milliseconds session_time{0};  // each session holds the connection this long
};

// Everything every connection did, for the assertions.
struct Journal {
  std::mutex mu;
  std::vector<std::string> lines;                // "127.0.0.25 < EHLO probe.test", "127.0.0.25 connect"
  std::map<std::string, int> open, max_open;     // per destination
  int open_total = 0, max_open_total = 0;
  void Add(std::string line) {
    std::lock_guard lock(mu);
    lines.push_back(std::move(line));
  }
  std::vector<std::string> Lines() {
    std::lock_guard lock(mu);
    return lines;
  }
};

class FakeConnection final : public SmtpConnection {
 public:
  FakeConnection(const FakeServer& server, std::string dest, Journal& journal)
      : server_(server), dest_(std::move(dest)), journal_(journal) {
    pending_.push_back(server.banner);
    std::lock_guard lock(journal_.mu);
    journal_.max_open[dest_] = std::max(journal_.max_open[dest_], ++journal_.open[dest_]);
    journal_.max_open_total = std::max(journal_.max_open_total, ++journal_.open_total);
  }
  ~FakeConnection() override {
    std::this_thread::sleep_for(server_.session_time);
    std::lock_guard lock(journal_.mu);
    --journal_.open[dest_];
    --journal_.open_total;
  }
  Result<SmtpReply> ReadReply(Deadline) override {
    if (pending_.empty() || pending_.front().empty()) return Status::Error("timeout");
    SmtpReply reply;
    for (const std::string& line : pending_.front()) {
      bool last = false;
      if (!AppendReplyLine(reply, line, &last)) return Status::Error("malformed reply line \"" + line + "\"");
    }
    pending_.pop_front();
    return reply;
  }
  Status SendLine(std::string_view line, Deadline) override {
    journal_.Add(dest_ + " < " + std::string(line));
    const std::string verb(line.substr(0, line.find_first_of(" :")));
    if (verb == "EHLO" && tls_up_ && !server_.ehlo_after_tls.empty()) {
      pending_.push_back(server_.ehlo_after_tls);
    } else if (auto it = server_.replies.find(verb); it != server_.replies.end()) {
      pending_.push_back(it->second);
    } else {
      pending_.push_back({verb == "QUIT" ? "221 bye" : verb == "STARTTLS" ? "220 2.0.0 Ready to start TLS" : "250 ok"});
    }
    return Status::Ok();
  }
  Result<TlsInfo> StartTls(const std::string& server_name, Deadline) override {
    journal_.Add(dest_ + " TLS " + server_name);
    if (server_.tls_error) return Status::Error(*server_.tls_error);
    tls_up_ = true;
    return server_.tls;
  }

 private:
  const FakeServer& server_;
  std::string dest_;
  Journal& journal_;
  std::deque<std::vector<std::string>> pending_;
  bool tls_up_ = false;
};

class FakeDialer final : public SmtpDialer {
 public:
  std::variant<Connected, DialError> Connect(const IpAddress& source, const IpAddress& dest, uint16_t port,
                                             Deadline) override {
    const std::string d = dest.ToString();
    journal.Add(d + " connect from " + source.ToString() + " port " + std::to_string(port));
    auto it = servers.find(d);
    if (it == servers.end()) return DialError{DialErrorKind::kRefused, "connection refused"};
    if (it->second.dial_error) return *it->second.dial_error;
    return Connected{std::make_unique<FakeConnection>(it->second, d, journal)};
  }
  std::map<std::string, FakeServer> servers;
  Journal journal;
};

// A gate that only counts (RunMxSession alone, one thread).
class CountingGate final : public HostGate {
 public:
  void Acquire(const std::string& a) override { held.insert(a), ++acquired; }
  void Release(const std::string& a) override { held.erase(a); }
  std::set<std::string> held;
  int acquired = 0;
};

IpAddress Ip(const char* text) { return IpAddress::Parse(text).value(); }

MxSessionPlan Plan(std::vector<MxHost> hosts) {
  MxSessionPlan p;
  p.domain = "receiver.test";
  p.source = Ip("192.0.2.10");
  p.helo = "out1.acme.test";
  p.hosts = std::move(hosts);
  p.mail_from = "probe@acme.test";
  p.rcpt_to = "postmaster@receiver.test";
  p.connect_timeout = std::chrono::milliseconds(1500);
  p.banner_timeout = std::chrono::milliseconds(1500);
  p.command_timeout = std::chrono::milliseconds(3000);
  return p;
}

MxHost Host(const char* name, std::vector<const char*> addresses) {
  MxHost h{name, {}};
  for (const char* a : addresses) h.addresses.push_back(Ip(a));
  return h;
}

std::vector<std::string> Sent(Journal& j, const std::string& dest) {
  std::vector<std::string> out;
  for (const std::string& l : j.Lines())
    if (l.starts_with(dest + " < ")) out.push_back(l.substr(dest.size() + 3));
  return out;
}

TEST_CASE("mx session: a clean session with STARTTLS ends at RCPT with 250 and never sends DATA", "[mx_probe]") {
  FakeDialer dialer;
  FakeServer& s = dialer.servers["198.51.100.25"];
  s.replies["EHLO"] = {"250-mx.test", "250-PIPELINING", "250-STARTTLS", "250 8BITMIME"};
  s.ehlo_after_tls = {"250-mx.test", "250 8BITMIME"};
  s.replies["RCPT"] = {"250 2.1.5 Ok"};
  CountingGate gate;
  MxProbeResult r = RunMxSession(dialer, Plan({Host("mx.test", {"198.51.100.25"})}), gate);
  CHECK(r.cls == SmtpClass::kOk);
  CHECK(r.stage == MxStage::kRcpt);
  CHECK(r.code == 250);
  CHECK(r.enhanced == "2.1.5");
  CHECK(r.text == "Ok");
  CHECK(r.host == "mx.test");
  CHECK(r.address == "198.51.100.25");
  CHECK(r.error.empty());
  REQUIRE(r.tls);
  CHECK(r.tls->ok);
  CHECK(r.tls->protocol == "TLSv1.3");
  CHECK(r.tls->name_match);
  CHECK(r.tls->peer_name == "mx.test");
  CHECK(Sent(dialer.journal, "198.51.100.25") ==
        std::vector<std::string>{"EHLO out1.acme.test", "STARTTLS", "EHLO out1.acme.test",
                                 "MAIL FROM:<probe@acme.test>", "RCPT TO:<postmaster@receiver.test>", "QUIT"});
  CHECK(gate.held.empty());
  CHECK(gate.acquired == 1);
}

TEST_CASE("mx session: each receiver verdict is classified at the step that gave it", "[mx_probe]") {
  struct Case {
    const char* name;
    std::string verb;  // the command answered with `reply` ("" = the banner)
    std::vector<std::string> reply;
    SmtpClass cls;
    MxStage stage;
    int code;
    const char* enhanced;
    const char* zone;
    size_t commands;  // lines the probe sent, QUIT included
  };
  const Case cases[] = {
      {"Outlook ban at RCPT", "RCPT",
       {"550 5.7.606 Access denied, banned sending IP [192.0.2.10]. To request removal from this list please visit "
        "https://sender.office.com/ and follow the directions."},
       SmtpClass::kReputationBlock, MxStage::kRcpt, 550, "5.7.606", "", 4},
      {"Postfix DNSBL reject at RCPT", "RCPT",
       {"554 5.7.1 Service unavailable; Client host [192.0.2.10] blocked using zen.spamhaus.org; "
        "https://www.spamhaus.org/query/ip/192.0.2.10"},
       SmtpClass::kBlockedByList, MxStage::kRcpt, 554, "5.7.1", "zen.spamhaus.org", 4},
      {"Gmail multi-line rate limit at MAIL", "MAIL",
       {"421-4.7.28 [192.0.2.10] Gmail has detected an unusual rate of unsolicited mail originating",
        "421-4.7.28 from your IP address. To protect our users from spam, mail sent from your IP",
        "421 4.7.28 address has been temporarily rate limited."},
       SmtpClass::kRateLimit, MxStage::kMail, 421, "4.7.28", "", 3},
      {"greylisting at RCPT", "RCPT",
       {"450 4.2.0 <postmaster@receiver.test>: Recipient address rejected: Greylisted, see "
        "http://postgrey.schweikert.ch/help/receiver.test.html"},
       SmtpClass::kGreylist, MxStage::kRcpt, 450, "4.2.0", "", 4},
      {"AOL RTR:BB in the banner", "", {"554 RTR:BB Connecting IP is listed as dynamic"},
       SmtpClass::kReputationBlock, MxStage::kBanner, 554, "", "", 1},
      {"Yahoo TSS04 deferral at MAIL", "MAIL",
       {"421 4.7.0 [TSS04] Messages from 192.0.2.10 temporarily deferred due to unexpected volume or user "
        "complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes"},
       SmtpClass::kRateLimit, MxStage::kMail, 421, "4.7.0", "", 3},
      {"PTR required at EHLO", "EHLO",
       {"550 5.7.25 The IP address sending this message does not have a PTR record setup."},
       SmtpClass::kPolicyFailure, MxStage::kEhlo, 550, "5.7.25", "", 2},
      {"unknown recipient is not an IP problem", "RCPT",
       {"550 5.1.1 <postmaster@receiver.test>: Recipient address rejected: User unknown"},
       SmtpClass::kOther, MxStage::kRcpt, 550, "5.1.1", "", 4},
  };
  for (const Case& c : cases) {
    INFO(c.name);
    FakeDialer dialer;
    FakeServer& s = dialer.servers["198.51.100.25"];
    if (c.verb.empty()) s.banner = c.reply;
    else s.replies[c.verb] = c.reply;
    CountingGate gate;
    MxProbeResult r = RunMxSession(dialer, Plan({Host("mx.test", {"198.51.100.25"})}), gate);
    CHECK(r.cls == c.cls);
    CHECK(r.stage == c.stage);
    CHECK(r.code == c.code);
    CHECK(r.enhanced == c.enhanced);
    CHECK(r.zone == c.zone);
    CHECK(r.error.empty());
    CHECK_FALSE(r.tls);  // STARTTLS was not offered
    const auto sent = Sent(dialer.journal, "198.51.100.25");
    CHECK(sent.size() == c.commands);
    CHECK(sent.back() == "QUIT");
    for (const auto& line : sent) CHECK(line != "DATA");
  }
}

TEST_CASE("mx session: the multi-line reply text is joined without its prefixes", "[mx_probe]") {
  FakeDialer dialer;
  dialer.servers["198.51.100.25"].replies["RCPT"] = {"421-4.7.28 first part", "421 4.7.28 second part"};
  CountingGate gate;
  MxProbeResult r = RunMxSession(dialer, Plan({Host("mx.test", {"198.51.100.25"})}), gate);
  CHECK(r.text == "first part second part");
}

TEST_CASE("mx session: connection failures fall back to the next MX host, then end in error", "[mx_probe]") {
  FakeDialer dialer;
  dialer.servers["198.51.100.5"].dial_error = DialError{DialErrorKind::kRefused, "connection refused"};
  dialer.servers["198.51.100.6"].dial_error = DialError{DialErrorKind::kTimeout, "no answer to the connection attempt"};
  dialer.servers["198.51.100.25"];  // a normal server

  SECTION("the third address answers") {
    CountingGate gate;
    MxProbeResult r = RunMxSession(
        dialer, Plan({Host("mx1.test", {"198.51.100.5", "198.51.100.6"}), Host("mx2.test", {"198.51.100.25"})}), gate);
    CHECK(r.cls == SmtpClass::kOk);
    CHECK(r.host == "mx2.test");
    CHECK(r.address == "198.51.100.25");
    CHECK(gate.acquired == 3);
    CHECK(gate.held.empty());
  }
  SECTION("one host refusing: the cause is the error") {
    CountingGate gate;
    MxProbeResult r = RunMxSession(dialer, Plan({Host("mx1.test", {"198.51.100.5"})}), gate);
    CHECK(r.cls == SmtpClass::kError);
    CHECK(r.stage == MxStage::kConnect);
    CHECK(r.error == "connection refused");
    CHECK(r.host == "mx1.test");
    CHECK(r.address == "198.51.100.5");
    CHECK(r.code == 0);
  }
  SECTION("every host failing: each one named") {
    CountingGate gate;
    MxProbeResult r =
        RunMxSession(dialer, Plan({Host("mx1.test", {"198.51.100.5"}), Host("mx2.test", {"198.51.100.6"})}), gate);
    CHECK(r.cls == SmtpClass::kError);
    CHECK(r.error ==
          "no MX host could be reached: mx1.test[198.51.100.5]: connection refused; "
          "mx2.test[198.51.100.6]: no answer to the connection attempt");
  }
}

TEST_CASE("mx session: a source that is not local is an error, never a probe from elsewhere", "[mx_probe]") {
  FakeDialer dialer;
  dialer.servers["198.51.100.5"].dial_error = DialError{DialErrorKind::kNotLocal, "not a local address"};
  dialer.servers["198.51.100.25"];
  CountingGate gate;
  MxProbeResult r =
      RunMxSession(dialer, Plan({Host("mx1.test", {"198.51.100.5"}), Host("mx2.test", {"198.51.100.25"})}), gate);
  CHECK(r.cls == SmtpClass::kError);
  CHECK(r.stage == MxStage::kConnect);
  CHECK(r.error.starts_with("not a local address"));
  CHECK(r.host == "mx1.test");
  size_t connects = 0;
  for (const auto& l : dialer.journal.Lines()) connects += l.find(" connect ") != std::string::npos;
  CHECK(connects == 1);  // mx2 was never tried
  CHECK(gate.held.empty());
}

TEST_CASE("mx session: a silent server times out at the banner", "[mx_probe]") {
  FakeDialer dialer;
  dialer.servers["198.51.100.25"].banner = {};  // never answers
  CountingGate gate;
  MxProbeResult r = RunMxSession(dialer, Plan({Host("mx.test", {"198.51.100.25"})}), gate);
  CHECK(r.cls == SmtpClass::kError);
  CHECK(r.stage == MxStage::kBanner);
  CHECK(r.error == "timeout after 1.5s waiting for the banner");
  CHECK(Sent(dialer.journal, "198.51.100.25").empty());  // nothing sent to a server that never greeted
}

TEST_CASE("mx session: STARTTLS refused or failing", "[mx_probe]") {
  FakeDialer dialer;
  FakeServer& s = dialer.servers["198.51.100.25"];
  s.replies["EHLO"] = {"250-mx.test", "250 STARTTLS"};
  SECTION("refused with 454: the session goes on in plain text") {
    s.replies["STARTTLS"] = {"454 4.7.0 TLS not available due to local problem"};
    CountingGate gate;
    MxProbeResult r = RunMxSession(dialer, Plan({Host("mx.test", {"198.51.100.25"})}), gate);
    CHECK(r.cls == SmtpClass::kOk);
    REQUIRE(r.tls);
    CHECK_FALSE(r.tls->ok);
    CHECK(r.tls->error == "STARTTLS refused: 454 4.7.0 TLS not available due to local problem");
    CHECK(Sent(dialer.journal, "198.51.100.25") ==
          std::vector<std::string>{"EHLO out1.acme.test", "STARTTLS", "MAIL FROM:<probe@acme.test>",
                                   "RCPT TO:<postmaster@receiver.test>", "QUIT"});
  }
  SECTION("a failed handshake: once more without STARTTLS, the TLS failure kept") {
    s.tls_error = "TLS handshake failed: wrong version number";
    CountingGate gate;
    MxProbeResult r = RunMxSession(dialer, Plan({Host("mx.test", {"198.51.100.25"})}), gate);
    CHECK(r.cls == SmtpClass::kOk);
    CHECK(r.stage == MxStage::kRcpt);
    REQUIRE(r.tls);
    CHECK_FALSE(r.tls->ok);
    CHECK(r.tls->error == "TLS handshake failed: wrong version number");
    CHECK(Sent(dialer.journal, "198.51.100.25") ==
          std::vector<std::string>{"EHLO out1.acme.test", "STARTTLS", "EHLO out1.acme.test",
                                   "MAIL FROM:<probe@acme.test>", "RCPT TO:<postmaster@receiver.test>", "QUIT"});
  }
  SECTION("a certificate for another name is recorded") {
    s.tls.name_match = false;
    s.tls.peer_name = "other.test";
    CountingGate gate;
    MxProbeResult r = RunMxSession(dialer, Plan({Host("mx.test", {"198.51.100.25"})}), gate);
    REQUIRE(r.tls);
    CHECK(r.tls->ok);
    CHECK_FALSE(r.tls->name_match);
    CHECK(r.tls->peer_name == "other.test");
  }
  SECTION("starttls = false: not even asked") {
    MxSessionPlan plan = Plan({Host("mx.test", {"198.51.100.25"})});
    plan.starttls = false;
    CountingGate gate;
    MxProbeResult r = RunMxSession(dialer, plan, gate);
    CHECK_FALSE(r.tls);
    for (const auto& l : Sent(dialer.journal, "198.51.100.25")) CHECK(l != "STARTTLS");
  }
}

TEST_CASE("mx session: without mail_from the session ends after EHLO", "[mx_probe]") {
  FakeDialer dialer;
  dialer.servers["198.51.100.25"].replies["EHLO"] = {"250-mx.test at your service", "250 SIZE 1000"};
  MxSessionPlan plan = Plan({Host("mx.test", {"198.51.100.25"})});
  plan.mail_from.clear();
  plan.rcpt_to.clear();
  CountingGate gate;
  MxProbeResult r = RunMxSession(dialer, plan, gate);
  CHECK(r.cls == SmtpClass::kOk);
  CHECK(r.stage == MxStage::kEhlo);
  CHECK(r.code == 250);
  CHECK(r.text == "mx.test at your service");
  CHECK(Sent(dialer.journal, "198.51.100.25") == std::vector<std::string>{"EHLO out1.acme.test", "QUIT"});
}

// --- the check, driven by the scheduler over a fake resolver -------------------

struct Lab {
  Config config;
  FakeResolver dns;
  FakeClock clock;
  FakeDialer dialer;

  Lab() {
    RangeConfig r = testing::Range("out", {"192.0.2.10/31"});
    r.helo = "out.acme.test";
    config.ranges.push_back(r);
    config.mx_probe.enabled = true;
    config.mx_probe.domains = {"a.test", "b.test"};
    config.mx_probe.mail_from = "probe@acme.test";
    config.mx_probe.rcpt_to = "postmaster@{domain}";
    config.mx_probe.max_rate = 1000;
    config.mx_probe.connect_timeout = std::chrono::milliseconds(500);
    config.mx_probe.banner_timeout = std::chrono::milliseconds(500);
    config.mx_probe.command_timeout = std::chrono::milliseconds(500);
    dns.Set("a.test", rrtype::kMx, Answer({MxRecord("a.test", 20, "mx2.a.test"), MxRecord("a.test", 10, "mx1.a.test")}));
    dns.Set("mx1.a.test", rrtype::kA, Answer({ARecord("mx1.a.test", 198, 51, 100, 1)}));
    dns.Set("mx2.a.test", rrtype::kA, Answer({ARecord("mx2.a.test", 198, 51, 100, 2)}));
    dns.Set("b.test", rrtype::kMx, Answer({MxRecord("b.test", 10, "mx.b.test")}));
    dns.Set("mx.b.test", rrtype::kA, Answer({ARecord("mx.b.test", 198, 51, 100, 3)}));
    dialer.servers["198.51.100.1"];
    dialer.servers["198.51.100.2"];
    dialer.servers["198.51.100.3"];
  }

  static DnsRecord MxRecord(std::string owner, uint16_t preference, std::string target) {
    DnsRecord r;
    r.type = rrtype::kMx;
    r.owner = std::move(owner);
    r.preference = preference;
    r.target = std::move(target);
    r.ttl = 300;
    return r;
  }

  std::vector<IpReport> Run(MxHistory* history = nullptr, std::vector<std::string> targets = {"192.0.2.10/31"}) {
    CheckEnv env{dns, clock};
    env.dialer = &dialer;
    env.mx_history = history;
    std::vector<std::unique_ptr<Check>> checks;
    checks.push_back(std::make_unique<MxProbeCheck>(config, env));
    Scheduler scheduler(checks, dns, clock);
    std::vector<IpReport> out;
    auto set = TargetSet::FromArguments(targets, config.ranges);
    REQUIRE(set.ok());
    scheduler.RunCycle(set.value(), CycleOptions{}, [&](IpReport&& r) { out.push_back(std::move(r)); });
    return out;
  }
};

class MapHistory final : public MxHistory {
 public:
  std::vector<MxProbeResult> Last(const IpAddress& ip) override {
    ++asked;
    return results[ip.ToString()];
  }
  std::map<std::string, std::vector<MxProbeResult>> results;
  int asked = 0;
};

TEST_CASE("mx check: every address probes every domain, lowest preference first, in config order", "[mx_probe]") {
  Lab lab;
  lab.dialer.servers["198.51.100.3"].replies["RCPT"] = {"550 5.7.606 Access denied, banned sending IP [192.0.2.11]"};
  auto reports = lab.Run();
  REQUIRE(reports.size() == 2);
  for (const IpReport& r : reports) {
    INFO(r.ip.ToString());
    REQUIRE(r.mx);
    REQUIRE(r.mx->size() == 2);
    CHECK((*r.mx)[0].domain == "a.test");
    CHECK((*r.mx)[0].host == "mx1.a.test");
    CHECK((*r.mx)[0].address == "198.51.100.1");
    CHECK((*r.mx)[0].cls == SmtpClass::kOk);
    CHECK((*r.mx)[0].probed_at == UnixSeconds(lab.clock.WallNow()));
    CHECK_FALSE((*r.mx)[0].reused);
    CHECK((*r.mx)[1].domain == "b.test");
    CHECK((*r.mx)[1].cls == SmtpClass::kReputationBlock);
    CHECK((*r.mx)[1].verdict() == Verdict::kProblem);
  }
  // RCPT TO names the receiver domain; every session from the address itself.
  const auto sent = Sent(lab.dialer.journal, "198.51.100.3");
  CHECK(std::count(sent.begin(), sent.end(), "RCPT TO:<postmaster@b.test>") == 2);
  CHECK(std::count(sent.begin(), sent.end(), "EHLO out.acme.test") == 2);
  std::set<std::string> sources;
  for (const auto& l : lab.dialer.journal.Lines())
    if (auto p = l.find(" connect from "); p != std::string::npos) sources.insert(l.substr(p + 14, l.find(' ', p + 14) - p - 14));
  CHECK(sources == std::set<std::string>{"192.0.2.10", "192.0.2.11"});
  // MX and host lookups: asked once per name for the whole cycle? No cache here, so per address;
  // but never a lookup for mx2.a.test's address being skipped: both hosts are resolved.
  CHECK(std::count(lab.dns.asked.begin(), lab.dns.asked.end(), std::pair<std::string, uint16_t>("mx2.a.test", rrtype::kA)) == 2);
}

TEST_CASE("mx check: DNS outcomes for the receiver domain", "[mx_probe]") {
  Lab lab;
  lab.config.mx_probe.domains = {"nx.test", "nullmx.test", "implicit.test", "noaddr.test", "fail.test"};
  lab.dns.Set("nullmx.test", rrtype::kMx, Answer({Lab::MxRecord("nullmx.test", 0, "")}));
  lab.dns.Set("implicit.test", rrtype::kMx, Answer({}));
  lab.dns.Set("implicit.test", rrtype::kA, Answer({ARecord("implicit.test", 198, 51, 100, 1)}));
  lab.dns.Set("noaddr.test", rrtype::kMx, Answer({Lab::MxRecord("noaddr.test", 10, "v6only.noaddr.test")}));
  lab.dns.Set("v6only.noaddr.test", rrtype::kA, Answer({}));
  lab.dns.Set("fail.test", rrtype::kMx, Failure(DnsStatus::kServFail));
  auto reports = lab.Run(nullptr, {"192.0.2.10"});
  REQUIRE(reports.size() == 1);
  const auto& mx = *reports[0].mx;
  REQUIRE(mx.size() == 5);
  CHECK(mx[0].cls == SmtpClass::kError);
  CHECK(mx[0].error == "nx.test does not exist (NXDOMAIN)");
  CHECK(mx[1].error == "nullmx.test accepts no mail (null MX, RFC 7505)");
  CHECK(mx[2].cls == SmtpClass::kOk);
  CHECK(mx[2].host == "implicit.test");
  CHECK(mx[3].error == "no MX host of noaddr.test has an IPv4 address");
  CHECK(mx[3].host == "v6only.noaddr.test");
  CHECK(mx[4].cls == SmtpClass::kError);
  CHECK(mx[4].error.starts_with("MX lookup for fail.test failed: "));
  for (const auto& r : mx) CHECK(r.verdict() != Verdict::kProblem);  // DNS trouble is never a reputation verdict
}

TEST_CASE("mx check: min_interval reuses the last result instead of probing", "[mx_probe]") {
  Lab lab;
  MapHistory history;
  const long long now = UnixSeconds(lab.clock.WallNow());
  MxProbeResult recent;
  recent.domain = "a.test";
  recent.host = "mx1.a.test";
  recent.cls = SmtpClass::kRateLimit;
  recent.code = 421;
  recent.probed_at = now - 3600;  // 1h ago, min_interval 6h
  MxProbeResult old = recent;
  old.domain = "b.test";
  old.probed_at = now - 7 * 3600;  // due again
  history.results["192.0.2.10"] = {recent, old};
  MxProbeResult failed = recent;  // no reply 1h ago: retried at once
  failed.cls = SmtpClass::kError;
  failed.code = 0;
  history.results["192.0.2.11"] = {failed};
  auto reports = lab.Run(&history, {"192.0.2.10/31"});
  REQUIRE(reports.size() == 2);
  const auto& mx = *reports[0].mx;
  CHECK(mx[0].reused);
  CHECK(mx[0].cls == SmtpClass::kRateLimit);
  CHECK(mx[0].probed_at == now - 3600);
  CHECK_FALSE(mx[1].reused);
  CHECK(mx[1].cls == SmtpClass::kOk);
  CHECK(mx[1].probed_at == now);
  CHECK_FALSE((*reports[1].mx)[0].reused);
  CHECK((*reports[1].mx)[0].cls == SmtpClass::kOk);
  // a.test was contacted only from .11, whose last session got no reply.
  CHECK(Sent(lab.dialer.journal, "198.51.100.1").size() == 4);
  CHECK_FALSE(Sent(lab.dialer.journal, "198.51.100.3").empty());
  CHECK(history.asked == 2);
}

TEST_CASE("mx check: HELO from the PTR name, an address literal without one; ranges can opt out", "[mx_probe]") {
  Lab lab;
  lab.config.ranges[0].helo.clear();
  lab.config.mx_probe.domains = {"b.test"};
  lab.dns.Set(Ip("192.0.2.10").ReverseDnsName(), rrtype::kPtr,
              Answer({PtrRecord(Ip("192.0.2.10").ReverseDnsName(), "out10.acme.test")}));
  RangeConfig other = testing::Range("elsewhere", {"192.0.2.20"});
  other.mx_probe = false;
  lab.config.ranges.push_back(other);
  auto reports = lab.Run(nullptr, {"192.0.2.10/31", "192.0.2.20"});
  REQUIRE(reports.size() == 3);
  const auto sent = Sent(lab.dialer.journal, "198.51.100.3");
  CHECK(std::count(sent.begin(), sent.end(), "EHLO out10.acme.test") == 1);
  CHECK(std::count(sent.begin(), sent.end(), "EHLO [192.0.2.11]") == 1);
  CHECK_FALSE(reports[2].mx);  // mx_probe = false: no section, no session
}

TEST_CASE("mx check: one session at a time per destination, max_parallel overall, max_rate respected",
          "[mx_probe]") {
  Lab lab;
  lab.config.ranges[0] = testing::Range("out", {"192.0.2.0/29"});
  lab.config.ranges[0].helo = "out.acme.test";
  lab.config.mx_probe.max_parallel = 3;
  lab.config.mx_probe.max_rate = 40;  // 16 sessions: at least 15 gaps of 25 ms
  for (const char* a : {"198.51.100.1", "198.51.100.3"})
    lab.dialer.servers[a].session_time = std::chrono::milliseconds(20);
  const auto t0 = std::chrono::steady_clock::now();
  auto reports = lab.Run(nullptr, {"192.0.2.0/29"});
  const auto took = std::chrono::steady_clock::now() - t0;
  REQUIRE(reports.size() == 8);
  for (const auto& r : reports)
    for (const auto& m : *r.mx) CHECK(m.cls == SmtpClass::kOk);
  std::lock_guard lock(lab.dialer.journal.mu);
  CHECK(lab.dialer.journal.max_open["198.51.100.1"] == 1);
  CHECK(lab.dialer.journal.max_open["198.51.100.3"] == 1);
  CHECK(lab.dialer.journal.max_open_total <= 2);  // two destinations, each one at a time
  CHECK(took >= std::chrono::milliseconds(15 * 25));
}

TEST_CASE("mx check: stopping the agent reports the last result for sessions not started", "[mx_probe]") {
  Lab lab;
  std::atomic<bool> stop{true};
  MapHistory history;
  MxProbeResult last;
  last.domain = "a.test";
  last.cls = SmtpClass::kReputationBlock;
  last.probed_at = UnixSeconds(lab.clock.WallNow()) - 7 * 3600;
  history.results["192.0.2.10"] = {last};
  CheckEnv env{lab.dns, lab.clock};
  env.dialer = &lab.dialer;
  env.mx_history = &history;
  env.stop = &stop;
  std::vector<std::unique_ptr<Check>> checks;
  checks.push_back(std::make_unique<MxProbeCheck>(lab.config, env));
  Scheduler scheduler(checks, lab.dns, lab.clock);
  std::vector<IpReport> out;
  auto set = TargetSet::FromArguments({"192.0.2.10"}, lab.config.ranges);
  scheduler.RunCycle(set.value(), CycleOptions{}, [&](IpReport&& r) { out.push_back(std::move(r)); });
  REQUIRE(out.size() == 1);
  CHECK((*out[0].mx)[0].cls == SmtpClass::kReputationBlock);
  CHECK((*out[0].mx)[0].reused);
  CHECK((*out[0].mx)[1].cls == SmtpClass::kError);
  CHECK((*out[0].mx)[1].error == "not probed: the agent is stopping");
  CHECK(lab.dialer.journal.Lines().empty());
}

}  // namespace
}  // namespace repwatch
