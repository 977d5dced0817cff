#include "agent/smtp_dialer.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace repwatch {
namespace {

constexpr size_t kMaxLine = 8192;        // RFC 5321 allows 512; receivers exceed it, attackers more so
constexpr size_t kMaxReplyLines = 200;

socklen_t ToSockaddr(const IpAddress& ip, uint16_t port, sockaddr_storage& ss) {
  std::memset(&ss, 0, sizeof ss);
  if (ip.is_v4()) {
    auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    sin->sin_addr.s_addr = htonl(ip.v4());
    return sizeof(sockaddr_in);
  }
  auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
  sin6->sin6_family = AF_INET6;
  sin6->sin6_port = htons(port);
  std::memcpy(&sin6->sin6_addr, ip.bytes().data(), 16);
  return sizeof(sockaddr_in6);
}

// Milliseconds left until `deadline`, at least 0, for poll().
int MillisLeft(Deadline deadline) {
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  return static_cast<int>(std::clamp<long long>(left.count(), 0, 24 * 3600 * 1000));
}

// Waits for `events` on fd; false when the deadline passed first.
bool WaitFor(int fd, short events, Deadline deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    const int ms = MillisLeft(deadline);
    const int rc = ::poll(&p, 1, ms);
    if (rc > 0) return true;
    if (rc == 0) return false;
    if (errno != EINTR) return true;  // let the read/write report the error
  }
}

std::string OpenSslError() {
  const unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "connection closed";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

// One client context for every session: no chain verification (the probe records
// whether the certificate names the host; it must still reach the replies behind
// a self-signed certificate), no session cache (each session is its own probe).
SSL_CTX* ClientContext() {
  static SSL_CTX* ctx = [] {
    SSL_CTX* c = SSL_CTX_new(TLS_client_method());
    if (c) {
      SSL_CTX_set_verify(c, SSL_VERIFY_NONE, nullptr);
      SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
    }
    return c;
  }();
  return ctx;
}

// The certificate's first DNS subjectAltName, else its CN.
std::string FirstName(X509* cert) {
  std::string out;
  if (auto* names = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr))) {
    for (int i = 0; i < sk_GENERAL_NAME_num(names) && out.empty(); ++i) {
      const GENERAL_NAME* n = sk_GENERAL_NAME_value(names, i);
      if (n->type == GEN_DNS)
        out.assign(reinterpret_cast<const char*>(ASN1_STRING_get0_data(n->d.dNSName)),
                   static_cast<size_t>(ASN1_STRING_length(n->d.dNSName)));
    }
    GENERAL_NAMES_free(names);
  }
  if (out.empty()) {
    char cn[256] = {};
    if (X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn) > 0) out = cn;
  }
  return out;
}

class SocketConnection final : public SmtpConnection {
 public:
  explicit SocketConnection(int fd) : fd_(fd) {}
  ~SocketConnection() override {
    if (ssl_) {
      SSL_shutdown(ssl_);  // best effort, non-blocking socket: never waits
      SSL_free(ssl_);
    }
    ::close(fd_);
  }

  Result<SmtpReply> ReadReply(Deadline deadline) override {
    SmtpReply reply;
    for (;;) {
      const size_t eol = buf_.find('\n');
      if (eol == std::string::npos) {
        if (buf_.size() > kMaxLine) return Status::Error(fmt::format("malformed reply: a line longer than {} bytes", kMaxLine));
        if (Status s = Fill(deadline); !s.ok()) {
          // What arrived before the failure still tells people something.
          if (!reply.lines.empty() || !buf_.empty())
            return Status::Error(fmt::format("{} (after \"{}\")", s.message(),
                                             reply.lines.empty() ? buf_.substr(0, 80) : reply.lines.back()));
          return s;
        }
        continue;
      }
      std::string line = buf_.substr(0, eol);
      buf_.erase(0, eol + 1);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      bool last = false;
      if (!AppendReplyLine(reply, line, &last))
        return Status::Error(fmt::format("malformed reply line \"{}\"", line.substr(0, 120)));
      if (last) return reply;
      if (reply.lines.size() > kMaxReplyLines)
        return Status::Error(fmt::format("malformed reply: more than {} lines", kMaxReplyLines));
    }
  }

  Status SendLine(std::string_view line, Deadline deadline) override {
    std::string data(line);
    data += "\r\n";
    size_t sent = 0;
    while (sent < data.size()) {
      if (ssl_) {
        size_t n = 0;
        ERR_clear_error();
        if (SSL_write_ex(ssl_, data.data() + sent, data.size() - sent, &n) == 1) {
          sent += n;
          continue;
        }
        if (Status s = SslWait(SSL_get_error(ssl_, 0), deadline, "sending"); !s.ok()) return s;
        continue;
      }
      const ssize_t n = ::send(fd_, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
      if (n > 0) {
        sent += static_cast<size_t>(n);
      } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        if (!WaitFor(fd_, POLLOUT, deadline)) return Status::Error("timeout while sending");
      } else {
        return Status::Error(fmt::format("send failed: {}", std::strerror(errno)));
      }
    }
    return Status::Ok();
  }

  Result<TlsInfo> StartTls(const std::string& server_name, Deadline deadline) override {
    // Bytes the server sent before the handshake would be read as if protected by
    // TLS (CVE-2011-0411-style injection): refuse rather than carry them over.
    if (!buf_.empty()) return Status::Error("the server sent data before the TLS handshake");
    SSL_CTX* ctx = ClientContext();
    if (!ctx) return Status::Error("TLS is not available: " + OpenSslError());
    ssl_ = SSL_new(ctx);
    if (!ssl_ || SSL_set_fd(ssl_, fd_) != 1) return Status::Error("TLS setup failed: " + OpenSslError());
    SSL_set_tlsext_host_name(ssl_, server_name.c_str());
    for (;;) {
      ERR_clear_error();
      const int rc = SSL_connect(ssl_);
      if (rc == 1) break;
      const int err = SSL_get_error(ssl_, rc);
      if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) {
        std::string why = OpenSslError();
        SSL_free(ssl_);
        ssl_ = nullptr;
        return Status::Error("TLS handshake failed: " + why);
      }
      if (!WaitFor(fd_, err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline)) {
        SSL_free(ssl_);
        ssl_ = nullptr;
        return Status::Error("timeout during the TLS handshake");
      }
    }
    TlsInfo info;
    info.protocol = SSL_get_version(ssl_);
    if (const SSL_CIPHER* c = SSL_get_current_cipher(ssl_)) info.cipher = SSL_CIPHER_get_name(c);
    if (X509* cert = SSL_get1_peer_certificate(ssl_)) {
      info.peer_name = FirstName(cert);
      info.name_match = X509_check_host(cert, server_name.data(), server_name.size(), 0, nullptr) == 1;
      X509_free(cert);
    }
    return info;
  }

 private:
  // Reads whatever is available (waiting until the deadline) and appends it to buf_.
  Status Fill(Deadline deadline) {
    char chunk[4096];
    for (;;) {
      if (ssl_) {
        size_t n = 0;
        ERR_clear_error();
        if (SSL_read_ex(ssl_, chunk, sizeof chunk, &n) == 1) {
          buf_.append(chunk, n);
          return Status::Ok();
        }
        if (Status s = SslWait(SSL_get_error(ssl_, 0), deadline, "waiting for a reply"); !s.ok()) return s;
        continue;
      }
      const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
      if (n > 0) {
        buf_.append(chunk, static_cast<size_t>(n));
        return Status::Ok();
      }
      if (n == 0) return Status::Error("connection closed by the server");
      if (errno == EAGAIN || errno == EINTR) {
        if (!WaitFor(fd_, POLLIN, deadline)) return Status::Error("timeout");
        continue;
      }
      return Status::Error(fmt::format("receive failed: {}", std::strerror(errno)));
    }
  }

  Status SslWait(int err, Deadline deadline, std::string_view doing) {
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
      if (!WaitFor(fd_, err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline))
        return Status::Error(doing == "sending" ? "timeout while sending" : "timeout");
      return Status::Ok();
    }
    if (err == SSL_ERROR_ZERO_RETURN) return Status::Error("connection closed by the server");
    return Status::Error(fmt::format("TLS error while {}: {}", doing, OpenSslError()));
  }

  int fd_;
  SSL* ssl_ = nullptr;
  std::string buf_;
};

class SocketDialer final : public SmtpDialer {
 public:
  std::variant<Connected, DialError> Connect(const IpAddress& source, const IpAddress& dest, uint16_t port,
                                             Deadline deadline) override {
    if (source.family() != dest.family())
      return DialError{DialErrorKind::kOther, "the source and the destination are of different address families"};
    const int fd = ::socket(source.is_v4() ? AF_INET : AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return DialError{DialErrorKind::kOther, fmt::format("socket: {}", std::strerror(errno))};
    sockaddr_storage ss;
    socklen_t len = ToSockaddr(source, 0, ss);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
      const int e = errno;
      ::close(fd);
      if (e == EADDRNOTAVAIL) return DialError{DialErrorKind::kNotLocal, "not a local address"};
      return DialError{DialErrorKind::kOther, fmt::format("cannot bind {}: {}", source.ToString(), std::strerror(e))};
    }
    len = ToSockaddr(dest, port, ss);
    int e = 0;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
      e = errno;
      if (e == EINPROGRESS) {
        if (!WaitFor(fd, POLLOUT, deadline)) {
          ::close(fd);
          return DialError{DialErrorKind::kTimeout, "no answer to the connection attempt (is outbound port " +
                                                        std::to_string(port) + " blocked?)"};
        }
        socklen_t elen = sizeof e;
        if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &elen) != 0) e = errno;
      }
    }
    if (e == 0) return Connected{std::make_unique<SocketConnection>(fd)};
    ::close(fd);
    switch (e) {
      case ECONNREFUSED: return DialError{DialErrorKind::kRefused, "connection refused"};
      case ETIMEDOUT: return DialError{DialErrorKind::kTimeout, "connection timed out"};
      case ENETUNREACH:
      case EHOSTUNREACH: return DialError{DialErrorKind::kUnreachable, std::strerror(e)};
      case EPERM:
      case EACCES:
        return DialError{DialErrorKind::kUnreachable,
                         fmt::format("outbound connection to port {} blocked by a local firewall ({})", port,
                                     std::strerror(e))};
      default: return DialError{DialErrorKind::kOther, fmt::format("connect: {}", std::strerror(e))};
    }
  }
};

}  // namespace

std::unique_ptr<SmtpDialer> MakeSocketDialer() { return std::make_unique<SocketDialer>(); }

}  // namespace repwatch
