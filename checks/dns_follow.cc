#include "checks/dns_follow.h"

#include <algorithm>
#include <memory>
#include <utility>

#include "agent/text.h"

namespace repwatch {
namespace {

struct Follow {
  Resolver& resolver;
  uint16_t qtype;
  std::function<void(FollowedAnswer)> done;
  FollowedAnswer result;
  std::vector<std::string> seen;  // every name asked or reached, lowercase
};

// Walks the CNAMEs inside one answer from `name`; returns the end of the chain.
// Sets `loop` when the walk meets a name already seen.
std::string WalkChain(const DnsResponse& r, std::string name, Follow& f, bool* loop) {
  for (;;) {
    auto it = std::find_if(r.answers.begin(), r.answers.end(), [&](const DnsRecord& rec) {
      return rec.type == rrtype::kCname && rec.owner == name;
    });
    if (it == r.answers.end()) return name;
    name = it->target;
    if (std::find(f.seen.begin(), f.seen.end(), name) != f.seen.end()) {
      *loop = true;
      return name;
    }
    f.seen.push_back(name);
    f.result.chain.push_back(name);
  }
}

void Fail(const std::shared_ptr<Follow>& f, std::string error) {
  f->result.error = error;
  f->result.response.status = DnsStatus::kServFail;
  f->result.response.answers.clear();
  f->result.response.detail = std::move(error);
  f->done(std::move(f->result));
}

void Ask(const std::shared_ptr<Follow>& f, std::string name) {
  ++f->result.queries;
  f->resolver.Query(name, f->qtype, [f, name](DnsResponse&& r) {
    if (r.status != DnsStatus::kNoError) {
      f->result.canonical = name;
      f->result.response = std::move(r);
      f->result.response.answers.clear();
      return f->done(std::move(f->result));
    }
    bool loop = false;
    const std::string end = WalkChain(r, name, *f, &loop);
    if (loop) return Fail(f, "CNAME loop at " + end);
    if (f->result.chain.size() > static_cast<size_t>(kMaxCnameHops))
      return Fail(f, "CNAME chain from " + f->seen.front() + " longer than " + std::to_string(kMaxCnameHops));
    std::vector<DnsRecord> records;
    for (DnsRecord& rec : r.answers)
      if (rec.type == f->qtype && rec.owner == end) records.push_back(std::move(rec));
    if (records.empty() && end != name) return Ask(f, end);  // the resolver did not chase the CNAME
    f->result.canonical = end;
    f->result.response = std::move(r);
    f->result.response.answers = std::move(records);
    f->done(std::move(f->result));
  });
}

}  // namespace

void FollowCnames(Resolver& resolver, std::string name, uint16_t qtype, std::function<void(FollowedAnswer)> done) {
  auto f = std::make_shared<Follow>(Follow{resolver, qtype, std::move(done), {}, {}});
  name = AsciiLower(name);
  f->seen.push_back(name);
  Ask(f, std::move(name));
}

}  // namespace repwatch
