// Webhooks: the sending side of the outbox (agent/outbox.h). DESIGN.md "Webhooks",
// domain-facts §7.
//
// One request carries one event type and one or more items of one group (a burst of
// 500 listings on one zone and range is a handful of requests, not 500). Formats:
//  - standard:     {"type","timestamp","data":{"instance","items":[...]}}, signed per
//                  Standard Webhooks (webhook-id / webhook-timestamp / webhook-signature
//                  "v1,<base64 HMAC-SHA256 of id.timestamp.body>", key = base64 after whsec_);
//  - slack:        {"text": a one-line summary};
//  - alertmanager: the Alertmanager webhook payload, version "4", one alert per item,
//                  firing for raising types, resolved for clearing ones.
// Every format carries webhook-id and webhook-timestamp; a sink with a whsec_ secret
// signs whatever its format.
//
// Delivery (WebhookSender): at least once, the same webhook-id and body bytes on every
// retry, also after a restart. 2xx = delivered. 410 = the sink is disabled (logged as an
// error, exported, its items kept: see agent/outbox.h to re-enable). Anything else is
// retried after retry_initial * 4^(attempt-1), capped at retry_max, ±20% jitter, and
// never sooner than the receiver's Retry-After (itself capped at 24 h). Every request
// has the sink's timeout; no proxy from the environment, no redirects followed.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/clock.h"
#include "agent/config.h"
#include "agent/outbox.h"
#include "agent/status.h"

namespace repwatch {

// ---- Standard Webhooks signatures ----

// The HMAC key of a "whsec_<base64>" secret. Errors say what is wrong, never the secret.
Result<std::vector<uint8_t>> DecodeWhsec(std::string_view secret);
// "v1," + base64(HMAC-SHA256(key, id + "." + timestamp + "." + body)).
std::string StandardSignature(const std::vector<uint8_t>& key, std::string_view id, long long timestamp,
                              std::string_view body);

// ---- Bodies ----

// True for the types that end a problem (sent as "resolved" to Alertmanager):
// dnsbl.delisted, fcrdns.resolved, spf.resolved, mx.resolved, zone.recovered, warmup.completed.
bool EventClears(std::string_view type);
// "2026-11-22T10:00:00Z"
std::string Rfc3339(long long unix_seconds);

// Items are JSON object texts; one that does not parse is carried as a JSON string.
// `now` (unix seconds) is the body's timestamp.
std::string StandardBody(const OutboxContent& content, std::string_view instance, long long now);
std::string SlackBody(const OutboxContent& content, std::string_view instance);
std::string AlertmanagerBody(const OutboxContent& content, std::string_view instance, long long now);
std::string WebhookBody(WebhookFormat format, const OutboxContent& content, std::string_view instance,
                        long long now);

// ---- Delivery statistics, read by the metrics exporter ----

enum class WebhookFailure { kTimeout, kConnect, kHttp4xx, kHttp5xx, kHttp429, kGone, kOther };
inline constexpr size_t kWebhookFailureCount = 7;
// "timeout", "connect", "http_4xx", "http_5xx", "http_429", "gone", "other"
std::string_view WebhookFailureName(WebhookFailure f);

struct WebhookSinkStats {
  explicit WebhookSinkStats(std::string name) : sink(std::move(name)) {}
  const std::string sink;
  std::atomic<uint64_t> sent{0};                                       // requests answered 2xx
  std::array<std::atomic<uint64_t>, kWebhookFailureCount> failures{};  // by WebhookFailure
  std::atomic<long long> queue_items{0};                               // items not delivered
  std::atomic<long long> oldest_created{0};  // unix s of the oldest undelivered item, 0 = none
  std::atomic<bool> disabled{false};
};

// One entry per configured sink, fixed at construction (a reload builds a new one).
class WebhookStats {
 public:
  explicit WebhookStats(const std::vector<WebhookConfig>& sinks);
  const std::vector<std::unique_ptr<WebhookSinkStats>>& sinks() const { return sinks_; }
  WebhookSinkStats* Find(std::string_view sink) const;

 private:
  std::vector<std::unique_ptr<WebhookSinkStats>> sinks_;
};

// ---- The sender ----

class WebhookSender {
 public:
  struct Options {
    std::chrono::milliseconds poll{500};              // how often idle sinks look for work
    std::chrono::milliseconds refresh{2000};          // queue depth / disabled state re-read
    size_t max_body_bytes = Outbox::kDefaultMaxBodyBytes;
  };

  // Opens its own Outbox connection on <state_dir>/repwatch.db (after StateStore::Open).
  // Fails when a secret does not decode (the error names the sink). `clock` and the
  // stats must outlive the sender.
  static Result<std::unique_ptr<WebhookSender>> Create(const std::vector<WebhookConfig>& sinks,
                                                       std::string instance, const std::string& state_dir,
                                                       const Clock& clock, std::shared_ptr<WebhookStats> stats,
                                                       Options options);
  static Result<std::unique_ptr<WebhookSender>> Create(const std::vector<WebhookConfig>& sinks,
                                                       std::string instance, const std::string& state_dir,
                                                       const Clock& clock, std::shared_ptr<WebhookStats> stats) {
    return Create(sinks, std::move(instance), state_dir, clock, std::move(stats), Options());
  }
  ~WebhookSender();  // Stop()
  WebhookSender(const WebhookSender&) = delete;
  WebhookSender& operator=(const WebhookSender&) = delete;

  // Starts the one background thread: it goes round the sinks, sending at most one
  // request at a time, at most one per sink per min_interval.
  void Start();
  // Abandons an in-flight request (its batch stays due, same id next time) and joins,
  // within ~0.2 s. Idempotent.
  void Stop();

  // The delay after a failed attempt (attempts >= 1, counting this one), before
  // Retry-After: retry_initial * 4^(attempts-1), capped at retry_max, then * [0.8, 1.2].
  // Items not delivered yet over the enabled sinks, read from the database now (the
  // stats' queue_items lag by up to Options::refresh). For `run --once` draining.
  Result<long long> Undelivered();

  static std::chrono::milliseconds Backoff(const WebhookConfig& sink, long long attempts, double jitter01);

  class Impl;

 private:
  explicit WebhookSender(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Retry-After as delta-seconds or an HTTP-date, relative to `now_unix`; nullopt if unreadable.
std::optional<std::chrono::seconds> ParseRetryAfter(std::string_view value, long long now_unix);

}  // namespace repwatch
