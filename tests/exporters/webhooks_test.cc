#include "exporters/webhooks.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include <catch2/catch.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <prometheus/text_serializer.h>

#include "agent/state_store.h"
#include "exporters/http_server.h"
#include "exporters/metrics.h"

namespace repwatch {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Json = nlohmann::json;

// The published Standard Webhooks test vector (domain-facts §7).
constexpr const char* kVectorSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
constexpr const char* kVectorId = "msg_p5jXN8AQM9LWM0D4loKWxJek";
constexpr long long kVectorTimestamp = 1614265330;
constexpr const char* kVectorBody = R"({"test": 2432232314})";
constexpr const char* kVectorSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

// ---- An independent verifier: our own base64 decoder and OpenSSL's EVP_Q_mac ----

std::string TestBase64Decode(std::string_view in) {
  static const std::string kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  unsigned bits = 0;
  int nbits = 0;
  for (char c : in) {
    if (c == '=') break;
    const size_t v = kAlphabet.find(c);
    if (v == std::string::npos) return "";
    bits = (bits << 6) | static_cast<unsigned>(v);
    nbits += 6;
    if (nbits >= 8) {
      nbits -= 8;
      out += static_cast<char>((bits >> nbits) & 0xff);
    }
  }
  return out;
}

// Accepts if any space-separated v1 signature matches, as a receiver would.
bool VerifySignature(const std::string& secret, const std::string& id, const std::string& timestamp,
                     const std::string& body, const std::string& header) {
  const std::string key = TestBase64Decode(secret.substr(6));
  const std::string content = id + "." + timestamp + "." + body;
  unsigned char mac[64];
  size_t mac_len = 0;
  if (!EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, key.data(), key.size(),
                 reinterpret_cast<const unsigned char*>(content.data()), content.size(), mac, sizeof mac, &mac_len))
    return false;
  std::istringstream in(header);
  for (std::string sig; in >> sig;) {
    if (sig.rfind("v1,", 0) != 0) continue;
    const std::string got = TestBase64Decode(sig.substr(3));
    if (got.size() == mac_len && CRYPTO_memcmp(got.data(), mac, mac_len) == 0) return true;
  }
  return false;
}

TEST_CASE("Standard Webhooks: the published test vector", "[webhooks]") {
  auto key = DecodeWhsec(kVectorSecret);
  REQUIRE(key.ok());
  CHECK(key.value().size() == 24);
  CHECK(StandardSignature(key.value(), kVectorId, kVectorTimestamp, kVectorBody) == kVectorSignature);
  CHECK(VerifySignature(kVectorSecret, kVectorId, std::to_string(kVectorTimestamp), kVectorBody, kVectorSignature));
  // Our verifier is not a yes-machine.
  CHECK_FALSE(VerifySignature(kVectorSecret, kVectorId, "1614265331", kVectorBody, kVectorSignature));
  CHECK_FALSE(VerifySignature(kVectorSecret, kVectorId, std::to_string(kVectorTimestamp), R"({"test":2432232314})",
                              kVectorSignature));
}

TEST_CASE("Standard Webhooks: signatures agree with an independent HMAC for other keys and bodies", "[webhooks]") {
  const std::string secret = "whsec_" + std::string("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9w");  // 40 bytes
  auto key = DecodeWhsec(secret);
  REQUIRE(key.ok());
  CHECK(key.value().size() == 42);
  for (std::string body : {std::string(""), std::string("{}"), std::string(5000, 'x'), std::string("\xff\x00\x01", 3)}) {
    const std::string sig = StandardSignature(key.value(), "msg_abc", 1790000000, body);
    CHECK(VerifySignature(secret, "msg_abc", "1790000000", body, sig));
    CHECK(VerifySignature(secret, "msg_abc", "1790000000", body, "v1,bm9wZQ== " + sig));  // rotation: any matches
  }
}

TEST_CASE("DecodeWhsec: errors say what is wrong without echoing the secret", "[webhooks]") {
  for (auto [secret, expect] : std::vector<std::pair<std::string, std::string>>{
           {"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "does not start with whsec_"},
           {"whsec_", "nothing after whsec_"},
           {"whsec_MfKQ9r8GKYqrTwjUPD8I!PZIo2LaLaSw", "bad character at offset 26"},
           {"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS", "not a multiple of 4"},
           {"whsec_c2hvcnQ=", "key is 5 bytes; Standard Webhooks keys are 24 to 64 bytes"},
       }) {
    auto r = DecodeWhsec(secret);
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.error(), Catch::Contains(expect));
    CHECK_THAT(r.error(), !Catch::Contains("MfKQ9r8G"));
  }
}

// ---- Bodies ----

OutboxContent Content(std::string type, std::vector<std::string> items, std::string group = "zen.spamhaus.org|acme") {
  return OutboxContent{"oncall", std::move(type), std::move(group), std::move(items), 1794999000};
}

const char* const kItem1 =
    R"({"ip":"192.0.2.1","range":"acme","zone":"zen.spamhaus.org","codes":["127.0.0.2"],"meanings":["SBL"],)"
    R"("txt":"see https://x","delist_url":"","first_seen":1794999000})";
const char* const kItem2 =
    R"({"ip":"192.0.2.2","range":"acme","zone":"zen.spamhaus.org","codes":["127.0.0.4"],"first_seen":1794999000})";

TEST_CASE("Webhook bodies: standard", "[webhooks]") {
  CHECK(StandardBody(Content("dnsbl.listed", {kItem2}), "edge-1", 1795000000) ==
        R"({"type":"dnsbl.listed","timestamp":"2026-11-18T11:06:40Z","data":{"instance":"edge-1","items":[)"
        R"({"ip":"192.0.2.2","range":"acme","zone":"zen.spamhaus.org","codes":["127.0.0.4"],"first_seen":1794999000}]}})");
  // An item that is not JSON is carried as a string rather than lost; bad UTF-8 is replaced, not thrown.
  Json body = Json::parse(StandardBody(Content("zone.down", {"not json \xff"}), "i", 0));
  CHECK(body["data"]["items"][0] == "not json \xef\xbf\xbd");
  CHECK(body["timestamp"] == "1970-01-01T00:00:00Z");
}

TEST_CASE("Webhook bodies: slack summary line", "[webhooks]") {
  Json one = Json::parse(SlackBody(Content("dnsbl.listed", {kItem1}), "edge-1"));
  CHECK(one["text"] == "repwatch edge-1: dnsbl.listed — 1 item: 192.0.2.1 zen.spamhaus.org");
  std::vector<std::string> many;
  for (int i = 0; i < 25; ++i) many.push_back(fmt::format(R"({{"ip":"10.0.0.{}","domain":"acme.example"}})", i));
  const std::string text = Json::parse(SlackBody(Content("spf.unauthorized", many), "edge-1"))["text"];
  CHECK(text.rfind("repwatch edge-1: spf.unauthorized — 25 items: 10.0.0.0 acme.example, 10.0.0.1 acme.example", 0) == 0);
  CHECK_THAT(text, Catch::EndsWith("10.0.0.9 acme.example, … and 15 more"));
}

TEST_CASE("Webhook bodies: Alertmanager version 4, firing and resolved", "[webhooks]") {
  Json firing = Json::parse(AlertmanagerBody(Content("dnsbl.listed", {kItem1, kItem2}), "edge-1", 1795000000));
  CHECK(firing["version"] == "4");
  CHECK(firing["status"] == "firing");
  CHECK(firing["receiver"] == "oncall");
  CHECK(firing["truncatedAlerts"] == 0);
  CHECK(firing["externalURL"] == "");
  CHECK(firing["commonAnnotations"] == Json::object());
  CHECK(firing["groupLabels"] == Json{{"alertname", "repwatch_dnsbl_listed"}});
  CHECK(firing["groupKey"] == R"({}:{alertname="repwatch_dnsbl_listed", group="zen.spamhaus.org|acme"})");
  CHECK(firing["commonLabels"] == Json{{"alertname", "repwatch_dnsbl_listed"},
                                       {"instance", "edge-1"},
                                       {"range", "acme"},
                                       {"zone", "zen.spamhaus.org"}});
  REQUIRE(firing["alerts"].size() == 2);
  const Json& a = firing["alerts"][0];
  CHECK(a["status"] == "firing");
  CHECK(a["labels"] == Json{{"alertname", "repwatch_dnsbl_listed"},
                            {"instance", "edge-1"},
                            {"ip", "192.0.2.1"},
                            {"range", "acme"},
                            {"zone", "zen.spamhaus.org"}});
  CHECK(a["startsAt"] == "2026-11-18T10:50:00Z");
  CHECK(a["endsAt"] == "0001-01-01T00:00:00Z");
  CHECK(a["generatorURL"] == "");
  CHECK(a["annotations"]["summary"] == "dnsbl.listed: 192.0.2.1 acme zen.spamhaus.org");
  CHECK(a["annotations"]["description"] ==
        R"(codes=["127.0.0.2"]; meanings=["SBL"]; txt=see https://x)");
  const std::string fp = a["fingerprint"];
  CHECK(fp.size() == 16);
  CHECK(fp.find_first_not_of("0123456789abcdef") == std::string::npos);
  CHECK(firing["alerts"][1]["fingerprint"] != fp);

  Json resolved = Json::parse(AlertmanagerBody(Content("dnsbl.delisted", {kItem1}), "edge-1", 1795000000));
  CHECK(resolved["status"] == "resolved");
  CHECK(resolved["alerts"][0]["status"] == "resolved");
  CHECK(resolved["alerts"][0]["endsAt"] == "2026-11-18T11:06:40Z");
  CHECK(resolved["alerts"][0]["labels"]["alertname"] == "repwatch_dnsbl_delisted");
  // Same labels, same fingerprint: stable across requests and restarts.
  Json again = Json::parse(AlertmanagerBody(Content("dnsbl.listed", {kItem1}), "edge-1", 1));
  CHECK(again["alerts"][0]["fingerprint"] == fp);
  // No first_seen: starts now.
  Json now = Json::parse(AlertmanagerBody(Content("zone.down", {R"({"zone":"z.example"})"}), "i", 1795000000));
  CHECK(now["alerts"][0]["startsAt"] == "2026-11-18T11:06:40Z");
}

TEST_CASE("EventClears: the clearing types", "[webhooks]") {
  for (const char* t :
       {"dnsbl.delisted", "fcrdns.resolved", "spf.resolved", "mx.resolved", "zone.recovered", "warmup.completed"})
    CHECK(EventClears(t));
  for (const char* t : {"dnsbl.listed", "fcrdns.failing", "zone.down", "check.failing", "warmup.backoff", ""})
    CHECK_FALSE(EventClears(t));
}

// ---- Retry timing ----

TEST_CASE("Backoff: x4 per attempt from retry_initial, capped at retry_max, ±20% jitter", "[webhooks]") {
  WebhookConfig w;
  w.retry_initial = 5000ms;
  w.retry_max = 2h;
  struct Row {
    long long attempts;
    double jitter;
    long long ms;
  };
  for (Row r : {Row{1, 0.5, 5000}, Row{2, 0.5, 20000}, Row{3, 0.5, 80000}, Row{5, 0.5, 1280000},
                Row{6, 0.5, 5120000}, Row{7, 0.5, 7200000}, Row{40, 0.5, 7200000}, Row{1, 0.0, 4000},
                Row{1, 1.0, 6000}, Row{7, 0.0, 5760000}, Row{0, 0.5, 5000}}) {
    INFO("attempts " << r.attempts << " jitter " << r.jitter);
    CHECK(WebhookSender::Backoff(w, r.attempts, r.jitter).count() == r.ms);
  }
}

TEST_CASE("ParseRetryAfter: delta-seconds and HTTP-date", "[webhooks]") {
  CHECK(ParseRetryAfter(" 120 ", 0) == std::optional<std::chrono::seconds>(120s));
  CHECK(ParseRetryAfter("0", 0) == std::optional<std::chrono::seconds>(0s));
  // 1445412480 = Wed, 21 Oct 2015 07:28:00 GMT
  CHECK(ParseRetryAfter("Wed, 21 Oct 2015 07:28:00 GMT", 1445412480 - 90) == std::optional<std::chrono::seconds>(90s));
  CHECK(ParseRetryAfter("Wed, 21 Oct 2015 07:28:00 GMT", 1445412480 + 90) == std::optional<std::chrono::seconds>(0s));
  CHECK_FALSE(ParseRetryAfter("", 0).has_value());
  CHECK_FALSE(ParseRetryAfter("soon", 0).has_value());
  CHECK_FALSE(ParseRetryAfter("-5", 0).has_value());
}

// ---- Delivery against a real receiver ----

struct TempDir {
  fs::path path;
  TempDir() {
    char tmpl[] = "/tmp/repwatch_webhooks_test.XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

struct Received {
  std::string id, timestamp, signature, user_agent, content_type, body;
  std::chrono::steady_clock::time_point at;
  int status = 0;
};

// An HTTP receiver on 127.0.0.1 that answers from a script, then with a default reply.
// One instance serves every test (Shared()): civetweb takes ~2 s to stop.
class Receiver {
 public:
  struct Reply {
    Reply(int s = 200, std::string ra = "", std::chrono::milliseconds late = 0ms)
        : status(s), retry_after(std::move(ra)), sleep(late) {}
    int status = 200;
    std::string retry_after;
    std::chrono::milliseconds sleep{0};  // answer late (past the sender's timeout)
    bool hold = false;                   // answer only when Release()d (or after 5 s)
  };

  static Receiver& Shared() {
    static Receiver* receiver = new Receiver();  // never destroyed: no 2 s stop at exit
    return *receiver;
  }
  // Forgets the script, the default reply and the requests seen; releases held requests.
  void Reset() {
    Release();
    std::lock_guard lock(mu_);
    script_.clear();
    default_ = Reply();
    requests_.clear();
  }
  std::string url() const { return fmt::format("http://127.0.0.1:{}/hook", server_->port()); }
  void Script(std::deque<Reply> script) {
    std::lock_guard lock(mu_);
    script_ = std::move(script);
  }
  void SetDefault(Reply r) {
    std::lock_guard lock(mu_);
    default_ = std::move(r);
  }
  void Release() {
    std::lock_guard lock(mu_);
    ++release_generation_;
    cv_.notify_all();
  }
  std::vector<Received> requests() const {
    std::lock_guard lock(mu_);
    return requests_;
  }
  size_t count() const { return requests().size(); }

 private:
  Receiver() {
    server_ = std::make_unique<HttpServer>("127.0.0.1:0");
    server_->AddRoute("POST", "/hook", [this](const HttpRequest& req) { return Handle(req); });
    REQUIRE(server_->Start().ok());
  }

  HttpResponse Handle(const HttpRequest& req) {
    Reply reply;
    int generation = 0;
    {
      std::lock_guard lock(mu_);
      if (!script_.empty()) {
        reply = script_.front();
        script_.pop_front();
      } else {
        reply = default_;
      }
      generation = release_generation_;
      requests_.push_back(Received{std::string(req.Header("webhook-id")), std::string(req.Header("webhook-timestamp")),
                                   std::string(req.Header("webhook-signature")), std::string(req.Header("user-agent")),
                                   std::string(req.Header("content-type")), req.body,
                                   std::chrono::steady_clock::now(), reply.status});
    }
    if (reply.sleep.count()) std::this_thread::sleep_for(reply.sleep);
    if (reply.hold) {
      std::unique_lock lock(mu_);
      cv_.wait_for(lock, 5s, [&] { return release_generation_ != generation; });
    }
    HttpResponse r = HttpResponse::Text(reply.status, "answer\n");
    if (!reply.retry_after.empty()) r.headers.push_back({"Retry-After", reply.retry_after});
    return r;
  }

  mutable std::mutex mu_;
  std::condition_variable cv_;
  int release_generation_ = 0;
  std::deque<Reply> script_;
  Reply default_;
  std::vector<Received> requests_;
  std::unique_ptr<HttpServer> server_;
};

template <typename Pred>
bool WaitFor(Pred pred, std::chrono::milliseconds limit = 8000ms) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

long long UnixNow() { return UnixSeconds(std::chrono::system_clock::now()); }

struct DeliveryFixture {
  TempDir dir;
  Receiver& receiver = Receiver::Shared();
  std::unique_ptr<StateStore> store;
  SystemClock clock;
  WebhookConfig sink;

  DeliveryFixture() {
    receiver.Reset();
    auto s = StateStore::Open(dir.path.string());
    REQUIRE(s.ok());
    store = std::move(s).value();
    sink.name = "oncall";
    sink.url = receiver.url();
    sink.format = WebhookFormat::kStandard;
    sink.secret = kVectorSecret;
    sink.timeout = 300ms;
    sink.min_interval = 0s;
    sink.max_items = 100;
    sink.retry_initial = 100ms;
    sink.retry_max = 300ms;
  }

  void Enqueue(const std::string& type, const std::string& group, int n, long long created, int first = 0) {
    REQUIRE(store->BeginCycle(created).ok());
    for (int i = first; i < first + n; ++i)
      REQUIRE(store
                  ->EnqueueWebhookItem(sink.name, type, group,
                                       fmt::format(R"({{"ip":"10.0.{}.{}","range":"acme","zone":"zen.spamhaus.org"}})",
                                                   i / 256, i % 256),
                                       created)
                  .ok());
    REQUIRE(store->EndCycle(created, 0.1, 0, true).ok());
  }

  ~DeliveryFixture() { receiver.Reset(); }

  std::unique_ptr<WebhookSender> Start(const std::shared_ptr<WebhookStats>& stats) {
    WebhookSender::Options options;
    options.poll = 10ms;
    options.refresh = 100ms;
    auto sender = WebhookSender::Create({sink}, "edge-1", dir.path.string(), clock, stats, options);
    INFO((sender.ok() ? "" : sender.error()));
    REQUIRE(sender.ok());
    sender.value()->Start();
    return std::move(sender).value();
  }
};

uint64_t Failures(const WebhookSinkStats& s, WebhookFailure f) { return s.failures[static_cast<size_t>(f)].load(); }

double Ms(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

TEST_CASE("WebhookSender: 500 listed IPs, a receiver that fails, throttles and stalls; every item once, one id each",
          "[webhooks]") {
  DeliveryFixture f;
  f.Enqueue("dnsbl.listed", "zen.spamhaus.org|acme", 500, UnixNow());
  f.receiver.Script({{500}, {503}, {429, "1"}, {200, "", 700ms}});  // then 200
  auto stats = std::make_shared<WebhookStats>(std::vector<WebhookConfig>{f.sink});
  WebhookSinkStats& s = *stats->sinks().front();
  auto sender = f.Start(stats);
  REQUIRE(WaitFor([&] { return s.sent.load() == 5; }));
  REQUIRE(WaitFor([&] { return s.queue_items.load() == 0; }));
  sender->Stop();

  const std::vector<Received> got = f.receiver.requests();
  // 5 requests for the burst (ceil(500/100)), plus 4 failed attempts of the first one.
  REQUIRE(got.size() == 9);
  std::map<std::string, std::set<std::string>> ids_of_ip;
  std::map<std::string, std::string> body_of_id;
  for (const Received& r : got) {
    INFO(r.id);
    CHECK(r.id.size() == 31);
    CHECK(r.content_type == "application/json");
    CHECK(r.user_agent.rfind("repwatch/", 0) == 0);
    CHECK(VerifySignature(kVectorSecret, r.id, r.timestamp, r.body, r.signature));
    CHECK(std::abs(std::stoll(r.timestamp) - UnixNow()) < 30);
    auto [it, fresh] = body_of_id.emplace(r.id, r.body);
    CHECK(it->second == r.body);  // every retry sends the same bytes
    Json body = Json::parse(r.body);
    CHECK(body["type"] == "dnsbl.listed");
    CHECK(body["data"]["instance"] == "edge-1");
    CHECK(body["data"]["items"].size() == 100);
    for (const Json& item : body["data"]["items"]) ids_of_ip[item["ip"]].insert(r.id);
  }
  CHECK(body_of_id.size() == 5);
  CHECK(ids_of_ip.size() == 500);  // every item arrived ...
  for (const auto& [ip, ids] : ids_of_ip) {
    INFO(ip);
    CHECK(ids.size() == 1);  // ... under one id only
  }
  // The first batch: 500, 503, 429, timeout, 200 — all with one id.
  for (int i = 1; i < 5; ++i) CHECK(got[static_cast<size_t>(i)].id == got[0].id);
  const double gap1 = Ms(got[1].at - got[0].at), gap2 = Ms(got[2].at - got[1].at);
  const double gap3 = Ms(got[3].at - got[2].at), gap4 = Ms(got[4].at - got[3].at);
  INFO("gaps ms: " << gap1 << " " << gap2 << " " << gap3 << " " << gap4);
  CHECK(gap1 >= 80);     // 100 ms -20%
  CHECK(gap1 < 400);
  CHECK(gap2 >= 240);    // min(400, retry_max 300) -20%
  CHECK(gap2 < 700);
  CHECK(gap3 >= 1000);   // Retry-After: 1 beats the 300 ms back-off
  CHECK(gap3 < 1600);
  CHECK(gap4 >= 300 + 240);  // the 300 ms timeout, then back-off
  // The other four went out at once, one each.
  for (size_t i = 5; i < 9; ++i) CHECK(got[i].status == 200);

  CHECK(Failures(s, WebhookFailure::kHttp5xx) == 2);
  CHECK(Failures(s, WebhookFailure::kHttp429) == 1);
  CHECK(Failures(s, WebhookFailure::kTimeout) == 1);
  for (auto r : {WebhookFailure::kConnect, WebhookFailure::kHttp4xx, WebhookFailure::kGone, WebhookFailure::kOther})
    CHECK(Failures(s, r) == 0);
  CHECK(s.sent.load() == 5);
  CHECK(s.queue_items.load() == 0);
  CHECK(s.oldest_created.load() == 0);
  CHECK_FALSE(s.disabled.load());
}

TEST_CASE("WebhookSender: 410 disables the sink, keeps its items, stops requests; re-enabled by deleting the row",
          "[webhooks]") {
  DeliveryFixture f;
  const long long created = UnixNow() - 100;
  f.Enqueue("dnsbl.listed", "zen|acme", 3, created);
  f.Enqueue("dnsbl.listed", "sbl|acme", 2, created, 10);
  f.receiver.SetDefault({410});
  auto stats = std::make_shared<WebhookStats>(std::vector<WebhookConfig>{f.sink});
  WebhookSinkStats& s = *stats->sinks().front();
  auto sender = f.Start(stats);
  REQUIRE(WaitFor([&] { return s.disabled.load(); }));
  std::this_thread::sleep_for(400ms);
  CHECK(f.receiver.count() == 1);
  CHECK(Failures(s, WebhookFailure::kGone) == 1);
  CHECK(s.sent.load() == 0);
  CHECK(s.queue_items.load() == 5);
  CHECK(s.oldest_created.load() == created);

  auto outbox = Outbox::Open(f.dir.path.string());
  REQUIRE(outbox.ok());
  auto reason = outbox.value()->SinkDisabled("oncall");
  REQUIRE(reason.ok());
  REQUIRE(reason.value().has_value());
  CHECK_THAT(*reason.value(), Catch::Contains("410 Gone"));
  CHECK_THAT(*reason.value(), Catch::Contains("http://127.0.0.1:"));

  // The operator fixed the receiver and deleted the row: the sender notices without a restart.
  f.receiver.SetDefault({200});
  REQUIRE(outbox.value()->EnableSink("oncall").ok());
  REQUIRE(WaitFor([&] { return s.sent.load() == 2 && s.queue_items.load() == 0; }));
  CHECK_FALSE(s.disabled.load());
  const auto got = f.receiver.requests();
  REQUIRE(got.size() == 3);
  CHECK(got[1].id == got[0].id);  // the batch that met the 410 goes first, same id
  CHECK(got[1].body == got[0].body);
}

TEST_CASE("WebhookSender: Stop() during a stalled request returns within 1 s; the next sender re-sends the same id",
          "[webhooks]") {
  DeliveryFixture f;
  f.sink.timeout = 10s;
  f.Enqueue("zone.down", "zen.spamhaus.org", 1, UnixNow());
  Receiver::Reply hold;
  hold.hold = true;
  f.receiver.SetDefault(hold);
  auto stats = std::make_shared<WebhookStats>(std::vector<WebhookConfig>{f.sink});
  auto sender = f.Start(stats);
  REQUIRE(WaitFor([&] { return f.receiver.count() == 1; }));
  const auto t0 = std::chrono::steady_clock::now();
  sender.reset();  // as if killed mid-delivery: nothing recorded
  const double stop_ms = Ms(std::chrono::steady_clock::now() - t0);
  INFO("stop took " << stop_ms << " ms");
  CHECK(stop_ms < 1000);
  const WebhookSinkStats& first = *stats->sinks().front();
  CHECK(first.sent.load() == 0);
  for (size_t i = 0; i < kWebhookFailureCount; ++i) CHECK(first.failures[i].load() == 0);

  f.receiver.SetDefault({200});
  f.receiver.Release();
  auto stats2 = std::make_shared<WebhookStats>(std::vector<WebhookConfig>{f.sink});
  auto sender2 = f.Start(stats2);
  REQUIRE(WaitFor([&] { return stats2->sinks().front()->sent.load() == 1; }));
  const auto got = f.receiver.requests();
  REQUIRE(got.size() == 2);
  CHECK(got[1].id == got[0].id);
  CHECK(got[1].body == got[0].body);
  CHECK(VerifySignature(kVectorSecret, got[1].id, got[1].timestamp, got[1].body, got[1].signature));
}

TEST_CASE("WebhookSender: a receiver that is down; queue depth and oldest age; min_interval paces requests",
          "[webhooks]") {
  DeliveryFixture f;
  f.sink.url = "http://127.0.0.1:1/hook";  // nothing listens there
  f.sink.min_interval = 1s;
  const long long created = UnixNow() - 100;
  f.Enqueue("dnsbl.listed", "zen|acme", 7, created);
  auto stats = std::make_shared<WebhookStats>(std::vector<WebhookConfig>{f.sink});
  WebhookSinkStats& s = *stats->sinks().front();
  auto sender = f.Start(stats);
  std::this_thread::sleep_for(1300ms);
  CHECK(sender->Undelivered().value() == 7);
  sender->Stop();
  // retry_initial 100 ms would allow ~5 attempts in 1.3 s; min_interval 1 s allows 2 (at 0 and 1 s).
  const uint64_t attempts = Failures(s, WebhookFailure::kConnect);
  CHECK(attempts == 2);
  CHECK(s.queue_items.load() == 7);
  CHECK(s.oldest_created.load() == created);

  DnsStats dns;
  MetricsExporter exporter(dns);
  exporter.SetWebhookStats(stats);
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, exporter.Collect());
  const std::string text = out.str();
  CHECK_THAT(text, Catch::Contains("# TYPE repwatch_webhook_sent_total counter"));
  CHECK_THAT(text, Catch::Contains("repwatch_webhook_sent_total{sink=\"oncall\"} 0"));
  CHECK_THAT(text, Catch::Contains(fmt::format("repwatch_webhook_failures_total{{sink=\"oncall\",reason=\"connect\"}} {}", attempts)));
  for (const char* reason : {"timeout", "http_4xx", "http_5xx", "http_429", "gone", "other"})
    CHECK_THAT(text, Catch::Contains(fmt::format("repwatch_webhook_failures_total{{sink=\"oncall\",reason=\"{}\"}} 0", reason)));
  CHECK_THAT(text, Catch::Contains("repwatch_webhook_queue_items{sink=\"oncall\"} 7"));
  CHECK_THAT(text, Catch::Contains("repwatch_webhook_sink_disabled{sink=\"oncall\"} 0"));
  CHECK_THAT(text, Catch::Contains("# TYPE repwatch_webhook_oldest_undelivered_age_seconds gauge"));
  const size_t at = text.find("repwatch_webhook_oldest_undelivered_age_seconds{sink=\"oncall\"} ");
  REQUIRE(at != std::string::npos);
  const double age = std::stod(text.substr(text.find("} ", at) + 2));
  CHECK(age >= 100);
  CHECK(age < 130);
}

TEST_CASE("WebhookSender: a standard sink without a valid secret is refused, naming the sink", "[webhooks]") {
  TempDir dir;
  REQUIRE(StateStore::Open(dir.path.string()).ok());
  WebhookConfig w;
  w.name = "broken";
  w.url = "http://127.0.0.1:1/";
  w.secret = "whsec_c2hvcnQ=";
  SystemClock clock;
  auto sender = WebhookSender::Create({w}, "i", dir.path.string(), clock, nullptr);
  REQUIRE_FALSE(sender.ok());
  CHECK_THAT(sender.error(), Catch::StartsWith("webhook broken: "));
  CHECK_THAT(sender.error(), Catch::Contains("24 to 64 bytes"));
}

}  // namespace
}  // namespace repwatch
