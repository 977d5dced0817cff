#include "agent/resolver.h"

namespace repwatch {

std::string_view DnsStatusName(DnsStatus s) {
  switch (s) {
    case DnsStatus::kNoError: return "noerror";
    case DnsStatus::kNxDomain: return "nxdomain";
    case DnsStatus::kServFail: return "servfail";
    case DnsStatus::kRefused: return "refused";
    case DnsStatus::kOtherRcode: return "rcode";
    case DnsStatus::kTimeout: return "timeout";
    case DnsStatus::kNetworkError: return "network";
  }
  return "unknown";
}

}  // namespace repwatch
