// The clock seam: checks, the scheduler and the DNS client read time only through
// Clock, so tests can run a whole cycle on a fake clock without sleeping.
#pragma once

#include <chrono>

namespace repwatch {

class Clock {
 public:
  using Duration = std::chrono::nanoseconds;
  virtual ~Clock() = default;
  // Monotonic time, for deadlines and pacing.
  virtual std::chrono::steady_clock::time_point Now() const = 0;
  // Wall-clock time, for timestamps stored and shown to people.
  virtual std::chrono::system_clock::time_point WallNow() const = 0;
};

class SystemClock final : public Clock {
 public:
  std::chrono::steady_clock::time_point Now() const override { return std::chrono::steady_clock::now(); }
  std::chrono::system_clock::time_point WallNow() const override { return std::chrono::system_clock::now(); }
};

// Unix seconds of a wall-clock time point.
inline long long UnixSeconds(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

}  // namespace repwatch
