// The SQLite plumbing the stores share (agent/state_store.h, agent/volume_store.h):
// a connection with errors as values, schema migrations, and the usual pair of
// connections to one database file in state_dir. Statements are agent/sqlite_stmt.h.
#pragma once

#include <sqlite3.h>

#include <map>
#include <memory>
#include <span>
#include <string>

#include "agent/sqlite_stmt.h"
#include "agent/status.h"

namespace repwatch {

// One connection (SQLITE_OPEN_NOMUTEX: one thread at a time, the owner's lock) and
// its prepared statements by name. Errors name the file and the step:
// "/var/lib/repwatch/volume.db: prepare 'add count': no such table: volume".
class SqliteDb {
 public:
  ~SqliteDb();
  SqliteDb(const SqliteDb&) = delete;
  SqliteDb& operator=(const SqliteDb&) = delete;

  // Opens (creating) `path`, waiting up to 5 s for another connection's lock.
  static Result<std::unique_ptr<SqliteDb>> Open(const std::string& path);

  Status Exec(const std::string& step, const char* sql);
  // Prepares each (name, SQL) for the connection's lifetime; db["name"] gets it.
  Status Prepare(const std::map<std::string, const char*>& sql);
  Stmt& operator[](const std::string& name) { return *stmts_.at(name); }
  const std::string& path() const { return path_; }

  // Brings the schema to version migrations.size(): migration i (append only) takes
  // version i to i + 1. All in one write transaction with the version it read, so a
  // failed step leaves the database as it was, and concurrent openers do not race.
  // A database newer than this binary is an error, never touched.
  Status Migrate(std::span<const char* const> migrations);

 private:
  SqliteDb() = default;
  Result<int> SchemaVersion();

  sqlite3* db_ = nullptr;
  std::string path_;
  std::map<std::string, std::unique_ptr<Stmt>> stmts_;
};

// A store's two connections to <state_dir>/<file>: the writer (WAL, synchronous =
// NORMAL — a power loss may undo the last transactions, never half of one — migrated,
// `write_sql` prepared) and a reader (`read_sql` prepared), so that reads go on while
// a write transaction is open. state_dir is created when missing (0750) and must be a
// writable directory.
struct SqliteStoreConnections {
  std::unique_ptr<SqliteDb> writer, reader;
};
Result<SqliteStoreConnections> OpenSqliteStore(const std::string& state_dir, const std::string& file,
                                               std::span<const char* const> migrations,
                                               const std::map<std::string, const char*>& write_sql,
                                               const std::map<std::string, const char*>& read_sql);

}  // namespace repwatch
