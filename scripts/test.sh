#!/usr/bin/env bash
# test.sh: everything CI checks, on a clean Debian 12 clone, as root.
#  1. installs the build and lab packages (scripts/setup.sh);
#  2. builds build/ (RelWithDebInfo) and runs every test, unit and integration, with
#     ctest inside a loopback-only network namespace;
#  3. builds build-asan/ (AddressSanitizer + UBSan) and runs the unit tests the
#     same way.
# Exits non-zero on any failure. Nothing leaves the machine: the integration
# tests start their own servers on 127.0.0.x in namespaces of their own.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$(readlink -f "$0")")/lib.sh"
cd "$REPO_ROOT"

say "set-up"
bash scripts/setup.sh

say "build in build/"
rw_build build

# A failing test run does not stop the script: the sanitizer pass still runs,
# so one CI run reports everything. The exit status says whether all passed.
failed=()

say "tests: unit + integration, in a loopback-only namespace"
rw_netns ctest --test-dir build --output-on-failure -j2 || failed+=("build/ tests")

say "build (ASan + UBSan) in build-asan/"
rw_build build-asan -DREPWATCH_SANITIZE=ON -DREPWATCH_INTEGRATION_TESTS=OFF

say "tests: unit tests under ASan + UBSan, in a loopback-only namespace"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  rw_netns ctest --test-dir build-asan --output-on-failure -j2 || failed+=("build-asan/ unit tests")

if ((${#failed[@]})); then
  say "FAILED: ${failed[*]}"
  exit 1
fi
say "all tests passed"
