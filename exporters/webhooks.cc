#include "exporters/webhooks.h"

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <algorithm>
#include <cctype>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <cmath>
#include <ctime>
#include <map>
#include <random>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "agent/log.h"
#include "build_info.h"

namespace repwatch {
namespace {

using Json = nlohmann::ordered_json;

std::string Dump(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

std::string Base64(const unsigned char* data, size_t size) {
  std::string out(4 * ((size + 2) / 3), '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data, static_cast<int>(size));
  out.resize(n < 0 ? 0 : static_cast<size_t>(n));
  return out;
}

Json ParseItem(const std::string& text) {
  Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Json(text);
  return j;
}

std::string StringField(const Json& item, const char* key) {
  if (!item.is_object()) return "";
  auto it = item.find(key);
  return it != item.end() && it->is_string() ? it->get<std::string>() : "";
}

std::string ValueText(const Json& v) { return v.is_string() ? v.get<std::string>() : Dump(v); }

}  // namespace

// ---- Signatures ----

Result<std::vector<uint8_t>> DecodeWhsec(std::string_view secret) {
  constexpr std::string_view kPrefix = "whsec_";
  if (!secret.starts_with(kPrefix)) return Status::Error("the webhook secret does not start with whsec_");
  std::string_view b64 = secret.substr(kPrefix.size());
  if (b64.empty()) return Status::Error("the webhook secret has nothing after whsec_");
  size_t padding = 0;
  for (size_t i = 0; i < b64.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(b64[i]);
    if (c == '=') {
      ++padding;
      continue;
    }
    if (padding || !(std::isalnum(c) || c == '+' || c == '/'))
      return Status::Error(fmt::format("the webhook secret is not base64 after whsec_ (bad character at offset {})",
                                       kPrefix.size() + i));
  }
  if (b64.size() % 4 != 0 || padding > 2)
    return Status::Error(fmt::format(
        "the webhook secret is not base64 after whsec_ ({} characters, not a multiple of 4 with padding)",
        b64.size()));
  std::vector<uint8_t> key(b64.size() / 4 * 3);
  int n = EVP_DecodeBlock(key.data(), reinterpret_cast<const unsigned char*>(b64.data()), static_cast<int>(b64.size()));
  if (n < 0) return Status::Error("the webhook secret is not base64 after whsec_");
  key.resize(static_cast<size_t>(n) - padding);  // EVP_DecodeBlock counts the padding as zero bytes
  if (key.size() < 24 || key.size() > 64)
    return Status::Error(
        fmt::format("the webhook secret's key is {} bytes; Standard Webhooks keys are 24 to 64 bytes", key.size()));
  return key;
}

std::string StandardSignature(const std::vector<uint8_t>& key, std::string_view id, long long timestamp,
                              std::string_view body) {
  std::string content = fmt::format("{}.{}.", id, timestamp);
  content.append(body);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(content.data()),
       content.size(), mac, &mac_len);
  return "v1," + Base64(mac, mac_len);
}

// ---- Bodies ----

bool EventClears(std::string_view type) {
  for (std::string_view t :
       {"dnsbl.delisted", "fcrdns.resolved", "spf.resolved", "mx.resolved", "zone.recovered", "warmup.completed"})
    if (type == t) return true;
  return false;
}

std::string Rfc3339(long long unix_seconds) {
  std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string StandardBody(const OutboxContent& content, std::string_view instance, long long now) {
  Json items = Json::array();
  for (const std::string& text : content.items) items.push_back(ParseItem(text));
  Json body;
  body["type"] = content.type;
  body["timestamp"] = Rfc3339(now);
  body["data"]["instance"] = instance;
  body["data"]["items"] = std::move(items);
  return Dump(body);
}

std::string SlackBody(const OutboxContent& content, std::string_view instance) {
  constexpr size_t kListed = 10;  // items named in the line; the rest are counted
  const size_t n = content.items.size();
  std::string text = fmt::format("repwatch {}: {} — {} item{}", instance, content.type, n, n == 1 ? "" : "s");
  for (size_t i = 0; i < n && i < kListed; ++i) {
    Json item = ParseItem(content.items[i]);
    std::string what = StringField(item, "ip");
    if (what.empty()) what = StringField(item, "range");
    for (const char* key : {"zone", "domain", "receiver", "check"})
      if (std::string v = StringField(item, key); !v.empty()) {
        what += (what.empty() ? "" : " ") + v;
        break;
      }
    if (what.size() > 120) what = what.substr(0, 117) + "...";
    text += (i == 0 ? ": " : ", ") + (what.empty() ? std::string("?") : what);
  }
  if (n > kListed) text += fmt::format(", … and {} more", n - kListed);
  Json body;
  body["text"] = text;
  return Dump(body);
}

namespace {

constexpr const char* kLabelFields[] = {"ip", "range", "zone", "domain", "receiver", "check"};

std::string AlertName(std::string_view type) {
  std::string name = "repwatch_" + std::string(type);
  std::replace(name.begin(), name.end(), '.', '_');
  return name;
}

// First 8 bytes of SHA-256 over the sorted labels, as 16 hex characters.
std::string Fingerprint(const std::map<std::string, std::string>& labels) {
  std::string text;
  for (const auto& [k, v] : labels) {
    text += k;
    text += '\0';
    text += v;
    text += '\0';
  }
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest);
  std::string hex;
  for (int i = 0; i < 8; ++i) hex += fmt::format("{:02x}", digest[i]);
  return hex;
}

std::string StartsAt(const Json& item, long long now) {
  if (item.is_object())
    if (auto it = item.find("first_seen"); it != item.end()) {
      if (it->is_number_integer()) return Rfc3339(it->get<long long>());
      if (it->is_string()) return it->get<std::string>();
    }
  return Rfc3339(now);
}

}  // namespace

std::string AlertmanagerBody(const OutboxContent& content, std::string_view instance, long long now) {
  const bool resolved = EventClears(content.type);
  const std::string alertname = AlertName(content.type);
  Json alerts = Json::array();
  std::optional<std::map<std::string, std::string>> common;
  for (const std::string& text : content.items) {
    Json item = ParseItem(text);
    std::map<std::string, std::string> labels{{"alertname", alertname}, {"instance", std::string(instance)}};
    for (const char* key : kLabelFields)
      if (std::string v = StringField(item, key); !v.empty()) labels[key] = v;
    std::string subject;
    for (const char* key : kLabelFields)
      if (auto it = labels.find(key); it != labels.end()) subject += (subject.empty() ? "" : " ") + it->second;
    std::string description;
    if (item.is_object()) {
      for (const auto& [key, value] : item.items()) {
        if (key == "first_seen" || labels.contains(key)) continue;
        if (value.is_null() || (value.is_string() && value.get<std::string>().empty())) continue;
        description += fmt::format("{}{}={}", description.empty() ? "" : "; ", key, ValueText(value));
      }
    } else {
      description = ValueText(item);
    }
    Json alert;
    alert["status"] = resolved ? "resolved" : "firing";
    alert["labels"] = labels;
    alert["annotations"] = {{"summary", fmt::format("{}: {}", content.type, subject)}, {"description", description}};
    alert["startsAt"] = StartsAt(item, now);
    alert["endsAt"] = resolved ? Rfc3339(now) : "0001-01-01T00:00:00Z";
    alert["generatorURL"] = "";
    alert["fingerprint"] = Fingerprint(labels);
    alerts.push_back(std::move(alert));
    if (!common) {
      common = labels;
    } else {
      std::erase_if(*common, [&](const auto& kv) {
        auto it = labels.find(kv.first);
        return it == labels.end() || it->second != kv.second;
      });
    }
  }
  Json body;
  body["version"] = "4";
  body["groupKey"] = fmt::format("{{}}:{{alertname=\"{}\", group=\"{}\"}}", alertname, content.group_key);
  body["truncatedAlerts"] = 0;
  body["status"] = resolved ? "resolved" : "firing";
  body["receiver"] = content.sink;
  body["groupLabels"] = {{"alertname", alertname}};
  body["commonLabels"] = common ? Json(*common) : Json::object();
  body["commonAnnotations"] = Json::object();
  body["externalURL"] = "";
  body["alerts"] = std::move(alerts);
  return Dump(body);
}

std::string WebhookBody(WebhookFormat format, const OutboxContent& content, std::string_view instance,
                        long long now) {
  switch (format) {
    case WebhookFormat::kStandard: return StandardBody(content, instance, now);
    case WebhookFormat::kSlack: return SlackBody(content, instance);
    case WebhookFormat::kAlertmanager: return AlertmanagerBody(content, instance, now);
  }
  return StandardBody(content, instance, now);
}

// ---- Stats ----

std::string_view WebhookFailureName(WebhookFailure f) {
  switch (f) {
    case WebhookFailure::kTimeout: return "timeout";
    case WebhookFailure::kConnect: return "connect";
    case WebhookFailure::kHttp4xx: return "http_4xx";
    case WebhookFailure::kHttp5xx: return "http_5xx";
    case WebhookFailure::kHttp429: return "http_429";
    case WebhookFailure::kGone: return "gone";
    case WebhookFailure::kOther: return "other";
  }
  return "other";
}

WebhookStats::WebhookStats(const std::vector<WebhookConfig>& sinks) {
  for (const WebhookConfig& w : sinks) sinks_.push_back(std::make_unique<WebhookSinkStats>(w.name));
}

WebhookSinkStats* WebhookStats::Find(std::string_view sink) const {
  for (const auto& s : sinks_)
    if (s->sink == sink) return s.get();
  return nullptr;
}

// ---- Retry timing ----

std::chrono::milliseconds WebhookSender::Backoff(const WebhookConfig& sink, long long attempts, double jitter01) {
  const double initial = static_cast<double>(sink.retry_initial.count());
  const double cap = static_cast<double>(sink.retry_max.count());
  const double base = std::min(cap, initial * std::pow(4.0, static_cast<double>(std::max(attempts, 1LL) - 1)));
  return std::chrono::milliseconds(std::llround(base * (0.8 + 0.4 * std::clamp(jitter01, 0.0, 1.0))));
}

std::optional<std::chrono::seconds> ParseRetryAfter(std::string_view value, long long now_unix) {
  while (!value.empty() && std::isspace(static_cast<unsigned char>(value.front()))) value.remove_prefix(1);
  while (!value.empty() && std::isspace(static_cast<unsigned char>(value.back()))) value.remove_suffix(1);
  if (value.empty()) return std::nullopt;
  if (std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    if (value.size() > 9) return std::chrono::seconds(999'999'999);
    return std::chrono::seconds(std::stoll(std::string(value)));
  }
  const std::string text(value);
  const time_t at = curl_getdate(text.c_str(), nullptr);
  if (at == -1) return std::nullopt;
  return std::chrono::seconds(std::max<long long>(0, static_cast<long long>(at) - now_unix));
}

// ---- The sender ----

namespace {

constexpr std::chrono::hours kMaxRetryAfter{24};

struct Sink {
  WebhookConfig config;
  std::vector<uint8_t> key;  // empty: requests are not signed
  WebhookSinkStats* stats = nullptr;
  std::chrono::steady_clock::time_point next_request{};
  bool disabled = false;
  std::string last_db_error;
};

// scheme://host[:port] of a URL: the path of a chat webhook URL is its credential.
std::string Origin(const std::string& url) {
  size_t scheme = url.find("://");
  size_t path = url.find_first_of("/?#", scheme == std::string::npos ? 0 : scheme + 3);
  return path == std::string::npos ? url : url.substr(0, path) + "/…";
}

struct Outcome {
  bool abandoned = false;
  CURLcode code = CURLE_OK;
  long status = 0;
  std::string retry_after;
  std::string body_head;  // the first bytes of the response body, for the error text
  std::string error;      // curl's error buffer
};

size_t OnHeader(char* data, size_t size, size_t count, void* arg) {
  auto* out = static_cast<Outcome*>(arg);
  std::string_view line(data, size * count);
  if (line.starts_with("HTTP/")) out->retry_after.clear();  // a new response (after a 1xx)
  constexpr std::string_view kName = "retry-after:";
  if (line.size() > kName.size() &&
      std::equal(kName.begin(), kName.end(), line.begin(),
                 [](char a, char b) { return a == std::tolower(static_cast<unsigned char>(b)); }))
    out->retry_after = std::string(line.substr(kName.size()));
  return size * count;
}

size_t OnBody(char* data, size_t size, size_t count, void* arg) {
  auto* out = static_cast<Outcome*>(arg);
  const size_t n = size * count;
  if (out->body_head.size() < 200) out->body_head.append(data, std::min(n, 200 - out->body_head.size()));
  return n;
}

std::string Printable(std::string_view text) {
  std::string out;
  for (char c : text) out += (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? ' ' : c;
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

}  // namespace

class WebhookSender::Impl {
 public:
  Impl(const Clock& c) : clock(c), rng(std::random_device{}()) {}
  ~Impl() {
    if (multi) curl_multi_cleanup(multi);
  }

  std::vector<Sink> sinks;
  std::string instance;
  const Clock& clock;
  std::shared_ptr<WebhookStats> stats;
  Options options;
  std::unique_ptr<Outbox> outbox;
  CURLM* multi = nullptr;
  std::mt19937_64 rng;

  std::thread thread;
  std::mutex mu;
  std::condition_variable cv;
  std::atomic<bool> stopping{false};

  long long WallMs() const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(clock.WallNow().time_since_epoch()).count();
  }
  void Run();
  void Refresh(Sink& sink, bool starting);
  bool Serve(Sink& sink);
  Outcome Perform(const Sink& sink, const OutboxBatch& batch);
  void Settle(Sink& sink, const OutboxBatch& batch, const Outcome& outcome);
  void DbError(Sink& sink, const Status& s);
};

Result<std::unique_ptr<WebhookSender>> WebhookSender::Create(const std::vector<WebhookConfig>& sinks,
                                                             std::string instance, const std::string& state_dir,
                                                             const Clock& clock, std::shared_ptr<WebhookStats> stats,
                                                             Options options) {
  static std::once_flag curl_once;
  std::call_once(curl_once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  auto impl = std::make_unique<Impl>(clock);
  impl->instance = std::move(instance);
  impl->options = options;
  impl->stats = stats ? std::move(stats) : std::make_shared<WebhookStats>(sinks);
  for (const WebhookConfig& w : sinks) {
    Sink sink{w, {}, impl->stats->Find(w.name), {}, false, ""};
    if (!sink.stats) return Status::Error("webhook " + w.name + ": no statistics entry for this sink");
    const bool sign = w.format == WebhookFormat::kStandard || w.secret.starts_with("whsec_");
    if (sign) {
      auto key = DecodeWhsec(w.secret);
      if (!key.ok()) return Status::Error("webhook " + w.name + ": " + key.error());
      sink.key = std::move(key).value();
    }
    impl->sinks.push_back(std::move(sink));
  }
  auto outbox = Outbox::Open(state_dir);
  if (!outbox.ok()) return outbox.status();
  impl->outbox = std::move(outbox).value();
  impl->multi = curl_multi_init();
  if (!impl->multi) return Status::Error("webhooks: curl_multi_init failed");
  return std::unique_ptr<WebhookSender>(new WebhookSender(std::move(impl)));
}

WebhookSender::WebhookSender(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

WebhookSender::~WebhookSender() { Stop(); }

void WebhookSender::Start() {
  if (impl_->thread.joinable() || impl_->stopping) return;
  impl_->thread = std::thread([impl = impl_.get()] { impl->Run(); });
}

void WebhookSender::Stop() {
  {
    std::lock_guard lock(impl_->mu);
    impl_->stopping = true;
  }
  impl_->cv.notify_all();
  curl_multi_wakeup(impl_->multi);
  impl_->outbox->Interrupt();
  if (impl_->thread.joinable()) impl_->thread.join();
}

Result<long long> WebhookSender::Undelivered() {
  long long n = 0;
  for (const Sink& sink : impl_->sinks) {
    auto disabled = impl_->outbox->SinkDisabled(sink.config.name);
    if (!disabled.ok()) return disabled.status();
    if (disabled.value()) continue;
    auto depth = impl_->outbox->Depth(sink.config.name);
    if (!depth.ok()) return depth.status();
    n += depth.value().items;
  }
  return n;
}

void WebhookSender::Impl::Run() {
  for (Sink& sink : sinks) Refresh(sink, true);
  auto next_refresh = clock.Now() + options.refresh;
  while (!stopping) {
    bool busy = false;
    for (Sink& sink : sinks) {
      if (stopping) break;
      try {
        busy |= Serve(sink);
      } catch (const std::exception& e) {  // e.g. getrandom failing: never take the agent down
        log::Error(fmt::format("webhook {}: {}", sink.config.name, e.what()));
      }
    }
    if (clock.Now() >= next_refresh) {
      for (Sink& sink : sinks) Refresh(sink, false);
      next_refresh = clock.Now() + options.refresh;
    }
    if (busy) continue;
    std::unique_lock lock(mu);
    cv.wait_for(lock, options.poll, [this] { return stopping.load(); });
  }
}

void WebhookSender::Impl::DbError(Sink& sink, const Status& s) {
  if (s.message() == sink.last_db_error) return;  // once per distinct error, not every poll
  sink.last_db_error = s.message();
  log::Error(fmt::format("webhook {}: outbox: {}", sink.config.name, s.message()));
}

void WebhookSender::Impl::Refresh(Sink& sink, bool starting) {
  auto disabled = outbox->SinkDisabled(sink.config.name);
  if (!disabled.ok()) return DbError(sink, disabled.status());
  auto depth = outbox->Depth(sink.config.name);
  if (!depth.ok()) return DbError(sink, depth.status());
  const bool now_disabled = disabled.value().has_value();
  if (now_disabled && (starting || !sink.disabled))
    log::Error(fmt::format("webhook {} ({}) is disabled: {}; its {} queued items are kept. To re-enable: "
                           "DELETE FROM webhook_sinks WHERE name = '{}' in the state database",
                           sink.config.name, Origin(sink.config.url), *disabled.value(), depth.value().items,
                           sink.config.name));
  if (!now_disabled && sink.disabled)
    log::Info(fmt::format("webhook {} re-enabled; {} queued items", sink.config.name, depth.value().items));
  sink.disabled = now_disabled;
  sink.stats->disabled = now_disabled;
  sink.stats->queue_items = depth.value().items;
  sink.stats->oldest_created = depth.value().oldest_created;
}

// Sends the sink's next batch if one is due and its rate limit allows. True if it sent.
bool WebhookSender::Impl::Serve(Sink& sink) {
  if (sink.disabled || clock.Now() < sink.next_request) return false;
  const long long now_ms = WallMs();
  auto next = outbox->Next(sink.config.name, now_ms, static_cast<size_t>(std::max(sink.config.max_items, 1)),
                           options.max_body_bytes, [&](const OutboxContent& content) {
                             return WebhookBody(sink.config.format, content, instance, now_ms / 1000);
                           });
  if (!next.ok()) {
    DbError(sink, next.status());
    return false;
  }
  if (!next.value()) return false;
  sink.last_db_error.clear();
  const OutboxBatch& batch = *next.value();
  sink.next_request = clock.Now() + sink.config.min_interval;
  Outcome outcome = Perform(sink, batch);
  if (outcome.abandoned) return false;  // stopping: the batch stays due, same id next time
  Settle(sink, batch, outcome);
  Refresh(sink, false);
  return true;
}

Outcome WebhookSender::Impl::Perform(const Sink& sink, const OutboxBatch& batch) {
  Outcome out;
  const long long timestamp = UnixSeconds(clock.WallNow());
  curl_slist* headers = nullptr;
  for (const std::string& h : {std::string("Content-Type: application/json"), std::string("Expect:"),
                               "webhook-id: " + batch.id, fmt::format("webhook-timestamp: {}", timestamp)})
    headers = curl_slist_append(headers, h.c_str());
  if (!sink.key.empty())
    headers = curl_slist_append(
        headers, ("webhook-signature: " + StandardSignature(sink.key, batch.id, timestamp, batch.body)).c_str());
  char error[CURL_ERROR_SIZE] = "";
  const std::string user_agent = fmt::format("repwatch/{}", build::kVersion);
  const long timeout_ms = static_cast<long>(std::max<long long>(1, sink.config.timeout.count()));
  CURL* easy = curl_easy_init();
  curl_easy_setopt(easy, CURLOPT_URL, sink.config.url.c_str());
  curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(easy, CURLOPT_POST, 1L);
  curl_easy_setopt(easy, CURLOPT_POSTFIELDS, batch.body.data());
  curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(batch.body.size()));
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(easy, CURLOPT_USERAGENT, user_agent.c_str());
  curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_NOPROXY, "*");
  curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, error);
  curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, OnHeader);
  curl_easy_setopt(easy, CURLOPT_HEADERDATA, &out);
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, OnBody);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, &out);

  curl_multi_add_handle(multi, easy);
  for (;;) {
    int running = 0;
    curl_multi_perform(multi, &running);
    if (running == 0) break;
    if (stopping) {
      out.abandoned = true;
      break;
    }
    curl_multi_poll(multi, nullptr, 0, 100, nullptr);
  }
  int left = 0;
  while (CURLMsg* m = curl_multi_info_read(multi, &left))
    if (m->msg == CURLMSG_DONE) out.code = m->data.result;
  curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &out.status);
  out.error = error;
  curl_multi_remove_handle(multi, easy);
  curl_easy_cleanup(easy);
  curl_slist_free_all(headers);
  return out;
}

void WebhookSender::Impl::Settle(Sink& sink, const OutboxBatch& batch, const Outcome& o) {
  const std::string& name = sink.config.name;
  if (o.code == CURLE_OK && o.status >= 200 && o.status < 300) {
    ++sink.stats->sent;
    if (Status s = outbox->MarkDelivered(batch); !s.ok()) DbError(sink, s);  // sent again later, same id
    log::Debug(fmt::format("webhook {}: delivered {} ({} items, {} type {})", name, batch.id, batch.items,
                           o.status, batch.type));
    return;
  }
  WebhookFailure reason = WebhookFailure::kOther;
  std::string error;
  if (o.code != CURLE_OK) {
    if (o.code == CURLE_OPERATION_TIMEDOUT)
      reason = WebhookFailure::kTimeout;
    else if (o.code == CURLE_COULDNT_CONNECT || o.code == CURLE_COULDNT_RESOLVE_HOST ||
             o.code == CURLE_COULDNT_RESOLVE_PROXY)
      reason = WebhookFailure::kConnect;
    error = fmt::format("{}: {}", curl_easy_strerror(o.code), o.error);
  } else {
    if (o.status == 410)
      reason = WebhookFailure::kGone;
    else if (o.status == 429)
      reason = WebhookFailure::kHttp429;
    else if (o.status >= 400 && o.status < 500)
      reason = WebhookFailure::kHttp4xx;
    else if (o.status >= 500 && o.status < 600)
      reason = WebhookFailure::kHttp5xx;
    error = fmt::format("HTTP {}: {}", o.status, Printable(o.body_head));
  }
  ++sink.stats->failures[static_cast<size_t>(reason)];
  const long long now_ms = WallMs();

  if (reason == WebhookFailure::kGone) {
    // Due again at once when the sink is re-enabled.
    if (Status s = outbox->RecordFailure(batch, now_ms, error); !s.ok()) DbError(sink, s);
    const std::string why = fmt::format("{} answered 410 Gone", Origin(sink.config.url));
    if (Status s = outbox->DisableSink(name, now_ms / 1000, why); !s.ok()) DbError(sink, s);
    sink.disabled = true;
    sink.stats->disabled = true;
    log::Error(fmt::format("webhook {} ({}) answered 410 Gone: sink disabled, its queued items are kept. To "
                           "re-enable: DELETE FROM webhook_sinks WHERE name = '{}' in the state database",
                           name, Origin(sink.config.url), name));
    return;
  }

  std::uniform_real_distribution<double> jitter(0.0, 1.0);
  std::chrono::milliseconds delay = WebhookSender::Backoff(sink.config, batch.attempts + 1, jitter(rng));
  if (auto after = ParseRetryAfter(o.retry_after, now_ms / 1000))
    delay = std::max<std::chrono::milliseconds>(delay, std::min<std::chrono::seconds>(*after, kMaxRetryAfter));
  if (Status s = outbox->RecordFailure(batch, now_ms + delay.count(), error); !s.ok()) DbError(sink, s);
  log::Warn(fmt::format("webhook {} ({}): {} attempt {} failed ({}): {}; retry in {:.1f} s", name,
                        Origin(sink.config.url), batch.id, batch.attempts + 1, WebhookFailureName(reason), error,
                        static_cast<double>(delay.count()) / 1000));
}

}  // namespace repwatch
