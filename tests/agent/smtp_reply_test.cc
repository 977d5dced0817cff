#include "agent/smtp_reply.h"

#include <catch2/catch.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace repwatch {
namespace {

using C = SmtpClass;

std::string Name(SmtpClass c) { return std::string(SmtpClassName(c)); }

std::vector<std::string_view> Lines(std::string_view raw) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (start <= raw.size()) {
    const size_t eol = std::min(raw.find('\n', start), raw.size());
    out.push_back(raw.substr(start, eol - start));
    start = eol + 1;
  }
  return out;
}

// A reply as read off the wire, one AppendReplyLine per line; only the last line is "last".
SmtpReply Wire(std::string_view raw) {
  SmtpReply reply;
  const std::vector<std::string_view> lines = Lines(raw);
  for (size_t i = 0; i < lines.size(); ++i) {
    INFO("line " << i << ": " << lines[i]);
    bool last = false;
    REQUIRE(AppendReplyLine(reply, lines[i], &last));
    CHECK(last == (i + 1 == lines.size()));
  }
  return reply;
}

// What Postfix logs for a deferral: every line of the reply, prefixes kept, on one line.
std::string PostfixLogLine(std::string_view raw) {
  std::string flat;
  for (std::string_view line : Lines(raw)) {
    if (!flat.empty()) flat += ' ';
    flat += line;
  }
  return "Feb 15 10:22:33 mta1 postfix/smtp[4242]: 3F2A1C0D: to=<user@example.com>, "
         "relay=mx.example[203.0.113.25]:25, delay=1.2, delays=0.1/0/0.5/0.6, dsn=4.0.0, "
         "status=deferred (host mx.example[203.0.113.25] said: " +
         flat + " (in reply to RCPT TO command))";
}

struct Case {
  const char* source;    // where the text comes from (domain-facts §4.2 unless said otherwise)
  const char* reply;     // as on the wire: lines joined by '\n', each with its "NNN-" / "NNN " prefix
  SmtpClass cls;
  int code;
  const char* enhanced;
  const char* zone;
  const char* reason;
};

// Real receiver texts (domain-facts §4.2, §1.3, and the Gmail / Outlook.com tables it cites).
// The varying [ip] parts are documentation addresses.
const Case kCases[] = {
    // ---- Gmail
    {"Gmail 4.7.28, older wording",
     "421-4.7.28 [192.0.2.1      15] Our system has detected an unusual rate of\n"
     "421-4.7.28 unsolicited mail originating from your IP address. To protect our\n"
     "421-4.7.28 users from spam, mail sent from your IP address has been temporarily\n"
     "421-4.7.28 rate limited. Please visit\n"
     "421-4.7.28  https://support.google.com/mail/?p=UnsolicitedRateLimitError to\n"
     "421 4.7.28 review our Bulk Email Senders Guidelines. d2e1a72fcca58-7a9c1b2e3f4si123456b3a.123 - gsmtp",
     C::kRateLimit, 421, "4.7.28", "", ""},
    {"Gmail 4.7.28, IP address",
     "421-4.7.28 Gmail has detected an unusual rate of email originating from your IP\n"
     "421-4.7.28 address 192.0.2.1. To protect our users from spam, email sent from your IP\n"
     "421 4.7.28 address has been temporarily rate limited. - gsmtp",
     C::kRateLimit, 421, "4.7.28", "", ""},
    {"Gmail 4.7.28, IP Netblock",
     "421-4.7.28 Gmail has detected an unusual rate of unsolicited email originating from\n"
     "421-4.7.28 your IP Netblock 192.0.2.0/24. To protect our users from spam, email sent\n"
     "421 4.7.28 from your IP Netblock has been temporarily rate limited. - gsmtp",
     C::kRateLimit, 421, "4.7.28", "", ""},
    {"Gmail 4.7.28, DKIM domain (names DKIM, still a rate limit)",
     "421-4.7.28 Gmail has detected an unusual rate of unsolicited email originating from\n"
     "421-4.7.28 your DKIM domain example.com. To protect our users from spam, email sent\n"
     "421 4.7.28 from your domain has been temporarily rate limited. - gsmtp",
     C::kRateLimit, 421, "4.7.28", "", ""},
    {"Gmail 4.7.28, SPF domain (names SPF, still a rate limit)",
     "421-4.7.28 Gmail has detected an unusual rate of unsolicited email originating from\n"
     "421-4.7.28 your SPF domain example.com. To protect our users from spam, email sent\n"
     "421 4.7.28 from your domain has been temporarily rate limited. - gsmtp",
     C::kRateLimit, 421, "4.7.28", "", ""},
    {"Gmail 4.7.28, URL domain",
     "421-4.7.28 Gmail has detected an unusual rate of unsolicited email containing one of\n"
     "421 4.7.28 your URL domains. To protect our users from spam, email with the URL has been temporarily rate "
     "limited.",
     C::kRateLimit, 421, "4.7.28", "", ""},
    {"Gmail 4.7.28, duplicate Message-ID quota (only the code says rate)",
     "421-4.7.28 Gmail has detected this sender exceeded the quota for sending messages that\n"
     "421 4.7.28 have the same Message-ID:. To best protect our users, the message has been temporarily rejected.",
     C::kRateLimit, 421, "4.7.28", "", ""},
    {"Gmail 4.7.28, temporarily blocked",
     "421-4.7.28 Gmail has detected an unusual amount of unsolicited email originating from\n"
     "421 4.7.28 your IP address. To protect our users from spam, email sent from your IP address has been "
     "temporarily blocked.",
     C::kRateLimit, 421, "4.7.28", "", ""},
    {"Gmail 4.7.0, older wording",
     "421-4.7.0 [192.0.2.1      15] Our system has detected an unusual rate of\n"
     "421-4.7.0 unsolicited mail originating from your IP address. To protect our\n"
     "421 4.7.0 users from spam, mail sent from your IP address has been temporarily rate limited. - gsmtp",
     C::kRateLimit, 421, "4.7.0", "", ""},
    {"Gmail 4.7.0, very low reputation",
     "421-4.7.0 This message is suspicious due to the very low reputation of the sending IP\n"
     "421 4.7.0 address. To protect our users from spam, email sent from your IP address has been temporarily "
     "rate limited.",
     C::kRateLimit, 421, "4.7.0", "", ""},
    {"Gmail 5.7.1, very low reputation",
     "550-5.7.1 [192.0.2.1] This message is likely suspicious due to the very low reputation\n"
     "550-5.7.1 of the sending IP address. To best protect our users from spam, the message\n"
     "550 5.7.1 has been blocked. Please visit https://support.google.com/mail/answer/188131 - gsmtp",
     C::kReputationBlock, 550, "5.7.1", "", ""},
    {"Gmail 5.7.1, likely unsolicited",
     "550-5.7.1 [192.0.2.1] Our system has detected that this message is likely unsolicited\n"
     "550-5.7.1 mail. To reduce the amount of spam sent to Gmail, this message has been\n"
     "550-5.7.1 blocked. Please visit\n"
     "550 5.7.1  https://support.google.com/mail/?p=UnsolicitedMessageError for more information. - gsmtp",
     C::kReputationBlock, 550, "5.7.1", "", ""},
    {"Gmail 5.7.28",
     "550-5.7.28 There is an unusual rate of unsolicited email originating from your IP\n"
     "550 5.7.28 address [192.0.2.1]. To protect our users from spam, email sent from your IP address has been "
     "blocked.",
     C::kReputationBlock, 550, "5.7.28", "", ""},
    {"Gmail 5.7.1, not authorized to send directly",
     "550-5.7.1 The IP you're using to send email is not authorized to send email directly to\n"
     "550 5.7.1 our servers. Use the SMTP relay at your service provider instead. - gsmtp",
     C::kPolicyFailure, 550, "5.7.1", "", "recipient_policy"},
    {"Gmail 4.7.0, Workspace allow-list", "421 4.7.0 IP not in whitelist for RCPT domain, closing connection. - gsmtp",
     C::kPolicyFailure, 421, "4.7.0", "", "recipient_policy"},
    {"Gmail 5.7.1, recipient policy",
     "550-5.7.1 The user or domain that you are sending to (or from) has a policy that\n"
     "550 5.7.1 prohibits the email that you sent. Contact your domain administrator for assistance. - gcdp",
     C::kPolicyFailure, 550, "5.7.1", "", "recipient_policy"},
    {"Gmail 5.7.25, PTR",
     "550-5.7.25 [192.0.2.1] The IP address sending this message does not have a\n"
     "550-5.7.25 PTR record setup, or the corresponding forward DNS entry does not\n"
     "550-5.7.25 point to the sending IP. As a policy, Gmail does not accept messages\n"
     "550 5.7.25 from IPs with missing PTR records. - gsmtp",
     C::kPolicyFailure, 550, "5.7.25", "", "rdns"},
    {"Gmail 4.7.23, PTR",
     "451-4.7.23 192.0.2.1 The sending IP address for this message doesn't have a PTR record,\n"
     "451-4.7.23 or the PTR record's forward DNS entry doesn't match the sending IP address.\n"
     "451 4.7.23 To protect users from spam, your email has been temporarily rate limited.",
     C::kPolicyFailure, 451, "4.7.23", "", "rdns"},
    {"Gmail 4.7.0, PTR while rate limited (rule 5 comes before rule 6)",
     "421-4.7.0 The IP address sending this message does not have a PTR record, or the\n"
     "421-4.7.0 corresponding forward DNS entry does not point to the sending IP. To protect\n"
     "421 4.7.0 our users from spam, email sent from your IP address has been temporarily rate limited.",
     C::kPolicyFailure, 421, "4.7.0", "", "rdns"},
    {"Gmail 5.7.26, unauthenticated",
     "550-5.7.26 This mail has been blocked because the sender is unauthenticated.\n"
     "550-5.7.26 Gmail requires all senders to authenticate with either SPF or DKIM.\n"
     "550 5.7.26 Authentication results: DKIM = did not pass SPF [example.com] with ip: [192.0.2.1] = did not pass",
     C::kPolicyFailure, 550, "5.7.26", "", "auth"},
    {"Gmail 4.7.26, rate limited because unauthenticated",
     "421-4.7.26 This email has been rate limited because it is unauthenticated. Gmail\n"
     "421 4.7.26 requires all senders to authenticate with either SPF or DKIM.",
     C::kPolicyFailure, 421, "4.7.26", "", "auth"},
    {"Gmail 4.7.24, suspicious SPF",
     "451-4.7.24 The SPF record of the sending domain has one or more suspicious entries. To\n"
     "451 4.7.24 protect our users from spam, email sent from your IP address has been temporarily rate limited.",
     C::kPolicyFailure, 451, "4.7.24", "", "auth"},
    {"Gmail 4.7.27, SPF",
     "421-4.7.27 Your email has been rate limited because SPF authentication didn't pass for\n"
     "421 4.7.27 this message. Gmail requires all bulk email senders to authenticate their email with SPF.",
     C::kPolicyFailure, 421, "4.7.27", "", "auth"},
    {"Gmail 4.7.29, no TLS (only the code says policy)",
     "421-4.7.29 Your email has been rate limited because you're not using a TLS connection.\n"
     "421 4.7.29 Gmail requires all bulk email senders to use TLS/SSL for SMTP connections.",
     C::kPolicyFailure, 421, "4.7.29", "", "auth"},
    {"Gmail 4.7.30, DKIM",
     "421-4.7.30 Your email has been rate limited because DKIM authentication didn't pass for\n"
     "421 4.7.30 this message. Gmail requires all email bulk senders to authenticate their email with DKIM.",
     C::kPolicyFailure, 421, "4.7.30", "", "auth"},
    {"Gmail 5.7.32, From: alignment",
     "550-5.7.32 Your email was blocked because the From: header (RFC5322) in this message\n"
     "550 5.7.32 isn't aligned with either the authenticated SPF or DKIM organizational domain.",
     C::kPolicyFailure, 550, "5.7.32", "", "auth"},
    {"Gmail 4.7.40, no DMARC",
     "421-4.7.40 Your email has been rate limited because the sending domain doesn't have a\n"
     "421 4.7.40 DMARC record, or the DMARC record doesn't specify a DMARC policy.",
     C::kPolicyFailure, 421, "4.7.40", "", "auth"},
    {"Gmail 5.1.1, user unknown",
     "550-5.1.1 The email account that you tried to reach does not exist. Please try\n"
     "550-5.1.1 double-checking the recipient's email address for typos or\n"
     "550 5.1.1 unnecessary spaces. https://support.google.com/mail/?p=NoSuchUser - gsmtp",
     C::kOther, 550, "5.1.1", "", ""},
    {"Gmail 5.2.2, mailbox full",
     "552-5.2.2 The recipient's inbox is out of storage space and inactive. Please direct the\n"
     "552 5.2.2 recipient to Manage files in your Google Drive storage. - gsmtp",
     C::kOther, 552, "5.2.2", "", ""},
    {"Gmail 2.0.0, accepted", "250 2.0.0 OK  1700000000 d2e1a72fcca58-7a9c1b2e3f4si123456b3a.123 - gsmtp", C::kOk,
     250, "2.0.0", "", ""},
    {"Gmail greeting", "220 mx.google.com ESMTP d2e1a72fcca58-7a9c1b2e3f4si123456b3a.123 - gsmtp", C::kOk, 220, "",
     "", ""},
    // ---- Microsoft (Outlook.com / Exchange Online)
    {"Microsoft 5.7.606, banned sending IP",
     "550 5.7.606 Access denied, banned sending IP [192.0.2.1]. To request removal from this list please visit "
     "https://sender.office.com/ and follow the directions. For more information please go to "
     "http://go.microsoft.com/fwlink/?LinkID=526655 (AS16012607)",
     C::kReputationBlock, 550, "5.7.606", "", ""},
    {"Microsoft 4.7.650, IP reputation",
     "451 4.7.650 The mail server [192.0.2.1] has been temporarily rate limited due to IP reputation. For e-mail "
     "delivery information, see https://aka.ms/postmaster (S775)",
     C::kRateLimit, 451, "4.7.650", "", ""},
    {"Microsoft 4.7.651",
     "451 4.7.651 The mail server [192.0.2.1] has been temporarily rate limited due to IP reputation. For e-mail "
     "delivery information, see https://aka.ms/postmaster (S3114)",
     C::kRateLimit, 451, "4.7.651", "", ""},
    {"Microsoft S3150, block list",
     "550 5.7.1 Unfortunately, messages from [192.0.2.1] weren't sent. Please contact your Internet service "
     "provider since part of their network is on our block list (S3150). You can also refer your provider to "
     "http://mail.live.com/mail/troubleshooting.aspx#errors.",
     C::kReputationBlock, 550, "5.7.1", "", ""},
    {"Microsoft AS3140",
     "550 5.7.1 Unfortunately, messages from [192.0.2.1] weren't sent. Please contact your Internet service "
     "provider since part of their network is on our block list (AS3140).",
     C::kReputationBlock, 550, "5.7.1", "", ""},
    {"Microsoft SC-001, older form",
     "550 SC-001 (BAY004-MC1F25) Unfortunately, messages from 192.0.2.1 weren't sent. Please contact your "
     "Internet service provider since part of their network is on our block list.",
     C::kReputationBlock, 550, "", "", ""},
    {"Microsoft 4.7.500, server busy (S77714)",
     "451 4.7.500 Server busy. Please try again later from [192.0.2.1]. (S77714)", C::kRateLimit, 451, "4.7.500", "",
     ""},
    {"Microsoft 4.7.500, server busy (S77719)",
     "451 4.7.500 Server busy. Please try again later from [192.0.2.1]. (S77719)", C::kRateLimit, 451, "4.7.500", "",
     ""},
    {"Outlook.com RP-001",
     "421 RP-001 The mail server IP connecting to Outlook.com server has exceeded the rate limit allowed. Reason "
     "for rate limitation is related to IP/domain reputation.",
     C::kRateLimit, 421, "", "", ""},
    {"Outlook.com RP-003",
     "421 RP-003 The mail server IP connecting to Outlook.com server has exceeded the connection limit allowed. "
     "Reason for limitation is related to IP/domain reputation.",
     C::kRateLimit, 421, "", "", ""},
    {"Outlook.com SC-001 ('for policy reasons', yet the code is a reputation verdict)",
     "550 SC-001 Mail rejected by Outlook.com for policy reasons. Reasons for rejection may be related to content "
     "with spam-like characteristics or IP/domain reputation.",
     C::kReputationBlock, 550, "", "", ""},
    {"Outlook.com SC-004, complaints",
     "550 SC-004 Mail rejected by Outlook.com for policy reasons. A block has been placed against your IP address "
     "because we have received complaints concerning mail coming from that IP address.",
     C::kReputationBlock, 550, "", "", ""},
    {"Outlook.com DY-001 (names Spamhaus: a list is implied, rule 3)",
     "550 DY-001 Mail rejected by Outlook.com for policy reasons. We generally do not accept email from dynamic "
     "IP's as they are not typically used to deliver unauthenticated SMTP email to an Internet mail server. For "
     "more information, Spamhaus maintains lists of dynamic and residential IP addresses.",
     C::kBlockedByList, 550, "", "", ""},
    {"Outlook.com DY-002, compromised host",
     "550 DY-002 Mail rejected by Outlook.com for policy reasons. The likely cause is a compromised or virus "
     "infected server/personal computer.",
     C::kReputationBlock, 550, "", "", ""},
    {"Outlook.com OU-001, Spamhaus",
     "550 OU-001 Mail rejected by Outlook.com for policy reasons. For more information about this block and to "
     "request removal please go to: Spamhaus.",
     C::kBlockedByList, 550, "", "", ""},
    {"Outlook.com OU-002",
     "550 OU-002 Mail rejected by Outlook.com for policy reasons. Reasons for rejection may be related to content "
     "with spam-like characteristics or IP/domain reputation.",
     C::kReputationBlock, 550, "", "", ""},
    {"Outlook.com 5.7.515, bulk sender authentication",
     "550 5.7.515 Access denied, sending domain [example.com] does not meet the required authentication level. "
     "Mail rejected by Outlook.com for policy reasons.",
     C::kPolicyFailure, 550, "5.7.515", "", "auth"},
    // ---- Yahoo / AOL
    {"Yahoo TSS04",
     "421 4.7.0 [TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected volume or user complaints - "
     "4.16.55.1; see https://postmaster.yahooinc.com/error-codes",
     C::kRateLimit, 421, "4.7.0", "", ""},
    {"Yahoo TS01",
     "421 4.7.0 [TS01] Messages from 192.0.2.1 temporarily deferred due to user complaints - 4.16.55.1; see "
     "https://help.yahoo.com/kb/postmaster/SLN3434.html",
     C::kRateLimit, 421, "4.7.0", "", ""},
    {"Yahoo TS02",
     "421 4.7.0 [TS02] Messages from 192.0.2.1 temporarily deferred due to unexpected volume or user complaints - "
     "4.16.55.1; see https://help.yahoo.com/kb/postmaster/SLN3434.html",
     C::kRateLimit, 421, "4.7.0", "", ""},
    {"Yahoo TS03",
     "421 4.7.1 [TS03] All messages from 192.0.2.1 will be permanently deferred; Retrying will NOT succeed. See "
     "https://help.yahoo.com/kb/postmaster/SLN3434.html",
     C::kRateLimit, 421, "4.7.1", "", ""},
    {"Yahoo BL21, Spamhaus",
     "553 5.7.1 [BL21] Connections will not be accepted from 192.0.2.1, because the ip is in Spamhaus's list; see "
     "https://postmaster.yahooinc.com/error-codes",
     C::kBlockedByList, 553, "5.7.1", "", ""},
    {"Yahoo 5.7.9, policy (wording unverified)",
     "554 5.7.9 Message not accepted for policy reasons. See https://postmaster.yahooinc.com/error-codes",
     C::kPolicyFailure, 554, "5.7.9", "", "recipient_policy"},
    {"AOL RTR:BB", "554 RTR:BB http://postmaster.info.aol.com/errors/554rtrbb.html", C::kReputationBlock, 554, "", "",
     ""},
    {"AOL RTR:CH", "554 RTR:CH http://postmaster.info.aol.com/errors/554rtrch.html", C::kReputationBlock, 554, "", "",
     ""},
    {"AOL RLY:B1 deferral", "421 RLY:B1 http://postmaster.info.aol.com/errors/421rlyb1.html", C::kRateLimit, 421, "",
     "", ""},
    {"AOL RLY:B1 block", "554 RLY:B1 http://postmaster.info.aol.com/errors/554rlyb1.html", C::kReputationBlock, 554,
     "", "", ""},
    {"AOL DYN:T1", "421 DYN:T1 http://postmaster.info.aol.com/errors/421dynt1.html", C::kRateLimit, 421, "", "", ""},
    {"AOL CON:B1", "421 CON:B1 http://postmaster.info.aol.com/errors/421conb1.html", C::kRateLimit, 421, "", "", ""},
    // ---- Comcast: BLxxxxxx is a bit field; BL000000 is Comcast's own block
    {"Comcast BL000001, Spamhaus ZEN",
     "554 resimta-po-26v.sys.comcast.net resimta-po-26v.sys.comcast.net 192.0.2.1 found on one or more DNSBLs, see "
     "http://postmaster.comcast.net/smtp-error-codes.php#BL000001",
     C::kBlockedByList, 554, "", "", ""},
    {"Comcast BL000010, Cloudmark only (no list word but the bit)",
     "554 resimta-po-26v.sys.comcast.net 192.0.2.1 blocked, see "
     "http://postmaster.comcast.net/smtp-error-codes.php#BL000010",
     C::kBlockedByList, 554, "", "", ""},
    {"Comcast BL000111",
     "554 resimta-po-26v.sys.comcast.net 192.0.2.1 found on one or more DNSBLs, see "
     "http://postmaster.comcast.net/smtp-error-codes.php#BL000111",
     C::kBlockedByList, 554, "", "", ""},
    {"Comcast BL000000, patterns characteristic of spam",
     "554 resimta-po-26v.sys.comcast.net 192.0.2.1 Comcast block for spam. Please see "
     "http://postmaster.comcast.net/smtp-error-codes.php#BL000000",
     C::kReputationBlock, 554, "", "", ""},
    {"Comcast BL000000 in the DNSBL template (the bit field decides)",
     "554 resimta-po-26v.sys.comcast.net 192.0.2.1 found on one or more DNSBLs, see "
     "http://postmaster.comcast.net/smtp-error-codes.php#BL000000",
     C::kReputationBlock, 554, "", "", ""},
    {"Comcast, too many sessions", "421 resimta-po-26v.sys.comcast.net Too many sessions opened", C::kRateLimit, 421,
     "", "", ""},
    // ---- Receivers' own DNSBL rejects (Postfix, Exim, others)
    {"Postfix reject_rbl_client, ZEN with TXT",
     "554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org; "
     "https://www.spamhaus.org/query/ip/192.0.2.1",
     C::kBlockedByList, 554, "5.7.1", "zen.spamhaus.org", ""},
    {"Postfix reject_rbl_client, SpamCop with TXT",
     "554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using bl.spamcop.net; Blocked - see "
     "https://www.spamcop.net/bl.shtml?192.0.2.1",
     C::kBlockedByList, 554, "5.7.1", "bl.spamcop.net", ""},
    {"Postfix reject_rbl_client, no TXT",
     "554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using b.barracudacentral.org",
     C::kBlockedByList, 554, "5.7.1", "b.barracudacentral.org", ""},
    {"Postfix reject_rbl_client, UCEPROTECT",
     "554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using dnsbl-3.uceprotect.net; Your IP is "
     "listed in UCEPROTECT-Level3",
     C::kBlockedByList, 554, "5.7.1", "dnsbl-3.uceprotect.net", ""},
    {"Postfix reject_rbl_client, a list that is not a zone name",
     "550 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using Trend Micro RBL+. Please see "
     "http://www.mail-abuse.com/cgi-bin/lookup?ip_address=192.0.2.1",
     C::kBlockedByList, 550, "5.7.1", "", ""},
    {"Exim dnslists, multi-line with TXT",
     "550-rejected because 192.0.2.1 is in a black list at zen.spamhaus.org\n"
     "550 https://www.spamhaus.org/query/ip/192.0.2.1",
     C::kBlockedByList, 550, "", "zen.spamhaus.org", ""},
    {"Exim dnslists, SpamCop",
     "550-rejected because 192.0.2.1 is in a black list at bl.spamcop.net\n"
     "550 Blocked - see https://www.spamcop.net/bl.shtml?192.0.2.1",
     C::kBlockedByList, 550, "", "bl.spamcop.net", ""},
    {"SpamCop TXT alone", "550 5.7.1 Blocked - see https://www.spamcop.net/bl.shtml?192.0.2.1", C::kBlockedByList,
     550, "5.7.1", "", ""},
    {"'blocked by SPAMHAUS' (sisimai)", "554 5.7.1 Email blocked by SPAMHAUS - to unblock see http://www.example.com/",
     C::kBlockedByList, 554, "5.7.1", "", ""},
    {"'listed at <zone>' (sisimai)", "550 5.7.1 Client 192.0.2.1 is listed at dnsbl.example.net", C::kBlockedByList,
     550, "5.7.1", "", ""},
    // ---- The receiver's DNSBL failed: never our listing (rule 2 wins over rule 3)
    {"Spamhaus open resolver (§1.3)",
     "554 5.7.1 Service unavailable; Client host [192.0.2.10] blocked using zen.spamhaus.org; Error: open "
     "resolver; https://check.spamhaus.org/returnc/pub/192.0.2.10/",
     C::kOther, 554, "5.7.1", "zen.spamhaus.org", "receiver_dnsbl_error"},
    {"Spamhaus excessive number of queries",
     "554 5.7.1 Service unavailable; Client host [192.0.2.10] blocked using zen.spamhaus.org; Error: excessive "
     "number of queries; https://check.spamhaus.org/returnc/vol/",
     C::kOther, 554, "5.7.1", "zen.spamhaus.org", "receiver_dnsbl_error"},
    {"Exim, open resolver in the TXT line",
     "550-rejected because 192.0.2.10 is in a black list at zen.spamhaus.org\n"
     "550 Error: open resolver; https://check.spamhaus.org/returnc/pub/192.0.2.10/",
     C::kOther, 550, "", "zen.spamhaus.org", "receiver_dnsbl_error"},
    {"Spamhaus error code in the reply",
     "550 5.7.1 Rejected: 192.0.2.10 is listed at zen.spamhaus.org (127.255.255.254)", C::kOther, 550, "5.7.1", "",
     "receiver_dnsbl_error"},
    {"DNSBL query refused",
     "554 5.7.1 Service unavailable; Client host [192.0.2.10] blocked using b.barracudacentral.org; query was "
     "refused",
     C::kOther, 554, "5.7.1", "b.barracudacentral.org", "receiver_dnsbl_error"},
    // ---- Greylisting and generic deferrals
    {"postgrey",
     "450 4.2.0 <user@example.com>: Recipient address rejected: Greylisted, see "
     "http://postgrey.schweikert.ch/help/example.com.html",
     C::kGreylist, 450, "4.2.0", "", ""},
    {"generic greylisting", "451 4.7.1 Greylisting in action, please come back later", C::kGreylist, 451, "4.7.1", "",
     ""},
    {"generic deferral without a greylist word", "451 4.7.1 Please try again later", C::kRateLimit, 451, "4.7.1", "",
     ""},
    {"a 5xx that says greylisted is no greylist", "550 5.7.1 Greylisted for too long, giving up", C::kOther, 550,
     "5.7.1", "", ""},
    {"Postfix reject_unknown_client_hostname",
     "450 4.7.1 Client host rejected: cannot find your hostname, [192.0.2.1]", C::kPolicyFailure, 450, "4.7.1", "",
     "rdns"},
    {"Postfix reject_unknown_reverse_client_hostname",
     "450 4.7.25 Client host rejected: cannot find your reverse hostname, [192.0.2.1]", C::kPolicyFailure, 450,
     "4.7.25", "", "rdns"},
    {"Comcast reverse DNS deferral", "421 resimta-po-26v.sys.comcast.net [Reverse DNS failure : Try again later]",
     C::kPolicyFailure, 421, "", "", "rdns"},
    // ---- Transaction replies
    {"DATA go-ahead (transaction stage)", "354 Start mail input; end with <CRLF>.<CRLF>", C::kOk, 354, "", "", ""},
    {"EHLO", "250-mx.example Hello [192.0.2.1]\n250-PIPELINING\n250-SIZE 52428800\n250 STARTTLS", C::kOk, 250, "", "",
     ""},
};

TEST_CASE("real receiver replies: wire, pasted and Postfix-logged forms agree", "[smtp_reply]") {
  REQUIRE(std::size(kCases) >= 40);
  for (const Case& c : kCases) {
    INFO(c.source << "\n" << c.reply);
    const ReplyClassification wire = ClassifyReply(Wire(c.reply));
    CHECK(Name(wire.cls) == Name(c.cls));
    CHECK(wire.code == c.code);
    CHECK(wire.enhanced == c.enhanced);
    CHECK(wire.zone == c.zone);
    CHECK(wire.reason == c.reason);
    CHECK_FALSE(wire.text.empty());
    CHECK(wire.text.find("  ") == std::string::npos);
    CHECK(wire.text.find('\n') == std::string::npos);

    const ReplyClassification pasted = ClassifyText(c.reply);
    INFO("pasted text: " << pasted.text);
    CHECK(Name(pasted.cls) == Name(c.cls));
    CHECK(pasted.code == c.code);
    CHECK(pasted.enhanced == c.enhanced);
    CHECK(pasted.zone == c.zone);
    CHECK(pasted.reason == c.reason);
    CHECK(pasted.text == wire.text);

    const std::string logged_line = PostfixLogLine(c.reply);
    const ReplyClassification logged = ClassifyText(logged_line);
    INFO("log line: " << logged_line << "\nlogged text: " << logged.text);
    CHECK(Name(logged.cls) == Name(c.cls));
    CHECK(logged.code == c.code);
    CHECK(logged.enhanced == c.enhanced);
    CHECK(logged.zone == c.zone);
    CHECK(logged.reason == c.reason);
    CHECK(logged.text == wire.text);
  }
}

TEST_CASE("normalised text: prefixes stripped, lines joined, whitespace collapsed", "[smtp_reply]") {
  const std::string joined =
      "[192.0.2.1 15] Our system has detected an unusual rate of unsolicited mail originating from your IP "
      "address. To protect our users from spam, mail sent from your IP address has been temporarily rate limited. "
      "Please visit https://support.google.com/mail/?p=UnsolicitedRateLimitError to review our Bulk Email Senders "
      "Guidelines. d2e1a72fcca58-7a9c1b2e3f4si123456b3a.123 - gsmtp";
  CHECK(ClassifyReply(Wire(kCases[0].reply)).text == joined);

  // The bounce line of the brief: Gmail's reply flattened by Postfix, a relay address containing "250".
  const ReplyClassification r = ClassifyText(
      "status=deferred (host gmail-smtp-in.l.google.com[142.250.1.26] said: 421-4.7.28 [192.0.2.1      15] Our "
      "system has detected an unusual rate of 421-4.7.28 unsolicited mail originating from your IP address. To "
      "protect our 421-4.7.28 users from spam, mail sent from your IP address has been temporarily 421-4.7.28 "
      "rate limited. Please visit 421-4.7.28  https://support.google.com/mail/?p=UnsolicitedRateLimitError to "
      "421 4.7.28 review our Bulk Email Senders Guidelines. d2e1a72fcca58-7a9c1b2e3f4si123456b3a.123 - gsmtp (in "
      "reply to end of DATA command))");
  CHECK(Name(r.cls) == "rate_limit");
  CHECK(r.code == 421);
  CHECK(r.enhanced == "4.7.28");
  CHECK(r.text == joined);

  // Tabs, CR and runs of spaces collapse; the enhanced code of every line goes.
  SmtpReply reply;
  REQUIRE(AppendReplyLine(reply, "550-5.1.1\t The  email account\r", nullptr));
  REQUIRE(AppendReplyLine(reply, "550 5.1.1    does not   exist.  ", nullptr));
  const ReplyClassification u = ClassifyReply(reply);
  CHECK(u.text == "The email account does not exist.");
  CHECK(u.enhanced == "5.1.1");
  CHECK(Name(u.cls) == "other");

  // A multi-line reply without enhanced codes, flattened: the inner "NNN-" and final "NNN " go.
  const ReplyClassification x = ClassifyText("554-mx.example ESMTP not accepting mail 554-from you 554 Goodbye");
  CHECK(x.code == 554);
  CHECK(x.enhanced.empty());
  CHECK(x.text == "mx.example ESMTP not accepting mail from you Goodbye");

  // A number inside a single-line reply is text, not a prefix.
  const ReplyClassification n = ClassifyText("452 4.5.3 Too many recipients, limit is 452 per message");
  CHECK(n.text == "Too many recipients, limit is 452 per message");
}

TEST_CASE("zones: punctuation dropped, lowercased, only plausible names", "[smtp_reply]") {
  struct Want {
    const char* text;
    const char* zone;
  };
  const Want wants[] = {
      {"554 5.7.1 Client host [192.0.2.1] blocked using zen.spamhaus.org; see", "zen.spamhaus.org"},
      {"554 5.7.1 Client host [192.0.2.1] blocked using bl.spamcop.net, see", "bl.spamcop.net"},
      {"554 5.7.1 Client host [192.0.2.1] blocked using psbl.surriel.com.", "psbl.surriel.com"},
      {"554 5.7.1 CLIENT HOST [192.0.2.1] BLOCKED USING ZEN.SPAMHAUS.ORG", "zen.spamhaus.org"},
      {"554 5.7.1 Client host [192.0.2.1] blocked using zen.spamhaus.org=127.0.0.4", "zen.spamhaus.org"},
      {"550 rejected because 192.0.2.1 is in a black list at dnsbl.example.org.", "dnsbl.example.org"},
      {"550 rejected because 192.0.2.1 is in a blacklist at dnsbl.example.org", "dnsbl.example.org"},
      {"554 5.7.1 Client host [192.0.2.1] blocked using SORBS", ""},
      {"554 5.7.1 Client host [192.0.2.1] blocked using bad!name.example;", ""},
  };
  for (const Want& w : wants) {
    INFO(w.text);
    const ReplyClassification r = ClassifyText(w.text);
    CHECK(Name(r.cls) == "blocked_by_list");
    CHECK(r.zone == w.zone);
  }
  // A zone is reported for a list verdict or a failed list only.
  CHECK(ClassifyText("550 5.1.1 <u@example.com>: Recipient address rejected: User unknown").zone.empty());
  CHECK(ClassifyText("451 4.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org; "
                     "Error: open resolver")
            .zone == "zen.spamhaus.org");
}

TEST_CASE("AppendReplyLine: continuation, last line, code mismatch, malformed", "[smtp_reply]") {
  SECTION("continuation lines then the last line") {
    SmtpReply reply;
    bool last = true;
    REQUIRE(AppendReplyLine(reply, "250-mx.example Hello [192.0.2.1]", &last));
    CHECK_FALSE(last);
    REQUIRE(AppendReplyLine(reply, "250-", &last));  // an empty continuation line
    CHECK_FALSE(last);
    REQUIRE(AppendReplyLine(reply, "250 STARTTLS", &last));
    CHECK(last);
    CHECK(reply.code == 250);
    CHECK(reply.lines == std::vector<std::string>{"mx.example Hello [192.0.2.1]", "", "STARTTLS"});
  }
  SECTION("a bare code is a whole last line") {
    SmtpReply reply;
    bool last = false;
    REQUIRE(AppendReplyLine(reply, "354", &last));
    CHECK(last);
    CHECK(reply.code == 354);
    CHECK(reply.lines == std::vector<std::string>{""});
  }
  SECTION("the enhanced code stays in the line; last_line may be null") {
    SmtpReply reply;
    REQUIRE(AppendReplyLine(reply, "421 4.7.0 Try again later", nullptr));
    CHECK(reply.lines == std::vector<std::string>{"4.7.0 Try again later"});
  }
  SECTION("a different code is refused and changes nothing") {
    SmtpReply reply;
    bool last = false;
    REQUIRE(AppendReplyLine(reply, "421-4.7.28 first", &last));
    last = true;
    CHECK_FALSE(AppendReplyLine(reply, "550 5.7.1 second", &last));
    CHECK(last);  // untouched
    CHECK(reply.code == 421);
    CHECK(reply.lines.size() == 1);
  }
  SECTION("malformed lines") {
    for (const char* bad : {"", "25", "2x0 ok", "250x ok", "2500 ok", "250_ok", " 250 ok", "abc", "100 hello",
                            "600 nope", "099 no", "250\tok"}) {
      INFO('"' << bad << '"');
      SmtpReply reply;
      bool last = false;
      CHECK_FALSE(AppendReplyLine(reply, bad, &last));
      CHECK(reply.code == 0);
      CHECK(reply.lines.empty());
    }
  }
}

TEST_CASE("ClassifyText finds the reply inside bounce and log lines", "[smtp_reply]") {
  struct Want {
    const char* line;
    SmtpClass cls;
    int code;
    const char* enhanced;
    const char* text;
  };
  const Want wants[] = {
      {"host mx.example[1.2.3.4] said: 550 5.7.606 Access denied, banned sending IP [192.0.2.1] (in reply to RCPT "
       "TO command)",
       C::kReputationBlock, 550, "5.7.606", "Access denied, banned sending IP [192.0.2.1]"},
      {"Feb 15 10:22:33 mta1 postfix/smtp[250]: 3F2A1C0D: to=<u@yahoo.com>, relay=none, delay=250, "
       "status=deferred (delivery temporarily suspended: host mta5.am0.yahoodns.net[198.51.100.250] refused to "
       "talk to me: 421 4.7.0 [TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected volume or user "
       "complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes)",
       C::kRateLimit, 421, "4.7.0",
       "[TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected volume or user complaints - "
       "4.16.55.1; see https://postmaster.yahooinc.com/error-codes"},
      {"2024-02-15 10:22:33 1rabcd-000250-AB ** u@example.com R=dnslookup T=remote_smtp H=mx.example "
       "[203.0.113.25]: SMTP error from remote mail server after RCPT TO:<u@example.com>: 550 5.1.1 "
       "<u@example.com>: Recipient address rejected: User unknown",
       C::kOther, 550, "5.1.1", "<u@example.com>: Recipient address rejected: User unknown"},
      {"Diagnostic-Code: smtp; 554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using "
       "zen.spamhaus.org",
       C::kBlockedByList, 554, "5.7.1",
       "Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org"},
      // A number with text after it before "said:" is not the reply.
      {"queue 250 messages deep; host mx.example[198.51.100.7] said: 451 4.7.1 Please try again later",
       C::kRateLimit, 451, "4.7.1", "Please try again later"},
      // Ports and IPv6 addresses are not codes: no reply at all.
      {"connect to mx.example[2001:db8::250]:587: Connection timed out", C::kOther, 0, "",
       "connect to mx.example[2001:db8::250]:587: Connection timed out"},
      {"lost connection with mx.example[198.51.100.250] port 465 while receiving the initial server greeting",
       C::kOther, 0, "",
       "lost connection with mx.example[198.51.100.250] port 465 while receiving the initial server greeting"},
      // No "said:" and not at a reply position, but followed by an enhanced code.
      {"Remote server replied 550 5.7.606 Access denied, banned sending IP [192.0.2.1]", C::kReputationBlock, 550,
       "5.7.606", "Access denied, banned sending IP [192.0.2.1]"},
      // Last resort: the first 2xx/4xx/5xx followed by a word.
      {"mx.example answered 554 RTR:BB http://postmaster.info.aol.com/errors/554rtrbb.html", C::kReputationBlock, 554,
       "", "RTR:BB http://postmaster.info.aol.com/errors/554rtrbb.html"},
  };
  for (const Want& w : wants) {
    INFO(w.line);
    const ReplyClassification r = ClassifyText(w.line);
    CHECK(Name(r.cls) == Name(w.cls));
    CHECK(r.code == w.code);
    CHECK(r.enhanced == w.enhanced);
    CHECK(r.text == w.text);
  }
}

TEST_CASE("ClassifyText without a reply code: only rules 2, 3 and 5 can fire", "[smtp_reply]") {
  struct Want {
    const char* text;
    SmtpClass cls;
    const char* zone;
    const char* reason;
  };
  const Want wants[] = {
      {"Client host [192.0.2.1] blocked using zen.spamhaus.org", C::kBlockedByList, "zen.spamhaus.org", ""},
      {"Error: open resolver; https://check.spamhaus.org/returnc/pub/192.0.2.1/", C::kOther, "",
       "receiver_dnsbl_error"},
      {"The IP address sending this message does not have a PTR record", C::kPolicyFailure, "", "rdns"},
      {"Gmail requires all senders to authenticate with either SPF or DKIM", C::kPolicyFailure, "", "auth"},
      // Rules 4, 6 and 7 need a 4xx / 5xx code.
      {"Access denied, banned sending IP [192.0.2.1]", C::kOther, "", ""},
      {"Greylisted, see http://postgrey.schweikert.ch/help/example.com.html", C::kOther, "", ""},
      {"Server busy. Please try again later", C::kOther, "", ""},
      {"Connection refused", C::kOther, "", ""},
      {"", C::kOther, "", ""},
  };
  for (const Want& w : wants) {
    INFO('"' << w.text << '"');
    const ReplyClassification r = ClassifyText(w.text);
    CHECK(Name(r.cls) == Name(w.cls));
    CHECK(r.code == 0);
    CHECK(r.enhanced.empty());
    CHECK(r.zone == w.zone);
    CHECK(r.reason == w.reason);
  }
}

TEST_CASE("3xx replies and replies without a code", "[smtp_reply]") {
  SmtpReply go;
  REQUIRE(AppendReplyLine(go, "354 End data with <CR><LF>.<CR><LF>", nullptr));
  CHECK(Name(ClassifyReply(go).cls) == "ok");
  CHECK(Name(ClassifyReply(go, /*transaction_stage=*/true).cls) == "ok");
  const ReplyClassification outside = ClassifyReply(go, /*transaction_stage=*/false);
  CHECK(Name(outside.cls) == "other");
  CHECK(outside.reason == "unexpected_3xx");
  CHECK(outside.code == 354);

  SmtpReply auth;
  REQUIRE(AppendReplyLine(auth, "334 VXNlcm5hbWU6", nullptr));
  CHECK(Name(ClassifyReply(auth).cls) == "ok");

  // Free text: a 3xx counts as the transaction stage, but only where a reply starts.
  CHECK(Name(ClassifyText("354 Start mail input").cls) == "ok");
  CHECK(ClassifyText("354 Start mail input").code == 354);
  CHECK(ClassifyText("please retry in 300 seconds").code == 0);

  // No valid reply: nothing to classify.
  const ReplyClassification none = ClassifyReply(SmtpReply{});
  CHECK(Name(none.cls) == "error");
  CHECK(none.code == 0);
  SmtpReply odd;
  odd.code = 99;
  odd.lines = {"not a reply"};
  CHECK(Name(ClassifyReply(odd).cls) == "error");
  CHECK(ClassifyReply(odd).text == "not a reply");
}

TEST_CASE("rules apply in order", "[smtp_reply]") {
  // Rule 2 before rule 3: a failing list is not a listing, even when the text also names Spamhaus.
  CHECK(Name(ClassifyText("554 5.7.1 blocked using zen.spamhaus.org; 127.255.255.252").cls) == "other");
  // Rule 3 before rule 5: a list wins over policy words.
  CHECK(Name(ClassifyText("550 5.7.1 Rejected for policy reasons: listed on Spamhaus").cls) == "blocked_by_list");
  // Rule 4 before rule 5 and 6.
  CHECK(Name(ClassifyText("451 4.7.1 Greylisted; senders on our whitelist skip this, try again later").cls) ==
        "greylist");
  // Rule 5's codes win over rule 6's words.
  CHECK(Name(ClassifyText("421 4.7.26 Your email has been rate limited").cls) == "policy_failure");
  // Rule 6 needs a 4xx, rule 7 a 5xx.
  CHECK(Name(ClassifyText("550 5.7.1 Server busy, try again later").cls) == "other");
  CHECK(Name(ClassifyText("451 4.7.1 banned sending IP").cls) == "other");
  CHECK(Name(ClassifyText("451 4.7.1 poor reputation").cls) == "rate_limit");
  CHECK(Name(ClassifyText("550 5.7.1 poor reputation").cls) == "reputation_block");
  // A 2xx is ok whatever it says.
  CHECK(Name(ClassifyText("250 2.0.0 Ok: queued, spamhaus says hi").cls) == "ok");
}

TEST_CASE("SmtpClassName and ParseSmtpClass round-trip", "[smtp_reply]") {
  const std::pair<SmtpClass, const char*> names[] = {
      {C::kOk, "ok"},
      {C::kBlockedByList, "blocked_by_list"},
      {C::kReputationBlock, "reputation_block"},
      {C::kRateLimit, "rate_limit"},
      {C::kGreylist, "greylist"},
      {C::kPolicyFailure, "policy_failure"},
      {C::kOther, "other"},
      {C::kError, "error"},
  };
  for (const auto& [cls, name] : names) {
    INFO(name);
    CHECK(SmtpClassName(cls) == name);
    REQUIRE(ParseSmtpClass(name).has_value());
    CHECK(*ParseSmtpClass(name) == cls);
  }
  CHECK_FALSE(ParseSmtpClass("OK").has_value());
  CHECK_FALSE(ParseSmtpClass("").has_value());
  CHECK_FALSE(ParseSmtpClass("blocked").has_value());
}

}  // namespace
}  // namespace repwatch
