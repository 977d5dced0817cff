// Runs the RFC 7208 SPF test suite (domain-facts §2.2) against SpfEvaluator.
//
// Input: the suite as JSON (yaml2json.py output), from a file or "-" for stdin. Each
// scenario's zonedata becomes a fake Resolver that follows the pyspf driver's conventions:
//  - an SPF entry is also served as TXT unless the name has an explicit TXT entry;
//    "TXT: NONE" only means "no TXT record";
//  - a bare TIMEOUT item makes queries for types not listed before it time out, and a
//    value of TIMEOUT times out queries of that type;
//  - names not in the zone data are NXDOMAIN, except that names starting "error." time out;
//  - names are matched case-insensitively, empty labels dropped and a label over 63
//    characters times out (pyspf emulates pydns so).
// CNAMEs are served twice over: first as the CNAME record alone, which is what unbound's
// local-data and RFC 2317 reverse delegations do and makes the evaluator re-ask at the target
// (FollowCnames) - the harder path, and the one that must detect a loop across queries
// (ptr-cname-loop); then with the target's records of the asked type added, one level deep,
// as the pyspf driver does and most recursive resolvers do. All 203 tests must pass both ways.
//
// Prints every failure (scenario, test, expected, got, reason) and "N/203 passed" per way;
// exits non-zero unless every test passed both ways. -v also prints each passing test's reason.
#include <arpa/inet.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <chrono>
#include <deque>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "checks/spf_eval.h"

namespace {

using repwatch::DnsRecord;
using repwatch::DnsResponse;
using repwatch::DnsStatus;
using repwatch::Resolver;
namespace rrtype = repwatch::rrtype;
using Json = nlohmann::ordered_json;

constexpr int kExpectedTests = 203;

std::string Lower(std::string s) {
  for (char& c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return s;
}

// Lowercase, no trailing dot, empty labels dropped (as the pyspf driver does).
std::string NormalName(const std::string& name) {
  std::string out;
  size_t start = 0;
  while (start <= name.size()) {
    size_t dot = name.find('.', start);
    if (dot == std::string::npos) dot = name.size();
    if (dot > start) {
      if (!out.empty()) out += '.';
      out += name.substr(start, dot - start);
    }
    start = dot + 1;
  }
  return Lower(out);
}

struct ZoneItem {
  bool timeout_marker = false;  // the bare word TIMEOUT
  bool timeout_value = false;   // e.g. "A: TIMEOUT"
  uint16_t type = 0;            // 0 for types we never serve (SPF)
  DnsRecord record;
};

uint16_t TypeCode(const std::string& t) {
  if (t == "A") return rrtype::kA;
  if (t == "AAAA") return rrtype::kAaaa;
  if (t == "MX") return rrtype::kMx;
  if (t == "PTR") return rrtype::kPtr;
  if (t == "TXT") return rrtype::kTxt;
  if (t == "CNAME") return rrtype::kCname;
  return 0;
}

ZoneItem MakeItem(const std::string& owner, const std::string& type, const Json& value) {
  ZoneItem item;
  item.type = TypeCode(type);
  item.record.type = item.type;
  item.record.ttl = 300;
  item.record.owner = owner;
  if (value.is_string() && value.get<std::string>() == "TIMEOUT") {
    item.timeout_value = true;
    return item;
  }
  switch (item.type) {
    case rrtype::kA:
      if (inet_pton(AF_INET, value.get<std::string>().c_str(), item.record.addr.data()) != 1)
        throw std::runtime_error("bad A value at " + owner);
      break;
    case rrtype::kAaaa:
      if (inet_pton(AF_INET6, value.get<std::string>().c_str(), item.record.addr.data()) != 1)
        throw std::runtime_error("bad AAAA value at " + owner);
      break;
    case rrtype::kMx:
      item.record.preference = value.at(0).get<uint16_t>();
      item.record.target = NormalName(value.at(1).get<std::string>());
      break;
    case rrtype::kPtr:
    case rrtype::kCname: item.record.target = NormalName(value.get<std::string>()); break;
    case rrtype::kTxt:
      if (value.is_string())
        item.record.strings = {value.get<std::string>()};
      else
        for (const Json& s : value) item.record.strings.push_back(s.get<std::string>());
      break;
    default: break;
  }
  return item;
}

using Zone = std::map<std::string, std::vector<ZoneItem>>;

// The pyspf driver's loadZone/getrdata: SPF entries are copied to TXT (appended after the
// name's other items) unless the name has a TXT entry of its own; "TXT: NONE" adds nothing.
Zone LoadZone(const Json& zonedata) {
  Zone zone;
  for (const auto& [raw_name, items] : zonedata.items()) {
    const std::string name = NormalName(raw_name);
    std::vector<ZoneItem>& out = zone[name];
    std::vector<ZoneItem> generated;
    bool generate = true;
    for (const Json& item : items) {
      if (item.is_string()) {
        ZoneItem marker;
        marker.timeout_marker = item.get<std::string>() == "TIMEOUT";
        if (!marker.timeout_marker) throw std::runtime_error("unknown zone item at " + name);
        out.push_back(marker);
        continue;
      }
      for (const auto& [type, value] : item.items()) {
        const bool none = value.is_string() && value.get<std::string>() == "NONE";
        if (type == "TXT") generate = false;
        if (type == "SPF" && !none) generated.push_back(MakeItem(name, "TXT", value));
        if (!none) out.push_back(MakeItem(name, type, value));
      }
    }
    if (generate) out.insert(out.end(), generated.begin(), generated.end());
  }
  return zone;
}

class ZoneResolver final : public Resolver {
 public:
  ZoneResolver(const Zone& zone, bool cname_with_target) : zone_(zone), cname_with_target_(cname_with_target) {}

  void Query(std::string name, uint16_t qtype, Callback callback) override {
    queue_.push_back({std::move(name), qtype, std::move(callback)});
  }
  size_t Pending() const override { return queue_.size(); }
  void Poll(std::chrono::milliseconds) override {
    auto batch = std::move(queue_);
    queue_.clear();
    for (auto& q : batch) q.callback(Answer(q.name, q.qtype, true));
  }

 private:
  static DnsResponse Status(DnsStatus s) {
    DnsResponse r;
    r.status = s;
    r.rcode = s == DnsStatus::kNxDomain ? 3 : -1;
    r.detail = s == DnsStatus::kTimeout ? "timeout (test zone)" : "";
    return r;
  }

  DnsResponse Answer(const std::string& asked, uint16_t qtype, bool follow) const {
    const std::string name = NormalName(asked);
    size_t start = 0;
    while (start < name.size()) {
      const size_t dot = std::min(name.find('.', start), name.size());
      if (dot - start > 63) return Status(DnsStatus::kTimeout);
      start = dot + 1;
    }
    auto it = zone_.find(name);
    if (it == zone_.end()) return Status(name.starts_with("error.") ? DnsStatus::kTimeout : DnsStatus::kNxDomain);
    DnsResponse r = Status(DnsStatus::kNoError);
    r.rcode = 0;
    bool seen_type = false;
    for (const ZoneItem& item : it->second) {
      if (item.timeout_marker) {
        if (!seen_type) return Status(DnsStatus::kTimeout);
        break;
      }
      if (item.type == qtype) {
        seen_type = true;
        if (item.timeout_value) return Status(DnsStatus::kTimeout);
        r.answers.push_back(item.record);
      } else if (item.type == rrtype::kCname && !item.timeout_value) {
        r.answers.push_back(item.record);
        if (follow && cname_with_target_) {
          DnsResponse more = Answer(item.record.target, qtype, false);
          if (more.status == DnsStatus::kNoError)
            for (DnsRecord& rec : more.answers) r.answers.push_back(std::move(rec));
        }
      }
    }
    return r;
  }

  struct Question {
    std::string name;
    uint16_t qtype;
    Callback callback;
  };
  const Zone& zone_;
  bool cname_with_target_;
  std::deque<Question> queue_;
};

std::string Expected(const Json& result) {
  if (result.is_string()) return result.get<std::string>();
  std::vector<std::string> any;
  for (const Json& r : result) any.push_back(r.get<std::string>());
  return fmt::format("one of {}", fmt::join(any, "|"));
}

bool Accepts(const Json& result, std::string_view got) {
  if (result.is_string()) return result.get<std::string>() == got;
  for (const Json& r : result)
    if (r.get<std::string>() == got) return true;
  return false;
}

// Runs every test with one way of serving CNAMEs; returns the number passed.
int RunSuite(const Json& suite, bool cname_with_target, bool verbose, int* total) {
  const std::string way = cname_with_target ? "CNAME with target records" : "CNAME alone";
  int passed = 0;
  *total = 0;
  for (const Json& scenario : suite) {
    const std::string title = scenario.value("description", "?");
    const Zone zone = LoadZone(scenario.at("zonedata"));
    for (const auto& [name, test] : scenario.at("tests").items()) {
      ++*total;
      const auto fail = [&](const std::string& what) {
        std::cout << fmt::format("FAIL [{}] {} / {}: {}\n", way, title, name, what);
      };
      auto ip = repwatch::IpAddress::Parse(test.at("host").get<std::string>());
      if (!ip.ok()) {
        fail(ip.error());
        continue;
      }
      repwatch::SpfRequest request;
      request.ip = ip.value();
      request.helo = test.at("helo").get<std::string>();
      request.sender = test.at("mailfrom").get<std::string>();
      const size_t at = request.sender.rfind('@');
      request.domain = at == std::string::npos ? request.helo : request.sender.substr(at + 1);

      ZoneResolver resolver(zone, cname_with_target);
      repwatch::SpfEvaluator evaluator(resolver);
      std::optional<repwatch::SpfOutcome> outcome;
      bool inside = true, synchronous = false;
      evaluator.CheckHost(request, [&](repwatch::SpfOutcome o) {
        synchronous = inside;
        outcome = std::move(o);
      });
      inside = false;
      for (int polls = 0; !outcome && resolver.Pending() > 0 && polls < 1000; ++polls)
        resolver.Poll(std::chrono::milliseconds(0));
      if (!outcome) {
        fail("evaluation never finished (no questions pending)");
        continue;
      }
      if (synchronous) {
        fail("done() ran inside CheckHost()");
        continue;
      }
      const std::string got(repwatch::SpfResultName(outcome->result));
      if (!Accepts(test.at("result"), got)) {
        fail(fmt::format("expected {}, got {} ({})", Expected(test.at("result")), got, outcome->reason));
        continue;
      }
      if (test.contains("explanation")) {
        // The pyspf driver sets the default explanation to "DEFAULT": it stands for "no exp= text".
        const std::string want = test.at("explanation").get<std::string>();
        const std::string have = outcome->explanation.empty() ? "DEFAULT" : outcome->explanation;
        if (want != have) {
          fail(fmt::format("{} as expected, but explanation \"{}\", expected \"{}\" ({})", got, have, want,
                           outcome->reason));
          continue;
        }
      }
      ++passed;
      if (verbose)
        std::cout << fmt::format("ok   [{}] {} / {}: {} ({}){}\n", way, title, name, got, outcome->reason,
                                 outcome->explanation.empty() ? "" : " exp=\"" + outcome->explanation + "\"");
    }
  }
  std::cout << fmt::format("[{}] {}/{} passed\n", way, passed, *total);
  return passed;
}

}  // namespace

int main(int argc, char** argv) {
  const bool verbose = argc == 3 && std::string(argv[1]) == "-v";
  if (argc != 2 && !verbose) {
    std::cerr << "usage: spf_suite [-v] <rfc7208-tests.json | ->   (JSON from tests/spf_suite/yaml2json.py)\n";
    return 2;
  }
  const std::string input = argv[argc - 1];
  Json suite;
  try {
    if (input == "-") {
      suite = Json::parse(std::cin);
    } else {
      std::ifstream in(input);
      suite = Json::parse(in);
    }
  } catch (const std::exception& e) {  // only at the edge: a bad input file ends the run
    std::cerr << "cannot read the suite: " << e.what() << "\n";
    return 2;
  }
  int ok = 0;
  for (bool with_target : {false, true}) {
    int total = 0;
    int passed = 0;
    try {
      passed = RunSuite(suite, with_target, verbose, &total);
    } catch (const std::exception& e) {
      std::cerr << "bad suite data: " << e.what() << "\n";
      return 2;
    }
    if (total != kExpectedTests)
      std::cout << fmt::format("expected {} tests in the suite, found {}\n", kExpectedTests, total);
    if (passed == total && total == kExpectedTests) ++ok;
  }
  return ok == 2 ? 0 : 1;
}
