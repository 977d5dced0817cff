#include "agent/log_tailer.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

namespace repwatch {
namespace {

constexpr size_t kReadChunk = 1 << 20;  // bytes asked of each pread
constexpr size_t kMarkBytes = 64;        // bytes before the read offset kept to recognise the file

int OpenRead(const std::string& path) {
  int fd;
  do fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  while (fd < 0 && errno == EINTR);
  return fd;
}

Status ReadError(const std::string& path, int err) {
  return Status::Error("cannot read " + path + ": " + std::strerror(err));
}

}  // namespace

class LogTailer::Impl {
 public:
  Impl(const std::string& path, std::optional<TailPosition> start, size_t max_line, TailStats& stats)
      : path_(path), start_(start), max_line_(max_line), stats_(stats) {
    if (start_ && start_->inode == 0) start_.reset();  // never saw a file
  }
  ~Impl() { Close(); }

  Result<size_t> Poll(const std::function<void(std::string_view)>& on_line, size_t max_lines);

  TailPosition position() const {
    if (fd_ < 0) return start_.value_or(TailPosition{});
    return TailPosition{dev_, ino_, ConsumedOffset()};
  }

 private:
  // Offset in the current file just past the last line handed out or skipped.
  uint64_t ConsumedOffset() const { return skipping_ ? skip_start_ : read_off_ - (end_ - begin_); }

  void Close() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }
  // Makes `fd` (already fstat'ed into `st`) the file followed, from `offset`.
  void Adopt(int fd, const struct stat& st, uint64_t offset) {
    Close();
    fd_ = fd;
    dev_ = static_cast<uint64_t>(st.st_dev);
    ino_ = static_cast<uint64_t>(st.st_ino);
    Rewind(offset);
  }
  void Rewind(uint64_t offset) {
    read_off_ = offset;
    begin_ = end_ = 0;
    skipping_ = false;
    mark_.clear();
  }
  // The file was truncated and written again past our offset between two polls (a
  // shrink alone would not show it): the bytes before the offset are not those read.
  bool Rewritten() const;
  Status OpenFirst();
  int FindRotated(const TailPosition& want) const;
  Status Drain(const std::function<void(std::string_view)>& on_line, size_t max_lines, size_t& n);
  void FinishUnterminated(const std::function<void(std::string_view)>& on_line, size_t& n);

  std::string path_;
  std::optional<TailPosition> start_;  // until a file is first opened
  size_t max_line_;
  TailStats& stats_;

  int fd_ = -1;
  uint64_t dev_ = 0, ino_ = 0;
  uint64_t read_off_ = 0;  // file offset of buf_[end_]
  // buf_[begin_, end_): bytes read but not yet handed out (an incomplete line),
  // unless skipping_: then the bytes from skip_start_ to read_off_ belong to an
  // over-long line and are dropped as they come.
  std::vector<char> buf_;
  size_t begin_ = 0, end_ = 0;
  bool skipping_ = false;
  uint64_t skip_start_ = 0;
  // The last bytes read, up to kMarkBytes, which end at file offset mark_off_ (empty
  // after a rewind).
  std::string mark_;
  uint64_t mark_off_ = 0;
};

bool LogTailer::Impl::Rewritten() const {
  if (mark_.empty() || mark_off_ != read_off_) return false;
  char now[kMarkBytes];
  ssize_t got;
  do got = pread(fd_, now, mark_.size(), static_cast<off_t>(read_off_ - mark_.size()));
  while (got < 0 && errno == EINTR);
  return got == static_cast<ssize_t>(mark_.size()) && std::memcmp(now, mark_.data(), mark_.size()) != 0;
}

// The first open: the stored position's file when it is still there (at `path` or,
// rotated, beside it), else `path` from 0. The file is known by its inode alone: all
// candidates are in one directory, and a device number can change across a reboot
// (device mapper, overlay file systems), which must not read a whole log again.
Status LogTailer::Impl::OpenFirst() {
  int fd = OpenRead(path_);
  if (fd < 0 && errno != ENOENT) return ReadError(path_, errno);
  struct stat st {};
  if (fd >= 0 && fstat(fd, &st) != 0) {
    int err = errno;
    close(fd);
    return ReadError(path_, err);
  }
  if (start_) {
    const TailPosition want = *start_;
    if (fd >= 0 && static_cast<uint64_t>(st.st_ino) == want.inode) {
      if (static_cast<uint64_t>(st.st_size) < want.offset) {  // truncated while we were down
        ++stats_.truncations;
        Adopt(fd, st, 0);
      } else {
        Adopt(fd, st, want.offset);
      }
      start_.reset();
      return Status::Ok();
    }
    if (int old = FindRotated(want); old >= 0) {
      struct stat ost {};
      if (fstat(old, &ost) == 0 && static_cast<uint64_t>(ost.st_ino) == want.inode) {
        if (fd >= 0) close(fd);
        // Finished to its end first; Poll then moves on to `path` as after a rename.
        Adopt(old, ost, static_cast<uint64_t>(ost.st_size) < want.offset ? 0 : want.offset);
        start_.reset();
        return Status::Ok();
      }
      close(old);
    }
  }
  if (fd < 0) return Status::Ok();  // not there yet: waited for
  Adopt(fd, st, 0);
  start_.reset();
  return Status::Ok();
}

// A file in path's directory whose name starts with path's base name and that has
// the inode `want` names ("mainlog.1", "mail.log-20261123"); -1 when none.
int LogTailer::Impl::FindRotated(const TailPosition& want) const {
  const size_t slash = path_.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path_.substr(0, slash));
  const std::string base = slash == std::string::npos ? path_ : path_.substr(slash + 1);
  DIR* d = opendir(dir.c_str());
  if (!d) return -1;
  int found = -1;
  while (struct dirent* e = readdir(d)) {
    std::string_view name(e->d_name);
    if (name.size() <= base.size() || name.substr(0, base.size()) != base) continue;
    if (e->d_ino != want.inode) continue;
    const std::string candidate = dir + "/" + std::string(name);
    struct stat st {};
    if (stat(candidate.c_str(), &st) != 0 || static_cast<uint64_t>(st.st_ino) != want.inode || !S_ISREG(st.st_mode))
      continue;
    found = OpenRead(candidate);
    if (found >= 0) break;
  }
  closedir(d);
  return found;
}

// Hands out the whole lines between the consumed offset and the end of the current
// file (up to max_lines in all). Stops at end of file with an incomplete line held.
Status LogTailer::Impl::Drain(const std::function<void(std::string_view)>& on_line, size_t max_lines, size_t& n) {
  if (buf_.empty()) buf_.resize(max_line_ + kReadChunk);
  for (;;) {
    while (n < max_lines && begin_ < end_) {
      const char* start = buf_.data() + begin_;
      const char* nl = static_cast<const char*>(std::memchr(start, '\n', end_ - begin_));
      if (!nl) break;
      const size_t len = static_cast<size_t>(nl - start);
      if (skipping_) {
        skipping_ = false;
        ++stats_.long_lines;
      } else if (len > max_line_) {
        ++stats_.long_lines;
      } else {
        on_line(std::string_view(start, len));
        ++stats_.lines;
        ++n;
      }
      begin_ += len + 1;
    }
    if (n >= max_lines) return Status::Ok();
    // [begin_, end_) is an incomplete line: keep it at the front, or drop it when too long.
    const size_t partial = end_ - begin_;
    if (skipping_) {
      begin_ = end_ = 0;
    } else if (partial > max_line_) {
      skipping_ = true;
      skip_start_ = read_off_ - partial;
      begin_ = end_ = 0;
    } else if (begin_ > 0) {
      std::memmove(buf_.data(), buf_.data() + begin_, partial);
      begin_ = 0;
      end_ = partial;
    }
    ssize_t got;
    do got = pread(fd_, buf_.data() + end_, buf_.size() - end_, static_cast<off_t>(read_off_));
    while (got < 0 && errno == EINTR);
    if (got < 0) return ReadError(path_, errno);
    if (got == 0) return Status::Ok();
    end_ += static_cast<size_t>(got);
    read_off_ += static_cast<uint64_t>(got);
    // buf_[0, end_) holds the file's bytes just before read_off_.
    const size_t k = std::min(end_, kMarkBytes);
    mark_.assign(buf_.data() + end_ - k, k);
    mark_off_ = read_off_;
  }
}

// A file that was rotated away and read to its end: its last line, if it has no
// newline, will not get one, so it is handed out as it is (or counted, too long).
void LogTailer::Impl::FinishUnterminated(const std::function<void(std::string_view)>& on_line, size_t& n) {
  if (skipping_) {
    ++stats_.long_lines;
  } else if (end_ > begin_) {
    on_line(std::string_view(buf_.data() + begin_, end_ - begin_));
    ++stats_.lines;
    ++n;
  }
  begin_ = end_ = 0;
  skipping_ = false;
}

Result<size_t> LogTailer::Impl::Poll(const std::function<void(std::string_view)>& on_line, size_t max_lines) {
  size_t n = 0;
  if (max_lines == 0) return n;
  if (fd_ < 0) {
    if (Status s = OpenFirst(); !s.ok()) return s;
    if (fd_ < 0) return n;
  }
  for (;;) {
    struct stat st {};
    if (fstat(fd_, &st) != 0) return ReadError(path_, errno);
    // copytruncate (or any shrink); or truncated and already written past our offset.
    if (static_cast<uint64_t>(st.st_size) < read_off_ || Rewritten()) {
      ++stats_.truncations;
      Rewind(0);
    }
    if (Status s = Drain(on_line, max_lines, n); !s.ok()) return s;
    if (n >= max_lines) return n;

    // At the end of the file followed: is `path` still this file?
    struct stat now {};
    if (stat(path_.c_str(), &now) != 0) {
      if (errno == ENOENT) return n;  // renamed away, no new file yet: keep reading the old one
      return ReadError(path_, errno);
    }
    if (static_cast<uint64_t>(now.st_dev) == dev_ && static_cast<uint64_t>(now.st_ino) == ino_) return n;

    // Rotated: finish the old file (the writer may have added to it since), then switch.
    if (Status s = Drain(on_line, max_lines, n); !s.ok()) return s;
    if (n >= max_lines) return n;
    int fd = OpenRead(path_);
    if (fd < 0) {
      if (errno == ENOENT) return n;
      return ReadError(path_, errno);
    }
    struct stat nst {};
    if (fstat(fd, &nst) != 0) {
      int err = errno;
      close(fd);
      return ReadError(path_, err);
    }
    FinishUnterminated(on_line, n);
    ++stats_.rotations;
    Adopt(fd, nst, 0);
    if (n >= max_lines) return n;
  }
}

LogTailer::LogTailer(std::string path, std::optional<TailPosition> start, size_t max_line)
    : path_(std::move(path)), impl_(std::make_unique<Impl>(path_, start, max_line, stats_)) {}

LogTailer::~LogTailer() = default;

Result<size_t> LogTailer::Poll(const std::function<void(std::string_view line)>& on_line, size_t max_lines) {
  return impl_->Poll(on_line, max_lines);
}

TailPosition LogTailer::position() const { return impl_->position(); }

}  // namespace repwatch
