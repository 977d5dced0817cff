#include "agent/dns_wire.h"

#include <ldns/ldns.h>

#include <cstdlib>
#include <cstring>
#include <memory>

namespace repwatch::dnswire {
namespace {

uint16_t Get16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }

uint8_t Lower(uint8_t c) { return (c >= 'A' && c <= 'Z') ? static_cast<uint8_t>(c + 32) : c; }

// Moves `pos` past the (possibly compressed) name there. Every pointer must point
// before the start of the segment it was reached from, so each jump goes strictly
// backwards and the walk ends.
bool SkipName(const uint8_t* p, size_t len, size_t& pos) {
  size_t at = pos, segment_start = pos, total = 0, end = 0;
  bool jumped = false;
  while (at < len) {
    const uint8_t b = p[at];
    if (b == 0) {
      pos = jumped ? end : at + 1;
      return true;
    }
    if ((b & 0xc0) == 0xc0) {
      if (at + 1 >= len) return false;
      const size_t target = static_cast<size_t>(b & 0x3f) << 8 | p[at + 1];
      if (target >= segment_start) return false;
      if (!jumped) end = at + 2;
      jumped = true;
      at = segment_start = target;
      continue;
    }
    if (b & 0xc0) return false;  // 0x40/0x80: obsolete label types
    total += b + 1u;
    if (total > 255) return false;
    at += b + 1u;
  }
  return false;
}

struct PktFree {
  void operator()(ldns_pkt* p) const { ldns_pkt_free(p); }
};
struct RrFree {
  void operator()(ldns_rr* rr) const { ldns_rr_free(rr); }
};

// Checks every count, name and RDLENGTH against `len`; sets `answers` to the
// offset of the first answer RR.
bool Walk(const uint8_t* p, size_t len, size_t& answers) {
  if (len < kHeaderSize) return false;
  size_t pos = kHeaderSize;
  for (unsigned i = Get16(p + 4); i > 0; --i) {
    if (!SkipName(p, len, pos) || len - pos < 4) return false;
    pos += 4;
  }
  answers = pos;
  const unsigned records = Get16(p + 6) + Get16(p + 8) + Get16(p + 10);
  for (unsigned i = 0; i < records; ++i) {
    if (!SkipName(p, len, pos) || len - pos < 10) return false;
    const size_t rdlength = Get16(p + pos + 8);
    pos += 10;
    if (len - pos < rdlength) return false;
    pos += rdlength;
  }
  return true;
}

std::string RdfName(const ldns_rdf* rdf) { return NameFromWire(ldns_rdf_data(rdf), ldns_rdf_size(rdf)); }

bool IsName(const ldns_rdf* rdf) { return rdf != nullptr && ldns_rdf_get_type(rdf) == LDNS_RDF_TYPE_DNAME; }

// Fills the type-specific part of `rec` from `rr`. False when the RDATA does not
// have the shape its type requires.
bool FillRdata(const ldns_rr* rr, DnsRecord& rec) {
  const size_t n = ldns_rr_rd_count(rr);
  switch (rec.type) {
    case rrtype::kA:
    case rrtype::kAaaa: {
      const size_t want = rec.type == rrtype::kA ? 4 : 16;
      const ldns_rdf* rdf = n == 1 ? ldns_rr_rdf(rr, 0) : nullptr;
      if (rdf == nullptr || ldns_rdf_size(rdf) != want) return false;
      std::memcpy(rec.addr.data(), ldns_rdf_data(rdf), want);
      return true;
    }
    case rrtype::kCname:
    case rrtype::kPtr:
    case rrtype::kNs:
      if (n != 1 || !IsName(ldns_rr_rdf(rr, 0))) return false;
      rec.target = RdfName(ldns_rr_rdf(rr, 0));
      return true;
    case rrtype::kMx: {
      if (n != 2 || !IsName(ldns_rr_rdf(rr, 1)) || ldns_rdf_size(ldns_rr_rdf(rr, 0)) != 2) return false;
      rec.preference = Get16(ldns_rdf_data(ldns_rr_rdf(rr, 0)));
      rec.target = RdfName(ldns_rr_rdf(rr, 1));
      return true;
    }
    case rrtype::kTxt:
      for (size_t i = 0; i < n; ++i) {
        const ldns_rdf* rdf = ldns_rr_rdf(rr, i);
        const size_t size = ldns_rdf_size(rdf);
        const uint8_t* d = ldns_rdf_data(rdf);
        if (size < 1 || d[0] != size - 1) return false;
        rec.strings.emplace_back(reinterpret_cast<const char*>(d + 1), size - 1);
      }
      return true;
    default:
      return false;
  }
}

bool Kept(uint16_t type) {
  switch (type) {
    case rrtype::kA: case rrtype::kAaaa: case rrtype::kCname: case rrtype::kPtr:
    case rrtype::kNs: case rrtype::kMx: case rrtype::kTxt:
      return true;
    default:
      return false;
  }
}

}  // namespace

// The header ldns writes for a one-question RD query (ID 0). ldns_pkt2wire costs
// ~8 us per packet (its name compression walks an rbtree per suffix), so it runs
// once here; each query then splices in the name ldns parsed (~0.1 us).
static const std::array<uint8_t, kHeaderSize>& QueryHeader() {
  static const std::array<uint8_t, kHeaderSize> header = [] {
    std::array<uint8_t, kHeaderSize> h{};
    std::unique_ptr<ldns_pkt, PktFree> pkt(
        ldns_pkt_query_new(ldns_dname_new_frm_str("."), LDNS_RR_TYPE_A, LDNS_RR_CLASS_IN, LDNS_RD));
    uint8_t* wire = nullptr;
    size_t size = 0;
    if (pkt && ldns_pkt2wire(&wire, pkt.get(), &size) == LDNS_STATUS_OK && size >= kHeaderSize) {
      std::memcpy(h.data(), wire, kHeaderSize);
    }
    std::free(wire);
    h[0] = h[1] = 0;
    return h;
  }();
  return header;
}

Status BuildQuery(std::string_view name, uint16_t qtype, Query& out) {
  // No valid name is this long even fully escaped; the buffer spares a heap copy.
  char text[1024];
  if (name.size() >= sizeof(text)) return Status::Error("query name too long");
  name.copy(text, name.size());
  text[name.size()] = '\0';
  if (name.empty()) text[0] = '.', text[1] = '\0';
  ldns_rdf* dname = ldns_dname_new_frm_str(text);
  if (dname == nullptr) return Status::Error("invalid query name \"" + std::string(name) + "\"");
  const size_t size = ldns_rdf_size(dname);
  if (size < 1 || size > 255) {
    ldns_rdf_deep_free(dname);
    return Status::Error("invalid query name \"" + std::string(name) + "\"");
  }
  uint8_t* w = out.wire.data();
  std::memcpy(w, QueryHeader().data(), kHeaderSize);
  std::memcpy(w + kHeaderSize, ldns_rdf_data(dname), size);
  ldns_rdf_deep_free(dname);
  uint8_t* tail = w + kHeaderSize + size;
  tail[0] = static_cast<uint8_t>(qtype >> 8);
  tail[1] = static_cast<uint8_t>(qtype);
  tail[2] = 0;
  tail[3] = LDNS_RR_CLASS_IN;
  out.size = static_cast<uint16_t>(kHeaderSize + size + 4);
  return Status::Ok();
}

bool QuestionMatches(const uint8_t* reply, size_t len, const Query& query) {
  if (len < query.size || Get16(reply + 4) != 1) return false;
  const uint8_t* q = query.wire.data();
  size_t at = kHeaderSize;
  // Our name has no pointers, so an equal name sits at the same offsets; a
  // compressed or longer reply name fails on the first length byte that differs.
  while (q[at] != 0) {
    const uint8_t label = q[at];
    if (reply[at] != label) return false;
    for (size_t i = at + 1; i <= at + label; ++i) {
      if (Lower(reply[i]) != q[i]) return false;
    }
    at += label + 1u;
  }
  return reply[at] == 0 && std::memcmp(reply + at + 1, q + at + 1, 4) == 0;
}

bool WellFormed(const uint8_t* reply, size_t len) {
  size_t answers = 0;
  return Walk(reply, len, answers);
}

// ldns parses each answer RR of a kept type (ldns_wire2rr); the other sections
// were only bounds-checked by Walk. Parsing the whole packet with ldns_wire2pkt
// cost several times more (an NXDOMAIN's SOA alone is eight allocations).
bool ParseAnswers(const uint8_t* reply, size_t len, std::vector<DnsRecord>& out) {
  size_t pos = 0;
  if (!Walk(reply, len, pos)) return false;
  const size_t start = out.size();
  for (unsigned i = Get16(reply + 6); i > 0; --i) {
    size_t fixed = pos;
    SkipName(reply, len, fixed);  // cannot fail: Walk passed
    const uint16_t type = Get16(reply + fixed);
    const bool keep = Kept(type) && Get16(reply + fixed + 2) == LDNS_RR_CLASS_IN;
    const size_t next = fixed + 10 + Get16(reply + fixed + 8);
    if (keep) {
      ldns_rr* raw = nullptr;
      size_t at = pos;
      if (ldns_wire2rr(&raw, reply, len, &at, LDNS_SECTION_ANSWER) != LDNS_STATUS_OK) {
        out.resize(start);
        return false;
      }
      std::unique_ptr<ldns_rr, RrFree> rr(raw);
      DnsRecord& rec = out.emplace_back();
      rec.type = type;
      rec.ttl = ldns_rr_ttl(rr.get());
      rec.owner = RdfName(ldns_rr_owner(rr.get()));
      if (static_cast<uint16_t>(ldns_rr_get_type(rr.get())) != type || !FillRdata(rr.get(), rec)) {
        out.resize(start);
        return false;
      }
    }
    pos = next;
  }
  return true;
}

std::string NameFromWire(const uint8_t* labels, size_t len) {
  std::string name;
  size_t at = 0;
  while (at < len && labels[at] != 0 && labels[at] < 64 && at + 1 + labels[at] <= len) {
    if (!name.empty()) name.push_back('.');
    for (size_t i = at + 1; i <= at + labels[at]; ++i) {
      const uint8_t c = Lower(labels[i]);
      if (c > 0x20 && c < 0x7f && c != '.' && c != '\\') {
        name.push_back(static_cast<char>(c));
      } else {
        const char esc[4] = {'\\', static_cast<char>('0' + c / 100), static_cast<char>('0' + c / 10 % 10),
                             static_cast<char>('0' + c % 10)};
        name.append(esc, 4);
      }
    }
    at += labels[at] + 1u;
  }
  return name;
}

}  // namespace repwatch::dnswire
