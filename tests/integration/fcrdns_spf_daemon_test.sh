#!/usr/bin/env bash
# `repwatch run` with the fcrdns and spf checks against the same unbound data as
# fcrdns_spf_check_test.sh, in a loopback-only namespace: waits for /-/ready,
# compares /metrics (per-IP problem series, per-range counts, permissive SPF
# terms, no per-IP series for clean addresses) and the IP API with the DNS
# data, lints the exposition with promtool, stops the agent with SIGTERM; then
# checks that `run --once` completes one cycle and exits 0.
#   bash tests/integration/fcrdns_spf_daemon_test.sh /path/to/repwatch
set -euo pipefail

[[ $# -ge 1 ]] || { echo "usage: $0 /path/to/repwatch" >&2; exit 2; }
REPWATCH=$(readlink -f "$1")
# shellcheck source=tests/lab/lab.sh
source "$(dirname "$(readlink -f "$0")")/../lab/lab.sh"
DNSDATA="$LAB_ROOT/dnsdata.py"

lab_enter_netns "$@"
lab_init
[[ -x $REPWATCH ]] || lab_die "not an executable: $REPWATCH"

DNS_ADDR=127.0.0.53
DNS_PORT=$(lab_free_port "$DNS_ADDR")
DEAD_ADDR=127.0.0.54
DEAD_PORT=$(lab_free_port "$DEAD_ADDR")
WEB_ADDR=127.0.0.1
WEB_PORT=$(lab_free_port "$WEB_ADDR")
WEB="http://$WEB_ADDR:$WEB_PORT"
DATA="$LAB_DIR/dns"
STATE="$LAB_DIR/state"
READY_TIMEOUT=60   # the first cycle is not spread; timeouts are 500ms x 2

python3 "$DNSDATA" fixture "$DATA" --dns "$DNS_ADDR:$DNS_PORT" \
  --blackhole "$DEAD_ADDR:$DEAD_PORT" --state-dir "$STATE" --interval 1h
lab_spawn blackhole python3 "$DNSDATA" blackhole "$DEAD_ADDR:$DEAD_PORT"
lab_unbound "$DATA/unbound.conf" "$DNS_ADDR:$DNS_PORT"
UNBOUND_PID=$LAB_LAST_PID
lab_check "lab: unbound answers every name as the fixture says" python3 "$DNSDATA" verify-lab "$DATA"

promtool_clean() {
  local out rc=0
  out=$(promtool check metrics <"$1" 2>&1) || rc=$?
  [[ $rc == 0 && -z $out ]] || { printf '  promtool (rc=%s): %s\n' "$rc" "$out"; return 1; }
}

check_api() {
  local ip=$1 file="$LAB_DIR/api-${1//:/_}.json" code
  code=$(curl -s -o "$file" -w '%{http_code}' --max-time 10 "$WEB/api/v1/ips/$ip") || true
  if [[ $code != 200 ]]; then
    lab_not_ok "GET /api/v1/ips/$ip: HTTP $code $(head -c 200 "$file" 2>/dev/null)"
    return
  fi
  lab_check "GET /api/v1/ips/$ip matches the DNS data" \
    python3 "$DNSDATA" verify-ip "$DATA" "$ip" <"$file"
}

lab_spawn repwatch "$REPWATCH" run --config.file="$DATA/repwatch.toml" \
  --web.listen-address="$WEB_ADDR:$WEB_PORT"
AGENT_PID=$LAB_LAST_PID
t0=$SECONDS
lab_wait_http "$WEB/-/healthy" 30 "$AGENT_PID"
lab_wait_http "$WEB/-/ready" "$READY_TIMEOUT" "$AGENT_PID"
lab_log "agent ready after $((SECONDS - t0))s"

curl -fsS --max-time 10 "$WEB/metrics" >"$LAB_DIR/metrics.txt"
lab_check "metrics match the DNS data exactly" \
  python3 "$DNSDATA" verify-metrics "$DATA" <"$LAB_DIR/metrics.txt"
lab_check "promtool check metrics is clean" promtool_clean "$LAB_DIR/metrics.txt"
check_api 192.0.2.2        # FCrDNS fail, HELO wrong_address, SPF fail
check_api 192.0.2.12       # several PTRs, one in a dead zone; HELO problems
check_api 192.0.2.50       # every SPF domain, IPv4
check_api 2001:db8:10::50  # every SPF domain, IPv6

rc=0
lab_stop "$AGENT_PID" 20 || rc=$?
lab_check "agent exits 0 on SIGTERM (rc=$rc)" test "$rc" = 0

# One-shot: one full cycle over the same state_dir, then exit 0 by itself.
once_rc=0
t0=$SECONDS
timeout 60 "$REPWATCH" run --once --config.file="$DATA/repwatch.toml" \
  >"$LAB_DIR/once.log" 2>&1 || once_rc=$?
lab_check "run --once completes a cycle and exits 0 (rc=$once_rc, $((SECONDS - t0))s)" test "$once_rc" = 0
lab_check "unbound is still running" lab_alive "$UNBOUND_PID"

lab_summary
