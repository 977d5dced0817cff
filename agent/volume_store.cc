#include "agent/volume_store.h"

#include <sqlite3.h>

#include <climits>
#include <mutex>
#include <string_view>
#include <tuple>
#include <unordered_map>

#include "agent/receivers.h"
#include "agent/smtp_reply.h"
#include "agent/sqlite_db.h"

namespace repwatch {
namespace {

constexpr long long kKeepHours = 120 * 24;

// Each entry brings the schema from version i to i + 1. Append only.
// volume.outcome is the VolumeOutcome value: 0 delivered, 1 deferred, 2 bounced.
const char* const kMigrations[] = {
    R"sql(
CREATE TABLE volume (
  ip TEXT NOT NULL, hour INTEGER NOT NULL, outcome INTEGER NOT NULL, grp TEXT NOT NULL, cls TEXT NOT NULL,
  count INTEGER NOT NULL,
  PRIMARY KEY (ip, hour, outcome, grp, cls)
) WITHOUT ROWID;
CREATE INDEX volume_hour ON volume (hour);
CREATE TABLE log_positions (
  source TEXT PRIMARY KEY, device INTEGER NOT NULL, inode INTEGER NOT NULL, offset INTEGER NOT NULL,
  updated INTEGER NOT NULL
) WITHOUT ROWID;
)sql",
};

const std::map<std::string, const char*> kWriteSql = {
    {"add count",
     "INSERT INTO volume (ip, hour, outcome, grp, cls, count) VALUES (?1, ?2, ?3, ?4, ?5, ?6) "
     "ON CONFLICT (ip, hour, outcome, grp, cls) DO UPDATE SET count = count + excluded.count"},
    {"put position",
     "INSERT OR REPLACE INTO log_positions (source, device, inode, offset, updated) VALUES (?1, ?2, ?3, ?4, ?5)"},
    {"prune", "DELETE FROM volume WHERE hour < ?1"},
    {"begin", "BEGIN IMMEDIATE"},
    {"commit", "COMMIT"},
    {"rollback", "ROLLBACK"},
};

const std::map<std::string, const char*> kReadSql = {
    {"read position", "SELECT device, inode, offset FROM log_positions WHERE source = ?1"},
    {"read hours",
     "SELECT hour, outcome, grp, cls, count FROM volume WHERE ip = ?1 AND hour BETWEEN ?2 AND ?3"},
    {"read days", "SELECT DISTINCT hour / 24 FROM volume WHERE ip = ?1 ORDER BY 1"},
    {"first hour", "SELECT min(hour) FROM volume"},
    {"active ips", "SELECT DISTINCT ip FROM volume WHERE hour BETWEEN ?1 AND ?2 ORDER BY ip"},
};

bool Throttling(std::string_view cls) {
  return cls == "rate_limit" || cls == "reputation_block" || cls == "blocked_by_list";
}

// One SQLite connection and its statements by name (the name appears in errors).
// The key one count is kept under; group and class are the static names of
// ReceiverGroup / SmtpClassName.
using CountKey = std::tuple<IpAddress, long long, int, std::string_view, std::string_view>;

}  // namespace

class VolumeStore::Impl {
 public:
  std::unique_ptr<SqliteDb> writer, reader;
  std::mutex write_mu;
  std::mutex read_mu;
  long long pruned_hour = LLONG_MIN;  // the hour of `now` of the last prune

  // Sums the rows of one address over [from_hour, to_hour], each into the period bucket(hour) names.
  template <typename Bucket>
  Result<std::map<long long, VolumeTotals>> Sum(const IpAddress& ip, long long from_hour, long long to_hour,
                                                Bucket bucket) {
    std::map<long long, VolumeTotals> out;
    std::lock_guard lock(read_mu);
    Stmt& q = (*reader)["read hours"];
    q.Bind(1, ip.ToString()).Bind(2, from_hour).Bind(3, to_hour);
    for (;;) {
      auto row = q.Step();
      if (!row.ok()) return row.status();
      if (!row.value()) break;
      VolumeTotals& t = out[bucket(q.Int(0))];
      const long long outcome = q.Int(1);
      const std::string grp = q.Text(2);
      const uint64_t count = static_cast<uint64_t>(q.Int(4));
      if (outcome == static_cast<int>(VolumeOutcome::kDelivered)) t.delivered += count;
      else if (outcome == static_cast<int>(VolumeOutcome::kDeferred)) t.deferred += count;
      else if (outcome == static_cast<int>(VolumeOutcome::kBounced)) t.bounced += count;
      else continue;
      t.attempts_by_group[grp] += count;
      if (outcome != static_cast<int>(VolumeOutcome::kDelivered) && Throttling(q.Text(3))) {
        t.throttled += count;
        t.throttled_by_group[grp] += count;
      }
    }
    return out;
  }
};

Result<std::unique_ptr<VolumeStore>> VolumeStore::Open(const std::string& state_dir) {
  auto db = OpenSqliteStore(state_dir, "volume.db", kMigrations, kWriteSql, kReadSql);
  if (!db.ok()) return db.status();
  auto impl = std::make_unique<Impl>();
  impl->writer = std::move(db.value().writer);
  impl->reader = std::move(db.value().reader);
  return std::unique_ptr<VolumeStore>(new VolumeStore(std::move(impl)));
}

VolumeStore::VolumeStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
VolumeStore::~VolumeStore() = default;

Status VolumeStore::Add(const std::vector<VolumeEvent>& events, long long now, const std::string& source,
                        std::optional<TailPosition> position) {
  // Aggregated first: one upsert per distinct key, whatever the batch size.
  std::map<CountKey, uint64_t> counts;
  std::unordered_map<std::string_view, std::string_view> class_of_reply;  // replies repeat within a batch
  for (const VolumeEvent& e : events) {
    if (e.count == 0) continue;
    const long long at = e.at == 0 ? now : e.at;
    std::string_view cls = "";  // never a null pointer: bound as '', not NULL
    if (e.outcome != VolumeOutcome::kDelivered && !e.reply.empty()) {
      auto [it, fresh] = class_of_reply.try_emplace(e.reply);
      if (fresh) it->second = SmtpClassName(ClassifyText(e.reply).cls);
      cls = it->second;
    }
    counts[CountKey{e.ip, at / 3600, static_cast<int>(e.outcome), ReceiverGroup(e.receiver), cls}] += e.count;
  }
  const bool put_position = !source.empty() && position.has_value();
  const long long now_hour = now / 3600;

  std::lock_guard lock(impl_->write_mu);
  SqliteDb& db = *impl_->writer;
  const bool prune = now_hour != impl_->pruned_hour;
  if (counts.empty() && !put_position && !prune) return Status::Ok();
  if (Status s = db["begin"].Run(); !s.ok()) return s;
  Status s;
  std::string ip_text;
  const IpAddress* last_ip = nullptr;
  for (const auto& [key, count] : counts) {
    const auto& [ip, hour, outcome, grp, cls] = key;
    if (!last_ip || *last_ip != ip) {  // the map is ordered by address first
      ip_text = ip.ToString();
      last_ip = &ip;
    }
    s = db["add count"]
            .Bind(1, ip_text)
            .Bind(2, hour)
            .Bind(3, static_cast<long long>(outcome))
            .Bind(4, grp)
            .Bind(5, cls)
            .Bind(6, static_cast<long long>(count))
            .Run();
    if (!s.ok()) break;
  }
  if (s.ok() && put_position)
    s = db["put position"]
            .Bind(1, source)
            .Bind(2, static_cast<long long>(position->device))
            .Bind(3, static_cast<long long>(position->inode))
            .Bind(4, static_cast<long long>(position->offset))
            .Bind(5, now)
            .Run();
  if (s.ok() && prune) s = db["prune"].Bind(1, now_hour - kKeepHours).Run();
  if (s.ok()) s = db["commit"].Run();
  if (!s.ok()) {
    db["rollback"].Run();
    return s;
  }
  if (prune) impl_->pruned_hour = now_hour;
  return Status::Ok();
}

Result<std::optional<TailPosition>> VolumeStore::Position(const std::string& source) const {
  std::lock_guard lock(impl_->read_mu);
  Stmt& q = (*impl_->reader)["read position"];
  auto row = q.Bind(1, source).Step();
  if (!row.ok()) return row.status();
  if (!row.value()) return std::optional<TailPosition>();
  TailPosition p{static_cast<uint64_t>(q.Int(0)), static_cast<uint64_t>(q.Int(1)), static_cast<uint64_t>(q.Int(2))};
  q.Reset();
  return std::optional<TailPosition>(p);
}

Result<std::map<long long, VolumeTotals>> VolumeStore::Days(const IpAddress& ip, long long from_day,
                                                            long long to_day) const {
  return impl_->Sum(ip, from_day * 24, to_day * 24 + 23, [](long long hour) { return hour / 24; });
}

Result<std::map<long long, VolumeTotals>> VolumeStore::Hours(const IpAddress& ip, long long from_hour,
                                                             long long to_hour) const {
  return impl_->Sum(ip, from_hour, to_hour, [](long long hour) { return hour; });
}

Result<std::optional<long long>> VolumeStore::CurrentRunStart(const IpAddress& ip, int idle_days) const {
  std::lock_guard lock(impl_->read_mu);
  Stmt& q = (*impl_->reader)["read days"];
  q.Bind(1, ip.ToString());
  std::optional<long long> start, previous;
  for (;;) {
    auto row = q.Step();
    if (!row.ok()) return row.status();
    if (!row.value()) break;
    const long long day = q.Int(0);
    // Days strictly between two days with traffic are idle.
    if (!previous || day - *previous - 1 >= idle_days) start = day;
    previous = day;
  }
  return start;
}

Result<std::optional<long long>> VolumeStore::FirstDay() const {
  std::lock_guard lock(impl_->read_mu);
  Stmt& q = (*impl_->reader)["first hour"];
  auto row = q.Step();
  if (!row.ok()) return row.status();
  std::optional<long long> day;
  if (row.value() && !q.IsNull(0)) day = q.Int(0) / 24;
  q.Reset();
  return day;
}

Result<std::vector<std::string>> VolumeStore::ActiveIps(long long from_day, long long to_day) const {
  std::lock_guard lock(impl_->read_mu);
  Stmt& q = (*impl_->reader)["active ips"];
  q.Bind(1, from_day * 24).Bind(2, to_day * 24 + 23);
  std::vector<std::string> out;
  for (;;) {
    auto row = q.Step();
    if (!row.ok()) return row.status();
    if (!row.value()) break;
    out.push_back(q.Text(0));
  }
  return out;
}

}  // namespace repwatch
