#include "agent/catalogue.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <set>

#include <toml++/toml.h>

#include "agent/text.h"
#include "build_info.h"

namespace repwatch {
namespace {

// Strict dotted quad: four decimal octets, no leading zeros, nothing else.
std::optional<uint32_t> ParseQuad(std::string_view s) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) {
    if (i > 0) {
      if (s.empty() || s[0] != '.') return std::nullopt;
      s.remove_prefix(1);
    }
    unsigned octet = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), octet);
    const size_t len = static_cast<size_t>(end - s.data());
    if (ec != std::errc() || octet > 255 || (len > 1 && s[0] == '0')) return std::nullopt;
    v = v << 8 | octet;
    s.remove_prefix(len);
  }
  if (!s.empty()) return std::nullopt;
  return v;
}

std::optional<CodeRange> ParseCodeRange(std::string_view text, std::string meaning) {
  const size_t dash = text.find('-');
  auto lo = ParseQuad(text.substr(0, dash));
  auto hi = dash == std::string_view::npos ? lo : ParseQuad(text.substr(dash + 1));
  if (!lo || !hi || *lo > *hi || (*lo >> 24) != 127 || (*hi >> 24) != 127) return std::nullopt;
  return CodeRange{*lo, *hi, std::move(meaning)};
}

// Collects "origin:line:col: message" problems while walking the TOML tree.
class Reader {
 public:
  explicit Reader(std::string_view origin) : origin_(origin) {}

  void Error(const toml::source_region& at, const std::string& message) {
    errors_ += origin_ + ":" + std::to_string(at.begin.line) + ":" + std::to_string(at.begin.column) +
               ": " + message + "\n";
  }
  bool failed() const { return !errors_.empty(); }
  std::string errors() const { return errors_.substr(0, errors_.size() - 1); }

  std::string String(const toml::table& t, std::string_view key, std::string_view where, bool required) {
    const toml::node* n = t.get(key);
    if (!n) {
      if (required) Error(t.source(), std::string(where) + ": missing '" + std::string(key) + "'");
      return {};
    }
    if (!n->is_string()) {
      Error(n->source(), std::string(where) + ": '" + std::string(key) + "' must be a string");
      return {};
    }
    return n->as_string()->get();
  }

  std::vector<CodeRange> Codes(const toml::table& t, std::string_view key, std::string_view where);
  std::vector<CodeRange> NotListed(const toml::table& t, std::string_view where);
  CatalogueEntry Entry(const toml::table& t, size_t index);

 private:
  std::string origin_;
  std::string errors_;
};

std::vector<CodeRange> Reader::Codes(const toml::table& t, std::string_view key, std::string_view where) {
  std::vector<CodeRange> out;
  const toml::node* n = t.get(key);
  if (!n) return out;
  const toml::table* codes = n->as_table();
  if (!codes) {
    Error(n->source(), std::string(where) + ": '" + std::string(key) + "' must be a table of \"code\" = \"meaning\"");
    return out;
  }
  for (const auto& [k, v] : *codes) {
    auto range = v.is_string() ? ParseCodeRange(k.str(), v.as_string()->get()) : std::nullopt;
    if (!range) {
      Error(k.source(), std::string(where) + ": bad " + std::string(key) + " entry \"" + std::string(k.str()) +
                            "\" (want a string meaning for \"127.a.b.c\" or \"127.a.b.c-127.x.y.z\")");
      continue;
    }
    for (const CodeRange& other : out)
      if (range->lo <= other.hi && other.lo <= range->hi)
        Error(k.source(), std::string(where) + ": " + std::string(key) + " \"" + std::string(k.str()) + "\" overlaps another");
    out.push_back(*range);
  }
  std::sort(out.begin(), out.end(), [](const CodeRange& a, const CodeRange& b) { return a.lo < b.lo; });
  return out;
}

std::vector<CodeRange> Reader::NotListed(const toml::table& t, std::string_view where) {
  std::vector<CodeRange> out;
  const toml::node* n = t.get("not_listed");
  if (!n) return out;
  const toml::array* arr = n->as_array();
  if (!arr) {
    Error(n->source(), std::string(where) + ": 'not_listed' must be an array of codes");
    return out;
  }
  for (const toml::node& v : *arr) {
    auto range = v.is_string() ? ParseCodeRange(v.as_string()->get(), "not listed") : std::nullopt;
    if (range) out.push_back(*range);
    else Error(v.source(), std::string(where) + ": bad not_listed code (want \"127.a.b.c\" or a range)");
  }
  return out;
}

const std::set<std::string, std::less<>> kEntryKeys = {
    "zone", "name", "family", "kind", "codes", "errors", "not_listed",
    "delist_url", "key_required", "dead", "redundant", "note"};

CatalogueEntry Reader::Entry(const toml::table& t, size_t index) {
  std::string where = "zone[" + std::to_string(index) + "]";
  for (const auto& [k, v] : t)
    if (!kEntryKeys.count(k.str())) Error(k.source(), where + ": unknown key '" + std::string(k.str()) + "'");
  CatalogueEntry e;
  e.zone = AsciiLower(String(t, "zone", where, true));
  if (!e.zone.empty()) where = "zone \"" + e.zone + "\"";
  if (auto problem = ZoneNameProblem(e.zone); problem && !e.zone.empty())
    Error(t.get("zone")->source(), where + ": " + *problem);
  e.name = String(t, "name", where, true);
  const std::string family = String(t, "family", where, true);
  if (auto f = ParseZoneFamily(family)) e.family = *f;
  else if (!family.empty()) Error(t.get("family")->source(), where + ": family must be ipv4, ipv6, both or domain");
  const std::string kind = String(t, "kind", where, false);
  if (kind == "allow") e.kind = ZoneKind::kAllow;
  else if (!kind.empty() && kind != "block") Error(t.get("kind")->source(), where + ": kind must be block or allow");
  e.codes = Codes(t, "codes", where);
  e.errors = Codes(t, "errors", where);
  e.not_listed = NotListed(t, where);
  e.delist_url = String(t, "delist_url", where, false);
  e.dead = String(t, "dead", where, false);
  e.redundant = String(t, "redundant", where, false);
  e.note = String(t, "note", where, false);
  if (const toml::node* k = t.get("key_required")) {
    if (k->is_boolean()) e.key_required = k->as_boolean()->get();
    else Error(k->source(), where + ": key_required must be true or false");
  }
  return e;
}

}  // namespace

std::string_view ZoneFamilyName(ZoneFamily f) {
  switch (f) {
    case ZoneFamily::kIpv4: return "ipv4";
    case ZoneFamily::kIpv6: return "ipv6";
    case ZoneFamily::kBoth: return "both";
    case ZoneFamily::kDomain: return "domain";
  }
  return "both";
}

std::optional<ZoneFamily> ParseZoneFamily(std::string_view s) {
  for (ZoneFamily f : {ZoneFamily::kIpv4, ZoneFamily::kIpv6, ZoneFamily::kBoth, ZoneFamily::kDomain})
    if (s == ZoneFamilyName(f)) return f;
  return std::nullopt;
}

Result<Catalogue> Catalogue::Parse(std::string_view toml_text, std::string_view origin) {
  toml::table root;
  try {
    root = toml::parse(toml_text, origin);
  } catch (const toml::parse_error& e) {
    return Status::Error(std::string(origin) + ":" + std::to_string(e.source().begin.line) + ":" +
                         std::to_string(e.source().begin.column) + ": " + std::string(e.description()));
  }
  Reader r(origin);
  Catalogue cat;
  for (const auto& [k, v] : root)
    if (k.str() != "zone") r.Error(k.source(), "unknown key '" + std::string(k.str()) + "' (entries are [[zone]])");
  const toml::array* zones = root["zone"].as_array();
  if (!zones || !zones->is_array_of_tables()) {
    r.Error(root.source(), "the catalogue must be a list of [[zone]] tables");
    return Status::Error(r.errors());
  }
  std::set<std::string, std::less<>> seen;
  for (size_t i = 0; i < zones->size(); ++i) {
    const toml::table& t = *zones->get(i)->as_table();
    CatalogueEntry e = r.Entry(t, i);
    if (!e.zone.empty() && !seen.insert(e.zone).second) r.Error(t.source(), "duplicate zone \"" + e.zone + "\"");
    cat.entries_.push_back(std::move(e));
  }
  if (r.failed()) return Status::Error(r.errors());
  return cat;
}

const Catalogue& Catalogue::BuiltIn() {
  static const Catalogue* built_in = [] {
    auto parsed = Parse(build::kCatalogueToml, "configs/zones.toml (built in)");
    if (!parsed.ok()) {
      std::fprintf(stderr, "repwatch: the built-in zone catalogue does not parse (build bug):\n%s\n",
                   parsed.error().c_str());
      std::abort();
    }
    return new Catalogue(std::move(parsed).value());
  }();
  return *built_in;
}

const CatalogueEntry* Catalogue::Find(std::string_view zone) const {
  const std::string key = AsciiLower(zone);
  for (const CatalogueEntry& e : entries_)
    if (e.zone == key) return &e;
  return nullptr;
}

std::optional<std::string> UniversalErrorCode(uint32_t a_value) {
  if ((a_value >> 8) != 0x7fffff) return std::nullopt;
  switch (a_value & 0xff) {
    case 252: return "typo in the zone name";
    case 254:
      return "query via a public/open resolver or unattributable rDNS — use your own resolver or a DQS key";
    case 255: return "too many queries (rate limited)";
    default: return "error code reserved by the list";
  }
}

std::optional<std::string> ZoneNameProblem(std::string_view zone) {
  if (zone.empty()) return "empty zone name";
  if (zone.size() > 253) return "longer than 253 characters";
  if (zone.back() == '.') return "drop the trailing dot";
  int labels = 0;
  bool key_seen = false;
  size_t start = 0;
  while (start <= zone.size()) {
    const size_t dot = std::min(zone.find('.', start), zone.size());
    const std::string_view label = zone.substr(start, dot - start);
    ++labels;
    if (label.empty()) return "empty label (\"..\" or a leading dot)";
    if (label.size() > 63) return "a label is longer than 63 characters";
    if (label == "{key}") {
      if (key_seen) return "\"{key}\" appears twice";
      key_seen = true;
    } else {
      for (char c : label)
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_')
          return "bad character '" + std::string(1, c) + "' (letters, digits, '-' and '_' only)";
      if (label.front() == '-' || label.back() == '-') return "a label starts or ends with '-'";
    }
    start = dot + 1;
  }
  if (labels < 2) return "a single label is not a DNSBL zone";
  return std::nullopt;
}

}  // namespace repwatch
