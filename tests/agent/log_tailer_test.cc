#include "agent/log_tailer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <string>
#include <vector>

#include "temp_dir.h"

namespace repwatch {
namespace {

using Lines = std::vector<std::string>;

// Appends through its own descriptor, as an MTA that keeps its log open does.
struct Writer {
  int fd;
  explicit Writer(const std::string& path) : fd(open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644)) {
    REQUIRE(fd >= 0);
  }
  ~Writer() { close(fd); }
  void Write(const std::string& s) const { REQUIRE(write(fd, s.data(), s.size()) == static_cast<ssize_t>(s.size())); }
};

void Append(const std::string& path, const std::string& s) { Writer(path).Write(s); }

Lines Poll(LogTailer& t, size_t max_lines = 100000) {
  Lines out;
  auto n = t.Poll([&](std::string_view line) { out.emplace_back(line); }, max_lines);
  REQUIRE(n.ok());
  CHECK(n.value() == out.size());
  return out;
}

uint64_t InodeOf(const std::string& path) {
  struct stat st {};
  REQUIRE(stat(path.c_str(), &st) == 0);
  return st.st_ino;
}

TEST_CASE("tailer: lines appended in pieces, the partial last line held until its newline", "[log_tailer]") {
  testing::TempDir dir;
  const std::string path = dir.sub("mail.log");
  Append(path, "one\ntw");
  LogTailer t(path, std::nullopt);
  CHECK(Poll(t) == Lines{"one"});
  CHECK(t.position().offset == 4);
  CHECK(t.position().inode == InodeOf(path));
  CHECK(Poll(t).empty());
  Append(path, "o");
  CHECK(Poll(t).empty());
  Append(path, "\nthree\r\n\nfour");
  CHECK(Poll(t) == Lines{"two", "three\r", ""});
  CHECK(t.position().offset == 16);
  Append(path, "\n");
  CHECK(Poll(t) == Lines{"four"});
  CHECK(t.position().offset == 21);
  CHECK(t.stats().lines == 5);
  CHECK(t.stats().rotations == 0);
  CHECK(t.stats().truncations == 0);
}

TEST_CASE("tailer: a missing file is waited for", "[log_tailer]") {
  testing::TempDir dir;
  const std::string path = dir.sub("mainlog");
  LogTailer t(path, std::nullopt);
  CHECK(Poll(t).empty());
  CHECK(t.position() == TailPosition{});
  Append(path, "a\nb\n");
  CHECK(Poll(t) == Lines{"a", "b"});
}

TEST_CASE("tailer: at most max_lines per poll, the position after the last one handed out", "[log_tailer]") {
  testing::TempDir dir;
  const std::string path = dir.sub("mail.log");
  Append(path, "l1\nl2\nl3\nl4\nl5\nl6\nl7\n");
  LogTailer t(path, std::nullopt);
  CHECK(Poll(t, 3) == Lines{"l1", "l2", "l3"});
  CHECK(t.position().offset == 9);
  CHECK(Poll(t, 3) == Lines{"l4", "l5", "l6"});
  CHECK(t.position().offset == 18);
  CHECK(Poll(t, 3) == Lines{"l7"});
  CHECK(t.position().offset == 21);
}

TEST_CASE("tailer: rotation by rename, the old file finished first, lines written to it after the rename too",
          "[log_tailer]") {
  testing::TempDir dir;
  const std::string path = dir.sub("mainlog");
  auto writer = std::make_unique<Writer>(path);
  writer->Write("1\n2\n");
  LogTailer t(path, std::nullopt);
  CHECK(Poll(t) == Lines{"1", "2"});
  const uint64_t old_inode = InodeOf(path);

  std::filesystem::rename(path, dir.sub("mainlog.1"));
  writer->Write("3\n");  // the MTA has not noticed yet
  CHECK(Poll(t) == Lines{"3"});  // no new file yet: the old one is still followed
  writer->Write("4\n5");
  CHECK(t.position().inode == old_inode);

  Writer fresh(path);  // the MTA reopens its log
  fresh.Write("6\n7\n");
  writer->Write("-end\n");
  CHECK(Poll(t) == Lines{"4", "5-end", "6", "7"});
  CHECK(t.stats().rotations == 1);
  CHECK(t.position() == TailPosition{t.position().device, InodeOf(path), 4});
  fresh.Write("8\n");
  CHECK(Poll(t) == Lines{"8"});
  CHECK(t.stats().lines == 8);
}

TEST_CASE("tailer: a rotated file's unterminated last line is handed out when moving on", "[log_tailer]") {
  testing::TempDir dir;
  const std::string path = dir.sub("mainlog");
  Append(path, "a\nb");
  LogTailer t(path, std::nullopt);
  CHECK(Poll(t) == Lines{"a"});
  std::filesystem::rename(path, dir.sub("mainlog.1"));
  Append(path, "c\n");
  CHECK(Poll(t) == Lines{"b", "c"});
  CHECK(t.stats().rotations == 1);
}

TEST_CASE("tailer: two rotations between polls lose only the middle file", "[log_tailer]") {
  // Like tail -F: the file that was never at `path` while we looked is not known.
  testing::TempDir dir;
  const std::string path = dir.sub("mainlog");
  Append(path, "a\n");
  LogTailer t(path, std::nullopt);
  CHECK(Poll(t) == Lines{"a"});
  Append(path, "b\n");
  std::filesystem::rename(path, dir.sub("mainlog.1"));
  Append(path, "c\n");
  std::filesystem::rename(dir.sub("mainlog.1"), dir.sub("mainlog.2"));
  std::filesystem::rename(path, dir.sub("mainlog.1"));
  Append(path, "d\n");
  CHECK(Poll(t) == Lines{"b", "d"});
}

TEST_CASE("tailer: copytruncate reads the file again from its start", "[log_tailer]") {
  testing::TempDir dir;
  const std::string path = dir.sub("mail.log");
  Writer w(path);
  w.Write("a\nb\nc\n");
  LogTailer t(path, std::nullopt);
  CHECK(Poll(t) == Lines{"a", "b", "c"});
  std::filesystem::copy_file(path, dir.sub("mail.log.1"));
  REQUIRE(truncate(path.c_str(), 0) == 0);
  CHECK(Poll(t).empty());
  CHECK(t.stats().truncations == 1);
  CHECK(t.position().offset == 0);
  w.Write("d\ne\n");
  CHECK(Poll(t) == Lines{"d", "e"});
  CHECK(t.stats().truncations == 1);
  CHECK(t.stats().rotations == 0);

  // Truncated and written again before the next poll, still shorter than our offset.
  REQUIRE(truncate(path.c_str(), 0) == 0);
  w.Write("f\n");
  CHECK(Poll(t) == Lines{"f"});
  CHECK(t.stats().truncations == 2);
}

TEST_CASE("tailer: copytruncate followed by more than was read before the next poll", "[log_tailer]") {
  testing::TempDir dir;
  const std::string path = dir.sub("mail.log");
  Writer w(path);
  w.Write("2026-11-23T04:00:01 first\n2026-11-23T04:00:02 second\n2026-11-23T04:00:03 thi");
  LogTailer t(path, std::nullopt);
  CHECK(Poll(t) == Lines{"2026-11-23T04:00:01 first", "2026-11-23T04:00:02 second"});
  CHECK(Poll(t).empty());  // nothing new: the same bytes, no truncation seen
  std::filesystem::copy_file(path, dir.sub("mail.log.1"));
  REQUIRE(truncate(path.c_str(), 0) == 0);
  // Longer than what was read, so the size alone does not tell.
  w.Write("2026-11-23T04:00:04 fourth\n2026-11-23T04:00:05 fifth\n2026-11-23T04:00:06 sixth, longer\n");
  CHECK(Poll(t) == Lines{"2026-11-23T04:00:04 fourth", "2026-11-23T04:00:05 fifth",
                         "2026-11-23T04:00:06 sixth, longer"});
  CHECK(t.stats().truncations == 1);
  w.Write("2026-11-23T04:00:07 seventh\n");
  CHECK(Poll(t) == Lines{"2026-11-23T04:00:07 seventh"});
  CHECK(t.stats().truncations == 1);
}

TEST_CASE("tailer: polls that stop at max_lines never take the file for rewritten", "[log_tailer]") {
  testing::TempDir dir;
  const std::string path = dir.sub("mail.log");
  Writer w(path);
  w.Write("a\nb\n");
  LogTailer t(path, std::nullopt);
  CHECK(Poll(t) == Lines{"a", "b"});  // at the end: the mark is taken
  w.Write("c\nd\ne\nf\n");
  CHECK(Poll(t, 1) == Lines{"c"});
  CHECK(Poll(t, 2) == Lines{"d", "e"});
  CHECK(Poll(t) == Lines{"f"});
  CHECK(t.stats().truncations == 0);
}

TEST_CASE("tailer: a line longer than max_line is skipped whole, the next one intact", "[log_tailer]") {
  testing::TempDir dir;
  const std::string path = dir.sub("mail.log");

  SECTION("a 1 MB line, max_line 64 KiB, in one piece") {
    Append(path, "before\n" + std::string(1000000, 'y') + "\nafter\n");
    LogTailer t(path, std::nullopt, 64 * 1024);
    CHECK(Poll(t) == Lines{"before", "after"});
    CHECK(t.stats().long_lines == 1);
    CHECK(t.position().offset == 7 + 1000001 + 6);
  }
  SECTION("the default max_line (1 MiB): a line one byte longer is skipped, one of exactly 1 MiB is not") {
    Append(path, std::string((1 << 20) + 1, 'x') + "\n" + std::string(1 << 20, 'z') + "\nnext\n");
    LogTailer t(path, std::nullopt);
    Lines got = Poll(t);
    REQUIRE(got.size() == 2);
    CHECK(got[0] == std::string(1 << 20, 'z'));
    CHECK(got[1] == "next");
    CHECK(t.stats().long_lines == 1);
  }
  SECTION("written in pieces over several polls: the position stays before it until its newline") {
    Writer w(path);
    w.Write("a\n" + std::string(300, 'q'));
    LogTailer t(path, std::nullopt, 100);
    CHECK(Poll(t) == Lines{"a"});
    CHECK(t.position().offset == 2);
    w.Write(std::string(5000, 'q'));
    CHECK(Poll(t).empty());
    CHECK(t.position().offset == 2);
    CHECK(t.stats().long_lines == 0);
    w.Write("qq\nb\n");
    CHECK(Poll(t) == Lines{"b"});
    CHECK(t.stats().long_lines == 1);
    CHECK(t.position().offset == 2 + 5303 + 2);
  }
  SECTION("boundary: exactly max_line is handed out") {
    Append(path, "0123456789\n01234567890\nok\n");
    LogTailer t(path, std::nullopt, 10);
    CHECK(Poll(t) == Lines{"0123456789", "ok"});
    CHECK(t.stats().long_lines == 1);
  }
}

TEST_CASE("tailer: restart from a stored position in the same file", "[log_tailer]") {
  testing::TempDir dir;
  const std::string path = dir.sub("mail.log");
  Append(path, "a\nb\nc");
  TailPosition stored;
  {
    LogTailer t(path, std::nullopt);
    CHECK(Poll(t) == Lines{"a", "b"});
    stored = t.position();
  }
  CHECK(stored.offset == 4);
  Append(path, "c\nd\n");
  LogTailer t(path, stored);
  CHECK(t.position() == stored);  // before the first poll: where it will start
  CHECK(Poll(t) == Lines{"cc", "d"});
  CHECK(t.stats().rotations == 0);

  // After a reboot that renumbered the device: the inode still names the file.
  Append(path, "e\n");
  LogTailer renumbered(path, TailPosition{stored.device + 1, stored.inode, t.position().offset});
  CHECK(Poll(renumbered) == Lines{"e"});
}

TEST_CASE("tailer: restart after a rotation that happened while down", "[log_tailer]") {
  testing::TempDir dir;
  const std::string path = dir.sub("mail.log");
  Append(path, "a\nb\n");
  TailPosition stored;
  {
    LogTailer t(path, std::nullopt);
    CHECK(Poll(t) == Lines{"a", "b"});
    stored = t.position();
  }
  Append(path, "c\n");  // written before the rotation, never read

  SECTION("the rotated file is still beside it (mail.log-20261123): finished from the offset, then the new one") {
    Append(dir.sub("mail.log.unrelated"), "x\n");  // a name with the prefix but another inode
    std::filesystem::rename(path, dir.sub("mail.log-20261123"));
    Append(path, "d\ne\n");
    LogTailer t(path, stored);
    CHECK(Poll(t) == Lines{"c", "d", "e"});
    CHECK(t.stats().rotations == 1);
    CHECK(t.position().inode == InodeOf(path));
    CHECK(t.position().offset == 4);
  }
  SECTION("rotated and no new file yet: the rotated one is finished and the path waited for") {
    std::filesystem::rename(path, dir.sub("mail.log.1"));
    LogTailer t(path, stored);
    CHECK(Poll(t) == Lines{"c"});
    Append(dir.sub("mail.log.1"), "c2\n");
    CHECK(Poll(t) == Lines{"c2"});
    Append(path, "d\n");
    CHECK(Poll(t) == Lines{"d"});
  }
  SECTION("the rotated file is gone: the new file from its start") {
    std::filesystem::rename(path, dir.sub("mail.log.1"));
    std::filesystem::remove(dir.sub("mail.log.1"));
    Append(path, "d\n");
    LogTailer t(path, stored);
    CHECK(Poll(t) == Lines{"d"});
  }
  SECTION("truncated while down: from the start") {
    REQUIRE(truncate(path.c_str(), 0) == 0);
    Append(path, "z\n");
    LogTailer t(path, stored);
    CHECK(Poll(t) == Lines{"z"});
    CHECK(t.stats().truncations == 1);
  }
}

TEST_CASE("tailer: a file that cannot be read is an error naming its path", "[log_tailer]") {
  testing::TempDir dir;
  const std::string path = dir.sub("mail.log");
  std::filesystem::create_directory(path);
  LogTailer t(path, std::nullopt);
  auto r = t.Poll([](std::string_view) {});
  REQUIRE_FALSE(r.ok());
  CHECK(r.error() == "cannot read " + path + ": Is a directory");
}

}  // namespace
}  // namespace repwatch
