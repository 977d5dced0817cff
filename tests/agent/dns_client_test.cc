// DnsClient against a small DNS responder on 127.0.0.1 run in a thread: each test
// tells it what to send back (good, bad, nothing, from elsewhere, over TCP).
#include "agent/dns_client.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <ldns/ldns.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <catch2/catch.hpp>
#include <cstring>
#include <functional>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "agent/dns_wire.h"

namespace repwatch {
namespace {

using namespace std::chrono_literals;
using Bytes = std::vector<uint8_t>;

class ManualClock final : public Clock {
 public:
  std::chrono::steady_clock::time_point Now() const override { return now_; }
  std::chrono::system_clock::time_point WallNow() const override { return {}; }
  void Advance(std::chrono::nanoseconds d) { now_ += d; }

 private:
  std::chrono::steady_clock::time_point now_ = std::chrono::steady_clock::now();
};

// ---- building replies -------------------------------------------------------

Bytes NameWire(std::string_view name) {
  Bytes out;
  size_t start = 0;
  while (start < name.size()) {
    size_t dot = name.find('.', start);
    if (dot == std::string_view::npos) dot = name.size();
    out.push_back(static_cast<uint8_t>(dot - start));
    out.insert(out.end(), name.begin() + start, name.begin() + dot);
    start = dot + 1;
  }
  out.push_back(0);
  return out;
}

size_t QuestionEnd(const Bytes& q) {
  size_t at = 12;
  while (at < q.size() && q[at] != 0) at += q[at] + 1u;
  return at + 5;
}

std::string QName(const Bytes& q) {
  std::string name;
  for (size_t at = 12; at < q.size() && q[at] != 0; at += q[at] + 1u) {
    if (!name.empty()) name += '.';
    name.append(reinterpret_cast<const char*>(&q[at + 1]), q[at]);
  }
  return name;
}

uint16_t QType(const Bytes& q) {
  const size_t end = QuestionEnd(q);
  return static_cast<uint16_t>(q[end - 4] << 8 | q[end - 3]);
}

struct Rr {
  uint16_t type;
  Bytes rdata;
  Bytes owner = {0xc0, 0x0c};  // pointer to the question name
  uint32_t ttl = 300;
};

Rr A(uint8_t a, uint8_t b, uint8_t c, uint8_t d) { return {rrtype::kA, {a, b, c, d}}; }

Rr Txt(std::vector<std::string> strings) {
  Rr rr{rrtype::kTxt, {}};
  for (const auto& s : strings) {
    rr.rdata.push_back(static_cast<uint8_t>(s.size()));
    rr.rdata.insert(rr.rdata.end(), s.begin(), s.end());
  }
  return rr;
}

void Put16(Bytes& b, uint16_t v) {
  b.push_back(static_cast<uint8_t>(v >> 8));
  b.push_back(static_cast<uint8_t>(v));
}

Bytes Reply(const Bytes& query, int rcode, const std::vector<Rr>& answers = {}, bool tc = false) {
  Bytes out(query.begin(), query.begin() + static_cast<long>(QuestionEnd(query)));
  out[2] = static_cast<uint8_t>(0x80 | (query[2] & 0x01) | (tc ? 0x02 : 0));
  out[3] = static_cast<uint8_t>(0x80 | rcode);
  out[6] = 0;
  out[7] = static_cast<uint8_t>(answers.size());
  for (int i = 8; i < 12; ++i) out[i] = 0;
  for (const Rr& rr : answers) {
    out.insert(out.end(), rr.owner.begin(), rr.owner.end());
    Put16(out, rr.type);
    Put16(out, 1);
    Put16(out, static_cast<uint16_t>(rr.ttl >> 16));
    Put16(out, static_cast<uint16_t>(rr.ttl));
    Put16(out, static_cast<uint16_t>(rr.rdata.size()));
    out.insert(out.end(), rr.rdata.begin(), rr.rdata.end());
  }
  return out;
}

// ---- the responder ----------------------------------------------------------

enum class From { kSame, kOtherPort, kOtherAddress };
struct Packet {
  Bytes bytes;
  From from = From::kSame;
};
// Called on the responder thread for each query; returns what to send back.
using Handler = std::function<std::vector<Packet>(const Bytes& query, bool tcp)>;

int BoundSocket(int type, const char* ip, uint16_t port) {
  int fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  inet_pton(AF_INET, ip, &a.sin_addr);
  REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0);
  return fd;
}

uint16_t PortOf(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  return ntohs(a.sin_port);
}

class Responder {
 public:
  // hold_until_idle: answer only after 5 ms without a new query, so the number
  // of questions the client has outstanding can be observed.
  explicit Responder(Handler handler, bool hold_until_idle = false)
      : handler_(std::move(handler)), hold_(hold_until_idle) {
    udp_ = BoundSocket(SOCK_DGRAM, "127.0.0.1", 0);
    port_ = PortOf(udp_);
    other_port_ = BoundSocket(SOCK_DGRAM, "127.0.0.1", 0);
    other_address_ = BoundSocket(SOCK_DGRAM, "127.0.0.2", port_);
    tcp_ = BoundSocket(SOCK_STREAM, "127.0.0.1", port_);
    REQUIRE(listen(tcp_, 16) == 0);
    REQUIRE(pipe(stop_) == 0);
    thread_ = std::thread([this] { Run(); });
  }
  ~Responder() {
    (void)!write(stop_[1], "x", 1);
    thread_.join();
    for (int fd : {udp_, other_port_, other_address_, tcp_, stop_[0], stop_[1]}) close(fd);
  }
  DnsServer server() const { return {"127.0.0.1", port_}; }
  int queries() const { return queries_; }
  int tcp_queries() const { return tcp_queries_; }
  int max_outstanding() const { return max_outstanding_; }
  std::vector<uint16_t> ids() const {
    std::lock_guard lock(mu_);
    return ids_;
  }

 private:
  struct Held {
    Bytes query;
    sockaddr_in from;
  };

  void Run() {
    std::vector<Held> held;
    for (;;) {
      pollfd fds[3] = {{udp_, POLLIN, 0}, {tcp_, POLLIN, 0}, {stop_[0], POLLIN, 0}};
      const int n = poll(fds, 3, hold_ ? 5 : 1000);
      if (fds[2].revents) return;
      if (n == 0) {
        for (auto& h : held) Answer(h.query, h.from);
        held.clear();
        continue;
      }
      if (fds[1].revents) ServeTcp();
      if (!(fds[0].revents & POLLIN)) continue;
      Bytes buf(65536);
      sockaddr_in from{};
      socklen_t len = sizeof(from);
      const ssize_t r = recvfrom(udp_, buf.data(), buf.size(), 0, reinterpret_cast<sockaddr*>(&from), &len);
      if (r < 12) continue;
      buf.resize(static_cast<size_t>(r));
      ++queries_;
      {
        std::lock_guard lock(mu_);
        ids_.push_back(static_cast<uint16_t>(buf[0] << 8 | buf[1]));
      }
      if (hold_) {
        held.push_back({std::move(buf), from});
        max_outstanding_ = std::max<int>(max_outstanding_, static_cast<int>(held.size()));
      } else {
        Answer(buf, from);
      }
    }
  }

  void Answer(const Bytes& query, const sockaddr_in& to) {
    for (const Packet& p : handler_(query, false)) {
      const int fd = p.from == From::kSame ? udp_ : p.from == From::kOtherPort ? other_port_ : other_address_;
      sendto(fd, p.bytes.data(), p.bytes.size(), 0, reinterpret_cast<const sockaddr*>(&to), sizeof(to));
    }
  }

  void ServeTcp() {
    const int c = accept(tcp_, nullptr, nullptr);
    if (c < 0) return;
    uint8_t len[2];
    if (recv(c, len, 2, MSG_WAITALL) == 2) {
      Bytes q(static_cast<size_t>(len[0] << 8 | len[1]));
      if (recv(c, q.data(), q.size(), MSG_WAITALL) == static_cast<ssize_t>(q.size())) {
        ++tcp_queries_;
        for (const Packet& p : handler_(q, true)) {
          Bytes framed = {static_cast<uint8_t>(p.bytes.size() >> 8), static_cast<uint8_t>(p.bytes.size())};
          framed.insert(framed.end(), p.bytes.begin(), p.bytes.end());
          send(c, framed.data(), framed.size(), MSG_NOSIGNAL);
        }
      }
    }
    close(c);
  }

  Handler handler_;
  bool hold_;
  int udp_ = -1, other_port_ = -1, other_address_ = -1, tcp_ = -1;
  int stop_[2] = {-1, -1};
  uint16_t port_ = 0;
  std::atomic<int> queries_{0}, tcp_queries_{0}, max_outstanding_{0};
  mutable std::mutex mu_;
  std::vector<uint16_t> ids_;
  std::thread thread_;
};

// ---- the client side --------------------------------------------------------

DnsConfig Config(std::vector<DnsServer> servers) {
  DnsConfig c;
  c.servers = std::move(servers);
  c.timeout = 300ms;
  c.attempts = 2;
  c.sockets = 2;
  return c;
}

struct Harness {
  explicit Harness(const DnsConfig& config, Clock* clock_override = nullptr)
      : clock(clock_override ? *clock_override : system) {
    auto created = DnsClient::Create(config, clock, stats);
    REQUIRE(created.ok());
    client = std::move(created).value();
  }
  // Asks and polls until the callback ran (or 3 s passed).
  DnsResponse Ask(const std::string& name, uint16_t type = rrtype::kA) {
    DnsResponse out;
    int calls = 0;
    client->Query(name, type, [&](DnsResponse&& r) {
      out = std::move(r);
      ++calls;
    });
    Drain();
    REQUIRE(calls == 1);
    return out;
  }
  void Drain() {
    const auto give_up = std::chrono::steady_clock::now() + 3s;
    while (client->Pending() > 0 && std::chrono::steady_clock::now() < give_up) client->Poll(20ms);
    REQUIRE(client->Pending() == 0);
  }
  uint64_t Dropped(DnsDrop d) const { return stats.dropped[static_cast<size_t>(d)].load(); }
  uint64_t Failed(DnsFailure f) const { return stats.failures[static_cast<size_t>(f)].load(); }
  uint64_t DroppedTotal() const {
    uint64_t n = 0;
    for (const auto& d : stats.dropped) n += d.load();
    return n;
  }

  SystemClock system;
  Clock& clock;
  DnsStats stats;
  std::unique_ptr<DnsClient> client;
};

// A handler that sends `bad` packets (made from the query), then the good answer.
Handler BadThenGood(std::function<std::vector<Bytes>(const Bytes&)> bad, From from = From::kSame) {
  return [bad, from](const Bytes& q, bool) {
    std::vector<Packet> out;
    for (auto& b : bad(q)) out.push_back({std::move(b), from});
    out.push_back({Reply(q, 0, {A(127, 0, 0, 2)})});
    return out;
  };
}

void ExpectGoodAnswer(const DnsResponse& r) {
  REQUIRE(r.status == DnsStatus::kNoError);
  REQUIRE(r.answers.size() == 1);
  CHECK(r.answers[0].addr[3] == 2);
}

TEST_CASE("A answer with several records", "[dns]") {
  Responder server([](const Bytes& q, bool) {
    CHECK((q[2] & 0x01) == 1);  // RD
    CHECK(QName(q) == "2.0.0.127.zen.example");
    return std::vector<Packet>{{Reply(q, 0, {A(127, 0, 0, 2), A(127, 0, 0, 4)})}};
  });
  Harness h(Config({server.server()}));
  const DnsResponse r = h.Ask("2.0.0.127.ZEN.example");
  REQUIRE(r.status == DnsStatus::kNoError);
  CHECK(r.rcode == 0);
  REQUIRE(r.answers.size() == 2);
  CHECK(r.answers[0].type == rrtype::kA);
  CHECK(r.answers[0].owner == "2.0.0.127.zen.example");
  CHECK(r.answers[0].ttl == 300);
  CHECK(r.answers[0].addr[0] == 127);
  CHECK(r.answers[0].addr[3] == 2);
  CHECK(r.answers[1].addr[3] == 4);
  CHECK(h.stats.queries == 1);
  CHECK(h.stats.attempts == 1);
  CHECK(h.DroppedTotal() == 0);
}

TEST_CASE("TXT strings are kept unjoined and other types parsed", "[dns]") {
  Responder server([](const Bytes& q, bool) {
    if (QType(q) == rrtype::kTxt) {
      return std::vector<Packet>{{Reply(q, 0, {Txt({"listed", " see https://x"}), Txt({"second"})})}};
    }
    Bytes mx = {0, 10};
    const Bytes target = NameWire("MX1.Example.ORG");
    mx.insert(mx.end(), target.begin(), target.end());
    return std::vector<Packet>{{Reply(q, 0, {{rrtype::kCname, NameWire("alias.example")}, {rrtype::kMx, mx}})}};
  });
  Harness h(Config({server.server()}));
  DnsResponse r = h.Ask("txt.example", rrtype::kTxt);
  REQUIRE(r.status == DnsStatus::kNoError);
  REQUIRE(r.answers.size() == 2);
  CHECK(r.answers[0].strings == std::vector<std::string>{"listed", " see https://x"});
  CHECK(r.answers[1].strings == std::vector<std::string>{"second"});

  r = h.Ask("mx.example", rrtype::kMx);
  REQUIRE(r.answers.size() == 2);
  CHECK(r.answers[0].type == rrtype::kCname);
  CHECK(r.answers[0].target == "alias.example");
  CHECK(r.answers[1].preference == 10);
  CHECK(r.answers[1].target == "mx1.example.org");
}

TEST_CASE("rcodes map to statuses and only failures are counted", "[dns]") {
  Responder server([](const Bytes& q, bool) {
    const std::string name = QName(q);
    const int rcode = name == "nx.example" ? 3 : name == "servfail.example" ? 2 : name == "refused.example" ? 5 : 4;
    return std::vector<Packet>{{Reply(q, rcode)}};
  });
  Harness h(Config({server.server()}));
  CHECK(h.Ask("nx.example").status == DnsStatus::kNxDomain);
  const DnsResponse sf = h.Ask("servfail.example");
  CHECK(sf.status == DnsStatus::kServFail);
  CHECK(sf.rcode == 2);
  CHECK_FALSE(sf.detail.empty());
  CHECK(h.Ask("refused.example").status == DnsStatus::kRefused);
  const DnsResponse other = h.Ask("notimp.example");
  CHECK(other.status == DnsStatus::kOtherRcode);
  CHECK(other.rcode == 4);
  CHECK(h.Failed(DnsFailure::kServFail) == 1);
  CHECK(h.Failed(DnsFailure::kRefused) == 1);
  CHECK(h.Failed(DnsFailure::kOtherRcode) == 1);
  CHECK(h.Failed(DnsFailure::kTimeout) == 0);
  CHECK(h.stats.attempts == 4);  // final answers: no retries
}

TEST_CASE("timeouts retry round-robin with new IDs then report kTimeout", "[dns]") {
  Responder a([](const Bytes&, bool) { return std::vector<Packet>{}; });
  Responder b([](const Bytes&, bool) { return std::vector<Packet>{}; });
  ManualClock clock;
  DnsConfig config = Config({a.server(), b.server()});
  config.attempts = 3;
  config.timeout = 1s;
  Harness h(config, &clock);
  int calls = 0;
  DnsResponse got;
  h.client->Query("silent.example", rrtype::kA, [&](DnsResponse&& r) {
    got = std::move(r);
    ++calls;
  });
  for (int attempt = 1; attempt <= 3; ++attempt) {
    h.client->Poll(0ms);
    CHECK(h.stats.attempts == static_cast<uint64_t>(attempt));
    CHECK(calls == 0);
    clock.Advance(999ms);
    h.client->Poll(0ms);
    CHECK(h.stats.attempts == static_cast<uint64_t>(attempt));  // not yet
    clock.Advance(1ms);
  }
  h.client->Poll(0ms);
  REQUIRE(calls == 1);
  CHECK(got.status == DnsStatus::kTimeout);
  CHECK(h.stats.attempts == 3);
  CHECK(h.Failed(DnsFailure::kTimeout) == 1);
  CHECK(h.client->Pending() == 0);
  // A, B, A, each with its own ID.
  for (int i = 0; i < 100 && a.queries() + b.queries() < 3; ++i) std::this_thread::sleep_for(1ms);
  CHECK(a.queries() == 2);
  CHECK(b.queries() == 1);
  std::set<uint16_t> ids;
  for (uint16_t id : a.ids()) ids.insert(id);
  for (uint16_t id : b.ids()) ids.insert(id);
  CHECK(ids.size() == 3);
}

TEST_CASE("a retry on the next server gets the answer", "[dns]") {
  Responder silent([](const Bytes&, bool) { return std::vector<Packet>{}; });
  Responder good([](const Bytes& q, bool) { return std::vector<Packet>{{Reply(q, 0, {A(127, 0, 0, 2)})}}; });
  DnsConfig config = Config({silent.server(), good.server()});
  config.timeout = 50ms;
  Harness h(config);
  ExpectGoodAnswer(h.Ask("retry.example"));
  CHECK(h.stats.attempts == 2);
  CHECK(h.Failed(DnsFailure::kTimeout) == 0);
}

TEST_CASE("replies that do not match are dropped and counted and the real one is accepted", "[dns]") {
  DnsDrop reason = DnsDrop::kCount;
  Handler handler;
  SECTION("wrong ID") {
    reason = DnsDrop::kUnknownId;
    handler = BadThenGood([](const Bytes& q) {
      Bytes r = Reply(q, 0, {A(127, 0, 0, 9)});
      r[1] ^= 1;
      return std::vector<Bytes>{r};
    });
  }
  SECTION("QR clear") {
    reason = DnsDrop::kNotResponse;
    handler = BadThenGood([](const Bytes& q) {
      Bytes r = Reply(q, 0, {A(127, 0, 0, 9)});
      r[2] &= 0x7f;
      return std::vector<Bytes>{r};
    });
  }
  SECTION("question differs: name, type, class, count") {
    reason = DnsDrop::kQuestionMismatch;
    handler = BadThenGood([](const Bytes& q) {
      std::vector<Bytes> bad(4, Reply(q, 0, {A(127, 0, 0, 9)}));
      bad[0][13] ^= 0x01;                   // first letter of the name
      bad[1][QuestionEnd(q) - 3] ^= 0x01;   // type
      bad[2][QuestionEnd(q) - 1] ^= 0x02;   // class
      bad[3][5] = 0;                        // QDCOUNT 0
      return bad;
    });
  }
  SECTION("short packet") {
    reason = DnsDrop::kShort;
    handler = BadThenGood([](const Bytes& q) { return std::vector<Bytes>{Bytes(q.begin(), q.begin() + 11)}; });
  }
  Responder server(handler);
  Harness h(Config({server.server()}));
  ExpectGoodAnswer(h.Ask("match.example"));
  CHECK(h.Dropped(reason) >= 1);
  CHECK(h.DroppedTotal() == h.Dropped(reason));
  CHECK(h.stats.attempts == 1);
}

TEST_CASE("question name is compared case-insensitively", "[dns]") {
  Responder server([](const Bytes& q, bool) {
    Bytes r = Reply(q, 0, {A(127, 0, 0, 2)});
    for (size_t i = 12; i < QuestionEnd(q) - 4; ++i) r[i] = static_cast<uint8_t>(std::toupper(r[i]));
    return std::vector<Packet>{{r}};
  });
  Harness h(Config({server.server()}));
  ExpectGoodAnswer(h.Ask("case.example"));
}

TEST_CASE("replies from another port or address are dropped", "[dns]") {
  const From from = GENERATE(From::kOtherPort, From::kOtherAddress);
  Responder server(BadThenGood([](const Bytes& q) { return std::vector<Bytes>{Reply(q, 0, {A(127, 0, 0, 9)})}; },
                               from));
  Harness h(Config({server.server()}));
  ExpectGoodAnswer(h.Ask("spoof.example"));
  CHECK(h.Dropped(DnsDrop::kUnknownId) == 1);
}

// Replies whose header and question match but whose body is broken.
std::vector<Bytes> MalformedReplies(const Bytes& q) {
  std::vector<Bytes> out;
  Bytes cut = Reply(q, 0, {A(127, 0, 0, 9)});
  cut.resize(cut.size() - 2);  // RDATA shorter than RDLENGTH
  out.push_back(cut);
  Bytes loop = Reply(q, 0, {A(127, 0, 0, 9)});
  const size_t owner = QuestionEnd(q);
  loop[owner] = static_cast<uint8_t>(0xc0 | owner >> 8);  // owner name points at itself
  loop[owner + 1] = static_cast<uint8_t>(owner);
  out.push_back(loop);
  Rr forward = A(127, 0, 0, 9);
  forward.owner = {0xc0, 0xff};  // pointer past the end
  out.push_back(Reply(q, 0, {forward}));
  Rr three = A(127, 0, 0, 9);
  three.rdata.pop_back();  // A with 3 bytes of RDATA
  out.push_back(Reply(q, 0, {three}));
  Bytes extra_count = Reply(q, 0, {A(127, 0, 0, 9)});
  extra_count[7] = 2;  // ANCOUNT says 2, one present
  out.push_back(extra_count);
  Bytes bad_txt = Reply(q, 0, {Txt({"abc"})});
  bad_txt[bad_txt.size() - 4] = 9;  // character-string longer than its RDATA
  out.push_back(bad_txt);
  return out;
}

TEST_CASE("malformed and random packets are dropped and the answer after them is accepted", "[dns]") {
  const size_t malformed = MalformedReplies(Bytes(NameWire("x").size() + 16, 0)).size();
  Responder server(BadThenGood([](const Bytes& q) {
    std::vector<Bytes> bad = MalformedReplies(q);
    std::mt19937 rng(7);
    for (int i = 0; i < 50; ++i) {
      Bytes junk(rng() % 600);
      for (auto& b : junk) b = static_cast<uint8_t>(rng());
      if (junk.size() >= 2 && i % 2 == 0) std::copy(q.begin(), q.begin() + 2, junk.begin());  // right ID
      bad.push_back(std::move(junk));
    }
    return bad;
  }));
  Harness h(Config({server.server()}));
  ExpectGoodAnswer(h.Ask("garbage.example"));
  CHECK(h.Dropped(DnsDrop::kMalformed) == malformed);
  CHECK(h.DroppedTotal() == malformed + 50);
}

TEST_CASE("dnswire survives mutated replies", "[dns]") {
  dnswire::Query query;
  REQUIRE(dnswire::BuildQuery("fuzz.example", rrtype::kTxt, query).ok());
  const Bytes q(query.wire.begin(), query.wire.begin() + query.size);
  const Bytes good = Reply(q, 0, {Txt({"a", "bc"}), A(127, 0, 0, 2), {rrtype::kCname, NameWire("t.example")}});
  std::mt19937 rng(42);
  for (int i = 0; i < 20000; ++i) {
    Bytes m = good;
    for (int k = 1 + static_cast<int>(rng() % 4); k > 0; --k) m[rng() % m.size()] = static_cast<uint8_t>(rng());
    if (rng() % 4 == 0) m.resize(rng() % m.size());
    std::vector<DnsRecord> out;
    if (m.size() >= dnswire::kHeaderSize) {
      (void)dnswire::QuestionMatches(m.data(), m.size(), query);
      if (dnswire::WellFormed(m.data(), m.size())) (void)dnswire::ParseAnswers(m.data(), m.size(), out);
    }
  }
  std::vector<DnsRecord> out;
  REQUIRE(dnswire::WellFormed(good.data(), good.size()));
  REQUIRE(dnswire::ParseAnswers(good.data(), good.size(), out));
  CHECK(out.size() == 3);
}

TEST_CASE("queries are byte for byte what ldns_pkt2wire writes", "[dns]") {
  for (const char* name : {"2.0.0.127.zen.spamhaus.org", "example.com.", "a", "", "x\\.y.example", "_dmarc.example"}) {
    for (uint16_t type : {rrtype::kA, rrtype::kTxt, rrtype::kAaaa}) {
      dnswire::Query q;
      REQUIRE(dnswire::BuildQuery(name, type, q).ok());
      ldns_pkt* pkt = ldns_pkt_query_new(ldns_dname_new_frm_str(*name ? name : "."), static_cast<ldns_rr_type>(type),
                                         LDNS_RR_CLASS_IN, LDNS_RD);
      ldns_pkt_set_id(pkt, 0);
      uint8_t* wire = nullptr;
      size_t size = 0;
      REQUIRE(ldns_pkt2wire(&wire, pkt, &size) == LDNS_STATUS_OK);
      CHECK(Bytes(q.wire.begin(), q.wire.begin() + q.size) == Bytes(wire, wire + size));
      free(wire);
      ldns_pkt_free(pkt);
    }
  }
  dnswire::Query q;
  CHECK_FALSE(dnswire::BuildQuery(std::string(64, 'a') + ".example", rrtype::kA, q).ok());
  CHECK_FALSE(dnswire::BuildQuery(std::string(2000, 'a'), rrtype::kA, q).ok());
  std::string long_name;
  for (int i = 0; i < 5; ++i) long_name += std::string(60, 'b') + ".";
  CHECK_FALSE(dnswire::BuildQuery(long_name, rrtype::kA, q).ok());
}

TEST_CASE("names from the wire are lowercased and escaped", "[dns]") {
  const Bytes plain = NameWire("MAIL.Example.COM");
  CHECK(dnswire::NameFromWire(plain.data(), plain.size()) == "mail.example.com");
  const Bytes odd = {3, 'a', '.', ' ', 0};
  CHECK(dnswire::NameFromWire(odd.data(), odd.size()) == "a\\046\\032");
  const Bytes root = {0};
  CHECK(dnswire::NameFromWire(root.data(), root.size()).empty());
}

TEST_CASE("IPv6 servers work next to IPv4 ones", "[dns]") {
  const int fd = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  a.sin6_addr = in6addr_loopback;
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    close(fd);
    WARN("no ::1 here; skipped");
    return;
  }
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  std::thread server([fd] {  // answers one query, then stops
    Bytes buf(512);
    sockaddr_in6 from{};
    socklen_t from_len = sizeof(from);
    const ssize_t r = recvfrom(fd, buf.data(), buf.size(), 0, reinterpret_cast<sockaddr*>(&from), &from_len);
    if (r < 12) return;
    buf.resize(static_cast<size_t>(r));
    const Bytes reply = Reply(buf, 0, {A(127, 0, 0, 6)});
    sendto(fd, reply.data(), reply.size(), 0, reinterpret_cast<sockaddr*>(&from), from_len);
  });
  Responder v4([](const Bytes& q, bool) { return std::vector<Packet>{{Reply(q, 0, {A(127, 0, 0, 4)})}}; });
  Harness h(Config({{"::1", ntohs(a.sin6_port)}, v4.server()}));
  std::vector<int> got;
  for (const char* name : {"v6.example", "v4.example"}) {
    h.client->Query(name, rrtype::kA, [&](DnsResponse&& r) {
      REQUIRE(r.answers.size() == 1);
      got.push_back(r.answers[0].addr[3]);
    });
  }
  h.Drain();
  server.join();
  close(fd);
  std::sort(got.begin(), got.end());
  CHECK(got == std::vector<int>{4, 6});
}

TEST_CASE("truncated UDP answers are retried over TCP", "[dns]") {
  std::vector<std::string> long_txt;
  for (int i = 0; i < 12; ++i) long_txt.push_back(std::string(200, static_cast<char>('a' + i)));
  Responder server([&long_txt](const Bytes& q, bool tcp) {
    if (!tcp) return std::vector<Packet>{{Reply(q, 0, {}, /*tc=*/true)}};
    return std::vector<Packet>{{Reply(q, 0, {Txt(long_txt), Txt({"tail"})})}};
  });
  Harness h(Config({server.server()}));
  const DnsResponse r = h.Ask("big.example", rrtype::kTxt);
  REQUIRE(r.status == DnsStatus::kNoError);
  REQUIRE(r.answers.size() == 2);
  CHECK(r.answers[0].strings == long_txt);
  CHECK(r.answers[1].strings == std::vector<std::string>{"tail"});
  CHECK(h.stats.tcp_fallbacks == 1);
  CHECK(h.stats.attempts == 2);
  CHECK(server.tcp_queries() == 1);
}

TEST_CASE("a TCP fallback closed without an answer fails the question", "[dns]") {
  Responder server([](const Bytes& q, bool tcp) {
    if (!tcp) return std::vector<Packet>{{Reply(q, 0, {}, true)}};
    return std::vector<Packet>{};  // closes the connection without answering
  });
  DnsConfig config = Config({server.server()});
  config.attempts = 1;
  Harness h(config);
  const DnsResponse r = h.Ask("tcpfail.example");
  CHECK(r.status == DnsStatus::kNetworkError);
  CHECK(h.Failed(DnsFailure::kNetwork) == 1);
}

TEST_CASE("max_qps paces sending", "[dns]") {
  Responder server([](const Bytes& q, bool) { return std::vector<Packet>{{Reply(q, 3)}}; });
  DnsConfig config = Config({server.server()});
  config.max_qps = 200;
  Harness h(config);
  int done = 0;
  for (int i = 0; i < 100; ++i) h.client->Query(fmt::format("q{}.example", i), rrtype::kA, [&](DnsResponse&&) { ++done; });
  const auto start = std::chrono::steady_clock::now();
  h.Drain();
  const auto took = std::chrono::steady_clock::now() - start;
  CHECK(done == 100);
  CHECK(took >= 400ms);
  CHECK(took < 1500ms);
}

TEST_CASE("max_qps_per_server paces each server (manual clock)", "[dns]") {
  Responder a([](const Bytes& q, bool) { return std::vector<Packet>{{Reply(q, 3)}}; });
  Responder b([](const Bytes& q, bool) { return std::vector<Packet>{{Reply(q, 3)}}; });
  ManualClock clock;
  DnsConfig config = Config({a.server(), b.server()});
  config.max_qps_per_server = 10;  // burst of one each
  Harness h(config, &clock);
  for (int i = 0; i < 10; ++i) h.client->Query(fmt::format("p{}.example", i), rrtype::kA, [](DnsResponse&&) {});
  h.client->Poll(0ms);
  CHECK(h.stats.attempts == 2);  // one per server
  h.client->Poll(0ms);
  CHECK(h.stats.attempts == 2);
  clock.Advance(100ms);
  h.client->Poll(0ms);
  CHECK(h.stats.attempts == 4);
  for (int i = 0; i < 3; ++i) {
    clock.Advance(100ms);
    h.client->Poll(0ms);
  }
  CHECK(h.stats.attempts == 10);
  for (int i = 0; i < 200 && a.queries() + b.queries() < 10; ++i) std::this_thread::sleep_for(1ms);
  CHECK(a.queries() == 5);
  CHECK(b.queries() == 5);
}

TEST_CASE("max_in_flight bounds the questions outstanding", "[dns]") {
  Responder server([](const Bytes& q, bool) { return std::vector<Packet>{{Reply(q, 3)}}; }, /*hold_until_idle=*/true);
  DnsConfig config = Config({server.server()});
  config.max_in_flight = 8;
  Harness h(config);
  int done = 0;
  for (int i = 0; i < 64; ++i) h.client->Query(fmt::format("f{}.example", i), rrtype::kA, [&](DnsResponse&&) { ++done; });
  CHECK(h.client->Pending() == 64);
  h.Drain();
  CHECK(done == 64);
  CHECK(server.max_outstanding() == 8);
  CHECK(h.stats.attempts == 64);
}

TEST_CASE("IDs in flight are unique and spread", "[dns]") {
  Responder server([](const Bytes& q, bool) { return std::vector<Packet>{{Reply(q, 3)}}; }, true);
  DnsConfig config = Config({server.server()});
  config.sockets = 1;
  config.max_in_flight = 128;
  Harness h(config);
  for (int i = 0; i < 128; ++i) h.client->Query(fmt::format("u{}.example", i), rrtype::kA, [](DnsResponse&&) {});
  h.Drain();
  const auto ids = server.ids();
  REQUIRE(ids.size() == 128);
  CHECK(std::set<uint16_t>(ids.begin(), ids.end()).size() == 128);
  CHECK(server.max_outstanding() == 128);
}

TEST_CASE("callbacks run only from Poll and exactly once and bad names fail cleanly", "[dns]") {
  Responder server([](const Bytes& q, bool) { return std::vector<Packet>{{Reply(q, 0, {A(127, 0, 0, 2)})}}; });
  Harness h(Config({server.server()}));
  int calls = 0;
  DnsResponse bad;
  h.client->Query(std::string(70, 'x') + ".example", rrtype::kA, [&](DnsResponse&& r) {
    bad = std::move(r);
    ++calls;
  });
  h.client->Query("ok.example", rrtype::kA, [&](DnsResponse&& r) {
    ++calls;
    // Asking again from a callback works too.
    if (r.status == DnsStatus::kNoError) h.client->Query("again.example", rrtype::kA, [&](DnsResponse&&) { ++calls; });
  });
  CHECK(calls == 0);
  CHECK(h.client->Pending() == 2);
  h.Drain();
  CHECK(calls == 3);
  CHECK(bad.status == DnsStatus::kNetworkError);
  CHECK_FALSE(bad.detail.empty());
  CHECK(h.stats.queries == 3);
}

TEST_CASE("destroying the client with questions pending is clean", "[dns]") {
  Responder server([](const Bytes& q, bool tcp) {
    return tcp ? std::vector<Packet>{} : std::vector<Packet>{{Reply(q, 0, {}, true)}};
  });
  Harness h(Config({server.server()}));
  for (int i = 0; i < 300; ++i) h.client->Query(fmt::format("d{}.example", i), rrtype::kA, [](DnsResponse&&) {});
  h.client->Poll(10ms);
  h.client->Poll(10ms);
  h.client.reset();
}

TEST_CASE("Create rejects bad configuration", "[dns]") {
  SystemClock clock;
  DnsStats stats;
  CHECK_FALSE(DnsClient::Create(Config({}), clock, stats).ok());
  CHECK_FALSE(DnsClient::Create(Config({{"resolver.example", 53}}), clock, stats).ok());
  DnsConfig zero = Config({{"127.0.0.1", 53}});
  zero.attempts = 0;
  CHECK_FALSE(DnsClient::Create(zero, clock, stats).ok());
}

TEST_CASE("status and failure and drop names", "[dns]") {
  CHECK(DnsStatusName(DnsStatus::kNxDomain) == "nxdomain");
  CHECK(DnsStatusName(DnsStatus::kOtherRcode) == "rcode");
  CHECK(DnsStatusName(DnsStatus::kNetworkError) == "network");
  CHECK(DnsFailureName(DnsFailure::kTimeout) == "timeout");
  CHECK(DnsFailureName(DnsFailure::kOtherRcode) == "rcode");
  CHECK(DnsDropName(DnsDrop::kUnknownId) == "unknown_id");
  CHECK(DnsDropName(DnsDrop::kQuestionMismatch) == "question_mismatch");
}

}  // namespace
}  // namespace repwatch
