#include "agent/outbox.h"

#include <sqlite3.h>
#include <sys/random.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "agent/sqlite_stmt.h"
#include "agent/state_store.h"

namespace repwatch {
namespace {

constexpr auto kBusyTimeout = std::chrono::seconds(10);

const std::map<std::string, const char*> kSql = {
    {"due batch",
     "SELECT id, type, body, items, created, attempts, next_attempt, last_error FROM outbox_batches "
     "WHERE sink = ?1 AND delivered IS NULL AND next_attempt <= ?2 ORDER BY rowid LIMIT 1"},
    {"any batch", "SELECT 1 FROM outbox_batches WHERE sink = ?1 AND delivered IS NULL LIMIT 1"},
    {"oldest pending",
     "SELECT type, group_key FROM outbox_items WHERE sink = ?1 AND batch IS NULL ORDER BY id LIMIT 1"},
    // Items of one group up to the first pending item of another type in the same
    // group: a batch never carries a listing past the delisting that followed it.
    {"group items",
     "SELECT id, item, created FROM outbox_items WHERE sink = ?1 AND batch IS NULL AND type = ?2 "
     "AND group_key = ?3 AND id < coalesce((SELECT min(id) FROM outbox_items WHERE sink = ?1 AND batch IS NULL "
     "AND group_key = ?3 AND type <> ?2), 9223372036854775807) ORDER BY id LIMIT ?4"},
    {"put batch",
     "INSERT INTO outbox_batches (id, sink, type, body, items, created, attempts, next_attempt, last_error) "
     "VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, ?7, '')"},
    {"assign item", "UPDATE outbox_items SET batch = ?1 WHERE id = ?2"},
    {"delete items", "DELETE FROM outbox_items WHERE sink = ?1 AND batch = ?2"},
    {"delete batch", "DELETE FROM outbox_batches WHERE id = ?1"},
    {"note failure",
     "UPDATE outbox_batches SET attempts = attempts + 1, next_attempt = ?2, last_error = ?3 WHERE id = ?1"},
    {"disable sink", "INSERT OR REPLACE INTO webhook_sinks (name, disabled_at, reason) VALUES (?1, ?2, ?3)"},
    {"enable sink", "DELETE FROM webhook_sinks WHERE name = ?1"},
    {"sink state", "SELECT reason FROM webhook_sinks WHERE name = ?1 AND disabled_at IS NOT NULL"},
    {"depth", "SELECT count(*), coalesce(min(created), 0) FROM outbox_items WHERE sink = ?1"},
    {"begin", "BEGIN IMMEDIATE"},
    {"commit", "COMMIT"},
    {"rollback", "ROLLBACK"},
};

// Waits for the lock in 10 ms steps, up to kBusyTimeout or until interrupted.
int BusyHandler(void* arg, int count) {
  auto* interrupted = static_cast<std::atomic<bool>*>(arg);
  if (interrupted->load() || count * std::chrono::milliseconds(10) >= kBusyTimeout) return 0;
  std::this_thread::sleep_for(std::chrono::milliseconds(10));
  return 1;
}

}  // namespace

class Outbox::Impl {
 public:
  ~Impl() {
    stmts.clear();
    sqlite3_close(db);
  }

  sqlite3* db = nullptr;
  std::string path;
  std::map<std::string, std::unique_ptr<Stmt>> stmts;
  std::mutex mu;
  std::atomic<bool> interrupted{false};

  Stmt& operator[](const std::string& name) { return *stmts.at(name); }
  std::string Error(const std::string& step) const { return path + ": " + step + ": " + sqlite3_errmsg(db); }

  // Runs fn inside BEGIN IMMEDIATE ... COMMIT; rolls back when it fails.
  // While it waits for the lock it raises its hand (write_turn), so a long cycle
  // yields at its next checkpoint. An exception from fn rolls back too: a transaction
  // left open would block every later write of the agent.
  template <typename Fn>
  Status Write(Fn&& fn) {
    write_turn::Want();
    Status begun = (*this)["begin"].Run();
    write_turn::Done();
    if (!begun.ok()) return begun;
    Status s;
    try {
      s = fn();
    } catch (...) {
      (*this)["rollback"].Run();
      throw;
    }
    if (s.ok()) s = (*this)["commit"].Run();
    if (!s.ok()) (*this)["rollback"].Run();
    return s;
  }

  Result<std::optional<OutboxBatch>> DueBatch(const std::string& sink, long long now_ms);
  Result<std::optional<OutboxBatch>> FormBatch(const std::string& sink, long long now_ms, size_t max_items,
                                               size_t max_body_bytes, const BodyBuilder& build);
};

Result<std::unique_ptr<Outbox>> Outbox::Open(const std::string& state_dir) {
  auto impl = std::make_unique<Impl>();
  impl->path = (std::filesystem::path(state_dir) / "repwatch.db").string();
  // No CREATE: the StateStore made the file and its schema.
  int rc = sqlite3_open_v2(impl->path.c_str(), &impl->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK)
    return Status::Error(impl->path + ": open outbox connection: " +
                         (impl->db ? sqlite3_errmsg(impl->db) : sqlite3_errstr(rc)));
  sqlite3_busy_handler(impl->db, BusyHandler, &impl->interrupted);
  // FULL: a batch formed must survive power loss too, or its items could be sent
  // again under a new id.
  if (sqlite3_exec(impl->db, "PRAGMA synchronous = FULL", nullptr, nullptr, nullptr) != SQLITE_OK)
    return Status::Error(impl->Error("set synchronous"));
  for (const auto& [name, text] : kSql) {
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v3(impl->db, text, -1, SQLITE_PREPARE_PERSISTENT, &s, nullptr) != SQLITE_OK)
      return Status::Error(impl->Error("prepare '" + name + "'"));
    impl->stmts.emplace(name, std::make_unique<Stmt>(s, impl->path + ": " + name));
  }
  return std::unique_ptr<Outbox>(new Outbox(std::move(impl)));
}

Outbox::Outbox(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Outbox::~Outbox() = default;

void Outbox::Interrupt() { impl_->interrupted = true; }

Result<std::optional<OutboxBatch>> Outbox::Impl::DueBatch(const std::string& sink, long long now_ms) {
  Stmt& q = (*this)["due batch"];
  auto row = q.Bind(1, sink).Bind(2, now_ms).Step();
  if (!row.ok()) return row.status();
  if (!row.value()) return std::optional<OutboxBatch>();
  OutboxBatch b{q.Text(0), sink, q.Text(1), q.Text(2), q.Int(3), q.Int(4), q.Int(5), q.Int(6), q.Text(7)};
  q.Reset();
  return std::optional<OutboxBatch>(std::move(b));
}

Result<std::optional<OutboxBatch>> Outbox::Impl::FormBatch(const std::string& sink, long long now_ms,
                                                           size_t max_items, size_t max_body_bytes,
                                                           const BodyBuilder& build) {
  std::optional<OutboxBatch> out;
  Status s = Write([&]() -> Status {
    Stmt& any = (*this)["any batch"];
    auto busy = any.Bind(1, sink).Step();
    if (!busy.ok()) return busy.status();
    if (busy.value()) {  // one batch at a time: wait for it (it is not due yet)
      any.Reset();
      return Status::Ok();
    }
    Stmt& oldest = (*this)["oldest pending"];
    auto found = oldest.Bind(1, sink).Step();
    if (!found.ok()) return found.status();
    if (!found.value()) return Status::Ok();
    OutboxContent content{sink, oldest.Text(0), oldest.Text(1), {}, 0};
    oldest.Reset();

    std::vector<long long> ids;
    Stmt& items = (*this)["group items"];
    items.Bind(1, sink).Bind(2, content.type).Bind(3, content.group_key);
    items.Bind(4, static_cast<long long>(std::max<size_t>(max_items, 1)));
    for (;;) {
      auto more = items.Step();
      if (!more.ok()) return more.status();
      if (!more.value()) break;
      ids.push_back(items.Int(0));
      content.items.push_back(items.Text(1));
      long long created = items.Int(2);
      if (content.oldest_created == 0 || created < content.oldest_created) content.oldest_created = created;
    }
    // Split: keep the oldest n items whose body fits (a single item always goes).
    std::string body = build(content);
    while (body.size() > max_body_bytes && content.items.size() > 1) {
      size_t n = content.items.size();
      size_t fit = static_cast<size_t>(static_cast<double>(n) * 0.95 * static_cast<double>(max_body_bytes) /
                                       static_cast<double>(body.size()));
      n = std::clamp<size_t>(fit, 1, n - 1);
      content.items.resize(n);
      ids.resize(n);
      body = build(content);
    }

    OutboxBatch b{NewMessageId(), sink, content.type, std::move(body), static_cast<long long>(ids.size()),
                  now_ms / 1000, 0, now_ms, ""};
    Status put = (*this)["put batch"]
                     .Bind(1, b.id)
                     .Bind(2, sink)
                     .Bind(3, b.type)
                     .Bind(4, b.body)
                     .Bind(5, b.items)
                     .Bind(6, b.created)
                     .Bind(7, b.next_attempt_ms)
                     .Run();
    if (!put.ok()) return put;
    for (long long id : ids)
      if (Status a = (*this)["assign item"].Bind(1, b.id).Bind(2, id).Run(); !a.ok()) return a;
    out = std::move(b);
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return out;
}

Result<std::optional<OutboxBatch>> Outbox::Next(const std::string& sink, long long now_ms, size_t max_items,
                                                size_t max_body_bytes, const BodyBuilder& build) {
  std::lock_guard lock(impl_->mu);
  auto due = impl_->DueBatch(sink, now_ms);
  if (!due.ok() || due.value()) return due;
  return impl_->FormBatch(sink, now_ms, max_items, max_body_bytes, build);
}

Status Outbox::MarkDelivered(const OutboxBatch& batch) {
  std::lock_guard lock(impl_->mu);
  Impl& db = *impl_;
  return db.Write([&]() -> Status {
    if (Status s = db["delete items"].Bind(1, batch.sink).Bind(2, batch.id).Run(); !s.ok()) return s;
    return db["delete batch"].Bind(1, batch.id).Run();
  });
}

Status Outbox::RecordFailure(const OutboxBatch& batch, long long next_attempt_ms, const std::string& error) {
  std::lock_guard lock(impl_->mu);
  Impl& db = *impl_;
  return db.Write([&] { return db["note failure"].Bind(1, batch.id).Bind(2, next_attempt_ms).Bind(3, error).Run(); });
}

Status Outbox::DisableSink(const std::string& sink, long long now, const std::string& reason) {
  std::lock_guard lock(impl_->mu);
  Impl& db = *impl_;
  return db.Write([&] { return db["disable sink"].Bind(1, sink).Bind(2, now).Bind(3, reason).Run(); });
}

Status Outbox::EnableSink(const std::string& sink) {
  std::lock_guard lock(impl_->mu);
  Impl& db = *impl_;
  return db.Write([&] { return db["enable sink"].Bind(1, sink).Run(); });
}

Result<std::optional<std::string>> Outbox::SinkDisabled(const std::string& sink) {
  std::lock_guard lock(impl_->mu);
  Stmt& q = (*impl_)["sink state"];
  auto row = q.Bind(1, sink).Step();
  if (!row.ok()) return row.status();
  if (!row.value()) return std::optional<std::string>();
  std::string reason = q.Text(0);
  q.Reset();
  return std::optional<std::string>(std::move(reason));
}

Result<OutboxDepth> Outbox::Depth(const std::string& sink) {
  std::lock_guard lock(impl_->mu);
  Stmt& q = (*impl_)["depth"];
  auto row = q.Bind(1, sink).Step();
  if (!row.ok()) return row.status();
  OutboxDepth d;
  if (row.value()) {
    d.items = q.Int(0);
    d.oldest_created = q.Int(1);
    q.Reset();
  }
  return d;
}

std::string NewMessageId() {
  static constexpr char kAlphabet[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  constexpr size_t kChars = 27;
  std::string id = "msg_";
  while (id.size() < 4 + kChars) {
    unsigned char buf[64];
    ssize_t n = getrandom(buf, sizeof buf, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      // getrandom cannot fail on Linux >= 3.17 once the pool is ready; never fall back to
      // a weak generator silently.
      throw std::runtime_error(std::string("getrandom: ") + std::strerror(errno));
    }
    for (ssize_t i = 0; i < n && id.size() < 4 + kChars; ++i)
      if (buf[i] < 248) id += kAlphabet[buf[i] % 62];  // 248 = 4 * 62: no modulo bias
  }
  return id;
}

}  // namespace repwatch
