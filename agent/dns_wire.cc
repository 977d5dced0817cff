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

Status BuildQuery(std::string_view name, uint16_t qtype, Query& out) {
  const std::string text = name.empty() ? std::string(".") : std::string(name);
  ldns_rdf* dname = ldns_dname_new_frm_str(text.c_str());
  if (dname == nullptr) return Status::Error("invalid query name \"" + text + "\"");
  std::unique_ptr<ldns_pkt, PktFree> pkt(
      ldns_pkt_query_new(dname, static_cast<ldns_rr_type>(qtype), LDNS_RR_CLASS_IN, LDNS_RD));
  if (!pkt) return Status::Error("ldns could not build a query for \"" + text + "\"");
  uint8_t* wire = nullptr;
  size_t size = 0;
  const ldns_status st = ldns_pkt2wire(&wire, pkt.get(), &size);
  std::unique_ptr<uint8_t, decltype(&std::free)> owned(wire, &std::free);
  if (st != LDNS_STATUS_OK) return Status::Error(std::string("ldns: ") + ldns_get_errorstr_by_id(st));
  if (size < kHeaderSize + 5 || size > kMaxQuerySize) return Status::Error("query for \"" + text + "\" too long");
  std::memcpy(out.wire.data(), wire, size);
  out.size = static_cast<uint16_t>(size);
  SetId(out.wire.data(), 0);
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
  if (len < kHeaderSize) return false;
  size_t pos = kHeaderSize;
  for (unsigned i = Get16(reply + 4); i > 0; --i) {
    if (!SkipName(reply, len, pos) || len - pos < 4) return false;
    pos += 4;
  }
  const unsigned records = Get16(reply + 6) + Get16(reply + 8) + Get16(reply + 10);
  for (unsigned i = 0; i < records; ++i) {
    if (!SkipName(reply, len, pos) || len - pos < 10) return false;
    const size_t rdlength = Get16(reply + pos + 8);
    pos += 10;
    if (len - pos < rdlength) return false;
    pos += rdlength;
  }
  return true;
}

bool ParseAnswers(const uint8_t* reply, size_t len, std::vector<DnsRecord>& out) {
  ldns_pkt* raw = nullptr;
  if (ldns_wire2pkt(&raw, reply, len) != LDNS_STATUS_OK) return false;
  std::unique_ptr<ldns_pkt, PktFree> pkt(raw);
  const ldns_rr_list* answers = ldns_pkt_answer(pkt.get());
  const size_t count = answers ? ldns_rr_list_rr_count(answers) : 0;
  const size_t start = out.size();
  for (size_t i = 0; i < count; ++i) {
    const ldns_rr* rr = ldns_rr_list_rr(answers, i);
    const auto type = static_cast<uint16_t>(ldns_rr_get_type(rr));
    if (!Kept(type) || ldns_rr_get_class(rr) != LDNS_RR_CLASS_IN) continue;
    DnsRecord& rec = out.emplace_back();
    rec.type = type;
    rec.ttl = ldns_rr_ttl(rr);
    rec.owner = RdfName(ldns_rr_owner(rr));
    if (!FillRdata(rr, rec)) {
      out.resize(start);
      return false;
    }
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
