#include "agent/log_formats.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <climits>
#include <cmath>
#include <ctime>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace repwatch {
namespace {

// Unix seconds of a wall-clock time in the local zone: what syslog and Exim
// timestamps without a zone mean (the host that wrote the log is the agent's).
long long Local(int y, int mo, int d, int h, int mi, int s) {
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = s;
  tm.tm_isdst = -1;
  return static_cast<long long>(std::mktime(&tm));
}

constexpr long long kUtc20250304T101112 = 1741083072;  // 2025-03-04T10:11:12Z
constexpr long long kUtc20250304T091112 = 1741079472;  // 2025-03-04T09:11:12Z

IpAddress Ip(std::string_view text) { return IpAddress::Parse(text).value(); }

struct Want {
  std::string ip;
  VolumeOutcome outcome;
  uint32_t count;
  std::string receiver;
  long long at;
  std::string reply;
};

// Parses `line`, which must be an event, and compares every field of it.
void CheckEvent(LineParser& parser, std::string_view line, long long now, const Want& want) {
  INFO(line);
  VolumeEvent e;
  e.reply = "left over from a previous line";  // a reused event must be overwritten
  REQUIRE(parser.Parse(line, now, &e) == LineKind::kEvent);
  CHECK(e.ip == Ip(want.ip));
  CHECK(e.ip.ToString() == want.ip);
  CHECK(VolumeOutcomeName(e.outcome) == VolumeOutcomeName(want.outcome));
  CHECK(e.count == want.count);
  CHECK(e.receiver == want.receiver);
  CHECK(e.at == want.at);
  CHECK(e.reply == want.reply);
}

LineKind Kind(LineParser& parser, std::string_view line, long long now = 0) {
  VolumeEvent e;
  return parser.Parse(line, now, &e);
}

const std::string kMegabyteLine(1 << 20, 'x');

// Google's multi-line 421-4.7.28 reply, flattened onto one log line the way MTAs write it.
const std::string kGmailReply =
    "421-4.7.28 [192.0.2.11      15] Our system has detected an unusual rate of 421-4.7.28 unsolicited mail "
    "originating from your IP address. To protect our 421-4.7.28 users from spam, mail sent from your IP address "
    "has been temporarily 421-4.7.28 rate limited. For more information, go to 421-4.7.28  "
    "https://support.google.com/mail/?p=UnsolicitedRateLimitError to 421 4.7.28 review our Bulk Email Senders "
    "Guidelines. a1si1234567qkb.89 - gsmtp";

TEST_CASE("log format and volume outcome names round-trip", "[log_formats]") {
  for (LogFormat f : {LogFormat::kPostfix, LogFormat::kExim, LogFormat::kKumoMta, LogFormat::kPowerMta})
    CHECK(ParseLogFormat(LogFormatName(f)) == f);
  CHECK(LogFormatName(LogFormat::kPostfix) == "postfix");
  CHECK(LogFormatName(LogFormat::kExim) == "exim");
  CHECK(LogFormatName(LogFormat::kKumoMta) == "kumomta");
  CHECK(LogFormatName(LogFormat::kPowerMta) == "powermta");
  CHECK_FALSE(ParseLogFormat("Postfix"));
  CHECK_FALSE(ParseLogFormat("sendmail"));
  CHECK_FALSE(ParseLogFormat(""));

  for (VolumeOutcome o : {VolumeOutcome::kDelivered, VolumeOutcome::kDeferred, VolumeOutcome::kBounced})
    CHECK(ParseVolumeOutcome(VolumeOutcomeName(o)) == o);
  CHECK(VolumeOutcomeName(VolumeOutcome::kDelivered) == "delivered");
  CHECK(VolumeOutcomeName(VolumeOutcome::kDeferred) == "deferred");
  CHECK(VolumeOutcomeName(VolumeOutcome::kBounced) == "bounced");
  CHECK_FALSE(ParseVolumeOutcome("sent"));
  CHECK_FALSE(ParseVolumeOutcome(""));
}

// --- postfix --------------------------------------------------------------------------------------------

std::map<std::string, IpAddress> PostfixTags() {
  return {{"postfix-ip2", Ip("192.0.2.11")},
          {"ip3out", Ip("192.0.2.12")},
          {"smtp-ip4", Ip("192.0.2.13")},
          {"postfix-v6", Ip("2001:db8::11")}};
}

TEST_CASE("postfix: delivered, deferred and bounced lines by tag, service and process name", "[log_formats]") {
  auto parser = MakeLineParser(LogFormat::kPostfix, PostfixTags());
  const long long now = Local(2025, 3, 5, 0, 0, 0);

  // syslog_name = postfix-ip2 -> "postfix-ip2/smtp"; RFC 3164 time in the local zone, this year.
  CheckEvent(*parser,
             "Mar  4 10:11:12 mx1 postfix-ip2/smtp[2345]: 4F1A2B3C4D: to=<bob@Example.ORG>, "
             "relay=mx.example.org[198.51.100.25]:25, delay=1.2, delays=0.1/0/0.5/0.6, dsn=2.0.0, "
             "status=sent (250 2.0.0 OK 1741083072 a1si123)",
             now, {"192.0.2.11", VolumeOutcome::kDelivered, 1, "example.org", Local(2025, 3, 4, 10, 11, 12), ""});

  // syslog_name = postfix/ip3out -> "postfix/ip3out/smtp"; RFC 3339 with fraction and offset; long queue id;
  // the multi-line 421-4.7.28 reply flattened by Postfix.
  CheckEvent(*parser,
             "2025-03-04T10:11:12.345678+01:00 mx1 postfix/ip3out/smtp[2346]: 4Q2b7k1x3Yz9kLmN: "
             "to=<carol@gmail.com>, relay=gmail-smtp-in.l.google.com[142.250.27.26]:25, delay=3.1, "
             "delays=0.1/0/0.9/2.1, dsn=4.7.28, status=deferred (host gmail-smtp-in.l.google.com[142.250.27.26] "
             "said: " + kGmailReply + " (in reply to end of DATA command))",
             now,
             {"192.0.2.12", VolumeOutcome::kDeferred, 1, "gmail.com", kUtc20250304T091112,
              "host gmail-smtp-in.l.google.com[142.250.27.26] said: " + kGmailReply +
                  " (in reply to end of DATA command)"});

  // service name as the process ("postfix/smtp-ip4"); orig_to=; "Z" offset.
  CheckEvent(*parser,
             "2025-03-04T10:11:12Z mx1 postfix/smtp-ip4[2347]: 5A6B7C8D9E: to=<nobody@yahoo.com>, "
             "orig_to=<alias@d.example>, relay=mta7.am0.yahoodns.net[67.195.204.72]:25, delay=2, delays=0/0/1/1, "
             "dsn=5.7.9, status=bounced (host mta7.am0.yahoodns.net[67.195.204.72] said: 554 5.7.9 Message not "
             "accepted for policy reasons.  See https://postmaster.yahooinc.com/error-codes (in reply to end of "
             "DATA command))",
             now,
             {"192.0.2.13", VolumeOutcome::kBounced, 1, "yahoo.com", kUtc20250304T101112,
              "host mta7.am0.yahoodns.net[67.195.204.72] said: 554 5.7.9 Message not accepted for policy reasons.  "
              "See https://postmaster.yahooinc.com/error-codes (in reply to end of DATA command)"});

  // An IPv6 source; a recipient without a domain falls back to the relay host; a deferral
  // without a remote reply; CRLF; a day number without padding.
  CheckEvent(*parser,
             "Mar 4 10:11:12 mx1 postfix-v6/smtp[2348]: 6B7C8D9E0F: to=<postmaster>, "
             "relay=MX.example.net[2001:db8:5::25]:25, delay=30, delays=0/0/30/0, dsn=4.4.1, status=deferred "
             "(connect to MX.example.net[2001:db8:5::25]:25: Connection timed out)\r",
             now,
             {"2001:db8::11", VolumeOutcome::kDeferred, 1, "mx.example.net", Local(2025, 3, 4, 10, 11, 12),
              "connect to MX.example.net[2001:db8:5::25]:25: Connection timed out"});

  // No host field (some syslog set-ups); relay=none and no domain: receiver unknown.
  CheckEvent(*parser,
             "Mar 14 09:00:00 postfix-ip2/smtp[2349]: 7C8D9E0F1A: to=<root>, relay=none, delay=0.1, "
             "delays=0/0/0.1/0, dsn=5.4.4, status=bounced (Host or domain name not found. Name service error for "
             "name=nowhere.invalid type=A: Host not found)",
             Local(2025, 3, 14, 9, 0, 1),
             {"192.0.2.11", VolumeOutcome::kBounced, 1, "", Local(2025, 3, 14, 9, 0, 0),
              "Host or domain name not found. Name service error for name=nowhere.invalid type=A: Host not found"});
}

TEST_CASE("postfix: a main-wide tag maps only the SMTP client", "[log_formats]") {
  auto parser = MakeLineParser(LogFormat::kPostfix, {{"postfix", Ip("192.0.2.50")}});
  const long long now = Local(2025, 3, 5, 0, 0, 0);
  CheckEvent(*parser,
             "Mar  4 10:11:12 mx1 postfix/smtp[100]: 1A2B3C: to=<u@example.com>, relay=mx.example.com[198.51.100.9]:25,"
             " delay=1, delays=0/0/0.5/0.5, dsn=2.0.0, status=sent (250 OK)",
             now, {"192.0.2.50", VolumeOutcome::kDelivered, 1, "example.com", Local(2025, 3, 4, 10, 11, 12), ""});
  // Local delivery, the error/retry agents and LMTP never leave from a sending address.
  CHECK(Kind(*parser,
             "Mar  4 10:11:12 mx1 postfix/local[101]: 1A2B3D: to=<root@mx1.d.example>, relay=local, delay=0.1, "
             "delays=0/0/0/0.1, dsn=2.0.0, status=sent (delivered to mailbox)",
             now) == LineKind::kIgnored);
  CHECK(Kind(*parser,
             "Mar  4 10:11:12 mx1 postfix/error[102]: 1A2B3E: to=<u@example.com>, relay=none, delay=300, "
             "delays=300/0/0/0, dsn=4.4.1, status=deferred (delivery temporarily suspended: connect to "
             "mx.example.com[198.51.100.9]:25: Connection timed out)",
             now) == LineKind::kIgnored);
  CHECK(Kind(*parser,
             "Mar  4 10:11:12 mx1 postfix/lmtp[103]: 1A2B3F: to=<u@d.example>, relay=store[private/dovecot-lmtp], "
             "delay=0.1, delays=0/0/0/0.1, dsn=2.0.0, status=sent (250 2.0.0 <u@d.example> Saved)",
             now) == LineKind::kIgnored);
}

TEST_CASE("postfix: the year of a syslog timestamp", "[log_formats]") {
  auto parser = MakeLineParser(LogFormat::kPostfix, PostfixTags());
  const std::string tail =
      " mx1 postfix-ip2/smtp[1]: 1A: to=<a@example.org>, relay=mx.example.org[198.51.100.25]:25, delay=1, "
      "delays=0/0/0/1, dsn=2.0.0, status=sent (250 OK)";
  const Want base{"192.0.2.11", VolumeOutcome::kDelivered, 1, "example.org", 0, ""};
  auto want_at = [&base](long long at) {
    Want w = base;
    w.at = at;
    return w;
  };
  // Read in the first minutes of a new year: December is last year's.
  const long long new_year = Local(2025, 1, 1, 0, 5, 0);
  CheckEvent(*parser, "Dec 31 23:59:59" + tail, new_year, want_at(Local(2024, 12, 31, 23, 59, 59)));
  // Less than a day ahead (a clock a little behind the MTA's) stays in this year.
  CheckEvent(*parser, "Jan  1 12:00:00" + tail, new_year, want_at(Local(2025, 1, 1, 12, 0, 0)));
  // More than a day ahead is last year.
  CheckEvent(*parser, "Jan  3 12:00:00" + tail, new_year, want_at(Local(2024, 1, 3, 12, 0, 0)));
  // Feb 29 read in a year without one: the last leap year.
  CheckEvent(*parser, "Feb 29 08:00:00" + tail, Local(2025, 3, 1, 0, 0, 0), want_at(Local(2024, 2, 29, 8, 0, 0)));
}

TEST_CASE("postfix: other daemons, non-delivery lines and unmapped tags are ignored", "[log_formats]") {
  auto parser = MakeLineParser(LogFormat::kPostfix, PostfixTags());
  const long long now = Local(2025, 3, 5, 0, 0, 0);
  const char* const ignored[] = {
      // arrival and queue manager
      "Mar  4 10:11:10 mx1 postfix/smtpd[2001]: connect from client.d.example[203.0.113.5]",
      "Mar  4 10:11:10 mx1 postfix/smtpd[2001]: 4F1A2B3C4D: client=client.d.example[203.0.113.5]",
      "Mar  4 10:11:10 mx1 postfix/cleanup[2002]: 4F1A2B3C4D: message-id=<42@d.example>",
      "Mar  4 10:11:10 mx1 postfix/qmgr[2003]: 4F1A2B3C4D: from=<b@d.example>, size=2100, nrcpt=1 (queue active)",
      "Mar  4 10:11:10 mx1 postfix/qmgr[2003]: 4F1A2B3C4D: to=<u@example.org>, relay=none, delay=432000, "
      "delays=432000/0/0/0, dsn=4.7.0, status=expired, returned to sender",
      // other daemons
      "Mar  4 10:11:12 mx1 dovecot: imap-login: Login: user=<u@d.example>, method=PLAIN, rip=203.0.113.5",
      "Mar  4 10:11:12 mx1 CRON[4242]: (root) CMD (run-parts /etc/cron.hourly)",
      "Mar  4 10:11:12 mx1 last message repeated 3 times",
      // a mapped SMTP client's lines that are not delivery results
      "Mar  4 10:11:12 mx1 postfix-ip2/smtp[2345]: connect to mx.example.org[198.51.100.25]:25: Connection refused",
      "Mar  4 10:11:12 mx1 postfix-ip2/smtp[2345]: warning: TLS library problem: unexpected eof",
      "Mar  4 10:11:12 mx1 postfix-ip2/smtp[2345]: 4F1A2B3C4D: host mx.example.org[198.51.100.25] said: 421 4.7.0 "
      "Try again later (in reply to MAIL FROM command)",
      "Mar  4 10:11:12 mx1 postfix-ip2/smtp[2345]: 4F1A2B3C4D: to=<u@example.org>, "
      "relay=mx.example.org[198.51.100.25]:25, delay=1, delays=0/0/0.5/0.5, dsn=2.1.5, "
      "status=deliverable (250 2.1.5 Ok)",
      // unmapped tags
      "Mar  4 10:11:12 mx1 postfix-ip9/smtp[2350]: 4F1A2B3C4E: to=<u@example.org>, "
      "relay=mx.example.org[198.51.100.25]:25, delay=1, delays=0/0/0.5/0.5, dsn=2.0.0, status=sent (250 OK)",
      "Mar  4 10:11:12 mx1 postfix/smtp[2351]: 4F1A2B3C4F: to=<u@example.org>, "
      "relay=mx.example.org[198.51.100.25]:25, delay=1, delays=0/0/0.5/0.5, dsn=2.0.0, status=sent (250 OK)",
      "Mar  4 10:11:12 mx1 postfix/ip9out/smtp[2352]: 4F1A2B3C50: to=<u@example.org>, "
      "relay=mx.example.org[198.51.100.25]:25, delay=1, delays=0/0/0.5/0.5, dsn=2.0.0, status=sent (250 OK)",
      "",
  };
  for (const char* line : ignored) {
    INFO(line);
    CHECK(Kind(*parser, line, now) == LineKind::kIgnored);
  }
}

TEST_CASE("postfix: garbage, truncated lines and huge lines are malformed", "[log_formats]") {
  auto parser = MakeLineParser(LogFormat::kPostfix, PostfixTags());
  const long long now = Local(2025, 3, 5, 0, 0, 0);
  const std::string ok_prefix = "Mar  4 10:11:12 mx1 postfix-ip2/smtp[2345]: 4F1A2B3C4D: to=<bob@example.org>, ";
  const std::vector<std::string> malformed = {
      "garbage",
      "\x01\x02\x03 binary",
      "Mar  4 10:11",
      "Mar  4 10:11:12",
      "Mar  4 10:11:12 mx1",
      "Foo  4 10:11:12 mx1 postfix-ip2/smtp[1]: x",
      "Mar 32 10:11:12 mx1 postfix-ip2/smtp[1]: x",
      "Mar  4 25:11:12 mx1 postfix-ip2/smtp[1]: x",
      "2025-03-04X10:11:12Z mx1 postfix-ip2/smtp[1]: x",
      "2025-03-04T10:11:12+1 mx1 postfix-ip2/smtp[1]: x",
      ok_prefix.substr(0, ok_prefix.size() - 10),
      ok_prefix + "relay=mx.example.org[198.51.100.25]:25, delay=1.2, del",
      ok_prefix + "relay=mx.example.org[198.51.100.25]:25, delay=1.2, delays=0/0/0/1, dsn=4.7.0, status=",
      ok_prefix + "relay=mx.example.org[198.51.100.25]:25, delay=1.2, delays=0/0/0/1, dsn=4.7.0, status=deferred",
      ok_prefix + "relay=mx.example.org[198.51.100.25]:25, delay=1.2, delays=0/0/0/1, dsn=4.7.0, "
                  "status=deferred (host mx.example.org[198.51.100.25] said: 421 4.7.0 Try ag",
      "Mar  4 10:11:12 mx1 postfix-ip2/smtp[2345]: 4F1A2B3C4D: to=<bob@example.org",
      kMegabyteLine,
      "Mar  4 10:11:12 mx1 postfix-ip2/smtp[2345]: 4F1A2B3C4D: to=<bob@example.org>, status=sent (250 OK)" +
          std::string(1 << 20, ' '),
  };
  for (const std::string& line : malformed) {
    INFO(line.substr(0, 200));
    CHECK(Kind(*parser, line, now) == LineKind::kMalformed);
  }
}

// --- exim -----------------------------------------------------------------------------------------------

TEST_CASE("exim: deliveries, deferrals and bounces with the outgoing interface", "[log_formats]") {
  auto parser = MakeLineParser(LogFormat::kExim);
  // The example of domain-facts §6: local time, no zone.
  CheckEvent(*parser,
             "2025-03-04 10:11:12 1tpAbC-000123-Xy => bob@Example.org R=dnslookup T=remote_smtp "
             "H=mx.example.org [198.51.100.25]:25 I=[192.0.2.10]:48372 X=TLS1.3:TLS_AES_256_GCM_SHA384:256 CV=yes "
             "C=\"250 2.0.0 OK id=42\" QT=2s DT=1s",
             0, {"192.0.2.10", VolumeOutcome::kDelivered, 1, "example.org", Local(2025, 3, 4, 10, 11, 12), ""});
  // A further recipient of the same delivery, with its original address.
  CheckEvent(*parser,
             "2025-03-04 10:11:12 1tpAbC-000123-Xy -> carol@example.org <c@alias.example> R=dnslookup "
             "T=remote_smtp H=mx.example.org [198.51.100.25]:25 I=[192.0.2.10]:48372 C=\"250 2.0.0 OK id=43\"",
             0, {"192.0.2.10", VolumeOutcome::kDelivered, 1, "example.org", Local(2025, 3, 4, 10, 11, 12), ""});
  // Deferred: milliseconds, a zone, +pid, a 4.97 message id, and Google's flattened 421-4.7.28.
  CheckEvent(*parser,
             "2025-03-04 10:11:12.345 +0100 [4242] 1tpAbD-00000000124-XyZA == dave@gmail.com R=dnslookup "
             "T=remote_smtp defer (-44) H=gmail-smtp-in.l.google.com [142.250.27.26]:25 I=[192.0.2.10]:48373 "
             "X=TLS1.3:TLS_AES_256_GCM_SHA384:256 CV=yes: SMTP error from remote mail server after end of data: " +
                 kGmailReply,
             0, {"192.0.2.10", VolumeOutcome::kDeferred, 1, "gmail.com", kUtc20250304T091112, kGmailReply});
  // Bounced from an IPv6 source; the reply keeps its own ": ".
  CheckEvent(*parser,
             "2025-03-04 10:11:12+0000 1tpAbE-000125-Zz ** eve@example.net R=dnslookup T=remote_smtp "
             "H=mx.example.net [2001:db8:5::25]:25 I=[2001:db8::10]:40000: SMTP error from remote mail server after "
             "RCPT TO:<eve@example.net>: 550 5.1.1 <eve@example.net>: Recipient address rejected: User unknown",
             0,
             {"2001:db8::10", VolumeOutcome::kBounced, 1, "example.net", kUtc20250304T101112,
              "550 5.1.1 <eve@example.net>: Recipient address rejected: User unknown"});
  // An older Exim's "host <name> [<ip>]: " in front of the reply; I= without a port.
  CheckEvent(*parser,
             "2025-03-04 10:11:12 1tpAbF-000126-Ab ** frank@example.com R=dnslookup T=remote_smtp "
             "H=mx.example.com [198.51.100.40] I=[192.0.2.11]: SMTP error from remote mail server after pipelined "
             "MAIL FROM:<b@d.example> SIZE=2100: host mx.example.com [198.51.100.40]: 554 5.7.1 Service unavailable;"
             " Client host [192.0.2.11] blocked using zen.spamhaus.org",
             0,
             {"192.0.2.11", VolumeOutcome::kBounced, 1, "example.com", Local(2025, 3, 4, 10, 11, 12),
              "554 5.7.1 Service unavailable; Client host [192.0.2.11] blocked using zen.spamhaus.org"});
  // A deferral that is not an SMTP reply: the text after the fields; H= without a name.
  CheckEvent(*parser,
             "2025-03-04 10:11:12 1tpAbG-000127-Cd == grace@example.com R=dnslookup T=remote_smtp defer (-18) "
             "H=[198.51.100.41]:25 I=[192.0.2.12]:48374: Remote host closed connection in response to end of data",
             0,
             {"192.0.2.12", VolumeOutcome::kDeferred, 1, "example.com", Local(2025, 3, 4, 10, 11, 12),
              "Remote host closed connection in response to end of data"});
}

TEST_CASE("exim: arrivals, other lines and lines without I= are ignored", "[log_formats]") {
  auto parser = MakeLineParser(LogFormat::kExim);
  const char* const ignored[] = {
      // an arrival carries I= too (+incoming_interface)
      "2025-03-04 10:11:10 1tpAbC-000123-Xy <= alice@d.example H=client.d.example [203.0.113.5]:51000 "
      "I=[192.0.2.1]:25 P=esmtps X=TLS1.3:TLS_AES_256_GCM_SHA384:256 CV=no S=2100 id=42@d.example",
      "2025-03-04 10:11:12 1tpAbC-000123-Xy Completed",
      "2025-03-04 10:11:12 1tpAbC-000123-Xy *> bob@example.org R=dnslookup T=remote_smtp H=mx.example.org "
      "[198.51.100.25]:25 I=[192.0.2.10]:48372",
      "2025-03-04 10:11:12 Start queue run: pid=1234",
      "2025-03-04 10:11:12 SMTP connection from client.d.example [203.0.113.5]:51000 I=[192.0.2.1]:25 closed by QUIT",
      "2025-03-04 10:11:12 [4242] 1tpAbC-000123-Xy Completed QT=2s",
      // local delivery, no interface
      "2025-03-04 10:11:12 1tpAbC-000123-Xy => alice <alice@d.example> R=localuser T=local_delivery",
      // the selector is off: unknown source
      "2025-03-04 10:11:12 1tpAbC-000123-Xy => bob@example.org R=dnslookup T=remote_smtp H=mx.example.org "
      "[198.51.100.25]:25 C=\"250 OK\"",
      "2025-03-04 10:11:12 1tpAbC-000123-Xy == bob@example.org R=dnslookup T=remote_smtp defer (-53): "
      "retry time not reached for any host for 'example.org'",
      "2025-03-04 10:11:12 1tpAbC-000123-Xy ** bob@nowhere.invalid: Unrouteable address",
      "2025-03-04 10:11:12 1tpAbC-000123-Xy ** bob@nowhere.invalid",
      "",
  };
  for (const char* line : ignored) {
    INFO(line);
    CHECK(Kind(*parser, line) == LineKind::kIgnored);
  }
}

TEST_CASE("exim: garbage, truncated lines and bad addresses are malformed", "[log_formats]") {
  auto parser = MakeLineParser(LogFormat::kExim);
  const std::string head = "2025-03-04 10:11:12 1tpAbC-000123-Xy => bob@example.org R=dnslookup T=remote_smtp "
                           "H=mx.example.org [198.51.100.25]:25 ";
  const std::vector<std::string> malformed = {
      "garbage",
      "2025-03-04 10:11",
      "2025-03-04 10:11:12",
      "2025-13-04 10:11:12 1tpAbC-000123-Xy => bob@example.org",
      "2025-02-30 10:11:12 1tpAbC-000123-Xy => bob@example.org",
      "2025-03-04 10:11:12 +01x0 1tpAbC-000123-Xy => bob@example.org",
      "2025-03-04 10:11:12 [4242 1tpAbC-000123-Xy => bob@example.org",
      head + "I=[192.0.2.10",
      head + "I=[192.0.2.300]:48372",
      head + "I=[not-an-ip]:48372",
      head + "I=[192.0.2.10]:99999",
      head + "I=[192.0.2.10]x",
      kMegabyteLine,
      head + "I=[192.0.2.10]:48372 " + std::string(1 << 20, 'y'),
  };
  for (const std::string& line : malformed) {
    INFO(line.substr(0, 200));
    CHECK(Kind(*parser, line) == LineKind::kMalformed);
  }
}

// --- kumomta --------------------------------------------------------------------------------------------

TEST_CASE("kumomta: Delivery, TransientFailure and Bounce records", "[log_formats]") {
  auto parser = MakeLineParser(LogFormat::kKumoMta);
  CheckEvent(*parser,
             R"({"type":"Delivery","id":"1d98076abbbc11ed940250ebf67f93bd","sender":"b@d.example",)"
             R"("recipient":"u@Example.org","queue":"example.org","site":"mx.example.org","size":2100,)"
             R"("response":{"code":250,"enhanced_code":{"class":2,"subject":0,"detail":0},"content":"OK id=1",)"
             R"("command":"."},"peer_address":{"name":"mx.example.org.","addr":"198.51.100.25"},)"
             R"("timestamp":1741083072,"created":1741083070,"num_attempts":0,"egress_pool":"pool0",)"
             R"("egress_source":"ip20","source_address":{"address":"192.0.2.20:53210"},"meta":{},"headers":{}})",
             0, {"192.0.2.20", VolumeOutcome::kDelivered, 1, "example.org", kUtc20250304T101112, ""});
  // The example of domain-facts §6, with a JSON escape in the content.
  CheckEvent(*parser,
             R"({"type":"TransientFailure","id":"9c0e","sender":"b@d.example","recipient":"u@gmail.com",)"
             R"("queue":"gmail.com","site":"gmail-smtp-in.l.google.com","size":2100,"response":{"code":421,)"
             R"("enhanced_code":{"class":4,"subject":7,"detail":28},"content":"Gmail has detected an unusual )"
             R"(rate of \"unsolicited\" mail \u2013 gsmtp","command":"."},"peer_address":)"
             R"({"name":"gmail-smtp-in.l.google.com.","addr":"142.250.27.26"},"timestamp":1741083072,)"
             R"("egress_pool":"pool0","egress_source":"ip20","source_address":{"address":"192.0.2.20:53210",)"
             R"("protocol":null,"server":null}})",
             0,
             {"192.0.2.20", VolumeOutcome::kDeferred, 1, "gmail.com", kUtc20250304T101112,
              "421 4.7.28 Gmail has detected an unusual rate of \"unsolicited\" mail \xE2\x80\x93 gsmtp"});
  // Bounce from IPv6 ("[v6]:port"); a missing enhanced code; a proxy's port 0; a float timestamp.
  CheckEvent(*parser,
             R"({"type":"Bounce","id":"9c0f","sender":"b@d.example","recipient":"nobody@outlook.com",)"
             R"("response":{"code":550,"enhanced_code":null,"content":"Service unavailable, Client host )"
             R"([2001:db8::20] blocked using Spamhaus","command":"RCPT TO"},)"
             R"("timestamp":1741083072.75,"source_address":{"address":"[2001:db8::20]:0"}})",
             0,
             {"2001:db8::20", VolumeOutcome::kBounced, 1, "outlook.com", kUtc20250304T101112,
              "550 Service unavailable, Client host [2001:db8::20] blocked using Spamhaus"});
  // No domain in the recipient: the MX name (peer_address.name) is the receiver; RFC 3339 timestamp.
  CheckEvent(*parser,
             R"({"type":"TransientFailure","recipient":"postmaster","response":{"code":451,)"
             R"("enhanced_code":{"class":4,"subject":3,"detail":0},"content":"Temporary local problem"},)"
             R"("peer_address":{"name":"MX.example.org.","addr":"198.51.100.25"},)"
             R"("timestamp":"2025-03-04T10:11:12Z","source_address":{"address":"192.0.2.21:40000"}})",
             0,
             {"192.0.2.21", VolumeOutcome::kDeferred, 1, "mx.example.org", kUtc20250304T101112,
              "451 4.3.0 Temporary local problem"});
}

TEST_CASE("kumomta: other record types and records without a source are ignored", "[log_formats]") {
  auto parser = MakeLineParser(LogFormat::kKumoMta);
  const char* const ignored[] = {
      R"({"type":"Reception","id":"d7ef","sender":"test@example.com","recipient":"test@example.com",)"
      R"("queue":"example.com","site":"","size":320,"response":{"code":250,"enhanced_code":null,"content":"",)"
      R"("command":null},"peer_address":{"name":"moto","addr":"127.0.0.1"},"timestamp":1695847980,)"
      R"("source_address":{"address":"127.0.0.1:25"}})",
      R"({"type":"Expiration","recipient":"u@example.org","timestamp":1741083072,"source_address":null})",
      R"({"type":"AdminBounce","recipient":"u@example.org","timestamp":1741083072})",
      R"({"type":"Feedback","recipient":"u@example.org","timestamp":1741083072})",
      R"({"type":"Delay","recipient":"u@example.org","timestamp":1741083072})",
      // a connection that never happened: no source address
      R"({"type":"TransientFailure","recipient":"u@example.org","response":{"code":451,"enhanced_code":null,)"
      R"("content":"KumoMTA internal: failed to connect to any candidate hosts"},"timestamp":1741083072,)"
      R"("source_address":null})",
      R"({"type":"TransientFailure","recipient":"u@example.org","timestamp":1741083072})",
      "",
  };
  for (const char* line : ignored) {
    INFO(line);
    CHECK(Kind(*parser, line) == LineKind::kIgnored);
  }
}

TEST_CASE("kumomta: garbage, truncated JSON, bad addresses and missing fields are malformed", "[log_formats]") {
  auto parser = MakeLineParser(LogFormat::kKumoMta);
  const std::string good =
      R"({"type":"Delivery","recipient":"u@example.org","timestamp":1741083072,)"
      R"("source_address":{"address":"192.0.2.20:53210"}})";
  REQUIRE(Kind(*parser, good) == LineKind::kEvent);
  const std::vector<std::string> malformed = {
      "garbage",
      "[1,2,3]",
      "{}",
      R"({"type":42})",
      good.substr(0, good.size() - 20),
      good.substr(0, good.size() - 1),
      R"({"type":"Delivery","recipient":"u@example.org","timestamp":1741083072,)"
      R"("source_address":{"address":"192.0.2.300:53210"}})",
      R"({"type":"Delivery","recipient":"u@example.org","timestamp":1741083072,)"
      R"("source_address":{"address":"2001:db8::20]:53210"}})",
      R"({"type":"Delivery","recipient":"u@example.org","timestamp":1741083072,)"
      R"("source_address":{"address":"192.0.2.20:port"}})",
      R"({"type":"Delivery","recipient":"u@example.org","timestamp":1741083072,"source_address":{}})",
      R"({"type":"Delivery","recipient":"u@example.org","source_address":{"address":"192.0.2.20:1"}})",
      R"({"type":"Delivery","recipient":"u@example.org","timestamp":"yesterday",)"
      R"("source_address":{"address":"192.0.2.20:1"}})",
      R"({"type":"Delivery","timestamp":1741083072,"source_address":{"address":"192.0.2.20:1"}})",
      kMegabyteLine,
      "{\"type\":\"Delivery\",\"x\":\"" + std::string(1 << 20, 'z') + "\"}",
  };
  for (const std::string& line : malformed) {
    INFO(line.substr(0, 200));
    CHECK(Kind(*parser, line) == LineKind::kMalformed);
  }
}

// The KumoMTA parser reads JSON by hand. Checked against nlohmann::json on mutants of
// real-shaped records (characters deleted, inserted, replaced; truncations; repeated
// slices): whatever nlohmann rejects must be malformed, and whatever it accepts must give
// the same kind and the same event as a reading of nlohmann's DOM.
struct Reference {
  LineKind kind = LineKind::kMalformed;
  VolumeEvent event;
  bool skip = false;  // a string timestamp: not modelled here
};

std::optional<IpAddress> ReferenceSocketAddress(const std::string& text) {
  std::string host = text, port;
  if (!text.empty() && text[0] == '[') {
    const size_t close = text.find(']');
    if (close == std::string::npos) return std::nullopt;
    host = text.substr(1, close - 1);
    const std::string rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest[0] != ':') return std::nullopt;
      port = rest.substr(1);
      if (port.empty()) return std::nullopt;
    }
  } else if (std::count(text.begin(), text.end(), ':') == 1) {
    host = text.substr(0, text.find(':'));
    port = text.substr(text.find(':') + 1);
    if (port.empty()) return std::nullopt;
  }
  if (!port.empty() && (port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
                        std::stol(port) > 65535))
    return std::nullopt;
  auto ip = IpAddress::Parse(host);
  if (!ip.ok()) return std::nullopt;
  return ip.value();
}

std::string ReferenceLower(std::string s) {
  if (!s.empty() && s.back() == '.') s.pop_back();
  for (char& c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return s;
}

Reference ReferenceKumo(const std::string& line) {
  using nlohmann::json;
  Reference r;
  const json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return r;
  auto member = [](const json& o, const char* key) -> const json* {
    if (!o.is_object()) return nullptr;
    const auto it = o.find(key);
    return it == o.end() ? nullptr : &*it;
  };
  const json* type = member(j, "type");
  if (type == nullptr || !type->is_string()) return r;
  const std::string t = type->get<std::string>();
  if (t == "Delivery") {
    r.event.outcome = VolumeOutcome::kDelivered;
  } else if (t == "TransientFailure") {
    r.event.outcome = VolumeOutcome::kDeferred;
  } else if (t == "Bounce") {
    r.event.outcome = VolumeOutcome::kBounced;
  } else {
    r.kind = LineKind::kIgnored;
    return r;
  }
  const json* source = member(j, "source_address");
  if (source == nullptr || source->is_null()) {
    r.kind = LineKind::kIgnored;
    return r;
  }
  const json* address = source->is_object() ? member(*source, "address") : source;
  if (address == nullptr || !address->is_string()) return r;
  const std::optional<IpAddress> ip = ReferenceSocketAddress(address->get<std::string>());
  if (!ip) return r;
  r.event.ip = *ip;
  const json* ts = member(j, "timestamp");
  if (ts == nullptr) return r;
  constexpr double kMax = 253402300800.0;
  if (ts->is_string()) {
    r.skip = true;
    return r;
  }
  if (ts->is_number_unsigned()) {
    if (ts->get<unsigned long long>() >= static_cast<unsigned long long>(kMax)) return r;
    r.event.at = static_cast<long long>(ts->get<unsigned long long>());
  } else if (ts->is_number_integer()) {
    r.event.at = ts->get<long long>();
  } else if (ts->is_number_float()) {
    const double d = ts->get<double>();
    if (!std::isfinite(d) || d <= 0 || d >= kMax) return r;
    r.event.at = static_cast<long long>(d);
  } else {
    return r;
  }
  if (r.event.at <= 0 || r.event.at >= static_cast<long long>(kMax)) return r;
  const json* recipient = member(j, "recipient");
  std::string rcpt;
  if (recipient != nullptr && recipient->is_string()) {
    rcpt = recipient->get<std::string>();
  } else if (recipient != nullptr && recipient->is_array() && !recipient->empty()) {
    for (const json& e : *recipient)
      if (!e.is_string()) return r;
    rcpt = (*recipient)[0].get<std::string>();
    r.event.count = static_cast<uint32_t>(recipient->size());
  } else {
    return r;
  }
  std::string mx;
  if (const json* peer = member(j, "peer_address"))
    if (const json* name = member(*peer, "name"); name != nullptr && name->is_string()) mx = name->get<std::string>();
  const size_t at = rcpt.rfind('@');
  r.event.receiver = ReferenceLower(at != std::string::npos ? rcpt.substr(at + 1) : mx);
  if (at != std::string::npos && r.event.receiver.empty()) r.event.receiver = ReferenceLower(mx);
  if (r.event.outcome != VolumeOutcome::kDelivered) {
    if (const json* response = member(j, "response")) {
      std::vector<std::string> parts;
      auto integer = [](const json* v) { return v != nullptr && v->is_number_integer() && !v->is_number_unsigned(); };
      auto small_unsigned = [](const json* v) {
        return v != nullptr && v->is_number_unsigned() && v->get<unsigned long long>() <= LLONG_MAX;
      };
      auto as_text = [](const json* v) { return std::to_string(v->get<long long>()); };
      const json* code = member(*response, "code");
      if (integer(code) || small_unsigned(code)) parts.push_back(as_text(code));
      if (const json* e = member(*response, "enhanced_code"); e != nullptr && e->is_object()) {
        const json* c = member(*e, "class");
        const json* s = member(*e, "subject");
        const json* d = member(*e, "detail");
        auto ok = [&](const json* v) { return integer(v) || small_unsigned(v); };
        if (ok(c) && ok(s) && ok(d)) parts.push_back(as_text(c) + "." + as_text(s) + "." + as_text(d));
      }
      if (const json* content = member(*response, "content"); content != nullptr && content->is_string())
        if (!content->get<std::string>().empty()) parts.push_back(content->get<std::string>());
      for (const std::string& part : parts) r.event.reply += (r.event.reply.empty() ? "" : " ") + part;
    }
  }
  r.kind = LineKind::kEvent;
  return r;
}

TEST_CASE("kumomta: the hand JSON reader agrees with nlohmann::json on mutated records", "[log_formats]") {
  const std::vector<std::string> bases = {
      R"({"type":"TransientFailure","id":"9c0e","sender":"b@d.example","recipient":"u@Gmail.com",)"
      R"("queue":"gmail.com","site":"gmail-smtp-in.l.google.com","size":2100,"response":{"code":421,)"
      R"("enhanced_code":{"class":4,"subject":7,"detail":28},"content":"Gmail has detected an unusual )"
      R"(rate of \"unsolicited\" mail \u2013 \ud83d\ude00 gsmtp\n","command":"."},"peer_address":)"
      R"({"name":"gmail-smtp-in.l.google.com.","addr":"142.250.27.26"},"timestamp":1741083072,)"
      R"("created":1.741083070e9,"num_attempts":0,"bounce_classification":null,"meta":{"a":[1,-2.5e-3,true,)"
      R"(false,null,{"b":[]}]},"headers":{},"egress_pool":"pool0","egress_source":"ip20",)"
      R"("source_address":{"address":"192.0.2.20:53210","protocol":null,"server":null}})",
      R"({"type":"Bounce","recipient":["a@example.org","b@example.org"],"response":{"code":550,)"
      R"("enhanced_code":null,"content":"no"},"timestamp":1741083072.5,)"
      R"("source_address":{"address":"[2001:db8::20]:0"}} )",
      R"( {"type":"Delivery","recipient":"postmaster","peer_address":{"name":"MX.Example.org."},)"
      R"("timestamp":1741083072,"source_address":{"address":"192.0.2.21"}})",
      R"({"type":"Reception","recipient":"u@example.org","timestamp":1741083072,"source_address":null})",
  };
  auto parser = MakeLineParser(LogFormat::kKumoMta);
  std::mt19937 rng(20250304);
  const std::string alphabet = "{}[]\":,\\ 0123456789.eE-+tfnulrsaxu/@";
  auto pick = [&rng](size_t n) { return n == 0 ? size_t{0} : static_cast<size_t>(rng() % n); };
  size_t compared = 0, rejected = 0, events = 0;
  for (const std::string& base : bases) {
    for (int i = 0; i < 6000; ++i) {
      std::string m = base;
      const int edits = 1 + static_cast<int>(rng() % 3);
      for (int e = 0; e < edits; ++e) {
        const size_t at = pick(m.size() + 1);
        switch (rng() % 5) {
          case 0: if (at < m.size()) m.erase(at, 1); break;
          case 1: m.insert(at, 1, alphabet[pick(alphabet.size())]); break;
          case 2: if (at < m.size()) m[at] = alphabet[pick(alphabet.size())]; break;
          case 3: if (rng() % 4 == 0) m.resize(at); break;
          case 4: {
            const size_t len = pick(12);
            m.insert(at, m.substr(pick(m.size()), len));
            break;
          }
        }
      }
      if (m.find_first_not_of(" \t") == std::string::npos) continue;
      const Reference want = ReferenceKumo(m);
      if (want.skip) continue;
      VolumeEvent got;
      const LineKind kind = parser->Parse(m, 0, &got);
      INFO(m);
      if (!nlohmann::json::accept(m)) {
        REQUIRE(kind == LineKind::kMalformed);
        ++rejected;
        continue;
      }
      REQUIRE(kind == want.kind);
      ++compared;
      if (kind != LineKind::kEvent) continue;
      ++events;
      CHECK(got.ip == want.event.ip);
      CHECK(got.outcome == want.event.outcome);
      CHECK(got.count == want.event.count);
      CHECK(got.receiver == want.event.receiver);
      CHECK(got.at == want.event.at);
      CHECK(got.reply == want.event.reply);
    }
  }
  // The mutants cover both sides.
  CHECK(rejected > 5000);
  CHECK(compared > 3000);
  CHECK(events > 1000);
}

// --- powermta -------------------------------------------------------------------------------------------

const std::string kPmtaHeader =
    "type,timeLogged,timeQueued,orig,rcpt,orcpt,dsnAction,dsnStatus,dsnDiag,dsnMta,bounceCat,srcType,srcMta,dlvType,"
    "dlvSourceIp,dlvDestinationIp,dlvEsmtpAvailable,dlvSize,vmta,jobId,envId,queue,vmtaPool";

TEST_CASE("powermta: d, t, tq and b records by column name", "[log_formats]") {
  auto parser = MakeLineParser(LogFormat::kPowerMta);
  CHECK(Kind(*parser, kPmtaHeader) == LineKind::kIgnored);
  // The example of domain-facts §6: a quoted, comma-containing dlvEsmtpAvailable.
  CheckEvent(*parser,
             "d,2025-03-04 10:11:12+0000,2025-03-04 10:11:10+0000,b@d.example,u@Example.org,,relayed,2.0.0 (success),"
             "smtp;250 2.0.0 OK,mx.example.org (198.51.100.25),,smtp,mta1.d.example (192.0.2.1),smtp,192.0.2.30,"
             "198.51.100.25,\"PIPELINING,8BITMIME,SIZE,STARTTLS\",2345,vmta-ip30,job42,,example.org/vmta-ip30,pool-a",
             0, {"192.0.2.30", VolumeOutcome::kDelivered, 1, "example.org", kUtc20250304T101112, ""});
  // A deferral whose diagnostic is quoted, holds commas and doubled quotes; another offset.
  CheckEvent(*parser,
             "t,2025-03-04 10:11:12+0100,2025-03-04 10:11:10+0100,b@d.example,u@gmail.com,,delayed,"
             "4.7.28 (undefined status),\"smtp;421-4.7.28 Our system has detected an unusual rate of, "
             "421-4.7.28 \"\"unsolicited\"\" mail originating from your IP address. 421 4.7.28 - gsmtp\","
             "gmail-smtp-in.l.google.com (142.250.27.26),,smtp,mta1.d.example (192.0.2.1),smtp,192.0.2.30,"
             "142.250.27.26,\"PIPELINING,8BITMIME,SIZE,STARTTLS\",2345,vmta-ip30,job42,,gmail.com/vmta-ip30,pool-a",
             0,
             {"192.0.2.30", VolumeOutcome::kDeferred, 1, "gmail.com", kUtc20250304T091112,
              "421-4.7.28 Our system has detected an unusual rate of, 421-4.7.28 \"unsolicited\" mail originating "
              "from your IP address. 421 4.7.28 - gsmtp"});
  // A bounce from an IPv6 source.
  CheckEvent(*parser,
             "b,2025-03-04 10:11:12+0000,2025-03-04 10:11:10+0000,b@d.example,nobody@yahoo.com,,failed,"
             "5.7.9 (delivery not authorized),smtp;554 5.7.9 Message not accepted for policy reasons,"
             "mta7.am0.yahoodns.net (67.195.204.72),policy-related,smtp,mta1.d.example (192.0.2.1),smtp,2001:db8::30,"
             "67.195.204.72,\"PIPELINING,8BITMIME\",2345,vmta-v6,job42,,yahoo.com/vmta-v6,pool-a",
             0,
             {"2001:db8::30", VolumeOutcome::kBounced, 1, "yahoo.com", kUtc20250304T101112,
              "554 5.7.9 Message not accepted for policy reasons"});
  // tq: no reply code in the diagnostic -> the status's enhanced code leads; no recipient -> dsnMta's name.
  CheckEvent(*parser,
             "tq,2025-03-04 10:11:12+0000,,,,,delayed,4.4.1 (no answer from host),smtp;Connection timed out,"
             "MX.example.org (198.51.100.25),,,,smtp,192.0.2.31,198.51.100.25,,,vmta-ip31,,,example.org/vmta-ip31,",
             0,
             {"192.0.2.31", VolumeOutcome::kDeferred, 1, "mx.example.org", kUtc20250304T101112,
              "4.4.1 Connection timed out"});
  // No diagnostic at all: the status as logged.
  CheckEvent(*parser,
             "t,2025-03-04 10:11:12+0000,,b@d.example,u@example.org,,delayed,4.4.1 (no answer from host),,,,,,"
             "smtp,192.0.2.31,,,,vmta-ip31,,,example.org/vmta-ip31,",
             0,
             {"192.0.2.31", VolumeOutcome::kDeferred, 1, "example.org", kUtc20250304T101112,
              "4.4.1 (no answer from host)"});
}

TEST_CASE("powermta: repeated headers and one header per record type", "[log_formats]") {
  auto parser = MakeLineParser(LogFormat::kPowerMta);
  const std::string d_row =
      "d,2025-03-04 10:11:12+0000,2025-03-04 10:11:10+0000,b@d.example,u@example.org,,relayed,2.0.0 (success),"
      "smtp;250 2.0.0 OK,mx.example.org (198.51.100.25),,smtp,mta1.d.example (192.0.2.1),smtp,192.0.2.30,"
      "198.51.100.25,\"PIPELINING,8BITMIME,SIZE,STARTTLS\",2345,vmta-ip30,job42,,example.org/vmta-ip30,pool-a";
  const Want d_want{"192.0.2.30", VolumeOutcome::kDelivered, 1, "example.org", kUtc20250304T101112, ""};
  CHECK(Kind(*parser, kPmtaHeader) == LineKind::kIgnored);
  CheckEvent(*parser, d_row, 0, d_want);
  // The same header again (a restart, a rotation): nothing changes.
  CHECK(Kind(*parser, kPmtaHeader + "\r") == LineKind::kIgnored);
  CheckEvent(*parser, d_row, 0, d_want);
  // A header with other columns for the bounce records that follow it.
  CHECK(Kind(*parser, "type,timeLogged,rcpt,dlvSourceIp,dsnStatus,dsnDiag,bounceCat") == LineKind::kIgnored);
  CheckEvent(*parser,
             "b,2025-03-04 09:11:12+0000,nobody@Example.net,192.0.2.32,5.1.1 (bad destination mailbox address),"
             "\"smtp;550 5.1.1 <nobody@example.net>: Recipient address rejected: User unknown, sorry\",bad-mailbox",
             0,
             {"192.0.2.32", VolumeOutcome::kBounced, 1, "example.net", kUtc20250304T091112,
              "550 5.1.1 <nobody@example.net>: Recipient address rejected: User unknown, sorry"});
  // Delivery records after it still read with the header that came before them.
  CheckEvent(*parser, d_row, 0, d_want);
}

TEST_CASE("powermta: other record types and records without a source are ignored", "[log_formats]") {
  auto parser = MakeLineParser(LogFormat::kPowerMta);
  const char* const ignored[] = {
      kPmtaHeader.c_str(),
      "\xEF\xBB\xBF" "type,timeLogged,rcpt,dlvSourceIp,dsnStatus,dsnDiag",
      // receipt, remote bounce, feedback
      "r,2025-03-04 10:11:12+0000,u@example.org,192.0.2.30,,",
      "rb,2025-03-04 10:11:12+0000,u@example.org,192.0.2.30,5.1.1 (bad destination mailbox address),smtp;550 5.1.1",
      "f,2025-03-04 10:11:12+0000,u@example.org,192.0.2.30,,",
      // a bounce without a connection (the message expired in the queue)
      "b,2025-03-04 10:11:12+0000,u@example.org,,4.4.7 (delivery time expired),",
      "",
  };
  for (const char* line : ignored) {
    INFO(line);
    CHECK(Kind(*parser, line) == LineKind::kIgnored);
  }
}

TEST_CASE("powermta: records before a header, garbage, bad quotes and bad fields are malformed", "[log_formats]") {
  auto fresh = MakeLineParser(LogFormat::kPowerMta);
  CHECK(Kind(*fresh, "d,2025-03-04 10:11:12+0000,u@example.org,192.0.2.30,2.0.0 (success),smtp;250 OK") ==
        LineKind::kMalformed);

  auto parser = MakeLineParser(LogFormat::kPowerMta);
  REQUIRE(Kind(*parser, "type,timeLogged,rcpt,dlvSourceIp,dsnStatus,dsnDiag") == LineKind::kIgnored);
  REQUIRE(Kind(*parser, "d,2025-03-04 10:11:12+0000,u@example.org,192.0.2.30,2.0.0 (success),smtp;250 OK") ==
          LineKind::kEvent);
  const std::vector<std::string> malformed = {
      "garbage",
      "this is not a record at all, though it has a comma",
      "<html>,<body>",
      "d,2025-03-04 10:11:12+0000,u@example.org,192.0.2.30,2.0.0 (success)",  // a column short (truncated)
      "d,2025-03-04 10:11:12+0000,u@exa",
      "d,2025-03-04 10:11:12+0000,u@example.org,192.0.2.30,2.0.0 (success),\"smtp;250 OK",
      "d,2025-03-04 10:11:12+0000,\"u@example.org\"x,192.0.2.30,2.0.0 (success),smtp;250 OK",
      "d,2025-03-04 10:11:12+0000,u@example.org,192.0.2.300,2.0.0 (success),smtp;250 OK",
      "d,2025-03-04 10:11:12+0000,u@example.org,mta1.d.example,2.0.0 (success),smtp;250 OK",
      "d,2025-03-04,u@example.org,192.0.2.30,2.0.0 (success),smtp;250 OK",
      "d,,u@example.org,192.0.2.30,2.0.0 (success),smtp;250 OK",
      "d,2025-03-04 10:11:12+0000 trailing,u@example.org,192.0.2.30,2.0.0 (success),smtp;250 OK",
      kMegabyteLine,
      "d,2025-03-04 10:11:12+0000,u@example.org,192.0.2.30,2.0.0 (success),\"" + std::string(1 << 20, 'q') + "\"",
  };
  for (const std::string& line : malformed) {
    INFO(line.substr(0, 200));
    CHECK(Kind(*parser, line) == LineKind::kMalformed);
  }
  // A header without dlvSourceIp cannot place any record.
  auto no_source = MakeLineParser(LogFormat::kPowerMta);
  REQUIRE(Kind(*no_source, "type,timeLogged,rcpt") == LineKind::kIgnored);
  CHECK(Kind(*no_source, "d,2025-03-04 10:11:12+0000,u@example.org") == LineKind::kMalformed);
}

// --- all formats ----------------------------------------------------------------------------------------

TEST_CASE("every parser survives mutated lines (run under ASan/UBSan)", "[log_formats]") {
  struct Case {
    LogFormat format;
    std::vector<std::string> lines;  // fed in order before each mutant (PowerMTA's header)
    std::string base;
  };
  const std::vector<Case> cases = {
      {LogFormat::kPostfix, {},
       "Mar  4 10:11:12 mx1 postfix-ip2/smtp[2345]: 4F1A2B3C4D: to=<bob@Example.ORG>, "
       "relay=mx.example.org[198.51.100.25]:25, delay=1.2, delays=0.1/0/0.5/0.6, dsn=4.7.28, "
       "status=deferred (host mx.example.org[198.51.100.25] said: 421-4.7.28 a 421 4.7.28 b (in reply to RCPT TO "
       "command))"},
      {LogFormat::kPostfix, {},
       "2025-03-04T10:11:12.5+01:00 mx1 postfix/ip3out/smtp[1]: 1A: to=<a@b.example>, relay=none, delay=1, "
       "delays=0/0/0/1, dsn=5.0.0, status=bounced (x)"},
      {LogFormat::kExim, {},
       "2025-03-04 10:11:12.345 +0100 [4242] 1tpAbD-00000000124-XyZA ** dave@Gmail.com R=dnslookup T=remote_smtp "
       "H=gmail-smtp-in.l.google.com [142.250.27.26]:25 I=[2001:db8::10]:48373 X=TLS1.3:A:256 CV=yes: SMTP error "
       "from remote mail server after RCPT TO:<dave@gmail.com>: host h [1.2.3.4]: 550 5.1.1 no"},
      {LogFormat::kPowerMta, {kPmtaHeader},
       "t,2025-03-04 10:11:12+0100,2025-03-04 10:11:10+0100,b@d.example,u@Gmail.com,,delayed,"
       "4.7.28 (undefined status),\"smtp;421-4.7.28 a, \"\"b\"\" c\",gmail-smtp-in.l.google.com (142.250.27.26),,"
       "smtp,mta1.d.example (192.0.2.1),smtp,192.0.2.30,142.250.27.26,\"PIPELINING,8BITMIME\",2345,vmta-ip30,job42,,"
       "gmail.com/vmta-ip30,pool-a"},
  };
  std::mt19937 rng(42);
  const std::string alphabet = "<>[]()\":,;.-+ @=*/0123456789aZ\\\r\t\x01\xff";
  for (const Case& c : cases) {
    auto parser = MakeLineParser(c.format, PostfixTags());
    size_t events = 0;
    for (int i = 0; i < 3000; ++i) {
      std::string m = c.base;
      for (int e = 0, edits = 1 + static_cast<int>(rng() % 3); e < edits; ++e) {
        const size_t at = static_cast<size_t>(rng() % (m.size() + 1));
        switch (rng() % 4) {
          case 0: if (at < m.size()) m.erase(at, 1 + rng() % 8); break;
          case 1: m.insert(at, 1, alphabet[rng() % alphabet.size()]); break;
          case 2: if (at < m.size()) m[at] = alphabet[rng() % alphabet.size()]; break;
          case 3: m.resize(at); break;
        }
      }
      VolumeEvent e;
      for (const std::string& line : c.lines) parser->Parse(line, Local(2025, 3, 5, 0, 0, 0), &e);
      if (parser->Parse(m, Local(2025, 3, 5, 0, 0, 0), &e) != LineKind::kEvent) continue;
      ++events;
      INFO(m);
      CHECK(e.count == 1);
      CHECK(e.at > 1700000000);
      CHECK(e.receiver.find_first_of("ABCDEFGHIJKLMNOPQRSTUVWXYZ") == std::string::npos);
    }
    CHECK(events > 100);
  }
}

}  // namespace
}  // namespace repwatch
