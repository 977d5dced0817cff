// The zone catalogue: what we know about real DNSBLs and DNSWLs — the families they
// serve, what each return code means, which codes are errors, where to delist,
// whether a key is needed, and which zones are dead. Its source is configs/zones.toml,
// embedded into the binary at build time (build_info.h: kCatalogueToml).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/status.h"

namespace repwatch {

// Which addresses a zone answers for. kDomain zones (DBL, URIBL) list names, not
// IPs; repwatch does not query IPs against them.
enum class ZoneFamily { kIpv4, kIpv6, kBoth, kDomain };
std::string_view ZoneFamilyName(ZoneFamily f);  // "ipv4" | "ipv6" | "both" | "domain"
std::optional<ZoneFamily> ParseZoneFamily(std::string_view s);

// A block list reports bad IPs (a listing is a problem); an allow list reports
// good ones (a listing is a positive signal, never a problem).
enum class ZoneKind { kBlock, kAllow };

// An inclusive range of A values (host byte order), e.g. 127.0.2.2-127.0.2.24.
struct CodeRange {
  uint32_t lo = 0;
  uint32_t hi = 0;
  std::string meaning;
  bool Contains(uint32_t v) const { return v >= lo && v <= hi; }
};

struct CatalogueEntry {
  std::string zone;               // as queried; may contain "{key}" (e.g. "{key}.zen.dq.spamhaus.net")
  std::string name;               // human name, e.g. "Spamhaus ZEN"
  ZoneFamily family = ZoneFamily::kBoth;
  ZoneKind kind = ZoneKind::kBlock;
  std::vector<CodeRange> codes;   // listing codes -> meanings; empty = any 127/8 value is "listed"
  std::vector<CodeRange> errors;  // zone-specific error answers (never a listing), e.g. DBL 127.0.1.255
  std::vector<CodeRange> not_listed;  // values that mean "not listed" (quorum 127.0.0.0)
  std::string delist_url;         // may contain "{ip}"
  bool key_required = false;
  std::string dead;               // non-empty: why this zone must not be used (SORBS, AHBL, ...)
  std::string redundant;          // non-empty: why using it is pointless (CBL -> use ZEN/XBL)
};

class Catalogue {
 public:
  // Parses catalogue TOML. `origin` names the source in error messages.
  static Result<Catalogue> Parse(std::string_view toml_text, std::string_view origin);
  // The catalogue compiled into this binary.
  static const Catalogue& BuiltIn();

  // Exact, case-insensitive lookup by zone name (with "{key}" as written).
  const CatalogueEntry* Find(std::string_view zone) const;
  const std::vector<CatalogueEntry>& entries() const { return entries_; }

 private:
  std::vector<CatalogueEntry> entries_;
};

// Errors reserved for every zone: 127.255.255.0/24 (Spamhaus: typo in zone name,
// open/public resolver, too many queries ...). Returns the reason, or nullopt.
std::optional<std::string> UniversalErrorCode(uint32_t a_value);

}  // namespace repwatch
