#include "checks/spf.h"

#include <memory>

namespace repwatch {

void SpfCheck::CheckIp(const Target& target, IpReport* report, Done done) {
  // An address whose range sends for no domain gets an empty list: checked, nothing to say.
  report->spf.emplace();
  if (!target.range || target.range->spf_domains.empty()) return done();
  const auto& domains = target.range->spf_domains;
  report->spf->resize(domains.size());
  auto remaining = std::make_shared<size_t>(domains.size());
  auto shared_done = std::make_shared<Done>(std::move(done));
  // %{h} is the configured HELO; a "{ptr}" template is not known here, so the domain stands in.
  const std::string& helo = target.range->helo;
  for (size_t i = 0; i < domains.size(); ++i) {
    SpfRequest request;
    request.ip = target.ip;
    request.domain = domains[i];
    request.sender = "postmaster@" + domains[i];
    request.helo = helo.empty() || helo.find("{ptr}") != std::string::npos ? domains[i] : helo;
    request.timestamp = UnixSeconds(env_.clock.WallNow());
    evaluator_.CheckHost(request, [report, i, remaining, shared_done, domain = domains[i]](SpfOutcome outcome) {
      SpfDomainResult& r = (*report->spf)[i];
      r.domain = domain;
      r.result = std::string(SpfResultName(outcome.result));
      r.reason = std::move(outcome.reason);
      r.permissive = std::move(outcome.permissive);
      if (--*remaining == 0) (*shared_done)();
    });
  }
}

}  // namespace repwatch
