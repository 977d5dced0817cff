#include "agent/dns_stats.h"

namespace repwatch {

std::string_view DnsFailureName(DnsFailure f) {
  switch (f) {
    case DnsFailure::kTimeout: return "timeout";
    case DnsFailure::kServFail: return "servfail";
    case DnsFailure::kRefused: return "refused";
    case DnsFailure::kOtherRcode: return "rcode";
    case DnsFailure::kNetwork: return "network";
    case DnsFailure::kCount: break;
  }
  return "unknown";
}

std::string_view DnsDropName(DnsDrop d) {
  switch (d) {
    case DnsDrop::kShort: return "short";
    case DnsDrop::kUnknownId: return "unknown_id";
    case DnsDrop::kNotResponse: return "not_response";
    case DnsDrop::kQuestionMismatch: return "question_mismatch";
    case DnsDrop::kMalformed: return "malformed";
    case DnsDrop::kCount: break;
  }
  return "unknown";
}

}  // namespace repwatch
