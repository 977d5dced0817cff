// Outbox: the delivery side of the webhook outbox in <state_dir>/repwatch.db, on its
// own SQLite connection (the cycle writes items through StateStore::EnqueueWebhookItem
// on another one). Tables are created by StateStore::Open (schema 3); open the
// StateStore first.
//
// Life of an item (one row of outbox_items per event item per sink):
//   pending (batch IS NULL) -> in a batch (outbox_batches row: fixed id and body bytes)
//   -> delivered: the batch row and its items are deleted at once. Nothing delivered
//   is kept: the receiver has it, and the queue tables stay small.
// A batch holds items of ONE (type, group_key), the oldest pending first, at most
// max_items and, unless it is a single item, a body of at most max_body_bytes. Its id
// ("msg_" + 27 base62 characters from getrandom) and body are fixed when it is formed,
// so every retry (and a restart after kill -9) sends the same id and the same bytes.
//
// One batch at a time per sink: a new batch is formed only when the sink has no
// undelivered batch. While a receiver is down its new items wait unbatched, so when
// it comes back they go out grouped as far as max_items allows, and in order (a
// delisting never overtakes its listing). A batch the receiver keeps refusing holds up
// its sink; that shows as queue depth and oldest age growing, and in the failures.
//
// A disabled sink (webhook_sinks.disabled_at set, after a 410) keeps its items. It is
// re-enabled by EnableSink, or by hand: DELETE FROM webhook_sinks WHERE name = '...';
// the sender reads the row again every few seconds, no restart needed.
//
// Writes are short BEGIN IMMEDIATE transactions; a busy connection is retried for up to
// 10 s (the cycle holds the write lock between its checkpoints), or until Interrupt().
// Every error names the database path and the step. Thread-safe (one mutex).
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agent/status.h"

namespace repwatch {

// What a batch carries, given to the body builder.
struct OutboxContent {
  std::string sink;
  std::string type;                 // event type, e.g. "dnsbl.listed"
  std::string group_key;            // e.g. "zen.spamhaus.org|acme-out"
  std::vector<std::string> items;   // item JSON texts, oldest first
  long long oldest_created = 0;     // unix seconds
};

struct OutboxBatch {
  std::string id;                   // "msg_..." — the webhook-id
  std::string sink;
  std::string type;
  std::string body;                 // the exact bytes to send
  long long items = 0;
  long long created = 0;            // unix seconds, when the batch was formed
  long long attempts = 0;           // failed attempts so far
  long long next_attempt_ms = 0;    // unix milliseconds
  std::string last_error;
};

struct OutboxDepth {
  long long items = 0;              // items not delivered (pending or in a batch)
  long long oldest_created = 0;     // unix seconds of the oldest of them, 0 when none
};

class Outbox {
 public:
  // Builds a body from a batch's content. Must be deterministic enough that a
  // smaller prefix of the items gives a smaller body (used to split big batches).
  using BodyBuilder = std::function<std::string(const OutboxContent&)>;

  static constexpr size_t kDefaultMaxBodyBytes = 20000;  // Standard Webhooks: "under about 20 kB"

  static Result<std::unique_ptr<Outbox>> Open(const std::string& state_dir);
  ~Outbox();
  Outbox(const Outbox&) = delete;
  Outbox& operator=(const Outbox&) = delete;

  // The next batch to send for `sink` at `now_ms` (unix ms), or nullopt when there
  // is none yet: the oldest undelivered batch that is due (next_attempt <= now_ms);
  // else, if the sink has no undelivered batch at all, a new one formed from its
  // oldest pending items (see above) and stored before it is returned.
  Result<std::optional<OutboxBatch>> Next(const std::string& sink, long long now_ms, size_t max_items,
                                          size_t max_body_bytes, const BodyBuilder& build);
  // The receiver took it: deletes the batch and its items.
  Status MarkDelivered(const OutboxBatch& batch);
  // attempts + 1, next_attempt, last_error.
  Status RecordFailure(const OutboxBatch& batch, long long next_attempt_ms, const std::string& error);

  Status DisableSink(const std::string& sink, long long now, const std::string& reason);
  Status EnableSink(const std::string& sink);
  // The reason it was disabled, or nullopt when enabled.
  Result<std::optional<std::string>> SinkDisabled(const std::string& sink);
  Result<OutboxDepth> Depth(const std::string& sink);

  // Makes a wait for the database lock give up at once (shutdown). Not undone.
  void Interrupt();

  class Impl;

 private:
  explicit Outbox(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// "msg_" + 27 characters of [0-9A-Za-z] from the kernel's CSPRNG (getrandom).
std::string NewMessageId();

}  // namespace repwatch
