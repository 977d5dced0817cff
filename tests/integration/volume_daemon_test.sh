#!/usr/bin/env bash
# Sending volume end to end, in a loopback-only namespace: `repwatch run` follows
# real log files in all four formats (Postfix, Exim, KumoMTA, PowerMTA), each with
# IPv4 and IPv6 sources, a garbage line, a line over 1 MiB, ignored lines and a
# partial last line; the files are rotated by rename and by copytruncate while it
# runs and while it is stopped; it is stopped with SIGTERM holding partial lines,
# and killed with SIGKILL in the middle of an 80 MB file; the push API is called
# with and without its token and with malformed bodies. After every step the
# counts in volume.db must equal tests/lab/volumedata.py's ledger exactly, and
# /metrics the ingester's line and rotation counts; at the end a cycle's warm-up
# series and `repwatch check --json` must match the ledger too.
#   bash tests/integration/volume_daemon_test.sh /path/to/repwatch
set -euo pipefail

[[ $# -ge 1 ]] || { echo "usage: $0 /path/to/repwatch" >&2; exit 2; }
REPWATCH=$(readlink -f "$1")
# shellcheck source=tests/lab/lab.sh
source "$(dirname "$(readlink -f "$0")")/../lab/lab.sh"

lab_enter_netns "$@"
lab_init
[[ -x $REPWATCH ]] || lab_die "not an executable: $REPWATCH"

VD=(python3 "$LAB_ROOT/volumedata.py")
LOGS="$LAB_DIR/logs"
STATE="$LAB_DIR/state"
DB="$STATE/volume.db"
WEB_ADDR=127.0.0.1
WEB_PORT=$(lab_free_port "$WEB_ADDR")
WEB="http://$WEB_ADDR:$WEB_PORT"
# No check here asks DNS anything; the resolver is a loopback address where nothing listens.
DNS="127.0.0.53:$(lab_free_port 127.0.0.53)"
export REPWATCH_TEST_API_TOKEN="volume-lab-token-$RANDOM$RANDOM"
# Postfix's and Exim's timestamps carry no zone: the agent reads them in its local
# time, which the ledger writes in UTC.
export TZ=UTC

"${VD[@]}" config "$LOGS" --state-dir "$STATE" --dns "$DNS" --token-env REPWATCH_TEST_API_TOKEN
FORMATS=(postfix exim kumomta powermta)
declare -A FILE=([postfix]=mail.log [exim]=mainlog [kumomta]=kumo.jsonl [powermta]=acct.csv)

AGENT_PID=""
start_agent() {  # NAME [CONFIG]
  lab_spawn "repwatch-$1" "$REPWATCH" run --config.file="${2:-$LOGS/repwatch.toml}" \
    --web.listen-address="$WEB_ADDR:$WEB_PORT"
  AGENT_PID=$LAB_LAST_PID
  lab_wait_http "$WEB/-/healthy" 30 "$AGENT_PID"
}

stop_agent() { lab_stop_ok "$AGENT_PID" "$1"; }

# wait_counts WHAT [TIMEOUT_S]: the agent reads on its own; waits until volume.db
# equals the ledger, then checks it (printing every difference when it does not).
wait_counts() {
  local deadline=$((SECONDS + ${2:-30}))
  until "${VD[@]}" verify-db "$LOGS" "$DB" "$REPWATCH" --quiet >/dev/null 2>&1; do
    ((SECONDS < deadline)) || break
    sleep 0.2
  done
  lab_check "volume.db counts exact: $1" "${VD[@]}" verify-db "$LOGS" "$DB" "$REPWATCH"
}

check_metrics() {
  curl -fsS --max-time 10 "$WEB/metrics" >"$LAB_DIR/metrics.txt"
  lab_check "/metrics line and rotation counts exact: $1" \
    "${VD[@]}" verify-metrics "$LOGS" "$REPWATCH" "${@:2}" <"$LAB_DIR/metrics.txt"
}

# 1. What the logs hold before the agent first starts, each with a garbage line, a
#    line over 1 MiB, ignored lines and a partial last line.
for f in "${FORMATS[@]}"; do
  "${VD[@]}" append "$LOGS" "$f" 120 --garbage --long --ignored 5 --partial
done
start_agent 1
wait_counts "first read of the four logs (IPv4 and IPv6 sources; garbage, 1 MiB and partial lines not counted)"
check_metrics "first read"

# 2. The MTAs finish their partial lines and write on.
for f in "${FORMATS[@]}"; do
  "${VD[@]}" finish-partial "$LOGS" "$f"
  "${VD[@]}" append "$LOGS" "$f" 80 --ignored 2
done
wait_counts "partial lines completed, 80 more records each"

# 3. Rotation while the agent runs. By rename (Postfix, KumoMTA): records written
#    just before the rename may not have been read yet, and must still count. By
#    copytruncate (Exim, PowerMTA): what was not read before the truncation is lost
#    by design of copytruncate, so the copy is made once the agent has read it.
for f in postfix kumomta; do
  "${VD[@]}" append "$LOGS" "$f" 30
  "${VD[@]}" rotate "$LOGS" "$f" rename
  "${VD[@]}" append "$LOGS" "$f" 40
done
wait_counts "before copytruncate"
for f in exim powermta; do
  "${VD[@]}" rotate "$LOGS" "$f" copytruncate
  "${VD[@]}" append "$LOGS" "$f" 40
done
wait_counts "rotated by rename (Postfix, KumoMTA) and copytruncate (Exim, PowerMTA with a new header order)"
check_metrics "after rotation"

# 4. The push API: refused without the token, with a wrong one, and with malformed
#    bodies (nothing applied: the counts stay exact); then a single item and a batch.
lab_check "push API: 401 without or with a wrong token, 400 naming the field, 200 applied" \
  "${VD[@]}" push "$LOGS" "$WEB" "$REPWATCH_TEST_API_TOKEN"
wait_counts "push API (only the accepted requests counted)" 5

# 5. SIGTERM with partial last lines; while the agent is down the MTAs finish them,
#    Postfix's log is rotated by rename and written on, PowerMTA writes on.
for f in exim kumomta; do "${VD[@]}" append "$LOGS" "$f" 20 --partial; done
wait_counts "before the stop"
stop_agent "partial lines pending"
"${VD[@]}" reset-stats "$LOGS"   # a new process counts its lines from zero
"${VD[@]}" append "$LOGS" postfix 25
"${VD[@]}" rotate "$LOGS" postfix rename
"${VD[@]}" append "$LOGS" postfix 35
"${VD[@]}" finish-partial "$LOGS" exim
"${VD[@]}" append "$LOGS" powermta 30
start_agent 2
"${VD[@]}" finish-partial "$LOGS" kumomta
wait_counts "after a restart: the rotated Postfix log finished, partial lines counted once"
check_metrics "after the restart"

# 6. SIGKILL in the middle of an 80 MB Postfix log; the next start goes on from the
#    last committed batch.
stop_agent "before the big file"
before=$(stat -c %s "$LOGS/${FILE[postfix]}")
after=$("${VD[@]}" big "$LOGS" postfix 400000)
# The catch-up runs at about 100 MB/s: the watcher starts the agent itself and
# follows its stored position from the first moment.
killed_at=$("${VD[@]}" kill-mid-file "$DB" postfix "$before" "$after" "$LAB_DIR/repwatch-3.log" \
  "$REPWATCH" run --config.file="$LOGS/repwatch.toml" --web.listen-address="$WEB_ADDR:$WEB_PORT") || killed_at=""
lab_check "agent killed mid-file (stored offset $killed_at of $after bytes)" test -n "$killed_at"
t0=$SECONDS
start_agent 4
wait_counts "after SIGKILL mid-file: nothing lost, nothing counted twice" 120
lab_log "the rest of the 80 MB file read in $((SECONDS - t0))s"

# 7. A restart runs a cycle at once: the warm-up series and `check --json` match the
#    ledger (double-30, day 0: allowance 50; backoff, ahead and ok addresses).
stop_agent "after the big file"
"${VD[@]}" reset-stats "$LOGS"
start_agent 5
lab_wait_http "$WEB/-/ready" 30 "$AGENT_PID"
check_metrics "warm-up after a cycle" --cycle
"$REPWATCH" check --json --config.file="$LOGS/repwatch.toml" 192.0.2.0/29 2001:db8::/125 >"$LAB_DIR/check.json" \
  2>"$LAB_DIR/check.log" || true
lab_check "check --json: volume and warm-up of every sending address" \
  "${VD[@]}" verify-check "$LOGS" "$REPWATCH" <"$LAB_DIR/check.json"
stop_agent "after the warm-up cycle"

# 8. A restart whose first cycle cannot end (a block list behind a resolver that
#    never answers): the warm-up series come from volume.db at start-up, exact, and
#    SIGTERM still stops the agent while its zone's test points hang.
BLACKHOLE="127.0.0.54:$(lab_free_port 127.0.0.54)"
lab_spawn blackhole python3 "$LAB_ROOT/dnsdata.py" blackhole "$BLACKHOLE"
sed -e "s|^servers = .*|servers = [\"$BLACKHOLE\"]|" -e 's|^timeout = .*|timeout = "30s"|' \
  "$LOGS/repwatch.toml" >"$LOGS/stuck.toml"
printf '\n[[dnsbl]]\nzone = "bl.volume-lab.example"\n' >>"$LOGS/stuck.toml"
"${VD[@]}" reset-stats "$LOGS"
start_agent 6 "$LOGS/stuck.toml"
sleep 1
lab_check "no cycle has ended (/-/ready is not 200)" test "$(lab_http_code "$WEB/-/ready")" != 200
check_metrics "warm-up restored at start-up, before any cycle" --cycle
stop_agent "while the zone's test points hang"

lab_summary
