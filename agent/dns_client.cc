#include "agent/dns_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "agent/dns_wire.h"

namespace repwatch {
namespace {

using TimePoint = std::chrono::steady_clock::time_point;
using Nanos = std::chrono::nanoseconds;

constexpr uint32_t kNone = std::numeric_limits<uint32_t>::max();
constexpr uint32_t kTcpTag = 0x80000000u;  // in epoll data: a TCP question, not a UDP socket
constexpr int kBatch = 64;                  // datagrams per sendmmsg / recvmmsg
constexpr size_t kUdpBufSize = 4096;        // we send no EDNS, so replies are <= 512 bytes
constexpr int kIdsPerSocket = 65536;

std::string Errno(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

// xoshiro256** reseeded from getrandom() every 64Ki draws: fast enough for one ID
// per packet, and an observer of some IDs cannot predict the next reseed window.
class IdRandom {
 public:
  IdRandom() { Reseed(); }
  uint16_t Next() {
    if (++draws_ == 0) Reseed();
    const uint64_t result = Rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = Rotl(s_[3], 45);
    return static_cast<uint16_t>(result >> 48);
  }

 private:
  static uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  void Reseed() {
    if (getrandom(s_, sizeof(s_), 0) != static_cast<ssize_t>(sizeof(s_)) || (s_[0] | s_[1] | s_[2] | s_[3]) == 0) {
      std::random_device rd;
      for (auto& w : s_) w = (static_cast<uint64_t>(rd()) << 32) | rd();
    }
  }
  uint64_t s_[4];
  uint16_t draws_ = 0;
};

// Tokens refill at `rate` per second up to a burst of 10 ms worth (at least one).
class TokenBucket {
 public:
  void Init(double rate, TimePoint now) {
    rate_ = rate;
    burst_ = std::max(1.0, rate / 100);
    tokens_ = burst_;
    last_ = now;
  }
  void Refill(TimePoint now) {
    if (rate_ <= 0 || now <= last_) return;
    tokens_ = std::min(burst_, tokens_ + std::chrono::duration<double>(now - last_).count() * rate_);
    last_ = now;
  }
  bool Has() const { return rate_ <= 0 || tokens_ >= 1; }
  void Take() {
    if (rate_ > 0) tokens_ -= 1;
  }
  Nanos UntilToken() const {
    if (Has()) return Nanos(0);
    return std::chrono::duration_cast<Nanos>(std::chrono::duration<double>((1 - tokens_) / rate_)) + Nanos(1);
  }

 private:
  double rate_ = 0, burst_ = 1, tokens_ = 0;
  TimePoint last_{};
};

struct Server {
  sockaddr_storage addr{};
  socklen_t addr_len = 0;
  std::string label;  // "127.0.0.1:53" / "[::1]:53", for details
  TokenBucket bucket;
};

bool SameAddress(const sockaddr_storage& a, const sockaddr_storage& b) {
  if (a.ss_family != b.ss_family) return false;
  if (a.ss_family == AF_INET) {
    const auto& x = reinterpret_cast<const sockaddr_in&>(a);
    const auto& y = reinterpret_cast<const sockaddr_in&>(b);
    return x.sin_port == y.sin_port && x.sin_addr.s_addr == y.sin_addr.s_addr;
  }
  const auto& x = reinterpret_cast<const sockaddr_in6&>(a);
  const auto& y = reinterpret_cast<const sockaddr_in6&>(b);
  return x.sin6_port == y.sin6_port && std::memcmp(&x.sin6_addr, &y.sin6_addr, sizeof(in6_addr)) == 0;
}

Result<Server> ParseServer(const DnsServer& s) {
  Server out;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&out.addr);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&out.addr);
  if (inet_pton(AF_INET, s.host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(s.port);
    out.addr_len = sizeof(sockaddr_in);
    out.label = s.host + ":" + std::to_string(s.port);
  } else if (inet_pton(AF_INET6, s.host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(s.port);
    out.addr_len = sizeof(sockaddr_in6);
    out.label = "[" + s.host + "]:" + std::to_string(s.port);
  } else {
    return Status::Error("dns server \"" + s.host + "\": not a numeric IPv4 or IPv6 address");
  }
  return out;
}

// One UDP socket: questions in flight on it by ID, and a batch of datagrams
// waiting for the next sendmmsg.
struct UdpSocket {
  int fd = -1;
  int family = AF_INET;
  uint32_t in_flight = 0;
  std::vector<uint32_t> by_id = std::vector<uint32_t>(kIdsPerSocket, kNone);
  int batched = 0;
  std::array<mmsghdr, kBatch> msgs{};
  std::array<iovec, kBatch> iovs{};
  std::array<uint32_t, kBatch> questions{};
};

struct TcpConn {
  int fd = -1;
  bool connected = false;
  std::vector<uint8_t> out;  // length prefix + query
  size_t written = 0;
  std::vector<uint8_t> in;   // length prefix, then the message
  size_t received = 0;
};

enum class Phase : uint8_t { kFree, kReady, kUdp, kTcp };

struct Question {
  std::string name;
  Resolver::Callback callback;
  dnswire::Query query;
  uint16_t qtype = 0;
  uint16_t id = 0;
  Phase phase = Phase::kFree;
  int tries = 0;              // packets sent that used up an attempt
  uint32_t server = kNone;    // where the current / last attempt went
  uint32_t socket = kNone;
  uint32_t seq = 0;           // bumped per attempt and on free; stale TCP events check it
  uint32_t prev = kNone, next = kNone;  // timeout list, in send order
  TimePoint deadline{};
  std::unique_ptr<TcpConn> tcp;
};

struct Waiting {
  std::string name;
  uint16_t qtype;
  Resolver::Callback callback;
};

struct Completion {
  Resolver::Callback callback;
  DnsResponse response;
};

DnsFailure FailureOf(DnsStatus s) {
  switch (s) {
    case DnsStatus::kServFail: return DnsFailure::kServFail;
    case DnsStatus::kRefused: return DnsFailure::kRefused;
    case DnsStatus::kTimeout: return DnsFailure::kTimeout;
    case DnsStatus::kNetworkError: return DnsFailure::kNetwork;
    default: return DnsFailure::kOtherRcode;
  }
}

DnsStatus StatusOfRcode(int rcode) {
  switch (rcode) {
    case 0: return DnsStatus::kNoError;
    case 2: return DnsStatus::kServFail;
    case 3: return DnsStatus::kNxDomain;
    case 5: return DnsStatus::kRefused;
    default: return DnsStatus::kOtherRcode;
  }
}

}  // namespace

class DnsClient::Impl {
 public:
  Impl(const DnsConfig& config, Clock& clock, DnsStats& stats) : config_(config), clock_(clock), stats_(stats) {}
  ~Impl();
  Status Open();

  void Query(std::string name, uint16_t qtype, Callback callback);
  size_t Pending() const { return waiting_.size() + in_flight_ + completions_.size(); }
  void Poll(std::chrono::milliseconds max_wait);

 private:
  // Sending.
  void Pump(TimePoint now);
  void Admit();
  void SendReady(TimePoint now);
  bool PickServer(Question& q);
  void SendUdp(uint32_t qi, TimePoint now);
  void Flush(UdpSocket& s);
  uint16_t FreeId(const UdpSocket& s);
  // Receiving.
  void Wait(Nanos timeout);
  void ReceiveUdp(uint32_t socket_index);
  void HandleUdp(uint32_t socket_index, const uint8_t* data, size_t len, const sockaddr_storage& from, int flags);
  bool Accept(uint32_t qi, const uint8_t* data, size_t len);
  // TCP fallback.
  void StartTcp(uint32_t qi, TimePoint now);
  void HandleTcp(uint32_t qi, uint32_t seq, uint32_t events);
  bool TcpWrite(uint32_t qi);
  uint64_t TcpKey(uint32_t qi) const { return (static_cast<uint64_t>(questions_[qi].seq) << 32) | kTcpTag | qi; }
  bool TcpRead(uint32_t qi);
  // Attempts ending.
  void ExpireTimeouts(TimePoint now);
  void AttemptFailed(uint32_t qi, DnsStatus status, std::string detail);
  void EndAttempt(Question& q);
  void Complete(uint32_t qi, DnsResponse&& response);
  void RunCallbacks();
  // Timeout list.
  void Link(uint32_t qi, TimePoint deadline);
  void Unlink(uint32_t qi);
  Nanos NextWait(TimePoint now, TimePoint end) const;

  DnsConfig config_;
  Clock& clock_;
  DnsStats& stats_;
  int epoll_fd_ = -1;
  std::vector<Server> servers_;
  std::vector<UdpSocket> sockets_;
  std::vector<uint32_t> family_sockets_[2];  // [0] IPv4, [1] IPv6: indexes into sockets_
  uint32_t next_socket_[2] = {0, 0};
  uint32_t next_server_ = 0;
  TokenBucket global_;
  IdRandom random_;

  std::vector<Question> questions_;  // max_in_flight slots, never reallocated
  std::vector<uint32_t> free_;
  size_t in_flight_ = 0;             // slots in use
  uint32_t head_ = kNone, tail_ = kNone;
  std::deque<Waiting> waiting_;
  std::deque<uint32_t> ready_;       // admitted, waiting for tokens to (re)send
  std::vector<Completion> completions_;

  std::array<mmsghdr, kBatch> recv_msgs_{};
  std::array<iovec, kBatch> recv_iovs_{};
  std::array<sockaddr_storage, kBatch> recv_from_{};
  std::vector<uint8_t> recv_buf_ = std::vector<uint8_t>(kBatch * kUdpBufSize);
};

DnsClient::Impl::~Impl() {
  for (auto& q : questions_) {
    if (q.tcp && q.tcp->fd >= 0) close(q.tcp->fd);
  }
  for (auto& s : sockets_) {
    if (s.fd >= 0) close(s.fd);
  }
  if (epoll_fd_ >= 0) close(epoll_fd_);
}

Status DnsClient::Impl::Open() {
  if (config_.servers.empty()) return Status::Error("dns: no servers configured");
  if (config_.attempts < 1) return Status::Error("dns: attempts must be at least 1");
  if (config_.max_in_flight < 1) return Status::Error("dns: max_in_flight must be at least 1");
  if (config_.sockets < 1) return Status::Error("dns: sockets must be at least 1");
  if (config_.timeout.count() <= 0) return Status::Error("dns: timeout must be positive");
  const TimePoint now = clock_.Now();
  bool family_used[2] = {false, false};
  for (const auto& s : config_.servers) {
    auto server = ParseServer(s);
    if (!server.ok()) return server.status();
    servers_.push_back(std::move(server).value());
    servers_.back().bucket.Init(config_.max_qps_per_server, now);
    family_used[servers_.back().addr.ss_family == AF_INET6] = true;
  }
  global_.Init(config_.max_qps, now);

  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0) return Status::Error(Errno("dns: epoll_create1"));
  for (int f = 0; f < 2; ++f) {
    if (!family_used[f]) continue;
    for (int i = 0; i < config_.sockets; ++i) {
      UdpSocket& s = sockets_.emplace_back();
      s.family = f ? AF_INET6 : AF_INET;
      s.fd = socket(s.family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (s.fd < 0) return Status::Error(Errno("dns: socket"));
      // Port 0: the kernel picks a random ephemeral source port per socket.
      sockaddr_storage any{};
      any.ss_family = static_cast<sa_family_t>(s.family);
      const socklen_t any_len = f ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
      if (bind(s.fd, reinterpret_cast<sockaddr*>(&any), any_len) != 0) return Status::Error(Errno("dns: bind"));
      const int rcvbuf = 1 << 20;  // absorbs a burst of replies between two polls
      setsockopt(s.fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.u64 = sockets_.size() - 1;
      if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, s.fd, &ev) != 0) return Status::Error(Errno("dns: epoll_ctl"));
      family_sockets_[f].push_back(static_cast<uint32_t>(sockets_.size() - 1));
    }
  }
  // Each socket has 64Ki IDs; keep well below so a random free ID is found fast.
  const size_t cap = std::min<size_t>(config_.max_in_flight, static_cast<size_t>(config_.sockets) * kIdsPerSocket / 2);
  questions_.resize(cap);
  for (size_t i = cap; i > 0; --i) free_.push_back(static_cast<uint32_t>(i - 1));
  for (int i = 0; i < kBatch; ++i) {
    recv_iovs_[i] = {recv_buf_.data() + i * kUdpBufSize, kUdpBufSize};
    recv_msgs_[i].msg_hdr.msg_iov = &recv_iovs_[i];
    recv_msgs_[i].msg_hdr.msg_iovlen = 1;
    recv_msgs_[i].msg_hdr.msg_name = &recv_from_[i];
  }
  return Status::Ok();
}

void DnsClient::Impl::Query(std::string name, uint16_t qtype, Callback callback) {
  stats_.queries.fetch_add(1, std::memory_order_relaxed);
  waiting_.push_back({std::move(name), qtype, std::move(callback)});
}

void DnsClient::Impl::Poll(std::chrono::milliseconds max_wait) {
  TimePoint now = clock_.Now();
  const TimePoint end = now + max_wait;
  Pump(now);
  if (completions_.empty()) {
    Wait(NextWait(now, end));
    Pump(clock_.Now());
  }
  RunCallbacks();
  Pump(clock_.Now());  // questions the callbacks asked go out now, not a poll later
}

void DnsClient::Impl::Pump(TimePoint now) {
  ExpireTimeouts(now);
  Admit();
  SendReady(now);
}

void DnsClient::Impl::Admit() {
  while (!waiting_.empty() && !free_.empty()) {
    const uint32_t qi = free_.back();
    free_.pop_back();
    ++in_flight_;
    Question& q = questions_[qi];
    Waiting& w = waiting_.front();
    q.name = std::move(w.name);
    q.callback = std::move(w.callback);
    q.qtype = w.qtype;
    waiting_.pop_front();
    for (char& c : q.name) {
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
    }
    q.tries = 0;
    q.server = kNone;
    q.phase = Phase::kReady;
    Status built = dnswire::BuildQuery(q.name, q.qtype, q.query);
    if (!built.ok()) {
      DnsResponse r;
      r.status = DnsStatus::kNetworkError;
      r.detail = built.message();
      Complete(qi, std::move(r));
      continue;
    }
    ready_.push_back(qi);
  }
}

// First attempts take the next server (round-robin) that has a token; retries
// must go to the server after the one that failed them.
bool DnsClient::Impl::PickServer(Question& q) {
  const auto n = static_cast<uint32_t>(servers_.size());
  if (q.tries > 0) {
    const uint32_t s = (q.server + 1) % n;
    if (!servers_[s].bucket.Has()) return false;
    q.server = s;
    return true;
  }
  for (uint32_t i = 0; i < n; ++i) {
    const uint32_t s = (next_server_ + i) % n;
    if (servers_[s].bucket.Has()) {
      q.server = s;
      next_server_ = (s + 1) % n;
      return true;
    }
  }
  return false;
}

void DnsClient::Impl::SendReady(TimePoint now) {
  if (ready_.empty()) return;
  global_.Refill(now);
  for (auto& s : servers_) s.bucket.Refill(now);
  // Questions whose server has no token yet stay queued, in order, behind the rest.
  for (size_t n = ready_.size(); n > 0 && global_.Has(); --n) {
    const uint32_t qi = ready_.front();
    ready_.pop_front();
    if (!PickServer(questions_[qi])) {
      ready_.push_back(qi);
      continue;
    }
    global_.Take();
    servers_[questions_[qi].server].bucket.Take();
    SendUdp(qi, now);
  }
  for (auto& s : sockets_) Flush(s);
}

uint16_t DnsClient::Impl::FreeId(const UdpSocket& s) {
  for (int i = 0; i < 32; ++i) {
    const uint16_t id = random_.Next();
    if (s.by_id[id] == kNone) return id;
  }
  // Nearly full socket: scan from a random start (the cap in Open keeps one free).
  for (uint32_t i = 0, start = random_.Next();; ++i) {
    const auto id = static_cast<uint16_t>(start + i);
    if (s.by_id[id] == kNone) return id;
  }
}

void DnsClient::Impl::SendUdp(uint32_t qi, TimePoint now) {
  Question& q = questions_[qi];
  const Server& server = servers_[q.server];
  const int f = server.addr.ss_family == AF_INET6;
  const auto& family = family_sockets_[f];
  const uint32_t si = family[next_socket_[f]++ % family.size()];
  UdpSocket& s = sockets_[si];
  if (s.batched == kBatch) Flush(s);
  q.id = FreeId(s);
  dnswire::SetId(q.query.wire.data(), q.id);
  s.by_id[q.id] = qi;
  ++s.in_flight;
  q.socket = si;
  q.phase = Phase::kUdp;
  ++q.tries;
  ++q.seq;
  Link(qi, now + config_.timeout);
  const int b = s.batched++;
  s.iovs[b] = {q.query.wire.data(), q.query.size};
  s.msgs[b].msg_hdr = {};
  s.msgs[b].msg_hdr.msg_name = const_cast<sockaddr_storage*>(&server.addr);
  s.msgs[b].msg_hdr.msg_namelen = server.addr_len;
  s.msgs[b].msg_hdr.msg_iov = &s.iovs[b];
  s.msgs[b].msg_hdr.msg_iovlen = 1;
  s.questions[b] = qi;
}

// Datagrams the kernel refuses with EAGAIN count as sent and lost: their timeout
// retries them. Any other error fails that one attempt.
void DnsClient::Impl::Flush(UdpSocket& s) {
  int done = 0;
  while (done < s.batched) {
    const int r = sendmmsg(s.fd, s.msgs.data() + done, static_cast<unsigned>(s.batched - done), 0);
    if (r > 0) {
      stats_.attempts.fetch_add(static_cast<uint64_t>(r), std::memory_order_relaxed);
      done += r;
      continue;
    }
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      stats_.attempts.fetch_add(static_cast<uint64_t>(s.batched - done), std::memory_order_relaxed);
      break;
    }
    const uint32_t qi = s.questions[done++];
    AttemptFailed(qi, DnsStatus::kNetworkError, Errno("sendmmsg to") + " " + servers_[questions_[qi].server].label);
  }
  s.batched = 0;
}

Nanos DnsClient::Impl::NextWait(TimePoint now, TimePoint end) const {
  TimePoint until = end;
  if (head_ != kNone) until = std::min(until, questions_[head_].deadline);
  if (!ready_.empty()) {  // all of them wait for a token
    Nanos first_server = Nanos::max();
    for (const auto& s : servers_) first_server = std::min(first_server, s.bucket.UntilToken());
    Nanos server = Nanos::max();
    for (uint32_t qi : ready_) {
      const Question& q = questions_[qi];
      server = std::min(server, q.tries == 0 ? first_server
                                             : servers_[(q.server + 1) % servers_.size()].bucket.UntilToken());
    }
    until = std::min(until, now + std::max(global_.UntilToken(), server));
  }
  return until > now ? until - now : Nanos(0);
}

void DnsClient::Impl::Wait(Nanos timeout) {
  std::array<epoll_event, 64> events;
  timespec ts{static_cast<time_t>(timeout.count() / 1000000000), static_cast<long>(timeout.count() % 1000000000)};
  int n = epoll_pwait2(epoll_fd_, events.data(), static_cast<int>(events.size()), &ts, nullptr);
  if (n < 0 && errno == ENOSYS) {
    const auto ms = std::chrono::ceil<std::chrono::milliseconds>(timeout).count();
    n = epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()), static_cast<int>(std::min<int64_t>(ms, 1 << 30)));
  }
  for (int i = 0; i < n; ++i) {
    const uint64_t data = events[i].data.u64;
    const auto low = static_cast<uint32_t>(data);
    if (low & kTcpTag) {
      HandleTcp(low & ~kTcpTag, static_cast<uint32_t>(data >> 32), events[i].events);
    } else {
      ReceiveUdp(low);
    }
  }
}

void DnsClient::Impl::ReceiveUdp(uint32_t socket_index) {
  for (;;) {
    for (int i = 0; i < kBatch; ++i) {
      recv_msgs_[i].msg_hdr.msg_namelen = sizeof(sockaddr_storage);
      recv_msgs_[i].msg_hdr.msg_flags = 0;
    }
    const int n = recvmmsg(sockets_[socket_index].fd, recv_msgs_.data(), kBatch, MSG_DONTWAIT, nullptr);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    for (int i = 0; i < n; ++i) {
      HandleUdp(socket_index, recv_buf_.data() + i * kUdpBufSize, recv_msgs_[i].msg_len, recv_from_[i],
                recv_msgs_[i].msg_hdr.msg_flags);
    }
    if (n < kBatch) return;
  }
}

void DnsClient::Impl::HandleUdp(uint32_t socket_index, const uint8_t* data, size_t len,
                                const sockaddr_storage& from, int flags) {
  if (len < dnswire::kHeaderSize) return stats_.Drop(DnsDrop::kShort);
  const uint32_t qi = sockets_[socket_index].by_id[dnswire::GetId(data)];
  if (qi == kNone || !SameAddress(from, servers_[questions_[qi].server].addr)) {
    return stats_.Drop(DnsDrop::kUnknownId);
  }
  if (!dnswire::IsResponse(data)) return stats_.Drop(DnsDrop::kNotResponse);
  if (flags & MSG_TRUNC) return stats_.Drop(DnsDrop::kMalformed);
  if (!dnswire::QuestionMatches(data, len, questions_[qi].query)) return stats_.Drop(DnsDrop::kQuestionMismatch);
  if (dnswire::IsTruncated(data)) {
    stats_.tcp_fallbacks.fetch_add(1, std::memory_order_relaxed);
    return StartTcp(qi, clock_.Now());
  }
  Accept(qi, data, len);
}

// The header and question already matched; checks the rest and completes.
bool DnsClient::Impl::Accept(uint32_t qi, const uint8_t* data, size_t len) {
  DnsResponse r;
  r.rcode = dnswire::Rcode(data);
  r.status = StatusOfRcode(r.rcode);
  if (!dnswire::ParseAnswers(data, len, r.answers)) {
    stats_.Drop(DnsDrop::kMalformed);
    return false;
  }
  if (r.status != DnsStatus::kNoError && r.status != DnsStatus::kNxDomain) {
    r.detail = std::string(DnsStatusName(r.status)) + " (rcode " + std::to_string(r.rcode) + ") from " +
               servers_[questions_[qi].server].label;
  }
  Complete(qi, std::move(r));
  return true;
}

void DnsClient::Impl::StartTcp(uint32_t qi, TimePoint now) {
  Question& q = questions_[qi];
  EndAttempt(q);
  const Server& server = servers_[q.server];
  auto c = std::make_unique<TcpConn>();
  c->fd = socket(server.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c->fd < 0) return AttemptFailed(qi, DnsStatus::kNetworkError, Errno("tcp socket"));
  q.tcp = std::move(c);
  TcpConn& tcp = *q.tcp;
  q.phase = Phase::kTcp;
  ++q.seq;
  Link(qi, now + config_.timeout);
  if (connect(tcp.fd, reinterpret_cast<const sockaddr*>(&server.addr), server.addr_len) != 0 &&
      errno != EINPROGRESS) {
    return AttemptFailed(qi, DnsStatus::kNetworkError, Errno("tcp connect to") + " " + server.label);
  }
  tcp.out.resize(2 + q.query.size);
  tcp.out[0] = static_cast<uint8_t>(q.query.size >> 8);
  tcp.out[1] = static_cast<uint8_t>(q.query.size);
  std::memcpy(tcp.out.data() + 2, q.query.wire.data(), q.query.size);
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLOUT;
  ev.data.u64 = TcpKey(qi);
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, tcp.fd, &ev) != 0) {
    return AttemptFailed(qi, DnsStatus::kNetworkError, Errno("epoll_ctl"));
  }
  stats_.attempts.fetch_add(1, std::memory_order_relaxed);
}

void DnsClient::Impl::HandleTcp(uint32_t qi, uint32_t seq, uint32_t events) {
  if (qi >= questions_.size() || questions_[qi].seq != seq || questions_[qi].phase != Phase::kTcp) return;
  TcpConn& c = *questions_[qi].tcp;
  const std::string& label = servers_[questions_[qi].server].label;
  if (!c.connected) {
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    if (err != 0) {
      return AttemptFailed(qi, DnsStatus::kNetworkError, "tcp connect to " + label + ": " + std::strerror(err));
    }
    if (!(events & (EPOLLOUT | EPOLLIN))) return;
    c.connected = true;
  }
  if (c.written < c.out.size() && !TcpWrite(qi)) {
    return AttemptFailed(qi, DnsStatus::kNetworkError, Errno("tcp send to") + " " + label);
  }
  if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) TcpRead(qi);
}

// Once the query is out, stops asking for EPOLLOUT.
bool DnsClient::Impl::TcpWrite(uint32_t qi) {
  TcpConn& c = *questions_[qi].tcp;
  while (c.written < c.out.size()) {
    const ssize_t r = send(c.fd, c.out.data() + c.written, c.out.size() - c.written, MSG_NOSIGNAL);
    if (r < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
    c.written += static_cast<size_t>(r);
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = TcpKey(qi);
  return epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, c.fd, &ev) == 0;
}

// Reads what is there. A complete message that fails validation is dropped and
// counted, and the connection stays open for the next one until the timeout.
bool DnsClient::Impl::TcpRead(uint32_t qi) {
  for (;;) {
    TcpConn& c = *questions_[qi].tcp;
    const size_t want = c.received < 2 ? 2 : 2 + (static_cast<size_t>(c.in[0]) << 8 | c.in[1]);
    if (c.in.size() < want) c.in.resize(want);
    if (c.received == want) {
      const uint8_t* msg = c.in.data() + 2;
      const size_t len = want - 2;
      c.received = 0;
      if (len < dnswire::kHeaderSize) {
        stats_.Drop(DnsDrop::kShort);
      } else if (dnswire::GetId(msg) != questions_[qi].id) {
        stats_.Drop(DnsDrop::kUnknownId);
      } else if (!dnswire::IsResponse(msg)) {
        stats_.Drop(DnsDrop::kNotResponse);
      } else if (!dnswire::QuestionMatches(msg, len, questions_[qi].query)) {
        stats_.Drop(DnsDrop::kQuestionMismatch);
      } else if (Accept(qi, msg, len)) {
        return true;
      }
      continue;
    }
    const ssize_t r = recv(c.fd, c.in.data() + c.received, want - c.received, 0);
    if (r > 0) {
      c.received += static_cast<size_t>(r);
      continue;
    }
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return false;
    const std::string why = r == 0 ? std::string("connection closed") : std::strerror(errno);
    AttemptFailed(qi, DnsStatus::kNetworkError, "tcp from " + servers_[questions_[qi].server].label + ": " + why);
    return false;
  }
}

void DnsClient::Impl::ExpireTimeouts(TimePoint now) {
  while (head_ != kNone && questions_[head_].deadline <= now) {
    const uint32_t qi = head_;
    AttemptFailed(qi, DnsStatus::kTimeout,
                  "no reply from " + servers_[questions_[qi].server].label + " after " +
                      std::to_string(questions_[qi].tries) + " tries");
  }
}

// Frees what the current attempt holds: its ID, its TCP connection, its timeout.
void DnsClient::Impl::EndAttempt(Question& q) {
  if (q.phase == Phase::kUdp) {
    UdpSocket& s = sockets_[q.socket];
    s.by_id[q.id] = kNone;
    --s.in_flight;
  }
  if (q.tcp) {
    if (q.tcp->fd >= 0) close(q.tcp->fd);  // also leaves the epoll set
    q.tcp.reset();
  }
  if (q.phase == Phase::kUdp || q.phase == Phase::kTcp) Unlink(static_cast<uint32_t>(&q - questions_.data()));
  q.phase = Phase::kReady;
}

// Retries on the next server while attempts remain, else ends the question.
void DnsClient::Impl::AttemptFailed(uint32_t qi, DnsStatus status, std::string detail) {
  Question& q = questions_[qi];
  EndAttempt(q);
  if (q.tries < config_.attempts) {
    ready_.push_back(qi);
    return;
  }
  DnsResponse r;
  r.status = status;
  r.detail = std::move(detail);
  Complete(qi, std::move(r));
}

void DnsClient::Impl::Complete(uint32_t qi, DnsResponse&& response) {
  Question& q = questions_[qi];
  EndAttempt(q);
  if (response.status != DnsStatus::kNoError && response.status != DnsStatus::kNxDomain) {
    stats_.Fail(FailureOf(response.status));
  }
  completions_.push_back({std::move(q.callback), std::move(response)});
  q.callback = nullptr;
  q.phase = Phase::kFree;
  ++q.seq;
  free_.push_back(qi);
  --in_flight_;
}

// A callback may Query() or even Poll() again: it only ever sees completions_
// after this batch was moved out of it.
void DnsClient::Impl::RunCallbacks() {
  std::vector<Completion> batch;
  batch.swap(completions_);
  for (auto& c : batch) c.callback(std::move(c.response));
  if (completions_.empty()) {  // keep the capacity for the next batch
    batch.clear();
    completions_.swap(batch);
  }
}

void DnsClient::Impl::Link(uint32_t qi, TimePoint deadline) {
  Question& q = questions_[qi];
  q.deadline = deadline;
  q.prev = tail_;
  q.next = kNone;
  (tail_ == kNone ? head_ : questions_[tail_].next) = qi;
  tail_ = qi;
}

void DnsClient::Impl::Unlink(uint32_t qi) {
  Question& q = questions_[qi];
  (q.prev == kNone ? head_ : questions_[q.prev].next) = q.next;
  (q.next == kNone ? tail_ : questions_[q.next].prev) = q.prev;
  q.prev = q.next = kNone;
}

Result<std::unique_ptr<DnsClient>> DnsClient::Create(const DnsConfig& config, Clock& clock, DnsStats& stats) {
  auto impl = std::make_unique<Impl>(config, clock, stats);
  Status st = impl->Open();
  if (!st.ok()) return st;
  return std::unique_ptr<DnsClient>(new DnsClient(std::move(impl)));
}

DnsClient::DnsClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
DnsClient::~DnsClient() = default;

void DnsClient::Query(std::string name, uint16_t qtype, Callback callback) {
  impl_->Query(std::move(name), qtype, std::move(callback));
}
size_t DnsClient::Pending() const { return impl_->Pending(); }
void DnsClient::Poll(std::chrono::milliseconds max_wait) { impl_->Poll(max_wait); }

}  // namespace repwatch
