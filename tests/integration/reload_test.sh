#!/usr/bin/env bash
# Config reload and shutdown of `repwatch run` (agent/daemon.h), against rbldnsd
# in a loopback-only namespace:
#  1. SIGHUP with a config that adds a zone and a range: their series appear,
#     repwatch_config_last_reload_successful 1, its timestamp moves.
#  2. SIGHUP with a broken config: the daemon runs on with the old one, the log
#     names file and line, the metric goes to 0 and the timestamp stays.
#  3. POST /-/reload: GET is 405; a bad value answers 500 with file:line; a good
#     config (dropping a zone, moving state_dir, adding an [api] token) answers 200:
#     the dropped zone's series go, state_dir stays (with a warning), and from then
#     on the token is required (401 without it).
#  4. POST /-/reload in the middle of a long, rate-limited cycle answers within
#     seconds; SIGTERM in the middle of the next one: exit 0 within 5 s, the
#     state file passes integrity_check and holds what was stored, and a restart
#     carries on from it.
#   bash tests/integration/reload_test.sh /path/to/repwatch
set -euo pipefail

[[ $# -ge 1 ]] || { echo "usage: $0 /path/to/repwatch" >&2; exit 2; }
REPWATCH=$(readlink -f "$1")
# shellcheck source=tests/lab/lab.sh
source "$(dirname "$(readlink -f "$0")")/../lab/lab.sh"

lab_enter_netns "$@"
lab_init
[[ -x $REPWATCH ]] || lab_die "not an executable: $REPWATCH"

DNS_ADDR=127.0.0.53
DNS_PORT=$(lab_free_port "$DNS_ADDR")
WEB_ADDR=127.0.0.1
WEB_PORT=$(lab_free_port "$WEB_ADDR")
WEB="http://$WEB_ADDR:$WEB_PORT"
DATA="$LAB_DIR/zones"
STATE="$LAB_DIR/state"
CONF="$LAB_DIR/repwatch.toml"
LOG="$LAB_DIR/repwatch.log"
TOKEN=reload-test-token-0123456789

# Two zones: a.test lists 192.0.2.3, b.test lists 198.51.100.1 (and 10.0.7.7 for
# the long cycle). Both carry the RFC 5782 test point 127.0.0.2.
mkdir -p "$DATA"
printf ':127.0.0.2:Listed in a.test\n127.0.0.2\n192.0.2.3\n' >"$DATA/a.ip4set"
printf ':127.0.0.2:Listed in b.test\n127.0.0.2\n198.51.100.1\n10.0.7.7\n' >"$DATA/b.ip4set"
printf '%s\n' "$TOKEN" >"$LAB_DIR/api.token"
chmod 600 "$LAB_DIR/api.token"
lab_rbldnsd "$DATA" "$DNS_ADDR:$DNS_PORT" a.test:ip4set:a.ip4set b.test:ip4set:b.ip4set

# write_config [zone=a.test]... [range=NAME:CIDR]... [extra TOML lines via $EXTRA]
write_config() {
  local state=$STATE qps=0 arg
  {
    printf '[agent]\nstate_dir = "%s"\ninterval = "1m"\n' "${STATE_DIR_OVERRIDE:-$state}"
    printf '\n[dns]\nservers = ["%s:%s"]\ntimeout = "1s"\nattempts = 2\n' "$DNS_ADDR" "$DNS_PORT"
    for arg in "$@"; do [[ $arg == qps=* ]] && qps=${arg#qps=}; done
    [[ $qps != 0 ]] && printf 'max_qps = %s\n' "$qps"
    printf '\n[fcrdns]\nenabled = false\n\n[spf]\nenabled = false\n'
    for arg in "$@"; do
      case $arg in
        zone=*) printf '\n[[dnsbl]]\nzone = "%s"\n' "${arg#zone=}" ;;
        range=*) arg=${arg#range=}; printf '\n[[ranges]]\nname = "%s"\ncidrs = ["%s"]\n' "${arg%%:*}" "${arg#*:}" ;;
      esac
    done
    [[ -n ${EXTRA:-} ]] && printf '\n%s\n' "$EXTRA"
  } >"$CONF.new"
  mv "$CONF.new" "$CONF"
}

metrics() { curl -fsS --max-time 5 "$WEB/metrics"; }
# metric_value NAME_WITH_LABELS: the sample's value, or "absent".
metric_value() {
  local v
  v=$(metrics | awk -v k="$1" '$1 == k { print $2; found = 1 } END { if (!found) print "absent" }')
  printf '%s' "$v"
}
# wait_metric NAME_WITH_LABELS VALUE TIMEOUT_S: true once the sample has VALUE.
wait_metric() {
  local deadline=$((SECONDS + $3))
  while ((SECONDS < deadline)); do
    [[ $(metric_value "$1") == "$2" ]] && return 0
    sleep 0.2
  done
  printf '  %s is %s, not %s, after %ss\n' "$1" "$(metric_value "$1")" "$2" "$3"
  return 1
}
# post_reload [CURL_ARG...]: POST /-/reload; sets CODE and BODY.
post_reload() {
  BODY=$(curl -s -o - -w '\n%{http_code}' --max-time 40 -X POST "$@" "$WEB/-/reload") || true
  CODE=${BODY##*$'\n'}
  BODY=${BODY%$'\n'*}
}
log_has() { grep -qF -- "$1" "$LOG" || { printf '  not in the log: %s\n' "$1"; return 1; }; }
equals() { [[ $1 == "$2" ]] || { printf '  got "%s", want "%s"\n' "$1" "$2"; return 1; }; }
contains() { [[ $1 == *"$2"* ]] || { printf '  "%s" does not contain "%s"\n' "$1" "$2"; return 1; }; }

AGENT_PID=""
start_agent() {
  "$REPWATCH" run --config.file="$CONF" --web.listen-address="$WEB_ADDR:$WEB_PORT" >>"$LOG" 2>&1 &
  AGENT_PID=$!
  LAB_PIDS+=("$AGENT_PID")
  lab_wait_http "$WEB/-/ready" 30 "$AGENT_PID"
}

LISTED_A='repwatch_dnsbl_listed{ip="192.0.2.3",zone="a.test",code="127.0.0.2",range="r1"}'
LISTED_B='repwatch_dnsbl_listed{ip="198.51.100.1",zone="b.test",code="127.0.0.2",range="r2"}'
OK_METRIC=repwatch_config_last_reload_successful
TS_METRIC=repwatch_config_last_reload_success_timestamp_seconds

# --- start -----------------------------------------------------------------
write_config zone=a.test range=r1:192.0.2.0/28
start_agent
lab_check "start: a.test listing exported" equals "$(metric_value "$LISTED_A")" 1
lab_check "start: $OK_METRIC 1" equals "$(metric_value "$OK_METRIC")" 1
TS0=$(metric_value "$TS_METRIC")
lab_check "start: $TS_METRIC is the start time" test "$TS0" != absent

# --- 1. SIGHUP with a zone and a range more ---------------------------------
sleep 1.1   # the timestamp is in seconds: a reload must move it
write_config zone=a.test zone=b.test range=r1:192.0.2.0/28 range=r2:198.51.100.0/30
t0=$SECONDS
kill -HUP "$AGENT_PID"
lab_check "SIGHUP: the new zone and range show within 10s" wait_metric "$LISTED_B" 1 10
lab_log "SIGHUP applied and a cycle done in $((SECONDS - t0))s"
lab_check "SIGHUP: repwatch_targets of the new range" equals "$(metric_value 'repwatch_targets{range="r2"}')" 4
lab_check "SIGHUP: the old listing stays" equals "$(metric_value "$LISTED_A")" 1
lab_check "SIGHUP: $OK_METRIC 1" equals "$(metric_value "$OK_METRIC")" 1
TS1=$(metric_value "$TS_METRIC")
lab_check "SIGHUP: $TS_METRIC moved ($TS0 -> $TS1)" python3 -c 'import sys; sys.exit(float(sys.argv[2]) <= float(sys.argv[1]))' "$TS0" "$TS1"
lab_check "SIGHUP: logged" log_has "reloading $CONF (SIGHUP)"

# --- 2. SIGHUP with a broken file --------------------------------------------
cp "$CONF" "$LAB_DIR/good.toml"
# Line 3 is `interval = "1m"`: an unterminated string there.
sed -i '3s/.*/interval = "1m/' "$CONF"
kill -HUP "$AGENT_PID"
lab_check "broken SIGHUP: $OK_METRIC 0" wait_metric "$OK_METRIC" 0 10
lab_check "broken SIGHUP: the daemon runs on" lab_alive "$AGENT_PID"
lab_check "broken SIGHUP: the log names file and line" log_has "$CONF:3:"
lab_check "broken SIGHUP: the log says the old config is kept" log_has "the running config is kept"
lab_check "broken SIGHUP: $TS_METRIC unchanged" equals "$(metric_value "$TS_METRIC")" "$TS1"
lab_check "broken SIGHUP: the running config's series stay" equals "$(metric_value "$LISTED_B")" 1
lab_check "broken SIGHUP: still healthy" test "$(lab_http_code "$WEB/-/healthy")" = 200

# --- 3. POST /-/reload -------------------------------------------------------
lab_check "GET /-/reload answers 405" equals "$(lab_http_code "$WEB/-/reload")" 405
# A bad value this time, on line 3 again.
write_config zone=a.test zone=b.test range=r1:192.0.2.0/28 range=r2:198.51.100.0/30
sed -i '3s/.*/interval = "soon"/' "$CONF"
post_reload
lab_check "POST with a bad value: 500" equals "$CODE" 500
lab_check "POST with a bad value: the answer names file and line" contains "$BODY" "$CONF:3:"
lab_check "POST with a bad value: $OK_METRIC 0" equals "$(metric_value "$OK_METRIC")" 0
# Good: drop a.test, move state_dir (needs a restart: kept), add an API token.
STATE_DIR_OVERRIDE="$LAB_DIR/elsewhere" EXTRA="[api]
token_file = \"$LAB_DIR/api.token\"" write_config zone=b.test range=r1:192.0.2.0/28 range=r2:198.51.100.0/30
t0=$SECONDS
post_reload
lab_check "POST with a good config: 200 (took $((SECONDS - t0))s)" equals "$CODE" 200
lab_check "POST with a good config: the answer says so" contains "$BODY" "config reloaded"
lab_check "POST with a good config: $OK_METRIC 1" equals "$(metric_value "$OK_METRIC")" 1
lab_check "POST: the dropped zone's series go within 10s" wait_metric "$LISTED_A" absent 10
lab_check "POST: a changed state_dir is named as needing a restart" \
  log_has "agent.state_dir changed to $LAB_DIR/elsewhere: needs a restart; the state stays in $STATE"
lab_check "POST: the state stays where it was" test ! -e "$LAB_DIR/elsewhere/repwatch.db"
post_reload
lab_check "POST without the new API token: 401" equals "$CODE" 401
post_reload -H "Authorization: Bearer $TOKEN"
lab_check "POST with the API token: 200" equals "$CODE" 200

# --- 4. SIGTERM in the middle of a long cycle ---------------------------------
# 65,536 addresses at 2,000 queries/s: a ~30 s cycle with thousands of questions
# queued behind the rate limit when the signal comes.
EXTRA="[api]
token_file = \"$LAB_DIR/api.token\"" write_config zone=b.test range=r2:198.51.100.0/30 range=big:10.0.0.0/16 qps=2000
post_reload -H "Authorization: Bearer $TOKEN"
lab_check "POST with a /16: 200" equals "$CODE" 200
sleep 3
# A reload while that cycle runs: the cycle stops at a clean point, the answer
# comes within seconds (not after the cycle), and a new cycle starts at once.
t0=$SECONDS
post_reload -H "Authorization: Bearer $TOKEN"
lab_check "POST in the middle of a cycle: 200 within 5s (took $((SECONDS - t0))s)" test "$CODE" = 200 -a $((SECONDS - t0)) -lt 5
lab_check "POST in the middle of a cycle: that cycle stopped early" log_has "cycle stopped early"
sleep 2
q0=$(metric_value repwatch_dns_queries_total)
sleep 0.5
q1=$(metric_value repwatch_dns_queries_total)
lab_check "the long cycle is running ($q0 -> $q1 queries)" python3 -c 'import sys; sys.exit(not float(sys.argv[1]) < float(sys.argv[2]))' "$q0" "$q1"
lab_check "the long cycle has not finished" test "$(grep -c 'cycle done: 65540 addresses' "$LOG")" = 0
t0=$(date +%s.%N)
rc=0
lab_stop "$AGENT_PID" 20 || rc=$?
took=$(python3 -c 'import sys, time; print(f"{time.time() - float(sys.argv[1]):.2f}")' "$t0")
lab_check "SIGTERM mid-cycle: exit 0 (rc=$rc)" test "$rc" = 0
lab_check "SIGTERM mid-cycle: gone within 5 s (took ${took}s)" python3 -c 'import sys; sys.exit(float(sys.argv[1]) >= 5)' "$took"
lab_check "SIGTERM mid-cycle: logged" log_has "stopping on signal"
DB="$STATE/repwatch.db"
lab_check "state: integrity_check ok" equals "$(sqlite3 "$DB" 'PRAGMA integrity_check')" ok
lab_check "state: the stopped cycle is recorded as unsuccessful" \
  equals "$(sqlite3 "$DB" 'SELECT success FROM cycles ORDER BY id DESC LIMIT 1')" 0
lab_check "state: the b.test listing is stored" \
  equals "$(sqlite3 "$DB" "SELECT status FROM dnsbl_state WHERE ip = '198.51.100.1' AND zone = 'b.test'")" listed
stored=$(sqlite3 "$DB" "SELECT count(*) FROM ips WHERE range = 'big'")
lab_check "state: part of the /16 was stored before the stop ($stored addresses)" \
  python3 -c 'import sys; sys.exit(not 0 < int(sys.argv[1]) < 65536)' "$stored"
cycles=$(sqlite3 "$DB" 'SELECT count(*) FROM cycles')

# Restart on the same state with the small config: it carries on from the store.
EXTRA="" write_config zone=b.test range=r2:198.51.100.0/30
start_agent
lab_check "restart: ready, the stored listing exported" equals "$(metric_value "$LISTED_B")" 1
lab_check "restart: $OK_METRIC 1" equals "$(metric_value "$OK_METRIC")" 1
lab_check "restart: a new cycle recorded" \
  test "$(sqlite3 "$DB" 'SELECT count(*) FROM cycles WHERE success = 1')" -ge 1 -a \
  "$(sqlite3 "$DB" 'SELECT count(*) FROM cycles')" -gt "$cycles"
rc=0
lab_stop "$AGENT_PID" 10 || rc=$?
lab_check "restart: exit 0 on SIGTERM (rc=$rc)" test "$rc" = 0

lab_summary
