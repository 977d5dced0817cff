#!/usr/bin/env bash
# setup.sh: installs everything repwatch needs to build, test, run the demo and
# the benchmark on Debian 12, from Debian's own packages. Safe to rerun: when
# every package is already installed it returns without touching apt.
# Needs root (re-runs itself through sudo otherwise).
set -euo pipefail

# Build: compiler, CMake, and the libraries the agent links (see README.md).
BUILD_PACKAGES=(
  cmake make g++ pkg-config git
  libldns-dev libcurl4-openssl-dev prometheus-cpp-dev libtomlplusplus-dev catch2
  libsqlite3-dev libcli11-dev nlohmann-json3-dev libfmt-dev libcivetweb-dev libssl-dev libpcre2-dev
)
# Lab: the real servers and clients the tests, demo and benchmark start in a
# loopback-only namespace, plus the tools the test scripts use.
LAB_PACKAGES=(
  rbldnsd dnsperf prometheus iproute2 util-linux
  ldnsutils dnsutils python3 curl sqlite3 time
  unbound python3-yaml python3-spf postfix openssl
  systemd binutils faketime
)

missing_packages() {
  local pkg
  for pkg in "$@"; do
    [[ $(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null) == "install ok installed" ]] || echo "$pkg"
  done
}

main() {
  mapfile -t missing < <(missing_packages "${BUILD_PACKAGES[@]}" "${LAB_PACKAGES[@]}")
  if ((${#missing[@]} == 0)); then
    echo "setup: all packages already installed"
    return 0
  fi
  if [[ $(id -u) != 0 ]]; then
    command -v sudo >/dev/null || { echo "setup: need root to install: ${missing[*]}" >&2; exit 1; }
    exec sudo -- bash "$(readlink -f "$0")" "$@"
  fi
  echo "setup: installing ${missing[*]}"
  # Package scripts must never start daemons on the host (prometheus, rbldnsd,
  # unbound, which would try to reach the root servers):
  # the lab starts its own servers, in a namespace, and stops them by PID.
  local policy=/usr/sbin/policy-rc.d ours=0
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\n# repwatch setup.sh: no daemons during install\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    ours=1
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  export DEBIAN_FRONTEND=noninteractive
  # Postfix is only a lab receiver (the MX-probe tests run their own instance from
  # their own config directory): no system configuration, no local mail.
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if ((ours)); then
    rm -f "$policy"
    trap - EXIT
  fi
  mapfile -t still < <(missing_packages "${missing[@]}")
  ((${#still[@]} == 0)) || { echo "setup: still missing: ${still[*]}" >&2; exit 1; }
  echo "setup: done"
}

main "$@"
