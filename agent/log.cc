#include "agent/log.h"

#include <fmt/chrono.h>
#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <cstdio>

namespace repwatch::log {
namespace {

std::atomic<Level> g_level{Level::kInfo};

std::string_view Name(Level l) {
  switch (l) {
    case Level::kDebug: return "debug";
    case Level::kInfo: return "info";
    case Level::kWarn: return "warn";
    case Level::kError: return "error";
  }
  return "info";
}

std::string Quote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out + "\"";
}

}  // namespace

bool SetLevel(std::string_view name) {
  for (Level l : {Level::kDebug, Level::kInfo, Level::kWarn, Level::kError})
    if (Name(l) == name) {
      g_level = l;
      return true;
    }
  return false;
}

void Write(Level level, std::string_view message) {
  if (level < g_level.load()) return;
  const auto now = std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now());
  std::string line = fmt::format("ts={:%Y-%m-%dT%H:%M:%S}Z level={} msg={}\n", now, Name(level), Quote(message));
  std::fputs(line.c_str(), stderr);
}

}  // namespace repwatch::log
