// A prepared SQLite statement with errors as values, shared by the stores (agent/sqlite_db.h)
// and the webhook outbox (each on its own connection). Step() resets the statement when
// it is done or fails; Run() is Step() for statements that return no rows.
#pragma once

#include <sqlite3.h>

#include <optional>
#include <string>
#include <string_view>

#include "agent/status.h"

namespace repwatch {

class Stmt {
 public:
  // `name` appears in error messages (e.g. "/var/lib/repwatch/repwatch.db: put row").
  Stmt(sqlite3_stmt* s, std::string name) : s_(s), name_(std::move(name)) {}
  ~Stmt() { sqlite3_finalize(s_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  Stmt& Bind(int i, std::string_view v) {
    sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& Bind(int i, long long v) {
    sqlite3_bind_int64(s_, i, v);
    return *this;
  }
  Stmt& Bind(int i, double v) {
    sqlite3_bind_double(s_, i, v);
    return *this;
  }
  // NULL when empty.
  Stmt& BindOptional(int i, const std::optional<long long>& v) {
    if (v) return Bind(i, *v);
    sqlite3_bind_null(s_, i);
    return *this;
  }
  Stmt& BindOptional(int i, const std::optional<std::string>& v) {
    if (v) return Bind(i, std::string_view(*v));
    sqlite3_bind_null(s_, i);
    return *this;
  }
  // SQLITE_ROW -> true, SQLITE_DONE -> false (and reset), anything else -> error.
  Result<bool> Step() {
    int rc = sqlite3_step(s_);
    if (rc == SQLITE_ROW) return true;
    Reset();
    if (rc == SQLITE_DONE) return false;
    return Status::Error(name_ + ": " + sqlite3_errmsg(sqlite3_db_handle(s_)));
  }
  Status Run() {
    auto r = Step();
    if (!r.ok()) return r.status();
    if (r.value()) Reset();
    return Status::Ok();
  }
  void Reset() {
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
  }
  std::string Text(int col) const {
    auto p = reinterpret_cast<const char*>(sqlite3_column_text(s_, col));
    return p ? std::string(p, sqlite3_column_bytes(s_, col)) : std::string();
  }
  long long Int(int col) const { return sqlite3_column_int64(s_, col); }
  bool IsNull(int col) const { return sqlite3_column_type(s_, col) == SQLITE_NULL; }

 private:
  sqlite3_stmt* s_;
  std::string name_;
};

}  // namespace repwatch
