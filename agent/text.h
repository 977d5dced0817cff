// Small text helpers shared by the config loader, the catalogue and the checks.
// Domain names are compared ASCII case-insensitively (RFC 4343), never by locale.
#pragma once

#include <string>
#include <string_view>

namespace repwatch {

inline char AsciiLower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

inline std::string AsciiLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = AsciiLower(c);
  return out;
}

// Equal ignoring ASCII case and one trailing dot on either side.
inline bool SameDomainName(std::string_view a, std::string_view b) {
  if (a.ends_with('.')) a.remove_suffix(1);
  if (b.ends_with('.')) b.remove_suffix(1);
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (AsciiLower(a[i]) != AsciiLower(b[i])) return false;
  return true;
}

}  // namespace repwatch
