#include "agent/receivers.h"

#include <catch2/catch.hpp>

#include <set>
#include <string>

namespace repwatch {
namespace {

TEST_CASE("receiver catalogue: fixed order, unique lowercase domains, valid groups", "[receivers]") {
  const std::vector<Receiver>& cat = ReceiverCatalogue();
  REQUIRE(cat.size() >= 12);
  const char* const first[] = {"gmail.com",   "outlook.com", "hotmail.com", "yahoo.com", "aol.com",
                               "icloud.com",  "comcast.net", "gmx.net",     "web.de",    "mail.ru",
                               "yandex.ru",   "orange.fr",   "t-online.de"};
  for (size_t i = 0; i < std::size(first); ++i) {
    INFO(i);
    REQUIRE(i < cat.size());
    CHECK(cat[i].domain == first[i]);
  }
  const std::set<std::string> groups = {"gmail", "microsoft", "yahoo", "other"};
  std::set<std::string> domains;
  std::set<std::string> seen_groups;
  for (const Receiver& r : cat) {
    INFO(r.domain);
    CHECK(domains.insert(r.domain).second);
    CHECK(groups.count(r.group) == 1);
    seen_groups.insert(r.group);
    for (char c : r.domain) CHECK_FALSE((c >= 'A' && c <= 'Z'));
    CHECK(r.domain.find('.') != std::string::npos);
    CHECK(ReceiverGroup(r.domain) == r.group);  // the catalogue agrees with the mapping
  }
  CHECK(seen_groups == groups);  // every group has a probe target
  CHECK(&ReceiverCatalogue() == &cat);  // built once
}

TEST_CASE("ReceiverGroup maps recipient domains and MX hosts", "[receivers]") {
  struct Want {
    const char* name;
    const char* group;
  };
  const Want wants[] = {
      // Google
      {"gmail.com", "gmail"},
      {"googlemail.com", "gmail"},
      {"google.com", "gmail"},
      {"gmail-smtp-in.l.google.com", "gmail"},
      {"alt4.gmail-smtp-in.l.google.com.", "gmail"},
      {"aspmx.l.google.com", "gmail"},
      {"smtp.googlemail.com", "gmail"},
      {"GMAIL.COM", "gmail"},
      // Microsoft
      {"outlook.com", "microsoft"},
      {"hotmail.com", "microsoft"},
      {"hotmail.de", "microsoft"},
      {"hotmail.co.uk", "microsoft"},
      {"hotmail.com.br", "microsoft"},
      {"live.com", "microsoft"},
      {"live.fr", "microsoft"},
      {"live.co.uk", "microsoft"},
      {"msn.com", "microsoft"},
      {"outlook.de", "microsoft"},
      {"acme-com.mail.protection.outlook.com", "microsoft"},
      {"hotmail-com.olc.protection.outlook.com", "microsoft"},
      {"eur.olc.protection.outlook.com.", "microsoft"},
      {"Outlook-COM.OLC.Protection.Outlook.com", "microsoft"},
      // Yahoo (and AOL / Verizon, whose mail Yahoo runs)
      {"yahoo.com", "yahoo"},
      {"yahoo.co.uk", "yahoo"},
      {"yahoo.fr", "yahoo"},
      {"yahoo.com.br", "yahoo"},
      {"ymail.com", "yahoo"},
      {"rocketmail.com", "yahoo"},
      {"aol.com", "yahoo"},
      {"aol.de", "yahoo"},
      {"verizon.net", "yahoo"},
      {"mta5.am0.yahoodns.net", "yahoo"},
      {"mx-aol.mail.gm0.yahoodns.net", "yahoo"},
      // Everything else
      {"yahoo.co.jp", "other"},  // Yahoo! JAPAN: another company
      {"mx.mail.yahoo.co.jp", "other"},
      {"icloud.com", "other"},
      {"mx01.mail.icloud.com", "other"},
      {"comcast.net", "other"},
      {"gmx.net", "other"},
      {"web.de", "other"},
      {"mail.ru", "other"},
      {"yandex.ru", "other"},
      {"orange.fr", "other"},
      {"t-online.de", "other"},
      {"example.com", "other"},
      {"notgoogle.com", "other"},          // a suffix must start at a label
      {"google.com.example.net", "other"},  // ... and end the name
      {"outlook.example", "other"},
      {"live.tv", "other"},   // a generic two-letter TLD
      {"live.net", "other"},
      {"live", "other"},
      {"", "other"},
      {".", "other"},
      {"192.0.2.1", "other"},
  };
  for (const Want& w : wants) {
    INFO('"' << w.name << '"');
    CHECK(ReceiverGroup(w.name) == w.group);
  }
}

}  // namespace
}  // namespace repwatch
