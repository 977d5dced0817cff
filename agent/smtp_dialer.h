// The dialer seam: an SMTP connection from a chosen source address. The MX probe
// (checks/mx_probe.h) speaks the protocol through SmtpConnection and never touches
// sockets; the production dialer (MakeSocketDialer) uses blocking sockets with a
// deadline on every step and OpenSSL for STARTTLS; tests script the server side.
//
// Everything here is blocking and meant for the probe's worker threads. A dialer
// is thread-safe; a connection belongs to one thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <variant>

#include "agent/ip.h"
#include "agent/smtp_reply.h"
#include "agent/status.h"

namespace repwatch {

using Deadline = std::chrono::steady_clock::time_point;

// Why a connection could not be made. kNotLocal is a configuration problem (the
// source address is not on this host): it is never retried from another address.
enum class DialErrorKind { kNotLocal, kRefused, kTimeout, kUnreachable, kOther };

struct DialError {
  DialErrorKind kind = DialErrorKind::kOther;
  std::string message;  // "connection refused", "no answer within 10s", "not a local address", ...
};

struct TlsInfo {
  std::string protocol;          // "TLSv1.3"
  std::string cipher;            // "TLS_AES_256_GCM_SHA384"
  bool name_match = false;       // the certificate is valid for the MX host name (SAN/CN, RFC 6125)
  std::string peer_name;         // the certificate's first DNS name (SAN) or CN, for people
};

class SmtpConnection {
 public:
  virtual ~SmtpConnection() = default;
  // Reads one whole reply (every continuation line) before `deadline`. A reply
  // trickled out byte by byte (a tarpit) is fine as long as it ends in time.
  // Errors: "timeout after Ns waiting for ...", "connection closed", "malformed reply: ...".
  virtual Result<SmtpReply> ReadReply(Deadline deadline) = 0;
  // Sends one command line; CRLF is appended.
  virtual Status SendLine(std::string_view line, Deadline deadline) = 0;
  // Runs the TLS handshake on the open connection (after "220" to STARTTLS), with
  // SNI `server_name`, and checks the certificate's names against it. The chain is
  // not verified: many MX hosts use self-signed certificates, and a probe must
  // still reach the SMTP replies behind them.
  virtual Result<TlsInfo> StartTls(const std::string& server_name, Deadline deadline) = 0;
};

class SmtpDialer {
 public:
  virtual ~SmtpDialer() = default;
  struct Connected {
    std::unique_ptr<SmtpConnection> connection;
  };
  // Binds `source` (port chosen by the kernel) and connects to dest:port. IPv4
  // sources reach IPv4 destinations only, likewise IPv6.
  virtual std::variant<Connected, DialError> Connect(const IpAddress& source, const IpAddress& dest, uint16_t port,
                                                     Deadline deadline) = 0;
};

// Real sockets. Thread-safe.
std::unique_ptr<SmtpDialer> MakeSocketDialer();

}  // namespace repwatch
