// repwatch command line: run (the daemon), check (one pass, nothing stored),
// validate (config errors as file:line:col: message). Names fixed in DESIGN.md.
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <iterator>
#include <thread>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "agent/alerts.h"
#include "agent/config.h"
#include "agent/dns_cache.h"
#include "agent/dns_client.h"
#include "agent/log.h"
#include "agent/scheduler.h"
#include "agent/smtp_reply.h"
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
#include "exporters/report_format.h"
#include "exporters/volume_api.h"
#include "exporters/webhooks.h"

namespace repwatch {
namespace {

std::atomic<bool> g_stop{false};

void OnSignal(int) { g_stop = true; }

void InstallSignalHandlers() {
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
}

// Loads the config, printing every error (and warning) as file:line:col: message.
std::optional<Config> Load(const std::string& path) {
  auto config = LoadConfig(path);
  if (!config.ok()) {
    std::cerr << config.error() << (config.error().ends_with('\n') ? "" : "\n");
    return std::nullopt;
  }
  for (const auto& w : config.value().warnings) log::Warn(w.ToString());
  return std::move(config).value();
}

int ValidateCommand(const std::string& path) {
  auto config = LoadConfig(path);
  if (!config.ok()) {
    std::cerr << config.error() << (config.error().ends_with('\n') ? "" : "\n");
    return 1;
  }
  const Config& c = config.value();
  for (const auto& w : c.warnings) std::cerr << w.pos.file << ":" << w.pos.line << ":" << w.pos.column << ": warning: " << w.message << "\n";
  // The signing key itself (24-64 bytes of base64 after whsec_), as the sender will read it.
  bool keys_ok = true;
  for (const WebhookConfig& w : c.webhooks) {
    if (w.secret.empty()) continue;
    if (auto key = DecodeWhsec(w.secret); !key.ok()) {
      std::cerr << fmt::format("{}:{}:{}: webhook \"{}\": {}\n", w.pos.file, w.pos.line, w.pos.column, w.name,
                               key.error());
      keys_ok = false;
    }
  }
  if (!keys_ok) return 1;
  std::cout << fmt::format(
      "{}: ok ({} ranges, {} addresses, {} DNSBL zones, FCrDNS {}, SPF {}, MX probe {}, warm-up {}, {} webhooks)\n",
      path, c.ranges.size(), TargetSet::FromRanges(c.ranges).size(), c.dnsbl.size(), c.fcrdns.enabled ? "on" : "off",
      c.spf.enabled ? "on" : "off",
      c.mx_probe.enabled ? fmt::format("on ({} receivers)", c.mx_probe.domains.size()) : std::string("off"),
      WarmupCheckEnabled(c) ? fmt::format("on ({} log sources)", c.volume.sources.size()) : std::string("off"),
      c.webhooks.size());
  return 0;
}

int CheckCommand(const std::string& path, const std::vector<std::string>& args, bool json) {
  auto config = Load(path);
  if (!config) return 2;
  auto targets = TargetSet::FromArguments(args, config->ranges);
  if (!targets.ok()) {
    std::cerr << targets.error() << "\n";
    return 2;
  }
  SystemClock clock;
  DnsStats stats;
  auto client = DnsClient::Create(config->dns, clock, stats);
  if (!client.ok()) {
    std::cerr << client.error() << "\n";
    return 1;
  }
  CachingResolver cache(*client.value(), clock);
  CheckEnv env{*client.value(), clock, &cache};
  env.stop = &g_stop;
  // Warm-up reads the counts the daemon keeps, when there are any; check writes nothing.
  std::unique_ptr<VolumeStore> volume;
  if (WarmupCheckEnabled(*config) && access((config->agent.state_dir + "/volume.db").c_str(), R_OK) == 0) {
    auto opened = VolumeStore::Open(config->agent.state_dir);
    if (!opened.ok()) {
      std::cerr << opened.error() << "\n";
      return 1;
    }
    volume = std::move(opened).value();
    env.volume = volume.get();
  }
  auto checks = MakeChecks(*config, env, targets.value().families());
  Scheduler scheduler(checks, cache, clock);
  CycleOptions options;
  options.stop = &g_stop;
  options.on_cycle_begun = [json](const CycleReport& cycle) {
    if (json) {
      for (const auto& z : cycle.zones) std::cout << ZoneHealthJson(z).dump() << "\n";
    } else {
      if (!cycle.zones.empty()) std::cout << ZoneHealthTable(cycle.zones) << "\n";
      std::cout << IpReportTableHeader();
    }
  };
  auto outcome = scheduler.RunCycle(targets.value(), options, [json](IpReport&& r) {
    std::cout << (json ? IpReportJson(r).dump() + "\n" : IpReportTableRow(r));
  });
  std::cout.flush();
  return outcome.completed ? 0 : 1;
}

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

// Publishes what the store knew at start-up, so listing series do not vanish (and
// their alerts resolve) between a restart and the end of the first cycle.
void PublishStoredState(const Config& config, const StateStore& store, const Shard& shard, MetricsExporter& exporter) {
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
  snapshot.SetCycle(stored);
  exporter.Publish(snapshot.FinishRestored(last_success.value()));
}

// One daemon cycle: check everything, store it, publish metrics. Returns whether
// the cycle completed (a stop request cuts it short).
bool RunOneCycle(const Config& config, Scheduler& scheduler, CachingResolver& cache, const TargetSet& targets,
                 const Shard& shard, StateStore& store, AlertTracker& alerts, MetricsExporter& exporter, Clock& clock,
                 std::chrono::nanoseconds spread) {
  const long long started = UnixSeconds(clock.WallNow());
  cache.Clear();  // each cycle sees the DNS as it is now
  if (Status s = store.BeginCycle(started); !s.ok()) log::Error(s.message());
  SnapshotBuilder snapshot(config);
  size_t listed = 0, errors = 0, store_failures = 0, fcrdns_problems = 0, spf_problems = 0;
  CycleOptions options;
  options.spread = spread;
  options.stop = &g_stop;
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
  options.on_poll = [&] { commit_after(std::chrono::milliseconds(200)); };
  auto outcome = scheduler.RunCycle(targets, options, [&](IpReport&& r) {
    const long long now = UnixSeconds(clock.WallNow());
    // If its alert streams could not be written, the address's results are not stored
    // either: next cycle sees the change again instead of taking it for old news.
    if (Status a = alerts.Record(r, now); !a.ok()) {
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
    if (Status s = alerts.RecordZone(z, started); !s.ok()) log::Error(s.message());
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
    if (auto stored = OwnedListings(store, shard); stored.ok())
      snapshot.UseStoredListings(stored.value());
    else
      log::Error(stored.error());
    exporter.Publish(snapshot.Finish(seconds, ok ? finished : 0));
  }
  std::string events;
  for (const auto& [type, n] : alerts.raised()) events += fmt::format("{}{} {}", events.empty() ? "" : ", ", n, type);
  log::Info(fmt::format("cycle {}: {} addresses in {:.1f}s, {} listings, {} with reverse DNS/HELO problems, "
                        "{} (address, domain) not authorised by SPF, {} results could not tell; events so far: {}{}",
                        outcome.completed ? "done" : "stopped early", outcome.addresses_done, seconds, listed,
                        fcrdns_problems, spf_problems, errors, events.empty() ? "none" : events,
                        store_failures ? fmt::format(", {} state writes failed", store_failures) : ""));
  return outcome.completed;
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

// After a one-shot cycle: give the webhook sender up to 10 s to deliver what the
// cycle raised. Whatever is left stays in the outbox for the next run.
void DrainWebhooks(const Config& config, WebhookSender& sender, Clock& clock) {
  const auto deadline = clock.Now() + std::chrono::seconds(10);
  long long left = 0;
  for (;;) {
    auto undelivered = sender.Undelivered();
    if (!undelivered.ok()) return log::Error(undelivered.error());
    left = undelivered.value();
    if (left == 0 || g_stop || clock.Now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (left > 0)
    log::Warn(fmt::format("{} webhook item(s) not delivered yet; they stay in the outbox of {} for the next run", left,
                          config.agent.state_dir));
}

int RunCommand(const std::string& path, bool once, std::string listen, const Shard& shard) {
  auto config = Load(path);
  if (!config) return 2;
  auto store = StateStore::Open(config->agent.state_dir);
  if (!store.ok()) {
    log::Error(store.error());
    return 1;
  }
  SystemClock clock;
  DnsStats stats;
  auto client = DnsClient::Create(config->dns, clock, stats);
  if (!client.ok()) {
    log::Error(client.error());
    return 1;
  }
  TargetSet targets = TargetSet::FromRanges(config->ranges);
  targets.Restrict(shard);
  AlertTracker alerts(*config, *store.value());
  CachingResolver cache(*client.value(), clock);
  StoredMxHistory mx_history(*store.value());
  CheckEnv env{*client.value(), clock, &cache};
  env.mx_history = &mx_history;
  env.stop = &g_stop;
  // Volume: its own database, fed by the log ingester and POST /api/v1/volume.
  std::unique_ptr<VolumeStore> volume;
  std::unique_ptr<VolumeIngester> ingester;
  if (WarmupCheckEnabled(*config)) {
    auto opened = VolumeStore::Open(config->agent.state_dir);
    if (!opened.ok()) {
      log::Error(opened.error());
      return 1;
    }
    volume = std::move(opened).value();
    env.volume = volume.get();
    if (!config->volume.sources.empty()) ingester = std::make_unique<VolumeIngester>(config->volume, *volume, clock);
  }
  auto checks = MakeChecks(*config, env, targets.families());
  Scheduler scheduler(checks, cache, clock);

  auto exporter = std::make_shared<MetricsExporter>(stats);
  PublishStoredState(*config, *store.value(), shard, *exporter);
  // Webhooks leave from the outbox on their own thread and connection; events
  // raised by earlier runs and not yet delivered go first.
  auto webhook_stats = std::make_shared<WebhookStats>(config->webhooks);
  std::unique_ptr<WebhookSender> sender;
  if (!config->webhooks.empty()) {
    auto created = WebhookSender::Create(config->webhooks, config->agent.instance, config->agent.state_dir, clock,
                                         webhook_stats);
    if (!created.ok()) {
      log::Error(created.error());
      return 1;
    }
    sender = std::move(created).value();
    exporter->SetWebhookStats(webhook_stats);
    sender->Start();
  }
  std::atomic<bool> ready{false};
  HttpServer server(listen.empty() ? config->agent.listen_address : listen);
  AddStandardRoutes(server, StandardRoutes{{exporter}, [&ready] { return ready.load(); }});
  AddApiRoutes(server, *config, *store.value());
  if (volume) AddVolumeRoutes(server, *config, *volume, clock);
  // A one-shot run (cron, a benchmark) serves HTTP only when asked to, so it never
  // collides with a daemon already listening on the configured address.
  const bool serve = !once || !listen.empty();
  if (Status s = serve ? server.Start() : Status::Ok(); !s.ok()) {
    log::Error(s.message());
    return 1;
  }
  log::Info(fmt::format("repwatch {} ({}) watching {} addresses{} against {} zones{}", build::kVersion,
                        build::kRevision, targets.size(),
                        shard.all() ? "" : fmt::format(" (shard {} of {})", shard.index, shard.count),
                        config->dnsbl.size(),
                        serve ? "; listening on " + server.listen_address() : ""));
  InstallSignalHandlers();
  if (ingester) {  // what the logs hold now counts in the first cycle; the thread follows from there
    if (Status s = ingester->CatchUp(); !s.ok()) log::Error(s.message());
    if (!once) ingester->Start();
  }

  // The first cycle runs as fast as the DNS rate limits allow so the agent is ready
  // soon after start; later cycles spread their lookups over 90% of the interval.
  bool first = true;
  while (!g_stop) {
    const auto cycle_start = clock.Now();
    const auto spread = first || once ? std::chrono::nanoseconds(0)
                                      : std::chrono::duration_cast<std::chrono::nanoseconds>(config->agent.interval * 0.9);
    if (RunOneCycle(*config, scheduler, cache, targets, shard, *store.value(), alerts, *exporter, clock, spread))
      ready = true;
    first = false;
    if (once) {
      if (sender) DrainWebhooks(*config, *sender, clock);
      break;
    }
    while (!g_stop && clock.Now() < cycle_start + config->agent.interval)
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (sender) sender->Stop();
  if (ingester) ingester->Stop();
  log::Info(g_stop ? "stopping on signal" : "done");
  return 0;
}

}  // namespace
}  // namespace repwatch

namespace repwatch {
namespace {

// `repwatch classify`: the reply catalogue by hand, for a reply or bounce line.
int ClassifyCommand(const std::vector<std::string>& words, bool json) {
  std::string text;
  if (words.empty() || (words.size() == 1 && words[0] == "-")) {
    text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  } else {
    for (const std::string& w : words) text += (text.empty() ? "" : " ") + w;
  }
  if (text.find_first_not_of(" \t\r\n") == std::string::npos) {
    std::cerr << "classify: no reply text given (pass it as an argument, or on standard input)\n";
    return 2;
  }
  const ReplyClassification c = ClassifyText(text);
  if (json) {
    nlohmann::ordered_json j = {{"class", SmtpClassName(c.cls)},
                                {"code", c.code},
                                {"enhanced", c.enhanced},
                                {"zone", c.zone},
                                {"reason", c.reason},
                                {"text", c.text}};
    std::cout << j.dump() << "\n";
    return 0;
  }
  auto or_dash = [](const std::string& v) { return v.empty() ? std::string("-") : v; };
  std::cout << fmt::format("class:    {}\ncode:     {}\nenhanced: {}\nzone:     {}\nreason:   {}\ntext:     {}\n",
                           SmtpClassName(c.cls), c.code ? std::to_string(c.code) : "-", or_dash(c.enhanced),
                           or_dash(c.zone), or_dash(c.reason), c.text);
  return 0;
}

}  // namespace
}  // namespace repwatch

int main(int argc, char** argv) {
  using namespace repwatch;
  CLI::App app{"repwatch — watches the reputation of mail-sending IP addresses"};
  app.set_version_flag("--version", fmt::format("repwatch {} ({})", build::kVersion, build::kRevision));
  app.require_subcommand(1);
  std::string config_file, listen, log_level = "info";
  bool once = false, json = false;
  std::vector<std::string> targets;

  auto add_common = [&](CLI::App* cmd) {
    cmd->add_option("--config.file", config_file, "TOML configuration file")->required();
    cmd->add_option("--log.level", log_level, "debug | info | warn | error")->check(CLI::IsMember({"debug", "info", "warn", "error"}));
  };
  CLI::App* run = app.add_subcommand("run", "Run the agent: a cycle every [agent] interval, metrics over HTTP");
  add_common(run);
  run->add_flag("--once", once, "Run one full cycle, store it and exit (HTTP only with --web.listen-address)");
  run->add_option("--web.listen-address", listen, "HOST:PORT for /metrics and the API (default: [agent] listen_address)");
  uint32_t shard_index = 0, shard_count = 1;
  run->add_option("--shard.index", shard_index, "This agent's shard, 0..count-1 (e.g. the StatefulSet pod ordinal)");
  run->add_option("--shard.count", shard_count, "Number of agents sharing the ranges (rendezvous hashing)");
  CLI::App* check = app.add_subcommand("check", "Check addresses once with every enabled check; stores nothing");
  add_common(check);
  check->add_flag("--json", json, "JSON Lines output (zone lines, then one line per address)");
  check->add_option("TARGET", targets, "IP addresses or CIDR blocks")->required();
  CLI::App* validate = app.add_subcommand("validate", "Validate the configuration; exit 1 listing every error");
  add_common(validate);
  CLI::App* classify =
      app.add_subcommand("classify", "Classify an SMTP reply or bounce line with the MX probe's catalogue");
  classify->add_flag("--json", json, "One JSON object: class, code, enhanced, zone, reason, text");
  std::vector<std::string> reply_words;
  classify->add_option("REPLY", reply_words, "The reply text (quote it); '-' or nothing: read standard input");

  CLI11_PARSE(app, argc, argv);
  log::SetLevel(log_level);
  // A peer that hangs up (an MX after its 421, a webhook receiver) must end one
  // write with EPIPE, not the process: OpenSSL writes through write(2), where
  // MSG_NOSIGNAL cannot be passed.
  std::signal(SIGPIPE, SIG_IGN);
  if (*run) {
    auto shard = Shard::Make(shard_index, shard_count);
    if (!shard.ok()) {
      std::cerr << shard.error() << "\n";
      return 2;
    }
    return RunCommand(config_file, once, listen, shard.value());
  }
  if (*check) return CheckCommand(config_file, targets, json);
  if (*classify) return ClassifyCommand(reply_words, json);
  return ValidateCommand(config_file);
}
