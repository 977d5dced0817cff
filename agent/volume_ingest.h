// The ingester: one thread that follows every [[volume.sources]] log (LogTailer),
// parses each line with its format's LineParser, and adds the events to the
// VolumeStore together with the source's new position, in batches (one
// transaction per batch of at most 50,000 lines or one poll).
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "agent/clock.h"
#include "agent/config.h"
#include "agent/volume_store.h"

namespace repwatch {

struct SourceStats {
  std::string name;
  uint64_t lines = 0, events = 0, ignored = 0, malformed = 0, long_lines = 0, rotations = 0, truncations = 0;
  std::string last_error;  // e.g. "cannot read /var/log/mail.log: Permission denied"; empty when fine
};

class VolumeIngester {
 public:
  VolumeIngester(const VolumeConfig& config, VolumeStore& store, Clock& clock);
  ~VolumeIngester();  // stops the thread

  void Start();
  void Stop();
  // Reads every source to its current end on the calling thread (tests, `run --once`).
  Status CatchUp();
  std::vector<SourceStats> Stats() const;  // thread-safe

 private:
  struct Source;
  Status PollSource(Source& s);
  void Loop();

  VolumeConfig config_;
  VolumeStore& store_;
  Clock& clock_;
  std::vector<std::unique_ptr<Source>> sources_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace repwatch
