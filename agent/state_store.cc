#include "agent/state_store.h"

#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_set>

#include <nlohmann/json.hpp>

#include "agent/sqlite_db.h"
#include "checks/report_json.h"

namespace repwatch {
namespace {

// Each entry brings the schema from version i to i + 1. Append only.
const char* const kMigrations[] = {
    R"sql(
CREATE TABLE ips (
  ip TEXT PRIMARY KEY, range TEXT NOT NULL, last_checked INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE dnsbl_state (
  ip TEXT NOT NULL, zone TEXT NOT NULL, status TEXT NOT NULL, allowlist INTEGER NOT NULL,
  codes TEXT NOT NULL, meanings TEXT NOT NULL, txt TEXT NOT NULL, delist_url TEXT NOT NULL,
  error TEXT NOT NULL, first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL,
  PRIMARY KEY (ip, zone)
) WITHOUT ROWID;
CREATE TABLE dnsbl_history (
  id INTEGER PRIMARY KEY, ip TEXT NOT NULL, range TEXT NOT NULL, zone TEXT NOT NULL,
  allowlist INTEGER NOT NULL, codes TEXT NOT NULL, first_seen INTEGER NOT NULL,
  last_seen INTEGER NOT NULL, cleared_at INTEGER NOT NULL
);
CREATE INDEX dnsbl_history_ip ON dnsbl_history (ip, zone);
CREATE TABLE zone_health (
  zone TEXT PRIMARY KEY, health TEXT NOT NULL, ipv4 TEXT, ipv6 TEXT,
  detail TEXT NOT NULL, updated INTEGER NOT NULL
);
CREATE TABLE cycles (
  id INTEGER PRIMARY KEY, started INTEGER NOT NULL, finished INTEGER NOT NULL,
  duration_seconds REAL NOT NULL, addresses INTEGER NOT NULL, success INTEGER NOT NULL
);
)sql",
    // 2: the latest FCrDNS and SPF sections per address, as their check --json form.
    R"sql(
ALTER TABLE ips ADD COLUMN fcrdns TEXT;
ALTER TABLE ips ADD COLUMN spf TEXT;
)sql",
    // 3: alerting. alert_streams holds each verdict stream that is not plainly ok
    // (agent/alerts.h); the outbox holds webhook items until delivered (agent/outbox.h):
    // items are written in the same transaction as the stream change that raised them,
    // batches are formed and sent by the webhook sender on its own connection.
    R"sql(
CREATE TABLE alert_streams (
  ip TEXT NOT NULL, check_kind TEXT NOT NULL, subject TEXT NOT NULL,
  state TEXT NOT NULL, problems INTEGER NOT NULL, oks INTEGER NOT NULL,
  since INTEGER NOT NULL, error_since INTEGER, failing_sent INTEGER NOT NULL,
  PRIMARY KEY (ip, check_kind, subject)
) WITHOUT ROWID;
CREATE TABLE outbox_items (
  id INTEGER PRIMARY KEY, sink TEXT NOT NULL, type TEXT NOT NULL, group_key TEXT NOT NULL,
  item TEXT NOT NULL, created INTEGER NOT NULL, batch TEXT
);
CREATE INDEX outbox_items_pending ON outbox_items (sink, batch, id);
CREATE TABLE outbox_batches (
  id TEXT PRIMARY KEY, sink TEXT NOT NULL, type TEXT NOT NULL, body TEXT NOT NULL,
  items INTEGER NOT NULL, created INTEGER NOT NULL, attempts INTEGER NOT NULL,
  next_attempt INTEGER NOT NULL, last_error TEXT NOT NULL, delivered INTEGER
);
CREATE INDEX outbox_batches_due ON outbox_batches (sink, delivered, next_attempt);
CREATE TABLE webhook_sinks (
  name TEXT PRIMARY KEY, disabled_at INTEGER, reason TEXT NOT NULL
);
)sql",
    // 4: the latest MX probe results per address (their check --json form); their
    // probed_at times carry [mx_probe] min_interval across restarts.
    R"sql(
ALTER TABLE ips ADD COLUMN mx TEXT;
)sql",
};

// The statements prepared once per connection, by name (the name appears in errors).
const std::map<std::string, const char*> kWriteSql = {
    {"upsert ip",
     "INSERT INTO ips (ip, range, last_checked, fcrdns, spf, mx) VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (ip) "
     "DO UPDATE SET range = excluded.range, last_checked = excluded.last_checked, fcrdns = excluded.fcrdns, "
     "spf = excluded.spf, mx = excluded.mx"},
    {"read checks", "SELECT fcrdns, spf, mx FROM ips WHERE ip = ?1"},
    {"read rows", "SELECT zone, status, first_seen FROM dnsbl_state WHERE ip = ?1"},
    {"ips with rows", "SELECT DISTINCT ip FROM dnsbl_state"},
    {"put row",
     "INSERT OR REPLACE INTO dnsbl_state (ip, zone, status, allowlist, codes, meanings, txt, "
     "delist_url, error, first_seen, last_seen) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"},
    {"note error", "UPDATE dnsbl_state SET error = ?3 WHERE ip = ?1 AND zone = ?2"},
    {"delete row", "DELETE FROM dnsbl_state WHERE ip = ?1 AND zone = ?2"},
    {"archive listing",
     "INSERT INTO dnsbl_history (ip, range, zone, allowlist, codes, first_seen, last_seen, cleared_at) "
     "SELECT ip, ?3, zone, allowlist, codes, first_seen, last_seen, ?4 FROM dnsbl_state "
     "WHERE ip = ?1 AND zone = ?2"},
    {"put zone health",
     "INSERT OR REPLACE INTO zone_health (zone, health, ipv4, ipv6, detail, updated) "
     "VALUES (?1, ?2, ?3, ?4, ?5, ?6)"},
    {"streams of ip",
     "SELECT check_kind, subject, state, problems, oks, since, error_since, failing_sent FROM alert_streams "
     "WHERE ip = ?1"},
    {"ips with streams", "SELECT DISTINCT ip FROM alert_streams"},
    {"put stream",
     "INSERT OR REPLACE INTO alert_streams (ip, check_kind, subject, state, problems, oks, since, error_since, "
     "failing_sent) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"},
    {"delete stream", "DELETE FROM alert_streams WHERE ip = ?1 AND check_kind = ?2 AND subject = ?3"},
    {"stored dnsbl status", "SELECT status, allowlist FROM dnsbl_state WHERE ip = ?1 AND zone = ?2"},
    {"stored zone health", "SELECT health FROM zone_health WHERE zone = ?1"},
    {"enqueue item",
     "INSERT INTO outbox_items (sink, type, group_key, item, created) VALUES (?1, ?2, ?3, ?4, ?5)"},
    {"put cycle",
     "INSERT INTO cycles (started, finished, duration_seconds, addresses, success) "
     "VALUES (?1, ?2, ?3, ?4, ?5)"},
    {"begin", "BEGIN IMMEDIATE"},
    {"commit", "COMMIT"},
    {"rollback", "ROLLBACK"},
};

const std::map<std::string, const char*> kReadSql = {
    {"read listings",
     "SELECT s.ip, i.range, s.zone, s.codes, s.meanings, s.txt, s.delist_url, s.allowlist, "
     "s.first_seen, s.last_seen, s.error FROM dnsbl_state s JOIN ips i USING (ip) "
     "WHERE s.status = 'listed' ORDER BY s.ip, s.zone"},
    {"read ip", "SELECT range, fcrdns, spf, mx FROM ips WHERE ip = ?1"},
    {"read mx", "SELECT mx FROM ips WHERE ip = ?1"},
    {"read checked ips",
     "SELECT ip, range, fcrdns, spf, mx FROM ips WHERE fcrdns IS NOT NULL OR spf IS NOT NULL OR mx IS NOT NULL "
     "ORDER BY ip"},
    {"read ip rows",
     "SELECT zone, status, allowlist, codes, meanings, txt, delist_url, error "
     "FROM dnsbl_state WHERE ip = ?1"},
    {"read zone health", "SELECT zone, health, ipv4, ipv6, detail FROM zone_health ORDER BY zone"},
    {"read last success", "SELECT coalesce(max(finished), 0) FROM cycles WHERE success = 1"},
    {"begin read", "BEGIN"},
    {"end read", "COMMIT"},
};

std::string Json(const std::vector<std::string>& list) { return nlohmann::json(list).dump(); }

std::vector<std::string> FromJson(const std::string& text) {
  auto parsed = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!parsed.is_array()) return {};
  std::vector<std::string> out;
  for (const auto& v : parsed)
    if (v.is_string()) out.push_back(v.get<std::string>());
  return out;
}

template <typename Enum, typename NameFn>
std::optional<Enum> EnumFromName(std::string_view name, NameFn name_of, int count) {
  for (int i = 0; i < count; ++i)
    if (name_of(static_cast<Enum>(i)) == name) return static_cast<Enum>(i);
  return std::nullopt;
}

DnsblStatus StatusFromName(std::string_view name) {
  return EnumFromName<DnsblStatus>(name, DnsblStatusName, 3).value_or(DnsblStatus::kError);
}

std::optional<std::string> HealthName(const std::optional<ZoneHealth>& h) {
  if (!h) return std::nullopt;
  return std::string(ZoneHealthName(*h));
}

ZoneHealth HealthFromName(std::string_view name) {
  return EnumFromName<ZoneHealth>(name, ZoneHealthName, 4).value_or(ZoneHealth::kError);
}

// One SQLite connection and its cached statements.
struct Row {
  DnsblStatus status;
  long long first_seen;
};
using Rows = std::map<std::string, Row, std::less<>>;  // by zone

// The JSON columns of ips for one report (nullopt: NULL, the check did not run).
struct Sections {
  std::optional<std::string> fcrdns, spf, mx;
};

}  // namespace

class StateStore::Impl {
 public:
  std::unique_ptr<SqliteDb> writer, reader;
  std::mutex write_mu;
  mutable std::mutex read_mu;
  bool in_cycle = false;
  bool tx_open = false;  // within a cycle: a write transaction is open (see Checkpoint)
  long long cycle_started = 0;
  // During a cycle: the addresses that have (or had, earlier in it) dnsbl_state rows.
  // Clean addresses outside it skip reading their rows: one statement each.
  std::unordered_set<std::string> ips_with_rows;
  std::unordered_set<std::string> ips_with_streams;  // the same for alert_streams

  Status Begin(long long now);
  // Opens the cycle's write transaction if a checkpoint closed it.
  Status Tx() {
    if (tx_open) return Status::Ok();
    if (Status s = (*writer)["begin"].Run(); !s.ok()) return s;
    tx_open = true;
    return Status::Ok();
  }
  void Finish() {
    in_cycle = false;
    tx_open = false;
    ips_with_rows.clear();
    ips_with_streams.clear();
  }
  Result<Rows> ReadRows(const std::string& ip);
  Result<Sections> CheckSections(const std::string& ip,
                                                                                       const IpReport& report);
  Status RecordIpLocked(const IpReport& report, long long now);
  Status Apply(const std::string& ip, const std::string& range, const DnsblZoneResult& r,
               const std::optional<Row>& old, long long now);
  Status PutRow(const std::string& ip, const DnsblZoneResult& r, long long first_seen, long long now);
  Status Clear(const std::string& ip, const std::string& range, const std::string& zone,
               const Row& old, long long now);
};

Result<std::unique_ptr<StateStore>> StateStore::Open(const std::string& state_dir) {
  auto db = OpenSqliteStore(state_dir, "repwatch.db", kMigrations, kWriteSql, kReadSql);
  if (!db.ok()) return db.status();
  auto impl = std::make_unique<Impl>();
  impl->writer = std::move(db.value().writer);
  impl->reader = std::move(db.value().reader);
  return std::unique_ptr<StateStore>(new StateStore(std::move(impl)));
}

StateStore::StateStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

StateStore::~StateStore() { AbortCycle(); }

Status StateStore::BeginCycle(long long now) {
  std::lock_guard lock(impl_->write_mu);
  if (impl_->in_cycle) return Status::Error(impl_->writer->path() + ": BeginCycle: a cycle is already open");
  return impl_->Begin(now);
}

Status StateStore::Impl::Begin(long long now) {
  SqliteDb& db = *writer;
  if (Status s = db["begin"].Run(); !s.ok()) return s;
  in_cycle = true;
  tx_open = true;
  cycle_started = now;
  Stmt& q = db["ips with rows"];
  for (;;) {
    auto more = q.Step();
    if (!more.ok()) {
      db["rollback"].Run();
      Finish();
      return more.status();
    }
    if (!more.value()) break;
    ips_with_rows.insert(q.Text(0));
  }
  Stmt& streams = db["ips with streams"];
  for (;;) {
    auto more = streams.Step();
    if (!more.ok()) {
      db["rollback"].Run();
      Finish();
      return more.status();
    }
    if (!more.value()) return Status::Ok();
    ips_with_streams.insert(streams.Text(0));
  }
}

Status StateStore::AbortCycle() {
  std::lock_guard lock(impl_->write_mu);
  if (!impl_->in_cycle) return Status::Ok();
  const bool open = impl_->tx_open;
  impl_->Finish();
  return open ? (*impl_->writer)["rollback"].Run() : Status::Ok();
}

Status StateStore::EndCycle(long long now, double duration_seconds, size_t addresses, bool success) {
  std::lock_guard lock(impl_->write_mu);
  SqliteDb& db = *impl_->writer;
  if (!impl_->in_cycle) return Status::Error(db.path() + ": EndCycle without BeginCycle");
  if (Status s = impl_->Tx(); !s.ok()) {
    impl_->Finish();
    return s;
  }
  Status s = db["put cycle"]
                 .Bind(1, impl_->cycle_started)
                 .Bind(2, now)
                 .Bind(3, duration_seconds)
                 .Bind(4, static_cast<long long>(addresses))
                 .Bind(5, success ? 1LL : 0LL)
                 .Run();
  if (s.ok()) s = db["commit"].Run();
  if (!s.ok()) db["rollback"].Run();
  impl_->Finish();
  return s;
}

Status StateStore::Checkpoint() {
  std::lock_guard lock(impl_->write_mu);
  SqliteDb& db = *impl_->writer;
  if (!impl_->in_cycle) return Status::Error(db.path() + ": Checkpoint outside a cycle");
  if (!impl_->tx_open) return Status::Ok();
  if (Status s = db["commit"].Run(); !s.ok()) return s;
  impl_->tx_open = false;
  // Someone is waiting for the lock: let them have it before the cycle writes again.
  for (int i = 0; i < 20 && write_turn::Wanted(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  return Status::Ok();
}

namespace write_turn {
namespace {
std::atomic<int> g_waiting{0};
}
void Want() { g_waiting.fetch_add(1); }
void Done() { g_waiting.fetch_sub(1); }
bool Wanted() { return g_waiting.load() > 0; }
}  // namespace write_turn

Result<std::map<std::pair<std::string, std::string>, StreamRow>> StateStore::LoadStreams(const std::string& ip) {
  std::lock_guard lock(impl_->write_mu);
  SqliteDb& db = *impl_->writer;
  if (!impl_->in_cycle) return Status::Error(db.path() + ": LoadStreams outside a cycle");
  std::map<std::pair<std::string, std::string>, StreamRow> out;
  if (!impl_->ips_with_streams.contains(ip)) return out;
  Stmt& q = db["streams of ip"];
  q.Bind(1, ip);
  for (;;) {
    auto more = q.Step();
    if (!more.ok()) return more.status();
    if (!more.value()) return out;
    StreamRow r;
    r.problem = q.Text(2) == "problem";
    r.problems = static_cast<int>(q.Int(3));
    r.oks = static_cast<int>(q.Int(4));
    r.since = q.Int(5);
    if (!q.IsNull(6)) r.error_since = q.Int(6);
    r.failing_sent = q.Int(7) != 0;
    out[{q.Text(0), q.Text(1)}] = r;
  }
}

Status StateStore::SaveStream(const std::string& ip, const std::string& check, const std::string& subject,
                              const StreamRow& row) {
  std::lock_guard lock(impl_->write_mu);
  SqliteDb& db = *impl_->writer;
  if (!impl_->in_cycle) return Status::Error(db.path() + ": SaveStream outside a cycle");
  if (Status s = impl_->Tx(); !s.ok()) return s;
  if (row.IsDefault()) {
    if (!impl_->ips_with_streams.contains(ip)) return Status::Ok();
    return db["delete stream"].Bind(1, ip).Bind(2, check).Bind(3, subject).Run();
  }
  impl_->ips_with_streams.insert(ip);
  Stmt& put = db["put stream"];
  put.Bind(1, ip).Bind(2, check).Bind(3, subject).Bind(4, row.problem ? "problem" : "ok");
  put.Bind(5, static_cast<long long>(row.problems)).Bind(6, static_cast<long long>(row.oks)).Bind(7, row.since);
  put.BindOptional(8, row.error_since);
  put.Bind(9, row.failing_sent ? 1LL : 0LL);
  return put.Run();
}

Result<bool> StateStore::StoredProblem(const std::string& ip, const std::string& check, const std::string& subject) {
  std::lock_guard lock(impl_->write_mu);
  SqliteDb& db = *impl_->writer;
  auto first_row = [](Stmt& q) -> Result<bool> {
    auto row = q.Step();
    if (!row.ok()) return row.status();
    return row.value();
  };
  if (check == "dnsbl") {
    if (!impl_->ips_with_rows.contains(ip)) return false;
    Stmt& q = db["stored dnsbl status"];
    auto found = first_row(q.Bind(1, ip).Bind(2, subject));
    if (!found.ok() || !found.value()) return found;
    const bool listed = q.Text(0) == "listed" && q.Int(1) == 0;
    q.Reset();
    return listed;
  }
  if (check == "zone") {
    Stmt& q = db["stored zone health"];
    auto found = first_row(q.Bind(1, subject));
    if (!found.ok() || !found.value()) return found;
    const bool unhealthy = q.Text(0) != "ok";
    q.Reset();
    return unhealthy;
  }
  Stmt& q = db["read checks"];
  auto found = first_row(q.Bind(1, ip));
  if (!found.ok() || !found.value()) return found;
  bool problem = false;
  if (check == "fcrdns" && !q.IsNull(0)) {
    auto r = FcrdnsFromJson(nlohmann::json::parse(q.Text(0), nullptr, false));
    problem = r && r->verdict() == Verdict::kProblem;
  } else if (check == "spf" && !q.IsNull(1)) {
    if (auto list = SpfFromJson(nlohmann::json::parse(q.Text(1), nullptr, false)))
      for (const auto& d : *list) problem |= d.domain == subject && d.verdict() == Verdict::kProblem;
  } else if (check == "mx" && !q.IsNull(2)) {
    if (auto list = MxFromJson(nlohmann::json::parse(q.Text(2), nullptr, false)))
      for (const auto& d : *list) problem |= d.domain == subject && d.verdict() == Verdict::kProblem;
  }
  q.Reset();
  return problem;
}

Status StateStore::EnqueueWebhookItem(const std::string& sink, const std::string& type, const std::string& group_key,
                                      const std::string& item_json, long long now) {
  std::lock_guard lock(impl_->write_mu);
  SqliteDb& db = *impl_->writer;
  if (!impl_->in_cycle) return Status::Error(db.path() + ": EnqueueWebhookItem outside a cycle");
  if (Status s = impl_->Tx(); !s.ok()) return s;
  return db["enqueue item"].Bind(1, sink).Bind(2, type).Bind(3, group_key).Bind(4, item_json).Bind(5, now).Run();
}

Status StateStore::RecordZoneHealth(const ZoneHealthReport& health, long long now) {
  std::lock_guard lock(impl_->write_mu);
  SqliteDb& db = *impl_->writer;
  if (!impl_->in_cycle) return Status::Error(db.path() + ": RecordZoneHealth outside a cycle");
  if (Status s = impl_->Tx(); !s.ok()) return s;
  return db["put zone health"]
      .Bind(1, health.zone)
      .Bind(2, ZoneHealthName(health.health))
      .BindOptional(3, HealthName(health.ipv4))
      .BindOptional(4, HealthName(health.ipv6))
      .Bind(5, health.detail)
      .Bind(6, now)
      .Run();
}

Status StateStore::RecordIp(const IpReport& report, long long now) {
  std::lock_guard lock(impl_->write_mu);
  if (!impl_->in_cycle) return Status::Error(impl_->writer->path() + ": RecordIp outside a cycle");
  if (Status s = impl_->Tx(); !s.ok()) return s;
  return impl_->RecordIpLocked(report, now);
}

Status StateStore::Impl::RecordIpLocked(const IpReport& report, long long now) {
  SqliteDb& db = *writer;
  const std::string ip = report.ip.ToString();
  auto sections = CheckSections(ip, report);
  if (!sections.ok()) return sections.status();
  Status s = db["upsert ip"]
                 .Bind(1, ip)
                 .Bind(2, report.range)
                 .Bind(3, now)
                 .BindOptional(4, sections.value().fcrdns)
                 .BindOptional(5, sections.value().spf)
                 .BindOptional(6, sections.value().mx)
                 .Run();
  if (!s.ok() || !report.dnsbl) return s;

  auto rows = ReadRows(ip);
  if (!rows.ok()) return rows.status();
  for (const DnsblZoneResult& r : *report.dnsbl) {
    auto it = rows.value().find(r.zone);
    std::optional<Row> old;
    if (it != rows.value().end()) old = it->second;
    if (Status st = Apply(ip, report.range, r, old, now); !st.ok()) return st;
  }
  return Status::Ok();
}

// The fcrdns, spf and mx columns for a report. A section that ended in error keeps
// the stored problem it would otherwise overwrite: an error never clears. An MX
// session that got no reply (class error) keeps any stored result that got one (ok
// or not): a failed session says nothing about the receiver's opinion. Any reply,
// `other` included, is stored: its probed_at is what min_interval counts from.
Result<Sections> StateStore::Impl::CheckSections(const std::string& ip, const IpReport& report) {
  std::optional<FcrdnsReport> fcrdns = report.fcrdns;
  std::optional<std::vector<SpfDomainResult>> spf = report.spf;
  std::optional<std::vector<MxProbeResult>> mx = report.mx;
  const bool fcrdns_error = fcrdns && fcrdns->verdict() == Verdict::kError;
  const bool spf_error = spf && std::any_of(spf->begin(), spf->end(), [](const SpfDomainResult& r) {
                           return r.verdict() == Verdict::kError;
                         });
  const bool mx_error = mx && std::any_of(mx->begin(), mx->end(), [](const MxProbeResult& r) {
                          return r.cls == SmtpClass::kError;
                        });
  if (fcrdns_error || spf_error || mx_error) {
    Stmt& read = (*writer)["read checks"];
    read.Bind(1, ip);
    auto row = read.Step();
    if (!row.ok()) return row.status();
    if (row.value()) {
      if (fcrdns_error && !read.IsNull(0))
        if (auto old = FcrdnsFromJson(nlohmann::json::parse(read.Text(0), nullptr, false));
            old && old->verdict() == Verdict::kProblem)
          fcrdns = std::move(old);
      if (spf_error && !read.IsNull(1))
        if (auto old = SpfFromJson(nlohmann::json::parse(read.Text(1), nullptr, false)))
          for (SpfDomainResult& r : *spf)
            for (const SpfDomainResult& o : *old)
              if (r.verdict() == Verdict::kError && o.domain == r.domain && o.verdict() == Verdict::kProblem) r = o;
      if (mx_error && !read.IsNull(2))
        if (auto old = MxFromJson(nlohmann::json::parse(read.Text(2), nullptr, false)))
          for (MxProbeResult& r : *mx)
            for (const MxProbeResult& o : *old)
              if (r.cls == SmtpClass::kError && o.domain == r.domain && o.cls != SmtpClass::kError) r = o;
      read.Reset();
    }
  }
  Sections out;
  if (fcrdns) out.fcrdns = FcrdnsJson(*fcrdns).dump();
  if (spf) out.spf = SpfJson(*spf).dump();
  if (mx) {
    for (MxProbeResult& r : *mx) r.reused = false;  // a property of one cycle's report, not of the result
    out.mx = MxJson(*mx).dump();
  }
  return out;
}

Result<Rows> StateStore::Impl::ReadRows(const std::string& ip) {
  Rows rows;
  if (!ips_with_rows.contains(ip)) return rows;
  Stmt& read = (*writer)["read rows"];
  read.Bind(1, ip);
  for (;;) {
    auto more = read.Step();
    if (!more.ok()) return more.status();
    if (!more.value()) return rows;
    rows.emplace(read.Text(0), Row{StatusFromName(read.Text(1)), read.Int(2)});
  }
}

Status StateStore::Impl::Apply(const std::string& ip, const std::string& range, const DnsblZoneResult& r,
                               const std::optional<Row>& old, long long now) {
  const bool was_listed = old && old->status == DnsblStatus::kListed;
  switch (r.status) {
    case DnsblStatus::kClean:
      return old ? Clear(ip, range, r.zone, *old, now) : Status::Ok();
    case DnsblStatus::kListed:
      return PutRow(ip, r, was_listed ? old->first_seen : now, now);
    case DnsblStatus::kError:
      if (was_listed) return (*writer)["note error"].Bind(1, ip).Bind(2, r.zone).Bind(3, r.error).Run();
      return PutRow(ip, r, old ? old->first_seen : now, now);
  }
  return Status::Ok();
}

Status StateStore::Impl::PutRow(const std::string& ip, const DnsblZoneResult& r, long long first_seen,
                                long long now) {
  ips_with_rows.insert(ip);
  return (*writer)["put row"]
      .Bind(1, ip)
      .Bind(2, r.zone)
      .Bind(3, DnsblStatusName(r.status))
      .Bind(4, r.allowlist ? 1LL : 0LL)
      .Bind(5, Json(r.codes))
      .Bind(6, Json(r.meanings))
      .Bind(7, r.txt)
      .Bind(8, r.delist_url)
      .Bind(9, r.status == DnsblStatus::kError ? r.error : std::string())
      .Bind(10, first_seen)
      .Bind(11, now)
      .Run();
}

Status StateStore::Impl::Clear(const std::string& ip, const std::string& range, const std::string& zone,
                               const Row& old, long long now) {
  if (old.status == DnsblStatus::kListed) {
    Status s = (*writer)["archive listing"].Bind(1, ip).Bind(2, zone).Bind(3, range).Bind(4, now).Run();
    if (!s.ok()) return s;
  }
  return (*writer)["delete row"].Bind(1, ip).Bind(2, zone).Run();
}

Result<std::vector<StoredListing>> StateStore::CurrentListings() const {
  std::lock_guard lock(impl_->read_mu);
  Stmt& q = (*impl_->reader)["read listings"];
  std::vector<StoredListing> out;
  for (;;) {
    auto more = q.Step();
    if (!more.ok()) return more.status();
    if (!more.value()) break;
    out.push_back(StoredListing{q.Text(0), q.Text(1), q.Text(2), FromJson(q.Text(3)), FromJson(q.Text(4)),
                                q.Text(5), q.Text(6), q.Int(7) != 0, q.Int(8), q.Int(9), q.Text(10)});
  }
  return out;
}

namespace {

DnsblZoneResult ZoneResultFromRow(const Stmt& q) {
  DnsblZoneResult r;
  r.zone = q.Text(0);
  r.status = StatusFromName(q.Text(1));
  r.allowlist = q.Int(2) != 0;
  r.codes = FromJson(q.Text(3));
  r.meanings = FromJson(q.Text(4));
  r.txt = q.Text(5);
  r.delist_url = q.Text(6);
  r.error = q.Text(7);
  return r;
}

DnsblZoneResult CleanResult(const std::string& zone) {
  DnsblZoneResult r;
  r.zone = zone;
  r.status = DnsblStatus::kClean;
  return r;
}

}  // namespace

Result<std::optional<IpReport>> StateStore::LoadIp(const IpAddress& ip,
                                                   const std::vector<std::string>& zones_for_family) const {
  std::lock_guard lock(impl_->read_mu);
  SqliteDb& db = *impl_->reader;
  const std::string text = ip.ToString();
  // One read transaction, so the ips row and its dnsbl rows come from the same cycle.
  if (Status s = db["begin read"].Run(); !s.ok()) return s;
  struct EndRead {
    SqliteDb& db;
    ~EndRead() { db["end read"].Run(); }
  } end_read{db};

  Stmt& q = db["read ip"];
  auto found = q.Bind(1, text).Step();
  if (!found.ok()) return found.status();
  if (!found.value()) return std::optional<IpReport>();
  IpReport report;
  report.ip = ip;
  report.range = q.Text(0);
  report.dnsbl.emplace();
  if (!q.IsNull(1)) {
    report.fcrdns = FcrdnsFromJson(nlohmann::json::parse(q.Text(1), nullptr, false));
    if (!report.fcrdns) return Status::Error(db.path() + ": ips.fcrdns of " + text + " is not valid");
  }
  if (!q.IsNull(2)) {
    report.spf = SpfFromJson(nlohmann::json::parse(q.Text(2), nullptr, false));
    if (!report.spf) return Status::Error(db.path() + ": ips.spf of " + text + " is not valid");
  }
  if (!q.IsNull(3)) {
    report.mx = MxFromJson(nlohmann::json::parse(q.Text(3), nullptr, false));
    if (!report.mx) return Status::Error(db.path() + ": ips.mx of " + text + " is not valid");
  }
  q.Reset();

  std::map<std::string, DnsblZoneResult, std::less<>> rows;
  Stmt& z = db["read ip rows"];
  z.Bind(1, text);
  for (;;) {
    auto more = z.Step();
    if (!more.ok()) return more.status();
    if (!more.value()) break;
    DnsblZoneResult r = ZoneResultFromRow(z);
    rows.emplace(r.zone, std::move(r));
  }
  for (const std::string& zone : zones_for_family) {
    auto it = rows.find(zone);
    report.dnsbl->push_back(it != rows.end() ? it->second : CleanResult(zone));
  }
  return std::optional<IpReport>(std::move(report));
}

Status StateStore::ForEachCheckedIp(const std::function<void(IpReport&&)>& fn) const {
  std::lock_guard lock(impl_->read_mu);
  SqliteDb& db = *impl_->reader;
  Stmt& q = db["read checked ips"];
  for (;;) {
    auto more = q.Step();
    if (!more.ok()) return more.status();
    if (!more.value()) return Status::Ok();
    auto ip = IpAddress::Parse(q.Text(0));
    if (!ip.ok()) continue;  // written by us; skip rather than fail start-up
    IpReport r;
    r.ip = ip.value();
    r.range = q.Text(1);
    if (!q.IsNull(2)) r.fcrdns = FcrdnsFromJson(nlohmann::json::parse(q.Text(2), nullptr, false));
    if (!q.IsNull(3)) r.spf = SpfFromJson(nlohmann::json::parse(q.Text(3), nullptr, false));
    if (!q.IsNull(4)) r.mx = MxFromJson(nlohmann::json::parse(q.Text(4), nullptr, false));
    fn(std::move(r));
  }
}

Result<std::vector<MxProbeResult>> StateStore::StoredMx(const IpAddress& ip) const {
  std::lock_guard lock(impl_->read_mu);
  SqliteDb& db = *impl_->reader;
  Stmt& q = db["read mx"];
  auto found = q.Bind(1, ip.ToString()).Step();
  if (!found.ok()) return found.status();
  std::vector<MxProbeResult> out;
  if (found.value() && !q.IsNull(0)) {
    auto parsed = MxFromJson(nlohmann::json::parse(q.Text(0), nullptr, false));
    if (!parsed) {
      q.Reset();
      return Status::Error(db.path() + ": ips.mx of " + ip.ToString() + " is not valid");
    }
    out = std::move(*parsed);
  }
  q.Reset();
  return out;
}

Result<std::vector<ZoneHealthReport>> StateStore::ZoneHealths() const {
  std::lock_guard lock(impl_->read_mu);
  Stmt& q = (*impl_->reader)["read zone health"];
  std::vector<ZoneHealthReport> out;
  for (;;) {
    auto more = q.Step();
    if (!more.ok()) return more.status();
    if (!more.value()) break;
    ZoneHealthReport h;
    h.zone = q.Text(0);
    h.health = HealthFromName(q.Text(1));
    if (!q.IsNull(2)) h.ipv4 = HealthFromName(q.Text(2));
    if (!q.IsNull(3)) h.ipv6 = HealthFromName(q.Text(3));
    h.detail = q.Text(4);
    out.push_back(std::move(h));
  }
  return out;
}

Result<long long> StateStore::LastSuccessfulCycle() const {
  std::lock_guard lock(impl_->read_mu);
  Stmt& q = (*impl_->reader)["read last success"];
  auto row = q.Step();
  if (!row.ok()) return row.status();
  long long v = row.value() ? q.Int(0) : 0;
  q.Reset();
  return v;
}

}  // namespace repwatch
