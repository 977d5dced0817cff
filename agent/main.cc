// repwatch command line: run (the daemon), check (one pass, nothing stored),
// validate (config errors as file:line:col: message). Names fixed in DESIGN.md.
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <iterator>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "agent/config.h"
#include "agent/daemon.h"
#include "agent/dns_cache.h"
#include "agent/dns_client.h"
#include "agent/log.h"
#include "agent/scheduler.h"
#include "agent/smtp_reply.h"
#include "agent/targets.h"
#include "agent/volume_store.h"
#include "build_info.h"
#include "checks/check.h"
#include "checks/warmup.h"
#include "exporters/report_format.h"

namespace repwatch {
namespace {

// Signal handlers only raise flags; the daemon's cycle thread acts on them (agent/daemon.h).
std::atomic<bool> g_stop{false};
std::atomic<bool> g_reload{false};

void OnStopSignal(int) { g_stop = true; }
void OnReloadSignal(int) { g_reload = true; }

void InstallSignalHandlers() {
  struct sigaction sa {};
  sigemptyset(&sa.sa_mask);
  sa.sa_handler = OnStopSignal;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  sa.sa_handler = OnReloadSignal;
  sigaction(SIGHUP, &sa, nullptr);
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
  if (Status keys = CheckWebhookKeys(c); !keys.ok()) {
    std::cerr << keys.message() << "\n";
    return 1;
  }
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

int RunCommand(const std::string& path, bool once, std::string listen, const Shard& shard) {
  InstallSignalHandlers();
  auto config = Load(path);
  if (!config) return 2;
  auto daemon = Daemon::Create(DaemonOptions{path, once, std::move(listen), shard}, std::move(*config));
  if (!daemon.ok()) {
    log::Error(daemon.error());
    return 1;
  }
  return daemon.value()->Run(g_stop, g_reload);
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
