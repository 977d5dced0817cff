// SpfCheck: is each address authorised by the SPF policy of every domain its range
// sends for (`spf_domains`)? RFC 7208 check_host() with sender postmaster@domain;
// only `pass` is covered, `temperror` is an error, anything else is a problem with
// a reason a person can act on. Records that authorise the whole Internet are
// reported on their own (`permissive`).
//
// All SPF questions go through the cycle cache (CheckEnv::shared), so a /16 sending
// for one domain costs the domain's tree once per TTL, not once per address.
#pragma once

#include "checks/check.h"
#include "checks/spf_eval.h"

namespace repwatch {

class SpfCheck final : public Check {
 public:
  explicit SpfCheck(CheckEnv env) : env_(env), evaluator_(env.SharedResolver()) {}

  std::string_view Name() const override { return "spf"; }
  void BeginCycle(CycleReport*, Done done) override { done(); }
  void CheckIp(const Target& target, IpReport* report, Done done) override;
  // Cached trees cost nothing per address; macros naming the address (%{i}) cost
  // more, but they are rare.
  size_t ExpectedQueries(const Target&) const override { return 0; }

 private:
  CheckEnv env_;
  SpfEvaluator evaluator_;
};

}  // namespace repwatch
