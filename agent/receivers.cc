#include "agent/receivers.h"

#include "agent/text.h"

namespace repwatch {
namespace {

struct Suffix {
  std::string_view domain;
  std::string_view group;
};

// A name in one of these domains (the domain itself or any host under it) belongs
// to the group: recipient domains and the MX / infrastructure domains behind them.
constexpr Suffix kSuffixes[] = {
    // Google: consumer domains, and every Gmail / Workspace MX (*.l.google.com, ...).
    {"gmail.com", "gmail"},
    {"googlemail.com", "gmail"},
    {"google.com", "gmail"},
    // Microsoft: consumer domains, Exchange Online / Outlook.com MX
    // (*.mail.protection.outlook.com, *.olc.protection.outlook.com).
    {"outlook.com", "microsoft"},
    {"hotmail.com", "microsoft"},
    {"live.com", "microsoft"},
    {"msn.com", "microsoft"},
    {"windowslive.com", "microsoft"},
    {"passport.com", "microsoft"},
    {"office365.com", "microsoft"},
    {"microsoft.com", "microsoft"},
    // Yahoo, and the brands whose mail Yahoo runs (AOL, Verizon) with their MX (*.yahoodns.net).
    {"yahoo.com", "yahoo"},
    {"ymail.com", "yahoo"},
    {"rocketmail.com", "yahoo"},
    {"yahoodns.net", "yahoo"},
    {"aol.com", "yahoo"},
    {"aim.com", "yahoo"},
    {"verizon.net", "yahoo"},
};

// Brands with one mailbox domain per country: "<brand>.<tld>" and "<brand>.co.<cc>"
// style names (hotmail.de, live.fr, yahoo.co.uk, yahoo.com.br, aol.de, outlook.es).
struct Brand {
  std::string_view label;
  std::string_view group;
};
constexpr Brand kBrands[] = {
    {"hotmail", "microsoft"}, {"live", "microsoft"}, {"outlook", "microsoft"},
    {"yahoo", "yahoo"},       {"aol", "yahoo"},
};

// Yahoo! JAPAN is a different company with its own mail system.
constexpr std::string_view kNotYahoo = "yahoo.co.jp";

// Two-letter TLDs that are sold as generic names; "live.tv" or "live.io" is not
// a Microsoft mailbox domain.
constexpr std::string_view kGenericCcTlds[] = {"ai", "cc", "co", "fm", "gg", "io", "ly", "me", "sh", "to", "tv", "ws"};

bool IsLetters(std::string_view s) {
  for (char c : s)
    if (c < 'a' || c > 'z') return false;
  return !s.empty();
}

bool IsCountryTld(std::string_view s) {
  if (s.size() != 2 || !IsLetters(s)) return false;
  for (std::string_view g : kGenericCcTlds)
    if (s == g) return false;
  return true;
}

// What may follow a brand label: "com", a country TLD, or a second-level label
// of a country ("co.uk", "com.br", "ne.jp", "or.kr", ...).
bool IsCountrySuffix(std::string_view tail) {
  if (tail == "com" || IsCountryTld(tail)) return true;
  const size_t dot = tail.find('.');
  if (dot == std::string_view::npos) return false;
  const std::string_view second = tail.substr(0, dot);
  const std::string_view cc = tail.substr(dot + 1);
  return (second == "co" || second == "com" || second == "net" || second == "org" || second == "ne" ||
          second == "or") &&
         IsCountryTld(cc);
}

// Whether `name` is `domain` or a name under it.
bool InDomain(std::string_view name, std::string_view domain) {
  if (name == domain) return true;
  return name.size() > domain.size() && name.ends_with(domain) && name[name.size() - domain.size() - 1] == '.';
}

}  // namespace

const std::vector<Receiver>& ReceiverCatalogue() {
  static const std::vector<Receiver>* catalogue = new std::vector<Receiver>{
      {"gmail.com", "gmail"},     {"outlook.com", "microsoft"}, {"hotmail.com", "microsoft"},
      {"yahoo.com", "yahoo"},     {"aol.com", "yahoo"},         {"icloud.com", "other"},
      {"comcast.net", "other"},   {"gmx.net", "other"},         {"web.de", "other"},
      {"mail.ru", "other"},       {"yandex.ru", "other"},       {"orange.fr", "other"},
      {"t-online.de", "other"},
  };
  return *catalogue;
}

std::string_view ReceiverGroup(std::string_view domain_or_host) {
  std::string name = AsciiLower(domain_or_host);
  if (!name.empty() && name.back() == '.') name.pop_back();
  if (name.empty()) return "other";
  if (InDomain(name, kNotYahoo)) return "other";
  for (const Suffix& s : kSuffixes)
    if (InDomain(name, s.domain)) return s.group;
  // Brand label followed by a country suffix, anywhere in the name ("mx1.hotmail.de").
  size_t start = 0;
  while (start < name.size()) {
    const size_t dot = name.find('.', start);
    if (dot == std::string::npos) break;
    const std::string_view label = std::string_view(name).substr(start, dot - start);
    const std::string_view tail = std::string_view(name).substr(dot + 1);
    for (const Brand& b : kBrands)
      if (label == b.label && IsCountrySuffix(tail)) return b.group;
    start = dot + 1;
  }
  return "other";
}

}  // namespace repwatch
