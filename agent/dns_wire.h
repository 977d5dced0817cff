// DNS wire helpers for DnsClient (internal to agent/dns_client.cc and its tests).
//
// Queries are built once per question (a retry only patches the ID): ldns parses
// and encodes the name, and the header is the one ldns_pkt2wire writes for an RD
// query, made once (a full ldns_pkt2wire per query costs ~8 us).
// Replies are untrusted: every function here bounds-checks each length it reads
// and reports failure instead of reading past `len`.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "agent/resolver.h"
#include "agent/status.h"

namespace repwatch::dnswire {

inline constexpr size_t kHeaderSize = 12;
// Header + longest name (255) + type + class.
inline constexpr size_t kMaxQuerySize = kHeaderSize + 255 + 4;

// A query packet: RD set, one question, class IN, ID 0 until SetId().
struct Query {
  std::array<uint8_t, kMaxQuerySize> wire{};
  uint16_t size = 0;
};

// Builds the query for `name` (lowercase, with or without trailing dot; "" or "."
// is the root); byte for byte what ldns_pkt_query_new + ldns_pkt2wire give. Fails
// on names ldns rejects (label > 63 bytes, name > 255, ...).
Status BuildQuery(std::string_view name, uint16_t qtype, Query& out);

inline void SetId(uint8_t* wire, uint16_t id) {
  wire[0] = static_cast<uint8_t>(id >> 8);
  wire[1] = static_cast<uint8_t>(id);
}
// Callers must have checked len >= kHeaderSize.
inline uint16_t GetId(const uint8_t* wire) { return static_cast<uint16_t>(wire[0] << 8 | wire[1]); }
inline bool IsResponse(const uint8_t* wire) { return (wire[2] & 0x80) != 0; }
inline bool IsTruncated(const uint8_t* wire) { return (wire[2] & 0x02) != 0; }
inline int Rcode(const uint8_t* wire) { return wire[3] & 0x0f; }

// True when `reply` holds exactly one question equal to the one in `query`
// (name compared case-insensitively, type and class exactly).
bool QuestionMatches(const uint8_t* reply, size_t len, const Query& query);

// Walks every section of `reply` checking each count, name and RDLENGTH against
// `len`. Compression pointers must point strictly backwards (so no loops), as
// RFC 1035 4.1.4 intends.
bool WellFormed(const uint8_t* reply, size_t len);

// Checks `reply` as WellFormed does, then parses each answer RR of a kept type
// (A, AAAA, CNAME, PTR, MX, NS, TXT; class IN) with ldns and appends it to `out`;
// other RRs are skipped. False if the packet is not well formed, ldns rejects an
// answer RR, or its RDATA has the wrong shape for its type; `out` is then unchanged.
bool ParseAnswers(const uint8_t* reply, size_t len, std::vector<DnsRecord>& out);

// "example.com" from uncompressed wire labels; lowercase, no trailing dot, the root
// as "". Bytes that are not printable ASCII, and '.' or '\\' inside a label, are
// escaped as \DDD (decimal), as in zone files.
std::string NameFromWire(const uint8_t* labels, size_t len);

}  // namespace repwatch::dnswire
