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
// In zones.toml written "127.0.0.2" or "127.0.2.2-127.0.2.24"; always inside 127/8.
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
  // Listing codes -> meanings; empty = any 127/8 value is "listed". A 127/8 value
  // that matches none of codes / errors / not_listed still counts as listed (with
  // an unknown meaning): lists add codes, and missing one must not hide a listing.
  // Decoders check errors and not_listed before codes.
  std::vector<CodeRange> codes;
  std::vector<CodeRange> errors;  // zone-specific error answers (never a listing), e.g. DBL 127.0.1.255
  std::vector<CodeRange> not_listed;  // values that mean "not listed" (quorum 127.0.0.0)
  std::string delist_url;         // may contain "{ip}"
  bool key_required = false;
  std::string dead;               // non-empty: why this zone must not be used (SORBS, AHBL, ...)
  std::string redundant;          // non-empty: why using it is pointless (CBL -> use ZEN/XBL)
  std::string note;               // non-empty: an operational caveat (registration, free-use
                                  // limits) shown as a config warning when the zone is used
};

class Catalogue {
 public:
  // Parses catalogue TOML (shape documented at the top of configs/zones.toml).
  // `origin` names the source in error messages: every problem is reported, one
  // "origin:line:col: message" per line. Zones must be unique (case-insensitive).
  static Result<Catalogue> Parse(std::string_view toml_text, std::string_view origin);
  // The catalogue compiled into this binary, parsed once on first use. A parse
  // failure is a build bug: the process aborts with the errors on stderr.
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

// Why `zone` is not a usable DNS zone name (empty label, label over 63 bytes, name
// over 253 bytes, bad character, a single label, trailing dot), or nullopt if it
// is fine. A leading "{key}" label stands for a DQS-style secret and is accepted.
std::optional<std::string> ZoneNameProblem(std::string_view zone);

}  // namespace repwatch
