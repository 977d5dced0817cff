# shellcheck shell=bash
# Shared by scripts/test.sh, demo.sh and bench.sh: where the tree is, set-up
# and the CMake build. Sourced, never run.

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

say() { printf '\n==> %s\n' "$*"; }

# rw_build DIR [CMAKE_ARG...]: configures and builds DIR with two jobs, the
# size of the machines CI and developers use. RelWithDebInfo (-O2), not Release:
# GCC 12's -O3 raises false -Wrestrict warnings in libstdc++ that -Werror stops on.
rw_build() {
  local dir=$1
  shift
  cmake -S "$REPO_ROOT" -B "$REPO_ROOT/$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
  cmake --build "$REPO_ROOT/$dir" -j2
}

# rw_netns CMD [ARG...]: runs CMD in a loopback-only network namespace.
rw_netns() { "$REPO_ROOT/tests/lab/netns-run" "$@"; }
