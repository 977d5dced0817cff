// Daemon: `repwatch run`. Cycles over the configured ranges, stores each result,
// publishes metrics, sends webhooks, follows MTA logs and serves HTTP -- and
// reloads its config without a restart.
//
// Reload (SIGHUP, POST /-/reload). RequestReload() only raises a flag (the SIGHUP
// handler does the same with its own flag); the cycle thread re-reads the config
// file given at start at its next safe point: between two polls of a running cycle
// (at most 100 ms apart, while the cycle's zone test points are asked too) or while
// it waits for the next cycle, never a whole interval later.
//  - A file that does not load or validate (TOML syntax, a bad value, an unreadable
//    file or secret, a webhook secret that does not decode) changes nothing: the
//    errors are logged as "file:line:col: message", the running config goes on, and
//    repwatch_config_last_reload_successful goes to 0.
//  - A good one stops the running cycle at a clean point (no address starts; those
//    in flight get kStopGrace to finish and be stored, the rest are dropped unstored,
//    to be checked again), then replaces everything built from the config: ranges
//    and targets, DNS client, checks, alert thresholds, webhook sinks (the sender
//    restarts; an abandoned request is retried with the same webhook-id), log
//    sources (the ingester restarts at its stored positions), the API's config and
//    token. A new cycle starts at once, as fast as the first after start-up, so the
//    change shows within one fast cycle. repwatch_config_last_reload_successful
//    goes to 1 and repwatch_config_last_reload_success_timestamp_seconds to now.
//  - Settings that cannot change in a running process (RestartOnlyChanges) keep
//    their running value, each with a warning.
//  - What is stored stays open: the state store (and its webhook outbox) and
//    volume.db are never closed by a reload.
//
// Stop (SIGTERM, SIGINT, or the `stop` flag): the running cycle stops as for a
// reload (kStopGrace for addresses in flight, or for the zone test points when it
// comes before any address started), what finished is committed and the
// cycle recorded as unsuccessful, then the webhook sender (an in-flight request is
// abandoned and retried next run), the log ingester and the HTTP listener stop.
// Run() returns 0. An MX session already talking to a receiver is not cut off: it
// ends within its own timeouts.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "agent/config.h"
#include "agent/shard.h"
#include "agent/status.h"

namespace repwatch {

// Settings `next` changes that a running daemon cannot apply, one warning each,
// naming the setting, the new value and the one kept, e.g.
// "agent.listen_address changed to 0.0.0.0:9754: needs a restart; still listening on 127.0.0.1:9754".
// listen_from_flag: --web.listen-address was given, so [agent] listen_address is not used.
std::vector<std::string> RestartOnlyChanges(const Config& running, const Config& next, bool listen_from_flag);
// Sets the restart-only settings of `next` back to the running ones.
void KeepRestartOnly(const Config& running, Config& next);

// Every webhook secret decoded as the sender will read it (24-64 bytes of base64
// after whsec_); errors one per line as "file:line:col: webhook \"name\": reason".
Status CheckWebhookKeys(const Config& config);

// Loads and validates a config (LoadConfig + CheckWebhookKeys). Warnings are in
// Config::warnings; the error lists every problem found.
Result<Config> LoadDaemonConfig(const std::string& path);

struct DaemonOptions {
  std::string config_path;  // re-read on every reload
  bool once = false;        // one full cycle, then return (no reloads)
  std::string listen;       // --web.listen-address; empty: [agent] listen_address
  Shard shard;
};

class Daemon {
 public:
  // Addresses still in flight this long after a stop or reload request are dropped.
  static constexpr std::chrono::milliseconds kStopGrace{2000};
  // How long POST /-/reload waits for the cycle thread to try the reload.
  static constexpr std::chrono::seconds kReloadTimeout{30};

  // Opens the state store (and volume.db when warm-up is on) and builds what one
  // cycle needs. Errors name what could not be opened or created.
  static Result<std::unique_ptr<Daemon>> Create(DaemonOptions options, Config config);
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // Serves HTTP and runs cycles until `stop` is set (or one cycle with `once`).
  // `reload` is polled like RequestReload's flag (the SIGHUP handler sets it).
  // Returns the process exit code.
  int Run(const std::atomic<bool>& stop, std::atomic<bool>& reload);

  // Asks for a reload and waits (up to `timeout`) until the cycle thread tried it:
  // ok, or why the config was refused. Thread-safe; POST /-/reload calls it.
  Status RequestReload(std::chrono::milliseconds timeout);

 private:
  struct Cycle;  // everything built from one Config, replaced whole by a reload
  explicit Daemon(DaemonOptions options);

  Result<std::unique_ptr<Cycle>> Build(std::shared_ptr<const Config> config);
  void Install(std::unique_ptr<Cycle> cycle);  // retires the running one, starts its threads and routes
  void RetireCycle();  // stops the cycle's threads and drops it
  bool RunOneCycle(std::chrono::nanoseconds spread);
  // The cycle thread's side of a reload: load and validate now (the result goes to
  // pending_ or to the waiting requests), apply once the cycle has stopped.
  void TryLoad();
  void ApplyPending();
  void FinishReload(Status outcome, uint64_t served);
  void PublishStoredState();
  void DrainWebhooks();
  std::string api_token() const;  // the running [api] token, for HTTP threads
  // Called once stop is seen: answers waiting reload requests and stops the HTTP
  // listener on a thread of its own (civetweb takes up to 2 s), while the cycle winds down.
  void BeginShutdown();

  struct Shared;  // the state store, volume.db, metrics, HTTP: opened once
  DaemonOptions options_;
  std::unique_ptr<Shared> shared_;
  std::unique_ptr<Cycle> cycle_;
  const std::atomic<bool>* stop_ = nullptr;
  std::atomic<bool>* reload_flag_ = nullptr;
  std::atomic<bool> http_reload_{false};
  std::atomic<bool> cycle_stop_{false};  // the running cycle's stop flag (stop or reload)
  std::thread http_stopper_;
  mutable std::mutex token_mu_;
  std::string token_;

  // Reloads asked for over HTTP, by number; the cycle thread answers them in order.
  std::mutex reload_mu_;
  std::condition_variable reload_cv_;
  uint64_t reload_requested_ = 0, reload_done_ = 0;
  Status reload_outcome_;
  bool closing_ = false;  // Run() is returning: nobody will answer any more
  // A loaded config waiting for the running cycle to stop, and the requests it answers.
  std::optional<Config> pending_;
  uint64_t pending_serves_ = 0;
};

}  // namespace repwatch
