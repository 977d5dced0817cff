#include "agent/daemon.h"

#include <algorithm>
#include <thread>

#include <fmt/format.h>

#include "agent/alerts.h"
#include "agent/clock.h"
#include "agent/dns_cache.h"
#include "agent/dns_client.h"
#include "agent/dns_stats.h"
#include "agent/log.h"
#include "agent/scheduler.h"
#include "agent/state_store.h"
#include "agent/targets.h"
#include "agent/volume_ingest.h"
#include "agent/volume_store.h"
#include "build_info.h"
#include "checks/check.h"
#include "checks/mx_probe.h"
#include "checks/warmup.h"
#include "exporters/api.h"
#include "exporters/http_server.h"
#include "exporters/metrics.h"
#include "exporters/volume_api.h"
#include "exporters/webhooks.h"

namespace repwatch {

std::vector<std::string> RestartOnlyChanges(const Config& running, const Config& next, bool listen_from_flag) {
  std::vector<std::string> out;
  if (next.agent.state_dir != running.agent.state_dir)
    out.push_back(fmt::format("agent.state_dir changed to {}: needs a restart; the state stays in {}",
                              next.agent.state_dir, running.agent.state_dir));
  if (!listen_from_flag && next.agent.listen_address != running.agent.listen_address)
    out.push_back(fmt::format("agent.listen_address changed to {}: needs a restart; still listening on {}",
                              next.agent.listen_address, running.agent.listen_address));
  return out;
}

void KeepRestartOnly(const Config& running, Config& next) {
  next.agent.state_dir = running.agent.state_dir;
  next.agent.listen_address = running.agent.listen_address;
}

Status CheckWebhookKeys(const Config& config) {
  std::string errors;
  for (const WebhookConfig& w : config.webhooks) {
    if (w.secret.empty()) continue;
    if (auto key = DecodeWhsec(w.secret); !key.ok())
      errors += fmt::format("{}{}:{}:{}: webhook \"{}\": {}", errors.empty() ? "" : "\n", w.pos.file, w.pos.line,
                            w.pos.column, w.name, key.error());
  }
  return errors.empty() ? Status::Ok() : Status::Error(errors);
}

Result<Config> LoadDaemonConfig(const std::string& path) {
  auto config = LoadConfig(path);
  if (!config.ok()) return config;
  if (Status keys = CheckWebhookKeys(config.value()); !keys.ok()) return keys;
  return config;
}

namespace {

// The stored listings of the addresses this agent's shard owns. After a resize the
// store still holds rows for addresses another agent now watches; those are not ours
// to export.
Result<std::vector<StoredListing>> OwnedListings(const StateStore& store, const Shard& shard) {
  auto listings = store.CurrentListings();
  if (!listings.ok() || shard.all()) return listings;
  std::vector<StoredListing> owned;
  for (auto& l : listings.value())
    if (auto ip = IpAddress::Parse(l.ip); ip.ok() && shard.Owns(ip.value())) owned.push_back(std::move(l));
  return owned;
}

// The MX probe's memory of earlier sessions, from the state store.
class StoredMxHistory final : public MxHistory {
 public:
  explicit StoredMxHistory(const StateStore& store) : store_(store) {}
  std::vector<MxProbeResult> Last(const IpAddress& ip) override {
    auto stored = store_.StoredMx(ip);
    if (stored.ok()) return std::move(stored).value();
    log::Error(stored.error() + " (probing again)");
    return {};
  }

 private:
  const StateStore& store_;
};

}  // namespace

struct Daemon::Shared {
  SystemClock clock;
  DnsStats stats;
  std::unique_ptr<StateStore> store;
  std::unique_ptr<StoredMxHistory> mx_history;
  std::unique_ptr<VolumeStore> volume;  // opened when warm-up is first on, then kept
  std::shared_ptr<MetricsExporter> exporter;
  long long config_loaded_at = 0;  // Unix time the running config was loaded
  std::atomic<bool> ready{false};
  std::unique_ptr<HttpServer> server;
  bool serving = false;
};

// Declared in the order things are built; destroyed the other way round: threads
// first, then checks (MX workers), then the DNS client their questions went to.
struct Daemon::Cycle {
  std::shared_ptr<const Config> config;
  std::unique_ptr<DnsClient> client;
  std::unique_ptr<CachingResolver> cache;
  std::unique_ptr<TargetSet> targets;
  std::unique_ptr<AlertTracker> alerts;
  std::vector<std::unique_ptr<Check>> checks;
  std::unique_ptr<Scheduler> scheduler;
  std::shared_ptr<WebhookStats> webhook_stats;
  std::unique_ptr<WebhookSender> sender;
  std::unique_ptr<VolumeIngester> ingester;
};

Daemon::Daemon(DaemonOptions options)
    : options_(std::move(options)), shared_(std::make_unique<Shared>()) {}

Daemon::~Daemon() {
  if (http_stopper_.joinable()) http_stopper_.join();
  if (shared_->server) shared_->server->Stop();  // its routes point into this object
  RetireCycle();
}

void Daemon::RetireCycle() {
  if (shared_->exporter) shared_->exporter->SetVolumeSources({});  // scrapes stop asking the ingester first
  cycle_.reset();
}

void Daemon::BeginShutdown() {
  if (http_stopper_.joinable()) return;
  {
    std::lock_guard lock(reload_mu_);
    closing_ = true;
    reload_cv_.notify_all();
  }
  if (shared_->server) http_stopper_ = std::thread([this] { shared_->server->Stop(); });
}

Result<std::unique_ptr<Daemon>> Daemon::Create(DaemonOptions options, Config config) {
  auto shared_config = std::make_shared<const Config>(std::move(config));
  std::unique_ptr<Daemon> d(new Daemon(std::move(options)));
  Shared& s = *d->shared_;
  auto store = StateStore::Open(shared_config->agent.state_dir);
  if (!store.ok()) return store.status();
  s.store = std::move(store).value();
  s.mx_history = std::make_unique<StoredMxHistory>(*s.store);
  s.exporter = std::make_shared<MetricsExporter>(s.stats);
  s.config_loaded_at = UnixSeconds(s.clock.WallNow());
  s.exporter->SetConfigReload(true, s.config_loaded_at);
  auto cycle = d->Build(shared_config);
  if (!cycle.ok()) return cycle.status();
  d->cycle_ = std::move(cycle).value();
  return d;
}

Result<std::unique_ptr<Daemon::Cycle>> Daemon::Build(std::shared_ptr<const Config> config) {
  Shared& s = *shared_;
  auto c = std::make_unique<Cycle>();
  c->config = config;
  auto client = DnsClient::Create(config->dns, s.clock, s.stats);
  if (!client.ok()) return client.status();
  c->client = std::move(client).value();
  c->cache = std::make_unique<CachingResolver>(*c->client, s.clock);
  c->targets = std::make_unique<TargetSet>(TargetSet::FromRanges(config->ranges));
  c->targets->Restrict(options_.shard);
  c->alerts = std::make_unique<AlertTracker>(*config, *s.store);
  CheckEnv env{*c->client, s.clock, c->cache.get()};
  env.mx_history = s.mx_history.get();
  env.stop = &cycle_stop_;
  // Volume: its own database, fed by the log ingester and POST /api/v1/volume.
  if (WarmupCheckEnabled(*config)) {
    if (!s.volume) {
      auto opened = VolumeStore::Open(config->agent.state_dir);
      if (!opened.ok()) return opened.status();
      s.volume = std::move(opened).value();
    }
    env.volume = s.volume.get();
    if (!config->volume.sources.empty())
      c->ingester = std::make_unique<VolumeIngester>(config->volume, *s.volume, s.clock);
  }
  c->checks = MakeChecks(*config, env, c->targets->families());
  c->scheduler = std::make_unique<Scheduler>(c->checks, *c->cache, s.clock);
  // Webhooks leave from the outbox on their own thread and connection; events
  // raised earlier and not yet delivered go first.
  c->webhook_stats = std::make_shared<WebhookStats>(config->webhooks);
  if (!config->webhooks.empty()) {
    auto sender =
        WebhookSender::Create(config->webhooks, config->agent.instance, config->agent.state_dir, s.clock, c->webhook_stats);
    if (!sender.ok()) return sender.status();
    c->sender = std::move(sender).value();
  }
  return c;
}

void Daemon::Install(std::unique_ptr<Cycle> next) {
  Shared& s = *shared_;
  RetireCycle();  // one sender and one ingester at a time on the same databases
  cycle_ = std::move(next);
  s.exporter->SetWebhookStats(cycle_->sender ? cycle_->webhook_stats : nullptr);
  if (cycle_->ingester)
    s.exporter->SetVolumeSources([ingester = cycle_->ingester.get()] { return ingester->Stats(); });
  {
    std::lock_guard lock(token_mu_);
    token_ = cycle_->config->api.token;
  }
  if (cycle_->sender) cycle_->sender->Start();
  AddApiRoutes(*s.server, cycle_->config, *s.store);
  if (s.volume) AddVolumeRoutes(*s.server, cycle_->config, *s.volume, s.clock, options_.shard);
  if (cycle_->ingester) {
    // A one-shot run counts what the logs hold now. A daemon reads them on the
    // ingester's thread only: a backlog of gigabytes after downtime must not hold up
    // the HTTP listener, a reload or SIGTERM (that thread stops between batches).
    if (options_.once) {
      if (Status st = cycle_->ingester->CatchUp(); !st.ok()) log::Error(st.message());
    } else {
      cycle_->ingester->Start();
    }
  }
}

// Publishes what the store knew at start-up, so listing series do not vanish (and
// their alerts resolve) between a restart and the end of the first cycle.
void Daemon::PublishStoredState() {
  const Config& config = *cycle_->config;
  const StateStore& store = *shared_->store;
  const Shard& shard = options_.shard;
  auto listings = OwnedListings(store, shard);
  auto zones = store.ZoneHealths();
  auto last_success = store.LastSuccessfulCycle();
  if (!listings.ok() || !zones.ok() || !last_success.ok()) {
    log::Error("cannot read the stored state for /metrics: " +
               (!listings.ok() ? listings.error() : !zones.ok() ? zones.error() : last_success.error()));
    return;
  }
  if (last_success.value() == 0) return;  // nothing stored yet
  CycleReport stored;
  for (const auto& z : zones.value())
    if (std::any_of(config.dnsbl.begin(), config.dnsbl.end(), [&z](const DnsblZone& c) { return c.zone == z.zone; }))
      stored.zones.push_back(z);
  SnapshotBuilder snapshot(config);
  snapshot.UseStoredListings(listings.value());
  Status checked = store.ForEachCheckedIp([&](IpReport&& r) {
    if (shard.Owns(r.ip)) snapshot.AddStored(r);
  });
  if (!checked.ok()) log::Error("cannot read the stored FCrDNS/SPF results: " + checked.message());
  // Warm-up comes from volume.db, not from DNS: the start-up snapshot carries it too,
  // so repwatch_warmup_* (and the alerts on them) do not wait for a slow first cycle.
  for (auto& check : cycle_->checks) {
    if (check->Name() != "warmup") continue;
    CycleReport unused;
    check->BeginCycle(&unused, [] {});
    for (size_t i = 0; i < cycle_->targets->size(); ++i) {
      const Target& t = cycle_->targets->At(i);
      IpReport r;
      r.ip = t.ip;
      if (t.range) r.range = t.range->name;
      check->CheckIp(t, &r, [] {});  // synchronous: counts from volume.db
      if (r.warmup || r.volume) snapshot.AddStored(r);
    }
  }
  snapshot.SetCycle(stored);
  shared_->exporter->Publish(snapshot.FinishRestored(last_success.value()));
}

// One cycle: check everything, store it, publish metrics. Returns whether the cycle
// completed (a stop or reload request cuts it short).
bool Daemon::RunOneCycle(std::chrono::nanoseconds spread) {
  const Config& config = *cycle_->config;
  Cycle& c = *cycle_;
  Clock& clock = shared_->clock;
  StateStore& store = *shared_->store;
  const long long started = UnixSeconds(clock.WallNow());
  cycle_stop_ = stop_->load();
  c.cache->Clear();  // each cycle sees the DNS as it is now
  if (Status s = store.BeginCycle(started); !s.ok()) log::Error(s.message());
  SnapshotBuilder snapshot(config);
  size_t listed = 0, errors = 0, store_failures = 0, fcrdns_problems = 0, spf_problems = 0;
  CycleOptions options;
  options.spread = spread;
  options.stop = &cycle_stop_;
  options.stop_grace = kStopGrace;
  // Results and the events they raise are committed after every address of a spread
  // cycle (addresses arrive seconds apart), and at most 200 ms after they were written
  // in a fast one -- also while no address finishes for a long time (slow MX sessions)
  // -- so the webhook sender gets the write lock in between and events leave during
  // the cycle.
  auto last_checkpoint = clock.Now();
  auto commit_after = [&](std::chrono::milliseconds quiet) {
    if (clock.Now() - last_checkpoint < quiet) return;
    last_checkpoint = clock.Now();
    if (Status s = store.Checkpoint(); !s.ok() && store_failures++ == 0) log::Error(s.message());
  };
  auto checkpoint = [&] { commit_after(spread.count() == 0 ? std::chrono::milliseconds(200) : std::chrono::milliseconds(0)); };
  // The safe point for stop and reload requests: between two polls of the loop.
  auto watch = [&] {
    if (stop_->load()) {
      cycle_stop_ = true;
      BeginShutdown();
    }
    if (!options_.once) TryLoad();
  };
  options.on_cycle_begun = [&](const CycleReport&) { watch(); };
  options.on_poll = [&] {
    commit_after(std::chrono::milliseconds(200));
    watch();
  };
  auto outcome = c.scheduler->RunCycle(*c.targets, options, [&](IpReport&& r) {
    const long long now = UnixSeconds(clock.WallNow());
    // If its alert streams could not be written, the address's results are not stored
    // either: next cycle sees the change again instead of taking it for old news.
    if (Status a = c.alerts->Record(r, now); !a.ok()) {
      if (store_failures++ == 0) log::Error(a.message());
    } else if (Status s = store.RecordIp(r, started); !s.ok() && store_failures++ == 0) {
      log::Error(s.message());
    }
    checkpoint();
    for (const auto& z : r.dnsbl.value_or(std::vector<DnsblZoneResult>{})) {
      listed += z.verdict() == Verdict::kProblem;
      errors += z.verdict() == Verdict::kError;
    }
    if (r.fcrdns) {
      fcrdns_problems += r.fcrdns->verdict() == Verdict::kProblem;
      errors += r.fcrdns->verdict() == Verdict::kError;
    }
    for (const auto& d : r.spf.value_or(std::vector<SpfDomainResult>{})) {
      spf_problems += d.verdict() == Verdict::kProblem;
      errors += d.verdict() == Verdict::kError;
    }
    snapshot.Add(r);
  });
  for (const auto& z : outcome.report.zones) {
    if (Status s = c.alerts->RecordZone(z, started); !s.ok()) log::Error(s.message());
    if (Status s = store.RecordZoneHealth(z, started); !s.ok()) log::Error(s.message());
    if (z.health != ZoneHealth::kOk) log::Warn(fmt::format("zone {} is {}: {}", z.zone, ZoneHealthName(z.health), z.detail));
  }
  snapshot.SetCycle(outcome.report);
  const double seconds = std::chrono::duration<double>(outcome.duration).count();
  const long long finished = UnixSeconds(clock.WallNow());
  const bool ok = outcome.completed && store_failures == 0;
  if (Status s = store.EndCycle(finished, seconds, outcome.addresses_done, ok); !s.ok()) log::Error(s.message());
  if (outcome.completed) {
    // Listings come from the store: a listing whose lookups now end in error stays listed.
    if (auto stored = OwnedListings(store, options_.shard); stored.ok())
      snapshot.UseStoredListings(stored.value());
    else
      log::Error(stored.error());
    shared_->exporter->Publish(snapshot.Finish(seconds, ok ? finished : 0));
  }
  std::string events;
  for (const auto& [type, n] : c.alerts->raised()) events += fmt::format("{}{} {}", events.empty() ? "" : ", ", n, type);
  log::Info(fmt::format("cycle {}: {} addresses in {:.1f}s, {} listings, {} with reverse DNS/HELO problems, "
                        "{} (address, domain) not authorised by SPF, {} results could not tell; events so far: {}{}",
                        outcome.completed ? "done" : "stopped early", outcome.addresses_done, seconds, listed,
                        fcrdns_problems, spf_problems, errors, events.empty() ? "none" : events,
                        store_failures ? fmt::format(", {} state writes failed", store_failures) : ""));
  return outcome.completed;
}

Status Daemon::RequestReload(std::chrono::milliseconds timeout) {
  std::unique_lock lock(reload_mu_);
  if (closing_) return Status::Error("repwatch is shutting down");
  const uint64_t mine = ++reload_requested_;
  http_reload_ = true;
  if (!reload_cv_.wait_for(lock, timeout, [&] { return reload_done_ >= mine || closing_; }))
    return Status::Error(fmt::format("not tried within {} s; it still will be: watch repwatch_config_last_reload_successful",
                                     std::chrono::duration_cast<std::chrono::seconds>(timeout).count()));
  if (reload_done_ < mine) return Status::Error("repwatch is shutting down");
  return reload_outcome_;
}

void Daemon::TryLoad() {
  const bool signalled = reload_flag_->exchange(false);
  const bool asked = http_reload_.exchange(false);
  if (!signalled && !asked) return;
  uint64_t serves = 0;
  {
    std::lock_guard lock(reload_mu_);
    serves = reload_requested_;
  }
  log::Info(fmt::format("reloading {} ({})", options_.config_path, signalled ? "SIGHUP" : "POST /-/reload"));
  auto loaded = LoadDaemonConfig(options_.config_path);
  if (!loaded.ok()) {
    // The file as it is now does not load: a good config read earlier and not applied
    // yet is dropped too (its requests get this answer), so what runs never differs
    // from what repwatch_config_last_reload_successful says.
    pending_.reset();
    return FinishReload(loaded.status(), serves);
  }
  for (const auto& w : loaded.value().warnings) log::Warn(w.ToString());
  pending_ = std::move(loaded).value();
  pending_serves_ = serves;
  cycle_stop_ = true;  // a good config: the running cycle stops at its next clean point
}

void Daemon::ApplyPending() {
  Config next = std::move(*pending_);
  pending_.reset();
  const Config& running = *cycle_->config;
  for (const std::string& w : RestartOnlyChanges(running, next, !options_.listen.empty())) log::Warn(w);
  KeepRestartOnly(running, next);
  auto built = Build(std::make_shared<const Config>(std::move(next)));
  if (!built.ok()) return FinishReload(built.status(), pending_serves_);
  Install(std::move(built).value());
  const Config& c = *cycle_->config;
  log::Info(fmt::format("config reloaded: {} addresses against {} zones, {} webhooks", cycle_->targets->size(),
                        c.dnsbl.size(), c.webhooks.size()));
  FinishReload(Status::Ok(), pending_serves_);
}

void Daemon::FinishReload(Status outcome, uint64_t served) {
  Shared& s = *shared_;
  if (outcome.ok()) {
    s.config_loaded_at = UnixSeconds(s.clock.WallNow());
  } else {
    log::Error(fmt::format("reload of {} failed; the running config is kept:\n{}", options_.config_path,
                           outcome.message()));
  }
  s.exporter->SetConfigReload(outcome.ok(), s.config_loaded_at);
  std::lock_guard lock(reload_mu_);
  reload_done_ = std::max(reload_done_, served);
  reload_outcome_ = std::move(outcome);
  reload_cv_.notify_all();
}

// After a one-shot cycle: give the webhook sender up to 10 s to deliver what the
// cycle raised. Whatever is left stays in the outbox for the next run.
void Daemon::DrainWebhooks() {
  if (!cycle_->sender) return;
  Clock& clock = shared_->clock;
  const auto deadline = clock.Now() + std::chrono::seconds(10);
  long long left = 0;
  for (;;) {
    auto undelivered = cycle_->sender->Undelivered();
    if (!undelivered.ok()) return log::Error(undelivered.error());
    left = undelivered.value();
    if (left == 0 || stop_->load() || clock.Now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (left > 0)
    log::Warn(fmt::format("{} webhook item(s) not delivered yet; they stay in the outbox of {} for the next run", left,
                          cycle_->config->agent.state_dir));
}

int Daemon::Run(const std::atomic<bool>& stop, std::atomic<bool>& reload) {
  stop_ = &stop;
  reload_flag_ = &reload;
  Shared& s = *shared_;
  const bool once = options_.once;
  PublishStoredState();
  s.server = std::make_unique<HttpServer>(options_.listen.empty() ? cycle_->config->agent.listen_address
                                                                  : options_.listen);
  AddStandardRoutes(*s.server, StandardRoutes{{s.exporter}, [&s] { return s.ready.load(); }});
  if (!once)
    AddReloadRoute(*s.server, ReloadRoute{[this] { return RequestReload(kReloadTimeout); },
                                          [this] { return api_token(); }});
  Install(std::move(cycle_));
  // A one-shot run (cron, a benchmark) serves HTTP only when asked to, so it never
  // collides with a daemon already listening on the configured address.
  s.serving = !once || !options_.listen.empty();
  if (Status st = s.serving ? s.server->Start() : Status::Ok(); !st.ok()) {
    log::Error(st.message());
    return 1;
  }
  log::Info(fmt::format("repwatch {} ({}) watching {} addresses{} against {} zones{}", build::kVersion,
                        build::kRevision, cycle_->targets->size(),
                        options_.shard.all() ? "" : fmt::format(" (shard {} of {})", options_.shard.index, options_.shard.count),
                        cycle_->config->dnsbl.size(), s.serving ? "; listening on " + s.server->listen_address() : ""));

  // The first cycle runs as fast as the DNS rate limits allow so the agent is ready
  // soon after start, and so does the first after a reload; later cycles spread
  // their lookups over 90% of the interval.
  bool fast = true;
  while (!stop) {
    const auto cycle_start = s.clock.Now();
    const auto interval = cycle_->config->agent.interval;
    const auto spread =
        fast || once ? std::chrono::nanoseconds(0) : std::chrono::duration_cast<std::chrono::nanoseconds>(interval * 0.9);
    if (RunOneCycle(spread)) s.ready = true;
    fast = false;
    if (once) {
      DrainWebhooks();
      break;
    }
    while (!stop && !pending_ && s.clock.Now() < cycle_start + interval) {
      TryLoad();
      if (!pending_) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    if (pending_ && !stop) {
      ApplyPending();
      fast = true;
    }
  }
  BeginShutdown();
  RetireCycle();  // the webhook sender and the log ingester stop
  if (http_stopper_.joinable()) http_stopper_.join();
  log::Info(stop ? "stopping on signal" : "done");
  return 0;
}

std::string Daemon::api_token() const {
  std::lock_guard lock(token_mu_);
  return token_;
}

}  // namespace repwatch
