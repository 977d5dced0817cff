#include "agent/volume_ingest.h"

#include <algorithm>
#include <optional>

#include <fmt/format.h>

#include "agent/log.h"
#include "agent/log_formats.h"
#include "agent/log_tailer.h"

namespace repwatch {
namespace {

constexpr size_t kBatchLines = 50000;
constexpr std::chrono::milliseconds kMinPollInterval{10};
// A log that has never been there for this long is reported (a wrong path), not only waited for.
constexpr std::chrono::seconds kMissingGrace{60};

// PowerMTA's parser learns its columns from the file's header lines. Resuming in the
// middle of a file, it is first shown the lines before the stored offset (results
// dropped), so the records after it are read with the header they follow.
void PrimeParser(LineParser& parser, const std::string& path, const TailPosition& from, long long now) {
  if (from.inode == 0 || from.offset == 0) return;
  LogTailer prime(path, TailPosition{from.device, from.inode, 0});
  for (;;) {
    bool done = false;
    auto n = prime.Poll(
        [&](std::string_view line) {
          const TailPosition at = prime.position();  // where this line starts
          if (done || at.inode != from.inode || at.offset >= from.offset) {
            done = true;
            return;
          }
          VolumeEvent dropped;
          parser.Parse(line, now, &dropped);
        },
        kBatchLines);
    if (done || !n.ok() || n.value() == 0) return;
  }
}

}  // namespace

struct VolumeIngester::Source {
  VolumeSourceConfig config;
  std::mutex poll_mu;  // one PollSource at a time (the thread, or CatchUp)
  std::unique_ptr<LineParser> parser;
  std::unique_ptr<LogTailer> tailer;        // null until the stored position was read
  bool primed = false;                      // the parser has seen the lines before the stored position
  std::optional<TailPosition> committed;    // what the store holds for this source
  TailStats seen;                           // tailer stats already added to `stats`
  std::string logged_error;                 // the last error logged (once per change)
  std::optional<std::chrono::steady_clock::time_point> missing_since;  // no file seen yet, since
  SourceStats stats;                        // guarded by VolumeIngester::mu_
};

VolumeIngester::VolumeIngester(const VolumeConfig& config, VolumeStore& store, Clock& clock)
    : config_(config), store_(store), clock_(clock) {
  for (const VolumeSourceConfig& c : config_.sources) {
    auto s = std::make_unique<Source>();
    s->config = c;
    if (s->config.name.empty()) s->config.name = s->config.path;
    s->stats.name = s->config.name;
    s->parser = MakeLineParser(c.format, c.tags);
    sources_.push_back(std::move(s));
  }
}

VolumeIngester::~VolumeIngester() { Stop(); }

void VolumeIngester::Start() {
  std::lock_guard lock(mu_);
  if (thread_.joinable()) return;
  stop_ = false;
  thread_ = std::thread([this] { Loop(); });
}

void VolumeIngester::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

Status VolumeIngester::CatchUp() {
  Status first;
  for (auto& s : sources_) {
    Status st = PollSource(*s);
    if (!st.ok() && first.ok()) first = st;
  }
  return first;
}

std::vector<SourceStats> VolumeIngester::Stats() const {
  std::lock_guard lock(mu_);
  std::vector<SourceStats> out;
  out.reserve(sources_.size());
  for (const auto& s : sources_) out.push_back(s->stats);
  return out;
}

void VolumeIngester::Loop() {
  const auto interval = std::max(config_.poll_interval, kMinPollInterval);
  for (;;) {
    for (auto& s : sources_) {
      PollSource(*s);
      std::lock_guard lock(mu_);
      if (stop_) return;
    }
    std::unique_lock lock(mu_);
    if (cv_.wait_for(lock, interval, [this] { return stop_; })) return;
  }
}

// Reads the source to its end in batches; each batch's counts and the position
// after its last line go to the store in one transaction. A batch the store refused
// is read again: the tailer restarts from the position the store holds.
Status VolumeIngester::PollSource(Source& s) {
  std::lock_guard poll_lock(s.poll_mu);
  const std::string& name = s.config.name;
  Status result;
  std::vector<VolumeEvent> events;
  for (;;) {
    if (!s.tailer) {
      auto stored = store_.Position(name);
      if (!stored.ok()) {
        result = stored.status();
        break;
      }
      s.committed = stored.value();
      if (!s.primed && s.committed && s.config.format == LogFormat::kPowerMta)
        PrimeParser(*s.parser, s.config.path, *s.committed, UnixSeconds(clock_.WallNow()));
      s.primed = true;
      s.tailer = std::make_unique<LogTailer>(s.config.path, s.committed);
      s.seen = TailStats{};
    }
    const long long now = UnixSeconds(clock_.WallNow());
    events.clear();
    uint64_t ignored = 0, malformed = 0;
    auto polled = s.tailer->Poll(
        [&](std::string_view line) {
          VolumeEvent event;
          switch (s.parser->Parse(line, now, &event)) {
            case LineKind::kEvent: events.push_back(std::move(event)); break;
            case LineKind::kIgnored: ++ignored; break;
            case LineKind::kMalformed: ++malformed; break;
          }
        },
        kBatchLines);
    // Lines handed out before a read error are committed all the same.
    const size_t lines = polled.ok() ? polled.value() : static_cast<size_t>(s.tailer->stats().lines - s.seen.lines);
    const TailPosition position = s.tailer->position();
    const bool moved = !s.committed || *s.committed != position;
    if (lines > 0 || (moved && position.inode != 0)) {
      if (Status added = store_.Add(events, now, name, position); !added.ok()) {
        s.tailer.reset();  // read the batch again from the stored position next time
        result = added;
        break;
      }
      s.committed = position;
    }
    const TailStats& t = s.tailer->stats();
    {
      std::lock_guard lock(mu_);
      SourceStats& st = s.stats;
      st.lines += t.lines - s.seen.lines;
      st.events += events.size();
      st.ignored += ignored;
      st.malformed += malformed;
      st.long_lines += t.long_lines - s.seen.long_lines;
      st.rotations += t.rotations - s.seen.rotations;
      st.truncations += t.truncations - s.seen.truncations;
    }
    s.seen = t;
    if (!polled.ok()) {
      result = polled.status();
      break;
    }
    if (lines < kBatchLines) break;  // at the end
    std::lock_guard lock(mu_);
    if (stop_ && std::this_thread::get_id() == thread_.get_id()) break;  // Stop() during a long catch-up
  }

  // Still no file at the path (never opened): waited for, but after kMissingGrace it is
  // an error of its own, so a wrong path shows in repwatch_volume_log_up.
  if (result.ok() && s.tailer && s.tailer->position().inode == 0) {
    const auto now = clock_.Now();
    if (!s.missing_since) s.missing_since = now;
    if (now - *s.missing_since >= kMissingGrace)
      result = Status::Error(fmt::format("{}: no such file for {} s or more (still waiting for it)", s.config.path,
                                         kMissingGrace.count()));
  } else {
    s.missing_since.reset();
  }

  std::lock_guard lock(mu_);
  const std::string error = result.ok() ? std::string() : result.message();
  if (error != s.logged_error) {
    if (!error.empty())
      log::Warn("volume source " + name + ": " + error);
    else
      log::Info("volume source " + name + ": reading again");
    s.logged_error = error;
  }
  s.stats.last_error = error;
  return result;
}

}  // namespace repwatch
