#include "checks/report_json.h"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

namespace repwatch {
namespace {

// What the state store does: write the text, read it back with the non-throwing parser.
std::optional<std::vector<MxProbeResult>> MxRoundTrip(const std::vector<MxProbeResult>& results) {
  return MxFromJson(nlohmann::json::parse(MxJson(results).dump(), nullptr, false));
}

std::optional<std::vector<MxProbeResult>> MxParse(const std::string& text) {
  return MxFromJson(nlohmann::json::parse(text, nullptr, false));
}

MxProbeResult Rejected() {
  MxProbeResult m;
  m.domain = "outlook.com";
  m.host = "outlook-com.olc.protection.outlook.com";
  m.address = "52.101.68.10";
  m.stage = MxStage::kRcpt;
  m.code = 550;
  m.enhanced = "5.7.606";
  m.cls = SmtpClass::kReputationBlock;
  m.reason = "banned_ip";
  m.text = "Access denied, banned sending IP [192.0.2.7].";
  m.tls = MxTlsReport{true, "TLSv1.3", false, "*.olc.protection.outlook.com", ""};
  m.probed_at = 1'790'003'500;  // 2026-09-21T15:11:40Z
  m.reused = true;
  return m;
}

MxProbeResult Refused() {
  MxProbeResult m;
  m.domain = "gmx.net";
  m.host = "mx00.emig.gmx.net";
  m.stage = MxStage::kConnect;
  m.cls = SmtpClass::kError;
  m.error = "connection refused";
  return m;  // no address, no reply, no TLS, never probed_at
}

void CheckSameMx(const MxProbeResult& got, const MxProbeResult& want) {
  INFO("domain " << want.domain << " class " << SmtpClassName(want.cls) << " stage " << MxStageName(want.stage));
  CHECK(got.domain == want.domain);
  CHECK(got.host == want.host);
  CHECK(got.address == want.address);
  CHECK(got.stage == want.stage);
  CHECK(got.code == want.code);
  CHECK(got.enhanced == want.enhanced);
  CHECK(got.cls == want.cls);
  CHECK(got.zone == want.zone);
  CHECK(got.reason == want.reason);
  CHECK(got.text == want.text);
  CHECK(got.error == want.error);
  REQUIRE(got.tls.has_value() == want.tls.has_value());
  if (want.tls) {
    CHECK(got.tls->ok == want.tls->ok);
    CHECK(got.tls->protocol == want.tls->protocol);
    CHECK(got.tls->name_match == want.tls->name_match);
    CHECK(got.tls->peer_name == want.tls->peer_name);
    CHECK(got.tls->error == want.tls->error);
  }
  CHECK(got.probed_at == want.probed_at);
  CHECK(got.reused == want.reused);
}

TEST_CASE("MxJson: the check --json form, keys in order", "[report_json][mx]") {
  CHECK(MxJson({}).dump() == "[]");
  CHECK(MxJson({Rejected(), Refused()}).dump() ==
        R"([{"domain":"outlook.com","host":"outlook-com.olc.protection.outlook.com","address":"52.101.68.10",)"
        R"("stage":"rcpt","code":550,"enhanced":"5.7.606","class":"reputation_block","zone":"","reason":"banned_ip",)"
        R"("text":"Access denied, banned sending IP [192.0.2.7].","error":"",)"
        R"("tls":{"ok":true,"protocol":"TLSv1.3","name_match":false,"peer_name":"*.olc.protection.outlook.com","error":""},)"
        R"("probed_at":"2026-09-21T15:11:40Z","reused":true},)"
        R"({"domain":"gmx.net","host":"mx00.emig.gmx.net","address":"","stage":"connect","code":0,"enhanced":"",)"
        R"("class":"error","zone":"","reason":"","text":"","error":"connection refused","probed_at":null}])");
}

TEST_CASE("MxFromJson gives back what MxJson was given", "[report_json][mx]") {
  auto both = MxRoundTrip({Rejected(), Refused()});
  REQUIRE(both);
  REQUIRE(both->size() == 2);
  CheckSameMx((*both)[0], Rejected());
  CheckSameMx((*both)[1], Refused());

  auto empty = MxRoundTrip({});
  REQUIRE(empty);
  CHECK(empty->empty());

  // Every class and every stage, with and without TLS.
  const SmtpClass classes[] = {SmtpClass::kOk,       SmtpClass::kBlockedByList, SmtpClass::kReputationBlock,
                               SmtpClass::kRateLimit, SmtpClass::kGreylist,     SmtpClass::kPolicyFailure,
                               SmtpClass::kOther,     SmtpClass::kError};
  const MxStage stages[] = {MxStage::kConnect, MxStage::kBanner, MxStage::kEhlo,
                            MxStage::kStarttls, MxStage::kMail,  MxStage::kRcpt};
  std::vector<MxProbeResult> all;
  for (SmtpClass cls : classes)
    for (MxStage stage : stages) {
      MxProbeResult m = Rejected();
      m.domain = std::string(SmtpClassName(cls)) + "." + std::string(MxStageName(stage)) + ".example";
      m.cls = cls;
      m.stage = stage;
      m.zone = cls == SmtpClass::kBlockedByList ? "zen.spamhaus.org" : "";
      m.reused = all.size() % 2 == 0;
      if (all.size() % 3 == 0) m.tls.reset();
      else m.tls->error = "454 4.7.0 TLS not available";
      m.probed_at += static_cast<long long>(all.size());
      all.push_back(m);
    }
  REQUIRE(all.size() == 48);
  auto back = MxRoundTrip(all);
  REQUIRE(back);
  REQUIRE(back->size() == all.size());
  for (size_t i = 0; i < all.size(); ++i) CheckSameMx((*back)[i], all[i]);
}

TEST_CASE("MxFromJson: malformed input reads as nullopt", "[report_json][mx]") {
  const std::string ok = R"({"domain":"gmail.com","stage":"rcpt","class":"ok"})";
  REQUIRE(MxParse("[" + ok + "]"));
  const char* malformed[] = {
      "",                                              // not JSON at all (discarded)
      "[{",                                            // truncated
      "null",
      "{}",
      R"("gmail.com")",
      R"({"domain":"gmail.com","stage":"rcpt","class":"ok"})",  // one result, not a list
      "[1]",
      "[[]]",
      R"([{"stage":"rcpt","class":"ok"}])",                      // no domain
      R"([{"domain":"","stage":"rcpt","class":"ok"}])",          // empty domain
      R"([{"domain":7,"stage":"rcpt","class":"ok"}])",           // domain not a string
      R"([{"domain":"gmail.com","class":"ok"}])",                // no stage
      R"([{"domain":"gmail.com","stage":"data","class":"ok"}])", // not a stage
      R"([{"domain":"gmail.com","stage":"RCPT","class":"ok"}])", // names are lowercase
      R"([{"domain":"gmail.com","stage":"rcpt"}])",              // no class
      R"([{"domain":"gmail.com","stage":"rcpt","class":"blocked"}])",
      R"([{"domain":"gmail.com","stage":"rcpt","class":3}])",
  };
  for (const char* text : malformed) {
    INFO(text);
    CHECK_FALSE(MxParse(text).has_value());
  }
  // One bad entry spoils the list.
  CHECK_FALSE(MxParse("[" + ok + R"(,{"domain":"yahoo.com","stage":"rcpt","class":"nope"}])").has_value());
}

TEST_CASE("MxFromJson: optional fields of the wrong type read as absent, never throw", "[report_json][mx]") {
  auto one = [](const std::string& extra) {
    std::optional<std::vector<MxProbeResult>> r;
    const std::string text = R"([{"domain":"gmail.com","stage":"rcpt","class":"ok",)" + extra + "}]";
    INFO(text);
    REQUIRE_NOTHROW(r = MxParse(text));
    REQUIRE(r);
    REQUIRE(r->size() == 1);
    return r->front();
  };
  CHECK(one(R"("host":5)").host.empty());
  CHECK(one(R"("code":"550")").code == 0);
  CHECK(one(R"("probed_at":"yesterday")").probed_at == 0);
  CHECK(one(R"("probed_at":1790003500)").probed_at == 0);  // a string in RFC 3339, not a number
  CHECK_FALSE(one(R"("tls":"TLSv1.3")").tls.has_value());
  const MxProbeResult bad_tls = one(R"("tls":{"ok":"yes","name_match":1,"protocol":"TLSv1.3"})");
  REQUIRE(bad_tls.tls);
  CHECK_FALSE(bad_tls.tls->ok);
  CHECK_FALSE(bad_tls.tls->name_match);
  CHECK(bad_tls.tls->protocol == "TLSv1.3");
  CHECK_FALSE(one(R"("reused":"true")").reused);
  CHECK(one(R"("reused":true)").reused);
}

TEST_CASE("FcrdnsFromJson: booleans of the wrong type read as their default, never throw", "[report_json]") {
  std::optional<FcrdnsReport> r;
  REQUIRE_NOTHROW(r = FcrdnsFromJson(nlohmann::json::parse(
                      R"({"result":"pass","ptr":["mail.acme.example"],"generic":"no","expected_ptr":{"pattern":"*.acme.example","ok":0}})",
                      nullptr, false)));
  REQUIRE(r);
  CHECK(r->result == FcrdnsResult::kPass);
  CHECK(r->ptr == std::vector<std::string>{"mail.acme.example"});
  CHECK_FALSE(r->generic);
  CHECK(r->expected_ptr == "*.acme.example");
  CHECK(r->expected_ptr_ok);
}

}  // namespace
}  // namespace repwatch
