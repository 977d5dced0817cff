// Minimal leveled logging to stderr in logfmt (ts=... level=... msg="..." k=v),
// the format Prometheus-ecosystem operators grep. Not thread-hot.
#pragma once

#include <string>
#include <string_view>

namespace repwatch::log {

enum class Level { kDebug, kInfo, kWarn, kError };
bool SetLevel(std::string_view name);  // "debug" | "info" | "warn" | "error"; false if unknown
void Write(Level level, std::string_view message);

inline void Debug(std::string_view m) { Write(Level::kDebug, m); }
inline void Info(std::string_view m) { Write(Level::kInfo, m); }
inline void Warn(std::string_view m) { Write(Level::kWarn, m); }
inline void Error(std::string_view m) { Write(Level::kError, m); }

}  // namespace repwatch::log
