// The catalogue of big mailbox providers: the receiver domains the MX probe asks
// by default (`[mx_probe] domains = ["catalogue", ...]`) and the receiver group
// of a recipient domain or MX host name, used to split volume and probe results
// into gmail / microsoft / yahoo / other.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace repwatch {

struct Receiver {
  std::string domain;  // a recipient domain to probe: "gmail.com"
  std::string group;   // "gmail" | "microsoft" | "yahoo" | "other"
};

// In a fixed order: gmail.com, outlook.com, hotmail.com, yahoo.com, aol.com, icloud.com,
// comcast.net, gmx.net, web.de, mail.ru, yandex.ru, orange.fr, t-online.de. Domains
// are lowercase and unique; each group is ReceiverGroup(domain).
const std::vector<Receiver>& ReceiverCatalogue();

// "gmail", "microsoft", "yahoo" or "other" for a recipient domain ("googlemail.com",
// "hotmail.de", "aol.com") or an MX host ("gmail-smtp-in.l.google.com",
// "acme-com.mail.protection.outlook.com", "mta5.am0.yahoodns.net"). Case-insensitive;
// a trailing dot is ignored. A name matches its domain and every host under it;
// the country variants of hotmail / live / outlook / yahoo / aol ("hotmail.de",
// "yahoo.co.uk", "yahoo.com.br") match too, except yahoo.co.jp (another company).
std::string_view ReceiverGroup(std::string_view domain_or_host);

}  // namespace repwatch
