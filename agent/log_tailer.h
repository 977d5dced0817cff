// Follows one log file as an MTA writes it, like `tail -F`, and hands out whole
// lines exactly once across rotations and restarts:
//  - rotation by rename (logrotate's default, Exim's own): the old file is read to
//    its end through the descriptor already open, then the new file from offset 0;
//  - copytruncate: the file shrinks below our offset, or the last bytes read before
//    it are no longer there (truncated and written past our offset between two
//    polls) -> read it again from 0. After a restart only the shrink is seen;
//  - a partial last line (the MTA is mid-write) is held back until its newline;
//  - a line longer than `max_line` is skipped whole and counted, never buffered;
//  - restart: the position (device, inode, offset) is stored with the counts it
//    produced (agent/volume_store.h); if the file at `path` is no longer that inode,
//    the rotated file with that inode in the same directory (e.g. "mainlog.1") is
//    finished first, when it is still there.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "agent/status.h"

namespace repwatch {

struct TailPosition {
  uint64_t device = 0;
  uint64_t inode = 0;
  uint64_t offset = 0;  // bytes of whole lines already handed out
  bool operator==(const TailPosition&) const = default;
};

struct TailStats {
  uint64_t lines = 0;          // lines handed out
  uint64_t long_lines = 0;     // lines skipped for exceeding max_line
  uint64_t rotations = 0;      // renames followed
  uint64_t truncations = 0;    // copytruncate (or any shrink) seen
};

class LogTailer {
 public:
  // `start`: where a previous run stopped (nullopt: a file seen for the first time is
  // read from its beginning). A missing file is not an error: it is waited for.
  LogTailer(std::string path, std::optional<TailPosition> start, size_t max_line = 1 << 20);
  ~LogTailer();
  LogTailer(const LogTailer&) = delete;
  LogTailer& operator=(const LogTailer&) = delete;

  // Reads what was appended (and what rotation left), calling on_line for each whole
  // line (without '\n'; a trailing '\r' is kept), at most `max_lines` per call so a
  // caller can commit in batches. Returns the number of lines handed out, or an error
  // for a file that exists but cannot be read (permissions) — named with its path.
  Result<size_t> Poll(const std::function<void(std::string_view line)>& on_line, size_t max_lines = 100000);

  // The position after the last line handed out, to store with what it produced.
  TailPosition position() const;
  const TailStats& stats() const { return stats_; }
  const std::string& path() const { return path_; }

 private:
  class Impl;
  std::string path_;
  TailStats stats_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace repwatch
