// A fresh directory under /tmp for one test, removed with everything in it at
// scope exit.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <string>

namespace repwatch::testing {

struct TempDir {
  std::filesystem::path path;
  TempDir() {
    char tmpl[] = "/tmp/repwatch_test.XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string sub(const std::string& name) const { return (path / name).string(); }
};

}  // namespace repwatch::testing
