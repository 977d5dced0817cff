#include "agent/sqlite_db.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace repwatch {
namespace {

namespace fs = std::filesystem;

Status PrepareStateDir(const std::string& dir) {
  std::error_code ec;
  if (!fs::exists(dir, ec)) {
    fs::create_directories(dir, ec);
    if (ec) return Status::Error("state_dir " + dir + ": cannot create: " + ec.message());
    fs::permissions(dir, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec, ec);
  }
  if (!fs::is_directory(dir, ec)) return Status::Error("state_dir " + dir + ": not a directory");
  if (access(dir.c_str(), W_OK | X_OK) != 0)
    return Status::Error("state_dir " + dir + ": not writable: " + std::strerror(errno));
  return Status::Ok();
}

}  // namespace

SqliteDb::~SqliteDb() {
  stmts_.clear();  // statements are finalized before the connection closes
  sqlite3_close(db_);
}

Result<std::unique_ptr<SqliteDb>> SqliteDb::Open(const std::string& path) {
  std::unique_ptr<SqliteDb> c(new SqliteDb());
  c->path_ = path;
  int rc = sqlite3_open_v2(path.c_str(), &c->db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                           nullptr);
  if (rc != SQLITE_OK) return Status::Error(path + ": open: " + (c->db_ ? sqlite3_errmsg(c->db_) : sqlite3_errstr(rc)));
  sqlite3_busy_timeout(c->db_, 5000);
  return c;
}

Status SqliteDb::Exec(const std::string& step, const char* sql) {
  char* msg = nullptr;
  int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &msg);
  if (rc == SQLITE_OK) return Status::Ok();
  std::string text = msg ? msg : sqlite3_errstr(rc);
  sqlite3_free(msg);
  return Status::Error(path_ + ": " + step + ": " + text);
}

Status SqliteDb::Prepare(const std::map<std::string, const char*>& sql) {
  for (const auto& [name, text] : sql) {
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v3(db_, text, -1, SQLITE_PREPARE_PERSISTENT, &s, nullptr) != SQLITE_OK)
      return Status::Error(path_ + ": prepare '" + name + "': " + sqlite3_errmsg(db_));
    stmts_.emplace(name, std::make_unique<Stmt>(s, path_ + ": " + name));
  }
  return Status::Ok();
}

Result<int> SqliteDb::SchemaVersion() {
  if (Status s = Exec("create schema_version", "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)");
      !s.ok())
    return s;
  sqlite3_stmt* s = nullptr;
  if (sqlite3_prepare_v2(db_, "SELECT coalesce(max(version), 0) FROM schema_version", -1, &s, nullptr) != SQLITE_OK)
    return Status::Error(path_ + ": read schema_version: " + sqlite3_errmsg(db_));
  Stmt stmt(s, path_ + ": read schema_version");
  auto row = stmt.Step();
  if (!row.ok()) return row.status();
  const int v = static_cast<int>(stmt.Int(0));
  stmt.Reset();
  return v;
}

Status SqliteDb::Migrate(std::span<const char* const> migrations) {
  // One write transaction from reading the version to the last migration, so two
  // processes opening a new database at once (`repwatch check` while the daemon
  // starts) cannot both apply the same migration: the second waits, then sees it done.
  if (Status s = Exec("begin migration", "BEGIN IMMEDIATE"); !s.ok()) return s;
  auto fail = [this](Status s) {
    Exec("rollback", "ROLLBACK");
    return s;
  };
  auto version = SchemaVersion();
  if (!version.ok()) return fail(version.status());
  const int latest = static_cast<int>(migrations.size());
  if (version.value() > latest)
    return fail(Status::Error(path_ + ": schema version " + std::to_string(version.value()) +
                              " is newer than this repwatch understands (" + std::to_string(latest) + ")"));
  for (int v = version.value(); v < latest; ++v) {
    std::string sql = std::string(migrations[static_cast<size_t>(v)]) +
                      ";INSERT INTO schema_version (version) VALUES (" + std::to_string(v + 1) + ");";
    if (Status s = Exec("migration to schema version " + std::to_string(v + 1), sql.c_str()); !s.ok()) return fail(s);
  }
  return Exec("commit migration", "COMMIT");
}

Result<SqliteStoreConnections> OpenSqliteStore(const std::string& state_dir, const std::string& file,
                                               std::span<const char* const> migrations,
                                               const std::map<std::string, const char*>& write_sql,
                                               const std::map<std::string, const char*>& read_sql) {
  if (Status s = PrepareStateDir(state_dir); !s.ok()) return s;
  const std::string path = (fs::path(state_dir) / file).string();
  SqliteStoreConnections out;
  auto writer = SqliteDb::Open(path);
  if (!writer.ok()) return writer.status();
  out.writer = std::move(writer).value();
  SqliteDb& w = *out.writer;
  for (auto [step, sql] : {std::pair{"enable WAL", "PRAGMA journal_mode = WAL"},
                           std::pair{"set synchronous", "PRAGMA synchronous = NORMAL"}})
    if (Status s = w.Exec(step, sql); !s.ok()) return s;
  if (Status s = w.Migrate(migrations); !s.ok()) return s;
  if (Status s = w.Prepare(write_sql); !s.ok()) return s;
  auto reader = SqliteDb::Open(path);
  if (!reader.ok()) return reader.status();
  out.reader = std::move(reader).value();
  if (Status s = out.reader->Prepare(read_sql); !s.ok()) return s;
  return out;
}

}  // namespace repwatch
